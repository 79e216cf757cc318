/*
 * json_escape.c: the project's one JSON string escaper (sse_json_escape, format.h): used by the
 * CLI's JSON lines (`ssehub parse`, `ssehub sub --json`, the JSON log line) and by the hub's JSON
 * documents (the subscriptions API).
 *
 * Speed matters: `ssehub parse` spends most of its time here. Each step copies a whole block (16
 * bytes with SSE2, else a word of 8) to the output and keeps the bytes before the first one that
 * needs an escape ('"', '\\', a C0 control or DEL), found by one test over the block; byte by
 * byte only for the last few bytes. The caller reserves room up front (at most 6 output bytes
 * per input byte, plus 8 of slack for the last block's copy), so the loops have no bounds checks.
 *
 * Not owned here: UTF-8 (bytes >= 0x80 are copied as they are: callers that need valid output
 * split the input with sse_utf8_valid_prefix, utf8.c), quotes around the string, buffering.
 */
#include <sse/format.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) && !defined(SSE_JSON_NO_SIMD)
#include <emmintrin.h>
#endif

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/*
 * Nonzero if some byte of w is below n (n <= 0x80). The "some" is exact: a borrow can flag a
 * byte only above a byte that truly is below n. Bytes >= 0x80 never count by themselves.
 */
static inline uint64_t some_byte_below(uint64_t w, unsigned n)
{
    return (w - ONES * n) & ~w & HIGHS;
}

/* Nonzero if some byte of the word needs an escape: below 0x20, '"', '\\' or 0x7F. */
static inline uint64_t word_needs_escape(uint64_t w)
{
    return some_byte_below(w, 0x20) | some_byte_below(w ^ (ONES * '"'), 1) |
           some_byte_below(w ^ (ONES * '\\'), 1) | some_byte_below(w ^ (ONES * 0x7F), 1);
}

static inline int byte_needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c == 0x7F;
}

/* Write the escape of c (a byte that needs one) at p; returns the end (2 or 6 bytes on). */
static inline char *put_escape(char *p, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    if (c == '"' || c == '\\') {
        p[0] = '\\';
        p[1] = (char)c;
        return p + 2;
    }
    memcpy(p, "\\u00", 4);
    p[4] = hex[c >> 4];
    p[5] = hex[c & 15];
    return p + 6;
}

size_t sse_json_escape(char *out, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    char *p = out;
    size_t i = 0;
#if defined(__SSE2__) && !defined(SSE_JSON_NO_SIMD)
    /* x86-64 always has SSE2: sixteen bytes a step */
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i del = _mm_set1_epi8(0x7F), below_space = _mm_set1_epi8(0x1F);
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        _mm_storeu_si128((__m128i *)(void *)p, v);                     /* fits: 16 <= 6 * (n - i) */
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, below_space), v); /* v <= 0x1F */
        __m128i special =
            _mm_or_si128(_mm_or_si128(ctl, _mm_cmpeq_epi8(v, quote)),
                         _mm_or_si128(_mm_cmpeq_epi8(v, backslash), _mm_cmpeq_epi8(v, del)));
        unsigned mask = (unsigned)_mm_movemask_epi8(special);
        if (!mask) {
            p += 16;
            i += 16;
            continue;
        }
        size_t clean = (size_t)__builtin_ctz(mask);
        p = put_escape(p + clean, s[i + clean]);
        i += clean + 1;
    }
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* the lowest flagged byte of word_needs_escape is the first one that needs an escape */
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        memcpy(p, &w, 8); /* fits: output so far <= 6 * i, room for 6 * n + 8 */
        uint64_t special = word_needs_escape(w);
        if (!special) {
            p += 8;
            i += 8;
            continue;
        }
        size_t clean = (size_t)__builtin_ctzll(special) >> 3;
        p = put_escape(p + clean, s[i + clean]);
        i += clean + 1;
    }
#else
    while (i + 8 <= n) { /* big-endian: skip clean words only */
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (word_needs_escape(w))
            break;
        memcpy(p, &w, 8);
        p += 8;
        i += 8;
    }
#endif
    for (; i < n; i++) {
        unsigned char c = s[i];
        if (byte_needs_escape(c))
            p = put_escape(p, c);
        else
            *p++ = (char)c;
    }
    return (size_t)(p - out);
}
