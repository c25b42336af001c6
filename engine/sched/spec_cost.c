/* spec_cost.c: how far a request drafts next step. Lookup follows its
 * runs; a draft model drafts the length with the most tokens per unit of
 * time at the estimated acceptance and the step costs this scheduler
 * measured: the target's check of n rows in draft rounds of the same step
 * (not one row's cost once n passes what a weight read serves; a ratio of
 * two timings a few ms apart, so the machine's slow and fast spells, which
 * move both, cancel). docs/speculative.md.
 * Layer: engine/sched (pure C11). */
#include "sched_internal.h"

int mh_spec_best_k(double alpha, const double *cost, int n_max)
{
    int best = 1;
    double e = 1, ak = 1, best_rate = 0;
    for (int k = 1; k <= n_max; k++) {
        ak *= alpha;
        e += ak;
        double rate = cost[k] > 0 ? e / cost[k] : 0;
        if (rate > best_rate) { best_rate = rate; best = k; }
    }
    return best;
}

/* Weight of a new timing in its running average: a few steps settle it,
 * one slow step (a page fault, another process) does not own it. */
#define SPEC_COST_NEW 0.2

static void note(double *avg, double secs)
{
    *avg = *avg > 0 ? (1 - SPEC_COST_NEW) * *avg + SPEC_COST_NEW * secs : secs;
}

void mh_spec_note_check(mh_spec_costs *sc, int rows, double rounds)
{
    if (rows >= 2 && rows < MH_SCHED_COST_ROWS && rounds > 0) note(&sc->check_rounds[rows], rounds);
}

void mh_spec_note_draft(mh_spec_costs *sc, double secs)
{
    if (secs > 0) note(&sc->draft_s, secs);
}

/* The check of n rows in draft rounds: measured, else between the
 * nearest measured row counts (straight line), else the nearest one's; 0
 * when none is. Taking the largest measured for more rows is the hopeful
 * guess: the length the model then picks gets tried and measured. */
static double check_rounds(const mh_spec_costs *sc, int n)
{
    int lo = n, hi = n;
    const double *c = sc->check_rounds;
    while (lo >= 2 && c[lo] <= 0) lo--;
    while (hi < MH_SCHED_COST_ROWS && c[hi] <= 0) hi++;
    if (lo >= 2 && hi < MH_SCHED_COST_ROWS && lo < hi) return c[lo] + (c[hi] - c[lo]) * (n - lo) / (hi - lo);
    if (lo >= 2) return c[lo];
    return hi < MH_SCHED_COST_ROWS ? c[hi] : 0;
}

/* cost[k], k = 1..n_max: a step with k drafts (k draft rounds and a check
 * of k + 1 rows) in draft rounds once checks are measured, else in
 * target-token units from the weight bytes (c a draft token, the check as
 * one row). */
static void step_costs(const mh_spec_costs *sc, const sched_req *r, double *cost)
{
    bool measured = sc && check_rounds(sc, 2) > 0;
    for (int k = 1; k <= r->spec_n_max; k++)
        cost[k] = measured ? k + check_rounds(sc, k + 1) : 1 + r->spec_c * k;
}

/* Decay of the acceptance counts per step: the estimate follows the last
 * ~10 steps, so a passage the draft gets right (or wrong) moves it soon;
 * the prior (one try, half accepted) keeps the first steps from 0 or 1. */
#define SPEC_DECAY 0.9
#define SPEC_PRIOR_ALPHA 0.5

void mh_spec_first_k(const mh_spec_costs *sc, sched_req *r)
{
    r->spec_k = r->spec_n_max;
    if (r->spec_mode != MH_SPEC_DRAFT || r->spec_n_max < 1) return;
    double cost[MH_SCHED_MAX_DRAFT + 1];
    step_costs(sc, r, cost);
    r->spec_k = mh_spec_best_k(SPEC_PRIOR_ALPHA, cost, r->spec_n_max);
}

void mh_spec_next_k(const mh_spec_costs *sc, sched_req *r, int nd, int acc)
{
    int k;
    if (r->spec_mode == MH_SPEC_DRAFT) {
        /* each verified draft is a Bernoulli try (the one that missed ends
         * the step's tries); the best length at the estimate, one further
         * after a draft accepted whole (a run may go on; the rows it adds
         * get measured) */
        double cost[MH_SCHED_MAX_DRAFT + 1];
        r->spec_hits = SPEC_DECAY * r->spec_hits + acc;
        r->spec_tries = SPEC_DECAY * r->spec_tries + acc + (acc < nd);
        step_costs(sc, r, cost);
        k = mh_spec_best_k((r->spec_hits + SPEC_PRIOR_ALPHA) / (r->spec_tries + 1), cost, r->spec_n_max)
            + (acc == nd);
    } else {
        /* lookup costs no forward: one more after a fully accepted draft,
         * one past the accepted part after a miss (acceptance comes in
         * runs on a copied passage) */
        k = acc == nd ? r->spec_k + 1 : acc + 1;
    }
    r->spec_k = k < r->spec_n_max ? k : r->spec_n_max;
}
