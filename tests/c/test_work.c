/* test_work.c: worker-thread jobs (mh/work.h, the file jobs of mh/fetch.h)
 * and the loop-lag probe (mh/loop.h). Layer: tests (pure C). The lag checks
 * are lower bounds (a callback that sleeps 120 ms must show as >= 100 ms of
 * lag), never upper bounds on a shared machine; every wait is a generous
 * bound on a hang (30 s), so a loaded host only makes the test slower. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include "harness.h"
#include "mh/fetch.h"
#include "mh/loop.h"
#include "mh/work.h"

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}


static void on_timeout(mh_timer *t, void *ud) { (void)t; *(int *)ud = 1; }

/* Runs the loop until ch is done, at most secs. */
static int run_until_done(mh_loop *loop, mh_chan *ch, double secs)
{
    int late = 0;
    mh_timer *w = mh_timer_new(loop, secs, 0, on_timeout, &late, NULL);
    while (!mh_chan_done(ch) && !late) {
        mh_chan_msg m;
        while (mh_chan_pop(ch, &m)) free(m.data);
        if (!mh_chan_done(ch)) mh_loop_run(loop, 1, NULL);
    }
    mh_timer_free(w);
    return mh_chan_done(ch);
}

typedef struct arg { pthread_t caller; int other_thread; int fail; atomic_int *freed; } arg;

static int work_fn(void *p, mh_err *err)
{
    arg *a = p;
    a->other_thread = !pthread_equal(pthread_self(), a->caller);
    sleep_ms(30);
    return a->fail ? mh_err_set(err, MH_EIO, "work failed on purpose") : MH_OK;
}

static void free_arg(void *p) { arg *a = p; atomic_fetch_add(a->freed, 1); free(a); }

static void test_work_runs_off_thread_and_reports(void)
{
    mh_loop *loop = mh_loop_new(NULL);
    atomic_int freed = 0;
    for (int fail = 0; fail < 2; fail++) {
        mh_chan *ch = mh_chan_new(loop, NULL);
        arg *a = calloc(1, sizeof *a);
        *a = (arg){ pthread_self(), 0, fail, &freed };
        mh_err err = { 0 };
        mh_work *w = mh_work_start(work_fn, a, free_arg, ch, &err);
        CHECK(w != NULL);
        CHECK(mh_work_status(w, NULL) == MH_EINVAL || mh_work_done(w));   /* still running, most likely */
        CHECK(run_until_done(loop, ch, 30));
        CHECK(mh_work_done(w));
        CHECK(((arg *)mh_work_arg(w))->other_thread);
        int st = mh_work_status(w, &err);
        CHECK(fail ? st == MH_EIO && strstr(err.msg, "on purpose") : st == MH_OK);
        mh_work_release(w);
        mh_chan_release(ch);
    }
    for (int i = 0; i < 6000 && atomic_load(&freed) < 2; i++) sleep_ms(5);   /* the thread lets go just after the close */
    CHECK(atomic_load(&freed) == 2);
    /* released while running: the thread finishes and frees the argument */
    mh_chan *ch = mh_chan_new(loop, NULL);
    arg *a = calloc(1, sizeof *a);
    *a = (arg){ pthread_self(), 0, 0, &freed };
    mh_work *w = mh_work_start(work_fn, a, free_arg, ch, NULL);
    mh_work_release(w);
    mh_chan_release(ch);
    for (int i = 0; i < 6000 && atomic_load(&freed) < 3; i++) sleep_ms(5);
    CHECK(atomic_load(&freed) == 3);
    mh_loop_release(loop);
}

static void test_file_jobs(void)
{
    char path[] = "/tmp/mh_test_work_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, "abc", 3) == 3);
    close(fd);
    mh_loop *loop = mh_loop_new(NULL);
    mh_chan *ch = mh_chan_new(loop, NULL);
    mh_err err = { 0 };
    mh_fetch_job *j = mh_fetch_hash_start(path, ch, &err);
    CHECK(j != NULL);
    CHECK(run_until_done(loop, ch, 30));
    const mh_fetch_res *res = NULL;
    CHECK(mh_fetch_job_result(j, &res, &err) == MH_OK);
    CHECK(!strcmp(res->sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    mh_fetch_job_release(j);
    mh_chan_release(ch);
    ch = mh_chan_new(loop, NULL);
    j = mh_fetch_unlink_start(path, ch, &err);
    CHECK(run_until_done(loop, ch, 30));
    CHECK_MSG(mh_fetch_job_result(j, NULL, &err) == MH_OK, "%s", err.msg);
    CHECK(access(path, F_OK) != 0);
    mh_fetch_job_release(j);
    mh_chan_release(ch);
    mh_loop_release(loop);
}

/* Stops the loop once the probe took a sample after the block (the late
 * one) and has >= 5 in all (a stop at a fixed 0.4 s could come before that
 * on a loaded host), or after 30 s. */
typedef struct probe_wait { mh_loop *loop; int blocked; int64_t n_at_block; double t0; } probe_wait;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_block(mh_timer *t, void *ud)
{
    probe_wait *w = ud;
    mh_timer_free(t);
    sleep_ms(120);
    mh_loop_lag g;
    w->n_at_block = mh_loop_lag_read(w->loop, &g) == 1 ? (int64_t)g.n : 0;
    w->blocked = 1;
}

static void on_probe_check(mh_timer *t, void *ud)
{
    probe_wait *w = ud;
    mh_loop_lag g;
    int got = mh_loop_lag_read(w->loop, &g) == 1;
    int enough = w->blocked && got && (int64_t)g.n > w->n_at_block && g.n >= 5;
    if (enough || mono_s() - w->t0 > 30) {
        mh_timer_free(t);
        mh_loop_stop(w->loop);
    }
}

static void test_lag_probe_sees_a_blocked_loop(void)
{
    mh_loop *loop = mh_loop_new(NULL);
    mh_loop_lag g;
    mh_err err = { 0 };
    CHECK(mh_loop_lag_read(loop, &g) == 0);
    CHECK(mh_loop_lag_enable(loop, 0, &err) == MH_EINVAL);
    CHECK(mh_loop_lag_enable(loop, 0.01, &err) == MH_OK);
    CHECK(mh_loop_lag_enable(loop, 0.01, &err) == MH_OK);     /* idempotent */
    probe_wait w = { loop, 0, 0, mono_s() };
    mh_timer_new(loop, 0.1, 0, on_block, &w, NULL);
    mh_timer_new(loop, 0.05, 1, on_probe_check, &w, NULL);
    mh_loop_run(loop, 0, NULL);
    CHECK(mh_loop_lag_read(loop, &g) == 1);
    CHECK(g.n >= 5);
    CHECK_MSG(g.max >= 0.1, "max lag %.3f s after a 120 ms block", g.max);
    for (int i = 1; i < MH_LOOP_LAG_BUCKETS; i++) CHECK(g.counts[i] >= g.counts[i - 1] && g.le[i] > g.le[i - 1]);
    int i100 = 0;
    while (g.le[i100] < 0.1) i100++;
    CHECK(g.counts[i100 - 1] < g.n);                           /* the late sample is over 50 ms */
    CHECK(g.sum >= g.max);
    mh_loop_release(loop);
}

int main(void)
{
    TEST_RUN(test_work_runs_off_thread_and_reports);
    TEST_RUN(test_file_jobs);
    TEST_RUN(test_lag_probe_sees_a_blocked_loop);
    return TEST_REPORT();
}
