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


def choose(model: str, *tensors: torch.Tensor) -> str:
    """The path for ``model`` ("ltc" or "cfc") on these tensors: Triton for float32 CUDA tensors
    (CPU tensors under Triton's interpreter) where Triton is usable, compiled C for float32 CPU
    tensors where the kernel is built (and not disabled), else torch."""
    if model not in KERNELS:
        raise ValueError(f"fast model '{model}' is unknown, expected one of {sorted(KERNELS)}")
    path = _choose(model, tensors)
    _TAKEN.setdefault(model, set()).add(path)
    return path


def _choose(model: str, tensors) -> str:
    kernel = TRITON_KERNELS.get(model)
    if kernel is not None and kernel.available() is None and all(t.dtype == torch.float32 for t in tensors):
        device = "cpu" if kernel.interpreted() else "cuda"
        if all(t.device.type == device for t in tensors):
            return TRITON
    if KERNELS[model].usable(*tensors):
        return COMPILED
    return TORCH
