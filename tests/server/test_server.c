/*
 * test_server.c: the server over real loopback sockets: routes, requests, limits and error
 * statuses, keep-alive and pipelining, chunked bodies, CORS, streams, heartbeats, backpressure,
 * write batching, shutdown.
 */
#include "harness.h"
#include "harness/failalloc.h"
#include "server/internal.h" /* sse__h1_head, struct sse__conn: the transport seam */

#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>

static int hello_cb(sse_request *r, void *ud)
{
    char body[512];
    size_t blen;
    const char *b = sse_request_body(r, &blen);
    const char *x = sse_request_header(r, "x-test");
    int n = snprintf(body, sizeof(body), "%s %s q=%s x=%s body=%.*s", sse_request_method(r),
                     sse_request_path(r), sse_request_query(r), x ? x : "-", (int)blen, b);
    return sse_request_respond(r, 200, "text/plain", body, (size_t)n);
}

static void events_cb(sse_stream *st, const sse_request *r, void *ud)
{
    sse_event ev = SSE_EVENT_INIT;
    ev.data = "hello";
    ev.data_len = 5;
    ev.id = "1";
    ev.id_len = 1;
    sse_stream_send(st, &ev);
}

static int setup(struct tctx *t, const sse_server_options *o)
{
    if (tctx_init(t, o))
        return -1;
    sse_server_route(t->s, "GET", "/hello", hello_cb, NULL);
    sse_server_route(t->s, "POST", "/hello", hello_cb, NULL);
    sse_server_route(t->s, NULL, "/any/*", hello_cb, NULL);
    sse_server_route_stream(t->s, "/events", events_cb, NULL);
    return 0;
}

/* ------------------------------------------------------------ basic request / response */

static int c_basic(struct tctx *t)
{
    char buf[4096];
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "GET /hello?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\n\r\n"), 0);
    CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
    CHECK_EQ_INT(cli_status(buf), 200);
    CHECK(strstr(buf, "Content-Type: text/plain\r\n"));
    CHECK(strstr(buf, "\r\n\r\nGET /hello q=a=1&b=2 x=yes body="));
    close(fd);
    return 0;
}

static int test_basic(void)
{
    struct tctx t;
    CHECK_EQ_INT(setup(&t, NULL), 0);
    CHECK_EQ_INT(tctx_run(&t, c_basic), 0);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return 0;
}

static int c_stream(struct tctx *t)
{
    char buf[4096];
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    size_t n = cli_read_until(fd, buf, sizeof(buf), 0, "data: hello\n\n");
    CHECK(n > 0);
    CHECK_EQ_INT(cli_status(buf), 200);
    CHECK(strstr(buf, "Content-Type: text/event-stream\r\n"));
    CHECK(strstr(buf, "Cache-Control: no-cache\r\n"));
    CHECK(strstr(buf, "X-Accel-Buffering: no\r\n"));
    CHECK(strstr(buf, "\r\n\r\nid: 1\ndata: hello\n\n") ||
          strstr(buf, "\r\n\r\nid:1\ndata:hello\n\n"));
    close(fd);
    return 0;
}

static int test_stream(void)
{
    struct tctx t;
    CHECK_EQ_INT(setup(&t, NULL), 0);
    CHECK_EQ_INT(tctx_run(&t, c_stream), 0);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return 0;
}

/* Run client against a fresh server with options o; the standard routes are set up. */
static int run_with(const sse_server_options *o, int (*client)(struct tctx *t))
{
    struct tctx t;
    CHECK_EQ_INT(setup(&t, o), 0);
    int rc = tctx_run(&t, client);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* Send req on a new connection, read one response into buf, return its status. */
static int one_request(struct tctx *t, const char *req, char *buf, size_t cap)
{
    int fd = cli_connect(t->port);
    if (fd < 0)
        return -1;
    if (cli_sends(fd, req)) {
        close(fd);
        return -1;
    }
    size_t n = cli_read_response(fd, buf, cap);
    close(fd);
    return n ? cli_status(buf) : -1;
}

/* ------------------------------------------------------------ keep-alive, pipelining */

static int c_keepalive(struct tctx *t)
{
    char buf[4096];
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(cli_sends(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
        CHECK_EQ_INT(cli_status(buf), 200);
        CHECK(!strstr(buf, "Connection: close"));
    }
    /* pipelined: three requests in one write, one of them with a body */
    CHECK_EQ_INT(cli_sends(fd, "GET /hello?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                               "POST /hello?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                               "GET /hello?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                 0);
    size_t n = cli_read_until(fd, buf, sizeof(buf), 0, NULL); /* until EOF */
    const char *a = strstr(buf, "q=n=1");
    const char *b = strstr(buf, "q=n=2 x=- body=abc");
    const char *c = strstr(buf, "q=n=3");
    CHECK(n > 0 && a && b && c && a < b && b < c);
    CHECK(strstr(buf, "Connection: close\r\n"));
    close(fd);
    return 0;
}

static int test_keepalive_pipelining(void)
{
    return run_with(NULL, c_keepalive);
}

static int c_http10(struct tctx *t)
{
    char buf[4096];
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "GET /hello HTTP/1.0\r\n\r\n"), 0);
    CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
    CHECK_EQ_INT(cli_status(buf), 200);
    CHECK(strstr(buf, "Connection: close\r\n"));
    CHECK(cli_eof(fd));
    close(fd);
    fd = cli_connect(t->port);
    CHECK(fd >= 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(cli_sends(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0);
        CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
        CHECK_EQ_INT(cli_status(buf), 200);
        CHECK(strstr(buf, "Connection: keep-alive\r\n"));
    }
    close(fd);
    return 0;
}

static int test_http10(void)
{
    return run_with(NULL, c_http10);
}

/* ------------------------------------------------------------ bodies */

static int c_bodies(struct tctx *t)
{
    char buf[4096];
    CHECK_EQ_INT(one_request(t, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                             buf, sizeof(buf)),
                 200);
    CHECK(strstr(buf, "body=hello"));
    CHECK_EQ_INT(one_request(t,
                             "POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n",
                             buf, sizeof(buf)),
                 200);
    CHECK(strstr(buf, "body=abcdefg"));
    /* the same chunked request one byte per write, then a second request on the connection */
    static const char req[] =
        "POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "a\r\n0123456789\r\n1\r\nX\r\n0\r\n\r\n";
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        CHECK_EQ_INT(cli_send(fd, req + i, 1), 0);
        if (i % 16 == 0)
            usleep(1000);
    }
    CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
    CHECK_EQ_INT(cli_status(buf), 200);
    CHECK(strstr(buf, "body=0123456789X"));
    CHECK_EQ_INT(cli_sends(fd, "GET /hello?again HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
    CHECK(strstr(buf, "q=again"));
    close(fd);
    /* Expect: 100-continue gets an interim response before the body is sent */
    fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                               "Expect: 100-continue\r\n\r\n"),
                 0);
    size_t n = cli_read_until(fd, buf, sizeof(buf), 0, "\r\n\r\n");
    CHECK(n > 0);
    CHECK(strncmp(buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
    CHECK_EQ_INT(cli_sends(fd, "wxyz"), 0);
    CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
    CHECK_EQ_INT(cli_status(buf), 200);
    CHECK(strstr(buf, "body=wxyz"));
    close(fd);
    return 0;
}

static int test_bodies(void)
{
    return run_with(NULL, c_bodies);
}

/* ------------------------------------------------------------ limits and errors */

static int c_errors(struct tctx *t)
{
    char buf[8192], req[4096];
    CHECK_EQ_INT(one_request(t, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 404);
    CHECK(strstr(buf, "404 Not Found"));
    CHECK_EQ_INT(one_request(t, "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                 405);
    CHECK(strstr(buf, "\r\nAllow: GET, HEAD, POST\r\n"));
    CHECK_EQ_INT(one_request(t, "BREW /hello HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 501);
    CHECK_EQ_INT(one_request(t, "OPTIONS /hello HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                 204);
    CHECK(strstr(buf, "\r\nAllow: GET, HEAD, POST, OPTIONS\r\n"));
    CHECK(!strstr(buf, "Content-Length"));
    CHECK_EQ_INT(one_request(t, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 204);
    CHECK_EQ_INT(one_request(t, "OPTIONS /nope HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                 404);
    CHECK_EQ_INT(one_request(t, "GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 505);
    CHECK_EQ_INT(one_request(t, "GET /hello HTTP/1.1\r\n\r\n", buf, sizeof(buf)), 400); /* Host */
    CHECK_EQ_INT(one_request(t, "GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 400);
    CHECK_EQ_INT(
        one_request(t, "GET /hello HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", buf, sizeof(buf)),
        400);
    CHECK_EQ_INT(
        one_request(t, "GET /hello HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", buf, sizeof(buf)), 400);
    CHECK_EQ_INT(one_request(t, "GET /hello HTTP/1.1\rHost: x\r\n\r\n", buf, sizeof(buf)), 400);
    CHECK_EQ_INT(one_request(t, "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 400);
    CHECK_EQ_INT(one_request(t, "GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 400);
    CHECK_EQ_INT(one_request(t,
                             "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                             buf, sizeof(buf)),
                 400);
    CHECK_EQ_INT(one_request(t,
                             "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                             "Content-Length: 2\r\n\r\nab",
                             buf, sizeof(buf)),
                 400);
    CHECK_EQ_INT(one_request(t,
                             "POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                             buf, sizeof(buf)),
                 501);
    CHECK_EQ_INT(one_request(t,
                             "POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                             "\r\nzz\r\n",
                             buf, sizeof(buf)),
                 400);
    /* 413: body over max_body (1000 here), by Content-Length and by chunks */
    CHECK_EQ_INT(one_request(t, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",
                             buf, sizeof(buf)),
                 413);
    CHECK(strstr(buf, "Connection: close"));
    CHECK_EQ_INT(one_request(t,
                             "POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                             "\r\n3e9\r\n",
                             buf, sizeof(buf)),
                 413);
    /* 414: request line over max_request_line (256 here) */
    int n = snprintf(req, sizeof(req), "GET /%0300d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    CHECK(n > 300);
    CHECK_EQ_INT(one_request(t, req, buf, sizeof(buf)), 414);
    /* 431: too many header lines (max 10), and too many header bytes (max 512) */
    n = snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 11; i++)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "X-%d: %d\r\n", i, i);
    snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    CHECK_EQ_INT(one_request(t, req, buf, sizeof(buf)), 431);
    n = snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: %0600d\r\n\r\n", 0);
    CHECK_EQ_INT(one_request(t, req, buf, sizeof(buf)), 431);
    /* a request just under the limits passes */
    n = snprintf(req, sizeof(req), "GET /hello?%0200d HTTP/1.1\r\nHost: x\r\nX-Big: %0400d\r\n\r\n",
                 0, 0);
    CHECK_EQ_INT(one_request(t, req, buf, sizeof(buf)), 200);
    /* leading blank lines are skipped (RFC 9112 2.2) */
    CHECK_EQ_INT(one_request(t, "\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                 200);
    /* absolute-form target */
    CHECK_EQ_INT(
        one_request(t, "GET http://x/hello?a HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    CHECK(strstr(buf, "GET /hello q=a"));
    /* a percent-decoded path reaches the handler */
    CHECK_EQ_INT(one_request(t, "GET /any/a%20b%2Fc HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                 200);
    CHECK(strstr(buf, "GET /any/a b/c q="));
    /* a route with method NULL takes every method */
    CHECK_EQ_INT(one_request(t, "PUT /any/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
                             buf, sizeof(buf)),
                 200);
    CHECK(strstr(buf, "PUT /any/x q= x=- body=hi"));
    return 0;
}

static int test_errors_and_limits(void)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.max_body = 1000;
    o.max_request_line = 256;
    o.max_headers = 10;
    o.max_header_bytes = 512;
    int rc = run_with(&o, c_errors);
    return rc;
}

static int c_timeouts(struct tctx *t)
{
    char buf[4096];
    /* 408: a request that never completes */
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "GET /hello HTTP/1.1\r\nHo"), 0);
    CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
    CHECK_EQ_INT(cli_status(buf), 408);
    CHECK(cli_eof(fd));
    close(fd);
    /* a body that never completes */
    fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"),
                 0);
    CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
    CHECK_EQ_INT(cli_status(buf), 408);
    close(fd);
    /* an idle keep-alive connection is closed after keepalive_timeout_ms */
    fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
    uint64_t t0 = uv_hrtime();
    CHECK(cli_eof(fd));
    CHECK(uv_hrtime() - t0 < 3000000000ull);
    close(fd);
    return 0;
}

static int test_timeouts(void)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.request_timeout_ms = 200;
    o.keepalive_timeout_ms = 300;
    return run_with(&o, c_timeouts);
}

static int c_max_conn(struct tctx *t)
{
    char buf[4096];
    int fds[3];
    for (int i = 0; i < 2; i++) {
        fds[i] = cli_connect(t->port);
        CHECK(fds[i] >= 0);
        CHECK_EQ_INT(cli_sends(fds[i], "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        CHECK(cli_read_until(fds[i], buf, sizeof(buf), 0, "\n\n") > 0);
    }
    fds[2] = cli_connect(t->port);
    CHECK(fds[2] >= 0);
    CHECK(cli_read_response(fds[2], buf, sizeof(buf)) > 0);
    CHECK_EQ_INT(cli_status(buf), 503);
    CHECK(cli_eof(fds[2]));
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    return 0;
}

static int test_max_connections(void)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.max_connections = 2;
    return run_with(&o, c_max_conn);
}

/* ------------------------------------------------------------ stream registry */

#define REG_MAX 6000

struct reg {
    sse_stream *st[REG_MAX];
    int n;          /* streams opened */
    int open;       /* streams not yet closed */
    int reasons[5]; /* closes by reason */
    int aborted;
    sse_request *deferred;
};

static void reg_on_close(sse_stream *st, int reason, void *ud)
{
    struct reg *g = ud;
    for (int i = 0; i < g->n; i++)
        if (g->st[i] == st)
            g->st[i] = NULL;
    g->open--;
    g->reasons[reason]++;
}

static void reg_stream_cb(sse_stream *st, const sse_request *r, void *ud)
{
    struct reg *g = ud;
    if (g->n < REG_MAX)
        g->st[g->n++] = st;
    g->open++;
    sse_stream_on_close(st, reg_on_close, g);
}

static int reg_setup(struct tctx *t, const sse_server_options *o, struct reg *g)
{
    memset(g, 0, sizeof(*g));
    if (setup(t, o))
        return -1;
    t->user = g;
    return sse_server_route_stream(t->s, "/reg", reg_stream_cb, g);
}

struct bcast {
    size_t len; /* bytes per event */
    int count;  /* events */
    int only;   /* -1 = every stream, else that index */
};

static void do_bcast(struct tctx *t, void *arg)
{
    struct reg *g = t->user;
    struct bcast *b = arg;
    char *data = malloc(b->len);
    memset(data, 'x', b->len);
    memcpy(data, "data: ", 6);
    data[b->len - 2] = '\n';
    data[b->len - 1] = '\n';
    sse_frame *f;
    if (sse_frame_new(&f, data, b->len) == 0) {
        for (int k = 0; k < b->count; k++)
            for (int i = 0; i < g->n; i++)
                if (g->st[i] && (b->only < 0 || b->only == i))
                    sse_stream_send_frame(g->st[i], f);
        sse_frame_unref(f);
    }
    free(data);
}

struct snap {
    struct reg g;
    sse_server_stats st;
};

static void do_snap(struct tctx *t, void *arg)
{
    struct snap *s = arg;
    struct reg *g = t->user;
    sse_server_get_stats(t->s, &s->st);
    if (!g)
        return;
    s->g.n = g->n;
    s->g.open = g->open;
    memcpy(s->g.reasons, g->reasons, sizeof(g->reasons));
    s->g.aborted = g->aborted;
    sse_server_get_stats(t->s, &s->st);
}

/* Wait (up to ms) until the registry satisfies pred. */
static int wait_for(struct tctx *t, int (*pred)(const struct snap *s, int arg), int arg, int ms)
{
    struct snap s;
    for (int i = 0; i < ms / 10; i++) {
        loop_call(t, do_snap, &s);
        if (pred(&s, arg))
            return 1;
        usleep(10000);
    }
    return 0;
}

static int pred_opened(const struct snap *s, int n)
{
    return s->g.n >= n;
}

static int open_stream_fd(struct tctx *t, const char *path, int rcvbuf)
{
    int fd = loopback_connect_opts(t->port, 0, rcvbuf);
    if (fd < 0)
        return -1;
    char req[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    if (loopback_sends(fd, req)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read exactly the response head of a stream; returns 0 when it is a 200 event stream. */
static int read_stream_head(int fd)
{
    char buf[2048];
    size_t n = 0;
    while (n < sizeof(buf) - 1) {
        ssize_t k = recv(fd, buf + n, 1, 0);
        if (k <= 0)
            return -1;
        n++;
        buf[n] = '\0';
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    return cli_status(buf) == 200 && strstr(buf, "text/event-stream") ? 0 : -1;
}

/* Read exactly n bytes (discarding them); returns 0 when all arrived. */
static int read_n(int fd, size_t n, char *last, size_t last_cap)
{
    char buf[65536];
    while (n) {
        ssize_t k = recv(fd, buf, n < sizeof(buf) ? n : sizeof(buf), 0);
        if (k <= 0)
            return -1;
        n -= (size_t)k;
        if (last && (size_t)k >= last_cap)
            memcpy(last, buf + k - (ssize_t)last_cap, last_cap);
    }
    return 0;
}

/* ------------------------------------------------------------ heartbeats, retry, comments */

static void send_misc(struct tctx *t, void *arg)
{
    struct reg *g = t->user;
    sse_stream_retry(g->st[0], 1000);
    sse_stream_comment(g->st[0], "hi");
}

static int c_heartbeat(struct tctx *t)
{
    char buf[4096];
    int fd = open_stream_fd(t, "/reg", 0);
    CHECK(fd >= 0);
    CHECK_EQ_INT(read_stream_head(fd), 0);
    CHECK(wait_for(t, pred_opened, 1, 5000));
    loop_call(t, send_misc, NULL);
    size_t n = cli_read_until(fd, buf, sizeof(buf), 0, "hi\n");
    CHECK(n > 0);
    CHECK(strstr(buf, "retry: 1000\n\n") || strstr(buf, "retry:1000\n\n"));
    /* nothing else is sent: a heartbeat comment must come within a few intervals */
    uint64_t t0 = uv_hrtime();
    n = cli_read_until(fd, buf, sizeof(buf), 0, ":\n");
    CHECK(strstr(buf, ":\n"));
    CHECK(uv_hrtime() - t0 < 2000000000ull);
    n = cli_read_until(fd, buf, sizeof(buf), 0, ":\n:\n"); /* and again */
    CHECK(strstr(buf, ":\n:\n"));
    close(fd);
    return 0;
}

static int test_heartbeat(void)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.heartbeat_ms = 60;
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, &o, g), 0);
    int rc = tctx_run(&t, c_heartbeat);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

/* ------------------------------------------------------------ backpressure */

static int pred_slow(const struct snap *s, int n)
{
    return s->g.reasons[SSE_CLOSE_SLOW] >= n;
}

static int c_backpressure(struct tctx *t)
{
    /* stream 0 never reads (tiny receive buffer), stream 1 reads everything */
    int slow = open_stream_fd(t, "/reg", 4096);
    CHECK(slow >= 0);
    CHECK(wait_for(t, pred_opened, 1, 5000));
    int fast = open_stream_fd(t, "/reg", 0);
    CHECK(fast >= 0);
    CHECK(wait_for(t, pred_opened, 2, 5000));
    CHECK_EQ_INT(read_stream_head(fast), 0);
    struct bcast b = {1024, 100, -1};
    struct snap s;
    int rounds = 0;
    for (rounds = 0; rounds < 400; rounds++) {
        loop_call(t, do_bcast, &b);
        CHECK_EQ_INT(read_n(fast, b.len * (size_t)b.count, NULL, 0), 0);
        loop_call(t, do_snap, &s);
        if (s.g.reasons[SSE_CLOSE_SLOW] == 1 && rounds > 10)
            break;
    }
    CHECK(wait_for(t, pred_slow, 1, 5000));
    loop_call(t, do_snap, &s);
    CHECK_EQ_INT(s.g.reasons[SSE_CLOSE_SLOW], 1);
    CHECK_EQ_INT(s.g.open, 1); /* the fast one is still open */
    CHECK_EQ_UINT(s.st.closed_slow_total, 1);
    /* the fast stream got every byte (read_n above), and goes on receiving */
    b.count = 3;
    loop_call(t, do_bcast, &b);
    CHECK_EQ_INT(read_n(fast, b.len * 3, NULL, 0), 0);
    CHECK(cli_eof(slow)); /* the slow one ends (EOF or reset) once its buffered bytes are read */
    close(slow);
    close(fast);
    return 0;
}

static int test_backpressure(void)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.stream_queue_max = 256 * 1024;
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, &o, g), 0);
    int rc = tctx_run(&t, c_backpressure);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

static int pred_timeout(const struct snap *s, int n)
{
    return s->g.reasons[SSE_CLOSE_TIMEOUT] >= n;
}

static int c_write_timeout(struct tctx *t)
{
    int slow = open_stream_fd(t, "/reg", 4096);
    CHECK(slow >= 0);
    CHECK(wait_for(t, pred_opened, 1, 5000));
    struct bcast b = {65536, 160, -1}; /* 10 MiB: more than the kernel buffers hold */
    loop_call(t, do_bcast, &b);
    CHECK(wait_for(t, pred_timeout, 1, 4000));
    struct snap s;
    loop_call(t, do_snap, &s);
    CHECK_EQ_UINT(s.st.closed_timeout_total, 1);
    CHECK_EQ_INT(s.g.open, 0);
    close(slow);
    return 0;
}

static int test_write_timeout(void)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.write_timeout_ms = 300;
    o.stream_queue_max = 64u << 20;
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, &o, g), 0);
    int rc = tctx_run(&t, c_write_timeout);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

/* ------------------------------------------------------------ batching */

static int c_batching(struct tctx *t)
{
    int fd = open_stream_fd(t, "/reg", 0);
    CHECK(fd >= 0);
    CHECK_EQ_INT(read_stream_head(fd), 0);
    CHECK(wait_for(t, pred_opened, 1, 5000));
    struct snap a, z;
    loop_call(t, do_snap, &a);
    struct bcast b = {100, 100, 0}; /* 100 events queued in one loop turn */
    loop_call(t, do_bcast, &b);
    char last[8];
    CHECK_EQ_INT(read_n(fd, 100 * 100, last, 2), 0);
    CHECK(last[0] == '\n' && last[1] == '\n');
    loop_call(t, do_snap, &z);
    CHECK_EQ_UINT(z.st.frames_written_total - a.st.frames_written_total, 100);
    CHECK_EQ_UINT(z.st.bytes_written_total - a.st.bytes_written_total, 100 * 100);
    CHECK(z.st.writes_total - a.st.writes_total <= 2); /* one writev (two if the socket filled) */
    close(fd);
    return 0;
}

static int test_write_batching(void)
{
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, NULL, g), 0);
    int rc = tctx_run(&t, c_batching);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

/* ------------------------------------------------------------ no allocation per subscriber */

static long alloc_count;
static void *counting_malloc(size_t n)
{
    alloc_count++;
    return malloc(n);
}
static void *counting_realloc(void *p, size_t n)
{
    alloc_count++;
    return realloc(p, n);
}

/* One event to every idle stream, counting the library's allocations while it is queued. */
static void do_bcast_counted(struct tctx *t, void *arg)
{
    static const struct sse__allocator counting = {counting_malloc, counting_realloc, free};
    struct reg *g = t->user;
    long *allocs = arg;
    sse_frame *f;
    if (sse_frame_new(&f, "data: one\n\n", 11) != 0) {
        *allocs = -1;
        return;
    }
    alloc_count = 0;
    sse__set_allocator(&counting);
    for (int i = 0; i < g->n; i++)
        if (g->st[i])
            sse_stream_send_frame(g->st[i], f);
    sse__set_allocator(NULL);
    *allocs = alloc_count;
    sse_frame_unref(f);
}

static int c_fanout_no_alloc(struct tctx *t)
{
    int fd[3];
    for (int i = 0; i < 3; i++) {
        fd[i] = open_stream_fd(t, "/reg", 0);
        CHECK(fd[i] >= 0);
        CHECK_EQ_INT(read_stream_head(fd[i]), 0);
    }
    CHECK(wait_for(t, pred_opened, 3, 5000));
    for (int round = 0; round < 3; round++) {
        long allocs = -2;
        loop_call(t, do_bcast_counted, &allocs);
        CHECK_EQ_INT(allocs, 0); /* the frame is shared; a one-frame queue is inline */
        for (int i = 0; i < 3; i++) {
            char last[8];
            CHECK_EQ_INT(read_n(fd[i], 11, last, 2), 0);
            CHECK(last[0] == '\n' && last[1] == '\n');
        }
    }
    for (int i = 0; i < 3; i++)
        close(fd[i]);
    return 0;
}

static int test_fanout_no_alloc(void)
{
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, NULL, g), 0);
    int rc = tctx_run(&t, c_fanout_no_alloc);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

/* ------------------------------------------------------------ peer close, deferred, abort */

static int pred_peer(const struct snap *s, int n)
{
    return s->g.reasons[SSE_CLOSE_PEER] >= n;
}

static int pred_aborted(const struct snap *s, int n)
{
    return s->g.aborted >= n;
}

static void on_abort(sse_request *r, void *ud)
{
    struct reg *g = ud;
    g->aborted++;
    if (g->deferred == r)
        g->deferred = NULL;
}

static int defer_cb(sse_request *r, void *ud)
{
    struct reg *g = ud;
    g->deferred = r;
    sse_request_on_abort(r, on_abort, g);
    return SSE_DEFERRED;
}

static void answer_deferred(struct tctx *t, void *arg)
{
    struct reg *g = t->user;
    if (g->deferred)
        sse_request_respond(g->deferred, 200, "text/plain", "later", 5);
    g->deferred = NULL;
}

static int c_peer_deferred(struct tctx *t)
{
    char buf[4096];
    int fd = open_stream_fd(t, "/reg", 0);
    CHECK(fd >= 0);
    CHECK_EQ_INT(read_stream_head(fd), 0);
    close(fd);
    CHECK(wait_for(t, pred_peer, 1, 5000));
    /* deferred answer, then a pipelined request waiting behind it */
    fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\nGET /hello?after HTTP/1.1\r\n"
                               "Host: x\r\n\r\n"),
                 0);
    usleep(50000);
    loop_call(t, answer_deferred, NULL);
    size_t n = cli_read_until(fd, buf, sizeof(buf), 0, "q=after");
    CHECK(n > 0);
    CHECK(strstr(buf, "\r\n\r\nlater"));
    CHECK(strstr(buf, "q=after"));
    close(fd);
    /* the client leaves before the answer: on_abort */
    fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    usleep(50000);
    close(fd);
    CHECK(wait_for(t, pred_aborted, 1, 5000));
    return 0;
}

static int test_peer_close_and_deferred(void)
{
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, NULL, g), 0);
    sse_server_route(t.s, "GET", "/defer", defer_cb, g);
    int rc = tctx_run(&t, c_peer_deferred);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

/*
 * A request pipelined behind a deferred one keeps the time its bytes came: the request timeout
 * is not renewed by the time the server took to answer the one before (it used to restart at
 * the answer, so a slow answer, or a client that does not read, stretched it without end).
 */
static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static int c_pipelined_timeout(struct tctx *t)
{
    char buf[4096];
    struct timespec t0;
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(cli_sends(fd, "GET /defer HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHo"),
                 0);
    usleep(2500 * 1000); /* the deferred request is answered 2.5 s later; the timeout is 1 s */
    loop_call(t, answer_deferred, NULL);
    size_t n = cli_read_until(fd, buf, sizeof(buf), 0, " 408 ");
    long at = ms_since(&t0);
    CHECK(n > 0);
    CHECK(strstr(buf, "\r\n\r\nlater"));
    CHECK(strstr(buf, " 408 "));
    /* at once after the answer (the pending bytes are 2.5 s old), not 1 s after it */
    CHECK(at < 3200);
    close(fd);
    return 0;
}

static int test_pipelined_timeout_not_renewed(void)
{
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.request_timeout_ms = 1000;
    CHECK_EQ_INT(reg_setup(&t, &o, g), 0);
    sse_server_route(t.s, "GET", "/defer", defer_cb, g);
    int rc = tctx_run(&t, c_pipelined_timeout);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

/* ------------------------------------------------------------ graceful shutdown */

static void closed_cb2(sse_server *s, void *ud)
{
    struct tctx *t = ud;
    t->closed = 1;
}

static void send_and_close(struct tctx *t, void *arg)
{
    struct bcast b = {50, 10, -1};
    do_bcast(t, &b);
    sse_server_close(t->s, 2000, closed_cb2, t);
}

static int c_shutdown(struct tctx *t)
{
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = open_stream_fd(t, "/reg", 0);
        CHECK(fds[i] >= 0);
        CHECK_EQ_INT(read_stream_head(fds[i]), 0);
    }
    CHECK(wait_for(t, pred_opened, 3, 5000));
    loop_call(t, send_and_close, NULL);
    for (int i = 0; i < 3; i++) {
        char last[2];
        CHECK_EQ_INT(read_n(fds[i], 500, last, 2), 0); /* all ten events... */
        CHECK(cli_eof(fds[i]));                        /* ...then the end */
        close(fds[i]);
    }
    struct snap s;
    loop_call(t, do_snap, &s);
    CHECK_EQ_INT(s.g.reasons[SSE_CLOSE_LOCAL], 3);
    CHECK_EQ_INT(cli_connect(t->port), -1); /* no longer listening */
    return 0;
}

static int test_graceful_shutdown(void)
{
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, NULL, g), 0);
    int rc = tctx_run(&t, c_shutdown);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    CHECK(t.closed);
    free(g);
    return rc;
}

/* ------------------------------------------------------------ CORS */

static int c_cors(struct tctx *t)
{
    char buf[4096];
    CHECK_EQ_INT(one_request(t,
                             "OPTIONS /events HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example\r\n"
                             "Access-Control-Request-Method: GET\r\n"
                             "Access-Control-Request-Headers: last-event-id\r\n\r\n",
                             buf, sizeof(buf)),
                 204);
    CHECK(strstr(buf, "\r\nAccess-Control-Allow-Origin: http://a.example\r\n"));
    CHECK(strstr(buf, "\r\nAccess-Control-Allow-Credentials: true\r\n"));
    CHECK(strstr(buf, "\r\nVary: Origin\r\n"));
    CHECK(strstr(buf, "Access-Control-Allow-Headers: Authorization, Last-Event-ID, Cache-Control, "
                      "Content-Type"));
    CHECK(strstr(buf, "Access-Control-Allow-Methods: GET, POST"));
    /* a stream from an allowed origin carries the headers */
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(
        cli_sends(fd, "GET /events HTTP/1.1\r\nHost: x\r\nOrigin: https://b.example\r\n\r\n"), 0);
    CHECK(cli_read_until(fd, buf, sizeof(buf), 0, "\r\n\r\n") > 0);
    CHECK(strstr(buf, "\r\nAccess-Control-Allow-Origin: https://b.example\r\n"));
    CHECK(strstr(buf, "\r\nAccess-Control-Allow-Credentials: true\r\n"));
    close(fd);
    /* another origin gets none */
    CHECK_EQ_INT(
        one_request(t, "GET /hello HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n\r\n", buf,
                    sizeof(buf)),
        200);
    CHECK(!strstr(buf, "Access-Control-Allow-Origin"));
    CHECK_EQ_INT(
        one_request(t,
                    "OPTIONS /events HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n"
                    "Access-Control-Request-Method: GET\r\n\r\n",
                    buf, sizeof(buf)),
        204);
    CHECK(!strstr(buf, "Access-Control-Allow-Origin"));
    return 0;
}

static int c_cors_star(struct tctx *t)
{
    char buf[4096];
    CHECK_EQ_INT(one_request(t,
                             "GET /hello HTTP/1.1\r\nHost: x\r\nOrigin: http://any.example\r\n\r\n",
                             buf, sizeof(buf)),
                 200);
    CHECK(strstr(buf, "\r\nAccess-Control-Allow-Origin: *\r\n"));
    CHECK(!strstr(buf, "Credentials"));
    return 0;
}

static int test_cors(void)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.cors_origins = "http://a.example, https://b.example";
    o.cors_credentials = 1;
    CHECK_EQ_INT(run_with(&o, c_cors), 0);
    sse_server_options o2 = SSE_SERVER_OPTIONS_INIT;
    o2.cors_origins = "*";
    CHECK_EQ_INT(run_with(&o2, c_cors_star), 0);
    return 0;
}

/* ------------------------------------------------------------ static files */

static char static_root[256];

static int write_file(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    return 0;
}

static int c_static(struct tctx *t)
{
    char buf[8192], req[512];
    CHECK_EQ_INT(one_request(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    CHECK(strstr(buf, "Content-Type: text/html; charset=utf-8\r\n"));
    CHECK(strstr(buf, "\r\n\r\n<h1>index</h1>"));
    CHECK_EQ_INT(one_request(t, "GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    CHECK(strstr(buf, "Content-Type: text/javascript"));
    CHECK_EQ_INT(one_request(t, "GET /m.mjs HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    CHECK(strstr(buf, "Content-Type: text/javascript"));
    CHECK_EQ_INT(one_request(t, "GET /s.css HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    CHECK(strstr(buf, "Content-Type: text/css"));
    CHECK_EQ_INT(one_request(t, "GET /d.json HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    CHECK(strstr(buf, "Content-Type: application/json\r\n"));
    CHECK_EQ_INT(one_request(t, "GET /i.svg HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    CHECK(strstr(buf, "Content-Type: image/svg+xml\r\n"));
    CHECK_EQ_INT(one_request(t, "GET /x.wasm HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    CHECK(strstr(buf, "Content-Type: application/wasm\r\n"));
    CHECK_EQ_INT(one_request(t, "GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    CHECK(strstr(buf, "\r\n\r\nsub index"));
    CHECK_EQ_INT(one_request(t, "GET /sub HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    CHECK(strstr(buf, "\r\n\r\nsub index"));
    /* HEAD: the length, no body */
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "HEAD /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 0);
    size_t n = cli_read_until(fd, buf, sizeof(buf), 0, NULL);
    CHECK(n > 0 && cli_status(buf) == 200);
    CHECK(strstr(buf, "Content-Length: 15\r\n"));
    CHECK(strstr(buf, "\r\n\r\n") + 4 == buf + n);
    close(fd);
    /* ETag -> 304 */
    CHECK_EQ_INT(one_request(t, "GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    char *et = strstr(buf, "ETag: ");
    CHECK(et);
    char etag[64];
    size_t el = strcspn(et + 6, "\r");
    CHECK(el < sizeof(etag));
    memcpy(etag, et + 6, el);
    etag[el] = '\0';
    snprintf(req, sizeof(req), "GET /app.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n",
             etag);
    CHECK_EQ_INT(one_request(t, req, buf, sizeof(buf)), 304);
    /* Last-Modified -> If-Modified-Since -> 304 */
    CHECK_EQ_INT(one_request(t, "GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 200);
    char *lm = strstr(buf, "Last-Modified: ");
    CHECK(lm);
    char lms[64];
    size_t ll = strcspn(lm + 15, "\r");
    CHECK(ll < sizeof(lms));
    memcpy(lms, lm + 15, ll);
    lms[ll] = '\0';
    snprintf(req, sizeof(req), "GET /app.js HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: %s\r\n\r\n",
             lms);
    CHECK_EQ_INT(one_request(t, req, buf, sizeof(buf)), 304);
    /* traversal attempts: never the secret */
    static const char *const bad[] = {
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "//secret.txt/..",
        "/out/secret.txt",
        "/..",
        "/sub/..%5c..%5csecret.txt",
        "/nothere.html",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", bad[i]);
        int st = one_request(t, req, buf, sizeof(buf));
        if (st != 404 && st != 400)
            fprintf(stderr, "  path %s -> %d\n", bad[i], st);
        CHECK(st == 404 || st == 400);
        CHECK(!strstr(buf, "TOPSECRET"));
    }
    CHECK_EQ_INT(one_request(t, "GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 400);
    CHECK_EQ_INT(one_request(t, "POST /app.js HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 405);
    return 0;
}

static int test_static_files(void)
{
    char tmpl[] = "/tmp/sse_static_XXXXXX";
    CHECK(mkdtemp(tmpl));
    char sub[300], sub2[320], link[320];
    snprintf(static_root, sizeof(static_root), "%s/www", tmpl);
    CHECK_EQ_INT(mkdir(static_root, 0755), 0);
    CHECK_EQ_INT(write_file(tmpl, "secret.txt", "TOPSECRET"), 0);
    CHECK_EQ_INT(write_file(static_root, "index.html", "<h1>index</h1>"), 0);
    CHECK_EQ_INT(write_file(static_root, "app.js", "console.log(1);"), 0);
    CHECK_EQ_INT(write_file(static_root, "m.mjs", "export {};"), 0);
    CHECK_EQ_INT(write_file(static_root, "s.css", "body{}"), 0);
    CHECK_EQ_INT(write_file(static_root, "d.json", "{}"), 0);
    CHECK_EQ_INT(write_file(static_root, "i.svg", "<svg/>"), 0);
    CHECK_EQ_INT(write_file(static_root, "x.wasm", "\1asm"), 0);
    snprintf(sub, sizeof(sub), "%s/sub", static_root);
    CHECK_EQ_INT(mkdir(sub, 0755), 0);
    CHECK_EQ_INT(write_file(sub, "index.html", "sub index"), 0);
    snprintf(link, sizeof(link), "%s/out", static_root);
    CHECK_EQ_INT(symlink(tmpl, link), 0); /* a symlink out of the root */
    (void)sub2;
    struct tctx t;
    CHECK_EQ_INT(tctx_init(&t, NULL), 0);
    CHECK_EQ_INT(sse_server_static(t.s, "/", static_root), 0);
    int rc = tctx_run(&t, c_static);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
    CHECK_EQ_INT(system(cmd), 0);
    return rc;
}

/* ------------------------------------------------------------ many streams */

#define MANY 5000

static int c_many(struct tctx *t)
{
    static int fds[MANY];
    int opened = 0;
    for (int i = 0; i < MANY; i++) {
        fds[i] = open_stream_fd(t, "/reg", 0);
        CHECK(fds[i] >= 0);
        opened++;
    }
    for (int i = 0; i < MANY; i++)
        CHECK_EQ_INT(read_stream_head(fds[i]), 0);
    CHECK(wait_for(t, pred_opened, MANY, 10000));
    struct bcast b = {64, 1, -1};
    loop_call(t, do_bcast, &b);
    for (int i = 0; i < MANY; i++) {
        char last[2];
        CHECK_EQ_INT(read_n(fds[i], 64, last, 2), 0);
        CHECK(last[0] == '\n' && last[1] == '\n');
    }
    struct snap s;
    loop_call(t, do_snap, &s);
    CHECK_EQ_UINT(s.st.streams, MANY);
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    return 0;
}

static int test_many_streams(void)
{
    struct rlimit rl;
    CHECK_EQ_INT(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * MANY + 100) {
        printf("skip: RLIMIT_NOFILE %llu too low\n", (unsigned long long)rl.rlim_cur);
        return 0;
    }
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, NULL, g), 0);
    int rc = tctx_run(&t, c_many);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

/* ------------------------------------------------------------ listen addresses */

static int c_ipv6(struct tctx *t)
{
    char buf[4096];
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_port = htons((uint16_t)t->port);
    a.sin6_addr = in6addr_loopback;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    CHECK_EQ_INT(cli_sends(fd, "GET /hello HTTP/1.1\r\nHost: [::1]\r\n\r\n"), 0);
    CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
    CHECK_EQ_INT(cli_status(buf), 200);
    close(fd);
    return 0;
}

/* A server whose first (reported) socket is [::1]. */
static int run_ipv6(void)
{
    struct tctx t;
    memset(&t, 0, sizeof(t));
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cv, NULL);
    CHECK_EQ_INT(uv_loop_init(&t.loop), 0);
    uv_async_init(&t.loop, &t.async, tctx_async_cb);
    t.async.data = &t;
    CHECK_EQ_INT(sse_server_new(&t.s, &t.loop, NULL), 0);
    CHECK_EQ_INT(sse_server_listen(t.s, "[::1]", 0), 0);
    t.port = sse_server_port(t.s);
    sse_server_route(t.s, "GET", "/hello", hello_cb, NULL);
    int rc = tctx_run(&t, c_ipv6);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

static int test_listen_addresses(void)
{
    int v6_ok = 0;
    uv_loop_t loop;
    sse_server *s;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(sse_server_new(&s, &loop, NULL), 0);
    CHECK_EQ_INT(sse_server_listen(s, "localhost", 0), 0);
    int p4 = sse_server_port(s);
    CHECK(p4 > 0);
    int probe = socket(AF_INET6, SOCK_STREAM, 0); /* IPv6 may be missing in containers */
    if (probe >= 0 && sse_server_listen(s, "::1", 0) == 0) {
        CHECK_EQ_INT(sse_server_listen(s, "[::1]", 0), 0);
        v6_ok = 1;
    }
    if (probe >= 0)
        close(probe);
    CHECK_EQ_INT(sse_server_listen(s, "0.0.0.0", 0), 0);
    CHECK_EQ_INT(sse_server_port(s), p4); /* the first socket's port */
    CHECK_EQ_INT(sse_server_listen(s, "not an address", 0), SSE_EINVAL);
    CHECK_EQ_INT(sse_server_listen(s, "127.0.0.1", 70000), SSE_EINVAL);
    int closed = 0;
    struct tctx fake;
    memset(&fake, 0, sizeof(fake));
    sse_server_close(s, 100, tctx_closed_cb, &fake);
    while (!fake.closed && uv_run(&loop, UV_RUN_ONCE))
        ;
    (void)closed;
    CHECK(fake.closed);
    sse_server_free(s);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    if (v6_ok) /* and a request over IPv6 is served */
        CHECK_EQ_INT(run_ipv6(), 0);
    else
        printf("note: no IPv6 loopback here, IPv6 part skipped\n");
    return 0;
}

/* Listen addresses as operators write them. */
static int test_split_host_port(void)
{
    char h[16];
    int port = -1;
    CHECK_EQ_INT(sse_split_host_port("127.0.0.1:8080", h, sizeof(h), &port), 0);
    CHECK_EQ_STR(h, "127.0.0.1");
    CHECK_EQ_INT(port, 8080);
    CHECK_EQ_INT(sse_split_host_port("[::1]:0", h, sizeof(h), &port), 0);
    CHECK_EQ_STR(h, "::1");
    CHECK_EQ_INT(port, 0);
    CHECK_EQ_INT(sse_split_host_port("::1:9", h, sizeof(h), &port), 0); /* last colon */
    CHECK_EQ_STR(h, "::1");
    CHECK_EQ_INT(port, 9);
    CHECK_EQ_INT(sse_split_host_port(":65535", h, sizeof(h), &port), 0);
    CHECK_EQ_STR(h, "0.0.0.0");
    CHECK_EQ_INT(port, 65535);
    port = -1;
    static const char *const bad[] = {"localhost", "host:",   "host:65536",
                                      "host:8x",   "host:-1", "[::1:80",
                                      "::1]:80",   "h:+80",   "a-very-long-host-name:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(sse_split_host_port(bad[i], h, sizeof(h), &port), SSE_EINVAL);
    CHECK_EQ_INT(sse_split_host_port(NULL, h, sizeof(h), &port), SSE_EINVAL);
    CHECK_EQ_INT(port, -1); /* nothing written on failure */
    return 0;
}

/* A busy port: refused unless both servers asked for SO_REUSEPORT. */
static int test_listen_busy_port(void)
{
    uv_loop_t loop;
    sse_server *a, *b, *c;
    sse_server_options shared = SSE_SERVER_OPTIONS_INIT;
    shared.reuse_port = 1;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(sse_server_new(&a, &loop, &shared), 0);
    CHECK_EQ_INT(sse_server_new(&b, &loop, NULL), 0);
    CHECK_EQ_INT(sse_server_new(&c, &loop, &shared), 0);
    CHECK_EQ_INT(sse_server_listen(a, "127.0.0.1", 0), 0);
    int port = sse_server_port(a);
    CHECK_EQ_INT(sse_server_listen(b, "127.0.0.1", port), UV_EADDRINUSE);
    CHECK_EQ_INT(sse_server_listen(c, "127.0.0.1", port), 0);
    struct tctx fa, fb, fc;
    memset(&fa, 0, sizeof(fa));
    memset(&fb, 0, sizeof(fb));
    memset(&fc, 0, sizeof(fc));
    sse_server_close(a, 100, tctx_closed_cb, &fa);
    sse_server_close(b, 100, tctx_closed_cb, &fb);
    sse_server_close(c, 100, tctx_closed_cb, &fc);
    while (!(fa.closed && fb.closed && fc.closed) && uv_run(&loop, UV_RUN_ONCE))
        ;
    CHECK(fa.closed && fb.closed && fc.closed);
    sse_server_free(a);
    sse_server_free(b);
    sse_server_free(c);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    return 0;
}

/* ------------------------------------------------------------ allocation failures */

struct arm {
    long n;
    int hit;
};

static void do_arm(struct tctx *t, void *arg)
{
    struct arm *a = arg;
    failalloc_arm(a->n);
}

static void do_disarm(struct tctx *t, void *arg)
{
    struct arm *a = arg;
    a->hit = failalloc_was_hit();
    failalloc_arm(0);
}

static void do_send_event(struct tctx *t, void *arg)
{
    struct reg *g = t->user;
    sse_event ev = SSE_EVENT_INIT;
    ev.data = "x";
    ev.data_len = 1;
    for (int i = 0; i < g->n; i++)
        if (g->st[i])
            sse_stream_send(g->st[i], &ev);
}

/* Read until EOF; returns 1 when the peer closed (not a timeout). */
static int read_to_eof(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + n, cap - 1 - n > 0 ? cap - 1 - n : 1, 0);
        if (k == 0)
            break;
        if (k < 0)
            return errno == ECONNRESET;
        if (n + (size_t)k < cap - 1)
            n += (size_t)k;
    }
    buf[n] = '\0';
    return 1;
}

static int c_failalloc(struct tctx *t)
{
    char buf[8192];
    int done_a = 0, done_b = 0;
    for (long n = 1; n < 200 && !(done_a && done_b); n++) {
        struct arm a = {n, 0};
        if (!done_a) {
            /* a pipelined chunked POST and a GET that closes */
            int fd = cli_connect(t->port);
            CHECK(fd >= 0);
            loop_call(t, do_arm, &a);
            CHECK_EQ_INT(cli_sends(fd,
                                   "POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                   "\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /hello?2 HTTP/1.1\r\nHost: x"
                                   "\r\nConnection: close\r\n\r\n"),
                         0);
            CHECK(read_to_eof(fd, buf, sizeof(buf))); /* an answer or a close, never a hang */
            loop_call(t, do_disarm, &a);
            close(fd);
            if (!a.hit) {
                CHECK(strstr(buf, "body=abc") && strstr(buf, "q=2"));
                done_a = 1;
            }
        }
        if (!done_b) {
            /* a stream and one event */
            a.hit = 0;
            a.n = n;
            int fd = cli_connect(t->port);
            CHECK(fd >= 0);
            loop_call(t, do_arm, &a);
            CHECK_EQ_INT(cli_sends(fd, "GET /reg HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
            size_t got = cli_read_until(fd, buf, sizeof(buf), 0, "\r\n\r\n");
            loop_call(t, do_send_event, NULL);
            if (got && strstr(buf, "\r\n\r\n"))
                cli_read_until(fd, buf, sizeof(buf), got, "\n\n");
            loop_call(t, do_disarm, &a);
            if (!a.hit) {
                CHECK(strstr(buf, "data:x\n\n") || strstr(buf, "data: x\n\n"));
                done_b = 1;
            }
            close(fd);
        }
    }
    CHECK(done_a && done_b);
    return 0;
}

static int test_failing_allocator(void)
{
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, NULL, g), 0);
    int rc = tctx_run(&t, c_failalloc);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

/* ------------------------------------------------------------ closing one stream, HEAD */

static void close_first(struct tctx *t, void *arg)
{
    struct reg *g = t->user;
    sse_event ev = SSE_EVENT_INIT;
    ev.data = "bye";
    ev.data_len = 3;
    sse_stream_send(g->st[0], &ev);
    sse_stream_close(g->st[0]);                   /* flushes "bye" first */
    *(int *)arg = sse_stream_send(g->st[0], &ev); /* refused once closing */
}

static int pred_local(const struct snap *s, int n)
{
    return s->g.reasons[SSE_CLOSE_LOCAL] >= n;
}

static int c_close_head(struct tctx *t)
{
    char buf[4096];
    int fd = open_stream_fd(t, "/reg", 0);
    CHECK(fd >= 0);
    CHECK_EQ_INT(read_stream_head(fd), 0);
    CHECK(wait_for(t, pred_opened, 1, 5000));
    int rc = 0;
    loop_call(t, close_first, &rc);
    CHECK_EQ_INT(rc, SSE_ECLOSED);
    CHECK(read_to_eof(fd, buf, sizeof(buf)));
    CHECK(strstr(buf, "bye\n\n"));
    close(fd);
    CHECK(wait_for(t, pred_local, 1, 5000));
    /* HEAD on a stream route: the head, then the end; on_close still runs once */
    fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "HEAD /reg HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    CHECK(read_to_eof(fd, buf, sizeof(buf)));
    CHECK_EQ_INT(cli_status(buf), 200);
    CHECK(strstr(buf, "text/event-stream"));
    close(fd);
    CHECK(wait_for(t, pred_local, 2, 5000));
    struct snap s;
    loop_call(t, do_snap, &s);
    CHECK_EQ_INT(s.g.n, 2);
    CHECK_EQ_INT(s.g.open, 0);
    CHECK_EQ_UINT(s.st.streams, 0);
    return 0;
}

static int test_stream_close_and_head(void)
{
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, NULL, g), 0);
    int rc = tctx_run(&t, c_close_head);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

/* ------------------------------------------------------------ mutated requests */

static uint32_t rnd(uint32_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 17;
    *st ^= *st << 5;
    return *st;
}

static int c_garbage(struct tctx *t)
{
    static const char *const seeds[] = {
        "GET /hello?a=1 HTTP/1.1\r\nHost: x\r\nX-Test: 1\r\n\r\n",
        "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        ("POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3\r\nabc\r\n0\r\n\r\n"),
        "GET /events HTTP/1.1\r\nHost: x\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    static const char junk[] = "\r\n\0 :%/?.0123456789abcdefHTTP";
    uint32_t st = 12345;
    char req[512], buf[8192];
    for (int iter = 0; iter < 300; iter++) {
        const char *seed = seeds[rnd(&st) % 5];
        size_t n = strlen(seed);
        memcpy(req, seed, n);
        int muts = 1 + (int)(rnd(&st) % 4);
        for (int m = 0; m < muts && n > 0; m++) {
            size_t at = rnd(&st) % n;
            switch (rnd(&st) % 4) {
            case 0: /* replace */
                req[at] = junk[rnd(&st) % (sizeof(junk) - 1)];
                break;
            case 1: /* insert */
                if (n + 1 < sizeof(req)) {
                    memmove(req + at + 1, req + at, n - at);
                    req[at] = junk[rnd(&st) % (sizeof(junk) - 1)];
                    n++;
                }
                break;
            case 2: /* delete */
                memmove(req + at, req + at + 1, n - at - 1);
                n--;
                break;
            default: /* truncate */
                n = at;
                break;
            }
        }
        int fd = cli_connect(t->port);
        CHECK(fd >= 0);
        CHECK_EQ_INT(cli_send(fd, req, n), 0);
        shutdown(fd, SHUT_WR);
        int ended = read_to_eof(fd, buf, sizeof(buf));
        if (!ended)
            fprintf(stderr, "  no end for input %d\n", iter);
        CHECK(ended);
        CHECK(buf[0] == '\0' || strncmp(buf, "HTTP/1.1 ", 9) == 0);
        close(fd);
    }
    struct snap s;
    loop_call(t, do_snap, &s);
    CHECK(s.st.requests_total > 0 && s.st.rejected_total > 0);
    return 0;
}

static int test_mutated_requests(void)
{
    return run_with(NULL, c_garbage);
}

/* ------------------------------------------------------------ access log */

static char log_text[8192];
static size_t log_len;

static void log_cb(void *ud, int level, const char *line)
{
    int n = snprintf(log_text + log_len, sizeof(log_text) - log_len, "%d|%s\n", level, line);
    if (n > 0 && (size_t)n < sizeof(log_text) - log_len)
        log_len += (size_t)n;
}

static void copy_log(struct tctx *t, void *arg)
{
    memcpy(arg, log_text, log_len + 1);
}

static int c_log(struct tctx *t)
{
    char buf[4096], logs[8192];
    CHECK_EQ_INT(one_request(t, "GET /hello?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                 200);
    CHECK_EQ_INT(one_request(t, "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 404);
    CHECK_EQ_INT(one_request(t, "GET /x HTTP/1.1\r\n\r\n", buf, sizeof(buf)), 400);
    int fd = open_stream_fd(t, "/events", 0);
    CHECK(fd >= 0);
    CHECK_EQ_INT(read_stream_head(fd), 0);
    close(fd);
    for (int i = 0; i < 200; i++) {
        loop_call(t, copy_log, logs);
        if (strstr(logs, "stream closed"))
            break;
        usleep(10000);
    }
    CHECK(strstr(logs, "2|127.0.0.1 GET /hello?q=1 200 "));
    CHECK(strstr(logs, "2|127.0.0.1 GET /missing 404 "));
    CHECK(strstr(logs, "2|127.0.0.1 - - 400 Bad Request (rejected by the server)"));
    CHECK(strstr(logs, "2|127.0.0.1 GET /events 200 0 "));
    CHECK(strstr(logs, "2|127.0.0.1 GET /events stream closed (peer) "));
    if (getenv("SSE_TEST_VERBOSE"))
        fputs(logs, stderr);
    return 0;
}

static int test_access_log(void)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.access_log = 1;
    o.log = log_cb;
    log_len = 0;
    log_text[0] = '\0';
    return run_with(&o, c_log);
}

/* ------------------------------------------------------------ reset by the peer mid-write */

static int pred_noconn(const struct snap *s, int n)
{
    return s->st.connections == (uint64_t)n;
}

static int c_reset(struct tctx *t)
{
    int fd = open_stream_fd(t, "/reg", 4096);
    CHECK(fd >= 0);
    CHECK(wait_for(t, pred_opened, 1, 5000));
    struct bcast b = {65536, 64, -1}; /* 4 MiB queued: the socket fills, a uv_write waits */
    loop_call(t, do_bcast, &b);
    usleep(50000);
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd); /* RST */
    CHECK(wait_for(t, pred_peer, 1, 5000));
    CHECK(wait_for(t, pred_noconn, 0, 5000)); /* freed in the close callback, a moment later */
    struct snap sn;
    loop_call(t, do_snap, &sn);
    CHECK_EQ_INT(sn.g.reasons[SSE_CLOSE_ERROR], 0);
    CHECK_EQ_INT(sn.g.open, 0);
    return 0;
}

static int test_peer_reset(void)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.stream_queue_max = 64u << 20;
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, &o, g), 0);
    int rc = tctx_run(&t, c_reset);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

/* ------------------------------------------------------------ connections, transports, heads */

/* An idle connection must not grow: struct sse__conn (with its inline HTTP/1.1 stream) plus the
 * TCP transport's state stays within one 416-byte malloc chunk, as before the transport seam. */
static int test_conn_size(void)
{
    size_t total = sizeof(struct sse__conn) + sse__transport_tcp.state_size;
    fprintf(stderr, "  sizeof: sse__conn %zu (stream %zu) + tcp %zu = %zu\n",
            sizeof(struct sse__conn), sizeof(struct sse_stream), sse__transport_tcp.state_size,
            total);
    CHECK(total <= 408);
    return 0;
}

/*
 * The transport seam: a test transport (TCP underneath) whose try_writev takes at most 3 bytes,
 * so every answer, stream head and event is split between try_writev and writev at odd offsets,
 * across the boundary of head and body. What the client reads must be byte for byte the same.
 */
static int trickle_calls;

static int trickle_try_writev(struct sse__conn *c, const uv_buf_t *bufs, unsigned n)
{
    uv_buf_t one = bufs[0];
    trickle_calls++;
    if (one.len > 3)
        one.len = 3;
    return sse__transport_tcp.try_writev(c, &one, 1);
}

static struct sse__transport trickle;

static int c_trickle(struct tctx *t)
{
    char buf[4096];
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    for (int i = 0; i < 3; i++) { /* keep-alive: three answers on one connection */
        CHECK_EQ_INT(cli_sends(fd, "GET /hello?t HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
        CHECK_EQ_INT(cli_status(buf), 200);
        CHECK(strstr(buf, "\r\n\r\nGET /hello q=t x=- body="));
    }
    close(fd);
    fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    size_t n = cli_read_until(fd, buf, sizeof(buf), 0, "data: hello\n\n");
    CHECK(n > 0);
    CHECK_EQ_INT(cli_status(buf), 200);
    CHECK(strstr(buf, "\r\nContent-Type: text/event-stream\r\n"));
    CHECK(strstr(buf, "\r\n\r\nid: 1\ndata: hello\n\n"));
    close(fd);
    CHECK_EQ_INT(one_request(t, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 404);
    CHECK(strstr(buf, "\r\n\r\n404 Not Found\n"));
    return 0;
}

static int test_transport_seam(void)
{
    struct tctx t;
    trickle = sse__transport_tcp;
    trickle.name = "trickle";
    trickle.try_writev = trickle_try_writev;
    trickle_calls = 0;
    CHECK_EQ_INT(setup(&t, NULL), 0);
    CHECK_EQ_INT(sse__server_listen_tp(t.s, "127.0.0.1", 0, &trickle, NULL), 0);
    /* the harness listens first (TCP); move the client to the trickle listener */
    struct sse__listener *l = t.s->listeners; /* the newest listener is first */
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    CHECK_EQ_INT(uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len), 0);
    t.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    CHECK_EQ_INT(t.s->tps[l->tp].ops == &trickle, 1);
    int rc = tctx_run(&t, c_trickle);
    CHECK(trickle_calls >= 5); /* one per answer, head or event: the rest went by writev */
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* Every HTTP/1.1 head comes from sse__h1_head: exact bytes for each kind. */
static int test_h1_heads(void)
{
    sse_buf b;
    sse_buf_init(&b, 0);
    struct sse__head interim = {100, NULL, 0, 0, NULL, 0, NULL, 0};
    CHECK_EQ_INT(sse__h1_head(&b, &interim, "D"), 0);
    CHECK_EQ_STR(sse_buf_cstr(&b), "HTTP/1.1 100 Continue\r\n\r\n");
    sse_buf_reset(&b);
    static const char extra[] = "X-A\0one\0X-B\0two";
    struct sse__field f[2] = {{"Allow", "GET"}, {"Vary", "Origin"}};
    struct sse__head h = {404, "text/plain", 10,           SSE__HEAD_LENGTH | SSE__HEAD_CLOSE, f,
                          2,   extra,        sizeof(extra)};
    CHECK_EQ_INT(sse__h1_head(&b, &h, "Sun, 06 Dec 2026 13:00:00 GMT"), 0);
    CHECK_EQ_STR(sse_buf_cstr(&b),
                 "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Dec 2026 13:00:00 GMT\r\n"
                 "Content-Type: text/plain\r\nContent-Length: 10\r\n"
                 "Allow: GET\r\nVary: Origin\r\nConnection: close\r\n"
                 "X-A: one\r\nX-B: two\r\n\r\n");
    sse_buf_reset(&b);
    struct sse__head k = {204, NULL, 0, SSE__HEAD_KEEPALIVE, NULL, 0, NULL, 0};
    CHECK_EQ_INT(sse__h1_head(&b, &k, "D"), 0);
    CHECK_EQ_STR(sse_buf_cstr(&b), "HTTP/1.1 204 No Content\r\nDate: D\r\n"
                                   "Connection: keep-alive\r\n\r\n");
    sse_buf_free(&b);
    return 0;
}

/* A pipelining client that sends far more than it reads: the server answers one request at a
 * time (one pending head per connection), pauses reading once a request's worth of bytes waits,
 * and in the end every answer arrives, complete and in order - no 413/431, nothing unbounded. */
#define PIPE_N 2000
#define PIPE_BODY 8192

static int paused_logs;

static void pipe_log_cb(void *ud, int level, const char *line)
{
    if (strstr(line, "reading paused"))
        paused_logs++;
}

static void get_paused(struct tctx *t, void *arg)
{
    *(int *)arg = paused_logs;
}

static int big_cb(sse_request *r, void *ud)
{
    static char body[PIPE_BODY];
    memset(body, 'x', sizeof(body));
    int n = snprintf(body, sizeof(body), "i=%s;", sse_request_query(r));
    body[n] = 'x';
    return sse_request_respond(r, 200, "text/plain", body, sizeof(body));
}

static int c_pipeline_unread(struct tctx *t)
{
    static char reqs[PIPE_N * 300];
    size_t rlen = 0;
    char pad[201];
    memset(pad, 'p', 200);
    pad[200] = '\0';
    for (int i = 0; i < PIPE_N; i++)
        rlen += (size_t)snprintf(reqs + rlen, sizeof(reqs) - rlen,
                                 "GET /big?%d HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", i, pad);
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    size_t sent = 0;
    /* phase 1: send what the socket takes, read nothing */
    for (;;) {
        ssize_t k = send(fd, reqs + sent, rlen - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k <= 0)
            break;
        sent += (size_t)k;
    }
    int paused = 0;
    for (int i = 0; i < 200 && !paused; i++) {
        usleep(10000);
        loop_call(t, get_paused, &paused);
    }
    CHECK(paused >= 1); /* the server stopped reading rather than answer 413/431 */
    /* phase 2: read every answer (and send the rest as the server takes it) */
    static char buf[1 << 16];
    size_t have = 0;
    int next = 0;
    while (next < PIPE_N) {
        if (sent < rlen) {
            ssize_t k = send(fd, reqs + sent, rlen - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (k > 0)
                sent += (size_t)k;
        }
        ssize_t k = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        CHECK(k > 0);
        have += (size_t)k;
        buf[have] = '\0';
        for (;;) { /* consume complete answers */
            char *end = strstr(buf, "\r\n\r\n");
            if (!end || have < (size_t)(end + 4 - buf) + PIPE_BODY)
                break;
            size_t head = (size_t)(end + 4 - buf);
            CHECK_EQ_INT(cli_status(buf), 200);
            char want[32];
            int wn = snprintf(want, sizeof(want), "i=%d;", next);
            CHECK_EQ_MEM(buf + head, (size_t)wn, want, (size_t)wn);
            next++;
            memmove(buf, buf + head + PIPE_BODY, have - head - PIPE_BODY);
            have -= head + PIPE_BODY;
            buf[have] = '\0';
        }
    }
    CHECK_EQ_UINT(sent, rlen);
    CHECK_EQ_UINT(have, 0);
    close(fd);
    return 0;
}

/* The same client, but it sends its requests and then shuts down its side (printf | nc): the
 * requests that wait behind an answer being written are still answered, then the server closes;
 * a stream opened by one of them closes as if the EOF came after it (SSE_CLOSE_PEER). */
#define HALF_N 1000

/* Runs the client; with_stream: a stream request (/reg) follows the pipelined ones. */
static int half_close_run(struct tctx *t, int with_stream)
{
    static char reqs[HALF_N * 64];
    size_t rlen = 0;
    for (int i = 0; i < HALF_N; i++)
        rlen += (size_t)snprintf(reqs + rlen, sizeof(reqs) - rlen,
                                 "GET /big?%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
    if (with_stream)
        rlen += (size_t)snprintf(reqs + rlen, sizeof(reqs) - rlen,
                                 "GET /reg HTTP/1.1\r\nHost: x\r\n\r\n");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    int small = 4096; /* a small window, so that the server's answers wait for the socket */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)t->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    CHECK_EQ_INT(cli_send(fd, reqs, rlen), 0);
    usleep(100000); /* the server reads everything and the EOF before the client reads */
    CHECK_EQ_INT(shutdown(fd, SHUT_WR), 0);
    usleep(100000);
    static char buf[1 << 16];
    size_t have = 0;
    int next = 0;
    ssize_t k;
    for (;;) {
        k = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (k <= 0)
            break; /* EOF, or the 5 s timeout */
        have += (size_t)k;
        buf[have] = '\0';
        for (;;) {
            char *end = strstr(buf, "\r\n\r\n");
            if (next == HALF_N || !end || have < (size_t)(end + 4 - buf) + PIPE_BODY)
                break;
            size_t head = (size_t)(end + 4 - buf);
            CHECK_EQ_INT(cli_status(buf), 200);
            char want[32];
            int wn = snprintf(want, sizeof(want), "i=%d;", next);
            CHECK_EQ_MEM(buf + head, (size_t)wn, want, (size_t)wn);
            next++;
            memmove(buf, buf + head + PIPE_BODY, have - head - PIPE_BODY);
            have -= head + PIPE_BODY;
            buf[have] = '\0';
        }
    }
    CHECK_EQ_INT((int)k, 0); /* the server closed: it did not keep the connection open */
    CHECK_EQ_INT(next, HALF_N);
    if (with_stream) { /* the stream opened (its head came), then closed as the peer's */
        CHECK_EQ_INT(cli_status(buf), 200);
        CHECK(strstr(buf, "\r\nContent-Type: text/event-stream\r\n"));
        struct snap sn;
        loop_call(t, do_snap, &sn);
        CHECK_EQ_INT(sn.g.reasons[SSE_CLOSE_PEER], 1);
        CHECK_EQ_INT(sn.g.open, 0);
    } else {
        CHECK_EQ_UINT(have, 0);
    }
    close(fd);
    return 0;
}

static int c_pipeline_half_close(struct tctx *t)
{
    return half_close_run(t, 0) || half_close_run(t, 1);
}

static int test_pipeline_half_close(void)
{
    struct tctx t;
    struct reg *g = calloc(1, sizeof(*g));
    CHECK_EQ_INT(reg_setup(&t, NULL, g), 0);
    sse_server_route(t.s, "GET", "/big", big_cb, NULL);
    int rc = tctx_run(&t, c_pipeline_half_close);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    free(g);
    return rc;
}

static int test_pipeline_unread(void)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.max_request_line = 256; /* pending limit: 256 + 512 + 256 + 64 KiB of slack */
    o.max_header_bytes = 512;
    o.max_body = 256;
    o.log = pipe_log_cb;
    struct tctx t;
    paused_logs = 0;
    CHECK_EQ_INT(tctx_init(&t, &o), 0);
    sse_server_route(t.s, "GET", "/big", big_cb, NULL);
    int rc = tctx_run(&t, c_pipeline_unread);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

CHECK_MAIN(CHECK_TEST(test_basic), CHECK_TEST(test_stream), CHECK_TEST(test_keepalive_pipelining),
           CHECK_TEST(test_http10), CHECK_TEST(test_bodies), CHECK_TEST(test_errors_and_limits),
           CHECK_TEST(test_timeouts), CHECK_TEST(test_max_connections), CHECK_TEST(test_heartbeat),
           CHECK_TEST(test_backpressure), CHECK_TEST(test_write_timeout),
           CHECK_TEST(test_write_batching), CHECK_TEST(test_fanout_no_alloc),
           CHECK_TEST(test_peer_close_and_deferred), CHECK_TEST(test_pipelined_timeout_not_renewed),
           CHECK_TEST(test_graceful_shutdown), CHECK_TEST(test_cors), CHECK_TEST(test_static_files),
           CHECK_TEST(test_many_streams), CHECK_TEST(test_listen_addresses),
           CHECK_TEST(test_listen_busy_port), CHECK_TEST(test_split_host_port),
           CHECK_TEST(test_failing_allocator), CHECK_TEST(test_stream_close_and_head),
           CHECK_TEST(test_mutated_requests), CHECK_TEST(test_access_log),
           CHECK_TEST(test_peer_reset), CHECK_TEST(test_conn_size), CHECK_TEST(test_h1_heads),
           CHECK_TEST(test_pipeline_unread), CHECK_TEST(test_pipeline_half_close),
           CHECK_TEST(test_transport_seam))
