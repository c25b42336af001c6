/* quant_traits.c: the one per-dtype kernel table (to_float, from_float,
 * vec_dot, vec_dot_type, gemm) for each CPU level, the row (de)quantizers and
 * the quantized matvec built on them. Layer: engine/kernels; uses the
 * thread pool (mh/threadpool.h). Levels inherit the kernels of the level
 * below for every dtype that has no faster version. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include "mh/err.h"
#include "mh/threadpool.h"
#include "mh/kernels.h"
#include "quant_kernels.h"

/* ===== the tables ===== */

#define DOT_F   MH_DTYPE_F32
#define DOT_Q8  MH_DTYPE_Q8_0
#define DOT_QK  MH_DTYPE_Q8_K

/* Entries shared by every level: conversions are scalar (they run once per
 * row or at load time), except f16/bf16, which the f16 KV cache converts in
 * the attention loop: those use the SIMD row kernels of mh/kernels.h. */
#define ROW_F32(dot)  [MH_DTYPE_F32]  = {mh_k_dequant_f32_ref,  mh_k_quant_f32_ref,  dot, DOT_F, NULL, NULL}
#define ROW_F16(dot)  [MH_DTYPE_F16]  = {mh_k_dequant_f16_ref,  mh_k_quant_f16_ref,  dot, DOT_F, NULL, NULL}
#define ROW_F16_SIMD(dot) [MH_DTYPE_F16] = {f16_to_f32_simd, f32_to_f16_simd, dot, DOT_F, NULL, NULL}
#define ROW_BF16(dot) [MH_DTYPE_BF16] = {mh_k_dequant_bf16_ref, mh_k_quant_bf16_ref, dot, DOT_F, NULL, NULL}
/* the types with a tiled gemm (quant_gemm*.c) for prompt processing */
/* q8_0's from_float quantizes activations (ggml's x86 rounding); weights go
 * through mh_quantize_row, which keeps the format's reference quantizer */
#define ROW_Q8_0(dot, gemm) [MH_DTYPE_Q8_0] = {mh_k_dequant_q8_0_ref, mh_k_quant_q8_0_act_ref, dot, DOT_Q8, gemm, NULL}
/* AVX-512: the activation types get SIMD quantizers, bit-identical to ref */
#define ROW_Q8_0_512(dot, gemm) [MH_DTYPE_Q8_0] = {mh_k_dequant_q8_0_ref, mh_k_quant_q8_0_act_avx512, dot, DOT_Q8, gemm, NULL}
#define ROW_Q8_K_512 [MH_DTYPE_Q8_K] = {mh_k_dequant_q8_K_ref, mh_k_quant_q8_K_avx512, NULL, DOT_QK, NULL, NULL}
#define ROW_Q4_0(dot, gemm) [MH_DTYPE_Q4_0] = {mh_k_dequant_q4_0_ref, mh_k_quant_q4_0_ref, dot, DOT_Q8, gemm, NULL}
#define ROW_Q5_0(dot, gemm, rows) [MH_DTYPE_Q5_0] = {mh_k_dequant_q5_0_ref, mh_k_quant_q5_0_ref, dot, DOT_Q8, gemm, rows}
#define ROW_Q4_K(dot, gemm, rows) [MH_DTYPE_Q4_K] = {mh_k_dequant_q4_K_ref, mh_k_quant_q4_K_ref, dot, DOT_QK, gemm, rows}
#define ROW_Q5_K(dot) [MH_DTYPE_Q5_K] = {mh_k_dequant_q5_K_ref, mh_k_quant_q5_K_ref, dot, DOT_QK, NULL, NULL}
#define ROW_Q6_K(dot, gemm, rows) [MH_DTYPE_Q6_K] = {mh_k_dequant_q6_K_ref, mh_k_quant_q6_K_ref, dot, DOT_QK, gemm, rows}
/* the types with scalar kernels only, identical at every level */
#define ROWS_SCALAR \
    [MH_DTYPE_Q4_1] = {mh_k_dequant_q4_1_ref, mh_k_quant_q4_1_ref, mh_k_vec_dot_q4_1_ref, DOT_Q8, NULL, NULL}, \
    [MH_DTYPE_Q5_1] = {mh_k_dequant_q5_1_ref, mh_k_quant_q5_1_ref, mh_k_vec_dot_q5_1_ref, DOT_Q8, NULL, NULL}, \
    [MH_DTYPE_Q2_K] = {mh_k_dequant_q2_K_ref, NULL, mh_k_vec_dot_q2_K_ref, DOT_QK, NULL, NULL}, \
    [MH_DTYPE_Q3_K] = {mh_k_dequant_q3_K_ref, NULL, mh_k_vec_dot_q3_K_ref, DOT_QK, NULL, NULL}
#define ROW_Q8_K [MH_DTYPE_Q8_K] = {mh_k_dequant_q8_K_ref, mh_k_quant_q8_K_ref, NULL, DOT_QK, NULL, NULL}

/* Exact either way (F16C rounds to nearest even, as the scalar code does);
 * the kernels table in force is at least AVX2 wherever these are used. */
static void f16_to_f32_simd(const void *src, float *dst, int64_t n)
{
    mh_kernels_get()->f16_to_f32(n, src, dst);
}

static void f32_to_f16_simd(const float *src, void *dst, int64_t n)
{
    mh_kernels_get()->f32_to_f16(n, src, dst);
}

static const mh_quant_traits g_ref[MH_DTYPE_COUNT] = {
    ROW_F32(mh_k_vec_dot_f32_ref), ROW_F16(mh_k_vec_dot_f16_ref), ROW_BF16(mh_k_vec_dot_bf16_ref),
    ROW_Q8_0(mh_k_vec_dot_q8_0_ref, mh_k_gemm_q8_0_ref), ROW_Q4_0(mh_k_vec_dot_q4_0_ref, mh_k_gemm_q4_0_ref),
    ROW_Q5_0(mh_k_vec_dot_q5_0_ref, mh_k_gemm_q5_0_ref, NULL),
    ROW_Q4_K(mh_k_vec_dot_q4_K_ref, mh_k_gemm_q4_K_ref, NULL), ROW_Q5_K(mh_k_vec_dot_q5_K_ref),
    ROW_Q6_K(mh_k_vec_dot_q6_K_ref, mh_k_gemm_q6_K_ref, NULL),
    ROWS_SCALAR, ROW_Q8_K,
};

static const mh_quant_traits g_avx2[MH_DTYPE_COUNT] = {
    ROW_F32(mh_k_vec_dot_f32_avx2), ROW_F16_SIMD(mh_k_vec_dot_f16_avx2), ROW_BF16(mh_k_vec_dot_bf16_avx2),
    ROW_Q8_0(mh_k_vec_dot_q8_0_avx2, mh_k_gemm_q8_0_avx2), ROW_Q4_0(mh_k_vec_dot_q4_0_avx2, mh_k_gemm_q4_0_avx2),
    ROW_Q5_0(mh_k_vec_dot_q5_0_avx2, mh_k_gemm_q5_0_avx2, mh_k_vec_dot_rows_q5_0_avx2),
    ROW_Q4_K(mh_k_vec_dot_q4_K_avx2, mh_k_gemm_q4_K_avx2, mh_k_vec_dot_rows_q4_K_avx2),
    ROW_Q5_K(mh_k_vec_dot_q5_K_avx2),
    ROW_Q6_K(mh_k_vec_dot_q6_K_avx2, mh_k_gemm_q6_K_avx2, mh_k_vec_dot_rows_q6_K_avx2),
    ROWS_SCALAR, ROW_Q8_K,
};

static const mh_quant_traits g_avx512[MH_DTYPE_COUNT] = {
    ROW_F32(mh_k_vec_dot_f32_avx512), ROW_F16_SIMD(mh_k_vec_dot_f16_avx512),
    ROW_BF16(mh_k_vec_dot_bf16_avx512),
    ROW_Q8_0_512(mh_k_vec_dot_q8_0_avx512, mh_k_gemm_q8_0_avx512),
    ROW_Q4_0(mh_k_vec_dot_q4_0_avx512, mh_k_gemm_q4_0_avx512),
    ROW_Q5_0(mh_k_vec_dot_q5_0_avx512, mh_k_gemm_q5_0_avx512, mh_k_vec_dot_rows_q5_0_avx512),
    ROW_Q4_K(mh_k_vec_dot_q4_K_avx512, mh_k_gemm_q4_K_avx512, mh_k_vec_dot_rows_q4_K_avx512),
    ROW_Q5_K(mh_k_vec_dot_q5_K_avx2),
    ROW_Q6_K(mh_k_vec_dot_q6_K_avx512, mh_k_gemm_q6_K_avx512, mh_k_vec_dot_rows_q6_K_avx512),
    ROWS_SCALAR, ROW_Q8_K_512,
};

static const mh_quant_traits g_avx512vnni[MH_DTYPE_COUNT] = {
    ROW_F32(mh_k_vec_dot_f32_avx512), ROW_F16_SIMD(mh_k_vec_dot_f16_avx512),
    ROW_BF16(mh_k_vec_dot_bf16_avx512),
    ROW_Q8_0_512(mh_k_vec_dot_q8_0_avx512vnni, mh_k_gemm_q8_0_avx512vnni),
    ROW_Q4_0(mh_k_vec_dot_q4_0_avx512vnni, mh_k_gemm_q4_0_avx512vnni),
    ROW_Q5_0(mh_k_vec_dot_q5_0_avx512vnni, mh_k_gemm_q5_0_avx512vnni, mh_k_vec_dot_rows_q5_0_avx512vnni),
    ROW_Q4_K(mh_k_vec_dot_q4_K_avx512vnni, mh_k_gemm_q4_K_avx512vnni, mh_k_vec_dot_rows_q4_K_avx512vnni),
    ROW_Q5_K(mh_k_vec_dot_q5_K_avx2),
    ROW_Q6_K(mh_k_vec_dot_q6_K_avx512vnni, mh_k_gemm_q6_K_avx512vnni, mh_k_vec_dot_rows_q6_K_avx512vnni),
    ROWS_SCALAR, ROW_Q8_K_512,
};

static const mh_quant_traits g_none = {NULL, NULL, NULL, MH_DTYPE_F32, NULL, NULL};

const mh_quant_traits *mh_quant_traits_for(mh_dtype t, mh_cpu_level level)
{
    if ((unsigned)t >= MH_DTYPE_COUNT) return &g_none;
    mh_cpu_level best = mh_cpu_detect();
    if (level > best) level = best;
    switch (level) {
    case MH_CPU_AVX512: return mh_cpu_has_avx512_vnni() ? &g_avx512vnni[t] : &g_avx512[t];
    case MH_CPU_AVX2: return &g_avx2[t];
    default: return &g_ref[t];
    }
}

const mh_quant_traits *mh_quant_traits_avx512_novnni(mh_dtype t)
{
    if ((unsigned)t >= MH_DTYPE_COUNT) return &g_none;
    return mh_cpu_detect() >= MH_CPU_AVX512 ? &g_avx512[t] : mh_quant_traits_for(t, MH_CPU_AVX512);
}

const mh_quant_traits *mh_quant_traits_get(mh_dtype t)
{
    return mh_quant_traits_for(t, mh_cpu_level_get());
}

/* ===== rows ===== */

static int check_row(mh_dtype t, int64_t n)
{
    if ((unsigned)t >= MH_DTYPE_COUNT || n < 0) return MH_EINVAL;
    if (n % mh_dtype_info(t)->block_size) return MH_EINVAL;
    return MH_OK;
}

int mh_dequantize_row(mh_dtype t, const void *src, float *dst, int64_t n)
{
    int rc = check_row(t, n);
    if (rc) return rc;
    const mh_quant_traits *tr = t == MH_DTYPE_F16 ? mh_quant_traits_get(t) : &g_ref[t];   /* exact either way */
    if (!tr->to_float) return MH_ETYPE;
    if (n && (!src || !dst)) return MH_EINVAL;
    if (n) tr->to_float(src, dst, n);
    return MH_OK;
}

int mh_quantize_row(mh_dtype t, const float *src, void *dst, int64_t n)
{
    int rc = check_row(t, n);
    if (rc) return rc;
    /* f16 rows (the KV cache, activations rounded for f16 weights) take the
     * SIMD converters, exact like the scalar ones; others stay on the
     * reference quantizers, whose bytes `quantize` promises */
    const mh_quant_traits *tr = t == MH_DTYPE_F16 ? mh_quant_traits_get(t) : &g_ref[t];
    mh_from_float_fn q = t == MH_DTYPE_Q8_0 ? mh_k_quant_q8_0_ref : tr->from_float;
    if (!q) return MH_ETYPE;
    if (n && (!src || !dst)) return MH_EINVAL;
    if (n) q(src, dst, n);
    return MH_OK;
}

/* ===== matvec ===== */

typedef struct matvec_job {
    mh_vec_dot_fn dot;
    mh_vec_dot_rows_fn rows;   /* NULL: one vec_dot per row */
    const uint8_t *w;   /* (rows, row_bytes) */
    size_t row_bytes;
    int64_t n;
    const void *xq;     /* x in the vec_dot_type */
    float *y;           /* (rows) */
} matvec_job;

static void matvec_range(void *ctx, int64_t begin, int64_t end)
{
    const matvec_job *job = ctx;
    if (job->rows) {
        job->rows(job->n, job->w + (size_t)begin * job->row_bytes, job->row_bytes, end - begin, job->xq, job->y + begin);
        return;
    }
    for (int64_t r = begin; r < end; r++)
        job->dot(job->n, job->w + (size_t)r * job->row_bytes, job->xq, &job->y[r]);
}

/* A matvec's rows for the pool: each thread owns one region (equal bytes)
 * and walks it front to back in units of ~32 KiB, one contiguous stream;
 * a thread done with its own takes the next units of the others'. So the
 * end is even to a unit on a quiet machine, and on a loaded one a thread
 * the kernel has descheduled holds back one unit, not a share (the 8 fixed
 * chunks this replaces restarted each thread's stream 4 times a matrix
 * and could leave a core idle for an eighth of it). The parts of a multi-matvec (a layer's q, k and v) are one row
 * space, cut by bytes (a q6_K row weighs 1.46 q4_K rows). */
#define MV_REGIONS_MAX 64
#define MV_UNIT_BYTES 32768
typedef struct mv_region {
    _Alignas(64) _Atomic int64_t next;   /* units [next, end) are left */
    int64_t end;
} mv_region;

typedef struct mv_job {
    matvec_job part[MH_MATVEC_PARTS_MAX];
    int64_t first[MH_MATVEC_PARTS_MAX + 1];   /* global index of each part's row 0 */
    int n_parts, n_regions;
    int64_t unit, rows;                       /* rows per unit (a multiple of 4), all rows */
    mv_region region[MV_REGIONS_MAX];
} mv_job;

/* global rows [b, e): each part's share of them */
static void mv_rows(const mv_job *j, int64_t b, int64_t e)
{
    for (int i = 0; i < j->n_parts && b < e; i++) {
        int64_t lo = j->first[i], hi = j->first[i + 1];
        if (b >= hi) continue;
        int64_t end = e < hi ? e : hi;
        matvec_range((void *)&j->part[i], b - lo, end - lo);
        b = end;
    }
}

/* the next unit of region r, -1 when none is left. Its owner and, once
 * theirs are done, the other threads all take from the front: when one
 * thread has to do a region alone, it still reads it as one forward
 * stream (taking from the back measured ~5 % slower on a loaded machine) */
static int64_t mv_claim(mv_job *j, int r)
{
    mv_region *g = &j->region[r];
    if (atomic_load_explicit(&g->next, memory_order_relaxed) >= g->end) return -1;
    int64_t u = atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed);
    return u < g->end ? u : -1;
}

/* pool chunk r: region r, then what is left of the others */
static void mv_region_run(void *ctx, int64_t r0, int64_t r1)
{
    mv_job *j = ctx;
    for (int64_t r = r0; r < r1; r++)
        for (int v = 0; v < j->n_regions; v++)
            for (int64_t u; (u = mv_claim(j, (int)((r + v) % j->n_regions))) >= 0;) {
                int64_t b = u * j->unit, e = b + j->unit;
                mv_rows(j, b, e < j->rows ? e : j->rows);
            }
}

/* the global row where byte `at` of the parts falls */
static int64_t row_at_byte(const mv_job *j, double at)
{
    for (int i = 0; i < j->n_parts; i++) {
        double bytes = (double)(j->first[i + 1] - j->first[i]) * (double)j->part[i].row_bytes;
        if (at < bytes) return j->first[i] + (int64_t)(at / (double)j->part[i].row_bytes);
        at -= bytes;
    }
    return j->first[j->n_parts];
}

/* units of ~MV_UNIT_BYTES and nt regions of equal bytes */
static void mv_split(mv_job *j, int nt)
{
    size_t row_max = 0;
    double total = 0;
    for (int i = 0; i < j->n_parts; i++) {
        if (j->part[i].row_bytes > row_max) row_max = j->part[i].row_bytes;
        total += (double)(j->first[i + 1] - j->first[i]) * (double)j->part[i].row_bytes;
    }
    j->unit = ((int64_t)(MV_UNIT_BYTES / row_max) + 3) & ~(int64_t)3;
    if (j->unit < 4) j->unit = 4;
    int64_t units = (j->rows + j->unit - 1) / j->unit, prev = 0;
    j->n_regions = nt;
    for (int r = 0; r < nt; r++) {
        int64_t end = r == nt - 1 ? units : (row_at_byte(j, total * (r + 1) / nt) + j->unit / 2) / j->unit;
        if (end < prev) end = prev;
        atomic_init(&j->region[r].next, prev);
        j->region[r].end = end;
        prev = end;
    }
}

int mh_quant_matvec_multi(const mh_matvec_part *parts, int n_parts, int64_t n, const float *x)
{
    if (n_parts < 1 || n_parts > MH_MATVEC_PARTS_MAX || !parts) return MH_EINVAL;
    const mh_quant_traits *tr0 = mh_quant_traits_get(parts[0].type);
    mv_job j = {.n_parts = n_parts};
    for (int i = 0; i < n_parts; i++) {
        const mh_matvec_part *p = &parts[i];
        int rc = check_row(p->type, n);
        if (rc || p->rows < 0) return MH_EINVAL;
        const mh_quant_traits *tr = mh_quant_traits_get(p->type);
        if (!tr->vec_dot) return MH_ETYPE;
        if (tr->vec_dot_type != tr0->vec_dot_type) return MH_EINVAL;   /* x is quantized once */
        if (p->rows && (!p->w || !p->y)) return MH_EINVAL;
        j.part[i] = (matvec_job){tr->vec_dot, tr->vec_dot_rows, p->w, mh_dtype_row_size(p->type, n), n, NULL, p->y};
        j.first[i + 1] = j.first[i] + p->rows;
    }
    int64_t rows = j.first[n_parts];
    if (rows == 0) return MH_OK;
    if (!x) return MH_EINVAL;
    mh_dtype vt = tr0->vec_dot_type;
    if (n % mh_dtype_info(vt)->block_size) return MH_EINVAL;
    _Alignas(64) uint8_t small[16384];   /* x of a decode step: no malloc */
    void *xq = NULL;
    if (vt != MH_DTYPE_F32) {   /* quantize x once for all rows */
        size_t need = mh_dtype_row_size(vt, n) + 1;
        xq = need <= sizeof small ? small : malloc(need);
        if (!xq) return MH_ENOMEM;
        mh_quant_traits_get(vt)->from_float(x, xq, n);
    }
    for (int i = 0; i < n_parts; i++) j.part[i].xq = xq ? xq : (const void *)x;
    /* pieces of at least ~64K multiply-adds keep the pool overhead small */
    int64_t min_rows = n > 0 ? 65536 / n : rows;
    int nt = mh_threads_get();
    j.rows = rows;
    if (nt > MV_REGIONS_MAX) nt = MV_REGIONS_MAX;   /* regions, not threads: any thread runs any */
    if (nt > 1 && rows >= 2 * (min_rows > 4 ? min_rows : 4)) {
        mv_split(&j, nt);
        mh_parallel_for(nt, 1, mv_region_run, &j);
    } else
        mv_rows(&j, 0, rows);
    if (xq != small) free(xq);
    return MH_OK;
}

int mh_quant_matvec(mh_dtype t, const void *w, int64_t rows, int64_t n,
                    const float *x, float *y)
{
    const mh_matvec_part p = {t, w, rows, y};
    return mh_quant_matvec_multi(&p, 1, n, x);
}
