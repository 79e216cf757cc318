/*
 * loadgen_tls.c: the TLS client of the load generator's subscribers and publisher (OpenSSL 3).
 *
 * One client context per worker process (TLS 1.2+, SSL_MODE_RELEASE_BUFFERS, the server
 * verified with --cacert or the system's CAs unless --insecure, ALPN "h2" (and "http/1.1") or
 * "http/1.1") and one SSL per connection. The SSL talks to a small BIO of our own instead of memory
 * BIOs: reading gives OpenSSL the bytes libuv just read (a slice of the process's one read buffer,
 * nothing copied or kept), writing hands the ciphertext straight to the connection's send
 * function (uv_try_write, a copy only for what the socket does not take at once). So an idle
 * connection holds the SSL object and ~40 bytes here, and no buffer of its own: 10,000 TLS
 * subscribers fit one process. The engines (loadgen_sub.c, loadgen_pub.c) drive the handshake
 * and the reads.
 */
#include "loadgen/loadgen.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

/* The state behind one connection's BIO. */
struct lg_bio {
    const char *in; /* bytes received, not yet given to OpenSSL */
    size_t in_len;
    sse__loadgen_tls_send_fn send;
    void *conn;
    int send_failed;
};

static int lg_bio_read(BIO *b, char *out, size_t cap, size_t *got)
{
    struct lg_bio *d = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!d->in_len) {
        BIO_set_retry_read(b); /* more comes with the next read from the socket */
        *got = 0;
        return 0;
    }
    size_t n = d->in_len < cap ? d->in_len : cap;
    memcpy(out, d->in, n);
    d->in += n;
    d->in_len -= n;
    *got = n;
    return 1;
}

static int lg_bio_write(BIO *b, const char *p, size_t n, size_t *written)
{
    struct lg_bio *d = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (d->send(d->conn, p, n) < 0) {
        d->send_failed = 1;
        *written = 0;
        return 0;
    }
    *written = n;
    return 1;
}

static long lg_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* writes go out at once; nothing pending */
}

static int lg_bio_destroy(BIO *b)
{
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

/* The BIO method, made once per process. */
static BIO_METHOD *lg_bio_method(void)
{
    static BIO_METHOD *m;
    if (m)
        return m;
    m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ssehub-bench");
    if (!m)
        return NULL;
    BIO_meth_set_read_ex(m, lg_bio_read);
    BIO_meth_set_write_ex(m, lg_bio_write);
    BIO_meth_set_ctrl(m, lg_bio_ctrl);
    BIO_meth_set_destroy(m, lg_bio_destroy);
    return m;
}

SSL_CTX *sse__loadgen_tls_ctx(const struct sse__loadgen_config *c, int h2, const char **err)
{
    /* With h2, http/1.1 is offered too (as browsers do): a server without HTTP/2 then
     * completes the handshake and the engine reports that it did not choose h2. */
    static const unsigned char alpn_h2[] = "\x02h2\x08http/1.1";
    static const unsigned char alpn_h1[] = "\x08http/1.1";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        *err = "cannot create a TLS context";
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (c->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        int ok = c->cacert ? SSL_CTX_load_verify_locations(ctx, c->cacert, NULL)
                           : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            *err = "cannot load the CA certificates (--cacert)";
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (h2 ? SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2) - 1)
           : SSL_CTX_set_alpn_protos(ctx, alpn_h1, sizeof(alpn_h1) - 1)) {
        *err = "cannot set ALPN";
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int sse__loadgen_tls_check(const struct sse__loadgen_config *c, const char **err)
{
    SSL_CTX *ctx = sse__loadgen_tls_ctx(c, c->h2, err);
    if (!ctx)
        return -1;
    SSL_CTX_free(ctx);
    return 0;
}

SSL *sse__loadgen_tls_new(SSL_CTX *ctx, const struct sse__loadgen_url *u,
                          sse__loadgen_tls_send_fn send, void *conn)
{
    BIO_METHOD *m = lg_bio_method();
    if (!m)
        return NULL;
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    struct lg_bio *d = calloc(1, sizeof(*d));
    BIO *b = BIO_new(m);
    if (!d || !b) {
        free(d);
        BIO_free(b);
        SSL_free(ssl);
        return NULL;
    }
    d->send = send;
    d->conn = conn;
    BIO_set_data(b, d);
    BIO_set_init(b, 1);
    SSL_set_bio(ssl, b, b); /* one reference, owned by the SSL */
    SSL_set_connect_state(ssl);
    unsigned char ip[16];
    int literal = inet_pton(AF_INET, u->host, ip) == 1 || inet_pton(AF_INET6, u->host, ip) == 1;
    if (literal) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u->host);
    } else {
        SSL_set_tlsext_host_name(ssl, u->host);
        SSL_set1_host(ssl, u->host);
    }
    return ssl;
}

void sse__loadgen_tls_input(SSL *ssl, const char *p, size_t n)
{
    struct lg_bio *d = BIO_get_data(SSL_get_rbio(ssl));
    d->in = p;
    d->in_len = n;
}

int sse__loadgen_tls_send_failed(SSL *ssl)
{
    struct lg_bio *d = BIO_get_data(SSL_get_rbio(ssl));
    int f = d->send_failed;
    d->send_failed = 0;
    return f;
}
