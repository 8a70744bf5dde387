"""The fast LTC's step as one compiled loop nest on the CPU (optional).

One call computes a step's ``ode_unfolds`` unfolds for the whole batch, and one call its backward.
The synapse activations are either stored by the forward for the backward (``store``: K B U^2 floats a
step, for sequences whose whole store fits a limit the caller sets) or computed again in the backward
(long sequences: nothing of size ``(J, B, I)`` is kept). The C source below is built and loaded
by :class:`~liquidbench.models.compiled.Kernel`; where it cannot be, the fast LTC uses its torch
implementation instead (same results; ``LIQUIDBENCH_LTC_KERNEL=0`` forces that).
"""

from __future__ import annotations

import torch

from .compiled import Kernel, ptr

SOURCE = r"""
#include <math.h>
#include <string.h>
#define R restrict

/* s[i] = sigmoid(sj[i] * v[i] + nj[i]): one post-synaptic neuron's synapse activations. */
static inline void activations(int U, const float *R sj, const float *R nj, const float *R v, float *R s) {
    for (int i = 0; i < U; i++) s[i] = 1.f / (1.f + expf(-(sj[i] * v[i] + nj[i])));
}

/* s = sigmoid(sig[j,i] * v[b,i] + nsm[j,i]) for post-synaptic j and pre-synaptic i; sig, nsm, we, w are
   (J, I) row-major (transposed against ncps), states (B, U) with U = I = J. ss, (K, B, J, I), receives
   every activation for the backward, or is NULL (the backward then computes them again). */
void ltc_forward(int B, int U, int K, const float *R v0, const float *R nc, const float *R dt,
                 const float *R cm, const float *R sig, const float *R nsm, const float *R we,
                 const float *R w, float *R vs, float *R dens, float *R ss) {
    float row[U];
    memcpy(vs, v0, sizeof(float) * B * U);
    for (int k = 0; k < K; k++) {
        const float *v = vs + (size_t)k * B * U;
        float *vn = vs + (size_t)(k + 1) * B * U, *den = dens + (size_t)k * B * U;
        for (int b = 0; b < B; b++) {
            const float *vb = v + (size_t)b * U;
            for (int j = 0; j < U; j++) {
                const float *wej = we + (size_t)j * U, *wj = w + (size_t)j * U;
                float *s = ss ? ss + (((size_t)k * B + b) * U + j) * U : row;
                activations(U, sig + (size_t)j * U, nsm + (size_t)j * U, vb, s);
                float an = 0.f, ad = 0.f;
                for (int i = 0; i < U; i++) {
                    an += wej[i] * s[i];
                    ad += wj[i] * s[i];
                }
                size_t o = (size_t)b * U + j;
                float d = dt[o] + ad;
                den[o] = d;
                vn[o] = (nc[o] + cm[o] * vb[j] + an) / d;
            }
        }
    }
}

/* Backward of ltc_forward from g (B, U) = dL/dv_K. Accumulates into g_n, g_d (d(dt)), g_cm (B, U) and
   g_sig, g_mu, g_we, g_w (J, I), all zeroed by the caller; writes dL/dv0 into g. work: 2 (B, U).
   ss: the forward's activations, or NULL to compute them again. */
void ltc_backward(int B, int U, int K, float *R g, const float *R vs, const float *R dens,
                  const float *R cm, const float *R sig, const float *R nsm, const float *R mu,
                  const float *R we, const float *R w, const float *R ss, float *R g_n, float *R g_d,
                  float *R g_cm, float *R g_sig, float *R g_mu, float *R g_we, float *R g_w, float *R work) {
    size_t n = (size_t)B * U;
    float *dn = work, *dd = work + n;
    float row[U];
    for (int k = K - 1; k >= 0; k--) {
        const float *vi = vs + (size_t)k * n, *vo = vs + (size_t)(k + 1) * n, *den = dens + (size_t)k * n;
        for (size_t o = 0; o < n; o++) {
            float a = g[o] / den[o], c = -a * vo[o];
            dn[o] = a;
            dd[o] = c;
            g_n[o] += a;
            g_d[o] += c;
            g_cm[o] += a * vi[o] + c;
            g[o] = cm[o] * a;
        }
        for (int b = 0; b < B; b++) {
            const float *vb = vi + (size_t)b * U;
            float *gb = g + (size_t)b * U;
            for (int j = 0; j < U; j++) {
                const float *sj = sig + (size_t)j * U;
                const float *wej = we + (size_t)j * U, *wj = w + (size_t)j * U;
                float *gsj = g_sig + (size_t)j * U, *gmj = g_mu + (size_t)j * U;
                float *gwej = g_we + (size_t)j * U, *gwj = g_w + (size_t)j * U;
                float a = dn[(size_t)b * U + j], c = dd[(size_t)b * U + j];
                const float *s = ss ? ss + (((size_t)k * B + b) * U + j) * U : row;
                if (!ss) activations(U, sj, nsm + (size_t)j * U, vb, row);
                for (int i = 0; i < U; i++) {
                    gwej[i] += a * s[i];
                    gwj[i] += c * s[i];
                    float dz = (a * wej[i] + c * wj[i]) * s[i] * (1.f - s[i]);
                    gsj[i] += dz * vb[i];  /* minus mu * sum dz, below */
                    gmj[i] += dz;
                    gb[i] += dz * sj[i];
                }
            }
        }
    }
    /* g_mu held sum dz: dL/dsigma = sum dz v - mu sum dz, dL/dmu = -sigma sum dz */
    for (size_t o = 0; o < (size_t)U * U; o++) {
        float sdz = g_mu[o];
        g_sig[o] -= mu[o] * sdz;
        g_mu[o] = -sig[o] * sdz;
    }
}
"""

KERNEL = Kernel("ltc_kernel", "LTC", SOURCE, {"ltc_forward": (3, 11), "ltc_backward": (3, 18)})
library, status, usable = KERNEL.library, KERNEL.status, KERNEL.usable


def forward(v0, n_const, d_total, cm_t, sig_t, neg_sm, we_t, w_t, unfolds: int, store: bool):
    """(states (K+1, B, U), denominators (K, B, U), activations (K, B, J, I) or None); arguments
    contiguous float32 on the CPU. With ``store`` the synapse activations are kept for the backward
    (K B U^2 floats), which then need not compute them again."""
    bsz, units = v0.shape
    vs = v0.new_empty(unfolds + 1, bsz, units)
    dens = v0.new_empty(unfolds, bsz, units)
    ss = v0.new_empty(unfolds, bsz, units, units) if store else None
    args = [v0, n_const, d_total, cm_t, sig_t, neg_sm, we_t, w_t, vs, dens]
    KERNEL.library().ltc_forward(bsz, units, unfolds, *map(ptr, args), ptr(ss))
    return vs, dens, ss


def backward(grad, vs, dens, ss, cm_t, sig_t, neg_sm, mu_t, we_t, w_t):
    """(dv0, d n_const, d d_total, d cm_t (direct term), d sig_t, d mu_t, d we_t, d w_t); ``ss`` the
    forward's stored activations or None."""
    bsz, units = grad.shape
    g = grad.clone(memory_format=torch.contiguous_format)
    outs = [torch.zeros_like(g) for _ in range(3)] + [torch.zeros_like(sig_t) for _ in range(4)]
    work = g.new_empty(2, bsz, units)
    args = [g, vs, dens, cm_t, sig_t, neg_sm, mu_t, we_t, w_t]
    KERNEL.library().ltc_backward(bsz, units, dens.shape[0], *map(ptr, args), ptr(ss), *map(ptr, [*outs, work]))
    return (g, *outs)
