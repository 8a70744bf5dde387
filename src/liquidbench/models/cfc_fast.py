"""A fast CfC with the interface, parameters, initialisation and results of ncps's ``CfC``.

:class:`CfC` is ncps's class with its own ``forward`` (also ``liquidbench.fast.CfC``): same
constructor, state dict and initial weights from the same seed; the computation is this
module's own.

Fully connected (backbone) CfC: the input's share of the first backbone layer (and of the
mixed-memory LSTM's gates) is one matrix product over all steps, outside the loop; the four heads
(``ff1, ff2, time_a, time_b``) are one matrix product per step; and the whole recurrence runs in
one ``autograd.Function`` (:class:`_CfcSequence`) with a hand-derived backward, so that a step
costs a few plain tensor operations and no autograd bookkeeping. Without mixed memory and with no
backbone dropout active, the recurrence runs as one kernel call forward and one backward, as
:func:`.paths.choose` decides: compiled C on the CPU (:class:`_CfcSequenceC`, :mod:`.cfc_kernel`,
which takes ncps's parameters as they are and layer 0's input share inside the call), Triton on
CUDA (:class:`_CfcSequenceCompiled`, :mod:`.cfc_triton`). Wired (NCP) CfC and ``backbone_layers=0``:
ncps's cell layers with the masked weights formed once per sequence rather than once per step; on
the CPU without mixed memory each layer's whole sequence is one call of the same compiled C each
way (the heads taking the input and state directly), else step by step through autograd. A
backbone of another activation: ncps's own cell, step by step.
Operation counts of a training step (flops, transcendentals; forward, backward, weight gradients): :mod:`.cost`.
"""

from __future__ import annotations

import torch
from ncps import torch as ncps_torch
from torch import nn
from torch.nn import functional as F

from . import cfc_kernel, cfc_triton, interface, paths

LECUN_A, LECUN_B = 1.7159, 0.666


def _lecun_grad(dy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Gradient through ``y = A tanh(B a)`` given ``t = tanh(B a)``."""
    return dy * (1.0 - t * t) * (LECUN_A * LECUN_B)


class _CfcSequence(torch.autograd.Function):
    """The backbone CfC recurrence over a whole sequence, in torch (any device and dtype).

    ``mode``: "default", "no_gate" or "pure"; ``dropout``: the backbone's dropout rate when active
    (0.0 otherwise); ``pre0`` (T, B, K): the input share of backbone layer 0 plus its bias; ``ts``
    (T, B, 1) or None (steps of 1); ``h0`` (B, U) or None (zeros); ``c0`` (B, U) the mixed memory's
    initial cell or None; ``w0h`` (K, U): layer 0's state share; ``hw`` (L-1, K, K) and ``hb``
    (L-1, K) the other backbone layers, None for one layer; ``wh``, ``bh`` the heads stacked
    (ff1, ff2, time_a, time_b; pure: ff1); ``w_tau``, ``amp`` pure mode's (else None);
    ``lstm_pre`` (T, B, 4U) the mixed memory's input share and ``w_rec`` (4U, U) its recurrent
    weight (else None). Returns (T, B, U) every step's state and the mixed memory's last cell (B, U)
    (an empty tensor without mixed memory)."""

    @staticmethod
    def forward(ctx, mode: str, dropout: float, pre0, ts, h0, c0, w0h, hw, hb, wh, bh, w_tau, amp, lstm_pre, w_rec):
        keep = any(ctx.needs_input_grad)
        lstm = lstm_pre is not None
        steps, bsz, _ = pre0.shape
        units = w0h.shape[1]
        n_hidden = 0 if hw is None else hw.shape[0]
        # lecun_tanh(a) = A tanh(B a): B is folded into each layer's weights and bias once
        pre0_b, w0h_b = pre0 * LECUN_B, w0h.t() * LECUN_B
        hidden_b = [(hw[layer].t() * LECUN_B, hb[layer] * LECUN_B) for layer in range(n_hidden)]
        h = pre0.new_zeros(bsz, units) if h0 is None else h0
        c = (pre0.new_zeros(bsz, units) if c0 is None else c0) if lstm else None
        out = pre0.new_empty(steps, bsz, units)
        saved = []
        for t in range(steps):
            rec = {}
            if lstm:
                z = torch.addmm(lstm_pre[t], h, w_rec.t())
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
                ff1 = heads
                e = torch.exp(-step_ts * (w_tau.abs() + ff1.abs()))
                h = amp - amp * e * ff1
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
            ctx.mode, ctx.n_hidden, ctx.has_lstm, ctx.has_h0, ctx.has_c0 = mode, n_hidden, lstm, h0 is not None, c0 is not None
            ctx.save_for_backward(w0h, wh, hw, w_tau, amp, w_rec)
            ctx.ts = ts
            ctx.steps = saved
        return out, (c if lstm else pre0.new_zeros(0))

    @staticmethod
    def backward(ctx, grad, grad_c):
        """Derivation (one step; h the state entering it, after the mixed memory's LSTM where there
        is one; A, B lecun_tanh's constants; s the elapsed time; m_l a dropout mask or 1):

        forward  a_0 = pre0_t + W0h h, y_0 = A tanh(B a_0) m_0; a_l = W_l y_{l-1} + b_l,
                 y_l = A tanh(B a_l) m_l; q = Wh y_{L-1} + bh = (q1, q2, qa, qb);
                 default: f1 = tanh q1, f2 = tanh q2, g = sigmoid(qa s + qb), h' = f1 (1 - g) + g f2;
                 no_gate: h' = f1 + g f2;  pure: e = exp(-s (|w_tau| + |q1|)), h' = amp - amp e q1;
                 LSTM: z = lstm_pre_t + W_rec h_prev = (zi, zg, zf, zo), c' = c sigmoid(zf + 1)
                 + tanh(zi) sigmoid(zg), h = tanh(c') sigmoid(zo).
        VJPs     gh = dL/dh' (this step's output gradient plus the next step's dL/dh);
                 heads, default: dq1 = gh (1 - g)(1 - f1^2), dq2 = gh g (1 - f2^2),
                 dqa = gh (f2 - f1) g (1 - g) s, dqb = gh (f2 - f1) g (1 - g); no_gate: (1 - g) -> 1
                 in dq1 and f2 - f1 -> f2; pure: d amp = sum gh (1 - e q1), dx = gh amp q1 e s
                 (x = |w_tau| + |q1|), d w_tau = sum dx sign(w_tau), dq1 = dx sign(q1) - gh amp e;
                 backbone: dy_{L-1} = Wh^T dq, da_l = dy_l m_l A B (1 - tanh^2(B a_l)),
                 dy_{l-1} = W_l^T da_l; layer 0: dpre0_t = da_0, dh = W0h^T da_0;
                 LSTM: dc' = dc + dh sigmoid(zo)(1 - tanh^2 c'), dzi = dc' sigmoid(zg)(1 - tanh^2 zi),
                 dzg = dc' tanh(zi) sigmoid'(zg), dzf = dc' c sigmoid'(zf + 1),
                 dzo = dh tanh(c') sigmoid'(zo); dh_prev = W_rec^T dz, dc_prev = dc' sigmoid(zf + 1).
        weights  dW = sum over steps and rows of (pre-activation gradient) x (its layer's input)^T,
                 db = sum of the pre-activation gradient: one matrix product each over all steps
                 (:func:`_weight_grads`); d lstm_pre_t = dz, d W_rec = sum dz h_prev^T; the gradients
                 left after step 0 are dL/dh0 and dL/dc0 (dL/dc after the last step: the gradient of the
                 returned cell)."""
        mode, n_hidden, has_lstm = ctx.mode, ctx.n_hidden, ctx.has_lstm
        w0h, wh, hw, w_tau, amp, w_rec = ctx.saved_tensors
        ts, saved = ctx.ts, ctx.steps
        del ctx.steps
        steps = len(saved)
        bsz, units = grad.shape[1], grad.shape[2]
        new = lambda *shape: grad.new_empty(*shape)  # noqa: E731
        # per-step gradients of the pre-activations; the weight gradients are one matrix product
        # each over all steps at the end (the same sums, in one call instead of one per step)
        g_pre0 = new(steps, bsz, w0h.shape[0])
        g_heads_all = new(steps, bsz, wh.shape[0])
        g_hid = new(n_hidden, steps, bsz, w0h.shape[0])
        g_wtau = torch.zeros_like(w_tau) if mode == "pure" else None
        g_amp = torch.zeros_like(amp) if mode == "pure" else None
        g_lstm_pre = new(steps, bsz, 4 * units) if has_lstm else None
        g_h = torch.zeros_like(grad[0])
        g_c = grad_c.clone() if has_lstm else None  # dL/d(last cell), zeros unless the caller uses it
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
                ff1, e = rec["ff1"], rec["e"]
                g_amp += (gh * (1.0 - e * ff1)).sum(0, keepdim=True)
                dexp = (gh * amp * ff1 * e) * step_ts  # d/d(|w_tau| + |ff1|)
                g_wtau += dexp.sum(0, keepdim=True) * torch.sign(w_tau)
                g_heads = torch.addcmul(dexp * torch.sign(ff1), gh * amp, e, value=-1.0)
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
        g_w0h, g_hw, g_hb, g_wh, g_bh = _weight_grads(g_pre0, stacked("h_in"), g_hid, ys, g_heads_all)
        g_w_rec = g_lstm_pre.flatten(0, 1).t() @ stacked("h_prev").flatten(0, 1) if has_lstm else None
        return (None, None, g_pre0, None, g_h if ctx.has_h0 else None, g_c if ctx.has_c0 else None, g_w0h, g_hw,
                g_hb, g_wh, g_bh, g_wtau, g_amp, g_lstm_pre, g_w_rec)


def _weight_grads(g_pre0, h_in, g_hid, ys, g_heads):
    """The backbone's and heads' weight gradients from every step's pre-activation gradients, one
    matrix product per weight over all steps: ``g_pre0, h_in`` (T, B, .) layer 0 and its state
    input, ``g_hid`` (L-1, T, B, K) layers 1.., ``ys`` every layer's output (T, B, K) (a list or an
    (L, T, B, K) tensor), ``g_heads`` (T, B, H). Returns (w0h, hw (L-1, K, K) or None, hb (L-1, K)
    or None, wh, bh)."""
    flat = lambda g: g.flatten(0, 1)  # noqa: E731
    g_heads = flat(g_heads)
    n_hidden = g_hid.shape[0]
    g_hw = torch.stack([flat(g_hid[layer]).t() @ flat(ys[layer]) for layer in range(n_hidden)]) if n_hidden else None
    g_hb = g_hid.sum((1, 2)) if n_hidden else None
    return flat(g_pre0).t() @ flat(h_in), g_hw, g_hb, g_heads.t() @ flat(ys[-1]), g_heads.sum(0)


class _CfcSequenceCompiled(torch.autograd.Function):
    """:class:`_CfcSequence` without mixed memory or dropout, as one kernel call for the sequence's
    forward and one for its backward: ``kernel`` is :mod:`.cfc_triton` (Triton, CUDA; the CPU's
    compiled C takes :class:`_CfcSequenceC`; the C source states the backward's derivation at its
    top); the other arguments are :class:`_CfcSequence`'s less ``dropout``, ``c0`` and the LSTM's;
    float32."""

    @staticmethod
    def forward(ctx, kernel, mode: str, pre0, ts, h0, w0h, hw, hb, wh, bh, w_tau, amp):
        # lecun_tanh(a) = A tanh(B a): B folded into each backbone layer's weights and bias
        width = w0h.shape[0]
        hwt = hw.transpose(1, 2) * LECUN_B if hw is not None else pre0.new_empty(0, width, width)
        hbs = hb * LECUN_B if hb is not None else pre0.new_empty(0, width)
        ts2 = None if ts is None else ts.reshape(ts.shape[:2])
        wtau1, amp1 = (None, None) if w_tau is None else (w_tau.reshape(-1), amp.reshape(-1))
        out, tanhs, aux = kernel.forward(mode, pre0 * LECUN_B, ts2, h0, w0h.t() * LECUN_B, hwt, hbs, wh.t(), bh,
                                         wtau1, amp1)
        if any(ctx.needs_input_grad):
            ctx.kernel, ctx.mode, ctx.ts = kernel, mode, ts2
            ctx.save_for_backward(h0, w0h, hw, wh, w_tau, amp, out, tanhs, aux)
        return out

    @staticmethod
    def backward(ctx, grad):
        mode = ctx.mode
        h0, w0h, hw, wh, w_tau, amp, out, tanhs, aux = ctx.saved_tensors
        width = w0h.shape[0]
        hw_c = hw if hw is not None else w0h.new_empty(0, width, width)
        wtau1, amp1 = (None, None) if w_tau is None else (w_tau.reshape(-1), amp.reshape(-1))
        g_pre0, g_hid, g_heads, g_wtau, g_amp, g_h0 = ctx.kernel.backward(mode, grad, ctx.ts, w0h, hw_c, wh, wtau1,
                                                                          amp1, tanhs, aux)
        first = out.new_zeros(1, *out.shape[1:]) if h0 is None else h0.unsqueeze(0)
        h_in = torch.cat((first, out[:-1]))
        g_w0h, g_hw, g_hb, g_wh, g_bh = _weight_grads(g_pre0, h_in, g_hid, tanhs * LECUN_A, g_heads)
        if w_tau is not None:
            g_wtau, g_amp = g_wtau.view_as(w_tau), g_amp.view_as(amp)
        else:
            g_wtau = g_amp = None
        return (None, None, g_pre0, None, g_h0 if h0 is not None else None, g_w0h, g_hw, g_hb, g_wh, g_bh, g_wtau,
                g_amp)


class _CfcSequenceC(torch.autograd.Function):
    """:class:`_CfcSequence` without mixed memory or dropout on the CPU, as one call of
    :mod:`.cfc_kernel` (compiled C) for the sequence's forward and one for its backward, around which
    only the weight gradients' products run in torch (one each). Unlike :class:`_CfcSequenceCompiled`
    it takes ncps's parameters as they are (nothing is scaled, stacked or sliced in autograd): ``x``
    (B, T, F) and ``ts`` (B, T) or None batch-major; ``h0`` (B, U) or None; ``w0`` (K, F + U), ``b0``
    backbone layer 0; ``hw`` (L-1, K, K), ``hb`` (L-1, K) the other layers or None; the heads ``w1, b1``
    (ff1), ``w2, b2`` (ff2), ``wa, ba`` (time_a), ``wb, bb`` (time_b), the last three pairs None in pure
    mode with ``w_tau``, ``amp`` (else None). Without a backbone (``backbone_layers=0``, or one layer
    of a wired CfC with its masked weights) ``w0``, ``b0``, ``hw`` and ``hb`` are None and the heads
    take (U, F + U) weights. Returns every step's state (B, T, U). The C source states
    the backward's derivation at its top. With steps of 1 (``ts`` None) the gate's two heads enter
    the kernel as one (time_a + time_b) and share their gradient."""

    @staticmethod
    def forward(ctx, mode: str, x, ts, h0, w0, b0, hw, hb, w1, b1, w2, b2, wa, ba, wb, bb, w_tau, amp):
        if w0 is None:
            w0t = hwt = hbs = None
        else:
            width = w0.shape[0]
            w0t = w0.t()
            hwt = hw.transpose(1, 2).contiguous() if hw is not None else x.new_empty(0, width, width)
            hbs = hb if hb is not None else x.new_empty(0, width)
        if mode == "pure":
            wh, bh = w1, b1
        elif ts is None:  # qa + qb = (Wa + Wb) y + (ba + bb)
            wh, bh = torch.cat((w1, w2, wa + wb)), torch.cat((b1, b2, ba + bb))
        else:
            wh, bh = torch.cat((w1, w2, wa, wb)), torch.cat((b1, b2, ba, bb))
        wtau1, amp1 = (None, None) if w_tau is None else (w_tau.reshape(-1), amp.reshape(-1))
        out, xh, tanhs, aux = cfc_kernel.forward(mode, x, ts, h0, w0t, b0, hwt, hbs, wh.t(), bh, wtau1, amp1)
        if any(ctx.needs_input_grad):
            ctx.mode, ctx.has_h0, ctx.has_hw = mode, h0 is not None, hw is not None
            ctx.save_for_backward(ts, w0, hw if hw is not None else hwt, wh, w_tau, amp, xh, tanhs, aux)
        return out

    @staticmethod
    def backward(ctx, grad):
        mode = ctx.mode
        ts, w0, hw, wh, w_tau, amp, xh, tanhs, aux = ctx.saved_tensors
        wtau1, amp1 = (None, None) if w_tau is None else (w_tau.reshape(-1), amp.reshape(-1))
        g_pre0, g_hid, g_heads, g_b0, g_hb, g_bh, g_wtau, g_amp, g_h0, g_x = cfc_kernel.backward(
            mode, grad, ts, w0, hw, wh, wtau1, amp1, tanhs, aux, ctx.needs_input_grad[1])
        flat = lambda t: t.flatten(0, 1)  # noqa: E731
        # y_l = A tanh(B a_l): the products take the stored tanh values and are scaled by A after
        # as (F + U, K) and transposed after: MKL takes 35 % less time for this shape than for
        # g_pre0^T xh directly (F + U = 39 columns), measured at the study's shape
        if w0 is None:  # no backbone: the heads took [x, h]
            g_w0 = g_b0 = None
            g_wh = flat(g_heads).t() @ flat(xh)
        else:
            g_w0 = (flat(xh).t() @ flat(g_pre0)).t().contiguous()
            g_wh = (flat(g_heads).t() @ flat(tanhs[-1])).mul_(LECUN_A)
        g_hw = torch.stack([(flat(g_hid[layer]).t() @ flat(tanhs[layer])).mul_(LECUN_A)
                            for layer in range(g_hid.shape[0])]) if ctx.has_hw else None
        units = grad.shape[2]
        if mode == "pure":
            heads = (g_wh, g_bh, None, None, None, None, None, None)
            g_wtau, g_amp = g_wtau.view_as(w_tau), g_amp.view_as(amp)
        else:
            gw, gb = g_wh.split(units), g_bh.split(units)
            if ts is None:  # time_a and time_b took one head: the same gradient, in a tensor each
                gw, gb = (*gw, gw[2].clone()), (*gb, gb[2].clone())
            heads = (gw[0], gb[0], gw[1], gb[1], gw[2], gb[2], gw[3], gb[3])
            g_wtau = g_amp = None
        return (None, g_x, None, g_h0 if ctx.has_h0 else None, g_w0, g_b0, g_hw, g_hb if ctx.has_hw else None,
                *heads, g_wtau, g_amp)


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
    n_in = x.shape[-1]
    linears = [m for m in cell.backbone if isinstance(m, nn.Linear)]
    drops = [m for m in cell.backbone if isinstance(m, nn.Dropout)]
    dropout = drops[0].p if drops and training else 0.0
    w0, b0 = linears[0].weight, linears[0].bias
    hw = torch.stack([lin.weight for lin in linears[1:]]) if len(linears) > 1 else None
    hb = torch.stack([lin.bias for lin in linears[1:]]) if len(linears) > 1 else None
    head_modules = (cell.ff1,) if cell.mode == "pure" else (cell.ff1, cell.ff2, cell.time_a, cell.time_b)
    head_params = tuple(p for m in head_modules for p in (m.weight, m.bias))
    w_tau, amp = (cell.w_tau, cell.A) if cell.mode == "pure" else (None, None)
    tensors = [t for t in (x, w0, b0, *head_params, h0, hw, hb, w_tau, amp, elapsed) if t is not None]
    unsupported = "mixed memory" if rnn.use_mixed else "backbone dropout in training" if dropout else None
    path = paths.choose("cfc", *tensors, unsupported=unsupported)
    if path == paths.COMPILED:
        heads = head_params + (None,) * (8 - len(head_params))
        return _CfcSequenceC.apply(cell.mode, x, elapsed, h0, w0, b0, hw, hb, *heads, w_tau, amp), None
    xt = x.transpose(0, 1)
    pre0 = F.linear(xt, w0[:, :n_in], b0)
    wh, bh = (torch.cat(head_params[0::2]), torch.cat(head_params[1::2])) if len(head_params) > 2 else head_params
    ts = None if elapsed is None else elapsed.t().unsqueeze(-1)
    if rnn.use_mixed:
        lstm_pre, w_rec = rnn.lstm.input_map(xt), rnn.lstm.recurrent_map.weight
        out, c = _CfcSequence.apply(cell.mode, dropout, pre0, ts, h0, c0, w0[:, n_in:], hw, hb, wh, bh, w_tau, amp,
                                    lstm_pre, w_rec)
        return out.transpose(0, 1), c
    if path == paths.TRITON:
        out = _CfcSequenceCompiled.apply(cfc_triton, cell.mode, pre0, ts, h0, w0[:, n_in:], hw, hb, wh, bh, w_tau,
                                         amp)
    else:
        out, _ = _CfcSequence.apply(cell.mode, dropout, pre0, ts, h0, None, w0[:, n_in:], hw, hb, wh, bh, w_tau, amp,
                                    None, None)
    return out.transpose(0, 1), None


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
        n_in = layer.ff1.weight.shape[1] - layer.hidden_size
        mask = layer.sparsity_mask
        w1 = layer.ff1.weight if mask is None else layer.ff1.weight * mask
        entry = [(w1[:, :n_in], w1[:, n_in:])]
        if layer.mode != "pure":
            w2 = layer.ff2.weight if mask is None else layer.ff2.weight * mask
            w = torch.cat([w2, layer.time_a.weight, layer.time_b.weight])
            entry.append((w[:, :n_in], w[:, n_in:], torch.cat([layer.ff2.bias, layer.time_a.bias, layer.time_b.bias])))
        weights.append(entry)
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
            hs[index] = _wired_layer(layer, xin, hs[index], weights[index], ts)
            xin = hs[index]
        outputs.append(xin)
    return torch.stack(outputs, dim=1), torch.cat(hs, 1), c


def _compiled_layers(layers, sizes, x: torch.Tensor, elapsed: torch.Tensor | None, h0):
    """:func:`layers_sequence` without mixed memory through :class:`_CfcSequenceC` (no backbone),
    one layer's whole sequence at a time: (every step's output (B, T, O), last state (B, H))."""
    hs = [None] * len(layers) if h0 is None else h0.split(sizes, dim=1)
    xin, last = x, []
    for layer, h in zip(layers, hs):
        mask = layer.sparsity_mask
        masked = lambda lin: lin.weight if mask is None else lin.weight * mask  # noqa: E731
        if layer.mode == "pure":
            heads = (masked(layer.ff1), layer.ff1.bias) + (None,) * 6
            w_tau, amp = layer.w_tau, layer.A
        else:
            heads = (masked(layer.ff1), layer.ff1.bias, masked(layer.ff2), layer.ff2.bias, layer.time_a.weight,
                     layer.time_a.bias, layer.time_b.weight, layer.time_b.bias)
            w_tau = amp = None
        xin = _CfcSequenceC.apply(layer.mode, xin, elapsed, h, None, None, None, None, *heads, w_tau, amp)
        last.append(xin[:, -1])
    return xin, torch.cat(last, 1)


class CfC(ncps_torch.CfC):
    """ncps's ``CfC`` (1.0.1: the same constructor, defaults, parameters, state dict and initial
    weights from the same seed) computed by this package's fast recurrences; ``forward(input,
    hx=None, timespans=None)`` returns ``(output, hx)`` as ncps's does. A backbone of lecun_tanh
    layers runs fused (:class:`_CfcSequence`, on the CPU the compiled C of :mod:`.cfc_kernel`);
    wired NCPs and ``backbone_layers=0`` run their masked layers with weights formed once per
    sequence; another backbone activation runs ncps's own cell step by step (same results, not
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
