/*
 * utf8.c: UTF-8 validation and the WHATWG "UTF-8 decode" replacement rule (Encoding Standard):
 * every maximal subpart of an ill-formed sequence becomes one U+FFFD. Plain ASCII is skipped
 * eight bytes at a time. Used by the parser on lines that contain a byte >= 0x80, and, through
 * sse_utf8_valid_prefix() (format.h), by the hub's field checks and the CLI's JSON writer.
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

size_t sse__utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        while (i < n && s[i] < 0x80)
            i++;
        if (i >= n)
            break;
        size_t bad, k = seq_at(s + i, n - i, &bad);
        if (!k)
            return i;
        i += k;
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
