/*
 * loadgen_sub.c: the subscriber engine of the load generator, run in each worker process.
 *
 * Opens this process's share of the N subscriber streams over loopback (each connection bound
 * to a rotating source address so that no source runs out of ephemeral ports), at most
 * `concurrency` connections being set up at once, then reads the streams until the parent says
 * stop. A connection is plain TCP or TLS (loadgen_tls.c: OpenSSL with a BIO on this socket) and
 * carries HTTP/1.1 (one stream) or HTTP/2 (nghttp2's client session: K streams, h2c by prior
 * knowledge or ALPN h2; nghttp2 acks SETTINGS and PING and sends the WINDOW_UPDATEs as the
 * stream data is consumed, so flow control is honoured). State is kept small so that the load
 * generator fits 19,000 connections per process: a stream is ~48 bytes (its event parser once
 * it opens), a connection the uv_tcp_t plus its SSL and nghttp2 session when it uses them; reads,
 * decrypted bytes and outgoing HTTP/2 frames go through one buffer each per process. An
 * HTTP/1.1 response head is read with the library's response reader and a chunked body with
 * its streaming decoder (src/http/http_response.h); every stream's events go through the
 * library's parser (include/sse/format.h), and the `ts=`, `seq=`, `w=` numbers are read from
 * each dispatched event's data. Results go to the shared-memory area the parent reads; this
 * file does not own the requests (loadgen_target.c) or the report.
 */
#include "http/http_response.h"
#include "loadgen/loadgen.h"

#include <errno.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <sse/error.h>
#include <sse/format.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define SUB_HDR_MAX 8192
#define SUB_MAX_HEADERS 64
#define SUB_H2_WINDOW 65535 /* nghttp2's default stream window: WINDOW_UPDATEs every ~32 KiB */

enum { ST_IDLE = 0, ST_WAIT, ST_BODY, ST_CLOSED };                /* a stream */
enum { C_IDLE = 0, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED }; /* a connection */
enum { BODY_RAW = 0, BODY_CHUNKED = 1 };
enum { END_FAIL = 0, END_DROP, END_QUIET }; /* how a stream ends (what it counts) */

/* An HTTP/1.1 response head while it arrives (freed once the stream is open). */
struct sub_head {
    struct sse__http_scan scan; /* resumable end-of-head scanner */
    size_t len;                 /* bytes in buf */
    char buf[SUB_HDR_MAX];
};

/* The limits of the response reader; bodies are endless event streams. */
static const struct sse__http_response_limits sub_limits = {
    1024, SUB_HDR_MAX, SUB_MAX_HEADERS, 4096, (uint64_t)1 << 40, 8192};

struct sub_ctx;
struct sub_conn;

/* One event stream (an EventSource). */
struct sub {
    struct sub_conn *conn;
    struct sub_head *head;       /* HTTP/1.1, while the response head arrives, then NULL */
    sse_parser *parser;          /* the stream's event parser, from the 200 on */
    struct sse__http_dechunk ch; /* HTTP/1.1 with a chunked body */
    uint32_t topic;
    uint16_t status; /* HTTP/2: the :status seen */
    uint8_t state;   /* ST_* */
    uint8_t body;    /* BODY_* */
};

/* One connection and its streams (contiguous in the context's array). */
struct sub_conn {
    uv_tcp_t tcp;
    struct sub_ctx *ctx;
    SSL *ssl;            /* TLS, or NULL */
    nghttp2_session *h2; /* HTTP/2, or NULL */
    struct sub *streams;
    uint32_t nstreams;
    uint32_t pending; /* streams still waiting for their response */
    uint8_t state;    /* C_* */
};

/* The numbers the publisher put in an event's data. */
struct sub_fields {
    uint64_t ts;  /* CLOCK_REALTIME ns at the publish */
    uint64_t seq; /* message number; UINT64_MAX when absent */
    int got_ts;
    int warm; /* w=1: a warm-up message */
};

/* A write the socket did not take at once: the rest, copied. */
struct sub_write {
    uv_write_t req;
    struct sub_conn *conn;
    char data[];
};

struct sub_ctx {
    const struct sse__loadgen_config *c;
    struct sse__loadgen_shared *sh;
    struct sse__loadgen_child *me;
    uv_loop_t loop;
    uv_timer_t tick;
    struct sub *subs;
    struct sub_conn *conns;
    size_t count;     /* streams of this process */
    size_t nconns;    /* connections of this process */
    size_t next;      /* next connection to open */
    size_t in_flight; /* connections whose streams are not all answered */
    int starting;     /* inside sub_start_next */
    unsigned index, procs;
    uint64_t now_real; /* receipt time of the bytes being scanned */
    char **requests;   /* HTTP/1.1: GET request per topic (or one for plain) */
    size_t *request_lens;
    char **targets;      /* HTTP/2: :path per topic (or one for plain) */
    char authority[300]; /* HTTP/2 :authority */
    SSL_CTX *tls;        /* https:// */
    nghttp2_session_callbacks *h2cbs;
    char rbuf[65536]; /* one read buffer per process: reads are handled synchronously */
    char pbuf[65536]; /* decrypted bytes */
    char wbuf[16384]; /* HTTP/2 frames gathered into one write */
};

static void sub_start_next(struct sub_ctx *x);
static void conn_close(struct sub_conn *k, int64_t code, int quiet);

static void note_error(struct sub_ctx *x, int64_t code)
{
    if (!x->me->first_error)
        x->me->first_error = (uint64_t)code;
}

/* A connection whose streams all have their answer: the next one may connect. */
static void conn_resolved(struct sub_conn *k)
{
    struct sub_ctx *x = k->ctx;
    x->in_flight--;
    sub_start_next(x);
}

/* A stream ends: counted as failed (it never opened), dropped (it was open) or not at all. */
static void stream_end(struct sub *s, int how, int64_t code, int bad)
{
    struct sub_ctx *x = s->conn->ctx;
    if (s->state == ST_CLOSED || s->state == ST_IDLE)
        return;
    int was_waiting = s->state == ST_WAIT;
    s->state = ST_CLOSED;
    free(s->head);
    s->head = NULL;
    sse_parser_free(s->parser);
    s->parser = NULL;
    if (how == END_FAIL || (how == END_DROP && was_waiting)) {
        __atomic_fetch_add(&x->me->failed, 1, __ATOMIC_RELAXED);
        note_error(x, code ? code : SSE_EPROTO);
    } else if (how == END_DROP) {
        __atomic_fetch_add(&x->me->dropped, 1, __ATOMIC_RELAXED);
        if (bad)
            __atomic_fetch_add(&x->me->bad_events, 1, __ATOMIC_RELAXED);
        if (code)
            note_error(x, code);
    }
    if (was_waiting && --s->conn->pending == 0)
        conn_resolved(s->conn);
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
    deliver(s->conn->ctx, &f);
    return 0;
}

/* Decoded body bytes: into the stream's event parser. */
static int on_body(void *ud, const char *p, size_t n)
{
    struct sub *s = ud;
    struct sub_ctx *x = s->conn->ctx;
    __atomic_fetch_add(&x->me->bytes, n, __ATOMIC_RELAXED);
    if (sse_parser_feed(s->parser, p, n) < 0) {
        /* A line or event over the parser's limits: count it and read on from a clean state. */
        __atomic_fetch_add(&x->me->bad_events, 1, __ATOMIC_RELAXED);
        sse_parser_reset(s->parser);
    }
    return 0;
}

/* A stream got its 200: it is open. Returns 0 or a negative SSE code. */
static int stream_open(struct sub *s)
{
    static const sse_parser_callbacks cbs = {on_event, NULL, NULL};
    struct sub_conn *k = s->conn;
    struct sub_ctx *x = k->ctx;
    int rc = sse_parser_new(&s->parser, NULL, &cbs, s);
    if (rc < 0)
        return rc;
    s->state = ST_BODY;
    __atomic_fetch_add(&x->me->connected, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&x->me->last_connect_ns, sse__loadgen_now_mono(), __ATOMIC_RELAXED);
    if (--k->pending == 0)
        conn_resolved(k);
    return 0;
}

/* ----------------------------------------------------------------------------- writing */

static void on_write(uv_write_t *req, int status)
{
    struct sub_write *w = (struct sub_write *)req;
    struct sub_conn *k = w->conn;
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        conn_close(k, status, 0);
}

/* Put p[0..n) on the socket in order (the BIO's send function too). Returns 0 or a libuv code;
 * it never closes the connection itself (it may run inside OpenSSL). */
static int conn_send(void *vk, const char *p, size_t n)
{
    struct sub_conn *k = vk;
    if (k->state == C_CLOSED)
        return UV_ECANCELED;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int r = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
    if (r == (int)n)
        return 0;
    if (r < 0 && r != UV_EAGAIN)
        return r;
    size_t done = r > 0 ? (size_t)r : 0;
    struct sub_write *w = malloc(sizeof(*w) + n - done);
    if (!w)
        return UV_ENOMEM;
    memcpy(w->data, p + done, n - done);
    w->conn = k;
    b = uv_buf_init(w->data, (unsigned)(n - done));
    r = uv_write(&w->req, (uv_stream_t *)&k->tcp, &b, 1, on_write);
    if (r < 0) {
        free(w);
        return r;
    }
    return 0;
}

/* Send plaintext p[0..n): encrypted when the connection is TLS. Returns 0 or a negative code. */
static int proto_send(struct sub_conn *k, const char *p, size_t n)
{
    if (!k->ssl)
        return conn_send(k, p, n);
    size_t written;
    if (SSL_write_ex(k->ssl, p, n, &written) != 1 || sse__loadgen_tls_send_failed(k->ssl))
        return SSE_EIO;
    return 0;
}

/* Send what nghttp2 has queued (requests, SETTINGS and PING acks, WINDOW_UPDATEs), gathered
 * into as few writes as fit the process's frame buffer. Returns 0 or a negative code. */
static int h2_flush(struct sub_conn *k)
{
    struct sub_ctx *x = k->ctx;
    size_t used = 0;
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(k->h2, &d);
        if (n < 0)
            return SSE_EPROTO;
        if (n == 0)
            break;
        if (used + (size_t)n > sizeof(x->wbuf)) {
            int r = proto_send(k, x->wbuf, used);
            if (r < 0)
                return r;
            used = 0;
        }
        if ((size_t)n > sizeof(x->wbuf)) {
            int r = proto_send(k, (const char *)d, (size_t)n);
            if (r < 0)
                return r;
            continue;
        }
        memcpy(x->wbuf + used, d, (size_t)n);
        used += (size_t)n;
    }
    return used ? proto_send(k, x->wbuf, used) : 0;
}

/* ----------------------------------------------------------------------------- HTTP/2 */

static struct sub *h2_stream(nghttp2_session *session, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(session, id) : NULL;
}

static int on_h2_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *ud)
{
    (void)flags;
    (void)ud;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct sub *s = h2_stream(session, frame->hd.stream_id);
    if (!s || s->state != ST_WAIT || namelen != 7 || memcmp(name, ":status", 7) != 0)
        return 0;
    unsigned st = 0;
    for (size_t i = 0; i < valuelen && i < 3; i++)
        st = st * 10 + (unsigned)(value[i] >= '0' && value[i] <= '9' ? value[i] - '0' : 0);
    s->status = (uint16_t)st;
    return 0;
}

static int on_h2_frame(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct sub_conn *k = ud;
    if (k->state == C_CLOSED)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_RESPONSE)
        return 0;
    struct sub *s = h2_stream(session, frame->hd.stream_id);
    if (!s || s->state != ST_WAIT)
        return 0;
    if (s->status != 200) {
        stream_end(s, END_FAIL, s->status ? s->status : SSE_EPROTO, 0);
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_CANCEL);
        return 0;
    }
    int rc = stream_open(s);
    if (rc < 0)
        stream_end(s, END_FAIL, rc, 0);
    return 0;
}

static int on_h2_data(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                      size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    struct sub *s = h2_stream(session, id);
    if (s && s->state == ST_BODY)
        on_body(s, (const char *)data, len);
    return 0;
}

static int on_h2_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *ud)
{
    (void)ud;
    struct sub *s = h2_stream(session, id);
    if (s) /* a reset or the end of a stream the server closed: like an HTTP/1.1 close */
        stream_end(s, END_DROP, error_code ? SSE_EPROTO : 0, 0);
    return 0;
}

static nghttp2_session_callbacks *h2_callbacks(void)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return NULL;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_h2_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_h2_frame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_h2_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_h2_close);
    return cb;
}

/* The connection is up (after the TLS handshake): HTTP/2's preface, SETTINGS and one request
 * per stream. Returns 0 or a negative code. */
static int h2_start(struct sub_conn *k)
{
    struct sub_ctx *x = k->ctx;
    const struct sse__loadgen_config *c = x->c;
    if (nghttp2_session_client_new(&k->h2, x->h2cbs, k) != 0)
        return SSE_ENOMEM;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, SUB_H2_WINDOW}};
    if (nghttp2_submit_settings(k->h2, NGHTTP2_FLAG_NONE, iv, 2) != 0)
        return SSE_ENOMEM;
    const char *scheme = c->sub.tls ? "https" : "http";
#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE             \
    }
    for (uint32_t i = 0; i < k->nstreams; i++) {
        struct sub *s = &k->streams[i];
        const char *path = x->targets[c->target == SSE__LOADGEN_PLAIN ? 0 : s->topic];
        char auth[4200];
        size_t nnv = 6;
        nghttp2_nv nv[7] = {NV(":method", "GET"),
                            NV(":scheme", scheme),
                            NV(":authority", x->authority),
                            NV(":path", path),
                            NV("accept", "text/event-stream"),
                            NV("cache-control", "no-cache"),
                            NV("authorization", "")};
        if (c->sub_token) {
            snprintf(auth, sizeof(auth), "Bearer %s", c->sub_token);
            nv[6].value = (uint8_t *)auth;
            nv[6].valuelen = strlen(auth);
            nnv = 7;
        }
        int32_t id = nghttp2_submit_request(k->h2, NULL, nv, nnv, NULL, s);
        if (id < 0)
            stream_end(s, END_FAIL, SSE_EPROTO, 0);
    }
#undef NV
    return h2_flush(k);
}

/* ----------------------------------------------------------------------------- HTTP/1.1 */

/* Bytes of the response head; returns how many of p[0..n) belonged to it, or -1 when the
 * stream failed or the head is not complete yet. */
static ssize_t h1_head(struct sub *s, const char *p, size_t n)
{
    if (!s->head) {
        s->head = malloc(sizeof(*s->head));
        if (!s->head) {
            stream_end(s, END_FAIL, SSE_ENOMEM, 0);
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
    if (rc == 0)
        return -1;
    if (rc == 1) {
        struct sse__http_header hdrs[SUB_MAX_HEADERS];
        struct sse__http_response r;
        rc = sse__http_response_parse(h->buf, head_len, &r, hdrs, SUB_MAX_HEADERS);
        if (rc == 0 && r.status != 200)
            rc = r.status;
        else if (rc == 0 && r.body != SSE__HTTP_BODY_CHUNKED &&
                 r.body != SSE__HTTP_BODY_UNTIL_CLOSE && r.body != SSE__HTTP_BODY_LENGTH)
            rc = SSE_EPROTO;
        if (rc == 0) {
            /* A Content-Length on an event stream is unusual; its bytes are read as they come. */
            s->body = r.body == SSE__HTTP_BODY_CHUNKED ? BODY_CHUNKED : BODY_RAW;
            memset(&s->ch, 0, sizeof(s->ch));
        }
    }
    free(s->head);
    s->head = NULL;
    if (rc == 0)
        rc = stream_open(s);
    if (rc != 0) {
        stream_end(s, END_FAIL, rc, 0);
        return -1;
    }
    return (ssize_t)(head_len - old);
}

/* Plaintext of an HTTP/1.1 connection (one stream). */
static void h1_bytes(struct sub_conn *k, const char *p, size_t n)
{
    struct sub *s = &k->streams[0];
    if (s->state == ST_WAIT) {
        ssize_t used = h1_head(s, p, n);
        if (used < 0) {
            if (s->state == ST_CLOSED)
                conn_close(k, 0, 1);
            return;
        }
        p += used; /* body bytes that came with the head */
        n -= (size_t)used;
    }
    if (s->state != ST_BODY || !n)
        return;
    if (s->body == BODY_RAW) {
        on_body(s, p, n);
        return;
    }
    size_t used;
    int r = sse__http_dechunk(&s->ch, p, n, &used, &sub_limits, on_body, s);
    if (r != 0) { /* malformed, or the response ended: both end the stream */
        stream_end(s, END_DROP, r < 0 ? r : 0, r < 0);
        conn_close(k, 0, 1);
    }
}

/* ----------------------------------------------------------------------------- connections */

static void on_conn_closed(uv_handle_t *h)
{
    struct sub_conn *k = h->data;
    if (k->ssl)
        SSL_free(k->ssl);
    k->ssl = NULL;
    if (k->h2)
        nghttp2_session_del(k->h2);
    k->h2 = NULL;
}

/* Close a connection; its streams end as failed / dropped (code), or uncounted when quiet. */
static void conn_close(struct sub_conn *k, int64_t code, int quiet)
{
    if (k->state == C_CLOSED || k->state == C_IDLE)
        return;
    k->state = C_CLOSED;
    for (uint32_t i = 0; i < k->nstreams; i++)
        stream_end(&k->streams[i], quiet ? END_QUIET : END_DROP, code, 0);
    uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
}

/* The connection can carry requests: send them. */
static void conn_start(struct sub_conn *k)
{
    struct sub_ctx *x = k->ctx;
    k->state = C_OPEN;
    int r;
    if (x->c->h2) {
        r = h2_start(k);
    } else {
        size_t t = x->c->target == SSE__LOADGEN_PLAIN ? 0 : k->streams[0].topic;
        r = proto_send(k, x->requests[t], x->request_lens[t]);
    }
    if (r < 0)
        conn_close(k, r, 0);
}

/* Plaintext bytes of an open connection. */
static void proto_bytes(struct sub_conn *k, const char *p, size_t n)
{
    if (!k->h2) {
        h1_bytes(k, p, n);
        return;
    }
    ssize_t used = nghttp2_session_mem_recv(k->h2, (const uint8_t *)p, n);
    if (k->state == C_CLOSED)
        return;
    int r = used < 0 ? SSE_EPROTO : h2_flush(k);
    if (r < 0)
        conn_close(k, r, 0);
    else if (!nghttp2_session_want_read(k->h2) && !nghttp2_session_want_write(k->h2))
        conn_close(k, 0, 0); /* GOAWAY and nothing left: the server is done with us */
}

/* The TLS handshake got bytes: 1 done, 0 more needed, or a negative code. */
static int tls_handshake(struct sub_conn *k)
{
    int r = SSL_do_handshake(k->ssl);
    if (sse__loadgen_tls_send_failed(k->ssl))
        return SSE_EIO;
    if (r != 1) {
        if (SSL_get_error(k->ssl, r) == SSL_ERROR_WANT_READ)
            return 0;
        /* A certificate that did not verify is an authentication failure, the rest protocol. */
        return SSL_get_verify_result(k->ssl) != X509_V_OK ? SSE_EAUTH : SSE_EPROTO;
    }
    if (k->ctx->c->h2) {
        const unsigned char *a;
        unsigned al;
        SSL_get0_alpn_selected(k->ssl, &a, &al);
        if (al != 2 || memcmp(a, "h2", 2) != 0)
            return SSE_EUNSUPPORTED; /* the server did not choose h2 */
    }
    return 1;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sub_conn *k = h->data;
    (void)suggested;
    buf->base = k->ctx->rbuf;
    buf->len = sizeof(k->ctx->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct sub_conn *k = st->data;
    struct sub_ctx *x = k->ctx;
    if (nread == 0 || k->state == C_CLOSED)
        return;
    if (nread < 0) {
        conn_close(k, nread == UV_EOF ? 0 : nread, 0);
        return;
    }
    x->now_real = sse__loadgen_now_real();
    if (!k->ssl) {
        proto_bytes(k, buf->base, (size_t)nread);
        return;
    }
    sse__loadgen_tls_input(k->ssl, buf->base, (size_t)nread);
    if (k->state == C_HANDSHAKE) {
        int r = tls_handshake(k);
        if (r < 0)
            conn_close(k, r, 0);
        if (r <= 0)
            return;
        conn_start(k);
    }
    while (k->state == C_OPEN) {
        size_t got;
        if (SSL_read_ex(k->ssl, x->pbuf, sizeof(x->pbuf), &got) == 1) {
            proto_bytes(k, x->pbuf, got);
            continue;
        }
        int e = SSL_get_error(k->ssl, 0);
        if (e == SSL_ERROR_WANT_READ && !sse__loadgen_tls_send_failed(k->ssl))
            break;
        conn_close(k, e == SSL_ERROR_ZERO_RETURN ? 0 : SSE_EPROTO, 0);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct sub_conn *k = req->data;
    struct sub_ctx *x = k->ctx;
    free(req);
    if (k->state == C_CLOSED)
        return;
    if (status < 0) {
        conn_close(k, status, 0);
        return;
    }
    int r = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    if (r < 0) {
        conn_close(k, r, 0);
        return;
    }
    if (!x->tls) {
        conn_start(k);
        return;
    }
    k->ssl = sse__loadgen_tls_new(x->tls, &x->c->sub, conn_send, k);
    if (!k->ssl) {
        conn_close(k, SSE_ENOMEM, 0);
        return;
    }
    k->state = C_HANDSHAKE;
    r = tls_handshake(k); /* the ClientHello */
    if (r < 0)
        conn_close(k, r, 0);
}

/* Start connection number global_index (all processes counted) . Returns 0 or a negative
 * code (the TCP handle then needs closing when k->state is not C_IDLE). */
static int conn_connect(struct sub_ctx *x, struct sub_conn *k, size_t global_index)
{
    const struct sse__loadgen_config *c = x->c;
    int fam = c->sub.addr.ss_family;
    k->tcp.data = k;
    int r = uv_tcp_init_ex(&x->loop, &k->tcp, (unsigned)fam);
    if (r < 0)
        return r;
    k->state = C_CONNECTING;
    if (fam == AF_INET && c->sources > 0) {
        /* Source address 127.0.0.(1 + i % sources) and an explicit source port 1024 + i /
         * sources, below the ephemeral range (so no TIME_WAIT of a kernel-chosen port gets in
         * the way): the kernel's search for a free ephemeral port grows with the ports in use
         * and made connecting tens of thousands of streams crawl. A port that is taken (a
         * listener) or past 32767 falls back to a kernel-chosen one. */
        uv_os_fd_t fd;
        int one = 1;
        r = uv_fileno((uv_handle_t *)&k->tcp, &fd);
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
    req->data = k;
    r = uv_tcp_connect(req, &k->tcp, (const struct sockaddr *)&c->sub.addr, on_connect);
    if (r < 0) {
        free(req);
        return r;
    }
    return 0;
}

static void sub_start_next(struct sub_ctx *x)
{
    /* A connection that fails at once resolves its streams, which calls back here: the loop
     * below goes on instead of recursing once per failed connection. */
    if (x->starting || __atomic_load_n(&x->sh->phase, __ATOMIC_ACQUIRE) == SSE__LOADGEN_PHASE_STOP)
        return;
    x->starting = 1;
    while (x->next < x->nconns && x->in_flight < x->c->concurrency) {
        size_t ki = x->next++;
        struct sub_conn *k = &x->conns[ki];
        x->in_flight++;
        k->pending = k->nstreams;
        for (uint32_t i = 0; i < k->nstreams; i++)
            k->streams[i].state = ST_WAIT;
        int r = conn_connect(x, k, x->index + ki * x->procs);
        if (r >= 0)
            continue;
        if (k->state != C_IDLE) {
            conn_close(k, r, 0);
            continue;
        }
        k->state = C_CLOSED; /* no handle to close */
        for (uint32_t i = 0; i < k->nstreams; i++)
            stream_end(&k->streams[i], END_FAIL, r, 0);
    }
    x->starting = 0;
}

static void on_tick(uv_timer_t *t)
{
    struct sub_ctx *x = t->data;
    if (__atomic_load_n(&x->sh->phase, __ATOMIC_ACQUIRE) != SSE__LOADGEN_PHASE_STOP)
        return;
    uv_timer_stop(t);
    for (size_t i = 0; i < x->nconns; i++)
        conn_close(&x->conns[i], 0, 1);
    uv_close((uv_handle_t *)t, NULL);
}

/* Set up what the protocol needs once per process: requests or :path values, TLS, nghttp2. */
static int ctx_setup(struct sub_ctx *x, unsigned nreq)
{
    const struct sse__loadgen_config *c = x->c;
    x->requests = calloc(nreq, sizeof(char *));
    x->request_lens = calloc(nreq, sizeof(size_t));
    x->targets = calloc(nreq, sizeof(char *));
    if (!x->requests || !x->request_lens || !x->targets)
        return -ENOMEM;
    for (unsigned t = 0; t < nreq; t++) {
        if (c->h2) {
            char target[3072];
            sse__loadgen_sub_target(c, t, target, sizeof(target));
            x->targets[t] = strdup(target);
            if (!x->targets[t])
                return -ENOMEM;
        } else {
            x->requests[t] = sse__loadgen_sub_request(c, t, &x->request_lens[t]);
            if (!x->requests[t])
                return -ENOMEM;
        }
    }
    sse__loadgen_host_header(&c->sub, x->authority, sizeof(x->authority));
    if (c->sub.tls) {
        const char *err;
        x->tls = sse__loadgen_tls_ctx(c, c->h2, &err);
        if (!x->tls)
            return SSE_EINVAL;
    }
    if (c->h2 && !(x->h2cbs = h2_callbacks()))
        return -ENOMEM;
    return 0;
}

int sse__loadgen_sub_run(const struct sse__loadgen_config *c, struct sse__loadgen_shared *sh,
                         unsigned index)
{
    struct sub_ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    int r;
    unsigned per = c->h2 && c->streams_per_conn ? c->streams_per_conn : 1;
    x->c = c;
    x->sh = sh;
    x->me = &sh->child[index];
    x->index = index;
    x->procs = c->procs;
    x->count = c->subscribers / c->procs + (index < c->subscribers % c->procs ? 1 : 0);
    x->nconns = (x->count + per - 1) / per;
    sse__loadgen_hist_init(&x->me->hist);
    unsigned nreq = c->target == SSE__LOADGEN_PLAIN ? 1 : c->topics;
    x->subs = calloc(x->count ? x->count : 1, sizeof(struct sub));
    x->conns = calloc(x->nconns ? x->nconns : 1, sizeof(struct sub_conn));
    if (!x->subs || !x->conns) {
        r = -ENOMEM;
        goto out_free;
    }
    r = ctx_setup(x, nreq);
    if (r < 0) {
        note_error(x, r);
        goto out_free;
    }
    for (size_t li = 0; li < x->count; li++) {
        struct sub *s = &x->subs[li];
        s->conn = &x->conns[li / per];
        s->topic = (uint32_t)((x->index + li * x->procs) % c->topics);
    }
    for (size_t ki = 0; ki < x->nconns; ki++) {
        struct sub_conn *k = &x->conns[ki];
        k->ctx = x;
        k->streams = &x->subs[ki * per];
        k->nstreams = (uint32_t)(x->count - ki * per < per ? x->count - ki * per : per);
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
    if (x->targets)
        for (unsigned t = 0; t < nreq; t++)
            free(x->targets[t]);
    free(x->requests);
    free(x->request_lens);
    free(x->targets);
    if (x->h2cbs)
        nghttp2_session_callbacks_del(x->h2cbs);
    if (x->tls)
        SSL_CTX_free(x->tls);
    free(x->subs);
    free(x->conns);
    free(x);
    return r;
}
