/**
 * server.h: an embeddable HTTP/1.1 + Server-Sent Events server on one libuv loop.
 *
 * A server belongs to the loop it is created on and is only touched from that loop's thread.
 * It serves three kinds of routes: plain request handlers (JSON, forms), event streams, and
 * static files from a directory. Streams get heartbeats, a bounded output queue (a subscriber
 * that cannot keep up is disconnected), and batched writes: everything queued for a stream in
 * one loop turn goes out in one writev.
 *
 * Ownership: strings passed in are copied unless said otherwise; pointers handed to callbacks are
 * borrowed for the duration of the call.
 *
 * Callbacks (on_close, on_abort, on_drain) run from the loop, never from inside a call of this
 * API: a stream that passes its queue bound during sse_stream_send_frame is closed at the end of
 * the loop turn. The embedding program must ignore SIGPIPE (libuv writes with write(2)).
 */
#ifndef SSE_SERVER_H
#define SSE_SERVER_H

#include <sse/buf.h>
#include <sse/error.h>
#include <sse/form.h>
#include <sse/format.h>
#include <sse/log.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sse_server sse_server;
typedef struct sse_request sse_request;
typedef struct sse_stream sse_stream;

/* Log levels for the log callback: SSE_LOG_ERROR..SSE_LOG_DEBUG in <sse/log.h> (included above). */

/** Server options; zero fields take the defaults shown. */
typedef struct sse_server_options {
    int version;                   /* SSE_SERVER_OPTIONS_VERSION */
    size_t max_request_line;       /* 8 KiB; longer -> 414 */
    size_t max_header_bytes;       /* 16 KiB for all headers; more -> 431 */
    unsigned max_headers;          /* 100 header lines; more -> 431 */
    size_t max_body;               /* 1 MiB request body; more -> 413 */
    unsigned request_timeout_ms;   /* 10 s to receive a complete request -> 408 */
    unsigned keepalive_timeout_ms; /* 60 s idle between keep-alive requests, then close */
    unsigned max_connections;      /* 0 = unlimited; past it new connections get 503 */
    unsigned heartbeat_ms;         /* 15 s; a ':' comment on idle streams; UINT32_MAX = off */
    unsigned write_timeout_ms;     /* 30 s; a stream whose queued bytes make no progress
                                      for this long is closed */
    size_t stream_queue_max;       /* 4 MiB queued per stream; more -> the stream is closed */
    const char *cors_origins;      /* NULL = no CORS headers; "*" or a space/comma-separated list */
    int cors_credentials;          /* send Access-Control-Allow-Credentials: true */
    int access_log;                /* log one line per request / closed stream at SSE_LOG_INFO */
    void (*log)(void *log_data, int level, const char *line); /* NULL = stderr */
    void *log_data;
    int reuse_port;      /* set SO_REUSEPORT so several loops/processes share a port;
                            off by default, so a second server on a busy port fails
                            to bind instead of silently taking half the connections */
    size_t max_buffered; /* 64 MiB: bytes of unfinished requests held for all connections
                            together (what unauthenticated clients can make the server hold);
                            a request that needs more gets 503 and the connection closes */
    /* HTTP/2 (docs/SERVER.md, "HTTP/2"): streams share the limits above (max_header_bytes is
       also SETTINGS_MAX_HEADER_LIST_SIZE, max_body and stream_queue_max count per stream) */
    int h2;                          /* offer HTTP/2 ("h2") by ALPN on TLS listeners */
    int h2c;                         /* plain listeners also take HTTP/2 by prior knowledge: a
                                        connection whose first bytes are the preface (h2c) */
    unsigned h2_max_streams;         /* 100: SETTINGS_MAX_CONCURRENT_STREAMS per connection */
    unsigned h2_header_table_size;   /* 4096: HPACK dynamic table bytes, each direction */
    unsigned h2_reset_burst;         /* 200 RST_STREAMs from the peer at once, then */
    unsigned h2_reset_rate;          /* 33 per second (rapid reset); past them: GOAWAY, close */
    unsigned h2_control_max;         /* 1000 control frames per second (PING, SETTINGS, PRIORITY,
                                        WINDOW_UPDATE, empty DATA/HEADERS); past it: GOAWAY, close */
    const char *cors_expose_headers; /* NULL = none; else the Access-Control-Expose-Headers
                                        value sent with every CORS answer (not preflights), so a
                                        cross-origin fetch() may read those response headers */
} sse_server_options;

#define SSE_SERVER_OPTIONS_VERSION 1
#define SSE_SERVER_OPTIONS_INIT                                                                    \
    {                                                                                              \
        SSE_SERVER_OPTIONS_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, 0, 0, 0, \
            0, 0, 0, 0, 0, 0, NULL                                                                 \
    }

/**
 * Create a server on loop. opts may be NULL. Returns 0 and *out (free with sse_server_free,
 * after sse_server_close has completed), SSE_EINVAL or SSE_ENOMEM.
 */
SSE_API int sse_server_new(sse_server **out, uv_loop_t *loop, const sse_server_options *opts);
/**
 * Listen on host:port (IPv4 literal, IPv6 literal with or without brackets, or "localhost").
 * port 0 picks an ephemeral port (see sse_server_port). May be called several times.
 * Returns 0 or a negative libuv / SSE error.
 */
SSE_API int sse_server_listen(sse_server *s, const char *host, int port);
/**
 * Split a listen address "HOST:PORT", "[IPv6]:PORT" or "IPv6-literal:PORT" (the last colon
 * separates the port) into host (copied into host[0..host_size), NUL-terminated) and port
 * (0..65535, digits only). An empty host (":8080") means all interfaces, "0.0.0.0".
 * Returns 0, or SSE_EINVAL (nothing written) for a malformed address or a host too long.
 */
SSE_API int sse_split_host_port(const char *addr, char *host, size_t host_size, int *port);
/** The port of the first listening socket, or -1. */
SSE_API int sse_server_port(const sse_server *s);

/** TLS listener options (sse_server_listen_tls); zero fields take the defaults shown. */
typedef struct sse_tls_options {
    const char *cert_file;         /* PEM: the certificate, then its chain (required) */
    const char *key_file;          /* PEM: its private key (required) */
    unsigned handshake_timeout_ms; /* 10 s from accept to a finished handshake, then close */
    int keep_buffers;              /* 1: keep OpenSSL's record buffers on idle connections
                                      (~34 KiB each); 0: release them (SSL_MODE_RELEASE_BUFFERS) */
    /* 32: connections past the server's max_connections that still get a handshake, to be
       answered 503 as over TCP, at once; past it they are closed at accept (docs/SERVER.md) */
    unsigned max_overlimit_handshakes;
} sse_tls_options;

/**
 * Listen for HTTPS on host:port (as sse_server_listen): TLS 1.2 and 1.3, ALPN "http/1.1".
 * The certificate, key and options of the first call serve every TLS listener of the server
 * (later calls only add listeners). Returns 0, SSE_EINVAL when the certificate or key cannot
 * be used (logged with OpenSSL's reason), or as sse_server_listen.
 */
SSE_API int sse_server_listen_tls(sse_server *s, const char *host, int port,
                                  const sse_tls_options *o);
/**
 * Replace the certificate and key of the TLS listeners: new handshakes use the new ones,
 * connections already open keep theirs. A certificate or key that cannot be used is refused
 * (SSE_EINVAL, logged) and the old one stays. SSE_EINVAL too when there is no TLS listener.
 */
SSE_API int sse_server_tls_reload(sse_server *s, const char *cert_file, const char *key_file);
/**
 * Change, while running, the settings that may change live (a reload, e.g. on SIGHUP): only
 * opts->cors_origins, cors_credentials, max_connections and heartbeat_ms are read, with the
 * meaning they have in sse_server_new (0 = its default); the other fields are ignored.
 * Connections already open stay open: a lower max_connections refuses new ones only (503), a
 * new heartbeat applies to every stream from its next idle period, and the CORS origins to
 * every request from the next one on. Call it from the loop's thread. Returns 0, SSE_EINVAL
 * (opts NULL or of another version, or a closing server) or SSE_ENOMEM (nothing changed).
 */
SSE_API int sse_server_set_live(sse_server *s, const sse_server_options *opts);
/** The port of the first TLS listening socket, or -1. */
SSE_API int sse_server_tls_port(const sse_server *s);
/**
 * Load cert_file and key_file as sse_server_listen_tls would, and drop them: nothing listens,
 * nothing of s changes. Returns 0, or SSE_EINVAL (logged through s, with OpenSSL's reason).
 * For a program that checks its files before starting processes that will load them.
 */
SSE_API int sse_server_tls_check(sse_server *s, const char *cert_file, const char *key_file);

/**
 * Handler of a plain request. It either answers before returning (sse_request_respond or
 * sse_request_open_stream) and returns 0, or returns SSE_DEFERRED and answers later from the
 * same loop; the request stays valid until answered (or until its connection closes, which is
 * reported to an on_abort callback set with sse_request_on_abort).
 */
typedef int (*sse_request_cb)(sse_request *req, void *user_data);
#define SSE_DEFERRED 1

/**
 * Route method + path to cb. method NULL matches any method (the handler answers 405 itself);
 * path is exact, or a prefix when it ends in '*'. The first matching route wins, in the order
 * added. Unmatched requests get 404; a path that matches with another method gets 405.
 */
SSE_API int sse_server_route(sse_server *s, const char *method, const char *path, sse_request_cb cb,
                             void *user_data);

/** Handler of a stream route: the stream is already open (headers sent). */
typedef void (*sse_stream_cb)(sse_stream *st, const sse_request *req, void *user_data);
/** Convenience: a GET route that opens a stream at once and calls cb with it. */
SSE_API int sse_server_route_stream(sse_server *s, const char *path, sse_stream_cb cb,
                                    void *user_data);

/**
 * Serve files under dir for GET/HEAD requests whose path starts with url_prefix (e.g. "/").
 * "/" maps to index.html; MIME types from the extension; no path traversal (.., encoded or
 * not, and symlinks out of dir are refused with 404).
 */
SSE_API int sse_server_static(sse_server *s, const char *url_prefix, const char *dir);

/**
 * Begin a graceful shutdown: stop accepting, flush each stream's queue and close it, answer no
 * more requests. done (may be NULL) is called once every connection has closed or timeout_ms
 * passed (then the rest are closed hard). After done, sse_server_free may be called.
 */
SSE_API void sse_server_close(sse_server *s, unsigned timeout_ms,
                              void (*done)(sse_server *s, void *user_data), void *user_data);
/** Free a server whose close has completed. Accepts NULL. */
SSE_API void sse_server_free(sse_server *s);

/** Counters, for /metrics. */
typedef struct sse_server_stats {
    uint64_t connections; /* open TCP connections */
    uint64_t streams;     /* open event streams */
    uint64_t accepted_total;
    uint64_t requests_total;
    uint64_t bytes_written_total;
    uint64_t frames_written_total;
    uint64_t closed_slow_total;    /* streams closed for passing stream_queue_max */
    uint64_t closed_timeout_total; /* streams closed by write_timeout_ms */
    uint64_t rejected_total;       /* requests answered 4xx/5xx by the server itself */
    uint64_t writes_total;         /* write system calls (uv_try_write + uv_write): with
                                      frames_written_total, shows how well writes batch */
} sse_server_stats;
SSE_API void sse_server_get_stats(const sse_server *s, sse_server_stats *out);

/* ---------------------------------------------------------------- requests */
/* Every string returned below is NUL-terminated and borrowed from the request. */

SSE_API const char *sse_request_method(const sse_request *r);
/** The path, percent-decoded, without the query string. */
SSE_API const char *sse_request_path(const sse_request *r);
/** The raw query string after '?', or "" (decode with sse_form_next). */
SSE_API const char *sse_request_query(const sse_request *r);
/** The first header of that name (case-insensitive), or NULL. */
SSE_API const char *sse_request_header(const sse_request *r, const char *name);
/** Header number i (0-based) in arrival order; returns 0, or SSE_ENOTFOUND past the end. */
SSE_API int sse_request_header_at(const sse_request *r, size_t i, const char **name,
                                  const char **value);
/** The body (Content-Length or de-chunked), possibly empty; *len gets its length. */
SSE_API const char *sse_request_body(const sse_request *r, size_t *len);
/** The peer address as text ("127.0.0.1", "::1"). */
SSE_API const char *sse_request_remote_addr(const sse_request *r);
/** The server the request came to. */
SSE_API sse_server *sse_request_server(const sse_request *r);

/**
 * Add a response header for the answer (name and value are copied; CR/LF refused with
 * SSE_EINVAL). Call before sse_request_respond / sse_request_open_stream.
 */
SSE_API int sse_request_add_header(sse_request *r, const char *name, const char *value);
/**
 * Answer with status, a Content-Type (NULL = none) and body (copied). Ends the request; for a
 * deferred request this is the call that releases it.
 */
SSE_API int sse_request_respond(sse_request *r, int status, const char *content_type,
                                const void *body, size_t len);
/** Called if the connection of a deferred request closes before it is answered. */
SSE_API void sse_request_on_abort(sse_request *r, void (*cb)(sse_request *r, void *user_data),
                                  void *user_data);

/**
 * Turn the request into an event stream: 200 with text/event-stream, no-cache,
 * X-Accel-Buffering: no, CORS headers, plus any added headers, flushed at once (so the
 * browser's onopen fires). Returns 0 and *out (valid until its on_close callback returns).
 */
SSE_API int sse_request_open_stream(sse_request *r, sse_stream **out);

/* ---------------------------------------------------------------- streams */

/** Why a stream closed. */
enum {
    SSE_CLOSE_LOCAL = 0,   /* sse_stream_close() or server shutdown */
    SSE_CLOSE_PEER = 1,    /* the client went away */
    SSE_CLOSE_SLOW = 2,    /* stream_queue_max passed */
    SSE_CLOSE_TIMEOUT = 3, /* write_timeout_ms passed without progress */
    SSE_CLOSE_ERROR = 4    /* a write error */
};
SSE_API const char *sse_close_reason_name(int reason);

/** Queue one event (encoded into a frame private to this stream). */
SSE_API int sse_stream_send(sse_stream *st, const sse_event *ev);
/**
 * Queue an already encoded frame (the fan-out path). Borrowed: the stream takes its own
 * reference and drops it once the bytes are written. No copy is made.
 */
SSE_API int sse_stream_send_frame(sse_stream *st, sse_frame *frame);
/** Queue a comment line (": text"). */
SSE_API int sse_stream_comment(sse_stream *st, const char *text);
/** Queue a "retry: ms" hint. */
SSE_API int sse_stream_retry(sse_stream *st, unsigned ms);
/** Flush what is queued, then close (the on_close callback reports SSE_CLOSE_LOCAL). */
SSE_API void sse_stream_close(sse_stream *st);
/** Bytes queued and not yet written. */
SSE_API size_t sse_stream_queued_bytes(const sse_stream *st);
/** Set the callback run once when the stream closes, for any reason. */
SSE_API void sse_stream_on_close(sse_stream *st,
                                 void (*cb)(sse_stream *st, int reason, void *user_data),
                                 void *user_data);
SSE_API void sse_stream_set_data(sse_stream *st, void *data);
SSE_API void *sse_stream_get_data(const sse_stream *st);
SSE_API sse_server *sse_stream_server(const sse_stream *st);

/**
 * Drain callback (sse_stream_on_drain). data is the stream's data (sse_stream_set_data) at the
 * time of the call; st is valid for the call and may be sent to, re-armed or closed from it.
 */
typedef void (*sse_stream_drain_cb)(sse_stream *st, void *data);
/** sse_stream_on_drain's answer when the queue is already at or below the watermark. */
#define SSE_DRAINED 1
/**
 * Be told once when the stream's queue drains: cb runs once, from the loop (never from inside
 * a call of this API), after the bytes queued for st (sse_stream_queued_bytes) have fallen to
 * low_watermark or below. It is edge-triggered and one-shot: armed only while the queue is
 * above the watermark, disarmed when it runs; set it again to wait for the next drain. Use it to
 * produce a large answer at the pace of the reader (queue up to a high mark, arm, go on in cb)
 * instead of polling sse_stream_queued_bytes.
 *
 * "Queued" is what the stream has not yet handed on: for HTTP/1.1 (TCP or TLS) the bytes the
 * socket (TLS: the encryption of a write that had to wait) has not taken; for an HTTP/2 stream,
 * its own queue, which flow control holds while the peer's window is closed. Frames queued in
 * the same loop turn after the fall may make the queue larger again by the time cb runs.
 *
 * Returns 0 (armed; cb NULL: disarmed), SSE_DRAINED (the queue is already at or below the
 * watermark: nothing is armed, go on at once), SSE_EINVAL (st NULL, or low_watermark over
 * UINT32_MAX), SSE_ECLOSED (the stream takes no more frames), or SSE_ELIMIT (the server keeps
 * at most 16 distinct drain functions). A later call replaces an armed callback.
 *
 * Closing: cb is never called once the stream no longer takes frames (after sse_stream_close,
 * a queue-bound or timeout close, or the peer's) and never after on_close; on_close runs as
 * usual and the armed callback is simply dropped.
 *
 * Why data rather than a user pointer of its own: the stream keeps the function as a byte (a
 * slot in the server's table) and the watermark in spare room, so arming costs no memory.
 */
SSE_API int sse_stream_on_drain(sse_stream *st, size_t low_watermark, sse_stream_drain_cb cb);

/* Forms and queries: sse_form_next() in <sse/form.h> (included above). */

#ifdef __cplusplus
}
#endif
#endif
