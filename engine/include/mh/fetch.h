/* fetch.h: the HTTP client of the core — GET/HEAD over libcurl with
 * redirects, caller headers, resume by Range into a file, progress,
 * timeouts and TLS verification; SHA-256 of a file (OpenSSL EVP); jobs that
 * run a transfer, a hash or an unlink on a worker thread and report through
 * a channel (mh/loop.h), so the event loop never waits on them.
 * Layer: engine/net (pure C11; no lua.h). Used by `pull` via l_fetch.c. */
#ifndef MH_FETCH_H
#define MH_FETCH_H

#include <stddef.h>
#include <stdint.h>
#include "mh/err.h"
#include "mh/loop.h"

/* Called as bytes arrive: done/total count from the start of the resource
 * (a resumed download includes what the file already held); total is -1
 * while unknown. A nonzero return aborts the transfer with MH_EINTR. */
typedef int (*mh_fetch_progress_fn)(void *ud, int64_t done, int64_t total);

typedef struct mh_fetch_req {
    const char *url;               /* http:// or https:// only */
    int head;                      /* 1: HEAD (no body) */
    const char *const *headers;    /* "Name: value" lines, NULL-terminated; or NULL */
    const char *path;              /* GET body goes to this file; NULL: into res->body */
    int64_t resume_from;           /* > 0 (with path): send Range: bytes=N- and append on 206 */
    long connect_timeout_s;        /* 0: 30 s */
    long stall_timeout_s;          /* abort when under 1 B/s for this long; 0: 60 s */
    long timeout_s;                /* whole transfer; 0: no limit */
    size_t max_body;               /* cap on an in-memory body; 0: 64 MiB */
    int sha256;                    /* 1 (with path): hash the file as it is written */
    mh_fetch_progress_fn progress; /* optional */
    void *ud;
} mh_fetch_req;

typedef struct mh_fetch_res {
    long status;                   /* HTTP status of the final response (after redirects) */
    int ranged;                    /* 1 when a 206 answer was appended to the file */
    int64_t written;               /* body bytes written to path by this call */
    char *body;                    /* in-memory body: path NULL, or an error status (>= 400) */
    size_t body_len;
    char *headers;                 /* raw header lines of the final response */
    size_t headers_len;
    char *url;                     /* the URL finally fetched (after redirects) */
    char sha256[65];               /* req->sha256 and a 2xx body: the whole file's
                                      SHA-256 (kept bytes of a resume included); else "" */
} mh_fetch_res;

/* Performs one request. Returns MH_OK once any HTTP answer arrived (check
 * res->status; a >= 400 answer's body is in res->body, never in the file);
 * MH_EIO when the transfer failed (no connection, timeout, connection cut:
 * bytes already written stay in the file), MH_EINTR when progress aborted,
 * MH_EINVAL on a bad request. res is always initialized: release it with
 * mh_fetch_res_free, also on failure. */
int mh_fetch_perform(const mh_fetch_req *req, mh_fetch_res *res, mh_err *err);

/* Frees what res owns (idempotent). */
void mh_fetch_res_free(mh_fetch_res *res);

/* SHA-256 of a file as 64 lowercase hex digits (+ NUL) in hex. */
int mh_fetch_sha256_file(const char *path, char hex[65], mh_err *err);
/* The same, calling progress (optional) after each MiB; a nonzero return
 * stops with MH_EINTR. */
int mh_fetch_sha256_file_progress(const char *path, char hex[65], mh_fetch_progress_fn progress,
                                  void *ud, mh_err *err);

/* ===== jobs on a worker thread ===== */

typedef struct mh_fetch_job mh_fetch_job;

/* What a job pushes to its channel while it runs: tag MH_FETCH_MSG_PROGRESS,
 * data "DONE TOTAL" in decimal (TOTAL -1 while unknown), at most every
 * 50 ms plus the last one. The channel is closed when the job has ended
 * (then mh_fetch_job_result may be called). */
enum { MH_FETCH_MSG_PROGRESS = 1 };

/* Runs mh_fetch_perform(req) on a new thread. req is copied (strings too);
 * its progress/ud are ignored. ch: borrowed (the job retains it). Returns
 * the caller's reference, or NULL (err set) when the thread cannot start. */
mh_fetch_job *mh_fetch_start(const mh_fetch_req *req, mh_chan *ch, mh_err *err);
/* Hashes path on a new thread: the result's sha256. */
mh_fetch_job *mh_fetch_hash_start(const char *path, mh_chan *ch, mh_err *err);
/* Deletes the file path on a new thread (a multi-GiB unlink can take long). */
mh_fetch_job *mh_fetch_unlink_start(const char *path, mh_chan *ch, mh_err *err);
/* Any thread: asks a running job to stop; it ends with MH_EINTR. */
void mh_fetch_job_cancel(mh_fetch_job *job);
/* 1 once the job has ended. */
int mh_fetch_job_done(mh_fetch_job *job);
/* After the job ended: its status (err filled) and its result (borrowed,
 * valid until the release); MH_EINVAL while it still runs. */
int mh_fetch_job_result(mh_fetch_job *job, const mh_fetch_res **res, mh_err *err);
/* Drops the caller's reference; a running job is cancelled and its memory
 * goes when its thread ends. */
void mh_fetch_job_release(mh_fetch_job *job);

#endif
