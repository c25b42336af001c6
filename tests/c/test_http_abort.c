/* test_http_abort.c: C tests of mh_http_abort and streamed bodies with a
 * Content-Length — the client must get exactly the bytes written before the
 * abort, then EOF (a cut transfer), for chunked and fixed-length bodies.
 * Layer: tests (C only). A raw-socket client thread reads to EOF; every loop
 * run has a watchdog so a bug fails instead of hanging. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include "harness.h"
#include "mh/http.h"
#include "mh/loop.h"

#define BIG (2u << 20)          /* more than a socket buffer: abort must wait */

typedef enum { MODE_CHUNKED, MODE_SIZED_CUT, MODE_SIZED_FULL, MODE_BEFORE_START,
               MODE_AFTER_RESPOND } mode;

typedef struct {
    mh_loop *loop;
    mode m;
    char *big;
    int close_seen, abort_rc, second_rc, misuse_rc;
} app;

typedef struct {
    int port;
    char head[1024];        /* the first bytes of the response */
    size_t head_len, total, body;   /* total bytes; bytes after the header block */
    mh_chan *done;
} client;

static int timed_out;

static void on_watchdog(mh_timer *t, void *ud)
{
    (void)t;
    timed_out = 1;
    mh_loop_stop(ud);
}

static void *client_main(void *arg)
{
    client *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { 30, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char rq[] = "GET /f HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        send(fd, rq, sizeof rq - 1, MSG_NOSIGNAL);
        char buf[65536];
        ssize_t n;
        while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
            size_t keep = sizeof c->head - 1 - c->head_len;
            if (keep > (size_t)n) keep = (size_t)n;
            memcpy(c->head + c->head_len, buf, keep);
            c->head_len += keep;
            c->total += (size_t)n;
        }
    }
    c->head[c->head_len] = 0;
    char *end = strstr(c->head, "\r\n\r\n");
    c->body = end ? c->total - (size_t)(end + 4 - c->head) : 0;
    close(fd);
    mh_chan_push(c->done, 0, "", 0, NULL);
    return NULL;
}

static void on_client_done(mh_chan *ch, void *ud)
{
    mh_chan_msg m;
    while (mh_chan_pop(ch, &m)) free(m.data);
    mh_loop_stop(((app *)ud)->loop);
}

static void on_close(mh_http_req *req, void *ud)
{
    (void)req;
    ((app *)ud)->close_seen++;
}

/* Answers at once from inside evhttp's callback: abort must defer the close. */
static void handler(mh_http_req *req, void *ud)
{
    app *a = ud;
    char len[32];
    snprintf(len, sizeof len, "%u", 2 * BIG);
    const char *sized[] = { "Content-Length", len, NULL };
    mh_http_req_on_close(req, on_close, a);
    switch (a->m) {
    case MODE_CHUNKED:
        mh_http_start(req, 200, NULL, NULL);
        mh_http_write(req, "hello", 5, NULL);
        a->abort_rc = mh_http_abort(req, NULL);
        a->second_rc = mh_http_abort(req, NULL);
        a->misuse_rc = mh_http_write(req, "x", 1, NULL);
        break;
    case MODE_SIZED_CUT:
        mh_http_start(req, 206, sized, NULL);
        mh_http_write(req, a->big, BIG, NULL);
        a->abort_rc = mh_http_abort(req, NULL);
        break;
    case MODE_SIZED_FULL:
        mh_http_start(req, 200, sized, NULL);
        mh_http_write(req, a->big, BIG, NULL);
        mh_http_write(req, a->big, BIG, NULL);
        mh_http_finish(req, NULL);
        break;
    case MODE_BEFORE_START:
        a->abort_rc = mh_http_abort(req, NULL);
        break;
    case MODE_AFTER_RESPOND:
        mh_http_respond(req, 200, NULL, "ok", 2, NULL);
        a->abort_rc = mh_http_abort(req, NULL);
        break;
    }
    mh_http_req_release(req);
}

/* One request in mode m against a fresh server; the response lands in c. */
static void run_case(app *a, mode m, client *c)
{
    mh_err err = { 0 };
    a->m = m;
    a->close_seen = 0;
    a->abort_rc = a->second_rc = a->misuse_rc = -1;
    mh_http_server *srv = mh_http_server_new(a->loop, NULL, handler, a, &err);
    CHECK_MSG(srv, "%s", err.msg);
    if (!srv) return;
    *c = (client){ .port = mh_http_server_port(srv) };
    mh_chan *done = mh_chan_new(a->loop, NULL);
    mh_chan_listen(done, on_client_done, a);
    c->done = mh_chan_retain(done);
    pthread_t th;
    pthread_create(&th, NULL, client_main, c);
    timed_out = 0;
    mh_timer *w = mh_timer_new(a->loop, 30.0, 0, on_watchdog, a->loop, NULL);
    mh_loop_run(a->loop, 0, NULL);
    mh_timer_free(w);
    pthread_join(th, NULL);
    CHECK(!timed_out);
    for (int i = 0; i < 20 && mh_http_server_inflight(srv); i++) mh_loop_run(a->loop, 1, NULL);
    CHECK(mh_http_server_inflight(srv) == 0);
    CHECK(a->close_seen == 0);               /* a server-side cut is no client hang-up */
    mh_chan_release(c->done);
    mh_chan_listen(done, NULL, NULL);
    mh_chan_release(done);
    mh_http_server_free(srv);
}

static void test_abort(void)
{
    mh_err err = { 0 };
    app a = { .loop = mh_loop_new(&err) };
    CHECK(a.loop);
    a.big = malloc(BIG);
    CHECK(a.big);
    if (!a.loop || !a.big) return;
    memset(a.big, 'x', BIG);
    static client c;

    run_case(&a, MODE_CHUNKED, &c);
    CHECK(a.abort_rc == MH_OK && a.second_rc == MH_OK && a.misuse_rc == MH_EINVAL);
    CHECK_MSG(strstr(c.head, "Transfer-Encoding: chunked"), "%s", c.head);
    CHECK_MSG(strstr(c.head, "\r\n\r\n5\r\nhello\r\n"), "%s", c.head);
    CHECK(strstr(c.head, "0\r\n\r\n") == NULL);   /* no last chunk */

    run_case(&a, MODE_SIZED_CUT, &c);
    CHECK(a.abort_rc == MH_OK);
    CHECK_MSG(strstr(c.head, "HTTP/1.1 206") == c.head, "%s", c.head);
    CHECK(strstr(c.head, "Transfer-Encoding") == NULL);
    CHECK_MSG(c.body == BIG, "got %zu body bytes of %u", c.body, BIG);

    run_case(&a, MODE_SIZED_FULL, &c);
    CHECK(strstr(c.head, "Transfer-Encoding") == NULL);
    CHECK_MSG(c.body == 2 * BIG, "got %zu body bytes of %u", c.body, 2 * BIG);

    run_case(&a, MODE_BEFORE_START, &c);
    CHECK(a.abort_rc == MH_OK);
    CHECK_MSG(c.total == 0, "got %zu bytes", c.total);

    run_case(&a, MODE_AFTER_RESPOND, &c);
    CHECK(a.abort_rc == MH_EINVAL);
    CHECK_MSG(strstr(c.head, "\r\n\r\nok"), "%s", c.head);

    free(a.big);
    mh_loop_release(a.loop);
}

int main(void)
{
    TEST_RUN(test_abort);
    return TEST_REPORT();
}
