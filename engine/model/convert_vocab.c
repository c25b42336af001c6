/* convert_vocab.c: the tokenizer.* GGUF keys of a Hugging Face folder, as
 * llama.cpp's converter writes them (its SpecialVocab and _set_vocab_gpt2 /
 * _set_vocab_llama_hf / BertModel.set_vocab), from tokenizer.json (or a
 * WordPiece vocab.txt) + tokenizer_config.json.
 * Layer: engine/model (pure C11 + cJSON, OpenSSL's sha256; mh/tokenizer.h
 * reads the vocabulary). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include <openssl/evp.h>
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

/* ===== WordPiece (bert, nomic-bert) =====
 * llama.cpp's BertModel.set_vocab: the ids of HF's tokenizer with
 * get_vocab_base's types ([PAD<i>] for gaps, CONTROL for special added
 * tokens), spelt the GGUF "bert" way, then SpecialVocab's ids and flags. */

typedef struct wp_vocab {
    char **tok;                  /* (n) HF spellings, NULL for gaps; owned */
    int32_t *type;               /* (n) MH_TOKEN_* */
    int64_t n;
    const cJSON *added;          /* tokenizer.json added_tokens, or NULL (vocab.txt) */
} wp_vocab;

/* The "phantom space" spelling: a [BRACKETED] token stays, a "##"
 * continuation drops its marks, a word start gains U+2581. */
static char *phantom(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n + 4);
    if (!o) return NULL;
    if (n > 1 && s[0] == '[' && s[n - 1] == ']') memcpy(o, s, n + 1);
    else if (!strncmp(s, "##", 2)) memcpy(o, s + 2, n - 1);
    else memcpy(o, "\xE2\x96\x81", 3), memcpy(o + 3, s, n + 1);
    return o;
}

/* get_vocab_base's does_token_look_special, for added tokens not marked special. */
static bool looks_special(const char *t)
{
    size_t n = strlen(t);
    return !strcmp(t, "<pad>") || !strcmp(t, "<mask>") || !strcmp(t, "<2mass>") || !strcmp(t, "[@BOS@]") ||
           (n >= 4 && !strncmp(t, "<|", 2) && !strcmp(t + n - 2, "|>")) ||
           (n >= 8 && !strncmp(t, "<\xEF\xBD\x9C", 4) && !strcmp(t + n - 4, "\xEF\xBD\x9C>")) ||
           (n >= 8 && !strncmp(t, "<unused", 7) && t[n - 1] == '>');
}

static int wp_set(wp_vocab *wv, int64_t id, const char *s, int32_t type, const char *src, mh_err *err)
{
    if (id < 0 || id >= wv->n)
        return mh_err_set(err, MH_EFORMAT, "%s: token '%.40s' has id %lld but config.json's vocab_size "
                          "is %lld", src, s, (long long)id, (long long)wv->n);
    char *d = strdup(s);
    if (!d) return mh_err_set(err, MH_ENOMEM, "out of memory");
    free(wv->tok[id]);
    wv->tok[id] = d;
    wv->type[id] = type;
    return MH_OK;
}

/* GGUF "bert" vocabularies are lowercased and stripped of accents by every
 * reader (llama.cpp's WPM tokenizer): a tokenizer that keeps either is refused. */
static int wp_check_json(const vocab_ctx *v, const cJSON *model, mh_err *err)
{
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(v->tok_json, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(v->tok_json, "pre_tokenizer");
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "type"));
    const char *cp = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix"));
    const char *nt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(norm, "type"));
    const char *pt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pre, "type"));
    const cJSON *lower = cJSON_GetObjectItemCaseSensitive(norm, "lowercase");
    const cJSON *strip = cJSON_GetObjectItemCaseSensitive(norm, "strip_accents");
    if (!type || strcmp(type, "WordPiece"))
        return mh_err_set(err, MH_EFORMAT, "%s/tokenizer.json model.type '%s' is not supported for %s "
                          "(WordPiece is)", v->dir, type ? type : "?", v->cfg->cls);
    if (cp && strcmp(cp, "##"))
        return mh_err_set(err, MH_EFORMAT, "%s/tokenizer.json model.continuing_subword_prefix '%s' is "
                          "not supported (GGUF bert vocabularies are written from \"##\")", v->dir, cp);
    if (!nt || strcmp(nt, "BertNormalizer") || cJSON_IsFalse(lower) || cJSON_IsFalse(strip))
        return mh_err_set(err, MH_EFORMAT, "%s/tokenizer.json normalizer%s must lowercase and strip "
                          "accents (a GGUF bert vocabulary cannot say otherwise)", v->dir,
                          !nt || strcmp(nt, "BertNormalizer") ? ".type" : cJSON_IsFalse(lower) ? ".lowercase"
                          : ".strip_accents");
    if (pt && strcmp(pt, "BertPreTokenizer"))
        return mh_err_set(err, MH_EFORMAT, "%s/tokenizer.json pre_tokenizer.type '%s' is not supported "
                          "for %s (BertPreTokenizer is)", v->dir, pt, v->cfg->cls);
    return MH_OK;
}

static int wp_from_json(vocab_ctx *v, wp_vocab *wv, mh_err *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(v->tok_json, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *e;
    int rc = wp_check_json(v, model, err);
    if (!rc && !cJSON_IsObject(vocab))
        rc = mh_err_set(err, MH_EFORMAT, "%s/tokenizer.json has no model.vocab object", v->dir);
    const cJSON *list = rc ? NULL : vocab;
    cJSON_ArrayForEach(e, list) {
        if (!cJSON_IsNumber(e) || (rc = wp_set(wv, (int64_t)e->valuedouble, e->string, MH_TOKEN_NORMAL,
                                               "tokenizer.json", err)))
            return rc ? rc : mh_err_set(err, MH_EFORMAT, "%s/tokenizer.json: bad id for '%.40s'", v->dir, e->string);
    }
    wv->added = cJSON_GetObjectItemCaseSensitive(v->tok_json, "added_tokens");
    list = rc ? NULL : wv->added;
    cJSON_ArrayForEach(e, list) {
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "content"));
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!s || !cJSON_IsNumber(id)) continue;
        bool special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) || looks_special(s);
        if ((rc = wp_set(wv, (int64_t)id->valuedouble, s, special ? MH_TOKEN_CONTROL : MH_TOKEN_USER_DEFINED,
                         "tokenizer.json added_tokens", err)))
            break;
    }
    return rc;
}

/* The name tokenizer_config.json gives a special token, or BERT's default. */
static const char *wp_special_name(const vocab_ctx *v, int i)
{
    static const char *const def[] = { NULL, NULL, "[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]" };
    static const char *const typ[] = { "bos", "eos", "unk", "sep", "pad", "cls", "mask" };
    char k[32];
    snprintf(k, sizeof k, "%s_token", typ[i]);
    const char *s = tc_content(v->tok_cfg, k);
    return s ? s : v->tok_json ? NULL : def[i];
}

/* vocab.txt (no tokenizer.json): one token per line, id = line number, as
 * BertTokenizer reads it; its special tokens are CONTROL. */
static int wp_from_txt(vocab_ctx *v, wp_vocab *wv, mh_err *err)
{
    char p[4200], *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t id = 0;
    int rc = MH_OK;
    const cJSON *dl = cJSON_GetObjectItemCaseSensitive(v->tok_cfg, "do_lower_case");
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(v->tok_cfg, "strip_accents");
    if (cJSON_IsFalse(dl) || cJSON_IsFalse(sa))
        return mh_err_set(err, MH_EFORMAT, "%s/tokenizer_config.json %s is false: a GGUF bert vocabulary "
                          "is always lowercased and stripped of accents", v->dir,
                          cJSON_IsFalse(dl) ? "do_lower_case" : "strip_accents");
    snprintf(p, sizeof p, "%s/vocab.txt", v->dir);
    FILE *f = fopen(p, "rb");
    if (!f) return mh_err_set(err, MH_EIO, "%s has neither tokenizer.json nor vocab.txt", v->dir);
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        if (len && line[len - 1] == '\n') line[len - 1] = 0;   /* rstrip("\n"), as transformers */
        rc = wp_set(wv, id++, line, MH_TOKEN_NORMAL, "vocab.txt", err);
    }
    free(line);
    fclose(f);
    for (int i = 0; i < 7 && !rc; i++) {
        const char *s = wp_special_name(v, i);
        for (int64_t k = 0; s && k < wv->n; k++)
            if (wv->tok[k] && !strcmp(wv->tok[k], s)) wv->type[k] = MH_TOKEN_CONTROL;
    }
    return rc;
}

/* SpecialVocab: tokenizer_config's <typ>_token found among the added
 * tokens, else config.json's <typ>_token_id. Without tokenizer.json the
 * name is looked up in vocab.txt (llama.cpp would fall back to its
 * defaults 101/102/100/0/103, BERT's own ids). */
static int64_t wp_special_id(const vocab_ctx *v, const wp_vocab *wv, int i)
{
    const char *s = wp_special_name(v, i);
    const cJSON *e;
    const cJSON *list = s ? wv->added : NULL;
    cJSON_ArrayForEach(e, list) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "content"));
        if (c && !strcmp(c, s) && cJSON_IsNumber(id)) return id->valuedouble < (double)wv->n ? (int64_t)id->valuedouble : -1;
    }
    for (int64_t k = 0; s && !wv->added && k < wv->n; k++)
        if (wv->tok[k] && !strcmp(wv->tok[k], s)) return k;
    const int64_t from_cfg[] = { v->cfg->bos, v->cfg->eos, v->cfg->unk, -1, v->cfg->pad, -1, -1 };
    return from_cfg[i] < wv->n ? from_cfg[i] : -1;
}

/* llama.cpp names the pre-tokenizer by a hash of the ids HF's tokenizer
 * gives its check text; for WordPiece the name is only a label (its WPM
 * reader ignores it). The later of two equal hashes wins, as in its chain
 * of ifs: bge-small's vocabulary comes out as "jina-v2-en". */
static const char *wp_pre_name(const char *dir, mh_err *err)   /* NULL: err set */
{
    static const char chk[] =   /* convert_hf_to_gguf.py's chktxt, UTF-8 */
        "\x0a \x0a\x0a \x0a\x0a\x0a \x09 \x09\x09 \x09\x0a  \x0a   \x0a    \x0a     \x0a\xf0\x9f\x9a"
        "\x80 (normal) \xf0\x9f\x98\xb6\xe2\x80\x8d\xf0\x9f\x8c\xab\xef\xb8\x8f (multiple emojis con"
        "catenated) \xe2\x9c\x85 \xf0\x9f\xa6\x99\xf0\x9f\xa6\x99 3 33 333 3333 33333 333333 3333333"
        " 33333333 3.3 3..3 3...3 \xe1\x9e\x80\xe1\x9e\xb6\xe1\x9e\x93\xe1\x9f\x8b\xe1\x9e\x8f\xe1\x9f"
        "\x82\xe1\x9e\x96\xe1\x9e\xb7\xe1\x9e\x9f\xe1\x9f\x81\xe1\x9e\x9f\xe1\x9e\xa2\xe1\x9e\xb6\xe1"
        "\x9e\x85\xf0\x9f\x98\x81 \x3f\xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8""apple\xe5\xb7\xa5\xe4\xbd"
        "\x9c""1314151\xe5\xa4\xa9\xef\xbd\x9e ------======= \xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe \xd0\xbd"
        "\xd0\xb0 \xd0\x91\xd1\x8a\xd0\xbb\xd0\xb3\xd0\xb0\xd1\x80\xd1\x81\xd0\xba\xd0\xb8 ''''''```"
        "````\x22\x22\x22\x22......!!!!!!\x3f\x3f\x3f\x3f\x3f\x3f I've been 'told he's there, 'RE yo"
        "u sure\x3f 'M not sure I'll make it, 'D you like some tea\x3f We'Ve a'lL";
    static const char *const known[][2] = {
        { "0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f", "jina-v2-en" },
        { "8e62295832751ca1e8f92f2226f403dea30dc5165e448b5bfa05af5340c64ec7", "bert-bge-large" },
        { "c7699093ba4255a91e702aa38a596aa81669f3525dae06c2953267dde580f448", "jina-v1-en" },
    };
    char p[4200], hex[65] = "";
    mh_tokenizer *t = NULL;
    mh_tok_ids ids = { 0 };
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    int rc = mh_tokenizer_from_hf(p, &t, err);
    if (!rc) rc = mh_tokenizer_encode(t, chk, sizeof chk - 1, NULL, &ids, err);
    char *s = rc ? NULL : malloc(ids.n * 13 + 3);
    size_t n = 0;
    if (!rc && !s) rc = mh_err_set(err, MH_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < ids.n; i++)    /* Python's str() of the id list */
        n += (size_t)sprintf(s + n, "%s%d", i ? ", " : "[", ids.v[i]);
    if (!rc) n += (size_t)sprintf(s + n, "%s", ids.n ? "]" : "[]");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdl = 0;
    if (!rc && EVP_Digest(s, n, md, &mdl, EVP_sha256(), NULL) == 1)
        for (unsigned i = 0; i < mdl && i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    free(s);
    mh_tok_ids_free(&ids);
    mh_tokenizer_free(t);
    if (rc) return NULL;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(hex, known[i][0])) return known[i][1];
    return "default";          /* llama.cpp's converter refuses a vocabulary it does not know */
}

static int wp_write(vocab_ctx *v, wp_vocab *wv, mh_err *err)
{
    static const char *const gk[] = { "bos", "eos", "unknown", "seperator", "padding", "cls", "mask" };
    const int64_t n = wv->n;
    char **strs = calloc((size_t)n, sizeof *strs);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    int rc = !strs || !lens ? mh_err_set(err, MH_ENOMEM, "out of memory") : MH_OK;
    for (int64_t i = 0; i < n && !rc; i++) {
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%lld]", (long long)i);
        if (!wv->tok[i]) wv->type[i] = MH_TOKEN_UNUSED;
        if (!(strs[i] = phantom(wv->tok[i] ? wv->tok[i] : pad))) rc = mh_err_set(err, MH_ENOMEM, "out of memory");
        else lens[i] = strlen(strs[i]);
    }
    const char *pre = rc || !v->tok_json ? "default" : wp_pre_name(v->dir, err);
    if (!pre) rc = err ? err->code : MH_EFORMAT;
    if (!rc) rc = set_str(v->w, "tokenizer.ggml.model", "bert", err);
    if (!rc) rc = set_str(v->w, "tokenizer.ggml.pre", pre, err);
    if (!rc) rc = mh_gguf_writer_set_arr_str(v->w, "tokenizer.ggml.tokens", (const char *const *)strs, lens,
                                             (uint64_t)n, err);
    if (!rc) rc = mh_gguf_writer_set_arr(v->w, "tokenizer.ggml.token_type", MH_GGUF_INT32, wv->type,
                                         (uint64_t)n, err);
    for (int i = 0; i < 7 && !rc; i++) {
        int64_t id = wp_special_id(v, wv, i);
        char k[64];
        snprintf(k, sizeof k, "tokenizer.ggml.%s_token_id", gk[i]);
        if (id >= 0) rc = mh_gguf_writer_set_int(v->w, k, MH_GGUF_UINT32, id, err);
    }
    for (int i = 0; i < 2 && !rc; i++) {    /* the GGUF writer has keys for these two only */
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(v->tok_cfg, i ? "add_eos_token" : "add_bos_token");
        if (cJSON_IsBool(b))
            rc = mh_gguf_writer_set_int(v->w, i ? "tokenizer.ggml.add_eos_token" : "tokenizer.ggml.add_bos_token",
                                        MH_GGUF_BOOL, cJSON_IsTrue(b), err);
    }
    if (!rc) rc = add_template(v, err);
    for (int64_t i = 0; strs && i < n; i++) free(strs[i]);
    free(strs);
    free(lens);
    return rc;
}

/* dir's tokenizer.json (else vocab.txt) + tokenizer_config.json as a bert vocabulary. */
static int write_wordpiece(const char *dir, const mh_hf_config *cfg, mh_gguf_writer *w, mh_err *err)
{
    char p[4200];
    vocab_ctx v = { .dir = dir, .cfg = cfg, .w = w, .n = cfg->hp.n_vocab };
    wp_vocab wv = { .n = cfg->hp.n_vocab };
    wv.tok = calloc((size_t)wv.n, sizeof *wv.tok);
    wv.type = calloc((size_t)wv.n, sizeof *wv.type);
    int rc = !wv.tok || !wv.type ? mh_err_set(err, MH_ENOMEM, "out of memory") : MH_OK;
    FILE *f;
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (!rc && (f = fopen(p, "rb"))) {
        fclose(f);
        if (!(v.tok_json = mh_hf_read_json(p, 512u << 20, err))) rc = err ? err->code : MH_EFORMAT;
    }
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    if (!rc && (f = fopen(p, "rb"))) {
        fclose(f);
        if (!(v.tok_cfg = mh_hf_read_json(p, 64u << 20, err))) rc = err ? err->code : MH_EFORMAT;
    }
    if (!rc) rc = v.tok_json ? wp_from_json(&v, &wv, err) : wp_from_txt(&v, &wv, err);
    if (!rc) rc = wp_write(&v, &wv, err);
    for (int64_t i = 0; wv.tok && i < wv.n; i++) free(wv.tok[i]);
    free(wv.tok);
    free(wv.type);
    cJSON_Delete(v.tok_json);
    cJSON_Delete(v.tok_cfg);
    return rc;
}

int mh_hf_write_vocab(const char *dir, const mh_hf_config *cfg, mh_gguf_writer *w, mh_err *err)
{
    if (cfg->hp.encoder) return write_wordpiece(dir, cfg, w, err);   /* bert, nomic-bert */
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
