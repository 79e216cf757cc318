/*
 * utf8_fuzzer.c: libFuzzer target for the library's one UTF-8 validator and the replacement
 * decoder beside it (src/format/utf8.c), checked against fuzz_valid_utf8 (fuzz_common.h), a plain
 * RFC 3629 check written independently of the library.
 * Checks, on the input and on the input without its first byte (another alignment of the word
 * strides): sse_utf8_valid_prefix returns p such that the first p bytes are valid and no valid
 * sequence starts at p (p == n exactly when the whole input is valid); sse__utf8_sanitize's output
 * is valid UTF-8, no longer than 3 bytes per input byte, and equal to the input when that was
 * valid.
 */
#include "format/format_internal.h"
#include "fuzz_common.h"

#include <sse/format.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_one(const unsigned char *s, size_t n)
{
    size_t p = sse_utf8_valid_prefix((const char *)s, n);
    REQUIRE(p <= n);
    REQUIRE(fuzz_valid_utf8(s, p));
    REQUIRE((p == n) == (fuzz_valid_utf8(s, n) != 0));
    if (p < n) {
        REQUIRE(s[p] >= 0x80); /* ASCII would have been taken */
        for (size_t k = 1; k <= 4 && p + k <= n; k++)
            REQUIRE(!fuzz_valid_utf8(s + p, k)); /* no sequence of any length is valid there */
    }
    REQUIRE(sse_utf8_valid_prefix((const char *)s, p) == p);

    char *out = malloc(3 * n + 1);
    REQUIRE(out != NULL);
    size_t m = sse__utf8_sanitize(out, s, n);
    REQUIRE(m <= 3 * n);
    REQUIRE(fuzz_valid_utf8((const unsigned char *)out, m));
    if (p == n)
        REQUIRE(m == n && memcmp(out, s, n) == 0);
    else
        REQUIRE(m > 0 && memcmp(out, s, p) == 0); /* the valid prefix is kept as it is */
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_one(data, size);
    if (size > 1)
        check_one(data + 1, size - 1);
    return 0;
}
