/*
 * format_internal.h: helpers shared by the encoder and the parser (internal, not installed).
 *
 * - sse__scan_eol(): find the first CR or LF and note whether any byte before it is >= 0x80.
 *   Static inline so that it is inlined into the parser's and encoder's loops; SSE2 when the
 *   compiler targets it (every x86-64), eight bytes at a time (SWAR) otherwise.
 * - UTF-8 validation and WHATWG "UTF-8 decode" replacement (utf8.c).
 */
#ifndef SSE__FORMAT_INTERNAL_H
#define SSE__FORMAT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/*
 * Index of the first '\r' or '\n' in p[0..n), or n if there is none. *hi is OR-ed with a
 * non-zero value if a byte >= 0x80 occurs before that index (it is never cleared).
 */
static inline size_t sse__scan_eol(const unsigned char *p, size_t n, unsigned *hi)
{
    size_t i = 0;
    unsigned h = 0;
#if defined(__SSE2__)
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i cr = _mm_set1_epi8('\r');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        unsigned m =
            (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr)));
        unsigned b = (unsigned)_mm_movemask_epi8(v);
        if (m) {
            unsigned k = (unsigned)__builtin_ctz(m);
            h |= b & ((1u << k) - 1u);
            *hi |= h;
            return i + k;
        }
        h |= b;
    }
#else
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t a = w ^ (ones * '\n'), b = w ^ (ones * '\r');
        uint64_t z = ((a - ones) & ~a) | ((b - ones) & ~b);
        if (z & highs)
            break; /* a line end in this word: the scalar loop finds its exact place */
        h |= (unsigned)((w & highs) != 0);
    }
#endif
    for (; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\n' || c == '\r')
            break;
        h |= c & 0x80u;
    }
    *hi |= h;
    return i;
}

/* Length of the longest prefix of s[0..n) made of complete, valid UTF-8 sequences. */
size_t sse__utf8_valid_prefix(const unsigned char *s, size_t n);

/*
 * WHATWG "UTF-8 decode" of s[0..n) with replacement: valid sequences are copied, each maximal
 * subpart of an invalid sequence becomes U+FFFD (EF BF BD). dst must have room for 3 * n bytes.
 * Returns the number of bytes written. The input is taken as complete (a truncated sequence at
 * its end is replaced too), so callers pass whole lines or whole field values.
 */
size_t sse__utf8_sanitize(char *dst, const unsigned char *s, size_t n);

#endif
