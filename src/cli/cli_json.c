/*
 * cli_json.c: JSON-lines writer for dispatched events and retry values (see cli_json.h).
 *
 * Speed matters here: `ssehub parse` spends most of its time in this file. A string is first
 * split by the library's UTF-8 validator (sse_utf8_valid_prefix) into valid stretches and the
 * single bytes between them that are not UTF-8; a valid stretch is then copied a word (8 bytes)
 * at a time: one word test finds the first '"', '\\', C0 control or DEL, the bytes before it
 * are kept and it is escaped; byte by byte only for the last few bytes of a string. Output goes
 * into the writer's buffer with room reserved up front (at most 6 output bytes per input byte),
 * so the inner loops have no bounds checks, and reaches the FILE in writes of nearly the whole
 * buffer.
 * Output only; it never fails loudly: stdio errors are left for the caller (flush, ferror()).
 */
#include "cli_json.h"

#include <string.h>
#if defined(__SSE2__) && !defined(SSE_CLI_JSON_NO_SIMD)
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

/*
 * Escape s[0..n), which is valid UTF-8 or a piece of it (bytes >= 0x80 are copied as they are,
 * so a cut inside a sequence is harmless), to p, which has room for 6 * n + 8 bytes. Returns the
 * end. Each step copies a whole word to p and keeps the bytes before the first one that needs an
 * escape (the lowest flagged byte of word_needs_escape is exactly that one on a little-endian
 * machine), so JSON-like data with a quote every few bytes costs one step per quote.
 */
static char *escape_valid(char *p, const unsigned char *s, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__) && !defined(SSE_CLI_JSON_NO_SIMD)
    /* x86-64 always has SSE2: the same steps sixteen bytes at a time */
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
    return p;
}

void sse_cli_jout_init(sse_cli_jout *o, FILE *f, char *buf, size_t cap)
{
    o->f = f;
    o->buf = buf;
    o->len = 0;
    o->cap = cap;
}

int sse_cli_jout_flush(sse_cli_jout *o)
{
    if (o->len) {
        fwrite(o->buf, 1, o->len, o->f);
        o->len = 0;
    }
    return ferror(o->f) ? -1 : 0;
}

/* Make room for n more bytes (n <= cap), flushing what is pending if need be. */
static inline void reserve(sse_cli_jout *o, size_t n)
{
    if (o->cap - o->len < n)
        sse_cli_jout_flush(o);
}

static inline void put(sse_cli_jout *o, const char *s, size_t n)
{
    reserve(o, n);
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

#define PUT_LITERAL(o, lit) put((o), (lit), sizeof(lit) - 1)

void sse_cli_jout_string(sse_cli_jout *o, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    PUT_LITERAL(o, "\"");
    while (i < len) {
        size_t valid_end = i + sse_utf8_valid_prefix(str + i, len - i);
        while (i < valid_end) {
            /* as much as surely fits (6 bytes out per byte in, plus escape_valid's 8 of
             * slack); flush first when that is only a little */
            size_t k = valid_end - i, avail = o->cap - o->len;
            size_t room = avail > 8 ? (avail - 8) / 6 : 0;
            if (room < k && room < 64) {
                sse_cli_jout_flush(o);
                room = (o->cap - 8) / 6;
            }
            if (k > room)
                k = room;
            o->len = (size_t)(escape_valid(o->buf + o->len, s + i, k) - o->buf);
            i += k;
        }
        if (i < len) { /* s[i] starts no valid sequence: one U+FFFD for this byte */
            PUT_LITERAL(o, "\\ufffd");
            i++;
        }
    }
    PUT_LITERAL(o, "\"");
}

void sse_cli_jout_event(sse_cli_jout *o, const sse_parsed_event *ev)
{
    PUT_LITERAL(o, "{\"type\":");
    sse_cli_jout_string(o, ev->type, ev->type_len);
    PUT_LITERAL(o, ",\"data\":");
    sse_cli_jout_string(o, ev->data, ev->data_len);
    PUT_LITERAL(o, ",\"id\":");
    sse_cli_jout_string(o, ev->id, ev->id_len);
    PUT_LITERAL(o, "}\n");
}

void sse_cli_jout_retry(sse_cli_jout *o, uint64_t ms)
{
    char digits[20]; /* UINT64_MAX has 20 */
    size_t n = 0;
    do {
        digits[sizeof(digits) - 1 - n++] = (char)('0' + ms % 10);
        ms /= 10;
    } while (ms);
    PUT_LITERAL(o, "{\"retry\":");
    put(o, digits + sizeof(digits) - n, n);
    PUT_LITERAL(o, "}\n");
}

/* The FILE * forms: one value through a stack buffer (a long string takes a few fwrites). */
#define ONE_SHOT(out, call)                                                                        \
    do {                                                                                           \
        char stack_buf[4096];                                                                      \
        sse_cli_jout o;                                                                            \
        sse_cli_jout_init(&o, (out), stack_buf, sizeof(stack_buf));                                \
        call;                                                                                      \
        sse_cli_jout_flush(&o);                                                                    \
    } while (0)

void sse_cli_json_string(FILE *out, const char *s, size_t len)
{
    ONE_SHOT(out, sse_cli_jout_string(&o, s, len));
}

void sse_cli_json_event(FILE *out, const sse_parsed_event *ev)
{
    ONE_SHOT(out, sse_cli_jout_event(&o, ev));
}

void sse_cli_json_retry(FILE *out, uint64_t ms)
{
    ONE_SHOT(out, sse_cli_jout_retry(&o, ms));
}
