/* arch.c: what sets the newer decoder architectures apart (qwen3, gemma2,
 * gemma3, phi3, experts; rope scaling and sliding windows for llama/mistral), read
 * from GGUF metadata into mh_hparams. Layer: engine/model (pure C11; mh/gguf.h).
 * Keys and defaults follow llama.cpp's loader (llama-model.cpp at c392e5094)
 * so that files its converter writes mean the same here. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "mh/gguf.h"
#include "model_internal.h"

static const struct { const char *name; mh_arch id; } arch_table[] = {
    { "llama", MH_ARCH_LLAMA }, { "mistral", MH_ARCH_LLAMA }, { "qwen2", MH_ARCH_QWEN2 },
    { "qwen3", MH_ARCH_QWEN3 }, { "gemma2", MH_ARCH_GEMMA2 }, { "gemma3", MH_ARCH_GEMMA3 },
    { "phi3", MH_ARCH_PHI3 },
    { "bert", MH_ARCH_BERT }, { "nomic-bert", MH_ARCH_NOMIC_BERT },
    { "qwen2moe", MH_ARCH_QWEN2 },   /* qwen2's attention, experts (read_moe) */
};

const char *mh_arch_supported = "llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3, qwen2moe, bert, nomic-bert";

bool mh_arch_from_name(const char *name, mh_arch *out)
{
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
        if (!strcmp(name, arch_table[i].name)) {
            *out = arch_table[i].id;
            return true;
        }
    return false;
}

bool mh_hparams_layer_swa(const mh_hparams *hp, int64_t l)
{
    if (hp->n_swa <= 0) return false;
    return hp->swa_pattern <= 1 || l % hp->swa_pattern < hp->swa_pattern - 1;
}

static bool key_float(const mh_gguf *g, const char *arch, const char *key, float *out)
{
    char k[128];
    double v;
    snprintf(k, sizeof k, "%s.%s", arch, key);
    if (!mh_gguf_get_float(g, k, &v)) return false;
    *out = (float)v;
    return true;
}

static bool key_int(const mh_gguf *g, const char *arch, const char *key, int64_t *out)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return mh_gguf_get_int(g, k, out);
}

/* rope.scaling.*: linear stretches every angle by 1/factor (llama.cpp reads
 * the factor whatever the type); yarn mixes stretched and unstretched angles
 * (llama.cpp's defaults: ext_factor 1, beta_fast 32, beta_slow 1). Other
 * types are refused rather than run with the wrong positions. */
static int read_rope_scaling(const mh_gguf *g, mh_hparams *hp, mh_err *err)
{
    char k[128];
    mh_gguf_str s = { 0 };
    snprintf(k, sizeof k, "%s.rope.scaling.type", hp->arch_name);
    char type[32] = "";
    if (mh_gguf_get_str(g, k, &s)) snprintf(type, sizeof type, "%.*s", (int)s.len, s.ptr);
    if (*type && strcmp(type, "none") && strcmp(type, "linear") && strcmp(type, "yarn"))
        return mh_err_set(err, MH_EFORMAT, "model: rope scaling '%s' is not supported (linear, "
                          "yarn, llama3 and longrope are)", type);
    float factor = 0;
    if (!key_float(g, hp->arch_name, "rope.scaling.factor", &factor))
        key_float(g, hp->arch_name, "rope.scale_linear", &factor);
    hp->rope_freq_scale = 1.0f;
    if (factor > 0 && strcmp(type, "none")) {
        hp->rope_freq_scale = 1.0f / factor;
        hp->rope_scaling = strcmp(type, "yarn") ? MH_ROPE_SCALING_LINEAR : MH_ROPE_SCALING_YARN;
    }
    hp->rope_attn_factor = 1.0f;
    key_float(g, hp->arch_name, "rope.scaling.attn_factor", &hp->rope_attn_factor);
    hp->rope_orig_ctx = hp->n_ctx_train;
    key_int(g, hp->arch_name, "rope.scaling.original_context_length", &hp->rope_orig_ctx);
    return MH_OK;
}

/* bert / nomic-bert: LayerNorm epsilon, pooling and the causal flag
 * (llama.cpp reads layer_norm_epsilon and causal as required keys, pooling
 * as optional for bert and required for nomic-bert; we default the
 * missing ones: 1e-12 (BERT's), mean pooling, not causal). */
static int read_encoder_hparams(const mh_gguf *g, mh_hparams *hp, mh_err *err)
{
    const char *a = hp->arch_name;
    char k[128];
    bool causal = false;
    int64_t pool = MH_POOL_MEAN;
    hp->encoder = true;
    hp->rope_neox = true;                   /* nomic-bert's rope (bert has none) */
    hp->norm_eps = 1e-12f;
    key_float(g, a, "attention.layer_norm_epsilon", &hp->norm_eps);
    key_int(g, a, "pooling_type", &pool);
    snprintf(k, sizeof k, "%s.attention.causal", a);
    mh_gguf_get_bool(g, k, &causal);
    if (causal)
        return mh_err_set(err, MH_EFORMAT, "model: %s with causal attention is not supported "
                          "(encoders attend both ways)", a);
    if (pool < MH_POOL_NONE || pool > MH_POOL_LAST)
        return mh_err_set(err, MH_EFORMAT, "model: %s.pooling_type %lld is not supported (0 none, "
                          "1 mean, 2 cls, 3 last; rank models are not)", a, (long long)pool);
    hp->pooling = pool == MH_POOL_NONE ? MH_POOL_MEAN : (mh_pooling)pool;
    if (!(hp->norm_eps > 0) || hp->n_head_kv != hp->n_head || hp->head_dim * hp->n_head != hp->n_embd)
        return mh_err_set(err, MH_EFORMAT, "model: %s needs layer_norm_epsilon > 0 and heads that "
                          "split n_embd (got eps %g, %lld heads of %lld)", a, (double)hp->norm_eps,
                          (long long)hp->n_head, (long long)hp->head_dim);
    return MH_OK;
}

/* Mixture-of-experts keys, as llama.cpp's loader reads them: expert_count
 * and expert_used_count for any architecture (llama with experts is
 * Mixtral: experts of n_ff rows, top-k weights renormalised); qwen2moe has
 * its own expert width (default n_ff / n_expert_used), a shared expert
 * (default width n_ff) and no renormalisation (norm_topk_prob false). */
static int read_moe(const mh_gguf *g, mh_hparams *hp, mh_err *err)
{
    const char *a = hp->arch_name;
    bool qmoe = !strcmp(a, "qwen2moe");
    key_int(g, a, "expert_count", &hp->n_expert);
    key_int(g, a, "expert_used_count", &hp->n_expert_used);
    if (hp->n_expert < 0 || hp->n_expert > 256 || hp->n_expert_used < 0 ||
        hp->n_expert_used > hp->n_expert || (hp->n_expert > 0) != (hp->n_expert_used > 0) ||
        (qmoe && hp->n_expert == 0))
        return mh_err_set(err, MH_EFORMAT, "model: bad experts: %s.expert_used_count %lld of "
                          "expert_count %lld (need 1 <= used <= count <= 256%s)", a,
                          (long long)hp->n_expert_used, (long long)hp->n_expert,
                          qmoe ? "" : ", or both 0 for a dense model");
    if (hp->n_expert == 0) return MH_OK;
    hp->n_ff_exp = hp->n_ff;
    hp->expert_norm = !qmoe;
    if (qmoe) {
        hp->n_ff_exp = hp->n_ff / hp->n_expert_used;
        hp->n_ff_shexp = hp->n_ff;
        key_int(g, a, "expert_feed_forward_length", &hp->n_ff_exp);
        key_int(g, a, "expert_shared_feed_forward_length", &hp->n_ff_shexp);
    }
    if (hp->n_ff_exp <= 0 || hp->n_ff_exp > (1 << 20) || hp->n_ff_shexp < 0 || hp->n_ff_shexp > (1 << 20))
        return mh_err_set(err, MH_EFORMAT, "model: bad expert feed-forward length %lld / shared %lld",
                          (long long)hp->n_ff_exp, (long long)hp->n_ff_shexp);
    return MH_OK;
}

int mh_arch_read_hparams(const mh_gguf *g, mh_hparams *hp, mh_err *err)
{
    const char *a = hp->arch_name;
    if (hp->arch == MH_ARCH_BERT || hp->arch == MH_ARCH_NOMIC_BERT) {
        hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
        hp->embd_scale = hp->rope_freq_scale = 1.0f;
        return read_encoder_hparams(g, hp, err);
    }
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = 1.0f;
    hp->rope_neox = hp->arch != MH_ARCH_LLAMA;     /* llama rows are permuted for pairs */
    key_int(g, a, "attention.sliding_window", &hp->n_swa);
    int st = read_rope_scaling(g, hp, err);
    if (!st) st = read_moe(g, hp, err);
    if (st) return st;
    bool gemma = hp->arch == MH_ARCH_GEMMA2 || hp->arch == MH_ARCH_GEMMA3;
    hp->qk_norm = hp->arch == MH_ARCH_QWEN3 || hp->arch == MH_ARCH_GEMMA3;
    if (hp->arch == MH_ARCH_GEMMA2) hp->swa_pattern = 2;    /* even layers slide */
    if (hp->arch == MH_ARCH_GEMMA3) {
        hp->swa_pattern = 6;                                /* five local layers, one global */
        hp->rope_base_swa = 10000.0f;                       /* hard-wired in llama.cpp c392e5094 */
        key_float(g, a, "rope.freq_base_swa", &hp->rope_base_swa);
    }
    if (gemma) {
        hp->post_norms = true;
        hp->gelu_ffn = true;
        hp->embd_scale = sqrtf((float)hp->n_embd);
        key_float(g, a, "attn_logit_softcapping", &hp->attn_softcap);
        key_float(g, a, "final_logit_softcapping", &hp->final_softcap);
        /* query_pre_attn_scalar is not in GGUF: llama.cpp takes n_embd/n_head
         * for the 27B shapes (46 and 62 layers) and head_dim otherwise */
        if ((hp->arch == MH_ARCH_GEMMA2 && hp->n_layer == 46) ||
            (hp->arch == MH_ARCH_GEMMA3 && hp->n_layer == 62))
            hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    }
    if (hp->n_swa < 0 || hp->attn_softcap < 0 || hp->final_softcap < 0 || !(hp->rope_freq_scale > 0))
        return mh_err_set(err, MH_EFORMAT, "model: bad sliding window %lld / soft-capping / rope "
                          "scale", (long long)hp->n_swa);
    return MH_OK;
}
