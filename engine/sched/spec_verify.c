/* spec_verify.c: speculative decoding's verification of a sampled request:
 * the accept / resample step of speculative sampling (so the tokens keep
 * the model's distribution whatever the draft proposes) and the request's
 * uniform stream for it. Greedy requests need none of this: the loop's own
 * pick is compared with the draft. Layer: engine/sched (pure C11). */
#include <stdlib.h>
#include <string.h>
#include "sched_internal.h"

int32_t mh_spec_accept(const float *p, const float *q, int64_t n, int32_t d, double u1, double u2,
                       bool *accepted)
{
    bool in = d >= 0 && d < n;
    double qd = !in ? 0.0 : q ? (double)q[d] : 1.0;
    *accepted = in && qd > 0 && u1 * qd < (double)p[d];
    if (*accepted) return d;
    /* rejected: draw from norm(max(0, p - q)); q = 1 at d when q is NULL */
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double r = (double)p[i] - (q ? (double)q[i] : (double)(i == d));
        if (r > 0) total += r;
    }
    bool plain = total <= 0;                  /* p == q up to rounding: p itself */
    if (plain)
        for (int64_t i = 0; i < n; i++) total += p[i] > 0 ? p[i] : 0;
    double x = u2 * total, cum = 0.0;
    int32_t last = -1;
    for (int64_t i = 0; i < n; i++) {
        double r = plain ? (double)p[i] : (double)p[i] - (q ? (double)q[i] : (double)(i == d));
        if (r <= 0) continue;
        cum += r;
        last = (int32_t)i;
        if (cum > x) return last;
    }
    return last >= 0 ? last : d;              /* rounding at the very end */
}

double mh_spec_uniform(uint64_t *state)
{
    /* splitmix64: one 64-bit output per call, top 53 bits as the fraction */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

int32_t mh_spec_choose(mh_sched *s, sched_slot *sl, int i, int32_t picked)
{
    sched_req *r = sl->r;
    mh_sampler_params sp;
    mh_sampler_settings(r->sampler, &sp);
    if (sp.temperature == 0) return picked;  /* greedy: the caller compares */
    if (!sl->p && !(sl->p = malloc(sizeof(float) * (size_t)s->n_vocab)))
        return picked;                        /* the model's own draw: still its distribution */
    const int32_t *ids;
    const float *pr;
    int64_t n = mh_sampler_candidates(r->sampler, &ids, &pr);
    memset(sl->p, 0, sizeof(float) * (size_t)s->n_vocab);
    for (int64_t c = 0; c < n; c++) sl->p[ids[c]] = pr[c];
    const float *q = r->dsampler ? sl->q + (size_t)i * (size_t)s->n_vocab : NULL;
    double u1 = mh_spec_uniform(&r->rng), u2 = mh_spec_uniform(&r->rng);
    bool acc;
    return mh_spec_accept(sl->p, q, s->n_vocab, sl->row[i + 1], u1, u2, &acc);
}
