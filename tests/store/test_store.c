/*
 * test_store.c: the store.h contract, run through every backend's constructor, plus what only
 * some backends promise.
 *
 * The contract suite (contract_*) runs once per row of `backends`: the memory store and an
 * asynchronous fake that reports later and out of turn (fake_store.h), with and without the
 * optional replay_from, and LMDB (src/store/lmdb, each store in a new temporary directory). A
 * network backend joins with one row: its name and a constructor taking the limits and the loop.
 * Each case runs the loop until the store is idle before it looks at what the callbacks reported.
 * It checks: positions grow in call order and each append reports once; replay never shows an
 * entry before its append reported; replay after an id, from the earliest, after an unknown id
 * (found 0, nothing replayed), stopping early; replay_from where it is offered (after a position,
 * a gap reported as found 0), SSE_EUNSUPPORTED and no callback where it is not; scan_back; last_id
 * (SSE_ENOTFOUND when empty); trimming by count, bytes and age from the constructor's limits and by
 * trim(); stats; the entry's metadata and its frame (the same pointer, not a copy); close with and
 * without done (done once, after the calls in flight reported); a call that returns an error never
 * calls back.
 *
 * An id published twice resolves to its earliest copy (draft-08). Then the failing fake (every
 * append refused, by return, by an immediate callback, by a later one), and the memory store's
 * own cases: the ring's growth, allocation failures.
 */
#include "harness/check.h"
#include "harness/failalloc.h"
#include "store/fake_store.h"

#include <sse/store.h>
#include <sse/store_lmdb.h>
#include <stdint.h>
#include <unistd.h>

/* ---------------------------------------------------------------- backends */

struct backend {
    const char *name;
    int (*make)(sse_store **out, const sse_store_limits *lim, uv_loop_t *loop);
    int out_of_turn; /* its appends report out of call order (checked, so the fake stays one) */
};

static int make_memory(sse_store **out, const sse_store_limits *lim, uv_loop_t *loop)
{
    (void)loop;
    return sse_store_memory_new(out, lim);
}

/* LMDB: each store in a new directory under one temporary root, removed at exit. */
static char lmdb_root[256];

static void lmdb_cleanup(void)
{
    char cmd[600];
    if (!lmdb_root[0])
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", lmdb_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", lmdb_root);
}

static int make_lmdb(sse_store **out, const sse_store_limits *lim, uv_loop_t *loop)
{
    static int n;
    char path[300], err[512];
    if (!lmdb_root[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(lmdb_root, sizeof(lmdb_root), "%s/test_store.XXXXXX", tmp ? tmp : "/tmp");
        if (!mkdtemp(lmdb_root))
            return SSE_EIO;
        atexit(lmdb_cleanup);
    }
    snprintf(path, sizeof(path), "%s/s%d", lmdb_root, ++n);
    sse_store_lmdb_options o = SSE_STORE_LMDB_OPTIONS_INIT;
    o.loop = loop;
    o.path = path;
    if (lim)
        o.limits = *lim;
    o.sync = SSE_STORE_LMDB_NOSYNC; /* durability is test_durable.py's; here: the contract */
    o.errbuf = err;
    o.errbuf_len = sizeof(err);
    int rc = sse_store_lmdb_new(out, &o);
    if (rc)
        fprintf(stderr, "  lmdb: %s\n", err);
    return rc;
}

static const struct backend backends[] = {
    {"memory", make_memory, 0},
    {"async-out-of-turn", fake_async_new, 1},
    {"async-without-replay-from", fake_async_new_without_replay_from, 1},
    {"lmdb", make_lmdb, 0},
};

/* One store on its own loop. */
struct env {
    uv_loop_t loop;
    sse_store *s;
    int closed;       /* close's done fired (times) */
    const int *watch; /* close's done records watch[0..2] here (calls reported by then) */
    int watched[3];
};

static void closed(void *ud)
{
    struct env *v = ud;
    v->closed++;
    for (int i = 0; v->watch && i < 3; i++)
        v->watched[i] = v->watch[i];
}

static int env_open(struct env *v, const struct backend *b, const sse_store_limits *lim)
{
    memset(v, 0, sizeof(*v));
    CHECK_EQ_INT(uv_loop_init(&v->loop), 0);
    CHECK_EQ_INT(b->make(&v->s, lim, &v->loop), 0);
    return 0;
}

/* Let everything in flight complete. */
static void settle(struct env *v)
{
    uv_run(&v->loop, UV_RUN_DEFAULT);
}

/* Close the store, check done fired once and the loop holds nothing of it any more. */
static int env_close(struct env *v)
{
    sse_store_close(v->s, closed, v);
    settle(v);
    CHECK_EQ_INT(v->closed, 1);
    CHECK_EQ_INT(uv_loop_close(&v->loop), 0);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

#define MAXN 256

struct appends { /* what the append callbacks reported, by call number */
    int calls[MAXN];
    int status[MAXN];
    uint64_t pos[MAXN];
    size_t order[MAXN], n_order;
};

struct ack {
    struct appends *a;
    size_t k;
};
static struct ack acks[MAXN];

static void appended(void *ud, int status, uint64_t pos)
{
    struct ack *k = ud;
    k->a->calls[k->k]++;
    k->a->status[k->k] = status;
    k->a->pos[k->k] = pos;
    k->a->order[k->a->n_order++] = k->k;
}

static sse_frame *last_frame; /* the frame of the latest add() (borrowed) */

/* Append entry number k with this id; its callback goes to a (may be NULL: none). */
static int add_full(sse_store *s, struct appends *a, size_t k, const char *id, size_t payload,
                    long long t)
{
    static char buf[4096];
    memset(buf, 'x', sizeof(buf));
    sse_frame *f;
    if (sse_frame_new(&f, buf, payload))
        return SSE_ENOMEM;
    const char *topics[2] = {"/t", "/alt"};
    sse_store_entry e = {0};
    e.id = id;
    e.id_len = strlen(id);
    e.topics = topics;
    e.n_topics = 2;
    e.is_private = (int)(k % 2);
    e.frame = f;
    e.time_ms = t;
    last_frame = f;
    int rc;
    if (a) {
        acks[k] = (struct ack){a, k};
        rc = sse_store_append(s, &e, appended, &acks[k]);
    } else {
        rc = sse_store_append(s, &e, NULL, NULL);
    }
    sse_frame_unref(f); /* the store holds its own reference */
    return rc;
}

/* Append ids id1..idn (calls 0..n-1) at time t. */
static int add_n(sse_store *s, struct appends *a, int n, long long t)
{
    for (int i = 1; i <= n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "id%d", i);
        int rc = add_full(s, a, (size_t)i - 1, id, 10, t);
        if (rc)
            return rc;
    }
    return 0;
}

struct collect {
    char ids[MAXN][32];
    size_t n;
    int found, status, done;
    size_t stop_after;
    const sse_frame *frames[MAXN];
    int priv[MAXN];
    long long time[MAXN];
    size_t n_topics[MAXN];
    char topic1[MAXN][8];
    const struct appends *must_have_reported; /* each entry's append already reported */
    int unreported_seen;
};

static int each(void *ud, const sse_store_entry *e)
{
    struct collect *c = ud;
    if (c->n < MAXN) {
        snprintf(c->ids[c->n], sizeof(c->ids[0]), "%.*s", (int)e->id_len, e->id);
        c->frames[c->n] = e->frame;
        c->priv[c->n] = e->is_private;
        c->time[c->n] = e->time_ms;
        c->n_topics[c->n] = e->n_topics;
        snprintf(c->topic1[c->n], sizeof(c->topic1[0]), "%s", e->n_topics > 1 ? e->topics[1] : "");
        if (c->must_have_reported) {
            long k = strtol(e->id + 2, NULL, 10) - 1; /* "idK" is call K-1 */
            if (k < 0 || k >= MAXN || c->must_have_reported->calls[k] != 1 ||
                c->must_have_reported->status[k] != 0)
                c->unreported_seen++;
        }
    }
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void done(void *ud, int status, int found)
{
    struct collect *c = ud;
    c->found = found;
    c->status = status;
    c->done++;
}

/* replay (after NULL: earliest) into c, then run the loop until it is done. */
static int replay(struct env *v, const char *after, struct collect *c)
{
    size_t stop = c->stop_after;
    const struct appends *m = c->must_have_reported;
    memset(c, 0, sizeof(*c));
    c->stop_after = stop;
    c->must_have_reported = m;
    CHECK_EQ_INT(sse_store_replay(v->s, after, after ? strlen(after) : 0, each, done, c), 0);
    settle(v);
    CHECK_EQ_INT(c->done, 1);
    CHECK_EQ_INT(c->status, 0);
    return 0;
}

static int scan(struct env *v, const char *id, size_t max, struct collect *c)
{
    memset(c, 0, sizeof(*c));
    CHECK_EQ_INT(sse_store_scan_back(v->s, id, strlen(id), max, each, done, c), 0);
    settle(v);
    CHECK_EQ_INT(c->done, 1);
    CHECK_EQ_INT(c->status, 0);
    return 0;
}

/* ---------------------------------------------------------------- the contract */

/* Positions grow in call order; each append reports once, with 0. */
static int contract_positions(const struct backend *b)
{
    struct env v;
    static struct appends a;
    memset(&a, 0, sizeof(a));
    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    CHECK_EQ_INT(add_n(v.s, &a, 6, 1000), 0); /* a burst: all in flight at once */
    settle(&v);
    for (size_t k = 0; k < 6; k++) {
        CHECK_EQ_INT(a.calls[k], 1);
        CHECK_EQ_INT(a.status[k], 0);
        if (k)
            CHECK(a.pos[k] > a.pos[k - 1]);
    }
    CHECK_EQ_UINT(a.n_order, 6);
    int in_turn = 1;
    for (size_t i = 0; i < a.n_order; i++)
        in_turn &= a.order[i] == i;
    CHECK_EQ_INT(!in_turn, b->out_of_turn); /* the fake really reports out of turn */
    /* one at a time, too */
    CHECK_EQ_INT(add_full(v.s, &a, 6, "id7", 10, 1000), 0);
    settle(&v);
    CHECK_EQ_INT(add_full(v.s, &a, 7, "id8", 10, 1000), 0);
    settle(&v);
    CHECK(a.pos[6] > a.pos[5] && a.pos[7] > a.pos[6]);
    return env_close(&v);
}

/* Replay shows an entry only once its append reported, and then always. */
static int contract_reported_before_visible(const struct backend *b)
{
    struct env v;
    static struct appends a;
    memset(&a, 0, sizeof(a));
    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    struct collect early[3];
    memset(early, 0, sizeof(early));
    for (int i = 0; i < 3; i++)
        early[i].must_have_reported = &a;
    CHECK_EQ_INT(add_n(v.s, &a, 2, 1000), 0);
    /* replays started while appends are in flight, interleaved with more appends */
    CHECK_EQ_INT(sse_store_replay(v.s, NULL, 0, each, done, &early[0]), 0);
    CHECK_EQ_INT(add_full(v.s, &a, 2, "id3", 10, 1000), 0);
    CHECK_EQ_INT(sse_store_replay(v.s, NULL, 0, each, done, &early[1]), 0);
    CHECK_EQ_INT(add_full(v.s, &a, 3, "id4", 10, 1000), 0);
    CHECK_EQ_INT(sse_store_scan_back(v.s, "id1", 3, 10, each, done, &early[2]), 0);
    settle(&v);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(early[i].done, 1);
        CHECK_EQ_INT(early[i].unreported_seen, 0);
    }
    struct collect c = {0};
    c.must_have_reported = &a;
    CHECK_EQ_INT(replay(&v, NULL, &c), 0);
    CHECK_EQ_UINT(c.n, 4);
    CHECK_EQ_INT(c.unreported_seen, 0);
    return env_close(&v);
}

static int contract_replay(const struct backend *b)
{
    struct env v;
    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    CHECK_EQ_INT(add_n(v.s, NULL, 5, 1000), 0);
    settle(&v);
    struct collect c = {0};
    CHECK_EQ_INT(replay(&v, "id2", &c), 0);
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 3);
    CHECK_EQ_STR(c.ids[0], "id3");
    CHECK_EQ_STR(c.ids[1], "id4");
    CHECK_EQ_STR(c.ids[2], "id5");

    CHECK_EQ_INT(replay(&v, NULL, &c), 0); /* from the earliest */
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 5);
    CHECK_EQ_STR(c.ids[0], "id1");
    CHECK_EQ_STR(c.ids[4], "id5");

    CHECK_EQ_INT(replay(&v, "nope", &c), 0); /* unknown: found 0, nothing */
    CHECK_EQ_INT(c.found, 0);
    CHECK_EQ_UINT(c.n, 0);

    CHECK_EQ_INT(replay(&v, "id5", &c), 0); /* the newest: found, nothing after it */
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 0);

    c.stop_after = 2; /* each() asks to stop: done still fires, once */
    CHECK_EQ_INT(replay(&v, NULL, &c), 0);
    CHECK_EQ_UINT(c.n, 2);
    return env_close(&v);
}

static int contract_empty(const struct backend *b)
{
    struct env v;
    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    sse_buf out;
    sse_buf_init(&out, 0);
    CHECK_EQ_INT(sse_store_last_id(v.s, &out), SSE_ENOTFOUND);
    sse_buf_free(&out);
    struct collect c = {0};
    CHECK_EQ_INT(replay(&v, NULL, &c), 0);
    CHECK_EQ_INT(c.found, 1); /* "earliest" is always found */
    CHECK_EQ_UINT(c.n, 0);
    CHECK_EQ_INT(scan(&v, "x", 5, &c), 0);
    CHECK_EQ_INT(c.found, 0);
    size_t count = 1, bytes = 1;
    sse_store_stats(v.s, &count, &bytes);
    CHECK_EQ_UINT(count, 0);
    CHECK_EQ_UINT(bytes, 0);
    return env_close(&v);
}

static int contract_scan_back(const struct backend *b)
{
    struct env v;
    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    CHECK_EQ_INT(add_n(v.s, NULL, 5, 1000), 0);
    settle(&v);
    struct collect c = {0};
    CHECK_EQ_INT(scan(&v, "id4", 2, &c), 0); /* the id itself first, newest first */
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 2);
    CHECK_EQ_STR(c.ids[0], "id4");
    CHECK_EQ_STR(c.ids[1], "id3");
    CHECK_EQ_INT(scan(&v, "id3", 100, &c), 0); /* down to the oldest */
    CHECK_EQ_UINT(c.n, 3);
    CHECK_EQ_STR(c.ids[2], "id1");
    CHECK_EQ_INT(scan(&v, "nope", 100, &c), 0);
    CHECK_EQ_INT(c.found, 0);
    CHECK_EQ_UINT(c.n, 0);
    return env_close(&v);
}

/* replay_from (optional): the entries after a position; found 0 over a gap, what is kept then. */
static int contract_replay_from(const struct backend *b)
{
    struct env v;
    static struct appends a;
    memset(&a, 0, sizeof(a));
    sse_store_limits five = {5, 0, 0};
    CHECK_EQ_INT(env_open(&v, b, &five), 0);
    struct collect c = {0};
    if (!v.s->ops->replay_from) { /* not offered: refused, and no callback */
        CHECK_EQ_INT(sse_store_replay_from(v.s, 0, each, done, &c), SSE_EUNSUPPORTED);
        settle(&v);
        CHECK_EQ_INT(c.done, 0);
        return env_close(&v);
    }
    CHECK_EQ_INT(add_n(v.s, &a, 4, 1000), 0);
    settle(&v);
    CHECK_EQ_INT(sse_store_replay_from(v.s, 0, each, done, &c), 0); /* from the start */
    settle(&v);
    CHECK_EQ_INT(c.done, 1);
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 4);
    CHECK_EQ_STR(c.ids[0], "id1");
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(sse_store_replay_from(v.s, a.pos[1], each, done, &c), 0); /* after id2 */
    settle(&v);
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 2);
    CHECK_EQ_STR(c.ids[0], "id3");
    CHECK_EQ_STR(c.ids[1], "id4");
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(sse_store_replay_from(v.s, a.pos[3], each, done, &c), 0); /* after the newest */
    settle(&v);
    CHECK_EQ_INT(c.done, 1);
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 0);
    memset(&c, 0, sizeof(c));
    c.stop_after = 1; /* each() stops it: done still once */
    CHECK_EQ_INT(sse_store_replay_from(v.s, 0, each, done, &c), 0);
    settle(&v);
    CHECK_EQ_INT(c.done, 1);
    CHECK_EQ_UINT(c.n, 1);
    /* trimmed past the position: a gap (found 0), and what is kept comes */
    for (int i = 5; i <= 9; i++) {
        char id[16];
        snprintf(id, sizeof(id), "id%d", i);
        CHECK_EQ_INT(add_full(v.s, &a, (size_t)i - 1, id, 10, 1000), 0);
    }
    settle(&v);
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(sse_store_replay_from(v.s, a.pos[1], each, done, &c), 0);
    settle(&v);
    CHECK_EQ_INT(c.done, 1);
    CHECK_EQ_INT(c.found, 0);
    CHECK_EQ_UINT(c.n, 5);
    CHECK_EQ_STR(c.ids[0], "id5");
    CHECK_EQ_STR(c.ids[4], "id9");
    return env_close(&v);
}

static int contract_last_id(const struct backend *b)
{
    struct env v;
    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    CHECK_EQ_INT(add_n(v.s, NULL, 3, 1000), 0);
    settle(&v);
    sse_buf out;
    sse_buf_init(&out, 0);
    CHECK_EQ_INT(sse_buf_append_str(&out, "junk"), 0); /* reset first */
    CHECK_EQ_INT(sse_store_last_id(v.s, &out), 0);
    CHECK_EQ_STR(sse_buf_cstr(&out), "id3");
    sse_buf_free(&out);
    return env_close(&v);
}

/* The entry comes back as it went in; its frame is the same object, held by the store. */
static int contract_entry_and_frame(const struct backend *b)
{
    struct env v;
    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    CHECK_EQ_INT(add_full(v.s, NULL, 0, "a", 10, 1234), 0);
    const sse_frame *fa = last_frame; /* add_full dropped its reference: the store's remains */
    CHECK_EQ_INT(add_full(v.s, NULL, 1, "b", 20, 5678), 0);
    const sse_frame *fb = last_frame;
    settle(&v);
    struct collect c = {0};
    CHECK_EQ_INT(replay(&v, NULL, &c), 0);
    CHECK_EQ_UINT(c.n, 2);
    CHECK(c.frames[0] == fa); /* shared, not copied */
    CHECK(c.frames[1] == fb);
    CHECK_EQ_UINT(sse_frame_len(fa), 10);
    CHECK_EQ_UINT(sse_frame_len(fb), 20);
    CHECK_EQ_INT(c.priv[0], 0);
    CHECK_EQ_INT(c.priv[1], 1);
    CHECK_EQ_INT(c.time[0], 1234);
    CHECK_EQ_INT(c.time[1], 5678);
    CHECK_EQ_UINT(c.n_topics[0], 2);
    CHECK_EQ_STR(c.topic1[1], "/alt");
    return env_close(&v);
}

static int contract_trim(const struct backend *b)
{
    struct env v;
    size_t count, bytes;
    struct collect c = {0};
    sse_store_limits by_count = {3, 0, 0};
    CHECK_EQ_INT(env_open(&v, b, &by_count), 0);
    CHECK_EQ_INT(add_n(v.s, NULL, 200, 1000), 0); /* past any first growth */
    settle(&v);
    sse_store_stats(v.s, &count, &bytes);
    CHECK_EQ_UINT(count, 3);
    CHECK_EQ_INT(replay(&v, NULL, &c), 0);
    CHECK_EQ_UINT(c.n, 3);
    CHECK_EQ_STR(c.ids[0], "id198");
    CHECK_EQ_INT(replay(&v, "id197", &c), 0); /* trimmed away */
    CHECK_EQ_INT(c.found, 0);
    CHECK_EQ_INT(env_close(&v), 0);

    sse_store_limits by_bytes = {0, 3000, 0};
    CHECK_EQ_INT(env_open(&v, b, &by_bytes), 0);
    for (int i = 1; i <= 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "b%d", i);
        CHECK_EQ_INT(add_full(v.s, NULL, 0, id, 1000, 1000), 0);
    }
    settle(&v);
    sse_store_stats(v.s, &count, &bytes);
    CHECK(bytes <= 3000);
    CHECK(count >= 1 && count <= 2);
    CHECK_EQ_INT(replay(&v, NULL, &c), 0);
    CHECK_EQ_UINT(c.n, count);
    CHECK_EQ_STR(c.ids[count - 1], "b10"); /* the newest are kept */
    CHECK_EQ_INT(env_close(&v), 0);

    sse_store_limits by_age = {0, 0, 500};
    CHECK_EQ_INT(env_open(&v, b, &by_age), 0);
    CHECK_EQ_INT(add_full(v.s, NULL, 0, "old", 10, 1000), 0);
    CHECK_EQ_INT(add_full(v.s, NULL, 0, "mid", 10, 1400), 0);
    CHECK_EQ_INT(add_full(v.s, NULL, 0, "new", 10, 1600), 0); /* "old" is 600 ms old now */
    settle(&v);
    sse_store_stats(v.s, &count, &bytes);
    CHECK_EQ_UINT(count, 2);
    CHECK_EQ_INT(replay(&v, NULL, &c), 0);
    CHECK_EQ_STR(c.ids[0], "mid");
    /* trim() with its own limits and clock: 0 fields are not applied */
    sse_store_limits none = {0, 0, 0};
    CHECK_EQ_INT(sse_store_trim(v.s, &none, 1000000), 0);
    sse_store_stats(v.s, &count, &bytes);
    CHECK_EQ_UINT(count, 2);
    sse_store_limits one = {1, 0, 0};
    CHECK_EQ_INT(sse_store_trim(v.s, &one, 0), 0);
    sse_store_stats(v.s, &count, &bytes);
    CHECK_EQ_UINT(count, 1);
    CHECK_EQ_INT(sse_store_trim(v.s, &by_age, 10000), 0);
    sse_store_stats(v.s, &count, &bytes);
    CHECK_EQ_UINT(count, 0);
    CHECK_EQ_UINT(bytes, 0);
    return env_close(&v);
}

static int contract_stats(const struct backend *b)
{
    struct env v;
    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    size_t count, bytes, prev = 0;
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof(id), "s%d", i);
        CHECK_EQ_INT(add_full(v.s, NULL, 0, id, 500, 1000), 0);
        settle(&v);
        sse_store_stats(v.s, &count, &bytes);
        CHECK_EQ_UINT(count, (size_t)i + 1);
        CHECK(bytes >= prev + 500); /* at least the frame's bytes per entry */
        prev = bytes;
    }
    sse_store_stats(v.s, NULL, NULL); /* either out-param may be NULL */
    return env_close(&v);
}

/* Close: done once, after every call in flight reported once; without done too. */
static int contract_close(const struct backend *b)
{
    struct env v;
    static struct appends a;
    memset(&a, 0, sizeof(a));
    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    CHECK_EQ_INT(env_close(&v), 0); /* idle */

    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    CHECK_EQ_INT(add_n(v.s, &a, 3, 1000), 0);
    struct collect c = {0};
    CHECK_EQ_INT(sse_store_replay(v.s, NULL, 0, each, done, &c), 0);
    v.watch = a.calls;
    sse_store_close(v.s, closed, &v); /* with calls in flight */
    settle(&v);
    CHECK_EQ_INT(v.closed, 1);
    for (int k = 0; k < 3; k++) {
        CHECK_EQ_INT(v.watched[k], 1); /* completed or failed before done */
        CHECK_EQ_INT(a.calls[k], 1);   /* and only once */
    }
    CHECK_EQ_INT(c.done, 1);
    CHECK_EQ_INT(uv_loop_close(&v.loop), 0);

    CHECK_EQ_INT(env_open(&v, b, NULL), 0); /* without done, with calls in flight */
    CHECK_EQ_INT(add_n(v.s, NULL, 3, 1000), 0);
    sse_store_free(v.s);
    settle(&v);
    CHECK_EQ_INT(uv_loop_close(&v.loop), 0);
    sse_store_free(NULL); /* accepts NULL */
    return 0;
}

/* A call that returns an error never calls back. */
static int contract_error_no_callback(const struct backend *b)
{
    struct env v;
    static struct appends a;
    memset(&a, 0, sizeof(a));
    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    const char *topics[1] = {"/t"};
    sse_store_entry e = {0};
    e.id = "x";
    e.id_len = 1;
    e.topics = topics;
    e.n_topics = 1;
    e.frame = NULL; /* not acceptable */
    acks[0] = (struct ack){&a, 0};
    CHECK(sse_store_append(v.s, &e, appended, &acks[0]) < 0);
    settle(&v);
    CHECK_EQ_INT(a.calls[0], 0);
    size_t count;
    sse_store_stats(v.s, &count, NULL);
    CHECK_EQ_UINT(count, 0);
    return env_close(&v);
}

static int for_each_backend(int (*fn)(const struct backend *), const char *what)
{
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (fn(&backends[i])) {
            fprintf(stderr, "  (%s, backend %s)\n", what, backends[i].name);
            return 1;
        }
    return 0;
}

/* An id published twice resolves to its EARLIEST copy (draft-08): everything after that one,
   the later copy included, is replayed (before: after the newest copy, "b" was lost). */
static int contract_duplicate_ids(const struct backend *b)
{
    struct env v;
    CHECK_EQ_INT(env_open(&v, b, NULL), 0);
    const char *ids[5] = {"a", "dup", "b", "dup", "c"};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(add_full(v.s, NULL, 0, ids[i], 1, 0), 0);
    settle(&v);
    struct collect c = {0};
    CHECK_EQ_INT(replay(&v, "dup", &c), 0);
    CHECK_EQ_INT(c.found, 1);
    CHECK_EQ_UINT(c.n, 3);
    CHECK_EQ_STR(c.ids[0], "b");
    CHECK_EQ_STR(c.ids[1], "dup");
    CHECK_EQ_STR(c.ids[2], "c");
    return env_close(&v);
}

#define CONTRACT(fn)                                                                               \
    static int test_##fn(void)                                                                     \
    {                                                                                              \
        return for_each_backend(fn, #fn);                                                          \
    }
CONTRACT(contract_positions)
CONTRACT(contract_reported_before_visible)
CONTRACT(contract_replay)
CONTRACT(contract_empty)
CONTRACT(contract_scan_back)
CONTRACT(contract_replay_from)
CONTRACT(contract_last_id)
CONTRACT(contract_entry_and_frame)
CONTRACT(contract_trim)
CONTRACT(contract_stats)
CONTRACT(contract_close)
CONTRACT(contract_error_no_callback)
CONTRACT(contract_duplicate_ids)

/* ---------------------------------------------------------------- the failing fake */

static int failing(enum fake_fail_mode mode)
{
    struct env v;
    static struct appends a;
    memset(&a, 0, sizeof(a));
    memset(&v, 0, sizeof(v));
    CHECK_EQ_INT(uv_loop_init(&v.loop), 0);
    CHECK_EQ_INT(fake_fail_new(&v.s, mode, &v.loop), 0);
    int rc = add_full(v.s, &a, 0, "f1", 10, 1000);
    if (mode == FAKE_FAIL_RETURN) {
        CHECK(rc < 0);
        CHECK_EQ_INT(a.calls[0], 0); /* an error return: no callback */
    } else {
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(a.calls[0], mode == FAKE_FAIL_CB_NOW ? 1 : 0);
    }
    settle(&v);
    CHECK_EQ_INT(a.calls[0], mode == FAKE_FAIL_RETURN ? 0 : 1); /* once */
    if (mode != FAKE_FAIL_RETURN)
        CHECK(a.status[0] < 0);
    struct collect c = {0}; /* nothing was kept */
    CHECK_EQ_INT(replay(&v, NULL, &c), 0);
    CHECK_EQ_UINT(c.n, 0);
    sse_buf out;
    sse_buf_init(&out, 0);
    CHECK_EQ_INT(sse_store_last_id(v.s, &out), SSE_ENOTFOUND);
    sse_buf_free(&out);
    size_t count;
    sse_store_stats(v.s, &count, NULL);
    CHECK_EQ_UINT(count, 0);
    /* close with one in flight: it reports (an error) once, before done */
    memset(&a, 0, sizeof(a));
    add_full(v.s, &a, 0, "f2", 10, 1000);
    sse_store_close(v.s, closed, &v);
    CHECK_EQ_INT(a.calls[0], mode == FAKE_FAIL_RETURN ? 0 : 1);
    settle(&v);
    CHECK_EQ_INT(v.closed, 1);
    CHECK_EQ_INT(a.calls[0], mode == FAKE_FAIL_RETURN ? 0 : 1);
    CHECK_EQ_INT(uv_loop_close(&v.loop), 0);
    return 0;
}

static int test_failing_return(void)
{
    return failing(FAKE_FAIL_RETURN);
}

static int test_failing_callback_now(void)
{
    return failing(FAKE_FAIL_CB_NOW);
}

static int test_failing_callback_later(void)
{
    return failing(FAKE_FAIL_CB_LATER);
}

/* The asynchronous fake in hold mode reports exactly what it is told, when it is told. */
static int test_async_hold(void)
{
    struct env v;
    static struct appends a;
    memset(&a, 0, sizeof(a));
    CHECK_EQ_INT(env_open(&v, &backends[1], NULL), 0);
    fake_async_set_hold(v.s, 1);
    CHECK_EQ_INT(add_n(v.s, &a, 3, 1000), 0);
    uv_run(&v.loop, UV_RUN_NOWAIT);
    CHECK_EQ_UINT(fake_async_calls(v.s), 3);
    CHECK_EQ_UINT(fake_async_reported(v.s), 0);
    CHECK_EQ_STR(fake_async_id(v.s, 1), "id2");
    struct collect c = {0};
    CHECK_EQ_INT(replay(&v, NULL, &c), 0); /* nothing reported: nothing visible */
    CHECK_EQ_UINT(c.n, 0);
    CHECK_EQ_INT(fake_async_complete(v.s, 1), 0);
    CHECK_EQ_INT(fake_async_complete(v.s, 1), SSE_ENOTFOUND);
    CHECK_EQ_INT(a.calls[1], 1);
    CHECK_EQ_INT(a.calls[0], 0);
    CHECK_EQ_INT(replay(&v, NULL, &c), 0);
    CHECK_EQ_UINT(c.n, 1);
    CHECK_EQ_STR(c.ids[0], "id2");
    CHECK_EQ_INT(fake_async_complete(v.s, 0), 0);
    CHECK_EQ_INT(fake_async_complete(v.s, 2), 0);
    size_t order[3];
    CHECK_EQ_UINT(fake_async_report_order(v.s, order, 3), 3);
    CHECK(order[0] == 1 && order[1] == 0 && order[2] == 2);
    CHECK(a.pos[0] < a.pos[1] && a.pos[1] < a.pos[2]); /* positions: call order */
    return env_close(&v);
}

/* ---------------------------------------------------------------- the memory store's own */

/* Every call completes before it returns. */
static int test_memory_synchronous(void)
{
    sse_store *s;
    static struct appends a;
    memset(&a, 0, sizeof(a));
    CHECK_EQ_INT(sse_store_memory_new(&s, NULL), 0);
    CHECK_EQ_INT(add_full(s, &a, 0, "id1", 10, 0), 0);
    CHECK_EQ_INT(a.calls[0], 1);
    CHECK_EQ_UINT(a.pos[0], 1); /* positions start at 1 */
    struct collect c = {0};
    CHECK_EQ_INT(sse_store_replay(s, NULL, 0, each, done, &c), 0);
    CHECK_EQ_INT(c.done, 1);
    CHECK_EQ_UINT(c.n, 1);
    sse_store_free(s);
    return 0;
}

static void count_done(void *ud)
{
    (*(int *)ud)++;
}

static int test_memory_close_done_now(void)
{
    sse_store *s;
    int fired = 0;
    CHECK_EQ_INT(sse_store_memory_new(&s, NULL), 0);
    CHECK_EQ_INT(add_full(s, NULL, 0, "x", 10, 0), 0);
    sse_store_close(s, count_done, &fired);
    CHECK_EQ_INT(fired, 1);
    return 0;
}

static int test_memory_alloc_failures(void)
{
    for (long n = 1; n < 200; n++) {
        sse_store *s = NULL;
        failalloc_arm(n);
        int rc = sse_store_memory_new(&s, NULL);
        int ok = rc == 0;
        for (int i = 0; ok && i < 70; i++) {
            char id[16];
            snprintf(id, sizeof(id), "i%d", i);
            sse_frame *f;
            if (sse_frame_new(&f, "x", 1)) {
                ok = 0;
                break;
            }
            const char *topics[1] = {"/t"};
            sse_store_entry e = {0};
            e.id = id;
            e.id_len = strlen(id);
            e.topics = topics;
            e.n_topics = 1;
            e.frame = f;
            rc = sse_store_append(s, &e, NULL, NULL);
            sse_frame_unref(f);
            if (rc) {
                CHECK_EQ_INT(rc, SSE_ENOMEM);
                ok = 0;
            }
        }
        int hit = failalloc_hit_;
        failalloc_arm(0);
        sse_store_free(s);
        if (!hit)
            return 0;
    }
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_contract_positions), CHECK_TEST(test_contract_reported_before_visible),
           CHECK_TEST(test_contract_replay), CHECK_TEST(test_contract_empty),
           CHECK_TEST(test_contract_scan_back), CHECK_TEST(test_contract_replay_from),
           CHECK_TEST(test_contract_last_id), CHECK_TEST(test_contract_entry_and_frame),
           CHECK_TEST(test_contract_trim), CHECK_TEST(test_contract_stats),
           CHECK_TEST(test_contract_close), CHECK_TEST(test_contract_error_no_callback),
           CHECK_TEST(test_failing_return), CHECK_TEST(test_failing_callback_now),
           CHECK_TEST(test_failing_callback_later), CHECK_TEST(test_async_hold),
           CHECK_TEST(test_contract_duplicate_ids), CHECK_TEST(test_memory_synchronous),
           CHECK_TEST(test_memory_close_done_now), CHECK_TEST(test_memory_alloc_failures))
