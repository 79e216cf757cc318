/**
 * store_lmdb.h: durable history in an LMDB file, behind store.h.
 *
 * The store keeps every update in a local LMDB environment (a directory holding data.mdb,
 * lock.mdb and ssehub.lock). Appends are queued from the loop to one writer thread, which takes
 * everything queued since its last commit and commits it in one transaction (group commit),
 * trims by count, bytes and age in the same transaction, and only then completes each append on
 * the loop (in append order). So an append's callback reporting 0 means: committed (and, in the
 * default sync mode, on the disk). Replays that a small in-memory cache of the newest entries
 * cannot answer run in read transactions on a reader thread and reach the loop in bounded
 * batches. docs/STORE.md describes the record layout and the threads.
 *
 * Only one process may open a path: the second is refused (SSE_EBUSY) with a message. A file that
 * is not an ssehub history is refused (SSE_EPROTO), never overwritten. A process forked while a
 * store is open may only close it (sse_store_free): that lets go of the child's copy (its lock
 * descriptor) without touching the parent's threads or file.
 */
#ifndef SSE_STORE_LMDB_H
#define SSE_STORE_LMDB_H

#include <sse/store.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Durability of a commit. */
enum {
    SSE_STORE_LMDB_SYNC = 0,  /* fdatasync at every commit (the default): nothing acknowledged is
                                 lost, even by a power cut */
    SSE_STORE_LMDB_NOSYNC = 1 /* the OS writes back (flushed at least every second): a process
                                 crash loses nothing, a power cut may lose the last second */
};

/** Options of sse_store_lmdb_new; zero fields take the defaults shown. */
typedef struct sse_store_lmdb_options {
    int version;             /* SSE_STORE_LMDB_OPTIONS_VERSION */
    uv_loop_t *loop;         /* the loop the store's callbacks run on (required) */
    const char *path;        /* directory of the environment (required; created if missing) */
    sse_store_limits limits; /* as the memory store; all 0: 1000 updates, 16 MiB */
    int sync;                /* SSE_STORE_LMDB_SYNC (default) or SSE_STORE_LMDB_NOSYNC */
    size_t map_size;         /* bytes; 0: 4 x limits.max_bytes + 64 MiB (1 GiB without a byte
                                limit), see docs/OPERATIONS.md */
    size_t cache_count;      /* newest entries kept in memory too (replays of recent history and
                                shared frames); 0: 1024, never above limits.max_count */
    size_t cache_bytes;      /* bound of that cache; 0: 8 MiB */
    char *errbuf;            /* optional: why opening failed, as a sentence */
    size_t errbuf_len;
    int cached_replay; /* 1: replay, replay_from and scan_back answer from the cache only,
                          before they return (the --workers sequencer hands a new worker
                          the history at once); size the cache like the history then */
    int follower;      /* 1: a read-only follower of a history another process writes (the
                          workers of --workers): see sse_store_lmdb_follow */
} sse_store_lmdb_options;

#define SSE_STORE_LMDB_OPTIONS_VERSION 1
#define SSE_STORE_LMDB_OPTIONS_INIT                                                                \
    {                                                                                              \
        SSE_STORE_LMDB_OPTIONS_VERSION, NULL, NULL, {0, 0, 0}, 0, 0, 0, 0, NULL, 0, 0, 0           \
    }

/**
 * Open (or create) the history at o->path and start its threads. Returns 0 and *out (close it
 * with sse_store_close and run the loop until done fires; sse_store_free does not wait), or:
 * SSE_EINVAL (options), SSE_EBUSY (another process holds the path), SSE_EPROTO (the path holds
 * something that is not an ssehub history, or a newer layout), SSE_EAUTH (permission denied),
 * SSE_EIO (another I/O error), SSE_ENOMEM. On failure o->errbuf (if given) says why, naming the
 * path, and nothing on disk was changed except a missing directory and lock file created.
 */
SSE_API int sse_store_lmdb_new(sse_store **out, const sse_store_lmdb_options *o);

/*
 * The follower (o->follower = 1): a worker of `ssehub serve --workers` reading the history that
 * the master's store writes (docs/WORKERS.md). It opens the environment with MDB_RDONLY in its
 * own MDB_env (its own reader slots in LMDB's lock file), takes no ssehub.lock, creates nothing
 * and never writes; the directory must hold a history already (SSE_EPROTO otherwise). Its
 * appends write nothing: the entry's position (sse_store_entry.position, the one the writer's
 * commit gave it, relayed by the sequencer) is taken as it is, the entry joins the small cache
 * and the callback reports that position before append returns (0 is refused: SSE_EINVAL).
 * Every replay, replay after an id and scan_back runs on the reader thread, in read
 * transactions of the file (so the writer's trimming is seen exactly: a trimmed id is unknown),
 * streamed in batches; none delivers an entry past the newest position appended here, which
 * reaches the hub live instead. trim() is SSE_EUNSUPPORTED (the writer trims). The counts
 * (stats) follow the file within a second.
 */

/** Follower: the newest position already relayed when it attached (entries after it will be
 * appended). Call once, before any append. 0, or SSE_EINVAL (not a follower). */
SSE_API int sse_store_lmdb_follow(sse_store *s, uint64_t relayed);

/** The newest position whose append completed on the loop (what a sequencer has relayed). */
SSE_API uint64_t sse_store_lmdb_position(const sse_store *s);

/**
 * Clear the reader slots of processes that died (a SIGKILLed follower) so that the pages they
 * held can be reused: mdb_reader_check. *dead: how many were cleared. 0 or an error.
 */
SSE_API int sse_store_lmdb_reader_check(sse_store *s, int *dead);

/**
 * Around fork() in a process whose store is open (the --workers master): hold holds the store's
 * threads in their waits (holding no lock of libc or the allocator at the fork); release, in the
 * parent after fork, lets them go on. The child must not use the store. No-ops on other stores
 * and in another process than the one that opened it.
 */
SSE_API void sse_store_lmdb_fork_hold(sse_store *s);
SSE_API void sse_store_lmdb_fork_release(sse_store *s);

/** The map size sse_store_lmdb_new picks for these limits when map_size is 0. */
SSE_API size_t sse_store_lmdb_default_map_size(const sse_store_limits *lim);

#ifdef __cplusplus
}
#endif
#endif
