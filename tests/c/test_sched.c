/* test_sched.c: the request scheduler (engine/sched) on stories260K: batched
 * greedy output equals plain mh_model_forward decoding, chunked prefill,
 * max_tokens, eog, cancel, queueing, prefix cache, constraint hook,
 * logprobs, rejection at submit, stats and shutdown with live requests. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include "harness.h"
#include "mh/loop.h"
#include "mh/sched.h"

static mh_model *g_model;
static mh_loop *g_loop;

static const int32_t P1[] = { 1, 403, 407, 261, 378, 432, 383, 286, 261, 376 };
static const int32_t P2[] = { 1, 385, 410 };
static const int32_t P3[] = { 1, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312,
                              313, 314, 315, 316, 317, 318, 319, 320, 321, 322, 323, 324, 325 };
static const int32_t P4[] = { 1, 66, 400 };

/* Greedy decoding with mh_model_forward on a fresh f16 cache: the reference.
 * Stops after max tokens or at an id of eog (not written). Returns the count. */
static int ref_greedy(const int32_t *p, int64_t n, int max, const int32_t *eog, int n_eog, int32_t *out)
{
    const mh_hparams *hp = mh_model_hparams(g_model);
    mh_err err = { 0 };
    mh_kv_cache *c = mh_kv_cache_new(g_model, n + max + 1, &err);
    float *lg = malloc(sizeof(float) * (size_t)hp->n_vocab);
    int k = 0;
    int32_t tok[1];
    if (mh_model_forward(g_model, c, p, n, lg, false, &err)) { k = -1; goto done; }
    for (; k < max; k++) {
        int32_t id = 0;
        for (int32_t j = 1; j < hp->n_vocab; j++) if (lg[j] > lg[id]) id = j;
        for (int e = 0; e < n_eog; e++) if (eog[e] == id) goto done;
        out[k] = id;
        tok[0] = id;
        if (k + 1 < max && mh_model_forward(g_model, c, tok, 1, lg, false, &err)) { k = -1; goto done; }
    }
done:
    free(lg);
    mh_kv_cache_free(c);
    return k;
}

/* Reads events of ch until the final one; token ids into ids (cap). */
typedef struct result {
    int32_t ids[256];
    float lps[256];
    int n;
    mh_sched_token_ev first;
    mh_sched_done_ev done;
} result;

static int collect(mh_chan *ch, result *res)
{
    memset(res, 0, sizeof *res);
    for (;;) {
        mh_chan_msg m;
        mh_err err = { 0 };
        while (!mh_chan_pop(ch, &m)) {
            if (mh_chan_done(ch)) return -1;
            if (mh_loop_run(g_loop, 1, &err)) return -1;
        }
        if (m.tag == MH_SCHED_EV_TOKEN && m.len == sizeof(mh_sched_token_ev)) {
            mh_sched_token_ev ev;
            memcpy(&ev, m.data, sizeof ev);
            if (res->n == 0) res->first = ev;
            if (res->n < 256) { res->lps[res->n] = ev.logprob; res->ids[res->n] = ev.id; }
            res->n++;
            free(m.data);
            continue;
        }
        int ok = m.tag == MH_SCHED_EV_DONE && m.len == sizeof(mh_sched_done_ev);
        if (ok) memcpy(&res->done, m.data, sizeof res->done);
        free(m.data);
        return ok ? 0 : -1;
    }
}

static mh_sched_request greedy_req(const int32_t *p, int64_t n, int max)
{
    mh_sched_request r = { .tokens = p, .n_tokens = n, .max_tokens = max };
    mh_sampler_params_init(&r.sampler);
    r.sampler.temperature = 0;
    return r;
}

static mh_sched *new_sched(int par, int64_t ctx, int64_t chunk, bool prefix)
{
    mh_sched_params p;
    mh_sched_params_init(&p);
    p.n_parallel = par;
    p.n_ctx = ctx;
    p.prefill_chunk = chunk;
    p.prefix_cache = prefix;
    mh_err err = { 0 };
    mh_sched *s = mh_sched_new(g_model, &p, &err);
    if (!s) fprintf(stderr, "  sched_new: %s\n", err.msg);
    return s;
}

static int64_t submit(mh_sched *s, const mh_sched_request *r, mh_chan **ch)
{
    mh_err err = { 0 };
    *ch = mh_chan_new(g_loop, &err);
    int64_t id = mh_sched_submit(s, r, *ch, &err);
    if (id < 0) fprintf(stderr, "  submit: %s\n", err.msg);
    return id;
}

#define NEED_MODEL() do { if (!g_model) TEST_SKIP("models/stories260K.gguf missing"); } while (0)

/* Four different prompts batched together, prefill in chunks of 8: each
 * gives exactly the ids of plain greedy decoding. */
static void test_batched_equals_forward(void)
{
    NEED_MODEL();
    const int32_t *ps[4] = { P1, P2, P3, P4 };
    int64_t ns[4] = { 10, 3, 27, 3 };
    int maxs[4] = { 40, 25, 30, 12 };
    mh_sched *s = new_sched(4, 128, 8, true);
    CHECK(s);
    mh_chan *ch[4];
    /* held while submitting, so the four are admitted together: a loaded
     * host may run the compute thread between two submits, and then the
     * first runs alone (the step count below assumes they share steps) */
    mh_sched_hold(s, 1);
    for (int i = 0; i < 4; i++) {
        mh_sched_request r = greedy_req(ps[i], ns[i], maxs[i]);
        CHECK(submit(s, &r, &ch[i]) == i + 1);
    }
    mh_sched_hold(s, 0);
    int64_t total = 0;
    for (int i = 0; i < 4; i++) {
        result res;
        int32_t ref[64];
        CHECK(collect(ch[i], &res) == 0);
        mh_chan_release(ch[i]);
        CHECK(ref_greedy(ps[i], ns[i], maxs[i], NULL, 0, ref) == maxs[i]);
        CHECK_MSG(res.n == maxs[i], "request %d: %d tokens", i, res.n);
        for (int k = 0; k < maxs[i]; k++) CHECK_MSG(res.ids[k] == ref[k], "request %d token %d: %d vs %d", i, k, res.ids[k], ref[k]);
        CHECK(res.done.reason == MH_SCHED_LENGTH);
        CHECK(res.done.prompt_tokens == ns[i] && res.done.completion_tokens == maxs[i]);
        CHECK(res.done.ttft_ms >= 0 && res.done.queue_ms >= 0);
        total += maxs[i];
    }
    mh_sched_stats st;
    mh_sched_stats_get(s, &st);
    CHECK(st.running == 0 && st.waiting == 0 && st.requests_done == 4);
    CHECK(st.generated_tokens == total && st.prompt_tokens == 10 + 3 + 27 + 3);
    CHECK(st.kv_total == 4 * 128 && st.kv_used > 0 && st.kv_used <= st.kv_total);
    /* batching: far fewer forwards than tokens (prefill of 43 tokens by 8s,
     * then the longest request's decode) */
    CHECK_MSG(st.steps < total, "%lld steps for %lld tokens", (long long)st.steps, (long long)total);
    mh_sched_free(s);
}

/* An eog id ends the request with "stop" and is not emitted. */
static void test_eog_stops(void)
{
    NEED_MODEL();
    int32_t ref[40];
    CHECK(ref_greedy(P1, 10, 40, NULL, 0, ref) == 40);
    int k = 5;                        /* the first token at or after 5 not seen before */
    for (;; k++) {
        CHECK(k < 40);
        int seen = 0;
        for (int j = 0; j < k; j++) seen |= ref[j] == ref[k];
        if (!seen) break;
    }
    mh_sched *s = new_sched(2, 64, 256, true);
    CHECK(s);
    mh_sched_request r = greedy_req(P1, 10, 40);
    int32_t eog[2] = { 2, ref[k] };
    r.eog = eog;
    r.n_eog = 2;
    mh_chan *ch;
    result res;
    CHECK(submit(s, &r, &ch) > 0);
    CHECK(collect(ch, &res) == 0);
    mh_chan_release(ch);
    CHECK(res.done.reason == MH_SCHED_STOP);
    CHECK_MSG(res.n == k, "%d tokens, want %d", res.n, k);
    CHECK(res.done.completion_tokens == k);
    for (int j = 0; j < k; j++) CHECK(res.ids[j] == ref[j]);
    mh_sched_free(s);
}

/* A hook that, once a token was generated, holds the compute thread until
 * the test has asked for the cancel (at most 30 s): "mid-stream" is then an
 * order of events, where a loaded host could otherwise generate all 200
 * tokens before the main thread's cancel. */
typedef struct gate { _Atomic int open; } gate;
static int gate_fn(void *ud, float *lg, int64_t nv, const int32_t *toks, int64_t n, mh_err *err)
{
    gate *g = ud;
    (void)lg; (void)nv; (void)toks; (void)err;
    struct timespec ts = { 0, 1000000L };
    for (int i = 0; n >= 1 && !atomic_load(&g->open) && i < 30000; i++) nanosleep(&ts, NULL);
    return MH_OK;
}
static void gate_free(void *ud) { (void)ud; }

/* Cancel mid-stream and while queued; unknown ids are refused. */
static void test_cancel(void)
{
    NEED_MODEL();
    mh_sched *s = new_sched(1, 256, 256, true);
    CHECK(s);
    mh_sched_request r = greedy_req(P1, 10, 200);
    gate g = { 0 };
    r.hook = (mh_logits_hook){ &g, gate_fn, gate_free };
    mh_chan *a, *b;
    int64_t ia = submit(s, &r, &a);
    r.hook = (mh_logits_hook){ 0 };
    int64_t ib = submit(s, &r, &b);
    CHECK(ia > 0 && ib > ia);
    CHECK(mh_sched_cancel(s, ib) == 1);          /* still waiting behind a */
    CHECK(mh_sched_cancel(s, ib) == 0);          /* already asked */
    mh_chan_msg m;
    mh_err err = { 0 };
    while (!mh_chan_pop(a, &m)) CHECK(mh_loop_run(g_loop, 1, &err) == MH_OK);
    CHECK(m.tag == MH_SCHED_EV_TOKEN);
    free(m.data);
    CHECK(mh_sched_cancel(s, ia) == 1);
    atomic_store(&g.open, 1);
    result res;
    CHECK(collect(a, &res) == 0);
    CHECK(res.done.reason == MH_SCHED_CANCEL);
    CHECK(res.done.completion_tokens >= 1 && res.done.completion_tokens < 200);
    CHECK(collect(b, &res) == 0);
    CHECK(res.done.reason == MH_SCHED_CANCEL && res.n == 0 && res.done.completion_tokens == 0);
    CHECK(mh_sched_cancel(s, ia) == 0 && mh_sched_cancel(s, 999) == 0);
    mh_chan_release(a);
    mh_chan_release(b);
    /* the slot is usable again */
    mh_sched_request r2 = greedy_req(P2, 3, 5);
    CHECK(submit(s, &r2, &a) > 0);
    CHECK(collect(a, &res) == 0 && res.done.reason == MH_SCHED_LENGTH && res.n == 5);
    mh_chan_release(a);
    mh_sched_free(s);
}

/* More requests than slots: they queue (FIFO) and all complete correctly. */
static void test_queueing(void)
{
    NEED_MODEL();
    enum { N = 6 };
    mh_sched *s = new_sched(2, 96, 16, false);
    CHECK(s);
    const int32_t *ps[N] = { P1, P2, P3, P4, P2, P1 };
    int64_t ns[N] = { 10, 3, 27, 3, 3, 10 };
    mh_chan *ch[N];
    for (int i = 0; i < N; i++) {
        mh_sched_request r = greedy_req(ps[i], ns[i], 8 + i);
        CHECK(submit(s, &r, &ch[i]) > 0);
    }
    mh_sched_stats st;
    mh_sched_stats_get(s, &st);
    CHECK(st.running + st.waiting <= N && st.running <= 2);
    for (int i = 0; i < N; i++) {
        result res;
        int32_t ref[32];
        CHECK(collect(ch[i], &res) == 0);
        mh_chan_release(ch[i]);
        CHECK(ref_greedy(ps[i], ns[i], 8 + i, NULL, 0, ref) == 8 + i);
        CHECK(res.n == 8 + i && res.done.reason == MH_SCHED_LENGTH);
        CHECK(res.done.cached_tokens == 0);      /* prefix cache off */
        for (int k = 0; k < res.n; k++) CHECK(res.ids[k] == ref[k]);
    }
    mh_sched_stats_get(s, &st);
    CHECK(st.requests_done == N && st.running == 0 && st.waiting == 0 && st.prefix_hits == 0);
    mh_sched_free(s);
}

/* A follower sharing a prefix reuses the slot's cache and decodes the same. */
static void test_prefix_cache(void)
{
    NEED_MODEL();
    mh_sched *s = new_sched(2, 128, 256, true);
    CHECK(s);
    result res;
    mh_chan *ch;
    mh_sched_request r = greedy_req(P3, 27, 10);
    CHECK(submit(s, &r, &ch) > 0);
    CHECK(collect(ch, &res) == 0 && res.done.cached_tokens == 0);
    mh_chan_release(ch);
    int32_t q[24];
    memcpy(q, P3, sizeof(int32_t) * 20);
    q[20] = 100; q[21] = 101; q[22] = 102; q[23] = 103;
    mh_sched_request r2 = greedy_req(q, 24, 12);
    CHECK(submit(s, &r2, &ch) > 0);
    CHECK(collect(ch, &res) == 0);
    mh_chan_release(ch);
    CHECK_MSG(res.done.cached_tokens == 20, "cached %lld", (long long)res.done.cached_tokens);
    int32_t ref[16];
    CHECK(ref_greedy(q, 24, 12, NULL, 0, ref) == 12);
    CHECK(res.n == 12);
    for (int k = 0; k < 12; k++) CHECK(res.ids[k] == ref[k]);
    /* the same prompt again: all but the last token come from the cache */
    CHECK(submit(s, &r2, &ch) > 0);
    CHECK(collect(ch, &res) == 0);
    mh_chan_release(ch);
    CHECK(res.done.cached_tokens == 23);
    for (int k = 0; k < 12; k++) CHECK(res.ids[k] == ref[k]);
    mh_sched_stats st;
    mh_sched_stats_get(s, &st);
    CHECK(st.prefix_hits == 2 && st.prefix_tokens == 43);
    mh_sched_free(s);
}

/* Requests that cannot run are refused at submit with a clear error. */
static void test_rejects(void)
{
    NEED_MODEL();
    mh_sched *s = new_sched(1, 64, 256, true);
    CHECK(s);
    mh_chan *ch = mh_chan_new(g_loop, NULL);
    mh_err err = { 0 };
    int32_t big[60] = { 1 };
    mh_sched_request r = greedy_req(big, 60, 10);
    CHECK(mh_sched_submit(s, &r, ch, &err) == -1 && err.code == MH_ERANGE);
    CHECK(strstr(err.msg, "exceeds the context of 64"));
    r = greedy_req(big, 0, 10);
    CHECK(mh_sched_submit(s, &r, ch, &err) == -1 && err.code == MH_EINVAL);
    int32_t bad[2] = { 1, 512 };
    r = greedy_req(bad, 2, 4);
    CHECK(mh_sched_submit(s, &r, ch, &err) == -1 && strstr(err.msg, "outside the vocabulary"));
    r = greedy_req(P2, 3, -1);
    CHECK(mh_sched_submit(s, &r, ch, &err) == -1 && strstr(err.msg, "max_tokens"));
    r = greedy_req(P2, 3, 4);
    r.sampler.temperature = -1;
    CHECK(mh_sched_submit(s, &r, ch, &err) == -1 && err.code == MH_EINVAL);
    r = greedy_req(P2, 3, 4);
    r.n_top = 21;
    CHECK(mh_sched_submit(s, &r, ch, &err) == -1);
    mh_sched_params p;
    mh_sched_params_init(&p);
    p.n_parallel = 4;
    p.mem_limit = 1000;
    CHECK(!mh_sched_new(g_model, &p, &err) && err.code == MH_ENOMEM && strstr(err.msg, "limit"));
    p.mem_limit = 0;
    p.n_parallel = 0;
    CHECK(!mh_sched_new(g_model, &p, &err) && err.code == MH_EINVAL);
    mh_chan_release(ch);
    mh_sched_free(s);
}

/* Constraint hook: mask bans the greedy choice; accept and free are called. */
typedef struct ban { int32_t id; int masks, accepts, frees; } ban;
static int ban_mask(void *ud, float *lg, int64_t n) { ban *b = ud; if (b->id < n) lg[b->id] = -INFINITY; b->masks++; return 0; }
static int ban_accept(void *ud, int32_t id) { ban *b = ud; b->accepts++; return id == b->id; }
static void ban_free(void *ud) { ((ban *)ud)->frees++; }

static void test_constraint_and_logprobs(void)
{
    NEED_MODEL();
    int32_t ref[8];
    CHECK(ref_greedy(P1, 10, 8, NULL, 0, ref) == 8);
    mh_sched *s = new_sched(2, 64, 256, true);
    CHECK(s);
    ban b = { ref[0], 0, 0, 0 };
    mh_sched_request r = greedy_req(P1, 10, 4);
    r.constraint = (mh_sample_constraint){ &b, ban_mask, ban_accept, ban_free };
    r.n_top = 5;
    mh_chan *ch;
    result res;
    CHECK(submit(s, &r, &ch) > 0);
    CHECK(collect(ch, &res) == 0);
    mh_chan_release(ch);
    CHECK(res.n == 4 && res.ids[0] != ref[0]);
    for (int k = 0; k < 4; k++) CHECK(res.ids[k] != ref[0]);
    CHECK(b.masks == 4 && b.accepts == 4 && b.frees == 1);
    /* greedy: the chosen id is the best of the top list */
    CHECK(res.first.n_top == 5 && res.first.top_ids[0] == res.first.id);
    CHECK(res.first.logprob <= 0 && res.first.logprob == res.first.top_logprobs[0]);
    for (int k = 1; k < 5; k++) CHECK(res.first.top_logprobs[k] <= res.first.top_logprobs[k - 1]);
    /* a mask that fails ends the request with an error */
    ban b2 = { 0, 0, 0, 0 };
    r = greedy_req(P1, 10, 4);
    r.constraint = (mh_sample_constraint){ &b2, ban_mask, ban_accept, ban_free };
    r.constraint.accept = NULL;
    r.constraint.mask = NULL;
    r.logprobs = true;
    CHECK(submit(s, &r, &ch) > 0);
    CHECK(collect(ch, &res) == 0 && res.done.reason == MH_SCHED_LENGTH && b2.frees == 1);
    CHECK(res.first.n_top == 0 && res.first.logprob <= 0 && res.first.logprob > -100);
    mh_chan_release(ch);
    ban b3 = { ref[0], 0, 0, 0 };
    r = greedy_req(P1, 10, 4);
    r.constraint = (mh_sample_constraint){ &b3, NULL, ban_accept, ban_free };
    CHECK(submit(s, &r, &ch) > 0);
    CHECK(collect(ch, &res) == 0 && res.done.reason == MH_SCHED_ERROR && res.n == 0);
    CHECK(strstr(res.done.message, "constraint") && b3.frees == 1);
    mh_chan_release(ch);
    mh_sched_free(s);
}

/* Sampled (non-greedy) requests with a seed repeat exactly (one slot and
 * no prefix cache, so both see bit-identical logits: batch composition
 * changes the last bits); freeing the scheduler with requests running and
 * queued cancels them all. */
static void test_seeded_and_shutdown(void)
{
    NEED_MODEL();
    mh_sched *s = new_sched(1, 256, 64, false);
    CHECK(s);
    mh_sched_request r = greedy_req(P1, 10, 20);
    r.sampler.temperature = 0.9f;
    r.sampler.seed = 42;
    mh_chan *a, *b;
    result ra, rb;
    CHECK(submit(s, &r, &a) > 0 && submit(s, &r, &b) > 0);
    CHECK(collect(a, &ra) == 0 && collect(b, &rb) == 0);
    CHECK(ra.n == 20 && rb.n == 20);
    for (int k = 0; k < 20; k++) CHECK(ra.ids[k] == rb.ids[k]);
    mh_chan_release(a);
    mh_chan_release(b);
    mh_chan *ch[4];
    mh_sched_request big = greedy_req(P1, 10, 200);
    for (int i = 0; i < 4; i++) CHECK(submit(s, &big, &ch[i]) > 0);
    mh_sched_free(s);
    for (int i = 0; i < 4; i++) {
        result res;
        CHECK(collect(ch[i], &res) == 0);
        CHECK(res.done.reason == MH_SCHED_CANCEL || res.done.reason == MH_SCHED_LENGTH);
        CHECK(res.done.reason == MH_SCHED_CANCEL || res.n == 200);
        mh_chan_release(ch[i]);
    }
    CHECK(!strcmp(mh_sched_reason_name(MH_SCHED_CANCEL), "cancel"));
}


/* ===== the one loop: synchronous use, text, stops, hooks, settings ===== */

static mh_tokenizer *g_tok;

/* Events of ch with their text: steps a synchronous s (or runs the loop when
 * s is NULL) until the final event. Text of all events joined into text. */
typedef struct tresult {
    int32_t ids[256];
    int n;
    char text[4096];
    size_t n_text;
    int n_events_text[256];       /* bytes each token event carried */
    mh_sched_done_ev done;
} tresult;

static int collect_text(mh_sched *s, mh_chan *ch, tresult *res)
{
    memset(res, 0, sizeof *res);
    for (;;) {
        mh_chan_msg m;
        while (!mh_chan_pop(ch, &m)) {
            mh_err err = { 0 };
            if (mh_chan_done(ch)) return -1;
            if (s ? !mh_sched_step(s) : mh_loop_run(g_loop, 1, &err) != MH_OK) return -1;
        }
        size_t head = m.tag == MH_SCHED_EV_TOKEN ? sizeof(mh_sched_token_ev) : sizeof(mh_sched_done_ev);
        if (m.len < head || res->n_text + (m.len - head) >= sizeof res->text) { free(m.data); return -1; }
        memcpy(res->text + res->n_text, m.data + head, m.len - head);
        res->n_text += m.len - head;
        if (m.tag == MH_SCHED_EV_TOKEN) {
            mh_sched_token_ev ev;
            memcpy(&ev, m.data, sizeof ev);
            if (res->n < 256) { res->ids[res->n] = ev.id; res->n_events_text[res->n] = ev.n_text; }
            res->n++;
            free(m.data);
            continue;
        }
        memcpy(&res->done, m.data, sizeof res->done);
        free(m.data);
        return (size_t)res->done.n_text == m.len - head ? 0 : -1;
    }
}

static mh_sched *new_sync(mh_kv_cache *c, const int32_t *hist, int64_t n_hist, bool with_tok)
{
    mh_sched_params p;
    mh_sched_params_init(&p);
    p.tok = with_tok ? g_tok : NULL;
    mh_err err = { 0 };
    mh_sched *s = mh_sched_new_sync(g_model, &p, c, hist, n_hist, &err);
    if (!s) fprintf(stderr, "  new_sync: %s\n", err.msg);
    return s;
}

/* A seeded request gives the same ids on the compute thread and on the
 * caller's; the synchronous slot then reuses its cache's prefix. */
static void test_sync_equals_threaded(void)
{
    NEED_MODEL();
    mh_sched_request r;
    mh_sched_request_init(&r);
    r.tokens = P1;
    r.n_tokens = 10;
    r.max_tokens = 30;
    r.sampler.temperature = 0.9f;
    r.sampler.seed = 5;
    mh_sched *s = new_sched(1, 128, 256, true);
    mh_chan *ch;
    tresult a, b;
    CHECK(s && submit(s, &r, &ch) > 0 && collect_text(NULL, ch, &a) == 0);
    mh_chan_release(ch);
    mh_sched_free(s);
    mh_err err = { 0 };
    mh_kv_cache *c = mh_kv_cache_new(g_model, 128, &err);
    s = new_sync(c, NULL, 0, false);
    CHECK(s && submit(s, &r, &ch) > 0 && collect_text(s, ch, &b) == 0);
    mh_chan_release(ch);
    CHECK(a.n == 30 && b.n == 30);
    for (int k = 0; k < 30; k++) CHECK_MSG(a.ids[k] == b.ids[k], "token %d: %d vs %d", k, a.ids[k], b.ids[k]);
    const int32_t *held;
    int64_t n_held = mh_sched_slot_tokens(s, 0, &held);
    CHECK(n_held == 10 + 29);             /* the last sampled id was never fed */
    CHECK(n_held == 39 && !memcmp(held, P1, sizeof P1) && held[10] == b.ids[0]);
    int32_t hist[64];
    memcpy(hist, held, sizeof(int32_t) * (size_t)n_held);
    mh_sched_free(s);
    /* a new scheduler over the same cache and history reuses the prefix */
    s = new_sync(c, hist, n_held, false);
    r.max_tokens = 4;
    CHECK(s && submit(s, &r, &ch) > 0 && collect_text(s, ch, &b) == 0);
    CHECK_MSG(b.done.cached_tokens == 9, "cached %lld", (long long)b.done.cached_tokens);
    CHECK(b.n == 4 && b.ids[0] == a.ids[0]);
    CHECK(mh_sched_step(s) == 0);         /* idle: nothing left to do */
    mh_chan_release(ch);
    mh_sched_free(s);
    mh_kv_cache_free(c);
}

/* Events carry the decoded text; a stop string ends the request before it,
 * whichever token completes it; the done event reports the settings. */
static void test_text_stops_settings(void)
{
    NEED_MODEL();
    if (!g_tok) TEST_SKIP("no tokenizer");
    mh_sched *s = new_sched(1, 128, 256, false);
    mh_sched_params p;
    mh_sched_params_init(&p);
    p.tok = g_tok;
    mh_sched_free(s);
    mh_err err = { 0 };
    s = mh_sched_new(g_model, &p, &err);
    CHECK(s);
    mh_sched_request r = greedy_req(P1, 10, 40);
    mh_chan *ch;
    tresult a, b;
    CHECK(submit(s, &r, &ch) > 0 && collect_text(NULL, ch, &a) == 0);
    mh_chan_release(ch);
    mh_tok_buf ref = { 0 };
    CHECK(mh_tokenizer_decode(g_tok, (const int32_t *)a.ids, (size_t)a.n, MH_DECODE_SKIP_SPECIAL, &ref, &err) == MH_OK);
    CHECK_MSG(ref.n == a.n_text && !memcmp(ref.p, a.text, ref.n), "text '%.*s' vs '%.*s'",
              (int)a.n_text, a.text, (int)ref.n, ref.p);
    /* stop at a word from the middle of that text */
    CHECK(a.n_text > 30);
    char stop[8];
    memcpy(stop, a.text + 20, 5);
    stop[5] = 0;
    const char *stops[] = { "never there", stop };
    r.stops = stops;
    r.n_stops = 2;
    r.sampler.top_k = 7;
    CHECK(submit(s, &r, &ch) > 0 && collect_text(NULL, ch, &b) == 0);
    mh_chan_release(ch);
    const char *at = strstr(a.text, stop);
    CHECK(b.done.reason == MH_SCHED_STOP && b.done.stop_index == 1);
    CHECK_MSG(b.n_text == (size_t)(at - a.text) && !memcmp(b.text, a.text, b.n_text), "got '%.*s'",
              (int)b.n_text, b.text);
    CHECK(b.done.max_tokens == 40 && b.done.n_stops == 2 && b.done.sampler.top_k == 7);
    CHECK(b.done.sampler.temperature == 0 && b.done.sampler.seed == 0 && !b.done.processed);
    mh_tok_buf_free(&ref);
    /* stops need a tokenizer */
    mh_sched_free(s);
    s = new_sched(1, 128, 256, false);
    ch = mh_chan_new(g_loop, NULL);
    CHECK(mh_sched_submit(s, &r, ch, &err) == -1 && strstr(err.msg, "tokenizer"));
    mh_chan_release(ch);
    mh_sched_free(s);
}

/* A logits hook forcing byte tokens: "é" split over two tokens is one piece
 * of text, a lead byte cut off by the end is U+FFFD; a failing hook ends
 * the request with its message. */
typedef struct force { const int32_t *ids; int n, calls, frees, fail_at; int64_t seen[8]; } force;
static int force_fn(void *ud, float *lg, int64_t nv, const int32_t *toks, int64_t n, mh_err *err)
{
    force *f = ud;
    (void)toks;
    if (f->calls < 8) f->seen[f->calls] = n;
    if (++f->calls == f->fail_at) return mh_err_set(err, MH_EINVAL, "hook says no");
    for (int64_t i = 0; i < nv; i++) lg[i] = -1e9f;
    lg[f->ids[n < f->n ? n : f->n - 1]] = 0;
    return MH_OK;
}
static void force_free(void *ud) { ((force *)ud)->frees++; }

static void test_hook_and_utf8(void)
{
    NEED_MODEL();
    if (!g_tok) TEST_SKIP("no tokenizer");
    int32_t c3 = mh_tokenizer_id(g_tok, "<0xC3>", 6), a9 = mh_tokenizer_id(g_tok, "<0xA9>", 6);
    CHECK(c3 >= 0 && a9 >= 0);
    const int32_t seq[] = { c3, a9, c3 };
    force f = { seq, 3, 0, 0, 0, { 0 } };
    mh_err err = { 0 };
    mh_kv_cache *c = mh_kv_cache_new(g_model, 64, &err);
    mh_sched *s = new_sync(c, NULL, 0, true);
    mh_sched_request r = greedy_req(P2, 3, 3);
    r.hook = (mh_logits_hook){ &f, force_fn, force_free };
    mh_chan *ch;
    tresult a;
    CHECK(s && submit(s, &r, &ch) > 0 && collect_text(s, ch, &a) == 0);
    mh_chan_release(ch);
    CHECK(a.n == 3 && a.ids[0] == c3 && a.ids[1] == a9 && a.ids[2] == c3);
    CHECK(a.n_events_text[0] == 0 && a.n_events_text[1] == 2 && a.n_events_text[2] == 0);
    CHECK_MSG(a.n_text == 5 && !memcmp(a.text, "\xC3\xA9\xEF\xBF\xBD", 5), "text '%.*s'", (int)a.n_text, a.text);
    CHECK(f.calls == 3 && f.frees == 1 && f.seen[0] == 0 && f.seen[1] == 1 && f.seen[2] == 2);
    CHECK(a.done.processed && a.done.reason == MH_SCHED_LENGTH);
    force g = { seq, 3, 0, 0, 2, { 0 } };
    r.hook = (mh_logits_hook){ &g, force_fn, force_free };
    CHECK(submit(s, &r, &ch) > 0 && collect_text(s, ch, &a) == 0);
    mh_chan_release(ch);
    CHECK(a.done.reason == MH_SCHED_ERROR && strstr(a.done.message, "hook says no") && g.frees == 1);
    CHECK(a.n == 1);
    mh_sched_free(s);
    mh_kv_cache_free(c);
}

/* mh_utf8_clean: valid text passes; every byte that is not part of a valid
 * sequence becomes U+FFFD. */
static void test_utf8_clean(void)
{
    static const struct { const char *in, *out; } cases[] = {
        { "plain \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "plain \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80" },
        { "\xE9", "\xEF\xBF\xBD" },                            /* a lone lead */
        { "a\x80z", "a\xEF\xBF\xBDz" },                        /* a stray continuation */
        { "\xE2\x82", "\xEF\xBF\xBD\xEF\xBF\xBD" },            /* cut short */
        { "\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD" },            /* overlong */
        { "\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" },   /* a surrogate */
        { "\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" },   /* > U+10FFFF */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        size_t n = mh_utf8_clean(cases[i].in, strlen(cases[i].in), out);
        CHECK_MSG(n == strlen(cases[i].out) && !memcmp(out, cases[i].out, n), "case %zu", i);
    }
}

int main(void)
{
    char mp[4096];
    mh_err err = { 0 };
    g_loop = mh_loop_new(&err);
    if (!g_loop) { fprintf(stderr, "loop: %s\n", err.msg); return 1; }
    if (test_data_path("models/stories260K.gguf", mp) && mh_model_load(mp, &g_model, &err)) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    TEST_RUN(test_batched_equals_forward);
    TEST_RUN(test_eog_stops);
    TEST_RUN(test_cancel);
    TEST_RUN(test_queueing);
    TEST_RUN(test_prefix_cache);
    TEST_RUN(test_rejects);
    TEST_RUN(test_constraint_and_logprobs);
    TEST_RUN(test_seeded_and_shutdown);
    if (g_model && mh_tokenizer_load(mp, &g_tok, &err)) fprintf(stderr, "tokenizer: %s\n", err.msg);
    TEST_RUN(test_sync_equals_threaded);
    TEST_RUN(test_text_stops_settings);
    TEST_RUN(test_hook_and_utf8);
    TEST_RUN(test_utf8_clean);
    mh_tokenizer_free(g_tok);
    mh_model_free(g_model);
    mh_loop_release(g_loop);
    return TEST_REPORT();
}
