/* test_tokenizer.c: tokenizers against llama.cpp's reference vectors
 * (shared/vectors/tokenizer/ggml-vocab-*.gguf.inp/.out), tokenizer.json,
 * special-token injection, invalid UTF-8, streaming and a 1 MB input.
 * Layer: tests (C). Needs MOONHUB_TEST_DATA (default ../shared). */
#include "harness.h"
#include "mh/tokenizer.h"

#define VEC "vectors/tokenizer/"

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) { free(b); b = NULL; }
    fclose(f);
    if (b) { b[len] = 0; *n = (size_t)len; }
    return b;
}

/* Cases of an .inp file, split as llama.cpp does (see MODELS.md). */
typedef struct { const char *p[128]; size_t n[128]; int count; } cases;

static void split_cases(char *s, size_t len, cases *c)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t pos = 0, sl = sizeof sep - 1;
    c->count = 0;
    while (pos < len && c->count < 128) {
        char *hit = memmem(s + pos, len - pos, sep, sl);
        size_t end = hit ? (size_t)(hit - s) : len;
        c->p[c->count] = s + pos;
        c->n[c->count++] = end - pos;
        if (!hit) break;
        pos = end + sl;
    }
}

/* Runs every case of vectors NAME with tokenizer t; returns failures. */
static int run_vectors(mh_tokenizer *t, const char *name, bool roundtrip, int *passed, int *total)
{
    char p1[4096], p2[4096], r1[512], r2[512];
    snprintf(r1, sizeof r1, VEC "ggml-vocab-%s.gguf.inp", name);
    snprintf(r2, sizeof r2, VEC "ggml-vocab-%s.gguf.out", name);
    size_t ni, no;
    char *inp = test_data_path(r1, p1) ? slurp(p1, &ni) : NULL;
    char *out = test_data_path(r2, p2) ? slurp(p2, &no) : NULL;
    int fails = 0;
    cases c;
    *passed = *total = 0;
    if (!inp || !out) { free(inp); free(out); return -1; }
    split_cases(inp, ni, &c);
    char *line = out, *save = NULL;
    for (int k = 0; k < c.count; k++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        int32_t want[1024];
        int nw = 0;
        for (char *tok = strtok_r(line, " ", &save); tok && nw < 1024; tok = strtok_r(NULL, " ", &save))
            want[nw++] = atoi(tok);
        line = nl ? nl + 1 : line + strlen(line);
        mh_tok_ids ids = {0};
        mh_tok_encode_opts o = { 0, 0, false };
        mh_err e = {0};
        int ok = mh_tokenizer_encode(t, c.p[k], c.n[k], &o, &ids, &e) == MH_OK && (int)ids.n == nw &&
                 (nw == 0 || !memcmp(ids.v, want, (size_t)nw * sizeof *want));
        if (ok && roundtrip) {
            mh_tok_buf b = {0};
            ok = mh_tokenizer_decode(t, ids.v, ids.n, 0, &b, &e) == MH_OK && b.n == c.n[k] &&
                 (b.n == 0 || !memcmp(b.p, c.p[k], b.n));
            if (!ok) fprintf(stderr, "  %s case %d: decode gives '%s'\n", name, k, b.p ? b.p : "");
            mh_tok_buf_free(&b);
        } else if (!ok) {
            fprintf(stderr, "  %s case %d '%.*s': got", name, k, (int)(c.n[k] > 40 ? 40 : c.n[k]), c.p[k]);
            for (size_t i = 0; i < ids.n && i < 30; i++) fprintf(stderr, " %d", ids.v[i]);
            fprintf(stderr, " want");
            for (int i = 0; i < nw && i < 30; i++) fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n");
        }
        fails += !ok;
        *passed += ok;
        (*total)++;
        mh_tok_ids_free(&ids);
    }
    free(inp);
    free(out);
    return fails;
}

static mh_tokenizer *load_rel(const char *rel)
{
    char p[4096];
    mh_tokenizer *t = NULL;
    mh_err e = {0};
    if (!test_data_path(rel, p)) return NULL;
    if (mh_tokenizer_load(p, &t, &e)) fprintf(stderr, "  load %s: %s\n", rel, e.msg);
    return t;
}

/* ===== a copy without repeated keys =====
 * ggml-vocab-dbrx.gguf (an unmerged llama.cpp branch) writes general.file_type
 * twice. moonhub refuses such files, as llama.cpp's gguf does now
 * (test_gguf), so its vectors run on a copy that keeps each key's first
 * entry (the one the llama.cpp that made the vectors read). */

static int gguf_skip_value(const unsigned char *b, size_t n, size_t *pos, uint32_t type, int depth)
{
    static const int size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    uint64_t len;
    if (type == 8) {                      /* string: u64 length + bytes */
        if (*pos + 8 > n) return 0;
        memcpy(&len, b + *pos, 8);
        if (len > n - *pos - 8) return 0;
        *pos += 8 + len;
        return 1;
    }
    if (type == 9 && depth == 0) {        /* array: u32 type, u64 count, items */
        uint32_t et;
        if (*pos + 12 > n) return 0;
        memcpy(&et, b + *pos, 4);
        memcpy(&len, b + *pos + 4, 8);
        *pos += 12;
        for (uint64_t i = 0; i < len; i++) if (!gguf_skip_value(b, n, pos, et, 1)) return 0;
        return 1;
    }
    if (type > 12 || !size[type] || *pos + (size_t)size[type] > n) return 0;
    *pos += (size_t)size[type];
    return 1;
}

/* Writes src without later repeats of a key to dst; 1 on success. */
static int gguf_dedup_copy(const char *src, const char *dst)
{
    size_t n;
    unsigned char *b = (unsigned char *)slurp(src, &n);
    if (!b || n < 24) { free(b); return 0; }
    uint64_t n_kv, kept = 0;
    memcpy(&n_kv, b + 16, 8);
    size_t pos = 24, *start = calloc(n_kv + 1, sizeof *start), out_n = 24;
    unsigned char *out = malloc(n);
    int ok = start && out;
    for (uint64_t i = 0; ok && i < n_kv; i++) {
        size_t at = pos;
        uint64_t kl;
        uint32_t type;
        ok = pos + 8 <= n && (memcpy(&kl, b + pos, 8), kl <= n - pos - 12);
        if (!ok) break;
        pos += 8 + kl;
        memcpy(&type, b + pos, 4);
        pos += 4;
        ok = gguf_skip_value(b, n, &pos, type, 0);
        int dup = 0;
        for (uint64_t j = 0; ok && j < kept && !dup; j++) {
            uint64_t jl;
            memcpy(&jl, out + start[j], 8);
            dup = jl == kl && !memcmp(out + start[j] + 8, b + at + 8, kl);
        }
        if (!ok || dup) continue;
        start[kept++] = out_n;
        memcpy(out + out_n, b + at, pos - at);
        out_n += pos - at;
    }
    if (ok) {   /* header with the new count, then what follows the pairs */
        memcpy(out, b, 16);
        memcpy(out + 16, &kept, 8);
        memcpy(out + out_n, b + pos, n - pos);
        out_n += n - pos;
        FILE *f = fopen(dst, "wb");
        ok = f && fwrite(out, 1, out_n, f) == out_n;
        if (f) ok = (fclose(f) == 0) && ok;
    }
    free(b); free(out); free(start);
    return ok;
}

/* ===== reference vectors, one case per vocab ===== */

static const char *g_present[] = { "llama-spm", "phi-3", "gpt-2", "falcon", "mpt", "starcoder",
    "refact", "deepseek-llm", "deepseek-coder", "dbrx", "bert-bge", NULL };
/* Vectors whose vocab GGUF no one can fetch: ../shared/models/MODELS.md lists
 * their .inp/.out as "NO vocab GGUF here" (llama.cpp never published them).
 * No machine can run them, so they are not counted, not even as skips (a
 * permanent skip is noise in CI); should a vocab appear, test_vectors_present
 * runs it. Listed in docs/testing.md. */
static const char *g_absent[] = { "llama-bpe", "qwen2", "command-r", "gemma-4", "qwen35", NULL };

static void vectors_for(const char *name, const char *vocab_rel, bool roundtrip)
{
    mh_tokenizer *t = NULL;
    char p[4096], tmp[64];
    if (!strcmp(name, "dbrx") && test_data_path(vocab_rel, p)) {   /* see gguf_dedup_copy */
        snprintf(tmp, sizeof tmp, "/tmp/mh_test_tok_dbrx_%d.gguf", (int)getpid());
        mh_err e = {0};
        CHECK(gguf_dedup_copy(p, tmp));
        if (mh_tokenizer_load(tmp, &t, &e)) fprintf(stderr, "  load %s: %s\n", tmp, e.msg);
        unlink(tmp);
        CHECK_MSG(t, "the de-duplicated copy of %s does not load", vocab_rel);
    } else t = load_rel(vocab_rel);
    if (!t) { char w[600]; snprintf(w, sizeof w, "missing %s", vocab_rel); TEST_SKIP(w); }
    int passed, total, fails = run_vectors(t, name, roundtrip, &passed, &total);
    printf("  %-16s %-44s %d/%d cases pass\n", name, vocab_rel, passed, total);
    mh_tokenizer_free(t);
    CHECK_MSG(fails == 0, "%s: %d of %d cases differ", name, fails, total);
}

static void test_vectors_present(void)
{
    int bad = 0;
    for (int i = 0; g_present[i]; i++) {
        char rel[512];
        snprintf(rel, sizeof rel, VEC "ggml-vocab-%s.gguf", g_present[i]);
        int before = test_case_failed;
        test_case_failed = 0;
        vectors_for(g_present[i], rel, strcmp(g_present[i], "bert-bge") != 0);
        bad += test_case_failed;
        test_case_failed = before;
    }
    for (int i = 0; g_absent[i]; i++) {        /* only if one ever appears */
        char rel[512], p[4096];
        snprintf(rel, sizeof rel, VEC "ggml-vocab-%s.gguf", g_absent[i]);
        if (!test_data_path(rel, p)) continue;
        int before = test_case_failed;
        test_case_failed = 0;
        vectors_for(g_absent[i], rel, true);
        bad += test_case_failed;
        test_case_failed = before;
    }
    CHECK_MSG(bad == 0, "%d vocab files have failing cases", bad);
}

static void test_smollm_tokenizer_json(void) { vectors_for("smollm", VEC "hf-smollm2/tokenizer.json", true); }
static void test_smollm_hf_dir(void) { vectors_for("smollm", VEC "hf-smollm2", true); }
static void test_smollm_model_gguf(void) { vectors_for("smollm", "models/mh-smol-llama-17m-Q8_0.gguf", true); }
static void test_smollm_model_f16(void) { vectors_for("smollm", "models/mh-smol-llama-17m-F16.gguf", true); }

/* ===== properties ===== */

static void test_special_injection(void)
{
    mh_tokenizer *t = load_rel(VEC "hf-smollm2/tokenizer.json");
    if (!t) TEST_SKIP("missing hf-smollm2/tokenizer.json");
    const char *s = "<|im_start|>user";
    mh_tok_ids a = {0}, b = {0};
    mh_tok_encode_opts plain = { 0, 0, false }, special = { 0, 0, true };
    CHECK(mh_tokenizer_encode(t, s, strlen(s), &plain, &a, NULL) == MH_OK);
    CHECK(mh_tokenizer_encode(t, s, strlen(s), &special, &b, NULL) == MH_OK);
    int32_t im = mh_tokenizer_id(t, "<|im_start|>", 12);
    CHECK(im == 1);
    CHECK(b.n == 2 && b.v[0] == im);
    for (size_t i = 0; i < a.n; i++) CHECK(a.v[i] != im);
    CHECK(a.n > 2);
    mh_tok_buf d = {0};
    CHECK(mh_tokenizer_decode(t, a.v, a.n, 0, &d, NULL) == MH_OK && !strcmp(d.p, s));
    mh_tok_buf_free(&d);
    mh_tok_ids_free(&a); mh_tok_ids_free(&b);
    mh_tokenizer_free(t);
}

static void roundtrip_bytes(mh_tokenizer *t, const char *s, size_t n)
{
    mh_tok_ids ids = {0};
    mh_tok_buf d = {0};
    mh_tok_encode_opts o = { 0, 0, false };
    CHECK(mh_tokenizer_encode(t, s, n, &o, &ids, NULL) == MH_OK);
    CHECK(mh_tokenizer_decode(t, ids.v, ids.n, 0, &d, NULL) == MH_OK);
    CHECK_MSG(d.n == n && !memcmp(d.p, s, n), "round trip of %zu bytes gave %zu", n, d.n);
    mh_tok_ids_free(&ids);
    mh_tok_buf_free(&d);
}

static void test_invalid_utf8(void)
{
    static const char bad[] = "ok \xff\xfe caf\xc3 \xe2\x82 x\xf0\x9f\x98 \xc0\xaf end\x80";
    /* bytes that never occur in UTF-8 (C0 C1 F5..FF) are missing from some
     * byte-level vocabularies (SmolLM2's), so those get the partial string */
    static const char partial[] = "caf\xc3 \xe2\x82 x\xf0\x9f\x98 end\x80\xbf";
    const char *vocabs[] = { VEC "ggml-vocab-llama-spm.gguf", VEC "ggml-vocab-gpt-2.gguf",
                             VEC "ggml-vocab-deepseek-llm.gguf", VEC "hf-smollm2/tokenizer.json", NULL };
    for (int i = 0; vocabs[i]; i++) {
        mh_tokenizer *t = load_rel(vocabs[i]);
        if (!t) TEST_SKIP(vocabs[i]);
        roundtrip_bytes(t, partial, sizeof partial - 1);
        /* deepseek-llm: C0 C1 F5..FF have only added-word tokens ("ÿ"), which
         * decode as their text, so only the first two take every byte */
        if (i < 2) roundtrip_bytes(t, bad, sizeof bad - 1);
        mh_tokenizer_free(t);
        if (test_case_failed) return;
    }
    mh_tokenizer *w = load_rel(VEC "ggml-vocab-bert-bge.gguf");
    if (!w) TEST_SKIP("bert-bge");
    /* WordPiece: every ill-formed sequence is dropped, as llama.cpp drops the
     * U+FFFD it reads them as; the valid words stay, with no [UNK]. The
     * overlong C0 AF is dropped too (llama.cpp would read it as "/", which
     * Unicode forbids and which smuggles a slash past a filter). */
    static const char clean[] = "ok caf x end";
    mh_tok_ids ids = {0}, want = {0};
    int rc = mh_tokenizer_encode(w, bad, sizeof bad - 1, NULL, &ids, NULL);
    int rc2 = mh_tokenizer_encode(w, clean, sizeof clean - 1, NULL, &want, NULL);
    bool same = rc == MH_OK && rc2 == MH_OK && ids.n == want.n && want.n >= 4
                && !memcmp(ids.v, want.v, sizeof *ids.v * (size_t)ids.n);
    if (!same) {
        fprintf(stderr, "  bert-bge ids:");
        for (size_t k = 0; k < (size_t)ids.n; k++) fprintf(stderr, " %d", (int)ids.v[k]);
        fputc('\n', stderr);
    }
    mh_tok_ids_free(&ids);
    mh_tok_ids_free(&want);
    mh_tokenizer_free(w);
    CHECK_MSG(same, "bert-bge: invalid UTF-8 should encode as \"%s\"", clean);
}

static void test_stream_decoder(void)
{
    mh_tokenizer *t = load_rel(VEC "ggml-vocab-llama-spm.gguf");
    if (!t) TEST_SKIP("llama-spm");
    const char *s = "Hi \xF0\x9F\xA6\x99 and \xE6\x9D\xB1\xE4\xBA\xAC!";
    mh_tok_ids ids = {0};
    mh_tok_encode_opts o = { 1, 0, false };
    CHECK(mh_tokenizer_encode(t, s, strlen(s), &o, &ids, NULL) == MH_OK);
    mh_tok_stream st;
    mh_tok_stream_init(&st, t, MH_DECODE_SKIP_SPECIAL);
    mh_tok_buf all = {0};
    int partial_seen = 0;
    for (size_t i = 0; i < ids.n; i++) {
        mh_tok_buf piece = {0};
        CHECK(mh_tok_stream_push(&st, ids.v[i], &piece, NULL) == MH_OK);
        /* every chunk handed out is complete UTF-8 */
        for (size_t k = 0; k < piece.n;) {
            size_t l = (unsigned char)piece.p[k] < 0x80 ? 1 : (unsigned char)piece.p[k] >= 0xF0 ? 4
                     : (unsigned char)piece.p[k] >= 0xE0 ? 3 : 2;
            CHECK(k + l <= piece.n);
            k += l;
        }
        if (piece.n == 0) partial_seen++;
        size_t old = all.n;
        all.p = realloc(all.p, all.n + piece.n + 1);
        memcpy(all.p + old, piece.p ? piece.p : "", piece.n);
        all.n += piece.n;
        all.p[all.n] = 0;
        mh_tok_buf_free(&piece);
    }
    mh_tok_buf rest = {0};
    CHECK(mh_tok_stream_flush(&st, &rest, NULL) == MH_OK && rest.n == 0);
    CHECK(partial_seen > 0);            /* the emoji came as byte tokens */
    CHECK(all.n == strlen(s) && !memcmp(all.p, s, all.n));
    mh_tok_buf_free(&rest);
    free(all.p);
    mh_tok_stream_free(&st);
    mh_tok_ids_free(&ids);
    mh_tokenizer_free(t);
}

static void test_long_input(void)
{
    const char *vocabs[] = { VEC "ggml-vocab-gpt-2.gguf", VEC "ggml-vocab-llama-spm.gguf", NULL };
    size_t n = 1 << 20;
    char *s = malloc(n);
    CHECK(s);
    for (size_t i = 0; i < n; i++) s[i] = "abcdefghij"[(i * 7 + i / 13) % 10];
    for (int v = 0; vocabs[v]; v++) {
        mh_tokenizer *t = load_rel(vocabs[v]);
        if (!t) { free(s); TEST_SKIP(vocabs[v]); }
        roundtrip_bytes(t, s, n);
        mh_tokenizer_free(t);
        if (test_case_failed) break;
    }
    free(s);
}

static void test_bos_eos_and_specials(void)
{
    mh_tokenizer *t = load_rel(VEC "ggml-vocab-llama-spm.gguf");
    if (!t) TEST_SKIP("llama-spm");
    const mh_tok_special *sp = mh_tokenizer_special(t);
    CHECK(sp->bos == 1 && sp->eos == 2 && sp->unk == 0);
    CHECK(mh_tokenizer_add_bos(t) && !mh_tokenizer_add_eos(t));
    mh_tok_ids ids = {0};
    CHECK(mh_tokenizer_encode(t, "Hello", 5, NULL, &ids, NULL) == MH_OK);
    CHECK(ids.n == 2 && ids.v[0] == 1 && ids.v[1] == 15043);   /* <s> ▁Hello */
    mh_tok_buf d = {0};
    CHECK(mh_tokenizer_decode(t, ids.v, ids.n, MH_DECODE_SKIP_SPECIAL, &d, NULL) == MH_OK);
    CHECK(!strcmp(d.p, "Hello"));
    mh_err e = {0};
    int32_t badid = 999999;
    CHECK(mh_tokenizer_decode(t, &badid, 1, 0, &d, &e) == MH_ERANGE);
    mh_tok_buf_free(&d);
    mh_tok_ids_free(&ids);
    mh_tokenizer_free(t);
}

static void test_load_errors(void)
{
    mh_tokenizer *t = NULL;
    mh_err e = {0};
    CHECK(mh_tokenizer_load("/nonexistent/tok.gguf", &t, &e) != MH_OK && t == NULL);
    CHECK(strstr(e.msg, "nonexistent") != NULL);
    char p[4096];
    if (!test_data_path("models/stories260K.gguf", p)) TEST_SKIP("stories260K.gguf");
    CHECK(mh_tokenizer_load(p, &t, &e) == MH_OK);
    CHECK(mh_tokenizer_n_vocab(t) == 512 && mh_tokenizer_special(t)->sep == -1);
    mh_tokenizer_free(t);
}

/* ===== whitespace around specials (llama.cpp's lstrip / rstrip) ===== */

static void expect_ids(const char *rel, const char *text, const int32_t *want, size_t n)
{
    mh_tokenizer *t = load_rel(rel);
    if (!t) TEST_SKIP(rel);
    mh_tok_ids ids = {0};
    mh_tok_encode_opts o = { 0, 0, true };
    CHECK(mh_tokenizer_encode(t, text, strlen(text), &o, &ids, NULL) == MH_OK);
    CHECK_MSG(ids.n == n, "%s: %zu ids for %zu expected", rel, ids.n, n);
    for (size_t i = 0; i < n && i < ids.n; i++)
        CHECK_MSG(ids.v[i] == want[i], "%s: id %zu is %d, llama.cpp has %d", rel, i, ids.v[i], want[i]);
    mh_tok_ids_free(&ids);
    mh_tokenizer_free(t);
}

/* Phi-3's specials swallow the whitespace after them (llama.cpp keys this
 * on general.name), so no lone U+2581 follows </s> or <|user|>; <s> is
 * exempt. The Llama 2 vocabulary (same pieces, another name) keeps it. */
static void test_special_whitespace(void)
{
    static const char inst[] = "<s> </s> [INST] [/INST]";
    static const int32_t phi3[] = { 1, 259, 2, 518, 25580, 29962, 518, 29914, 25580, 29962 };
    static const int32_t llama[] = { 1, 259, 2, 29871, 518, 25580, 29962, 518, 29914, 25580, 29962 };
    expect_ids(VEC "ggml-vocab-phi-3.gguf", inst, phi3, sizeof phi3 / sizeof *phi3);
    expect_ids(VEC "ggml-vocab-llama-spm.gguf", inst, llama, sizeof llama / sizeof *llama);
    static const int32_t turn[] = { 32010, 317, 21554, 13, 17628, 32007, 32001 };
    expect_ids(VEC "ggml-vocab-phi-3.gguf", "<|user|>\nSYS\nHI<|end|>\n<|assistant|>\n", turn,
               sizeof turn / sizeof *turn);
}

int main(void)
{
    TEST_RUN(test_vectors_present);
    TEST_RUN(test_smollm_tokenizer_json);
    TEST_RUN(test_smollm_hf_dir);
    TEST_RUN(test_smollm_model_gguf);
    TEST_RUN(test_smollm_model_f16);
    TEST_RUN(test_special_injection);
    TEST_RUN(test_invalid_utf8);
    TEST_RUN(test_stream_decoder);
    TEST_RUN(test_long_input);
    TEST_RUN(test_bos_eos_and_specials);
    TEST_RUN(test_load_errors);
    TEST_RUN(test_special_whitespace);
    return TEST_REPORT();
}
