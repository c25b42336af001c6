/* kernels_llama_simd.h: the SIMD twins of kernels_llama_ref.c, written once
 * over the vector vocabulary of kernels_avx2.c / kernels_avx512.c (VF, VW,
 * V_FMA, V_LDEXP, V_LOAD_F16 ...; VH_* a half-width vector for short heads
 * where VW is 16), which include this after simd_impl.h.
 * Layer: engine/kernels (private). Bit-identical to the reference: every
 * element sees the same fused operations, the lanes the same trees
 * (quant_kernels.h). */

#include "quant_kernels.h"

/* ggml's AVX-512 exp; see kernels_llama_ref.c for the scalar statement */
static inline VF v_exp_llama(VF x)
{
    const VF r = V_SET1(0x1.8p23f);
    const VF n = V_SUB(V_FMA(x, V_SET1(0x1.715476p+0f), r), r);
    const VF nn = V_SUB(V_SET1(-0.0f), n);
    const VF b = V_FMA(nn, V_SET1(0x1.7f7d1cp-20f), V_FMA(nn, V_SET1(0x1.62e4p-1f), x));
    const VF u = V_MUL(b, b);
    const VF j = V_FMA(V_FMA(V_FMA(V_SET1(0x1.0e4020p-7f), b, V_SET1(0x1.573e2ep-5f)), u,
                             V_FMA(V_SET1(0x1.555e66p-3f), b, V_SET1(0x1.fffdb6p-2f))),
                       u, V_FMA(V_SET1(0x1.ffffecp-1f), b, V_SET1(1.0f)));
    const VF nc = V_MIN(V_MAX(n, V_SET1(-192.0f)), V_SET1(192.0f));   /* keeps V_LDEXP in range */
    VF y = V_LDEXP(j, nc);
    const VF big = V_SEL_GT(n, V_SET1(0.0f), V_SET1(INFINITY), V_SET1(0.0f));
    y = V_SEL_GT(V_ABS(n), V_SET1(192.0f), big, y);
    return V_SEL_NAN(x, x, y);
}

double KNAME_L(softmax_exp)(int64_t n, const float *x, float mx, float *y)
{
    const VF m = V_SET1(mx);
    double sum = 0;
    for (int64_t i = 0; i < n; i += 16) {
        float c[16];
        for (int k = 0; k < 16; k += VW) {
            VF e = v_exp_llama(V_SUB(v_tail(x, i + k, n, -INFINITY), m));
            V_STORE(c + k, e);
        }
        const int64_t live = n - i < 16 ? n - i : 16;
        memcpy(y + i, c, sizeof(float) * (size_t)live);
        sum += mh_k_lanes_sum16(c);
    }
    return sum;
}

void KNAME_L(swiglu)(int64_t n, const float *g, const float *u, float *y)
{
    const int64_t nv = n - n % 16;   /* ggml vectorises whole 16-chunks only */
    int64_t i = 0;
    for (; i < nv; i += VW) {
        const VF gv = V_LOAD(g + i);
        const VF s = V_DIV(gv, V_ADD(V_SET1(1.0f), v_exp_llama(V_SUB(V_SET1(0.0f), gv))));
        V_STORE(y + i, V_MUL(s, V_LOAD(u + i)));
    }
    for (; i < n; i++) y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

float KNAME_L(attn_score)(int64_t n, const uint16_t *k, const float *q)
{
    VF acc[16 / VW];
    for (int v = 0; v < 16 / VW; v++) acc[v] = V_SET1(0.0f);
    for (int64_t i = 0; i < n; i += 16)
        for (int v = 0; v < 16 / VW; v++)
            acc[v] = V_FMA(V_LOAD_F16(k + i + v * VW), V_LOAD(q + i + v * VW), acc[v]);
    float a[16];
    for (int v = 0; v < 16 / VW; v++) V_STORE(a + v * VW, acc[v]);
    return mh_k_lanes_sum16(a);
}

/* acc (lanes, hd) = 0, then row p % lanes += w[p] * v[p] for p < n, fused */
static inline void mix_rows(int64_t n, int lanes, int64_t hd, const float *w, const uint16_t *v, int64_t ldv,
                            float *acc)
{
    const int64_t dv = hd - hd % VW;
    if (n < lanes) memset(acc + n * hd, 0, sizeof(float) * (size_t)((lanes - n) * hd));   /* rows never reached */
    for (int64_t p = 0; p < n; p++) {
        float *a = acc + (p % lanes) * hd;
        const uint16_t *vr = v + p * ldv;
        const VF wp = V_SET1(w[p]);
        const bool first = p < lanes;   /* a row's first fma adds to +0, as to the zeroed row it was */
        int64_t d = 0;
        for (; d < dv; d += VW) V_STORE(a + d, V_FMA(V_LOAD_F16(vr + d), wp, first ? V_SET1(0.0f) : V_LOAD(a + d)));
#ifdef VH_W
        for (; d + VH_W <= hd; d += VH_W)
            VH_STORE(a + d, VH_FMA(VH_LOAD_F16(vr + d), VH_SET1(w[p]), first ? VH_SET1(0.0f) : VH_LOAD(a + d)));
#endif
        for (; d < hd; d++) a[d] = fmaf(_cvtsh_ss(vr[d]), w[p], first ? 0.0f : a[d]);
    }
}

void KNAME_L(attn_mix)(int64_t n, int64_t hd, const float *w, const uint16_t *v, int64_t ldv,
                       float *acc, float *out)
{
    const int64_t dv = hd - hd % VW;
    mix_rows(n, 16, hd, w, v, ldv, acc);
    int64_t d = 0;
    for (; d < dv; d += VW) {   /* the lane tree, one column of lanes per d */
        VF t[8];
        for (int l = 0; l < 8; l++) t[l] = V_ADD(V_LOAD(acc + l * hd + d), V_LOAD(acc + (l + 8) * hd + d));
        const VF s0 = V_ADD(t[0], t[4]), s1 = V_ADD(t[1], t[5]), s2 = V_ADD(t[2], t[6]), s3 = V_ADD(t[3], t[7]);
        V_STORE(out + d, V_ADD(V_ADD(s0, s2), V_ADD(s1, s3)));
    }
    for (; d < hd; d++) {
        float c[16];
        for (int l = 0; l < 16; l++) c[l] = acc[l * hd + d];
        out[d] = mh_k_lanes_sum16(c);
    }
}

float KNAME_L(attn_score_step)(int64_t n, const uint16_t *k, const float *q)
{
    const int64_t np = n - n % 64;
    VF acc[64 / VW];
    for (int v = 0; v < 64 / VW; v++) acc[v] = V_SET1(0.0f);
    for (int64_t i = 0; i < np; i += 64)
        for (int v = 0; v < 64 / VW; v++)
            acc[v] = V_FMA(V_LOAD_F16(k + i + v * VW), V_LOAD(q + i + v * VW), acc[v]);
    float a[64];
    for (int v = 0; v < 64 / VW; v++) V_STORE(a + v * VW, acc[v]);
    double s = np ? mh_k_lanes_sum64(a) : 0.0;
    /* the tail's float products a vector at a time (F16C is exact), then
     * ggml's sequential double sum */
    float pr[VW];
    int64_t i = np;
    for (; i + VW <= n; i += VW) {
        V_STORE(pr, V_MUL(V_LOAD_F16(k + i), V_LOAD(q + i)));
        for (int l = 0; l < VW; l++) s += (double)pr[l];
    }
#ifdef VH_W
    for (; i + VH_W <= n; i += VH_W) {
        VH_STORE(pr, VH_MUL(VH_LOAD_F16(k + i), VH_LOAD(q + i)));
        for (int l = 0; l < VH_W; l++) s += (double)pr[l];
    }
#endif
    for (; i < n; i++) s += (double)(_cvtsh_ss(k[i]) * q[i]);
    return (float)s;
}

/* The 64-lane tree of one VW-column of acc (64, hd) at d: lanes l, l + 16,
 * l + 32, l + 48 first (mh_k_lanes_sum64), then the halving 16-lane tree,
 * every add the scalar tree's own, one column per vector lane */
static inline VF lanes64_col(const float *acc, int64_t hd, int64_t d)
{
    VF c[16];
    for (int l = 0; l < 16; l++)
        c[l] = V_ADD(V_ADD(V_LOAD(acc + l * hd + d), V_LOAD(acc + (32 + l) * hd + d)),
                     V_ADD(V_LOAD(acc + (16 + l) * hd + d), V_LOAD(acc + (48 + l) * hd + d)));
    for (int l = 0; l < 8; l++) c[l] = V_ADD(c[l], c[l + 8]);
    for (int l = 0; l < 4; l++) c[l] = V_ADD(c[l], c[l + 4]);
    return V_ADD(V_ADD(c[0], c[2]), V_ADD(c[1], c[3]));
}

/* The 64-lane tree of one column of acc (64, hd), as the reference. */
static inline float lanes64_at(const float *acc, int64_t hd, int64_t d)
{
    float c[64];
    for (int l = 0; l < 64; l++) c[l] = acc[l * hd + d];
    return mh_k_lanes_sum64(c);
}

/* Positions from np on are summed in double per dimension, in position
 * order (ggml's scalar tail): here VW dimensions at a time (then a half
 * vector where the level has one), each lane's float product widened and
 * added exactly as the scalar loop adds it. */
void KNAME_L(attn_mix_step)(int64_t n, int64_t np, int64_t hd, const float *w, const uint16_t *v,
                            int64_t ldv, float *acc, float *out)
{
    const int64_t dv = hd - hd % VW;
    if (np) mix_rows(n < np ? n : np, 64, hd, w, v, ldv, acc);
    int64_t d = 0;
    for (; d < dv; d += VW) {
        const VF l64 = np ? lanes64_col(acc, hd, d) : V_SET1(0.0f);
        VD lo = V_WIDEN_LO(l64), hi = V_WIDEN_HI(l64);
        for (int64_t p = np; p < n; p++) {
            const VF pr = V_MUL(V_LOAD_F16(v + p * ldv + d), V_SET1(w[p]));
            lo = VD_ADD(lo, V_WIDEN_LO(pr));
            hi = VD_ADD(hi, V_WIDEN_HI(pr));
        }
        V_STORE(out + d, V_NARROW(lo, hi));
    }
#ifdef VH_W
    for (; d + VH_W <= hd; d += VH_W) {   /* VH_W floats widen into one VD */
        float l64[VH_W];
        for (int e = 0; e < VH_W; e++) l64[e] = np ? lanes64_at(acc, hd, d + e) : 0.0f;
        VD s = VH_WIDEN(VH_LOAD(l64));
        for (int64_t p = np; p < n; p++) s = VD_ADD(s, VH_WIDEN(VH_MUL(VH_LOAD_F16(v + p * ldv + d), VH_SET1(w[p]))));
        VH_STORE(out + d, VH_NARROW(s));
    }
#endif
    for (; d < hd; d++) {
        double s = np ? lanes64_at(acc, hd, d) : 0.0;
        for (int64_t p = np; p < n; p++) s += (double)(_cvtsh_ss(v[p * ldv + d]) * w[p]);
        out[d] = (float)s;
    }
}

/* Heads under 64 elements are all double tail: each position's sum is one
 * chain of dependent adds. SP positions at a time keep SP chains in flight
 * (the same adds per position, in the same order); their float products
 * come a vector or half vector at a time. */
#define SP 8
void KNAME_L(attn_scores_step)(int64_t npos, int64_t hd, const uint16_t *k, int64_t ldk, const float *q,
                               float *out)
{
    if (hd >= 64) {
        int64_t p = 0;
#ifdef V_SCORES16   /* the level's 16-position pass for heads without a double tail */
        if (hd % 64 == 0)
            for (; p + 16 <= npos; p += 16) V_SCORES16(hd, k + p * ldk, ldk, q, out + p);
#endif
        for (; p < npos; p++) out[p] = KNAME_L(attn_score_step)(hd, k + p * ldk, q);
        return;
    }
    float pr[SP][64];
    for (int64_t p0 = 0; p0 < npos; p0 += SP) {
        const int m = npos - p0 < SP ? (int)(npos - p0) : SP;
        for (int j = 0; j < m; j++) {
            const uint16_t *kr = k + (p0 + j) * ldk;
            int64_t i = 0;
            for (; i + VW <= hd; i += VW) V_STORE(pr[j] + i, V_MUL(V_LOAD_F16(kr + i), V_LOAD(q + i)));
#ifdef VH_W
            for (; i + VH_W <= hd; i += VH_W) VH_STORE(pr[j] + i, VH_MUL(VH_LOAD_F16(kr + i), VH_LOAD(q + i)));
#endif
            for (; i < hd; i++) pr[j][i] = _cvtsh_ss(kr[i]) * q[i];
        }
        double s[SP] = {0};
        if (m == SP) {   /* unrolled: the SP sums live in registers */
            for (int64_t i = 0; i < hd; i++)
                _Pragma("GCC unroll 8") for (int j = 0; j < SP; j++) s[j] += (double)pr[j][i];
        } else {
            for (int64_t i = 0; i < hd; i++)
                for (int j = 0; j < m; j++) s[j] += (double)pr[j][i];
        }
        for (int j = 0; j < m; j++) out[p0 + j] = (float)s[j];
    }
}
#undef SP
