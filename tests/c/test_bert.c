/* test_bert.c: encoder embedding models (bert, nomic-bert) against
 * llama.cpp c392e5094's llama-embedding (tests/fixtures/bert, made by
 * tests/tools/make_bert_fixtures.sh), plus batching, pooling, normalisation
 * and refusals. Each case writes its tiny model with mh_create_model from
 * the preset the fixture recorded, so no model file is committed. */
#include <cJSON.h>
#include <dirent.h>
#include "fixture_json.h"
#include "harness.h"
#include "mh/create.h"
#include "mh/gguf.h"
#include "mh/model.h"
#include "mh/tokenizer.h"

#define FIXDIR "tests/fixtures/bert/"

static char tmpdir[64] = "/tmp/mh_test_bert_XXXXXX";

/* Writes fixture fx's model into tmpdir (path: 4096 bytes) and loads it. */
static int load_fixture_model(const cJSON *fx, char *path, mh_model **m, mh_err *err)
{
    mh_create_config c;
    config_from(cJSON_GetObjectItem(fx, "config"), &c);
    const char *model = cJSON_GetStringValue(cJSON_GetObjectItem(fx, "model"));
    mh_create_opts o = { .seed = 1 };
    o.ftype = strstr(model, "-F16.") ? MH_FTYPE_F16 : MH_FTYPE_Q8_0;
    snprintf(path, 4096, "%s/%s", tmpdir, model);
    int st = mh_create_model(&c, &o, path, NULL, err);
    return st ? st : mh_model_load(path, m, err);
}

/* The fixture's texts as token arrays (what llama.cpp made of them). */
typedef struct texts {
    int n;
    int32_t *ids[8];
    int64_t len[8];
} texts;

static void texts_from(const cJSON *fx, texts *t)
{
    const cJSON *toks = cJSON_GetObjectItem(fx, "tokens"), *row;
    t->n = 0;
    cJSON_ArrayForEach(row, toks) {
        if (t->n == 8) break;
        int n = cJSON_GetArraySize(row);
        t->ids[t->n] = malloc(sizeof(int32_t) * (size_t)n);
        for (int i = 0; i < n; i++) t->ids[t->n][i] = cJSON_GetArrayItem(row, i)->valueint;
        t->len[t->n++] = n;
    }
}

static void texts_free(texts *t)
{
    for (int i = 0; i < t->n; i++) free(t->ids[i]);
}

/* Max |a - ref| over n values and the cosine of a and ref. */
static void compare(const float *a, const cJSON *ref, int64_t n, double *maxd, double *cosine)
{
    double dot = 0, na = 0, nr = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = cJSON_GetArrayItem(ref, (int)i)->valuedouble;
        *maxd = fmax(*maxd, fabs(a[i] - r));
        dot += a[i] * r;
        na += (double)a[i] * a[i];
        nr += r * r;
    }
    double c = dot / sqrt(na * nr + 1e-30);
    *cosine = fmin(*cosine, c);
}

/* Tolerances (measured on this tree, printed by each case). Pooled vectors
 * are unit length (elements ~0.1), so they are held to wave-1's f16 bound
 * scaled to that size: F16 weights 1e-2 max (measured ~1e-3: llama.cpp
 * rounds activations to f16 before f16 matmuls and runs GELU through an f16
 * table), Q8_0 5e-2 (int8 activations). Hidden states (elements ~1) take
 * test_arch's logit bounds: 0.05 for F16, 0.5 for Q8_0. */
static int check_fixture(const char *name)
{
    char fp[4096], mp[4096];
    snprintf(fp, sizeof fp, FIXDIR "%s", name);
    cJSON *fx = read_json(fp);
    mh_err err = {0};
    mh_model *m = NULL;
    if (!fx || num(fx, "version", 0) != 1 || load_fixture_model(fx, mp, &m, &err)) {
        fprintf(stderr, "  %s: %s\n", name, err.msg);
        cJSON_Delete(fx);
        return 1;
    }
    const bool q8 = strstr(name, "Q8_0") != NULL;
    const int64_t E = mh_model_hparams(m)->n_embd;
    texts t;
    texts_from(fx, &t);
    int bad = 0;
    /* the tokenizer makes the ids llama.cpp made of each text */
    mh_tokenizer *tok = NULL;
    bad |= mh_tokenizer_from_gguf(mh_model_gguf(m), &tok, &err) != MH_OK;
    const cJSON *tx = cJSON_GetObjectItem(fx, "texts");
    for (int i = 0; i < t.n && !bad; i++) {
        mh_tok_ids ids = {0};
        const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(tx, i));
        bad |= mh_tokenizer_encode(tok, s, strlen(s), NULL, &ids, &err) != MH_OK;
        bad |= ids.n != (size_t)t.len[i] || memcmp(ids.v, t.ids[i], ids.n * sizeof(int32_t)) != 0;
        if (bad) fprintf(stderr, "  %s: text %d tokenizes differently from llama.cpp\n", name, i);
        mh_tok_ids_free(&ids);
    }
    mh_tokenizer_free(tok);
    /* pooled: all texts in one batch */
    float *out = malloc(sizeof(float) * (size_t)(t.n * E)), *hid = malloc(sizeof(float) * (size_t)(t.len[0] * E));
    double pmax = 0, pcos = 1, hmax = 0, hcos = 1;
    if (!bad && mh_model_embed_batch(m, (const int32_t *const *)t.ids, t.len, t.n, out, &err)) bad = 1;
    for (int i = 0; i < t.n && !bad; i++)
        compare(out + i * E, cJSON_GetArrayItem(cJSON_GetObjectItem(fx, "embeddings"), i), E, &pmax, &pcos);
    if (!bad && mh_model_encode(m, t.ids[0], t.len[0], hid, &err)) bad = 1;
    for (int64_t p = 0; p < t.len[0] && !bad; p++)
        compare(hid + p * E, cJSON_GetArrayItem(cJSON_GetObjectItem(fx, "hidden"), (int)p), E, &hmax, &hcos);
    if (err.code) fprintf(stderr, "  %s: %s\n", name, err.msg);
    printf("  %-26s pooled |d| max %.1e cos %.6f; hidden |d| max %.1e cos %.6f\n", name, pmax, pcos,
           hmax, hcos);
    double ptol = q8 ? 5e-2 : 1e-2, htol = q8 ? 0.5 : 0.05, ctol = q8 ? 0.995 : 0.9999;
    if (!bad && (pmax > ptol || hmax > htol || pcos < ctol || hcos < ctol)) {
        fprintf(stderr, "  FAIL %s: pooled max %.3g (<= %.3g) hidden max %.3g (<= %.3g) cos %.6f/%.6f "
                "(>= %.4f)\n", name, pmax, ptol, hmax, htol, pcos, hcos, ctol);
        bad = 1;
    }
    free(out);
    free(hid);
    texts_free(&t);
    mh_model_free(m);
    cJSON_Delete(fx);
    unlink(mp);
    return bad;
}

static void test_references(void)
{
    DIR *d = opendir(FIXDIR);
    CHECK_MSG(d != NULL, "cannot open " FIXDIR " (run from the repository root)");
    struct dirent *e;
    int bad = 0, n = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".json")) { bad |= check_fixture(e->d_name); n++; }
    closedir(d);
    CHECK(n == 4);
    CHECK(bad == 0);
}

/* A fixture's model loaded, with its texts. */
static int open_fixture(const char *name, cJSON **fx, mh_model **m, texts *t, char *path)
{
    char fp[4096];
    snprintf(fp, sizeof fp, FIXDIR "%s", name);
    mh_err err = {0};
    *fx = read_json(fp);
    if (!*fx || load_fixture_model(*fx, path, m, &err)) {
        fprintf(stderr, "  %s: %s\n", name, err.msg);
        return 1;
    }
    texts_from(*fx, t);
    return 0;
}

static void close_fixture(cJSON *fx, mh_model *m, texts *t, const char *path)
{
    texts_free(t);
    mh_model_free(m);
    cJSON_Delete(fx);
    unlink(path);
}

/* Each text of a batch gets the vector it gets alone (texts attend only to
 * themselves), and every vector has unit length. */
static void test_batch_equals_alone(void)
{
    static const char *const names[] = { "tiny-bert-Q8_0.json", "tiny-nomic-bert-F16.json" };
    for (int k = 0; k < 2; k++) {
        cJSON *fx; mh_model *m = NULL; texts t; char path[4096];
        CHECK(open_fixture(names[k], &fx, &m, &t, path) == 0);
        const int64_t E = mh_model_hparams(m)->n_embd;
        float *all = malloc(sizeof(float) * (size_t)(t.n * E)), *one = malloc(sizeof(float) * (size_t)E);
        mh_err err = {0};
        int st = mh_model_embed_batch(m, (const int32_t *const *)t.ids, t.len, t.n, all, &err);
        double maxd = 0, worst_norm = 0;
        for (int i = 0; i < t.n && !st; i++) {
            st = mh_model_embed(m, t.ids[i], t.len[i], one, &err);
            double nn = 0;
            for (int64_t j = 0; j < E; j++) {
                maxd = fmax(maxd, fabs(one[j] - all[i * E + j]));
                nn += (double)all[i * E + j] * all[i * E + j];
            }
            worst_norm = fmax(worst_norm, fabs(sqrt(nn) - 1));
        }
        free(all);
        free(one);
        close_fixture(fx, m, &t, path);
        CHECK_MSG(st == MH_OK, "%s", err.msg);
        CHECK_MSG(maxd < 1e-5, "%s: batch vs alone differ by %g", names[k], maxd);
        CHECK_MSG(worst_norm < 1e-5, "%s: a vector's length is off 1 by %g", names[k], worst_norm);
    }
}

/* The pooled vector is the normalized CLS row (bert preset) or the
 * normalized mean of the rows (nomic preset): the file's pooling_type. */
static void test_pooling_from_file(void)
{
    static const char *const names[] = { "tiny-bert-F16.json", "tiny-nomic-bert-Q8_0.json" };
    static const mh_pooling want[] = { MH_POOL_CLS, MH_POOL_MEAN };
    for (int k = 0; k < 2; k++) {
        cJSON *fx; mh_model *m = NULL; texts t; char path[4096];
        CHECK(open_fixture(names[k], &fx, &m, &t, path) == 0);
        const mh_hparams *hp = mh_model_hparams(m);
        const int64_t E = hp->n_embd, n = t.len[2];
        bool pool_ok = hp->pooling == want[k] && mh_model_is_encoder(m);
        float *h = malloc(sizeof(float) * (size_t)(n * E)), *v = malloc(sizeof(float) * (size_t)E);
        double *ref = calloc((size_t)E, sizeof(double)), norm = 0, maxd = 0;
        mh_err err = {0};
        int st = mh_model_encode(m, t.ids[2], n, h, &err);
        if (!st) st = mh_model_embed(m, t.ids[2], n, v, &err);
        for (int64_t j = 0; j < E && !st; j++) {
            for (int64_t p = 0; p < n; p++) ref[j] += want[k] == MH_POOL_CLS ? (p ? 0 : h[j]) : h[p * E + j] / (double)n;
            norm += ref[j] * ref[j];
        }
        for (int64_t j = 0; j < E && !st; j++) maxd = fmax(maxd, fabs(v[j] - ref[j] / sqrt(norm)));
        free(h);
        free(v);
        free(ref);
        close_fixture(fx, m, &t, path);
        CHECK_MSG(st == MH_OK, "%s", err.msg);
        CHECK(pool_ok);
        CHECK_MSG(maxd < 1e-5, "%s: pooled vector off the %s of the states by %g", names[k],
                  k ? "mean" : "CLS row", maxd);
    }
}

/* Overwrites the value (u32, or a bool's one byte) of metadata key `key`
 * in a GGUF file: the value follows the key string and its 4-byte type. */
static int patch_u32(const char *path, const char *key, uint32_t v, size_t width)
{
    FILE *f = fopen(path, "r+b");
    if (!f) return -1;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f), kl = strlen(key);
    int rc = -1;
    for (size_t i = 0; i + kl + 8 <= n; i++)
        if (!memcmp(buf + i, key, kl)) {
            fseek(f, (long)(i + kl + 4), SEEK_SET);
            rc = fwrite(&v, width, 1, f) == 1 ? 0 : -1;   /* little-endian host */
            break;
        }
    fclose(f);
    return rc;
}

/* A bert file whose metadata no longer fits its tensors, or that asks for
 * what we do not run, is refused with a message naming the problem. */
static void test_bad_files(void)
{
    static const struct { const char *key; uint32_t v; size_t w; const char *msg; } cases[] = {
        { "bert.feed_forward_length", 96, 4, "blk.0.ffn_up.weight' has shape" },
        { "bert.embedding_length", 48, 4, "has shape" },
        { "bert.pooling_type", 4, 4, "pooling_type 4 is not supported" },
        { "bert.attention.causal", 1, 1, "causal attention is not supported" },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cJSON *fx = read_json(FIXDIR "tiny-bert-F16.json");
        mh_create_config c;
        config_from(cJSON_GetObjectItem(fx, "config"), &c);
        cJSON_Delete(fx);
        char path[4096];
        snprintf(path, sizeof path, "%s/bad.gguf", tmpdir);
        mh_create_opts o = { .seed = 1, .ftype = MH_FTYPE_F16 };
        mh_err err = {0};
        CHECK(mh_create_model(&c, &o, path, NULL, &err) == MH_OK);
        CHECK(patch_u32(path, cases[k].key, cases[k].v, cases[k].w) == 0);
        mh_model *m = NULL;
        int st = mh_model_load(path, &m, &err);
        mh_model_free(m);
        unlink(path);
        CHECK_MSG(st == MH_EFORMAT && strstr(err.msg, cases[k].msg), "%s = %u: got %d '%s'",
                  cases[k].key, cases[k].v, st, err.msg);
    }
}

/* Texts past the context, bad ids and decoder calls are refused. */
static void test_refusals(void)
{
    cJSON *fx; mh_model *m = NULL; texts t; char path[4096];
    CHECK(open_fixture("tiny-bert-Q8_0.json", &fx, &m, &t, path) == 0);
    int32_t ids[65] = {0};
    for (int i = 0; i < 65; i++) ids[i] = 5;
    float out[64 * 4];
    mh_err e1 = {0}, e2 = {0}, e3 = {0}, e4 = {0};
    int s1 = mh_model_embed(m, ids, 65, out, &e1);        /* n_ctx 64 */
    int s2 = mh_model_embed(m, ids, 64, out, &e2);
    ids[3] = 100000;
    int s3 = mh_model_embed(m, ids, 8, out, &e3);
    mh_kv_cache *c = mh_kv_cache_new(m, 16, &e4);
    int s4 = c ? mh_model_forward(m, c, ids, 2, NULL, false, &e4) : -1;
    mh_kv_cache_free(c);
    close_fixture(fx, m, &t, path);
    CHECK_MSG(s1 == MH_EINVAL && strstr(e1.msg, "at most 64"), "%s", e1.msg);
    CHECK_MSG(s2 == MH_OK, "%s", e2.msg);
    CHECK_MSG(s3 == MH_EINVAL && strstr(e3.msg, "outside the vocabulary"), "%s", e3.msg);
    CHECK_MSG(s4 == MH_EINVAL && strstr(e4.msg, "is an embedding model"), "%s", e4.msg);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    TEST_RUN(test_references);
    TEST_RUN(test_batch_equals_alone);
    TEST_RUN(test_pooling_from_file);
    TEST_RUN(test_bad_files);
    TEST_RUN(test_refusals);
    rmdir(tmpdir);
    return TEST_REPORT();
}
