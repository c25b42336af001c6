/* llama_load.c: builds an mh_model from a GGUF file (llama, qwen2, qwen3,
 * gemma2/3, phi3, qwen2moe and their relatives; arch.c reads what sets them apart). Layer: engine/model. Weights stay in the mapping; small 1-D
 * tensors (norms, biases) are converted to owned f32 when stored otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mh/gguf.h"
#include "mh/safetensors.h"
#include "mh/quant.h"
#include "model_internal.h"

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

/* The GGUF getter (mh_tensor_getter): finds a tensor and checks its 2-D
 * shape (ne0 = cols, ne1 = rows; a vector is one row). ndim 3: stacked
 * experts, ne = [cols, rows / n_expert, n_expert], seen as (rows, cols). */
static int get_weight(mh_model *m, const char *name, int ndim, int64_t rows, int64_t cols,
                      bool required, mh_weight *w, mh_err *err)
{
    const mh_gguf_tensor *t = mh_gguf_find_tensor(m->gguf, name);
    int64_t ne1 = rows, ne2 = 1;
    if (ndim == 3) {
        ne2 = m->hp.n_expert;
        ne1 = rows / ne2;
    }
    memset(w, 0, sizeof *w);
    if (!t) {
        if (!required) return MH_OK;
        return mh_err_set(err, MH_EFORMAT, "model: tensor '%s' is missing", name);
    }
    if (t->dtype < 0)
        return mh_err_set(err, MH_EFORMAT, "model: tensor '%s' has unsupported type %s", name,
                          mh_gguf_ggml_type_name(t->ggml_type) ? mh_gguf_ggml_type_name(t->ggml_type) : "?");
    if (ndim == 3 && (t->ne[0] != cols || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1))
        return mh_err_set(err, MH_EFORMAT, "model: tensor '%s' has shape [%lld,%lld,%lld], expected "
                          "[%lld,%lld,%lld] (n_embd / expert feed-forward length, n_expert)", name,
                          (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                          (long long)cols, (long long)ne1, (long long)ne2);
    if (t->ne[0] != cols || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1)
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

static int read_hparams(mh_model *m, mh_err *err)
{
    mh_hparams *hp = &m->hp;
    mh_gguf_str s;
    if (!mh_gguf_get_str(m->gguf, "general.architecture", &s))
        return mh_err_set(err, MH_EFORMAT, "model: missing general.architecture");
    snprintf(hp->arch_name, sizeof hp->arch_name, "%.*s", (int)s.len, s.ptr);
    const char *a = hp->arch_name;
    if (!mh_arch_from_name(a, &hp->arch))
        return mh_err_set(err, MH_EFORMAT, "model: unsupported architecture '%s' (supported: %s)",
                          a, mh_arch_supported);
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
    if ((st = mh_arch_read_hparams(m->gguf, hp, err))) return st;
    const mh_gguf_tensor *emb = mh_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb) return mh_err_set(err, MH_EFORMAT, "model: tensor 'token_embd.weight' is missing");
    hp->n_vocab = emb->ne[1];
    return MH_OK;
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
        m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
        if (!m->layers) st = mh_err_set(err, MH_ENOMEM, "model: out of memory");
    }
    if (!st && m->hp.encoder) {             /* bert, nomic-bert: their own tensors */
        if ((st = mh_bert_bind(m, get_weight, err))) {
            mh_model_free(m);
            return st;
        }
        *out = m;
        return MH_OK;
    }
    const int64_t V = m->hp.n_vocab, E = m->hp.n_embd;
#define NAME(g) mh_global_name(g, MH_LAYOUT_GGUF)
    if (!st) st = mh_model_get_weight(m, get_weight, NAME(MH_G_EMBD), V, E, true, &m->g.tok_embd, err);
    if (!st) st = mh_model_get_vec(m, get_weight, NAME(MH_G_OUTPUT_NORM), E, true, &m->g.output_norm, err);
    if (!st) st = mh_model_get_weight(m, get_weight, NAME(MH_G_OUTPUT), V, E, false, &m->g.output, err);
    if (!st && !m->g.output.data) {
        m->g.output = m->g.tok_embd;
        m->hp.tied_embeddings = true;
    }
    if (!st) st = mh_model_get_vec(m, get_weight, NAME(MH_G_ROPE_FREQS), m->hp.n_rot / 2, false,
                                   &m->g.rope_freqs, err);
    if (!st) st = mh_model_get_vec(m, get_weight, NAME(MH_G_ROPE_LONG), m->hp.n_rot / 2, false,
                                   &m->g.rope_long, err);
    if (!st) st = mh_model_get_vec(m, get_weight, NAME(MH_G_ROPE_SHORT), m->hp.n_rot / 2, false,
                                   &m->g.rope_short, err);
    if (!st && (!m->g.rope_long) != (!m->g.rope_short))
        st = mh_err_set(err, MH_EFORMAT, "model: longrope needs both rope_factors_long and "
                        "rope_factors_short");
    if (!st && m->g.rope_long) m->hp.rope_scaling = MH_ROPE_SCALING_LONGROPE;
#undef NAME
    if (!st) st = mh_model_bind_layers(m, MH_LAYOUT_GGUF, get_weight, err);
    if (!st) st = mh_model_repack(m, err);
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
    mh_runstate_free(m->rs);
    mh_gguf_close(m->gguf);
    mh_model_hf_release(m);
    mh_bert_free(m->bert);
    free(m);
}

int mh_model_check(const mh_model *m, mh_err *err)
{
    int st = m->gguf ? mh_gguf_check(m->gguf, err) : MH_OK;
    if (!st && m->st) st = mh_safetensors_check(m->st, err);
    return st;
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
