"""One CfC cell's weights as the fast CfC's paths take them: :class:`CfcWeights`, built once per
sequence by :func:`of_cell`, and :func:`weight_grads`, the weight gradients from every step's
pre-activation gradients. The torch recurrence in :mod:`.cfc_fast`, the C kernel ``cfc_kernel.c``
and the Triton kernels of :mod:`.cfc_triton` all take this bundle.

Equations and the backward's derivation: docs/fast-cells.md#cfc-equations-and-backward.

**One convention.** :class:`CfcWeights` holds ncps's parameters as they are (unscaled, torch's
``(out, in)`` layout), built once per sequence by :func:`of_cell` (autograd records the stacking
and the wiring's masks, so each path returns the gradients of these tensors and nothing more):
backbone layer 0 ``w0`` (K, F + U) and ``b0`` (K), which read the step's input and the state side
by side; the other backbone layers ``hw`` (L-1, K, K) and ``hb`` (L-1, K); the heads stacked
``wh`` (H, K) and ``bh`` (H) in the order ff1, ff2, time_a, time_b (H = 4U; pure mode: ff1 alone,
H = U); pure mode's ``w_tau`` and ``amp`` (U). Without a backbone (``backbone_layers=0``, and each
layer of a wired CfC) ``w0``, ``b0``, ``hw``, ``hb`` are None and the heads read ``[x, h]``:
``wh`` is (H, F + U). Each kernel module adapts the bundle to its own code in its wrapper (the C
kernel merges time_a and time_b with steps of 1; Triton folds lecun_tanh's inner constant into
the backbone), never in the autograd Functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

LECUN_A, LECUN_B = 1.7159, 0.666  # lecun_tanh(a) = A tanh(B a), ncps's backbone activation

DEFAULT, NO_GATE, PURE = 0, 1, 2  # the modes as the C and Triton kernels number them
MODES = {"default": DEFAULT, "no_gate": NO_GATE, "pure": PURE}


@dataclass(frozen=True)
class CfcWeights:
    """One CfC cell's weights in the one convention (the module's docstring): built once per
    sequence by :func:`of_cell`; :meth:`tensors` is how an ``autograd.Function`` takes them (in
    field order) and ``CfcWeights(*tensors)`` how it gets them back; a backward returns the
    gradients as a ``CfcWeights`` of the same fields (None where a field is None)."""
    w0: torch.Tensor | None
    b0: torch.Tensor | None
    hw: torch.Tensor | None
    hb: torch.Tensor | None
    wh: torch.Tensor
    bh: torch.Tensor
    w_tau: torch.Tensor | None
    amp: torch.Tensor | None

    def tensors(self) -> tuple:
        """The fields in order (written out: this runs twice a training step)."""
        return self.w0, self.b0, self.hw, self.hb, self.wh, self.bh, self.w_tau, self.amp

    @property
    def pure(self) -> bool:
        return self.w_tau is not None

    @property
    def units(self) -> int:
        return self.wh.shape[0] if self.pure else self.wh.shape[0] // 4

    @property
    def layers(self) -> int:
        """Backbone layers (0: none)."""
        return 0 if self.w0 is None else 1 + (0 if self.hw is None else self.hw.shape[0])

    @property
    def width(self) -> int:
        """Backbone width K (0 without a backbone)."""
        return 0 if self.w0 is None else self.w0.shape[0]

    @property
    def inputs(self) -> int:
        """F, the input's features: the columns of the first layer that reads [x, h], less U."""
        first = self.wh if self.w0 is None else self.w0
        return first.shape[1] - self.units


def of_cell(cell: nn.Module) -> CfcWeights:
    """The weights of ncps ``CfCCell`` ``cell`` (fully connected with a backbone of lecun_tanh
    layers, with ``backbone_layers=0``, or one layer of a wired CfC, whose ff1 and ff2 weights are
    masked by its ``sparsity_mask``), formed through autograd once per sequence."""
    mask = cell.sparsity_mask
    masked = lambda lin: lin.weight if mask is None else lin.weight * mask  # noqa: E731
    if cell.mode == "pure":
        wh, bh, w_tau, amp = masked(cell.ff1), cell.ff1.bias, cell.w_tau.reshape(-1), cell.A.reshape(-1)
    else:
        wh = torch.cat((masked(cell.ff1), masked(cell.ff2), cell.time_a.weight, cell.time_b.weight))
        bh = torch.cat((cell.ff1.bias, cell.ff2.bias, cell.time_a.bias, cell.time_b.bias))
        w_tau = amp = None
    if cell.backbone_layers < 1:
        return CfcWeights(w0=None, b0=None, hw=None, hb=None, wh=wh, bh=bh, w_tau=w_tau, amp=amp)
    linears = [m for m in cell.backbone if isinstance(m, nn.Linear)]
    hidden = linears[1:]
    return CfcWeights(w0=linears[0].weight, b0=linears[0].bias,
                      hw=torch.stack([lin.weight for lin in hidden]) if hidden else None,
                      hb=torch.stack([lin.bias for lin in hidden]) if hidden else None,
                      wh=wh, bh=bh, w_tau=w_tau, amp=amp)


def weight_grads(w: CfcWeights, xh: torch.Tensor, ys, g_pre0, g_hid, g_heads, *, ys_scale: float = 1.0,
                 biases=None, g_wtau=None, g_amp=None) -> CfcWeights:
    """The gradients of ``w`` from every step's pre-activation gradients, one matrix product per
    weight over all steps (docs/fast-cells.md#cfc-weight-gradients): ``xh`` (T, B, F + U) every step's
    [x, h]; ``ys`` every backbone layer's output, or its tanh with ``ys_scale`` = A (a list or an
    (L, T, B, K) tensor; empty without a backbone); ``g_pre0`` (T, B, K) layer 0's pre-activation
    gradient (None without a backbone), ``g_hid`` (L-1, T, B, K) the other layers', ``g_heads``
    (T, B, H) the heads'; ``biases`` (b0, hb, bh) where the kernel summed them already; pure
    mode's ``g_wtau``, ``g_amp`` as the recurrence summed them."""
    flat = lambda t: t.flatten(0, 1)  # noqa: E731
    g_q = flat(g_heads)
    g_b0, g_hb, g_bh = biases or (None, None, g_q.sum(0))
    if w.w0 is None:
        return CfcWeights(w0=None, b0=None, hw=None, hb=None, wh=g_q.t() @ flat(xh), bh=g_bh, w_tau=g_wtau,
                          amp=g_amp)
    n_hidden = w.layers - 1
    scaled = lambda g, y: (flat(g).t() @ flat(y)).mul_(ys_scale)  # noqa: E731
    if biases is None:
        g_b0, g_hb = flat(g_pre0).sum(0), g_hid.sum((1, 2)) if n_hidden else None
    # (F + U, K) and transposed after: MKL took 35 % less time for this shape than for g_pre0^T xh
    # directly (F + U = 39 columns), measured at the study's shape
    return CfcWeights(w0=(flat(xh).t() @ flat(g_pre0)).t().contiguous(), b0=g_b0,
                      hw=torch.stack([scaled(g_hid[layer], ys[layer]) for layer in range(n_hidden)]) if n_hidden else None,
                      hb=g_hb if n_hidden else None, wh=scaled(g_heads, ys[-1]), bh=g_bh, w_tau=g_wtau, amp=g_amp)
