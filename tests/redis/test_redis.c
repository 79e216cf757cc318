/*
 * test_redis.c: the Redis bus's checks on what Redis hands back (src/bus/redis/redis_entry.c):
 * redis:// URLs, stream entry ids, and XREAD / XRANGE replies with good, garbage and oversized
 * entries (the replies are written as RESP and parsed by hiredis's own reader, as on the wire).
 * The bus against a live redis-server is tested by tests/integration/test_redis.py.
 */
#include "bus/redis/redis_entry.h"
#include "harness/check.h"

#include <sse/bus_redis.h>
#include <sse/error.h>
#include <sse/store.h>
#include <string.h>

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

CHECK_MAIN(CHECK_TEST(test_url), CHECK_TEST(test_ids), CHECK_TEST(test_redirect),
           CHECK_TEST(test_xread_good), CHECK_TEST(test_xread_garbage), CHECK_TEST(test_xrange),
           CHECK_TEST(test_bus_new_refuses))
