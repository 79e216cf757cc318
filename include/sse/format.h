/**
 * format.h: the text/event-stream format — encoder and incremental parser.
 *
 * The parser follows the WHATWG HTML standard, "Server-sent events", sections "Parsing an event
 * stream", "Interpreting an event stream" and "Dispatching": UTF-8 decoding with U+FFFD for
 * invalid sequences, one leading BOM skipped, CR / LF / CRLF line ends (also split across
 * chunks), fields data / event / id / retry, comments, empty-data events not dispatched.
 * Beyond the standard it enforces limits on line and event size, because a server-facing parser
 * meets hostile peers. This layer does no I/O and uses libc only.
 */
#ifndef SSE_FORMAT_H
#define SSE_FORMAT_H

#include <sse/buf.h>
#include <sse/error.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- encoder */

/**
 * One event to encode. Strings are byte ranges (not necessarily NUL-terminated); a NULL pointer
 * means "field not set" and nothing is written for it. An empty id (id != NULL, id_len == 0)
 * writes "id:" which resets the receiver's last event id. retry < 0 means unset.
 */
typedef struct sse_event {
    const char *type; /* event: field (NULL = unset, receiver uses "message") */
    size_t type_len;
    const char *data; /* split on CR, LF and CRLF into one data: line each (NULL = no data) */
    size_t data_len;
    const char *id; /* id: field (NULL = unset) */
    size_t id_len;
    long long retry;     /* retry: field in milliseconds (< 0 = unset) */
    const char *comment; /* written first as ':' lines, one per line of the text (NULL = none) */
    size_t comment_len;
} sse_event;

#define SSE_EVENT_INIT                                                                             \
    {                                                                                              \
        NULL, 0, NULL, 0, NULL, 0, -1, NULL, 0                                                     \
    }

/**
 * Append the wire form of ev to out, ending with the blank line that dispatches it.
 * Returns 0; SSE_EINVAL if type or id contains CR, LF or NUL (nothing is written);
 * SSE_ELIMIT / SSE_ENOMEM from the buffer (nothing is written: out is rolled back).
 * An event with data == NULL is written with a single empty "data" line so that it still
 * dispatches; use sse_encode_comment() for keep-alives.
 */
SSE_API int sse_encode_event(sse_buf *out, const sse_event *ev);
/** Append a comment: one ":"-prefixed line per line of text (CR, LF, CRLF split). */
SSE_API int sse_encode_comment(sse_buf *out, const char *text, size_t len);
/** Append a lone "retry: <ms>\n\n". */
SSE_API int sse_encode_retry(sse_buf *out, unsigned long long ms);

/* ---------------------------------------------------------------- parser */

/** An event as dispatched. All strings are valid UTF-8, NUL-terminated, borrowed for the call. */
typedef struct sse_parsed_event {
    const char *type; /* "message" when the stream set no type */
    size_t type_len;
    const char *data; /* the data buffer without its final LF; may contain NUL bytes */
    size_t data_len;
    const char *id; /* the last event id at dispatch ("" when none) */
    size_t id_len;
} sse_parsed_event;

/**
 * Callbacks. Each returns 0 to go on; any other value stops sse_parser_feed() at once, which
 * then returns SSE_ECANCELED (the rest of that chunk is dropped). Any callback may be NULL.
 */
typedef struct sse_parser_callbacks {
    int (*on_event)(void *user_data, const sse_parsed_event *ev);
    int (*on_retry)(void *user_data, uint64_t ms); /* a retry field made only of ASCII digits */
    int (*on_comment)(void *user_data, const char *text, size_t len); /* without the ':' */
} sse_parser_callbacks;

/** Parser options; zero fields take the defaults. */
typedef struct sse_parser_options {
    int version;      /* SSE_PARSER_OPTIONS_VERSION */
    size_t max_line;  /* longest line in bytes (default 1 MiB) */
    size_t max_event; /* largest data + type + id of one event in bytes (default 16 MiB) */
} sse_parser_options;

#define SSE_PARSER_OPTIONS_VERSION 1
#define SSE_PARSER_OPTIONS_INIT                                                                    \
    {                                                                                              \
        SSE_PARSER_OPTIONS_VERSION, 0, 0                                                           \
    }

typedef struct sse_parser sse_parser;

/**
 * Create a parser. opts may be NULL (defaults). cb is copied. user_data is passed to callbacks.
 * Returns 0 and *out (caller frees with sse_parser_free), SSE_EINVAL or SSE_ENOMEM.
 */
SSE_API int sse_parser_new(sse_parser **out, const sse_parser_options *opts,
                           const sse_parser_callbacks *cb, void *user_data);
/**
 * Feed the next bytes of the stream (any split, down to one byte). Returns 0; SSE_ELIMIT when a
 * line or event exceeds the limits (the parser is then unusable until sse_parser_reset());
 * SSE_ENOMEM; SSE_ECANCELED when a callback returned non-zero.
 */
SSE_API int sse_parser_feed(sse_parser *p, const void *bytes, size_t len);
/**
 * End of stream: a pending incomplete event is discarded (per the standard), as is an
 * unterminated last line. The parser is ready for a new stream (as after sse_parser_reset()).
 */
SSE_API void sse_parser_end(sse_parser *p);
/**
 * Start a new stream (e.g. after a reconnect): drops buffered bytes and the pending event and
 * expects a BOM again. The last event id is kept, as EventSource keeps it across reconnects.
 */
SSE_API void sse_parser_reset(sse_parser *p);
/** The last event id (borrowed, NUL-terminated, "" when none). */
SSE_API const char *sse_parser_last_event_id(const sse_parser *p, size_t *len);
/** Set the last event id (e.g. an initial Last-Event-ID). Returns 0, SSE_EINVAL or SSE_ENOMEM. */
SSE_API int sse_parser_set_last_event_id(sse_parser *p, const char *id, size_t len);
/** Free a parser. Accepts NULL. */
SSE_API void sse_parser_free(sse_parser *p);

/* ---------------------------------------------------------------- UTF-8 */

/**
 * Length of the longest prefix of s[0..n) made of complete, valid UTF-8 sequences (RFC 3629: no
 * overlongs, surrogates or code points above U+10FFFF); n when all of it is valid. ASCII is
 * skipped sixteen bytes at a time. The one validator of the project (format, hub, CLI): call it
 * on a whole string, not per sequence, to get the fast path.
 */
SSE_API size_t sse_utf8_valid_prefix(const char *s, size_t n);

/* ---------------------------------------------------------------- JSON strings */

/** Room sse_json_escape needs for n input bytes: 6 per byte (a control as \u00XX), 8 spare. */
#define SSE_JSON_ESCAPE_ROOM(n) (6 * (size_t)(n) + 8)

/**
 * Write s[0..n) escaped for the inside of a JSON string (no quotes added) to out, which has room
 * for SSE_JSON_ESCAPE_ROOM(n) bytes (the bytes past the result may be written too). '"' and '\\'
 * get a backslash, U+0000..U+001F and U+007F become \u00XX (lowercase hex), every other byte is
 * copied, bytes >= 0x80 included: for output that must be valid UTF-8, hand it only what
 * sse_utf8_valid_prefix accepts (a cut inside a sequence is harmless: the pieces are copied).
 * s may hold NUL bytes. Returns the number of bytes written. The project's one JSON escaper.
 */
SSE_API size_t sse_json_escape(char *out, const char *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif
