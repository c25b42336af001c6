/* simd_impl.h: the f32 kernels written once over a small vector vocabulary
 * (VF, V_ADD, ...), included by kernels_avx2.c and kernels_avx512.c, which
 * define that vocabulary for their ISA. Layer: engine/kernels (private).
 * Tails run through the same vector code on a padded stack copy, so every
 * element sees the same arithmetic whatever n is. */
#include <math.h>
#include <string.h>

#define MH_K_CAT2(a, b) a##b
#define MH_K_CAT(a, b) MH_K_CAT2(a, b)
#define KNAME(op) MH_K_CAT(MH_K_CAT(mh_k_, op), MH_K_CAT(_f32_, SFX))

/* ===== exp and friends on one vector ===== */
static inline VF v_exp(VF x)
{
    /* n in [-150, 128]: 2^n is applied in two halves so that results near
     * FLT_MAX and subnormal results come out right */
    const VF hi = V_SET1(88.72283935546875f), lo = V_SET1(-104.0f);
    VF xc = V_MIN(V_MAX(x, lo), hi);
    VF n = V_ROUND(V_MUL(xc, V_SET1(1.44269504088896341f)));
    VF r = V_FMA(n, V_SET1(-0.693359375f), xc);         /* ln2 split hi/lo */
    r = V_FMA(n, V_SET1(2.12194440e-4f), r);
    VF p = V_SET1(1.0f / 5040);
    p = V_FMA(p, r, V_SET1(1.0f / 720));
    p = V_FMA(p, r, V_SET1(1.0f / 120));
    p = V_FMA(p, r, V_SET1(1.0f / 24));
    p = V_FMA(p, r, V_SET1(1.0f / 6));
    p = V_FMA(p, r, V_SET1(0.5f));
    p = V_FMA(p, r, V_SET1(1.0f));
    p = V_FMA(p, r, V_SET1(1.0f));
    VF y = V_LDEXP(p, n);
    y = V_SEL_GT(x, V_SET1(88.72283935546875f), V_SET1(INFINITY), y);
    y = V_SEL_LT(x, lo, V_SET1(0.0f), y);
    return V_SEL_NAN(x, x, y);
}

static inline VF v_sigmoid(VF x)
{
    return V_DIV(V_SET1(1.0f), V_ADD(V_SET1(1.0f), v_exp(V_SUB(V_SET1(0.0f), x))));
}

static inline VF v_tanh(VF x)
{
    /* 1 - 2/(e^2x + 1), with a Taylor series near 0 where that cancels */
    VF big = V_SUB(V_SET1(1.0f), V_DIV(V_SET1(2.0f), V_ADD(v_exp(V_ADD(x, x)), V_SET1(1.0f))));
    VF x2 = V_MUL(x, x);
    VF s = V_FMA(x2, V_SET1(-17.0f / 315), V_SET1(2.0f / 15));
    s = V_FMA(s, x2, V_SET1(-1.0f / 3));
    s = V_FMA(V_MUL(s, x2), x, x);
    return V_SEL_LT(V_ABS(x), V_SET1(0.0625f), s, big);
}

static inline VF v_silu(VF x) { return V_MUL(x, v_sigmoid(x)); }

static inline VF v_gelu(VF x)
{
    VF x3 = V_MUL(V_MUL(x, x), x);
    VF in = V_MUL(V_SET1(0.7978845608028654f), V_FMA(x3, V_SET1(0.044715f), x));
    return V_MUL(V_MUL(V_SET1(0.5f), x), V_ADD(V_SET1(1.0f), v_tanh(in)));
}

/* ===== elementwise ===== */
#define MH_K_BINARY(op, expr) \
void KNAME(op)(int64_t n, const float *a, const float *b, float *y) \
{ \
    int64_t i = 0; \
    for (; i + VW <= n; i += VW) { VF va = V_LOAD(a + i), vb = V_LOAD(b + i); V_STORE(y + i, expr); } \
    if (i < n) { \
        float ta[VW] = {0}, tb[VW], ty[VW]; \
        for (int k = 0; k < VW; k++) tb[k] = 1.0f; \
        memcpy(ta, a + i, (size_t)(n - i) * 4); memcpy(tb, b + i, (size_t)(n - i) * 4); \
        VF va = V_LOAD(ta), vb = V_LOAD(tb); V_STORE(ty, expr); \
        memcpy(y + i, ty, (size_t)(n - i) * 4); \
    } \
}

MH_K_BINARY(add, V_ADD(va, vb))
MH_K_BINARY(sub, V_SUB(va, vb))
MH_K_BINARY(mul, V_MUL(va, vb))
MH_K_BINARY(div, V_DIV(va, vb))

#define MH_K_UNARY(op, fn) \
void KNAME(op)(int64_t n, const float *x, float *y) \
{ \
    int64_t i = 0; \
    for (; i + VW <= n; i += VW) V_STORE(y + i, fn(V_LOAD(x + i))); \
    if (i < n) { \
        float tx[VW] = {0}, ty[VW]; \
        memcpy(tx, x + i, (size_t)(n - i) * 4); \
        V_STORE(ty, fn(V_LOAD(tx))); \
        memcpy(y + i, ty, (size_t)(n - i) * 4); \
    } \
}

MH_K_UNARY(exp, v_exp)
MH_K_UNARY(silu, v_silu)
MH_K_UNARY(gelu, v_gelu)
MH_K_UNARY(tanh, v_tanh)
MH_K_UNARY(sigmoid, v_sigmoid)

void KNAME(scale)(int64_t n, const float *x, float s, float *y)
{
    VF vs = V_SET1(s);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) V_STORE(y + i, V_MUL(V_LOAD(x + i), vs));
    for (; i < n; i++) y[i] = x[i] * s;
}

/* ===== reductions ===== */
/* loads the tail [i, n) padded with pad */
static inline VF v_tail(const float *x, int64_t i, int64_t n, float pad)
{
    float t[VW];
    for (int k = 0; k < VW; k++) t[k] = i + k < n ? x[i + k] : pad;
    return V_LOAD(t);
}

float KNAME(sum)(int64_t n, const float *x)
{
    VF s0 = V_SET1(0), s1 = V_SET1(0), s2 = V_SET1(0), s3 = V_SET1(0);
    int64_t i = 0;
    for (; i + 4 * VW <= n; i += 4 * VW) {
        s0 = V_ADD(s0, V_LOAD(x + i));
        s1 = V_ADD(s1, V_LOAD(x + i + VW));
        s2 = V_ADD(s2, V_LOAD(x + i + 2 * VW));
        s3 = V_ADD(s3, V_LOAD(x + i + 3 * VW));
    }
    for (; i + VW <= n; i += VW) s0 = V_ADD(s0, V_LOAD(x + i));
    if (i < n) s1 = V_ADD(s1, v_tail(x, i, n, 0.0f));
    return V_HSUM(V_ADD(V_ADD(s0, s1), V_ADD(s2, s3)));
}

float KNAME(max)(int64_t n, const float *x)
{
    VF m0 = V_SET1(-INFINITY), m1 = m0;
    int64_t i = 0;
    for (; i + 2 * VW <= n; i += 2 * VW) {
        m0 = V_MAX(m0, V_LOAD(x + i));
        m1 = V_MAX(m1, V_LOAD(x + i + VW));
    }
    for (; i + VW <= n; i += VW) m0 = V_MAX(m0, V_LOAD(x + i));
    if (i < n) m1 = V_MAX(m1, v_tail(x, i, n, -INFINITY));
    return V_HMAX(V_MAX(m0, m1));
}

float KNAME(dot)(int64_t n, const float *a, const float *b)
{
    VF s0 = V_SET1(0), s1 = V_SET1(0), s2 = V_SET1(0), s3 = V_SET1(0);
    int64_t i = 0;
    for (; i + 4 * VW <= n; i += 4 * VW) {
        s0 = V_FMA(V_LOAD(a + i), V_LOAD(b + i), s0);
        s1 = V_FMA(V_LOAD(a + i + VW), V_LOAD(b + i + VW), s1);
        s2 = V_FMA(V_LOAD(a + i + 2 * VW), V_LOAD(b + i + 2 * VW), s2);
        s3 = V_FMA(V_LOAD(a + i + 3 * VW), V_LOAD(b + i + 3 * VW), s3);
    }
    for (; i + VW <= n; i += VW) s0 = V_FMA(V_LOAD(a + i), V_LOAD(b + i), s0);
    if (i < n) s1 = V_FMA(v_tail(a, i, n, 0.0f), v_tail(b, i, n, 0.0f), s1);
    return V_HSUM(V_ADD(V_ADD(s0, s1), V_ADD(s2, s3)));
}

/* ===== rows ===== */
void KNAME(softmax)(int64_t n, const float *x, float *y, bool log)
{
    if (n <= 0) return;
    float mx = KNAME(max)(n, x);
    VF m = V_SET1(mx), s = V_SET1(0);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        VF e = v_exp(V_SUB(V_LOAD(x + i), m));
        if (!log) V_STORE(y + i, e);
        s = V_ADD(s, e);
    }
    if (i < n) {                           /* padding -inf contributes exp() = 0 */
        float t[VW];
        VF e = v_exp(V_SUB(v_tail(x, i, n, -INFINITY), m));
        V_STORE(t, e);
        if (!log) memcpy(y + i, t, (size_t)(n - i) * 4);
        s = V_ADD(s, e);
    }
    float sum = V_HSUM(s);
    if (log) {
        float sh = mx + logf(sum);
        VF vsh = V_SET1(sh);
        for (i = 0; i + VW <= n; i += VW) V_STORE(y + i, V_SUB(V_LOAD(x + i), vsh));
        for (; i < n; i++) y[i] = x[i] - sh;
        return;
    }
    KNAME(scale)(n, y, 1.0f / sum, y);
}

void KNAME(rms_norm)(int64_t n, const float *x, const float *w, float eps, float *y)
{
    if (n <= 0) return;
    float ss = KNAME(dot)(n, x, x);
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    if (!w) { KNAME(scale)(n, x, r, y); return; }
    VF vr = V_SET1(r);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) V_STORE(y + i, V_MUL(V_MUL(V_LOAD(x + i), vr), V_LOAD(w + i)));
    for (; i < n; i++) y[i] = x[i] * r * w[i];
}
