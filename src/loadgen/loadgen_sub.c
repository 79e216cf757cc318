/*
 * loadgen_sub.c: the subscriber engine of the load generator, run in each worker process.
 *
 * Opens this process's share of the N subscriber streams over loopback (bound to a rotating
 * source address so that no source runs out of ephemeral ports), at most `concurrency` connects
 * in flight, then reads the streams until the parent says stop. The per-connection state is
 * kept small (the uv_tcp_t plus ~60 bytes) so that the load generator itself fits 20,000
 * streams per process: reads go into one buffer per process. The response head is read with
 * the library's response reader and a chunked body with its streaming decoder
 * (src/http/http_response.h); each stream's events go through the library's parser
 * (include/sse/format.h, one per stream, created when the stream opens), and the `ts=`, `seq=`,
 * `w=` numbers are read from each dispatched event's data. Results go to the shared-memory area
 * the parent reads; this file does not own the requests (loadgen_target.c) or the report.
 */
#include "http/http_response.h"
#include "loadgen/loadgen.h"

#include <errno.h>
#include <netinet/in.h>
#include <sse/error.h>
#include <sse/format.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define SUB_HDR_MAX 8192
#define SUB_MAX_HEADERS 64

enum { SUB_IDLE = 0, SUB_CONNECTING, SUB_HEADERS, SUB_BODY, SUB_CLOSED };
enum { BODY_RAW = 0, BODY_CHUNKED = 1 };

/* The response head while it arrives (freed once the stream is open). */
struct sub_head {
    struct sse__http_scan scan; /* resumable end-of-head scanner */
    size_t len;                 /* bytes in buf */
    char buf[SUB_HDR_MAX];
};

/* The limits of the response reader; bodies are endless event streams. */
static const struct sse__http_response_limits sub_limits = {
    1024, SUB_HDR_MAX, SUB_MAX_HEADERS, 4096, (uint64_t)1 << 40, 8192};

struct sub_ctx;

struct sub {
    uv_tcp_t tcp;
    struct sub_ctx *ctx;
    struct sub_head *head;       /* while the response head arrives, then NULL */
    sse_parser *parser;          /* the stream's event parser, from the 200 on */
    struct sse__http_dechunk ch; /* with a chunked body */
    uint32_t topic;
    uint8_t state; /* SUB_* */
    uint8_t body;  /* BODY_* */
};

/* The numbers the publisher put in an event's data. */
struct sub_fields {
    uint64_t ts;  /* CLOCK_REALTIME ns at the publish */
    uint64_t seq; /* message number; UINT64_MAX when absent */
    int got_ts;
    int warm; /* w=1: a warm-up message */
};

struct sub_ctx {
    const struct sse__loadgen_config *c;
    struct sse__loadgen_shared *sh;
    struct sse__loadgen_child *me;
    uv_loop_t loop;
    uv_timer_t tick;
    struct sub *subs;
    size_t count; /* subscribers of this process */
    size_t next;  /* next one to connect */
    size_t in_flight;
    size_t closing;
    unsigned index, procs;
    uint64_t now_real; /* receipt time of the bytes being scanned */
    char **requests;   /* GET request per topic (or one for plain) */
    size_t *request_lens;
    char rbuf[65536]; /* one read buffer per process: reads are handled synchronously */
};

static void sub_start_next(struct sub_ctx *x);

static void note_error(struct sub_ctx *x, int64_t code)
{
    if (!x->me->first_error)
        x->me->first_error = (uint64_t)code;
}

static void on_closed(uv_handle_t *h)
{
    struct sub *s = h->data;
    free(s->head);
    s->head = NULL;
    sse_parser_free(s->parser);
    s->parser = NULL;
    s->ctx->closing--;
}

static void sub_close(struct sub *s)
{
    if (s->state == SUB_CLOSED || s->state == SUB_IDLE)
        return;
    s->state = SUB_CLOSED;
    s->ctx->closing++;
    uv_close((uv_handle_t *)&s->tcp, on_closed);
}

/* A stream that never opened. */
static void sub_fail(struct sub *s, int64_t code)
{
    struct sub_ctx *x = s->ctx;
    note_error(x, code);
    __atomic_fetch_add(&x->me->failed, 1, __ATOMIC_RELAXED);
    x->in_flight--;
    sub_close(s);
    sub_start_next(x);
}

/* A stream that was open and ends: the server closed it, or broke the protocol (bad). */
static void sub_drop(struct sub *s, int64_t code, int bad)
{
    struct sub_ctx *x = s->ctx;
    __atomic_fetch_add(&x->me->dropped, 1, __ATOMIC_RELAXED);
    if (bad)
        __atomic_fetch_add(&x->me->bad_events, 1, __ATOMIC_RELAXED);
    if (code)
        note_error(x, code);
    sub_close(s);
}

/*
 * Read the key=digits tokens ts=, seq= and w= from an event's data (the publisher writes
 * "ts=<ns>,seq=<n>,w=<0|1>," and pads with 'x'). A key is the letters right before '='.
 */
static void read_fields(const char *d, size_t n, struct sub_fields *f)
{
    f->got_ts = 0;
    f->warm = 0;
    f->seq = UINT64_MAX;
    size_t key = 0; /* start of the run of letters before the current byte */
    for (size_t i = 0; i < n; i++) {
        char ch = d[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
            continue;
        if (ch != '=') {
            key = i + 1;
            continue;
        }
        const char *k = d + key;
        size_t kl = i - key;
        uint64_t v = 0;
        size_t j = i + 1;
        while (j < n && d[j] >= '0' && d[j] <= '9')
            v = v * 10 + (uint64_t)(d[j++] - '0');
        if (j > i + 1) {
            if (kl == 2 && k[0] == 't' && k[1] == 's') {
                f->ts = v;
                f->got_ts = 1;
            } else if (kl == 3 && !memcmp(k, "seq", 3)) {
                f->seq = v;
            } else if (kl == 1 && k[0] == 'w') {
                f->warm = v != 0;
            }
        }
        i = j - 1;
        key = j;
    }
}

static void deliver(struct sub_ctx *x, const struct sub_fields *f)
{
    if (!f->got_ts) {
        __atomic_fetch_add(&x->me->bad_events, 1, __ATOMIC_RELAXED);
        return;
    }
    uint64_t lat = x->now_real > f->ts ? x->now_real - f->ts : 0;
    if (f->warm) {
        __atomic_fetch_add(&x->me->warm_events, 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_fetch_add(&x->me->events, 1, __ATOMIC_RELAXED);
    sse__loadgen_hist_add(&x->me->hist, lat);
    if (f->seq < x->c->max_track) {
        struct sse__loadgen_seq *q = &x->sh->seq[f->seq];
        uint64_t cur = __atomic_load_n(&q->max_ns, __ATOMIC_RELAXED);
        while (lat > cur && !__atomic_compare_exchange_n(&q->max_ns, &cur, lat, 1, __ATOMIC_RELAXED,
                                                         __ATOMIC_RELAXED))
            ;
        __atomic_fetch_add(&q->count, 1, __ATOMIC_RELEASE);
    }
}

/* An event from the stream's parser. */
static int on_event(void *ud, const sse_parsed_event *ev)
{
    struct sub *s = ud;
    struct sub_fields f;
    read_fields(ev->data, ev->data_len, &f);
    deliver(s->ctx, &f);
    return 0;
}

/* Decoded body bytes: into the stream's event parser. */
static int on_body(void *ud, const char *p, size_t n)
{
    struct sub *s = ud;
    __atomic_fetch_add(&s->ctx->me->bytes, n, __ATOMIC_RELAXED);
    if (sse_parser_feed(s->parser, p, n) < 0) {
        /* A line or event over the parser's limits: count it and read on from a clean state. */
        __atomic_fetch_add(&s->ctx->me->bad_events, 1, __ATOMIC_RELAXED);
        sse_parser_reset(s->parser);
    }
    return 0;
}

static void body_bytes(struct sub *s, const char *p, size_t n)
{
    if (s->body == BODY_RAW) {
        on_body(s, p, n);
        return;
    }
    size_t used;
    int r = sse__http_dechunk(&s->ch, p, n, &used, &sub_limits, on_body, s);
    if (r != 0) /* malformed, or the response ended: both end the stream */
        sub_drop(s, r < 0 ? r : 0, r < 0);
}

/*
 * The response head is complete (head_len bytes of s->head->buf): a 200 opens the stream.
 * Returns 0, or the code to fail the stream with (an HTTP status or a negative SSE code).
 */
static int open_stream(struct sub *s, size_t head_len)
{
    static const sse_parser_callbacks cbs = {on_event, NULL, NULL};
    struct sse__http_header hdrs[SUB_MAX_HEADERS];
    struct sse__http_response r;
    int rc = sse__http_response_parse(s->head->buf, head_len, &r, hdrs, SUB_MAX_HEADERS);
    if (rc < 0)
        return rc;
    if (r.status != 200)
        return r.status;
    if (r.body != SSE__HTTP_BODY_CHUNKED && r.body != SSE__HTTP_BODY_UNTIL_CLOSE &&
        r.body != SSE__HTTP_BODY_LENGTH)
        return SSE_EPROTO;
    /* A Content-Length on an event stream is unusual; its bytes are read as they come. */
    s->body = r.body == SSE__HTTP_BODY_CHUNKED ? BODY_CHUNKED : BODY_RAW;
    memset(&s->ch, 0, sizeof(s->ch));
    return sse_parser_new(&s->parser, NULL, &cbs, s);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sub *s = h->data;
    buf->base = s->ctx->rbuf;
    buf->len = sizeof(s->ctx->rbuf);
}

/* Bytes of the response head; returns how many of p[0..n) belonged to it, or -1 when the
 * stream failed or the head is not complete yet. */
static ssize_t head_bytes(struct sub *s, const char *p, size_t n)
{
    struct sub_ctx *x = s->ctx;
    if (!s->head) {
        s->head = malloc(sizeof(*s->head));
        if (!s->head) {
            sub_fail(s, SSE_ENOMEM);
            return -1;
        }
        memset(&s->head->scan, 0, sizeof(s->head->scan));
        s->head->len = 0;
    }
    struct sub_head *h = s->head;
    size_t take = n < SUB_HDR_MAX - h->len ? n : SUB_HDR_MAX - h->len;
    memcpy(h->buf + h->len, p, take);
    size_t old = h->len;
    h->len += take;
    size_t head_len = 0;
    int rc = sse__http_response_scan(&h->scan, h->buf, h->len, &sub_limits, &head_len);
    if (rc == 0 && h->len >= SUB_HDR_MAX)
        rc = SSE_ELIMIT;
    if (rc == 1)
        rc = open_stream(s, head_len);
    else if (rc == 0)
        return -1;
    free(s->head);
    s->head = NULL;
    if (rc != 0) {
        sub_fail(s, rc);
        return -1;
    }
    s->state = SUB_BODY;
    x->in_flight--;
    __atomic_fetch_add(&x->me->connected, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&x->me->last_connect_ns, sse__loadgen_now_mono(), __ATOMIC_RELAXED);
    sub_start_next(x);
    return (ssize_t)(head_len - old);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct sub *s = st->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (s->state == SUB_HEADERS)
            sub_fail(s, nread);
        else if (s->state == SUB_BODY)
            sub_drop(s, nread, 0);
        return;
    }
    s->ctx->now_real = sse__loadgen_now_real();
    const char *p = buf->base;
    size_t n = (size_t)nread;
    if (s->state == SUB_HEADERS) {
        ssize_t used = head_bytes(s, p, n);
        if (used < 0)
            return;
        p += used; /* body bytes that came with the head */
        n -= (size_t)used;
    }
    if (s->state == SUB_BODY && n)
        body_bytes(s, p, n);
}

static void on_write(uv_write_t *req, int status)
{
    struct sub *s = req->data;
    free(req);
    if (status < 0 && s->state == SUB_HEADERS)
        sub_fail(s, status);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct sub *s = req->data;
    struct sub_ctx *x = s->ctx;
    free(req);
    if (status < 0) {
        sub_fail(s, status);
        return;
    }
    s->state = SUB_HEADERS;
    int r = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (r < 0) {
        sub_fail(s, r);
        return;
    }
    size_t t = x->c->target == SSE__LOADGEN_PLAIN ? 0 : s->topic;
    uv_buf_t b = uv_buf_init(x->requests[t], (unsigned)x->request_lens[t]);
    r = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (r == (int)b.len)
        return;
    if (r < 0 && r != UV_EAGAIN) {
        sub_fail(s, r);
        return;
    }
    if (r > 0) {
        b.base += r;
        b.len -= (size_t)r;
    }
    uv_write_t *w = malloc(sizeof(*w));
    if (!w) {
        sub_fail(s, -ENOMEM);
        return;
    }
    w->data = s;
    r = uv_write(w, (uv_stream_t *)&s->tcp, &b, 1, on_write);
    if (r < 0) {
        free(w);
        sub_fail(s, r);
    }
}

static int sub_connect(struct sub_ctx *x, struct sub *s, size_t global_index)
{
    const struct sse__loadgen_config *c = x->c;
    int fam = c->sub.addr.ss_family;
    s->ctx = x;
    s->tcp.data = s;
    int r = uv_tcp_init_ex(&x->loop, &s->tcp, (unsigned)fam);
    if (r < 0)
        return r;
    s->state = SUB_CONNECTING;
    if (fam == AF_INET && c->sources > 0) {
        /* Source address 127.0.0.(1 + i % sources) and an explicit source port 1024 + i /
         * sources, below the ephemeral range (so no TIME_WAIT of a kernel-chosen port gets in
         * the way): the kernel's search for a free ephemeral port grows with the ports in use
         * and made connecting tens of thousands of streams crawl. A port that is taken (a
         * listener) or past 32767 falls back to a kernel-chosen one. */
        uv_os_fd_t fd;
        int one = 1;
        r = uv_fileno((uv_handle_t *)&s->tcp, &fd);
        if (r < 0)
            return r;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in src;
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(global_index % c->sources));
        size_t port = 1024 + global_index / c->sources;
        src.sin_port = htons(port <= 32767 ? (uint16_t)port : 0);
        if (bind(fd, (const struct sockaddr *)&src, sizeof(src)) < 0) {
            (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
            src.sin_port = 0;
            if (bind(fd, (const struct sockaddr *)&src, sizeof(src)) < 0)
                return -errno;
        }
    }
    uv_connect_t *req = malloc(sizeof(*req));
    if (!req)
        return -ENOMEM;
    req->data = s;
    r = uv_tcp_connect(req, &s->tcp, (const struct sockaddr *)&c->sub.addr, on_connect);
    if (r < 0) {
        free(req);
        return r;
    }
    return 0;
}

static void sub_start_next(struct sub_ctx *x)
{
    if (__atomic_load_n(&x->sh->phase, __ATOMIC_ACQUIRE) == SSE__LOADGEN_PHASE_STOP)
        return;
    while (x->next < x->count && x->in_flight < x->c->concurrency) {
        size_t li = x->next++;
        struct sub *s = &x->subs[li];
        size_t gi = x->index + li * x->procs;
        s->topic = (uint32_t)(gi % x->c->topics);
        x->in_flight++;
        int r = sub_connect(x, s, gi);
        if (r < 0) {
            note_error(x, r);
            __atomic_fetch_add(&x->me->failed, 1, __ATOMIC_RELAXED);
            x->in_flight--;
            sub_close(s);
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    struct sub_ctx *x = t->data;
    if (__atomic_load_n(&x->sh->phase, __ATOMIC_ACQUIRE) != SSE__LOADGEN_PHASE_STOP)
        return;
    uv_timer_stop(t);
    for (size_t i = 0; i < x->count; i++)
        sub_close(&x->subs[i]);
    uv_close((uv_handle_t *)t, NULL);
}

int sse__loadgen_sub_run(const struct sse__loadgen_config *c, struct sse__loadgen_shared *sh,
                         unsigned index)
{
    struct sub_ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    int r;
    x->c = c;
    x->sh = sh;
    x->me = &sh->child[index];
    x->index = index;
    x->procs = c->procs;
    x->count = c->subscribers / c->procs + (index < c->subscribers % c->procs ? 1 : 0);
    sse__loadgen_hist_init(&x->me->hist);
    unsigned nreq = c->target == SSE__LOADGEN_PLAIN ? 1 : c->topics;
    x->requests = calloc(nreq, sizeof(char *));
    x->request_lens = calloc(nreq, sizeof(size_t));
    x->subs = calloc(x->count ? x->count : 1, sizeof(struct sub));
    if (!x->requests || !x->request_lens || !x->subs) {
        r = -ENOMEM;
        goto out_free;
    }
    for (unsigned t = 0; t < nreq; t++) {
        x->requests[t] = sse__loadgen_sub_request(c, t, &x->request_lens[t]);
        if (!x->requests[t]) {
            r = -ENOMEM;
            goto out_free;
        }
    }
    r = uv_loop_init(&x->loop);
    if (r < 0)
        goto out_free;
    uv_timer_init(&x->loop, &x->tick);
    x->tick.data = x;
    uv_timer_start(&x->tick, on_tick, 10, 10);
    sub_start_next(x);
    r = uv_run(&x->loop, UV_RUN_DEFAULT);
    (void)r;
    r = uv_loop_close(&x->loop);
    __atomic_store_n(&x->me->done, 1, __ATOMIC_RELEASE);
out_free:
    if (x->requests)
        for (unsigned t = 0; t < nreq; t++)
            free(x->requests[t]);
    free(x->requests);
    free(x->request_lens);
    free(x->subs);
    free(x);
    return r;
}
