/* logprobs.c: top-n selection over a logits vector and log-softmax logprobs.
 * Layer: engine/sample (pure C11, libm). Both rank NaN as -inf and break
 * ties toward the lower id, so results never depend on scan order. */
#include <math.h>
#include "mh/sample.h"

static inline float rank_val(const float *logits, int32_t id)
{
    float v = logits[id];
    return isnan(v) ? -INFINITY : v;
}

/* a ranks below b: smaller logit, or same logit and higher id */
static inline bool worse(const float *logits, int32_t a, int32_t b)
{
    float va = rank_val(logits, a), vb = rank_val(logits, b);
    return va < vb || (va == vb && a > b);
}

/* Min-heap on rank: the worst kept id sits at the root. */
static void sift_down(const float *logits, int32_t *h, int64_t n, int64_t i)
{
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && worse(logits, h[l], h[w])) w = l;
        if (r < n && worse(logits, h[r], h[w])) w = r;
        if (w == i) return;
        int32_t t = h[i]; h[i] = h[w]; h[w] = t;
        i = w;
    }
}

int64_t mh_sample_top_n(const float *logits, int64_t n, int64_t k, int32_t *ids)
{
    if (!logits || !ids || n <= 0 || k <= 0) return 0;
    if (k > n) k = n;
    for (int64_t i = 0; i < k; i++) ids[i] = (int32_t)i;
    for (int64_t i = k / 2 - 1; i >= 0; i--) sift_down(logits, ids, k, i);
    /* why a heap: for k << n almost every id loses one comparison with the
     * root, so this is one pass over the vocabulary plus O(k log k) */
    for (int64_t i = k; i < n; i++) {
        if (worse(logits, ids[0], (int32_t)i)) {
            ids[0] = (int32_t)i;
            sift_down(logits, ids, k, 0);
        }
    }
    /* heap sort: moving the worst root to the back leaves best first */
    for (int64_t end = k - 1; end > 0; end--) {
        int32_t t = ids[0]; ids[0] = ids[end]; ids[end] = t;
        sift_down(logits, ids, end, 0);
    }
    return k;
}

int mh_logprobs_top(const float *logits, int64_t n_vocab, int n_top, int32_t chosen,
                    float *chosen_logprob, int32_t *top_ids, float *top_logprobs,
                    mh_err *err)
{
    if (!logits || n_vocab <= 0) {
        mh_err_set(err, MH_EINVAL, "logprobs: need logits and n_vocab > 0 (got %lld)",
                   (long long)n_vocab);
        return -1;
    }
    if (n_top < 0 || (n_top > 0 && (!top_ids || !top_logprobs))) {
        mh_err_set(err, MH_EINVAL, "logprobs: n_top %d needs top_ids and top_logprobs", n_top);
        return -1;
    }
    if (chosen >= n_vocab) {
        mh_err_set(err, MH_EINVAL, "logprobs: chosen id %d outside vocabulary of %lld",
                   (int)chosen, (long long)n_vocab);
        return -1;
    }
    double m = -INFINITY;
    for (int64_t i = 0; i < n_vocab; i++) {
        double v = rank_val(logits, (int32_t)i);
        if (v > m) m = v;
    }
    if (m == -INFINITY || m == INFINITY) {
        mh_err_set(err, MH_EINVAL, "logprobs: %s",
                   m == INFINITY ? "a logit is +inf" : "all logits are -inf/NaN");
        return -1;
    }
    double sum = 0.0;   /* in id order, so the result is reproducible */
    for (int64_t i = 0; i < n_vocab; i++) sum += exp(rank_val(logits, (int32_t)i) - m);
    double lse = m + log(sum);

    if (chosen >= 0 && chosen_logprob)
        *chosen_logprob = (float)(rank_val(logits, chosen) - lse);
    int64_t got = mh_sample_top_n(logits, n_vocab, n_top, top_ids);
    int w = 0;
    for (int64_t i = 0; i < got; i++) {
        float v = rank_val(logits, top_ids[i]);
        if (v == -INFINITY) break;   /* sorted: the rest are -inf too */
        top_ids[w] = top_ids[i];
        top_logprobs[w++] = (float)(v - lse);
    }
    return w;
}
