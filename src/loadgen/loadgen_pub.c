/*
 * loadgen_pub.c: the publisher engine of the load generator, run in the parent process.
 *
 * Keeps a few keep-alive HTTP connections to the publish URL and, on a 1 ms timer, posts the
 * messages that are due at the configured rate, each carrying `ts=<CLOCK_REALTIME ns>` (taken
 * just before the write), `seq=<n>` and `w=<1 during warm-up>` in its data (the request is built
 * by loadgen_target.c). A connection has one request outstanding at a time; when a message is
 * due and every connection is busy it waits and the "behind" counter says so. Answers are read
 * with the library's response reader (src/http/http_response.h). After the last message it
 * waits for the answers and for the subscribers' deliveries to settle (bounded by --drain).
 * An https:// publish URL goes over TLS (loadgen_tls.c, ALPN http/1.1): the request is written
 * with SSL_write and the answer decrypted before the same response reader.
 */
#include "http/http_response.h"
#include "loadgen/loadgen.h"

#include <errno.h>
#include <openssl/ssl.h>
#include <sse/error.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define PUB_HDR_MAX 8192
#define PUB_MAX_HEADERS 64

enum { PC_DOWN = 0, PC_CONNECTING, PC_HANDSHAKE, PC_IDLE, PC_BUSY, PC_CLOSING };

struct pub_ctx;

struct pub_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    struct pub_ctx *x;
    SSL *ssl; /* over TLS, or NULL */
    int state;
    char *req; /* the request being sent */
    size_t req_cap;
    uint64_t sent_ns; /* CLOCK_MONOTONIC at the write */
    int measured;
    /* response */
    struct sse__http_scan scan; /* end-of-head scanner over hdr */
    char hdr[PUB_HDR_MAX];      /* the response head while it arrives */
    size_t hdr_len;
    int in_body;     /* the head is done, its body is being read */
    int chunked;     /* the body is chunked (else body_left bytes) */
    int close_after; /* the server will not take another request */
    int status;
    uint64_t body_left;
    struct sse__http_dechunk ch;
    /* Reconnecting: a connection that closed before any answer (refused, a failed TLS
       handshake) waits retry_ms (doubling, 10 ms to 1 s) and is reconnected from the tick,
       instead of spinning on connect; any answer resets it. */
    int answered;      /* an answer arrived on this connection */
    unsigned retry_ms; /* the current delay; 0: reconnect at once */
    uint64_t retry_at; /* CLOCK_MONOTONIC ns of the next attempt, while PC_DOWN */
};

struct pub_ctx {
    const struct sse__loadgen_config *c;
    struct sse__loadgen_shared *sh;
    struct sse__loadgen_pub_stats *st;
    uv_loop_t loop;
    uv_timer_t tick;
    struct pub_conn *conns;
    unsigned nconns;
    uint64_t start_ns, end_pub_ns, meas_start_ns, drain_until_ns, last_progress_ns;
    uint64_t last_events;
    uint64_t seq;
    uint64_t expected; /* deliveries expected for measured messages */
    int publishing;
    int stopping;
    SSL_CTX *tls; /* an https:// publish URL */
    char rbuf[65536];
    char pbuf[65536]; /* decrypted answers */
};

/* A TLS write the socket did not take at once: the rest, copied. */
struct pc_write {
    uv_write_t req;
    struct pub_conn *p;
    char data[];
};

static void pc_connect(struct pub_conn *p);

static void note(struct pub_ctx *x, int64_t code)
{
    if (!x->st->first_status)
        x->st->first_status = (uint64_t)code;
}

static void on_pc_closed(uv_handle_t *h)
{
    struct pub_conn *p = h->data;
    if (p->ssl)
        SSL_free(p->ssl);
    p->ssl = NULL;
    p->state = PC_DOWN;
    if (p->x->stopping)
        return;
    if (p->answered) {
        p->retry_ms = 0;
        pc_connect(p);
        return;
    }
    p->retry_ms = p->retry_ms ? (p->retry_ms >= 500 ? 1000 : p->retry_ms * 2) : 10;
    p->retry_at = sse__loadgen_now_mono() + (uint64_t)p->retry_ms * 1000000u;
}

static void pc_close(struct pub_conn *p)
{
    if (p->state == PC_DOWN || p->state == PC_CLOSING)
        return;
    if (p->state == PC_BUSY) {
        p->x->st->errors++;
    }
    p->state = PC_CLOSING;
    uv_close((uv_handle_t *)&p->tcp, on_pc_closed);
}

static void pc_done(struct pub_conn *p)
{
    struct pub_ctx *x = p->x;
    p->answered = 1;
    if (p->status >= 200 && p->status < 300) {
        x->st->ok++;
        if (p->measured)
            sse__loadgen_hist_add(&x->st->rtt, sse__loadgen_now_mono() - p->sent_ns);
    } else {
        x->st->errors++;
        note(x, p->status);
    }
    p->state = PC_IDLE;
    p->hdr_len = 0;
    p->in_body = 0;
    memset(&p->scan, 0, sizeof(p->scan));
    if (p->close_after)
        pc_close(p);
}

/* The limits of the response reader. */
static const struct sse__http_response_limits pub_limits = {
    1024, PUB_HDR_MAX, PUB_MAX_HEADERS, 4096, (uint64_t)1 << 40, 8192};

/*
 * The head is complete (head_len bytes of p->hdr): read the status and the body framing.
 * Returns 0, or a negative SSE code for an answer that cannot be read.
 */
static int pc_head(struct pub_conn *p, size_t head_len)
{
    struct sse__http_header hdrs[PUB_MAX_HEADERS];
    struct sse__http_response r;
    int rc = sse__http_response_parse(p->hdr, head_len, &r, hdrs, PUB_MAX_HEADERS);
    if (rc < 0)
        return rc;
    p->status = r.status;
    p->chunked = r.body == SSE__HTTP_BODY_CHUNKED;
    p->body_left = r.body == SSE__HTTP_BODY_LENGTH ? (uint64_t)r.content_length : 0;
    /* A body until close is not waited for: the answer is its status. */
    p->close_after = !r.keep_alive;
    memset(&p->ch, 0, sizeof(p->ch));
    p->in_body = 1;
    return 0;
}

static void on_pc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct pub_conn *p = h->data;
    buf->base = p->x->rbuf;
    buf->len = sizeof(p->x->rbuf);
}

/* Answer bytes (decrypted over TLS). */
static void pc_bytes(struct pub_conn *p, const char *b, size_t n)
{
    while (n) {
        if (p->state != PC_BUSY) { /* bytes nobody asked for */
            pc_close(p);
            return;
        }
        if (!p->in_body) {
            size_t take = PUB_HDR_MAX - p->hdr_len < n ? PUB_HDR_MAX - p->hdr_len : n;
            memcpy(p->hdr + p->hdr_len, b, take);
            size_t old = p->hdr_len, head = 0;
            p->hdr_len += take;
            int rc = sse__http_response_scan(&p->scan, p->hdr, p->hdr_len, &pub_limits, &head);
            if (rc == 0 && p->hdr_len < PUB_HDR_MAX)
                return;
            if (rc == 0)
                rc = SSE_ELIMIT; /* the buffer is full and the head goes on */
            else if (rc == 1)
                rc = pc_head(p, head);
            if (rc != 0) {
                note(p->x, rc);
                pc_close(p);
                return;
            }
            b += head - old;
            n -= head - old;
            if (!p->chunked && !p->body_left) {
                pc_done(p);
                continue;
            }
        }
        if (p->chunked) {
            size_t used;
            int r = sse__http_dechunk(&p->ch, b, n, &used, &pub_limits, NULL, NULL);
            if (r < 0) {
                note(p->x, r);
                pc_close(p);
                return;
            }
            b += used;
            n -= used;
            if (r == 1)
                pc_done(p);
        } else {
            size_t take = n < p->body_left ? n : (size_t)p->body_left;
            p->body_left -= take;
            b += take;
            n -= take;
            if (!p->body_left)
                pc_done(p);
        }
    }
}

/* The TLS handshake got bytes: 1 done, 0 more needed, or a negative code. */
static int pc_handshake(struct pub_conn *p)
{
    int r = SSL_do_handshake(p->ssl);
    if (sse__loadgen_tls_send_failed(p->ssl))
        return SSE_EIO;
    if (r == 1)
        return 1;
    if (SSL_get_error(p->ssl, r) == SSL_ERROR_WANT_READ)
        return 0;
    return SSL_get_verify_result(p->ssl) != X509_V_OK ? SSE_EAUTH : SSE_EPROTO;
}

static void on_pc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pub_conn *p = s->data;
    if (nread == 0 || p->state == PC_CLOSING)
        return;
    if (nread < 0) {
        if (p->state == PC_BUSY || p->state == PC_HANDSHAKE)
            note(p->x, nread);
        pc_close(p);
        return;
    }
    if (!p->ssl) {
        pc_bytes(p, buf->base, (size_t)nread);
        return;
    }
    sse__loadgen_tls_input(p->ssl, buf->base, (size_t)nread);
    if (p->state == PC_HANDSHAKE) {
        int r = pc_handshake(p);
        if (r < 0) {
            note(p->x, r);
            pc_close(p);
        }
        if (r <= 0)
            return;
        p->state = PC_IDLE;
    }
    while (p->state == PC_IDLE || p->state == PC_BUSY) {
        size_t got;
        if (SSL_read_ex(p->ssl, p->x->pbuf, sizeof(p->x->pbuf), &got) == 1) {
            pc_bytes(p, p->x->pbuf, got);
            continue;
        }
        int e = SSL_get_error(p->ssl, 0);
        if (e == SSL_ERROR_WANT_READ && !sse__loadgen_tls_send_failed(p->ssl))
            break;
        if (p->state == PC_BUSY)
            note(p->x, e == SSL_ERROR_ZERO_RETURN ? UV_EOF : SSE_EPROTO);
        pc_close(p);
    }
}

static void on_pc_tls_write(uv_write_t *req, int status)
{
    struct pc_write *w = (struct pc_write *)req;
    struct pub_conn *p = w->p;
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        note(p->x, status);
        pc_close(p);
    }
}

/* The BIO's send function: ciphertext onto the socket in order. Never closes (it runs inside
 * OpenSSL); returns 0 or a libuv code. */
static int pc_tls_send(void *vp, const char *d, size_t n)
{
    struct pub_conn *p = vp;
    if (p->state == PC_CLOSING || p->state == PC_DOWN)
        return UV_ECANCELED;
    uv_buf_t b = uv_buf_init((char *)d, (unsigned)n);
    int r = uv_try_write((uv_stream_t *)&p->tcp, &b, 1);
    if (r == (int)n)
        return 0;
    if (r < 0 && r != UV_EAGAIN)
        return r;
    size_t done = r > 0 ? (size_t)r : 0;
    struct pc_write *w = malloc(sizeof(*w) + n - done);
    if (!w)
        return UV_ENOMEM;
    memcpy(w->data, d + done, n - done);
    w->p = p;
    b = uv_buf_init(w->data, (unsigned)(n - done));
    r = uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_pc_tls_write);
    if (r < 0) {
        free(w);
        return r;
    }
    return 0;
}

static void on_pc_connect(uv_connect_t *req, int status)
{
    struct pub_conn *p = req->data;
    if (p->state == PC_CLOSING) /* closed while connecting (the run stopped): UV_ECANCELED */
        return;
    if (status < 0) {
        note(p->x, status);
        p->x->st->errors++;
        p->state = PC_CLOSING;
        uv_close((uv_handle_t *)&p->tcp, on_pc_closed);
        return;
    }
    int r = uv_read_start((uv_stream_t *)&p->tcp, on_pc_alloc, on_pc_read);
    if (r < 0) {
        pc_close(p);
        return;
    }
    if (!p->x->tls) {
        p->state = PC_IDLE;
        return;
    }
    p->ssl = sse__loadgen_tls_new(p->x->tls, &p->x->c->pub, pc_tls_send, p);
    if (!p->ssl) {
        note(p->x, SSE_ENOMEM);
        pc_close(p);
        return;
    }
    p->state = PC_HANDSHAKE;
    r = pc_handshake(p); /* the ClientHello */
    if (r < 0) {
        note(p->x, r);
        pc_close(p);
    }
}

static void pc_connect(struct pub_conn *p)
{
    struct pub_ctx *x = p->x;
    if (uv_tcp_init(&x->loop, &p->tcp) < 0)
        return;
    p->tcp.data = p;
    p->creq.data = p;
    p->state = PC_CONNECTING;
    p->answered = 0;
    uv_tcp_nodelay(&p->tcp, 1);
    int r =
        uv_tcp_connect(&p->creq, &p->tcp, (const struct sockaddr *)&x->c->pub.addr, on_pc_connect);
    if (r < 0) {
        note(x, r);
        p->state = PC_CLOSING;
        uv_close((uv_handle_t *)&p->tcp, on_pc_closed);
    }
}

static void on_pc_write(uv_write_t *w, int status)
{
    struct pub_conn *p = w->data;
    if (status < 0) {
        note(p->x, status);
        pc_close(p);
    }
}

static int pc_send(struct pub_conn *p, uint64_t seq, int warm)
{
    size_t len;
    int r = sse__loadgen_pub_request(p->x->c, seq, warm, &p->req, &p->req_cap, &len);
    if (r < 0)
        return r;
    uv_buf_t b = uv_buf_init(p->req, (unsigned)len);
    p->wreq.data = p;
    p->state = PC_BUSY;
    p->measured = !warm;
    p->hdr_len = 0;
    p->in_body = 0;
    memset(&p->scan, 0, sizeof(p->scan));
    p->sent_ns = sse__loadgen_now_mono();
    if (p->ssl) {
        size_t written;
        if (SSL_write_ex(p->ssl, p->req, len, &written) != 1 ||
            sse__loadgen_tls_send_failed(p->ssl)) {
            pc_close(p);
            return SSE_EIO;
        }
        return 0;
    }
    r = uv_write(&p->wreq, (uv_stream_t *)&p->tcp, &b, 1, on_pc_write);
    if (r < 0) {
        pc_close(p);
        return r;
    }
    return 0;
}

static uint64_t total_events(struct pub_ctx *x)
{
    uint64_t e = 0;
    for (unsigned i = 0; i < x->sh->nprocs; i++)
        e += __atomic_load_n(&x->sh->child[i].events, __ATOMIC_RELAXED);
    return e;
}

/* Reconnect the connections whose retry delay is over. */
static void pc_retry_due(struct pub_ctx *x, uint64_t now)
{
    for (unsigned i = 0; i < x->nconns; i++)
        if (x->conns[i].state == PC_DOWN && x->conns[i].retry_ms && now >= x->conns[i].retry_at)
            pc_connect(&x->conns[i]);
}

/* Before the clock starts: retries go on, and the loop has a timer to sleep on. */
static void on_pre_tick(uv_timer_t *t)
{
    pc_retry_due(t->data, sse__loadgen_now_mono());
}

static void on_pub_tick(uv_timer_t *t)
{
    struct pub_ctx *x = t->data;
    const struct sse__loadgen_config *c = x->c;
    uint64_t now = sse__loadgen_now_mono();
    pc_retry_due(x, now);
    if (x->publishing) {
        /* Message seq is due at seq / rate; the first warmup * rate ones are warm-up. A publisher
         * that falls behind sends late (counted in "behind") and the run is cut off at 1.5x its
         * planned length, so the achieved rate is what went out over the measured span. */
        double el = (double)(now - x->start_ns) / 1e9;
        uint64_t total = (uint64_t)((c->warmup + c->duration) * c->rate + 0.5);
        uint64_t nwarm = (uint64_t)(c->warmup * c->rate + 0.5);
        if (x->seq >= total || el > (c->warmup + c->duration) * 1.5 + 1) {
            x->publishing = 0;
            x->end_pub_ns = now;
            x->st->seconds = x->st->measured ? (double)(now - x->meas_start_ns) / 1e9 : 0;
            /* The last message goes out at its due time: count up to a full period after it. */
            if (x->seq >= total && x->st->measured)
                x->st->seconds = (double)x->st->measured / c->rate > x->st->seconds
                                     ? (double)x->st->measured / c->rate
                                     : x->st->seconds;
            x->st->end_seq = x->seq;
            x->drain_until_ns = now + (uint64_t)(c->drain * 1e9);
            x->last_progress_ns = now;
        } else {
            uint64_t due = (uint64_t)(el * c->rate) + 1;
            if (due > total)
                due = total;
            unsigned ci = 0;
            while (x->seq < due) {
                while (ci < x->nconns && x->conns[ci].state != PC_IDLE)
                    ci++;
                if (ci == x->nconns) {
                    x->st->behind++;
                    break;
                }
                int warm = x->seq < nwarm;
                if (!warm && !x->st->measured) {
                    x->st->first_measured_seq = x->seq;
                    x->meas_start_ns = now;
                }
                if (pc_send(&x->conns[ci], x->seq, warm) < 0)
                    break;
                x->st->sent++;
                if (!warm) {
                    x->st->measured++;
                    x->expected += sse__loadgen_subs_on_topic(c, x->seq % c->topics);
                }
                x->seq++;
            }
            return;
        }
    }
    /* Draining: answers outstanding, deliveries still arriving? */
    int busy = 0;
    for (unsigned i = 0; i < x->nconns; i++)
        busy |= x->conns[i].state == PC_BUSY;
    uint64_t ev = total_events(x);
    if (ev != x->last_events) {
        x->last_events = ev;
        x->last_progress_ns = now;
    }
    /* Deliveries that stopped coming in for a while are over: a quarter of --drain, at least
     * 0.5 s (a loaded machine can stall a process for longer than 0.5 s). */
    uint64_t quiet_ns = (uint64_t)(c->drain / 4 * 1e9);
    if (quiet_ns < 500000000u)
        quiet_ns = 500000000u;
    int settled = !busy && (ev >= x->expected || now - x->last_progress_ns > quiet_ns);
    if (!settled && now < x->drain_until_ns)
        return;
    x->stopping = 1;
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    for (unsigned i = 0; i < x->nconns; i++) {
        struct pub_conn *p = &x->conns[i];
        if (p->state == PC_IDLE || p->state == PC_BUSY || p->state == PC_CONNECTING ||
            p->state == PC_HANDSHAKE) {
            p->state = PC_CLOSING;
            uv_close((uv_handle_t *)&p->tcp, on_pc_closed);
        }
    }
}

int sse__loadgen_pub_run(const struct sse__loadgen_config *c, struct sse__loadgen_shared *sh,
                         struct sse__loadgen_pub_stats *st)
{
    int r;
    struct pub_ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    memset(st, 0, sizeof(*st));
    sse__loadgen_hist_init(&st->rtt);
    x->c = c;
    x->sh = sh;
    x->st = st;
    x->nconns = c->pub_conns;
    x->conns = calloc(x->nconns, sizeof(*x->conns));
    if (!x->conns) {
        r = -ENOMEM;
        goto out_free;
    }
    if (c->pub.tls) {
        const char *err;
        x->tls = sse__loadgen_tls_ctx(c, 0, &err);
        if (!x->tls) {
            r = SSE_EINVAL;
            goto out_free;
        }
    }
    r = uv_loop_init(&x->loop);
    if (r < 0)
        goto out_free;
    for (unsigned i = 0; i < x->nconns; i++) {
        x->conns[i].x = x;
        pc_connect(&x->conns[i]);
    }
    /* Give the connections a moment (bounded) before the clock starts. */
    uint64_t until = sse__loadgen_now_mono() + 2000000000u;
    uv_timer_t pre;
    uv_timer_init(&x->loop, &pre);
    pre.data = x;
    uv_timer_start(&pre, on_pre_tick, 5, 5);
    for (;;) {
        unsigned up = 0;
        for (unsigned i = 0; i < x->nconns; i++)
            up += x->conns[i].state == PC_IDLE;
        if (up == x->nconns || sse__loadgen_now_mono() > until)
            break;
        uv_run(&x->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&pre);
    uv_close((uv_handle_t *)&pre, NULL);
    x->publishing = 1;
    x->start_ns = sse__loadgen_now_mono();
    uv_timer_init(&x->loop, &x->tick);
    x->tick.data = x;
    uv_timer_start(&x->tick, on_pub_tick, 1, 1);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    r = uv_loop_close(&x->loop);
out_free:
    if (x->conns)
        for (unsigned i = 0; i < x->nconns; i++)
            free(x->conns[i].req);
    free(x->conns);
    if (x->tls)
        SSL_CTX_free(x->tls);
    free(x);
    return r;
}
