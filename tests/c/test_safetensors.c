/* test_safetensors.c: the safetensors reader and writer — round trips for
 * every dtype, the exact byte layout of the spec, sharded checkpoints,
 * corrupt and truncated files (errors, never crashes), an interrupted write,
 * and the shared HF model (38 BF16 tensors), re-saved byte for byte.
 * Layer: tests (C, links libmh). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "harness.h"
#include "mh/safetensors.h"

static char dir[64];

static const char *tpath(const char *name)
{
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static int write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

/* A file made of a u64 header length, the header text (unpadded), data. */
static int write_raw(const char *path, const char *hdr, const void *data, size_t nd)
{
    size_t h = strlen(hdr);
    unsigned char *b = malloc(8 + h + nd + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(((uint64_t)h >> (8 * i)) & 0xff);
    memcpy(b + 8, hdr, h);
    if (nd) memcpy(b + 8 + h, data, nd);
    int rc = write_bytes(path, b, 8 + h + nd);
    free(b);
    return rc;
}

static int count_dir_entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* ===== round trips ===== */
static void test_roundtrip_all_dtypes(void)
{
    const mh_dtype dts[] = { MH_DTYPE_F32, MH_DTYPE_F16, MH_DTYPE_BF16, MH_DTYPE_I32,
                             MH_DTYPE_I64, MH_DTYPE_U8, MH_DTYPE_I8 };
    const char *names[] = { "f32", "f16", "bf16", "i32", "i64", "u8", "i8" };
    mh_st_named in[7];
    mh_tensor *ts[7];
    mh_err err = {0};
    for (int i = 0; i < 7; i++) {
        int64_t shape[3] = { 2, 3, 5 - i % 3 };
        ts[i] = mh_tensor_new(dts[i], 3, shape, &err);
        CHECK(ts[i]);
        unsigned char *p = mh_tensor_data(ts[i]);
        for (size_t b = 0; b < mh_tensor_nbytes(ts[i]); b++) p[b] = (unsigned char)(b * 37 + i + 1);
        if (dts[i] == MH_DTYPE_F32)   /* keep the floats finite: bytes are compared anyway */
            for (int64_t e = 0; e < mh_tensor_numel(ts[i]); e++) ((float *)p)[e] = (float)e * 0.25f - 3;
        in[i] = (mh_st_named){ names[i], ts[i] };
    }
    const char *meta[] = { "format", "pt", "note", "héllo \"quoted\"" };
    CHECK_MSG(mh_safetensors_save(tpath("all.safetensors"), in, 7, meta, 2, &err) == MH_OK, "%s", err.msg);
    mh_safetensors *st = mh_safetensors_open(tpath("all.safetensors"), &err);
    CHECK_MSG(st, "%s", err.msg);
    CHECK(mh_safetensors_count(st) == 7);
    CHECK(!strcmp(mh_safetensors_meta_get(st, "note"), "héllo \"quoted\""));
    CHECK(!strcmp(mh_safetensors_meta_get(st, "format"), "pt"));
    for (int i = 0; i < 7; i++) {
        int k = mh_safetensors_find(st, names[i]);
        CHECK(k >= 0);
        const mh_st_info *inf = mh_safetensors_info(st, k);
        CHECK(inf->dtype == (int)dts[i] && inf->ndim == 3 && inf->shape[2] == ts[i]->shape[2]);
        CHECK(inf->begin % mh_dtype_info(dts[i])->type_size == 0);   /* aligned */
        mh_tensor *t = mh_safetensors_get(st, names[i], &err);
        CHECK_MSG(t, "%s", err.msg);
        CHECK(t->dtype == dts[i] && mh_tensor_numel(t) == mh_tensor_numel(ts[i]));
        CHECK(memcmp(mh_tensor_data(t), mh_tensor_data(ts[i]), mh_tensor_nbytes(t)) == 0);
        CHECK(t->st->free_fn != NULL && t->st->nbytes > mh_tensor_nbytes(t));  /* a view on the map */
        mh_tensor_release(t);
    }
    /* a tensor outlives its handle, and writing to it leaves the file alone */
    mh_tensor *t = mh_safetensors_get(st, "f32", &err);
    mh_safetensors_close(st);
    ((float *)mh_tensor_data(t))[0] = 1234.5f;
    mh_tensor_release(t);
    st = mh_safetensors_open(tpath("all.safetensors"), &err);
    t = mh_safetensors_get(st, "f32", &err);
    CHECK(((float *)mh_tensor_data(t))[0] == -3.0f);
    mh_tensor_release(t);
    mh_safetensors_close(st);
    for (int i = 0; i < 7; i++) mh_tensor_release(ts[i]);
}

static void test_noncontiguous_scalar_empty(void)
{
    mh_err err = {0};
    int64_t shape[2] = { 3, 4 }, zero[2] = { 0, 7 };
    double v[12];
    for (int i = 0; i < 12; i++) v[i] = i;
    mh_tensor *a = mh_tensor_from_doubles(MH_DTYPE_F32, 2, shape, v, 12, &err);
    mh_tensor *at = mh_tensor_transpose(a, 0, 1, &err);        /* (4, 3), strided */
    mh_tensor *s = mh_tensor_full(MH_DTYPE_I64, 0, NULL, 42, &err);
    mh_tensor *e = mh_tensor_new(MH_DTYPE_F16, 2, zero, &err);
    CHECK(a && at && s && e && !mh_tensor_is_contiguous(at));
    mh_st_named in[] = { { "at", at }, { "scalar", s }, { "empty", e } };
    CHECK_MSG(mh_safetensors_save(tpath("nc.safetensors"), in, 3, NULL, 0, &err) == MH_OK, "%s", err.msg);
    mh_safetensors *st = mh_safetensors_open(tpath("nc.safetensors"), &err);
    CHECK_MSG(st, "%s", err.msg);
    CHECK(mh_safetensors_meta_count(st) == 0);
    mh_tensor *r = mh_safetensors_get(st, "at", &err);
    CHECK(r && r->ndim == 2 && r->shape[0] == 4 && r->shape[1] == 3);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) CHECK(((float *)mh_tensor_data(r))[i * 3 + j] == (float)(j * 4 + i));
    mh_tensor *rs = mh_safetensors_get(st, "scalar", &err);
    CHECK(rs && rs->ndim == 0 && *(int64_t *)mh_tensor_data(rs) == 42);
    mh_tensor *re = mh_safetensors_get(st, "empty", &err);
    CHECK(re && re->ndim == 2 && re->shape[0] == 0 && re->shape[1] == 7);
    mh_tensor_release(r); mh_tensor_release(rs); mh_tensor_release(re);
    mh_safetensors_close(st);
    mh_tensor_release(a); mh_tensor_release(at); mh_tensor_release(s); mh_tensor_release(e);
}

/* ===== the exact bytes of the spec ===== */
static void test_exact_layout(void)
{
    mh_err err = {0};
    int64_t s2[1] = { 2 }, s3[1] = { 3 };
    double fv[2] = { 1.0, -2.0 }, uv[3] = { 7, 8, 9 };
    mh_tensor *b = mh_tensor_from_doubles(MH_DTYPE_F32, 1, s2, fv, 2, &err);
    mh_tensor *a = mh_tensor_from_doubles(MH_DTYPE_U8, 1, s3, uv, 3, &err);
    CHECK(a && b);
    /* U8 "a" sorts first by name but goes after F32 "b": alignment first */
    mh_st_named in[] = { { "a", a }, { "b", b } };
    const char *meta[] = { "format", "pt" };
    CHECK(mh_safetensors_save(tpath("exact.safetensors"), in, 2, meta, 1, &err) == MH_OK);
    const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}";
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8, n;
    unsigned char want[512] = {0};
    want[0] = (unsigned char)padded;                         /* u64 little endian */
    memcpy(want + 8, json, jl);
    memset(want + 8 + jl, ' ', padded - jl);
    const unsigned char fdata[8] = { 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0 }; /* 1.0f, -2.0f LE */
    memcpy(want + 8 + padded, fdata, 8);
    want[16 + padded] = 7; want[17 + padded] = 8; want[18 + padded] = 9;
    unsigned char *got = read_bytes(tpath("exact.safetensors"), &n);
    CHECK(got);
    int same = n == 19 + padded && memcmp(got, want, n) == 0;
    free(got);
    CHECK_MSG(same, "file is %zu bytes, want %zu", n, 19 + padded);
    mh_tensor_release(a); mh_tensor_release(b);
}

/* ===== bad inputs to the writer ===== */
static void test_save_rejects(void)
{
    mh_err err = {0};
    int64_t s[1] = { 32 };
    mh_tensor *q = mh_tensor_new(MH_DTYPE_Q8_0, 1, s, &err);
    mh_tensor *f = mh_tensor_new(MH_DTYPE_F32, 1, s, &err);
    CHECK(q && f);
    mh_st_named dup[] = { { "x", f }, { "x", f } };
    CHECK(mh_safetensors_save(tpath("bad.safetensors"), dup, 2, NULL, 0, &err) == MH_EINVAL);
    CHECK(strstr(err.msg, "twice"));
    mh_st_named qq[] = { { "q", q } };
    CHECK(mh_safetensors_save(tpath("bad.safetensors"), qq, 1, NULL, 0, &err) == MH_ETYPE);
    mh_st_named md[] = { { "__metadata__", f } };
    CHECK(mh_safetensors_save(tpath("bad.safetensors"), md, 1, NULL, 0, &err) == MH_EINVAL);
    mh_st_named ok[] = { { "x", f } };
    CHECK(mh_safetensors_save("/nonexistent-dir/x.safetensors", ok, 1, NULL, 0, &err) == MH_EIO);
    CHECK(access(tpath("bad.safetensors"), F_OK) != 0);
    mh_tensor_release(q); mh_tensor_release(f);
}

/* A write that fails half way (file size limit, as a full disk would) must
 * leave the old file in place and no temporary behind. */
static void test_failed_write_keeps_old_file(void)
{
    mh_err err = {0};
    int64_t small[1] = { 4 }, big[1] = { 1 << 16 };
    mh_tensor *s = mh_tensor_full(MH_DTYPE_F32, 1, small, 1.5, &err);
    mh_tensor *b = mh_tensor_full(MH_DTYPE_F32, 1, big, 2.5, &err);
    mh_st_named ins[] = { { "w", s } }, inb[] = { { "w", b } };
    CHECK(mh_safetensors_save(tpath("keep.safetensors"), ins, 1, NULL, 0, &err) == MH_OK);
    int before = count_dir_entries();
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 16384;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    int rc = mh_safetensors_save(tpath("keep.safetensors"), inb, 1, NULL, 0, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(rc == MH_EIO);
    CHECK(count_dir_entries() == before);
    mh_safetensors *st = mh_safetensors_open(tpath("keep.safetensors"), &err);
    CHECK(st);
    mh_tensor *t = mh_safetensors_get(st, "w", &err);
    CHECK(t && t->shape[0] == 4 && ((float *)mh_tensor_data(t))[3] == 1.5f);
    mh_tensor_release(t);
    mh_safetensors_close(st);
    mh_tensor_release(s); mh_tensor_release(b);
}

/* ===== corrupt files ===== */
static int open_code(const char *path, char *msg)
{
    mh_err err = {0};
    mh_safetensors *st = mh_safetensors_open(path, &err);
    if (st) { mh_safetensors_close(st); return MH_OK; }
    if (msg) snprintf(msg, 512, "%s", err.msg);
    return err.code;
}

static void test_corrupt_headers(void)
{
    static const struct { const char *hdr; size_t ndata; const char *want; } cases[] = {
        { "[1,2]", 0, "not a JSON object" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]", 8, "not a JSON object" },
        { "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "needs dtype" },
        { "{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, "truncated" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "bad data_offsets" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "bad data_offsets" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12 bytes" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "bad shape" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "bad shape" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, "dims" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "2^53" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlap" },
        { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "twice" },
        { "{\"__metadata__\":{\"k\":1}}", 0, "not a string" },
        { "{\"__metadata__\":[]}", 0, "must be an object" },
        { "{} xyz", 0, "junk" },
        { "", 0, "header length" },
    };
    unsigned char data[16] = {0};
    char msg[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(write_raw(tpath("c.safetensors"), cases[i].hdr, data, cases[i].ndata) == 0);
        int rc = open_code(tpath("c.safetensors"), msg);
        CHECK_MSG(rc == MH_EFORMAT && strstr(msg, cases[i].want), "case %zu: rc %d msg '%s'", i, rc, msg);
    }
    /* header length larger than the file, and absurdly large */
    unsigned char b[16] = { 200, 0, 0, 0, 0, 0, 0, 0, '{', '}' };
    CHECK(write_bytes(tpath("c.safetensors"), b, 10) == 0);
    CHECK(open_code(tpath("c.safetensors"), msg) == MH_EFORMAT && strstr(msg, "header length"));
    memset(b, 0xff, 8);
    CHECK(write_bytes(tpath("c.safetensors"), b, 16) == 0);
    CHECK(open_code(tpath("c.safetensors"), msg) == MH_EFORMAT);
    CHECK(write_bytes(tpath("c.safetensors"), b, 3) == 0);
    CHECK(open_code(tpath("c.safetensors"), msg) == MH_EFORMAT && strstr(msg, "truncated"));
    CHECK(open_code(tpath("missing.safetensors"), msg) == MH_EIO);
}

/* A header with no tensors ({} or metadata only) is a valid, empty file:
 * it opens (no qsort over a NULL table, which UBSan flags under make asan). */
static void test_empty_header(void)
{
    static const char *hdrs[] = { "{}", "{\"__metadata__\":{\"format\":\"pt\"}}" };
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        mh_err err = {0};
        CHECK(write_raw(tpath("e.safetensors"), hdrs[i], NULL, 0) == 0);
        mh_safetensors *st = mh_safetensors_open(tpath("e.safetensors"), &err);
        CHECK_MSG(st != NULL, "case %zu: %s", i, err.msg);
        CHECK(mh_safetensors_count(st) == 0);
        CHECK(mh_safetensors_find(st, "a") == -1);
        mh_safetensors_close(st);
    }
}

/* A mapped file truncated on disk: a read past its new end gives zeros,
 * not SIGBUS, and mh_safetensors_check names the file (mh/mapguard.h). */
static void test_truncated_while_open(void)
{
    mh_err err = {0};
    int64_t shape[1] = { 8192 };
    mh_tensor *t = mh_tensor_new(MH_DTYPE_F32, 1, shape, &err);
    CHECK(t);
    for (int64_t i = 0; i < 8192; i++) ((float *)mh_tensor_data(t))[i] = 1.0f;
    mh_st_named in[1] = { { "w", t } };
    CHECK(mh_safetensors_save(tpath("tr.safetensors"), in, 1, NULL, 0, &err) == MH_OK);
    mh_tensor_release(t);
    mh_safetensors *st = mh_safetensors_open(tpath("tr.safetensors"), &err);
    CHECK(st);
    mh_tensor *v = mh_safetensors_get(st, "w", &err);
    CHECK(v && mh_safetensors_check(st, &err) == MH_OK);
    CHECK(truncate(tpath("tr.safetensors"), 4096) == 0);
    const volatile float *last = (const float *)mh_tensor_data(v) + 8191;
    CHECK(*last == 0.0f);
    CHECK(mh_safetensors_check(st, &err) == MH_EIO);
    CHECK_MSG(strstr(err.msg, "tr.safetensors was truncated"), "%s", err.msg);
    mh_tensor_release(v);
    mh_safetensors_close(st);
}

/* Every truncation of a valid file, and byte flips in its header: each open
 * either fails cleanly or gives tensors that lie inside the file. */
static void test_truncations_and_flips(void)
{
    mh_err err = {0};
    int64_t s[2] = { 3, 5 };
    mh_tensor *a = mh_tensor_full(MH_DTYPE_F32, 2, s, 1.0, &err);
    mh_tensor *c = mh_tensor_full(MH_DTYPE_I8, 2, s, 3.0, &err);
    mh_st_named in[] = { { "alpha", a }, { "c", c } };
    const char *meta[] = { "k", "v" };
    CHECK(mh_safetensors_save(tpath("v.safetensors"), in, 2, meta, 1, &err) == MH_OK);
    size_t n;
    unsigned char *orig = read_bytes(tpath("v.safetensors"), &n);
    CHECK(orig);
    for (size_t cut = 0; cut < n; cut++) {
        write_bytes(tpath("t.safetensors"), orig, cut);
        int rc = open_code(tpath("t.safetensors"), NULL);
        if (rc != MH_EFORMAT) { free(orig); CHECK_MSG(0, "cut at %zu gave %d", cut, rc); }
    }
    unsigned char *m = malloc(n);
    uint32_t rng = 12345;
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(m, orig, n);
        for (int k = 0; k < 1 + trial % 3; k++) {
            rng = rng * 1664525u + 1013904223u;
            size_t pos = (rng >> 8) % (n < 120 ? n : 120);   /* mostly the header */
            rng = rng * 1664525u + 1013904223u;
            m[pos] = (unsigned char)(rng >> 24);
        }
        write_bytes(tpath("t.safetensors"), m, n);
        mh_safetensors *st = mh_safetensors_open(tpath("t.safetensors"), &err);
        for (int i = 0; st && i < mh_safetensors_count(st); i++) {
            mh_tensor *t = mh_safetensors_tensor(st, i, &err);
            if (!t) continue;
            volatile unsigned char sum = 0;    /* touch every byte of the view */
            for (size_t b = 0; b < mh_tensor_nbytes(t); b++) sum ^= ((unsigned char *)mh_tensor_data(t))[b];
            mh_tensor_release(t);
        }
        mh_safetensors_close(st);
    }
    free(m);
    free(orig);
    mh_tensor_release(a); mh_tensor_release(c);
}

static void test_unsupported_dtype_and_misaligned(void)
{
    mh_err err = {0};
    double d = 2.5;
    float f = 4.25f;
    CHECK(write_raw(tpath("f64.safetensors"), "{\"x\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", &d, 8) == 0);
    mh_safetensors *st = mh_safetensors_open(tpath("f64.safetensors"), &err);
    CHECK(st);
    const mh_st_info *in = mh_safetensors_info(st, 0);
    CHECK(in->dtype == -1 && !strcmp(in->file_dtype, "F64"));
    CHECK(!mh_safetensors_get(st, "x", &err) && err.code == MH_ETYPE && strstr(err.msg, "unsupported dtype F64"));
    CHECK(!mh_safetensors_get(st, "nope", &err) && err.code == MH_ERANGE);
    mh_safetensors_close(st);
    /* 53-byte header: data starts at byte 61, misaligned for F32: read by copy */
    const char *h = "{\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    CHECK(strlen(h) % 4 != 0);
    CHECK(write_raw(tpath("mis.safetensors"), h, &f, 4) == 0);
    st = mh_safetensors_open(tpath("mis.safetensors"), &err);
    CHECK(st);
    mh_tensor *t = mh_safetensors_get(st, "y", &err);
    CHECK(t && ((float *)mh_tensor_data(t))[0] == 4.25f);
    mh_tensor_release(t);
    mh_safetensors_close(st);
}

/* ===== sharded checkpoints ===== */
static void test_sharded(void)
{
    mh_err err = {0};
    char msg[512];
    mkdir(tpath("sh"), 0755);
    int64_t s[1] = { 4 };
    mh_tensor *a = mh_tensor_full(MH_DTYPE_F32, 1, s, 1, &err), *b = mh_tensor_full(MH_DTYPE_F16, 1, s, 2, &err);
    mh_st_named i1[] = { { "layer.0.w", a } }, i2[] = { { "layer.1.w", b } };
    const char *meta[] = { "format", "pt" };
    CHECK(mh_safetensors_save(tpath("sh/model-00001-of-00002.safetensors"), i1, 1, meta, 1, &err) == MH_OK);
    CHECK(mh_safetensors_save(tpath("sh/model-00002-of-00002.safetensors"), i2, 1, NULL, 0, &err) == MH_OK);
    const char *idx = "{\"metadata\":{\"total_size\":24},\"weight_map\":{"
                      "\"layer.0.w\":\"model-00001-of-00002.safetensors\","
                      "\"layer.1.w\":\"model-00002-of-00002.safetensors\"}}";
    CHECK(write_bytes(tpath("sh/model.safetensors.index.json"), idx, strlen(idx)) == 0);
    for (int via = 0; via < 2; via++) {
        mh_safetensors *st = mh_safetensors_open(via ? tpath("sh/model.safetensors.index.json") : tpath("sh"), &err);
        CHECK_MSG(st, "%s", err.msg);
        CHECK(mh_safetensors_count(st) == 2 && mh_safetensors_shard_count(st) == 2);
        CHECK(!strcmp(mh_safetensors_meta_get(st, "format"), "pt"));
        mh_tensor *t = mh_safetensors_get(st, "layer.1.w", &err);
        CHECK(t && t->dtype == MH_DTYPE_F16 && mh_f16_to_f32(((uint16_t *)mh_tensor_data(t))[3]) == 2.0f);
        CHECK(mh_safetensors_info(st, mh_safetensors_find(st, "layer.1.w"))->shard ==
              mh_safetensors_info(st, mh_safetensors_find(st, "layer.0.w"))->shard + 1);
        mh_tensor_release(t);
        mh_safetensors_close(st);
    }
    const char *wrong = "{\"weight_map\":{\"layer.0.w\":\"model-00002-of-00002.safetensors\"}}";
    CHECK(write_bytes(tpath("sh/wrong.index.json"), wrong, strlen(wrong)) == 0);
    CHECK(open_code(tpath("sh/wrong.index.json"), msg) == MH_EFORMAT && strstr(msg, "does not hold"));
    const char *escape = "{\"weight_map\":{\"x\":\"../all.safetensors\"}}";
    CHECK(write_bytes(tpath("sh/escape.index.json"), escape, strlen(escape)) == 0);
    CHECK(open_code(tpath("sh/escape.index.json"), msg) == MH_EFORMAT && strstr(msg, "bad file name"));
    const char *missing = "{\"weight_map\":{\"x\":\"gone.safetensors\"}}";
    CHECK(write_bytes(tpath("sh/missing.index.json"), missing, strlen(missing)) == 0);
    CHECK(open_code(tpath("sh/missing.index.json"), msg) == MH_EIO);
    CHECK(open_code(tpath("sh/model-00001-of-00002.safetensors"), msg) == MH_OK);
    CHECK(open_code(dir, msg) == MH_EIO && strstr(msg, "neither"));
    mh_tensor_release(a); mh_tensor_release(b);
}

/* ===== the shared HF model ===== */
static void test_hf_model(void)
{
    char buf[4096];
    const char *p = test_data_path("models/hf/mh-smol-llama-17m/model.safetensors", buf);
    if (!p) TEST_SKIP("models/hf/mh-smol-llama-17m/model.safetensors not found");
    mh_err err = {0};
    mh_safetensors *st = mh_safetensors_open(p, &err);
    CHECK_MSG(st, "%s", err.msg);
    CHECK(mh_safetensors_count(st) == 38);
    CHECK(!strcmp(mh_safetensors_meta_get(st, "format"), "pt"));
    const mh_st_info *e = mh_safetensors_info(st, mh_safetensors_find(st, "model.embed_tokens.weight"));
    CHECK(e && e->ndim == 2 && e->shape[0] == 49152 && e->shape[1] == 256);
    const mh_st_info *q = mh_safetensors_info(st, mh_safetensors_find(st, "model.layers.3.self_attn.k_proj.weight"));
    CHECK(q && q->ndim == 2 && q->shape[0] == 128 && q->shape[1] == 256);
    const mh_st_info *dn = mh_safetensors_info(st, mh_safetensors_find(st, "model.layers.0.mlp.down_proj.weight"));
    CHECK(dn && dn->shape[0] == 256 && dn->shape[1] == 768);
    mh_st_named all[38];
    for (int i = 0; i < 38; i++) {
        const mh_st_info *in = mh_safetensors_info(st, i);
        CHECK(in->dtype == MH_DTYPE_BF16 && !strcmp(in->file_dtype, "BF16"));
        mh_tensor *t = mh_safetensors_tensor(st, i, &err);
        CHECK(t);
        const uint16_t *v = mh_tensor_data(t);
        int64_t n = mh_tensor_numel(t), bad = 0;
        for (int64_t k = 0; k < n; k++) bad += !isfinite(mh_bf16_to_f32(v[k]));
        CHECK_MSG(bad == 0, "%s has %lld non-finite values", in->name, (long long)bad);
        if (strstr(in->name, "norm")) CHECK_CLOSE(mh_bf16_to_f32(v[0]), 1.0, 0.3, 0);  /* 1 + 0.05 N(0,1) */
        all[i] = (mh_st_named){ in->name, t };
    }
    /* our writer reproduces the file byte for byte */
    const char *meta[] = { "format", "pt" };
    int rc = mh_safetensors_save(tpath("resaved.safetensors"), all, 38, meta, 1, &err);
    for (int i = 0; i < 38; i++) mh_tensor_release((mh_tensor *)all[i].tensor);
    mh_safetensors_close(st);
    CHECK_MSG(rc == MH_OK, "%s", err.msg);
    size_t n1, n2;
    unsigned char *x = read_bytes(p, &n1), *y = read_bytes(tpath("resaved.safetensors"), &n2);
    int same = x && y && n1 == n2 && memcmp(x, y, n1) == 0;
    free(x); free(y);
    unlink(tpath("resaved.safetensors"));
    CHECK(same);
}

static void cleanup(const char *d)
{
    DIR *dd = opendir(d);
    if (!dd) return;
    char p[512];
    for (struct dirent *e; (e = readdir(dd));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) cleanup(p); else unlink(p);
    }
    closedir(dd);
    rmdir(d);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/mh_st_XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    TEST_RUN(test_roundtrip_all_dtypes);
    TEST_RUN(test_noncontiguous_scalar_empty);
    TEST_RUN(test_exact_layout);
    TEST_RUN(test_save_rejects);
    TEST_RUN(test_failed_write_keeps_old_file);
    TEST_RUN(test_corrupt_headers);
    TEST_RUN(test_empty_header);
    TEST_RUN(test_truncated_while_open);
    TEST_RUN(test_truncations_and_flips);
    TEST_RUN(test_unsupported_dtype_and_misaligned);
    TEST_RUN(test_sharded);
    TEST_RUN(test_hf_model);
    cleanup(dir);
    return TEST_REPORT();
}
