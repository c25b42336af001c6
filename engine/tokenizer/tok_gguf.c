/* tok_gguf.c: builds a tokenizer from a GGUF's tokenizer.ggml.* metadata
 * (model, tokens, scores, token_type, merges, pre, special ids, flags).
 * Layer: engine/tokenizer (uses engine/model's GGUF reader). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"
#include "mh/gguf.h"

#define MAX_VOCAB (1 << 24)

static int load_tokens(mh_tokenizer *t, const mh_gguf *g, mh_err *err)
{
    const mh_gguf_kv *tok = mh_gguf_get_arr(g, "tokenizer.ggml.tokens", MH_GGUF_STRING);
    if (!tok) return mh_err_set(err, MH_EFORMAT, "tokenizer: GGUF has no tokenizer.ggml.tokens string array");
    if (tok->n == 0 || tok->n > MAX_VOCAB)
        return mh_err_set(err, MH_EFORMAT, "tokenizer: GGUF vocabulary of %llu tokens", (unsigned long long)tok->n);
    int32_t n = (int32_t)tok->n;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) total += mh_gguf_arr_str(tok, (uint64_t)i).len;
    if (total > UINT32_MAX) return mh_err_set(err, MH_EFORMAT, "tokenizer: vocabulary text too large");
    int rc = tok_vocab_alloc(t, n, total, err);
    if (rc) return rc;
    size_t pos = 0;
    for (int32_t i = 0; i < n; i++) {
        mh_gguf_str s = mh_gguf_arr_str(tok, (uint64_t)i);
        tok_vocab_set(t, i, s.ptr, s.len, &pos);
    }
    const mh_gguf_kv *sc = mh_gguf_get_arr(g, "tokenizer.ggml.scores", -1);
    if (sc && sc->n == tok->n && (sc->arr_type == MH_GGUF_FLOAT32 || sc->arr_type == MH_GGUF_FLOAT64))
        for (int32_t i = 0; i < n; i++) t->scores[i] = (float)mh_gguf_arr_float(sc, (uint64_t)i);
    const mh_gguf_kv *ty = mh_gguf_get_arr(g, "tokenizer.ggml.token_type", -1);
    if (ty && ty->n == tok->n && ty->arr_type != MH_GGUF_STRING)
        for (int32_t i = 0; i < n; i++) {
            int64_t a = mh_gguf_arr_int(ty, (uint64_t)i);
            t->attr[i] = (uint8_t)(a >= MH_TOKEN_NORMAL && a <= MH_TOKEN_BYTE ? a : MH_TOKEN_NORMAL);
        }
    return MH_OK;
}

/* "left right" (split at the first space after the first byte) -> ids. */
static int load_merges(mh_tokenizer *t, const mh_gguf *g, mh_err *err)
{
    const mh_gguf_kv *m = mh_gguf_get_arr(g, "tokenizer.ggml.merges", MH_GGUF_STRING);
    if (!m) return mh_err_set(err, MH_EFORMAT, "tokenizer: BPE GGUF has no tokenizer.ggml.merges");
    int rc = tok_merges_init(t, m->n, err);
    mh_tok_buf cat = {0};
    for (uint64_t i = 0; !rc && i < m->n; i++) {
        mh_gguf_str s = mh_gguf_arr_str(m, i);
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp) continue;
        size_t la = (size_t)(sp - s.ptr), lb = s.len - la - 1;
        int32_t a = tok_find(t, s.ptr, la), b = tok_find(t, sp + 1, lb);
        cat.n = 0;
        if (tok_buf_put(&cat, s.ptr, la) || tok_buf_put(&cat, sp + 1, lb)) {
            rc = mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
            break;
        }
        int32_t r = tok_find(t, cat.p, cat.n);
        if (a >= 0 && b >= 0 && r >= 0) tok_merges_put(t, a, b, (int32_t)i, r);
    }
    mh_tok_buf_free(&cat);
    return rc;
}

static int32_t special_id(const mh_tokenizer *t, const mh_gguf *g, const char *key)
{
    int64_t v;
    if (!mh_gguf_get_int(g, key, &v) || v < 0 || v >= t->n_vocab) return -1;
    return (int32_t)v;
}

/* First control token whose text is one of names, or -1. */
static int32_t find_control(const mh_tokenizer *t, const char *const *names)
{
    for (int i = 0; names[i]; i++) {
        int32_t id = tok_find(t, names[i], strlen(names[i]));
        if (id >= 0 && t->attr[id] == MH_TOKEN_CONTROL) return id;
    }
    return -1;
}

static void load_specials(mh_tokenizer *t, const mh_gguf *g)
{
    mh_tok_special *s = &t->sp;
    s->bos = special_id(t, g, "tokenizer.ggml.bos_token_id");
    s->eos = special_id(t, g, "tokenizer.ggml.eos_token_id");
    s->eot = special_id(t, g, "tokenizer.ggml.eot_token_id");
    s->eom = special_id(t, g, "tokenizer.ggml.eom_token_id");
    s->unk = special_id(t, g, "tokenizer.ggml.unknown_token_id");
    s->pad = special_id(t, g, "tokenizer.ggml.padding_token_id");
    s->sep = special_id(t, g, "tokenizer.ggml.seperator_token_id");   /* sic: GGUF's spelling */
    s->cls = special_id(t, g, "tokenizer.ggml.cls_token_id");
    s->mask = special_id(t, g, "tokenizer.ggml.mask_token_id");
    if (s->eot < 0) {
        static const char *const eot[] = { "<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>",
                                           "<|endoftext|>", NULL };
        s->eot = find_control(t, eot);
    }
    if (s->eom < 0) {
        static const char *const eom[] = { "<|eom_id|>", NULL };
        s->eom = find_control(t, eom);
    }
}

static void apply_flags(mh_tokenizer *t, const mh_gguf *g)
{
    bool b;
    t->add_bos = t->kind != MH_TOK_BPE || t->ignore_merges;    /* llama.cpp defaults */
    t->add_eos = t->kind == MH_TOK_WPM;
    t->add_space_prefix = t->kind == MH_TOK_SPM;
    if (mh_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b)) t->add_bos = b;
    if (mh_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b)) t->add_eos = b;
    if (mh_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b)) t->add_space_prefix = b;
    if (t->kind == MH_TOK_WPM) {
        if (t->sp.bos < 0) t->sp.bos = t->sp.cls;
        if (t->sp.eos < 0) t->sp.eos = t->sp.sep;
        if (t->sp.cls < 0) t->sp.cls = t->sp.bos;
        if (t->sp.sep < 0) t->sp.sep = t->sp.eos;
    }
    mh_gguf_str ct;
    if (mh_gguf_get_str(g, "tokenizer.chat_template", &ct) && (t->chat_template = malloc(ct.len + 1))) {
        memcpy(t->chat_template, ct.ptr, ct.len);
        t->chat_template[ct.len] = 0;
    }
}

static bool str_has(mh_gguf_str s, const char *needle)
{
    char low[256];
    size_t n = s.len < sizeof low - 1 ? s.len : sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)(s.ptr[i] >= 'A' && s.ptr[i] <= 'Z' ? s.ptr[i] + 32 : s.ptr[i]);
    low[n] = 0;
    return strstr(low, needle) != NULL;
}

static int strip_named(mh_tokenizer *t, const char *text, int bits, bool on)
{
    return tok_set_strip(t, mh_tokenizer_id(t, text, strlen(text)), bits, on);
}

/* Whitespace that specials swallow. GGUF does not store it: llama.cpp
 * (llama-vocab.cpp) keys it on general.name and tokenizer.ggml.pre, and so
 * do we, to tokenize chat prompts as it does: Phi-3's specials (but <unk>,
 * <s>, <|endoftext|>) eat the whitespace after them, the <mask> of
 * jina-v2 / modern-bert vocabularies the whitespace before. */
static int apply_strip(mh_tokenizer *t, const mh_gguf *g)
{
    mh_gguf_str name = { "", 0 }, pre = { "", 0 };
    mh_gguf_get_str(g, "general.name", &name);
    mh_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
    int rc = MH_OK;
    if (str_has(pre, "jina-v2-de") || str_has(pre, "jina-v2-es") || str_has(pre, "jina-v2-code")) {
        rc = strip_named(t, "<mask>", TOK_LSTRIP, true);
    } else if (str_has(name, "phi-3") || str_has(name, "phi3")) {
        for (int i = 0; !rc && i < t->n_specials; i++)
            rc = tok_set_strip(t, t->specials[i], TOK_RSTRIP, true);
        if (!rc) rc = strip_named(t, "</s>", TOK_RSTRIP, true);
        static const char *const keep[] = { "<unk>", "<s>", "<|endoftext|>", NULL };
        for (int i = 0; !rc && keep[i]; i++) rc = strip_named(t, keep[i], TOK_RSTRIP, false);
    } else if (str_has(name, "modern-bert")) {
        rc = strip_named(t, "[MASK]", TOK_LSTRIP, true);
    }
    return rc;
}

static int set_kind(mh_tokenizer *t, const mh_gguf *g, mh_err *err)
{
    mh_gguf_str model;
    if (!mh_gguf_get_str(g, "tokenizer.ggml.model", &model))
        return mh_err_set(err, MH_EFORMAT, "tokenizer: GGUF has no tokenizer (tokenizer.ggml.model missing)");
    if (model.len == 5 && !memcmp(model.ptr, "llama", 5)) {
        t->kind = MH_TOK_SPM;
        t->use_scores = t->escape_spaces = t->byte_fallback = true;
        snprintf(t->pre_name, sizeof t->pre_name, "spm");
    } else if (model.len == 4 && !memcmp(model.ptr, "gpt2", 4)) {
        t->kind = MH_TOK_BPE;
        t->byte_level = true;
    } else if (model.len == 4 && !memcmp(model.ptr, "bert", 4)) {
        t->kind = MH_TOK_WPM;
        strcpy(t->wp_word_prefix, "\xE2\x96\x81");   /* GGUF marks word starts, not continuations */
        t->wp_lower = t->wp_strip_accents = true;
        snprintf(t->pre_name, sizeof t->pre_name, "bert");
    } else {
        return mh_err_set(err, MH_EFORMAT, "tokenizer: unsupported tokenizer model '%.*s'",
                          (int)(model.len > 40 ? 40 : model.len), model.ptr);
    }
    return MH_OK;
}

static int build(mh_tokenizer *t, const mh_gguf *g, mh_err *err)
{
    int rc = set_kind(t, g, err);
    if (!rc) rc = load_tokens(t, g, err);
    if (!rc) rc = tok_vocab_finish(t, err);
    if (!rc && t->kind == MH_TOK_BPE) {
        mh_gguf_str pre = { "default", 7 };
        char name[64];
        mh_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
        snprintf(name, sizeof name, "%.*s", (int)(pre.len > 60 ? 60 : pre.len), pre.ptr);
        rc = tok_pre_from_name(t, name, err);
        if (!rc) rc = load_merges(t, g, err);
    }
    if (rc) return rc;
    load_specials(t, g);
    apply_flags(t, g);
    if (apply_strip(t, g) != MH_OK) return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    t->strip_first_space = (t->kind == MH_TOK_SPM && t->add_space_prefix) || t->kind == MH_TOK_WPM;
    return MH_OK;
}

int mh_tokenizer_from_gguf(const mh_gguf *g, mh_tokenizer **out, mh_err *err)
{
    *out = NULL;
    mh_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    int rc = build(t, g, err);
    if (rc) {
        mh_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return MH_OK;
}
