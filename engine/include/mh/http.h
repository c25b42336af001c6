/* http.h: the HTTP/1.1 server on the event loop (libevent's evhttp parses;
 * nothing here is hand-rolled): listening, body limits, full and chunked
 * (streaming) responses, client-disconnect detection, graceful stop.
 * Layer: engine/net (pure C11, no lua.h). Everything runs on the loop thread. */
#ifndef MH_HTTP_H
#define MH_HTTP_H

#include <stddef.h>
#include "mh/err.h"
#include "mh/loop.h"

typedef struct mh_http_server mh_http_server;
typedef struct mh_http_req mh_http_req;

/* Called once per request; req is a new reference the handler must give back
 * with mh_http_req_release once it no longer needs it (after responding). */
typedef void (*mh_http_handler)(mh_http_req *req, void *ud);
/* Called once when the client goes away before the response was sent. */
typedef void (*mh_http_close_fn)(mh_http_req *req, void *ud);

typedef struct mh_http_opts {
    const char *host;        /* NULL: "127.0.0.1" */
    int port;                /* 0: any free port */
    size_t max_body;         /* 0: 16 MiB; larger bodies get a JSON 413 */
    size_t max_headers;      /* 0: 64 KiB; a request over max_body + max_headers + 64 KiB
                                gets the JSON 413 as soon as it passes that, the rest of
                                the upload is read and dropped, then the connection closes */
    int timeout_s;           /* 0: 60; idle/read/write timeout of a connection */
    int max_connections;     /* 0: from the fd limit (RLIMIT_NOFILE less a reserve, <= 4096);
                                at the cap the server stops accepting until one closes */
    int header_timeout_s;    /* 0: 30; a request (head and body) must arrive within this
                                of the connection opening or of the previous reply, else
                                the connection is closed (trickling clients) */
} mh_http_opts;

/* ===== server ===== */

/* Listens on opts->host:port (errors such as "address already in use" come
 * back as MH_EIO with the reason). Ignores SIGPIPE process-wide: a write to a
 * vanished client must be an error, not the end of the process. */
mh_http_server *mh_http_server_new(mh_loop *loop, const mh_http_opts *opts,
                                   mh_http_handler fn, void *ud, mh_err *err);
int mh_http_server_port(const mh_http_server *srv);
/* Closes the listening socket; requests in flight go on. */
void mh_http_server_stop_accepting(mh_http_server *srv);
/* Requests received whose response is not yet fully written. */
int mh_http_server_inflight(const mh_http_server *srv);
/* Open connections, and the cap on them. */
int mh_http_server_connections(const mh_http_server *srv);
int mh_http_server_max_connections(const mh_http_server *srv);
/* Closes every connection (live requests become closed) and frees srv. */
void mh_http_server_free(mh_http_server *srv);

/* ===== requests: read them in the handler; the strings stay valid while
 * the caller holds its reference ===== */

mh_http_req *mh_http_req_retain(mh_http_req *req);
void mh_http_req_release(mh_http_req *req);
const char *mh_http_req_method(const mh_http_req *req);   /* "GET" ... */
const char *mh_http_req_path(const mh_http_req *req);     /* raw, e.g. "/v1/x" */
const char *mh_http_req_query(const mh_http_req *req);    /* raw or "" */
const char *mh_http_req_remote(const mh_http_req *req);   /* "ip:port" */
/* The i-th header (0-based) into *name and *value; 0 past the last one (or once
 * the client has gone). Borrowed strings, valid until the response starts. */
int mh_http_req_header(const mh_http_req *req, int i, const char **name, const char **value);
/* The body (len bytes, not NUL-terminated); NULL with *len 0 once the
 * client has gone. */
const char *mh_http_req_body(mh_http_req *req, size_t *len);
int mh_http_req_closed(const mh_http_req *req);            /* client gone */
/* 0 nothing sent, 1 streaming (started), 2 response sent or finished. */
int mh_http_req_state(const mh_http_req *req);
void mh_http_req_on_close(mh_http_req *req, mh_http_close_fn fn, void *ud);

/* ===== responses. headers: NULL or name, value, name, value, ..., NULL.
 * After the client went away these return MH_EIO and send nothing. ===== */

int mh_http_respond(mh_http_req *req, int status, const char *const *headers,
                    const char *body, size_t len, mh_err *err);
/* Starts a streaming response: chunked on HTTP/1.1, unless headers give a
 * Content-Length; then the writes are sent as they are and must add up to it. */
int mh_http_start(mh_http_req *req, int status, const char *const *headers, mh_err *err);
int mh_http_write(mh_http_req *req, const char *data, size_t len, mh_err *err);
int mh_http_finish(mh_http_req *req, mh_err *err);
/* Drops the connection without completing the response: the bytes already
 * written are flushed first, then the socket is closed, so the client sees
 * a cut transfer (no last chunk, or fewer bytes than its Content-Length).
 * Works before start too (the client gets no answer). The on_close hook
 * does not run. MH_EINVAL once the response is complete, MH_EIO when the
 * client is already gone; a second abort is a no-op. */
int mh_http_abort(mh_http_req *req, mh_err *err);

#endif
