/* test_sample.c: the sampling chain (greedy, top-k/top-p/min-p sets,
 * penalties, bias, seeded draws and their statistics), logprobs against a
 * naive double log-softmax, and the streaming stop-string matcher.
 * Layer: tests (C). Runs in well under a second. */
#include <stdint.h>
#include "harness.h"
#include "mh/sample.h"

/* ===== helpers ===== */

static uint64_t lcg_state;
static double lcg_uniform(void)   /* test data only; the sampler has its own stream */
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) * 0x1.0p-53;
}

static void random_logits(float *l, int n, uint64_t seed, float scale)
{
    lcg_state = seed;
    for (int i = 0; i < n; i++) l[i] = (float)((lcg_uniform() * 2 - 1) * scale);
}

static mh_sampler *make(mh_sampler_params *p, int64_t n)
{
    mh_err err = {0};
    mh_sampler *s = mh_sampler_new(p, n, &err);
    if (!s) fprintf(stderr, "  sampler_new: %s\n", err.msg);
    return s;
}

static int cmp_id(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* sorted copy of the last candidate ids, for set comparisons */
static int64_t cand_set(mh_sampler *s, int32_t *out)
{
    const int32_t *ids;
    int64_t c = mh_sampler_candidates(s, &ids, NULL);
    memcpy(out, ids, (size_t)c * sizeof *out);
    qsort(out, (size_t)c, sizeof *out, cmp_id);
    return c;
}

/* ===== parameters ===== */

static int bad_params(mh_sampler_params p, int64_t n, const char *needle)
{
    mh_err err = {0};
    mh_sampler *s = mh_sampler_new(&p, n, &err);
    if (s) { mh_sampler_free(s); return 0; }
    return err.code == MH_EINVAL && strstr(err.msg, needle) != NULL;
}

static void test_params_errors(void)
{
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    mh_sampler_params q = p;
    q.temperature = -0.1f; CHECK(bad_params(q, 10, "temperature"));
    q = p; q.temperature = NAN; CHECK(bad_params(q, 10, "temperature"));
    q = p; q.top_p = 0.0f; CHECK(bad_params(q, 10, "top_p"));
    q = p; q.top_p = 1.5f; CHECK(bad_params(q, 10, "top_p"));
    q = p; q.top_p = NAN; CHECK(bad_params(q, 10, "top_p"));
    q = p; q.min_p = 1.5f; CHECK(bad_params(q, 10, "min_p"));
    q = p; q.repeat_penalty = 0.0f; CHECK(bad_params(q, 10, "repeat_penalty"));
    q = p; q.repeat_last_n = -2; CHECK(bad_params(q, 10, "repeat_last_n"));
    q = p; q.presence_penalty = INFINITY; CHECK(bad_params(q, 10, "presence_penalty"));
    CHECK(bad_params(p, 0, "n_vocab"));
    CHECK(bad_params(p, -5, "n_vocab"));
    mh_logit_bias b[2] = {{3, 1.0f}, {10, 1.0f}};
    q = p; q.bias = b; q.n_bias = 2; CHECK(bad_params(q, 10, "logit_bias id 10"));
    b[1] = (mh_logit_bias){-1, 0.0f}; CHECK(bad_params(q, 10, "logit_bias id -1"));
    b[1] = (mh_logit_bias){4, NAN}; CHECK(bad_params(q, 10, "logit_bias"));
    q = p; q.n_bias = 3; CHECK(bad_params(q, 10, "bias"));
    CHECK(mh_sampler_new(NULL, 10, NULL) == NULL);
    q = p; q.top_k = -7;   /* disabled, not an error */
    mh_sampler *s = make(&q, 10);
    CHECK(s != NULL);
    mh_err err = {0};
    CHECK(mh_sampler_accept(s, 10, &err) == MH_EINVAL && strstr(err.msg, "id 10"));
    CHECK(mh_sampler_sample(s, NULL, &err) == -1 && err.code == MH_EINVAL);
    mh_sampler_free(s);
    mh_sampler_free(NULL);
}

/* ===== greedy and top-k ===== */

static void test_greedy_ties(void)
{
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    p.temperature = 0;
    mh_sampler *s = make(&p, 6);
    CHECK(s);
    float l[6] = {1, NAN, 3, 2, 3, -INFINITY};
    int32_t id = mh_sampler_sample(s, l, NULL);
    CHECK(id == 2);
    CHECK(isinf(l[1]) && l[1] < 0);   /* NaN became -inf in place */
    float l2[6] = {-1, -1, -1, -1, -1, -1};
    CHECK(mh_sampler_sample(s, l2, NULL) == 0);
    float l3[6] = {0, 0, INFINITY, 5, INFINITY, 0};
    CHECK(mh_sampler_sample(s, l3, NULL) == 2);
    mh_sampler_free(s);
}

static void test_all_inf(void)
{
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    float l[4] = {NAN, -INFINITY, NAN, -INFINITY};
    for (int greedy = 0; greedy < 2; greedy++) {
        p.temperature = greedy ? 0.0f : 0.8f;
        mh_sampler *s = make(&p, 4);
        CHECK(s);
        mh_err err = {0};
        float c[4];
        memcpy(c, l, sizeof c);
        CHECK(mh_sampler_sample(s, c, &err) == -1);
        CHECK(err.code == MH_EINVAL && strstr(err.msg, "all logits are -inf/NaN"));
        mh_sampler_free(s);
    }
    mh_logit_bias ban[2] = {{0, -INFINITY}, {1, -INFINITY}};
    p.bias = ban; p.n_bias = 2;
    mh_sampler *s = make(&p, 2);
    CHECK(s);
    float c[2] = {1, 2};
    CHECK(mh_sampler_sample(s, c, NULL) == -1);
    mh_sampler_free(s);
}

static void test_top_k1_is_greedy(void)
{
    enum { N = 1000 };
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    p.top_k = 1; p.temperature = 1.5f;
    mh_sampler_params g = p;
    g.temperature = 0;
    mh_sampler *s = make(&p, N), *gs = make(&g, N);
    CHECK(s && gs);
    float a[N], b[N];
    for (int t = 0; t < 50; t++) {
        random_logits(a, N, 100 + t, 4.0f);
        for (int i = 0; i < N; i++) a[i] = roundf(a[i]);   /* many ties */
        memcpy(b, a, sizeof a);
        CHECK(mh_sampler_sample(s, a, NULL) == mh_sampler_sample(gs, b, NULL));
    }
    mh_sampler_free(s); mh_sampler_free(gs);
}

static void test_top_n_selection(void)
{
    float l[8] = {0.5f, NAN, 2, 2, -INFINITY, 7, 2, 0.5f};
    int32_t ids[8];
    CHECK(mh_sample_top_n(l, 8, 5, ids) == 5);
    int32_t want[5] = {5, 2, 3, 6, 0};
    for (int i = 0; i < 5; i++) CHECK(ids[i] == want[i]);
    CHECK(mh_sample_top_n(l, 8, 20, ids) == 8);
    CHECK(ids[6] == 1 && ids[7] == 4);   /* NaN ranks as -inf, lower id first */
    CHECK(mh_sample_top_n(l, 8, 0, ids) == 0);
}

/* ===== truncation sets ===== */

static void test_top_k_top_p_min_p_sets(void)
{
    /* probabilities by id: 0.1 0.4 0.05 0.3 0.15 */
    const double pr[5] = {0.1, 0.4, 0.05, 0.3, 0.15};
    float l[5], c[5];
    for (int i = 0; i < 5; i++) l[i] = (float)log(pr[i]);
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    int32_t set[5];
    const float *probs;
    const int32_t *ids;

    p.top_k = 2;
    mh_sampler *s = make(&p, 5);
    CHECK(s);
    memcpy(c, l, sizeof c);
    CHECK(mh_sampler_sample(s, c, NULL) >= 0);
    CHECK(mh_sampler_candidates(s, &ids, &probs) == 2);
    CHECK(ids[0] == 1 && ids[1] == 3);   /* best first */
    CHECK_CLOSE(probs[0], 0.4 / 0.7, 1e-6, 0);
    mh_sampler_free(s);

    p.top_k = 0; p.top_p = 0.8f;   /* 0.4 + 0.3 = 0.7 < 0.8 <= 0.85 */
    s = make(&p, 5);
    memcpy(c, l, sizeof c);
    CHECK(mh_sampler_sample(s, c, NULL) >= 0);
    CHECK(cand_set(s, set) == 3 && set[0] == 1 && set[1] == 3 && set[2] == 4);
    mh_sampler_free(s);

    p.top_p = 1.0f; p.min_p = 0.3f;   /* keep p >= 0.12: 0.4 0.3 0.15 */
    s = make(&p, 5);
    memcpy(c, l, sizeof c);
    CHECK(mh_sampler_sample(s, c, NULL) >= 0);
    CHECK(cand_set(s, set) == 3 && set[0] == 1 && set[1] == 3 && set[2] == 4);
    mh_sampler_free(s);

    p.top_p = 0.5f; p.min_p = 0.3f;   /* top-p alone keeps {1, 3}: the shorter wins */
    s = make(&p, 5);
    memcpy(c, l, sizeof c);
    CHECK(mh_sampler_sample(s, c, NULL) >= 0);
    CHECK(cand_set(s, set) == 2 && set[0] == 1 && set[1] == 3);
    mh_sampler_free(s);

    p.top_k = 4; p.top_p = 1.0f; p.min_p = 0.5f;   /* keep p >= 0.2 of the top 4 */
    s = make(&p, 5);
    memcpy(c, l, sizeof c);
    CHECK(mh_sampler_sample(s, c, NULL) >= 0);
    CHECK(cand_set(s, set) == 2 && set[0] == 1 && set[1] == 3);
    mh_sampler_free(s);

    p.top_k = 3; p.top_p = 0.75f; p.min_p = 0;   /* renormalized over 0.85: 0.47, 0.82 */
    s = make(&p, 5);
    memcpy(c, l, sizeof c);
    CHECK(mh_sampler_sample(s, c, NULL) >= 0);
    CHECK(cand_set(s, set) == 2 && set[0] == 1 && set[1] == 3);
    mh_sampler_free(s);
}

typedef struct ref_c { float l; int32_t id; } ref_c;
static int ref_cmp(const void *a, const void *b)
{
    const ref_c *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return x->id - y->id;
}

/* The bucket pre-filter must give exactly the naive full-sort nucleus. */
static void test_top_p_large_vocab_exact(void)
{
    enum { N = 50000 };
    static float l[N], c[N];
    static ref_c r[N];
    static int32_t set[N];
    const float tops[4] = {0.3f, 0.9f, 0.99f, 0.999f};
    for (int t = 0; t < 4; t++) {
        random_logits(l, N, 7 + t, 6.0f);
        for (int i = 0; i < N; i += 97) l[i] = -INFINITY;
        mh_sampler_params p;
        mh_sampler_params_init(&p);
        p.top_p = tops[t];
        mh_sampler *s = make(&p, N);
        CHECK(s);
        memcpy(c, l, sizeof c);
        CHECK(mh_sampler_sample(s, c, NULL) >= 0);
        int64_t got = cand_set(s, set);
        mh_sampler_free(s);
        double m = -INFINITY, z = 0, cum = 0;
        for (int i = 0; i < N; i++) { r[i] = (ref_c){l[i], i}; if (l[i] > m) m = l[i]; }
        for (int i = 0; i < N; i++) z += exp(l[i] - m);
        qsort(r, N, sizeof *r, ref_cmp);
        int64_t want = N;
        for (int i = 0; i < N; i++) {
            cum += exp(r[i].l - m);
            if (cum >= tops[t] * z) { want = i + 1; break; }
        }
        CHECK_MSG(got == want, "top_p %g: %lld candidates, want %lld", tops[t], (long long)got, (long long)want);
        qsort(r, (size_t)want, sizeof *r, ref_cmp);
        for (int64_t i = 0; i < want; i++) {   /* same members */
            int32_t id = r[i].id;
            int64_t lo = 0, hi = got - 1;
            while (lo < hi) { int64_t mid = (lo + hi) / 2; if (set[mid] < id) lo = mid + 1; else hi = mid; }
            CHECK(set[lo] == id);
        }
    }
}

/* ===== draws ===== */

static double chi2_draws(mh_sampler *s, const float *l, const double *pr, int n, int draws)
{
    int count[16] = {0};
    float c[16];
    for (int d = 0; d < draws; d++) {
        memcpy(c, l, (size_t)n * sizeof *c);
        int32_t id = mh_sampler_sample(s, c, NULL);
        if (id < 0 || id >= n) return 1e9;
        count[id]++;
    }
    double chi2 = 0;
    for (int i = 0; i < n; i++) {
        double e = pr[i] * draws;
        if (e == 0) { if (count[i]) return 1e9; continue; }
        chi2 += (count[i] - e) * (count[i] - e) / e;
    }
    return chi2;
}

static void test_draw_statistics(void)
{
    const double pr[5] = {0.5, 0.25, 0.15, 0.07, 0.03};
    float l[5];
    for (int i = 0; i < 5; i++) l[i] = (float)log(pr[i]) + 3.0f;   /* shift-invariant */
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    p.seed = 12345;
    mh_sampler *s = make(&p, 5);
    CHECK(s);
    /* 4 degrees of freedom: P(chi2 > 23.5) ~ 1e-4 */
    double x = chi2_draws(s, l, pr, 5, 20000);
    CHECK_MSG(x < 23.5, "chi2 %g", x);
    mh_sampler_free(s);

    p.temperature = 2.0f;   /* p^(1/2), renormalized */
    double q[5], z = 0;
    for (int i = 0; i < 5; i++) z += (q[i] = sqrt(pr[i]));
    for (int i = 0; i < 5; i++) q[i] /= z;
    s = make(&p, 5);
    x = chi2_draws(s, l, q, 5, 20000);
    CHECK_MSG(x < 23.5, "chi2 at T=2: %g", x);
    mh_sampler_free(s);

    p.temperature = 1.0f; p.top_p = 0.8f;   /* nucleus {0, 1, 2}, renormalized */
    const double t[5] = {0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0, 0};
    s = make(&p, 5);
    x = chi2_draws(s, l, t, 5, 20000);
    CHECK_MSG(x < 18.5, "chi2 with top_p: %g", x);   /* 2 dof */
    mh_sampler_free(s);
}

static void draw_seq(uint64_t seed, int32_t *out, int n)
{
    enum { V = 300 };
    float l[V], c[V];
    random_logits(l, V, 99, 2.0f);
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    p.seed = seed; p.top_p = 0.95f; p.temperature = 0.9f;
    mh_sampler *s = make(&p, V);
    for (int i = 0; s && i < n; i++) {
        memcpy(c, l, sizeof c);
        out[i] = mh_sampler_sample(s, c, NULL);
    }
    mh_sampler_free(s);
}

static void test_seeds(void)
{
    int32_t a[200], b[200], c[200];
    draw_seq(7, a, 200);
    draw_seq(7, b, 200);
    draw_seq(8, c, 200);
    CHECK(memcmp(a, b, sizeof a) == 0);
    int diff = 0;
    for (int i = 0; i < 200; i++) diff += a[i] != c[i];
    CHECK(diff > 100);

    /* golden: a uniform draw over 10 ids with seed 1234 must never change
     * (xoshiro256** seeded by splitmix64, 53-bit uniforms) */
    float u[10] = {0};
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    p.seed = 1234;
    mh_sampler *s = make(&p, 10);
    CHECK(s);
    int32_t first[12];
    for (int i = 0; i < 12; i++) { float c2[10]; memcpy(c2, u, sizeof u); first[i] = mh_sampler_sample(s, c2, NULL); }
    mh_sampler_reset(s);   /* replays the stream */
    for (int i = 0; i < 12; i++) { float c2[10]; memcpy(c2, u, sizeof u); CHECK(mh_sampler_sample(s, c2, NULL) == first[i]); }
    static const int32_t golden[12] = {0, 8, 6, 8, 1, 8, 4, 2, 5, 6, 5, 2};
    for (int i = 0; i < 12; i++) CHECK_MSG(first[i] == golden[i], "draw %d: %d, want %d", i, first[i], golden[i]);
    CHECK(mh_sampler_seed(s) == 1234);
    mh_sampler_free(s);

    p.seed = MH_SAMPLER_SEED_RANDOM;
    s = make(&p, 10);
    CHECK(s && mh_sampler_seed(s) != MH_SAMPLER_SEED_RANDOM);
    mh_sampler_free(s);
}

/* ===== penalties and bias ===== */

static void test_penalties(void)
{
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    p.temperature = 0;
    p.repeat_penalty = 2.0f; p.presence_penalty = 0.5f; p.frequency_penalty = 0.25f;
    p.repeat_last_n = -1;
    mh_sampler *s = make(&p, 4);
    CHECK(s);
    CHECK(mh_sampler_accept(s, 0, NULL) == MH_OK);
    mh_sampler_accept(s, 1, NULL);
    mh_sampler_accept(s, 0, NULL);
    float l[4] = {2, -2, 1, 0.5f};
    CHECK(mh_sampler_sample(s, l, NULL) == 2);
    CHECK_CLOSE(l[0], 2.0 / 2 - (0.5 + 0.25 * 2), 1e-6, 0);   /* 0 */
    CHECK_CLOSE(l[1], -2.0 * 2 - (0.5 + 0.25), 1e-6, 0);      /* -4.75 */
    CHECK(l[2] == 1.0f && l[3] == 0.5f);
    mh_sampler_reset(s);   /* history gone */
    float l2[4] = {2, -2, 1, 0.5f};
    CHECK(mh_sampler_sample(s, l2, NULL) == 0 && l2[0] == 2.0f);
    mh_sampler_free(s);

    /* window of 2: after 0 1 0 only [1 0] count, once each */
    p.repeat_last_n = 2;
    s = make(&p, 4);
    int32_t hist[3] = {0, 1, 0};
    for (int i = 0; i < 3; i++) mh_sampler_accept(s, hist[i], NULL);
    float l3[4] = {2, -2, 1, 0.5f};
    mh_sampler_sample(s, l3, NULL);
    CHECK_CLOSE(l3[0], 1.0 - 0.75, 1e-6, 0);
    CHECK_CLOSE(l3[1], -4.0 - 0.75, 1e-6, 0);
    /* slide on: 1 0 3 3 3 -> window [3 3] */
    for (int i = 0; i < 3; i++) mh_sampler_accept(s, 3, NULL);
    float l4[4] = {2, -2, 1, 0.5f};
    mh_sampler_sample(s, l4, NULL);
    CHECK(l4[0] == 2.0f && l4[1] == -2.0f);
    CHECK_CLOSE(l4[3], 0.25 - (0.5 + 0.5), 1e-6, 0);
    mh_sampler_free(s);

    /* repeat_last_n 0 disables every penalty */
    p.repeat_last_n = 0;
    s = make(&p, 4);
    mh_sampler_accept(s, 0, NULL);
    float l5[4] = {2, -2, 1, 0.5f};
    CHECK(mh_sampler_sample(s, l5, NULL) == 0 && l5[0] == 2.0f);
    mh_sampler_free(s);
}

static void test_window_long_history(void)
{
    /* a long run through a growing, then wrapping ring must keep counts
     * equal to a direct count over the last n ids */
    enum { V = 50, LAST = 300, STEPS = 2000 };
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    p.temperature = 0; p.frequency_penalty = 1.0f; p.repeat_last_n = LAST;
    mh_sampler *s = make(&p, V);
    CHECK(s);
    static int32_t hist[STEPS];
    lcg_state = 5;
    for (int t = 0; t < STEPS; t++) {
        hist[t] = (int32_t)(lcg_uniform() * V);
        CHECK(mh_sampler_accept(s, hist[t], NULL) == MH_OK);
        if (t % 97 != 0 && t != STEPS - 1) continue;
        float l[V] = {0};
        mh_sampler_sample(s, l, NULL);
        int want[V] = {0};
        for (int i = t + 1 - LAST < 0 ? 0 : t + 1 - LAST; i <= t; i++) want[hist[i]]++;
        for (int i = 0; i < V; i++) CHECK(l[i] == -(float)want[i]);
    }
    mh_sampler_free(s);
}

static void test_logit_bias(void)
{
    float base[4] = {1, 5, 2, 0};
    mh_logit_bias b[3] = {{1, -INFINITY}, {3, 1.0f}, {3, 2.5f}};
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    p.temperature = 0; p.bias = b; p.n_bias = 3;
    mh_sampler *s = make(&p, 4);
    CHECK(s);
    b[0].id = 2;   /* the sampler keeps its own copy */
    float l[4];
    memcpy(l, base, sizeof l);
    CHECK(mh_sampler_sample(s, l, NULL) == 3);   /* 0 + 1 + 2.5 > 2 */
    CHECK(isinf(l[1]) && l[3] == 3.5f);
    mh_sampler_free(s);

    b[0].id = 1;
    p.temperature = 1.0f; p.n_bias = 1;
    s = make(&p, 4);
    for (int i = 0; i < 2000; i++) {
        memcpy(l, base, sizeof l);
        int32_t id = mh_sampler_sample(s, l, NULL);
        CHECK(id >= 0 && id != 1);
    }
    mh_sampler_free(s);
}

/* ===== logprobs ===== */

static void test_logprobs(void)
{
    enum { N = 1000 };
    float l[N];
    random_logits(l, N, 3, 8.0f);
    l[10] = l[20] = 30.0f;   /* tie at the top: lower id first */
    l[5] = -INFINITY;
    double m = -INFINITY, z = 0;
    for (int i = 0; i < N; i++) if (l[i] > m) m = l[i];
    for (int i = 0; i < N; i++) z += exp((double)l[i] - m);
    double lse = m + log(z);
    int32_t ids[5];
    float lp[5], chosen = 0;
    mh_err err = {0};
    CHECK(mh_logprobs_top(l, N, 5, 77, &chosen, ids, lp, &err) == 5);
    CHECK_CLOSE(chosen, l[77] - lse, 1e-5, 1e-6);
    CHECK(ids[0] == 10 && ids[1] == 20);
    for (int i = 0; i < 5; i++) {
        CHECK_CLOSE(lp[i], l[ids[i]] - lse, 1e-5, 1e-6);
        if (i) CHECK(lp[i] <= lp[i - 1]);
    }
    CHECK(mh_logprobs_top(l, N, 0, 5, &chosen, NULL, NULL, &err) == 0);
    CHECK(isinf(chosen) && chosen < 0);

    float small[4] = {1, -INFINITY, NAN, 1000};   /* large values stay finite */
    CHECK(mh_logprobs_top(small, 4, 4, 0, &chosen, ids, lp, &err) == 2);
    CHECK(ids[0] == 3 && ids[1] == 0);
    CHECK_CLOSE(lp[0], 0.0, 1e-6, 0);
    CHECK_CLOSE(chosen, -999.0, 1e-3, 0);

    float dead[2] = {NAN, -INFINITY};
    CHECK(mh_logprobs_top(dead, 2, 1, 0, &chosen, ids, lp, &err) == -1);
    CHECK(err.code == MH_EINVAL && strstr(err.msg, "all logits"));
    CHECK(mh_logprobs_top(l, N, 1, N, &chosen, ids, lp, &err) == -1);
    CHECK(mh_logprobs_top(l, N, 2, 0, &chosen, NULL, lp, &err) == -1);
}

/* ===== stop strings ===== */

typedef struct stream_out { char text[256]; size_t n; bool stopped; int which; } stream_out;

static int feed(const char *const *stops, int n_stops, const char *const *pieces, int n, stream_out *o)
{
    mh_err err = {0};
    mh_stop_matcher *m = mh_stop_new(stops, n_stops, &err);
    if (!m) return -1;
    memset(o, 0, sizeof *o);
    for (int i = 0; i < n; i++) {
        const char *e;
        size_t el;
        bool st;
        if (mh_stop_push(m, pieces[i], strlen(pieces[i]), &e, &el, &st, &err) != MH_OK) { mh_stop_free(m); return -1; }
        memcpy(o->text + o->n, e, el);
        o->n += el;
        o->stopped = st;
    }
    const char *e;
    size_t el;
    mh_stop_flush(m, &e, &el);
    memcpy(o->text + o->n, e, el);
    o->n += el;
    o->which = mh_stop_which(m);
    mh_stop_free(m);
    return 0;
}

#define FEED(stops, pieces, o) feed(stops, (int)(sizeof stops / sizeof *stops), \
    pieces, (int)(sizeof pieces / sizeof *pieces), o)

static void test_stop_split(void)
{
    mh_err err = {0};
    const char *stops[] = {"</s>"};
    mh_stop_matcher *m = mh_stop_new(stops, 1, &err);
    CHECK(m);
    const char *pieces[] = {"Hello", " wor", "ld<", "/s", ">tail", "more"};
    const size_t want_emit[] = {5, 4, 2, 0, 0, 0};
    const bool want_stop[] = {false, false, false, false, true, true};
    for (int i = 0; i < 6; i++) {
        const char *e; size_t el; bool st;
        CHECK(mh_stop_push(m, pieces[i], strlen(pieces[i]), &e, &el, &st, &err) == MH_OK);
        CHECK_MSG(el == want_emit[i] && st == want_stop[i], "piece %d: emit %zu stop %d", i, el, st);
    }
    const char *e; size_t el;
    mh_stop_flush(m, &e, &el);
    CHECK(el == 0 && mh_stop_which(m) == 0);
    mh_stop_reset(m);   /* reusable */
    bool st;
    CHECK(mh_stop_push(m, "ab</s>", 6, &e, &el, &st, &err) == MH_OK && st && el == 2 && !memcmp(e, "ab", 2));
    CHECK(mh_stop_push(NULL, "x", 1, &e, &el, &st, &err) == MH_EINVAL);
    mh_stop_free(m);

    stream_out o;
    const char *false_alarm[] = {"a<", "/x", "<"};
    CHECK(FEED(stops, false_alarm, &o) == 0);
    CHECK(!o.stopped && o.n == 5 && !memcmp(o.text, "a</x<", 5) && o.which == -1);
}

static void test_stop_multi_overlap(void)
{
    stream_out o;
    const char *s1[] = {"abcd", "bc"};   /* "bc" completes first */
    const char *p1[] = {"xab", "c", "d"};
    CHECK(FEED(s1, p1, &o) == 0);
    CHECK(o.stopped && o.which == 1 && o.n == 2 && !memcmp(o.text, "xa", 2));

    const char *s2[] = {"c", "abc"};     /* same end: the longest */
    const char *p2[] = {"xabc"};
    CHECK(FEED(s2, p2, &o) == 0);
    CHECK(o.which == 1 && o.n == 1 && o.text[0] == 'x');

    const char *s3[] = {"aab"};          /* self-overlapping prefix */
    const char *p3[] = {"a", "a", "a", "b"};
    CHECK(FEED(s3, p3, &o) == 0);
    CHECK(o.stopped && o.n == 1 && o.text[0] == 'a');

    const char *s4[] = {"###", "\n\nUser:"};
    const char *p4[] = {"ok", "\n", "\nUse", "d #", "#"};
    CHECK(FEED(s4, p4, &o) == 0);   /* both were false alarms */
    CHECK(!o.stopped && o.n == 11 && !memcmp(o.text, "ok\n\nUsed ##", 11));
}

static void test_stop_utf8(void)
{
    stream_out o;
    const char *none[] = {"\x01"};
    const char *p1[] = {"caf\xc3", "\xa9 ", "\xf0\x9f", "\x98", "\x80!"};   /* café 😀! */
    mh_err err = {0};
    mh_stop_matcher *m = mh_stop_new(none, 1, &err);
    CHECK(m);
    const size_t want[] = {3, 3, 0, 0, 5};   /* never ends inside a character */
    for (int i = 0; i < 5; i++) {
        const char *e; size_t el; bool st;
        CHECK(mh_stop_push(m, p1[i], strlen(p1[i]), &e, &el, &st, &err) == MH_OK);
        CHECK_MSG(el == want[i], "piece %d: emit %zu", i, el);
    }
    mh_stop_free(m);
    CHECK(FEED(none, p1, &o) == 0 && o.n == 11 && !memcmp(o.text, "caf\xc3\xa9 \xf0\x9f\x98\x80!", 11));

    const char *s2[] = {"\xe3\x80\x82"};   /* "。" split byte by byte */
    const char *p2[] = {"\xe6\x96\x87\xe3", "\x80", "\x82\xe5\x90\x8e"};
    CHECK(FEED(s2, p2, &o) == 0);
    CHECK(o.stopped && o.n == 3 && !memcmp(o.text, "\xe6\x96\x87", 3));

    const char *p3[] = {"x\xe3\x80"};      /* cut off at the end: flush gives it all */
    CHECK(FEED(s2, p3, &o) == 0 && !o.stopped && o.n == 3);

    const char *bad[] = {"ok", ""};
    CHECK(mh_stop_new(bad, 2, &err) == NULL && err.code == MH_EINVAL && strstr(err.msg, "empty"));
    CHECK(mh_stop_new(NULL, 1, &err) == NULL);
    m = mh_stop_new(NULL, 0, &err);   /* no stops: only UTF-8 holding */
    CHECK(m);
    static char big[10000];
    memset(big, 'z', sizeof big);
    const char *e; size_t el; bool st;
    CHECK(mh_stop_push(m, big, sizeof big, &e, &el, &st, &err) == MH_OK && el == sizeof big && !st);
    mh_stop_flush(m, &e, &el);
    CHECK(el == 0);
    mh_stop_free(m);
}


/* mh_sampler_settings: the parameters given come back, the bias as the
 * sampler's own copy, and the seed actually used (a drawn one too). */
static void test_settings_reported(void)
{
    mh_sampler_params p;
    mh_sampler_params_init(&p);
    p.temperature = 0.7f;
    p.top_k = 12;
    p.top_p = 0.8f;
    p.min_p = 0.1f;
    p.repeat_penalty = 1.2f;
    p.repeat_last_n = 32;
    p.presence_penalty = 0.25f;
    p.frequency_penalty = -0.5f;
    p.seed = 99;
    mh_logit_bias b[2] = { { 3, 1.5f }, { 4, -INFINITY } };
    p.bias = b;
    p.n_bias = 2;
    mh_sampler *s = mh_sampler_new(&p, 16, NULL);
    CHECK(s);
    mh_sampler_params q;
    mh_sampler_settings(s, &q);
    CHECK(q.temperature == 0.7f && q.top_k == 12 && q.top_p == 0.8f && q.min_p == 0.1f);
    CHECK(q.repeat_penalty == 1.2f && q.repeat_last_n == 32);
    CHECK(q.presence_penalty == 0.25f && q.frequency_penalty == -0.5f && q.seed == 99);
    CHECK(q.n_bias == 2 && q.bias != b && q.bias[0].id == 3 && q.bias[1].bias == -INFINITY);
    mh_sampler_free(s);
    p.seed = MH_SAMPLER_SEED_RANDOM;
    s = mh_sampler_new(&p, 16, NULL);
    mh_sampler_settings(s, &q);
    CHECK(q.seed != MH_SAMPLER_SEED_RANDOM && q.seed == mh_sampler_seed(s));
    mh_sampler_free(s);
}

int main(void)
{
    (void)test_skipped;   /* no case here needs shared data */
    TEST_RUN(test_params_errors);
    TEST_RUN(test_greedy_ties);
    TEST_RUN(test_all_inf);
    TEST_RUN(test_top_k1_is_greedy);
    TEST_RUN(test_top_n_selection);
    TEST_RUN(test_top_k_top_p_min_p_sets);
    TEST_RUN(test_top_p_large_vocab_exact);
    TEST_RUN(test_draw_statistics);
    TEST_RUN(test_seeds);
    TEST_RUN(test_penalties);
    TEST_RUN(test_window_long_history);
    TEST_RUN(test_logit_bias);
    TEST_RUN(test_logprobs);
    TEST_RUN(test_stop_split);
    TEST_RUN(test_stop_multi_overlap);
    TEST_RUN(test_stop_utf8);
    TEST_RUN(test_settings_reported);
    return TEST_REPORT();
}
