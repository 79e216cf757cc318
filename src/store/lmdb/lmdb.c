/*
 * lmdb.c: the durable history backend of store.h, on LMDB (include/sse/store_lmdb.h).
 *
 * Three threads touch a store:
 *   the loop     takes the calls, builds each append's record, completes appends and replays;
 *   the writer   owns every write transaction: it takes all the appends queued since its last
 *                commit and commits them in ONE transaction (group commit), trims by count,
 *                bytes and age in that same transaction, then hands the results to the loop;
 *   the reader   answers the replays the loop's cache cannot, each batch in its own read
 *                transaction (MDB_NOTLS), at most BATCH_ENTRIES / BATCH_BYTES per batch.
 * Results come back through one list and one uv_async_t; callbacks only ever run on the loop,
 * appends' in append order.
 *
 * The cache: the newest completed entries also sit in a memory store (store/memory), so that a
 * subscriber reconnecting after a few seconds is answered without a disk read, and so that a
 * replayed entry the hub also holds live is the same frame (the hub drops such duplicates by
 * frame). Cache positions map to file positions by a constant offset (both are consecutive).
 *
 * On disk (docs/STORE.md): database "entries" maps a big-endian u64 position to a record,
 * "ids" maps an id (or, past ID_KEY_MAX bytes, its prefix and hash) to the position, and
 * "meta" holds the magic/layout version, the next position and the bytes kept.
 *
 * A follower (sse_store_lmdb_options.follower; the workers of --workers) has no writer: it opens
 * the environment read-only, takes each append's position as relayed from the writer's process
 * (nothing is written), answers every replay lookup from the file on the reader thread (so the
 * writer's trims are seen), and the reader thread refreshes the counts once a second.
 *
 * Not owned here: what an entry means (the hub), which loop the store is on (the caller).
 */
#include "common/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <sse/store_lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    REC_VERSION = 1,        /* first byte of every record */
    REC_HDR = 24,           /* fixed part of a record */
    LAYOUT_VERSION = 1,     /* of the whole file (meta "magic") */
    BATCH_ENTRIES = 512,    /* entries per replay batch from the disk */
    BATCH_BYTES = 4 << 20,  /* bytes per replay batch from the disk */
    ID_KEY_MAX = 400,       /* longer ids are keyed by their prefix and a 64-bit hash */
    MAX_COMMIT = 16384,     /* appends in one transaction at most */
    ENTRY_OVERHEAD = 16,    /* accounted per entry besides its record and keys */
    FLUSH_MS = 1000,        /* nosync: the file is flushed at least this often */
    QUEUE_BYTES = 64 << 20, /* records waiting for the writer; past it appends get SSE_EBUSY */
    DEFAULT_CACHE_COUNT = 1024,
    DEFAULT_CACHE_BYTES = 8 << 20
};

static const char MAGIC[] = "ssehub-history"; /* + u32 layout version */

/* An append on its way: built on the loop, committed by the writer, completed on the loop. */
struct op {
    struct op *next;
    sse_store_append_cb cb;
    void *ud;
    sse_frame *frame;   /* our reference, for the cache (touched on the loop only) */
    unsigned char *rec; /* the record (read by the writer) */
    size_t rec_len;
    int status;   /* set by the writer */
    uint64_t pos; /* set by the writer */
};

/* A replay batch the reader answers. */
enum { J_ID, J_EARLIEST, J_FROM, J_BACK };
struct jrec {
    uint64_t pos;
    size_t off, len; /* in blob */
};
struct job {
    struct job *next;
    int kind;
    char *id; /* J_ID, J_BACK (first batch) */
    size_t id_len;
    uint64_t pos;  /* J_FROM: after this; J_BACK continued: from this one down */
    size_t max;    /* J_BACK: entries still wanted */
    int found_set; /* a continued batch: found is known */
    int found;     /* result (or known) */
    int status;    /* result */
    int more;      /* result: the batch was full */
    struct jrec *recs;
    size_t n, cap;
    unsigned char *blob;
    size_t blob_len, blob_cap;
    sse_store_entry_cb each;
    sse_store_done_cb done;
    void *ud;
};

struct lmdb_store {
    sse_store base; /* must be first */
    uv_loop_t *loop;
    uv_async_t *async; /* results to the loop */
    char *path;
    int lock_fd;
    MDB_env *env;
    MDB_dbi db_meta, db_ent, db_ids;
    sse_store_limits lim;
    int nosync;
    int cached_replay;            /* replays from the cache only (sse_store_lmdb_options) */
    int follower;                 /* read-only, appends take the relayed position */
    pid_t pid;                    /* the process that opened it (a forked child only lets go) */
    struct lmdb_store *next_copy; /* in a forked child: the list of copies let go */
    /* Loop side. */
    sse_store *cache;   /* newest completed entries (NULL if it could not be made) */
    uint64_t cache_off; /* file position = cache position + cache_off */
    sse_store_limits cache_lim;
    uint64_t done_pos;   /* newest append completed on the loop */
    uint64_t first_pos;  /* oldest position kept (next position when empty) */
    size_t count, bytes; /* as of the last commit seen */
    char *last_id;       /* id of the newest completed entry */
    size_t last_id_len;
    int closing;
    int append_failing; /* the newest append completed on the loop failed (/readyz) */
    void (*close_done)(void *ud);
    void *close_ud;
    size_t inflight; /* appends and replay batches not yet delivered: the loop stays alive */
    int locks;       /* the mutexes and conditions exist */
    int joined;      /* the threads were joined */
    /* Writer (wmu). */
    uv_thread_t wthr;
    uv_mutex_t wmu;
    uv_cond_t wcv;
    struct op *wq_head, *wq_tail;
    struct op *w_batch; /* the batch being committed: reachable from here too, so that a copy
                           forked meanwhile (the --workers master forking a worker) holds no
                           memory only a thread of the parent knew (a leak checker's view) */
    size_t wq_bytes;    /* records queued (bounded by QUEUE_BYTES) */
    int wstop, wexited;
    int w_waiting; /* the writer is in its wait (holds nothing; see sse_store_lmdb_fork_hold) */
    sse_store_limits trim_lim; /* asked by trim() */
    long long trim_now;
    int trim_asked;
    uint64_t trim_seq, trim_done;      /* trims asked / committed (trim() waits for its own) */
    int trim_rc;                       /* the last trim's result */
    uv_cond_t tcv;                     /* a trim was committed */
    long long clock_entry, clock_mono; /* the age clock: the newest append's time, and when */
    uint64_t next_seq;                 /* writer-owned after open */
    uint64_t w_bytes;                  /* writer-owned after open */
    /* Reader (rmu). */
    uv_thread_t rthr;
    uv_mutex_t rmu;
    uv_cond_t rcv;
    struct job *rq_head, *rq_tail;
    struct job *r_job; /* the batch being read (see w_batch) */
    int rstop, rexited;
    int r_waiting; /* the reader is in its wait (see sse_store_lmdb_fork_hold) */
    int fork_held; /* sse_store_lmdb_fork_hold holds wmu and rmu */
    /* Results (dmu). */
    uv_mutex_t dmu;
    struct op *dq_head, *dq_tail;
    struct job *dj_head, *dj_tail;
    uint64_t snap_first;
    size_t snap_count, snap_bytes;
    int snap_new;
};

/* ---------------------------------------------------------------- bytes */

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t hash64(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The key of an id in "ids" (buf holds ID_KEY_MAX + 8 bytes). Empty ids have none (0). */
static size_t id_key(const char *id, size_t len, unsigned char *buf)
{
    if (len <= ID_KEY_MAX) {
        memcpy(buf, id, len);
        return len;
    }
    memcpy(buf, id, ID_KEY_MAX);
    put_be(buf + ID_KEY_MAX, hash64(id, len), 8);
    return ID_KEY_MAX + 8;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Record layout (version 1; integers big-endian):
 *   0 u8 version   1 u8 flags (1: private)   2 u16 n_topics   4 u32 id_len   8 u32 frame_len
 *   12 u32 0 (reserved)   16 i64 time_ms   24 id, NUL   per topic: u32 len, bytes, NUL   frame
 */
static int rec_build(const sse_store_entry *in, unsigned char **out, size_t *out_len)
{
    size_t flen = sse_frame_len(in->frame);
    size_t n = REC_HDR + in->id_len + 1 + flen;
    if (in->n_topics > 0xffff || in->id_len > 0xffffffffu || flen > 0xffffffffu)
        return SSE_ELIMIT;
    for (size_t i = 0; i < in->n_topics; i++)
        n += 4 + strlen(in->topics[i]) + 1;
    unsigned char *r = sse__malloc(n), *p = r + REC_HDR;
    if (!r)
        return SSE_ENOMEM;
    r[0] = REC_VERSION;
    r[1] = in->is_private ? 1 : 0;
    put_be(r + 2, in->n_topics, 2);
    put_be(r + 4, in->id_len, 4);
    put_be(r + 8, flen, 4);
    put_be(r + 12, 0, 4);
    put_be(r + 16, (uint64_t)in->time_ms, 8);
    if (in->id_len)
        memcpy(p, in->id, in->id_len);
    p += in->id_len;
    *p++ = '\0';
    for (size_t i = 0; i < in->n_topics; i++) {
        size_t tl = strlen(in->topics[i]);
        put_be(p, tl, 4);
        memcpy(p + 4, in->topics[i], tl + 1);
        p += 4 + tl + 1;
    }
    memcpy(p, sse_frame_data(in->frame), flen);
    *out = r;
    *out_len = n;
    return 0;
}

/* The parts of a record; 0, or SSE_EPROTO if it is not one (topics: only counted). */
struct rec_view {
    int is_private;
    size_t n_topics;
    const char *id;
    size_t id_len;
    const unsigned char *topics; /* first topic's length field */
    const unsigned char *frame;
    size_t frame_len;
    long long time_ms;
};

static int rec_parse(const unsigned char *r, size_t len, struct rec_view *v)
{
    if (len < REC_HDR || r[0] != REC_VERSION)
        return SSE_EPROTO;
    v->is_private = r[1] & 1;
    v->n_topics = (size_t)get_be(r + 2, 2);
    v->id_len = (size_t)get_be(r + 4, 4);
    v->frame_len = (size_t)get_be(r + 8, 4);
    v->time_ms = (long long)get_be(r + 16, 8);
    size_t off = REC_HDR;
    if (v->id_len >= len - off)
        return SSE_EPROTO;
    v->id = (const char *)r + off;
    off += v->id_len + 1;
    v->topics = r + off;
    for (size_t i = 0; i < v->n_topics; i++) {
        if (len - off < 5)
            return SSE_EPROTO;
        size_t tl = (size_t)get_be(r + off, 4);
        if (tl >= len - off - 4)
            return SSE_EPROTO;
        off += 4 + tl + 1;
    }
    if (len - off != v->frame_len)
        return SSE_EPROTO;
    v->frame = r + off;
    return 0;
}

/* The topics of a parsed record as C strings (they are NUL-terminated in the record): into tp
   when there are at most 64 of them, else into a new array the caller frees. NULL: no memory. */
static const char **rec_topics(const struct rec_view *rv, const char **tp)
{
    const char **topics = rv->n_topics <= 64 ? tp : sse__malloc(rv->n_topics * sizeof(char *));
    if (!topics)
        return NULL;
    const unsigned char *p = rv->topics;
    for (size_t i = 0; i < rv->n_topics; i++) {
        size_t tl = (size_t)get_be(p, 4);
        topics[i] = (const char *)p + 4;
        p += 4 + tl + 1;
    }
    return topics;
}

/* Bytes an entry counts for against max_bytes: record, both keys, a little bookkeeping. */
static size_t rec_account(size_t rec_len, size_t id_len)
{
    return rec_len + 8 + (id_len > ID_KEY_MAX ? ID_KEY_MAX + 8 : id_len) + ENTRY_OVERHEAD;
}

static int map_err(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_MAP_FULL:
        return SSE_ELIMIT;
    case ENOMEM:
        return SSE_ENOMEM;
    case EACCES:
    case EPERM:
    case EROFS:
        return SSE_EAUTH;
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INCOMPATIBLE:
        return SSE_EPROTO;
    default: /* a system error (ENOSPC, EIO...) passes through as a negated errno */
        return rc > 0 && rc < 1000 ? -rc : SSE_EIO;
    }
}

/* ---------------------------------------------------------------- writer thread */

static void post_ops(struct lmdb_store *s, struct op *head, struct op *tail)
{
    uv_mutex_lock(&s->dmu);
    if (s->dq_tail)
        s->dq_tail->next = head;
    else
        s->dq_head = head;
    s->dq_tail = tail;
    uv_mutex_unlock(&s->dmu);
    uv_async_send(s->async);
}

static void post_snapshot(struct lmdb_store *s, uint64_t first)
{
    size_t count = (size_t)(s->next_seq - first), bytes = (size_t)s->w_bytes;
    uv_mutex_lock(&s->dmu);
    if (s->snap_first != first || s->snap_count != count || s->snap_bytes != bytes) {
        s->snap_first = first; /* unchanged (an idle age check that dropped nothing): the loop */
        s->snap_count = count; /* is not woken for it */
        s->snap_bytes = bytes;
        s->snap_new = 1;
    }
    uv_mutex_unlock(&s->dmu);
}

/* Drop the oldest entries beyond lim inside txn; *bytes follows; *first: the oldest left. */
static int trim_txn(struct lmdb_store *s, MDB_txn *txn, const sse_store_limits *lim, long long now,
                    uint64_t next, uint64_t *bytes, uint64_t *first)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db_ent, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    *first = next;
    while ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
        uint64_t pos = get_be(k.mv_data, 8);
        struct rec_view rv;
        if (k.mv_size != 8 || rec_parse(v.mv_data, v.mv_size, &rv)) {
            rc = MDB_CORRUPTED;
            break;
        }
        size_t acct = rec_account(v.mv_size, rv.id_len);
        int over = (lim->max_count && next - pos > lim->max_count) ||
                   (lim->max_bytes && *bytes > lim->max_bytes) ||
                   (lim->max_age_ms > 0 && now - rv.time_ms > lim->max_age_ms);
        if (!over) {
            *first = pos;
            break;
        }
        if (rv.id_len) { /* the id's key, if it still names this entry (not a newer duplicate) */
            unsigned char kb[ID_KEY_MAX + 8];
            MDB_val ik = {id_key(rv.id, rv.id_len, kb), kb}, iv;
            if (mdb_get(txn, s->db_ids, &ik, &iv) == 0 && iv.mv_size == 8 &&
                get_be(iv.mv_data, 8) == pos && (rc = mdb_del(txn, s->db_ids, &ik, NULL)))
                break;
        }
        if ((rc = mdb_cursor_del(c, 0)))
            break;
        *bytes = *bytes > acct ? *bytes - acct : 0;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int put_meta_u64(struct lmdb_store *s, MDB_txn *txn, const char *name, uint64_t val)
{
    unsigned char b[8];
    put_be(b, val, 8);
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    return mdb_put(txn, s->db_meta, &k, &v, 0);
}

/*
 * One transaction: the batch (may be NULL), the trims, the meta. Sets each op's result; returns
 * the transaction's. The age limit's clock is the newest append's time (as in the memory store,
 * which trims with each entry's time), moved on by the time elapsed since it came.
 */
static int commit_batch(struct lmdb_store *s, struct op *batch, const sse_store_limits *extra,
                        long long extra_now)
{
    MDB_txn *txn = NULL;
    uint64_t seq = s->next_seq, bytes = s->w_bytes, first = seq;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    for (struct op *o = batch; o && !rc; o = o->next) {
        unsigned char kb[8], ib[ID_KEY_MAX + 8];
        put_be(kb, seq, 8);
        MDB_val k = {8, kb}, v = {o->rec_len, o->rec};
        size_t idl = (size_t)get_be(o->rec + 4, 4);
        rc = mdb_put(txn, s->db_ent, &k, &v, MDB_APPEND);
        if (!rc && idl) {
            MDB_val ik = {id_key((const char *)o->rec + REC_HDR, idl, ib), ib}, iv = {8, kb};
            /* an id published twice keeps pointing at its EARLIEST copy (draft-08 replay) */
            rc = mdb_put(txn, s->db_ids, &ik, &iv, MDB_NOOVERWRITE);
            if (rc == MDB_KEYEXIST)
                rc = 0;
        }
        o->pos = seq++;
        bytes += rec_account(o->rec_len, idl);
    }
    long long now;
    for (struct op *o = batch; o; o = o->next)
        if (!o->next) {
            s->clock_entry = (long long)get_be(o->rec + 16, 8);
            s->clock_mono = mono_ms();
        }
    now = s->clock_entry + (mono_ms() - s->clock_mono);
    if (!rc)
        rc = trim_txn(s, txn, &s->lim, now, seq, &bytes, &first);
    if (!rc && extra)
        rc = trim_txn(s, txn, extra, extra_now, seq, &bytes, &first);
    if (!rc)
        rc = put_meta_u64(s, txn, "next", seq);
    if (!rc)
        rc = put_meta_u64(s, txn, "bytes", bytes);
    if (!rc) {
        rc = mdb_txn_commit(txn); /* frees txn whatever happens; syncs unless MDB_NOSYNC */
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    for (struct op *o = batch; o; o = o->next)
        o->status = map_err(rc);
    if (!rc) {
        s->next_seq = seq;
        s->w_bytes = bytes;
        post_snapshot(s, first);
    }
    return map_err(rc);
}

/* The store's threads take no signals: the process's handlers (signalfd, uv_signal) get them. */
static void block_signals(void)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static void writer_main(void *arg)
{
    struct lmdb_store *s = arg;
    block_signals();
    long long last_flush = now_ms(), last_trim = last_flush;
    int dirty = 0;
    uv_mutex_lock(&s->wmu);
    for (;;) {
        if (!s->wq_head && !s->wstop && !s->trim_asked) {
            s->w_waiting = 1;
            uv_cond_timedwait(&s->wcv, &s->wmu, (uint64_t)FLUSH_MS * 1000000u);
            s->w_waiting = 0;
        }
        /* Everything queued since the last commit goes into this one (bounded). */
        struct op *head = s->wq_head, *tail = NULL;
        size_t n = 0;
        for (struct op *o = head; o && n < MAX_COMMIT; o = o->next, n++)
            tail = o;
        s->w_batch = head && tail ? head : NULL;
        if (tail) {
            s->wq_head = tail->next;
            if (!s->wq_head)
                s->wq_tail = NULL;
            tail->next = NULL;
            for (struct op *o = head; o; o = o->next)
                s->wq_bytes -= o->rec_len;
        }
        sse_store_limits extra = s->trim_lim;
        long long extra_now = s->trim_now;
        int asked = s->trim_asked, stop = s->wstop && !s->wq_head;
        uint64_t asked_seq = s->trim_seq;
        s->trim_asked = 0;
        uv_mutex_unlock(&s->wmu);

        long long now = now_ms();
        /* Age limits need a commit even when nobody publishes: once a second. */
        int age_due = s->lim.max_age_ms > 0 && now - last_trim >= FLUSH_MS;
        if (head || asked || age_due) {
            int rc = commit_batch(s, head, asked ? &extra : NULL, extra_now);
            last_trim = now;
            dirty = 1;
            if (asked) { /* trim() waits for this */
                uv_mutex_lock(&s->wmu);
                s->trim_done = asked_seq;
                s->trim_rc = rc;
                uv_cond_broadcast(&s->tcv);
                uv_mutex_unlock(&s->wmu);
            }
        }
        if (s->nosync && dirty && (now - last_flush >= FLUSH_MS || stop)) {
            mdb_env_sync(s->env, 1);
            last_flush = now;
            dirty = 0;
        }
        if (head) {
            post_ops(s, head, tail);
        } else {
            /* A trim alone (the age limit while nobody publishes, or trim()): the loop must
               still learn the new counts and drop the same entries from its cache, or replays
               answered from the cache would send expired updates. Only when it changed. */
            uv_mutex_lock(&s->dmu);
            int changed = s->snap_new;
            uv_mutex_unlock(&s->dmu);
            if (changed)
                uv_async_send(s->async);
        }
        uv_mutex_lock(&s->wmu);
        if (stop)
            break;
    }
    s->wexited = 1;
    uv_cond_broadcast(&s->tcv);
    uv_mutex_unlock(&s->wmu);
    uv_async_send(s->async);
}

/* ---------------------------------------------------------------- reader thread */

static int job_add(struct job *j, uint64_t pos, const MDB_val *v)
{
    if (j->n == j->cap) {
        size_t nc = j->cap ? j->cap * 2 : 32;
        struct jrec *a = sse__realloc(j->recs, nc * sizeof(*a));
        if (!a)
            return SSE_ENOMEM;
        j->recs = a;
        j->cap = nc;
    }
    if (j->blob_cap - j->blob_len < v->mv_size) {
        size_t nc = j->blob_cap ? j->blob_cap : 4096;
        while (nc - j->blob_len < v->mv_size)
            nc *= 2;
        unsigned char *b = sse__realloc(j->blob, nc);
        if (!b)
            return SSE_ENOMEM;
        j->blob = b;
        j->blob_cap = nc;
    }
    memcpy(j->blob + j->blob_len, v->mv_data, v->mv_size);
    j->recs[j->n++] = (struct jrec){pos, j->blob_len, v->mv_size};
    j->blob_len += v->mv_size;
    return 0;
}

/* The position of an id, checked against the record (a long id's hash could collide). */
static int lookup_id(struct lmdb_store *s, MDB_txn *txn, const char *id, size_t len, uint64_t *pos)
{
    unsigned char kb[ID_KEY_MAX + 8], pb[8];
    MDB_val k = {id_key(id, len, kb), kb}, v, e;
    if (!len || mdb_get(txn, s->db_ids, &k, &v) || v.mv_size != 8)
        return 0;
    memcpy(pb, v.mv_data, 8);
    MDB_val pk = {8, pb};
    struct rec_view rv;
    if (mdb_get(txn, s->db_ent, &pk, &e) || rec_parse(e.mv_data, e.mv_size, &rv) ||
        rv.id_len != len || memcmp(rv.id, id, len))
        return 0;
    *pos = get_be(pb, 8);
    return 1;
}

static int run_job(struct lmdb_store *s, MDB_txn *txn, struct job *j)
{
    MDB_cursor *c;
    MDB_val k, v;
    unsigned char kb[8];
    uint64_t start = 0;
    int rc = mdb_cursor_open(txn, s->db_ent, &c), op;
    if (rc)
        return rc;
    if (j->kind == J_ID || (j->kind == J_BACK && !j->found_set)) {
        if (!lookup_id(s, txn, j->id, j->id_len, &start)) {
            j->found = 0;
            goto out;
        }
        j->found = 1;
        if (j->kind == J_ID)
            start++;
    } else if (j->kind == J_EARLIEST) {
        j->found = 1;
    } else if (j->kind == J_FROM) {
        start = j->pos + 1;
        if (!j->found_set) {
            uint64_t first;
            rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
            if (rc == 0) {
                first = get_be(k.mv_data, 8);
            } else { /* empty: the next position is in the meta */
                MDB_val mk = {4, (void *)"next"}, mv;
                first = mdb_get(txn, s->db_meta, &mk, &mv) == 0 && mv.mv_size == 8
                            ? get_be(mv.mv_data, 8)
                            : 1;
            }
            j->found = start >= first;
        }
    } else {
        start = j->pos;
    }
    rc = 0;
    put_be(kb, start, 8);
    k = (MDB_val){8, kb};
    if (j->kind == J_BACK) {
        op = MDB_SET_KEY;
        size_t want = j->max < BATCH_ENTRIES ? j->max : BATCH_ENTRIES;
        while (j->n < want && (rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
            if ((rc = job_add(j, get_be(k.mv_data, 8), &v)))
                break;
            op = MDB_PREV;
        }
        if (rc == 0 && j->n == want && j->max > want)
            j->more = mdb_cursor_get(c, &k, &v, MDB_PREV) == 0;
    } else {
        op = MDB_SET_RANGE;
        while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
            if (j->n >= BATCH_ENTRIES || j->blob_len >= BATCH_BYTES) {
                j->more = 1;
                break;
            }
            if ((rc = job_add(j, get_be(k.mv_data, 8), &v)))
                break;
            op = MDB_NEXT;
        }
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
out:
    mdb_cursor_close(c);
    return rc;
}

/* Follower: the file's counts (another process trims it), handed to the loop when they moved. */
static void follower_refresh(struct lmdb_store *s)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v, mk = {4, (void *)"next"}, bk = {5, (void *)"bytes"};
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))
        return;
    uint64_t next = 0, first, bytes = 0;
    if (mdb_get(txn, s->db_meta, &mk, &v) == 0 && v.mv_size == 8)
        next = get_be(v.mv_data, 8);
    if (mdb_get(txn, s->db_meta, &bk, &v) == 0 && v.mv_size == 8)
        bytes = get_be(v.mv_data, 8);
    first = next;
    if (mdb_cursor_open(txn, s->db_ent, &c) == 0) {
        if (mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0 && k.mv_size == 8)
            first = get_be(k.mv_data, 8);
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
    if (!next)
        return;
    uv_mutex_lock(&s->dmu);
    int changed = s->snap_first != first || s->snap_count != (size_t)(next - first) ||
                  s->snap_bytes != (size_t)bytes;
    s->snap_first = first;
    s->snap_count = (size_t)(next - first);
    s->snap_bytes = (size_t)bytes;
    s->snap_new |= changed;
    uv_mutex_unlock(&s->dmu);
    if (changed)
        uv_async_send(s->async);
}

static void reader_main(void *arg)
{
    struct lmdb_store *s = arg;
    block_signals();
    uv_mutex_lock(&s->rmu);
    for (;;) {
        while (!s->rq_head && !s->rstop) {
            int timed_out = 0;
            s->r_waiting = 1;
            if (!s->follower)
                uv_cond_wait(&s->rcv, &s->rmu);
            else
                timed_out = uv_cond_timedwait(&s->rcv, &s->rmu, (uint64_t)FLUSH_MS * 1000000u) ==
                            UV_ETIMEDOUT;
            s->r_waiting = 0;
            if (timed_out) {
                uv_mutex_unlock(&s->rmu);
                follower_refresh(s);
                uv_mutex_lock(&s->rmu);
            }
        }
        struct job *j = s->rq_head;
        s->r_job = j;
        if (!j)
            break; /* stop asked and nothing left */
        s->rq_head = j->next;
        if (!s->rq_head)
            s->rq_tail = NULL;
        int stop = s->rstop;
        uv_mutex_unlock(&s->rmu);
        j->next = NULL;
        if (stop) {
            j->status = SSE_ECLOSED;
        } else {
            MDB_txn *txn;
            int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
            if (!rc) {
                rc = run_job(s, txn, j);
                mdb_txn_abort(txn);
            }
            j->status = rc == SSE_ENOMEM ? rc : map_err(rc);
        }
        uv_mutex_lock(&s->dmu);
        if (s->dj_tail)
            s->dj_tail->next = j;
        else
            s->dj_head = j;
        s->dj_tail = j;
        uv_mutex_unlock(&s->dmu);
        uv_async_send(s->async);
        uv_mutex_lock(&s->rmu);
    }
    s->rexited = 1;
    uv_mutex_unlock(&s->rmu);
    uv_async_send(s->async);
}

static void job_free(struct job *j)
{
    sse__free(j->id);
    sse__free(j->recs);
    sse__free(j->blob);
    sse__free(j);
}

/* Work in flight keeps the loop alive (the async handle is referenced); none: it does not. */
static void busy(struct lmdb_store *s, int up)
{
    if (up && s->inflight++ == 0)
        uv_ref((uv_handle_t *)s->async);
    else if (!up && --s->inflight == 0 && !s->closing)
        uv_unref((uv_handle_t *)s->async);
}

static int job_submit(struct lmdb_store *s, struct job *j)
{
    busy(s, 1);
    uv_mutex_lock(&s->rmu);
    j->next = NULL;
    if (s->rq_tail)
        s->rq_tail->next = j;
    else
        s->rq_head = j;
    s->rq_tail = j;
    uv_cond_signal(&s->rcv);
    uv_mutex_unlock(&s->rmu);
    return 0;
}

static struct job *job_new(int kind, const char *id, size_t id_len, sse_store_entry_cb each,
                           sse_store_done_cb done, void *ud)
{
    struct job *j = sse__calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    if (id && !(j->id = sse__strndup(id, id_len))) {
        sse__free(j);
        return NULL;
    }
    j->kind = kind;
    j->id_len = id_len;
    j->each = each;
    j->done = done;
    j->ud = ud;
    return j;
}

/* ---------------------------------------------------------------- the cache (loop) */

static uint64_t cache_first(const struct lmdb_store *s)
{
    size_t n = 0;
    if (s->cache)
        sse_store_stats(s->cache, &n, NULL);
    return s->done_pos - n + 1;
}

/* Start an empty cache whose first entry will be file position next. */
static void cache_reset(struct lmdb_store *s, uint64_t next)
{
    sse_store_free(s->cache);
    s->cache = NULL;
    if (sse_store_memory_new(&s->cache, &s->cache_lim) == 0)
        s->cache_off = next - 1;
}

static void cache_pos(void *ud, int status, uint64_t position)
{
    *(uint64_t *)ud = status ? 0 : position;
}

/* The memory store completes at once; positions are consecutive on both sides, so a mismatch
   (an entry the cache missed) starts the cache over after pos. */
static void cache_add(struct lmdb_store *s, const sse_store_entry *e, uint64_t pos)
{
    uint64_t got = 0;
    if (!s->cache)
        cache_reset(s, pos);
    if (!s->cache)
        return;
    if (sse_store_append(s->cache, e, cache_pos, &got) || got + s->cache_off != pos)
        cache_reset(s, pos + 1);
}

/* Replays served from the cache: positions mapped back, entries the file trimmed skipped. */
struct cwrap {
    struct lmdb_store *s;
    sse_store_entry_cb each;
    void *ud;
    uint64_t min_pos; /* entries before it (trimmed from the file) are skipped */
    int found;        /* reported by the cache's done */
    size_t visited;   /* entries handed to each */
    int stopped;      /* each asked to stop */
    sse_frame *got;   /* cached_frame */
};

static int cache_each(void *ud, const sse_store_entry *e)
{
    struct cwrap *w = ud;
    uint64_t pos = e->position + w->s->cache_off;
    if (pos < w->min_pos)
        return 0;
    sse_store_entry c = *e;
    c.position = pos;
    w->visited++;
    w->stopped = w->each ? w->each(w->ud, &c) != 0 : 0;
    return w->stopped;
}

static void cache_done(void *ud, int status, int found)
{
    struct cwrap *w = ud;
    w->found = status == 0 && found;
}

static int grab_each(void *ud, const sse_store_entry *e)
{
    struct cwrap *w = ud;
    w->got = sse_frame_ref(e->frame);
    return 1;
}

/* The cached frame of a file position (a new reference), or NULL. */
static sse_frame *cached_frame(struct lmdb_store *s, uint64_t pos)
{
    struct cwrap w = {0};
    if (!s->cache || pos <= s->cache_off || pos < cache_first(s) || pos > s->done_pos)
        return NULL;
    sse_store_replay_from(s->cache, pos - s->cache_off - 1, grab_each, NULL, &w);
    return w.got;
}

/* ---------------------------------------------------------------- results on the loop */

static int replay_from_pos(struct lmdb_store *s, uint64_t after, int found_set, int found,
                           sse_store_entry_cb each, sse_store_done_cb done, void *ud);
static void finish_close(struct lmdb_store *s);

static void deliver_op(struct lmdb_store *s, struct op *o)
{
    if (o->status == 0) {
        struct rec_view rv;
        rec_parse(o->rec, o->rec_len, &rv);
        s->done_pos = o->pos;
        char *id = sse__realloc(s->last_id, rv.id_len + 1);
        if (id) {
            memcpy(id, rv.id, rv.id_len);
            id[rv.id_len] = '\0';
            s->last_id = id;
            s->last_id_len = rv.id_len;
        }
        /* The cache takes the entry as the hub gave it: the topics are re-read from the
           record (NUL-terminated there). */
        const char *tp[64];
        const char **topics = rec_topics(&rv, tp);
        if (topics) {
            sse_store_entry e = {rv.id,         rv.id_len, topics,     rv.n_topics,
                                 rv.is_private, o->frame,  rv.time_ms, o->pos};
            cache_add(s, &e, o->pos);
            if (topics != tp)
                sse__free(topics);
        } else {
            cache_reset(s, o->pos + 1);
        }
    }
    s->append_failing = o->status != 0; /* /readyz: until an append succeeds again */
    if (o->cb)
        o->cb(o->ud, o->status, o->status ? 0 : o->pos);
}

/* Build the entry of a record and hand it to each(); returns each()'s answer (1 on error). */
static int deliver_rec(struct lmdb_store *s, struct job *j, const struct jrec *r, int *err)
{
    struct rec_view rv;
    if (rec_parse(j->blob + r->off, r->len, &rv)) {
        *err = SSE_EPROTO;
        return 1;
    }
    const char *tp[64];
    const char **topics = rec_topics(&rv, tp);
    sse_frame *f = cached_frame(s, r->pos);
    if (!f && sse_frame_new(&f, rv.frame, rv.frame_len))
        f = NULL;
    if (!topics || !f) {
        if (topics && topics != tp)
            sse__free(topics);
        sse_frame_unref(f);
        *err = SSE_ENOMEM;
        return 1;
    }
    sse_store_entry e = {rv.id,         rv.id_len, topics,     rv.n_topics,
                         rv.is_private, f,         rv.time_ms, r->pos};
    int stop = j->each ? j->each(j->ud, &e) : 0;
    sse_frame_unref(f);
    if (topics != tp)
        sse__free(topics);
    return stop;
}

static void deliver_job(struct lmdb_store *s, struct job *j)
{
    int err = j->status, stop = 0;
    busy(s, 0);
    uint64_t last = j->kind == J_FROM ? j->pos : 0;
    size_t i = 0;
    for (; !err && i < j->n; i++) {
        /* Committed but not yet completed here: those reach the hub live, not replayed. */
        if (j->kind != J_BACK && j->recs[i].pos > s->done_pos) {
            j->more = 0;
            break;
        }
        last = j->recs[i].pos;
        if ((stop = deliver_rec(s, j, &j->recs[i], &err)))
            break;
    }
    if (!err && !stop && j->more) {
        if (s->closing) {
            err = SSE_ECLOSED;
        } else if (j->kind == J_BACK) { /* the next batch, further back */
            j->found_set = 1;
            j->max -= j->n;
            j->pos = last - 1;
            j->n = j->blob_len = 0;
            j->more = 0;
            job_submit(s, j);
            return;
        } else { /* on from the last entry: the cache may hold the rest */
            int rc = replay_from_pos(s, last, 1, j->found, j->each, j->done, j->ud);
            if (!rc) {
                job_free(j);
                return;
            }
            err = rc;
        }
    }
    if (j->done)
        j->done(j->ud, err, err ? 0 : j->found);
    job_free(j);
}

static void on_async(uv_async_t *a)
{
    struct lmdb_store *s = a->data;
    uv_mutex_lock(&s->dmu);
    struct op *ops = s->dq_head;
    struct job *jobs = s->dj_head;
    s->dq_head = s->dq_tail = NULL;
    s->dj_head = s->dj_tail = NULL;
    if (s->snap_new) {
        s->first_pos = s->snap_first;
        s->count = s->snap_count;
        s->bytes = s->snap_bytes;
        s->snap_new = 0;
    }
    uv_mutex_unlock(&s->dmu);
    if (s->lim.max_age_ms > 0 && s->cache) { /* the cache forgets what the file forgot */
        sse_store_limits age = {0, 0, s->lim.max_age_ms};
        sse_store_trim(s->cache, &age, now_ms());
    }
    while (ops) {
        struct op *o = ops;
        ops = o->next;
        busy(s, 0);
        deliver_op(s, o);
        sse_frame_unref(o->frame);
        sse__free(o->rec);
        sse__free(o);
    }
    while (jobs) {
        struct job *j = jobs;
        jobs = j->next;
        deliver_job(s, j);
    }
    if (s->closing)
        finish_close(s);
}

/* ---------------------------------------------------------------- the vtable */

/* Follower: the writer's process committed the entry at in->position; nothing is written here. */
static int follower_append(struct lmdb_store *s, const sse_store_entry *in, sse_store_append_cb cb,
                           void *ud)
{
    uint64_t pos = in->position;
    if (!pos)
        return SSE_EINVAL;
    if (pos > s->done_pos) {
        char *id = sse__realloc(s->last_id, in->id_len + 1);
        if (id) {
            if (in->id_len)
                memcpy(id, in->id, in->id_len);
            id[in->id_len] = '\0';
            s->last_id = id;
            s->last_id_len = in->id_len;
        }
        cache_add(s, in, pos);
        s->done_pos = pos;
        if (s->first_pos <= pos && s->count < pos + 1 - s->first_pos)
            s->count = (size_t)(pos + 1 - s->first_pos); /* the file's refresh may lag */
    }
    if (cb)
        cb(ud, 0, pos);
    return 0;
}

static int l_append(sse_store *base, const sse_store_entry *in, sse_store_append_cb cb, void *ud)
{
    struct lmdb_store *s = (struct lmdb_store *)base;
    if (s->closing)
        return SSE_ECLOSED;
    if (!in->frame || (!in->id && in->id_len))
        return SSE_EINVAL;
    if (s->follower)
        return follower_append(s, in, cb, ud);
    struct op *o = sse__calloc(1, sizeof(*o));
    if (!o)
        return SSE_ENOMEM;
    int rc = rec_build(in, &o->rec, &o->rec_len);
    if (rc) {
        sse__free(o);
        return rc;
    }
    uv_mutex_lock(&s->wmu);
    if (s->wq_bytes + o->rec_len > QUEUE_BYTES) { /* the disk is far behind: refuse, bounded */
        uv_mutex_unlock(&s->wmu);
        sse__free(o->rec);
        sse__free(o);
        return SSE_EBUSY;
    }
    s->wq_bytes += o->rec_len;
    o->cb = cb;
    o->ud = ud;
    o->frame = sse_frame_ref(in->frame);
    busy(s, 1);
    if (s->wq_tail)
        s->wq_tail->next = o;
    else
        s->wq_head = o;
    s->wq_tail = o;
    uv_cond_signal(&s->wcv);
    uv_mutex_unlock(&s->wmu);
    return 0;
}

static int replay_from_pos(struct lmdb_store *s, uint64_t after, int found_set, int found,
                           sse_store_entry_cb each, sse_store_done_cb done, void *ud)
{
    if (!found_set)
        found = after + 1 >= s->first_pos;
    if (after >= s->done_pos) { /* nothing completed after it */
        if (done)
            done(ud, 0, found);
        return 0;
    }
    if (s->cache && (after + 1 >= cache_first(s) || s->cached_replay)) {
        struct cwrap w = {s, each, ud, after + 1, 0, 0, 0, NULL};
        uint64_t from = after > s->cache_off ? after - s->cache_off : 0;
        sse_store_replay_from(s->cache, from, cache_each, cache_done, &w);
        if (done)
            done(ud, 0, found);
        return 0;
    }
    struct job *j = job_new(J_FROM, NULL, 0, each, done, ud);
    if (!j)
        return SSE_ENOMEM;
    j->pos = after;
    j->found_set = found_set;
    j->found = found;
    return job_submit(s, j);
}

static int l_replay_from(sse_store *base, uint64_t after, sse_store_entry_cb each,
                         sse_store_done_cb done, void *ud)
{
    struct lmdb_store *s = (struct lmdb_store *)base;
    if (s->closing)
        return SSE_ECLOSED;
    return replay_from_pos(s, after, 0, 0, each, done, ud);
}

static int l_replay(sse_store *base, const char *after_id, size_t after_len,
                    sse_store_entry_cb each, sse_store_done_cb done, void *ud)
{
    struct lmdb_store *s = (struct lmdb_store *)base;
    if (s->closing)
        return SSE_ECLOSED;
    struct cwrap w = {s, each, ud, s->first_pos, 0, 0, 0, NULL};
    if (s->follower) /* the file decides what is kept (its writer trims it): always read it */
        goto from_disk;
    if (s->cache && !after_id && (cache_first(s) <= s->first_pos || s->cached_replay)) {
        /* it holds everything (or is all that is asked for) */
        sse_store_replay(s->cache, NULL, 0, cache_each, cache_done, &w);
        if (done)
            done(ud, 0, 1);
        return 0;
    }
    if (s->cache && after_id) {
        sse_store_replay(s->cache, after_id, after_len, cache_each, cache_done, &w);
        if (w.found || s->cached_replay) {
            if (done)
                done(ud, 0, w.found);
            return 0;
        }
    }
    if (!s->cache && s->cached_replay)
        return SSE_ENOMEM; /* the cache could not be made */
from_disk:;
    struct job *j = job_new(after_id ? J_ID : J_EARLIEST, after_id, after_len, each, done, ud);
    if (!j)
        return SSE_ENOMEM;
    return job_submit(s, j);
}

static int l_scan_back(sse_store *base, const char *id, size_t id_len, size_t max,
                       sse_store_entry_cb each, sse_store_done_cb done, void *ud)
{
    struct lmdb_store *s = (struct lmdb_store *)base;
    if (s->closing)
        return SSE_ECLOSED;
    struct cwrap w = {s, each, ud, 0, 0, 0, 0, NULL};
    struct job *j;
    if (s->cache && !s->follower) {
        /* The cache answers when it holds the id; a walk that runs past the cache's oldest entry
           goes on from the disk. */
        sse_store_scan_back(s->cache, id, id_len, max, cache_each, cache_done, &w);
        if (w.found || s->cached_replay) {
            uint64_t cf = cache_first(s);
            if (!w.found || w.stopped || w.visited >= max || cf <= s->first_pos ||
                s->cached_replay) {
                if (done)
                    done(ud, 0, w.found);
                return 0;
            }
            if (!(j = job_new(J_BACK, NULL, 0, each, done, ud)))
                return SSE_ENOMEM;
            j->found_set = j->found = 1;
            j->pos = cf - 1;
            j->max = max - w.visited;
            return job_submit(s, j);
        }
    }
    if (!(j = job_new(J_BACK, id, id_len, each, done, ud)))
        return SSE_ENOMEM;
    j->max = max;
    return job_submit(s, j);
}

static int l_last_id(sse_store *base, sse_buf *out)
{
    struct lmdb_store *s = (struct lmdb_store *)base;
    if (!s->count || !s->last_id)
        return SSE_ENOTFOUND;
    sse_buf_reset(out);
    return sse_buf_append(out, s->last_id, s->last_id_len);
}

static int l_trim(sse_store *base, const sse_store_limits *lim, long long now)
{
    struct lmdb_store *s = (struct lmdb_store *)base;
    if (s->closing)
        return SSE_ECLOSED;
    if (s->follower)
        return SSE_EUNSUPPORTED; /* the writer's process trims the file */
    /* "Now", as store.h asks: the loop waits for the writer to commit this trim (one commit;
       the hub never calls trim, the limits given to the constructor are applied without it). */
    uv_mutex_lock(&s->wmu);
    s->trim_lim = *lim;
    s->trim_now = now;
    s->trim_asked = 1;
    uint64_t mine = ++s->trim_seq;
    uv_cond_signal(&s->wcv);
    while (s->trim_done < mine && !s->wexited)
        uv_cond_wait(&s->tcv, &s->wmu);
    int rc = s->trim_done >= mine ? s->trim_rc : SSE_ECLOSED;
    uv_mutex_unlock(&s->wmu);
    uv_mutex_lock(&s->dmu); /* the stats as of that commit */
    if (s->snap_new) {
        s->first_pos = s->snap_first;
        s->count = s->snap_count;
        s->bytes = s->snap_bytes;
    }
    uv_mutex_unlock(&s->dmu);
    if (s->cache) /* the cache follows (it only ever holds a subset) */
        sse_store_trim(s->cache, lim, now);
    return rc;
}

static void l_stats(const sse_store *base, size_t *count, size_t *bytes)
{
    const struct lmdb_store *s = (const struct lmdb_store *)base;
    if (count)
        *count = s->count;
    if (bytes)
        *bytes = s->bytes;
}

static void free_all(struct lmdb_store *s)
{
    if (s->env)
        mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    sse_store_free(s->cache);
    sse__free(s->last_id);
    sse__free(s->path);
    if (s->locks) {
        uv_mutex_destroy(&s->wmu);
        uv_cond_destroy(&s->wcv);
        uv_mutex_destroy(&s->rmu);
        uv_cond_destroy(&s->rcv);
        uv_mutex_destroy(&s->dmu);
        uv_cond_destroy(&s->tcv);
    }
    sse__free(s);
}

static void on_async_closed(uv_handle_t *h)
{
    struct lmdb_store *s = h->data;
    void (*done)(void *) = s->close_done;
    void *ud = s->close_ud;
    sse__free(h);
    free_all(s);
    if (done)
        done(ud);
}

/* On the loop, once closing: when both threads are gone, deliver what is left and free. */
static void finish_close(struct lmdb_store *s)
{
    uv_mutex_lock(&s->wmu);
    int w = s->wexited;
    uv_mutex_unlock(&s->wmu);
    uv_mutex_lock(&s->rmu);
    int r = s->rexited;
    uv_mutex_unlock(&s->rmu);
    if (!w || !r)
        return;
    if (!s->joined) {
        s->joined = 1;
        if (!s->follower)
            uv_thread_join(&s->wthr);
        uv_thread_join(&s->rthr);
    }
    uv_mutex_lock(&s->dmu);
    int left = s->dq_head || s->dj_head;
    uv_mutex_unlock(&s->dmu);
    if (left) { /* the last results: delivered, then back here */
        on_async(s->async);
        return;
    }
    if (s->async && !uv_is_closing((uv_handle_t *)s->async))
        uv_close((uv_handle_t *)s->async, on_async_closed);
}

/*
 * Stores let go of in a forked child. The copy's memory belongs to threads and an environment
 * that exist only in the parent: it is neither used nor freed, only kept reachable (so that a
 * leak checker in the child does not report the parent's state). Written only in such a child.
 */
static struct lmdb_store *forked_copies;

static void l_close(sse_store *base, void (*done)(void *ud), void *ud)
{
    struct lmdb_store *s = (struct lmdb_store *)base;
    if (s->pid != getpid()) {
        /* A forked child's copy: the threads, the loop and the environment are the parent's
           (LMDB must not be closed here: that would free the parent's reader slots). Only the
           child's lock descriptor goes, so that an orphaned child never holds the path. */
        if (s->lock_fd >= 0)
            close(s->lock_fd);
        s->lock_fd = -1;
        s->next_copy = forked_copies;
        forked_copies = s;
        if (done)
            done(ud);
        return;
    }
    if (s->closing)
        return;
    s->closing = 1;
    s->close_done = done;
    s->close_ud = ud;
    uv_ref((uv_handle_t *)s->async); /* the loop runs until the threads are gone */
    /* The writer commits what is queued, then stops; the reader fails what is queued. */
    uv_mutex_lock(&s->wmu);
    s->wstop = 1;
    uv_cond_signal(&s->wcv);
    uv_mutex_unlock(&s->wmu);
    uv_mutex_lock(&s->rmu);
    s->rstop = 1;
    uv_cond_signal(&s->rcv);
    uv_mutex_unlock(&s->rmu);
}

/* /readyz: the last append failed (a full map, a disk error); healthy again on the next that
   succeeds. */
static int l_healthy(const sse_store *base, const char **why)
{
    const struct lmdb_store *s = (const struct lmdb_store *)base;
    if (s->append_failing)
        *why = "the last append to the LMDB store failed";
    return !s->append_failing;
}

static const sse_store_ops lmdb_ops = {
    SSE_STORE_OPS_VERSION,
    "lmdb",
    l_append,
    l_replay,
    l_scan_back,
    l_last_id,
    l_trim,
    l_stats,
    l_close,
    l_replay_from,
    l_healthy,
};

/* ---------------------------------------------------------------- opening */

size_t sse_store_lmdb_default_map_size(const sse_store_limits *lim)
{
    size_t mb = lim && lim->max_bytes ? lim->max_bytes : 0;
    if (lim && !lim->max_bytes && !lim->max_count && !lim->max_age_ms)
        mb = 16u << 20; /* the default limits */
    if (!mb)
        return (size_t)1 << 30;
    if (mb > (SIZE_MAX - (64u << 20)) / 4)
        return SIZE_MAX & ~(size_t)4095;
    size_t m = 4 * mb + (64u << 20);
    return (m + 4095) & ~(size_t)4095;
}

#define FAIL(code, ...)                                                                            \
    do {                                                                                           \
        if (o->errbuf && o->errbuf_len)                                                            \
            snprintf(o->errbuf, o->errbuf_len, __VA_ARGS__);                                       \
        rc = (code);                                                                               \
        goto out_fail;                                                                             \
    } while (0)

static int errno_code(int e)
{
    return e == EACCES || e == EPERM || e == EROFS ? SSE_EAUTH : e == ENOMEM ? SSE_ENOMEM : SSE_EIO;
}

/* The meta check and the file's state: the magic written if the file is new. */
static int open_meta(struct lmdb_store *s, const sse_store_lmdb_options *o)
{
    MDB_txn *txn;
    MDB_dbi main;
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn), fresh = 1, foreign = 0;
    if (rc)
        FAIL(map_err(rc), "%s: cannot begin a transaction: %s", s->path, mdb_strerror(rc));
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main)) || (rc = mdb_cursor_open(txn, main, &c))) {
        mdb_txn_abort(txn);
        FAIL(map_err(rc), "%s: %s", s->path, mdb_strerror(rc));
    }
    /* Only our three named databases may be in the main one. */
    for (int op = MDB_FIRST; mdb_cursor_get(c, &k, &v, op) == 0; op = MDB_NEXT) {
        fresh = 0;
        if (!((k.mv_size == 4 && !memcmp(k.mv_data, "meta", 4)) ||
              (k.mv_size == 7 && !memcmp(k.mv_data, "entries", 7)) ||
              (k.mv_size == 3 && !memcmp(k.mv_data, "ids", 3))))
            foreign = 1;
    }
    mdb_cursor_close(c);
    if (foreign || (!fresh && mdb_dbi_open(txn, "meta", 0, &s->db_meta))) {
        mdb_txn_abort(txn);
        FAIL(SSE_EPROTO,
             "%s holds an LMDB database that is not an ssehub history: refusing to use it "
             "(nothing was changed)",
             s->path);
    }
    if (fresh) {
        unsigned char m[sizeof(MAGIC) - 1 + 4];
        memcpy(m, MAGIC, sizeof(MAGIC) - 1);
        put_be(m + sizeof(MAGIC) - 1, LAYOUT_VERSION, 4);
        MDB_val mk = {5, (void *)"magic"}, mv = {sizeof(m), m};
        if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->db_meta)) ||
            (rc = mdb_put(txn, s->db_meta, &mk, &mv, 0)) ||
            (rc = put_meta_u64(s, txn, "next", 1)) || (rc = put_meta_u64(s, txn, "bytes", 0))) {
            mdb_txn_abort(txn);
            FAIL(map_err(rc), "%s: cannot initialize the history: %s", s->path, mdb_strerror(rc));
        }
    } else {
        MDB_val mk = {5, (void *)"magic"}, mv;
        if (mdb_get(txn, s->db_meta, &mk, &mv) || mv.mv_size != sizeof(MAGIC) - 1 + 4 ||
            memcmp(mv.mv_data, MAGIC, sizeof(MAGIC) - 1)) {
            mdb_txn_abort(txn);
            FAIL(SSE_EPROTO, "%s: not an ssehub history (no magic record): refusing to use it",
                 s->path);
        }
        unsigned ver = (unsigned)get_be((unsigned char *)mv.mv_data + sizeof(MAGIC) - 1, 4);
        if (ver != LAYOUT_VERSION) {
            mdb_txn_abort(txn);
            FAIL(SSE_EPROTO,
                 "%s: history layout version %u, this ssehub reads version %d: refusing to use "
                 "it",
                 s->path, ver, LAYOUT_VERSION);
        }
    }
    if ((rc = mdb_dbi_open(txn, "entries", MDB_CREATE, &s->db_ent)) ||
        (rc = mdb_dbi_open(txn, "ids", MDB_CREATE, &s->db_ids))) {
        mdb_txn_abort(txn);
        FAIL(map_err(rc), "%s: %s", s->path, mdb_strerror(rc));
    }
    MDB_val nk = {4, (void *)"next"}, bk = {5, (void *)"bytes"};
    if (mdb_get(txn, s->db_meta, &nk, &v) || v.mv_size != 8) {
        mdb_txn_abort(txn);
        FAIL(SSE_EPROTO, "%s: the history's meta record is damaged: refusing to use it", s->path);
    }
    s->next_seq = get_be(v.mv_data, 8);
    s->w_bytes =
        mdb_get(txn, s->db_meta, &bk, &v) == 0 && v.mv_size == 8 ? get_be(v.mv_data, 8) : 0;
    if ((rc = mdb_txn_commit(txn)))
        FAIL(map_err(rc), "%s: cannot write the history: %s", s->path, mdb_strerror(rc));
    return 0;
out_fail:
    return rc;
}

/* Follower: the same checks as open_meta, in a read transaction; nothing is created. */
static int open_meta_ro(struct lmdb_store *s, const sse_store_lmdb_options *o)
{
    MDB_txn *txn;
    MDB_val v, mk = {5, (void *)"magic"}, nk = {4, (void *)"next"}, bk = {5, (void *)"bytes"};
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        FAIL(map_err(rc), "%s: cannot begin a read transaction: %s", s->path, mdb_strerror(rc));
    if (mdb_dbi_open(txn, "meta", 0, &s->db_meta) || mdb_get(txn, s->db_meta, &mk, &v) ||
        v.mv_size != sizeof(MAGIC) - 1 + 4 || memcmp(v.mv_data, MAGIC, sizeof(MAGIC) - 1) ||
        get_be((unsigned char *)v.mv_data + sizeof(MAGIC) - 1, 4) != LAYOUT_VERSION ||
        mdb_dbi_open(txn, "entries", 0, &s->db_ent) || mdb_dbi_open(txn, "ids", 0, &s->db_ids) ||
        mdb_get(txn, s->db_meta, &nk, &v) || v.mv_size != 8) {
        mdb_txn_abort(txn);
        FAIL(SSE_EPROTO,
             "%s: not an ssehub history of this version (a follower only reads one its writer "
             "made)",
             s->path);
    }
    s->next_seq = get_be(v.mv_data, 8);
    s->w_bytes =
        mdb_get(txn, s->db_meta, &bk, &v) == 0 && v.mv_size == 8 ? get_be(v.mv_data, 8) : 0;
    if ((rc = mdb_txn_commit(txn))) /* a read-only commit keeps the database handles */
        FAIL(map_err(rc), "%s: %s", s->path, mdb_strerror(rc));
    return 0;
out_fail:
    return rc;
}

/* The loop-side state from the file: positions, stats, last id, the cache's newest entries. */
static int load_state(struct lmdb_store *s, const sse_store_lmdb_options *o)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        FAIL(map_err(rc), "%s: %s", s->path, mdb_strerror(rc));
    if ((rc = mdb_cursor_open(txn, s->db_ent, &c))) {
        mdb_txn_abort(txn);
        FAIL(map_err(rc), "%s: %s", s->path, mdb_strerror(rc));
    }
    s->first_pos = s->next_seq;
    s->done_pos = s->next_seq - 1;
    if (mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0)
        s->first_pos = get_be(k.mv_data, 8);
    s->count = (size_t)(s->next_seq - s->first_pos);
    struct rec_view lv;
    if (mdb_cursor_get(c, &k, &v, MDB_LAST) == 0 && rec_parse(v.mv_data, v.mv_size, &lv) == 0 &&
        (s->last_id = sse__strndup(lv.id, lv.id_len)))
        s->last_id_len = lv.id_len;
    s->bytes = (size_t)s->w_bytes;
    s->snap_first = s->first_pos;
    s->snap_count = s->count;
    s->snap_bytes = s->bytes;
    if (s->follower) { /* its cache fills from the relay (sse_store_lmdb_follow) */
        mdb_cursor_close(c);
        mdb_txn_abort(txn);
        return 0;
    }
    /* Walk back over what the cache takes, then forward into it. */
    uint64_t start = s->next_seq;
    size_t n = 0, b = 0;
    for (int op = MDB_LAST; n < s->cache_lim.max_count && mdb_cursor_get(c, &k, &v, op) == 0;
         op = MDB_PREV, n++) {
        b += v.mv_size;
        if (b > s->cache_lim.max_bytes)
            break;
        start = get_be(k.mv_data, 8);
    }
    cache_reset(s, start);
    uint64_t saved = s->done_pos;
    unsigned char kb[8];
    put_be(kb, start, 8);
    k = (MDB_val){8, kb};
    for (int op = MDB_SET_RANGE; s->cache && mdb_cursor_get(c, &k, &v, op) == 0; op = MDB_NEXT) {
        struct jrec r = {get_be(k.mv_data, 8), 0, v.mv_size};
        struct rec_view rv;
        sse_frame *f;
        if (rec_parse(v.mv_data, v.mv_size, &rv)) {
            mdb_cursor_close(c);
            mdb_txn_abort(txn);
            FAIL(SSE_EPROTO, "%s: entry %llu is damaged: refusing to use the history", s->path,
                 (unsigned long long)r.pos);
        }
        if (sse_frame_new(&f, rv.frame, rv.frame_len)) {
            cache_reset(s, s->next_seq);
            break;
        }
        const char *tp[64];
        const char **topics = rec_topics(&rv, tp);
        if (topics) {
            sse_store_entry e = {rv.id,         rv.id_len, topics,     rv.n_topics,
                                 rv.is_private, f,         rv.time_ms, r.pos};
            s->done_pos = r.pos;
            cache_add(s, &e, r.pos);
            if (topics != tp)
                sse__free(topics);
        } else {
            cache_reset(s, s->next_seq);
        }
        sse_frame_unref(f);
    }
    s->done_pos = saved;
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return 0;
out_fail:
    return rc;
}

int sse_store_lmdb_new(sse_store **out, const sse_store_lmdb_options *o)
{
    int rc;
    struct lmdb_store *s = NULL;
    if (o && o->errbuf && o->errbuf_len)
        o->errbuf[0] = '\0';
    if (!o || o->version != SSE_STORE_LMDB_OPTIONS_VERSION || !o->loop || !o->path || !o->path[0])
        return SSE_EINVAL;
    if (!(s = sse__calloc(1, sizeof(*s))) || !(s->path = sse__strdup(o->path))) {
        sse__free(s);
        return SSE_ENOMEM;
    }
    s->base.ops = &lmdb_ops;
    s->loop = o->loop;
    s->lock_fd = -1;
    s->nosync = o->sync == SSE_STORE_LMDB_NOSYNC;
    s->cached_replay = o->cached_replay;
    s->follower = o->follower;
    s->clock_entry = now_ms();
    s->clock_mono = mono_ms();
    s->pid = getpid();
    s->lim = o->limits;
    if (!s->lim.max_count && !s->lim.max_bytes && !s->lim.max_age_ms) {
        s->lim.max_count = 1000;
        s->lim.max_bytes = 16u << 20;
    }
    s->cache_lim.max_count = o->cache_count ? o->cache_count : DEFAULT_CACHE_COUNT;
    if (s->lim.max_count && s->cache_lim.max_count > s->lim.max_count)
        s->cache_lim.max_count = s->lim.max_count;
    s->cache_lim.max_bytes = o->cache_bytes ? o->cache_bytes : DEFAULT_CACHE_BYTES;
    if (s->follower && s->lim.max_bytes && s->cache_lim.max_bytes > s->lim.max_bytes)
        s->cache_lim.max_bytes = s->lim.max_bytes;
    if (s->follower)
        goto open_env; /* read-only: no directory made, no lock (the writer holds it) */

    /* The directory: created if missing, never something else. */
    struct stat st;
    if (stat(s->path, &st) != 0) {
        if (errno != ENOENT)
            FAIL(errno_code(errno), "%s: %s", s->path, strerror(errno));
        if (mkdir(s->path, 0750) != 0)
            FAIL(errno_code(errno), "cannot create the history directory %s: %s", s->path,
                 strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        FAIL(SSE_EPROTO,
             "%s is not a directory: the LMDB history is a directory (data.mdb, lock.mdb, "
             "ssehub.lock); refusing to touch the file",
             s->path);
    }
    /* One process per path: LMDB itself would let a second writer process in. */
    char lp[4096];
    if ((size_t)snprintf(lp, sizeof(lp), "%s/ssehub.lock", s->path) >= sizeof(lp))
        FAIL(SSE_EINVAL, "%s: path too long", s->path);
    s->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0)
        FAIL(errno_code(errno), "cannot open the lock file %s: %s", lp, strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t r = pread(s->lock_fd, pid, sizeof(pid) - 1, 0);
        pid[r > 0 ? r : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            FAIL(SSE_EBUSY,
                 "the history at %s is in use by another ssehub (pid %s, lock %s): one process "
                 "per history",
                 s->path, pid[0] ? pid : "unknown", lp);
        FAIL(SSE_EIO, "cannot lock %s: %s", lp, strerror(e));
    }
    char pid[32];
    int pl = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) != 0 || pwrite(s->lock_fd, pid, (size_t)pl, 0) != pl)
        FAIL(errno_code(errno), "cannot write the lock file %s: %s", lp, strerror(errno));

open_env:;
    size_t map = o->map_size ? o->map_size : sse_store_lmdb_default_map_size(&s->lim);
    if ((rc = mdb_env_create(&s->env))) {
        s->env = NULL;
        FAIL(map_err(rc), "%s: %s", s->path, mdb_strerror(rc));
    }
    mdb_env_set_maxdbs(s->env, 4);
    if ((rc = mdb_env_set_mapsize(s->env, map)))
        FAIL(map_err(rc), "%s: map size %zu: %s", s->path, map, mdb_strerror(rc));
    rc = mdb_env_open(s->env, s->path,
                      MDB_NOTLS | (s->follower ? MDB_RDONLY
                                   : s->nosync ? MDB_NOSYNC
                                               : 0),
                      0640);
    if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
        FAIL(SSE_EPROTO,
             "%s/data.mdb is not a usable LMDB file (%s): refusing to start, the file was not "
             "changed",
             s->path, mdb_strerror(rc));
    if (rc == EACCES || rc == EPERM || rc == EROFS)
        FAIL(SSE_EAUTH, "%s: permission denied (%s): the history needs read and write access",
             s->path, mdb_strerror(rc));
    if (rc == ENOENT && s->follower)
        FAIL(SSE_EPROTO, "%s: no history to follow (its writer has not created it)", s->path);
    if (rc)
        FAIL(map_err(rc), "%s: cannot open the history: %s", s->path, mdb_strerror(rc));
    int dead; /* reader slots of killed processes would keep old pages from being reused */
    mdb_reader_check(s->env, &dead);
    if ((rc = s->follower ? open_meta_ro(s, o) : open_meta(s, o)) || (rc = load_state(s, o)))
        goto out_fail;

    if (uv_mutex_init(&s->wmu) || uv_cond_init(&s->wcv) || uv_mutex_init(&s->rmu) ||
        uv_cond_init(&s->rcv) || uv_mutex_init(&s->dmu) ||
        uv_cond_init(&s->tcv)) /* not expected to fail on Linux */
        FAIL(SSE_ENOMEM, "%s: cannot make the locks", s->path);
    s->locks = 1;
    if (!(s->async = sse__calloc(1, sizeof(*s->async))))
        FAIL(SSE_ENOMEM, "%s: out of memory", s->path);
    if (uv_async_init(s->loop, s->async, on_async)) {
        sse__free(s->async);
        s->async = NULL;
        FAIL(SSE_EIO, "%s: cannot make the async handle", s->path);
    }
    s->async->data = s;
    uv_unref((uv_handle_t *)s->async); /* idle: the store alone does not keep the loop alive */
    if (s->follower)
        s->wexited = 1; /* no writer */
    else if (uv_thread_create(&s->wthr, writer_main, s))
        FAIL(SSE_ENOMEM, "%s: cannot start the writer thread", s->path);
    if (uv_thread_create(&s->rthr, reader_main, s)) {
        if (s->follower)
            FAIL(SSE_ENOMEM, "%s: cannot start the reader thread", s->path);
        uv_mutex_lock(&s->wmu); /* nothing is queued yet: it stops at once */
        s->wstop = 1;
        uv_cond_signal(&s->wcv);
        uv_mutex_unlock(&s->wmu);
        uv_thread_join(&s->wthr);
        FAIL(SSE_ENOMEM, "%s: cannot start the reader thread", s->path);
    }
    *out = &s->base;
    return 0;
out_fail:
    if (s->async)
        uv_close((uv_handle_t *)s->async, (uv_close_cb)sse__free);
    s->async = NULL;
    free_all(s);
    return rc;
}

int sse_store_lmdb_follow(sse_store *base, uint64_t relayed)
{
    struct lmdb_store *s = (struct lmdb_store *)base;
    if (!s || s->base.ops != &lmdb_ops || !s->follower)
        return SSE_EINVAL;
    s->done_pos = relayed;
    sse_store_free(s->cache); /* starts at the first relayed append */
    s->cache = NULL;
    return 0;
}

uint64_t sse_store_lmdb_position(const sse_store *base)
{
    const struct lmdb_store *s = (const struct lmdb_store *)base;
    return s && s->base.ops == &lmdb_ops ? s->done_pos : 0;
}

int sse_store_lmdb_reader_check(sse_store *base, int *dead)
{
    struct lmdb_store *s = (struct lmdb_store *)base;
    int n = 0;
    if (!s || s->base.ops != &lmdb_ops || s->pid != getpid() || !s->env)
        return SSE_EINVAL;
    int rc = mdb_reader_check(s->env, &n);
    if (dead)
        *dead = n;
    return map_err(rc);
}

/*
 * Around a fork() of the process that runs this store (the --workers master restarting a
 * worker): each of the store's threads is held in its wait, where it holds no lock of the C
 * library or of an allocator, by keeping its mutex until fork_release. glibc's malloc is
 * fork-safe by itself, but not every allocator is (the sanitizers' of clang 14 are not: a
 * worker forked while the writer was inside malloc deadlocked on its first allocation), and
 * nothing else a thread might hold at that instant would be either. A thread busy with a commit
 * or a read is waited for (milliseconds).
 */
void sse_store_lmdb_fork_hold(sse_store *base)
{
    struct lmdb_store *s = (struct lmdb_store *)base;
    if (!s || s->base.ops != &lmdb_ops || s->pid != getpid())
        return;
    for (;;) {
        uv_mutex_lock(&s->wmu);
        if (s->w_waiting || s->wexited)
            break;
        uv_mutex_unlock(&s->wmu);
        uv_sleep(1);
    }
    for (;;) {
        uv_mutex_lock(&s->rmu);
        if (s->r_waiting || s->rexited)
            break;
        uv_mutex_unlock(&s->rmu);
        uv_sleep(1);
    }
    s->fork_held = 1;
}

void sse_store_lmdb_fork_release(sse_store *base)
{
    struct lmdb_store *s = (struct lmdb_store *)base;
    if (!s || s->base.ops != &lmdb_ops || !s->fork_held)
        return;
    s->fork_held = 0;
    uv_mutex_unlock(&s->rmu);
    uv_mutex_unlock(&s->wmu);
}
