/* test_train_ref.c: the trainer's loss and gradients of one step on a tiny
 * llama against PyTorch float64 autograd (tests/fixtures/train_reference.bin,
 * written by tests/tools/gen_train_reference.py; no Python needed here).
 * Layer: tests (engine/train, engine/model). Full training of every tensor,
 * then LoRA on all seven projections over the same weights (exported). */
#include <stdint.h>
#include "harness.h"
#include "mh/create.h"
#include "mh/safetensors.h"
#include "mh/tensor.h"
#include "mh/train.h"

#define FIXTURE "tests/fixtures/train_reference.bin"
#define GRAD_TOL 1e-4     /* ||g - ref|| / ||ref|| per tensor: our forward is f32 */
#define LOSS_TOL 1e-5     /* relative */

typedef struct ref {
    mh_safetensors *st;
    int32_t tok[64];      /* (B, T) */
    uint8_t mask[64];     /* (B, T) */
    int64_t B, T;
} ref;

static double meta_num(mh_safetensors *st, const char *key)
{
    const char *v = mh_safetensors_meta_get(st, key);
    return v ? strtod(v, NULL) : NAN;
}

/* The data of fixture tensor `name` when it has type dt and n elements, else NULL. */
static const void *fixture_data(mh_safetensors *st, const char *name, mh_dtype dt, int64_t n, mh_tensor **hold)
{
    mh_err err;
    *hold = mh_safetensors_get(st, name, &err);
    if (!*hold) { fprintf(stderr, "  fixture: %s\n", err.msg); return NULL; }
    if ((*hold)->dtype != dt || mh_tensor_numel(*hold) != n) {
        fprintf(stderr, "  fixture: %s has the wrong type or size\n", name);
        return NULL;
    }
    return mh_tensor_data(*hold);
}

static int ref_open(ref *r)
{
    mh_err err;
    memset(r, 0, sizeof *r);
    if (!(r->st = mh_safetensors_open(FIXTURE, &err))) { fprintf(stderr, "  %s\n", err.msg); return -1; }
    r->B = (int64_t)meta_num(r->st, "batch");
    r->T = (int64_t)meta_num(r->st, "seq");
    if (r->B < 1 || r->T < 2 || r->B * r->T > 64) return -1;
    mh_tensor *a, *b;
    const int32_t *tok = fixture_data(r->st, "tokens", MH_DTYPE_I32, r->B * r->T, &a);
    const uint8_t *mask = fixture_data(r->st, "mask", MH_DTYPE_U8, r->B * r->T, &b);
    if (tok) memcpy(r->tok, tok, sizeof(int32_t) * (size_t)(r->B * r->T));
    if (mask) memcpy(r->mask, mask, (size_t)(r->B * r->T));
    mh_tensor_release(a);
    mh_tensor_release(b);
    return tok && mask ? 0 : -1;
}

/* The fixture's shapes as a created model (its random weights are replaced). */
static mh_model *ref_model(const ref *r, char *path)
{
    mh_create_config c = { 0 };
    snprintf(c.arch, sizeof c.arch, "llama");
    snprintf(c.name, sizeof c.name, "train-reference");
    c.n_layer = (int64_t)meta_num(r->st, "n_layer"); c.n_embd = (int64_t)meta_num(r->st, "n_embd");
    c.n_ff = (int64_t)meta_num(r->st, "n_ff"); c.n_head = (int64_t)meta_num(r->st, "n_head");
    c.n_head_kv = (int64_t)meta_num(r->st, "n_head_kv"); c.n_vocab = (int64_t)meta_num(r->st, "n_vocab");
    c.n_ctx = 64; c.rope_base = meta_num(r->st, "rope_base"); c.rms_eps = meta_num(r->st, "rms_eps");
    c.tied = true;
    mh_create_opts o = { .ftype = MH_FTYPE_ALL_F32, .seed = 1 };
    snprintf(path, 64, "/tmp/mh_train_ref_%d.gguf", (int)getpid());
    mh_err err;
    mh_model *m = NULL;
    if (mh_create_model(&c, &o, path, NULL, &err) || mh_model_load(path, &m, &err)) {
        fprintf(stderr, "  %s\n", err.msg);
        m = NULL;
    }
    unlink(path);     /* the mapping stays valid */
    if (m && mh_model_hparams(m)->n_vocab != c.n_vocab) { mh_model_free(m); m = NULL; }
    return m;
}

/* Copies "<prefix>w.<name>" into every trainer parameter; -1 when one is missing. */
static int load_params(const ref *r, mh_trainer *t, const char *prefix)
{
    char name[160];
    for (int i = 0; i < mh_trainer_n_params(t); i++) {
        mh_train_param *p = mh_trainer_param(t, i);
        mh_tensor *h;
        snprintf(name, sizeof name, "%sw.%s", prefix, p->name);
        const float *w = fixture_data(r->st, name, MH_DTYPE_F32, p->rows * p->cols, &h);
        if (w) memcpy(p->data, w, sizeof(float) * (size_t)(p->rows * p->cols));
        mh_tensor_release(h);
        if (!w) return -1;
    }
    return 0;
}

/* Worst per-tensor ||g - ref|| / ||ref|| over the trainer's parameters (-1: missing). */
static double worst_grad_err(const ref *r, mh_trainer *t, const char *prefix, char *worst_name)
{
    char name[160];
    double worst = 0;
    for (int i = 0; i < mh_trainer_n_params(t); i++) {
        mh_train_param *p = mh_trainer_param(t, i);
        int64_t n = p->rows * p->cols;
        mh_tensor *h;
        snprintf(name, sizeof name, "%sg.%s", prefix, p->name);
        const float *g = fixture_data(r->st, name, MH_DTYPE_F32, n, &h);
        if (!g) { mh_tensor_release(h); return -1; }
        double d2 = 0, r2 = 0;
        for (int64_t k = 0; k < n; k++) {
            d2 += ((double)p->grad[k] - g[k]) * ((double)p->grad[k] - g[k]);
            r2 += (double)g[k] * g[k];
        }
        mh_tensor_release(h);
        double e = r2 > 0 ? sqrt(d2 / r2) : sqrt(d2);
        if (!(e <= worst)) { worst = e; snprintf(worst_name, 96, "%s", p->name); }
    }
    return worst;
}

static void check_step(const ref *r, mh_trainer *t, const char *prefix, const char *loss_key, int want_params)
{
    mh_err err;
    double loss = NAN, want = meta_num(r->st, loss_key), e;
    int64_t n = 0, counted = 0;
    char worst[96] = "";
    CHECK(mh_trainer_n_params(t) == want_params);
    CHECK(load_params(r, t, prefix) == 0);
    CHECK_MSG(mh_trainer_grad(t, r->tok, r->mask, r->B, r->T, &loss, &n, &err) == MH_OK, "%s", err.msg);
    for (int64_t b = 0; b < r->B; b++)
        for (int64_t i = 1; i < r->T; i++) counted += r->mask[b * r->T + i] != 0;
    CHECK(n == counted);
    CHECK_CLOSE(loss, want, 0, LOSS_TOL);
    e = worst_grad_err(r, t, prefix, worst);
    printf("  %sloss %.9f (torch %.9f), worst gradient error %.3g (%s)\n", prefix, loss, want, e, worst);
    CHECK_MSG(e >= 0 && e < GRAD_TOL, "%s: relative gradient error %.3g", worst, e);
}

static void test_reference(void)
{
    ref r;
    char path[64], gguf[64];
    mh_err err;
    CHECK_MSG(ref_open(&r) == 0, "cannot read %s (run from the repository root)", FIXTURE);
    mh_model *m = ref_model(&r, path);
    CHECK(m);
    int n_layer = (int)meta_num(r.st, "n_layer");
    mh_train_config c;
    mh_train_config_init(&c);
    c.method = MH_TRAIN_FULL;
    mh_trainer *t = mh_trainer_new(m, &c, &err);
    CHECK_MSG(t, "%s", err.msg);
    check_step(&r, t, "full.", "full_loss", 2 + 9 * n_layer);   /* embd, output norm; 9 a layer */
    if (test_case_failed) { mh_trainer_free(t); return; }

    /* LoRA over the same weights: export them and load the file as the base */
    snprintf(gguf, sizeof gguf, "/tmp/mh_train_ref_base_%d.gguf", (int)getpid());
    CHECK_MSG(mh_trainer_export(t, gguf, MH_DTYPE_F32, &err) == MH_OK, "%s", err.msg);
    mh_trainer_free(t);
    mh_model *base = NULL;
    int st = mh_model_load(gguf, &base, &err);
    unlink(gguf);
    CHECK_MSG(st == MH_OK, "%s", err.msg);
    mh_train_config_init(&c);
    c.lora_rank = (int)meta_num(r.st, "lora_rank");
    c.lora_alpha = (float)meta_num(r.st, "lora_alpha");
    c.lora_dropout = 0;
    c.lora_targets = MH_LORA_Q | MH_LORA_K | MH_LORA_V | MH_LORA_O | MH_LORA_GATE | MH_LORA_UP | MH_LORA_DOWN;
    t = mh_trainer_new(base, &c, &err);
    CHECK_MSG(t, "%s", err.msg);
    check_step(&r, t, "lora.", "lora_loss", 2 * 7 * n_layer);
    mh_trainer_free(t);
    mh_model_free(base);
    mh_model_free(m);
    mh_safetensors_close(r.st);
}

int main(void)
{
    TEST_RUN(test_reference);
    return TEST_REPORT();
}
