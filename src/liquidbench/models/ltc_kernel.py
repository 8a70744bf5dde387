"""The fast LTC's step as one compiled loop nest on the CPU (optional).

One call computes a step's ``ode_unfolds`` unfolds for the whole batch, and one call its backward;
without mixed memory between steps, one call computes a whole sequence's steps and one its
backward (:func:`seq_forward`, :func:`seq_backward`: the same per-step code in a loop in C).
The synapse activations are either stored by the forward for the backward (``store``: K B U^2 floats a
step, where the caller asks: few units and a store within a limit, :mod:`.ltc_fast`) or computed again
in the backward (nothing of size ``(J, B, I)`` is kept). The sensory synapses, which depend on the
inputs alone, are one call each way for every batch row and step at once (:func:`sensory_forward`,
:func:`sensory_backward`). The C source, ``ltc_kernel.c`` beside this
module, is built and loaded by :class:`~liquidbench.models.compiled.Kernel`; where it cannot be, the fast LTC uses its torch
implementation instead (same results; ``LIQUIDBENCH_LTC_KERNEL=0`` forces that). Equations and the
backward's derivation: docs/fast-cells.md#ltc-equations-and-backward.
"""

from __future__ import annotations

import ctypes

import torch

from .compiled import Kernel, ptr

KERNEL = Kernel("ltc_kernel", "LTC", {"ltc_forward": (3, 11), "ltc_backward": (3, 18), "ltc_seq_forward": (4, 11),
                                     "ltc_seq_backward": (4, 19), "ltc_sensory_forward": (3, 7),
                                     "ltc_sensory_backward": (3, 13), "ltc_sigmoid": (1, 2)})
library, status, usable = KERNEL.library, KERNEL.status, KERNEL.usable


def _pre_first(*weights: torch.Tensor) -> list[torch.Tensor]:
    """The (J, I) synapse weights as the C forward takes them: (I, J), pre-synaptic neuron first."""
    return [t.t().contiguous() for t in weights]


def forward(v0, n_const, d_total, cm_t, sig_t, neg_sm, we_t, w_t, unfolds: int, store: bool):
    """(states (K+1, B, U), denominators (K, B, U), activations (K, B, J, I) or None); arguments
    contiguous float32 on the CPU. With ``store`` the synapse activations are kept for the backward
    (K B U^2 floats), which then need not compute them again."""
    bsz, units = v0.shape
    vs = v0.new_empty(unfolds + 1, bsz, units)
    dens = v0.new_empty(unfolds, bsz, units)
    ss = v0.new_empty(unfolds, bsz, units, units) if store else None
    args = [v0, n_const, d_total, cm_t, *_pre_first(sig_t, neg_sm, we_t, w_t), vs, dens]
    KERNEL.library().ltc_forward(bsz, units, unfolds, *map(ptr, args), ptr(ss))
    return vs, dens, ss


def backward(grad, vs, dens, ss, cm_t, sig_t, neg_sm, mu_t, we_t, w_t):
    """(dv0, d n_const, d d_total, d cm_t (direct term), d sig_t, d mu_t, d we_t, d w_t); ``ss`` the
    forward's stored activations or None."""
    bsz, units = grad.shape
    g = grad.clone(memory_format=torch.contiguous_format)
    outs = [torch.zeros_like(g) for _ in range(3)] + [torch.zeros_like(sig_t) for _ in range(4)]
    work = g.new_empty(2, bsz, units)
    args = [g, vs, dens, cm_t, sig_t, neg_sm, mu_t, we_t, w_t]
    KERNEL.library().ltc_backward(bsz, units, dens.shape[0], *map(ptr, args), ptr(ss), *map(ptr, [*outs, work]))
    return (g, *outs)


def seq_forward(v0, n_const, d_total, cm_t, sig_t, neg_sm, we_t, w_t, unfolds: int, store: bool):
    """A whole sequence without mixed memory in one call: ``n_const, d_total, cm_t`` (T, B, U), the
    rest as :func:`forward`. Returns (states (T, K+1, B, U), denominators (T, K, B, U), activations:
    a list of T tensors (K, B, J, I) or None); each step's last unfold ``states[:, -1]`` is the
    sequence's output. The activations are one tensor per step: a sequence's (48 MB at the study's
    shape) would be above malloc's mmap threshold and be faulted in afresh at every call."""
    steps, bsz, units = n_const.shape
    vs = v0.new_empty(steps, unfolds + 1, bsz, units)
    dens = v0.new_empty(steps, unfolds, bsz, units)
    ss = [v0.new_empty(unfolds, bsz, units, units) for _ in range(steps)] if store else None
    args = [v0, n_const, d_total, cm_t, *_pre_first(sig_t, neg_sm, we_t, w_t), vs, dens]
    KERNEL.library().ltc_seq_forward(steps, bsz, units, unfolds, *map(ptr, args), _pointers(ss))
    return vs, dens, ss


def _pointers(tensors: list[torch.Tensor] | None):
    """A C array of the tensors' data pointers (NULL for None); the caller keeps the tensors alive."""
    if tensors is None:
        return None
    return ctypes.cast((ctypes.c_void_p * len(tensors))(*(t.data_ptr() for t in tensors)), ctypes.c_void_p)


def seq_backward(grad, vs, dens, ss, cm_t, sig_t, neg_sm, mu_t, we_t, w_t):
    """From ``grad`` (T, B, U), the gradient of every step's state: (dv0, d n_const, d d_total, d cm_t
    (direct term), each (T, B, U) but dv0, then d sig_t, d mu_t, d we_t, d w_t); ``ss`` the forward's
    list of activations or None."""
    steps, unfolds, bsz, units = dens.shape
    grad = grad.contiguous()
    outs = [grad.new_zeros(steps, bsz, units) for _ in range(3)] + [torch.zeros_like(sig_t) for _ in range(4)]
    g, work = grad.new_empty(bsz, units), grad.new_empty(2, bsz, units)
    args = [grad, vs, dens, cm_t, sig_t, neg_sm, mu_t, we_t, w_t]
    KERNEL.library().ltc_seq_backward(steps, bsz, units, unfolds, *map(ptr, args), _pointers(ss),
                                      *map(ptr, [*outs, g, work]))
    return (g, *outs)


def sensory_forward(x, sig, neg_sm, we, w):
    """The sensory synapses' sums (nc, dc), each (N, U), from the mapped inputs ``x`` (N, S) of every
    batch row and step, and ``sig``, ``neg_sm`` (-sigma mu), ``we`` (w erev), ``w`` (S, U) in ncps's
    layout; contiguous float32 on the CPU."""
    rows, n_in = x.shape
    units = sig.shape[1]
    nc, dc = x.new_empty(rows, units), x.new_empty(rows, units)
    KERNEL.library().ltc_sensory_forward(rows, n_in, units, *map(ptr, (x, sig, neg_sm, we, w, nc, dc)))
    return nc, dc


def sensory_backward(x, sig, neg_sm, mu, we, w, g_nc, g_dc, input_grad: bool):
    """(dL/dx (N, S) or None without ``input_grad``, dL/dsig, dL/dmu, dL/dwe, dL/dw (S, U)) from the
    gradients of :func:`sensory_forward`'s sums."""
    rows, n_in = x.shape
    g_x = x.new_empty(rows, n_in) if input_grad else None
    outs = [torch.zeros_like(sig) for _ in range(4)]
    args = [x, sig, neg_sm, mu, we, w, g_nc.contiguous(), g_dc.contiguous()]
    KERNEL.library().ltc_sensory_backward(rows, n_in, sig.shape[1], *map(ptr, args), ptr(g_x), *map(ptr, outs))
    return (g_x, *outs)


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    """The kernel's own sigmoid of every value of ``z`` (float32 on the CPU): for its test."""
    z = z.contiguous()
    out = torch.empty_like(z)
    KERNEL.library().ltc_sigmoid(z.numel(), ptr(z), ptr(out))
    return out
