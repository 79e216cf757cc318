/*
 * http_request_fuzzer.c: the HTTP request parser (src/http/http_parser.h) under random input
 * and random splits.
 *
 * Input layout: byte 0 picks the limits, byte 1 seeds the split points, the rest is the bytes a
 * client sent. Invariants checked (a failure traps):
 *   - scanning in random pieces gives exactly the result of scanning the whole input;
 *   - a found head lies inside the input, and every slice of the parsed head lies inside it;
 *   - the header count never passes the limit, Content-Length and chunked never coexist;
 *   - decoding a chunked body in random pieces gives the same bytes, length and consumption
 *     as decoding it whole, and never more than max_body bytes;
 *   - path decoding never grows the path.
 */
#include "fuzz_common.h"
#include "http/http_parser.h"

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

static void check_chunked(const char *body, size_t len, size_t max_body, uint32_t seed)
{
    char *whole = malloc(len ? len : 1), *split = malloc(len ? len : 1);
    if (!whole || !split)
        goto out;
    memcpy(whole, body, len);
    struct sse__http_chunked a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    int ra = sse__http_chunked_decode(&a, whole, len, max_body, 256);
    int rb = 0;
    size_t have = 0;
    while (rb == 0 && have < len) {
        size_t add = next_split(&seed, 16);
        if (add > len - have)
            add = len - have;
        memcpy(split + have, body + have, add);
        have += add;
        rb = sse__http_chunked_decode(&b, split, have, max_body, 256);
    }
    REQUIRE(ra == rb);
    if (ra == 1) {
        REQUIRE(a.out == b.out && a.in == b.in);
        REQUIRE(a.out <= max_body && a.in <= len && a.out <= a.in);
        REQUIRE(memcmp(whole, split, a.out) == 0);
    }
out:
    free(whole);
    free(split);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct sse__http_limits lim = {64 + (data[0] & 0x0f) * 64, 128 + (data[0] >> 4) * 128,
                                   1 + (data[0] & 7) * 4, 256};
    uint32_t seed = data[1];
    const char *buf = (const char *)data + 2;
    size_t len = size - 2;

    struct sse__http_scan whole;
    memset(&whole, 0, sizeof(whole));
    size_t hl_whole = 0, hl_split = 0;
    int rw = sse__http_scan_head(&whole, buf, len, &lim, &hl_whole);

    struct sse__http_scan sc;
    memset(&sc, 0, sizeof(sc));
    int rs = 0;
    size_t have = 0;
    while (rs == 0 && have < len) {
        have += next_split(&seed, 32);
        if (have > len)
            have = len;
        rs = sse__http_scan_head(&sc, buf, have, &lim, &hl_split);
    }
    if (len == 0)
        rs = sse__http_scan_head(&sc, buf, 0, &lim, &hl_split);
    REQUIRE(rw == rs);
    REQUIRE(rw == 0 || rw == 1 || rw == -400 || rw == -414 || rw == -431);
    if (rw != 1)
        return 0;
    REQUIRE(hl_whole == hl_split && hl_whole <= len);

    struct sse__http_header hdrs[32];
    struct sse__http_head h;
    int rp = sse__http_parse_head(buf, hl_whole, &h, hdrs, lim.max_headers);
    REQUIRE(rp == 0 || rp == -400 || rp == -413 || rp == -431 || rp == -501 || rp == -505);
    if (rp != 0)
        return 0;
    REQUIRE(h.nheaders <= lim.max_headers);
    REQUIRE(in_buf(h.method, buf, hl_whole) && h.method.len > 0);
    REQUIRE(in_buf(h.target, buf, hl_whole) && h.target.len > 0);
    REQUIRE(in_buf(h.query, buf, hl_whole));
    REQUIRE(h.path.len > 0);
    REQUIRE(!(h.chunked && h.content_length >= 0));
    REQUIRE(h.minor == 0 || h.minor == 1);
    for (unsigned i = 0; i < h.nheaders; i++) {
        REQUIRE(in_buf(hdrs[i].name, buf, hl_whole) && hdrs[i].name.len > 0);
        REQUIRE(in_buf(hdrs[i].value, buf, hl_whole));
        for (size_t k = 0; k < hdrs[i].value.len; k++)
            REQUIRE(hdrs[i].value.p[k] != '\r' && hdrs[i].value.p[k] != '\n');
    }
    char *path = malloc(h.path.len + 1);
    if (path) {
        size_t pl = 0;
        if (sse__http_decode_path(h.path.p, h.path.len, path, &pl) == 0)
            REQUIRE(pl <= h.path.len && strlen(path) == pl);
        free(path);
    }
    if (h.chunked)
        check_chunked(buf + hl_whole, len - hl_whole, lim.max_body, seed);
    return 0;
}
