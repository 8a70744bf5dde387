"""Triton kernels compiled ahead of time for a GPU that is not here (sm_80, sm_90), with the ptxas
that the Triton wheel ships, and its resource report (registers, spills).

A kernel is named by a key, ``(module, kernel name, constexprs, capability, options)``, all plain
values, so that :func:`compile_all` can hand the compilations to worker processes: Triton's
compiler is Python and single-threaded, and tests/test_triton.py compiles about 140 kernels."""

from __future__ import annotations

import importlib
import os
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

# The kernels' arguments that are sizes (int32); every other one that is not a constexpr is a
# float32 pointer.
SIZES = ("T", "B", "U", "K", "L")


def key(kernel, constexprs: dict, capability: int, options: dict) -> tuple:
    """The key of one Triton kernel (a ``triton.jit`` function of a module) compiled for
    sm_<capability> with these constexprs and compiler options (num_warps, num_stages)."""
    return (kernel.fn.__module__, kernel.__name__, tuple(sorted(constexprs.items())), capability,
            tuple(sorted(options.items())))


def compile_report(key: tuple) -> tuple[int, str]:
    """(size of the cubin in bytes, ptxas -v's report) of the kernel that ``key`` names."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    module, name, constexprs, capability, options = key
    kernel = getattr(importlib.import_module(module), name)
    consts = dict(constexprs)
    signature = {arg: "constexpr" if arg in consts else "i32" if arg in SIZES else "*fp32" for arg in kernel.arg_names}
    compiled = triton.compile(ASTSource(kernel, signature, constexprs=consts),
                              target=GPUTarget("cuda", capability, 32), options=dict(options))
    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    arch = f"sm_{capability}a" if capability >= 90 else f"sm_{capability}"
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / "kernel.ptx"
        ptx.write_text(compiled.asm["ptx"])
        report = subprocess.run([str(ptxas), "-v", f"--gpu-name={arch}", str(ptx), "-o", os.devnull],
                                capture_output=True, text=True, check=True).stderr
    return len(compiled.asm["cubin"]), report


def compile_all(keys, workers: int | None = None) -> dict[tuple, tuple[int, str]]:
    """key -> :func:`compile_report` for every distinct key, compiled by ``workers`` processes
    (default: one per CPU this process may use, at most 8). Fresh interpreters (spawn), not forks of
    a process that has torch's threads running. Where processes cannot share a semaphore (no
    writable /dev/shm, as in tests/fresh's chroot), one after the other in this process."""
    keys = list(dict.fromkeys(keys))
    workers = min(workers or len(os.sched_getaffinity(0)), 8, len(keys))
    pool = None
    if workers > 1:
        try:
            pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
        except OSError:
            pass
    if pool is None:
        return {k: compile_report(k) for k in keys}
    with pool:
        return dict(zip(keys, pool.map(compile_report, keys)))
