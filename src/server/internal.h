/*
 * internal.h: the structures shared by the files of the server module (internal).
 *
 * Two objects, kept apart so that a protocol carrying several exchanges on one connection
 * (HTTP/2) can be added later without touching the write path:
 *
 *   struct sse__conn   one accepted connection: its transport (transport.h), the read side,
 *                      the HTTP/1.1 state, timers, the dirty-list link. It moves bytes.
 *   struct sse_stream  one exchange on it: a response head not yet written, then the queue of
 *                      body frames; for an event stream, its callbacks. The public handle.
 *
 * With HTTP/1.1 a connection carries one exchange at a time, so the stream lives inline in the
 * connection (no second allocation) and is reused by the next keep-alive request. Both are kept
 * small on purpose (see docs/SERVER.md, "Memory"): while idle a connection owns no read buffer,
 * no request and no queue array.
 *
 *   server.c         server lifecycle, listening, accepting, routes, the sweep timer, logging
 *   conn.c           the read path: request parsing, dispatch, the request API, responses, CORS
 *   stream.c         the write path: frame queues, the per-turn flush, the stream API, closing
 *   h1.c             HTTP/1.1 response heads: the one place they are serialised
 *   transport_tcp.c  the TCP transport (transport.h: the interface)
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
    SSE__ST_CLOSED    /* the transport is closing; freed in sse__conn_closed */
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
};

/* Stream flags. */
enum {
    SSE__S_CLOSE_CB = 1 << 0,   /* the stream's on_close has run */
    SSE__S_WAS_STREAM = 1 << 1, /* the exchange is (was) an event stream */
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
};

/*
 * One connection. Followed in the same allocation by its transport's state (for TCP the
 * uv_tcp_t), at tp_state: see sse__conn_tp_state().
 */
struct sse__conn {
    sse_server *srv;
    struct sse__conn *prev, *next;        /* all connections of the server */
    struct sse__conn *dirty_next;         /* the dirty list (SSE__F_DIRTY) */
    struct sse__pend *pend;               /* partial request bytes, or NULL */
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
 * its own way (HTTP/1.1: sse__h1_head; HTTP/2 would hand name/value pairs to nghttp2).
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
    struct sse__conn *conn; /* NULL once the connection has gone */
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
    char date[40];      /* cached Date header value */
    int64_t date_sec;
};

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

/* The transport's per-connection state of c. */
static inline void *sse__conn_tp_state(struct sse__conn *c)
{
    return c->tp_state;
}

/* Whether anything of c is still to be written (queued, or in a transport write). */
static inline int sse__conn_writing(const struct sse__conn *c)
{
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
/* Serve a static file for r from route rt; always answers. */
void sse__static_serve(sse_request *r, const struct sse__route *rt);

/* stream.c */
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
