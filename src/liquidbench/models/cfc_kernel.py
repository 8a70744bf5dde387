"""The fast CfC's recurrence as compiled C on the CPU (optional): one call for a whole sequence's
forward, one for its backward.

Covers the fully connected (backbone) CfC in all three modes, with any number of backbone layers
and regular or irregular elapsed times, when no backbone dropout is active and without mixed
memory; the other cases, and tensors off the CPU or not float32, take the torch implementation in
:mod:`~liquidbench.models.cfc_fast` (same results within float32 rounding; ``LIQUIDBENCH_CFC_KERNEL=0``
forces it). Per step and block of 4 batch rows the C code does the small matrix products (state
share of backbone layer 0, the hidden layers, the four heads) with the block's accumulators in
vector registers (GCC/Clang vector extensions), over weights that stay in the L1/L2 cache, and the elementwise work beside them,
so that a step costs no dispatch. ``expf`` and ``tanhf``
are vectorised through glibc's libmvec where it has them (``tanhf`` since glibc 2.35; older
systems call the scalar function, which is slower but gives the same results).
The backward returns the gradients of each layer's pre-activations for every step; the weight
gradients are then one large matrix product per weight, in torch. Built and loaded by
:class:`~liquidbench.models.compiled.Kernel`.
"""

from __future__ import annotations

import torch

from .compiled import Kernel, ptr

MODES = {"default": 0, "no_gate": 1, "pure": 2}

SOURCE = r"""
#include <math.h>
#include <string.h>
#define R restrict
#define LA 1.7159f
#define LB 0.666f
#define RB 4  /* batch rows per block */
#define NB 16 /* output columns per block */
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias)); /* unaligned loads, stores */

static inline float sigm(float x) { return 1.f / (1.f + expf(-x)); }
static inline float sgn(float x) { return (float)((x > 0.f) - (x < 0.f)); }

/* out[r, n] = bias[r * sb + n] (0 if bias is NULL) + sum_m x[r * sx + m] * wt[m, n] for nr <= RB rows;
   wt (M, N) row-major. Blocks of RB rows x NB columns are accumulated in registers (each weight
   vector loaded once for RB rows); other rows and columns take the plain loop. */
static void rows_times(int nr, int M, int N, const float *R x, int sx, const float *R wt, const float *R bias, int sb,
                       float *R out, int so) {
    int n0 = 0;
    if (nr == RB) {
        for (; n0 + NB <= N; n0 += NB) {
            v8 acc[RB][NB / 8];
#pragma GCC unroll 8
            for (int r = 0; r < RB; r++)
#pragma GCC unroll 8
                for (int j = 0; j < NB / 8; j++) acc[r][j] = bias ? (v8)*(const v8u *)(bias + (size_t)r * sb + n0 + 8 * j) : (v8){0};
            for (int m = 0; m < M; m++) {
                const float *R wm = wt + (size_t)m * N + n0;
                v8 w[NB / 8];
#pragma GCC unroll 8
                for (int j = 0; j < NB / 8; j++) w[j] = *(const v8u *)(wm + 8 * j);
#pragma GCC unroll 8
                for (int r = 0; r < RB; r++) {
                    float xr = x[(size_t)r * sx + m];
#pragma GCC unroll 8
                    for (int j = 0; j < NB / 8; j++) acc[r][j] += xr * w[j];
                }
            }
#pragma GCC unroll 8
            for (int r = 0; r < RB; r++)
#pragma GCC unroll 8
                for (int j = 0; j < NB / 8; j++) *(v8u *)(out + (size_t)r * so + n0 + 8 * j) = acc[r][j];
        }
    }
    if (n0 == N) return;
    for (int r = 0; r < nr; r++) {
        const float *R xr = x + (size_t)r * sx;
        float *R o = out + (size_t)r * so;
        for (int n = n0; n < N; n++) o[n] = bias ? bias[(size_t)r * sb + n] : 0.f;
        for (int m = 0; m < M; m++) {
            const float *R w = wt + (size_t)m * N;
            for (int n = n0; n < N; n++) o[n] += xr[m] * w[n];
        }
    }
}

/* The sequence forward. Time-major, row-major: pre0 (T, B, K) the input share of backbone layer 0
   plus its bias, times LB; ts (T, B) elapsed times or NULL (steps of 1); w0t (U, K) layer 0's state
   share, transposed, times LB; hwt (L-1, K, K) the other layers' weights transposed and hb (L-1, K)
   their biases, both times LB; wht (K, H) the heads (ff1, ff2, time_a, time_b; pure: ff1 only)
   transposed, bh (H); wtau, amp (U) pure mode's w_tau and A. mode: 0 default, 1 no_gate, 2 pure.
   Writes out (T, B, U) every step's state, tanhs (L, T, B, K) every backbone layer's tanh and
   aux (T, B, 3, U) the heads' activations (f1, f2, sigmoid gate; pure: ff1, exp term), which the
   backward needs. Batch rows are taken RB at a time. */
void cfc_forward(int T, int B, int U, int K, int L, int mode, const float *R pre0, const float *R ts,
                 const float *R w0t, const float *R hwt, const float *R hb, const float *R wht, const float *R bh,
                 const float *R wtau, const float *R amp, float *R out, float *R tanhs, float *R aux) {
    int H = mode == 2 ? U : 4 * U;
    float a[RB * K], y[RB * K], heads[RB * H], zero[RB * U];
    float keep1 = mode == 0 ? 1.f : 0.f;  /* default: f1 (1 - gate) + gate f2; no_gate: f1 + gate f2 */
    memset(zero, 0, sizeof zero);
    for (int t = 0; t < T; t++) {
        for (int b0 = 0; b0 < B; b0 += RB) {
            int nr = B - b0 < RB ? B - b0 : RB;
            size_t tb = (size_t)t * B + b0;
            const float *h = t ? out + (tb - B) * U : zero;
            rows_times(nr, U, K, h, U, w0t, pre0 + tb * K, K, a, K);
            for (int l = 0; l < L; l++) {
                if (l) rows_times(nr, K, K, y, K, hwt + (size_t)(l - 1) * K * K, hb + (size_t)(l - 1) * K, 0, a, K);
                float *tl = tanhs + ((size_t)l * T * B + tb) * K;
                for (int i = 0; i < nr * K; i++) {
                    tl[i] = tanhf(a[i]);
                    y[i] = LA * tl[i];
                }
            }
            rows_times(nr, K, H, y, K, wht, bh, 0, heads, H);
            for (int r = 0; r < nr; r++) {
                const float *q = heads + (size_t)r * H;
                float s = ts ? ts[tb + r] : 1.f;
                float *hn = out + (tb + r) * U, *x = aux + (tb + r) * 3 * U;
                if (mode == 2) {
                    for (int u = 0; u < U; u++) {
                        float f = q[u], e = expf(-s * (fabsf(wtau[u]) + fabsf(f)));
                        hn[u] = amp[u] - amp[u] * e * f;
                        x[u] = f;
                        x[U + u] = e;
                    }
                } else {
                    for (int u = 0; u < U; u++) {
                        float f1 = tanhf(q[u]), f2 = tanhf(q[U + u]);
                        float ti = sigm(q[2 * U + u] * s + q[3 * U + u]);
                        hn[u] = f1 + ti * (f2 - keep1 * f1);
                        x[u] = f1;
                        x[U + u] = f2;
                        x[2 * U + u] = ti;
                    }
                }
            }
        }
    }
}

/* The sequence backward from grad (T, B, U) = dL/dout. Weights unscaled, in torch's layout: w0h
   (K, U), hw (L-1, K, K), wh (H, K). Writes the gradients of the pre-activations, from which the
   caller forms the weight gradients as one matrix product each over all steps: g_pre0 (T, B, K),
   g_hid (L-1, T, B, K), g_heads (T, B, H); accumulates pure mode's g_wtau, g_amp (U), zeroed by the
   caller. g_h (B, U): work, left holding dL/dh0. */
void cfc_backward(int T, int B, int U, int K, int L, int mode, const float *R grad, const float *R ts,
                  const float *R w0h, const float *R hw, const float *R wh, const float *R wtau, const float *R amp,
                  const float *R tanhs, const float *R aux, float *R g_pre0, float *R g_hid, float *R g_heads,
                  float *R g_wtau, float *R g_amp, float *R g_h) {
    int H = mode == 2 ? U : 4 * U;
    float dy[RB * K], dn[RB * K];
    float keep1 = mode == 0 ? 1.f : 0.f;
    memset(g_h, 0, sizeof(float) * B * U);
    for (int t = T - 1; t >= 0; t--) {
        for (int b0 = 0; b0 < B; b0 += RB) {
            int nr = B - b0 < RB ? B - b0 : RB;
            size_t tb = (size_t)t * B + b0;
            for (int r = 0; r < nr; r++) {
                const float *ghb = g_h + (size_t)(b0 + r) * U, *gr = grad + (tb + r) * U, *x = aux + (tb + r) * 3 * U;
                float *gq = g_heads + (tb + r) * H;
                float s = ts ? ts[tb + r] : 1.f;
                if (mode == 2) {
                    for (int u = 0; u < U; u++) {
                        float gh = ghb[u] + gr[u], f = x[u], e = x[U + u], A = amp[u];
                        g_amp[u] += gh * (1.f - e * f);
                        float dexp = gh * A * f * e * s;  /* d/d(|w_tau| + |ff1|) */
                        g_wtau[u] += dexp * sgn(wtau[u]);
                        gq[u] = dexp * sgn(f) - gh * A * e;
                    }
                    continue;
                }
                for (int u = 0; u < U; u++) {
                    float gh = ghb[u] + gr[u], f1 = x[u], f2 = x[U + u], ti = x[2 * U + u];
                    float gate = gh * ti * (1.f - ti) * (f2 - keep1 * f1);
                    gq[u] = gh * (1.f - keep1 * ti) * (1.f - f1 * f1);
                    gq[U + u] = gh * ti * (1.f - f2 * f2);
                    gq[2 * U + u] = gate * s;
                    gq[3 * U + u] = gate;
                }
            }
            rows_times(nr, H, K, g_heads + tb * H, H, wh, 0, 0, dy, K);
            for (int l = L - 1; l >= 0; l--) {
                const float *tl = tanhs + ((size_t)l * T * B + tb) * K;
                float *da = l ? g_hid + ((size_t)(l - 1) * T * B + tb) * K : g_pre0 + tb * K;
                for (int i = 0; i < nr * K; i++) da[i] = dy[i] * (LA * LB) * (1.f - tl[i] * tl[i]);
                if (l) {
                    rows_times(nr, K, K, da, K, hw + (size_t)(l - 1) * K * K, 0, 0, dn, K);
                    memcpy(dy, dn, sizeof(float) * nr * K);
                }
            }
            rows_times(nr, K, U, g_pre0 + tb * K, K, w0h, 0, 0, g_h + (size_t)b0 * U, U);
        }
    }
}
"""

KERNEL = Kernel("cfc_kernel", "CfC", SOURCE, {"cfc_forward": (6, 12), "cfc_backward": (6, 15)})
library, status, usable = KERNEL.library, KERNEL.status, KERNEL.usable


def _c(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.contiguous()


def forward(mode: str, pre0, ts, w0t, hwt, hb, wht, bh, wtau, amp):
    """(out (T, B, U), tanhs (L, T, B, K), aux (T, B, 3, U)); see the C source for the arguments,
    which are float32 on the CPU (made contiguous here)."""
    steps, bsz, width = pre0.shape
    units, layers = w0t.shape[0], hwt.shape[0] + 1
    args = [_c(t) for t in (pre0, ts, w0t, hwt, hb, wht, bh, wtau, amp)]  # kept alive over the call
    out = pre0.new_empty(steps, bsz, units)
    tanhs = pre0.new_empty(layers, steps, bsz, width)
    aux = pre0.new_empty(steps, bsz, 3, units)
    KERNEL.library().cfc_forward(steps, bsz, units, width, layers, MODES[mode], *map(ptr, args), ptr(out),
                                 ptr(tanhs), ptr(aux))
    return out, tanhs, aux


def backward(mode: str, grad, ts, w0h, hw, wh, wtau, amp, tanhs, aux):
    """(g_pre0 (T, B, K), g_hid (L-1, T, B, K), g_heads (T, B, H), g_wtau (U), g_amp (U))."""
    layers, steps, bsz, width = tanhs.shape
    units = w0h.shape[1]
    args = [_c(t) for t in (grad, ts, w0h, hw, wh, wtau, amp, tanhs, aux)]
    g_pre0 = grad.new_empty(steps, bsz, width)
    g_hid = grad.new_empty(layers - 1, steps, bsz, width)
    g_heads = grad.new_empty(steps, bsz, wh.shape[0])
    g_wtau, g_amp = grad.new_zeros(units), grad.new_zeros(units)
    work = grad.new_empty(bsz, units)
    KERNEL.library().cfc_backward(steps, bsz, units, width, layers, MODES[mode], *map(ptr, args),
                                  *map(ptr, (g_pre0, g_hid, g_heads, g_wtau, g_amp, work)))
    return g_pre0, g_hid, g_heads, g_wtau, g_amp
