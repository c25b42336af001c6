/* test_loadmem.c: loading a model maps its weights instead of copying them:
 * resident anonymous memory (/proc/self/status RssAnon) grows by far less
 * than the file over load and a short forward (F16); Q4_0 and Q8_0 files,
 * whose weights may be repacked at load, hold them once (anonymous + file
 * pages under 1.25 x the file). Byte-count bounds, never a time. Linux only. */
#include <stdint.h>
#include <sys/stat.h>
#include "harness.h"
#include "mh/create.h"
#include "mh/model.h"

static char tmp_dir[] = "/tmp/mh_test_loadmem_XXXXXX";

/* Under AddressSanitizer every heap byte costs 1/8 byte of shadow plus
 * redzones, counted in RssAnon: allow that on top of the bound (a copy of
 * the weights still exceeds it by far). */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_EXTRA_KB(kb) ((kb) / 8 + 1024)
#else
#define ASAN_EXTRA_KB(kb) 0
#endif

/* kB of a /proc/self/status field (RssAnon, RssFile), or -1. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(field);
    while (kb < 0 && f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') kb = atol(line + n + 1);
    if (f) fclose(f);
    return kb;
}

static void check_type(mh_ftype ft, const char *name, bool repackable)
{
    mh_create_config cfg = { .arch = "llama", .n_layer = 4, .n_embd = 512, .n_ff = 1536, .n_head = 8,
                             .n_head_kv = 8, .n_vocab = 259, .n_ctx = 256, .rope_base = 10000, .rms_eps = 1e-5 };
    char path[256];
    snprintf(path, sizeof path, "%s/%s.gguf", tmp_dir, name);
    mh_create_opts opts = { .ftype = ft, .seed = 2 };
    mh_err err = {0};
    CHECK_MSG(mh_create_model(&cfg, &opts, path, NULL, &err) == MH_OK, "%s", err.msg);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size > 4 << 20);
    long anon0 = status_kb("RssAnon"), file0 = status_kb("RssFile");
    if (anon0 < 0 || file0 < 0) TEST_SKIP("no RssAnon / RssFile in /proc/self/status");
    mh_model *m = NULL;
    CHECK_MSG(mh_model_load(path, &m, &err) == MH_OK, "%s", err.msg);
    mh_kv_cache *c = mh_kv_cache_new(m, 64, &err);
    int32_t toks[8] = { 1, 72, 101, 108, 108, 111, 32, 119 };
    float logits[259];
    CHECK(c && mh_model_forward(m, c, toks, 8, logits, false, &err) == MH_OK);
    CHECK(mh_model_forward(m, c, toks, 1, logits, false, &err) == MH_OK);
    long anon = status_kb("RssAnon") - anon0, all = anon + status_kb("RssFile") - file0;
    long file_kb = (long)(st.st_size / 1024);
    mh_kv_cache_free(c);
    mh_model_free(m);
    /* scratch, cache and f32 copies of the norms: a few MiB; a copy of the
     * weights would be the file's size again */
    if (!repackable)
        CHECK_MSG(anon < file_kb / 4 + ASAN_EXTRA_KB(file_kb), "%s: resident anonymous memory grew by %ld kB for a %ld kB file", name,
                  anon, file_kb);
    CHECK_MSG(all < file_kb + file_kb / 4 + ASAN_EXTRA_KB(file_kb), "%s: resident memory grew by %ld kB for a %ld kB file", name, all,
              file_kb);
}

static void test_f16_mapped(void) { check_type(MH_FTYPE_F16, "f16", false); }
static void test_q8_0_mapped(void) { check_type(MH_FTYPE_Q8_0, "q8_0", true); }
static void test_q4_0_mapped(void) { check_type(MH_FTYPE_Q4_0, "q4_0", true); }

int main(void)
{
    if (!mkdtemp(tmp_dir)) return 1;
    TEST_RUN(test_f16_mapped);
    TEST_RUN(test_q8_0_mapped);
    TEST_RUN(test_q4_0_mapped);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    if (system(cmd)) fprintf(stderr, "  could not remove %s\n", tmp_dir);
    return TEST_REPORT();
}
