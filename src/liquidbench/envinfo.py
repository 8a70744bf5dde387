"""What a measurement ran on: software versions, host, CPU model, source commit."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The source commit: $LIQUIDBENCH_GIT_COMMIT (set in container images), else git, else 'unknown'."""
    if commit := os.environ.get("LIQUIDBENCH_GIT_COMMIT"):
        return commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def environment() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ncps": _version("ncps"),
        "numpy": _version("numpy"),
        "liquidbench": _version("liquidbench"),
        "cuda": torch.version.cuda,
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "fast_paths": fast_paths(),
        "git_commit": git_commit(),
        **kernel_status(),
    }


def fast_paths() -> str:
    """Where this process's fast LTC and CfC ran (compiled C, Triton or torch, per model)."""
    from .models import paths

    return paths.taken()


def kernel_status() -> dict[str, str]:
    """Which path each fast model took in this process since :func:`reset_kernel_status` (``ltc_kernel``,
    ``cfc_kernel``: "compiled", "torch: <why>" -- on a GPU "torch: tensors on cuda ..." -- or "not used")."""
    from .models import cfc_kernel, ltc_kernel

    return {"ltc_kernel": ltc_kernel.status(), "cfc_kernel": cfc_kernel.status()}


def reset_kernel_status() -> None:
    """Start a run's record of the paths the fast models take (one process may train several runs)."""
    from .models import cfc_kernel, ltc_kernel, paths

    ltc_kernel.KERNEL.reset()
    cfc_kernel.KERNEL.reset()
    paths.reset()
