/* stop.c: stop-string matcher for streamed text. It holds back what could
 * still become a stop string (and incomplete UTF-8 at the end), so a stop
 * split across tokens is never shown; and mh_utf8_clean, which makes any
 * bytes valid UTF-8. Layer: engine/sample (pure C11). */
#include <stdlib.h>
#include <string.h>
#include "mh/sample.h"

struct mh_stop_matcher {
    char **stops;        /* (n) own copies */
    size_t *lens;        /* (n) */
    int n;
    size_t max_len;
    char *buf;           /* (len) text not yet shown; the first `drop` bytes
                            were handed out by the last call */
    size_t len, cap, drop;
    bool stopped;
    int which;
};

mh_stop_matcher *mh_stop_new(const char *const *stops, int n, mh_err *err)
{
    if (n < 0 || (n > 0 && !stops)) {
        mh_err_set(err, MH_EINVAL, "stop: %d stop strings need an array", n);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (!stops[i] || !stops[i][0]) {
            mh_err_set(err, MH_EINVAL, "stop: stop string %d is %s", i + 1, stops[i] ? "empty" : "NULL");
            return NULL;
        }
    }
    mh_stop_matcher *m = calloc(1, sizeof *m);
    if (!m) goto nomem;
    m->which = -1;
    m->n = n;
    if (n > 0) {
        m->stops = calloc((size_t)n, sizeof *m->stops);
        m->lens = calloc((size_t)n, sizeof *m->lens);
        if (!m->stops || !m->lens) goto nomem;
    }
    for (int i = 0; i < n; i++) {
        m->lens[i] = strlen(stops[i]);
        if (!(m->stops[i] = malloc(m->lens[i] + 1))) goto nomem;
        memcpy(m->stops[i], stops[i], m->lens[i] + 1);
        if (m->lens[i] > m->max_len) m->max_len = m->lens[i];
    }
    return m;
nomem:
    mh_stop_free(m);
    mh_err_set(err, MH_ENOMEM, "stop: out of memory");
    return NULL;
}

void mh_stop_free(mh_stop_matcher *m)
{
    if (!m) return;
    for (int i = 0; m->stops && i < m->n; i++) free(m->stops[i]);
    free(m->stops); free(m->lens); free(m->buf);
    free(m);
}

void mh_stop_reset(mh_stop_matcher *m)
{
    if (!m) return;
    m->len = m->drop = 0;
    m->stopped = false;
    m->which = -1;
}

int mh_stop_which(const mh_stop_matcher *m) { return m ? m->which : -1; }

/* First occurrence of needle in hay[from, hlen), or -1. */
static long find_from(const char *hay, size_t hlen, size_t from, const char *needle, size_t nlen)
{
    for (size_t i = from; i + nlen <= hlen; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0) return (long)i;
    return -1;
}

/* The stop that ends first in buf (ties: the longest); only matches ending
 * past old_len are new, since the previous buffer held none. */
static int find_stop(const mh_stop_matcher *m, size_t old_len, size_t *start)
{
    int best = -1;
    size_t best_end = 0;
    for (int k = 0; k < m->n; k++) {
        size_t l = m->lens[k], from = old_len >= l ? old_len - (l - 1) : 0;
        long pos = find_from(m->buf, m->len, from, m->stops[k], l);
        if (pos < 0) continue;
        size_t end = (size_t)pos + l;
        if (best < 0 || end < best_end || (end == best_end && l > m->lens[best])) {
            best = k; best_end = end; *start = (size_t)pos;
        }
    }
    return best;
}

/* Length of the longest tail of buf that is a proper prefix of a stop. */
static size_t held_tail(const mh_stop_matcher *m)
{
    size_t h = m->max_len ? m->max_len - 1 : 0;
    if (h > m->len) h = m->len;
    for (; h > 0; h--)
        for (int k = 0; k < m->n; k++)
            if (m->lens[k] > h && memcmp(m->buf + m->len - h, m->stops[k], h) == 0) return h;
    return 0;
}

/* Moves end back to the start of a UTF-8 sequence left incomplete before it. */
static size_t utf8_boundary(const char *buf, size_t end)
{
    for (size_t back = 1; back <= 3 && back <= end; back++) {
        unsigned char c = (unsigned char)buf[end - back];
        if ((c & 0xC0) == 0x80) continue;          /* continuation: keep looking */
        size_t need = c >= 0xF0 && c <= 0xF7 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back && c < 0xF8 ? end - back : end;
    }
    return end;   /* ASCII, or stray continuation bytes: not ours to fix */
}

int mh_stop_push(mh_stop_matcher *m, const char *piece, size_t len,
                 const char **emit, size_t *emit_len, bool *stopped, mh_err *err)
{
    if (!m || !emit || !emit_len || !stopped || (len > 0 && !piece))
        return mh_err_set(err, MH_EINVAL, "stop.push: NULL argument");
    if (m->drop) {   /* forget what the last call handed out */
        memmove(m->buf, m->buf + m->drop, m->len - m->drop);
        m->len -= m->drop;
        m->drop = 0;
    }
    *emit = m->buf ? m->buf : "";
    *emit_len = 0;
    *stopped = m->stopped;
    if (m->stopped) return MH_OK;
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap < m->len + len) cap *= 2;
        char *b = realloc(m->buf, cap);
        if (!b) return mh_err_set(err, MH_ENOMEM, "stop.push: out of memory");
        m->buf = b;
        m->cap = cap;
    }
    size_t old_len = m->len;
    if (len) memcpy(m->buf + m->len, piece, len);
    m->len += len;
    *emit = m->buf;
    size_t start = 0;
    int k = find_stop(m, old_len, &start);
    if (k >= 0) {
        m->stopped = *stopped = true;
        m->which = k;
        *emit_len = start;
        m->drop = m->len;
        return MH_OK;
    }
    *emit_len = utf8_boundary(m->buf, m->len - held_tail(m));
    m->drop = *emit_len;
    return MH_OK;
}

void mh_stop_flush(mh_stop_matcher *m, const char **emit, size_t *emit_len)
{
    if (emit) *emit = "";
    if (emit_len) *emit_len = 0;
    if (!m || !emit || !emit_len || m->stopped || !m->buf) return;
    *emit = m->buf + m->drop;
    *emit_len = m->len - m->drop;
    m->drop = m->len;
}

/* ===== UTF-8 cleaning ===== */

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 when the
 * bytes there are not one (RFC 3629: no overlongs, surrogates or > U+10FFFF). */
static size_t utf8_valid_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!need || need > n) return 0;
    unsigned char lo = 0x80, hi = 0xBF;     /* the second byte's range */
    if (c == 0xE0) lo = 0xA0;
    else if (c == 0xED) hi = 0x9F;
    else if (c == 0xF0) lo = 0x90;
    else if (c == 0xF4) hi = 0x8F;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t k = 2; k < need; k++)
        if ((p[k] & 0xC0) != 0x80) return 0;
    return need;
}

size_t mh_utf8_clean(const char *in, size_t n, char *out)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_valid_len(p + i, n - i);
        if (k) {
            memcpy(out + w, p + i, k);
            w += k;
            i += k;
        } else {
            memcpy(out + w, "\xEF\xBF\xBD", 3);   /* U+FFFD for this one byte */
            w += 3;
            i++;
        }
    }
    return w;
}
