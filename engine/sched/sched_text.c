/* sched_text.c: the text of a request, made where its tokens are made so
 * every caller (Lua, CLI, HTTP) gets the same: ids are detokenized with the
 * streaming decoder, made valid UTF-8, and passed through the stop-string
 * matcher, which holds back what could become a stop.
 * Layer: engine/sched (pure C11; mh/tokenizer.h, mh/sample.h). */
#include <stdlib.h>
#include <string.h>
#include "sched_internal.h"

int mh_sched_text_init(const mh_sched *s, sched_req *q, const mh_sched_request *r, mh_err *err)
{
    if (r->n_stops < 0 || r->n_stops > MH_SCHED_MAX_STOPS || (r->n_stops > 0 && !r->stops))
        return mh_err_set(err, MH_EINVAL, "sched: stop strings must be a list of at most %d",
                          MH_SCHED_MAX_STOPS);
    if (!s->p.tok) {
        if (r->n_stops > 0)
            return mh_err_set(err, MH_EINVAL, "sched: stop strings need a scheduler with a tokenizer");
        return MH_OK;
    }
    q->stop = mh_stop_new(r->stops, r->n_stops, err);
    if (!q->stop) return err ? err->code : MH_EINVAL;
    q->n_stops = r->n_stops;
    mh_tok_stream_init(&q->dec, s->p.tok, MH_DECODE_SKIP_SPECIAL);
    return MH_OK;
}

void mh_sched_text_free(sched_req *q)
{
    if (q->stop) mh_tok_stream_free(&q->dec);
    mh_stop_free(q->stop);
    free(q->text);
    q->stop = NULL;
    q->text = NULL;
}

/* Room for n more bytes of q->text. */
static int text_reserve(sched_req *q, size_t n, mh_err *err)
{
    if (q->text_n + n <= q->text_cap) return MH_OK;
    size_t cap = q->text_cap ? q->text_cap : 64;
    while (cap < q->text_n + n) cap *= 2;
    char *t = realloc(q->text, cap);
    if (!t) return mh_err_set(err, MH_ENOMEM, "sched: out of memory for text");
    q->text = t;
    q->text_cap = cap;
    return MH_OK;
}

/* raw (n bytes), made valid UTF-8, through the stop matcher into q->text. */
static int through_stops(sched_req *q, const char *raw, size_t n, bool *stopped, mh_err *err)
{
    char *clean = malloc(3 * n + 1);
    if (!clean) return mh_err_set(err, MH_ENOMEM, "sched: out of memory for text");
    size_t cn = mh_utf8_clean(raw, n, clean);
    const char *emit;
    size_t elen;
    int st = mh_stop_push(q->stop, clean, cn, &emit, &elen, stopped, err);
    free(clean);
    if (st != MH_OK) return st;
    if (elen == 0) return MH_OK;          /* q->text may still be NULL */
    if (text_reserve(q, elen, err) != MH_OK) return MH_ENOMEM;
    memcpy(q->text + q->text_n, emit, elen);
    q->text_n += elen;
    return MH_OK;
}

int mh_sched_text_push(sched_req *q, int32_t id, bool *stopped, mh_err *err)
{
    q->text_n = 0;
    *stopped = false;
    if (!q->stop) return MH_OK;
    mh_tok_buf raw = { 0 };
    int st = mh_tok_stream_push(&q->dec, id, &raw, err);
    if (st == MH_OK) st = through_stops(q, raw.p ? raw.p : "", raw.n, stopped, err);
    mh_tok_buf_free(&raw);
    return st;
}

void mh_sched_text_flush(sched_req *q)
{
    q->text_n = 0;
    if (!q->stop) return;
    mh_tok_buf raw = { 0 };
    bool stopped = false;
    /* the decoder's held bytes are an incomplete sequence: cleaned to U+FFFD */
    if (mh_tok_stream_flush(&q->dec, &raw, NULL) == MH_OK && raw.n)
        through_stops(q, raw.p, raw.n, &stopped, NULL);
    mh_tok_buf_free(&raw);
    const char *emit;
    size_t elen;
    mh_stop_flush(q->stop, &emit, &elen);
    if (elen && text_reserve(q, elen, NULL) == MH_OK) {
        memcpy(q->text + q->text_n, emit, elen);
        q->text_n += elen;
    }
}

int mh_sched_push_event(sched_req *q, int tag, void *ev, size_t size, int32_t *n_text)
{
    *n_text = (int32_t)q->text_n;
    char stackbuf[512];
    size_t len = size + q->text_n;
    char *buf = len <= sizeof stackbuf ? stackbuf : malloc(len);
    if (!buf) return MH_ENOMEM;
    memcpy(buf, ev, size);
    if (q->text_n) memcpy(buf + size, q->text, q->text_n);
    int st = mh_chan_push(q->out, tag, buf, len, NULL);
    if (buf != stackbuf) free(buf);
    q->text_n = 0;
    return st;
}
