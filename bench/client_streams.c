/*
 * client_streams.c: scale check of the EventSource client: N concurrent streams in one process.
 *
 * A child process runs the server on 127.0.0.1 (port 0), so the parent's memory is the client's
 * alone: the project's server (server.h, --server own, the default) or a tiny libuv SSE server
 * written here (--server tiny). The parent opens N clients on one sse_client_group (one curl multi,
 * one loop), waits until every stream is OPEN, and reports the growth of its RSS and PSS
 * (/proc/self/smaps_rollup) per stream. Then the server writes K events to every stream and the
 * parent reports how many events per second it consumed (and its CPU time per event).
 *
 *   bench_client_streams [--streams N] [--events K] [--size BYTES] [--buffer-size B]
 *                        [--server own|tiny] [--serve-only]
 *
 * --serve-only runs just the server for a peer client (bench/client_streams_node.mjs): it prints
 * "port N", then relays its stdin to the server ('B' = broadcast the K events, EOF = quit).
 *
 * Defaults: 10000 streams, 100 events of 64 data bytes each, curl buffer = the client default.
 * Raises the soft RLIMIT_NOFILE to the hard limit; N must fit in it (one socket per stream).
 */
#include <errno.h>
#include <signal.h>
#include <sse/client.h>
#include <sse/server.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

/* ---------------------------------------------------------------- the tiny server (child) */

struct srv_conn {
    uv_tcp_t tcp;
    struct srv_conn *next;
    unsigned match; /* bytes of "\r\n\r\n" matched so far */
    int ready;      /* headers sent */
};

struct srv {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_pipe_t ctl;
    struct srv_conn *conns;
    char rbuf[65536];
    char *payload; /* K events, shared by every write */
    size_t payload_len;
    size_t ready;
};

static const char srv_head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\nConnection: close\r\n\r\n";

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct srv *s = h->loop->data;
    *b = uv_buf_init(s->rbuf, sizeof(s->rbuf));
}

static void srv_closed(uv_handle_t *h)
{
    free(h);
}

static void srv_write_done(uv_write_t *w, int status)
{
    free(w);
}

/* Write len bytes that stay valid until the end (no copy); try first, queue the rest. */
static void srv_write(struct srv_conn *c, const char *p, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN)
        return;
    if (n < 0)
        n = 0;
    if ((size_t)n == len)
        return;
    uv_write_t *w = malloc(sizeof(*w));
    if (!w)
        return;
    b = uv_buf_init((char *)p + n, (unsigned)(len - (size_t)n));
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, srv_write_done))
        free(w);
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct srv_conn *c = (struct srv_conn *)st;
    struct srv *s = st->loop->data;
    if (n < 0) {
        uv_read_stop(st); /* the client went away: keep it simple, close at exit */
        return;
    }
    for (ssize_t i = 0; i < n && !c->ready; i++) {
        char want = "\r\n\r\n"[c->match];
        c->match = b->base[i] == want ? c->match + 1 : (b->base[i] == '\r' ? 1 : 0);
        if (c->match == 4) {
            c->ready = 1;
            s->ready++;
            srv_write(c, srv_head, sizeof(srv_head) - 1);
        }
    }
}

static void srv_accept(uv_stream_t *l, int status)
{
    struct srv *s = l->loop->data;
    if (status)
        return;
    struct srv_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    uv_tcp_init(&s->loop, &c->tcp);
    if (uv_accept(l, (uv_stream_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, srv_closed);
        return;
    }
    c->next = s->conns;
    s->conns = c;
    uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read);
}

static void srv_ctl_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct srv *s = st->loop->data;
    if (n < 0) {
        uv_stop(&s->loop);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (b->base[i] == 'B') {
            for (struct srv_conn *c = s->conns; c; c = c->next)
                if (c->ready)
                    srv_write(c, s->payload, s->payload_len);
        } else if (b->base[i] == 'Q') {
            uv_stop(&s->loop);
        }
    }
}

static void srv_alloc_ctl(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char cbuf[64]; /* child process only, one loop */
    *b = uv_buf_init(cbuf, sizeof(cbuf));
}

/* ---------------------------------------------------------------- the project's server (child) */

struct own {
    sse_server *server;
    sse_stream **streams;
    size_t n, cap;
    sse_frame *frame; /* K events, one frame shared by every stream */
};

static void own_closed(sse_stream *st, int reason, void *ud)
{
    struct own *o = ud;
    size_t i = (size_t)(uintptr_t)sse_stream_get_data(st);
    o->streams[i] = o->streams[--o->n];
    sse_stream_set_data(o->streams[i], (void *)(uintptr_t)i);
}

static void own_stream(sse_stream *st, const sse_request *req, void *ud)
{
    struct own *o = ud;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1024;
        sse_stream **ns = realloc(o->streams, cap * sizeof(*ns));
        if (!ns) {
            sse_stream_close(st);
            return;
        }
        o->streams = ns;
        o->cap = cap;
    }
    sse_stream_set_data(st, (void *)(uintptr_t)o->n);
    o->streams[o->n++] = st;
    sse_stream_on_close(st, own_closed, o);
}

static void own_ctl_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct own *o = st->data;
    if (n < 0) {
        uv_stop(st->loop);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (b->base[i] == 'B')
            for (size_t j = 0; j < o->n; j++)
                sse_stream_send_frame(o->streams[j], o->frame);
        else if (b->base[i] == 'Q')
            uv_stop(st->loop);
    }
}

static int run_own_server(int ctl_fd, const char *payload, size_t len)
{
    static uv_loop_t loop; /* child process only */
    static uv_pipe_t ctl;
    struct own o = {NULL, NULL, 0, 0, NULL};
    sse_server_options so = SSE_SERVER_OPTIONS_INIT;
    so.stream_queue_max = 64u << 20;
    uv_loop_init(&loop);
    if (sse_frame_new(&o.frame, payload, len) || sse_server_new(&o.server, &loop, &so) ||
        sse_server_route_stream(o.server, "/events", own_stream, &o) ||
        sse_server_listen(o.server, "127.0.0.1", 0))
        return 1;
    int port = sse_server_port(o.server);
    if (write(ctl_fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
        return 1;
    uv_pipe_init(&loop, &ctl, 0);
    uv_pipe_open(&ctl, ctl_fd);
    ctl.data = &o;
    uv_read_start((uv_stream_t *)&ctl, srv_alloc_ctl, own_ctl_read);
    uv_run(&loop, UV_RUN_DEFAULT);
    return 0; /* process exit releases the rest */
}

static int run_server(int ctl_fd, unsigned events, unsigned size, int use_own)
{
    struct srv *s = calloc(1, sizeof(*s));
    if (!s)
        return 1;
    /* K events of `size` data bytes: "id: <n>\ndata: xxx...\n\n" */
    s->payload = malloc((size_t)events * (size + 32));
    if (!s->payload)
        return 1;
    for (unsigned i = 0; i < events; i++) {
        int n = snprintf(s->payload + s->payload_len, 32, "id: %u\ndata: ", i);
        s->payload_len += (size_t)n;
        memset(s->payload + s->payload_len, 'x', size);
        s->payload_len += size;
        memcpy(s->payload + s->payload_len, "\n\n", 2);
        s->payload_len += 2;
    }
    if (use_own)
        return run_own_server(ctl_fd, s->payload, s->payload_len);
    uv_loop_init(&s->loop);
    s->loop.data = s;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&s->loop, &s->listener);
    if (uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0) ||
        uv_listen((uv_stream_t *)&s->listener, 4096, srv_accept))
        return 1;
    int len = sizeof(a);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&a, &len);
    int port = ntohs(a.sin_port);
    if (write(ctl_fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
        return 1;
    uv_pipe_init(&s->loop, &s->ctl, 0);
    uv_pipe_open(&s->ctl, ctl_fd);
    uv_read_start((uv_stream_t *)&s->ctl, srv_alloc_ctl, srv_ctl_read);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return 0; /* process exit releases the rest */
}

/* ---------------------------------------------------------------- the clients (parent) */

struct bench {
    uv_loop_t *loop;
    size_t opened, errors;
    uint64_t events, target;
    uint64_t first_ns, last_ns;
};

static void b_open(sse_client *c, void *ud)
{
    ((struct bench *)ud)->opened++;
}

static void b_message(sse_client *c, const sse_parsed_event *ev, void *ud)
{
    struct bench *b = ud;
    if (!b->events)
        b->first_ns = uv_hrtime();
    b->events++;
    if (b->events == b->target) {
        b->last_ns = uv_hrtime();
        uv_stop(b->loop);
    }
}

static void b_error(sse_client *c, int code, const char *msg, void *ud)
{
    struct bench *b = ud;
    if (b->errors++ < 5)
        fprintf(stderr, "client error: %s\n", msg);
}

static void b_tick(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Rss and Pss of this process in KiB (smaps_rollup); 0 when unavailable. */
static void mem_kib(unsigned long *rss, unsigned long *pss)
{
    char line[256];
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    *rss = *pss = 0;
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "Rss:", 4))
            *rss = strtoul(line + 4, NULL, 10);
        else if (!strncmp(line, "Pss:", 4))
            *pss = strtoul(line + 4, NULL, 10);
    }
    fclose(f);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Run the loop until cond holds or ms passed. */
static void run_until(uv_loop_t *loop, uv_timer_t *tick, size_t *value, size_t want, unsigned ms)
{
    uint64_t end = uv_now(loop) + ms;
    while (*value < want && uv_now(loop) < end) {
        uv_timer_start(tick, b_tick, 50, 0);
        uv_run(loop, UV_RUN_DEFAULT);
        uv_update_time(loop);
    }
}

static unsigned long arg_num(int argc, char **argv, const char *name, unsigned long def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return strtoul(argv[i + 1], NULL, 10);
    return def;
}

int main(int argc, char **argv)
{
    unsigned long n = arg_num(argc, argv, "--streams", 10000);
    unsigned long k = arg_num(argc, argv, "--events", 100);
    unsigned long size = arg_num(argc, argv, "--size", 64);
    long bufsize = (long)arg_num(argc, argv, "--buffer-size", 0);
    int use_own = 1;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--server"))
            use_own = strcmp(argv[i + 1], "tiny") != 0;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (n + 64 > rl.rlim_cur) {
        fprintf(stderr, "RLIMIT_NOFILE %lu is too small for %lu streams\n",
                (unsigned long)rl.rlim_cur, n);
        return 1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return 1;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(sv[0]);
        _exit(run_server(sv[1], (unsigned)k, (unsigned)size, use_own));
    }
    close(sv[1]);
    int port;
    if (read(sv[0], &port, sizeof(port)) != (ssize_t)sizeof(port))
        return 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--serve-only")) {
            char cbuf[64];
            ssize_t r;
            printf("port %d\n", port);
            fflush(stdout);
            while ((r = read(0, cbuf, sizeof(cbuf))) > 0)
                if (write(sv[0], cbuf, (size_t)r) != r)
                    break;
            if (write(sv[0], "Q", 1) != 1)
                kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
            return 0;
        }
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/events", port);

    uv_loop_t *loop = uv_default_loop();
    struct bench b = {.loop = loop};
    sse_client_group *g;
    if (sse_client_group_new(&g, loop))
        return 1;
    sse_client_options o = SSE_CLIENT_OPTIONS_INIT;
    o.buffer_size = bufsize;
    o.reconnect_ms = 60000; /* a stream that drops stays down: counts show it */
    sse_client_callbacks cb = {b_open, b_message, NULL, b_error};
    sse_client **cs = calloc(n, sizeof(*cs));
    uv_timer_t tick;
    uv_timer_init(loop, &tick);

    /* Warm up with one stream so that one-time allocations (curl, libc arenas) are in the
     * baseline, then measure. */
    sse_client *warm;
    sse_client_new(&warm, g, url, &o, &cb, &b);
    run_until(loop, &tick, &b.opened, 1, 5000);
    unsigned long rss0, pss0, rss1, pss1;
    mem_kib(&rss0, &pss0);
    uint64_t t0 = uv_hrtime();
    for (unsigned long i = 0; i < n; i++) {
        if (sse_client_new(&cs[i], g, url, &o, &cb, &b)) {
            fprintf(stderr, "sse_client_new failed at %lu\n", i);
            return 1;
        }
        if (i % 500 == 499) /* let the listen backlog drain */
            run_until(loop, &tick, &b.opened, i + 2, 10000);
    }
    run_until(loop, &tick, &b.opened, n + 1, 60000);
    double open_s = (double)(uv_hrtime() - t0) / 1e9;
    mem_kib(&rss1, &pss1);
    printf("server: %s\n", use_own ? "own (server.h)" : "tiny libuv server");
    printf("streams open: %zu of %lu in %.2f s (errors %zu)\n", b.opened - 1, n, open_s, b.errors);
    printf("RSS: %lu -> %lu KiB, +%.2f KiB per stream\n", rss0, rss1,
           ((double)rss1 - (double)rss0) / (double)n);
    printf("PSS: %lu -> %lu KiB, +%.2f KiB per stream\n", pss0, pss1,
           ((double)pss1 - (double)pss0) / (double)n);

    /* Broadcast: K events to every stream (and the warm-up one). */
    b.target = (uint64_t)k * (b.opened);
    double cpu0 = cpu_seconds();
    if (write(sv[0], "B", 1) != 1)
        return 1;
    uint64_t deadline = uv_now(loop) + 120000;
    while (b.events < b.target && uv_now(loop) < deadline) {
        uv_timer_start(&tick, b_tick, 100, 0);
        uv_run(loop, UV_RUN_DEFAULT);
        uv_update_time(loop);
    }
    double cpu = cpu_seconds() - cpu0;
    if (!b.last_ns)
        b.last_ns = uv_hrtime();
    double secs = (double)(b.last_ns - b.first_ns) / 1e9;
    printf("events: %llu of %llu (%lu x %lu B data) in %.3f s: %.0f events/s, %.2f us CPU "
           "per event (client process)\n",
           (unsigned long long)b.events, (unsigned long long)b.target, k, size, secs,
           secs > 0 ? (double)b.events / secs : 0.0, cpu * 1e6 / (double)(b.events ? b.events : 1));
    unsigned long rss2, pss2;
    mem_kib(&rss2, &pss2);
    printf("after the events: RSS %lu KiB, PSS %lu KiB (+%.2f KiB per stream)\n", rss2, pss2,
           ((double)pss2 - (double)pss0) / (double)n);

    if (write(sv[0], "Q", 1) != 1)
        kill(pid, SIGTERM);
    sse_client_group_free(g); /* frees every client */
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    free(cs);
    waitpid(pid, NULL, 0);
    return b.events == b.target ? 0 : 1;
}
