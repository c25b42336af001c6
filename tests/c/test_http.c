/* test_http.c: C tests of engine/net — channels fed by several threads,
 * timers, the HTTP server (bind errors, responses, 413, streaming, client
 * disconnect) driven by a raw-socket client thread. Layer: tests (C only).
 * Every loop run has a watchdog timer so a bug fails instead of hanging. */
#include <arpa/inet.h>
#include <unistd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include "harness.h"
#include "mh/http.h"
#include "mh/loop.h"

/* ===== helpers ===== */

static int timed_out;

static void on_watchdog(mh_timer *t, void *ud)
{
    (void)t;
    timed_out = 1;
    mh_loop_stop(ud);
}

/* Runs loop until stopped, at most secs seconds; 0 when it timed out. */
static int run_bounded(mh_loop *loop, double secs)
{
    timed_out = 0;
    mh_timer *w = mh_timer_new(loop, secs, 0, on_watchdog, loop, NULL);
    mh_loop_run(loop, 0, NULL);
    mh_timer_free(w);
    return !timed_out;
}

static void msleep(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ===== channels ===== */

#define PRODUCERS 4
#define PER_PRODUCER 500

typedef struct { mh_chan *ch; int id; } producer_arg;

static void *producer(void *arg)
{
    producer_arg *p = arg;
    char buf[32];
    for (int i = 0; i < PER_PRODUCER; i++) {
        int n = snprintf(buf, sizeof buf, "%d", i);
        mh_chan_push(p->ch, p->id, buf, (size_t)n, NULL);
    }
    return NULL;
}

typedef struct { mh_loop *loop; int next[PRODUCERS]; int got, bad; } consumer;

static void on_msgs(mh_chan *ch, void *ud)
{
    consumer *c = ud;
    mh_chan_msg m;
    while (mh_chan_pop(ch, &m)) {
        if (m.tag < 0 || m.tag >= PRODUCERS || atoi(m.data) != c->next[m.tag] ||
            m.data[m.len] != 0)
            c->bad++;
        else
            c->next[m.tag]++;
        c->got++;
        free(m.data);
    }
    if (c->got == PRODUCERS * PER_PRODUCER) mh_loop_stop(c->loop);
}

static void test_chan_threads(void)
{
    mh_err err = { 0 };
    mh_loop *loop = mh_loop_new(&err);
    CHECK(loop);
    mh_chan *ch = mh_chan_new(loop, &err);
    CHECK(ch);
    consumer c = { .loop = loop };
    mh_chan_listen(ch, on_msgs, &c);
    pthread_t th[PRODUCERS];
    producer_arg pa[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        pa[i] = (producer_arg){ mh_chan_retain(ch), i };
        pthread_create(&th[i], NULL, producer, &pa[i]);
    }
    int ok = run_bounded(loop, 30.0);
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(th[i], NULL);
        mh_chan_release(pa[i].ch);
    }
    mh_chan_listen(ch, NULL, NULL);
    mh_chan_release(ch);
    mh_loop_release(loop);
    CHECK_MSG(ok, "timed out with %d of %d messages", c.got, PRODUCERS * PER_PRODUCER);
    CHECK(c.bad == 0);
    CHECK(c.got == PRODUCERS * PER_PRODUCER);
}

static void test_chan_close(void)
{
    mh_err err = { 0 };
    mh_loop *loop = mh_loop_new(&err);
    CHECK(loop);
    mh_chan *ch = mh_chan_new(loop, &err);
    CHECK(mh_chan_push(ch, 7, "a\0b", 3, &err) == MH_OK);
    mh_chan_close(ch);
    CHECK(mh_chan_push(ch, 1, "x", 1, &err) == MH_EINVAL);
    CHECK(strstr(err.msg, "closed") != NULL);
    CHECK(!mh_chan_done(ch));              /* one message still queued */
    mh_chan_msg m;
    CHECK(mh_chan_pop(ch, &m) == 1);
    CHECK(m.tag == 7 && m.len == 3 && !memcmp(m.data, "a\0b", 3));
    free(m.data);
    CHECK(mh_chan_pop(ch, &m) == 0);
    CHECK(mh_chan_done(ch));
    mh_loop_release(loop);                 /* before the channel: allowed */
    mh_chan_release(ch);
}

/* ===== timers ===== */

typedef struct { mh_loop *loop; int n; } ticker;

static void on_tick(mh_timer *t, void *ud)
{
    (void)t;
    ticker *k = ud;
    if (++k->n == 3) mh_loop_stop(k->loop);
}

static void test_timers(void)
{
    mh_err err = { 0 };
    mh_loop *loop = mh_loop_new(&err);
    CHECK(loop);
    ticker k = { loop, 0 };
    mh_timer *t = mh_timer_new(loop, 0.01, 1, on_tick, &k, &err);
    CHECK(t);
    CHECK(mh_timer_new(loop, -1, 0, on_tick, &k, &err) == NULL && err.code == MH_EINVAL);
    int ok = run_bounded(loop, 30.0);
    mh_timer_free(t);
    mh_loop_release(loop);
    CHECK(ok);
    CHECK(k.n == 3);
}

/* ===== HTTP ===== */

typedef struct {
    int port;
    const char *request;
    size_t request_len;
    int hangup_after_ms;    /* > 0: close after reading this long */
    char resp[65536];
    size_t resp_len;
    mh_chan *done;          /* pushed when the client is finished */
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { 30, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        send(fd, c->request, c->request_len, MSG_NOSIGNAL);
        if (c->hangup_after_ms) msleep(c->hangup_after_ms);
        ssize_t n;
        while (!c->hangup_after_ms && c->resp_len < sizeof c->resp - 1 &&
               (n = recv(fd, c->resp + c->resp_len, sizeof c->resp - 1 - c->resp_len, 0)) > 0)
            c->resp_len += (size_t)n;
    }
    c->resp[c->resp_len] = 0;
    close(fd);
    mh_chan_push(c->done, 0, "", 0, NULL);
    return NULL;
}

typedef struct {
    mh_loop *loop;
    int calls, closed_seen;
    int stream;             /* 1: stream three chunks with timers */
    mh_http_req *held;
    int chunk;
    mh_timer *t;
} app;

static void on_client_done(mh_chan *ch, void *ud)
{
    mh_chan_msg m;
    while (mh_chan_pop(ch, &m)) free(m.data);
    mh_loop_stop(((app *)ud)->loop);
}

static void on_req_closed(mh_http_req *req, void *ud)
{
    (void)req;
    ((app *)ud)->closed_seen++;
}

static void on_chunk(mh_timer *t, void *ud)
{
    app *a = ud;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "chunk%d;", ++a->chunk);
    if (mh_http_write(a->held, buf, (size_t)n, NULL) != MH_OK || a->chunk == 3) {
        mh_http_finish(a->held, NULL);
        mh_http_req_release(a->held);
        a->held = NULL;
        mh_timer_free(t);
        a->t = NULL;
    }
}

static void handler(mh_http_req *req, void *ud)
{
    app *a = ud;
    a->calls++;
    if (a->stream) {
        static const char *const h[] = { "Content-Type", "text/event-stream", NULL };
        mh_http_req_on_close(req, on_req_closed, a);
        mh_http_start(req, 200, h, NULL);
        a->held = req;
        a->t = mh_timer_new(a->loop, 0.02, 1, on_chunk, a, NULL);
        return;
    }
    size_t n;
    const char *body = mh_http_req_body(req, &n);
    char out[256];
    int len = snprintf(out, sizeof out, "%s %s q=%s body=%.*s", mh_http_req_method(req),
                       mh_http_req_path(req), mh_http_req_query(req), (int)n, body);
    static const char *const h[] = { "X-Test", "yes", NULL };
    mh_http_respond(req, 200, h, out, (size_t)len, NULL);
    mh_http_req_release(req);
}

/* Runs one client request against srv's loop; the response lands in c. */
static int roundtrip(mh_loop *loop, app *a, client *c)
{
    mh_chan *done = mh_chan_new(loop, NULL);
    mh_chan_listen(done, on_client_done, a);
    c->done = mh_chan_retain(done);
    pthread_t th;
    pthread_create(&th, NULL, client_main, c);
    int ok = run_bounded(loop, 30.0);
    pthread_join(th, NULL);
    mh_chan_release(c->done);
    mh_chan_listen(done, NULL, NULL);
    mh_chan_release(done);
    return ok;
}

static void test_http_server(void)
{
    mh_err err = { 0 };
    mh_loop *loop = mh_loop_new(&err);
    CHECK(loop);
    app a = { .loop = loop };
    mh_http_opts o = { .max_body = 100 };
    mh_http_server *srv = mh_http_server_new(loop, &o, handler, &a, &err);
    CHECK_MSG(srv, "%s", err.msg);
    int port = mh_http_server_port(srv);
    CHECK(port > 0);

    mh_http_opts same = { .port = port };
    CHECK(mh_http_server_new(loop, &same, handler, &a, &err) == NULL);
    CHECK(err.code == MH_EIO);
    CHECK_MSG(strstr(err.msg, "in use") != NULL, "%s", err.msg);

    static client c1;
    c1 = (client){ .port = port };
    c1.request = "POST /x/y?a=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                 "Content-Length: 5\r\n\r\nhello";
    c1.request_len = strlen(c1.request);
    CHECK(roundtrip(loop, &a, &c1));
    CHECK_MSG(strstr(c1.resp, "HTTP/1.1 200 OK\r\n") == c1.resp, "%s", c1.resp);
    CHECK(strstr(c1.resp, "X-Test: yes\r\n"));
    CHECK(strstr(c1.resp, "\r\n\r\nPOST /x/y q=a=1 body=hello"));

    static client c2;
    c2 = (client){ .port = port };
    char big[512];
    snprintf(big, sizeof big, "POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
             "Content-Length: 300\r\n\r\n%0300d", 0);
    c2.request = big;
    c2.request_len = strlen(big);
    int before = a.calls;
    CHECK(roundtrip(loop, &a, &c2));
    CHECK_MSG(strstr(c2.resp, "HTTP/1.1 413") == c2.resp, "%s", c2.resp);
    CHECK(a.calls == before);               /* the handler never saw it */
    CHECK(mh_http_server_inflight(srv) == 0);
    mh_http_server_free(srv);
    mh_loop_release(loop);
}

static void test_http_stream(void)
{
    mh_err err = { 0 };
    mh_loop *loop = mh_loop_new(&err);
    CHECK(loop);
    app a = { .loop = loop, .stream = 1 };
    mh_http_server *srv = mh_http_server_new(loop, NULL, handler, &a, &err);
    CHECK(srv);
    static client c;
    c = (client){ .port = mh_http_server_port(srv) };
    /* Connection: close, so the client reads to EOF after the last chunk */
    c.request = "GET /s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    c.request_len = strlen(c.request);
    CHECK(roundtrip(loop, &a, &c));
    CHECK_MSG(strstr(c.resp, "Transfer-Encoding: chunked"), "%s", c.resp);
    CHECK(strstr(c.resp, "7\r\nchunk1;\r\n7\r\nchunk2;\r\n7\r\nchunk3;\r\n0\r\n\r\n"));
    CHECK(a.closed_seen == 0);
    CHECK(mh_http_server_inflight(srv) == 0);

    /* a client that hangs up mid-stream: writes fail, on_close fires */
    static client h;
    h = (client){ .port = mh_http_server_port(srv), .hangup_after_ms = 10 };
    h.request = c.request;
    h.request_len = c.request_len;
    a.chunk = -1000;                        /* effectively endless */
    CHECK(roundtrip(loop, &a, &h));
    for (int i = 0; i < 50 && a.held; i++) mh_loop_run(loop, 1, NULL);
    CHECK(a.held == NULL);
    CHECK(a.closed_seen == 1);
    CHECK(mh_http_server_inflight(srv) == 0);
    mh_http_server_free(srv);
    mh_loop_release(loop);
}

/* A handler that never answers: the server's free must close it cleanly. */
static void keep_handler(mh_http_req *req, void *ud)
{
    *(mh_http_req **)ud = req;
}

static void test_http_free_with_pending(void)
{
    mh_err err = { 0 };
    mh_loop *loop = mh_loop_new(&err);
    CHECK(loop);
    mh_http_req *held = NULL;
    mh_http_server *srv = mh_http_server_new(loop, NULL, keep_handler, &held, &err);
    CHECK(srv);
    static client c;
    c = (client){ .port = mh_http_server_port(srv), .hangup_after_ms = 1 };
    c.request = "GET /p HTTP/1.1\r\nHost: t\r\n\r\n";
    c.request_len = strlen(c.request);
    app a = { .loop = loop };
    CHECK(roundtrip(loop, &a, &c));
    for (int i = 0; i < 50 && !held; i++) mh_loop_run(loop, 1, NULL);
    CHECK(held != NULL);
    /* the client hung up before any reply: the EOF watch notices */
    for (int i = 0; i < 50 && !mh_http_req_closed(held); i++) mh_loop_run(loop, 1, NULL);
    CHECK(mh_http_req_closed(held));
    CHECK(mh_http_respond(held, 200, NULL, "x", 1, &err) == MH_EIO);
    CHECK(mh_http_server_inflight(srv) == 0);
    mh_http_req_release(held);
    mh_http_server_free(srv);
    mh_loop_release(loop);
}

/* ===== connection guard ===== */

static int idle_socket(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    return fd;
}

/* Did the server close fd (EOF) without sending a byte? Waits at most 30 s. */
static int closed_by_peer(int fd)
{
    char c;
    struct timeval tv = { 30, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return recv(fd, &c, 1, 0) == 0;
}

/* At the cap (2) idle connections make room: the oldest is shut when a new
 * one comes, so a real request still gets its answer. */
static void test_http_connection_cap(void)
{
    mh_err err = { 0 };
    mh_loop *loop = mh_loop_new(&err);
    app a = { .loop = loop };
    mh_http_opts o = { .max_connections = 2 };
    mh_http_server *srv = mh_http_server_new(loop, &o, handler, &a, &err);
    CHECK_MSG(srv, "%s", err.msg);
    if (!srv) return;
    CHECK(mh_http_server_max_connections(srv) == 2);
    int idle[3];
    for (int i = 0; i < 3; i++) idle[i] = idle_socket(mh_http_server_port(srv));
    static client c;
    c = (client){ .port = mh_http_server_port(srv) };
    c.request = "GET /cap HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    c.request_len = strlen(c.request);
    CHECK(roundtrip(loop, &a, &c));
    CHECK_MSG(strstr(c.resp, "HTTP/1.1 200 OK\r\n") == c.resp, "%s", c.resp);
    CHECK(closed_by_peer(idle[0]));          /* the oldest idle one made room */
    CHECK(mh_http_server_connections(srv) <= 3);
    for (int i = 0; i < 3; i++) if (idle[i] >= 0) close(idle[i]);
    mh_http_server_free(srv);
    mh_loop_release(loop);
}

/* Client for the keep-alive case: the first request, its whole answer,
 * then the second request (so it is read on its own, after the reply). */
typedef struct { client *c; const char *second; size_t second_len; } two_step;

static void *two_step_main(void *arg)
{
    two_step *t = arg;
    client *c = t->c;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { 30, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ssize_t n = -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        send(fd, c->request, c->request_len, MSG_NOSIGNAL);
        while (!strstr(c->resp, "body=") &&
               (n = recv(fd, c->resp + c->resp_len, sizeof c->resp - 1 - c->resp_len, 0)) > 0)
            c->resp[c->resp_len += (size_t)n] = 0;
        for (size_t off = 0; off < t->second_len && n != 0; off += (size_t)n)
            if ((n = send(fd, t->second + off, t->second_len - off, MSG_NOSIGNAL)) <= 0) break;
        /* to the end of the 413's JSON (the server would linger 5 s for the
         * client to close; the receive timeout only bounds a hang) */
        while (c->resp_len < sizeof c->resp - 1 && !strstr(c->resp, "request_too_large\"}}") &&
               (n = recv(fd, c->resp + c->resp_len, sizeof c->resp - 1 - c->resp_len, 0)) > 0)
            c->resp[c->resp_len += (size_t)n] = 0;
    }
    c->resp[c->resp_len] = 0;
    close(fd);
    mh_chan_push(c->done, 0, "", 0, NULL);
    return NULL;
}

/* A kept-alive connection whose second request runs past the hard cap gets
 * the first answer, then the JSON 413, then a clean close. */
static void test_http_hard_cap_keepalive(void)
{
    mh_err err = { 0 };
    mh_loop *loop = mh_loop_new(&err);
    app a = { .loop = loop };
    mh_http_opts o = { .max_body = 100, .max_headers = 1024 };
    mh_http_server *srv = mh_http_server_new(loop, &o, handler, &a, &err);
    CHECK_MSG(srv, "%s", err.msg);
    if (!srv) return;
    size_t big = 400000, head = 200;
    char *req = malloc(head + big);
    int n = snprintf(req, head, "POST /second HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", big);
    memset(req + n, 'x', big);
    static client c;
    c = (client){ .port = mh_http_server_port(srv) };
    c.request = "GET /first HTTP/1.1\r\nHost: t\r\n\r\n";
    c.request_len = strlen(c.request);
    two_step t = { &c, req, (size_t)n + big };
    mh_chan *done = mh_chan_new(loop, NULL);
    mh_chan_listen(done, on_client_done, &a);
    c.done = mh_chan_retain(done);
    pthread_t th;
    pthread_create(&th, NULL, two_step_main, &t);
    CHECK(run_bounded(loop, 30.0));
    pthread_join(th, NULL);
    mh_chan_release(c.done);
    mh_chan_listen(done, NULL, NULL);
    mh_chan_release(done);
    CHECK_MSG(strstr(c.resp, "HTTP/1.1 200 OK\r\n") == c.resp, "%s", c.resp);
    const char *second = strstr(c.resp + 1, "HTTP/1.1 413");
    CHECK_MSG(second && strstr(second, "application/json") && strstr(second, "(headers + body)"),
              "%s", c.resp);
    CHECK(a.calls == 1);                     /* the handler never saw the second */
    free(req);
    mh_http_server_free(srv);
    mh_loop_release(loop);
}

int main(void)
{
    TEST_RUN(test_http_connection_cap);
    TEST_RUN(test_http_hard_cap_keepalive);
    (void)test_skipped;
    TEST_RUN(test_chan_threads);
    TEST_RUN(test_chan_close);
    TEST_RUN(test_timers);
    TEST_RUN(test_http_server);
    TEST_RUN(test_http_stream);
    TEST_RUN(test_http_free_with_pending);
    return TEST_REPORT();
}
