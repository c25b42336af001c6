/* http_server.c: the HTTP server over libevent's evhttp — listening socket of
 * our own (clear bind errors), per-request wrapper with reference counts,
 * full and chunked responses, disconnect detection, in-flight counting,
 * aborts (the connection dropped mid-response). The connection guard (cap,
 * request deadline, hard-cap 413) is http_guard.c.
 * Layer: engine/net (pure C11 + libevent; no lua.h).
 * Why a wrapper: evhttp frees its request when the reply is flushed or the
 * client vanishes, while the handler (a Lua coroutine) may still hold it. */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include "http_internal.h"

struct mh_http_req {
    int refs;                            /* net side + handler side */
    mh_http_server *srv;                 /* NULL once the net side let go */
    struct evhttp_request *ev;           /* NULL once evhttp freed it */
    struct evhttp_connection *evcon;
    struct event *watch;                 /* EOF watch before the reply starts */
    struct event *drop;                  /* abort: closes the connection */
    struct evbuffer_cb_entry *drain;     /* abort: waits for the output to flush */
    int state, closed, aborted;
    char *method, *path, *query;
    char remote[80];
    mh_http_close_fn close_fn;
    void *close_ud;
    mh_http_req *prev, *next;
};


/* ===== request lifetime ===== */

mh_http_req *mh_http_req_retain(mh_http_req *req)
{
    req->refs++;
    return req;
}

void mh_http_req_release(mh_http_req *req)
{
    if (!req || --req->refs > 0) return;
    free(req->method);
    free(req->path);
    free(req->query);
    free(req);
}

static void stop_watch(mh_http_req *req)
{
    if (!req->watch) return;
    event_free(req->watch);
    req->watch = NULL;
}

/* Ends a pending abort; evcon (when still there) owns the output buffer. */
static void stop_abort(mh_http_req *req, struct evhttp_connection *evcon)
{
    if (req->drain && evcon)
        evbuffer_remove_cb_entry(bufferevent_get_output(evhttp_connection_get_bufferevent(evcon)),
                                 req->drain);
    req->drain = NULL;
    if (req->drop) event_free(req->drop);
    req->drop = NULL;
}

/* The net side is finished with req: completed or the client is gone. */
static void net_done(mh_http_req *req)
{
    mh_http_server *srv = req->srv;
    if (!srv) return;
    stop_watch(req);
    if (req->prev) req->prev->next = req->next;
    else srv->live = req->next;
    if (req->next) req->next->prev = req->prev;
    req->prev = req->next = NULL;
    req->srv = NULL;
    srv->inflight--;
    mh_http_req_release(req);
}

/* The reply is fully written: evhttp frees ev right after this. */
static void on_complete(struct evhttp_request *ev, void *arg)
{
    (void)ev;
    mh_http_req *req = arg;
    req->ev = NULL;
    if (req->evcon && req->srv) {
        if (!mh_http_guard_reply_out(req->srv, req->evcon, req))
            evhttp_connection_set_closecb(req->evcon, NULL, NULL);
        if (req->state == ST_DONE)   /* streaming turned the read timeout off */
            evhttp_connection_set_timeout(req->evcon, req->srv->timeout_s);
    }
    req->evcon = NULL;
    net_done(req);
}

/* The connection is going down before the reply was written. */
void mh_http_on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    mh_http_req *req = arg;
    mh_http_req_retain(req);
    if (req->ev && !evhttp_request_get_connection(req->ev))
        evhttp_request_free(req->ev);   /* detached by evhttp: ours to free */
    req->ev = NULL;                      /* otherwise evhttp frees it next */
    req->evcon = NULL;
    req->closed = 1;
    stop_watch(req);
    stop_abort(req, evcon);
    if (req->close_fn && req->state != ST_DONE) req->close_fn(req, req->close_ud);
    net_done(req);
    mh_http_req_release(req);
}

/* evhttp stops reading while the handler works, so a client that hangs up
 * before the reply would go unnoticed; peek at the socket ourselves. */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    mh_http_req *req = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    stop_watch(req);
    if (n > 0 || !req->evcon) return;    /* pipelined bytes: cannot tell more */
    evhttp_connection_free(req->evcon);  /* runs on_conn_close */
}

static char *dupstr(const char *s)
{
    s = s ? s : "";
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
    }
}

static int fill_req(mh_http_req *req, struct evhttp_request *ev)
{
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(ev);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    req->method = dupstr(method_name(evhttp_request_get_command(ev)));
    req->path = dupstr(path && *path ? path : "/");
    req->query = dupstr(u ? evhttp_uri_get_query(u) : NULL);
    char *addr = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(req->evcon, &addr, &port);
    snprintf(req->remote, sizeof req->remote, "%s:%u", addr ? addr : "?", (unsigned)port);
    return req->method && req->path && req->query;
}

/* Bodies over the limit get a JSON 413 here (OpenAI's error shape); libevent
 * itself only rejects bodies past a hard cap (4x the limit + 16 MiB), with
 * its own HTML page, so memory stays bounded. */
static bool reject_large_body(mh_http_server *srv, struct evhttp_request *ev)
{
    size_t n = evbuffer_get_length(evhttp_request_get_input_buffer(ev));
    if (n <= srv->max_body) return false;
    struct evbuffer *b = evbuffer_new();
    if (!b) { evhttp_send_error(ev, 413, "payload too large"); return true; }
    evbuffer_add_printf(b, "{\"error\":{\"message\":\"the request body has %zu bytes, over the limit of %zu "
                        "bytes\",\"type\":\"invalid_request_error\",\"param\":null,"
                        "\"code\":\"request_too_large\"}}", n, srv->max_body);
    evhttp_add_header(evhttp_request_get_output_headers(ev), "Content-Type", "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(ev), "Connection", "close");
    evhttp_send_reply(ev, 413, "Payload Too Large", b);
    evbuffer_free(b);
    return true;
}

static void on_request(struct evhttp_request *ev, void *arg)
{
    mh_http_server *srv = arg;
    if (reject_large_body(srv, ev)) {
        mh_http_guard_request_in(srv, evhttp_request_get_connection(ev), NULL);
        return;
    }
    mh_http_req *req = calloc(1, sizeof *req);
    if (req) req->evcon = evhttp_request_get_connection(ev);
    if (!req || !fill_req(req, ev)) {
        if (req) { req->refs = 1; mh_http_req_release(req); }
        evhttp_send_error(ev, 503, "out of memory");
        return;
    }
    req->refs = 2;                       /* net side + handler */
    req->srv = srv;
    req->ev = ev;
    req->next = srv->live;
    if (srv->live) srv->live->prev = req;
    srv->live = req;
    srv->inflight++;
    if (!mh_http_guard_request_in(srv, req->evcon, req))  /* untracked: the closecb is the request's */
        evhttp_connection_set_closecb(req->evcon, mh_http_on_conn_close, req);
    evhttp_request_set_on_complete_cb(ev, on_complete, req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(req->evcon);
    req->watch = event_new(mh_loop_base(srv->loop), bufferevent_getfd(bev),
                           EV_READ | EV_PERSIST, on_watch, req);
    if (req->watch) event_add(req->watch, NULL);
    srv->fn(req, srv->ud);
}

/* ===== server ===== */

/* A listening non-blocking socket (its fd) or -1 with err set. */
static int open_listener(const char *host, int port, int *bound_port, mh_err *err)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                              .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0) {
        mh_err_set(err, MH_EINVAL, "http: cannot resolve host '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        mh_err_set(err, MH_EIO, "http: cannot listen on %s:%d: %s", host, port, strerror(e));
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                            : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static int check_opts(const mh_http_opts *o, mh_err *err)
{
    if (o->port < 0 || o->port > 65535)
        return mh_err_set(err, MH_EINVAL, "http: port %d out of range 0..65535", o->port);
    if (o->timeout_s < 0)
        return mh_err_set(err, MH_EINVAL, "http: timeout must be >= 0, got %d", o->timeout_s);
    if (o->max_body > (size_t)1 << 40)
        return mh_err_set(err, MH_EINVAL, "http: max_body %zu is too large", o->max_body);
    return MH_OK;
}

mh_http_server *mh_http_server_new(mh_loop *loop, const mh_http_opts *opts,
                                   mh_http_handler fn, void *ud, mh_err *err)
{
    mh_http_opts o = opts ? *opts : (mh_http_opts){ 0 };
    if (!fn) { mh_err_set(err, MH_EINVAL, "http: no handler"); return NULL; }
    if (check_opts(&o, err) != MH_OK) return NULL;
    const char *host = o.host ? o.host : "127.0.0.1";
    signal(SIGPIPE, SIG_IGN);
    mh_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) { mh_err_set(err, MH_ENOMEM, "http: out of memory"); return NULL; }
    srv->loop = loop;
    srv->fn = fn;
    srv->ud = ud;
    srv->timeout_s = o.timeout_s ? o.timeout_s : DEFAULT_TIMEOUT_S;
    int fd = open_listener(host, o.port, &srv->port, err);
    if (fd < 0) { free(srv); return NULL; }
    srv->http = evhttp_new(mh_loop_base(loop));
    if (srv->http) srv->bound = evhttp_accept_socket_with_handle(srv->http, fd);
    if (!srv->bound) {
        if (srv->http) evhttp_free(srv->http);
        close(fd);
        free(srv);
        mh_err_set(err, MH_EIO, "http: cannot set up the server on %s:%d", host, o.port);
        return NULL;
    }
    evhttp_set_gencb(srv->http, on_request, srv);
    srv->max_body = o.max_body ? o.max_body : DEFAULT_MAX_BODY;
    if (mh_http_guard_init(srv, &o) != MH_OK) {
        mh_http_server_free(srv);
        mh_err_set(err, MH_ENOMEM, "http: out of memory");
        return NULL;
    }
    /* No evhttp limits: its 413 is an HTML page sent on an unread upload.
     * The connection filter caps the bytes of a request (hard_cap) and
     * answers in JSON; bodies over max_body get theirs in on_request. */
    evhttp_set_max_body_size(srv->http, -1);
    evhttp_set_max_headers_size(srv->http, -1);
    evhttp_set_timeout(srv->http, srv->timeout_s);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                               EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(srv->http, "text/plain; charset=utf-8");
    return srv;
}

int mh_http_server_port(const mh_http_server *srv) { return srv->port; }
int mh_http_server_inflight(const mh_http_server *srv) { return srv->inflight; }

void mh_http_server_stop_accepting(mh_http_server *srv)
{
    if (!srv->bound) return;
    evhttp_del_accept_socket(srv->http, srv->bound);   /* closes the fd */
    srv->bound = NULL;
    srv->listener = NULL;
}

void mh_http_server_free(mh_http_server *srv)
{
    if (!srv) return;
    mh_http_server_stop_accepting(srv);
    mh_http_guard_free(srv);
    evhttp_free(srv->http);              /* closes connections: on_conn_close */
    while (srv->live) {                  /* detached ones had theirs already */
        srv->live->closed = 1;
        srv->live->ev = NULL;
        net_done(srv->live);
    }
    free(srv);
}

/* ===== request fields ===== */

const char *mh_http_req_method(const mh_http_req *req) { return req->method; }
const char *mh_http_req_path(const mh_http_req *req) { return req->path; }
const char *mh_http_req_query(const mh_http_req *req) { return req->query; }
const char *mh_http_req_remote(const mh_http_req *req) { return req->remote; }
int mh_http_req_closed(const mh_http_req *req) { return req->closed; }
int mh_http_req_state(const mh_http_req *req) { return req->state; }

int mh_http_req_header(const mh_http_req *req, int i, const char **name, const char **value)
{
    if (!req->ev || req->state != ST_NEW) return 0;
    struct evkeyvalq *h = evhttp_request_get_input_headers(req->ev);
    struct evkeyval *kv = h->tqh_first;
    for (; kv && i > 0; i--) kv = kv->next.tqe_next;
    if (!kv) return 0;
    *name = kv->key;
    *value = kv->value;
    return 1;
}

const char *mh_http_req_body(mh_http_req *req, size_t *len)
{
    *len = 0;
    if (!req->ev || req->state != ST_NEW) return NULL;
    struct evbuffer *b = evhttp_request_get_input_buffer(req->ev);
    *len = evbuffer_get_length(b);
    return *len ? (const char *)evbuffer_pullup(b, -1) : "";
}

void mh_http_req_on_close(mh_http_req *req, mh_http_close_fn fn, void *ud)
{
    req->close_fn = fn;
    req->close_ud = ud;
}

/* ===== responses ===== */

static int begin_reply(mh_http_req *req, const char *fname, int status,
                       const char *const *headers, mh_err *err)
{
    if (req->state != ST_NEW)
        return mh_err_set(err, MH_EINVAL, "%s: the response was already started", fname);
    if (status < 100 || status > 599)
        return mh_err_set(err, MH_EINVAL, "%s: status %d is not in 100..599", fname, status);
    if (req->closed || !req->ev) {
        req->state = ST_DONE;
        return mh_err_set(err, MH_EIO, "%s: the client closed the connection", fname);
    }
    struct evkeyvalq *out = evhttp_request_get_output_headers(req->ev);
    for (int i = 0; headers && headers[i]; i += 2) {
        if (!headers[i + 1] || evhttp_add_header(out, headers[i], headers[i + 1]) != 0) {
            evhttp_clear_headers(out);
            return mh_err_set(err, MH_EINVAL, "%s: bad header '%s' (no value, or a newline in it)",
                              fname, headers[i]);
        }
    }
    stop_watch(req);
    return MH_OK;
}

int mh_http_respond(mh_http_req *req, int status, const char *const *headers,
                    const char *body, size_t len, mh_err *err)
{
    int rc = begin_reply(req, "respond", status, headers, err);
    if (rc != MH_OK) return rc;
    struct evbuffer *buf = evbuffer_new();
    if (!buf || (len && evbuffer_add(buf, body, len) != 0)) {
        if (buf) evbuffer_free(buf);
        return mh_err_set(err, MH_ENOMEM, "respond: out of memory for a %zu-byte body", len);
    }
    req->state = ST_DONE;
    evhttp_send_reply(req->ev, status, NULL, buf);   /* may complete at once */
    evbuffer_free(buf);
    return MH_OK;
}

int mh_http_start(mh_http_req *req, int status, const char *const *headers, mh_err *err)
{
    int rc = begin_reply(req, "start", status, headers, err);
    if (rc != MH_OK) return rc;
    req->state = ST_STREAMING;
    evhttp_send_reply_start(req->ev, status, NULL);
    /* A stream may be quiet for long (a slow model): only writes time out. */
    struct timeval w = { req->srv ? req->srv->timeout_s : DEFAULT_TIMEOUT_S, 0 };
    bufferevent_set_timeouts(evhttp_connection_get_bufferevent(req->evcon), NULL, &w);
    return MH_OK;
}

int mh_http_write(mh_http_req *req, const char *data, size_t len, mh_err *err)
{
    if (req->state != ST_STREAMING)
        return mh_err_set(err, MH_EINVAL, req->state == ST_NEW ? "write: call start first"
                                                               : "write: the response is finished");
    if (req->closed || !req->ev)
        return mh_err_set(err, MH_EIO, "write: the client closed the connection");
    if (!len) return MH_OK;              /* an empty chunk would end the body */
    struct evbuffer *buf = evbuffer_new();
    if (!buf || evbuffer_add(buf, data, len) != 0) {
        if (buf) evbuffer_free(buf);
        return mh_err_set(err, MH_ENOMEM, "write: out of memory for %zu bytes", len);
    }
    evhttp_send_reply_chunk(req->ev, buf);
    evbuffer_free(buf);
    return MH_OK;
}

int mh_http_finish(mh_http_req *req, mh_err *err)
{
    if (req->state != ST_STREAMING)
        return mh_err_set(err, MH_EINVAL, req->state == ST_NEW ? "finish: call start first"
                                                                : "finish: already finished");
    req->state = ST_DONE;
    if (req->closed || !req->ev)
        return mh_err_set(err, MH_EIO, "finish: the client closed the connection");
    evhttp_send_reply_end(req->ev);      /* may complete at once */
    return MH_OK;
}

/* ===== abort ===== */

/* Runs from the loop, never inside evhttp's own callbacks: freeing the
 * connection there would pull it from under evhttp. */
static void on_drop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    mh_http_req *req = arg;
    if (req->evcon) evhttp_connection_free(req->evcon);   /* runs on_conn_close */
}

/* Output bytes went to the socket: once all are gone, drop the connection,
 * so the client gets exactly the bytes written before the abort. */
static void on_drained(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    mh_http_req *req = arg;
    if (info->n_deleted && evbuffer_get_length(b) == 0 && req->drop)
        event_active(req->drop, EV_TIMEOUT, 0);
}

int mh_http_abort(mh_http_req *req, mh_err *err)
{
    if (req->aborted) return MH_OK;
    if (req->state == ST_DONE && !req->closed)
        return mh_err_set(err, MH_EINVAL, "abort: the response is already complete");
    req->state = ST_DONE;
    if (req->closed || !req->ev || !req->evcon || !req->srv)
        return mh_err_set(err, MH_EIO, "abort: the client closed the connection");
    stop_watch(req);
    req->drop = event_new(mh_loop_base(req->srv->loop), -1, 0, on_drop, req);
    if (!req->drop) return mh_err_set(err, MH_ENOMEM, "abort: out of memory");
    req->aborted = 1;
    struct evbuffer *out = bufferevent_get_output(evhttp_connection_get_bufferevent(req->evcon));
    if (evbuffer_get_length(out) == 0) {
        event_active(req->drop, EV_TIMEOUT, 0);
        return MH_OK;
    }
    req->drain = evbuffer_add_cb(out, on_drained, req);
    if (!req->drain) event_active(req->drop, EV_TIMEOUT, 0);   /* cannot wait: cut now */
    return MH_OK;
}
