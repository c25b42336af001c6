/* threadpool.c: the kernels' pthread pool (mh/threadpool.h). Layer:
 * engine/base; uses pthreads and OpenBLAS's thread setting only.
 * One job at a time: the caller runs chunks alongside n-1 workers. A call
 * made while a job runs (from a worker, or from another thread) runs
 * inline, so nesting cannot deadlock. Token generation issues hundreds of
 * small jobs per token, so waiting threads spin briefly before sleeping (a
 * futex wake-up per job cost more than the job), and yield the core in
 * between: on a loaded machine a spinning thread would take the time slice
 * of the very thread it waits for. The caller waits for the job's chunks,
 * never for workers: a worker the kernel has not scheduled yet simply
 * takes no chunk, and a late one cannot take a chunk of the next job
 * (chunks are claimed with one CAS on a word holding the job's number). */
#include <stdlib.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <cblas.h>
#include "mh/threadpool.h"

#define SPIN_NS  20000         /* busy-wait on the job word first (20 us) */
#define YIELD_NS 200000        /* then yield the core until 200 us, then sleep */

/* The claim word: job number (24 bits) | chunk count (20) | next chunk (20). */
#define IDX_BITS 20
#define IDX_MASK ((1ull << IDX_BITS) - 1)
#define MAX_CHUNKS ((int64_t)IDX_MASK)
#define JOB_OF(w) ((w) >> (2 * IDX_BITS))

typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t tids[256];
    int nworkers;              /* threads - 1 */
    _Atomic bool stop;
    _Atomic uint64_t claim;    /* published job and its next chunk */
    _Atomic int64_t finished;  /* chunks of the current job run to the end */
    _Atomic int sleepers;      /* workers waiting on `work` */
    _Atomic bool caller_sleeps;
    uint64_t job;              /* the caller's job counter (24 bits used) */
    mh_range_fn fn;
    void *ctx;
    int64_t n, chunk, nchunks;
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

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins, then yields, until ready(arg) or the back-off runs out (false). */
static bool backoff(bool (*ready)(const void *), const void *arg)
{
    int64_t t0 = 0;
    for (unsigned i = 0;; i++) {
        if (ready(arg)) return true;
        if ((i & 63) == 63) {          /* the clock read costs ~20 ns: not every turn */
            int64_t t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > YIELD_NS) return false;
            else if (t - t0 > SPIN_NS) { sched_yield(); continue; }
        }
        cpu_relax();
    }
}

/* Claims and runs chunks of job `job` until none is left. */
static void run_chunks(uint64_t job)
{
    for (;;) {
        uint64_t w = atomic_load_explicit(&g.claim, memory_order_acquire);
        do {
            if (JOB_OF(w) != job || (w & IDX_MASK) >= ((w >> IDX_BITS) & IDX_MASK)) return;
        } while (!atomic_compare_exchange_weak_explicit(&g.claim, &w, w + 1, memory_order_acq_rel,
                                                        memory_order_acquire));
        /* the job cannot end before this chunk does: its fields are stable */
        int64_t c = (int64_t)(w & IDX_MASK), b = c * g.chunk, e = b + g.chunk < g.n ? b + g.chunk : g.n;
        int64_t total = g.nchunks;         /* read before the last chunk may end the job */
        g.fn(g.ctx, b, e);
        if (atomic_fetch_add(&g.finished, 1) + 1 == total && atomic_load(&g.caller_sleeps)) {
            pthread_mutex_lock(&g.mu);
            pthread_cond_signal(&g.done);
            pthread_mutex_unlock(&g.mu);
        }
    }
}

static bool job_posted(const void *seen)
{
    return JOB_OF(atomic_load_explicit(&g.claim, memory_order_acquire)) != *(const uint64_t *)seen ||
           atomic_load_explicit(&g.stop, memory_order_relaxed);
}

/* Waits until a job other than `seen` is posted (or stop). */
static void wait_for_job(uint64_t seen)
{
    if (backoff(job_posted, &seen)) return;
    pthread_mutex_lock(&g.mu);
    atomic_fetch_add(&g.sleepers, 1);      /* seq_cst: the caller's post is seen or it sees us */
    while (!job_posted(&seen)) pthread_cond_wait(&g.work, &g.mu);
    atomic_fetch_sub(&g.sleepers, 1);
    pthread_mutex_unlock(&g.mu);
}

static void *worker(void *arg)
{
    (void)arg;
    tl_worker = true;
    uint64_t seen = JOB_OF(atomic_load(&g.claim));
    for (;;) {
        wait_for_job(seen);
        if (atomic_load(&g.stop)) break;
        seen = JOB_OF(atomic_load(&g.claim));
        run_chunks(seen);
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

static bool job_finished(const void *unused)
{
    (void)unused;
    return atomic_load_explicit(&g.finished, memory_order_acquire) == g.nchunks;
}

/* Posts the job set up in g and runs it with the workers; g_run held. */
static void run_job(void)
{
    g.job = (g.job + 1) & ((1ull << (64 - 2 * IDX_BITS)) - 1);
    atomic_store(&g.finished, 0);
    atomic_store(&g.claim, g.job << (2 * IDX_BITS) | (uint64_t)g.nchunks << IDX_BITS);   /* seq_cst */
    if (atomic_load(&g.sleepers) > 0) {
        pthread_mutex_lock(&g.mu);
        pthread_cond_broadcast(&g.work);
        pthread_mutex_unlock(&g.mu);
    }
    tl_worker = true;                      /* nested calls from fn run inline */
    run_chunks(g.job);
    tl_worker = false;
    if (backoff(job_finished, NULL)) return;
    pthread_mutex_lock(&g.mu);
    atomic_store(&g.caller_sleeps, true);  /* seq_cst: the last chunk's end sees it or we see that */
    while (!job_finished(NULL)) pthread_cond_wait(&g.done, &g.mu);
    atomic_store(&g.caller_sleeps, false);
    pthread_mutex_unlock(&g.mu);
}

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
    if (nch > MAX_CHUNKS) nch = MAX_CHUNKS;
    g.fn = fn;
    g.ctx = ctx;
    g.n = n;
    g.chunk = (n + nch - 1) / nch;
    g.nchunks = (n + g.chunk - 1) / g.chunk;
    run_job();
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
