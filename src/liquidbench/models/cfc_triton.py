"""The fast CfC's recurrence as Triton kernels (the CUDA path): one launch for a whole sequence's
forward, one for its backward, the same structure as the C kernel (:mod:`.cfc_kernel`, whose
source states the forward per mode and the backward's vector-Jacobian products; this file
computes the same terms). Its arguments are :class:`~.cfc_fast._CfcSequenceCompiled`'s: layer 0's
input share ``pre0`` formed beforehand, weights scaled by lecun_tanh's inner constant, time-major
tensors, four heads stacked (the C kernel, since issue 23, takes ncps's parameters unscaled).

Each program takes a block of ``BB`` batch rows through every step; the state, the weights and
each step's small matrix products (``tl.dot`` in IEEE float32, never TF32) stay on the chip.
Units and backbone widths are padded to powers of two (at least 16, ``tl.dot``'s smallest) with
zero weights, which keep the padded columns at zero. The weight gradients are one matrix product
each over all steps, in torch, as for the C kernel. Covers what the C kernel covers (backbone of
lecun_tanh layers, every mode, regular or irregular steps, no mixed memory or active dropout).

Triton is optional (``pip install -c constraints.txt triton``, the version torch's CUDA wheel
requires): where it is missing or disabled (``LIQUIDBENCH_TRITON=0``) the CUDA path is torch.
Verified without a GPU: Triton's interpreter (``TRITON_INTERPRET=1``) runs these kernels on CPU
tensors, and ``triton.compile`` builds them for sm_80 and sm_90 (tests/test_triton.py).
"""

from __future__ import annotations

import os

import torch

from .cfc_kernel import MODES

try:  # optional: the CUDA path of the fast CfC
    import triton
    import triton.language as tl
except ImportError as exc:  # pragma: no cover - exercised where Triton is absent
    triton = tl = None
    IMPORT_ERROR = str(exc)
else:
    IMPORT_ERROR = None

LA, LB = 1.7159, 0.666
ENV_VAR = "LIQUIDBENCH_TRITON"
BB = 16  # batch rows per program
# warps per program: with 8, neither kernel spills registers at the study's shape (32 units,
# backbone 64; sm_80 and sm_90, tests/test_triton.py); with 4 the backward does
NUM_WARPS = 8


def available() -> str | None:
    """None where the Triton kernels can run, else why not."""
    if os.environ.get(ENV_VAR, "1") == "0":
        return f"disabled by {ENV_VAR}=0"
    return None if triton is not None else f"triton not importable ({IMPORT_ERROR})"


def interpreted() -> bool:
    """Triton's interpreter is on: the kernels run on CPU tensors (how they are tested here)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def _block(n: int) -> int:
    return max(16, 1 << (n - 1).bit_length())


if triton is not None:
    _LA, _LB = tl.constexpr(LA), tl.constexpr(LB)  # kernels read globals only as constexpr
    _CHUNK = tl.constexpr(16)  # columns per product in the forward (tl.dot's smallest)
    _PRECISION = tl.constexpr("ieee")  # float32 products, as the CPU's (TF32 would miss 1e-5)

    @triton.jit
    def _tanh(x):
        return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)

    @triton.jit
    def _sigmoid(x):
        return 1.0 / (1.0 + tl.exp(-x))

    @triton.jit
    def _sign(x):
        return tl.where(x > 0.0, 1.0, tl.where(x < 0.0, -1.0, 0.0))

    @triton.jit
    def cfc_forward_kernel(pre0, ts, h0, w0t, hwt, hb, wht, bh, wtau, amp, out, tanhs, aux, T, B, U, K, L,
                           MODE: tl.constexpr, HAS_TS: tl.constexpr, HAS_H0: tl.constexpr, BB: tl.constexpr,
                           BU: tl.constexpr, BK: tl.constexpr):
        """Arguments as the C kernel's cfc_forward (scaled by LB where it says so). The backbone's
        products go by chunks of 16 columns, each layer's output read back from ``tanhs`` (written
        just before, a barrier between): a thread then holds 16-long operands instead of
        BK-long ones, which keeps the forward free of register spills at a backbone of 64."""
        rb = tl.program_id(0) * BB + tl.arange(0, BB)
        ru = tl.arange(0, BU)
        rc = tl.arange(0, _CHUNK)
        mb, mu = rb < B, ru < U
        m_bu = mb[:, None] & mu[None, :]
        H = U if MODE == 2 else 4 * U
        if HAS_H0:
            h = tl.load(h0 + rb[:, None] * U + ru[None, :], mask=m_bu, other=0.0)
        else:
            h = tl.zeros((BB, BU), dtype=tl.float32)
        for t in range(T):
            row = t * B + rb
            # layer 0: a = pre0_t + h W0h (W0h scaled), column chunk by column chunk
            for c in tl.static_range(0, BK, _CHUNK):
                mc = (c + rc) < K
                m_bc = mb[:, None] & mc[None, :]
                w0 = tl.load(w0t + ru[:, None] * K + (c + rc)[None, :], mask=mu[:, None] & mc[None, :], other=0.0)
                a = tl.load(pre0 + row[:, None] * K + (c + rc)[None, :], mask=m_bc, other=0.0)
                a += tl.dot(h, w0, input_precision=_PRECISION)
                tl.store(tanhs + row[:, None] * K + (c + rc)[None, :], _tanh(a), mask=m_bc)
            tl.debug_barrier()
            for layer in range(1, L):
                prev = tanhs + ((layer - 1) * T * B + row)[:, None] * K
                for c in tl.static_range(0, BK, _CHUNK):
                    mc = (c + rc) < K
                    a = tl.zeros((BB, _CHUNK), dtype=tl.float32)
                    a += tl.load(hb + (layer - 1) * K + c + rc, mask=mc, other=0.0)[None, :]
                    for d in tl.static_range(0, BK, _CHUNK):
                        md = (d + rc) < K
                        y = _LA * tl.load(prev + (d + rc)[None, :], mask=mb[:, None] & md[None, :], other=0.0)
                        w = tl.load(hwt + (layer - 1) * K * K + (d + rc)[:, None] * K + (c + rc)[None, :],
                                    mask=md[:, None] & mc[None, :], other=0.0)
                        a += tl.dot(y, w, input_precision=_PRECISION)
                    tl.store(tanhs + (layer * T * B + row)[:, None] * K + (c + rc)[None, :], _tanh(a),
                             mask=mb[:, None] & mc[None, :])
                tl.debug_barrier()
            # heads: q_j = bh_j + y_{L-1} Wh_j over chunks of y's columns
            last = tanhs + ((L - 1) * T * B + row)[:, None] * K
            q = tl.zeros((BB, BU), dtype=tl.float32) + tl.load(bh + ru, mask=mu, other=0.0)[None, :]
            if MODE != 2:
                q1 = tl.zeros((BB, BU), dtype=tl.float32) + tl.load(bh + U + ru, mask=mu, other=0.0)[None, :]
                qa = tl.zeros((BB, BU), dtype=tl.float32) + tl.load(bh + 2 * U + ru, mask=mu, other=0.0)[None, :]
                qb = tl.zeros((BB, BU), dtype=tl.float32) + tl.load(bh + 3 * U + ru, mask=mu, other=0.0)[None, :]
            for d in tl.static_range(0, BK, _CHUNK):
                md = (d + rc) < K
                y = _LA * tl.load(last + (d + rc)[None, :], mask=mb[:, None] & md[None, :], other=0.0)
                m_du = md[:, None] & mu[None, :]
                wrow = wht + (d + rc)[:, None] * H
                q += tl.dot(y, tl.load(wrow + ru[None, :], mask=m_du, other=0.0), input_precision=_PRECISION)
                if MODE != 2:
                    q1 += tl.dot(y, tl.load(wrow + (U + ru)[None, :], mask=m_du, other=0.0), input_precision=_PRECISION)
                    qa += tl.dot(y, tl.load(wrow + (2 * U + ru)[None, :], mask=m_du, other=0.0),
                                 input_precision=_PRECISION)
                    qb += tl.dot(y, tl.load(wrow + (3 * U + ru)[None, :], mask=m_du, other=0.0),
                                 input_precision=_PRECISION)
            if HAS_TS:
                s = tl.load(ts + row, mask=mb, other=1.0)[:, None]
            else:
                s = 1.0
            x = aux + row[:, None] * 3 * U + ru[None, :]
            if MODE == 2:
                wt = tl.load(wtau + ru, mask=mu, other=0.0)
                am = tl.load(amp + ru, mask=mu, other=0.0)
                e = tl.exp(-s * (tl.abs(wt)[None, :] + tl.abs(q)))
                h = am[None, :] - am[None, :] * e * q
                tl.store(x, q, mask=m_bu)
                tl.store(x + U, e, mask=m_bu)
            else:
                f1 = _tanh(q)
                f2 = _tanh(q1)
                g = _sigmoid(qa * s + qb)
                if MODE == 0:
                    h = f1 + g * (f2 - f1)
                else:
                    h = f1 + g * f2
                tl.store(x, f1, mask=m_bu)
                tl.store(x + U, f2, mask=m_bu)
                tl.store(x + 2 * U, g, mask=m_bu)
            tl.store(out + row[:, None] * U + ru[None, :], h, mask=m_bu)

    @triton.jit
    def cfc_backward_kernel(grad, ts, w0h, hw, wh, wtau, amp, tanhs, aux, g_pre0, g_hid, g_heads, g_wtau, g_amp,
                            g_h0, T, B, U, K, L, MODE: tl.constexpr, HAS_TS: tl.constexpr, BB: tl.constexpr,
                            BU: tl.constexpr, BK: tl.constexpr):
        """Arguments as the C kernel's cfc_backward; ``g_wtau``, ``g_amp`` (programs, U): each
        program's share of pure mode's sums (added up by the caller); ``g_h0`` (B, U) dL/dh0."""
        pid = tl.program_id(0)
        rb = pid * BB + tl.arange(0, BB)
        ru = tl.arange(0, BU)
        rk = tl.arange(0, BK)
        mb, mu, mk = rb < B, ru < U, rk < K
        m_bu = mb[:, None] & mu[None, :]
        m_bk = mb[:, None] & mk[None, :]
        m_uk = mu[:, None] & mk[None, :]
        H = U if MODE == 2 else 4 * U
        w0 = tl.load(w0h + rk[:, None] * U + ru[None, :], mask=mk[:, None] & mu[None, :], other=0.0)  # (BK, BU)
        wh0 = tl.load(wh + ru[:, None] * K + rk[None, :], mask=m_uk, other=0.0)  # (BU, BK)
        gh_next = tl.zeros((BB, BU), dtype=tl.float32)
        acc_wtau = tl.zeros((BU,), dtype=tl.float32)
        acc_amp = tl.zeros((BU,), dtype=tl.float32)
        for i in range(T):
            t = T - 1 - i
            row = t * B + rb
            gh = gh_next + tl.load(grad + row[:, None] * U + ru[None, :], mask=m_bu, other=0.0)
            if HAS_TS:
                s = tl.load(ts + row, mask=mb, other=1.0)[:, None]
            else:
                s = 1.0
            x = aux + row[:, None] * 3 * U + ru[None, :]
            gq = g_heads + row[:, None] * H + ru[None, :]
            if MODE == 2:
                f = tl.load(x, mask=m_bu, other=0.0)
                e = tl.load(x + U, mask=m_bu, other=0.0)
                am = tl.load(amp + ru, mask=mu, other=0.0)[None, :]
                acc_amp += tl.sum(gh * (1.0 - e * f), axis=0)
                dexp = gh * am * f * e * s
                acc_wtau += tl.sum(dexp, axis=0)
                dq0 = dexp * _sign(f) - gh * am * e
                tl.store(gq, dq0, mask=m_bu)
                dy = tl.dot(dq0, wh0, input_precision=_PRECISION)
            else:
                f1 = tl.load(x, mask=m_bu, other=0.0)
                f2 = tl.load(x + U, mask=m_bu, other=0.0)
                g = tl.load(x + 2 * U, mask=m_bu, other=0.0)
                if MODE == 0:
                    gate = gh * g * (1.0 - g) * (f2 - f1)
                    dq0 = gh * (1.0 - g) * (1.0 - f1 * f1)
                else:
                    gate = gh * g * (1.0 - g) * f2
                    dq0 = gh * (1.0 - f1 * f1)
                dq1 = gh * g * (1.0 - f2 * f2)
                dq2 = gate * s
                tl.store(gq, dq0, mask=m_bu)
                tl.store(gq + U, dq1, mask=m_bu)
                tl.store(gq + 2 * U, dq2, mask=m_bu)
                tl.store(gq + 3 * U, gate, mask=m_bu)
                wh1 = tl.load(wh + (U + ru)[:, None] * K + rk[None, :], mask=m_uk, other=0.0)
                wh2 = tl.load(wh + (2 * U + ru)[:, None] * K + rk[None, :], mask=m_uk, other=0.0)
                wh3 = tl.load(wh + (3 * U + ru)[:, None] * K + rk[None, :], mask=m_uk, other=0.0)
                dy = tl.dot(dq0, wh0, input_precision=_PRECISION) + tl.dot(dq1, wh1, input_precision=_PRECISION)
                dy += tl.dot(dq2, wh2, input_precision=_PRECISION) + tl.dot(gate, wh3, input_precision=_PRECISION)
            for j in range(L - 1):
                layer = L - 1 - j
                th = tl.load(tanhs + (layer * T * B + row)[:, None] * K + rk[None, :], mask=m_bk, other=0.0)
                da = dy * (_LA * _LB) * (1.0 - th * th)
                tl.store(g_hid + ((layer - 1) * T * B + row)[:, None] * K + rk[None, :], da, mask=m_bk)
                w = tl.load(hw + (layer - 1) * K * K + rk[:, None] * K + rk[None, :], mask=mk[:, None] & mk[None, :],
                            other=0.0)
                dy = tl.dot(da, w, input_precision=_PRECISION)
            th = tl.load(tanhs + row[:, None] * K + rk[None, :], mask=m_bk, other=0.0)
            da = dy * (_LA * _LB) * (1.0 - th * th)
            tl.store(g_pre0 + row[:, None] * K + rk[None, :], da, mask=m_bk)
            gh_next = tl.dot(da, w0, input_precision=_PRECISION)
        tl.store(g_h0 + rb[:, None] * U + ru[None, :], gh_next, mask=m_bu)
        if MODE == 2:
            wt = tl.load(wtau + ru, mask=mu, other=0.0)
            tl.store(g_wtau + pid * U + ru, acc_wtau * _sign(wt), mask=mu)
            tl.store(g_amp + pid * U + ru, acc_amp, mask=mu)


def _c(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.contiguous()


def forward(mode: str, pre0, ts, h0, w0t, hwt, hb, wht, bh, wtau, amp):
    """(out (T, B, U), tanhs (L, T, B, K), aux (T, B, 3, U)) from ``pre0`` (T, B, K) the input share
    of backbone layer 0 plus its bias, times B; ``ts`` (T, B) or None; ``h0`` (B, U) or None;
    ``w0t`` (U, K) layer 0's state share transposed, ``hwt`` (L-1, K, K) and ``hb`` (L-1, K), all
    times B; ``wht`` (K, H) the heads transposed, ``bh`` (H); ``wtau``, ``amp`` (U) pure mode's."""
    steps, bsz, width = pre0.shape
    units, layers = w0t.shape[0], hwt.shape[0] + 1
    pre0, ts, h0, w0t, hwt, hb, wht, bh, wtau, amp = map(_c, (pre0, ts, h0, w0t, hwt, hb, wht, bh, wtau, amp))
    out = pre0.new_empty(steps, bsz, units)
    tanhs = pre0.new_empty(layers, steps, bsz, width)
    aux = pre0.new_empty(steps, bsz, 3, units)
    dummy = pre0.new_zeros(1)
    pick = lambda t: dummy if t is None or t.numel() == 0 else t  # noqa: E731 - never read where absent
    cfc_forward_kernel[(triton.cdiv(bsz, BB),)](
        pre0, pick(ts), pick(h0), w0t, pick(hwt), pick(hb), wht, bh, pick(wtau), pick(amp), out, tanhs, aux,
        steps, bsz, units, width, layers, MODE=MODES[mode], HAS_TS=ts is not None, HAS_H0=h0 is not None, BB=BB,
        BU=_block(units), BK=_block(width), num_warps=NUM_WARPS)
    return out, tanhs, aux


def backward(mode: str, grad, ts, w0h, hw, wh, wtau, amp, tanhs, aux):
    """(g_pre0 (T, B, K), g_hid (L-1, T, B, K), g_heads (T, B, H), g_wtau (U), g_amp (U), g_h0 (B, U))
    from ``grad`` (T, B, U); weights unscaled in torch's layout: ``w0h`` (K, U), ``hw`` (L-1, K, K),
    ``wh`` (H, K)."""
    layers, steps, bsz, width = tanhs.shape
    units = w0h.shape[1]
    grad, ts, w0h, hw, wh, wtau, amp, tanhs, aux = map(_c, (grad, ts, w0h, hw, wh, wtau, amp, tanhs, aux))
    programs = triton.cdiv(bsz, BB)
    g_pre0 = grad.new_empty(steps, bsz, width)
    g_hid = grad.new_empty(layers - 1, steps, bsz, width)
    g_heads = grad.new_empty(steps, bsz, wh.shape[0])
    g_wtau, g_amp = grad.new_zeros(programs, units), grad.new_zeros(programs, units)
    g_h0 = grad.new_empty(bsz, units)
    dummy = grad.new_zeros(1)
    pick = lambda t: dummy if t is None or t.numel() == 0 else t  # noqa: E731
    cfc_backward_kernel[(programs,)](
        grad, pick(ts), w0h, pick(hw), wh, pick(wtau), pick(amp), tanhs, aux, g_pre0, pick(g_hid), g_heads, g_wtau, g_amp,
        g_h0, steps, bsz, units, width, layers, MODE=MODES[mode], HAS_TS=ts is not None, BB=BB, BU=_block(units),
        BK=_block(width), num_warps=NUM_WARPS)
    return g_pre0, g_hid, g_heads, g_wtau.sum(0), g_amp.sum(0), g_h0
