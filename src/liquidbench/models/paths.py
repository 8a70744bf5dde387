"""The one place that picks where each fast model's heavy part runs, per device and dtype.

``"compiled"``: the C kernel (:mod:`.ltc_kernel`, :mod:`.cfc_kernel`), float32 on the CPU where it
builds; ``"triton"``: the Triton kernels (:mod:`.ltc_triton`, :mod:`.cfc_triton`), float32 on CUDA where Triton is
installed (and, under Triton's interpreter ``TRITON_INTERPRET=1``, on the CPU: how they are tested
without a GPU); ``"torch"``: the model's torch version (any device and dtype, the same results
within float32 rounding). The fast models ask :func:`choose` and take the path it names; metrics.json's
env records what each kernel did (``env.ltc_kernel``, ``env.cfc_kernel``).
"""

from __future__ import annotations

import torch

from . import cfc_kernel, cfc_triton, ltc_kernel, ltc_triton

COMPILED, TRITON, TORCH = "compiled", "triton", "torch"
PATHS = (COMPILED, TRITON, TORCH)
KERNELS = {"ltc": ltc_kernel, "cfc": cfc_kernel}
TRITON_KERNELS = {"ltc": ltc_triton, "cfc": cfc_triton}
_TAKEN: dict[str, set[str]] = {}  # model -> the paths chosen in this process


def taken() -> str:
    """The paths this process's fast models took, for metrics.json's env (``env.fast_paths``):
    e.g. "cfc: triton; ltc: torch", or "not used"."""
    return "; ".join(f"{m}: {', '.join(sorted(p))}" for m, p in sorted(_TAKEN.items())) or "not used"


def reset() -> None:
    """Forget the paths taken (at the start of a run, so that its record is its own)."""
    _TAKEN.clear()


def choose(model: str, *tensors: torch.Tensor, unsupported: str | None = None, triton: bool = True) -> str:
    """The path for ``model`` ("ltc" or "cfc") on these tensors: Triton for float32 CUDA tensors
    (CPU tensors under Triton's interpreter) where Triton is usable, compiled C for float32 CPU
    tensors where the kernel is built (and not disabled), else torch. ``unsupported`` is the
    caller's own reason to take the torch version (e.g. mixed memory), recorded with the compiled
    kernel's status (``env.ltc_kernel``, ``env.cfc_kernel``); ``triton=False``: the case has no
    Triton kernel (compiled C or torch)."""
    if model not in KERNELS:
        raise ValueError(f"fast model '{model}' is unknown, expected one of {sorted(KERNELS)}")
    path = TORCH if unsupported else _choose(model, tensors, triton)
    if unsupported:
        KERNELS[model].usable(*tensors, unsupported=unsupported)
    _TAKEN.setdefault(model, set()).add(path)
    return path


def _choose(model: str, tensors, triton: bool) -> str:
    kernel = TRITON_KERNELS.get(model) if triton else None
    if kernel is not None and kernel.available() is None and all(t.dtype == torch.float32 for t in tensors):
        device = "cpu" if kernel.interpreted() else "cuda"
        if all(t.device.type == device for t in tensors):
            return TRITON
    if KERNELS[model].usable(*tensors):
        return COMPILED
    return TORCH
