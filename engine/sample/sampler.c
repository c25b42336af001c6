/* sampler.c: the sampling chain (bias, penalties, greedy or top-k / top-p /
 * min-p / temperature / seeded draw) over one sequence's logits.
 * Layer: engine/sample (pure C11, libm). Order and conventions: mh/sample.h
 * and docs/sampling.md. Draws are reproducible: xoshiro256** plus sums in
 * double in a fixed order, so a seed gives the same ids on any machine. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mh/sample.h"

typedef struct cand { float l; int32_t id; } cand;

struct mh_sampler {
    mh_sampler_params p;      /* p.bias points at bias below */
    mh_logit_bias *bias;      /* (n_bias) own copy */
    int64_t n_vocab;
    uint64_t seed, rng[4];
    /* penalty history: allocated only when a penalty is active */
    bool penalize;
    int32_t *count;           /* (n_vocab) occurrences inside the window */
    int32_t *slot;            /* (n_vocab) index of id in seen[] */
    int32_t *seen;            /* (n_seen) ids with count > 0, any order */
    int64_t n_seen;
    int32_t *ring;            /* (ring_cap) window, oldest at ring_head once full */
    int64_t ring_cap, ring_len, ring_head;
    /* candidates of the last sample */
    int32_t *cand_ids;        /* (n_vocab) */
    float *cand_p;            /* (n_vocab) logits, then weights, then probs */
    cand *pairs;              /* (n_vocab) sort scratch, allocated on first use */
    int64_t n_cand;
};

/* ===== random stream ===== */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t *s)
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return r;
}

/* uniform in [0, 1) with 53 random bits */
static double rng_uniform(mh_sampler *s) { return (double)(xoshiro_next(s->rng) >> 11) * 0x1.0p-53; }

static void rng_seed(mh_sampler *s)
{
    uint64_t x = s->seed;   /* splitmix expands one word into a non-zero state */
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

static uint64_t clock_seed(const void *salt)
{
    struct timespec ts = {0, 0};
    timespec_get(&ts, TIME_UTC);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)salt;
    uint64_t v = splitmix64(&x);
    return v == MH_SAMPLER_SEED_RANDOM ? 0 : v;
}

/* ===== parameters ===== */

void mh_sampler_params_init(mh_sampler_params *p)
{
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
}

static int check_params(const mh_sampler_params *p, int64_t n_vocab, mh_err *err)
{
    if (!p) return mh_err_set(err, MH_EINVAL, "sampler: params is NULL");
    if (n_vocab <= 0 || n_vocab > INT32_MAX)
        return mh_err_set(err, MH_EINVAL, "sampler: n_vocab must be in 1..%d, got %lld",
                          INT32_MAX, (long long)n_vocab);
    if (!(p->temperature >= 0 && isfinite(p->temperature)))
        return mh_err_set(err, MH_EINVAL, "sampler: temperature must be >= 0 and finite, got %g",
                          p->temperature);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return mh_err_set(err, MH_EINVAL, "sampler: top_p must be in (0, 1], got %g", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return mh_err_set(err, MH_EINVAL, "sampler: min_p must be in [0, 1], got %g", p->min_p);
    if (!(p->repeat_penalty > 0 && isfinite(p->repeat_penalty)))
        return mh_err_set(err, MH_EINVAL, "sampler: repeat_penalty must be > 0 and finite, got %g",
                          p->repeat_penalty);
    if (p->repeat_last_n < -1)
        return mh_err_set(err, MH_EINVAL, "sampler: repeat_last_n must be >= -1, got %d",
                          (int)p->repeat_last_n);
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
        return mh_err_set(err, MH_EINVAL, "sampler: presence_penalty and frequency_penalty must be finite");
    if (p->n_bias < 0 || (p->n_bias > 0 && !p->bias))
        return mh_err_set(err, MH_EINVAL, "sampler: n_bias %d needs a bias array", (int)p->n_bias);
    for (int32_t i = 0; i < p->n_bias; i++) {
        const mh_logit_bias *b = &p->bias[i];
        if (b->id < 0 || b->id >= n_vocab)
            return mh_err_set(err, MH_EINVAL, "sampler: logit_bias id %d outside vocabulary of %lld",
                              (int)b->id, (long long)n_vocab);
        if (isnan(b->bias) || b->bias == INFINITY)
            return mh_err_set(err, MH_EINVAL, "sampler: logit_bias for id %d must be finite or -inf",
                              (int)b->id);
    }
    return MH_OK;
}

/* ===== lifetime ===== */

mh_sampler *mh_sampler_new(const mh_sampler_params *p, int64_t n_vocab, mh_err *err)
{
    if (check_params(p, n_vocab, err) != MH_OK) return NULL;
    mh_sampler *s = calloc(1, sizeof *s);
    if (!s) { mh_err_set(err, MH_ENOMEM, "sampler: out of memory"); return NULL; }
    s->p = *p;
    s->n_vocab = n_vocab;
    s->penalize = p->repeat_last_n != 0 && (p->repeat_penalty != 1.0f ||
                  p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f);
    size_t n = (size_t)n_vocab;
    bool ok = true;
    if (p->n_bias > 0) {
        s->bias = malloc((size_t)p->n_bias * sizeof *s->bias);
        ok = ok && s->bias;
        if (s->bias) memcpy(s->bias, p->bias, (size_t)p->n_bias * sizeof *s->bias);
    }
    s->p.bias = s->bias;
    if (s->penalize) {
        s->count = calloc(n, sizeof *s->count);
        s->slot = malloc(n * sizeof *s->slot);
        s->seen = malloc(n * sizeof *s->seen);
        ok = ok && s->count && s->slot && s->seen;
    }
    s->cand_ids = malloc(n * sizeof *s->cand_ids);
    s->cand_p = malloc(n * sizeof *s->cand_p);
    if (!ok || !s->cand_ids || !s->cand_p) {
        mh_sampler_free(s);
        mh_err_set(err, MH_ENOMEM, "sampler: out of memory for a vocabulary of %lld", (long long)n_vocab);
        return NULL;
    }
    s->seed = p->seed == MH_SAMPLER_SEED_RANDOM ? clock_seed(s) : p->seed;
    rng_seed(s);
    return s;
}

void mh_sampler_free(mh_sampler *s)
{
    if (!s) return;
    free(s->bias); free(s->count); free(s->slot); free(s->seen); free(s->ring);
    free(s->cand_ids); free(s->cand_p); free(s->pairs);
    free(s);
}

void mh_sampler_reset(mh_sampler *s)
{
    if (!s) return;
    for (int64_t i = 0; i < s->n_seen; i++) s->count[s->seen[i]] = 0;
    s->n_seen = s->ring_len = s->ring_head = s->n_cand = 0;
    rng_seed(s);
}

uint64_t mh_sampler_seed(const mh_sampler *s) { return s ? s->seed : 0; }

void mh_sampler_settings(const mh_sampler *s, mh_sampler_params *out)
{
    if (!s || !out) return;
    *out = s->p;                /* p.bias already points at the own copy */
    out->seed = s->seed;
}

int64_t mh_sampler_candidates(const mh_sampler *s, const int32_t **ids, const float **probs)
{
    if (!s) return 0;
    if (ids) *ids = s->cand_ids;
    if (probs) *probs = s->cand_p;
    return s->n_cand;
}

/* ===== penalty history ===== */

static void hist_add(mh_sampler *s, int32_t id)
{
    if (s->count[id]++ == 0) { s->slot[id] = (int32_t)s->n_seen; s->seen[s->n_seen++] = id; }
}

static void hist_remove(mh_sampler *s, int32_t id)
{
    if (--s->count[id] == 0) {   /* swap the last seen id into the hole */
        int32_t j = s->slot[id], last = s->seen[--s->n_seen];
        s->seen[j] = last;
        s->slot[last] = j;
    }
}

int mh_sampler_accept(mh_sampler *s, int32_t id, mh_err *err)
{
    if (!s) return mh_err_set(err, MH_EINVAL, "sampler.accept: sampler is NULL");
    if (id < 0 || id >= s->n_vocab)
        return mh_err_set(err, MH_EINVAL, "sampler.accept: id %d outside vocabulary of %lld",
                          (int)id, (long long)s->n_vocab);
    if (!s->penalize) return MH_OK;
    int64_t last_n = s->p.repeat_last_n;
    if (last_n < 0) { hist_add(s, id); return MH_OK; }   /* unbounded: counts only */
    if (s->ring_len < last_n) {
        if (s->ring_len == s->ring_cap) {   /* grow toward last_n as tokens come */
            int64_t cap = s->ring_cap ? s->ring_cap * 2 : 256;
            if (cap > last_n) cap = last_n;
            int32_t *r = realloc(s->ring, (size_t)cap * sizeof *r);
            if (!r) return mh_err_set(err, MH_ENOMEM, "sampler.accept: out of memory");
            s->ring = r;
            s->ring_cap = cap;
        }
        s->ring[s->ring_len++] = id;
    } else {
        hist_remove(s, s->ring[s->ring_head]);
        s->ring[s->ring_head] = id;
        s->ring_head = (s->ring_head + 1) % last_n;
    }
    hist_add(s, id);
    return MH_OK;
}

/* ===== chain steps 1 and 2 ===== */

static void apply_bias_penalties(const mh_sampler *s, float *logits)
{
    for (int32_t i = 0; i < s->p.n_bias; i++) logits[s->bias[i].id] += s->bias[i].bias;
    if (!s->penalize) return;
    float rp = s->p.repeat_penalty, pres = s->p.presence_penalty, freq = s->p.frequency_penalty;
    for (int64_t j = 0; j < s->n_seen; j++) {
        int32_t id = s->seen[j];
        float l = logits[id];
        if (rp != 1.0f) l = l > 0 ? l / rp : l * rp;   /* always toward "less likely" */
        logits[id] = l - (freq * (float)s->count[id] + pres);
    }
}

/* NaN -> -inf, +inf -> FLT_MAX (so l - max stays finite); returns the argmax
 * (ties: lowest id) or -1 when nothing is finite. */
static int32_t sanitize_argmax(float *logits, int64_t n)
{
    int32_t best = -1;
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        float l = logits[i];
        if (isnan(l)) l = logits[i] = -INFINITY;
        else if (l == INFINITY) l = logits[i] = FLT_MAX;
        if (l > m) { m = l; best = (int32_t)i; }
    }
    return best;
}

/* ===== chain step 3: truncation and draw ===== */

enum { NB = 64 };   /* nucleus pre-filter buckets, 0.5 nats wide below the max */

static inline int bucket_of(double below_max)
{
    double b = below_max * 2.0;
    return b >= NB - 1 ? NB - 1 : (int)b;
}

/* Largest bucket the nucleus can reach: the mass of buckets 0..b is the
 * mass of a prefix of the sorted order, so once it covers top_p the nucleus
 * lies inside; one more bucket absorbs summation-order rounding. Also
 * returns the total mass *z (relative to exp(max)). */
static int nucleus_buckets(const float *logits, int64_t n, float m, double top_p, double *z)
{
    double mass[NB] = {0}, total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)m - logits[i], e = exp(-d);
        mass[bucket_of(d)] += e;
        total += e;
    }
    *z = total;
    double cum = 0.0;
    for (int b = 0; b < NB; b++) {
        cum += mass[b];
        if (cum >= top_p * total) return b + 1 >= NB - 1 ? NB - 1 : b + 1;
    }
    return NB - 1;
}

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Candidates without top-k: finite logits inside the nucleus pre-filter and
 * the min-p bound; sorted best first only when top-p needs the order. */
static int gather(mh_sampler *s, const float *logits, float m, double *z, mh_err *err)
{
    double top_p = s->p.top_p, lmin = s->p.min_p > 0 ? log((double)s->p.min_p) : -INFINITY;
    int bmax = top_p < 1 ? nucleus_buckets(logits, s->n_vocab, m, top_p, z) : NB - 1;
    int64_t c = 0;
    for (int64_t i = 0; i < s->n_vocab; i++) {
        double d = (double)logits[i] - m;
        if (logits[i] == -INFINITY || d < lmin || bucket_of(-d) > bmax) continue;
        s->cand_ids[c] = (int32_t)i;
        s->cand_p[c++] = logits[i];
    }
    s->n_cand = c;
    if (top_p >= 1) return MH_OK;
    if (!s->pairs && !(s->pairs = malloc((size_t)s->n_vocab * sizeof *s->pairs)))
        return mh_err_set(err, MH_ENOMEM, "sampler: out of memory");
    for (int64_t i = 0; i < c; i++) s->pairs[i] = (cand){s->cand_p[i], s->cand_ids[i]};
    qsort(s->pairs, (size_t)c, sizeof *s->pairs, cmp_cand);
    for (int64_t i = 0; i < c; i++) { s->cand_ids[i] = s->pairs[i].id; s->cand_p[i] = s->pairs[i].l; }
    return MH_OK;
}

static void top_k(mh_sampler *s, const float *logits, float m, double *z)
{
    int64_t c = mh_sample_top_n(logits, s->n_vocab, s->p.top_k, s->cand_ids);
    *z = 0.0;
    for (int64_t i = 0; i < c; i++) {
        s->cand_p[i] = logits[s->cand_ids[i]];
        *z += exp((double)s->cand_p[i] - m);
    }
    while (c > 1 && s->cand_p[c - 1] == -INFINITY) c--;   /* sorted: -inf trail */
    s->n_cand = c;
}

/* Top-p on the sorted candidates: the shortest prefix with mass >= top_p * z. */
static void cut_top_p(mh_sampler *s, float m, double z)
{
    double target = (double)s->p.top_p * z, cum = 0.0;
    for (int64_t i = 0; i < s->n_cand; i++) {
        cum += exp((double)s->cand_p[i] - m);
        if (cum >= target) { s->n_cand = i + 1; return; }
    }
}

static void cut_min_p(mh_sampler *s, float m)
{
    if (s->p.min_p <= 0) return;
    double lmin = log((double)s->p.min_p);
    int64_t w = 0;
    for (int64_t i = 0; i < s->n_cand; i++) {
        if ((double)s->cand_p[i] - m < lmin) continue;
        s->cand_ids[w] = s->cand_ids[i];
        s->cand_p[w++] = s->cand_p[i];
    }
    s->n_cand = w;   /* the max itself always passes, so w >= 1 */
}

/* Temperature, then one draw: weights are rounded to float first so the
 * cumulative walk in double repeats exactly. */
static int32_t draw(mh_sampler *s, float m)
{
    double inv_t = 1.0 / s->p.temperature, total = 0.0;
    float *w = s->cand_p;
    for (int64_t i = 0; i < s->n_cand; i++) {
        w[i] = (float)exp(((double)w[i] - m) * inv_t);
        total += w[i];
    }
    double u = rng_uniform(s) * total, cum = 0.0;
    int64_t pick = -1, last_pos = 0;
    for (int64_t i = 0; i < s->n_cand; i++) {
        cum += w[i];
        if (pick < 0 && cum > u) pick = i;
        if (w[i] > 0) last_pos = i;
        w[i] = (float)(w[i] / total);
    }
    /* u < total, so only rounding in the walk can leave pick unset */
    return s->cand_ids[pick < 0 ? last_pos : pick];
}

int32_t mh_sampler_sample(mh_sampler *s, float *logits, mh_err *err)
{
    if (!s || !logits) { mh_err_set(err, MH_EINVAL, "sampler.sample: %s is NULL", s ? "logits" : "sampler"); return -1; }
    apply_bias_penalties(s, logits);
    int32_t best = sanitize_argmax(logits, s->n_vocab);
    if (best < 0) { mh_err_set(err, MH_EINVAL, "sampler.sample: all logits are -inf/NaN"); return -1; }
    if (s->p.temperature == 0) {
        s->cand_ids[0] = best; s->cand_p[0] = 1.0f; s->n_cand = 1;
        return best;
    }
    float m = logits[best];
    double z = 0.0;
    if (s->p.top_k > 0 && s->p.top_k < s->n_vocab) top_k(s, logits, m, &z);
    else if (gather(s, logits, m, &z, err) != MH_OK) return -1;
    if (s->p.top_p < 1) cut_top_p(s, m, z);   /* both paths sorted when top_p < 1 */
    cut_min_p(s, m);
    return draw(s, m);
}
