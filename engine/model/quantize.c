/* quantize.c: GGUF -> GGUF requantization with llama.cpp's type rules.
 * Layer: engine/model (pure C11). Tensors stream through in row chunks
 * (dequantize to f32, quantize on the thread pool, append to the writer),
 * so memory stays at a few chunks whatever the model size. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "mh/gguf.h"
#include "mh/gguf_write.h"
#include "mh/quant.h"
#include "mh/quantize.h"
#include "mh/threadpool.h"

#define CHUNK_ELEMS (1 << 22)     /* f32 values converted per step (16 MiB) */

/* ===== file types ===== */

typedef struct { const char *name; mh_ftype ftype; mh_dtype base; } ftype_info;

static const ftype_info g_ftypes[] = {
    {"F32", MH_FTYPE_ALL_F32, MH_DTYPE_F32},   {"F16", MH_FTYPE_F16, MH_DTYPE_F16},
    {"BF16", MH_FTYPE_BF16, MH_DTYPE_BF16},    {"Q8_0", MH_FTYPE_Q8_0, MH_DTYPE_Q8_0},
    {"Q4_0", MH_FTYPE_Q4_0, MH_DTYPE_Q4_0},    {"Q4_1", MH_FTYPE_Q4_1, MH_DTYPE_Q4_1},
    {"Q5_0", MH_FTYPE_Q5_0, MH_DTYPE_Q5_0},    {"Q5_1", MH_FTYPE_Q5_1, MH_DTYPE_Q5_1},
    {"Q4_K_S", MH_FTYPE_Q4_K_S, MH_DTYPE_Q4_K}, {"Q4_K_M", MH_FTYPE_Q4_K_M, MH_DTYPE_Q4_K},
    {"Q5_K_S", MH_FTYPE_Q5_K_S, MH_DTYPE_Q5_K}, {"Q5_K_M", MH_FTYPE_Q5_K_M, MH_DTYPE_Q5_K},
    {"Q6_K", MH_FTYPE_Q6_K, MH_DTYPE_Q6_K},
};
#define N_FTYPES ((int)(sizeof g_ftypes / sizeof g_ftypes[0]))

static const ftype_info *ftype_find(int ftype)
{
    for (int i = 0; i < N_FTYPES; i++)
        if ((int)g_ftypes[i].ftype == ftype) return &g_ftypes[i];
    return NULL;
}

int mh_ftype_from_name(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < N_FTYPES; i++)
        if (!strcasecmp(g_ftypes[i].name, name)) return (int)g_ftypes[i].ftype;
    return -1;
}

const char *mh_ftype_name(int ftype)
{
    const ftype_info *f = ftype_find(ftype);
    return f ? f->name : "?";
}

const char *mh_ftype_names(void)
{
    return "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, F16, BF16, F32";
}

mh_dtype mh_ftype_base_type(mh_ftype ftype)
{
    const ftype_info *f = ftype_find((int)ftype);
    return f ? f->base : MH_DTYPE_F32;
}

/* ===== per-tensor type rules (after llama.cpp's llama_tensor_get_type) ===== */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

bool mh_quantize_wants(const char *name, int n_dims)
{
    return n_dims >= 2 && ends_with(name, "weight") && !strstr(name, "_norm.weight") &&
           !strstr(name, "ffn_gate_inp.weight") && strcmp(name, "position_embd.weight") != 0 &&
           strcmp(name, "token_types.weight") != 0 && !strstr(name, "attn_rel_b.weight");
}

/* The first/last eighth of the layers and every third one between get more
 * bits in the _M mixes. */
static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int layer_of(const char *name)
{
    int i = -1;
    if (sscanf(name, "blk.%d.", &i) != 1) return -1;
    return i;
}

static bool is_kquant_ftype(mh_ftype f)
{
    return f == MH_FTYPE_Q4_K_S || f == MH_FTYPE_Q4_K_M || f == MH_FTYPE_Q5_K_S ||
           f == MH_FTYPE_Q5_K_M || f == MH_FTYPE_Q6_K;
}

static mh_dtype mix_rule(mh_ftype ftype, const char *name, int il, int n, mh_dtype t)
{
    if (strstr(name, "attn_v.weight")) {
        if ((ftype == MH_FTYPE_Q4_K_M || ftype == MH_FTYPE_Q5_K_M) && il >= 0 && use_more_bits(il, n))
            return MH_DTYPE_Q6_K;
        if (ftype == MH_FTYPE_Q4_K_S && il >= 0 && il < 4) return MH_DTYPE_Q5_K;
    } else if (strstr(name, "ffn_down")) {
        if (il < 0) return t;
        if ((ftype == MH_FTYPE_Q4_K_M || ftype == MH_FTYPE_Q5_K_M) && use_more_bits(il, n))
            return MH_DTYPE_Q6_K;
        if (ftype == MH_FTYPE_Q4_K_S && il < n / 8) return MH_DTYPE_Q5_K;
    } else if (strstr(name, "attn_qkv.weight")) {
        if (ftype == MH_FTYPE_Q4_K_M) return MH_DTYPE_Q5_K;
        if (ftype == MH_FTYPE_Q5_K_M) return MH_DTYPE_Q6_K;
    }
    return t;
}

mh_dtype mh_quantize_pick_type(mh_ftype ftype, const char *name, int64_t ne0,
                               const mh_quant_model_info *mi, bool *fallback)
{
    mh_dtype t = mh_ftype_base_type(ftype);
    if (fallback) *fallback = false;
    if (!mh_dtype_info(t)->is_quant) return t;   /* F32/F16/BF16: no mixing */
    bool is_output = !strcmp(name, "output.weight") ||
                     (!mi->has_output && !strcmp(name, "token_embd.weight"));
    if (is_output) {
        /* the output projection is the most sensitive matrix */
        if (ne0 % mh_dtype_info(t)->block_size) t = MH_DTYPE_Q8_0;
        else if (t != MH_DTYPE_Q8_0) t = MH_DTYPE_Q6_K;
    } else if (is_kquant_ftype(ftype)) {
        t = mix_rule(ftype, name, layer_of(name), mi->n_layer, t);
    }
    if (ne0 % mh_dtype_info(t)->block_size == 0) return t;
    if (fallback) *fallback = true;
    switch (t) {
    case MH_DTYPE_Q4_K: t = MH_DTYPE_Q5_0; break;
    case MH_DTYPE_Q5_K: t = MH_DTYPE_Q5_1; break;
    case MH_DTYPE_Q6_K: t = MH_DTYPE_Q8_0; break;
    default: t = MH_DTYPE_F16; break;   /* llama.cpp refuses; F16 is its last fallback */
    }
    if (ne0 % mh_dtype_info(t)->block_size) t = MH_DTYPE_F16;
    return t;
}

/* ===== row conversion on the pool ===== */

typedef struct {
    mh_dtype t;
    const float *src;
    uint8_t *dst;
    int64_t n;
    size_t row_bytes;
    int rc;
} rows_job;

static void rows_fn(void *ctx, int64_t begin, int64_t end)
{
    rows_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        int rc = mh_quantize_row(j->t, j->src + r * j->n, j->dst + (size_t)r * j->row_bytes, j->n);
        if (rc) j->rc = rc;   /* every row fails alike; a benign same-value race */
    }
}

int mh_quantize_rows(mh_dtype t, const float *src, void *dst, int64_t rows, int64_t n)
{
    if (rows < 0 || n <= 0) return MH_EINVAL;
    rows_job j = { t, src, dst, n, mh_dtype_row_size(t, n), MH_OK };
    int64_t min_rows = (1 << 14) / n + 1;   /* ~16K values per task */
    mh_parallel_for(rows, min_rows, rows_fn, &j);
    return j.rc;
}

/* ===== the file loop ===== */

typedef struct {
    mh_ftype ftype;
    mh_quant_model_info mi;
    mh_progress_fn progress;
    void *ud;
    uint64_t done, total;   /* input tensor bytes, for progress */
    float *f32;         /* (chunk rows, ne0) */
    uint8_t *qbuf;      /* chunk rows of the output type */
    size_t f32_cap, q_cap;
} qctx;

static int grow(void **p, size_t *cap, size_t need)
{
    if (need <= *cap) return MH_OK;
    void *np = realloc(*p, need);
    if (!np) return MH_ENOMEM;
    *p = np;
    *cap = need;
    return MH_OK;
}

/* Converts ti (src type) row chunk by row chunk to dt and appends it. */
static int convert_tensor(qctx *q, const mh_gguf_tensor *ti, mh_dtype dt, mh_gguf_writer *w,
                          mh_err *err)
{
    int64_t ne0 = ti->ne[0], rows = ti->ne[1] * ti->ne[2] * ti->ne[3];
    if (ti->dtype < 0 || !mh_quant_traits_get((mh_dtype)ti->dtype)->to_float)
        return mh_err_set(err, MH_ETYPE, "quantize: tensor '%s': cannot convert from %s",
                          ti->name, mh_gguf_ggml_type_name(ti->ggml_type));
    mh_dtype st = (mh_dtype)ti->dtype;
    size_t in_row = mh_dtype_row_size(st, ne0), out_row = mh_dtype_row_size(dt, ne0);
    int64_t chunk = CHUNK_ELEMS / ne0 > 0 ? CHUNK_ELEMS / ne0 : 1;
    if (grow((void **)&q->f32, &q->f32_cap, (size_t)(chunk * ne0) * sizeof(float)) ||
        grow((void **)&q->qbuf, &q->q_cap, (size_t)chunk * out_row))
        return mh_err_set(err, MH_ENOMEM, "quantize: out of memory");
    const uint8_t *src = ti->data;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        int rc = mh_dequantize_row(st, src + (size_t)r0 * in_row, q->f32, nr * ne0);
        if (!rc) rc = mh_quantize_rows(dt, q->f32, q->qbuf, nr, ne0);
        if (rc)
            return mh_err_set(err, rc, "quantize: tensor '%s': %s -> %s failed (%s)", ti->name,
                              mh_dtype_info(st)->name, mh_dtype_info(dt)->name, mh_status_name(rc));
        if ((rc = mh_gguf_writer_write_data(w, q->qbuf, (size_t)nr * out_row, err))) return rc;
        q->done += (uint64_t)nr * in_row;
        if (q->progress) q->progress(q->ud, q->done, q->total);
    }
    return MH_OK;
}

static void model_info(const mh_gguf *g, mh_quant_model_info *mi)
{
    memset(mi, 0, sizeof *mi);
    for (int64_t i = 0; i < mh_gguf_n_tensors(g); i++) {
        const char *n = mh_gguf_tensor_at(g, i)->name;
        if (strstr(n, "attn_v.weight") || strstr(n, "attn_qkv.weight")) mi->n_layer++;
        if (!strcmp(n, "output.weight")) mi->has_output = true;
    }
    if (mi->n_layer == 0) {
        mh_gguf_str arch;
        int64_t nl = 0;
        char key[96];
        if (mh_gguf_get_str(g, "general.architecture", &arch)) {
            snprintf(key, sizeof key, "%.*s.block_count", (int)arch.len, arch.ptr);
            if (mh_gguf_get_int(g, key, &nl)) mi->n_layer = (int)nl;
        }
    }
}

static int copy_metadata(const mh_gguf *g, mh_ftype ftype, mh_gguf_writer *w, mh_err *err)
{
    int rc = MH_OK;
    for (int64_t i = 0; i < mh_gguf_n_kv(g) && !rc; i++) {
        const mh_gguf_kv *kv = mh_gguf_kv_at(g, i);
        if (!strncmp(kv->key, "split.", 6)) continue;   /* one output file */
        rc = mh_gguf_writer_copy_kv(w, kv, err);
    }
    if (!rc) rc = mh_gguf_writer_set_int(w, "general.quantization_version", MH_GGUF_UINT32, 2, err);
    if (!rc) rc = mh_gguf_writer_set_int(w, "general.file_type", MH_GGUF_UINT32, ftype, err);
    return rc;
}

/* Decides every tensor's output type and declares it to the writer. */
static int plan(const mh_gguf *g, qctx *q, mh_dtype *types, mh_gguf_writer *w,
                mh_quantize_stats *st, mh_err *err)
{
    for (int64_t i = 0; i < mh_gguf_n_tensors(g); i++) {
        const mh_gguf_tensor *ti = mh_gguf_tensor_at(g, i);
        mh_dtype dt = (mh_dtype)ti->dtype;
        bool fb = false;
        if (mh_quantize_wants(ti->name, ti->n_dims))
            dt = mh_quantize_pick_type(q->ftype, ti->name, ti->ne[0], &q->mi, &fb);
        else if (ti->dtype < 0)
            dt = MH_DTYPE_COUNT;   /* copied as is: the writer needs its raw type */
        types[i] = dt;
        st->n_fallback += fb;
        int rc;
        if (dt == MH_DTYPE_COUNT)
            return mh_err_set(err, MH_ETYPE, "quantize: tensor '%s' has type %s, which moonhub "
                              "cannot copy", ti->name, mh_gguf_ggml_type_name(ti->ggml_type));
        if ((rc = mh_gguf_writer_add_tensor(w, ti->name, ti->n_dims, ti->ne, dt, err))) return rc;
        st->n_by_type[dt]++;
        st->bytes_in += ti->nbytes;
    }
    return MH_OK;
}

static int run(const mh_gguf *g, qctx *q, const char *out_path, mh_quantize_stats *st,
               mh_err *err)
{
    int64_t nt = mh_gguf_n_tensors(g);
    mh_dtype *types = malloc((size_t)(nt ? nt : 1) * sizeof *types);
    mh_gguf_writer *w = mh_gguf_writer_new();
    int rc = !types || !w ? mh_err_set(err, MH_ENOMEM, "quantize: out of memory") : MH_OK;
    if (!rc) rc = copy_metadata(g, q->ftype, w, err);
    if (!rc) rc = plan(g, q, types, w, st, err);
    if (!rc) rc = mh_gguf_writer_begin(w, out_path, err);
    q->total = st->bytes_in;
    for (int64_t i = 0; i < nt && !rc; i++) {
        const mh_gguf_tensor *ti = mh_gguf_tensor_at(g, i);
        if ((int)types[i] == ti->dtype) {
            rc = mh_gguf_writer_write_data(w, ti->data, (size_t)ti->nbytes, err);
            q->done += ti->nbytes;
            if (!rc && q->progress) q->progress(q->ud, q->done, q->total);
        } else
            rc = convert_tensor(q, ti, types[i], w, err);
        if (!rc) st->bytes_out += mh_dtype_row_size(types[i], ti->ne[0]) *
                                  (uint64_t)(ti->ne[1] * ti->ne[2] * ti->ne[3]);
    }
    if (!rc) rc = mh_gguf_writer_finish(w, err);
    st->file_bytes = mh_gguf_writer_bytes(w);
    st->n_tensors = nt;
    mh_gguf_writer_free(w);
    free(types);
    return rc;
}

int mh_quantize_file(const char *in_path, const char *out_path, mh_ftype ftype,
                     mh_quantize_stats *stats, mh_err *err)
{
    return mh_quantize_file_cb(in_path, out_path, ftype, NULL, NULL, stats, err);
}

int mh_quantize_file_cb(const char *in_path, const char *out_path, mh_ftype ftype,
                        mh_progress_fn progress, void *ud, mh_quantize_stats *stats, mh_err *err)
{
    mh_quantize_stats local;
    mh_quantize_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    if (!ftype_find((int)ftype))
        return mh_err_set(err, MH_EINVAL, "quantize: unsupported file type %d (supported: %s)",
                          (int)ftype, mh_ftype_names());
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mh_gguf *g = NULL;
    int rc = mh_gguf_open(in_path, &g, err);
    if (rc) return rc;
    qctx q = { .ftype = ftype, .progress = progress, .ud = ud };
    model_info(g, &q.mi);
    rc = run(g, &q, out_path, st, err);
    free(q.f32);
    free(q.qbuf);
    mh_gguf_close(g);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    st->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    return rc;
}
