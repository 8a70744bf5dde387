"""The fast LTC's step as Triton kernels (the CUDA path): one launch for a step's ``ode_unfolds``
unfolds over the whole batch, one for its backward; the same arguments and results as the C
kernel (:mod:`.ltc_kernel`, whose source states the forward and the backward's vector-Jacobian
products; this file computes the same terms). The synapse activations are computed again in the
backward (never stored).

Each program takes ``BB`` batch rows; the (rows, post-synaptic, pre-synaptic) activations of an
unfold are one register tile, units padded to a power of two with zero weights (and a
denominator of 1), which keep the padded neurons at zero. The weight gradients are summed per
program and added up by the caller (no atomics: the same sums on every run).

Triton is optional, as for :mod:`.cfc_triton` (same switch, ``LIQUIDBENCH_TRITON=0``).
"""

from __future__ import annotations

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
NUM_WARPS = 4

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


def _block(n: int) -> int:
    return max(16, 1 << (n - 1).bit_length())


def forward(v0, n_const, d_total, cm_t, sig_t, neg_sm, we_t, w_t, unfolds: int, store: bool):
    """As :func:`.ltc_kernel.forward`; the activations are never stored (``store`` is ignored:
    the third result is None)."""
    bsz, units = v0.shape
    vs = v0.new_empty(unfolds + 1, bsz, units)
    dens = v0.new_empty(unfolds, bsz, units)
    args = [t.contiguous() for t in (v0, n_const, d_total, cm_t, sig_t, neg_sm, we_t, w_t)]
    ltc_forward_kernel[(triton.cdiv(bsz, BB),)](*args, vs, dens, bsz, units, unfolds, BB=BB, BU=_block(units),
                                                 num_warps=NUM_WARPS)
    return vs, dens, None


def backward(grad, vs, dens, ss, cm_t, sig_t, neg_sm, mu_t, we_t, w_t):
    """As :func:`.ltc_kernel.backward` (``ss`` None)."""
    bsz, units = grad.shape
    programs = triton.cdiv(bsz, BB)
    g = grad.clone(memory_format=torch.contiguous_format)
    g_n, g_d, g_cm = (torch.empty_like(g) for _ in range(3))
    parts = [g.new_empty(programs, units, units) for _ in range(4)]
    args = [t.contiguous() for t in (cm_t, sig_t, neg_sm, mu_t, we_t, w_t)]
    ltc_backward_kernel[(programs,)](g, vs, dens, *args, g_n, g_d, g_cm, *parts, bsz, units, dens.shape[0], BB=BB,
                                     BU=_block(units), num_warps=NUM_WARPS)
    return (g, g_n, g_d, g_cm, *(p.sum(0) for p in parts))
