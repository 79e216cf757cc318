/**
 * store.h: the history of a Mercure hub, behind a small vtable.
 *
 * A store keeps published updates in order so that a subscriber that reconnects can be sent what
 * it missed. Each update is kept as its encoded wire frame (shared, never copied) plus the
 * metadata the hub needs to re-check a replay: its id, its topics and its private flag.
 *
 * Backends implement sse_store_ops. The calls are asynchronous: a completion callback reports
 * the result; an in-memory backend calls it before returning, a disk or network backend later
 * (from the loop the store belongs to, possibly out of turn). A call that returns an error never
 * fires its callback. The memory backend (sse_store_memory_new) is the default.
 *
 * The contract the hub relies on (tests/store/ checks it for every backend):
 * - append's callback reports 0 only once the entry is kept (for a durable store: committed);
 *   positions grow in the order append was called. The hub answers a publisher and fans the
 *   update out only then, and answers 503 without fanning out when the append fails.
 * - replay and scan_back see every append whose callback reported success.
 * - each backend's own settings (limits, paths) are given to its constructor, never to the hub.
 * - close is asynchronous: calls in flight complete (or fail) first, then done fires.
 *
 * Ownership: entries passed to append are copied (the frame gets a new reference); entries
 * handed to callbacks are borrowed for the duration of the call.
 */
#ifndef SSE_STORE_H
#define SSE_STORE_H

#include <sse/buf.h>
#include <sse/error.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sse_store sse_store;

/** One update as the store sees it. Strings are byte ranges; topics[i] are NUL-terminated. */
typedef struct sse_store_entry {
    const char *id; /* the update's id (unique key for replay) */
    size_t id_len;
    const char *const *topics; /* canonical topic first, then alternates (draft-07) */
    size_t n_topics;
    int is_private;    /* 1: re-check the subscriber's grants on replay */
    sse_frame *frame;  /* the encoded event; the store takes its own reference */
    long long time_ms; /* publication time, ms since the epoch (for age trimming) */
    uint64_t position; /* set by the store (append order, starting at 1); in append: 0, or
                          the position a shared store already gave the entry (a bus relay),
                          which a follower store (store_lmdb.h) keeps; other stores ignore it */
} sse_store_entry;

/** Limits a store trims itself to after every append; 0 = no limit of that kind. */
typedef struct sse_store_limits {
    size_t max_count;     /* updates kept */
    size_t max_bytes;     /* sum of frame sizes + metadata kept */
    long long max_age_ms; /* updates older than this are dropped */
} sse_store_limits;

/** Completion of append: status 0 and the position, or a negative error. */
typedef void (*sse_store_append_cb)(void *user_data, int status, uint64_t position);
/** One replayed entry. Return 0 to go on, non-zero to stop the replay. */
typedef int (*sse_store_entry_cb)(void *user_data, const sse_store_entry *e);
/**
 * End of replay. status 0 or a negative error. found: 1 if the requested id was in the
 * history (or "earliest" was asked), 0 if it was not (nothing was replayed then).
 */
typedef void (*sse_store_done_cb)(void *user_data, int status, int found);

/** The vtable every backend fills. All calls happen on the store's loop thread. */
typedef struct sse_store_ops {
    int version;      /* SSE_STORE_OPS_VERSION */
    const char *name; /* "memory", "lmdb", "redis" */
    /* Append e (copied); cb (may be NULL) reports the position. */
    int (*append)(sse_store *s, const sse_store_entry *e, sse_store_append_cb cb, void *ud);
    /*
     * Replay the entries after the one whose id is after_id (after_id NULL: from the earliest
     * entry kept), oldest first, each through each(); then done() once.
     */
    int (*replay)(sse_store *s, const char *after_id, size_t after_len, sse_store_entry_cb each,
                  sse_store_done_cb done, void *ud);
    /*
     * Walk backwards from the entry whose id is id (included), newest first, at most max
     * entries. found (in done) as for replay. Used for the draft-08 Last-Event-ID response.
     */
    int (*scan_back)(sse_store *s, const char *id, size_t id_len, size_t max,
                     sse_store_entry_cb each, sse_store_done_cb done, void *ud);
    /* The id of the newest entry, copied into out (reset first); SSE_ENOTFOUND when empty. */
    int (*last_id)(sse_store *s, sse_buf *out);
    /* Drop entries beyond the limits now (0 fields: that limit is not applied). */
    int (*trim)(sse_store *s, const sse_store_limits *lim, long long now_ms);
    /* Entries and bytes held. */
    void (*stats)(const sse_store *s, size_t *count, size_t *bytes);
    /*
     * Stop taking calls; complete or fail every call in flight; free everything; then done
     * (may be NULL) fires, on the loop or before close returns.
     */
    void (*close)(sse_store *s, void (*done)(void *ud), void *ud);
    /*
     * Optional (NULL: not offered). Replay the entries whose position is after after_position,
     * oldest first, as replay does; found (in done) is 0 when entries after after_position were
     * trimmed meanwhile (a gap). The hub uses it to continue a replay in slices, one per loop
     * turn, so that no replay holds the loop.
     */
    int (*replay_from)(sse_store *s, uint64_t after_position, sse_store_entry_cb each,
                       sse_store_done_cb done, void *ud);
    /*
     * Optional (NULL: always healthy). 1 if the store can take appends now, else 0 and *why (a
     * short static reason). Cheap, on the loop: what /readyz asks on every probe.
     */
    int (*healthy)(const sse_store *s, const char **why);
} sse_store_ops;

#define SSE_STORE_OPS_VERSION 2

/** The header of every store object: backends embed it first. */
struct sse_store {
    const sse_store_ops *ops;
};

/** Dispatch helpers: the same as calling through s->ops. */
SSE_API int sse_store_append(sse_store *s, const sse_store_entry *e, sse_store_append_cb cb,
                             void *ud);
SSE_API int sse_store_replay(sse_store *s, const char *after_id, size_t after_len,
                             sse_store_entry_cb each, sse_store_done_cb done, void *ud);
/** Replay after a position (see sse_store_ops.replay_from); SSE_EUNSUPPORTED if not offered. */
SSE_API int sse_store_replay_from(sse_store *s, uint64_t after_position, sse_store_entry_cb each,
                                  sse_store_done_cb done, void *ud);
SSE_API int sse_store_scan_back(sse_store *s, const char *id, size_t id_len, size_t max,
                                sse_store_entry_cb each, sse_store_done_cb done, void *ud);
SSE_API int sse_store_last_id(sse_store *s, sse_buf *out);
SSE_API int sse_store_trim(sse_store *s, const sse_store_limits *lim, long long now_ms);
SSE_API void sse_store_stats(const sse_store *s, size_t *count, size_t *bytes);
/** 1 if the store is healthy (see sse_store_ops.healthy), else 0 and *why. */
SSE_API int sse_store_healthy(const sse_store *s, const char **why);
/** Close a store through its vtable (asynchronous; done may be NULL). Accepts NULL. */
SSE_API void sse_store_close(sse_store *s, void (*done)(void *ud), void *ud);
/** sse_store_close without a completion: for callers that need not know when it is done. */
SSE_API void sse_store_free(sse_store *s);

/**
 * The in-memory store: a ring of frame references plus a hash id -> position, trimmed to lim
 * after every append (lim may be NULL: 1000 updates, 16 MiB; a 0 field: that limit is not
 * applied). Every call completes before it returns. Returns 0 and *out (close with
 * sse_store_close or sse_store_free), or SSE_ENOMEM.
 */
SSE_API int sse_store_memory_new(sse_store **out, const sse_store_limits *lim);

#ifdef __cplusplus
}
#endif
#endif
