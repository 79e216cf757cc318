/*
 * test_redis.c: the Redis bus's checks on what Redis hands back (src/bus/redis/redis_entry.c):
 * redis:// URLs, stream entry ids, and XREAD / XRANGE replies with good, garbage and oversized
 * entries (the replies are written as RESP and parsed by hiredis's own reader, as on the wire).
 * test_live_two_members: two buses on one loop over a redis-server started here (skipped without
 * one): order, no repeat, Redis killed and restarted, close with publishes in flight. Nodes over
 * a live Redis are tested by tests/integration/test_redis.py.
 */
#include "bus/redis/redis_entry.h"
#include "harness/check.h"
#include "harness/failalloc.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sse/bus_redis.h>
#include <sse/error.h>
#include <sse/store.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int test_url(void)
{
    struct sse__redis_url u;
    CHECK_EQ_INT(sse__redis_url_parse("redis://127.0.0.1:6380", &u), 0);
    CHECK_EQ_STR(u.host, "127.0.0.1");
    CHECK_EQ_INT(u.port, 6380);
    CHECK_EQ_INT(u.db, 0);
    CHECK_EQ_STR(u.pass, "");
    CHECK_EQ_INT(sse__redis_url_parse("redis://localhost", &u), 0);
    CHECK_EQ_INT(u.port, 6379);
    CHECK_EQ_INT(sse__redis_url_parse("redis://al:s%40cret@10.0.0.1:7000/3", &u), 0);
    CHECK_EQ_STR(u.user, "al");
    CHECK_EQ_STR(u.pass, "s@cret");
    CHECK_EQ_STR(u.host, "10.0.0.1");
    CHECK_EQ_INT(u.port, 7000);
    CHECK_EQ_INT(u.db, 3);
    CHECK_EQ_INT(sse__redis_url_parse("redis://:pw@h:1/", &u), 0);
    CHECK_EQ_STR(u.user, "");
    CHECK_EQ_STR(u.pass, "pw");
    CHECK_EQ_INT(sse__redis_url_parse("redis://[::1]:6379/1", &u), 0);
    CHECK_EQ_STR(u.host, "::1");
    CHECK_EQ_INT(u.db, 1);
    static const char *bad[] = {NULL,
                                "",
                                "http://h:1",
                                "redis://",
                                "redis://:1",
                                "redis://h:0",
                                "redis://h:65536",
                                "redis://h:x",
                                "redis://h:1/x",
                                "redis://user@h",
                                "redis://u:@h",
                                "redis://u:%zz@h",
                                "redis://u:%00@h",
                                "redis://[::1",
                                "redis://[]:1",
                                "redis://h h:1",
                                "redis://h:1/99999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(sse__redis_url_parse(bad[i], &u), SSE_EINVAL);
    return 0;
}

static int test_ids(void)
{
    uint64_t ms, seq;
    CHECK_EQ_INT(sse__redis_parse_id("1700000000000-5", 15, &ms, &seq), 0);
    CHECK_EQ_UINT(ms, 1700000000000ULL);
    CHECK_EQ_UINT(seq, 5);
    CHECK_EQ_INT(sse__redis_parse_id("18446744073709551615-18446744073709551615", 41, &ms, &seq),
                 0);
    CHECK_EQ_UINT(ms, UINT64_MAX);
    static const char *bad[] = {"",    "1",     "-1",   "1-",   "a-1",
                                "1-a", "1-1-1", "+1-1", "1- 1", "18446744073709551616-0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(sse__redis_parse_id(bad[i], strlen(bad[i]), &ms, &seq), SSE_EPROTO);
    return 0;
}

static int test_redirect(void)
{
    char host[64];
    int port = 0;
    const char *m = "MOVED 3999 127.0.0.1:6381";
    CHECK_EQ_INT(sse__redis_redirect(m, strlen(m), host, sizeof(host), &port), 1);
    CHECK_EQ_STR(host, "127.0.0.1");
    CHECK_EQ_INT(port, 6381);
    m = "ASK 1 ::1:7000";
    CHECK_EQ_INT(sse__redis_redirect(m, strlen(m), host, sizeof(host), &port), 2);
    CHECK_EQ_STR(host, "::1");
    CHECK_EQ_INT(port, 7000);
    static const char *bad[] = {"MOVED",         "MOVED 1",         "MOVED x h:1",
                                "MOVED 1 h",     "MOVED 1 h:0",     "MOVED 1 :1",
                                "MOVED 1 h:1 x", "ERR MOVED 1 h:1", "MOVED 123456 h:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(sse__redis_redirect(bad[i], strlen(bad[i]), host, sizeof(host), &port), 0);
    m = "MOVED 1 a-very-long-host-name-that-does-not-fit:1";
    CHECK_EQ_INT(sse__redis_redirect(m, strlen(m), host, 8, &port), 0);
    return 0;
}

/* Parse one RESP reply with hiredis's reader (NULL if incomplete or malformed). */
static redisReply *parse(const char *resp)
{
    redisReader *r = redisReaderCreate();
    void *reply = NULL;
    if (redisReaderFeed(r, resp, strlen(resp)) != REDIS_OK ||
        redisReaderGetReply(r, &reply) != REDIS_OK)
        reply = NULL;
    redisReaderFree(r);
    return reply;
}

struct seen {
    int n, ok;
    char ids[8][48];
    char msgs[8][32];
    int oks[8];
    int stop_after;
};

static int collect(void *ud, const struct sse__redis_entry *e)
{
    struct seen *s = ud;
    if (s->n < 8) {
        memcpy(s->ids[s->n], e->id, e->id_len);
        s->ids[s->n][e->id_len] = '\0';
        s->oks[s->n] = e->ok;
        if (e->ok && e->len < 32) {
            memcpy(s->msgs[s->n], e->msg, e->len);
            s->msgs[s->n][e->len] = '\0';
        }
    }
    s->n++;
    s->ok += e->ok;
    return s->stop_after && s->n >= s->stop_after;
}

static int test_xread_good(void)
{
    /* [[key, [[1-1, [m, hello]], [1-2, [x, y, m, world]]]]] */
    redisReply *r =
        parse("*1\r\n*2\r\n$1\r\nk\r\n*2\r\n"
              "*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nm\r\n$5\r\nhello\r\n"
              "*2\r\n$3\r\n1-2\r\n*4\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\nm\r\n$5\r\nworld\r\n");
    CHECK(r != NULL);
    struct seen s = {0};
    size_t skipped = 0;
    CHECK_EQ_INT(sse__redis_xread(r, 100, collect, &s, &skipped), 2);
    CHECK_EQ_INT(s.ok, 2);
    CHECK_EQ_STR(s.ids[0], "1-1");
    CHECK_EQ_STR(s.msgs[0], "hello");
    CHECK_EQ_STR(s.ids[1], "1-2");
    CHECK_EQ_STR(s.msgs[1], "world");
    CHECK_EQ_UINT(skipped, 0);
    /* The callback stops the walk. */
    struct seen s2 = {0};
    s2.stop_after = 1;
    CHECK_EQ_INT(sse__redis_xread(r, 100, collect, &s2, NULL), 1);
    freeReplyObject(r);
    /* BLOCK timed out: nil. */
    r = parse("*-1\r\n");
    CHECK(r != NULL);
    struct seen s3 = {0};
    CHECK_EQ_INT(sse__redis_xread(r, 100, collect, &s3, NULL), 0);
    freeReplyObject(r);
    return 0;
}

static int test_xread_garbage(void)
{
    /* Entries: a bad id (skipped), no "m", "m" not a string, oversized, odd field count, good. */
    redisReply *r = parse("*1\r\n*2\r\n$1\r\nk\r\n*6\r\n"
                          "*2\r\n$3\r\nzzz\r\n*2\r\n$1\r\nm\r\n$1\r\na\r\n"
                          "*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nq\r\n$1\r\na\r\n"
                          "*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\nm\r\n:5\r\n"
                          "*2\r\n$3\r\n1-3\r\n*2\r\n$1\r\nm\r\n$11\r\n01234567890\r\n"
                          "*2\r\n$3\r\n1-4\r\n*1\r\n$1\r\nm\r\n"
                          "*2\r\n$3\r\n1-5\r\n*2\r\n$1\r\nm\r\n$2\r\nok\r\n");
    CHECK(r != NULL);
    struct seen s = {0};
    size_t skipped = 0;
    CHECK_EQ_INT(sse__redis_xread(r, 10, collect, &s, &skipped), 5);
    CHECK_EQ_UINT(skipped, 1);
    CHECK_EQ_INT(s.ok, 1);
    CHECK_EQ_STR(s.ids[0], "1-1");
    CHECK_EQ_INT(s.oks[0], 0);
    CHECK_EQ_INT(s.oks[2], 0); /* oversized: refused, the id still advances the reader */
    CHECK_EQ_STR(s.ids[4], "1-5");
    CHECK_EQ_STR(s.msgs[4], "ok");
    freeReplyObject(r);
    /* Replies of the wrong shape: refused whole. */
    static const char *bad[] = {"-WRONGTYPE Operation against a key holding the wrong kind\r\n",
                                ":1\r\n",
                                "*0\r\n",
                                "*1\r\n:1\r\n",
                                "*1\r\n*1\r\n$1\r\nk\r\n",
                                "*1\r\n*2\r\n$1\r\nk\r\n:3\r\n",
                                "*2\r\n*2\r\n$1\r\nk\r\n*0\r\n*2\r\n$1\r\nk\r\n*0\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = parse(bad[i]);
        CHECK(r != NULL);
        struct seen z = {0};
        CHECK_EQ_INT(sse__redis_xread(r, 10, collect, &z, NULL), SSE_EPROTO);
        CHECK_EQ_INT(z.n, 0);
        freeReplyObject(r);
    }
    CHECK_EQ_INT(sse__redis_xread(NULL, 10, collect, NULL, NULL), SSE_EPROTO);
    return 0;
}

static int test_xrange(void)
{
    redisReply *r = parse("*1\r\n*2\r\n$5\r\n9-100\r\n*2\r\n$1\r\nm\r\n$0\r\n\r\n");
    CHECK(r != NULL);
    struct seen s = {0};
    CHECK_EQ_INT(sse__redis_entries(r, 10, collect, &s, NULL), 1);
    CHECK_EQ_STR(s.ids[0], "9-100");
    CHECK_EQ_INT(s.oks[0], 1);
    freeReplyObject(r);
    r = parse("-ERR no\r\n");
    CHECK_EQ_INT(sse__redis_entries(r, 10, collect, &s, NULL), SSE_EPROTO);
    freeReplyObject(r);
    return 0;
}

static int test_bus_new_refuses(void)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    sse_bus *b = NULL;
    const char *good[1] = {"redis://127.0.0.1:1"};
    const char *bad[2] = {"redis://127.0.0.1:1", "nope"};
    sse_bus_redis_options o = SSE_BUS_REDIS_OPTIONS_INIT;
    CHECK_EQ_INT(sse_bus_redis_new(&b, &o), SSE_EINVAL); /* no loop, no URL */
    o.loop = &loop;
    o.urls = bad;
    o.n_urls = 2;
    CHECK_EQ_INT(sse_bus_redis_new(&b, &o), SSE_EINVAL);
    CHECK(b == NULL);
    o.urls = good;
    o.n_urls = 1;
    CHECK_EQ_INT(sse_bus_redis_new(&b, &o), 0);
    /* Unreachable at start-up: the load says so, nothing hangs. */
    sse_store *st = NULL;
    CHECK_EQ_INT(sse_store_memory_new(&st, NULL), 0);
    CHECK_EQ_INT(sse_bus_redis_load_history(b, st), SSE_EIO);
    sse_store_free(st);
    sse_bus_close(b, NULL, NULL);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    return 0;
}

static void ignore_msg(void *ud, const void *msg, size_t len, unsigned flags)
{
    (void)ud, (void)msg, (void)len, (void)flags;
}

/* Every allocation of new / start / (re)connect / close failing in turn, against a port where
   nothing listens: each run fails cleanly or goes on (no crash, no leak under ASan). */
static int test_bus_alloc_failures(void)
{
    const char *urls[2] = {"redis://127.0.0.1:1", "redis://127.0.0.1:1"};
    int n;
    for (n = 1; n < 200; n++) {
        uv_loop_t loop;
        CHECK_EQ_INT(uv_loop_init(&loop), 0);
        sse_bus_redis_options o = SSE_BUS_REDIS_OPTIONS_INIT;
        o.loop = &loop;
        o.urls = urls;
        o.n_urls = 2;
        sse_bus *b = NULL;
        failalloc_arm(n);
        int rc = sse_bus_redis_new(&b, &o), hit;
        if (rc) {
            hit = failalloc_was_hit();
            failalloc_arm(0);
            CHECK_EQ_INT(rc, SSE_ENOMEM);
            CHECK(b == NULL);
        } else {
            rc = sse_bus_start(b, ignore_msg, NULL);
            CHECK(rc == 0 || rc == SSE_ENOMEM);
            for (int i = 0; i < 5; i++)
                uv_run(&loop, UV_RUN_NOWAIT);
            hit = failalloc_was_hit();
            failalloc_arm(0);
            sse_bus_close(b, NULL, NULL);
        }
        CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
        CHECK_EQ_INT(uv_loop_close(&loop), 0);
        if (!hit)
            break;
    }
    CHECK(n > 3 && n < 200); /* several allocations were failed in turn */
    return 0;
}

/* ---------------------------------------------------------------- against a live redis-server */

/* A redis-server child on a free loopback port, in its own directory (pid 0: not available). */
struct live_redis {
    pid_t pid;
    int port;
    char dir[64];
    char url[64];
};

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    socklen_t n = sizeof(a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
        getsockname(fd, (struct sockaddr *)&a, &n)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int redis_up(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

/* The server of a test that failed half-way is killed at exit all the same. */
static pid_t live_pid;
static void live_atexit(void)
{
    if (live_pid > 0)
        kill(live_pid, SIGKILL);
}

/* Start (or restart, same port and directory) redis-server. 0, or -1 if it is not installed. */
static int live_start(struct live_redis *lr)
{
    if (!lr->port) {
        atexit(live_atexit);
        lr->port = free_port();
        snprintf(lr->dir, sizeof(lr->dir), "/tmp/ssehub-test-redis-XXXXXX");
        if (lr->port < 0 || !mkdtemp(lr->dir))
            return -1;
        snprintf(lr->url, sizeof(lr->url), "redis://127.0.0.1:%d", lr->port);
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", lr->port);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 1);
        dup2(nul, 2);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir",
               lr->dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always",
               (char *)NULL);
        _exit(127);
    }
    lr->pid = pid;
    live_pid = pid;
    for (int i = 0; i < 200; i++) { /* at most 10 s */
        if (redis_up(lr->port))
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            lr->pid = 0;
            return -1;
        }
        usleep(50000);
    }
    return -1;
}

static void live_kill(struct live_redis *lr)
{
    if (lr->pid > 0) {
        kill(lr->pid, SIGKILL);
        waitpid(lr->pid, NULL, 0);
        lr->pid = 0;
        live_pid = 0;
    }
}

static void live_stop(struct live_redis *lr)
{
    live_kill(lr);
    if (lr->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", lr->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", lr->dir);
    }
}

struct member {
    sse_bus *bus;
    int got;
    char last[64];
    int order_ok;
    int dup;
};

static void on_msg(void *ud, const void *msg, size_t len, unsigned flags)
{
    struct member *m = ud;
    char cur[64];
    (void)flags;
    if (len >= sizeof(cur))
        len = sizeof(cur) - 1;
    memcpy(cur, msg, len);
    cur[len] = '\0';
    /* messages are "m%04d": strictly increasing */
    if (m->got && strcmp(cur, m->last) <= 0) {
        m->order_ok = 0;
        if (!strcmp(cur, m->last))
            m->dup++;
    }
    memcpy(m->last, cur, len + 1);
    m->got++;
}

struct pubs {
    int ok, failed, pending;
};

static void on_published(void *ud, int status)
{
    struct pubs *p = ud;
    p->pending--;
    if (status)
        p->failed++;
    else
        p->ok++;
}

/* The options of a live test's bus: one URL (*url, which must outlive the call to
   sse_bus_redis_new, which parses it), its own stream key, a short XREAD block. */
static sse_bus_redis_options live_options(uv_loop_t *loop, const char *const *url, const char *key)
{
    sse_bus_redis_options o = SSE_BUS_REDIS_OPTIONS_INIT;
    o.loop = loop;
    o.urls = url;
    o.n_urls = 1;
    o.key = key;
    o.block_ms = 200;
    return o;
}

static int new_member(struct member *m, uv_loop_t *loop, const char *url)
{
    sse_bus_redis_options o = live_options(loop, &url, "test:bus");
    o.max_len = 1000;
    memset(m, 0, sizeof(*m));
    m->order_ok = 1;
    return sse_bus_redis_new(&m->bus, &o);
}

/* Run the loop until cond holds or ms pass. */
#define RUN_UNTIL(loop, cond, ms)                                                                  \
    do {                                                                                           \
        for (int i_ = 0; i_ < (ms) / 10 && !(cond); i_++) {                                        \
            uv_run(loop, UV_RUN_NOWAIT);                                                           \
            usleep(10000);                                                                         \
        }                                                                                          \
    } while (0)

static int publish_n(struct member *m, struct pubs *p, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char msg[16];
        int len = snprintf(msg, sizeof(msg), "m%04d", i);
        int rc = sse_bus_publish(m->bus, msg, (size_t)len, on_published, p);
        if (rc)
            p->failed++;
        else
            p->pending++;
    }
    return 0;
}

static int test_live_two_members(void)
{
    struct live_redis lr = {0};
    if (live_start(&lr)) {
        live_stop(&lr);
        CHECK_SKIP("no redis-server (scripts/install-deps test)", getenv("CI") != NULL);
    }
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    struct member a, b;
    struct pubs p = {0};
    CHECK_EQ_INT(new_member(&a, &loop, lr.url), 0);
    CHECK_EQ_INT(new_member(&b, &loop, lr.url), 0);
    sse_store *st = NULL;
    CHECK_EQ_INT(sse_store_memory_new(&st, NULL), 0);
    CHECK_EQ_INT(sse_bus_redis_load_history(a.bus, st), 0); /* an empty stream */
    CHECK_EQ_INT(sse_bus_start(a.bus, on_msg, &a), 0);
    CHECK_EQ_INT(sse_bus_start(b.bus, on_msg, &b), 0); /* not loaded: starts at the tail */
    sse_bus_redis_stats s;
    RUN_UNTIL(&loop,
              (sse_bus_redis_get_stats(a.bus, &s), s.connected) &&
                  (sse_bus_redis_get_stats(b.bus, &s), s.connected),
              3000);
    RUN_UNTIL(&loop, 0, 300); /* b has looked up the tail */
    publish_n(&a, &p, 0, 50);
    RUN_UNTIL(&loop, p.pending == 0, 5000); /* b's after a's: one order to check against */
    publish_n(&b, &p, 50, 50);
    RUN_UNTIL(&loop, a.got >= 100 && b.got >= 100 && p.pending == 0, 5000);
    CHECK_EQ_INT(p.ok, 100);
    CHECK_EQ_INT(a.got, 100);
    CHECK_EQ_INT(b.got, 100);
    CHECK_EQ_INT(a.dup + b.dup, 0);

    /* Redis killed: publishes fail (at once, or by their callback), nothing hangs. */
    live_kill(&lr);
    RUN_UNTIL(&loop, (sse_bus_redis_get_stats(a.bus, &s), !s.connected), 3000);
    int failed0 = p.failed;
    publish_n(&a, &p, 100, 5);
    RUN_UNTIL(&loop, p.pending == 0, 3000);
    CHECK_EQ_INT(p.failed - failed0, 5);
    /* Restarted with its AOF: both resume after the last entry they saw, no repeat. */
    CHECK_EQ_INT(live_start(&lr), 0);
    RUN_UNTIL(&loop,
              (sse_bus_redis_get_stats(a.bus, &s), s.connected) &&
                  (sse_bus_redis_get_stats(b.bus, &s), s.connected),
              8000);
    publish_n(&b, &p, 200, 10);
    RUN_UNTIL(&loop, a.got >= 110 && b.got >= 110 && p.pending == 0, 5000);
    RUN_UNTIL(&loop, 0, 300);
    CHECK_EQ_INT(a.got, 110);
    CHECK_EQ_INT(b.got, 110);
    CHECK(a.order_ok && b.order_ok);
    sse_bus_redis_get_stats(a.bus, &s);
    CHECK(s.reconnects >= 1);

    /* Close with publishes in flight: each is reported once (an error), then the bus is gone. */
    int before = p.ok + p.failed;
    publish_n(&a, &p, 300, 20);
    sse_bus_close(a.bus, NULL, NULL);
    sse_bus_close(b.bus, NULL, NULL);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(p.pending, 0);
    CHECK_EQ_INT(p.ok + p.failed - before, 20);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    sse_store_free(st);
    live_stop(&lr);
    return 0;
}

/* ---------------------------------------------------------------- presence */

/* A member's presence entries: "key=value" strings, NULL where removed. */
struct pmember {
    sse_bus *bus;
    const char *entries[8];
};

static void pdump(void *ud, sse_bus_presence_put_cb put, void *ctx)
{
    struct pmember *m = ud;
    for (int i = 0; i < 8; i++)
        if (m->entries[i])
            put(ctx, m->entries[i], 2, m->entries[i] + 3, strlen(m->entries[i] + 3));
}

/* What a listing saw: "key=value;" in the order received, and how it ended. */
struct plisting {
    char seen[512];
    int done, status;
};

static void peach(void *ud, const char *k, size_t kl, const char *v, size_t vl)
{
    struct plisting *l = ud;
    size_t n = strlen(l->seen);
    snprintf(l->seen + n, sizeof(l->seen) - n, "%.*s=%.*s;", (int)kl, k, (int)vl, v);
}

static void pdone(void *ud, int status)
{
    struct plisting *l = ud;
    l->done = 1;
    l->status = status;
}

/* Sort "a=b;c=d;" entries so that listings compare independently of Redis's hash order. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sort_seen(char *seen)
{
    char copy[512], *parts[32], *save = NULL;
    int n = 0;
    snprintf(copy, sizeof(copy), "%s", seen);
    for (char *t = strtok_r(copy, ";", &save); t && n < 32; t = strtok_r(NULL, ";", &save))
        parts[n++] = t;
    qsort(parts, (size_t)n, sizeof(parts[0]), cmp_str);
    seen[0] = '\0';
    for (int i = 0; i < n; i++)
        strcat(strcat(seen, parts[i]), ";");
}

static int list_of(uv_loop_t *loop, sse_bus *bus, char *out, size_t cap)
{
    struct plisting l = {{0}, 0, 0};
    int rc = sse_bus_presence_list(bus, peach, pdone, &l);
    if (rc)
        return rc;
    CHECK(!l.done); /* never inside the call */
    RUN_UNTIL(loop, l.done, 3000);
    CHECK(l.done);
    sort_seen(l.seen);
    snprintf(out, cap, "%s", l.seen);
    return l.status;
}

static int new_pmember(struct pmember *m, uv_loop_t *loop, const char *url)
{
    sse_bus_redis_options o = live_options(loop, &url, "test:presence");
    o.presence_ttl_ms = 600;
    memset(m, 0, sizeof(*m));
    return sse_bus_redis_new(&m->bus, &o);
}

/* One command on a connection of its own: 0 (*integer set for an integer reply), or -1 (an
   error reply, or no connection). */
static int redis_cmd(int port, const char *cmd, long long *integer)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    int rc = -1;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, cmd);
        if (r && r->type != REDIS_REPLY_ERROR) {
            rc = 0;
            if (integer)
                *integer = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        }
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return rc;
}

static int redis_do(int port, const char *cmd)
{
    return redis_cmd(port, cmd, NULL);
}

static int test_live_presence(void)
{
    struct live_redis lr = {0};
    if (live_start(&lr)) {
        live_stop(&lr);
        CHECK_SKIP("no redis-server (scripts/install-deps test)", getenv("CI") != NULL);
    }
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    struct pmember a, b;
    char got[512];
    CHECK_EQ_INT(new_pmember(&a, &loop, lr.url), 0);
    CHECK_EQ_INT(new_pmember(&b, &loop, lr.url), 0);
    CHECK(sse_bus_has_presence(a.bus));
    a.entries[0] = "a1=A one";
    a.entries[1] = "a2=A two";
    b.entries[0] = "b1=B one";
    CHECK_EQ_INT(sse_bus_start(a.bus, ignore_msg, NULL), 0);
    CHECK_EQ_INT(sse_bus_start(b.bus, ignore_msg, NULL), 0);
    CHECK_EQ_INT(sse_bus_presence_start(a.bus, pdump, &a), 0);
    CHECK_EQ_INT(sse_bus_presence_start(b.bus, pdump, &b), 0);
    sse_bus_redis_stats s;
    RUN_UNTIL(&loop,
              (sse_bus_redis_get_stats(a.bus, &s), s.connected) &&
                  (sse_bus_redis_get_stats(b.bus, &s), s.connected),
              3000);
    /* Each member sees the other's entries, never its own. */
    CHECK_EQ_INT(list_of(&loop, a.bus, got, sizeof(got)), 0);
    CHECK_EQ_STR(got, "b1=B one;");
    CHECK_EQ_INT(list_of(&loop, b.bus, got, sizeof(got)), 0);
    CHECK_EQ_STR(got, "a1=A one;a2=A two;");
    /* Changes one at a time. */
    a.entries[0] = NULL;
    CHECK_EQ_INT(sse_bus_presence_set(a.bus, "a1", 2, NULL, 0), 0);
    a.entries[2] = "a3=A three";
    CHECK_EQ_INT(sse_bus_presence_set(a.bus, "a3", 2, "A three", 7), 0);
    CHECK_EQ_INT(list_of(&loop, b.bus, got, sizeof(got)), 0);
    CHECK_EQ_STR(got, "a2=A two;a3=A three;");
    /* Redis forgets everything without dropping the connections: written again within a TTL. */
    CHECK_EQ_INT(redis_do(lr.port, "FLUSHALL"), 0);
    CHECK_EQ_INT(list_of(&loop, b.bus, got, sizeof(got)), 0);
    CHECK_EQ_STR(got, "");
    RUN_UNTIL(&loop, 0, 900);
    CHECK_EQ_INT(list_of(&loop, b.bus, got, sizeof(got)), 0);
    CHECK_EQ_STR(got, "a2=A two;a3=A three;");
    /* A node that stops refreshing (registered by hand, as a dead node leaves it) drops out. */
    char cmd[256];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long soon = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 400;
    snprintf(cmd, sizeof(cmd), "ZADD test:presence:nodes %lld 00000000deadbeef", soon);
    CHECK_EQ_INT(redis_do(lr.port, cmd), 0);
    CHECK_EQ_INT(redis_do(lr.port, "HSET test:presence:presence:00000000deadbeef d1 D"), 0);
    CHECK_EQ_INT(redis_do(lr.port, "HSET test:presence:presence:00000000deadbeef junk"), -1);
    CHECK_EQ_INT(list_of(&loop, b.bus, got, sizeof(got)), 0);
    CHECK_EQ_STR(got, "a2=A two;a3=A three;d1=D;");
    RUN_UNTIL(&loop, 0, 1500);
    CHECK_EQ_INT(list_of(&loop, b.bus, got, sizeof(got)), 0);
    CHECK_EQ_STR(got, "a2=A two;a3=A three;");
    /* Garbage where a node's hash should be: that node's part fails, the listing still ends. */
    CHECK_EQ_INT(redis_do(lr.port, "ZADD test:presence:nodes +inf 00000000000bad00"), 0);
    CHECK_EQ_INT(redis_do(lr.port, "SET test:presence:presence:00000000000bad00 x"), 0);
    CHECK_EQ_INT(list_of(&loop, b.bus, got, sizeof(got)), SSE_EPROTO);
    CHECK_EQ_STR(got, "a2=A two;a3=A three;");
    CHECK_EQ_INT(redis_do(lr.port, "ZREM test:presence:nodes 00000000000bad00"), 0);
    /* A member that closes cleanly is gone at once, not after its TTL. */
    sse_bus_close(a.bus, NULL, NULL);
    RUN_UNTIL(&loop, 0, 100);
    CHECK_EQ_INT(list_of(&loop, b.bus, got, sizeof(got)), 0);
    CHECK_EQ_STR(got, "");
    /* Redis down: a listing is refused at once; back up: b's entries are written again. */
    live_kill(&lr);
    RUN_UNTIL(&loop, (sse_bus_redis_get_stats(b.bus, &s), !s.connected), 3000);
    RUN_UNTIL(&loop, 0, 300); /* both connections have seen it */
    CHECK_EQ_INT(sse_bus_presence_list(b.bus, peach, pdone, NULL), SSE_EIO);
    CHECK_EQ_INT(live_start(&lr), 0);
    CHECK_EQ_INT(redis_do(lr.port, "FLUSHALL"), 0); /* as a Redis without persistence would be */
    RUN_UNTIL(&loop, (sse_bus_redis_get_stats(b.bus, &s), s.connected), 8000);
    struct pmember c;
    CHECK_EQ_INT(new_pmember(&c, &loop, lr.url), 0);
    CHECK_EQ_INT(sse_bus_start(c.bus, ignore_msg, NULL), 0);
    CHECK_EQ_INT(sse_bus_presence_start(c.bus, pdump, &c), 0);
    RUN_UNTIL(&loop, (sse_bus_redis_get_stats(c.bus, &s), s.connected), 3000);
    RUN_UNTIL(&loop, 0, 100);
    CHECK_EQ_INT(list_of(&loop, c.bus, got, sizeof(got)), 0);
    CHECK_EQ_STR(got, "b1=B one;");
    /* A listing in flight when its bus closes ends once, with an error. */
    struct plisting l = {{0}, 0, 0};
    CHECK_EQ_INT(sse_bus_presence_list(c.bus, peach, pdone, &l), 0);
    sse_bus_close(c.bus, NULL, NULL);
    sse_bus_close(b.bus, NULL, NULL);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK(l.done && l.status != 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    live_stop(&lr);
    return 0;
}

/* An integer reply (-1: an error or another type). */
static long long redis_int(int port, const char *cmd)
{
    long long v = -1;
    return redis_cmd(port, cmd, &v) ? -1 : v;
}

/* The age limit: entries older than max_age_ms leave the stream (trimmed once a second). */
static int test_live_age_trim(void)
{
    struct live_redis lr = {0};
    if (live_start(&lr)) {
        live_stop(&lr);
        CHECK_SKIP("no redis-server (scripts/install-deps test)", getenv("CI") != NULL);
    }
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    const char *url = lr.url;
    sse_bus_redis_options o = live_options(&loop, &url, "test:age");
    o.max_age_ms = 1500;
    struct member a;
    struct pubs p = {0};
    memset(&a, 0, sizeof(a));
    a.order_ok = 1;
    CHECK_EQ_INT(sse_bus_redis_new(&a.bus, &o), 0);
    CHECK_EQ_INT(sse_bus_start(a.bus, on_msg, &a), 0);
    sse_bus_redis_stats s;
    RUN_UNTIL(&loop, (sse_bus_redis_get_stats(a.bus, &s), s.connected), 3000);
    RUN_UNTIL(&loop, 0, 300);
    publish_n(&a, &p, 0, 5);
    RUN_UNTIL(&loop, p.pending == 0, 3000);
    CHECK_EQ_INT(p.ok, 5);
    RUN_UNTIL(&loop, 0, 1300); /* more than one trim period between the two batches */
    publish_n(&a, &p, 5, 3);   /* younger */
    RUN_UNTIL(&loop, p.pending == 0, 3000);
    CHECK_EQ_INT(redis_int(lr.port, "XLEN test:age"), 8);
    /* the first five pass 1.5 s of age first: the three younger ones stay a while longer */
    RUN_UNTIL(&loop, redis_int(lr.port, "XLEN test:age") == 3, 3000);
    CHECK_EQ_INT(redis_int(lr.port, "XLEN test:age"), 3);
    RUN_UNTIL(&loop, redis_int(lr.port, "XLEN test:age") == 0, 3000);
    CHECK_EQ_INT(redis_int(lr.port, "XLEN test:age"), 0);
    sse_bus_close(a.bus, NULL, NULL);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    live_stop(&lr);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_url), CHECK_TEST(test_ids), CHECK_TEST(test_redirect),
           CHECK_TEST(test_xread_good), CHECK_TEST(test_xread_garbage), CHECK_TEST(test_xrange),
           CHECK_TEST(test_bus_new_refuses), CHECK_TEST(test_bus_alloc_failures),
           CHECK_TEST(test_live_two_members), CHECK_TEST(test_live_presence),
           CHECK_TEST(test_live_age_trim))
