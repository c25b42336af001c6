/* test_quant_repack.c: q4_0 and q8_0 weights repacked into 16-row groups
 * (mh/quant_repack.h): every level's packed matmul bit-identical to the
 * plain _ref vec_dot, tail rows and odd shapes included; mh_linear
 * on a packed weight equal for T tokens and one at a time; and a real
 * Q4_0 / Q8_0 model packed at load: the file bytes still readable after their
 * pages were dropped (its readers: kv-state identity, training, export),
 * logits equal to an unpacked load bit for bit, the packed copies one
 * arena in the order a forward pass reads them. */
#include <fcntl.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include "harness.h"
#include "mh/err.h"
#include "mh/gguf.h"
#include "mh/kv_state.h"
#include "mh/model.h"
#include "mh/quant.h"
#include "mh/quant_repack.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

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

static const mh_dtype k_types[] = {MH_DTYPE_Q4_0, MH_DTYPE_Q8_0};

/* rows of random q4_0 / q8_0 blocks: random level bytes (q8_0's -128
 * included), sane fp16 scales */
static void random_rows(mh_dtype t, uint8_t *dst, int64_t rows, int64_t n)
{
    const size_t bs = mh_dtype_info(t)->type_size;
    for (int64_t i = 0; i < rows * (n / MH_QK); i++) {
        uint8_t *b = dst + (size_t)i * bs;
        const uint16_t d = mh_f32_to_f16(0.005f + 0.03f * rnd_uniform());
        memcpy(b, &d, 2);   /* both start with d */
        for (size_t j = 2; j < bs; j++) b[j] = (uint8_t)rnd_u32();
    }
}

/* the levels this CPU runs; avx512 twice (plain and VNNI) when it can */
static int levels(const mh_repack_kernels **out)
{
    int k = 0;
    mh_cpu_level best = mh_cpu_detect();
    out[k++] = mh_repack_kernels_for(MH_CPU_REF, false);
    if (best >= MH_CPU_AVX2) out[k++] = mh_repack_kernels_for(MH_CPU_AVX2, false);
    if (best >= MH_CPU_AVX512) {
        out[k++] = mh_repack_kernels_for(MH_CPU_AVX512, false);
        if (mh_cpu_has_avx512_vnni()) out[k++] = mh_repack_kernels_for(MH_CPU_AVX512, true);
    }
    return k;
}

/* one (level, R, T, n) case against the plain _ref vec_dot on the ref
 * activation quantizer; returns 1 on a mismatch */
static int check_case(const mh_repack_kernels *k, mh_dtype t, int64_t R, int64_t T, int64_t n)
{
    const mh_quant_traits *wt = mh_quant_traits_for(t, MH_CPU_REF);
    const mh_quant_traits *q8 = mh_quant_traits_for(MH_DTYPE_Q8_0, MH_CPU_REF);
    size_t w_row = mh_dtype_row_size(t, n), x_row = mh_dtype_row_size(MH_DTYPE_Q8_0, n);
    uint8_t *w = malloc(w_row * (size_t)R), *p = malloc(mh_repack_bytes(t, R, n) + 1);
    uint8_t *xq = malloc(x_row);
    float *x = malloc(sizeof(float) * (size_t)(T * n)), *y = malloc(sizeof(float) * (size_t)(T * R));
    int bad = !(w && p && xq && x && y);
    if (!bad) {
        random_rows(t, w, R, n);
        for (int64_t i = 0; i < T * n; i++) x[i] = rnd_normal();
        bad = mh_repack_pack(t, w, R, n, p) != MH_OK || mh_repack_linear(k, t, p, w, R, n, x, T, y) != MH_OK;
    }
    for (int64_t c = 0; c < T && !bad; c++) {
        q8->from_float(x + c * n, xq, n);
        for (int64_t r = 0; r < R && !bad; r++) {
            float want;
            wt->vec_dot(n, w + (size_t)r * w_row, xq, &want);
            if (memcmp(&want, &y[c * R + r], sizeof want)) {
                fprintf(stderr, "  %s %s R=%lld T=%lld n=%lld (r %lld, c %lld): packed %.9g, ref %.9g\n",
                        mh_dtype_info(t)->name, k->name,
                        (long long)R, (long long)T, (long long)n, (long long)r, (long long)c, y[c * R + r], want);
                bad = 1;
            }
        }
    }
    free(w); free(p); free(xq); free(x); free(y);
    return bad;
}

static void test_levels_vs_ref(void)
{
    /* whole groups, tails of 1..15 rows (plain layout), a 96-row output */
    static const int64_t rows[] = {16, 17, 31, 32, 47, 96};
    static const int64_t toks[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 20, 64};
    static const int64_t ns[] = {32, 96, 576};
    const mh_repack_kernels *lv[4];
    int nlv = levels(lv);
    printf("  levels:");
    for (int l = 0; l < nlv; l++) printf(" %s", lv[l]->name);
    printf("\n");
    for (int ti = 0; ti < COUNT(k_types); ti++)
        for (int l = 0; l < nlv; l++)
            for (int ni = 0; ni < COUNT(ns); ni++)
                for (int ri = 0; ri < COUNT(rows); ri++)
                    for (int ci = 0; ci < COUNT(toks); ci++)
                        CHECK(!check_case(lv[l], k_types[ti], rows[ri], toks[ci], ns[ni]));
}

/* random shapes: several groups plus a tail, many token tiles (RP_TOKENS
 * chunks of 64 included), at every level */
static void test_fuzz_shapes(void)
{
    const mh_repack_kernels *lv[4];
    int nlv = levels(lv);
    for (int it = 0; it < 24; it++) {
        int64_t R = 16 + rnd_u32() % 90, T = 1 + rnd_u32() % 140, n = 32 * (1 + rnd_u32() % 40);
        for (int ti = 0; ti < COUNT(k_types); ti++)
            for (int l = 0; l < nlv; l++)
                CHECK_MSG(!check_case(lv[l], k_types[ti], R, T, n), "R %lld T %lld n %lld", (long long)R,
                          (long long)T, (long long)n);
    }
}

/* what cannot be packed says so; an empty product writes nothing */
static void test_bad_shapes(void)
{
    static uint8_t w[64 * 34 * 2], p[64 * 34 * 2];
    float x[64] = {0}, y[32];
    const mh_repack_kernels *k = mh_repack_kernels_get();
    CHECK(mh_repack_bytes(MH_DTYPE_Q4_0, 15, 64) == 0);         /* fewer rows than a group */
    CHECK(mh_repack_bytes(MH_DTYPE_Q4_0, 16, 48) == 0);         /* not whole blocks */
    CHECK(mh_repack_bytes(MH_DTYPE_Q4_K, 64, 256) == 0);        /* no packed layout */
    CHECK(mh_repack_bytes(MH_DTYPE_Q8_0, 16, 48) == 0);
    CHECK(mh_repack_bytes(MH_DTYPE_Q4_0, 35, 64) == 32 * 2 * 18);   /* the tail stays out */
    CHECK(mh_repack_bytes(MH_DTYPE_Q8_0, 35, 64) == 32 * 2 * 34);
    CHECK(!mh_repack_wanted(MH_DTYPE_Q4_0, 8, 64));
    CHECK(mh_repack_pack(MH_DTYPE_Q4_0, w, 15, 64, p) == MH_EINVAL);
    CHECK(mh_repack_pack(MH_DTYPE_Q4_K, w, 16, 256, p) == MH_EINVAL);
    CHECK(mh_repack_linear(k, MH_DTYPE_Q4_0, p, w, 15, 64, x, 1, y) == MH_EINVAL);
    CHECK(mh_repack_linear(k, MH_DTYPE_Q5_0, p, w, 16, 64, x, 1, y) == MH_EINVAL);
    CHECK(mh_repack_linear(NULL, MH_DTYPE_Q8_0, p, w, 16, 64, x, 1, y) == MH_EINVAL);
    y[0] = 5.0f;
    CHECK(mh_repack_linear(k, MH_DTYPE_Q8_0, p, w, 16, 64, x, 0, y) == MH_OK && y[0] == 5.0f);
}

/* mh_linear on a packed weight: T tokens at once equal T single tokens
 * (batched decoding stays greedy-identical) and equal the unpacked weight */
static void linear_packed(mh_dtype t)
{
    enum { ROWS = 83, N = 512, TMAX = 70 };
    static const int toks[] = {2, 4, 5, 16, 19, 70};
    uint8_t *wd = malloc(mh_dtype_row_size(t, N) * ROWS);
    void *pk = malloc(mh_repack_bytes(t, ROWS, N));
    float *x = malloc(sizeof(float) * TMAX * N), *y = malloc(sizeof(float) * TMAX * ROWS);
    float *yu = malloc(sizeof(float) * TMAX * ROWS), *y1 = malloc(sizeof(float) * ROWS);
    CHECK(wd && pk && x && y && yu && y1);
    random_rows(t, wd, ROWS, N);
    CHECK(mh_repack_pack(t, wd, ROWS, N, pk) == MH_OK);
    mh_weight w = {t, wd, ROWS, N, pk}, u = {t, wd, ROWS, N, NULL};
    mh_err err = {0};
    int ok = 1;
    for (int i = 0; i < COUNT(toks) && ok; i++) {
        int T = toks[i];
        for (int j = 0; j < T * N; j++) x[j] = rnd_normal();
        ok = mh_linear(&w, x, T, y, &err) == MH_OK && mh_linear(&u, x, T, yu, &err) == MH_OK &&
             !memcmp(y, yu, sizeof(float) * (size_t)(T * ROWS));
        for (int t = 0; t < T && ok; t++)
            ok = mh_linear(&w, x + t * N, 1, y1, &err) == MH_OK && !memcmp(y1, y + t * ROWS, sizeof(float) * ROWS);
        if (!ok) fprintf(stderr, "  %s T = %d\n", mh_dtype_info(t)->name, T);
    }
    free(wd); free(pk); free(x); free(y); free(yu); free(y1);
    CHECK(ok);
}

static void test_linear_packed(void)
{
    for (int ti = 0; ti < COUNT(k_types); ti++) linear_packed(k_types[ti]);
}

/* ===== a real model ===== */

static mh_model *load_at(const char *path, mh_cpu_level level)
{
    mh_cpu_level was = mh_cpu_level_get();
    mh_cpu_level_set(level);
    mh_model *m = NULL;
    mh_err err = {0};
    if (mh_model_load(path, &m, &err)) fprintf(stderr, "  load: %s\n", err.msg);
    mh_cpu_level_set(was);
    return m;
}

/* the bytes at w->data equal the file's at that tensor's offset */
static int same_as_file(const char *path, mh_model *m, const char *name, const mh_weight *w)
{
    const mh_gguf_tensor *t = mh_gguf_find_tensor(mh_model_gguf(m), name);
    if (!t || t->data != w->data) return 0;
    size_t n = t->nbytes;
    uint8_t *buf = malloc(n);
    int fd = open(path, O_RDONLY), ok = buf && fd >= 0 &&
        pread(fd, buf, n, (off_t)(mh_gguf_data_offset(mh_model_gguf(m)) + t->offset)) == (ssize_t)n &&
        !memcmp(buf, w->data, n);
    if (fd >= 0) close(fd);
    free(buf);
    return ok;
}

/* the packed weights lie back to back (64-byte slots) in forward order:
 * each layer's q, k, v, o, gate, up, down, then the output head, so a
 * decode step streams one arena forward; 1 when they do */
static int forward_order(const mh_model *m)
{
    const uint8_t *next = NULL;
    int ok = 1;
    for (int64_t l = 0; l <= mh_model_hparams(m)->n_layer && ok; l++) {
        const mh_layer *L = l < mh_model_hparams(m)->n_layer ? mh_model_layer(m, l) : NULL;
        for (int k = 0; k < (L ? MH_PROJ_COUNT : 1) && ok; k++) {
            const mh_weight *w = L ? mh_layer_proj(L, (mh_proj)k) : &mh_model_globals_get(m)->output;
            if (!w->packed) continue;
            ok = !next || w->packed == next;
            next = (const uint8_t *)w->packed + ((mh_repack_bytes(w->dtype, w->rows, w->cols) + 63) & ~(size_t)63);
        }
    }
    return ok && next;
}

static void model_case(const char *file, int n_tok)
{
    char buf[4096];
    const char *path = test_data_path(file, buf);
    if (!path) TEST_SKIP(file);
    if (mh_cpu_detect() < MH_CPU_AVX2) TEST_SKIP("no SIMD level: nothing is packed");
    mh_model *pm = load_at(path, mh_cpu_detect()), *um = load_at(path, MH_CPU_REF);
    CHECK(pm && um);
    const mh_layer *pl = mh_model_layer(pm, 0), *ul = mh_model_layer(um, 0);
    CHECK(pl->wq.packed && pl->w_up.packed && !ul->wq.packed && !ul->w_up.packed);
    CHECK_MSG(forward_order(pm), "%s: packed weights out of forward order", file);
    /* a reader of the file layout (LoRA export, training, identity) after
     * the packed rows' pages were dropped */
    CHECK(same_as_file(path, pm, "blk.0.ffn_up.weight", &pl->w_up));
    /* the kv-state identity hashes those bytes: a saved state still fits */
    uint8_t ida[MH_KV_STATE_ID_BYTES], idb[MH_KV_STATE_ID_BYTES];
    CHECK(mh_model_identity(pm, ida, NULL) == MH_OK && mh_model_identity(um, idb, NULL) == MH_OK);
    CHECK(!memcmp(ida, idb, sizeof ida));
    const mh_hparams *hp = mh_model_hparams(pm);
    int32_t tok[16];
    for (int i = 0; i < n_tok; i++) tok[i] = (int32_t)(1 + (i * 7919) % (hp->n_vocab - 1));
    float *a = malloc(sizeof(float) * (size_t)(n_tok * hp->n_vocab)), *b = malloc(sizeof(float) * (size_t)(n_tok * hp->n_vocab));
    mh_kv_cache *ca = mh_kv_cache_new(pm, 64, NULL), *cb = mh_kv_cache_new(um, 64, NULL);
    mh_err err = {0};
    int ok = a && b && ca && cb &&
             mh_model_forward(pm, ca, tok, n_tok, a, true, &err) == MH_OK &&
             mh_model_forward(um, cb, tok, n_tok, b, true, &err) == MH_OK;
    int same = ok && !memcmp(a, b, sizeof(float) * (size_t)(n_tok * hp->n_vocab));
    /* one decode step each (the matvec path) */
    ok = ok && mh_model_forward(pm, ca, tok, 1, a, false, &err) == MH_OK &&
         mh_model_forward(um, cb, tok, 1, b, false, &err) == MH_OK;
    same = same && ok && !memcmp(a, b, sizeof(float) * (size_t)hp->n_vocab);
    if (!ok) fprintf(stderr, "  forward: %s\n", err.msg);
    mh_kv_cache_free(ca); mh_kv_cache_free(cb); free(a); free(b);
    mh_model_free(pm); mh_model_free(um);
    CHECK(ok);
    CHECK_MSG(same, "%s: packed and unpacked logits differ", file);
}

/* MOONHUB_HUGEPAGES is checked where the loader reads it: a bad value is
 * an error naming it, 0 and 1 load (the pages are the kernel's choice) */
static void test_hugepages_env(void)
{
    char buf[4096];
    const char *path = test_data_path("models/mh-smol-llama-17m-Q4_0.gguf", buf);
    if (!path) TEST_SKIP("models/mh-smol-llama-17m-Q4_0.gguf");
    if (mh_cpu_detect() < MH_CPU_AVX2) TEST_SKIP("no SIMD level: nothing is packed");
    mh_model *m = NULL;
    mh_err err = {0};
    setenv("MOONHUB_HUGEPAGES", "yes", 1);
    CHECK(mh_model_load(path, &m, &err) == MH_EINVAL && !m && strstr(err.msg, "MOONHUB_HUGEPAGES=yes"));
    static const char *ok[] = {"0", "1"};
    for (int i = 0; i < COUNT(ok); i++) {
        setenv("MOONHUB_HUGEPAGES", ok[i], 1);
        CHECK(mh_model_load(path, &m, &err) == MH_OK && m && forward_order(m));
        mh_model_free(m);
        m = NULL;
    }
    unsetenv("MOONHUB_HUGEPAGES");
}

static void test_model_smol(void) { model_case("models/mh-smol-llama-17m-Q4_0.gguf", 12); }
/* ffn_gate/up of 172 rows: 10 packed groups and a 12-row tail */
static void test_model_stories(void) { model_case("models/stories260K-Q4_0.gguf", 9); }
static void test_model_smol_q8(void) { model_case("models/mh-smol-llama-17m-Q8_0.gguf", 12); }
static void test_model_stories_q8(void) { model_case("models/stories260K-Q8_0.gguf", 9); }

int main(void)
{
    TEST_RUN(test_bad_shapes);
    TEST_RUN(test_levels_vs_ref);
    TEST_RUN(test_fuzz_shapes);
    TEST_RUN(test_linear_packed);
    TEST_RUN(test_model_smol);
    TEST_RUN(test_model_stories);
    TEST_RUN(test_model_smol_q8);
    TEST_RUN(test_model_stories_q8);
    TEST_RUN(test_hugepages_env);
    return TEST_REPORT();
}
