/* threadpool.c: the kernels' pthread pool (mh/threadpool.h). Layer:
 * engine/base; uses pthreads and OpenBLAS's thread setting only.
 * One job at a time: the caller runs chunks alongside n-1 workers, chunks
 * are taken from an atomic counter. A call made while a job runs (from a
 * worker, or from another thread) runs inline, so nesting cannot deadlock.
 * Token generation issues hundreds of small jobs per token, so workers and
 * the caller spin briefly (~100 us) on atomics before sleeping on the
 * condition variable: a futex wake-up per job cost more than the job. */
#include <stdlib.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <pthread.h>
#include <unistd.h>
#include <cblas.h>
#include "mh/threadpool.h"

#define SPIN_ITERS 20000       /* pause loops before sleeping (~100 us) */

typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t tids[256];
    int nworkers;              /* threads - 1 */
    _Atomic bool stop;
    _Atomic uint64_t gen;      /* bumped per job */
    _Atomic int active;        /* workers not yet checked out of the job */
    _Atomic int sleepers;      /* workers waiting on `work` */
    _Atomic bool caller_sleeps;
    mh_range_fn fn;
    void *ctx;
    int64_t n, chunk, nchunks;
    _Atomic int64_t next;
} pool;

static pool g = {.mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
                 .done = PTHREAD_COND_INITIALIZER};
static pthread_mutex_t g_run = PTHREAD_MUTEX_INITIALIZER;   /* one job at a time */
static _Atomic int g_threads = 0;                            /* 0: not decided yet */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bool g_started = false;
static _Thread_local bool tl_worker = false;

static int default_threads(void)
{
    const char *env = getenv("MOONHUB_THREADS");
    long n = env && *env ? strtol(env, NULL, 10) : 0;
    if (n < 1) n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n > 256 ? 256 : (int)n;
}

static void run_chunks(void)
{
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&g.next, 1, memory_order_relaxed);
        if (c >= g.nchunks) return;
        int64_t b = c * g.chunk, e = b + g.chunk < g.n ? b + g.chunk : g.n;
        g.fn(g.ctx, b, e);
    }
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until gen moves past seen (or stop): spins, then sleeps. */
static void wait_for_job(uint64_t seen)
{
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load(&g.gen) != seen || atomic_load(&g.stop)) return;
        cpu_relax();
    }
    pthread_mutex_lock(&g.mu);
    atomic_fetch_add(&g.sleepers, 1);      /* seq_cst: the caller's gen bump is seen or it sees us */
    while (atomic_load(&g.gen) == seen && !atomic_load(&g.stop)) pthread_cond_wait(&g.work, &g.mu);
    atomic_fetch_sub(&g.sleepers, 1);
    pthread_mutex_unlock(&g.mu);
}

static void *worker(void *arg)
{
    (void)arg;
    tl_worker = true;
    uint64_t seen = 0;
    for (;;) {
        wait_for_job(seen);
        if (atomic_load(&g.stop)) break;
        seen = atomic_load(&g.gen);
        run_chunks();
        if (atomic_fetch_sub(&g.active, 1) == 1 && atomic_load(&g.caller_sleeps)) {
            pthread_mutex_lock(&g.mu);
            pthread_cond_signal(&g.done);
            pthread_mutex_unlock(&g.mu);
        }
    }
    return NULL;
}

/* starts the workers; called with g_run held */
static void pool_start(void)
{
    int want = g_threads - 1;
    atomic_store(&g.stop, false);
    g.nworkers = 0;
    for (int i = 0; i < want; i++) {
        if (pthread_create(&g.tids[i], NULL, worker, NULL)) break;   /* fewer workers still work */
        g.nworkers++;
    }
    g_started = true;
}

/* joins the workers; called with g_run held */
static void pool_stop(void)
{
    if (!g_started) return;
    pthread_mutex_lock(&g.mu);
    atomic_store(&g.stop, true);
    pthread_cond_broadcast(&g.work);
    pthread_mutex_unlock(&g.mu);
    for (int i = 0; i < g.nworkers; i++) pthread_join(g.tids[i], NULL);
    g.nworkers = 0;
    atomic_store(&g.gen, 0);
    g_started = false;
}

static void init_threads(void)
{
    if (g_threads == 0) {              /* mh_threads_set may have run first */
        g_threads = default_threads();
        openblas_set_num_threads(g_threads);
    }
}

static void ensure_threads(void) { pthread_once(&g_once, init_threads); }

void mh_parallel_for(int64_t n, int64_t min_chunk, mh_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (min_chunk < 1) min_chunk = 1;
    if (tl_worker || n <= min_chunk || pthread_mutex_trylock(&g_run) != 0) {
        fn(ctx, 0, n);
        return;
    }
    ensure_threads();
    if (g_threads == 1) {
        pthread_mutex_unlock(&g_run);
        fn(ctx, 0, n);
        return;
    }
    if (!g_started) pool_start();
    int64_t maxc = (int64_t)(g.nworkers + 1) * 4, nch = (n + min_chunk - 1) / min_chunk;
    if (nch > maxc) nch = maxc;
    g.fn = fn;
    g.ctx = ctx;
    g.n = n;
    g.chunk = (n + nch - 1) / nch;
    g.nchunks = (n + g.chunk - 1) / g.chunk;
    atomic_store(&g.next, 0);
    atomic_store(&g.active, g.nworkers);
    atomic_fetch_add(&g.gen, 1);           /* publishes the job (seq_cst) */
    if (atomic_load(&g.sleepers) > 0) {
        pthread_mutex_lock(&g.mu);
        pthread_cond_broadcast(&g.work);
        pthread_mutex_unlock(&g.mu);
    }
    tl_worker = true;                      /* nested calls from fn run inline */
    run_chunks();
    tl_worker = false;
    for (int i = 0; i < SPIN_ITERS && atomic_load(&g.active) > 0; i++) cpu_relax();
    if (atomic_load(&g.active) > 0) {
        pthread_mutex_lock(&g.mu);
        atomic_store(&g.caller_sleeps, true);
        while (atomic_load(&g.active) > 0) pthread_cond_wait(&g.done, &g.mu);
        atomic_store(&g.caller_sleeps, false);
        pthread_mutex_unlock(&g.mu);
    }
    pthread_mutex_unlock(&g_run);
}

int mh_threads_get(void)
{
    ensure_threads();                      /* no lock: must not wait for a running job */
    return g_threads;
}

void mh_threads_set(int n)
{
    if (n < 1) n = default_threads();
    if (n > 256) n = 256;
    ensure_threads();
    pthread_mutex_lock(&g_run);
    if (n != g_threads) {
        pool_stop();                       /* restarted lazily at the next job */
        g_threads = n;
    }
    openblas_set_num_threads(n);
    pthread_mutex_unlock(&g_run);
}
