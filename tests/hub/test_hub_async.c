/*
 * test_hub_async.c: the hub over a store that answers later (as a network store would). A
 * wrapper around the memory store defers replay and scan callbacks by a timer, and publishes a
 * live update while the replay is in flight. A client thread subscribes with Last-Event-ID over
 * a real socket and must get: the Last-Event-ID response header, the missed updates in order,
 * then the live ones (one read by the replay, one held while the scan was pending), each once.
 * Also: a client that disconnects while its subscribe is deferred leaves no subscriber behind.
 */
#include "harness/check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sse/hub.h>
#include <sse/server.h>
#include <sse/store.h>
#include <sys/socket.h>
#include <unistd.h>

struct delay_store {
    sse_store base;
    sse_store *inner;
    uv_loop_t *loop;
    sse_hub *hub;
    int deferred_calls;
    int copy_frames; /* replays hand out new frames with the same bytes, as a disk store does */
};

/* A replay that hands each entry on with a copy of its frame (copy_frames). */
struct copying {
    sse_store_entry_cb each;
    sse_store_done_cb done;
    void *ud;
};

static int copy_each(void *ud, const sse_store_entry *e)
{
    struct copying *cp = ud;
    sse_store_entry c = *e;
    if (sse_frame_new(&c.frame, sse_frame_data(e->frame), sse_frame_len(e->frame)))
        abort(); /* test code: the system allocator does not fail here */
    int stop = cp->each(cp->ud, &c);
    sse_frame_unref(c.frame);
    return stop;
}

static void copy_done(void *ud, int status, int found)
{
    struct copying *cp = ud;
    cp->done(cp->ud, status, found);
}

struct pending_call {
    uv_timer_t t;
    struct delay_store *d;
    int scan;
    char id[128];
    size_t id_len;
    int has_id;
    size_t max;
    sse_store_entry_cb each;
    sse_store_done_cb done;
    void *ud;
};

static void call_closed(uv_handle_t *h)
{
    free(h->data);
}

static void fire(uv_timer_t *t)
{
    struct pending_call *c = t->data;
    if (!c->scan) { /* an update published while the replay is in flight */
        const char *topics[1] = {"t"};
        sse_hub_update u = {topics, 1, "live", 4, NULL, NULL, -1, 0};
        sse_hub_publish(c->d->hub, &u, NULL);
        struct copying cp = {c->each, c->done, c->ud};
        sse_store_replay(c->d->inner, c->has_id ? c->id : NULL, c->id_len,
                         c->d->copy_frames ? copy_each : c->each,
                         c->d->copy_frames ? copy_done : c->done,
                         c->d->copy_frames ? (void *)&cp : c->ud);
    } else { /* after the replay read the history: this one is held, then sent after it */
        const char *topics[1] = {"t"};
        sse_hub_update u = {topics, 1, "live2", 5, NULL, NULL, -1, 0};
        sse_hub_publish(c->d->hub, &u, NULL);
        sse_store_scan_back(c->d->inner, c->id, c->id_len, c->max, c->each, c->done, c->ud);
    }
    c->t.data = c;
    uv_close((uv_handle_t *)&c->t, call_closed);
}

static int defer(struct delay_store *d, int scan, const char *id, size_t len, size_t max,
                 sse_store_entry_cb each, sse_store_done_cb done, void *ud)
{
    struct pending_call *c = calloc(1, sizeof(*c));
    if (!c || len >= sizeof(c->id))
        return SSE_ENOMEM;
    c->d = d;
    c->scan = scan;
    c->has_id = id != NULL;
    if (id)
        memcpy(c->id, id, len);
    c->id_len = len;
    c->max = max;
    c->each = each;
    c->done = done;
    c->ud = ud;
    uv_timer_init(d->loop, &c->t);
    c->t.data = c;
    uv_timer_start(&c->t, fire, 150, 0);
    d->deferred_calls++;
    return 0;
}

static int d_append(sse_store *s, const sse_store_entry *e, sse_store_append_cb cb, void *ud)
{
    return sse_store_append(((struct delay_store *)s)->inner, e, cb, ud);
}
static int d_replay(sse_store *s, const char *id, size_t len, sse_store_entry_cb each,
                    sse_store_done_cb done, void *ud)
{
    return defer((struct delay_store *)s, 0, id, len, 0, each, done, ud);
}
static int d_scan(sse_store *s, const char *id, size_t len, size_t max, sse_store_entry_cb each,
                  sse_store_done_cb done, void *ud)
{
    return defer((struct delay_store *)s, 1, id, len, max, each, done, ud);
}
static int d_last(sse_store *s, sse_buf *out)
{
    return sse_store_last_id(((struct delay_store *)s)->inner, out);
}
static int d_trim(sse_store *s, const sse_store_limits *l, long long now)
{
    return sse_store_trim(((struct delay_store *)s)->inner, l, now);
}
static void d_stats(const sse_store *s, size_t *c, size_t *b)
{
    sse_store_stats(((const struct delay_store *)s)->inner, c, b);
}
static void d_close(sse_store *s, void (*done)(void *ud), void *ud)
{
    (void)s;
    if (done)
        done(ud);
}
static const sse_store_ops delay_ops = {SSE_STORE_OPS_VERSION,
                                        "delay",
                                        d_append,
                                        d_replay,
                                        d_scan,
                                        d_last,
                                        d_trim,
                                        d_stats,
                                        d_close,
                                        NULL,
                                        NULL};

/* ---------------------------------------------------------------- client thread */

struct client {
    int port;
    char last_id[128];
    char got[4096];
    size_t got_len;
    int abort_early;
    uv_async_t *done;
};

/* A socket connected to 127.0.0.1:port with a 3 s read timeout; -1 on failure. */
static int connect_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    int fd = connect_loopback(c->port);
    if (fd >= 0) {
        char req[512];
        int n = snprintf(req, sizeof(req),
                         "GET /.well-known/mercure?topic=t HTTP/1.1\r\nHost: x\r\n"
                         "Last-Event-ID: %s\r\n\r\n",
                         c->last_id);
        if (write(fd, req, (size_t)n) == n && !c->abort_early) {
            /* Read until the live update's data arrives (or the timeout), then 300 ms more:
               a second copy of "live2" must have a chance to arrive, or "once" cannot fail. */
            int seen = 0;
            while (c->got_len < sizeof(c->got) - 1) {
                ssize_t k = read(fd, c->got + c->got_len, sizeof(c->got) - 1 - c->got_len);
                if (k <= 0)
                    break;
                c->got_len += (size_t)k;
                c->got[c->got_len] = '\0';
                if (!seen && strstr(c->got, "data: live2\n")) {
                    seen = 1;
                    struct timeval after = {0, 300000};
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &after, sizeof(after));
                }
            }
        }
    }
    if (fd >= 0)
        close(fd);
    uv_async_send(c->done);
    return NULL;
}

struct run {
    sse_server *server;
    sse_hub *hub;
    uv_async_t done;
    uv_timer_t settle;
};

static void server_done(sse_server *s, void *ud)
{
    (void)s;
    (void)ud;
}

static void settled(uv_timer_t *t)
{
    struct run *r = t->data;
    uv_close((uv_handle_t *)&r->settle, NULL);
    sse_hub_close(r->hub);
    sse_server_close(r->server, 1000, server_done, NULL);
}

static void client_done(uv_async_t *a)
{
    struct run *r = a->data;
    uv_close((uv_handle_t *)&r->done, NULL);
    /* Let deferred store calls and closes run out before shutting down. */
    uv_timer_init(a->loop, &r->settle);
    r->settle.data = r;
    uv_timer_start(&r->settle, settled, 400, 0);
}

static int run_case(int abort_early, int copy_frames)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    struct run r = {0};
    sse_store *mem;
    CHECK_EQ_INT(sse_store_memory_new(&mem, NULL), 0);
    struct delay_store d = {{&delay_ops}, mem, &loop, NULL, 0, copy_frames};
    CHECK_EQ_INT(sse_server_new(&r.server, &loop, NULL), 0);
    sse_hub_options o = SSE_HUB_OPTIONS_INIT;
    o.loop = &loop;
    o.anonymous = 1;
    o.publish_anonymous = 1;
    o.store = &d.base;
    CHECK_EQ_INT(sse_hub_new(&r.hub, r.server, &o), 0);
    d.hub = r.hub;
    CHECK_EQ_INT(sse_server_listen(r.server, "127.0.0.1", 0), 0);

    const char *topics[1] = {"t"};
    sse_buf id1;
    sse_buf_init(&id1, 0);
    sse_hub_update u = {topics, 1, "r1", 2, NULL, NULL, -1, 0};
    CHECK_EQ_INT(sse_hub_publish(r.hub, &u, &id1), 0);
    u.data = "r2";
    CHECK_EQ_INT(sse_hub_publish(r.hub, &u, NULL), 0);
    u.data = "r3";
    CHECK_EQ_INT(sse_hub_publish(r.hub, &u, NULL), 0);

    struct client c = {0};
    c.port = sse_server_port(r.server);
    snprintf(c.last_id, sizeof(c.last_id), "%s", sse_buf_cstr(&id1));
    c.abort_early = abort_early;
    c.done = &r.done;
    uv_async_init(&loop, &r.done, client_done);
    r.done.data = &r;
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, client_main, &c), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);

    sse_hub_stats st;
    sse_hub_get_stats(r.hub, &st);
    sse_hub_free(r.hub);
    sse_server_free(r.server);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    sse_store_free(mem);

    CHECK(d.deferred_calls >= 1);
    CHECK_EQ_UINT(st.subscribers, 0);
    if (abort_early) {
        sse_buf_free(&id1);
        return 0;
    }
    char want_hdr[200];
    snprintf(want_hdr, sizeof(want_hdr), "Last-Event-ID: %s\r\n", sse_buf_cstr(&id1));
    sse_buf_free(&id1);
    if (!strstr(c.got, want_hdr)) {
        fprintf(stderr, "  got: %s\n", c.got);
        CHECK(!"the Last-Event-ID response header");
    }
    const char *p2 = strstr(c.got, "data: r2\n"), *p3 = strstr(c.got, "data: r3\n");
    const char *pl = strstr(c.got, "data: live\n");
    const char *pl2 = strstr(c.got, "data: live2\n");
    CHECK(p2 && p3 && pl && pl2);
    CHECK(p2 < p3 && p3 < pl && pl < pl2);
    CHECK(!strstr(pl2 + 1, "data: live2\n"));
    CHECK(!strstr(c.got, "data: r1\n"));
    CHECK(!strstr(pl + 1, "data: live\n")); /* once */
    /* "live" was appended before the deferred replay read the history: it comes from the replay
       and its held live copy is dropped (by its store position: with copy_frames the replayed
       frame is another object with the same bytes). */
    CHECK_EQ_UINT(st.replayed_total, 3);
    return 0;
}

static int test_deferred_replay(void)
{
    return run_case(0, 0);
}

/* The same with a store that makes new frames on replay (LMDB reading from the disk). */
static int test_deferred_replay_new_frames(void)
{
    return run_case(0, 1);
}

static int test_client_gone_while_deferred(void)
{
    return run_case(1, 0);
}

/* ---------------------------------------------------------------- a late relay (LMDB followers)

   With --workers and an LMDB store, a subscriber may resume on worker B from an id it got on
   worker A before the sequencer's relay of that update reached B: B's store (the shared file)
   already has the id, so the replay sends nothing after it, and the relay then arrives live with
   the id's position. The hub must drop it (the subscriber has it), and still send what comes
   after. Here: a bus that holds what the hub publishes until the test hands it back with a
   position, and a store that already holds "X" at position 1 and takes relayed positions. */

struct late_bus {
    sse_bus base;
    sse_bus_receive_cb receive;
    void *ud;
    char msg[2][4096];
    size_t len[2];
    int n;
};

static int lb_start(sse_bus *b, sse_bus_receive_cb receive, void *ud)
{
    struct late_bus *lb = (struct late_bus *)b;
    lb->receive = receive;
    lb->ud = ud;
    return 0;
}
static int lb_publish(sse_bus *b, const void *msg, size_t len, sse_bus_publish_cb done, void *ud)
{
    struct late_bus *lb = (struct late_bus *)b;
    if (lb->n >= 2 || len > sizeof(lb->msg[0]))
        return SSE_EBUSY;
    memcpy(lb->msg[lb->n], msg, len);
    lb->len[lb->n++] = len;
    if (done)
        done(ud, 0);
    return 0;
}
static void lb_close(sse_bus *b, sse_bus_close_cb done, void *ud)
{
    (void)b;
    if (done)
        done(ud);
}
static const sse_bus_ops late_bus_ops = {
    .version = SSE_BUS_OPS_VERSION,
    .name = "late",
    .start = lb_start,
    .publish = lb_publish,
    .close = lb_close,
};

/* Hand message i back to the hub as the sequencer's relay at position pos. */
static void lb_relay(struct late_bus *lb, int i, uint64_t pos)
{
    lb->base.rx_position = pos;
    lb->receive(lb->ud, lb->msg[i], lb->len[i], 0);
    lb->base.rx_position = 0;
}

/* Appends take the relayed position (a follower writes nothing); the rest is the memory store. */
static int f_append(sse_store *s, const sse_store_entry *e, sse_store_append_cb cb, void *ud)
{
    (void)s;
    if (cb)
        cb(ud, 0, e->position);
    return 0;
}
static int f_replay(sse_store *s, const char *id, size_t len, sse_store_entry_cb each,
                    sse_store_done_cb done, void *ud)
{
    return sse_store_replay(((struct delay_store *)s)->inner, id, len, each, done, ud);
}
static int f_scan(sse_store *s, const char *id, size_t len, size_t max, sse_store_entry_cb each,
                  sse_store_done_cb done, void *ud)
{
    return sse_store_scan_back(((struct delay_store *)s)->inner, id, len, max, each, done, ud);
}
static const sse_store_ops follow_ops = {SSE_STORE_OPS_VERSION,
                                         "follow",
                                         f_append,
                                         f_replay,
                                         f_scan,
                                         d_last,
                                         d_trim,
                                         d_stats,
                                         d_close,
                                         NULL,
                                         NULL};

struct late_run {
    struct run r;
    struct late_bus *bus;
    uv_async_t opened;
};

/* The client read the response head: now the relays arrive, "dup" (X, position 1) first. */
static void late_opened(uv_async_t *a)
{
    struct late_run *lr = a->data;
    uv_close((uv_handle_t *)&lr->opened, NULL);
    lb_relay(lr->bus, 0, 1);
    const char *topics[1] = {"t"};
    sse_hub_update u = {topics, 1, "fresh", 5, NULL, NULL, -1, 0};
    if (sse_hub_publish(lr->r.hub, &u, NULL) == 0)
        lb_relay(lr->bus, 1, 2);
}

struct late_client {
    int port;
    char got[4096];
    size_t got_len;
    uv_async_t *opened, *done;
};

static void *late_client_main(void *arg)
{
    struct late_client *c = arg;
    int fd = connect_loopback(c->port);
    static const char req[] = "GET /.well-known/mercure?topic=t HTTP/1.1\r\nHost: x\r\n"
                              "Last-Event-ID: X\r\n\r\n";
    int opened = 0, seen = 0;
    if (fd >= 0 && write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
        while (c->got_len < sizeof(c->got) - 1) {
            ssize_t k = read(fd, c->got + c->got_len, sizeof(c->got) - 1 - c->got_len);
            if (k <= 0)
                break;
            c->got_len += (size_t)k;
            c->got[c->got_len] = '\0';
            if (!opened && strstr(c->got, "\r\n\r\n")) {
                opened = 1;
                uv_async_send(c->opened);
            }
            if (!seen && strstr(c->got, "data: fresh\n")) {
                seen = 1; /* 300 ms more: a late copy of "dup" must be able to arrive */
                struct timeval after = {0, 300000};
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &after, sizeof(after));
            }
        }
    }
    if (!opened)
        uv_async_send(c->opened);
    if (fd >= 0)
        close(fd);
    uv_async_send(c->done);
    return NULL;
}

static int test_late_relay_of_resumed_id(void)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    sse_store *mem;
    CHECK_EQ_INT(sse_store_memory_new(&mem, NULL), 0);
    /* the shared file already holds X (committed, relayed to another worker only) */
    sse_frame *fx;
    CHECK_EQ_INT(sse_frame_new(&fx, "id: X\ndata: dup\n\n", 17), 0);
    const char *topics[1] = {"t"};
    sse_store_entry ex = {"X", 1, topics, 1, 0, fx, 0, 0};
    CHECK_EQ_INT(sse_store_append(mem, &ex, NULL, NULL), 0);
    sse_frame_unref(fx);

    struct delay_store d = {{&follow_ops}, mem, &loop, NULL, 0, 0};
    struct late_bus *bus = calloc(1, sizeof(*bus));
    CHECK(bus != NULL);
    bus->base.ops = &late_bus_ops;
    struct late_run lr = {0};
    lr.bus = bus;
    CHECK_EQ_INT(sse_server_new(&lr.r.server, &loop, NULL), 0);
    sse_hub_options o = SSE_HUB_OPTIONS_INIT;
    o.loop = &loop;
    o.anonymous = 1;
    o.publish_anonymous = 1;
    o.store = &d.base;
    o.bus = &bus->base;
    CHECK_EQ_INT(sse_hub_new(&lr.r.hub, lr.r.server, &o), 0);
    CHECK_EQ_INT(sse_server_listen(lr.r.server, "127.0.0.1", 0), 0);
    /* the update X as the other worker published it: its bus message, held by the bus */
    sse_hub_update ux = {topics, 1, "dup", 3, "X", NULL, -1, 0};
    CHECK_EQ_INT(sse_hub_publish(lr.r.hub, &ux, NULL), 0);
    CHECK_EQ_INT(bus->n, 1);

    struct late_client c = {0};
    c.port = sse_server_port(lr.r.server);
    c.opened = &lr.opened;
    c.done = &lr.r.done;
    uv_async_init(&loop, &lr.opened, late_opened);
    lr.opened.data = &lr;
    uv_async_init(&loop, &lr.r.done, client_done);
    lr.r.done.data = &lr.r;
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, late_client_main, &c), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    sse_hub_free(lr.r.hub);
    sse_server_free(lr.r.server);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    sse_store_free(mem);
    free(bus);

    if (!strstr(c.got, "data: fresh\n") || strstr(c.got, "data: dup\n")) {
        fprintf(stderr, "  got: %s\n", c.got);
        CHECK(!"the relayed copy of the resumed id dropped, the next update sent");
    }
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_deferred_replay), CHECK_TEST(test_deferred_replay_new_frames),
           CHECK_TEST(test_client_gone_while_deferred), CHECK_TEST(test_late_relay_of_resumed_id))
