/*
 * test_hub_bus.c: the hub's bus (docs/WORKERS.md, src/hub/hub_bus.c) without processes. Two hubs
 * on one loop share a test bus that only records messages; the test plays the master: it hands
 * the recorded messages to both hubs in one order. Checks: nothing is applied before the bus
 * hands it back; both hubs then hold the same history; a message marked as history is appended
 * but not counted as published; every truncation and corruption of a message is refused or
 * applied without reading out of bounds (ASan); a POST over a real socket is deferred until its
 * message comes back, then answered 200 with the id the message carries; the origin nonce keeps
 * the other hub from answering.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "harness/check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sse/hub.h>
#include <sse/server.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAXMSG = 16 };

struct bus {
    unsigned char *msg[MAXMSG];
    size_t len[MAXMSG];
    int n;
    int refuse;
};

static int bus_publish(void *ud, const void *m, size_t len)
{
    struct bus *b = ud;
    if (b->refuse || b->n == MAXMSG)
        return -1;
    b->msg[b->n] = malloc(len);
    memcpy(b->msg[b->n], m, len);
    b->len[b->n++] = len;
    return 0;
}

static void bus_clear(struct bus *b)
{
    for (int i = 0; i < b->n; i++)
        free(b->msg[i]);
    b->n = 0;
}

struct env {
    uv_loop_t loop;
    sse_server *srv[2];
    sse_hub *hub[2];
    struct bus bus;
    int port;
};

static int env_open(struct env *e)
{
    memset(e, 0, sizeof(*e));
    if (uv_loop_init(&e->loop))
        return -1;
    for (int i = 0; i < 2; i++) {
        sse_server_options so = SSE_SERVER_OPTIONS_INIT;
        so.heartbeat_ms = UINT32_MAX;
        if (sse_server_new(&e->srv[i], &e->loop, &so))
            return -1;
        sse_hub_options ho = SSE_HUB_OPTIONS_INIT;
        ho.loop = &e->loop;
        ho.publish_anonymous = 1;
        ho.anonymous = 1;
        ho.bus_publish = bus_publish;
        ho.bus_data = &e->bus;
        ho.instance = i ? "1" : "0";
        if (sse_hub_new(&e->hub[i], e->srv[i], &ho))
            return -1;
    }
    if (sse_server_listen(e->srv[0], "127.0.0.1", 0))
        return -1;
    e->port = sse_server_port(e->srv[0]);
    return 0;
}

static void env_close(struct env *e)
{
    for (int i = 0; i < 2; i++) {
        sse_hub_close(e->hub[i]);
        sse_server_close(e->srv[i], 0, NULL, NULL);
    }
    uv_run(&e->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 2; i++) {
        sse_hub_free(e->hub[i]);
        sse_server_free(e->srv[i]);
    }
    uv_run(&e->loop, UV_RUN_NOWAIT);
    uv_loop_close(&e->loop);
    bus_clear(&e->bus);
}

static int test_order_and_history(void)
{
    struct env e;
    CHECK(env_open(&e) == 0);
    const char *topics[2] = {"/a", "/b"};
    sse_hub_update u = {topics, 2, "one\ntwo", 7, "id-1", "t", 3000, 1};
    sse_buf id;
    sse_buf_init(&id, 0);
    CHECK_EQ_INT(sse_hub_publish(e.hub[0], &u, &id), 0);
    CHECK_EQ_STR(sse_buf_cstr(&id), "id-1");
    u.id = NULL;
    u.type = NULL;
    u.data = NULL;
    u.data_len = 0;
    CHECK_EQ_INT(sse_hub_publish(e.hub[1], &u, &id), 0);
    CHECK(!strncmp(sse_buf_cstr(&id), "urn:uuid:", 9)); /* generated before the bus */
    const char *reserved[1] = {"/.well-known/mercure/subscriptions/x"};
    sse_hub_update r = {reserved, 1, "x", 1, NULL, NULL, -1, 0};
    CHECK(sse_hub_publish(e.hub[0], &r, NULL) != 0); /* validated before the bus */
    CHECK_EQ_INT(e.bus.n, 2);
    sse_hub_stats st;
    sse_hub_get_stats(e.hub[0], &st);
    CHECK_EQ_UINT(st.updates_total, 0); /* nothing applied before the bus hands it back */
    CHECK_EQ_UINT(st.history_count, 0);
    for (int i = 0; i < e.bus.n; i++)
        for (int h = 0; h < 2; h++)
            CHECK_EQ_INT(sse_hub_bus_receive(e.hub[h], e.bus.msg[i], e.bus.len[i]), 0);
    for (int h = 0; h < 2; h++) {
        sse_hub_get_stats(e.hub[h], &st);
        CHECK_EQ_UINT(st.updates_total, 2);
        CHECK_EQ_UINT(st.history_count, 2);
    }
    /* A history message: appended, not published (no fan-out). */
    sse_hub_bus_mark_history(e.bus.msg[0], e.bus.len[0]);
    CHECK_EQ_INT(sse_hub_bus_receive(e.hub[1], e.bus.msg[0], e.bus.len[0]), 0);
    sse_hub_get_stats(e.hub[1], &st);
    CHECK_EQ_UINT(st.updates_total, 2);
    CHECK_EQ_UINT(st.history_count, 3);
    /* A bus that refuses: the publish fails. */
    e.bus.refuse = 1;
    CHECK(sse_hub_publish(e.hub[0], &u, NULL) != 0);
    sse_buf_free(&id);
    env_close(&e);
    return 0;
}

static int test_malformed(void)
{
    struct env e;
    CHECK(env_open(&e) == 0);
    const char *topics[3] = {"/x", "/y/{z}", "/w"};
    sse_hub_update u = {topics, 3, "payload data", 12, "the-id", "ev", 10, 0};
    CHECK_EQ_INT(sse_hub_publish(e.hub[0], &u, NULL), 0);
    CHECK_EQ_INT(e.bus.n, 1);
    size_t n = e.bus.len[0];
    /* Every truncation is refused (exact-size copies: ASan sees any over-read). */
    int refused = 0;
    for (size_t cut = 0; cut < n; cut++) {
        unsigned char *m = malloc(cut ? cut : 1);
        memcpy(m, e.bus.msg[0], cut);
        refused += sse_hub_bus_receive(e.hub[1], m, cut) == SSE_EPROTO;
        free(m);
    }
    CHECK_EQ_UINT(refused, n);
    /* Byte corruption: refused or applied, never out of bounds. */
    unsigned seed = 12345;
    for (int i = 0; i < 4000; i++) {
        unsigned char *m = malloc(n);
        memcpy(m, e.bus.msg[0], n);
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            m[(seed >> 8) % n] = (unsigned char)(seed >> 20);
        }
        int rc = sse_hub_bus_receive(e.hub[1], m, n);
        CHECK(rc <= 0); /* an error (EPROTO, or EINVAL from the encoder) or applied */
        free(m);
    }
    CHECK_EQ_INT(sse_hub_bus_receive(e.hub[1], e.bus.msg[0], n), 0);
    env_close(&e);
    return 0;
}

/* ---------------------------------------------------------------- a deferred POST */

struct post {
    int port;
    char reply[1024];
    size_t len;
};

static void *post_thread(void *ud)
{
    struct post *p = ud;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)p->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        static const char req[] = "POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\n"
                                  "Content-Type: application/x-www-form-urlencoded\r\n"
                                  "Content-Length: 22\r\nConnection: close\r\n\r\n"
                                  "topic=%2Fq&data=hello1";
        if (write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
            ssize_t r;
            while (p->len < sizeof(p->reply) - 1 &&
                   (r = read(fd, p->reply + p->len, sizeof(p->reply) - 1 - p->len)) > 0)
                p->len += (size_t)r;
        }
    }
    p->reply[p->len] = '\0';
    close(fd);
    return NULL;
}

struct relay {
    uv_timer_t t;
    struct env *e;
    int delivered, ticks;
    size_t answered_early;
    struct post *p;
};

static void relay_tick(uv_timer_t *t)
{
    struct relay *r = t->data;
    r->ticks++;
    if (r->e->bus.n == 1 && !r->delivered && r->ticks > 3) {
        r->answered_early = r->p->len; /* nothing may have been answered yet */
        /* The other hub first: it must not answer (not its nonce), then the origin. */
        sse_hub_bus_receive(r->e->hub[1], r->e->bus.msg[0], r->e->bus.len[0]);
        sse_hub_bus_receive(r->e->hub[0], r->e->bus.msg[0], r->e->bus.len[0]);
        r->delivered = 1;
    }
    if ((r->delivered && r->ticks > 40) || r->ticks > 400) {
        uv_timer_stop(t);
        uv_stop(t->loop);
    }
}

static int test_deferred_post(void)
{
    struct env e;
    CHECK(env_open(&e) == 0);
    struct post p;
    memset(&p, 0, sizeof(p));
    p.port = e.port;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, post_thread, &p) == 0);
    struct relay r;
    memset(&r, 0, sizeof(r));
    r.e = &e;
    r.p = &p;
    uv_timer_init(&e.loop, &r.t);
    r.t.data = &r;
    uv_timer_start(&r.t, relay_tick, 10, 10);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&r.t, NULL);
    pthread_join(th, NULL);
    CHECK_EQ_INT(r.delivered, 1);
    CHECK_EQ_UINT(r.answered_early, 0);
    CHECK(strstr(p.reply, "HTTP/1.1 200") == p.reply);
    /* The body is the generated id that the bus message carried. */
    const char *body = strstr(p.reply, "\r\n\r\n");
    CHECK(body && !strncmp(body + 4, "urn:uuid:", 9));
    CHECK(memmem(e.bus.msg[0], e.bus.len[0], body + 4, strlen(body + 4)) != NULL);
    sse_hub_stats st;
    sse_hub_get_stats(e.hub[1], &st);
    CHECK_EQ_UINT(st.updates_total, 1);
    env_close(&e);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_order_and_history), CHECK_TEST(test_malformed),
           CHECK_TEST(test_deferred_post))
