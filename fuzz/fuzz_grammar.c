/* fuzz_grammar.c: libFuzzer target for JSON schema -> grammar compilation,
 * then a few constrained steps (mask, take the first allowed id, accept) so
 * the compiled automaton runs too. Vocabulary: stories260K from the shared
 * models. Layer: fuzz (engine/sample, engine/tokenizer). */
#include <math.h>
#include <stdint.h>
#include "mh/grammar.h"
#include "mh/tokenizer.h"
#include "fuzz.h"

#define STEPS 48

static mh_tokenizer *g_tok;
static float *g_logits;
static int32_t g_n;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    mh_err err = { 0 };
    if (mh_tokenizer_load(fuzz_shared("models/stories260K.gguf"), &g_tok, &err) != MH_OK) {
        fprintf(stderr, "fuzz_grammar: %s\n", err.msg);
        exit(2);
    }
    g_n = mh_tokenizer_n_vocab(g_tok);
    g_logits = malloc(sizeof(float) * (size_t)g_n);
    if (!g_logits) abort();
    return 0;
}

static void drive(mh_grammar *g, unsigned seed)
{
    for (int step = 0; step < STEPS && !mh_grammar_done(g); step++) {
        for (int32_t i = 0; i < g_n; i++) g_logits[i] = 0.0f;
        if (mh_grammar_mask(g, g_logits, g_n, NULL) < 1) return;
        int32_t pick = -1, seen = 0;
        for (int32_t i = 0; i < g_n; i++)    /* the seed-th allowed id, cycling */
            if (g_logits[i] != -INFINITY && (pick < 0 || (unsigned)seen++ % 7 == seed % 7)) pick = i;
        if (pick < 0 || mh_grammar_accept(g, pick, NULL) != MH_OK) return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *schema = malloc(size + 1);
    if (!schema) return 0;
    memcpy(schema, data, size);
    schema[size] = 0;
    mh_grammar *g = mh_grammar_json_schema(schema, g_tok, NULL);
    if (g) {
        drive(g, size ? data[0] : 0);
        mh_grammar_reset(g);
        drive(g, 3);
        mh_grammar_free(g);
    }
    free(schema);
    return 0;
}
