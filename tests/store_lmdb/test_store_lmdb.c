/*
 * test_store_lmdb.c: the LMDB history backend through the store.h vtable, on a real loop and a
 * temporary directory: append order and positions (group commit), replay after an id / from the
 * earliest / unknown id, replay_from, scan back, last id, stats, trimming by count, bytes and
 * age, reopen (history and positions kept), replays served from the disk in batches (a tiny
 * cache), a full map (appends fail, the file stays readable), a second open refused, foreign
 * files refused and left unchanged, close with appends in flight. The follower (the workers of
 * --workers): a read-only second process replays the writer's file in batches, capped at the
 * position relayed to it, takes appends at their relayed position without writing, sees the
 * writer's trims, and a SIGKILLed reader's slot is cleared by the writer (reader_check).
 */
#include "harness/check.h"

#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <sse/store_lmdb.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

static uv_loop_t loop;
static char root[256];
static int dir_seq;

/* A fresh directory path (not created) under the test's temporary root. */
static const char *new_dir(char *buf, size_t len)
{
    snprintf(buf, len, "%s/h%d", root, ++dir_seq);
    return buf;
}

/* Run the loop until *flag is set (bounded: 20 s). */
static int run_until(const int *flag)
{
    uint64_t t0 = uv_hrtime();
    while (!*flag && uv_hrtime() - t0 < 20000000000ull)
        uv_run(&loop, UV_RUN_ONCE);
    return *flag ? 0 : -1;
}

struct collect {
    char ids[4096][16];
    uint64_t pos[4096];
    size_t n;
    int found, done, status;
    size_t stop_after;
};

static int each(void *ud, const sse_store_entry *e)
{
    struct collect *c = ud;
    if (c->n < 4096) {
        snprintf(c->ids[c->n], sizeof(c->ids[0]), "%.*s", (int)e->id_len, e->id);
        c->pos[c->n] = e->position;
    }
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void done(void *ud, int status, int found)
{
    struct collect *c = ud;
    c->found = found;
    c->status = status;
    c->done = 1;
}

struct acks {
    size_t n, failed;
    uint64_t last_pos;
    int out_of_order;
};

static void appended(void *ud, int status, uint64_t pos)
{
    struct acks *a = ud;
    a->n++;
    if (status) {
        a->failed++;
        return;
    }
    if (pos <= a->last_pos)
        a->out_of_order = 1;
    a->last_pos = pos;
}

static int add(sse_store *s, const char *id, size_t payload, long long t, struct acks *a)
{
    char buf[8192];
    memset(buf, 'x', sizeof(buf));
    snprintf(buf, 32, "data: %s\n\n", id);
    sse_frame *f;
    if (sse_frame_new(&f, buf, payload))
        return -1;
    const char *topics[2] = {"/t", "/alt"};
    sse_store_entry e = {0};
    e.id = id;
    e.id_len = strlen(id);
    e.topics = topics;
    e.n_topics = 2;
    e.is_private = id[0] == 'p';
    e.frame = f;
    e.time_ms = t;
    int rc = sse_store_append(s, &e, appended, a);
    sse_frame_unref(f);
    return rc;
}

static int open_store(sse_store **s, const char *path, size_t count, size_t bytes, size_t cache,
                      size_t map, char *err, size_t errlen)
{
    sse_store_lmdb_options o = SSE_STORE_LMDB_OPTIONS_INIT;
    o.loop = &loop;
    o.path = path;
    o.limits.max_count = count;
    o.limits.max_bytes = bytes;
    o.cache_count = cache;
    o.map_size = map;
    o.sync = SSE_STORE_LMDB_NOSYNC; /* the tests do not need the disk's flush */
    o.errbuf = err;
    o.errbuf_len = errlen;
    return sse_store_lmdb_new(s, &o);
}

static void closed(void *ud)
{
    *(int *)ud = 1;
}

static int close_store(sse_store *s)
{
    int c = 0;
    sse_store_close(s, closed, &c);
    return run_until(&c);
}

/* Append n entries id<from>..id<from+n-1> at time t and wait for every callback. */
static int add_n_at(sse_store *s, int from, int n, size_t payload, long long t, struct acks *a)
{
    char id[16];
    size_t want = a->n + (size_t)n;
    for (int i = from; i < from + n; i++) {
        snprintf(id, sizeof(id), "id%d", i);
        if (add(s, id, payload, t, a))
            return -1;
    }
    int ok = 0;
    uint64_t t0 = uv_hrtime();
    while (a->n < want && uv_hrtime() - t0 < 20000000000ull)
        uv_run(&loop, UV_RUN_ONCE);
    ok = a->n == want;
    return ok ? 0 : -1;
}

static int add_n(sse_store *s, int from, int n, size_t payload, struct acks *a)
{
    return add_n_at(s, from, n, payload, 1000, a);
}

static int replay_sync(sse_store *s, const char *after, struct collect *c)
{
    memset(c, 0, sizeof(*c));
    int rc = sse_store_replay(s, after, after ? strlen(after) : 0, each, done, c);
    if (rc)
        return rc;
    return run_until(&c->done);
}

static int test_append_replay(size_t cache)
{
    char dir[300], err[512];
    sse_store *s;
    struct acks a = {0};
    struct collect *c = calloc(1, sizeof(*c));
    CHECK(c);
    CHECK_EQ_INT(open_store(&s, new_dir(dir, sizeof(dir)), 0, 0, cache, 0, err, sizeof(err)), 0);
    CHECK_EQ_INT(sse_store_last_id(s, &(sse_buf){0}), SSE_ENOTFOUND);
    CHECK_EQ_INT(add_n(s, 1, 5, 40, &a), 0);
    CHECK_EQ_UINT(a.failed, 0);
    CHECK_EQ_UINT(a.last_pos, 5);
    CHECK(!a.out_of_order);

    CHECK_EQ_INT(replay_sync(s, "id2", c), 0);
    CHECK_EQ_INT(c->status, 0);
    CHECK_EQ_INT(c->found, 1);
    CHECK_EQ_UINT(c->n, 3);
    CHECK_EQ_STR(c->ids[0], "id3");
    CHECK_EQ_UINT(c->pos[0], 3);
    CHECK_EQ_STR(c->ids[2], "id5");

    CHECK_EQ_INT(replay_sync(s, NULL, c), 0);
    CHECK_EQ_INT(c->found, 1);
    CHECK_EQ_UINT(c->n, 5);
    CHECK_EQ_STR(c->ids[0], "id1");

    CHECK_EQ_INT(replay_sync(s, "nope", c), 0);
    CHECK_EQ_INT(c->found, 0);
    CHECK_EQ_UINT(c->n, 0);

    memset(c, 0, sizeof(*c));
    CHECK_EQ_INT(sse_store_replay_from(s, 3, each, done, c), 0);
    CHECK_EQ_INT(run_until(&c->done), 0);
    CHECK_EQ_INT(c->found, 1);
    CHECK_EQ_UINT(c->n, 2);
    CHECK_EQ_STR(c->ids[0], "id4");

    memset(c, 0, sizeof(*c));
    CHECK_EQ_INT(sse_store_scan_back(s, "id4", 3, 2, each, done, c), 0);
    CHECK_EQ_INT(run_until(&c->done), 0);
    CHECK_EQ_INT(c->found, 1);
    CHECK_EQ_UINT(c->n, 2);
    CHECK_EQ_STR(c->ids[0], "id4");
    CHECK_EQ_STR(c->ids[1], "id3");

    memset(c, 0, sizeof(*c));
    CHECK_EQ_INT(sse_store_scan_back(s, "zz", 2, 5, each, done, c), 0);
    CHECK_EQ_INT(run_until(&c->done), 0);
    CHECK_EQ_INT(c->found, 0);

    sse_buf b;
    sse_buf_init(&b, 64);
    CHECK_EQ_INT(sse_store_last_id(s, &b), 0);
    CHECK_EQ_MEM(b.data, b.len, "id5", 3);
    sse_buf_free(&b);
    size_t n, bytes;
    sse_store_stats(s, &n, &bytes);
    CHECK_EQ_UINT(n, 5);
    CHECK(bytes > 5 * 40);

    /* Stop early. */
    memset(c, 0, sizeof(*c));
    c->stop_after = 2;
    CHECK_EQ_INT(sse_store_replay(s, NULL, 0, each, done, c), 0);
    CHECK_EQ_INT(run_until(&c->done), 0);
    CHECK_EQ_UINT(c->n, 2);
    CHECK_EQ_INT(close_store(s), 0);
    free(c);
    return 0;
}

static int test_append_replay_cached(void)
{
    return test_append_replay(0);
}

/* With a one-entry cache, every replay but the newest entry's comes from the disk. */
static int test_append_replay_disk(void)
{
    return test_append_replay(1);
}

static int test_reopen(void)
{
    char dir[300], err[512];
    sse_store *s;
    struct acks a = {0};
    struct collect *c = calloc(1, sizeof(*c));
    CHECK(c);
    new_dir(dir, sizeof(dir));
    CHECK_EQ_INT(open_store(&s, dir, 0, 0, 0, 0, err, sizeof(err)), 0);
    CHECK_EQ_INT(add_n(s, 1, 10, 100, &a), 0);
    CHECK_EQ_INT(close_store(s), 0);

    CHECK_EQ_INT(open_store(&s, dir, 0, 0, 4, 0, err, sizeof(err)), 0);
    size_t n;
    sse_store_stats(s, &n, NULL);
    CHECK_EQ_UINT(n, 10);
    sse_buf b;
    sse_buf_init(&b, 64);
    CHECK_EQ_INT(sse_store_last_id(s, &b), 0);
    CHECK_EQ_MEM(b.data, b.len, "id10", 4);
    sse_buf_free(&b);
    CHECK_EQ_INT(replay_sync(s, "id3", c), 0); /* from the disk: the cache holds 4 */
    CHECK_EQ_INT(c->found, 1);
    CHECK_EQ_UINT(c->n, 7);
    CHECK_EQ_STR(c->ids[0], "id4");
    CHECK_EQ_UINT(c->pos[6], 10);
    a = (struct acks){0};
    CHECK_EQ_INT(add_n(s, 11, 3, 100, &a), 0);
    CHECK_EQ_UINT(a.last_pos, 13); /* positions go on */
    CHECK_EQ_INT(replay_sync(s, "id9", c), 0);
    CHECK_EQ_UINT(c->n, 4);
    CHECK_EQ_STR(c->ids[3], "id13");
    CHECK_EQ_INT(close_store(s), 0);
    free(c);
    return 0;
}

static int test_trim(void)
{
    char dir[300], err[512];
    sse_store *s;
    struct acks a = {0};
    struct collect *c = calloc(1, sizeof(*c));
    CHECK(c);
    CHECK_EQ_INT(open_store(&s, new_dir(dir, sizeof(dir)), 3, 0, 0, 0, err, sizeof(err)), 0);
    CHECK_EQ_INT(add_n(s, 1, 6, 50, &a), 0);
    size_t n, bytes;
    sse_store_stats(s, &n, &bytes);
    CHECK_EQ_UINT(n, 3);
    CHECK_EQ_INT(replay_sync(s, NULL, c), 0);
    CHECK_EQ_UINT(c->n, 3);
    CHECK_EQ_STR(c->ids[0], "id4");
    CHECK_EQ_INT(replay_sync(s, "id1", c), 0); /* trimmed: unknown */
    CHECK_EQ_INT(c->found, 0);
    memset(c, 0, sizeof(*c));
    CHECK_EQ_INT(sse_store_replay_from(s, 1, each, done, c), 0);
    CHECK_EQ_INT(run_until(&c->done), 0);
    CHECK_EQ_INT(c->found, 0); /* a gap */
    CHECK_EQ_UINT(c->n, 3);

    /* An explicit trim by bytes to one entry, then by age to none. */
    sse_store_limits lim = {0, bytes / 3 + 1, 0};
    CHECK_EQ_INT(sse_store_trim(s, &lim, 0), 0);
    CHECK_EQ_INT(add_n(s, 7, 1, 50, &a), 0); /* a commit after the trim was asked */
    sse_store_stats(s, &n, NULL);
    CHECK(n <= 2);
    sse_store_limits age = {0, 0, 10};
    CHECK_EQ_INT(sse_store_trim(s, &age, 100000), 0);
    CHECK_EQ_INT(add_n_at(s, 8, 1, 50, 100000, &a), 0); /* new at "now" 100000, the rest old */
    sse_store_stats(s, &n, NULL);
    CHECK_EQ_UINT(n, 1);
    CHECK_EQ_INT(close_store(s), 0);

    /* Bytes as a limit of the store itself. */
    CHECK_EQ_INT(open_store(&s, new_dir(dir, sizeof(dir)), 0, 20000, 0, 0, err, sizeof(err)), 0);
    a = (struct acks){0};
    CHECK_EQ_INT(add_n(s, 1, 50, 1000, &a), 0);
    sse_store_stats(s, &n, &bytes);
    CHECK(bytes <= 20000);
    CHECK(n >= 15 && n < 20);
    CHECK_EQ_INT(close_store(s), 0);
    free(c);
    return 0;
}

/* Many appends in flight: one or a few commits, positions in call order, callbacks in order. */
static int test_group_commit_and_batches(void)
{
    char dir[300], err[512];
    sse_store *s;
    struct acks a = {0};
    struct collect *c = calloc(1, sizeof(*c));
    CHECK(c);
    CHECK_EQ_INT(open_store(&s, new_dir(dir, sizeof(dir)), 5000, 0, 16, 0, err, sizeof(err)), 0);
    CHECK_EQ_INT(add_n(s, 1, 3000, 200, &a), 0);
    CHECK_EQ_UINT(a.failed, 0);
    CHECK(!a.out_of_order);
    CHECK_EQ_UINT(a.last_pos, 3000);
    /* Earliest: from the disk, in batches. */
    CHECK_EQ_INT(replay_sync(s, NULL, c), 0);
    CHECK_EQ_UINT(c->n, 3000);
    for (size_t i = 0; i < 3000 && i < 4096; i++)
        CHECK_EQ_UINT(c->pos[i], i + 1);
    CHECK_EQ_STR(c->ids[2999], "id3000");
    /* Backwards over batches. */
    memset(c, 0, sizeof(*c));
    CHECK_EQ_INT(sse_store_scan_back(s, "id2000", 6, 1500, each, done, c), 0);
    CHECK_EQ_INT(run_until(&c->done), 0);
    CHECK_EQ_UINT(c->n, 1500);
    CHECK_EQ_STR(c->ids[0], "id2000");
    CHECK_EQ_STR(c->ids[1499], "id501");
    /* Back from a cached id into the disk. */
    memset(c, 0, sizeof(*c));
    CHECK_EQ_INT(sse_store_scan_back(s, "id2999", 6, 40, each, done, c), 0);
    CHECK_EQ_INT(run_until(&c->done), 0);
    CHECK_EQ_UINT(c->n, 40);
    CHECK_EQ_STR(c->ids[39], "id2960");
    CHECK_EQ_INT(close_store(s), 0);
    free(c);
    return 0;
}

/* Under a steady stream the file stays near the byte limit: pages freed by trimming are reused. */
static int test_file_bounded(void)
{
    char dir[300], err[512], p[400];
    sse_store *s;
    struct acks a = {0};
    new_dir(dir, sizeof(dir));
    CHECK_EQ_INT(open_store(&s, dir, 0, 1 << 20, 0, 0, err, sizeof(err)), 0);
    for (int i = 0; i < 40; i++) /* 20,000 updates of 2 KB: 40 MB through a 1 MiB history */
        CHECK_EQ_INT(add_n(s, i * 500 + 1, 500, 2000, &a), 0);
    CHECK_EQ_UINT(a.failed, 0);
    size_t n, bytes;
    sse_store_stats(s, &n, &bytes);
    CHECK(bytes <= 1 << 20);
    CHECK_EQ_INT(close_store(s), 0);
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    struct stat st;
    CHECK_EQ_INT(stat(p, &st), 0);
    printf("     20,000 x 2 KB through a 1 MiB history: %zu kept, data.mdb %lld KiB\n", n,
           (long long)st.st_size / 1024);
    CHECK(st.st_size <= 8 << 20);
    return 0;
}

static int test_close_in_flight(void)
{
    char dir[300], err[512];
    sse_store *s;
    struct acks a = {0};
    new_dir(dir, sizeof(dir));
    CHECK_EQ_INT(open_store(&s, dir, 0, 0, 0, 0, err, sizeof(err)), 0);
    for (int i = 0; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof(id), "id%d", i + 1);
        CHECK_EQ_INT(add(s, id, 100, 1000, &a), 0);
    }
    struct collect c = {0};
    CHECK_EQ_INT(sse_store_replay(s, NULL, 0, each, done, &c), 0);
    CHECK_EQ_INT(close_store(s), 0);
    CHECK_EQ_UINT(a.n, 200); /* every append completed before done */
    CHECK_EQ_UINT(a.failed, 0);
    CHECK_EQ_INT(c.done, 1);
    CHECK_EQ_INT(open_store(&s, dir, 0, 0, 0, 0, err, sizeof(err)), 0);
    size_t n;
    sse_store_stats(s, &n, NULL);
    CHECK_EQ_UINT(n, 200);
    CHECK_EQ_INT(close_store(s), 0);
    return 0;
}

static int test_map_full(void)
{
    char dir[300], err[512];
    sse_store *s;
    struct acks a = {0};
    struct collect *c = calloc(1, sizeof(*c));
    CHECK(c);
    new_dir(dir, sizeof(dir));
    CHECK_EQ_INT(open_store(&s, dir, 100000, 0, 0, 256 << 10, err, sizeof(err)), 0);
    int i = 1;
    for (; i < 400 && !a.failed; i += 10)
        CHECK_EQ_INT(add_n(s, i, 10, 4000, &a), 0);
    CHECK(a.failed > 0);
    size_t kept = a.n - a.failed;
    /* Still readable, and a small append may still fit or fail cleanly. */
    CHECK_EQ_INT(replay_sync(s, NULL, c), 0);
    CHECK_EQ_INT(c->status, 0);
    CHECK_EQ_UINT(c->n, kept);
    CHECK_EQ_INT(close_store(s), 0);
    CHECK_EQ_INT(open_store(&s, dir, 100000, 0, 0, 256 << 10, err, sizeof(err)), 0);
    CHECK_EQ_INT(replay_sync(s, NULL, c), 0);
    CHECK_EQ_UINT(c->n, kept);
    CHECK_EQ_INT(close_store(s), 0);
    free(c);
    return 0;
}

static int test_second_open_refused(void)
{
    char dir[300], err[512] = "";
    sse_store *s, *t;
    new_dir(dir, sizeof(dir));
    CHECK_EQ_INT(open_store(&s, dir, 0, 0, 0, 0, err, sizeof(err)), 0);
    CHECK_EQ_INT(open_store(&t, dir, 0, 0, 0, 0, err, sizeof(err)), SSE_EBUSY);
    CHECK(strstr(err, "in use by another ssehub"));
    CHECK(strstr(err, dir));
    CHECK_EQ_INT(close_store(s), 0);
    CHECK_EQ_INT(open_store(&t, dir, 0, 0, 0, 0, err, sizeof(err)), 0); /* released */
    CHECK_EQ_INT(close_store(t), 0);
    return 0;
}

static int write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fputs(data, f);
    return fclose(f);
}

static int test_foreign_refused(void)
{
    char dir[300], err[512] = "", p[400], back[64];
    sse_store *s;
    /* A file where the directory should be. */
    new_dir(dir, sizeof(dir));
    CHECK_EQ_INT(write_file(dir, "not a directory\n"), 0);
    CHECK_EQ_INT(open_store(&s, dir, 0, 0, 0, 0, err, sizeof(err)), SSE_EPROTO);
    CHECK(strstr(err, "not a directory"));
    /* A data.mdb that is not LMDB: refused, not changed. */
    new_dir(dir, sizeof(dir));
    CHECK_EQ_INT(mkdir(dir, 0700), 0);
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    const char *junk = "this is somebody's data, not an LMDB file at all; keep it please.......";
    CHECK_EQ_INT(write_file(p, junk), 0);
    CHECK_EQ_INT(open_store(&s, dir, 0, 0, 0, 0, err, sizeof(err)), SSE_EPROTO);
    CHECK(strstr(err, "not a usable LMDB file"));
    FILE *f = fopen(p, "rb");
    CHECK(f);
    size_t got = fread(back, 1, sizeof(back) - 1, f);
    fclose(f);
    back[got] = '\0';
    CHECK(!strncmp(back, junk, got) && got == sizeof(back) - 1);
    /* An LMDB environment of somebody else: refused. */
    new_dir(dir, sizeof(dir));
    CHECK_EQ_INT(mkdir(dir, 0700), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    CHECK_EQ_INT(mdb_env_create(&env), 0);
    CHECK_EQ_INT(mdb_env_open(env, dir, 0, 0600), 0);
    CHECK_EQ_INT(mdb_txn_begin(env, NULL, 0, &txn), 0);
    CHECK_EQ_INT(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val k = {3, "key"}, v = {5, "value"};
    CHECK_EQ_INT(mdb_put(txn, dbi, &k, &v, 0), 0);
    CHECK_EQ_INT(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    CHECK_EQ_INT(open_store(&s, dir, 0, 0, 0, 0, err, sizeof(err)), SSE_EPROTO);
    CHECK(strstr(err, "not an ssehub history"));
    /* Permissions: a directory we may not write (root may write anything: checked as nobody, in
       a child process, when the test runs as root). */
    char pub[280];
    snprintf(pub, sizeof(pub), "%s/perm", root);
    CHECK_EQ_INT(mkdir(pub, 0755), 0);
    snprintf(dir, sizeof(dir), "%s/readonly", pub);
    CHECK_EQ_INT(mkdir(dir, 0555), 0);
    if (geteuid() != 0) {
        CHECK_EQ_INT(open_store(&s, dir, 0, 0, 0, 0, err, sizeof(err)), SSE_EAUTH);
        CHECK(strstr(err, "ermission denied"));
        return 0;
    }
    CHECK_EQ_INT(chmod(root, 0755), 0); /* nobody must reach pub */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int ok = setgid(65534) == 0 && setuid(65534) == 0 &&
                 open_store(&s, dir, 0, 0, 0, 0, err, sizeof(err)) == SSE_EAUTH &&
                 strstr(err, "ermission denied") != NULL;
        if (!ok)
            fprintf(stderr, "  as nobody: %s\n", err);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return 0;
}

/* Wall-clock ms (the store's clock for age limits). */
static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void tick(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Run the loop for ms milliseconds. */
static void run_for(unsigned ms)
{
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(&loop, &t);
    t.data = &fired;
    uv_timer_start(&t, tick, ms, 0);
    run_until(&fired);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/*
 * An age limit is applied by the writer thread when nobody publishes (no append, no trim call):
 * the file, the counts and the cache (replays answered without a disk read) forget the old
 * entries, and a reopened store does too.
 */
static int test_age_trimmed_idle(void)
{
    char dir[300], err[512];
    sse_store *s;
    struct acks a = {0};
    struct collect *c = calloc(1, sizeof(*c));
    CHECK(c);
    sse_store_lmdb_options o = SSE_STORE_LMDB_OPTIONS_INIT;
    o.loop = &loop;
    o.path = new_dir(dir, sizeof(dir));
    o.limits.max_age_ms = 400;
    o.sync = SSE_STORE_LMDB_NOSYNC;
    o.errbuf = err;
    o.errbuf_len = sizeof(err);
    CHECK_EQ_INT(sse_store_lmdb_new(&s, &o), 0);
    CHECK_EQ_INT(add_n_at(s, 1, 5, 50, wall_ms(), &a), 0);
    CHECK_EQ_INT(replay_sync(s, NULL, c), 0);
    CHECK_EQ_UINT(c->n, 5); /* young: kept */
    run_for(2500);          /* past the age, then the writer's once-a-second trim */
    size_t n = 99, bytes = 99;
    sse_store_stats(s, &n, &bytes);
    CHECK_EQ_UINT(n, 0);
    CHECK_EQ_UINT(bytes, 0);
    CHECK_EQ_INT(replay_sync(s, NULL, c), 0);
    CHECK_EQ_UINT(c->n, 0);
    CHECK_EQ_INT(replay_sync(s, "id3", c), 0);
    CHECK_EQ_INT(c->found, 0); /* trimmed: an unknown id */
    CHECK_EQ_INT(close_store(s), 0);
    o.limits.max_age_ms = 0; /* reopened without the limit: the file itself was trimmed */
    CHECK_EQ_INT(sse_store_lmdb_new(&s, &o), 0);
    CHECK_EQ_INT(replay_sync(s, NULL, c), 0);
    CHECK_EQ_UINT(c->n, 0);
    CHECK_EQ_INT(close_store(s), 0);
    free(c);
    return 0;
}

/* The whole content of a file into buf (at most cap bytes); its length, or -1. */
static long slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return (long)n;
}

/*
 * A history whose file was damaged (both meta pages' magic overwritten, as a bad disk or a
 * stray write would): refused with a reason, and not a byte of the file changed (the hub must
 * never "repair" a history by starting a new one over it).
 */
static int test_corrupt_refused_unchanged(void)
{
    char dir[300], err[512] = "", p[400];
    sse_store *s;
    struct acks a = {0};
    CHECK_EQ_INT(open_store(&s, new_dir(dir, sizeof(dir)), 0, 0, 0, 0, err, sizeof(err)), 0);
    CHECK_EQ_INT(add_n(s, 1, 20, 100, &a), 0);
    CHECK_EQ_INT(close_store(s), 0);
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    static char before[1 << 20], after[1 << 20];
    long len = slurp(p, before, sizeof(before));
    CHECK(len > 8192);
    /* LMDB's meta pages are pages 0 and 1; each begins with a 16-byte page header, then the
       magic. The page size is the OS's (4096 here). */
    long page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen(p, "r+b");
    CHECK(f);
    for (int m = 0; m < 2; m++) {
        CHECK_EQ_INT(fseek(f, m * page + 16, SEEK_SET), 0);
        CHECK_EQ_INT((int)fwrite("\xde\xad\xbe\xef", 1, 4, f), 4);
    }
    fclose(f);
    CHECK_EQ_INT(slurp(p, before, sizeof(before)), len);
    err[0] = '\0';
    CHECK_EQ_INT(open_store(&s, dir, 0, 0, 0, 0, err, sizeof(err)), SSE_EPROTO);
    CHECK(strstr(err, "not a usable LMDB file"));
    CHECK_EQ_INT(slurp(p, after, sizeof(after)), len);
    CHECK(!memcmp(before, after, (size_t)len));
    return 0;
}

static int test_bad_options(void)
{
    sse_store *s;
    sse_store_lmdb_options o = SSE_STORE_LMDB_OPTIONS_INIT;
    CHECK_EQ_INT(sse_store_lmdb_new(&s, &o), SSE_EINVAL);
    CHECK_EQ_INT(sse_store_lmdb_new(&s, NULL), SSE_EINVAL);
    sse_store_limits lim = {0, 16u << 20, 0};
    CHECK_EQ_UINT(sse_store_lmdb_default_map_size(&lim), 128u << 20);
    return 0;
}

/* ---------------------------------------------------------------- the follower */

/*
 * Run fn(dir) in a forked child with a loop of its own: a follower is a second process (LMDB
 * must not be opened twice in one process). rfd/wfd: a pipe pair each way for handshakes
 * (may be -1). 0 if the child passed.
 */
static int in_child(int (*fn)(const char *dir, int rfd, int wfd), const char *dir, int rfd, int wfd,
                    pid_t *out_pid)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) { /* the parent's loop and store are left alone (their threads are not here) */
        if (uv_loop_init(&loop))
            _exit(2);
        int rc = fn(dir, rfd, wfd);
        fflush(stdout);
        fflush(stderr);
        _exit(rc ? 1 : 0);
    }
    if (out_pid) {
        *out_pid = pid;
        return 0;
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int open_follower(sse_store **s, const char *path, size_t count, char *err, size_t errlen)
{
    sse_store_lmdb_options o = SSE_STORE_LMDB_OPTIONS_INIT;
    o.loop = &loop;
    o.path = path;
    o.limits.max_count = count;
    o.follower = 1;
    o.errbuf = err;
    o.errbuf_len = errlen;
    return sse_store_lmdb_new(s, &o);
}

static int scan_sync(sse_store *s, const char *id, size_t max, struct collect *c)
{
    memset(c, 0, sizeof(*c));
    int rc = sse_store_scan_back(s, id, strlen(id), max, each, done, c);
    return rc ? rc : run_until(&c->done);
}

/* The child of test_follower_replay: the writer holds 2000 entries, 1500 were "relayed". */
static int follower_replays(const char *dir, int rfd, int wfd)
{
    char err[512] = "";
    sse_store *s;
    struct collect *c = calloc(1, sizeof(*c));
    struct acks a = {0};
    (void)rfd;
    (void)wfd;
    CHECK(c);
    if (open_follower(&s, dir, 100000, err, sizeof(err)))
        CHECK_FAIL_("open_follower: %s", err);
    CHECK_EQ_INT(sse_store_lmdb_follow(s, 1500), 0);
    CHECK_EQ_UINT(sse_store_lmdb_position(s), 1500);
    /* From the earliest: every entry up to the relayed position, in order, over batches. */
    CHECK_EQ_INT(replay_sync(s, NULL, c), 0);
    CHECK_EQ_INT(c->status, 0);
    CHECK_EQ_INT(c->found, 1);
    CHECK_EQ_UINT(c->n, 1500);
    CHECK_EQ_STR(c->ids[0], "id1");
    CHECK_EQ_STR(c->ids[1499], "id1500");
    for (size_t i = 0; i < 1500; i++)
        CHECK_EQ_UINT(c->pos[i], i + 1);
    CHECK_EQ_INT(replay_sync(s, "id1000", c), 0);
    CHECK_EQ_INT(c->found, 1);
    CHECK_EQ_UINT(c->n, 500);
    CHECK_EQ_STR(c->ids[0], "id1001");
    CHECK_EQ_INT(replay_sync(s, "nope", c), 0);
    CHECK_EQ_INT(c->found, 0);
    CHECK_EQ_UINT(c->n, 0);
    CHECK_EQ_INT(scan_sync(s, "id10", 5, c), 0);
    CHECK_EQ_INT(c->found, 1);
    CHECK_EQ_UINT(c->n, 5);
    CHECK_EQ_STR(c->ids[0], "id10");
    CHECK_EQ_STR(c->ids[4], "id6");
    /* A relayed append: nothing written, the relayed position reported before it returns. */
    sse_frame *f;
    CHECK_EQ_INT(sse_frame_new(&f, "data: id1501\n\n", 14), 0);
    const char *topics[1] = {"/t"};
    sse_store_entry e = {"id1501", 6, topics, 1, 0, f, 1000, 1501};
    CHECK_EQ_INT(sse_store_append(s, &e, appended, &a), 0);
    CHECK_EQ_UINT(a.n, 1);
    CHECK_EQ_UINT(a.last_pos, 1501);
    e.position = 0; /* a follower cannot place an entry itself */
    CHECK_EQ_INT(sse_store_append(s, &e, appended, &a), SSE_EINVAL);
    sse_frame_unref(f);
    CHECK_EQ_INT(replay_sync(s, "id1499", c), 0);
    CHECK_EQ_UINT(c->n, 2);
    CHECK_EQ_STR(c->ids[1], "id1501");
    sse_buf b;
    sse_buf_init(&b, 0);
    CHECK_EQ_INT(sse_store_last_id(s, &b), 0);
    CHECK(b.len == 6 && !memcmp(b.data, "id1501", 6));
    sse_buf_free(&b);
    sse_store_limits lim = {1, 0, 0};
    CHECK_EQ_INT(sse_store_trim(s, &lim, 0), SSE_EUNSUPPORTED); /* the writer trims */
    size_t n;
    sse_store_stats(s, &n, NULL);
    CHECK_EQ_UINT(n, 2000); /* the file's count (this test's writer is ahead of the relay) */
    CHECK_EQ_INT(close_store(s), 0);
    free(c);
    return 0;
}

static int test_follower_replay(void)
{
    char dir[300], err[512] = "";
    sse_store *s, *t;
    struct acks a = {0};
    new_dir(dir, sizeof(dir));
    /* No history yet: a follower refuses (it creates nothing). */
    CHECK_EQ_INT(open_follower(&t, dir, 0, err, sizeof(err)), SSE_EPROTO);
    CHECK(strstr(err, dir));
    struct stat st;
    CHECK(stat(dir, &st) != 0); /* not even the directory */
    CHECK_EQ_INT(open_store(&s, dir, 100000, 0, 4, 0, err, sizeof(err)), 0);
    CHECK_EQ_INT(add_n(s, 1, 2000, 200, &a), 0);
    CHECK_EQ_UINT(a.failed, 0);
    /* The writer holds ssehub.lock: the follower takes none. */
    CHECK_EQ_INT(in_child(follower_replays, dir, -1, -1, NULL), 0);
    CHECK_EQ_INT(close_store(s), 0);
    return 0;
}

/* The child of test_follower_sees_trims: opened before the writer trims, replays after. */
static int follower_trimmed(const char *dir, int rfd, int wfd)
{
    char err[512] = "", ch;
    sse_store *s;
    struct collect *c = calloc(1, sizeof(*c));
    CHECK(c);
    /* Limits wider than the writer's (its cache then holds more than the file): the file's
       trims decide all the same. */
    if (open_follower(&s, dir, 100, err, sizeof(err)))
        CHECK_FAIL_("open_follower: %s", err);
    CHECK_EQ_INT(sse_store_lmdb_follow(s, 10), 0);
    CHECK_EQ_INT(replay_sync(s, "id5", c), 0);
    CHECK_EQ_INT(c->found, 1);
    CHECK_EQ_UINT(c->n, 5);
    CHECK_EQ_INT(write(wfd, "o", 1), 1); /* opened: the writer may go on */
    CHECK_EQ_INT(read(rfd, &ch, 1), 1);  /* it appended 20 more, trimmed to 10 */
    /* The relay of those 20 (the cache holds them all): still, the file decides. */
    struct acks a = {0};
    const char *topics[1] = {"/t"};
    for (int i = 11; i <= 30; i++) {
        char id[16];
        sse_frame *f;
        snprintf(id, sizeof(id), "id%d", i);
        CHECK_EQ_INT(sse_frame_new(&f, "data: x\n\n", 9), 0);
        sse_store_entry e = {id, strlen(id), topics, 1, 0, f, 1000, (uint64_t)i};
        CHECK_EQ_INT(sse_store_append(s, &e, appended, &a), 0);
        sse_frame_unref(f);
    }
    CHECK_EQ_UINT(a.n, 20);
    CHECK_EQ_UINT(sse_store_lmdb_position(s), 30);
    CHECK_EQ_INT(replay_sync(s, "id5", c), 0); /* trimmed away: unknown, as in the writer */
    CHECK_EQ_INT(c->found, 0);
    CHECK_EQ_UINT(c->n, 0);
    CHECK_EQ_INT(replay_sync(s, "id15", c), 0); /* in the follower's cache, not in the file */
    CHECK_EQ_INT(c->found, 0);
    CHECK_EQ_UINT(c->n, 0);
    CHECK_EQ_INT(replay_sync(s, "id25", c), 0);
    CHECK_EQ_INT(c->found, 1);
    CHECK_EQ_UINT(c->n, 5);
    CHECK_EQ_STR(c->ids[0], "id26");
    CHECK_EQ_INT(replay_sync(s, NULL, c), 0);
    CHECK_EQ_UINT(c->n, 10);
    CHECK_EQ_STR(c->ids[0], "id21");
    memset(c, 0, sizeof(*c));
    CHECK_EQ_INT(sse_store_replay_from(s, 3, each, done, c), 0);
    CHECK_EQ_INT(run_until(&c->done), 0);
    CHECK_EQ_INT(c->found, 0); /* a gap */
    CHECK_EQ_UINT(c->n, 10);
    CHECK_EQ_INT(close_store(s), 0);
    free(c);
    return 0;
}

static int test_follower_sees_trims(void)
{
    char dir[300], err[512] = "", ch = 0;
    sse_store *s;
    struct acks a = {0};
    int to_child[2], to_parent[2];
    pid_t pid;
    new_dir(dir, sizeof(dir));
    CHECK_EQ_INT(open_store(&s, dir, 10, 0, 0, 0, err, sizeof(err)), 0);
    CHECK_EQ_INT(add_n(s, 1, 10, 100, &a), 0);
    CHECK_EQ_INT(pipe(to_child), 0);
    CHECK_EQ_INT(pipe(to_parent), 0);
    CHECK_EQ_INT(in_child(follower_trimmed, dir, to_child[0], to_parent[1], &pid), 0);
    int got = (int)read(to_parent[0], &ch, 1);
    if (got == 1)
        got = add_n(s, 11, 20, 100, &a) == 0 && write(to_child[1], "t", 1) == 1;
    int st = 0;
    waitpid(pid, &st, 0);
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
    CHECK_EQ_INT(got, 1);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ_INT(close_store(s), 0);
    return 0;
}

/* The child of test_reader_check: a reader that is SIGKILLed inside a read transaction. */
static int reader_killed(const char *dir, int rfd, int wfd)
{
    MDB_env *env;
    MDB_txn *txn;
    (void)rfd;
    CHECK_EQ_INT(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    CHECK_EQ_INT(mdb_env_open(env, dir, MDB_RDONLY, 0640), 0);
    CHECK_EQ_INT(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    CHECK_EQ_INT(write(wfd, "r", 1), 1);
    pause(); /* killed here, its reader slot taken */
    return 1;
}

static int test_reader_check(void)
{
    char dir[300], err[512] = "", ch = 0;
    sse_store *s;
    struct acks a = {0};
    int to_parent[2], dead = -1;
    pid_t pid;
    new_dir(dir, sizeof(dir));
    CHECK_EQ_INT(open_store(&s, dir, 100, 0, 0, 0, err, sizeof(err)), 0);
    CHECK_EQ_INT(add_n(s, 1, 10, 100, &a), 0);
    CHECK_EQ_INT(pipe(to_parent), 0);
    CHECK_EQ_INT(in_child(reader_killed, dir, -1, to_parent[1], &pid), 0);
    int got = (int)read(to_parent[0], &ch, 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(to_parent[0]);
    close(to_parent[1]);
    CHECK_EQ_INT(got, 1);
    /* Its slot stays taken (pinning the pages of its snapshot) until the writer's process
       clears it: once. */
    CHECK_EQ_INT(sse_store_lmdb_reader_check(s, &dead), 0);
    CHECK_EQ_INT(dead, 1);
    CHECK_EQ_INT(sse_store_lmdb_reader_check(s, &dead), 0);
    CHECK_EQ_INT(dead, 0);
    CHECK_EQ_INT(close_store(s), 0);
    return 0;
}

static int setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/test_store_lmdb.XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        return -1;
    return uv_loop_init(&loop);
}

static void teardown(void)
{
    char cmd[600];
    uv_loop_close(&loop);
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s' && rm -rf '%s'", root, root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
}

int run(int argc, char **argv);

int main(int argc, char **argv)
{
    if (setup()) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    int rc = run(argc, argv);
    teardown();
    return rc;
}

#define main run
CHECK_MAIN(CHECK_TEST(test_append_replay_cached), CHECK_TEST(test_append_replay_disk),
           CHECK_TEST(test_reopen), CHECK_TEST(test_trim),
           CHECK_TEST(test_group_commit_and_batches), CHECK_TEST(test_file_bounded),
           CHECK_TEST(test_close_in_flight), CHECK_TEST(test_map_full),
           CHECK_TEST(test_second_open_refused), CHECK_TEST(test_foreign_refused),
           CHECK_TEST(test_bad_options), CHECK_TEST(test_age_trimmed_idle),
           CHECK_TEST(test_corrupt_refused_unchanged), CHECK_TEST(test_follower_replay),
           CHECK_TEST(test_follower_sees_trims), CHECK_TEST(test_reader_check))
