/*
 * http_parser.h: the HTTP/1.1 request parser of libsse (internal; no I/O, no allocation).
 *
 * Three pieces, each a small state machine over bytes the caller has received so far:
 *   1. sse__http_scan_head() finds the end of a request head incrementally (resumable at any
 *      split) and enforces the request-line, header-size and header-count limits while the
 *      bytes arrive, so a hostile peer is cut off before anything is buffered past a limit.
 *   2. sse__http_parse_head() parses a complete head into slices that point into the caller's
 *      buffer (no copy, no allocation per header) and checks the semantics that matter for
 *      framing: Content-Length, Transfer-Encoding, Connection, Host.
 *   3. sse__http_chunked_decode() decodes a chunked body in place, resumably.
 * Beside them, the percent-decoder that paths (here) and forms (form.c) share; it reports
 * SSE_EINVAL, as form decoding does, and the path decoder turns that into -400.
 * Errors are reported as the negated HTTP status to answer with (-400, -413, -414, -431, -501,
 * -505). The caller owns every buffer; nothing here keeps a pointer between calls.
 */
#ifndef SSE__HTTP_PARSER_H
#define SSE__HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

/* Limits applied by the parser; zero fields are not allowed (the server fills defaults). */
struct sse__http_limits {
    size_t max_request_line; /* bytes of the request line without CRLF; more -> 414 */
    size_t max_header_bytes; /* bytes of all header lines incl. line ends; more -> 431 */
    unsigned max_headers;    /* header lines; more -> 431 */
    size_t max_body;         /* body bytes (Content-Length or de-chunked); more -> 413 */
};

/* Resumable state of the head scanner; zero-initialise before the first call. */
struct sse__http_scan {
    uint32_t pos;        /* next byte to look at */
    uint32_t line_start; /* where the current line starts */
    uint32_t head_start; /* where the request line starts (leading blank lines skipped) */
    uint32_t hdr_start;  /* where the header lines start */
    uint32_t lines;      /* header lines seen */
    uint8_t in_head;     /* 0 while on the request line, 1 in the header lines */
    uint8_t cr;          /* the previous byte was CR */
};

/*
 * Scan buf[0..len) (bytes before scan->pos were seen by earlier calls and must be unchanged)
 * for the blank line that ends the head. Returns 1 and *head_len (bytes up to and including the
 * blank line, counted from buf) when found; 0 when more bytes are needed; or a negative status:
 * -400 (bare CR, NUL, too many leading blank lines), -414, -431.
 */
int sse__http_scan_head(struct sse__http_scan *scan, const char *buf, size_t len,
                        const struct sse__http_limits *lim, size_t *head_len);

/* A byte range inside the caller's buffer. */
struct sse__http_slice {
    const char *p;
    size_t len;
};

struct sse__http_header {
    struct sse__http_slice name;
    struct sse__http_slice value; /* without surrounding whitespace */
};

/* A parsed request head; every slice points into the buffer given to sse__http_parse_head. */
struct sse__http_head {
    struct sse__http_slice method;
    struct sse__http_slice target; /* as sent (origin form; absolute form reduced to its path) */
    struct sse__http_slice path;   /* target before '?', still percent-encoded */
    struct sse__http_slice query;  /* after '?', or empty */
    int minor;                     /* HTTP/1.<minor>: 0 or 1 */
    int keep_alive;                /* the connection may be reused after the response */
    int chunked;                   /* Transfer-Encoding: chunked */
    int expect_continue;           /* Expect: 100-continue */
    int64_t content_length;        /* -1 when absent */
    struct sse__http_header *headers;
    unsigned nheaders;
};

/*
 * Parse a complete head (head_len as returned by sse__http_scan_head, leading blank lines
 * included). headers is an array of max_headers entries that receives the header slices.
 * Returns 0 and fills *out; or -400 (malformed, missing Host in 1.1, conflicting framing),
 * -431 (more than max_headers), -501 (a transfer coding other than chunked), -505 (not 1.x).
 */
int sse__http_parse_head(const char *buf, size_t head_len, struct sse__http_head *out,
                         struct sse__http_header *headers, unsigned max_headers);

/*
 * Parse one header line "name: value" + CRLF (or LF) starting at *pos, not past end (shared by
 * the request parser and the response reader, http_response.c). Strict: the name is RFC 9110
 * tchars, no whitespace before ':', no control bytes in the value, no obsolete folding.
 * Returns 0, *out (slices into the buffer, the value without surrounding whitespace) and *pos
 * moved past the line end; or -400, with *pos and *out unchanged.
 */
int sse__http_parse_header_line(const char **pos, const char *end, struct sse__http_header *out);

/* Resumable state of the in-place chunked decoder; zero-initialise before the first call. */
struct sse__http_chunked {
    uint64_t remaining; /* bytes left in the current chunk, or the size being read */
    size_t in;          /* next input byte (relative to the body start) */
    size_t out;         /* decoded bytes so far, stored at body[0..out) */
    size_t trailer;     /* trailer bytes seen */
    uint8_t state;
    uint8_t digits;
};

/*
 * Decode the chunked body at body[0..len) in place (decoded bytes are moved to the front; the
 * caller must keep body[0..len) as left by earlier calls and may append). Returns 1 when the
 * last chunk and trailers are complete (decoded body = body[0..c->out), c->in bytes of input
 * consumed); 0 when more bytes are needed; -400 malformed, -413 more than max_body decoded
 * bytes, -431 trailers longer than max_trailer.
 */
int sse__http_chunked_decode(struct sse__http_chunked *c, char *body, size_t len, size_t max_body,
                             size_t max_trailer);

/* Flags of sse__http_pct_decode. */
enum {
    SSE__PCT_PLUS_SPACE = 1, /* '+' decodes to a space (application/x-www-form-urlencoded) */
    SSE__PCT_NO_NUL = 2      /* a NUL byte, raw or as %00, is malformed (paths) */
};

/*
 * The one percent-decoder: decode in[0..len) into out (room for len bytes; the output is never
 * longer than the input), %XX to the byte XX (hex digits of either case). Not NUL-terminated.
 * Returns 0 and *out_len the decoded length, or SSE_EINVAL for a malformed escape ('%' not
 * followed by two hex digits) or a NUL refused by SSE__PCT_NO_NUL; then out holds the bytes
 * decoded before the error and *out_len is not written.
 */
int sse__http_pct_decode(const char *in, size_t len, char *out, size_t *out_len, int flags);

/*
 * Percent-decode a path into out (at least len + 1 bytes), NUL-terminated; *out_len gets the
 * decoded length. Returns 0, or -400 for a malformed escape or an encoded NUL.
 */
int sse__http_decode_path(const char *in, size_t len, char *out, size_t *out_len);

/* Case-insensitive ASCII comparison of a slice with a NUL-terminated string. */
int sse__http_slice_ieq(struct sse__http_slice s, const char *lit);

/* Whether the comma-separated token list in value contains token (case-insensitive). */
int sse__http_has_token(struct sse__http_slice value, const char *token);

/* The reason phrase of a status code ("OK", "Not Found"...), "" when unknown. */
const char *sse__http_reason(int status);

#endif
