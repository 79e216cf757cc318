/*
 * test_http.c: the request parser (head scanner, head parser, chunked decoder, path decoding)
 * on byte arrays split at every point, its limits and error statuses, and sse_form_next.
 */
#include "harness/check.h"
#include "harness/failalloc.h"
#include "http/http_parser.h"

#include <sse/server.h>

static const struct sse__http_limits lim = {256, 512, 10, 1000};

/* Scan s fed one growing prefix at a time; returns the scan result at the full length. */
static int scan_split(const char *s, size_t len, size_t split, size_t *head_len)
{
    struct sse__http_scan sc;
    memset(&sc, 0, sizeof(sc));
    int rc = sse__http_scan_head(&sc, s, split, &lim, head_len);
    if (rc != 0)
        return rc;
    return sse__http_scan_head(&sc, s, len, &lim, head_len);
}

static int scan_whole(const char *s, size_t *head_len)
{
    struct sse__http_scan sc;
    memset(&sc, 0, sizeof(sc));
    return sse__http_scan_head(&sc, s, strlen(s), &lim, head_len);
}

static int test_scan_every_split(void)
{
    static const char *const reqs[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /x?y=1 HTTP/1.1\nHost: a\nX: 1\n\n",
        "\r\n\r\nPOST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        "GET / HTTP/1.0\r\n\r\n",
    };
    for (size_t r = 0; r < sizeof(reqs) / sizeof(reqs[0]); r++) {
        const char *s = reqs[r];
        size_t len = strlen(s), want_hl;
        CHECK_EQ_INT(scan_whole(s, &want_hl), 1);
        for (size_t k = 0; k <= len; k++) {
            size_t hl = 0;
            int rc = scan_split(s, len, k, &hl);
            CHECK_EQ_INT(rc, 1);
            CHECK_EQ_UINT(hl, want_hl);
        }
        /* byte by byte */
        struct sse__http_scan sc;
        memset(&sc, 0, sizeof(sc));
        size_t hl = 0;
        int rc = 0;
        for (size_t k = 1; k <= len && rc == 0; k++)
            rc = sse__http_scan_head(&sc, s, k, &lim, &hl);
        CHECK_EQ_INT(rc, 1);
        CHECK_EQ_UINT(hl, want_hl);
    }
    return 0;
}

static int test_scan_limits(void)
{
    char buf[2048];
    size_t hl;
    /* request line: 256 bytes pass, 257 fail with 414 */
    int n = snprintf(buf, sizeof(buf), "GET /%0*d HTTP/1.1\r\nHost: a\r\n\r\n", 256 - 14, 0);
    CHECK(n > 0);
    CHECK_EQ_INT(scan_whole(buf, &hl), 1);
    snprintf(buf, sizeof(buf), "GET /%0*d HTTP/1.1\r\nHost: a\r\n\r\n", 256 - 13, 0);
    CHECK_EQ_INT(scan_whole(buf, &hl), -414);
    /* 414 already while the line is still arriving (no CRLF yet) */
    memset(buf, 'a', 400);
    buf[400] = '\0';
    CHECK_EQ_INT(scan_whole(buf, &hl), -414);
    /* header lines: 10 pass, 11 fail */
    n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 10; i++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "H%d: v\r\n", i);
    snprintf(buf + n, sizeof(buf) - (size_t)n, "\r\n");
    CHECK_EQ_INT(scan_whole(buf, &hl), 1);
    n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 11; i++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "H%d: v\r\n", i);
    snprintf(buf + n, sizeof(buf) - (size_t)n, "\r\n");
    CHECK_EQ_INT(scan_whole(buf, &hl), -431);
    /* header bytes: over 512 fails even without a line end */
    n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: ");
    memset(buf + n, 'v', 600);
    buf[n + 600] = '\0';
    CHECK_EQ_INT(scan_whole(buf, &hl), -431);
    /* bare CR, NUL, too many leading blank lines */
    CHECK_EQ_INT(scan_whole("GET / HTTP/1.1\rX\r\n\r\n", &hl), -400);
    CHECK_EQ_INT(scan_whole("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", &hl), -400);
    static const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    struct sse__http_scan sc;
    memset(&sc, 0, sizeof(sc));
    CHECK_EQ_INT(sse__http_scan_head(&sc, nul, sizeof(nul) - 1, &lim, &hl), -400);
    CHECK_EQ_INT(scan_whole("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", &hl),
                 -400);
    /* incomplete */
    CHECK_EQ_INT(scan_whole("GET / HTTP/1.1\r\nHost: a\r\n", &hl), 0);
    return 0;
}

/* Scan + parse a whole request head; returns the parser's result. */
static int parse(const char *s, struct sse__http_head *h, struct sse__http_header *hdrs)
{
    size_t hl;
    int rc = scan_whole(s, &hl);
    if (rc != 1)
        return rc == 0 ? -1 : rc;
    return sse__http_parse_head(s, hl, h, hdrs, lim.max_headers);
}

#define SLICE_EQ(sl, lit) CHECK_EQ_MEM((sl).p, (sl).len, lit, strlen(lit))

static int test_parse_head(void)
{
    struct sse__http_head h;
    struct sse__http_header hd[10];
    CHECK_EQ_INT(parse("GET /a/b?c=d&e HTTP/1.1\r\nHost: x\r\nX-Y:  spaced value \t\r\n"
                       "Last-Event-ID: 42\r\n\r\n",
                       &h, hd),
                 0);
    SLICE_EQ(h.method, "GET");
    SLICE_EQ(h.path, "/a/b");
    SLICE_EQ(h.query, "c=d&e");
    CHECK_EQ_INT(h.minor, 1);
    CHECK_EQ_INT(h.keep_alive, 1);
    CHECK_EQ_INT(h.nheaders, 3);
    SLICE_EQ(hd[1].name, "X-Y");
    SLICE_EQ(hd[1].value, "spaced value");
    SLICE_EQ(hd[2].value, "42");
    CHECK_EQ_INT(h.content_length, -1);
    CHECK_EQ_INT(
        parse("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 12\r\nConnection: close\r\n\r\n", &h,
              hd),
        0);
    CHECK_EQ_INT(h.content_length, 12);
    CHECK_EQ_INT(h.keep_alive, 0);
    CHECK_EQ_INT(parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n"
                       "Expect: 100-continue\r\n\r\n",
                       &h, hd),
                 0);
    CHECK_EQ_INT(h.chunked, 1);
    CHECK_EQ_INT(h.expect_continue, 1);
    CHECK_EQ_INT(parse("GET / HTTP/1.0\r\n\r\n", &h, hd), 0);
    CHECK_EQ_INT(h.keep_alive, 0);
    CHECK_EQ_INT(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h, hd), 0);
    CHECK_EQ_INT(h.keep_alive, 1);
    CHECK_EQ_INT(parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", &h, hd), 0);
    SLICE_EQ(h.path, "*");
    CHECK_EQ_INT(parse("GET https://h:1/p?q HTTP/1.1\r\nHost: x\r\n\r\n", &h, hd), 0);
    SLICE_EQ(h.path, "/p");
    SLICE_EQ(h.query, "q");
    CHECK_EQ_INT(parse("GET http://h HTTP/1.1\r\nHost: x\r\n\r\n", &h, hd), 0);
    SLICE_EQ(h.path, "/");
    /* errors */
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\n\r\n", &h, hd), -400); /* no Host */
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &h, hd), -400);
    CHECK_EQ_INT(parse("GET / HTTP/2.0\r\nHost: a\r\n\r\n", &h, hd), -505);
    CHECK_EQ_INT(parse("GET / HTTX/1.1\r\nHost: a\r\n\r\n", &h, hd), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", &h, hd), -400);
    CHECK_EQ_INT(parse("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", &h, hd), -400);
    CHECK_EQ_INT(parse("GET x HTTP/1.1\r\nHost: a\r\n\r\n", &h, hd), -400);
    CHECK_EQ_INT(parse("GET ftp://x/ HTTP/1.1\r\nHost: a\r\n\r\n", &h, hd), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost : a\r\n\r\n", &h, hd), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", &h, hd), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a\r\n fold\r\n\r\n", &h, hd), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", &h, hd), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", &h, hd), -400);
    CHECK_EQ_INT(
        parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", &h, hd),
        -413);
    CHECK_EQ_INT(
        parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", &h,
              hd),
        0);
    CHECK_EQ_INT(
        parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &h,
              hd),
        -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", &h, hd),
                 -501);
    CHECK_EQ_INT(
        parse("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &h, hd),
        -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                       "Content-Length: 3\r\n\r\n",
                       &h, hd),
                 -400);
    /* header count passed to the parser is enforced too */
    size_t hl;
    static const char three[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    CHECK_EQ_INT(scan_whole(three, &hl), 1);
    CHECK_EQ_INT(sse__http_parse_head(three, hl, &h, hd, 2), -431);
    return 0;
}

/* Decode a chunked body given in growing prefixes of step bytes; returns the result. */
static int dechunk(const char *in, size_t len, size_t step, char *out, size_t *out_len,
                   size_t *consumed)
{
    char buf[1024];
    struct sse__http_chunked c;
    memset(&c, 0, sizeof(c));
    int rc = 0;
    size_t have = 0;
    while (rc == 0 && have < len) {
        size_t add = len - have < step ? len - have : step;
        memcpy(buf + have, in + have, add);
        have += add;
        rc = sse__http_chunked_decode(&c, buf, have, 100, 64);
    }
    if (rc == 1) {
        memcpy(out, buf, c.out);
        *out_len = c.out;
        *consumed = c.in;
    }
    return rc;
}

static int test_chunked_every_split(void)
{
    static const char body[] =
        "5\r\nhello\r\n1;x=y\r\n \r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\nNEXT";
    size_t len = sizeof(body) - 1;
    char out[256];
    size_t ol, used;
    for (size_t step = 1; step <= len; step++) {
        CHECK_EQ_INT(dechunk(body, len, step, out, &ol, &used), 1);
        CHECK_EQ_MEM(out, ol, "hello 0123456789", 16);
        CHECK_EQ_UINT(used, len - 4); /* stops before the next request */
    }
    /* bare LF line ends are accepted */
    CHECK_EQ_INT(dechunk("3\nabc\n0\n\n", 9, 1, out, &ol, &used), 1);
    CHECK_EQ_MEM(out, ol, "abc", 3);
    /* errors */
    CHECK_EQ_INT(dechunk("x\r\n", 3, 1, out, &ol, &used), -400);
    CHECK_EQ_INT(dechunk("3\r\nabcX\r\n", 9, 3, out, &ol, &used), -400);
    CHECK_EQ_INT(dechunk("3\rX", 3, 1, out, &ol, &used), -400);
    CHECK_EQ_INT(dechunk("ffffffffffffffff\r\n", 18, 1, out, &ol, &used), -400);
    CHECK_EQ_INT(dechunk("65\r\n", 4, 1, out, &ol, &used), -413); /* 101 > 100 */
    CHECK_EQ_INT(dechunk("40\r\n", 4, 1, out, &ol, &used), 0);    /* 64: waits for data */
    char trailer[200] = "0\r\n";
    memset(trailer + 3, 'a', 100);
    CHECK_EQ_INT(dechunk(trailer, 103, 7, out, &ol, &used), -431);
    return 0;
}

static int test_decode_path(void)
{
    char out[64];
    size_t n;
    CHECK_EQ_INT(sse__http_decode_path("/a%20b%2Fc%2e", 13, out, &n), 0);
    CHECK_EQ_STR(out, "/a b/c.");
    CHECK_EQ_UINT(n, 7);
    CHECK_EQ_INT(sse__http_decode_path("/a+b", 4, out, &n), 0);
    CHECK_EQ_STR(out, "/a+b");
    CHECK_EQ_INT(sse__http_decode_path("/%00", 4, out, &n), -400);
    CHECK_EQ_INT(sse__http_decode_path("/%0", 3, out, &n), -400);
    CHECK_EQ_INT(sse__http_decode_path("/%g0", 4, out, &n), -400);
    return 0;
}

static int test_helpers(void)
{
    struct sse__http_slice v = {"keep-alive, Upgrade ,close", 26};
    CHECK(sse__http_has_token(v, "close"));
    CHECK(sse__http_has_token(v, "upgrade"));
    CHECK(sse__http_has_token(v, "Keep-Alive"));
    CHECK(!sse__http_has_token(v, "clos"));
    CHECK_EQ_STR(sse__http_reason(431), "Request Header Fields Too Large");
    CHECK_EQ_STR(sse__http_reason(299), "");
    return 0;
}

/* ------------------------------------------------------------ forms */

static int form_all(const char *in, char *out, size_t cap)
{
    sse_buf n, v;
    sse_buf_init(&n, 0);
    sse_buf_init(&v, 0);
    const char *cur = in, *end = in + strlen(in);
    size_t o = 0;
    int rc;
    out[0] = '\0';
    while ((rc = sse_form_next(&cur, end, &n, &v)) == 1)
        o += (size_t)snprintf(out + o, cap - o, "[%s=%s]", n.data, v.data);
    sse_buf_free(&n);
    sse_buf_free(&v);
    return rc;
}

static int test_form(void)
{
    char out[256];
    CHECK_EQ_INT(form_all("a=1&b=two+words&c=%41%2b%26", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "[a=1][b=two words][c=A+&]");
    CHECK_EQ_INT(form_all("&&x&=v&topic=https%3A%2F%2Fe.com%2F1&", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "[x=][=v][topic=https://e.com/1]");
    CHECK_EQ_INT(form_all("", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(form_all("a=%4", out, sizeof(out)), SSE_EINVAL);
    CHECK_EQ_INT(form_all("a=%zz", out, sizeof(out)), SSE_EINVAL);
    CHECK_EQ_INT(form_all("a=1=2", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "[a=1=2]");
    /* a capped buffer reports SSE_ELIMIT */
    sse_buf n, v;
    sse_buf_init(&n, 4);
    sse_buf_init(&v, 4);
    const char *in = "abcdefgh=1", *cur = in;
    CHECK_EQ_INT(sse_form_next(&cur, in + strlen(in), &n, &v), SSE_ELIMIT);
    sse_buf_free(&n);
    sse_buf_free(&v);
    /* every allocation failure is reported cleanly */
    for (long k = 1; k < 50; k++) {
        failalloc_arm(k);
        int rc = form_all("name=value&x=%41", out, sizeof(out));
        int hit = failalloc_was_hit();
        failalloc_arm(0);
        if (!hit) {
            CHECK_EQ_INT(rc, 0);
            break;
        }
        CHECK_EQ_INT(rc, SSE_ENOMEM);
    }
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_scan_every_split), CHECK_TEST(test_scan_limits),
           CHECK_TEST(test_parse_head), CHECK_TEST(test_chunked_every_split),
           CHECK_TEST(test_decode_path), CHECK_TEST(test_helpers), CHECK_TEST(test_form))
