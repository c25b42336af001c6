/* http_internal.h: what http_server.c (requests, responses) and
 * http_guard.c (the connection guard) share: the server struct and the
 * calls between them. Layer: engine/net (private; libevent, no lua.h). */
#ifndef MH_HTTP_INTERNAL_H
#define MH_HTTP_INTERNAL_H

#include <stdbool.h>
#include <time.h>
#include <event2/event.h>
#include <event2/http.h>
#include "mh/http.h"

#define DEFAULT_MAX_BODY    (16u << 20)
#define DEFAULT_MAX_HEADERS (64u << 10)
#define DEFAULT_TIMEOUT_S   60
#define DEFAULT_HEADER_S    30
#define LISTEN_BACKLOG      128
#define MAX_CONN_CEIL       4096      /* default cap never above this */
#define LINGER_S            5         /* after a hard-cap 413: read and drop */
#define ACCEPT_RETRY_MS     250       /* paused on EMFILE: try again after */
#define WARN_EVERY_S        10        /* accept warnings: one per period */

typedef struct conn conn;

enum { ST_NEW = 0, ST_STREAMING = 1, ST_DONE = 2 };

struct mh_http_server {
    mh_loop *loop;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;   /* NULL once we stop accepting */
    int port;
    int timeout_s;
    size_t max_body;                     /* larger bodies: 413 with a JSON error */
    mh_http_handler fn;
    void *ud;
    int inflight;
    mh_http_req *live;                   /* requests the net side still holds */
    /* connection guard */
    struct evconnlistener *listener;
    int max_conns, nconns, paused;       /* paused: 1 at the cap, 2 on an accept error */
    int header_s;                        /* a request must arrive within this */
    size_t hard_cap;                     /* bytes a connection may send for one request */
    conn *conns;
    struct event *retry;                 /* re-enables accepting after EMFILE */
    time_t warned_at;
    long warn_dropped;
    mh_http_server *next_srv;            /* all servers: the listener error hook finds its own */
};

/* One accepted connection. libevent 2.1 tells nothing when evhttp drops a
 * connection except its close callback, so each connection gets ours once
 * evhttp has made it (a moment after accept); it forwards to the request
 * in flight (on_conn_close). Bytes are counted as they land in the input
 * buffer (an evbuffer callback, which evhttp does not replace). */
struct conn {
    mh_http_server *srv;                 /* NULL after the server was freed */
    struct bufferevent *bev;             /* ours, made for evhttp in on_new_conn */
    struct evhttp_connection *evcon;     /* NULL until adopted */
    struct evbuffer_cb_entry *incb;      /* byte counter on the input */
    struct event *deadline;              /* the request must arrive before it */
    struct event *adopt;                 /* one-shot: finds evcon after accept */
    mh_http_req *req;                    /* the request in flight, if any */
    size_t unread;                       /* bytes since the last complete request */
    int over;                            /* past the hard cap: 413 sent, dropping input */
    conn *prev, *next;
};

/* ===== http_guard.c ===== */
/* Counts connections, caps them, arms the request deadline (after
 * srv->bound, srv->loop, srv->max_body are set). MH_ENOMEM. */
int mh_http_guard_init(mh_http_server *srv, const mh_http_opts *o);
/* Before evhttp_free: the connections forget srv. */
void mh_http_guard_free(mh_http_server *srv);
/* A whole request came in on evcon (req may be NULL: rejected). 0 when the
 * connection is not one of the guard's (then the request keeps the close
 * callback itself). */
int mh_http_guard_request_in(mh_http_server *srv, struct evhttp_connection *evcon, mh_http_req *req);
/* The reply to req went out; 0 when the connection is not the guard's. */
int mh_http_guard_reply_out(mh_http_server *srv, struct evhttp_connection *evcon, mh_http_req *req);

/* ===== http_server.c ===== */
/* The connection of req is going down before its reply was written. */
void mh_http_on_conn_close(struct evhttp_connection *evcon, void *req);

#endif
