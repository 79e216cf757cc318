/*
 * test_bench_smoke.c: runs `ssehub bench` (path in $SSEHUB) for about two seconds with 50
 * subscribers against $SSE_BINARY_DIR/bench/bench_broadcast_server, then against the hub
 * (`ssehub serve`, 5 topics, a publisher token from `ssehub token`), and checks each JSON
 * report: every stream opened, deliveries arrived and all of them were counted, no errors. Then
 * against a port nobody listens on, which must report failures. Speed is not checked.
 */
#include "harness/check.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char server_path[4096];

/* Start the server; *pid and *port on success, 0 or -1. */
static int start_server(pid_t *pid, int *port)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    pid_t p = fork();
    if (p < 0)
        return -1;
    if (p == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(server_path, server_path, "--listen", "127.0.0.1:0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256] = "";
    int ok = f && fgets(line, sizeof(line), f) != NULL;
    if (f)
        fclose(f);
    char *colon = strrchr(line, ':');
    if (!ok || strncmp(line, "listening on ", 13) != 0 || !colon) {
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
        return -1;
    }
    *port = (int)strtol(colon + 1, NULL, 10);
    *pid = p;
    return 0;
}

/*
 * Start `ssehub serve` on an ephemeral port with key; *pid, *port and *out (its output, to be
 * closed once it has stopped, so that it never writes to a closed pipe) on success; 0 or -1.
 */
static int start_hub(const char *key, pid_t *pid, int *port, FILE **out)
{
    const char *ssehub = getenv("SSEHUB");
    int fds[2];
    if (!ssehub || pipe(fds) < 0)
        return -1;
    pid_t p = fork();
    if (p < 0)
        return -1;
    if (p == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execl(ssehub, ssehub, "serve", "--listen", "127.0.0.1:0", "--publisher-jwt-key", key,
              "--anonymous", "--heartbeat", "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[512];
    int found = 0;
    /* "listening on http://127.0.0.1:PORT/" among the first lines it prints */
    for (int i = 0; f && i < 20 && fgets(line, sizeof(line), f); i++) {
        char *u = strstr(line, "listening on http://127.0.0.1:");
        if (u) {
            *port = (int)strtol(u + strlen("listening on http://127.0.0.1:"), NULL, 10);
            found = *port > 0;
            break;
        }
    }
    if (!found) {
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
        if (f)
            fclose(f);
        return -1;
    }
    *pid = p;
    *out = f;
    return 0;
}

/* Run ssehub bench with args, capture stdout into out; returns the exit status or -1. */
static int run_bench(const char *args, char *out, size_t cap)
{
    const char *ssehub = getenv("SSEHUB");
    if (!ssehub)
        return -1;
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' bench --json %s 2>/dev/null", ssehub, args);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The number after "key": in a flat JSON text, or -1. */
static double json_num(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    const char *p = strstr(json, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

static int test_broadcast(void)
{
    pid_t pid;
    int port;
    CHECK(start_server(&pid, &port) == 0);
    char args[512], out[8192];
    snprintf(args, sizeof(args),
             "--target plain --url http://127.0.0.1:%d/stream --pub-url "
             "http://127.0.0.1:%d/publish -n 50 -r 20 -d 2 --warmup 0.5 --drain 2 "
             "--server-pid %d --idle 0.2",
             port, port, (int)pid);
    int rc = run_bench(args, out, sizeof(out));
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    if (rc != 0)
        fprintf(stderr, "%s\n", out);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(json_num(out, "connected"), 50);
    CHECK_EQ_INT(json_num(out, "failed"), 0);
    CHECK(json_num(out, "published_measured") >= 20);
    CHECK(json_num(out, "deliveries") > 0);
    /* json_num() is -1 for a missing key: both sides of an equality must be present */
    CHECK(json_num(out, "deliveries_expected") > 0);
    CHECK_EQ_INT(json_num(out, "deliveries"), json_num(out, "deliveries_expected"));
    CHECK(json_num(out, "fanout_messages") > 0);
    CHECK_EQ_INT(json_num(out, "fanout_complete"), json_num(out, "fanout_messages"));
    CHECK_EQ_INT(json_num(out, "errors"), 0);
    CHECK_EQ_INT(json_num(out, "bad_events"), 0);
    CHECK(json_num(out, "server_pss_after_kib") > 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

static int test_hub(void)
{
    const char *key = "bench-smoke-key-0123456789abcdef0123456789";
    char cmd[512], token[2048] = "";
    snprintf(cmd, sizeof(cmd), "'%s' token --publish '*' --key %s", getenv("SSEHUB"), key);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    CHECK(fgets(token, sizeof(token), f) != NULL);
    pclose(f);
    token[strcspn(token, "\r\n")] = '\0';
    CHECK(strlen(token) > 20);
    pid_t pid;
    int port;
    FILE *hub_out;
    CHECK(start_hub(key, &pid, &port, &hub_out) == 0);
    char args[4096], out[8192];
    snprintf(args, sizeof(args),
             "--target mercure --url http://127.0.0.1:%d/.well-known/mercure --token %s "
             "-n 50 -t 5 -r 20 -d 2 --warmup 0.5 --drain 2 --server-pid %d --idle 0.2",
             port, token, (int)pid);
    int rc = run_bench(args, out, sizeof(out));
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    fclose(hub_out);
    if (rc != 0)
        fprintf(stderr, "%s\n", out);
    CHECK_EQ_INT(rc, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ_INT(json_num(out, "connected"), 50);
    CHECK_EQ_INT(json_num(out, "publish_errors"), 0);
    CHECK(json_num(out, "published_measured") >= 20);
    CHECK(json_num(out, "deliveries") > 0);
    CHECK(json_num(out, "deliveries_expected") > 0);
    CHECK_EQ_INT(json_num(out, "deliveries"), json_num(out, "deliveries_expected"));
    CHECK_EQ_INT(json_num(out, "errors"), 0);
    return 0;
}

static int test_nobody_listening(void)
{
    /* Bind a port, close it: nothing listens there for the run's short duration. */
    pid_t pid;
    int port;
    CHECK(start_server(&pid, &port) == 0);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char args[512], out[8192];
    snprintf(args, sizeof(args),
             "--target plain --url http://127.0.0.1:%d/stream --pub-url "
             "http://127.0.0.1:%d/publish -n 5 -r 5 -d 1 --connect-timeout 5",
             port, port);
    int rc = run_bench(args, out, sizeof(out));
    CHECK_EQ_INT(rc, 1);
    CHECK_EQ_INT(json_num(out, "connected"), 0);
    CHECK_EQ_INT(json_num(out, "failed"), 5);
    CHECK(json_num(out, "errors") >= 5);
    return 0;
}

static int test_setup(void)
{
    const char *bin = getenv("SSE_BINARY_DIR");
    CHECK(bin != NULL);
    CHECK(getenv("SSEHUB") != NULL);
    snprintf(server_path, sizeof(server_path), "%s/bench/bench_broadcast_server", bin);
    CHECK(access(server_path, X_OK) == 0);
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_setup), CHECK_TEST(test_broadcast), CHECK_TEST(test_hub),
           CHECK_TEST(test_nobody_listening))
