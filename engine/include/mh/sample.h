/* sample.h: token samplers over a logits vector, logprobs, a stop-string
 * matcher for streaming, and the hooks a decoding loop runs (constraints,
 * logits processors). Layer: engine/sample (pure C11, libm only).
 * A sampler is per sequence and not thread-safe; different samplers may run
 * on different threads. The chain and its conventions are in docs/sampling.md. */
#ifndef MH_SAMPLE_H
#define MH_SAMPLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "mh/err.h"

/* ===== sampler =====
 * Chain order of mh_sampler_sample (each step sees the previous one's output):
 *   1. logit bias       logit[id] += bias (a -inf bias bans the token)
 *   2. penalties        over the tokens of the last repeat_last_n accepted ids:
 *                       repetition (llama.cpp): logit > 0 ? logit / r : logit * r,
 *                       then logit -= presence * (count > 0) + frequency * count
 *      (NaN logits become -inf, +inf become FLT_MAX; logits[] now hold this)
 *   3. temperature == 0: greedy argmax (ties -> lowest id); no random draw.
 *      otherwise, on probabilities at temperature 1 of the surviving set:
 *      top-k -> top-p (nucleus) -> min-p (p >= min_p * p_max) -> temperature
 *      -> one draw from a xoshiro256** stream owned by the sampler. */

#define MH_SAMPLER_SEED_RANDOM UINT64_MAX   /* seed from the clock */

typedef struct mh_logit_bias {
    int32_t id;           /* 0 <= id < n_vocab */
    float bias;           /* finite, or -INFINITY to ban; duplicates add up */
} mh_logit_bias;

typedef struct mh_sampler_params {
    float temperature;        /* 0: greedy; > 0: divide logits; < 0: EINVAL */
    int32_t top_k;            /* <= 0: disabled */
    float top_p;              /* (0, 1]; 1: disabled */
    float min_p;              /* [0, 1]; 0: disabled */
    float repeat_penalty;     /* > 0; 1: disabled */
    int32_t repeat_last_n;    /* history window for all penalties; 0: no
                                 penalties; -1: everything accepted */
    float presence_penalty;   /* finite; 0: disabled */
    float frequency_penalty;  /* finite; 0: disabled */
    uint64_t seed;            /* MH_SAMPLER_SEED_RANDOM: from the clock */
    const mh_logit_bias *bias;  /* (n_bias) borrowed; copied by mh_sampler_new */
    int32_t n_bias;
} mh_sampler_params;

typedef struct mh_sampler mh_sampler;

/* Neutral parameters: temperature 1, no truncation, no penalties,
 * repeat_last_n 64, seed 0, no bias: a plain draw from the model. */
void mh_sampler_params_init(mh_sampler_params *p);

/* Checks p and returns a new sampler (free with mh_sampler_free), or NULL
 * with err set (MH_EINVAL naming the bad field, MH_ENOMEM). */
mh_sampler *mh_sampler_new(const mh_sampler_params *p, int64_t n_vocab, mh_err *err);
void mh_sampler_free(mh_sampler *s);

/* Runs the chain over logits (n_vocab), which it modifies in place (steps 1
 * and 2: on return they hold the biased, penalized logits, ready for
 * mh_logprobs_top). Returns the chosen id, or -1 with err set (MH_EINVAL
 * when every logit is -inf/NaN). Does not record the choice: call
 * mh_sampler_accept. A non-greedy call consumes exactly one random draw. */
int32_t mh_sampler_sample(mh_sampler *s, float *logits, mh_err *err);

/* Records id in the penalty history (prompt tokens too, if the caller wants
 * llama.cpp's behaviour). MH_EINVAL when id is outside the vocabulary. */
int mh_sampler_accept(mh_sampler *s, int32_t id, mh_err *err);

/* The settings s runs with (what mh_sampler_new checked), the seed being the
 * one in use (the drawn one under MH_SAMPLER_SEED_RANDOM); out->bias points
 * at s's own copy (borrowed, valid while s lives). */
void mh_sampler_settings(const mh_sampler *s, mh_sampler_params *out);

/* Clears the history and restarts the random stream from the seed. */
void mh_sampler_reset(mh_sampler *s);

/* The seed in use (the drawn one under MH_SAMPLER_SEED_RANDOM). */
uint64_t mh_sampler_seed(const mh_sampler *s);

/* The candidates that survived truncation in the last non-greedy sample and
 * their final probabilities (after temperature), best first when top-k or
 * top-p sorted them, else in id order. Pointers are borrowed and valid until
 * the next sample; returns the count (1 with the chosen id after greedy). */
int64_t mh_sampler_candidates(const mh_sampler *s, const int32_t **ids, const float **probs);

/* ===== selection and logprobs ===== */

/* The ids of the k largest logits (n), best first, ties lowest id first,
 * NaN ranked as -inf. Writes min(k, n) ids into ids (k) and returns that. */
int64_t mh_sample_top_n(const float *logits, int64_t n, int64_t k, int32_t *ids);

/* Log-softmax of logits (n_vocab), computed with a stable logsumexp in
 * double. Pass the logits mh_sampler_sample left behind: the model's
 * distribution after bias and penalties, before temperature and truncation
 * (what OpenAI's logprobs report). Writes the logprob of chosen into
 * *chosen_logprob (skipped when chosen < 0 or the pointer is NULL) and the
 * n_top most likely ids with their logprobs into top_ids/top_logprobs
 * (n_top), best first, ties lowest id first, leaving out -inf entries.
 * Returns how many were written, or -1 with err set. */
int mh_logprobs_top(const float *logits, int64_t n_vocab, int n_top, int32_t chosen,
                    float *chosen_logprob, int32_t *top_ids, float *top_logprobs,
                    mh_err *err);

/* ===== hooks of a decoding loop =====
 * A decoding loop (engine/sched) runs, per token: the logits processor, the
 * constraint's mask, the sampler, the constraint's accept. Both hooks run on
 * the thread that runs the loop: a scheduler's compute thread, or the
 * caller's thread for a synchronous one (the only place a hook handed down by
 * the Lua binding may be used). */

/* Constrained decoding (e.g. a JSON-schema grammar, mh/grammar.h). mask may
 * set logits (n_vocab) to -INFINITY; accept is told the chosen id. Nonzero
 * from either ends the generation with an error. free(ud) is called once
 * when the generation ends. All NULL: none. */
typedef struct mh_sample_constraint {
    void *ud;
    int (*mask)(void *ud, float *logits, int64_t n_vocab);
    int (*accept)(void *ud, int32_t id);
    void (*free)(void *ud);
} mh_sample_constraint;

/* A logits processor: may change logits (n_vocab) in place before sampling;
 * tokens (n_tokens) are the ids generated so far (borrowed for the call).
 * Nonzero ends the generation with an error: fn fills err (which may be
 * NULL) with its message. free(ud) is called once when the generation ends.
 * fn NULL: none. */
typedef struct mh_logits_hook {
    void *ud;
    int (*fn)(void *ud, float *logits, int64_t n_vocab, const int32_t *tokens,
              int64_t n_tokens, mh_err *err);
    void (*free)(void *ud);
} mh_logits_hook;

/* ===== UTF-8 ===== */

/* Copies in (n bytes) to out with every byte that is not part of a valid
 * UTF-8 sequence (stray continuation, overlong, surrogate, > U+10FFFF, or a
 * sequence cut short, at the end too) replaced by U+FFFD. out needs 3 * n
 * bytes. Returns the bytes written. For text that must be valid (JSON). */
size_t mh_utf8_clean(const char *in, size_t n, char *out);

/* ===== stop strings =====
 * Fed the decoded text of each token, the matcher says which bytes are safe
 * to show now: it holds back any tail that could begin a stop string and any
 * incomplete UTF-8 sequence at the end. A stop is the match that ends first
 * in the text (ties: the longest); the text before it is emitted and the
 * stop itself never is, however it was split across pieces. */

typedef struct mh_stop_matcher mh_stop_matcher;

/* Copies the n stop strings (non-empty; n may be 0). NULL with err on error. */
mh_stop_matcher *mh_stop_new(const char *const *stops, int n, mh_err *err);
void mh_stop_free(mh_stop_matcher *m);

/* Appends piece (len bytes). *emit, *emit_len: text safe to show now
 * (borrowed, valid until the next call on m). *stopped: a stop string was
 * completed; *emit then ends right before it and later pushes emit nothing.
 * Returns MH_OK, MH_EINVAL or MH_ENOMEM (err set). */
int mh_stop_push(mh_stop_matcher *m, const char *piece, size_t len,
                 const char **emit, size_t *emit_len, bool *stopped, mh_err *err);

/* End of generation: everything still held back (nothing after a stop). */
void mh_stop_flush(mh_stop_matcher *m, const char **emit, size_t *emit_len);

/* Index of the stop string that matched, or -1. */
int mh_stop_which(const mh_stop_matcher *m);

/* Forgets the text seen so far, for reuse on a new generation. */
void mh_stop_reset(mh_stop_matcher *m);

#endif
