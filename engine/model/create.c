/* create.c: random-initialized decoder GGUF models (moonhub create): llama,
 * qwen2, qwen3, gemma2, gemma3, phi3, qwen2moe, llama with experts, with
 * llama.cpp's tensor names. Layer: engine/model (pure C11 + cjson for
 * tokenizer.json merges). Each tensor is generated in row chunks from a
 * counter-based RNG, quantized on the thread pool and appended to the
 * writer, so even 1B-parameter shapes never hold more than a chunk of f32. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cJSON.h>
#include "mh/create.h"
#include "mh/gguf.h"
#include "mh/gguf_write.h"
#include "mh/quant.h"
#include "mh/threadpool.h"
#include "mh/tokenizer.h"

#define CHUNK_ELEMS (1 << 22)

/* ===== counter-based RNG ===== */

static uint64_t mix64(uint64_t x)   /* splitmix64's finalizer: a bijective hash */
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Pair j of a stream gives two normals (Box-Muller on one 64-bit hash), so
 * any element can be computed alone: chunks and threads cannot change it. */
static void normal_pair(uint64_t key, uint64_t j, double *z0, double *z1)
{
    uint64_t h = mix64(key ^ mix64(j));
    double u1 = ((double)(h >> 32) + 1.0) / 4294967296.0;      /* (0, 1] */
    double u2 = (double)(h & 0xffffffffu) / 4294967296.0;      /* [0, 1) */
    double r = sqrt(-2.0 * log(u1)), a = 6.283185307179586 * u2;
    *z0 = r * cos(a);
    *z1 = r * sin(a);
}

void mh_create_randn(uint64_t seed, uint64_t stream, uint64_t first, float *dst, int64_t n)
{
    uint64_t key = mix64(seed * 0x2545f4914f6cdd1dULL + mix64(stream + 1));
    for (int64_t k = 0; k < n; ) {
        uint64_t i = first + (uint64_t)k;
        double z0, z1;
        normal_pair(key, i >> 1, &z0, &z1);
        if (i & 1) { dst[k++] = (float)z1; continue; }
        dst[k++] = (float)z0;
        if (k < n) dst[k++] = (float)z1;
    }
}

/* ===== config ===== */

int mh_create_check(const mh_create_config *c, mh_err *err)
{
    static const char *const archs[] = { "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3",
                                         "qwen2moe", "bert", "nomic-bert" };
    bool known = false;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) known |= !strcmp(c->arch, archs[i]);
    if (!known)
        return mh_err_set(err, MH_EINVAL, "create: arch must be one of llama, mistral, qwen2, qwen3, "
                          "gemma2, gemma3, phi3, qwen2moe, bert, nomic-bert; got '%s'", c->arch);
    if (mh_create_is_encoder(c->arch) && (c->n_head_kv != c->n_head || c->head_dim || c->pooling < 0 ||
                                          c->pooling > 3))
        return mh_err_set(err, MH_EINVAL, "create: %s needs n_head_kv = n_head, no head_dim and "
                          "pooling 0..3", c->arch);
    struct { const char *name; int64_t v, max; } f[] = {
        {"n_layer", c->n_layer, 1024}, {"n_embd", c->n_embd, 1 << 16}, {"n_ff", c->n_ff, 1 << 18},
        {"n_head", c->n_head, 1024}, {"n_head_kv", c->n_head_kv, 1024},
        {"n_vocab", c->n_vocab, 1 << 22}, {"n_ctx", c->n_ctx, 1 << 24},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v <= 0 || f[i].v > f[i].max)
            return mh_err_set(err, MH_EINVAL, "create: %s must be in 1..%lld, got %lld", f[i].name,
                              (long long)f[i].max, (long long)f[i].v);
    if (c->head_dim < 0 || c->head_dim % 2 || c->head_dim > 4096)
        return mh_err_set(err, MH_EINVAL, "create: head_dim must be even and in 0..4096, got %lld",
                          (long long)c->head_dim);
    if (!c->head_dim && (c->n_embd % c->n_head || (c->n_embd / c->n_head) % 2))
        return mh_err_set(err, MH_EINVAL, "create: n_embd %lld must split into %lld heads of an "
                          "even size", (long long)c->n_embd, (long long)c->n_head);
    if (c->n_swa < 0 || c->attn_softcap < 0 || c->final_softcap < 0 || c->rope_base_swa < 0 ||
        c->rope_scale_linear < 0 || c->rope_scale_yarn < 0 || c->norm_std < 0 || c->norm_std > 10 ||
        (c->rope_scale_linear > 0 && c->rope_scale_yarn > 0))
        return mh_err_set(err, MH_EINVAL, "create: n_swa, soft caps, rope_base_swa, "
                          "rope_scale_linear/_yarn (one of them) and norm_std must not be negative");
    if ((c->longrope || c->rope_scale_yarn > 0) && c->rope_orig_ctx <= 0)
        return mh_err_set(err, MH_EINVAL, "create: longrope and yarn need rope_orig_ctx > 0");
    if (c->n_expert < 0 || c->n_expert > 256 || c->n_ff_exp < 0 || c->n_ff_shexp < 0 ||
        (c->n_expert > 0 && (c->n_expert_used < 1 || c->n_expert_used > c->n_expert)) ||
        (c->n_expert == 0 && c->n_expert_used != 0) || (!strcmp(c->arch, "qwen2moe") && c->n_expert == 0))
        return mh_err_set(err, MH_EINVAL, "create: n_expert must be in 0..256 (qwen2moe: 1..256) and "
                          "n_expert_used in 1..n_expert, got %lld of %lld",
                          (long long)c->n_expert_used, (long long)c->n_expert);
    if (c->n_head % c->n_head_kv)
        return mh_err_set(err, MH_EINVAL, "create: n_head %lld is not a multiple of n_head_kv %lld",
                          (long long)c->n_head, (long long)c->n_head_kv);
    if (!(c->rope_base > 0) || !(c->rms_eps > 0) || c->std < 0 || c->std > 10)
        return mh_err_set(err, MH_EINVAL, "create: rope_base and rms_eps must be > 0, std in [0, 10]");
    if (c->rope_factor > 0 && (!(c->rope_high_freq > c->rope_low_freq) || c->rope_low_freq <= 0 ||
                               c->rope_orig_ctx <= 0))
        return mh_err_set(err, MH_EINVAL, "create: llama3 rope scaling needs 0 < low_freq_factor "
                          "< high_freq_factor and original_max_position_embeddings > 0");
    return MH_OK;
}

/* ===== tokenizer metadata ===== */

/* tokenizer.* keys of a vocab GGUF (or a full model). */
static int vocab_from_gguf(const char *path, mh_gguf_writer *w, int64_t *n_vocab, mh_err *err)
{
    mh_gguf *g = NULL;
    int rc = mh_gguf_open(path, &g, err);
    if (rc) return rc;
    const mh_gguf_kv *toks = mh_gguf_get_arr(g, "tokenizer.ggml.tokens", MH_GGUF_STRING);
    if (!toks || toks->n == 0) {
        mh_gguf_close(g);
        return mh_err_set(err, MH_EFORMAT, "create: %s has no tokenizer.ggml.tokens", path);
    }
    *n_vocab = (int64_t)toks->n;
    for (int64_t i = 0; i < mh_gguf_n_kv(g) && !rc; i++) {
        const mh_gguf_kv *kv = mh_gguf_kv_at(g, i);
        if (!strncmp(kv->key, "tokenizer.", 10)) rc = mh_gguf_writer_copy_kv(w, kv, err);
    }
    mh_gguf_close(g);
    return rc;
}

/* A SentencePiece-style vocabulary of <unk>, <s>, </s> and the 256 byte
 * tokens: text round-trips through byte fallback, nothing else needed. */
static int vocab_builtin(mh_gguf_writer *w, int64_t *n_vocab, mh_err *err)
{
    enum { N = 259 };
    static char bytes[256][7];
    const char *strs[N];
    size_t lens[N];
    float scores[N] = {0};
    int32_t types[N];
    strs[0] = "<unk>"; strs[1] = "<s>"; strs[2] = "</s>";
    types[0] = MH_TOKEN_UNKNOWN; types[1] = types[2] = MH_TOKEN_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        strs[3 + b] = bytes[b];
        types[3 + b] = MH_TOKEN_BYTE;
    }
    for (int i = 0; i < N; i++) lens[i] = strlen(strs[i]);
    *n_vocab = N;
    int rc = mh_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5, err);
    if (!rc) rc = mh_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default", 7, err);
    if (!rc) rc = mh_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, N, err);
    if (!rc) rc = mh_gguf_writer_set_arr(w, "tokenizer.ggml.scores", MH_GGUF_FLOAT32, scores, N, err);
    if (!rc) rc = mh_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", MH_GGUF_INT32, types, N, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "tokenizer.ggml.unknown_token_id", MH_GGUF_UINT32, 0, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "tokenizer.ggml.bos_token_id", MH_GGUF_UINT32, 1, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "tokenizer.ggml.eos_token_id", MH_GGUF_UINT32, 2, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "tokenizer.ggml.add_bos_token", MH_GGUF_BOOL, 1, err);
    return rc;
}

static cJSON *read_json(const char *path, mh_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mh_err_set(err, MH_EIO, "create: cannot open %s", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = sz > 0 ? malloc((size_t)sz + 1) : NULL;
    size_t got = buf ? fread(buf, 1, (size_t)sz, f) : 0;
    fclose(f);
    cJSON *root = NULL;
    if (buf && got == (size_t)sz) {
        buf[sz] = 0;
        root = cJSON_Parse(buf);
    }
    free(buf);
    if (!root) mh_err_set(err, MH_EFORMAT, "create: cannot read %s as JSON", path);
    return root;
}

/* model.merges of tokenizer.json: "a b" strings or ["a", "b"] pairs. */
static int hf_merges(const cJSON *root, const char *path, mh_gguf_writer *w, mh_err *err)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "merges");
    int n = cJSON_GetArraySize(m), rc = MH_OK;
    char **strs = calloc((size_t)n + 1, sizeof *strs);
    size_t *lens = calloc((size_t)n + 1, sizeof *lens);
    if (!cJSON_IsArray(m) || !strs || !lens)
        rc = mh_err_set(err, MH_EFORMAT, "create: %s has no model.merges list", path);
    int i = 0;
    for (const cJSON *e = m ? m->child : NULL; e && !rc; e = e->next, i++) {
        const char *a = cJSON_GetStringValue(e), *b = NULL;
        if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2) {
            a = cJSON_GetStringValue(cJSON_GetArrayItem(e, 0));
            b = cJSON_GetStringValue(cJSON_GetArrayItem(e, 1));
        }
        if (!a || (cJSON_IsArray(e) && !b)) {
            rc = mh_err_set(err, MH_EFORMAT, "create: %s: merge %d is malformed", path, i);
            break;
        }
        size_t la = strlen(a), lb = b ? strlen(b) : 0;
        if (!(strs[i] = malloc(la + lb + 2))) { rc = mh_err_set(err, MH_ENOMEM, "create: out of memory"); break; }
        memcpy(strs[i], a, la);
        if (b) { strs[i][la] = ' '; memcpy(strs[i] + la + 1, b, lb); }
        lens[i] = b ? la + lb + 1 : la;
    }
    if (!rc) rc = mh_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)strs,
                                             lens, (uint64_t)n, err);
    for (int k = 0; strs && k < n; k++) free(strs[k]);
    free(strs);
    free(lens);
    return rc;
}

/* Walks a pre_tokenizer object: Split regexes and a Digits splitter. */
static void scan_pre(const cJSON *j, bool *n13, bool *qwen, bool *digits)
{
    for (const cJSON *e = j ? j->child : NULL; e; e = e->next) {
        const char *s = e->string && !strcmp(e->string, "Regex") ? cJSON_GetStringValue(e) : NULL;
        if (s && strstr(s, "\\p{N}{1,3}")) *n13 = true;
        if (s && strstr(s, "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+")) *qwen = true;
        if (e->string && !strcmp(e->string, "individual_digits") && cJSON_IsTrue(e)) *digits = true;
        if (cJSON_IsObject(e) || cJSON_IsArray(e)) scan_pre(e, n13, qwen, digits);
    }
}

/* The tokenizer.ggml.pre name whose regexes match this tokenizer.json. */
static const char *hf_pre_name(const cJSON *root)
{
    bool n13 = false, qwen = false, digits = false;
    scan_pre(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &n13, &qwen, &digits);
    if (n13) return "llama3";
    if (qwen) return "qwen2";
    if (digits) return "smollm";
    return "gpt-2";
}

static int set_special(mh_gguf_writer *w, const char *key, int32_t id, mh_err *err)
{
    return id < 0 ? MH_OK : mh_gguf_writer_set_int(w, key, MH_GGUF_UINT32, id, err);
}

/* A byte-level BPE tokenizer.json as GGUF "gpt2" metadata. */
static int vocab_from_hf(const char *path, mh_gguf_writer *w, int64_t *n_vocab, mh_err *err)
{
    mh_tokenizer *t = NULL;
    int rc = mh_tokenizer_from_hf(path, &t, err);
    if (rc) return rc;
    if (mh_tokenizer_kind(t) != MH_TOK_BPE) {
        mh_tokenizer_free(t);
        return mh_err_set(err, MH_EINVAL, "create: %s is a %s tokenizer; only byte-level BPE "
                          "tokenizer.json files convert (use a vocab GGUF)", path,
                          mh_tokenizer_kind_name(t));
    }
    int32_t n = mh_tokenizer_n_vocab(t);
    const char **strs = calloc((size_t)n, sizeof *strs);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    int32_t *types = calloc((size_t)n, sizeof *types);
    if (!strs || !lens || !types) rc = mh_err_set(err, MH_ENOMEM, "create: out of memory");
    for (int32_t i = 0; i < n && !rc; i++) {
        strs[i] = mh_tokenizer_text(t, i, &lens[i]);
        types[i] = mh_tokenizer_attr(t, i);
        if (!strs[i]) { strs[i] = ""; lens[i] = 0; types[i] = MH_TOKEN_UNUSED; }  /* id gap */
    }
    const mh_tok_special *sp = mh_tokenizer_special(t);
    cJSON *root = rc ? NULL : read_json(path, err);
    if (!rc && !root) rc = err ? err->code : MH_EFORMAT;
    const char *pre = root ? hf_pre_name(root) : NULL, *tmpl = mh_tokenizer_chat_template(t);
    if (!rc) rc = mh_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4, err);
    if (!rc && pre) rc = mh_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, strlen(pre), err);
    if (!rc) rc = mh_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, (uint64_t)n, err);
    if (!rc) rc = mh_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", MH_GGUF_INT32, types, (uint64_t)n, err);
    if (!rc) rc = hf_merges(root, path, w, err);
    if (!rc) rc = set_special(w, "tokenizer.ggml.bos_token_id", sp->bos, err);
    if (!rc) rc = set_special(w, "tokenizer.ggml.eos_token_id", sp->eos, err);
    if (!rc) rc = set_special(w, "tokenizer.ggml.unknown_token_id", sp->unk, err);
    if (!rc) rc = set_special(w, "tokenizer.ggml.padding_token_id", sp->pad, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "tokenizer.ggml.add_bos_token", MH_GGUF_BOOL,
                                         mh_tokenizer_add_bos(t), err);
    if (!rc && tmpl) rc = mh_gguf_writer_set_str(w, "tokenizer.chat_template", tmpl, strlen(tmpl), err);
    *n_vocab = n;
    cJSON_Delete(root);
    free(strs);
    free(lens);
    free(types);
    mh_tokenizer_free(t);
    return rc;
}

static int add_vocab(const char *path, bool encoder, mh_gguf_writer *w, int64_t *n_vocab, mh_err *err)
{
    if ((!path || !*path) && encoder) return mh_create_wordpiece_vocab(w, n_vocab, err);
    if (!path || !*path) return vocab_builtin(w, n_vocab, err);
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json")) return vocab_from_hf(path, w, n_vocab, err);
    return vocab_from_gguf(path, w, n_vocab, err);
}

/* ===== hyperparameters ===== */

static int set_u32(mh_gguf_writer *w, const char *arch, const char *k, int64_t v, mh_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return mh_gguf_writer_set_int(w, key, MH_GGUF_UINT32, v, err);
}

static int set_f32(mh_gguf_writer *w, const char *arch, const char *k, double v, mh_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return mh_gguf_writer_set_float(w, key, MH_GGUF_FLOAT32, v, err);
}

static int64_t head_dim(const mh_create_config *c)
{
    return c->head_dim > 0 ? c->head_dim : c->n_embd / c->n_head;
}

static bool is_arch(const mh_create_config *c, const char *a) { return !strcmp(c->arch, a); }

/* The keys llama.cpp's converter writes for the newer architectures. */
static int add_arch_hparams(const mh_create_config *c, mh_gguf_writer *w, mh_err *err)
{
    const char *a = c->arch;
    int rc = MH_OK;
    if (c->head_dim > 0) {
        if (!rc) rc = set_u32(w, a, "attention.key_length", c->head_dim, err);
        if (!rc) rc = set_u32(w, a, "attention.value_length", c->head_dim, err);
    }
    if (!rc && c->n_swa > 0) rc = set_u32(w, a, "attention.sliding_window", c->n_swa, err);
    if (!rc && c->attn_softcap > 0) rc = set_f32(w, a, "attn_logit_softcapping", c->attn_softcap, err);
    if (!rc && c->final_softcap > 0) rc = set_f32(w, a, "final_logit_softcapping", c->final_softcap, err);
    if (!rc && c->rope_base_swa > 0) rc = set_f32(w, a, "rope.freq_base_swa", c->rope_base_swa, err);
    if (!rc && c->rope_scale_linear > 0) {
        char k[128];
        snprintf(k, sizeof k, "%s.rope.scaling.type", a);
        rc = mh_gguf_writer_set_str(w, k, "linear", 6, err);
        if (!rc) rc = set_f32(w, a, "rope.scaling.factor", c->rope_scale_linear, err);
    }
    if (!rc && c->rope_scale_yarn > 0) {
        char k[128];
        snprintf(k, sizeof k, "%s.rope.scaling.type", a);
        rc = mh_gguf_writer_set_str(w, k, "yarn", 4, err);
        if (!rc) rc = set_f32(w, a, "rope.scaling.factor", c->rope_scale_yarn, err);
        if (!rc) rc = set_u32(w, a, "rope.scaling.original_context_length", c->rope_orig_ctx, err);
    }
    if (!rc && c->n_expert > 0) rc = set_u32(w, a, "expert_count", c->n_expert, err);
    if (!rc && c->n_expert > 0) rc = set_u32(w, a, "expert_used_count", c->n_expert_used, err);
    if (!rc && c->n_ff_exp > 0 && is_arch(c, "qwen2moe"))
        rc = set_u32(w, a, "expert_feed_forward_length", c->n_ff_exp, err);
    if (!rc && c->n_ff_shexp > 0 && is_arch(c, "qwen2moe"))
        rc = set_u32(w, a, "expert_shared_feed_forward_length", c->n_ff_shexp, err);
    if (!rc && c->longrope) {   /* phi3: HF's attention scaling of longrope */
        double s = (double)c->n_ctx / (double)c->rope_orig_ctx;
        double f = s <= 1 ? 1.0 : sqrt(1 + log(s) / log((double)c->rope_orig_ctx));
        rc = set_f32(w, a, "rope.scaling.attn_factor", f, err);
        if (!rc) rc = set_u32(w, a, "rope.scaling.original_context_length", c->rope_orig_ctx, err);
    }
    return rc;
}

static int add_hparams(const mh_create_config *c, const mh_create_opts *o, int64_t n_vocab,
                       mh_gguf_writer *w, mh_err *err)
{
    const char *a = c->arch;
    char desc[128];
    snprintf(desc, sizeof desc, "random weights from moonhub create (seed %llu)",
             (unsigned long long)o->seed);
    int rc = mh_gguf_writer_set_str(w, "general.architecture", a, strlen(a), err);
    if (!rc) rc = mh_gguf_writer_set_str(w, "general.type", "model", 5, err);
    if (!rc) rc = mh_gguf_writer_set_str(w, "general.name", c->name, strlen(c->name), err);
    if (!rc) rc = mh_gguf_writer_set_str(w, "general.description", desc, strlen(desc), err);
    if (!rc && mh_create_is_encoder(a)) {
        rc = mh_create_encoder_hparams(c, w, err);
        if (!rc) rc = mh_gguf_writer_set_int(w, "general.file_type", MH_GGUF_UINT32, o->ftype, err);
        if (!rc) rc = mh_gguf_writer_set_int(w, "general.quantization_version", MH_GGUF_UINT32, 2, err);
        return rc;
    }
    if (!rc) rc = set_u32(w, a, "block_count", c->n_layer, err);
    if (!rc) rc = set_u32(w, a, "context_length", c->n_ctx, err);
    if (!rc) rc = set_u32(w, a, "embedding_length", c->n_embd, err);
    if (!rc) rc = set_u32(w, a, "feed_forward_length", c->n_ff, err);
    if (!rc) rc = set_u32(w, a, "attention.head_count", c->n_head, err);
    if (!rc) rc = set_u32(w, a, "attention.head_count_kv", c->n_head_kv, err);
    if (!rc) rc = set_f32(w, a, "rope.freq_base", c->rope_base, err);
    if (!rc) rc = set_f32(w, a, "attention.layer_norm_rms_epsilon", c->rms_eps, err);
    if (!rc) rc = set_u32(w, a, "rope.dimension_count", head_dim(c), err);
    if (!rc) rc = add_arch_hparams(c, w, err);
    if (!rc) rc = set_u32(w, a, "vocab_size", n_vocab, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "general.file_type", MH_GGUF_UINT32, o->ftype, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "general.quantization_version", MH_GGUF_UINT32, 2, err);
    return rc;
}

/* ===== tensors ===== */

enum { FILL_RANDN, FILL_ONES, FILL_ZEROS, FILL_ROPE, FILL_NORM, FILL_ROPE_LONG, FILL_ROPE_SHORT };

typedef struct ctensor {
    char name[64];
    int n_dims;
    int64_t ne[4];
    int fill;
    mh_dtype type;
} ctensor;

typedef struct cplan {
    ctensor *t;
    int64_t n;
} cplan;

static void plan_add(cplan *p, const char *name, int64_t ne0, int64_t ne1, int fill)
{
    ctensor *t = &p->t[p->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = ne1 > 0 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 > 0 ? ne1 : 1;
    t->ne[2] = t->ne[3] = 1;
    t->fill = fill;
}

/* ===== encoders (bert, nomic-bert) =====
 * llama.cpp's tensors for them (llama-model.cpp c392e5094): embeddings,
 * two token types, learned positions (bert), the embedding LayerNorm, then
 * per layer q/k/v (bert, with biases) or a fused qkv (nomic-bert), the
 * output, two post-norms with biases and a GELU (bert, biased) or SwiGLU
 * (nomic-bert) FFN. Biases are random too, so a lost one shows. */
static void plan_encoder(const mh_create_config *c, int64_t V, cplan *p)
{
    const int64_t E = c->n_embd, F = c->n_ff;
    const bool bert = is_arch(c, "bert");
    const int norm = c->norm_std > 0 ? FILL_NORM : FILL_ONES;
    char n[64];
    plan_add(p, "token_embd.weight", E, V, FILL_RANDN);
    plan_add(p, "token_types.weight", E, 2, FILL_RANDN);
    if (bert) plan_add(p, "position_embd.weight", E, c->n_ctx, FILL_RANDN);
    plan_add(p, "token_embd_norm.weight", E, 0, norm);
    plan_add(p, "token_embd_norm.bias", E, 0, FILL_RANDN);
    for (int64_t i = 0; i < c->n_layer; i++) {
#define ADD(suffix, ne0, ne1, fill) \
        (snprintf(n, sizeof n, "blk.%lld." suffix, (long long)i), plan_add(p, n, ne0, ne1, fill))
        if (bert) {
            ADD("attn_q.weight", E, E, FILL_RANDN); ADD("attn_q.bias", E, 0, FILL_RANDN);
            ADD("attn_k.weight", E, E, FILL_RANDN); ADD("attn_k.bias", E, 0, FILL_RANDN);
            ADD("attn_v.weight", E, E, FILL_RANDN); ADD("attn_v.bias", E, 0, FILL_RANDN);
        } else {
            ADD("attn_qkv.weight", E, 3 * E, FILL_RANDN);
        }
        ADD("attn_output.weight", E, E, FILL_RANDN);
        if (bert) ADD("attn_output.bias", E, 0, FILL_RANDN);
        ADD("attn_output_norm.weight", E, 0, norm); ADD("attn_output_norm.bias", E, 0, FILL_RANDN);
        ADD("ffn_up.weight", E, F, FILL_RANDN);
        if (bert) ADD("ffn_up.bias", F, 0, FILL_RANDN);
        else ADD("ffn_gate.weight", E, F, FILL_RANDN);
        ADD("ffn_down.weight", F, E, FILL_RANDN);
        if (bert) ADD("ffn_down.bias", E, 0, FILL_RANDN);
        ADD("layer_output_norm.weight", E, 0, norm); ADD("layer_output_norm.bias", E, 0, FILL_RANDN);
#undef ADD
    }
}

/* A stack of n_expert matrices (ne0, ne1): GGUF ne = [ne0, ne1, n_expert]. */
static void plan_add3(cplan *p, const char *name, int64_t ne0, int64_t ne1, int64_t ne2)
{
    plan_add(p, name, ne0, ne1, FILL_RANDN);
    ctensor *t = &p->t[p->n - 1];
    t->n_dims = 3;
    t->ne[2] = ne2;
}

/* The expert FFN of layer i (llama.cpp's names): router, stacked experts,
 * and qwen2moe's shared expert with its gate vector. */
static void plan_moe(const mh_create_config *c, int64_t i, cplan *p)
{
    int64_t E = c->n_embd, X = c->n_expert, F = c->n_ff, S = c->n_ff_shexp > 0 ? c->n_ff_shexp : c->n_ff;
    bool qmoe = is_arch(c, "qwen2moe");
    if (qmoe) F = c->n_ff_exp > 0 ? c->n_ff_exp : c->n_ff / c->n_expert_used;
    char n[64];
#define NAME(suffix) (snprintf(n, sizeof n, "blk.%lld." suffix, (long long)i), n)
    plan_add(p, NAME("ffn_gate_inp.weight"), E, X, FILL_RANDN);
    plan_add3(p, NAME("ffn_gate_exps.weight"), E, F, X);
    plan_add3(p, NAME("ffn_up_exps.weight"), E, F, X);
    plan_add3(p, NAME("ffn_down_exps.weight"), F, E, X);
    if (qmoe) {
        plan_add(p, NAME("ffn_gate_inp_shexp.weight"), E, 0, FILL_RANDN);
        plan_add(p, NAME("ffn_gate_shexp.weight"), E, S, FILL_RANDN);
        plan_add(p, NAME("ffn_up_shexp.weight"), E, S, FILL_RANDN);
        plan_add(p, NAME("ffn_down_shexp.weight"), S, E, FILL_RANDN);
    }
#undef NAME
}

/* Tensors in llama.cpp's order: globals, then each layer. */
static void plan_tensors(const mh_create_config *c, int64_t V, cplan *p)
{
    if (mh_create_is_encoder(c->arch)) {
        plan_encoder(c, V, p);
        return;
    }
    int64_t E = c->n_embd, hd = head_dim(c), qd = hd * c->n_head, kv = hd * c->n_head_kv;
    const int norm = c->norm_std > 0 ? FILL_NORM : FILL_ONES;
    const bool fused = is_arch(c, "phi3"), qk = is_arch(c, "qwen3") || is_arch(c, "gemma3");
    const bool post = is_arch(c, "gemma2") || is_arch(c, "gemma3");
    char n[64];
    plan_add(p, "token_embd.weight", E, V, FILL_RANDN);
    plan_add(p, "output_norm.weight", E, 0, norm);
    if (!c->tied) plan_add(p, "output.weight", E, V, FILL_RANDN);
    if (c->rope_factor > 0) plan_add(p, "rope_freqs.weight", hd / 2, 0, FILL_ROPE);
    if (c->longrope) {
        plan_add(p, "rope_factors_long.weight", hd / 2, 0, FILL_ROPE_LONG);
        plan_add(p, "rope_factors_short.weight", hd / 2, 0, FILL_ROPE_SHORT);
    }
    for (int64_t i = 0; i < c->n_layer; i++) {
#define ADD(suffix, ne0, ne1, fill) \
        (snprintf(n, sizeof n, "blk.%lld." suffix, (long long)i), plan_add(p, n, ne0, ne1, fill))
        ADD("attn_norm.weight", E, 0, norm);
        if (fused) ADD("attn_qkv.weight", E, qd + 2 * kv, FILL_RANDN);
        else {
            ADD("attn_q.weight", E, qd, FILL_RANDN);
            ADD("attn_k.weight", E, kv, FILL_RANDN);
            ADD("attn_v.weight", E, kv, FILL_RANDN);
        }
        if (c->qkv_bias) {
            ADD("attn_q.bias", qd, 0, FILL_ZEROS);
            ADD("attn_k.bias", kv, 0, FILL_ZEROS);
            ADD("attn_v.bias", kv, 0, FILL_ZEROS);
        }
        if (qk) {
            ADD("attn_q_norm.weight", hd, 0, norm);
            ADD("attn_k_norm.weight", hd, 0, norm);
        }
        ADD("attn_output.weight", qd, E, FILL_RANDN);
        if (post) ADD("post_attention_norm.weight", E, 0, norm);
        ADD("ffn_norm.weight", E, 0, norm);
        if (c->n_expert > 0) plan_moe(c, i, p);
        else if (fused) ADD("ffn_up.weight", E, 2 * c->n_ff, FILL_RANDN);
        else {
            ADD("ffn_gate.weight", E, c->n_ff, FILL_RANDN);
            ADD("ffn_up.weight", E, c->n_ff, FILL_RANDN);
        }
        if (c->n_expert == 0) ADD("ffn_down.weight", c->n_ff, E, FILL_RANDN);
        if (post) ADD("post_ffw_norm.weight", E, 0, norm);
#undef ADD
    }
}

/* phi3 longrope factors: real files carry tuned lists; these keep their
 * shape (short near 1, long growing with the wavelength up to the
 * context stretch) so both paths are exercised. */
static void longrope_factors(const mh_create_config *c, bool lng, float *out, int64_t n)
{
    double stretch = (double)c->n_ctx / (double)c->rope_orig_ctx;
    for (int64_t i = 0; i < n; i++) {
        double f = (double)i / (double)(n > 1 ? n - 1 : 1);
        out[i] = (float)(lng ? 1.0 + (stretch > 1 ? stretch - 1 : 0.5) * f : 1.0 + 0.05 * f);
    }
}

/* llama3 rope scaling: per-frequency divisors, as Meta's reference defines. */
static void rope_factors(const mh_create_config *c, float *out, int64_t n)
{
    int64_t dim = n * 2;
    double lo_wave = (double)c->rope_orig_ctx / c->rope_low_freq;
    double hi_wave = (double)c->rope_orig_ctx / c->rope_high_freq;
    for (int64_t i = 0; i < n; i++) {
        double freq = 1.0 / pow(c->rope_base, (double)(2 * i) / (double)dim);
        double wave = 2 * 3.141592653589793 / freq;
        if (wave < hi_wave) out[i] = 1.0f;
        else if (wave > lo_wave) out[i] = (float)c->rope_factor;
        else {
            double s = ((double)c->rope_orig_ctx / wave - c->rope_low_freq) /
                       (c->rope_high_freq - c->rope_low_freq);
            out[i] = (float)(1.0 / ((1 - s) / c->rope_factor + s));
        }
    }
}

typedef struct { uint64_t seed, stream, first; float *dst; int64_t ne0; float std; } gen_job;

static void gen_fn(void *ctx, int64_t begin, int64_t end)
{
    gen_job *j = ctx;
    float *d = j->dst + begin * j->ne0;
    int64_t n = (end - begin) * j->ne0;
    mh_create_randn(j->seed, j->stream, j->first + (uint64_t)(begin * j->ne0), d, n);
    for (int64_t k = 0; k < n; k++) d[k] *= j->std;
}

typedef struct {
    float *f32;
    uint8_t *q;
    uint64_t done, total;      /* tensor bytes written, for opts->progress */
    mh_progress_fn progress;
    void *ud;
} cbufs;

static int write_tensor(const mh_create_config *c, uint64_t seed, int64_t idx, const ctensor *t,
                        cbufs *b, mh_gguf_writer *w, mh_err *err)
{
    int64_t ne0 = t->ne[0], rows = t->ne[1] * t->ne[2];
    int64_t chunk = CHUNK_ELEMS / ne0 > 0 ? CHUNK_ELEMS / ne0 : 1;
    size_t row_bytes = mh_dtype_row_size(t->type, ne0);
    float std = (float)(c->std > 0 ? c->std : 0.02);
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        if (t->fill == FILL_RANDN) {
            gen_job j = { seed, (uint64_t)idx, (uint64_t)(r0 * ne0), b->f32, ne0, std };
            mh_parallel_for(nr, 1 + (1 << 14) / ne0, gen_fn, &j);
        } else if (t->fill == FILL_ROPE) {
            rope_factors(c, b->f32, ne0);
        } else if (t->fill == FILL_ROPE_LONG || t->fill == FILL_ROPE_SHORT) {
            longrope_factors(c, t->fill == FILL_ROPE_LONG, b->f32, ne0);
        } else if (t->fill == FILL_NORM) {   /* 1 + N(0, norm_std): a lost norm changes the output */
            gen_job j = { seed, (uint64_t)idx, (uint64_t)(r0 * ne0), b->f32, ne0, (float)c->norm_std };
            gen_fn(&j, 0, nr);
            for (int64_t k = 0; k < nr * ne0; k++) b->f32[k] += 1.0f;
        } else {
            for (int64_t k = 0; k < nr * ne0; k++) b->f32[k] = t->fill == FILL_ONES ? 1.0f : 0.0f;
        }
        int rc = mh_quantize_rows(t->type, b->f32, b->q, nr, ne0);
        if (rc) return mh_err_set(err, rc, "create: tensor '%s': cannot convert to %s", t->name,
                                  mh_dtype_info(t->type)->name);
        if ((rc = mh_gguf_writer_write_data(w, b->q, (size_t)nr * row_bytes, err))) return rc;
        b->done += (uint64_t)nr * row_bytes;
        if (b->progress) b->progress(b->ud, b->done, b->total);
    }
    return MH_OK;
}

static int declare_tensors(const mh_create_config *c, const mh_create_opts *o, cplan *p,
                           mh_gguf_writer *w, mh_create_stats *st, mh_err *err)
{
    mh_quant_model_info mi = { (int)c->n_layer, !c->tied };
    for (int64_t i = 0; i < p->n; i++) {
        ctensor *t = &p->t[i];
        t->type = MH_DTYPE_F32;
        if (mh_quantize_wants(t->name, t->n_dims))
            t->type = mh_quantize_pick_type(o->ftype, t->name, t->ne[0], &mi, NULL);
        int rc = mh_gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type, err);
        if (rc) return rc;
        st->n_by_type[t->type]++;
        if (t->fill != FILL_ROPE && t->fill != FILL_ROPE_LONG && t->fill != FILL_ROPE_SHORT) st->n_params += t->ne[0] * t->ne[1] * t->ne[2];
    }
    st->n_tensors = p->n;
    return MH_OK;
}

static int build(const mh_create_config *c, const mh_create_opts *o, const char *out,
                 mh_gguf_writer *w, mh_create_stats *st, mh_err *err)
{
    int64_t V = 0;
    int rc = add_vocab(o->tokenizer, mh_create_is_encoder(c->arch), w, &V, err);
    if (rc) return rc;
    st->n_vocab = V;
    st->vocab_changed = V != c->n_vocab;
    if ((rc = add_hparams(c, o, V, w, err))) return rc;
    cplan p = { calloc((size_t)(6 + 20 * c->n_layer), sizeof(ctensor)), 0 };
    size_t fcap = (size_t)CHUNK_ELEMS + (size_t)(2 * c->n_ff > c->n_embd ? 2 * c->n_ff : c->n_embd);
    cbufs b = { malloc(fcap * sizeof(float)), malloc(fcap * sizeof(float)), 0, 0, o->progress,
                o->progress_ud };
    if (!p.t || !b.f32 || !b.q) rc = mh_err_set(err, MH_ENOMEM, "create: out of memory");
    if (!rc) plan_tensors(c, V, &p);
    if (!rc) rc = declare_tensors(c, o, &p, w, st, err);
    if (!rc) rc = mh_gguf_writer_begin(w, out, err);
    for (int64_t i = 0; i < p.n && !rc; i++)   /* progress counts tensor bytes written */
        b.total += mh_dtype_row_size(p.t[i].type, p.t[i].ne[0]) * (uint64_t)(p.t[i].ne[1] * p.t[i].ne[2]);
    for (int64_t i = 0; i < p.n && !rc; i++) rc = write_tensor(c, o->seed, i, &p.t[i], &b, w, err);
    if (!rc) rc = mh_gguf_writer_finish(w, err);
    st->file_bytes = mh_gguf_writer_bytes(w);
    free(p.t);
    free(b.f32);
    free(b.q);
    return rc;
}

int mh_create_model(const mh_create_config *cfg, const mh_create_opts *opts,
                    const char *out_path, mh_create_stats *stats, mh_err *err)
{
    mh_create_stats local;
    mh_create_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    int rc = mh_create_check(cfg, err);
    if (rc) return rc;
    if (!strcmp(mh_ftype_name(opts->ftype), "?"))
        return mh_err_set(err, MH_EINVAL, "create: unsupported file type %d (supported: %s)",
                          (int)opts->ftype, mh_ftype_names());
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mh_gguf_writer *w = mh_gguf_writer_new();
    if (!w) return mh_err_set(err, MH_ENOMEM, "create: out of memory");
    rc = build(cfg, opts, out_path, w, st, err);
    mh_gguf_writer_free(w);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    st->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    return rc;
}
