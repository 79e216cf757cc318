/*
 * test_queue_limit.c: stream_queue_max is enforced at exactly its value (issue 9: a mutation that
 * enforced it at 8x survived the suite, because test_server only checks that a slow reader is
 * dropped "at some point").
 *
 * The frames are queued from the stream callback, in one loop turn, so nothing is written to the
 * socket in between: the queued byte count is exact. Queuing up to the limit is accepted, one
 * byte more is SSE_ELIMIT, and a single frame one byte over the room left is refused.
 */
#include "harness.h"

#include <sse/buf.h>
#include <sse/error.h>
#include <stdlib.h>

#define QMAX (64u * 1024u)

struct result {
    int streams;     /* streams opened so far */
    size_t q0;       /* bytes queued when the callback started (the response head, if any) */
    int rc_fill;     /* /fill: queuing exactly the room left */
    size_t q_full;   /* /fill: queued bytes after that */
    int rc_one_more; /* /fill: then one byte more */
    int rc_over;     /* /over: one frame one byte larger than the room left */
    size_t q_over;   /* /over: queued bytes after the refusal */
};

static int send_bytes(sse_stream *st, size_t n)
{
    char *p = malloc(n);
    if (!p)
        return SSE_ENOMEM;
    memset(p, ':', n);
    sse_frame *f;
    int rc = sse_frame_new(&f, p, n);
    free(p);
    if (rc)
        return rc;
    rc = sse_stream_send_frame(st, f);
    sse_frame_unref(f);
    return rc;
}

static void on_fill(sse_stream *st, const sse_request *req, void *ud)
{
    (void)req;
    struct result *r = ud;
    r->q0 = sse_stream_queued_bytes(st);
    r->rc_fill = r->q0 < QMAX ? send_bytes(st, QMAX - r->q0) : -1;
    r->q_full = sse_stream_queued_bytes(st);
    r->rc_one_more = send_bytes(st, 1);
    r->streams++;
}

static void on_over(sse_stream *st, const sse_request *req, void *ud)
{
    (void)req;
    struct result *r = ud;
    size_t q0 = sse_stream_queued_bytes(st);
    r->rc_over = q0 < QMAX ? send_bytes(st, QMAX - q0 + 1) : -1;
    r->q_over = sse_stream_queued_bytes(st);
    r->streams++;
}

static void snap(struct tctx *t, void *arg)
{
    *(struct result *)arg = *(struct result *)t->user;
}

static int open_stream(struct tctx *t, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)t->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[128];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    return fd;
}

static int client(struct tctx *t)
{
    int a = open_stream(t, "/fill");
    int b = open_stream(t, "/over");
    CHECK(a >= 0 && b >= 0);
    struct result r = {0};
    for (int i = 0; i < 500 && r.streams < 2; i++) { /* at most 5 s */
        usleep(10000);
        loop_call(t, snap, &r);
    }
    close(a);
    close(b);
    CHECK_EQ_INT(r.streams, 2);
    CHECK(r.q0 < QMAX);
    CHECK_EQ_INT(r.rc_fill, 0);              /* exactly at the limit: accepted */
    CHECK_EQ_UINT(r.q_full, QMAX);           /* and nothing was written in between */
    CHECK_EQ_INT(r.rc_one_more, SSE_ELIMIT); /* one byte past it: refused */
    CHECK_EQ_INT(r.rc_over, SSE_ELIMIT);     /* one frame one byte too large: refused */
    CHECK(r.q_over < QMAX);                  /* and not queued */
    return 0;
}

static int test_queue_limit_exact(void)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.stream_queue_max = QMAX;
    o.heartbeat_ms = UINT32_MAX; /* no heartbeat comment in the queue */
    struct tctx t;
    struct result res = {0};
    CHECK_EQ_INT(tctx_init(&t, &o), 0);
    t.user = &res;
    CHECK_EQ_INT(sse_server_route_stream(t.s, "/fill", on_fill, &res), 0);
    CHECK_EQ_INT(sse_server_route_stream(t.s, "/over", on_over, &res), 0);
    int rc = tctx_run(&t, client);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

CHECK_MAIN(CHECK_TEST(test_queue_limit_exact))
