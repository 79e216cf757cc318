/*
 * store_bench.c: what durable history costs a publisher (issue 10; docs/performance/store.md).
 *
 * In one run, for the memory store, LMDB sync and LMDB nosync, with 1, 16 and 256 publishers:
 *   store  acknowledged appends/s and append->callback p50/p99, C appends always in flight on
 *          one loop (the hub's own use of store.h, without HTTP);
 *   http   acknowledged publishes/s and POST->200 p50/p99 against `ssehub serve --store ...`,
 *          C threads each with one keep-alive connection and one publish in flight;
 * and the disk's own limit: fdatasync/s of a loop rewriting 64 bytes of a file in DIR.
 * And the replay of --replay N updates (default 100,000) to one subscriber (Last-Event-ID:
 * earliest), memory vs LMDB: time, and the hub's peak RSS before and after, and its heap
 * (RssAnon: LMDB's file-backed map left out) before and at its highest during the replay; once
 * with a subscriber that reads at once, once with one that reads nothing for 2 s first.
 * --ssehub-before PATH runs each replay row with that binary too (another build, e.g. before a
 * change), in the same run; --replay-only 1 runs only the replay rows. --redis URL adds http rows
 * for a hub that is a node over that Redis (`--redis URL`: the 200 waits for Redis's XADD reply
 * and the update coming back through the node's reader; bench/run-redis-publish-bench.sh starts
 * a redis-server for it). --workers N runs every hub as `ssehub serve --workers N`: the replay
 * rows then give the workers' memory (the largest worker's heap and peak RSS) and the master's
 * heap, e.g. with --ssehub-before to compare workers that keep the history in memory with workers
 * that follow the LMDB file.
 * Usage: bench_store_bench [--dir DIR] [--duration S] [--ssehub PATH] [--payload B] [--replay N]
 *                          [--ssehub-before PATH] [--replay-only 1] [--redis URL] [--workers N]
 * (DIR: where the files go, default ./store_bench.tmp, must be on the disk to measure, not tmpfs;
 * PATH: default $SSEHUB, then ./src/cli/ssehub; without it the http rows are skipped).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sse/store_lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static double duration = 2.0;
static const char *redis_url; /* --redis: http rows of kind 3, a node over this Redis */
static size_t payload = 200;
static char dir[512] = "store_bench.tmp";
static int replay_n = 100000;
static int n_workers = 1; /* --workers: hubs run as `ssehub serve --workers N` */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Latencies in ns, sorted in place; p in [0, 1]. */
static double pct_us(uint64_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1));
    return (double)v[i] / 1000.0;
}

struct lat {
    uint64_t *v;
    size_t n, cap;
};

static void lat_add(struct lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4096;
        uint64_t *a = realloc(l->v, nc * sizeof(*a));
        if (!a)
            return;
        l->v = a;
        l->cap = nc;
    }
    l->v[l->n++] = ns;
}

/* ---------------------------------------------------------------- the disk */

static double fdatasync_rate(void)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/fsync.probe", dir);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 0;
    char b[64];
    memset(b, 'x', sizeof(b));
    double t0 = now_s(), t;
    long n = 0;
    do {
        if (pwrite(fd, b, sizeof(b), 0) != (ssize_t)sizeof(b) || fdatasync(fd))
            break;
        n++;
    } while ((t = now_s()) - t0 < duration);
    close(fd);
    unlink(p);
    return (double)n / (now_s() - t0);
}

/* ---------------------------------------------------------------- store level */

struct srun;
struct slot {
    struct srun *r;
    int k;
    uint64_t n, t0;
    int issuing, redo;
};

struct srun {
    sse_store *s;
    uv_loop_t *loop;
    sse_frame *frame;
    double deadline;
    uint64_t acks, errors;
    int outstanding;
    struct lat lat;
};

static void on_ack(void *ud, int status, uint64_t pos);

static void issue(struct slot *sl)
{
    struct srun *r = sl->r;
    do {
        char id[48];
        const char *topics[1] = {"https://example.com/bench"};
        snprintf(id, sizeof(id), "b%d-%llu", sl->k, (unsigned long long)sl->n++);
        sse_store_entry e = {0};
        e.id = id;
        e.id_len = strlen(id);
        e.topics = topics;
        e.n_topics = 1;
        e.frame = r->frame;
        e.time_ms = (long long)time(NULL) * 1000;
        sl->redo = 0;
        sl->issuing = 1;
        sl->t0 = uv_hrtime();
        if (sse_store_append(r->s, &e, on_ack, sl)) {
            r->errors++;
            r->outstanding--;
            sl->issuing = 0;
            return;
        }
        sl->issuing = 0;
    } while (sl->redo);
}

static void on_ack(void *ud, int status, uint64_t pos)
{
    struct slot *sl = ud;
    struct srun *r = sl->r;
    (void)pos;
    lat_add(&r->lat, uv_hrtime() - sl->t0);
    if (status)
        r->errors++;
    else
        r->acks++;
    if (now_s() >= r->deadline) {
        r->outstanding--;
        return;
    }
    if (sl->issuing)
        sl->redo = 1; /* a store that completes at once: the issuing loop goes on */
    else
        issue(sl);
}

static void store_closed(void *ud)
{
    *(int *)ud = 1;
}

/* kind 0: memory, 1: lmdb sync, 2: lmdb nosync. */
static int open_store(int kind, uv_loop_t *loop, sse_store **s, int round)
{
    sse_store_limits lim = {1000, 16u << 20, 0};
    if (kind == 0)
        return sse_store_memory_new(s, &lim);
    char p[600], err[600];
    snprintf(p, sizeof(p), "%s/store-%d-%d", dir, kind, round);
    sse_store_lmdb_options o = SSE_STORE_LMDB_OPTIONS_INIT;
    o.loop = loop;
    o.path = p;
    o.limits = lim;
    o.sync = kind == 1 ? SSE_STORE_LMDB_SYNC : SSE_STORE_LMDB_NOSYNC;
    o.errbuf = err;
    o.errbuf_len = sizeof(err);
    int rc = sse_store_lmdb_new(s, &o);
    if (rc)
        fprintf(stderr, "store_bench: %s\n", err);
    return rc;
}

static void store_row(int kind, int conc, int round)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srun r = {0};
    r.loop = &loop;
    char buf[65536];
    memset(buf, 'x', sizeof(buf));
    if (open_store(kind, &loop, &r.s, round) ||
        sse_frame_new(&r.frame, buf, payload < sizeof(buf) ? payload : sizeof(buf)))
        exit(1);
    struct slot *slots = calloc((size_t)conc, sizeof(*slots));
    double t0 = now_s();
    r.deadline = t0 + duration;
    r.outstanding = conc;
    for (int k = 0; k < conc; k++) {
        slots[k] = (struct slot){&r, k, 0, 0, 0, 0};
        issue(&slots[k]);
    }
    while (r.outstanding > 0)
        uv_run(&loop, UV_RUN_ONCE);
    double el = now_s() - t0;
    int closed = 0;
    sse_store_close(r.s, store_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    sse_frame_unref(r.frame);
    qsort(r.lat.v, r.lat.n, sizeof(uint64_t), cmp_u64);
    static const char *names[] = {"memory", "lmdb sync", "lmdb nosync"};
    printf("store %-12s %4d publishers  %9.0f acks/s  p50 %8.1f us  p99 %8.1f us  errors %llu\n",
           names[kind], conc, (double)r.acks / el, pct_us(r.lat.v, r.lat.n, 0.5),
           pct_us(r.lat.v, r.lat.n, 0.99), (unsigned long long)r.errors);
    fflush(stdout);
    free(r.lat.v);
    free(slots);
}

/* ---------------------------------------------------------------- http level */

struct hthread {
    pthread_t th;
    int port;
    double deadline;
    uint64_t ok, errors;
    struct lat lat;
};

/* One keep-alive connection, one publish in flight, until the deadline. */
static void *publisher(void *arg)
{
    struct hthread *h = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)h->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        h->errors++;
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char body[70000], req[71000], resp[8192];
    size_t bl =
        (size_t)snprintf(body, sizeof(body), "topic=https%%3A%%2F%%2Fexample.com%%2Fb&data=");
    size_t pl = payload < sizeof(body) - bl - 1 ? payload : sizeof(body) - bl - 1;
    memset(body + bl, 'x', pl);
    bl += pl;
    int hl = snprintf(req, sizeof(req),
                      "POST /.well-known/mercure HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      bl);
    memcpy(req + hl, body, bl);
    size_t rl = (size_t)hl + bl;
    while (now_s() < h->deadline) {
        uint64_t t0 = uv_hrtime();
        if (send(fd, req, rl, MSG_NOSIGNAL) != (ssize_t)rl)
            break;
        size_t got = 0;
        long need = -1;
        for (;;) { /* the head, then Content-Length bytes */
            ssize_t r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
            if (r <= 0) {
                need = -2;
                break;
            }
            got += (size_t)r;
            resp[got] = '\0';
            char *e = strstr(resp, "\r\n\r\n");
            if (e) {
                char *cl = strcasestr(resp, "Content-Length:");
                size_t want = (size_t)(e + 4 - resp) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
                if (got >= want) {
                    need = 0;
                    break;
                }
            }
            if (got >= sizeof(resp) - 1) {
                need = -2;
                break;
            }
        }
        if (need < 0)
            break;
        lat_add(&h->lat, uv_hrtime() - t0);
        if (!strncmp(resp, "HTTP/1.1 200", 12))
            h->ok++;
        else
            h->errors++;
    }
    close(fd);
    return NULL;
}

/* Start `ssehub serve` with this store; returns its pid and port (0: failed). */
static pid_t spawn_hub(const char *ssehub, int kind, int round, int *port, int big)
{
    int p[2];
    if (pipe(p))
        return 0;
    char store[700];
    if (kind == 0)
        snprintf(store, sizeof(store), "memory");
    else
        snprintf(store, sizeof(store), "lmdb:%s/hub-%d-%d", dir, kind, round);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0)
            dup2(dn, 2);
        char rkey[64];
        snprintf(rkey, sizeof(rkey), "store-bench:%d", round);
        if (kind == 3)
            execl(ssehub, ssehub, "serve", "--listen", "127.0.0.1:0", "--publish-anonymous",
                  "--anonymous", "--publisher-jwt-key", "store-bench-key-0123456789abcdef",
                  "--redis", redis_url, "--redis-key", rkey, "--history-count", "1000",
                  "--queue-max", "4M", (char *)NULL);
        char nw[16];
        snprintf(nw, sizeof(nw), "%d", n_workers);
        const char *args[] = {ssehub,
                              "serve",
                              "--listen",
                              "127.0.0.1:0",
                              "--publish-anonymous",
                              "--anonymous",
                              "--publisher-jwt-key",
                              "store-bench-key-0123456789abcdef",
                              "--store",
                              store,
                              "--store-sync",
                              kind == 2 ? "nosync" : "sync",
                              "--history-count",
                              big ? "200000" : "1000",
                              "--history-bytes",
                              big ? "1G" : "16M",
                              "--queue-max",
                              big ? "256M" : "4M",
                              n_workers > 1 ? "--workers" : NULL,
                              nw,
                              NULL};
        execv(ssehub, (char *const *)args);
        _exit(127);
    }
    close(p[1]);
    char line[512];
    size_t n = 0;
    *port = 0;
    while (n < sizeof(line) - 1) { /* the first line: listening on http://127.0.0.1:PORT/ */
        ssize_t r = read(p[0], line + n, 1);
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    char *c = strstr(line, "127.0.0.1:");
    if (c)
        *port = (int)strtol(c + 10, NULL, 10);
    close(p[0]); /* the hub ignores SIGPIPE */
    return pid;
}

static void http_row(const char *ssehub, int kind, int conc, int round)
{
    int port;
    pid_t pid = spawn_hub(ssehub, kind, round, &port, 0);
    if (!pid || !port) {
        fprintf(stderr, "store_bench: could not start %s\n", ssehub);
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        return;
    }
    struct hthread *h = calloc((size_t)conc, sizeof(*h));
    double t0 = now_s();
    for (int k = 0; k < conc; k++) {
        h[k].port = port;
        h[k].deadline = t0 + duration;
        if (pthread_create(&h[k].th, NULL, publisher, &h[k]))
            h[k].errors++;
    }
    struct lat all = {0};
    uint64_t ok = 0, errors = 0;
    for (int k = 0; k < conc; k++) {
        pthread_join(h[k].th, NULL);
        ok += h[k].ok;
        errors += h[k].errors;
        for (size_t i = 0; i < h[k].lat.n; i++)
            lat_add(&all, h[k].lat.v[i]);
        free(h[k].lat.v);
    }
    double el = now_s() - t0;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    qsort(all.v, all.n, sizeof(uint64_t), cmp_u64);
    static const char *names[] = {"memory", "lmdb sync", "lmdb nosync", "redis node"};
    printf("http  %-12s %4d publishers  %9.0f 200/s   p50 %8.1f us  p99 %8.1f us  errors %llu\n",
           names[kind], conc, (double)ok / el, pct_us(all.v, all.n, 0.5),
           pct_us(all.v, all.n, 0.99), (unsigned long long)errors);
    fflush(stdout);
    free(all.v);
    free(h);
}

/* Peak resident memory of a process (VmHWM), KiB. */
static long peak_kib(pid_t pid)
{
    char p[64], line[256];
    long v = 0;
    snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmHWM:", 6))
            v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

/* Resident anonymous memory of a process (RssAnon: the heap, not LMDB's map), KiB. */
static long anon_kib(pid_t pid)
{
    char p[64], line[256];
    long v = 0;
    snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "RssAnon:", 8))
            v = strtol(line + 8, NULL, 10);
    fclose(f);
    return v;
}

/* The children of pid (the workers of a --workers master), at most max; how many. */
static int children(pid_t pid, pid_t *out, int max)
{
    char p[64], buf[4096];
    int n = 0;
    snprintf(p, sizeof(p), "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    for (char *c = buf, *e; n < max; c = e) {
        long v = strtol(c, &e, 10);
        if (e == c)
            break;
        out[n++] = (pid_t)v;
    }
    return n;
}

/* The largest heap (RssAnon) among the workers, KiB. */
static long workers_anon_kib(const pid_t *w, int n)
{
    long m = 0;
    for (int i = 0; i < n; i++) {
        long v = anon_kib(w[i]);
        m = v > m ? v : m;
    }
    return m;
}

/* Count "\ndata: " in a stream split across reads (carry: the last bytes of the previous one). */
static size_t count_events(const char *b, size_t n, char *carry)
{
    static const char pat[] = "\ndata: ";
    char buf[8192 + 8];
    size_t cl = strlen(carry), c = 0;
    memcpy(buf, carry, cl);
    memcpy(buf + cl, b, n);
    size_t tot = cl + n;
    for (size_t i = 0; i + 7 <= tot; i++)
        if (!memcmp(buf + i, pat, 7) && i + 7 > cl)
            c++;
    size_t keep = tot < 6 ? tot : 6;
    memcpy(carry, buf + tot - keep, keep);
    carry[keep] = '\0';
    return c;
}

/* N updates published, then one subscriber asks for them all (Last-Event-ID: earliest). */
static void replay_row(const char *ssehub, const char *label, int kind, int round, int n,
                       int wait_s)
{
    int port;
    pid_t pid = spawn_hub(ssehub, kind, round + 1000, &port, 1);
    if (!pid || !port)
        return;
    int conc = 64;
    struct hthread *h = calloc((size_t)conc, sizeof(*h));
    /* Publish: 64 publishers until n are acknowledged (bounded by 60 s). */
    double t0 = now_s();
    uint64_t ok = 0;
    while (ok < (uint64_t)n && now_s() - t0 < 60) {
        for (int k = 0; k < conc; k++) {
            memset(&h[k], 0, sizeof(h[k]));
            h[k].port = port;
            h[k].deadline = now_s() + 0.5;
            pthread_create(&h[k].th, NULL, publisher, &h[k]);
        }
        for (int k = 0; k < conc; k++) {
            pthread_join(h[k].th, NULL);
            ok += h[k].ok;
            free(h[k].lat.v);
        }
    }
    long before = peak_kib(pid), anon0 = anon_kib(pid), anon_peak = anon0;
    pid_t w[64];
    int nw = n_workers > 1 ? children(pid, w, 64) : 0;
    long wanon0 = workers_anon_kib(w, nw), wanon_peak = wanon0, wpeak0 = 0;
    for (int i = 0; i < nw; i++)
        wpeak0 = peak_kib(w[i]) > wpeak0 ? peak_kib(w[i]) : wpeak0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double r0 = now_s(), first = 0;
    size_t got = 0;
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        const char *req =
            "GET /.well-known/mercure?topic=https%3A%2F%2Fexample.com%2Fb HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\nLast-Event-ID: earliest\r\n\r\n";
        send(fd, req, strlen(req), MSG_NOSIGNAL);
        for (int i = 0; i < wait_s * 20; i++) { /* a subscriber that does not read yet */
            usleep(50000);
            long now_anon = anon_kib(pid), wa = workers_anon_kib(w, nw);
            anon_peak = now_anon > anon_peak ? now_anon : anon_peak;
            wanon_peak = wa > wanon_peak ? wa : wanon_peak;
        }
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char buf[8192], carry[8] = "";
        for (unsigned reads = 0; got < ok && now_s() - r0 < 120; reads++) {
            ssize_t r = recv(fd, buf, sizeof(buf), 0);
            if (r <= 0)
                break;
            if (reads % 64 == 0) {
                long now_anon = anon_kib(pid), wa = workers_anon_kib(w, nw);
                anon_peak = now_anon > anon_peak ? now_anon : anon_peak;
                wanon_peak = wa > wanon_peak ? wa : wanon_peak;
            }
            if (!first)
                first = now_s();
            got += count_events(buf, (size_t)r, carry);
        }
    }
    double el = now_s() - r0;
    long peak = peak_kib(pid), wpeak = 0;
    for (int i = 0; i < nw; i++)
        wpeak = peak_kib(w[i]) > wpeak ? peak_kib(w[i]) : wpeak;
    if (fd >= 0)
        close(fd);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    static const char *names[] = {"memory", "lmdb sync", "lmdb nosync"};
    printf("replay %-6s %-11s %llu updates stored: %zu replayed to one subscriber %s in %.2f s "
           "(first bytes after %.0f ms); hub peak RSS %ld MiB before, %ld MiB after; heap %.1f "
           "MiB before, %.1f MiB at most during the replay\n",
           label, names[kind], (unsigned long long)ok, got,
           wait_s ? "(reading after 2 s)" : "(reading at once)", el,
           first ? (first - r0) * 1000 : 0.0, before / 1024, peak / 1024, anon0 / 1024.0,
           anon_peak / 1024.0);
    if (nw)
        printf("       %d workers: largest worker peak RSS %ld MiB before, %ld MiB after; largest "
               "worker heap %.1f MiB before, %.1f MiB at most during the replay (the row above: "
               "the master)\n",
               nw, wpeak0 / 1024, wpeak / 1024, wanon0 / 1024.0, wanon_peak / 1024.0);
    fflush(stdout);
    free(h);
}

int main(int argc, char **argv)
{
    const char *ssehub = getenv("SSEHUB"), *ssehub_before = NULL;
    int replay_only = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir"))
            snprintf(dir, sizeof(dir), "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--duration"))
            duration = strtod(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--ssehub"))
            ssehub = argv[i + 1];
        else if (!strcmp(argv[i], "--replay"))
            replay_n = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--payload"))
            payload = (size_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--ssehub-before"))
            ssehub_before = argv[i + 1];
        else if (!strcmp(argv[i], "--redis"))
            redis_url = argv[i + 1];
        else if (!strcmp(argv[i], "--replay-only"))
            replay_only = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--workers"))
            n_workers = (int)strtol(argv[i + 1], NULL, 10);
    }
    if (!ssehub && access("src/cli/ssehub", X_OK) == 0)
        ssehub = "src/cli/ssehub";
    if (mkdir(dir, 0700) && errno != EEXIST) {
        fprintf(stderr, "store_bench: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    static const int concs[] = {1, 16, 256};
    int round = (int)getpid();
    if (!replay_only) {
        printf("disk  fdatasync of 64 bytes in %s: %.0f/s\n", dir, fdatasync_rate());
        for (int c = 0; c < 3; c++)
            for (int kind = 0; kind < 3; kind++)
                store_row(kind, concs[c], round);
    }
    if (ssehub && !replay_only)
        for (int c = 0; c < 3; c++)
            for (int kind = 0; kind < (redis_url ? 4 : 3); kind++)
                http_row(ssehub, kind, concs[c], round);
    for (int kind = 0; ssehub && replay_n > 0 && kind < 2; kind++)
        for (int wait_s = 0; wait_s <= 2; wait_s += 2) {
            if (ssehub_before)
                replay_row(ssehub_before, "before", kind, round + 10 * wait_s + 100, replay_n,
                           wait_s);
            replay_row(ssehub, ssehub_before ? "after" : "", kind, round + 10 * wait_s, replay_n,
                       wait_s);
        }
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'/store-* '%s'/hub-*", dir, dir);
    if (system(cmd) != 0)
        fprintf(stderr, "store_bench: could not clean %s\n", dir);
    return 0;
}
