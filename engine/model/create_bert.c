/* create_bert.c: what moonhub create writes for encoder models (bert,
 * nomic-bert): their metadata keys and a built-in WordPiece vocabulary.
 * Layer: engine/model (pure C11; mh/gguf_write.h). Keys are the ones
 * llama.cpp's converter writes for these architectures (c392e5094). */
#include <stdio.h>
#include <string.h>
#include "mh/create.h"
#include "mh/gguf_write.h"
#include "mh/tokenizer.h"

bool mh_create_is_encoder(const char *arch)
{
    return !strcmp(arch, "bert") || !strcmp(arch, "nomic-bert");
}

static int u32(mh_gguf_writer *w, const char *arch, const char *k, int64_t v, mh_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return mh_gguf_writer_set_int(w, key, MH_GGUF_UINT32, v, err);
}

int mh_create_encoder_hparams(const mh_create_config *c, mh_gguf_writer *w, mh_err *err)
{
    const char *a = c->arch;
    char key[128];
    int rc = u32(w, a, "block_count", c->n_layer, err);
    if (!rc) rc = u32(w, a, "context_length", c->n_ctx, err);
    if (!rc) rc = u32(w, a, "embedding_length", c->n_embd, err);
    if (!rc) rc = u32(w, a, "feed_forward_length", c->n_ff, err);
    if (!rc) rc = u32(w, a, "attention.head_count", c->n_head, err);
    snprintf(key, sizeof key, "%s.attention.layer_norm_epsilon", a);
    if (!rc) rc = mh_gguf_writer_set_float(w, key, MH_GGUF_FLOAT32, c->rms_eps, err);
    snprintf(key, sizeof key, "%s.attention.causal", a);
    if (!rc) rc = mh_gguf_writer_set_int(w, key, MH_GGUF_BOOL, 0, err);
    if (!rc) rc = u32(w, a, "pooling_type", c->pooling > 0 ? c->pooling : 1, err);
    snprintf(key, sizeof key, "%s.rope.freq_base", a);
    if (!rc && !strcmp(a, "nomic-bert")) rc = mh_gguf_writer_set_float(w, key, MH_GGUF_FLOAT32, c->rope_base, err);
    /* token_types.weight has two rows (llama.cpp sizes it from this key) */
    if (!rc) rc = mh_gguf_writer_set_int(w, "tokenizer.ggml.token_type_count", MH_GGUF_UINT32, 2, err);
    return rc;
}

/* Words the built-in vocabulary knows whole, so short English test
 * sentences give a few real word tokens besides single characters. */
static const char *const words[] = {
    "the", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with", "as", "was", "at", "by",
    "an", "be", "this", "are", "from", "or", "have", "not", "but", "what", "all", "we", "can", "one",
    "you", "how", "why", "who", "hello", "world", "cat", "dog", "sat", "mat", "model", "text",
    "search", "query", "document", "river", "bank", "money", "quick", "brown", "fox", "jumps", "over",
    "lazy", "embedding", "sentence", "vector",
};
static const char *const suffixes[] = { "ing", "ed", "er", "ly", "tion", "es" };

/* GGUF's WordPiece layout (llama.cpp's converter): a word-start piece
 * carries U+2581 in front, a continuation piece ("##x" in BERT's vocab.txt)
 * has none. Ids 0..4 are [PAD] [UNK] [CLS] [SEP] [MASK]; [CLS] is also the
 * bos id, which is what llama.cpp puts first (it does not read cls_token_id). */
int mh_create_wordpiece_vocab(mh_gguf_writer *w, int64_t *n_vocab, mh_err *err)
{
    enum { CAP = 512 };
    static char store[CAP][24];
    const char *strs[CAP];
    size_t lens[CAP];
    int32_t types[CAP];
    int n = 0;
    static const char *const specials[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
    for (int i = 0; i < 5; i++, n++) {
        snprintf(store[n], sizeof store[n], "%s", specials[i]);
        types[n] = i == 1 ? MH_TOKEN_UNKNOWN : MH_TOKEN_CONTROL;
    }
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++, n++) {
        snprintf(store[n], sizeof store[n], "\xE2\x96\x81%s", words[i]);
        types[n] = MH_TOKEN_NORMAL;
    }
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++, n++) {
        snprintf(store[n], sizeof store[n], "%s", suffixes[i]);
        types[n] = MH_TOKEN_NORMAL;
    }
    for (int ch = 33; ch < 127; ch++) {    /* lowercased text: no A-Z */
        if (ch >= 'A' && ch <= 'Z') continue;
        snprintf(store[n], sizeof store[n], "\xE2\x96\x81%c", ch);
        types[n++] = MH_TOKEN_NORMAL;
        snprintf(store[n], sizeof store[n], "%c", ch);
        types[n++] = MH_TOKEN_NORMAL;
    }
    for (int i = 0; i < n; i++) {
        strs[i] = store[i];
        lens[i] = strlen(store[i]);
    }
    *n_vocab = n;
    int rc = mh_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert", 4, err);
    if (!rc) rc = mh_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default", 7, err);
    if (!rc) rc = mh_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, (uint64_t)n, err);
    if (!rc) rc = mh_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", MH_GGUF_INT32, types, (uint64_t)n, err);
    static const struct { const char *key; int id; } ids[] = {
        { "tokenizer.ggml.padding_token_id", 0 }, { "tokenizer.ggml.unknown_token_id", 1 },
        { "tokenizer.ggml.cls_token_id", 2 }, { "tokenizer.ggml.seperator_token_id", 3 },
        { "tokenizer.ggml.bos_token_id", 2 },   /* llama.cpp starts a text with bos (101 unless told) */
        { "tokenizer.ggml.mask_token_id", 4 },
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0] && !rc; i++)
        rc = mh_gguf_writer_set_int(w, ids[i].key, MH_GGUF_UINT32, ids[i].id, err);
    return rc;
}
