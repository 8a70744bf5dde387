"""The fast CfC's recurrence as compiled C on the CPU (optional): one call for a whole sequence's
forward, one for its backward.

Covers the fully connected (backbone) CfC in all three modes, with any number of backbone layers
and regular or irregular elapsed times, when no backbone dropout is active and without mixed
memory; the other cases, and tensors off the CPU or not float32, take the torch implementation in
:mod:`~liquidbench.models.cfc_fast` (same results within float32 rounding; ``LIQUIDBENCH_CFC_KERNEL=0``
forces it). Per step and block of 4 batch rows the C code does the small matrix products (state
share of backbone layer 0, the hidden layers, the four heads) with the block's accumulators in
vector registers (GCC/Clang vector extensions), over weights that stay in the L1/L2 cache, and the elementwise work beside them,
so that a step costs no dispatch. ``expf`` and ``tanhf``
are vectorised through glibc's libmvec where it has them (``tanhf`` since glibc 2.35; older
systems call the scalar function, which is slower but gives the same results).
The backward returns the gradients of each layer's pre-activations for every step; the weight
gradients are then one large matrix product per weight, in torch. The C source is ``cfc_kernel.c``
beside this module, built and loaded by
:class:`~liquidbench.models.compiled.Kernel`.
"""

from __future__ import annotations

import torch

from .compiled import Kernel, ptr

MODES = {"default": 0, "no_gate": 1, "pure": 2}

KERNEL = Kernel("cfc_kernel", "CfC", {"cfc_forward": (6, 13), "cfc_backward": (6, 15)})
library, status, usable = KERNEL.library, KERNEL.status, KERNEL.usable


def _c(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.contiguous()


def forward(mode: str, pre0, ts, h0, w0t, hwt, hb, wht, bh, wtau, amp):
    """(out (T, B, U), tanhs (L, T, B, K), aux (T, B, 3, U)); see the C source for the arguments,
    which are float32 on the CPU (made contiguous here); ``h0`` None starts from zeros."""
    steps, bsz, width = pre0.shape
    units, layers = w0t.shape[0], hwt.shape[0] + 1
    args = [_c(t) for t in (pre0, ts, h0, w0t, hwt, hb, wht, bh, wtau, amp)]  # kept alive over the call
    out = pre0.new_empty(steps, bsz, units)
    tanhs = pre0.new_empty(layers, steps, bsz, width)
    aux = pre0.new_empty(steps, bsz, 3, units)
    KERNEL.library().cfc_forward(steps, bsz, units, width, layers, MODES[mode], *map(ptr, args), ptr(out),
                                 ptr(tanhs), ptr(aux))
    return out, tanhs, aux


def backward(mode: str, grad, ts, w0h, hw, wh, wtau, amp, tanhs, aux):
    """(g_pre0 (T, B, K), g_hid (L-1, T, B, K), g_heads (T, B, H), g_wtau (U), g_amp (U), g_h0 (B, U))."""
    layers, steps, bsz, width = tanhs.shape
    units = w0h.shape[1]
    args = [_c(t) for t in (grad, ts, w0h, hw, wh, wtau, amp, tanhs, aux)]
    g_pre0 = grad.new_empty(steps, bsz, width)
    g_hid = grad.new_empty(layers - 1, steps, bsz, width)
    g_heads = grad.new_empty(steps, bsz, wh.shape[0])
    g_wtau, g_amp = grad.new_zeros(units), grad.new_zeros(units)
    work = grad.new_empty(bsz, units)
    KERNEL.library().cfc_backward(steps, bsz, units, width, layers, MODES[mode], *map(ptr, args),
                                  *map(ptr, (g_pre0, g_hid, g_heads, g_wtau, g_amp, work)))
    return g_pre0, g_hid, g_heads, g_wtau, g_amp, work
