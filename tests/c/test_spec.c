/* test_spec.c: speculative decoding in the scheduler (engine/sched/spec_*.c):
 * the accept / resample step keeps the model's distribution (chi-square on
 * synthetic p and q), greedy output with a draft model or n-gram lookup is
 * the output of plain greedy decoding (stories260K F16 with its Q4_0 as the
 * draft), a drafted and a plain slot batched together, sampled speculation
 * keeps the joint distribution of the first tokens, draft_p_min cuts
 * unsure drafts, the draft length follows the cost model and the
 * acceptance (mh_spec_best_k, mh_spec_next_k), and bad settings are refused. */
#include "harness.h"
#include "mh/loop.h"
#include "mh/sched.h"
#include "../../engine/sched/sched_internal.h"   /* mh_spec_next_k: a request's draft length */

static mh_model *g_model, *g_draft;
static mh_loop *g_loop;

static uint64_t g_rng = 12345;
static double uni(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) * (1.0 / 9007199254740992.0);
}

static int32_t draw(const float *q, int n)
{
    double u = uni(), c = 0;
    for (int i = 0; i < n; i++) { c += q[i]; if (u < c) return i; }
    return n - 1;
}

/* Pearson's chi-square of counts (n cells, total N) against probabilities p. */
static double chi2(const long *count, const float *p, int n, long N)
{
    double x = 0;
    for (int i = 0; i < n; i++) {
        double e = p[i] * (double)N;
        if (e > 0) x += (count[i] - e) * (count[i] - e) / e;
        else if (count[i] > 0) return INFINITY;
    }
    return x;
}

/* d drawn from q (or fixed when q is NULL): the returned tokens follow p.
 * 200000 draws over 6 cells: chi-square (5 dof) stays under 35 except
 * with probability ~1e-6; a wrong rule (always accept, resample from p or
 * from q) gives thousands. The accept rate is sum min(p, q). */
static void test_accept_keeps_p(void)
{
    const float p[6] = { 0.40f, 0.25f, 0.15f, 0.10f, 0.07f, 0.03f };
    const float qs[3][6] = {
        { 0.10f, 0.10f, 0.30f, 0.30f, 0.10f, 0.10f },
        { 0.00f, 0.50f, 0.00f, 0.00f, 0.25f, 0.25f },   /* q misses tokens p has */
        { 0.40f, 0.25f, 0.15f, 0.10f, 0.07f, 0.03f },   /* q == p: always accepted */
    };
    const long N = 200000;
    for (int c = 0; c < 4; c++) {
        const float *q = c < 3 ? qs[c] : NULL;
        long count[6] = { 0 }, acc = 0;
        for (long k = 0; k < N; k++) {
            bool a;
            int32_t d = q ? draw(q, 6) : 1;
            int32_t t = mh_spec_accept(p, q, 6, d, uni(), uni(), &a);
            CHECK(t >= 0 && t < 6);
            CHECK(!a || t == d);
            count[t]++;
            acc += a;
        }
        double x = chi2(count, p, 6, N), want = 0;
        for (int i = 0; i < 6; i++) want += q ? fminf(p[i], q[i]) : (i == 1 ? p[i] : 0);
        CHECK_MSG(x < 35, "case %d: chi-square %.1f", c, x);
        CHECK_MSG(fabs((double)acc / N - want) < 0.01, "case %d: accept rate %.4f, want %.4f", c,
                  (double)acc / N, want);
    }
}

/* ===== in the scheduler ===== */

#define NEED_MODELS() do { if (!g_model || !g_draft) \
    TEST_SKIP("models/stories260K-F16.gguf or -Q4_0.gguf missing"); } while (0)

/* A repetitive prompt (ids of the stories vocabulary): lookup finds matches. */
static const int32_t PR[] = { 1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 403, 407, 261, 378,
                              432, 383, 286, 261, 376, 403, 407, 261 };
#define N_PR ((int64_t)(sizeof PR / sizeof PR[0]))

static int ref_greedy(const int32_t *p, int64_t n, int max, int32_t *out)
{
    int64_t nv = mh_model_hparams(g_model)->n_vocab;
    mh_kv_cache *c = mh_kv_cache_new(g_model, n + max + 1, NULL);
    float *lg = malloc(sizeof(float) * (size_t)nv);
    int k = 0;
    if (!c || !lg || mh_model_forward(g_model, c, p, n, lg, false, NULL)) k = -1;
    for (; k >= 0 && k < max; k++) {
        int32_t id = 0;
        for (int32_t j = 1; j < nv; j++) if (lg[j] > lg[id]) id = j;
        out[k] = id;
        if (k + 1 < max && mh_model_forward(g_model, c, &out[k], 1, lg, false, NULL)) k = -2;
    }
    free(lg);
    mh_kv_cache_free(c);
    return k;
}

typedef struct result {
    int32_t ids[256];
    int n;
    mh_sched_done_ev done;
} result;

static int collect(mh_chan *ch, result *res)
{
    memset(res, 0, sizeof *res);
    for (;;) {
        mh_chan_msg m;
        while (!mh_chan_pop(ch, &m)) {
            if (mh_chan_done(ch) || mh_loop_run(g_loop, 1, NULL)) return -1;
        }
        if (m.tag == MH_SCHED_EV_TOKEN) {
            mh_sched_token_ev ev;
            memcpy(&ev, m.data, sizeof ev);
            if (res->n < 256) res->ids[res->n++] = ev.id;
            free(m.data);
            continue;
        }
        int ok = m.tag == MH_SCHED_EV_DONE && m.len == sizeof(mh_sched_done_ev);
        if (ok) memcpy(&res->done, m.data, sizeof res->done);
        free(m.data);
        mh_chan_release(ch);
        return ok ? 0 : -1;
    }
}

static mh_sched *new_sched(int par, mh_model *draft, int draft_max)
{
    mh_sched_params p;
    mh_sched_params_init(&p);
    p.n_parallel = par;
    p.n_ctx = 256;
    p.draft = draft;
    p.draft_max = draft_max;
    mh_err err = { 0 };
    mh_sched *s = mh_sched_new(g_model, &p, &err);
    if (!s) fprintf(stderr, "  sched_new: %s\n", err.msg);
    return s;
}

static mh_chan *submit(mh_sched *s, const mh_sched_request *r)
{
    mh_err err = { 0 };
    mh_chan *ch = mh_chan_new(g_loop, &err);
    if (mh_sched_submit(s, r, ch, &err) < 0) {
        fprintf(stderr, "  submit: %s\n", err.msg);
        mh_chan_release(ch);
        return NULL;
    }
    return ch;
}

static mh_sched_request greedy(int mode, int max)
{
    mh_sched_request r;
    mh_sched_request_init(&r);
    r.tokens = PR;
    r.n_tokens = N_PR;
    r.max_tokens = max;
    r.sampler.temperature = 0;
    r.spec_mode = mode;
    return r;
}

/* One slot with the draft model, one with lookup, one plain, batched:
 * each gives plain greedy decoding's ids; only the drafted ones draft. */
static void test_greedy_identity_batched(void)
{
    NEED_MODELS();
    const int max = 60;
    int32_t ref[64];
    CHECK(ref_greedy(PR, N_PR, max, ref) == max);
    mh_sched *s = new_sched(3, g_draft, 5);
    CHECK(s);
    int modes[3] = { MH_SPEC_DEFAULT, MH_SPEC_NGRAM, MH_SPEC_OFF };
    mh_chan *ch[3];
    for (int i = 0; i < 3; i++) {
        mh_sched_request r = greedy(modes[i], max);
        CHECK((ch[i] = submit(s, &r)));
    }
    for (int i = 0; i < 3; i++) {
        result res;
        CHECK(collect(ch[i], &res) == 0);
        CHECK_MSG(res.n == max, "request %d: %d tokens", i, res.n);
        for (int k = 0; k < max; k++)
            CHECK_MSG(res.ids[k] == ref[k], "request %d token %d: %d vs %d", i, k, res.ids[k], ref[k]);
        const mh_sched_done_ev *d = &res.done;
        CHECK_MSG(i == 2 ? d->draft_tokens == 0 : d->draft_tokens > 0, "request %d drafted %lld", i,
                  (long long)d->draft_tokens);
        CHECK(d->accepted_tokens <= d->draft_tokens);
        /* every token is the bonus or an accepted draft of some target step */
        CHECK_MSG(d->completion_tokens == d->target_steps + d->accepted_tokens, "request %d: %lld = %lld + %lld",
                  i, (long long)d->completion_tokens, (long long)d->target_steps, (long long)d->accepted_tokens);
        if (i < 2) CHECK_MSG(d->accepted_tokens > 0, "request %d accepted nothing", i);
        /* the same weights in Q4_0 mostly agree (80%): a draft cache out of step
         * with the slot (not rolled back) would not */
        if (i == 0) CHECK_MSG(d->accepted_tokens * 10 >= d->draft_tokens * 7, "accepted %lld of %lld",
                              (long long)d->accepted_tokens, (long long)d->draft_tokens);
        CHECK(d->spec_mode == (i == 0 ? MH_SPEC_DRAFT : i == 1 ? MH_SPEC_NGRAM : MH_SPEC_OFF));
    }
    mh_sched_stats st;
    mh_sched_stats_get(s, &st);
    CHECK(st.spec_steps > 0 && st.spec_accepted > 0 && st.spec_accepted <= st.spec_drafted);
    mh_sched_free(s);
}

/* Sampled speculation keeps the model's distribution: (t1, t2) over 3000
 * seeds with top_k 3 against the exact joint p(t1) p(t2 | t1), t2 being
 * the first token verified against a draft (Q4_0 draft, or lookup). */
static int exact_joint(int32_t *ids, float *joint)
{
    int64_t nv = mh_model_hparams(g_model)->n_vocab;
    float *lg = malloc(sizeof(float) * (size_t)nv);
    mh_sampler_params sp;
    mh_sampler_params_init(&sp);
    sp.top_k = 3;
    mh_sampler *sm = mh_sampler_new(&sp, nv, NULL);
    mh_kv_cache *c = mh_kv_cache_new(g_model, 64, NULL);
    const int32_t *ci;
    const float *cp;
    mh_model_forward(g_model, c, PR, N_PR, lg, false, NULL);
    mh_sampler_sample(sm, lg, NULL);
    int64_t n1 = mh_sampler_candidates(sm, &ci, &cp);
    float p1[3];
    for (int a = 0; a < 3; a++) { ids[a] = ci[a]; p1[a] = cp[a]; }
    for (int a = 0; a < 3 && n1 == 3; a++) {
        mh_kv_cache_truncate(c, N_PR);
        mh_model_forward(g_model, c, &ids[a], 1, lg, false, NULL);
        mh_sampler_sample(sm, lg, NULL);
        mh_sampler_candidates(sm, &ci, &cp);
        for (int b = 0; b < 3; b++) { ids[3 + 3 * a + b] = ci[b]; joint[3 * a + b] = p1[a] * cp[b]; }
    }
    mh_kv_cache_free(c);
    mh_sampler_free(sm);
    free(lg);
    return n1 == 3 ? 0 : -1;
}

static void run_sampled(int mode, const int32_t *ids, const float *joint)
{
    mh_sched *s = new_sched(8, g_draft, 2);
    CHECK(s);
    const long N = 3000;
    long count[9] = { 0 }, drafted = 0;
    for (long k = 0; k < N; k += 8) {
        mh_chan *ch[8];
        for (int j = 0; j < 8; j++) {
            mh_sched_request r = greedy(mode, 3);
            r.sampler.temperature = 1;
            r.sampler.top_k = 3;
            r.sampler.top_p = 1;
            r.sampler.min_p = 0;
            r.sampler.seed = (uint64_t)(k + j + 1);
            CHECK((ch[j] = submit(s, &r)));
        }
        for (int j = 0; j < 8; j++) {
            result res;
            CHECK(collect(ch[j], &res) == 0 && res.n == 3);
            drafted += res.done.draft_tokens;
            int a = 0, b = 0;
            while (a < 3 && ids[a] != res.ids[0]) a++;
            CHECK(a < 3);
            while (b < 3 && ids[3 + 3 * a + b] != res.ids[1]) b++;
            CHECK(b < 3);
            count[3 * a + b]++;
        }
    }
    double x = chi2(count, joint, 9, (N + 7) / 8 * 8);
    /* 8 dof: P(chi-square > 40) ~ 2e-6 */
    CHECK_MSG(x < 40, "mode %d: chi-square %.1f", mode, x);
    CHECK_MSG(drafted >= N / 2, "mode %d: only %ld drafted", mode, drafted);
    mh_sched_free(s);
}

static void test_sampled_keeps_distribution(void)
{
    NEED_MODELS();
    int32_t ids[12];
    float joint[9];
    CHECK(exact_joint(ids, joint) == 0);
    run_sampled(MH_SPEC_DRAFT, ids, joint);
    run_sampled(MH_SPEC_NGRAM, ids, joint);
}

/* draft_p_min: a draft model less sure than that stops drafting; the
 * tokens stay the plain ones. */
static void test_p_min(void)
{
    NEED_MODELS();
    int32_t ref[40];
    CHECK(ref_greedy(PR, N_PR, 40, ref) == 40);
    int64_t drafted[2];
    float pmin[2] = { 0, 0.9f };
    for (int k = 0; k < 2; k++) {
        mh_sched_params p;
        mh_sched_params_init(&p);
        p.n_ctx = 128;
        p.draft = g_draft;
        p.draft_max = 6;
        p.draft_p_min = pmin[k];
        mh_sched *s = mh_sched_new(g_model, &p, NULL);
        CHECK(s);
        mh_sched_request r = greedy(MH_SPEC_DEFAULT, 40);
        mh_chan *ch = submit(s, &r);
        result res;
        CHECK(ch && collect(ch, &res) == 0 && res.n == 40);
        for (int i = 0; i < 40; i++) CHECK(res.ids[i] == ref[i]);
        drafted[k] = res.done.draft_tokens;
        mh_sched_free(s);
    }
    CHECK_MSG(drafted[1] < drafted[0] && drafted[0] > 0, "drafted %lld with p_min 0, %lld with 0.9",
              (long long)drafted[0], (long long)drafted[1]);
}

/* cost[1..n] of k drafts in target-token units: 1 + c k (the check taken as
 * one row), the rule's prior before anything is measured. */
static const double *bytes_cost(double c, int n)
{
    static double cost[MH_SCHED_MAX_DRAFT + 1];
    for (int k = 1; k <= n; k++) cost[k] = 1 + c * k;
    return cost;
}

/* A request drafting with a model, up to n_max, whose draft reads 0.14 of
 * the model's weight bytes (a Q4_0 draft of an F32 model). */
static sched_req draft_req(int n_max)
{
    sched_req r;
    memset(&r, 0, sizeof r);
    r.spec_mode = MH_SPEC_DRAFT;
    r.spec_n_max = r.spec_k = n_max;
    r.spec_c = 0.14;
    return r;
}

/* The draft length rule (mh_spec_best_k): the k with the most tokens per
 * unit of cost, 1 + a + ... + a^k over cost[k]. Worked by hand: at a = 0.8,
 * c = 0.19 the rates of k = 3, 4, 5 are 1.880, 1.910, 1.892. */
static void test_best_k(void)
{
    CHECK(mh_spec_best_k(0.8, bytes_cost(0.19, 8), 8) == 4);
    CHECK(mh_spec_best_k(0.8, bytes_cost(0.19, 3), 3) == 3);       /* capped by n_max */
    CHECK(mh_spec_best_k(0.8, bytes_cost(0.14, 8), 8) == 5);       /* a cheaper draft drafts further */
    CHECK(mh_spec_best_k(0.3, bytes_cost(0.14, 8), 8) == 1);       /* a poor one: one token */
    CHECK(mh_spec_best_k(0.0, bytes_cost(0.5, 8), 8) == 1);
    CHECK(mh_spec_best_k(1.0, bytes_cost(0.01, 32), 32) == 32);    /* always right and nearly free */
    CHECK(mh_spec_best_k(0.95, bytes_cost(0.3, 8), 8) == 8);
    /* a check of more than 4 rows at 1.6x one row (0.2 a draft): at a =
     * 0.8 k = 3 rates 2.952 / 1.6 = 1.845 against k = 8's 4.33 / 3.2 */
    double cost[9];
    for (int k = 1; k <= 8; k++) cost[k] = 0.2 * k + (k + 1 <= 4 ? 1.0 : 1.6);
    CHECK_MSG(mh_spec_best_k(0.8, cost, 8) == 3, "%d", mh_spec_best_k(0.8, cost, 8));
}

/* A request's next draft length (mh_spec_next_k) after a run of steps:
 * a draft model that was right at every try keeps drafting far after one
 * miss at its first token (a single independent miss says little), one that
 * keeps missing at the first token drafts one, one past the best after a
 * draft accepted whole; lookup follows its runs (one past the accepted part). */
static void test_next_k(void)
{
    sched_req r = draft_req(8);
    for (int i = 0; i < 10; i++) mh_spec_next_k(NULL, &r, r.spec_k, r.spec_k);
    CHECK(r.spec_k == 8);
    mh_spec_next_k(NULL, &r, 8, 0);
    CHECK_MSG(r.spec_k >= 6, "after one miss: %d", r.spec_k);
    for (int i = 0; i < 20; i++) mh_spec_next_k(NULL, &r, r.spec_k, 0);
    CHECK_MSG(r.spec_k == 1, "after many misses: %d", r.spec_k);
    r.spec_hits = 0, r.spec_tries = 10;      /* a = 1.5 / 11 after the hit: best 1 */
    mh_spec_next_k(NULL, &r, 1, 1);          /* accepted whole: one past the best */
    CHECK_MSG(r.spec_k == 2, "%d", r.spec_k);
    memset(&r, 0, sizeof r);
    r.spec_mode = MH_SPEC_NGRAM;
    r.spec_n_max = r.spec_k = 8;
    for (int i = 0; i < 10; i++) mh_spec_next_k(NULL, &r, 8, 8);
    mh_spec_next_k(NULL, &r, 8, 0);
    CHECK(r.spec_k == 1);
    mh_spec_next_k(NULL, &r, 1, 1);
    mh_spec_next_k(NULL, &r, 2, 1);
    CHECK(r.spec_k == 2);
}

/* The measured costs move the length. Each call sees a = 10.75 / 14 =
 * 0.768 (hits 8 of 10 decayed, then 3 of 4). From the weight bytes (c =
 * 0.14, the check as one row) k = 4 rates 2.01, k = 3 1.97; measured in
 * draft rounds (checks of 4 rows 5.5 rounds, of 9 rows 9.5, 5..8 read on
 * the line between: 6.3 for 5) k = 3 rates 2.794 / 8.5 = 0.329 a round, k
 * = 4 3.135 / 10.3 = 0.304 (0.328 if 5 rows were read as 4's 5.5). The
 * timings go into the average of their row count; row counts out of range
 * are ignored. */
static void test_measured_costs(void)
{
    mh_spec_costs sc;
    memset(&sc, 0, sizeof sc);
    sched_req r = draft_req(8);
    r.spec_hits = 8, r.spec_tries = 10;
    mh_spec_next_k(&sc, &r, 4, 3);
    CHECK_MSG(r.spec_k == 4, "bytes prior: %d", r.spec_k);
    mh_spec_note_draft(&sc, 0.018);           /* 18 ms a draft round */
    mh_spec_note_check(&sc, 4, 5.5);
    mh_spec_note_check(&sc, 9, 9.5);
    mh_spec_note_check(&sc, 1, 50);            /* out of range: ignored */
    mh_spec_note_check(&sc, MH_SCHED_COST_ROWS, 50);
    CHECK(sc.draft_s == 0.018 && sc.check_rounds[4] == 5.5 && sc.check_rounds[9] == 9.5);
    r.spec_hits = 8, r.spec_tries = 10;
    mh_spec_next_k(&sc, &r, 4, 3);
    CHECK_MSG(r.spec_k == 3, "measured: %d", r.spec_k);
    mh_spec_note_check(&sc, 4, 11);            /* a running average, not the last */
    CHECK(sc.check_rounds[4] > 5.5 && sc.check_rounds[4] < 11);
}

/* The first step's length (mh_spec_first_k): a draft model's is the best
 * at the prior acceptance (0.5) at the costs: 2 from the weight bytes (c =
 * 0.14), 5 when a check of any rows takes 100 draft rounds (k = 4, 5, 6
 * rate 1.9375 / 104, 1.969 / 105, 1.984 / 106); lookup starts at n_max. */
static void test_first_k(void)
{
    mh_spec_costs sc;
    memset(&sc, 0, sizeof sc);
    sched_req r = draft_req(8);
    mh_spec_first_k(&sc, &r);
    CHECK_MSG(r.spec_k == 2, "%d", r.spec_k);
    for (int n = 2; n <= 9; n++) sc.check_rounds[n] = 100;
    mh_spec_first_k(&sc, &r);
    CHECK_MSG(r.spec_k == 5, "%d", r.spec_k);
    r.spec_mode = MH_SPEC_NGRAM;
    mh_spec_first_k(&sc, &r);
    CHECK(r.spec_k == 8);
}

/* A lone drafted request feeds the scheduler's timings: draft rounds, and
 * checks of 2..6 rows (draft_max 5) in draft rounds, none past. A scheduler starts from
 * the costs it is given (a previous one's) and its stats carry them. */
static void test_costs_noted(void)
{
    NEED_MODELS();
    mh_sched_params p;
    mh_sched_params_init(&p);
    p.spec_costs.check_rounds[3] = 7.0;
    p.spec_costs.draft_s = -1;
    mh_err err = { 0 };
    CHECK(!mh_sched_new(g_model, &p, &err) && strstr(err.msg, "costs"));
    p.spec_costs.draft_s = 0;
    p.draft = g_draft;
    mh_sched *s = mh_sched_new(g_model, &p, &err);
    CHECK(s && s->costs.check_rounds[3] == 7.0);
    mh_sched_stats st;
    mh_sched_stats_get(s, &st);
    CHECK(st.spec_costs.check_rounds[3] == 7.0);
    mh_sched_free(s);
    s = new_sched(1, g_draft, 5);
    CHECK(s);
    mh_sched_request r = greedy(MH_SPEC_DRAFT, 40);
    mh_chan *ch = submit(s, &r);
    result res;
    CHECK(ch && collect(ch, &res) == 0 && res.done.draft_tokens > 0);
    int seen = 0;
    for (int n = 0; n < MH_SCHED_COST_ROWS; n++) {
        CHECK_MSG(n <= 6 || s->costs.check_rounds[n] == 0, "%d rows", n);
        seen += s->costs.check_rounds[n] > 0;
    }
    CHECK_MSG(s->costs.draft_s > 0 && seen > 0, "draft %g, %d row counts", s->costs.draft_s, seen);
    mh_sched_free(s);
}

/* Refused: a draft request without a draft model, n_max past the cap, a
 * draft_max past the cap. */
static void test_rejects(void)
{
    NEED_MODELS();
    mh_sched *s = new_sched(1, NULL, 0);
    CHECK(s);
    mh_sched_request r = greedy(MH_SPEC_DRAFT, 4);
    mh_err err = { 0 };
    mh_chan *ch = mh_chan_new(g_loop, &err);
    CHECK(mh_sched_submit(s, &r, ch, &err) < 0 && err.code == MH_EINVAL && strstr(err.msg, "draft"));
    r = greedy(MH_SPEC_NGRAM, 4);
    r.spec_n_max = MH_SCHED_MAX_DRAFT + 1;
    CHECK(mh_sched_submit(s, &r, ch, &err) < 0 && strstr(err.msg, "n_max"));
    mh_chan_release(ch);
    mh_sched_free(s);
    mh_sched_params p;
    mh_sched_params_init(&p);
    p.draft = g_draft;
    p.draft_max = MH_SCHED_MAX_DRAFT + 1;
    CHECK(!mh_sched_new(g_model, &p, &err) && strstr(err.msg, "draft_max"));
    p.draft_max = 4;
    p.draft_p_min = 1;
    CHECK(!mh_sched_new(g_model, &p, &err) && strstr(err.msg, "draft_p_min"));
}

int main(void)
{
    char mp[4096], dp[4096];
    mh_err err = { 0 };
    g_loop = mh_loop_new(&err);
    if (!g_loop) { fprintf(stderr, "loop: %s\n", err.msg); return 1; }
    if (test_data_path("models/stories260K-F16.gguf", mp) && test_data_path("models/stories260K-Q4_0.gguf", dp)
        && (mh_model_load(mp, &g_model, &err) || mh_model_load(dp, &g_draft, &err))) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    TEST_RUN(test_accept_keeps_p);
    TEST_RUN(test_greedy_identity_batched);
    TEST_RUN(test_sampled_keeps_distribution);
    TEST_RUN(test_p_min);
    TEST_RUN(test_best_k);
    TEST_RUN(test_next_k);
    TEST_RUN(test_measured_costs);
    TEST_RUN(test_first_k);
    TEST_RUN(test_costs_noted);
    TEST_RUN(test_rejects);
    mh_model_free(g_draft);
    mh_model_free(g_model);
    mh_loop_release(g_loop);
    return TEST_REPORT();
}
