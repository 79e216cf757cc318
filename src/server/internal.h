/*
 * internal.h: the structures shared by the files of the server module (internal).
 *
 * One struct sse_stream is one TCP connection: it reads requests, answers them, and may turn
 * into an event stream, so the stream handle of the public API is the connection itself (no
 * second allocation). It is kept small on purpose (see docs/SERVER.md, "Memory"): while idle it
 * owns no read buffer, no request and no queue array.
 *
 *   server.c  server lifecycle, listening, accepting, routes, the sweep timer, logging, stats
 *   conn.c    the read path: request parsing, dispatch, the request API, responses, CORS
 *   stream.c  the write path: frame queues, the per-turn flush, the stream API, closing
 *   static.c  the static-file handler
 */
#ifndef SSE__SERVER_INTERNAL_H
#define SSE__SERVER_INTERNAL_H

#include "http/http_parser.h"

#include <sse/server.h>
#include <stdint.h>

/* Connection states. */
enum {
    SSE__ST_READ = 0, /* waiting for (the rest of) a request */
    SSE__ST_HANDLE,   /* a deferred request is outstanding */
    SSE__ST_STREAM,   /* an open event stream */
    SSE__ST_DONE,     /* the last response is queued; close once it is written */
    SSE__ST_LINGER,   /* written and shut down; waiting for the peer's EOF (bounded) */
    SSE__ST_CLOSED    /* uv_close called; freed in the close callback */
};

/* Connection flags. */
enum {
    SSE__F_DIRTY = 1 << 0,       /* on the server's dirty list */
    SSE__F_CLOSE_FLUSH = 1 << 1, /* close once the queue is written */
    SSE__F_EOF = 1 << 2,         /* the peer has shut down its side */
    SSE__F_PROCESS = 1 << 3,     /* buffered pipelined bytes wait to be parsed */
    SSE__F_KILL = 1 << 4,        /* close hard at the next flush walk (reason in ->reason) */
    SSE__F_SERVED = 1 << 5,      /* at least one response was sent (keep-alive idle timer) */
    SSE__F_CLOSE_CB = 1 << 6,    /* the stream's on_close has run */
    SSE__F_WAS_STREAM = 1 << 7,  /* the connection is (was) an event stream */
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
    char data[];
};

struct sse_stream {
    uv_tcp_t tcp; /* first member: the handle pointer is the connection */
    sse_server *srv;
    struct sse_stream *prev, *next; /* all connections of the server */
    struct sse_stream *dirty_next;  /* the dirty list (SSE__F_DIRTY) */
    struct sse__pend *pend;         /* partial request bytes, or NULL */
    sse_request *req;               /* the outstanding (deferred) request, or NULL */
    uv_write_t *wreq;               /* the write waiting for writability, or NULL */
    union {
        sse_frame **ring;         /* qcap > 1: ring of queued frames */
        sse_frame *one;           /* qcap == 1: the only frame, kept inline (no allocation) */
    } q;                          /* see sse__conn_slot(); qcap == 0: nothing */
    uint32_t qhead, qcount, qcap; /* ring position, frames queued, ring size (power of 2) */
    uint32_t qoff;                /* bytes of q[qhead] already written */
    size_t qbytes;                /* bytes queued and not yet written (minus qoff) */
    size_t inflight;              /* bytes covered by *wreq */
    uint64_t bytes_out;           /* bytes written on this connection */
    uint32_t t_mark;              /* ms: request start / idle since / stream open /
                                     linger start */
    uint32_t t_act;               /* ms: last write progress (heartbeat, write timeout) */
    uint16_t flags;               /* SSE__F_* */
    uint8_t state;                /* SSE__ST_* */
    uint8_t reason;               /* SSE_CLOSE_* for on_close */
    void (*on_close)(sse_stream *st, int reason, void *user_data);
    void *on_close_data;
    void *data;    /* sse_stream_set_data */
    char *logline; /* "addr METHOD path" for the access log, or NULL */
};

/* A request, copied into one allocation: the strings point past the struct. */
struct sse_request {
    struct sse_stream *conn; /* NULL once the connection has gone */
    sse_server *srv;
    struct sse_request *next_free; /* answered deferred requests, freed at the next walk */
    const char *method, *path, *query, *body;
    size_t body_len;
    struct {
        const char *name, *value;
    } * headers;
    unsigned nheaders;
    unsigned flags; /* SSE__R_* */
    sse_buf extra;  /* response headers added by sse_request_add_header */
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
    struct sse__listener *next;
};

struct sse_server {
    uv_loop_t *loop;
    sse_server_options o; /* with defaults filled in; cors_origins owned */
    struct sse__http_limits lim;
    struct sse__http_header *hdrs; /* max_headers slots, reused by every parse */
    char *rbuf;                    /* the one read buffer (reads are handled synchronously) */
    size_t rbuf_size;
    struct sse__listener *listeners;
    int port;
    struct sse__route *routes, **routes_tail;
    struct sse_stream *conns; /* every open connection */
    struct sse_stream *dirty; /* connections with something to do at the next walk */
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
    char date[40]; /* cached Date header value */
    int64_t date_sec;
};

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
void sse__server_dirty_remove(sse_server *s, struct sse_stream *c);
/* The date for a Date header, cached per second. */
const char *sse__server_date(sse_server *s);

/* conn.c */
/* Start reading on an accepted connection (or answer 503 when over max_connections). */
void sse__conn_start(struct sse_stream *c, int over_limit);
/* Parse and dispatch buffered pipelined bytes (after a deferred request was answered). */
void sse__conn_process_pending(struct sse_stream *c);
/* Free a request (its connection no longer points to it). */
void sse__request_free(sse_request *r);
/* Serve a static file for r from route rt; always answers. */
void sse__static_serve(sse_request *r, const struct sse__route *rt);

/* stream.c */
/* Queue f (takes over one reference on success). Returns 0 or SSE_ENOMEM. */
int sse__conn_enqueue(struct sse_stream *c, sse_frame *f);
/* Put c on the dirty list (idempotent). */
void sse__conn_mark_dirty(struct sse_stream *c);
/* Write what is queued now (one uv_try_write); leaves the rest to a uv_write. */
void sse__conn_flush(struct sse_stream *c);
/* Close at once: fires on_close / on_abort, then uv_close; freed in the close callback. */
void sse__conn_close(struct sse_stream *c, int reason);
/* Close once the queue is written (reason reported to a stream's on_close). */
void sse__conn_close_after_flush(struct sse_stream *c, int reason);
/* The flush walk over the dirty list (the check / prepare callback body). */
void sse__server_walk(sse_server *s);

#endif
