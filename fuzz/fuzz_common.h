/*
 * fuzz_common.h: helpers shared by the fuzz targets (header-only, static inline; not a target:
 * fuzz/CMakeLists.txt builds only *_fuzzer.c).
 *
 * REQUIRE traps on a broken invariant; fuzz_valid_utf8 is a plain UTF-8 check written from the
 * RFC 3629 table, independent of the library, for targets that compare the library's output
 * against the rules. This file does not own any target's checks.
 */
#ifndef SSE_FUZZ_COMMON_H
#define SSE_FUZZ_COMMON_H

#include <stddef.h>

/* Stop the fuzzer right here (a crash it records) when c does not hold. */
#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

/* Whether s[0..n) is valid UTF-8 (RFC 3629: no overlongs, surrogates or code points > U+10FFFF). */
static inline int fuzz_valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return 0;
        }
        if (i + k >= n)
            return 0; /* truncated */
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t j = 2; j <= k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xBF)
                return 0;
        i += k + 1;
    }
    return 1;
}

#endif
