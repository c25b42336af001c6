/* llama_hf.c: builds an mh_model from a Hugging Face checkpoint directory
 * (config.json + model.safetensors, or shards with model.safetensors.index.json)
 * for the classes hf_config.c reads (Llama, Mistral, Qwen2/3, Gemma2/3, Phi3,
 * Mixtral, Qwen2-MoE: their per-expert tensors bind one by one in moe.c;
 * BertModel and NomicBertModel through bert.c, names from convert_bert.c).
 * Layer: engine/model (cJSON, mh/safetensors.h). Layers bind by GGUF name
 * through hf_config's name map, so both loaders share llama_names.c's binder.
 * F32/F16/BF16 matrices stay zero-copy in the mapping; norms and biases
 * become owned f32 when stored otherwise (Gemma's norms as 1 + w). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "mh/quant.h"
#include "mh/safetensors.h"
#include "mh/tensor.h"
#include "hf_config.h"
#include "model_internal.h"

/* ===== paths ===== */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static bool is_config_path(const char *path)
{
    return !strcmp(path, "config.json") || ends_with(path, "/config.json");
}

bool mh_model_is_hf_path(const char *path)
{
    struct stat sb;
    if (!path) return false;
    if (is_config_path(path)) return true;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* dir: the checkpoint directory of path (path itself, or config.json's). */
static int checkpoint_dir(const char *path, char *dir, size_t n, mh_err *err)
{
    size_t len = strlen(path);
    if (is_config_path(path)) {
        const char *slash = strrchr(path, '/');
        len = slash ? (size_t)(slash - path) : 0;
        if (!slash) path = ".", len = 1;
        if (len == 0) path = "/", len = 1;     /* "/config.json" */
    }
    while (len > 1 && path[len - 1] == '/') len--;
    if (len + 32 >= n) return mh_err_set(err, MH_EINVAL, "model: path too long: %s", path);
    memcpy(dir, path, len);
    dir[len] = 0;
    return MH_OK;
}

/* ===== tensors ===== */

/* The safetensors getter (mh_tensor_getter) under a GGUF name: maps it to
 * the checkpoint's name, checks the tensor is F32/F16/BF16 with the given
 * shape (ndim 1: (cols)), and points w at it. A missing optional tensor
 * leaves w zeroed. */
static int get_weight(mh_model *m, const char *gguf, int ndim, int64_t rows, int64_t cols,
                      bool required, mh_weight *w, mh_err *err)
{
    const mh_hf_config *hc = m->hf;
    char name[192];
    memset(w, 0, sizeof *w);
    if (!mh_hf_tensor_name(hc, gguf, name, sizeof name)) snprintf(name, sizeof name, "%s", gguf);
    int idx = mh_safetensors_find(m->st, name);
    if (idx < 0) {
        if (!required) return MH_OK;
        return mh_err_set(err, MH_EFORMAT, "model: tensor '%s' is missing", name);
    }
    const mh_st_info *in = mh_safetensors_info(m->st, idx);
    if (in->dtype != MH_DTYPE_F32 && in->dtype != MH_DTYPE_F16 && in->dtype != MH_DTYPE_BF16)
        return mh_err_set(err, MH_EFORMAT, "model: tensor '%s' has dtype %s, expected F32, F16 or BF16",
                          name, in->file_dtype);
    bool ok = in->ndim == ndim && in->shape[ndim - 1] == cols && (ndim == 1 || in->shape[0] == rows);
    if (ndim == 1 && mh_hf_is_row_matrix(gguf))   /* Qwen2-MoE's (1, n_embd) shared_expert_gate */
        ok = ok || (in->ndim == 2 && in->shape[0] == 1 && in->shape[1] == cols);
    if (!ok) {
        char got[96];
        mh_shape_str(in->ndim, in->shape, got, sizeof got);
        if (ndim == 1)
            return mh_err_set(err, MH_EFORMAT, "model: tensor '%s' has shape %s, expected (%lld)",
                              name, got, (long long)cols);
        return mh_err_set(err, MH_EFORMAT, "model: tensor '%s' has shape %s, expected (%lld,%lld)",
                          name, got, (long long)rows, (long long)cols);
    }
    mh_tensor *t = mh_safetensors_tensor(m->st, idx, err);
    if (!t) return err ? err->code : MH_EFORMAT;
    m->held[m->n_held++] = t;    /* keeps a copied (misaligned) tensor alive */
    w->dtype = (mh_dtype)in->dtype;
    w->data = mh_tensor_data(t);
    w->rows = ndim == 1 ? 1 : rows;
    w->cols = cols;
    m->n_params += w->rows * cols;
    m->weight_bytes += (size_t)(in->end - in->begin);
    if (!mh_hf_norm_plus_one(hc, gguf)) return MH_OK;
    /* Gemma scales by (1 + w): hold the f32 sum, as GGUF files store it */
    float *f = malloc(sizeof(float) * (size_t)cols);
    if (!f) return mh_err_set(err, MH_ENOMEM, "model: out of memory");
    if (mh_dequantize_row(w->dtype, w->data, f, cols)) {
        free(f);
        return mh_err_set(err, MH_EFORMAT, "model: cannot convert '%s' to f32", name);
    }
    for (int64_t i = 0; i < cols; i++) f[i] += 1.0f;
    if (mh_model_own(m, f, err)) return MH_ENOMEM;
    w->dtype = MH_DTYPE_F32;
    w->data = f;
    return MH_OK;
}

/* Output projection: lm_head unless tie_word_embeddings says otherwise;
 * with the key absent a missing lm_head means tied (as SmolLM ships). */
static int load_output(mh_model *m, const mh_hf_config *hc, mh_err *err)
{
    bool tied = hc->tied;
    if (!tied) {
        int st = mh_model_get_weight(m, get_weight, "output.weight", m->hp.n_vocab, m->hp.n_embd,
                                     hc->tie_explicit, &m->g.output, err);
        if (st) return st;
        tied = !m->g.output.data;
    }
    if (tied) m->g.output = m->g.tok_embd;
    m->hp.tied_embeddings = tied;
    return MH_OK;
}

/* Rope factors config.json describes (llama3, Phi-3 longrope), owned. */
static int take_rope(mh_model *m, mh_hf_config *hc, mh_err *err)
{
    float **src[3] = { &hc->rope_freqs, &hc->rope_long, &hc->rope_short };
    const float **dst[3] = { &m->g.rope_freqs, &m->g.rope_long, &m->g.rope_short };
    for (int i = 0; i < 3; i++) {
        if (!*src[i]) continue;
        if (mh_model_own(m, *src[i], err)) {
            *src[i] = NULL;
            return MH_ENOMEM;
        }
        *dst[i] = *src[i];
        *src[i] = NULL;
    }
    return MH_OK;
}

/* ===== entry ===== */

static int load_all(mh_model *m, const char *dir, mh_err *err)
{
    mh_hf_config hc;
    int st = mh_hf_config_read(dir, &hc, err);
    if (st && err && strncmp(err->msg, "model: ", 7)) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        mh_err_set(err, st, "model: %s", msg);
    }
    if (!st) {
        m->hp = hc.hp;
        m->hf = &hc;
        size_t L = (size_t)m->hp.n_layer;
        m->layers = calloc(L, sizeof *m->layers);
        size_t X = (size_t)m->hp.n_expert;     /* experts: one tensor each (moe.c) */
        m->held = calloc(L * (16 + 3 * X + 5) + 8, sizeof *m->held);   /* bert: 16 a layer + 5 */
        if (!m->layers || !m->held) st = mh_err_set(err, MH_ENOMEM, "model: out of memory");
    }
    if (!st) st = take_rope(m, &hc, err);
    if (!st && !(m->st = mh_safetensors_open(dir, err))) st = err ? err->code : MH_EIO;
    if (!st && m->hp.encoder) {       /* bert, nomic-bert: bert.c binds by GGUF name */
        mh_hf_bert_resolve(&hc, m->st);
        st = mh_bert_bind(m, get_weight, err);
        m->hf = NULL;
        mh_hf_config_free(&hc);
        return st;
    }
    if (!st) st = mh_model_get_weight(m, get_weight, "token_embd.weight", m->hp.n_vocab,
                                      m->hp.n_embd, true, &m->g.tok_embd, err);
    if (!st) st = mh_model_get_vec(m, get_weight, "output_norm.weight", m->hp.n_embd, true,
                                   &m->g.output_norm, err);
    if (!st) st = load_output(m, &hc, err);
    if (!st) st = mh_model_bind_layers(m, MH_LAYOUT_GGUF, get_weight, err);
    m->hf = NULL;
    mh_hf_config_free(&hc);
    return st;
}
int mh_model_load_hf(const char *path, mh_model **out, mh_err *err)
{
    char dir[4096];
    *out = NULL;
    int st = checkpoint_dir(path, dir, sizeof dir, err);
    if (st) return st;
    mh_model *m = calloc(1, sizeof *m);
    if (!m) return mh_err_set(err, MH_ENOMEM, "model: out of memory");
    if ((st = load_all(m, dir, err))) {
        mh_model_free(m);
        return st;
    }
    *out = m;
    return MH_OK;
}

void mh_model_hf_release(mh_model *m)
{
    for (int i = 0; i < m->n_held; i++) mh_tensor_release(m->held[i]);
    free(m->held);
    mh_safetensors_close(m->st);
    m->held = NULL;
    m->n_held = 0;
    m->st = NULL;
}
