"""Optional C kernels of the fast models: built once per machine type, loaded with ctypes.

A :class:`Kernel` is one C source file beside this module (``<name>.c``, no Python or torch
headers; packaged with the wheel as package data) compiled with the system's C compiler (``cc``, or ``$CC``) into ``~/.cache/liquidbench`` (``$XDG_CACHE_HOME``) the first time a
process asks for it; the cache key holds the source, the flags and the CPU's model and flags, so a
node of another type builds its own. Where no compiler is found, the build fails, the tensors are
not contiguous float32 on the CPU, or ``LIQUIDBENCH_<NAME>=0`` is set, the fast model uses its torch
implementation instead (the same results within float32 rounding). The one compilation's time is
recorded in ``Kernel.build`` (``seconds``) as warm-up, never as training time.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

# On x86-64, 256-bit vectors even where the compiler's tuning for the CPU prefers 128 (-march=native
# on AMD Zen 1 VMs): measured 20 % less time in the LTC step and its backward on such a machine. The
# option is x86-only: elsewhere (e.g. aarch64 nodes) it would fail the build.
# -ffast-math assumes no infinity or NaN ever occurs: a kernel must keep every intermediate finite
# (a division by an overflowed expf gave NaN, not 0: the sigmoids cap their exponent).
_X86 = platform.machine().lower() in ("x86_64", "amd64")
FLAGS = ["-O3", "-march=native", *(["-mprefer-vector-width=256"] if _X86 else []), "-ffast-math", "-fPIC", "-shared"]


def _cpu_description() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return "".join(line for line in fh if line.startswith(("model name", "flags")))[:4000]
    except OSError:
        return ""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "liquidbench"


def ptr(t: torch.Tensor | None):
    """A tensor's data pointer for a C call (None for NULL). The caller keeps the tensor alive."""
    return None if t is None else ctypes.c_void_p(t.data_ptr())


class Kernel:
    """One compiled C source, ``<name>.c`` beside this module. ``functions`` maps each exported
    function to its argument counts ``(ints, pointers)`` (ints first); :meth:`library` builds or
    loads it once per process."""

    def __init__(self, name: str, what: str, functions: dict[str, tuple[int, int]]):
        self.name, self.what, self.functions = name, what, functions
        self.source_path = Path(__file__).with_name(f"{name}.c")
        self.source = self.source_path.read_text()
        self.env_var = f"LIQUIDBENCH_{name.upper()}"
        self.build: dict = {"seconds": None, "path": None, "error": None}
        self._lib = None
        self._tried = False
        self.paths: dict[str, None] = {}  # the paths calls took since reset(), in first-use order

    def _key(self) -> str:
        text = "\0".join([self.source, " ".join(FLAGS), platform.machine(), _cpu_description()])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _compile(self) -> Path:
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not compiler:
            raise RuntimeError("no C compiler (cc, gcc or $CC) found")
        target = _cache_dir() / f"{self.name}_{self._key()}.so"
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            src = Path(tmp) / f"{self.name}.c"
            src.write_text(self.source)
            out = Path(tmp) / target.name
            subprocess.run([compiler, *FLAGS, "-o", str(out), str(src), "-lm"], check=True, capture_output=True,
                           text=True)
            os.replace(out, target)  # atomic: concurrent builds leave one complete file
        return target

    def library(self):
        """The loaded library, or None (no compiler, a failed build, or disabled)."""
        if self._tried:
            return self._lib
        self._tried = True
        if os.environ.get(self.env_var, "1") == "0":
            self.build["error"] = f"disabled by {self.env_var}=0"
            return None
        t0 = time.perf_counter()
        try:
            path = self._compile()
            lib = ctypes.CDLL(str(path))
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or ""
            self.build["error"] = f"{exc} {detail}".strip()
            log.warning("%s kernel unavailable, using the torch implementation: %s", self.what, self.build["error"])
            return None
        for fn, (ints, pointers) in self.functions.items():
            getattr(lib, fn).argtypes = [ctypes.c_int] * ints + [ctypes.c_void_p] * pointers
        self.build.update(seconds=time.perf_counter() - t0, path=str(path))
        log.info("%s kernel ready in %.2f s (build or load, once per process): %s", self.what, self.build["seconds"],
                 path)
        self._lib = lib
        return lib

    def status(self) -> str:
        """What this process's fast model ran on since :meth:`reset`, for metrics.json's env: the path
        its calls took -- "compiled" or "torch: <why>" (on a GPU "torch: tensors on cuda ..."; both,
        joined by "; ", when calls took different paths) --, or "not used" when none ran. The two
        paths agree within float32 rounding, not bit for bit, so a comparison of two runs to the bit
        needs the same path on both sides."""
        return "; ".join(self.paths) or "not used"

    def reset(self) -> None:
        """Forget the paths taken (at the start of a run, so that its status is its own)."""
        self.paths = {}

    def usable(self, *tensors: torch.Tensor, unsupported: str | None = None) -> bool:
        """Whether the compiled kernel takes these tensors (contiguity is the caller's business);
        ``unsupported`` is the caller's own reason not to use it. The path is recorded for status()."""
        if unsupported is None and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) \
                and self.library() is not None:
            if "compiled" not in self.paths:  # the common case: one pass over the tensors, as before
                self.paths["compiled"] = None
            return True
        if unsupported:
            path = f"torch: {unsupported}"
        elif any(t.device.type != "cpu" for t in tensors):
            devices = sorted({t.device.type for t in tensors} - {"cpu"})
            path = f"torch: tensors on {'/'.join(devices)} (the compiled kernel runs on the CPU)"
        elif any(t.dtype != torch.float32 for t in tensors):
            path = "torch: not float32 (the compiled kernel takes float32)"
        else:  # no library: no compiler, a failed build, or disabled
            path = f"torch: {self.build.get('error') or 'unavailable'}"
        self.paths.setdefault(path)
        return False
