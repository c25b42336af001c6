/* gguf.c: GGUF v2/v3 reader over a read-only mmap.
 * Layer: engine/model (pure C11 + POSIX mmap). Parsing walks a bounded
 * cursor: every length, count and offset is checked against the mapping
 * before use, so truncated or corrupt files fail with MH_EFORMAT. */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "mh/gguf.h"
#include "mh/mapguard.h"
#include "mh/dtype.h"

#define GGUF_MAGIC 0x46554747u            /* "GGUF" little-endian */
#define MAX_KV      (1u << 20)            /* far above any real file */
#define MAX_TENSORS (1u << 20)
#define MAX_STR     (1u << 30)

struct mh_gguf {
    void *map;
    size_t size;
    mh_map_guard *guard;        /* a truncated file gives zeros and an error, not SIGBUS */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_off;
    int64_t n_kv, n_tensors;
    mh_gguf_kv *kv;
    mh_gguf_tensor *tensors;
    char warning[256];
};

/* ===== GGML tensor types: name, block size, bytes per block, mh_dtype ===== */

typedef struct { const char *name; int blck; int size; int dtype; } ggml_type_info;

static const ggml_type_info g_ggml[] = {
    [0] = {"f32", 1, 4, MH_DTYPE_F32},       [1] = {"f16", 1, 2, MH_DTYPE_F16},
    [2] = {"q4_0", 32, 18, MH_DTYPE_Q4_0},   [3] = {"q4_1", 32, 20, MH_DTYPE_Q4_1},
    [6] = {"q5_0", 32, 22, MH_DTYPE_Q5_0},   [7] = {"q5_1", 32, 24, MH_DTYPE_Q5_1},
    [8] = {"q8_0", 32, 34, MH_DTYPE_Q8_0},   [9] = {"q8_1", 32, 36, -1},
    [10] = {"q2_K", 256, 84, MH_DTYPE_Q2_K}, [11] = {"q3_K", 256, 110, MH_DTYPE_Q3_K},
    [12] = {"q4_K", 256, 144, MH_DTYPE_Q4_K}, [13] = {"q5_K", 256, 176, MH_DTYPE_Q5_K},
    [14] = {"q6_K", 256, 210, MH_DTYPE_Q6_K}, [15] = {"q8_K", 256, 292, MH_DTYPE_Q8_K},
    [16] = {"iq2_xxs", 256, 66, -1},          [17] = {"iq2_xs", 256, 74, -1},
    [18] = {"iq3_xxs", 256, 98, -1},          [19] = {"iq1_s", 256, 50, -1},
    [20] = {"iq4_nl", 32, 18, -1},            [21] = {"iq3_s", 256, 110, -1},
    [22] = {"iq2_s", 256, 82, -1},            [23] = {"iq4_xs", 256, 136, -1},
    [24] = {"i8", 1, 1, MH_DTYPE_I8},        [25] = {"i16", 1, 2, -1},
    [26] = {"i32", 1, 4, MH_DTYPE_I32},      [27] = {"i64", 1, 8, MH_DTYPE_I64},
    [28] = {"f64", 1, 8, -1},                 [29] = {"iq1_m", 256, 56, -1},
    [30] = {"bf16", 1, 2, MH_DTYPE_BF16},    [34] = {"tq1_0", 256, 54, -1},
    [35] = {"tq2_0", 256, 66, -1},            [39] = {"mxfp4", 32, 17, -1},
};
#define N_GGML ((uint32_t)(sizeof g_ggml / sizeof g_ggml[0]))

const char *mh_gguf_ggml_type_name(uint32_t t)
{
    return t < N_GGML ? g_ggml[t].name : NULL;
}

static const char *g_type_names[MH_GGUF_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool",
    "string", "array", "uint64", "int64", "float64",
};
static const int g_type_size[MH_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *mh_gguf_type_name(int t)
{
    return t >= 0 && t < MH_GGUF_TYPE_COUNT ? g_type_names[t] : "?";
}

/* ===== bounded cursor ===== */

typedef struct {
    const uint8_t *p, *end, *base;
    mh_err *err;
    const char *what;          /* what is being read, for messages */
} cursor;

static int short_read(cursor *c, size_t n)
{
    return mh_err_set(c->err, MH_EFORMAT,
                      "gguf: truncated file: %s needs %zu bytes at offset %zu, %zu left",
                      c->what, n, (size_t)(c->p - c->base), (size_t)(c->end - c->p));
}

static int rd(cursor *c, void *dst, size_t n)
{
    if ((size_t)(c->end - c->p) < n) return short_read(c, n);
    memcpy(dst, c->p, n);
    c->p += n;
    return MH_OK;
}

static int rd_u32(cursor *c, uint32_t *v) { return rd(c, v, 4); }
static int rd_u64(cursor *c, uint64_t *v) { return rd(c, v, 8); }

/* Reads a length-prefixed string; s points into the mapping. */
static int rd_str(cursor *c, mh_gguf_str *s)
{
    uint64_t n = 0;
    int rc = rd_u64(c, &n);
    if (rc) return rc;
    if (n > MAX_STR)
        return mh_err_set(c->err, MH_EFORMAT, "gguf: %s has absurd string length %llu",
                          c->what, (unsigned long long)n);
    if ((uint64_t)(c->end - c->p) < n) return short_read(c, (size_t)n);
    s->ptr = (const char *)c->p;
    s->len = (size_t)n;
    c->p += n;
    return MH_OK;
}

static char *dup_str(mh_gguf_str s)
{
    char *d = malloc(s.len + 1);
    if (!d) return NULL;
    memcpy(d, s.ptr, s.len);
    d[s.len] = 0;
    return d;
}

/* ===== key/value section ===== */

static int read_array(cursor *c, mh_gguf_kv *kv)
{
    uint32_t t;
    uint64_t n;
    int rc = rd_u32(c, &t);
    if (!rc) rc = rd_u64(c, &n);
    if (rc) return rc;
    if (t >= MH_GGUF_TYPE_COUNT || t == MH_GGUF_ARRAY)
        return mh_err_set(c->err, MH_EFORMAT, "gguf: key '%s': bad array element type %u",
                          kv->key, t);
    kv->arr_type = (mh_gguf_type)t;
    kv->n = n;
    kv->data = c->p;
    size_t left = (size_t)(c->end - c->p);
    if (t != MH_GGUF_STRING) {
        size_t es = (size_t)g_type_size[t];
        if (n > left / es)
            return mh_err_set(c->err, MH_EFORMAT,
                              "gguf: key '%s': array of %llu %s runs past the end of the file",
                              kv->key, (unsigned long long)n, g_type_names[t]);
        c->p += n * es;
        return MH_OK;
    }
    if (n > left / 8)   /* each string takes at least its 8-byte length */
        return mh_err_set(c->err, MH_EFORMAT,
                          "gguf: key '%s': array of %llu strings runs past the end of the file",
                          kv->key, (unsigned long long)n);
    kv->strs = malloc((n ? n : 1) * sizeof *kv->strs);
    if (!kv->strs) return mh_err_set(c->err, MH_ENOMEM, "gguf: out of memory");
    for (uint64_t i = 0; i < n; i++) {
        mh_gguf_str s;
        kv->strs[i] = c->p;
        if ((rc = rd_str(c, &s))) return rc;
    }
    return MH_OK;
}

static int read_kv(cursor *c, mh_gguf_kv *kv)
{
    mh_gguf_str key;
    uint32_t t;
    int rc;
    c->what = "key";
    if ((rc = rd_str(c, &key))) return rc;
    if (key.len == 0) return mh_err_set(c->err, MH_EFORMAT, "gguf: empty metadata key");
    if (!(kv->key = dup_str(key))) return mh_err_set(c->err, MH_ENOMEM, "gguf: out of memory");
    c->what = kv->key;
    if ((rc = rd_u32(c, &t))) return rc;
    if (t >= MH_GGUF_TYPE_COUNT)
        return mh_err_set(c->err, MH_EFORMAT, "gguf: key '%s' has unknown value type %u",
                          kv->key, t);
    kv->type = (mh_gguf_type)t;
    kv->n = 1;
    if (t == MH_GGUF_ARRAY) return read_array(c, kv);
    kv->data = c->p;
    if (t == MH_GGUF_STRING) {
        mh_gguf_str s;
        return rd_str(c, &s);
    }
    if ((size_t)(c->end - c->p) < (size_t)g_type_size[t]) return short_read(c, (size_t)g_type_size[t]);
    c->p += g_type_size[t];
    return MH_OK;
}

/* ===== tensor infos ===== */

static int check_tensor_shape(cursor *c, mh_gguf_tensor *ti)
{
    const ggml_type_info *tr = ti->ggml_type < N_GGML ? &g_ggml[ti->ggml_type] : NULL;
    if (!tr || !tr->name)
        return mh_err_set(c->err, MH_EFORMAT, "gguf: tensor '%s' has unknown type %u",
                          ti->name, ti->ggml_type);
    ti->dtype = tr->dtype;
    uint64_t nel = 1;
    for (int d = 0; d < 4; d++) {
        if (ti->ne[d] < 0)
            return mh_err_set(c->err, MH_EFORMAT, "gguf: tensor '%s' has negative dim %d",
                              ti->name, d);
        if (ti->ne[d] && nel > (UINT64_MAX / 2) / (uint64_t)ti->ne[d])
            return mh_err_set(c->err, MH_EFORMAT, "gguf: tensor '%s' has too many elements",
                              ti->name);
        nel *= (uint64_t)ti->ne[d];
    }
    if (ti->ne[0] % tr->blck)
        return mh_err_set(c->err, MH_EFORMAT,
                          "gguf: tensor '%s': row of %lld is not a multiple of %s's block of %d",
                          ti->name, (long long)ti->ne[0], tr->name, tr->blck);
    ti->nbytes = nel / (uint64_t)tr->blck * (uint64_t)tr->size;
    return MH_OK;
}

static int read_tensor_info(cursor *c, mh_gguf_tensor *ti)
{
    mh_gguf_str name;
    uint32_t nd;
    int rc;
    c->what = "tensor name";
    if ((rc = rd_str(c, &name))) return rc;
    if (!(ti->name = dup_str(name))) return mh_err_set(c->err, MH_ENOMEM, "gguf: out of memory");
    c->what = ti->name;
    if ((rc = rd_u32(c, &nd))) return rc;
    if (nd < 1 || nd > 4)
        return mh_err_set(c->err, MH_EFORMAT, "gguf: tensor '%s' has %u dims (1..4 allowed)",
                          ti->name, nd);
    ti->n_dims = (int)nd;
    for (int d = 0; d < 4; d++) ti->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++)
        if ((rc = rd(c, &ti->ne[d], 8))) return rc;
    if ((rc = rd_u32(c, &ti->ggml_type)) || (rc = rd_u64(c, &ti->offset))) return rc;
    return check_tensor_shape(c, ti);
}

/* ===== open / close ===== */

static int parse_header(mh_gguf *g, cursor *c)
{
    uint32_t magic;
    uint64_t n_tensors, n_kv;
    int rc;
    c->what = "header";
    if ((rc = rd_u32(c, &magic))) return rc;
    if (magic != GGUF_MAGIC)
        return mh_err_set(c->err, MH_EFORMAT, "gguf: not a GGUF file (bad magic)");
    if ((rc = rd_u32(c, &g->version))) return rc;
    if (g->version == 1)
        return mh_err_set(c->err, MH_EFORMAT, "gguf: version 1 files are not supported (reconvert)");
    if (g->version != 2 && g->version != 3)
        return mh_err_set(c->err, MH_EFORMAT, "gguf: unsupported version %u%s", g->version,
                          (g->version & 0xffff) == 0 ? " (big-endian file?)" : "");
    if ((rc = rd_u64(c, &n_tensors)) || (rc = rd_u64(c, &n_kv))) return rc;
    if (n_kv > MAX_KV || n_tensors > MAX_TENSORS)
        return mh_err_set(c->err, MH_EFORMAT, "gguf: absurd counts (%llu tensors, %llu keys)",
                          (unsigned long long)n_tensors, (unsigned long long)n_kv);
    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return mh_err_set(c->err, MH_ENOMEM, "gguf: out of memory");
    g->n_kv = (int64_t)n_kv;
    g->n_tensors = (int64_t)n_tensors;
    return MH_OK;
}

static int parse_kvs(mh_gguf *g, cursor *c)
{
    for (int64_t i = 0; i < g->n_kv; i++) {
        int rc = read_kv(c, &g->kv[i]);
        if (rc) return rc;
        for (int64_t j = 0; j < i; j++)   /* refused, as llama.cpp's gguf does */
            if (!strcmp(g->kv[j].key, g->kv[i].key))
                return mh_err_set(c->err, MH_EFORMAT, "gguf: duplicate key '%s' (entries %lld and %lld); "
                                  "llama.cpp refuses such files too: write the key once",
                                  g->kv[i].key, (long long)j + 1, (long long)i + 1);
    }
    int64_t a;
    g->alignment = 32;
    const mh_gguf_kv *kv = mh_gguf_find(g, "general.alignment");
    if (kv) {
        if (kv->type != MH_GGUF_UINT32 || (a = mh_gguf_kv_int(kv)) <= 0 || (a & (a - 1)))
            return mh_err_set(c->err, MH_EFORMAT,
                              "gguf: general.alignment must be a power-of-two uint32");
        g->alignment = (uint32_t)a;
    }
    return MH_OK;
}

static int parse_tensors(mh_gguf *g, cursor *c)
{
    for (int64_t i = 0; i < g->n_tensors; i++) {
        int rc = read_tensor_info(c, &g->tensors[i]);
        if (rc) return rc;
    }
    uint64_t off = (uint64_t)(c->p - c->base);
    g->data_off = (off + g->alignment - 1) / g->alignment * g->alignment;
    uint64_t data_size = g->data_off <= g->size ? g->size - g->data_off : 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        mh_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return mh_err_set(c->err, MH_EFORMAT, "gguf: tensor '%s' offset %llu is not aligned to %u",
                              t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return mh_err_set(c->err, MH_EFORMAT,
                              "gguf: tensor '%s' data (%llu bytes at %llu) runs past the end of the file",
                              t->name, (unsigned long long)t->nbytes, (unsigned long long)t->offset);
        t->data = (const uint8_t *)g->map + g->data_off + t->offset;
        for (int64_t j = 0; j < i; j++)
            if (!strcmp(g->tensors[j].name, t->name))
                return mh_err_set(c->err, MH_EFORMAT, "gguf: duplicate tensor name '%s'", t->name);
    }
    return MH_OK;
}

static int map_file(const char *path, mh_gguf *g, mh_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mh_err_set(err, MH_EIO, "gguf: cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mh_err_set(err, MH_EIO, "gguf: %s is not a regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return mh_err_set(err, MH_EFORMAT, "gguf: %s is too short (%lld bytes) to be a GGUF file",
                          path, (long long)st.st_size);
    }
    g->size = (size_t)st.st_size;
    g->map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (g->map == MAP_FAILED) {
        g->map = NULL;
        close(fd);
        return mh_err_set(err, MH_EIO, "gguf: cannot mmap %s", path);
    }
    g->guard = mh_map_guard_new(fd, g->map, g->size, PROT_READ, path, err);
    close(fd);
    return g->guard ? MH_OK : MH_EIO;
}

int mh_gguf_open(const char *path, mh_gguf **out, mh_err *err)
{
    *out = NULL;
    mh_gguf *g = calloc(1, sizeof *g);
    if (!g) return mh_err_set(err, MH_ENOMEM, "gguf: out of memory");
    int rc = map_file(path, g, err);
    if (!rc) {
        cursor c = { g->map, (const uint8_t *)g->map + g->size, g->map, err, "header" };
        if (!(rc = parse_header(g, &c)) && !(rc = parse_kvs(g, &c)))
            rc = parse_tensors(g, &c);
    }
    if (rc) {
        mh_gguf_close(g);
        return rc;
    }
    *out = g;
    return MH_OK;
}

void mh_gguf_close(mh_gguf *g)
{
    if (!g) return;
    for (int64_t i = 0; g->kv && i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].strs);
    }
    for (int64_t i = 0; g->tensors && i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    mh_map_guard_free(g->guard);
    if (g->map) munmap(g->map, g->size);
    free(g);
}

int mh_gguf_check(const mh_gguf *g, mh_err *err)
{
    if (!g->guard) return MH_OK;
    return mh_map_guard_check(g->guard, err);
}

/* ===== accessors ===== */

uint32_t mh_gguf_version(const mh_gguf *g) { return g->version; }
size_t mh_gguf_file_size(const mh_gguf *g) { return g->size; }
uint64_t mh_gguf_data_offset(const mh_gguf *g) { return g->data_off; }
uint32_t mh_gguf_alignment(const mh_gguf *g) { return g->alignment; }
const char *mh_gguf_warning(const mh_gguf *g) { return g->warning; }
int64_t mh_gguf_n_kv(const mh_gguf *g) { return g->n_kv; }
int64_t mh_gguf_n_tensors(const mh_gguf *g) { return g->n_tensors; }

const mh_gguf_kv *mh_gguf_kv_at(const mh_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

const mh_gguf_kv *mh_gguf_find(const mh_gguf *g, const char *key)
{
    for (int64_t i = g->n_kv - 1; i >= 0; i--)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const mh_gguf_tensor *mh_gguf_tensor_at(const mh_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const mh_gguf_tensor *mh_gguf_find_tensor(const mh_gguf *g, const char *name)
{
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

/* A float read as an integer saturates and NaN reads as 0: a file's float
 * can be anything, and converting an out-of-range one is undefined in C. */
static int64_t float_to_int(double v)
{
    if (v != v) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

/* Reads one number of type t at p as int64 / double (unaligned-safe). */
static int64_t load_int(int t, const uint8_t *p)
{
    switch (t) {
    case MH_GGUF_UINT8: case MH_GGUF_BOOL: return p[0];
    case MH_GGUF_INT8: return (int8_t)p[0];
    case MH_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case MH_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case MH_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case MH_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case MH_GGUF_UINT64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    case MH_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    case MH_GGUF_FLOAT32: { float v; memcpy(&v, p, 4); return float_to_int(v); }
    case MH_GGUF_FLOAT64: { double v; memcpy(&v, p, 8); return float_to_int(v); }
    default: return 0;
    }
}

static double load_float(int t, const uint8_t *p)
{
    if (t == MH_GGUF_FLOAT32) { float v; memcpy(&v, p, 4); return v; }
    if (t == MH_GGUF_FLOAT64) { double v; memcpy(&v, p, 8); return v; }
    if (t == MH_GGUF_UINT64) { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    return (double)load_int(t, p);
}

static mh_gguf_str load_str(const uint8_t *p)
{
    mh_gguf_str s;
    uint64_t n;
    memcpy(&n, p, 8);   /* validated at parse time */
    s.ptr = (const char *)p + 8;
    s.len = (size_t)n;
    return s;
}

static bool is_int_type(int t) { return t <= MH_GGUF_INT32 || t == MH_GGUF_BOOL || t == MH_GGUF_UINT64 || t == MH_GGUF_INT64; }

int64_t mh_gguf_kv_int(const mh_gguf_kv *kv) { return load_int(kv->type, kv->data); }
double mh_gguf_kv_float(const mh_gguf_kv *kv) { return load_float(kv->type, kv->data); }

mh_gguf_str mh_gguf_kv_str(const mh_gguf_kv *kv)
{
    mh_gguf_str s = { "", 0 };
    return kv->type == MH_GGUF_STRING ? load_str(kv->data) : s;
}

int64_t mh_gguf_arr_int(const mh_gguf_kv *kv, uint64_t i)
{
    return load_int(kv->arr_type, kv->data + i * (uint64_t)g_type_size[kv->arr_type]);
}

double mh_gguf_arr_float(const mh_gguf_kv *kv, uint64_t i)
{
    return load_float(kv->arr_type, kv->data + i * (uint64_t)g_type_size[kv->arr_type]);
}

mh_gguf_str mh_gguf_arr_str(const mh_gguf_kv *kv, uint64_t i)
{
    mh_gguf_str s = { "", 0 };
    return kv->arr_type == MH_GGUF_STRING && kv->strs ? load_str(kv->strs[i]) : s;
}

bool mh_gguf_get_str(const mh_gguf *g, const char *key, mh_gguf_str *out)
{
    const mh_gguf_kv *kv = mh_gguf_find(g, key);
    if (!kv || kv->type != MH_GGUF_STRING) return false;
    *out = load_str(kv->data);
    return true;
}

bool mh_gguf_get_int(const mh_gguf *g, const char *key, int64_t *out)
{
    const mh_gguf_kv *kv = mh_gguf_find(g, key);
    if (!kv || !is_int_type(kv->type)) return false;
    *out = load_int(kv->type, kv->data);
    return true;
}

bool mh_gguf_get_float(const mh_gguf *g, const char *key, double *out)
{
    const mh_gguf_kv *kv = mh_gguf_find(g, key);
    if (!kv || kv->type == MH_GGUF_STRING || kv->type == MH_GGUF_ARRAY) return false;
    *out = load_float(kv->type, kv->data);
    return true;
}

bool mh_gguf_get_bool(const mh_gguf *g, const char *key, bool *out)
{
    const mh_gguf_kv *kv = mh_gguf_find(g, key);
    if (!kv || !is_int_type(kv->type)) return false;
    *out = load_int(kv->type, kv->data) != 0;
    return true;
}

const mh_gguf_kv *mh_gguf_get_arr(const mh_gguf *g, const char *key, int t)
{
    const mh_gguf_kv *kv = mh_gguf_find(g, key);
    if (!kv || kv->type != MH_GGUF_ARRAY) return NULL;
    if (t >= 0 && (int)kv->arr_type != t) return NULL;
    return kv;
}
