/*
 * http_response_fuzzer.c: the client side of src/http (http_response.h: URL splitting, response
 * heads, the streaming chunked decoder) under random input and random splits.
 *
 * Input layout: byte 0 picks the limits, byte 1 seeds the split points, the rest is the bytes a
 * server sent (also tried as a URL). Invariants checked (a failure traps):
 *   - a split URL's slices lie inside the input (or are the static "/"), its port in 1..65535;
 *   - scanning a head in random pieces gives exactly the result of scanning it whole;
 *   - every slice of a parsed head lies inside the head, the header count within the limit, the
 *     status in 100..999, Content-Length only with a length-framed body;
 *   - decoding the body in random pieces gives the same result, the same payload bytes and the
 *     same consumption as decoding it whole; the payload is never longer than the input, and
 *     nothing is consumed past the input.
 */
#include "fuzz_common.h"
#include "http/http_response.h"

#include <sse/error.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int in_buf(struct sse__http_slice s, const char *buf, size_t len)
{
    return s.len == 0 || (s.p >= buf && s.p + s.len <= buf + len);
}

/* A tiny deterministic generator for split sizes. */
static size_t next_split(uint32_t *state, size_t max)
{
    *state = *state * 1103515245u + 12345u;
    return 1 + (size_t)((*state >> 16) % (max ? max : 1));
}

struct out {
    char *buf;
    size_t len, cap;
};

static int collect(void *ud, const char *p, size_t n)
{
    struct out *o = ud;
    REQUIRE(n > 0 && o->len + n <= o->cap);
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

static void check_dechunk(const char *body, size_t len, const struct sse__http_response_limits *lim,
                          uint32_t seed)
{
    struct out a = {malloc(len ? len : 1), 0, len}, b = {malloc(len ? len : 1), 0, len};
    if (!a.buf || !b.buf)
        goto out;
    struct sse__http_dechunk da, db;
    memset(&da, 0, sizeof(da));
    memset(&db, 0, sizeof(db));
    size_t used_a = 0;
    int ra = sse__http_dechunk(&da, body, len, &used_a, lim, collect, &a);
    REQUIRE(ra == 0 || ra == 1 || ra == SSE_EPROTO || ra == SSE_ELIMIT);
    REQUIRE(used_a <= len && (ra != 0 || used_a == len));
    int rb = 0;
    size_t at = 0;
    while (rb == 0 && at < len) {
        size_t n = next_split(&seed, 16), used = 0;
        if (n > len - at)
            n = len - at;
        rb = sse__http_dechunk(&db, body + at, n, &used, lim, collect, &b);
        REQUIRE(used <= n && (rb != 0 || used == n));
        at += used;
    }
    REQUIRE(ra == rb && used_a == at);
    REQUIRE(a.len == b.len && a.len <= used_a && memcmp(a.buf, b.buf, a.len) == 0);
out:
    free(a.buf);
    free(b.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct sse__http_response_limits lim = {
        16 + (data[0] & 0x0f) * 16, 64 + (data[0] >> 4) * 64,        1 + (data[0] & 7) * 2,
        4 + (data[0] & 3) * 8,      (uint64_t)1 << (data[0] & 0x3f), 8 + (data[0] >> 5) * 16};
    uint32_t seed = data[1];
    const char *buf = (const char *)data + 2;
    size_t len = size - 2;

    struct sse__http_url u;
    if (sse__http_split_url(buf, len, &u) == 0) {
        REQUIRE(in_buf(u.host, buf, len) && u.host.len > 0);
        REQUIRE(u.port >= 1 && u.port <= 65535);
        REQUIRE(u.path.len > 0 && u.path.p[0] == '/');
        REQUIRE(in_buf(u.query, buf, len));
    }

    struct sse__http_scan whole, sc;
    memset(&whole, 0, sizeof(whole));
    memset(&sc, 0, sizeof(sc));
    size_t hl_whole = 0, hl_split = 0;
    int rw = sse__http_response_scan(&whole, buf, len, &lim, &hl_whole);
    int rs = 0;
    size_t have = 0;
    while (rs == 0 && have < len) {
        have += next_split(&seed, 32);
        if (have > len)
            have = len;
        rs = sse__http_response_scan(&sc, buf, have, &lim, &hl_split);
    }
    if (len == 0)
        rs = sse__http_response_scan(&sc, buf, 0, &lim, &hl_split);
    REQUIRE(rw == rs);
    REQUIRE(rw == 0 || rw == 1 || rw == SSE_EPROTO || rw == SSE_ELIMIT);
    if (rw != 1) {
        /* Not a head: the same bytes still exercise the chunked decoder. */
        check_dechunk(buf, len, &lim, seed);
        return 0;
    }
    REQUIRE(hl_whole == hl_split && hl_whole <= len);

    struct sse__http_header hdrs[32];
    struct sse__http_response r;
    int rp = sse__http_response_parse(buf, hl_whole, &r, hdrs, lim.max_headers);
    REQUIRE(rp == 0 || rp == SSE_EPROTO || rp == SSE_ELIMIT || rp == SSE_EUNSUPPORTED);
    if (rp != 0)
        return 0;
    REQUIRE(r.status >= 100 && r.status <= 999);
    REQUIRE(r.minor >= 0 && r.minor <= 9);
    REQUIRE(r.nheaders <= lim.max_headers && r.headers == hdrs);
    REQUIRE(in_buf(r.reason, buf, hl_whole));
    REQUIRE((r.content_length >= 0) == (r.body == SSE__HTTP_BODY_LENGTH));
    REQUIRE(r.body != SSE__HTTP_BODY_UNTIL_CLOSE || !r.keep_alive);
    for (unsigned i = 0; i < r.nheaders; i++) {
        REQUIRE(in_buf(hdrs[i].name, buf, hl_whole) && hdrs[i].name.len > 0);
        REQUIRE(in_buf(hdrs[i].value, buf, hl_whole));
    }
    check_dechunk(buf + hl_whole, len - hl_whole, &lim, seed);
    return 0;
}
