/* test_quant.c: quantized block types: exact dequantization of hand-built
 * blocks, quantize -> dequantize error bounds, every SIMD vec_dot against
 * its _ref on every CPU level this machine has (bit-identical for the
 * integer types: the canonical order of quant_kernels.h), the k-quant dots
 * against bits from llama.cpp's CPU backend, and real GGUF tensors
 * against their F16 master (a minimal GGUF reader lives in this file only,
 * so the test does not depend on engine/model/gguf.c). */
#include <stdint.h>
#include "harness.h"
#include "mh/err.h"
#include "mh/quant.h"
#include "mh/threadpool.h"
#include "../../engine/kernels/quant_kernels.h"

#define H(f) mh_f32_to_f16(f)

/* ===== helpers ===== */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd_u32(void)
{
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static float rnd_uniform(void) { return (rnd_u32() + 0.5f) / 4294967296.0f; }
static float rnd_normal(void)
{
    return sqrtf(-2.0f * logf(rnd_uniform())) * cosf(6.2831853f * rnd_uniform());
}
static void fill_normal(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = rnd_normal();
}

static double rel_rmse(const float *want, const float *got, int64_t n)
{
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += (double)(want[i] - got[i]) * (want[i] - got[i]);
        s += (double)want[i] * want[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e / (double)n);
}

static const mh_dtype k_weight_types[] = {
    MH_DTYPE_F32, MH_DTYPE_F16, MH_DTYPE_BF16, MH_DTYPE_Q8_0, MH_DTYPE_Q4_0, MH_DTYPE_Q4_1,
    MH_DTYPE_Q5_0, MH_DTYPE_Q5_1, MH_DTYPE_Q2_K, MH_DTYPE_Q3_K, MH_DTYPE_Q4_K, MH_DTYPE_Q5_K,
    MH_DTYPE_Q6_K,
};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* fills a row of random valid blocks: random bytes, sane fp16 scales */
static void random_blocks(mh_dtype t, void *dst, int64_t n)
{
    if (t == MH_DTYPE_F16 || t == MH_DTYPE_BF16) {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++)
            h[i] = t == MH_DTYPE_F16 ? H(rnd_normal()) : mh_f32_to_bf16(rnd_normal());
        return;
    }
    if (t == MH_DTYPE_F32) { fill_normal(dst, n); return; }
    uint8_t *p = dst;
    size_t bytes = mh_dtype_row_size(t, n);
    for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)rnd_u32();
    const mh_dtype_traits *tr = mh_dtype_info(t);
    for (int64_t b = 0; b < n / tr->block_size; b++) {
        uint8_t *blk = p + b * tr->type_size;
        uint16_t d = H(0.01f + 0.02f * rnd_uniform()), m = H(0.01f * rnd_uniform());
        size_t off_d = 0, off_m = 2;   /* where the fp16 scales sit */
        if (t == MH_DTYPE_Q2_K) off_d = 80, off_m = 82;
        if (t == MH_DTYPE_Q3_K) off_d = 108, off_m = 108;
        if (t == MH_DTYPE_Q6_K) off_d = 208, off_m = 208;
        if (t == MH_DTYPE_Q8_0 || t == MH_DTYPE_Q4_0 || t == MH_DTYPE_Q5_0) off_m = 0;
        memcpy(blk + off_m, &m, 2);
        memcpy(blk + off_d, &d, 2);
        if (t == MH_DTYPE_Q8_0)   /* -128 is outside what quantizers emit */
            for (int j = 0; j < 32; j++) if (blk[2 + j] == 0x80) blk[2 + j] = 0x81;
    }
}

/* ===== exact dequantization of hand-built blocks ===== */

static void test_dequant_float_types(void)
{
    const uint16_t h[5] = {0x3C00, 0xC000, 0x3555, 0x0001, 0x7BFF};
    const float hw[5] = {1.0f, -2.0f, 0.333251953125f, 5.9604644775390625e-08f, 65504.0f};
    float out[5];
    CHECK(mh_dequantize_row(MH_DTYPE_F16, h, out, 5) == MH_OK);
    for (int i = 0; i < 5; i++) CHECK(out[i] == hw[i]);
    const uint16_t b[3] = {0x3F80, 0xC040, 0x4049};
    const float bw[3] = {1.0f, -3.0f, 3.140625f};
    CHECK(mh_dequantize_row(MH_DTYPE_BF16, b, out, 3) == MH_OK);
    for (int i = 0; i < 3; i++) CHECK(out[i] == bw[i]);
}

static void test_dequant_q8_0_q4_q5(void)
{
    float out[32];
    mh_block_q8_0 b8 = {.d = 0x3800};   /* 0.5 */
    for (int j = 0; j < 32; j++) b8.qs[j] = (int8_t)(j * 8 - 127);
    CHECK(mh_dequantize_row(MH_DTYPE_Q8_0, &b8, out, 32) == MH_OK);
    for (int j = 0; j < 32; j++) CHECK(out[j] == (j * 8 - 127) * 0.5f);

    mh_block_q4_0 b4 = {.d = 0x4000};   /* 2.0; byte j: low j, high 15-j */
    for (int j = 0; j < 16; j++) b4.qs[j] = (uint8_t)(j | (15 - j) << 4);
    CHECK(mh_dequantize_row(MH_DTYPE_Q4_0, &b4, out, 32) == MH_OK);
    for (int j = 0; j < 16; j++) {
        CHECK(out[j] == (j - 8) * 2.0f);
        CHECK(out[j + 16] == (7 - j) * 2.0f);
    }
    mh_block_q4_1 b41 = {.d = 0x3800, .m = 0xBC00};   /* 0.5, -1 */
    memcpy(b41.qs, b4.qs, 16);
    CHECK(mh_dequantize_row(MH_DTYPE_Q4_1, &b41, out, 32) == MH_OK);
    CHECK(out[0] == -1.0f && out[3] == 0.5f && out[16] == 6.5f && out[31] == -1.0f);

    /* q5: qh = 0x80000001 sets the 5th bit of elements 0 and 31 */
    mh_block_q5_0 b5 = {.d = 0x3C00, .qh = {0x01, 0, 0, 0x80}};
    memcpy(b5.qs, b4.qs, 16);
    CHECK(mh_dequantize_row(MH_DTYPE_Q5_0, &b5, out, 32) == MH_OK);
    CHECK(out[0] == 0.0f && out[1] == -15.0f && out[15] == -1.0f);
    CHECK(out[16] == -1.0f && out[30] == -15.0f && out[31] == 0.0f);
    mh_block_q5_1 b51 = {.d = 0x4000, .m = 0x3C00, .qh = {0x01, 0, 0, 0x80}};
    memcpy(b51.qs, b4.qs, 16);
    CHECK(mh_dequantize_row(MH_DTYPE_Q5_1, &b51, out, 32) == MH_OK);
    CHECK(out[0] == 33.0f && out[1] == 3.0f && out[16] == 31.0f && out[31] == 33.0f);
}

static void test_dequant_q2_K_q3_K(void)
{
    float out[256];
    mh_block_q2_K b2;
    memset(&b2, 0, sizeof b2);
    b2.d = 0x3C00; b2.dmin = 0x3800;   /* 1, 0.5 */
    for (int g = 0; g < 16; g++) b2.scales[g] = (uint8_t)((g & 0xF) | (2 << 4));
    /* byte l of half h holds elements 128h + 32k + l at bits 2k */
    for (int l = 0; l < 64; l++) b2.qs[l] = 0xE4;   /* k=0:0, 1:1, 2:2, 3:3 */
    CHECK(mh_dequantize_row(MH_DTYPE_Q2_K, &b2, out, 256) == MH_OK);
    for (int e = 0; e < 256; e++) {
        int g = e / 16, level = (e % 128) / 32;
        CHECK(out[e] == (float)(g * level) - 1.0f);
    }
    mh_block_q3_K b3;
    memset(&b3, 0, sizeof b3);
    b3.d = 0x3C00;
    memset(b3.qs, 0x55, sizeof b3.qs);      /* every low pair = 1 */
    memset(b3.hmask, 0xFF, sizeof b3.hmask); /* high bit set: level 1 */
    b3.scales[0] = 0x21;                     /* scale 0 low 1, scale 8 low 2 */
    b3.scales[8] = 0xE4;                     /* high bits: s0 0, s4 1, s8 2, s12 3 */
    CHECK(mh_dequantize_row(MH_DTYPE_Q3_K, &b3, out, 256) == MH_OK);
    const float want[16] = {-31, -32, -32, -32, -16, -32, -32, -32, 2, -32, -32, -32, 16, -32, -32, -32};
    for (int e = 0; e < 256; e++) CHECK(out[e] == want[e / 16]);
    memset(b3.hmask, 0, sizeof b3.hmask);    /* high bit clear: level 1 - 4 */
    CHECK(mh_dequantize_row(MH_DTYPE_Q3_K, &b3, out, 256) == MH_OK);
    for (int e = 0; e < 256; e++) CHECK(out[e] == -3 * want[e / 16]);
}

static void test_dequant_q4_K_q5_K_q6_K(void)
{
    float out[256];
    mh_block_q4_K b4;
    const uint8_t sc[12] = {0x41, 2, 3, 4, 5, 6, 7, 8, 0x21, 0x43, 0x65, 0x87};
    b4.d = 0x3C00; b4.dmin = 0x3C00;
    memcpy(b4.scales, sc, 12);
    memset(b4.qs, 0x11, sizeof b4.qs);       /* level 1: y = scale - min */
    CHECK(mh_dequantize_row(MH_DTYPE_Q4_K, &b4, out, 256) == MH_OK);
    const float want4[8] = {-4, -4, -4, -4, 15, -1, -1, -1};
    for (int e = 0; e < 256; e++) CHECK(out[e] == want4[e / 32]);
    b4.qs[0] = 0xF3;                          /* element 0 -> 3, element 32 -> 15 */
    CHECK(mh_dequantize_row(MH_DTYPE_Q4_K, &b4, out, 256) == MH_OK);
    CHECK(out[0] == 3 * 1 - 5.0f && out[32] == 15 * 2 - 6.0f);

    mh_block_q5_K b5;
    b5.d = 0x3800; b5.dmin = 0;               /* 0.5 */
    memset(b5.scales, 0, 12);
    for (int j = 0; j < 4; j++) b5.scales[j] = 2;   /* groups 0..3: sc 2, 4..7: 0 */
    memset(b5.qs, 0x00, sizeof b5.qs);
    memset(b5.qh, 0x05, sizeof b5.qh);        /* bits 0, 2: groups 0 and 2 get +16 */
    CHECK(mh_dequantize_row(MH_DTYPE_Q5_K, &b5, out, 256) == MH_OK);
    for (int e = 0; e < 256; e++) CHECK(out[e] == ((e / 32 == 0 || e / 32 == 2) ? 16.0f : 0.0f));

    mh_block_q6_K b6;
    b6.d = 0x3800;                            /* 0.5 */
    for (int g = 0; g < 16; g++) b6.scales[g] = (int8_t)(g - 8);
    memset(b6.ql, 0x21, sizeof b6.ql);        /* low nibble 1, high nibble 2 */
    memset(b6.qh, 0xE4, sizeof b6.qh);        /* q1 +0, q2 +16, q3 +32, q4 +48 */
    CHECK(mh_dequantize_row(MH_DTYPE_Q6_K, &b6, out, 256) == MH_OK);
    const int lv[4] = {1 - 32, 1 + 16 - 32, 2 + 32 - 32, 2 + 48 - 32};
    for (int e = 0; e < 256; e++) CHECK(out[e] == 0.5f * (e / 16 - 8) * lv[(e % 128) / 32]);
}

static void test_bad_input(void)
{
    float f[64] = {0};
    uint8_t buf[512] = {0};
    CHECK(mh_dequantize_row(MH_DTYPE_Q8_0, buf, f, 33) == MH_EINVAL);
    CHECK(mh_dequantize_row(MH_DTYPE_Q4_K, buf, f, 32) == MH_EINVAL);
    CHECK(mh_dequantize_row(MH_DTYPE_Q8_0, buf, f, -32) == MH_EINVAL);
    CHECK(mh_dequantize_row((mh_dtype)99, buf, f, 32) == MH_EINVAL);
    CHECK(mh_dequantize_row(MH_DTYPE_I32, buf, f, 4) == MH_ETYPE);
    CHECK(mh_dequantize_row(MH_DTYPE_Q8_0, NULL, f, 32) == MH_EINVAL);
    CHECK(mh_dequantize_row(MH_DTYPE_Q8_0, NULL, NULL, 0) == MH_OK);
    CHECK(mh_quantize_row(MH_DTYPE_Q2_K, f, buf, 256) == MH_ETYPE);
    CHECK(mh_quantize_row(MH_DTYPE_Q4_0, f, buf, 48) == MH_EINVAL);
    CHECK(mh_quant_matvec(MH_DTYPE_Q8_K, buf, 1, 256, f, f) == MH_ETYPE);
    CHECK(mh_quant_matvec(MH_DTYPE_Q8_0, buf, 1, 40, f, f) == MH_EINVAL);
    CHECK(mh_quant_matvec(MH_DTYPE_Q8_0, buf, -1, 32, f, f) == MH_EINVAL);
    CHECK(mh_quant_matvec(MH_DTYPE_Q8_0, NULL, 1, 32, f, f) == MH_EINVAL);
    CHECK(mh_quant_traits_get((mh_dtype)99)->vec_dot == NULL);
    /* all-zero input quantizes to zero blocks, not NaNs */
    const mh_dtype zt[] = {MH_DTYPE_Q8_0, MH_DTYPE_Q4_0, MH_DTYPE_Q4_K, MH_DTYPE_Q5_K, MH_DTYPE_Q6_K, MH_DTYPE_Q8_K};
    float z[256] = {0}, back[256];
    for (int i = 0; i < COUNT(zt); i++) {
        CHECK(mh_quantize_row(zt[i], z, buf, 256) == MH_OK);
        CHECK(mh_dequantize_row(zt[i], buf, back, 256) == MH_OK);
        for (int j = 0; j < 256; j++) CHECK(back[j] == 0.0f);
    }
}

/* ===== quantize -> dequantize ===== */

static void test_round_trip(void)
{
    static const struct { mh_dtype t; double bound; } cases[] = {
        {MH_DTYPE_Q8_0, 0.01}, {MH_DTYPE_Q8_K, 0.01}, {MH_DTYPE_Q6_K, 0.02}, {MH_DTYPE_Q5_K, 0.04},
        {MH_DTYPE_Q4_K, 0.08}, {MH_DTYPE_Q4_0, 0.12}, {MH_DTYPE_Q4_1, 0.12}, {MH_DTYPE_Q5_0, 0.06},
        {MH_DTYPE_Q5_1, 0.06}, {MH_DTYPE_F16, 0.001}, {MH_DTYPE_BF16, 0.005},
    };
    enum { N = 256 * 64 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    void *q = malloc(N * 4);
    CHECK(x && y && q);
    fill_normal(x, N);
    int ok = 1;
    for (int c = 0; c < COUNT(cases) && ok; c++) {
        ok = mh_quantize_row(cases[c].t, x, q, N) == MH_OK && mh_dequantize_row(cases[c].t, q, y, N) == MH_OK;
        double e = rel_rmse(x, y, N);
        printf("  %-5s rel rmse %.5f (bound %.3f)\n", mh_dtype_info(cases[c].t)->name, e, cases[c].bound);
        if (!(e < cases[c].bound)) ok = 0;
    }
    free(x); free(y); free(q);
    CHECK(ok);
}

/* ===== vec dot ===== */

static const int64_t k_len32[] = {32, 96, 288, 1056, 4096};
static const int64_t k_len256[] = {256, 512, 2816};
static const int64_t k_lenf[] = {1, 15, 33, 100, 257, 1000, 4096};

static int lengths_for(mh_dtype t, const int64_t **out)
{
    int bs = mh_dtype_info(t)->block_size;
    if (bs == 256) { *out = k_len256; return COUNT(k_len256); }
    if (bs == 32) { *out = k_len32; return COUNT(k_len32); }
    *out = k_lenf; return COUNT(k_lenf);
}

/* |got - want| against the scale of the sum: |w| . |x| */
static double dot_scale(mh_dtype t, const void *w, mh_dtype vt, const void *xq, int64_t n)
{
    float *wf = malloc(n * sizeof *wf), *xf = malloc(n * sizeof *xf);
    double s = 0;
    if (wf && xf && mh_dequantize_row(t, w, wf, n) == MH_OK && mh_dequantize_row(vt, xq, xf, n) == MH_OK)
        for (int64_t i = 0; i < n; i++) s += fabs((double)wf[i] * xf[i]);
    free(wf); free(xf);
    return s > 0 ? s : 1.0;
}

/* the ref kernel against an f64 dot of the dequantized operands */
static void test_vec_dot_ref_vs_dequant(void)
{
    enum { NMAX = 4096 };
    float *x = malloc(NMAX * 4), *wf = malloc(NMAX * 4), *xf = malloc(NMAX * 4);
    uint8_t *w = malloc(NMAX * 4), *xq = malloc(NMAX * 4);
    CHECK(x && wf && xf && w && xq);
    int bad = 0;
    for (int ti = 0; ti < COUNT(k_weight_types) && !bad; ti++) {
        mh_dtype t = k_weight_types[ti];
        const mh_quant_traits *tr = mh_quant_traits_for(t, MH_CPU_REF);
        const int64_t *lens;
        int nl = lengths_for(t, &lens);
        for (int li = 0; li < nl && !bad; li++) {
            int64_t n = lens[li];
            random_blocks(t, w, n);
            fill_normal(x, n);
            mh_quantize_row(tr->vec_dot_type, x, xq, n);
            mh_dequantize_row(t, w, wf, n);
            mh_dequantize_row(tr->vec_dot_type, xq, xf, n);
            double want = 0, scale = 0;
            for (int64_t i = 0; i < n; i++) { want += (double)wf[i] * xf[i]; scale += fabs((double)wf[i] * xf[i]); }
            float got;
            tr->vec_dot(n, w, xq, &got);
            if (fabs(got - want) > 2e-5 * (scale > 0 ? scale : 1)) {
                fprintf(stderr, "  %s n=%lld: ref %.7g, dequant dot %.7g\n", mh_dtype_info(t)->name, (long long)n, got, want);
                bad = 1;
            }
        }
    }
    free(x); free(wf); free(xf); free(w); free(xq);
    CHECK(!bad);
}

/* compares one SIMD trait table against the ref one; returns failures */
static int compare_level(const char *label, const mh_quant_traits *(*get)(mh_dtype, mh_cpu_level), mh_cpu_level lv)
{
    enum { NMAX = 4096 };
    float *x = malloc(NMAX * 4);
    uint8_t *w = malloc(NMAX * 4), *xq = malloc(NMAX * 4);
    int bad = !(x && w && xq);
    for (int ti = 0; ti < COUNT(k_weight_types) && !bad; ti++) {
        mh_dtype t = k_weight_types[ti];
        const mh_quant_traits *ref = mh_quant_traits_for(t, MH_CPU_REF), *fast = get(t, lv);
        if (fast->vec_dot_type != ref->vec_dot_type) { bad = 1; break; }
        const int64_t *lens;
        int nl = lengths_for(t, &lens);
        for (int li = 0; li < nl && !bad; li++) {
            int64_t n = lens[li];
            random_blocks(t, w, n);
            fill_normal(x, n);
            mh_quantize_row(ref->vec_dot_type, x, xq, n);
            float a, b;
            ref->vec_dot(n, w, xq, &a);
            fast->vec_dot(n, w, xq, &b);
            double err = fabs((double)a - b) / dot_scale(t, w, ref->vec_dot_type, xq, n);
            /* integer types: the very same bits (determinism across
             * MOONHUB_CPU); float types: within float reassociation */
            int exact = mh_dtype_info(t)->block_size > 1;
            if (exact ? memcmp(&a, &b, sizeof a) != 0 : err > 1e-4) {
                fprintf(stderr, "  %s %s n=%lld: ref %.7g fast %.7g (err %.2g)\n", label,
                        mh_dtype_info(t)->name, (long long)n, a, b, err);
                bad = 1;
            }
        }
    }
    free(x); free(w); free(xq);
    return bad;
}

static const mh_quant_traits *novnni(mh_dtype t, mh_cpu_level lv) { (void)lv; return mh_quant_traits_avx512_novnni(t); }

static void test_vec_dot_simd_vs_ref(void)
{
    mh_cpu_level best = mh_cpu_detect();
    printf("  cpu: %s%s\n", mh_cpu_level_name(best), mh_cpu_has_avx512_vnni() ? " +vnni" : "");
    for (int lv = MH_CPU_AVX2; lv <= (int)best; lv++)
        CHECK(!compare_level(mh_cpu_level_name((mh_cpu_level)lv), mh_quant_traits_for, (mh_cpu_level)lv));
    if (best >= MH_CPU_AVX512) CHECK(!compare_level("avx512-novnni", novnni, MH_CPU_AVX512));
    if (best < MH_CPU_AVX2) printf("  (no SIMD level on this CPU: only ref checked)\n");
}

/* The rows kernels (the matvec of token generation: several rows share
 * each activation load) against the ref vec_dot, row by row and bit for
 * bit, for run lengths around their row blocking; *kernels counts the
 * types that have one at this level. Returns failures. */
static int compare_rows(const char *label, const mh_quant_traits *(*get)(mh_dtype, mh_cpu_level), mh_cpu_level lv,
                        int *kernels)
{
    enum { NMAX = 4096, RMAX = 11 };
    float *x = malloc(NMAX * 4), y[RMAX];
    uint8_t *w = malloc((size_t)RMAX * NMAX * 2), *xq = malloc(NMAX * 4);
    int bad = !(x && w && xq);
    for (int ti = 0; ti < COUNT(k_weight_types) && !bad; ti++) {
        mh_dtype t = k_weight_types[ti];
        const mh_quant_traits *ref = mh_quant_traits_for(t, MH_CPU_REF), *fast = get(t, lv);
        if (!fast->vec_dot_rows) continue;
        ++*kernels;
        const int64_t *lens;
        int nl = lengths_for(t, &lens);
        for (int li = 0; li < nl && !bad; li++) {
            int64_t n = lens[li];
            size_t rb = mh_dtype_row_size(t, n);
            for (int r = 0; r < RMAX; r++) random_blocks(t, w + r * rb, n);
            fill_normal(x, n);
            mh_quantize_row(ref->vec_dot_type, x, xq, n);
            for (int R = 1; R <= RMAX && !bad; R++) {
                fast->vec_dot_rows(n, w, rb, R, xq, y);
                for (int r = 0; r < R && !bad; r++) {
                    float a;
                    ref->vec_dot(n, w + r * rb, xq, &a);
                    if (memcmp(&a, &y[r], sizeof a) != 0) {
                        fprintf(stderr, "  %s %s rows n=%lld R=%d row %d: ref %.7g rows %.7g\n", label,
                                mh_dtype_info(t)->name, (long long)n, R, r, a, y[r]);
                        bad = 1;
                    }
                }
            }
        }
    }
    free(x); free(w); free(xq);
    return bad;
}

static void test_vec_dot_rows_vs_ref(void)
{
    mh_cpu_level best = mh_cpu_detect();
    int kernels = 0;
    for (int lv = MH_CPU_AVX2; lv <= (int)best; lv++)
        CHECK(!compare_rows(mh_cpu_level_name((mh_cpu_level)lv), mh_quant_traits_for, (mh_cpu_level)lv, &kernels));
    if (best >= MH_CPU_AVX512) {
        int plain = 0;
        CHECK(!compare_rows("avx512-novnni", novnni, MH_CPU_AVX512, &plain));
        CHECK(plain >= 3);   /* q4_K, q6_K, q5_0 */
        kernels += plain;
    }
    printf("  rows kernels checked: %d\n", kernels);
}

/* ===== k-quant dots against llama.cpp's bits =====
 * Rows of random k-quant bytes and random q8_K activations from a fixed LCG
 * stream; want[][] are the floats llama.cpp's CPU backend (c392e50, x86
 * build with AVX-512: ggml's AVX2 k-quant kernels) returns for them, so
 * every level must reproduce ggml's float order exactly (quant_kernels.h). */

static uint32_t kg_next(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* one row of n weights of t: random bytes, fp16 d / dmin from the stream */
static void kg_weights(mh_dtype t, uint8_t *w, int n, uint32_t *s)
{
    const size_t bs = mh_dtype_info(t)->type_size;
    for (size_t i = 0; i < bs * (size_t)(n / 256); i++) w[i] = (uint8_t)kg_next(s);
    for (int b = 0; b < n / 256; b++) {
        const uint16_t d = H((float)(64 + kg_next(s) % 1000) / 65536.0f);
        const uint16_t m = H((float)(32 + kg_next(s) % 1000) / 131072.0f);
        memcpy(w + b * bs + (t == MH_DTYPE_Q6_K ? 208 : 0), &d, 2);
        if (t != MH_DTYPE_Q6_K) memcpy(w + b * bs + 2, &m, 2);
    }
}

/* one q8_K row: levels -128..127, consistent bsums, d from the stream */
static void kg_acts(mh_block_q8_K *x, int n, uint32_t *s)
{
    for (int b = 0; b < n / 256; b++) {
        x[b].d = (float)(100 + kg_next(s) % 1000) / 65536.0f;   /* one rounding: no fma contraction */
        for (int k = 0; k < 256; k++) x[b].qs[k] = (int8_t)(kg_next(s) & 0xFF);
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int k = 0; k < 16; k++) sum += x[b].qs[16 * g + k];
            x[b].bsums[g] = (int16_t)sum;
        }
    }
}

/* returns failures of one trait table against the llama.cpp bits */
static int k_quant_bits(const char *label, const mh_quant_traits *(*get)(mh_dtype, mh_cpu_level), mh_cpu_level lv)
{
    static const mh_dtype types[3] = {MH_DTYPE_Q4_K, MH_DTYPE_Q5_K, MH_DTYPE_Q6_K};
    static const uint32_t want[3][6] = {
        {0xc2b2d68fu, 0xc0fcb9e3u, 0x412d5574u, 0xc2993c63u, 0x4220efdbu, 0x413dcf50u},
        {0xc28ae1d8u, 0x41d96a33u, 0x4300a6ffu, 0xc3436310u, 0x429d5ca7u, 0x41a79bbfu},
        {0xc391392eu, 0xc0430940u, 0xc2b1310cu, 0x40aec210u, 0xc31d0162u, 0x443549beu},
    };
    enum { N = 1024 };
    uint8_t w[210 * N / 256];
    mh_block_q8_K x[N / 256];
    int bad = 0;
    for (int t = 0; t < 3; t++) {
        uint32_t s = 12345u + (uint32_t)t;
        for (int r = 0; r < 6; r++) {
            kg_weights(types[t], w, N, &s);
            kg_acts(x, N, &s);
            float got;
            uint32_t u;
            const mh_quant_traits *tr = get(types[t], lv);
            tr->vec_dot(N, w, x, &got);
            memcpy(&u, &got, 4);
            float one = got;   /* the matvec's rows kernel too (x = -128 included) */
            uint32_t v;
            if (tr->vec_dot_rows) tr->vec_dot_rows(N, w, 0, 1, x, &one);
            memcpy(&v, &one, 4);
            if (v != u) {
                fprintf(stderr, "  %s %s row %d: rows kernel %08x, vec_dot %08x\n", label,
                        mh_dtype_info(types[t])->name, r, v, u);
                bad++;
            }
            if (u != want[t][r]) {
                fprintf(stderr, "  %s %s row %d: got %08x, llama.cpp %08x\n", label, mh_dtype_info(types[t])->name,
                        r, u, want[t][r]);
                bad++;
            }
        }
    }
    return bad;
}

static void test_k_quant_llama_bits(void)
{
    mh_cpu_level best = mh_cpu_detect();
    for (int lv = MH_CPU_REF; lv <= (int)best; lv++)
        CHECK(!k_quant_bits(mh_cpu_level_name((mh_cpu_level)lv), mh_quant_traits_for, (mh_cpu_level)lv));
    if (best >= MH_CPU_AVX512) CHECK(!k_quant_bits("avx512-novnni", novnni, MH_CPU_AVX512));
}

/* mh_quant_matvec against the ref vec_dot row by row, on 1..3 threads and
 * row counts that split into uneven pieces (the decode matvec hands each
 * thread a large piece, then smaller ones: every row exactly once) */
static int matvec_case(int64_t rows, const float *x, uint8_t *w, uint8_t *xq, float *y)
{
    enum { N = 512 };
    const mh_dtype types[] = {MH_DTYPE_Q8_0, MH_DTYPE_Q5_0, MH_DTYPE_Q4_K, MH_DTYPE_Q6_K, MH_DTYPE_F16, MH_DTYPE_F32};
    for (int ti = 0; ti < COUNT(types); ti++) {
        mh_dtype t = types[ti];
        size_t rb = mh_dtype_row_size(t, N);
        for (int64_t r = 0; r < rows; r++) random_blocks(t, w + r * rb, N);
        for (int64_t r = 0; r < rows; r++) y[r] = NAN;
        if (mh_quant_matvec(t, w, rows, N, x, y) != MH_OK) return 1;
        const mh_quant_traits *ref = mh_quant_traits_for(t, MH_CPU_REF);
        if (ref->vec_dot_type == MH_DTYPE_F32) memcpy(xq, x, sizeof(float) * N);   /* the matvec's own x */
        else mh_quant_traits_get(ref->vec_dot_type)->from_float(x, xq, N);
        for (int64_t r = 0; r < rows; r++) {
            float want;
            ref->vec_dot(N, w + r * rb, xq, &want);
            /* integer types: the ref bits, whichever kernel the level runs */
            if (mh_dtype_info(t)->block_size > 1 ? memcmp(&want, &y[r], sizeof want) != 0
                                                 : !(fabs(want - y[r]) <= 1e-5 * dot_scale(t, w + r * rb, ref->vec_dot_type, xq, N))) {
                fprintf(stderr, "  matvec %s rows %lld row %lld: ref %.7g got %.7g (%d threads)\n",
                        mh_dtype_info(t)->name, (long long)rows, (long long)r, want, y[r], mh_threads_get());
                return 1;
            }
        }
    }
    return 0;
}

static void test_matvec(void)
{
    enum { N = 512, MAXR = 1030 };
    static const int64_t rows[] = {37, 301, 1030};
    float x[N], *y = malloc(sizeof(float) * MAXR);
    uint8_t *w = malloc((size_t)MAXR * N * 4), *xq = malloc(N * 4);
    CHECK(w && xq && y);
    fill_normal(x, N);
    for (int th = 1; th <= 3; th++) {
        mh_threads_set(th);
        for (int ri = 0; ri < COUNT(rows); ri++) CHECK(!matvec_case(rows[ri], x, w, xq, y));
    }
    mh_threads_set(0);
    free(w); free(xq); free(y);
}

/* ===== real GGUF tensors (a minimal reader, this test only) ===== */

typedef struct gg_tensor {
    const char *name;
    uint64_t name_len;
    int dtype;              /* mh_dtype, -1 when not one we know */
    int64_t ne0, ne;        /* row length, element count */
    const uint8_t *data;
} gg_tensor;

typedef struct gg_file {
    uint8_t *buf;
    size_t size;
    gg_tensor *t;
    uint64_t nt;
} gg_file;

static int gg_map_type(uint32_t g)
{
    switch (g) {
    case 0: return MH_DTYPE_F32;   case 1: return MH_DTYPE_F16;   case 2: return MH_DTYPE_Q4_0;
    case 3: return MH_DTYPE_Q4_1;  case 6: return MH_DTYPE_Q5_0;  case 7: return MH_DTYPE_Q5_1;
    case 8: return MH_DTYPE_Q8_0;  case 10: return MH_DTYPE_Q2_K; case 11: return MH_DTYPE_Q3_K;
    case 12: return MH_DTYPE_Q4_K; case 13: return MH_DTYPE_Q5_K; case 14: return MH_DTYPE_Q6_K;
    case 30: return MH_DTYPE_BF16;
    default: return -1;
    }
}

typedef struct { const uint8_t *p, *end; int ok; } gg_cur;

static uint64_t gg_take(gg_cur *c, size_t n)
{
    uint64_t v = 0;
    if (!c->ok || (size_t)(c->end - c->p) < n) { c->ok = 0; return 0; }
    memcpy(&v, c->p, n);   /* little-endian host */
    c->p += n;
    return v;
}

static const char *gg_str(gg_cur *c, uint64_t *len)
{
    *len = gg_take(c, 8);
    if (!c->ok || (uint64_t)(c->end - c->p) < *len) { c->ok = 0; return NULL; }
    const char *s = (const char *)c->p;
    c->p += *len;
    return s;
}

static void gg_skip(gg_cur *c, uint32_t type)
{
    static const uint8_t size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    uint64_t len;
    if (type == 8) { gg_str(c, &len); return; }
    if (type == 9) {
        uint32_t et = (uint32_t)gg_take(c, 4);
        uint64_t count = gg_take(c, 8);
        for (uint64_t i = 0; i < count && c->ok; i++) gg_skip(c, et);
        return;
    }
    if (type > 12) { c->ok = 0; return; }
    gg_take(c, size[type]);
}

static void gg_close(gg_file *f) { free(f->buf); free(f->t); memset(f, 0, sizeof *f); }

static int gg_open(const char *path, gg_file *f)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->buf = sz > 0 ? malloc((size_t)sz) : NULL;
    f->size = (size_t)sz;
    int ok = f->buf && fread(f->buf, 1, f->size, fp) == f->size;
    fclose(fp);
    gg_cur c = {f->buf, f->buf + f->size, ok};
    if (!ok || gg_take(&c, 4) != 0x46554747u || gg_take(&c, 4) != 3) { gg_close(f); return -1; }
    f->nt = gg_take(&c, 8);
    uint64_t nkv = gg_take(&c, 8), align = 32, len;
    for (uint64_t i = 0; i < nkv && c.ok; i++) {
        const char *key = gg_str(&c, &len);
        uint32_t type = (uint32_t)gg_take(&c, 4);
        if (c.ok && len == 17 && !memcmp(key, "general.alignment", 17) && type == 4) align = gg_take(&c, 4);
        else gg_skip(&c, type);
    }
    f->t = c.ok && f->nt < 100000 ? calloc(f->nt + 1, sizeof *f->t) : NULL;
    uint64_t *off = f->t ? calloc(f->nt + 1, sizeof *off) : NULL;
    for (uint64_t i = 0; off && i < f->nt && c.ok; i++) {
        gg_tensor *t = &f->t[i];
        t->name = gg_str(&c, &t->name_len);
        uint32_t nd = (uint32_t)gg_take(&c, 4);
        t->ne = 1;
        for (uint32_t d = 0; d < nd && d < 4; d++) {
            int64_t v = (int64_t)gg_take(&c, 8);
            if (d == 0) t->ne0 = v;
            t->ne *= v;
        }
        t->dtype = gg_map_type((uint32_t)gg_take(&c, 4));
        off[i] = gg_take(&c, 8);
    }
    size_t start = c.ok ? ((size_t)(c.p - f->buf) + align - 1) / align * align : 0;
    for (uint64_t i = 0; off && i < f->nt && c.ok; i++) {
        gg_tensor *t = &f->t[i];
        size_t bytes = t->dtype >= 0 ? mh_dtype_row_size((mh_dtype)t->dtype, t->ne) : 0;
        if (start + off[i] + bytes > f->size) c.ok = 0;
        else t->data = f->buf + start + off[i];
    }
    free(off);
    if (!c.ok || !f->t) { gg_close(f); return -1; }
    return 0;
}

static const gg_tensor *gg_find(const gg_file *f, const gg_tensor *like)
{
    for (uint64_t i = 0; i < f->nt; i++)
        if (f->t[i].name_len == like->name_len && !memcmp(f->t[i].name, like->name, like->name_len))
            return &f->t[i];
    return NULL;
}

/* rel RMSE a quantized type may show against its f16 master */
static double real_bound(int t)
{
    switch (t) {
    case MH_DTYPE_Q8_0: return 0.01;  case MH_DTYPE_Q6_K: return 0.03;
    case MH_DTYPE_Q5_0: case MH_DTYPE_Q5_1: case MH_DTYPE_Q5_K: return 0.06;
    case MH_DTYPE_Q4_K: return 0.12;  case MH_DTYPE_Q4_0: case MH_DTYPE_Q4_1: return 0.15;
    case MH_DTYPE_Q3_K: return 0.3;   case MH_DTYPE_Q2_K: return 0.5;
    default: return 0.0;
    }
}

/* y = W x through mh_quant_matvec against an f64 product of the
 * dequantized W; the gap is the activation quantization (~1%) */
static double real_matvec_err(const gg_tensor *t, const float *wf)
{
    int64_t rows = t->ne / t->ne0, n = t->ne0;
    float *x = malloc(n * sizeof *x), *y = malloc(rows * sizeof *y);
    double e = 0, s = 0;
    fill_normal(x, n);
    if (x && y && mh_quant_matvec((mh_dtype)t->dtype, t->data, rows, n, x, y) == MH_OK) {
        for (int64_t r = 0; r < rows; r++) {
            double want = 0;
            for (int64_t i = 0; i < n; i++) want += (double)wf[r * n + i] * x[i];
            e += (want - y[r]) * (want - y[r]);
            s += want * want;
        }
    } else {
        e = s = 1;
    }
    free(x); free(y);
    return sqrt(e / s);
}

/* compares every quantized tensor of qpath with the same tensor of fpath;
 * counts[t] gets how many tensors of type t were checked */
static int check_gguf_pair(const char *qpath, const char *fpath, int counts[MH_DTYPE_COUNT])
{
    gg_file q, f;
    if (gg_open(qpath, &q)) { fprintf(stderr, "  cannot parse %s\n", qpath); return 1; }
    if (gg_open(fpath, &f)) { gg_close(&q); fprintf(stderr, "  cannot parse %s\n", fpath); return 1; }
    int bad = 0, did_matvec = 0;
    for (uint64_t i = 0; i < q.nt && !bad; i++) {
        const gg_tensor *tq = &q.t[i], *tf = gg_find(&f, tq);
        if (tq->dtype < 0 || !mh_dtype_info((mh_dtype)tq->dtype)->is_quant || !tf || tf->ne != tq->ne || tf->dtype < 0)
            continue;
        float *a = malloc(tq->ne * sizeof *a), *b = malloc(tq->ne * sizeof *b);
        bad = !a || !b || mh_dequantize_row((mh_dtype)tq->dtype, tq->data, a, tq->ne) != MH_OK ||
              mh_dequantize_row((mh_dtype)tf->dtype, tf->data, b, tf->ne) != MH_OK;
        double e = bad ? 1 : rel_rmse(b, a, tq->ne);
        if (e > real_bound(tq->dtype)) {
            fprintf(stderr, "  %s %.*s (%s): rel rmse %.4f\n", qpath, (int)tq->name_len, tq->name,
                    mh_dtype_info((mh_dtype)tq->dtype)->name, e);
            bad = 1;
        }
        counts[tq->dtype]++;
        if (!bad && !did_matvec && tq->ne / tq->ne0 > 1) {
            double me = real_matvec_err(tq, a);
            printf("  %s %.*s: rmse %.4f, matvec rel err %.4f\n", mh_dtype_info((mh_dtype)tq->dtype)->name,
                   (int)tq->name_len, tq->name, e, me);
            if (me > e + 0.03) bad = 1;
            did_matvec = 1;
        }
        free(a); free(b);
    }
    gg_close(&q); gg_close(&f);
    return bad;
}

static void test_real_gguf(void)
{
    static const char *pairs[][2] = {
        {"models/mh-smol-llama-17m-Q8_0.gguf", "models/mh-smol-llama-17m-F16.gguf"},
        {"models/mh-smol-llama-17m-Q4_K_M.gguf", "models/mh-smol-llama-17m-F16.gguf"},
        {"models/mh-smol-llama-17m-Q4_0.gguf", "models/mh-smol-llama-17m-F16.gguf"},
        {"models/stories260K-Q4_0.gguf", "models/stories260K-F16.gguf"},
    };
    char qb[4096], fb[4096];
    int counts[MH_DTYPE_COUNT] = {0};
    for (int i = 0; i < COUNT(pairs); i++) {
        const char *qp = test_data_path(pairs[i][0], qb), *fp = test_data_path(pairs[i][1], fb);
        if (!qp || !fp) TEST_SKIP("shared GGUF test models not found");
        CHECK(!check_gguf_pair(qp, fp, counts));
    }
    printf("  tensors checked: q8_0 %d, q4_K %d, q6_K %d, q4_0 %d\n", counts[MH_DTYPE_Q8_0],
           counts[MH_DTYPE_Q4_K], counts[MH_DTYPE_Q6_K], counts[MH_DTYPE_Q4_0]);
    CHECK(counts[MH_DTYPE_Q8_0] > 0 && counts[MH_DTYPE_Q4_K] > 0 && counts[MH_DTYPE_Q6_K] > 0 &&
          counts[MH_DTYPE_Q4_0] > 0);
}

int main(void)
{
    TEST_RUN(test_dequant_float_types);
    TEST_RUN(test_dequant_q8_0_q4_q5);
    TEST_RUN(test_dequant_q2_K_q3_K);
    TEST_RUN(test_dequant_q4_K_q5_K_q6_K);
    TEST_RUN(test_bad_input);
    TEST_RUN(test_round_trip);
    TEST_RUN(test_vec_dot_ref_vs_dequant);
    TEST_RUN(test_vec_dot_simd_vs_ref);
    TEST_RUN(test_vec_dot_rows_vs_ref);
    TEST_RUN(test_k_quant_llama_bits);
    TEST_RUN(test_matvec);
    TEST_RUN(test_real_gguf);
    return TEST_REPORT();
}
