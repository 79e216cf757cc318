/*
 * cmd_bench.c: `ssehub bench`, the project's load generator for SSE servers.
 *
 * Opens N subscriber streams over loopback (several source addresses, several worker processes
 * when N is large), spread round-robin over T topics, publishes R messages per second with the
 * send time in the data, and reports per-delivery latency, deliveries/s, connect rate, errors
 * and (given --server-pid) the server's memory per subscriber from /proc/PID/smaps_rollup.
 * Targets: a Mercure hub, nginx + nchan, or a plain broadcast server. Everything is bounded in
 * count and time. The engines live in cli_bench_sub.c and cli_bench_pub.c; this file parses
 * options, runs the processes and writes the report (JSON with --json, plus a human summary).
 */
#include "cli_bench.h"
#include "cli_commands.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

const char sse_cli_bench_summary[] = "load-test an SSE server (Mercure hub, nchan, plain)";

#define MAX_PIDS 16
#define PER_PROC_MAX 19000u

struct mem {
    long long rss_kib, pss_kib; /* summed over the pids; -1 when unreadable */
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: ssehub bench [options]\n"
        "  --target mercure|nchan|plain   what to talk to (default mercure)\n"
        "  --url URL            subscribe URL (mercure: the hub URL, default\n"
        "                       http://127.0.0.1:8080/.well-known/mercure; nchan: prefix,\n"
        "                       the topic is appended as /<topic>; plain: the stream URL)\n"
        "  --pub-url URL        publish URL (mercure: default --url; nchan: prefix; plain)\n"
        "  --token JWT          Bearer token for publishing (mercure)\n"
        "  --sub-token JWT      Bearer token for subscribing\n"
        "  --topic-prefix S     topic names are S<n> (default https://example.com/bench/\n"
        "                       for mercure, t for nchan)\n"
        "  -n, --subscribers N  subscriber streams (default 100, at most 1000000)\n"
        "  -t, --topics T       topics, subscribers spread round-robin (default 1)\n"
        "  -r, --rate R         messages per second over all topics (default 10; 0 = idle)\n"
        "  -d, --duration S     measured seconds of publishing (default 5)\n"
        "  --warmup S           seconds of publishing before measuring (default 1)\n"
        "  --payload B          data bytes per message (default: just the fields)\n"
        "  --sources K          source addresses 127.0.0.1..K (default N/20000+1)\n"
        "  --procs P            subscriber processes (default ceil(N/15000))\n"
        "  --concurrency C      connects in flight per process (default 128)\n"
        "  --pub-conns C        publisher keep-alive connections (default 4)\n"
        "  --server-pid PID[,PID...]  server processes whose memory and CPU to report\n"
        "  --server-children    also count their child processes (e.g. ssehub serve --workers)\n"
        "  --idle S             idle seconds before reading server memory (default 2)\n"
        "  --connect-timeout S  time allowed to open all streams (default 120)\n"
        "  --drain S            wait for late deliveries after publishing (default 3)\n"
        "  --parser sse|scan    read streams with the project's parser (default) or a\n"
        "                       minimal data: scanner\n"
        "  --json               print one JSON object on stdout (summary goes to stderr)\n");
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static struct mem read_mem(const int *pids, int npids)
{
    struct mem m = {0, 0};
    if (!npids) {
        m.rss_kib = m.pss_kib = -1;
        return m;
    }
    for (int i = 0; i < npids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) {
            m.rss_kib = m.pss_kib = -1;
            return m;
        }
        while (fgets(line, sizeof(line), f)) {
            if (!strncmp(line, "Rss:", 4))
                m.rss_kib += strtoll(line + 4, NULL, 10);
            else if (!strncmp(line, "Pss:", 4))
                m.pss_kib += strtoll(line + 4, NULL, 10);
        }
        fclose(f);
    }
    return m;
}

/* utime + stime of the pids in seconds, or -1. */
static double read_cpu(const int *pids, int npids)
{
    double total = 0;
    long hz = sysconf(_SC_CLK_TCK);
    if (!npids)
        return -1;
    for (int i = 0; i < npids; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", pids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            return -1;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (!p)
            return -1;
        /* fields after ')': state(3) ... utime(14) stime(15) */
        unsigned long long ut = 0, st = 0;
        int field = 2;
        for (char *q = p + 1; *q && field < 15; q++) {
            if (*q == ' ') {
                field++;
                if (field == 14)
                    ut = strtoull(q + 1, NULL, 10);
                else if (field == 15)
                    st = strtoull(q + 1, NULL, 10);
            }
        }
        total += (double)(ut + st) / (double)hz;
    }
    return total;
}

/* Append the child processes of pids[0..n) (and theirs) to pids, up to MAX_PIDS in all. */
static int add_children(int *pids, int n)
{
    for (int i = 0; i < n && n < MAX_PIDS; i++) {
        char path[96], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pids[i], pids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        for (char *p = buf; *p && n < MAX_PIDS;) {
            char *end;
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            pids[n++] = (int)pid;
            p = end;
        }
    }
    return n;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static const char *target_name(int t)
{
    return t == BENCH_MERCURE ? "mercure" : t == BENCH_NCHAN ? "nchan" : "plain";
}

static void print_lat(FILE *o, const char *name, const struct bench_hist *h, int last)
{
    fprintf(o,
            "  \"%s\": {\"count\": %llu, \"min\": %.1f, \"mean\": %.1f, \"p50\": %.1f, "
            "\"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f}%s\n",
            name, (unsigned long long)h->count, h->count ? (double)h->min / 1e3 : 0.0,
            h->count ? (double)h->sum / (double)h->count / 1e3 : 0.0,
            (double)bench_hist_quantile(h, 0.50) / 1e3, (double)bench_hist_quantile(h, 0.90) / 1e3,
            (double)bench_hist_quantile(h, 0.99) / 1e3, (double)bench_hist_quantile(h, 0.999) / 1e3,
            (double)h->max / 1e3, last ? "" : ",");
}

static const char *code_name(uint64_t code, char *buf, size_t n)
{
    int64_t v = (int64_t)code;
    if (!v)
        return "";
    if (v > 0)
        snprintf(buf, n, "HTTP %lld", (long long)v);
    else
        snprintf(buf, n, "%s", uv_err_name((int)v));
    return buf;
}

int sse_cli_bench(int argc, char **argv)
{
    static const struct option longopts[] = {{"target", required_argument, NULL, 'T'},
                                             {"url", required_argument, NULL, 'u'},
                                             {"pub-url", required_argument, NULL, 'p'},
                                             {"token", required_argument, NULL, 'k'},
                                             {"sub-token", required_argument, NULL, 'K'},
                                             {"topic-prefix", required_argument, NULL, 'P'},
                                             {"subscribers", required_argument, NULL, 'n'},
                                             {"topics", required_argument, NULL, 't'},
                                             {"rate", required_argument, NULL, 'r'},
                                             {"duration", required_argument, NULL, 'd'},
                                             {"warmup", required_argument, NULL, 'w'},
                                             {"payload", required_argument, NULL, 'b'},
                                             {"sources", required_argument, NULL, 's'},
                                             {"procs", required_argument, NULL, 'j'},
                                             {"concurrency", required_argument, NULL, 'c'},
                                             {"pub-conns", required_argument, NULL, 'C'},
                                             {"server-pid", required_argument, NULL, 'S'},
                                             {"server-children", no_argument, NULL, 'H'},
                                             {"idle", required_argument, NULL, 'i'},
                                             {"connect-timeout", required_argument, NULL, 'o'},
                                             {"drain", required_argument, NULL, 'D'},
                                             {"parser", required_argument, NULL, 'R'},
                                             {"json", no_argument, NULL, 'J'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    struct bench_config c;
    memset(&c, 0, sizeof(c));
    const char *url = NULL, *pub_url = NULL, *prefix = NULL;
    double n = 100, t = 1;
    double sources = 0, procs = 0, conc = 128, pubc = 4, payload = 0;
    int pids[MAX_PIDS], npids = 0, json = 0, children = 0;
    c.rate = 10;
    c.duration = 5;
    c.warmup = 1;
    c.idle = 2;
    c.connect_timeout = 120;
    c.drain = 3;
    c.use_parser = 1;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "n:t:r:d:h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 'T':
            if (!strcmp(optarg, "mercure"))
                c.target = BENCH_MERCURE;
            else if (!strcmp(optarg, "nchan"))
                c.target = BENCH_NCHAN;
            else if (!strcmp(optarg, "plain"))
                c.target = BENCH_PLAIN;
            else
                bad = 1;
            break;
        case 'u':
            url = optarg;
            break;
        case 'p':
            pub_url = optarg;
            break;
        case 'k':
            c.token = optarg;
            break;
        case 'K':
            c.sub_token = optarg;
            break;
        case 'P':
            prefix = optarg;
            break;
        case 'n':
            bad = parse_num(optarg, 1, 1000000, &n);
            break;
        case 't':
            bad = parse_num(optarg, 1, 1000000, &t);
            break;
        case 'r':
            bad = parse_num(optarg, 0, 1000000, &c.rate);
            break;
        case 'd':
            bad = parse_num(optarg, 0, 3600, &c.duration);
            break;
        case 'w':
            bad = parse_num(optarg, 0, 600, &c.warmup);
            break;
        case 'b':
            bad = parse_num(optarg, 0, 60000, &payload);
            break;
        case 's':
            bad = parse_num(optarg, 1, BENCH_MAX_SOURCES, &sources);
            break;
        case 'j':
            bad = parse_num(optarg, 1, BENCH_MAX_PROCS, &procs);
            break;
        case 'c':
            bad = parse_num(optarg, 1, 10000, &conc);
            break;
        case 'C':
            bad = parse_num(optarg, 1, 256, &pubc);
            break;
        case 'i':
            bad = parse_num(optarg, 0, 600, &c.idle);
            break;
        case 'o':
            bad = parse_num(optarg, 1, 3600, &c.connect_timeout);
            break;
        case 'D':
            bad = parse_num(optarg, 0, 600, &c.drain);
            break;
        case 'J':
            json = 1;
            break;
        case 'H':
            children = 1;
            break;
        case 'R':
            if (!strcmp(optarg, "sse"))
                c.use_parser = 1;
            else if (!strcmp(optarg, "scan"))
                c.use_parser = 0;
            else
                bad = 1;
            break;
        case 'S':
            for (char *s = optarg; *s && !bad;) {
                char *end;
                long pid = strtol(s, &end, 10);
                if (end == s || pid <= 0 || npids == MAX_PIDS) {
                    bad = 1;
                    break;
                }
                pids[npids++] = (int)pid;
                s = *end == ',' ? end + 1 : end;
                if (*end && *end != ',')
                    bad = 1;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "ssehub bench: bad value for an option: %s\n", optarg);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    c.subscribers = (unsigned)n;
    c.topics = (unsigned)t;
    c.payload = (unsigned)payload;
    c.concurrency = (unsigned)conc;
    c.pub_conns = (unsigned)pubc;
    if (c.target == BENCH_PLAIN)
        c.topics = 1;
    if (c.topics > c.subscribers)
        c.topics = c.subscribers;
    if (!url)
        url = c.target == BENCH_MERCURE ? "http://127.0.0.1:8080/.well-known/mercure" : NULL;
    if (!pub_url)
        pub_url = c.target == BENCH_MERCURE ? url : NULL;
    if (!url || !pub_url) {
        fprintf(stderr, "ssehub bench: --url and --pub-url are required for --target %s\n",
                target_name(c.target));
        return 2;
    }
    if (bench_url_parse(&c.sub, url) < 0 || bench_url_parse(&c.pub, pub_url) < 0) {
        fprintf(stderr, "ssehub bench: URLs must be http://IP-or-localhost[:port]/path\n");
        return 2;
    }
    c.topic_prefix = prefix                      ? prefix
                     : c.target == BENCH_MERCURE ? "https://example.com/bench/"
                                                 : "t";
    c.procs = procs ? (unsigned)procs : (c.subscribers + 14999) / 15000;
    if (c.procs > c.subscribers)
        c.procs = c.subscribers;
    c.sources = sources ? (unsigned)sources : c.subscribers / 20000 + 1;
    double total_msgs = c.rate * (c.warmup + c.duration) + 16;
    c.max_track = total_msgs > (1 << 20) ? (1u << 20) : (unsigned)total_msgs;

    /* Each process may hold at most the hard RLIMIT_NOFILE: raise the soft one to it. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    unsigned per_proc = (c.subscribers + c.procs - 1) / c.procs;
    if (per_proc > PER_PROC_MAX || (rl.rlim_cur != RLIM_INFINITY && per_proc + 64 > rl.rlim_cur)) {
        fprintf(stderr,
                "ssehub bench: %u streams per process is too many (RLIMIT_NOFILE %llu, at most "
                "%u): raise --procs\n",
                per_proc, (unsigned long long)rl.rlim_cur, PER_PROC_MAX);
        return 2;
    }

    size_t shsize = sizeof(struct bench_shared) + (size_t)c.max_track * sizeof(struct bench_seq);
    struct bench_shared *sh =
        mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("ssehub bench: mmap");
        return 1;
    }
    sh->nprocs = c.procs;
    sh->phase = BENCH_PHASE_CONNECT;

    if (children)
        npids = add_children(pids, npids);
    struct mem before = read_mem(pids, npids);
    pid_t kids[BENCH_MAX_PROCS];
    unsigned nkids = 0;
    fflush(stdout);
    fflush(stderr);
    uint64_t t0 = bench_now_mono();
    for (unsigned i = 0; i < c.procs; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("ssehub bench: fork");
            break;
        }
        if (pid == 0) {
            int r = bench_sub_run(&c, sh, i);
            _exit(r < 0 ? 1 : 0);
        }
        kids[nkids++] = pid;
    }

    /* Wait for every stream to open (or fail), bounded. */
    uint64_t connected = 0, failed = 0;
    int timed_out = 0;
    for (;;) {
        connected = failed = 0;
        for (unsigned i = 0; i < c.procs; i++) {
            connected += __atomic_load_n(&sh->child[i].connected, __ATOMIC_RELAXED);
            failed += __atomic_load_n(&sh->child[i].failed, __ATOMIC_RELAXED);
        }
        if (connected + failed >= c.subscribers)
            break;
        if ((double)(bench_now_mono() - t0) / 1e9 > c.connect_timeout) {
            timed_out = 1;
            break;
        }
        int status;
        if (nkids && waitpid(-1, &status, WNOHANG) > 0) {
            fprintf(stderr, "ssehub bench: a subscriber process ended early\n");
            timed_out = 1;
            break;
        }
        sleep_s(0.01);
    }
    uint64_t last = t0;
    for (unsigned i = 0; i < c.procs; i++) {
        uint64_t l = __atomic_load_n(&sh->child[i].last_connect_ns, __ATOMIC_RELAXED);
        if (l > last)
            last = l;
    }
    double connect_s = (double)(last - t0) / 1e9;
    fprintf(stderr, "bench: %llu streams open, %llu failed in %.2f s%s\n",
            (unsigned long long)connected, (unsigned long long)failed, connect_s,
            timed_out ? " (gave up waiting)" : "");

    struct mem after = {-1, -1};
    if (npids) {
        sleep_s(c.idle);
        after = read_mem(pids, npids);
    }

    struct bench_pub_stats ps;
    memset(&ps, 0, sizeof(ps));
    bench_hist_init(&ps.rtt);
    double cpu0 = read_cpu(pids, npids), cpu1 = -1, wall = 0;
    int pub_ran = 0;
    if (c.rate > 0 && c.duration > 0 && connected > 0) {
        __atomic_store_n(&sh->phase, BENCH_PHASE_RUN, __ATOMIC_RELEASE);
        uint64_t w0 = bench_now_mono();
        double cw0 = -1;
        (void)cw0;
        int r = bench_pub_run(&c, sh, &ps);
        wall = (double)(bench_now_mono() - w0) / 1e9;
        cpu1 = read_cpu(pids, npids);
        pub_ran = r == 0;
        if (r < 0)
            fprintf(stderr, "ssehub bench: publisher: %s\n", uv_strerror(r));
    }

    /* Stop the subscribers and collect them (bounded). */
    __atomic_store_n(&sh->phase, BENCH_PHASE_STOP, __ATOMIC_RELEASE);
    uint64_t stop_deadline = bench_now_mono() + 15000000000u;
    unsigned left = nkids;
    while (left) {
        int status;
        pid_t w = waitpid(-1, &status, WNOHANG);
        if (w > 0) {
            left--;
            continue;
        }
        if (w < 0)
            break;
        if (bench_now_mono() > stop_deadline) {
            for (unsigned i = 0; i < nkids; i++)
                kill(kids[i], SIGKILL);
            while (waitpid(-1, &status, 0) > 0)
                ;
            break;
        }
        sleep_s(0.01);
    }

    struct rusage ru_kids, ru_self;
    getrusage(RUSAGE_CHILDREN, &ru_kids);
    getrusage(RUSAGE_SELF, &ru_self);
    double sub_cpu = (double)ru_kids.ru_utime.tv_sec + (double)ru_kids.ru_utime.tv_usec / 1e6 +
                     (double)ru_kids.ru_stime.tv_sec + (double)ru_kids.ru_stime.tv_usec / 1e6;
    double pub_cpu = (double)ru_self.ru_utime.tv_sec + (double)ru_self.ru_utime.tv_usec / 1e6 +
                     (double)ru_self.ru_stime.tv_sec + (double)ru_self.ru_stime.tv_usec / 1e6;

    /* Merge. */
    struct bench_hist *lat = malloc(sizeof(*lat)), *fan = malloc(sizeof(*fan));
    if (!lat || !fan) {
        free(lat);
        free(fan);
        munmap(sh, shsize);
        return 1;
    }
    bench_hist_init(lat);
    bench_hist_init(fan);
    uint64_t dropped = 0, events = 0, warm = 0, bad = 0, bytes = 0, first_err = 0;
    for (unsigned i = 0; i < c.procs; i++) {
        struct bench_child *ch = &sh->child[i];
        dropped += ch->dropped;
        events += ch->events;
        warm += ch->warm_events;
        bad += ch->bad_events;
        bytes += ch->bytes;
        if (!first_err)
            first_err = ch->first_error;
        if (__atomic_load_n(&ch->done, __ATOMIC_ACQUIRE))
            bench_hist_merge(lat, &ch->hist);
    }
    uint64_t expected = 0, complete = 0, tracked = 0;
    for (uint64_t s = ps.first_measured_seq; s < ps.end_seq; s++) {
        uint64_t want = bench_subs_on_topic(&c, s % c.topics);
        expected += want;
        if (s >= c.max_track)
            continue;
        tracked++;
        if (sh->seq[s].count >= want)
            complete++;
        if (sh->seq[s].count)
            bench_hist_add(fan, sh->seq[s].max_ns);
    }
    double dps = pub_ran && ps.seconds > 0 ? (double)events / ps.seconds : 0;
    double conn_rate = connect_s > 0 ? (double)connected / connect_s : 0;
    long long pss_growth =
        before.pss_kib >= 0 && after.pss_kib >= 0 ? after.pss_kib - before.pss_kib : 0;
    long long rss_growth =
        before.rss_kib >= 0 && after.rss_kib >= 0 ? after.rss_kib - before.rss_kib : 0;
    double pss_per = connected ? (double)pss_growth * 1024.0 / (double)connected : 0;
    double rss_per = connected ? (double)rss_growth * 1024.0 / (double)connected : 0;
    double cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    uint64_t errors = failed + dropped + bad + ps.errors;
    char ebuf[64], pbuf[64];

    FILE *o = json ? stdout : NULL;
    if (o) {
        fprintf(o,
                "{\n  \"target\": \"%s\", \"url\": \"%s\", \"subscribers\": %u, \"topics\": %u,\n",
                target_name(c.target), url, c.subscribers, c.topics);
        fprintf(o,
                "  \"rate\": %.1f, \"duration\": %.2f, \"warmup\": %.2f, \"payload\": %u, "
                "\"procs\": %u, \"sources\": %u, \"parser\": \"%s\",\n",
                c.rate, c.duration, c.warmup, c.payload, c.procs, c.sources,
                c.use_parser ? "sse" : "scan");
        fprintf(o,
                "  \"connected\": %llu, \"failed\": %llu, \"dropped\": %llu, "
                "\"connect_seconds\": %.3f, \"connect_rate\": %.0f,\n",
                (unsigned long long)connected, (unsigned long long)failed,
                (unsigned long long)dropped, connect_s, conn_rate);
        fprintf(o,
                "  \"published\": %llu, \"published_measured\": %llu, \"publish_ok\": %llu, "
                "\"publish_errors\": %llu, \"publish_behind\": %llu, \"publish_seconds\": %.3f, "
                "\"publish_rate\": %.1f,\n",
                (unsigned long long)ps.sent, (unsigned long long)ps.measured,
                (unsigned long long)ps.ok, (unsigned long long)ps.errors,
                (unsigned long long)ps.behind, ps.seconds,
                ps.seconds > 0 ? (double)ps.measured / ps.seconds : 0.0);
        fprintf(o,
                "  \"deliveries\": %llu, \"deliveries_expected\": %llu, \"deliveries_per_sec\": "
                "%.0f, \"warmup_deliveries\": %llu, \"bad_events\": %llu, \"body_bytes\": %llu,\n",
                (unsigned long long)events, (unsigned long long)expected, dps,
                (unsigned long long)warm, (unsigned long long)bad, (unsigned long long)bytes);
        print_lat(o, "latency_us", lat, 0);
        fprintf(o, "  \"fanout_messages\": %llu, \"fanout_complete\": %llu,\n",
                (unsigned long long)tracked, (unsigned long long)complete);
        print_lat(o, "fanout_last_us", fan, 0);
        print_lat(o, "publish_rtt_us", &ps.rtt, 0);
        fprintf(
            o,
            "  \"server_pids\": %d, \"server_pss_before_kib\": %lld, \"server_pss_after_kib\": "
            "%lld, \"server_rss_before_kib\": %lld, \"server_rss_after_kib\": %lld,\n"
            "  \"server_pss_per_sub_bytes\": %.0f, \"server_rss_per_sub_bytes\": %.0f,\n"
            "  \"server_cpu_seconds\": %.2f, \"server_cpu_util\": %.3f, \"wall_seconds\": %.2f,\n"
            "  \"bench_sub_cpu_seconds\": %.2f, \"bench_pub_cpu_seconds\": %.2f,\n",
            npids, before.pss_kib, after.pss_kib, before.rss_kib, after.rss_kib, pss_per, rss_per,
            cpu, cpu >= 0 && wall > 0 ? cpu / wall : -1.0, wall, sub_cpu, pub_cpu);
        fprintf(o,
                "  \"errors\": %llu, \"first_error\": \"%s\", \"first_publish_error\": \"%s\"\n}\n",
                (unsigned long long)errors, code_name(first_err, ebuf, sizeof(ebuf)),
                code_name(ps.first_status, pbuf, sizeof(pbuf)));
        fflush(o);
    }
    FILE *h = json ? stderr : stdout;
    fprintf(h, "%s %s: %u subscribers on %u topics, %u procs, %u sources\n", target_name(c.target),
            url, c.subscribers, c.topics, c.procs, c.sources);
    fprintf(h, "  connect: %llu ok, %llu failed, %.2f s (%.0f conn/s); dropped later: %llu\n",
            (unsigned long long)connected, (unsigned long long)failed, connect_s, conn_rate,
            (unsigned long long)dropped);
    if (npids)
        fprintf(h,
                "  server memory: PSS %lld -> %lld KiB (%.0f B/sub), RSS %lld -> %lld KiB (%.0f "
                "B/sub)\n",
                before.pss_kib, after.pss_kib, pss_per, before.rss_kib, after.rss_kib, rss_per);
    if (pub_ran) {
        fprintf(h,
                "  publish: %llu msgs (%llu measured, %.1f/s), %llu ok, %llu errors, behind %llu\n",
                (unsigned long long)ps.sent, (unsigned long long)ps.measured,
                ps.seconds > 0 ? (double)ps.measured / ps.seconds : 0.0, (unsigned long long)ps.ok,
                (unsigned long long)ps.errors, (unsigned long long)ps.behind);
        fprintf(h, "  deliveries: %llu of %llu expected, %.0f/s; bad events %llu\n",
                (unsigned long long)events, (unsigned long long)expected, dps,
                (unsigned long long)bad);
        fprintf(h, "  latency us: p50 %.0f p99 %.0f p999 %.0f max %.0f\n",
                (double)bench_hist_quantile(lat, 0.5) / 1e3,
                (double)bench_hist_quantile(lat, 0.99) / 1e3,
                (double)bench_hist_quantile(lat, 0.999) / 1e3, (double)lat->max / 1e3);
        fprintf(h,
                "  last receipt per message us: p50 %.0f p99 %.0f max %.0f (%llu/%llu complete)\n",
                (double)bench_hist_quantile(fan, 0.5) / 1e3,
                (double)bench_hist_quantile(fan, 0.99) / 1e3, (double)fan->max / 1e3,
                (unsigned long long)complete, (unsigned long long)tracked);
        if (cpu >= 0)
            fprintf(h, "  server CPU: %.2f s over %.2f s (%.0f %% of a core)\n", cpu, wall,
                    wall > 0 ? cpu / wall * 100 : 0.0);
    }
    fprintf(h, "  load generator CPU: subscribers %.2f s, publisher %.2f s (whole run)\n", sub_cpu,
            pub_cpu);
    if (first_err || ps.first_status)
        fprintf(h, "  first error: %s %s\n", code_name(first_err, ebuf, sizeof(ebuf)),
                code_name(ps.first_status, pbuf, sizeof(pbuf)));
    free(lat);
    free(fan);
    munmap(sh, shsize);
    return connected ? 0 : 1;
}
