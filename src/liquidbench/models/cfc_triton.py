"""The fast CfC's recurrence as Triton kernels (the CUDA path): one launch for a whole sequence's
forward, one for its backward, the same structure as the C kernel (:mod:`.cfc_kernel`); the
equations and the backward's derivation: docs/fast-cells.md#cfc-equations-and-backward.
:func:`forward` and
:func:`backward` take the weights in the one convention (:class:`~.cfc_weights.CfcWeights`, as
the C kernel's wrapper does) and adapt them for the kernels: layer 0's input share ``pre0`` formed
beforehand, the backbone's weights transposed and scaled by lecun_tanh's inner constant B,
time-major tensors.

Each program takes a block of ``BB`` batch rows through every step, each step's small matrix
products in ``tl.dot`` (IEEE float32, never TF32). Two forms of each kernel, picked per width by
:func:`blocks` (the one place that chooses, for the launches here and tests/test_triton.py):

- resident (units up to 32 with a backbone up to 64, the study's shape): the state, the heads and
  the backward's weights stay in registers for the whole sequence, units and backbone widths
  padded to powers of two (at least 16, ``tl.dot``'s smallest) with zero weights, which keep the
  padded columns at zero.
- tiled (wider): every product over tiles of ``TU`` units by ``TK`` backbone columns, masked at
  the edges; what a phase of a step produces goes through memory, read back a tile at a time
  after a barrier: the forward's state through a (B, U) carrier and each layer's values through
  ``tanhs``; the backward's heads' gradients through ``g_heads``, each layer's pre-activation
  gradient through its output and dL/dh through ``g_h0``. Its working set does not grow with the
  widths, so no width spills (the resident kernels spilled 0.2-26 KB at a backbone of 128, and
  at 64 and 128 units: ptxas of Triton 3.7.1, sm_80 and sm_90).

The weight gradients are one matrix product each over all steps, in torch, as for the C kernel
(:func:`.cfc_weights.weight_grads`). Covers what the C kernel covers with a backbone (of
lecun_tanh layers, every mode, regular or irregular steps, no mixed memory or active dropout); a
CfC without a backbone takes the C kernel on the CPU and torch on CUDA.

Triton is optional (``pip install -c constraints.txt triton``, the version torch's CUDA wheel
requires): where it is missing or disabled (``LIQUIDBENCH_TRITON=0``) the CUDA path is torch.
Verified without a GPU: Triton's interpreter (``TRITON_INTERPRET=1``) runs these kernels on CPU
tensors, and ``triton.compile`` builds them for sm_80 and sm_90 (tests/test_triton.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .cfc_weights import DEFAULT, MODES, PURE, CfcWeights, weight_grads
from .cfc_weights import LECUN_A as LA, LECUN_B as LB

try:  # optional: the CUDA path of the fast CfC
    import triton
    import triton.language as tl
except ImportError as exc:  # pragma: no cover - exercised where Triton is absent
    triton = tl = None
    IMPORT_ERROR = str(exc)
else:
    IMPORT_ERROR = None

ENV_VAR = "LIQUIDBENCH_TRITON"
BB = 16  # batch rows per program (tl.dot's smallest)
# The blocks below were chosen with ptxas -v of Triton 3.7.1 for sm_80 and sm_90 in every mode,
# with regular and irregular steps (tests/test_triton.py asserts them at every grid width).
NUM_WARPS = 8  # warps per program, resident and tiled
# The resident kernels take units up to 32 with a backbone up to 64 (the study's shape): at a
# backbone of 128 the backward spilled 2-26 KB at every units value (3-11 KB with 16 warps), the
# forward 0.05-4.4 KB; at 64 units and a backbone of 64 the backward spilled 1.3 KB.
RESIDENT_UNITS, RESIDENT_WIDTH = 32, 64
# The resident forward with blocks of at most 512 (units x backbone, padded: 16 x 16, 16 x 32,
# 32 x 16) takes 4 warps: with 8, ptxas spills 8-24 B at 16 x 32 (sm_80, though it uses only 64-80
# registers); 4 are clean there (156 registers); wider, 4 warps spill 80-288 B and 8 are clean.
SMALL_FORWARD, SMALL_WARPS = 512, 4
# The resident backward is not software-pipelined (Triton's num_stages 3, its default, prefetches
# the next step's loads: 264 B of spills on sm_80 at 32 units and a backbone of 64 with regular
# steps); with 1 it is clean at every resident block, at most 255 registers.
RESIDENT_BACKWARD_STAGES = 1
# The tiled kernels' tiles (units, backbone) with 8 warps and Triton's pipelining: at most 206
# registers, clean; tiles of 64 spill 0.8-1.4 KB, and with 4 warps tiles of 32 spill 16-224 B.
TILE_UNITS, TILE_WIDTH = 32, 32


@dataclass(frozen=True)
class Blocks:
    """How a kernel covers ``units`` and a backbone ``width``: ``bb`` batch rows per program,
    ``bu``, ``bk`` the widths padded to powers of two (the resident kernels' tiles), ``tu``, ``tk``
    a tiled kernel's tiles (0: resident), ``num_warps`` per program and ``num_stages`` (None:
    Triton's default) of its software pipelining."""
    bb: int
    bu: int
    bk: int
    tu: int
    tk: int
    num_warps: int
    num_stages: int | None = None

    @property
    def tiled(self) -> bool:
        return self.tu > 0

    @property
    def constexprs(self) -> dict[str, int]:
        """The block sizes as the kernel that takes them (:func:`kernels`) names them."""
        if self.tiled:
            return {"BB": self.bb, "TU": self.tu, "TK": self.tk}
        return {"BB": self.bb, "BU": self.bu, "BK": self.bk}

    @property
    def options(self) -> dict[str, int]:
        """The launch's (and the compiler's) options."""
        stages = {} if self.num_stages is None else {"num_stages": self.num_stages}
        return {"num_warps": self.num_warps, **stages}


def blocks(units: int, width: int, backward: bool = False) -> Blocks:
    """The forward's (or the backward's) blocks for ``units`` and backbone ``width``: resident up
    to ``RESIDENT_UNITS`` and ``RESIDENT_WIDTH``, tiled beyond either (the constants say why)."""
    bu, bk = _block(units), _block(width)
    if bu > RESIDENT_UNITS or bk > RESIDENT_WIDTH:
        return Blocks(bb=BB, bu=bu, bk=bk, tu=TILE_UNITS, tk=TILE_WIDTH, num_warps=NUM_WARPS)
    if backward:
        return Blocks(bb=BB, bu=bu, bk=bk, tu=0, tk=0, num_warps=NUM_WARPS, num_stages=RESIDENT_BACKWARD_STAGES)
    return Blocks(bb=BB, bu=bu, bk=bk, tu=0, tk=0, num_warps=SMALL_WARPS if bu * bk <= SMALL_FORWARD else NUM_WARPS)


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


def kernels(b: Blocks):
    """(forward kernel, backward kernel) for blocks ``b``: the tiled or the resident ones."""
    if b.tiled:
        return cfc_forward_tiled_kernel, cfc_backward_tiled_kernel
    return cfc_forward_kernel, cfc_backward_kernel


if triton is not None:
    _LA, _LB = tl.constexpr(LA), tl.constexpr(LB)  # kernels read globals only as constexpr
    _DEFAULT, _PURE = tl.constexpr(DEFAULT), tl.constexpr(PURE)  # the modes' numbers (cfc_weights.MODES)
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
    def _new_state(x, q, q1, qa, qb, s, wt, am, m_bu, U, MODE: tl.constexpr):
        """The state from the heads' pre-activations ``q`` (ff1), ``q1`` (ff2), ``qa``, ``qb``
        (time_a, time_b; pure mode reads only ``q``, with ``wt`` = w_tau and ``am`` = A), storing
        what the backward reads into the rows ``x`` of aux."""
        if MODE == _PURE:
            e = tl.exp(-s * (tl.abs(wt)[None, :] + tl.abs(q)))
            h = am[None, :] - am[None, :] * e * q
            tl.store(x, q, mask=m_bu)
            tl.store(x + U, e, mask=m_bu)
        else:
            f1 = _tanh(q)
            f2 = _tanh(q1)
            g = _sigmoid(qa * s + qb)
            if MODE == _DEFAULT:
                h = f1 + g * (f2 - f1)
            else:
                h = f1 + g * f2
            tl.store(x, f1, mask=m_bu)
            tl.store(x + U, f2, mask=m_bu)
            tl.store(x + 2 * U, g, mask=m_bu)
        return h

    @triton.jit
    def _gated_heads_grad(gh, x, s, m_bu, U, MODE: tl.constexpr):
        """Default and no_gate modes: dL/d(ff1, ff2, time_a, time_b pre-activations) from gh = dL/dh
        and the rows ``x`` of aux."""
        f1 = tl.load(x, mask=m_bu, other=0.0)
        f2 = tl.load(x + U, mask=m_bu, other=0.0)
        g = tl.load(x + 2 * U, mask=m_bu, other=0.0)
        if MODE == _DEFAULT:
            gate = gh * g * (1.0 - g) * (f2 - f1)
            dq0 = gh * (1.0 - g) * (1.0 - f1 * f1)
        else:
            gate = gh * g * (1.0 - g) * f2
            dq0 = gh * (1.0 - f1 * f1)
        return dq0, gh * g * (1.0 - f2 * f2), gate * s, gate

    @triton.jit
    def _pure_head_grad(gh, x, s, am, m_bu, U):
        """Pure mode: (dL/d(ff1's pre-activation), the terms of dL/dA, of dL/d|w_tau|) from gh = dL/dh
        and the rows ``x`` of aux; ``am`` = A (1, units)."""
        f = tl.load(x, mask=m_bu, other=0.0)
        e = tl.load(x + U, mask=m_bu, other=0.0)
        dexp = gh * am * f * e * s
        return dexp * _sign(f) - gh * am * e, gh * (1.0 - e * f), dexp

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
        H = U if MODE == _PURE else 4 * U
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
            if MODE != _PURE:
                q1 = tl.zeros((BB, BU), dtype=tl.float32) + tl.load(bh + U + ru, mask=mu, other=0.0)[None, :]
                qa = tl.zeros((BB, BU), dtype=tl.float32) + tl.load(bh + 2 * U + ru, mask=mu, other=0.0)[None, :]
                qb = tl.zeros((BB, BU), dtype=tl.float32) + tl.load(bh + 3 * U + ru, mask=mu, other=0.0)[None, :]
            for d in tl.static_range(0, BK, _CHUNK):
                md = (d + rc) < K
                y = _LA * tl.load(last + (d + rc)[None, :], mask=mb[:, None] & md[None, :], other=0.0)
                m_du = md[:, None] & mu[None, :]
                wrow = wht + (d + rc)[:, None] * H
                q += tl.dot(y, tl.load(wrow + ru[None, :], mask=m_du, other=0.0), input_precision=_PRECISION)
                if MODE != _PURE:
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
            if MODE == _PURE:
                wt = tl.load(wtau + ru, mask=mu, other=0.0)
                am = tl.load(amp + ru, mask=mu, other=0.0)
                h = _new_state(x, q, q, q, q, s, wt, am, m_bu, U, MODE)
            else:
                h = _new_state(x, q, q1, qa, qb, s, q, q, m_bu, U, MODE)
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
        H = U if MODE == _PURE else 4 * U
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
            if MODE == _PURE:
                am = tl.load(amp + ru, mask=mu, other=0.0)[None, :]
                dq0, d_amp, dexp = _pure_head_grad(gh, x, s, am, m_bu, U)
                acc_amp += tl.sum(d_amp, axis=0)
                acc_wtau += tl.sum(dexp, axis=0)
                tl.store(gq, dq0, mask=m_bu)
                dy = tl.dot(dq0, wh0, input_precision=_PRECISION)
            else:
                dq0, dq1, dq2, gate = _gated_heads_grad(gh, x, s, m_bu, U, MODE)
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
        if MODE == _PURE:
            wt = tl.load(wtau + ru, mask=mu, other=0.0)
            tl.store(g_wtau + pid * U + ru, acc_wtau * _sign(wt), mask=mu)
            tl.store(g_amp + pid * U + ru, acc_amp, mask=mu)

    @triton.jit
    def cfc_forward_tiled_kernel(pre0, ts, state, w0t, hwt, hb, wht, bh, wtau, amp, out, tanhs, aux, T, B, U, K, L,
                                 MODE: tl.constexpr, HAS_TS: tl.constexpr, BB: tl.constexpr, TU: tl.constexpr,
                                 TK: tl.constexpr):
        """:func:`cfc_forward_kernel` over tiles of TU units by TK backbone columns; ``state`` (B, U)
        holds h0 (zeros where there is none) on entry, then each step's state: written by the
        heads, a units tile at a time, read by the next step's layer 0 after a barrier."""
        rb = tl.program_id(0) * BB + tl.arange(0, BB)
        ru = tl.arange(0, TU)
        rk = tl.arange(0, TK)
        mb = rb < B
        H = U if MODE == _PURE else 4 * U
        for t in range(T):
            row = t * B + rb
            # layer 0: a = pre0_t + h W0h (W0h scaled)
            for c in range(0, K, TK):
                ck = c + rk
                mc = ck < K
                m_bc = mb[:, None] & mc[None, :]
                a = tl.load(pre0 + row[:, None] * K + ck[None, :], mask=m_bc, other=0.0)
                for u in range(0, U, TU):
                    cu = u + ru
                    mu = cu < U
                    h = tl.load(state + rb[:, None] * U + cu[None, :], mask=mb[:, None] & mu[None, :], other=0.0)
                    w0 = tl.load(w0t + cu[:, None] * K + ck[None, :], mask=mu[:, None] & mc[None, :], other=0.0)
                    a += tl.dot(h, w0, input_precision=_PRECISION)
                tl.store(tanhs + row[:, None] * K + ck[None, :], _tanh(a), mask=m_bc)
            tl.debug_barrier()
            for layer in range(1, L):
                prev = tanhs + ((layer - 1) * T * B + row)[:, None] * K
                for c in range(0, K, TK):
                    ck = c + rk
                    mc = ck < K
                    a = tl.zeros((BB, TK), dtype=tl.float32)
                    a += tl.load(hb + (layer - 1) * K + ck, mask=mc, other=0.0)[None, :]
                    for d in range(0, K, TK):
                        dk = d + rk
                        md = dk < K
                        y = _LA * tl.load(prev + dk[None, :], mask=mb[:, None] & md[None, :], other=0.0)
                        w = tl.load(hwt + (layer - 1) * K * K + dk[:, None] * K + ck[None, :],
                                    mask=md[:, None] & mc[None, :], other=0.0)
                        a += tl.dot(y, w, input_precision=_PRECISION)
                    tl.store(tanhs + (layer * T * B + row)[:, None] * K + ck[None, :], _tanh(a),
                             mask=mb[:, None] & mc[None, :])
                tl.debug_barrier()
            # heads, a units tile at a time: q_j = bh_j + y_{L-1} Wh_j
            last = tanhs + ((L - 1) * T * B + row)[:, None] * K
            if HAS_TS:
                s = tl.load(ts + row, mask=mb, other=1.0)[:, None]
            else:
                s = 1.0
            for u in range(0, U, TU):
                cu = u + ru
                mu = cu < U
                m_bu = mb[:, None] & mu[None, :]
                q = tl.zeros((BB, TU), dtype=tl.float32) + tl.load(bh + cu, mask=mu, other=0.0)[None, :]
                if MODE != _PURE:
                    q1 = tl.zeros((BB, TU), dtype=tl.float32) + tl.load(bh + U + cu, mask=mu, other=0.0)[None, :]
                    qa = tl.zeros((BB, TU), dtype=tl.float32) + tl.load(bh + 2 * U + cu, mask=mu, other=0.0)[None, :]
                    qb = tl.zeros((BB, TU), dtype=tl.float32) + tl.load(bh + 3 * U + cu, mask=mu, other=0.0)[None, :]
                for d in range(0, K, TK):
                    dk = d + rk
                    md = dk < K
                    y = _LA * tl.load(last + dk[None, :], mask=mb[:, None] & md[None, :], other=0.0)
                    m_du = md[:, None] & mu[None, :]
                    wrow = wht + dk[:, None] * H
                    q += tl.dot(y, tl.load(wrow + cu[None, :], mask=m_du, other=0.0), input_precision=_PRECISION)
                    if MODE != _PURE:
                        q1 += tl.dot(y, tl.load(wrow + (U + cu)[None, :], mask=m_du, other=0.0),
                                     input_precision=_PRECISION)
                        qa += tl.dot(y, tl.load(wrow + (2 * U + cu)[None, :], mask=m_du, other=0.0),
                                     input_precision=_PRECISION)
                        qb += tl.dot(y, tl.load(wrow + (3 * U + cu)[None, :], mask=m_du, other=0.0),
                                     input_precision=_PRECISION)
                x = aux + row[:, None] * 3 * U + cu[None, :]
                if MODE == _PURE:
                    wt = tl.load(wtau + cu, mask=mu, other=0.0)
                    am = tl.load(amp + cu, mask=mu, other=0.0)
                    h = _new_state(x, q, q, q, q, s, wt, am, m_bu, U, MODE)
                else:
                    h = _new_state(x, q, q1, qa, qb, s, q, q, m_bu, U, MODE)
                tl.store(out + row[:, None] * U + cu[None, :], h, mask=m_bu)
                tl.store(state + rb[:, None] * U + cu[None, :], h, mask=m_bu)
            tl.debug_barrier()

    @triton.jit
    def cfc_backward_tiled_kernel(grad, ts, w0h, hw, wh, wtau, amp, tanhs, aux, g_act, g_heads, g_wtau, g_amp, g_h0,
                                  T, B, U, K, L, MODE: tl.constexpr, HAS_TS: tl.constexpr, BB: tl.constexpr,
                                  TU: tl.constexpr, TK: tl.constexpr):
        """:func:`cfc_backward_kernel` over tiles of TU units by TK backbone columns, a step in
        phases with a barrier after each: the heads' gradients into ``g_heads``; the last layer's
        pre-activation gradient from them; each layer below's from the one above; dL/dh of the
        step before from layer 0's. ``g_act`` (L, T, B, K): every layer's pre-activation gradient
        (layer 0's is the caller's g_pre0, the others its g_hid); ``g_h0`` (B, U) carries dL/dh
        from step to step and ``g_wtau``, ``g_amp`` (programs, U) the sums, all zeros on entry."""
        pid = tl.program_id(0)
        rb = pid * BB + tl.arange(0, BB)
        ru = tl.arange(0, TU)
        rk = tl.arange(0, TK)
        mb = rb < B
        H = U if MODE == _PURE else 4 * U
        for i in range(T):
            t = T - 1 - i
            row = t * B + rb
            if HAS_TS:
                s = tl.load(ts + row, mask=mb, other=1.0)[:, None]
            else:
                s = 1.0
            for u in range(0, U, TU):
                cu = u + ru
                mu = cu < U
                m_bu = mb[:, None] & mu[None, :]
                gh = tl.load(g_h0 + rb[:, None] * U + cu[None, :], mask=m_bu, other=0.0)
                gh += tl.load(grad + row[:, None] * U + cu[None, :], mask=m_bu, other=0.0)
                x = aux + row[:, None] * 3 * U + cu[None, :]
                gq = g_heads + row[:, None] * H + cu[None, :]
                if MODE == _PURE:
                    am = tl.load(amp + cu, mask=mu, other=0.0)[None, :]
                    dq0, d_amp, dexp = _pure_head_grad(gh, x, s, am, m_bu, U)
                    tl.store(gq, dq0, mask=m_bu)
                    sums = pid * U + cu
                    d_wtau = tl.sum(dexp, axis=0) * _sign(tl.load(wtau + cu, mask=mu, other=0.0))
                    tl.store(g_wtau + sums, tl.load(g_wtau + sums, mask=mu, other=0.0) + d_wtau, mask=mu)
                    tl.store(g_amp + sums, tl.load(g_amp + sums, mask=mu, other=0.0) + tl.sum(d_amp, axis=0), mask=mu)
                else:
                    dq0, dq1, dq2, gate = _gated_heads_grad(gh, x, s, m_bu, U, MODE)
                    tl.store(gq, dq0, mask=m_bu)
                    tl.store(gq + U, dq1, mask=m_bu)
                    tl.store(gq + 2 * U, dq2, mask=m_bu)
                    tl.store(gq + 3 * U, gate, mask=m_bu)
            tl.debug_barrier()
            # the last layer: dL/dy = sum_j dq_j Wh_j, times lecun_tanh's derivative
            top = g_act + ((L - 1) * T * B + row)[:, None] * K
            for c in range(0, K, TK):
                ck = c + rk
                mc = ck < K
                dy = tl.zeros((BB, TK), dtype=tl.float32)
                for u in range(0, U, TU):
                    cu = u + ru
                    mu = cu < U
                    m_bu = mb[:, None] & mu[None, :]
                    m_uk = mu[:, None] & mc[None, :]
                    gq = g_heads + row[:, None] * H + cu[None, :]
                    whr = wh + cu[:, None] * K + ck[None, :]
                    dy += tl.dot(tl.load(gq, mask=m_bu, other=0.0), tl.load(whr, mask=m_uk, other=0.0),
                                 input_precision=_PRECISION)
                    if MODE != _PURE:
                        for j in tl.static_range(1, 4):
                            dy += tl.dot(tl.load(gq + j * U, mask=m_bu, other=0.0),
                                         tl.load(whr + j * U * K, mask=m_uk, other=0.0), input_precision=_PRECISION)
                m_bc = mb[:, None] & mc[None, :]
                th = tl.load(tanhs + ((L - 1) * T * B + row)[:, None] * K + ck[None, :], mask=m_bc, other=0.0)
                tl.store(top + ck[None, :], dy * (_LA * _LB) * (1.0 - th * th), mask=m_bc)
            tl.debug_barrier()
            for j in range(L - 1):
                layer = L - 1 - j  # from this layer's pre-activation gradient, the one below's
                above = g_act + (layer * T * B + row)[:, None] * K
                for c in range(0, K, TK):
                    ck = c + rk
                    mc = ck < K
                    dy = tl.zeros((BB, TK), dtype=tl.float32)
                    for d in range(0, K, TK):
                        dk = d + rk
                        md = dk < K
                        da = tl.load(above + dk[None, :], mask=mb[:, None] & md[None, :], other=0.0)
                        w = tl.load(hw + (layer - 1) * K * K + dk[:, None] * K + ck[None, :],
                                    mask=md[:, None] & mc[None, :], other=0.0)
                        dy += tl.dot(da, w, input_precision=_PRECISION)
                    m_bc = mb[:, None] & mc[None, :]
                    below = ((layer - 1) * T * B + row)[:, None] * K + ck[None, :]
                    th = tl.load(tanhs + below, mask=m_bc, other=0.0)
                    tl.store(g_act + below, dy * (_LA * _LB) * (1.0 - th * th), mask=m_bc)
                tl.debug_barrier()
            # dL/dh of the step before: layer 0's pre-activation gradient times W0h
            for u in range(0, U, TU):
                cu = u + ru
                mu = cu < U
                gh = tl.zeros((BB, TU), dtype=tl.float32)
                for d in range(0, K, TK):
                    dk = d + rk
                    md = dk < K
                    da = tl.load(g_act + row[:, None] * K + dk[None, :], mask=mb[:, None] & md[None, :], other=0.0)
                    w0 = tl.load(w0h + dk[:, None] * U + cu[None, :], mask=md[:, None] & mu[None, :], other=0.0)
                    gh += tl.dot(da, w0, input_precision=_PRECISION)
                tl.store(g_h0 + rb[:, None] * U + cu[None, :], gh, mask=mb[:, None] & mu[None, :])
            tl.debug_barrier()


def _c(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.contiguous()


def forward(mode: str, x, ts, h0, w: CfcWeights):
    """(every step's state (B, T, U), what :func:`backward` needs) from batch-major ``x`` (B, T, F)
    and ``ts`` (B, T) or None, ``h0`` (B, U) or None (zeros), with a backbone (the kernels take
    layer 0's input share formed here beforehand, the backbone's weights transposed and times
    lecun_tanh's B, and time-major tensors)."""
    bsz, steps, n_in = x.shape
    units, width, layers = w.units, w.width, w.layers
    xt = x.transpose(0, 1)
    pre0 = torch.addmm(w.b0, xt.flatten(0, 1), w.w0[:, :n_in].t()).view(steps, bsz, width).mul_(LB)
    w0t = w.w0[:, n_in:].t() * LB
    hwt = w.hw.transpose(1, 2) * LB if w.hw is not None else x.new_empty(0, width, width)
    hb = w.hb * LB if w.hb is not None else x.new_empty(0, width)
    ts_t = None if ts is None else ts.t()
    ts_t, h0, w0t, hwt, hb, wht, bh, wtau, amp = map(_c, (ts_t, h0, w0t, hwt, hb, w.wh.t(), w.bh, w.w_tau, w.amp))
    out = x.new_empty(steps, bsz, units)
    tanhs = x.new_empty(layers, steps, bsz, width)
    aux = x.new_empty(steps, bsz, 3, units)
    dummy = x.new_zeros(1)
    pick = lambda t: dummy if t is None or t.numel() == 0 else t  # noqa: E731 - never read where absent
    b = blocks(units, width)
    grid = (triton.cdiv(bsz, b.bb),)
    if b.tiled:
        state = x.new_zeros(bsz, units) if h0 is None else h0.clone()
        kernels(b)[0][grid](
            pre0, pick(ts_t), state, w0t, pick(hwt), pick(hb), wht, bh, pick(wtau), pick(amp), out, tanhs, aux,
            steps, bsz, units, width, layers, MODE=MODES[mode], HAS_TS=ts is not None, **b.constexprs,
            **b.options)
    else:
        kernels(b)[0][grid](
            pre0, pick(ts_t), pick(h0), w0t, pick(hwt), pick(hb), wht, bh, pick(wtau), pick(amp), out, tanhs, aux,
            steps, bsz, units, width, layers, MODE=MODES[mode], HAS_TS=ts is not None, HAS_H0=h0 is not None,
            **b.constexprs, **b.options)
    return out.transpose(0, 1), (x, h0, out, tanhs, aux)


def backward(mode: str, grad, ts, w: CfcWeights, saved, input_grad: bool):
    """(dL/dx (B, T, F) or None without ``input_grad``, dL/dh0 (B, U), the gradients of ``w``) from
    ``grad`` (B, T, U) = dL/d(every step's state) and :func:`forward`'s ``saved``."""
    x, h0, out, tanhs, aux = saved
    layers, steps, bsz, width = tanhs.shape
    units, n_in = w.units, w.inputs
    ts_t = None if ts is None else ts.t()
    hw = w.hw if w.hw is not None else grad.new_empty(0, width, width)
    grad, ts_t, w0h, hw, wh, wtau, amp = map(_c, (grad.transpose(0, 1), ts_t, w.w0[:, n_in:], hw, w.wh, w.w_tau,
                                                  w.amp))
    b = blocks(units, width, backward=True)
    programs = triton.cdiv(bsz, b.bb)
    g_act = grad.new_empty(layers, steps, bsz, width)  # every layer's pre-activation gradient
    g_pre0, g_hid = g_act[0], g_act[1:]
    g_heads = grad.new_empty(steps, bsz, wh.shape[0])
    g_wtau, g_amp = grad.new_zeros(programs, units), grad.new_zeros(programs, units)
    dummy = grad.new_zeros(1)
    pick = lambda t: dummy if t is None or t.numel() == 0 else t  # noqa: E731
    if b.tiled:
        g_h0 = grad.new_zeros(bsz, units)  # carries dL/dh from step to step
        kernels(b)[1][(programs,)](
            grad, pick(ts_t), w0h, pick(hw), wh, pick(wtau), pick(amp), tanhs, aux, g_act, g_heads, g_wtau, g_amp,
            g_h0, steps, bsz, units, width, layers, MODE=MODES[mode], HAS_TS=ts is not None, **b.constexprs,
            **b.options)
    else:
        g_h0 = grad.new_empty(bsz, units)
        kernels(b)[1][(programs,)](
            grad, pick(ts_t), w0h, pick(hw), wh, pick(wtau), pick(amp), tanhs, aux, g_pre0, pick(g_hid), g_heads,
            g_wtau, g_amp, g_h0, steps, bsz, units, width, layers, MODE=MODES[mode], HAS_TS=ts is not None,
            **b.constexprs, **b.options)
    xt = x.transpose(0, 1)
    first = out.new_zeros(1, bsz, units) if h0 is None else h0.unsqueeze(0)
    xh = torch.cat((xt, torch.cat((first, out[:-1]))), 2)
    grads = weight_grads(w, xh, tanhs, g_pre0, g_hid, g_heads, ys_scale=LA,
                         g_wtau=g_wtau.sum(0) if w.pure else None, g_amp=g_amp.sum(0) if w.pure else None)
    g_x = (g_pre0 @ w.w0[:, :n_in]).transpose(0, 1) if input_grad else None
    return g_x, g_h0, grads
