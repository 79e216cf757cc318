/*
 * tls_fuzzer.c: the TLS transport (src/server/transport_tls.c) under arbitrary client bytes,
 * through a real server on a loopback socket.
 *
 * Input layout: byte 0 picks the mode and byte 1 the piece size; the rest is what the client
 * sends.
 *   mode even: the bytes go out raw, as the client's side of the connection (a ClientHello,
 *              records, garbage): the handshake and record layer of the read path.
 *   mode odd:  a real TLS client (OpenSSL over memory BIOs, in here) finishes a handshake first,
 *              then sends the bytes as application data, one record per piece: the path after
 *              the handshake (HTTP requests split over records, pipelining, a stream that
 *              writes while the client sends, the EOF).
 * The client then half-closes and reads until the server closes. The server answers GET /s
 * with an event stream (and a comment) and anything else with 200 "ok"; its request and
 * handshake timeouts are 200 ms. Checked (a failure traps): no sanitizer report, the server
 * closes the connection within 5 s of loop time, and every connection is freed afterwards.
 */
#include "fuzz_common.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sse/server.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static sse_server *srv;
static int port;
static SSL_CTX *client_ctx;

/* The client of one input. */
static struct client {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_shutdown_t shut;
    SSL *ssl;
    BIO *rbio, *wbio; /* client side: what came from the server / what goes to it */
    const uint8_t *data;
    size_t len, piece;
    int tls, sent, eof, closed;
} cl;

static void on_write(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

/* Send a copy of p[0..n) (the request owns its bytes). */
static void send_bytes(const void *p, size_t n)
{
    if (!n || cl.eof)
        return;
    uv_write_t *w = malloc(sizeof(*w) + n);
    REQUIRE(w);
    memcpy(w + 1, p, n);
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)n);
    if (uv_write(w, (uv_stream_t *)&cl.tcp, &b, 1, on_write) != 0)
        free(w);
}

/* Ciphertext the client SSL made: to the socket. */
static void flush_tls(void)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(cl.wbio, buf, sizeof(buf))) > 0)
        send_bytes(buf, (size_t)n);
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    (void)r;
    (void)status;
}

/* Send the input (raw, or as records once the handshake is done), then half-close. */
static void send_input(void)
{
    if (cl.sent)
        return;
    cl.sent = 1;
    for (size_t off = 0; off < cl.len; off += cl.piece) {
        size_t n = cl.len - off < cl.piece ? cl.len - off : cl.piece;
        if (cl.tls) {
            size_t w;
            if (SSL_write_ex(cl.ssl, cl.data + off, n, &w) != 1)
                break;
        } else {
            send_bytes(cl.data + off, n);
        }
    }
    if (cl.tls)
        flush_tls();
    uv_shutdown(&cl.shut, (uv_stream_t *)&cl.tcp, on_shutdown);
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
    cl.closed = 1;
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    static char buf[65536];
    (void)h;
    (void)sz;
    *b = uv_buf_init(buf, sizeof(buf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n == 0)
        return;
    if (n < 0) {
        cl.eof = 1;
        uv_close((uv_handle_t *)s, on_closed);
        return;
    }
    if (!cl.tls)
        return;
    BIO_write(cl.rbio, b->base, (int)n);
    if (!SSL_is_init_finished(cl.ssl)) {
        int r = SSL_do_handshake(cl.ssl);
        flush_tls();
        if (r == 1)
            send_input();
        else if (SSL_get_error(cl.ssl, r) != SSL_ERROR_WANT_READ)
            send_input(); /* refused: the half-close ends it */
    }
    char sink[16384];
    while (SSL_is_init_finished(cl.ssl) && SSL_read(cl.ssl, sink, sizeof(sink)) > 0) {
    }
    ERR_clear_error();
    flush_tls();
}

static void on_connect(uv_connect_t *c, int status)
{
    (void)c;
    REQUIRE(status == 0);
    uv_read_start((uv_stream_t *)&cl.tcp, on_alloc, on_read);
    if (cl.tls) {
        SSL_do_handshake(cl.ssl); /* the ClientHello */
        flush_tls();
    } else {
        send_input();
    }
}

static int on_plain(sse_request *r, void *ud)
{
    (void)ud;
    return sse_request_respond(r, 200, "text/plain", "ok", 2);
}

static void on_stream(sse_stream *st, const sse_request *r, void *ud)
{
    (void)r;
    (void)ud;
    sse_stream_comment(st, "hello");
}

static void quiet_log(void *ud, int level, const char *line)
{
    (void)ud;
    (void)level;
    (void)line;
}

/* A self-signed P-256 certificate and its key, written to temporary files. */
static void make_cert(char *cert_path, char *key_path)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    REQUIRE(pk && x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    REQUIRE(X509_sign(x, pk, EVP_sha256()) > 0);
    int fc = mkstemp(cert_path), fk = mkstemp(key_path);
    REQUIRE(fc >= 0 && fk >= 0);
    FILE *c = fdopen(fc, "w"), *k = fdopen(fk, "w");
    REQUIRE(c && k);
    REQUIRE(PEM_write_X509(c, x) == 1);
    REQUIRE(PEM_write_PrivateKey(k, pk, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(c);
    fclose(k);
    X509_free(x);
    EVP_PKEY_free(pk);
}

static void setup(void)
{
    char cert[] = "/tmp/sse-tls-fuzz-crt-XXXXXX", key[] = "/tmp/sse-tls-fuzz-key-XXXXXX";
    signal(SIGPIPE, SIG_IGN);
    REQUIRE(uv_loop_init(&loop) == 0);
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.request_timeout_ms = 200;
    o.keepalive_timeout_ms = 200;
    o.write_timeout_ms = 500;
    o.heartbeat_ms = 100;
    o.log = quiet_log;
    REQUIRE(sse_server_new(&srv, &loop, &o) == 0);
    REQUIRE(sse_server_route_stream(srv, "/s", on_stream, NULL) == 0); /* first match wins */
    REQUIRE(sse_server_route(srv, NULL, "/*", on_plain, NULL) == 0);
    make_cert(cert, key);
    sse_tls_options to = {cert, key, 200, 0, 0};
    REQUIRE(sse_server_listen_tls(srv, "127.0.0.1", 0, &to) == 0);
    unlink(cert);
    unlink(key);
    port = sse_server_tls_port(srv);
    REQUIRE(port > 0);
    client_ctx = SSL_CTX_new(TLS_client_method());
    REQUIRE(client_ctx);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(client_ctx, alpn, sizeof(alpn) - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv)
        setup();
    if (size < 2 || size > 65536)
        return 0;
    memset(&cl, 0, sizeof(cl));
    cl.tls = data[0] & 1;
    cl.piece = (size_t)data[1] * 8 + 1;
    cl.data = data + 2;
    cl.len = size - 2;
    if (cl.tls) {
        cl.ssl = SSL_new(client_ctx);
        cl.rbio = BIO_new(BIO_s_mem());
        cl.wbio = BIO_new(BIO_s_mem());
        REQUIRE(cl.ssl && cl.rbio && cl.wbio);
        SSL_set_bio(cl.ssl, cl.rbio, cl.wbio);
        SSL_set_connect_state(cl.ssl);
        SSL_set_tlsext_host_name(cl.ssl, "localhost");
    }
    REQUIRE(uv_tcp_init(&loop, &cl.tcp) == 0);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    REQUIRE(uv_tcp_connect(&cl.conn, &cl.tcp, (const struct sockaddr *)&sa, on_connect) == 0);
    uint64_t start = uv_now(&loop);
    sse_server_stats st;
    do {
        uv_run(&loop, UV_RUN_ONCE);
        sse_server_get_stats(srv, &st);
        REQUIRE(uv_now(&loop) - start < 5000); /* the server closed it in time */
    } while (!cl.closed || st.connections != 0);
    if (cl.ssl)
        SSL_free(cl.ssl); /* frees both BIOs */
    ERR_clear_error();
    return 0;
}
