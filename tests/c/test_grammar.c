/* test_grammar.c: JSON / JSON-schema constrained decoding (mh/grammar.h):
 * schema errors, accepting and rejecting fixed documents, and sampling under
 * the mask (uniform logits, and real models with random or tiny weights)
 * where every finished output must parse with cJSON and validate against the
 * schema, with end-of-generation only after completion. */
#include <time.h>
#include <cJSON.h>
#include "harness.h"
#include "mh/grammar.h"
#include "mh/model.h"
#include "mh/sample.h"
#include "mh/sched.h"
#include "mh/tokenizer.h"

#define SMOL "models/mh-smol-llama-17m-Q8_0.gguf"
#define STORIES "models/stories260K.gguf"

static const char *SCHEMA =
    "{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\",\"maxLength\":12},"
    "\"age\":{\"type\":\"integer\"},"
    "\"mood\":{\"enum\":[\"happy\",\"sad\",null]},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":4},\"minItems\":1,\"maxItems\":3},"
    "\"pos\":{\"$ref\":\"#/$defs/point\"},"
    "\"alive\":{\"type\":\"boolean\"},"
    "\"score\":{\"anyOf\":[{\"type\":\"number\"},{\"type\":\"null\"}]}},"
    "\"required\":[\"name\",\"age\",\"mood\",\"tags\",\"pos\"],\"additionalProperties\":false,"
    "\"$defs\":{\"point\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"},"
    "\"y\":{\"const\":0}},\"required\":[\"x\",\"y\"]}}}";

/* ===== a validator for the supported subset ===== */

static long utf8_len(const char *s)
{
    long n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool valid(const cJSON *v, const cJSON *s, const cJSON *root);

static bool type_ok(const cJSON *v, const char *t)
{
    if (!strcmp(t, "object")) return cJSON_IsObject(v);
    if (!strcmp(t, "array")) return cJSON_IsArray(v);
    if (!strcmp(t, "string")) return cJSON_IsString(v);
    if (!strcmp(t, "number")) return cJSON_IsNumber(v);
    if (!strcmp(t, "integer")) return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    if (!strcmp(t, "boolean")) return cJSON_IsBool(v);
    if (!strcmp(t, "null")) return cJSON_IsNull(v);
    return false;
}

static bool object_ok(const cJSON *v, const cJSON *s, const cJSON *root)
{
    const cJSON *props = cJSON_GetObjectItem(s, "properties"), *r, *m;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(s, "required"))
        if (!cJSON_GetObjectItem(v, r->valuestring)) return false;
    cJSON_ArrayForEach(m, v) {
        const cJSON *ps = props ? cJSON_GetObjectItem(props, m->string) : NULL;
        if (props && !ps) return false;           /* we always build additionalProperties: false */
        if (ps && !valid(m, ps, root)) return false;
    }
    return true;
}

static bool valid(const cJSON *v, const cJSON *s, const cJSON *root)
{
    const cJSON *k;
    if ((k = cJSON_GetObjectItem(s, "$ref"))) {
        const cJSON *defs = cJSON_GetObjectItem(root, "$defs");
        return valid(v, cJSON_GetObjectItem(defs, strrchr(k->valuestring, '/') + 1), root);
    }
    if ((k = cJSON_GetObjectItem(s, "anyOf"))) {
        const cJSON *a;
        cJSON_ArrayForEach(a, k) if (valid(v, a, root)) return true;
        return false;
    }
    if ((k = cJSON_GetObjectItem(s, "const"))) return cJSON_Compare(v, k, true);
    if ((k = cJSON_GetObjectItem(s, "enum"))) {
        const cJSON *a;
        cJSON_ArrayForEach(a, k) if (cJSON_Compare(v, a, true)) return true;
        return false;
    }
    if ((k = cJSON_GetObjectItem(s, "type")) && !type_ok(v, k->valuestring)) return false;
    if (cJSON_IsObject(v)) return object_ok(v, s, root);
    if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        if ((k = cJSON_GetObjectItem(s, "minItems")) && n < k->valueint) return false;
        if ((k = cJSON_GetObjectItem(s, "maxItems")) && n > k->valueint) return false;
        const cJSON *items = cJSON_GetObjectItem(s, "items"), *e;
        cJSON_ArrayForEach(e, v) if (items && !valid(e, items, root)) return false;
    }
    if (cJSON_IsString(v)) {
        long n = utf8_len(v->valuestring);
        if ((k = cJSON_GetObjectItem(s, "minLength")) && n < k->valueint) return false;
        if ((k = cJSON_GetObjectItem(s, "maxLength")) && n > k->valueint) return false;
    }
    return true;
}

/* ===== helpers ===== */

static mh_tokenizer *load_tok(const char *rel)
{
    char p[4096];
    mh_tokenizer *t = NULL;
    if (!test_data_path(rel, p) || mh_tokenizer_load(p, &t, NULL)) return NULL;
    return t;
}

/* Accepts text's tokens one by one; returns how many were accepted. */
static int feed(mh_grammar *g, const mh_tokenizer *t, const char *text, int *n_ids)
{
    mh_tok_encode_opts o = { 0, 0, false };
    mh_tok_ids ids = {0};
    mh_tokenizer_encode(t, text, strlen(text), &o, &ids, NULL);
    int i = 0;
    for (; i < (int)ids.n; i++) if (mh_grammar_accept(g, ids.v[i], NULL)) break;
    *n_ids = (int)ids.n;
    mh_tok_ids_free(&ids);
    return i;
}

static int32_t first_eog(const mh_tokenizer *t)
{
    for (int32_t i = 0; i < mh_tokenizer_n_vocab(t); i++) if (mh_tokenizer_is_eog(t, i)) return i;
    return -1;
}

/* ===== cases ===== */

static void test_schema_errors(void)
{
    mh_tokenizer *t = load_tok(STORIES);
    if (!t) TEST_SKIP(STORIES " not found");
    struct { const char *schema, *want; int code; } cases[] = {
        { "{\"type\":\"string\",\"pattern\":\"^a\"}", "unsupported schema keyword 'pattern'", MH_EINVAL },
        { "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":3}}}",
          "#/properties/n: unsupported schema keyword 'minimum'", MH_EINVAL },
        { "{\"type\":\"strin\"}", "unknown type 'strin'", MH_EINVAL },
        { "{\"$ref\":\"http://x/s.json\"}", "only local '$ref'", MH_EINVAL },
        { "{\"$ref\":\"#/$defs/nope\"}", "does not exist", MH_EINVAL },
        { "{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "minItems 3 > maxItems 2", MH_EINVAL },
        { "{\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "required property 'b'", MH_EINVAL },
        { "{\"allOf\":[{},{}]}", "'allOf' is supported with exactly one", MH_EINVAL },
        { "{\"anyOf\":[{}],\"type\":\"object\"}", "combined with", MH_EINVAL },
        { "{\"type\":\"string\",\"maxLength\":100000}", "above the supported", MH_EINVAL },
        /* found by fuzz_grammar: a bound past any integer type (UB when cast first) */
        { "{\"type\":\"string\",\"maxLength\":1.1e54}", "above the supported", MH_EINVAL },
        { "{\"type\":\"string\",\"maxLength\":2.5}", "non-negative integer", MH_EINVAL },
        { "{\"type\":\"string\",\"maxLength\":-1}", "non-negative integer", MH_EINVAL },
        { "{\"$ref\":\"#\"}", "left recursion", MH_EINVAL },
        { "false", "allows no value", MH_EINVAL },
        { "{\"type\": ", "not valid JSON", MH_EFORMAT },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mh_err err = {0};
        mh_grammar *g = mh_grammar_json_schema(cases[i].schema, t, &err);
        CHECK_MSG(!g && err.code == cases[i].code && strstr(err.msg, cases[i].want),
                  "%s -> %s", cases[i].schema, err.msg);
    }
    mh_err err = {0};
    CHECK(!mh_grammar_json_schema(NULL, t, &err) && err.code == MH_EINVAL);
    CHECK(!mh_grammar_json_object(NULL, &err) && err.code == MH_EINVAL);
    /* metadata and formats are ignored, not errors */
    mh_grammar *g = mh_grammar_json_schema("{\"title\":\"T\",\"type\":\"string\",\"format\":\"date\"}", t, &err);
    CHECK(g);
    mh_grammar_free(g);
    mh_tokenizer_free(t);
}

static void test_fixed_documents(void)
{
    mh_tokenizer *t = load_tok(SMOL);
    if (!t) TEST_SKIP(SMOL " not found");
    const char *good[] = {
        "{\"name\": \"Bo\", \"age\": 7, \"mood\": null, \"tags\": [\"a\"], \"pos\": {\"x\": -1.5e3, \"y\": 0}}",
        "{\"name\":\"\\u00e9t\u00e9\",\"age\":-0,\"mood\":\"sad\",\"tags\":[\"ab\",\"\"],\"pos\":{\"x\":2,\"y\":0},\"score\":null}",
        "{\n  \"name\": \"x\",\n  \"age\": 1,\n  \"mood\": \"happy\",\n  \"tags\": [\"q\"],\n  \"pos\": {\"x\": 0, \"y\": 0},\n  \"alive\": true\n}",
    };
    const char *bad[] = {
        "{\"age\": 7}",                                          /* required name missing */
        "{\"name\": \"Bo\", \"name\": \"x\"}",                     /* no repeats */
        "{\"name\": \"this name is too long\"}",                 /* maxLength */
        "{\"name\": \"B\", \"age\": 7.5}",                         /* integer */
        "{\"name\": \"B\", \"age\": 7, \"mood\": \"angry\"}",        /* enum */
        "{\"name\": \"B\", \"age\": 7, \"mood\": null, \"tags\": []}",   /* minItems */
        "{\"name\": \"B\", \"age\": 01}",                          /* leading zero */
        "{\"name\": \"\\ud800\"}",                                /* lone surrogate */
        "{\"name\": \"B\"                      ,",                         /* too much whitespace */
    };
    mh_err err = {0};
    mh_grammar *g = mh_grammar_json_schema(SCHEMA, t, &err);
    CHECK_MSG(g, "%s", err.msg);
    int32_t eog = first_eog(t);
    CHECK(eog >= 0);
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        mh_grammar_reset(g);
        CHECK(!mh_grammar_done(g) && !mh_grammar_allows(g, eog));
        int n, got = feed(g, t, good[i], &n);
        CHECK_MSG(got == n, "doc %zu stopped at token %d of %d: %s", i, got, n, mh_grammar_last_error(g));
        CHECK(mh_grammar_done(g) && mh_grammar_allows(g, eog));
        CHECK(mh_grammar_accept(g, eog, &err) == MH_OK);
        CHECK(mh_grammar_accept(g, eog, &err) == MH_EINVAL);   /* already ended */
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mh_grammar_reset(g);
        int n, got = feed(g, t, bad[i], &n);
        CHECK_MSG(got < n, "bad doc %zu was accepted", i);
        CHECK(strstr(mh_grammar_last_error(g), "not allowed here"));
    }
    mh_grammar_reset(g);
    CHECK(mh_grammar_accept(g, eog, &err) == MH_EINVAL && strstr(err.msg, "before the JSON value"));
    CHECK(mh_grammar_accept(g, -1, &err) == MH_EINVAL && mh_grammar_accept(g, 1 << 30, &err) == MH_EINVAL);
    mh_grammar_free(g);
    mh_tokenizer_free(t);
}

/* The mask (trie walk, plain-token shortcut) allows exactly the ids that
 * mh_grammar_allows (one token at a time) does. */
static bool mask_agrees(mh_grammar *g, const float *masked, int64_t V)
{
    for (int64_t i = 0; i < V; i++)
        if ((masked[i] != -INFINITY) != mh_grammar_allows(g, (int32_t)i)) {
            fprintf(stderr, "  mask and allows disagree on id %lld\n", (long long)i);
            return false;
        }
    return true;
}

/* Samples n_runs documents from logits given by fill (NULL: uniform),
 * masked by g; checks EOG only after completion and that every finished
 * document parses and validates. Returns finished count via *done. */
typedef int (*fill_fn)(void *ud, const int32_t *ids, int n, float *logits);

static int sample_runs(mh_grammar *g, const mh_tokenizer *t, const char *schema, int n_runs,
                       int max_tokens, int64_t V, fill_fn fill, void *ud, int *done, double *mask_ms /* (2) mean, max */)
{
    cJSON *sch = schema ? cJSON_Parse(schema) : NULL;
    float *lg = malloc(sizeof *lg * (size_t)V);
    int32_t ids[512];
    int bad = 0;
    double t_mask = 0, max_ms = 0;
    long n_mask = 0;
    *done = 0;
    for (int run = 0; run < n_runs && !bad; run++) {
        mh_sampler_params p;
        mh_sampler_params_init(&p);
        p.seed = (uint64_t)run + 1;
        mh_sampler *s = mh_sampler_new(&p, V, NULL);
        mh_grammar_reset(g);
        int n = 0;
        bool ended = false;
        while (n < max_tokens && !bad) {
            if (fill) bad |= fill(ud, ids, n, lg);
            else for (int64_t i = 0; i < V; i++) lg[i] = 0;
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            int64_t allowed = mh_grammar_mask(g, lg, V, NULL);
            clock_gettime(CLOCK_MONOTONIC, &b);
            double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
            t_mask += ms;
            if (ms > max_ms) max_ms = ms;
            n_mask++;
            if (allowed < 1) { fprintf(stderr, "  mask: %s\n", mh_grammar_last_error(g)); bad = 1; break; }
            if (run == 0 && !fill && n % 50 == 0 && !mask_agrees(g, lg, V)) { bad = 1; break; }
            int32_t id = mh_sampler_sample(s, lg, NULL);
            if (mh_tokenizer_is_eog(t, id)) {
                if (!mh_grammar_done(g)) { fprintf(stderr, "  EOG before completion\n"); bad = 1; }
                ended = true;
                break;
            }
            if (mh_grammar_accept(g, id, NULL)) { fprintf(stderr, "  accept: %s\n", mh_grammar_last_error(g)); bad = 1; }
            ids[n++] = id;
        }
        mh_sampler_free(s);
        if (!ended || bad) continue;
        (*done)++;
        mh_tok_buf out = {0};
        mh_tokenizer_decode(t, ids, (size_t)n, 0, &out, NULL);
        char *txt = strndup(out.p ? out.p : "", out.n);
        cJSON *v = cJSON_Parse(txt);
        if (!v || (sch && !valid(v, sch, sch)) || (!sch && !cJSON_IsObject(v))) {
            fprintf(stderr, "  run %d: invalid output: %s\n", run, txt);
            bad = 1;
        }
        cJSON_Delete(v);
        free(txt);
        mh_tok_buf_free(&out);
    }
    free(lg);
    cJSON_Delete(sch);
    if (mask_ms) { mask_ms[0] = n_mask ? t_mask / (double)n_mask : 0; mask_ms[1] = max_ms; }
    return bad;
}

static void test_uniform_sampling(void)
{
    const char *toks[] = { SMOL, STORIES };
    for (int k = 0; k < 2; k++) {
        mh_tokenizer *t = load_tok(toks[k]);
        if (!t) TEST_SKIP("tokenizer model not found");
        int64_t V = mh_tokenizer_n_vocab(t);
        mh_err err = {0};
        mh_grammar *gs = mh_grammar_json_schema(SCHEMA, t, &err), *go = mh_grammar_json_object(t, &err);
        CHECK_MSG(gs && go, "%s", err.msg);
        int done_s, done_o;
        double ms_s[2], ms_o[2];
        CHECK(!sample_runs(gs, t, SCHEMA, 20, 200, V, NULL, NULL, &done_s, ms_s));
        CHECK(!sample_runs(go, t, NULL, 20, 200, V, NULL, NULL, &done_o, ms_o));
        printf("  %s: uniform: schema %d/20 finished (mask mean %.3f max %.3f ms), "
               "json_object %d/20 (mask mean %.3f max %.3f ms)\n",
               toks[k], done_s, ms_s[0], ms_s[1], done_o, ms_o[0], ms_o[1]);
        CHECK(done_o > 0);
        mh_grammar_free(gs);
        mh_grammar_free(go);
        mh_tokenizer_free(t);
    }
}

typedef struct model_run { mh_model *m; mh_kv_cache *c; int32_t bos; } model_run;

/* Logits of the model after [bos, ids...]; a fresh cache at n == 0. */
static int model_fill(void *ud, const int32_t *ids, int n, float *logits)
{
    model_run *r = ud;
    if (n == 0) mh_kv_cache_truncate(r->c, 0);
    const int32_t *tok = n == 0 ? &r->bos : &ids[n - 1];
    return mh_model_forward(r->m, r->c, tok, 1, logits, false, NULL) != MH_OK;
}

static void test_model_sampling(void)
{
    const char *models[] = { SMOL, STORIES };
    int max_tok[] = { 60, 200 }, runs[] = { 3, 6 };
    for (int k = 0; k < 2; k++) {
        char p[4096];
        if (!test_data_path(models[k], p)) TEST_SKIP("model not found");
        model_run r = {0};
        mh_tokenizer *t = NULL;
        CHECK(mh_model_load(p, &r.m, NULL) == MH_OK && mh_tokenizer_load(p, &t, NULL) == MH_OK);
        r.c = mh_kv_cache_new(r.m, 256, NULL);
        r.bos = mh_tokenizer_special(t)->bos >= 0 ? mh_tokenizer_special(t)->bos : 0;
        int64_t V = mh_model_hparams(r.m)->n_vocab;
        mh_grammar *gs = mh_grammar_json_schema(SCHEMA, t, NULL), *go = mh_grammar_json_object(t, NULL);
        CHECK(gs && go && r.c);
        int done_s, done_o;
        double ms[2];
        CHECK(!sample_runs(gs, t, SCHEMA, runs[k], max_tok[k], V, model_fill, &r, &done_s, ms));
        CHECK(!sample_runs(go, t, NULL, runs[k], max_tok[k], V, model_fill, &r, &done_o, NULL));
        printf("  %s: model: schema %d/%d finished, json_object %d/%d\n", models[k], done_s, runs[k],
               done_o, runs[k]);
        mh_grammar_free(gs);
        mh_grammar_free(go);
        mh_kv_cache_free(r.c);
        mh_model_free(r.m);
        mh_tokenizer_free(t);
    }
}

static void test_constraint_hook(void)
{
    mh_tokenizer *t = load_tok(STORIES);
    if (!t) TEST_SKIP(STORIES " not found");
    mh_grammar *g = mh_grammar_json_object(t, NULL);
    CHECK(g);
    mh_sample_constraint c;
    mh_grammar_as_constraint(g, &c);
    int64_t V = mh_tokenizer_n_vocab(t);
    float *lg = calloc((size_t)V, sizeof *lg);
    CHECK(c.ud == g && c.mask(c.ud, lg, V) == 0);
    int32_t eog = first_eog(t), open = -1;
    for (int32_t i = 0; i < V; i++) if (lg[i] == 0) {
        const char *s = mh_tokenizer_text(t, i, &(size_t){0});
        if (s && s[0] == '{') open = i;
    }
    CHECK(lg[eog] == -INFINITY);                 /* nothing complete yet */
    CHECK(c.accept(c.ud, eog) != 0 && strstr(mh_grammar_last_error(g), "before the JSON"));
    if (open >= 0) CHECK(c.accept(c.ud, open) == 0);
    free(lg);
    c.free(c.ud);
    mh_tokenizer_free(t);
}

int main(void)
{
    TEST_RUN(test_schema_errors);
    TEST_RUN(test_fixed_documents);
    TEST_RUN(test_uniform_sampling);
    TEST_RUN(test_model_sampling);
    TEST_RUN(test_constraint_hook);
    return TEST_REPORT();
}
