/* tensor.c: tensor life cycle, geometry and element access (mh/tensor.h),
 * plus the shared internals of tensor_internal.h (allocation, broadcasting,
 * the row iterator). Layer: engine/core (pure C11). */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include "tensor_internal.h"

/* ===== allocation ===== */

static bool shape_ok(const char *fn, int ndim, const int64_t *shape, int64_t *numel, mh_err *err)
{
    if (ndim < 0 || ndim > MH_MAX_DIMS) {
        mh_err_set(err, MH_EINVAL, "%s: %d dims (0..%d allowed)", fn, ndim, MH_MAX_DIMS);
        return false;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char b[160];
            mh_err_set(err, MH_EINVAL, "%s: negative size in shape %s", fn,
                       mh_shape_str(ndim, shape, b, sizeof b));
            return false;
        }
        if (shape[i] && n > INT64_MAX / 16 / shape[i]) {
            mh_err_set(err, MH_ENOMEM, "%s: shape too large", fn);
            return false;
        }
        n *= shape[i];
    }
    *numel = n;
    return true;
}

static mh_tensor *alloc_tensor(mh_dtype dt, int ndim, const int64_t *shape, bool zero, mh_err *err)
{
    int64_t n;
    if ((unsigned)dt >= MH_DTYPE_COUNT) {
        mh_err_set(err, MH_EINVAL, "tensor: unknown dtype %d", (int)dt);
        return NULL;
    }
    if (!shape_ok("tensor", ndim, shape, &n, err)) return NULL;
    const mh_dtype_traits *tr = mh_dtype_info(dt);
    if (tr->is_quant && (ndim == 0 || shape[ndim - 1] % tr->block_size)) {
        mh_err_set(err, MH_ESHAPE, "tensor: %s needs a last dim that is a multiple of %d",
                   tr->name, tr->block_size);
        return NULL;
    }
    size_t nbytes = mh_dtype_row_size(dt, n);
    mh_storage *st = zero ? mh_storage_new(nbytes, err) : mh_storage_new_uninit(nbytes, err);
    if (!st) return NULL;
    mh_tensor *t = mh__tensor_header(st, 0, dt, ndim, shape, NULL, err);
    mh_storage_release(st);
    return t;
}

mh_tensor *mh__tensor_empty(mh_dtype dt, int ndim, const int64_t *shape, mh_err *err)
{
    return alloc_tensor(dt, ndim, shape, false, err);
}

mh_tensor *mh_tensor_new(mh_dtype dt, int ndim, const int64_t *shape, mh_err *err)
{
    return alloc_tensor(dt, ndim, shape, true, err);
}

mh_tensor *mh__tensor_header(mh_storage *st, size_t offset, mh_dtype dt, int ndim,
                             const int64_t *shape, const int64_t *stride, mh_err *err)
{
    mh_tensor *t = malloc(sizeof *t);
    if (!t) {
        mh_err_set(err, MH_ENOMEM, "out of memory allocating a tensor header");
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->refs = 1;
    t->st = st;
    mh_storage_retain(st);
    t->offset = offset;
    t->dtype = dt;
    t->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = stride ? stride[i] : s;
        s *= shape[i];
    }
    return t;
}

mh_tensor *mh_tensor_from_storage(mh_storage *st, size_t offset, mh_dtype dt, int ndim,
                                  const int64_t *shape, const int64_t *stride, mh_err *err)
{
    int64_t n;
    if (!st) {
        mh_err_set(err, MH_EINVAL, "from_storage: no storage");
        return NULL;
    }
    if ((unsigned)dt >= MH_DTYPE_COUNT) {
        mh_err_set(err, MH_EINVAL, "from_storage: unknown dtype %d", (int)dt);
        return NULL;
    }
    if (!shape_ok("from_storage", ndim, shape, &n, err)) return NULL;
    const mh_dtype_traits *tr = mh_dtype_info(dt);
    int64_t maxlin = 0, cs = 1;
    char b[160];
    for (int i = ndim - 1; i >= 0; i--) {
        int64_t s = stride ? stride[i] : cs;
        if (s < 0) {
            mh_err_set(err, MH_EINVAL, "from_storage: negative stride %lld in dim %d",
                       (long long)s, i);
            return NULL;
        }
        if (tr->is_quant && i == ndim - 1 && s != 1 && shape[i] > 1) {
            mh_err_set(err, MH_ESHAPE, "from_storage: %s needs a contiguous last dim", tr->name);
            return NULL;
        }
        if (tr->is_quant && i < ndim - 1 && s % tr->block_size) {
            mh_err_set(err, MH_ESHAPE, "from_storage: %s stride %lld of dim %d is not a multiple of %d",
                       tr->name, (long long)s, i, tr->block_size);
            return NULL;
        }
        if (shape[i] > 0) maxlin += (shape[i] - 1) * s;
        cs *= shape[i];
    }
    if (tr->is_quant && (ndim == 0 || shape[ndim - 1] % tr->block_size)) {
        mh_err_set(err, MH_ESHAPE, "from_storage: %s shape %s: last dim must be a multiple of %d",
                   tr->name, mh_shape_str(ndim, shape, b, sizeof b), tr->block_size);
        return NULL;
    }
    size_t need = n == 0 ? 0 : (tr->is_quant ? mh_dtype_row_size(dt, maxlin + 1)
                                             : (size_t)(maxlin + 1) * tr->type_size);
    if (offset > st->nbytes || need > st->nbytes - offset) {
        mh_err_set(err, MH_ERANGE, "from_storage: view %s of %s at offset %zu needs %zu bytes, storage has %zu",
                   mh_shape_str(ndim, shape, b, sizeof b), tr->name, offset, need, st->nbytes);
        return NULL;
    }
    return mh__tensor_header(st, offset, dt, ndim, shape, stride, err);
}

void mh_tensor_retain(mh_tensor *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void mh_tensor_release(mh_tensor *t)
{
    if (!t) return;
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
    mh_storage_release(t->st);
    free(t);
}

/* ===== geometry ===== */

int64_t mh_tensor_numel(const mh_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

bool mh_tensor_is_contiguous(const mh_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 0) return true;
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

void *mh_tensor_data(const mh_tensor *t) { return (char *)t->st->data + t->offset; }

size_t mh_tensor_nbytes(const mh_tensor *t) { return mh_dtype_row_size(t->dtype, mh_tensor_numel(t)); }

const char *mh_shape_str(int ndim, const int64_t *shape, char *buf, size_t n)
{
    size_t used = 0;
    if (!n) return buf;
    buf[0] = 0;
    used += snprintf(buf, n, "(");
    for (int i = 0; i < ndim && used < n; i++)
        used += snprintf(buf + used, n - used, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, ")");
    return buf;
}

void *mh_tensor_ptr(const mh_tensor *t, const int64_t *idx)
{
    int64_t lin = 0;
    for (int i = 0; i < t->ndim; i++) lin += idx[i] * t->stride[i];
    return (char *)t->st->data + t->offset + lin * (int64_t)mh__esize(t->dtype);
}

static int check_index(const char *fn, const mh_tensor *t, const int64_t *idx, mh_err *err)
{
    if (mh_dtype_info(t->dtype)->is_quant)
        return mh_err_set(err, MH_ETYPE, "%s: element access on a %s tensor (convert it to f32 first)",
                          fn, mh_dtype_info(t->dtype)->name);
    for (int i = 0; i < t->ndim; i++)
        if (idx[i] < 0 || idx[i] >= t->shape[i])
            return mh_err_set(err, MH_ERANGE, "%s: index %lld out of range for dim %d of size %lld",
                              fn, (long long)idx[i], i, (long long)t->shape[i]);
    return MH_OK;
}

int mh_tensor_get(const mh_tensor *t, const int64_t *idx, double *v, mh_err *err)
{
    int rc = check_index("get", t, idx, err);
    if (rc) return rc;
    *v = mh__load_d(t->dtype, mh_tensor_ptr(t, idx));
    return MH_OK;
}

int mh_tensor_set(mh_tensor *t, const int64_t *idx, double v, mh_err *err)
{
    int rc = check_index("set", t, idx, err);
    if (rc) return rc;
    mh__store_d(t->dtype, mh_tensor_ptr(t, idx), v);
    return MH_OK;
}

static const void *flat_ptr(const mh_tensor *t, int64_t i)
{
    int64_t idx[MH_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = t->shape[d] ? i % t->shape[d] : 0;
        i = t->shape[d] ? i / t->shape[d] : 0;
    }
    return mh_tensor_ptr(t, idx);
}

double mh_tensor_get_flat(const mh_tensor *t, int64_t i)
{
    if (mh_dtype_info(t->dtype)->is_quant || i < 0 || i >= mh_tensor_numel(t)) return NAN;
    return mh__load_d(t->dtype, flat_ptr(t, i));
}

int64_t mh_tensor_get_flat_i64(const mh_tensor *t, int64_t i)
{
    if (mh_dtype_info(t->dtype)->is_quant || i < 0 || i >= mh_tensor_numel(t)) return 0;
    return mh__load_i(t->dtype, flat_ptr(t, i));
}

/* ===== shared internals ===== */

int mh__dim(int dim, int ndim)
{
    if (dim < 0) dim += ndim;
    return dim >= 0 && dim < ndim ? dim : -1;
}

bool mh__reject_quant(const char *fn, const mh_tensor *t, mh_err *err)
{
    const mh_dtype_traits *tr = mh_dtype_info(t->dtype);
    if (!tr->is_quant) return false;
    mh_err_set(err, MH_ETYPE, "%s: not supported on %s tensors (convert to f32 first)", fn, tr->name);
    return true;
}

bool mh__broadcast_shape(const char *fn, int na, const int64_t *sa, int nb, const int64_t *sb,
                         int *nout, int64_t *out, mh_err *err)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - na), ib = i - (n - nb);
        int64_t a = ia >= 0 ? sa[ia] : 1, b = ib >= 0 ? sb[ib] : 1;
        if (a != b && a != 1 && b != 1) {
            char ba[160], bb[160];
            mh_err_set(err, MH_ESHAPE, "%s: shapes %s and %s do not broadcast: dim %d is %lld vs %lld",
                       fn, mh_shape_str(na, sa, ba, sizeof ba), mh_shape_str(nb, sb, bb, sizeof bb),
                       i, (long long)a, (long long)b);
            return false;
        }
        out[i] = a == 1 ? b : a;
    }
    *nout = n;
    return true;
}

void mh__broadcast_strides(const mh_tensor *t, int nd, const int64_t *shape, int64_t *stride)
{
    for (int i = 0; i < nd; i++) {
        int it = i - (nd - t->ndim);
        stride[i] = (it < 0 || (t->shape[it] == 1 && shape[i] != 1)) ? 0 : t->stride[it];
    }
}

void mh__iter_init(mh__iter *it, int nd, const int64_t *shape, int nops,
                   const int64_t *const *strides)
{
    memset(it, 0, sizeof *it);
    it->nops = nops;
    if (nd == 0) {                         /* a scalar is one row of one */
        it->nd = 1;
        it->shape[0] = 1;
    } else {
        it->nd = nd;
        for (int d = 0; d < nd; d++) {
            it->shape[d] = shape[d];
            for (int k = 0; k < nops; k++) it->stride[k][d] = strides[k][d];
        }
    }
    it->inner = it->shape[it->nd - 1];
    for (int k = 0; k < nops; k++) it->istride[k] = it->stride[k][it->nd - 1];
    it->rows = 1;
    for (int d = 0; d < it->nd - 1; d++) it->rows *= it->shape[d];
    if (it->inner == 0) it->rows = 0;
}

bool mh__iter_next(mh__iter *it)
{
    if (++it->row >= it->rows) return false;
    for (int d = it->nd - 2; d >= 0; d--) {
        if (++it->idx[d] < it->shape[d]) {
            for (int k = 0; k < it->nops; k++) it->off[k] += it->stride[k][d];
            return true;
        }
        it->idx[d] = 0;
        for (int k = 0; k < it->nops; k++) it->off[k] -= it->stride[k][d] * (it->shape[d] - 1);
    }
    return false;
}

void mh__iter_seek(mh__iter *it, int64_t r)
{
    it->row = r;
    for (int k = 0; k < it->nops; k++) it->off[k] = 0;
    for (int d = it->nd - 2; d >= 0; d--) {
        it->idx[d] = it->shape[d] ? r % it->shape[d] : 0;
        r = it->shape[d] ? r / it->shape[d] : 0;
        for (int k = 0; k < it->nops; k++) it->off[k] += it->idx[d] * it->stride[k][d];
    }
}
