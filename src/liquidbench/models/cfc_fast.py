"""A fast CfC with the interface, parameters, initialisation and results of ncps's ``CfC``.

:class:`CfC` is ncps's class with its own ``forward`` (also ``liquidbench.fast.CfC``): same
constructor, state dict and initial weights from the same seed; the computation is this
module's own.

A cell's weights are taken once per sequence as one bundle in one convention
(:class:`.cfc_weights.CfcWeights`; the equations and the backward's derivation:
docs/fast-cells.md#cfc-equations-and-backward), and the whole recurrence runs in one
``autograd.Function`` with a hand-derived backward, so that a step costs no autograd bookkeeping.
Fully connected CfC with a backbone of
lecun_tanh layers: without mixed memory and with no backbone dropout active, one kernel call
forward and one backward (:class:`_CfcCompiledSequence`), as :func:`.paths.choose` decides:
compiled C on the CPU (:mod:`.cfc_kernel`), Triton on CUDA (:mod:`.cfc_triton`); otherwise torch
(:class:`_CfcSequence`: the input's share of the first backbone layer and of the mixed-memory
LSTM's gates is one matrix product over all steps, a step a few plain tensor operations). Wired
(NCP) CfC and ``backbone_layers=0``: ncps's cell layers with the masked weights formed once per
sequence; on the CPU without mixed memory each layer's whole sequence is one call of the same
compiled C each way (the heads taking the input and state directly), else step by step through
autograd. A backbone of another activation: ncps's own cell, step by step.
Operation counts of a training step (flops, transcendentals; forward, backward, weight gradients): :mod:`.cost`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from ncps import torch as ncps_torch
from torch import nn
from torch.nn import functional as F

from . import cfc_kernel, cfc_triton, interface, paths
from .cfc_weights import LECUN_A, LECUN_B, CfcWeights, of_cell, weight_grads


@dataclass
class _Step:
    """What the torch recurrence keeps of one step for its backward (names as in
    docs/fast-cells.md#cfc-forward): the state entering the backbone ``h_in``, each backbone layer's tanh,
    dropout mask and output; the heads' activations (default and no_gate: ``f1``, ``f2``, ``g``;
    pure: ``q1``, ``e``); with mixed memory the LSTM's ``h_prev``, ``c_prev`` and activations."""
    h_in: torch.Tensor
    tanhs: list = field(default_factory=list)
    masks: list = field(default_factory=list)
    ys: list = field(default_factory=list)
    f1: torch.Tensor | None = None
    f2: torch.Tensor | None = None
    g: torch.Tensor | None = None
    q1: torch.Tensor | None = None
    e: torch.Tensor | None = None
    lstm: tuple | None = None  # (h_prev, c_prev, tanh(zi), sigmoid(zg), sigmoid(zf + 1), sigmoid(zo), tanh(c'))


class _CfcSequence(torch.autograd.Function):
    """A CfC with a backbone over a whole sequence, in torch (any device and dtype, mixed memory and
    backbone dropout included): ``mode`` "default", "no_gate" or "pure"; ``dropout`` the backbone's
    dropout rate when active (0.0 otherwise); ``x`` (B, T, F) and ``ts`` (B, T) or None (steps of 1)
    batch-major; ``h0`` (B, U) or None (zeros); ``c0`` (B, U) the mixed memory's initial cell or
    None; ``lstm_pre`` (T, B, 4U) the mixed memory's input share and ``w_rec`` (4U, U) its recurrent
    weight (else None); ``weights`` the tensors of a :class:`~.cfc_weights.CfcWeights`. Returns
    every step's state (B, T, U) and the mixed memory's last cell (B, U) (an empty tensor without
    mixed memory). The derivation: docs/fast-cells.md#cfc-equations-and-backward."""

    @staticmethod
    def forward(ctx, mode: str, dropout: float, x, ts, h0, c0, lstm_pre, w_rec, *weights):
        w = CfcWeights(*weights)
        keep = any(ctx.needs_input_grad)
        lstm = lstm_pre is not None
        bsz, steps, n_in = x.shape
        units, n_hidden = w.units, w.layers - 1
        # the input's share of layer 0 for all steps at once; lecun_tanh(a) = A tanh(B a): B is
        # folded into each layer's weights and bias once
        pre0_b = torch.addmm(w.b0, x.transpose(0, 1).reshape(steps * bsz, n_in), w.w0[:, :n_in].t())
        pre0_b = pre0_b.view(steps, bsz, -1).mul_(LECUN_B)
        w0h_b = w.w0[:, n_in:].t() * LECUN_B
        hidden_b = [(w.hw[layer].t() * LECUN_B, w.hb[layer] * LECUN_B) for layer in range(n_hidden)]
        ts_t = None if ts is None else ts.t().unsqueeze(-1)  # (T, B, 1)
        h = x.new_zeros(bsz, units) if h0 is None else h0
        c = (x.new_zeros(bsz, units) if c0 is None else c0) if lstm else None
        out = x.new_empty(steps, bsz, units)
        saved = []
        for t in range(steps):
            lstm_values = None
            if lstm:
                z = torch.addmm(lstm_pre[t], h, w_rec.t())
                i, ig, fg, og = z.chunk(4, 1)
                ti, sig_i, sig_f, sig_o = torch.tanh(i), torch.sigmoid(ig), torch.sigmoid(fg + 1.0), torch.sigmoid(og)
                c_new = torch.addcmul(c * sig_f, ti, sig_i)
                tc = torch.tanh(c_new)
                lstm_values = (h, c, ti, sig_i, sig_f, sig_o, tc)
                h = tc * sig_o
                c = c_new
            rec = _Step(h_in=h, lstm=lstm_values)
            tanhs, masks, ys = rec.tanhs, rec.masks, rec.ys
            tl = torch.tanh_(torch.addmm(pre0_b[t], h, w0h_b))
            y = tl * LECUN_A
            tanhs.append(tl)
            for layer in range(n_hidden):
                ys.append(y)
                tl = torch.tanh_(torch.addmm(hidden_b[layer][1], y, hidden_b[layer][0]))
                y = tl * LECUN_A
                tanhs.append(tl)
                if dropout > 0.0:
                    mask = torch.empty_like(y).bernoulli_(1.0 - dropout).div_(1.0 - dropout)
                    y = y * mask
                    masks.append(mask)
            ys.append(y)
            heads = torch.addmm(w.bh, y, w.wh.t())
            step_ts = 1.0 if ts_t is None else ts_t[t]
            if mode == "pure":
                ff1 = heads
                e = torch.exp(-step_ts * (w.w_tau.abs() + ff1.abs()))
                h = w.amp - w.amp * e * ff1
                rec.q1, rec.e = ff1, e
            else:
                f1, f2 = torch.tanh(heads[:, : 2 * units]).chunk(2, 1)
                ta, tb = heads[:, 2 * units:].chunk(2, 1)
                tint = torch.sigmoid(ta + tb if ts_t is None else torch.addcmul(tb, ta, step_ts))
                h = torch.addcmul(f1, tint, f2 if mode == "no_gate" else f2 - f1)
                rec.f1, rec.f2, rec.g = f1, f2, tint
            out[t] = h
            if keep:
                saved.append(rec)
        if keep:
            ctx.mode, ctx.has_lstm, ctx.has_h0, ctx.has_c0 = mode, lstm, h0 is not None, c0 is not None
            ctx.save_for_backward(x, w_rec, *weights)
            ctx.ts = ts_t
            ctx.steps = saved
        return out.transpose(0, 1), (c if lstm else x.new_zeros(0))

    @staticmethod
    def backward(ctx, grad, grad_c):
        """The vector-Jacobian products of docs/fast-cells.md#cfc-backward step by step from the
        last, the weight gradients after (:func:`.cfc_weights.weight_grads`)."""
        mode, has_lstm = ctx.mode, ctx.has_lstm
        x, w_rec, *weights = ctx.saved_tensors
        w = CfcWeights(*weights)
        ts, saved = ctx.ts, ctx.steps
        del ctx.steps
        steps, n_hidden = len(saved), w.layers - 1
        bsz, units, n_in = grad.shape[0], grad.shape[2], x.shape[2]
        grad = grad.transpose(0, 1)  # (T, B, U)
        w0h, hw, wh = w.w0[:, n_in:], w.hw, w.wh
        new = lambda *shape: grad.new_empty(*shape)  # noqa: E731
        # per-step gradients of the pre-activations; the weight gradients are one matrix product
        # each over all steps at the end (the same sums, in one call instead of one per step)
        g_pre0 = new(steps, bsz, w.width)
        g_heads_all = new(steps, bsz, wh.shape[0])
        g_hid = new(n_hidden, steps, bsz, w.width)
        g_wtau = torch.zeros_like(w.w_tau) if mode == "pure" else None
        g_amp = torch.zeros_like(w.amp) if mode == "pure" else None
        g_lstm_pre = new(steps, bsz, 4 * units) if has_lstm else None
        g_h = torch.zeros_like(grad[0])
        g_c = grad_c.clone() if has_lstm else None  # dL/d(last cell), zeros unless the caller uses it
        # The local derivatives depend only on the saved activations, not on the incoming
        # gradient: form them for all steps at once, so that a step's backward is a handful of
        # operations (multiply, matrix product) instead of one per elementwise term.
        if mode != "pure":
            f1, f2, tint = (torch.stack([getattr(rec, k) for rec in saved]) for k in ("f1", "f2", "g"))
            gate = tint * (1.0 - tint)
            heads_jac = torch.stack((
                1.0 - f1 * f1 if mode == "no_gate" else (1.0 - tint) * (1.0 - f1 * f1),
                tint * (1.0 - f2 * f2),
                gate * (f2 if mode == "no_gate" else f2 - f1),
                gate * (f2 if mode == "no_gate" else f2 - f1),
            ), dim=2)  # (T, B, 4, U)
            if ts is not None:
                heads_jac[:, :, 2] *= ts
        lecun_jac = []
        for layer in range(n_hidden + 1):
            tl = torch.stack([rec.tanhs[layer] for rec in saved])
            jac = (1.0 - tl * tl).mul_(LECUN_A * LECUN_B)
            if layer > 0 and saved[0].masks:
                jac *= torch.stack([rec.masks[layer - 1] for rec in saved])  # dropout after layer
            lecun_jac.append(jac)
        for t in range(steps - 1, -1, -1):
            rec = saved[t]
            gh = g_h + grad[t]
            step_ts = 1.0 if ts is None else ts[t]
            if mode == "pure":
                ff1, e = rec.q1, rec.e
                g_amp += (gh * (1.0 - e * ff1)).sum(0)
                dexp = (gh * w.amp * ff1 * e) * step_ts  # d/d(|w_tau| + |ff1|)
                g_wtau += dexp.sum(0) * torch.sign(w.w_tau)
                g_heads = torch.addcmul(dexp * torch.sign(ff1), gh * w.amp, e, value=-1.0)
                g_heads_all[t] = g_heads
            else:
                g_heads = g_heads_all[t]
                torch.mul(heads_jac[t], gh.unsqueeze(1), out=g_heads.view(bsz, 4, units))
            dy = g_heads @ wh
            for layer in range(n_hidden - 1, -1, -1):
                da = torch.mul(dy, lecun_jac[layer + 1][t], out=g_hid[layer, t])
                dy = da @ hw[layer]
            da = torch.mul(dy, lecun_jac[0][t], out=g_pre0[t])
            g_h = da @ w0h
            if has_lstm:
                _, c_prev, ti, sig_i, sig_f, sig_o, tc = rec.lstm
                dc = g_c + g_h * sig_o * (1.0 - tc * tc)
                dz = g_lstm_pre[t]
                parts = dz.view(bsz, 4, units).unbind(1)
                torch.mul(dc * sig_i, 1.0 - ti * ti, out=parts[0])
                torch.mul(dc * ti, sig_i * (1.0 - sig_i), out=parts[1])
                torch.mul(dc * c_prev, sig_f * (1.0 - sig_f), out=parts[2])
                torch.mul(g_h * tc, sig_o * (1.0 - sig_o), out=parts[3])
                g_h = dz @ w_rec
                g_c = dc * sig_f

        xh = torch.cat((x.transpose(0, 1), torch.stack([rec.h_in for rec in saved])), 2)
        ys = [torch.stack([rec.ys[layer] for rec in saved]) for layer in range(n_hidden + 1)]
        grads = weight_grads(w, xh, ys, g_pre0, g_hid, g_heads_all, g_wtau=g_wtau, g_amp=g_amp)
        g_x = (g_pre0 @ w.w0[:, :n_in]).transpose(0, 1) if ctx.needs_input_grad[2] else None
        if has_lstm:
            g_w_rec = g_lstm_pre.flatten(0, 1).t() @ torch.cat([rec.lstm[0] for rec in saved])
        else:
            g_w_rec = None
        return (None, None, g_x, None, g_h if ctx.has_h0 else None, g_c if ctx.has_c0 else None, g_lstm_pre, g_w_rec,
                *grads.tensors())


class _CfcCompiledSequence(torch.autograd.Function):
    """A CfC without mixed memory or active dropout as one kernel call for the sequence's forward and
    one for its backward: ``kernel`` :mod:`.cfc_kernel` (compiled C, CPU) or :mod:`.cfc_triton`
    (Triton, CUDA; with a backbone), whose ``forward`` and ``backward`` take the weights as a
    :class:`~.cfc_weights.CfcWeights` and return every step's state and the gradients of
    ``x`` (B, T, F), ``h0`` (B, U) or None (zeros) and the weights; ``ts`` (B, T) or None (steps of
    1); float32. The derivation: docs/fast-cells.md#cfc-equations-and-backward."""

    @staticmethod
    def forward(ctx, kernel, mode: str, x, ts, h0, *weights):
        out, saved = kernel.forward(mode, x, ts, h0, CfcWeights(*weights))
        if any(ctx.needs_input_grad):
            ctx.kernel, ctx.mode, ctx.has_h0, ctx.n_weights = kernel, mode, h0 is not None, len(weights)
            ctx.save_for_backward(ts, *weights, *saved)
        return out

    @staticmethod
    def backward(ctx, grad):
        ts, *rest = ctx.saved_tensors
        weights, saved = CfcWeights(*rest[: ctx.n_weights]), rest[ctx.n_weights:]
        g_x, g_h0, grads = ctx.kernel.backward(ctx.mode, grad, ts, weights, saved, ctx.needs_input_grad[2])
        return (None, None, g_x, None, g_h0 if ctx.has_h0 else None, *grads.tensors())


def _layer_step(mode: str, w: CfcWeights, w_x: torch.Tensor, w_h: torch.Tensor, xin, h, ts):
    """One step of a CfC cell without backbone through autograd (the forward of
    docs/fast-cells.md#cfc-forward):
    ``w_x``, ``w_h`` the input's and the state's columns of the heads' weight ``w.wh``."""
    q = torch.addmm(torch.addmm(w.bh, xin, w_x.t()), h, w_h.t())
    if mode == "pure":
        return w.amp - w.amp * torch.exp(-ts * (w.w_tau.abs() + q.abs())) * q
    units = w.units
    f1, f2 = torch.tanh(q[:, : 2 * units]).chunk(2, 1)
    ta, tb = q[:, 2 * units:].chunk(2, 1)
    gate = torch.sigmoid(ta * ts + tb)
    return f1 + gate * f2 if mode == "no_gate" else f1 * (1.0 - gate) + gate * f2


FUSED, LAYERS, NCPS_CELL = "fused", "layers", "ncps cell"


def engine(rnn: nn.Module) -> str:
    """How the fast CfC runs ncps module ``rnn``: ``"fused"`` (one autograd.Function for the
    recurrence: a backbone of lecun_tanh layers), ``"layers"`` (cells without backbone: wired NCPs
    and ``backbone_layers=0``; masked weights formed once per sequence, a layer's sequence at a time
    in the compiled C, or autograd step by step) or ``"ncps cell"``
    (backbones of another activation: ncps's own cell, step by step)."""
    cell = rnn.rnn_cell
    if hasattr(cell, "_layers") or cell.backbone_layers < 1:
        return LAYERS
    acts = [m for m in cell.backbone if not isinstance(m, (nn.Linear, nn.Dropout))]
    return FUSED if all(type(m).__name__ == "LeCun" for m in acts) else NCPS_CELL


def backbone_sequence(rnn: nn.Module, x: torch.Tensor, elapsed: torch.Tensor | None, h0, c0, training: bool):
    """The fully connected CfC of ncps module ``rnn`` over batch-first ``x`` (B, T, F) with elapsed
    times (B, T) or None, from state ``h0`` (and cell ``c0`` with mixed memory; None: zeros).
    Returns every step's state (B, T, U) and the last cell (B, U) or None."""
    cell = rnn.rnn_cell
    drops = [m for m in cell.backbone if isinstance(m, nn.Dropout)]
    dropout = drops[0].p if drops and training else 0.0
    w = of_cell(cell)
    tensors = [t for t in (x, h0, elapsed, *w.tensors()) if t is not None]
    unsupported = "mixed memory" if rnn.use_mixed else "backbone dropout in training" if dropout else None
    path = paths.choose("cfc", *tensors, unsupported=unsupported)
    if path != paths.TORCH:
        kernel = cfc_kernel if path == paths.COMPILED else cfc_triton
        return _CfcCompiledSequence.apply(kernel, cell.mode, x, elapsed, h0, *w.tensors()), None
    if not rnn.use_mixed:
        out, _ = _CfcSequence.apply(cell.mode, dropout, x, elapsed, h0, None, None, None, *w.tensors())
        return out, None
    lstm_pre, w_rec = rnn.lstm.input_map(x.transpose(0, 1)), rnn.lstm.recurrent_map.weight
    return _CfcSequence.apply(cell.mode, dropout, x, elapsed, h0, c0, lstm_pre, w_rec, *w.tensors())


def layers_sequence(rnn: nn.Module, x: torch.Tensor, elapsed: torch.Tensor | None, h0, c0):
    """CfCs whose cells have no backbone: ncps's wired (NCP) cell, layer after layer, or one cell
    with ``backbone_layers=0``; the masked weights are formed once per sequence. Without mixed
    memory each layer runs its whole sequence in one call of the compiled C each way where
    :func:`.paths.choose` says so (a layer's state depends on its own and on the layer below's
    outputs of the same step only, so one layer's sequence can run before the next one's); else
    step by step through autograd. Returns (every step's output (B, T, O), last state (B, H), last
    cell or None)."""
    cell = rnn.rnn_cell
    layers = cell._layers if hasattr(cell, "_layers") else [cell]
    sizes = cell.layer_sizes if hasattr(cell, "_layers") else [rnn.state_size]
    params = [p for layer in layers for p in layer.parameters()]
    tensors = [t for t in (x, h0, elapsed, *params) if t is not None]
    unsupported = "mixed memory" if rnn.use_mixed else None
    if paths.choose("cfc", *tensors, unsupported=unsupported, triton=False) == paths.COMPILED:
        return (*_compiled_layers(layers, sizes, x, elapsed, h0), None)
    weights = []
    for layer in layers:
        w = of_cell(layer)
        n_in = w.inputs
        weights.append((w, w.wh[:, :n_in], w.wh[:, n_in:]))
    bsz, steps, _ = x.shape
    h = x.new_zeros(bsz, rnn.state_size) if h0 is None else h0
    hs = list(h.split(sizes, dim=1))
    c = None
    if rnn.use_mixed:
        c = x.new_zeros(bsz, rnn.state_size) if c0 is None else c0
        lstm_pre = rnn.lstm.input_map(x).unbind(1)
    outputs = []
    for t in range(steps):
        ts = 1.0 if elapsed is None else elapsed[:, t: t + 1]
        if rnn.use_mixed:
            z = lstm_pre[t] + F.linear(torch.cat(hs, 1), rnn.lstm.recurrent_map.weight)
            i, ig, fg, og = z.chunk(4, 1)
            c = c * torch.sigmoid(fg + 1.0) + torch.tanh(i) * torch.sigmoid(ig)
            hs = list((torch.tanh(c) * torch.sigmoid(og)).split(sizes, dim=1))
        xin = x[:, t]
        for index, layer in enumerate(layers):
            hs[index] = _layer_step(layer.mode, *weights[index], xin, hs[index], ts)
            xin = hs[index]
        outputs.append(xin)
    return torch.stack(outputs, dim=1), torch.cat(hs, 1), c


def _compiled_layers(layers, sizes, x: torch.Tensor, elapsed: torch.Tensor | None, h0):
    """:func:`layers_sequence` without mixed memory through :class:`_CfcCompiledSequence` (the C
    kernel without backbone), one layer's whole sequence at a time: (every step's output (B, T, O),
    last state (B, H))."""
    hs = [None] * len(layers) if h0 is None else h0.split(sizes, dim=1)
    xin, last = x, []
    for layer, h in zip(layers, hs):
        xin = _CfcCompiledSequence.apply(cfc_kernel, layer.mode, xin, elapsed, h, *of_cell(layer).tensors())
        last.append(xin[:, -1])
    return xin, torch.cat(last, 1)


class CfC(ncps_torch.CfC):
    """ncps's ``CfC`` (1.0.1: the same constructor, defaults, parameters, state dict and initial
    weights from the same seed) computed by this package's fast recurrences; ``forward(input,
    hx=None, timespans=None)`` returns ``(output, hx)`` as ncps's does. A backbone of lecun_tanh
    layers runs fused (:class:`_CfcCompiledSequence` or :class:`_CfcSequence`); wired NCPs and
    ``backbone_layers=0`` run their masked layers with weights formed once per sequence; another backbone activation runs ncps's own cell step by step (same results, not
    faster; :attr:`engine` says which). Elapsed times: see :mod:`.interface`."""

    def __init__(self, input_size, units, proj_size=None, return_sequences=True, batch_first=True,
                 mixed_memory=False, mode="default", activation="lecun_tanh", backbone_units=None,
                 backbone_layers=None, backbone_dropout=None):
        super().__init__(input_size, units, proj_size=proj_size, return_sequences=return_sequences,
                         batch_first=batch_first, mixed_memory=mixed_memory, mode=mode, activation=activation,
                         backbone_units=backbone_units, backbone_layers=backbone_layers,
                         backbone_dropout=backbone_dropout)
        self.engine = engine(self)
        if self.engine in (FUSED, LAYERS):
            # build (or load) the compiled recurrence now, so that its one-time compilation is part
            # of the job's set-up and never of a training epoch's time
            cfc_kernel.library()

    def forward(self, input, hx=None, timespans=None):
        x, h0, c0, elapsed, batched = interface.prepare(self, input, hx, timespans)
        if self.engine == FUSED:
            outputs, c = backbone_sequence(self, x, elapsed, h0, c0, self.training)
            h = outputs[:, -1]
        elif self.engine == LAYERS:
            outputs, h, c = layers_sequence(self, x, elapsed, h0, c0)
        else:
            outputs, h, c = interface.step_by_step(self, x, elapsed, h0, c0)
        if not self.return_sequences:
            outputs = outputs[:, -1:]
        return interface.finish(self, self.fc(outputs), h, c, batched)


class FastCfcCore(nn.Module):
    """Runs a fast :class:`CfC` over a batch-first sequence (the study's ``impl: fast``); every
    step's output."""

    def __init__(self, rnn: CfC):
        super().__init__()
        if not isinstance(rnn, CfC):
            raise TypeError(f"FastCfcCore runs liquidbench's fast CfC, got {type(rnn).__name__}")
        self.rnn = rnn

    def forward(self, x: torch.Tensor, elapsed: torch.Tensor | None) -> torch.Tensor:
        return self.rnn(x, timespans=elapsed)[0]

    def run(self, x: torch.Tensor, elapsed: torch.Tensor | None, state=None):
        """(every step's output, the last state) from ``state`` (ncps's hx)."""
        return self.rnn(x, hx=state, timespans=elapsed)
