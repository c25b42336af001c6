/* kv_copy.c: moving KV rows between caches and plain buffers, for prefix
 * reuse across requests (the scheduler's prefix store keeps snapshots of
 * finished sequences and restores them into a slot's cache).
 * Layer: engine/model (pure C11). Rows are copied bitwise in the cache's
 * own type, so a restored prefix decodes exactly as the original did. */
#include <string.h>
#include "model_internal.h"

/* Bytes of one layer's rows 0..n-1 of K (or of V). */
static size_t layer_bytes(const mh_kv_cache *c, int64_t n)
{
    return c->row_bytes * (size_t)n;
}

/* Start of layer l's rows in K or V: (n_layer, n_ctx, kv_dim). */
static size_t layer_off(const mh_kv_cache *c, int64_t l)
{
    return c->row_bytes * (size_t)c->n_ctx * (size_t)l;
}

size_t mh_kv_cache_snapshot_bytes(const mh_kv_cache *c, int64_t n)
{
    if (!c || n <= 0) return 0;
    return layer_bytes(c, n) * (size_t)c->n_layer * 2;
}

int mh_kv_cache_copy_prefix(mh_kv_cache *dst, const mh_kv_cache *src, int64_t n, mh_err *err)
{
    if (!dst || !src) return mh_err_set(err, MH_EINVAL, "kv copy: caches are required");
    if (dst->type != src->type || dst->kv_dim != src->kv_dim || dst->n_layer != src->n_layer)
        return mh_err_set(err, MH_EINVAL, "kv copy: caches differ in type or shape "
                          "(%s %lldx%lld vs %s %lldx%lld)", mh_dtype_info(dst->type)->name,
                          (long long)dst->n_layer, (long long)dst->kv_dim, mh_dtype_info(src->type)->name,
                          (long long)src->n_layer, (long long)src->kv_dim);
    if (n < 0 || n > src->n_past || n > dst->n_ctx)
        return mh_err_set(err, MH_ERANGE, "kv copy: %lld positions asked, the source holds %lld "
                          "and the destination fits %lld", (long long)n, (long long)src->n_past,
                          (long long)dst->n_ctx);
    if (dst == src) { dst->n_past = n; return MH_OK; }
    size_t lb = layer_bytes(src, n);
    for (int64_t l = 0; l < src->n_layer && lb; l++) {
        memcpy(dst->k + layer_off(dst, l), src->k + layer_off(src, l), lb);
        memcpy(dst->v + layer_off(dst, l), src->v + layer_off(src, l), lb);
    }
    dst->n_past = n;
    return MH_OK;
}

int mh_kv_cache_save(const mh_kv_cache *c, int64_t n, void *buf, size_t size, mh_err *err)
{
    if (!c || (!buf && size)) return mh_err_set(err, MH_EINVAL, "kv save: a cache and a buffer are required");
    if (n < 0 || n > c->n_past)
        return mh_err_set(err, MH_ERANGE, "kv save: %lld positions asked, the cache holds %lld",
                          (long long)n, (long long)c->n_past);
    size_t need = mh_kv_cache_snapshot_bytes(c, n);
    if (size < need)
        return mh_err_set(err, MH_EINVAL, "kv save: %lld positions need %zu bytes, the buffer has %zu",
                          (long long)n, need, size);
    uint8_t *p = buf;
    size_t lb = layer_bytes(c, n);
    for (int64_t l = 0; l < c->n_layer && lb; l++, p += lb) memcpy(p, c->k + layer_off(c, l), lb);
    for (int64_t l = 0; l < c->n_layer && lb; l++, p += lb) memcpy(p, c->v + layer_off(c, l), lb);
    return MH_OK;
}

int mh_kv_cache_load(mh_kv_cache *c, const void *buf, size_t size, int64_t n_saved, int64_t n_use,
                     mh_err *err)
{
    if (!c || (!buf && size)) return mh_err_set(err, MH_EINVAL, "kv load: a cache and a buffer are required");
    if (n_saved < 0 || n_use < 0 || n_use > n_saved || n_use > c->n_ctx)
        return mh_err_set(err, MH_ERANGE, "kv load: %lld of %lld saved positions asked, the cache fits %lld",
                          (long long)n_use, (long long)n_saved, (long long)c->n_ctx);
    if (size != mh_kv_cache_snapshot_bytes(c, n_saved))
        return mh_err_set(err, MH_EINVAL, "kv load: a snapshot of %lld positions for this cache has %zu "
                          "bytes, got %zu (another model or KV type?)", (long long)n_saved,
                          mh_kv_cache_snapshot_bytes(c, n_saved), size);
    const uint8_t *k = buf, *v = k + layer_bytes(c, n_saved) * (size_t)c->n_layer;
    size_t stride = layer_bytes(c, n_saved), lb = layer_bytes(c, n_use);
    for (int64_t l = 0; l < c->n_layer && lb; l++) {
        memcpy(c->k + layer_off(c, l), k + stride * (size_t)l, lb);
        memcpy(c->v + layer_off(c, l), v + stride * (size_t)l, lb);
    }
    c->n_past = n_use;
    return MH_OK;
}
