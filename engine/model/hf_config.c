/* hf_config.c: Hugging Face config.json -> mh_hparams (+ what a GGUF writer
 * needs besides), and GGUF <-> HF tensor names, for the decoder classes
 * this engine runs (dense, and Mixtral / Qwen2-MoE experts). One reading
 * for the folder loader and convert.
 * Layer: engine/model (pure C11 + cJSON). Semantics follow transformers'
 * modeling files; GGUF keys follow llama.cpp's convert_hf_to_gguf.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "hf_config.h"

const char *mh_hf_supported = "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                              "Qwen3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, "
                              "Phi3ForCausalLM, MixtralForCausalLM, Qwen2MoeForCausalLM"
                              ", BertModel, BertForMaskedLM, NomicBertModel";

static const struct {
    const char *cls, *type, *gguf;
    mh_arch id;
} hf_archs[] = {
    { "LlamaForCausalLM", "llama", "llama", MH_ARCH_LLAMA },
    { "MistralForCausalLM", "mistral", "llama", MH_ARCH_LLAMA },   /* llama.cpp: LlamaModel */
    { "Qwen2ForCausalLM", "qwen2", "qwen2", MH_ARCH_QWEN2 },
    { "Qwen3ForCausalLM", "qwen3", "qwen3", MH_ARCH_QWEN3 },
    { "Gemma2ForCausalLM", "gemma2", "gemma2", MH_ARCH_GEMMA2 },
    { "Gemma3ForCausalLM", "gemma3_text", "gemma3", MH_ARCH_GEMMA3 },
    { "Phi3ForCausalLM", "phi3", "phi3", MH_ARCH_PHI3 },
    { "MixtralForCausalLM", "mixtral", "llama", MH_ARCH_LLAMA },   /* llama with experts */
    { "Qwen2MoeForCausalLM", "qwen2_moe", "qwen2moe", MH_ARCH_QWEN2 },
    { "BertModel", "bert", "bert", MH_ARCH_BERT },            /* encoders: read_encoder */
    { "BertForMaskedLM", "bert", "bert", MH_ARCH_BERT },      /* its MLM head is dropped */
    { "NomicBertModel", "nomic_bert", "nomic-bert", MH_ARCH_NOMIC_BERT },
};

/* ===== reading ===== */

cJSON *mh_hf_read_json(const char *path, size_t max, mh_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mh_err_set(err, MH_EIO, "cannot open %s", path);
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && (size_t)n <= max &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n)
        buf[n] = 0;
    else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) {
        mh_err_set(err, n >= 0 && (size_t)n > max ? MH_EFORMAT : MH_EIO, "cannot read %s%s", path,
                   n >= 0 && (size_t)n > max ? " (too large)" : "");
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(buf, (size_t)n);
    if (!j || !cJSON_IsObject(j)) {
        const char *at = cJSON_GetErrorPtr();
        long off = (!j && at && at >= buf && at <= buf + n) ? (long)(at - buf) : 0;
        mh_err_set(err, MH_EFORMAT, "%s is not a JSON object (error near byte %ld)", path, off);
        cJSON_Delete(j);
        j = NULL;
    }
    free(buf);
    return j;
}

static const cJSON *key(const cJSON *c, const char *k) { return cJSON_GetObjectItemCaseSensitive(c, k); }

/* A positive integer key; absent (or null) keeps *out unless required. */
static int cfg_int(const cJSON *c, const char *k, bool required, int64_t *out, mh_err *err)
{
    const cJSON *v = key(c, k);
    if (!v || cJSON_IsNull(v)) {
        if (!required) return MH_OK;
        return mh_err_set(err, MH_EFORMAT, "config.json lacks '%s'", k);
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (d < 1 || d > 1e9 || d != floor(d))
        return mh_err_set(err, MH_EFORMAT, "config.json '%s' must be a positive integer", k);
    *out = (int64_t)d;
    return MH_OK;
}

/* A positive number key; absent or null leaves *out (returns false). */
static int cfg_num(const cJSON *c, const char *k, double *out, bool *given, mh_err *err)
{
    const cJSON *v = key(c, k);
    if (given) *given = false;
    if (!v || cJSON_IsNull(v)) return MH_OK;
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble))
        return mh_err_set(err, MH_EFORMAT, "config.json '%s' must be a positive number", k);
    *out = v->valuedouble;
    if (given) *given = true;
    return MH_OK;
}

static int64_t cfg_id(const cJSON *c, const char *k)
{
    const cJSON *v = key(c, k);
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);   /* eos lists: the first */
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 2147483648.0
           ? (int64_t)v->valuedouble : -1;
}

/* architectures[0] (or model_type when there is no list) -> arch. */
static int cfg_arch(const cJSON *c, mh_hf_config *o, mh_err *err)
{
    const cJSON *a = key(c, "architectures");
    const char *name = cJSON_IsArray(a) ? cJSON_GetStringValue(cJSON_GetArrayItem(a, 0)) : NULL;
    const char *mt = cJSON_GetStringValue(key(c, "model_type"));
    if (!name && !mt)
        return mh_err_set(err, MH_EFORMAT, "config.json names no architecture ('architectures' "
                          "or 'model_type'; supported: %s)", mh_hf_supported);
    for (size_t i = 0; i < sizeof hf_archs / sizeof hf_archs[0]; i++) {
        if (name ? strcmp(name, hf_archs[i].cls) : strcmp(mt, hf_archs[i].type)) continue;
        o->hp.arch = hf_archs[i].id;
        snprintf(o->hp.arch_name, sizeof o->hp.arch_name, "%s", hf_archs[i].gguf);
        snprintf(o->cls, sizeof o->cls, "%s", name ? name : mt);
        return MH_OK;
    }
    return mh_err_set(err, MH_EFORMAT, "unsupported architecture '%s' in config.json "
                      "(supported: %s)", name ? name : mt, mh_hf_supported);
}

static bool is_gemma(const mh_hparams *hp)
{
    return hp->arch == MH_ARCH_GEMMA2 || hp->arch == MH_ARCH_GEMMA3;
}

/* Features this engine lacks must fail loudly rather than compute wrongly. */
static int cfg_unsupported(const cJSON *c, mh_hf_config *o, mh_err *err)
{
    const mh_hparams *hp = &o->hp;
    const char *act = cJSON_GetStringValue(key(c, is_gemma(hp) ? "hidden_activation" : "hidden_act"));
    if (!act && is_gemma(hp)) act = cJSON_GetStringValue(key(c, "hidden_act"));
    bool gelu = act && (!strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu"));
    if (act && (is_gemma(hp) ? !gelu : strcmp(act, "silu") != 0))
        return mh_err_set(err, MH_EFORMAT, "config.json activation '%s' is not supported for %s "
                          "(expected %s)", act, o->cls, is_gemma(hp) ? "gelu_pytorch_tanh" : "silu");
    o->qkv_bias = hp->arch == MH_ARCH_QWEN2;
    if (hp->arch != MH_ARCH_QWEN2 && (cJSON_IsTrue(key(c, "attention_bias")) ||
                                      cJSON_IsTrue(key(c, "mlp_bias"))))
        return mh_err_set(err, MH_EFORMAT, "config.json attention_bias/mlp_bias are not "
                          "supported for %s", o->cls);
    const cJSON *prf = key(c, "partial_rotary_factor");
    if (cJSON_IsNumber(prf) && prf->valuedouble != 1.0)
        return mh_err_set(err, MH_EFORMAT, "config.json partial_rotary_factor %g is not supported",
                          prf->valuedouble);
    return MH_OK;
}

static int read_shape(const cJSON *c, mh_hf_config *o, mh_err *err)
{
    mh_hparams *hp = &o->hp;
    int st;
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
        return mh_err_set(err, MH_EFORMAT, "config.json: inconsistent hyperparameters "
                          "(layers %lld, heads %lld/%lld)", (long long)hp->n_layer,
                          (long long)hp->n_head, (long long)hp->n_head_kv);
    hp->head_dim = 0;
    if ((st = cfg_int(c, "head_dim", false, &hp->head_dim, err))) return st;
    o->has_head_dim = hp->head_dim != 0;
    if (!o->has_head_dim) hp->head_dim = hp->n_embd / hp->n_head;   /* Qwen2, older llama */
    if (hp->head_dim % 2 || hp->head_dim == 0 || hp->head_dim > 65536 ||   /* rope tables are per dim */
        (!o->has_head_dim && hp->n_embd % hp->n_head))
        return mh_err_set(err, MH_EFORMAT, "config.json: bad head_dim %lld (hidden_size %lld, "
                          "%lld heads)", (long long)hp->head_dim, (long long)hp->n_embd,
                          (long long)hp->n_head);
    hp->n_rot = hp->head_dim;
    double theta = hp->arch == MH_ARCH_GEMMA3 ? 1e6 : 10000.0, eps = 1e-6;   /* HF's defaults */
    if ((st = cfg_num(c, "rope_theta", &theta, &o->has_rope_theta, err)) ||
        (st = cfg_num(c, "rms_norm_eps", &eps, NULL, err)))
        return st;
    hp->rope_base = (float)theta;
    hp->rms_eps = (float)eps;
    /* HF keeps q_proj/k_proj in rotate-half order, pairs (i, i + n_rot/2):
     * NEOX rotation reads them as they are (GGUF permutes llama rows). */
    hp->rope_neox = true;
    return MH_OK;
}

/* ===== rope_scaling ===== */

static int scaling_num(const cJSON *rs, const char *k, double def, double *out, mh_err *err)
{
    const cJSON *v = key(rs, k);
    *out = def;
    if (!v && def > 0) return MH_OK;
    /* bounded: original_max_position_embeddings becomes an integer */
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !(v->valuedouble <= 1e9))
        return mh_err_set(err, MH_EFORMAT, "config.json rope_scaling needs a positive '%s' "
                          "(at most 1e9)", k);
    *out = v->valuedouble;
    return MH_OK;
}

/* Llama 3's frequency factors, with GGUF rope_freqs.weight's meaning: the
 * rotary frequency i is divided by rf[i]. High frequencies (wavelength
 * under orig/high_freq_factor) keep theirs, low ones (over orig/low) are
 * divided by factor, and the band between blends the two. */
static int llama3_freqs(mh_hf_config *o, const cJSON *rs, mh_err *err)
{
    double factor, lo, hi, orig;
    int st;
    if ((st = scaling_num(rs, "factor", 0, &factor, err)) ||
        (st = scaling_num(rs, "low_freq_factor", 0, &lo, err)) ||
        (st = scaling_num(rs, "high_freq_factor", 0, &hi, err)) ||
        (st = scaling_num(rs, "original_max_position_embeddings", 0, &orig, err)))
        return st;
    if (hi <= lo)
        return mh_err_set(err, MH_EFORMAT, "config.json rope_scaling: high_freq_factor %g must "
                          "exceed low_freq_factor %g", hi, lo);
    int64_t half = o->hp.n_rot / 2;
    float *rf = malloc(sizeof(float) * (size_t)half);
    if (!rf) return mh_err_set(err, MH_ENOMEM, "out of memory");
    for (int64_t i = 0; i < half; i++) {
        double freq = pow(o->hp.rope_base, -2.0 * (double)i / (double)o->hp.n_rot);
        double wavelen = 2.0 * M_PI / freq;
        if (wavelen < orig / hi) rf[i] = 1.0f;
        else if (wavelen > orig / lo) rf[i] = (float)factor;
        else {
            double smooth = (orig / wavelen - lo) / (hi - lo);
            rf[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
        }
    }
    o->rope_freqs = rf;
    o->rope_factor = factor;
    o->rope_orig_ctx = (int64_t)orig;
    return MH_OK;
}

static int factor_list(const cJSON *rs, const char *k, int64_t n, float **out, mh_err *err)
{
    const cJSON *v = key(rs, k), *e;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return mh_err_set(err, MH_EFORMAT, "config.json rope_scaling '%s' must list %lld numbers "
                          "(head_dim / 2)", k, (long long)n);
    float *f = malloc(sizeof(float) * (size_t)n);
    if (!f) return mh_err_set(err, MH_ENOMEM, "out of memory");
    int i = 0;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble > 0)) {
            free(f);
            return mh_err_set(err, MH_EFORMAT, "config.json rope_scaling '%s'[%d] must be a "
                              "positive number", k, i);
        }
        f[i++] = (float)e->valuedouble;
    }
    *out = f;
    return MH_OK;
}

/* Phi-3 longrope ("su" in early configs): per-frequency factor lists for
 * short and long contexts and llama.cpp's attention factor. */
static int longrope(const cJSON *c, const cJSON *rs, mh_hf_config *o, mh_err *err)
{
    mh_hparams *hp = &o->hp;
    int64_t half = hp->n_rot / 2;
    int st;
    o->rope_orig_ctx = 0;
    if ((st = cfg_int(c, "original_max_position_embeddings", true, &o->rope_orig_ctx, err)) ||
        (st = factor_list(rs, "long_factor", half, &o->rope_long, err)) ||
        (st = factor_list(rs, "short_factor", half, &o->rope_short, err)))
        return st;
    double s = (double)hp->n_ctx_train / (double)o->rope_orig_ctx;
    hp->rope_scaling = MH_ROPE_SCALING_LONGROPE;
    hp->rope_attn_factor = s > 1 ? (float)sqrt(1 + log(s) / log((double)o->rope_orig_ctx)) : 1.0f;
    hp->rope_orig_ctx = o->rope_orig_ctx;
    return MH_OK;
}

static int read_rope_scaling(const cJSON *c, mh_hf_config *o, mh_err *err)
{
    mh_hparams *hp = &o->hp;
    const cJSON *rs = key(c, "rope_scaling");
    hp->rope_freq_scale = 1.0f;
    hp->rope_attn_factor = 1.0f;
    hp->rope_orig_ctx = hp->n_ctx_train;
    if (!rs || cJSON_IsNull(rs)) return MH_OK;
    if (!cJSON_IsObject(rs))
        return mh_err_set(err, MH_EFORMAT, "config.json rope_scaling must be an object or null");
    const char *type = cJSON_GetStringValue(key(rs, "rope_type"));
    if (!type) type = cJSON_GetStringValue(key(rs, "type"));
    if (!type) return mh_err_set(err, MH_EFORMAT, "config.json rope_scaling has no rope_type");
    if (!strcmp(type, "default")) return MH_OK;
    snprintf(o->rope_type, sizeof o->rope_type, "%s", !strcmp(type, "su") ? "longrope" : type);
    if (!strcmp(type, "llama3")) return llama3_freqs(o, rs, err);
    if ((!strcmp(type, "longrope") || !strcmp(type, "su")) && hp->arch == MH_ARCH_PHI3)
        return longrope(c, rs, o, err);
    if (strcmp(type, "linear") && strcmp(type, "yarn"))
        return mh_err_set(err, MH_EFORMAT, "config.json rope_scaling type '%s' is not supported "
                          "for %s (supported: linear, yarn, llama3; longrope for Phi-3)", type, o->cls);
    int st = scaling_num(rs, "factor", 0, &o->rope_factor, err);
    if (st) return st;
    hp->rope_freq_scale = (float)(1.0 / o->rope_factor);
    hp->rope_scaling = strcmp(type, "yarn") ? MH_ROPE_SCALING_LINEAR : MH_ROPE_SCALING_YARN;
    if (hp->rope_scaling == MH_ROPE_SCALING_YARN) {
        double orig = (double)hp->n_ctx_train;
        if ((st = scaling_num(rs, "original_max_position_embeddings", orig, &orig, err))) return st;
        o->rope_orig_ctx = hp->rope_orig_ctx = (int64_t)orig;
    }
    return MH_OK;
}

/* ===== what each class adds ===== */

static int read_arch(const cJSON *c, mh_hf_config *o, mh_err *err)
{
    mh_hparams *hp = &o->hp;
    int st = MH_OK;
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = 1.0f;
    hp->qk_norm = hp->arch == MH_ARCH_QWEN3 || hp->arch == MH_ARCH_GEMMA3;
    bool swa_key = !strcmp(o->cls, "MistralForCausalLM") || is_gemma(hp) || hp->arch == MH_ARCH_PHI3;
    if (swa_key) st = cfg_int(c, "sliding_window", false, &hp->n_swa, err);
    if (st) return st;
    if (is_gemma(hp)) {
        double q = (double)hp->head_dim, cap = 0;
        hp->post_norms = hp->gelu_ffn = true;
        hp->embd_scale = sqrtf((float)hp->n_embd);
        hp->swa_pattern = hp->arch == MH_ARCH_GEMMA2 ? 2 : 6;
        if ((st = cfg_num(c, "query_pre_attn_scalar", &q, NULL, err))) return st;
        hp->attn_scale = (float)(1.0 / sqrt(q));
        if ((st = cfg_num(c, "attn_logit_softcapping", &cap, NULL, err))) return st;
        hp->attn_softcap = (float)cap;
        cap = 0;
        if ((st = cfg_num(c, "final_logit_softcapping", &cap, NULL, err))) return st;
        hp->final_softcap = (float)cap;
    }
    if (hp->arch == MH_ARCH_GEMMA3) {
        double local = 10000.0;
        int64_t pat = 6;
        if ((st = cfg_num(c, "rope_local_base_freq", &local, NULL, err)) ||
            (st = cfg_int(c, "sliding_window_pattern", false, &pat, err)))
            return st;
        if (pat != 6)
            return mh_err_set(err, MH_EFORMAT, "config.json sliding_window_pattern %lld is not "
                              "supported (Gemma 3 uses 6)", (long long)pat);
        hp->rope_base_swa = (float)local;
    }
    return MH_OK;
}

/* ===== mixture of experts (Mixtral, Qwen2-MoE) ===== */

static bool is_mixtral(const mh_hf_config *o)
{
    return !strcmp(o->cls, "MixtralForCausalLM") || !strcmp(o->cls, "mixtral");
}

static bool is_qwen2moe(const mh_hf_config *o) { return !strcmp(o->hp.arch_name, "qwen2moe"); }

/* Qwen2-MoE switches llama.cpp c392e5094 (and this engine) do not follow:
 * refused by name rather than run as something else. */
static int qwen2moe_unsupported(const cJSON *c, mh_err *err)
{
    const cJSON *v = key(c, "decoder_sparse_step"), *only = key(c, "mlp_only_layers");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 1.0))
        return mh_err_set(err, MH_EFORMAT, "config.json decoder_sparse_step must be 1 (every layer "
                          "with experts); dense layers between are not supported");
    if (only && !cJSON_IsNull(only) && !(cJSON_IsArray(only) && cJSON_GetArraySize(only) == 0))
        return mh_err_set(err, MH_EFORMAT, "config.json mlp_only_layers must be empty (dense layers "
                          "among expert layers are not supported)");
    if (cJSON_IsTrue(key(c, "norm_topk_prob")))
        return mh_err_set(err, MH_EFORMAT, "config.json norm_topk_prob true is not supported for "
                          "Qwen2MoeForCausalLM (GGUF has no key for it; llama.cpp never renormalises "
                          "the top-k weights of qwen2moe)");
    if (cJSON_IsTrue(key(c, "use_sliding_window")))
        return mh_err_set(err, MH_EFORMAT, "config.json use_sliding_window true is not supported "
                          "for Qwen2MoeForCausalLM");
    return MH_OK;
}

/* Expert counts and widths, with transformers' defaults (MixtralConfig,
 * Qwen2MoeConfig) where a key is absent. Mixtral: experts of
 * intermediate_size rows, top-k weights renormalised, Mistral's window;
 * Qwen2-MoE: moe_intermediate_size experts plus a sigmoid-gated shared one. */
static int read_moe(const cJSON *c, mh_hf_config *o, mh_err *err)
{
    mh_hparams *hp = &o->hp;
    bool mixtral = is_mixtral(o);
    if (!mixtral && !is_qwen2moe(o)) return MH_OK;
    const char *count = mixtral ? "num_local_experts" : "num_experts";
    hp->n_expert = mixtral ? 8 : 60;
    hp->n_expert_used = mixtral ? 2 : 4;
    int st;
    if ((st = cfg_int(c, count, false, &hp->n_expert, err)) ||
        (st = cfg_int(c, "num_experts_per_tok", false, &hp->n_expert_used, err)))
        return st;
    if (hp->n_expert > 256 || hp->n_expert_used > hp->n_expert)
        return mh_err_set(err, MH_EFORMAT, "config.json: num_experts_per_tok %lld of %s %lld (need "
                          "used <= count <= 256)", (long long)hp->n_expert_used, count,
                          (long long)hp->n_expert);
    if (mixtral) {
        hp->n_ff_exp = hp->n_ff;
        hp->expert_norm = true;
        return cfg_int(c, "sliding_window", false, &hp->n_swa, err);
    }
    hp->n_ff_exp = 1408;
    hp->n_ff_shexp = 5632;
    if ((st = cfg_int(c, "moe_intermediate_size", false, &hp->n_ff_exp, err)) ||
        (st = cfg_int(c, "shared_expert_intermediate_size", false, &hp->n_ff_shexp, err)))
        return st;
    return qwen2moe_unsupported(c, err);
}

/* ===== encoders: BertModel, NomicBertModel =====
 * BERT's keys are transformers' BertConfig; nomic-bert's its own GPT-2
 * style ones (n_embd, n_inner...). What llama.cpp's converter asserts, and
 * what bert.c runs, decides what is refused: a key naming anything else
 * fails here rather than giving other embeddings than the folder's model. */

/* The first of two spellings that is given (llama.cpp's find_hparam). */
static int enc_int(const cJSON *c, const char *k1, const char *k2, int64_t def, int64_t *out, mh_err *err)
{
    *out = def;
    const char *k = key(c, k1) && !cJSON_IsNull(key(c, k1)) ? k1 : k2;
    return cfg_int(c, k, def == 0, out, err);
}

/* A nomic-bert key llama.cpp asserts: it must be given with this value. */
static int nomic_flag(const cJSON *c, const char *k, bool want, mh_err *err)
{
    const cJSON *v = key(c, k);
    if (cJSON_IsBool(v) && cJSON_IsTrue(v) == want) return MH_OK;
    return mh_err_set(err, MH_EFORMAT, "config.json '%s' must be %s for NomicBertModel (this engine "
                      "and llama.cpp run no other)", k, want ? "true" : "false");
}

static int read_nomic(const cJSON *c, mh_hf_config *o, mh_err *err)
{
    const char *act = cJSON_GetStringValue(key(c, "activation_function"));
    const cJSON *frac = key(c, "rotary_emb_fraction"), *sb = key(c, "rotary_emb_scale_base");
    const cJSON *moe = key(c, "moe_every_n_layers");
    double base = 0;
    int st;
    if (!act || strcmp(act, "swiglu"))
        return mh_err_set(err, MH_EFORMAT, "config.json 'activation_function' %s%s%s is not supported "
                          "for NomicBertModel (swiglu is)", act ? "'" : "", act ? act : "(absent)", act ? "'" : "");
    if ((st = nomic_flag(c, "causal", false, err)) || (st = nomic_flag(c, "qkv_proj_bias", false, err)) ||
        (st = nomic_flag(c, "mlp_fc1_bias", false, err)) || (st = nomic_flag(c, "mlp_fc2_bias", false, err)) ||
        (st = nomic_flag(c, "prenorm", false, err)) || (st = nomic_flag(c, "rotary_emb_interleaved", false, err)))
        return st;
    if (!cJSON_IsNumber(frac) || frac->valuedouble != 1.0)
        return mh_err_set(err, MH_EFORMAT, "config.json 'rotary_emb_fraction' must be 1.0 (partial "
                          "rotary embeddings are not supported)");
    if (sb && !cJSON_IsNull(sb))
        return mh_err_set(err, MH_EFORMAT, "config.json 'rotary_emb_scale_base' must be null (xPos "
                          "scaling is not supported)");
    if (cJSON_IsTrue(key(c, "use_rms_norm")) || cJSON_IsTrue(key(c, "parallel_block")) ||
        (cJSON_IsNumber(moe) && moe->valuedouble > 0))
        return mh_err_set(err, MH_EFORMAT, "config.json %s is not supported for NomicBertModel",
                          cJSON_IsTrue(key(c, "use_rms_norm")) ? "'use_rms_norm'"
                          : cJSON_IsTrue(key(c, "parallel_block")) ? "'parallel_block'"
                          : "'moe_every_n_layers' (nomic-bert-moe)");
    if ((st = cfg_num(c, "rotary_emb_base", &base, NULL, err))) return st;
    if (base <= 0) return mh_err_set(err, MH_EFORMAT, "config.json lacks 'rotary_emb_base'");
    o->hp.rope_base = (float)base;
    return MH_OK;
}

static int read_bert(const cJSON *c, mh_hf_config *o, mh_err *err)
{
    const char *act = cJSON_GetStringValue(key(c, "hidden_act"));
    const char *pos = cJSON_GetStringValue(key(c, "position_embedding_type"));
    /* bert.c's GELU is the tanh form, as llama.cpp's ggml_gelu runs "gelu" */
    if (act && strcmp(act, "gelu") && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh"))
        return mh_err_set(err, MH_EFORMAT, "config.json 'hidden_act' '%s' is not supported for %s "
                          "(gelu is)", act, o->cls);
    if (pos && strcmp(pos, "absolute"))
        return mh_err_set(err, MH_EFORMAT, "config.json 'position_embedding_type' '%s' is not "
                          "supported (absolute is)", pos);
    if (cJSON_IsTrue(key(c, "is_decoder")) || cJSON_IsTrue(key(c, "add_cross_attention")))
        return mh_err_set(err, MH_EFORMAT, "config.json '%s' is not supported (encoders attend both "
                          "ways)", cJSON_IsTrue(key(c, "is_decoder")) ? "is_decoder" : "add_cross_attention");
    o->hp.rope_base = 10000.0f;      /* unused: bert has learned positions */
    return MH_OK;
}

static int read_encoder(const cJSON *c, mh_hf_config *o, mh_err *err)
{
    mh_hparams *hp = &o->hp;
    const bool nomic = hp->arch == MH_ARCH_NOMIC_BERT;
    double eps = 1e-12;      /* BertConfig's default */
    int st;
    /* nomic-bert: llama.cpp fixes 2048 ("the HF config claims n_ctx=8192,
     * but it uses RoPE scaling") unless max_position_embeddings is given */
    if ((st = enc_int(c, "hidden_size", "n_embd", 0, &hp->n_embd, err)) ||
        (st = enc_int(c, "intermediate_size", "n_inner", 0, &hp->n_ff, err)) ||
        (st = enc_int(c, "num_hidden_layers", "n_layer", 0, &hp->n_layer, err)) ||
        (st = enc_int(c, "num_attention_heads", "n_head", 0, &hp->n_head, err)) ||
        (st = cfg_int(c, "vocab_size", true, &hp->n_vocab, err)) ||
        (st = cfg_int(c, "max_position_embeddings", false, &hp->n_ctx_train, err)) ||
        (st = enc_int(c, "type_vocab_size", "type_vocab_size", 2, &o->n_token_types, err)))
        return st;
    if (!hp->n_ctx_train) hp->n_ctx_train = nomic ? 2048 : 512;
    const char *ek = key(c, "layer_norm_eps") ? "layer_norm_eps" : "layer_norm_epsilon";
    if ((st = cfg_num(c, ek, &eps, NULL, err))) return st;
    if (hp->n_layer > 1024 || hp->n_embd % hp->n_head || (hp->n_embd / hp->n_head) % 2 ||
        o->n_token_types > 1024)
        return mh_err_set(err, MH_EFORMAT, "config.json: inconsistent hyperparameters (%lld layers, "
                          "hidden size %lld in %lld heads, %lld token types)", (long long)hp->n_layer,
                          (long long)hp->n_embd, (long long)hp->n_head, (long long)o->n_token_types);
    if ((st = nomic ? read_nomic(c, o, err) : read_bert(c, o, err))) return st;
    hp->encoder = hp->rope_neox = true;
    hp->n_head_kv = hp->n_head;
    hp->head_dim = hp->n_rot = hp->n_embd / hp->n_head;
    hp->norm_eps = hp->rms_eps = (float)eps;
    hp->n_token_types = o->n_token_types;
    hp->pooling = MH_POOL_MEAN;      /* no sentence-transformers files: the GGUF reader's default */
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = hp->rope_freq_scale = hp->rope_attn_factor = 1.0f;
    hp->rope_orig_ctx = hp->n_ctx_train;
    o->pad = cfg_id(c, "pad_token_id");
    o->unk = cfg_id(c, "unk_token_id");
    o->bos = cfg_id(c, "bos_token_id");
    o->eos = cfg_id(c, "eos_token_id");
    return MH_OK;
}

int mh_hf_config_parse(const cJSON *c, mh_hf_config *o, mh_err *err)
{
    memset(o, 0, sizeof *o);
    o->bos = o->eos = o->pad = o->unk = -1;
    int st;
    if ((st = cfg_arch(c, o, err))) return st;
    if (o->hp.arch == MH_ARCH_BERT || o->hp.arch == MH_ARCH_NOMIC_BERT) return read_encoder(c, o, err);
    if ((st = cfg_unsupported(c, o, err)) ||
        (st = read_shape(c, o, err)) || (st = read_rope_scaling(c, o, err)) ||
        (st = read_arch(c, o, err)) || (st = read_moe(c, o, err)))
        return st;
    const cJSON *tie = key(c, "tie_word_embeddings");
    o->tie_explicit = cJSON_IsBool(tie);
    o->tied = o->tie_explicit ? cJSON_IsTrue(tie) : is_gemma(&o->hp);   /* Gemma's default */
    if (is_gemma(&o->hp)) o->tie_explicit = true;                      /* it has no lm_head */
    o->bos = cfg_id(c, "bos_token_id");
    o->eos = cfg_id(c, "eos_token_id");
    o->pad = cfg_id(c, "pad_token_id");
    o->unk = cfg_id(c, "unk_token_id");
    return MH_OK;
}

int mh_hf_config_read(const char *dir, mh_hf_config *o, mh_err *err)
{
    char p[4200];
    memset(o, 0, sizeof *o);
    snprintf(p, sizeof p, "%s/config.json", dir);
    cJSON *c = mh_hf_read_json(p, 16u << 20, err);
    if (!c) return err ? err->code : MH_EIO;
    int st = mh_hf_config_parse(c, o, err);
    cJSON_Delete(c);
    if (!st && o->hp.encoder) st = mh_hf_bert_pooling(dir, o, err);
    return st;
}

void mh_hf_config_free(mh_hf_config *o)
{
    free(o->rope_freqs);
    free(o->rope_long);
    free(o->rope_short);
    o->rope_freqs = o->rope_long = o->rope_short = NULL;
}

/* ===== tensor names ===== */

static const char *const layer_names[][2] = {   /* GGUF part, HF part (shared by all) */
    { "attn_norm", "input_layernorm" },      { "attn_q", "self_attn.q_proj" },
    { "attn_k", "self_attn.k_proj" },        { "attn_v", "self_attn.v_proj" },
    { "attn_output", "self_attn.o_proj" },   { "attn_qkv", "self_attn.qkv_proj" },
    { "attn_q_norm", "self_attn.q_norm" },   { "attn_k_norm", "self_attn.k_norm" },
    { "ffn_gate", "mlp.gate_proj" },         { "ffn_down", "mlp.down_proj" },
    { "post_attention_norm", "post_attention_layernorm" },
    { "post_ffw_norm", "post_feedforward_layernorm" },
};

static const char *layer_part(const mh_hf_config *c, const char *part)
{
    if (!strcmp(part, "ffn_norm"))   /* Gemma names four norms; the others two */
        return is_gemma(&c->hp) ? "pre_feedforward_layernorm" : "post_attention_layernorm";
    if (!strcmp(part, "ffn_up"))     /* Phi-3 fuses gate and up (gate first) */
        return c->hp.arch == MH_ARCH_PHI3 ? "mlp.gate_up_proj" : "mlp.up_proj";
    for (size_t i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++)
        if (!strcmp(part, layer_names[i][0])) return layer_names[i][1];
    return NULL;
}

/* Router, per-expert and shared-expert names (Mixtral's block_sparse_moe,
 * Qwen2-MoE's mlp); false when gguf is none of them. The stacked GGUF
 * tensors have no HF name: "blk.N.ffn_gate_exps.E.weight" stands for
 * expert E's slice (w1/gate_proj; w2/down_proj; w3/up_proj). */
static bool moe_name(const mh_hf_config *c, const char *gguf, char *out, size_t n, bool *ok)
{
    static const char *const stack[3][3] = {   /* GGUF, Mixtral, Qwen2-MoE */
        { "ffn_gate_exps", "w1", "gate_proj" }, { "ffn_down_exps", "w2", "down_proj" },
        { "ffn_up_exps", "w3", "up_proj" },
    };
    static const char *const shared[4][2] = {
        { "ffn_gate_inp_shexp", "shared_expert_gate" }, { "ffn_gate_shexp", "shared_expert.gate_proj" },
        { "ffn_up_shexp", "shared_expert.up_proj" }, { "ffn_down_shexp", "shared_expert.down_proj" },
    };
    bool mixtral = is_mixtral(c);
    const char *blk = mixtral ? "block_sparse_moe" : "mlp";
    long long l, e;
    char part[48];
    int end = 0;
    if ((!mixtral && !is_qwen2moe(c)) || sscanf(gguf, "blk.%lld.%47[^.].%n", &l, part, &end) != 2 || l < 0)
        return false;
    const char *rest = gguf + end;
    int len = -1;
    if (!strcmp(part, "ffn_gate_inp") && !strcmp(rest, "weight"))
        len = snprintf(out, n, "model.layers.%lld.%s.gate.weight", l, blk);
    for (int i = 0; i < 4 && !mixtral && len < 0; i++)
        if (!strcmp(part, shared[i][0]) && !strcmp(rest, "weight"))
            len = snprintf(out, n, "model.layers.%lld.mlp.%s.weight", l, shared[i][1]);
    for (int i = 0; i < 3 && len < 0; i++) {
        if (strcmp(part, stack[i][0])) continue;
        int k = 0;
        *ok = false;     /* the stack itself has no name; its slices do */
        if (sscanf(rest, "%lld.weight%n", &e, &k) != 1 || k == 0 || rest[k] || e < 0) return true;
        len = snprintf(out, n, "model.layers.%lld.%s.experts.%lld.%s.weight", l, blk, e,
                       stack[i][mixtral ? 1 : 2]);
    }
    *ok = len >= 0 && len < (int)n;
    return len >= 0;
}

bool mh_hf_is_row_matrix(const char *gguf)
{
    size_t n = strlen(gguf), k = strlen(".ffn_gate_inp_shexp.weight");
    return n > k && !strcmp(gguf + n - k, ".ffn_gate_inp_shexp.weight");
}

bool mh_hf_tensor_name(const mh_hf_config *c, const char *gguf, char *out, size_t n)
{
    if (c->hp.encoder) return mh_hf_bert_tensor_name(c, gguf, out, n);
    bool moe_ok;
    if (moe_name(c, gguf, out, n, &moe_ok)) return moe_ok;
    static const char *const globals[][2] = {
        { "token_embd.weight", "model.embed_tokens.weight" },
        { "output_norm.weight", "model.norm.weight" },
        { "output.weight", "lm_head.weight" },
    };
    for (size_t i = 0; i < 3; i++)
        if (!strcmp(gguf, globals[i][0])) return snprintf(out, n, "%s", globals[i][1]) < (int)n;
    long long l;
    char part[48], suffix[16];
    if (sscanf(gguf, "blk.%lld.%47[^.].%15s", &l, part, suffix) != 3 || l < 0) return false;
    const char *hf = layer_part(c, part);
    return hf && snprintf(out, n, "model.layers.%lld.%s.%s", l, hf, suffix) < (int)n;
}

bool mh_hf_norm_plus_one(const mh_hf_config *c, const char *gguf)
{
    size_t n = strlen(gguf);
    return is_gemma(&c->hp) && n > 12 && !strcmp(gguf + n - 12, "_norm.weight");
}
