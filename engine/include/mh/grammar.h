/* grammar.h: constrained decoding. A JSON schema (or "any JSON object") is
 * compiled to a byte-level grammar; per step the grammar masks the logits of
 * every token whose bytes cannot continue a valid document, and accept()
 * advances it by the chosen token. Layer: engine/sample (pure C11 + cjson).
 * Design, supported schema subset and timings: docs/grammar.md. */
#ifndef MH_GRAMMAR_H
#define MH_GRAMMAR_H

#include <stdbool.h>
#include <stdint.h>
#include "mh/err.h"
#include "mh/sample.h"
#include "mh/tokenizer.h"

typedef struct mh_grammar mh_grammar;

/* Most whitespace bytes allowed in one gap between JSON tokens (and before /
 * after the top-level value), so a model cannot loop forever on spaces. */
#define MH_GRAMMAR_WS_MAX 12

/* A grammar for documents valid under schema_json (a JSON schema, as text).
 * The vocabulary of tok is copied: tok is borrowed only during the call.
 * NULL with err: MH_EINVAL naming the construct and its place ("#/properties/
 * age: unsupported schema keyword 'minimum'"), MH_EFORMAT when schema_json is
 * not JSON, MH_ENOMEM. Free with mh_grammar_free. */
mh_grammar *mh_grammar_json_schema(const char *schema_json, const mh_tokenizer *tok, mh_err *err);

/* A grammar for any JSON object (OpenAI's response_format json_object). */
mh_grammar *mh_grammar_json_object(const mh_tokenizer *tok, mh_err *err);

void mh_grammar_free(mh_grammar *g);    /* NULL is a no-op */

/* Back to the state before the first token. */
void mh_grammar_reset(mh_grammar *g);

/* Sets logits[i] (n_vocab) to -INFINITY for every token not allowed next.
 * End-of-generation ids are allowed only once the value is complete; ids the
 * tokenizer does not know (a padded n_vocab) never are. Returns how many ids
 * stay allowed (>= 1), or -1 with err (MH_EINVAL: nothing can follow, or the
 * grammar already ended) leaving logits untouched. */
int64_t mh_grammar_mask(mh_grammar *g, float *logits, int64_t n_vocab, mh_err *err);

/* Advances by token id. MH_EINVAL (state unchanged) when id is not allowed
 * here: its bytes do not continue the document, or it ends generation before
 * the value is complete. */
int mh_grammar_accept(mh_grammar *g, int32_t id, mh_err *err);

/* True when the value is complete (an end-of-generation id is allowed now)
 * or an end-of-generation id was accepted. */
bool mh_grammar_done(const mh_grammar *g);

/* True when id is allowed next (the slow path: one token, no mask). */
bool mh_grammar_allows(mh_grammar *g, int32_t id);

/* The message of the last failed mask/accept (for hook users), "" if none. */
const char *mh_grammar_last_error(const mh_grammar *g);

/* Fills out so a decoding loop drives g: its mask/accept return 0 or nonzero
 * (message in mh_grammar_last_error), and its free frees g: the loop (the
 * scheduler) takes ownership once the request is submitted. */
void mh_grammar_as_constraint(mh_grammar *g, mh_sample_constraint *out);

#endif
