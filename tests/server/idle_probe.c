/*
 * idle_probe.c: a measuring server (not a test): GET /sub opens and keeps an event stream,
 * GET /rss answers "streams VmRSS_kB malloc_in_use_bytes heap_bytes" (glibc's mallinfo2: bytes in
 * allocated chunks; bytes the heap holds from the system, arena + mmapped), GET /pub?k=N pushes
 * a shared frame N times to every stream in one loop turn and answers how long queueing and the
 * flush walk took (wall and CPU time). With CERT and KEY, also HTTPS (ALPN h2 and http/1.1) on
 * TLS_PORT.
 * Driven by idle_probe.py and idle_probe_h2.py; numbers are in docs/SERVER.md and
 * docs/performance/h2.md, tls.md. Usage: idle_probe PORT [TLS_PORT CERT KEY]
 */
#include "server/internal.h" /* sse__server_walk: flush now, to time it */

#include <malloc.h>
#include <sse/server.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

struct probe {
    sse_stream **all;
    size_t n, cap;
};

static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

static void on_close(sse_stream *st, int reason, void *ud)
{
    struct probe *p = ud;
    for (size_t i = 0; i < p->n; i++) {
        if (p->all[i] == st) {
            p->all[i] = p->all[--p->n];
            break;
        }
    }
}

static void stream_cb(sse_stream *st, const sse_request *r, void *ud)
{
    struct probe *p = ud;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1024;
        sse_stream **a = realloc(p->all, cap * sizeof(*a));
        if (!a) {
            sse_stream_close(st);
            return;
        }
        p->all = a;
        p->cap = cap;
    }
    p->all[p->n++] = st;
    sse_stream_on_close(st, on_close, p);
}

static int rss_cb(sse_request *r, void *ud)
{
    struct probe *p = ud;
    char b[256];
    struct mallinfo2 mi = mallinfo2();
    int k = snprintf(b, sizeof(b), "%zu %ld %zu %zu\n", p->n, rss_kb(), mi.uordblks,
                     mi.arena + mi.hblkhd);
    return sse_request_respond(r, 200, "text/plain", b, (size_t)k);
}

static int pub_cb(sse_request *r, void *ud)
{
    struct probe *p = ud;
    sse_server *s = sse_request_server(r);
    static const char ev[] = "id: 1\ndata: {\"ts\":1234567890123,\"msg\":\"hello everyone\"}\n\n";
    sse_frame *f;
    if (sse_frame_new(&f, ev, sizeof(ev) - 1))
        return -1;
    const char *q = sse_request_query(r); /* "k=N": N events per stream in this turn */
    long k = strncmp(q, "k=", 2) == 0 ? strtol(q + 2, NULL, 10) : 1;
    if (k < 1 || k > 1000)
        k = 1;
    double c0 = cpu_us();
    uint64_t t0 = uv_hrtime();
    for (long j = 0; j < k; j++)
        for (size_t i = 0; i < p->n; i++)
            sse_stream_send_frame(p->all[i], f);
    uint64_t t1 = uv_hrtime();
    sse__server_walk(s);
    uint64_t t2 = uv_hrtime();
    double c1 = cpu_us();
    sse_frame_unref(f);
    sse_server_stats st;
    sse_server_get_stats(s, &st);
    char b[256];
    int len =
        snprintf(b, sizeof(b),
                 "%zu k=%ld queue_us=%.0f flush_us=%.0f total_us=%.0f "
                 "cpu_us=%.0f cpu_ns_per_delivery=%.0f writes_total=%llu\n",
                 p->n, k, (double)(t1 - t0) / 1e3, (double)(t2 - t1) / 1e3, (double)(t2 - t0) / 1e3,
                 c1 - c0, (c1 - c0) * 1e3 / (double)(p->n ? p->n * (size_t)k : 1),
                 (unsigned long long)st.writes_total);
    return sse_request_respond(r, 200, "text/plain", b, (size_t)len);
}

int main(int argc, char **argv)
{
    struct probe p = {NULL, 0, 0};
    uv_loop_t *loop = uv_default_loop();
    sse_server *s;
    sse_server_options o = SSE_SERVER_OPTIONS_INIT;
    o.heartbeat_ms = 600000;
    o.h2c = 1; /* HTTP/2 by prior knowledge too (idle_probe_h2.py) */
    o.h2 = 1;  /* and by ALPN on the TLS listener */
    if (argc < 2 || sse_server_new(&s, loop, &o))
        return 2;
    sse_server_route_stream(s, "/sub", stream_cb, &p);
    sse_server_route(s, "GET", "/rss", rss_cb, &p);
    sse_server_route(s, "GET", "/pub", pub_cb, &p);
    if (sse_server_listen(s, "127.0.0.1", (int)strtol(argv[1], NULL, 10)))
        return 1;
    if (argc >= 5) {
        sse_tls_options t = {.cert_file = argv[3], .key_file = argv[4]};
        if (sse_server_listen_tls(s, "127.0.0.1", (int)strtol(argv[2], NULL, 10), &t))
            return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
