/*
 * utf8.c: UTF-8 validation and the WHATWG "UTF-8 decode" replacement rule (Encoding Standard):
 * every maximal subpart of an ill-formed sequence becomes one U+FFFD. The project's one UTF-8
 * validator: used by the parser on lines that contain a byte >= 0x80, and, through
 * sse_utf8_valid_prefix() (format.h), by the hub's field checks and the CLI's JSON writer.
 * Strict (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. Plain ASCII is skipped
 * sixteen bytes at a time; past a high byte, sequences are checked one after the other with the
 * Encoding Standard's byte ranges (lead_info) until ASCII resumes.
 */
#include "format/format_internal.h"

#include <sse/format.h>

/*
 * Given a lead byte c >= 0x80, the number of continuation bytes it needs and the allowed range
 * of the first one (the Encoding Standard's "UTF-8 lower/upper boundary"). Returns 0 for bytes
 * that cannot start a sequence (80..C1, F5..FF).
 */
static inline unsigned lead_info(unsigned char c, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        return 1;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0)
            *lo = 0xA0;
        else if (c == 0xED)
            *hi = 0x9F;
        return 2;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0)
            *lo = 0x90;
        else if (c == 0xF4)
            *hi = 0x8F;
        return 3;
    }
    return 0;
}

/*
 * At s[0] >= 0x80: returns the length of the valid sequence there (2..4), or, if it is not
 * valid, 0 with *bad set to the length of its maximal subpart (at least 1).
 */
static inline size_t seq_at(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char lo, hi;
    unsigned need = lead_info(s[0], &lo, &hi);
    size_t j = 1;
    if (need == 0) {
        *bad = 1;
        return 0;
    }
    while (j <= need && j < n) {
        unsigned char c = s[j];
        if (c < lo || c > hi)
            break;
        lo = 0x80;
        hi = 0xBF;
        j++;
    }
    if (j == need + 1)
        return j;
    *bad = j;
    return 0;
}

/* Nonzero if one of the 16 bytes at s is >= 0x80. */
static inline uint64_t any_high16(const unsigned char *s)
{
    uint64_t a, b;
    memcpy(&a, s, 8);
    memcpy(&b, s + 8, 8);
    return (a | b) & 0x8080808080808080ull;
}

/* Index of the first byte >= 0x80 in s[i..n), or n: 16 bytes at a time, then one word. */
static inline size_t skip_ascii(const unsigned char *s, size_t i, size_t n)
{
    while (i + 16 <= n && !any_high16(s + i))
        i += 16;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t high = w & 0x8080808080808080ull;
        if (high) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return i + ((size_t)__builtin_ctzll(high) >> 3); /* the lowest address comes first */
#else
            break;
#endif
        }
        i += 8;
    }
    while (i < n && s[i] < 0x80)
        i++;
    return i;
}

size_t sse__utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        i = skip_ascii(s, i, n);
        /* then a run of multi-byte sequences, without going back to the word loop each time */
        while (i < n && s[i] >= 0x80) {
            unsigned char c = s[i];
            /* two bytes (U+0080..U+07FF), the commonest case outside ASCII, checked inline */
            if (c >= 0xC2 && c <= 0xDF) {
                if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80)
                    return i;
                i += 2;
                continue;
            }
            /* three bytes (the rest of the BMP: CJK and most symbols), inline too */
            if (c >= 0xE0 && c <= 0xEF && i + 2 < n) {
                unsigned char b1 = s[i + 1];
                unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
                if (b1 < lo || b1 > hi || (s[i + 2] & 0xC0) != 0x80)
                    return i;
                i += 3;
                continue;
            }
            size_t bad, k = seq_at(s + i, n - i, &bad);
            if (!k)
                return i;
            i += k;
        }
    }
    return n;
}

size_t sse_utf8_valid_prefix(const char *s, size_t n)
{
    return sse__utf8_valid_prefix((const unsigned char *)s, n);
}

size_t sse__utf8_sanitize(char *dst, const unsigned char *s, size_t n)
{
    size_t i = 0, out = 0;
    while (i < n) {
        size_t v = sse__utf8_valid_prefix(s + i, n - i);
        memcpy(dst + out, s + i, v);
        out += v;
        i += v;
        if (i >= n)
            break;
        size_t bad = 1;
        (void)seq_at(s + i, n - i, &bad);
        dst[out++] = (char)0xEF;
        dst[out++] = (char)0xBF;
        dst[out++] = (char)0xBD;
        i += bad;
    }
    return out;
}
