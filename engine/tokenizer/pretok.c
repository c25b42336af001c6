/* pretok.c: pre-tokenizers (regex splits, PCRE2 with UTF + UCP) and text
 * normalizers (utf8proc) for the BPE and WordPiece tokenizers.
 * Layer: engine/tokenizer (pure C11 + pcre2 + utf8proc). The regex sets
 * per tokenizer.ggml.pre are those llama.cpp and the models' own
 * tokenizer.json files use; each regex splits every piece left by the
 * previous one, keeping both the matches and the text between them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "tok_internal.h"

/* ===== regex sets per pre-tokenizer name ===== */

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3 "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+" \
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2 "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+" \
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
#define RE_DSLLM_LETTERS "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293" \
    "\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1" \
    "\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd" \
    "\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d" \
    "\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc" \
    "\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc" \
    "\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139" \
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3" \
    "\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06" \
    "\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3" \
    "\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df" \
    "\U0001e900-\U0001e943]+"
#define RE_DSLLM_PUNCT "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"

typedef struct { const char *names; const char *re[6]; bool ignore_merges; } pre_set;

/* names: space-separated list of tokenizer.ggml.pre values */
static const pre_set g_pre[] = {
    { " llama3 llama-v3 llama-bpe falcon3 ", { RE_LLAMA3 }, true },
    { " dbrx smaug-bpe chatglm-bpe ", { RE_LLAMA3 }, false },
    { " qwen2 stablelm2 hunyuan deepseek-r1-qwen megrez ", { RE_QWEN2 }, false },
    { " deepseek-llm ", { "[\r\n]", RE_DSLLM_LETTERS, RE_DSLLM_PUNCT, "\\s+$", RE_CJK, "\\p{N}+" }, false },
    { " deepseek-coder ", { "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}" }, false },
    { " falcon ", { "[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]" }, false },
    { " starcoder refact command-r smollm codeshell exaone minerva ", { "\\p{N}", RE_GPT2 }, false },
    { " gpt-2 phi-2 mpt olmo jais roberta-bpe jina-es jina-de jina-v1-en jina-v2-es jina-v2-de "
      "jina-v2-code gigachat ", { RE_GPT2 }, false },
    { " poro-chat bloom gpt3-finnish ", { " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+" }, false },
    { " viking ", { " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+", "\\p{N}" }, false },
    { " default ", { "[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]" }, false },
};

int tok_pre_add(mh_tokenizer *t, const char *pattern, size_t n, int mode, mh_err *err)
{
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, n, PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return mh_err_set(err, MH_EFORMAT, "tokenizer: bad pre-tokenizer regex at %zu: %s",
                          (size_t)at, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* optional speed-up; falls back silently */
    tok_regex *r = realloc(t->re, (size_t)(t->n_re + 1) * sizeof *r);
    if (!r) {
        pcre2_code_free(re);
        return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    }
    t->re = r;
    t->re[t->n_re++] = (tok_regex){ re, mode };
    return MH_OK;
}

int tok_pre_from_name(mh_tokenizer *t, const char *name, mh_err *err)
{
    char key[80];
    if (!name || !*name) name = "default";
    snprintf(key, sizeof key, " %s ", name);
    for (size_t i = 0; i < sizeof g_pre / sizeof g_pre[0]; i++) {
        if (!strstr(g_pre[i].names, key)) continue;
        for (int k = 0; k < 6 && g_pre[i].re[k]; k++) {
            int rc = tok_pre_add(t, g_pre[i].re[k], PCRE2_ZERO_TERMINATED, PRE_ISOLATE, err);
            if (rc) return rc;
        }
        t->ignore_merges = g_pre[i].ignore_merges;
        snprintf(t->pre_name, sizeof t->pre_name, "%s", name);
        return MH_OK;
    }
    return mh_err_set(err, MH_EFORMAT, "tokenizer: unknown pre-tokenizer '%s' (tokenizer.ggml.pre)", name);
}

/* ===== splitting ===== */

typedef struct { size_t *v; size_t n, cap; } spans;   /* (start, len) pairs */

static int span_add(spans *s, size_t start, size_t len)
{
    if (!len) return MH_OK;
    if (s->n + 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        size_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) return MH_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = start;
    s->v[s->n++] = len;
    return MH_OK;
}

/* Splits subj[start, start+len) with r, appending pieces to out. */
static int split_one(const tok_regex *r, pcre2_match_data *md, const char *subj, size_t start,
                     size_t len, spans *out, mh_err *err)
{
    PCRE2_SPTR s = (PCRE2_SPTR)subj + start;
    size_t pos = 0, prev = 0;
    while (pos < len) {
        int rc = pcre2_match(r->re, s, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return mh_err_set(err, MH_EFORMAT, "tokenizer: pre-tokenizer regex failed (%d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) {          /* empty match: step over one character */
            size_t k = tok_utf8_valid(s + ms, len - ms);
            pos = ms + (k ? k : 1);
            continue;
        }
        if (span_add(out, start + prev, ms - prev)) return MH_ENOMEM;
        if (r->mode == PRE_ISOLATE && span_add(out, start + ms, me - ms)) return MH_ENOMEM;
        prev = pos = me;
    }
    return span_add(out, start + prev, len - prev);
}

/* PCRE2 in UTF mode refuses invalid UTF-8, so regexes run on a copy where
 * each bad byte is 0x1A (a symbol-class control); pieces still come from
 * the original bytes. */
int tok_pre_split(const mh_tokenizer *t, const char *text, size_t n, tok_word_fn fn,
                  void *ud, mh_err *err)
{
    if (!t->n_re) return n ? fn(ud, text, n) : MH_OK;
    int rc;
    char *clean = NULL;
    for (size_t i = 0; i < n;) {      /* find the first bad byte, copy once */
        size_t k = tok_utf8_valid((const unsigned char *)text + i, n - i);
        if (!k) {
            if (!(clean = malloc(n))) return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
            memcpy(clean, text, n);
            for (size_t j = i; j < n;) {
                size_t kk = tok_utf8_valid((const unsigned char *)text + j, n - j);
                if (!kk) { clean[j++] = 0x1A; continue; }
                j += kk;
            }
            break;
        }
        i += k;
    }
    const char *subj = clean ? clean : text;
    spans a = {0}, b = {0};
    rc = span_add(&a, 0, n) ? MH_ENOMEM : MH_OK;
    for (int r = 0; !rc && r < t->n_re; r++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re[r].re, NULL);
        if (!md) { rc = MH_ENOMEM; break; }
        b.n = 0;
        for (size_t i = 0; !rc && i < a.n; i += 2)
            rc = split_one(&t->re[r], md, subj, a.v[i], a.v[i + 1], &b, err);
        pcre2_match_data_free(md);
        spans tmp = a; a = b; b = tmp;
    }
    for (size_t i = 0; !rc && i < a.n; i += 2) rc = fn(ud, text + a.v[i], a.v[i + 1]);
    if (rc == MH_ENOMEM) mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    free(a.v); free(b.v); free(clean);
    return rc;
}

/* ===== normalizers ===== */

static int norm_unicode(int op, const char *s, size_t n, mh_tok_buf *out)
{
    int opts = UTF8PROC_STABLE;
    if (op == NORM_NFC) opts |= UTF8PROC_COMPOSE;
    else if (op == NORM_NFD) opts |= UTF8PROC_DECOMPOSE;
    else if (op == NORM_NFKC) opts |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    else opts |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    utf8proc_uint8_t *r = NULL;
    utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &r, opts);
    if (k < 0) return tok_buf_put(out, s, n);     /* invalid UTF-8: leave bytes alone */
    int rc = tok_buf_put(out, r, (size_t)k);
    free(r);
    return rc;
}

/* Lowercasing and accent stripping, character by character. */
static int norm_chars(int op, const char *s, size_t n, mh_tok_buf *out)
{
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) { if (tok_buf_put(out, s + i, 1)) return MH_ENOMEM; i++; continue; }
        i += (size_t)k;
        if (op == NORM_STRIP_ACCENTS && utf8proc_category(cp) == UTF8PROC_CATEGORY_MN) continue;
        if (op == NORM_LOWER) cp = utf8proc_tolower(cp);
        char b[4];
        if (tok_buf_put(out, b, tok_utf8_put((uint32_t)cp, b))) return MH_ENOMEM;
    }
    return MH_OK;
}

static int norm_replace(const char *a, const char *b, const char *s, size_t n, mh_tok_buf *out)
{
    size_t la = strlen(a), lb = strlen(b);
    for (size_t i = 0; i < n;) {
        if (la && i + la <= n && !memcmp(s + i, a, la)) {
            if (tok_buf_put(out, b, lb)) return MH_ENOMEM;
            i += la;
        } else {
            if (tok_buf_put(out, s + i, 1)) return MH_ENOMEM;
            i++;
        }
    }
    return MH_OK;
}

int tok_normalize(const mh_tokenizer *t, const char *s, size_t n, char **out, size_t *on,
                  mh_err *err)
{
    mh_tok_buf cur = {0}, nxt = {0};
    int rc = tok_buf_put(&cur, s, n);
    for (int i = 0; !rc && i < t->n_norm; i++) {
        const tok_norm *st = &t->norm[i];
        nxt.n = 0;
        if (st->op <= NORM_NFKD) rc = norm_unicode(st->op, cur.p, cur.n, &nxt);
        else if (st->op == NORM_LOWER || st->op == NORM_STRIP_ACCENTS) rc = norm_chars(st->op, cur.p, cur.n, &nxt);
        else if (st->op == NORM_REPLACE) rc = norm_replace(st->a, st->b, cur.p, cur.n, &nxt);
        else if (cur.n) {   /* PREPEND: only to non-empty text */
            rc = tok_buf_put(&nxt, st->a, strlen(st->a));
            if (!rc) rc = tok_buf_put(&nxt, cur.p, cur.n);
        } else rc = tok_buf_put(&nxt, "", 0);
        mh_tok_buf tmp = cur; cur = nxt; nxt = tmp;
    }
    mh_tok_buf_free(&nxt);
    if (rc) {
        mh_tok_buf_free(&cur);
        return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    }
    *out = cur.p;
    *on = cur.n;
    return MH_OK;
}
