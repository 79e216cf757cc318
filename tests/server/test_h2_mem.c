/*
 * test_h2_mem.c: the heap bytes an idle HTTP/2 connection with one event stream holds (library
 * and nghttp2 together, through the library's allocation hook) stay under 16 KiB: nghttp2's
 * 16,394-byte outbound frame buffer lives on pages mapped for it (h2.c, sse__ng_malloc), not
 * on the heap where reuse makes it resident; frames are still right after the sweep has handed
 * the buffer's pages back on quiet connections; and all of it is freed when the connections go.
 * docs/performance/h2.md has the measured numbers.
 */
#include "common/alloc.h"
#include "harness.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CONNS 16

/* Live heap bytes of the library (glibc's usable size of each block), counted on every call:
   the hook is set before the server exists, so every block freed was counted when made. */
static long live_bytes;
static void *count_malloc(size_t n)
{
    void *p = malloc(n);
    if (p)
        live_bytes += (long)malloc_usable_size(p);
    return p;
}
static void *count_realloc(void *p, size_t n)
{
    long was = p ? (long)malloc_usable_size(p) : 0;
    void *q = realloc(p, n);
    if (q)
        live_bytes += (long)malloc_usable_size(q) - was;
    return q;
}
static void count_free(void *p)
{
    if (p)
        live_bytes -= (long)malloc_usable_size(p);
    free(p);
}
static const struct sse__allocator counting = {count_malloc, count_realloc, count_free};

static int opened, open_now;
static sse_stream *streams[CONNS];
static void on_close(sse_stream *st, int reason, void *ud)
{
    (void)st, (void)reason, (void)ud;
    open_now--;
}
static void stream_cb(sse_stream *st, const sse_request *r, void *ud)
{
    (void)r, (void)ud;
    if (opened < CONNS)
        streams[opened] = st;
    opened++;
    open_now++;
    sse_stream_on_close(st, on_close, NULL);
}

struct snap {
    long live;
    int opened, open_now;
};
static void do_snap(struct tctx *t, void *arg)
{
    (void)t;
    struct snap *s = arg;
    s->live = live_bytes;
    s->opened = opened;
    s->open_now = open_now;
}
static struct snap snap(struct tctx *t)
{
    struct snap s;
    loop_call(t, do_snap, &s);
    return s;
}

static size_t lit(unsigned char *o, const char *name, const char *value)
{
    size_t a = strlen(name), b = strlen(value);
    o[0] = 0; /* literal without indexing, new name, no Huffman */
    o[1] = (unsigned char)a;
    memcpy(o + 2, name, a);
    o[2 + a] = (unsigned char)b;
    memcpy(o + 3 + a, value, b);
    return 3 + a + b;
}

/* The preface, SETTINGS, a SETTINGS ACK and GET /reg on stream 1, in one write. */
static int open_stream(int port)
{
    unsigned char out[256];
    size_t k = 0;
    memcpy(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    k = 24;
    memcpy(out + k, "\0\0\0\x04\0\0\0\0\0\0\0\0\x04\x01\0\0\0\0", 18);
    k += 18;
    unsigned char blk[128];
    size_t n = lit(blk, ":method", "GET");
    n += lit(blk + n, ":scheme", "http");
    n += lit(blk + n, ":authority", "x");
    n += lit(blk + n, ":path", "/reg");
    unsigned char hd[9] = {0, 0, (unsigned char)n, 1, 5, 0, 0, 0, 1}; /* END_STREAM|END_HEADERS */
    memcpy(out + k, hd, 9);
    memcpy(out + k + 9, blk, n);
    k += 9 + n;
    int fd = cli_connect(port);
    if (fd < 0)
        return -1;
    if (cli_send(fd, out, k) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One event to every stream, from the loop thread. */
static void do_bcast(struct tctx *t, void *arg)
{
    (void)t;
    sse_frame *f;
    if (sse_frame_new(&f, arg, strlen(arg)))
        return;
    for (int i = 0; i < opened && i < CONNS; i++)
        sse_stream_send_frame(streams[i], f);
    sse_frame_unref(f);
}

static const char *want_data; /* got_frame: a DATA frame on stream 1 with exactly this */

/* Read frames on fd until a HEADERS frame on stream 1 (the 200 head), or with want_data set,
   a DATA frame on stream 1 carrying want_data; 1 if it came. */
static int got_frame(int fd)
{
    unsigned char buf[4096];
    size_t have = 0;
    for (int tries = 0; tries < 100;) {
        size_t off = 0;
        while (have - off >= 9) {
            size_t len = (size_t)buf[off] << 16 | (size_t)buf[off + 1] << 8 | buf[off + 2];
            if (have - off < 9 + len)
                break;
            uint32_t sid = ((uint32_t)buf[off + 5] & 0x7f) << 24 | (uint32_t)buf[off + 6] << 16 |
                           (uint32_t)buf[off + 7] << 8 | buf[off + 8];
            if (!want_data && buf[off + 3] == 1 && sid == 1)
                return 1;
            if (want_data && buf[off + 3] == 0 && sid == 1 && len == strlen(want_data) &&
                memcmp(buf + off + 9, want_data, len) == 0)
                return 1;
            off += 9 + len;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) {
            tries++;
            continue;
        }
        ssize_t r = read(fd, buf + have, sizeof(buf) - have);
        if (r <= 0)
            return 0;
        have += (size_t)r;
    }
    return 0;
}

/* RssAnon of this process (the server runs in it), kB. */
static long rss_anon_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "RssAnon:", 8) == 0)
            v = strtol(line + 8, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static int c_idle_conn_bytes(struct tctx *t)
{
    int fds[CONNS];
    struct snap s0 = snap(t);
    for (int i = 0; i < CONNS; i++) {
        fds[i] = open_stream(t->port);
        CHECK(fds[i] >= 0);
        CHECK(got_frame(fds[i])); /* the session works on its mapped frame buffer */
    }
    struct snap s1 = snap(t);
    for (int i = 0; i < 300 && s1.opened < CONNS; i++) {
        usleep(10000);
        s1 = snap(t);
    }
    CHECK_EQ_INT(s1.opened, CONNS);
    long per_conn = (s1.live - s0.live) / CONNS;
    fprintf(stderr, "idle h2c connection, one stream: %ld heap bytes\n", per_conn);
    CHECK(per_conn > 4096);  /* the count sees nghttp2's session (~9 KB up front) */
    CHECK(per_conn < 16384); /* ...but not its 16 KiB frame buffer */
    /* quiet for longer than SSE__H2_TRIM_IDLE_MS: the sweep handed the frame buffers' pages
       back; the next frames are whole and right (the pages come back zeroed) */
    long rss0 = rss_anon_kb();
    usleep(2200000);
    long rss1 = rss_anon_kb();
    fprintf(stderr, "idle 2.2 s: anonymous RSS %+ld kB\n", rss1 - rss0);
    CHECK(rss0 - rss1 >= CONNS * 4 / 2); /* a page each (at least half of them seen) */
    want_data = "data: after the trim\n\n";
    loop_call(t, do_bcast, (void *)want_data);
    for (int i = 0; i < CONNS; i++)
        CHECK(got_frame(fds[i]));
    want_data = NULL;
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    struct snap s2 = snap(t);
    for (int i = 0; i < 300 && s2.open_now > 0; i++) {
        usleep(10000);
        s2 = snap(t);
    }
    CHECK_EQ_INT(s2.open_now, 0);
    usleep(100000); /* the handles' close callbacks */
    s2 = snap(t);
    fprintf(stderr, "after the close: %+ld heap bytes\n", s2.live - s0.live);
    CHECK(s2.live - s0.live < 2048); /* everything made for them is freed */
    return 0;
}

static int test_h2_idle_conn_bytes(void)
{
    struct tctx t;
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.h2c = 1;
    sse__set_allocator(&counting); /* before the server: every block is counted both ways */
    CHECK_EQ_INT(tctx_init(&t, &o), 0);
    sse_server_route_stream(t.s, "/reg", stream_cb, NULL);
    int rc = tctx_run(&t, c_idle_conn_bytes);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    sse__set_allocator(NULL);
    return rc;
}

CHECK_MAIN(CHECK_TEST(test_h2_idle_conn_bytes))
