/* weight_repack.c: at load, packs a model's q4_0 and q8_0 projections into the
 * interleaved layout of mh/quant_repack.h (when the level in force gains
 * from it) and lets the mapped file pages they were read from go.
 * Layer: engine/model; uses mh/quant_repack.h, mh/gguf.h and POSIX madvise. */
#include <stdlib.h>
#include <unistd.h>
#include <sys/mman.h>
#include "mh/gguf.h"
#include "mh/quant_repack.h"
#include "model_internal.h"

/* Whether [p, p + n) lies in one tensor of the model's GGUF mapping (not
 * in an owned copy such as a misaligned tensor's: dropping the pages of
 * malloc'd memory would zero it). */
static bool in_mapping(const mh_model *m, const void *p, size_t n)
{
    const uint8_t *a = p;
    for (int64_t i = 0; m->gguf && i < mh_gguf_n_tensors(m->gguf); i++) {
        const mh_gguf_tensor *t = mh_gguf_tensor_at(m->gguf, i);
        const uint8_t *b = t->data;
        if (a >= b && a + n <= b + t->nbytes) return true;
    }
    return false;
}

/* The packed rows' file pages leave the resident set: the mapping is
 * private and never written, so a later reader of w->data (LoRA export,
 * training, the kv-state identity) faults the file's bytes back in. Only
 * pages wholly inside the range go; a neighbour's shared page stays. */
static void drop_pages(const void *p, size_t n)
{
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) / pg * pg, b = ((uintptr_t)p + n) / pg * pg;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);   /* advice: failure only keeps the pages */
}

static int repack_one(mh_model *m, mh_weight *w, mh_err *err)
{
    if (!w->data || w->packed || !mh_repack_wanted(w->dtype, w->rows, w->cols)) return MH_OK;
    size_t bytes = mh_repack_bytes(w->dtype, w->rows, w->cols);
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes))
        return mh_err_set(err, MH_ENOMEM, "model: out of memory repacking a (%lld, %lld) weight",
                          (long long)w->rows, (long long)w->cols);
    int st = mh_repack_pack(w->dtype, w->data, w->rows, w->cols, p);
    if (st) {
        free(p);
        return mh_err_set(err, st, "model: cannot repack a (%lld, %lld) weight", (long long)w->rows,
                          (long long)w->cols);
    }
    if ((st = mh_model_own(m, p, err))) return st;
    w->packed = p;
    if (in_mapping(m, w->data, bytes)) drop_pages(w->data, bytes);
    return MH_OK;
}

int mh_model_repack(mh_model *m, mh_err *err)
{
    int st = repack_one(m, &m->g.output, err);   /* tied: tok_embd keeps the file layout */
    for (int64_t l = 0; !st && l < m->hp.n_layer; l++) {
        mh_layer *L = &m->layers[l];
        mh_weight *w[MH_PROJ_COUNT] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
        for (int k = 0; !st && k < MH_PROJ_COUNT; k++) st = repack_one(m, w[k], err);
    }
    return st;
}
