/* gen_embed_ref.c: writes tests/fixtures/embed_reference.txt, llama.cpp's
 * sentence embeddings of a few texts on the shared models, which
 * tests/c/test_embed_ref.c compares with mh_model_embed (cosine).
 * Layer: maintainer tool over llama.cpp's libllama (C API only); make test
 * never builds or runs it. It declares the few llama.h items it needs itself.
 *
 * What it records, per model and text: llama.cpp's tokens (llama_tokenize,
 * add_special, so the test embeds the very same ids) and the embedding that
 * llama-embedding --pooling mean --embd-normalize 2 prints: llama.cpp's
 * final normed hidden state of every position (llama_set_embeddings, per
 * token output), averaged over positions, then L2-normalized. Only the mean
 * and the norm are computed here, in double.
 *
 * Build and run from the repository root (libllama as for gen_sample_ref.c):
 *   L=/tmp/llref/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   cc -O1 -o /tmp/gen_embed_ref tests/tools/gen_embed_ref.c $L/libllama.v0.5.0.so \
 *      $L/libggml.v0.5.0.so -Wl,-rpath,$L -lm
 *   GGML_BACKEND_DIR=$L /tmp/gen_embed_ref ../shared "llama.cpp v0.5.0" \
 *      > tests/fixtures/embed_reference.txt
 * (GGML_BACKEND_DIR: where the CPU backend libraries are; ggml picks the
 * variant that fits the CPU.)
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int32_t llama_token;
struct llama_model;
struct llama_context;
struct llama_vocab;
/* The parameter structs travel by value; an opaque buffer larger than the
 * real struct works for both the returned defaults and the by-value call
 * (x86-64 SysV passes both in memory, at the same start address). */
typedef struct { unsigned char b[1024]; } opaque_params;
typedef struct {
    int32_t n_tokens;
    llama_token *token;
    float *embd;
    int32_t *pos;
    int32_t *n_seq_id;
    int32_t **seq_id;
    int8_t *logits;
} llama_batch;

void ggml_backend_load_all_from_path(const char *dir);
void llama_backend_init(void);
opaque_params llama_model_default_params(void);
opaque_params llama_context_default_params(void);
struct llama_model *llama_model_load_from_file(const char *path, opaque_params p);
struct llama_context *llama_init_from_model(struct llama_model *m, opaque_params p);
const struct llama_vocab *llama_model_get_vocab(const struct llama_model *m);
int32_t llama_model_n_embd(const struct llama_model *m);
int32_t llama_tokenize(const struct llama_vocab *v, const char *text, int32_t len, llama_token *out,
                       int32_t max, bool add_special, bool parse_special);
void llama_set_embeddings(struct llama_context *c, bool on);
llama_batch llama_batch_get_one(llama_token *tokens, int32_t n);
int32_t llama_decode(struct llama_context *c, llama_batch b);
float *llama_get_embeddings_ith(struct llama_context *c, int32_t i);
void llama_free(struct llama_context *c);
void llama_model_free(struct llama_model *m);

static const char *MODELS[] = {
    "stories260K", "stories260K-F16", "stories260K-BF16", "stories260K-Q8_0", "stories260K-Q4_0",
    "llama-2-tiny-random", "mh-smol-llama-17m-F16", "mh-smol-llama-17m-Q8_0",
    "mh-smol-llama-17m-Q4_0", "mh-smol-llama-17m-Q4_K_M", "mh-tiny-qwen2-BF16", "mh-tiny-qwen2-Q8_0",
};
static const char *TEXTS[] = {
    "Once upon a time, there was a little girl named Lily.",
    "The cat sat on the mat and looked at the rain.",
    "Hello",
};

static int embed_one(struct llama_model *m, const char *model, const char *text)
{
    llama_token toks[256];
    int n = llama_tokenize(llama_model_get_vocab(m), text, (int32_t)strlen(text), toks, 256, true, false);
    if (n <= 0) { fprintf(stderr, "%s: tokenize failed\n", model); return 1; }
    struct llama_context *c = llama_init_from_model(m, llama_context_default_params());
    if (!c) { fprintf(stderr, "%s: no context\n", model); return 1; }
    llama_set_embeddings(c, true);
    if (llama_decode(c, llama_batch_get_one(toks, n))) { fprintf(stderr, "%s: decode failed\n", model); return 1; }
    int d = llama_model_n_embd(m);
    double *sum = calloc((size_t)d, sizeof *sum), norm = 0;
    for (int i = 0; i < n; i++) {
        const float *e = llama_get_embeddings_ith(c, i);
        if (!e) { fprintf(stderr, "%s: no embedding at %d\n", model, i); return 1; }
        for (int j = 0; j < d; j++) sum[j] += e[j];
    }
    for (int j = 0; j < d; j++) norm += (sum[j] / n) * (sum[j] / n);
    norm = sqrt(norm);
    printf("embed %s %d", model, n);
    for (int i = 0; i < n; i++) printf(" %d", toks[i]);
    printf("\n%d", d);
    for (int j = 0; j < d; j++) printf(" %.8g", sum[j] / n / norm);
    printf("\n");
    free(sum);
    llama_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: gen_embed_ref SHARED_DIR [LABEL]\n"); return 2; }
    ggml_backend_load_all_from_path(getenv("GGML_BACKEND_DIR"));
    llama_backend_init();
    int nm = (int)(sizeof MODELS / sizeof *MODELS), nt = (int)(sizeof TEXTS / sizeof *TEXTS), bad = 0;
    printf("MHEMBREF 1\n");
    printf("# llama.cpp mean-pooled, L2-normalized final hidden states, from tests/tools/gen_embed_ref.c over %s\n",
           argc > 2 ? argv[2] : "libllama");
    printf("# per entry: embed MODEL N_TOKENS IDS..., then N_EMBD VALUES...; do not edit\n");
    printf("entries %d\n", nm * nt);
    for (int k = 0; k < nm; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/models/%s.gguf", argv[1], MODELS[k]);
        struct llama_model *m = llama_model_load_from_file(path, llama_model_default_params());
        if (!m) { fprintf(stderr, "cannot load %s\n", path); return 1; }
        for (int t = 0; t < nt; t++) bad |= embed_one(m, MODELS[k], TEXTS[t]);
        llama_model_free(m);
    }
    return bad;
}
