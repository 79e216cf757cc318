/*
 * cmd_serve.c: `ssehub serve` — runs the Mercure hub (include/sse/hub.h) on the libsse server.
 *
 * Reads the settings (cli_serve_config.c), refuses to start with publishing enabled and no key
 * unless --dev/--demo (which make a random key and print tokens signed with it), listens,
 * prints `listening on http://HOST:PORT/` (the real port when 0 was asked), serves --web at /,
 * adds the --demo streams and built-in pages (cli_demo.c), and shuts down gracefully on
 * SIGINT/SIGTERM.
 */
#include "cli_commands.h"
#include "cli_demo.h"
#include "cli_jwks.h"
#include "cli_log.h"
#include "cli_serve_config.h"
#include "cli_token.h"
#include "cli_workers.h"

#include <signal.h>
#include <sse/bus_redis.h>
#include <sse/hub.h>
#include <sse/log.h>
#include <sse/server.h>
#include <sse/store_lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char sse_cli_serve_summary[] =
    "run the Mercure hub (publish, subscribe, history, demo pages)";

struct serve {
    struct serve_config cfg;
    uv_loop_t loop;
    sse_server *server;
    sse_hub *hub;
    uv_signal_t sigint, sigterm;
    struct sse_cli_demo *demo; /* --demo: streams, pages, the hub clock (cli_demo.h) */
    int log_level;
    char *dev_pub_token, *dev_sub_token;
    int stopping;
    int worker;       /* -1: single process; else this worker's index */
    int n_workers;    /* --workers (master) */
    const char *host; /* the listen host (master banner) */
    sse_bus *bus;     /* the pipe bus to the master (workers) */
    sse_store *store; /* the history (memory or lmdb, with the --history-* limits) */
    uv_loop_t *mloop; /* the master's loop for an LMDB store (--workers) */
    int signals_on;   /* sigint/sigterm initialized (closed by server_closed) */
    /* SIGHUP: reload (serve_reload). The settings as last read from the sources (before the
       changes made at start-up, e.g. a @FILE key read or a development key), to compare with. */
    uv_signal_t sighup;
    int argc;
    char **argv;
    struct serve_config loaded;
    struct cli_jwks *jwks; /* --*-jwks-url: the key-set fetcher (NULL: none) */
    int log_json;          /* --log-format json */
    /* --tls-listen with --workers: the TLS port the master reserved (every worker listens on
       it), and the master's reserving socket (-1: none) */
    int tls_port;
    int tls_rfd;
};

static void log_line(void *ud, int level, const char *line)
{
    struct serve *sv = ud;
    if (level > sv->log_level)
        return;
    char who[24];
    if (sv->log_json) {
        cli_log_json_stderr(level, sv->worker, line);
        return;
    }
    if (sv->worker >= 0)
        snprintf(who, sizeof(who), "worker %d", sv->worker);
    sse_log_stderr(level, sv->worker >= 0 ? who : NULL, line);
}

static const char *real_getenv(const char *name)
{
    return getenv(name);
}

/* A development token (HS256 with key) granting "*": minted by cmd_token.c (cli_token.h). It
   carries the hub's issuer (iss) and resource (draft-08 aud) when they are set, so that the hub
   accepts the tokens it prints. */
static char *mint(const char *key, int draft08, const char *resource, const char *issuer,
                  int publish)
{
    static const struct sse_cli_grant all = {"*", 0};
    struct sse_cli_token_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.draft = draft08 ? 8 : 7;
    spec.publish = publish ? &all : NULL;
    spec.n_publish = publish ? 1 : 0;
    spec.subscribe = &all;
    spec.n_subscribe = 1;
    spec.aud = resource;
    spec.iss = issuer;
    spec.sub = publish ? "urn:ssehub:dev-publisher" : "urn:ssehub:dev-subscriber";
    spec.exp_seconds = 30LL * 24 * 3600;
    spec.alg = "HS256";
    spec.key = key;
    char *out = NULL;
    const char *err = NULL;
    if (sse_cli_token_mint(&spec, (long long)time(NULL), &out, &err)) {
        fprintf(stderr, "ssehub serve: minting a development token: %s\n", err ? err : "failed");
        return NULL;
    }
    return out;
}

static int on_dev_token(sse_request *req, void *ud)
{
    struct serve *sv = ud;
    char body[4096];
    int n = snprintf(body, sizeof(body),
                     "{\"hub\":\"/.well-known/mercure\",\"publisher\":\"%s\",\"subscriber\":\"%s\","
                     "\"demo_topic\":\"%s\"}",
                     sv->dev_pub_token, sv->dev_sub_token, sv->cfg.demo_topic);
    sse_request_add_header(req, "Cache-Control", "no-store");
    return sse_request_respond(req, 200, "application/json", body, (size_t)n);
}

static void closed(uv_handle_t *h)
{
    (void)h;
}

static void store_closed(void *ud)
{
    struct serve *sv = ud;
    sv->store = NULL;
}

static void server_closed(sse_server *s, void *ud)
{
    struct serve *sv = ud;
    (void)s;
    uv_close((uv_handle_t *)&sv->sigint, closed);
    uv_close((uv_handle_t *)&sv->sigterm, closed);
    uv_close((uv_handle_t *)&sv->sighup, closed);
    sse_bus_close(sv->bus, NULL, NULL);
    sv->bus = NULL;
    /* The hub is closed: what the store has in flight completes (a durable store commits it),
       then it is freed. The hub itself is freed once the loop has run all of that. */
    sse_store_close(sv->store, store_closed, sv);
}

static void stop(struct serve *sv, const char *why)
{
    if (sv->stopping) {
        log_line(sv, SSE_LOG_WARN, "second signal: exiting now");
        exit(1);
    }
    sv->stopping = 1;
    char line[96];
    snprintf(line, sizeof(line), "%s: shutting down", why);
    log_line(sv, SSE_LOG_INFO, line);
    sse_cli_demo_close(sv->demo);
    sse_hub_close(sv->hub);
    sse_server_close(sv->server, sv->cfg.shutdown_timeout_ms, server_closed, sv);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    stop(sig->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- SIGHUP: reload what can change while running */

static int key_from_file(char **key);

/* One setting that changed in the sources: applied below, or reported as needing a restart. */
static void reload_changed(const char *name, void *ud)
{
    struct serve *sv = ud;
    static const char *const live[] = {"log-level",       "tls-cert",     "tls-key",
                                       "heartbeat",       "cors-origins", "max-connections",
                                       "max-subscribers", "replay-budget"};
    /* applied by reload_auth / reload_limits, which log the outcome (they may refuse) */
    static const char *const auth[] = {"publisher-jwt-key",
                                       "publisher-jwt-alg",
                                       "subscriber-jwt-key",
                                       "subscriber-jwt-alg",
                                       "issuer",
                                       "max-update"};
    char line[160];
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
        if (!strcmp(name, live[i])) {
            snprintf(line, sizeof(line), "reload: %s changed: applied", name);
            log_line(sv, SSE_LOG_INFO, line);
            return;
        }
    for (size_t i = 0; i < sizeof(auth) / sizeof(auth[0]); i++)
        if (!strcmp(name, auth[i])) {
            snprintf(line, sizeof(line), "reload: %s changed", name);
            log_line(sv, SSE_LOG_INFO, line);
            return;
        }
    snprintf(line, sizeof(line), "reload: %s changed: needs a restart (kept as it was)", name);
    log_line(sv, SSE_LOG_WARN, line);
}

static int parse_log_level(const char *s)
{
    return !strcasecmp(s, "error")   ? SSE_LOG_ERROR
           : !strcasecmp(s, "warn")  ? SSE_LOG_WARN
           : !strcasecmp(s, "debug") ? SSE_LOG_DEBUG
                                     : SSE_LOG_INFO;
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

/* Replace *dst with a copy of src (NULL stays NULL); -1 when out of memory (*dst unchanged). */
static int set_str(char **dst, const char *src)
{
    char *d = src ? strdup(src) : NULL;
    if (src && !d)
        return -1;
    free(*dst);
    *dst = d;
    return 0;
}

/* Back in nc, the key settings as loaded last time: the next SIGHUP reports them again. */
static void reload_auth_revert(struct serve *sv, struct serve_config *nc)
{
    (void)set_str(&nc->publisher_key, sv->loaded.publisher_key);
    (void)set_str(&nc->publisher_alg, sv->loaded.publisher_alg);
    (void)set_str(&nc->subscriber_key, sv->loaded.subscriber_key);
    (void)set_str(&nc->subscriber_alg, sv->loaded.subscriber_alg);
    (void)set_str(&nc->issuer, sv->loaded.issuer);
}

/*
 * The JWT verification: keys, algorithms, issuers. A @FILE key is read again even when the
 * path is the same (a rotated secret is the usual case). When the result differs from what
 * runs, the hub's verifier is replaced (sse_hub_set_auth): new requests are verified with the
 * new keys, open streams keep going. A key that does not load is refused (logged, never the
 * key itself) and the running verification stays. Moving between keys and key sets (JWKS
 * URLs), or removing the publisher key, needs a restart.
 */
static void reload_auth(struct serve *sv, struct serve_config *nc)
{
    struct serve_config *c = &sv->cfg;
    char *pub = NULL, *sub = NULL;
    const char *why = NULL;
    if (set_str(&pub, nc->publisher_key) || set_str(&sub, nc->subscriber_key) ||
        key_from_file(&pub) || key_from_file(&sub)) {
        why = "a key file cannot be read";
        goto refused;
    }
    if ((c->publisher_jwks_url && pub) || (c->subscriber_jwks_url && sub)) {
        why = "a key beside a key set URL";
        goto refused;
    }
    if (!pub && !nc->publisher_key && !sv->loaded.publisher_key && c->publisher_key) {
        /* none given, none before: the running one is the --dev key; it stays */
        if (set_str(&pub, c->publisher_key)) {
            why = "out of memory";
            goto refused;
        }
    } else if (!pub && c->publisher_key) {
        why = "the publisher key was removed (that needs a restart)";
        goto refused;
    }
    const char *pub_alg = nc->publisher_alg, *sub_alg = nc->subscriber_alg;
    /* plain compares: both sides are the operator's own settings, no request input */
    if (same_str(pub, c->publisher_key) && same_str(sub, c->subscriber_key) &&
        same_str(pub_alg, c->publisher_alg) && same_str(sub_alg, c->subscriber_alg) &&
        same_str(nc->issuer, c->issuer)) {
        free(pub);
        free(sub);
        return; /* nothing to do: the same keys, read again */
    }
    sse_hub_options ho = SSE_HUB_OPTIONS_INIT;
    ho.publisher_key = c->publisher_jwks_url ? NULL : pub;
    ho.publisher_alg = pub_alg;
    /* as at start-up (run_hub): without a key of their own, subscribers use the publisher's
       set when there is one */
    ho.subscriber_key = c->subscriber_jwks_url || (!sub && c->publisher_jwks_url) ? NULL : sub;
    ho.subscriber_alg = sub_alg;
    ho.issuers = (const char *const *)nc->issuers;
    ho.n_issuers = nc->n_issuers;
    int rc = sse_hub_set_auth(sv->hub, &ho);
    if (rc) {
        why = rc == SSE_ENOMEM ? "out of memory" : "a key or algorithm does not load";
        goto refused;
    }
    /* what runs now, for the next comparison (c owns its strings; nc is kept as loaded) */
    char **iss = nc->n_issuers ? calloc(nc->n_issuers, sizeof(*iss)) : NULL;
    for (size_t i = 0; iss && i < nc->n_issuers; i++)
        iss[i] = strdup(nc->issuers[i]);
    free(c->publisher_key);
    free(c->subscriber_key);
    c->publisher_key = pub;
    c->subscriber_key = sub;
    (void)set_str(&c->publisher_alg, pub_alg);
    (void)set_str(&c->subscriber_alg, sub_alg);
    (void)set_str(&c->issuer, nc->issuer);
    for (size_t i = 0; i < c->n_issuers; i++)
        free(c->issuers[i]);
    free(c->issuers);
    c->issuers = iss;
    c->n_issuers = iss ? nc->n_issuers : 0;
    log_line(sv, SSE_LOG_INFO, "reload: JWT keys, algorithms and issuers: applied");
    return;
refused:
    free(pub);
    free(sub);
    char line[200];
    snprintf(line, sizeof(line), "reload: the new JWT keys were refused (%s): the old ones stay",
             why);
    log_line(sv, SSE_LOG_ERROR, line);
    reload_auth_revert(sv, nc);
}

/* The server settings that also change live (sse_server_set_live), from c. */
static void live_server_options(const struct serve_config *c, sse_server_options *so)
{
    so->heartbeat_ms = c->heartbeat_ms ? c->heartbeat_ms : UINT32_MAX;
    so->max_connections = (unsigned)c->max_connections;
    struct rlimit rl;
    if (!so->max_connections) { /* past the open-file limit accept() fails: answer 503 before */
        if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 128)
            so->max_connections = (unsigned)(rl.rlim_cur - 64);
    }
    so->cors_origins = c->cors_origins;
    so->cors_credentials = c->cors_origins && strcmp(c->cors_origins, "*") != 0;
}

/* Heartbeat, CORS origins, connection and subscriber limits, replay budget, update size:
   swapped in place (lower limits refuse new connections and subscribers only; open streams
   stay). */
static void reload_limits(struct serve *sv, struct serve_config *nc)
{
    sse_server_options so = SSE_SERVER_OPTIONS_INIT;
    live_server_options(nc, &so);
    if (sse_server_set_live(sv->server, &so)) {
        log_line(sv, SSE_LOG_ERROR, "reload: the server settings were not applied (no memory)");
        return;
    }
    sse_hub_options ho = SSE_HUB_OPTIONS_INIT;
    ho.max_subscribers = nc->max_subscribers;
    ho.replay_steps_max = nc->replay_budget;
    ho.max_update = nc->max_update;
    if (sse_hub_set_limits(sv->hub, &ho)) {
        /* a bus (--workers, --redis) was sized for the --max-update at start: that one stays,
           the other limits apply */
        log_line(sv, SSE_LOG_ERROR,
                 "reload: a --max-update above the one at start needs a restart with --workers "
                 "or --redis (kept as it was)");
        nc->max_update = sv->loaded.max_update;
        ho.max_update = nc->max_update;
        (void)sse_hub_set_limits(sv->hub, &ho);
    } else if (nc->max_update != sv->loaded.max_update) {
        log_line(sv, SSE_LOG_INFO, "reload: max-update: applied");
    }
}

/*
 * Re-read the settings (config file, environment, command line) and apply what can change
 * live: the log level, the TLS certificate and key (re-read from their files even when the
 * paths are the same: renewed files are the usual case), the JWT keys, algorithms and issuers
 * (reload_auth), the heartbeat, CORS origins and limits (reload_limits); the table of them is
 * in docs/OPERATIONS.md. Open streams stay open through all of it. Settings that need a restart are
 * logged and kept. A certificate or key that cannot be used is refused (logged by the server)
 * and the old one goes on serving; so does everything on a config that does not load.
 * New live settings join here: compare, apply, log.
 */
static void serve_reload(struct serve *sv)
{
    struct serve_config nc;
    char err[512];
    memset(&nc, 0, sizeof(nc));
    log_line(sv, SSE_LOG_INFO, "SIGHUP: reloading the settings");
    FILE *devnull = fopen("/dev/null", "w");
    int rc = serve_config_load(&nc, sv->argc, sv->argv, real_getenv, devnull, err, sizeof(err));
    if (devnull)
        fclose(devnull);
    if (rc) {
        char line[600];
        snprintf(line, sizeof(line), "reload: the settings do not load (%s): nothing changed",
                 rc == 2 ? err : "--help");
        log_line(sv, SSE_LOG_ERROR, line);
        serve_config_free(&nc);
        return;
    }
    serve_config_diff(&sv->loaded, &nc, reload_changed, sv);
    sv->log_level = parse_log_level(nc.log_level);
    reload_auth(sv, &nc);
    reload_limits(sv, &nc);
    /* Key sets are fetched again now (a key withdrawn by the operator stops working once the
       new set lands, without waiting for a token with an unknown kid to ask for it). */
    if (sv->jwks) {
        int roles = cli_jwks_roles(sv->jwks);
        if (roles & SSE_HUB_PUBLISHER)
            cli_jwks_refresh(sv->jwks, SSE_HUB_PUBLISHER);
        if (roles & SSE_HUB_SUBSCRIBER)
            cli_jwks_refresh(sv->jwks, SSE_HUB_SUBSCRIBER);
        log_line(sv, SSE_LOG_INFO, "reload: fetching the key sets again");
    }
    if (sv->cfg.tls_listen && nc.tls_cert && nc.tls_key) {
        if (sse_server_tls_reload(sv->server, nc.tls_cert, nc.tls_key) == 0) {
            free(sv->cfg.tls_cert);
            free(sv->cfg.tls_key);
            sv->cfg.tls_cert = strdup(nc.tls_cert);
            sv->cfg.tls_key = strdup(nc.tls_key);
        } else {
            log_line(sv, SSE_LOG_ERROR,
                     "reload: the new TLS certificate or key was refused: the old one stays");
            /* compare with what still runs next time */
            free(nc.tls_cert);
            free(nc.tls_key);
            nc.tls_cert = sv->loaded.tls_cert ? strdup(sv->loaded.tls_cert) : NULL;
            nc.tls_key = sv->loaded.tls_key ? strdup(sv->loaded.tls_key) : NULL;
        }
    } else if (nc.tls_listen && !sv->cfg.tls_listen) {
        log_line(sv, SSE_LOG_WARN, "reload: a TLS listener needs a restart");
    }
    serve_config_free(&sv->loaded);
    sv->loaded = nc;
}

static void on_sighup(uv_signal_t *sig, int signum)
{
    (void)signum;
    struct serve *sv = sig->data;
    if (!sv->stopping)
        serve_reload(sv);
}

/* A worker whose master went away stops as on SIGTERM. */
static void master_lost(void *ud)
{
    struct serve *sv = ud;
    if (!sv->stopping)
        stop(sv, "the master is gone");
}

/* A key given as "@PATH" is read from that file (PEM keys are awkward on a command line). */
static int key_from_file(char **key)
{
    if (!*key || (*key)[0] != '@')
        return 0;
    FILE *f = fopen(*key + 1, "rb");
    if (!f) {
        fprintf(stderr, "ssehub serve: cannot read key file %s\n", *key + 1);
        return -1;
    }
    char *buf = malloc(65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    int toolong = buf && n == 65536 && fgetc(f) != EOF;
    fclose(f);
    if (!buf || toolong) {
        fprintf(stderr, "ssehub serve: key file %s too large\n", *key + 1);
        free(buf);
        return -1;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r') && strncmp(buf, "-----", 5) != 0)
        n--; /* an HMAC secret file: drop the final newline (PEM keeps it) */
    buf[n] = '\0';
    free(*key);
    *key = buf;
    return 0;
}

static int random_key(char out[65])
{
    unsigned char r[32];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

/* The default resource identifier (draft-08 "aud") and the development tokens, once the real
 * port is known. 0 or -1 (message printed). */
static int identity(struct serve *sv, const char *host, int real_port, int drafts)
{
    struct serve_config *c = &sv->cfg;
    int v6 = strchr(host, ':') != NULL;
    if (!c->resource && (drafts & SSE_HUB_DRAFT_08)) {
        char res[512];
        snprintf(res, sizeof(res), "http://%s%s%s:%d/.well-known/mercure", v6 ? "[" : "", host,
                 v6 ? "]" : "", real_port);
        if (!(c->resource = strdup(res)))
            return -1;
    }
    if (c->dev) {
        int d08 = drafts == SSE_HUB_DRAFT_08;
        const char *iss = c->n_issuers ? c->issuers[0] : NULL; /* the first accepted issuer */
        sv->dev_pub_token = mint(c->publisher_key, d08, c->resource, iss, 1);
        sv->dev_sub_token = mint(c->subscriber_key ? c->subscriber_key : c->publisher_key, d08,
                                 c->resource, iss, 0);
        if (!sv->dev_pub_token || !sv->dev_sub_token) {
            fprintf(stderr, "ssehub serve: cannot mint development tokens\n");
            return -1;
        }
    }
    return 0;
}

static void print_banner(struct serve *sv, const char *host, int real_port)
{
    struct serve_config *c = &sv->cfg;
    int v6 = strchr(host, ':') != NULL;
    printf("listening on http://%s%s%s:%d/\n", v6 ? "[" : "", host, v6 ? "]" : "", real_port);
    printf("hub: http://%s%s%s:%d/.well-known/mercure (protocol %s)\n", v6 ? "[" : "", host,
           v6 ? "]" : "", real_port, c->protocol);
    if (c->tls_listen && (sv->server || sv->tls_port > 0)) { /* the master: what it reserved */
        char *th = NULL;
        int tport;
        if (serve_parse_listen(c->tls_listen, &th, &tport) == 0) {
            int tv6 = strchr(th, ':') != NULL;
            printf("listening on https://%s%s%s:%d/ (TLS)\n", tv6 ? "[" : "", th, tv6 ? "]" : "",
                   sv->server ? sse_server_tls_port(sv->server) : sv->tls_port);
        }
        free(th);
    }
    if (sv->n_workers > 1)
        printf("workers: %d processes on the port, one global update order\n", sv->n_workers);
    if (!strncmp(c->store, "lmdb:", 5))
        printf("history: lmdb %s (%s)\n", c->store + 5, c->store_sync);
    if (c->resource)
        printf("resource identifier (draft-08 aud): %s\n", c->resource);
    if (c->dev) {
        printf("development key (HS256): %s\n", c->publisher_key);
        printf("publisher token: %s\n", sv->dev_pub_token);
        printf("subscriber token: %s\n", sv->dev_sub_token);
    }
    if (c->demo)
        printf("demo: pages http://%s%s%s:%d/ (%s%s), streams /clock and /oneshot, hub topic "
               "%s every second\n",
               v6 ? "[" : "", host, v6 ? "]" : "", real_port, c->web ? "from " : "built in",
               c->web ? c->web : "", c->demo_topic);
    fflush(stdout);
}

/* The history limits (--history-count, --history-bytes, --history-age). */
static sse_store_limits history_limits(const struct serve_config *c)
{
    sse_store_limits lim = {c->history_count, c->history_bytes ? c->history_bytes : (16u << 20),
                            c->history_age_ms};
    return lim;
}

/*
 * The history store of a hub and of the master: memory, or LMDB (--store lmdb:DIR) on loop
 * (NULL: memory, as a --redis worker keeps it). role: HS_HUB (one process), HS_SEQUENCER (the
 * --workers master: the one writer), HS_FOLLOWER (a --workers worker: reads the master's file,
 * docs/WORKERS.md). Prints why it failed.
 */
enum { HS_HUB, HS_SEQUENCER, HS_FOLLOWER };
static int history_store(const struct serve_config *c, uv_loop_t *loop, int role, sse_store **out)
{
    sse_store_limits lim = history_limits(c);
    if (!strncmp(c->store, "lmdb:", 5) && loop) {
        char err[1024] = "";
        sse_store_lmdb_options o = SSE_STORE_LMDB_OPTIONS_INIT;
        o.loop = loop;
        o.path = c->store + 5;
        o.limits = lim;
        o.sync = strcmp(c->store_sync, "nosync") ? SSE_STORE_LMDB_SYNC : SSE_STORE_LMDB_NOSYNC;
        o.map_size = c->store_map_size;
        o.errbuf = err;
        o.errbuf_len = sizeof(err);
        o.follower = role == HS_FOLLOWER;
        int rc = sse_store_lmdb_new(out, &o);
        if (rc)
            fprintf(stderr, "ssehub serve: history: %s\n", err[0] ? err : sse_strerror(rc));
        return rc;
    }
    int rc = sse_store_memory_new(out, &lim);
    if (rc)
        fprintf(stderr, "ssehub serve: history: %s\n", sse_strerror(rc));
    return rc;
}

static void flag_set(void *ud)
{
    *(int *)ud = 1;
}

/* Close the store and run the loop until it is closed (an LMDB store joins its threads). */
static void history_close(struct serve *sv)
{
    int done = 0;
    if (!sv->store)
        return;
    sse_store_close(sv->store, flag_set, &done);
    while (!done && uv_run(&sv->loop, UV_RUN_ONCE))
        ;
    sv->store = NULL;
}

/* ---- HTTPS, in one process or in every worker (docs/OPERATIONS.md "HTTPS") */

/*
 * Listen for HTTPS on --tls-listen's host at port (-1: the configured port; a worker: the port
 * the master reserved, shared with SO_REUSEPORT like the plain one). Loads the certificate and
 * key. 0, or -1 with the reason printed.
 */
static int serve_listen_tls(struct serve *sv, int port)
{
    struct serve_config *c = &sv->cfg;
    char *th = NULL;
    int tport = 0;
    sse_tls_options to = {c->tls_cert, c->tls_key, c->tls_handshake_ms, c->tls_keep_buffers, 0};
    to.max_overlimit_handshakes =
        c->tls_overlimit_handshakes > 1u << 20 ? 1u << 20 : (unsigned)c->tls_overlimit_handshakes;
    (void)serve_parse_listen(c->tls_listen, &th, &tport); /* validated by the config */
    if (port < 0)
        port = tport;
    int rc = sse_server_listen_tls(sv->server, th, port, &to);
    if (rc && sv->worker >= 0)
        fprintf(stderr, "ssehub serve: worker %d cannot listen (TLS) on %s port %d: %s\n",
                sv->worker, th, port, sse_strerror(rc));
    else if (rc)
        fprintf(stderr, "ssehub serve: cannot listen (TLS) on %s: %s\n", c->tls_listen,
                sse_strerror(rc));
    free(th);
    return rc ? -1 : 0;
}

/*
 * The master checks the certificate and key once before it forks (through a server that never
 * listens): a file that cannot be used stops the start with OpenSSL's reason, instead of every
 * worker failing and being restarted. 0, or -1 (logged).
 */
static void probe_log(void *ud, int level, const char *line)
{
    if (level <= SSE_LOG_ERROR) /* OpenSSL's reason; not the probe's own shutdown line */
        log_line(ud, level, line);
}

static int serve_check_tls(struct serve *sv)
{
    uv_loop_t loop;
    sse_server *probe = NULL;
    sse_server_options so = SSE_SERVER_OPTIONS_INIT;
    so.log = probe_log;
    so.log_data = sv;
    if (uv_loop_init(&loop))
        return -1;
    int rc = sse_server_new(&probe, &loop, &so);
    if (!rc)
        rc = sse_server_tls_check(probe, sv->cfg.tls_cert, sv->cfg.tls_key);
    if (probe) {
        sse_server_close(probe, 0, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        sse_server_free(probe);
    }
    uv_loop_close(&loop);
    if (rc)
        fprintf(stderr, "ssehub serve: --tls-cert %s / --tls-key %s: %s\n", sv->cfg.tls_cert,
                sv->cfg.tls_key, sse_strerror(rc));
    return rc ? -1 : 0;
}

/*
 * The master of --workers with --tls-listen: reserve the TLS port as the plain one (bound with
 * SO_REUSEPORT, never listening), so every worker can bind it, and learn the real port of
 * HOST:0. Sets sv->tls_rfd and sv->tls_port. 0, or -1 (printed). Nothing without --tls-listen.
 */
static int serve_reserve_tls(struct serve *sv)
{
    char *th = NULL, err[256];
    int tport = 0;
    if (!sv->cfg.tls_listen)
        return 0;
    if (serve_check_tls(sv))
        return -1;
    (void)serve_parse_listen(sv->cfg.tls_listen, &th, &tport);
    sv->tls_rfd =
        sse_cli_master_reserve(th ? th : "0.0.0.0", tport, &sv->tls_port, err, sizeof(err));
    free(th);
    if (sv->tls_rfd < 0) {
        fprintf(stderr, "ssehub serve: --tls-listen: %s\n", err);
        return -1;
    }
    return 0;
}

/* The master's reserving socket of the TLS port: closed in every worker and at the end. */
static void serve_release_tls(struct serve *sv)
{
    if (sv->tls_rfd >= 0)
        close(sv->tls_rfd);
    sv->tls_rfd = -1;
}

/* In a worker: the master's loop as fork copied it, when it cannot be closed (an LMDB store's
   handle is on it). Never run here; kept reachable, as the store keeps its copy. */
static uv_loop_t *master_loop_copy;

static void free_store_in_worker(void *ud)
{
    struct serve *sv = ud;
    serve_release_tls(sv);     /* the master's reservation (the worker binds its own socket) */
    sse_store_free(sv->store); /* the master's copy: the worker makes its own */
    sv->store = NULL;
    if (sv->mloop && uv_loop_close(sv->mloop) == 0)
        free(sv->mloop);
    else
        master_loop_copy = sv->mloop;
    sv->mloop = NULL;
}

/* The Redis bus of --redis URL[,URL...] (one shard per URL), trimmed to --history-count, in
 * sv->bus. 0, or -1 (message printed). */
static int redis_bus(struct serve *sv, size_t max_message)
{
    struct serve_config *c = &sv->cfg;
    const char *urls[64];
    size_t n = 0;
    char *dup = strdup(c->redis);
    if (!dup)
        return -1;
    for (char *p = dup; p && *p && n <= 64;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        while (*p == ' ')
            p++;
        if (*p) {
            if (n == 64) {
                fprintf(stderr, "ssehub serve: --redis: at most 64 URLs\n");
                free(dup);
                return -1;
            }
            urls[n++] = p;
        }
        p = comma ? comma + 1 : NULL;
    }
    sse_bus_redis_options ro = SSE_BUS_REDIS_OPTIONS_INIT;
    ro.loop = &sv->loop;
    ro.urls = urls;
    ro.n_urls = n;
    ro.key = c->redis_key;
    ro.cluster = c->redis_cluster;
    ro.n_shards = c->redis_shards;
    ro.presence_ttl_ms = (unsigned)c->redis_presence_ttl_ms;
    ro.max_len = c->history_count;
    ro.max_age_ms = c->history_age_ms;
    ro.max_message = max_message;
    ro.log = log_line;
    ro.log_data = sv;
    int rc = n ? sse_bus_redis_new(&sv->bus, &ro) : SSE_EINVAL; /* the URLs are parsed */
    if (rc) {
        fprintf(stderr,
                "ssehub serve: --redis %s: %s (expected redis://[user:pass@]HOST:PORT[/DB])\n",
                c->redis, sse_strerror(rc));
        free(dup);
        return -1;
    }
    free(dup);
    return 0;
}

/* The bus options the master and every worker agree on (frame bound). */
static size_t bus_max(const struct serve_config *c)
{
    sse_hub_options ho = SSE_HUB_OPTIONS_INIT;
    ho.max_update = c->max_update;
    ho.max_selector_len = c->max_selector_len;
    ho.max_topics = c->max_topics;
    return sse_hub_bus_max_message(&ho);
}

/*
 * Run one hub on its own loop. worker < 0: the single-process hub (listens first, prints the
 * banner). worker >= 0: a worker of the master (docs/WORKERS.md): SO_REUSEPORT, updates through
 * the master on fd wfd, the history loaded before listening, no banner. Returns the exit code.
 */
static int run_hub(struct serve *sv, const char *host, int port, int drafts, int worker, int wfd)
{
    struct serve_config *c = &sv->cfg;
    int rc, exit_code = 1, real_port = port;
    char inst[16];
    sv->worker = worker;
    if ((rc = uv_loop_init(&sv->loop))) {
        fprintf(stderr, "ssehub serve: %s\n", uv_strerror(rc));
        if (wfd >= 0)
            close(wfd);
        return 1;
    }
    sse_server_options so = SSE_SERVER_OPTIONS_INIT;
    so.max_body = c->max_body;
    so.write_timeout_ms = c->write_timeout_ms;
    so.stream_queue_max = c->queue_max;
    struct rlimit rl; /* a hub holds a descriptor per subscriber: take all the system allows */
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    live_server_options(c, &so); /* heartbeat, connections, CORS: also on SIGHUP */
    so.max_buffered = c->max_buffered;
    so.access_log = c->access_log;
    so.log = log_line;
    so.log_data = sv;
    so.reuse_port = worker >= 0;
    /* HTTP/2 */
    so.h2c = c->h2c;
    so.h2 = c->h2;
    so.h2_max_streams = c->h2_max_streams > 1u << 20 ? 1u << 20 : (unsigned)c->h2_max_streams;
    /* Cross-origin fetch() may read the discovery Link and the replay position headers. */
    so.cors_expose_headers = "Link, Last-Event-ID, Mercure-Last-Event-ID";
    if ((rc = sse_server_new(&sv->server, &sv->loop, &so))) {
        fprintf(stderr, "ssehub serve: server: %s\n", sse_strerror(rc));
        if (wfd >= 0)
            close(wfd);
        goto out_loop;
    }
    /* A worker of the master follows its LMDB file (read-only), or keeps the history in memory. */
    if ((rc = history_store(c, worker >= 0 && c->redis ? NULL : &sv->loop,
                            worker >= 0 ? HS_FOLLOWER : HS_HUB, &sv->store))) {
        if (wfd >= 0)
            close(wfd);
        goto out_server;
    }
    if (worker >= 0 && !c->redis) {
        sse_bus_pipe_options bo = SSE_BUS_PIPE_OPTIONS_INIT;
        bo.loop = &sv->loop;
        bo.fd = wfd;
        bo.max_message = bus_max(c);
        bo.on_lost = master_lost;
        bo.on_lost_data = sv;
        if (sse_bus_pipe_new(&sv->bus, &bo)) {
            close(wfd);
            goto out_server;
        }
        /* The history first, straight into the store, before the hub starts the bus. */
        if ((rc = sse_bus_pipe_load_history(sv->bus, sv->store))) {
            log_line(sv, SSE_LOG_ERROR, "cannot read the history from the master");
            goto out_server;
        }
        uint64_t relayed; /* an LMDB follower: the relay goes on from there */
        if (!sse_bus_pipe_history_position(sv->bus, &relayed) &&
            (rc = sse_store_lmdb_follow(sv->store, relayed))) {
            log_line(sv, SSE_LOG_ERROR, "the master relays positions but the store is no follower");
            goto out_server;
        }
    } else {
        if (c->redis) {
            /* One node of many: the stream's history first, straight into the store, before
               the hub starts the bus (blocking, but the loop does not run yet). */
            if (redis_bus(sv, bus_max(c)))
                goto out_server;
            if ((rc = sse_bus_redis_load_history(sv->bus, sv->store))) {
                fprintf(stderr, "ssehub serve: --redis: cannot load the history: %s\n",
                        sse_strerror(rc));
                goto out_server;
            }
        }
    }
    if (worker < 0) {
        /* Listen first: the real port gives the default resource identifier (draft-08 "aud"). */
        if ((rc = sse_server_listen(sv->server, host, port))) {
            fprintf(stderr, "ssehub serve: cannot listen on %s: %s\n", c->listen, sse_strerror(rc));
            goto out_server;
        }
        real_port = sse_server_port(sv->server);
        if (identity(sv, host, real_port, drafts))
            goto out_server;
        if (c->tls_listen && serve_listen_tls(sv, -1)) /* HTTPS beside the plain listener */
            goto out_server;
    }

    sse_hub_options ho = SSE_HUB_OPTIONS_INIT;
    ho.loop = &sv->loop;
    ho.drafts = drafts;
    ho.publisher_key = c->publisher_key;
    ho.publisher_alg = c->publisher_alg;
    ho.subscriber_key = c->subscriber_key;
    ho.subscriber_alg = c->subscriber_alg;
    ho.resource = c->resource;
    ho.issuers = (const char *const *)c->issuers; /* --issuer, repeated or a list */
    ho.n_issuers = c->n_issuers;
    ho.anonymous = c->anonymous;
    ho.publish_anonymous = c->publish_anonymous;
    ho.subscriptions = c->subscriptions;
    ho.publish_origins = c->publish_origins;
    ho.store = sv->store;
    ho.max_selectors = c->max_selectors;
    ho.max_selector_len = c->max_selector_len;
    ho.max_topics = c->max_topics;
    ho.max_update = c->max_update;
    ho.max_subscribers = c->max_subscribers;
    ho.replay_steps_max = c->replay_budget;
    ho.max_pattern_nodes = c->max_pattern_nodes;
    ho.expiry_sweep_ms = c->expiry_sweep_ms;
    ho.max_lifetime_ms = c->max_lifetime_ms;
    ho.log = log_line;
    ho.log_data = sv;
    /* Operators of the reference hub (docs/OPERATIONS.md): */
    ho.cookie_name = c->cookie_name;
    ho.no_history = c->history_count == 0; /* --history-count 0: the reference's "local" */
    if (c->publisher_jwks_url || c->subscriber_jwks_url) {
        char jerr[512];
        /* no subscriber key of its own: subscribers use the publisher's set, as with keys */
        const char *urls[2] = {c->publisher_jwks_url, c->subscriber_jwks_url
                                                          ? c->subscriber_jwks_url
                                                      : c->subscriber_key ? NULL
                                                                          : c->publisher_jwks_url};
        if (cli_jwks_new(&sv->jwks, &sv->loop, urls, c->jwks_max_bytes, log_line, sv, jerr,
                         sizeof(jerr))) {
            fprintf(stderr, "ssehub serve: %s\n", jerr);
            goto out_server;
        }
        ho.jwks_roles = cli_jwks_roles(sv->jwks);
        ho.jwks_refresh = cli_jwks_refresh;
        ho.jwks_refresh_data = sv->jwks;
        ho.jwks_refresh_min_ms = c->jwks_refresh_min_ms;
        ho.jwks_max_waiting = c->jwks_max_waiting;
        if (c->publisher_jwks_url)
            ho.publisher_key = NULL;
        if (urls[1])
            ho.subscriber_key = NULL;
    }
    if (worker >= 0) {
        snprintf(inst, sizeof(inst), "%d", worker);
        ho.instance = inst;
        ho.bus = sv->bus;
    }
    if (c->redis)
        ho.bus = sv->bus;
    if ((rc = sse_hub_new(&sv->hub, sv->server, &ho))) {
        fprintf(stderr, "ssehub serve: hub: %s (check the keys and algorithms)\n",
                sse_strerror(rc));
        goto out_server;
    }
    if (sv->jwks) {
        char jerr[512];
        if (cli_jwks_attach(sv->jwks, sv->hub, jerr, sizeof(jerr))) {
            fprintf(stderr, "ssehub serve: %s\n", jerr);
            goto out_hub;
        }
    }
    if (c->dev)
        sse_server_route(sv->server, "GET", "/.well-known/ssehub/dev-token", on_dev_token, sv);
    if (c->demo) { /* after the hub's routes: its pages take every other GET */
        struct sse_cli_demo_options dopt = {&sv->loop,
                                            sv->server,
                                            worker <= 0 ? sv->hub : NULL, /* one hub clock */
                                            c->demo_topic,
                                            !c->web,
                                            log_line,
                                            sv};
        if ((rc = sse_cli_demo_new(&sv->demo, &dopt))) {
            fprintf(stderr, "ssehub serve: --demo: %s\n", sse_strerror(rc));
            goto out_hub;
        }
    }
    if (c->web && (rc = sse_server_static(sv->server, "/", c->web))) {
        fprintf(stderr, "ssehub serve: --web %s: %s\n", c->web, sse_strerror(rc));
        goto out_hub;
    }

    /* Handlers before the banner: a SIGTERM sent as soon as `listening on` is read is a
       graceful stop. */
    uv_signal_init(&sv->loop, &sv->sigint);
    uv_signal_init(&sv->loop, &sv->sigterm);
    sv->sigint.data = sv->sigterm.data = sv;
    uv_signal_start(&sv->sigint, on_signal, SIGINT);
    uv_signal_start(&sv->sigterm, on_signal, SIGTERM);
    uv_signal_init(&sv->loop, &sv->sighup);
    sv->sighup.data = sv;
    uv_signal_start(&sv->sighup, on_sighup, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    sv->signals_on = 1;
    if (worker >= 0) {
        if ((rc = sse_server_listen(sv->server, host, port))) {
            fprintf(stderr, "ssehub serve: worker %d cannot listen on %s: %s\n", worker, c->listen,
                    sse_strerror(rc));
            goto out_hub;
        }
        if (c->tls_listen && serve_listen_tls(sv, sv->tls_port)) /* the master reserved it */
            goto out_hub;
        if (c->redis) { /* a node of the Redis group: tell the parent it listens */
            if (wfd >= 0 && write(wfd, "r", 1) != 1)
                log_line(sv, SSE_LOG_WARN, "cannot tell the parent process");
            if (wfd >= 0)
                close(wfd);
            wfd = -1;
        } else if ((rc = sse_bus_pipe_ready(sv->bus))) {
            log_line(sv, SSE_LOG_ERROR, "cannot talk to the master");
            goto out_hub;
        }
    } else {
        print_banner(sv, host, real_port);
    }

    if (worker >= 0) { /* blocked since the fork (cli_workers.h): now they stop us gracefully */
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGHUP); /* forwarded by the master: a reload (serve_reload) */
        sigprocmask(SIG_UNBLOCK, &ss, NULL);
    }
    uv_run(&sv->loop, UV_RUN_DEFAULT);
    exit_code = 0;
    log_line(sv, SSE_LOG_INFO, "stopped");

out_hub:
out_server:
    if (exit_code) { /* a start-up failure: close what was opened */
        sse_hub_close(sv->hub);
        sse_cli_demo_close(sv->demo);
        sse_bus_close(sv->bus, NULL, NULL);
        sv->bus = NULL;
        if (sv->signals_on) {
            uv_close((uv_handle_t *)&sv->sigint, closed);
            uv_close((uv_handle_t *)&sv->sigterm, closed);
            uv_close((uv_handle_t *)&sv->sighup, closed);
        }
        sse_server_close(sv->server, 0, NULL, NULL);
        uv_run(&sv->loop, UV_RUN_DEFAULT);
    }
    cli_jwks_free(sv->jwks); /* before the hub: a refresh still running finds no hub */
    sv->jwks = NULL;
    sse_hub_free(sv->hub);
    sse_server_free(sv->server);
    sse_cli_demo_free(sv->demo); /* after the server: no stream can call back */
    sv->demo = NULL;
    history_close(sv);
out_loop:
    uv_run(&sv->loop, UV_RUN_NOWAIT);
    uv_loop_close(&sv->loop);
    return exit_code;
}

static void master_log(void *ud, int level, const char *line)
{
    char l[600];
    snprintf(l, sizeof(l), "master: %s", line);
    log_line(ud, level, l);
}

static void master_ready(void *ud, int port)
{
    struct serve *sv = ud;
    print_banner(sv, sv->host, port);
}

/* The master with --store lmdb: reader slots of workers that died (SIGKILL) are cleared, or
   the pages they pinned could never be reused and the file would grow. */
static void lmdb_housekeep(void *ud)
{
    struct serve *sv = ud;
    int dead = 0;
    if (sse_store_lmdb_reader_check(sv->store, &dead) == 0 && dead > 0) {
        char line[128];
        snprintf(line, sizeof(line), "master: cleared %d stale LMDB reader slot(s)", dead);
        log_line(sv, SSE_LOG_INFO, line);
    }
}

/* The master with --store lmdb forks workers while the store's threads run: they are held where
   they hold no lock around each fork (sse_store_lmdb_fork_hold). */
static void lmdb_around_fork(void *ud, int hold)
{
    struct serve *sv = ud;
    if (hold)
        sse_store_lmdb_fork_hold(sv->store);
    else
        sse_store_lmdb_fork_release(sv->store);
}

/* --workers N: the master (cli_workers.c) reserves the port, forks, relays; each worker runs
 * run_hub. Returns the exit code (in a worker: the worker's). */
static int serve_workers(struct serve *sv, int n, const char *host, int port, int drafts)
{
    struct serve_config *c = &sv->cfg;
    char err[256];
    int real_port, widx = -1, wfd = -1, code = 1, rc;
    int rfd = sse_cli_master_reserve(host, port, &real_port, err, sizeof(err));
    if (rfd < 0) {
        fprintf(stderr, "ssehub serve: %s\n", err);
        return 1;
    }
    if (identity(sv, host, real_port, drafts)) {
        close(rfd);
        return 1;
    }
    sv->n_workers = n;
    sv->host = host;
    struct sse_cli_master_config mc;
    memset(&mc, 0, sizeof(mc));
    mc.n_workers = n;
    mc.host = host;
    mc.port = real_port;
    mc.max_message = bus_max(c);
    /* The sequencer keeps the same history as every worker (same store, same limits); with
       --store lmdb it alone writes the file, its commits coming back through mloop, which the
       master runs from its poll() loop. */
    if (!(sv->mloop = malloc(sizeof(*sv->mloop))) || (rc = uv_loop_init(sv->mloop))) {
        fprintf(stderr, "ssehub serve: %s\n", sv->mloop ? uv_strerror(rc) : "out of memory");
        free(sv->mloop);
        close(rfd);
        return 1;
    }
    if (history_store(c, sv->mloop, HS_SEQUENCER, &sv->store)) {
        uv_loop_close(sv->mloop);
        free(sv->mloop);
        close(rfd);
        return 1;
    }
    mc.store = sv->store;
    mc.loop = sv->mloop;
    mc.free_in_worker = free_store_in_worker;
    mc.free_data = sv;
    /* A new worker is handed the whole history at once (messages are a little larger than the
       entries): the bound is above it. */
    size_t hb = c->history_bytes ? c->history_bytes : (16u << 20);
    mc.queue_max = 2 * hb + 16 * mc.max_message + (8u << 20);
    mc.log = master_log;
    mc.log_data = sv;
    mc.on_ready = master_ready;
    mc.ready_data = sv;
    if (!strncmp(c->store, "lmdb:", 5)) { /* the workers follow the file (docs/WORKERS.md) */
        mc.followers = 1;
        mc.position = sse_store_lmdb_position(sv->store);
        mc.housekeep = lmdb_housekeep;
        mc.housekeep_data = sv;
        mc.around_fork = lmdb_around_fork;
    }
    if (sse_cli_master_run(&mc, rfd, &widx, &wfd, &code)) {
        fprintf(stderr, "ssehub serve: cannot start the workers: %s\n", strerror(errno));
        close(rfd);
        return 1;
    }
    if (widx >= 0) /* in a forked worker (the master's loop is the master's: left alone) */
        return run_hub(sv, host, real_port, drafts, widx, wfd);
    close(rfd);
    int closed = 0;
    sse_store_close(sv->store, flag_set, &closed);
    while (!closed && uv_run(sv->mloop, UV_RUN_ONCE))
        ;
    sv->store = NULL;
    uv_run(sv->mloop, UV_RUN_NOWAIT);
    uv_loop_close(sv->mloop);
    free(sv->mloop);
    sv->mloop = NULL;
    log_line(sv, SSE_LOG_INFO, "stopped");
    return code;
}

/* Fork worker k of serve_redis_workers: it never returns in the child. The pid, or -1. */
static pid_t fork_redis_worker(struct serve *sv, const char *host, int port, int drafts, int k,
                               int rfd, int ready_fd, int other_fd)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGCHLD);
    sigprocmask(SIG_UNBLOCK, &ss, NULL); /* SIGINT/SIGTERM: unblocked by run_hub */
    close(rfd);
    serve_release_tls(sv);
    if (other_fd >= 0)
        close(other_fd);
    exit(run_hub(sv, host, port, drafts, k, ready_fd));
}

/*
 * --workers N with --redis: every worker is simply one more node of the Redis group (its own
 * connections, its own copy of the history), all on one port with SO_REUSEPORT; no sequencer,
 * as Redis orders the updates. This process reserves the port, forks the workers, prints the
 * banner once every worker listens, restarts a worker that dies (at most one per second), and
 * on SIGINT/SIGTERM stops them all. Returns the exit code (in a worker: the worker's).
 */
static int serve_redis_workers(struct serve *sv, int n, const char *host, int port, int drafts)
{
    char err[256];
    int real_port, code = 0;
    int rfd = sse_cli_master_reserve(host, port, &real_port, err, sizeof(err));
    if (rfd < 0) {
        fprintf(stderr, "ssehub serve: %s\n", err);
        return 1;
    }
    if (identity(sv, host, real_port, drafts)) {
        close(rfd);
        return 1;
    }
    sv->n_workers = n;
    pid_t *pids = calloc((size_t)n, sizeof(*pids));
    int ready[2];
    sigset_t ss, old;
    sigemptyset(&ss);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGCHLD);
    sigaddset(&ss, SIGHUP); /* forwarded: every worker reloads (TLS certificate, log level) */
    if (!pids || pipe(ready)) {
        free(pids);
        close(rfd);
        return 1;
    }
    sigprocmask(SIG_BLOCK, &ss, &old); /* taken with sigtimedwait below */
    for (int k = 0; k < n; k++)
        pids[k] = fork_redis_worker(sv, host, real_port, drafts, k, rfd, ready[1], ready[0]);
    close(ready[1]);
    int up = 0;
    char ch;
    while (up < n && read(ready[0], &ch, 1) == 1) /* EOF: every worker wrote or exited */
        up++;
    close(ready[0]);
    if (up == n) {
        print_banner(sv, host, real_port);
    } else {
        fprintf(stderr, "ssehub serve: %d of %d workers started\n", up, n);
        code = 1;
    }
    int stopping = up != n;
    if (stopping)
        for (int k = 0; k < n; k++)
            if (pids[k] > 0)
                kill(pids[k], SIGTERM);
    long long last_restart = 0;
    for (;;) {
        int alive = 0;
        for (int k = 0; k < n; k++)
            alive += pids[k] > 0;
        if (!alive)
            break;
        struct timespec ts = {1, 0};
        siginfo_t si;
        int sig = sigtimedwait(&ss, &si, &ts);
        if (sig == SIGHUP && !stopping) {
            log_line(sv, SSE_LOG_INFO, "SIGHUP: every worker reloads");
            for (int k = 0; k < n; k++)
                if (pids[k] > 0)
                    kill(pids[k], SIGHUP);
        }
        if ((sig == SIGINT || sig == SIGTERM) && !stopping) {
            stopping = 1;
            log_line(sv, SSE_LOG_INFO,
                     sig == SIGINT ? "SIGINT: stopping the workers"
                                   : "SIGTERM: stopping the workers");
            for (int k = 0; k < n; k++)
                if (pids[k] > 0)
                    kill(pids[k], SIGTERM);
        }
        int st;
        pid_t pid;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
            for (int k = 0; k < n; k++) {
                if (pids[k] != pid)
                    continue;
                pids[k] = 0;
                if (stopping)
                    break;
                char line[96];
                snprintf(line, sizeof(line), "worker %d exited (status %d): restarting", k,
                         WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
                log_line(sv, SSE_LOG_WARN, line);
                long long now = (long long)time(NULL);
                if (now == last_restart)
                    sleep(1); /* at most one restart a second */
                last_restart = (long long)time(NULL);
                pids[k] = fork_redis_worker(sv, host, real_port, drafts, k, rfd, -1, -1);
                if (pids[k] < 0)
                    pids[k] = 0;
            }
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(rfd);
    free(pids);
    log_line(sv, SSE_LOG_INFO, "stopped");
    return code;
}

int sse_cli_serve(int argc, char **argv)
{
    struct serve sv;
    char err[512];
    int rc, exit_code = 1;
    char *host = NULL;
    int port;
    char devkey[65];

    memset(&sv, 0, sizeof(sv));
    sv.worker = -1;
    sv.tls_rfd = -1;
    rc = serve_config_load(&sv.cfg, argc, argv, real_getenv, stdout, err, sizeof(err));
    if (rc == 1) {
        serve_config_free(&sv.cfg);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "ssehub serve: %s\n", err);
        serve_config_free(&sv.cfg);
        return 2;
    }
    struct serve_config *c = &sv.cfg;
    sv.log_level = parse_log_level(c->log_level);
    /* for SIGHUP: the sources again, and the settings as they read now */
    sv.argc = argc;
    sv.argv = argv;
    if (serve_config_load(&sv.loaded, argc, argv, real_getenv, stdout, err, sizeof(err))) {
        fprintf(stderr, "ssehub serve: %s\n", err);
        serve_config_free(&sv.loaded);
        serve_config_free(&sv.cfg);
        return 2;
    }
    int drafts = !strcmp(c->protocol, "draft-07")   ? SSE_HUB_DRAFT_07
                 : !strcmp(c->protocol, "draft-08") ? SSE_HUB_DRAFT_08
                                                    : SSE_HUB_DRAFT_BOTH;

    if (key_from_file(&c->publisher_key) || key_from_file(&c->subscriber_key)) {
        serve_config_free(&sv.cfg);
        serve_config_free(&sv.loaded);
        return 2;
    }
    if (c->publisher_jwks_url && c->publisher_key) {
        fprintf(stderr, "ssehub serve: --publisher-jwt-key and --publisher-jwks-url exclude each "
                        "other\n");
        serve_config_free(&sv.cfg);
        serve_config_free(&sv.loaded);
        return 2;
    }
    if (c->subscriber_jwks_url && c->subscriber_key) {
        fprintf(stderr, "ssehub serve: --subscriber-jwt-key and --subscriber-jwks-url exclude "
                        "each other\n");
        serve_config_free(&sv.cfg);
        serve_config_free(&sv.loaded);
        return 2;
    }
    sv.log_json = !strcmp(c->log_format, "json");
    if (!c->publisher_key && !c->publisher_jwks_url && !c->publish_anonymous) {
        if (!c->dev) {
            fprintf(stderr,
                    "ssehub serve: no publisher key configured: set --publisher-jwt-key (or "
                    "MERCURE_PUBLISHER_JWT_KEY), or use --dev / --demo for a development key, "
                    "or --publish-anonymous on a trusted network\n");
            serve_config_free(&sv.cfg);
            serve_config_free(&sv.loaded);
            return 2;
        }
        if (random_key(devkey)) {
            fprintf(stderr, "ssehub serve: no randomness for a development key\n");
            serve_config_free(&sv.cfg);
            serve_config_free(&sv.loaded);
            return 1;
        }
        c->publisher_key = strdup(devkey);
        free(c->publisher_alg);
        c->publisher_alg = strdup("HS256");
        if (!c->publisher_key || !c->publisher_alg) {
            serve_config_free(&sv.cfg);
            serve_config_free(&sv.loaded);
            return 1;
        }
    }
    if (c->dev && strcasecmp(c->publisher_alg ? c->publisher_alg : "HS256", "HS256")) {
        fprintf(stderr, "ssehub serve: --dev tokens need an HS256 key\n");
        serve_config_free(&sv.cfg);
        serve_config_free(&sv.loaded);
        return 2;
    }

    size_t nw = c->workers;
    if (nw == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nw = n > 0 ? (size_t)n : 1;
    }
    if (nw > 1024) {
        fprintf(stderr, "ssehub serve: --workers %zu: at most 1024\n", nw);
        serve_config_free(&sv.cfg);
        serve_config_free(&sv.loaded);
        return 2;
    }
    if (c->history_count == 0 && (nw > 1 || c->redis)) {
        /* the master's and Redis's copies would still hand a history to new workers / nodes */
        fprintf(stderr, "ssehub serve: --history-count 0 (no history) is for one process: not "
                        "with --workers or --redis\n");
        serve_config_free(&sv.cfg);
        serve_config_free(&sv.loaded);
        return 2;
    }
    if (serve_parse_listen(c->listen, &host, &port)) {
        fprintf(stderr, "ssehub serve: cannot listen on %s: %s\n", c->listen,
                sse_strerror(SSE_EINVAL));
        goto out;
    }
    if (nw > 1 && serve_reserve_tls(&sv)) /* every worker listens on it (serve_listen_tls) */
        goto out;
    if (nw > 1 && c->redis)
        exit_code = serve_redis_workers(&sv, (int)nw, host, port, drafts);
    else if (nw > 1)
        exit_code = serve_workers(&sv, (int)nw, host, port, drafts);
    else
        exit_code = run_hub(&sv, host, port, drafts, -1, -1);
out:
    serve_release_tls(&sv);
    free(host);
    free(sv.dev_pub_token);
    free(sv.dev_sub_token);
    serve_config_free(&sv.cfg);
    serve_config_free(&sv.loaded);
    return exit_code;
}
