/*
 * cli_serve_config.c: the settings table of `ssehub serve` and its three sources (flags,
 * environment, config file). See cli_serve_config.h. Plain libc: this is CLI code, not libsse.
 */
#include "cli_serve_config.h"

#include "cli_help.h"

#include <ctype.h>
#include <errno.h>
#include <sse/server.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* T_LIST: a string holding a comma-separated list; the flag (or config key) may be given several
   times, each adding to the list (a higher-precedence source still replaces it as a whole). */
enum { T_STR, T_BOOL, T_SIZE, T_MS, T_LIST };

struct setting {
    const char *name; /* flag without "--" and config key */
    const char *env;  /* primary environment variable */
    const char *env2; /* an alias (the reference hub's names), or NULL */
    int type;
    const char *def; /* default as text (NULL = unset) */
    size_t off;      /* offset in struct serve_config */
    const char *help;
};

#define OFF(f) offsetof(struct serve_config, f)

static const struct setting settings[] = {
    {"config", "SSEHUB_CONFIG", NULL, T_STR, NULL, (size_t)-1,
     "read settings from FILE (key = value lines)"},
    {"listen", "SSEHUB_LISTEN", NULL, T_STR, "127.0.0.1:8080", OFF(listen),
     "address to listen on: HOST:PORT, [IPv6]:PORT; port 0 picks a free port"},
    {"publisher-jwt-key", "MERCURE_PUBLISHER_JWT_KEY", "MERCURE_JWT_KEY", T_STR, NULL,
     OFF(publisher_key),
     "publisher JWT key: HMAC secret, or PEM public key for RS256/ES256; @FILE reads a file"},
    {"publisher-jwt-alg", "MERCURE_PUBLISHER_JWT_ALG", "MERCURE_JWT_ALG", T_STR, "HS256",
     OFF(publisher_alg),
     "publisher JWT algorithm: HS256 HS384 HS512 RS256 ES256 EdDSA (and RS/ES 384, 512)"},
    {"subscriber-jwt-key", "MERCURE_SUBSCRIBER_JWT_KEY", "MERCURE_JWT_KEY", T_STR, NULL,
     OFF(subscriber_key), "subscriber JWT key (default: the publisher's); @FILE reads a file"},
    {"subscriber-jwt-alg", "MERCURE_SUBSCRIBER_JWT_ALG", "MERCURE_JWT_ALG", T_STR, NULL,
     OFF(subscriber_alg), "subscriber JWT algorithm (default: the publisher's)"},
    {"resource", "SSEHUB_RESOURCE", NULL, T_STR, NULL, OFF(resource),
     "draft-08 resource identifier, the \"aud\" draft-08 tokens must carry "
     "(default: http://LISTEN/.well-known/mercure with the real port)"},
    {"issuer", "SSEHUB_ISSUER", NULL, T_LIST, NULL, OFF(issuer),
     "accepted \"iss\" of tokens (unset: not checked); repeat the flag, or give a "
     "comma-separated list, to accept several (issuer rotation, migration)"},
    {"protocol", "SSEHUB_PROTOCOL", NULL, T_STR, "both", OFF(protocol),
     "Mercure generation spoken: draft-07, draft-08 or both"},
    {"anonymous", "SSEHUB_ANONYMOUS", NULL, T_BOOL, "false", OFF(anonymous),
     "accept subscribers without a token (public updates only); on with --demo/--dev"},
    {"subscriptions", "SSEHUB_SUBSCRIPTIONS", NULL, T_BOOL, "false", OFF(subscriptions),
     "publish subscription events and serve the subscriptions API"},
    {"cors-origins", "SSEHUB_CORS_ORIGINS", "MERCURE_CORS_ORIGINS", T_STR, NULL, OFF(cors_origins),
     "origins allowed by CORS (space/comma list or *); credentials allowed"},
    {"publish-origins", "SSEHUB_PUBLISH_ORIGINS", "MERCURE_PUBLISH_ORIGINS", T_STR, NULL,
     OFF(publish_origins), "origins allowed to publish with a cookie token (list or *)"},
    {"publish-anonymous", "SSEHUB_PUBLISH_ANONYMOUS", NULL, T_BOOL, "false", OFF(publish_anonymous),
     "publish without a token (trusted private networks only!)"},
    {"heartbeat", "SSEHUB_HEARTBEAT", NULL, T_MS, "15s", OFF(heartbeat_ms),
     "comment sent on idle streams every so often (0 = off)"},
    {"write-timeout", "SSEHUB_WRITE_TIMEOUT", NULL, T_MS, "30s", OFF(write_timeout_ms),
     "close a stream whose queued bytes make no progress for this long"},
    {"queue-max", "SSEHUB_QUEUE_MAX", NULL, T_SIZE, "4M", OFF(queue_max),
     "bytes queued per subscriber before it is disconnected as too slow"},
    {"history-count", "SSEHUB_HISTORY_COUNT", NULL, T_SIZE, "1000", OFF(history_count),
     "updates kept for replay (Last-Event-ID)"},
    {"history-bytes", "SSEHUB_HISTORY_BYTES", NULL, T_SIZE, "16M", OFF(history_bytes),
     "bytes kept for replay"},
    {"history-age", "SSEHUB_HISTORY_AGE", NULL, T_MS, "0", OFF(history_age_ms),
     "updates older than this are dropped from the history (0 = no age limit)"},
    {"store", "SSEHUB_STORE", NULL, T_STR, "memory", OFF(store),
     "where the history lives: memory, or lmdb:DIR (durable; docs/OPERATIONS.md)"},
    {"store-sync", "SSEHUB_STORE_SYNC", NULL, T_STR, "sync", OFF(store_sync),
     "lmdb: sync (flush every commit) or nosync (a power cut may lose the last second)"},
    {"store-map-size", "SSEHUB_STORE_MAP_SIZE", NULL, T_SIZE, "0", OFF(store_map_size),
     "lmdb: the file's size bound (0 = 4 x --history-bytes + 64M)"},
    {"max-selectors", "SSEHUB_MAX_SELECTORS", NULL, T_SIZE, "64", OFF(max_selectors),
     "selectors per subscribe request (more: 400)"},
    {"max-selector-length", "SSEHUB_MAX_SELECTOR_LENGTH", NULL, T_SIZE, "1024",
     OFF(max_selector_len), "bytes per selector or topic (longer: 400 / 413)"},
    {"max-topics", "SSEHUB_MAX_TOPICS", NULL, T_SIZE, "16", OFF(max_topics),
     "topics per update, draft-07 (more: 413)"},
    {"max-body", "SSEHUB_MAX_BODY", NULL, T_SIZE, "1M", OFF(max_body),
     "bytes of a request body (more: 413)"},
    {"max-update", "SSEHUB_MAX_UPDATE", NULL, T_SIZE, "1M", OFF(max_update),
     "bytes of data + id + type of one update (more: 413)"},
    {"max-subscribers", "SSEHUB_MAX_SUBSCRIBERS", NULL, T_SIZE, "0", OFF(max_subscribers),
     "concurrent subscribers, 0 = unlimited (more: 429)"},
    {"replay-budget", "SSEHUB_REPLAY_BUDGET", NULL, T_SIZE, "16M", OFF(replay_budget),
     "selector-matching steps one Last-Event-ID replay may spend (more: 429); replays run in "
     "slices either way"},
    {"max-pattern-nodes", "SSEHUB_MAX_PATTERN_NODES", NULL, T_SIZE, "256K", OFF(max_pattern_nodes),
     "automaton nodes of all distinct selector patterns in use (memory and matching cost); a "
     "new pattern past it: 429"},
    {"max-connections", "SSEHUB_MAX_CONNECTIONS", NULL, T_SIZE, "0", OFF(max_connections),
     "concurrent TCP connections per process, 0 = the open-file limit less 64 (more: 503)"},
    {"max-buffered", "SSEHUB_MAX_BUFFERED", NULL, T_SIZE, "64M", OFF(max_buffered),
     "bytes of unfinished requests held for all connections together (more: 503)"},
    {"workers", "SSEHUB_WORKERS", NULL, T_SIZE, "1", OFF(workers),
     "worker processes sharing the port, in one global update order (0 = one per CPU)"},
    {"expiry-sweep", "SSEHUB_EXPIRY_SWEEP", NULL, T_MS, "250ms", OFF(expiry_sweep_ms),
     "how often streams of expired tokens are looked for (closed before exp)"},
    {"max-lifetime", "SSEHUB_MAX_LIFETIME", NULL, T_MS, "0", OFF(max_lifetime_ms),
     "close streams older than this, 0 = never (clients reconnect with Last-Event-ID)"},
    {"shutdown-timeout", "SSEHUB_SHUTDOWN_TIMEOUT", NULL, T_MS, "5s", OFF(shutdown_timeout_ms),
     "graceful shutdown budget on SIGINT/SIGTERM"},
    {"redis", "SSEHUB_REDIS", NULL, T_STR, NULL, OFF(redis),
     "redis://[user:pass@]HOST:PORT[/DB]: this hub is one node of many sharing the updates and "
     "the history through a Redis Stream; several URLs (comma-separated) shard topics over "
     "several Redis instances (docs/REDIS.md)"},
    {"redis-key", "SSEHUB_REDIS_KEY", NULL, T_STR, "ssehub:updates", OFF(redis_key),
     "the Redis Stream key (with several --redis URLs: the prefix of KEY:0, KEY:1...)"},
    {"redis-cluster", "SSEHUB_REDIS_CLUSTER", NULL, T_BOOL, "false", OFF(redis_cluster),
     "the --redis URLs are seed nodes of a Redis Cluster: topics hash to --redis-shards stream "
     "keys KEY:{i}, each on the master owning its slot (MOVED followed)"},
    {"redis-shards", "SSEHUB_REDIS_SHARDS", NULL, T_SIZE, "16", OFF(redis_shards),
     "stream keys over a Redis Cluster (the same on every node)"},
    {"redis-presence-ttl", "SSEHUB_REDIS_PRESENCE_TTL", NULL, T_MS, "15s",
     OFF(redis_presence_ttl_ms),
     "with --subscriptions: how long a node's subscriptions stay listed by the other nodes after "
     "its last refresh (every third of this), i.e. after it died"},
    {"tls-listen", "SSEHUB_TLS_LISTEN", NULL, T_STR, NULL, OFF(tls_listen),
     "address of an HTTPS listener beside --listen: HOST:PORT (needs --tls-cert, --tls-key)"},
    {"tls-cert", "SSEHUB_TLS_CERT", NULL, T_STR, NULL, OFF(tls_cert),
     "PEM file: the certificate, then its chain; re-read on SIGHUP"},
    {"tls-key", "SSEHUB_TLS_KEY", NULL, T_STR, NULL, OFF(tls_key),
     "PEM file: the certificate's private key; re-read on SIGHUP"},
    {"tls-handshake-timeout", "SSEHUB_TLS_HANDSHAKE_TIMEOUT", NULL, T_MS, "10s",
     OFF(tls_handshake_ms), "close a TLS connection whose handshake takes longer"},
    {"tls-keep-buffers", "SSEHUB_TLS_KEEP_BUFFERS", NULL, T_BOOL, "false", OFF(tls_keep_buffers),
     "keep OpenSSL's record buffers on idle TLS connections (more memory, fewer allocations)"},
    {"tls-overlimit-handshakes", "SSEHUB_TLS_OVERLIMIT_HANDSHAKES", NULL, T_SIZE, "32",
     OFF(tls_overlimit_handshakes),
     "past --max-connections: TLS connections handshaking at once to be answered 503, as plain "
     "ones are (more are closed at accept)"},
    {"web", "SSEHUB_WEB", NULL, T_STR, NULL, OFF(web), "serve the static files of DIR at /"},
    {"demo", "SSEHUB_DEMO", NULL, T_BOOL, "false", OFF(demo),
     "the demo: its pages (built in; --web DIR serves a folder instead) at /, the classic "
     "streams /clock and /oneshot, and the server time every second on --demo-topic (and an "
     "extra myEvent every 5th); implies --dev"},
    {"demo-topic", "SSEHUB_DEMO_TOPIC", NULL, T_STR, "/demo/clock", OFF(demo_topic),
     "topic of the --demo publisher"},
    {"dev", "SSEHUB_DEV", NULL, T_BOOL, "false", OFF(dev),
     "development mode: a random key and tokens printed at start, GET "
     "/.well-known/ssehub/dev-token"},
    {"access-log", "SSEHUB_ACCESS_LOG", NULL, T_BOOL, "false", OFF(access_log),
     "log one line per request and closed stream"},
    {"log-level", "SSEHUB_LOG_LEVEL", NULL, T_STR, "info", OFF(log_level),
     "error, warn, info or debug"},
    /* HTTP/2 */
    {"h2c", "SSEHUB_H2C", NULL, T_BOOL, "false", OFF(h2c),
     "plain listeners also speak HTTP/2 by prior knowledge (a client that starts with the "
     "HTTP/2 preface, e.g. curl --http2-prior-knowledge); HTTP/1.1 keeps working"},
    {"h2", "SSEHUB_H2", NULL, T_BOOL, "true", OFF(h2),
     "the TLS listener offers HTTP/2 by ALPN (browsers then share one connection between all the "
     "EventSources of a page); clients without it keep HTTP/1.1"},
    {"h2-max-streams", "SSEHUB_H2_MAX_STREAMS", NULL, T_SIZE, "100", OFF(h2_max_streams),
     "HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS; more are refused)"},
    /* Operators of the reference hub (issue 14; docs/OPERATIONS.md "Coming from the reference
       hub"): */
    {"publisher-jwks-url", "SSEHUB_PUBLISHER_JWKS_URL", "MERCURE_PUBLISHER_JWKS_URL", T_STR, NULL,
     OFF(publisher_jwks_url),
     "publisher keys from a JSON Web Key Set: https://, http:// or file:// URL; tokens pick "
     "their key by \"kid\" (RSA, EC, Ed25519)"},
    {"subscriber-jwks-url", "SSEHUB_SUBSCRIBER_JWKS_URL", "MERCURE_SUBSCRIBER_JWKS_URL", T_STR,
     NULL, OFF(subscriber_jwks_url), "subscriber keys from a JSON Web Key Set (as above)"},
    {"jwks-refresh-min", "SSEHUB_JWKS_REFRESH_MIN", NULL, T_MS, "5s", OFF(jwks_refresh_min_ms),
     "a token with an unknown kid refetches the key set at most this often"},
    {"jwks-max-bytes", "SSEHUB_JWKS_MAX_BYTES", NULL, T_SIZE, "64K", OFF(jwks_max_bytes),
     "largest JSON Web Key Set document accepted"},
    {"jwks-max-waiting", "SSEHUB_JWKS_MAX_WAITING", NULL, T_SIZE, "1024", OFF(jwks_max_waiting),
     "requests per role that may wait for the refetch their unknown kid caused (more: 401)"},
    {"cookie-name", "SSEHUB_COOKIE_NAME", "MERCURE_COOKIE_NAME", T_STR, NULL, OFF(cookie_name),
     "the cookie carrying the token (unset: mercureAuthorization and the drafts' other names)"},
    {"log-format", "SSEHUB_LOG_FORMAT", NULL, T_STR, "text", OFF(log_format),
     "text, or json (one JSON object per line: time, level, worker, msg)"},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* The unsigned decimal at the start of s (no minus sign); *end points past it. 0 or -1. */
static int parse_leading_uint(const char *s, unsigned long long *v, char **end)
{
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    *v = strtoull(s, end, 10);
    return errno || *end == s ? -1 : 0;
}

int serve_parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v;
    if (parse_leading_uint(s, &v, &end))
        return -1;
    unsigned shift = 0;
    if (*end) {
        switch (toupper((unsigned char)*end)) {
        case 'K':
            shift = 10;
            break;
        case 'M':
            shift = 20;
            break;
        case 'G':
            shift = 30;
            break;
        default:
            return -1;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'B' || *end == 'b')
            end++;
        if (*end)
            return -1;
    }
    if (v > (((unsigned long long)SIZE_MAX) >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

int serve_parse_ms(const char *s, unsigned *out)
{
    char *end;
    unsigned long long v;
    if (parse_leading_uint(s, &v, &end))
        return -1;
    unsigned long long mul = 1;
    if (!strcmp(end, "") || !strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else
        return -1;
    if (v > 0xFFFFFFFFull / mul)
        return -1;
    *out = (unsigned)(v * mul);
    return 0;
}

int serve_parse_listen(const char *s, char **host, int *port)
{
    char h[256];
    if (sse_split_host_port(s, h, sizeof(h), port))
        return -1;
    *host = strdup(h);
    return *host ? 0 : -1;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
        !strcasecmp(v, "on")) {
        *out = 1;
        return 0;
    }
    if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
        !strcasecmp(v, "off")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* The reference hub's names (its Caddyfile directives) where the meaning is ours too; a flag or
   config key in either spelling. Its write_timeout is not here: it is a maximum connection age
   (our --max-lifetime), while our --write-timeout is its dispatch_timeout. */
static const struct {
    const char *alias, *name;
} aliases[] = {
    {"resource-identifier", "resource"},
    {"max-request-body-size", "max-body"},
    {"dispatch-timeout", "write-timeout"},
    {"publisher-jwks-uri", "publisher-jwks-url"},
    {"subscriber-jwks-uri", "subscriber-jwks-url"},
};

static const struct setting *find_name(const char *name, size_t len);

/* Find a setting by flag / key name ('-' and '_' alike), or by an alias of it. */
static const struct setting *find(const char *name, size_t len)
{
    const struct setting *s = find_name(name, len);
    for (size_t i = 0; !s && i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        const char *a = aliases[i].alias;
        size_t k = 0;
        while (k < len && a[k] && (a[k] == name[k] || (a[k] == '-' && name[k] == '_')))
            k++;
        if (k == len && !a[k])
            s = find_name(aliases[i].name, strlen(aliases[i].name));
    }
    return s;
}

static const struct setting *find_name(const char *name, size_t len)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *n = settings[i].name;
        if (strlen(n) != len)
            continue;
        size_t k = 0;
        while (k < len && (n[k] == name[k] || (n[k] == '-' && name[k] == '_')))
            k++;
        if (k == len)
            return &settings[i];
    }
    return NULL;
}

/* Apply one textual value; append: a list setting given again in the same source grows. */
static int apply(struct serve_config *c, const struct setting *s, const char *v, char *err,
                 size_t errlen, const char *src, int append)
{
    if (s->off == (size_t)-1)
        return 0;
    char *p = (char *)c + s->off;
    if (s->type == T_LIST && append && *(char **)p) {
        char **dst = (char **)p;
        size_t a = strlen(*dst), b = strlen(v);
        char *d = malloc(a + 1 + b + 1);
        if (!d) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        memcpy(d, *dst, a);
        d[a] = ',';
        memcpy(d + a + 1, v, b + 1);
        free(*dst);
        *dst = d;
        return 0;
    }
    switch (s->type) {
    case T_LIST: /* the first value of a source replaces what a lower one set */
    case T_STR: {
        char **dst = (char **)p;
        char *d = strdup(v);
        if (!d) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(*dst);
        *dst = d;
        return 0;
    }
    case T_BOOL:
        if (parse_bool(v, (int *)p) == 0) {
            if (!strcmp(s->name, "anonymous"))
                c->anonymous_set = 1;
            return 0;
        }
        break;
    case T_SIZE:
        if (serve_parse_size(v, (size_t *)p) == 0)
            return 0;
        break;
    case T_MS:
        if (serve_parse_ms(v, (unsigned *)p) == 0)
            return 0;
        break;
    }
    snprintf(err, errlen, "%s: invalid value '%s' for %s", src, v, s->name);
    return -1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static int load_file(struct serve_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[8192];
    int lineno = 0, rc = 0;
    unsigned char seen[NSETTINGS] = {0}; /* list keys given twice add up */
    while (!rc && fgets(line, sizeof(line), f)) {
        lineno++;
        char *l = trim(line);
        if (!*l || *l == '#')
            continue;
        char *eq = strchr(l, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *k = trim(l), *v = trim(eq + 1);
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
            v[vl - 1] = '\0';
            v++;
        }
        const struct setting *s = find(k, strlen(k));
        if (!s || s->off == (size_t)-1) {
            snprintf(err, errlen, "%s:%d: unknown setting '%s'", path, lineno, k);
            rc = -1;
            break;
        }
        char src[64];
        snprintf(src, sizeof(src), "config line %d", lineno);
        rc = apply(c, s, v, err, errlen, src, seen[s - settings]);
        seen[s - settings] = 1;
    }
    fclose(f);
    return rc;
}

/* What --help says before and after the settings (and the man page ssehub-serve(1) too). */
static const char serve_description[] =
    "Run a Mercure hub (draft-07 and draft-08) with its demo pages.\n"
    "Every option is also an environment variable and a config-file key\n"
    "(precedence: flag > environment > config file > default).";
static const char serve_notes[] =
    "Sizes take K/M/G suffixes (binary); durations ms/s/m/h (plain numbers are ms).\n"
    "Without --demo or --dev, a publisher key is required.";

/* The argument a setting's flag takes, with its leading space ("" for a switch). */
static const char *setting_arg(const struct setting *s)
{
    return s->type == T_BOOL   ? ""
           : s->type == T_SIZE ? " N"
           : s->type == T_MS   ? " DURATION"
                               : " VALUE";
}

void serve_config_help(FILE *out)
{
    fprintf(out, "usage: ssehub serve [options]\n\n%s\n\n", serve_description);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        const char *arg = setting_arg(s);
        fprintf(out, "  --%s%s\n      %s\n      env %s%s%s; default: %s\n", s->name, arg, s->help,
                s->env, s->env2 ? " or " : "", s->env2 ? s->env2 : "", s->def ? s->def : "(unset)");
    }
    fprintf(out, "  --help\n      this text\n\n%s\n", serve_notes);
}

void serve_config_free(struct serve_config *c)
{
    for (size_t i = 0; i < c->n_issuers; i++)
        free(c->issuers[i]);
    free(c->issuers);
    c->issuers = NULL;
    c->n_issuers = 0;
    for (size_t i = 0; i < NSETTINGS; i++)
        if ((settings[i].type == T_STR || settings[i].type == T_LIST) &&
            settings[i].off != (size_t)-1) {
            char **p = (char **)((char *)c + settings[i].off);
            free(*p);
            *p = NULL;
        }
}

void serve_config_diff(const struct serve_config *a, const struct serve_config *b,
                       void (*fn)(const char *name, void *ud), void *ud)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *st = &settings[i];
        if (st->off == (size_t)-1)
            continue;
        const char *pa = (const char *)a + st->off, *pb = (const char *)b + st->off;
        int differ;
        switch (st->type) {
        case T_STR:
        case T_LIST: {
            const char *x = *(char *const *)pa, *y = *(char *const *)pb;
            differ = (x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0);
            break;
        }
        case T_BOOL:
            differ = *(const int *)pa != *(const int *)pb;
            break;
        case T_SIZE:
            differ = *(const size_t *)pa != *(const size_t *)pb;
            break;
        default:
            differ = *(const unsigned *)pa != *(const unsigned *)pb;
            break;
        }
        if (differ)
            fn(st->name, ud);
    }
}

/* Split a comma-separated list into *out (n entries, each malloc'd, spaces around them
   trimmed). 0; -1 on an empty entry or out of memory (nothing left allocated). */
static int split_list(const char *v, char ***out, size_t *n)
{
    size_t cap = 1;
    for (const char *p = v; *p; p++)
        cap += *p == ',';
    char **items = calloc(cap, sizeof(*items));
    size_t k = 0;
    if (!items)
        return -1;
    for (const char *p = v;; p++) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e == p || !(items[k] = strndup(p, (size_t)(e - p))))
            goto out_fail;
        k++;
        if (!*end)
            break;
        p = end;
    }
    *out = items;
    *n = k;
    return 0;
out_fail:
    while (k)
        free(items[--k]);
    free(items);
    return -1;
}

int serve_config_load(struct serve_config *c, int argc, char **argv, serve_getenv_fn env, FILE *out,
                      char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    err[0] = '\0';
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].def && apply(c, &settings[i], settings[i].def, err, errlen, "default", 0))
            return 2;
    c->anonymous_set = 0;

    /* The config file first (from the command line, else the environment). */
    const char *cfg = env ? env("SSEHUB_CONFIG") : NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            serve_config_help(out);
            return 1;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            cfg = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            cfg = argv[i] + 9;
    }
    if (cfg && *cfg && load_file(c, cfg, err, errlen))
        return 2;

    /* Environment. */
    for (size_t i = 0; env && i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        const char *v = env(s->env);
        if (!v && s->env2)
            v = env(s->env2);
        if (v && apply(c, s, v, err, errlen, s->env, 0))
            return 2;
    }

    /* Command line. */
    unsigned char seen[NSETTINGS] = {0}; /* list flags given twice add up */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see ssehub serve --help)", a);
            return 2;
        }
        a += 2;
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        const struct setting *s = find(a, nl);
        int negated = 0;
        if (!s && nl > 3 && !strncmp(a, "no-", 3)) {
            s = find(a + 3, nl - 3);
            negated = s && s->type == T_BOOL;
            if (!negated)
                s = NULL;
        }
        if (!s) {
            snprintf(err, errlen, "unknown option '--%.*s' (see ssehub serve --help)", (int)nl, a);
            return 2;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (s->type == T_BOOL) {
            v = negated ? "false" : "true";
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            snprintf(err, errlen, "option --%s needs a value", s->name);
            return 2;
        }
        if (apply(c, s, v, err, errlen, "command line", seen[s - settings]))
            return 2;
        seen[s - settings] = 1;
    }

    if (strcmp(c->protocol, "draft-07") && strcmp(c->protocol, "draft-08") &&
        strcmp(c->protocol, "both")) {
        snprintf(err, errlen, "--protocol must be draft-07, draft-08 or both, not '%s'",
                 c->protocol);
        return 2;
    }
    if (strcmp(c->store, "memory") && (strncmp(c->store, "lmdb:", 5) || !c->store[5])) {
        snprintf(err, errlen, "--store must be memory or lmdb:DIR, not '%s'", c->store);
        return 2;
    }
    if (strcmp(c->store_sync, "sync") && strcmp(c->store_sync, "nosync")) {
        snprintf(err, errlen, "--store-sync must be sync or nosync, not '%s'", c->store_sync);
        return 2;
    }
    if (strcmp(c->log_format, "text") && strcmp(c->log_format, "json")) {
        snprintf(err, errlen, "--log-format must be text or json, not '%s'", c->log_format);
        return 2;
    }
    if (!c->jwks_max_waiting) {
        snprintf(err, errlen, "--jwks-max-waiting must be at least 1");
        return 2;
    }
    const char *jwks[2] = {c->publisher_jwks_url, c->subscriber_jwks_url};
    for (int i = 0; i < 2; i++)
        if (jwks[i] && strncmp(jwks[i], "https://", 8) && strncmp(jwks[i], "http://", 7) &&
            strncmp(jwks[i], "file://", 7)) {
            snprintf(err, errlen, "--%s-jwks-url must be an https://, http:// or file:// URL",
                     i ? "subscriber" : "publisher");
            return 2;
        }
    char *h;
    int port;
    if (serve_parse_listen(c->listen, &h, &port)) {
        snprintf(err, errlen, "--listen: expected HOST:PORT or [IPv6]:PORT, got '%s'", c->listen);
        return 2;
    }
    free(h);
    if (c->tls_listen || c->tls_cert || c->tls_key) {
        if (!c->tls_listen || !c->tls_cert || !c->tls_key) {
            snprintf(err, errlen, "TLS needs all of --tls-listen, --tls-cert and --tls-key");
            return 2;
        }
        if (serve_parse_listen(c->tls_listen, &h, &port)) {
            snprintf(err, errlen, "--tls-listen: expected HOST:PORT or [IPv6]:PORT, got '%s'",
                     c->tls_listen);
            return 2;
        }
        free(h);
    }
    if (c->issuer && split_list(c->issuer, &c->issuers, &c->n_issuers)) {
        snprintf(err, errlen, "--issuer: an empty issuer in '%s' (a comma-separated list)",
                 c->issuer);
        return 2;
    }
    if (c->demo)
        c->dev = 1;
    if (c->dev && !c->anonymous_set)
        c->anonymous = 1;
    return 0;
}

/*
 * The settings table as a help table (cli_help.h), for the man page ssehub-serve(1) and the bash
 * completion: the same flags, arguments, environment variables and defaults as
 * serve_config_help() prints, built once from the table above.
 */
const struct cli_help *serve_config_help_table(const char *summary)
{
    static struct cli_option opts[NSETTINGS + 2];
    static char pool[NSETTINGS * 320];
    static struct cli_help help;
    size_t used = 0;

    if (help.name)
        return &help;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        char *flag = pool + used, *text;
        int n = snprintf(flag, sizeof(pool) - used, "--%s", s->name);
        if (n < 0 || (size_t)n >= sizeof(pool) - used)
            abort(); /* the pool is sized for the table: a longer text needs a larger pool */
        used += (size_t)n + 1;
        text = pool + used;
        n = snprintf(text, sizeof(pool) - used, "%s\n(env %s%s%s; default: %s)", s->help, s->env,
                     s->env2 ? " or " : "", s->env2 ? s->env2 : "", s->def ? s->def : "(unset)");
        if (n < 0 || (size_t)n >= sizeof(pool) - used)
            abort();
        used += (size_t)n + 1;
        opts[i] = (struct cli_option){flag, s->type == T_BOOL ? NULL : setting_arg(s) + 1, text};
    }
    opts[NSETTINGS] = (struct cli_option){"-h, --help", NULL, "this text"};
    help = (struct cli_help){
        "serve", summary, "[options]", serve_description, opts, serve_notes, NULL,
    };
    return &help;
}
