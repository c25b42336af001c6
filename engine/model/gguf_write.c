/* gguf_write.c: GGUF v3 writer (metadata, tensor infos, aligned data).
 * Layer: engine/model (pure C11 + POSIX). Each key's value is kept already
 * serialized, so writing the header is a plain walk. Output goes to a
 * temp file beside the target (mh/fs.h naming), renamed into place by finish(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "mh/fs.h"
#include "mh/gguf_write.h"

#define GGUF_MAGIC 0x46554747u
#define DEFAULT_ALIGN 32

typedef struct wkv {
    char *key;
    uint32_t type;          /* mh_gguf_type */
    uint8_t *val;           /* the value as stored after the type field */
    size_t len;
} wkv;

typedef struct wtensor {
    char *name;
    int n_dims;
    int64_t ne[4];
    uint32_t ggml_type;
    uint64_t nbytes, offset;  /* offset from the start of the data section */
} wtensor;

enum { ST_BUILD, ST_WRITE, ST_DONE, ST_FAILED };

struct mh_gguf_writer {
    wkv *kv;
    int64_t n_kv, cap_kv;
    wtensor *t;
    int64_t n_t, cap_t;
    int state;
    FILE *f;
    char *path, *tmp;
    uint32_t align;
    int64_t cur;              /* tensor receiving data */
    uint64_t cur_done;        /* its bytes written so far */
    uint64_t bytes;           /* file bytes written */
};

static const int g_scalar_size[MH_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* ggml type ids of the engine's dtypes (GGUF numbering). */
int mh_gguf_ggml_type_of(mh_dtype t)
{
    switch (t) {
    case MH_DTYPE_F32: return 0;   case MH_DTYPE_F16: return 1;
    case MH_DTYPE_Q4_0: return 2;  case MH_DTYPE_Q4_1: return 3;
    case MH_DTYPE_Q5_0: return 6;  case MH_DTYPE_Q5_1: return 7;
    case MH_DTYPE_Q8_0: return 8;  case MH_DTYPE_Q2_K: return 10;
    case MH_DTYPE_Q3_K: return 11; case MH_DTYPE_Q4_K: return 12;
    case MH_DTYPE_Q5_K: return 13; case MH_DTYPE_Q6_K: return 14;
    case MH_DTYPE_Q8_K: return 15; case MH_DTYPE_I8: return 24;
    case MH_DTYPE_I32: return 26;  case MH_DTYPE_I64: return 27;
    case MH_DTYPE_BF16: return 30;
    default: return -1;
    }
}

mh_gguf_writer *mh_gguf_writer_new(void)
{
    mh_gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->align = DEFAULT_ALIGN;
    return w;
}

static void drop_tmp(mh_gguf_writer *w)
{
    if (w->f) fclose(w->f);
    w->f = NULL;
    if (w->tmp) unlink(w->tmp);
}

void mh_gguf_writer_free(mh_gguf_writer *w)
{
    if (!w) return;
    if (w->state == ST_WRITE) drop_tmp(w);
    for (int64_t i = 0; i < w->n_kv; i++) { free(w->kv[i].key); free(w->kv[i].val); }
    for (int64_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w->path);
    free(w->tmp);
    free(w);
}

/* ===== metadata ===== */

static int64_t find_kv(const mh_gguf_writer *w, const char *key)
{
    for (int64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) return i;
    return -1;
}

/* Stores key -> (type, val[0..len)); takes ownership of val (even on error). */
static int put_kv(mh_gguf_writer *w, const char *key, uint32_t type, uint8_t *val, size_t len,
                  mh_err *err)
{
    if (w->state != ST_BUILD) {
        free(val);
        return mh_err_set(err, MH_EINVAL, "gguf_write: metadata must be set before begin");
    }
    if (!key || !*key) {
        free(val);
        return mh_err_set(err, MH_EINVAL, "gguf_write: empty metadata key");
    }
    int64_t i = find_kv(w, key);
    if (i >= 0) {
        free(w->kv[i].val);
    } else {
        if (w->n_kv == w->cap_kv) {
            int64_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
            wkv *nk = realloc(w->kv, (size_t)cap * sizeof *nk);
            if (!nk) { free(val); return mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory"); }
            w->kv = nk;
            w->cap_kv = cap;
        }
        char *k = strdup(key);
        if (!k) { free(val); return mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory"); }
        i = w->n_kv++;
        w->kv[i].key = k;
    }
    w->kv[i].type = type;
    w->kv[i].val = val;
    w->kv[i].len = len;
    if (!strcmp(key, "general.alignment")) {
        uint32_t a = 0;
        if (type == MH_GGUF_UINT32) memcpy(&a, val, 4);
        w->align = a && !(a & (a - 1)) ? a : 0;   /* checked again in begin */
    }
    return MH_OK;
}

int mh_gguf_writer_set_int(mh_gguf_writer *w, const char *key, mh_gguf_type t, int64_t v,
                           mh_err *err)
{
    if ((t > MH_GGUF_INT32 && t != MH_GGUF_BOOL && t != MH_GGUF_UINT64 && t != MH_GGUF_INT64) ||
        (int)t < 0)
        return mh_err_set(err, MH_EINVAL, "gguf_write: key '%s': %s is not an integer type",
                          key ? key : "?", mh_gguf_type_name(t));
    size_t n = (size_t)g_scalar_size[t];
    uint8_t *val = malloc(8);
    if (!val) return mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory");
    uint64_t u = (uint64_t)v;
    for (size_t i = 0; i < n; i++) val[i] = (uint8_t)(u >> (8 * i));   /* little-endian */
    if (t == MH_GGUF_BOOL) val[0] = v != 0;
    return put_kv(w, key, t, val, n, err);
}

int mh_gguf_writer_set_float(mh_gguf_writer *w, const char *key, mh_gguf_type t, double v,
                             mh_err *err)
{
    uint8_t *val = malloc(8);
    if (!val) return mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory");
    if (t == MH_GGUF_FLOAT32) {
        float f = (float)v;
        memcpy(val, &f, 4);
        return put_kv(w, key, t, val, 4, err);
    }
    if (t == MH_GGUF_FLOAT64) {
        memcpy(val, &v, 8);
        return put_kv(w, key, t, val, 8, err);
    }
    free(val);
    return mh_err_set(err, MH_EINVAL, "gguf_write: key '%s': %s is not a float type",
                      key ? key : "?", mh_gguf_type_name(t));
}

static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

int mh_gguf_writer_set_str(mh_gguf_writer *w, const char *key, const char *s, size_t len,
                           mh_err *err)
{
    uint8_t *val = malloc(8 + len);
    if (!val) return mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory");
    put_u64(val, len);
    if (len) memcpy(val + 8, s, len);
    return put_kv(w, key, MH_GGUF_STRING, val, 8 + len, err);
}

int mh_gguf_writer_set_arr(mh_gguf_writer *w, const char *key, mh_gguf_type t,
                           const void *data, uint64_t n, mh_err *err)
{
    if ((int)t < 0 || t >= MH_GGUF_TYPE_COUNT || t == MH_GGUF_STRING || t == MH_GGUF_ARRAY)
        return mh_err_set(err, MH_EINVAL, "gguf_write: key '%s': bad array element type %d",
                          key ? key : "?", (int)t);
    size_t es = (size_t)g_scalar_size[t];
    if (n > (SIZE_MAX - 12) / es)
        return mh_err_set(err, MH_EINVAL, "gguf_write: key '%s': array too long", key ? key : "?");
    uint8_t *val = malloc(12 + (size_t)n * es);
    if (!val) return mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory");
    put_u32(val, (uint32_t)t);
    put_u64(val + 4, n);
    if (n) memcpy(val + 12, data, (size_t)n * es);
    return put_kv(w, key, MH_GGUF_ARRAY, val, 12 + (size_t)n * es, err);
}

int mh_gguf_writer_set_arr_str(mh_gguf_writer *w, const char *key, const char *const *strs,
                               const size_t *lens, uint64_t n, mh_err *err)
{
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++) {
        if (lens[i] > SIZE_MAX / 2 - total)
            return mh_err_set(err, MH_EINVAL, "gguf_write: key '%s': array too long", key ? key : "?");
        total += 8 + lens[i];
    }
    uint8_t *val = malloc(total), *p;
    if (!val) return mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory");
    put_u32(val, MH_GGUF_STRING);
    put_u64(val + 4, n);
    p = val + 12;
    for (uint64_t i = 0; i < n; i++) {
        put_u64(p, lens[i]);
        if (lens[i]) memcpy(p + 8, strs[i], lens[i]);
        p += 8 + lens[i];
    }
    return put_kv(w, key, MH_GGUF_ARRAY, val, total, err);
}

int mh_gguf_writer_copy_kv(mh_gguf_writer *w, const mh_gguf_kv *kv, mh_err *err)
{
    if (kv->type == MH_GGUF_STRING) {
        mh_gguf_str s = mh_gguf_kv_str(kv);
        return mh_gguf_writer_set_str(w, kv->key, s.ptr, s.len, err);
    }
    if (kv->type != MH_GGUF_ARRAY) {
        uint8_t *val = malloc(8);
        if (!val) return mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory");
        memcpy(val, kv->data, (size_t)g_scalar_size[kv->type]);
        return put_kv(w, kv->key, kv->type, val, (size_t)g_scalar_size[kv->type], err);
    }
    if (kv->arr_type != MH_GGUF_STRING)
        return mh_gguf_writer_set_arr(w, kv->key, kv->arr_type, kv->data, kv->n, err);
    const char **strs = malloc((kv->n ? kv->n : 1) * sizeof *strs);
    size_t *lens = malloc((kv->n ? kv->n : 1) * sizeof *lens);
    int rc;
    if (!strs || !lens) {
        rc = mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory");
    } else {
        for (uint64_t i = 0; i < kv->n; i++) {
            mh_gguf_str s = mh_gguf_arr_str(kv, i);
            strs[i] = s.ptr;
            lens[i] = s.len;
        }
        rc = mh_gguf_writer_set_arr_str(w, kv->key, strs, lens, kv->n, err);
    }
    free(strs);
    free(lens);
    return rc;
}

bool mh_gguf_writer_remove(mh_gguf_writer *w, const char *key)
{
    int64_t i = w->state == ST_BUILD ? find_kv(w, key) : -1;
    if (i < 0) return false;
    free(w->kv[i].key);
    free(w->kv[i].val);
    memmove(&w->kv[i], &w->kv[i + 1], (size_t)(w->n_kv - i - 1) * sizeof *w->kv);
    w->n_kv--;
    if (!strcmp(key, "general.alignment")) w->align = DEFAULT_ALIGN;
    return true;
}

int64_t mh_gguf_writer_n_kv(const mh_gguf_writer *w) { return w->n_kv; }
int64_t mh_gguf_writer_n_tensors(const mh_gguf_writer *w) { return w->n_t; }
uint64_t mh_gguf_writer_bytes(const mh_gguf_writer *w) { return w->bytes; }

/* ===== tensors ===== */

int mh_gguf_writer_add_tensor(mh_gguf_writer *w, const char *name, int n_dims,
                              const int64_t ne[4], mh_dtype dtype, mh_err *err)
{
    if (w->state != ST_BUILD)
        return mh_err_set(err, MH_EINVAL, "gguf_write: tensors must be added before begin");
    if (!name || !*name || n_dims < 1 || n_dims > 4)
        return mh_err_set(err, MH_EINVAL, "gguf_write: tensor needs a name and 1..4 dims");
    int gt = (unsigned)dtype < MH_DTYPE_COUNT ? mh_gguf_ggml_type_of(dtype) : -1;
    if (gt < 0)
        return mh_err_set(err, MH_ETYPE, "gguf_write: tensor '%s': type has no GGUF id", name);
    for (int64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return mh_err_set(err, MH_EINVAL, "gguf_write: duplicate tensor name '%s'", name);
    const mh_dtype_traits *tr = mh_dtype_info(dtype);
    uint64_t nel = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || nel > (UINT64_MAX / 4) / (uint64_t)ne[d])
            return mh_err_set(err, MH_EINVAL, "gguf_write: tensor '%s': bad dim %d", name, d);
        nel *= (uint64_t)ne[d];
    }
    if (ne[0] % tr->block_size)
        return mh_err_set(err, MH_ESHAPE, "gguf_write: tensor '%s': row of %lld is not a "
                          "multiple of %s's block of %d", name, (long long)ne[0], tr->name,
                          tr->block_size);
    if (w->n_t == w->cap_t) {
        int64_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) return mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory");
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->ggml_type = (uint32_t)gt;
    t->nbytes = nel / (uint64_t)tr->block_size * tr->type_size;
    w->n_t++;
    return MH_OK;
}

/* ===== output ===== */

static int fail_io(mh_gguf_writer *w, int e, mh_err *err)
{
    drop_tmp(w);
    w->state = ST_FAILED;
    return mh_err_set(err, MH_EIO, "gguf_write: cannot write %s: %s", w->path ? w->path : "?",
                      strerror(e ? e : EIO));
}

static int out(mh_gguf_writer *w, const void *p, size_t n, mh_err *err)
{
    if (n && fwrite(p, 1, n, w->f) != n) return fail_io(w, errno, err);
    w->bytes += n;
    return MH_OK;
}

static int out_zeros(mh_gguf_writer *w, size_t n, mh_err *err)
{
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        int rc = out(w, zeros, k, err);
        if (rc) return rc;
        n -= k;
    }
    return MH_OK;
}

static int out_str(mh_gguf_writer *w, const char *s, mh_err *err)
{
    uint64_t n = strlen(s);
    int rc = out(w, &n, 8, err);
    return rc ? rc : out(w, s, (size_t)n, err);
}

static size_t pad_to(uint64_t x, uint32_t a) { return (size_t)((a - x % a) % a); }

static int write_header(mh_gguf_writer *w, mh_err *err)
{
    uint32_t magic = GGUF_MAGIC, version = 3;
    uint64_t nt = (uint64_t)w->n_t, nkv = (uint64_t)w->n_kv;
    int rc = out(w, &magic, 4, err);
    if (!rc) rc = out(w, &version, 4, err);
    if (!rc) rc = out(w, &nt, 8, err);
    if (!rc) rc = out(w, &nkv, 8, err);
    for (int64_t i = 0; i < w->n_kv && !rc; i++) {
        rc = out_str(w, w->kv[i].key, err);
        if (!rc) rc = out(w, &w->kv[i].type, 4, err);
        if (!rc) rc = out(w, w->kv[i].val, w->kv[i].len, err);
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_t && !rc; i++) {
        wtensor *t = &w->t[i];
        uint32_t nd = (uint32_t)t->n_dims;
        t->offset = off;
        off += t->nbytes + pad_to(t->nbytes, w->align);
        rc = out_str(w, t->name, err);
        if (!rc) rc = out(w, &nd, 4, err);
        if (!rc) rc = out(w, t->ne, 8 * (size_t)t->n_dims, err);
        if (!rc) rc = out(w, &t->ggml_type, 4, err);
        if (!rc) rc = out(w, &t->offset, 8, err);
    }
    if (!rc) rc = out_zeros(w, pad_to(w->bytes, w->align), err);
    return rc;
}

/* tmp = "<path>.tmp.<pid>.<n>" beside the target (mh/fs.h): the rename stays
 * on one file system, and a killed writer's leftover is recognised by its
 * dead pid and removed by the next start (moonhub.fs.clean_temps). */
static int make_tmp(mh_gguf_writer *w, const char *path, mh_err *err)
{
    size_t n = strlen(path) + 48;
    if (!(w->path = strdup(path)) || !(w->tmp = malloc(n)))
        return mh_err_set(err, MH_ENOMEM, "gguf_write: out of memory");
    int fd = mh_fs_open_temp(path, w->tmp, n, err);
    if (fd < 0) {
        free(w->tmp);
        w->tmp = NULL;
        w->state = ST_FAILED;
        return err ? err->code : MH_EIO;
    }
    if (!(w->f = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        return fail_io(w, e, err);
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    return MH_OK;
}

int mh_gguf_writer_begin(mh_gguf_writer *w, const char *path, mh_err *err)
{
    if (w->state != ST_BUILD)
        return mh_err_set(err, MH_EINVAL, "gguf_write: begin called twice or after an error");
    if (!path || !*path) return mh_err_set(err, MH_EINVAL, "gguf_write: empty output path");
    if (!w->align)
        return mh_err_set(err, MH_EINVAL, "gguf_write: general.alignment must be a power-of-two uint32");
    int rc = make_tmp(w, path, err);
    if (rc) return rc;
    w->state = ST_WRITE;
    w->cur = 0;
    w->cur_done = 0;
    if ((rc = write_header(w, err))) return rc;
    while (w->cur < w->n_t && w->t[w->cur].nbytes == 0) w->cur++;
    return MH_OK;
}

int mh_gguf_writer_write_data(mh_gguf_writer *w, const void *data, size_t n, mh_err *err)
{
    if (w->state != ST_WRITE)
        return mh_err_set(err, MH_EINVAL, "gguf_write: write_data outside begin/finish");
    const uint8_t *p = data;
    while (n) {
        if (w->cur >= w->n_t) {
            drop_tmp(w);
            w->state = ST_FAILED;
            return mh_err_set(err, MH_EINVAL, "gguf_write: %zu bytes of data past the last tensor", n);
        }
        wtensor *t = &w->t[w->cur];
        size_t k = (size_t)(t->nbytes - w->cur_done) < n ? (size_t)(t->nbytes - w->cur_done) : n;
        int rc = out(w, p, k, err);
        if (rc) return rc;
        p += k;
        n -= k;
        w->cur_done += k;
        if (w->cur_done == t->nbytes) {
            if ((rc = out_zeros(w, pad_to(t->nbytes, w->align), err))) return rc;
            w->cur++;
            w->cur_done = 0;
        }
    }
    return MH_OK;
}

int mh_gguf_writer_finish(mh_gguf_writer *w, mh_err *err)
{
    if (w->state != ST_WRITE)
        return mh_err_set(err, MH_EINVAL, "gguf_write: finish without a successful begin");
    if (w->cur < w->n_t) {
        drop_tmp(w);
        w->state = ST_FAILED;
        return mh_err_set(err, MH_EINVAL, "gguf_write: tensor '%s' is missing data (%llu of %llu bytes)",
                          w->t[w->cur].name, (unsigned long long)w->cur_done,
                          (unsigned long long)w->t[w->cur].nbytes);
    }
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0) return fail_io(w, errno, err);
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0) return fail_io(w, errno, err);
    if (rename(w->tmp, w->path) != 0) return fail_io(w, errno, err);
    w->state = ST_DONE;
    return MH_OK;
}
