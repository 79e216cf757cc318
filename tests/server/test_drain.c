/*
 * test_drain.c: sse_stream_on_drain over HTTP/1.1, TCP and TLS, against a client that reads
 * slowly.
 *
 * The stream queues far more than the sockets hold (the server's send buffer is made small, the
 * client's receive buffer too), arms a drain callback, and re-arms it from the callback a few
 * rounds, each round queueing another load. The callback must run exactly once per arm, only
 * once the queue is at or below the watermark, and never after sse_stream_close or on_close.
 * Over TLS (a self-signed certificate made here with OpenSSL, an OpenSSL client) "queued" is
 * the plaintext the TLS transport has not taken. (HTTP/2, with flow control: test_h2.c.)
 */
#include "harness.h"
#include "server/internal.h" /* the connection's socket: a small send buffer */

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sse/buf.h>
#include <sse/error.h>
#include <stdio.h>
#include <stdlib.h>

#define LOAD (512u * 1024u) /* bytes queued per round */
#define LOW (32u * 1024u)   /* the watermark */
#define ROUNDS 3
#define FRAME 64u /* small: a writev batch (256 buffers) is 16 KiB, so the queue falls in steps */

struct drain_state {
    int opened;
    int rc_drained;  /* arming with the watermark above what is queued: SSE_DRAINED */
    int rc_arm;      /* the first arm */
    int rc_rearm;    /* the last re-arm (from the callback) */
    int calls;       /* drain callbacks run */
    size_t max_q_at; /* the largest queue seen by a callback */
    int after_close; /* callbacks after sse_stream_close / on_close */
    int closes;      /* on_close calls */
    int close_now;   /* /closing: close right after arming */
    int closed_local;
    sse_frame *f;
};

static struct drain_state ds;
static int use_tls; /* the current test's client speaks TLS */

static int queue_load(sse_stream *st)
{
    for (size_t i = 0; i < LOAD / FRAME; i++) {
        int rc = sse_stream_send_frame(st, ds.f);
        if (rc)
            return rc;
    }
    return 0;
}

static void on_drain(sse_stream *st, void *data)
{
    if (data != &ds || ds.closes || ds.close_now)
        ds.after_close++;
    ds.calls++;
    size_t q = sse_stream_queued_bytes(st);
    if (q > ds.max_q_at)
        ds.max_q_at = q;
    if (ds.calls < ROUNDS) {
        if (queue_load(st) == 0)
            ds.rc_rearm = sse_stream_on_drain(st, LOW, on_drain);
        else
            ds.rc_rearm = -1;
    }
}

static void on_close(sse_stream *st, int reason, void *ud)
{
    (void)st, (void)ud;
    ds.closes++;
    ds.closed_local = reason == SSE_CLOSE_LOCAL;
}

static void on_stream(sse_stream *st, const sse_request *req, void *ud)
{
    (void)req, (void)ud;
    /* a small send buffer, so that the queue stays in the server (TCP: the uv_tcp_t itself) */
    int sndbuf = 8192;
    uv_send_buffer_size((uv_handle_t *)sse__conn_tp_state(st->conn), &sndbuf);
    sse_stream_set_data(st, &ds);
    sse_stream_on_close(st, on_close, NULL);
    ds.opened++;
    ds.rc_drained = sse_stream_on_drain(st, 1 << 20, on_drain); /* only the head is queued */
    if (queue_load(st))
        return;
    ds.rc_arm = sse_stream_on_drain(st, LOW, on_drain);
    if (ds.close_now)
        sse_stream_close(st); /* flushes, then closes: the drain must not be reported */
}

static void snap(struct tctx *t, void *arg)
{
    (void)t;
    *(struct drain_state *)arg = ds;
}

/* ------------------------------------------------------------ the client: TCP or TLS */

static SSL_CTX *cli_ctx; /* its context (no verification: the certificate is made here) */

struct cconn {
    int fd;
    SSL *ssl; /* NULL: plain TCP */
};

/* Connect with a 4 KiB receive buffer (TLS: and finish the handshake), send the request. */
static int cconn_open(struct cconn *c, int port)
{
    c->ssl = NULL;
    c->fd = loopback_connect_opts(port, 5000, 4096);
    if (c->fd < 0)
        return -1;
    if (use_tls) {
        c->ssl = SSL_new(cli_ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1)
            return -1;
    }
    const char *req = "GET /s HTTP/1.1\r\nHost: x\r\n\r\n";
    if (c->ssl)
        return SSL_write(c->ssl, req, (int)strlen(req)) == (int)strlen(req) ? 0 : -1;
    return cli_sends(c->fd, req);
}

/* Read up to n bytes (blocking, the socket's 5 s timeout): > 0, 0 at EOF, < 0 on error. */
static long cconn_read(struct cconn *c, char *buf, size_t n)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, (int)n);
        if (r > 0)
            return r;
        return SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    return (long)read(c->fd, buf, n);
}

/* Close; abort: with a RST (and no TLS close_notify), so that the server's writes fail. */
static void cconn_close(struct cconn *c, int abort)
{
    if (abort) {
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* A self-signed P-256 certificate for localhost into cert and key (PEM). Returns 0 or -1. */
static int make_cert(const char *cert, const char *key)
{
    int rc = -1;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *fc = fopen(cert, "w"), *fk = fopen(key, "w");
    if (!k || !x || !fc || !fk)
        goto out;
    X509_NAME *n = X509_get_subject_name(x);
    if (!ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 3600) || !X509_set_pubkey(x, k) ||
        !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                                    -1, 0) ||
        !X509_set_issuer_name(x, n) || !X509_sign(x, k, EVP_sha256()) || !PEM_write_X509(fc, x) ||
        !PEM_write_PrivateKey(fk, k, NULL, NULL, 0, NULL, NULL))
        goto out;
    rc = 0;
out:
    if (fc)
        fclose(fc);
    if (fk)
        fclose(fk);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

/* Read n bytes of body (after the head) slowly at first, then at full speed; -1 on EOF early. */
static long read_body(struct cconn *cc, size_t want, int slow_ms)
{
    char buf[65536];
    size_t got = 0;
    int head_done = 0;
    usleep((useconds_t)slow_ms * 1000); /* the reader is away: the queue must wait */
    while (got < want) {
        long r = cconn_read(cc, buf, slow_ms ? 4096 : sizeof(buf));
        if (r <= 0)
            return r < 0 ? -1 : (long)got;
        size_t off = 0;
        if (!head_done) { /* the response head arrives first, alone in the queue's first frame */
            while (off + 4 <= (size_t)r && memcmp(buf + off, "\r\n\r\n", 4) != 0)
                off++;
            if (off + 4 > (size_t)r)
                return -1;
            off += 4;
            head_done = 1;
        }
        got += (size_t)r - off;
        if (slow_ms && got / 16384 != (got - ((size_t)r - off)) / 16384)
            usleep(2000); /* per 16 KiB, not per read: TLS hands out one small record a read */
    }
    return (long)got;
}

static int c_rounds(struct tctx *t)
{
    struct cconn cc;
    CHECK_EQ_INT(cconn_open(&cc, t->port), 0);
    usleep(200000); /* not reading: nothing may be reported yet */
    struct drain_state s;
    loop_call(t, snap, &s);
    CHECK_EQ_INT(s.opened, 1);
    CHECK_EQ_INT(s.rc_drained, SSE_DRAINED);
    CHECK_EQ_INT(s.rc_arm, 0);
    CHECK_EQ_INT(s.calls, 0);
    long got = read_body(&cc, (size_t)ROUNDS * LOAD, 1);
    CHECK_EQ_INT(got, (long)ROUNDS * LOAD);
    usleep(200000); /* all read: a second call per arm would come now */
    loop_call(t, snap, &s);
    cconn_close(&cc, 0);
    CHECK_EQ_INT(s.calls, ROUNDS);
    CHECK_EQ_INT(s.rc_rearm, 0);
    CHECK(s.max_q_at <= LOW);
    CHECK_EQ_INT(s.after_close, 0);
    return 0;
}

static int c_closing(struct tctx *t)
{
    struct cconn cc;
    char one;
    CHECK_EQ_INT(cconn_open(&cc, t->port), 0);
    long got = read_body(&cc, LOAD, 1);
    CHECK_EQ_INT(got, (long)LOAD);             /* the queue went out, */
    CHECK_EQ_INT(cconn_read(&cc, &one, 1), 0); /* then the close */
    usleep(100000);
    struct drain_state s;
    loop_call(t, snap, &s);
    cconn_close(&cc, 0);
    CHECK_EQ_INT(s.rc_arm, 0);
    CHECK_EQ_INT(s.calls, 0); /* drained, but closed by then: not reported */
    CHECK_EQ_INT(s.closes, 1);
    CHECK(s.closed_local);
    return 0;
}

/* The peer goes away with a drain armed and most of the queue unwritten. */
static int c_peer_gone(struct tctx *t)
{
    struct cconn cc;
    CHECK_EQ_INT(cconn_open(&cc, t->port), 0);
    char buf[4096];
    CHECK(cconn_read(&cc, buf, sizeof(buf)) > 0);
    cconn_close(&cc, 1);
    struct drain_state s;
    for (int i = 0; i < 300; i++) {
        usleep(10000);
        loop_call(t, snap, &s);
        if (s.closes)
            break;
    }
    usleep(100000);
    loop_call(t, snap, &s);
    CHECK_EQ_INT(s.closes, 1);
    CHECK_EQ_INT(s.calls, 0);
    CHECK_EQ_INT(s.after_close, 0);
    return 0;
}

static int run(int (*client)(struct tctx *t), int close_now, int tls)
{
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.heartbeat_ms = UINT32_MAX; /* nothing but the loads in the queue */
    struct tctx t;
    memset(&ds, 0, sizeof(ds));
    ds.close_now = close_now;
    char ev[FRAME];
    memset(ev, 'x', sizeof(ev));
    memcpy(ev, "data: ", 6);
    ev[FRAME - 2] = ev[FRAME - 1] = '\n';
    CHECK_EQ_INT(sse_frame_new(&ds.f, ev, sizeof(ev)), 0);
    CHECK_EQ_INT(tctx_init(&t, &o), 0);
    CHECK_EQ_INT(sse_server_route_stream(t.s, "/s", on_stream, NULL), 0);
    use_tls = tls;
    char dir[] = "/tmp/test_drain.XXXXXX", cert[64], key[64];
    if (tls) {
        CHECK(mkdtemp(dir) != NULL);
        snprintf(cert, sizeof(cert), "%s/c.pem", dir);
        snprintf(key, sizeof(key), "%s/k.pem", dir);
        CHECK_EQ_INT(make_cert(cert, key), 0);
        sse_tls_options to;
        memset(&to, 0, sizeof(to)); /* zero: the defaults, whatever fields the struct grows */
        to.cert_file = cert;
        to.key_file = key;
        CHECK_EQ_INT(sse_server_listen_tls(t.s, "127.0.0.1", 0, &to), 0);
        t.port = sse_server_tls_port(t.s); /* the client speaks TLS */
        cli_ctx = SSL_CTX_new(TLS_client_method());
        CHECK(cli_ctx != NULL);
    }
    int rc = tctx_run(&t, client);
    CHECK_EQ_INT(tctx_fini(&t), 0);
    if (tls) {
        SSL_CTX_free(cli_ctx);
        cli_ctx = NULL;
        unlink(cert);
        unlink(key);
        rmdir(dir);
    }
    sse_frame_unref(ds.f);
    CHECK_EQ_INT(ds.after_close, 0);
    return rc;
}

static int test_drain_rounds(void)
{
    return run(c_rounds, 0, 0);
}

static int test_drain_not_after_close(void)
{
    return run(c_closing, 1, 0);
}

static int test_drain_peer_gone(void)
{
    return run(c_peer_gone, 0, 0);
}

static int test_drain_tls_rounds(void)
{
    return run(c_rounds, 0, 1);
}

static int test_drain_tls_not_after_close(void)
{
    return run(c_closing, 1, 1);
}

static int test_drain_tls_peer_gone(void)
{
    return run(c_peer_gone, 0, 1);
}

/* Bad arguments: no stream, a watermark that does not fit, and too many distinct functions. */
static void nop_drain(sse_stream *st, void *data)
{
    (void)st, (void)data;
}

static int test_drain_args(void)
{
    CHECK_EQ_INT(sse_stream_on_drain(NULL, 0, nop_drain), SSE_EINVAL);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_drain_rounds), CHECK_TEST(test_drain_not_after_close),
           CHECK_TEST(test_drain_peer_gone), CHECK_TEST(test_drain_tls_rounds),
           CHECK_TEST(test_drain_tls_not_after_close), CHECK_TEST(test_drain_tls_peer_gone),
           CHECK_TEST(test_drain_args))
