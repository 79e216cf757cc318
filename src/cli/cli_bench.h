/*
 * cli_bench.h: the pieces of `ssehub bench` shared between its files (CLI-internal, not part of
 * libsse): the configuration, the latency histogram, the shared-memory result area that worker
 * processes fill in, and the two engines (subscribers in cli_bench_sub.c, the publisher in
 * cli_bench_pub.c). cmd_bench.c owns option parsing, the processes and the report.
 */
#ifndef SSE_CLI_BENCH_H
#define SSE_CLI_BENCH_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define BENCH_MAX_PROCS 64
#define BENCH_MAX_SOURCES 250
/* Log-linear histogram of nanoseconds: 64 exact buckets, then 32 per power of two (~3 %). */
#define BENCH_HIST_SUB 32
#define BENCH_HIST_BUCKETS (64 + 44 * BENCH_HIST_SUB)

enum bench_target { BENCH_MERCURE = 0, BENCH_NCHAN = 1, BENCH_PLAIN = 2 };
enum bench_phase { BENCH_PHASE_CONNECT = 0, BENCH_PHASE_RUN = 1, BENCH_PHASE_STOP = 2 };

struct bench_hist {
    uint64_t count;
    uint64_t sum; /* ns */
    uint64_t min; /* ns; UINT64_MAX while empty */
    uint64_t max; /* ns */
    uint64_t b[BENCH_HIST_BUCKETS];
};

/* A parsed http:// URL with its resolved address. */
struct bench_url {
    char host[256]; /* as written, without brackets */
    int port;
    char path[1024];  /* "/..." without the query */
    char query[1024]; /* after '?', or "" */
    struct sockaddr_storage addr;
};

struct bench_config {
    int target;            /* enum bench_target */
    struct bench_url sub;  /* where subscribers connect */
    struct bench_url pub;  /* where the publisher posts */
    const char *token;     /* Bearer token for publishing (mercure), or NULL */
    const char *sub_token; /* Bearer token for subscribing, or NULL */
    const char *topic_prefix;
    unsigned subscribers;   /* N */
    unsigned topics;        /* T */
    double rate;            /* R messages per second, all topics together */
    double duration;        /* measured seconds of publishing */
    double warmup;          /* seconds of publishing before measuring */
    double idle;            /* seconds to wait idle before reading server memory */
    double connect_timeout; /* seconds allowed for all subscribers to connect */
    double drain;           /* seconds to wait for late deliveries after the last publish */
    unsigned sources;       /* source addresses 127.0.0.1 .. 127.0.0.<sources> */
    unsigned procs;         /* subscriber processes */
    unsigned concurrency;   /* connects in flight per process */
    unsigned pub_conns;     /* publisher keep-alive connections */
    unsigned payload;       /* data bytes per message (at least the ts/seq fields) */
    unsigned max_track;     /* messages tracked one by one (fan-out completion) */
    int use_parser;         /* 1: the project's parser per stream; 0: the data: scanner */
};

/* Counters of one subscriber process, in shared memory; written only by that process. */
struct bench_child {
    uint64_t connected;       /* streams that got 200 + headers */
    uint64_t failed;          /* connect errors, non-200 answers, EOF before headers */
    uint64_t dropped;         /* streams closed by the server after they were open */
    uint64_t events;          /* measured events received (w=0) */
    uint64_t warm_events;     /* warm-up events received */
    uint64_t bad_events;      /* events without a parsable ts=, and protocol errors */
    uint64_t bytes;           /* body bytes received */
    uint64_t last_connect_ns; /* CLOCK_MONOTONIC when its last stream opened */
    uint64_t first_error;     /* a negative libuv code or HTTP status of the first failure */
    int done;                 /* set when it has stopped and its numbers are final */
    struct bench_hist hist;   /* per-delivery latency of measured events */
};

/* One tracked message: how many subscribers got it and the latest receipt. */
struct bench_seq {
    uint32_t count;
    uint32_t pad_;
    uint64_t max_ns;
};

/* The shared-memory area (MAP_SHARED, created before fork). */
struct bench_shared {
    int phase; /* enum bench_phase, written by the parent */
    unsigned nprocs;
    struct bench_child child[BENCH_MAX_PROCS];
    struct bench_seq seq[]; /* config.max_track entries */
};

/* Publisher results (parent process only). */
struct bench_pub_stats {
    uint64_t sent;         /* requests written */
    uint64_t measured;     /* of which after warm-up */
    uint64_t ok;           /* 2xx answers */
    uint64_t errors;       /* non-2xx answers, connection errors */
    uint64_t behind;       /* times a message was due and no connection was free */
    uint64_t first_status; /* first non-2xx status or negative libuv code */
    uint64_t first_measured_seq;
    uint64_t end_seq;      /* one past the last sequence number sent */
    double seconds;        /* measured publishing time */
    struct bench_hist rtt; /* POST round trip, measured messages */
};

/* Incremental decoder of a chunked HTTP body. */
struct bench_chunked {
    uint8_t state;
    uint64_t left; /* bytes left in the current chunk, or the size being read */
};
/*
 * Feed n bytes of a chunked body; the payload is handed to out(ud, bytes, len). Returns 0 (more
 * expected), 1 when the last chunk and the trailer are done (*used says how many bytes were
 * consumed), or -1 on a malformed body.
 */
int bench_chunked_feed(struct bench_chunked *c, const char *p, size_t n, size_t *used,
                       void (*out)(void *ud, const char *bytes, size_t len), void *ud);

/* Histogram helpers. */
void bench_hist_init(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, uint64_t ns);
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* The value (upper edge of its bucket, ns) below which a fraction q of the samples lie. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);

/* Parse "http://host[:port]/path?query" (host: IPv4, [IPv6] or localhost). 0 or -EINVAL. */
int bench_url_parse(struct bench_url *u, const char *url);
/* CLOCK_REALTIME / CLOCK_MONOTONIC in ns. */
uint64_t bench_now_real(void);
uint64_t bench_now_mono(void);
/* Subscribers on topic t when N subscribers are spread round-robin over T topics. */
uint64_t bench_subs_on_topic(const struct bench_config *c, uint64_t t);

/*
 * Body of subscriber process number index (0-based) of c->procs: opens its share of the
 * subscribers, reports in sh->child[index], runs until sh->phase is BENCH_PHASE_STOP.
 * Returns 0, or a negative libuv code if the loop could not be set up.
 */
int bench_sub_run(const struct bench_config *c, struct bench_shared *sh, unsigned index);

/*
 * Publish for warmup + duration seconds at c->rate, then wait up to c->drain seconds for the
 * answers and for deliveries (sh) to come in. Fills *st. Returns 0 or a negative libuv code.
 */
int bench_pub_run(const struct bench_config *c, struct bench_shared *sh,
                  struct bench_pub_stats *st);

#endif
