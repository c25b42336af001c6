/* grammar.c: the grammar matcher: a set of pushdown stacks over the rules of
 * grammar_internal.h, advanced one byte at a time, and the per-step token
 * mask computed by walking a trie of the vocabulary's bytes (shared prefixes
 * are stepped once). Layer: engine/sample (pure C11).
 * Stacks are linked lists of nodes (pos, sub-state, parent) in bump arenas,
 * so a byte step shares everything below the top and backtracking in the
 * trie walk is an arena release. See docs/grammar.md. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mh/grammar.h"
#include "grammar_internal.h"

#define SET_MAX 512          /* most live stacks (ambiguity bound) */
#define EXPAND_MAX 256       /* rule expansions without input: left recursion */
#define CHUNK (64 * 1024)
/* GE_STRN's node sub holds (characters done << 4) | str_step state. */
#define CHAR_STATE(sub) ((sub) & 15)

/* ===== arena ===== */

typedef struct gnode { int32_t pos, sub; struct gnode *parent; } gnode;

typedef struct arena { char **chunk; int n, cap, cur; size_t used; } arena;
typedef struct amark { int cur; size_t used; } amark;

static void *arena_alloc(arena *a, size_t sz)
{
    if (a->n == 0 || a->used + sz > CHUNK) {
        if (a->n > 0) a->cur++;
        if (a->cur >= a->n) {
            if (a->n == a->cap) {
                int nc = a->cap ? a->cap * 2 : 8;
                char **c = realloc(a->chunk, sizeof *c * (size_t)nc);
                if (!c) return NULL;
                a->chunk = c;
                a->cap = nc;
            }
            if (!(a->chunk[a->n] = malloc(CHUNK))) return NULL;
            a->n++;
        }
        a->used = 0;
    }
    void *p = a->chunk[a->cur] + a->used;
    a->used += sz;
    return p;
}

static amark arena_mark(const arena *a) { return (amark){ a->cur, a->used }; }
static void arena_release(arena *a, amark m) { a->cur = m.cur; a->used = m.used; }
static void arena_reset(arena *a) { a->cur = 0; a->used = 0; }

static void arena_free(arena *a)
{
    for (int i = 0; i < a->n; i++) free(a->chunk[i]);
    free(a->chunk);
    memset(a, 0, sizeof *a);
}

/* ===== grammar object ===== */

typedef struct gset { gnode **v; int n; bool accept; } gset;
typedef struct tnode { int32_t child, next, tok; unsigned char byte; } tnode;

enum { TOK_USABLE = 1, TOK_PLAIN = 2, TOK_EOG = 4 };

struct mh_grammar {
    gr_rules r;
    int32_t root;
    int32_t *alt;            /* alternatives' element offsets, per rule from alt_first */
    int32_t *alt_first;      /* (n_rules + 1) */
    /* vocabulary */
    int32_t n_tok;
    uint8_t *flag;           /* (n_tok) TOK_* */
    uint16_t *nchar;         /* (n_tok) characters of a plain token */
    uint32_t *off;           /* (n_tok + 1) into bytes */
    unsigned char *bytes;
    int32_t *tok_next;       /* (n_tok) next token with the same bytes */
    tnode *trie;
    int32_t n_trie, cap_trie, root_plain, root_other;
    uint64_t *plain_bits, *allowed;   /* (words) */
    int32_t words, max_len;
    /* state */
    arena st[2], scratch, *alloc;
    int cur_st;
    gset state;
    gnode **lvl;             /* (n_lvl * SET_MAX) stack sets per trie depth */
    int n_lvl;
    int bad;                 /* MH_E* raised inside a step */
    bool finished;
    char last_err[256];
};

static int gfail(mh_grammar *g, mh_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->last_err, sizeof g->last_err, fmt, ap);
    va_end(ap);
    return mh_err_set(err, code, "grammar: %s", g->last_err);
}

/* ===== stepping ===== */

static gnode *node(mh_grammar *g, int32_t pos, int32_t sub, gnode *parent)
{
    gnode *n = arena_alloc(g->alloc, sizeof *n);
    if (!n) { g->bad = MH_ENOMEM; return NULL; }
    n->pos = pos;
    n->sub = sub;
    n->parent = parent;
    return n;
}

static bool is_end(const mh_grammar *g, int32_t pos)
{
    int32_t k = g->r.el[pos].kind;
    return k == GE_END || k == GE_ALT;
}

/* The stack that continues at pos, below which lies parent. */
static gnode *cont(mh_grammar *g, int32_t pos, gnode *parent)
{
    return is_end(g, pos) ? parent : node(g, pos, 0, parent);
}

static bool same_stack(const gnode *a, const gnode *b)
{
    while (a && b) {
        if (a == b) return true;
        if (a->pos != b->pos || a->sub != b->sub) return false;
        a = a->parent;
        b = b->parent;
    }
    return a == b;
}

static void add(mh_grammar *g, gset *out, gnode *n)
{
    for (int i = 0; i < out->n; i++) if (same_stack(out->v[i], n)) return;
    if (out->n == SET_MAX) { g->bad = MH_ERANGE; return; }
    out->v[out->n++] = n;
}

static void expand(mh_grammar *g, gnode *n, gset *out, int depth);

/* Every alternative of rule, each continuing with k. */
static void expand_rule(mh_grammar *g, int32_t rule, gnode *k, gset *out, int depth)
{
    for (int32_t a = g->alt_first[rule]; a < g->alt_first[rule + 1]; a++) {
        int32_t p = g->alt[a];
        expand(g, is_end(g, p) ? k : node(g, p, 0, k), out, depth);
    }
}

/* Adds to out the stacks n stands for whose top consumes a byte. */
static void expand(mh_grammar *g, gnode *n, gset *out, int depth)
{
    if (g->bad) return;
    if (!n) { out->accept = true; return; }
    if (depth > EXPAND_MAX) { g->bad = MH_EINVAL; return; }
    gr_el e = g->r.el[n->pos];
    switch (e.kind) {
    case GE_SET: case GE_STRCHAR:
        add(g, out, n);
        return;
    case GE_STRLOOP: case GE_STRN:
        add(g, out, n);
        if (CHAR_STATE(n->sub) == 0) expand(g, cont(g, n->pos + 1, n->parent), out, depth + 1);
        return;
    case GE_WS:
        add(g, out, n);
        expand(g, cont(g, n->pos + 1, n->parent), out, depth + 1);
        return;
    case GE_REF:
        expand_rule(g, e.arg, cont(g, n->pos + 1, n->parent), out, depth + 1);
        return;
    }
}

/* Sub-state of a JSON string character after byte b: 0 complete, 1..3
 * UTF-8 continuation bytes due, 9 after a backslash, 5..8 hex digits of
 * \uXXXX due (4..1); -1 rejects. \uD800-\uDFFF are refused: a lone
 * surrogate would make the document unparsable. */
static int str_step(int sub, unsigned char b)
{
    switch (sub) {
    case 0:
        if (b == '"' || b < 0x20) return -1;
        if (b == '\\') return 9;
        if (b < 0x80) return 0;
        if (b >= 0xC2 && b <= 0xDF) return 1;
        if (b >= 0xE0 && b <= 0xEF) return 2;
        if (b >= 0xF0 && b <= 0xF4) return 3;
        return -1;
    case 1: case 2: case 3:
        return b >= 0x80 && b <= 0xBF ? sub - 1 : -1;
    case 9:
        if (b == 'u') return 8;
        return b && strchr("\"\\/bfnrt", b) ? 0 : -1;
    default: {
        bool hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
        if (!hex || (sub == 8 && (b == 'd' || b == 'D'))) return -1;
        return sub == 5 ? 0 : sub - 1;
    }
    }
}

static bool set_has(const mh_grammar *g, int32_t set, unsigned char b)
{
    return (g->r.sets[set].w[b >> 6] >> (b & 63)) & 1;
}

static bool is_ws(unsigned char b) { return b == ' ' || b == '\n' || b == '\t' || b == '\r'; }

/* out = the stacks of s after byte b. */
static void step(mh_grammar *g, const gset *s, unsigned char b, gset *out)
{
    for (int i = 0; i < s->n && !g->bad; i++) {
        gnode *n = s->v[i];
        gr_el e = g->r.el[n->pos];
        if (e.kind == GE_SET) {
            if (set_has(g, e.arg, b)) expand(g, cont(g, n->pos + 1, n->parent), out, 0);
        } else if (e.kind == GE_WS) {
            if (is_ws(b) && n->sub < e.arg) expand(g, node(g, n->pos, n->sub + 1, n->parent), out, 0);
        } else if (e.kind == GE_STRN) {
            int done = n->sub >> 4, cs = CHAR_STATE(n->sub);
            int ns = cs == 0 && done >= e.arg ? -1 : str_step(cs, b);
            if (ns > 0) add(g, out, node(g, n->pos, (done << 4) | ns, n->parent));
            else if (ns == 0) expand(g, node(g, n->pos, (done + 1) << 4, n->parent), out, 0);
        } else {
            int ns = str_step(n->sub, b);
            if (ns > 0) add(g, out, node(g, n->pos, ns, n->parent));
            else if (ns == 0 && e.kind == GE_STRCHAR)
                expand(g, cont(g, n->pos + 1, n->parent), out, 0);
            else if (ns == 0)
                expand(g, n->sub == 0 ? n : node(g, n->pos, 0, n->parent), out, 0);
        }
    }
}

/* ===== state ===== */

static gnode *copy_chain(mh_grammar *g, const gnode *n)
{
    if (!n) return NULL;
    gnode *p = copy_chain(g, n->parent);
    return g->bad ? NULL : node(g, n->pos, n->sub, p);
}

/* Makes s (nodes anywhere) the state, copied into the spare state arena. */
static void commit(mh_grammar *g, const gset *s)
{
    int spare = 1 - g->cur_st;
    arena_reset(&g->st[spare]);
    g->alloc = &g->st[spare];
    for (int i = 0; i < s->n; i++) g->state.v[i] = copy_chain(g, s->v[i]);
    g->state.n = s->n;
    g->state.accept = s->accept;
    g->cur_st = spare;
    g->alloc = &g->scratch;
}

void mh_grammar_reset(mh_grammar *g)
{
    if (!g) return;
    arena_reset(&g->scratch);
    g->alloc = &g->scratch;
    g->bad = 0;
    g->finished = false;
    g->last_err[0] = 0;
    gset s = { g->lvl, 0, false };
    expand_rule(g, g->root, NULL, &s, 0);
    commit(g, &s);
    arena_reset(&g->scratch);
}

bool mh_grammar_done(const mh_grammar *g) { return g && (g->finished || g->state.accept); }

const char *mh_grammar_last_error(const mh_grammar *g) { return g ? g->last_err : ""; }

/* Runs token id's bytes from the state; *out ends in g->lvl[1] or [2]. */
static int run_token(mh_grammar *g, int32_t id, gset *out, mh_err *err)
{
    if (id < 0 || id >= g->n_tok)
        return gfail(g, err, MH_EINVAL, "token id %d is outside the vocabulary of %d", id, g->n_tok);
    if (g->finished) return gfail(g, err, MH_EINVAL, "generation already ended");
    if (g->flag[id] & TOK_EOG) {
        if (g->state.accept) return MH_OK;
        return gfail(g, err, MH_EINVAL, "end-of-generation token %d before the JSON value is complete", id);
    }
    if (!(g->flag[id] & TOK_USABLE))
        return gfail(g, err, MH_EINVAL, "token %d is a control or empty token", id);
    const gset *cur = &g->state;
    gset buf[2] = { { g->lvl + SET_MAX, 0, false }, { g->lvl + 2 * SET_MAX, 0, false } };
    g->bad = 0;
    for (uint32_t i = g->off[id]; i < g->off[id + 1]; i++) {
        gset *nx = &buf[i & 1];
        nx->n = 0;
        nx->accept = false;
        step(g, cur, g->bytes[i], nx);
        if (g->bad) return gfail(g, err, g->bad, "grammar step failed (%s)", mh_status_name(g->bad));
        if (nx->n == 0 && (!nx->accept || i + 1 < g->off[id + 1]))
            return gfail(g, err, MH_EINVAL, "token %d (\"%.*s\") is not allowed here", id,
                         (int)(g->off[id + 1] - g->off[id]), (const char *)g->bytes + g->off[id]);
        cur = nx;
    }
    *out = *cur;
    return MH_OK;
}

int mh_grammar_accept(mh_grammar *g, int32_t id, mh_err *err)
{
    if (!g) return mh_err_set(err, MH_EINVAL, "grammar: NULL grammar");
    gset out;
    arena_reset(&g->scratch);
    int rc = run_token(g, id, &out, err);
    if (rc) return rc;
    if (g->flag[id] & TOK_EOG) { g->finished = true; return MH_OK; }
    commit(g, &out);
    arena_reset(&g->scratch);
    return g->bad ? gfail(g, err, g->bad, "out of memory") : MH_OK;
}

bool mh_grammar_allows(mh_grammar *g, int32_t id)
{
    if (!g) return false;
    gset out;
    arena_reset(&g->scratch);
    char keep[sizeof g->last_err];
    memcpy(keep, g->last_err, sizeof keep);
    bool ok = run_token(g, id, &out, NULL) == MH_OK;
    memcpy(g->last_err, keep, sizeof keep);
    arena_reset(&g->scratch);
    return ok;
}

/* ===== mask ===== */

static void walk(mh_grammar *g, int32_t t, const gset *s, int d)
{
    gset out = { g->lvl + (size_t)(d + 1) * SET_MAX, 0, false };
    for (int32_t ch = g->trie[t].child; ch >= 0 && !g->bad; ch = g->trie[ch].next) {
        amark m = arena_mark(&g->scratch);
        out.n = 0;
        out.accept = false;
        step(g, s, g->trie[ch].byte, &out);
        if (out.n || out.accept) {
            for (int32_t k = g->trie[ch].tok; k >= 0; k = g->tok_next[k])
                g->allowed[k >> 6] |= 1ull << (k & 63);
            if (out.n && g->trie[ch].child >= 0) walk(g, ch, &out, d + 1);
        }
        arena_release(&g->scratch, m);
    }
}

int64_t mh_grammar_mask(mh_grammar *g, float *logits, int64_t n_vocab, mh_err *err)
{
    if (!g || !logits || n_vocab < 1) return mh_err_set(err, MH_EINVAL, "grammar: bad arguments to mask"), -1;
    if (g->finished) return gfail(g, err, MH_EINVAL, "generation already ended"), -1;
    arena_reset(&g->scratch);
    g->alloc = &g->scratch;
    g->bad = 0;
    /* Stacks inside a string at a character boundary take every "plain"
     * token whole (all of them when unbounded, those short enough under
     * maxLength): those are set at once, and only the other stacks walk
     * the (large) plain trie. */
    gset other = { g->lvl, 0, false };
    int room = -1;           /* most characters a string stack can still take */
    for (int i = 0; i < g->state.n; i++) {
        gnode *n = g->state.v[i];
        gr_el e = g->r.el[n->pos];
        if (e.kind == GE_STRLOOP && n->sub == 0) room = INT32_MAX;
        else if (e.kind == GE_STRN && CHAR_STATE(n->sub) == 0) {
            if (e.arg - (n->sub >> 4) > room) room = e.arg - (n->sub >> 4);
        } else other.v[other.n++] = n;
    }
    if (room == INT32_MAX) memcpy(g->allowed, g->plain_bits, sizeof *g->allowed * (size_t)g->words);
    else memset(g->allowed, 0, sizeof *g->allowed * (size_t)g->words);
    if (room > 0 && room < INT32_MAX)
        for (int32_t i = 0; i < g->n_tok; i++)
            if ((g->flag[i] & TOK_PLAIN) && g->nchar[i] <= room) g->allowed[i >> 6] |= 1ull << (i & 63);
    walk(g, g->root_other, &g->state, 0);
    walk(g, g->root_plain, &other, 0);
    arena_reset(&g->scratch);
    if (g->bad) return gfail(g, err, g->bad, "grammar step failed (%s)", mh_status_name(g->bad)), -1;
    int64_t count = 0, lim = n_vocab < g->n_tok ? n_vocab : g->n_tok;
    for (int32_t i = 0; i < lim; i++) {
        bool ok = ((g->allowed[i >> 6] >> (i & 63)) & 1) || (g->state.accept && (g->flag[i] & TOK_EOG));
        count += ok;
    }
    if (count == 0)
        return gfail(g, err, MH_EINVAL, "no token of the vocabulary can continue the JSON document"), -1;
    for (int64_t i = 0; i < n_vocab; i++) {
        bool ok = i < lim && (((g->allowed[i >> 6] >> (i & 63)) & 1) ||
                              (g->state.accept && (g->flag[i] & TOK_EOG)));
        if (!ok) logits[i] = -INFINITY;
    }
    return count;
}

/* ===== construction ===== */

static bool is_plain(const unsigned char *s, uint32_t n)
{
    for (uint32_t i = 0; i < n;) {
        int sub = str_step(0, s[i++]);
        if (sub < 0 || sub == 9) return false;
        for (; sub > 0; sub--) if (i >= n || str_step(sub, s[i++]) < 0) return false;
    }
    return n > 0;
}

static int32_t trie_node(mh_grammar *g, unsigned char b)
{
    if (g->n_trie == g->cap_trie) {
        int32_t nc = g->cap_trie ? g->cap_trie * 2 : 4096;
        tnode *t = realloc(g->trie, sizeof *t * (size_t)nc);
        if (!t) return -1;
        g->trie = t;
        g->cap_trie = nc;
    }
    g->trie[g->n_trie] = (tnode){ -1, -1, -1, b };
    return g->n_trie++;
}

static int trie_insert(mh_grammar *g, int32_t root, int32_t id)
{
    int32_t t = root;
    for (uint32_t i = g->off[id]; i < g->off[id + 1]; i++) {
        unsigned char b = g->bytes[i];
        int32_t ch = g->trie[t].child;
        while (ch >= 0 && g->trie[ch].byte != b) ch = g->trie[ch].next;
        if (ch < 0) {
            if ((ch = trie_node(g, b)) < 0) return MH_ENOMEM;
            g->trie[ch].next = g->trie[t].child;
            g->trie[t].child = ch;
        }
        t = ch;
    }
    g->tok_next[id] = g->trie[t].tok;
    g->trie[t].tok = id;
    return MH_OK;
}

/* Copies every token's bytes and builds the two tries. */
static int load_vocab(mh_grammar *g, const mh_tokenizer *tok, mh_err *err)
{
    int32_t n = g->n_tok = mh_tokenizer_n_vocab(tok);
    g->words = (n + 63) / 64;
    g->flag = calloc((size_t)n + 1, 1);
    g->off = calloc((size_t)n + 1, sizeof *g->off);
    g->tok_next = malloc(sizeof *g->tok_next * ((size_t)n + 1));
    g->nchar = calloc((size_t)n + 1, sizeof *g->nchar);
    g->plain_bits = calloc((size_t)g->words + 1, sizeof *g->plain_bits);
    g->allowed = calloc((size_t)g->words + 1, sizeof *g->allowed);
    if (!g->flag || !g->off || !g->tok_next || !g->nchar || !g->plain_bits || !g->allowed) goto oom;
    mh_tok_buf all = {0};
    for (int32_t id = 0; id < n; id++) {
        g->off[id] = (uint32_t)all.n;
        int attr = mh_tokenizer_attr(tok, id);
        if (mh_tokenizer_is_eog(tok, id)) { g->flag[id] = TOK_EOG; continue; }
        if (attr == MH_TOKEN_CONTROL || attr == MH_TOKEN_UNUSED || attr == MH_TOKEN_UNKNOWN) continue;
        size_t before = all.n;
        if (mh_tokenizer_piece(tok, id, false, &all, err)) { mh_tok_buf_free(&all); return err ? err->code : MH_EINVAL; }
        if (all.n - before > 0xFFFF) all.n = before;     /* absurd piece: never usable */
        if (all.n > before) g->flag[id] = TOK_USABLE;
        int32_t len = (int32_t)(all.n - before);
        if (len > g->max_len) g->max_len = len;
    }
    g->off[n] = (uint32_t)all.n;
    g->bytes = (unsigned char *)all.p;
    if (!g->bytes && !(g->bytes = malloc(1))) goto oom;
    g->root_plain = trie_node(g, 0);
    g->root_other = trie_node(g, 0);
    if (g->root_other < 0) goto oom;
    for (int32_t id = 0; id < n; id++) {
        g->tok_next[id] = -1;
        if (!(g->flag[id] & TOK_USABLE)) continue;
        bool plain = is_plain(g->bytes + g->off[id], g->off[id + 1] - g->off[id]);
        if (plain) {
            g->flag[id] |= TOK_PLAIN;
            for (uint32_t i = g->off[id]; i < g->off[id + 1]; i++)
                g->nchar[id] += (g->bytes[i] & 0xC0) != 0x80;
            g->plain_bits[id >> 6] |= 1ull << (id & 63);
        }
        if (trie_insert(g, plain ? g->root_plain : g->root_other, id)) goto oom;
    }
    return MH_OK;
oom:
    return mh_err_set(err, MH_ENOMEM, "grammar: out of memory loading the vocabulary");
}

/* Per-rule alternative start offsets, so expansion need not scan bodies. */
static int index_rules(mh_grammar *g)
{
    gr_rules *r = &g->r;
    int32_t n_alt = 0;
    for (int32_t i = 0; i < r->n_el; i++) n_alt += r->el[i].kind == GE_END || r->el[i].kind == GE_ALT;
    g->alt = malloc(sizeof *g->alt * ((size_t)n_alt + 1));
    g->alt_first = malloc(sizeof *g->alt_first * ((size_t)r->n_rules + 1));
    if (!g->alt || !g->alt_first) return MH_ENOMEM;
    int32_t k = 0;
    for (int32_t rule = 0; rule < r->n_rules; rule++) {
        g->alt_first[rule] = k;
        int32_t p = r->start[rule];
        g->alt[k++] = p;
        for (; r->el[p].kind != GE_END; p++)
            if (r->el[p].kind == GE_ALT) g->alt[k++] = p + 1;
    }
    g->alt_first[r->n_rules] = k;
    return MH_OK;
}

static mh_grammar *build(const char *schema, bool any_object, const mh_tokenizer *tok, mh_err *err)
{
    if (!tok) { mh_err_set(err, MH_EINVAL, "grammar: NULL tokenizer"); return NULL; }
    mh_grammar *g = calloc(1, sizeof *g);
    if (!g) { mh_err_set(err, MH_ENOMEM, "grammar: out of memory"); return NULL; }
    g->root = gr_compile_json(&g->r, schema, any_object, err);
    if (g->root < 0 || load_vocab(g, tok, err)) { mh_grammar_free(g); return NULL; }
    g->n_lvl = g->max_len + 3;
    g->lvl = malloc(sizeof *g->lvl * (size_t)SET_MAX * (size_t)g->n_lvl);
    g->state.v = malloc(sizeof *g->state.v * SET_MAX);
    if (!g->lvl || !g->state.v || index_rules(g)) {
        mh_err_set(err, MH_ENOMEM, "grammar: out of memory");
        mh_grammar_free(g);
        return NULL;
    }
    mh_grammar_reset(g);
    if (g->bad) {
        mh_err_set(err, MH_EINVAL, "json schema: %s", g->bad == MH_EINVAL
                   ? "a '$ref' cycle matches no input (left recursion)" : "grammar too ambiguous");
        mh_grammar_free(g);
        return NULL;
    }
    return g;
}

mh_grammar *mh_grammar_json_schema(const char *schema_json, const mh_tokenizer *tok, mh_err *err)
{
    if (!schema_json) { mh_err_set(err, MH_EINVAL, "json schema: NULL schema"); return NULL; }
    return build(schema_json, false, tok, err);
}

mh_grammar *mh_grammar_json_object(const mh_tokenizer *tok, mh_err *err)
{
    return build(NULL, true, tok, err);
}

void mh_grammar_free(mh_grammar *g)
{
    if (!g) return;
    gr_rules_free(&g->r);
    free(g->alt);
    free(g->alt_first);
    free(g->flag);
    free(g->nchar);
    free(g->off);
    free(g->bytes);
    free(g->tok_next);
    free(g->trie);
    free(g->plain_bits);
    free(g->allowed);
    arena_free(&g->st[0]);
    arena_free(&g->st[1]);
    arena_free(&g->scratch);
    free(g->lvl);
    free(g->state.v);
    free(g);
}

/* ===== constraint hook (mh/sample.h) ===== */

static int hook_mask(void *ud, float *logits, int64_t n_vocab)
{
    return mh_grammar_mask(ud, logits, n_vocab, NULL) < 0;
}

static int hook_accept(void *ud, int32_t id) { return mh_grammar_accept(ud, id, NULL) != MH_OK; }
static void hook_free(void *ud) { mh_grammar_free(ud); }

void mh_grammar_as_constraint(mh_grammar *g, mh_sample_constraint *out)
{
    out->ud = g;
    out->mask = hook_mask;
    out->accept = hook_accept;
    out->free = hook_free;
}
