/*
 * tls_mem_probe.c: a measuring program (not a test): what OpenSSL keeps per server connection
 * once a TLS handshake is done and the first request/response went through, grouped by the
 * allocation site OpenSSL names (CRYPTO_set_mem_functions passes file and line).
 * Numbers are in docs/performance/tls.md.
 *
 * A server SSL_CTX set up like transport_tls.c (TLS 1.2+, AEAD suites, no session cache,
 * SSL_MODE_RELEASE_BUFFERS, ALPN) and a client SSL_CTX with OpenSSL's client defaults (what
 * python's ssl module offers) talk over a BIO pair made outside the counting. Only blocks
 * allocated inside server calls (SSL_new, the server's SSL_do_handshake / SSL_read /
 * SSL_write) are counted; they stay counted until freed, whoever frees them.
 *
 * Usage: tls_mem_probe CERT KEY [--conns N] [--tickets N] [--suites TLS13SUITES]
 *                                [--keep-buffers] [--free-buffers] [--tls12]
 * Prints: per-site live bytes and blocks for one connection, the total, glibc's chunk bytes
 * for them (header and rounding), and, with N connections held at once, the server's share
 * per connection beside the growth of mallinfo2().uordblks and of VmRSS per connection of the
 * whole process (client and server state and the BIO pairs together: an upper bound only).
 */
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The header in front of every OpenSSL block: 16 bytes keep malloc's alignment. */
struct hdr {
    uint32_t size;
    uint16_t site;    /* index into sites[], 0: not counted */
    uint16_t counted; /* allocated inside a server call */
    uint32_t pad[2];
};

struct site {
    const char *file;
    int line;
    long live_bytes, live_blocks, chunk_bytes;
};

#define NSITES 4096
static struct site sites[NSITES];
static int counting; /* inside a server call */

static uint16_t site_of(const char *file, int line)
{
    uint32_t h = (uint32_t)(((uintptr_t)file >> 4) * 31u + (uint32_t)line) % (NSITES - 1) + 1;
    for (;;) {
        if (!sites[h].file) {
            sites[h].file = file ? file : "?";
            sites[h].line = line;
            return (uint16_t)h;
        }
        if (sites[h].line == line &&
            (sites[h].file == file || (file && !strcmp(sites[h].file, file))))
            return (uint16_t)h;
        h = h % (NSITES - 1) + 1;
    }
}

static void account(struct hdr *h, long sign)
{
    if (!h->counted)
        return;
    struct site *s = &sites[h->site];
    s->live_bytes += sign * (long)h->size;
    s->live_blocks += sign;
    /* the chunk glibc (x86-64) makes for the block OpenSSL asked for: 8 bytes of header,
       16-byte granules, 32 at least (our probe header not included) */
    long chunk = (long)h->size + 8 <= 32 ? 32 : ((long)h->size + 8 + 15) / 16 * 16;
    s->chunk_bytes += sign * chunk;
}

static void *p_malloc(size_t n, const char *file, int line)
{
    struct hdr *h = malloc(sizeof(*h) + n);
    if (!h)
        return NULL;
    memset(h, 0, sizeof(*h));
    h->size = (uint32_t)n;
    if (counting) {
        h->counted = 1;
        h->site = site_of(file, line);
        account(h, 1);
    }
    return h + 1;
}

static void p_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    if (!p)
        return;
    struct hdr *h = (struct hdr *)p - 1;
    account(h, -1);
    free(h);
}

static void *p_realloc(void *p, size_t n, const char *file, int line)
{
    if (!p)
        return p_malloc(n, file, line);
    struct hdr *h = (struct hdr *)p - 1;
    account(h, -1);
    struct hdr *nh = realloc(h, sizeof(*h) + n);
    if (!nh) {
        account(h, 1);
        return NULL;
    }
    nh->size = (uint32_t)n;
    if (counting) { /* a realloc inside a server call: counted at its own site */
        nh->counted = 1;
        nh->site = site_of(file, line);
    }
    account(nh, 1);
    return nh + 1;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    (void)in;
    (void)inlen;
    *out = (const unsigned char *)"http/1.1";
    *outlen = 8;
    return SSL_TLSEXT_ERR_OK;
}

struct opts {
    int conns, tickets, keep, free_bufs, tls12;
    const char *suites;
};

static SSL_CTX *server_ctx(const char *cert, const char *key, const struct opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                 "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    if (SSL_CTX_set_ciphersuites(ctx, o->suites) != 1) {
        fprintf(stderr, "bad --suites\n");
        exit(2);
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (o->tickets >= 0)
        SSL_CTX_set_num_tickets(ctx, (size_t)o->tickets);
    if (!o->keep)
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        exit(2);
    }
    return ctx;
}

struct pair {
    SSL *srv, *cli;
};

/* A client and a server SSL over a fresh BIO pair (made uncounted), handshaken, one request
   read and a response head written by the server, read by the client. 0 or -1. */
static int connect_pair(SSL_CTX *sctx, SSL_CTX *cctx, const struct opts *o, struct pair *p)
{
    BIO *bs, *bc;
    if (!BIO_new_bio_pair(&bs, 32768, &bc, 32768))
        return -1;
    p->cli = SSL_new(cctx);
    SSL_set_bio(p->cli, bc, bc);
    SSL_set_connect_state(p->cli);
    counting = 1;
    p->srv = SSL_new(sctx);
    SSL_set_bio(p->srv, bs, bs);
    SSL_set_accept_state(p->srv);
    counting = 0;
    int cdone = 0, sdone = 0;
    for (int i = 0; i < 20 && !(cdone && sdone); i++) {
        if (!cdone)
            cdone = SSL_do_handshake(p->cli) == 1;
        if (!sdone) {
            counting = 1;
            sdone = SSL_do_handshake(p->srv) == 1;
            counting = 0;
        }
    }
    if (!cdone || !sdone)
        return -1;
    static const char req[] = "GET /.well-known/mercure?topic=/idle HTTP/1.1\r\nHost: localhost\r\n"
                              "Accept: text/event-stream\r\n\r\n";
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n";
    char buf[4096];
    if (SSL_write(p->cli, req, sizeof(req) - 1) <= 0)
        return -1;
    counting = 1;
    int n = SSL_read(p->srv, buf, sizeof(buf)); /* also takes the client's ticket-less flight */
    int w = n > 0 ? SSL_write(p->srv, resp, sizeof(resp) - 1) : -1;
    if (o->free_bufs)
        SSL_free_buffers(p->srv);
    counting = 0;
    if (n <= 0 || w <= 0)
        return -1;
    while (SSL_read(p->cli, buf, sizeof(buf)) > 0) /* the head, and the tickets */
        ;
    ERR_clear_error();
    return 0;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static int by_bytes(const void *a, const void *b)
{
    const struct site *x = a, *y = b;
    return (y->live_bytes > x->live_bytes) - (y->live_bytes < x->live_bytes);
}

int main(int argc, char **argv)
{
    /* TLS 1.3 suites as transport_tls.c sets them, unless --suites */
    struct opts o = {.conns = 1000,
                     .tickets = -1,
                     .suites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                               "TLS_CHACHA20_POLY1305_SHA256"};
    if (argc < 3) {
        fprintf(stderr, "usage: tls_mem_probe CERT KEY [--conns N] [--tickets N] [--suites S] "
                        "[--keep-buffers] [--free-buffers] [--tls12]\n");
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--conns") && i + 1 < argc)
            o.conns = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tickets") && i + 1 < argc)
            o.tickets = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--suites") && i + 1 < argc)
            o.suites = argv[++i];
        else if (!strcmp(argv[i], "--keep-buffers"))
            o.keep = 1;
        else if (!strcmp(argv[i], "--free-buffers"))
            o.free_bufs = 1;
        else if (!strcmp(argv[i], "--tls12"))
            o.tls12 = 1;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!CRYPTO_set_mem_functions(p_malloc, p_realloc, p_free)) {
        fprintf(stderr, "CRYPTO_set_mem_functions: too late\n");
        return 1;
    }
    SSL_CTX *sctx = server_ctx(argv[1], argv[2], &o);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_alpn_protos(cctx, (const unsigned char *)"\x08http/1.1", 9);
    if (o.tls12)
        SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);

    /* warm-up: lazily made provider and method state is not per connection */
    struct pair w;
    if (connect_pair(sctx, cctx, &o, &w) != 0) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_free(w.srv);
    SSL_free(w.cli);
    memset(sites, 0, sizeof(sites));

    struct pair one;
    if (connect_pair(sctx, cctx, &o, &one) != 0)
        return 1;
    printf("%s, suite %s, tickets %s, buffers %s\n", SSL_get_version(one.srv),
           SSL_CIPHER_get_name(SSL_get_current_cipher(one.srv)),
           o.tickets < 0 ? "default"
           : o.tickets   ? "some"
                         : "none",
           o.keep        ? "kept"
           : o.free_bufs ? "released + SSL_free_buffers"
                         : "released");
    struct site sorted[NSITES];
    memcpy(sorted, sites, sizeof(sites));
    qsort(sorted, NSITES, sizeof(sorted[0]), by_bytes);
    long tb = 0, tn = 0, tc = 0;
    printf("%8s %6s %8s  %s\n", "bytes", "blocks", "chunks", "site");
    for (int i = 0; i < NSITES; i++) {
        if (sorted[i].live_blocks <= 0)
            continue;
        tb += sorted[i].live_bytes;
        tn += sorted[i].live_blocks;
        tc += sorted[i].chunk_bytes;
        const char *f = strstr(sorted[i].file, "ssl/")      ? strstr(sorted[i].file, "ssl/")
                        : strstr(sorted[i].file, "crypto/") ? strstr(sorted[i].file, "crypto/")
                        : strstr(sorted[i].file, "providers/")
                            ? strstr(sorted[i].file, "providers/")
                            : sorted[i].file;
        printf("%8ld %6ld %8ld  %s:%d\n", sorted[i].live_bytes, sorted[i].live_blocks,
               sorted[i].chunk_bytes, f, sorted[i].line);
    }
    printf("total: %ld bytes in %ld blocks requested; %ld bytes of glibc chunks\n", tb, tn, tc);

    /* N at once: heap and RSS growth per connection (client + server + BIO pairs) */
    if (o.conns > 0) {
        struct pair *all = calloc((size_t)o.conns, sizeof(*all));
        struct mallinfo2 m0 = mallinfo2();
        long r0 = rss_kb();
        memset(sites, 0, sizeof(sites));
        for (int i = 0; i < o.conns; i++)
            if (connect_pair(sctx, cctx, &o, &all[i]) != 0)
                return 1;
        struct mallinfo2 m1 = mallinfo2();
        long r1 = rss_kb();
        long sb = 0, sc = 0;
        for (int i = 0; i < NSITES; i++) {
            sb += sites[i].live_bytes;
            sc += sites[i].chunk_bytes;
        }
        printf("%d connections: server requested %ld B/conn, server chunks %ld B/conn; whole "
               "process: malloc in use +%zu B/conn, arena +%zu B/conn, RSS +%ld B/conn\n",
               o.conns, sb / o.conns, sc / o.conns, (m1.uordblks - m0.uordblks) / (size_t)o.conns,
               (m1.arena - m0.arena) / (size_t)o.conns, (r1 - r0) * 1024 / o.conns);
        for (int i = 0; i < o.conns; i++) {
            SSL_free(all[i].srv);
            SSL_free(all[i].cli);
        }
        free(all);
    }
    SSL_free(one.srv);
    SSL_free(one.cli);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}
