/* test_embed_ref.c: mh_model_embed against llama.cpp's mean-pooled,
 * L2-normalized embeddings of the same token ids on the shared models
 * (tests/fixtures/embed_reference.txt, written by tests/tools/gen_embed_ref.c).
 * Layer: tests (C); uses engine/model. Needs the shared models. */
#include <stdint.h>
#include "harness.h"
#include "mh/model.h"

#define FIXTURE "tests/fixtures/embed_reference.txt"
enum { MAXT = 256, MAXD = 4096 };

/* Smallest allowed cosine per file: 1 - cos at most ~10x the measured one
 * (in the comment: the worst of the three texts). F32/F16 files stay above
 * 0.9999 by far. Quantized files differ more: llama.cpp's CPU variant for
 * this machine (zen4) quantizes activations and sums its dots its own way. */
static const struct { const char *model; double min_cos; } LIMITS[] = {
    {"stories260K", 0.999997},             /* 1 - cos 2.4e-7 */
    {"stories260K-F16", 0.999996},         /* 4.1e-7 */
    {"stories260K-BF16", 0.9999},          /* 9.1e-6 */
    {"stories260K-Q8_0", 0.9994},          /* 6.1e-5 */
    {"stories260K-Q4_0", 0.9995},          /* 4.5e-5 */
    {"llama-2-tiny-random", 0.99999999},   /* 1.1e-9 */
    {"mh-smol-llama-17m-F16", 0.999996},   /* 3.7e-7 */
    {"mh-smol-llama-17m-Q8_0", 0.9988},    /* 1.2e-4 */
    {"mh-smol-llama-17m-Q4_0", 0.998},     /* 2.0e-4 */
    {"mh-smol-llama-17m-Q4_K_M", 0.996},   /* 3.8e-4 */
    {"mh-tiny-qwen2-BF16", 0.99992},       /* 7.8e-6 */
    {"mh-tiny-qwen2-Q8_0", 0.9996},        /* 4.0e-5 */
};

static double limit_for(const char *model)
{
    for (size_t i = 0; i < sizeof LIMITS / sizeof *LIMITS; i++)
        if (!strcmp(LIMITS[i].model, model)) return LIMITS[i].min_cos;
    return 2.0;   /* unknown model: fails, so the table is kept complete */
}

static double cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
    return ab / sqrt(aa * bb);
}

/* One entry: embeds the ids with m and returns the cosine, or -2 on error. */
static double check_entry(FILE *f, mh_model **m, char *loaded, char *model)
{
    int n, d;
    int32_t ids[MAXT];
    static float want[MAXD], got[MAXD];
    if (fscanf(f, " embed %127s %d", model, &n) != 2 || n < 1 || n > MAXT) return -2;
    for (int i = 0; i < n; i++) if (fscanf(f, "%d", &ids[i]) != 1) return -2;
    if (fscanf(f, "%d", &d) != 1 || d < 1 || d > MAXD) return -2;
    for (int j = 0; j < d; j++) if (fscanf(f, "%f", &want[j]) != 1) return -2;
    if (strcmp(loaded, model)) {
        char rel[256], p[4096];
        mh_model_free(*m);
        *m = NULL;
        loaded[0] = 0;
        snprintf(rel, sizeof rel, "models/%s.gguf", model);
        mh_err err = {0};
        if (!test_data_path(rel, p)) return -3;
        if (mh_model_load(p, m, &err)) { fprintf(stderr, "  %s: %s\n", rel, err.msg); return -2; }
        strcpy(loaded, model);
    }
    if (mh_model_hparams(*m)->n_embd != d) return -2;
    mh_err err = {0};
    if (mh_model_embed(*m, ids, n, got, &err)) { fprintf(stderr, "  %s: %s\n", model, err.msg); return -2; }
    double norm = 0;   /* the cosine does not see the scale: check the L2 norm apart */
    for (int j = 0; j < d; j++) norm += (double)got[j] * got[j];
    if (fabs(sqrt(norm) - 1) > 1e-5) { fprintf(stderr, "  %s: |embedding| = %.7f, want 1\n", model, sqrt(norm)); return -1; }
    return cosine(got, want, d);
}

static void test_llama_reference_embeddings(void)
{
    FILE *f = fopen(FIXTURE, "r");
    CHECK_MSG(f, "cannot open %s (run from the repository root)", FIXTURE);
    char magic[16] = "", line[512], model[128] = "", loaded[128] = "";
    int version = 0, entries = 0, seen = 0, bad = 0;
    if (fscanf(f, "%15s %d ", magic, &version) != 2 || strcmp(magic, "MHEMBREF") || version != 1) {
        fclose(f);
        CHECK_MSG(0, "%s: want MHEMBREF 1, got %s %d", FIXTURE, magic, version);
    }
    while (fgets(line, sizeof line, f) && line[0] == '#') {}
    sscanf(line, "entries %d", &entries);
    mh_model *m = NULL;
    double worst = 1.0;
    for (; seen < entries; seen++) {
        double c = check_entry(f, &m, loaded, model);
        if (c == -3) { fclose(f); mh_model_free(m); TEST_SKIP("a shared model of " FIXTURE " is missing"); }
        if (c == -2) break;
        double lim = limit_for(model);
        if (1 - c > 1 - worst) worst = c;
        printf("  %-26s cosine %.9f (1 - cos %.1e)\n", model, c, 1 - c);
        if (!(c >= lim)) { fprintf(stderr, "  %s: cosine %.9f < %.6f\n", model, c, lim); bad++; }
    }
    fclose(f);
    mh_model_free(m);
    CHECK_MSG(entries >= 30 && seen == entries, "read %d of %d entries", seen, entries);
    CHECK_MSG(bad == 0, "%d embeddings differ from llama.cpp's (worst cosine %.9f)", bad, worst);
}

int main(void)
{
    TEST_RUN(test_llama_reference_embeddings);
    return TEST_REPORT();
}
