/* sched_internal.h: the scheduler's private structures, shared by sched.c
 * (lifecycle, submit, cancel, stats: any thread), sched_step.c (the
 * compute thread, or the caller's in synchronous use) and sched_text.c (a
 * request's text: detokenizing, UTF-8, stop strings). Layer: engine/sched (pure C11 + pthreads).
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
    mh_sample_constraint con;
    mh_logits_hook hook;
    int n_stops;
    mh_stop_matcher *stop;        /* NULL: no text stage (no tokenizer) */
    mh_tok_stream dec;            /* used when stop is set */
    char *text;                   /* (text_cap) the current event's text */
    size_t text_n, text_cap;
    mh_chan *out;                 /* retained until the final event */
    int cancelled;                /* s->mu */
    int64_t cached, n_gen;
    int64_t n_counted;            /* of n_gen, in st.generated_tokens (s->mu) */
    double t_submit, t_admit, t_prefilled, t_first;
    /* speculation (spec_draft.c): mode MH_SPEC_OFF/DRAFT/NGRAM once
     * resolved at submit; dsampler draws sampled drafts (q), rng the
     * accept/resample uniforms */
    int spec_mode, spec_n_max, spec_ngram;
    int spec_k;                   /* drafts to try next step (adapts, <= spec_n_max) */
    double spec_c;                /* a draft token's cost / the model's (weight bytes); 0: lookup */
    double spec_hits, spec_tries; /* decayed counts of verified drafts: accepted / verified */
    mh_sampler *dsampler;
    uint64_t rng;
    int64_t drafted, accepted, target_steps;
    mh_lora_use loras[MH_MAX_SEQ_LORAS];   /* retained, released with the request */
    int n_loras;
    /* logits processed off the loop (docs/processors.md): park retained;
     * park_state (s->mu) PARK_NONE, _WAIT (the logits are out), _OK or
     * _FAIL (resumed, park_msg the error) */
    mh_tensor *park;
    int park_state;
    char park_msg[200];
    struct sched_req *prev, *next;    /* live list (s->mu) */
    struct sched_req *qnext;          /* waiting queue (s->mu) */
} sched_req;

/* ===== prefix store (sched_store.c; the compute thread alone, or the
 * thread freeing the scheduler once the compute thread is joined) =====
 * Snapshots of finished sequences: their ids and KV rows (mh_kv_cache_save),
 * most recently used first, evicted from the tail past the byte budget. */
#define SCHED_STORE_MIN 16        /* fewest reusable tokens worth a snapshot */

typedef struct sched_entry {
    int32_t *tokens;              /* (n) ids whose KV the snapshot holds */
    int64_t n;
    void *kv;                     /* mh_kv_cache_save of n positions; NULL: on disk only */
    size_t bytes;                 /* of kv (the budget counts only these) */
    char *path;                   /* its state file under the cache dir, or NULL */
    size_t file_bytes;            /* of path (the disk budget counts these) */
    struct sched_entry *prev, *next;  /* LRU list, head = most recent */
} sched_entry;

typedef struct sched_store {
    sched_entry *head, *tail;
    size_t bytes, budget;
    int64_t n, evictions;
    /* the disk tier (sched_store.c, --cache-dir): entries are also written
     * as state files under dir, which outlive the process; past the memory
     * budget an entry with a file keeps only the file */
    char *dir;                    /* <cache dir>/<model id>, or NULL */
    const mh_model *m;
    uint8_t id[32];               /* the model's identity (mh/kv_state.h) */
    size_t disk_bytes, disk_budget;
    int64_t disk_n, disk_hits;
} sched_store;

/* The entry sharing the longest prefix with tokens (n), or NULL; *common
 * gets that length. */
sched_entry *mh_sched_store_match(const sched_store *st, const int32_t *tokens, int64_t n, int64_t *common);
/* Marks e most recently used. */
void mh_sched_store_touch(sched_store *st, sched_entry *e);
/* Keeps positions 0..n-1 of c (ids tokens) unless an entry already covers
 * them; drops entries the new one extends, evicts LRU ones past the
 * budget. A snapshot larger than the budget, or out of memory, is skipped. */
void mh_sched_store_put(sched_store *st, const int32_t *tokens, int64_t n, const mh_kv_cache *c);
void mh_sched_store_free(sched_store *st);
/* Opens the disk tier under dir/<model id>-<type> (created if needed) for
 * model m's caches of type: indexes the states a previous run left there
 * (ids only; rows are read on use). A NULL or empty dir: no disk tier. */
int mh_sched_store_open(sched_store *st, const mh_model *m, mh_dtype type, const char *dir, size_t disk_budget,
                        mh_err *err);
/* Loads the first n positions of e into c (from memory or its file); a file
 * that fails its checks is dropped with its entry. */
int mh_sched_store_load(sched_store *st, sched_entry *e, mh_kv_cache *c, int64_t n);

enum { PARK_NONE = 0, PARK_WAIT, PARK_OK, PARK_FAIL };

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
    sched_entry *restore;         /* admitted from the store: rows to load */
    int64_t restore_n;            /* of restore's positions, those to load */
    /* speculation (spec_draft.c): the decoding row this step (last, then
     * nd drafts), logits rows allocated (1 + logits_rows - 1 drafts), the
     * draft model's cache and the ids it holds, the draft's q rows */
    int32_t row[1 + MH_SCHED_MAX_DRAFT];
    int nd;
    int64_t logits_rows;
    mh_kv_cache *dcache;
    int32_t *dhist;               /* (n_ctx) */
    int64_t n_dhist;
    float *dlogits;               /* (n_vocab) */
    float *q;                     /* (MH_SCHED_MAX_DRAFT, n_vocab) or NULL */
    float *p;                     /* (n_vocab) scratch for the model's probabilities */
    /* per-request LoRA: the adapters the cache's rows were computed with
     * (a prefix is reused only under the same ones) */
    mh_lora_use lkey[MH_MAX_SEQ_LORAS];
    int n_lkey;
    bool parked;                  /* its logits are out (compute thread only) */
} sched_slot;

struct mh_sched {
    mh_model *m;
    bool sync;                    /* stepped by the caller; one slot over borrowed */
    mh_kv_cache *borrowed;
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
    bool kick;                    /* a resume or cancel to handle (s->mu) */
    bool held;                    /* mh_sched_hold: no step until released (s->mu) */
    int n_parked;                 /* requests in PARK_WAIT (s->mu) */
    sched_req *q_head, *q_tail;   /* waiting, FIFO */
    sched_req *live;              /* waiting + running, for cancel */
    int64_t next_id;
    mh_sched_stats st;
    sched_store store;            /* compute thread only; figures mirrored in st */
    mh_spec_costs costs;          /* spec_cost.c: running averages (compute
                                   * thread; mirrored in st each step) */
    double step_round_s;          /* this step's draft round (0: none timed) */
};

double mh_sched_now_ms(void);
/* The compute thread's body (sched_step.c). */
void *mh_sched_main(void *arg);
/* Ends r with a final event and frees it; slot is its slot or NULL when it
 * never got one. Takes s->mu itself (call without holding it). */
void mh_sched_finish(mh_sched *s, sched_slot *slot, sched_req *r, int reason, const char *msg);

/* ===== speculation (spec_draft.c, spec_verify.c) ===== */
/* Resolves q's mode against the scheduler (submit); MH_EINVAL for a draft
 * model request on a scheduler without one. */
int mh_spec_request_init(const mh_sched *s, sched_req *q, const mh_sched_request *r, mh_err *err);
/* Fills sl->row/nd for every decoding slot (nd 0: a plain step), running
 * the draft model batched over the slots that use it. */
void mh_spec_draft(mh_sched *s);
/* The token at verification row i of sl (0 <= i < sl->nd: draft sl->row[i + 1]
 * is checked) for a sampled request, given the sampler's pick (its candidates
 * give p): accepted draft or the residual draw. */
int32_t mh_spec_choose(mh_sched *s, sched_slot *sl, int i, int32_t picked);
/* After a step that verified nd drafts of r and kept acc of them: the
 * draft length of r's next step (r->spec_k), at the costs in sc (NULL or
 * unmeasured: from the weight bytes). spec_cost.c. */
void mh_spec_next_k(const mh_spec_costs *sc, sched_req *r, int nd, int acc);
/* The draft length of r's first step: what the costs give at the prior
 * acceptance for a draft model, n_max for lookup. */
void mh_spec_first_k(const mh_spec_costs *sc, sched_req *r);
/* Timings for the draft length: a one-sequence check of rows rows in this
 * step's draft rounds, and the seconds of one draft round of a one-slot
 * drafting step. */
void mh_spec_note_check(mh_spec_costs *sc, int rows, double rounds);
void mh_spec_note_draft(mh_spec_costs *sc, double secs);
/* Frees a slot's draft state. */
void mh_spec_slot_free(sched_slot *sl);
/* Uniform in [0, 1) from a request's stream. */
double mh_spec_uniform(uint64_t *state);

/* ===== a request's text (sched_text.c) ===== */
/* Sets up r's text stage when s has a tokenizer (stops need one). */
int mh_sched_text_init(const mh_sched *s, sched_req *q, const mh_sched_request *r, mh_err *err);
/* r->text = the visible text id adds (valid UTF-8, may be empty);
 * *stopped when a stop string completed. */
int mh_sched_text_push(sched_req *q, int32_t id, bool *stopped, mh_err *err);
/* r->text = everything still held back (the end of the generation). */
void mh_sched_text_flush(sched_req *q);
void mh_sched_text_free(sched_req *q);
/* Pushes the event (ev of size bytes, then r->text) to r's channel. */
int mh_sched_push_event(sched_req *q, int tag, void *ev, size_t size, int32_t *n_text);

#endif
