/* encode.c: text -> ids (special-token partition, then the SPM / BPE /
 * WordPiece path per text fragment) and ids -> text, whole or streamed.
 * Layer: engine/tokenizer (pure C11). */
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"

#define SPACE_MARK "\xE2\x96\x81"      /* U+2581, SentencePiece's visible space */

/* ===== special-token partition ===== */

typedef struct { int32_t id; size_t off, len; } frag;      /* id >= 0: a token */
typedef struct { frag *v; size_t n, cap; } frags;

static int frag_add(frags *f, int32_t id, size_t off, size_t len)
{
    if (id < 0 && len == 0) return MH_OK;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        frag *v = realloc(f->v, cap * sizeof *v);
        if (!v) return MH_ENOMEM;
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = (frag){ id, off, len };
    return MH_OK;
}

static bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Splits the raw fragments of *f around each occurrence of token id. A
 * token marked lstrip / rstrip takes the whitespace before / after it
 * along (llama.cpp's tokenizer_st_partition; HF added_tokens' flags). */
static int split_on(const mh_tokenizer *t, const char *text, int32_t id, frags *f, frags *tmp)
{
    const char *s = t->blob + t->off[id];
    size_t sl = t->len[id];
    int strip = t->strip ? t->strip[id] : 0;
    tmp->n = 0;
    for (size_t i = 0; i < f->n; i++) {
        frag fr = f->v[i];
        if (fr.id >= 0 || fr.len < sl) { if (frag_add(tmp, fr.id, fr.off, fr.len)) return MH_ENOMEM; continue; }
        size_t pos = fr.off, end = fr.off + fr.len;
        const char *hit;
        while (pos < end && (hit = memmem(text + pos, end - pos, s, sl))) {
            size_t at = (size_t)(hit - text), left = at;
            if (strip & TOK_LSTRIP) while (left > pos && is_space(text[left - 1])) left--;
            if (frag_add(tmp, -1, pos, left - pos) || frag_add(tmp, id, at, sl)) return MH_ENOMEM;
            pos = at + sl;
            if (strip & TOK_RSTRIP) while (pos < end && is_space(text[pos])) pos++;
        }
        if (frag_add(tmp, -1, pos, end - pos)) return MH_ENOMEM;
    }
    frags x = *f; *f = *tmp; *tmp = x;
    return MH_OK;
}

/* The byte pairs (and bytes) present in a text: a special whose pairs are
 * not all present cannot occur, so its search is skipped. Deepseek's
 * vocabularies have ~2400 added words; searching each in a long text
 * would otherwise dominate encoding. */
typedef struct { uint64_t pair[65536 / 64]; uint64_t byte[4]; } gram_set;

static void grams_build(gram_set *g, const unsigned char *s, size_t n)
{
    memset(g, 0, sizeof *g);
    for (size_t i = 0; i < n; i++) {
        g->byte[s[i] >> 6] |= 1ull << (s[i] & 63);
        if (i + 1 < n) {
            unsigned k = (unsigned)s[i] << 8 | s[i + 1];
            g->pair[k >> 6] |= 1ull << (k & 63);
        }
    }
}

static bool grams_may_hold(const gram_set *g, const unsigned char *s, size_t n)
{
    if (n == 1) return g->byte[s[0] >> 6] >> (s[0] & 63) & 1;
    for (size_t i = 0; i + 1 < n; i++) {
        unsigned k = (unsigned)s[i] << 8 | s[i + 1];
        if (!(g->pair[k >> 6] >> (k & 63) & 1)) return false;
    }
    return true;
}

/* Longest special texts first, like llama.cpp. Without parse_special only
 * user-defined tokens (plain added words) are matched: control tokens such
 * as <|im_start|> in user text stay text, so input cannot forge them. */
static int partition(const mh_tokenizer *t, const char *text, size_t len, bool parse_special,
                     frags *f)
{
    frags tmp = {0};
    gram_set *g = t->n_specials > 8 ? malloc(sizeof *g) : NULL;   /* NULL: no filter */
    if (g) grams_build(g, (const unsigned char *)text, len);
    int rc = frag_add(f, -1, 0, len);
    for (int i = 0; !rc && i < t->n_specials; i++) {
        int32_t id = t->specials[i];
        if (!parse_special && t->attr[id] != MH_TOKEN_USER_DEFINED) continue;
        if (g && !grams_may_hold(g, (const unsigned char *)t->blob + t->off[id], t->len[id])) continue;
        rc = split_on(t, text, id, f, &tmp);
    }
    free(g);
    free(tmp.v);
    return rc;
}

/* ===== per-fragment encoders ===== */

typedef struct {
    const mh_tokenizer *t;
    tok_merge_ctx mc;
    mh_tok_ids *out;
    mh_err *err;
    mh_tok_buf tmp;
} enc_ctx;

static int bpe_word(void *ud, const char *w, size_t n)
{
    enc_ctx *e = ud;
    const mh_tokenizer *t = e->t;
    if (t->byte_level && t->ignore_merges) {     /* whole word already a token? */
        e->tmp.n = 0;
        for (size_t i = 0; i < n; i++) {
            char b[4];
            if (tok_buf_put(&e->tmp, b, tok_utf8_put(tok_byte_to_cp((unsigned char)w[i]), b)))
                return mh_err_set(e->err, MH_ENOMEM, "tokenizer: out of memory");
        }
        int32_t id = tok_find(t, e->tmp.p, e->tmp.n);
        if (id >= 0) return tok_ids_push(e->out, id) ? mh_err_set(e->err, MH_ENOMEM, "tokenizer: out of memory") : MH_OK;
    }
    return tok_merge_word(t, &e->mc, w, n, e->out, e->err);
}

/* SentencePiece: optional dummy prefix, spaces as U+2581, then merges. */
static int spm_fragment(enc_ctx *e, const char *s, size_t n, bool prefix)
{
    const mh_tokenizer *t = e->t;
    e->tmp.n = 0;
    int rc = MH_OK;
    if (prefix) rc = tok_buf_put(&e->tmp, SPACE_MARK, 3);
    for (size_t i = 0; !rc && i < n; i++)
        rc = (s[i] == ' ' && t->escape_spaces) ? tok_buf_put(&e->tmp, SPACE_MARK, 3)
                                                : tok_buf_put(&e->tmp, s + i, 1);
    if (rc) return mh_err_set(e->err, MH_ENOMEM, "tokenizer: out of memory");
    return tok_merge_word(t, &e->mc, e->tmp.p, e->tmp.n, e->out, e->err);
}

static int bpe_fragment(enc_ctx *e, const char *s, size_t n, bool prefix)
{
    const mh_tokenizer *t = e->t;
    char *norm = NULL, *pre = NULL;
    size_t nn = n;
    int rc = MH_OK;
    if (t->n_norm) {
        if ((rc = tok_normalize(t, s, n, &norm, &nn, e->err))) return rc;
        s = norm;
    }
    if (prefix && t->add_space_prefix && nn && s[0] != ' ') {   /* ByteLevel add_prefix_space */
        if (!(pre = malloc(nn + 1))) rc = mh_err_set(e->err, MH_ENOMEM, "tokenizer: out of memory");
        else { pre[0] = ' '; memcpy(pre + 1, s, nn); s = pre; nn++; }
    }
    if (!rc) rc = tok_pre_split(t, s, nn, bpe_word, e, e->err);
    free(norm);
    free(pre);
    return rc;
}

static int encode_fragment(enc_ctx *e, const char *s, size_t n, bool after_special)
{
    switch (e->t->kind) {
    case MH_TOK_SPM: return spm_fragment(e, s, n, e->t->add_space_prefix && after_special);
    case MH_TOK_BPE: return bpe_fragment(e, s, n, after_special);
    default: return tok_wpm_encode(e->t, s, n, e->out, e->err);
    }
}

int mh_tokenizer_encode(const mh_tokenizer *t, const char *text, size_t len,
                        const mh_tok_encode_opts *opts, mh_tok_ids *out, mh_err *err)
{
    mh_tok_encode_opts o = { -1, -1, false };
    if (opts) o = *opts;
    if (!text && len) return mh_err_set(err, MH_EINVAL, "tokenizer: NULL text");
    bool bos = o.add_bos < 0 ? t->add_bos : o.add_bos != 0;
    bool eos = o.add_eos < 0 ? t->add_eos : o.add_eos != 0;
    enc_ctx e = { t, {0}, out, err, {0} };
    frags f = {0};
    int rc = MH_OK;
    if (bos && t->sp.bos >= 0 && tok_ids_push(out, t->sp.bos)) rc = MH_ENOMEM;
    if (!rc && len) rc = partition(t, text, len, o.parse_special, &f);
    if (rc) mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    bool after_special = true;    /* the text start counts as a boundary */
    for (size_t i = 0; !rc && i < f.n; i++) {
        if (f.v[i].id >= 0) {
            if (tok_ids_push(out, f.v[i].id)) rc = mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
            after_special = true;
            continue;
        }
        rc = encode_fragment(&e, text + f.v[i].off, f.v[i].len, after_special);
        after_special = false;
    }
    if (!rc && eos && t->sp.eos >= 0 && tok_ids_push(out, t->sp.eos))
        rc = mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    free(f.v);
    tok_merge_ctx_free(&e.mc);
    mh_tok_buf_free(&e.tmp);
    return rc;
}

/* ===== decode ===== */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int piece_normal(const mh_tokenizer *t, const char *s, size_t n, mh_tok_buf *out)
{
    int rc = MH_OK;
    if (t->byte_level) {
        for (size_t i = 0; !rc && i < n;) {
            size_t k = tok_utf8_valid((const unsigned char *)s + i, n - i);
            uint32_t cp = 0;
            if (k == 2) cp = ((uint32_t)(s[i] & 0x1F) << 6) | (s[i + 1] & 0x3F);
            else if (k == 1) cp = (unsigned char)s[i];
            int b = k ? tok_cp_to_byte(cp) : -1;
            if (!k) k = 1;
            if (b >= 0) { char c = (char)b; rc = tok_buf_put(out, &c, 1); }
            else rc = tok_buf_put(out, s + i, k);
            i += k;
        }
        return rc;
    }
    if (t->kind == MH_TOK_WPM) {
        size_t wl = strlen(t->wp_word_prefix), cl = strlen(t->wp_cont_prefix);
        if (wl && n >= wl && !memcmp(s, t->wp_word_prefix, wl)) { s += wl; n -= wl; rc = tok_buf_put(out, " ", 1); }
        else if (cl && n >= cl && !memcmp(s, t->wp_cont_prefix, cl)) { s += cl; n -= cl; }
        else if (cl) rc = tok_buf_put(out, " ", 1);
        return rc ? rc : tok_buf_put(out, s, n);
    }
    for (size_t i = 0; !rc && i < n;) {
        if (t->escape_spaces && i + 3 <= n && !memcmp(s + i, SPACE_MARK, 3)) { rc = tok_buf_put(out, " ", 1); i += 3; }
        else rc = tok_buf_put(out, s + i++, 1);
    }
    return rc;
}

int mh_tokenizer_piece(const mh_tokenizer *t, int32_t id, bool special, mh_tok_buf *out, mh_err *err)
{
    if (id < 0 || id >= t->n_vocab)
        return mh_err_set(err, MH_ERANGE, "tokenizer: token id %d out of range 0..%d", (int)id, (int)t->n_vocab - 1);
    const char *s = t->blob + t->off[id];
    size_t n = t->len[id];
    int rc, a = t->attr[id];
    if (a == MH_TOKEN_CONTROL || a == MH_TOKEN_UNKNOWN) rc = special ? tok_buf_put(out, s, n) : MH_OK;
    /* An added word is its own text. Deepseek's vocabularies hold some byte-map
     * characters only as added words ("ú" for byte 0xFA, "ÿ" for 0xFF...):
     * matched in text they stand for the character, so they decode to it,
     * and a stray byte that never occurs in UTF-8 comes back as it. */
    else if (a == MH_TOKEN_USER_DEFINED) rc = tok_buf_put(out, s, n);
    else if (a == MH_TOKEN_BYTE && n == 6 && hexval(s[3]) >= 0 && hexval(s[4]) >= 0) {
        char c = (char)(hexval(s[3]) * 16 + hexval(s[4]));
        rc = tok_buf_put(out, &c, 1);
    } else rc = piece_normal(t, s, n, out);
    return rc ? mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory") : MH_OK;
}

/* Appends id's text, dropping the dummy-prefix space of the first piece. */
static int decode_one(const mh_tokenizer *t, int32_t id, int flags, bool *started, mh_tok_buf *out,
                      mh_err *err)
{
    size_t before = out->n;
    bool special = !(flags & MH_DECODE_SKIP_SPECIAL);
    int rc = mh_tokenizer_piece(t, id, special, out, err);
    if (rc || out->n == before) return rc;
    if (!*started && t->strip_first_space && !(flags & MH_DECODE_KEEP_SPACE) && out->p[before] == ' ') {
        memmove(out->p + before, out->p + before + 1, out->n - before - 1);
        out->p[--out->n] = 0;
    }
    *started = true;
    return MH_OK;
}

int mh_tokenizer_decode(const mh_tokenizer *t, const int32_t *ids, size_t n, int flags,
                        mh_tok_buf *out, mh_err *err)
{
    bool started = false;
    int rc = tok_buf_put(out, "", 0);
    for (size_t i = 0; !rc && i < n; i++) rc = decode_one(t, ids[i], flags, &started, out, err);
    return rc == MH_ENOMEM && !(err && err->code) ? mh_err_set(err, rc, "tokenizer: out of memory") : rc;
}

/* ===== streaming ===== */

void mh_tok_stream_init(mh_tok_stream *s, const mh_tokenizer *t, int flags)
{
    memset(s, 0, sizeof *s);
    s->t = t;
    s->flags = flags;
}

void mh_tok_stream_free(mh_tok_stream *s) { mh_tok_buf_free(&s->pending); }

/* Bytes at the end of p[0..n) that start a UTF-8 sequence not yet complete. */
static size_t incomplete_tail(const unsigned char *p, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = p[n - k];
        if ((c & 0xC0) == 0x80) continue;          /* continuation byte */
        if (c >= 0xC2 && c <= 0xF4 && tok_utf8_len(c) > k) return k;
        return 0;
    }
    return 0;
}

int mh_tok_stream_push(mh_tok_stream *s, int32_t id, mh_tok_buf *out, mh_err *err)
{
    int rc = decode_one(s->t, id, s->flags, &s->started, &s->pending, err);
    if (rc) return rc;
    size_t keep = incomplete_tail((const unsigned char *)s->pending.p, s->pending.n);
    size_t emit = s->pending.n - keep;
    if (tok_buf_put(out, s->pending.p, emit)) return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    if (keep) memmove(s->pending.p, s->pending.p + emit, keep);
    s->pending.n = keep;
    return MH_OK;
}

int mh_tok_stream_flush(mh_tok_stream *s, mh_tok_buf *out, mh_err *err)
{
    int rc = tok_buf_put(out, s->pending.p ? s->pending.p : "", s->pending.n);
    s->pending.n = 0;
    s->started = false;
    return rc ? mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory") : MH_OK;
}
