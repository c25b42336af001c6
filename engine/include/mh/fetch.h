/* fetch.h: the HTTP client of the core — GET/HEAD over libcurl with
 * redirects, caller headers, resume by Range into a file, progress,
 * timeouts and TLS verification; SHA-256 of a file (OpenSSL EVP).
 * Layer: engine/net (pure C11; no lua.h). Used by `pull` via l_fetch.c. */
#ifndef MH_FETCH_H
#define MH_FETCH_H

#include <stddef.h>
#include <stdint.h>
#include "mh/err.h"

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

#endif
