/*
 * transport_tls.c: the TLS transport (see transport.h and docs/SERVER.md, "Transports"):
 * OpenSSL over the same uv_tcp_t as plain TCP, and the public calls that set it up
 * (sse_server_listen_tls, sse_server_tls_reload).
 *
 * OpenSSL never touches the socket. Each SSL talks to a small BIO of ours that reads the
 * ciphertext of the current read callback (in the server's one read buffer) and appends what
 * it writes to one server-wide scratch buffer; the transport then hands that ciphertext to
 * libuv. Reads decrypt into a second server-wide buffer, so an idle connection owns no buffer
 * of its own beyond OpenSSL's state (with SSL_MODE_RELEASE_BUFFERS OpenSSL frees its record
 * buffers when they are empty). Ciphertext the socket does not take at once is copied into a
 * write request allocated only then ("owned" writes, freed when written).
 *
 * The handshake runs in the read path; nothing reaches the connection above before it is done.
 * Its time is bounded by the handshake timeout (the server's sweep, via .handshaking), so a
 * peer that sends nothing, garbage or a slow ClientHello is closed like a slow request.
 *
 * The certificate lives in an SSL_CTX that sse_server_tls_reload replaces: new handshakes use
 * the new one; every SSL holds a reference to the SSL_CTX it was made from, so connections
 * opened before keep theirs until they close.
 */
#include "common/alloc.h"
#include "server/internal.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>

/* Plaintext handed out per try_writev at most (the caller loops; bounds the scratch). */
#define SSE__TLS_WRITE_BATCH (64 * 1024)
/* The plaintext buffer: one TLS record. */
#define SSE__TLS_PLAIN_SIZE (16 * 1024)

/* The server-wide TLS state: the transport context of TLS listeners. */
struct sse__tls {
    sse_server *srv;
    SSL_CTX *ctx;     /* for new handshakes; replaced by sse_server_tls_reload */
    BIO_METHOD *meth; /* our BIO: reads from in, appends to out */
    const char *in;   /* ciphertext being fed to one SSL (only during a call) */
    size_t in_len;    /* bytes of in left */
    char *out;        /* ciphertext one SSL call made, to go out on its connection */
    size_t out_len;   /* bytes in out */
    size_t out_cap;   /* bytes allocated for out */
    int out_err;      /* growing out failed during the current call */
    int keep_buffers; /* sse_tls_options.keep_buffers */
    int port;         /* the bound port of the first TLS listener */
    char *plain;      /* SSE__TLS_PLAIN_SIZE bytes of decrypted data */
    unsigned handshake_timeout_ms;
    /* Past max_connections: connections handshaking only to be answered 503, and their bound
       (sse__tls_refuse_after_handshake) */
    unsigned overlimit, overlimit_max;
};

/* Per-connection flags. */
enum {
    SSE__TLS_READING = 1 << 0,    /* the connection wants bytes (read_start) */
    SSE__TLS_READY = 1 << 1,      /* the handshake is done */
    SSE__TLS_DELIVERING = 1 << 2, /* inside sse__tls_feed for this connection */
    SSE__TLS_OVERLIMIT = 1 << 3,  /* past max_connections: 503 once the handshake is done */
};

/* Ciphertext read while the connection had stopped reading (allocated only then). */
struct sse__tls_stash {
    size_t len;
    char data[];
};

/* The per-connection state, after struct sse__conn. */
struct sse__tls_conn {
    uv_tcp_t tcp;
    SSL *ssl;
    struct sse__tls_stash *stash; /* ciphertext not fed yet (reading stopped), or NULL */
    unsigned owned;               /* our own writes in flight */
    int werr;                     /* a failed write: reported by the next try_writev */
    uint8_t flags;                /* SSE__TLS_* */
};

/* A write of ciphertext that had to wait for the socket: the request and its bytes. */
struct sse__tls_write {
    uv_write_t req;
    struct sse__conn *conn;
    int notify; /* 1: it carries a transport writev: report with sse__conn_write_done */
    char data[];
};

static struct sse__tls_conn *sse__tls_c(struct sse__conn *c)
{
    return sse__conn_tp_state(c);
}

static struct sse__tls *sse__tls_t(struct sse__conn *c)
{
    return sse__conn_tp_ctx(c);
}

/* ---- the BIO: OpenSSL's only view of the network */

static int sse__tls_bio_write(BIO *b, const char *data, int len)
{
    struct sse__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (t->out_len + (size_t)len > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap : 16384;
        while (cap < t->out_len + (size_t)len)
            cap *= 2;
        char *p = sse__realloc(t->out, cap);
        if (!p) {
            t->out_err = 1;
            return -1;
        }
        t->out = p;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, data, (size_t)len);
    t->out_len += (size_t)len;
    return len;
}

static int sse__tls_bio_read(BIO *b, char *out, int len)
{
    struct sse__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (!t->in_len) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = t->in_len < (size_t)len ? t->in_len : (size_t)len;
    memcpy(out, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static long sse__tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sse__tls_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int sse__tls_bio_destroy(BIO *b)
{
    (void)b;
    return 1;
}

/* ---- writes */

static void sse__tls_write_cb(uv_write_t *req, int status)
{
    struct sse__tls_write *w = (struct sse__tls_write *)req;
    struct sse__conn *c = w->conn;
    struct sse__tls_conn *x = sse__tls_c(c);
    int notify = w->notify;
    sse__free(w);
    x->owned--;
    if (status < 0 && !x->werr)
        x->werr = status;
    if (notify)
        sse__conn_write_done(c, status);
}

/*
 * Send the ciphertext in the scratch buffer on c: what the socket takes now (unless notify:
 * then, or when earlier writes still wait, all of it) goes out directly, the rest is copied
 * into a write request. notify: the request reports with sse__conn_write_done. The scratch
 * is empty afterwards. Returns 0 (with notify: the callback will come) or a negative error.
 */
static int sse__tls_send(struct sse__conn *c, int notify)
{
    struct sse__tls *t = sse__tls_t(c);
    struct sse__tls_conn *x = sse__tls_c(c);
    size_t len = t->out_len, off = 0;
    t->out_len = 0;
    if (t->out_err) {
        t->out_err = 0;
        return UV_ENOMEM;
    }
    if (!len && !notify)
        return 0;
    if (!notify && !x->owned) {
        uv_buf_t b = uv_buf_init(t->out, (unsigned)len);
        int r = uv_try_write((uv_stream_t *)&x->tcp, &b, 1);
        if (r > 0)
            off = (size_t)r;
        else if (r != UV_EAGAIN && r != UV_ENOSYS)
            return r;
        if (off == len)
            return 0;
    }
    struct sse__tls_write *w = sse__malloc(sizeof(*w) + (len - off));
    if (!w)
        return UV_ENOMEM;
    memcpy(w->data, t->out + off, len - off);
    w->conn = c;
    w->notify = notify;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)(len - off));
    int rc = uv_write(&w->req, (uv_stream_t *)&x->tcp, &b, 1, sse__tls_write_cb);
    if (rc) {
        sse__free(w);
        return rc;
    }
    x->owned++;
    return 0;
}

/* Drop OpenSSL's error queue, logging its first entry (at debug: peers cause these). */
static void sse__tls_log_errors(struct sse__conn *c, const char *what)
{
    unsigned long e = ERR_get_error();
    char msg[256];
    msg[0] = '\0';
    if (e)
        ERR_error_string_n(e, msg, sizeof(msg));
    ERR_clear_error();
    sse__log(c->srv, SSE_LOG_DEBUG, "tls: %s%s%s", what, msg[0] ? ": " : "", msg);
}

/* Encrypt bufs[0..n) (at most max plaintext bytes) into the scratch; the bytes taken. */
static ssize_t sse__tls_encrypt(struct sse__conn *c, const uv_buf_t *bufs, unsigned n, size_t max)
{
    struct sse__tls_conn *x = sse__tls_c(c);
    size_t taken = 0;
    for (unsigned i = 0; i < n && taken < max; i++) {
        size_t len = bufs[i].len;
        if (len > max - taken)
            len = max - taken;
        if (!len)
            continue;
        size_t wrote = 0;
        if (SSL_write_ex(x->ssl, bufs[i].base, len, &wrote) != 1 || wrote != len) {
            sse__tls_log_errors(c, "write");
            return UV_EPROTO;
        }
        taken += len;
    }
    return (ssize_t)taken;
}

static int sse__tls_try_writev(struct sse__conn *c, const uv_buf_t *bufs, unsigned n)
{
    struct sse__tls_conn *x = sse__tls_c(c);
    if (x->werr)
        return x->werr;
    if (x->owned) /* earlier ciphertext still waits for the socket: the caller waits too */
        return 0;
    sse__tls_t(c)->out_len = 0;
    ssize_t taken = sse__tls_encrypt(c, bufs, n, SSE__TLS_WRITE_BATCH);
    if (taken < 0) {
        sse__tls_t(c)->out_len = 0;
        return (int)taken;
    }
    int rc = sse__tls_send(c, 0);
    return rc ? rc : (int)taken;
}

static int sse__tls_writev(struct sse__conn *c, const uv_buf_t *bufs, unsigned n)
{
    struct sse__tls_conn *x = sse__tls_c(c);
    if (x->werr)
        return x->werr;
    sse__tls_t(c)->out_len = 0;
    ssize_t taken = sse__tls_encrypt(c, bufs, n, SIZE_MAX);
    if (taken < 0) {
        sse__tls_t(c)->out_len = 0;
        return (int)taken;
    }
    return sse__tls_send(c, 1);
}

/* ---- reads */

static void sse__tls_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    *buf = sse__conn_read_buf(h->data);
}

/* The negotiated ALPN protocol of c, or NULL. */
static const char *sse__tls_alpn(struct sse__conn *c)
{
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(sse__tls_c(c)->ssl, &p, &len);
    if (len == 2 && memcmp(p, "h2", 2) == 0)
        return "h2";
    if (len == 8 && memcmp(p, "http/1.1", 8) == 0)
        return "http/1.1";
    return NULL;
}

/* Keep in[0..len) for later: the connection stopped reading in the middle of a read. */
static int sse__tls_stash(struct sse__tls_conn *x, const char *in, size_t len)
{
    if (!len)
        return 0;
    struct sse__tls_stash *st = sse__malloc(sizeof(*st) + len);
    if (!st)
        return UV_ENOMEM;
    memcpy(st->data, in, len);
    st->len = len;
    x->stash = st; /* none before: while one is kept, the socket is not read */
    return 0;
}

/*
 * Feed ciphertext in[0..len) to c's SSL: finish the handshake, then hand each record's
 * plaintext up (sse__conn_on_read) while the connection reads. What is left when it stops
 * reading is stashed. A failure reaches the connection as the end of its stream.
 */
static void sse__tls_feed(struct sse__conn *c, const char *in, size_t len)
{
    struct sse__tls *t = sse__tls_t(c);
    struct sse__tls_conn *x = sse__tls_c(c);
    int fail = 0;
    x->flags |= SSE__TLS_DELIVERING;
    for (;;) {
        if ((x->flags & SSE__TLS_READY) && !(x->flags & SSE__TLS_READING)) {
            if (sse__tls_stash(x, in, len) != 0)
                fail = UV_ENOMEM;
            break;
        }
        t->in = in;
        t->in_len = len;
        t->out_len = 0;
        int r;
        if (!(x->flags & SSE__TLS_READY))
            r = SSL_do_handshake(x->ssl);
        else
            r = SSL_read(x->ssl, t->plain, SSE__TLS_PLAIN_SIZE);
        in = t->in;
        len = t->in_len;
        t->in_len = 0;
        int err = r > 0 ? SSL_ERROR_NONE : SSL_get_error(x->ssl, r);
        int src = sse__tls_send(c, 0); /* handshake messages, alerts, key updates */
        if (src) {
            fail = src;
            break;
        }
        if (!(x->flags & SSE__TLS_READY)) {
            if (err == SSL_ERROR_WANT_READ)
                break;
            if (err != SSL_ERROR_NONE) {
                sse__tls_log_errors(c, "handshake failed");
                fail = UV_EPROTO;
                break;
            }
            x->flags |= SSE__TLS_READY;
            if (x->flags & SSE__TLS_OVERLIMIT) {
                /* the answer a TCP connection past the limit gets at once (ALPN gave it
                   http/1.1); later plaintext is read only to notice the EOF */
                sse__conn_reject(c, 503, NULL);
                if (c->state == SSE__ST_CLOSED) {
                    x->flags &= (uint8_t)~SSE__TLS_DELIVERING;
                    return;
                }
                continue;
            }
            const char *proto = sse__tls_alpn(c);
            if (proto && strcmp(proto, "h2") == 0) {
                /* chosen only when alpn_h2 is set: the HTTP/2 layer takes the connection over
                   before any plaintext reaches it (its server preface goes out now) */
                sse__conn_start_h2(c);
                if (c->state == SSE__ST_CLOSED) {
                    x->flags &= (uint8_t)~SSE__TLS_DELIVERING;
                    return;
                }
            }
            continue;
        }
        if (err == SSL_ERROR_NONE) {
            sse__conn_on_read(c, t->plain, r);
            if (c->state == SSE__ST_CLOSED) {
                x->flags &= (uint8_t)~SSE__TLS_DELIVERING;
                return;
            }
            continue;
        }
        if (err == SSL_ERROR_WANT_READ)
            break;
        if (err == SSL_ERROR_ZERO_RETURN) { /* close_notify: the end of the stream */
            fail = UV_EOF;
        } else {
            sse__tls_log_errors(c, "read");
            fail = UV_EPROTO;
        }
        break;
    }
    x->flags &= (uint8_t)~SSE__TLS_DELIVERING;
    if (fail) {
        ERR_clear_error();
        sse__conn_on_read(c, NULL, fail);
    }
}

static void sse__tls_read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    struct sse__conn *c = h->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        sse__conn_on_read(c, NULL, nread);
        return;
    }
    sse__tls_feed(c, buf->base, (size_t)nread);
}

static int sse__tls_read_start(struct sse__conn *c)
{
    struct sse__tls_conn *x = sse__tls_c(c);
    x->flags |= SSE__TLS_READING;
    int rc = uv_read_start((uv_stream_t *)&x->tcp, sse__tls_alloc_cb, sse__tls_read_cb);
    if (rc && rc != UV_EALREADY)
        return rc;
    if (x->flags & SSE__TLS_DELIVERING)
        return 0; /* called from inside sse__tls_feed: it goes on with the rest itself */
    if (x->stash || ((x->flags & SSE__TLS_READY) && SSL_has_pending(x->ssl))) {
        /* bytes read before reading stopped: deliver them now (see transport.h) */
        struct sse__tls_stash *st = x->stash;
        x->stash = NULL;
        if (st)
            sse__tls_feed(c, st->data, st->len); /* may stash a new rest */
        else
            sse__tls_feed(c, NULL, 0);
        sse__free(st);
    }
    return 0;
}

static void sse__tls_read_stop(struct sse__conn *c)
{
    struct sse__tls_conn *x = sse__tls_c(c);
    x->flags &= (uint8_t)~SSE__TLS_READING;
    uv_read_stop((uv_stream_t *)&x->tcp);
}

/* ---- connection lifecycle */

static void sse__tls_closed_cb(uv_handle_t *h)
{
    struct sse__conn *c = h->data;
    struct sse__tls_conn *x = sse__tls_c(c);
    if (x->flags & SSE__TLS_OVERLIMIT)
        sse__tls_t(c)->overlimit--;
    SSL_free(x->ssl);
    x->ssl = NULL;
    sse__free(x->stash);
    x->stash = NULL;
    sse__conn_closed(c);
}

static int sse__tls_accept(struct sse__conn *c, uv_stream_t *listener)
{
    struct sse__tls *t = sse__tls_t(c);
    struct sse__tls_conn *x = sse__tls_c(c);
    int rc = uv_tcp_init(c->srv->loop, &x->tcp);
    if (rc) {
        sse__conn_closed(c);
        return rc;
    }
    x->tcp.data = c;
    rc = uv_accept(listener, (uv_stream_t *)&x->tcp);
    if (!rc) {
        x->ssl = SSL_new(t->ctx);
        BIO *b = x->ssl ? BIO_new(t->meth) : NULL;
        if (!b)
            rc = UV_ENOMEM;
        else {
            BIO_set_data(b, t);
            SSL_set_bio(x->ssl, b, b);
            SSL_set_app_data(x->ssl, c); /* the ALPN callback asks it (SSE__TLS_OVERLIMIT) */
            SSL_set_accept_state(x->ssl);
        }
    }
    if (rc) {
        ERR_clear_error();
        uv_close((uv_handle_t *)&x->tcp, sse__tls_closed_cb);
        return rc;
    }
    uv_tcp_nodelay(&x->tcp, 1);
    return 0;
}

static void sse__tls_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct sse__conn *c = req->data;
    sse__free(req);
    sse__conn_shutdown_done(c, status);
}

static int sse__tls_shutdown(struct sse__conn *c)
{
    struct sse__tls_conn *x = sse__tls_c(c);
    if (x->flags & SSE__TLS_READY) { /* close_notify, queued before the FIN */
        sse__tls_t(c)->out_len = 0;
        (void)SSL_shutdown(x->ssl);
        ERR_clear_error();
        int rc = sse__tls_send(c, 0);
        if (rc)
            return rc;
    }
    uv_shutdown_t *req = sse__malloc(sizeof(*req));
    if (!req)
        return UV_ENOMEM;
    req->data = c;
    int rc = uv_shutdown(req, (uv_stream_t *)&x->tcp, sse__tls_shutdown_cb);
    if (rc)
        sse__free(req);
    return rc;
}

static void sse__tls_close(struct sse__conn *c)
{
    uv_close((uv_handle_t *)&sse__tls_c(c)->tcp, sse__tls_closed_cb);
}

static int sse__tls_peer_addr(struct sse__conn *c, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    out[0] = '\0';
    int rc = uv_tcp_getpeername(&sse__tls_c(c)->tcp, (struct sockaddr *)&ss, &sl);
    if (rc)
        return rc;
    if (ss.ss_family == AF_INET6)
        return uv_ip6_name((struct sockaddr_in6 *)&ss, out, cap);
    return uv_ip4_name((struct sockaddr_in *)&ss, out, cap);
}

static int sse__tls_handshaking(struct sse__conn *c)
{
    return !(sse__tls_c(c)->flags & SSE__TLS_READY);
}

const struct sse__transport sse__transport_tls = {
    .name = "tls",
    .state_size = sizeof(struct sse__tls_conn),
    .accept = sse__tls_accept,
    .read_start = sse__tls_read_start,
    .read_stop = sse__tls_read_stop,
    .try_writev = sse__tls_try_writev,
    .writev = sse__tls_writev,
    .shutdown = sse__tls_shutdown,
    .close = sse__tls_close,
    .peer_addr = sse__tls_peer_addr,
    .alpn = sse__tls_alpn,
    .handshaking = sse__tls_handshaking,
};

/* ---- the SSL_CTX: certificate, protocol versions, ALPN */

/*
 * ALPN: http/1.1; h2 only when the client offers it and the HTTP/2 layer said it serves it
 * (srv->alpn_h2). A client that offers ALPN but none of these gets a no_application_protocol
 * alert (RFC 7301); one that offers none gets HTTP/1.1.
 */
static int sse__tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                            const unsigned char *in, unsigned inlen, void *arg)
{
    struct sse__tls *t = arg;
    const unsigned char *h11 = NULL, *h2 = NULL;
    struct sse__conn *c = SSL_get_app_data(ssl);
    /* a connection past max_connections is answered 503 in HTTP/1.1 (sse__tls_feed) */
    int offer_h2 = t->srv->alpn_h2 && !(c && (sse__tls_c(c)->flags & SSE__TLS_OVERLIMIT));
    for (unsigned i = 0; i < inlen;) {
        unsigned n = in[i];
        if (n == 0 || i + 1 + n > inlen)
            break;
        if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0)
            h2 = in + i + 1;
        else if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0)
            h11 = in + i + 1;
        i += 1 + n;
    }
    if (h2 && offer_h2) {
        *out = h2;
        *outlen = 2;
        return SSL_TLSEXT_ERR_OK;
    }
    if (h11) {
        *out = h11;
        *outlen = 8;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Log why OpenSSL refused something of the configuration (at error level). */
static void sse__tls_log_config(sse_server *s, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char msg[256] = "";
    if (e)
        ERR_error_string_n(e, msg, sizeof(msg));
    ERR_clear_error();
    sse__log(s, SSE_LOG_ERROR, "tls: %s %s: %s", what, file ? file : "", msg);
}

/* A new SSL_CTX with the certificate chain and key, or NULL (logged). */
static SSL_CTX *sse__tls_ctx_new(struct sse__tls *t, const char *cert_file, const char *key_file)
{
    sse_server *s = t->srv;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        sse__tls_log_config(s, "cannot create a context", NULL);
        return NULL;
    }
    /* TLS 1.2 and 1.3; for 1.2 forward-secret AEAD suites only (Mozilla "intermediate") */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx,
                                "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305") != 1)
        goto fail_ctx;
    /* TLS 1.3: OpenSSL's three suites, AES-128-GCM first (the server's preference, set above):
       as strong for this use, faster than AES-256, and its cipher state per connection is
       the smallest of the AES ones (docs/performance/tls.md: 208 B less than AES-256-GCM's;
       ChaCha20-Poly1305 is smaller still but slower where AES has hardware support) */
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                      "TLS_CHACHA20_POLY1305_SHA256") != 1)
        goto fail_ctx;
    /* the stateful session cache grows with clients; tickets resume without server memory */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (!t->keep_buffers)
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, sse__tls_alpn_cb, t);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        sse__tls_log_config(s, "cannot use the certificate (PEM chain) in", cert_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        sse__tls_log_config(s, "cannot use the private key (PEM) in", key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        sse__tls_log_config(s, "the key does not match the certificate:", key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
fail_ctx:
    sse__tls_log_config(s, "cannot configure the context", NULL);
    SSL_CTX_free(ctx);
    return NULL;
}

void sse__tls_free(struct sse__tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    BIO_meth_free(t->meth);
    sse__free(t->out);
    sse__free(t->plain);
    sse__free(t);
}

/* The server's TLS state, made on first use with the options of that call. */
static int sse__tls_get(sse_server *s, const sse_tls_options *o, struct sse__tls **out)
{
    if (s->tls) {
        *out = s->tls;
        return 0;
    }
    struct sse__tls *t = sse__calloc(1, sizeof(*t));
    if (!t)
        return SSE_ENOMEM;
    t->srv = s;
    t->port = -1;
    t->keep_buffers = o->keep_buffers;
    t->handshake_timeout_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : 10000;
    t->overlimit_max = o->max_overlimit_handshakes ? o->max_overlimit_handshakes : 32;
    t->plain = sse__malloc(SSE__TLS_PLAIN_SIZE);
    t->meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sse-loop");
    if (!t->plain || !t->meth || !BIO_meth_set_write(t->meth, sse__tls_bio_write) ||
        !BIO_meth_set_read(t->meth, sse__tls_bio_read) ||
        !BIO_meth_set_ctrl(t->meth, sse__tls_bio_ctrl) ||
        !BIO_meth_set_create(t->meth, sse__tls_bio_create) ||
        !BIO_meth_set_destroy(t->meth, sse__tls_bio_destroy)) {
        sse__tls_free(t);
        return SSE_ENOMEM;
    }
    *out = t;
    return 0;
}

int sse_server_listen_tls(sse_server *s, const char *host, int port, const sse_tls_options *o)
{
    if (!s || !o || !o->cert_file || !o->key_file)
        return SSE_EINVAL;
    struct sse__tls *t;
    int fresh = !s->tls;
    int rc = sse__tls_get(s, o, &t);
    if (rc)
        return rc;
    if (!t->ctx && !(t->ctx = sse__tls_ctx_new(t, o->cert_file, o->key_file))) {
        if (fresh)
            sse__tls_free(t);
        return SSE_EINVAL;
    }
    s->tls = t;
    rc = sse__server_listen_tp(s, host, port, &sse__transport_tls, t);
    if (rc)
        return rc;
    if (t->port < 0) { /* the listener just made is first in the list */
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        if (uv_tcp_getsockname(&s->listeners->tcp, (struct sockaddr *)&ss, &len) == 0)
            t->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return 0;
}

int sse_server_tls_reload(sse_server *s, const char *cert_file, const char *key_file)
{
    if (!s || !s->tls || !cert_file || !key_file)
        return SSE_EINVAL;
    SSL_CTX *ctx = sse__tls_ctx_new(s->tls, cert_file, key_file);
    if (!ctx)
        return SSE_EINVAL;     /* logged; the old certificate stays */
    SSL_CTX_free(s->tls->ctx); /* connections made from it hold their own reference */
    s->tls->ctx = ctx;
    sse__log(s, SSE_LOG_INFO, "tls: certificate reloaded from %s", cert_file);
    return 0;
}

int sse_server_tls_check(sse_server *s, const char *cert_file, const char *key_file)
{
    if (!s || !cert_file || !key_file)
        return SSE_EINVAL;
    struct sse__tls probe; /* what sse__tls_ctx_new reads: the server (its log) */
    memset(&probe, 0, sizeof(probe));
    probe.srv = s;
    SSL_CTX *ctx = sse__tls_ctx_new(&probe, cert_file, key_file);
    if (!ctx)
        return SSE_EINVAL; /* logged */
    SSL_CTX_free(ctx);
    return 0;
}

int sse_server_tls_port(const sse_server *s)
{
    return s && s->tls ? s->tls->port : -1;
}

unsigned sse__tls_handshake_timeout(const sse_server *s)
{
    return s->tls ? s->tls->handshake_timeout_ms : 10000;
}

/*
 * A connection past max_connections that is still in its handshake: the 503 a TCP connection
 * gets at once needs the handshake first. That handshake costs the connection and an SSL with
 * its handshake buffers, for at most the handshake timeout: a small separate budget of such
 * connections (sse_tls_options.max_overlimit_handshakes) bounds what a flood past the limit
 * can make the server hold. Returns 1 when the budget takes c (answered once the handshake is
 * done, counted until it closes), 0 when it is spent (the caller closes c).
 */
int sse__tls_refuse_after_handshake(struct sse__conn *c)
{
    struct sse__tls *t = sse__tls_t(c);
    struct sse__tls_conn *x = sse__tls_c(c);
    if (t->overlimit >= t->overlimit_max)
        return 0;
    t->overlimit++;
    x->flags |= SSE__TLS_OVERLIMIT;
    return 1;
}
