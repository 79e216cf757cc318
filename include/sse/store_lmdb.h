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
} sse_store_lmdb_options;

#define SSE_STORE_LMDB_OPTIONS_VERSION 1
#define SSE_STORE_LMDB_OPTIONS_INIT                                                                \
    {                                                                                              \
        SSE_STORE_LMDB_OPTIONS_VERSION, NULL, NULL, {0, 0, 0}, 0, 0, 0, 0, NULL, 0, 0              \
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

/** The map size sse_store_lmdb_new picks for these limits when map_size is 0. */
SSE_API size_t sse_store_lmdb_default_map_size(const sse_store_limits *lim);

#ifdef __cplusplus
}
#endif
#endif
