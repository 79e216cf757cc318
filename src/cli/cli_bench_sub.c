/*
 * cli_bench_sub.c: the subscriber side of `ssehub bench`, run in each worker process.
 *
 * Opens this process's share of the N subscriber streams over loopback (bound to a rotating
 * source address so that no source runs out of ephemeral ports), at most `concurrency` connects
 * in flight, then reads the streams until the parent says stop. The per-connection state is
 * kept small (the uv_tcp_t plus ~80 bytes) so that the load generator itself fits 20,000 streams
 * per process: reads go into one buffer per process. Each stream's body goes through the
 * project's WHATWG parser (include/sse/format.h, one per stream, created when the stream opens)
 * and the `ts=`, `seq=`, `w=` numbers are read from each dispatched event's data; with
 * --parser scan a streaming state machine that only looks at `data:` lines is used instead (no
 * buffer per stream; a cross-check of the parser). Results go to the shared-memory area the
 * parent reads.
 */
#include "cli_bench.h"

#include <errno.h>
#include <netinet/in.h>
#include <sse/format.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <uv.h>

#define SUB_HDR_MAX 8192

enum { SUB_IDLE = 0, SUB_CONNECTING, SUB_HEADERS, SUB_BODY, SUB_CLOSED };
enum { BODY_RAW = 0, BODY_CHUNKED = 1 };
enum { LS_START = 0, LS_NAME, LS_VALUE_START, LS_VALUE, LS_SKIP };

struct sub_ctx;

struct sub {
    uv_tcp_t tcp;
    struct sub_ctx *ctx;
    char *hdr;          /* response header bytes while they arrive, then NULL */
    sse_parser *parser; /* NULL with --parser scan */
    uint32_t topic;
    uint16_t hdr_len;
    uint8_t state; /* SUB_* */
    uint8_t body;  /* BODY_* */
    struct bench_chunked ch;
    /* event-stream scanner */
    uint8_t ls;       /* LS_* */
    uint8_t name_pos; /* bytes of "data" matched; 0xff = another field */
    uint8_t last_cr;
    uint8_t have_data;
    uint8_t in_num;
    uint8_t key_len;
    char key[3];
    uint8_t got_ts;
    uint8_t w;
    uint64_t num;
    uint64_t ts;
    uint64_t seq;
};

struct sub_ctx {
    const struct bench_config *c;
    struct bench_shared *sh;
    struct bench_child *me;
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
    free(s->hdr);
    s->hdr = NULL;
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

static void deliver(struct sub *s)
{
    struct sub_ctx *x = s->ctx;
    if (!s->got_ts) {
        __atomic_fetch_add(&x->me->bad_events, 1, __ATOMIC_RELAXED);
        return;
    }
    uint64_t lat = x->now_real > s->ts ? x->now_real - s->ts : 0;
    if (s->w) {
        __atomic_fetch_add(&x->me->warm_events, 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_fetch_add(&x->me->events, 1, __ATOMIC_RELAXED);
    bench_hist_add(&x->me->hist, lat);
    if (s->seq < x->c->max_track) {
        struct bench_seq *q = &x->sh->seq[s->seq];
        uint64_t cur = __atomic_load_n(&q->max_ns, __ATOMIC_RELAXED);
        while (lat > cur && !__atomic_compare_exchange_n(&q->max_ns, &cur, lat, 1, __ATOMIC_RELAXED,
                                                         __ATOMIC_RELAXED))
            ;
        __atomic_fetch_add(&q->count, 1, __ATOMIC_RELEASE);
    }
}

static void end_number(struct sub *s)
{
    if (!s->in_num)
        return;
    s->in_num = 0;
    if (s->key_len == 2 && s->key[0] == 't' && s->key[1] == 's') {
        s->ts = s->num;
        s->got_ts = 1;
    } else if (s->key_len == 3 && !memcmp(s->key, "seq", 3)) {
        s->seq = s->num;
    } else if (s->key_len == 1 && s->key[0] == 'w') {
        s->w = s->num != 0;
    }
    s->key_len = 0;
}

/* One byte of an event's data: collects the key=digits tokens (ts=..., seq=..., w=...). */
static void scan_data_byte(struct sub *s, char ch)
{
    if (s->in_num) {
        if (ch >= '0' && ch <= '9') {
            s->num = s->num * 10 + (uint64_t)(ch - '0');
            return;
        }
        end_number(s);
    }
    if (ch == '=') {
        s->in_num = 1;
        s->num = 0;
    } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
        if (s->key_len < 3)
            s->key[s->key_len] = ch;
        if (s->key_len < 4)
            s->key_len++;
    } else {
        s->key_len = 0;
    }
}

static void end_line(struct sub *s)
{
    if (s->ls == LS_START) { /* blank line: dispatch */
        if (s->have_data)
            deliver(s);
        s->have_data = 0;
        s->got_ts = 0;
        s->w = 0;
        s->seq = UINT64_MAX;
    } else if (s->ls == LS_NAME && s->name_pos == 4) {
        s->have_data = 1; /* "data" alone: an empty data line */
    } else if (s->ls == LS_VALUE || s->ls == LS_VALUE_START) {
        end_number(s);
    }
    s->ls = LS_START;
    s->key_len = 0;
}

/* The event-stream scanner: only `data:` lines are looked at, for key=digits tokens. */
static void scan_bytes(struct sub *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '\n') {
            if (s->last_cr) {
                s->last_cr = 0;
                continue;
            }
            end_line(s);
            continue;
        }
        s->last_cr = 0;
        if (ch == '\r') {
            s->last_cr = 1;
            end_line(s);
            continue;
        }
        switch (s->ls) {
        case LS_START:
            if (ch == ':') {
                s->ls = LS_SKIP;
                break;
            }
            s->ls = LS_NAME;
            s->name_pos = 0;
            /* fall through */
        case LS_NAME:
            if (ch == ':') {
                if (s->name_pos == 4) {
                    s->have_data = 1;
                    s->ls = LS_VALUE_START;
                } else {
                    s->ls = LS_SKIP;
                }
            } else if (s->name_pos < 4 && ch == "data"[s->name_pos]) {
                s->name_pos++;
            } else {
                s->name_pos = 0xff;
            }
            break;
        case LS_VALUE_START:
            s->ls = LS_VALUE;
            if (ch == ' ')
                break;
            /* fall through */
        case LS_VALUE:
            scan_data_byte(s, ch);
            break;
        default: /* LS_SKIP */
            break;
        }
    }
}

/* An event from the project's parser: read the key=digits tokens of its data. */
static int on_parsed(void *ud, const sse_parsed_event *ev)
{
    struct sub *s = ud;
    s->key_len = 0;
    s->in_num = 0;
    for (size_t i = 0; i < ev->data_len; i++)
        scan_data_byte(s, ev->data[i]);
    end_number(s);
    deliver(s);
    s->got_ts = 0;
    s->w = 0;
    s->seq = UINT64_MAX;
    return 0;
}

static void scan(void *ud, const char *p, size_t n)
{
    struct sub *s = ud;
    __atomic_fetch_add(&s->ctx->me->bytes, n, __ATOMIC_RELAXED);
    if (!s->parser) {
        scan_bytes(s, p, n);
        return;
    }
    int r = sse_parser_feed(s->parser, p, n);
    if (r < 0) {
        __atomic_fetch_add(&s->ctx->me->bad_events, 1, __ATOMIC_RELAXED);
        sse_parser_reset(s->parser);
    }
}

static void body_bytes(struct sub *s, const char *p, size_t n)
{
    if (s->body == BODY_RAW) {
        scan(s, p, n);
        return;
    }
    size_t used;
    int r = bench_chunked_feed(&s->ch, p, n, &used, scan, s);
    if (r != 0) { /* malformed, or the response ended: both end the stream */
        __atomic_fetch_add(&s->ctx->me->dropped, 1, __ATOMIC_RELAXED);
        if (r < 0)
            __atomic_fetch_add(&s->ctx->me->bad_events, 1, __ATOMIC_RELAXED);
        sub_close(s);
    }
}

/* Parse the collected response head; returns the HTTP status or -1. */
static int parse_head(struct sub *s, size_t head_len)
{
    char *h = s->hdr;
    h[head_len] = '\0';
    if (head_len < 12 || strncmp(h, "HTTP/1.", 7) != 0)
        return -1;
    int status = (int)strtol(h + 9, NULL, 10);
    s->body = BODY_RAW;
    for (char *line = strstr(h, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        char *l = line + 2;
        if (!strncasecmp(l, "transfer-encoding:", 18)) {
            char *e = strstr(l, "\r\n");
            for (char *q = l + 18; q + 7 <= e; q++)
                if (!strncasecmp(q, "chunked", 7))
                    s->body = BODY_CHUNKED;
        }
    }
    return status;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sub *s = h->data;
    buf->base = s->ctx->rbuf;
    buf->len = sizeof(s->ctx->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct sub *s = st->data;
    struct sub_ctx *x = s->ctx;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (s->state == SUB_HEADERS) {
            sub_fail(s, nread);
        } else if (s->state == SUB_BODY) {
            __atomic_fetch_add(&x->me->dropped, 1, __ATOMIC_RELAXED);
            note_error(x, nread);
            sub_close(s);
        }
        return;
    }
    x->now_real = bench_now_real();
    const char *p = buf->base;
    size_t n = (size_t)nread;
    if (s->state == SUB_HEADERS) {
        if (!s->hdr) {
            s->hdr = malloc(SUB_HDR_MAX + 1);
            if (!s->hdr) {
                sub_fail(s, -ENOMEM);
                return;
            }
        }
        size_t room = SUB_HDR_MAX - s->hdr_len;
        size_t take = n < room ? n : room;
        memcpy(s->hdr + s->hdr_len, p, take);
        size_t old = s->hdr_len;
        s->hdr_len = (uint16_t)(old + take);
        s->hdr[s->hdr_len] = '\0';
        char *end = strstr(s->hdr, "\r\n\r\n");
        if (!end) {
            if (s->hdr_len >= SUB_HDR_MAX)
                sub_fail(s, -E2BIG);
            return;
        }
        size_t head_len = (size_t)(end - s->hdr) + 4;
        int status = parse_head(s, head_len);
        free(s->hdr);
        s->hdr = NULL;
        if (status != 200) {
            sub_fail(s, status);
            return;
        }
        if (x->c->use_parser) {
            static const sse_parser_callbacks cbs = {on_parsed, NULL, NULL};
            int pr = sse_parser_new(&s->parser, NULL, &cbs, s);
            if (pr < 0) {
                sub_fail(s, pr);
                return;
            }
        }
        s->state = SUB_BODY;
        x->in_flight--;
        __atomic_fetch_add(&x->me->connected, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&x->me->last_connect_ns, bench_now_mono(), __ATOMIC_RELAXED);
        sub_start_next(x);
        /* Body bytes that came with the head. */
        size_t consumed = head_len - old;
        p += consumed;
        n -= consumed;
        if (!n)
            return;
    }
    if (s->state == SUB_BODY)
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
    size_t t = x->c->target == BENCH_PLAIN ? 0 : s->topic;
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
    const struct bench_config *c = x->c;
    int fam = c->sub.addr.ss_family;
    s->ctx = x;
    s->tcp.data = s;
    s->seq = UINT64_MAX;
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
    if (__atomic_load_n(&x->sh->phase, __ATOMIC_ACQUIRE) == BENCH_PHASE_STOP)
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
    if (__atomic_load_n(&x->sh->phase, __ATOMIC_ACQUIRE) != BENCH_PHASE_STOP)
        return;
    uv_timer_stop(t);
    for (size_t i = 0; i < x->count; i++)
        sub_close(&x->subs[i]);
    uv_close((uv_handle_t *)t, NULL);
}

static void append_enc(char *out, size_t *len, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s && *len + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[(*len)++] = (char)ch;
        } else {
            out[(*len)++] = '%';
            out[(*len)++] = hex[ch >> 4];
            out[(*len)++] = hex[ch & 15];
        }
    }
    out[*len] = '\0';
}

/* Build the GET request for topic t. */
static char *build_request(const struct bench_config *c, unsigned t, size_t *len)
{
    char target[3072];
    size_t tl = 0;
    char topic[512];
    snprintf(topic, sizeof(topic), "%s%u", c->topic_prefix, t);
    const struct bench_url *u = &c->sub;
    if (c->target == BENCH_MERCURE) {
        tl = (size_t)snprintf(target, sizeof(target), "%s?%s%stopic=", u->path, u->query,
                              u->query[0] ? "&" : "");
        append_enc(target, &tl, sizeof(target), topic);
    } else if (c->target == BENCH_NCHAN) {
        size_t pl = strlen(u->path);
        const char *slash = pl && u->path[pl - 1] == '/' ? "" : "/";
        tl = (size_t)snprintf(target, sizeof(target), "%s%s%s%s%s", u->path, slash, topic,
                              u->query[0] ? "?" : "", u->query);
    } else {
        tl = (size_t)snprintf(target, sizeof(target), "%s%s%s", u->path, u->query[0] ? "?" : "",
                              u->query);
    }
    (void)tl;
    size_t cap = strlen(target) + strlen(u->host) + (c->sub_token ? strlen(c->sub_token) : 0) + 256;
    char *req = malloc(cap);
    if (!req)
        return NULL;
    int n =
        snprintf(req, cap,
                 "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nAccept: text/event-stream\r\n"
                 "Cache-Control: no-cache\r\n%s%s%s\r\n",
                 target, strchr(u->host, ':') ? "[" : "", u->host, strchr(u->host, ':') ? "]" : "",
                 u->port, c->sub_token ? "Authorization: Bearer " : "",
                 c->sub_token ? c->sub_token : "", c->sub_token ? "\r\n" : "");
    *len = (size_t)n;
    return req;
}

int bench_sub_run(const struct bench_config *c, struct bench_shared *sh, unsigned index)
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
    bench_hist_init(&x->me->hist);
    unsigned nreq = c->target == BENCH_PLAIN ? 1 : c->topics;
    x->requests = calloc(nreq, sizeof(char *));
    x->request_lens = calloc(nreq, sizeof(size_t));
    x->subs = calloc(x->count ? x->count : 1, sizeof(struct sub));
    if (!x->requests || !x->request_lens || !x->subs) {
        r = -ENOMEM;
        goto out_free;
    }
    for (unsigned t = 0; t < nreq; t++) {
        x->requests[t] = build_request(c, t, &x->request_lens[t]);
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
