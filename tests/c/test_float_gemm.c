/* test_float_gemm.c: the float-weight gemm (mh/float_gemm.h) of every CPU
 * level this machine has against the scalar _ref, bit for bit, for edge
 * sizes of rows, tokens and row length; the _ref against a double-precision
 * dot; then mh_linear over T tokens against T one-token calls (the greedy
 * identity of batched and speculative decoding) for f32, f16 and bf16. */
#include <stdint.h>
#include <string.h>
#include "harness.h"
#include "mh/err.h"
#include "mh/model.h"
#include "mh/float_gemm.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const mh_dtype k_types[] = {MH_DTYPE_F32, MH_DTYPE_F16, MH_DTYPE_BF16};

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd_u32(void)
{
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static float rnd_normal(void)
{
    float u = (rnd_u32() + 0.5f) / 4294967296.0f, v = (rnd_u32() + 0.5f) / 4294967296.0f;
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

/* rows of the dtype from normal floats; f holds them as the kernel reads them */
static void random_w(mh_dtype t, void *w, float *f, int64_t count)
{
    for (int64_t i = 0; i < count; i++) {
        float v = rnd_normal();
        if (t == MH_DTYPE_F16) ((uint16_t *)w)[i] = mh_f32_to_f16(v), f[i] = mh_f16_to_f32(((uint16_t *)w)[i]);
        else if (t == MH_DTYPE_BF16) ((uint16_t *)w)[i] = mh_f32_to_bf16(v), f[i] = mh_bf16_to_f32(((uint16_t *)w)[i]);
        else ((float *)w)[i] = f[i] = v;
    }
}

/* an activation: bf16 weights take x on the bf16 grid (mh_linear rounds it) */
static float rnd_x(mh_dtype t)
{
    float v = rnd_normal();
    return t == MH_DTYPE_BF16 ? mh_bf16_to_f32(mh_f32_to_bf16(v)) : v;
}

/* the kernels to check: each level's, and AVX-512 without AVX512_BF16 */
static int kernels(mh_dtype t, mh_fgemm_fn *out, const char **names)
{
    int k = 0;
    for (int l = MH_CPU_AVX2; l <= (int)mh_cpu_detect(); l++) {
        names[k] = mh_cpu_level_name((mh_cpu_level)l);
        out[k++] = mh_fgemm_for(t, (mh_cpu_level)l);
    }
    if (t == MH_DTYPE_BF16 && mh_cpu_detect() >= MH_CPU_AVX512 && mh_cpu_has_avx512_bf16()) {
        names[k] = "avx512 (emulated bf16 pairs)";
        out[k++] = mh_k_fgemm_bf16_avx512;
    }
    return k;
}

/* every level's kernel against _ref for one shape; y rows padded to ldy
 * with a sentinel that must survive (no writes outside the product) */
static int check_shape(mh_dtype t, int64_t rows, int64_t T, int64_t n)
{
    size_t wrow = mh_dtype_row_size(t, n);
    int64_t ldx = n + 3, ldy = rows + 2;
    uint8_t *w = malloc(wrow * (size_t)rows);
    float *wf = malloc(sizeof(float) * (size_t)(rows * n)), *x = malloc(sizeof(float) * (size_t)(T * ldx));
    float *want = malloc(sizeof(float) * (size_t)(T * ldy)), *got = malloc(sizeof(float) * (size_t)(T * ldy));
    int bad = !(w && wf && x && want && got);
    if (!bad) {
        random_w(t, w, wf, rows * n);
        for (int64_t i = 0; i < T * ldx; i++)   /* NaN between rows: no kernel may read past n */
            x[i] = i % ldx < n ? rnd_x(t) : NAN;
        for (int64_t i = 0; i < T * ldy; i++) want[i] = -7.0f;
        mh_fgemm_for(t, MH_CPU_REF)(n, w, wrow, rows, x, ldx, T, want, ldy);
        for (int64_t tk = 0; tk < T && !bad; tk++)   /* the ref is a dot product */
            for (int64_t r = 0; r < rows && !bad; r++) {
                double d = 0, s = 0;
                for (int64_t i = 0; i < n; i++)
                    d += (double)wf[r * n + i] * x[tk * ldx + i], s += fabs((double)wf[r * n + i] * x[tk * ldx + i]);
                bad = fabs(want[tk * ldy + r] - d) > 1e-5 * s + 1e-30;
                if (bad) fprintf(stderr, "  ref %s n %lld: %.9g, double %.9g\n", mh_dtype_info(t)->name,
                                 (long long)n, want[tk * ldy + r], d);
            }
    }
    mh_fgemm_fn fn[4];
    const char *names[4];
    int nk = kernels(t, fn, names);
    for (int l = 0; l < nk && !bad; l++) {
        for (int64_t i = 0; i < T * ldy; i++) got[i] = -7.0f;
        fn[l](n, w, wrow, rows, x, ldx, T, got, ldy);
        bad = memcmp(got, want, sizeof(float) * (size_t)(T * ldy)) != 0;
        if (bad) fprintf(stderr, "  %s %s rows %lld T %lld n %lld differs from ref\n",
                         names[l], mh_dtype_info(t)->name,
                         (long long)rows, (long long)T, (long long)n);
    }
    free(w); free(wf); free(x); free(want); free(got);
    return bad;
}

static void test_levels_vs_ref(void)
{
    static const int64_t ns[] = {1, 15, 16, 17, 31, 33, 48, 172};
    for (int ti = 0; ti < COUNT(k_types); ti++)
        for (int ni = 0; ni < COUNT(ns); ni++)
            for (int64_t T = 1; T <= 17; T++)
                CHECK(!check_shape(k_types[ti], T % 2 ? 13 : 9, T, ns[ni]));
}

static void test_large_shapes(void)
{
    static const int64_t toks[] = {64, 65};
    for (int ti = 0; ti < COUNT(k_types); ti++)
        for (int i = 0; i < COUNT(toks); i++) {
            CHECK(!check_shape(k_types[ti], 7, toks[i], 576));
            CHECK(!check_shape(k_types[ti], 37, toks[i], 65));
        }
}

/* few tokens (a speculative check, batched decode) take every token in one
 * tile, 3 or 4 rows a tile by T and row length, the rest of the rows in a
 * smaller tile, and bf16 activations packed once per call: rows 1..13 and
 * lengths past 1024 reach every tile size, lengths off 16 and 32 the tails */
static void test_few_tokens(void)
{
    static const int64_t ns[] = {1041, 1089, 600};
    static const int64_t rows[] = {1, 2, 3, 4, 5, 7, 13};
    for (int ti = 0; ti < COUNT(k_types); ti++)
        for (int ni = 0; ni < COUNT(ns); ni++)
            for (int64_t T = 1; T <= 9; T++)
                for (int ri = 0; ri < COUNT(rows); ri++)
                    CHECK(!check_shape(k_types[ti], rows[ri], T, ns[ni]));
}

/* bf16 subnormals: the instruction reads them as 0 and flushes subnormal
 * sums; the emulations and the _ref must do the same. Values ~1e-19 make
 * products land around FLT_MIN, some inputs are subnormal themselves. */
static void test_bf16_subnormal(void)
{
    enum { ROWS = 9, T = 7, N = 67 };
    uint16_t w[ROWS * N];
    float x[T * N], want[T * ROWS], got[T * ROWS];
    for (int i = 0; i < ROWS * N; i++)
        w[i] = i % 5 == 0 ? (uint16_t)((rnd_u32() & 0x807f) | 1) : mh_f32_to_bf16(rnd_normal() * 1e-19f);
    for (int i = 0; i < T * N; i++)
        x[i] = mh_bf16_to_f32(i % 7 == 0 ? (uint16_t)((rnd_u32() & 0x807f) | 1) : mh_f32_to_bf16(rnd_normal() * 1e-19f));
    mh_k_fgemm_bf16_ref(N, w, N * 2, ROWS, x, N, T, want, ROWS);
    int zeros = 0;
    for (int i = 0; i < T * ROWS; i++) zeros += want[i] == 0.0f;
    CHECK(zeros < T * ROWS);   /* not all flushed: the case means something */
    mh_fgemm_fn fn[4];
    const char *names[4];
    int nk = kernels(MH_DTYPE_BF16, fn, names);
    for (int l = 0; l < nk; l++) {
        fn[l](N, w, N * 2, ROWS, x, N, T, got, ROWS);
        CHECK_MSG(!memcmp(got, want, sizeof got), "%s", names[l]);
    }
}

static void test_table(void)
{
    CHECK(mh_fgemm_get(MH_DTYPE_Q8_0) == NULL);
    CHECK(mh_fgemm_get(MH_DTYPE_Q4_K) == NULL);
    CHECK(mh_fgemm_get((mh_dtype)MH_DTYPE_COUNT) == NULL);
    CHECK(mh_fgemm_for(MH_DTYPE_F16, MH_CPU_REF) == mh_k_fgemm_f16_ref);
    for (int ti = 0; ti < COUNT(k_types); ti++) CHECK(mh_fgemm_get(k_types[ti]) != NULL);
    float y[2] = {5, 5}, w = 1, x = 1;   /* empty products write nothing */
    mh_fgemm_get(MH_DTYPE_F32)(1, &w, 4, 0, &x, 1, 2, y, 1);
    mh_fgemm_get(MH_DTYPE_F32)(1, &w, 4, 2, &x, 1, 0, y, 2);
    CHECK(y[0] == 5 && y[1] == 5);
}

/* mh_linear over T tokens equals T one-token calls bit for bit */
static int linear_tokens(mh_dtype t, int T, int64_t rows, int64_t n)
{
    uint8_t *wd = malloc(sizeof(float) * (size_t)(rows * n));
    float *wf = malloc(sizeof(float) * (size_t)(rows * n)), *x = malloc(sizeof(float) * (size_t)(T * n));
    float *y = malloc(sizeof(float) * (size_t)(T * rows)), *y1 = malloc(sizeof(float) * (size_t)rows);
    int ok = wd && wf && x && y && y1;
    if (ok) {
        random_w(t, wd, wf, rows * n);
        for (int64_t i = 0; i < T * n; i++) x[i] = rnd_normal();
        mh_weight w = { .dtype = t, .data = wd, .rows = rows, .cols = n };
        mh_err err = {0};
        ok = mh_linear(&w, x, T, y, &err) == MH_OK;
        for (int tk = 0; tk < T && ok; tk++) {
            ok = mh_linear(&w, x + tk * n, 1, y1, &err) == MH_OK;
            for (int64_t r = 0; r < rows && ok; r++) {
                ok = y1[r] == y[tk * rows + r];
                if (!ok) fprintf(stderr, "  %s T %d t %d r %lld: tokens %.9g, one %.9g\n", mh_dtype_info(t)->name,
                                 T, tk, (long long)r, y[tk * rows + r], y1[r]);
            }
        }
    }
    free(wd); free(wf); free(x); free(y); free(y1);
    return !ok;
}

static void test_linear_tokens(void)
{
    static const int toks[] = {2, 5, 16, 19, 65};
    for (int ti = 0; ti < COUNT(k_types); ti++)
        for (int i = 0; i < COUNT(toks); i++) {
            CHECK(!linear_tokens(k_types[ti], toks[i], 67, 512));
            CHECK(!linear_tokens(k_types[ti], toks[i], 35, 172));
        }
}

int main(void)
{
    TEST_RUN(test_table);
    TEST_RUN(test_levels_vs_ref);
    TEST_RUN(test_large_shapes);
    TEST_RUN(test_few_tokens);
    TEST_RUN(test_bf16_subnormal);
    TEST_RUN(test_linear_tokens);
    return TEST_REPORT();
}
