/**
 * client.h: an EventSource client (WHATWG "Server-sent events") over libcurl's multi interface.
 *
 * A client opens one URL and keeps an event stream going: it sends `Accept: text/event-stream`
 * and `Cache-Control: no-cache`, opens only on a 200 answer whose MIME type is text/event-stream,
 * closes for good on 204, fails (closes, reports an error) on any other status or MIME type, and
 * reconnects after the reconnection time (changed by `retry:`) when the network fails or the
 * response ends, sending `Last-Event-ID` when one is known. Redirects are followed (bounded).
 * Beyond the browser: custom request headers, an initial Last-Event-ID, exponential backoff with
 * jitter on repeated failures and a cap on them, a read timeout that treats a silent stream as
 * dead, a maximum event size, and a human-readable message for every failure.
 *
 * Many clients share one thread: a sse_client_group owns one curl multi handle driven by a libuv
 * loop (curl's socket and timer callbacks become uv_poll / uv_timer handles). For simple programs,
 * a client created without a group owns a private loop and sse_client_run() blocks on it.
 *
 * State machine (readyState): CONNECTING -> OPEN -> (response ends / network error / read
 * timeout) -> CONNECTING (waiting the reconnection delay, then a new request) ...; a fatal answer,
 * the failure cap or sse_client_close() -> CLOSED, which is final.
 *
 * Threads: a group and its clients belong to the loop's thread. Strings passed in are copied;
 * pointers handed to callbacks are borrowed for the duration of the call.
 */
#ifndef SSE_CLIENT_H
#define SSE_CLIENT_H

#include <sse/error.h>
#include <sse/format.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sse_client sse_client;
typedef struct sse_client_group sse_client_group;

/** readyState values, as in the browser. */
enum { SSE_CLIENT_CONNECTING = 0, SSE_CLIENT_OPEN = 1, SSE_CLIENT_CLOSED = 2 };

/** Client options; zero fields take the defaults shown. */
typedef struct sse_client_options {
    int version;                 /* SSE_CLIENT_OPTIONS_VERSION */
    const char *const *headers;  /* NULL-terminated "Name: value" strings sent with every request
                                    (copied; CR/LF refused with SSE_EINVAL); NULL = none */
    const char *last_event_id;   /* initial Last-Event-ID (copied); NULL = none */
    unsigned reconnect_ms;       /* initial reconnection time: 3000 ms; `retry:` changes it */
    unsigned backoff_max_ms;     /* cap of the backoff delay on repeated failures: 30000 ms
                                    (never below the reconnection time) */
    unsigned max_failures;       /* give up (CLOSED) after this many consecutive attempts that
                                    did not open: 0 = never */
    unsigned read_timeout_ms;    /* no byte at all (not even a comment) for this long ->
                                    the connection is dead, reconnect: 0 = off */
    unsigned connect_timeout_ms; /* connect + TLS + answer headers: 0 = curl's default */
    unsigned max_redirects;      /* redirects followed per request: 10 */
    size_t max_event;            /* largest event (parser max_event): 0 = parser default */
    size_t max_line;             /* longest line (parser max_line): 0 = parser default */
    long buffer_size;            /* curl receive buffer per stream: 0 = 1024 bytes (curl's minimum;
                                    larger reads faster, costs memory per stream) */
    int no_jitter;               /* 1: backoff delays without random jitter (tests) */
    const char *ca_file;         /* https: PEM file of the CAs to trust instead of the system's
                                    (copied by curl); NULL = the system's */
    int insecure;                /* https: 1 = do not verify the certificate nor the host name
                                    (testing only) */
} sse_client_options;

#define SSE_CLIENT_OPTIONS_VERSION 1
#define SSE_CLIENT_OPTIONS_INIT                                                                    \
    {                                                                                              \
        SSE_CLIENT_OPTIONS_VERSION, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0              \
    }

/**
 * Callbacks; any may be NULL. Every callback may call sse_client_close() on its client (or any
 * client of the group); sse_client_free() may be called from callbacks too (the memory is
 * released once control returns to the loop).
 */
typedef struct sse_client_callbacks {
    /** The connection opened (readyState is now OPEN). */
    void (*on_open)(sse_client *c, void *user_data);
    /**
     * Every dispatched event, whatever its type (the browser's onmessage sees only the type
     * "message": use sse_client_add_listener(c, "message", ...) for exactly that). ev->id is the
     * lastEventId. Called before the listeners of ev->type.
     */
    void (*on_message)(sse_client *c, const sse_parsed_event *ev, void *user_data);
    /** A `retry:` field was accepted: the reconnection time is now ms. */
    void (*on_retry)(sse_client *c, uint64_t ms, void *user_data);
    /**
     * A connection failed or ended. readyState tells what follows: CONNECTING = a new attempt
     * after the delay (sse_client_next_delay_ms), CLOSED = given up for good. code is an SSE_E*
     * value: SSE_ECLOSED (the server ended the stream, or answered 204 when CLOSED), SSE_EIO
     * (network error), SSE_ETIMEDOUT (read or connect timeout), SSE_EPROTO (status or MIME
     * type not acceptable), SSE_ELIMIT (an event or line too large). message is a human-readable
     * sentence (borrowed).
     */
    void (*on_error)(sse_client *c, int code, const char *message, void *user_data);
} sse_client_callbacks;

/** An addEventListener listener: events of one type. */
typedef void (*sse_client_listener_cb)(sse_client *c, const sse_parsed_event *ev, void *user_data);

/**
 * Create a group: one curl multi handle on loop (borrowed; it must outlive the group). Returns 0
 * and *out (free with sse_client_group_free), SSE_ENOMEM, or SSE_EIO if curl fails to start.
 */
SSE_API int sse_client_group_new(sse_client_group **out, uv_loop_t *loop);
/**
 * Free a group and every client still in it (without callbacks). Not from a callback of the
 * group. Handles close asynchronously: run the loop afterwards so their memory is released.
 */
SSE_API void sse_client_group_free(sse_client_group *g);
/** Number of clients in the group (freed ones excluded). */
SSE_API size_t sse_client_group_count(const sse_client_group *g);

/**
 * Create a client for url (http:// or https://, copied) and start connecting: the first request
 * goes out when the loop runs. group NULL gives the client a private loop for sse_client_run().
 * opts and cb may be NULL (defaults, no callbacks); both are copied. Returns 0 and *out (free
 * with sse_client_free), SSE_EINVAL (bad URL or header, opts->version not
 * SSE_CLIENT_OPTIONS_VERSION) or SSE_ENOMEM; on failure nothing is left behind.
 */
SSE_API int sse_client_new(sse_client **out, sse_client_group *group, const char *url,
                           const sse_client_options *opts, const sse_client_callbacks *cb,
                           void *user_data);
/**
 * addEventListener: call cb for every event whose type equals type (copied). Several listeners
 * may share a type; they run in the order added. Returns 0, SSE_EINVAL or SSE_ENOMEM.
 */
SSE_API int sse_client_add_listener(sse_client *c, const char *type, sse_client_listener_cb cb,
                                    void *user_data);
/**
 * removeEventListener: remove the first listener added with exactly (type, cb, user_data).
 * Safe from callbacks (a removed listener is not called again). Returns 0, SSE_ENOTFOUND or
 * SSE_EINVAL.
 */
SSE_API int sse_client_remove_listener(sse_client *c, const char *type, sse_client_listener_cb cb,
                                       void *user_data);
/**
 * Block on a private client's loop until the client is CLOSED (returns 0) or timeout_ms ran out
 * (returns SSE_ETIMEDOUT; 0 = no limit; the client stays as it was). SSE_EINVAL for a client of
 * a group. Callbacks run from inside this call.
 */
SSE_API int sse_client_run(sse_client *c, unsigned timeout_ms);
/**
 * Close for good: readyState becomes CLOSED, no request is made again and no callback follows.
 * Safe from callbacks and on a closed client.
 */
SSE_API void sse_client_close(sse_client *c);
/** Close (if needed) and free. Accepts NULL. */
SSE_API void sse_client_free(sse_client *c);

/** SSE_CLIENT_CONNECTING, SSE_CLIENT_OPEN or SSE_CLIENT_CLOSED. */
SSE_API int sse_client_ready_state(const sse_client *c);
/** The reconnection time in force, in ms (the initial one, or the last accepted `retry:`). */
SSE_API uint64_t sse_client_retry_ms(const sse_client *c);
/** While waiting to reconnect: the delay chosen for this wait (backoff included), in ms. */
SSE_API uint64_t sse_client_next_delay_ms(const sse_client *c);
/** The last event id (borrowed, "" when none); sent as Last-Event-ID on reconnects. */
SSE_API const char *sse_client_last_event_id(const sse_client *c);
/** The URL given to sse_client_new (borrowed). */
SSE_API const char *sse_client_url(const sse_client *c);
/** Requests made so far (the first connection and every reconnect). */
SSE_API unsigned sse_client_connections(const sse_client *c);

#ifdef __cplusplus
}
#endif
#endif
