/* tensor_ops.c: elementwise tensor ops: broadcasting binary ops, unary ops
 * with scalar parameters, and where. Layer: engine/core; uses the f32
 * kernels and the thread pool. Floats (f16/bf16 too) are computed in f32
 * and rounded on store, integers in int64; comparisons give u8 0/1. */
#include <math.h>
#include "tensor_internal.h"
#include "mh/kernels.h"
#include "mh/threadpool.h"

enum { CH = 1024, KIND_BIN, KIND_UN, KIND_WHERE };
#define PAR_GRAIN 32768    /* elements per parallel chunk */

/* ===== the arithmetic on contiguous chunks ===== */

static inline float fmax_nan(float a, float b) { return (a > b || a != a) ? a : b; }
static inline float fmin_nan(float a, float b) { return (a < b || a != a) ? a : b; }

static void bin_f32(mh_binop op, const mh_kernels *k, int64_t n, const float *a, const float *b, float *y)
{
    int64_t i;
    switch (op) {
    case MH_OP_ADD: k->add(n, a, b, y); break;
    case MH_OP_SUB: k->sub(n, a, b, y); break;
    case MH_OP_MUL: k->mul(n, a, b, y); break;
    case MH_OP_DIV: k->div(n, a, b, y); break;
    case MH_OP_POW: for (i = 0; i < n; i++) y[i] = powf(a[i], b[i]); break;
    case MH_OP_MAX: for (i = 0; i < n; i++) y[i] = fmax_nan(a[i], b[i]); break;
    case MH_OP_MIN: for (i = 0; i < n; i++) y[i] = fmin_nan(a[i], b[i]); break;
    case MH_OP_EQ: for (i = 0; i < n; i++) y[i] = a[i] == b[i]; break;
    case MH_OP_NE: for (i = 0; i < n; i++) y[i] = a[i] != b[i]; break;
    case MH_OP_LT: for (i = 0; i < n; i++) y[i] = a[i] < b[i]; break;
    case MH_OP_LE: for (i = 0; i < n; i++) y[i] = a[i] <= b[i]; break;
    case MH_OP_GT: for (i = 0; i < n; i++) y[i] = a[i] > b[i]; break;
    case MH_OP_GE: for (i = 0; i < n; i++) y[i] = a[i] >= b[i]; break;
    }
}

static int64_t ipow(int64_t b, int64_t e)
{
    if (e < 0) return b == 1 ? 1 : b == -1 ? (e & 1 ? -1 : 1) : 0;
    uint64_t r = 1, x = (uint64_t)b;       /* unsigned: overflow wraps, no UB */
    for (; e; e >>= 1, x *= x) if (e & 1) r *= x;
    return (int64_t)r;
}

static inline int64_t idiv(int64_t a, int64_t b)
{
    if (b == 0) return 0;                  /* defined, not a trap */
    if (b == -1) return (int64_t)(0 - (uint64_t)a);
    return a / b;
}

static void bin_i64(mh_binop op, int64_t n, const int64_t *a, const int64_t *b, int64_t *y)
{
    int64_t i;
    switch (op) {
    case MH_OP_ADD: for (i = 0; i < n; i++) y[i] = (int64_t)((uint64_t)a[i] + (uint64_t)b[i]); break;
    case MH_OP_SUB: for (i = 0; i < n; i++) y[i] = (int64_t)((uint64_t)a[i] - (uint64_t)b[i]); break;
    case MH_OP_MUL: for (i = 0; i < n; i++) y[i] = (int64_t)((uint64_t)a[i] * (uint64_t)b[i]); break;
    case MH_OP_DIV: for (i = 0; i < n; i++) y[i] = idiv(a[i], b[i]); break;
    case MH_OP_POW: for (i = 0; i < n; i++) y[i] = ipow(a[i], b[i]); break;
    case MH_OP_MAX: for (i = 0; i < n; i++) y[i] = a[i] > b[i] ? a[i] : b[i]; break;
    case MH_OP_MIN: for (i = 0; i < n; i++) y[i] = a[i] < b[i] ? a[i] : b[i]; break;
    case MH_OP_EQ: for (i = 0; i < n; i++) y[i] = a[i] == b[i]; break;
    case MH_OP_NE: for (i = 0; i < n; i++) y[i] = a[i] != b[i]; break;
    case MH_OP_LT: for (i = 0; i < n; i++) y[i] = a[i] < b[i]; break;
    case MH_OP_LE: for (i = 0; i < n; i++) y[i] = a[i] <= b[i]; break;
    case MH_OP_GT: for (i = 0; i < n; i++) y[i] = a[i] > b[i]; break;
    case MH_OP_GE: for (i = 0; i < n; i++) y[i] = a[i] >= b[i]; break;
    }
}

static void un_f32(mh_unop op, const mh_kernels *k, double p0, double p1, int64_t n, const float *x, float *y)
{
    int64_t i;
    float s = (float)p0, t = (float)p1;
    switch (op) {
    case MH_UOP_NEG: for (i = 0; i < n; i++) y[i] = -x[i]; break;
    case MH_UOP_ABS: for (i = 0; i < n; i++) y[i] = fabsf(x[i]); break;
    case MH_UOP_EXP: k->exp(n, x, y); break;
    case MH_UOP_LOG: for (i = 0; i < n; i++) y[i] = logf(x[i]); break;
    case MH_UOP_SQRT: for (i = 0; i < n; i++) y[i] = sqrtf(x[i]); break;
    case MH_UOP_RSQRT: for (i = 0; i < n; i++) y[i] = 1.0f / sqrtf(x[i]); break;
    case MH_UOP_TANH: k->tanh(n, x, y); break;
    case MH_UOP_SIGMOID: k->sigmoid(n, x, y); break;
    case MH_UOP_SILU: k->silu(n, x, y); break;
    case MH_UOP_GELU: k->gelu(n, x, y); break;
    case MH_UOP_POW:
        if (s == 2.0f) for (i = 0; i < n; i++) y[i] = x[i] * x[i];
        else for (i = 0; i < n; i++) y[i] = powf(x[i], s);
        break;
    case MH_UOP_CLAMP:
        for (i = 0; i < n; i++) { float v = x[i] < s ? s : x[i]; y[i] = v > t ? t : v; }
        break;
    case MH_UOP_ADD_S: for (i = 0; i < n; i++) y[i] = x[i] + s; break;
    case MH_UOP_SUB_S: for (i = 0; i < n; i++) y[i] = x[i] - s; break;
    case MH_UOP_RSUB_S: for (i = 0; i < n; i++) y[i] = s - x[i]; break;
    case MH_UOP_MUL_S: k->scale(n, x, s, y); break;
    case MH_UOP_DIV_S: for (i = 0; i < n; i++) y[i] = x[i] / s; break;
    case MH_UOP_RDIV_S: for (i = 0; i < n; i++) y[i] = s / x[i]; break;
    }
}

static void un_i64(mh_unop op, double p0, double p1, int64_t n, const int64_t *x, int64_t *y)
{
    int64_t i, s = mh__sat_i64(p0, -9.3e18, 9.3e18), t = mh__sat_i64(p1, -9.3e18, 9.3e18);
    switch (op) {
    case MH_UOP_NEG: for (i = 0; i < n; i++) y[i] = (int64_t)(0 - (uint64_t)x[i]); break;
    case MH_UOP_ABS: for (i = 0; i < n; i++) y[i] = x[i] < 0 ? (int64_t)(0 - (uint64_t)x[i]) : x[i]; break;
    case MH_UOP_CLAMP: for (i = 0; i < n; i++) { int64_t v = x[i] < s ? s : x[i]; y[i] = v > t ? t : v; } break;
    case MH_UOP_ADD_S: for (i = 0; i < n; i++) y[i] = (int64_t)((uint64_t)x[i] + (uint64_t)s); break;
    case MH_UOP_SUB_S: for (i = 0; i < n; i++) y[i] = (int64_t)((uint64_t)x[i] - (uint64_t)s); break;
    case MH_UOP_RSUB_S: for (i = 0; i < n; i++) y[i] = (int64_t)((uint64_t)s - (uint64_t)x[i]); break;
    case MH_UOP_MUL_S: for (i = 0; i < n; i++) y[i] = (int64_t)((uint64_t)x[i] * (uint64_t)s); break;
    default: for (i = 0; i < n; i++) y[i] = x[i]; break;   /* never chosen: see un_keeps_int */
    }
}

/* ===== the row engine ===== */

typedef struct ew_job {
    int kind, op;
    double p0, p1;
    bool ints;                 /* compute in int64 (else f32) */
    int nops;                  /* operand 0 is the output */
    mh_dtype dt[4];
    char *base[4];
    size_t es[4];
    mh__iter it;               /* template; each chunk seeks its own copy */
    const mh_kernels *k;
} ew_job;

typedef union ew_buf { float f[CH]; int64_t i[CH]; } ew_buf;

/* operand row chunk in compute type: a direct pointer when the layout allows */
static const void *gather(const ew_job *j, int k, const mh__iter *it, int64_t o, int64_t n, ew_buf *b)
{
    const char *p = j->base[k] + (it->off[k] + o * it->istride[k]) * (int64_t)j->es[k];
    if (it->istride[k] == 1 && j->dt[k] == (j->ints ? MH_DTYPE_I64 : MH_DTYPE_F32)) return p;
    if (j->ints) mh__row_to_i64(j->dt[k], p, it->istride[k], n, b->i);
    else mh__row_to_f32(j->dt[k], p, it->istride[k], n, b->f);
    return j->ints ? (const void *)b->i : (const void *)b->f;
}

static void where_row(bool ints, int64_t n, const void *c, const void *a, const void *b, void *y)
{
    if (ints) {
        const int64_t *cc = c, *aa = a, *bb = b; int64_t *yy = y;
        for (int64_t i = 0; i < n; i++) yy[i] = cc[i] ? aa[i] : bb[i];
    } else {
        const float *cc = c, *aa = a, *bb = b; float *yy = y;
        for (int64_t i = 0; i < n; i++) yy[i] = cc[i] != 0 ? aa[i] : bb[i];
    }
}

static void ew_row(const ew_job *j, const mh__iter *it)
{
    ew_buf bufs[4];
    for (int64_t o = 0; o < it->inner; o += CH) {
        int64_t n = it->inner - o < CH ? it->inner - o : CH;
        const void *x[4] = {NULL, NULL, NULL, NULL};
        for (int k = 1; k < j->nops; k++) x[k] = gather(j, k, it, o, n, &bufs[k]);
        if (j->kind == KIND_WHERE && j->ints && !mh__is_int(j->dt[1])) {
            /* a float condition is true when nonzero (0.5 too), so not via truncation */
            const char *p = j->base[1] + (it->off[1] + o * it->istride[1]) * (int64_t)j->es[1];
            mh__row_to_f32(j->dt[1], p, it->istride[1], n, bufs[0].f);
            for (int64_t i = 0; i < n; i++) bufs[1].i[i] = bufs[0].f[i] != 0;
            x[1] = bufs[1].i;
        }
        char *op = j->base[0] + (it->off[0] + o * it->istride[0]) * (int64_t)j->es[0];
        bool direct = it->istride[0] == 1 && j->dt[0] == (j->ints ? MH_DTYPE_I64 : MH_DTYPE_F32);
        void *y = direct ? (void *)op : (j->ints ? (void *)bufs[0].i : (void *)bufs[0].f);
        if (j->kind == KIND_BIN && j->ints) bin_i64(j->op, n, x[1], x[2], y);
        else if (j->kind == KIND_BIN) bin_f32(j->op, j->k, n, x[1], x[2], y);
        else if (j->kind == KIND_UN && j->ints) un_i64(j->op, j->p0, j->p1, n, x[1], y);
        else if (j->kind == KIND_UN) un_f32(j->op, j->k, j->p0, j->p1, n, x[1], y);
        else where_row(j->ints, n, x[1], x[2], x[3], y);
        if (direct) continue;
        if (j->ints) mh__row_from_i64(j->dt[0], y, n, op, it->istride[0]);
        else mh__row_from_f32(j->dt[0], y, n, op, it->istride[0]);
    }
}

static void ew_range(void *ctx, int64_t r0, int64_t r1)
{
    const ew_job *j = ctx;
    mh__iter it = j->it;
    mh__iter_seek(&it, r0);
    for (int64_t r = r0; r < r1; r++) {
        ew_row(j, &it);
        mh__iter_next(&it);
    }
}

/* all f32, contiguous, same shape: kernels straight on the tensors' memory */
static void flat_range(void *ctx, int64_t b, int64_t e)
{
    const ew_job *j = ctx;
    float *y = (float *)j->base[0] + b;
    const float *a = (const float *)j->base[1] + b;
    if (j->kind == KIND_BIN) bin_f32(j->op, j->k, e - b, a, (const float *)j->base[2] + b, y);
    else un_f32(j->op, j->k, j->p0, j->p1, e - b, a, y);
}

/* Runs the job over out's shape; ts[1..nops-1] are the inputs. */
static void ew_run(ew_job *j, mh_tensor *out, const mh_tensor *const *ts)
{
    int nd = out->ndim;
    int64_t st[4][MH_MAX_DIMS];
    const int64_t *sp[4];
    bool flat = !j->ints && mh_tensor_is_contiguous(out) && out->dtype == MH_DTYPE_F32;
    int64_t n = mh_tensor_numel(out);
    j->k = mh_kernels_get();
    for (int k = 0; k < j->nops; k++) {
        const mh_tensor *t = k ? ts[k] : out;
        j->dt[k] = t->dtype;
        j->base[k] = mh_tensor_data(t);
        j->es[k] = mh__esize(t->dtype);
        mh__broadcast_strides(t, nd, out->shape, st[k]);
        sp[k] = st[k];
        if (k) flat = flat && t->dtype == MH_DTYPE_F32 && mh_tensor_is_contiguous(t) && mh_tensor_numel(t) == n;
    }
    if (flat && j->kind != KIND_WHERE && !(j->kind == KIND_BIN && j->op >= MH_OP_EQ)) {
        mh_parallel_for(n, PAR_GRAIN, flat_range, j);
        return;
    }
    mh__iter_init(&j->it, nd, out->shape, j->nops, sp);
    int64_t grain = j->it.inner >= PAR_GRAIN ? 1 : PAR_GRAIN / (j->it.inner ? j->it.inner : 1);
    mh_parallel_for(j->it.rows, grain, ew_range, j);
}

/* The output: out checked against the result shape (borrowed, retained), or new. */
static mh_tensor *prep_out(const char *fn, mh_tensor *out, mh_dtype dt, int nd, const int64_t *shape, mh_err *err)
{
    if (!out) return mh__tensor_empty(dt, nd, shape, err);
    char a[160], b[160];
    if (mh__reject_quant(fn, out, err)) return NULL;
    if (out->ndim != nd || memcmp(out->shape, shape, sizeof(int64_t) * (size_t)nd))
        return mh_err_set(err, MH_ESHAPE, "%s: out has shape %s, the result has %s", fn,
                          mh_shape_str(out->ndim, out->shape, a, sizeof a), mh_shape_str(nd, shape, b, sizeof b)), NULL;
    mh_tensor_retain(out);
    return out;
}

static const char *binop_name(mh_binop op)
{
    static const char *names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                  "eq", "ne", "lt", "le", "gt", "ge"};
    return (unsigned)op < sizeof names / sizeof names[0] ? names[op] : "binary";
}

mh_tensor *mh_tensor_binary(mh_binop op, const mh_tensor *a, const mh_tensor *b, mh_tensor *out, mh_err *err)
{
    const char *fn = binop_name(op);
    if ((unsigned)op > MH_OP_GE) return mh_err_set(err, MH_EINVAL, "binary: unknown op %d", (int)op), NULL;
    if (mh__reject_quant(fn, a, err) || mh__reject_quant(fn, b, err)) return NULL;
    int nd;
    int64_t shape[MH_MAX_DIMS];
    if (!mh__broadcast_shape(fn, a->ndim, a->shape, b->ndim, b->shape, &nd, shape, err)) return NULL;
    mh_dtype ct = mh__promote(a->dtype, b->dtype);
    mh_tensor *r = prep_out(fn, out, op >= MH_OP_EQ ? MH_DTYPE_U8 : ct, nd, shape, err);
    if (!r) return NULL;
    ew_job j = {.kind = KIND_BIN, .op = op, .ints = mh__is_int(ct), .nops = 3};
    const mh_tensor *ts[3] = {r, a, b};
    ew_run(&j, r, ts);
    return r;
}

/* integer input stays integer for these ops with an integral scalar */
static bool un_keeps_int(mh_unop op, double p0, double p1)
{
    switch (op) {
    case MH_UOP_NEG: case MH_UOP_ABS: return true;
    case MH_UOP_CLAMP: return floor(p0) == p0 && floor(p1) == p1;
    case MH_UOP_ADD_S: case MH_UOP_SUB_S: case MH_UOP_RSUB_S: case MH_UOP_MUL_S:
        return floor(p0) == p0 && fabs(p0) < 9e18;
    default: return false;
    }
}

mh_tensor *mh_tensor_unary(mh_unop op, const mh_tensor *a, double p0, double p1, mh_tensor *out, mh_err *err)
{
    if ((unsigned)op > MH_UOP_RDIV_S) return mh_err_set(err, MH_EINVAL, "unary: unknown op %d", (int)op), NULL;
    if (mh__reject_quant("unary", a, err)) return NULL;
    bool ints = mh__is_int(a->dtype) && un_keeps_int(op, p0, p1);
    mh_dtype dt = mh__is_int(a->dtype) && !ints ? MH_DTYPE_F32 : a->dtype;
    mh_tensor *r = prep_out("unary", out, dt, a->ndim, a->shape, err);
    if (!r) return NULL;
    ew_job j = {.kind = KIND_UN, .op = op, .p0 = p0, .p1 = p1, .ints = ints, .nops = 2};
    const mh_tensor *ts[2] = {r, a};
    ew_run(&j, r, ts);
    return r;
}

mh_tensor *mh_tensor_where(const mh_tensor *cond, const mh_tensor *a, const mh_tensor *b, mh_err *err)
{
    if (mh__reject_quant("where", cond, err) || mh__reject_quant("where", a, err) ||
        mh__reject_quant("where", b, err)) return NULL;
    int nd, nd2;
    int64_t s1[MH_MAX_DIMS], shape[MH_MAX_DIMS];
    if (!mh__broadcast_shape("where", a->ndim, a->shape, b->ndim, b->shape, &nd, s1, err)) return NULL;
    if (!mh__broadcast_shape("where", cond->ndim, cond->shape, nd, s1, &nd2, shape, err)) return NULL;
    mh_dtype ct = mh__promote(a->dtype, b->dtype);
    mh_tensor *r = mh__tensor_empty(ct, nd2, shape, err);
    if (!r) return NULL;
    ew_job j = {.kind = KIND_WHERE, .ints = mh__is_int(ct), .nops = 4};
    const mh_tensor *ts[4] = {r, cond, a, b};
    ew_run(&j, r, ts);
    return r;
}
