/* tensor_reduce.c: reductions over one dim or all of them (sum, mean, max,
 * min, argmax, argmin, var, norm, prod), with keepdim and max/min indices.
 * Layer: engine/core. Floats accumulate in double (f32 sums of contiguous
 * rows use the SIMD kernel in fixed-size blocks, so results do not depend
 * on the thread count); integers in int64. NaN wins max/min, like torch. */
#include <math.h>
#include <stdlib.h>
#include "tensor_internal.h"
#include "mh/kernels.h"
#include "mh/threadpool.h"

enum { CH = 1024, BLOCK = 1 << 16 };

typedef struct red_state {
    int64_t n;                 /* elements seen */
    double acc, mean, m2;      /* sum or product; Welford for var */
    double best;               /* max/min value */
    int64_t ibest, iacc;       /* index of best; integer sum/prod */
    int64_t ibv;               /* integer best value */
} red_state;

static const char *red_name(mh_redop op)
{
    static const char *names[] = {"sum", "mean", "max", "min", "argmax", "argmin", "var", "norm", "prod"};
    return (unsigned)op < sizeof names / sizeof names[0] ? names[op] : "reduce";
}

static void state_init(red_state *s, mh_redop op)
{
    memset(s, 0, sizeof *s);
    s->acc = op == MH_RED_PROD ? 1 : 0;
    s->iacc = op == MH_RED_PROD ? 1 : 0;
    s->best = NAN;
    s->ibest = -1;
}

static bool wants_max(mh_redop op) { return op == MH_RED_MAX || op == MH_RED_ARGMAX; }

static void update_f(red_state *s, mh_redop op, double p, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++, s->n++) {
        double v = x[i];
        switch (op) {
        case MH_RED_SUM: case MH_RED_MEAN: s->acc += v; break;
        case MH_RED_PROD: s->acc *= v; break;
        case MH_RED_VAR: {
            double d = v - s->mean;
            s->mean += d / (double)(s->n + 1);
            s->m2 += d * (v - s->mean);
            break;
        }
        case MH_RED_NORM:
            if (p == 2) s->acc += v * v;
            else if (p == 1) s->acc += fabs(v);
            else if (isinf(p)) s->acc = fabs(v) > s->acc || v != v ? fabs(v) : s->acc;
            else if (p == 0) s->acc += v != 0;
            else s->acc += pow(fabs(v), p);
            break;
        default:                           /* max/min/argmax/argmin */
            if (s->ibest >= 0 && s->best != s->best) break;          /* NaN already won */
            if (s->ibest < 0 || v != v || (wants_max(op) ? v > s->best : v < s->best)) {
                s->best = v;
                s->ibest = s->n;
            }
        }
    }
}

static void update_i(red_state *s, mh_redop op, double p, const int64_t *x, int64_t n)
{
    if (op == MH_RED_MEAN || op == MH_RED_VAR || op == MH_RED_NORM) {
        float buf[CH];                     /* n <= CH */
        for (int64_t i = 0; i < n; i++) buf[i] = (float)x[i];
        update_f(s, op, p, buf, n);
        return;
    }
    for (int64_t i = 0; i < n; i++, s->n++) {
        int64_t v = x[i];
        if (op == MH_RED_SUM) s->iacc = (int64_t)((uint64_t)s->iacc + (uint64_t)v);
        else if (op == MH_RED_PROD) s->iacc = (int64_t)((uint64_t)s->iacc * (uint64_t)v);
        else if (s->ibest < 0 || (wants_max(op) ? v > s->ibv : v < s->ibv)) {
            s->ibv = v;
            s->ibest = s->n;
        }
    }
}

static double finish(const red_state *s, mh_redop op, double p)
{
    switch (op) {
    case MH_RED_MEAN: return s->n ? s->acc / (double)s->n : NAN;
    case MH_RED_VAR: return s->n - p > 0 ? s->m2 / ((double)s->n - p) : NAN;
    case MH_RED_NORM:
        if (p == 2) return sqrt(s->acc);
        if (p == 1 || p == 0 || isinf(p)) return s->acc;
        return pow(s->acc, 1.0 / p);
    default: return s->acc;
    }
}

/* ===== the job ===== */

typedef struct red_job {
    mh_redop op;
    double p;
    const mh_tensor *a;        /* permuted: the reduced dim last */
    mh_tensor *out, *idx;      /* out: (rows) contiguous; idx: i64 or NULL */
    mh__iter it;
    bool ints;
    const mh_kernels *k;
} red_job;

/* sum of a contiguous f32 run in blocks of BLOCK (same result on any thread count) */
typedef struct blk_job { const float *x; int64_t n; double *part; const mh_kernels *k; } blk_job;

static void blk_range(void *ctx, int64_t b, int64_t e)
{
    const blk_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        int64_t s = i * BLOCK, m = j->n - s < BLOCK ? j->n - s : BLOCK;
        j->part[i] = j->k->sum(m, j->x + s);
    }
}

static double sum_f32(const mh_kernels *k, const float *x, int64_t n)
{
    if (n <= BLOCK) return k->sum(n, x);
    int64_t nb = (n + BLOCK - 1) / BLOCK;
    double stackp[64], *part = nb <= 64 ? stackp : malloc(sizeof(double) * (size_t)nb);
    double s = 0;
    if (!part) {                           /* no memory for partials: serial blocks */
        for (int64_t i = 0; i < nb; i++) s += k->sum(n - i * BLOCK < BLOCK ? n - i * BLOCK : BLOCK, x + i * BLOCK);
        return s;
    }
    blk_job j = {x, n, part, k};
    mh_parallel_for(nb, 1, blk_range, &j);
    for (int64_t i = 0; i < nb; i++) s += part[i];
    if (part != stackp) free(part);
    return s;
}

static void reduce_row(const red_job *j, const mh__iter *it, int64_t r)
{
    red_state s;
    state_init(&s, j->op);
    const mh_tensor *a = j->a;
    const char *base = (const char *)mh_tensor_data(a) + it->off[0] * (int64_t)mh__esize(a->dtype);
    int64_t st = it->istride[0], n = it->inner;
    double v;
    if (a->dtype == MH_DTYPE_F32 && st == 1 && (j->op == MH_RED_SUM || j->op == MH_RED_MEAN)) {
        s.acc = sum_f32(j->k, (const float *)base, n);
        s.n = n;
    } else if (a->dtype == MH_DTYPE_F32 && st == 1 && j->op == MH_RED_NORM && j->p == 2) {
        s.acc = j->k->dot(n, (const float *)base, (const float *)base);
    } else {
        union { float f[CH]; int64_t i[CH]; } buf;
        int64_t es = (int64_t)mh__esize(a->dtype);
        for (int64_t o = 0; o < n; o += CH) {
            int64_t m = n - o < CH ? n - o : CH;
            if (j->ints) {
                mh__row_to_i64(a->dtype, base + o * st * es, st, m, buf.i);
                update_i(&s, j->op, j->p, buf.i, m);
            } else {
                mh__row_to_f32(a->dtype, base + o * st * es, st, m, buf.f);
                update_f(&s, j->op, j->p, buf.f, m);
            }
        }
    }
    char *op = (char *)mh_tensor_data(j->out) + r * (int64_t)mh__esize(j->out->dtype);
    if (j->op == MH_RED_ARGMAX || j->op == MH_RED_ARGMIN) {
        *(int64_t *)op = s.ibest;
        return;
    }
    if (j->idx) ((int64_t *)mh_tensor_data(j->idx))[r] = s.ibest;
    if (j->ints && (j->op == MH_RED_SUM || j->op == MH_RED_PROD)) { mh__store_i(j->out->dtype, op, s.iacc); return; }
    if (j->ints && (j->op == MH_RED_MAX || j->op == MH_RED_MIN)) { mh__store_i(j->out->dtype, op, s.ibv); return; }
    v = (j->op == MH_RED_MAX || j->op == MH_RED_MIN) ? s.best : finish(&s, j->op, j->p);
    mh__store_d(j->out->dtype, op, v);
}

static void red_range(void *ctx, int64_t r0, int64_t r1)
{
    const red_job *j = ctx;
    mh__iter it = j->it;
    mh__iter_seek(&it, r0);
    for (int64_t r = r0; r < r1; r++) {
        reduce_row(j, &it, r);
        mh__iter_next(&it);
    }
}

static mh_dtype out_dtype(mh_redop op, mh_dtype in)
{
    bool isint = mh__is_int(in);
    switch (op) {
    case MH_RED_ARGMAX: case MH_RED_ARGMIN: return MH_DTYPE_I64;
    case MH_RED_SUM: case MH_RED_PROD: return isint ? MH_DTYPE_I64 : in;
    case MH_RED_MAX: case MH_RED_MIN: return in;
    default: return isint ? MH_DTYPE_F32 : in;
    }
}

/* a seen with the reduced dim last: (..., n); all dims: flattened (n) */
static mh_tensor *arrange(const mh_tensor *a, int d, mh_err *err)
{
    if (d < 0) {
        int64_t n = mh_tensor_numel(a);
        return mh_tensor_reshape(a, 1, &n, err);
    }
    int perm[MH_MAX_DIMS], k = 0;
    for (int i = 0; i < a->ndim; i++) if (i != d) perm[k++] = i;
    perm[k] = d;
    return mh_tensor_permute(a, perm, a->ndim, err);
}

static bool result_shape(const mh_tensor *a, int d, bool keepdim, int *nd, int64_t *shape)
{
    *nd = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (d < 0 || i == d) { if (keepdim) shape[(*nd)++] = 1; }
        else shape[(*nd)++] = a->shape[i];
    }
    return true;
}

mh_tensor *mh_tensor_reduce(mh_redop op, const mh_tensor *a, int dim, bool keepdim, double p,
                            mh_tensor **indices, mh_err *err)
{
    const char *fn = red_name(op);
    char b[160];
    if (indices) *indices = NULL;
    if ((unsigned)op > MH_RED_PROD) return mh_err_set(err, MH_EINVAL, "reduce: unknown op %d", (int)op), NULL;
    if (mh__reject_quant(fn, a, err)) return NULL;
    int d = dim == MH_ALL ? -1 : mh__dim(dim, a->ndim);
    if (dim != MH_ALL && d < 0 && !(a->ndim == 0 && (dim == 0 || dim == -1)))
        return mh_err_set(err, MH_ERANGE, "%s: dim %d out of range for %d dims", fn, dim, a->ndim), NULL;
    int64_t n = d < 0 ? mh_tensor_numel(a) : a->shape[d];
    bool needs_one = op == MH_RED_MAX || op == MH_RED_MIN || op == MH_RED_ARGMAX || op == MH_RED_ARGMIN;
    if (n == 0 && needs_one)
        return mh_err_set(err, MH_ESHAPE, "%s: cannot reduce an empty dim of shape %s", fn,
                          mh_shape_str(a->ndim, a->shape, b, sizeof b)), NULL;
    int nd;
    int64_t shape[MH_MAX_DIMS];
    result_shape(a, d, keepdim, &nd, shape);
    mh_tensor *v = arrange(a, d, err);
    if (!v) return NULL;
    red_job j = {.op = op, .p = p, .a = v, .ints = mh__is_int(a->dtype), .k = mh_kernels_get()};
    j.out = mh__tensor_empty(out_dtype(op, a->dtype), nd, shape, err);
    if (j.out && indices && d >= 0 && (op == MH_RED_MAX || op == MH_RED_MIN)) {
        j.idx = mh__tensor_empty(MH_DTYPE_I64, nd, shape, err);
        if (!j.idx) { mh_tensor_release(j.out); j.out = NULL; }
    }
    if (j.out) {
        const int64_t *strides[1] = {v->stride};
        mh__iter_init(&j.it, v->ndim, v->shape, 1, strides);
        if (j.it.rows == 0 && mh_tensor_numel(j.out) > 0) {     /* empty rows: sum 0, prod 1, mean nan */
            mh_tensor_fill_(j.out, op == MH_RED_PROD ? 1 : (op == MH_RED_SUM || op == MH_RED_NORM) ? 0 : NAN, NULL);
        } else {
            int64_t grain = j.it.inner >= 32768 ? 1 : 32768 / (j.it.inner ? j.it.inner : 1);
            mh_parallel_for(j.it.rows, grain, red_range, &j);
        }
    }
    mh_tensor_release(v);
    if (indices) *indices = j.idx;
    return j.out;
}
