/*
 * http_parser.c: HTTP/1.1 request heads, chunked bodies and percent-decoding (see http_parser.h).
 *
 * The scanner is the part that sees hostile input first: it is a byte-at-a-time state machine
 * that can stop at any byte and resume, and it checks every limit as the bytes arrive. The head
 * parser then runs once over a complete head; it is strict (RFC 9112 grammar, no obsolete line
 * folding, no whitespace before ':') because leniency in framing is what request smuggling
 * feeds on. Nothing here allocates.
 */
#include "http/http_parser.h"

#include <sse/error.h>
#include <string.h>

/* RFC 9110 tchar: the characters allowed in methods and header names. */
static const unsigned char sse__tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* At most this many blank lines (CRLF) are skipped before a request line (RFC 9112 2.2). */
#define SSE__HTTP_MAX_LEADING_BYTES 16

int sse__http_scan_head(struct sse__http_scan *scan, const char *buf, size_t len,
                        const struct sse__http_limits *lim, size_t *head_len)
{
    size_t i = scan->pos;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (scan->in_head && i + 1 - scan->hdr_start > lim->max_header_bytes) {
            scan->pos = (uint32_t)i;
            return -431;
        }
        if (c == '\n') {
            size_t end = scan->cr ? i - 1 : i;
            size_t line_len = end - scan->line_start;
            scan->cr = 0;
            if (!scan->in_head) {
                if (line_len == 0) { /* a blank line before the request line: skip it */
                    if (i + 1 > SSE__HTTP_MAX_LEADING_BYTES)
                        return -400;
                    scan->line_start = scan->head_start = (uint32_t)(i + 1);
                    continue;
                }
                scan->in_head = 1;
                scan->line_start = scan->hdr_start = (uint32_t)(i + 1);
                continue;
            }
            if (line_len == 0) {
                scan->pos = (uint32_t)(i + 1);
                *head_len = i + 1;
                return 1;
            }
            if (++scan->lines > lim->max_headers) {
                scan->pos = (uint32_t)i;
                return -431;
            }
            scan->line_start = (uint32_t)(i + 1);
            continue;
        }
        if (scan->cr || c == 0) /* a CR not followed by LF, or a NUL byte */
            return -400;
        if (c == '\r') {
            scan->cr = 1;
            continue;
        }
        if (!scan->in_head && i + 1 - scan->line_start > lim->max_request_line) {
            scan->pos = (uint32_t)i;
            return -414;
        }
    }
    scan->pos = (uint32_t)i;
    return 0;
}

int sse__http_slice_ieq(struct sse__http_slice s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s.p[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a + 32);
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b + 32);
        if (a != b)
            return 0;
    }
    return 1;
}

int sse__http_has_token(struct sse__http_slice value, const char *token)
{
    const char *p = value.p, *end = value.p + value.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *start = p;
        while (p < end && *p != ',')
            p++;
        const char *stop = p;
        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        struct sse__http_slice t = {start, (size_t)(stop - start)};
        if (t.len && sse__http_slice_ieq(t, token))
            return 1;
    }
    return 0;
}

/* Line end at p: CRLF or LF. Returns its length, or 0 when p is not at a line end. */
static size_t sse__eol(const char *p, const char *end)
{
    if (p < end && *p == '\n')
        return 1;
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        return 2;
    return 0;
}

int sse__http_parse_header_line(const char **pos, const char *end, struct sse__http_header *out)
{
    const char *p = *pos;
    struct sse__http_header hd;
    hd.name.p = p;
    while (p < end && sse__tchar[(unsigned char)*p])
        p++;
    hd.name.len = (size_t)(p - hd.name.p);
    if (!hd.name.len || p >= end || *p != ':')
        return -400;
    p++;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    hd.value.p = p;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '\r' || c == '\n')
            break;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -400;
        p++;
    }
    const char *vend = p;
    while (vend > hd.value.p && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    hd.value.len = (size_t)(vend - hd.value.p);
    size_t eol = sse__eol(p, end);
    if (!eol)
        return -400;
    *pos = p + eol;
    *out = hd;
    return 0;
}

/* Content-Length: one or more digits (a list of equal values is refused for simplicity). */
static int sse__parse_length(struct sse__http_slice v, int64_t *out)
{
    if (!v.len)
        return -400;
    int64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -400;
        if (n > (INT64_MAX - 9) / 10)
            return -413; /* absurdly large: refuse as too large rather than malformed */
        n = n * 10 + (v.p[i] - '0');
    }
    *out = n;
    return 0;
}

static int sse__parse_target(struct sse__http_head *h)
{
    const char *t = h->target.p, *end = t + h->target.len;
    const char *path = t;
    if (h->target.len == 1 && t[0] == '*') {
        path = t;
    } else if (t[0] == '/') {
        path = t;
    } else {
        /* absolute form: scheme "://" authority path */
        struct sse__http_slice scheme = {t, 0};
        while (scheme.len < h->target.len && t[scheme.len] != ':')
            scheme.len++;
        if (!sse__http_slice_ieq(scheme, "http") && !sse__http_slice_ieq(scheme, "https"))
            return -400;
        const char *p = t + scheme.len;
        if (end - p < 3 || memcmp(p, "://", 3) != 0)
            return -400;
        p += 3;
        while (p < end && *p != '/' && *p != '?')
            p++;
        path = p;
    }
    const char *q = memchr(path, '?', (size_t)(end - path));
    h->path.p = path;
    h->path.len = (size_t)((q ? q : end) - path);
    h->query.p = q ? q + 1 : end;
    h->query.len = q ? (size_t)(end - q - 1) : 0;
    if (h->path.len == 0) { /* absolute form without a path, e.g. "http://host" */
        static const char slash[] = "/";
        h->path.p = slash;
        h->path.len = 1;
    }
    return 0;
}

int sse__http_parse_head(const char *buf, size_t head_len, struct sse__http_head *out,
                         struct sse__http_header *headers, unsigned max_headers)
{
    const char *p = buf, *end = buf + head_len;
    struct sse__http_head h;
    memset(&h, 0, sizeof(h));
    h.content_length = -1;
    h.headers = headers;

    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    /* request line: method SP target SP HTTP/1.x */
    h.method.p = p;
    while (p < end && sse__tchar[(unsigned char)*p])
        p++;
    h.method.len = (size_t)(p - h.method.p);
    if (!h.method.len || p >= end || *p != ' ')
        return -400;
    p++;
    h.target.p = p;
    while (p < end && (unsigned char)*p > 0x20 && (unsigned char)*p != 0x7f)
        p++;
    h.target.len = (size_t)(p - h.target.p);
    if (!h.target.len || p >= end || *p != ' ')
        return -400;
    p++;
    if (end - p < 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
        p[7] < '0' || p[7] > '9')
        return -400;
    if (p[5] != '1')
        return -505;
    h.minor = p[7] == '0' ? 0 : 1;
    p += 8;
    size_t eol = sse__eol(p, end);
    if (!eol)
        return -400;
    p += eol;

    int conn_close = 0, conn_keep = 0, hosts = 0, te = 0;
    unsigned n = 0;
    for (;;) {
        eol = sse__eol(p, end);
        if (eol) {
            p += eol;
            break;
        }
        if (p >= end)
            return -400;
        struct sse__http_header hd;
        if (sse__http_parse_header_line(&p, end, &hd) < 0)
            return -400;
        if (n >= max_headers)
            return -431;
        headers[n++] = hd;

        if (sse__http_slice_ieq(hd.name, "content-length")) {
            int64_t v;
            int rc = sse__parse_length(hd.value, &v);
            if (rc)
                return rc;
            if (h.content_length >= 0 && h.content_length != v)
                return -400;
            h.content_length = v;
        } else if (sse__http_slice_ieq(hd.name, "transfer-encoding")) {
            if (te++ || !sse__http_slice_ieq(hd.value, "chunked"))
                return sse__http_has_token(hd.value, "chunked") || te > 1 ? -400 : -501;
            h.chunked = 1;
        } else if (sse__http_slice_ieq(hd.name, "connection")) {
            conn_close |= sse__http_has_token(hd.value, "close");
            conn_keep |= sse__http_has_token(hd.value, "keep-alive");
        } else if (sse__http_slice_ieq(hd.name, "host")) {
            hosts++;
        } else if (sse__http_slice_ieq(hd.name, "expect")) {
            if (sse__http_slice_ieq(hd.value, "100-continue"))
                h.expect_continue = 1;
        }
    }
    if (p != end)
        return -400;
    if (h.chunked && h.content_length >= 0)
        return -400; /* both framings: refuse rather than guess (request smuggling) */
    if (hosts > 1 || (h.minor == 1 && hosts == 0))
        return -400;
    h.keep_alive = h.minor == 1 ? !conn_close : (conn_keep && !conn_close);
    h.nheaders = n;
    int rc = sse__parse_target(&h);
    if (rc)
        return rc;
    *out = h;
    return 0;
}

enum {
    CH_SIZE = 0,
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_START,
    CH_TRAILER_LINE,
    CH_TRAILER_END_LF,
    CH_DONE
};

static int sse__hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A chunk-size line has ended: start its data, or the trailers after the last chunk. */
static int sse__chunk_size_done(struct sse__http_chunked *c, size_t max_body)
{
    c->digits = 0;
    if (c->remaining == 0) {
        c->state = CH_TRAILER_START;
        return 0;
    }
    if (c->remaining > max_body - c->out)
        return -413;
    c->state = CH_DATA;
    return 0;
}

int sse__http_chunked_decode(struct sse__http_chunked *c, char *body, size_t len, size_t max_body,
                             size_t max_trailer)
{
    while (c->in < len) {
        if (c->state == CH_DONE)
            return 1;
        if (c->state == CH_DATA) {
            size_t n = len - c->in;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            if (c->out != c->in)
                memmove(body + c->out, body + c->in, n);
            c->out += n;
            c->in += n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            continue;
        }
        unsigned char ch = (unsigned char)body[c->in++];
        int v, rc;
        switch (c->state) {
        case CH_SIZE:
            v = sse__hexval(ch);
            if (v >= 0) {
                if (++c->digits > 15)
                    return -400;
                c->remaining = c->remaining * 16 + (unsigned)v;
                break;
            }
            if (!c->digits)
                return -400;
            if (ch == ';' || ch == ' ' || ch == '\t') {
                c->state = CH_EXT;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (ch == '\n') {
                if ((rc = sse__chunk_size_done(c, max_body)))
                    return rc;
            } else {
                return -400;
            }
            break;
        case CH_EXT:
            if (++c->trailer > max_trailer)
                return -431;
            if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (ch == '\n') {
                if ((rc = sse__chunk_size_done(c, max_body)))
                    return rc;
            } else if (ch == 0) {
                return -400;
            }
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return -400;
            if ((rc = sse__chunk_size_done(c, max_body)))
                return rc;
            break;
        case CH_DATA_CR:
            if (ch == '\r')
                c->state = CH_DATA_LF;
            else if (ch == '\n')
                c->state = CH_SIZE;
            else
                return -400;
            c->remaining = 0;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return -400;
            c->state = CH_SIZE;
            break;
        case CH_TRAILER_START:
            if (ch == '\r') {
                c->state = CH_TRAILER_END_LF;
            } else if (ch == '\n') {
                c->state = CH_DONE;
                return 1;
            } else {
                if (ch == 0)
                    return -400;
                c->state = CH_TRAILER_LINE;
                if (++c->trailer > max_trailer)
                    return -431;
            }
            break;
        case CH_TRAILER_LINE:
            if (++c->trailer > max_trailer)
                return -431;
            if (ch == '\n')
                c->state = CH_TRAILER_START;
            else if (ch == 0)
                return -400;
            break;
        case CH_TRAILER_END_LF:
            if (ch != '\n')
                return -400;
            c->state = CH_DONE;
            return 1;
        default:
            return -400;
        }
    }
    return c->state == CH_DONE ? 1 : 0;
}

int sse__http_pct_decode(const char *in, size_t len, char *out, size_t *out_len, int flags)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int hi = len - i >= 3 ? sse__hexval((unsigned char)in[i + 1]) : -1;
            int lo = len - i >= 3 ? sse__hexval((unsigned char)in[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return SSE_EINVAL;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && (flags & SSE__PCT_PLUS_SPACE)) {
            c = ' ';
        }
        if (c == 0 && (flags & SSE__PCT_NO_NUL))
            return SSE_EINVAL;
        out[o++] = (char)c;
    }
    *out_len = o;
    return 0;
}

int sse__http_decode_path(const char *in, size_t len, char *out, size_t *out_len)
{
    size_t o;
    if (sse__http_pct_decode(in, len, out, &o, SSE__PCT_NO_NUL))
        return -400;
    out[o] = '\0';
    *out_len = o;
    return 0;
}

const char *sse__http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}
