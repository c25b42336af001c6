/* wordpiece.c: BERT's WordPiece: clean, lowercase and strip accents (NFD,
 * drop Mn), split on whitespace and punctuation (CJK ideographs alone),
 * then greedy longest-match-first pieces; a word that cannot be covered
 * becomes [UNK]. Layer: engine/tokenizer (pure C11 + utf8proc). */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "tok_internal.h"

#define MAX_WORD_CHARS 100      /* longer words are [UNK], as in BERT */

static bool is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_space(int32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
           utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

static bool is_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r') return false;
    int cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF;
}

static bool is_punct(int32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return true;
    int cat = utf8proc_category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

typedef struct {
    const mh_tokenizer *t;
    mh_tok_ids *out;
    mh_tok_buf word;     /* current word, normalized UTF-8 */
    size_t nchars;
    mh_tok_buf probe;    /* prefix + candidate piece */
} wp_ctx;

/* Longest vocabulary piece of w[start..) (with prefix); its length or 0. */
static size_t longest_piece(wp_ctx *c, const char *prefix, const char *w, size_t start, size_t n,
                            int32_t *id)
{
    size_t pl = strlen(prefix);
    size_t end = n - start > (size_t)c->t->max_token_len ? start + (size_t)c->t->max_token_len : n;
    while (end > start) {
        c->probe.n = 0;
        if (tok_buf_put(&c->probe, prefix, pl) || tok_buf_put(&c->probe, w + start, end - start)) return 0;
        if ((*id = tok_find(c->t, c->probe.p, c->probe.n)) >= 0) return end - start;
        do end--; while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80);
    }
    return 0;
}

static int flush_word(wp_ctx *c)
{
    const mh_tokenizer *t = c->t;
    const char *w = c->word.p;
    size_t n = c->word.n, first = c->out->n;
    if (!n) return MH_OK;
    bool ok = c->nchars <= MAX_WORD_CHARS;
    for (size_t start = 0; ok && start < n;) {
        int32_t id = -1;
        size_t k = longest_piece(c, start ? t->wp_cont_prefix : t->wp_word_prefix, w, start, n, &id);
        if (!k) { ok = false; break; }
        if (tok_ids_push(c->out, id)) return MH_ENOMEM;
        start += k;
    }
    if (!ok) {
        c->out->n = first;
        if (t->sp.unk >= 0 && tok_ids_push(c->out, t->sp.unk)) return MH_ENOMEM;
    }
    c->word.n = 0;
    c->nchars = 0;
    return MH_OK;
}

static int add_char(wp_ctx *c, int32_t cp)
{
    char b[4];
    c->nchars++;
    return tok_buf_put(&c->word, b, tok_utf8_put((uint32_t)cp, b));
}

/* One input character after cleaning: lowercase, decompose, classify. */
static int feed(wp_ctx *c, int32_t cp)
{
    const mh_tokenizer *t = c->t;
    if (cp == 0 || cp == 0xFFFD || is_control(cp)) return MH_OK;
    if (is_space(cp)) return flush_word(c);
    if (t->wp_lower) cp = utf8proc_tolower(cp);
    utf8proc_int32_t parts[8];
    utf8proc_ssize_t np = 1;
    parts[0] = cp;
    if (t->wp_strip_accents) {
        int last = 0;
        np = utf8proc_decompose_char(cp, parts, 8, UTF8PROC_DECOMPOSE, &last);
        if (np < 1 || np > 8) { parts[0] = cp; np = 1; }
    }
    for (utf8proc_ssize_t i = 0; i < np; i++) {
        int32_t p = parts[i];
        if (t->wp_strip_accents && utf8proc_category(p) == UTF8PROC_CATEGORY_MN) continue;
        if (is_punct(p) || is_cjk(p)) {
            if (flush_word(c) || add_char(c, p) || flush_word(c)) return MH_ENOMEM;
        } else if (add_char(c, p)) return MH_ENOMEM;
    }
    return MH_OK;
}

int tok_wpm_encode(const mh_tokenizer *t, const char *s, size_t n, mh_tok_ids *out, mh_err *err)
{
    wp_ctx c = { t, out, {0}, 0, {0} };
    int rc = MH_OK;
    for (size_t i = 0; !rc && i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) { i++; continue; }       /* invalid UTF-8: dropped like U+FFFD */
        i += (size_t)k;
        rc = feed(&c, cp);
    }
    if (!rc) rc = flush_word(&c);
    mh_tok_buf_free(&c.word);
    mh_tok_buf_free(&c.probe);
    return rc ? mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory") : MH_OK;
}
