/* test_convert.c: mh_convert_hf (engine/model/convert.c) from C alone, so
 * make asan covers it: the shared mh-smol-llama-17m folder against its F16
 * GGUF twin (every tensor's bytes), Q8_0 against quantize of the F32
 * conversion, progress, and the failures that must leave no file (no
 * config, unknown class, a missing shard, a full disk). */
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "harness.h"
#include "mh/convert.h"
#include "mh/gguf.h"
#include "mh/quantize.h"

static char tmp[64];

static int dir_entries(const char *d)
{
    DIR *dp = opendir(d);
    int n = 0;
    for (struct dirent *e; dp && (e = readdir(dp));)   /* temporaries start with '.' */
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (dp) closedir(dp);
    return n;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) { fputs(text, f); fclose(f); }
}

static char *slurp(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    char *b = NULL;
    *n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (*n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (b = malloc((size_t)*n + 1)) && fread(b, 1, (size_t)*n, f) != (size_t)*n) *n = -1;
    if (f) fclose(f);
    return b;
}

static const char *smol_dir(char *buf)
{
    if (!test_data_path("models/hf/mh-smol-llama-17m/config.json", buf)) return NULL;
    *strrchr(buf, '/') = 0;
    return buf;
}

typedef struct { uint64_t calls, last_done, last_total; } prog;
static void on_progress(void *ud, uint64_t done, uint64_t total)
{
    prog *p = ud;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
}

static void test_twin_f16(void)
{
    char db[4096], tb[4096], out[128];
    const char *dir = smol_dir(db), *twin = test_data_path("models/mh-smol-llama-17m-F16.gguf", tb);
    if (!dir || !twin) TEST_SKIP("models/hf/mh-smol-llama-17m or its F16 twin missing");
    snprintf(out, sizeof out, "%s/smol.gguf", tmp);
    prog p = {0};
    mh_convert_opts o = { .ftype = MH_FTYPE_F16, .name = "mh-smol-llama-17m", .progress = on_progress,
                          .progress_ud = &p };
    mh_convert_stats st;
    mh_err err = {0};
    CHECK_MSG(mh_convert_hf(dir, out, &o, &st, &err) == MH_OK, "%s", err.msg);
    CHECK(st.n_tensors == 38 && !strcmp(st.arch, "llama") && st.n_vocab == 49152);
    CHECK(p.calls == 38 && p.last_done == 38 && p.last_total == 38);
    mh_gguf *a = NULL, *b = NULL;
    CHECK(mh_gguf_open(out, &a, &err) == MH_OK && mh_gguf_open(twin, &b, &err) == MH_OK);
    int same = mh_gguf_n_tensors(a) == mh_gguf_n_tensors(b);
    for (int64_t i = 0; i < mh_gguf_n_tensors(b) && same; i++) {
        const mh_gguf_tensor *tb_ = mh_gguf_tensor_at(b, i), *ta = mh_gguf_find_tensor(a, tb_->name);
        same = ta && ta->ggml_type == tb_->ggml_type && ta->nbytes == tb_->nbytes &&
               !memcmp(ta->data, tb_->data, (size_t)ta->nbytes);
        if (!same) fprintf(stderr, "  tensor %s differs\n", tb_->name);
    }
    mh_gguf_str s = {0}, t = {0};
    same = same && mh_gguf_get_str(a, "tokenizer.chat_template", &s) &&
           mh_gguf_get_str(b, "tokenizer.chat_template", &t) && s.len == t.len && !memcmp(s.ptr, t.ptr, s.len);
    mh_gguf_close(a);
    mh_gguf_close(b);
    CHECK(same);
    remove(out);
}

static void test_q8_is_quantize_of_f32(void)
{
    char db[4096], f32[128], q8[128], ref[128];
    const char *dir = smol_dir(db);
    if (!dir) TEST_SKIP("models/hf/mh-smol-llama-17m missing");
    snprintf(f32, sizeof f32, "%s/f32.gguf", tmp);
    snprintf(q8, sizeof q8, "%s/q8.gguf", tmp);
    snprintf(ref, sizeof ref, "%s/ref.gguf", tmp);
    mh_err err = {0};
    mh_convert_opts o = { .ftype = MH_FTYPE_ALL_F32 };
    CHECK_MSG(mh_convert_hf(dir, f32, &o, NULL, &err) == MH_OK, "%s", err.msg);
    o.ftype = MH_FTYPE_Q8_0;
    CHECK_MSG(mh_convert_hf(dir, q8, &o, NULL, &err) == MH_OK, "%s", err.msg);
    CHECK_MSG(mh_quantize_file(f32, ref, MH_FTYPE_Q8_0, NULL, &err) == MH_OK, "%s", err.msg);
    long na, nb;
    char *a = slurp(q8, &na), *b = slurp(ref, &nb);
    int same = a && b && na == nb && !memcmp(a, b, (size_t)na);
    free(a);
    free(b);
    remove(f32); remove(q8); remove(ref);
    CHECK(same);
}

/* A convert of dir that must fail with code and a message containing want,
 * leaving dir's entry count as it was. */
static int expect_fail(const char *dir, int code, const char *want)
{
    char out[4200];
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    int before = dir_entries(dir);
    mh_err err = {0};
    mh_convert_opts o = { .ftype = MH_FTYPE_Q8_0 };
    int rc = mh_convert_hf(dir, out, &o, NULL, &err);
    int ok = rc == code && strstr(err.msg, want) && !strncmp(err.msg, "convert: ", 9) &&
             dir_entries(dir) == before;
    if (!ok) fprintf(stderr, "  got %d '%s', want %d '%s'\n", rc, err.msg, code, want);
    return ok;
}

static void test_bad_folders(void)
{
    char d[128], p[256];
    snprintf(d, sizeof d, "%s/bad", tmp);
    CHECK(mkdir(d, 0700) == 0);
    CHECK(expect_fail(d, MH_EIO, "has no readable config.json"));
    snprintf(p, sizeof p, "%s/config.json", d);
    write_file(p, "{\"architectures\": [\"GPT2LMHeadModel\"]}");
    CHECK(expect_fail(d, MH_EFORMAT, "supported: LlamaForCausalLM"));
    write_file(p, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, "
                  "\"intermediate_size\": 96, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
                  "\"vocab_size\": 300}");
    CHECK(expect_fail(d, MH_EIO, "safetensors"));        /* no weights at all */
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    write_file(p, "{\"weight_map\": {\"model.norm.weight\": \"model-00001-of-00002.safetensors\"}}");
    CHECK(expect_fail(d, MH_EIO, "model-00001-of-00002.safetensors"));
    remove(p);
    snprintf(p, sizeof p, "%s/config.json", d);
    remove(p);
    rmdir(d);
}

/* A full disk, simulated with a file size limit (EFBIG instead of ENOSPC). */
static void test_disk_full(void)
{
    char db[4096], d[128], out[160];
    const char *dir = smol_dir(db);
    if (!dir) TEST_SKIP("models/hf/mh-smol-llama-17m missing");
    snprintf(d, sizeof d, "%s/full", tmp);
    CHECK(mkdir(d, 0700) == 0);
    snprintf(out, sizeof out, "%s/smol.gguf", d);
    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 1 << 20;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    mh_err err = {0};
    mh_convert_opts o = { .ftype = MH_FTYPE_F16 };
    int rc = mh_convert_hf(dir, out, &o, NULL, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK_MSG(rc == MH_EIO && strstr(err.msg, out), "%d %s", rc, err.msg);
    CHECK(dir_entries(d) == 0);
    rmdir(d);
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/mh_convert_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    TEST_RUN(test_twin_f16);
    TEST_RUN(test_q8_is_quantize_of_f32);
    TEST_RUN(test_bad_folders);
    TEST_RUN(test_disk_full);
    rmdir(tmp);
    return TEST_REPORT();
}
