/* test_quantize.c: the GGUF writer (round trip through the reader, every
 * value type, alignment, errors) and the quantizer (llama.cpp's type rules,
 * byte identity with llama-quantize's files in the shared test data).
 * Layer: tests (C core only). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "harness.h"
#include "mh/create.h"
#include "mh/fs.h"
#include "mh/gguf.h"
#include "mh/gguf_write.h"
#include "mh/quant.h"
#include "mh/quantize.h"

static char g_dir[256];

static void tmp_path(char *buf, const char *name)
{
    snprintf(buf, 4096, "%s/%s", g_dir, name);
}

/* Number of entries in g_dir other than . and .. */
static int dir_entries(void)
{
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

/* 1 when the one entry of g_dir is a temp file named with our pid, which
 * is how a crashed writer's leftover is told from a live one (mh/fs.h) */
static int temp_is_ours(void)
{
    DIR *d = opendir(g_dir);
    struct dirent *e;
    int ok = 0;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            ok = mh_fs_temp_pid(e->d_name) == (long)getpid();
    if (d) closedir(d);
    return ok;
}

static void remove_all(void)
{
    DIR *d = opendir(g_dir);
    struct dirent *e;
    char p[4096];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            tmp_path(p, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
}

/* ===== writer ===== */

static int set_all_kv(mh_gguf_writer *w, mh_err *err)
{
    static const int16_t i16s[3] = { -1, 2, -300 };
    static const float f32s[2] = { 0.5f, -2.25f };
    static const double f64s[1] = { 1e300 };
    static const uint8_t bools[2] = { 1, 0 };
    const char *strs[3] = { "alpha", "", "g\xc3\xa4mma" };
    size_t lens[3] = { 5, 0, 6 };
    int rc = 0;
    rc |= mh_gguf_writer_set_int(w, "t.u8", MH_GGUF_UINT8, 200, err);
    rc |= mh_gguf_writer_set_int(w, "t.i8", MH_GGUF_INT8, -100, err);
    rc |= mh_gguf_writer_set_int(w, "t.u16", MH_GGUF_UINT16, 60000, err);
    rc |= mh_gguf_writer_set_int(w, "t.i16", MH_GGUF_INT16, -30000, err);
    rc |= mh_gguf_writer_set_int(w, "t.u32", MH_GGUF_UINT32, 4000000000LL, err);
    rc |= mh_gguf_writer_set_int(w, "t.i32", MH_GGUF_INT32, -2000000000LL, err);
    rc |= mh_gguf_writer_set_float(w, "t.f32", MH_GGUF_FLOAT32, 1.5, err);
    rc |= mh_gguf_writer_set_int(w, "t.bool", MH_GGUF_BOOL, 1, err);
    rc |= mh_gguf_writer_set_str(w, "t.str", "hello", 5, err);
    rc |= mh_gguf_writer_set_int(w, "t.u64", MH_GGUF_UINT64, (int64_t)(1ULL << 62), err);
    rc |= mh_gguf_writer_set_int(w, "t.i64", MH_GGUF_INT64, -(1LL << 60), err);
    rc |= mh_gguf_writer_set_float(w, "t.f64", MH_GGUF_FLOAT64, 3.141592653589793, err);
    rc |= mh_gguf_writer_set_arr(w, "t.arr_i16", MH_GGUF_INT16, i16s, 3, err);
    rc |= mh_gguf_writer_set_arr(w, "t.arr_f32", MH_GGUF_FLOAT32, f32s, 2, err);
    rc |= mh_gguf_writer_set_arr(w, "t.arr_f64", MH_GGUF_FLOAT64, f64s, 1, err);
    rc |= mh_gguf_writer_set_arr(w, "t.arr_bool", MH_GGUF_BOOL, bools, 2, err);
    rc |= mh_gguf_writer_set_arr(w, "t.arr_empty", MH_GGUF_UINT32, NULL, 0, err);
    rc |= mh_gguf_writer_set_arr_str(w, "t.arr_str", strs, lens, 3, err);
    return rc;
}

static bool str_is(mh_gguf_str s, const char *want)
{
    return s.len == strlen(want) && !memcmp(s.ptr, want, s.len);
}

static void test_writer_roundtrip(void)
{
    char path[4096];
    tmp_path(path, "rt.gguf");
    mh_err err = {0};
    mh_gguf_writer *w = mh_gguf_writer_new();
    CHECK(w);
    CHECK(set_all_kv(w, &err) == 0);
    CHECK(mh_gguf_writer_set_int(w, "general.alignment", MH_GGUF_UINT32, 64, &err) == 0);
    CHECK(mh_gguf_writer_set_int(w, "t.u8", MH_GGUF_UINT8, 7, &err) == 0);   /* replaced in place */
    float v[5] = { 1, 2, 3, 4, 5 };
    uint16_t h[64];
    for (int i = 0; i < 64; i++) h[i] = mh_f32_to_f16((float)i * 0.25f);
    mh_block_q8_0 q[2];
    float qsrc[64];
    for (int i = 0; i < 64; i++) qsrc[i] = sinf((float)i);
    CHECK(mh_quantize_row(MH_DTYPE_Q8_0, qsrc, q, 64) == 0);
    CHECK(mh_gguf_writer_add_tensor(w, "vec", 1, (int64_t[4]){5}, MH_DTYPE_F32, &err) == 0);
    CHECK(mh_gguf_writer_add_tensor(w, "mat", 2, (int64_t[4]){16, 4}, MH_DTYPE_F16, &err) == 0);
    CHECK(mh_gguf_writer_add_tensor(w, "q", 2, (int64_t[4]){32, 2}, MH_DTYPE_Q8_0, &err) == 0);
    CHECK(mh_gguf_writer_begin(w, path, &err) == 0);
    uint8_t all[sizeof v + sizeof h + sizeof q];   /* sent in 7-byte pieces across tensors */
    memcpy(all, v, sizeof v);
    memcpy(all + sizeof v, h, sizeof h);
    memcpy(all + sizeof v + sizeof h, q, sizeof q);
    for (size_t off = 0; off < sizeof all; off += 7) {
        size_t k = sizeof all - off < 7 ? sizeof all - off : 7;
        CHECK(mh_gguf_writer_write_data(w, all + off, k, &err) == 0);
    }
    CHECK(mh_gguf_writer_finish(w, &err) == 0);
    mh_gguf_writer_free(w);

    mh_gguf *g = NULL;
    CHECK_MSG(mh_gguf_open(path, &g, &err) == 0, "%s", err.msg);
    int64_t iv;
    double fv;
    bool bv;
    mh_gguf_str s;
    CHECK(mh_gguf_version(g) == 3 && mh_gguf_alignment(g) == 64 && mh_gguf_n_kv(g) == 19);
    CHECK(!strcmp(mh_gguf_kv_at(g, 0)->key, "t.u8"));      /* kept its place */
    CHECK(mh_gguf_get_int(g, "t.u8", &iv) && iv == 7);
    CHECK(mh_gguf_get_int(g, "t.i8", &iv) && iv == -100);
    CHECK(mh_gguf_get_int(g, "t.u16", &iv) && iv == 60000);
    CHECK(mh_gguf_get_int(g, "t.i16", &iv) && iv == -30000);
    CHECK(mh_gguf_get_int(g, "t.u32", &iv) && iv == 4000000000LL);
    CHECK(mh_gguf_get_int(g, "t.i32", &iv) && iv == -2000000000LL);
    CHECK(mh_gguf_get_float(g, "t.f32", &fv) && fv == 1.5);
    CHECK(mh_gguf_get_bool(g, "t.bool", &bv) && bv);
    CHECK(mh_gguf_get_str(g, "t.str", &s) && str_is(s, "hello"));
    CHECK(mh_gguf_get_int(g, "t.u64", &iv) && iv == (int64_t)(1ULL << 62));
    CHECK(mh_gguf_get_int(g, "t.i64", &iv) && iv == -(1LL << 60));
    CHECK(mh_gguf_get_float(g, "t.f64", &fv) && fv == 3.141592653589793);
    CHECK(mh_gguf_find(g, "t.f64")->type == MH_GGUF_FLOAT64);
    const mh_gguf_kv *a = mh_gguf_get_arr(g, "t.arr_i16", MH_GGUF_INT16);
    CHECK(a && a->n == 3 && mh_gguf_arr_int(a, 2) == -300);
    a = mh_gguf_get_arr(g, "t.arr_f32", MH_GGUF_FLOAT32);
    CHECK(a && a->n == 2 && mh_gguf_arr_float(a, 1) == -2.25);
    a = mh_gguf_get_arr(g, "t.arr_f64", MH_GGUF_FLOAT64);
    CHECK(a && mh_gguf_arr_float(a, 0) == 1e300);
    a = mh_gguf_get_arr(g, "t.arr_bool", MH_GGUF_BOOL);
    CHECK(a && a->n == 2 && mh_gguf_arr_int(a, 0) == 1 && mh_gguf_arr_int(a, 1) == 0);
    a = mh_gguf_get_arr(g, "t.arr_empty", MH_GGUF_UINT32);
    CHECK(a && a->n == 0);
    a = mh_gguf_get_arr(g, "t.arr_str", MH_GGUF_STRING);
    CHECK(a && a->n == 3 && str_is(mh_gguf_arr_str(a, 0), "alpha") &&
          str_is(mh_gguf_arr_str(a, 1), "") && str_is(mh_gguf_arr_str(a, 2), "g\xc3\xa4mma"));
    CHECK(mh_gguf_data_offset(g) % 64 == 0);
    const mh_gguf_tensor *t0 = mh_gguf_find_tensor(g, "vec"), *t1 = mh_gguf_find_tensor(g, "mat"),
                         *t2 = mh_gguf_find_tensor(g, "q");
    CHECK(t0 && t1 && t2 && t0->n_dims == 1 && t1->n_dims == 2 && t1->ne[0] == 16 && t1->ne[1] == 4);
    CHECK(t0->offset == 0 && t1->offset == 64 && t2->offset == 192);
    CHECK(t2->dtype == MH_DTYPE_Q8_0 && t2->nbytes == sizeof q);
    CHECK(!memcmp(t0->data, v, sizeof v) && !memcmp(t1->data, h, sizeof h) &&
          !memcmp(t2->data, q, sizeof q));
    const uint8_t *pad = (const uint8_t *)t0->data + sizeof v;
    for (int i = 0; i < 64 - (int)sizeof v; i++) CHECK(pad[i] == 0);   /* zero padding */
    CHECK(mh_gguf_file_size(g) == mh_gguf_data_offset(g) + 192 + 68 + 60);
    mh_gguf_close(g);
    remove_all();
}

static void test_writer_default_alignment(void)
{
    char path[4096];
    tmp_path(path, "a32.gguf");
    mh_err err = {0};
    mh_gguf_writer *w = mh_gguf_writer_new();
    float v[3] = { 1, 2, 3 };
    CHECK(mh_gguf_writer_set_str(w, "general.name", "x", 1, &err) == 0);
    CHECK(mh_gguf_writer_add_tensor(w, "a", 1, (int64_t[4]){3}, MH_DTYPE_F32, &err) == 0);
    CHECK(mh_gguf_writer_add_tensor(w, "b", 1, (int64_t[4]){3}, MH_DTYPE_F32, &err) == 0);
    CHECK(mh_gguf_writer_begin(w, path, &err) == 0);
    CHECK(mh_gguf_writer_write_data(w, v, sizeof v, &err) == 0);
    CHECK(mh_gguf_writer_write_data(w, v, sizeof v, &err) == 0);
    CHECK(mh_gguf_writer_finish(w, &err) == 0);
    mh_gguf_writer_free(w);
    mh_gguf *g = NULL;
    CHECK(mh_gguf_open(path, &g, &err) == 0);
    CHECK(mh_gguf_alignment(g) == 32 && mh_gguf_data_offset(g) % 32 == 0);
    CHECK(mh_gguf_tensor_at(g, 1)->offset == 32);
    mh_gguf_close(g);
    remove_all();
}

static void test_writer_errors(void)
{
    mh_err err = {0};
    char path[4096];
    mh_gguf_writer *w = mh_gguf_writer_new();
    float v[32] = {0};
    CHECK(mh_gguf_writer_add_tensor(w, "a", 2, (int64_t[4]){32, 1}, MH_DTYPE_F32, &err) == 0);
    CHECK(mh_gguf_writer_add_tensor(w, "a", 1, (int64_t[4]){4}, MH_DTYPE_F32, &err) == MH_EINVAL);
    CHECK(mh_gguf_writer_add_tensor(w, "b", 1, (int64_t[4]){33}, MH_DTYPE_Q8_0, &err) == MH_ESHAPE);
    CHECK(mh_gguf_writer_add_tensor(w, "c", 5, (int64_t[4]){1}, MH_DTYPE_F32, &err) == MH_EINVAL);
    CHECK(mh_gguf_writer_set_int(w, "k", MH_GGUF_STRING, 1, &err) == MH_EINVAL);
    CHECK(mh_gguf_writer_set_float(w, "k", MH_GGUF_INT32, 1, &err) == MH_EINVAL);
    CHECK(mh_gguf_writer_set_str(w, "", "x", 1, &err) == MH_EINVAL);
    /* bad directory: MH_EIO naming the path */
    CHECK(mh_gguf_writer_begin(w, "/nonexistent-dir/out.gguf", &err) == MH_EIO);
    CHECK(strstr(err.msg, "/nonexistent-dir/out.gguf") != NULL);
    CHECK(mh_gguf_writer_write_data(w, v, 4, &err) == MH_EINVAL);
    mh_gguf_writer_free(w);
    /* a missing tensor's data: no file under the final name, no temp left */
    tmp_path(path, "short.gguf");
    w = mh_gguf_writer_new();
    CHECK(mh_gguf_writer_add_tensor(w, "a", 1, (int64_t[4]){32}, MH_DTYPE_F32, &err) == 0);
    CHECK(mh_gguf_writer_begin(w, path, &err) == 0);
    CHECK(mh_gguf_writer_write_data(w, v, 64, &err) == 0);
    CHECK(mh_gguf_writer_finish(w, &err) == MH_EINVAL);
    CHECK(strstr(err.msg, "'a'") != NULL);
    mh_gguf_writer_free(w);
    CHECK(access(path, F_OK) != 0 && dir_entries() == 0);
    /* too much data */
    w = mh_gguf_writer_new();
    CHECK(mh_gguf_writer_add_tensor(w, "a", 1, (int64_t[4]){4}, MH_DTYPE_F32, &err) == 0);
    CHECK(mh_gguf_writer_begin(w, path, &err) == 0);
    CHECK(mh_gguf_writer_write_data(w, v, 20, &err) == MH_EINVAL);
    mh_gguf_writer_free(w);
    CHECK(access(path, F_OK) != 0 && dir_entries() == 0);
    /* abandoned writer: free removes its temporary file */
    w = mh_gguf_writer_new();
    CHECK(mh_gguf_writer_begin(w, path, &err) == 0 && dir_entries() == 1);
    CHECK(temp_is_ours());
    mh_gguf_writer_free(w);
    CHECK(dir_entries() == 0);
}

/* A full disk, simulated with a file size limit (EFBIG instead of ENOSPC). */
static void test_writer_disk_full(void)
{
    char path[4096];
    tmp_path(path, "full.gguf");
    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 1 << 16;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    mh_err err = {0};
    mh_gguf_writer *w = mh_gguf_writer_new();
    static float big[1 << 16];
    int rc = mh_gguf_writer_add_tensor(w, "big", 1, (int64_t[4]){1 << 16}, MH_DTYPE_F32, &err);
    if (!rc) rc = mh_gguf_writer_begin(w, path, &err);
    for (int i = 0; i < 4 && !rc; i++) rc = mh_gguf_writer_write_data(w, big, sizeof big / 4, &err);
    if (!rc) rc = mh_gguf_writer_finish(w, &err);
    mh_gguf_writer_free(w);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK_MSG(rc == MH_EIO, "rc %d", rc);
    CHECK(strstr(err.msg, path) != NULL);
    CHECK(access(path, F_OK) != 0 && dir_entries() == 0);
}

/* ===== type rules ===== */

static void test_pick_type_rules(void)
{
    mh_quant_model_info tied = { 4, false }, sep = { 5, true };
    bool fb;
    /* Q4_K_M on 4 layers: Q6_K for token_embd (tied output) and blk.2/3 attn_v, ffn_down */
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q4_K_M, "token_embd.weight", 256, &tied, &fb) == MH_DTYPE_Q6_K);
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q4_K_M, "blk.0.attn_v.weight", 256, &tied, &fb) == MH_DTYPE_Q4_K);
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q4_K_M, "blk.1.ffn_down.weight", 768, &tied, &fb) == MH_DTYPE_Q4_K);
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q4_K_M, "blk.2.attn_v.weight", 256, &tied, &fb) == MH_DTYPE_Q6_K);
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q4_K_M, "blk.3.ffn_down.weight", 768, &tied, &fb) == MH_DTYPE_Q6_K);
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q5_K_M, "blk.3.attn_q.weight", 256, &tied, &fb) == MH_DTYPE_Q5_K);
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q5_K_M, "blk.3.attn_v.weight", 256, &tied, &fb) == MH_DTYPE_Q6_K);
    /* 30 layers: first 3, last 4 and every third between */
    mh_quant_model_info l30 = { 30, true };
    int more[30] = {0};
    for (int i = 0; i < 30; i++) {
        char n[64];
        snprintf(n, sizeof n, "blk.%d.ffn_down.weight", i);
        more[i] = mh_quantize_pick_type(MH_FTYPE_Q4_K_M, n, 1536, &l30, &fb) == MH_DTYPE_Q6_K;
    }
    CHECK(more[0] && more[2] && !more[3] && more[5] && !more[6] && more[8] && more[26] && more[29]);
    CHECK(!more[25] && more[23]);
    /* Q8_0 keeps a tied embedding Q8_0; Q4_0 makes it Q6_K */
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q8_0, "token_embd.weight", 256, &tied, &fb) == MH_DTYPE_Q8_0);
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q4_0, "token_embd.weight", 256, &tied, &fb) == MH_DTYPE_Q6_K);
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q4_0, "token_embd.weight", 64, &sep, &fb) == MH_DTYPE_Q4_0);
    /* stories260K: output 64 wide -> Q8_0; ffn_down rows of 172 -> F16 */
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q4_0, "output.weight", 64, &sep, &fb) == MH_DTYPE_Q8_0 && fb);
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q4_0, "blk.1.ffn_down.weight", 172, &sep, &fb) == MH_DTYPE_F16 && fb);
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q4_K_M, "blk.1.attn_q.weight", 64, &sep, &fb) == MH_DTYPE_Q5_0 && fb);
    CHECK(mh_quantize_pick_type(MH_FTYPE_Q5_K_M, "blk.1.attn_q.weight", 64, &sep, &fb) == MH_DTYPE_Q5_1);
    CHECK(mh_quantize_pick_type(MH_FTYPE_F16, "output.weight", 64, &sep, &fb) == MH_DTYPE_F16 && !fb);
    CHECK(mh_quantize_wants("blk.0.attn_q.weight", 2) && !mh_quantize_wants("blk.0.attn_norm.weight", 2));
    CHECK(!mh_quantize_wants("blk.0.attn_q.bias", 1) && !mh_quantize_wants("rope_freqs.weight", 1));
    CHECK(mh_ftype_from_name("q4_k_m") == 15 && mh_ftype_from_name("BF16") == 32 &&
          mh_ftype_from_name("Q3_X") == -1 && !strcmp(mh_ftype_name(7), "Q8_0"));
}

/* ===== against llama-quantize's files ===== */

/* Quantizes models/<src> to ftype and compares every tensor with models/<ref>:
 * same type; bytes identical, or (max_diff_steps > 0) dequantized values
 * within that many quantization steps of the reference. */
static void compare_with_reference(const char *src, const char *ref, mh_ftype ftype,
                                   int *n_diff_tensors, mh_err *err, int *status)
{
    char sp[4096], rp[4096], out[4096];
    *status = -1;
    if (!test_data_path(src, sp) || !test_data_path(ref, rp)) return;
    tmp_path(out, "q.gguf");
    mh_quantize_stats st;
    if (mh_quantize_file(sp, out, ftype, &st, err)) { *status = 1; return; }
    mh_gguf *a = NULL, *b = NULL;
    *status = 2;
    if (mh_gguf_open(out, &a, err) || mh_gguf_open(rp, &b, err)) goto done;
    *status = 3;
    if (mh_gguf_n_tensors(a) != mh_gguf_n_tensors(b)) goto done;
    *n_diff_tensors = 0;
    for (int64_t i = 0; i < mh_gguf_n_tensors(a); i++) {
        const mh_gguf_tensor *x = mh_gguf_tensor_at(a, i), *y = mh_gguf_find_tensor(b, x->name);
        if (!y || x->ggml_type != y->ggml_type || x->nbytes != y->nbytes) {
            fprintf(stderr, "  tensor %s: type %s, reference %s\n", x->name,
                    mh_gguf_ggml_type_name(x->ggml_type), y ? mh_gguf_ggml_type_name(y->ggml_type) : "-");
            goto done;
        }
        if (memcmp(x->data, y->data, x->nbytes)) ++*n_diff_tensors;
    }
    int64_t ft = -1;
    *status = mh_gguf_get_int(a, "general.file_type", &ft) && ft == ftype ? 0 : 4;
done:
    mh_gguf_close(a);
    mh_gguf_close(b);
    remove_all();
}

static void test_quantize_q8_0_identical(void)
{
    mh_err err = {0};
    int nd = -1, st;
    compare_with_reference("models/mh-smol-llama-17m-F16.gguf", "models/mh-smol-llama-17m-Q8_0.gguf",
                           MH_FTYPE_Q8_0, &nd, &err, &st);
    if (st < 0) TEST_SKIP("models/mh-smol-llama-17m-{F16,Q8_0}.gguf not found");
    CHECK_MSG(st == 0, "status %d: %s", st, err.msg);
    CHECK_MSG(nd == 0, "%d tensors differ", nd);
}

static void test_quantize_q4_0_identical(void)
{
    mh_err err = {0};
    int nd = -1, st;
    compare_with_reference("models/mh-smol-llama-17m-F16.gguf", "models/mh-smol-llama-17m-Q4_0.gguf",
                           MH_FTYPE_Q4_0, &nd, &err, &st);
    if (st < 0) TEST_SKIP("models/mh-smol-llama-17m-{F16,Q4_0}.gguf not found");
    CHECK_MSG(st == 0, "status %d: %s", st, err.msg);
    CHECK_MSG(nd == 0, "%d tensors differ", nd);
}

static void test_quantize_q4_k_m_identical(void)
{
    mh_err err = {0};
    int nd = -1, st;
    compare_with_reference("models/mh-smol-llama-17m-F16.gguf", "models/mh-smol-llama-17m-Q4_K_M.gguf",
                           MH_FTYPE_Q4_K_M, &nd, &err, &st);
    if (st < 0) TEST_SKIP("models/mh-smol-llama-17m-{F16,Q4_K_M}.gguf not found");
    CHECK_MSG(st == 0, "status %d: %s", st, err.msg);
    CHECK_MSG(nd == 0, "%d tensors differ", nd);
}

static void test_quantize_stories_fallbacks(void)
{
    mh_err err = {0};
    int nd = -1, st;
    compare_with_reference("models/stories260K.gguf", "models/stories260K-Q4_0.gguf",
                           MH_FTYPE_Q4_0, &nd, &err, &st);
    if (st < 0) TEST_SKIP("models/stories260K{,-Q4_0}.gguf not found");
    CHECK_MSG(st == 0, "status %d: %s", st, err.msg);
    CHECK_MSG(nd == 0, "%d tensors differ", nd);
    compare_with_reference("models/stories260K.gguf", "models/stories260K-Q8_0.gguf",
                           MH_FTYPE_Q8_0, &nd, &err, &st);
    CHECK_MSG(st == 0 && nd == 0, "status %d, %d tensors differ: %s", st, nd, err.msg);
}

/* ===== the progress hook ===== */

typedef struct { int calls, rising; uint64_t last, total; } prog_log;

static void log_progress(void *ud, uint64_t done, uint64_t total)
{
    prog_log *p = ud;
    if (p->calls++ && (done <= p->last || total != p->total)) p->rising = 0;
    p->last = done;
    p->total = total;
}

/* create and quantize call the hook after every chunk with rising bytes and
 * one total, the last call at done == total (what "100 %" prints from). */
static void test_progress_hook(void)
{
    mh_create_config c = { 0 };
    snprintf(c.arch, sizeof c.arch, "llama");
    snprintf(c.name, sizeof c.name, "progress-test");
    c.n_layer = 3; c.n_embd = 64; c.n_ff = 128; c.n_head = 4; c.n_head_kv = 2; c.n_vocab = 259;
    c.n_ctx = 64; c.rope_base = 10000; c.rms_eps = 1e-5; c.tied = true;
    prog_log cp = { 0, 1, 0, 0 }, qp = { 0, 1, 0, 0 };
    mh_create_opts o = { .ftype = MH_FTYPE_Q8_0, .seed = 1, .progress = log_progress, .progress_ud = &cp };
    char in[4096], out[4096];
    tmp_path(in, "p.gguf");
    tmp_path(out, "p-q4.gguf");
    mh_err err = {0};
    mh_create_stats cs;
    CHECK_MSG(mh_create_model(&c, &o, in, &cs, &err) == MH_OK, "%s", err.msg);
    CHECK(cp.calls >= cs.n_tensors && cp.rising && cp.last == cp.total && cp.total > 0);
    CHECK(cp.total < cs.file_bytes);   /* tensor bytes: the file adds its header */
    mh_quantize_stats qs;
    CHECK_MSG(mh_quantize_file_cb(in, out, MH_FTYPE_Q4_0, log_progress, &qp, &qs, &err) == MH_OK,
              "%s", err.msg);
    CHECK(qp.calls >= qs.n_tensors && qp.rising && qp.last == qp.total && qp.total == qs.bytes_in);
    remove(in);
    remove(out);
}

static void test_quantize_errors(void)
{
    mh_err err = {0};
    char out[4096];
    tmp_path(out, "x.gguf");
    CHECK(mh_quantize_file("/nonexistent.gguf", out, MH_FTYPE_Q8_0, NULL, &err) == MH_EIO);
    CHECK(mh_quantize_file("/nonexistent.gguf", out, (mh_ftype)99, NULL, &err) == MH_EINVAL);
    CHECK(dir_entries() == 0);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/mh_test_quantize.%d", (int)getpid());
    if (mkdir(g_dir, 0700) != 0) { perror(g_dir); return 1; }
    TEST_RUN(test_writer_roundtrip);
    TEST_RUN(test_writer_default_alignment);
    TEST_RUN(test_writer_errors);
    TEST_RUN(test_writer_disk_full);
    TEST_RUN(test_pick_type_rules);
    TEST_RUN(test_quantize_errors);
    TEST_RUN(test_progress_hook);
    TEST_RUN(test_quantize_q8_0_identical);
    TEST_RUN(test_quantize_q4_0_identical);
    TEST_RUN(test_quantize_q4_k_m_identical);
    TEST_RUN(test_quantize_stories_fallbacks);
    remove_all();
    rmdir(g_dir);
    return TEST_REPORT();
}
