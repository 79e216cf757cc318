/*
 * transport.h: how a connection moves bytes (internal to the server module).
 *
 * A connection (struct sse__conn, internal.h) never touches a socket. It reads and writes
 * through the small table of operations below, picked by the listener that accepted it; the
 * code above (request parsing, the write queues, the per-turn flush, timeouts, shutdown) is
 * written once for every transport. Models: redis `ConnectionType` (src/connection.h) and curl's
 * connection filters (lib/cfilters.h).
 *
 *   transport_tcp.c  plain TCP on a uv_tcp_t
 *   transport_tls.c  TLS: OpenSSL with a BIO of its own over the same uv_tcp_t, set up by
 *                    sse_server_listen_tls; see docs/SERVER.md, "Transports".
 *
 * A transport may have a context of its own per server (sse__conn_tp_ctx: for TLS the SSL_CTX
 * with the certificate), given when a listener is set up with sse__server_listen_tp.
 *
 * Each transport keeps its per-connection state (for TCP: the uv_tcp_t) in state_size bytes that
 * the server allocates right after struct sse__conn (sse__conn_tp_state), so a connection is
 * still one allocation and a transport that needs nothing more than a socket costs nothing more.
 *
 * Calls go down through the table; results come up through the sse__conn_* functions declared
 * at the end, which every transport calls and nothing else does. All calls happen on the loop
 * thread. A transport never calls up from inside a downward call, except where said.
 *
 * What a transport does not own: HTTP. Bytes in are plain bytes for the protocol code (conn.c
 * for HTTP/1.1), bytes out are what the connection's flush hands it, in order.
 */
#ifndef SSE__SERVER_TRANSPORT_H
#define SSE__SERVER_TRANSPORT_H

#include <stddef.h>
#include <uv.h>

struct sse__conn;

struct sse__transport {
    const char *name;  /* "tcp": for logs */
    size_t state_size; /* bytes of per-connection state placed after struct sse__conn */

    /*
     * Take the next connection from listener (a uv_stream_t of the listener, which belongs to
     * this transport too) into c, whose state area is zeroed. Returns 0, or a negative libuv
     * error: then the transport has started to close what it set up and calls
     * sse__conn_closed(c) when done (possibly before returning); c must not be used after.
     */
    int (*accept)(struct sse__conn *c, uv_stream_t *listener);
    /*
     * Start delivering bytes: each read arrives through sse__conn_on_read(c, data, n), n > 0;
     * end of stream or a read error as sse__conn_on_read(c, NULL, negative libuv error). The
     * data is borrowed for the call (the server's one read buffer, from sse__conn_read_buf).
     * Returns 0 or an error. On a restart, a transport that had already read bytes when
     * reading stopped (TLS: ciphertext behind a record it delivered) delivers them from inside
     * this call: the one exception to "no upcall from a downward call".
     */
    int (*read_start)(struct sse__conn *c);
    /* Stop delivering bytes (idempotent; reading may be started again). */
    void (*read_stop)(struct sse__conn *c);
    /*
     * Write as much of bufs[0..n) as can go out now without waiting. Returns the bytes taken
     * (0 when none can be: "try later"), or a negative libuv error (UV_EPIPE, UV_ECONNRESET:
     * the peer is gone). Bytes taken are the transport's: the caller may drop its buffers.
     * Not called while a writev is in flight.
     */
    int (*try_writev)(struct sse__conn *c, const uv_buf_t *bufs, unsigned n);
    /*
     * Write all of bufs[0..n), waiting for the socket as long as needed. The buffers must stay
     * valid until sse__conn_write_done(c, status) (0, or a negative error; UV_ECANCELED after
     * close) reports them written. One at a time. Returns 0, or a negative error (no callback).
     */
    int (*writev)(struct sse__conn *c, const uv_buf_t *bufs, unsigned n);
    /*
     * Send the end of the byte stream once everything written is out (TCP: FIN; TLS:
     * close_notify, then FIN). Completes with sse__conn_shutdown_done(c, status). Returns 0, or
     * a negative error (no callback).
     */
    int (*shutdown)(struct sse__conn *c);
    /* Close now, dropping unwritten bytes; completes with sse__conn_closed(c). Once only. */
    void (*close)(struct sse__conn *c);
    /* The peer's address as text into out[0..cap) ("" when unknown); 0 or a negative error. */
    int (*peer_addr)(struct sse__conn *c, char *out, size_t cap);
    /* The application protocol agreed in the handshake ("h2", "http/1.1"), or NULL (none, or
     * no handshake: TCP leaves this NULL). Use sse__conn_alpn(). */
    const char *(*alpn)(struct sse__conn *c);
    /* Whether the transport's own handshake is still running (TLS); NULL: never. The server's
     * sweep closes a connection whose handshake outlasts the handshake timeout. */
    int (*handshaking)(struct sse__conn *c);
};

/*
 * A server keeps the transports its listeners use in a small table (struct sse_server's tps:
 * the operations plus one context each, e.g. the SSL_CTX of a TLS listener); a connection names
 * its entry with a byte, not a pointer, to keep idle connections small. Entry 0 is plain TCP.
 */
#define SSE__TP_MAX 4

/* transport_tcp.c */
extern const struct sse__transport sse__transport_tcp;
/* transport_tls.c (its context: struct sse__tls, internal.h) */
extern const struct sse__transport sse__transport_tls;

/* ---- upcalls: implemented in conn.c / stream.c, called only by transports */

/* Bytes read (n > 0; the parser may change them in place), or the end of the stream / a read
 * error (data NULL, n < 0). */
void sse__conn_on_read(struct sse__conn *c, char *data, ssize_t n);
/* The writev in flight completed (status 0) or failed (negative libuv error). */
void sse__conn_write_done(struct sse__conn *c, int status);
/* The shutdown completed (status 0) or failed. */
void sse__conn_shutdown_done(struct sse__conn *c, int status);
/* Everything of the transport is closed: the connection may be freed (it is, in here). */
void sse__conn_closed(struct sse__conn *c);
/* The read buffer to fill: the server's one buffer (reads are handled synchronously). */
uv_buf_t sse__conn_read_buf(struct sse__conn *c);

#endif
