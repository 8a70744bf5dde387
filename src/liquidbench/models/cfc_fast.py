"""A fast CfC with the parameters, initialisation and results of ncps's ``CfC``.

As for the fast LTC, the ncps ``CfC`` module the model is built from stays its parameter container
(``self.rnn``): same state dict, same initial weights from the same seed; the computation is this
module's own.

Fully connected (backbone) CfC: the input's share of the first backbone layer (and of the
mixed-memory LSTM's gates) is one matrix product over all steps, outside the loop; the four heads
(``ff1, ff2, time_a, time_b``) are one matrix product per step; and the whole recurrence runs in
one ``autograd.Function`` (:class:`_CfcSequence`) with a hand-derived backward, so that a step
costs a few plain tensor operations and no autograd bookkeeping. On the CPU, without mixed
memory and with no backbone dropout active, that recurrence runs as compiled C instead
(:class:`_CfcSequenceCompiled`, :mod:`.cfc_kernel`): one call per sequence forward and one
backward, no per-step dispatch. Wired (NCP) CfC: ncps's layered cell, with the masked weights
formed once per sequence rather than once per step, through autograd.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import cfc_kernel

LECUN_A, LECUN_B = 1.7159, 0.666


def _lecun_grad(dy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Gradient through ``y = A tanh(B a)`` given ``t = tanh(B a)``."""
    return dy * (1.0 - t * t) * (LECUN_A * LECUN_B)


class _CfcSequence(torch.autograd.Function):
    """The backbone CfC recurrence over a whole sequence.

    ``pre0`` (T, B, K): input share of backbone layer 0 plus its bias; ``ts`` (T, B, 1) or None
    (steps of 1); ``w0h`` (K, U): layer 0's state share; ``hidden`` a tuple of (weight, bias) for
    backbone layers 1.. flattened; ``wh, bh`` the heads stacked; ``pure`` the (w_tau, A) pair or
    empty; ``lstm``: (pre (T, B, 4U), recurrent weight) or empty. Returns (T, B, U)."""

    @staticmethod
    def forward(ctx, mode, n_hidden, dropout, pre0, ts, w0h, wh, bh, *rest):
        keep = any(ctx.needs_input_grad)
        hidden = rest[: 2 * n_hidden]
        rest = rest[2 * n_hidden:]
        pure = rest[:2] if mode == "pure" else ()
        lstm = rest[len(pure):]
        steps, bsz, _ = pre0.shape
        # lecun_tanh(a) = A tanh(B a): B is folded into each layer's weights and bias once
        pre0_b, w0h_b = pre0 * LECUN_B, w0h.t() * LECUN_B
        hidden_b = [(w.t() * LECUN_B, b * LECUN_B) for w, b in zip(hidden[0::2], hidden[1::2])]
        units = w0h.shape[1]
        h = pre0.new_zeros(bsz, units)
        c = pre0.new_zeros(bsz, units) if lstm else None
        out = pre0.new_empty(steps, bsz, units)
        saved = []
        for t in range(steps):
            rec = {}
            if lstm:
                z = torch.addmm(lstm[0][t], h, lstm[1].t())
                i, ig, fg, og = z.chunk(4, 1)
                ti, sig_i, sig_f, sig_o = torch.tanh(i), torch.sigmoid(ig), torch.sigmoid(fg + 1.0), torch.sigmoid(og)
                c_new = torch.addcmul(c * sig_f, ti, sig_i)
                tc = torch.tanh(c_new)
                rec.update(h_prev=h, c_prev=c, ti=ti, sig_i=sig_i, sig_f=sig_f, sig_o=sig_o, tc=tc)
                h = tc * sig_o
                c = c_new
            rec["h_in"] = h
            tanhs, masks, ys = [], [], []
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
            heads = torch.addmm(bh, y, wh.t())
            step_ts = 1.0 if ts is None else ts[t]
            if mode == "pure":
                w_tau, big_a = pure
                ff1 = heads
                e = torch.exp(-step_ts * (w_tau.abs() + ff1.abs()))
                h = big_a - big_a * e * ff1
                rec.update(ff1=ff1, e=e)
            else:
                f1, f2 = torch.tanh(heads[:, : 2 * units]).chunk(2, 1)
                ta, tb = heads[:, 2 * units:].chunk(2, 1)
                tint = torch.sigmoid(ta + tb if ts is None else torch.addcmul(tb, ta, step_ts))
                h = torch.addcmul(f1, tint, f2 if mode == "no_gate" else f2 - f1)
                rec.update(f1=f1, f2=f2, tint=tint)
            out[t] = h
            if keep:
                rec.update(tanhs=tanhs, masks=masks, ys=ys)
                saved.append(rec)
        if keep:
            ctx.mode, ctx.n_hidden, ctx.has_lstm = mode, n_hidden, bool(lstm)
            ctx.save_for_backward(w0h, wh, *hidden, *pure, *lstm[1:])
            ctx.ts = ts
            ctx.steps = saved
        return out

    @staticmethod
    def backward(ctx, grad):
        mode, n_hidden, has_lstm = ctx.mode, ctx.n_hidden, ctx.has_lstm
        tensors = ctx.saved_tensors
        w0h, wh = tensors[:2]
        hidden = tensors[2: 2 + 2 * n_hidden]
        rest = tensors[2 + 2 * n_hidden:]
        pure = rest[:2] if mode == "pure" else ()
        w_rec = rest[len(pure)] if has_lstm else None
        ts, saved = ctx.ts, ctx.steps
        del ctx.steps
        steps = len(saved)
        bsz, units = grad.shape[1], grad.shape[2]
        new = lambda *shape: grad.new_empty(*shape)  # noqa: E731
        # per-step gradients of the pre-activations; the weight gradients are one matrix product
        # each over all steps at the end (the same sums, in one call instead of one per step)
        g_pre0 = new(steps, bsz, w0h.shape[0])
        g_heads_all = new(steps, bsz, wh.shape[0])
        g_hidden_all = [new(steps, bsz, hidden[2 * layer].shape[0]) for layer in range(n_hidden)]
        g_pure = [torch.zeros_like(p) for p in pure]
        g_lstm_pre = new(steps, bsz, 4 * units) if has_lstm else None
        g_h = torch.zeros_like(grad[0])
        g_c = torch.zeros_like(grad[0]) if has_lstm else None
        # The local derivatives depend only on the saved activations, not on the incoming
        # gradient: form them for all steps at once, so that a step's backward is a handful of
        # operations (multiply, matrix product) instead of one per elementwise term.
        if mode != "pure":
            f1, f2, tint = (torch.stack([rec[k] for rec in saved]) for k in ("f1", "f2", "tint"))
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
            tl = torch.stack([rec["tanhs"][layer] for rec in saved])
            jac = (1.0 - tl * tl).mul_(LECUN_A * LECUN_B)
            if layer > 0 and saved[0]["masks"]:
                jac *= torch.stack([rec["masks"][layer - 1] for rec in saved])  # dropout after layer
            lecun_jac.append(jac)
        for t in range(steps - 1, -1, -1):
            rec = saved[t]
            gh = g_h + grad[t]
            step_ts = 1.0 if ts is None else ts[t]
            if mode == "pure":
                w_tau, big_a = pure
                ff1, e = rec["ff1"], rec["e"]
                g_pure[1] += (gh * (1.0 - e * ff1)).sum(0, keepdim=True)
                de = -gh * big_a * ff1
                dexp = -(de * e) * step_ts  # d/d(|w_tau| + |ff1|)
                g_pure[0] += dexp.sum(0, keepdim=True) * torch.sign(w_tau)
                g_heads = torch.addcmul(dexp * torch.sign(ff1), gh * big_a, e, value=-1.0)
                g_heads_all[t] = g_heads
            else:
                g_heads = g_heads_all[t]
                torch.mul(heads_jac[t], gh.unsqueeze(1), out=g_heads.view(bsz, 4, units))
            dy = g_heads @ wh
            for layer in range(n_hidden - 1, -1, -1):
                da = torch.mul(dy, lecun_jac[layer + 1][t], out=g_hidden_all[layer][t])
                dy = da @ hidden[2 * layer]
            da = torch.mul(dy, lecun_jac[0][t], out=g_pre0[t])
            g_h = da @ w0h
            if has_lstm:
                tc, sig_o, sig_f, sig_i, ti = rec["tc"], rec["sig_o"], rec["sig_f"], rec["sig_i"], rec["ti"]
                dc = g_c + g_h * sig_o * (1.0 - tc * tc)
                dz = g_lstm_pre[t]
                parts = dz.view(bsz, 4, units).unbind(1)
                torch.mul(dc * sig_i, 1.0 - ti * ti, out=parts[0])
                torch.mul(dc * ti, sig_i * (1.0 - sig_i), out=parts[1])
                torch.mul(dc * rec["c_prev"], sig_f * (1.0 - sig_f), out=parts[2])
                torch.mul(g_h * tc, sig_o * (1.0 - sig_o), out=parts[3])
                g_h = dz @ w_rec
                g_c = dc * sig_f

        def stacked(key, index=None):
            return torch.stack([rec[key] if index is None else rec[key][index] for rec in saved])

        ys = [stacked("ys", layer) for layer in range(n_hidden + 1)]
        grads = [None, None, None, g_pre0, None,
                 *_weight_grads(g_pre0, stacked("h_in"), g_hidden_all, ys, g_heads_all), *g_pure]
        if has_lstm:
            grads += [g_lstm_pre, g_lstm_pre.flatten(0, 1).t() @ stacked("h_prev").flatten(0, 1)]
        return tuple(grads)


def _weight_grads(g_pre0, h_in, g_hidden, ys, g_heads) -> list[torch.Tensor]:
    """The backbone's and heads' weight gradients from every step's pre-activation gradients, one
    matrix product per weight over all steps: ``g_pre0, h_in`` (T, B, .) layer 0 and its state
    input, ``g_hidden`` layers 1.. and ``ys`` every layer's output (T, B, K), ``g_heads`` (T, B, H).
    Returns [w0h, wh, bh, then weight and bias of each hidden layer]."""
    flat = lambda g: g.flatten(0, 1)  # noqa: E731
    g_heads = flat(g_heads)
    grads = [flat(g_pre0).t() @ flat(h_in), g_heads.t() @ flat(ys[-1]), g_heads.sum(0)]
    for g, y in zip(g_hidden, ys):
        g = flat(g)
        grads += [g.t() @ flat(y), g.sum(0)]
    return grads


class _CfcSequenceCompiled(torch.autograd.Function):
    """:class:`_CfcSequence` without mixed memory or dropout, in compiled C (:mod:`.cfc_kernel`):
    the same arguments less ``dropout`` and the LSTM's."""

    @staticmethod
    def forward(ctx, mode, n_hidden, pre0, ts, w0h, wh, bh, *rest):
        hidden = rest[: 2 * n_hidden]
        pure = rest[2 * n_hidden:]
        # lecun_tanh(a) = A tanh(B a): B folded into each backbone layer's weights and bias
        width = w0h.shape[0]
        hwt = torch.stack(hidden[0::2]).transpose(1, 2) * LECUN_B if n_hidden else pre0.new_empty(0, width, width)
        hb = torch.stack(hidden[1::2]) * LECUN_B if n_hidden else pre0.new_empty(0, width)
        ts2 = None if ts is None else ts.reshape(ts.shape[:2])
        wtau, amp = (p.reshape(-1) for p in pure) if pure else (None, None)
        out, tanhs, aux = cfc_kernel.forward(mode, pre0 * LECUN_B, ts2, w0h.t() * LECUN_B, hwt, hb, wh.t(), bh,
                                             wtau, amp)
        if any(ctx.needs_input_grad):
            ctx.mode, ctx.n_hidden, ctx.ts = mode, n_hidden, ts2
            ctx.save_for_backward(w0h, wh, *hidden, *pure, out, tanhs, aux)
        return out

    @staticmethod
    def backward(ctx, grad):
        mode, n_hidden = ctx.mode, ctx.n_hidden
        w0h, wh, *rest = ctx.saved_tensors
        hidden, pure, (out, tanhs, aux) = rest[: 2 * n_hidden], rest[2 * n_hidden: -3], rest[-3:]
        hw = torch.stack(hidden[0::2]) if n_hidden else w0h.new_empty(0, w0h.shape[0], w0h.shape[0])
        wtau, amp = (p.reshape(-1) for p in pure) if pure else (None, None)
        g_pre0, g_hid, g_heads, g_wtau, g_amp = cfc_kernel.backward(mode, grad, ctx.ts, w0h, hw, wh, wtau, amp, tanhs,
                                                                    aux)
        h_in = torch.cat((out.new_zeros(1, *out.shape[1:]), out[:-1]))
        grads = [None, None, g_pre0, None, *_weight_grads(g_pre0, h_in, g_hid, tanhs * LECUN_A, g_heads)]
        if pure:
            grads += [g_wtau.view_as(pure[0]), g_amp.view_as(pure[1])]
        return tuple(grads)


def _wired_layer(layer: nn.Module, xin: torch.Tensor, h: torch.Tensor, weights, ts):
    """One step of a wired CfC layer (ncps's ``CfCCell`` without backbone, masked heads)."""
    ff1 = F.linear(xin, weights[0][0]) + F.linear(h, weights[0][1]) + layer.ff1.bias
    if layer.mode == "pure":
        return -layer.A * torch.exp(-ts * (torch.abs(layer.w_tau) + torch.abs(ff1))) * ff1 + layer.A
    rest = F.linear(xin, weights[1][0]) + F.linear(h, weights[1][1]) + weights[1][2]
    ff2, ta, tb = rest.chunk(3, 1)
    ff1, ff2 = torch.tanh(ff1), torch.tanh(ff2)
    tint = torch.sigmoid(ta * ts + tb)
    if layer.mode == "no_gate":
        return ff1 + tint * ff2
    return ff1 * (1.0 - tint) + tint * ff2


class FastCfcCore(nn.Module):
    """Runs the CfC of an ncps ``CfC`` module over a batch-first sequence; every step's output."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        cell = rnn.rnn_cell
        if getattr(rnn, "proj_size", None) is not None:
            raise ValueError("the fast CfC does not support proj_size")
        if not hasattr(cell, "_layers"):
            acts = [m for m in cell.backbone if not isinstance(m, (nn.Linear, nn.Dropout))] if cell.backbone else []
            if cell.backbone_layers < 1 or any(type(m).__name__ != "LeCun" for m in acts):
                raise ValueError("the fast CfC supports backbones of one or more lecun_tanh layers")
            # build (or load) the compiled recurrence now, so that its one-time compilation is part
            # of the job's set-up and never of a training epoch's time
            cfc_kernel.library()
        self.rnn = rnn

    def forward(self, x: torch.Tensor, elapsed: torch.Tensor | None) -> torch.Tensor:
        if hasattr(self.rnn.rnn_cell, "_layers"):
            return self._wired(x, elapsed)
        rnn, cell = self.rnn, self.rnn.rnn_cell
        n_in = x.shape[-1]
        linears = [m for m in cell.backbone if isinstance(m, nn.Linear)]
        drops = [m for m in cell.backbone if isinstance(m, nn.Dropout)]
        dropout = drops[0].p if drops and self.training else 0.0
        xt = x.transpose(0, 1)
        w0 = linears[0].weight
        pre0 = F.linear(xt, w0[:, :n_in], linears[0].bias)
        hidden = [p for lin in linears[1:] for p in (lin.weight, lin.bias)]
        if cell.mode == "pure":
            wh, bh, extra = cell.ff1.weight, cell.ff1.bias, [cell.w_tau, cell.A]
        else:
            heads = (cell.ff1, cell.ff2, cell.time_a, cell.time_b)
            wh = torch.cat([m.weight for m in heads])
            bh = torch.cat([m.bias for m in heads])
            extra = []
        if rnn.use_mixed:
            extra += [rnn.lstm.input_map(xt), rnn.lstm.recurrent_map.weight]
        ts = None if elapsed is None else elapsed.t().unsqueeze(-1)
        unsupported = "mixed memory" if rnn.use_mixed else "backbone dropout in training" if dropout else None
        if cfc_kernel.usable(pre0, w0, wh, *hidden, *extra, unsupported=unsupported):
            out = _CfcSequenceCompiled.apply(cell.mode, len(linears) - 1, pre0, ts, w0[:, n_in:], wh, bh, *hidden,
                                             *extra)
        else:
            out = _CfcSequence.apply(cell.mode, len(linears) - 1, dropout, pre0, ts, w0[:, n_in:], wh, bh, *hidden,
                                     *extra)
        return out.transpose(0, 1)

    def _wired(self, x: torch.Tensor, elapsed: torch.Tensor | None) -> torch.Tensor:
        rnn, cell = self.rnn, self.rnn.rnn_cell
        sizes = cell.layer_sizes
        weights = []
        for layer in cell._layers:
            n_in = layer.ff1.weight.shape[1] - layer.hidden_size
            w1 = layer.ff1.weight * layer.sparsity_mask
            entry = [(w1[:, :n_in], w1[:, n_in:])]
            if layer.mode != "pure":
                w = torch.cat([layer.ff2.weight * layer.sparsity_mask, layer.time_a.weight, layer.time_b.weight])
                entry.append((w[:, :n_in], w[:, n_in:], torch.cat([layer.ff2.bias, layer.time_a.bias, layer.time_b.bias])))
            weights.append(entry)
        bsz, steps, _ = x.shape
        hs = list(x.new_zeros(bsz, rnn.state_size).split(sizes, dim=1))
        if rnn.use_mixed:
            c = x.new_zeros(bsz, rnn.state_size)
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
            for index, layer in enumerate(cell._layers):
                hs[index] = _wired_layer(layer, xin, hs[index], weights[index], ts)
                xin = hs[index]
            outputs.append(xin)
        return torch.stack(outputs, dim=1)
