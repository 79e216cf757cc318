/*
 * test_sub_cli.c: `ssehub sub` (src/cli/cmd_sub.c) run as a program (env SSEHUB) against the
 * crafted-response server: its --json lines must be exactly those of `ssehub parse` on the same
 * body, followed by the one "end" line; flags, filters, limits and exit codes.
 */
#include "crafted_server.h"
#include "harness/check.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SSE_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"

/* Run `$SSEHUB args` (a shell fragment), capture stdout into out; returns the exit status,
 * or -1 if it could not run. */
static int run_ssehub(const char *args, char *out, size_t len)
{
    const char *bin = getenv("SSEHUB");
    char cmd[2048];
    if (!bin)
        return -1;
    snprintf(cmd, sizeof(cmd), "'%s' %s 2>/dev/null", bin, args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int starts_with(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

static void h_fixed(struct ts_conn *c, unsigned idx, void *ud)
{
    ts_send(c, ud);
}

static const char body[] = "data: a\n\n"
                           "event: foo\ndata: b \"quoted\"\tand\\slash\nid: 7\n\n"
                           "retry: 50\n\n"
                           "data: multi\ndata: line\n\n"
                           ": comment\n"
                           "data: \xc3\xa9t\xc3\xa9 \xff bad byte\n\n"
                           "data: ctl \x01\x1f\x7f end\n\n"
                           "data: partial, never dispatched";

static int test_json_matches_parse(void)
{
    char url[256], args[512], got[8192], want[8192];
    char path[] = "/tmp/test_sub_cli_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK_EQ_INT(write(fd, body, sizeof(body) - 1), (long long)(sizeof(body) - 1));
    close(fd);
    snprintf(args, sizeof(args), "parse %s", path);
    int prc = run_ssehub(args, want, sizeof(want));
    unlink(path);
    CHECK_EQ_INT(prc, 0);
    CHECK(strstr(want, "\"retry\":50"));

    struct ts_server *s = ts_start(h_fixed, SSE_HEAD "data: a\n\n"
                                                     "event: foo\ndata: b \"quoted\"\tand\\slash\n"
                                                     "id: 7\n\nretry: 50\n\n"
                                                     "data: multi\ndata: line\n\n: comment\n"
                                                     "data: \xc3\xa9t\xc3\xa9 \xff bad byte\n\n"
                                                     "data: ctl \x01\x1f\x7f end\n\n"
                                                     "data: partial, never dispatched");
    CHECK(s);
    snprintf(args, sizeof(args), "sub --json --no-reconnect %s", ts_url(s, "/", url, sizeof(url)));
    int rc = run_ssehub(args, got, sizeof(got));
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    size_t wl = strlen(want);
    CHECK(strlen(got) > wl);
    CHECK_EQ_MEM(got, wl, want, wl);
    CHECK_EQ_STR(got + wl, "{\"end\":\"reconnecting\",\"retry_ms\":50,\"reason\":"
                           "\"the server ended the stream\"}\n");
    return 0;
}

struct end_case {
    const char *response;
    const char *flags;
    int exit_code;
    const char *output;
};

static int test_end_lines_and_exit_codes(void)
{
    static const struct end_case cases[] = {
        {"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", "", 0,
         "{\"end\":\"closed\",\"retry_ms\":3000,\"reason\":\"HTTP status 204: the server asked "
         "the client not to reconnect\"}\n"},
        {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "", 1,
         "{\"end\":\"closed\",\"retry_ms\":3000,\"reason\":\"HTTP status 404: an event stream "
         "needs 200\"}\n"},
        {"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\ndata: x\n\n", "",
         1,
         "{\"end\":\"closed\",\"retry_ms\":3000,\"reason\":\"Content-Type 'text/html' is not "
         "text/event-stream\"}\n"},
        {SSE_HEAD "data: m\n\nevent: foo\ndata: 1\n\ndata: m\n\nevent: bar\ndata: 2\n\n"
                  "event: foo\ndata: 3\n\nevent: foo\ndata: 4\n\n",
         "--event foo --event bar --event foo --max-events 3", 0,
         "{\"type\":\"foo\",\"data\":\"1\",\"id\":\"\"}\n"
         "{\"type\":\"bar\",\"data\":\"2\",\"id\":\"\"}\n"
         "{\"type\":\"foo\",\"data\":\"3\",\"id\":\"\"}\n"
         "{\"end\":\"closed\",\"retry_ms\":3000,\"reason\":\"--max-events reached\"}\n"},
        {SSE_HEAD "retry: 20\ndata: x\n\n", "--max-connections 3", 0,
         "{\"retry\":20}\n{\"type\":\"message\",\"data\":\"x\",\"id\":\"\"}\n"
         "{\"retry\":20}\n{\"type\":\"message\",\"data\":\"x\",\"id\":\"\"}\n"
         "{\"retry\":20}\n{\"type\":\"message\",\"data\":\"x\",\"id\":\"\"}\n"
         "{\"end\":\"reconnecting\",\"retry_ms\":20,\"reason\":\"the server ended the "
         "stream\"}\n"},
        {SSE_HEAD "data: big " /* 150 bytes over a 100-byte limit */
                  "0123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789012345678901234567890123456789012345678901234567890123456789\n\n",
         "--max-event 100", 1,
         "{\"end\":\"closed\",\"retry_ms\":3000,\"reason\":\"an event or a line exceeds the size "
         "limit (max_event / max_line)\"}\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char url[256], args[512], got[4096];
        struct ts_server *s = ts_start(h_fixed, (void *)cases[i].response);
        CHECK(s);
        snprintf(args, sizeof(args), "sub --json %s %s", cases[i].flags,
                 ts_url(s, "/", url, sizeof(url)));
        int rc = run_ssehub(args, got, sizeof(got));
        ts_stop(s);
        if (rc != cases[i].exit_code || strcmp(got, cases[i].output))
            fprintf(stderr, "  case %zu: ssehub %s\n", i, args);
        CHECK_EQ_STR(got, cases[i].output);
        CHECK_EQ_INT(rc, cases[i].exit_code);
    }
    return 0;
}

static void h_stall(struct ts_conn *c, unsigned idx, void *ud)
{
    ts_send(c, SSE_HEAD "id: s1\ndata: a\n\n");
    ts_sleep(c, 5000);
}

static int test_timeouts(void)
{
    char url[256], args[512], got[4096];
    struct ts_server *s = ts_start(h_stall, NULL);
    CHECK(s);
    snprintf(args, sizeof(args), "sub --json --timeout-ms 300 %s",
             ts_url(s, "/", url, sizeof(url)));
    int rc = run_ssehub(args, got, sizeof(got));
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(got, "{\"type\":\"message\",\"data\":\"a\",\"id\":\"s1\"}\n"
                      "{\"end\":\"timeout\",\"retry_ms\":3000,\"reason\":\"--timeout-ms reached "
                      "while open\"}\n");
    /* The read timeout ends the connection; --no-reconnect then stops. */
    snprintf(args, sizeof(args),
             "sub --json --read-timeout-ms 200 --reconnect-ms 10 "
             "--max-connections 2 %s",
             url);
    rc = run_ssehub(args, got, sizeof(got));
    char hv[64];
    const char *lei = ts_header(s, 2, "Last-Event-ID", hv, sizeof(hv));
    int lei_ok = lei && !strcmp(lei, "s1");
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK(lei_ok);
    CHECK_EQ_STR(got, "{\"type\":\"message\",\"data\":\"a\",\"id\":\"s1\"}\n"
                      "{\"type\":\"message\",\"data\":\"a\",\"id\":\"s1\"}\n"
                      "{\"end\":\"reconnecting\",\"retry_ms\":10,\"reason\":\"no bytes received "
                      "for 200 ms (read timeout)\"}\n");
    return 0;
}

static void h_ids(struct ts_conn *c, unsigned idx, void *ud)
{
    ts_send(c, SSE_HEAD);
    ts_send(c, idx == 0 ? "id: 5\ndata: x\n\n" : "data: y\n\n");
}

static int test_headers_and_last_event_id(void)
{
    char url[256], args[512], got[4096], hv[128];
    struct ts_server *s = ts_start(h_ids, NULL);
    CHECK(s);
    snprintf(args, sizeof(args),
             "sub --json -H 'Authorization: Bearer tok' -H 'X-Two: 2' --last-event-id init "
             "--reconnect-ms 5 --max-connections 2 %s",
             ts_url(s, "/", url, sizeof(url)));
    int rc = run_ssehub(args, got, sizeof(got));
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(ts_header(s, 0, "Authorization", hv, sizeof(hv)), "Bearer tok");
    CHECK_EQ_STR(ts_header(s, 0, "X-Two", hv, sizeof(hv)), "2");
    CHECK_EQ_STR(ts_header(s, 0, "Last-Event-ID", hv, sizeof(hv)), "init");
    CHECK_EQ_STR(ts_header(s, 1, "Last-Event-ID", hv, sizeof(hv)), "5");
    CHECK_EQ_STR(ts_header(s, 1, "Authorization", hv, sizeof(hv)), "Bearer tok");
    ts_stop(s);
    CHECK_EQ_STR(got, "{\"type\":\"message\",\"data\":\"x\",\"id\":\"5\"}\n"
                      "{\"type\":\"message\",\"data\":\"y\",\"id\":\"5\"}\n"
                      "{\"end\":\"reconnecting\",\"retry_ms\":5,\"reason\":\"the server ended "
                      "the stream\"}\n");
    return 0;
}

static int test_human_output(void)
{
    char url[256], args[512], got[4096];
    struct ts_server *s =
        ts_start(h_fixed, SSE_HEAD "data: a\n\nevent: t\nid: 3\ndata: l1\ndata: l2\n\n");
    CHECK(s);
    snprintf(args, sizeof(args), "sub --no-reconnect %s", ts_url(s, "/", url, sizeof(url)));
    int rc = run_ssehub(args, got, sizeof(got));
    ts_stop(s);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(got, "event: message\ndata: a\n\nevent: t\nid: 3\ndata: l1\ndata: l2\n\n");
    return 0;
}

static int test_usage_and_failures(void)
{
    char got[4096];
    CHECK_EQ_INT(run_ssehub("sub", got, sizeof(got)), 2);
    CHECK_EQ_INT(run_ssehub("sub --bogus http://127.0.0.1:1/", got, sizeof(got)), 2);
    CHECK_EQ_INT(run_ssehub("sub --max-events x http://127.0.0.1:1/", got, sizeof(got)), 2);
    CHECK_EQ_INT(run_ssehub("sub --max-events 0 http://127.0.0.1:1/", got, sizeof(got)), 2);
    CHECK_EQ_INT(run_ssehub("sub --timeout-ms", got, sizeof(got)), 2);
    CHECK_EQ_INT(run_ssehub("sub ftp://127.0.0.1/", got, sizeof(got)), 2);
    CHECK_EQ_INT(run_ssehub("sub -H 'NoColon' http://127.0.0.1:1/", got, sizeof(got)), 2);
    CHECK_EQ_INT(run_ssehub("sub http://127.0.0.1:1/ http://127.0.0.1:2/", got, sizeof(got)), 2);
    CHECK_EQ_INT(run_ssehub("sub --help", got, sizeof(got)), 0);
    CHECK(strstr(got, "exit status"));
    /* Nobody listens: the connection never opens. */
    struct ts_server *s = ts_start(h_fixed, "");
    CHECK(s);
    char url[256], args[512];
    ts_url(s, "/", url, sizeof(url));
    ts_stop(s);
    snprintf(args, sizeof(args), "sub --json --no-reconnect %s", url);
    CHECK_EQ_INT(run_ssehub(args, got, sizeof(got)), 1);
    CHECK(starts_with(got, "{\"end\":\"reconnecting\",\"retry_ms\":3000,\"reason\":\"Failed to"));
    snprintf(args, sizeof(args), "sub --json --reconnect-ms 5 --max-failures 3 %s", url);
    CHECK_EQ_INT(run_ssehub(args, got, sizeof(got)), 1);
    CHECK(
        starts_with(got, "{\"end\":\"closed\",\"retry_ms\":5,\"reason\":\"gave up after 3 failed"));
    return 0;
}

static void h_hold(struct ts_conn *c, unsigned idx, void *ud)
{
    ts_send(c, SSE_HEAD "data: first\n\n");
    ts_sleep(c, 10000);
}

/* Start `$SSEHUB sub --json url`, wait for its first line, send sig, collect the rest. */
static int signal_run(const char *url, int sig, char *out, size_t len)
{
    const char *bin = getenv("SSEHUB");
    int p[2];
    if (!bin || pipe(p))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        execl(bin, bin, "sub", "--json", url, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    int signalled = 0;
    uint64_t end = ts_now_ms() + 10000;
    while (n + 1 < len && ts_now_ms() < end) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t r = read(p[0], out + n, len - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        out[n] = '\0';
        if (!signalled && strchr(out, '\n')) {
            kill(pid, sig);
            signalled = 1;
        }
    }
    out[n] = '\0';
    close(p[0]);
    int st;
    if (!signalled)
        kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int test_signals_print_end_line(void)
{
    char url[256], got[4096];
    struct ts_server *s = ts_start(h_hold, NULL);
    CHECK(s);
    ts_url(s, "/", url, sizeof(url));
    int rc = signal_run(url, SIGINT, got, sizeof(got));
    CHECK_EQ_INT(rc, 130);
    CHECK_EQ_STR(got, "{\"type\":\"message\",\"data\":\"first\",\"id\":\"\"}\n"
                      "{\"end\":\"closed\",\"retry_ms\":3000,\"reason\":\"interrupted by "
                      "SIGINT\"}\n");
    rc = signal_run(url, SIGTERM, got, sizeof(got));
    ts_stop(s);
    CHECK_EQ_INT(rc, 143);
    CHECK(strstr(got, "\"reason\":\"interrupted by SIGTERM\"}\n"));
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_json_matches_parse), CHECK_TEST(test_end_lines_and_exit_codes),
           CHECK_TEST(test_timeouts), CHECK_TEST(test_headers_and_last_event_id),
           CHECK_TEST(test_human_output), CHECK_TEST(test_usage_and_failures),
           CHECK_TEST(test_signals_print_end_line))
