/* test_threadpool.c: the pthread pool: every index covered exactly once,
 * chunk bounds, nesting, concurrent callers, thread count changes, more
 * threads than cores (late workers must not touch the next job) and the
 * MOONHUB_THREADS default. Layer: tests (C, engine/base). */
#include <stdatomic.h>
#include <pthread.h>
#include <stdint.h>
#include "harness.h"
#include "mh/threadpool.h"

typedef struct cover { _Atomic int *hits; int64_t n, min_chunk; _Atomic int calls, bad; } cover;

static void cover_fn(void *ctx, int64_t b, int64_t e)
{
    cover *c = ctx;
    atomic_fetch_add(&c->calls, 1);
    if (b < 0 || e > c->n || b >= e) atomic_fetch_add(&c->bad, 1);
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->hits[i], 1);
}

static int run_cover(int64_t n, int64_t min_chunk)
{
    _Atomic int *hits = calloc((size_t)(n ? n : 1), sizeof *hits);
    cover c = {hits, n, min_chunk, 0, 0};
    mh_parallel_for(n, min_chunk, cover_fn, &c);
    int ok = c.bad == 0 && (n > 0 || c.calls == 0);
    for (int64_t i = 0; i < n; i++) ok = ok && hits[i] == 1;
    free(hits);
    return ok;
}

static void test_default_from_env(void)
{
    CHECK(mh_threads_get() == 3);          /* main sets MOONHUB_THREADS=3 before any use */
}

static void test_cover(void)
{
    int64_t ns[] = {0, 1, 2, 7, 100, 1000, 100003};
    int64_t mins[] = {1, 3, 64, 100000};
    for (int t = 1; t <= 4; t++) {
        mh_threads_set(t);
        CHECK(mh_threads_get() == t);
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t j = 0; j < sizeof mins / sizeof mins[0]; j++)
                CHECK_MSG(run_cover(ns[i], mins[j]), "threads %d n %lld min %lld", t, (long long)ns[i],
                          (long long)mins[j]);
    }
    mh_threads_set(0);                     /* back to the default */
    CHECK(mh_threads_get() >= 1);
}

typedef struct who { pthread_t main; _Atomic int other; } who;

static void who_fn(void *ctx, int64_t b, int64_t e)
{
    who *w = ctx;
    (void)b; (void)e;
    usleep(200);                           /* slow chunks: the worker gets some */
    if (!pthread_equal(pthread_self(), w->main)) atomic_fetch_add(&w->other, 1);
}

static void test_uses_threads(void)
{
    mh_threads_set(2);
    who w = {pthread_self(), 0};
    /* until a worker took one (a loaded host may leave the workers asleep
     * for a while: more tries, not a time bound) */
    for (int rep = 0; rep < 20000 && !w.other; rep++) mh_parallel_for(16, 1, who_fn, &w);
    CHECK(w.other > 0);                    /* a worker took a chunk */
    mh_threads_set(1);
    w.other = 0;
    mh_parallel_for(16, 1, who_fn, &w);
    CHECK(w.other == 0);                   /* one thread: inline */
}

static void nested_fn(void *ctx, int64_t b, int64_t e)
{
    for (int64_t i = b; i < e; i++)
        if (!run_cover(50, 1)) atomic_fetch_add((_Atomic int *)ctx, 1);
}

static void test_nested(void)
{
    mh_threads_set(2);
    _Atomic int bad = 0;
    mh_parallel_for(8, 1, nested_fn, &bad);
    CHECK(bad == 0);
}

static void *caller(void *arg)
{
    _Atomic int *bad = arg;
    for (int i = 0; i < 200; i++) if (!run_cover(1000, 10)) atomic_fetch_add(bad, 1);
    return NULL;
}

static void test_concurrent_callers(void)
{
    mh_threads_set(2);
    _Atomic int bad = 0;
    pthread_t t[3];
    for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, caller, &bad) == 0);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    CHECK(bad == 0);
}

static pthread_t g_main;

/* Chunks run by workers sleep first: the job must not be over until the
 * last of them is. */
static void slow_worker_fn(void *ctx, int64_t b, int64_t e)
{
    if (!pthread_equal(pthread_self(), g_main)) usleep(50);
    cover_fn(ctx, b, e);
}

/* 16 threads on a machine with a few cores: workers wake late, after their
 * job is gone; each job has its own counters, so a chunk run with an old
 * job's ctx or bounds, twice, or after the call returned shows up. Also
 * checks the pool makes progress at all in that state (no time asserted). */
static void test_oversubscribed(void)
{
    g_main = pthread_self();
    mh_threads_set(16);
    CHECK(mh_threads_get() == 16);
    for (int rep = 0; rep < 3000; rep++) {
        int64_t n = 1 + rep % 97;
        _Atomic int *hits = calloc((size_t)n, sizeof *hits);
        cover c = {hits, n, 1, 0, 0};
        mh_parallel_for(n, 1, rep % 10 == 0 ? slow_worker_fn : cover_fn, &c);
        int ok = c.bad == 0;
        for (int64_t i = 0; i < n; i++) ok = ok && hits[i] == 1;
        free(hits);
        CHECK_MSG(ok, "rep %d n %lld", rep, (long long)n);
    }
    _Atomic int bad = 0;
    pthread_t t[3];
    for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, caller, &bad) == 0);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    CHECK(bad == 0);
    mh_threads_set(2);
}

int main(void)
{
    (void)test_skipped;
    setenv("MOONHUB_THREADS", "3", 1);
    TEST_RUN(test_default_from_env);
    TEST_RUN(test_cover);
    TEST_RUN(test_uses_threads);
    TEST_RUN(test_nested);
    TEST_RUN(test_concurrent_callers);
    TEST_RUN(test_oversubscribed);
    mh_threads_set(1);                     /* joins the workers before exit */
    return TEST_REPORT();
}
