/* test_kernels.c: every SIMD kernel against its scalar _ref on random and
 * odd sizes, for each CPU level this machine has; exact half conversions.
 * Layer: tests (C, engine/kernels + engine/base/dtype). */
#include <stdint.h>
#include <string.h>
#include "harness.h"
#include "mh/kernels.h"
#include "mh/dtype.h"

static const int64_t sizes[] = {0, 1, 7, 15, 16, 17, 31, 33, 1000, 4097};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])
#define NMAX 4097

static uint64_t rng = 0x1234567;
static uint32_t next32(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float unif(float lo, float hi) { return lo + (hi - lo) * (float)(next32() & 0xffffff) / 16777216.0f; }
static void fill(float *x, int64_t n, float lo, float hi) { for (int64_t i = 0; i < n; i++) x[i] = unif(lo, hi); }

static float xa[NMAX + 1], xb[NMAX + 1], ya[NMAX + 1], yb[NMAX + 1], w[NMAX + 1];   /* +1: sentinel */

static bool close_arr(const float *got, const float *want, int64_t n, double atol, double rtol, const char *what,
                      int level, int64_t size)
{
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = want[i];
        if (isnan(r) && isnan(g)) continue;
        if (isinf(r) && g == r) continue;
        if (!(fabs(g - r) <= atol + rtol * fabs(r))) {
            fprintf(stderr, "  %s level %d n=%lld i=%lld: got %.9g want %.9g\n", what, level,
                    (long long)size, (long long)i, g, r);
            return false;
        }
    }
    return true;
}

static void test_levels_exist(void)
{
    CHECK(mh_kernels_for(MH_CPU_REF)->level == MH_CPU_REF);
    CHECK(mh_kernels_get() != NULL);
    CHECK((int)mh_kernels_for(MH_CPU_AVX512)->level <= (int)mh_cpu_detect());
    printf("  cpu: %s\n", mh_cpu_level_name(mh_cpu_detect()));
}

static void test_binary(void)
{
    const mh_kernels *r = mh_kernels_for(MH_CPU_REF);
    for (int l = 1; l <= (int)mh_cpu_detect(); l++) {
        const mh_kernels *k = mh_kernels_for(l);
        mh_k_binary_fn fk[4] = {k->add, k->sub, k->mul, k->div}, fr[4] = {r->add, r->sub, r->mul, r->div};
        for (int s = 0; s < NSIZES; s++) {
            int64_t n = sizes[s];
            fill(xa, n, -10, 10);
            fill(xb, n, 0.5f, 4);
            for (int op = 0; op < 4; op++) {
                ya[n] = yb[n] = 12345.0f;   /* sentinel past the end */
                fk[op](n, xa, xb, ya);
                fr[op](n, xa, xb, yb);
                CHECK(close_arr(ya, yb, n, 0, 0, "binary", l, n));
                CHECK(ya[n] == 12345.0f);
            }
            k->scale(n, xa, 0.37f, ya);
            r->scale(n, xa, 0.37f, yb);
            CHECK(close_arr(ya, yb, n, 0, 0, "scale", l, n));
            memcpy(ya, xa, sizeof(float) * (size_t)n);   /* in place */
            k->add(n, ya, xb, ya);
            r->add(n, xa, xb, yb);
            CHECK(close_arr(ya, yb, n, 0, 0, "add in place", l, n));
        }
    }
}

static void test_unary(void)
{
    const mh_kernels *r = mh_kernels_for(MH_CPU_REF);
    const char *names[5] = {"exp", "silu", "gelu", "tanh", "sigmoid"};
    for (int l = 1; l <= (int)mh_cpu_detect(); l++) {
        const mh_kernels *k = mh_kernels_for(l);
        mh_k_unary_fn fk[5] = {k->exp, k->silu, k->gelu, k->tanh, k->sigmoid};
        mh_k_unary_fn fr[5] = {r->exp, r->silu, r->gelu, r->tanh, r->sigmoid};
        for (int s = 0; s < NSIZES; s++) {
            int64_t n = sizes[s];
            fill(xa, n, -20, 20);
            if (n > 8) {                   /* specials and the small-|x| branch */
                xa[0] = 0; xa[1] = -0.001f; xa[2] = 1e-6f; xa[3] = 100; xa[4] = -100;
                xa[5] = INFINITY; xa[6] = -INFINITY; xa[7] = 88.5f; xa[8] = NAN;
            }
            for (int op = 0; op < 5; op++) {
                fk[op](n, xa, ya);
                fr[op](n, xa, yb);
                CHECK_MSG(close_arr(ya, yb, n, 1e-6, 3e-6, names[op], l, n), "%s", names[op]);
            }
        }
        /* exp over its whole range, relative error */
        for (int64_t i = 0; i < 4000; i++) xa[i] = -87.0f + 175.0f * (float)i / 4000;
        k->exp(4000, xa, ya);
        r->exp(4000, xa, yb);
        CHECK(close_arr(ya, yb, 4000, 0, 2e-6, "exp range", l, 4000));
    }
}

static void test_reductions(void)
{
    const mh_kernels *r = mh_kernels_for(MH_CPU_REF);
    for (int l = 1; l <= (int)mh_cpu_detect(); l++) {
        const mh_kernels *k = mh_kernels_for(l);
        for (int s = 0; s < NSIZES; s++) {
            int64_t n = sizes[s];
            fill(xa, n, -3, 3);
            fill(xb, n, -3, 3);
            CHECK_CLOSE(k->sum(n, xa), r->sum(n, xa), 1e-4, 1e-5);
            CHECK_CLOSE(k->dot(n, xa, xb), r->dot(n, xa, xb), 1e-4, 1e-5);
            CHECK(k->max(n, xa) == r->max(n, xa));
            if (n > 3) {
                xa[n - 1] = 50;            /* max in the tail */
                CHECK(k->max(n, xa) == 50);
            }
        }
        CHECK(isinf(k->max(0, xa)) && k->max(0, xa) < 0);
    }
}

static void test_rows(void)
{
    const mh_kernels *r = mh_kernels_for(MH_CPU_REF);
    for (int l = 0; l <= (int)mh_cpu_detect(); l++) {
        const mh_kernels *k = mh_kernels_for(l);
        for (int s = 0; s < NSIZES; s++) {
            int64_t n = sizes[s];
            fill(xa, n, -15, 15);
            fill(w, n, 0.5f, 2);
            for (int lg = 0; lg < 2; lg++) {
                k->softmax_row(n, xa, ya, lg);
                r->softmax_row(n, xa, yb, lg);
                CHECK(close_arr(ya, yb, n, lg ? 1e-6 : 1e-7, 1e-5, lg ? "log_softmax" : "softmax", l, n));
            }
            if (n) {                       /* a softmax row sums to 1 */
                k->softmax_row(n, xa, ya, false);
                CHECK_CLOSE(r->sum(n, ya), 1.0, 1e-5, 0);
            }
            k->rms_norm_row(n, xa, w, 1e-5f, ya);
            r->rms_norm_row(n, xa, w, 1e-5f, yb);
            CHECK(close_arr(ya, yb, n, 1e-6, 1e-5, "rms_norm", l, n));
            k->rms_norm_row(n, xa, NULL, 1e-5f, ya);
            r->rms_norm_row(n, xa, NULL, 1e-5f, yb);
            CHECK(close_arr(ya, yb, n, 1e-6, 1e-5, "rms_norm no w", l, n));
        }
    }
    /* a known softmax */
    float x[3] = {1, 2, 3}, y[3];
    mh_kernels_get()->softmax_row(3, x, y, false);
    CHECK_CLOSE(y[0], 0.09003057, 1e-6, 0);
    CHECK_CLOSE(y[2], 0.66524096, 1e-6, 0);
}

static uint16_t h16[65536];
static float f32s[65536];

static void test_half_rows(void)
{
    for (int i = 0; i < 65536; i++) h16[i] = (uint16_t)i;
    for (int l = 0; l <= (int)mh_cpu_detect(); l++) {
        const mh_kernels *k = mh_kernels_for(l);
        /* f16 -> f32 for every bit pattern, bit-exact to the scalar conversion */
        k->f16_to_f32(65536, h16, f32s);
        for (int i = 0; i < 65536; i++) {
            float want = mh_f16_to_f32((uint16_t)i);
            CHECK_MSG(!memcmp(&f32s[i], &want, 4), "level %d f16 %04x", l, i);
        }
        k->bf16_to_f32(65536, h16, f32s);
        for (int i = 0; i < 65536; i++) {
            float want = mh_bf16_to_f32((uint16_t)i);
            CHECK_MSG(!memcmp(&f32s[i], &want, 4), "level %d bf16 %04x", l, i);
        }
        /* f32 -> half on random bit patterns (all classes) and odd sizes */
        for (int i = 0; i < 65536; i++) {
            uint32_t u = next32() << 16 ^ next32();
            if (i % 4 == 1) u = (u & 0x807fffffu) | ((uint32_t)(100 + i % 60) << 23);  /* near f16 range */
            memcpy(&f32s[i], &u, 4);
        }
        uint16_t out[4097];
        for (int s = 0; s < NSIZES; s++) {
            int64_t n = sizes[s];
            for (int off = 0; off + n <= 65536; off += 4099) {
                k->f32_to_f16(n, f32s + off, out);
                for (int64_t i = 0; i < n; i++)
                    CHECK_MSG(out[i] == mh_f32_to_f16(f32s[off + i]), "level %d f32->f16 %a", l, f32s[off + i]);
                k->f32_to_bf16(n, f32s + off, out);
                for (int64_t i = 0; i < n; i++)
                    CHECK_MSG(out[i] == mh_f32_to_bf16(f32s[off + i]), "level %d f32->bf16 %a", l, f32s[off + i]);
            }
        }
    }
}

static float bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t ubits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static void test_half_edges(void)
{
    CHECK(mh_f32_to_f16(1.0f) == 0x3c00);
    CHECK(mh_f32_to_f16(-2.0f) == 0xc000);
    CHECK(mh_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(mh_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(mh_f32_to_f16(65520.0f) == 0x7c00);          /* ties to even -> inf */
    CHECK(mh_f32_to_f16(INFINITY) == 0x7c00);
    CHECK(mh_f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(mh_f32_to_f16(-0.0f) == 0x8000);
    CHECK(mh_f32_to_f16(ldexpf(1, -24)) == 0x0001);    /* smallest subnormal */
    CHECK(mh_f32_to_f16(ldexpf(1, -25)) == 0x0000);    /* tie to even: 0 */
    CHECK(mh_f32_to_f16(ldexpf(3, -26)) == 0x0001);    /* 1.5 * 2^-25 rounds up */
    CHECK(mh_f32_to_f16(ldexpf(3, -25)) == 0x0002);    /* 1.5 ulp: tie to even 2 */
    CHECK(mh_f32_to_f16(ldexpf(1023, -24)) == 0x03ff); /* largest subnormal */
    CHECK(mh_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00);   /* tie: even */
    CHECK(mh_f32_to_f16(1.0f + ldexpf(3, -11)) == 0x3c02);   /* tie: up to even */
    uint16_t qn = mh_f32_to_f16(NAN);
    CHECK((qn & 0x7c00) == 0x7c00 && (qn & 0x3ff) && (qn & 0x200));
    CHECK((mh_f32_to_f16(bits(0x7f800001u)) & 0x200) != 0);  /* signaling NaN stays NaN, quiet */
    CHECK(mh_f16_to_f32(0x0001) == ldexpf(1, -24));
    CHECK(mh_f16_to_f32(0x03ff) == ldexpf(1023, -24));
    CHECK(mh_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(isinf(mh_f16_to_f32(0xfc00)) && mh_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(mh_f16_to_f32(0x7c01)));
    CHECK(ubits(mh_f16_to_f32(0x8000)) == 0x80000000u);
    for (int i = 0; i < 65536; i++) {                  /* round trip of every finite f16 */
        if ((i & 0x7c00) == 0x7c00) continue;
        CHECK(mh_f32_to_f16(mh_f16_to_f32((uint16_t)i)) == i);
    }
    CHECK(mh_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(mh_f32_to_bf16(bits(0x3f808000u)) == 0x3f80);   /* tie: even stays */
    CHECK(mh_f32_to_bf16(bits(0x3f818000u)) == 0x3f82);   /* tie: up to even */
    CHECK(mh_f32_to_bf16(bits(0x3f808001u)) == 0x3f81);
    CHECK(mh_f32_to_bf16(bits(0x7f7fffffu)) == 0x7f80);   /* max float rounds to inf */
    CHECK(mh_f32_to_bf16(bits(0x7f800001u)) == 0x7fc0);   /* sNaN -> quiet NaN, not inf */
    CHECK(mh_f32_to_bf16(bits(0xff800000u)) == 0xff80);
    CHECK(mh_f32_to_bf16(bits(0x00000001u)) == 0x0000);   /* subnormals round, not flush */
    CHECK(mh_f32_to_bf16(bits(0x00018000u)) == 0x0002);
    CHECK(mh_bf16_to_f32(0x4049) == bits(0x40490000u));
}

static void test_dtype_traits(void)
{
    CHECK(mh_dtype_info(MH_DTYPE_Q8_0)->block_size == 32 && mh_dtype_info(MH_DTYPE_Q8_0)->type_size == 34);
    CHECK(mh_dtype_info(MH_DTYPE_Q4_0)->type_size == 18);
    CHECK(mh_dtype_info(MH_DTYPE_Q4_1)->type_size == 20);
    CHECK(mh_dtype_info(MH_DTYPE_Q5_0)->type_size == 22);
    CHECK(mh_dtype_info(MH_DTYPE_Q5_1)->type_size == 24);
    CHECK(mh_dtype_info(MH_DTYPE_Q2_K)->block_size == 256 && mh_dtype_info(MH_DTYPE_Q2_K)->type_size == 84);
    CHECK(mh_dtype_info(MH_DTYPE_Q3_K)->type_size == 110);
    CHECK(mh_dtype_info(MH_DTYPE_Q4_K)->type_size == 144);
    CHECK(mh_dtype_info(MH_DTYPE_Q5_K)->type_size == 176);
    CHECK(mh_dtype_info(MH_DTYPE_Q6_K)->type_size == 210);
    CHECK(mh_dtype_info(MH_DTYPE_Q8_K)->type_size == 292);
    CHECK(mh_dtype_row_size(MH_DTYPE_Q4_K, 512) == 288);
    CHECK(mh_dtype_row_size(MH_DTYPE_F16, 3) == 6);
    CHECK(mh_dtype_from_name("F16") == MH_DTYPE_F16);
    CHECK(mh_dtype_from_name("q6_K") == MH_DTYPE_Q6_K);
    CHECK(mh_dtype_from_name("nope") == -1);
    for (int t = 0; t < MH_DTYPE_COUNT; t++) CHECK(mh_dtype_from_name(mh_dtype_info(t)->name) == t);
}

/* The llama.cpp-arithmetic kernels: every level gives the reference's very
 * bits (the whole point of them), and the arithmetic is the real thing:
 * softmax sums to 1 and its exp stays within 2 ulp-ish of libm's. */
static void test_llama_kernels(void)
{
    const mh_kernels *r = mh_kernels_for(MH_CPU_REF);
    static uint16_t kh[200 * 96];   /* (positions, ldv) rows */
    static float acc_a[64 * 80], acc_b[64 * 80], oa[80], ob[80];
    for (int i = 0; i < 200 * 96; i++) kh[i] = mh_f32_to_f16(unif(-2, 2));
    for (int l = MH_CPU_AVX2; l <= (int)mh_cpu_detect(); l++) {
        const mh_kernels *k = mh_kernels_for((mh_cpu_level)l);
        for (int s = 0; s < NSIZES; s++) {
            const int64_t n = sizes[s];
            fill(xa, n, -30, 5);
            fill(xb, n, -3, 3);
            double sa = r->softmax_exp_llama(n, xa, 5.0f, ya), sb = k->softmax_exp_llama(n, xa, 5.0f, yb);
            CHECK(sa == sb && (n == 0 || memcmp(ya, yb, sizeof(float) * (size_t)n) == 0));
            r->swiglu_llama(n, xa, xb, ya);
            k->swiglu_llama(n, xa, xb, yb);
            CHECK(n == 0 || memcmp(ya, yb, sizeof(float) * (size_t)n) == 0);
        }
        for (int64_t n = 16; n <= 256; n += 48) {   /* head sizes */
            fill(xa, n, -1, 1);
            CHECK(r->attn_score_llama(n, kh, xa) == k->attn_score_llama(n, kh, xa));
        }
        for (int64_t hd = 1; hd <= 90; hd += hd < 16 ? 7 : 24) {   /* 1 8 15 39 63 (all double), 87 */
            float sa[23], sb[23];   /* 23 positions: two groups of 8 and a partial one */
            fill(xa, hd, -1, 1);
            k->attn_scores_step_llama(23, hd, kh, hd + 5, xa, sb);
            for (int p = 0; p < 23; p++) sa[p] = r->attn_score_step_llama(hd, kh + p * (hd + 5), xa);
            CHECK(memcmp(sa, sb, sizeof sa) == 0);
            r->attn_scores_step_llama(23, hd, kh, hd + 5, xa, sb);
            CHECK(memcmp(sa, sb, sizeof sa) == 0);
        }
        for (int64_t n = 1; n <= 200; n += 37) {
            CHECK(r->attn_score_step_llama(n, kh, xa) == k->attn_score_step_llama(n, kh, xa));
            for (int64_t hd = 8; hd <= 80; hd += 24) {   /* n positions, rows of hd + 3 */
                fill(w, n, 0, 1);
                r->attn_mix_llama(n, hd, w, kh, hd + 3, acc_a, oa);
                k->attn_mix_llama(n, hd, w, kh, hd + 3, acc_b, ob);
                CHECK(memcmp(oa, ob, sizeof(float) * (size_t)hd) == 0);
                for (int64_t np = 0; np <= 128; np += 64) {   /* all, some, none in the double tail */
                    r->attn_mix_step_llama(n, np, hd, w, kh, hd + 3, acc_a, oa);
                    k->attn_mix_step_llama(n, np, hd, w, kh, hd + 3, acc_b, ob);
                    CHECK(memcmp(oa, ob, sizeof(float) * (size_t)hd) == 0);
                }
            }
        }
        /* a step's scores over many positions: 16 a pass and the rest one by one */
        for (int64_t hd = 64; hd <= 192; hd += 16) {
            fill(xb, hd, -1, 1);
            for (int64_t n = 1; n <= 70; n += 23) {   /* rows hd + 5 apart, as in a kv_dim */
                r->attn_scores_step_llama(n, hd, kh, hd + 5, xb, ya);
                k->attn_scores_step_llama(n, hd, kh, hd + 5, xb, yb);
                CHECK(memcmp(ya, yb, sizeof(float) * (size_t)n) == 0);
                CHECK(ya[n - 1] == r->attn_score_step_llama(hd, kh + (n - 1) * (hd + 5), xb));
            }
        }
    }
    fill(xa, 1000, -80, 80);
    double sum = r->softmax_exp_llama(1000, xa, 0.0f, ya);
    for (int i = 0; i < 1000; i++) CHECK(fabs(ya[i] - expf(xa[i])) <= 3e-7 * expf(xa[i]));
    xa[0] = -INFINITY;
    xa[1] = 100.0f;
    r->softmax_exp_llama(2, xa, 0.0f, ya);
    CHECK(ya[0] == 0.0f && isinf(ya[1]));
    CHECK(sum > 0);
    fill(xa, 64, -1, 1);   /* the mix of one-hot weights returns that row */
    memset(w, 0, sizeof(float) * 64);
    w[5] = 1.0f;
    r->attn_mix_llama(64, 8, w, kh, 8, acc_a, oa);
    for (int d = 0; d < 8; d++) CHECK(oa[d] == mh_f16_to_f32(kh[5 * 8 + d]));
}

int main(void)
{
    (void)test_skipped;
    TEST_RUN(test_levels_exist);
    TEST_RUN(test_dtype_traits);
    TEST_RUN(test_half_edges);
    TEST_RUN(test_binary);
    TEST_RUN(test_unary);
    TEST_RUN(test_reductions);
    TEST_RUN(test_rows);
    TEST_RUN(test_half_rows);
    TEST_RUN(test_llama_kernels);
    return TEST_REPORT();
}
