/* The fast LTC's step on the CPU: ltc_forward runs a step's K unfolds for the whole batch,
   ltc_backward its backward; ltc_seq_forward and ltc_seq_backward a whole sequence without mixed
   memory; ltc_sensory_forward and ltc_sensory_backward the sensory synapses of every batch row and
   step (built and loaded by liquidbench/models/compiled.py; called from ltc_kernel.py).

   Equations and the backward's vector-Jacobian products (s_ji, den_j, v'_j; g = dL/dv', dnum,
   dden, dz): docs/fast-cells.md#ltc-equations-and-backward. Names here: nc = n_const, dt = d_total
   (the constant part of the denominator, cm_t included; not a time step), cm = cm_t, nsm = -sig mu,
   we = w erev; per-row terms (B, U), synapse weights (I, J) or (J, I) as each function says. */
#include <math.h>
#include <string.h>
#define R restrict
/* Where the CPU has AVX-512, the loops take 16-wide vectors (the build's flags prefer 256 bits
   elsewhere): the unfolds' and the sensory synapses' loops are bound by their sigmoids, which
   took 30-37 % less time so on the project's CPU machine (AMD EPYC, one thread: a step of 256 rows
   x 64 units x 6 unfolds, forward 2.70 -> 2.01 ms, backward 3.24 -> 2.05 ms;
   docs/measurements-history.md, issue 34). */
#if defined(__x86_64__) && defined(__AVX512F__)
#pragma GCC target("prefer-vector-width=512")
#endif

/* exp(x), x clamped to [-87, 80], inline so that the loops calling it vectorise (glibc's vector expf
   is a call per vector of 8, which gave 1.3 G sigmoids/s on one core of the project's CPU machine
   where this gives 3.1): x = n ln2 + r with n = round(x / ln2) and |r| <= ln2 / 2, exp(r) by its
   Taylor polynomial of degree 6 (remainder below 1.2e-7 relative), 2^n written into the exponent
   bits (n >= -125: a normal float). The cap at 80 keeps every sigmoid's divisor finite (expf(80) =
   5.5e34; s is then 1.8e-35 where the exact value is below it, which no float32 sum of these terms
   sees): under -ffast-math, gcc divides by a reciprocal estimate refined by a Newton step, which
   gives NaN, not 0, for an infinite divisor (as expf's overflow at sigma (v - mu) < -88.7 did). A
   trained LTC reaches that (sigma above 16 and |v - mu| above 5 on the traffic data set), and the
   NaN then ended training. tests/test_fast_impl.py checks ltc_sigmoid against float64 over
   [-100, 100]: relative error below 1e-6. */
static inline float exp_clamped(float x) {
    x = fmaxf(fminf(x, 80.f), -87.f);
    int n = (int)(x * 1.44269504f + 128.5f) - 128;  /* truncation of a positive number: round(x / ln2) */
    float r = x - (float)n * 0.693147181f;
    float p = 1.f + r * (1.f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f + r * (0.00833333377f +
                                                                                         r * 0.00138888892f)))));
    int bits = (n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sigmoid(float z) { return 1.f / (1.f + exp_clamped(-z)); }

/* s[i] = sigmoid(z[i]) for n values: the kernel's sigmoid, exported for its test. */
void ltc_sigmoid(int n, const float *R z, float *R s) {
    for (int i = 0; i < n; i++) s[i] = sigmoid(z[i]);
}

/* s[i] = sigmoid(sj[i] * v[i] + nj[i]): one post-synaptic neuron's synapse activations. */
static inline void activations(int U, const float *R sj, const float *R nj, const float *R v, float *R s) {
    for (int i = 0; i < U; i++) s[i] = sigmoid(sj[i] * v[i] + nj[i]);
}

/* s_ji = sigmoid(sig[i,j] * v[b,i] + nsm[i,j]) for post-synaptic j and pre-synaptic i; here sig,
   nsm, we, w are (I, J) row-major (ncps's layout, pre-synaptic neuron first; the backward takes
   them transposed), states (B, U) with U = I = J. The loops run over j innermost, so that the sums
   over i accumulate in vectors over j (no horizontal sum per neuron: at 32 units those took most
   of the forward). ss, (K, B, J, I), receives every activation for the backward (a strided store,
   for the few units that keep them), or is NULL (the backward then computes them again). */
void ltc_forward(int B, int U, int K, const float *R v0, const float *R nc, const float *R dt,
                 const float *R cm, const float *R sig, const float *R nsm, const float *R we,
                 const float *R w, float *R vs, float *R dens, float *R ss) {
    float an[U], ad[U], s[U];
    memcpy(vs, v0, sizeof(float) * B * U);
    for (int k = 0; k < K; k++) {
        const float *v = vs + (size_t)k * B * U;
        float *vn = vs + (size_t)(k + 1) * B * U, *den = dens + (size_t)k * B * U;
        for (int b = 0; b < B; b++) {
            const float *vb = v + (size_t)b * U;
            memset(an, 0, sizeof an);
            memset(ad, 0, sizeof ad);
            for (int i = 0; i < U; i++) {
                const float *si = sig + (size_t)i * U, *ni = nsm + (size_t)i * U;
                const float *wei = we + (size_t)i * U, *wi = w + (size_t)i * U;
                float vi = vb[i];
                for (int j = 0; j < U; j++) {
                    s[j] = sigmoid(si[j] * vi + ni[j]);
                    an[j] += wei[j] * s[j];
                    ad[j] += wi[j] * s[j];
                }
                if (ss) {
                    float *sb = ss + ((size_t)k * B + b) * U * U + i;
                    for (int j = 0; j < U; j++) sb[(size_t)j * U] = s[j];
                }
            }
            for (int j = 0; j < U; j++) {
                size_t o = (size_t)b * U + j;
                float d = dt[o] + ad[j];
                den[o] = d;
                vn[o] = (nc[o] + cm[o] * vb[j] + an[j]) / d;
            }
        }
    }
}

/* The vector-Jacobian products of one step's K unfolds (ltc_backward without its last pass): g_mu
   receives sum dz and g_sig sum dz v, which step_finish turns into dL/dmu and dL/dsigma. */
static void step_backward(int B, int U, int K, float *R g, const float *R vs, const float *R dens,
                          const float *R cm, const float *R sig, const float *R nsm,
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
}

/* g_mu held sum dz: dL/dsigma = sum dz v - mu sum dz, dL/dmu = -sigma sum dz */
static void step_finish(int U, const float *R sig, const float *R mu, float *R g_sig, float *R g_mu) {
    for (size_t o = 0; o < (size_t)U * U; o++) {
        float sdz = g_mu[o];
        g_sig[o] -= mu[o] * sdz;
        g_mu[o] = -sig[o] * sdz;
    }
}

/* Backward of ltc_forward from g (B, U) = dL/dv_K. Accumulates into g_n, g_d (d(dt)), g_cm (B, U) and
   g_sig, g_mu, g_we, g_w (J, I), all zeroed by the caller; writes dL/dv0 into g. work: 2 (B, U).
   ss: the forward's activations, or NULL to compute them again. */
void ltc_backward(int B, int U, int K, float *R g, const float *R vs, const float *R dens,
                  const float *R cm, const float *R sig, const float *R nsm, const float *R mu,
                  const float *R we, const float *R w, const float *R ss, float *R g_n, float *R g_d,
                  float *R g_cm, float *R g_sig, float *R g_mu, float *R g_we, float *R g_w, float *R work) {
    step_backward(B, U, K, g, vs, dens, cm, sig, nsm, we, w, ss, g_n, g_d, g_cm, g_sig, g_mu, g_we, g_w, work);
    step_finish(U, sig, mu, g_sig, g_mu);
}

/* A whole sequence of T steps (no mixed memory between them) in one call: step t starts from the
   last unfold of step t-1 (v0 for t = 0). Per-step inputs nc, dt, cm are (T, B, U); vs (T, K+1, B, U),
   dens (T, K, B, U) and ss[t] (K, B, J, I) are ltc_forward's outputs for each step (ss: T pointers, one
   allocation per step (a whole sequence's would be above malloc's mmap threshold and be faulted in
   afresh at every call), or NULL). */
void ltc_seq_forward(int T, int B, int U, int K, const float *R v0, const float *R nc, const float *R dt,
                     const float *R cm, const float *R sig, const float *R nsm, const float *R we,
                     const float *R w, float *R vs, float *R dens, float *const *ss) {
    size_t n = (size_t)B * U;
    for (int t = 0; t < T; t++)
        ltc_forward(B, U, K, t ? vs + ((size_t)t * (K + 1) - 1) * n : v0, nc + t * n, dt + t * n, cm + t * n, sig,
                    nsm, we, w, vs + (size_t)t * (K + 1) * n, dens + (size_t)t * K * n,
                    ss ? ss[t] : 0);
}

/* Backward of ltc_seq_forward from grad (T, B, U) = dL/d(each step's state). Writes g_n, g_d, g_cm
   (T, B, U) per step (zeroed by the caller) and accumulates g_sig, g_mu, g_we, g_w (J, I) (zeroed) over
   all steps; g (B, U) receives dL/dv0. work: 2 (B, U). */
void ltc_seq_backward(int T, int B, int U, int K, const float *R grad, const float *R vs, const float *R dens,
                      const float *R cm, const float *R sig, const float *R nsm, const float *R mu,
                      const float *R we, const float *R w, const float *const *ss, float *R g_n, float *R g_d,
                      float *R g_cm, float *R g_sig, float *R g_mu, float *R g_we, float *R g_w, float *R g,
                      float *R work) {
    size_t n = (size_t)B * U;
    memset(g, 0, sizeof(float) * n);
    for (int t = T - 1; t >= 0; t--) {
        for (size_t o = 0; o < n; o++) g[o] += grad[t * n + o];
        step_backward(B, U, K, g, vs + (size_t)t * (K + 1) * n, dens + (size_t)t * K * n, cm + t * n, sig, nsm, we,
                      w, ss ? ss[t] : 0, g_n + t * n, g_d + t * n, g_cm + t * n, g_sig, g_mu,
                      g_we, g_w, work);
    }
    step_finish(U, sig, mu, g_sig, g_mu);
}

/* The sensory synapses of every row n (batch x step, N rows) at once: x (N, S) the mapped inputs;
   sig, nsm = -sig mu, we = w erev and w (S, U) in ncps's layout (sensory input first); writes
   nc, dc (N, U), the sums the recurrence takes as constants:
     z_nsu = sig_su x_ns + nsm_su,  s_nsu = sigmoid(z_nsu)
     nc_nu = sum_s we_su s_nsu,     dc_nu = sum_s w_su s_nsu
   Nothing is kept: the backward computes the activations again (one sigmoid per synapse, where
   storing them would take N S U floats). */
void ltc_sensory_forward(int N, int S, int U, const float *R x, const float *R sig, const float *R nsm,
                         const float *R we, const float *R w, float *R nc, float *R dc) {
    float s[U];
    for (int n = 0; n < N; n++) {
        float *R an = nc + (size_t)n * U, *R ad = dc + (size_t)n * U;
        memset(an, 0, sizeof(float) * U);
        memset(ad, 0, sizeof(float) * U);
        for (int q = 0; q < S; q++) {
            size_t o = (size_t)q * U;
            float xq = x[(size_t)n * S + q];
            for (int u = 0; u < U; u++) s[u] = sigmoid(sig[o + u] * xq + nsm[o + u]);
            for (int u = 0; u < U; u++) {
                an[u] += we[o + u] * s[u];
                ad[u] += w[o + u] * s[u];
            }
        }
    }
}

/* Backward of ltc_sensory_forward from gn, gd (N, U) = dL/dnc, dL/ddc (its vector-Jacobian
   products: docs/fast-cells.md#ltc-sensory-synapses). Writes g_x (N, S) (NULL: not wanted) and
   g_sig, g_mu, g_we, g_w (S, U), zeroed by the caller. */
void ltc_sensory_backward(int N, int S, int U, const float *R x, const float *R sig, const float *R nsm,
                          const float *R mu, const float *R we, const float *R w, const float *R gn,
                          const float *R gd, float *R g_x, float *R g_sig, float *R g_mu, float *R g_we,
                          float *R g_w) {
    float s[U];
    for (int n = 0; n < N; n++) {
        const float *R a = gn + (size_t)n * U, *R c = gd + (size_t)n * U;
        for (int q = 0; q < S; q++) {
            size_t o = (size_t)q * U;
            float xq = x[(size_t)n * S + q], gx = 0.f;
            for (int u = 0; u < U; u++) s[u] = sigmoid(sig[o + u] * xq + nsm[o + u]);
            for (int u = 0; u < U; u++) {
                g_we[o + u] += a[u] * s[u];
                g_w[o + u] += c[u] * s[u];
                float dz = (a[u] * we[o + u] + c[u] * w[o + u]) * s[u] * (1.f - s[u]);
                g_sig[o + u] += dz * xq;  /* minus mu * sum dz, below */
                g_mu[o + u] += dz;
                gx += dz * sig[o + u];
            }
            if (g_x) g_x[(size_t)n * S + q] = gx;
        }
    }
    for (size_t o = 0; o < (size_t)S * U; o++) {  /* g_mu held sum dz, as in step_finish */
        float sdz = g_mu[o];
        g_sig[o] -= mu[o] * sdz;
        g_mu[o] = -sig[o] * sdz;
    }
}
