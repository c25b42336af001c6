/* sched_step.c: the scheduler's compute thread, and the same step run by
 * the caller for a synchronous scheduler. Each step: end cancelled
 * requests, admit waiting ones into free slots (longest cached prefix
 * first), run ONE mh_model_forward_batch over every decoding slot's last
 * token plus a chunk of pending prompt tokens, then sample each slot
 * (logits hook, constraint, sampler, logprobs, eog, text and stop strings).
 * Layer: engine/sched (pure C11 + pthreads). Only the stepping thread runs
 * the model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sched_internal.h"

/* ===== admission (under s->mu) ===== */

static int64_t common_prefix(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    int64_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* Prompt tokens a prefix of common ids saves: the last prompt token always
 * runs again, its logits start decoding. */
static int64_t reusable(const sched_req *r, int64_t common)
{
    return common < r->n_tokens - 1 ? common : r->n_tokens - 1;
}

/* Whether sl's cached rows were computed with r's own adapters (same
 * adapters, same scales, same order): only then is its prefix r's. */
static bool same_loras(const sched_slot *sl, const sched_req *r)
{
    if (sl->n_lkey != r->n_loras) return false;
    for (int i = 0; i < r->n_loras; i++)
        if (sl->lkey[i].lora != r->loras[i].lora || sl->lkey[i].scale != r->loras[i].scale) return false;
    return true;
}

/* Whether a over b as the slot whose history r may overwrite: the fewer
 * cached tokens lost to the truncation first, then the slot unused longest. */
static bool cheaper(const sched_slot *a, int64_t lost_a, const sched_slot *b, int64_t lost_b)
{
    return !b || lost_a < lost_b || (lost_a == lost_b && a->last_used < b->last_used);
}

/* The free slot to give r. A slot's shared prefix is taken when it saves at
 * least as many prompt tokens as the truncation throws away of its history
 * (the longest such prefix; ties to the slot unused longest). Otherwise
 * (say only BOS is shared) r goes to the free slot that loses the least,
 * so a history that may still serve a follower is not wiped for one token.
 * When the prefix store holds a longer prefix (SCHED_STORE_MIN tokens at
 * least), *from is that entry and the slot the one losing the least. */
static sched_slot *pick_slot(mh_sched *s, const sched_req *r, int64_t *common, sched_entry **from)
{
    sched_slot *best = NULL, *spare = NULL, *empty = NULL;
    int64_t best_n = 0, spare_lost = 0, spare_n = 0, empty_lost = 0;
    for (int i = 0; i < s->p.n_parallel; i++) {
        sched_slot *sl = &s->slots[i];
        if (sl->r) continue;
        int64_t n = s->p.prefix_cache && same_loras(sl, r)
                        ? common_prefix(sl->hist, sl->n_hist, r->tokens, r->n_tokens) : 0;
        int64_t lost = sl->n_hist - n;
        if (n > 0 && reusable(r, n) >= lost &&
            (!best || n > best_n || (n == best_n && sl->last_used < best->last_used))) { best = sl; best_n = n; }
        if (cheaper(sl, lost, spare, spare_lost)) { spare = sl; spare_lost = lost; spare_n = n; }
        if (cheaper(sl, sl->n_hist, empty, empty_lost)) { empty = sl; empty_lost = sl->n_hist; }
    }
    if (!best) { best = spare; best_n = spare_n; }
    *common = best_n;
    *from = NULL;
    if (!best || !s->store.budget || r->n_loras) return best;   /* the store holds base rows only */
    int64_t n_store;
    sched_entry *e = mh_sched_store_match(&s->store, r->tokens, r->n_tokens, &n_store);
    int64_t gain = reusable(r, n_store);
    if (!e || gain < SCHED_STORE_MIN || gain <= reusable(r, best_n)) return best;
    *common = n_store;
    *from = e;
    return empty;
}

/* Gives sl to r. From the store, the slot starts empty and its rows are
 * loaded by load_restores once s->mu is released (a copy of many MiB
 * should not hold up submit). */
static void admit_one(mh_sched *s, sched_slot *sl, sched_req *r, int64_t common, sched_entry *from)
{
    int64_t keep = reusable(r, common);
    sl->restore = from;
    sl->restore_n = from ? keep : 0;
    if (from) keep = 0;
    memcpy(sl->lkey, r->loras, sizeof r->loras);    /* the rows from here on are r's */
    sl->n_lkey = r->n_loras;
    mh_kv_cache_truncate(sl->cache, keep);
    sl->n_hist = keep;
    sl->r = r;
    sl->fed = keep;
    sl->decoding = false;
    r->cached = keep;
    mh_spec_first_k(&s->costs, r);      /* the costs are the compute thread's */
    r->t_admit = mh_sched_now_ms();
    s->st.waiting--;
    s->st.running++;
    s->st.prompt_tokens += r->n_tokens;
    if (keep > 0) { s->st.prefix_hits++; s->st.prefix_tokens += keep; }
}

/* Loads the store rows chosen by admit_one. Runs right after each admit,
 * before anything can put to the store (which could evict the entries). */
static void load_restores(mh_sched *s)
{
    for (int i = 0; i < s->p.n_parallel; i++) {
        sched_slot *sl = &s->slots[i];
        sched_entry *e = sl->restore;
        if (!e) continue;
        int64_t n = sl->restore_n;
        sl->restore = NULL;
        if (mh_sched_store_load(&s->store, e, sl->cache, n) != MH_OK) {
            mh_kv_cache_truncate(sl->cache, 0);     /* not expected: prefill it all */
            continue;
        }
        mh_sched_store_touch(&s->store, e);
        memcpy(sl->hist, e->tokens, sizeof(int32_t) * (size_t)n);
        sl->n_hist = n;
        sl->fed = n;
        sl->r->cached = n;
        pthread_mutex_lock(&s->mu);
        s->st.prefix_hits++;
        s->st.prefix_tokens += n;
        s->st.store_hits++;
        s->st.store_tokens += n;
        pthread_mutex_unlock(&s->mu);
    }
}

/* Moves cancelled waiting requests to *doomed and admits the queue's head
 * while a slot is free. */
static void admit(mh_sched *s, sched_req **doomed)
{
    for (sched_req **pp = &s->q_head; *pp;) {
        sched_req *q = *pp;
        if (!q->cancelled) { pp = &q->qnext; continue; }
        *pp = q->qnext;
        q->qnext = *doomed;
        *doomed = q;
    }
    s->q_tail = NULL;
    for (sched_req *q = s->q_head; q; q = q->qnext) s->q_tail = q;
    while (s->q_head) {
        int64_t common;
        sched_entry *from;
        sched_slot *sl = pick_slot(s, s->q_head, &common, &from);
        if (!sl) break;
        sched_req *q = s->q_head;
        s->q_head = q->qnext;
        if (!s->q_head) s->q_tail = NULL;
        q->qnext = NULL;
        admit_one(s, sl, q, common, from);
    }
}

/* Whether a step has something to do (under s->mu): a slot that is not
 * parked, a waiting request and a free slot, or a resume or cancel; none
 * while the scheduler is held. */
static bool has_work(const mh_sched *s)
{
    if (s->held) return false;
    return s->kick || s->st.running > s->n_parked || (s->st.waiting > 0 && s->st.running < s->p.n_parallel);
}

static int32_t sample_next(mh_sched *s, sched_slot *sl, float *lg, int vi);

/* Slots whose processed logits came back (collected under s->mu in
 * *resumed, their states reset): sampled from park, or ended on an error. */
static void take_resumed(mh_sched *s, int *resumed, int n)
{
    for (int k = 0; k < n; k++) {
        sched_slot *sl = &s->slots[resumed[k] >= 0 ? resumed[k] : -resumed[k] - 1];
        sl->parked = false;
        if (resumed[k] < 0) mh_sched_finish(s, sl, sl->r, MH_SCHED_ERROR, sl->r->park_msg);
        else sample_next(s, sl, mh_tensor_data(sl->r->park), -1);
    }
}

/* Waits for work (synchronous: returns false when there is none); returns
 * false when the scheduler stops. Ends cancelled requests, samples resumed
 * ones and admits new ones. */
static bool next_round(mh_sched *s)
{
    sched_req *doomed = NULL;
    int cancel_slot[MH_SCHED_MAX_PARALLEL], n_cancel = 0, resumed[MH_SCHED_MAX_PARALLEL], n_resumed = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->stop && !has_work(s)) {
        if (s->sync) break;
        pthread_cond_wait(&s->cv, &s->mu);
    }
    s->kick = false;
    if (s->stop || (s->st.running == 0 && s->st.waiting == 0)) { pthread_mutex_unlock(&s->mu); return false; }
    for (int i = 0; i < s->p.n_parallel; i++) {
        sched_req *r = s->slots[i].r;
        if (r && r->cancelled) cancel_slot[n_cancel++] = i;
        else if (r && (r->park_state == PARK_OK || r->park_state == PARK_FAIL)) {
            resumed[n_resumed++] = r->park_state == PARK_OK ? i : -i - 1;
            r->park_state = PARK_NONE;
        }
    }
    admit(s, &doomed);
    pthread_mutex_unlock(&s->mu);
    load_restores(s);
    take_resumed(s, resumed, n_resumed);
    for (int k = 0; k < n_cancel; k++) {
        sched_slot *sl = &s->slots[cancel_slot[k]];
        mh_sched_finish(s, sl, sl->r, MH_SCHED_CANCEL, NULL);
    }
    while (doomed) {
        sched_req *q = doomed;
        doomed = q->qnext;
        mh_sched_finish(s, NULL, q, MH_SCHED_CANCEL, NULL);
    }
    if (n_cancel) {                 /* their slots are free now: fill them */
        pthread_mutex_lock(&s->mu);
        admit(s, &doomed);
        pthread_mutex_unlock(&s->mu);
        load_restores(s);
        while (doomed) {
            sched_req *q = doomed;
            doomed = q->qnext;
            mh_sched_finish(s, NULL, q, MH_SCHED_CANCEL, NULL);
        }
    }
    return true;
}

/* ===== sampling ===== */

static bool is_eog(const sched_req *r, int32_t id)
{
    for (int i = 0; i < r->n_eog; i++)
        if (r->eog[i] == id) return true;
    return false;
}

/* The token r picks from logits lg (changed in place): logits hook,
 * constraint mask, sampler (vi >= 0: verifying draft vi, which a sampled
 * request accepts or replaces by speculative sampling), logprobs into ev,
 * constraint accept. Returns -1 after ending r with an error. */
static int32_t pick(mh_sched *s, sched_slot *sl, float *lg, int vi, mh_sched_token_ev *ev)
{
    sched_req *r = sl->r;
    mh_err err = { 0 };
    const char *msg = NULL;
    int32_t id = -1;
    if (r->hook.fn && r->hook.fn(r->hook.ud, lg, s->n_vocab, sl->hist + r->n_tokens,
                                 sl->n_hist - r->n_tokens, &err))
        msg = err.msg[0] ? err.msg : "the logits processor failed";
    else if (r->con.mask && r->con.mask(r->con.ud, lg, s->n_vocab))
        msg = "the constraint rejected every token (mask failed)";
    else if ((id = mh_sampler_sample(r->sampler, lg, &err)) < 0)
        msg = err.msg;
    else if (vi >= 0 && (id = mh_spec_choose(s, sl, vi, id)) < 0)
        msg = "speculative sampling found no token";
    else if (r->logprobs && (ev->n_top = mh_logprobs_top(lg, s->n_vocab, r->n_top, id, &ev->logprob,
                                                         ev->top_ids, ev->top_logprobs, &err)) < 0)
        msg = err.msg;
    else if (r->con.accept && r->con.accept(r->con.ud, id))
        msg = "the constraint refused the sampled token";
    if (msg) { mh_sched_finish(s, sl, r, MH_SCHED_ERROR, msg); return -1; }
    if (vi >= 0 && id == sl->row[vi + 1]) r->accepted++;
    ev->id = id;
    return id;
}

/* Picks r's next token from logits lg (vi: as in pick) and reports it with
 * its text; ends the request on eog, a stop string, max_tokens, a closed
 * channel or an error. Returns the id, or -1 when the request ended. */
static int32_t sample_next(mh_sched *s, sched_slot *sl, float *lg, int vi)
{
    sched_req *r = sl->r;
    if (r->n_gen >= r->max_tokens) { mh_sched_finish(s, sl, r, MH_SCHED_LENGTH, NULL); return -1; }
    mh_sched_token_ev ev = { 0 };
    int32_t id = pick(s, sl, lg, vi, &ev);
    if (id < 0) return -1;
    mh_sampler_accept(r->sampler, id, NULL);
    if (r->t_first <= 0) r->t_first = mh_sched_now_ms();
    if (is_eog(r, id)) { mh_sched_finish(s, sl, r, MH_SCHED_STOP, NULL); return -1; }
    bool stopped = false;
    mh_err err = { 0 };
    if (mh_sched_text_push(r, id, &stopped, &err) != MH_OK) {
        mh_sched_finish(s, sl, r, MH_SCHED_ERROR, err.msg);
        return -1;
    }
    if (mh_sched_push_event(r, MH_SCHED_EV_TOKEN, &ev, sizeof ev, &ev.n_text) != MH_OK) {
        mh_sched_finish(s, sl, r, MH_SCHED_CANCEL, NULL);   /* the reader closed its channel */
        return -1;
    }
    r->n_gen++;
    if (stopped) { mh_sched_finish(s, sl, r, MH_SCHED_STOP, NULL); return -1; }
    if (r->n_gen >= r->max_tokens) { mh_sched_finish(s, sl, r, MH_SCHED_LENGTH, NULL); return -1; }
    sl->last = id;
    sl->decoding = true;
    return id;
}

/* Verifies the nd drafts fed after sl's last token: row i's logits give
 * the token at that place, exactly as a plain step would pick it; while it
 * equals draft i the next row holds (its position is in the cache), else
 * the picked token is the next to feed. The cache is cut back to the ids
 * kept (the rows past the first mismatch are dropped). */
static void verify(mh_sched *s, sched_slot *sl)
{
    int nd = sl->nd, i = 0, emitted = 0;
    sl->r->drafted += nd;
    for (;; i++) {
        int32_t id = sample_next(s, sl, sl->logits + (size_t)i * (size_t)s->n_vocab, i < nd ? i : -1);
        emitted++;
        if (id < 0 || i >= nd || id != sl->row[i + 1]) break;
        sl->n_hist++;                         /* draft i is kept: hist holds it already */
    }
    mh_kv_cache_truncate(sl->cache, sl->n_hist);
    if (sl->r) mh_spec_next_k(&s->costs, sl->r, nd, i < nd ? i : nd);   /* the next draft length */
    pthread_mutex_lock(&s->mu);
    s->st.spec_drafted += nd;
    s->st.spec_accepted += i < nd ? i : nd;
    s->st.spec_steps++;
    s->st.spec_tokens += emitted;
    pthread_mutex_unlock(&s->mu);
}

/* ===== one step ===== */

/* Adds the decoding slots (one token each), then prompt chunks of the
 * prefilling slots, oldest request first, within prefill_chunk tokens. */
static int build_batch(mh_sched *s)
{
    int n = 0;
    for (int i = 0; i < s->p.n_parallel; i++) {
        sched_slot *sl = &s->slots[i];
        if (!sl->r || !sl->decoding || sl->parked) continue;
        s->seqs[n] = (mh_batch_seq){ .cache = sl->cache, .tokens = sl->row, .n = 1 + sl->nd,
                                     .logits = sl->logits, .all_logits = sl->nd > 0,
                                     .loras = sl->r->loras, .n_loras = sl->r->n_loras };
        s->seq_slot[n++] = i;
    }
    int64_t budget = s->p.prefill_chunk;
    bool taken[MH_SCHED_MAX_PARALLEL] = { 0 };
    while (budget > 0) {
        int pick = -1;
        for (int i = 0; i < s->p.n_parallel; i++) {
            sched_slot *sl = &s->slots[i];
            if (!sl->r || sl->decoding || sl->parked || taken[i]) continue;
            if (pick < 0 || sl->r->id < s->slots[pick].r->id) pick = i;
        }
        if (pick < 0) break;
        taken[pick] = true;
        sched_slot *sl = &s->slots[pick];
        int64_t left = sl->r->n_tokens - sl->fed, take = left < budget ? left : budget;
        s->seqs[n] = (mh_batch_seq){ .cache = sl->cache, .tokens = sl->r->tokens + sl->fed, .n = take,
                                     .logits = take == left ? sl->logits : NULL,
                                     .loras = sl->r->loras, .n_loras = sl->r->n_loras };
        s->seq_slot[n++] = pick;
        budget -= take;
    }
    return n;
}

/* Hands sl's logits out to be processed (docs/processors.md): copies them
 * into the request's park tensor, pushes an MH_SCHED_EV_LOGITS event and
 * keeps the slot out of the steps until mh_sched_resume. */
static void park(mh_sched *s, sched_slot *sl)
{
    sched_req *r = sl->r;
    if (r->n_gen >= r->max_tokens) { mh_sched_finish(s, sl, r, MH_SCHED_LENGTH, NULL); return; }
    memcpy(mh_tensor_data(r->park), sl->logits, sizeof(float) * (size_t)s->n_vocab);
    pthread_mutex_lock(&s->mu);
    r->park_state = PARK_WAIT;
    s->n_parked++;
    s->st.parks++;
    pthread_mutex_unlock(&s->mu);
    sl->parked = true;
    mh_sched_logits_ev ev = { .n_gen = r->n_gen };
    if (mh_chan_push(r->out, MH_SCHED_EV_LOGITS, &ev, sizeof ev, NULL) != MH_OK)
        mh_sched_finish(s, sl, r, MH_SCHED_CANCEL, NULL);     /* the reader closed its channel */
}

/* After row k ran: its tokens are in the cache; sample where logits came. */
static void after_row(mh_sched *s, int k)
{
    sched_slot *sl = &s->slots[s->seq_slot[k]];
    const mh_batch_seq *q = &s->seqs[k];
    memcpy(sl->hist + sl->n_hist, q->tokens, sizeof(int32_t) * (size_t)q->n);
    if (sl->decoding && sl->nd > 0) {
        sl->n_hist++;                         /* the last token; drafts count once verified */
        sl->r->target_steps++;
        verify(s, sl);
        return;
    }
    sl->n_hist += q->n;
    if (!sl->decoding) {
        sl->fed += q->n;
        if (sl->fed < sl->r->n_tokens) return;
        sl->r->t_prefilled = mh_sched_now_ms();
    }
    sl->r->target_steps++;
    if (sl->r->park) park(s, sl);
    else sample_next(s, sl, sl->logits, -1);
}

/* The batch failed: run each row alone so only the culprit gets the error. */
static void run_rows_alone(mh_sched *s, int n)
{
    for (int k = 0; k < n; k++) {
        mh_err err = { 0 };
        sched_slot *sl = &s->slots[s->seq_slot[k]];
        if (mh_model_forward_batch(s->m, &s->seqs[k], 1, &err) == MH_OK) { after_row(s, k); continue; }
        mh_kv_cache_truncate(sl->cache, 0);        /* forget a cache that may be half-written */
        sl->n_hist = 0;
        mh_sched_finish(s, sl, sl->r, MH_SCHED_ERROR, err.msg);
    }
}

static void step(mh_sched *s)
{
    mh_spec_draft(s);
    int n = build_batch(s);
    if (n > 0) {
        mh_err err = { 0 };
        /* a lone drafted sequence's check is timed for the draft length,
         * against this step's draft round */
        bool timed = n == 1 && s->slots[s->seq_slot[0]].decoding && s->seqs[0].n > 1 && s->step_round_s > 0;
        double t0 = timed ? mh_sched_now_ms() : 0;
        if (mh_model_forward_batch(s->m, s->seqs, n, &err) == MH_OK) {
            if (timed) mh_spec_note_check(&s->costs, (int)s->seqs[0].n,
                                          (mh_sched_now_ms() - t0) * 1e-3 / s->step_round_s);
            for (int k = 0; k < n; k++) after_row(s, k);
        } else {
            run_rows_alone(s, n);
        }
    }
    int64_t used = 0, lora_rows = 0;
    bool mixed = false;                 /* rows with different adapters shared this forward */
    for (int i = 0; i < s->p.n_parallel; i++) used += mh_kv_cache_n_past(s->slots[i].cache);
    for (int k = 0; k < n; k++) {
        lora_rows += s->seqs[k].n_loras > 0;
        mixed = mixed || s->seqs[k].n_loras != s->seqs[0].n_loras ||
                (s->seqs[k].n_loras && memcmp(s->seqs[k].loras, s->seqs[0].loras,
                                              sizeof(mh_lora_use) * (size_t)s->seqs[k].n_loras));
    }
    pthread_mutex_lock(&s->mu);
    s->st.lora_rows += lora_rows;
    s->st.lora_mixed_steps += mixed;
    for (int i = 0; i < s->p.n_parallel; i++) {
        sched_req *r = s->slots[i].r;
        if (!r) continue;
        s->st.generated_tokens += r->n_gen - r->n_counted;
        r->n_counted = r->n_gen;
    }
    s->st.kv_used = used;
    s->st.spec_costs = s->costs;
    s->st.steps += n > 0;
    pthread_mutex_unlock(&s->mu);
}

int mh_sched_step(mh_sched *s)
{
    if (!s || !s->sync || !next_round(s)) return 0;
    step(s);
    return 1;
}

void *mh_sched_main(void *arg)
{
    mh_sched *s = arg;
    while (next_round(s)) {
        pthread_mutex_lock(&s->model_mu);
        step(s);
        pthread_mutex_unlock(&s->model_mu);
    }
    return NULL;
}
