/*
 * loadgen.h: the load generator behind `ssehub bench` (internal to libsse: sse__loadgen_*).
 *
 * It opens N subscriber streams over loopback (several source addresses, several worker
 * processes when N is large), spread round-robin over T topics, publishes R messages per second
 * with the send time in the data, and measures per-delivery latency, deliveries/s, the connect
 * rate, errors, and (given server pids) the server's memory and CPU from /proc. Targets: a
 * Mercure hub, nginx + nchan, or a plain broadcast server. Everything is bounded in count and
 * time. HTTP is read with the library's response reader (src/http/http_response.h) and event
 * streams with its parser (include/sse/format.h); the load generator has no parser of its own.
 *
 * The files, one job each:
 *   loadgen.c         the run: derived settings, shared memory, worker processes, the phases
 *   loadgen_sub.c     the subscriber engine of one worker process (connections, reading events)
 *   loadgen_pub.c     the publisher engine (keep-alive POSTs at the configured rate)
 *   loadgen_target.c  what differs per target: URLs, the GET and POST requests, topic names
 *   loadgen_stats.c   latency histograms, clocks, merging the workers' numbers into the report
 *   loadgen_probe.c   the server processes seen from /proc: memory, CPU, children
 *   loadgen_tls.c     the TLS client (OpenSSL 3): context, ALPN, a BIO on the socket
 * Subscribers speak HTTP/1.1 or HTTP/2 (nghttp2's client session: h2c by prior knowledge on
 * http://, ALPN h2 on https://), K streams per connection over HTTP/2; the publisher speaks
 * HTTP/1.1, over TLS for an https:// publish URL.
 * Option parsing and every line printed belong to the caller (src/cli/cmd_bench.c).
 */
#ifndef SSE__LOADGEN_H
#define SSE__LOADGEN_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SSE__LOADGEN_MAX_PROCS 64        /* subscriber processes */
#define SSE__LOADGEN_MAX_SOURCES 250     /* source addresses 127.0.0.1 .. 127.0.0.250 */
#define SSE__LOADGEN_MAX_PIDS 16         /* server processes watched, children included */
#define SSE__LOADGEN_PER_PROC_MAX 19000u /* connections one subscriber process may hold */
/* Log-linear histogram of nanoseconds: 64 exact buckets, then 32 per power of two (~3 %). */
#define SSE__LOADGEN_HIST_SUB 32
#define SSE__LOADGEN_HIST_BUCKETS (64 + 44 * SSE__LOADGEN_HIST_SUB)

enum sse__loadgen_target {
    SSE__LOADGEN_MERCURE = 0, /* a Mercure hub: GET ?topic=, POST topic=&data= */
    SSE__LOADGEN_NCHAN = 1,   /* nginx + nchan: the topic is the last path segment */
    SSE__LOADGEN_PLAIN = 2    /* one stream URL, one publish URL, no topics */
};

enum sse__loadgen_phase {
    SSE__LOADGEN_PHASE_CONNECT = 0, /* subscribers connect */
    SSE__LOADGEN_PHASE_RUN = 1,     /* the publisher runs */
    SSE__LOADGEN_PHASE_STOP = 2     /* subscribers close and exit */
};

struct sse__loadgen_hist {
    uint64_t count;
    uint64_t sum; /* ns */
    uint64_t min; /* ns; UINT64_MAX while empty */
    uint64_t max; /* ns */
    uint64_t b[SSE__LOADGEN_HIST_BUCKETS];
};

/* An http:// or https:// URL (split by sse__http_split_url) with its resolved address. */
struct sse__loadgen_url {
    char host[256];   /* as written, without brackets */
    int port;         /* 80 / 443 when the URL has none */
    int tls;          /* https:// */
    char path[1024];  /* "/..." without the query */
    char query[1024]; /* after '?', or "" */
    struct sockaddr_storage addr;
};

struct sse__loadgen_config {
    int target;                  /* enum sse__loadgen_target */
    struct sse__loadgen_url sub; /* where subscribers connect */
    struct sse__loadgen_url pub; /* where the publisher posts */
    const char *token;           /* Bearer token for publishing (borrowed), or NULL */
    const char *sub_token;       /* Bearer token for subscribing (borrowed), or NULL */
    const char *topic_prefix;    /* topic names are <prefix><n> (borrowed) */
    unsigned subscribers;        /* N */
    unsigned topics;             /* T */
    double rate;                 /* R messages per second, all topics together */
    double duration;             /* measured seconds of publishing */
    double warmup;               /* seconds of publishing before measuring */
    double idle;                 /* seconds to wait idle before reading server memory */
    double connect_timeout;      /* seconds allowed for all subscribers to connect */
    double drain;                /* seconds to wait for late deliveries after the last publish */
    unsigned sources;            /* source addresses 127.0.0.1 .. 127.0.0.<sources>; 0: auto */
    unsigned procs;              /* subscriber processes; 0: auto */
    unsigned concurrency;        /* connects in flight per process */
    unsigned pub_conns;          /* publisher keep-alive connections */
    unsigned payload;            /* data bytes per message (at least the ts/seq fields) */
    unsigned max_track;          /* messages tracked one by one; set by sse__loadgen_prepare */
    int server_pids[SSE__LOADGEN_MAX_PIDS]; /* server processes to watch */
    int nserver_pids;
    int server_children; /* also watch the children of server_pids */
    /* Subscribers' protocol (sub.tls says TLS). */
    int h2;                    /* HTTP/2: h2c by prior knowledge (http://), ALPN h2 (https://) */
    unsigned streams_per_conn; /* K streams per connection (HTTP/2; 1 for HTTP/1.1) */
    const char *cacert;        /* PEM CA file to verify the server with (borrowed), or NULL */
    int insecure;              /* do not verify the server's certificate */
};

/* Counters of one subscriber process, in shared memory; written only by that process. */
struct sse__loadgen_child {
    uint64_t connected;       /* streams that got 200 + headers */
    uint64_t failed;          /* connect errors, non-200 answers, EOF before headers */
    uint64_t dropped;         /* streams closed by the server after they were open */
    uint64_t events;          /* measured events received (w=0) */
    uint64_t warm_events;     /* warm-up events received */
    uint64_t bad_events;      /* events without a parsable ts=, and protocol errors */
    uint64_t bytes;           /* body bytes received */
    uint64_t last_connect_ns; /* CLOCK_MONOTONIC when its last stream opened */
    uint64_t first_error;     /* a negative libuv/SSE code or HTTP status of the first failure */
    int done;                 /* set when it has stopped and its numbers are final */
    struct sse__loadgen_hist hist; /* per-delivery latency of measured events */
};

/* One tracked message: how many subscribers got it and the latest receipt. */
struct sse__loadgen_seq {
    uint32_t count;
    uint32_t pad_;
    uint64_t max_ns;
};

/* The shared-memory area (MAP_SHARED, created before fork). */
struct sse__loadgen_shared {
    int phase; /* enum sse__loadgen_phase, written by the parent */
    unsigned nprocs;
    struct sse__loadgen_child child[SSE__LOADGEN_MAX_PROCS];
    struct sse__loadgen_seq seq[]; /* config.max_track entries */
};

/* Publisher results (parent process only). */
struct sse__loadgen_pub_stats {
    uint64_t sent;         /* requests written */
    uint64_t measured;     /* of which after warm-up */
    uint64_t ok;           /* 2xx answers */
    uint64_t errors;       /* non-2xx answers, connection errors */
    uint64_t behind;       /* times a message was due and no connection was free */
    uint64_t first_status; /* first non-2xx status or negative libuv/SSE code */
    uint64_t first_measured_seq;
    uint64_t end_seq;             /* one past the last sequence number sent */
    double seconds;               /* measured publishing time */
    struct sse__loadgen_hist rtt; /* POST round trip, measured messages */
};

/* Memory of the watched server processes, summed; -1 when unreadable. */
struct sse__loadgen_mem {
    long long rss_kib, pss_kib;
};

/* Everything a run measured (large: allocate it). */
struct sse__loadgen_report {
    /* connecting */
    unsigned workers;           /* subscriber processes started (fewer than procs: fork failed) */
    uint64_t connected, failed; /* streams opened / that failed to open */
    double connect_seconds;     /* first connect to the last stream open */
    double connect_rate;        /* streams per second */
    int connect_gave_up;        /* the connect timeout ran out or a worker ended early */
    int worker_ended_early;     /* a subscriber process exited during the connect phase */
    /* streams */
    uint64_t dropped, events, warm_events, bad_events, body_bytes;
    uint64_t first_error; /* the subscribers' first failure (see sse__loadgen_child), or 0 */
    /* publishing */
    int pub_ran;   /* the publisher ran to its end */
    int pub_error; /* 0, or the negative libuv/SSE code that stopped it from running */
    struct sse__loadgen_pub_stats pub;
    uint64_t expected;                /* deliveries expected for measured messages */
    double deliveries_per_sec;        /* measured deliveries over the measured publishing time */
    uint64_t fanout_tracked;          /* measured messages tracked one by one */
    uint64_t fanout_complete;         /* of which every subscriber of its topic got */
    struct sse__loadgen_hist latency; /* per delivery */
    struct sse__loadgen_hist fanout_last; /* per message: its last receipt */
    /* the server (when pids were given) and the load generator itself */
    int npids; /* server processes watched (children included) */
    struct sse__loadgen_mem mem_before, mem_after;
    double pss_per_sub, rss_per_sub; /* growth per connected subscriber, bytes */
    double server_cpu;               /* seconds while publishing, or -1 */
    double wall_seconds;             /* of publishing and draining */
    double sub_cpu, pub_cpu;         /* seconds used by the subscriber processes / the parent */
    uint64_t errors;                 /* failed + dropped + bad events + publish errors */
};

/* Progress events of a run, for the caller to print. */
enum sse__loadgen_event {
    SSE__LOADGEN_EV_CONNECTED = 0, /* the connect phase is over (connected, failed, seconds) */
    SSE__LOADGEN_EV_PUB_FAILED = 1 /* the publisher could not run (pub_error) */
};
typedef void (*sse__loadgen_progress_cb)(void *user_data, int event,
                                         const struct sse__loadgen_report *rep);

/* ------------------------------------------------------------------------------ loadgen.c */

/*
 * Fill the derived settings of c: topics clamped to the subscribers (1 for plain), procs and
 * sources when 0 (one process per 15,000 streams, one source address per 20,000), max_track,
 * streams_per_conn (1 unless HTTP/2). Then raise the soft RLIMIT_NOFILE to the hard one and
 * check that a process's share of connections fits it and SSE__LOADGEN_PER_PROC_MAX. Returns 0,
 * or SSE_ELIMIT with *per_proc (connections) and *fd_limit (for the message) when more
 * processes are needed.
 */
int sse__loadgen_prepare(struct sse__loadgen_config *c, unsigned *per_proc,
                         unsigned long long *fd_limit);

/*
 * Run the whole benchmark with a prepared c: fork the subscriber processes, wait (bounded) for
 * the streams to open, read the server's memory, publish, stop and reap the workers, and fill
 * *rep (zeroed first). progress, if not NULL, is called from this process between phases.
 * Returns 0 (rep filled, whatever the server did), or a negative errno when the shared memory
 * or the report could not be set up.
 */
int sse__loadgen_run(const struct sse__loadgen_config *c, struct sse__loadgen_report *rep,
                     sse__loadgen_progress_cb progress, void *user_data);

/* --------------------------------------------------------------------- loadgen_{sub,pub}.c */

/*
 * Body of subscriber process number index (0-based) of c->procs: opens its share of the
 * subscribers, reports in sh->child[index], runs until sh->phase is SSE__LOADGEN_PHASE_STOP.
 * Returns 0, or a negative libuv code if the loop could not be set up.
 */
int sse__loadgen_sub_run(const struct sse__loadgen_config *c, struct sse__loadgen_shared *sh,
                         unsigned index);

/*
 * Publish for warmup + duration seconds at c->rate, then wait up to c->drain seconds for the
 * answers and for deliveries (sh) to come in. Fills *st. Returns 0 or a negative libuv code.
 */
int sse__loadgen_pub_run(const struct sse__loadgen_config *c, struct sse__loadgen_shared *sh,
                         struct sse__loadgen_pub_stats *st);

/* ------------------------------------------------------------------------ loadgen_target.c */

/*
 * Parse "http[s]://host[:port]/path?query" with the library's URL splitter and resolve host (an
 * IPv4 or IPv6 literal, or "localhost"). Returns 0 and *u, or SSE_EINVAL (*u unspecified).
 */
int sse__loadgen_url_parse(struct sse__loadgen_url *u, const char *url);

/* The subscriber's request target for topic t ("/path?query..."), NUL-terminated in out. */
void sse__loadgen_sub_target(const struct sse__loadgen_config *c, unsigned t, char *out,
                             size_t cap);

/* The Host header's (or :authority's) value for u: host:port, an IPv6 literal in brackets. */
void sse__loadgen_host_header(const struct sse__loadgen_url *u, char *out, size_t cap);

/*
 * The subscriber's GET request for topic t (ignored for plain), in a buffer the caller frees
 * with free(); *len its length. NULL when out of memory.
 */
char *sse__loadgen_sub_request(const struct sse__loadgen_config *c, unsigned t, size_t *len);

/*
 * Write the publisher's POST for message seq (topic seq % T) into *buf (grown with realloc as
 * needed; *cap its size; the caller frees *buf). The data is "ts=<CLOCK_REALTIME ns>,seq=<seq>,
 * w=<warm>," padded with 'x' to c->payload bytes; ts is taken here, just before the caller
 * writes. Returns 0 and *len, SSE_ENOMEM or SSE_ELIMIT (the request would not fit).
 */
int sse__loadgen_pub_request(const struct sse__loadgen_config *c, uint64_t seq, int warm,
                             char **buf, size_t *cap, size_t *len);

/* --------------------------------------------------------------------------- loadgen_tls.c */

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/*
 * A client context: TLS 1.2+, the server verified with c->cacert (or the system's CAs) unless
 * c->insecure, ALPN "h2" and "http/1.1" when h2 (the subscriber engine then requires h2), else
 * "http/1.1" (the publisher, HTTP/1.1 subscribers). NULL (and *err, a static message) on failure.
 */
SSL_CTX *sse__loadgen_tls_ctx(const struct sse__loadgen_config *c, int h2, const char **err);

/* Whether the client context for c can be made (the CA file loads): 0, or -1 and *err. */
int sse__loadgen_tls_check(const struct sse__loadgen_config *c, const char **err);

/* What the TLS glue calls to send ciphertext: queue p[0..n) on the connection in order.
 * Returns 0, or a negative code (the connection is then failed by the caller). */
typedef int (*sse__loadgen_tls_send_fn)(void *conn, const char *p, size_t n);

/*
 * A client SSL for one connection to u (SNI and the name or IP checked when verifying) whose
 * BIO reads from the slice set by sse__loadgen_tls_input() and writes through send(conn, ...):
 * no buffer of its own per connection. NULL when out of memory.
 */
SSL *sse__loadgen_tls_new(SSL_CTX *ctx, const struct sse__loadgen_url *u,
                          sse__loadgen_tls_send_fn send, void *conn);

/* Point the SSL's read side at p[0..n) (bytes just received), consumed by SSL_* calls. */
void sse__loadgen_tls_input(SSL *ssl, const char *p, size_t n);

/* Whether the send function failed since the last call (and clear it). */
int sse__loadgen_tls_send_failed(SSL *ssl);

/* ------------------------------------------------------------------------- loadgen_stats.c */

void sse__loadgen_hist_init(struct sse__loadgen_hist *h);
void sse__loadgen_hist_add(struct sse__loadgen_hist *h, uint64_t ns);
void sse__loadgen_hist_merge(struct sse__loadgen_hist *dst, const struct sse__loadgen_hist *src);
/* The value (upper edge of its bucket, ns) below which a fraction q of the samples lie. */
uint64_t sse__loadgen_hist_quantile(const struct sse__loadgen_hist *h, double q);
/* CLOCK_REALTIME / CLOCK_MONOTONIC in ns. */
uint64_t sse__loadgen_now_real(void);
uint64_t sse__loadgen_now_mono(void);
/* Subscribers on topic t when N subscribers are spread round-robin over T topics. */
uint64_t sse__loadgen_subs_on_topic(const struct sse__loadgen_config *c, uint64_t t);
/*
 * Merge the workers' counters and histograms (sh) and the publisher's numbers (rep->pub) into
 * rep: deliveries, fan-out completion, and the derived rates and totals. Reads only workers
 * that are done for their histograms.
 */
void sse__loadgen_collect(const struct sse__loadgen_config *c, const struct sse__loadgen_shared *sh,
                          struct sse__loadgen_report *rep);

/* ------------------------------------------------------------------------- loadgen_probe.c */

/* Rss and Pss of pids[0..n) from /proc/PID/smaps_rollup, summed; {-1, -1} when n is 0 or one
 * cannot be read. */
struct sse__loadgen_mem sse__loadgen_read_mem(const int *pids, int n);
/* utime + stime of pids[0..n) in seconds, or -1. */
double sse__loadgen_read_cpu(const int *pids, int n);
/* Append the child processes of pids[0..n) (and theirs) to pids, up to SSE__LOADGEN_MAX_PIDS in
 * all. Returns the new count. */
int sse__loadgen_add_children(int *pids, int n);

#endif
