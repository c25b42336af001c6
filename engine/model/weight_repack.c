/* weight_repack.c: at load, packs a model's q4_0 and q8_0 projections into the
 * interleaved layout of mh/quant_repack.h (when the level in force gains
 * from it), all in one arena in forward order on 2 MiB pages where that
 * pays, and lets the mapped file pages they were read from go.
 * Layer: engine/model; uses mh/quant_repack.h, mh/gguf.h and POSIX madvise. */
#include <stdlib.h>
#include <string.h>
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

/* The packed copies share one arena, in the order a forward pass reads
 * them (each layer's q, k, v, o, gate, up, down, then the output head),
 * on 2 MiB pages where the kernel grants them: a decode step streams the
 * whole arena, and with 4 KiB pages every page costs a TLB walk and
 * restarts the hardware prefetcher's stream (135M Q4_0: the one-token
 * matvec sequence 4.1 -> 3.1 ms at one thread; docs/performance.md, "Q4_0
 * decode, session 8"). Faulting fresh 2 MiB pages in can cost 3-7 ms per
 * MiB on a VM whose host reclaims free guest memory (Firecracker: 1.5-3.8 s
 * for 512 MiB against 0.5 s in 4 KiB pages), so by default only arenas up
 * to HUGE_AUTO_MAX are faulted in as huge pages, where that is a fraction
 * of a second; a larger one is packed in 4 KiB pages and advised after,
 * so khugepaged collapses it in the background (~16 MiB every 10 s by
 * default) without delaying the first token. MOONHUB_HUGEPAGES=1 faults
 * huge pages in at any size (a long-running server), =0 never asks for
 * them. Small arenas keep 4 KiB pages (a huge page would be padding). */
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_AUTO_MAX ((size_t)256 << 20)
#define SLOT(b) (((b) + 63) & ~(size_t)63)

/* *huge: 0 no advice, 1 advise before packing (faulted in as huge pages),
 * 2 advise after (khugepaged collapses them later) */
static int want_huge(size_t total, int *huge, mh_err *err)
{
    const char *e = getenv("MOONHUB_HUGEPAGES");
    if (e && *e && strcmp(e, "0") && strcmp(e, "1"))
        return mh_err_set(err, MH_EINVAL, "MOONHUB_HUGEPAGES=%s: use 1 (2 MiB pages for the repacked "
                          "weights at any size), 0 (never) or leave it unset", e);
    if (total < 4 * HUGE_PAGE || (e && *e == '0')) *huge = 0;
    else *huge = (e && *e == '1') || total <= HUGE_AUTO_MAX ? 1 : 2;
    return MH_OK;
}

static size_t slot_bytes(const mh_weight *w)
{
    if (!w->data || w->packed || !mh_repack_wanted(w->dtype, w->rows, w->cols)) return 0;
    return SLOT(mh_repack_bytes(w->dtype, w->rows, w->cols));
}

static int repack_one(mh_model *m, mh_weight *w, uint8_t **at, mh_err *err)
{
    size_t slot = slot_bytes(w), bytes = mh_repack_bytes(w->dtype, w->rows, w->cols);
    if (!slot) return MH_OK;
    int st = mh_repack_pack(w->dtype, w->data, w->rows, w->cols, *at);
    if (st)
        return mh_err_set(err, st, "model: cannot repack a (%lld, %lld) weight", (long long)w->rows,
                          (long long)w->cols);
    w->packed = *at;
    *at += slot;
    if (in_mapping(m, w->data, bytes)) drop_pages(w->data, bytes);
    return MH_OK;
}

/* the packable weights in forward order; *n of them, NULL when out of memory */
static mh_weight **forward_order(mh_model *m, int64_t *n)
{
    mh_weight **v = malloc(sizeof *v * (size_t)(m->hp.n_layer * MH_PROJ_COUNT + 1));
    *n = 0;
    for (int64_t l = 0; v && l < m->hp.n_layer; l++) {
        mh_layer *L = &m->layers[l];
        mh_weight *w[MH_PROJ_COUNT] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
        for (int k = 0; k < MH_PROJ_COUNT; k++) v[(*n)++] = w[k];
    }
    if (v) v[(*n)++] = &m->g.output;   /* tied: tok_embd keeps the file layout */
    return v;
}

int mh_model_repack(mh_model *m, mh_err *err)
{
    int64_t n;
    mh_weight **w = forward_order(m, &n);
    if (!w) return mh_err_set(err, MH_ENOMEM, "model: out of memory");
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) total += slot_bytes(w[i]);
    int huge = 0;
    int st = want_huge(total, &huge, err);
    size_t cap = huge ? (total + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE : total;
    void *arena = NULL;
    if (!st && total && posix_memalign(&arena, huge ? HUGE_PAGE : 64, cap))
        st = mh_err_set(err, MH_ENOMEM, "model: out of memory repacking %zu bytes of weights", total);
    if (arena) {
        if (huge == 1) madvise(arena, cap, MADV_HUGEPAGE);   /* advice: refused, the pages stay 4 KiB */
        st = mh_model_own(m, arena, err);
    }
    uint8_t *at = arena;
    for (int64_t i = 0; !st && arena && i < n; i++) st = repack_one(m, w[i], &at, err);
    if (!st && huge == 2) madvise(arena, cap, MADV_HUGEPAGE);
    free(w);
    return st;
}
