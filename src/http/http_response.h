/*
 * http_response.h: the client side of HTTP/1.1 in libsse (internal; no I/O, no allocation):
 * splitting an http:// URL, reading a response head, and decoding a chunked response body as it
 * streams in. Used by the load generator (src/loadgen); the request side is http_parser.h.
 *
 *   1. sse__http_split_url() splits "http://host[:port][/path][?query]" into slices.
 *   2. sse__http_response_scan() finds the end of a response head, resumable at any split,
 *      with the status-line, header-size and header-count limits checked as bytes arrive (it
 *      runs the request scanner's state machine, sse__http_scan_head).
 *   3. sse__http_response_parse() parses a complete head: status, version, headers (slices into
 *      the caller's buffer) and the body framing (none, Content-Length, chunked, until close).
 *   4. sse__http_dechunk() decodes a chunked body incrementally without buffering: the payload
 *      is handed to a callback as it arrives, so a body that never ends (an event stream) needs
 *      16 bytes of state. Chunk extensions are skipped, trailers are read and dropped.
 * Errors are libsse codes: SSE_EPROTO for input that breaks the grammar, SSE_ELIMIT for a limit
 * passed, SSE_EUNSUPPORTED for a transfer coding other than chunked, SSE_ECANCELED when a
 * callback asked to stop. Nothing here keeps a pointer into the caller's bytes between calls.
 */
#ifndef SSE__HTTP_RESPONSE_H
#define SSE__HTTP_RESPONSE_H

#include "http/http_parser.h"

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------- URL */

/* An http:// URL split into slices of the caller's string. */
struct sse__http_url {
    struct sse__http_slice host;  /* as written; an IPv6 literal without its brackets */
    int port;                     /* 1..65535; 80 when the URL has none */
    struct sse__http_slice path;  /* "/..." before '?', still percent-encoded; "/" when absent */
    struct sse__http_slice query; /* after '?' (without it), before any '#'; empty when none */
};

/*
 * Split url[0..len) = "http://" authority [path] ["?" query] ["#" fragment] (scheme
 * case-insensitive; authority = host [":" port], host = reg-name, IPv4 or "[" IPv6 "]"; no
 * userinfo). Control bytes and spaces are refused anywhere. Returns 0 and *out (slices into url,
 * or into static storage for the default path), or SSE_EINVAL (nothing written): another
 * scheme, an empty or malformed host, a port that is empty, not digits or outside 1..65535,
 * a path that does not start with '/'.
 */
int sse__http_split_url(const char *url, size_t len, struct sse__http_url *out);

/* --------------------------------------------------------------------------- response head */

/* Limits of the response reader; a zero field takes the default shown. */
struct sse__http_response_limits {
    size_t max_status_line;  /* bytes of the status line without its line end (1024) */
    size_t max_header_bytes; /* bytes of all header lines with their line ends (65536) */
    unsigned max_headers;    /* header lines (100) */
    size_t max_chunk_line;   /* bytes of one chunk-size line with its extensions (4096) */
    uint64_t max_chunk;      /* bytes of one chunk (2^40) */
    size_t max_trailer;      /* bytes of all trailer lines of a chunked body (65536) */
};

/* How the body of a response is delimited (RFC 9112 section 6.3). */
enum sse__http_body {
    SSE__HTTP_BODY_NONE = 0,    /* 1xx, 204, 304: no body (HEAD is the caller's business) */
    SSE__HTTP_BODY_LENGTH,      /* Content-Length bytes */
    SSE__HTTP_BODY_CHUNKED,     /* Transfer-Encoding: chunked, see sse__http_dechunk() */
    SSE__HTTP_BODY_UNTIL_CLOSE, /* everything until the server closes the connection */
};

/* A parsed response head; every slice points into the buffer given to the parser. */
struct sse__http_response {
    int status;                       /* 100..999 */
    int minor;                        /* HTTP/1.<minor>: 0 or 1 */
    struct sse__http_slice reason;    /* may be empty */
    int body;                         /* enum sse__http_body */
    int64_t content_length;           /* with SSE__HTTP_BODY_LENGTH; -1 otherwise */
    int keep_alive;                   /* the connection may carry another request afterwards */
    struct sse__http_header *headers; /* the caller's array, nheaders filled */
    unsigned nheaders;
};

/*
 * Scan buf[0..len) for the blank line that ends a response head. scan is zero-initialised
 * before the first call; bytes before scan->pos were seen by earlier calls and must be
 * unchanged (the caller appends). lim may be NULL (defaults). Returns 1 and *head_len (bytes up
 * to and including the blank line) when found; 0 when more bytes are needed; SSE_EPROTO (bare
 * CR, NUL, too many blank lines before the status line) or SSE_ELIMIT (status line, header
 * bytes or header count past the limits) otherwise.
 */
int sse__http_response_scan(struct sse__http_scan *scan, const char *buf, size_t len,
                            const struct sse__http_response_limits *lim, size_t *head_len);

/*
 * Parse a complete head buf[0..head_len) (as found by sse__http_response_scan) into *out.
 * headers has room for max_headers entries and receives the header slices. Returns 0 and *out,
 * or (with *out unchanged) SSE_EPROTO: no "HTTP/1.x NNN" status line, a malformed header line,
 * a bad or conflicting Content-Length, both Content-Length and Transfer-Encoding; SSE_ELIMIT:
 * more than max_headers header lines; SSE_EUNSUPPORTED: a transfer coding other than chunked.
 */
int sse__http_response_parse(const char *buf, size_t head_len, struct sse__http_response *out,
                             struct sse__http_header *headers, unsigned max_headers);

/* ----------------------------------------------------------------------------- chunked body */

/* Resumable state of the streaming chunked decoder; zero-initialise for each body. */
struct sse__http_dechunk {
    uint64_t remaining; /* bytes left in the current chunk, or the size being read */
    uint32_t count;     /* bytes of the current chunk-size line, or of the trailers so far */
    uint8_t state;      /* where in the chunk grammar the next byte falls */
    uint8_t digits;     /* hex digits of the size read so far */
};

/*
 * Receives decoded payload bytes (borrowed for the call). Returns 0 to go on; anything else
 * stops sse__http_dechunk, which then returns SSE_ECANCELED.
 */
typedef int (*sse__http_data_cb)(void *user_data, const char *bytes, size_t len);

/*
 * Decode the next len bytes of a chunked body. The payload goes to data(user_data, ...) (data
 * may be NULL to drop it), in order, in as many calls as the chunks and reads demand. Any split
 * of the input works, down to one byte; CRLF or a bare LF ends a line. lim may be NULL
 * (defaults). Returns:
 *   0  all len bytes consumed, the body goes on (*used = len);
 *   1  the last chunk and the trailers are complete; *used says how many bytes belong to the
 *      body (what follows is the next response); further calls return 1 and consume nothing;
 *   SSE_EPROTO     malformed (not a hex size, bare CR, no CRLF after the data, NUL bytes);
 *   SSE_ELIMIT     a chunk size over max_chunk (or 64 bits), a chunk-size line over
 *                  max_chunk_line, trailers over max_trailer;
 *   SSE_ECANCELED  the callback returned non-zero.
 * After an error *used is the number of bytes consumed before it, and every later call returns
 * SSE_EPROTO and consumes nothing until the state is zeroed again.
 */
int sse__http_dechunk(struct sse__http_dechunk *d, const char *in, size_t len, size_t *used,
                      const struct sse__http_response_limits *lim, sse__http_data_cb data,
                      void *user_data);

#endif
