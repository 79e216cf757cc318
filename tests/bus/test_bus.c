/*
 * test_bus.c: the bus seam of include/sse/bus.h.
 *
 * - The message codec: an encoding against golden bytes, each header field read back big-endian
 *   at its documented offset; decode round trips; every truncation of a valid message and every
 *   single-byte change of its header decodes to SSE_EPROTO or to a message that re-encodes to
 *   exactly those bytes (each input in a heap block of its exact size, so a sanitizer sees any
 *   overread); refused: another version or magic, unknown flags, no topics, trailing bytes.
 * - The in-process bus under two hubs on one loop, each on its own loopback server: a POST to hub
 *   A is answered 200 only once its message came back to A (A's bus holds it until the test lets
 *   it through), a subscriber on B gets it, both histories agree; with the group refusing
 *   publishes (SSE_EBUSY) a POST to either hub gets 503 and nobody receives anything; then it
 *   recovers. A hub whose store fails answers 503 after the bus round trip, and fans nothing out.
 * - The pipe bus and the sequencer, without fork: socketpairs, a thread that poll()s the
 *   sequencer's fds, members on a uv loop. Publishes from two members reach every member in one
 *   order and each publisher's done(0) fires after its message came back; a member attached later
 *   gets the history first (sse_bus_pipe_load_history); a member that sends garbage is dropped
 *   (on_drop) and the others go on; a sequencer whose store refuses answers done(SSE_EIO) and
 *   relays nothing; one whose store replays later than it returns refuses to attach a member
 *   (SSE_EUNSUPPORTED) and the late replay touches nothing.
 */
#include "harness/check.h"
#include "harness/sockpump.h"
#include "store/fake_store.h"

#include <pthread.h>
#include <sse/bus.h>
#include <sse/hub.h>
#include <sse/server.h>
#include <sse/store.h>
#include <sys/socket.h>
#include <time.h>

/* ---------------------------------------------------------------- the codec */

static const char *const g_topics[2] = {"ab", "c"};

static sse_bus_msg golden_msg(void)
{
    sse_bus_msg m = {.origin = 0x0102030405060708ull,
                     .token = 0x1112131415161718ull,
                     .time_ms = 0x0123456789abcdefLL,
                     .is_private = 1,
                     .id = "id",
                     .id_len = 2,
                     .topics = g_topics,
                     .n_topics = 2,
                     .frame = "data: x\n\n",
                     .frame_len = 9};
    return m;
}

static const unsigned char golden[] = {
    'S',  'S',  'E',  'B',  1,    1,    0,    2,                 /* magic, version, flags, topics */
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,              /* origin */
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,              /* token */
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,              /* time */
    0,    0,    0,    2,    0,    0,    0,    9,                 /* id length, frame length */
    0,    0,    0,    2,    'a',  'b',  0,    0,    0,   1, 'c', /* topics */
    'i',  'd',                                                   /* id */
    'd',  'a',  't',  'a',  ':',  ' ',  'x',  '\n', '\n'         /* frame */
};

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int test_codec_golden(void)
{
    sse_bus_msg m = golden_msg();
    sse_buf b;
    sse_buf_init(&b, 0);
    CHECK_EQ_INT(sse_buf_append(&b, "xy", 2), 0);
    CHECK_EQ_INT(sse_bus_msg_encode(&b, &m), 0); /* appended after what out held */
    CHECK_EQ_MEM(b.data, 2, "xy", 2);
    const unsigned char *p = (const unsigned char *)b.data + 2;
    CHECK_EQ_MEM(p, b.len - 2, golden, sizeof(golden));
    CHECK_EQ_UINT(sse_bus_msg_size(2, 3, 2, 9), sizeof(golden));
    /* the documented offsets, read big-endian */
    CHECK_EQ_MEM(p, 4, "SSEB", 4);
    CHECK_EQ_UINT(p[4], SSE_BUS_MSG_VERSION);
    CHECK_EQ_UINT(p[5], 1);
    CHECK_EQ_UINT(be(p + 6, 2), 2);
    CHECK_EQ_UINT(be(p + 8, 8), m.origin);
    CHECK_EQ_UINT(be(p + 16, 8), m.token);
    CHECK_EQ_UINT(be(p + 24, 8), (uint64_t)m.time_ms);
    CHECK_EQ_UINT(be(p + 32, 4), 2);
    CHECK_EQ_UINT(be(p + 36, 4), 9);
    CHECK_EQ_UINT(be(p + SSE_BUS_MSG_HEADER, 4), 2);

    /* a negative time is two's complement; any non-zero is_private is the flag 1, any
       non-zero no_history the flag 2 */
    sse_buf_reset(&b);
    m.time_ms = -2;
    m.is_private = 7;
    CHECK_EQ_INT(sse_bus_msg_encode(&b, &m), 0);
    p = (const unsigned char *)b.data;
    CHECK_EQ_UINT(be(p + 24, 8), 0xfffffffffffffffeull);
    CHECK_EQ_UINT(p[5], 1);
    sse_bus_msg *d = NULL;
    CHECK_EQ_INT(sse_bus_msg_decode(b.data, b.len, &d), 0);
    CHECK_EQ_INT(d->time_ms, -2);
    CHECK_EQ_INT(d->is_private, 1);
    sse_bus_msg_free(d);
    sse_buf_reset(&b);
    m.is_private = 0;
    CHECK_EQ_INT(sse_bus_msg_encode(&b, &m), 0);
    CHECK_EQ_UINT((unsigned char)b.data[5], 0);
    sse_buf_reset(&b);
    m.no_history = 5;
    CHECK_EQ_INT(sse_bus_msg_encode(&b, &m), 0);
    CHECK_EQ_UINT((unsigned char)b.data[5], 2);
    CHECK_EQ_INT(sse_bus_msg_decode(b.data, b.len, &d), 0);
    CHECK_EQ_INT(d->no_history, 1);
    CHECK_EQ_INT(d->is_private, 0);
    sse_bus_msg_free(d);
    sse_buf_free(&b);
    return 0;
}

static int test_codec_round_trip(void)
{
    sse_bus_msg *d = NULL;
    CHECK_EQ_INT(sse_bus_msg_decode(golden, sizeof(golden), &d), 0);
    CHECK_EQ_UINT(d->origin, 0x0102030405060708ull);
    CHECK_EQ_UINT(d->token, 0x1112131415161718ull);
    CHECK_EQ_INT(d->time_ms, 0x0123456789abcdefLL);
    CHECK_EQ_INT(d->is_private, 1);
    CHECK_EQ_UINT(d->n_topics, 2);
    CHECK_EQ_STR(d->topics[0], "ab");
    CHECK_EQ_STR(d->topics[1], "c");
    CHECK_EQ_MEM(d->id, d->id_len, "id", 2);
    CHECK_EQ_UINT(d->id[2], 0); /* NUL-terminated */
    CHECK_EQ_MEM(d->frame, d->frame_len, "data: x\n\n", 9);
    /* and back: the same bytes */
    sse_buf b;
    sse_buf_init(&b, 0);
    CHECK_EQ_INT(sse_bus_msg_encode(&b, d), 0);
    CHECK_EQ_MEM(b.data, b.len, golden, sizeof(golden));
    sse_bus_msg_free(d);

    /* empty id and frame, binary frame and topic bytes, the largest integers */
    static const char frame[5] = {'a', 0, 'b', '\n', (char)0xff};
    const char *topics[3] = {"", "\xc3\xa9t\xe9", "/x"};
    sse_bus_msg m = {.origin = UINT64_MAX,
                     .time_ms = INT64_MIN,
                     .no_history = 1,
                     .id = "",
                     .topics = topics,
                     .n_topics = 3,
                     .frame = frame,
                     .frame_len = 5};
    for (int pass = 0; pass < 2; pass++) {
        sse_buf_reset(&b);
        if (pass)
            m.frame_len = 0;
        CHECK_EQ_INT(sse_bus_msg_encode(&b, &m), 0);
        CHECK_EQ_INT(sse_bus_msg_decode(b.data, b.len, &d), 0);
        CHECK_EQ_UINT(d->origin, UINT64_MAX);
        CHECK_EQ_UINT(d->token, 0);
        CHECK(d->time_ms == INT64_MIN);
        CHECK_EQ_INT(d->is_private, 0);
        CHECK_EQ_INT(d->no_history, 1);
        CHECK_EQ_UINT(d->id_len, 0);
        CHECK_EQ_STR(d->id, "");
        CHECK_EQ_UINT(d->n_topics, 3);
        for (int i = 0; i < 3; i++)
            CHECK_EQ_STR(d->topics[i], topics[i]);
        CHECK_EQ_MEM(d->frame, d->frame_len, frame, m.frame_len);
        sse_bus_msg_free(d);
    }
    sse_bus_msg_free(NULL);
    sse_buf_free(&b);
    return 0;
}

static int test_codec_encode_limits(void)
{
    sse_bus_msg m = golden_msg();
    sse_buf b;
    sse_buf_init(&b, 0);
    m.n_topics = 0;
    CHECK_EQ_INT(sse_bus_msg_encode(&b, &m), SSE_ELIMIT);
    m.n_topics = 65536;
    CHECK_EQ_INT(sse_bus_msg_encode(&b, &m), SSE_ELIMIT);
    sse_buf_free(&b);
    m = golden_msg();
    sse_buf_init(&b, sizeof(golden) - 1); /* out's cap */
    CHECK_EQ_INT(sse_bus_msg_encode(&b, &m), SSE_ELIMIT);
    sse_buf_free(&b);
    sse_buf_init(&b, sizeof(golden)); /* exactly enough */
    CHECK_EQ_INT(sse_bus_msg_encode(&b, &m), 0);
    sse_buf_free(&b);
    return 0;
}

/* decode p[0..n) from a heap block of exactly n bytes; 0 or SSE_EPROTO, and on success the
 * message re-encodes to exactly those bytes. *ok counts the successes. */
static int decode_exact(const unsigned char *p, size_t n, int *ok)
{
    unsigned char *c = malloc(n ? n : 1);
    CHECK(c != NULL);
    memcpy(c, p, n);
    sse_bus_msg *d = NULL;
    int rc = sse_bus_msg_decode(c, n, &d);
    if (rc) {
        free(c);
        CHECK_EQ_INT(rc, SSE_EPROTO);
        CHECK(d == NULL); /* out written only on success */
        return 0;
    }
    (*ok)++;
    sse_buf b;
    sse_buf_init(&b, 0);
    rc = sse_bus_msg_encode(&b, d);
    sse_bus_msg_free(d);
    int same = rc == 0 && b.len == n && !memcmp(b.data, c, n);
    sse_buf_free(&b);
    free(c);
    CHECK(same);
    return 0;
}

static int test_codec_truncations(void)
{
    int ok = 0;
    for (size_t n = 0; n < sizeof(golden); n++)
        CHECK_EQ_INT(decode_exact(golden, n, &ok), 0);
    CHECK_EQ_INT(ok, 0); /* no prefix of a message is a message */
    CHECK_EQ_INT(decode_exact(golden, sizeof(golden), &ok), 0);
    CHECK_EQ_INT(ok, 1);
    return 0;
}

static int test_codec_header_corruptions(void)
{
    unsigned char m[sizeof(golden)];
    for (int off = 0; off < SSE_BUS_MSG_HEADER; off++)
        for (int v = 0; v < 256; v++) {
            if (v == golden[off])
                continue;
            memcpy(m, golden, sizeof(m));
            m[off] = (unsigned char)v;
            int ok = 0;
            if (decode_exact(m, sizeof(m), &ok)) {
                fprintf(stderr, "  (byte %d = 0x%02x)\n", off, v);
                return 1;
            }
            /* only the free-valued fields may change: origin, token, time, the two flags */
            int may = (off >= 8 && off < 32) || (off == 5 && (v & ~3) == 0);
            if (ok != may) {
                fprintf(stderr, "  byte %d = 0x%02x: decoded %d\n", off, v, ok);
                return 1;
            }
        }
    /* the rest of the message: whatever decodes must re-encode to itself (a NUL byte in a topic
       or the id is refused: see test_codec_refusals) */
    for (size_t off = SSE_BUS_MSG_HEADER; off < sizeof(golden); off++)
        for (int v = 1; v < 256; v++) {
            memcpy(m, golden, sizeof(m));
            m[off] = (unsigned char)v;
            int ok = 0;
            if (decode_exact(m, sizeof(m), &ok)) {
                fprintf(stderr, "  (byte %zu = 0x%02x)\n", off, v);
                return 1;
            }
        }
    return 0;
}

static int test_codec_refusals(void)
{
    unsigned char m[sizeof(golden) + 1];
    sse_bus_msg *d = NULL;
    const struct {
        int off, v;
    } bad[] = {{4, 0}, {4, 2}, {4, 255}, {0, 's'}, {3, 'C'}, {5, 4}, {5, 7}, {5, 0x80}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(m, golden, sizeof(golden));
        m[bad[i].off] = (unsigned char)bad[i].v;
        CHECK_EQ_INT(sse_bus_msg_decode(m, sizeof(golden), &d), SSE_EPROTO);
    }
    memcpy(m, golden, sizeof(golden)); /* a trailing byte */
    m[sizeof(golden)] = 0;
    CHECK_EQ_INT(sse_bus_msg_decode(m, sizeof(golden) + 1, &d), SSE_EPROTO);
    /* no topic: a header alone, lengths 0 */
    unsigned char h[SSE_BUS_MSG_HEADER] = {'S', 'S', 'E', 'B', 1, 0, 0, 0};
    CHECK_EQ_INT(sse_bus_msg_decode(h, sizeof(h), &d), SSE_EPROTO);
    h[7] = 1; /* one topic, but no bytes for its length */
    CHECK_EQ_INT(sse_bus_msg_decode(h, sizeof(h), &d), SSE_EPROTO);
    /* a NUL byte inside a topic ("a\0"), inside the id ("i\0"): decoded topics and ids are C
       strings, so these would be cut short */
    memcpy(m, golden, sizeof(golden));
    m[SSE_BUS_MSG_HEADER + 5] = 0;
    CHECK_EQ_INT(sse_bus_msg_decode(m, sizeof(golden), &d), SSE_EPROTO);
    memcpy(m, golden, sizeof(golden));
    m[SSE_BUS_MSG_HEADER + 11] = 0;
    CHECK_EQ_INT(sse_bus_msg_decode(m, sizeof(golden), &d), SSE_EPROTO);
    CHECK(d == NULL);
    return 0;
}

/* ---------------------------------------------------------------- loop control from a thread */

struct ctl {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uv_async_t cmd;
    void (*fn)(void *);
    void *arg;
    unsigned ran;
};

static void ctl_cmd(uv_async_t *a)
{
    struct ctl *c = a->data;
    pthread_mutex_lock(&c->mu);
    void (*fn)(void *) = c->fn;
    void *arg = c->arg;
    c->fn = NULL;
    pthread_mutex_unlock(&c->mu);
    if (fn)
        fn(arg);
    pthread_mutex_lock(&c->mu);
    c->ran++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void deadline(struct timespec *t, int ms)
{
    clock_gettime(CLOCK_REALTIME, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L)
        t->tv_sec++, t->tv_nsec -= 1000000000L;
}

/* From the client thread: run fn(arg) on the loop and wait until it ran. */
static int on_loop(struct ctl *c, void (*fn)(void *), void *arg)
{
    struct timespec until;
    deadline(&until, 3000);
    pthread_mutex_lock(&c->mu);
    unsigned before = c->ran;
    c->fn = fn;
    c->arg = arg;
    pthread_mutex_unlock(&c->mu);
    uv_async_send(&c->cmd);
    pthread_mutex_lock(&c->mu);
    while (c->ran == before && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
        ;
    int ok = c->ran != before;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* ---------------------------------------------------------------- a bus that can hold */

/* Wraps a bus: what it receives can be held until released (a slow bus round trip). */
struct held {
    struct held *next;
    size_t len;
    unsigned flags;
    unsigned char data[];
};

struct gate {
    sse_bus base; /* must be first */
    sse_bus *inner;
    sse_bus_receive_cb receive;
    void *ud;
    int holding;
    struct held *head, *tail;
    struct ctl *ctl;
    size_t n_held; /* under ctl->mu */
};

static void gate_receive(void *ud, const void *msg, size_t len, unsigned flags)
{
    struct gate *g = ud;
    if (!g->holding) {
        g->receive(g->ud, msg, len, flags);
        return;
    }
    struct held *h = malloc(sizeof(*h) + len);
    if (!h)
        abort();
    h->next = NULL;
    h->len = len;
    h->flags = flags;
    memcpy(h->data, msg, len);
    if (g->tail)
        g->tail->next = h;
    else
        g->head = h;
    g->tail = h;
    pthread_mutex_lock(&g->ctl->mu);
    g->n_held++;
    pthread_cond_broadcast(&g->ctl->cv);
    pthread_mutex_unlock(&g->ctl->mu);
}

static int gate_start(sse_bus *b, sse_bus_receive_cb receive, void *ud)
{
    struct gate *g = (struct gate *)b;
    g->receive = receive;
    g->ud = ud;
    return sse_bus_start(g->inner, gate_receive, g);
}

static int gate_publish(sse_bus *b, const void *msg, size_t len, sse_bus_publish_cb done, void *ud)
{
    return sse_bus_publish(((struct gate *)b)->inner, msg, len, done, ud);
}

static void gate_drop_held(struct gate *g, int deliver)
{
    while (g->head) {
        struct held *h = g->head;
        g->head = h->next;
        if (deliver)
            g->receive(g->ud, h->data, h->len, h->flags);
        free(h);
    }
    g->tail = NULL;
}

static void gate_close(sse_bus *b, sse_bus_close_cb done, void *ud)
{
    struct gate *g = (struct gate *)b;
    gate_drop_held(g, 0);
    sse_bus_close(g->inner, done, ud); /* the gate itself belongs to the test */
}

static const sse_bus_ops gate_ops = {
    SSE_BUS_OPS_VERSION, "gate", gate_start, gate_publish, gate_close, NULL, NULL, NULL, NULL};

static void gate_release(void *arg)
{
    struct gate *g = arg;
    g->holding = 0;
    gate_drop_held(g, 1);
}

/* ---------------------------------------------------------------- two hubs, in-process bus */

struct node {
    sse_server *server;
    sse_hub *hub;
    int port;
    sse_hub_stats st;
};

struct two {
    struct ctl ctl;
    uv_async_t done;
    sse_bus_inproc_group *g;
    struct gate gate_a; /* hub A's bus: holds what A receives */
    sse_bus *bus_b;
    struct node a, b;
    int client_rc;
};

static void server_closed(sse_server *s, void *ud)
{
    (void)s;
    (void)ud;
}

static void two_done(uv_async_t *as)
{
    struct two *t = as->data;
    sse_hub_get_stats(t->a.hub, &t->a.st);
    sse_hub_get_stats(t->b.hub, &t->b.st);
    uv_close((uv_handle_t *)&t->done, NULL);
    uv_close((uv_handle_t *)&t->ctl.cmd, NULL);
    sse_hub_close(t->a.hub);
    sse_hub_close(t->b.hub);
    sse_bus_close(&t->gate_a.base, NULL, NULL);
    sse_bus_close(t->bus_b, NULL, NULL);
    sse_server_close(t->a.server, 500, server_closed, NULL);
    sse_server_close(t->b.server, 500, server_closed, NULL);
}

static void fail_busy(void *arg)
{
    sse_bus_inproc_group_fail(((struct two *)arg)->g, SSE_EBUSY);
}

static void fail_clear(void *arg)
{
    sse_bus_inproc_group_fail(((struct two *)arg)->g, 0);
}

static int wait_held(struct two *t, size_t n)
{
    struct timespec until;
    deadline(&until, 3000);
    pthread_mutex_lock(&t->ctl.mu);
    while (t->gate_a.n_held < n && pthread_cond_timedwait(&t->ctl.cv, &t->ctl.mu, &until) == 0)
        ;
    int ok = t->gate_a.n_held >= n;
    pthread_mutex_unlock(&t->ctl.mu);
    return ok;
}

static int status_is(const struct sock *s, const char *code)
{
    char want[32];
    snprintf(want, sizeof(want), "HTTP/1.1 %s", code);
    if (strncmp(s->buf, want, strlen(want)) != 0) {
        fprintf(stderr, "  wanted %s, got: %s\n", want, s->buf);
        return 0;
    }
    return 1;
}

static int two_script(struct two *t)
{
    struct sock s[6]; /* 0: subscriber on B, 1: subscriber on A, 2..5: POSTs */
    for (int i = 0; i < 6; i++)
        s[i].fd = -1, s[i].len = 0, s[i].buf[0] = '\0', s[i].eof = 0;
    CHECK_EQ_INT(subscribe(&s[0], t->b.port), 0);
    CHECK_EQ_INT(subscribe(&s[1], t->a.port), 0);

    /* a POST to A: B gets the update; A answers only once the message came back to it */
    CHECK_EQ_INT(sock_open(&s[2], t->a.port), 0);
    CHECK_EQ_INT(send_post(&s[2], "b1", "hello"), 0);
    CHECK(wait_held(t, 1));
    CHECK(pump_for(s, 6, 0, "data: hello\n"));
    pump(s, 6, 250);
    CHECK_EQ_UINT(s[2].len, 0); /* not answered while A has not received it */
    CHECK(!strstr(s[1].buf, "data:"));
    CHECK(on_loop(&t->ctl, gate_release, &t->gate_a));
    CHECK(pump_for(s, 6, 2, "\r\n\r\nb1"));
    CHECK(status_is(&s[2], "200"));
    CHECK(pump_for(s, 6, 1, "data: hello\n"));

    /* the bus refuses: 503 from either hub, nobody receives */
    CHECK(on_loop(&t->ctl, fail_busy, t));
    CHECK_EQ_INT(sock_open(&s[3], t->a.port), 0);
    CHECK_EQ_INT(send_post(&s[3], "b2", "nope"), 0);
    CHECK_EQ_INT(sock_open(&s[4], t->b.port), 0);
    CHECK_EQ_INT(send_post(&s[4], "b3", "nope"), 0);
    CHECK(pump_for(s, 6, 3, "\r\n\r\n"));
    CHECK(pump_for(s, 6, 4, "\r\n\r\n"));
    CHECK(status_is(&s[3], "503"));
    CHECK(status_is(&s[4], "503"));
    pump(s, 6, 200);
    CHECK(!strstr(s[0].buf, "nope"));
    CHECK(!strstr(s[1].buf, "nope"));

    /* and recovers */
    CHECK(on_loop(&t->ctl, fail_clear, t));
    CHECK_EQ_INT(sock_open(&s[5], t->b.port), 0);
    CHECK_EQ_INT(send_post(&s[5], "b4", "again"), 0);
    CHECK(pump_for(s, 6, 5, "\r\n\r\nb4"));
    CHECK(status_is(&s[5], "200"));
    CHECK(pump_for(s, 6, 0, "data: again\n"));
    CHECK(pump_for(s, 6, 1, "data: again\n"));
    /* each subscriber got each update once */
    CHECK(!strstr(strstr(s[0].buf, "data: hello\n") + 1, "data: hello\n"));
    CHECK(!strstr(strstr(s[1].buf, "data: hello\n") + 1, "data: hello\n"));
    sock_close(s, 6);
    return 0;
}

static void *two_client(void *arg)
{
    struct two *t = arg;
    t->client_rc = two_script(t);
    uv_async_send(&t->done);
    return NULL;
}

static int node_new(struct node *n, uv_loop_t *loop, sse_bus *bus, sse_store *store)
{
    CHECK_EQ_INT(sse_server_new(&n->server, loop, NULL), 0);
    sse_hub_options o = SSE_HUB_OPTIONS_INIT;
    o.loop = loop;
    o.anonymous = 1;
    o.publish_anonymous = 1;
    o.bus = bus;
    o.store = store;
    CHECK_EQ_INT(sse_hub_new(&n->hub, n->server, &o), 0);
    CHECK_EQ_INT(sse_server_listen(n->server, "127.0.0.1", 0), 0);
    n->port = sse_server_port(n->server);
    return 0;
}

static int test_inproc_two_hubs(void)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    static struct two t;
    memset(&t, 0, sizeof(t));
    pthread_mutex_init(&t.ctl.mu, NULL);
    pthread_cond_init(&t.ctl.cv, NULL);
    CHECK_EQ_INT(sse_bus_inproc_group_new(&t.g, &loop), 0);
    t.gate_a.base.ops = &gate_ops;
    t.gate_a.holding = 1;
    t.gate_a.ctl = &t.ctl;
    CHECK_EQ_INT(sse_bus_inproc_new(&t.gate_a.inner, t.g), 0);
    CHECK_EQ_INT(sse_bus_inproc_new(&t.bus_b, t.g), 0);
    CHECK_EQ_INT(node_new(&t.a, &loop, &t.gate_a.base, NULL), 0);
    CHECK_EQ_INT(node_new(&t.b, &loop, t.bus_b, NULL), 0);
    uv_async_init(&loop, &t.ctl.cmd, ctl_cmd);
    t.ctl.cmd.data = &t.ctl;
    uv_async_init(&loop, &t.done, two_done);
    t.done.data = &t;
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, two_client, &t), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    sse_hub_free(t.a.hub);
    sse_hub_free(t.b.hub);
    sse_server_free(t.a.server);
    sse_server_free(t.b.server);
    sse_bus_inproc_group_free(t.g);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    pthread_mutex_destroy(&t.ctl.mu);
    pthread_cond_destroy(&t.ctl.cv);
    CHECK_EQ_INT(t.client_rc, 0);
    /* both hubs applied the same two updates */
    CHECK_EQ_UINT(t.a.st.history_count, 2);
    CHECK_EQ_UINT(t.b.st.history_count, t.a.st.history_count);
    CHECK_EQ_UINT(t.a.st.updates_total, 2);
    CHECK_EQ_UINT(t.b.st.updates_total, 2);
    return 0;
}

/* One hub with a bus and a store that fails: the update comes back over the bus, the store
 * refuses it, the publisher gets 503 and the subscriber nothing. */
struct one {
    uv_async_t done;
    sse_bus_inproc_group *g;
    sse_bus *bus;
    sse_store *store;
    struct node a;
    int client_rc;
};

static void one_done(uv_async_t *as)
{
    struct one *o = as->data;
    sse_hub_get_stats(o->a.hub, &o->a.st);
    uv_close((uv_handle_t *)&o->done, NULL);
    sse_hub_close(o->a.hub);
    sse_bus_close(o->bus, NULL, NULL);
    sse_store_free(o->store);
    sse_server_close(o->a.server, 500, server_closed, NULL);
}

static int one_script(struct one *o)
{
    struct sock s[2];
    s[1].fd = -1;
    CHECK_EQ_INT(subscribe(&s[0], o->a.port), 0);
    CHECK_EQ_INT(sock_open(&s[1], o->a.port), 0);
    CHECK_EQ_INT(send_post(&s[1], "f1", "lost"), 0);
    CHECK(pump_for(s, 2, 1, "\r\n\r\n"));
    CHECK(status_is(&s[1], "503"));
    pump(s, 2, 200);
    CHECK(!strstr(s[0].buf, "data:"));
    sock_close(s, 2);
    return 0;
}

static void *one_client(void *arg)
{
    struct one *o = arg;
    o->client_rc = one_script(o);
    uv_async_send(&o->done);
    return NULL;
}

static int bus_failing_store(enum fake_fail_mode mode)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    static struct one o;
    memset(&o, 0, sizeof(o));
    CHECK_EQ_INT(sse_bus_inproc_group_new(&o.g, &loop), 0);
    CHECK_EQ_INT(sse_bus_inproc_new(&o.bus, o.g), 0);
    CHECK_EQ_INT(fake_fail_new(&o.store, mode, &loop), 0);
    CHECK_EQ_INT(node_new(&o.a, &loop, o.bus, o.store), 0);
    uv_async_init(&loop, &o.done, one_done);
    o.done.data = &o;
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, one_client, &o), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    sse_hub_free(o.a.hub);
    sse_server_free(o.a.server);
    sse_bus_inproc_group_free(o.g);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    CHECK_EQ_INT(o.client_rc, 0);
    CHECK_EQ_UINT(o.a.st.updates_total, 0);
    CHECK_EQ_UINT(o.a.st.history_count, 0);
    return 0;
}

static int test_inproc_failing_store_return(void)
{
    return bus_failing_store(FAKE_FAIL_RETURN);
}

static int test_inproc_failing_store_callback(void)
{
    return bus_failing_store(FAKE_FAIL_CB_LATER);
}

/* ---------------------------------------------------------------- pipe bus + sequencer */

enum { MAXMSG = 64 * 1024, NMEM = 4 };

/* The sequencer, driven by a thread: poll() on the member fds, then sse_bus_seq_io. */
struct seqrun {
    pthread_mutex_t mu;
    sse_bus_seq *q;
    int stop;
    int drops[NMEM];
    char why[NMEM][64];
    int ready[NMEM];
    pthread_t th;
};

static void seq_drop(void *ud, int k, const char *why)
{
    struct seqrun *r = ud; /* called under r->mu, from the thread */
    r->drops[k]++;
    snprintf(r->why[k], sizeof(r->why[k]), "%s", why);
}

static void seq_ready(void *ud, int k)
{
    ((struct seqrun *)ud)->ready[k]++;
}

static void *seq_main(void *arg)
{
    struct seqrun *r = arg;
    for (;;) {
        struct pollfd p[NMEM];
        pthread_mutex_lock(&r->mu);
        if (r->stop) {
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        for (int k = 0; k < NMEM; k++)
            p[k] = (struct pollfd){
                sse_bus_seq_fd(r->q, k),
                (short)(POLLIN | (sse_bus_seq_wants_write(r->q, k) ? POLLOUT : 0)), 0};
        pthread_mutex_unlock(&r->mu);
        poll(p, NMEM, 10);
        pthread_mutex_lock(&r->mu);
        for (int k = 0; k < NMEM; k++)
            if (p[k].fd >= 0 && p[k].revents && !(p[k].revents & POLLNVAL) &&
                sse_bus_seq_fd(r->q, k) == p[k].fd)
                sse_bus_seq_io(r->q, k, (p[k].revents & (POLLIN | POLLHUP | POLLERR)) != 0,
                               (p[k].revents & POLLOUT) != 0);
        pthread_mutex_unlock(&r->mu);
    }
}

struct member {
    sse_bus *bus;
    char got[16][16]; /* ids received, in order */
    unsigned flags[16];
    size_t n;
    int done_status[8];
    int own_seen[8]; /* at done: its message had come back already */
    int n_done;
    int n_pub; /* publishes made */
};

struct pub {
    struct member *m;
    int i;
    char id[16];
};

static void member_receive(void *ud, const void *msg, size_t len, unsigned flags)
{
    struct member *m = ud;
    sse_bus_msg *d = NULL;
    if (sse_bus_msg_decode(msg, len, &d) || m->n >= 16) {
        snprintf(m->got[m->n < 16 ? m->n : 15], 16, "?bad");
    } else {
        snprintf(m->got[m->n], 16, "%s", d->id);
        m->flags[m->n] = flags;
    }
    m->n++;
    sse_bus_msg_free(d);
}

static void member_published(void *ud, int status)
{
    struct pub *p = ud;
    struct member *m = p->m;
    m->done_status[p->i] = status;
    for (size_t i = 0; i < m->n && i < 16; i++)
        if (!strcmp(m->got[i], p->id))
            m->own_seen[p->i] = 1;
    m->n_done++;
}

static int publish_msg(struct member *m, struct pub *p, const char *id, int no_history)
{
    const char *topics[1] = {"t"};
    char frame[64];
    int fl = snprintf(frame, sizeof(frame), "id: %s\ndata: %s\n\n", id, id);
    sse_bus_msg msg = {.origin = 42,
                       .token = 1,
                       .time_ms = 1000,
                       .no_history = no_history,
                       .id = id,
                       .id_len = strlen(id),
                       .topics = topics,
                       .n_topics = 1,
                       .frame = frame,
                       .frame_len = (size_t)fl};
    sse_buf b;
    sse_buf_init(&b, 0);
    int rc = sse_bus_msg_encode(&b, &msg);
    p->m = m;
    p->i = m->n_pub++;
    snprintf(p->id, sizeof(p->id), "%s", id);
    if (!rc)
        rc = sse_bus_publish(m->bus, b.data, b.len, member_published, p);
    sse_buf_free(&b);
    return rc;
}

/* Run the loop until cond holds (checked every 5 ms) or ms pass. */
static int publish(struct member *m, struct pub *p, const char *id)
{
    return publish_msg(m, p, id, 0);
}

struct waitc {
    int (*cond)(void *);
    void *arg;
    int met;
    uv_timer_t t;
    int ticks;
};

static void wait_tick(uv_timer_t *t)
{
    struct waitc *w = t->data;
    if ((w->met = w->cond(w->arg)) || --w->ticks <= 0)
        uv_stop(t->loop);
}

static int run_until(uv_loop_t *loop, int (*cond)(void *), void *arg, int ms)
{
    struct waitc w = {cond, arg, 0, {0}, ms / 5};
    uv_timer_init(loop, &w.t);
    w.t.data = &w;
    uv_timer_start(&w.t, wait_tick, 5, 5);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&w.t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return w.met || cond(arg);
}

struct expect {
    struct member *m;
    int n;
    size_t got[NMEM];
    int done[NMEM];
};

static int expect_met(void *arg)
{
    struct expect *e = arg;
    for (int i = 0; i < e->n; i++)
        if (e->m[i].n < e->got[i] || e->m[i].n_done < e->done[i])
            return 0;
    return 1;
}

/* A member on the member end of a new socketpair; the other end is attached as slot k. */
static int member_join(struct member *m, struct seqrun *r, int k, uv_loop_t *loop,
                       sse_store *history)
{
    int sv[2];
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct timeval tv = {3, 0}; /* load_history reads blocking: never hang the test */
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    pthread_mutex_lock(&r->mu);
    int rc = sse_bus_seq_attach(r->q, k, sv[0]);
    pthread_mutex_unlock(&r->mu);
    CHECK_EQ_INT(rc, 0);
    memset(m, 0, sizeof(*m));
    sse_bus_pipe_options o = SSE_BUS_PIPE_OPTIONS_INIT;
    o.loop = loop;
    o.fd = sv[1];
    o.max_message = MAXMSG;
    CHECK_EQ_INT(sse_bus_pipe_new(&m->bus, &o), 0);
    CHECK_EQ_INT(sse_bus_pipe_load_history(m->bus, history), 0);
    CHECK_EQ_INT(sse_bus_start(m->bus, member_receive, m), 0);
    CHECK_EQ_INT(sse_bus_pipe_ready(m->bus), 0);
    return 0;
}

struct seqdrop {
    struct seqrun *r;
    int k, n;
};

static int dropped(void *arg)
{
    struct seqdrop *d = arg;
    pthread_mutex_lock(&d->r->mu);
    int ok = d->r->drops[d->k] >= d->n;
    pthread_mutex_unlock(&d->r->mu);
    return ok;
}

/* Attach slot k, write raw bytes as that member, and wait until the sequencer drops it. */
static int garbage_member(struct seqrun *r, uv_loop_t *loop, int k, const void *bytes, size_t n,
                          const char *want_why)
{
    int sv[2];
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pthread_mutex_lock(&r->mu);
    int before = r->drops[k];
    int rc = sse_bus_seq_attach(r->q, k, sv[0]);
    pthread_mutex_unlock(&r->mu);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(write(sv[1], bytes, n), (ssize_t)n);
    struct seqdrop d = {r, k, before + 1};
    CHECK(run_until(loop, dropped, &d, 3000));
    pthread_mutex_lock(&r->mu);
    int fd = sse_bus_seq_fd(r->q, k), drops = r->drops[k];
    char why[64];
    snprintf(why, sizeof(why), "%s", r->why[k]);
    pthread_mutex_unlock(&r->mu);
    close(sv[1]);
    CHECK_EQ_INT(drops, before + 1); /* once */
    CHECK_EQ_INT(fd, -1);            /* detached */
    CHECK_EQ_STR(why, want_why);
    return 0;
}

static int ids_are(const struct member *m, const char *const *ids, size_t n)
{
    CHECK_EQ_UINT(m->n, n);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ_STR(m->got[i], ids[i]);
    return 0;
}

static int test_pipe_sequencer(void)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    static struct seqrun r;
    memset(&r, 0, sizeof(r));
    pthread_mutex_init(&r.mu, NULL);
    sse_store *hist, *local[3];
    CHECK_EQ_INT(sse_store_memory_new(&hist, NULL), 0);
    sse_bus_seq_options so = {.version = SSE_BUS_SEQ_OPTIONS_VERSION,
                              .n_members = NMEM,
                              .max_message = MAXMSG,
                              .store = hist,
                              .on_drop = seq_drop,
                              .on_ready = seq_ready,
                              .ud = &r};
    CHECK_EQ_INT(sse_bus_seq_new(&r.q, &so), 0);
    CHECK_EQ_INT(pthread_create(&r.th, NULL, seq_main, &r), 0);
    static struct member m[3];
    static struct pub p[8];
    for (int k = 0; k < 3; k++)
        CHECK_EQ_INT(sse_store_memory_new(&local[k], NULL), 0);
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++)
        rc = member_join(&m[k], &r, k, &loop, local[k]);
    CHECK_EQ_INT(rc, 0);

    /* two members publish: everyone receives all, in one order; dones after the echo */
    CHECK_EQ_INT(publish(&m[0], &p[0], "a"), 0);
    CHECK_EQ_INT(publish(&m[1], &p[1], "c"), 0);
    CHECK_EQ_INT(publish(&m[0], &p[2], "b"), 0);
    struct expect e = {m, 2, {3, 3}, {2, 1}};
    CHECK(run_until(&loop, expect_met, &e, 3000));
    CHECK_EQ_UINT(m[0].n, 3);
    CHECK_EQ_UINT(m[1].n, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_STR(m[0].got[i], m[1].got[i]);
        CHECK_EQ_UINT(m[0].flags[i], 0);
    }
    /* a before b: one member's order is kept (c, from the other member, may come anywhere) */
    int at_a = -1, at_b = -1;
    for (int i = 0; i < 3; i++) {
        if (!strcmp(m[0].got[i], "a"))
            at_a = i;
        if (!strcmp(m[0].got[i], "b"))
            at_b = i;
    }
    CHECK(at_a >= 0 && at_b > at_a);
    CHECK_EQ_INT(m[0].n_done, 2);
    CHECK_EQ_INT(m[1].n_done, 1);
    CHECK_EQ_INT(m[0].done_status[0], 0);
    CHECK_EQ_INT(m[0].done_status[1], 0);
    CHECK_EQ_INT(m[1].done_status[0], 0);
    CHECK(m[0].own_seen[0] && m[0].own_seen[1] && m[1].own_seen[0]);
    pthread_mutex_lock(&r.mu);
    int ready0 = r.ready[0], ready1 = r.ready[1];
    pthread_mutex_unlock(&r.mu);
    CHECK_EQ_INT(ready0, 1);
    CHECK_EQ_INT(ready1, 1);
    size_t count;
    sse_store_stats(local[0], &count, NULL); /* the first members started with no history */
    CHECK_EQ_UINT(count, 0);

    /* a member attached later: the history first, in the same order */
    CHECK_EQ_INT(member_join(&m[2], &r, 2, &loop, local[2]), 0);
    sse_store_stats(local[2], &count, NULL);
    CHECK_EQ_UINT(count, 3);
    sse_buf last;
    sse_buf_init(&last, 0);
    CHECK_EQ_INT(sse_store_last_id(local[2], &last), 0);
    CHECK_EQ_STR(sse_buf_cstr(&last), m[0].got[2]);
    sse_buf_free(&last);
    CHECK_EQ_INT(publish(&m[2], &p[3], "d"), 0);
    struct expect e2 = {m, 3, {4, 4, 1}, {2, 1, 1}};
    CHECK(run_until(&loop, expect_met, &e2, 3000));
    CHECK_EQ_STR(m[0].got[3], "d");
    CHECK_EQ_STR(m[1].got[3], "d");
    const char *only_d[1] = {"d"};
    CHECK_EQ_INT(ids_are(&m[2], only_d, 1), 0); /* the history came through load_history */
    CHECK_EQ_INT(m[2].done_status[0], 0);

    /* members that send garbage are dropped; the others go on */
    unsigned char bad_msg[10] = {0, 0, 0, 6, 'U', 'h', 'e', 'l', 'l', 'o'};
    CHECK_EQ_INT(
        garbage_member(&r, &loop, 3, bad_msg, sizeof(bad_msg), "sent a malformed bus message"), 0);
    unsigned char bad_type[5] = {0, 0, 0, 1, 'Z'};
    CHECK_EQ_INT(
        garbage_member(&r, &loop, 3, bad_type, sizeof(bad_type), "protocol error on its pipe"), 0);
    unsigned char too_big[5] = {0xff, 0xff, 0xff, 0xff, 'U'};
    CHECK_EQ_INT(garbage_member(&r, &loop, 3, too_big, sizeof(too_big), "frame too large"), 0);
    unsigned char empty[5] = {0, 0, 0, 0, 'U'}; /* a length of 0: not even the type */
    CHECK_EQ_INT(garbage_member(&r, &loop, 3, empty, sizeof(empty), "frame too large"), 0);
    CHECK_EQ_INT(publish(&m[1], &p[4], "e"), 0);
    CHECK_EQ_INT(publish_msg(&m[0], &p[5], "n", 1), 0); /* relayed, never stored */
    struct expect e3 = {m, 3, {6, 6, 3}, {3, 2, 1}};
    CHECK(run_until(&loop, expect_met, &e3, 3000));
    const char *e4 = m[0].got[4], *n5 = m[0].got[5]; /* two members: either order */
    CHECK((!strcmp(e4, "e") && !strcmp(n5, "n")) || (!strcmp(e4, "n") && !strcmp(n5, "e")));
    for (int k = 1; k < 3; k++) { /* but the same for everyone */
        CHECK_EQ_STR(m[k].got[m[k].n - 2], e4);
        CHECK_EQ_STR(m[k].got[m[k].n - 1], n5);
    }
    CHECK_EQ_INT(m[0].done_status[2], 0);
    pthread_mutex_lock(&r.mu);
    int drops_ok = r.drops[0] + r.drops[1] + r.drops[2] == 0;
    r.stop = 1;
    pthread_mutex_unlock(&r.mu);
    CHECK(drops_ok);
    pthread_join(r.th, NULL);

    for (int k = 0; k < 3; k++)
        sse_bus_close(m[k].bus, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    sse_bus_seq_free(r.q);
    sse_store_stats(hist, &count, NULL);
    CHECK_EQ_UINT(count, 5); /* a, b, c, d, e: not n */
    sse_store_free(hist);
    for (int k = 0; k < 3; k++)
        sse_store_free(local[k]);
    pthread_mutex_destroy(&r.mu);
    return 0;
}

/* A sequencer whose store refuses: the publisher hears SSE_EIO, nobody receives it. */
static int refused(enum fake_fail_mode mode)
{
    uv_loop_t loop, store_loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(uv_loop_init(&store_loop), 0);
    static struct seqrun r;
    memset(&r, 0, sizeof(r));
    pthread_mutex_init(&r.mu, NULL);
    sse_store *hist, *local[2];
    CHECK_EQ_INT(fake_fail_new(&hist, mode, &store_loop), 0);
    sse_bus_seq_options so = {.version = SSE_BUS_SEQ_OPTIONS_VERSION,
                              .n_members = NMEM,
                              .max_message = MAXMSG,
                              .store = hist,
                              .on_drop = seq_drop,
                              .on_ready = seq_ready,
                              .ud = &r};
    CHECK_EQ_INT(sse_bus_seq_new(&r.q, &so), 0);
    CHECK_EQ_INT(pthread_create(&r.th, NULL, seq_main, &r), 0);
    static struct member m[2];
    static struct pub p[2];
    for (int k = 0; k < 2; k++) {
        CHECK_EQ_INT(sse_store_memory_new(&local[k], NULL), 0);
        CHECK_EQ_INT(member_join(&m[k], &r, k, &loop, local[k]), 0);
    }
    CHECK_EQ_INT(publish(&m[0], &p[0], "x"), 0);
    struct expect e = {m, 1, {0}, {1}};
    CHECK(run_until(&loop, expect_met, &e, 3000));
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_EQ_INT(m[0].done_status[0], SSE_EIO);
    CHECK_EQ_UINT(m[0].n, 0);
    CHECK_EQ_UINT(m[1].n, 0);
    pthread_mutex_lock(&r.mu);
    r.stop = 1;
    pthread_mutex_unlock(&r.mu);
    pthread_join(r.th, NULL);
    for (int k = 0; k < 2; k++)
        sse_bus_close(m[k].bus, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    sse_bus_seq_free(r.q);
    sse_store_free(hist);
    uv_run(&store_loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&store_loop), 0);
    for (int k = 0; k < 2; k++)
        sse_store_free(local[k]);
    pthread_mutex_destroy(&r.mu);
    return 0;
}

static int test_pipe_store_refuses_return(void)
{
    return refused(FAKE_FAIL_RETURN);
}

static int test_pipe_store_refuses_callback(void)
{
    return refused(FAKE_FAIL_CB_NOW);
}

struct appends {
    struct seqrun *r;
    sse_store *hist;
    size_t n;
};

static int appends_called(void *arg)
{
    struct appends *a = arg;
    pthread_mutex_lock(&a->r->mu);
    int ok = fake_async_calls(a->hist) >= a->n;
    pthread_mutex_unlock(&a->r->mu);
    return ok;
}

static int collect_id(void *ud, const sse_store_entry *e)
{
    struct member *m = ud;
    snprintf(m->got[m->n++ % 16], 16, "%.*s", (int)e->id_len, e->id);
    return 0;
}

/* The sequencer over a store that reports appends out of turn (b before a): every member
 * receives a then b, each publish is acknowledged in its turn, and the history holds a, b. */
static int test_pipe_store_out_of_turn(void)
{
    uv_loop_t loop, store_loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(uv_loop_init(&store_loop), 0);
    static struct seqrun r;
    memset(&r, 0, sizeof(r));
    pthread_mutex_init(&r.mu, NULL);
    sse_store *hist, *local[2];
    CHECK_EQ_INT(fake_async_new(&hist, NULL, &store_loop), 0);
    fake_async_set_hold(hist, 1);
    fake_async_set_sync_reads(hist, 1);
    sse_bus_seq_options so = {.version = SSE_BUS_SEQ_OPTIONS_VERSION,
                              .n_members = NMEM,
                              .max_message = MAXMSG,
                              .store = hist,
                              .on_drop = seq_drop,
                              .on_ready = seq_ready,
                              .ud = &r};
    CHECK_EQ_INT(sse_bus_seq_new(&r.q, &so), 0);
    CHECK_EQ_INT(pthread_create(&r.th, NULL, seq_main, &r), 0);
    static struct member m[2];
    static struct pub p[2];
    for (int k = 0; k < 2; k++) {
        CHECK_EQ_INT(sse_store_memory_new(&local[k], NULL), 0);
        CHECK_EQ_INT(member_join(&m[k], &r, k, &loop, local[k]), 0);
    }
    CHECK_EQ_INT(publish(&m[0], &p[0], "a"), 0);
    CHECK_EQ_INT(publish(&m[0], &p[1], "b"), 0);
    struct appends ap = {&r, hist, 2};
    CHECK(run_until(&loop, appends_called, &ap, 3000));
    pthread_mutex_lock(&r.mu);
    CHECK_EQ_INT(fake_async_complete(hist, 1), 0); /* b reports first */
    pthread_mutex_unlock(&r.mu);
    struct expect none = {m, 2, {1, 1}, {0, 0}};
    CHECK(!run_until(&loop, expect_met, &none, 200)); /* nothing released while a waits */
    CHECK_EQ_UINT(m[0].n, 0);
    CHECK_EQ_INT(m[0].n_done, 0);
    pthread_mutex_lock(&r.mu);
    CHECK_EQ_INT(fake_async_complete(hist, 0), 0);
    pthread_mutex_unlock(&r.mu);
    struct expect e = {m, 2, {2, 2}, {2, 0}};
    CHECK(run_until(&loop, expect_met, &e, 3000));
    static const char *const ab[] = {"a", "b"};
    CHECK_EQ_INT(ids_are(&m[0], ab, 2), 0);
    CHECK_EQ_INT(ids_are(&m[1], ab, 2), 0);
    CHECK_EQ_INT(m[0].done_status[0], 0);
    CHECK_EQ_INT(m[0].done_status[1], 0);
    static struct member h;
    memset(&h, 0, sizeof(h));
    pthread_mutex_lock(&r.mu);
    CHECK_EQ_INT(sse_store_replay(hist, NULL, 0, collect_id, NULL, &h), 0);
    pthread_mutex_unlock(&r.mu);
    CHECK_EQ_INT(ids_are(&h, ab, 2), 0); /* the history's order is the relay's */
    pthread_mutex_lock(&r.mu);
    r.stop = 1;
    pthread_mutex_unlock(&r.mu);
    pthread_join(r.th, NULL);
    for (int k = 0; k < 2; k++)
        sse_bus_close(m[k].bus, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    sse_bus_seq_free(r.q);
    sse_store_free(hist);
    uv_run(&store_loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&store_loop), 0);
    for (int k = 0; k < 2; k++)
        sse_store_free(local[k]);
    pthread_mutex_destroy(&r.mu);
    return 0;
}

/* A store that replays later than it returns cannot hand a new member its history before the
 * live messages: attach refuses it, and the late replay touches nothing of the attach. */
static int test_pipe_attach_refuses_late_replay(void)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    sse_store *hist;
    CHECK_EQ_INT(fake_async_new(&hist, NULL, &loop), 0);
    sse_frame *f;
    CHECK_EQ_INT(sse_frame_new(&f, "data: h\n\n", 9), 0);
    const char *topics[1] = {"t"};
    sse_store_entry e = {.id = "h1", .id_len = 2, .topics = topics, .n_topics = 1, .frame = f};
    CHECK_EQ_INT(sse_store_append(hist, &e, NULL, NULL), 0);
    sse_frame_unref(f);
    uv_run(&loop, UV_RUN_DEFAULT); /* the append reports */
    sse_bus_seq *q;
    sse_bus_seq_options so = {.version = SSE_BUS_SEQ_OPTIONS_VERSION,
                              .n_members = 1,
                              .max_message = MAXMSG,
                              .store = hist};
    CHECK_EQ_INT(sse_bus_seq_new(&q, &so), 0);
    int sv[2];
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_EQ_INT(sse_bus_seq_attach(q, 0, sv[0]), SSE_EUNSUPPORTED);
    CHECK_EQ_INT(sse_bus_seq_fd(q, 0), -1);
    CHECK(!sse_bus_seq_wants_write(q, 0));
    uv_run(&loop, UV_RUN_DEFAULT); /* the replay comes now: it must not reach the attach */
    close(sv[0]);                  /* not taken on failure */
    close(sv[1]);
    sse_bus_seq_free(q);
    sse_store_free(hist);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_codec_golden), CHECK_TEST(test_codec_round_trip),
           CHECK_TEST(test_codec_encode_limits), CHECK_TEST(test_codec_truncations),
           CHECK_TEST(test_codec_header_corruptions), CHECK_TEST(test_codec_refusals),
           CHECK_TEST(test_inproc_two_hubs), CHECK_TEST(test_inproc_failing_store_return),
           CHECK_TEST(test_inproc_failing_store_callback), CHECK_TEST(test_pipe_sequencer),
           CHECK_TEST(test_pipe_store_refuses_return), CHECK_TEST(test_pipe_store_refuses_callback),
           CHECK_TEST(test_pipe_attach_refuses_late_replay),
           CHECK_TEST(test_pipe_store_out_of_turn))
