"""The fast LTC's step as Triton kernels (the CUDA path): one launch for a step's ``ode_unfolds``
unfolds over the whole batch, one for its backward; the same arguments and results as the C
kernel (:mod:`.ltc_kernel`), the same terms (the forward and the backward's vector-Jacobian
products: docs/fast-cells.md#ltc-equations-and-backward). The synapse activations are computed
again in the backward (never stored).

Each program takes ``BB`` batch rows. Two forms of each kernel, picked per width by
:func:`blocks` (the one place that chooses, for the launches here and tests/test_triton.py):

- resident (up to ``RESIDENT_UNITS`` units): the (rows, post-synaptic, pre-synaptic) activations
  of an unfold are one register tile, units padded to a power of two with zero weights (and a
  denominator of 1), which keep the padded neurons at zero; the weights and the weight gradients'
  sums stay in registers for the whole step.
- tiled (wider): the same terms over (post, pre) tiles of ``TILE`` x ``TILE`` synapses, a
  program's registers holding one tile's at a time: the state of each unfold goes through ``vs``
  (written a tile at a time, read back after a barrier), the weights are read again every unfold
  and the weight gradients' sums are added up in the output in place. Its working set does not
  grow with the units, so no width spills (the resident forward held 4 x units^2 weights: 1.6 KB
  of spills at 64 units, 126-128 KB at 128, ptxas of Triton 3.7.1 for sm_80 and sm_90).

The weight gradients are summed per program and added up by the caller (no atomics: the same
sums on every run).

Triton is optional, as for :mod:`.cfc_triton` (same switch, ``LIQUIDBENCH_TRITON=0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import cfc_triton
from .cfc_triton import tl, triton  # one optional Triton import for both models


def available() -> str | None:
    """None where the Triton kernels can run, else why not (as for the CfC's)."""
    return cfc_triton.available()


def interpreted() -> bool:
    """Triton's interpreter is on (as for the CfC's)."""
    return cfc_triton.interpreted()


BB = 4  # batch rows per program
NUM_WARPS = 4  # the resident kernels' warps per program
# The blocks below were chosen with ptxas -v of Triton 3.7.1 for sm_80 and sm_90
# (tests/test_triton.py asserts them at every grid width). The resident kernels take up to 32
# units (at most 96 registers a thread in the forward, 255 in the backward); at 64 units the
# forward spilled 1.6 KB and the backward 17 KB (clean there only with 1 batch row a program),
# at 128 units 75-128 KB.
RESIDENT_UNITS = 32
# The tiled kernels' tile side (synapses) and warps: at most 194 registers a thread (the
# backward; the forward 48), clean; with 4 warps the backward takes all 255, and tiles of 64
# spill 1.1-27 KB.
TILE = 32
TILED_WARPS = 8


@dataclass(frozen=True)
class Blocks:
    """How a kernel covers ``units``: ``bb`` batch rows per program, ``bu`` the units padded to a
    power of two (the resident kernels' tile), ``tile`` the side of a tiled kernel's synapse tiles
    (0: resident), ``num_warps`` per program."""
    bb: int
    bu: int
    tile: int
    num_warps: int

    @property
    def tiled(self) -> bool:
        return self.tile > 0

    @property
    def constexprs(self) -> dict[str, int]:
        """The block sizes as the kernel that takes them (:func:`kernels`) names them."""
        return {"BB": self.bb, "TILE": self.tile} if self.tiled else {"BB": self.bb, "BU": self.bu}

    @property
    def options(self) -> dict[str, int]:
        """The launch's (and the compiler's) options."""
        return {"num_warps": self.num_warps}


def blocks(units: int) -> Blocks:
    """The kernels' blocks for ``units``, forward and backward alike: resident up to
    ``RESIDENT_UNITS``, tiled above (the constants say why)."""
    bu = _block(units)
    if bu <= RESIDENT_UNITS:
        return Blocks(bb=BB, bu=bu, tile=0, num_warps=NUM_WARPS)
    return Blocks(bb=BB, bu=bu, tile=TILE, num_warps=TILED_WARPS)


if triton is not None:

    @triton.jit
    def _sigmoid(x):
        return 1.0 / (1.0 + tl.exp(-x))

    @triton.jit
    def ltc_forward_kernel(v0, nc, dt, cm, sig, nsm, we, w, vs, dens, B, U, K, BB: tl.constexpr, BU: tl.constexpr):
        """As the C kernel's ltc_forward without stored activations: (J, I) weights, (B, U) states."""
        rb = tl.program_id(0) * BB + tl.arange(0, BB)
        ru = tl.arange(0, BU)
        mb, mu = rb < B, ru < U
        m_bu = mb[:, None] & mu[None, :]
        m_ji = mu[:, None] & mu[None, :]
        ji = ru[:, None] * U + ru[None, :]
        s_w = tl.load(sig + ji, mask=m_ji, other=0.0)[None, :, :]
        n_w = tl.load(nsm + ji, mask=m_ji, other=0.0)[None, :, :]
        we_w = tl.load(we + ji, mask=m_ji, other=0.0)[None, :, :]
        w_w = tl.load(w + ji, mask=m_ji, other=0.0)[None, :, :]
        bu = rb[:, None] * U + ru[None, :]
        v = tl.load(v0 + bu, mask=m_bu, other=0.0)
        n_c = tl.load(nc + bu, mask=m_bu, other=0.0)
        d_t = tl.load(dt + bu, mask=m_bu, other=1.0)
        c_m = tl.load(cm + bu, mask=m_bu, other=0.0)
        tl.store(vs + bu, v, mask=m_bu)
        for k in range(K):
            s = _sigmoid(s_w * v[:, None, :] + n_w)  # (rows, post j, pre i)
            den = d_t + tl.sum(w_w * s, axis=2)
            v = (n_c + c_m * v + tl.sum(we_w * s, axis=2)) / den
            tl.store(dens + k * B * U + bu, den, mask=m_bu)
            tl.store(vs + (k + 1) * B * U + bu, v, mask=m_bu)

    @triton.jit
    def ltc_backward_kernel(g, vs, dens, cm, sig, nsm, mu, we, w, g_n, g_d, g_cm, g_sig, g_mu, g_we, g_w, B, U, K,
                            BB: tl.constexpr, BU: tl.constexpr):
        """As the C kernel's ltc_backward, computing the activations again; ``g`` (B, U) receives
        dL/dv0; g_sig, g_mu, g_we, g_w (programs, J, I): each program's sums."""
        pid = tl.program_id(0)
        rb = pid * BB + tl.arange(0, BB)
        ru = tl.arange(0, BU)
        mb, mu_ = rb < B, ru < U
        m_bu = mb[:, None] & mu_[None, :]
        m_ji = mu_[:, None] & mu_[None, :]
        ji = ru[:, None] * U + ru[None, :]
        s_w = tl.load(sig + ji, mask=m_ji, other=0.0)
        n_w = tl.load(nsm + ji, mask=m_ji, other=0.0)
        we_w = tl.load(we + ji, mask=m_ji, other=0.0)
        w_w = tl.load(w + ji, mask=m_ji, other=0.0)
        bu = rb[:, None] * U + ru[None, :]
        c_m = tl.load(cm + bu, mask=m_bu, other=0.0)
        gv = tl.load(g + bu, mask=m_bu, other=0.0)
        acc_n = tl.zeros((BB, BU), dtype=tl.float32)
        acc_d = tl.zeros((BB, BU), dtype=tl.float32)
        acc_cm = tl.zeros((BB, BU), dtype=tl.float32)
        acc_we = tl.zeros((BU, BU), dtype=tl.float32)
        acc_w = tl.zeros((BU, BU), dtype=tl.float32)
        acc_dz = tl.zeros((BU, BU), dtype=tl.float32)
        acc_dzv = tl.zeros((BU, BU), dtype=tl.float32)
        for i in range(K):
            k = K - 1 - i
            v_in = tl.load(vs + k * B * U + bu, mask=m_bu, other=0.0)
            v_out = tl.load(vs + (k + 1) * B * U + bu, mask=m_bu, other=0.0)
            den = tl.load(dens + k * B * U + bu, mask=m_bu, other=1.0)
            a = gv / den
            c = -a * v_out
            acc_n += a
            acc_d += c
            acc_cm += a * v_in + c
            s = _sigmoid(s_w[None, :, :] * v_in[:, None, :] + n_w[None, :, :])
            acc_we += tl.sum(a[:, :, None] * s, axis=0)
            acc_w += tl.sum(c[:, :, None] * s, axis=0)
            dz = (a[:, :, None] * we_w[None, :, :] + c[:, :, None] * w_w[None, :, :]) * s * (1.0 - s)
            acc_dz += tl.sum(dz, axis=0)
            acc_dzv += tl.sum(dz * v_in[:, None, :], axis=0)
            gv = c_m * a + tl.sum(dz * s_w[None, :, :], axis=1)
        tl.store(g + bu, gv, mask=m_bu)
        tl.store(g_n + bu, acc_n, mask=m_bu)
        tl.store(g_d + bu, acc_d, mask=m_bu)
        tl.store(g_cm + bu, acc_cm, mask=m_bu)
        mu_w = tl.load(mu + ji, mask=m_ji, other=0.0)
        part = pid * U * U + ji
        tl.store(g_sig + part, acc_dzv - mu_w * acc_dz, mask=m_ji)
        tl.store(g_mu + part, -s_w * acc_dz, mask=m_ji)
        tl.store(g_we + part, acc_we, mask=m_ji)
        tl.store(g_w + part, acc_w, mask=m_ji)

    @triton.jit
    def ltc_forward_tiled_kernel(v0, nc, dt, cm, sig, nsm, we, w, vs, dens, B, U, K, BB: tl.constexpr,
                                 TILE: tl.constexpr):
        """:func:`ltc_forward_kernel` over (post j, pre i) tiles of TILE x TILE synapses: each unfold
        reads its state from ``vs`` and writes the next a post-synaptic tile at a time."""
        rb = tl.program_id(0) * BB + tl.arange(0, BB)
        rt = tl.arange(0, TILE)
        mb = rb < B
        for u0 in range(0, U, TILE):
            bu = rb[:, None] * U + (u0 + rt)[None, :]
            m_bu = mb[:, None] & (u0 + rt < U)[None, :]
            tl.store(vs + bu, tl.load(v0 + bu, mask=m_bu, other=0.0), mask=m_bu)
        tl.debug_barrier()
        for k in range(K):
            v_in = vs + k * B * U
            for j0 in range(0, U, TILE):
                rj = j0 + rt
                mj = rj < U
                num = tl.zeros((BB, TILE), dtype=tl.float32)
                den = tl.zeros((BB, TILE), dtype=tl.float32)
                for i0 in range(0, U, TILE):
                    ri = i0 + rt
                    mi = ri < U
                    m_ji = mj[:, None] & mi[None, :]
                    ji = rj[:, None] * U + ri[None, :]
                    v = tl.load(v_in + rb[:, None] * U + ri[None, :], mask=mb[:, None] & mi[None, :], other=0.0)
                    s = _sigmoid(tl.load(sig + ji, mask=m_ji, other=0.0)[None, :, :] * v[:, None, :]
                                 + tl.load(nsm + ji, mask=m_ji, other=0.0)[None, :, :])
                    num += tl.sum(tl.load(we + ji, mask=m_ji, other=0.0)[None, :, :] * s, axis=2)
                    den += tl.sum(tl.load(w + ji, mask=m_ji, other=0.0)[None, :, :] * s, axis=2)
                bj = rb[:, None] * U + rj[None, :]
                m_bj = mb[:, None] & mj[None, :]
                v = tl.load(v_in + bj, mask=m_bj, other=0.0)
                den += tl.load(dt + bj, mask=m_bj, other=1.0)
                v = (tl.load(nc + bj, mask=m_bj, other=0.0) + tl.load(cm + bj, mask=m_bj, other=0.0) * v + num) / den
                tl.store(dens + k * B * U + bj, den, mask=m_bj)
                tl.store(vs + (k + 1) * B * U + bj, v, mask=m_bj)
            tl.debug_barrier()

    @triton.jit
    def ltc_backward_tiled_kernel(g, ga, vs, dens, cm, sig, nsm, mu, we, w, g_n, g_d, g_cm, g_sig, g_mu, g_we, g_w, B,
                                  U, K, BB: tl.constexpr, TILE: tl.constexpr):
        """:func:`ltc_backward_kernel` over tiles of TILE x TILE synapses, the same terms in two
        passes an unfold: per post-synaptic tile, a = dL/dv' / den into ``ga`` (B, U) and the sums
        of g_n, g_d, g_cm; then per pre-synaptic tile i, over the post-synaptic tiles j: the
        weight gradients' sums of tile (j, i), added to this program's in place (d sig summed as
        dz (v - mu), as the derivation states it), and dL/dv_i into ``g``. g_n, g_d, g_cm and the
        (programs, J, I) sums start at zero (the caller's)."""
        pid = tl.program_id(0)
        rb = pid * BB + tl.arange(0, BB)
        rt = tl.arange(0, TILE)
        mb = rb < B
        for step in range(K):
            k = K - 1 - step
            for j0 in range(0, U, TILE):
                rj = j0 + rt
                bj = rb[:, None] * U + rj[None, :]
                m_bj = mb[:, None] & (rj < U)[None, :]
                a = tl.load(g + bj, mask=m_bj, other=0.0) / tl.load(dens + k * B * U + bj, mask=m_bj, other=1.0)
                c = -a * tl.load(vs + (k + 1) * B * U + bj, mask=m_bj, other=0.0)
                tl.store(ga + bj, a, mask=m_bj)
                tl.store(g_n + bj, tl.load(g_n + bj, mask=m_bj, other=0.0) + a, mask=m_bj)
                tl.store(g_d + bj, tl.load(g_d + bj, mask=m_bj, other=0.0) + c, mask=m_bj)
                v_in = tl.load(vs + k * B * U + bj, mask=m_bj, other=0.0)
                tl.store(g_cm + bj, tl.load(g_cm + bj, mask=m_bj, other=0.0) + a * v_in + c, mask=m_bj)
            tl.debug_barrier()
            for i0 in range(0, U, TILE):
                ri = i0 + rt
                mi = ri < U
                bi = rb[:, None] * U + ri[None, :]
                m_bi = mb[:, None] & mi[None, :]
                v_i = tl.load(vs + k * B * U + bi, mask=m_bi, other=0.0)
                gv = tl.load(cm + bi, mask=m_bi, other=0.0) * tl.load(ga + bi, mask=m_bi, other=0.0)
                for j0 in range(0, U, TILE):
                    rj = j0 + rt
                    mj = rj < U
                    bj = rb[:, None] * U + rj[None, :]
                    m_bj = mb[:, None] & mj[None, :]
                    a = tl.load(ga + bj, mask=m_bj, other=0.0)
                    c = -a * tl.load(vs + (k + 1) * B * U + bj, mask=m_bj, other=0.0)
                    ji = rj[:, None] * U + ri[None, :]
                    m_ji = mj[:, None] & mi[None, :]
                    s_w = tl.load(sig + ji, mask=m_ji, other=0.0)
                    n_w = tl.load(nsm + ji, mask=m_ji, other=0.0)
                    s = _sigmoid(s_w[None, :, :] * v_i[:, None, :] + n_w[None, :, :])
                    dz = (a[:, :, None] * tl.load(we + ji, mask=m_ji, other=0.0)[None, :, :]
                          + c[:, :, None] * tl.load(w + ji, mask=m_ji, other=0.0)[None, :, :]) * s * (1.0 - s)
                    gv += tl.sum(dz * s_w[None, :, :], axis=1)
                    part = pid * U * U + ji
                    mu_w = tl.load(mu + ji, mask=m_ji, other=0.0)
                    d_sig = tl.sum(dz * (v_i[:, None, :] - mu_w[None, :, :]), axis=0)
                    tl.store(g_sig + part, tl.load(g_sig + part, mask=m_ji, other=0.0) + d_sig, mask=m_ji)
                    d_mu = -s_w * tl.sum(dz, axis=0)
                    tl.store(g_mu + part, tl.load(g_mu + part, mask=m_ji, other=0.0) + d_mu, mask=m_ji)
                    d_we = tl.sum(a[:, :, None] * s, axis=0)
                    tl.store(g_we + part, tl.load(g_we + part, mask=m_ji, other=0.0) + d_we, mask=m_ji)
                    d_w = tl.sum(c[:, :, None] * s, axis=0)
                    tl.store(g_w + part, tl.load(g_w + part, mask=m_ji, other=0.0) + d_w, mask=m_ji)
                tl.store(g + bi, gv, mask=m_bi)
            tl.debug_barrier()


def _block(n: int) -> int:
    return max(16, 1 << (n - 1).bit_length())


def kernels(b: Blocks):
    """(forward kernel, backward kernel) for blocks ``b``: the tiled or the resident ones."""
    if b.tiled:
        return ltc_forward_tiled_kernel, ltc_backward_tiled_kernel
    return ltc_forward_kernel, ltc_backward_kernel


def forward(v0, n_const, d_total, cm_t, sig_t, neg_sm, we_t, w_t, unfolds: int, store: bool):
    """As :func:`.ltc_kernel.forward`; the activations are never stored (``store`` is ignored:
    the third result is None)."""
    bsz, units = v0.shape
    vs = v0.new_empty(unfolds + 1, bsz, units)
    dens = v0.new_empty(unfolds, bsz, units)
    args = [t.contiguous() for t in (v0, n_const, d_total, cm_t, sig_t, neg_sm, we_t, w_t)]
    b = blocks(units)
    kernels(b)[0][(triton.cdiv(bsz, b.bb),)](*args, vs, dens, bsz, units, unfolds, **b.constexprs,
                                            **b.options)
    return vs, dens, None


def backward(grad, vs, dens, ss, cm_t, sig_t, neg_sm, mu_t, we_t, w_t):
    """As :func:`.ltc_kernel.backward` (``ss`` None)."""
    bsz, units = grad.shape
    b = blocks(units)
    programs = triton.cdiv(bsz, b.bb)
    g = grad.clone(memory_format=torch.contiguous_format)
    zero = b.tiled  # the tiled kernel adds to its results in place
    g_n, g_d, g_cm = ((torch.zeros_like if zero else torch.empty_like)(g) for _ in range(3))
    parts = [(g.new_zeros if zero else g.new_empty)(programs, units, units) for _ in range(4)]
    args = [t.contiguous() for t in (cm_t, sig_t, neg_sm, mu_t, we_t, w_t)]
    scratch = [torch.empty_like(g)] if b.tiled else []  # the tiled kernel's dL/dv' / den
    kernels(b)[1][(programs,)](g, *scratch, vs, dens, *args, g_n, g_d, g_cm, *parts, bsz, units, dens.shape[0],
                               **b.constexprs, **b.options)
    return (g, g_n, g_d, g_cm, *(p.sum(0) for p in parts))
