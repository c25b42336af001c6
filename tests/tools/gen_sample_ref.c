/* gen_sample_ref.c: writes tests/fixtures/sample_reference.txt, the surviving
 * candidates and final probabilities of llama.cpp's sampler chain on fixed
 * logit vectors, which tests/c/test_sample.c compares with mh_sampler.
 * Layer: maintainer tool over llama.cpp's libllama (C API only); make test
 * never builds or runs it. It declares the few llama.h types it needs itself.
 *
 * Build and run (libllama from any llama.cpp build; the committed fixture came
 * from the prebuilt CPU libllama of the npm package @node-llama-cpp/linux-x64
 * 3.22.1, llama.cpp release v0.5.0, installed under /tmp):
 *   L=/tmp/llref/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   cc -O1 -o /tmp/gen_sample_ref tests/tools/gen_sample_ref.c $L/libllama.v0.5.0.so \
 *      -Wl,-rpath,$L -lm
 *   /tmp/gen_sample_ref "llama.cpp v0.5.0" > tests/fixtures/sample_reference.txt
 *
 * Chain per case, as llama.cpp's common sampler orders it and as mh_sampler
 * documents (mh/sample.h): logit_bias -> penalties -> top_k -> top_p ->
 * min_p -> temperature -> dist. A step is added only when it is active. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef int32_t llama_token;
typedef struct { llama_token id; float logit; float p; } llama_token_data;
typedef struct { llama_token_data *data; size_t size; int64_t selected; bool sorted; } llama_token_data_array;
typedef struct { llama_token token; float bias; } llama_logit_bias;
struct llama_sampler;

struct llama_sampler *llama_sampler_init_logit_bias(int32_t n_vocab, int32_t n, const llama_logit_bias *b);
/* this release takes n_vocab first (seen in its test-sampling.cpp and its machine code) */
struct llama_sampler *llama_sampler_init_penalties(int32_t n_vocab, int32_t last_n, float repeat, float freq, float present);
struct llama_sampler *llama_sampler_init_top_k(int32_t k);
struct llama_sampler *llama_sampler_init_top_p(float p, size_t min_keep);
struct llama_sampler *llama_sampler_init_min_p(float p, size_t min_keep);
struct llama_sampler *llama_sampler_init_temp(float t);
struct llama_sampler *llama_sampler_init_dist(uint32_t seed);
void llama_sampler_apply(struct llama_sampler *s, llama_token_data_array *cur);
void llama_sampler_accept(struct llama_sampler *s, llama_token token);
void llama_sampler_free(struct llama_sampler *s);

enum { MAXN = 16 };
#define NINF (-INFINITY)

typedef struct rcase {
    const char *name;
    int n;
    float logits[MAXN];
    int n_bias; llama_logit_bias bias[4];
    int n_hist; llama_token hist[12];
    int last_n; float repeat, freq, pres;
    int top_k; float top_p, min_p, temp;
} rcase;

/* probabilities by id 0.1 0.4 0.05 0.3 0.15 as logits */
#define P5 {-2.30258512f, -0.916290760f, -2.99573231f, -1.20397282f, -1.89711998f}
#define L8 {1.5f, -0.25f, 3.0f, 0.0f, 2.25f, -1.75f, 0.5f, 2.0f}
#define NOPEN 64, 1.0f, 0.0f, 0.0f

static const rcase CASES[] = {
    /* temperature alone scales every logit */
    {"temp_0.7", 8, L8, 0, {{0}}, 0, {0}, NOPEN, 0, 1.0f, 0.0f, 0.7f},
    {"temp_2.5", 8, L8, 0, {{0}}, 0, {0}, NOPEN, 0, 1.0f, 0.0f, 2.5f},
    /* top-k, with a three-way tie across the boundary and an all-equal vector */
    {"top_k_3", 8, L8, 0, {{0}}, 0, {0}, NOPEN, 3, 1.0f, 0.0f, 1.0f},
    {"top_k_tie_boundary", 6, {3, 1, 2, 2, 2, 0}, 0, {{0}}, 0, {0}, NOPEN, 3, 1.0f, 0.0f, 1.0f},
    {"top_k_tie_all", 5, {1, 1, 1, 1, 1}, 0, {{0}}, 0, {0}, NOPEN, 2, 1.0f, 0.0f, 1.0f},
    /* top-p: the shortest prefix whose mass reaches p (>=); equal logits make
     * the boundary exact in float and double, so > and >= differ */
    {"top_p_0.8", 5, P5, 0, {{0}}, 0, {0}, NOPEN, 0, 0.8f, 0.0f, 1.0f},
    {"top_p_exact_half", 4, {2, 2, 2, 2}, 0, {{0}}, 0, {0}, NOPEN, 0, 0.5f, 0.0f, 1.0f},
    {"top_p_exact_3q", 4, {2, 2, 2, 2}, 0, {{0}}, 0, {0}, NOPEN, 0, 0.75f, 0.0f, 1.0f},
    {"top_p_exact_half_topk", 4, {2, 2, 2, 2}, 0, {{0}}, 0, {0}, NOPEN, 3, 0.5f, 0.0f, 1.0f},
    {"top_p_exact_pairs", 6, {1, 1, 0, 0, 3, 3}, 0, {{0}}, 0, {0}, NOPEN, 0, 0.5f, 0.0f, 1.0f},
    {"top_p_tiny", 8, L8, 0, {{0}}, 0, {0}, NOPEN, 0, 0.01f, 0.0f, 1.0f},
    {"top_p_after_top_k", 5, P5, 0, {{0}}, 0, {0}, NOPEN, 3, 0.75f, 0.0f, 1.0f},
    /* min-p: keep p >= min_p * p_max; min_p 1 keeps exactly the tied maxima */
    {"min_p_0.3", 5, P5, 0, {{0}}, 0, {0}, NOPEN, 0, 1.0f, 0.3f, 1.0f},
    {"min_p_1_ties", 6, {2, 1, 2, 0, 2, -1}, 0, {{0}}, 0, {0}, NOPEN, 0, 1.0f, 1.0f, 1.0f},
    {"min_p_after_top_k", 5, P5, 0, {{0}}, 0, {0}, NOPEN, 4, 1.0f, 0.5f, 1.0f},
    /* truncation runs at temperature 1; temperature comes last */
    {"min_p_then_temp", 8, L8, 0, {{0}}, 0, {0}, NOPEN, 0, 1.0f, 0.2f, 0.5f},
    {"top_p_then_temp", 8, L8, 0, {{0}}, 0, {0}, NOPEN, 0, 0.7f, 0.0f, 3.0f},
    /* penalties over the window; repetition divides positive logits and
     * multiplies negative ones (zero stays), then frequency * count + presence */
    {"repeat_1.5", 8, L8, 0, {{0}}, 5, {0, 1, 3, 2, 2}, 64, 1.5f, 0.0f, 0.0f, 0, 1.0f, 0.0f, 1.0f},
    {"freq_pres", 8, L8, 0, {{0}}, 7, {2, 2, 2, 4, 7, 7, 5}, 64, 1.0f, 0.5f, 0.25f, 0, 1.0f, 0.0f, 1.0f},
    {"penalties_all", 8, L8, 0, {{0}}, 6, {2, 4, 4, 1, 1, 1}, 64, 1.2f, 0.3f, 0.7f, 0, 1.0f, 0.0f, 1.0f},
    {"penalty_window_3", 8, L8, 0, {{0}}, 8, {2, 2, 2, 4, 4, 7, 0, 7}, 3, 1.3f, 0.4f, 0.2f, 0, 1.0f, 0.0f, 1.0f},
    {"negative_presence", 8, L8, 0, {{0}}, 2, {5, 1}, 64, 1.0f, 0.0f, -1.5f, 0, 1.0f, 0.0f, 1.0f},
    /* logit bias: adds, bans with -inf, duplicates add up */
    {"bias", 8, L8, 4, {{0, 2.0f}, {2, NINF}, {5, -0.5f}, {5, 3.0f}}, 0, {0}, NOPEN, 0, 1.0f, 0.0f, 1.0f},
    /* the whole chain: bias lifts id 5 into the top-k, the penalty drops id 2
     * below it, top-p and min-p cut at temperature 1, then temperature */
    {"chain_all", 8, L8, 2, {{5, 4.0f}, {3, -0.5f}}, 4, {2, 2, 7, 0}, 64, 1.5f, 0.25f, 0.1f,
     5, 0.9f, 0.1f, 0.8f},
    {"chain_bias_into_top_k", 8, L8, 1, {{1, 3.5f}}, 0, {0}, NOPEN, 2, 1.0f, 0.0f, 1.0f},
    {"chain_penalty_out_of_top_k", 8, L8, 0, {{0}}, 3, {2, 2, 4}, 64, 2.0f, 0.0f, 0.0f, 3, 1.0f, 0.0f, 1.0f},
};

static int run_case(const rcase *c)
{
    llama_token_data d[MAXN];
    for (int i = 0; i < c->n; i++) d[i] = (llama_token_data){i, c->logits[i], 0.0f};
    llama_token_data_array cur = {d, (size_t)c->n, -1, false};
    struct llama_sampler *st[7];
    int ns = 0;
    if (c->n_bias) st[ns++] = llama_sampler_init_logit_bias(c->n, c->n_bias, c->bias);
    if (c->n_hist) {
        struct llama_sampler *pen = llama_sampler_init_penalties(c->n, c->last_n, c->repeat, c->freq, c->pres);
        for (int i = 0; i < c->n_hist; i++) llama_sampler_accept(pen, c->hist[i]);
        st[ns++] = pen;
    }
    if (c->top_k > 0) st[ns++] = llama_sampler_init_top_k(c->top_k);
    if (c->top_p < 1.0f) st[ns++] = llama_sampler_init_top_p(c->top_p, 1);
    if (c->min_p > 0.0f) st[ns++] = llama_sampler_init_min_p(c->min_p, 1);
    if (c->temp != 1.0f) st[ns++] = llama_sampler_init_temp(c->temp);
    st[ns++] = llama_sampler_init_dist(1234);
    for (int i = 0; i < ns; i++) llama_sampler_apply(st[i], &cur);
    double sum = 0;
    for (size_t i = 0; i < cur.size; i++) sum += cur.data[i].p;
    if (fabs(sum - 1.0) > 1e-5) { fprintf(stderr, "%s: probabilities sum to %g\n", c->name, sum); return 1; }

    printf("case %s\nn %d\nlogits", c->name, c->n);
    for (int i = 0; i < c->n; i++) printf(" %.9g", c->logits[i]);
    printf("\nbias %d", c->n_bias);
    for (int i = 0; i < c->n_bias; i++) printf(" %d %.9g", c->bias[i].token, c->bias[i].bias);
    printf("\nhist %d", c->n_hist);
    for (int i = 0; i < c->n_hist; i++) printf(" %d", c->hist[i]);
    printf("\npenalties %d %.9g %.9g %.9g\n", c->last_n, c->repeat, c->freq, c->pres);
    printf("trunc %d %.9g %.9g %.9g\n", c->top_k, c->top_p, c->min_p, c->temp);
    printf("expect %zu", cur.size);
    for (size_t i = 0; i < cur.size; i++) printf(" %d %.9g", cur.data[i].id, cur.data[i].p);
    printf("\n");
    for (int i = 0; i < ns; i++) llama_sampler_free(st[i]);
    return 0;
}

int main(int argc, char **argv)
{
    int n = (int)(sizeof CASES / sizeof CASES[0]), bad = 0;
    printf("MHSAMPREF 1\n");
    printf("# llama.cpp sampler chain on fixed logits, from tests/tools/gen_sample_ref.c over %s\n",
           argc > 1 ? argv[1] : "libllama");
    printf("# per case: inputs, then expect COUNT (ID P)* with P after temperature; do not edit\n");
    printf("cases %d\n", n);
    for (int i = 0; i < n; i++) bad |= run_case(&CASES[i]);
    return bad;
}
