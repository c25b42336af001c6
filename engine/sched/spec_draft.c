/* spec_draft.c: speculative decoding's drafting, run at the start of each
 * step before the batch is built: prompt lookup (the latest earlier
 * occurrence of the last n ids of prompt + output proposes what followed
 * it) or a draft model, run batched over the slots that use it, its cache
 * kept in step with the slot's ids (rolled back by truncation).
 * Layer: engine/sched (pure C11; mh/model.h, mh/sample.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sched_internal.h"

int mh_spec_request_init(const mh_sched *s, sched_req *q, const mh_sched_request *r, mh_err *err)
{
    if (r->spec_mode < MH_SPEC_DEFAULT || r->spec_mode > MH_SPEC_NGRAM)
        return mh_err_set(err, MH_EINVAL, "sched: unknown speculative mode %d", r->spec_mode);
    if (r->spec_n_max < 0 || r->spec_n_max > MH_SCHED_MAX_DRAFT)
        return mh_err_set(err, MH_EINVAL, "sched: speculative n_max must be in 0..%d, got %d",
                          MH_SCHED_MAX_DRAFT, r->spec_n_max);
    if (r->spec_ngram < 0 || r->spec_ngram > 8)
        return mh_err_set(err, MH_EINVAL, "sched: speculative ngram must be in 1..8, got %d", r->spec_ngram);
    int mode = r->spec_mode;
    if (mode == MH_SPEC_DEFAULT) mode = s->p.ngram > 0 ? MH_SPEC_NGRAM : s->p.draft ? MH_SPEC_DRAFT : MH_SPEC_OFF;
    if (mode == MH_SPEC_DRAFT && !s->p.draft)
        return mh_err_set(err, MH_EINVAL, "sched: speculative decoding with a draft model needs one loaded "
                          "with the model (--draft MODEL, or {draft = ...}); ngram drafting needs none");
    q->spec_mode = mode;
    q->spec_n_max = mode == MH_SPEC_OFF ? 0 : r->spec_n_max ? r->spec_n_max : s->p.draft_max;
    q->spec_ngram = r->spec_ngram ? r->spec_ngram : s->p.ngram ? s->p.ngram : MH_SCHED_NGRAM;
    q->spec_k = q->spec_n_max;           /* admission sets the first (mh_spec_first_k) */
    if (mode == MH_SPEC_DRAFT) {
        double tb = (double)mh_model_weight_bytes(s->m), db = (double)mh_model_weight_bytes(s->p.draft);
        q->spec_c = tb > 0 ? db / tb : 1.0;
    }
    q->rng = mh_sampler_seed(q->sampler) ^ 0x9E3779B97F4A7C15ull;
    mh_sampler_params sp;
    mh_sampler_settings(q->sampler, &sp);
    if (mode != MH_SPEC_DRAFT || sp.temperature == 0) return MH_OK;
    /* sampled drafts come from the draft's own distribution at the same
     * temperature and truncation (its q goes into the acceptance test) */
    mh_sampler_params dp;
    mh_sampler_params_init(&dp);
    dp.temperature = sp.temperature;
    dp.top_k = sp.top_k;
    dp.top_p = sp.top_p;
    dp.min_p = sp.min_p;
    dp.repeat_last_n = 0;
    dp.seed = q->rng ^ 0xD1B54A32D192ED03ull;
    q->dsampler = mh_sampler_new(&dp, s->n_vocab, err);
    return q->dsampler ? MH_OK : (err ? err->code : MH_ENOMEM);
}

/* Up to k ids that followed the latest earlier occurrence of the last n
 * ids of ctx (L), for n = nmax down to 1. Returns how many went to out. */
static int ngram_propose(const int32_t *ctx, int64_t L, int nmax, int k, int32_t *out)
{
    for (int n = nmax < L - 1 ? nmax : (int)(L - 1); n >= 1; n--) {
        const int32_t *pat = ctx + L - n;
        for (int64_t j = L - n - 1; j >= 0; j--) {
            if (memcmp(ctx + j, pat, sizeof(int32_t) * (size_t)n) != 0) continue;
            int64_t avail = L - (j + n);
            int take = avail < k ? (int)avail : k;
            memcpy(out, ctx + j + n, sizeof(int32_t) * (size_t)take);
            return take;
        }
    }
    return 0;
}

/* Drafts sl may propose this step: within the request's current length
 * (spec_k, see verify), its max_tokens (the bonus token counts too) and
 * the logits rows we hold. */
static int draft_room(mh_sched *s, sched_slot *sl)
{
    sched_req *r = sl->r;
    int64_t k = r->spec_k, left = r->max_tokens - r->n_gen - 1;
    if (left < k) k = left;
    if (k <= 0) return 0;
    if (sl->logits_rows < 1 + k) {
        float *lg = realloc(sl->logits, sizeof(float) * (size_t)((1 + k) * s->n_vocab));
        if (!lg) return 0;                  /* a plain step then */
        sl->logits = lg;
        sl->logits_rows = 1 + k;
    }
    if (r->dsampler && !sl->q) {
        sl->q = malloc(sizeof(float) * (size_t)(MH_SCHED_MAX_DRAFT * s->n_vocab));
        if (!sl->q) return 0;
    }
    return (int)k;
}

/* The probability softmax(lg) gives its largest entry, best. */
static double top_prob(const float *lg, int64_t n, int32_t best)
{
    double z = 0;
    for (int64_t i = 0; i < n; i++) z += exp((double)lg[i] - (double)lg[best]);
    return z > 0 ? 1.0 / z : 0.0;
}

/* The draft's next id from sl->dlogits: greedy, or drawn from its sampler
 * with the probabilities kept as row k of sl->q. -1: stop drafting (also
 * when the draft is less sure than draft_p_min: a likely miss costs a
 * draft forward and a verified row for nothing). */
static int32_t draft_pick(mh_sched *s, sched_slot *sl, int k)
{
    sched_req *r = sl->r;
    int32_t id = -1;
    if (!r->dsampler) {
        mh_sample_top_n(sl->dlogits, s->n_vocab, 1, &id);
        if (s->p.draft_p_min > 0 && top_prob(sl->dlogits, s->n_vocab, id) < s->p.draft_p_min) return -1;
        return id;
    }
    if ((id = mh_sampler_sample(r->dsampler, sl->dlogits, NULL)) < 0) return -1;
    const int32_t *ids;
    const float *pr;
    int64_t n = mh_sampler_candidates(r->dsampler, &ids, &pr);
    float *q = sl->q + (size_t)k * (size_t)s->n_vocab, pmax = 0;
    memset(q, 0, sizeof(float) * (size_t)s->n_vocab);
    for (int64_t c = 0; c < n; c++) {
        q[ids[c]] = pr[c];
        if (pr[c] > pmax) pmax = pr[c];
    }
    return pmax < s->p.draft_p_min ? -1 : id;
}

static int64_t common_ids(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    int64_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* First draft round of sl (the k-th batch row): the draft cache is cut back
 * to what it shares with hist + last and fed the rest; a catch-up longer
 * than prefill_chunk is fed a chunk at a time without drafting. */
static void catch_up_row(mh_sched *s, sched_slot *sl, int k, int *cap)
{
    int64_t L = sl->n_hist + 1;
    int64_t common = common_ids(sl->dhist, sl->n_dhist, sl->hist, L);
    if (common >= L) common = L - 1;          /* the last id runs again for its logits */
    mh_kv_cache_truncate(sl->dcache, common);
    sl->n_dhist = common;
    int64_t need = L - common, n = need < s->p.prefill_chunk ? need : s->p.prefill_chunk;
    if (n < need) *cap = 0;
    s->seqs[k] = (mh_batch_seq){ .cache = sl->dcache, .tokens = sl->hist + common, .n = n,
                                 .logits = n == need ? sl->dlogits : NULL };
}

/* Runs the draft model over the n slots in list (caps: their room), one
 * batched forward per drafted position. On failure the slots draft nothing.
 * A lone slot's one-row rounds (after the catch-up) are timed for the
 * draft length (spec_cost.c). */
static void draft_model(mh_sched *s, const int *list, int *cap, int n)
{
    int rows[MH_SCHED_MAX_PARALLEL], nr = 0;
    double t1 = 0;
    for (int round = 0;; round++) {
        if (round == 1 && n == 1) t1 = mh_sched_now_ms();
        nr = 0;
        for (int j = 0; j < n; j++) {
            sched_slot *sl = &s->slots[list[j]];
            if (round == 0) catch_up_row(s, sl, nr, &cap[j]);
            else if (sl->nd < cap[j]) s->seqs[nr] = (mh_batch_seq){ .cache = sl->dcache,
                    .tokens = &sl->row[sl->nd], .n = 1, .logits = sl->dlogits };
            else continue;
            rows[nr++] = j;
        }
        if (nr == 0) {
            if (t1 > 0 && round > 1) {
                s->step_round_s = (mh_sched_now_ms() - t1) * 1e-3 / (round - 1);
                mh_spec_note_draft(&s->costs, s->step_round_s);
            }
            return;
        }
        if (mh_model_forward_batch(s->p.draft, s->seqs, nr, NULL) != MH_OK) {
            for (int j = 0; j < n; j++) {
                sched_slot *sl = &s->slots[list[j]];
                mh_kv_cache_truncate(sl->dcache, 0);
                sl->n_dhist = 0;
                sl->nd = 0;
            }
            return;
        }
        for (int i = 0; i < nr; i++) {
            sched_slot *sl = &s->slots[list[rows[i]]];
            memcpy(sl->dhist + sl->n_dhist, s->seqs[i].tokens, sizeof(int32_t) * (size_t)s->seqs[i].n);
            sl->n_dhist += s->seqs[i].n;
            if (cap[rows[i]] == 0) continue;
            int32_t id = draft_pick(s, sl, sl->nd);
            if (id < 0) { cap[rows[i]] = sl->nd; continue; }
            sl->row[1 + sl->nd++] = id;
        }
    }
}

void mh_spec_draft(mh_sched *s)
{
    int list[MH_SCHED_MAX_PARALLEL], cap[MH_SCHED_MAX_PARALLEL], n = 0;
    s->step_round_s = 0;
    for (int i = 0; i < s->p.n_parallel; i++) {
        sched_slot *sl = &s->slots[i];
        if (!sl->r || !sl->decoding) continue;
        sl->row[0] = sl->last;
        sl->nd = 0;
        if (sl->r->spec_mode == MH_SPEC_OFF) continue;
        int k = draft_room(s, sl);
        if (k <= 0) continue;
        sl->hist[sl->n_hist] = sl->last;      /* hist + last: the context drafts continue */
        if (sl->r->spec_mode == MH_SPEC_NGRAM) {
            sl->nd = ngram_propose(sl->hist, sl->n_hist + 1, sl->r->spec_ngram, k, sl->row + 1);
            continue;
        }
        list[n] = i;
        cap[n++] = k;
    }
    if (n > 0) draft_model(s, list, cap, n);
}

void mh_spec_slot_free(sched_slot *sl)
{
    mh_kv_cache_free(sl->dcache);
    free(sl->dhist);
    free(sl->dlogits);
    free(sl->q);
    free(sl->p);
}
