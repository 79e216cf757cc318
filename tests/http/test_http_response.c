/*
 * test_http_response.c: the client side of src/http (http_response.h): URL splitting, the
 * response head scanner and parser, and the streaming chunked decoder, each fed at every split
 * point (two pieces, and one byte at a time), with its limits and error codes.
 */
#include "harness/check.h"
#include "http/http_response.h"

#include <sse/error.h>

/* ------------------------------------------------------------------------------------- URL */

static int url_ok(const char *s, const char *host, int port, const char *path, const char *query)
{
    struct sse__http_url u;
    CHECK_EQ_INT(sse__http_split_url(s, strlen(s), &u), 0);
    CHECK_EQ_MEM(u.host.p, u.host.len, host, strlen(host));
    CHECK_EQ_INT(u.port, port);
    CHECK_EQ_MEM(u.path.p, u.path.len, path, strlen(path));
    CHECK_EQ_MEM(u.query.p, u.query.len, query, strlen(query));
    return 0;
}

static int test_split_url(void)
{
    CHECK(!url_ok("http://127.0.0.1:8080/.well-known/mercure", "127.0.0.1", 8080,
                  "/.well-known/mercure", ""));
    CHECK(!url_ok("http://localhost", "localhost", 80, "/", ""));
    CHECK(!url_ok("HTTP://h:1?a=b&c", "h", 1, "/", "a=b&c"));
    CHECK(!url_ok("http://[::1]:9/sub/?x#frag", "::1", 9, "/sub/", "x"));
    CHECK(!url_ok("http://[::ffff:1.2.3.4]/p", "::ffff:1.2.3.4", 80, "/p", ""));
    CHECK(!url_ok("http://h:65535/a?", "h", 65535, "/a", ""));
    CHECK(!url_ok("http://h#x", "h", 80, "/", ""));
    static const char *const bad[] = {
        "",
        "http:/",
        "https://h/",
        "ftp://h/",
        "http://",
        "http:///p",
        "http://:80/",
        "http://h:/",
        "http://h:0/",
        "http://h:65536/",
        "http://h:8x",
        "http://h:123456",
        "http://[]/",
        "http://[::1/",
        "http://[zz]/",
        "http://[::1]x/",
        "http://u@h/",
        "http://a b/",
        "http://h/a b",
        "http://h:1:2/",
        "http://h/\x7f",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sse__http_url u;
        memset(&u, 0x5a, sizeof(u));
        int rc = sse__http_split_url(bad[i], strlen(bad[i]), &u);
        if (rc != SSE_EINVAL)
            CHECK_FAIL_("split_url(\"%s\") = %d, want SSE_EINVAL", bad[i], rc);
        CHECK_EQ_INT(u.port, 0x5a5a5a5a); /* nothing written */
    }
    CHECK_EQ_INT(sse__http_split_url(NULL, 0, NULL), SSE_EINVAL);
    /* the length bounds the URL: a longer string is not read past it */
    struct sse__http_url u;
    CHECK_EQ_INT(sse__http_split_url("http://h:12/x?y", 11, &u), 0);
    CHECK_EQ_INT(u.port, 12);
    CHECK_EQ_MEM(u.path.p, u.path.len, "/", 1);
    return 0;
}

/* --------------------------------------------------------------------------- response head */

static const struct sse__http_response_limits small = {64, 256, 8, 32, 1000, 64};

/* Scan s fed as s[0..split) then all of it; returns the result at the full length. */
static int scan_split(const char *s, size_t len, size_t split, size_t *head_len)
{
    struct sse__http_scan sc;
    memset(&sc, 0, sizeof(sc));
    int rc = sse__http_response_scan(&sc, s, split, &small, head_len);
    if (rc != 0)
        return rc;
    return sse__http_response_scan(&sc, s, len, &small, head_len);
}

static int test_scan_every_split(void)
{
    static const char *const heads[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nid: 1\n",
        "HTTP/1.0 204\n\n",
        "\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc",
    };
    for (size_t h = 0; h < sizeof(heads) / sizeof(heads[0]); h++) {
        const char *s = heads[h];
        size_t len = strlen(s), want = 0, hl = 0;
        CHECK_EQ_INT(scan_split(s, len, len, &want), 1);
        for (size_t k = 0; k <= len; k++) {
            hl = 0;
            CHECK_EQ_INT(scan_split(s, len, k, &hl), 1);
            CHECK_EQ_UINT(hl, want);
        }
        struct sse__http_scan sc;
        memset(&sc, 0, sizeof(sc));
        int rc = 0;
        for (size_t k = 1; k <= len && rc == 0; k++)
            rc = sse__http_response_scan(&sc, s, k, &small, &hl);
        CHECK_EQ_INT(rc, 1);
        CHECK_EQ_UINT(hl, want);
    }
    size_t hl;
    struct sse__http_scan sc;
    memset(&sc, 0, sizeof(sc));
    CHECK_EQ_INT(sse__http_response_scan(&sc, "HTTP/1.1 200 OK\r\n", 17, NULL, &hl), 0);
    /* limits and malformed bytes */
    char longline[200];
    memset(longline, 'a', sizeof(longline));
    memcpy(longline, "HTTP/1.1 200 ", 13);
    CHECK_EQ_INT(scan_split(longline, sizeof(longline), 50, &hl), SSE_ELIMIT);
    char many[400];
    size_t ml = (size_t)snprintf(many, sizeof(many), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 9; i++)
        ml += (size_t)snprintf(many + ml, sizeof(many) - ml, "X: 1\r\n");
    snprintf(many + ml, sizeof(many) - ml, "\r\n");
    CHECK_EQ_INT(scan_split(many, strlen(many), 20, &hl), SSE_ELIMIT);
    char big[400] = "HTTP/1.1 200 OK\r\nX: ";
    memset(big + strlen(big), 'v', 300);
    CHECK_EQ_INT(scan_split(big, strlen(big), 20, &hl), SSE_ELIMIT);
    CHECK_EQ_INT(scan_split("HTTP/1.1 200 OK\r\rX", 18, 3, &hl), SSE_EPROTO);
    CHECK_EQ_INT(scan_split("HTTP/1.1 200\0OK\r\n\r\n", 19, 3, &hl), SSE_EPROTO);
    return 0;
}

static int parse(const char *s, struct sse__http_response *r, struct sse__http_header *hd,
                 unsigned max)
{
    return sse__http_response_parse(s, strlen(s), r, hd, max);
}

static int test_parse(void)
{
    struct sse__http_header hd[8];
    struct sse__http_response r;
    CHECK_EQ_INT(parse("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n",
                       &r, hd, 8),
                 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.minor, 1);
    CHECK_EQ_MEM(r.reason.p, r.reason.len, "OK", 2);
    CHECK_EQ_INT(r.body, SSE__HTTP_BODY_CHUNKED);
    CHECK_EQ_INT(r.keep_alive, 1);
    CHECK_EQ_INT(r.content_length, -1);
    CHECK_EQ_UINT(r.nheaders, 2);
    CHECK_EQ_MEM(hd[0].name.p, hd[0].name.len, "Content-Type", 12);
    CHECK_EQ_MEM(hd[0].value.p, hd[0].value.len, "text/event-stream", 17);
    CHECK(r.headers == hd);

    CHECK_EQ_INT(
        parse("HTTP/1.1 201 Created\nContent-Length: 12\nConnection: close\n\n", &r, hd, 8), 0);
    CHECK_EQ_INT(r.body, SSE__HTTP_BODY_LENGTH);
    CHECK_EQ_INT(r.content_length, 12);
    CHECK_EQ_INT(r.keep_alive, 0);

    CHECK_EQ_INT(
        parse("HTTP/1.0 200\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", &r, hd, 8), 0);
    CHECK_EQ_INT(r.minor, 0);
    CHECK_EQ_UINT(r.reason.len, 0);
    CHECK_EQ_INT(r.keep_alive, 1);
    CHECK_EQ_INT(parse("HTTP/1.0 200 OK\r\n\r\n", &r, hd, 8), 0);
    CHECK_EQ_INT(r.keep_alive, 0);
    CHECK_EQ_INT(r.body, SSE__HTTP_BODY_UNTIL_CLOSE);
    CHECK_EQ_INT(parse("HTTP/1.1 200 OK\r\n\r\n", &r, hd, 8), 0);
    CHECK_EQ_INT(r.body, SSE__HTTP_BODY_UNTIL_CLOSE);
    CHECK_EQ_INT(r.keep_alive, 0); /* the end of the body is the end of the connection */
    CHECK_EQ_INT(parse("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", &r, hd, 8), 0);
    CHECK_EQ_INT(r.body, SSE__HTTP_BODY_NONE);
    CHECK_EQ_INT(r.content_length, -1);
    CHECK_EQ_INT(parse("HTTP/1.1 304 x\r\n\r\n", &r, hd, 8), 0);
    CHECK_EQ_INT(r.body, SSE__HTTP_BODY_NONE);
    CHECK_EQ_INT(parse("HTTP/1.1 100 Continue\r\n\r\n", &r, hd, 8), 0);
    CHECK_EQ_INT(r.body, SSE__HTTP_BODY_NONE);
    CHECK_EQ_INT(
        parse("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", &r, hd, 8), 0);
    CHECK_EQ_INT(r.content_length, 7);

    /* errors leave *out alone */
    static const struct {
        const char *s;
        int rc;
    } bad[] = {
        {"HTTP/2 200 OK\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 20 OK\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 099 OK\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 200OK\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1  200 OK\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.x 200 OK\r\n\r\n", SSE_EPROTO},
        {"ICY 200 OK\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 200 O\x01K\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\nX : 1\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\n folded\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", SSE_ELIMIT},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", SSE_EUNSUPPORTED},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
         SSE_EUNSUPPORTED},
        {"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", SSE_ELIMIT},
        {"HTTP/1.1 200 OK\r\n\r\nextra", SSE_EPROTO},
        {"HTTP/1.1 200 OK\r\nX: 1\r\n", SSE_EPROTO},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&r, 0x5a, sizeof(r));
        int rc = parse(bad[i].s, &r, hd, 2);
        if (rc != bad[i].rc)
            CHECK_FAIL_("parse #%zu = %d, want %d", i, rc, bad[i].rc);
        CHECK_EQ_INT(r.status, 0x5a5a5a5a);
    }
    return 0;
}

/* ----------------------------------------------------------------------------- chunked body */

struct sink {
    char buf[512];
    size_t len;
    size_t calls;
    size_t stop_after; /* return non-zero on this call (1-based); 0 = never */
};

static int sink_data(void *ud, const char *p, size_t n)
{
    struct sink *k = ud;
    if (k->len + n > sizeof(k->buf))
        return 1;
    memcpy(k->buf + k->len, p, n);
    k->len += n;
    k->calls++;
    return k->stop_after && k->calls == k->stop_after;
}

/*
 * Feed body[0..len) in pieces of the given sizes (split[0] bytes, then split[1]...; the last size
 * repeats), stopping at the first non-zero result. Returns it; *consumed = bytes consumed.
 */
static int feed(const char *body, size_t len, size_t first, size_t step,
                const struct sse__http_response_limits *lim, struct sink *k, size_t *consumed)
{
    struct sse__http_dechunk d;
    memset(&d, 0, sizeof(d));
    size_t at = 0;
    int rc = 0;
    while (at < len) {
        size_t n = at == 0 ? first : step;
        if (n > len - at)
            n = len - at;
        size_t used = 0;
        rc = sse__http_dechunk(&d, body + at, n, &used, lim, sink_data, k);
        if (rc != 0 && used > n)
            return -99999;
        if (rc == 0 && used != n)
            return -99998;
        at += used;
        if (rc != 0)
            break;
    }
    *consumed = at;
    if (rc == 1) { /* done is sticky and consumes nothing */
        size_t used = 7;
        if (sse__http_dechunk(&d, "5\r\n", 3, &used, lim, sink_data, k) != 1 || used != 0)
            return -99997;
    }
    return rc;
}

static int test_dechunk_every_split(void)
{
    static const char body[] = "5\r\nhello\r\n1;name=value;x\r\n \r\n00A \t;ext\r\n0123456789\r\n"
                               "3\nabc\n0;last\r\nTrailer: v\r\nT2: w\r\n\r\nHTTP/1.1 200";
    static const char want[] = "hello 0123456789abc";
    size_t len = sizeof(body) - 1, body_len = len - strlen("HTTP/1.1 200");
    for (size_t first = 1; first <= len; first++) {
        for (size_t step = 1; step <= 2; step++) {
            struct sink k;
            memset(&k, 0, sizeof(k));
            size_t consumed = 0;
            CHECK_EQ_INT(feed(body, len, first, step == 1 ? 1 : len, NULL, &k, &consumed), 1);
            CHECK_EQ_MEM(k.buf, k.len, want, strlen(want));
            CHECK_EQ_UINT(consumed, body_len); /* stops before the next response */
        }
    }
    /* an endless stream: everything consumed, no end */
    struct sse__http_dechunk d;
    memset(&d, 0, sizeof(d));
    size_t used;
    struct sink k;
    memset(&k, 0, sizeof(k));
    CHECK_EQ_INT(sse__http_dechunk(&d, "4\r\ndata\r\n4\r\nmo", 14, &used, NULL, sink_data, &k), 0);
    CHECK_EQ_UINT(used, 14);
    CHECK_EQ_MEM(k.buf, k.len, "datamo", 6);
    /* NULL callback drops the payload */
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(sse__http_dechunk(&d, "2\r\nab\r\n0\r\n\r\n", 12, &used, NULL, NULL, NULL), 1);
    CHECK_EQ_UINT(used, 12);
    /* zero bytes: nothing happens */
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(sse__http_dechunk(&d, "", 0, &used, NULL, NULL, NULL), 0);
    CHECK_EQ_UINT(used, 0);
    return 0;
}

static int test_dechunk_errors(void)
{
    static const struct {
        const char *s;
        size_t len; /* 0: strlen(s) */
        int rc;
        size_t used; /* bytes consumed before the error */
    } cases[] = {
        {"x\r\n", 0, SSE_EPROTO, 0},
        {";x\r\n", 0, SSE_EPROTO, 0},
        {"\r\n", 0, SSE_EPROTO, 0},
        {"3 x\r\n", 0, SSE_EPROTO, 2},
        {"3\rX", 0, SSE_EPROTO, 2},
        {"3\r\nabcX\r\n", 0, SSE_EPROTO, 6},
        {"3\r\nabc\rX", 0, SSE_EPROTO, 7},
        {"3;a\x01\r\n", 0, SSE_EPROTO, 3},
        {"3\0\r\n", 4, SSE_EPROTO, 1},
        {"0\r\nT\0\r\n\r\n", 10, SSE_EPROTO, 4},
        {"0\r\nT: 1\rX", 0, SSE_EPROTO, 8},
        {"0\r\n\rX", 0, SSE_EPROTO, 4},
        {"0\r\n\0", 4, SSE_EPROTO, 3},
        {"3E9\r\n", 0, SSE_ELIMIT, 2}, /* 1001 > max_chunk 1000 */
    };
    struct sse__http_response_limits lim = {0, 0, 0, 0, 1000, 0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].s);
        for (size_t step = 1; step <= len; step++) {
            struct sink k;
            memset(&k, 0, sizeof(k));
            size_t consumed = 0;
            int rc = feed(cases[i].s, len, step, step, &lim, &k, &consumed);
            if (rc != cases[i].rc || consumed != cases[i].used)
                CHECK_FAIL_("case %zu step %zu: rc %d used %zu, want %d %zu", i, step, rc, consumed,
                            cases[i].rc, cases[i].used);
        }
    }
    /* 2^60 - 1 is still a size (with no max_chunk below it), one more digit is not */
    struct sse__http_response_limits huge = {0, 0, 0, 0, UINT64_MAX, 0};
    struct sse__http_dechunk d;
    size_t used;
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(sse__http_dechunk(&d, "fffffffffffffff\r\n", 17, &used, &huge, NULL, NULL), 0);
    CHECK_EQ_UINT(d.remaining, ((uint64_t)1 << 60) - 1);
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(sse__http_dechunk(&d, "ffffffffffffffff\r\n", 18, &used, &huge, NULL, NULL), 0);
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(sse__http_dechunk(&d, "10000000000000000", 17, &used, &huge, NULL, NULL),
                 SSE_ELIMIT);
    /* leading zeros do not count against the size */
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(sse__http_dechunk(&d, "000000000000000000001\r\nx\r\n0\r\n\r\n", 31, &used, &lim,
                                   NULL, NULL),
                 1);
    /* an error is sticky */
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(sse__http_dechunk(&d, "x", 1, &used, NULL, NULL, NULL), SSE_EPROTO);
    CHECK_EQ_INT(sse__http_dechunk(&d, "1\r\n", 3, &used, NULL, NULL, NULL), SSE_EPROTO);
    CHECK_EQ_UINT(used, 0);

    /* the chunk-size line limit counts extensions and the line end */
    struct sse__http_response_limits ll = {0, 0, 0, 8, 0, 12};
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(sse__http_dechunk(&d, "1;abcd\r\nx\r\n", 11, &used, &ll, NULL, NULL), 0);
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(sse__http_dechunk(&d, "1;abcde\r\n", 9, &used, &ll, NULL, NULL), SSE_ELIMIT);
    CHECK_EQ_UINT(used, 8);
    /* the trailer limit counts all trailer lines */
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(sse__http_dechunk(&d, "0\r\nA: 1\r\nB: 2\r\n\r\n", 18, &used, &ll, NULL, NULL), 1);
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(sse__http_dechunk(&d, "0\r\nA: 1\r\nB: 22\r\n\r\n", 19, &used, &ll, NULL, NULL),
                 SSE_ELIMIT);

    /* a callback that asks to stop: the bytes it was given are consumed */
    struct sink k;
    memset(&k, 0, sizeof(k));
    k.stop_after = 2;
    memset(&d, 0, sizeof(d));
    CHECK_EQ_INT(
        sse__http_dechunk(&d, "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n", 19, &used, NULL, sink_data, &k),
        SSE_ECANCELED);
    CHECK_EQ_UINT(used, 12);
    CHECK_EQ_MEM(k.buf, k.len, "abcd", 4);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_split_url), CHECK_TEST(test_scan_every_split), CHECK_TEST(test_parse),
           CHECK_TEST(test_dechunk_every_split), CHECK_TEST(test_dechunk_errors))
