/* convert_vocab.c: the tokenizer.* GGUF keys of a Hugging Face folder, as
 * llama.cpp's converter writes them (its SpecialVocab and _set_vocab_gpt2 /
 * _set_vocab_llama_hf), from tokenizer.json + tokenizer_config.json.
 * Layer: engine/model (pure C11 + cJSON; mh/tokenizer.h reads the vocabulary). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "mh/gguf_write.h"
#include "mh/tokenizer.h"
#include "hf_config.h"

typedef struct vocab_ctx {
    const char *dir;
    const mh_hf_config *cfg;
    const mh_tokenizer *t;
    cJSON *tok_json, *tok_cfg;   /* tok_cfg may be NULL (no tokenizer_config.json) */
    cJSON *gen_cfg;              /* generation_config.json or NULL */
    mh_gguf_writer *w;
    int64_t n;                   /* vocab size written: config.json's vocab_size */
} vocab_ctx;

/* ===== pre-tokenizer name ===== */

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

/* llama.cpp names the pre-tokenizer by hashing a test string's tokens; the
 * families it tells apart here differ in their regexes, which say the same. */
static const char *pre_name(const cJSON *tok_json)
{
    bool n13 = false, qwen = false, digits = false;
    scan_pre(cJSON_GetObjectItemCaseSensitive(tok_json, "pre_tokenizer"), &n13, &qwen, &digits);
    if (n13) return "llama-bpe";
    if (qwen) return "qwen2";
    if (digits) return "smollm";
    return "gpt-2";
}

/* Whether j (a pre_tokenizer/normalizer/decoder tree) holds an object of
 * the given type, or (prepend) a Prepend of U+2581 / a Metaspace that adds one. */
static bool has_type(const cJSON *j, const char *type, bool prepend)
{
    for (const cJSON *e = j ? j->child : NULL; e; e = e->next) {
        const char *t = e->string && !strcmp(e->string, "type") ? cJSON_GetStringValue(e) : NULL;
        if (t && !strcmp(t, type)) {
            if (!prepend) return true;
            const char *scheme = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "prepend_scheme"));
            const cJSON *aps = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
            if (!strcmp(type, "Prepend") || (scheme ? strcmp(scheme, "never") != 0 : !cJSON_IsFalse(aps)))
                return true;
        }
        if ((cJSON_IsObject(e) || cJSON_IsArray(e)) && has_type(e, type, prepend)) return true;
    }
    return false;
}

/* Byte-level BPE maps bytes to printable characters (GGUF "gpt2"); BPE
 * without it, over U+2581-spaced text with <0xNN> byte fallback, is what
 * llama.cpp runs as SentencePiece ("llama"): Llama 2, Mistral, Gemma. */
static bool is_spm_style(const cJSON *tok_json)
{
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(tok_json, "pre_tokenizer");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(tok_json, "decoder");
    return !has_type(pre, "ByteLevel", false) && !has_type(dec, "ByteLevel", false);
}

/* ===== tokens ===== */

/* SentencePiece scores from the BPE merges: the piece merge r makes scores
 * -r, so llama.cpp's highest-score-first merging follows the merge ranks;
 * pieces no merge makes (characters, bytes, added tokens) keep -1e9 unless
 * single characters, which are never merge candidates. */
static void spm_scores(vocab_ctx *v, float *scores, int64_t n)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v->tok_json, "model"), "merges");
    for (int64_t i = 0; i < n; i++) scores[i] = -1e9f;
    int r = 0;
    char buf[1024];
    for (const cJSON *e = cJSON_IsArray(m) ? m->child : NULL; e; e = e->next, r++) {
        const char *a = cJSON_GetStringValue(e), *b = NULL;
        size_t la = 0;
        if (cJSON_IsArray(e)) {
            a = cJSON_GetStringValue(cJSON_GetArrayItem(e, 0));
            b = cJSON_GetStringValue(cJSON_GetArrayItem(e, 1));
            la = a ? strlen(a) : 0;
        } else if (a && strchr(a, ' ')) {   /* "a b" */
            la = (size_t)(strchr(a, ' ') - a);
            b = a + la + 1;
        }
        if (!a || !b) continue;
        size_t lb = strlen(b);
        if (la + lb >= sizeof buf) continue;
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int32_t id = mh_tokenizer_id(v->t, buf, la + lb);
        if (id >= 0 && id < n && scores[id] == -1e9f) scores[id] = (float)-r;
    }
}

static int32_t spm_type(const vocab_ctx *v, int32_t id, const char *s, size_t len)
{
    int type = mh_tokenizer_attr(v->t, id);
    unsigned x;
    char tail;
    if (type == MH_TOKEN_NORMAL && len == 6 && sscanf(s, "<0x%2X%c", &x, &tail) == 2 && tail == '>')
        return MH_TOKEN_BYTE;
    if (id == mh_tokenizer_special(v->t)->unk) return MH_TOKEN_UNKNOWN;
    return type;
}


static int set_str(mh_gguf_writer *w, const char *k, const char *v, mh_err *err)
{
    return mh_gguf_writer_set_str(w, k, v, strlen(v), err);
}

/* tokens, token_type (and scores for "llama"), padded to the model's
 * vocab_size with [PAD<i>] as llama.cpp does. */
static int add_tokens(vocab_ctx *v, bool spm, mh_err *err)
{
    int64_t n = v->n, have = mh_tokenizer_n_vocab(v->t);
    const char **strs = calloc((size_t)n, sizeof *strs);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    int32_t *types = calloc((size_t)n, sizeof *types);
    float *scores = calloc((size_t)n, sizeof *scores);
    char (*pads)[32] = calloc((size_t)(n - (have < n ? have : n)) + 1, sizeof *pads);
    int rc = !strs || !lens || !types || !scores || !pads ? mh_err_set(err, MH_ENOMEM, "out of memory") : MH_OK;
    for (int64_t i = 0, k = 0; i < n && !rc; i++) {
        strs[i] = i < have ? mh_tokenizer_text(v->t, (int32_t)i, &lens[i]) : NULL;
        types[i] = !strs[i] ? MH_TOKEN_UNUSED
                 : spm ? spm_type(v, (int32_t)i, strs[i], lens[i]) : mh_tokenizer_attr(v->t, (int32_t)i);
        if (!strs[i]) {    /* an id gap or the padding past the tokenizer */
            snprintf(pads[k], sizeof pads[k], "[PAD%lld]", (long long)i);
            strs[i] = pads[k];
            lens[i] = strlen(pads[k++]);
        }
    }
    if (!rc && spm) spm_scores(v, scores, have < n ? have : n);
    for (int64_t i = 0; i < n && !rc && spm; i++) {
        size_t cl = 0;      /* one UTF-8 character: never a merge candidate */
        if (lens[i] && (cl = (size_t)((unsigned char)strs[i][0] < 0x80 ? 1 : (unsigned char)strs[i][0] < 0xE0 ? 2
                                     : (unsigned char)strs[i][0] < 0xF0 ? 3 : 4)) == lens[i] && scores[i] == -1e9f)
            scores[i] = 0.0f;
        if (types[i] == MH_TOKEN_BYTE || types[i] == MH_TOKEN_UNKNOWN) scores[i] = 0.0f;   /* as SentencePiece */
        if (types[i] == MH_TOKEN_UNUSED || types[i] == MH_TOKEN_CONTROL || types[i] == MH_TOKEN_USER_DEFINED)
            scores[i] = -1000.0f;    /* llama.cpp's value for pads and added tokens */
    }
    mh_gguf_writer *w = v->w;
    if (!rc) rc = mh_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, (uint64_t)n, err);
    if (!rc && spm) rc = mh_gguf_writer_set_arr(w, "tokenizer.ggml.scores", MH_GGUF_FLOAT32, scores,
                                                (uint64_t)n, err);
    if (!rc) rc = mh_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", MH_GGUF_INT32, types,
                                         (uint64_t)n, err);
    free(strs);
    free(lens);
    free(types);
    free(scores);
    free(pads);
    return rc;
}

/* model.merges of tokenizer.json: "a b" strings or ["a", "b"] pairs. */
static int add_merges(vocab_ctx *v, mh_err *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(v->tok_json, "model");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int n = cJSON_GetArraySize(m), rc = MH_OK, i = 0;
    if (!cJSON_IsArray(m) || n == 0)
        return mh_err_set(err, MH_EFORMAT, "%s/tokenizer.json has no model.merges list", v->dir);
    char **strs = calloc((size_t)n, sizeof *strs);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    if (!strs || !lens) rc = mh_err_set(err, MH_ENOMEM, "out of memory");
    for (const cJSON *e = m->child; e && !rc; e = e->next, i++) {
        const char *a = cJSON_GetStringValue(e), *b = NULL;
        if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2) {
            a = cJSON_GetStringValue(cJSON_GetArrayItem(e, 0));
            b = cJSON_GetStringValue(cJSON_GetArrayItem(e, 1));
        }
        if (!a || (cJSON_IsArray(e) && !b)) {
            rc = mh_err_set(err, MH_EFORMAT, "%s/tokenizer.json: merge %d is malformed", v->dir, i);
            break;
        }
        size_t la = strlen(a), lb = b ? strlen(b) : 0;
        if (!(strs[i] = malloc(la + lb + 2))) {
            rc = mh_err_set(err, MH_ENOMEM, "out of memory");
            break;
        }
        memcpy(strs[i], a, la);
        if (b) strs[i][la] = ' ', memcpy(strs[i] + la + 1, b, lb);
        lens[i] = b ? la + lb + 1 : la;
    }
    if (!rc) rc = mh_gguf_writer_set_arr_str(v->w, "tokenizer.ggml.merges", (const char *const *)strs,
                                             lens, (uint64_t)n, err);
    for (int k = 0; strs && k < n; k++) free(strs[k]);
    free(strs);
    free(lens);
    return rc;
}

/* ===== special tokens, flags, chat template ===== */

static const char *tc_content(const cJSON *cfg, const char *k)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(cfg, k);
    if (cJSON_IsObject(e)) e = cJSON_GetObjectItemCaseSensitive(e, "content");
    return cJSON_GetStringValue(e);
}

static int64_t gen_id(const cJSON *g, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(g, k);
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (int64_t)v->valuedouble : -1;
}

/* tokenizer_config's <typ>_token names it; config.json's <typ>_token_id
 * is the fallback (SpecialVocab's order), then generation_config.json's. */
static int add_specials(vocab_ctx *v, mh_err *err)
{
    static const char *const typ[] = { "bos", "eos", "unk", "sep", "pad", "cls", "mask" };
    static const char *const gk[] = { "bos", "eos", "unknown", "seperator", "padding", "cls", "mask" };
    const int64_t from_cfg[] = { v->cfg->bos, v->cfg->eos, v->cfg->unk, -1, v->cfg->pad, -1, -1 };
    int rc = MH_OK;
    for (int i = 0; i < 7 && !rc; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s_token", typ[i]);
        const char *s = tc_content(v->tok_cfg, k);
        int64_t id = s ? mh_tokenizer_id(v->t, s, strlen(s)) : -1;
        if (id < 0) id = from_cfg[i];
        snprintf(k, sizeof k, "%s_token_id", typ[i]);
        if (id < 0) id = gen_id(v->gen_cfg, k);
        if (id < 0 || id >= v->n) continue;
        snprintf(k, sizeof k, "tokenizer.ggml.%s_token_id", gk[i]);
        rc = mh_gguf_writer_set_int(v->w, k, MH_GGUF_UINT32, id, err);
    }
    return rc;
}

static int add_flags(vocab_ctx *v, mh_err *err)
{
    const cJSON *c = v->tok_cfg;
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(c, "add_bos_token");
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(c, "add_eos_token");
    /* written even where tokenizer_config is silent (Llama 3 adds BOS in
     * its post-processor), so GGUF readers tokenize as the folder does */
    bool add_bos = cJSON_IsBool(bos) ? cJSON_IsTrue(bos) : mh_tokenizer_add_bos(v->t);
    int rc = mh_gguf_writer_set_int(v->w, "tokenizer.ggml.add_bos_token", MH_GGUF_BOOL, add_bos, err);
    if (!rc && cJSON_IsBool(eos))
        rc = mh_gguf_writer_set_int(v->w, "tokenizer.ggml.add_eos_token", MH_GGUF_BOOL, cJSON_IsTrue(eos), err);
    return rc;
}

/* A string, or transformers' list of {name, template} (default first). */
static int add_template(vocab_ctx *v, mh_err *err)
{
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(v->tok_cfg, "chat_template"), *e;
    if (cJSON_IsString(ct)) return set_str(v->w, "tokenizer.chat_template", ct->valuestring, err);
    int rc = MH_OK;
    const cJSON *list = cJSON_IsArray(ct) ? ct : NULL;
    cJSON_ArrayForEach(e, list) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
        const char *tmpl = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "template"));
        if (!name || !tmpl) continue;
        char k[160];
        if (!strcmp(name, "default")) snprintf(k, sizeof k, "tokenizer.chat_template");
        else snprintf(k, sizeof k, "tokenizer.chat_template.%.100s", name);
        if ((rc = set_str(v->w, k, tmpl, err))) break;
    }
    return rc;
}

static int add_all(vocab_ctx *v, mh_err *err)
{
    mh_tok_kind kind = mh_tokenizer_kind(v->t);
    if (kind != MH_TOK_BPE && kind != MH_TOK_SPM)
        return mh_err_set(err, MH_EFORMAT, "%s/tokenizer.json is a %s tokenizer; convert writes "
                          "byte-level BPE and SentencePiece-style vocabularies", v->dir,
                          mh_tokenizer_kind_name(v->t));
    if (mh_tokenizer_n_vocab(v->t) > v->n)
        return mh_err_set(err, MH_EFORMAT, "tokenizer.json has %d tokens but config.json's "
                          "vocab_size is %lld", mh_tokenizer_n_vocab(v->t), (long long)v->n);
    bool spm = kind == MH_TOK_SPM || is_spm_style(v->tok_json);
    const mh_arch a = v->cfg->hp.arch;
    int rc = set_str(v->w, "tokenizer.ggml.model", spm ? "llama" : "gpt2", err);
    if (!rc) rc = set_str(v->w, "tokenizer.ggml.pre", spm ? "default" : pre_name(v->tok_json), err);
    if (!rc) rc = add_tokens(v, spm, err);
    if (!rc && !spm) rc = add_merges(v, err);
    if (!rc) rc = add_specials(v, err);
    if (!rc) rc = add_flags(v, err);
    if (!rc) rc = add_template(v, err);
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(v->tok_cfg, "add_prefix_space");
    if (!rc && (a == MH_ARCH_GEMMA2 || a == MH_ARCH_GEMMA3))   /* llama.cpp's Gemma setting */
        rc = mh_gguf_writer_set_int(v->w, "tokenizer.ggml.add_space_prefix", MH_GGUF_BOOL, 0, err);
    else if (!rc && a == MH_ARCH_LLAMA && cJSON_IsBool(sp))
        rc = mh_gguf_writer_set_int(v->w, "tokenizer.ggml.add_space_prefix", MH_GGUF_BOOL,
                                    cJSON_IsTrue(sp), err);
    else if (!rc && spm) {   /* llama.cpp's default (a dummy prefix) only where the folder adds one */
        const cJSON *norm = cJSON_GetObjectItemCaseSensitive(v->tok_json, "normalizer");
        const cJSON *pre = cJSON_GetObjectItemCaseSensitive(v->tok_json, "pre_tokenizer");
        bool prefix = has_type(norm, "Prepend", true) || has_type(pre, "Metaspace", true);
        rc = mh_gguf_writer_set_int(v->w, "tokenizer.ggml.add_space_prefix", MH_GGUF_BOOL, prefix, err);
    }
    return rc;
}

int mh_hf_write_vocab(const char *dir, const mh_hf_config *cfg, mh_gguf_writer *w, mh_err *err)
{
    char p[4200];
    vocab_ctx v = { .dir = dir, .cfg = cfg, .w = w, .n = cfg->hp.n_vocab };
    mh_tokenizer *t = NULL;
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    FILE *f = fopen(p, "rb");
    if (!f)
        return mh_err_set(err, MH_EIO, "%s has no tokenizer.json (a folder with only "
                          "tokenizer.model is not supported; save the tokenizer with "
                          "transformers' save_pretrained to get one)", dir);
    fclose(f);
    int rc = mh_tokenizer_from_hf(p, &t, err);
    if (!rc && !(v.tok_json = mh_hf_read_json(p, 512u << 20, err))) rc = err ? err->code : MH_EFORMAT;
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    if (!rc && (f = fopen(p, "rb"))) {
        fclose(f);
        if (!(v.tok_cfg = mh_hf_read_json(p, 64u << 20, err))) rc = err ? err->code : MH_EFORMAT;
    }
    snprintf(p, sizeof p, "%s/generation_config.json", dir);
    if (!rc && (f = fopen(p, "rb"))) {
        fclose(f);
        if (!(v.gen_cfg = mh_hf_read_json(p, 1u << 20, err))) rc = err ? err->code : MH_EFORMAT;
    }
    v.t = t;
    if (!rc) rc = add_all(&v, err);
    cJSON_Delete(v.gen_cfg);
    cJSON_Delete(v.tok_json);
    cJSON_Delete(v.tok_cfg);
    mh_tokenizer_free(t);
    return rc;
}
