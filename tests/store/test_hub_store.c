/*
 * test_hub_store.c: the hub over the fake stores (fake_store.h), on a real loopback socket.
 *
 * A client thread subscribes and publishes over HTTP while the loop thread runs the hub; the two
 * talk through a mutex (what the store was asked) and a uv_async (what the store should report).
 * Checked:
 * - a failing store (an error return, an immediate error callback, a later one): the POST gets
 *   503 and a subscriber receives nothing; nothing is counted as published.
 * - the asynchronous store holding its completions: three POSTs sent back to back are not
 *   answered, and not fanned out, while the store holds them; it then reports out of turn (the
 *   second, the first, the third): nothing is released when the second reports, the first two
 *   when the first does, the third last; each POST is answered 200 only then, and the subscriber
 *   receives the updates in the order they were handed to the store.
 * - the same with the store's own out-of-turn timers: every POST 200, the store's order kept.
 * - shutting down (hub, store, server: the order hub.h documents) while the store holds an
 *   update: its publisher gets 503, nothing is fanned out, nothing leaks.
 * - a Last-Event-ID replay longer than one of the hub's replay slices, from the asynchronous
 *   store (replay, then replay_from for each further slice, answered later): every missed
 *   update once, in order.
 */
#include "harness/check.h"
#include "harness/sockpump.h"
#include "store/fake_store.h"

#include <pthread.h>
#include <sse/hub.h>
#include <sse/server.h>
#include <time.h>

/* ---------------------------------------------------------------- shared state */

struct shared {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t calls;       /* appends the store was asked for */
    char ids[8][64];    /* their ids, in call order */
    long cmd;           /* append to report next (loop side) */
    size_t completions; /* reports made on command */
    uv_async_t cmd_async, done_async;
    sse_store *store;
    sse_server *server;
    sse_hub *hub;
    sse_hub_stats stats; /* taken before shutdown */
    int port;
    int (*script)(struct shared *);
    int client_rc;
    int stopped;                     /* the hub, the store and the server are closing */
    void (*before)(struct shared *); /* on the loop thread, before the client starts */
};

static void on_append(void *ud, size_t n)
{
    struct shared *sh = ud;
    pthread_mutex_lock(&sh->mu);
    sh->calls = n;
    if (n <= 8)
        snprintf(sh->ids[n - 1], sizeof(sh->ids[0]), "%s", fake_async_id(sh->store, n - 1));
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
}

static void server_closed(sse_server *s, void *ud)
{
    (void)s;
    (void)ud;
}

/* The shutdown order hub.h documents: the hub, then the store (what it holds reports to a hub
   still alive), then the server; the hub is freed once the loop ran out. */
static void stop(struct shared *sh)
{
    if (sh->stopped)
        return;
    sh->stopped = 1;
    sse_hub_get_stats(sh->hub, &sh->stats);
    sse_hub_close(sh->hub);
    sse_store_free(sh->store);
    sse_server_close(sh->server, 500, server_closed, NULL);
}

/* A command from the client thread: report append k (k < 0: shut down). */
static void on_cmd(uv_async_t *a)
{
    struct shared *sh = a->data;
    pthread_mutex_lock(&sh->mu);
    long k = sh->cmd;
    pthread_mutex_unlock(&sh->mu);
    int rc = 0;
    if (k < 0)
        stop(sh);
    else
        rc = fake_async_complete(sh->store, (size_t)k);
    pthread_mutex_lock(&sh->mu);
    sh->completions += rc == 0;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
}

static void on_done(uv_async_t *a)
{
    struct shared *sh = a->data;
    uv_close((uv_handle_t *)&sh->cmd_async, NULL);
    uv_close((uv_handle_t *)&sh->done_async, NULL);
    stop(sh);
}

/* Wait (at most ms) until the store was asked for n appends. */
static int wait_calls(struct shared *sh, size_t n, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L)
        until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&sh->mu);
    while (sh->calls < n && pthread_cond_timedwait(&sh->cv, &sh->mu, &until) == 0)
        ;
    int ok = sh->calls >= n;
    pthread_mutex_unlock(&sh->mu);
    return ok;
}

/* Have the loop report append k now; wait until it did. */
static int complete(struct shared *sh, long k)
{
    pthread_mutex_lock(&sh->mu);
    size_t before = sh->completions;
    sh->cmd = k;
    pthread_mutex_unlock(&sh->mu);
    uv_async_send(&sh->cmd_async);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 3;
    pthread_mutex_lock(&sh->mu);
    while (sh->completions == before && pthread_cond_timedwait(&sh->cv, &sh->mu, &until) == 0)
        ;
    int ok = sh->completions > before;
    pthread_mutex_unlock(&sh->mu);
    return ok;
}

/* ---------------------------------------------------------------- the run */

static void *client_main(void *arg)
{
    struct shared *sh = arg;
    sh->client_rc = sh->script(sh);
    uv_async_send(&sh->done_async);
    return NULL;
}

/* Run script on a client thread against a hub over store (taken: closed here). */
static int run(sse_store *store, int (*script)(struct shared *), struct shared *sh, uv_loop_t *loop)
{
    sh->store = store;
    sh->script = script;
    pthread_mutex_init(&sh->mu, NULL);
    pthread_cond_init(&sh->cv, NULL);
    CHECK_EQ_INT(sse_server_new(&sh->server, loop, NULL), 0);
    sse_hub_options o = SSE_HUB_OPTIONS_INIT;
    o.loop = loop;
    o.anonymous = 1;
    o.publish_anonymous = 1;
    o.store = store;
    CHECK_EQ_INT(sse_hub_new(&sh->hub, sh->server, &o), 0);
    CHECK_EQ_INT(sse_server_listen(sh->server, "127.0.0.1", 0), 0);
    sh->port = sse_server_port(sh->server);
    uv_async_init(loop, &sh->cmd_async, on_cmd);
    sh->cmd_async.data = sh;
    uv_async_init(loop, &sh->done_async, on_done);
    sh->done_async.data = sh;
    if (sh->before)
        sh->before(sh);
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, client_main, sh), 0);
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    sse_hub_free(sh->hub);
    sse_server_free(sh->server);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(loop), 0);
    pthread_mutex_destroy(&sh->mu);
    pthread_cond_destroy(&sh->cv);
    return 0;
}

/* ---------------------------------------------------------------- (a) a failing store */

static int script_failing(struct shared *sh)
{
    struct sock s[2];
    s[1].fd = -1;
    int rc = subscribe(&s[0], sh->port);
    if (!rc) {
        rc = sock_open(&s[1], sh->port) || send_post(&s[1], "f1", "lost");
        if (!rc && !pump_for(s, 2, 1, "\r\n\r\n"))
            rc = 1;
        pump(s, 2, 200); /* a subscriber that would receive it has it by now */
    }
    if (!rc && strncmp(s[1].buf, "HTTP/1.1 503", 12) != 0) {
        fprintf(stderr, "  publish answered: %s\n", s[1].buf);
        rc = 1;
    }
    if (!rc && strstr(s[0].buf, "data:")) {
        fprintf(stderr, "  subscriber got: %s\n", s[0].buf);
        rc = 1;
    }
    sock_close(s, 2);
    return rc;
}

static int failing(enum fake_fail_mode mode)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    sse_store *st;
    CHECK_EQ_INT(fake_fail_new(&st, mode, &loop), 0);
    static struct shared sh;
    memset(&sh, 0, sizeof(sh));
    CHECK_EQ_INT(run(st, script_failing, &sh, &loop), 0);
    CHECK_EQ_INT(sh.client_rc, 0);
    CHECK_EQ_UINT(sh.stats.updates_total, 0);
    CHECK_EQ_UINT(sh.stats.deliveries_total, 0);
    CHECK_EQ_UINT(sh.stats.history_count, 0);
    return 0;
}

static int test_failing_store_return(void)
{
    return failing(FAKE_FAIL_RETURN);
}

static int test_failing_store_callback_now(void)
{
    return failing(FAKE_FAIL_CB_NOW);
}

static int test_failing_store_callback_later(void)
{
    return failing(FAKE_FAIL_CB_LATER);
}

/* ---------------------------------------------------------------- (b), (c) out of turn */

/* The POST whose id the store got as append k. */
static int post_of(struct shared *sh, size_t k)
{
    pthread_mutex_lock(&sh->mu);
    int i = sh->ids[k][0] == 'u' ? sh->ids[k][1] - '0' : -1;
    pthread_mutex_unlock(&sh->mu);
    return i;
}

static int answered(const struct sock *s)
{
    return s->len > 0;
}

/* The subscriber's events (their ids, in order) and whether it got each once. */
static int sub_order(const struct sock *sub, char *out, size_t max)
{
    size_t n = 0;
    for (const char *p = sub->buf; (p = strstr(p, "\nid: u")) != NULL && n + 1 < max; p += 6)
        out[n++] = p[6];
    out[n] = '\0';
    return (int)n;
}

static int script_held(struct shared *sh)
{
    struct sock s[4]; /* s[0]: the subscriber; s[i]: POST "ui" */
    for (int i = 0; i < 4; i++)
        s[i].fd = -1;
    CHECK_EQ_INT(subscribe(&s[0], sh->port), 0);
    for (int i = 1; i <= 3; i++)
        CHECK_EQ_INT(sock_open(&s[i], sh->port), 0);
    for (int i = 1; i <= 3; i++) { /* back to back */
        char id[8], data[8];
        snprintf(id, sizeof(id), "u%d", i);
        snprintf(data, sizeof(data), "d%d", i);
        CHECK_EQ_INT(send_post(&s[i], id, data), 0);
    }
    CHECK(wait_calls(sh, 3, 3000));
    int p[3]; /* p[k]: the POST the store got as append k */
    for (int k = 0; k < 3; k++) {
        p[k] = post_of(sh, (size_t)k);
        CHECK(p[k] >= 1 && p[k] <= 3);
    }
    /* (c) held: nobody answered, nothing fanned out */
    pump(s, 4, 250);
    for (int i = 1; i <= 3; i++)
        CHECK(!answered(&s[i]));
    CHECK(!strstr(s[0].buf, "data:"));

    /* the second append reports first: still nothing, the first is not in */
    CHECK(complete(sh, 1));
    pump(s, 4, 250);
    for (int i = 1; i <= 3; i++)
        CHECK(!answered(&s[i]));
    CHECK(!strstr(s[0].buf, "data:"));

    /* the first reports: the first two are released, in order; the third is still held */
    CHECK(complete(sh, 0));
    CHECK(pump_for(s, 4, p[0], "\r\n\r\n"));
    CHECK(pump_for(s, 4, p[1], "\r\n\r\n"));
    char want[16];
    snprintf(want, sizeof(want), "data: d%d\n", p[1]);
    CHECK(pump_for(s, 4, 0, want));
    pump(s, 4, 150);
    CHECK(!answered(&s[p[2]]));
    char got[8];
    CHECK_EQ_INT(sub_order(&s[0], got, sizeof(got)), 2);

    CHECK(complete(sh, 2));
    CHECK(pump_for(s, 4, p[2], "\r\n\r\n"));
    snprintf(want, sizeof(want), "data: d%d\n", p[2]);
    CHECK(pump_for(s, 4, 0, want));
    pump(s, 4, 100);
    for (int k = 0; k < 3; k++) {
        int i = p[k];
        CHECK(!strncmp(s[i].buf, "HTTP/1.1 200", 12));
        char id[8];
        snprintf(id, sizeof(id), "\r\n\r\nu%d", i); /* the body is the id */
        CHECK(strstr(s[i].buf, id) != NULL);
    }
    /* the subscriber: each once, in the store's order */
    char exp[4] = {(char)('0' + p[0]), (char)('0' + p[1]), (char)('0' + p[2]), 0};
    CHECK_EQ_INT(sub_order(&s[0], got, sizeof(got)), 3);
    CHECK_EQ_STR(got, exp);
    sock_close(s, 4);
    return 0;
}

static int test_held_out_of_turn(void)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    sse_store *st;
    CHECK_EQ_INT(fake_async_new(&st, NULL, &loop), 0);
    fake_async_set_hold(st, 1);
    static struct shared sh;
    memset(&sh, 0, sizeof(sh));
    fake_async_on_append(st, on_append, &sh);
    CHECK_EQ_INT(run(st, script_held, &sh, &loop), 0);
    CHECK_EQ_INT(sh.client_rc, 0);
    CHECK_EQ_UINT(sh.stats.updates_total, 3);
    CHECK_EQ_UINT(sh.stats.deliveries_total, 3);
    CHECK_EQ_UINT(sh.stats.history_count, 3);
    return 0;
}

/* The store's own timers: the second append of the burst reports before the first. */
static int script_timers(struct shared *sh)
{
    struct sock s[4];
    for (int i = 0; i < 4; i++)
        s[i].fd = -1;
    CHECK_EQ_INT(subscribe(&s[0], sh->port), 0);
    for (int i = 1; i <= 3; i++)
        CHECK_EQ_INT(sock_open(&s[i], sh->port), 0);
    for (int i = 1; i <= 3; i++) {
        char id[8], data[8];
        snprintf(id, sizeof(id), "u%d", i);
        snprintf(data, sizeof(data), "d%d", i);
        CHECK_EQ_INT(send_post(&s[i], id, data), 0);
    }
    CHECK(wait_calls(sh, 3, 3000));
    char exp[4];
    for (int k = 0; k < 3; k++)
        exp[k] = (char)('0' + post_of(sh, (size_t)k));
    exp[3] = '\0';
    for (int i = 1; i <= 3; i++)
        CHECK(pump_for(s, 4, i, "\r\n\r\n"));
    char want[16];
    snprintf(want, sizeof(want), "data: d%c\n", exp[2]);
    CHECK(pump_for(s, 4, 0, want));
    pump(s, 4, 100);
    for (int i = 1; i <= 3; i++)
        CHECK(!strncmp(s[i].buf, "HTTP/1.1 200", 12));
    char got[8];
    CHECK_EQ_INT(sub_order(&s[0], got, sizeof(got)), 3);
    CHECK_EQ_STR(got, exp);
    sock_close(s, 4);
    return 0;
}

static int test_timers_out_of_turn(void)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    sse_store *st;
    CHECK_EQ_INT(fake_async_new(&st, NULL, &loop), 0);
    static struct shared sh;
    memset(&sh, 0, sizeof(sh));
    fake_async_on_append(st, on_append, &sh);
    CHECK_EQ_INT(run(st, script_timers, &sh, &loop), 0);
    CHECK_EQ_INT(sh.client_rc, 0);
    CHECK_EQ_UINT(sh.stats.updates_total, 3);
    return 0;
}

/* Shut down while the store holds an update: its publisher gets 503, nothing leaks. */
static int script_shutdown_held(struct shared *sh)
{
    struct sock s[2];
    s[1].fd = -1;
    CHECK_EQ_INT(subscribe(&s[0], sh->port), 0);
    CHECK_EQ_INT(sock_open(&s[1], sh->port), 0);
    CHECK_EQ_INT(send_post(&s[1], "u1", "held"), 0);
    CHECK(wait_calls(sh, 1, 3000));
    CHECK(complete(sh, -1)); /* stop */
    CHECK(pump_for(s, 2, 1, "\r\n\r\n"));
    CHECK(!strncmp(s[1].buf, "HTTP/1.1 503", 12));
    CHECK(!strstr(s[0].buf, "data:"));
    sock_close(s, 2);
    return 0;
}

static int test_shutdown_while_held(void)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    sse_store *st;
    CHECK_EQ_INT(fake_async_new(&st, NULL, &loop), 0);
    fake_async_set_hold(st, 1);
    static struct shared sh;
    memset(&sh, 0, sizeof(sh));
    fake_async_on_append(st, on_append, &sh);
    CHECK_EQ_INT(run(st, script_shutdown_held, &sh, &loop), 0);
    CHECK_EQ_INT(sh.client_rc, 0);
    CHECK_EQ_UINT(sh.stats.updates_total, 0);
    return 0;
}

/* A replay longer than one of the hub's slices, from a store that answers later. */
enum { LONG = 600 };

static void publish_long(struct shared *sh)
{
    const char *topics[1] = {"t"};
    for (int i = 1; i <= LONG; i++) {
        char id[16], data[16];
        snprintf(id, sizeof(id), "m%d", i);
        snprintf(data, sizeof(data), "x%d", i);
        sse_hub_update u = {topics, 1, data, strlen(data), id, NULL, -1, 0};
        sse_hub_publish(sh->hub, &u, NULL);
    }
}

static int script_long_replay(struct shared *sh)
{
    static struct sock s[1];
    CHECK(wait_calls(sh, LONG, 3000));
    usleep(200 * 1000); /* the appends report (timers of at most 20 ms) */
    CHECK_EQ_INT(sock_open(&s[0], sh->port), 0);
    CHECK_EQ_INT(sock_send(&s[0], "GET /.well-known/mercure?topic=t HTTP/1.1\r\nHost: x\r\n"
                                  "Last-Event-ID: m1\r\n\r\n"),
                 0);
    char last[32];
    snprintf(last, sizeof(last), "data: x%d\n", LONG);
    int ok = pump_for(s, 1, 0, last);
    if (!ok)
        fprintf(stderr, "  got: %.300s\n", s[0].buf);
    CHECK(ok);
    CHECK(!strncmp(s[0].buf, "HTTP/1.1 200", 12));
    CHECK(strstr(s[0].buf, "\r\nLast-Event-ID: m1\r\n") != NULL);
    /* m2 .. mLONG, each once, in order */
    const char *p = s[0].buf;
    for (int i = 2; i <= LONG; i++) {
        char want[32];
        snprintf(want, sizeof(want), "\nid: m%d\n", i);
        const char *q = strstr(p, want);
        CHECK(q != NULL);
        p = q + 1;
    }
    CHECK(strstr(s[0].buf, "\nid: m1\n") == NULL);
    sock_close(s, 1);
    return 0;
}

/* A long Last-Event-ID replay over the asynchronous store, with and without replay_from (the
   hub goes on in slices with it, and replays in one piece without it). */
static int long_replay_async(int with_replay_from)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    sse_store *st;
    if (with_replay_from)
        CHECK_EQ_INT(fake_async_new(&st, NULL, &loop), 0);
    else
        CHECK_EQ_INT(fake_async_new_without_replay_from(&st, NULL, &loop), 0);
    static struct shared sh;
    memset(&sh, 0, sizeof(sh));
    fake_async_on_append(st, on_append, &sh);
    sh.before = publish_long;
    CHECK_EQ_INT(run(st, script_long_replay, &sh, &loop), 0);
    CHECK_EQ_INT(sh.client_rc, 0);
    CHECK_EQ_UINT(sh.stats.replayed_total, LONG - 1);
    return 0;
}

static int test_long_replay_async(void)
{
    return long_replay_async(1);
}

static int test_long_replay_async_without_replay_from(void)
{
    return long_replay_async(0);
}

CHECK_MAIN(CHECK_TEST(test_failing_store_return), CHECK_TEST(test_failing_store_callback_now),
           CHECK_TEST(test_failing_store_callback_later), CHECK_TEST(test_held_out_of_turn),
           CHECK_TEST(test_timers_out_of_turn), CHECK_TEST(test_shutdown_while_held),
           CHECK_TEST(test_long_replay_async),
           CHECK_TEST(test_long_replay_async_without_replay_from))
