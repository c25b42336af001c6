/* test_quant_gemm.c: the tiled quantized GEMM kernels (trait entry gemm)
 * against per-pair vec_dot on random blocks: bit-identical to the same
 * level's vec_dot and to the _ref one (one canonical float order), for edge
 * sizes of rows, tokens and row length, at every CPU level this machine
 * has; then mh_linear's multi-token path against its one-token path, and
 * the decode matvec of several weights at once against one at a time. */
#include <stdint.h>
#include <string.h>
#include "harness.h"
#include "mh/err.h"
#include "mh/model.h"
#include "mh/quant.h"
#include "mh/threadpool.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
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

static const mh_dtype k_gemm_types[] = {
    MH_DTYPE_Q8_0, MH_DTYPE_Q4_0, MH_DTYPE_Q5_0, MH_DTYPE_Q4_K, MH_DTYPE_Q6_K,
};

/* rows of random valid blocks: random bytes, then sane fp16 scales (the
 * d / dmin fields; q8_0 keeps -128, which its kernels must handle too) */
static void random_rows(mh_dtype t, uint8_t *dst, int64_t rows, int64_t n)
{
    const mh_dtype_traits *tr = mh_dtype_info(t);
    size_t bytes = mh_dtype_row_size(t, n) * (size_t)rows;
    for (size_t i = 0; i < bytes; i++) dst[i] = (uint8_t)rnd_u32();
    size_t off_d = 0, off_m = 0;   /* where the fp16 scales sit */
    if (t == MH_DTYPE_Q4_K) off_m = 2;
    if (t == MH_DTYPE_Q6_K) off_d = off_m = 208;
    for (size_t b = 0; b < bytes / tr->type_size; b++) {
        uint8_t *blk = dst + b * tr->type_size;
        uint16_t d = mh_f32_to_f16(0.01f + 0.02f * rnd_uniform()), m = mh_f32_to_f16(0.01f * rnd_uniform());
        memcpy(blk + off_m, &m, 2);
        memcpy(blk + off_d, &d, 2);
    }
}

/* activations: rows of normal floats quantized to vt */
static void random_x(mh_dtype vt, uint8_t *dst, int64_t rows, int64_t n, float *tmp)
{
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < n; i++) tmp[i] = rnd_normal();
        mh_quantize_row(vt, tmp, dst + (size_t)r * mh_dtype_row_size(vt, n), n);
    }
}

typedef struct level { const char *name; const mh_quant_traits *(*get)(mh_dtype); } level;

static const mh_quant_traits *lv_ref(mh_dtype t) { return mh_quant_traits_for(t, MH_CPU_REF); }
static const mh_quant_traits *lv_avx2(mh_dtype t) { return mh_quant_traits_for(t, MH_CPU_AVX2); }
static const mh_quant_traits *lv_avx512(mh_dtype t) { return mh_quant_traits_for(t, MH_CPU_AVX512); }

/* the levels this CPU runs, ref first; avx512 twice when VNNI is there */
static int levels(level *out)
{
    int k = 0;
    mh_cpu_level best = mh_cpu_detect();
    out[k++] = (level){"ref", lv_ref};
    if (best >= MH_CPU_AVX2) out[k++] = (level){"avx2", lv_avx2};
    if (best >= MH_CPU_AVX512) {
        out[k++] = (level){mh_cpu_has_avx512_vnni() ? "avx512-vnni" : "avx512", lv_avx512};
        if (mh_cpu_has_avx512_vnni()) out[k++] = (level){"avx512-novnni", mh_quant_traits_avx512_novnni};
    }
    return k;
}

/* one (type, level, R, T, n) case; returns 1 on a mismatch */
static int check_case(mh_dtype t, const level *lv, int64_t R, int64_t T, int64_t n)
{
    const mh_quant_traits *fast = lv->get(t), *ref = lv_ref(t);
    mh_dtype vt = ref->vec_dot_type;
    size_t w_row = mh_dtype_row_size(t, n), x_row = mh_dtype_row_size(vt, n);
    int64_t ldy = R + 3;   /* padding that must stay untouched */
    uint8_t *w = malloc(w_row * (size_t)R + 1), *x = malloc(x_row * (size_t)T + 1);
    float *y = malloc(sizeof(float) * (size_t)(T * ldy)), *tmp = malloc(sizeof(float) * (size_t)n * 2);
    int bad = !(w && x && y && tmp);
    if (!bad) {
        random_rows(t, w, R, n);
        random_x(vt, x, T, n, tmp);
        for (int64_t i = 0; i < T * ldy; i++) y[i] = -777.0f;
        fast->gemm(n, w, w_row, R, x, x_row, T, y, ldy);
    }
    for (int64_t c = 0; c < T && !bad; c++) {
        for (int64_t r = 0; r < ldy && !bad; r++) {
            float got = y[c * ldy + r], same, want;
            if (r >= R) { bad = got != -777.0f; continue; }
            const void *wr = w + (size_t)r * w_row, *xr = x + (size_t)c * x_row;
            fast->vec_dot(n, wr, xr, &same);
            ref->vec_dot(n, wr, xr, &want);
            if (memcmp(&got, &same, sizeof got) || memcmp(&got, &want, sizeof got)) {
                fprintf(stderr, "  %s %s R=%lld T=%lld n=%lld (r %lld, c %lld): gemm %.9g, vec_dot %.9g, ref %.9g\n",
                        lv->name, mh_dtype_info(t)->name, (long long)R, (long long)T, (long long)n,
                        (long long)r, (long long)c, got, same, want);
                bad = 1;
            }
        }
    }
    free(w); free(x); free(y); free(tmp);
    return bad;
}

static void test_gemm_vs_vec_dot(void)
{
    static const int64_t rows[] = {1, 3, 4, 5, 8, 13};
    /* every token count of the row-by-row path (GEMM_FEW_MAX = 16: decode
     * steps of several slots, speculative verification), then the prompt
     * tiles (q8_0 / q5_0 AVX-512: 8 tokens, then pairs, then one): every
     * tail length 0..7 of them */
    static const int64_t toks[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 64, 65};
    static const int64_t n32[] = {32, 96, 576}, nK[] = {256, 768};
    level lv[4];
    int nlv = levels(lv);
    printf("  levels:");
    for (int l = 0; l < nlv; l++) printf(" %s", lv[l].name);
    printf("\n");
    for (int l = 0; l < nlv; l++)
        for (int ti = 0; ti < COUNT(k_gemm_types); ti++) {
            mh_dtype t = k_gemm_types[ti];
            CHECK_MSG(lv[l].get(t)->gemm != NULL, "%s %s has no gemm", lv[l].name, mh_dtype_info(t)->name);
            int kq = mh_dtype_info(t)->block_size == MH_QK_K;
            const int64_t *ns = kq ? nK : n32;
            int nn = kq ? COUNT(nK) : COUNT(n32);
            for (int ni = 0; ni < nn; ni++)
                for (int ri = 0; ri < COUNT(rows); ri++)
                    for (int ci = 0; ci < COUNT(toks); ci++)
                        CHECK(!check_case(t, &lv[l], rows[ri], toks[ci], ns[ni]));
        }
}

/* bigger tiles: many full tiles plus both edges at once */
static void test_gemm_large(void)
{
    level lv[4];
    int nlv = levels(lv);
    for (int ti = 0; ti < COUNT(k_gemm_types); ti++) {
        mh_dtype t = k_gemm_types[ti];
        int64_t n = mh_dtype_info(t)->block_size == MH_QK_K ? 1536 : 1536 + 32;
        for (int l = 0; l < nlv; l++) {
            CHECK(!check_case(t, &lv[l], 37, 29, n));
            CHECK(!check_case(t, &lv[l], 7, 512, n));   /* a whole pp512 token block, odd rows */
        }
    }
}

static void test_gemm_table(void)
{
    static const mh_dtype none[] = {MH_DTYPE_F32, MH_DTYPE_F16, MH_DTYPE_BF16, MH_DTYPE_Q4_1,
                                    MH_DTYPE_Q5_1, MH_DTYPE_Q2_K, MH_DTYPE_Q3_K, MH_DTYPE_Q5_K,
                                    MH_DTYPE_Q8_K};
    level lv[4];
    int nlv = levels(lv);
    for (int l = 0; l < nlv; l++)
        for (int i = 0; i < COUNT(none); i++) CHECK(lv[l].get(none[i])->gemm == NULL);
    CHECK(mh_quant_traits_get((mh_dtype)MH_DTYPE_COUNT)->gemm == NULL);
    /* empty products write nothing */
    float y[4] = {5, 5, 5, 5};
    mh_block_q8_0 blk = {0};
    mh_quant_traits_get(MH_DTYPE_Q8_0)->gemm(32, &blk, sizeof blk, 0, &blk, sizeof blk, 4, y, 1);
    mh_quant_traits_get(MH_DTYPE_Q8_0)->gemm(32, &blk, sizeof blk, 4, &blk, sizeof blk, 0, y, 4);
    CHECK(y[0] == 5 && y[3] == 5);
}

/* the activation quantizers of every level equal the _ref ones byte for
 * byte, ties of roundf (away from zero) and lrintf (to even) included */
static void test_quantize_x(void)
{
    static const mh_dtype vts[] = {MH_DTYPE_Q8_0, MH_DTYPE_Q8_K};
    enum { N = 1024 };
    float x[N];
    uint8_t a[N * 2], b[N * 2];   /* more than a row of either type */
    level lv[4];
    int nlv = levels(lv);
    for (int rep = 0; rep < 4; rep++) {
        for (int i = 0; i < N; i++) x[i] = rep == 3 ? 0.0f : rnd_normal() * (rep + 1);
        if (rep == 1)   /* extremes of +-127 make the scale 1: k + 0.5 are exact ties */
            for (int i = 0; i < N; i++) x[i] = i % 32 == 5 ? (i % 64 ? 127.0f : -127.0f) : (float)(i % 9) - 4.5f;
        if (rep == 2) x[7] = -x[7], x[300] = 1e-30f;
        for (int v = 0; v < COUNT(vts); v++)
            for (int l = 0; l < nlv; l++) {
                size_t bytes = mh_dtype_row_size(vts[v], N);
                memset(a, 0xAA, sizeof a);
                memset(b, 0x55, sizeof b);
                lv_ref(vts[v])->from_float(x, a, N);
                lv[l].get(vts[v])->from_float(x, b, N);
                CHECK_MSG(!memcmp(a, b, bytes), "%s %s rep %d", lv[l].name, mh_dtype_info(vts[v])->name, rep);
            }
    }
}

/* mh_linear over T tokens (the gemm) equals T one-token calls (the matvec)
 * bit for bit, edge sizes included: T of a batched decode step (row by row)
 * and of a prompt (tiles) */
static void linear_tokens(int T)
{
    static const mh_dtype types[] = {MH_DTYPE_Q8_0, MH_DTYPE_Q5_0, MH_DTYPE_Q4_K, MH_DTYPE_Q6_K};
    enum { ROWS = 67, N = 512 };
    uint8_t *wd = malloc(mh_dtype_row_size(MH_DTYPE_Q8_0, N) * ROWS);
    float *x = malloc(sizeof(float) * T * N), *y = malloc(sizeof(float) * T * ROWS), *y1 = malloc(sizeof(float) * ROWS);
    int ok = wd && x && y && y1;
    for (int ti = 0; ti < COUNT(types) && ok; ti++) {
        random_rows(types[ti], wd, ROWS, N);
        for (int i = 0; i < T * N; i++) x[i] = rnd_normal();
        mh_weight w = {types[ti], wd, ROWS, N, NULL};
        mh_err err = {0};
        ok = mh_linear(&w, x, T, y, &err) == MH_OK;
        for (int t = 0; t < T && ok; t++) {
            ok = mh_linear(&w, x + t * N, 1, y1, &err) == MH_OK;
            for (int r = 0; r < ROWS && ok; r++) {
                ok = y1[r] == y[t * ROWS + r];
                if (!ok) fprintf(stderr, "  %s t %d r %d: tokens %.9g, one %.9g\n", mh_dtype_info(types[ti])->name,
                                 t, r, y[t * ROWS + r], y1[r]);
            }
        }
    }
    free(wd); free(x); free(y); free(y1);
    CHECK_MSG(ok, "T = %d", T);
}

static void test_linear_tokens(void)
{
    static const int toks[] = {2, 5, 16, 19, 64, 65};   /* 65: a 64-token block, then one token */
    for (int i = 0; i < COUNT(toks); i++) linear_tokens(toks[i]);
}

/* mh_quant_matvec_multi: parts of mixed k-quant types and odd row counts
 * in one job (cut by bytes across part ends) give each part the bits of
 * its own mh_quant_matvec, on 1..3 threads; parts that need two x
 * quantizations are refused */
static void test_matvec_multi(void)
{
    enum { N = 512, NP = 3 };
    const mh_dtype types[NP] = {MH_DTYPE_Q4_K, MH_DTYPE_Q6_K, MH_DTYPE_Q4_K};
    const int64_t rows[NP] = {301, 37, 130};
    float x[N], *want[NP], *got[NP];
    uint8_t *w[NP];
    mh_matvec_part parts[NP];
    for (int i = 0; i < N; i++) x[i] = rnd_normal();
    for (int i = 0; i < NP; i++) {
        w[i] = malloc(mh_dtype_row_size(types[i], N) * (size_t)rows[i]);
        want[i] = malloc(sizeof(float) * (size_t)rows[i]);
        got[i] = malloc(sizeof(float) * (size_t)rows[i]);
        CHECK(w[i] && want[i] && got[i]);
        random_rows(types[i], w[i], rows[i], N);
        CHECK(mh_quant_matvec(types[i], w[i], rows[i], N, x, want[i]) == MH_OK);
        parts[i] = (mh_matvec_part){types[i], w[i], rows[i], got[i]};
    }
    for (int th = 1; th <= 3; th++) {
        mh_threads_set(th);
        for (int np = 1; np <= NP; np++) {
            for (int i = 0; i < np; i++) for (int64_t r = 0; r < rows[i]; r++) got[i][r] = NAN;
            CHECK(mh_quant_matvec_multi(parts, np, N, x) == MH_OK);
            for (int i = 0; i < np; i++)
                for (int64_t r = 0; r < rows[i]; r++)
                    if (memcmp(&want[i][r], &got[i][r], sizeof(float))) {
                        fprintf(stderr, "  multi: %d parts, %d threads, part %d row %lld: %.7g vs %.7g\n", np, th, i,
                                (long long)r, want[i][r], got[i][r]);
                        CHECK(0);
                        r = rows[i];
                    }
        }
    }
    mh_threads_set(0);
    mh_matvec_part mixed[2] = {parts[0], {MH_DTYPE_Q8_0, w[1], 1, got[1]}};
    CHECK(mh_quant_matvec_multi(mixed, 2, N, x) == MH_EINVAL);   /* q8_K and q8_0 activations */
    CHECK(mh_quant_matvec_multi(parts, 0, N, x) == MH_EINVAL);
    CHECK(mh_quant_matvec_multi(parts, MH_MATVEC_PARTS_MAX + 1, N, x) == MH_EINVAL);
    for (int i = 0; i < NP; i++) { free(w[i]); free(want[i]); free(got[i]); }
}

int main(void)
{
    TEST_RUN(test_gemm_table);
    TEST_RUN(test_gemm_vs_vec_dot);
    TEST_RUN(test_gemm_large);
    TEST_RUN(test_quantize_x);
    TEST_RUN(test_linear_tokens);
    TEST_RUN(test_matvec_multi);
    return TEST_REPORT();
}
