/*
 * test_server.c: the server over real loopback sockets: routes, requests, limits and error
 * statuses, keep-alive and pipelining, chunked bodies, CORS, streams, heartbeats, backpressure,
 * write batching, shutdown.
 */
#include "harness.h"

#include <stdlib.h>

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
    CHECK(strstr(buf, "\r\n\r\nid: 1\ndata: hello\n\n") || strstr(buf, "\r\n\r\nid:1\ndata:hello\n\n"));
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

CHECK_MAIN(CHECK_TEST(test_basic), CHECK_TEST(test_stream))
