/* sched.h: the request scheduler: one compute thread owns a model and the KV
 * caches of n_parallel slots and runs every active sequence in one batched
 * forward per step (continuous batching), prefilling prompts in chunks.
 * It is the one generation loop: the server runs it on its compute thread,
 * model:generate runs a synchronous one-slot scheduler on the caller's thread.
 * Layer: engine/sched (pure C11 + pthreads; mh/model.h, mh/sample.h,
 * mh/tokenizer.h, mh/chan.h channels for the results). See docs/sched.md. */
#ifndef MH_SCHED_H
#define MH_SCHED_H

#include <stdbool.h>
#include <stdint.h>
#include "mh/err.h"
#include "mh/dtype.h"
#include "mh/model.h"
#include "mh/sample.h"
#include "mh/tokenizer.h"
#include "mh/chan.h"
#include "mh/tensor.h"

#define MH_SCHED_MAX_TOP 20       /* most top logprobs per token */
#define MH_SCHED_MAX_PARALLEL 256
#define MH_SCHED_MAX_STOPS 64     /* most stop strings per request */
#define MH_SCHED_MAX_TOKENS 256   /* max_tokens unless asked (clipped to the context) */
#define MH_SCHED_MAX_DRAFT 32     /* most drafted tokens per speculative step */
#define MH_SCHED_DRAFT_MAX 8      /* drafted tokens per step unless asked */
#define MH_SCHED_NGRAM 3          /* longest n-gram prompt lookup matches unless asked */

typedef struct mh_sched mh_sched;

/* What speculative steps cost on this machine (0: not measured): one
 * draft round in seconds, and the model's forward over one sequence of n
 * rows (2 <= n < MH_SCHED_COST_ROWS, the check of n - 1 drafts) in draft
 * rounds of the same step. A scheduler measures them as it runs and picks
 * a draft model's draft length by the checks (docs/speculative.md, "Draft
 * length"); one started with a previous one's (its stats) starts warm. */
#define MH_SCHED_COST_ROWS (MH_SCHED_MAX_DRAFT + 2)
typedef struct mh_spec_costs {
    double draft_s;
    double check_rounds[MH_SCHED_COST_ROWS];
} mh_spec_costs;

typedef struct mh_sched_params {
    int n_parallel;               /* slots: sequences decoded together (1..256) */
    int64_t n_ctx;                /* positions per slot (prompt + generated) */
    mh_dtype kv_type;             /* MH_DTYPE_F16 (default), _Q8_0 or _F32 */
    int64_t prefill_chunk;        /* most prompt tokens fed per step, all slots */
    bool prefix_cache;            /* reuse a slot's cached prefix */
    size_t mem_limit;             /* bytes the KV caches may take; 0: no limit */
    size_t cache_bytes;           /* prefix store: finished sequences' KV kept for
                                   * reuse (LRU) up to this many bytes; 0: none */
    const char *cache_dir;        /* prefix store on disk too (copied): each entry
                                   * is also a state file under cache_dir/<model id>,
                                   * found again by the next scheduler; NULL: none */
    size_t cache_dir_bytes;       /* disk budget of cache_dir (oldest files go) */
    const mh_tokenizer *tok;      /* borrowed, outlives the scheduler; when set,
                                   * events carry text and requests may have
                                   * stop strings; NULL: ids only */
    /* speculative decoding (docs/speculative.md): a draft model (borrowed,
     * same vocabulary; nothing else may run it either) proposes up to
     * draft_max tokens per step that the model verifies in one batched
     * forward; ngram > 0 instead drafts by prompt lookup (no model) for
     * requests that do not choose. Requests choose per request. */
    mh_model *draft;
    int draft_max;                /* 0: MH_SCHED_DRAFT_MAX; 1..MH_SCHED_MAX_DRAFT */
    int ngram;                    /* 0: draft model (if any); 1..8: prompt lookup */
    float draft_p_min;            /* [0, 1): a draft model stops drafting at a
                                   * token it gives less than this probability */
    mh_spec_costs spec_costs;     /* start from these (a previous scheduler's
                                   * stats); zero: learn them */
} mh_sched_params;

/* n_parallel 1, n_ctx 2048, f16, chunk 256, prefix cache on, no limit, no
 * prefix store (the server asks for one: --cache-mb). */
void mh_sched_params_init(mh_sched_params *p);
/* The prefix store budget to use when the user names none: 1/16 of the
 * memory available now (MemAvailable), within [16 MiB, 512 MiB]. */
size_t mh_sched_store_default_budget(void);

typedef struct mh_sched_request {
    const int32_t *tokens;        /* (n_tokens) prompt; borrowed, copied */
    int64_t n_tokens;             /* >= 1 */
    mh_sampler_params sampler;    /* its bias list is the logit bias */
    int64_t max_tokens;           /* >= 0; n_tokens + max_tokens <= n_ctx */
    const int32_t *eog;           /* (n_eog) ids that end generation; copied */
    int n_eog;
    int n_top;                    /* top logprobs per token, 0..MH_SCHED_MAX_TOP */
    bool logprobs;                /* report the chosen token's logprob */
    const char *const *stops;     /* (n_stops) stop strings, copied; need
                                   * params.tok: the text before the first one
                                   * is emitted, then the request stops */
    int n_stops;
    mh_sample_constraint constraint;  /* all NULL: none */
    mh_logits_hook hook;          /* fn NULL: none; runs on the thread that
                                   * runs the steps (see mh_sched_new_sync) */
    /* speculation: MH_SPEC_DEFAULT follows the scheduler (its draft model,
     * or its ngram); spec_n_max 0: the scheduler's draft_max; spec_ngram 0:
     * MH_SCHED_NGRAM */
    int spec_mode;
    int spec_n_max;               /* 0..MH_SCHED_MAX_DRAFT */
    int spec_ngram;               /* 0..8 */
    /* per-request LoRA (docs/lora.md): adapters applied to this request's
     * rows only, on top of the model's own, while other requests share the
     * base weights in the same batched forward. Each is checked against the
     * model and retained until the request ends (the list is copied). */
    const mh_lora_use *loras;     /* (n_loras) or NULL */
    int n_loras;                  /* 0..MH_MAX_SEQ_LORAS */
    /* logits processed off the loop's thread (docs/processors.md): when
     * set, each time the request is to sample, its logits are copied into
     * park (f32, at least n_vocab elements; retained until the request
     * ends), an MH_SCHED_EV_LOGITS event goes to its channel and its slot
     * sits out the steps (the others go on) until mh_sched_resume; then
     * the loop samples from park's (changed) values. No speculation. */
    mh_tensor *park;
} mh_sched_request;

enum { MH_SPEC_DEFAULT = 0, MH_SPEC_OFF, MH_SPEC_DRAFT, MH_SPEC_NGRAM };

/* The defaults every path shares (Lua, CLI, HTTP adapters fill in only what
 * their caller set): temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * repeat_penalty 1 over the last 64, no presence/frequency penalty, a seed
 * from the clock, max_tokens MH_SCHED_MAX_TOKENS, no logprobs, no stops. */
void mh_sched_request_init(mh_sched_request *r);

/* ===== events, pushed to the request's channel =====
 * tag MH_SCHED_EV_TOKEN: data is an mh_sched_token_ev (whole struct) and
 * then its n_text bytes of text; tag MH_SCHED_EV_DONE: an mh_sched_done_ev
 * and its n_text bytes (text held back until the end), the last event; the
 * channel is closed after it. Text is always valid UTF-8: a multi-byte
 * character split across tokens waits for its last byte, and bytes that can
 * never form one (or are cut off by the end) become U+FFFD. A stop string
 * never appears in it. */
enum { MH_SCHED_EV_TOKEN = 1, MH_SCHED_EV_DONE = 2, MH_SCHED_EV_LOGITS = 3 };

/* tag MH_SCHED_EV_LOGITS (requests with park): the request's logits wait in
 * park; whoever reads the channel changes them and calls mh_sched_resume. */
typedef struct mh_sched_logits_ev {
    int64_t n_gen;                /* tokens generated so far */
} mh_sched_logits_ev;
enum { MH_SCHED_STOP = 0, MH_SCHED_LENGTH, MH_SCHED_CANCEL, MH_SCHED_ERROR };

typedef struct mh_sched_token_ev {
    int32_t id;
    float logprob;                /* 0 unless logprobs or n_top was asked */
    int32_t n_top;
    int32_t top_ids[MH_SCHED_MAX_TOP];
    float top_logprobs[MH_SCHED_MAX_TOP];
    int32_t n_text;               /* bytes of text after the struct */
} mh_sched_token_ev;

typedef struct mh_sched_done_ev {
    int32_t reason;               /* MH_SCHED_STOP ... MH_SCHED_ERROR */
    int64_t prompt_tokens, cached_tokens, completion_tokens;
    double queue_ms;              /* submit -> slot */
    double prefill_ms;            /* slot -> prompt processed */
    double ttft_ms;               /* submit -> first token (or end) */
    double decode_tps;            /* tokens after the first / their time */
    char message[240];            /* the error for MH_SCHED_ERROR */
    /* the settings the request ran with (sampler.bias is not valid here;
     * sampler.n_bias counts the biases; sampler.seed is the one used) */
    mh_sampler_params sampler;
    int64_t max_tokens;
    int32_t n_stops, n_top, n_eog;
    bool logprobs, constrained, processed;   /* constraint / logits hook or processors set */
    int32_t n_loras;              /* the request's own adapters */
    int32_t stop_index;           /* the stop string that ended it, or -1 */
    /* speculation: spec_mode as run (MH_SPEC_OFF ... NGRAM), tokens drafted
     * and accepted, and the model's forwards that sampled for the request
     * (completion_tokens / target_steps: tokens per target step) */
    int32_t spec_mode, spec_n_max;
    int64_t draft_tokens, accepted_tokens, target_steps;
    int32_t n_text;               /* bytes of text after the struct */
} mh_sched_done_ev;

/* "stop", "length", "cancel", "error" */
const char *mh_sched_reason_name(int reason);

/* ===== scheduler ===== */

/* Allocates every slot's KV cache and starts the compute thread. The model
 * is borrowed and must outlive the scheduler; nothing else may run it while
 * the scheduler exists (the thread calls mh_model_forward_batch at any
 * time). NULL with err: MH_EINVAL for bad params, MH_ENOMEM (naming the
 * bytes) when the caches exceed mem_limit or cannot be allocated. */
mh_sched *mh_sched_new(mh_model *m, const mh_sched_params *p, mh_err *err);

/* Queues r (FIFO when all slots are busy); events go to out, which the
 * scheduler retains until the final event. Returns the request id (> 0) or
 * -1 with err: MH_EINVAL for a bad request, MH_ERANGE when the prompt plus
 * max_tokens exceed n_ctx. On success the scheduler owns the constraint
 * (calls its free); on failure the caller still does. Any thread. */
int64_t mh_sched_submit(mh_sched *s, const mh_sched_request *r, mh_chan *out, mh_err *err);

/* Lets request id, parked on an MH_SCHED_EV_LOGITS event, go on: with
 * error NULL the loop samples from its park tensor at the next step; else
 * the request ends with reason MH_SCHED_ERROR and error as its message.
 * Returns 1 when the request was parked, 0 otherwise. Any thread. */
int mh_sched_resume(mh_sched *s, int64_t id, const char *error);

/* Asks request id to end: at the next step its slot is freed and a "cancel"
 * final event pushed. Returns 1 when the request was live, 0 otherwise.
 * Any thread. */
int mh_sched_cancel(mh_sched *s, int64_t id);

/* Holds the compute thread between two steps (on) or lets it go on (off):
 * requests submitted meanwhile are admitted together in the step after the
 * release, so they share it (a batch submitted at once, as vLLM's
 * generate(list) does). Cancels wait for the release. Any thread; no effect
 * on a synchronous scheduler. */
void mh_sched_hold(mh_sched *s, int on);

typedef struct mh_sched_stats {
    int running, waiting, n_parallel;
    int64_t kv_used, kv_total;            /* cells (positions) over all slots */
    int64_t prefix_hits, prefix_tokens;   /* requests that reused a prefix, tokens reused */
    int64_t prompt_tokens, generated_tokens, requests_done;
    int64_t steps;                        /* batched forwards run */
    /* prefix store (beyond the slots): hits and tokens restored from it
     * (also counted in prefix_hits/_tokens), what it holds, LRU evictions */
    int64_t store_hits, store_tokens;
    int64_t store_entries, store_bytes, store_budget, store_evictions;
    /* its disk tier (cache_dir): state files, their bytes, restores from them */
    int64_t store_disk_entries, store_disk_bytes, store_disk_hits;
    /* speculation: tokens drafted and accepted, verifying forwards of
     * drafted slots (rows with drafts) and the tokens they emitted */
    int64_t spec_drafted, spec_accepted, spec_steps, spec_tokens;
    int64_t parks;                        /* logits handed out to be processed */
    int64_t lora_rows;                    /* batch rows run with their own adapters */
    int64_t lora_mixed_steps;             /* forwards whose rows had different adapters */
    mh_spec_costs spec_costs;             /* as measured so far */
} mh_sched_stats;

/* A consistent snapshot. Any thread. */
void mh_sched_stats_get(mh_sched *s, mh_sched_stats *st);

/* Sentence embedding (mh_model_embed) of tokens on the caller's thread,
 * between two steps of the compute thread (which owns the model). */
int mh_sched_embed(mh_sched *s, const int32_t *tokens, int64_t n, float *out, mh_err *err);
/* The same for n_seqs texts at once (mh_model_embed_batch): out (n_seqs, n_embd). */
int mh_sched_embed_batch(mh_sched *s, const int32_t *const *tokens, const int64_t *n, int n_seqs, float *out,
                         mh_err *err);

/* ===== slot state on disk (sched_state.c, mh/kv_state.h) =====
 * A free slot's cached ids and KV rows to a state file, or back (llama-server's
 * /slots/ID?action=save|restore|erase). A restored slot is reused by the next
 * prompt that starts with its ids. Any thread: each waits for the current step
 * and fails (MH_EINVAL) while the slot runs a request. */
int mh_sched_slot_save(mh_sched *s, int slot, const char *path, int64_t *n_saved, size_t *size, mh_err *err);
int mh_sched_slot_restore(mh_sched *s, int slot, const char *path, int64_t *n_restored, size_t *size,
                          mh_err *err);
int mh_sched_slot_erase(mh_sched *s, int slot, int64_t *n_erased, mh_err *err);

/* Stops the thread (every live request gets a "cancel" event), joins it and
 * frees the caches. NULL is a no-op. */
void mh_sched_free(mh_sched *s);

/* ===== synchronous use =====
 * The same loop without a compute thread: one slot over the caller's cache,
 * stepped by the caller (model:generate, model:stream). Hooks run on the
 * caller's thread inside mh_sched_step, so a callback into the caller's
 * language is safe there. */

/* A one-slot scheduler over cache (borrowed; it must outlive the scheduler)
 * whose first n_hist positions hold the ids hist (copied; the part of it the
 * cache really holds is reused as a cached prefix). p's n_parallel, n_ctx
 * (the cache's), kv_type and cache_bytes are ignored. NULL with err. */
mh_sched *mh_sched_new_sync(mh_model *m, const mh_sched_params *p, mh_kv_cache *cache,
                            const int32_t *hist, int64_t n_hist, mh_err *err);

/* Runs one step on the calling thread (admission, one batched forward,
 * sampling; events land on the requests' channels). Returns 1 when it did
 * some work, 0 when there was none (or s is not synchronous). */
int mh_sched_step(mh_sched *s);

/* The ids slot holds in its cache (borrowed until the next step): after a
 * synchronous generation, what to pass as hist next time. */
int64_t mh_sched_slot_tokens(const mh_sched *s, int slot, const int32_t **ids);

/* ===== speculative sampling =====
 * One verification of a drafted token d (Leviathan et al. 2023, Chen et al.
 * 2023): p is the model's distribution (n), q the draft's (n), or NULL when
 * the draft was deterministic (q = 1 at d: greedy or prompt lookup). d is
 * accepted when u1 < p[d] / q[d]; otherwise the token is drawn with u2 from
 * norm(max(0, p - q)). u1, u2 uniform in [0, 1). So the token returned is
 * distributed as p, whatever q is. *accepted tells which happened. */
int32_t mh_spec_accept(const float *p, const float *q, int64_t n, int32_t d, double u1, double u2,
                       bool *accepted);
/* The draft length (1..n_max) a draft model should try next: the k that
 * maximises the expected tokens of a step, 1 + alpha + ... + alpha^k
 * (each draft accepted with probability alpha, up to the first miss), over
 * its cost cost[k] (k drafts and the (k+1)-row check, any unit; cost[0] is
 * not read). docs/speculative.md, "Draft length". */
int mh_spec_best_k(double alpha, const double *cost, int n_max);

#endif
