/**
 * bus_redis.h: the Redis bus — many hub nodes sharing one order and one history through Redis
 * Streams (docs/REDIS.md).
 *
 * publish is an XADD (approximate MAXLEN) of the bus message (bus.h) to a stream; every node
 * reads the stream with XREAD BLOCK from the last entry it has seen and hands each entry to the
 * hub in stream order, its own included, so every node applies every update once and in the
 * same order. The stream is the shared history: a node loads it into its own store before it
 * serves (sse_bus_redis_load_history), and Last-Event-ID replays on every node from that copy.
 *
 * hiredis on the caller's libuv loop (its libuv adapter): one connection for commands and one for
 * the blocking read per Redis instance; nothing blocks the loop except the start-up history load,
 * which runs before the loop does. A lost connection is retried with backoff and jitter; the
 * reader resumes after the last entry it handed over (nothing skipped, nothing twice). While the
 * command connection is down, publish fails (the hub answers 503).
 *
 * Sharding: with several URLs, each topic's hash (FNV-1a of the update's first topic) picks one
 * instance and its stream; order holds per stream (docs/REDIS.md). With a Redis Cluster, the
 * topic's hash picks one of n_shards stream keys, each on the master owning its slot.
 *
 * Presence (bus.h's presence calls: the subscriptions API across nodes): each node keeps its
 * entries in a hash "KEY:presence:NODE" with an expiry it refreshes, and registers in a sorted
 * set "KEY:nodes" scored by when its registration expires; both live with the first shard (in a
 * cluster under the hash tag of "KEY:{0}"). A node that dies drops out after presence_ttl_ms.
 */
#ifndef SSE_BUS_REDIS_H
#define SSE_BUS_REDIS_H

#include <sse/bus.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Options of sse_bus_redis_new. Zero fields take the defaults. */
typedef struct sse_bus_redis_options {
    int version; /* SSE_BUS_REDIS_OPTIONS_VERSION */
    uv_loop_t *loop;
    /* redis://[user:pass@]HOST[:PORT][/DB], n_urls of them (>= 1; at most 64): one shard each.
       HOST should be an address: a name is resolved by a blocking lookup at each connect. */
    const char *const *urls;
    size_t n_urls;
    const char *key;    /* stream key (one shard) or key prefix ("KEY:N"); NULL: "ssehub:updates" */
    size_t max_len;     /* approximate MAXLEN of each stream; 0: not trimmed by Redis */
    size_t max_message; /* the largest message accepted or read (larger entries are skipped) */
    size_t
        queue_max; /* bytes of XADDs awaiting Redis before publish answers SSE_EBUSY; 0: 64 MiB */
    unsigned block_ms; /* XREAD BLOCK timeout; 0: 1000 */
    /* Redis Cluster: urls are seed nodes; n_shards stream keys "KEY:{i}" (hash tags spread them
       over the masters), each read from the master that owns its slot (MOVED followed). */
    int cluster;
    size_t n_shards; /* cluster only; 0: 16 */
    /* Diagnostics (may be NULL): level is SSE_LOG_* (log.h); line borrowed for the call. */
    void (*log)(void *ud, int level, const char *line);
    void *log_data;
    /* Presence (bus.h): how long a node's entries outlive its last refresh (it refreshes every
       third of this); 0: 15000 ms. */
    unsigned presence_ttl_ms;
    /* Entries older than this (by their id's time) are trimmed from each stream, once a second
       (XTRIM MINID); 0: no age limit. */
    unsigned max_age_ms;
} sse_bus_redis_options;
#define SSE_BUS_REDIS_OPTIONS_VERSION 1
#define SSE_BUS_REDIS_OPTIONS_INIT                                                                 \
    {                                                                                              \
        SSE_BUS_REDIS_OPTIONS_VERSION, NULL, NULL, 0, NULL, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0     \
    }

/**
 * Create a Redis bus (nothing is connected until sse_bus_redis_load_history or start). Returns 0
 * and *out (close with sse_bus_close), SSE_EINVAL (no loop, no URL, a URL that does not parse,
 * too many URLs) or SSE_ENOMEM.
 */
SSE_API int sse_bus_redis_new(sse_bus **out, const sse_bus_redis_options *o);

/**
 * Read every stream's history into store (borrowed; a store that completes appends before
 * returning, such as the memory store), oldest first, BLOCKING (a synchronous connection with a
 * 5 s timeout): call it before the loop runs and before the bus is started. The reader then
 * resumes after the last entry loaded. Messages not for the history (bus.h flag 2) and entries
 * that do not decode are skipped (logged). Returns 0, SSE_EIO (Redis unreachable or the
 * connection failed), SSE_EAUTH (AUTH or SELECT refused), SSE_EPROTO (the key holds another type),
 * SSE_EINVAL (already started) or the store's error.
 */
SSE_API int sse_bus_redis_load_history(sse_bus *b, struct sse_store *store);

/** Counters of a Redis bus (for /metrics and tests). */
typedef struct sse_bus_redis_stats {
    unsigned long long published; /* XADDs acknowledged */
    unsigned long long refused;   /* publishes refused or failed (down, queue full, error) */
    unsigned long long received;  /* entries handed to the hub */
    unsigned long long skipped;   /* entries skipped (garbage, oversized) */
    unsigned long long reconnects;
    int connected;            /* every shard has both connections up */
    unsigned long long asked; /* XADDs sent again to a migrating slot's new node (ASK) */
} sse_bus_redis_stats;
SSE_API void sse_bus_redis_get_stats(const sse_bus *b, sse_bus_redis_stats *out);

#ifdef __cplusplus
}
#endif
#endif
