/*
 * internal.h: the structures shared by the files of the server module (internal).
 *
 * Two objects, kept apart so that a protocol carrying several exchanges on one connection
 * (HTTP/2, h2.c) shares the write path:
 *
 *   struct sse__conn   one accepted connection: its transport (transport.h), the read side,
 *                      the HTTP/1.1 state, timers, the dirty-list link. It moves bytes.
 *   struct sse_stream  one exchange on it: a response head not yet written, then the queue of
 *                      body frames; for an event stream, its callbacks. The public handle.
 *
 * With HTTP/1.1 a connection carries one exchange at a time, so the stream lives inline in the
 * connection (no second allocation) and is reused by the next keep-alive request; HTTP/2
 * streams are allocated apart (struct sse__h2s, below) and listed by the connection. Both are kept
 * small on purpose (see docs/SERVER.md, "Memory"): while idle a connection owns no read buffer,
 * no request and no queue array.
 *
 *   server.c         server lifecycle, listening, accepting, routes, the sweep timer, logging
 *   conn.c           the read path: request parsing, dispatch, the request API, responses, CORS
 *   stream.c         the write path: frame queues, the per-turn flush, the stream API, closing
 *   h1.c             HTTP/1.1 response heads: the one place they are serialised
 *   h2.c             HTTP/2 over nghttp2: streams allocated apart (struct sse__h2s), heads as
 *                    name/value pairs, DATA frames that reference the shared frame bytes
 *   transport_tcp.c  the TCP transport (transport.h: the interface)
 *   transport_tls.c  the TLS transport (OpenSSL) and sse_server_listen_tls
 *   static.c         the static-file handler
 */
#ifndef SSE__SERVER_INTERNAL_H
#define SSE__SERVER_INTERNAL_H

#include "http/http_parser.h"
#include "server/transport.h"

#include <sse/server.h>
#include <stdalign.h>
#include <stdint.h>

/* Connection states (HTTP/1.1). */
enum {
    SSE__ST_READ = 0, /* waiting for (the rest of) a request */
    SSE__ST_HANDLE,   /* a deferred request is outstanding */
    SSE__ST_STREAM,   /* an open event stream */
    SSE__ST_DONE,     /* the last response is queued; close once it is written */
    SSE__ST_LINGER,   /* written and shut down; waiting for the peer's EOF (bounded) */
    SSE__ST_CLOSED,   /* the transport is closing; freed in sse__conn_closed */
    SSE__ST_H2        /* HTTP/2: the streams have states of their own (h2.c, struct sse__h2s) */
};

/* Connection flags. */
enum {
    SSE__F_DIRTY = 1 << 0,       /* on the server's dirty list */
    SSE__F_CLOSE_FLUSH = 1 << 1, /* close once the queue is written */
    SSE__F_EOF = 1 << 2,         /* the peer has shut down its side */
    SSE__F_PROCESS = 1 << 3,     /* buffered pipelined bytes wait to be parsed */
    SSE__F_KILL = 1 << 4,        /* close hard at the next flush walk (reason in st.reason) */
    SSE__F_SERVED = 1 << 5,      /* at least one response was sent (keep-alive idle timer) */
    SSE__F_WRITING = 1 << 6,     /* a transport writev is in flight (inflight bytes) */
    SSE__F_RSTOP = 1 << 7,       /* reading paused: pipelined bytes wait for our answer */
    SSE__F_H2 = 1 << 8,          /* the connection speaks HTTP/2 (c->h2, not c->pend) */
    SSE__F_DRAIN = 1 << 9,       /* a stream of it has a drain callback due (SSE__S_DRAIN_DUE) */
};

/* Stream flags. */
enum {
    SSE__S_CLOSE_CB = 1 << 0,   /* the stream's on_close has run */
    SSE__S_WAS_STREAM = 1 << 1, /* the exchange is (was) an event stream */
    SSE__S_DRAIN_DUE = 1 << 2,  /* its queue fell to drain_low: the walk runs the callback */
};

/* The parse state of the request being received; relative to the request's first byte. */
struct sse__pstate {
    struct sse__http_scan scan;
    struct sse__http_chunked chunk;
    size_t head_len; /* 0 until the head is complete */
    int continued;   /* "100 Continue" was sent */
};

/* Bytes of a request that arrived in pieces (allocated only then; freed once parsed). */
struct sse__pend {
    struct sse__pstate ps;
    size_t len, cap;
    uint32_t t_read; /* ms: the last read that added bytes (the unfinished request's clock) */
    char data[];
};

struct sse__conn;

/* The close reason of a write that failed with err: the peer went away, or an error. */
static inline int sse__write_error_close(int err)
{
    return err == UV_EPIPE || err == UV_ECONNRESET ? SSE_CLOSE_PEER : SSE_CLOSE_ERROR;
}

/* Free c's buffer of unfinished request bytes (and give them back to the server's budget). */
void sse__conn_pend_free(struct sse__conn *c);

/*
 * One exchange: what is to be written for it and, for an event stream, its callbacks. Pending
 * output is the head (if any), then the queued frames; qoff is the offset into whichever comes
 * first, and qbytes counts both.
 */
struct sse_stream {
    struct sse__conn *conn; /* the connection carrying it */
    sse_frame *head;        /* the response head, serialised by the protocol; NULL once written */
    union {
        sse_frame **ring;         /* qcap > 1: ring of queued frames */
        sse_frame *one;           /* qcap == 1: the only frame, kept inline (no allocation) */
    } q;                          /* see sse__stream_slot(); qcap == 0: nothing */
    uint32_t qhead, qcount, qcap; /* ring position, frames queued, ring size (power of 2) */
    uint32_t qoff;                /* bytes of the first pending item (head or q[qhead]) written */
    size_t qbytes;                /* head + frame bytes not yet written (minus qoff) */
    uint64_t bytes_out;           /* bytes written for it, heads included (HTTP/1.1: for the
                                     connection, over its keep-alive exchanges) */
    void (*on_close)(sse_stream *st, int reason, void *user_data);
    void *on_close_data;
    void *data;     /* sse_stream_set_data */
    char *logline;  /* "addr METHOD path" for the access log, or NULL */
    uint8_t sflags; /* SSE__S_* */
    uint8_t reason; /* SSE_CLOSE_* for on_close and the close of the connection */
    /* sse_stream_on_drain, in the padding above (an idle connection stays in its malloc chunk):
       the function is named by its slot in the server's table, not by a pointer */
    uint8_t drain_fn;   /* 1 + index into srv->drain_fns; 0: no drain callback armed */
    uint32_t drain_low; /* the watermark: armed, the callback is due once qbytes <= it */
};

/*
 * One connection. Followed in the same allocation by its transport's state (for TCP the
 * uv_tcp_t), at tp_state: see sse__conn_tp_state().
 */
struct sse__conn {
    sse_server *srv;
    struct sse__conn *prev, *next; /* all connections of the server */
    struct sse__conn *dirty_next;  /* the dirty list (SSE__F_DIRTY) */
    union {                        /* by protocol (SSE__F_H2): */
        struct sse__pend *pend;    /* HTTP/1.1: partial request bytes, or NULL */
        struct sse__h2 *h2;        /* HTTP/2: the session and its streams (h2.c) */
    };
    sse_request *req;                     /* the outstanding (deferred) request, or NULL */
    uint32_t t_mark;                      /* ms: request start / idle since / stream open /
                                             linger start */
    uint32_t t_act;                       /* ms: last write progress (heartbeat, write timeout) */
    uint32_t inflight;                    /* bytes covered by the transport writev (F_WRITING) */
    uint16_t flags;                       /* SSE__F_* */
    uint8_t state;                        /* SSE__ST_* */
    uint8_t tp;                           /* the transport: index into srv->tps */
    struct sse_stream st;                 /* HTTP/1.1: the one exchange, inline */
    alignas(16) unsigned char tp_state[]; /* the transport's state_size bytes */
};

/*
 * A response head as the code above the protocol describes it; each protocol serialises it
 * its own way (HTTP/1.1: sse__h1_head; HTTP/2: name/value pairs to nghttp2, h2.c).
 */
struct sse__field {
    const char *name, *value;
};
struct sse__head {
    int status;
    const char *content_type;        /* NULL: none */
    uint64_t content_length;         /* with SSE__HEAD_LENGTH */
    unsigned flags;                  /* SSE__HEAD_* */
    const struct sse__field *fields; /* server-made fields, in this order */
    unsigned nfields;                /* count of fields */
    const char *extra;               /* fields from sse_request_add_header: "name\0value\0"... */
    size_t extra_len;                /* bytes of extra */
};
enum {
    SSE__HEAD_LENGTH = 1 << 0,    /* content_length is set */
    SSE__HEAD_CLOSE = 1 << 1,     /* the connection ends after this response */
    SSE__HEAD_KEEPALIVE = 1 << 2, /* an HTTP/1.0 client keeps the connection (says so) */
};

/* A request, copied into one allocation: the strings point past the struct. */
struct sse_request {
    struct sse__conn *conn; /* NULL once the connection (HTTP/2: the stream) has gone */
    struct sse_stream *st;  /* the exchange it is answered on (HTTP/1.1: &conn->st) */
    sse_server *srv;
    struct sse_request *next_free; /* answered deferred requests, freed at the next walk */
    const char *method, *path, *query, *body;
    size_t body_len;
    struct {
        const char *name, *value;
    } * headers;
    unsigned nheaders;
    unsigned flags; /* SSE__R_* */
    sse_buf extra;  /* response headers added by sse_request_add_header: "name\0value\0"... */
    void (*on_abort)(sse_request *r, void *user_data);
    void *abort_data;
    uint64_t t_start; /* uv_hrtime() at dispatch */
    char remote[48];
    /* followed in the same allocation by the header array and the strings */
};

enum {
    SSE__R_KEEP = 1 << 0,       /* the connection may be reused after the answer */
    SSE__R_HEAD = 1 << 1,       /* HEAD: answer without body */
    SSE__R_ANSWERED = 1 << 2,   /* respond / open_stream was called */
    SSE__R_IN_HANDLER = 1 << 3, /* its handler is running */
    SSE__R_HTTP10 = 1 << 4,     /* HTTP/1.0 */
};

enum { SSE__ROUTE_HANDLER = 0, SSE__ROUTE_STREAM, SSE__ROUTE_STATIC };

struct sse__route {
    struct sse__route *next;
    char *method; /* NULL = any */
    char *path;   /* without the trailing '*' of a prefix */
    size_t path_len;
    int prefix;
    int kind; /* SSE__ROUTE_* */
    sse_request_cb cb;
    sse_stream_cb stream_cb;
    void *user_data;
    char *root; /* static: realpath of the directory */
    size_t root_len;
};

/* Distinct drain functions a server keeps (sse_stream_on_drain answers SSE_ELIMIT past it). */
#define SSE__DRAIN_FNS 16

struct sse__listener {
    uv_tcp_t tcp;
    sse_server *srv;
    uint8_t tp; /* the transport of the connections it accepts: index into srv->tps */
    struct sse__listener *next;
};

struct sse_server {
    uv_loop_t *loop;
    sse_server_options o; /* with defaults filled in; cors_origins, cors_expose_headers owned */
    struct sse__http_limits lim;
    struct sse__http_header *hdrs; /* max_headers slots, reused by every parse */
    char *rbuf;                    /* the one read buffer (reads are handled synchronously) */
    size_t rbuf_size;
    struct sse__listener *listeners;
    int port;
    struct sse__route *routes, **routes_tail;
    struct sse__conn *conns; /* every open connection */
    size_t pend_bytes;       /* bytes allocated for unfinished requests (o.max_buffered) */
    struct sse__conn *dirty; /* connections with something to do at the next walk */
    struct sse_request *free_reqs;
    uv_check_t check;       /* flush walk after I/O callbacks */
    uv_prepare_t prepare;   /* flush walk before blocking (catches timer callbacks) */
    uv_timer_t sweep;       /* heartbeats and timeouts */
    uv_timer_t close_timer; /* hard deadline of sse_server_close */
    uv_tcp_t oom_tcp;       /* accepts and closes a connection we cannot allocate */
    int oom_busy;
    sse_frame *hb; /* the heartbeat frame, shared by every stream */
    sse_server_stats st;
    int closing;           /* sse_server_close was called */
    int finalizing;        /* the internal handles are being closed */
    unsigned handles_open; /* listeners + internal handles not yet closed */
    void (*done)(sse_server *s, void *user_data);
    void *done_data;
    struct {
        const struct sse__transport *ops;
        void *ctx;      /* borrowed; NULL for TCP */
    } tps[SSE__TP_MAX]; /* the transports of the listeners; [0] is TCP */
    unsigned ntps;      /* entries used */
    /* TLS (transport_tls.c): the certificate and the scratch buffers of every TLS listener */
    struct sse__tls *tls; /* NULL until sse_server_listen_tls */
    int alpn_h2;          /* TLS listeners offer "h2" by ALPN (o.h2; the HTTP/2 layer) */
    char date[40];        /* cached Date header value */
    int64_t date_sec;
    /* sse_stream_on_drain (stream.c): the distinct drain functions given, by slot */
    sse_stream_drain_cb drain_fns[SSE__DRAIN_FNS];
    unsigned n_drain_fns; /* slots used */
};

/*
 * HTTP/2 (h2.c). A stream is allocated apart: the public struct sse_stream first (st.conn is
 * the connection), then what HTTP/2 needs. Its queue is the same frame ring as HTTP/1.1's; the
 * frames are handed to nghttp2 by reference when flow control allows (st.qbytes counts what is
 * not handed yet, so the per-stream bound holds while the peer's window is closed).
 */
struct sse__h2in;
struct sse__h2s {
    struct sse_stream st;         /* first: the public handle */
    struct sse__h2s *prev, *next; /* the connection's streams */
    sse_request *req;             /* its outstanding request, or NULL */
    struct sse__h2in *in;         /* the request while it arrives (headers, body), or NULL */
    int32_t id;                   /* the HTTP/2 stream id */
    uint32_t t_act;               /* ms: data last handed on (heartbeat, write timeout) */
    uint32_t t_open;              /* ms: the stream opened (access log) */
    uint8_t hflags;               /* SSE__H2S_* */
};
enum {
    SSE__H2S_SUBMITTED = 1 << 0, /* the response head is submitted (a data source attached) */
    SSE__H2S_DEFERRED = 1 << 1,  /* the data source waits for frames (resume when queued) */
    SSE__H2S_END = 1 << 2,       /* end the stream (END_STREAM) once its queue is handed on */
    SSE__H2S_RESET = 1 << 3,     /* reset by us (reason in st.reason): no more output */
};

/* Whether st is an HTTP/2 stream (then it is the first member of a struct sse__h2s). */
static inline int sse__stream_is_h2(const struct sse_stream *st)
{
    return (st->conn->flags & SSE__F_H2) != 0;
}

/* The transport of c. */
static inline const struct sse__transport *sse__conn_tp(const struct sse__conn *c)
{
    return c->srv->tps[c->tp].ops;
}

/* The context its transport was given for c's listener (NULL for TCP). */
static inline void *sse__conn_tp_ctx(const struct sse__conn *c)
{
    return c->srv->tps[c->tp].ctx;
}

/* The protocol c's transport agreed on in its handshake (ALPN), or NULL (TCP, none). */
static inline const char *sse__conn_alpn(struct sse__conn *c)
{
    return c->srv->tps[c->tp].ops->alpn ? c->srv->tps[c->tp].ops->alpn(c) : NULL;
}

/* The transport's per-connection state of c. */
static inline void *sse__conn_tp_state(struct sse__conn *c)
{
    return c->tp_state;
}

/* Whether anything of c is still to be written (queued, or in a transport write). */
static inline int sse__conn_writing(const struct sse__conn *c)
{
    if (c->flags & SSE__F_H2)
        return (c->flags & SSE__F_WRITING) != 0;
    return c->st.head || c->st.qcount || (c->flags & SSE__F_WRITING);
}

/* Milliseconds on the loop clock, truncated (compare with unsigned subtraction). */
static inline uint32_t sse__now(const sse_server *s)
{
    return (uint32_t)uv_now(s->loop);
}

/* server.c */
void sse__log(sse_server *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A connection was freed: update counts and finish a pending shutdown. */
void sse__server_conn_freed(sse_server *s);
/* Remove c from the dirty list (it is being freed). */
void sse__server_dirty_remove(sse_server *s, struct sse__conn *c);
/* The date for a Date header, cached per second. */
const char *sse__server_date(sse_server *s);
/*
 * sse_server_listen with another transport than TCP: its connections go through tp, which is
 * given ctx (borrowed: it must outlive the server). The listening socket is TCP. Returns 0, or
 * SSE_ELIMIT when the server has SSE__TP_MAX transports already, or as sse_server_listen.
 */
int sse__server_listen_tp(sse_server *s, const char *host, int port,
                          const struct sse__transport *tp, void *ctx);

/* transport_tls.c */
struct sse__tls;
/* Free the server's TLS state (after every connection is gone). */
void sse__tls_free(struct sse__tls *t);
/* Milliseconds a TLS handshake may take (the server's sweep enforces it). */
unsigned sse__tls_handshake_timeout(const sse_server *s);
/* A TLS connection past max_connections, still handshaking: 1 when it is answered 503 once the
   handshake is done (within a small budget of such connections), 0 when it must be closed. */
int sse__tls_refuse_after_handshake(struct sse__conn *c);

/* h1.c */
/*
 * Append the HTTP/1.1 serialisation of h (status line, Date for final answers, fields, the
 * empty line) to b. date is the Date value. Returns 0, or SSE_ENOMEM / SSE_ELIMIT from b (b
 * then holds a partial head: the caller drops it).
 */
int sse__h1_head(sse_buf *b, const struct sse__head *h, const char *date);

/* conn.c */
/* Start reading on an accepted connection (or answer 503 when over max_connections). */
void sse__conn_start(struct sse__conn *c, int over_limit);
/* Parse and dispatch buffered pipelined bytes (after an answer was written or given). */
void sse__conn_process_pending(struct sse__conn *c);
/* Answer with a server-made error (text/plain, Connection: close) and close once written. */
void sse__conn_reject(struct sse__conn *c, int status, const char *allow);
/* Free a request (its connection no longer points to it). */
void sse__request_free(sse_request *r);
/* Copy a parsed request head into a request answered on st and route it (HTTP/1.1 and /2). */
void sse__conn_dispatch(struct sse__conn *c, struct sse_stream *st, const struct sse__http_head *h,
                        const char *body, size_t body_len);
/* Serve a static file for r from route rt; always answers. */
void sse__static_serve(sse_request *r, const struct sse__route *rt);

/* h2.c */
/*
 * Switch a just-accepted connection to HTTP/2 before any byte is read (TLS after ALPN chose
 * "h2"; plain TCP when the client's first bytes are the HTTP/2 preface and o.h2c is on). The
 * connection then sends its SETTINGS and reads the client's preface. On failure it is closed.
 */
void sse__conn_start_h2(struct sse__conn *c);
/* Whether the HTTP/2 preface starts data[0..n) (1), may still come (n too short: 2), or not (0). */
int sse__h2_preface(const char *data, size_t n);
/* Bytes read on an HTTP/2 connection (n > 0), or its end (data NULL, n < 0). */
void sse__h2_on_read(struct sse__conn *c, char *data, ssize_t n);
/* One flush of an HTTP/2 connection: nghttp2's frames in one try_writev, the rest in one writev. */
void sse__h2_flush(struct sse__conn *c);
/* The transport writev of an HTTP/2 connection completed. */
void sse__h2_write_done(struct sse__conn *c, int status);
/* The connection is closing: every stream's request is aborted / on_close runs (reason). */
void sse__h2_close_streams(struct sse__conn *c, int reason);
/* Free the HTTP/2 state of a closed connection. */
void sse__h2_free(struct sse__conn *c);
/* The sweep timer's visit: heartbeats, write and request timeouts, idle close. */
void sse__h2_sweep(struct sse__conn *c, uint32_t now);
/* The server is closing: GOAWAY, streams end once flushed. */
void sse__h2_shutdown(struct sse__conn *c);
/* Answer r's HTTP/2 stream with h and body (copied); is_stream: an event stream that stays open. */
int sse__h2_answer(sse_request *r, const struct sse__head *h, const void *body, size_t len,
                   int is_stream);
/* Whether an HTTP/2 stream still takes frames. */
int sse__h2_stream_open(const struct sse_stream *st);
/* End an HTTP/2 stream: reason LOCAL after its queue (END_STREAM), others at once (RST_STREAM). */
void sse__h2_stream_end(struct sse_stream *st, int reason);
/* Frames were queued on an HTTP/2 stream: wake its data source. */
void sse__h2_stream_queued(struct sse_stream *st);
/* Answer a request-level error on an HTTP/2 stream (text/plain; the stream ends). */
void sse__h2_reject(struct sse_stream *st, int status);
/* Run the due drain callbacks of the streams of an HTTP/2 connection (sse__stream_drain_fire). */
void sse__h2_drains(struct sse__conn *c);

/* stream.c */
/* The frame at position i of st's queue (0 = the oldest). */
sse_frame *sse__stream_at(struct sse_stream *st, uint32_t i);
/* n bytes at the front of st's queue are written (or handed on): drop what they finish. */
void sse__stream_consume(struct sse_stream *st, size_t n);
/* The stream ends: count it, log it, run on_close once (for an event stream). */
void sse__stream_closed(struct sse_stream *st, int reason);
/*
 * Start the answer of st: h serialised by the connection's protocol becomes the pending head,
 * then body[0..len) (copied) is queued behind it. Nothing else of st may be pending. Returns
 * 0, SSE_ENOMEM or SSE_EBUSY (output of an earlier answer still pending); nothing is queued
 * on failure.
 */
int sse__stream_answer(struct sse_stream *st, const struct sse__head *h, const void *body,
                       size_t len);
/* Queue f behind the head (takes over one reference on success). Returns 0 or SSE_ENOMEM. */
int sse__stream_enqueue(struct sse_stream *st, sse_frame *f);
/* Put c on the dirty list (idempotent). */
void sse__conn_mark_dirty(struct sse__conn *c);
/* The walk's visit of a connection with SSE__F_DRAIN: run the drain callbacks that are due. */
void sse__stream_drains(struct sse__conn *c);
/* Run st's drain callback if it is due (and the stream still takes frames); disarms it. */
void sse__stream_drain_fire(struct sse_stream *st);
/* Write what is pending now (one try_writev); leaves the rest to one transport writev. */
void sse__conn_flush(struct sse__conn *c);
/* Close at once: fires on_close / on_abort, then closes the transport; freed once closed. */
void sse__conn_close(struct sse__conn *c, int reason);
/* Close once the queue is written (reason reported to a stream's on_close). */
void sse__conn_close_after_flush(struct sse__conn *c, int reason);
/* Close hard at the next flush walk (never from inside an API call): reason for on_close. */
void sse__conn_kill(struct sse__conn *c, int reason);
/* The flush walk over the dirty list (the check / prepare callback body). */
void sse__server_walk(sse_server *s);

#endif
