"""The fast CfC's recurrence as compiled C on the CPU (optional): one call for a whole sequence's
forward, one for its backward.

Covers the fully connected CfC in all three modes, with any number of backbone layers (none:
``backbone_layers=0``, and each layer of a wired CfC, whose masked weights the caller forms) and
regular or irregular elapsed times, when no backbone dropout is active and without mixed
memory; the other cases, and tensors off the CPU or not float32, take the torch implementation in
:mod:`~liquidbench.models.cfc_fast` (same results within float32 rounding; ``LIQUIDBENCH_CFC_KERNEL=0``
forces it). Per step and block of 8 batch rows the C code does the small matrix products (state
share of backbone layer 0, the hidden layers, the four heads) with the block's accumulators in
vector registers (GCC/Clang vector extensions), over weights that stay in the L1/L2 cache, and the elementwise work beside them,
so that a step costs no dispatch. Layer 0 takes the step's input and state side by side, so
that the input's share needs no product of its own; input, elapsed times and result are
batch-major as the caller holds them; the bias gradients are summed in the backward. ``expf``
and ``tanhf`` are vectorised through glibc's libmvec where it has them (``tanhf`` since glibc 2.35; older
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

KERNEL = Kernel("cfc_kernel", "CfC", {"cfc_forward": (8, 15), "cfc_backward": (8, 19)})
library, status, usable = KERNEL.library, KERNEL.status, KERNEL.usable


def _c(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.contiguous()


def forward(mode: str, x, ts, h0, w0t, b0, hwt, hb, wht, bh, wtau, amp):
    """(out (B, T, U), xh (T, B, F + U), tanhs (L, T, B, K), aux (T, B, 3, U)) from batch-major ``x``
    (B, T, F) and ``ts`` (B, T) or None; see the C source for the other arguments, which are float32
    on the CPU (made contiguous here); ``h0`` None starts from zeros. Without a backbone ``w0t``,
    ``b0``, ``hwt`` and ``hb`` are None, ``wht`` is (F + U, H) and ``tanhs`` is empty (L = K = 0)."""
    bsz, steps, n_in = x.shape
    heads = wht.shape[1]
    if w0t is None:
        width, layers, units = 0, 0, wht.shape[0] - n_in
    else:
        width, layers, units = w0t.shape[1], hwt.shape[0] + 1, w0t.shape[0] - n_in
    args = [_c(t) for t in (x, ts, h0, w0t, b0, hwt, hb, wht, bh, wtau, amp)]  # kept alive over the call
    out = x.new_empty(bsz, steps, units)
    xh = x.new_empty(steps, bsz, n_in + units)
    tanhs = x.new_empty(layers, steps, bsz, width)
    aux = x.new_empty(steps, bsz, 3, units)
    KERNEL.library().cfc_forward(steps, bsz, n_in, units, width, layers, heads, MODES[mode], *map(ptr, args),
                                 *map(ptr, (out, xh, tanhs, aux)))
    return out, xh, tanhs, aux


def backward(mode: str, grad, ts, w0, hw, wh, wtau, amp, tanhs, aux, input_grad: bool):
    """(g_pre0 (T, B, K), g_hid (L-1, T, B, K), g_heads (T, B, H), g_b0 (K), g_hb (L-1, K), g_bh (H),
    g_wtau (U), g_amp (U), g_h0 (B, U), g_x (B, T, F) or None without ``input_grad``); ``grad``
    (B, T, U) batch-major. Without a backbone ``w0`` and ``hw`` are None, ``wh`` is (H, F + U) and
    the backbone's outputs are empty."""
    layers, steps, bsz, width = tanhs.shape
    units = grad.shape[2]
    n_in, heads = wh.shape[1] - units if w0 is None else w0.shape[1] - units, wh.shape[0]
    args = [_c(t) for t in (grad, ts, w0, hw, wh, wtau, amp, tanhs, aux)]
    new = grad.new_empty
    hidden = max(layers - 1, 0)
    outs = (new(steps, bsz, width), new(hidden, steps, bsz, width), new(steps, bsz, heads), new(width),
            new(hidden, width), new(heads), new(units), new(units), new(bsz, units),
            new(bsz, steps, n_in) if input_grad else None)
    KERNEL.library().cfc_backward(steps, bsz, n_in, units, width, layers, heads, MODES[mode], *map(ptr, args),
                                  *map(ptr, outs))
    return outs
