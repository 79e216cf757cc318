/*
 * test_token.c: `ssehub token` round trips (mint with the real binary, verify with src/hub/auth.c)
 * and `ssehub pub` against a one-shot HTTP listener in this test on 127.0.0.1, port 0: the
 * request it sends (method, path, bearer token, form fields) and its exit codes.
 * The binary is $SSEHUB (set by CTest); every wait is bounded by poll timeouts.
 */
#include "common/alloc.h"
#include "harness/check.h"
#include "harness/loopback.h"
#include "hub/auth.h"
#include "hub/jws.h"
#include "hub/selector.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <poll.h>
#include <signal.h>
#include <sse/error.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY "cli-test-secret-0123456789abcdef"
#define RESOURCE "http://127.0.0.1:8080/.well-known/mercure"

static const char *ssehub(void)
{
    const char *s = getenv("SSEHUB");
    return s && *s ? s : "ssehub";
}

/* Run argv (NULL-terminated) with optional stdin text; capture stdout; return exit status. */
static int run(char *const argv[], const char *in, char *out, size_t out_cap, int listen_fd,
               char *req, size_t req_cap, const char *reply)
{
    int po[2], pi[2];
    if (pipe(po) || pipe(pi))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pi[0], 0);
        close(po[0]);
        close(pi[1]);
        if (listen_fd >= 0)
            close(listen_fd);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pi[0]);
    if (in) {
        ssize_t w = write(pi[1], in, strlen(in));
        (void)w;
    }
    close(pi[1]);
    if (listen_fd >= 0) {
        /* serve exactly one request */
        struct pollfd p = {listen_fd, POLLIN, 0};
        if (poll(&p, 1, 10000) == 1) {
            int c = accept(listen_fd, NULL, NULL);
            size_t n = 0;
            long want = -1;
            while (c >= 0 && n + 1 < req_cap) {
                struct pollfd q = {c, POLLIN, 0};
                if (poll(&q, 1, 10000) != 1)
                    break;
                ssize_t r = read(c, req + n, req_cap - n - 1);
                if (r <= 0)
                    break;
                n += (size_t)r;
                req[n] = '\0';
                char *eoh = strstr(req, "\r\n\r\n");
                if (eoh && want < 0) {
                    char *cl = strcasestr(req, "\r\nContent-Length:");
                    want = (long)(eoh + 4 - req) + (cl ? strtol(cl + 17, NULL, 10) : 0);
                }
                if (want >= 0 && (long)n >= want)
                    break;
            }
            if (c >= 0) {
                ssize_t w = write(c, reply, strlen(reply));
                (void)w;
                close(c);
            }
        }
    }
    size_t n = 0;
    for (;;) {
        struct pollfd q = {po[0], POLLIN, 0};
        if (poll(&q, 1, 15000) != 1)
            break;
        ssize_t r = read(po[0], out + n, out_cap - n - 1);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    out[n] = '\0';
    close(po[0]);
    int st = 0;
    for (int i = 0; i < 150; i++) { /* at most 15 s */
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

static struct sse__auth *auth_for(const char *key, const char *alg)
{
    struct sse__auth_config cfg = {0};
    cfg.publisher_key = key;
    cfg.publisher_alg = alg;
    cfg.resource = RESOURCE;
    struct sse__auth *a = NULL;
    return sse__auth_new(&a, &cfg) ? NULL : a;
}

static int test_token_roundtrip_07(void)
{
    char out[16384];
    char *argv[] = {(char *)ssehub(),
                    "token",
                    "--publish",
                    "https://ex.com/a",
                    "--publish",
                    "*",
                    "--subscribe",
                    "https://ex.com/books/{id}",
                    "--payload",
                    "{\"u\":\"x\"}",
                    "--key",
                    KEY,
                    "--sub",
                    "me",
                    NULL};
    CHECK_EQ_INT(run(argv, NULL, out, sizeof(out), -1, NULL, 0, NULL), 0);
    chomp(out);
    struct sse__auth *a = auth_for(KEY, "HS256");
    const struct sse__grants *g;
    const char *why = NULL;
    CHECK_EQ_INT(sse__auth_verify(a, SSE__AUTH_PUBLISH, out, strlen(out), time(NULL), &g, &why), 0);
    CHECK_EQ_INT(g->draft, SSE__DRAFT_07);
    CHECK_EQ_UINT(g->n_publish, 2);
    CHECK_EQ_STR(g->publish[0], "https://ex.com/a");
    CHECK_EQ_STR(g->publish[1], "*");
    CHECK_EQ_UINT(g->n_subscribe, 1);
    CHECK_EQ_STR(g->subscribe[0], "https://ex.com/books/{id}");
    CHECK_EQ_STR(g->payload_json, "{\"u\":\"x\"}");
    CHECK_EQ_STR(g->sub, "me");
    long long now = time(NULL);
    CHECK(g->exp > now + 3500 && g->exp <= now + 3600);
    sse__grants_release(g);
    /* the wrong key refuses it */
    struct sse__auth *b = auth_for("another-secret", "HS256");
    CHECK_EQ_INT(sse__auth_verify(b, SSE__AUTH_PUBLISH, out, strlen(out), now, &g, &why),
                 SSE_EAUTH);
    sse__auth_free(a);
    sse__auth_free(b);
    return 0;
}

static int test_token_roundtrip_08(void)
{
    char out[16384];
    char *argv[] = {(char *)ssehub(),
                    "token",
                    "--draft",
                    "08",
                    "--publish",
                    "https://ex.com/a",
                    "--subscribe-pattern",
                    "https://ex.com/books/:id",
                    "--payload",
                    "{\"u\":1}",
                    "--exp",
                    "120",
                    "--key",
                    KEY,
                    NULL};
    CHECK_EQ_INT(run(argv, NULL, out, sizeof(out), -1, NULL, 0, NULL), 0);
    chomp(out);
    struct sse__auth *a = auth_for(KEY, "HS256");
    const struct sse__grants *g;
    const char *why = NULL;
    long long now = time(NULL);
    CHECK_EQ_INT(sse__auth_verify(a, SSE__AUTH_SUBSCRIBE, out, strlen(out), now, &g, &why), 0);
    CHECK_EQ_INT(g->draft, SSE__DRAFT_08);
    CHECK_EQ_UINT(g->n_publish, 1);
    CHECK_EQ_INT(g->publish_kinds[0], SSE__SEL_EXACT);
    CHECK_EQ_UINT(g->n_subscribe, 1);
    CHECK_EQ_STR(g->subscribe[0], "https://ex.com/books/:id");
    CHECK_EQ_INT(g->subscribe_kinds[0], SSE__SEL_URLPATTERN);
    CHECK_EQ_STR(g->subscribe_payloads[0], "{\"u\":1}");
    CHECK(g->exp > now + 100 && g->exp <= now + 120);
    sse__grants_release(g);
    /* expired after 120 s */
    CHECK_EQ_INT(sse__auth_verify(a, SSE__AUTH_SUBSCRIBE, out, strlen(out), now + 121, &g, &why),
                 SSE_EAUTH);
    sse__auth_free(a);
    /* a hub with another resource identifier refuses it */
    struct sse__auth_config cfg = {0};
    cfg.publisher_key = KEY;
    cfg.resource = "https://other.example/.well-known/mercure";
    CHECK_EQ_INT(sse__auth_new(&a, &cfg), 0);
    CHECK_EQ_INT(sse__auth_verify(a, SSE__AUTH_SUBSCRIBE, out, strlen(out), now, &g, &why),
                 SSE_EAUTH);
    CHECK_EQ_STR(why, "wrong audience");
    sse__auth_free(a);
    return 0;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static int test_token_rs_es(void)
{
    char dir[] = "/tmp/ssehub-keys-XXXXXX";
    CHECK(mkdtemp(dir));
    EVP_PKEY *keys[2] = {EVP_RSA_gen(2048), EVP_EC_gen("P-256")};
    const char *algs[2] = {"RS256", "ES256"};
    for (int i = 0; i < 2; i++) {
        char path[128], out[16384];
        char *priv = sse__jws_pem(keys[i], 1), *pub = sse__jws_pem(keys[i], 0);
        CHECK(priv && pub);
        snprintf(path, sizeof(path), "%s/key%d.pem", dir, i);
        CHECK_EQ_INT(write_file(path, priv), 0);
        struct sse__auth *a = auth_for(pub, algs[i]);
        CHECK(a);
        for (int d = 0; d < 2; d++) { /* draft-07, then draft-08 (typ at+jwt through libjwt) */
            char *argv[] = {
                (char *)ssehub(), "token", "--alg",   (char *)algs[i], "--key-file", path,
                "--publish",      "*",     "--draft", d ? "08" : "07", NULL};
            CHECK_EQ_INT(run(argv, NULL, out, sizeof(out), -1, NULL, 0, NULL), 0);
            chomp(out);
            const struct sse__grants *g;
            const char *why = NULL;
            int vrc =
                sse__auth_verify(a, SSE__AUTH_PUBLISH, out, strlen(out), time(NULL), &g, &why);
            if (vrc)
                fprintf(stderr, "  %s draft %d: %s\n", algs[i], d ? 8 : 7, why);
            CHECK_EQ_INT(vrc, 0);
            CHECK_EQ_INT(g->draft, d ? SSE__DRAFT_08 : SSE__DRAFT_07);
            CHECK_EQ_STR(g->publish[0], "*");
            sse__grants_release(g);
        }
        sse__auth_free(a);
        unlink(path);
        sse__free(priv);
        sse__free(pub);
        EVP_PKEY_free(keys[i]);
    }
    rmdir(dir);
    return 0;
}

static int test_token_errors(void)
{
    char out[4096];
    char *no_key[] = {(char *)ssehub(), "token", "--publish", "*", NULL};
    unsetenv("MERCURE_PUBLISHER_JWT_KEY");
    CHECK_EQ_INT(run(no_key, NULL, out, sizeof(out), -1, NULL, 0, NULL), 1);
    char *none[] = {(char *)ssehub(), "token", "--alg", "none", "--key", KEY, NULL};
    CHECK_EQ_INT(run(none, NULL, out, sizeof(out), -1, NULL, 0, NULL), 1);
    char *no_exp[] = {(char *)ssehub(), "token", "--draft", "08", "--exp", "0", "--key", KEY, NULL};
    CHECK_EQ_INT(run(no_exp, NULL, out, sizeof(out), -1, NULL, 0, NULL), 1);
    char *bad_json[] = {(char *)ssehub(), "token", "--payload", "{nope", "--key", KEY, NULL};
    CHECK_EQ_INT(run(bad_json, NULL, out, sizeof(out), -1, NULL, 0, NULL), 1);
    char *bad_draft[] = {(char *)ssehub(), "token", "--draft", "09", "--key", KEY, NULL};
    CHECK_EQ_INT(run(bad_draft, NULL, out, sizeof(out), -1, NULL, 0, NULL), 2);
    char *pem_hs[] = {(char *)ssehub(), "token", "--key", "-----BEGIN PUBLIC KEY-----", NULL};
    CHECK_EQ_INT(run(pem_hs, NULL, out, sizeof(out), -1, NULL, 0, NULL), 1);
    char *help[] = {(char *)ssehub(), "token", "--help", NULL};
    CHECK_EQ_INT(run(help, NULL, out, sizeof(out), -1, NULL, 0, NULL), 0);
    CHECK(strstr(out, "--subscribe"));
    /* the environment key is the default */
    setenv("MERCURE_PUBLISHER_JWT_KEY", KEY, 1);
    char *env[] = {(char *)ssehub(), "token", "--publish", "*", NULL};
    CHECK_EQ_INT(run(env, NULL, out, sizeof(out), -1, NULL, 0, NULL), 0);
    unsetenv("MERCURE_PUBLISHER_JWT_KEY");
    chomp(out);
    struct sse__auth *a = auth_for(KEY, "HS256");
    const struct sse__grants *g;
    CHECK_EQ_INT(sse__auth_verify(a, SSE__AUTH_PUBLISH, out, strlen(out), time(NULL), &g, NULL), 0);
    sse__grants_release(g);
    sse__auth_free(a);
    return 0;
}

/* ---- ssehub pub ------------------------------------------------------------------------- */

static int listener(char *url, size_t cap)
{
    int port;
    int fd = loopback_listen(4, &port);
    if (fd >= 0)
        snprintf(url, cap, "http://127.0.0.1:%d/.well-known/mercure", port);
    return fd;
}

/* The decoded value of the nth form field `name` in body (application/x-www-form-urlencoded). */
static int form_get(const char *body, const char *name, int nth, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = body;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && !strncmp(p, name, nl) && p[nl] == '=' && nth-- == 0) {
            size_t o = 0;
            for (size_t i = nl + 1; i < len && o + 1 < cap; i++) {
                if (p[i] == '%' && i + 2 < len) {
                    char h[3] = {p[i + 1], p[i + 2], 0};
                    out[o++] = (char)strtol(h, NULL, 16);
                    i += 2;
                } else {
                    out[o++] = p[i] == '+' ? ' ' : p[i];
                }
            }
            out[o] = '\0';
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

#define OK_REPLY                                                                                   \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: "            \
    "close\r\n\r\nurn:uuid:1234"

static int test_pub_request(void)
{
    char url[128], out[4096], req[65536], v[4096];
    int fd = listener(url, sizeof(url));
    CHECK(fd >= 0);
    char *argv[] = {(char *)ssehub(),
                    "pub",
                    "--hub",
                    url,
                    "--topic",
                    "https://ex.com/a",
                    "--topic",
                    "https://ex.com/b",
                    "--data",
                    "a b&c=d\nline2\n\nlast",
                    "--id",
                    "id-1",
                    "--type",
                    "news",
                    "--private",
                    "--retry",
                    "1500",
                    "--key",
                    KEY,
                    NULL};
    unsetenv("MERCURE_PUBLISHER_TOKEN");
    unsetenv("SSEHUB_TOKEN");
    CHECK_EQ_INT(run(argv, NULL, out, sizeof(out), fd, req, sizeof(req), OK_REPLY), 0);
    CHECK_EQ_STR(out, "urn:uuid:1234\n");
    CHECK(!strncmp(req, "POST /.well-known/mercure HTTP/1.1\r\n", 36));
    CHECK(strcasestr(req, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
    const char *body = strstr(req, "\r\n\r\n") + 4;
    CHECK(form_get(body, "topic", 0, v, sizeof(v)));
    CHECK_EQ_STR(v, "https://ex.com/a");
    CHECK(form_get(body, "topic", 1, v, sizeof(v)));
    CHECK_EQ_STR(v, "https://ex.com/b");
    CHECK(form_get(body, "data", 0, v, sizeof(v)));
    CHECK_EQ_STR(v, "a b&c=d\nline2\n\nlast");
    CHECK(form_get(body, "id", 0, v, sizeof(v)));
    CHECK_EQ_STR(v, "id-1");
    CHECK(form_get(body, "type", 0, v, sizeof(v)));
    CHECK_EQ_STR(v, "news");
    CHECK(form_get(body, "retry", 0, v, sizeof(v)));
    CHECK_EQ_STR(v, "1500");
    CHECK(form_get(body, "private", 0, v, sizeof(v)));
    /* the minted bearer token grants publishing to exactly the topics */
    const char *auth = strcasestr(req, "\r\nAuthorization: Bearer ");
    CHECK(auth);
    auth += 24;
    size_t tl = strcspn(auth, "\r");
    struct sse__auth *a = auth_for(KEY, "HS256");
    const struct sse__grants *g;
    const char *why = NULL;
    CHECK_EQ_INT(sse__auth_verify(a, SSE__AUTH_PUBLISH, auth, tl, time(NULL), &g, &why), 0);
    CHECK_EQ_UINT(g->n_publish, 2);
    CHECK_EQ_STR(g->publish[0], "https://ex.com/a");
    CHECK_EQ_STR(g->publish[1], "https://ex.com/b");
    CHECK(g->exp > 0 && g->exp <= time(NULL) + 60);
    sse__grants_release(g);
    sse__auth_free(a);
    close(fd);
    return 0;
}

static int test_pub_stdin_file_token(void)
{
    char url[128], out[4096], req[65536], v[4096];
    int fd = listener(url, sizeof(url));
    CHECK(fd >= 0);
    /* data from stdin, token from the environment */
    setenv("MERCURE_PUBLISHER_TOKEN", "env.token.value", 1);
    char *argv[] = {(char *)ssehub(), "pub", "--hub", url, "--topic", "t", NULL};
    CHECK_EQ_INT(run(argv, "from stdin\n", out, sizeof(out), fd, req, sizeof(req), OK_REPLY), 0);
    unsetenv("MERCURE_PUBLISHER_TOKEN");
    CHECK(strcasestr(req, "\r\nAuthorization: Bearer env.token.value\r\n"));
    const char *body = strstr(req, "\r\n\r\n") + 4;
    CHECK(form_get(body, "data", 0, v, sizeof(v)));
    CHECK_EQ_STR(v, "from stdin\n");
    CHECK(!form_get(body, "private", 0, v, sizeof(v)));
    /* data from @file, --token flag */
    char path[] = "/tmp/ssehub-pub-XXXXXX";
    int tf = mkstemp(path);
    CHECK(tf >= 0);
    CHECK_EQ_INT(write(tf, "file\ndata", 9), 9);
    close(tf);
    char at[64];
    snprintf(at, sizeof(at), "@%s", path);
    char *argv2[] = {(char *)ssehub(), "pub", "--hub",   url,          "--topic", "t",
                     "--data",         at,    "--token", "flag.token", NULL};
    CHECK_EQ_INT(run(argv2, NULL, out, sizeof(out), fd, req, sizeof(req), OK_REPLY), 0);
    unlink(path);
    CHECK(strcasestr(req, "\r\nAuthorization: Bearer flag.token\r\n"));
    body = strstr(req, "\r\n\r\n") + 4;
    CHECK(form_get(body, "data", 0, v, sizeof(v)));
    CHECK_EQ_STR(v, "file\ndata");
    close(fd);
    return 0;
}

static int test_pub_exit_codes(void)
{
    char url[128], out[4096], req[65536];
    int fd = listener(url, sizeof(url));
    CHECK(fd >= 0);
    char *argv[] = {(char *)ssehub(), "pub", "--hub",   url,   "--topic", "t",
                    "--data",         "x",   "--token", "tok", NULL};
    CHECK_EQ_INT(run(argv, NULL, out, sizeof(out), fd, req, sizeof(req),
                     "HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
                     "forbidden"),
                 4);
    CHECK_EQ_INT(run(argv, NULL, out, sizeof(out), fd, req, sizeof(req),
                     "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                 4);
    CHECK_EQ_INT(run(argv, NULL, out, sizeof(out), fd, req, sizeof(req),
                     "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
                     "bad"),
                 1);
    CHECK_EQ_STR(out, "");
    close(fd);
    /* nobody listening any more: transport error */
    CHECK_EQ_INT(run(argv, NULL, out, sizeof(out), -1, NULL, 0, NULL), 3);
    /* usage */
    char *no_topic[] = {(char *)ssehub(), "pub", "--data", "x", NULL};
    CHECK_EQ_INT(run(no_topic, NULL, out, sizeof(out), -1, NULL, 0, NULL), 2);
    char *bad_id[] = {(char *)ssehub(), "pub", "--topic", "t", "--data", "x", "--id", "a\nb", NULL};
    CHECK_EQ_INT(run(bad_id, NULL, out, sizeof(out), -1, NULL, 0, NULL), 2);
    char *bad_retry[] = {(char *)ssehub(), "pub", "--topic", "t", "--retry", "soon", NULL};
    CHECK_EQ_INT(run(bad_retry, NULL, out, sizeof(out), -1, NULL, 0, NULL), 2);
    char *help[] = {(char *)ssehub(), "pub", "--help", NULL};
    CHECK_EQ_INT(run(help, NULL, out, sizeof(out), -1, NULL, 0, NULL), 0);
    CHECK(strstr(out, "exit status"));
    return 0;
}

/* `ssehub pub` against the real hub (`ssehub serve` on 127.0.0.1, port 0). */
static int test_pub_real_hub(void)
{
    int po[2];
    CHECK_EQ_INT(pipe(po), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(po[1], 1);
        close(po[0]);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        unsetenv("MERCURE_PUBLISHER_JWT_KEY");
        unsetenv("MERCURE_SUBSCRIBER_JWT_KEY");
        unsetenv("MERCURE_JWT_KEY");
        execl(ssehub(), ssehub(), "serve", "--listen", "127.0.0.1:0", "--publisher-jwt-key", KEY,
              (char *)NULL);
        _exit(127);
    }
    close(po[1]);
    char buf[4096] = "", hub[256] = "";
    size_t n = 0;
    while (!hub[0] && n + 1 < sizeof(buf)) {
        struct pollfd q = {po[0], POLLIN, 0};
        if (poll(&q, 1, 10000) != 1)
            break;
        ssize_t r = read(po[0], buf + n, sizeof(buf) - n - 1);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        const char *h = strstr(buf, "hub: ");
        if (h && strchr(h, ' ') && strstr(h, "/.well-known/mercure")) {
            size_t l = strcspn(h + 5, " \n");
            if (l < sizeof(hub))
                snprintf(hub, sizeof(hub), "%.*s", (int)l, h + 5);
        }
    }
    int ok = hub[0] != '\0';
    char out[4096];
    int rc1 = -1, rc2 = -1, rc3 = -1, rc4 = -1;
    char id_out[4096] = "", first[4096] = "";
    if (ok) {
        unsetenv("MERCURE_PUBLISHER_TOKEN");
        unsetenv("SSEHUB_TOKEN");
        char *a1[] = {(char *)ssehub(), "pub",   "--hub", hub, "--topic", "https://ex.com/a",
                      "--data",         "hello", "--key", KEY, NULL};
        rc1 = run(a1, NULL, first, sizeof(first), -1, NULL, 0, NULL);
        char *a2[] = {(char *)ssehub(),   "pub",    "--hub", hub,       "--topic",
                      "https://ex.com/a", "--data", "hello", "--key",   KEY,
                      "--draft",          "08",     "--id",  "my-id-1", NULL};
        rc2 = run(a2, NULL, id_out, sizeof(id_out), -1, NULL, 0, NULL);
        char *a3[] = {
            (char *)ssehub(), "pub",   "--hub", hub,           "--topic", "https://ex.com/a",
            "--data",         "hello", "--key", "not-the-key", NULL};
        rc3 = run(a3, NULL, out, sizeof(out), -1, NULL, 0, NULL);
        /* a draft-08 token for another hub (aud) is refused */
        char *a4[] = {(char *)ssehub(),
                      "pub",
                      "--hub",
                      hub,
                      "--topic",
                      "https://ex.com/a",
                      "--data",
                      "x",
                      "--key",
                      KEY,
                      "--draft",
                      "08",
                      "--aud",
                      "https://elsewhere.example/.well-known/mercure",
                      NULL};
        rc4 = run(a4, NULL, out, sizeof(out), -1, NULL, 0, NULL);
    }
    kill(pid, SIGTERM);
    int st;
    for (int i = 0; i < 50 && waitpid(pid, &st, WNOHANG) == 0; i++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
        if (i == 49) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
    }
    close(po[0]);
    CHECK(ok);
    CHECK_EQ_INT(rc1, 0);
    CHECK(strlen(first) > 1); /* the generated id */
    CHECK_EQ_INT(rc2, 0);
    CHECK_EQ_STR(id_out, "my-id-1\n");
    CHECK_EQ_INT(rc3, 4);
    CHECK_EQ_INT(rc4, 4);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_token_roundtrip_07), CHECK_TEST(test_token_roundtrip_08),
           CHECK_TEST(test_token_rs_es), CHECK_TEST(test_token_errors),
           CHECK_TEST(test_pub_request), CHECK_TEST(test_pub_stdin_file_token),
           CHECK_TEST(test_pub_exit_codes), CHECK_TEST(test_pub_real_hub))
