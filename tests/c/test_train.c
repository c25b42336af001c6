/* test_train.c: the trainer around the gradients: forward against the
 * inference forward, AdamW against a hand computation, schedules,
 * accumulation, checkpointing, determinism, the NaN guard, bad input.
 * Runs on a generated model (no test data needed) and on stories260K. */
#include <stdint.h>
#include "harness.h"
#include "mh/create.h"
#include "mh/model.h"
#include "mh/safetensors.h"
#include <sys/stat.h>
#include "mh/train.h"

static mh_model *created_model(const char *arch, bool tied, bool bias)
{
    mh_create_config c = { 0 };
    char path[64];
    snprintf(c.arch, sizeof c.arch, "%s", arch);
    snprintf(c.name, sizeof c.name, "train-test");
    c.n_layer = 2; c.n_embd = 32; c.n_ff = 48; c.n_head = 4; c.n_head_kv = 2; c.n_vocab = 259;
    c.n_ctx = 64; c.rope_base = 10000; c.rms_eps = 1e-5; c.tied = tied; c.qkv_bias = bias; c.std = 0.05;
    mh_create_opts o = { .ftype = MH_FTYPE_ALL_F32, .seed = 3 };
    snprintf(path, sizeof path, "/tmp/mh_train_test_%d.gguf", (int)getpid());
    mh_err err;
    mh_model *m = NULL;
    if (mh_create_model(&c, &o, path, NULL, &err) || mh_model_load(path, &m, &err)) {
        fprintf(stderr, "  %s\n", err.msg);
        m = NULL;
    }
    unlink(path);
    return m;
}

static void batch(int32_t *tok, uint8_t *mask, int64_t n, int64_t vocab, unsigned seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        tok[i] = (int32_t)((seed >> 8) % (unsigned)vocab);
        if (mask) mask[i] = i % 8 >= 3;
    }
}

/* ===== forward = inference forward (f32 cache) ===== */

static void forward_case(mh_model *m)
{
    const mh_hparams *hp = mh_model_hparams(m);
    mh_err err;
    mh_train_config c;
    mh_train_config_init(&c);
    mh_trainer *t = mh_trainer_new(m, &c, &err);
    CHECK_MSG(t, "%s", err.msg);
    int32_t tok[12];
    batch(tok, NULL, 12, hp->n_vocab, 9);
    double sum; int64_t n;
    CHECK(mh_trainer_eval(t, tok, NULL, 1, 12, &sum, &n, &err) == MH_OK);
    CHECK(n == 11);
    mh_kv_cache *kc = mh_kv_cache_new_type(m, 16, MH_DTYPE_F32, &err);
    float *lg = malloc(sizeof(float) * 12 * (size_t)hp->n_vocab);
    CHECK(kc && lg && mh_model_forward(m, kc, tok, 12, lg, true, &err) == MH_OK);
    double ref = 0;
    for (int i = 0; i < 11; i++) {
        const float *z = lg + i * hp->n_vocab;
        double mx = -1e30, s = 0;
        for (int64_t k = 0; k < hp->n_vocab; k++) if (z[k] > mx) mx = z[k];
        for (int64_t k = 0; k < hp->n_vocab; k++) s += exp(z[k] - mx);
        ref += mx + log(s) - z[tok[i + 1]];
    }
    CHECK_CLOSE(sum, ref, 1e-4, 1e-5);
    free(lg);
    mh_kv_cache_free(kc);
    mh_trainer_free(t);
}

static void test_forward_matches_inference(void)
{
    mh_model *m = created_model("qwen2", true, true);
    CHECK(m);
    forward_case(m);
    mh_model_free(m);
    if (test_case_failed) return;
    char buf[4096];
    const char *p = test_data_path("models/stories260K.gguf", buf);
    if (!p) TEST_SKIP("models/stories260K.gguf");
    mh_err err;
    CHECK(mh_model_load(p, &m, &err) == MH_OK);
    forward_case(m);
    mh_model_free(m);
}

/* ===== schedules ===== */

static void test_lr_schedule(void)
{
    mh_train_config c;
    mh_train_config_init(&c);
    c.lr = 1.0f; c.min_lr = 0.1f; c.warmup = 10; c.total_steps = 110;
    CHECK_CLOSE(mh_train_lr_at(&c, 0), 0.1, 1e-7, 0);
    CHECK_CLOSE(mh_train_lr_at(&c, 9), 1.0, 1e-7, 0);
    CHECK_CLOSE(mh_train_lr_at(&c, 50), 1.0, 1e-7, 0);            /* constant */
    c.decay = MH_DECAY_LINEAR;
    CHECK_CLOSE(mh_train_lr_at(&c, 60), 0.55, 1e-6, 0);
    CHECK_CLOSE(mh_train_lr_at(&c, 500), 0.1, 1e-7, 0);
    c.decay = MH_DECAY_COSINE;
    CHECK_CLOSE(mh_train_lr_at(&c, 10), 1.0, 1e-7, 0);
    CHECK_CLOSE(mh_train_lr_at(&c, 60), 0.55, 1e-6, 0);            /* half way: the middle */
    CHECK_CLOSE(mh_train_lr_at(&c, 35), 0.1 + 0.9 * 0.5 * (1 + cos(M_PI * 0.25)), 1e-6, 0);
    CHECK_CLOSE(mh_train_lr_at(&c, 110), 0.1, 1e-7, 0);
}

/* ===== AdamW: one step against the formula ===== */

static void test_adamw_step(void)
{
    mh_model *m = created_model("llama", false, false);
    CHECK(m);
    mh_err err;
    mh_train_config c;
    mh_train_config_init(&c);
    c.method = MH_TRAIN_FULL;
    c.lr = 1e-2f; c.weight_decay = 0.1f; c.grad_clip = 0.5f;
    mh_trainer *t = mh_trainer_new(m, &c, &err);
    CHECK(t);
    int32_t tok[16]; uint8_t mask[16];
    batch(tok, mask, 16, 259, 5);
    double loss; int64_t n;
    CHECK(mh_trainer_grad(t, tok, mask, 2, 8, &loss, &n, &err) == MH_OK);
    mh_train_param *p = mh_trainer_param(t, 1);      /* blk.0.attn_norm: no decay */
    mh_train_param *q = mh_trainer_param(t, 2);      /* blk.0.attn_q: decay */
    CHECK(!p->decay && q->decay);
    double ss = 0;
    for (int i = 0; i < mh_trainer_n_params(t); i++) {
        mh_train_param *r = mh_trainer_param(t, i);
        for (int64_t k = 0; k < r->rows * r->cols; k++) ss += (double)r->grad[k] * r->grad[k];
    }
    double norm = sqrt(ss), clip = norm > 0.5 ? 0.5 / norm : 1;
    float w0[2] = { p->data[3], q->data[5] }, g0[2] = { p->grad[3], q->grad[5] };
    mh_train_result r;
    CHECK(mh_trainer_step(t, tok, mask, 2, 8, &r, &err) == MH_OK);
    CHECK(!r.nan && r.step == 1);
    CHECK_CLOSE(r.grad_norm, norm, 0, 1e-6);
    CHECK_CLOSE(r.loss, loss, 0, 1e-9);
    for (int j = 0; j < 2; j++) {
        double g = g0[j] * clip, mh = 0.1 * g / 0.1, vh = 0.001 * g * g / 0.001;
        double want = w0[j] - 1e-2 * (mh / (sqrt(vh) + 1e-8) + (j ? 0.1 : 0) * w0[j]);
        CHECK_CLOSE((j ? q : p)->data[j ? 5 : 3], want, 1e-6, 1e-5);
    }
    mh_trainer_free(t);
    mh_model_free(m);
}

/* ===== accumulation and checkpointing give the same gradients ===== */

static float *grads_of(mh_model *m, mh_train_config *c, const int32_t *tok, const uint8_t *mask, int64_t *len)
{
    mh_err err;
    mh_trainer *t = mh_trainer_new(m, c, &err);
    if (!t) return NULL;
    double loss; int64_t n, total = 0;
    mh_trainer_grad(t, tok, mask, 4, 8, &loss, &n, &err);
    for (int i = 0; i < mh_trainer_n_params(t); i++) total += mh_trainer_param(t, i)->rows * mh_trainer_param(t, i)->cols;
    float *g = malloc(sizeof(float) * (size_t)total), *q = g;
    for (int i = 0; g && i < mh_trainer_n_params(t); i++) {
        mh_train_param *p = mh_trainer_param(t, i);
        memcpy(q, p->grad, sizeof(float) * (size_t)(p->rows * p->cols));
        q += p->rows * p->cols;
    }
    *len = total;
    mh_trainer_free(t);
    return g;
}

static void test_accumulate_and_checkpoint(void)
{
    mh_model *m = created_model("qwen2", true, true);
    CHECK(m);
    int32_t tok[32]; uint8_t mask[32];
    batch(tok, mask, 32, 259, 11);
    mh_train_config c;
    mh_train_config_init(&c);
    c.method = MH_TRAIN_FULL;
    int64_t n1, n2, n3;
    float *a = grads_of(m, &c, tok, mask, &n1);
    c.accumulate = 2;
    float *b = grads_of(m, &c, tok, mask, &n2);
    c.checkpoint = true;
    float *d = grads_of(m, &c, tok, mask, &n3);
    CHECK(a && b && d && n1 == n2 && n2 == n3);
    double e = 0, mx = 0;
    for (int64_t i = 0; i < n1; i++) {
        if (fabs(a[i] - b[i]) > e) e = fabs(a[i] - b[i]);
        if (fabs(a[i]) > mx) mx = fabs(a[i]);
    }
    CHECK_MSG(e <= 1e-5 * mx, "accumulate=2 differs by %g (max %g)", e, mx);
    CHECK(memcmp(b, d, sizeof(float) * (size_t)n1) == 0);   /* recompute is bitwise the same */
    free(a); free(b); free(d);
    mh_model_free(m);
}

/* ===== determinism and the NaN guard ===== */

static void run_steps(mh_model *m, const mh_train_config *c, double *losses, int n)
{
    mh_err err;
    mh_trainer *t = mh_trainer_new(m, c, &err);
    int32_t tok[32]; uint8_t mask[32];
    for (int s = 0; s < n; s++) {
        mh_train_result r;
        batch(tok, mask, 32, 259, (unsigned)s);
        losses[s] = t && mh_trainer_step(t, tok, mask, 4, 8, &r, &err) == MH_OK ? r.loss : -1;
    }
    mh_trainer_free(t);
}

static void test_deterministic(void)
{
    mh_model *m = created_model("llama", true, false);
    CHECK(m);
    mh_train_config c;
    mh_train_config_init(&c);
    c.lora_dropout = 0.1f; c.lr = 1e-2f; c.accumulate = 2; c.lora_targets = 127;
    double a[6], b[6];
    run_steps(m, &c, a, 6);
    run_steps(m, &c, b, 6);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(a[5] < a[0] || a[5] != a[0]);
    c.seed = 2;
    run_steps(m, &c, b, 6);
    CHECK(b[1] != a[1]);          /* another seed: other adapters and masks */
    mh_model_free(m);
}

static void test_nan_guard(void)
{
    mh_model *m = created_model("llama", false, false);
    CHECK(m);
    mh_err err;
    mh_train_config c;
    mh_train_config_init(&c);
    c.method = MH_TRAIN_FULL;
    c.lr = 1e30f; c.grad_clip = 0;
    mh_trainer *t = mh_trainer_new(m, &c, &err);
    CHECK(t);
    int32_t tok[16];
    batch(tok, NULL, 16, 259, 1);
    mh_train_result r;
    bool saw_nan = false;
    for (int s = 0; s < 4 && !saw_nan; s++) {
        mh_train_param *p = mh_trainer_param(t, 2);
        float w = p->data[0], mom = p->m[0];
        int64_t steps = mh_trainer_steps(t);
        CHECK(mh_trainer_step(t, tok, NULL, 2, 8, &r, &err) == MH_OK);
        if (r.nan) {
            saw_nan = true;
            CHECK(p->data[0] == w && p->m[0] == mom && mh_trainer_steps(t) == steps);
        }
    }
    CHECK(saw_nan);
    mh_trainer_free(t);
    mh_model_free(m);
}

static void test_bad_input(void)
{
    mh_model *m = created_model("llama", false, false);
    CHECK(m);
    mh_err err;
    mh_train_config c;
    mh_train_config_init(&c);
    c.lora_rank = 0;
    CHECK(mh_trainer_new(m, &c, &err) == NULL && err.code == MH_EINVAL && strstr(err.msg, "rank"));
    mh_train_config_init(&c);
    c.decay = MH_DECAY_COSINE;
    CHECK(mh_trainer_new(m, &c, &err) == NULL && strstr(err.msg, "total"));
    mh_train_config_init(&c);
    mh_trainer *t = mh_trainer_new(m, &c, &err);
    CHECK(t);
    int32_t tok[8] = { 1, 2, 3, 999, 4, 5, 6, 7 };
    uint8_t none[8] = { 0 };
    mh_train_result r;
    CHECK(mh_trainer_step(t, tok, NULL, 1, 8, &r, &err) == MH_EINVAL && strstr(err.msg, "999"));
    tok[3] = 3;
    CHECK(mh_trainer_step(t, tok, none, 1, 8, &r, &err) == MH_EINVAL);
    CHECK(mh_trainer_step(t, tok, NULL, 1, 1, &r, &err) == MH_EINVAL);
    CHECK(mh_trainer_save_adapter(t, "/nonexistent/dir/a.safetensors", &err) != MH_OK);
    mh_trainer_free(t);
    mh_model_free(m);
}

/* ===== files: export, checkpoint/resume, adapters ===== */

static void test_export_merged(void)
{
    mh_model *m = created_model("llama", false, false);
    CHECK(m);
    mh_err err;
    mh_train_config c;
    mh_train_config_init(&c);
    c.lr = 1e-2f; c.lora_targets = 127;
    mh_trainer *t = mh_trainer_new(m, &c, &err);
    CHECK(t);
    int32_t tok[32]; uint8_t mask[32];
    mh_train_result r;
    for (int s = 0; s < 3; s++) {
        batch(tok, mask, 32, 259, 40u + (unsigned)s);
        CHECK(mh_trainer_step(t, tok, mask, 4, 8, &r, &err) == MH_OK);
    }
    double want, got; int64_t n;
    CHECK(mh_trainer_eval(t, tok, mask, 4, 8, &want, &n, &err) == MH_OK);
    char path[64];
    snprintf(path, sizeof path, "/tmp/mh_train_export_%d.gguf", (int)getpid());
    CHECK_MSG(mh_trainer_export(t, path, MH_DTYPE_F32, &err) == MH_OK, "%s", err.msg);
    mh_model *e = NULL;
    CHECK_MSG(mh_model_load(path, &e, &err) == MH_OK, "%s", err.msg);
    unlink(path);
    mh_trainer *te = mh_trainer_new(e, &c, &err);     /* fresh adapters: B = 0, so base = merged */
    CHECK(te && mh_trainer_eval(te, tok, mask, 4, 8, &got, &n, &err) == MH_OK);
    CHECK_CLOSE(got, want, 1e-4, 1e-5);
    CHECK(fabs(got - want) < 1e-3);
    CHECK_MSG(mh_trainer_export(t, path, MH_DTYPE_Q8_0, &err) == MH_OK, "%s", err.msg);
    mh_model_free(e);
    CHECK(mh_model_load(path, &e, &err) == MH_OK);
    unlink(path);
    CHECK(mh_model_layer(e, 0)->wq.dtype == MH_DTYPE_Q8_0);
    mh_trainer_free(te);
    mh_trainer_free(t);
    mh_model_free(e);
    mh_model_free(m);
}

static void test_checkpoint_resume(void)
{
    mh_model *m = created_model("qwen2", true, true);
    CHECK(m);
    mh_err err;
    mh_train_config c;
    mh_train_config_init(&c);
    c.method = MH_TRAIN_FULL; c.lr = 1e-3f;
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/mh_train_ckpt_%d", (int)getpid());
    CHECK(mkdir(dir, 0700) == 0);
    mh_trainer *a = mh_trainer_new(m, &c, &err), *b = mh_trainer_new(m, &c, &err);
    CHECK(a && b);
    int32_t tok[32]; uint8_t mask[32];
    mh_train_result r, q;
    for (int s = 0; s < 5; s++) {
        batch(tok, mask, 32, 259, 70u + (unsigned)s);
        CHECK(mh_trainer_step(a, tok, mask, 4, 8, &r, &err) == MH_OK);
        if (s == 2) CHECK_MSG(mh_trainer_checkpoint(a, dir, &err) == MH_OK, "%s", err.msg);
    }
    CHECK_MSG(mh_trainer_restore(b, dir, &err) == MH_OK, "%s", err.msg);
    CHECK(mh_trainer_steps(b) == 3);
    mh_trainer_free(a);
    a = mh_trainer_new(m, &c, &err);
    CHECK(mh_trainer_restore(a, dir, &err) == MH_OK);
    for (int s = 3; s < 5; s++) {       /* both continue identically from the checkpoint */
        batch(tok, mask, 32, 259, 70u + (unsigned)s);
        CHECK(mh_trainer_step(a, tok, mask, 4, 8, &r, &err) == MH_OK);
        CHECK(mh_trainer_step(b, tok, mask, 4, 8, &q, &err) == MH_OK);
        CHECK(r.loss == q.loss);
    }
    mh_train_config_init(&c);        /* a LoRA trainer cannot take a full checkpoint */
    mh_trainer *l = mh_trainer_new(m, &c, &err);
    CHECK(l && mh_trainer_restore(l, dir, &err) == MH_EFORMAT);
    CHECK(mh_trainer_save_adapter(a, "/tmp/x.safetensors", &err) == MH_EINVAL);
    char f[128];
    snprintf(f, sizeof f, "%s/lora.safetensors", dir);
    CHECK_MSG(mh_trainer_save_adapter(l, f, &err) == MH_OK, "%s", err.msg);
    mh_safetensors *sf = mh_safetensors_open(f, &err);
    CHECK(sf);
    CHECK(mh_safetensors_count(sf) == 2 * 4 * 2);
    int i = mh_safetensors_find(sf, "base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight");
    CHECK(i >= 0 && mh_safetensors_info(sf, i)->shape[0] == 8 && mh_safetensors_info(sf, i)->shape[1] == 32);
    CHECK(!strcmp(mh_safetensors_meta_get(sf, "lora_alpha"), "16"));
    mh_safetensors_close(sf);
    unlink(f);
    snprintf(f, sizeof f, "%s/trainer.safetensors", dir);
    unlink(f);
    rmdir(dir);
    mh_trainer_free(l);
    mh_trainer_free(a);
    mh_trainer_free(b);
    mh_model_free(m);
}

int main(void)
{
    TEST_RUN(test_forward_matches_inference);
    TEST_RUN(test_lr_schedule);
    TEST_RUN(test_adamw_step);
    TEST_RUN(test_accumulate_and_checkpoint);
    TEST_RUN(test_deterministic);
    TEST_RUN(test_nan_guard);
    TEST_RUN(test_bad_input);
    TEST_RUN(test_export_merged);
    TEST_RUN(test_checkpoint_resume);
    return TEST_REPORT();
}
