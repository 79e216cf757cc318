/*
 * cli_serve_config.h: the settings of `ssehub serve` — one table that gives every setting a
 * command-line flag, an environment variable and a config-file key, with its default and help.
 *
 * Precedence, lowest to highest: default, config file (--config FILE or SSEHUB_CONFIG),
 * environment, command line. The config file holds `key = value` lines (key = the flag name without
 * "--",
 * '-' or '_' alike), '#' comments and blank lines; a value may be in double quotes.
 */
#ifndef SSE_CLI_SERVE_CONFIG_H
#define SSE_CLI_SERVE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

struct serve_config {
    char *listen; /* HOST:PORT, "[::1]:8080" */
    char *publisher_key, *publisher_alg, *subscriber_key, *subscriber_alg;
    char *resource;
    char *issuer; /* the accepted issuers as given: "A,B" (--issuer repeated, or a list) */
    char *cors_origins, *publish_origins;
    char *protocol; /* draft-07 | draft-08 | both */
    char *web;      /* static files at / (NULL = none) */
    char *demo_topic;
    char *log_level; /* error | warn | info | debug */
    int anonymous, subscriptions, demo, dev, publish_anonymous, access_log;
    unsigned heartbeat_ms, write_timeout_ms, shutdown_timeout_ms, expiry_sweep_ms, max_lifetime_ms;
    size_t queue_max, history_count, history_bytes;
    unsigned history_age_ms; /* 0 = no age limit */
    char *store;             /* "memory" or "lmdb:DIR" */
    char *store_sync;        /* lmdb: "sync" or "nosync" */
    size_t store_map_size;   /* lmdb: 0 = derived from history_bytes */
    size_t max_selectors, max_selector_len, max_topics, max_body, max_update;
    size_t max_subscribers, max_connections;
    size_t max_buffered;      /* bytes of unfinished requests held in all */
    size_t replay_budget;     /* matching steps one replay may spend */
    size_t max_pattern_nodes; /* nodes of all distinct compiled patterns alive */
    size_t workers;           /* processes (docs/WORKERS.md); 0 = one per CPU */
    int anonymous_set;        /* --anonymous was given explicitly (else --demo/--dev imply it) */
    char *redis;         /* --redis URL[,URL...]: nodes sharing Redis Streams (docs/REDIS.md) */
    char *redis_key;     /* the stream key (prefix with several URLs) */
    int redis_cluster;   /* --redis URLs are seeds of a Redis Cluster */
    size_t redis_shards; /* stream keys over the cluster */
    unsigned redis_presence_ttl_ms; /* presence expiry (subscriptions API across nodes) */
    /* HTTP/2 (docs/SERVER.md, "HTTP/2") */
    int h2c;               /* plain listeners take HTTP/2 by prior knowledge too */
    int h2;                /* TLS listeners offer h2 by ALPN */
    size_t h2_max_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS */
    /* TLS (an HTTPS listener beside the plain one; docs/OPERATIONS.md, "TLS") */
    char *tls_listen;          /* HOST:PORT of the TLS listener, NULL = none */
    char *tls_cert, *tls_key;  /* PEM chain and key files (re-read on SIGHUP) */
    unsigned tls_handshake_ms; /* handshake timeout */
    int tls_keep_buffers;      /* keep OpenSSL's record buffers on idle connections */
    /* past max_connections: TLS handshakes made to answer 503, at once (docs/SERVER.md) */
    size_t tls_overlimit_handshakes;
    /* Operators of the reference hub (docs/OPERATIONS.md): */
    char *publisher_jwks_url, *subscriber_jwks_url; /* https://, http:// or file:// */
    unsigned jwks_refresh_min_ms;                   /* unknown kid: refetch at most this often */
    size_t jwks_max_bytes;                          /* largest key set document */
    char *cookie_name;                              /* NULL: the drafts' names */
    char *log_format;                               /* "text" or "json" */

    /* requests per role waiting for the refetch their unknown kid caused (hub_jwks_wait.c) */
    size_t jwks_max_waiting;

    /* --issuer split into its entries (spaces around commas trimmed), filled by
       serve_config_load: every one is accepted as "iss"; the first one goes into --dev tokens */
    char **issuers;
    size_t n_issuers;
};

/* Where environment variables come from (getenv in the program, a table in tests). */
typedef const char *(*serve_getenv_fn)(const char *name);

/*
 * Fill c from defaults, the config file, the environment and argv (argv[0] is "serve").
 * Returns 0; 1 if --help was asked (help printed to out); 2 on an error (message in err).
 * c must be freed with serve_config_free in every case.
 */
int serve_config_load(struct serve_config *c, int argc, char **argv, serve_getenv_fn env, FILE *out,
                      char *err, size_t errlen);
/* Print every setting: flag, environment variable, default, description. */
void serve_config_help(FILE *out);
void serve_config_free(struct serve_config *c);
/* The same settings as a help table (cli_help.h), for the man page and the bash completion;
 * summary is the command's one line. Built on the first call, then the same table. */
struct cli_help;
const struct cli_help *serve_config_help_table(const char *summary);

/*
 * For a reload (SIGHUP): call fn(name, ud) for each setting whose value differs between a and
 * b (by value; names only, so no secret reaches a log).
 */
void serve_config_diff(const struct serve_config *a, const struct serve_config *b,
                       void (*fn)(const char *name, void *ud), void *ud);

/* Parse "1k", "16M", "2G" (binary units) or a plain number. 0 ok, -1 bad. */
int serve_parse_size(const char *s, size_t *out);
/* Parse "250ms", "15s", "2m", "1h" or plain milliseconds. 0 ok, -1 bad. */
int serve_parse_ms(const char *s, unsigned *out);
/* Split "HOST:PORT" / "[v6]:PORT" / ":PORT" into host (caller frees) and port. 0 ok, -1 bad. */
int serve_parse_listen(const char *s, char **host, int *port);

#endif
