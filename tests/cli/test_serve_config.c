/*
 * test_serve_config.c: the settings of `ssehub serve`: defaults, precedence (flag > environment >
 * config file > default), the reference hub's variable names, value syntax (sizes, durations,
 * booleans, --no-x), listen addresses (IPv4, IPv6), errors, and --help listing every setting.
 */
#include "cli_serve_config.h"
#include "harness/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *const *env_table;

static const char *fake_env(const char *name)
{
    for (size_t i = 0; env_table && env_table[i]; i += 2)
        if (!strcmp(env_table[i], name))
            return env_table[i + 1];
    return NULL;
}

static int load(struct serve_config *c, char **argv, int argc, const char *const *env, char *err)
{
    env_table = env;
    FILE *devnull = fopen("/dev/null", "w");
    int rc = serve_config_load(c, argc, argv, fake_env, devnull, err, 512);
    fclose(devnull);
    return rc;
}

static int test_defaults(void)
{
    struct serve_config c;
    char err[512];
    char *argv[] = {"serve"};
    CHECK_EQ_INT(load(&c, argv, 1, NULL, err), 0);
    CHECK_EQ_STR(c.listen, "127.0.0.1:8080");
    CHECK_EQ_STR(c.protocol, "both");
    CHECK_EQ_STR(c.publisher_alg, "HS256");
    CHECK(c.publisher_key == NULL);
    CHECK_EQ_INT(c.anonymous, 0);
    CHECK_EQ_UINT(c.heartbeat_ms, 15000);
    CHECK_EQ_UINT(c.queue_max, 4u << 20);
    CHECK_EQ_UINT(c.history_count, 1000);
    CHECK_EQ_UINT(c.max_selectors, 64);
    serve_config_free(&c);
    return 0;
}

static int test_precedence(void)
{
    char path[] = "/tmp/ssehub-test-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# comment\n\nlisten = 127.0.0.1:9000\nheartbeat = 5s\n"
               "history_count = 7\npublisher-jwt-key = \"file key\"\nanonymous = yes\n");
    fclose(f);
    struct serve_config c;
    char err[512];
    const char *env[] = {"MERCURE_PUBLISHER_JWT_KEY",
                         "env key",
                         "SSEHUB_HEARTBEAT",
                         "2s",
                         "MERCURE_JWT_KEY",
                         "shared",
                         NULL};
    char *argv[] = {"serve",          "--config", path,     "--heartbeat=250ms", "--max-body", "2M",
                    "--no-anonymous", "--listen", "[::1]:0"};
    CHECK_EQ_INT(load(&c, argv, 9, env, err), 0);
    CHECK_EQ_STR(c.listen, "[::1]:0");        /* flag over file */
    CHECK_EQ_UINT(c.heartbeat_ms, 250);       /* flag over env over file */
    CHECK_EQ_UINT(c.history_count, 7);        /* file over default */
    CHECK_EQ_STR(c.publisher_key, "env key"); /* env over file */
    CHECK_EQ_STR(c.subscriber_key, "shared"); /* the MERCURE_JWT_KEY alias */
    CHECK_EQ_UINT(c.max_body, 2u << 20);
    CHECK_EQ_INT(c.anonymous, 0);
    serve_config_free(&c);
    unlink(path);
    return 0;
}

static int test_errors(void)
{
    struct serve_config c;
    char err[512];
    char *a1[] = {"serve", "--bogus"};
    CHECK_EQ_INT(load(&c, a1, 2, NULL, err), 2);
    CHECK(strstr(err, "bogus") != NULL);
    serve_config_free(&c);
    char *a2[] = {"serve", "--max-body", "12Q"};
    CHECK_EQ_INT(load(&c, a2, 3, NULL, err), 2);
    serve_config_free(&c);
    char *a3[] = {"serve", "--protocol", "draft-09"};
    CHECK_EQ_INT(load(&c, a3, 3, NULL, err), 2);
    serve_config_free(&c);
    char *a4[] = {"serve", "--listen", "nocolon"};
    CHECK_EQ_INT(load(&c, a4, 3, NULL, err), 2);
    serve_config_free(&c);
    char *a5[] = {"serve", "--config", "/nonexistent/ssehub.conf"};
    CHECK_EQ_INT(load(&c, a5, 3, NULL, err), 2);
    serve_config_free(&c);
    char *a6[] = {"serve", "--listen"};
    CHECK_EQ_INT(load(&c, a6, 2, NULL, err), 2);
    serve_config_free(&c);
    const char *env[] = {"SSEHUB_ANONYMOUS", "maybe", NULL};
    char *a7[] = {"serve"};
    CHECK_EQ_INT(load(&c, a7, 1, env, err), 2);
    CHECK(strstr(err, "SSEHUB_ANONYMOUS") != NULL);
    serve_config_free(&c);
    return 0;
}

static int test_demo_implies(void)
{
    struct serve_config c;
    char err[512];
    char *a[] = {"serve", "--demo"};
    CHECK_EQ_INT(load(&c, a, 2, NULL, err), 0);
    CHECK_EQ_INT(c.dev, 1);
    CHECK_EQ_INT(c.anonymous, 1);
    serve_config_free(&c);
    char *b[] = {"serve", "--demo", "--anonymous=false"};
    CHECK_EQ_INT(load(&c, b, 3, NULL, err), 0);
    CHECK_EQ_INT(c.anonymous, 0);
    serve_config_free(&c);
    return 0;
}

static int test_values(void)
{
    size_t sz;
    unsigned ms;
    CHECK_EQ_INT(serve_parse_size("16M", &sz), 0);
    CHECK_EQ_UINT(sz, 16u << 20);
    CHECK_EQ_INT(serve_parse_size("1KiB", &sz), 0);
    CHECK_EQ_UINT(sz, 1024);
    CHECK_EQ_INT(serve_parse_size("-1", &sz), -1);
    CHECK_EQ_INT(serve_parse_size("", &sz), -1);
    CHECK_EQ_INT(serve_parse_ms("2m", &ms), 0);
    CHECK_EQ_UINT(ms, 120000);
    CHECK_EQ_INT(serve_parse_ms("10", &ms), 0);
    CHECK_EQ_UINT(ms, 10);
    CHECK_EQ_INT(serve_parse_ms("10x", &ms), -1);
    char *host;
    int port;
    CHECK_EQ_INT(serve_parse_listen("[::1]:8080", &host, &port), 0);
    CHECK_EQ_STR(host, "::1");
    CHECK_EQ_INT(port, 8080);
    free(host);
    CHECK_EQ_INT(serve_parse_listen("127.0.0.1:0", &host, &port), 0);
    CHECK_EQ_STR(host, "127.0.0.1");
    CHECK_EQ_INT(port, 0);
    free(host);
    CHECK_EQ_INT(serve_parse_listen("127.0.0.1:70000", &host, &port), -1);
    CHECK_EQ_INT(serve_parse_listen("[::1]8080", &host, &port), -1);
    return 0;
}

static int test_help_lists_everything(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    serve_config_help(m);
    fclose(m);
    static const char *const must[] = {"--listen",
                                       "MERCURE_PUBLISHER_JWT_KEY",
                                       "MERCURE_SUBSCRIBER_JWT_KEY",
                                       "MERCURE_PUBLISHER_JWT_ALG",
                                       "MERCURE_SUBSCRIBER_JWT_ALG",
                                       "--cors-origins",
                                       "--publish-origins",
                                       "--anonymous",
                                       "--subscriptions",
                                       "--protocol",
                                       "--heartbeat",
                                       "--write-timeout",
                                       "--queue-max",
                                       "--history-count",
                                       "--history-bytes",
                                       "--max-selectors",
                                       "--max-selector-length",
                                       "--max-body",
                                       "--max-update",
                                       "--web",
                                       "--demo",
                                       "--dev",
                                       "--config",
                                       "default: 127.0.0.1:8080"};
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        if (!strstr(buf, must[i])) {
            fprintf(stderr, "help lacks %s\n", must[i]);
            free(buf);
            return 1;
        }
    free(buf);
    return 0;
}

/* --store, --store-sync, --store-map-size, --history-age: flag, environment, errors. */
static int test_store(void)
{
    struct serve_config c;
    char err[512];
    char *a0[] = {"serve"};
    CHECK_EQ_INT(load(&c, a0, 1, NULL, err), 0);
    CHECK_EQ_STR(c.store, "memory");
    CHECK_EQ_STR(c.store_sync, "sync");
    CHECK_EQ_UINT(c.store_map_size, 0);
    CHECK_EQ_UINT(c.history_age_ms, 0);
    serve_config_free(&c);
    const char *env[] = {"SSEHUB_STORE", "lmdb:/var/lib/ssehub", "SSEHUB_STORE_SYNC", "nosync",
                         NULL};
    char *a1[] = {"serve", "--store-map-size", "1G", "--history-age", "2h"};
    CHECK_EQ_INT(load(&c, a1, 5, env, err), 0);
    CHECK_EQ_STR(c.store, "lmdb:/var/lib/ssehub");
    CHECK_EQ_STR(c.store_sync, "nosync");
    CHECK_EQ_UINT(c.store_map_size, 1u << 30);
    CHECK_EQ_UINT(c.history_age_ms, 2u * 3600 * 1000);
    serve_config_free(&c);
    char *a2[] = {"serve", "--store", "lmdb:"};
    CHECK_EQ_INT(load(&c, a2, 3, NULL, err), 2);
    CHECK(strstr(err, "--store must be memory or lmdb:DIR") != NULL);
    serve_config_free(&c);
    char *a3[] = {"serve", "--store", "redis"};
    CHECK_EQ_INT(load(&c, a3, 3, NULL, err), 2);
    serve_config_free(&c);
    char *a4[] = {"serve", "--store-sync", "sometimes"};
    CHECK_EQ_INT(load(&c, a4, 3, NULL, err), 2);
    CHECK(strstr(err, "--store-sync") != NULL);
    serve_config_free(&c);
    return 0;
}

/* The TLS settings: all three or none; a bad --tls-listen; environment names. */
static int test_tls(void)
{
    struct serve_config c;
    char err[512];
    char *a0[] = {"serve"};
    CHECK_EQ_INT(load(&c, a0, 1, NULL, err), 0);
    CHECK(c.tls_listen == NULL && c.tls_cert == NULL && c.tls_key == NULL);
    CHECK_EQ_UINT(c.tls_handshake_ms, 10000);
    CHECK_EQ_INT(c.tls_keep_buffers, 0);
    serve_config_free(&c);
    const char *env[] = {"SSEHUB_TLS_CERT", "/c.pem", "SSEHUB_TLS_KEY", "/k.pem", NULL};
    char *a1[] = {"serve", "--tls-listen",      "[::1]:8443", "--tls-handshake-timeout",
                  "2s",    "--tls-keep-buffers"};
    CHECK_EQ_INT(load(&c, a1, 6, env, err), 0);
    CHECK_EQ_STR(c.tls_listen, "[::1]:8443");
    CHECK_EQ_STR(c.tls_cert, "/c.pem");
    CHECK_EQ_STR(c.tls_key, "/k.pem");
    CHECK_EQ_UINT(c.tls_handshake_ms, 2000);
    CHECK_EQ_INT(c.tls_keep_buffers, 1);
    serve_config_free(&c);
    char *a2[] = {"serve", "--tls-cert", "/c.pem", "--tls-listen", ":8443"};
    CHECK_EQ_INT(load(&c, a2, 5, NULL, err), 2);
    CHECK(strstr(err, "--tls-key") != NULL);
    serve_config_free(&c);
    char *a3[] = {"serve", "--tls-listen", "nope"};
    CHECK_EQ_INT(load(&c, a3, 3, env, err), 2);
    CHECK(strstr(err, "--tls-listen") != NULL);
    serve_config_free(&c);
    return 0;
}

/* The reference hub's names (docs/OPERATIONS.md), the operators' settings and their checks. */
static int test_reference_names_and_ops(void)
{
    char path[] = "/tmp/ssehub-test-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "max_request_body_size = 2K\ndispatch_timeout = 7s\ncookie_name = hubToken\n"
               "publisher_jwks_uri = file:///etc/jwks.json\n");
    fclose(f);
    struct serve_config c;
    char err[512];
    char *a1[] = {
        "serve",        "--config", path, "--resource-identifier", "https://h/.well-known/mercure",
        "--log-format", "json"};
    const char *env[] = {"MERCURE_SUBSCRIBER_JWKS_URL", "https://idp.example/jwks", NULL};
    CHECK_EQ_INT(load(&c, a1, 7, env, err), 0);
    unlink(path);
    CHECK_EQ_UINT(c.max_body, 2048);
    CHECK_EQ_UINT(c.write_timeout_ms, 7000);
    CHECK_EQ_STR(c.cookie_name, "hubToken");
    CHECK_EQ_STR(c.publisher_jwks_url, "file:///etc/jwks.json");
    CHECK_EQ_STR(c.subscriber_jwks_url, "https://idp.example/jwks");
    CHECK_EQ_STR(c.resource, "https://h/.well-known/mercure");
    CHECK_EQ_STR(c.log_format, "json");
    CHECK_EQ_UINT(c.jwks_refresh_min_ms, 5000);
    CHECK_EQ_UINT(c.jwks_max_bytes, 64u << 10);
    serve_config_free(&c);
    /* the reference's write_timeout is a connection age: deliberately no alias (ambiguous) */
    char *a2[] = {"serve", "--write_timeout", "5s"};
    CHECK_EQ_INT(load(&c, a2, 3, NULL, err), 0);
    CHECK_EQ_UINT(c.write_timeout_ms, 5000); /* ours: --write-timeout, '_' and '-' alike */
    serve_config_free(&c);
    char *a3[] = {"serve", "--log-format", "xml"};
    CHECK_EQ_INT(load(&c, a3, 3, NULL, err), 2);
    CHECK(strstr(err, "--log-format") != NULL);
    serve_config_free(&c);
    char *a4[] = {"serve", "--subscriber-jwks-url", "ftp://x/jwks"};
    CHECK_EQ_INT(load(&c, a4, 3, NULL, err), 2);
    CHECK(strstr(err, "--subscriber-jwks-url") != NULL);
    serve_config_free(&c);
    char *a5[] = {"serve", "--resource-identifierx", "a"};
    CHECK_EQ_INT(load(&c, a5, 3, NULL, err), 2);
    serve_config_free(&c);
    return 0;
}

static void count_diff(const char *name, void *ud)
{
    char *names = ud;
    strcat(names, name);
    strcat(names, " ");
}

/* serve_config_diff (SIGHUP): by value, names only. */
static int test_diff(void)
{
    struct serve_config a, b;
    char err[512], names[256] = "";
    char *a1[] = {"serve", "--tls-cert", "/c.pem", "--tls-key", "/k.pem", "--tls-listen", ":1"};
    char *a2[] = {"serve",   "--tls-cert",          "/c.pem", "--tls-key",
                  "/k2.pem", "--tls-listen",        ":1",     "--log-level",
                  "debug",   "--publisher-jwt-key", "secret"};
    CHECK_EQ_INT(load(&a, a1, 7, NULL, err), 0);
    CHECK_EQ_INT(load(&b, a1, 7, NULL, err), 0);
    serve_config_diff(&a, &b, count_diff, names);
    CHECK_EQ_STR(names, "");
    serve_config_free(&b);
    CHECK_EQ_INT(load(&b, a2, 11, NULL, err), 0);
    serve_config_diff(&a, &b, count_diff, names);
    CHECK_EQ_STR(names, "publisher-jwt-key tls-key log-level ");
    CHECK(strstr(names, "secret") == NULL);
    serve_config_free(&a);
    serve_config_free(&b);
    return 0;
}

/* --issuer is a list: repeated flags (or config lines) add up within their source, a higher
   source replaces the whole list, entries are trimmed, an empty entry is refused. */
static int test_issuer_list(void)
{
    char path[] = "/tmp/ssehub-test-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "issuer = https://f1\nissuer = https://f2\n");
    fclose(f);
    struct serve_config c;
    char err[512];
    char *file_only[] = {"serve", "--config", path};
    CHECK_EQ_INT(load(&c, file_only, 3, NULL, err), 0);
    CHECK_EQ_UINT(c.n_issuers, 2);
    CHECK_EQ_STR(c.issuers[0], "https://f1");
    CHECK_EQ_STR(c.issuers[1], "https://f2");
    serve_config_free(&c);
    const char *env[] = {"SSEHUB_ISSUER", " https://e1 ,https://e2,  https://e3", NULL};
    CHECK_EQ_INT(load(&c, file_only, 3, env, err), 0); /* env over file: replaced */
    CHECK_EQ_UINT(c.n_issuers, 3);
    CHECK_EQ_STR(c.issuers[0], "https://e1");
    CHECK_EQ_STR(c.issuers[2], "https://e3");
    serve_config_free(&c);
    char *flags[] = {"serve",    "--config",  path,
                     "--issuer", "https://a", "--issuer=https://b,https://c"};
    CHECK_EQ_INT(load(&c, flags, 6, env, err), 0);
    CHECK_EQ_UINT(c.n_issuers, 3);
    CHECK_EQ_STR(c.issuers[0], "https://a");
    CHECK_EQ_STR(c.issuers[1], "https://b");
    CHECK_EQ_STR(c.issuers[2], "https://c");
    serve_config_free(&c);
    char *none[] = {"serve"};
    CHECK_EQ_INT(load(&c, none, 1, NULL, err), 0);
    CHECK_EQ_UINT(c.n_issuers, 0);
    serve_config_free(&c);
    char *empty[] = {"serve", "--issuer", "https://a,,https://b"};
    CHECK_EQ_INT(load(&c, empty, 3, NULL, err), 2);
    CHECK(strstr(err, "--issuer") != NULL);
    serve_config_free(&c);
    char *blank[] = {"serve", "--issuer", "https://a", "--issuer", " "};
    CHECK_EQ_INT(load(&c, blank, 5, NULL, err), 2);
    serve_config_free(&c);
    unlink(path);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_defaults), CHECK_TEST(test_precedence), CHECK_TEST(test_errors),
           CHECK_TEST(test_demo_implies), CHECK_TEST(test_values),
           CHECK_TEST(test_help_lists_everything), CHECK_TEST(test_store), CHECK_TEST(test_tls),
           CHECK_TEST(test_diff), CHECK_TEST(test_reference_names_and_ops),
           CHECK_TEST(test_issuer_list))
