/* llama_hf.c: builds an mh_model from a Hugging Face checkpoint directory
 * (config.json + model.safetensors, or shards with model.safetensors.index.json)
 * for LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM.
 * Layer: engine/model (cJSON, mh/safetensors.h). F32/F16/BF16 matrices stay
 * zero-copy in the mapping; norms and biases become owned f32 when stored otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cJSON.h>
#include "mh/quant.h"
#include "mh/safetensors.h"
#include "mh/tensor.h"
#include "model_internal.h"

static const char *supported_hf =
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM";

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

/* ===== config.json ===== */

static cJSON *read_config(const char *dir, mh_err *err)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "rb");
    if (!f) {
        mh_err_set(err, MH_EIO, "model: cannot open %s", p);
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n <= (16L << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n)
        buf[n] = 0;
    else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) {
        mh_err_set(err, n > (16L << 20) ? MH_EFORMAT : MH_EIO, "model: cannot read %s%s", p,
                   n > (16L << 20) ? " (larger than 16 MiB)" : "");
        return NULL;
    }
    cJSON *j = cJSON_Parse(buf);
    if (!j || !cJSON_IsObject(j)) {
        const char *at = cJSON_GetErrorPtr();
        long off = (j == NULL && at && at >= buf && at <= buf + n) ? (long)(at - buf) : 0;
        mh_err_set(err, MH_EFORMAT, "model: %s is not a JSON object (error near byte %ld)", p, off);
        cJSON_Delete(j);
        j = NULL;
    }
    free(buf);
    return j;
}

/* A positive integer key; absent (or null) keeps *out unless required. */
static int cfg_int(const cJSON *c, const char *key, bool required, int64_t *out, mh_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    if (!v || cJSON_IsNull(v)) {
        if (!required) return MH_OK;
        return mh_err_set(err, MH_EFORMAT, "model: config.json lacks '%s'", key);
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (d < 1 || d > 1e9 || d != floor(d))
        return mh_err_set(err, MH_EFORMAT, "model: config.json '%s' must be a positive integer", key);
    *out = (int64_t)d;
    return MH_OK;
}

/* A positive number key, def when absent or null. */
static int cfg_num(const cJSON *c, const char *key, double def, double *out, mh_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    *out = def;
    if (!v || cJSON_IsNull(v)) return MH_OK;
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble))
        return mh_err_set(err, MH_EFORMAT, "model: config.json '%s' must be a positive number", key);
    *out = v->valuedouble;
    return MH_OK;
}

static bool cfg_true(const cJSON *c, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, key));
}

/* architectures[0] (or model_type when there is no list) -> arch. */
static int cfg_arch(const cJSON *c, mh_hparams *hp, mh_err *err)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(c, "architectures");
    const char *name = cJSON_IsArray(a) ? cJSON_GetStringValue(cJSON_GetArrayItem(a, 0)) : NULL;
    const char *mt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "model_type"));
    if (!name && !mt)
        return mh_err_set(err, MH_EFORMAT, "model: config.json names no architecture "
                          "('architectures' or 'model_type'; supported: %s)", supported_hf);
    static const struct { const char *cls, *type, *arch; mh_arch id; } known[] = {
        { "LlamaForCausalLM", "llama", "llama", MH_ARCH_LLAMA },
        { "MistralForCausalLM", "mistral", "mistral", MH_ARCH_LLAMA },
        { "Qwen2ForCausalLM", "qwen2", "qwen2", MH_ARCH_QWEN2 },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (name ? strcmp(name, known[i].cls) : strcmp(mt, known[i].type)) continue;
        hp->arch = known[i].id;
        snprintf(hp->arch_name, sizeof hp->arch_name, "%s", known[i].arch);
        return MH_OK;
    }
    return mh_err_set(err, MH_EFORMAT, "model: unsupported architecture '%s' in config.json "
                      "(supported: %s)", name ? name : mt, supported_hf);
}

/* Features this engine lacks must fail loudly rather than compute wrongly. */
static int cfg_unsupported(const cJSON *c, const mh_hparams *hp, mh_err *err)
{
    const char *act = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "hidden_act"));
    if (act && strcmp(act, "silu"))
        return mh_err_set(err, MH_EFORMAT, "model: config.json hidden_act '%s' is not supported "
                          "(only silu)", act);
    if (hp->arch == MH_ARCH_LLAMA && (cfg_true(c, "attention_bias") || cfg_true(c, "mlp_bias")))
        return mh_err_set(err, MH_EFORMAT, "model: config.json attention_bias/mlp_bias are not "
                          "supported for %s", hp->arch_name);
    return MH_OK;
}

static int read_hparams(const cJSON *c, mh_hparams *hp, mh_err *err)
{
    int st;
    if ((st = cfg_arch(c, hp, err)) || (st = cfg_unsupported(c, hp, err))) return st;
    if ((st = cfg_int(c, "hidden_size", true, &hp->n_embd, err)) ||
        (st = cfg_int(c, "intermediate_size", true, &hp->n_ff, err)) ||
        (st = cfg_int(c, "num_hidden_layers", true, &hp->n_layer, err)) ||
        (st = cfg_int(c, "num_attention_heads", true, &hp->n_head, err)) ||
        (st = cfg_int(c, "vocab_size", true, &hp->n_vocab, err)))
        return st;
    hp->n_head_kv = hp->n_head;
    hp->n_ctx_train = 2048;
    if ((st = cfg_int(c, "num_key_value_heads", false, &hp->n_head_kv, err)) ||
        (st = cfg_int(c, "max_position_embeddings", false, &hp->n_ctx_train, err)))
        return st;
    if (hp->n_layer > 1024 || hp->n_head % hp->n_head_kv)
        return mh_err_set(err, MH_EFORMAT, "model: config.json: inconsistent hyperparameters "
                          "(layers %lld, heads %lld/%lld)", (long long)hp->n_layer,
                          (long long)hp->n_head, (long long)hp->n_head_kv);
    hp->head_dim = 0;
    if ((st = cfg_int(c, "head_dim", false, &hp->head_dim, err))) return st;
    bool derived = hp->head_dim == 0;          /* Qwen2/older llama configs omit it */
    if (derived) hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->head_dim % 2 || hp->head_dim == 0 || (derived && hp->n_embd % hp->n_head))
        return mh_err_set(err, MH_EFORMAT, "model: config.json: bad head_dim %lld (hidden_size %lld,"
                          " %lld heads)", (long long)hp->head_dim, (long long)hp->n_embd,
                          (long long)hp->n_head);
    hp->n_rot = hp->head_dim;
    double theta, eps;
    if ((st = cfg_num(c, "rope_theta", 10000.0, &theta, err)) ||
        (st = cfg_num(c, "rms_norm_eps", 1e-6, &eps, err)))     /* HF's own default */
        return st;
    hp->rope_base = (float)theta;
    hp->rms_eps = (float)eps;
    /* HF keeps q_proj/k_proj in rotate-half order, i.e. pairs (i, i + n_rot/2):
     * NEOX rotation reads them as they are (GGUF permutes llama rows instead). */
    hp->rope_neox = true;
    return MH_OK;
}

/* ===== rope_scaling ===== */

static int scaling_num(const cJSON *rs, const char *key, double *out, mh_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rs, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0))
        return mh_err_set(err, MH_EFORMAT, "model: config.json rope_scaling needs a positive '%s'", key);
    *out = v->valuedouble;
    return MH_OK;
}

/* Llama 3's frequency factors, with GGUF rope_freqs.weight's meaning: the
 * rotary frequency i is divided by rf[i]. High frequencies (wavelength
 * under orig/high_freq_factor) keep theirs, low ones (over orig/low) are
 * divided by factor, and the band between blends the two. */
static int llama3_freqs(mh_model *m, const cJSON *rs, mh_err *err)
{
    double factor = 0, lo = 0, hi = 0, orig = 0;
    int st;
    if ((st = scaling_num(rs, "factor", &factor, err)) ||
        (st = scaling_num(rs, "low_freq_factor", &lo, err)) ||
        (st = scaling_num(rs, "high_freq_factor", &hi, err)) ||
        (st = scaling_num(rs, "original_max_position_embeddings", &orig, err)))
        return st;
    if (hi <= lo)
        return mh_err_set(err, MH_EFORMAT, "model: config.json rope_scaling: high_freq_factor %g "
                          "must exceed low_freq_factor %g", hi, lo);
    int64_t half = m->hp.n_rot / 2;
    float *rf = malloc(sizeof(float) * (size_t)half);
    if (!rf) return mh_err_set(err, MH_ENOMEM, "model: out of memory");
    for (int64_t i = 0; i < half; i++) {
        double freq = pow(m->hp.rope_base, -2.0 * (double)i / (double)m->hp.n_rot);
        double wavelen = 2.0 * M_PI / freq;
        if (wavelen < orig / hi) rf[i] = 1.0f;
        else if (wavelen > orig / lo) rf[i] = (float)factor;
        else {
            double smooth = (orig / wavelen - lo) / (hi - lo);
            rf[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
        }
    }
    if (mh_model_own(m, rf, err)) return MH_ENOMEM;
    m->g.rope_freqs = rf;
    return MH_OK;
}

static int read_rope_scaling(mh_model *m, const cJSON *c, mh_err *err)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(c, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return MH_OK;
    if (!cJSON_IsObject(rs))
        return mh_err_set(err, MH_EFORMAT, "model: config.json rope_scaling must be an object or null");
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rs, "rope_type"));
    if (!type) type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rs, "type"));
    if (!type)
        return mh_err_set(err, MH_EFORMAT, "model: config.json rope_scaling has no rope_type");
    if (!strcmp(type, "default")) return MH_OK;
    if (!strcmp(type, "llama3")) return llama3_freqs(m, rs, err);
    return mh_err_set(err, MH_EFORMAT, "model: config.json rope_scaling type '%s' is not supported "
                      "(supported: llama3)", type);
}

/* ===== tensors ===== */

/* The safetensors getter (mh_tensor_getter): checks tensor `name` is
 * F32/F16/BF16 with the given shape (ndim 1: (cols)), and points w at it.
 * A missing optional tensor leaves w zeroed. */
static int get_weight(mh_model *m, const char *name, int ndim, int64_t rows, int64_t cols,
                      bool required, mh_weight *w, mh_err *err)
{
    memset(w, 0, sizeof *w);
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
    return MH_OK;
}

/* Output projection: lm_head unless tie_word_embeddings says otherwise;
 * with the key absent a missing lm_head means tied (as SmolLM ships). */
static int load_output(mh_model *m, const cJSON *c, mh_err *err)
{
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    bool tied = cJSON_IsTrue(tie);
    if (!tied) {
        bool explicit = cJSON_IsFalse(tie);
        int st = mh_model_get_weight(m, get_weight, mh_global_name(MH_G_OUTPUT, MH_LAYOUT_HF),
                                     m->hp.n_vocab, m->hp.n_embd, explicit, &m->g.output, err);
        if (st) return st;
        tied = !m->g.output.data;
    }
    if (tied) m->g.output = m->g.tok_embd;
    m->hp.tied_embeddings = tied;
    return MH_OK;
}

/* ===== entry ===== */

static int load_all(mh_model *m, const char *dir, mh_err *err)
{
    cJSON *c = read_config(dir, err);
    if (!c) return err ? err->code : MH_EFORMAT;
    int st = read_hparams(c, &m->hp, err);
    if (!st) {
        size_t L = (size_t)m->hp.n_layer;
        m->layers = calloc(L, sizeof *m->layers);
        m->held = calloc(L * 12 + 4, sizeof *m->held);
        if (!m->layers || !m->held) st = mh_err_set(err, MH_ENOMEM, "model: out of memory");
    }
    if (!st) st = read_rope_scaling(m, c, err);
    if (!st && !(m->st = mh_safetensors_open(dir, err))) st = err ? err->code : MH_EIO;
    if (!st) st = mh_model_get_weight(m, get_weight, mh_global_name(MH_G_EMBD, MH_LAYOUT_HF),
                                      m->hp.n_vocab, m->hp.n_embd, true, &m->g.tok_embd, err);
    if (!st) st = mh_model_get_vec(m, get_weight, mh_global_name(MH_G_OUTPUT_NORM, MH_LAYOUT_HF),
                                   m->hp.n_embd, true, &m->g.output_norm, err);
    if (!st) st = load_output(m, c, err);
    if (!st) st = mh_model_bind_layers(m, MH_LAYOUT_HF, get_weight, err);
    cJSON_Delete(c);
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
