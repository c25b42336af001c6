/* test_tensor.c: tensors against naive loops: geometry, views, copies,
 * broadcasting ops, reductions, matmul, softmax and norms, error paths and
 * RNG determinism across thread counts. Layer: tests (C, engine/core). */
#include <stdint.h>
#include <string.h>
#include "harness.h"
#include "mh/tensor.h"
#include "mh/threadpool.h"

static mh_err err;

static mh_tensor *mk(mh_dtype dt, int nd, const int64_t *shape, uint64_t seed)
{
    return mh_tensor_randn(dt, nd, shape, seed, 0, 1, &err);
}

/* value of t at output index idx (nd dims) under broadcasting */
static double bget(const mh_tensor *t, int nd, const int64_t *idx)
{
    int64_t ti[MH_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) {
        int o = i + nd - t->ndim;
        ti[i] = t->shape[i] == 1 ? 0 : idx[o];
    }
    double v = 0;
    mh_tensor_get(t, ti, &v, NULL);
    return v;
}

static void unravel(int64_t i, int nd, const int64_t *shape, int64_t *idx)
{
    for (int d = nd - 1; d >= 0; d--) { idx[d] = i % shape[d]; i /= shape[d]; }
}

/* ===== life cycle, geometry, access ===== */

static void test_basics(void)
{
    int64_t shape[3] = {2, 3, 4};
    mh_tensor *t = mh_tensor_new(MH_DTYPE_F32, 3, shape, &err);
    CHECK(t && mh_tensor_numel(t) == 24 && mh_tensor_is_contiguous(t));
    CHECK(t->stride[0] == 12 && t->stride[2] == 1 && mh_tensor_nbytes(t) == 96);
    char b[64];
    CHECK(!strcmp(mh_shape_str(3, shape, b, sizeof b), "(2,3,4)"));
    CHECK(!strcmp(mh_shape_str(0, shape, b, sizeof b), "()"));
    int64_t idx[3] = {1, 2, 3};
    double v = -1;
    CHECK(mh_tensor_get(t, idx, &v, &err) == MH_OK && v == 0);
    CHECK(mh_tensor_set(t, idx, 7.5, &err) == MH_OK);
    CHECK(mh_tensor_get_flat(t, 23) == 7.5 && ((float *)mh_tensor_data(t))[23] == 7.5f);
    idx[1] = 3;
    CHECK(mh_tensor_get(t, idx, &v, &err) == MH_ERANGE);
    CHECK_MSG(strstr(err.msg, "index 3") && strstr(err.msg, "dim 1 of size 3"), "%s", err.msg);
    mh_tensor_retain(t);
    mh_tensor_release(t);
    mh_tensor_release(t);
    mh_tensor_release(NULL);
    int64_t bad[2] = {2, -1};
    CHECK(!mh_tensor_new(MH_DTYPE_F32, 2, bad, &err) && err.code == MH_EINVAL);
    CHECK(!mh_tensor_new(MH_DTYPE_F32, 9, shape, &err));
    mh_tensor *s = mh_tensor_full(MH_DTYPE_I64, 0, NULL, 42, &err);
    CHECK(s && s->ndim == 0 && mh_tensor_numel(s) == 1 && mh_tensor_get_flat_i64(s, 0) == 42);
    mh_tensor_release(s);
    int64_t huge[3] = {(int64_t)1 << 40, (int64_t)1 << 40, 1 << 20};   /* overflows a byte count */
    CHECK(!mh_tensor_new(MH_DTYPE_F32, 3, huge, &err) && err.code == MH_ENOMEM);
}

static void test_constructors(void)
{
    mh_tensor *a = mh_tensor_arange(MH_DTYPE_I32, 2, 11, 3, &err);
    CHECK(a && a->shape[0] == 3 && mh_tensor_get_flat(a, 2) == 8);
    mh_tensor_release(a);
    a = mh_tensor_arange(MH_DTYPE_F32, 1, 0, -0.25, &err);
    CHECK(a && a->shape[0] == 4 && mh_tensor_get_flat(a, 3) == 0.25);
    mh_tensor_release(a);
    CHECK(!mh_tensor_arange(MH_DTYPE_F32, 0, 1, 0, &err) && strstr(err.msg, "arange"));
    a = mh_tensor_linspace(MH_DTYPE_F32, 0, 1, 5, &err);
    CHECK(a && mh_tensor_get_flat(a, 1) == 0.25 && mh_tensor_get_flat(a, 4) == 1);
    mh_tensor_release(a);
    a = mh_tensor_eye(MH_DTYPE_F16, 2, 3, &err);
    CHECK(a && a->shape[1] == 3 && mh_tensor_get_flat(a, 0) == 1 && mh_tensor_get_flat(a, 4) == 1 &&
          mh_tensor_get_flat(a, 1) == 0 && mh_tensor_get_flat(a, 5) == 0);
    mh_tensor_release(a);
    int64_t sh[2] = {2, 2};
    double v[4] = {1, 2, 3, 4};
    a = mh_tensor_from_doubles(MH_DTYPE_BF16, 2, sh, v, 4, &err);
    CHECK(a && mh_tensor_get_flat(a, 3) == 4);
    mh_tensor_release(a);
    CHECK(!mh_tensor_from_doubles(MH_DTYPE_F32, 2, sh, v, 3, &err));
    CHECK_MSG(strstr(err.msg, "needs 4 values, got 3"), "%s", err.msg);
    a = mh_tensor_full(MH_DTYPE_U8, 2, sh, 300, &err);   /* saturates */
    CHECK(a && mh_tensor_get_flat(a, 0) == 255);
    mh_tensor_release(a);
}

static void test_rng(void)
{
    int64_t n = 200003;
    mh_threads_set(1);
    mh_tensor *a = mh_tensor_randn(MH_DTYPE_F32, 1, &n, 7, 0, 1, &err);
    mh_tensor *u = mh_tensor_rand(MH_DTYPE_F32, 1, &n, 7, -1, 3, &err);
    mh_threads_set(2);
    mh_tensor *b = mh_tensor_randn(MH_DTYPE_F32, 1, &n, 7, 0, 1, &err);
    mh_tensor *c = mh_tensor_randn(MH_DTYPE_F32, 1, &n, 8, 0, 1, &err);
    CHECK(a && b && c && u);
    CHECK(!memcmp(mh_tensor_data(a), mh_tensor_data(b), (size_t)n * 4));
    CHECK(memcmp(mh_tensor_data(a), mh_tensor_data(c), (size_t)n * 4));
    double s = 0, s2 = 0, us = 0, lo = 1e9, hi = -1e9;
    for (int64_t i = 0; i < n; i++) {
        double x = mh_tensor_get_flat(a, i), y = mh_tensor_get_flat(u, i);
        s += x; s2 += x * x; us += y;
        lo = y < lo ? y : lo; hi = y > hi ? y : hi;
    }
    CHECK_CLOSE(s / n, 0, 0.01, 0);
    CHECK_CLOSE(s2 / n, 1, 0.02, 0);
    CHECK_CLOSE(us / n, 1, 0.02, 0);
    CHECK(lo >= -1 && hi < 3);
    /* a prefix of a larger draw is the smaller draw */
    int64_t m = 10;
    mh_tensor *d = mh_tensor_randn(MH_DTYPE_F32, 1, &m, 7, 0, 1, &err);
    CHECK(!memcmp(mh_tensor_data(a), mh_tensor_data(d), 40));
    mh_tensor_release(a); mh_tensor_release(b); mh_tensor_release(c);
    mh_tensor_release(d); mh_tensor_release(u);
}

/* ===== views ===== */

static void test_views(void)
{
    int64_t sh[3] = {2, 3, 4};
    mh_tensor *a = mh_tensor_arange(MH_DTYPE_F32, 0, 24, 1, &err), *t = mh_tensor_view(a, 3, sh, &err);
    CHECK(t);
    int64_t bad[2] = {2, 3};
    int64_t five = 5;
    mh_tensor *a5 = mh_tensor_arange(MH_DTYPE_F32, 0, 5, 1, &err);
    CHECK(!mh_tensor_view(a5, 2, bad, &err) && err.code == MH_ESHAPE);
    CHECK_MSG(!strcmp(err.msg, "view: shape (2,3) needs 6 elements, got 5"), "%s", err.msg);
    (void)five;
    int64_t inf[2] = {-1, 4};
    mh_tensor *v = mh_tensor_view(t, 2, inf, &err);
    CHECK(v && v->shape[0] == 6 && v->st == a->st);
    mh_tensor_release(v);
    /* transpose: a view with swapped strides, contiguous() copies */
    mh_tensor *tr = mh_tensor_transpose(t, 0, 2, &err);
    CHECK(tr && tr->shape[0] == 4 && tr->shape[2] == 2 && !mh_tensor_is_contiguous(tr));
    mh_tensor *c = mh_tensor_contiguous(tr, &err);
    CHECK(c && mh_tensor_is_contiguous(c) && c->st != a->st);
    for (int64_t i = 0; i < 24; i++) {
        int64_t idx[3];
        unravel(i, 3, c->shape, idx);
        CHECK(mh_tensor_get_flat(c, i) == (double)(idx[2] * 12 + idx[1] * 4 + idx[0]));
    }
    CHECK(!mh_tensor_view(tr, 1, &(int64_t){24}, &err));   /* needs a copy */
    mh_tensor *r = mh_tensor_reshape(tr, 1, &(int64_t){24}, &err);
    CHECK(r && mh_tensor_get_flat(r, 1) == 12);
    mh_tensor_release(r);
    /* narrow, select, squeeze, unsqueeze, expand, permute */
    mh_tensor *n = mh_tensor_narrow(t, 2, 1, 2, &err);
    CHECK(n && n->shape[2] == 2 && mh_tensor_get_flat(n, 0) == 1 && mh_tensor_get_flat(n, 2) == 5);
    CHECK(!mh_tensor_narrow(t, 2, 3, 2, &err));
    CHECK_MSG(!strcmp(err.msg, "narrow: start 3 + length 2 exceeds dim 2 of size 4"), "%s", err.msg);
    mh_tensor *s = mh_tensor_select(t, 1, -1, &err);
    CHECK(s && s->ndim == 2 && mh_tensor_get_flat(s, 0) == 8 && mh_tensor_get_flat(s, 4) == 20);
    CHECK(!mh_tensor_select(t, 0, 2, &err) && strstr(err.msg, "index 2") && strstr(err.msg, "size 2"));
    mh_tensor *u = mh_tensor_unsqueeze(s, 1, &err);
    CHECK(u && u->ndim == 3 && u->shape[1] == 1);
    mh_tensor *q = mh_tensor_squeeze(u, MH_ALL, &err);
    CHECK(q && q->ndim == 2);
    int64_t ex[3] = {3, -1, 4};
    mh_tensor *e = mh_tensor_expand(u, 3, ex, &err);
    CHECK(!e && strstr(err.msg, "expand"));
    int64_t ex2[4] = {5, 2, 3, 4};
    mh_tensor *u2 = mh_tensor_unsqueeze(t, 0, &err);
    e = mh_tensor_expand(u2, 4, ex2, &err);
    CHECK(e && e->stride[0] == 0 && mh_tensor_get_flat(e, 24 * 4 + 5) == 5);
    int perm[3] = {2, 0, 1};
    mh_tensor *p = mh_tensor_permute(t, perm, 3, &err);
    CHECK(p && p->shape[0] == 4 && p->shape[1] == 2 && p->shape[2] == 3);
    int64_t pi[3] = {3, 1, 2};
    double pv;
    CHECK(mh_tensor_get(p, pi, &pv, &err) == 0 && pv == 12 + 8 + 3);
    int bperm[3] = {0, 0, 1};
    CHECK(!mh_tensor_permute(t, bperm, 3, &err) && strstr(err.msg, "repeated"));
    mh_tensor *rows = mh_tensor_narrow(t, 0, 1, 1, &err);
    CHECK(rows && rows->offset == 48);
    mh_tensor_release(rows);
    mh_tensor_release(a); mh_tensor_release(a5); mh_tensor_release(t); mh_tensor_release(tr);
    mh_tensor_release(c); mh_tensor_release(n); mh_tensor_release(s); mh_tensor_release(u);
    mh_tensor_release(q); mh_tensor_release(e); mh_tensor_release(u2); mh_tensor_release(p);
}

static void test_from_storage_quant(void)
{
    mh_storage *st = mh_storage_new(34 * 8, &err);
    int64_t sh[2] = {4, 64};
    mh_tensor *q = mh_tensor_from_storage(st, 0, MH_DTYPE_Q8_0, 2, sh, NULL, &err);
    CHECK(q && q->stride[0] == 64 && mh_tensor_nbytes(q) == 272);
    mh_tensor *r = mh_tensor_narrow(q, 0, 2, 2, &err);
    CHECK(r && r->offset == 2 * 68 && mh_tensor_nbytes(r) == 136);
    mh_tensor *s = mh_tensor_select(q, 0, 3, &err);
    CHECK(s && s->offset == 3 * 68 && s->ndim == 1);
    CHECK(!mh_tensor_transpose(q, 0, 1, &err) && err.code == MH_ETYPE);
    int64_t sh2[2] = {5, 64};
    CHECK(!mh_tensor_from_storage(st, 0, MH_DTYPE_Q8_0, 2, sh2, NULL, &err) && err.code == MH_ERANGE);
    int64_t sh3[2] = {4, 60};
    CHECK(!mh_tensor_from_storage(st, 0, MH_DTYPE_Q8_0, 2, sh3, NULL, &err));
    mh_tensor *b = mh_tensor_binary(MH_OP_ADD, q, q, NULL, &err);
    CHECK(!b && err.code == MH_ETYPE && strstr(err.msg, "add") && strstr(err.msg, "q8_0"));
    mh_tensor *c = mh_tensor_clone(r, &err);   /* row copies work on blocks */
    CHECK(c && c->dtype == MH_DTYPE_Q8_0);
    mh_tensor_release(c); mh_tensor_release(q); mh_tensor_release(r); mh_tensor_release(s);
    int64_t big[1] = {100};
    CHECK(!mh_tensor_from_storage(st, 300, MH_DTYPE_F32, 1, big, NULL, &err) && err.code == MH_ERANGE);
    mh_storage_release(st);
}

static void test_quant_roundtrip(void)
{
    int64_t sh[2] = {3, 64};
    mh_tensor *x = mk(MH_DTYPE_F32, 2, sh, 5);
    mh_tensor *q = mh_tensor_to(x, MH_DTYPE_Q8_0, &err);
    CHECK_MSG(q, "%s", err.msg);
    mh_tensor *y = mh_tensor_to(q, MH_DTYPE_F32, &err);
    CHECK(y && y->dtype == MH_DTYPE_F32);
    for (int64_t i = 0; i < 192; i++) CHECK_CLOSE(mh_tensor_get_flat(y, i), mh_tensor_get_flat(x, i), 0.03, 0.01);
    mh_tensor_release(x); mh_tensor_release(q); mh_tensor_release(y);
}

/* ===== copies ===== */

static void test_copies(void)
{
    int64_t sh[2] = {3, 5};
    mh_tensor *a = mk(MH_DTYPE_F32, 2, sh, 1);
    mh_tensor *h = mh_tensor_to(a, MH_DTYPE_F16, &err), *bf = mh_tensor_to(a, MH_DTYPE_BF16, &err);
    mh_tensor *i = mh_tensor_to(a, MH_DTYPE_I32, &err);
    CHECK(h && bf && i);
    for (int64_t k = 0; k < 15; k++) {
        float f = (float)mh_tensor_get_flat(a, k);
        CHECK(mh_tensor_get_flat(h, k) == mh_f16_to_f32(mh_f32_to_f16(f)));
        CHECK(mh_tensor_get_flat(bf, k) == mh_bf16_to_f32(mh_f32_to_bf16(f)));
        CHECK(mh_tensor_get_flat(i, k) == (double)(int)f);
    }
    /* broadcasting copy_ into a transposed destination */
    int64_t sd[2] = {5, 3};
    mh_tensor *d = mh_tensor_new(MH_DTYPE_F16, 2, sd, &err), *dt = mh_tensor_transpose(d, 0, 1, &err);
    mh_tensor *row = mh_tensor_narrow(a, 0, 1, 1, &err);
    CHECK(mh_tensor_copy_(dt, row, &err) == MH_OK);
    for (int64_t r = 0; r < 5; r++)
        for (int64_t c = 0; c < 3; c++)
            CHECK(mh_tensor_get_flat(d, r * 3 + c) == mh_f16_to_f32(mh_f32_to_f16((float)mh_tensor_get_flat(a, 5 + r))));
    CHECK(mh_tensor_copy_(row, a, &err) == MH_ESHAPE && strstr(err.msg, "copy_"));
    CHECK(mh_tensor_fill_(dt, 2.5, &err) == MH_OK && mh_tensor_get_flat(d, 14) == 2.5);
    mh_tensor *cl = mh_tensor_clone(a, &err);
    CHECK(cl && cl->st != a->st && !memcmp(mh_tensor_data(cl), mh_tensor_data(a), 60));
    /* cat and stack */
    mh_tensor *parts[3] = {a, cl, a};
    mh_tensor *ct = mh_tensor_cat(parts, 3, 1, &err);
    CHECK(ct && ct->shape[0] == 3 && ct->shape[1] == 15 && mh_tensor_get_flat(ct, 15 + 7) == mh_tensor_get_flat(a, 5 + 2));
    mh_tensor *sk = mh_tensor_stack(parts, 3, 0, &err);
    CHECK(sk && sk->ndim == 3 && sk->shape[0] == 3 && mh_tensor_get_flat(sk, 30 + 4) == mh_tensor_get_flat(a, 4));
    mh_tensor *mixed[2] = {a, i};
    mh_tensor *cm = mh_tensor_cat(mixed, 2, 0, &err);
    CHECK(cm && cm->dtype == MH_DTYPE_F32 && cm->shape[0] == 6);
    mh_tensor *badp[2] = {a, d};
    CHECK(!mh_tensor_cat(badp, 2, 0, &err) && strstr(err.msg, "cat: tensor 1 has shape (5,3)"));
    mh_tensor_release(cm);
    mh_tensor_release(a); mh_tensor_release(h); mh_tensor_release(bf); mh_tensor_release(i);
    mh_tensor_release(d); mh_tensor_release(dt); mh_tensor_release(row); mh_tensor_release(cl);
    mh_tensor_release(ct); mh_tensor_release(sk);
}

/* ===== elementwise ===== */

static double ref_bin(mh_binop op, double a, double b)
{
    switch (op) {
    case MH_OP_ADD: return (float)a + (float)b;
    case MH_OP_SUB: return (float)a - (float)b;
    case MH_OP_MUL: return (float)a * (float)b;
    case MH_OP_DIV: return (float)a / (float)b;
    case MH_OP_POW: return powf((float)a, (float)b);
    case MH_OP_MAX: return a > b ? a : b;
    case MH_OP_MIN: return a < b ? a : b;
    case MH_OP_EQ: return a == b;
    case MH_OP_NE: return a != b;
    case MH_OP_LT: return a < b;
    case MH_OP_LE: return a <= b;
    case MH_OP_GT: return a > b;
    default: return a >= b;
    }
}

static double round_to(mh_dtype dt, double v)
{
    if (dt == MH_DTYPE_F16) return mh_f16_to_f32(mh_f32_to_f16((float)v));
    if (dt == MH_DTYPE_BF16) return mh_bf16_to_f32(mh_f32_to_bf16((float)v));
    return (float)v;
}

static void check_binary(mh_binop op, const mh_tensor *a, const mh_tensor *b)
{
    mh_tensor *r = mh_tensor_binary(op, a, b, NULL, &err);
    CHECK_MSG(r, "%s", err.msg);
    if (op >= MH_OP_EQ) CHECK(r->dtype == MH_DTYPE_U8);
    int64_t idx[MH_MAX_DIMS];
    for (int64_t i = 0; i < mh_tensor_numel(r); i++) {
        unravel(i, r->ndim, r->shape, idx);
        double want = ref_bin(op, bget(a, r->ndim, idx), bget(b, r->ndim, idx));
        if (op < MH_OP_EQ) want = round_to(r->dtype, want);
        double got = mh_tensor_get_flat(r, i);
        CHECK_MSG(got == want || (isnan(got) && isnan(want)), "op %d i %lld got %g want %g", op, (long long)i, got, want);
    }
    mh_tensor_release(r);
}

static void test_binary_broadcast(void)
{
    int64_t sa[3] = {3, 1, 5}, sb[2] = {4, 1}, sc[3] = {3, 4, 5};
    mh_dtype dts[3] = {MH_DTYPE_F32, MH_DTYPE_F16, MH_DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        mh_tensor *a = mk(dts[d], 3, sa, 11), *b = mk(dts[d], 2, sb, 12), *c = mk(dts[d], 3, sc, 13);
        mh_tensor *ct = mh_tensor_transpose(c, 0, 2, &err), *c2 = mh_tensor_transpose(ct, 0, 2, &err);
        for (int op = MH_OP_ADD; op <= MH_OP_GE; op++) {
            if (op == MH_OP_POW) continue;
            check_binary(op, a, b);
            if (test_case_failed) return;
            check_binary(op, c, c2);   /* same shape, one strided */
            check_binary(op, c, c);    /* flat fast path */
            if (test_case_failed) return;
        }
        mh_tensor_release(a); mh_tensor_release(b); mh_tensor_release(c);
        mh_tensor_release(ct); mh_tensor_release(c2);
    }
    /* large contiguous f32: kernel path with the pool */
    int64_t n = 100001;
    mh_tensor *x = mk(MH_DTYPE_F32, 1, &n, 1), *y = mk(MH_DTYPE_F32, 1, &n, 2);
    check_binary(MH_OP_MUL, x, y);
    mh_tensor *out = mh_tensor_binary(MH_OP_ADD, x, y, x, &err);   /* in place */
    CHECK(out == x);
    mh_tensor_release(out);
    mh_tensor *y7 = mh_tensor_narrow(y, 0, 0, 7, &err);
    CHECK(!mh_tensor_binary(MH_OP_ADD, x, y7, NULL, &err));
    mh_tensor_release(y7);
    CHECK_MSG(strstr(err.msg, "add: shapes (100001) and (7) do not broadcast"), "%s", err.msg);
    mh_tensor_release(x); mh_tensor_release(y);
}

static void test_binary_types(void)
{
    int64_t n = 4;
    double av[4] = {7, -7, 5, -9e15}, bv[4] = {2, 2, 0, 3};
    mh_tensor *a = mh_tensor_from_doubles(MH_DTYPE_I64, 1, &n, av, 4, &err);
    mh_tensor *b = mh_tensor_from_doubles(MH_DTYPE_I32, 1, &n, bv, 4, &err);
    mh_tensor *d = mh_tensor_binary(MH_OP_DIV, a, b, NULL, &err);
    CHECK(d && d->dtype == MH_DTYPE_I64);
    CHECK(mh_tensor_get_flat_i64(d, 0) == 3 && mh_tensor_get_flat_i64(d, 1) == -3 && mh_tensor_get_flat_i64(d, 2) == 0);
    CHECK(mh_tensor_get_flat_i64(d, 3) == -3000000000000000);
    mh_tensor *p = mh_tensor_binary(MH_OP_POW, b, b, NULL, &err);
    CHECK(p && p->dtype == MH_DTYPE_I32 && mh_tensor_get_flat(p, 3) == 27 && mh_tensor_get_flat(p, 2) == 1);
    mh_tensor *f = mh_tensor_from_doubles(MH_DTYPE_F16, 1, &n, bv, 4, &err);
    mh_tensor *m = mh_tensor_binary(MH_OP_MUL, a, f, NULL, &err);
    CHECK(m && m->dtype == MH_DTYPE_F16 && mh_tensor_get_flat(m, 0) == 14);
    mh_tensor *hb = mh_tensor_to(f, MH_DTYPE_BF16, &err);
    mh_tensor *s = mh_tensor_binary(MH_OP_ADD, f, hb, NULL, &err);
    CHECK(s && s->dtype == MH_DTYPE_F32 && mh_tensor_get_flat(s, 3) == 6);
    mh_tensor *w = mh_tensor_where(d, a, f, &err);   /* d nonzero except index 2 */
    CHECK(w && w->dtype == MH_DTYPE_F16 && mh_tensor_get_flat(w, 0) == 7 && mh_tensor_get_flat(w, 2) == 0);
    double cv[4] = {0.5, 0, -1, 0};
    mh_tensor *cond = mh_tensor_from_doubles(MH_DTYPE_F32, 1, &n, cv, 4, &err);
    mh_tensor *w2 = mh_tensor_where(cond, a, b, &err);
    CHECK(w2 && w2->dtype == MH_DTYPE_I64 && mh_tensor_get_flat_i64(w2, 0) == 7 &&
          mh_tensor_get_flat_i64(w2, 1) == 2 && mh_tensor_get_flat_i64(w2, 2) == 5);
    int64_t sh[2] = {2, 1};
    mh_tensor *col = mh_tensor_full(MH_DTYPE_U8, 2, sh, 1, &err);
    mh_tensor *w3 = mh_tensor_where(col, a, b, &err);
    CHECK(w3 && w3->ndim == 2 && w3->shape[0] == 2 && w3->shape[1] == 4);
    mh_tensor *rows[] = {a, b, d, p, f, m, hb, s, w, cond, w2, col, w3};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) mh_tensor_release(rows[i]);
}

static void test_unary(void)
{
    int64_t sh[2] = {7, 33};
    mh_tensor *a = mk(MH_DTYPE_F32, 2, sh, 21), *at = mh_tensor_transpose(a, 0, 1, &err);
    struct { mh_unop op; double p0, p1; } cases[] = {
        {MH_UOP_NEG, 0, 0}, {MH_UOP_ABS, 0, 0}, {MH_UOP_EXP, 0, 0}, {MH_UOP_TANH, 0, 0},
        {MH_UOP_SIGMOID, 0, 0}, {MH_UOP_SILU, 0, 0}, {MH_UOP_GELU, 0, 0}, {MH_UOP_POW, 2, 0},
        {MH_UOP_CLAMP, -0.5, 0.5}, {MH_UOP_ADD_S, 3, 0}, {MH_UOP_RSUB_S, 1, 0}, {MH_UOP_MUL_S, -2, 0},
        {MH_UOP_DIV_S, 4, 0}, {MH_UOP_RDIV_S, 1, 0}, {MH_UOP_SQRT, 0, 0}, {MH_UOP_LOG, 0, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int v = 0; v < 2; v++) {
            const mh_tensor *src = v ? at : a;
            mh_tensor *r = mh_tensor_unary(cases[c].op, src, cases[c].p0, cases[c].p1, NULL, &err);
            CHECK(r && r->ndim == 2 && r->shape[0] == src->shape[0]);
            for (int64_t i = 0; i < mh_tensor_numel(r); i++) {
                int64_t idx[2];
                unravel(i, 2, r->shape, idx);
                double x = bget(src, 2, idx), p0 = cases[c].p0, want;
                switch (cases[c].op) {
                case MH_UOP_NEG: want = -x; break;
                case MH_UOP_ABS: want = fabs(x); break;
                case MH_UOP_EXP: want = exp(x); break;
                case MH_UOP_TANH: want = tanh(x); break;
                case MH_UOP_SIGMOID: want = 1 / (1 + exp(-x)); break;
                case MH_UOP_SILU: want = x / (1 + exp(-x)); break;
                case MH_UOP_GELU: want = 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); break;
                case MH_UOP_POW: want = x * x; break;
                case MH_UOP_CLAMP: want = x < -0.5 ? -0.5 : x > 0.5 ? 0.5 : x; break;
                case MH_UOP_ADD_S: want = x + p0; break;
                case MH_UOP_RSUB_S: want = p0 - x; break;
                case MH_UOP_MUL_S: want = x * p0; break;
                case MH_UOP_DIV_S: want = x / p0; break;
                case MH_UOP_RDIV_S: want = p0 / x; break;
                case MH_UOP_SQRT: want = sqrt(x); break;
                default: want = log(x); break;
                }
                double got = mh_tensor_get_flat(r, i);
                if (isnan(want)) CHECK(isnan(got));
                else CHECK_CLOSE(got, want, 1e-6, 1e-5);
            }
            mh_tensor_release(r);
        }
    }
    int64_t n = 3;
    double iv[3] = {-4, 0, 9};
    mh_tensor *i = mh_tensor_from_doubles(MH_DTYPE_I32, 1, &n, iv, 3, &err);
    mh_tensor *ia = mh_tensor_unary(MH_UOP_ABS, i, 0, 0, NULL, &err);
    CHECK(ia && ia->dtype == MH_DTYPE_I32 && mh_tensor_get_flat(ia, 0) == 4);
    mh_tensor *is = mh_tensor_unary(MH_UOP_SQRT, i, 0, 0, NULL, &err);
    CHECK(is && is->dtype == MH_DTYPE_F32 && mh_tensor_get_flat(is, 2) == 3);
    mh_tensor *inp = mh_tensor_unary(MH_UOP_MUL_S, a, 2, 0, a, &err);   /* in place */
    CHECK(inp == a);
    int64_t sh2[2] = {7, 2};
    mh_tensor *wrong = mh_tensor_new(MH_DTYPE_F32, 2, sh2, &err);
    CHECK(!mh_tensor_unary(MH_UOP_EXP, a, 0, 0, wrong, &err) && strstr(err.msg, "out has shape (7,2)"));
    mh_tensor_release(wrong); mh_tensor_release(inp);
    mh_tensor_release(a); mh_tensor_release(at); mh_tensor_release(i); mh_tensor_release(ia); mh_tensor_release(is);
}

/* ===== reductions ===== */

static void naive_reduce(mh_redop op, const mh_tensor *a, int d, int64_t oi, double p, double *val, int64_t *arg)
{
    /* output index oi over a's shape without dim d */
    int64_t oshape[MH_MAX_DIMS], oidx[MH_MAX_DIMS], idx[MH_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < a->ndim; i++) if (i != d) oshape[k++] = a->shape[i];
    unravel(oi, k, oshape, oidx);
    double s = op == MH_RED_PROD ? 1 : 0, best = 0, mean = 0;
    int64_t n = a->shape[d], bi = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int64_t j = 0; j < n; j++) {
            for (int i = 0, q = 0; i < a->ndim; i++) idx[i] = i == d ? j : oidx[q++];
            double x;
            mh_tensor_get(a, idx, &x, NULL);
            if (pass == 1) { if (op == MH_RED_VAR) s += (x - mean) * (x - mean); continue; }
            if (op == MH_RED_SUM || op == MH_RED_MEAN) s += x;
            if (op == MH_RED_PROD) s *= x;
            if (op == MH_RED_VAR) mean += x / (double)n;
            if (op == MH_RED_NORM) s += p == 1 ? fabs(x) : x * x;
            if ((op == MH_RED_MAX || op == MH_RED_ARGMAX) && (j == 0 || x > best)) { best = x; bi = j; }
            if ((op == MH_RED_MIN || op == MH_RED_ARGMIN) && (j == 0 || x < best)) { best = x; bi = j; }
        }
    switch (op) {
    case MH_RED_MEAN: *val = s / (double)n; break;
    case MH_RED_VAR: *val = s / ((double)n - p); break;
    case MH_RED_NORM: *val = p == 1 ? s : sqrt(s); break;
    case MH_RED_MAX: case MH_RED_MIN: *val = best; break;
    case MH_RED_ARGMAX: case MH_RED_ARGMIN: *val = (double)bi; break;
    default: *val = s;
    }
    *arg = bi;
}

static void test_reduce(void)
{
    int64_t sh[3] = {4, 5, 6};
    mh_tensor *base = mk(MH_DTYPE_F32, 3, sh, 31), *tr = mh_tensor_transpose(base, 0, 2, &err);
    mh_tensor *srcs[2] = {base, tr};
    for (int s = 0; s < 2; s++)
        for (int op = MH_RED_SUM; op <= MH_RED_PROD; op++)
            for (int d = 0; d < 3; d++)
                for (int keep = 0; keep < 2; keep++) {
                    double p = op == MH_RED_VAR ? 1 : op == MH_RED_NORM ? (d == 1 ? 1 : 2) : 0;
                    mh_tensor *idx = NULL;
                    mh_tensor *r = mh_tensor_reduce(op, srcs[s], d, keep, p, &idx, &err);
                    CHECK_MSG(r, "%s", err.msg);
                    CHECK(r->ndim == (keep ? 3 : 2) && (!keep || r->shape[d] == 1));
                    CHECK((idx != NULL) == (op == MH_RED_MAX || op == MH_RED_MIN));
                    if (op == MH_RED_ARGMAX || op == MH_RED_ARGMIN) CHECK(r->dtype == MH_DTYPE_I64);
                    for (int64_t i = 0; i < mh_tensor_numel(r); i++) {
                        double want;
                        int64_t arg;
                        naive_reduce(op, srcs[s], d, i, p, &want, &arg);
                        CHECK_MSG(fabs(mh_tensor_get_flat(r, i) - want) <= 1e-5 + 1e-5 * fabs(want),
                                  "op %d dim %d: %g vs %g", op, d, mh_tensor_get_flat(r, i), want);
                        if (idx) CHECK(mh_tensor_get_flat_i64(idx, i) == arg);
                    }
                    mh_tensor_release(r);
                    mh_tensor_release(idx);
                }
    /* all dims, and big contiguous sums independent of the thread count */
    mh_tensor *all = mh_tensor_reduce(MH_RED_SUM, tr, MH_ALL, false, 0, NULL, &err);
    double s = 0;
    for (int64_t i = 0; i < 120; i++) s += mh_tensor_get_flat(base, i);
    CHECK(all && all->ndim == 0);
    CHECK_CLOSE(mh_tensor_get_flat(all, 0), s, 1e-5, 1e-5);
    mh_tensor *am = mh_tensor_reduce(MH_RED_ARGMAX, base, MH_ALL, false, 0, NULL, &err);
    mh_tensor *mx = mh_tensor_reduce(MH_RED_MAX, base, MH_ALL, false, 0, NULL, &err);
    CHECK(am && mx && mh_tensor_get_flat(base, mh_tensor_get_flat_i64(am, 0)) == mh_tensor_get_flat(mx, 0));
    mh_tensor_release(mx);
    int64_t n = 1000003;
    mh_tensor *big = mh_tensor_rand(MH_DTYPE_F32, 1, &n, 3, 0, 1, &err);
    mh_threads_set(1);
    mh_tensor *s1 = mh_tensor_reduce(MH_RED_SUM, big, MH_ALL, false, 0, NULL, &err);
    mh_threads_set(2);
    mh_tensor *s2 = mh_tensor_reduce(MH_RED_SUM, big, MH_ALL, false, 0, NULL, &err);
    CHECK(s1 && s2 && mh_tensor_get_flat(s1, 0) == mh_tensor_get_flat(s2, 0));
    CHECK_CLOSE(mh_tensor_get_flat(s1, 0), 500000, 2000, 0);
    /* ints: sum in i64; errors */
    int64_t four = 4;
    double iv[4] = {3, -1, 4, 1};
    mh_tensor *ii = mh_tensor_from_doubles(MH_DTYPE_I32, 1, &four, iv, 4, &err);
    mh_tensor *is = mh_tensor_reduce(MH_RED_SUM, ii, 0, false, 0, NULL, &err);
    mh_tensor *im = mh_tensor_reduce(MH_RED_MIN, ii, 0, false, 0, NULL, &err);
    mh_tensor *mean = mh_tensor_reduce(MH_RED_MEAN, ii, 0, false, 0, NULL, &err);
    CHECK(is && is->dtype == MH_DTYPE_I64 && mh_tensor_get_flat(is, 0) == 7);
    CHECK(im && im->dtype == MH_DTYPE_I32 && mh_tensor_get_flat(im, 0) == -1);
    CHECK(mean && mean->dtype == MH_DTYPE_F32 && mh_tensor_get_flat(mean, 0) == 1.75);
    CHECK(!mh_tensor_reduce(MH_RED_SUM, base, 3, false, 0, NULL, &err) && strstr(err.msg, "sum: dim 3"));
    int64_t z[2] = {0, 3};
    mh_tensor *empty = mh_tensor_new(MH_DTYPE_F32, 2, z, &err);
    mh_tensor *es = mh_tensor_reduce(MH_RED_SUM, empty, 0, false, 0, NULL, &err);
    CHECK(es && es->shape[0] == 3 && mh_tensor_get_flat(es, 1) == 0);
    CHECK(!mh_tensor_reduce(MH_RED_MAX, empty, 0, false, 0, NULL, &err) && strstr(err.msg, "max: cannot reduce an empty dim"));
    mh_tensor *rs[] = {base, tr, all, am, big, s1, s2, ii, is, im, mean, empty, es};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) mh_tensor_release(rs[i]);
}

/* ===== matmul, softmax, norms ===== */

static void check_matmul(const mh_tensor *a, const mh_tensor *b, double tol)
{
    mh_tensor *r = mh_tensor_matmul(a, b, &err);
    CHECK_MSG(r, "%s", err.msg);
    int a1 = a->ndim == 1, b1 = b->ndim == 1;
    int64_t k = a->shape[a->ndim - 1];
    int64_t idx[MH_MAX_DIMS], ia[MH_MAX_DIMS], ib[MH_MAX_DIMS];
    for (int64_t i = 0; i < mh_tensor_numel(r); i++) {
        unravel(i, r->ndim, r->shape, idx);
        int nbat = r->ndim - (a1 ? 0 : 1) - (b1 ? 0 : 1);
        int64_t row = a1 ? 0 : idx[nbat], col = b1 ? 0 : idx[r->ndim - 1];
        double s = 0;
        for (int64_t j = 0; j < k; j++) {
            for (int d = 0; d < a->ndim - 2; d++) {
                int o = nbat - (a->ndim - 2) + d;
                ia[d] = a->shape[d] == 1 ? 0 : idx[o];
            }
            for (int d = 0; d < b->ndim - 2; d++) {
                int o = nbat - (b->ndim - 2) + d;
                ib[d] = b->shape[d] == 1 ? 0 : idx[o];
            }
            if (a1) ia[0] = j; else { ia[a->ndim - 2] = row; ia[a->ndim - 1] = j; }
            if (b1) ib[0] = j; else { ib[b->ndim - 2] = j; ib[b->ndim - 1] = col; }
            double x, y;
            mh_tensor_get(a, ia, &x, NULL);
            mh_tensor_get(b, ib, &y, NULL);
            s += x * y;
        }
        CHECK_MSG(fabs(mh_tensor_get_flat(r, i) - s) <= tol * (1 + fabs(s)), "i=%lld %g vs %g",
                  (long long)i, mh_tensor_get_flat(r, i), s);
    }
    mh_tensor_release(r);
}

static void test_matmul(void)
{
    int64_t s23[2] = {2, 3}, s37[2] = {3, 7}, s73[2] = {7, 3}, s3[1] = {3}, s7[1] = {7};
    int64_t s423[3] = {4, 2, 3}, s1437[4] = {1, 1, 3, 7}, s2437[3] = {4, 3, 7};
    mh_tensor *a = mk(MH_DTYPE_F32, 2, s23, 1), *b = mk(MH_DTYPE_F32, 2, s37, 2), *bt0 = mk(MH_DTYPE_F32, 2, s73, 3);
    mh_tensor *bt = mh_tensor_transpose(bt0, 0, 1, &err);   /* (3,7) strides (1,3) */
    mh_tensor *v3 = mk(MH_DTYPE_F32, 1, s3, 4), *v7 = mk(MH_DTYPE_F32, 1, s7, 5);
    mh_tensor *a3 = mk(MH_DTYPE_F32, 3, s423, 6), *b4 = mk(MH_DTYPE_F32, 4, s1437, 7), *b3 = mk(MH_DTYPE_F32, 3, s2437, 8);
    check_matmul(a, b, 1e-5);
    check_matmul(a, bt, 1e-5);
    mh_tensor *at = mh_tensor_transpose(b, 0, 1, &err);    /* (7,3) transposed */
    check_matmul(at, b, 1e-5);     /* both layouts, one transposed */
    check_matmul(at, bt, 1e-5);
    check_matmul(v3, b, 1e-5);
    check_matmul(a, v3, 1e-5);
    check_matmul(v3, v3, 1e-5);
    check_matmul(a3, b, 1e-5);     /* folded batch */
    check_matmul(a3, bt, 1e-5);
    check_matmul(a3, b4, 1e-5);    /* broadcast batch: (4,2,3) x (1,1,3,7) */
    check_matmul(a3, b3, 1e-5);
    mh_tensor *sl = mh_tensor_narrow(a3, 2, 0, 2, &err);  /* (4,2,2): rows not contiguous */
    CHECK(!mh_tensor_matmul(sl, b, &err));
    CHECK_MSG(!strcmp(err.msg, "matmul: shapes (4,2,2) and (3,7) do not fit: 2 != 3"), "%s", err.msg);
    (void)v7;
    int64_t s45[2] = {4, 5};
    mh_tensor *c = mh_tensor_new(MH_DTYPE_F32, 2, s45, &err);
    CHECK(!mh_tensor_matmul(a, c, &err));
    CHECK_MSG(!strcmp(err.msg, "matmul: shapes (2,3) and (4,5) do not fit: 3 != 4"), "%s", err.msg);
    mh_tensor *h = mh_tensor_to(a, MH_DTYPE_F16, &err), *hb = mh_tensor_to(b, MH_DTYPE_F16, &err);
    mh_tensor *hr = mh_tensor_matmul(h, hb, &err);
    CHECK(hr && hr->dtype == MH_DTYPE_F16);
    check_matmul(h, hb, 1e-2);
    mh_tensor *ints = mh_tensor_to(a, MH_DTYPE_I32, &err);
    CHECK(!mh_tensor_matmul(ints, b, &err) && err.code == MH_ETYPE && strstr(err.msg, "matmul"));
    mh_tensor *rs[] = {a, b, bt0, bt, v3, v7, a3, b4, b3, at, sl, c, h, hb, hr, ints};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) mh_tensor_release(rs[i]);
}

static void test_softmax(void)
{
    int64_t sh[3] = {3, 4, 37};
    mh_tensor *a = mk(MH_DTYPE_F32, 3, sh, 41);
    for (int lg = 0; lg < 2; lg++)
        for (int d = -1; d < 3; d++) {
            int dd = d < 0 ? 2 : d;
            mh_tensor *r = mh_tensor_softmax(a, d, lg, &err);
            CHECK(r);
            for (int64_t i = 0; i < mh_tensor_numel(r); i++) {
                int64_t idx[3], j[3];
                unravel(i, 3, sh, idx);
                memcpy(j, idx, sizeof j);
                double m = -1e30, s = 0, x, y;
                for (j[dd] = 0; j[dd] < sh[dd]; j[dd]++) { mh_tensor_get(a, j, &y, NULL); m = y > m ? y : m; }
                for (j[dd] = 0; j[dd] < sh[dd]; j[dd]++) { mh_tensor_get(a, j, &y, NULL); s += exp(y - m); }
                mh_tensor_get(a, idx, &x, NULL);
                double want = lg ? x - m - log(s) : exp(x - m) / s;
                CHECK_CLOSE(mh_tensor_get_flat(r, i), want, 1e-6, 1e-5);
            }
            mh_tensor_release(r);
        }
    mh_tensor *h = mh_tensor_to(a, MH_DTYPE_BF16, &err), *hr = mh_tensor_softmax(h, 1, false, &err);
    CHECK(hr && hr->dtype == MH_DTYPE_BF16);
    CHECK(!mh_tensor_softmax(a, 3, false, &err) && strstr(err.msg, "softmax: dim 3"));
    mh_tensor_release(a); mh_tensor_release(h); mh_tensor_release(hr);
}

static void test_norms(void)
{
    int64_t sh[2] = {5, 67}, sw[1] = {67};
    mh_tensor *x = mk(MH_DTYPE_F32, 2, sh, 51), *w = mk(MH_DTYPE_F32, 1, sw, 52), *b = mk(MH_DTYPE_F32, 1, sw, 53);
    mh_tensor *xt0 = mh_tensor_contiguous(x, &err);
    mh_tensor *r = mh_tensor_rms_norm(x, w, 1e-5, &err), *r0 = mh_tensor_rms_norm(x, NULL, 1e-5, &err);
    mh_tensor *l = mh_tensor_layer_norm(x, w, b, 1e-5, &err);
    CHECK(r && r0 && l);
    for (int64_t i = 0; i < 5; i++) {
        double ss = 0, mean = 0, var = 0;
        for (int64_t j = 0; j < 67; j++) { double v = mh_tensor_get_flat(x, i * 67 + j); ss += v * v; mean += v / 67; }
        for (int64_t j = 0; j < 67; j++) { double v = mh_tensor_get_flat(x, i * 67 + j) - mean; var += v * v / 67; }
        for (int64_t j = 0; j < 67; j++) {
            double v = mh_tensor_get_flat(x, i * 67 + j), wj = mh_tensor_get_flat(w, j), bj = mh_tensor_get_flat(b, j);
            CHECK_CLOSE(mh_tensor_get_flat(r, i * 67 + j), v / sqrt(ss / 67 + 1e-5) * wj, 1e-5, 1e-5);
            CHECK_CLOSE(mh_tensor_get_flat(r0, i * 67 + j), v / sqrt(ss / 67 + 1e-5), 1e-5, 1e-5);
            CHECK_CLOSE(mh_tensor_get_flat(l, i * 67 + j), (v - mean) / sqrt(var + 1e-5) * wj + bj, 1e-5, 1e-5);
        }
    }
    mh_tensor *bad = mh_tensor_narrow(w, 0, 0, 5, &err);
    CHECK(!mh_tensor_rms_norm(x, bad, 1e-5, &err));
    CHECK_MSG(strstr(err.msg, "rms_norm: weight has shape (5), needs (67)"), "%s", err.msg);
    mh_tensor *rs[] = {x, w, b, xt0, r, r0, l, bad};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) mh_tensor_release(rs[i]);
}

int main(void)
{
    (void)test_skipped;
    TEST_RUN(test_basics);
    TEST_RUN(test_constructors);
    TEST_RUN(test_rng);
    TEST_RUN(test_views);
    TEST_RUN(test_from_storage_quant);
    TEST_RUN(test_quant_roundtrip);
    TEST_RUN(test_copies);
    TEST_RUN(test_binary_broadcast);
    TEST_RUN(test_binary_types);
    TEST_RUN(test_unary);
    TEST_RUN(test_reduce);
    TEST_RUN(test_matmul);
    TEST_RUN(test_softmax);
    TEST_RUN(test_norms);
    return TEST_REPORT();
}
