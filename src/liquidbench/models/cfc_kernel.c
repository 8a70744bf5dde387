/* The fast CfC's recurrence on the CPU: cfc_forward runs a whole sequence, cfc_backward its
   backward (built and loaded by liquidbench/models/compiled.py; called from cfc_kernel.py).

   Equations and the backward's derivation, forward per mode and the backward's vector-Jacobian
   products, in the names used here (a_l, y_l, q = (q1, q2, qa, qb), f1, f2, g, e, gh, dq, da_l):
   docs/fast-cells.md#cfc-equations-and-backward. This code computes them with A = LA, B = LB;
   without a backbone (L = 0: ncps's backbone_layers=0 and each layer of a wired CfC) the heads
   read [x, h] directly. With steps of 1 (no elapsed times; default and no_gate)
   qa + qb = (Wa + Wb) y + (ba + bb): the caller passes the three heads ff1, ff2 and
   time_a + time_b (H = 3U), which saves a quarter of the heads' products each way; the gate's
   gradient then serves time_a and time_b alike. The bias gradients are summed here (in double);
   the weight gradients are left to the caller (cfc_weights.weight_grads: one matrix product each
   over the whole sequence, from the pre-activation gradients written here and the forward's
   [x, h] rows and tanh values). */
#include <math.h>
#include <string.h>
#define R restrict
#define LA 1.7159f
#define LB 0.666f
#define RB 8  /* batch rows per block */
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias)); /* unaligned loads, stores */

/* sigmoid(x), finite for every finite x. The exponent is capped at 80 (expf(80) = 5.5e34; the result
   is then 1.8e-35 where the exact one is below it, a difference no float32 sum of these terms sees):
   under -ffast-math, gcc divides by a reciprocal estimate refined by a Newton step, which gives NaN,
   not 0, for the infinite divisor that expf(-x) overflows to at x < -88.7. */
static inline float sigm(float x) { return 1.f / (1.f + expf(fminf(-x, 80.f))); }
static inline float sgn(float x) { return (float)((x > 0.f) - (x < 0.f)); }

/* out[r, n] = bias[r * sb + n] (0 if bias is NULL) + sum_m x[r * sx + m] * wt[m * sw + n] for NR rows and
   the columns n0 <= n < n0 + 8 * NV; wt (M, N) row-major with row stride sw. The NR x NV accumulators
   stay in vector registers (each weight vector is loaded once for NR rows). Inlined with constant NR
   and NV, so that the loops unroll. */
static inline __attribute__((always_inline)) void block_times(const int NR, const int NV, int M, int n0,
                                                              const float *R x, int sx, const float *R wt, int sw,
                                                              const float *R bias, int sb, float *R out, int so) {
    v8 acc[RB][2], w[2];
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++) acc[r][j] = bias ? (v8)*(const v8u *)(bias + (size_t)r * sb + n0 + 8 * j) : (v8){0};
    for (int m = 0; m < M; m++) {
        const float *R wm = wt + (size_t)m * sw + n0;
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++) w[j] = *(const v8u *)(wm + 8 * j);
#pragma GCC unroll 8
        for (int r = 0; r < NR; r++) {
            float xr = x[(size_t)r * sx + m];
#pragma GCC unroll 2
            for (int j = 0; j < NV; j++) acc[r][j] += xr * w[j];
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++) *(v8u *)(out + (size_t)r * so + n0 + 8 * j) = acc[r][j];
}

/* out[r, n] = bias[r * sb + n] (0 if bias is NULL) + sum_m x[r * sx + m] * wt[m * sw + n] for nr <= RB
   rows; wt (M, N) row-major with row stride sw (>= N). A full block of RB rows takes RB x 16 columns
   at a time in registers; fewer rows take one row at a time; columns beyond the last multiple of 8
   take the plain loop. */
static void rows_times(int nr, int M, int N, const float *R x, int sx, const float *R wt, int sw, const float *R bias,
                       int sb, float *R out, int so) {
    int n16 = N / 16 * 16, n8 = N / 8 * 8;
    if (nr == RB) {
        for (int n0 = 0; n0 < n16; n0 += 16) block_times(RB, 2, M, n0, x, sx, wt, sw, bias, sb, out, so);
        if (n8 > n16) block_times(RB, 1, M, n16, x, sx, wt, sw, bias, sb, out, so);
    } else {
        for (int r = 0; r < nr; r++) {
            const float *R xr = x + (size_t)r * sx;
            const float *R br = bias ? bias + (size_t)r * sb : 0;
            float *R o = out + (size_t)r * so;
            for (int n0 = 0; n0 < n16; n0 += 16) block_times(1, 2, M, n0, xr, sx, wt, sw, br, sb, o, so);
            if (n8 > n16) block_times(1, 1, M, n16, xr, sx, wt, sw, br, sb, o, so);
        }
    }
    if (n8 == N) return;
    for (int r = 0; r < nr; r++) {
        const float *R xr = x + (size_t)r * sx;
        float *R o = out + (size_t)r * so;
        for (int n = n8; n < N; n++) o[n] = bias ? bias[(size_t)r * sb + n] : 0.f;
        for (int m = 0; m < M; m++) {
            const float *R w = wt + (size_t)m * sw;
            for (int n = n8; n < N; n++) o[n] += xr[m] * w[n];
        }
    }
}

/* acc[n] += sum over nr rows of v[r * N + n]: a block's float sum added to double accumulators. */
static void block_sum(int nr, int N, const float *R v, double *R acc) {
    float part[N];
    memcpy(part, v, sizeof(float) * N);
    for (int r = 1; r < nr; r++)
        for (int n = 0; n < N; n++) part[n] += v[(size_t)r * N + n];
    for (int n = 0; n < N; n++) acc[n] += part[n];
}

/* The sequence forward. The input x (B, T, F), the elapsed times ts (B, T) (NULL: steps of 1) and
   the result out (B, T, U) are batch-major, as the caller holds them; h0 (B, U) the initial state or
   NULL (zeros). Weights: w0t (F + U, K) layer 0's weight transposed (input columns first), b0 (K);
   hwt (L-1, K, K) the other layers' weights transposed, hb (L-1, K); wht (K, H) the heads transposed
   (ff1, ff2, time_a, time_b; H = 3U: ff1, ff2, time_a + time_b; pure: ff1, H = U), bh (H); wtau, amp
   (U) pure mode's w_tau and A. mode: 0 default, 1 no_gate, 2 pure. Without a backbone (L = 0; K, w0t,
   b0, hwt, hb unused) wht is (F + U, H): the heads take [x, h]. Writes, time-major, xh (T, B, F + U)
   every step's [x, h] rows, tanhs (L, T, B, K) every backbone layer's tanh and aux (T, B, 3, U) the
   heads' activations (f1, f2, sigmoid gate; pure: ff1, exp term), which the backward needs. Batch
   rows are taken RB at a time. */
void cfc_forward(int T, int B, int F, int U, int K, int L, int H, int mode, const float *R x, const float *R ts,
                 const float *R h0, const float *R w0t, const float *R b0, const float *R hwt, const float *R hb,
                 const float *R wht, const float *R bh, const float *R wtau, const float *R amp, float *R out,
                 float *R xh, float *R tanhs, float *R aux) {
    int M = F + U, split = H == 3 * U, KA = K > 0 ? K : 1;
    float a[RB * KA], y[RB * KA], heads[RB * H];
    float keep1 = mode == 0 ? 1.f : 0.f;  /* default: f1 (1 - gate) + gate f2; no_gate: f1 + gate f2 */
    for (int t = 0; t < T; t++) {
        for (int b0r = 0; b0r < B; b0r += RB) {
            int nr = B - b0r < RB ? B - b0r : RB;
            size_t tb = (size_t)t * B + b0r;
            float *xr = xh + tb * M;
            for (int r = 0; r < nr; r++) {
                size_t bt = (size_t)(b0r + r) * T + t;
                memcpy(xr + (size_t)r * M, x + bt * F, sizeof(float) * F);
                if (t) memcpy(xr + (size_t)r * M + F, out + (bt - 1) * U, sizeof(float) * U);
                else if (h0) memcpy(xr + (size_t)r * M + F, h0 + (size_t)(b0r + r) * U, sizeof(float) * U);
                else memset(xr + (size_t)r * M + F, 0, sizeof(float) * U);
            }
            if (!L) rows_times(nr, M, H, xr, M, wht, H, bh, 0, heads, H);
            else rows_times(nr, M, K, xr, M, w0t, K, b0, 0, a, K);
            for (int l = 0; l < L; l++) {
                if (l) rows_times(nr, K, K, y, K, hwt + (size_t)(l - 1) * K * K, K, hb + (size_t)(l - 1) * K, 0, a, K);
                float *tl = tanhs + ((size_t)l * T * B + tb) * K;
                for (int i = 0; i < nr * K; i++) {
                    tl[i] = tanhf(LB * a[i]);
                    y[i] = LA * tl[i];
                }
            }
            if (L) rows_times(nr, K, H, y, K, wht, H, bh, 0, heads, H);
            for (int r = 0; r < nr; r++) {
                const float *q = heads + (size_t)r * H;
                size_t bt = (size_t)(b0r + r) * T + t;
                float s = ts ? ts[bt] : 1.f;
                float *hn = out + bt * U, *xa = aux + (tb + r) * 3 * U;
                if (mode == 2) {
                    for (int u = 0; u < U; u++) {
                        float f = q[u], e = expf(-s * (fabsf(wtau[u]) + fabsf(f)));
                        hn[u] = amp[u] - amp[u] * e * f;
                        xa[u] = f;
                        xa[U + u] = e;
                    }
                } else {
                    /* the gate's pre-activation: one head (split) or qa s + qb; kept apart from the
                       loop below so that both loops vectorise */
                    float *gp = xa + 2 * U;
                    if (split) memcpy(gp, q + 2 * U, sizeof(float) * U);
                    else
                        for (int u = 0; u < U; u++) gp[u] = q[2 * U + u] * s + q[3 * U + u];
                    for (int u = 0; u < U; u++) {
                        float f1 = tanhf(q[u]), f2 = tanhf(q[U + u]), ti = sigm(gp[u]);
                        hn[u] = f1 + ti * (f2 - keep1 * f1);
                        xa[u] = f1;
                        xa[U + u] = f2;
                        gp[u] = ti;
                    }
                }
            }
        }
    }
}

/* The sequence backward from grad (B, T, U) = dL/dout (batch-major). Weights in torch's layout: w0
   (K, F + U), hw (L-1, K, K), wh (H, K) (the heads as the forward took them; without a backbone
   (H, F + U), and w0, hw, g_pre0, g_hid, g_b0, g_hb unused). Writes the gradients
   of the pre-activations, time-major, from which the caller forms the weight gradients as one matrix
   product each over all steps: g_pre0 (T, B, K), g_hid (L-1, T, B, K), g_heads (T, B, H); the bias
   gradients g_b0 (K), g_hb (L-1, K), g_bh (H); pure mode's g_wtau, g_amp (U); g_h (B, U) dL/dh0;
   g_x (B, T, F) dL/dx, or NULL when not wanted. */
void cfc_backward(int T, int B, int F, int U, int K, int L, int H, int mode, const float *R grad,
                  const float *R ts, const float *R w0, const float *R hw, const float *R wh, const float *R wtau,
                  const float *R amp, const float *R tanhs, const float *R aux, float *R g_pre0, float *R g_hid,
                  float *R g_heads, float *R g_b0, float *R g_hb, float *R g_bh, float *R g_wtau, float *R g_amp,
                  float *R g_h, float *R g_x) {
    int M = F + U, split = H == 3 * U, KA = K > 0 ? K : 1;
    /* the matrix that maps the first layer's pre-activation gradients to [dx, dh]: W0 (KI, F + U),
       or the heads' Wh without a backbone; its state columns are copied to wsh (KI, U), contiguous */
    int KI = L ? K : H;
    const float *win = L ? w0 : wh;
    float dy[RB * KA], dn[RB * KA], dx[RB * F], wsh[KI * U];
    for (int k = 0; k < KI; k++) memcpy(wsh + (size_t)k * U, win + (size_t)k * M + F, sizeof(float) * U);
    double sb0[KA], shb[L > 1 ? (L - 1) * K : 1], sbh[H], swtau[U], samp[U];
    float keep1 = mode == 0 ? 1.f : 0.f;
    memset(sb0, 0, sizeof sb0);
    memset(shb, 0, sizeof shb);
    memset(sbh, 0, sizeof sbh);
    memset(swtau, 0, sizeof swtau);
    memset(samp, 0, sizeof samp);
    memset(g_h, 0, sizeof(float) * B * U);
    for (int t = T - 1; t >= 0; t--) {
        for (int b0r = 0; b0r < B; b0r += RB) {
            int nr = B - b0r < RB ? B - b0r : RB;
            size_t tb = (size_t)t * B + b0r;
            for (int r = 0; r < nr; r++) {
                size_t bt = (size_t)(b0r + r) * T + t;
                const float *ghb = g_h + (size_t)(b0r + r) * U, *gr = grad + bt * U, *xa = aux + (tb + r) * 3 * U;
                float *gq = g_heads + (tb + r) * H;
                float s = ts ? ts[bt] : 1.f;
                if (mode == 2) {
                    for (int u = 0; u < U; u++) {
                        float gh = ghb[u] + gr[u], f = xa[u], e = xa[U + u], A = amp[u];
                        samp[u] += gh * (1.f - e * f);
                        float dexp = gh * A * f * e * s;  /* d/d(|w_tau| + |ff1|) */
                        swtau[u] += dexp * sgn(wtau[u]);
                        gq[u] = dexp * sgn(f) - gh * A * e;
                    }
                } else {
                    for (int u = 0; u < U; u++) {
                        float gh = ghb[u] + gr[u], f1 = xa[u], f2 = xa[U + u], ti = xa[2 * U + u];
                        float gate = gh * ti * (1.f - ti) * (f2 - keep1 * f1);
                        gq[u] = gh * (1.f - keep1 * ti) * (1.f - f1 * f1);
                        gq[U + u] = gh * ti * (1.f - f2 * f2);
                        gq[2 * U + u] = gate;
                    }
                    if (!split)
                        for (int u = 0; u < U; u++) {
                            gq[3 * U + u] = gq[2 * U + u];
                            gq[2 * U + u] *= s;
                        }
                }
            }
            block_sum(nr, H, g_heads + tb * H, sbh);
            if (L) rows_times(nr, H, K, g_heads + tb * H, H, wh, K, 0, 0, dy, K);
            for (int l = L - 1; l >= 0; l--) {
                const float *tl = tanhs + ((size_t)l * T * B + tb) * K;
                float *da = l ? g_hid + ((size_t)(l - 1) * T * B + tb) * K : g_pre0 + tb * K;
                double *sb = l ? shb + (size_t)(l - 1) * K : sb0;
                for (int i = 0; i < nr * K; i++) da[i] = dy[i] * (LA * LB) * (1.f - tl[i] * tl[i]);
                block_sum(nr, K, da, sb);
                if (l) {
                    rows_times(nr, K, K, da, K, hw + (size_t)(l - 1) * K * K, K, 0, 0, dn, K);
                    memcpy(dy, dn, sizeof(float) * nr * K);
                }
            }
            /* [dx, dh] = W0^T da_0 (no backbone: Wh^T dq): the state's columns (wsh), and the
               input's only where its gradient is wanted */
            const float *gin = L ? g_pre0 + tb * K : g_heads + tb * H;
            rows_times(nr, KI, U, gin, KI, wsh, U, 0, 0, g_h + (size_t)b0r * U, U);
            if (g_x) {
                rows_times(nr, KI, F, gin, KI, win, M, 0, 0, dx, F);
                for (int r = 0; r < nr; r++)
                    memcpy(g_x + ((size_t)(b0r + r) * T + t) * F, dx + (size_t)r * F, sizeof(float) * F);
            }
        }
    }
    for (int k = 0; k < K; k++) g_b0[k] = (float)sb0[k];
    for (int i = 0; i < (L - 1) * K; i++) g_hb[i] = (float)shb[i];
    for (int i = 0; i < H; i++) g_bh[i] = (float)sbh[i];
    if (mode == 2)
        for (int u = 0; u < U; u++) {
            g_wtau[u] = (float)swtau[u];
            g_amp[u] = (float)samp[u];
        }
}
