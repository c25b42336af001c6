/* llamacpp_ref.c: prints llama.cpp's logits for a token list, the reference
 * half of tests/tools/ref_llamacpp.py. Layer: tests/tools (a developer tool
 * linked against a llama.cpp build outside the repository; never built by
 * make). Build (llama.cpp c392e5094, static, CPU, GGML_NATIVE=ON):
 *   cc -O2 -I$LLAMA/include -I$LLAMA/ggml/include llamacpp_ref.c \
 *      $LLAMA/build/src/libllama.a $LLAMA/build/ggml/src/libggml*.a -lstdc++ -lm -fopenmp
 * Usage: llamacpp_ref MODEL.gguf N_CTX STEPS ID...
 * Output: one line per prompt position ("P" then n_vocab logits), then per
 * greedy step the chosen id and the logits it came from ("G id" ...). As the
 * shared references: n_ctx = n_batch = n_ubatch, 1 thread, F16 K/V, no flash
 * attention; the prompt in one batch, then one token per llama_decode. */
#include <stdio.h>
#include <stdlib.h>
#include "llama.h"

static void row(const char *tag, int id, const float *x, int n)
{
    printf("%s %d", tag, id);
    for (int i = 0; i < n; i++) printf(" %.9g", x[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc < 5) { fprintf(stderr, "usage: llamacpp_ref MODEL N_CTX STEPS ID...\n"); return 2; }
    int n_ctx = atoi(argv[2]), steps = atoi(argv[3]), n = argc - 4;
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *m = llama_model_load_from_file(argv[1], mp);
    if (!m) return 1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = (uint32_t)n_ctx;
    cp.n_threads = cp.n_threads_batch = 1;
    struct llama_context *c = llama_init_from_model(m, cp);
    if (!c) return 1;
    int V = llama_vocab_n_tokens(llama_model_get_vocab(m));
    struct llama_batch b = llama_batch_init(n > 1 ? n : 1, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = atoi(argv[4 + i]);
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n;
    if (llama_decode(c, b)) return 1;
    for (int i = 0; i < n; i++) row("P", i, llama_get_logits_ith(c, i), V);
    const float *last = llama_get_logits_ith(c, n - 1);
    for (int s = 0; s < steps; s++) {
        int am = 0;
        for (int j = 1; j < V; j++) if (last[j] > last[am]) am = j;
        row("G", am, last, V);
        b.n_tokens = 1;
        b.token[0] = am;
        b.pos[0] = n + s;
        b.logits[0] = 1;
        if (llama_decode(c, b)) return 1;
        last = llama_get_logits_ith(c, 0);
    }
    llama_batch_free(b);
    llama_free(c);
    llama_model_free(m);
    return 0;
}
