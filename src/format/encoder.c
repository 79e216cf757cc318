/*
 * encoder.c: the text/event-stream encoder: one sse_event into its wire bytes in an sse_buf.
 *
 * Text that may span lines (data, comments) is split on CR, LF and CRLF and written as one
 * "data:" / ":" line per line, so that every string round-trips through a conforming parser
 * (an empty text and a trailing line end give an empty last line). The exact output size is
 * computed first (one scan for line ends), the buffer is reserved once, then filled with
 * memcpy; on any failure the buffer is left exactly as it was.
 */
#include "format/format_internal.h"

#include <sse/format.h>
#include <string.h>

/* Line lengths remembered by count_lines for put_lines, so that short texts are scanned once. */
#define SSE__KNOWN_LINES 64

/*
 * Number of lines in s[0..n) when split on CR, LF and CRLF (always >= 1). The lengths of the
 * first SSE__KNOWN_LINES lines go to lens (if not NULL).
 */
static size_t count_lines(const char *s, size_t n, size_t *lens)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    size_t lines = 1;
    unsigned hi = 0;
    while (p < end) {
        size_t k = sse__scan_eol_short(p, (size_t)(end - p), &hi);
        if (p + k == end)
            break;
        if (lens && lines <= SSE__KNOWN_LINES)
            lens[lines - 1] = k;
        p += k;
        lines++;
        if (*p++ == '\r' && p < end && *p == '\n')
            p++;
    }
    if (lens && lines <= SSE__KNOWN_LINES)
        lens[lines - 1] = (size_t)(end - p);
    return lines;
}

/* prefix + (" " if the line is not empty and prefix is "data:") + line + '\n' */
static inline char *put_line(char *dst, const char *prefix, size_t plen, const unsigned char *p,
                             size_t k)
{
    memcpy(dst, prefix, plen);
    dst += plen;
    if (k) {
        /* "data:" + " " + text reads better; an empty line gets no trailing space */
        if (prefix[plen - 1] == ':' && plen > 1)
            *dst++ = ' ';
        memcpy(dst, p, k);
        dst += k;
    }
    *dst++ = '\n';
    return dst;
}

/* Write each line of s[0..n) as prefix + line + '\n' at dst (room checked by the caller). */
static char *put_lines(char *dst, const char *prefix, size_t plen, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    unsigned hi = 0;
    for (;;) {
        size_t k = sse__scan_eol_short(p, (size_t)(end - p), &hi);
        dst = put_line(dst, prefix, plen, p, k);
        p += k;
        if (p == end)
            return dst;
        if (*p++ == '\r' && p < end && *p == '\n')
            p++;
        if (p == end) { /* the text ends with a line end: one more, empty line */
            memcpy(dst, prefix, plen);
            dst += plen;
            *dst++ = '\n';
            return dst;
        }
    }
}

/* put_lines for lines <= SSE__KNOWN_LINES lines whose lengths count_lines noted in lens. */
static char *put_known_lines(char *dst, const char *prefix, size_t plen, const char *s, size_t n,
                             const size_t *lens, size_t lines)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    for (size_t i = 0;; i++) {
        size_t k = lens[i];
        dst = put_line(dst, prefix, plen, p, k);
        if (i + 1 == lines)
            return dst;
        p += k;
        if (*p++ == '\r' && p < end && *p == '\n')
            p++;
    }
}

/* Whether s[0..n) can be a single field value (no CR, LF, NUL). */
static int single_line(const char *s, size_t n)
{
    return sse__single_line((const unsigned char *)s, n);
}

/* Decimal digits of v into the end of tmp[20]; returns the first digit's index. */
static size_t put_u64(char tmp[20], unsigned long long v)
{
    size_t i = 20;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return i;
}

/* Bytes of "name: value\n" (value may be empty: "name:\n"). */
static size_t field_size(size_t name_len, size_t value_len)
{
    return name_len + 1 + (value_len ? 1 + value_len : 0) + 1;
}

static inline __attribute__((always_inline)) char *
put_field(char *dst, const char *name, size_t name_len, const char *v, size_t vn)
{
    memcpy(dst, name, name_len);
    dst += name_len;
    *dst++ = ':';
    if (vn) {
        *dst++ = ' ';
        if (vn <= 16)
            sse__copy_short(dst, (const unsigned char *)v, vn);
        else
            memcpy(dst, v, vn);
        dst += vn;
    }
    *dst++ = '\n';
    return dst;
}

/*
 * Size of the lines of text with the given prefix ("data:" or ":"), or 0 on overflow of the
 * sizes (the buffer cap then refuses it anyway). *lines gets the number of lines; lens, if not
 * NULL, the lengths of the first SSE__KNOWN_LINES of them.
 */
static size_t lines_size(const char *text, size_t len, size_t plen, int space, size_t *lines,
                         size_t *lens)
{
    size_t nl = count_lines(text, len, lens);
    *lines = nl;
    /* each line: prefix + optional space + '\n'; the text bytes minus line ends are <= len */
    if (len > SIZE_MAX / 8 || nl > SIZE_MAX / 8 - len)
        return 0;
    return nl * (plen + (space ? 1 : 0) + 1) + len;
}

int sse_encode_event(sse_buf *out, const sse_event *ev)
{
    if (!out || !ev)
        return SSE_EINVAL;
    if ((ev->type && !single_line(ev->type, ev->type_len)) ||
        (ev->id && !single_line(ev->id, ev->id_len)) || (!ev->type && ev->type_len) ||
        (!ev->id && ev->id_len) || (!ev->data && ev->data_len) || (!ev->comment && ev->comment_len))
        return SSE_EINVAL;
    if (ev->type_len > SIZE_MAX / 8 || ev->id_len > SIZE_MAX / 8)
        return SSE_ELIMIT;

    char num[20];
    size_t num_at = 20;
    size_t size = 1; /* the blank line */
    if (ev->comment) {
        size_t cl;
        size_t cs = lines_size(ev->comment, ev->comment_len, 1, 0, &cl, NULL);
        if (!cs)
            return SSE_ELIMIT;
        size += cs;
    }
    if (ev->id)
        size += field_size(2, ev->id_len);
    if (ev->type)
        size += field_size(5, ev->type_len);
    if (ev->retry >= 0) {
        num_at = put_u64(num, (unsigned long long)ev->retry);
        size += field_size(5, 20 - num_at);
    }
    size_t data_lines = 0, lens[SSE__KNOWN_LINES];
    if (ev->data) {
        size_t ds = lines_size(ev->data, ev->data_len, 5, 1, &data_lines, lens);
        if (!ds || ds > SIZE_MAX / 4 - size)
            return SSE_ELIMIT;
        size += ds;
    } else {
        size += 6; /* "data:\n" */
    }

    /* sse_buf_reserve's own first tests, inline: a reused buffer seldom needs to grow */
    if (!(out->max && size <= out->max - out->len && out->len + size < out->cap)) {
        int rc = sse_buf_reserve(out, size);
        if (rc)
            return rc; /* nothing written */
    }
    char *dst = out->data + out->len;
    if (ev->comment)
        dst = put_lines(dst, ":", 1, ev->comment, ev->comment_len);
    if (ev->id)
        dst = put_field(dst, "id", 2, ev->id, ev->id_len);
    if (ev->type)
        dst = put_field(dst, "event", 5, ev->type, ev->type_len);
    if (ev->retry >= 0)
        dst = put_field(dst, "retry", 5, num + num_at, 20 - num_at);
    if (ev->data && data_lines <= SSE__KNOWN_LINES)
        dst = put_known_lines(dst, "data:", 5, ev->data, ev->data_len, lens, data_lines);
    else if (ev->data)
        dst = put_lines(dst, "data:", 5, ev->data, ev->data_len);
    else
        dst = put_field(dst, "data", 4, NULL, 0);
    *dst++ = '\n';
    out->len = (size_t)(dst - out->data);
    return 0;
}

int sse_encode_comment(sse_buf *out, const char *text, size_t len)
{
    if (!out || (!text && len))
        return SSE_EINVAL;
    if (!text)
        text = "";
    size_t lines;
    size_t size = lines_size(text, len, 1, 0, &lines, NULL);
    if (!size)
        return SSE_ELIMIT;
    int rc = sse_buf_reserve(out, size);
    if (rc)
        return rc;
    char *dst = put_lines(out->data + out->len, ":", 1, text, len);
    out->len = (size_t)(dst - out->data);
    return 0;
}

int sse_encode_retry(sse_buf *out, unsigned long long ms)
{
    if (!out)
        return SSE_EINVAL;
    char num[20];
    size_t at = put_u64(num, ms);
    size_t size = field_size(5, 20 - at) + 1;
    int rc = sse_buf_reserve(out, size);
    if (rc)
        return rc;
    char *dst = put_field(out->data + out->len, "retry", 5, num + at, 20 - at);
    *dst++ = '\n';
    out->len = (size_t)(dst - out->data);
    return 0;
}
