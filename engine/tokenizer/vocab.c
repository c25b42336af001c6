/* vocab.c: the tokenizer's vocabulary storage: token texts, the text -> id
 * and merge hash maps, UTF-8 and byte-map helpers, accessors and loading.
 * Layer: engine/tokenizer (pure C11). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tok_internal.h"
#include "mh/gguf.h"

/* ===== buffers ===== */

int tok_ids_push(mh_tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return MH_ENOMEM;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return MH_OK;
}

int tok_buf_put(mh_tok_buf *b, const void *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return MH_ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;     /* always NUL-terminated for convenience */
    return MH_OK;
}

void mh_tok_ids_free(mh_tok_ids *ids) { free(ids->v); ids->v = NULL; ids->n = ids->cap = 0; }
void mh_tok_buf_free(mh_tok_buf *b) { free(b->p); b->p = NULL; b->n = b->cap = 0; }

/* ===== UTF-8 and the GPT-2 byte map ===== */

size_t tok_utf8_len(unsigned char c)
{
    static const unsigned char lens[16] = {1,1,1,1,1,1,1,1,1,1,1,1,2,2,3,4};
    return lens[c >> 4];
}

size_t tok_utf8_valid(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (!k || c > 0xF4 || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    /* overlongs, surrogates and > U+10FFFF */
    if (c == 0xE0 && s[1] < 0xA0) return 0;
    if (c == 0xED && s[1] > 0x9F) return 0;
    if (c == 0xF0 && s[1] < 0x90) return 0;
    if (c == 0xF4 && s[1] > 0x8F) return 0;
    return k;
}

size_t tok_utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2 maps printable bytes to themselves and the rest to U+0100.. in order,
 * so every byte becomes a visible character. */
static bool byte_is_printable(unsigned b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
}

uint32_t tok_byte_to_cp(unsigned char b)
{
    if (byte_is_printable(b)) return b;
    if (b <= 32) return 256u + b;              /* 0..32    -> U+0100..U+0120 */
    if (b <= 160) return 289u + (b - 127u);    /* 127..160 -> U+0121..U+0142 */
    return 323;                                /* 173      -> U+0143 */
}

int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp <= 288) return (int)(cp - 256);
    if (cp <= 322) return (int)(cp - 289 + 127);
    return cp == 323 ? 173 : -1;
}

/* ===== text -> id map ===== */

uint32_t tok_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;        /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

int tok_vocab_alloc(mh_tokenizer *t, int32_t n, size_t blob_bytes, mh_err *err)
{
    t->n_vocab = n;
    t->blob = malloc(blob_bytes ? blob_bytes : 1);
    t->off = calloc((size_t)n + 1, sizeof *t->off);
    t->len = calloc((size_t)n + 1, sizeof *t->len);
    t->scores = calloc((size_t)n + 1, sizeof *t->scores);
    t->attr = calloc((size_t)n + 1, 1);
    if (!t->blob || !t->off || !t->len || !t->scores || !t->attr)
        return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory for %d tokens", (int)n);
    for (int32_t i = 0; i < n; i++) t->attr[i] = MH_TOKEN_NORMAL;
    return MH_OK;
}

void tok_vocab_set(mh_tokenizer *t, int32_t id, const char *s, size_t n, size_t *pos)
{
    memcpy(t->blob + *pos, s, n);
    t->off[id] = (uint32_t)*pos;
    t->len[id] = (uint32_t)n;
    *pos += n;
    if ((int)n > t->max_token_len) t->max_token_len = (int)n;
}

int32_t tok_find(const mh_tokenizer *t, const char *s, size_t n)
{
    uint32_t i = tok_hash(s, n) & t->vocab.mask;
    for (uint32_t v; (v = t->vocab.slot[i]); i = (i + 1) & t->vocab.mask) {
        int32_t id = (int32_t)v - 1;
        if (t->len[id] == n && !memcmp(t->blob + t->off[id], s, n)) return id;
    }
    return -1;
}

static int build_strmap(mh_tokenizer *t, mh_err *err)
{
    uint32_t cap = 16;
    while (cap < (uint32_t)t->n_vocab * 2u) cap <<= 1;
    t->vocab.slot = calloc(cap, sizeof *t->vocab.slot);
    if (!t->vocab.slot) return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    t->vocab.mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = t->blob + t->off[id];
        uint32_t i = tok_hash(s, t->len[id]) & t->vocab.mask;
        for (uint32_t v; (v = t->vocab.slot[i]); i = (i + 1) & t->vocab.mask) {
            int32_t o = (int32_t)v - 1;
            if (t->len[o] == t->len[id] && !memcmp(t->blob + t->off[o], s, t->len[id])) break;
        }
        /* a repeated text: the last id wins (llama.cpp), except that an
         * added token never shadows a normal one (deepseek repeats "ÿ"...),
         * so raw bytes keep mapping to byte tokens and decode back */
        uint32_t old = t->vocab.slot[i];
        if (!old || t->attr[old - 1] != MH_TOKEN_NORMAL || t->attr[id] == MH_TOKEN_NORMAL)
            t->vocab.slot[i] = (uint32_t)id + 1;
    }
    return MH_OK;
}

/* ===== merges: (left id, right id) -> rank, result ===== */

static uint32_t pair_hash(uint64_t k) { k *= 0x9E3779B97F4A7C15ull; return (uint32_t)(k >> 32); }

int tok_merges_init(mh_tokenizer *t, size_t n, mh_err *err)
{
    uint32_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    t->merges.key = malloc(cap * sizeof *t->merges.key);
    t->merges.val = malloc(cap * sizeof *t->merges.val);
    if (!t->merges.key || !t->merges.val) return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    memset(t->merges.key, 0xFF, cap * sizeof *t->merges.key);
    t->merges.mask = cap - 1;
    return MH_OK;
}

void tok_merges_put(mh_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t result)
{
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t i = pair_hash(k) & t->merges.mask;
    while (t->merges.key[i] != UINT64_MAX) {
        if (t->merges.key[i] == k) return;      /* first (lowest) rank wins */
        i = (i + 1) & t->merges.mask;
    }
    t->merges.key[i] = k;
    t->merges.val[i] = (tok_merge){ rank, result };
}

const tok_merge *tok_merges_get(const mh_tokenizer *t, int32_t a, int32_t b)
{
    if (!t->merges.key || a < 0 || b < 0) return NULL;
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (uint32_t i = pair_hash(k) & t->merges.mask; t->merges.key[i] != UINT64_MAX;
         i = (i + 1) & t->merges.mask)
        if (t->merges.key[i] == k) return &t->merges.val[i];
    return NULL;
}

/* ===== finishing a vocabulary ===== */

static const mh_tokenizer *g_sort_tok;     /* qsort has no user pointer */
static int by_len_desc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = g_sort_tok->len[x], ly = g_sort_tok->len[y];
    return lx != ly ? (lx > ly ? -1 : 1) : (x > y) - (x < y);
}

static int build_specials(mh_tokenizer *t, mh_err *err)
{
    t->specials = malloc(((size_t)t->n_vocab + 1) * sizeof *t->specials);
    if (!t->specials) return mh_err_set(err, MH_ENOMEM, "tokenizer: out of memory");
    t->n_specials = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int a = t->attr[id];
        if ((a == MH_TOKEN_CONTROL || a == MH_TOKEN_USER_DEFINED || a == MH_TOKEN_UNKNOWN) &&
            t->len[id] > 0)
            t->specials[t->n_specials++] = id;
    }
    g_sort_tok = t;
    qsort(t->specials, (size_t)t->n_specials, sizeof *t->specials, by_len_desc);
    return MH_OK;
}

static void build_byte_table(mh_tokenizer *t)
{
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n;
        if (t->byte_level) {
            n = tok_utf8_put(tok_byte_to_cp((unsigned char)b), s);
        } else {
            static const char hex[] = "0123456789ABCDEF";
            memcpy(s, "<0x", 3);
            s[3] = hex[b >> 4]; s[4] = hex[b & 15]; s[5] = '>';
            n = 6;
        }
        t->byte_tok[b] = tok_find(t, s, n);
    }
}

/* True when no token holds U+2581 right after a character other than
 * U+2581: then no merge can join the text before a space mark with the
 * mark, and merging each piece cut there gives the same ids as merging the
 * whole text (which, for SentencePiece's unsplit text, would put every
 * pair of a long input in one heap). */
static bool marks_only_lead(const mh_tokenizer *t)
{
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = t->blob + t->off[id];
        uint32_t n = t->len[id];
        for (uint32_t i = 1; i + 3 <= n; i++) {
            if (memcmp(s + i, "\xE2\x96\x81", 3)) continue;
            if (i < 3 || memcmp(s + i - 3, "\xE2\x96\x81", 3)) return false;
        }
    }
    return true;
}

int tok_vocab_finish(mh_tokenizer *t, mh_err *err)
{
    int rc = build_strmap(t, err);
    if (!rc) rc = build_specials(t, err);
    if (!rc) build_byte_table(t);
    if (!rc) t->mark_splits = marks_only_lead(t);
    return rc;
}

/* ===== accessors ===== */

mh_tok_kind mh_tokenizer_kind(const mh_tokenizer *t) { return t->kind; }
const char *mh_tokenizer_kind_name(const mh_tokenizer *t)
{
    return t->kind == MH_TOK_SPM ? "spm" : t->kind == MH_TOK_BPE ? "bpe" : "wpm";
}
const char *mh_tokenizer_pre(const mh_tokenizer *t) { return t->pre_name; }
int32_t mh_tokenizer_n_vocab(const mh_tokenizer *t) { return t->n_vocab; }
const mh_tok_special *mh_tokenizer_special(const mh_tokenizer *t) { return &t->sp; }
bool mh_tokenizer_add_bos(const mh_tokenizer *t) { return t->add_bos; }
bool mh_tokenizer_add_eos(const mh_tokenizer *t) { return t->add_eos; }
const char *mh_tokenizer_chat_template(const mh_tokenizer *t) { return t->chat_template; }

const char *mh_tokenizer_text(const mh_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->len[id];
    return t->blob + t->off[id];
}

int32_t mh_tokenizer_id(const mh_tokenizer *t, const char *text, size_t len)
{
    return tok_find(t, text, len);
}

int tok_set_strip(mh_tokenizer *t, int32_t id, int bits, bool on)
{
    if (id < 0 || id >= t->n_vocab) return MH_OK;
    if (!t->strip && !on) return MH_OK;
    if (!t->strip && !(t->strip = calloc((size_t)t->n_vocab, 1))) return MH_ENOMEM;
    t->strip[id] = (uint8_t)(on ? (t->strip[id] | bits) : (t->strip[id] & ~bits));
    return MH_OK;
}

int mh_tokenizer_attr(const mh_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab ? t->attr[id] : 0;
}

float mh_tokenizer_score(const mh_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab ? t->scores[id] : 0.0f;
}

bool mh_tokenizer_is_eog(const mh_tokenizer *t, int32_t id)
{
    if (id < 0) return false;
    if (id == t->sp.eos || id == t->sp.eot || id == t->sp.eom) return true;
    if (id >= t->n_vocab || t->attr[id] != MH_TOKEN_CONTROL) return false;
    /* controls that chat models use as end markers under other names */
    static const char *ends[] = { "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                  "<|endoftext|>", "<|eom_id|>", "</s>", NULL };
    for (int i = 0; ends[i]; i++)
        if (t->len[id] == strlen(ends[i]) && !memcmp(t->blob + t->off[id], ends[i], t->len[id]))
            return true;
    return false;
}

/* ===== load / free ===== */

void mh_tokenizer_free(mh_tokenizer *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i].re);
    for (int i = 0; i < t->n_norm; i++) { free(t->norm[i].a); free(t->norm[i].b); }
    free(t->re); free(t->norm);
    free(t->blob); free(t->off); free(t->len); free(t->scores); free(t->attr);
    free(t->vocab.slot); free(t->merges.key); free(t->merges.val);
    free(t->specials); free(t->chat_template); free(t->strip);
    free(t);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int mh_tokenizer_load(const char *path, mh_tokenizer **out, mh_err *err)
{
    struct stat st;
    *out = NULL;
    if (!path || stat(path, &st) != 0)
        return mh_err_set(err, MH_EIO, "tokenizer: cannot find %s", path ? path : "(null)");
    if (S_ISDIR(st.st_mode)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/tokenizer.json", path);
        if (stat(p, &st) != 0)
            return mh_err_set(err, MH_EIO, "tokenizer: no tokenizer.json in %s", path);
        return mh_tokenizer_from_hf(p, out, err);
    }
    if (ends_with(path, ".json")) return mh_tokenizer_from_hf(path, out, err);
    mh_gguf *g;
    int rc = mh_gguf_open(path, &g, err);
    if (rc) return rc;
    rc = mh_tokenizer_from_gguf(g, out, err);
    mh_gguf_close(g);
    return rc;
}
