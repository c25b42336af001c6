/* sched_internal.h: the scheduler's private structures, shared by sched.c
 * (lifecycle, submit, cancel, stats: any thread) and sched_step.c (the
 * compute thread). Layer: engine/sched (pure C11 + pthreads).
 * Locking: s->mu guards the queue, the live list, every req's cancelled
 * flag, slot->r and the stats; the compute thread alone touches slot
 * contents (cache, hist, logits) and a running request's other fields. */
#ifndef MH_SCHED_INTERNAL_H
#define MH_SCHED_INTERNAL_H

#include <pthread.h>
#include "mh/sched.h"

typedef struct sched_req {
    int64_t id;
    int32_t *tokens;              /* (n_tokens) the prompt, owned */
    int64_t n_tokens, max_tokens;
    int32_t *eog;                 /* (n_eog) owned */
    int n_eog, n_top;
    bool logprobs;
    mh_sampler *sampler;
    mh_sched_constraint con;
    mh_chan *out;                 /* retained until the final event */
    int cancelled;                /* s->mu */
    int64_t cached, n_gen;
    int64_t n_counted;            /* of n_gen, in st.generated_tokens (s->mu) */
    double t_submit, t_admit, t_prefilled, t_first;
    struct sched_req *prev, *next;    /* live list (s->mu) */
    struct sched_req *qnext;          /* waiting queue (s->mu) */
} sched_req;

typedef struct sched_slot {
    mh_kv_cache *cache;
    int32_t *hist;                /* (n_ctx) ids held in the cache, 0..n_hist-1 */
    int64_t n_hist;
    sched_req *r;                 /* NULL: free (written under s->mu) */
    int64_t fed;                  /* prompt tokens already in the cache */
    int32_t last;                 /* sampled and not yet fed */
    bool decoding;
    double last_used;             /* ms: ties between free slots go to the oldest */
    float *logits;                /* (n_vocab) */
} sched_slot;

struct mh_sched {
    mh_model *m;
    mh_sched_params p;
    int64_t n_vocab;
    sched_slot *slots;            /* (p.n_parallel) */
    mh_batch_seq *seqs;           /* (p.n_parallel) one step's batch */
    int *seq_slot;                /* (p.n_parallel) slot of each batch row */
    pthread_t th;
    bool th_started;
    pthread_mutex_t mu;
    pthread_mutex_t model_mu;     /* held by the compute thread for each step; mh_sched_embed */
    pthread_cond_t cv;
    bool stop;
    sched_req *q_head, *q_tail;   /* waiting, FIFO */
    sched_req *live;              /* waiting + running, for cancel */
    int64_t next_id;
    mh_sched_stats st;
};

double mh_sched_now_ms(void);
/* The compute thread's body (sched_step.c). */
void *mh_sched_main(void *arg);
/* Ends r with a final event and frees it; slot is its slot or NULL when it
 * never got one. Takes s->mu itself (call without holding it). */
void mh_sched_finish(mh_sched *s, sched_slot *slot, sched_req *r, int reason, const char *msg);

#endif
