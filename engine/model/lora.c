/* lora.c: LoRA adapters at inference — read a PEFT-style safetensors file
 * (base_model.model.model.layers.N.{self_attn,mlp}.X_proj.lora_{A,B}.weight,
 * metadata r and lora_alpha, as mh_trainer_save_adapter writes and PEFT
 * reads) or a GGUF LoRA in llama.cpp's adapter format (blk.N.X.weight.lora_a
 * / .lora_b, adapter.lora.alpha) and add scale·(x Aᵀ)Bᵀ to the projections
 * in the forward pass.
 * Layer: engine/model; uses OpenBLAS. Adapters stay f32 and separate from the (possibly quantized)
 * base, so one base can serve several adapters. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "mh/gguf.h"
#include "mh/safetensors.h"
#include "mh/tensor.h"
#include "model_internal.h"

struct mh_lora {
    atomic_int refs;                   /* the loader's, each request's in flight */
    int64_t n_layer;
    float scale;                       /* lora_alpha / r */
    mh_lora_pair *pairs;               /* (n_layer * MH_LORA_TARGETS); a NULL a = none */
    int n_pairs;
    int64_t max_rank;                  /* sizes the forward's scratch for x Aᵀ */
};

/* Projection k's (rows, cols) in the base model. */
static void target_shape(const mh_model *m, int64_t l, int k, int64_t *rows, int64_t *cols)
{
    const mh_weight *w = mh_layer_proj(&m->layers[l], (mh_proj)k);
    *rows = w->rows;
    *cols = w->cols;
}

/* HF/PEFT q/k rows use halves (j, j + hd/2) per head; GGUF llama rows are
 * interleaved (2j, 2j+1): B's rows move back to the base's order. */
static void rows_from_hf(float *dst, const float *src, int64_t out, int64_t hd, int64_t cols)
{
    for (int64_t r = 0; r < out; r++) {
        int64_t h = r / hd, i = r % hd, j = i / 2, k = i % 2;
        memcpy(dst + r * cols, src + (h * hd + k * (hd / 2) + j) * cols, sizeof(float) * (size_t)cols);
    }
}

/* Copies tensor `name` (expected (rows, cols), any float dtype) into a new f32 array. */
static float *read_f32(mh_safetensors *st, const char *name, int64_t rows, int64_t cols, mh_err *err)
{
    mh_tensor *t = mh_safetensors_get(st, name, err);
    if (!t) return NULL;
    float *out = NULL;
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        mh_err_set(err, MH_ESHAPE, "lora: %s has shape (%lld,%lld), the base needs (%lld,%lld)", name,
                   (long long)(t->ndim > 0 ? t->shape[0] : 0), (long long)(t->ndim > 1 ? t->shape[1] : 0),
                   (long long)rows, (long long)cols);
    } else {
        mh_tensor *f = mh_tensor_to(t, MH_DTYPE_F32, err);
        mh_tensor *c = f ? mh_tensor_contiguous(f, err) : NULL;
        out = c ? malloc(sizeof(float) * (size_t)(rows * cols)) : NULL;
        if (c && !out) mh_err_set(err, MH_ENOMEM, "lora: out of memory");
        if (out) memcpy(out, mh_tensor_data(c), sizeof(float) * (size_t)(rows * cols));
        mh_tensor_release(c);
        mh_tensor_release(f);
    }
    mh_tensor_release(t);
    return out;
}

static int load_pair(const mh_model *m, mh_safetensors *st, int64_t l, int k, int64_t r, mh_lora_pair *p,
                     mh_err *err)
{
    char na[160], nb[160];
    snprintf(na, sizeof na, "base_model.model.model.layers.%lld.%s.lora_A.weight", (long long)l, mh_proj_name((mh_proj)k, MH_LAYOUT_HF));
    snprintf(nb, sizeof nb, "base_model.model.model.layers.%lld.%s.lora_B.weight", (long long)l, mh_proj_name((mh_proj)k, MH_LAYOUT_HF));
    if (mh_safetensors_find(st, na) < 0) return MH_OK;              /* not adapted */
    int64_t rows, cols;
    target_shape(m, l, k, &rows, &cols);
    p->a = read_f32(st, na, r, cols, err);
    p->b = p->a ? read_f32(st, nb, rows, r, err) : NULL;
    if (!p->a || !p->b) return err->code ? err->code : MH_EFORMAT;
    if ((k == 0 || k == 1) && !m->hp.rope_neox) {
        float *tmp = malloc(sizeof(float) * (size_t)(rows * r));
        if (!tmp) return mh_err_set(err, MH_ENOMEM, "lora: out of memory");
        rows_from_hf(tmp, p->b, rows, m->hp.head_dim, r);
        free(p->b);
        p->b = tmp;
    }
    p->rank = r;
    p->rows = rows;
    p->cols = cols;
    return MH_OK;
}

/* ===== GGUF adapters (llama.cpp's format, as mh_trainer_save_adapter_gguf writes) ===== */

/* Copies GGUF tensor `name` (ggml ne [cols, rows], f32 or f16) into a new f32 (rows, cols) array;
 * rows < 0 takes the file's row count (a rank) into *rows_io. NULL with err set on failure. */
static float *gguf_f32(const mh_gguf *g, const char *name, int64_t *rows_io, int64_t cols, mh_err *err)
{
    const mh_gguf_tensor *t = mh_gguf_find_tensor(g, name);
    if (!t) {
        mh_err_set(err, MH_EFORMAT, "lora: %s is missing", name);
        return NULL;
    }
    int64_t rows = *rows_io < 0 ? t->ne[1] : *rows_io;
    if (t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows || rows <= 0 || (*rows_io < 0 && rows > 4096)) {
        mh_err_set(err, MH_ESHAPE, "lora: %s has shape (%lld,%lld), the base needs (%lld,%lld)", name,
                   (long long)t->ne[1], (long long)t->ne[0], (long long)rows, (long long)cols);
        return NULL;
    }
    if (t->dtype != MH_DTYPE_F32 && t->dtype != MH_DTYPE_F16) {
        mh_err_set(err, MH_EFORMAT, "lora: %s is %s; adapters must be f32 or f16", name,
                   mh_gguf_ggml_type_name(t->ggml_type));
        return NULL;
    }
    size_t n = (size_t)(rows * cols);
    float *out = malloc(sizeof(float) * n);
    if (!out) {
        mh_err_set(err, MH_ENOMEM, "lora: out of memory");
        return NULL;
    }
    if (t->dtype == MH_DTYPE_F32) memcpy(out, t->data, sizeof(float) * n);
    else for (size_t i = 0; i < n; i++) out[i] = mh_f16_to_f32(((const uint16_t *)t->data)[i]);
    *rows_io = rows;
    return out;
}

/* Pair (l, k) from a GGUF adapter: A (r, cols) and B (rows, r), already in the base's row order. */
static int gguf_pair(const mh_model *m, const mh_gguf *g, int64_t l, int k, mh_lora_pair *p, mh_err *err)
{
    char na[128], nb[128];
    const char *proj = mh_proj_name((mh_proj)k, MH_LAYOUT_GGUF);
    snprintf(na, sizeof na, "blk.%lld.%s.weight.lora_a", (long long)l, proj);
    snprintf(nb, sizeof nb, "blk.%lld.%s.weight.lora_b", (long long)l, proj);
    if (!mh_gguf_find_tensor(g, na)) return MH_OK;                  /* not adapted */
    int64_t rows, cols, r = -1;
    target_shape(m, l, k, &rows, &cols);
    p->a = gguf_f32(g, na, &r, cols, err);
    int64_t rb = rows;
    /* B is ne [r, rows]: its "rows" are the base's output rows, its columns the rank */
    p->b = p->a ? gguf_f32(g, nb, &rb, r, err) : NULL;
    if (!p->a || !p->b) return err->code ? err->code : MH_EFORMAT;
    p->rank = r;
    p->rows = rows;
    p->cols = cols;
    return MH_OK;
}

/* Checks that g is a LoRA adapter for m's architecture; *alpha from its metadata (0: none). */
static int gguf_check(const mh_model *m, const mh_gguf *g, const char *path, double *alpha, mh_err *err)
{
    mh_gguf_str s;
    if (!mh_gguf_get_str(g, "general.type", &s) || s.len != 7 || memcmp(s.ptr, "adapter", 7))
        return mh_err_set(err, MH_EFORMAT, "lora: %s is not a LoRA adapter (general.type is not 'adapter')", path);
    if (mh_gguf_get_str(g, "adapter.type", &s) && (s.len != 4 || memcmp(s.ptr, "lora", 4)))
        return mh_err_set(err, MH_EFORMAT, "lora: %s is a '%.*s' adapter, not a LoRA", path, (int)s.len, s.ptr);
    if (mh_gguf_get_str(g, "general.architecture", &s) &&
        (s.len != strlen(m->hp.arch_name) || memcmp(s.ptr, m->hp.arch_name, s.len)))
        return mh_err_set(err, MH_EINVAL, "lora: %s was made for a %.*s model, this one is %s", path, (int)s.len,
                          s.ptr, m->hp.arch_name);
    *alpha = 0;
    if (!mh_gguf_get_float(g, "adapter.lora.alpha", alpha)) *alpha = 0;
    return MH_OK;
}

static int load_gguf(const mh_model *m, const char *path, mh_lora *lo, double *alpha, int64_t *rank, mh_err *err)
{
    mh_gguf *g = NULL;
    int status = mh_gguf_open(path, &g, err);
    if (!status) status = gguf_check(m, g, path, alpha, err);
    for (int64_t l = 0; !status && l < m->hp.n_layer; l++)
        for (int k = 0; !status && k < MH_LORA_TARGETS; k++) {
            mh_lora_pair *p = &lo->pairs[l * MH_LORA_TARGETS + k];
            status = gguf_pair(m, g, l, k, p, err);
            if (status || !p->a) continue;
            if (*rank && p->rank != *rank)      /* one scale alpha/r for the whole adapter */
                status = mh_err_set(err, MH_EFORMAT, "lora: %s mixes ranks %lld and %lld", path,
                                    (long long)*rank, (long long)p->rank);
            *rank = p->rank;
            lo->max_rank = p->rank;
            lo->n_pairs++;
        }
    mh_gguf_close(g);
    return status;
}

static bool is_gguf(const char *path)
{
    FILE *f = fopen(path, "rb");
    char magic[4] = { 0 };
    bool yes = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f) fclose(f);
    return yes;
}

/* ===== loading ===== */

static int load_safetensors(const mh_model *m, const char *path, mh_lora *lo, double *alpha, int64_t *rank,
                            mh_err *err)
{
    mh_safetensors *st = mh_safetensors_open(path, err);
    if (!st) return err->code ? err->code : MH_EIO;
    const char *rs = mh_safetensors_meta_get(st, "r"), *as = mh_safetensors_meta_get(st, "lora_alpha");
    long r = rs ? strtol(rs, NULL, 10) : 0;
    *alpha = as ? strtod(as, NULL) : (double)r;
    *rank = r;
    int status = MH_OK;
    if (r <= 0 || r > 4096)
        status = mh_err_set(err, MH_EFORMAT, "lora: %s has no valid rank 'r' in its metadata", path);
    for (int64_t l = 0; !status && l < m->hp.n_layer; l++)
        for (int k = 0; !status && k < MH_LORA_TARGETS; k++) {
            status = load_pair(m, st, l, k, r, &lo->pairs[l * MH_LORA_TARGETS + k], err);
            if (!status && lo->pairs[l * MH_LORA_TARGETS + k].a) lo->n_pairs++;
            if (!status) lo->max_rank = r;
        }
    mh_safetensors_close(st);
    return status;
}

int mh_lora_load(const mh_model *m, const char *path, float scale_mult, mh_lora **out, mh_err *err)
{
    *out = NULL;
    mh_lora *lo = calloc(1, sizeof *lo);
    if (lo) {
        atomic_init(&lo->refs, 1);
        lo->n_layer = m->hp.n_layer;
    }
    if (!lo || !(lo->pairs = calloc((size_t)(m->hp.n_layer * MH_LORA_TARGETS), sizeof *lo->pairs))) {
        mh_lora_free(lo);
        return mh_err_set(err, MH_ENOMEM, "lora: out of memory");
    }
    double alpha = 0;
    int64_t r = 0;
    int status = is_gguf(path) ? load_gguf(m, path, lo, &alpha, &r, err)
                               : load_safetensors(m, path, lo, &alpha, &r, err);
    if (!status && lo->n_pairs == 0)
        status = mh_err_set(err, MH_EFORMAT, "lora: %s holds no adapter for this model's layers", path);
    if (status) {
        mh_lora_free(lo);
        return status;
    }
    if (alpha <= 0) alpha = (double)r;      /* no alpha stored: scale 1, as llama.cpp */
    lo->scale = (float)(alpha / (double)r) * scale_mult;
    *out = lo;
    return MH_OK;
}

mh_lora *mh_lora_retain(mh_lora *lo)
{
    if (lo) atomic_fetch_add(&lo->refs, 1);
    return lo;
}

void mh_lora_free(mh_lora *lo)
{
    if (!lo || atomic_fetch_sub(&lo->refs, 1) > 1) return;
    for (int64_t i = 0; lo->pairs && i < lo->n_layer * MH_LORA_TARGETS; i++) {
        free(lo->pairs[i].a);
        free(lo->pairs[i].b);
    }
    free(lo->pairs);
    free(lo);
}

int mh_lora_check(const mh_model *m, const mh_lora *lo, mh_err *err)
{
    if (!lo || lo->n_layer != m->hp.n_layer)
        return mh_err_set(err, MH_EINVAL, "lora: the adapter was made for a model of %lld layers, this one has %lld",
                          lo ? (long long)lo->n_layer : 0LL, (long long)m->hp.n_layer);
    for (int64_t l = 0; l < lo->n_layer; l++)
        for (int k = 0; k < MH_LORA_TARGETS; k++) {
            const mh_lora_pair *p = &lo->pairs[l * MH_LORA_TARGETS + k];
            int64_t rows, cols;
            if (!p->a) continue;
            target_shape(m, l, k, &rows, &cols);
            if (rows != p->rows || cols != p->cols)
                return mh_err_set(err, MH_EINVAL, "lora: the adapter's %s of layer %lld is (%lld,%lld), this "
                                  "model's (%lld,%lld): it was made for another model",
                                  mh_proj_name((mh_proj)k, MH_LAYOUT_GGUF), (long long)l, (long long)p->rows,
                                  (long long)p->cols, (long long)rows, (long long)cols);
        }
    return MH_OK;
}

int mh_model_set_loras(mh_model *m, const mh_lora *const *list, int n, mh_err *err)
{
    if (n < 0 || n > MH_MAX_LORAS)
        return mh_err_set(err, MH_EINVAL, "lora: at most %d adapters at once, got %d", MH_MAX_LORAS, n);
    for (int i = 0; i < n; i++)
        if (!list[i] || mh_lora_check(m, list[i], NULL))
            return mh_err_set(err, MH_EINVAL, "lora: adapter %d was made for another model", i + 1);
    for (int i = 0; i < n; i++) m->lora[i] = list[i];
    m->n_lora = n;
    return MH_OK;
}

/* ===== applying: y += scale (x Aᵀ) Bᵀ ===== */

/* OpenBLAS for every T, one token included: against the f32 vec_dot kernel
 * on the pool (rank 8, 64..2048 wide, 1 and 2 threads, a 2-core machine)
 * it was 1.1-2x faster for one token and 3-6x for four; xa is the
 * caller's, so no call allocates. */
void mh_lora_addmm(const float *a, const float *b, int64_t r, int64_t rows, int64_t cols, float scale,
                   const float *x, int64_t T, float *y, float *xa)
{
    if (T <= 0 || r <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)r, (int)cols, 1.0f, x, (int)cols,
                a, (int)cols, 0.0f, xa, (int)r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)rows, (int)r, scale, xa, (int)r,
                b, (int)r, 1.0f, y, (int)rows);
}

int64_t mh_lora_scratch_len(const mh_model *m, int64_t T, const mh_batch_seq *seqs, int n_seqs)
{
    int64_t r = 0;
    for (int i = 0; i < m->n_lora; i++) r = m->lora[i]->max_rank > r ? m->lora[i]->max_rank : r;
    for (int i = 0; i < n_seqs; i++)
        for (int j = 0; j < seqs[i].n_loras; j++)
            if (seqs[i].loras[j].lora && seqs[i].loras[j].lora->max_rank > r) r = seqs[i].loras[j].lora->max_rank;
    return r * T;
}

/* y: (T, rows) += scale · (x (T, cols) Aᵀ) Bᵀ of lo's pair on (l, k), if any. */
static int add_one(const mh_model *m, const mh_lora *lo, float mult, int64_t l, int k, const float *x, int64_t T,
                   float *y, float *xa, mh_err *err)
{
    const mh_lora_pair *p = &lo->pairs[l * MH_LORA_TARGETS + k];
    if (!p->a || mult == 0.0f) return MH_OK;
    if (!xa) return mh_err_set(err, MH_EINVAL, "lora: no scratch for the adapter update");
    int64_t rows, cols;
    target_shape(m, l, k, &rows, &cols);
    mh_lora_addmm(p->a, p->b, p->rank, rows, cols, lo->scale * mult, x, T, y, xa);
    return MH_OK;
}

/* y: (T, rows) += Σ scale · (x (T, cols) Aᵀ) Bᵀ over the model's adapters
 * (every row), then over each sequence's own on its rows only: a decoding
 * row is one token, so its update is two thin sgemms of its own (rows
 * without adapters cost nothing). */
int mh_lora_apply(const mh_model *m, int64_t l, int k, const float *x, int64_t T, float *y, float *xa,
                  const mh_batch_seq *seqs, int n_seqs, mh_err *err)
{
    int st = MH_OK;
    for (int i = 0; !st && i < m->n_lora; i++) st = add_one(m, m->lora[i], 1.0f, l, k, x, T, y, xa, err);
    if (st || !seqs) return st;
    const mh_weight *w = mh_layer_proj(&m->layers[l], (mh_proj)k);
    int64_t r0 = 0;
    for (int i = 0; !st && i < n_seqs; r0 += seqs[i].n, i++)
        for (int j = 0; !st && j < seqs[i].n_loras; j++)
            st = add_one(m, seqs[i].loras[j].lora, seqs[i].loras[j].scale, l, k, x + r0 * w->cols, seqs[i].n,
                         y + r0 * w->rows, xa, err);
    return st;
}
