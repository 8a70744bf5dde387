"""The one place that picks where each fast model's heavy part runs, per device and dtype.

``"compiled"``: the C kernel (:mod:`.ltc_kernel`, :mod:`.cfc_kernel`), float32 on the CPU where it
builds; ``"torch"``: the model's torch version (any device and dtype, the same results within
float32 rounding). The fast models ask :func:`choose` and take the path it names; metrics.json's
env records what each kernel did (``env.ltc_kernel``, ``env.cfc_kernel``).
"""

from __future__ import annotations

import torch

from . import cfc_kernel, ltc_kernel

COMPILED, TORCH = "compiled", "torch"
PATHS = (COMPILED, TORCH)
KERNELS = {"ltc": ltc_kernel, "cfc": cfc_kernel}


def choose(model: str, *tensors: torch.Tensor) -> str:
    """The path for ``model`` ("ltc" or "cfc") on these tensors: compiled C for float32 CPU tensors
    where the kernel is built (and not disabled), else torch."""
    if model not in KERNELS:
        raise ValueError(f"fast model '{model}' is unknown, expected one of {sorted(KERNELS)}")
    if KERNELS[model].usable(*tensors):
        return COMPILED
    return TORCH
