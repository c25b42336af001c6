/* http_guard.c: the connection guard of the HTTP server — counts open
 * connections (evhttp's bufferevent hook + close callback), caps them
 * (evicting the oldest idle one, pausing accept when all are busy or on
 * EMFILE, with rate-limited warnings), gives each request a deadline to
 * arrive, and answers uploads past the hard cap with the JSON 413.
 * Layer: engine/net (pure C11 + libevent; no lua.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include "http_internal.h"

static int evict_idle(mh_http_server *srv);

/* The listener's error hook is handed evhttp's pointer, not ours: it finds
 * its server in this list (loop thread only). */
static mh_http_server *g_servers;

/* One line per WARN_EVERY_S at most: a flood of failing accepts must not
 * become a flood of log lines (this once wrote 366 MB in 12 s). */
static void guard_warn(mh_http_server *srv, const char *what)
{
    time_t now = time(NULL);
    if (srv->warned_at && now - srv->warned_at < WARN_EVERY_S) { srv->warn_dropped++; return; }
    fprintf(stderr, "moonhub: http: %s (%d connections open, cap %d", what, srv->nconns,
            srv->max_conns);
    if (srv->warn_dropped) fprintf(stderr, "; %ld more like it not shown", srv->warn_dropped);
    fputs(")\n", stderr);
    srv->warned_at = now;
    srv->warn_dropped = 0;
}

static void accept_pause(mh_http_server *srv)
{
    if (srv->paused || !srv->listener) return;
    evconnlistener_disable(srv->listener);
    srv->paused = 1;
}

static void accept_resume(mh_http_server *srv)
{
    if (!srv->paused || !srv->listener || srv->nconns >= srv->max_conns) return;
    if (srv->retry && evtimer_pending(srv->retry, NULL)) return;   /* EMFILE: wait it out */
    srv->paused = 0;
    evconnlistener_enable(srv->listener);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    accept_resume(arg);
}

/* accept() failed for a reason other than a retry (EMFILE, ENFILE, ENOBUFS):
 * stop polling the listener for a moment instead of spinning on it. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)arg;
    int e = EVUTIL_SOCKET_ERROR();
    mh_http_server *srv = g_servers;
    while (srv && srv->listener != lev) srv = srv->next_srv;
    if (!srv) return;
    char what[160];
    snprintf(what, sizeof what, "accept failed: %s; not accepting for %d ms", strerror(e),
             ACCEPT_RETRY_MS);
    guard_warn(srv, what);
    evict_idle(srv);                     /* frees an fd for the next real client */
    accept_pause(srv);
    struct timeval tv = { 0, ACCEPT_RETRY_MS * 1000 };
    if (srv->retry) evtimer_add(srv->retry, &tv);
}

/* A cap from the process's fd limit, leaving room for model files, the
 * database, pipes and the loop's own descriptors. */
static int default_max_conns(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return MAX_CONN_CEIL;
    long n = (long)rl.rlim_cur, reserve = n / 4;
    if (reserve < 16) reserve = 16;
    if (reserve > 128) reserve = 128;
    n -= reserve;
    return n < 1 ? 1 : n > MAX_CONN_CEIL ? MAX_CONN_CEIL : (int)n;
}

static void conn_arm(conn *c, int secs)
{
    struct timeval tv = { secs, 0 };
    if (c->deadline) evtimer_add(c->deadline, &tv);
}

/* The request did not arrive in time (or a rejected upload lingered long
 * enough): shut the socket; evhttp reads the end of input and lets go. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    conn *c = arg;
    int sfd = c->srv ? bufferevent_getfd(c->bev) : -1;
    if (sfd >= 0) shutdown(sfd, SHUT_RDWR);
}

/* Past the hard cap evhttp would answer with its own HTML 413 and close on
 * an unread upload (the client sees a reset). Instead our JSON 413 goes
 * out, the rest of the upload is read and dropped before evhttp sees it,
 * and the connection closes when the client does, or after LINGER_S. */
static void reject_over_cap(conn *c)
{
    c->over = 1;
    char body[320], msg[512];
    int n = snprintf(body, sizeof body, "{\"error\":{\"message\":\"the request is larger than %zu "
                     "bytes (headers + body)\",\"type\":\"invalid_request_error\",\"param\":null,"
                     "\"code\":\"request_too_large\"}}", c->srv->hard_cap);
    int m = snprintf(msg, sizeof msg, "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s", n, body);
    /* Straight to the socket: evhttp is mid-read and its write callback
     * would run a stale completion of the previous reply. A fresh send
     * buffer takes these few hundred bytes whole. */
    int fd = bufferevent_getfd(c->bev);
    if (fd >= 0 && m > 0) (void)!send(fd, msg, (size_t)m, MSG_NOSIGNAL | MSG_DONTWAIT);
    conn_arm(c, LINGER_S);
}

/* Runs as bytes land in the input buffer, before evhttp's read callback. */
static void on_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
    conn *c = arg;
    if (!info->n_added || !c->srv) return;
    if (!c->over && c->req == NULL && c->unread + info->n_added > c->srv->hard_cap)
        reject_over_cap(c);
    if (c->over) {
        evbuffer_drain(in, evbuffer_get_length(in));   /* evhttp never sees it */
        return;
    }
    c->unread += info->n_added;
}

static void conn_forget(conn *c)
{
    if (c->incb) evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->incb);
    if (c->deadline) event_free(c->deadline);
    if (c->adopt) event_free(c->adopt);
    c->incb = NULL;
    c->deadline = c->adopt = NULL;
}

/* The connection goes (evhttp frees it next): tell the request in flight,
 * count it out, maybe accept again. */
static void on_evcon_close(struct evhttp_connection *evcon, void *arg)
{
    conn *c = arg;
    mh_http_server *srv = c->srv;
    if (c->req) mh_http_on_conn_close(evcon, c->req);
    conn_forget(c);
    if (srv) {
        if (c->prev) c->prev->next = c->next;
        else srv->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        srv->nconns--;
        accept_resume(srv);
    }
    bufferevent_decref(c->bev);
    free(c);
}

/* A moment after accept evhttp has wrapped our bufferevent: its callback
 * argument is the connection, whose close callback becomes ours. A
 * connection evhttp dropped at once has no callbacks left. */
static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    conn *c = arg;
    bufferevent_data_cb rd = NULL;
    void *evcon = NULL;
    bufferevent_getcb(c->bev, &rd, NULL, NULL, &evcon);
    if (rd && evcon && c->srv) {
        c->evcon = evcon;
        evhttp_connection_set_closecb(c->evcon, on_evcon_close, c);
        return;
    }
    on_evcon_close(NULL, c);
}

/* Over the cap: the oldest connection with no request in flight (idle or
 * still sending one) is shut, as nginx reuses its idle keep-alive ones, so
 * a crowd of idle sockets cannot lock out the next real client. 0 when
 * every connection is busy. */
static int evict_idle(mh_http_server *srv)
{
    conn *last = srv->conns;
    while (last && last->next) last = last->next;
    for (conn *c = last; c; c = c->prev) {
        int fd = c->req || c->over ? -1 : bufferevent_getfd(c->bev);
        if (fd < 0) continue;
        guard_warn(srv, "connection cap reached; closing the oldest idle connection");
        shutdown(fd, SHUT_RDWR);
        c->over = 1;                     /* evicted: not picked twice */
        return 1;
    }
    return 0;
}

/* evhttp asks for each new connection's bufferevent: ours counts its bytes,
 * arms its request deadline and pauses accepting at the cap. NULL (out of
 * memory) lets evhttp make a plain one, not counted. */
static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
    mh_http_server *srv = arg;
    conn *c = calloc(1, sizeof *c);
    if (c) c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c && c->bev) {
        c->srv = srv;
        c->deadline = evtimer_new(base, on_deadline, c);
        c->adopt = evtimer_new(base, on_adopt, c);
        c->incb = evbuffer_add_cb(bufferevent_get_input(c->bev), on_input, c);
    }
    if (!c || !c->bev || !c->deadline || !c->adopt || !c->incb) {
        if (c && c->bev) { conn_forget(c); bufferevent_free(c->bev); }
        free(c);
        return NULL;
    }
    bufferevent_incref(c->bev);          /* on_adopt may find it dropped already */
    event_active(c->adopt, EV_TIMEOUT, 0);
    conn_arm(c, srv->header_s);
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    if (++srv->nconns > srv->max_conns && !evict_idle(srv)) {
        guard_warn(srv, "connection cap reached and every connection busy; not accepting "
                   "until one closes");
        accept_pause(srv);
    }
    return c->bev;
}

static conn *conn_of(mh_http_server *srv, struct evhttp_connection *evcon)
{
    for (conn *c = srv && evcon ? srv->conns : NULL; c; c = c->next)
        if (c->evcon == evcon) return c;
    return NULL;
}

/* A whole request arrived: its handler's time is not the client's fault.
 * 0 when the connection is not one of ours. */
int mh_http_guard_request_in(mh_http_server *srv, struct evhttp_connection *evcon, mh_http_req *req)
{
    conn *c = conn_of(srv, evcon);
    if (!c) return 0;
    evtimer_del(c->deadline);
    c->unread = 0;
    c->req = req;
    return 1;
}

/* The reply went out and the connection stays: the next request (or the
 * client's goodbye) must come within the deadline too. */
int mh_http_guard_reply_out(mh_http_server *srv, struct evhttp_connection *evcon, mh_http_req *req)
{
    conn *c = conn_of(srv, evcon);
    if (!c) return 0;
    if (c->req == req) c->req = NULL;
    if (!c->over) conn_arm(c, srv->header_s);
    return 1;
}

int mh_http_guard_init(mh_http_server *srv, const mh_http_opts *o)
{
    srv->max_conns = o->max_connections > 0 ? o->max_connections : default_max_conns();
    srv->header_s = o->header_timeout_s > 0 ? o->header_timeout_s : DEFAULT_HEADER_S;
    srv->hard_cap = srv->max_body + (o->max_headers ? o->max_headers : DEFAULT_MAX_HEADERS) +
                    ((size_t)64 << 10);
    srv->retry = evtimer_new(mh_loop_base(srv->loop), on_retry, srv);
    srv->listener = evhttp_bound_socket_get_listener(srv->bound);
    if (!srv->retry || !srv->listener) return MH_ENOMEM;
    evconnlistener_set_error_cb(srv->listener, on_accept_error);
    evhttp_set_bevcb(srv->http, on_new_conn, srv);
    srv->next_srv = g_servers;
    g_servers = srv;
    return MH_OK;
}

/* The server goes: its connections may be freed later (deferred), so they
 * forget it now. */
void mh_http_guard_free(mh_http_server *srv)
{
    for (mh_http_server **p = &g_servers; *p; p = &(*p)->next_srv)
        if (*p == srv) { *p = srv->next_srv; break; }
    for (conn *c = srv->conns; c; c = c->next) c->srv = NULL;   /* closed by evhttp_free */
    if (srv->retry) event_free(srv->retry);
    srv->retry = NULL;
}

int mh_http_server_connections(const mh_http_server *srv) { return srv->nconns; }
int mh_http_server_max_connections(const mh_http_server *srv) { return srv->max_conns; }
