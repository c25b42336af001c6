/* tensor_build.c: tensor constructors (full, arange, linspace, eye, from
 * doubles) and the seeded counter-based PRNG. Layer: engine/core.
 * Element i of rand/randn depends only on (seed, i), so results do not
 * change with the thread count or the chunking of the work. */
#include <math.h>
#include "tensor_internal.h"
#include "mh/threadpool.h"

mh_tensor *mh_tensor_full(mh_dtype dt, int ndim, const int64_t *shape, double v, mh_err *err)
{
    mh_tensor *t = mh__tensor_empty(dt, ndim, shape, err);
    if (!t) return NULL;
    if (mh_tensor_fill_(t, v, err)) {
        mh_tensor_release(t);
        return NULL;
    }
    return t;
}

static bool plain(const char *fn, mh_dtype dt, mh_err *err)
{
    if ((unsigned)dt < MH_DTYPE_COUNT && !mh_dtype_info(dt)->is_quant) return true;
    mh_err_set(err, MH_ETYPE, "%s: dtype %s not supported (use a plain dtype)", fn,
               (unsigned)dt < MH_DTYPE_COUNT ? mh_dtype_info(dt)->name : "?");
    return false;
}

mh_tensor *mh_tensor_arange(mh_dtype dt, double start, double stop, double step, mh_err *err)
{
    if (!plain("arange", dt, err)) return NULL;
    if (step == 0 || !isfinite(step) || !isfinite(start) || !isfinite(stop)) {
        mh_err_set(err, MH_EINVAL, "arange: bad range start=%g stop=%g step=%g", start, stop, step);
        return NULL;
    }
    double len = ceil((stop - start) / step);
    if (len < 0) len = 0;
    if (len > 1e12) {
        mh_err_set(err, MH_EINVAL, "arange: %g elements is too many", len);
        return NULL;
    }
    int64_t n = (int64_t)len;
    mh_tensor *t = mh__tensor_empty(dt, 1, &n, err);
    if (!t) return NULL;
    char *p = mh_tensor_data(t);
    size_t es = mh__esize(dt);
    for (int64_t i = 0; i < n; i++) mh__store_d(dt, p + i * es, start + (double)i * step);
    return t;
}

mh_tensor *mh_tensor_linspace(mh_dtype dt, double start, double stop, int64_t n, mh_err *err)
{
    if (!plain("linspace", dt, err)) return NULL;
    if (n < 0) {
        mh_err_set(err, MH_EINVAL, "linspace: negative count %lld", (long long)n);
        return NULL;
    }
    mh_tensor *t = mh__tensor_empty(dt, 1, &n, err);
    if (!t) return NULL;
    char *p = mh_tensor_data(t);
    size_t es = mh__esize(dt);
    double step = n > 1 ? (stop - start) / (double)(n - 1) : 0;
    for (int64_t i = 0; i < n; i++)   /* last point exactly stop */
        mh__store_d(dt, p + i * es, i == n - 1 && n > 1 ? stop : start + (double)i * step);
    return t;
}

mh_tensor *mh_tensor_eye(mh_dtype dt, int64_t n, int64_t m, mh_err *err)
{
    if (!plain("eye", dt, err)) return NULL;
    if (m < 0) m = n;
    int64_t shape[2] = {n, m};
    mh_tensor *t = mh_tensor_new(dt, 2, shape, err);
    if (!t) return NULL;
    char *p = mh_tensor_data(t);
    size_t es = mh__esize(dt);
    for (int64_t i = 0; i < n && i < m; i++) mh__store_d(dt, p + (i * m + i) * es, 1.0);
    return t;
}

mh_tensor *mh_tensor_from_doubles(mh_dtype dt, int ndim, const int64_t *shape,
                                  const double *v, int64_t n, mh_err *err)
{
    if (!plain("from_doubles", dt, err)) return NULL;
    mh_tensor *t = mh__tensor_empty(dt, ndim, shape, err);
    if (!t) return NULL;
    if (mh_tensor_numel(t) != n) {
        char b[160];
        mh_err_set(err, MH_ESHAPE, "from_doubles: shape %s needs %lld values, got %lld",
                   mh_shape_str(ndim, shape, b, sizeof b), (long long)mh_tensor_numel(t), (long long)n);
        mh_tensor_release(t);
        return NULL;
    }
    char *p = mh_tensor_data(t);
    size_t es = mh__esize(dt);
    for (int64_t i = 0; i < n; i++) mh__store_d(dt, p + i * es, v[i]);
    return t;
}

/* ===== counter-based PRNG ===== */

static inline uint64_t mix64(uint64_t z)   /* splitmix64 finalizer */
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* 64 random bits for counter c under key k (two rounds: decorrelates seeds
 * that differ in one bit from neighbouring counters) */
static inline uint64_t draw(uint64_t k, uint64_t c)
{
    return mix64(mix64(k + c * 0x9e3779b97f4a7c15ull) ^ k);
}

static inline double unit53(uint64_t r) { return (double)(r >> 11) * 0x1.0p-53; }   /* [0,1) */

typedef struct rng_job {
    mh_tensor *t;
    uint64_t key;
    double a, b;
    bool normal;
} rng_job;

static void rng_range(void *ctx, int64_t begin, int64_t end)
{
    const rng_job *j = ctx;
    char *p = mh_tensor_data(j->t);
    mh_dtype dt = j->t->dtype;
    size_t es = mh__esize(dt);
    for (int64_t i = begin; i < end; i++) {
        double v;
        if (j->normal) {                   /* Box-Muller on counters 2i, 2i+1 */
            double u1 = 1.0 - unit53(draw(j->key, 2 * (uint64_t)i));   /* (0,1] */
            double u2 = unit53(draw(j->key, 2 * (uint64_t)i + 1));
            v = j->a + j->b * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        } else {
            v = j->a + (j->b - j->a) * unit53(draw(j->key, (uint64_t)i));
        }
        if (dt == MH_DTYPE_F32) ((float *)p)[i] = (float)v;
        else mh__store_d(dt, p + i * es, v);
    }
}

static mh_tensor *random_tensor(const char *fn, mh_dtype dt, int ndim, const int64_t *shape,
                                uint64_t seed, double a, double b, bool normal, mh_err *err)
{
    if (!plain(fn, dt, err)) return NULL;
    mh_tensor *t = mh__tensor_empty(dt, ndim, shape, err);
    if (!t) return NULL;
    rng_job j = {t, mix64(seed ^ 0x6a09e667f3bcc908ull), a, b, normal};
    mh_parallel_for(mh_tensor_numel(t), 16384, rng_range, &j);
    return t;
}

mh_tensor *mh_tensor_rand(mh_dtype dt, int ndim, const int64_t *shape, uint64_t seed,
                          double lo, double hi, mh_err *err)
{
    return random_tensor("rand", dt, ndim, shape, seed, lo, hi, false, err);
}

mh_tensor *mh_tensor_randn(mh_dtype dt, int ndim, const int64_t *shape, uint64_t seed,
                           double mean, double std, mh_err *err)
{
    return random_tensor("randn", dt, ndim, shape, seed, mean, std, true, err);
}
