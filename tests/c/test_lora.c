/* test_lora.c: LoRA adapters at inference (engine/model/lora.c): the GGUF
 * LoRA the trainer writes (llama.cpp's format) and its PEFT safetensors twin
 * give the same logits, a scale of 0 gives the base, and bad files (a model,
 * another architecture, wrong shapes, a cut file) are refused with a status.
 * The update kernel matches a plain-loop reference on random shapes, and a
 * prompt run at once equals it run token by token, and rows of one batch
 * each apply their own adapter (per-request LoRA). Runs on a generated
 * model (no test data needed). */
#include <stdint.h>
#include <sys/stat.h>
#include "harness.h"
#include "mh/create.h"
#include "mh/gguf.h"
#include "mh/gguf_write.h"
#include "mh/model.h"
#include "mh/threadpool.h"
#include "mh/train.h"
#include "../../engine/model/model_internal.h"   /* mh_lora_addmm: the update kernel */

static char model_path[64], gguf_path[64], st_path[80], bad_path[64];

static mh_model *created_model(void)
{
    mh_create_config c = { 0 };
    snprintf(c.arch, sizeof c.arch, "llama");
    snprintf(c.name, sizeof c.name, "lora-test");
    c.n_layer = 2; c.n_embd = 32; c.n_ff = 48; c.n_head = 4; c.n_head_kv = 2; c.n_vocab = 259;
    c.n_ctx = 64; c.rope_base = 10000; c.rms_eps = 1e-5; c.std = 0.05;
    mh_create_opts o = { .ftype = MH_FTYPE_ALL_F32, .seed = 5 };
    mh_err err;
    mh_model *m = NULL;
    if (mh_create_model(&c, &o, model_path, NULL, &err) || mh_model_load(model_path, &m, &err)) {
        fprintf(stderr, "  %s\n", err.msg);
        m = NULL;
    }
    return m;
}

/* A few LoRA steps (B moves off 0), saved in both formats. */
static int train_and_save(mh_model *m)
{
    mh_err err;
    mh_train_config c;
    mh_train_config_init(&c);
    c.lora_rank = 4; c.lora_alpha = 12; c.lora_dropout = 0; c.lr = 5e-2f;
    mh_trainer *t = mh_trainer_new(m, &c, &err);
    if (!t) return -1;
    int32_t tok[16];
    for (int i = 0; i < 16; i++) tok[i] = (int32_t)((i * 37 + 11) % 259);
    mh_train_result r;
    int st = MH_OK;
    for (int s = 0; s < 4 && !st; s++) st = mh_trainer_step(t, tok, NULL, 1, 16, &r, &err);
    if (!st) st = mh_trainer_save_adapter_gguf(t, gguf_path, &err);
    if (!st) st = mh_trainer_save_adapter(t, st_path, &err);
    if (st) fprintf(stderr, "  %s\n", err.msg);
    mh_trainer_free(t);
    return st;
}

/* logits (T, vocab) of a fixed prompt with the adapter set (NULL: none) */
static int logits(mh_model *m, const mh_lora *lo, float *out)
{
    mh_err err;
    const mh_lora *list[1] = { lo };
    if (mh_model_set_loras(m, list, lo ? 1 : 0, &err)) return -1;
    int32_t tok[6] = { 1, 40, 77, 3, 200, 9 };
    mh_kv_cache *kc = mh_kv_cache_new_type(m, 8, MH_DTYPE_F32, &err);
    int st = kc ? mh_model_forward(m, kc, tok, 6, out, true, &err) : -1;
    mh_kv_cache_free(kc);
    return st;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void gguf_equals_safetensors(void)
{
    mh_model *m = created_model();
    CHECK(m && train_and_save(m) == 0);
    size_t n = 6 * 259;
    float *base = malloc(sizeof(float) * n), *lg = malloc(sizeof(float) * n), *ls = malloc(sizeof(float) * n);
    float *zero = malloc(sizeof(float) * n);
    mh_err err;
    mh_lora *g = NULL, *s = NULL, *g0 = NULL;
    CHECK_MSG(mh_lora_load(m, gguf_path, 1.0f, &g, &err) == MH_OK, "%s", err.msg);
    CHECK_MSG(mh_lora_load(m, st_path, 1.0f, &s, &err) == MH_OK, "%s", err.msg);
    CHECK(mh_lora_load(m, gguf_path, 0.0f, &g0, &err) == MH_OK);
    CHECK(logits(m, NULL, base) == 0 && logits(m, g, lg) == 0 && logits(m, s, ls) == 0);
    CHECK(logits(m, g0, zero) == 0);
    CHECK_MSG(max_diff(lg, ls, n) < 1e-5, "gguf vs safetensors %g", max_diff(lg, ls, n));
    CHECK_MSG(max_diff(lg, base, n) > 1e-3, "the adapter changes nothing (%g)", max_diff(lg, base, n));
    CHECK(max_diff(zero, base, n) == 0);
    mh_model_set_loras(m, NULL, 0, &err);
    mh_lora_free(g); mh_lora_free(s); mh_lora_free(g0);
    free(base); free(lg); free(ls); free(zero);
    mh_model_free(m);
}

/* The reference: y (T, rows) += scale (x Aᵀ) Bᵀ in plain loops, in double. */
static void addmm_ref(const float *a, const float *b, int64_t r, int64_t rows, int64_t cols, float scale,
                      const float *x, int64_t T, float *y)
{
    for (int64_t t = 0; t < T; t++) {
        double xa[16];
        for (int64_t j = 0; j < r; j++) {
            xa[j] = 0;
            for (int64_t c = 0; c < cols; c++) xa[j] += (double)x[t * cols + c] * a[j * cols + c];
        }
        for (int64_t i = 0; i < rows; i++) {
            double d = 0;
            for (int64_t j = 0; j < r; j++) d += xa[j] * b[i * r + j];
            y[t * rows + i] += (float)(scale * d);
        }
    }
}

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((double)(rng >> 11) / (double)(1ull << 53)) * 2.0f - 1.0f;
}

/* Ranks 1/8/16, one token, slot batches and prompts, square, wide and tall
 * shapes, with two BLAS threads. */
static void addmm_matches_ref(void)
{
    static const int64_t shapes[][2] = { { 32, 32 }, { 33, 100 }, { 172, 64 }, { 5000, 48 }, { 64, 8192 } };
    static const int64_t ranks[] = { 1, 8, 16 }, Ts[] = { 1, 2, 7, 16, 19 };
    int threads = mh_threads_get();
    mh_threads_set(2);
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (size_t ri = 0; ri < 3; ri++)
            for (size_t ti = 0; ti < 5; ti++) {
                int64_t rows = shapes[si][0], cols = shapes[si][1], r = ranks[ri], T = Ts[ti];
                float *a = malloc(sizeof(float) * (size_t)(r * cols)), *b = malloc(sizeof(float) * (size_t)(rows * r));
                float *x = malloc(sizeof(float) * (size_t)(T * cols)), *y = malloc(sizeof(float) * (size_t)(T * rows));
                float *want = malloc(sizeof(float) * (size_t)(T * rows)), *xa = malloc(sizeof(float) * (size_t)(T * r));
                for (int64_t i = 0; i < r * cols; i++) a[i] = frand();
                for (int64_t i = 0; i < rows * r; i++) b[i] = frand();
                for (int64_t i = 0; i < T * cols; i++) x[i] = frand();
                for (int64_t i = 0; i < T * rows; i++) want[i] = y[i] = frand();
                addmm_ref(a, b, r, rows, cols, 0.75f, x, T, want);
                mh_lora_addmm(a, b, r, rows, cols, 0.75f, x, T, y, xa);
                double d = 0, tol = 1e-5 * sqrt((double)cols) * sqrt((double)r) * 4;
                for (int64_t i = 0; i < T * rows && d == d; i++) {   /* a NaN sticks */
                    double e = fabs((double)y[i] - want[i]);
                    d = e > d || e != e ? e : d;
                }
                CHECK_MSG(d < tol, "rows %lld cols %lld rank %lld T %lld: off by %g", (long long)rows,
                          (long long)cols, (long long)r, (long long)T, d);
                free(a); free(b); free(x); free(y); free(want); free(xa);
            }
    mh_threads_set(threads);
}

/* A 20-token prompt's logits in one forward equal those of its tokens fed
 * one by one, with the adapter on: the scratch rows serve any T. */
static void prompt_equals_steps(void)
{
    enum { N = 20, V = 259 };
    mh_model *m = created_model();
    CHECK(m && train_and_save(m) == 0);
    mh_err err;
    mh_lora *g = NULL;
    CHECK_MSG(mh_lora_load(m, gguf_path, 1.0f, &g, &err) == MH_OK, "%s", err.msg);
    const mh_lora *list[1] = { g };
    CHECK(mh_model_set_loras(m, list, 1, &err) == MH_OK);
    static float all[N * V], one[V];
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)((i * 53 + 7) % V);
    mh_kv_cache *kc = mh_kv_cache_new_type(m, N, MH_DTYPE_F32, &err);
    mh_kv_cache *k1 = mh_kv_cache_new_type(m, N, MH_DTYPE_F32, &err);
    CHECK(kc && k1 && mh_model_forward(m, kc, tok, N, all, true, &err) == MH_OK);
    double d = 0;
    int bad = 0;
    for (int t = 0; k1 && t < N; t++) {
        CHECK(mh_model_forward(m, k1, tok + t, 1, one, false, &err) == MH_OK);
        for (int i = 0; i < V; i++) {   /* a NaN counts as off (fmax would skip it) */
            double e = fabs((double)one[i] - all[t * V + i]);
            bad += !(e < 1e-4);
            d = fmax(d, e);
        }
    }
    CHECK_MSG(bad == 0, "prompt vs token by token: %d logits off, by up to %g", bad, d);
    mh_kv_cache_free(kc);
    mh_kv_cache_free(k1);
    mh_model_set_loras(m, NULL, 0, &err);
    mh_lora_free(g);
    mh_model_free(m);
}

/* Per-request adapters in one batched forward: rows with the adapter (at
 * two scales) and rows without, each equal to its sequence run alone with
 * the adapter set on the whole model (or none); a retained adapter outlives
 * its loader's reference; an adapter of another shape is refused. */
static void batch_rows_own_adapters(void)
{
    enum { V = 259 };
    mh_model *m = created_model();
    CHECK(m && train_and_save(m) == 0);
    mh_err err;
    mh_lora *g = NULL, *g_half = NULL;
    CHECK_MSG(mh_lora_load(m, gguf_path, 1.0f, &g, &err) == MH_OK, "%s", err.msg);
    CHECK(mh_lora_load(m, gguf_path, 0.5f, &g_half, &err) == MH_OK);
    int32_t a[5] = { 1, 40, 77, 3, 200 }, b[3] = { 9, 8, 7 }, c[4] = { 5, 6, 7, 8 };
    static float got[3][5 * V], want[3][5 * V];
    mh_kv_cache *kc[3], *kr[3];
    for (int i = 0; i < 3; i++) {
        kc[i] = mh_kv_cache_new_type(m, 16, MH_DTYPE_F32, &err);
        kr[i] = mh_kv_cache_new_type(m, 16, MH_DTYPE_F32, &err);
    }
    mh_lora_use ug = { mh_lora_retain(g), 1.0f }, uh = { g, 0.5f };
    mh_lora_free(g);                                  /* the retained reference keeps it */
    mh_batch_seq seqs[3] = {
        { .cache = kc[0], .tokens = a, .n = 5, .logits = got[0], .all_logits = true, .loras = &ug, .n_loras = 1 },
        { .cache = kc[1], .tokens = b, .n = 3, .logits = got[1], .all_logits = true },
        { .cache = kc[2], .tokens = c, .n = 4, .logits = got[2], .all_logits = true, .loras = &uh, .n_loras = 1 },
    };
    CHECK_MSG(mh_model_forward_batch(m, seqs, 3, &err) == MH_OK, "%s", err.msg);
    const mh_lora *one[1] = { g }, *half[1] = { g_half };
    CHECK(mh_model_set_loras(m, one, 1, &err) == MH_OK);
    CHECK(mh_model_forward(m, kr[0], a, 5, want[0], true, &err) == MH_OK);
    CHECK(mh_model_set_loras(m, half, 1, &err) == MH_OK);
    CHECK(mh_model_forward(m, kr[2], c, 4, want[2], true, &err) == MH_OK);
    CHECK(mh_model_set_loras(m, NULL, 0, &err) == MH_OK);
    CHECK(mh_model_forward(m, kr[1], b, 3, want[1], true, &err) == MH_OK);
    double d0 = max_diff(got[0], want[0], 5 * V), d1 = max_diff(got[1], want[1], 3 * V);
    double d2 = max_diff(got[2], want[2], 4 * V);
    CHECK_MSG(d0 < 1e-4 && d1 < 1e-4 && d2 < 1e-4, "batched vs alone: %g %g %g", d0, d1, d2);
    /* and the adapter did change its rows (else the above shows nothing) */
    CHECK_MSG(max_diff(got[0], got[1], 3 * V) > 0, "rows agree");
    CHECK(mh_lora_check(m, g, &err) == MH_OK);
    /* a decode step of all three, one token each, still each its own */
    int32_t next = 11;
    for (int i = 0; i < 3; i++) { seqs[i].tokens = &next; seqs[i].n = 1; seqs[i].all_logits = false; }
    CHECK(mh_model_forward_batch(m, seqs, 3, &err) == MH_OK);
    CHECK(mh_model_set_loras(m, one, 1, &err) == MH_OK);
    CHECK(mh_model_forward(m, kr[0], &next, 1, want[0], false, &err) == MH_OK);
    CHECK(mh_model_set_loras(m, NULL, 0, &err) == MH_OK);
    CHECK(mh_model_forward(m, kr[1], &next, 1, want[1], false, &err) == MH_OK);
    CHECK_MSG(max_diff(got[0], want[0], V) < 1e-4 && max_diff(got[1], want[1], V) < 1e-4, "decode step");
    /* a bad adapter list is refused before any cache moves */
    seqs[1].n_loras = MH_MAX_SEQ_LORAS + 1;
    CHECK(mh_model_forward_batch(m, seqs, 3, &err) == MH_EINVAL && mh_kv_cache_n_past(kc[0]) == 6);
    for (int i = 0; i < 3; i++) { mh_kv_cache_free(kc[i]); mh_kv_cache_free(kr[i]); }
    mh_lora_free(ug.lora);                            /* the last reference: freed (ASan checks) */
    mh_lora_free(g_half);
    mh_model_free(m);
}

/* A one-tensor adapter GGUF: arch, and lora_a of (rank, cols) for blk.0.attn_q. */
static int write_adapter(const char *arch, const char *type, int64_t cols)
{
    mh_err err;
    mh_gguf_writer *w = mh_gguf_writer_new();
    float a[4 * 64] = { 0 }, b[32 * 4] = { 0 };
    int64_t na[4] = { cols, 4, 1, 1 }, nb[4] = { 4, 32, 1, 1 };
    int st = mh_gguf_writer_set_str(w, "general.architecture", arch, strlen(arch), &err);
    if (!st) st = mh_gguf_writer_set_str(w, "general.type", type, strlen(type), &err);
    if (!st) st = mh_gguf_writer_add_tensor(w, "blk.0.attn_q.weight.lora_a", 2, na, MH_DTYPE_F32, &err);
    if (!st) st = mh_gguf_writer_add_tensor(w, "blk.0.attn_q.weight.lora_b", 2, nb, MH_DTYPE_F32, &err);
    if (!st) st = mh_gguf_writer_begin(w, bad_path, &err);
    if (!st) st = mh_gguf_writer_write_data(w, a, sizeof(float) * (size_t)(4 * cols), &err);
    if (!st) st = mh_gguf_writer_write_data(w, b, sizeof b, &err);
    if (!st) st = mh_gguf_writer_finish(w, &err);
    mh_gguf_writer_free(w);
    return st;
}

static void bad_adapters(void)
{
    mh_model *m = created_model();
    CHECK(m && train_and_save(m) == 0);
    mh_err err;
    mh_lora *lo = NULL;
    CHECK(mh_lora_load(m, model_path, 1.0f, &lo, &err) == MH_EFORMAT && !lo);
    CHECK_MSG(strstr(err.msg, "is not a LoRA adapter"), "%s", err.msg);
    CHECK(mh_lora_load(m, "/nonexistent/a.gguf", 1.0f, &lo, &err) != MH_OK && !lo);
    CHECK(write_adapter("qwen2", "adapter", 32) == 0);
    CHECK(mh_lora_load(m, bad_path, 1.0f, &lo, &err) == MH_EINVAL && !lo);
    CHECK_MSG(strstr(err.msg, "made for a qwen2 model, this one is llama"), "%s", err.msg);
    CHECK(write_adapter("llama", "adapter", 48) == 0);            /* attn_q takes 32 columns */
    CHECK(mh_lora_load(m, bad_path, 1.0f, &lo, &err) == MH_ESHAPE && !lo);
    CHECK_MSG(strstr(err.msg, "blk.0.attn_q.weight.lora_a has shape (4,48), the base needs (4,32)"), "%s", err.msg);
    CHECK(write_adapter("llama", "adapter", 32) == 0);            /* a good one-pair adapter */
    CHECK_MSG(mh_lora_load(m, bad_path, 1.0f, &lo, &err) == MH_OK, "%s", err.msg);
    mh_lora_free(lo);
    lo = NULL;
    /* every cut of the trainer's file is refused, never read past */
    struct stat sb;
    CHECK(stat(gguf_path, &sb) == 0);
    FILE *f = fopen(gguf_path, "rb");
    char *bytes = malloc((size_t)sb.st_size);
    CHECK(f && bytes && fread(bytes, 1, (size_t)sb.st_size, f) == (size_t)sb.st_size);
    fclose(f);
    for (off_t cut = 4; cut < sb.st_size; cut += sb.st_size / 13 + 1) {
        FILE *o = fopen(bad_path, "wb");
        CHECK(o && fwrite(bytes, 1, (size_t)cut, o) == (size_t)cut);
        fclose(o);
        CHECK(mh_lora_load(m, bad_path, 1.0f, &lo, &err) != MH_OK && !lo);
    }
    free(bytes);
    mh_model_free(m);
}

int main(void)
{
    snprintf(model_path, sizeof model_path, "/tmp/mh_lora_test_%d.gguf", (int)getpid());
    snprintf(gguf_path, sizeof gguf_path, "/tmp/mh_lora_test_%d_a.gguf", (int)getpid());
    snprintf(st_path, sizeof st_path, "/tmp/mh_lora_test_%d_a.safetensors", (int)getpid());
    snprintf(bad_path, sizeof bad_path, "/tmp/mh_lora_test_%d_bad.gguf", (int)getpid());
    TEST_RUN(gguf_equals_safetensors);
    TEST_RUN(bad_adapters);
    TEST_RUN(addmm_matches_ref);
    TEST_RUN(prompt_equals_steps);
    TEST_RUN(batch_rows_own_adapters);
    unlink(model_path); unlink(gguf_path); unlink(st_path); unlink(bad_path);
    return TEST_REPORT();
}
