/*
 * http_response.c: the client side of HTTP/1.1: URL splitting, response heads and streaming
 * chunked bodies (see http_response.h). It shares the head scanner and the header-line grammar
 * with the request parser (http_parser.c), so both directions read headers the same strict way.
 * No I/O, no allocation; the request side, forms and percent-decoding live in http_parser.c.
 */
#include "http/http_response.h"

#include <sse/error.h>
#include <string.h>

#define DEF_STATUS_LINE 1024
#define DEF_HEADER_BYTES 65536
#define DEF_HEADERS 100
#define DEF_CHUNK_LINE 4096
#define DEF_CHUNK ((uint64_t)1 << 40)
#define DEF_TRAILER 65536

/* ------------------------------------------------------------------------------------- URL */

/* Bytes allowed in a reg-name or IPv4 host: unreserved, pct-encoded and sub-delims. */
static int host_byte(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("-._~%!$&'()*+,;=", c) != NULL;
}

int sse__http_split_url(const char *url, size_t len, struct sse__http_url *out)
{
    static const char slash[] = "/";
    struct sse__http_url u;
    if (!url || len < 7)
        return SSE_EINVAL;
    struct sse__http_slice scheme = {url, 4};
    if (!sse__http_slice_ieq(scheme, "http") || memcmp(url + 4, "://", 3) != 0)
        return SSE_EINVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] == 0x7f)
            return SSE_EINVAL;
    const char *p = url + 7, *end = url + len;
    const char *aend = p;
    while (aend < end && *aend != '/' && *aend != '?' && *aend != '#')
        aend++;

    const char *rest; /* after the host: ':' port or the end of the authority */
    if (p < aend && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(aend - p));
        if (!close || close == p + 1)
            return SSE_EINVAL;
        for (const char *q = p + 1; q < close; q++)
            if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') ||
                  (*q >= 'A' && *q <= 'F') || *q == ':' || *q == '.'))
                return SSE_EINVAL;
        u.host.p = p + 1;
        u.host.len = (size_t)(close - p - 1);
        rest = close + 1;
    } else {
        const char *q = p;
        while (q < aend && *q != ':') {
            if (!host_byte((unsigned char)*q))
                return SSE_EINVAL;
            q++;
        }
        if (q == p)
            return SSE_EINVAL;
        u.host.p = p;
        u.host.len = (size_t)(q - p);
        rest = q;
    }
    u.port = 80;
    if (rest < aend) {
        if (*rest != ':' || rest + 1 == aend || aend - rest - 1 > 5)
            return SSE_EINVAL;
        int port = 0;
        for (const char *q = rest + 1; q < aend; q++) {
            if (*q < '0' || *q > '9')
                return SSE_EINVAL;
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535)
            return SSE_EINVAL;
        u.port = port;
    }

    const char *frag = memchr(aend, '#', (size_t)(end - aend));
    const char *pend = frag ? frag : end;
    const char *q = memchr(aend, '?', (size_t)(pend - aend));
    u.path.p = aend;
    u.path.len = (size_t)((q ? q : pend) - aend);
    if (u.path.len == 0) {
        u.path.p = slash;
        u.path.len = 1;
    }
    u.query.p = q ? q + 1 : pend;
    u.query.len = q ? (size_t)(pend - q - 1) : 0;
    *out = u;
    return 0;
}

/* --------------------------------------------------------------------------- response head */

int sse__http_response_scan(struct sse__http_scan *scan, const char *buf, size_t len,
                            const struct sse__http_response_limits *lim, size_t *head_len)
{
    struct sse__http_limits l = {DEF_STATUS_LINE, DEF_HEADER_BYTES, DEF_HEADERS, 1};
    if (lim) {
        if (lim->max_status_line)
            l.max_request_line = lim->max_status_line;
        if (lim->max_header_bytes)
            l.max_header_bytes = lim->max_header_bytes;
        if (lim->max_headers)
            l.max_headers = lim->max_headers;
    }
    int rc = sse__http_scan_head(scan, buf, len, &l, head_len);
    if (rc == -414 || rc == -431)
        return SSE_ELIMIT;
    return rc < 0 ? SSE_EPROTO : rc;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Content-Length: digits only (a comma list is refused, as the request parser does). */
static int parse_length(struct sse__http_slice v, int64_t *out)
{
    int64_t n = 0;
    if (!v.len)
        return SSE_EPROTO;
    for (size_t i = 0; i < v.len; i++) {
        if (!is_digit(v.p[i]))
            return SSE_EPROTO;
        if (n > (INT64_MAX - 9) / 10)
            return SSE_ELIMIT;
        n = n * 10 + (v.p[i] - '0');
    }
    *out = n;
    return 0;
}

int sse__http_response_parse(const char *buf, size_t head_len, struct sse__http_response *out,
                             struct sse__http_header *headers, unsigned max_headers)
{
    const char *p = buf, *end = buf + head_len;
    struct sse__http_response r;
    memset(&r, 0, sizeof(r));
    r.content_length = -1;
    r.headers = headers;

    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    /* status line: HTTP/1.x SP 3DIGIT [SP reason] */
    if (end - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !is_digit(p[7]) || p[8] != ' ' ||
        p[9] < '1' || p[9] > '9' || !is_digit(p[10]) || !is_digit(p[11]))
        return SSE_EPROTO;
    r.minor = p[7] == '0' ? 0 : 1;
    r.status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    p += 12;
    if (p < end && *p == ' ')
        p++;
    else if (p < end && *p != '\r' && *p != '\n')
        return SSE_EPROTO; /* "200OK" */
    r.reason.p = p;
    while (p < end && *p != '\r' && *p != '\n') {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return SSE_EPROTO;
        p++;
    }
    r.reason.len = (size_t)(p - r.reason.p);
    if (p < end && *p == '\r')
        p++;
    if (p >= end || *p != '\n')
        return SSE_EPROTO;
    p++;

    int conn_close = 0, conn_keep = 0, te = 0;
    unsigned n = 0;
    for (;;) {
        if (p < end && *p == '\n') {
            p++;
            break;
        }
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            p += 2;
            break;
        }
        struct sse__http_header hd;
        if (p >= end || sse__http_parse_header_line(&p, end, &hd) < 0)
            return SSE_EPROTO;
        if (n >= max_headers)
            return SSE_ELIMIT;
        headers[n++] = hd;
        if (sse__http_slice_ieq(hd.name, "content-length")) {
            int64_t v = 0;
            int rc = parse_length(hd.value, &v);
            if (rc)
                return rc;
            if (r.content_length >= 0 && r.content_length != v)
                return SSE_EPROTO;
            r.content_length = v;
        } else if (sse__http_slice_ieq(hd.name, "transfer-encoding")) {
            /* Only "chunked" alone: we decode no other coding, and two headers are a guess. */
            if (te++ || !sse__http_slice_ieq(hd.value, "chunked"))
                return SSE_EUNSUPPORTED;
        } else if (sse__http_slice_ieq(hd.name, "connection")) {
            conn_close |= sse__http_has_token(hd.value, "close");
            conn_keep |= sse__http_has_token(hd.value, "keep-alive");
        }
    }
    if (p != end)
        return SSE_EPROTO;
    if (te && r.content_length >= 0)
        return SSE_EPROTO; /* both framings: refuse rather than guess (response splitting) */
    r.keep_alive = r.minor == 1 ? !conn_close : (conn_keep && !conn_close);
    if (r.status < 200 || r.status == 204 || r.status == 304) {
        r.body = SSE__HTTP_BODY_NONE;
        r.content_length = -1;
    } else if (te) {
        r.body = SSE__HTTP_BODY_CHUNKED;
    } else if (r.content_length >= 0) {
        r.body = SSE__HTTP_BODY_LENGTH;
    } else {
        r.body = SSE__HTTP_BODY_UNTIL_CLOSE;
        r.keep_alive = 0;
    }
    r.nheaders = n;
    *out = r;
    return 0;
}

/* ----------------------------------------------------------------------------- chunked body */

enum {
    D_SIZE = 0,     /* hex digits of the chunk size */
    D_SIZE_WS,      /* whitespace after the size, before ';' or the line end */
    D_EXT,          /* a chunk extension, skipped up to the line end */
    D_SIZE_LF,      /* CR seen on the size line: LF must follow */
    D_DATA,         /* payload bytes */
    D_DATA_CR,      /* the line end after the payload */
    D_DATA_LF,      /* CR seen after the payload: LF must follow */
    D_TRAILER,      /* at the start of a trailer line, or of the final blank line */
    D_TRAILER_LINE, /* inside a trailer line */
    D_TRAILER_LF,   /* CR seen in a trailer line: LF must follow */
    D_END_LF,       /* CR of the final blank line seen: LF must follow */
    D_DONE,         /* the body is complete */
    D_FAILED        /* an error was returned: every later call returns SSE_EPROTO */
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A chunk-size line has ended: the data of the chunk follows, or the trailers after the last. */
static void size_done(struct sse__http_dechunk *d)
{
    d->count = 0;
    d->digits = 0;
    d->state = d->remaining ? D_DATA : D_TRAILER;
}

int sse__http_dechunk(struct sse__http_dechunk *d, const char *in, size_t len, size_t *used,
                      const struct sse__http_response_limits *lim, sse__http_data_cb data,
                      void *user_data)
{
    size_t max_line = lim && lim->max_chunk_line ? lim->max_chunk_line : DEF_CHUNK_LINE;
    uint64_t max_chunk = lim && lim->max_chunk ? lim->max_chunk : DEF_CHUNK;
    size_t max_trailer = lim && lim->max_trailer ? lim->max_trailer : DEF_TRAILER;
    size_t i = 0;
    int rc = 0;

    if (d->state == D_DONE || d->state == D_FAILED) {
        *used = 0;
        return d->state == D_DONE ? 1 : SSE_EPROTO;
    }
    while (i < len) {
        if (d->state == D_DATA) {
            size_t n = len - i;
            if (n > d->remaining)
                n = (size_t)d->remaining;
            d->remaining -= n;
            if (!d->remaining)
                d->state = D_DATA_CR;
            i += n;
            if (data && data(user_data, in + i - n, n) != 0) {
                rc = SSE_ECANCELED;
                goto out;
            }
            continue;
        }
        unsigned char c = (unsigned char)in[i];
        if (d->state <= D_SIZE_LF && ++d->count > max_line) {
            rc = SSE_ELIMIT;
            goto out;
        }
        if (d->state >= D_TRAILER_LINE && d->state <= D_TRAILER_LF && ++d->count > max_trailer) {
            rc = SSE_ELIMIT;
            goto out;
        }
        switch (d->state) {
        case D_SIZE:
            if (hexval(c) >= 0) {
                if (d->remaining >> 60) {
                    rc = SSE_ELIMIT; /* the next digit would overflow 64 bits */
                    goto out;
                }
                d->remaining = d->remaining * 16 + (unsigned)hexval(c);
                if (d->remaining > max_chunk) {
                    rc = SSE_ELIMIT;
                    goto out;
                }
                if (d->digits < 255)
                    d->digits++;
                break;
            }
            if (!d->digits) {
                rc = SSE_EPROTO;
                goto out;
            }
            /* The size has ended: the byte is read as one after it. */
            /* fall through */
        case D_SIZE_WS:
            if (c == ' ' || c == '\t')
                d->state = D_SIZE_WS;
            else if (c == ';')
                d->state = D_EXT;
            else if (c == '\r')
                d->state = D_SIZE_LF;
            else if (c == '\n')
                size_done(d);
            else
                rc = SSE_EPROTO;
            break;
        case D_EXT:
            if (c == '\r')
                d->state = D_SIZE_LF;
            else if (c == '\n')
                size_done(d);
            else if ((c < 0x20 && c != '\t') || c == 0x7f)
                rc = SSE_EPROTO;
            break;
        case D_SIZE_LF:
            if (c == '\n')
                size_done(d);
            else
                rc = SSE_EPROTO;
            break;
        case D_DATA_CR:
            if (c == '\r')
                d->state = D_DATA_LF;
            else if (c == '\n')
                d->state = D_SIZE;
            else
                rc = SSE_EPROTO;
            break;
        case D_DATA_LF:
            if (c == '\n')
                d->state = D_SIZE;
            else
                rc = SSE_EPROTO;
            break;
        case D_TRAILER:
            if (c == '\r') {
                d->state = D_END_LF;
            } else if (c == '\n') {
                d->state = D_DONE;
            } else if (c == 0) {
                rc = SSE_EPROTO;
            } else if (++d->count > max_trailer) {
                rc = SSE_ELIMIT;
            } else {
                d->state = D_TRAILER_LINE;
            }
            break;
        case D_TRAILER_LINE:
            if (c == '\r')
                d->state = D_TRAILER_LF;
            else if (c == '\n')
                d->state = D_TRAILER;
            else if (c == 0)
                rc = SSE_EPROTO;
            break;
        case D_TRAILER_LF:
            if (c == '\n')
                d->state = D_TRAILER;
            else
                rc = SSE_EPROTO;
            break;
        case D_END_LF:
            if (c == '\n')
                d->state = D_DONE;
            else
                rc = SSE_EPROTO;
            break;
        default:
            rc = SSE_EPROTO;
            break;
        }
        if (rc)
            goto out;
        i++;
        if (d->state == D_DONE) {
            rc = 1;
            goto out;
        }
    }
out:
    if (rc < 0)
        d->state = D_FAILED;
    *used = i;
    return rc;
}
