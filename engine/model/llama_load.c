/* llama_load.c: builds an mh_model from a GGUF file (llama, qwen2 and their
 * relatives). Layer: engine/model. Weights stay in the mapping; small 1-D
 * tensors (norms, biases) are converted to owned f32 when stored otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mh/gguf.h"
#include "mh/quant.h"
#include "model_internal.h"

static const char *supported_archs = "llama, mistral, qwen2";

static int get_hp(const mh_gguf *g, const char *arch, const char *key, int64_t *out,
                  bool required, mh_err *err)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    if (mh_gguf_get_int(g, k, out)) return MH_OK;
    if (!required) return MH_OK;
    return mh_err_set(err, MH_EFORMAT, "model: missing metadata key '%s'", k);
}

static float get_hpf(const mh_gguf *g, const char *arch, const char *key, float def)
{
    char k[128];
    double v;
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return mh_gguf_get_float(g, k, &v) ? (float)v : def;
}

/* Finds a tensor and checks its 2-D shape (ne0 = cols, ne1 = rows). */
static int get_weight(mh_model *m, const char *name, int64_t rows, int64_t cols,
                      bool required, mh_weight *w, mh_err *err)
{
    const mh_gguf_tensor *t = mh_gguf_find_tensor(m->gguf, name);
    memset(w, 0, sizeof *w);
    if (!t) {
        if (!required) return MH_OK;
        return mh_err_set(err, MH_EFORMAT, "model: tensor '%s' is missing", name);
    }
    if (t->dtype < 0)
        return mh_err_set(err, MH_EFORMAT, "model: tensor '%s' has unsupported type %s", name,
                          mh_gguf_ggml_type_name(t->ggml_type) ? mh_gguf_ggml_type_name(t->ggml_type) : "?");
    if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1)
        return mh_err_set(err, MH_EFORMAT,
                          "model: tensor '%s' has shape [%lld,%lld], expected [%lld,%lld]", name,
                          (long long)t->ne[0], (long long)t->ne[1], (long long)cols, (long long)rows);
    w->dtype = (mh_dtype)t->dtype;
    w->data = t->data;
    w->rows = rows;
    w->cols = cols;
    m->n_params += rows * cols;
    m->weight_bytes += t->nbytes;
    return MH_OK;
}

/* A 1-D tensor of n values as f32 (copied when stored in another type). */
static int get_vec(mh_model *m, const char *name, int64_t n, bool required,
                   const float **out, mh_err *err)
{
    mh_weight w;
    *out = NULL;
    int st = get_weight(m, name, 1, n, required, &w, err);
    if (st || !w.data) return st;
    if (w.dtype == MH_DTYPE_F32) { *out = w.data; return MH_OK; }
    float *buf = malloc(sizeof(float) * (size_t)n);
    if (!buf) return mh_err_set(err, MH_ENOMEM, "model: out of memory");
    if (mh_dequantize_row(w.dtype, w.data, buf, n)) {
        free(buf);
        return mh_err_set(err, MH_EFORMAT, "model: cannot convert '%s' to f32", name);
    }
    m->owned[m->n_owned++] = buf;
    *out = buf;
    return MH_OK;
}

static int read_hparams(mh_model *m, mh_err *err)
{
    mh_hparams *hp = &m->hp;
    mh_gguf_str s;
    if (!mh_gguf_get_str(m->gguf, "general.architecture", &s))
        return mh_err_set(err, MH_EFORMAT, "model: missing general.architecture");
    snprintf(hp->arch_name, sizeof hp->arch_name, "%.*s", (int)s.len, s.ptr);
    const char *a = hp->arch_name;
    if (!strcmp(a, "llama") || !strcmp(a, "mistral")) hp->arch = MH_ARCH_LLAMA;
    else if (!strcmp(a, "qwen2")) hp->arch = MH_ARCH_QWEN2;
    else
        return mh_err_set(err, MH_EFORMAT, "model: unsupported architecture '%s' (supported: %s)",
                          a, supported_archs);
    int st;
    if ((st = get_hp(m->gguf, a, "block_count", &hp->n_layer, true, err)) ||
        (st = get_hp(m->gguf, a, "embedding_length", &hp->n_embd, true, err)) ||
        (st = get_hp(m->gguf, a, "feed_forward_length", &hp->n_ff, true, err)) ||
        (st = get_hp(m->gguf, a, "attention.head_count", &hp->n_head, true, err)))
        return st;
    hp->n_head_kv = hp->n_head;
    hp->n_ctx_train = 2048;
    get_hp(m->gguf, a, "attention.head_count_kv", &hp->n_head_kv, false, err);
    get_hp(m->gguf, a, "context_length", &hp->n_ctx_train, false, err);
    if (hp->n_layer <= 0 || hp->n_layer > 1024 || hp->n_embd <= 0 || hp->n_head <= 0 ||
        hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv || hp->n_ff <= 0)
        return mh_err_set(err, MH_EFORMAT, "model: inconsistent hyperparameters (layers %lld, "
                          "embd %lld, heads %lld/%lld, ff %lld)", (long long)hp->n_layer,
                          (long long)hp->n_embd, (long long)hp->n_head, (long long)hp->n_head_kv,
                          (long long)hp->n_ff);
    hp->head_dim = hp->n_embd / hp->n_head;
    get_hp(m->gguf, a, "attention.key_length", &hp->head_dim, false, err);
    hp->n_rot = hp->head_dim;
    get_hp(m->gguf, a, "rope.dimension_count", &hp->n_rot, false, err);
    if (hp->head_dim <= 0 || hp->n_rot <= 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return mh_err_set(err, MH_EFORMAT, "model: bad head_dim %lld / rope dims %lld",
                          (long long)hp->head_dim, (long long)hp->n_rot);
    hp->rope_base = get_hpf(m->gguf, a, "rope.freq_base", 10000.0f);
    hp->rms_eps = get_hpf(m->gguf, a, "attention.layer_norm_rms_epsilon", 1e-5f);
    hp->rope_neox = hp->arch == MH_ARCH_QWEN2;
    const mh_gguf_tensor *emb = mh_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb) return mh_err_set(err, MH_EFORMAT, "model: tensor 'token_embd.weight' is missing");
    hp->n_vocab = emb->ne[1];
    return MH_OK;
}

static int load_layers(mh_model *m, mh_err *err)
{
    const mh_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    char n[96];
    int st = MH_OK;
#define W(name, rows, cols, dst) \
    (snprintf(n, sizeof n, "blk.%lld." name, (long long)i), get_weight(m, n, rows, cols, true, dst, err))
#define V(name, len, dst, req) \
    (snprintf(n, sizeof n, "blk.%lld." name, (long long)i), get_vec(m, n, len, req, dst, err))
    for (int64_t i = 0; i < hp->n_layer && !st; i++) {
        mh_layer *L = &m->layers[i];
        bool bias = hp->arch == MH_ARCH_QWEN2;
        if ((st = V("attn_norm.weight", E, &L->attn_norm, true)) ||
            (st = W("attn_q.weight", qd, E, &L->wq)) ||
            (st = W("attn_k.weight", kvd, E, &L->wk)) ||
            (st = W("attn_v.weight", kvd, E, &L->wv)) ||
            (st = W("attn_output.weight", E, qd, &L->wo)) ||
            (st = V("attn_q.bias", qd, &L->bq, bias)) ||
            (st = V("attn_k.bias", kvd, &L->bk, bias)) ||
            (st = V("attn_v.bias", kvd, &L->bv, bias)) ||
            (st = V("ffn_norm.weight", E, &L->ffn_norm, true)) ||
            (st = W("ffn_gate.weight", hp->n_ff, E, &L->w_gate)) ||
            (st = W("ffn_up.weight", hp->n_ff, E, &L->w_up)) ||
            (st = W("ffn_down.weight", E, hp->n_ff, &L->w_down)))
            break;
    }
#undef W
#undef V
    return st;
}

int mh_model_load(const char *path, mh_model **out, mh_err *err)
{
    *out = NULL;
    if (mh_model_is_hf_path(path)) return mh_model_load_hf(path, out, err);
    mh_model *m = calloc(1, sizeof *m);
    if (!m) return mh_err_set(err, MH_ENOMEM, "model: out of memory");
    int st = mh_gguf_open(path, &m->gguf, err);
    if (!st) st = read_hparams(m, err);
    if (!st) {
        const mh_hparams *hp = &m->hp;
        m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
        m->owned = calloc((size_t)hp->n_layer * 6 + 8, sizeof *m->owned);
        if (!m->layers || !m->owned) st = mh_err_set(err, MH_ENOMEM, "model: out of memory");
    }
    if (!st) st = get_weight(m, "token_embd.weight", m->hp.n_vocab, m->hp.n_embd, true, &m->tok_embd, err);
    if (!st) st = get_vec(m, "output_norm.weight", m->hp.n_embd, true, &m->output_norm, err);
    if (!st) st = get_weight(m, "output.weight", m->hp.n_vocab, m->hp.n_embd, false, &m->output, err);
    if (!st && !m->output.data) {
        m->output = m->tok_embd;
        m->hp.tied_embeddings = true;
    }
    if (!st) st = get_vec(m, "rope_freqs.weight", m->hp.n_rot / 2, false, &m->rope_freqs, err);
    if (!st) st = load_layers(m, err);
    if (st) {
        mh_model_free(m);
        return st;
    }
    *out = m;
    return MH_OK;
}

void mh_model_free(mh_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    mh_gguf_close(m->gguf);
    mh_model_hf_release(m);
    free(m);
}

const mh_hparams *mh_model_hparams(const mh_model *m) { return &m->hp; }
const mh_layer *mh_model_layer(const mh_model *m, int64_t i) { return &m->layers[i]; }
struct mh_gguf *mh_model_gguf(const mh_model *m) { return m->gguf; }
int64_t mh_model_n_params(const mh_model *m) { return m->n_params; }
size_t mh_model_weight_bytes(const mh_model *m) { return m->weight_bytes; }

size_t mh_model_kv_bytes_type(const mh_model *m, int64_t n_ctx, mh_dtype type)
{
    const mh_hparams *hp = &m->hp;
    return 2 * mh_dtype_row_size(type, hp->n_head_kv * hp->head_dim) * (size_t)hp->n_layer *
           (size_t)n_ctx;
}

size_t mh_model_kv_bytes(const mh_model *m, int64_t n_ctx)
{
    return mh_model_kv_bytes_type(m, n_ctx, MH_DTYPE_F16);
}
