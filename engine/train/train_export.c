/* train_export.c: writes the trained model as GGUF: the base file's
 * metadata, every tensor in the base's order, LoRA merged into its base
 * (W + alpha/r * B A), matrices in the chosen type, vectors in f32.
 * Layer: engine/train; uses the GGUF reader and writer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "mh/gguf.h"
#include "mh/gguf_write.h"
#include "mh/quant.h"
#include "train_internal.h"

/* The adapted linear that owns tensor `name`, or NULL. */
static const tr_lin *lin_of(const mh_trainer *t, const char *name)
{
    long long l;
    char what[32];
    if (sscanf(name, "blk.%lld.%31[a-z_].weight", &l, what) != 2 || l < 0 || l >= t->hp->n_layer) return NULL;
    for (int k = 0; k < MH_PROJ_COUNT; k++)
        if (!strcmp(what, mh_proj_name((mh_proj)k, MH_LAYOUT_GGUF))) return &t->layers[l].lin[k];
    return NULL;
}

/* The current value of tensor gt as f32 into dst (numel floats). */
static int current_value(const mh_trainer *t, const mh_gguf_tensor *gt, float *dst, int64_t numel, mh_err *err)
{
    for (int i = 0; i < t->n_params; i++)
        if (!strcmp(t->params[i].name, gt->name) && t->params[i].rows * t->params[i].cols == numel) {
            memcpy(dst, t->params[i].data, sizeof(float) * (size_t)numel);
            return MH_OK;
        }
    if (gt->dtype < 0 || mh_dequantize_row((mh_dtype)gt->dtype, gt->data, dst, numel))
        return mh_err_set(err, MH_ETYPE, "export: cannot read tensor %s", gt->name);
    const tr_lin *L = lin_of(t, gt->name);
    if (L && L->a)      /* W (out, in) += s B (out, r) A (r, in) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)L->out, (int)L->in, (int)L->a->rows,
                    t->lora_scale, L->b->data, (int)L->a->rows, L->a->data, (int)L->in, 1.0f, dst, (int)L->in);
    return MH_OK;
}

static mh_dtype out_type(const mh_gguf_tensor *gt, mh_dtype want)
{
    if (gt->n_dims < 2) return MH_DTYPE_F32;
    const mh_quant_traits *tr = mh_quant_traits_get(want);
    return gt->ne[0] % mh_dtype_info(want)->block_size || !tr->from_float ? MH_DTYPE_F32 : want;
}

static int write_tensor(mh_gguf_writer *w, const mh_trainer *t, const mh_gguf_tensor *gt, mh_dtype type,
                        mh_err *err)
{
    int64_t numel = 1, cols = gt->ne[0];
    for (int d = 0; d < gt->n_dims; d++) numel *= gt->ne[d];
    mh_dtype ot = out_type(gt, type);
    size_t rb = mh_dtype_row_size(ot, cols);
    float *f = malloc(sizeof(float) * (size_t)numel);
    uint8_t *row = malloc(rb);
    int st = !f || !row ? mh_err_set(err, MH_ENOMEM, "export: out of memory for %s", gt->name)
                        : current_value(t, gt, f, numel, err);
    for (int64_t r = 0; !st && r < numel / cols; r++) {
        mh_quantize_row(ot, f + r * cols, row, cols);
        st = mh_gguf_writer_write_data(w, row, rb, err);
    }
    free(f);
    free(row);
    return st;
}

int mh_trainer_export(const mh_trainer *t, const char *path, mh_dtype type, mh_err *err)
{
    mh_gguf *g = mh_model_gguf(t->m);
    if (!g) return mh_err_set(err, MH_EINVAL, "export: the base model was not loaded from GGUF");
    if (type >= MH_DTYPE_COUNT || (!mh_dtype_info(type)->is_float && !mh_dtype_info(type)->is_quant) ||
        !mh_quant_traits_get(type)->from_float)
        return mh_err_set(err, MH_ETYPE, "export: cannot write weights as %s", mh_dtype_info(type)->name);
    mh_gguf_writer *w = mh_gguf_writer_new();
    if (!w) return mh_err_set(err, MH_ENOMEM, "export: out of memory");
    int st = MH_OK;
    for (int64_t i = 0; !st && i < mh_gguf_n_kv(g); i++) st = mh_gguf_writer_copy_kv(w, mh_gguf_kv_at(g, i), err);
    mh_gguf_writer_remove(w, "general.file_type");     /* the mix changed; readers do not need it */
    for (int64_t i = 0; !st && i < mh_gguf_n_tensors(g); i++) {
        const mh_gguf_tensor *gt = mh_gguf_tensor_at(g, i);
        st = mh_gguf_writer_add_tensor(w, gt->name, gt->n_dims, gt->ne, out_type(gt, type), err);
    }
    if (!st) st = mh_gguf_writer_begin(w, path, err);
    for (int64_t i = 0; !st && i < mh_gguf_n_tensors(g); i++)
        st = write_tensor(w, t, mh_gguf_tensor_at(g, i), type, err);
    if (!st) st = mh_gguf_writer_finish(w, err);
    mh_gguf_writer_free(w);
    return st;
}
