/* test_gguf.c: the GGUF reader on real models and vocab files, and on
 * truncated / corrupted copies (errors, never crashes or wild reads).
 * Layer: tests (C). Needs MOONHUB_TEST_DATA (default ../shared). */
#include "harness.h"
#include "mh/gguf.h"
#include "mh/dtype.h"
#include <math.h>
#include <stdint.h>

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) { free(b); b = NULL; }
    fclose(f);
    *n = (size_t)len;
    return b;
}

static const char *write_tmp(const char *data, size_t n)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/mh_test_gguf_%d.gguf", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

static void test_stories_model(void)
{
    char p[4096];
    if (!test_data_path("models/stories260K.gguf", p)) TEST_SKIP("models/stories260K.gguf");
    mh_gguf *g;
    mh_err e = {0};
    CHECK(mh_gguf_open(p, &g, &e) == MH_OK);
    CHECK(mh_gguf_version(g) == 3);
    CHECK(mh_gguf_n_tensors(g) == 48);
    mh_gguf_str s;
    CHECK(mh_gguf_get_str(g, "general.architecture", &s) && s.len == 5 && !memcmp(s.ptr, "llama", 5));
    int64_t v;
    CHECK(mh_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &v) && v == 1);
    CHECK(!mh_gguf_get_int(g, "general.architecture", &v));     /* wrong type */
    CHECK(!mh_gguf_get_str(g, "no.such.key", &s));
    const mh_gguf_kv *tok = mh_gguf_get_arr(g, "tokenizer.ggml.tokens", MH_GGUF_STRING);
    CHECK(tok && tok->n == 512);
    mh_gguf_str t3 = mh_gguf_arr_str(tok, 3);
    CHECK(t3.len == 6 && !memcmp(t3.ptr, "<0x00>", 6));
    const mh_gguf_kv *sc = mh_gguf_get_arr(g, "tokenizer.ggml.scores", MH_GGUF_FLOAT32);
    CHECK(sc && sc->n == 512);
    const mh_gguf_tensor *te = mh_gguf_find_tensor(g, "token_embd.weight");
    CHECK(te && te->dtype == MH_DTYPE_F32 && te->ne[0] == 64 && te->ne[1] == 512);
    CHECK(te->nbytes == 64 * 512 * 4);
    CHECK((const char *)te->data >= (const char *)0 && te->offset % mh_gguf_alignment(g) == 0);
    CHECK(mh_gguf_data_offset(g) + te->offset + te->nbytes <= mh_gguf_file_size(g));
    CHECK(mh_gguf_find_tensor(g, "nope") == NULL);
    mh_gguf_close(g);
}

static void test_quantized_model(void)
{
    char p[4096];
    if (!test_data_path("models/mh-smol-llama-17m-Q4_K_M.gguf", p)) TEST_SKIP("mh-smol Q4_K_M");
    mh_gguf *g;
    mh_err e = {0};
    CHECK(mh_gguf_open(p, &g, &e) == MH_OK);
    int quant = 0;
    for (int64_t i = 0; i < mh_gguf_n_tensors(g); i++) {
        const mh_gguf_tensor *t = mh_gguf_tensor_at(g, i);
        CHECK(t->dtype >= 0);
        const mh_dtype_traits *tr = mh_dtype_info((mh_dtype)t->dtype);
        quant += tr->is_quant;
        CHECK(t->nbytes == mh_dtype_row_size((mh_dtype)t->dtype, t->ne[0]) * (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]));
    }
    CHECK(quant > 0);
    mh_gguf_close(g);
}

/* A GGUF v3 file with no tensors and 4-byte keys k[0..n) = v[i] of type t
 * (4 = uint32, 6 = float32 bit patterns). */
static size_t tiny_gguf_typed(char *b, const char *const *k, const uint32_t *v, int n,
                              uint32_t t_val)
{
    uint32_t ver = 3;
    uint64_t n_t = 0, n_kv = (uint64_t)n;
    size_t o = 0;
    memcpy(b, "GGUF", 4); o += 4;
    memcpy(b + o, &ver, 4); o += 4;
    memcpy(b + o, &n_t, 8); o += 8;
    memcpy(b + o, &n_kv, 8); o += 8;
    for (int i = 0; i < n; i++) {
        uint64_t l = strlen(k[i]);
        memcpy(b + o, &l, 8); o += 8;
        memcpy(b + o, k[i], l); o += l;
        memcpy(b + o, &t_val, 4); o += 4;
        memcpy(b + o, &v[i], 4); o += 4;
    }
    return o;
}

static size_t tiny_gguf(char *b, const char *const *k, const uint32_t *v, int n)
{
    return tiny_gguf_typed(b, k, v, n, 4);
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* A float key read as an integer saturates (NaN reads 0): converting an
 * out-of-range float is undefined in C, and the fuzzer found a file that
 * did it (1e30 and -inf here; under UBSan the old cast aborts). */
static void test_float_key_as_int(void)
{
    char b[512];
    const char *keys[] = {"t.big", "t.ninf", "t.nan", "t.small"};
    const uint32_t vals[] = {f32_bits(1e30f), f32_bits(-INFINITY), f32_bits(NAN), f32_bits(-3.7f)};
    mh_gguf *g = NULL;
    mh_err e = {0};
    const char *tmp = write_tmp(b, tiny_gguf_typed(b, keys, vals, 4, 6));
    CHECK(tmp && mh_gguf_open(tmp, &g, &e) == MH_OK);
    unlink(tmp);
    if (!g) return;
    CHECK(mh_gguf_kv_int(mh_gguf_find(g, "t.big")) == INT64_MAX);
    CHECK(mh_gguf_kv_int(mh_gguf_find(g, "t.ninf")) == INT64_MIN);
    CHECK(mh_gguf_kv_int(mh_gguf_find(g, "t.nan")) == 0);
    CHECK(mh_gguf_kv_int(mh_gguf_find(g, "t.small")) == -3);
    mh_gguf_close(g);
}

/* Repeated keys are refused with a clear error, as llama.cpp's gguf does
 * (checked on its release v0.5.0 libggml-base: "duplicate key ... failed
 * to read key-value pairs"), so no first-or-last rule can differ from it. */
static void test_duplicate_key_refused(void)
{
    char b[512];
    const char *keys[] = {"general.alignment", "test.dup", "test.other", "test.dup"};
    const uint32_t vals[] = {32, 1, 7, 2};
    mh_gguf *g = NULL;
    mh_err e = {0};
    const char *tmp = write_tmp(b, tiny_gguf(b, keys, vals, 3));   /* without the repeat: fine */
    CHECK(tmp && mh_gguf_open(tmp, &g, &e) == MH_OK);
    CHECK(mh_gguf_n_kv(g) == 3 && mh_gguf_kv_int(mh_gguf_find(g, "test.dup")) == 1);
    mh_gguf_close(g);
    g = NULL;
    tmp = write_tmp(b, tiny_gguf(b, keys, vals, 4));
    CHECK(tmp);
    int rc = mh_gguf_open(tmp, &g, &e);
    unlink(tmp);
    CHECK_MSG(rc == MH_EFORMAT && g == NULL, "rc %d", rc);
    CHECK_MSG(strstr(e.msg, "duplicate key 'test.dup'") && strstr(e.msg, "entries 2 and 4"), "%s", e.msg);
}

/* The one shared file with a repeated key (general.file_type, from an
 * unmerged llama.cpp branch): llama.cpp refuses it today, so do we. */
static void test_duplicate_key_real_file(void)
{
    char p[4096];
    if (!test_data_path("vectors/tokenizer/ggml-vocab-dbrx.gguf", p)) TEST_SKIP("dbrx vocab");
    mh_gguf *g = NULL;
    mh_err e = {0};
    CHECK(mh_gguf_open(p, &g, &e) == MH_EFORMAT && g == NULL);
    CHECK_MSG(strstr(e.msg, "duplicate key 'general.file_type'"), "%s", e.msg);
}

static void test_missing_and_garbage(void)
{
    mh_gguf *g = (mh_gguf *)1;
    mh_err e = {0};
    CHECK(mh_gguf_open("/nonexistent/x.gguf", &g, &e) == MH_EIO && g == NULL);
    const char junk[] = "this is definitely not a gguf file at all......";
    const char *tmp = write_tmp(junk, sizeof junk);
    CHECK(tmp && mh_gguf_open(tmp, &g, &e) == MH_EFORMAT && strstr(e.msg, "magic"));
    unlink(tmp);
}

/* Every truncation of a real file must fail cleanly (no crash, EFORMAT). */
static void test_truncations(void)
{
    char p[4096];
    if (!test_data_path("models/stories260K.gguf", p)) TEST_SKIP("models/stories260K.gguf");
    size_t n;
    char *data = slurp(p, &n);
    CHECK(data);
    size_t cuts[] = { 3, 8, 20, 24, 30, 100, 1000, 5000, 9000, 20000, n / 2, n - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        const char *tmp = write_tmp(data, cuts[i]);
        mh_gguf *g = NULL;
        mh_err e = {0};
        int rc = mh_gguf_open(tmp, &g, &e);
        unlink(tmp);
        if (rc == MH_OK) mh_gguf_close(g);
        CHECK_MSG(rc == MH_EFORMAT, "cut at %zu gave %d (%s)", cuts[i], rc, e.msg);
        CHECK(e.msg[0] != 0);
    }
    free(data);
}

/* Corrupt counts and lengths: absurd values must be refused, not trusted. */
static void test_corruptions(void)
{
    char p[4096];
    if (!test_data_path("models/stories260K.gguf", p)) TEST_SKIP("models/stories260K.gguf");
    size_t n;
    char *data = slurp(p, &n);
    CHECK(data);
    struct { size_t off; uint64_t val; int width; const char *want; } cases[] = {
        { 4, 99, 4, "version" },                  /* version */
        { 8, 1ull << 40, 8, "absurd" },           /* n_tensors */
        { 16, 1ull << 40, 8, "absurd" },          /* n_kv */
        { 24, 1ull << 50, 8, "string" },          /* first key length */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *c = malloc(n);
        memcpy(c, data, n);
        memcpy(c + cases[i].off, &cases[i].val, (size_t)cases[i].width);
        const char *tmp = write_tmp(c, n);
        mh_gguf *g = NULL;
        mh_err e = {0};
        int rc = mh_gguf_open(tmp, &g, &e);
        unlink(tmp);
        free(c);
        CHECK_MSG(rc == MH_EFORMAT && strstr(e.msg, cases[i].want), "case %zu: rc %d msg '%s'", i, rc, e.msg);
    }
    /* random byte flips anywhere in the header region: any status, no crash */
    unsigned seed = 12345;
    for (int k = 0; k < 300; k++) {
        char *c = malloc(n);
        memcpy(c, data, n);
        for (int f = 0; f < 4; f++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % (n < 12000 ? n : 12000);
            c[at] = (char)(seed >> 3);
        }
        const char *tmp = write_tmp(c, n);
        mh_gguf *g = NULL;
        if (mh_gguf_open(tmp, &g, NULL) == MH_OK) {
            for (int64_t i = 0; i < mh_gguf_n_tensors(g); i++) {
                const mh_gguf_tensor *t = mh_gguf_tensor_at(g, i);
                CHECK(mh_gguf_data_offset(g) + t->offset + t->nbytes <= mh_gguf_file_size(g));
            }
            mh_gguf_close(g);
        }
        unlink(tmp);
        free(c);
    }
    free(data);
}

int main(void)
{
    TEST_RUN(test_stories_model);
    TEST_RUN(test_quantized_model);
    TEST_RUN(test_duplicate_key_refused);
    TEST_RUN(test_duplicate_key_real_file);
    TEST_RUN(test_float_key_as_int);
    TEST_RUN(test_missing_and_garbage);
    TEST_RUN(test_truncations);
    TEST_RUN(test_corruptions);
    return TEST_REPORT();
}
