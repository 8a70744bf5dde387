"""The optimiser and the gradient clipping of a training step, for every model alike, as the
``optimizer_impl`` training setting (liquidbench.train.settings) says:

- ``default``: torch's own choice per device (on the CPU, Adam's for-each-parameter loop and one
  norm per gradient; on CUDA, the foreach kernels);
- ``foreach``: Adam and the clipping norm over all parameters at once (``foreach=True``);
- ``fused``: torch's fused Adam (one kernel for all parameters, on the CPU as on CUDA), clipping
  with ``foreach=True``.

They agree within float32 rounding, not bit for bit: a comparison of runs to the bit needs the
same value on both sides (it is in metrics.json's ``train_params`` and the provenance table).
Measured on the CPU: docs/measurements-history.md, "CPU step: profile-guided work towards >= 4x".
"""

from __future__ import annotations

import torch

from .settings import OPTIMIZER_IMPLS


def _check(impl: str) -> None:
    if impl not in OPTIMIZER_IMPLS:
        raise ValueError(f"training: optimizer_impl '{impl}' is unknown, expected one of {list(OPTIMIZER_IMPLS)}")


def adam(params, impl: str, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """torch's Adam over ``params`` as ``impl`` says."""
    _check(impl)
    kwargs = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(impl, {})
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **kwargs)


def clip_gradients(params, max_norm: float, impl: str) -> torch.Tensor:
    """``clip_grad_norm_`` of ``params`` to ``max_norm``, the norm over all parameters at once
    unless ``impl`` is ``default``."""
    _check(impl)
    return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=None if impl == "default" else True)
