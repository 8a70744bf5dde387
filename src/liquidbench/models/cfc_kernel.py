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
The C backward returns the gradients of each layer's pre-activations for every step; :func:`backward`
then forms the weight gradients, one large matrix product per weight in torch
(:func:`.cfc_weights.weight_grads`). :func:`forward` and :func:`backward` take the weights in the
fast CfC's one convention (:class:`~.cfc_weights.CfcWeights`; equations and the backward's
derivation: docs/fast-cells.md#cfc-equations-and-backward). The C
source is ``cfc_kernel.c`` beside this module, built and loaded by
:class:`~liquidbench.models.compiled.Kernel`.
"""

from __future__ import annotations

import torch

from .cfc_weights import LECUN_A, MODES, CfcWeights, weight_grads
from .compiled import Kernel, ptr

KERNEL = Kernel("cfc_kernel", "CfC", {"cfc_forward": (8, 15), "cfc_backward": (8, 19)})
library, status, usable = KERNEL.library, KERNEL.status, KERNEL.usable


def _c(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.contiguous()


def _heads(w: CfcWeights, merged: bool):
    """The heads as the kernel takes them: ``wh``, ``bh`` of :class:`~.cfc_weights.CfcWeights`, or,
    ``merged`` (steps of 1, default and no_gate), with time_a and time_b as one head (their sum)."""
    if not merged:
        return w.wh, w.bh
    units = w.units
    return (torch.cat((w.wh[: 2 * units], w.wh[2 * units: 3 * units] + w.wh[3 * units:])),
            torch.cat((w.bh[: 2 * units], w.bh[2 * units: 3 * units] + w.bh[3 * units:])))


def forward(mode: str, x, ts, h0, w: CfcWeights):
    """(every step's state (B, T, U), what :func:`backward` needs) from batch-major ``x`` (B, T, F)
    and ``ts`` (B, T) or None, ``h0`` (B, U) or None (zeros); float32 on the CPU."""
    bsz, steps, n_in = x.shape
    units, layers, width = w.units, w.layers, w.width
    wh, bh = _heads(w, ts is None and not w.pure)
    if layers:
        hwt = w.hw.transpose(1, 2) if w.hw is not None else x.new_empty(0, width, width)
        hb = w.hb if w.hb is not None else x.new_empty(0, width)
        backbone = (w.w0.t(), w.b0, hwt, hb)
    else:
        backbone = (None,) * 4
    args = [_c(t) for t in (x, ts, h0, *backbone, wh.t(), bh, w.w_tau, w.amp)]  # kept alive over the call
    out = x.new_empty(bsz, steps, units)
    xh = x.new_empty(steps, bsz, n_in + units)
    tanhs = x.new_empty(layers, steps, bsz, width)
    aux = x.new_empty(steps, bsz, 3, units)
    KERNEL.library().cfc_forward(steps, bsz, n_in, units, width, layers, wh.shape[0], MODES[mode], *map(ptr, args),
                                 *map(ptr, (out, xh, tanhs, aux)))
    return out, (xh, tanhs, aux, wh)


def backward(mode: str, grad, ts, w: CfcWeights, saved, input_grad: bool):
    """(dL/dx (B, T, F) or None without ``input_grad``, dL/dh0 (B, U), the gradients of ``w``) from
    ``grad`` (B, T, U) = dL/d(every step's state) and :func:`forward`'s ``saved``."""
    xh, tanhs, aux, wh = saved  # wh: the heads as the forward took them
    layers, steps, bsz, width = tanhs.shape
    units, n_in = w.units, w.inputs
    merged = wh.shape[0] == 3 * units
    hw = w.hw if w.hw is not None else (tanhs.new_empty(0, width, width) if layers else None)
    args = [_c(t) for t in (grad, ts, w.w0, hw, wh, w.w_tau, w.amp, tanhs, aux)]
    new = grad.new_empty
    hidden = max(layers - 1, 0)
    outs = (new(steps, bsz, width), new(hidden, steps, bsz, width), new(steps, bsz, wh.shape[0]), new(width),
            new(hidden, width), new(wh.shape[0]), new(units), new(units), new(bsz, units),
            new(bsz, steps, n_in) if input_grad else None)
    KERNEL.library().cfc_backward(steps, bsz, n_in, units, width, layers, wh.shape[0], MODES[mode],
                                  *map(ptr, args), *map(ptr, outs))
    g_pre0, g_hid, g_heads, g_b0, g_hb, g_bh, g_wtau, g_amp, g_h0, g_x = outs
    grads = weight_grads(w, xh, tanhs, g_pre0, g_hid, g_heads, ys_scale=LECUN_A, biases=(g_b0, g_hb, g_bh),
                         g_wtau=g_wtau if w.pure else None, g_amp=g_amp if w.pure else None)
    if merged:  # the summed gate head's gradient serves time_a and time_b alike
        gate = slice(2 * units, 3 * units)
        grads = CfcWeights(w0=grads.w0, b0=grads.b0, hw=grads.hw, hb=grads.hb,
                           wh=torch.cat((grads.wh, grads.wh[gate])), bh=torch.cat((grads.bh, grads.bh[gate])),
                           w_tau=None, amp=None)
    return g_x, g_h0, grads
