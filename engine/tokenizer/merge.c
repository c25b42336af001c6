/* merge.c: the merge loop shared by SentencePiece-BPE and byte-level BPE.
 * Layer: engine/tokenizer (pure C11). Symbols form a linked list over the
 * word; candidate pairs sit in a binary heap (best first, leftmost on ties,
 * as llama.cpp and sentencepiece order them), so a word of n symbols takes
 * O(n log n) rather than the O(n^2) of rescanning after every merge. */
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"

void tok_merge_ctx_free(tok_merge_ctx *c)
{
    free(c->sym);
    free(c->heap);
    memset(c, 0, sizeof *c);
}

/* ===== heap of candidate merges ===== */

static bool before(const tok_bigram *a, const tok_bigram *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static int heap_push(tok_merge_ctx *c, tok_bigram bg)
{
    if (c->nheap == c->capheap) {
        size_t cap = c->capheap ? c->capheap * 2 : 256;
        tok_bigram *h = realloc(c->heap, cap * sizeof *h);
        if (!h) return MH_ENOMEM;
        c->heap = h;
        c->capheap = cap;
    }
    size_t i = c->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&bg, &c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = bg;
    return MH_OK;
}

static tok_bigram heap_pop(tok_merge_ctx *c)
{
    tok_bigram top = c->heap[0], last = c->heap[--c->nheap];
    size_t i = 0, n = c->nheap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const tok_bigram *best = &last;
        if (l < n && before(&c->heap[l], best)) { m = l; best = &c->heap[l]; }
        if (r < n && before(&c->heap[r], best)) m = r;
        if (m == i) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n) c->heap[i] = last;
    return top;
}

/* ===== symbols ===== */

static int add_sym(tok_merge_ctx *c, int32_t start, int32_t len, int32_t id)
{
    if (c->nsym == c->capsym) {
        size_t cap = c->capsym ? c->capsym * 2 : 256;
        tok_sym *s = realloc(c->sym, cap * sizeof *s);
        if (!s) return MH_ENOMEM;
        c->sym = s;
        c->capsym = cap;
    }
    int32_t i = (int32_t)c->nsym++;
    c->sym[i] = (tok_sym){ start, len, i - 1, -1, id };
    if (i > 0) c->sym[i - 1].next = i;
    return MH_OK;
}

/* Splits w into initial symbols: bytes for byte-level BPE, else UTF-8
 * characters (an invalid byte is a symbol of its own). */
static int init_syms(const mh_tokenizer *t, tok_merge_ctx *c, const char *w, size_t n)
{
    const unsigned char *u = (const unsigned char *)w;
    c->nsym = 0;
    c->nheap = 0;
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        int32_t id;
        if (t->byte_level) {
            id = t->byte_tok[u[i]];
        } else {
            k = tok_utf8_valid(u + i, n - i);
            if (!k) k = 1;
            id = tok_find(t, w + i, k);
        }
        if (add_sym(c, (int32_t)i, (int32_t)k, id)) return MH_ENOMEM;
        i += k;
    }
    return MH_OK;
}

/* Queues the pair (l, r) when the vocabulary can merge it. */
static int try_pair(const mh_tokenizer *t, tok_merge_ctx *c, const char *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return MH_OK;
    const tok_sym *a = &c->sym[l], *b = &c->sym[r];
    tok_bigram bg = { 0, l, r, a->len + b->len, -1 };
    if (t->use_scores) {
        if (bg.size > t->max_token_len) return MH_OK;
        bg.id = tok_find(t, w + a->start, (size_t)bg.size);
        if (bg.id < 0) return MH_OK;
        bg.key = -(double)t->scores[bg.id];      /* highest score first */
    } else {
        const tok_merge *m = tok_merges_get(t, a->id, b->id);
        if (!m) return MH_OK;
        bg.key = m->rank;                         /* lowest rank first */
        bg.id = m->result;
    }
    return heap_push(c, bg);
}

static int run_merges(const mh_tokenizer *t, tok_merge_ctx *c, const char *w)
{
    for (int32_t i = 1; i < (int32_t)c->nsym; i++)
        if (try_pair(t, c, w, i - 1, i)) return MH_ENOMEM;
    while (c->nheap) {
        tok_bigram bg = heap_pop(c);
        tok_sym *a = &c->sym[bg.left], *b = &c->sym[bg.right];
        /* stale: one side was merged away, or the pair no longer spans the
         * same bytes (starts never move, so equal size means equal text) */
        if (a->len == 0 || b->len == 0 || a->next != bg.right || a->len + b->len != bg.size)
            continue;
        a->len += b->len;
        a->id = bg.id;
        b->len = 0;
        a->next = b->next;
        if (b->next >= 0) c->sym[b->next].prev = bg.left;
        if (try_pair(t, c, w, a->prev, bg.left) || try_pair(t, c, w, bg.left, a->next))
            return MH_ENOMEM;
    }
    return MH_OK;
}

/* A symbol with no token of its own: its bytes as byte tokens, else unk.
 * Byte-level BPE drops a byte its byte map lacks (SmolLM2 has no token for
 * 0x04, for instance), as llama.cpp does, rather than emit unk. */
static int emit_fallback(const mh_tokenizer *t, const char *s, int32_t n, mh_tok_ids *out)
{
    for (int32_t i = 0; i < n; i++) {
        int32_t id = t->byte_tok[(unsigned char)s[i]];
        if (id < 0 && !t->byte_level) id = tok_find(t, s + i, 1);
        if (id < 0) {
            if (t->sp.unk < 0 || t->byte_level) continue;   /* nothing to stand for it */
            if (tok_ids_push(out, t->sp.unk)) return MH_ENOMEM;
            if (!t->byte_fallback) return MH_OK;  /* one unk per symbol */
            continue;
        }
        if (tok_ids_push(out, id)) return MH_ENOMEM;
    }
    return MH_OK;
}

#define MARK "\xE2\x96\x81"           /* U+2581, SentencePiece's visible space */

/* Merges one piece of a word and appends its ids. */
static int merge_piece(const mh_tokenizer *t, tok_merge_ctx *c, const char *w, size_t n,
                       mh_tok_ids *out, mh_err *err)
{
    int rc = init_syms(t, c, w, n);
    if (!rc) rc = run_merges(t, c, w);
    for (int32_t i = 0; !rc && c->nsym && i >= 0; i = c->sym[i].next) {
        const tok_sym *s = &c->sym[i];
        rc = s->id >= 0 ? tok_ids_push(out, s->id) : emit_fallback(t, w + s->start, s->len, out);
    }
    return rc ? mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory") : MH_OK;
}

int tok_merge_word(const mh_tokenizer *t, tok_merge_ctx *c, const char *w, size_t n,
                   mh_tok_ids *out, mh_err *err)
{
    if (n == 0) return MH_OK;
    if (n > INT32_MAX / 2)
        return mh_err_set(err, MH_EINVAL, "tokenizer: text of %zu bytes is too long", n);
    if (t->ignore_merges && !t->byte_level) {   /* byte-level: checked by the caller */
        int32_t id = tok_find(t, w, n);
        if (id >= 0) return tok_ids_push(out, id) ? mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory") : MH_OK;
    }
    int rc = MH_OK;
    if (!t->mark_splits || t->byte_level) return merge_piece(t, c, w, n, out, err);
    /* cut before each U+2581 that follows another character (see mark_splits) */
    size_t start = 0;
    for (size_t i = 3; !rc && i + 3 <= n; i++) {
        if (memcmp(w + i, MARK, 3) || !memcmp(w + i - 3, MARK, 3)) continue;
        rc = merge_piece(t, c, w + start, i - start, out, err);
        start = i;
        i += 2;
    }
    return rc ? rc : merge_piece(t, c, w + start, n - start, out, err);
}
