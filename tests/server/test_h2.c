/*
 * test_h2.c: the server's HTTP/2 (h2c by prior knowledge) over real loopback sockets, spoken by a
 * raw-frame client (frames written by hand, HPACK by nghttp2's deflater/inflater): requests with
 * and without bodies, many event streams on one connection, RST_STREAM and close cleanup, stream
 * close from the server, the per-stream bound under a zero window, the no-allocation fan-out, the
 * limits (streams, header list, body) and the attacks (rapid reset, CONTINUATION flood,
 * PING / SETTINGS floods, garbage after the preface).
 */
#include "common/alloc.h"
#include "harness.h"
#include "server/internal.h" /* sse__server_walk: the fan-out + flush, counted */

#include <nghttp2/nghttp2.h>
#include <stdlib.h>

/* ------------------------------------------------------------ the raw HTTP/2 client */

#define H2_STREAMS 64

struct h2s_seen {
    char data[16384];
    size_t len;
    int status; /* :status of the response, 0 until its HEADERS */
    int rst;    /* RST_STREAM seen */
    uint32_t rst_code;
    int ended; /* END_STREAM seen */
};

struct h2cli {
    int fd;
    nghttp2_hd_deflater *def;
    nghttp2_hd_inflater *inf;
    struct h2s_seen s[H2_STREAMS];
    int goaway, eof;
    uint32_t goaway_code;
    unsigned char rbuf[1 << 17];
    size_t rlen;
    int32_t next_id;
};

static struct h2s_seen *h2_seen(struct h2cli *c, int32_t id)
{
    int i = (id - 1) / 2;
    return id > 0 && (id & 1) && i < H2_STREAMS ? &c->s[i] : NULL;
}

static int h2_frame(struct h2cli *c, uint8_t type, uint8_t flags, int32_t id, const void *p,
                    size_t len)
{
    unsigned char hd[9] = {(unsigned char)(len >> 16),
                           (unsigned char)(len >> 8),
                           (unsigned char)len,
                           type,
                           flags,
                           (unsigned char)((uint32_t)id >> 24),
                           (unsigned char)(id >> 16),
                           (unsigned char)(id >> 8),
                           (unsigned char)id};
    if (cli_send(c->fd, hd, 9))
        return -1;
    return len ? cli_send(c->fd, p, len) : 0;
}

/* Connect, send the preface and SETTINGS (initial window iw; 0 = the default). */
static int h2_open(struct h2cli *c, int port, int iw_set, uint32_t iw)
{
    memset(c, 0, sizeof(*c));
    c->next_id = 1;
    c->fd = cli_connect(port);
    if (c->fd < 0 || nghttp2_hd_deflate_new(&c->def, 4096) || nghttp2_hd_inflate_new(&c->inf))
        return -1;
    if (cli_send(c->fd, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24))
        return -1;
    unsigned char set[6] = {0,
                            4,
                            (unsigned char)(iw >> 24),
                            (unsigned char)(iw >> 16),
                            (unsigned char)(iw >> 8),
                            (unsigned char)iw};
    if (h2_frame(c, 4, 0, 0, set, iw_set ? 6 : 0))
        return -1;
    if (!iw_set) { /* a large connection window: tests read all they get */
        uint32_t inc = (1u << 30);
        unsigned char wu[4] = {(unsigned char)(inc >> 24), (unsigned char)(inc >> 16),
                               (unsigned char)(inc >> 8), (unsigned char)inc};
        return h2_frame(c, 8, 0, 0, wu, 4);
    }
    return 0;
}

static void h2_close(struct h2cli *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    nghttp2_hd_deflate_del(c->def);
    nghttp2_hd_inflate_del(c->inf);
    c->def = NULL;
    c->inf = NULL;
}

static int h2_window_update(struct h2cli *c, int32_t id, uint32_t inc)
{
    unsigned char wu[4] = {(unsigned char)(inc >> 24), (unsigned char)(inc >> 16),
                           (unsigned char)(inc >> 8), (unsigned char)inc};
    return h2_frame(c, 8, 0, id, wu, 4);
}

static int h2_rst(struct h2cli *c, int32_t id)
{
    unsigned char code[4] = {0, 0, 0, 8}; /* CANCEL */
    return h2_frame(c, 3, 0, id, code, 4);
}

/* HPACK-encode the request fields into out (cap); returns the length or -1. */
static long h2_block(struct h2cli *c, const char *method, const char *path, const char **extra,
                     unsigned char *out, size_t cap)
{
    nghttp2_nv nv[64];
    size_t n = 0;
#define NV(a, b)                                                                                   \
    nv[n++] =                                                                                      \
        (nghttp2_nv){(uint8_t *)(a), (uint8_t *)(b), strlen(a), strlen(b), NGHTTP2_NV_FLAG_NONE}
    NV(":method", method);
    NV(":scheme", "http");
    NV(":authority", "localhost");
    NV(":path", path);
    for (int i = 0; extra && extra[i] && n < 62; i += 2)
        NV(extra[i], extra[i + 1]);
#undef NV
    ssize_t r = nghttp2_hd_deflate_hd(c->def, out, cap, nv, n);
    return r < 0 ? -1 : (long)r;
}

/* Send a request on a new stream (its id returned; 0 on error). */
static int32_t h2_request(struct h2cli *c, const char *method, const char *path, const char **extra,
                          const char *body, size_t blen)
{
    unsigned char blk[32768];
    long n = h2_block(c, method, path, extra, blk, sizeof(blk));
    int32_t id = c->next_id;
    c->next_id += 2;
    if (n < 0 || h2_frame(c, 1, 0x4 | (body ? 0 : 0x1), id, blk, (size_t)n))
        return 0;
    if (body && h2_frame(c, 0, 0x1, id, body, blen))
        return 0;
    return id;
}

/* Handle one complete frame from the server. */
static void h2_handle(struct h2cli *c, const unsigned char *f, size_t len, uint8_t type,
                      uint8_t flags, int32_t id)
{
    struct h2s_seen *s = h2_seen(c, id);
    if (type == 0 && s) { /* DATA */
        size_t room = sizeof(s->data) - s->len;
        memcpy(s->data + s->len, f, len < room ? len : room);
        s->len += len < room ? len : room;
    } else if (type == 1 && s) { /* HEADERS: its :status */
        const uint8_t *in = f;
        size_t left = len;
        for (;;) {
            nghttp2_nv nv;
            int iflags = 0;
            ssize_t r = nghttp2_hd_inflate_hd2(c->inf, &nv, &iflags, in, left, 1);
            if (r < 0)
                break;
            in += r;
            left -= (size_t)r;
            if ((iflags & NGHTTP2_HD_INFLATE_EMIT) && nv.namelen == 7 &&
                !memcmp(nv.name, ":status", 7))
                s->status = atoi((const char *)nv.value);
            if (iflags & NGHTTP2_HD_INFLATE_FINAL) {
                nghttp2_hd_inflate_end_headers(c->inf);
                break;
            }
            if (r == 0 && left == 0)
                break;
        }
    } else if (type == 3 && s) { /* RST_STREAM */
        s->rst = 1;
        s->rst_code =
            len >= 4 ? ((uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 | (uint32_t)f[2] << 8 | f[3])
                     : 0;
    } else if (type == 4 && !(flags & 1)) { /* SETTINGS: acknowledge */
        h2_frame(c, 4, 1, 0, NULL, 0);
    } else if (type == 7) { /* GOAWAY */
        c->goaway = 1;
        c->goaway_code =
            len >= 8 ? ((uint32_t)f[4] << 24 | (uint32_t)f[5] << 16 | (uint32_t)f[6] << 8 | f[7])
                     : 0;
    }
    if ((type == 0 || type == 1) && (flags & 1) && s)
        s->ended = 1;
}

/* Read frames for up to ms until pred(c, arg) holds (1) or the time is up / EOF (0). */
static int h2_pump(struct h2cli *c, int ms, int (*pred)(struct h2cli *c, int arg), int arg)
{
    struct timeval t0, t1;
    gettimeofday(&t0, NULL);
    for (;;) {
        if (pred && pred(c, arg))
            return 1;
        if (c->eof)
            return 0;
        gettimeofday(&t1, NULL);
        long el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
        if (el >= ms)
            return pred ? pred(c, arg) : 1;
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, (int)(ms - el)) <= 0)
            continue;
        ssize_t r = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
        if (r <= 0) {
            c->eof = 1;
            continue;
        }
        c->rlen += (size_t)r;
        size_t off = 0;
        while (c->rlen - off >= 9) {
            const unsigned char *h = c->rbuf + off;
            size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
            if (c->rlen - off < 9 + len)
                break;
            int32_t id = (int32_t)(((uint32_t)h[5] & 0x7f) << 24 | (uint32_t)h[6] << 16 |
                                   (uint32_t)h[7] << 8 | h[8]);
            h2_handle(c, h + 9, len, h[3], h[4], id);
            off += 9 + len;
        }
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
}

static int p_status(struct h2cli *c, int id)
{
    struct h2s_seen *s = h2_seen(c, id);
    return s && s->status && (s->ended || s->rst);
}

static int p_rst(struct h2cli *c, int id)
{
    struct h2s_seen *s = h2_seen(c, id);
    return s && s->rst;
}

static int p_refused(struct h2cli *c, int id)
{
    return p_rst(c, id) || c->goaway;
}

static int p_goaway_eof(struct h2cli *c, int unused)
{
    (void)unused;
    return c->goaway && c->eof;
}

/* Every stream in [1, 2*arg) has received the needle count given by h2_needle_count. */
static const char *h2_needle;
static int h2_needle_count;
static int count_in(const char *hay, size_t len, const char *needle)
{
    int n = 0;
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= len; i++)
        if (!memcmp(hay + i, needle, nl))
            n++;
    return n;
}
static int p_all_have(struct h2cli *c, int nstreams)
{
    for (int i = 0; i < nstreams; i++)
        if (count_in(c->s[i].data, c->s[i].len, h2_needle) < h2_needle_count)
            return 0;
    return 1;
}

/* ------------------------------------------------------------ the server side */

static int echo_cb(sse_request *r, void *ud)
{
    (void)ud;
    char body[2048];
    size_t blen;
    const char *b = sse_request_body(r, &blen);
    const char *x = sse_request_header(r, "x-test");
    const char *host = sse_request_header(r, "host");
    int n = snprintf(body, sizeof(body), "%s %s q=%s x=%s host=%s body=%.*s", sse_request_method(r),
                     sse_request_path(r), sse_request_query(r), x ? x : "-", host ? host : "-",
                     (int)(blen > 1000 ? 1000 : blen), b);
    return sse_request_respond(r, 200, "text/plain", body, (size_t)n);
}

#define REG_MAX 256
struct reg {
    sse_stream *st[REG_MAX];
    int n, open;
    int reasons[5];
};
static struct reg reg;

static void reg_on_close(sse_stream *st, int reason, void *ud)
{
    (void)ud;
    for (int i = 0; i < reg.n; i++)
        if (reg.st[i] == st)
            reg.st[i] = NULL;
    reg.open--;
    reg.reasons[reason]++;
}

static void reg_stream_cb(sse_stream *st, const sse_request *r, void *ud)
{
    (void)r, (void)ud;
    if (reg.n < REG_MAX)
        reg.st[reg.n++] = st;
    reg.open++;
    sse_stream_on_close(st, reg_on_close, NULL);
}

static int setup(struct tctx *t, sse_server_options *o)
{
    sse_server_options d = SSE_SERVER_OPTIONS_INIT;
    if (!o)
        o = &d;
    o->h2c = 1;
    memset(&reg, 0, sizeof(reg));
    if (tctx_init(t, o))
        return -1;
    sse_server_route(t->s, NULL, "/echo", echo_cb, NULL);
    sse_server_route_stream(t->s, "/reg", reg_stream_cb, NULL);
    return 0;
}

struct snap {
    int n, open;
    int reasons[5];
    sse_server_stats st;
};
static void do_snap(struct tctx *t, void *arg)
{
    struct snap *s = arg;
    s->n = reg.n;
    s->open = reg.open;
    memcpy(s->reasons, reg.reasons, sizeof(s->reasons));
    sse_server_get_stats(t->s, &s->st);
}
static struct snap snap(struct tctx *t)
{
    struct snap s;
    loop_call(t, do_snap, &s);
    return s;
}
static int wait_reg(struct tctx *t, int (*pred)(const struct snap *s, int arg), int arg, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        struct snap s = snap(t);
        if (pred(&s, arg))
            return 1;
        usleep(10000);
    }
    return 0;
}
static int r_opened(const struct snap *s, int n)
{
    return s->n >= n;
}
static int r_open_is(const struct snap *s, int n)
{
    return s->open == n;
}

struct bcast {
    const char *text;
    int only; /* -1: every stream */
};
static void do_bcast(struct tctx *t, void *arg)
{
    (void)t;
    struct bcast *b = arg;
    sse_frame *f;
    if (sse_frame_new(&f, b->text, strlen(b->text)))
        return;
    for (int i = 0; i < reg.n; i++)
        if (reg.st[i] && (b->only < 0 || b->only == i))
            sse_stream_send_frame(reg.st[i], f);
    sse_frame_unref(f);
}
static void bcast(struct tctx *t, const char *text, int only)
{
    struct bcast b = {text, only};
    loop_call(t, do_bcast, &b);
}
static void do_close_one(struct tctx *t, void *arg)
{
    (void)t;
    int i = *(int *)arg;
    if (reg.st[i])
        sse_stream_close(reg.st[i]);
}

/* ------------------------------------------------------------ requests */

static int c_requests(struct tctx *t)
{
    struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
    const char *hdr[] = {"x-test", "yes", NULL};
    int32_t a = h2_request(&c, "GET", "/echo?a=1&b=2", hdr, NULL, 0);
    int32_t b = h2_request(&c, "POST", "/echo", NULL, "topic=%2Fa&data=hi", 18);
    int32_t d = h2_request(&c, "GET", "/nowhere", NULL, NULL, 0);
    CHECK(h2_pump(&c, 3000, p_status, a));
    CHECK(h2_pump(&c, 3000, p_status, b));
    CHECK(h2_pump(&c, 3000, p_status, d));
    struct h2s_seen *sa = h2_seen(&c, a), *sb = h2_seen(&c, b), *sd = h2_seen(&c, d);
    CHECK_EQ_INT(sa->status, 200);
    CHECK_EQ_MEM(sa->data, sa->len, "GET /echo q=a=1&b=2 x=yes host=localhost body=", 46);
    CHECK_EQ_INT(sb->status, 200);
    CHECK_EQ_MEM(sb->data, sb->len, "POST /echo q= x=- host=localhost body=topic=%2Fa&data=hi", 56);
    CHECK_EQ_INT(sd->status, 404);
    /* HEAD: the head only, END_STREAM on it */
    int32_t e = h2_request(&c, "HEAD", "/echo", NULL, NULL, 0);
    CHECK(h2_pump(&c, 3000, p_status, e));
    CHECK_EQ_INT(h2_seen(&c, e)->status, 200);
    CHECK_EQ_INT((int)h2_seen(&c, e)->len, 0);
    h2_close(&c);
    /* HTTP/1.1 on the same listener still works */
    char buf[2048];
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_sends(fd, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
    CHECK_EQ_INT(cli_status(buf), 200);
    close(fd);
    return 0;
}

/* The preface in pieces (its first 18 bytes are a complete HTTP/1.1 head): still HTTP/2. */
static int c_split_preface(struct tctx *t)
{
    struct h2cli c;
    memset(&c, 0, sizeof(c));
    c.next_id = 1;
    c.fd = cli_connect(t->port);
    CHECK(c.fd >= 0);
    CHECK_EQ_INT(nghttp2_hd_deflate_new(&c.def, 4096), 0);
    CHECK_EQ_INT(nghttp2_hd_inflate_new(&c.inf), 0);
    const char *pre = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    CHECK_EQ_INT(cli_send(c.fd, pre, 5), 0);
    usleep(50000);
    CHECK_EQ_INT(cli_send(c.fd, pre + 5, 13), 0);
    usleep(50000);
    CHECK_EQ_INT(cli_send(c.fd, pre + 18, 6), 0);
    CHECK_EQ_INT(h2_frame(&c, 4, 0, 0, NULL, 0), 0);
    int32_t a = h2_request(&c, "GET", "/echo", NULL, NULL, 0);
    CHECK(h2_pump(&c, 3000, p_status, a));
    CHECK_EQ_INT(h2_seen(&c, a)->status, 200);
    h2_close(&c);
    return 0;
}

static int c_requests_all(struct tctx *t)
{
    return c_requests(t) || c_split_preface(t);
}

static int test_h2_requests(void)
{
    struct tctx t;
    CHECK_EQ_INT(setup(&t, NULL), 0);
    int rc = tctx_run(&t, c_requests_all);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* Without o.h2c the preface is an HTTP/1.1 request like any other: refused, not switched. */
static int c_h2c_off(struct tctx *t)
{
    char buf[2048];
    int fd = cli_connect(t->port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(cli_send(fd, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24), 0);
    CHECK(cli_read_response(fd, buf, sizeof(buf)) > 0);
    CHECK(cli_status(buf) >= 400);
    close(fd);
    return 0;
}

static int test_h2c_off(void)
{
    struct tctx t;
    memset(&reg, 0, sizeof(reg));
    CHECK_EQ_INT(tctx_init(&t, NULL), 0);
    int rc = tctx_run(&t, c_h2c_off);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* ------------------------------------------------------------ many streams, cleanup */

#define NSTREAMS 20

static int c_many_streams(struct tctx *t)
{
    struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
    for (int i = 0; i < NSTREAMS; i++)
        CHECK(h2_request(&c, "GET", "/reg", NULL, NULL, 0) == 2 * i + 1);
    CHECK(wait_reg(t, r_opened, NSTREAMS, 5000));
    CHECK_EQ_INT((int)snap(t).st.streams, NSTREAMS);
    CHECK_EQ_INT((int)snap(t).st.connections, 1);
    bcast(t, "data: one\n\n", -1);
    bcast(t, "data: two\n\n", -1);
    h2_needle = "data: two\n\n";
    h2_needle_count = 1;
    CHECK(h2_pump(&c, 5000, p_all_have, NSTREAMS));
    for (int i = 0; i < NSTREAMS; i++) {
        CHECK_EQ_INT(c.s[i].status, 200);
        CHECK_EQ_MEM(c.s[i].data, c.s[i].len, "data: one\n\ndata: two\n\n", 22);
    }
    /* the peer resets stream 1: only it goes, as a closed HTTP/1.1 connection would (PEER) */
    CHECK_EQ_INT(h2_rst(&c, 1), 0);
    CHECK(wait_reg(t, r_open_is, NSTREAMS - 1, 3000));
    CHECK_EQ_INT(snap(t).reasons[SSE_CLOSE_PEER], 1);
    CHECK(reg.st[0] == NULL);
    /* the server closes stream 2 (index 1): END_STREAM on it, the connection stays */
    int one = 1;
    loop_call(t, do_close_one, &one);
    CHECK(h2_pump(&c, 3000, p_status, 3));
    CHECK(c.s[1].ended && !c.s[1].rst);
    CHECK(wait_reg(t, r_open_is, NSTREAMS - 2, 3000));
    CHECK_EQ_INT(snap(t).reasons[SSE_CLOSE_LOCAL], 1);
    bcast(t, "data: three\n\n", -1);
    h2_needle = "data: three\n\n";
    for (int i = 2; i < NSTREAMS; i++) {
        struct h2cli *cc = &c;
        for (int k = 0; k < 300 && !count_in(cc->s[i].data, cc->s[i].len, h2_needle); k++)
            h2_pump(cc, 10, NULL, 0);
        CHECK_EQ_INT(count_in(c.s[i].data, c.s[i].len, h2_needle), 1);
    }
    CHECK_EQ_INT(count_in(c.s[0].data, c.s[0].len, h2_needle), 0);
    CHECK_EQ_INT(count_in(c.s[1].data, c.s[1].len, h2_needle), 0);
    /* the connection closes: every remaining stream goes with PEER */
    h2_close(&c);
    CHECK(wait_reg(t, r_open_is, 0, 3000));
    CHECK_EQ_INT(snap(t).reasons[SSE_CLOSE_PEER], NSTREAMS - 1);
    CHECK_EQ_INT((int)snap(t).st.streams, 0);
    CHECK(wait_reg(t, r_open_is, 0, 3000));
    for (int i = 0; i < 100 && snap(t).st.connections; i++)
        usleep(10000);
    CHECK_EQ_INT((int)snap(t).st.connections, 0);
    return 0;
}

static int test_h2_many_streams(void)
{
    struct tctx t;
    CHECK_EQ_INT(setup(&t, NULL), 0);
    int rc = tctx_run(&t, c_many_streams);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* Graceful shutdown with streams open: they end (END_STREAM), GOAWAY, the server finishes. */
static int c_shutdown_open(struct tctx *t)
{
    static struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
    CHECK(h2_request(&c, "GET", "/reg", NULL, NULL, 0) == 1);
    CHECK(h2_request(&c, "GET", "/reg", NULL, NULL, 0) == 3);
    CHECK(wait_reg(t, r_opened, 2, 5000));
    t->user = &c; /* read after the server closes, from the test */
    return 0;
}

static int test_h2_shutdown(void)
{
    struct tctx t;
    CHECK_EQ_INT(setup(&t, NULL), 0);
    int rc = tctx_run(&t, c_shutdown_open);
    CHECK_EQ_INT(rc, 0);
    struct h2cli *c = t.user;
    CHECK_EQ_INT(tctx_fini(&t), 0); /* fails if the h2 connection kept the server open */
    CHECK_EQ_INT(reg.open, 0);
    CHECK_EQ_INT(reg.reasons[SSE_CLOSE_LOCAL], 2);
    h2_pump(c, 2000, p_goaway_eof, 0);
    CHECK(c->goaway);
    CHECK(c->s[0].ended && c->s[1].ended);
    h2_close(c);
    return 0;
}

/* ------------------------------------------------------------ flow control: zero window */

static int c_zero_window(struct tctx *t)
{
    struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 1, 0), 0); /* every stream starts with a zero window */
    CHECK_EQ_INT(h2_window_update(&c, 0, 1u << 20), 0);
    CHECK(h2_request(&c, "GET", "/reg", NULL, NULL, 0) == 1); /* A: stays shut */
    CHECK(h2_request(&c, "GET", "/reg", NULL, NULL, 0) == 3); /* B: opened below */
    CHECK(wait_reg(t, r_opened, 2, 5000));
    CHECK_EQ_INT(h2_window_update(&c, 3, 1u << 20), 0);
    h2_pump(&c, 100, NULL, 0);
    char ev[1001];
    memset(ev, 'x', sizeof(ev) - 1);
    memcpy(ev, "data: ", 6);
    ev[998] = '\n';
    ev[999] = '\n';
    ev[1000] = '\0';
    for (int i = 0; i < 10; i++) /* 10 KB each; the bound is 4 KiB */
        bcast(t, ev, -1);
    /* A passes its bound and is reset (CANCEL), closed as slow; B received everything */
    CHECK(h2_pump(&c, 3000, p_status, 1));
    CHECK(c.s[0].rst);
    CHECK_EQ_INT((int)c.s[0].rst_code, 8);
    CHECK_EQ_INT((int)c.s[0].len, 0);
    CHECK(wait_reg(t, r_open_is, 1, 3000));
    CHECK_EQ_INT(snap(t).reasons[SSE_CLOSE_SLOW], 1);
    CHECK_EQ_INT((int)snap(t).st.closed_slow_total, 1);
    h2_needle = "xx\n\n";
    h2_needle_count = 10;
    for (int k = 0; k < 300 && c.s[1].len < 10000; k++)
        h2_pump(&c, 10, NULL, 0);
    CHECK_EQ_INT((int)c.s[1].len, 10000);
    CHECK(!c.s[1].rst);
    h2_close(&c);
    CHECK(wait_reg(t, r_open_is, 0, 3000));
    return 0;
}

static int test_h2_zero_window(void)
{
    struct tctx t;
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.stream_queue_max = 4096;
    CHECK_EQ_INT(setup(&t, &o), 0);
    int rc = tctx_run(&t, c_zero_window);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* ------------------------------------------------------------ drain callback under flow control */

/* sse_stream_on_drain on an HTTP/2 stream: "queued" is the stream's own queue, which its window
 * holds; the callback runs once, when the window let enough go, never after the stream's end. */
struct h2drain {
    int calls, closed_calls;
    size_t q_at, q0;
    int rc_arm, rc_drained, rc_arm2;
    int closing; /* the stream was closed: a call now is a bug */
};
static struct h2drain h2d;

static void h2_on_drain(sse_stream *st, void *data)
{
    if (data != &h2d || h2d.closing)
        h2d.closed_calls++;
    h2d.calls++;
    h2d.q_at = sse_stream_queued_bytes(st);
}

/* Queue 64 events of 1 KiB on the newest stream and arm its drain at 8 KiB (then close it, if
 * asked). */
static void do_arm(struct tctx *t, void *arg)
{
    (void)t;
    int close_after = *(int *)arg;
    sse_stream *st = reg.n ? reg.st[reg.n - 1] : NULL;
    if (!st)
        return;
    sse_stream_set_data(st, &h2d);
    char ev[1024];
    memset(ev, 'x', sizeof(ev));
    memcpy(ev, "data: ", 6);
    ev[1022] = ev[1023] = '\n';
    sse_frame *f;
    if (sse_frame_new(&f, ev, sizeof(ev)))
        return;
    for (int i = 0; i < 64; i++)
        sse_stream_send_frame(st, f);
    sse_frame_unref(f);
    h2d.q0 = sse_stream_queued_bytes(st);
    if (close_after) {
        h2d.rc_arm2 = sse_stream_on_drain(st, 8192, h2_on_drain);
        h2d.closing = 1;
        sse_stream_close(st); /* END_STREAM once the queue is handed on */
    } else {
        h2d.rc_arm = sse_stream_on_drain(st, 8192, h2_on_drain);
    }
}

static void do_arm_empty(struct tctx *t, void *arg)
{
    (void)t, (void)arg;
    if (reg.st[0])
        h2d.rc_drained = sse_stream_on_drain(reg.st[0], 8192, h2_on_drain);
}

static void do_h2d(struct tctx *t, void *arg)
{
    (void)t;
    *(struct h2drain *)arg = h2d;
    if (reg.st[0])
        ((struct h2drain *)arg)->q0 = sse_stream_queued_bytes(reg.st[0]);
}

static int c_drain(struct tctx *t)
{
    struct h2cli c;
    struct h2drain d;
    int no = 0, yes = 1;
    CHECK_EQ_INT(h2_open(&c, t->port, 1, 0), 0); /* the stream's window starts shut */
    CHECK_EQ_INT(h2_window_update(&c, 0, 1u << 20), 0);
    CHECK(h2_request(&c, "GET", "/reg", NULL, NULL, 0) == 1);
    CHECK(wait_reg(t, r_opened, 1, 5000));
    loop_call(t, do_arm, &no);
    h2_pump(&c, 200, NULL, 0);
    loop_call(t, do_h2d, &d);
    CHECK_EQ_INT(d.rc_arm, 0);
    CHECK_EQ_UINT(d.q0, 64u * 1024u); /* the window is shut: all of it still queued */
    CHECK_EQ_INT(d.calls, 0);
    CHECK_EQ_INT(h2_window_update(&c, 1, 32768), 0); /* half: 32 KiB left, above 8 KiB */
    h2_pump(&c, 200, NULL, 0);
    loop_call(t, do_h2d, &d);
    CHECK_EQ_UINT(d.q0, 32768u);
    CHECK_EQ_INT(d.calls, 0);
    CHECK_EQ_INT(h2_window_update(&c, 1, 24576), 0); /* down to 8 KiB: the drain */
    h2_pump(&c, 200, NULL, 0);
    loop_call(t, do_h2d, &d);
    CHECK_EQ_INT(d.calls, 1);
    CHECK_EQ_UINT(d.q_at, 8192u);
    CHECK_EQ_INT(h2_window_update(&c, 1, 1u << 20), 0); /* the rest: no second call */
    h2_pump(&c, 200, NULL, 0);
    loop_call(t, do_h2d, &d);
    CHECK_EQ_UINT(d.q0, 0u);
    CHECK_EQ_INT(d.calls, 1);
    loop_call(t, do_arm_empty, NULL); /* nothing queued: nothing to wait for */
    loop_call(t, do_h2d, &d);
    CHECK_EQ_INT(d.rc_drained, SSE_DRAINED);
    /* a second stream, armed, then closed: its queue falls under the watermark while it still
       ends (4 KiB held by its window), then drains; neither is reported */
    CHECK(h2_request(&c, "GET", "/reg", NULL, NULL, 0) == 3);
    CHECK(wait_reg(t, r_opened, 2, 5000));
    loop_call(t, do_arm, &yes);
    CHECK_EQ_INT(h2_window_update(&c, 3, 61440), 0);
    h2_pump(&c, 200, NULL, 0);
    loop_call(t, do_h2d, &d);
    CHECK_EQ_INT(d.rc_arm2, 0);
    CHECK_EQ_INT(d.calls, 1);
    CHECK(!c.s[1].ended);
    CHECK_EQ_INT(h2_window_update(&c, 3, 1u << 20), 0);
    CHECK(h2_pump(&c, 3000, p_status, 3));
    CHECK(c.s[1].ended);
    h2_pump(&c, 100, NULL, 0);
    loop_call(t, do_h2d, &d);
    CHECK_EQ_INT(d.calls, 1);
    CHECK_EQ_INT(d.closed_calls, 0);
    h2_close(&c);
    CHECK(wait_reg(t, r_open_is, 0, 3000));
    return 0;
}

static int test_h2_drain(void)
{
    struct tctx t;
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.heartbeat_ms = UINT32_MAX; /* nothing but the test's events in the queue */
    memset(&h2d, 0, sizeof(h2d));
    CHECK_EQ_INT(setup(&t, &o), 0);
    int rc = tctx_run(&t, c_drain);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* ------------------------------------------------------------ fan-out without allocation */

static long alloc_count;
static void *count_malloc(size_t n)
{
    alloc_count++;
    return malloc(n);
}
static void *count_realloc(void *p, size_t n)
{
    alloc_count++;
    return realloc(p, n);
}
static const struct sse__allocator counting = {count_malloc, count_realloc, free};

/* Send one shared frame to every stream and run the flush walk (nghttp2 included: it allocates
 * through the same hook), counting allocations. */
static void do_bcast_counted(struct tctx *t, void *arg)
{
    long *allocs = arg;
    sse_frame *f;
    if (sse_frame_new(&f, "data: one\n\n", 11) != 0) {
        *allocs = -1;
        return;
    }
    alloc_count = 0;
    sse__set_allocator(&counting);
    for (int i = 0; i < reg.n; i++)
        if (reg.st[i])
            sse_stream_send_frame(reg.st[i], f);
    sse__server_walk(t->s);
    sse__set_allocator(NULL);
    *allocs = alloc_count;
    sse_frame_unref(f);
}

static int c_fanout_no_alloc(struct tctx *t)
{
    struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
    for (int i = 0; i < 3; i++)
        CHECK(h2_request(&c, "GET", "/reg", NULL, NULL, 0) > 0);
    CHECK(wait_reg(t, r_opened, 3, 5000));
    h2_needle = "data: one\n\n";
    for (int round = 0; round < 4; round++) {
        long allocs = -2;
        loop_call(t, do_bcast_counted, &allocs);
        if (round > 0) /* the first event grows the connection's batch arrays once */
            CHECK_EQ_INT(allocs, 0);
        h2_needle_count = round + 1;
        CHECK(h2_pump(&c, 3000, p_all_have, 3));
    }
    h2_close(&c);
    return 0;
}

static int test_h2_fanout_no_alloc(void)
{
    struct tctx t;
    CHECK_EQ_INT(setup(&t, NULL), 0);
    int rc = tctx_run(&t, c_fanout_no_alloc);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* ------------------------------------------------------------ limits */

static int c_max_streams(struct tctx *t)
{
    struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
    h2_pump(&c, 200, NULL, 0); /* the server's SETTINGS, acknowledged */
    for (int i = 0; i < 6; i++)
        CHECK(h2_request(&c, "GET", "/reg", NULL, NULL, 0) > 0);
    /* the 5th stream is refused: by RST_STREAM, or (nghttp2, once our SETTINGS are
       acknowledged) by GOAWAY(PROTOCOL_ERROR) for the connection */
    CHECK(h2_pump(&c, 3000, p_refused, 9));
    CHECK(wait_reg(t, r_opened, 4, 3000));
    usleep(100000);
    CHECK_EQ_INT(snap(t).n, 4); /* SETTINGS_MAX_CONCURRENT_STREAMS = 4 */
    /* (a GOAWAY for the connection goes before the answers: its streams end with it) */
    CHECK(c.goaway || (c.s[0].status == 200 && !c.s[0].rst));
    h2_close(&c);
    CHECK(wait_reg(t, r_open_is, 0, 3000));
    return 0;
}

static int test_h2_max_streams(void)
{
    struct tctx t;
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.h2_max_streams = 4;
    CHECK_EQ_INT(setup(&t, &o), 0);
    int rc = tctx_run(&t, c_max_streams);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

static int c_header_limits(struct tctx *t)
{
    struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
    char big[1500];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    const char *large[] = {"x-big", big, NULL};
    int32_t a = h2_request(&c, "GET", "/echo", large, NULL, 0);
    const char *many[2 * 12 + 1];
    static char names[12][8];
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof(names[i]), "x-h%d", i);
        many[2 * i] = names[i];
        many[2 * i + 1] = "1";
    }
    many[24] = NULL;
    int32_t b = h2_request(&c, "GET", "/echo", many, NULL, 0);
    char body[600];
    memset(body, 'b', sizeof(body));
    int32_t d = h2_request(&c, "POST", "/echo", NULL, body, sizeof(body));
    int32_t e = h2_request(&c, "GET", "/echo", NULL, NULL, 0);
    CHECK(h2_pump(&c, 3000, p_status, a));
    CHECK(h2_pump(&c, 3000, p_status, b));
    CHECK(h2_pump(&c, 3000, p_status, d));
    CHECK(h2_pump(&c, 3000, p_status, e));
    CHECK_EQ_INT(h2_seen(&c, a)->status, 431); /* header list past max_header_bytes */
    CHECK_EQ_INT(h2_seen(&c, b)->status, 431); /* more fields than max_headers */
    CHECK_EQ_INT(h2_seen(&c, d)->status, 413); /* body past max_body */
    CHECK_EQ_INT(h2_seen(&c, e)->status, 200); /* the connection goes on */
    CHECK(!c.goaway);
    h2_close(&c);
    return 0;
}

static int test_h2_header_limits(void)
{
    struct tctx t;
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.max_header_bytes = 1024;
    o.max_headers = 10;
    o.max_body = 512;
    CHECK_EQ_INT(setup(&t, &o), 0);
    int rc = tctx_run(&t, c_header_limits);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* ------------------------------------------------------------ attacks */

/* Rapid reset (CVE-2023-44487): streams opened and reset at once, past the reset budget. */
static int c_rapid_reset(struct tctx *t)
{
    struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
    for (int i = 0; i < 500 && !c.eof; i++) {
        int32_t id = h2_request(&c, "GET", "/reg", NULL, NULL, 0);
        if (!id || h2_rst(&c, id))
            break; /* the server has closed */
    }
    CHECK(h2_pump(&c, 5000, p_goaway_eof, 0));
    CHECK_EQ_INT((int)c.goaway_code, (int)NGHTTP2_ENHANCE_YOUR_CALM);
    struct snap s = snap(t);
    fprintf(stderr, "  streams opened before GOAWAY: %d\n", s.n);
    CHECK(s.n <= 50 + 20);                  /* the burst, plus what the rate refills meanwhile */
    CHECK(wait_reg(t, r_open_is, 0, 3000)); /* every stream it opened is cleaned up */
    h2_close(&c);
    return 0;
}

static int test_h2_rapid_reset(void)
{
    struct tctx t;
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.h2_reset_burst = 50;
    o.h2_reset_rate = 1;
    o.h2_control_max = 100000; /* the reset bucket is what is tested here */
    CHECK_EQ_INT(setup(&t, &o), 0);
    int rc = tctx_run(&t, c_rapid_reset);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* CONTINUATION flood (CVE-2024-27316 family): a header block that never ends. */
static int c_continuation(struct tctx *t)
{
    struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
    unsigned char blk[256];
    long n = h2_block(&c, "GET", "/echo", NULL, blk, sizeof(blk));
    CHECK(n > 0);
    CHECK_EQ_INT(h2_frame(&c, 1, 0, 1, blk, (size_t)n), 0); /* no END_HEADERS */
    unsigned char lit[8] = {0x40, 1, 'a', 1, 'b'};          /* "a: b", literal, indexed */
    int sent = 0;
    for (; sent < 10000; sent++)
        if (h2_frame(&c, 9, 0, 1, lit, 5))
            break;
    CHECK(h2_pump(&c, 5000, p_goaway_eof, 0));
    CHECK(sent < 10000 || c.goaway);
    h2_close(&c);
    return 0;
}

static int test_h2_continuation_flood(void)
{
    struct tctx t;
    CHECK_EQ_INT(setup(&t, NULL), 0);
    int rc = tctx_run(&t, c_continuation);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* PING and SETTINGS floods: past h2_control_max frames a second, GOAWAY(ENHANCE_YOUR_CALM). */
static int c_ping_flood(struct tctx *t)
{
    for (int kind = 0; kind < 3; kind++) {
        struct h2cli c;
        CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
        unsigned char ping[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        for (int i = 0; i < 2000; i++) {
            int rc = kind == 0   ? h2_frame(&c, 6, 0, 0, ping, 8) /* PING */
                     : kind == 1 ? h2_frame(&c, 4, 0, 0, NULL, 0) /* SETTINGS */
                                 : h2_window_update(&c, 0, 1);    /* WINDOW_UPDATE */
            if (rc)
                break;
        }
        CHECK(h2_pump(&c, 5000, p_goaway_eof, 0));
        CHECK_EQ_INT((int)c.goaway_code, (int)NGHTTP2_ENHANCE_YOUR_CALM);
        h2_close(&c);
    }
    /* a client within the budget is served */
    struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
    int32_t a = h2_request(&c, "GET", "/echo", NULL, NULL, 0);
    CHECK(h2_pump(&c, 3000, p_status, a));
    CHECK_EQ_INT(h2_seen(&c, a)->status, 200);
    h2_close(&c);
    return 0;
}

static int test_h2_control_flood(void)
{
    struct tctx t;
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.h2_control_max = 200;
    CHECK_EQ_INT(setup(&t, &o), 0);
    int rc = tctx_run(&t, c_ping_flood);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* Garbage after the preface: GOAWAY(PROTOCOL_ERROR), closed; streams on it cleaned up. */
static int c_garbage(struct tctx *t)
{
    struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
    CHECK(h2_request(&c, "GET", "/reg", NULL, NULL, 0) == 1);
    CHECK(wait_reg(t, r_opened, 1, 3000));
    CHECK_EQ_INT(cli_send(c.fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 0);
    CHECK(h2_pump(&c, 5000, p_goaway_eof, 0));
    CHECK(c.goaway_code != 0);
    CHECK(wait_reg(t, r_open_is, 0, 3000));
    h2_close(&c);
    return 0;
}

static int test_h2_garbage(void)
{
    struct tctx t;
    CHECK_EQ_INT(setup(&t, NULL), 0);
    int rc = tctx_run(&t, c_garbage);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

/* ------------------------------------------------------------ timers */

static int p_has_heartbeat(struct h2cli *c, int id)
{
    struct h2s_seen *s = h2_seen(c, id);
    return s && count_in(s->data, s->len, ":\n") >= 2;
}

/* Heartbeats per stream, 408 for a request whose body never comes, GOAWAY(NO_ERROR) once the
 * connection has had no stream for keepalive_timeout_ms. */
static int c_timers(struct tctx *t)
{
    struct h2cli c;
    CHECK_EQ_INT(h2_open(&c, t->port, 0, 0), 0);
    CHECK(h2_request(&c, "GET", "/reg", NULL, NULL, 0) == 1);
    CHECK(h2_pump(&c, 3000, p_has_heartbeat, 1)); /* two ":" comments on the idle stream */
    /* a POST whose body never comes (no END_STREAM): 408 on that stream only */
    unsigned char blk[256];
    long n = h2_block(&c, "POST", "/echo", NULL, blk, sizeof(blk));
    CHECK(n > 0);
    CHECK_EQ_INT(h2_frame(&c, 1, 0x4, 3, blk, (size_t)n), 0);
    c.next_id = 5;
    CHECK(h2_pump(&c, 3000, p_status, 3));
    CHECK_EQ_INT(h2_seen(&c, 3)->status, 408);
    CHECK(!c.goaway);
    /* the last stream goes: after the keep-alive timeout, GOAWAY(NO_ERROR) and the close */
    CHECK_EQ_INT(h2_rst(&c, 1), 0);
    CHECK(h2_pump(&c, 5000, p_goaway_eof, 0));
    CHECK(c.s[1].rst && c.s[1].rst_code == 0); /* stop sending that body (RFC 9113 8.1) */
    CHECK_EQ_INT((int)c.goaway_code, 0);
    CHECK(wait_reg(t, r_open_is, 0, 3000));
    h2_close(&c);
    return 0;
}

static int test_h2_timers(void)
{
    struct tctx t;
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.heartbeat_ms = 100;
    o.request_timeout_ms = 300;
    o.keepalive_timeout_ms = 500;
    CHECK_EQ_INT(setup(&t, &o), 0);
    int rc = tctx_run(&t, c_timers);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    return rc;
}

CHECK_MAIN(CHECK_TEST(test_h2_requests), CHECK_TEST(test_h2c_off), CHECK_TEST(test_h2_many_streams),
           CHECK_TEST(test_h2_shutdown), CHECK_TEST(test_h2_zero_window),
           CHECK_TEST(test_h2_fanout_no_alloc), CHECK_TEST(test_h2_max_streams),
           CHECK_TEST(test_h2_header_limits), CHECK_TEST(test_h2_rapid_reset),
           CHECK_TEST(test_h2_continuation_flood), CHECK_TEST(test_h2_control_flood),
           CHECK_TEST(test_h2_garbage), CHECK_TEST(test_h2_timers), CHECK_TEST(test_h2_drain))
