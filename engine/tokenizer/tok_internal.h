/* tok_internal.h: the tokenizer's private structure and the helpers shared
 * by the engine/tokenizer sources (hash maps, buffers, UTF-8, merging, pre-tokenizers).
 * Layer: engine/tokenizer. Not part of the public API. */
#ifndef MH_TOK_INTERNAL_H
#define MH_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "mh/tokenizer.h"

/* ===== text -> id and (id, id) -> merge maps (open addressing) ===== */
typedef struct tok_strmap { uint32_t *slot; uint32_t mask; } tok_strmap;   /* slot: id + 1 */
typedef struct tok_merge { int32_t rank, result; } tok_merge;
typedef struct tok_pairmap { uint64_t *key; tok_merge *val; uint32_t mask; } tok_pairmap;

/* ===== pre-tokenizer and normalizer steps ===== */
enum { PRE_ISOLATE = 0, PRE_REMOVE = 1 };
typedef struct tok_regex { pcre2_code *re; int mode; } tok_regex;

enum { NORM_NFC = 1, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_LOWER, NORM_STRIP_ACCENTS,
       NORM_REPLACE, NORM_PREPEND };
typedef struct tok_norm { int op; char *a, *b; } tok_norm;

struct mh_tokenizer {
    mh_tok_kind kind;
    char pre_name[64];
    int32_t n_vocab;
    char *blob;                 /* all token texts, back to back */
    uint32_t *off, *len;        /* (n_vocab) */
    float *scores;              /* (n_vocab) */
    uint8_t *attr;              /* (n_vocab) MH_TOKEN_* */
    int max_token_len;
    tok_strmap vocab;
    tok_pairmap merges;         /* BPE only */
    bool use_scores;            /* SPM merging by score (GGUF "llama") */
    bool byte_level;            /* GPT-2 byte <-> unicode map */
    bool byte_fallback;         /* <0xNN> tokens for unknown bytes */
    bool ignore_merges;         /* a whole pre-token in the vocab wins (llama3) */
    bool add_space_prefix;      /* SPM dummy prefix before each text fragment */
    bool escape_spaces;         /* ' ' -> U+2581 before merging (SPM) */
    bool strip_first_space;     /* decode drops the dummy prefix */
    bool mark_splits;           /* no token has U+2581 after another character, so a
                                   word can be merged in pieces cut before each U+2581 */
    bool add_bos, add_eos;
    int32_t byte_tok[256];      /* id for each byte (byte map or <0xNN>), -1 */
    int32_t *specials;          /* control/user/unknown ids, longest text first */
    uint8_t *strip;             /* (n_vocab) TOK_LSTRIP | TOK_RSTRIP, or NULL: whitespace
                                   a special swallows on its left / right when matched */
    int n_specials;
    tok_regex *re;              /* pre-tokenizer splits, applied in order */
    int n_re;
    tok_norm *norm;             /* normalizer steps (tokenizer.json) */
    int n_norm;
    /* WordPiece */
    char wp_word_prefix[8];     /* GGUF: U+2581 before word starts */
    char wp_cont_prefix[8];     /* tokenizer.json: "##" before continuations */
    bool wp_lower, wp_strip_accents;
    mh_tok_special sp;
    char *chat_template;
};

enum { TOK_LSTRIP = 1, TOK_RSTRIP = 2 };

/* ===== vocab.c ===== */
/* Sets (on) or clears the strip flags bits of token id, allocating t->strip. */
int tok_set_strip(mh_tokenizer *t, int32_t id, int bits, bool on);
uint32_t tok_hash(const char *s, size_t n);
int tok_vocab_alloc(mh_tokenizer *t, int32_t n, size_t blob_bytes, mh_err *err);
/* Sets token id's text (copied into the blob at *pos). */
void tok_vocab_set(mh_tokenizer *t, int32_t id, const char *s, size_t n, size_t *pos);
/* Builds the text map, specials list and byte table; call after all set. */
int tok_vocab_finish(mh_tokenizer *t, mh_err *err);
int32_t tok_find(const mh_tokenizer *t, const char *s, size_t n);
int tok_merges_init(mh_tokenizer *t, size_t n, mh_err *err);
void tok_merges_put(mh_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t result);
const tok_merge *tok_merges_get(const mh_tokenizer *t, int32_t a, int32_t b);
int tok_ids_push(mh_tok_ids *ids, int32_t id);
int tok_buf_put(mh_tok_buf *b, const void *p, size_t n);
/* Length of the UTF-8 sequence starting at s[0] (1 for a bad lead byte). */
size_t tok_utf8_len(unsigned char c);
/* Bytes of a valid UTF-8 sequence at s (max n), 0 when invalid there. */
size_t tok_utf8_valid(const unsigned char *s, size_t n);
size_t tok_utf8_put(uint32_t cp, char *out);     /* out holds 4 bytes */
uint32_t tok_byte_to_cp(unsigned char b);         /* GPT-2 byte map */
int tok_cp_to_byte(uint32_t cp);                  /* -1 when not in the map */

/* ===== merge.c: SPM (scores) and BPE (ranks) over one word ===== */
typedef struct tok_sym { int32_t start, len, prev, next, id; } tok_sym;
typedef struct tok_bigram { double key; int32_t left, right, size, id; } tok_bigram;
typedef struct tok_merge_ctx {            /* scratch reused across words */
    tok_sym *sym; size_t nsym, capsym;
    tok_bigram *heap; size_t nheap, capheap;
} tok_merge_ctx;
void tok_merge_ctx_free(tok_merge_ctx *c);
int tok_merge_word(const mh_tokenizer *t, tok_merge_ctx *c, const char *w, size_t n,
                   mh_tok_ids *out, mh_err *err);

/* ===== pretok.c ===== */
/* Compiles the regexes llama.cpp uses for tokenizer.ggml.pre = name. */
int tok_pre_from_name(mh_tokenizer *t, const char *name, mh_err *err);
int tok_pre_add(mh_tokenizer *t, const char *pattern, size_t n, int mode, mh_err *err);
/* Splits text into pre-tokens; calls fn(ud, off, len) for each in order. */
typedef int (*tok_word_fn)(void *ud, const char *w, size_t n);
int tok_pre_split(const mh_tokenizer *t, const char *text, size_t n, tok_word_fn fn,
                  void *ud, mh_err *err);
/* Applies the normalizer steps; *out is malloc'd (caller frees). */
int tok_normalize(const mh_tokenizer *t, const char *s, size_t n, char **out, size_t *on,
                  mh_err *err);

/* ===== wordpiece.c ===== */
int tok_wpm_encode(const mh_tokenizer *t, const char *s, size_t n, mh_tok_ids *out, mh_err *err);

#endif
