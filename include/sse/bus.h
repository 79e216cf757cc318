/**
 * bus.h: how an accepted update reaches every other hub instance, and theirs reach this one.
 *
 * Several hubs (worker processes on one machine, nodes over Redis) must apply the same updates
 * in one order, so that ids and Last-Event-ID mean the same everywhere. A hub with a bus does not
 * apply an update it accepted: it encodes it into a bus message (sse_bus_msg_encode), publishes
 * it on the bus, and applies what the bus hands back (its own messages included) in the bus's
 * order. The bus carries messages as opaque bytes; their format is defined here once, versioned
 * and in a fixed (big-endian) byte order, so it may cross machines and outlive a process.
 *
 * Backends fill sse_bus_ops: in-process (sse_bus_inproc_*, tests and embedders with several hubs
 * on one loop), pipe (sse_bus_pipe_*, the workers of `ssehub serve --workers`, with the
 * sequencer that orders them), Redis later. All calls happen on the bus's loop thread; a call
 * that returns an error never fires its callback.
 */
#ifndef SSE_BUS_H
#define SSE_BUS_H

#include <sse/buf.h>
#include <sse/error.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sse_bus sse_bus;
struct sse_store;

/** Flags of a received message. */
enum {
    SSE_BUS_HISTORY = 1 /* history handed to a (re)started member: store it, do not fan out */
};

/** Completion of publish: 0 once the bus has taken the message, or a negative error. */
typedef void (*sse_bus_publish_cb)(void *user_data, int status);
/** One message in the bus's order (borrowed for the call). flags: SSE_BUS_*. */
typedef void (*sse_bus_receive_cb)(void *user_data, const void *msg, size_t len, unsigned flags);
/** End of close: nothing will be received any more and the bus is freed. */
typedef void (*sse_bus_close_cb)(void *user_data);

/** Presence (see the presence ops): one entry, key and value as opaque bytes. */
typedef void (*sse_bus_presence_put_cb)(void *ctx, const char *key, size_t key_len, const char *val,
                                        size_t val_len);
/** Called by the bus to enumerate this member's entries through put. */
typedef void (*sse_bus_presence_dump_cb)(void *ud, sse_bus_presence_put_cb put, void *ctx);
/** One entry of another member (borrowed for the call). */
typedef void (*sse_bus_presence_each_cb)(void *ud, const char *key, size_t key_len, const char *val,
                                         size_t val_len);
/** End of a listing: 0, or a negative error (the listing is partial). */
typedef void (*sse_bus_presence_done_cb)(void *ud, int status);

/** The vtable every backend fills. */
typedef struct sse_bus_ops {
    int version;      /* SSE_BUS_OPS_VERSION */
    const char *name; /* "inproc", "pipe", "redis" */
    /* Start delivering messages to receive (at most once per bus). 0 or a negative error. */
    int (*start)(sse_bus *b, sse_bus_receive_cb receive, void *ud);
    /*
     * Publish msg (copied). done (not NULL) fires once: 0 when the bus has taken it (the message
     * then comes back through receive on every member), or an error (it will not come back).
     * Returns 0, or a negative error and no callback (e.g. SSE_EBUSY: the bus is backed up).
     */
    int (*publish)(sse_bus *b, const void *msg, size_t len, sse_bus_publish_cb done, void *ud);
    /* Stop receiving, fail what is in flight, free the bus, then done (may be NULL). */
    void (*close)(sse_bus *b, sse_bus_close_cb done, void *ud);

    /* ---- presence (optional, version >= 2; NULL: the bus has no shared view, e.g. inproc) */

    /*
     * Make this member's presence entries visible to the other members (the subscriptions of
     * its subscribers, for the subscriptions API). dump(ud, put, ctx) must call put(ctx, ...)
     * once per current entry: the bus calls it whenever it must write the whole set again (at
     * start, after a reconnect). Entries of a member that stops refreshing (a dead node)
     * disappear by themselves after the backend's expiry. 0 or a negative error.
     */
    int (*presence_start)(sse_bus *b, sse_bus_presence_dump_cb dump, void *ud);
    /* Add or replace (val != NULL) or remove (val == NULL) one of this member's entries. Best
       effort: while the backend is unreachable nothing is sent, and the next dump catches up. */
    int (*presence_set)(sse_bus *b, const char *key, size_t key_len, const char *val,
                        size_t val_len);
    /*
     * List the entries of every OTHER live member: each(ud, ...) per entry (borrowed for the
     * call), then done(ud, status) once (0, or a negative error: what was listed is partial).
     * Returns 0 (done will fire, never inside this call) or a negative error (no callback).
     */
    int (*presence_list)(sse_bus *b, sse_bus_presence_each_cb each, sse_bus_presence_done_cb done,
                         void *ud);
    /*
     * Optional (NULL: always healthy). 1 if updates can travel now, else 0 and *why (a short
     * static reason, e.g. a lost connection). Cheap, on the loop: what /readyz asks.
     */
    int (*healthy)(const sse_bus *b, const char **why);
} sse_bus_ops;

#define SSE_BUS_OPS_VERSION 2

/** The header of every bus object: backends embed it first. */
struct sse_bus {
    const sse_bus_ops *ops;
    /*
     * Set by a backend around its receive callback (0 otherwise, as allocated): the position the
     * shared history store gave the message being received (the pipe bus with an LMDB
     * sequencer: the file position of its commit). A hub whose store follows that file (an LMDB
     * follower, store_lmdb.h) appends the update at that position instead of writing it.
     */
    uint64_t rx_position;
};

/** Dispatch helpers: the same as calling through b->ops. */
SSE_API int sse_bus_start(sse_bus *b, sse_bus_receive_cb receive, void *ud);
SSE_API int sse_bus_publish(sse_bus *b, const void *msg, size_t len, sse_bus_publish_cb done,
                            void *ud);
/** 1 if the bus is healthy (see sse_bus_ops.healthy), else 0 and *why. */
SSE_API int sse_bus_healthy(const sse_bus *b, const char **why);
/** Inside the receive callback: the message's store position (sse_bus.rx_position), or 0. */
SSE_API uint64_t sse_bus_received_position(const sse_bus *b);
/** Close through the vtable (asynchronous; done may be NULL). Accepts NULL. */
SSE_API void sse_bus_close(sse_bus *b, sse_bus_close_cb done, void *ud);
/** Whether b shares presence between members (its ops have the presence calls). */
SSE_API int sse_bus_has_presence(const sse_bus *b);
/** The presence calls through the vtable; SSE_EUNSUPPORTED when the bus has none. */
SSE_API int sse_bus_presence_start(sse_bus *b, sse_bus_presence_dump_cb dump, void *ud);
SSE_API int sse_bus_presence_set(sse_bus *b, const char *key, size_t key_len, const char *val,
                                 size_t val_len);
SSE_API int sse_bus_presence_list(sse_bus *b, sse_bus_presence_each_cb each,
                                  sse_bus_presence_done_cb done, void *ud);

/* ------------------------------------------------------------------ the message */

/**
 * Message format, version 1. All integers big-endian; lengths in bytes.
 *
 *     offset size  field
 *          0    4  magic "SSEB"
 *          4    1  version (1)
 *          5    1  flags: 1 = private, 2 = not for the history (fanned out, never stored)
 *          6    2  number of topics (>= 1)
 *          8    8  origin: random per hub instance (who may answer the publisher)
 *         16    8  token: the publishing request on that instance (0 = none waits)
 *         24    8  publication time, ms since the epoch (signed)
 *         32    4  id length
 *         36    4  frame length
 *         40       topics: each u32 length + bytes; then the id; then the frame
 *
 * The frame is the update's exact event-stream bytes, encoded once by the publishing hub; every
 * receiver stores and sends those bytes as they are. A receiver refuses (SSE_EPROTO) a message
 * with another magic or version, unknown flags, no topic, a NUL byte in a topic or the id,
 * trailing bytes, or lengths that do not add up.
 */
enum { SSE_BUS_MSG_VERSION = 1, SSE_BUS_MSG_HEADER = 40 };

/** One update as the bus carries it. Strings are byte ranges; decoded topics are NUL-terminated. */
typedef struct sse_bus_msg {
    uint64_t origin;
    uint64_t token;
    long long time_ms;
    int is_private;
    int no_history; /* fanned out but never stored (subscription events) */
    const char *id;
    size_t id_len;
    const char *const *topics;
    size_t n_topics;
    const char *frame; /* event-stream bytes */
    size_t frame_len;
} sse_bus_msg;

/** Append the encoding of m to out. 0, SSE_ELIMIT (a field too long for the format, or out's
 * cap) or SSE_ENOMEM; out may hold part of the message on failure. */
SSE_API int sse_bus_msg_encode(sse_buf *out, const sse_bus_msg *m);
/**
 * Decode msg. On success *out (free with sse_bus_msg_free) holds copies: NUL-terminated topics
 * and id, and the frame bytes. Returns 0, SSE_EPROTO (malformed) or SSE_ENOMEM.
 */
SSE_API int sse_bus_msg_decode(const void *msg, size_t len, sse_bus_msg **out);
/** Free a decoded message. Accepts NULL. */
SSE_API void sse_bus_msg_free(sse_bus_msg *m);
/** The size of a message with these field lengths (topic_bytes: sum of topic lengths). */
SSE_API size_t sse_bus_msg_size(size_t n_topics, size_t topic_bytes, size_t id_len,
                                size_t frame_len);

/* ------------------------------------------------------------------ in-process bus */

/**
 * An in-process bus: every member created on the same group receives every message published by
 * any member, in one order, from the loop (never inside publish). For tests and for embedders
 * running several hubs on one loop. sse_bus_inproc_group_new makes the group (free it with
 * sse_bus_inproc_group_free after every member closed); sse_bus_inproc_new adds a member.
 * Returns 0, SSE_EINVAL or SSE_ENOMEM.
 */
typedef struct sse_bus_inproc_group sse_bus_inproc_group;
SSE_API int sse_bus_inproc_group_new(sse_bus_inproc_group **out, uv_loop_t *loop);
SSE_API void sse_bus_inproc_group_free(sse_bus_inproc_group *g);
SSE_API int sse_bus_inproc_new(sse_bus **out, sse_bus_inproc_group *g);
/** Make the group refuse every publish with err (0: accept again). For fault tests. */
SSE_API void sse_bus_inproc_group_fail(sse_bus_inproc_group *g, int err);

/* ------------------------------------------------------------------ pipe bus (--workers) */

/**
 * The member's end of a pipe to a sequencer (sse_bus_seq below), as used by the workers of
 * `ssehub serve --workers`. fd: a connected Unix stream socket (the bus owns it from now on);
 * max_message: the largest message; queue_max: bytes queued toward the sequencer before
 * publish answers SSE_EBUSY. on_lost (may be NULL) is called once if the sequencer goes away.
 */
typedef struct sse_bus_pipe_options {
    int version; /* SSE_BUS_PIPE_OPTIONS_VERSION */
    uv_loop_t *loop;
    int fd;
    size_t max_message;
    size_t queue_max; /* 0: 64 MiB */
    void (*on_lost)(void *ud);
    void *on_lost_data;
} sse_bus_pipe_options;
#define SSE_BUS_PIPE_OPTIONS_VERSION 1
#define SSE_BUS_PIPE_OPTIONS_INIT                                                                  \
    {                                                                                              \
        SSE_BUS_PIPE_OPTIONS_VERSION, NULL, -1, 0, 0, NULL, NULL                                   \
    }

SSE_API int sse_bus_pipe_new(sse_bus **out, const sse_bus_pipe_options *o);
/**
 * Read the history the sequencer sends first, blocking, before the bus is started: each message
 * is appended to store (borrowed; a store that completes appends before returning, such as the
 * memory store). Returns 0 at the end mark, SSE_EPROTO, SSE_EIO or the store's error.
 */
SSE_API int sse_bus_pipe_load_history(sse_bus *b, struct sse_store *store);
/**
 * After sse_bus_pipe_load_history: the position the sequencer had relayed up to when this member
 * attached, when it runs with followers (sse_bus_seq_options.followers: no history was sent, the
 * member reads it from the store's file). 0 and *pos, or SSE_ENOTFOUND (a history was sent).
 */
SSE_API int sse_bus_pipe_history_position(const sse_bus *b, uint64_t *pos);
/** Tell the sequencer this member is ready (listening). 0 or a negative error. */
SSE_API int sse_bus_pipe_ready(sse_bus *b);

/**
 * The sequencer: one per machine, it orders the messages of N members. It reads each member's
 * messages and relays them, in the order read, to every member; it keeps the history in a store
 * (store.h, borrowed; the entries carry the messages) and hands it to a member when it attaches.
 * It does no I/O waiting of its own: its owner polls the member fds (sse_bus_seq_fd,
 * sse_bus_seq_wants_write) and calls sse_bus_seq_io, so it fits any event loop or a plain poll().
 */
typedef struct sse_bus_seq sse_bus_seq;
typedef struct sse_bus_seq_options {
    int version; /* SSE_BUS_SEQ_OPTIONS_VERSION */
    int n_members;
    size_t max_message;
    size_t queue_max;        /* bytes queued to one member before it is dropped */
    struct sse_store *store; /* the history (borrowed, required) */
    /* A member sent something that is not a message, or does not drain: the owner should end
       it (the sequencer has already detached it). */
    void (*on_drop)(void *ud, int member, const char *why);
    /* A member said it is ready (sse_bus_pipe_ready). */
    void (*on_ready)(void *ud, int member);
    void *ud;
    /*
     * 1: the members read the history from the store's file themselves (LMDB followers,
     * store_lmdb.h). A member that attaches is then sent no history, only the end mark carrying
     * the position relayed so far, and every relayed update carries the position the store's
     * append reported (sse_bus_received_position on the member). 0: the history is handed over.
     */
    int followers;
    uint64_t position; /* followers: the store's newest position when the sequencer starts */
} sse_bus_seq_options;
#define SSE_BUS_SEQ_OPTIONS_VERSION 1

SSE_API int sse_bus_seq_new(sse_bus_seq **out, const sse_bus_seq_options *o);
/** Attach member k on fd (made non-blocking; owned from now on): the history is queued to it
 * first. 0, SSE_ENOMEM, SSE_EINVAL, or SSE_EUNSUPPORTED when the store replays later than its
 * replay call returns (the history could not be queued ahead of live messages). */
SSE_API int sse_bus_seq_attach(sse_bus_seq *q, int k, int fd);
/** Detach member k and close its fd (it exited). */
SSE_API void sse_bus_seq_detach(sse_bus_seq *q, int k);
/** Member k's fd (-1: detached) and whether it has bytes waiting to be written. */
SSE_API int sse_bus_seq_fd(const sse_bus_seq *q, int k);
SSE_API int sse_bus_seq_wants_write(const sse_bus_seq *q, int k);
/** Member k's fd is readable and/or writable: read and relay, write what is queued. */
SSE_API void sse_bus_seq_io(sse_bus_seq *q, int k, int readable, int writable);
/** Free (detaches every member). Close the store first if it may still report appends in
 * flight: those are dropped here. Accepts NULL. */
SSE_API void sse_bus_seq_free(sse_bus_seq *q);

#ifdef __cplusplus
}
#endif
#endif
