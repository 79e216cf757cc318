/*
 * h2_fuzzer.c: the server's HTTP/2 glue (src/server/h2.c over nghttp2) with the fuzzer as the
 * client: its bytes arrive on a connection switched to HTTP/2, in random pieces, while the
 * server answers requests, opens event streams, sends events to them and flushes.
 *
 * The connection runs on a transport of this file's own (no socket): reads are the fuzzer's
 * bytes, writes are taken whole or in part (input-chosen) and dropped, so the partial-write path
 * (pieces kept across a writev) runs too. Input layout: byte 0 picks the split sizes, byte 1 the
 * write behaviour, the rest is what the client sent (normally starting with the preface).
 * Invariants checked (a failure traps): the server's counters of connections and streams go back
 * to zero once the connection is closed, and the allocator sees no leak (ASan, in the replay).
 */
#include "common/alloc.h"
#include "fuzz_common.h"
#include "server/internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned write_mode; /* 0: take all; 1: take half and finish in writev; 2: short */
static const uv_buf_t *pending_bufs;
static int pending_write;

static int fz_accept(struct sse__conn *c, uv_stream_t *listener)
{
    (void)c, (void)listener;
    return 0;
}
static int fz_read_start(struct sse__conn *c)
{
    (void)c;
    return 0;
}
static void fz_read_stop(struct sse__conn *c)
{
    (void)c;
}
static int fz_try_writev(struct sse__conn *c, const uv_buf_t *bufs, unsigned n)
{
    (void)c;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if (write_mode == 0)
        return (int)total;
    if (write_mode == 1)
        return (int)(total / 2);
    return total > 3 ? 3 : (int)total;
}
static int fz_writev(struct sse__conn *c, const uv_buf_t *bufs, unsigned n)
{
    (void)c, (void)n;
    pending_bufs = bufs;
    pending_write = 1; /* completed by the driver below */
    return 0;
}
static int fz_shutdown(struct sse__conn *c)
{
    (void)c;
    return -1; /* no linger: close at once */
}
static void fz_close(struct sse__conn *c)
{
    sse__conn_closed(c);
}
static int fz_peer_addr(struct sse__conn *c, char *out, size_t cap)
{
    (void)c;
    snprintf(out, cap, "fuzz");
    return 0;
}

static const struct sse__transport fz_transport = {
    .name = "fuzz",
    .state_size = 0,
    .accept = fz_accept,
    .read_start = fz_read_start,
    .read_stop = fz_read_stop,
    .try_writev = fz_try_writev,
    .writev = fz_writev,
    .shutdown = fz_shutdown,
    .close = fz_close,
    .peer_addr = fz_peer_addr,
};

static int echo_cb(sse_request *r, void *ud)
{
    (void)ud;
    size_t blen;
    const char *b = sse_request_body(r, &blen);
    return sse_request_respond(r, 200, "text/plain", b, blen);
}

static sse_stream *streams[8];
static int nstreams;

static void on_close(sse_stream *st, int reason, void *ud)
{
    (void)reason, (void)ud;
    for (int i = 0; i < nstreams; i++)
        if (streams[i] == st)
            streams[i] = NULL;
}

static void stream_cb(sse_stream *st, const sse_request *r, void *ud)
{
    (void)r, (void)ud;
    sse_stream_on_close(st, on_close, NULL);
    if (nstreams < 8)
        streams[nstreams++] = st;
    sse_stream_comment(st, "hello");
    if (strcmp(sse_request_query(r), "close") == 0)
        sse_stream_close(st);
}

static void quiet(void *ud, int level, const char *line)
{
    (void)ud, (void)level, (void)line;
}

static void done_cb(sse_server *s, void *ud)
{
    (void)s;
    *(int *)ud = 1;
}

/* Complete a transport writev the server started (the bytes are dropped). */
static void finish_write(struct sse__conn *c)
{
    if (pending_write && c) {
        pending_write = 0;
        sse__conn_write_done(c, 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned split = data[0], mode = data[1] % 3;
    data += 2;
    size -= 2;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sse_server *s;
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.h2c = 1;
    o.max_body = 4096;
    o.max_header_bytes = 2048;
    o.stream_queue_max = 8192;
    o.h2_max_streams = 8;
    o.log = quiet;
    if (sse_server_new(&s, &loop, &o)) {
        uv_loop_close(&loop);
        return 0;
    }
    sse_server_route(s, NULL, "/echo", echo_cb, NULL);
    sse_server_route_stream(s, "/events", stream_cb, NULL);
    s->tps[s->ntps].ops = &fz_transport;
    s->tps[s->ntps].ctx = NULL;
    uint8_t tp = (uint8_t)s->ntps++;
    nstreams = 0;
    memset(streams, 0, sizeof(streams));
    write_mode = mode;
    pending_write = 0;

    struct sse__conn *c = sse__calloc(1, sizeof(*c));
    REQUIRE(c);
    c->srv = s;
    c->tp = tp;
    c->st.conn = c;
    c->state = SSE__ST_READ;
    s->conns = c;
    s->st.connections++;
    sse__conn_start_h2(c);
    sse_frame *ev = NULL;
    (void)sse_frame_new(&ev, "data: x\n\n", 9);
    size_t off = 0;
    uint32_t rng = split * 2654435761u + 1;
    while (off < size && s->conns) {
        rng = rng * 1103515245u + 12345u;
        size_t n = split < 128 ? size - off : 1 + (rng >> 16) % 64;
        if (n > size - off)
            n = size - off;
        char *chunk = malloc(n); /* a copy: the parser may change bytes in place */
        memcpy(chunk, data + off, n);
        sse__conn_on_read(c, chunk, (ssize_t)n);
        free(chunk);
        off += n;
        if (!s->conns)
            break;
        for (int i = 0; i < nstreams; i++)
            if (streams[i])
                sse_stream_send_frame(streams[i], ev);
        sse__server_walk(s);
        if (s->conns)
            finish_write(c);
    }
    sse_frame_unref(ev);
    if (s->conns) {      /* the client goes away */
        finish_write(c); /* may close it (no linger here) */
        if (s->conns)
            sse__conn_on_read(c, NULL, UV_EOF);
        sse__server_walk(s);
    }
    REQUIRE(s->conns == NULL);
    sse_server_stats st;
    sse_server_get_stats(s, &st);
    REQUIRE(st.connections == 0 && st.streams == 0);
    int done = 0;
    sse_server_close(s, 10, done_cb, &done);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    sse_server_free(s);
    uv_loop_close(&loop);
    return 0;
}
