/* tensor_view.c: views that share storage (view, reshape, narrow, select,
 * transpose, permute, squeeze, unsqueeze, expand). Layer: engine/core.
 * Views work on quantized tensors too as long as each row of blocks stays
 * whole and contiguous (narrow/select on outer dims, reshape of outer dims). */
#include "tensor_internal.h"

/* Byte offset of element lin (elements) for t's dtype. For block types lin
 * is a multiple of the block size (outer strides are). */
static size_t byte_off(mh_dtype dt, int64_t lin)
{
    const mh_dtype_traits *tr = mh_dtype_info(dt);
    return (size_t)(lin / tr->block_size) * tr->type_size;
}

/* A new header with t's storage and the given geometry; for block types it
 * checks that the last dim stays contiguous and whole blocks. */
static mh_tensor *make_view(const char *fn, const mh_tensor *t, size_t offset, int nd,
                            const int64_t *shape, const int64_t *stride, mh_err *err)
{
    const mh_dtype_traits *tr = mh_dtype_info(t->dtype);
    if (tr->is_quant) {
        bool ok = nd > 0 && shape[nd - 1] % tr->block_size == 0 &&
                  (stride[nd - 1] == 1 || shape[nd - 1] <= 1);
        for (int i = 0; ok && i < nd - 1; i++) ok = stride[i] % tr->block_size == 0 || shape[i] == 1;
        if (!ok) {
            mh_err_set(err, MH_ETYPE, "%s: the result would split %s blocks (their rows of %d must stay whole)",
                       fn, tr->name, tr->block_size);
            return NULL;
        }
    }
    return mh__tensor_header(t->st, offset, t->dtype, nd, shape, stride, err);
}

/* Resolves one -1 in shape against numel; false with err set when invalid. */
static bool infer_shape(const char *fn, const mh_tensor *t, int nd, const int64_t *in,
                        int64_t *out, mh_err *err)
{
    char b[160];
    int64_t numel = mh_tensor_numel(t), known = 1;
    int infer = -1;
    if (nd < 0 || nd > MH_MAX_DIMS) {
        mh_err_set(err, MH_EINVAL, "%s: %d dims (0..%d allowed)", fn, nd, MH_MAX_DIMS);
        return false;
    }
    for (int i = 0; i < nd; i++) {
        out[i] = in[i];
        if (in[i] == -1 && infer < 0) { infer = i; continue; }
        if (in[i] < 0) {
            mh_err_set(err, MH_EINVAL, "%s: bad size %lld in shape %s", fn, (long long)in[i],
                       mh_shape_str(nd, in, b, sizeof b));
            return false;
        }
        known *= in[i];
    }
    if (infer >= 0) {
        if (known == 0 || numel % known) {
            mh_err_set(err, MH_ESHAPE, "%s: shape %s cannot hold %lld elements", fn,
                       mh_shape_str(nd, in, b, sizeof b), (long long)numel);
            return false;
        }
        out[infer] = numel / known;
        known = numel;
    }
    if (known != numel) {
        mh_err_set(err, MH_ESHAPE, "%s: shape %s needs %lld elements, got %lld", fn,
                   mh_shape_str(nd, out, b, sizeof b), (long long)known, (long long)numel);
        return false;
    }
    return true;
}

/* Strides for viewing t with shape ns without copying (torch's rule: each
 * run of dims that are contiguous with each other may be re-split). */
static bool view_strides(const mh_tensor *t, int nd, const int64_t *ns, int64_t *st)
{
    int od = t->ndim;
    const int64_t one = 1;
    const int64_t *os = od ? t->shape : &one, *ost = od ? t->stride : &one;
    if (!od) od = 1;
    if (mh_tensor_numel(t) == 0 || mh_tensor_is_contiguous(t)) {
        int64_t s = 1;
        for (int i = nd - 1; i >= 0; i--) { st[i] = s; s *= ns[i]; }
        return true;
    }
    int vd = nd - 1;
    int64_t base = ost[od - 1], tnum = 1, vnum = 1;
    for (int d = od - 1; d >= 0; d--) {
        tnum *= os[d];
        if (d == 0 || (os[d - 1] != 1 && ost[d - 1] != tnum * base)) {
            while (vd >= 0 && (vnum < tnum || ns[vd] == 1)) {
                st[vd] = vnum * base;
                vnum *= ns[vd];
                vd--;
            }
            if (vnum != tnum) return false;
            if (d > 0) { base = ost[d - 1]; tnum = 1; vnum = 1; }
        }
    }
    return vd == -1;
}

mh_tensor *mh_tensor_view(const mh_tensor *t, int ndim, const int64_t *shape, mh_err *err)
{
    int64_t ns[MH_MAX_DIMS], st[MH_MAX_DIMS];
    if (!infer_shape("view", t, ndim, shape, ns, err)) return NULL;
    if (!view_strides(t, ndim, ns, st)) {
        char a[160], b[160], c[160];
        mh_err_set(err, MH_ESHAPE, "view: cannot view %s with strides %s as %s without a copy (use reshape)",
                   mh_shape_str(t->ndim, t->shape, a, sizeof a),
                   mh_shape_str(t->ndim, t->stride, b, sizeof b), mh_shape_str(ndim, ns, c, sizeof c));
        return NULL;
    }
    return make_view("view", t, t->offset, ndim, ns, st, err);
}

mh_tensor *mh_tensor_reshape(const mh_tensor *t, int ndim, const int64_t *shape, mh_err *err)
{
    int64_t ns[MH_MAX_DIMS], st[MH_MAX_DIMS];
    if (!infer_shape("reshape", t, ndim, shape, ns, err)) return NULL;
    if (view_strides(t, ndim, ns, st)) return make_view("reshape", t, t->offset, ndim, ns, st, err);
    mh_tensor *c = mh_tensor_contiguous(t, err);
    if (!c) return NULL;
    mh_tensor *v = mh_tensor_view(c, ndim, ns, err);
    mh_tensor_release(c);
    return v;
}

mh_tensor *mh_tensor_narrow(const mh_tensor *t, int dim, int64_t start, int64_t len, mh_err *err)
{
    int d = mh__dim(dim, t->ndim);
    if (d < 0)
        return mh_err_set(err, MH_ERANGE, "narrow: dim %d out of range for %d dims", dim, t->ndim), NULL;
    if (start < 0) start += t->shape[d];
    if (start < 0 || len < 0 || start + len > t->shape[d]) {
        mh_err_set(err, MH_ERANGE, "narrow: start %lld + length %lld exceeds dim %d of size %lld",
                   (long long)start, (long long)len, d, (long long)t->shape[d]);
        return NULL;
    }
    int64_t shape[MH_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[d] = len;
    const mh_dtype_traits *tr = mh_dtype_info(t->dtype);
    if (tr->is_quant && d == t->ndim - 1 && start % tr->block_size)
        return mh_err_set(err, MH_ETYPE, "narrow: start %lld splits a %s block of %d", (long long)start,
                          tr->name, tr->block_size), NULL;
    return make_view("narrow", t, t->offset + (len ? byte_off(t->dtype, start * t->stride[d]) : 0),
                     t->ndim, shape, t->stride, err);
}

mh_tensor *mh_tensor_select(const mh_tensor *t, int dim, int64_t index, mh_err *err)
{
    int d = mh__dim(dim, t->ndim);
    if (d < 0)
        return mh_err_set(err, MH_ERANGE, "select: dim %d out of range for %d dims", dim, t->ndim), NULL;
    int64_t i = index < 0 ? index + t->shape[d] : index;
    if (i < 0 || i >= t->shape[d]) {
        mh_err_set(err, MH_ERANGE, "select: index %lld out of range for dim %d of size %lld",
                   (long long)index, d, (long long)t->shape[d]);
        return NULL;
    }
    if (mh_dtype_info(t->dtype)->is_quant && d == t->ndim - 1)
        return mh_err_set(err, MH_ETYPE, "select: cannot pick one element of a %s row",
                          mh_dtype_info(t->dtype)->name), NULL;
    int64_t shape[MH_MAX_DIMS], stride[MH_MAX_DIMS];
    int n = 0;
    for (int k = 0; k < t->ndim; k++) {
        if (k == d) continue;
        shape[n] = t->shape[k];
        stride[n++] = t->stride[k];
    }
    return make_view("select", t, t->offset + byte_off(t->dtype, i * t->stride[d]), n, shape, stride, err);
}

mh_tensor *mh_tensor_permute(const mh_tensor *t, const int *perm, int n, mh_err *err)
{
    if (n != t->ndim)
        return mh_err_set(err, MH_EINVAL, "permute: %d dims given for a tensor of %d dims", n, t->ndim), NULL;
    int64_t shape[MH_MAX_DIMS], stride[MH_MAX_DIMS];
    bool seen[MH_MAX_DIMS] = {false};
    for (int i = 0; i < n; i++) {
        int d = mh__dim(perm[i], n);
        if (d < 0 || seen[d])
            return mh_err_set(err, MH_EINVAL, "permute: dim %d at position %d is %s", perm[i], i,
                              d < 0 ? "out of range" : "repeated"), NULL;
        seen[d] = true;
        shape[i] = t->shape[d];
        stride[i] = t->stride[d];
    }
    return make_view("permute", t, t->offset, n, shape, stride, err);
}

mh_tensor *mh_tensor_transpose(const mh_tensor *t, int d0, int d1, mh_err *err)
{
    int a = mh__dim(d0, t->ndim), b = mh__dim(d1, t->ndim);
    if (a < 0 || b < 0)
        return mh_err_set(err, MH_ERANGE, "transpose: dims %d,%d out of range for %d dims", d0, d1,
                          t->ndim), NULL;
    int perm[MH_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return mh_tensor_permute(t, perm, t->ndim, err);
}

mh_tensor *mh_tensor_squeeze(const mh_tensor *t, int dim, mh_err *err)
{
    int d = dim == MH_ALL ? -1 : mh__dim(dim, t->ndim);
    if (dim != MH_ALL && d < 0)
        return mh_err_set(err, MH_ERANGE, "squeeze: dim %d out of range for %d dims", dim, t->ndim), NULL;
    int64_t shape[MH_MAX_DIMS], stride[MH_MAX_DIMS];
    int n = 0;
    for (int k = 0; k < t->ndim; k++) {
        if (t->shape[k] == 1 && (dim == MH_ALL || k == d)) continue;
        shape[n] = t->shape[k];
        stride[n++] = t->stride[k];
    }
    return make_view("squeeze", t, t->offset, n, shape, stride, err);
}

mh_tensor *mh_tensor_unsqueeze(const mh_tensor *t, int dim, mh_err *err)
{
    int d = mh__dim(dim, t->ndim + 1);
    if (d < 0 || t->ndim >= MH_MAX_DIMS)
        return mh_err_set(err, MH_ERANGE, "unsqueeze: dim %d out of range for %d dims", dim, t->ndim), NULL;
    int64_t shape[MH_MAX_DIMS], stride[MH_MAX_DIMS];
    for (int k = 0, n = 0; k <= t->ndim; k++) {
        if (k == d) {
            shape[k] = 1;
            stride[k] = d < t->ndim ? t->stride[d] * t->shape[d] : 1;
            continue;
        }
        shape[k] = t->shape[n];
        stride[k] = t->stride[n++];
    }
    return make_view("unsqueeze", t, t->offset, t->ndim + 1, shape, stride, err);
}

mh_tensor *mh_tensor_expand(const mh_tensor *t, int ndim, const int64_t *shape, mh_err *err)
{
    char a[160], b[160];
    if (ndim < t->ndim || ndim > MH_MAX_DIMS)
        return mh_err_set(err, MH_ESHAPE, "expand: cannot expand %s to %d dims",
                          mh_shape_str(t->ndim, t->shape, a, sizeof a), ndim), NULL;
    int64_t ns[MH_MAX_DIMS], st[MH_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        int k = i - (ndim - t->ndim);
        int64_t want = shape[i];
        if (k < 0) {
            if (want < 0)
                return mh_err_set(err, MH_ESHAPE, "expand: size -1 not allowed for new dim %d", i), NULL;
            ns[i] = want;
            st[i] = 0;
        } else if (want == -1 || want == t->shape[k]) {
            ns[i] = t->shape[k];
            st[i] = t->stride[k];
        } else if (t->shape[k] == 1 && want >= 0) {
            ns[i] = want;
            st[i] = 0;
        } else {
            return mh_err_set(err, MH_ESHAPE, "expand: cannot expand %s to %s: dim %d is %lld, not 1",
                              mh_shape_str(t->ndim, t->shape, a, sizeof a),
                              mh_shape_str(ndim, shape, b, sizeof b), i, (long long)t->shape[k]), NULL;
        }
    }
    return make_view("expand", t, t->offset, ndim, ns, st, err);
}
