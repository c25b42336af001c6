/* test_attn.c: the tiled prompt attention (engine/model/attn.c) against the
 * per-query path, through the forward pass of small random models: f16
 * caches give the same bits, q8_0 caches the same logits within rounding;
 * causal masks, sliding windows (mistral: every layer; gemma2: every other,
 * soft caps), several tiles, a part block, a second chunk after a first. */
#include <stdint.h>
#include "harness.h"
#include "mh/cpu.h"
#include "mh/create.h"
#include "mh/model.h"
#include "mh/threadpool.h"
#include "../../engine/model/attn.h"   /* mh_attn_tiled_off: the per-query path */

#define CHUNK1 100
#define CHUNK2 301   /* the second chunk's 301 rows end in a part block; 401 positions span two tiles */

static char tmp_dir[] = "/tmp/mh_test_attn_XXXXXX";

/* All logits of both chunks of one seeded prompt, through the tiled or the
 * per-query path; NULL on failure (message on stderr). */
static float *run(mh_model *m, mh_dtype kv, const int32_t *ids, bool tiled)
{
    const int64_t V = mh_model_hparams(m)->n_vocab;
    mh_err err = {0};
    float *lg = malloc(sizeof(float) * (size_t)((CHUNK1 + CHUNK2) * V));
    mh_kv_cache *c = mh_kv_cache_new_type(m, 512, kv, &err);
    mh_attn_tiled_off = !tiled;
    int st = !lg || !c ? MH_ENOMEM : mh_model_forward(m, c, ids, CHUNK1, lg, true, &err);
    if (!st) st = mh_model_forward(m, c, ids + CHUNK1, CHUNK2, lg + CHUNK1 * V, true, &err);
    mh_attn_tiled_off = false;
    mh_kv_cache_free(c);
    if (st) {
        fprintf(stderr, "  forward: %s\n", err.msg);
        free(lg);
        return NULL;
    }
    return lg;
}

/* A model of arch with sliding window swa (0: none) and score soft cap. */
static mh_model *make(const char *arch, int64_t swa, double cap, const char *name)
{
    mh_create_config cfg = { .n_layer = 2, .n_embd = 256, .n_ff = 384, .n_head = 4, .n_head_kv = 2,
                             .head_dim = 64, .n_vocab = 259, .n_ctx = 1024, .rope_base = 10000,
                             .rms_eps = 1e-5, .std = 0.08, .n_swa = swa, .attn_softcap = cap };
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    char path[256];
    snprintf(path, sizeof path, "%s/%s.gguf", tmp_dir, name);
    mh_create_opts opts = { .ftype = MH_FTYPE_ALL_F32, .seed = 11 };
    mh_err err = {0};
    mh_model *m = NULL;
    if (mh_create_model(&cfg, &opts, path, NULL, &err) || mh_model_load(path, &m, &err))
        fprintf(stderr, "  %s: %s\n", name, err.msg);
    return m;
}

/* f16: bit-identical logits; q8_0: within rounding (the per-query path runs
 * sgemm and another exp there, and a probability one ulp apart may round to
 * the next f16: about 8e-4 of the largest logit here; a mask off by one
 * position moves them by percents). */
static void compare(const char *arch, int64_t swa, double cap, const char *name)
{
    mh_model *m = make(arch, swa, cap, name);
    CHECK(m);
    const int64_t V = mh_model_hparams(m)->n_vocab, n = (CHUNK1 + CHUNK2) * V;
    int32_t ids[CHUNK1 + CHUNK2];
    for (int i = 0; i < CHUNK1 + CHUNK2; i++) ids[i] = (int32_t)((i * 7919u + 13) % 256 + 3);
    float *a = run(m, MH_DTYPE_F16, ids, true), *b = run(m, MH_DTYPE_F16, ids, false);
    float *qa = run(m, MH_DTYPE_Q8_0, ids, true), *qb = run(m, MH_DTYPE_Q8_0, ids, false);
    mh_model_free(m);
    int64_t diff = -1;
    double qmax = 0, qscale = 0;
    for (int64_t i = 0; a && b && i < n && diff < 0; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) diff = i;
    for (int64_t i = 0; qa && qb && i < n; i++) {
        qmax = fmax(qmax, fabs((double)qa[i] - qb[i]));
        qscale = fmax(qscale, fabs((double)qb[i]));
    }
    free(a);
    free(b);
    free(qa);
    free(qb);
    CHECK(qscale > 0);
    CHECK_MSG(diff < 0, "%s f16: logit %lld differs (position %lld)", name, (long long)diff, (long long)(diff / V));
    CHECK_MSG(qmax <= 2e-3 * qscale, "%s q8_0: max |diff| %g over logits up to %g", name, qmax, qscale);
}

static void test_llama_causal(void) { compare("llama", 0, 0, "llama"); }
static void test_mistral_window(void) { compare("mistral", 37, 0, "mistral"); }
static void test_gemma2_window_softcap(void) { compare("gemma2", 150, 20.0, "gemma2"); }

/* Short batches (2 and 3 rows, as speculative verification sends) and one
 * row after them: f16 caches take the tiled path from 2 rows on. */
static void test_short_batches(void)
{
    mh_model *m = make("llama", 0, 0, "short");
    CHECK(m);
    const int64_t V = mh_model_hparams(m)->n_vocab;
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (int32_t)(i * 31 % 250 + 3);
    float *out[2];
    for (int tiled = 0; tiled < 2; tiled++) {
        mh_err err = {0};
        mh_kv_cache *c = mh_kv_cache_new(m, 64, &err);
        out[tiled] = malloc(sizeof(float) * (size_t)(6 * V));
        mh_attn_tiled_off = !tiled;
        int st = mh_model_forward(m, c, ids, 34, NULL, false, &err);
        if (!st) st = mh_model_forward(m, c, ids + 34, 2, out[tiled], true, &err);
        if (!st) st = mh_model_forward(m, c, ids + 36, 3, out[tiled] + 2 * V, true, &err);
        if (!st) st = mh_model_forward(m, c, ids + 39, 1, out[tiled] + 5 * V, true, &err);
        mh_attn_tiled_off = false;
        mh_kv_cache_free(c);
        CHECK_MSG(st == MH_OK, "%s", err.msg);
    }
    mh_model_free(m);
    int same = !memcmp(out[0], out[1], sizeof(float) * (size_t)(6 * V));
    free(out[0]);
    free(out[1]);
    CHECK(same);
}

int main(void)
{
    if (!mkdtemp(tmp_dir)) return 1;
    if (mh_cpu_level_get() < MH_CPU_AVX512) printf("  note: no AVX-512 here: both runs take the per-query path\n");
    mh_threads_set(2);
    TEST_RUN(test_llama_causal);
    TEST_RUN(test_mistral_window);
    TEST_RUN(test_gemma2_window_softcap);
    TEST_RUN(test_short_batches);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    if (system(cmd)) fprintf(stderr, "  could not remove %s\n", tmp_dir);
    return TEST_REPORT();
}
