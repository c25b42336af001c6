/* quant_repack.c: the packed q4_0 and q8_0 layouts of mh/quant_repack.h:
 * packing, the scalar reference kernels on them, the per-level kernel table and the
 * matmul driver (activation quantization, groups of rows on the thread
 * pool, tail rows through the plain q4_0 / q8_0 traits). Layer: engine/kernels;
 * uses the thread pool and the quant traits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mh/threadpool.h"
#include "quant_kernels.h"
#include "quant_repack_kernels.h"

#define GROUP MH_REPACK_ROWS

/* ===== layout ===== */

size_t mh_repack_bytes(mh_dtype t, int64_t rows, int64_t n)
{
    if ((t != MH_DTYPE_Q4_0 && t != MH_DTYPE_Q8_0) || n <= 0 || n % MH_QK || rows < GROUP) return 0;
    return (size_t)(rows / GROUP) * GROUP * mh_dtype_row_size(t, n);
}

bool mh_repack_wanted(mh_dtype t, int64_t rows, int64_t n)
{
    return mh_repack_bytes(t, rows, n) > 0 && mh_cpu_level_get() >= MH_CPU_AVX2;
}

typedef struct pack_job {
    mh_dtype t;
    const uint8_t *src;
    size_t w_row, g_bytes;
    int64_t nb;
    uint8_t *dst;
} pack_job;

/* groups [g0, g1): each source row read once, in order (a mapped weight
 * faults its pages in sequence) */
static void pack_q8_0(const pack_job *j, const uint8_t *src, uint8_t *q)
{
    for (int r = 0; r < GROUP; r++) {
        const mh_block_q8_0 *row = (const void *)(src + (size_t)r * j->w_row);
        for (int64_t b = 0; b < j->nb; b++) {
            uint8_t *blk = q + b * MH_RP8_BLOCK;
            memcpy(blk + MH_RP8_QS + 2 * r, &row[b].d, 2);
            for (int k = 0; k < 8; k++)
                for (int i = 0; i < 4; i++) blk[64 * k + 4 * r + i] = (uint8_t)row[b].qs[4 * k + i] ^ 0x80;
        }
    }
}

static void pack_groups(void *ctx, int64_t g0, int64_t g1)
{
    const pack_job *j = ctx;
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *q = j->dst + (size_t)g * j->g_bytes;
        if (j->t == MH_DTYPE_Q8_0) {
            pack_q8_0(j, j->src + (size_t)g * GROUP * j->w_row, q);
            continue;
        }
        for (int r = 0; r < GROUP; r++) {
            const mh_block_q4_0 *row = (const void *)(j->src + (size_t)(g * GROUP + r) * j->w_row);
            for (int64_t b = 0; b < j->nb; b++) {
                uint8_t *blk = q + b * MH_RP_BLOCK;
                memcpy(blk + MH_RP_QS + 2 * r, &row[b].d, 2);
                for (int k = 0; k < 4; k++) memcpy(blk + 64 * k + 4 * r, row[b].qs + 4 * k, 4);
            }
        }
    }
}

int mh_repack_pack(mh_dtype t, const void *src, int64_t rows, int64_t n, void *dst)
{
    if (!mh_repack_bytes(t, rows, n) || !src || !dst) return MH_EINVAL;
    int64_t nb = n / MH_QK;
    size_t blk = t == MH_DTYPE_Q8_0 ? MH_RP8_BLOCK : MH_RP_BLOCK;
    pack_job j = { t, src, mh_dtype_row_size(t, n), (size_t)nb * blk, nb, dst };
    mh_parallel_for(rows / GROUP, 1, pack_groups, &j);
    return MH_OK;
}

/* ===== the reference kernel =====
 * Reads the packed bytes back into each row's levels and follows
 * mh_k_vec_dot_q4_0_ref: the whole int32 dot of a block, then one fmaf
 * per block (the canonical q4_0 order, quant_kernels.h). It does not use
 * xs, so it also checks the SIMD kernels' block summaries. */
static float ref_row(int64_t nb, const uint8_t *q, int r, const mh_block_q8_0 *x)
{
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int s = 0;
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < 4; i++) {
                const int e = 4 * k + i, v = q[b * MH_RP_BLOCK + 64 * k + 4 * r + i];
                s += ((v & 15) - 8) * x[b].qs[e] + ((v >> 4) - 8) * x[b].qs[e + 16];
            }
        uint16_t h;
        memcpy(&h, q + b * MH_RP_BLOCK + MH_RP_QS + 2 * r, 2);
        acc = fmaf((float)s, mh_f16_to_f32(h) * mh_f16_to_f32(x[b].d), acc);
    }
    return acc;
}

void mh_k_rgemm_q4_0x16_ref(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, size_t x_row,
                            const mh_repack_xsum *xs, int64_t C, float *y, int64_t ldy)
{
    (void)xs;
    const int64_t nb = n / MH_QK;
    for (int64_t g = 0; g < G; g++) {
        const uint8_t *q = wp + (size_t)g * nb * MH_RP_BLOCK;
        for (int64_t c = 0; c < C; c++)
            for (int r = 0; r < GROUP; r++)
                y[c * ldy + g * GROUP + r] = ref_row(nb, q, r, (const void *)(x + (size_t)c * x_row));
    }
}

/* q8_0 as mh_k_vec_dot_q8_0_ref: lane k takes the exact partial of level
 * dword k (the packed bytes - 128) of each block, one fmaf per block with
 * d_w * d_x, and the lanes end in the canonical tree (quant_kernels.h) */
static float ref_row8(int64_t nb, const uint8_t *q, int r, const mh_block_q8_0 *x)
{
    float acc[8] = {0};
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = q + b * MH_RP8_BLOCK;
        uint16_t h;
        memcpy(&h, blk + MH_RP8_QS + 2 * r, 2);
        const float d = mh_f16_to_f32(h) * mh_f16_to_f32(x[b].d);
        for (int k = 0; k < 8; k++) {
            int s = 0;
            for (int i = 0; i < 4; i++) s += (blk[64 * k + 4 * r + i] - 128) * x[b].qs[4 * k + i];
            acc[k] = fmaf((float)s, d, acc[k]);
        }
    }
    return mh_k_lanes_sum8(acc);
}

void mh_k_rgemm_q8_0x16_ref(int64_t n, const uint8_t *wp, int64_t G, const uint8_t *x, size_t x_row,
                            const mh_repack_xsum8 *xs, int64_t C, float *y, int64_t ldy)
{
    (void)xs;
    const int64_t nb = n / MH_QK;
    for (int64_t g = 0; g < G; g++) {
        const uint8_t *q = wp + (size_t)g * nb * MH_RP8_BLOCK;
        for (int64_t c = 0; c < C; c++)
            for (int r = 0; r < GROUP; r++)
                y[c * ldy + g * GROUP + r] = ref_row8(nb, q, r, (const void *)(x + (size_t)c * x_row));
    }
}

void mh_repack_xsum_row(const void *x, int64_t n, mh_repack_xsum *xs)
{
    const mh_block_q8_0 *b = x;
    for (int64_t i = 0; i < n / MH_QK; i++) {
        int s = 0;
        for (int j = 0; j < MH_QK; j++) s += b[i].qs[j];
        xs[i] = (mh_repack_xsum){ -8 * s, mh_f16_to_f32(b[i].d) };
    }
}

void mh_repack_xsum8_row(const void *x, int64_t n, mh_repack_xsum8 *xs)
{
    const mh_block_q8_0 *b = x;
    for (int64_t i = 0; i < n / MH_QK; i++) {
        for (int k = 0; k < 8; k++) {
            const int8_t *q = b[i].qs + 4 * k;
            xs[i].corr[k] = -128 * (q[0] + q[1] + q[2] + q[3]);
        }
        xs[i].d = mh_f16_to_f32(b[i].d);
    }
}

/* ===== the level table ===== */

static const mh_repack_kernels g_levels[] = {
    { "ref", mh_k_rgemm_q4_0x16_ref, mh_k_rgemm_q8_0x16_ref, MH_CPU_REF, false },
    { "avx2", mh_k_rgemm_q4_0x16_avx2, mh_k_rgemm_q8_0x16_avx2, MH_CPU_AVX2, false },
    { "avx512", mh_k_rgemm_q4_0x16_avx512, mh_k_rgemm_q8_0x16_avx512, MH_CPU_AVX512, false },
    { "avx512-vnni", mh_k_rgemm_q4_0x16_avx512vnni, mh_k_rgemm_q8_0x16_avx512vnni, MH_CPU_AVX512, true },
};

const mh_repack_kernels *mh_repack_kernels_for(mh_cpu_level level, bool vnni)
{
    mh_cpu_level best = mh_cpu_detect();
    if (level > best) level = best;
    if (level == MH_CPU_AVX512) return &g_levels[vnni && mh_cpu_has_avx512_vnni() ? 3 : 2];
    return &g_levels[level == MH_CPU_AVX2 ? 1 : 0];
}

const mh_repack_kernels *mh_repack_kernels_get(void)
{
    return mh_repack_kernels_for(mh_cpu_level_get(), true);
}

/* the same level's plain traits for t (tails, activations) */
static const mh_quant_traits *plain_traits(const mh_repack_kernels *k, mh_dtype t)
{
    if (k->level == MH_CPU_AVX512 && !k->vnni) return mh_quant_traits_avx512_novnni(t);
    return mh_quant_traits_for(t, k->level);
}

/* ===== the matmul ===== */

/* tokens per kernel call: their activations (<= 64 x ~1.6 KB) stay in L2
 * while a worker's groups stream through */
#define RP_TOKENS 64

typedef struct rp_job {
    const mh_repack_kernels *k;
    bool q8;                        /* q8_0 weights (else q4_0) */
    const mh_quant_traits *plain;
    const uint8_t *wp, *data;       /* packed groups; file layout (tails) */
    int64_t rows, n, G, T;
    size_t g_bytes, w_row, x_row;
    const uint8_t *xq;              /* (T, x_row) q8_0 */
    void *xs;                       /* (T, n / 32) mh_repack_xsum, or xsum8 for q8_0 */
    float *y;                       /* (T, rows) */
    mh_from_float_fn quant;         /* for the activation job */
    const float *x;                 /* (T, n) */
} rp_job;

static void rp_tail(const rp_job *j)
{
    int64_t r0 = j->G * GROUP;
    const uint8_t *w = j->data + (size_t)r0 * j->w_row;
    if (j->T == 1) {
        for (int64_t r = r0; r < j->rows; r++, w += j->w_row) j->plain->vec_dot(j->n, w, j->xq, &j->y[r]);
        return;
    }
    j->plain->gemm(j->n, w, j->w_row, j->rows - r0, j->xq, j->x_row, j->T, j->y + r0, j->rows);
}

/* items [i0, i1): groups, and item G for the tail rows */
static void rp_range(void *ctx, int64_t i0, int64_t i1)
{
    const rp_job *j = ctx;
    const int64_t nb = j->n / MH_QK, g1 = i1 < j->G ? i1 : j->G;
    for (int64_t t = 0; i0 < g1 && t < j->T; t += RP_TOKENS) {
        int64_t tn = j->T - t < RP_TOKENS ? j->T - t : RP_TOKENS;
        const uint8_t *wp = j->wp + (size_t)i0 * j->g_bytes, *xq = j->xq + (size_t)t * j->x_row;
        float *y = j->y + t * j->rows + i0 * GROUP;
        if (j->q8) j->k->gemm_q8_0(j->n, wp, g1 - i0, xq, j->x_row, (const mh_repack_xsum8 *)j->xs + t * nb, tn, y, j->rows);
        else j->k->gemm(j->n, wp, g1 - i0, xq, j->x_row, (const mh_repack_xsum *)j->xs + t * nb, tn, y, j->rows);
    }
    if (i1 > j->G) rp_tail(j);
}

static void rp_quant(void *ctx, int64_t t0, int64_t t1)
{
    const rp_job *j = ctx;
    uint8_t *xq = (uint8_t *)j->xq;
    const int64_t nb = j->n / MH_QK;
    for (int64_t t = t0; t < t1; t++) {
        j->quant(j->x + t * j->n, xq + (size_t)t * j->x_row, j->n);
        if (j->q8) mh_repack_xsum8_row(xq + (size_t)t * j->x_row, j->n, (mh_repack_xsum8 *)j->xs + t * nb);
        else mh_repack_xsum_row(xq + (size_t)t * j->x_row, j->n, (mh_repack_xsum *)j->xs + t * nb);
    }
}

/* one-token scratch up to this row length lives on the stack: a decode
 * step runs hundreds of matvecs */
#define RP_STACK_N 8192

int mh_repack_linear(const mh_repack_kernels *k, mh_dtype t, const void *packed, const void *data,
                     int64_t rows, int64_t n, const float *x, int64_t T, float *y)
{
    if (!k || !mh_repack_bytes(t, rows, n) || !packed || !data || !x || !y || T < 0) return MH_EINVAL;
    if (T == 0) return MH_OK;
    const int64_t nb = n / MH_QK, G = rows / GROUP;
    const bool q8 = t == MH_DTYPE_Q8_0;
    const size_t xs_size = q8 ? sizeof(mh_repack_xsum8) : sizeof(mh_repack_xsum);
    rp_job j = { k, q8, plain_traits(k, t), packed, data, rows, n, G, T,
                 (size_t)nb * (q8 ? MH_RP8_BLOCK : MH_RP_BLOCK), mh_dtype_row_size(t, n),
                 mh_dtype_row_size(MH_DTYPE_Q8_0, n), NULL, NULL, y, plain_traits(k, MH_DTYPE_Q8_0)->from_float, x };
    uint8_t xq_stack[RP_STACK_N / MH_QK * sizeof(mh_block_q8_0)];
    mh_repack_xsum8 xs_stack[RP_STACK_N / MH_QK];   /* the larger summary */
    uint8_t *heap = NULL;
    if (T == 1 && n <= RP_STACK_N) {
        j.xq = xq_stack;
        j.xs = xs_stack;
    } else {
        heap = malloc(j.x_row * (size_t)T + xs_size * (size_t)(nb * T));
        if (!heap) return MH_ENOMEM;
        j.xq = heap + xs_size * (size_t)(nb * T);   /* xs first: aligned */
        j.xs = heap;
    }
    mh_parallel_for(T, 8, rp_quant, &j);
    /* one-token chunks of at least ~64K multiply-adds (as the plain matvec) */
    int64_t items = G + (rows > G * GROUP), min_chunk = T == 1 ? 65536 / (GROUP * n) : 1;
    mh_parallel_for(items, min_chunk > 0 ? min_chunk : 1, rp_range, &j);
    free(heap);
    return MH_OK;
}
