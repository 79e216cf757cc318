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
 * nul: a NUL byte ends the scan too.
 * vector_tail: scan the last < 16 bytes with overlapping loads instead of a byte loop (faster
 * for short strings, but more code, which costs the parser's chunk loop more than it gains).
 */
static inline __attribute__((always_inline)) size_t
sse__scan_eol_impl(const unsigned char *p, size_t n, unsigned *hi, int vector_tail, int nul)
{
    size_t i = 0;
    unsigned h = 0;
#if defined(__SSE2__)
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i cr = _mm_set1_epi8('\r');
    const __m128i zero = _mm_setzero_si128();
    const __m128i c13 = _mm_set1_epi8('\r');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        unsigned b = (unsigned)_mm_movemask_epi8(v);
        /* the encoder: one compare finds the bytes <= 13 (CR is the largest of CR, LF, NUL);
         * only then are CR and LF told from the others (in the parser, whose lines mostly end
         * in their first 16 bytes, that costs more than it saves) */
        if (vector_tail && !_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, c13), c13))) {
            h |= b;
            continue;
        }
        unsigned m =
            (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr)));
        if (nul)
            m |= (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero));
        if (m) {
            /* m - 1: the bits below m's lowest, and m's others, whose bytes (CR, LF, NUL)
             * have no high bit: b & (m - 1) are the high bits before the line end */
            h |= b & (m - 1u);
            *hi |= h;
            return i + (unsigned)__builtin_ctz(m);
        }
        h |= b;
    }
    if (vector_tail && i < n) {
        /* The rest, fewer than 16 bytes, without a byte loop: from n >= 16 one load ending at
         * p + n (lanes re-read are before any line end and already in h); below, two
         * overlapping 8- or 4-byte loads. Lane positions never decrease, so the first line-end
         * lane is the first line end. Nothing outside p[0..n) is read. */
        __m128i v;
        size_t base; /* the index of lane 8 (4) is base + 8 (4) */
        unsigned split;
        if (n >= 16) {
            v = _mm_loadu_si128((const __m128i *)(const void *)(p + n - 16));
            base = n - 16;
            split = 0;
        } else if (n >= 8) {
            uint64_t a, c;
            memcpy(&a, p, 8);
            memcpy(&c, p + n - 8, 8);
            v = _mm_set_epi64x((long long)c, (long long)a);
            base = n - 16;
            split = 8;
        } else if (n >= 4) {
            uint32_t a, c;
            memcpy(&a, p, 4);
            memcpy(&c, p + n - 4, 4);
            v = _mm_unpacklo_epi32(_mm_cvtsi32_si128((int)a), _mm_cvtsi32_si128((int)c));
            base = n - 8;
            split = 4;
        } else {
            for (; i < n; i++) {
                unsigned char c = p[i];
                if (c == '\n' || c == '\r' || (nul && c == '\0'))
                    break;
                h |= c & 0x80u;
            }
            *hi |= h;
            return i;
        }
        unsigned m =
            (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr)));
        if (nul)
            m |= (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero));
        unsigned b = (unsigned)_mm_movemask_epi8(v);
        if (m) {
            unsigned k = (unsigned)__builtin_ctz(m);
            h |= b & (m - 1u);
            *hi |= h;
            return k < split ? k : base + k;
        }
        h |= b;
        *hi |= h;
        return n;
    }
    for (; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\n' || c == '\r' || (nul && c == '\0'))
            break;
        h |= c & 0x80u;
    }
    *hi |= h;
    return i;
#else
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t a = w ^ (ones * '\n'), b = w ^ (ones * '\r');
        uint64_t z = ((a - ones) & ~a) | ((b - ones) & ~b);
        if (nul)
            z |= (w - ones) & ~w;
        if (z & highs)
            break; /* a line end in this word: the scalar loop finds its exact place */
        h |= (unsigned)((w & highs) != 0);
    }
    for (; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\n' || c == '\r' || (nul && c == '\0'))
            break;
        h |= c & 0x80u;
    }
    (void)vector_tail;
    *hi |= h;
    return i;
#endif
}

/* For long buffers (the parser scans to the end of a chunk): the last < 16 bytes byte by byte. */
static inline size_t sse__scan_eol(const unsigned char *p, size_t n, unsigned *hi)
{
    return sse__scan_eol_impl(p, n, hi, 0, 0);
}

/* For short strings (the encoder's values): the last < 16 bytes in one vector step. */
static inline size_t sse__scan_eol_short(const unsigned char *p, size_t n, unsigned *hi)
{
    return sse__scan_eol_impl(p, n, hi, 1, 0);
}

/* Whether p[0..n) holds no CR, LF or NUL (can be a single field value); for short strings. */
static inline int sse__single_line(const unsigned char *p, size_t n)
{
    unsigned hi = 0;
    return sse__scan_eol_impl(p, n, &hi, 1, 1) == n;
}

/* Copy n <= 16 bytes with a few overlapping moves, no call (ids and event types are short). */
static inline void sse__copy_short(char *dst, const unsigned char *src, size_t n)
{
    if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n) {
        dst[0] = (char)src[0];
        dst[n / 2] = (char)src[n / 2];
        dst[n - 1] = (char)src[n - 1];
    }
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
