/* sched.c: the scheduler's life cycle and its any-thread entry points:
 * new (slots and caches allocated up front; or one slot over the caller's
 * cache for synchronous use), submit (checked, queued FIFO), cancel, stats
 * and free. The step loop is in sched_step.c, a request's text in
 * sched_text.c. Layer: engine/sched (pure C11 + pthreads; mh/model.h,
 * mh/sample.h, mh/tokenizer.h, mh/chan.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sched_internal.h"

double mh_sched_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

const char *mh_sched_reason_name(int reason)
{
    static const char *const names[] = { "stop", "length", "cancel", "error" };
    return reason >= 0 && reason <= MH_SCHED_ERROR ? names[reason] : "unknown";
}

void mh_sched_params_init(mh_sched_params *p)
{
    *p = (mh_sched_params){ .n_parallel = 1, .n_ctx = 2048, .kv_type = MH_DTYPE_F16,
                            .prefill_chunk = 256, .prefix_cache = true, .mem_limit = 0 };
}

void mh_sched_request_init(mh_sched_request *r)
{
    memset(r, 0, sizeof *r);
    mh_sampler_params_init(&r->sampler);
    r->sampler.temperature = 0.8f;
    r->sampler.top_k = 40;
    r->sampler.top_p = 0.95f;
    r->sampler.min_p = 0.05f;
    r->sampler.seed = MH_SAMPLER_SEED_RANDOM;
    r->max_tokens = MH_SCHED_MAX_TOKENS;
}

/* ===== new / free ===== */

static int check_draft(const mh_model *m, const mh_sched_params *p, mh_err *err);

static int check_params(const mh_model *m, const mh_sched_params *p, mh_err *err)
{
    if (!m || !p) return mh_err_set(err, MH_EINVAL, "sched: model and params are required");
    if (p->n_parallel < 1 || p->n_parallel > MH_SCHED_MAX_PARALLEL)
        return mh_err_set(err, MH_EINVAL, "sched: parallel must be in 1..%d, got %d",
                          MH_SCHED_MAX_PARALLEL, p->n_parallel);
    if (p->n_ctx < 2 || p->n_ctx > (1 << 24))
        return mh_err_set(err, MH_EINVAL, "sched: ctx must be in 2..16777216, got %lld",
                          (long long)p->n_ctx);
    if (p->prefill_chunk < 1)
        return mh_err_set(err, MH_EINVAL, "sched: prefill_chunk must be positive, got %lld",
                          (long long)p->prefill_chunk);
    int st = check_draft(m, p, err);
    if (st) return st;
    size_t per = mh_model_kv_bytes_type(m, p->n_ctx, p->kv_type);
    if (p->draft) per += mh_model_kv_bytes_type(p->draft, p->n_ctx, p->kv_type);
    double need = (double)per * p->n_parallel;
    if (p->mem_limit && need > (double)p->mem_limit)
        return mh_err_set(err, MH_ENOMEM, "sched: KV caches of %d slots x ctx %lld need %.1f MiB "
                          "but the limit is %.1f MiB; lower parallel or ctx, or use kv_type q8_0",
                          p->n_parallel, (long long)p->n_ctx, need / (1 << 20),
                          (double)p->mem_limit / (1 << 20));
    return MH_OK;
}

/* The speculative settings: a draft must share the vocabulary. */
static int check_draft(const mh_model *m, const mh_sched_params *p, mh_err *err)
{
    if (p->draft_max < 0 || p->draft_max > MH_SCHED_MAX_DRAFT)
        return mh_err_set(err, MH_EINVAL, "sched: draft_max must be in 1..%d, got %d", MH_SCHED_MAX_DRAFT,
                          p->draft_max);
    if (!(p->draft_p_min >= 0 && p->draft_p_min < 1))
        return mh_err_set(err, MH_EINVAL, "sched: draft_p_min must be in [0, 1), got %g", (double)p->draft_p_min);
    if (p->ngram < 0 || p->ngram > 8)
        return mh_err_set(err, MH_EINVAL, "sched: ngram must be in 1..8, got %d", p->ngram);
    for (int n = 0; n < MH_SCHED_COST_ROWS; n++) {
        double v = n ? p->spec_costs.check_rounds[n] : p->spec_costs.draft_s;
        if (!(v >= 0 && v < 1e6))
            return mh_err_set(err, MH_EINVAL, "sched: speculative costs must be >= 0, got %g", v);
    }
    if (p->draft && mh_model_hparams(p->draft)->n_vocab != mh_model_hparams(m)->n_vocab)
        return mh_err_set(err, MH_EINVAL, "sched: the draft model's vocabulary has %lld tokens, the model's "
                          "%lld: a draft must share the model's tokenizer", (long long)mh_model_hparams(p->draft)->n_vocab,
                          (long long)mh_model_hparams(m)->n_vocab);
    return MH_OK;
}

static int alloc_slots(mh_sched *s, mh_err *err)
{
    int P = s->p.n_parallel;
    s->slots = calloc((size_t)P, sizeof *s->slots);
    s->seqs = calloc((size_t)P, sizeof *s->seqs);
    s->seq_slot = calloc((size_t)P, sizeof *s->seq_slot);
    if (!s->slots || !s->seqs || !s->seq_slot)
        return mh_err_set(err, MH_ENOMEM, "sched: out of memory for %d slots", P);
    for (int i = 0; i < P; i++) {
        sched_slot *sl = &s->slots[i];
        sl->cache = s->sync ? s->borrowed : mh_kv_cache_new_type(s->m, s->p.n_ctx, s->p.kv_type, err);
        if (!sl->cache) return err ? err->code : MH_ENOMEM;
        sl->hist = malloc(sizeof(int32_t) * (size_t)s->p.n_ctx);
        sl->logits = malloc(sizeof(float) * (size_t)s->n_vocab);
        sl->logits_rows = 1;
        if (!sl->hist || !sl->logits)
            return mh_err_set(err, MH_ENOMEM, "sched: out of memory for slot %d", i);
        if (!s->p.draft) continue;
        /* the draft's cache, as long as the slot's: rolled back with it */
        sl->dcache = mh_kv_cache_new_type(s->p.draft, s->p.n_ctx, s->p.kv_type, err);
        if (!sl->dcache) return err ? err->code : MH_ENOMEM;
        sl->dhist = malloc(sizeof(int32_t) * (size_t)s->p.n_ctx);
        sl->dlogits = malloc(sizeof(float) * (size_t)s->n_vocab);
        if (!sl->dhist || !sl->dlogits)
            return mh_err_set(err, MH_ENOMEM, "sched: out of memory for slot %d's draft", i);
    }
    return MH_OK;
}

static void free_slots(mh_sched *s)
{
    for (int i = 0; s->slots && i < s->p.n_parallel; i++) {
        if (!s->sync) mh_kv_cache_free(s->slots[i].cache);    /* sync: the caller's */
        free(s->slots[i].hist);
        free(s->slots[i].logits);
        mh_spec_slot_free(&s->slots[i]);
    }
    free(s->slots);
    free(s->seqs);
    free(s->seq_slot);
}

/* The scheduler's state before its slots: locks, counters, the store. */
static mh_sched *sched_alloc(mh_model *m, const mh_sched_params *p, mh_err *err)
{
    mh_sched *s = calloc(1, sizeof *s);
    if (!s) { mh_err_set(err, MH_ENOMEM, "sched: out of memory"); return NULL; }
    s->m = m;
    s->p = *p;
    if (!s->p.draft_max) s->p.draft_max = MH_SCHED_DRAFT_MAX;
    s->n_vocab = mh_model_hparams(m)->n_vocab;
    s->next_id = 1;
    s->costs = s->st.spec_costs = p->spec_costs;
    s->st.n_parallel = p->n_parallel;
    s->st.kv_total = p->n_parallel * p->n_ctx;
    s->store.budget = p->prefix_cache ? p->cache_bytes : 0;
    s->st.store_budget = (int64_t)s->store.budget;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->model_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    return s;
}

mh_sched *mh_sched_new(mh_model *m, const mh_sched_params *p, mh_err *err)
{
    if (check_params(m, p, err)) return NULL;
    mh_sched *s = sched_alloc(m, p, err);
    if (!s) return NULL;
    s->p.cache_dir = NULL;              /* the store keeps its own copy */
    if (mh_sched_store_open(&s->store, m, p->kv_type, p->cache_dir, p->cache_dir_bytes, err) == MH_OK &&
        alloc_slots(s, err) == MH_OK) {
        s->st.store_entries = s->store.n;
        s->st.store_disk_entries = s->store.disk_n;
        s->st.store_disk_bytes = (int64_t)s->store.disk_bytes;
        if (pthread_create(&s->th, NULL, mh_sched_main, s) == 0) {
            s->th_started = true;
            return s;
        }
        mh_err_set(err, MH_EIO, "sched: cannot start the compute thread");
    }
    mh_sched_free(s);
    return NULL;
}

mh_sched *mh_sched_new_sync(mh_model *m, const mh_sched_params *p, mh_kv_cache *cache,
                            const int32_t *hist, int64_t n_hist, mh_err *err)
{
    if (!m || !p || !cache || (n_hist > 0 && !hist) || n_hist < 0) {
        mh_err_set(err, MH_EINVAL, "sched: a synchronous scheduler needs a model, params and a cache");
        return NULL;
    }
    mh_sched_params q = *p;
    q.n_parallel = 1;
    q.n_ctx = mh_kv_cache_n_ctx(cache);
    q.cache_bytes = 0;
    q.mem_limit = 0;
    q.kv_type = mh_kv_cache_type(cache);
    if (check_draft(m, &q, err)) return NULL;
    if (q.prefill_chunk < 1) {
        mh_err_set(err, MH_EINVAL, "sched: prefill_chunk must be positive, got %lld", (long long)q.prefill_chunk);
        return NULL;
    }
    mh_sched *s = sched_alloc(m, &q, err);
    if (!s) return NULL;
    s->sync = true;
    s->borrowed = cache;
    if (alloc_slots(s, err) != MH_OK) { mh_sched_free(s); return NULL; }
    /* only positions the cache really has count as reusable */
    int64_t n = n_hist < mh_kv_cache_n_past(cache) ? n_hist : mh_kv_cache_n_past(cache);
    if (n > q.n_ctx) n = q.n_ctx;
    if (n > 0) memcpy(s->slots[0].hist, hist, sizeof(int32_t) * (size_t)n);
    s->slots[0].n_hist = n;
    return s;
}

int64_t mh_sched_slot_tokens(const mh_sched *s, int slot, const int32_t **ids)
{
    if (!s || slot < 0 || slot >= s->p.n_parallel) { if (ids) *ids = NULL; return 0; }
    if (ids) *ids = s->slots[slot].hist;
    return s->slots[slot].n_hist;
}

void mh_sched_free(mh_sched *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->th_started) pthread_join(s->th, NULL);
    mh_sched_store_free(&s->store);
    s->store.budget = 0;            /* what ends below is not worth keeping */
    /* the thread is gone: whatever is left ends as cancelled */
    for (int i = 0; s->slots && i < s->p.n_parallel; i++)
        if (s->slots[i].r) mh_sched_finish(s, &s->slots[i], s->slots[i].r, MH_SCHED_CANCEL, NULL);
    while (s->q_head) {
        sched_req *r = s->q_head;
        s->q_head = r->qnext;
        mh_sched_finish(s, NULL, r, MH_SCHED_CANCEL, NULL);
    }
    free_slots(s);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->model_mu);
    free(s);
}

/* ===== submit ===== */

/* The request's own adapters (shapes against the model) and park buffer. */
static int check_extras(const mh_sched *s, const mh_sched_request *r, mh_err *err)
{
    if (r->n_loras < 0 || r->n_loras > MH_MAX_SEQ_LORAS || (r->n_loras > 0 && !r->loras))
        return mh_err_set(err, MH_EINVAL, "sched: at most %d adapters per request, got %d", MH_MAX_SEQ_LORAS,
                          r->n_loras);
    for (int i = 0; i < r->n_loras; i++) {
        float sc = r->loras[i].scale;
        if (!r->loras[i].lora || mh_lora_check(s->m, r->loras[i].lora, err))
            return r->loras[i].lora ? MH_EINVAL : mh_err_set(err, MH_EINVAL, "sched: adapter %d is missing", i + 1);
        if (isnan(sc) || sc > 1e6f || sc < -1e6f)
            return mh_err_set(err, MH_EINVAL, "sched: adapter %d's scale must be a finite number", i + 1);
    }
    if (r->park && (r->park->dtype != MH_DTYPE_F32 || !mh_tensor_is_contiguous(r->park) ||
                    mh_tensor_numel(r->park) < s->n_vocab))
        return mh_err_set(err, MH_EINVAL, "sched: the logits buffer must be a contiguous f32 tensor of %lld values",
                          (long long)s->n_vocab);
    if (r->park && s->sync)
        return mh_err_set(err, MH_EINVAL, "sched: a synchronous scheduler runs processors through its hook");
    return MH_OK;
}

static int check_request(const mh_sched *s, const mh_sched_request *r, mh_err *err)
{
    if (!r->tokens || r->n_tokens < 1)
        return mh_err_set(err, MH_EINVAL, "sched: the prompt has no tokens");
    for (int64_t i = 0; i < r->n_tokens; i++)
        if (r->tokens[i] < 0 || r->tokens[i] >= s->n_vocab)
            return mh_err_set(err, MH_EINVAL, "sched: prompt token %lld is %d, outside the vocabulary of %lld",
                              (long long)i + 1, r->tokens[i], (long long)s->n_vocab);
    if (r->max_tokens < 0)
        return mh_err_set(err, MH_EINVAL, "sched: max_tokens must be at least 0, got %lld",
                          (long long)r->max_tokens);
    if (r->n_tokens + r->max_tokens > s->p.n_ctx)
        return mh_err_set(err, MH_ERANGE, "sched: prompt of %lld tokens + max_tokens %lld exceeds "
                          "the context of %lld tokens per slot", (long long)r->n_tokens,
                          (long long)r->max_tokens, (long long)s->p.n_ctx);
    if (r->n_top < 0 || r->n_top > MH_SCHED_MAX_TOP)
        return mh_err_set(err, MH_EINVAL, "sched: top logprobs must be in 0..%d, got %d",
                          MH_SCHED_MAX_TOP, r->n_top);
    if (r->n_eog < 0 || (r->n_eog > 0 && !r->eog))
        return mh_err_set(err, MH_EINVAL, "sched: bad end-of-generation list");
    for (int i = 0; i < r->n_eog; i++)
        if (r->eog[i] < 0 || r->eog[i] >= s->n_vocab)
            return mh_err_set(err, MH_EINVAL, "sched: end-of-generation id %d outside the vocabulary",
                              r->eog[i]);
    return check_extras(s, r, err);
}

static void req_free_parts(sched_req *q)
{
    for (int i = 0; i < q->n_loras; i++) mh_lora_free(q->loras[i].lora);
    mh_tensor_release(q->park);
    mh_sched_text_free(q);
    mh_sampler_free(q->sampler);
    mh_sampler_free(q->dsampler);
    free(q->tokens);
    free(q->eog);
    free(q);
}

static sched_req *req_new(const mh_sched *s, const mh_sched_request *r, mh_err *err)
{
    sched_req *q = calloc(1, sizeof *q);
    if (!q) { mh_err_set(err, MH_ENOMEM, "sched: out of memory"); return NULL; }
    q->tokens = malloc(sizeof(int32_t) * (size_t)r->n_tokens);
    q->eog = malloc(sizeof(int32_t) * (size_t)(r->n_eog + 1));
    if (!q->tokens || !q->eog) {
        mh_err_set(err, MH_ENOMEM, "sched: out of memory for a %lld-token prompt", (long long)r->n_tokens);
        req_free_parts(q);
        return NULL;
    }
    q->sampler = mh_sampler_new(&r->sampler, s->n_vocab, err);
    if (!q->sampler || mh_sched_text_init(s, q, r, err) != MH_OK || mh_spec_request_init(s, q, r, err) != MH_OK) {
        req_free_parts(q);
        return NULL;
    }
    memcpy(q->tokens, r->tokens, sizeof(int32_t) * (size_t)r->n_tokens);
    if (r->n_eog) memcpy(q->eog, r->eog, sizeof(int32_t) * (size_t)r->n_eog);
    q->n_tokens = r->n_tokens;
    q->max_tokens = r->max_tokens;
    q->n_eog = r->n_eog;
    q->n_top = r->n_top;
    q->logprobs = r->logprobs || r->n_top > 0;
    q->con = r->constraint;
    q->hook = r->hook;
    for (int i = 0; i < r->n_loras; i++) {
        q->loras[i] = (mh_lora_use){ mh_lora_retain(r->loras[i].lora), r->loras[i].scale };
        q->n_loras++;
    }
    if (r->park) {
        mh_tensor_retain(r->park);
        q->park = r->park;
        q->spec_mode = MH_SPEC_OFF;      /* drafts would need processed logits per verified row */
    }
    q->t_submit = mh_sched_now_ms();
    return q;
}

int64_t mh_sched_submit(mh_sched *s, const mh_sched_request *r, mh_chan *out, mh_err *err)
{
    if (!s || !r || !out) { mh_err_set(err, MH_EINVAL, "sched: submit needs a scheduler, a request and a channel"); return -1; }
    if (check_request(s, r, err)) return -1;
    sched_req *q = req_new(s, r, err);
    if (!q) return -1;
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        req_free_parts(q);
        mh_err_set(err, MH_EINVAL, "sched: the scheduler is shutting down");
        return -1;
    }
    q->out = mh_chan_retain(out);
    q->id = s->next_id++;
    if (s->q_tail) s->q_tail->qnext = q;
    else s->q_head = q;
    s->q_tail = q;
    q->next = s->live;
    if (s->live) s->live->prev = q;
    s->live = q;
    s->st.waiting++;
    int64_t id = q->id;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return id;
}

/* ===== cancel / stats ===== */

int mh_sched_cancel(mh_sched *s, int64_t id)
{
    if (!s) return 0;
    int found = 0;
    pthread_mutex_lock(&s->mu);
    for (sched_req *q = s->live; q; q = q->next) {
        if (q->id != id) continue;
        found = !q->cancelled;
        q->cancelled = 1;
        break;
    }
    if (found) {
        s->kick = true;             /* a parked request is ended even when no slot steps */
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

void mh_sched_hold(mh_sched *s, int on)
{
    if (!s || s->sync) return;
    pthread_mutex_lock(&s->mu);
    s->held = on != 0;
    if (!s->held) pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int mh_sched_resume(mh_sched *s, int64_t id, const char *error)
{
    if (!s) return 0;
    int found = 0;
    pthread_mutex_lock(&s->mu);
    for (sched_req *q = s->live; q; q = q->next) {
        if (q->id != id) continue;
        if (q->park_state == PARK_WAIT) {
            found = 1;
            q->park_state = error ? PARK_FAIL : PARK_OK;
            if (error) snprintf(q->park_msg, sizeof q->park_msg, "%s", error);
            s->n_parked--;
            s->kick = true;
            pthread_cond_signal(&s->cv);
        }
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

void mh_sched_stats_get(mh_sched *s, mh_sched_stats *st)
{
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    pthread_mutex_unlock(&s->mu);
}

/* ===== finishing a request ===== */

/* The settings r runs with, for the final event (what callers can check). */
static void fill_settings(const sched_req *r, mh_sched_done_ev *ev)
{
    mh_sampler_settings(r->sampler, &ev->sampler);
    ev->sampler.bias = NULL;              /* r's copy goes with r */
    ev->max_tokens = r->max_tokens;
    ev->n_stops = r->n_stops;
    ev->n_top = r->n_top;
    ev->n_eog = r->n_eog;
    ev->logprobs = r->logprobs;
    ev->constrained = r->con.mask || r->con.accept;
    ev->processed = r->hook.fn != NULL || r->park != NULL;
    ev->n_loras = r->n_loras;
    ev->stop_index = r->stop ? mh_stop_which(r->stop) : -1;
    ev->spec_mode = r->spec_mode;
    ev->spec_n_max = r->spec_n_max;
}

static void fill_done(const sched_req *r, int reason, const char *msg, mh_sched_done_ev *ev)
{
    double now = mh_sched_now_ms();
    memset(ev, 0, sizeof *ev);
    ev->reason = reason;
    ev->prompt_tokens = r->n_tokens;
    ev->cached_tokens = r->cached;
    ev->completion_tokens = r->n_gen;
    ev->draft_tokens = r->drafted;
    ev->accepted_tokens = r->accepted;
    ev->target_steps = r->target_steps;
    ev->queue_ms = r->t_admit > 0 ? r->t_admit - r->t_submit : now - r->t_submit;
    ev->prefill_ms = r->t_prefilled > 0 ? r->t_prefilled - r->t_admit : 0;
    ev->ttft_ms = (r->t_first > 0 ? r->t_first : now) - r->t_submit;
    if (r->n_gen > 1 && now > r->t_first)
        ev->decode_tps = (double)(r->n_gen - 1) / ((now - r->t_first) / 1e3);
    if (msg) snprintf(ev->message, sizeof ev->message, "%s", msg);
    fill_settings(r, ev);
}

void mh_sched_finish(mh_sched *s, sched_slot *slot, sched_req *r, int reason, const char *msg)
{
    mh_sched_done_ev ev;
    fill_done(r, reason, msg, &ev);
    /* everything is settled before the final event goes out: whoever reads
     * it may free what the constraint's ud points to, or read the stats */
    if (r->con.free) r->con.free(r->con.ud);
    if (r->hook.free) r->hook.free(r->hook.ud);
    mh_sched_text_flush(r);               /* what the stop matcher and decoder held */
    /* the slot's sequence goes to the prefix store before the slot is
     * released: nobody else touches it until this thread admits again */
    if (slot && s->store.budget && !r->n_loras)     /* the store keys by ids only: base rows alone */
        mh_sched_store_put(&s->store, slot->hist, slot->n_hist, slot->cache);
    pthread_mutex_lock(&s->mu);
    if (r->park_state == PARK_WAIT) s->n_parked--;
    if (slot) slot->parked = false;
    if (r->prev) r->prev->next = r->next;
    else s->live = r->next;
    if (r->next) r->next->prev = r->prev;
    if (slot) {
        slot->r = NULL;
        slot->decoding = false;
        slot->last_used = mh_sched_now_ms();
        s->st.running--;
    } else {
        s->st.waiting--;
    }
    s->st.generated_tokens += r->n_gen - r->n_counted;
    s->st.requests_done++;
    s->st.store_entries = s->store.n;
    s->st.store_bytes = (int64_t)s->store.bytes;
    s->st.store_evictions = s->store.evictions;
    s->st.store_disk_entries = s->store.disk_n;
    s->st.store_disk_bytes = (int64_t)s->store.disk_bytes;
    s->st.store_disk_hits = s->store.disk_hits;
    pthread_mutex_unlock(&s->mu);
    mh_sched_push_event(r, MH_SCHED_EV_DONE, &ev, sizeof ev, &ev.n_text);   /* closed: nobody listens */
    mh_chan_close(r->out);
    mh_chan_release(r->out);
    req_free_parts(r);
}

int mh_sched_embed_batch(mh_sched *s, const int32_t *const *tokens, const int64_t *n, int n_seqs, float *out,
                         mh_err *err)
{
    pthread_mutex_lock(&s->model_mu);       /* between two steps of the compute thread */
    int st = mh_model_embed_batch(s->m, tokens, n, n_seqs, out, err);
    pthread_mutex_unlock(&s->model_mu);
    return st;
}

int mh_sched_embed(mh_sched *s, const int32_t *tokens, int64_t n, float *out, mh_err *err)
{
    pthread_mutex_lock(&s->model_mu);       /* between two steps of the compute thread */
    int st = mh_model_embed(s->m, tokens, n, out, err);
    pthread_mutex_unlock(&s->model_mu);
    return st;
}
