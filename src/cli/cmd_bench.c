/*
 * cmd_bench.c: `ssehub bench`, the project's load generator for SSE servers, as a command.
 *
 * This file parses the options into the load generator's configuration, runs it
 * (src/loadgen/loadgen.h: the subscribers, the publisher, the measurements) and writes the
 * report: one JSON object with --json, and a human summary. It owns no networking.
 */
#include "cli_commands.h"
#include "cli_help.h"
#include "loadgen/loadgen.h"

#include <getopt.h>
#include <sse/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

const char sse_cli_bench_summary[] = "load-test an SSE server (Mercure hub, nchan, plain)";

/* What the command line asked for, beyond the configuration. */
struct bench_opts {
    const char *url;     /* subscribe URL as given */
    const char *pub_url; /* publish URL as given */
    int json;            /* --json */
};

/* The help table: --help, the man page ssehub-bench(1) and the completion (cli_help.h). */
static const struct cli_option bench_options[] = {
    {"--target", "mercure|nchan|plain", "what to talk to (default mercure)"},
    {"--url", "URL",
     "subscribe URL (mercure: the hub URL, default\n"
     "http://127.0.0.1:8080/.well-known/mercure; nchan: prefix,\n"
     "the topic is appended as /<topic>; plain: the stream URL)"},
    {"--pub-url", "URL",
     "publish URL (mercure: default --url; nchan: prefix; plain);\n"
     "the publisher speaks HTTP/1.1, over TLS for https://"},
    {"--h2c", NULL, "subscribers speak HTTP/2 by prior knowledge (http:// --url)"},
    {"--h2", NULL, "subscribers speak HTTP/2 over TLS, ALPN h2 (https:// --url)"},
    {"--streams-per-conn", "K",
     "HTTP/2 streams per connection (default 1; e.g. 20 for a\n"
     "page's EventSources on one connection)"},
    {"--cacert", "FILE", "verify an https:// server with the CA certificates in FILE"},
    {"--insecure", NULL, "do not verify an https:// server's certificate"},
    {"--token", "JWT", "Bearer token for publishing (mercure)"},
    {"--sub-token", "JWT", "Bearer token for subscribing"},
    {"--topic-prefix", "S",
     "topic names are S<n> (default https://example.com/bench/\n"
     "for mercure, t for nchan)"},
    {"-n, --subscribers", "N", "subscriber streams (default 100, at most 1000000)"},
    {"-t, --topics", "T", "topics, subscribers spread round-robin (default 1)"},
    {"-r, --rate", "R", "messages per second over all topics (default 10; 0 = idle)"},
    {"-d, --duration", "S", "measured seconds of publishing (default 5)"},
    {"--warmup", "S", "seconds of publishing before measuring (default 1)"},
    {"--payload", "B", "data bytes per message (default: just the fields)"},
    {"--sources", "K", "source addresses 127.0.0.1..K (default N/20000+1)"},
    {"--procs", "P", "subscriber processes (default ceil(N/15000))"},
    {"--concurrency", "C", "connects in flight per process (default 128)"},
    {"--pub-conns", "C", "publisher keep-alive connections (default 4)"},
    {"--server-pid", "PID[,PID...]", "server processes whose memory and CPU to report"},
    {"--server-children", NULL, "also count their child processes (e.g. ssehub serve --workers)"},
    {"--idle", "S", "idle seconds before reading server memory (default 2)"},
    {"--connect-timeout", "S", "time allowed to open all streams (default 120)"},
    {"--drain", "S",
     "wait for late deliveries after publishing (default 3; it\n"
     "ends early once none came for max(S/4, 0.5) s)"},
    {"--parser", "sse|scan",
     "kept for scripts: streams are always read with the\n"
     "library's event-stream parser (scan is the same)"},
    {"--json", NULL, "print one JSON object on stdout (summary goes to stderr)"},
    {"-h, --help", NULL, "this text"},
    {NULL, NULL, NULL},
};

static const struct cli_help bench_help = {
    "bench",
    sse_cli_bench_summary,
    "[options]",
    "Load generator: opens N subscriber streams on a hub (or an nchan or plain SSE\n"
    "server), publishes at a fixed rate and reports delivery latency, throughput and the\n"
    "server's memory and CPU.",
    bench_options,
    NULL,
    NULL,
};

const struct cli_help *sse_cli_bench_help(void)
{
    return &bench_help;
}

static void usage(FILE *out)
{
    cli_help_print(out, &bench_help);
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

static const char *target_name(int t)
{
    return t == SSE__LOADGEN_MERCURE ? "mercure" : t == SSE__LOADGEN_NCHAN ? "nchan" : "plain";
}

/* "--server-pid PID[,PID...]" into c; 0 or -1. */
static int parse_pids(const char *arg, struct sse__loadgen_config *c)
{
    for (const char *s = arg; *s;) {
        char *end;
        long pid = strtol(s, &end, 10);
        if (end == s || pid <= 0 || c->nserver_pids == SSE__LOADGEN_MAX_PIDS)
            return -1;
        c->server_pids[c->nserver_pids++] = (int)pid;
        if (*end && *end != ',')
            return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
}

/*
 * Parse the command line into *c and *o, with the defaults of `ssehub bench --help`; the URLs
 * are resolved too. Returns 0 to run, 1 after --help (printed), 2 after a usage error (printed).
 */
static int parse_options(int argc, char **argv, struct sse__loadgen_config *c, struct bench_opts *o)
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
                                             {"h2c", no_argument, NULL, '2'},
                                             {"h2", no_argument, NULL, '3'},
                                             {"streams-per-conn", required_argument, NULL, 'm'},
                                             {"cacert", required_argument, NULL, 'A'},
                                             {"insecure", no_argument, NULL, 'I'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *prefix = NULL;
    double n = 100, t = 1;
    double sources = 0, procs = 0, conc = 128, pubc = 4, payload = 0, per_conn = 1;
    int h2c = 0, h2 = 0;
    memset(c, 0, sizeof(*c));
    memset(o, 0, sizeof(*o));
    c->rate = 10;
    c->duration = 5;
    c->warmup = 1;
    c->idle = 2;
    c->connect_timeout = 120;
    c->drain = 3;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "n:t:r:d:h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 'T':
            if (!strcmp(optarg, "mercure"))
                c->target = SSE__LOADGEN_MERCURE;
            else if (!strcmp(optarg, "nchan"))
                c->target = SSE__LOADGEN_NCHAN;
            else if (!strcmp(optarg, "plain"))
                c->target = SSE__LOADGEN_PLAIN;
            else
                bad = 1;
            break;
        case 'u':
            o->url = optarg;
            break;
        case 'p':
            o->pub_url = optarg;
            break;
        case 'k':
            c->token = optarg;
            break;
        case 'K':
            c->sub_token = optarg;
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
            bad = parse_num(optarg, 0, 1000000, &c->rate);
            break;
        case 'd':
            bad = parse_num(optarg, 0, 3600, &c->duration);
            break;
        case 'w':
            bad = parse_num(optarg, 0, 600, &c->warmup);
            break;
        case 'b':
            bad = parse_num(optarg, 0, 60000, &payload);
            break;
        case 's':
            bad = parse_num(optarg, 1, SSE__LOADGEN_MAX_SOURCES, &sources);
            break;
        case 'j':
            bad = parse_num(optarg, 1, SSE__LOADGEN_MAX_PROCS, &procs);
            break;
        case 'c':
            bad = parse_num(optarg, 1, 10000, &conc);
            break;
        case 'C':
            bad = parse_num(optarg, 1, 256, &pubc);
            break;
        case 'i':
            bad = parse_num(optarg, 0, 600, &c->idle);
            break;
        case 'o':
            bad = parse_num(optarg, 1, 3600, &c->connect_timeout);
            break;
        case 'D':
            bad = parse_num(optarg, 0, 600, &c->drain);
            break;
        case 'J':
            o->json = 1;
            break;
        case '2':
            h2c = 1;
            break;
        case '3':
            h2 = 1;
            break;
        case 'm':
            bad = parse_num(optarg, 1, 1000, &per_conn);
            break;
        case 'A':
            c->cacert = optarg;
            break;
        case 'I':
            c->insecure = 1;
            break;
        case 'H':
            c->server_children = 1;
            break;
        case 'R': /* both names read with the library's parser now */
            bad = strcmp(optarg, "sse") != 0 && strcmp(optarg, "scan") != 0;
            break;
        case 'S':
            bad = parse_pids(optarg, c);
            break;
        case 'h':
            usage(stdout);
            return 1;
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
    c->subscribers = (unsigned)n;
    c->topics = (unsigned)t;
    c->payload = (unsigned)payload;
    c->concurrency = (unsigned)conc;
    c->pub_conns = (unsigned)pubc;
    c->sources = (unsigned)sources;
    c->procs = (unsigned)procs;
    if (!o->url)
        o->url =
            c->target == SSE__LOADGEN_MERCURE ? "http://127.0.0.1:8080/.well-known/mercure" : NULL;
    if (!o->pub_url)
        o->pub_url = c->target == SSE__LOADGEN_MERCURE ? o->url : NULL;
    if (!o->url || !o->pub_url) {
        fprintf(stderr, "ssehub bench: --url and --pub-url are required for --target %s\n",
                target_name(c->target));
        return 2;
    }
    if (sse__loadgen_url_parse(&c->sub, o->url) < 0 ||
        sse__loadgen_url_parse(&c->pub, o->pub_url) < 0) {
        fprintf(stderr, "ssehub bench: URLs must be http[s]://IP-or-localhost[:port]/path\n");
        return 2;
    }
    if (h2c && c->sub.tls) {
        fprintf(stderr, "ssehub bench: --h2c is HTTP/2 by prior knowledge on http://; use --h2 "
                        "for https://\n");
        return 2;
    }
    if (h2 && !c->sub.tls) {
        fprintf(stderr, "ssehub bench: --h2 is HTTP/2 over TLS (ALPN): it needs an https:// "
                        "--url; use --h2c for http://\n");
        return 2;
    }
    if (per_conn > 1 && !h2 && !h2c) {
        fprintf(stderr, "ssehub bench: --streams-per-conn needs --h2 or --h2c (HTTP/1.1 carries "
                        "one stream per connection)\n");
        return 2;
    }
    c->h2 = h2 || h2c;
    c->streams_per_conn = (unsigned)per_conn;
    const char *tls_err;
    if ((c->sub.tls || c->pub.tls) && sse__loadgen_tls_check(c, &tls_err) < 0) {
        fprintf(stderr, "ssehub bench: %s\n", tls_err);
        return 2;
    }
    c->topic_prefix = prefix                              ? prefix
                      : c->target == SSE__LOADGEN_MERCURE ? "https://example.com/bench/"
                                                          : "t";
    return 0;
}

static void print_lat(FILE *o, const char *name, const struct sse__loadgen_hist *h, int last)
{
    fprintf(o,
            "  \"%s\": {\"count\": %llu, \"min\": %.1f, \"mean\": %.1f, \"p50\": %.1f, "
            "\"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f}%s\n",
            name, (unsigned long long)h->count, h->count ? (double)h->min / 1e3 : 0.0,
            h->count ? (double)h->sum / (double)h->count / 1e3 : 0.0,
            (double)sse__loadgen_hist_quantile(h, 0.50) / 1e3,
            (double)sse__loadgen_hist_quantile(h, 0.90) / 1e3,
            (double)sse__loadgen_hist_quantile(h, 0.99) / 1e3,
            (double)sse__loadgen_hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3,
            last ? "" : ",");
}

/* An error as reported: "HTTP 503", a libuv name ("ECONNREFUSED"), an SSE name; "" for 0. */
static const char *code_name(uint64_t code, char *buf, size_t n)
{
    int64_t v = (int64_t)code;
    if (!v)
        return "";
    if (v > 0)
        snprintf(buf, n, "HTTP %lld", (long long)v);
    else if (v <= SSE_ENOMEM)
        snprintf(buf, n, "%s", sse_errname((int)v));
    else
        snprintf(buf, n, "%s", uv_err_name((int)v));
    return buf;
}

static void on_progress(void *user_data, int event, const struct sse__loadgen_report *r)
{
    const struct sse__loadgen_config *c = user_data;
    if (event == SSE__LOADGEN_EV_CONNECTED) {
        if (r->workers < c->procs)
            fprintf(stderr, "ssehub bench: only %u of %u subscriber processes started\n",
                    r->workers, c->procs);
        if (r->worker_ended_early)
            fprintf(stderr, "ssehub bench: a subscriber process ended early\n");
        fprintf(stderr, "bench: %llu streams open, %llu failed in %.2f s%s\n",
                (unsigned long long)r->connected, (unsigned long long)r->failed, r->connect_seconds,
                r->connect_gave_up ? " (gave up waiting)" : "");
    } else if (event == SSE__LOADGEN_EV_PUB_FAILED) {
        fprintf(stderr, "ssehub bench: publisher: %s\n", uv_strerror(r->pub_error));
    }
}

/* The subscribers' protocol as reported: "http/1.1", "h2c" or "h2". */
static const char *protocol_name(const struct sse__loadgen_config *c)
{
    return !c->h2 ? "http/1.1" : c->sub.tls ? "h2" : "h2c";
}

static void print_json(FILE *o, const struct sse__loadgen_config *c, const struct bench_opts *op,
                       const struct sse__loadgen_report *r)
{
    const struct sse__loadgen_pub_stats *ps = &r->pub;
    char ebuf[64], pbuf[64];
    fprintf(o, "{\n  \"target\": \"%s\", \"url\": \"%s\", \"subscribers\": %u, \"topics\": %u,\n",
            target_name(c->target), op->url, c->subscribers, c->topics);
    fprintf(o,
            "  \"rate\": %.1f, \"duration\": %.2f, \"warmup\": %.2f, \"payload\": %u, "
            "\"procs\": %u, \"sources\": %u, \"parser\": \"%s\",\n",
            c->rate, c->duration, c->warmup, c->payload, c->procs, c->sources, "sse");
    fprintf(o, "  \"protocol\": \"%s\", \"tls\": %s, \"streams_per_conn\": %u,\n", protocol_name(c),
            c->sub.tls ? "true" : "false", c->streams_per_conn);
    fprintf(o,
            "  \"connected\": %llu, \"failed\": %llu, \"dropped\": %llu, "
            "\"connect_seconds\": %.3f, \"connect_rate\": %.0f,\n",
            (unsigned long long)r->connected, (unsigned long long)r->failed,
            (unsigned long long)r->dropped, r->connect_seconds, r->connect_rate);
    fprintf(o,
            "  \"published\": %llu, \"published_measured\": %llu, \"publish_ok\": %llu, "
            "\"publish_errors\": %llu, \"publish_behind\": %llu, \"publish_seconds\": %.3f, "
            "\"publish_rate\": %.1f,\n",
            (unsigned long long)ps->sent, (unsigned long long)ps->measured,
            (unsigned long long)ps->ok, (unsigned long long)ps->errors,
            (unsigned long long)ps->behind, ps->seconds,
            ps->seconds > 0 ? (double)ps->measured / ps->seconds : 0.0);
    fprintf(o,
            "  \"deliveries\": %llu, \"deliveries_expected\": %llu, \"deliveries_per_sec\": "
            "%.0f, \"warmup_deliveries\": %llu, \"bad_events\": %llu, \"body_bytes\": %llu,\n",
            (unsigned long long)r->events, (unsigned long long)r->expected, r->deliveries_per_sec,
            (unsigned long long)r->warm_events, (unsigned long long)r->bad_events,
            (unsigned long long)r->body_bytes);
    print_lat(o, "latency_us", &r->latency, 0);
    fprintf(o, "  \"fanout_messages\": %llu, \"fanout_complete\": %llu,\n",
            (unsigned long long)r->fanout_tracked, (unsigned long long)r->fanout_complete);
    print_lat(o, "fanout_last_us", &r->fanout_last, 0);
    print_lat(o, "publish_rtt_us", &ps->rtt, 0);
    fprintf(o,
            "  \"server_pids\": %d, \"server_pss_before_kib\": %lld, \"server_pss_after_kib\": "
            "%lld, \"server_rss_before_kib\": %lld, \"server_rss_after_kib\": %lld,\n"
            "  \"server_pss_per_sub_bytes\": %.0f, \"server_rss_per_sub_bytes\": %.0f,\n"
            "  \"server_cpu_seconds\": %.2f, \"server_cpu_util\": %.3f, \"wall_seconds\": %.2f,\n"
            "  \"bench_sub_cpu_seconds\": %.2f, \"bench_pub_cpu_seconds\": %.2f,\n",
            r->npids, r->mem_before.pss_kib, r->mem_after.pss_kib, r->mem_before.rss_kib,
            r->mem_after.rss_kib, r->pss_per_sub, r->rss_per_sub, r->server_cpu,
            r->server_cpu >= 0 && r->wall_seconds > 0 ? r->server_cpu / r->wall_seconds : -1.0,
            r->wall_seconds, r->sub_cpu, r->pub_cpu);
    fprintf(o, "  \"errors\": %llu, \"first_error\": \"%s\", \"first_publish_error\": \"%s\"\n}\n",
            (unsigned long long)r->errors, code_name(r->first_error, ebuf, sizeof(ebuf)),
            code_name(ps->first_status, pbuf, sizeof(pbuf)));
    fflush(o);
}

static void print_summary(FILE *h, const struct sse__loadgen_config *c, const struct bench_opts *op,
                          const struct sse__loadgen_report *r)
{
    const struct sse__loadgen_pub_stats *ps = &r->pub;
    const struct sse__loadgen_hist *lat = &r->latency, *fan = &r->fanout_last;
    char ebuf[64], pbuf[64];
    fprintf(h,
            "%s %s: %u subscribers on %u topics, %u procs, %u sources, %s%s, %u stream(s)/conn\n",
            target_name(c->target), op->url, c->subscribers, c->topics, c->procs, c->sources,
            protocol_name(c),
            c->sub.tls && c->h2 ? ""
            : c->sub.tls        ? " over TLS"
                                : "",
            c->streams_per_conn);
    fprintf(h, "  connect: %llu ok, %llu failed, %.2f s (%.0f conn/s); dropped later: %llu\n",
            (unsigned long long)r->connected, (unsigned long long)r->failed, r->connect_seconds,
            r->connect_rate, (unsigned long long)r->dropped);
    if (r->npids)
        fprintf(h,
                "  server memory: PSS %lld -> %lld KiB (%.0f B/sub), RSS %lld -> %lld KiB (%.0f "
                "B/sub)\n",
                r->mem_before.pss_kib, r->mem_after.pss_kib, r->pss_per_sub, r->mem_before.rss_kib,
                r->mem_after.rss_kib, r->rss_per_sub);
    if (r->pub_ran) {
        fprintf(
            h, "  publish: %llu msgs (%llu measured, %.1f/s), %llu ok, %llu errors, behind %llu\n",
            (unsigned long long)ps->sent, (unsigned long long)ps->measured,
            ps->seconds > 0 ? (double)ps->measured / ps->seconds : 0.0, (unsigned long long)ps->ok,
            (unsigned long long)ps->errors, (unsigned long long)ps->behind);
        fprintf(h, "  deliveries: %llu of %llu expected, %.0f/s; bad events %llu\n",
                (unsigned long long)r->events, (unsigned long long)r->expected,
                r->deliveries_per_sec, (unsigned long long)r->bad_events);
        fprintf(h, "  latency us: p50 %.0f p99 %.0f p999 %.0f max %.0f\n",
                (double)sse__loadgen_hist_quantile(lat, 0.5) / 1e3,
                (double)sse__loadgen_hist_quantile(lat, 0.99) / 1e3,
                (double)sse__loadgen_hist_quantile(lat, 0.999) / 1e3, (double)lat->max / 1e3);
        fprintf(h,
                "  last receipt per message us: p50 %.0f p99 %.0f max %.0f (%llu/%llu complete)\n",
                (double)sse__loadgen_hist_quantile(fan, 0.5) / 1e3,
                (double)sse__loadgen_hist_quantile(fan, 0.99) / 1e3, (double)fan->max / 1e3,
                (unsigned long long)r->fanout_complete, (unsigned long long)r->fanout_tracked);
        if (r->server_cpu >= 0)
            fprintf(h, "  server CPU: %.2f s over %.2f s (%.0f %% of a core)\n", r->server_cpu,
                    r->wall_seconds,
                    r->wall_seconds > 0 ? r->server_cpu / r->wall_seconds * 100 : 0.0);
    }
    fprintf(h, "  load generator CPU: subscribers %.2f s, publisher %.2f s (whole run)\n",
            r->sub_cpu, r->pub_cpu);
    if (r->first_error || ps->first_status)
        fprintf(h, "  first error: %s %s\n", code_name(r->first_error, ebuf, sizeof(ebuf)),
                code_name(ps->first_status, pbuf, sizeof(pbuf)));
}

int sse_cli_bench(int argc, char **argv)
{
    struct sse__loadgen_config c;
    struct bench_opts o;
    int rc = parse_options(argc, argv, &c, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    unsigned per_proc = 0;
    unsigned long long fd_limit = 0;
    if (sse__loadgen_prepare(&c, &per_proc, &fd_limit) < 0) {
        fprintf(stderr,
                "ssehub bench: %u streams per process is too many (RLIMIT_NOFILE %llu, at most "
                "%u): raise --procs\n",
                per_proc, fd_limit, SSE__LOADGEN_PER_PROC_MAX);
        return 2;
    }
    struct sse__loadgen_report *r = malloc(sizeof(*r));
    if (!r) {
        fprintf(stderr, "ssehub bench: out of memory\n");
        return 1;
    }
    fflush(stdout);
    fflush(stderr);
    rc = sse__loadgen_run(&c, r, on_progress, &c);
    if (rc < 0) {
        fprintf(stderr, "ssehub bench: %s\n", sse_strerror(rc));
        free(r);
        return 1;
    }
    if (o.json)
        print_json(stdout, &c, &o, r);
    print_summary(o.json ? stderr : stdout, &c, &o, r);
    rc = r->connected ? 0 : 1;
    free(r);
    return rc;
}
