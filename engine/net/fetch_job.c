/* fetch_job.c: downloads, hashes and unlinks on a worker thread (see the
 * jobs in mh/fetch.h), so that the event loop only moves bytes: progress and
 * the end travel back through a channel (mh/loop.h).
 * Layer: engine/net (pure C11 + pthreads; no lua.h). One detached thread per
 * job: pulls are few and long, a pool would only add a queue to wait in. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "mh/fetch.h"

#define MAX_HEADERS 64
#define PROGRESS_EVERY 0.05          /* seconds between progress messages */

enum { JOB_FETCH, JOB_HASH, JOB_UNLINK };

struct mh_fetch_job {
    atomic_int refs;                 /* the caller + the thread */
    atomic_int cancel;
    atomic_int done;
    int kind;
    mh_chan *ch;                     /* retained */
    mh_fetch_req req;                /* strings below are owned copies */
    char *url, *path;
    char *headers[MAX_HEADERS + 1];
    mh_fetch_res res;
    mh_err err;
    int status;
    double last_push;                /* monotonic s of the last progress message */
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void job_unref(mh_fetch_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1) return;
    mh_fetch_res_free(&j->res);
    for (int i = 0; j->headers[i]; i++) free(j->headers[i]);
    free(j->url);
    free(j->path);
    mh_chan_release(j->ch);
    free(j);
}

/* The worker's progress: a message at most every PROGRESS_EVERY (and the
 * last one, done == total); the cancel flag is read at every call. */
static int on_progress(void *ud, int64_t done, int64_t total)
{
    mh_fetch_job *j = ud;
    if (atomic_load(&j->cancel)) return 1;
    double t = mono();
    if (t - j->last_push < PROGRESS_EVERY && done != total) return 0;
    j->last_push = t;
    char msg[64];
    int n = snprintf(msg, sizeof msg, "%" PRId64 " %" PRId64, done, total);
    mh_chan_push(j->ch, MH_FETCH_MSG_PROGRESS, msg, (size_t)n, NULL);   /* a closed channel: nobody listens */
    return 0;
}

static void *job_main(void *arg)
{
    mh_fetch_job *j = arg;
    if (atomic_load(&j->cancel)) {
        j->status = mh_err_set(&j->err, MH_EINTR, "fetch: stopped before it started");
    } else if (j->kind == JOB_FETCH) {
        j->status = mh_fetch_perform(&j->req, &j->res, &j->err);
    } else if (j->kind == JOB_HASH) {
        j->status = mh_fetch_sha256_file_progress(j->path, j->res.sha256, on_progress, j, &j->err);
    } else if (unlink(j->path) != 0) {
        j->status = mh_err_set(&j->err, MH_EIO, "unlink: %s: %s", j->path, strerror(errno));
    }
    atomic_store(&j->done, 1);
    mh_chan_close(j->ch);            /* after done: a listener woken by it sees the result */
    job_unref(j);
    return NULL;
}

static char *dup_or_null(const char *s, int *failed)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *failed = 1;
    return d;
}

static mh_fetch_job *job_new(int kind, mh_chan *ch, mh_err *err)
{
    mh_fetch_job *j = calloc(1, sizeof *j);
    if (!j) { mh_err_set(err, MH_ENOMEM, "fetch: out of memory for a job"); return NULL; }
    atomic_init(&j->refs, 1);
    j->kind = kind;
    j->ch = mh_chan_retain(ch);
    return j;
}

/* Starts j's thread; on failure frees j. */
static mh_fetch_job *job_launch(mh_fetch_job *j, mh_err *err)
{
    atomic_fetch_add(&j->refs, 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &attr, job_main, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_fetch_sub(&j->refs, 1);
        job_unref(j);
        mh_err_set(err, MH_EIO, "fetch: cannot start a worker thread: %s", strerror(rc));
        return NULL;
    }
    return j;
}

mh_fetch_job *mh_fetch_start(const mh_fetch_req *req, mh_chan *ch, mh_err *err)
{
    if (!req || !ch) { mh_err_set(err, MH_EINVAL, "fetch.start: request and channel needed"); return NULL; }
    mh_fetch_job *j = job_new(JOB_FETCH, ch, err);
    if (!j) return NULL;
    int failed = 0, n = 0;
    j->req = *req;
    j->req.url = j->url = dup_or_null(req->url, &failed);
    j->req.path = j->path = dup_or_null(req->path, &failed);
    for (const char *const *h = req->headers; h && *h && !failed; h++) {
        if (n == MAX_HEADERS) {
            job_unref(j);
            mh_err_set(err, MH_EINVAL, "fetch.start: more than %d headers", MAX_HEADERS);
            return NULL;
        }
        j->headers[n++] = dup_or_null(*h, &failed);
    }
    j->req.headers = (const char *const *)j->headers;
    j->req.progress = on_progress;
    j->req.ud = j;
    if (failed) {
        job_unref(j);
        mh_err_set(err, MH_ENOMEM, "fetch.start: out of memory");
        return NULL;
    }
    return job_launch(j, err);
}

static mh_fetch_job *file_job(int kind, const char *path, mh_chan *ch, mh_err *err)
{
    if (!path || !ch) { mh_err_set(err, MH_EINVAL, "fetch: a path and a channel are needed"); return NULL; }
    mh_fetch_job *j = job_new(kind, ch, err);
    if (!j) return NULL;
    int failed = 0;
    j->path = dup_or_null(path, &failed);
    if (failed) {
        job_unref(j);
        mh_err_set(err, MH_ENOMEM, "fetch: out of memory");
        return NULL;
    }
    return job_launch(j, err);
}

mh_fetch_job *mh_fetch_hash_start(const char *path, mh_chan *ch, mh_err *err)
{
    return file_job(JOB_HASH, path, ch, err);
}

mh_fetch_job *mh_fetch_unlink_start(const char *path, mh_chan *ch, mh_err *err)
{
    return file_job(JOB_UNLINK, path, ch, err);
}

void mh_fetch_job_cancel(mh_fetch_job *job) { atomic_store(&job->cancel, 1); }
int mh_fetch_job_done(mh_fetch_job *job) { return atomic_load(&job->done); }

int mh_fetch_job_result(mh_fetch_job *job, const mh_fetch_res **res, mh_err *err)
{
    if (!atomic_load(&job->done)) return mh_err_set(err, MH_EINVAL, "fetch: the job is still running");
    if (res) *res = &job->res;
    if (job->status && err) *err = job->err;
    return job->status;
}

void mh_fetch_job_release(mh_fetch_job *job)
{
    if (!job) return;
    mh_fetch_job_cancel(job);        /* no-op once done */
    job_unref(job);
}
