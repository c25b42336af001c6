/* tokenizer.h: text <-> token ids for SentencePiece-BPE ("llama"), byte-level
 * BPE ("gpt2", PCRE2 pre-tokenizers) and WordPiece ("bert") vocabularies,
 * built from GGUF metadata or a Hugging Face tokenizer.json.
 * Layer: engine/tokenizer (pure C11 + pcre2, utf8proc, cjson).
 * Token ids are the file's ids (0-based). A tokenizer is immutable after
 * loading and may be shared by threads. */
#ifndef MH_TOKENIZER_H
#define MH_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "mh/err.h"

struct mh_gguf;
typedef struct mh_tokenizer mh_tokenizer;

typedef enum mh_tok_kind { MH_TOK_SPM = 1, MH_TOK_BPE, MH_TOK_WPM } mh_tok_kind;

/* Token attributes, numbered as GGUF's tokenizer.ggml.token_type. */
enum {
    MH_TOKEN_UNDEFINED = 0, MH_TOKEN_NORMAL, MH_TOKEN_UNKNOWN, MH_TOKEN_CONTROL,
    MH_TOKEN_USER_DEFINED, MH_TOKEN_UNUSED, MH_TOKEN_BYTE,
};

/* Special ids; -1 when the vocabulary has none. */
typedef struct mh_tok_special {
    int32_t bos, eos, eot, eom, unk, pad, sep, cls, mask;
} mh_tok_special;

/* Growable outputs; zero-initialize, free with the matching _free. */
typedef struct mh_tok_ids { int32_t *v; size_t n, cap; } mh_tok_ids;
typedef struct mh_tok_buf { char *p; size_t n, cap; } mh_tok_buf;
void mh_tok_ids_free(mh_tok_ids *ids);
void mh_tok_buf_free(mh_tok_buf *b);

typedef struct mh_tok_encode_opts {
    int add_bos;          /* -1: as the vocabulary says; 0: never; 1: always */
    int add_eos;          /* same */
    bool parse_special;   /* match control tokens (<|im_start|>) in the text */
} mh_tok_encode_opts;

/* Decode flags. */
enum {
    MH_DECODE_SKIP_SPECIAL = 1,   /* control tokens give no text */
    MH_DECODE_KEEP_SPACE = 2,     /* keep the SentencePiece dummy-prefix space */
};

/* ===== loading ===== */
/* path: a .gguf (full model or vocab-only), a tokenizer.json, or a folder
 * holding tokenizer.json. *out is a new tokenizer (mh_tokenizer_free). */
int mh_tokenizer_load(const char *path, mh_tokenizer **out, mh_err *err);
/* From an open GGUF's tokenizer.ggml.* keys; borrows g only during the call. */
int mh_tokenizer_from_gguf(const struct mh_gguf *g, mh_tokenizer **out, mh_err *err);
/* From tokenizer.json (+ tokenizer_config.json beside it when present). */
int mh_tokenizer_from_hf(const char *json_path, mh_tokenizer **out, mh_err *err);
void mh_tokenizer_free(mh_tokenizer *t);   /* NULL is a no-op */

/* ===== encode / decode ===== */
/* Appends the ids of text[0..len) to out. Any bytes are accepted: invalid
 * UTF-8 goes through byte fallback / the byte map. opts NULL: defaults. */
int mh_tokenizer_encode(const mh_tokenizer *t, const char *text, size_t len,
                        const mh_tok_encode_opts *opts, mh_tok_ids *out, mh_err *err);
/* Appends the bytes of ids to out (flags: MH_DECODE_*). Unknown ids: MH_ERANGE. */
int mh_tokenizer_decode(const mh_tokenizer *t, const int32_t *ids, size_t n, int flags,
                        mh_tok_buf *out, mh_err *err);
/* Appends the bytes one token stands for (control tokens as their text when
 * special, else nothing). MH_ERANGE for a bad id. */
int mh_tokenizer_piece(const mh_tokenizer *t, int32_t id, bool special, mh_tok_buf *out,
                       mh_err *err);

/* ===== vocabulary ===== */
mh_tok_kind mh_tokenizer_kind(const mh_tokenizer *t);
const char *mh_tokenizer_kind_name(const mh_tokenizer *t);   /* "spm", "bpe", "wpm" */
const char *mh_tokenizer_pre(const mh_tokenizer *t);          /* pre-tokenizer name */
int32_t mh_tokenizer_n_vocab(const mh_tokenizer *t);
/* The vocabulary string of id (borrowed, not NUL-terminated), NULL if bad id. */
const char *mh_tokenizer_text(const mh_tokenizer *t, int32_t id, size_t *len);
int32_t mh_tokenizer_id(const mh_tokenizer *t, const char *text, size_t len);  /* -1 */
int mh_tokenizer_attr(const mh_tokenizer *t, int32_t id);    /* MH_TOKEN_*; 0 if bad */
float mh_tokenizer_score(const mh_tokenizer *t, int32_t id);
const mh_tok_special *mh_tokenizer_special(const mh_tokenizer *t);
bool mh_tokenizer_add_bos(const mh_tokenizer *t);
bool mh_tokenizer_add_eos(const mh_tokenizer *t);
/* True for ids that end generation (eos, eot, eom and similar controls). */
bool mh_tokenizer_is_eog(const mh_tokenizer *t, int32_t id);
/* The chat template stored with the vocabulary, or NULL (borrowed). */
const char *mh_tokenizer_chat_template(const mh_tokenizer *t);

/* ===== streaming decode ===== */
/* Turns ids into text one at a time, holding back an incomplete UTF-8
 * sequence at the end until the next id completes it. */
typedef struct mh_tok_stream {
    const mh_tokenizer *t;      /* borrowed */
    int flags;                  /* MH_DECODE_* */
    bool started;               /* some text was produced */
    mh_tok_buf pending;         /* bytes not yet returned */
} mh_tok_stream;

void mh_tok_stream_init(mh_tok_stream *s, const mh_tokenizer *t, int flags);
/* Appends to out the complete UTF-8 now available (may be nothing). */
int mh_tok_stream_push(mh_tok_stream *s, int32_t id, mh_tok_buf *out, mh_err *err);
/* Appends whatever is held back (possibly invalid UTF-8) and resets. */
int mh_tok_stream_flush(mh_tok_stream *s, mh_tok_buf *out, mh_err *err);
void mh_tok_stream_free(mh_tok_stream *s);

#endif
