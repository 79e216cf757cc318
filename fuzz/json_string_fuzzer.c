/*
 * json_string_fuzzer.c: libFuzzer target for the JSON string writer of `ssehub parse` and
 * `ssehub sub --json` (src/cli/cli_json.c, compiled into this target: the CLI is not in libsse).
 * The first input byte picks the writer's buffer size (256 + 16 * b bytes, so that strings are
 * cut by flushes at every offset); the rest is the string.
 * Checks: the output of an sse_cli_jout with that buffer equals the FILE * form's; it is a quoted
 * JSON string with no raw control character, valid UTF-8 (fuzz_valid_utf8), and it decodes
 * (\" \\ \u00XX \ufffd) back to the input with every byte that starts no valid sequence replaced
 * by U+FFFD; the reference for that is built with fuzz_valid_utf8, not with the library.
 * The escaping is the library's one JSON escaper (sse_json_escape, format.h, also used by the JSON
 * log line and the hub): called directly on the raw input too, it must decode back to the input
 * byte for byte (bytes >= 0x80 copied) and stay within SSE_JSON_ESCAPE_ROOM.
 */
#include "cli/cli_json.c"
#include "fuzz_common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode the JSON string j[0..n) (quotes included) into out; returns its length, or -1. */
static long decode(const char *j, size_t n, unsigned char *out)
{
    size_t o = 0;
    if (n < 2 || j[0] != '"' || j[n - 1] != '"')
        return -1;
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char c = (unsigned char)j[i];
        if (c < 0x20 || c == 0x7F || c == '"')
            return -1; /* must have been escaped */
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        if (++i >= n - 1)
            return -1;
        if (j[i] == '"' || j[i] == '\\') {
            out[o++] = (unsigned char)j[i];
        } else if (j[i] == 'u' && i + 4 < n - 1) {
            if (!memcmp(j + i, "ufffd", 5)) {
                memcpy(out + o, "\xef\xbf\xbd", 3);
                o += 3;
            } else if (j[i + 1] == '0' && j[i + 2] == '0' && hexval(j[i + 3]) >= 0 &&
                       hexval(j[i + 4]) >= 0) {
                out[o++] = (unsigned char)(hexval(j[i + 3]) << 4 | hexval(j[i + 4]));
                if (out[o - 1] >= 0x20 && out[o - 1] != 0x7F)
                    return -1; /* only controls are written as \u00XX */
            } else {
                return -1;
            }
            i += 4;
        } else {
            return -1;
        }
    }
    return (long)o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cap = 256 + 16 * (size_t)data[0];
    const unsigned char *s = data + 1;
    size_t n = size - 1;

    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    FILE *fa = open_memstream(&a, &alen);
    FILE *fb = open_memstream(&b, &blen);
    char *buf = malloc(cap);
    REQUIRE(fa && fb && buf);
    sse_cli_jout o;
    sse_cli_jout_init(&o, fa, buf, cap);
    sse_cli_jout_string(&o, (const char *)s, n);
    REQUIRE(sse_cli_jout_flush(&o) == 0);
    sse_cli_json_string(fb, (const char *)s, n);
    fclose(fa);
    fclose(fb);
    REQUIRE(alen == blen && memcmp(a, b, alen) == 0);
    REQUIRE(alen <= 6 * n + 2);
    REQUIRE(fuzz_valid_utf8((const unsigned char *)a, alen));

    /* what it must decode to */
    unsigned char *want = malloc(3 * n + 1), *got = malloc(3 * n + 1);
    REQUIRE(want && got);
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        if (s[i] < 0x80)
            k = 1;
        else
            for (size_t len = 2; len <= 4 && i + len <= n && !k; len++)
                if (fuzz_valid_utf8(s + i, len))
                    k = len;
        if (k) {
            memcpy(want + w, s + i, k);
            w += k;
            i += k;
        } else {
            memcpy(want + w, "\xef\xbf\xbd", 3);
            w += 3;
            i++;
        }
    }
    long g = decode(a, alen, got);
    REQUIRE(g >= 0 && (size_t)g == w && memcmp(got, want, w) == 0);

    /* the escaper alone, on the raw bytes */
    char *raw = malloc(SSE_JSON_ESCAPE_ROOM(n) + 2);
    REQUIRE(raw);
    raw[0] = '"';
    size_t rl = sse_json_escape(raw + 1, (const char *)s, n);
    REQUIRE(rl <= 6 * n);
    raw[1 + rl] = '"';
    g = decode(raw, rl + 2, got);
    REQUIRE(g >= 0 && (size_t)g == n && memcmp(got, s, n) == 0);
    free(raw);
    free(want);
    free(got);
    free(buf);
    free(a);
    free(b);
    return 0;
}
