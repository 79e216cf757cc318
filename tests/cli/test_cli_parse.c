/*
 * test_cli_parse.c: `ssehub parse` end to end (golden outputs, escaping, exit codes), plus the
 * JSON string writer of cli_json.c on inputs the parser never produces (CR, invalid UTF-8).
 * The binary is run with fork/exec; its stdin, stdout and stderr are temporary files.
 */
#include "cli_json.h"
#include "cli_log.h"
#include "harness/check.h"

#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct run {
    int status;      /* exit status, or -1 if it did not exit normally */
    char out[65536]; /* stdout (NUL-terminated, truncated) */
    size_t out_len;
    char err[4096]; /* stderr */
};

static size_t slurp(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    return n;
}

static int tmpfd(void)
{
    char name[] = "/tmp/ssehub-cli-parse-XXXXXX";
    int fd = mkstemp(name);
    if (fd >= 0)
        unlink(name);
    return fd;
}

/* Run `ssehub parse <args...>` with in[0..n) on stdin (in may be NULL: empty stdin). */
static int run_parse(struct run *r, const char *in, size_t n, const char *const *args)
{
    const char *exe = getenv("SSEHUB");
    if (!exe) {
        fprintf(stderr, "  SSEHUB is not set (run under ctest)\n");
        return -1;
    }
    int fin = tmpfd(), fout = tmpfd(), ferr = tmpfd();
    if (fin < 0 || fout < 0 || ferr < 0)
        return -1;
    if (in && n && write(fin, in, n) != (ssize_t)n)
        return -1;
    lseek(fin, 0, SEEK_SET);
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)exe;
    argv[argc++] = (char *)"parse";
    for (; args && *args && argc < 15; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fin, 0);
        dup2(fout, 1);
        dup2(ferr, 2);
        execv(exe, argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r->out_len = slurp(fout, r->out, sizeof(r->out));
    slurp(ferr, r->err, sizeof(r->err));
    close(fin);
    close(fout);
    close(ferr);
    return 0;
}

#define RUN(r, lit, ...)                                                                           \
    do {                                                                                           \
        static const char *const args_[] = {__VA_ARGS__, NULL};                                    \
        CHECK_EQ_INT(run_parse(r, lit, sizeof(lit) - 1, args_), 0);                                \
    } while (0)

static int test_golden_basic(void)
{
    static struct run r;
    RUN(&r,
        "retry: 3000\n: keep-alive\nid: 1\nevent: tick\ndata: {\"n\":1}\n\n"
        "data: line one\ndata: line two\n\n"
        "id: 2\ndata: x\nfoo: ignored\n\n"
        "event: lost\n\n"
        "data: incomplete\n",
        NULL);
    CHECK_EQ_INT(r.status, 0);
    const char *want = "{\"retry\":3000}\n"
                       "{\"type\":\"tick\",\"data\":\"{\\\"n\\\":1}\",\"id\":\"1\"}\n"
                       "{\"type\":\"message\",\"data\":\"line one\\u000aline two\",\"id\":\"1\"}\n"
                       "{\"type\":\"message\",\"data\":\"x\",\"id\":\"2\"}\n";
    CHECK_EQ_MEM(r.out, r.out_len, want, strlen(want));
    CHECK_EQ_STR(r.err, "");
    return 0;
}

static int test_golden_bom_crlf_utf8(void)
{
    static struct run r;
    RUN(&r,
        "\xEF\xBB\xBF"
        "data: caf\xC3\xA9\r\ndata: \xE2\x80\xA8\xFF\r\n\r\n"
        "id: a\0b\rdata: \0\r\r",
        NULL);
    CHECK_EQ_INT(r.status, 0);
    const char *want = "{\"type\":\"message\",\"data\":"
                       "\"caf\xC3\xA9\\u000a\xE2\x80\xA8\xEF\xBF\xBD\",\"id\":\"\"}\n"
                       "{\"type\":\"message\",\"data\":\"\\u0000\",\"id\":\"\"}\n";
    CHECK_EQ_MEM(r.out, r.out_len, want, strlen(want));
    return 0;
}

/* Every control character that can reach the output, and the two JSON specials. */
static int test_escaping_every_control_char(void)
{
    static struct run r;
    char in[256], want[1024];
    size_t n = 0, w = 0;
    memcpy(in, "data: ", 6);
    n = 6;
    for (int c = 0; c < 0x20; c++)
        if (c != '\r' && c != '\n')
            in[n++] = (char)c;
    memcpy(in + n, "\x7f\"\\/\ndata:\n\n", 13);
    n += 13;
    w += (size_t)snprintf(want + w, sizeof(want) - w, "{\"type\":\"message\",\"data\":\"");
    for (int c = 0; c < 0x20; c++)
        if (c != '\r' && c != '\n')
            w += (size_t)snprintf(want + w, sizeof(want) - w, "\\u%04x", c);
    w += (size_t)snprintf(want + w, sizeof(want) - w, "\\u007f\\\"\\\\/\\u000a\",\"id\":\"\"}\n");
    CHECK_EQ_INT(run_parse(&r, in, n, NULL), 0);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_MEM(r.out, r.out_len, want, w);
    return 0;
}

static int test_file_argument_and_dash(void)
{
    static struct run r;
    char path[] = "/tmp/ssehub-cli-parse-in-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK_EQ_INT(write(fd, "data: from file\n\n", 17), 17);
    close(fd);
    static const char *args[] = {NULL, NULL};
    args[0] = path;
    CHECK_EQ_INT(run_parse(&r, "data: stdin\n\n", 13, args), 0);
    unlink(path);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_STR(r.out, "{\"type\":\"message\",\"data\":\"from file\",\"id\":\"\"}\n");
    RUN(&r, "data: stdin\n\n", "-");
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_STR(r.out, "{\"type\":\"message\",\"data\":\"stdin\",\"id\":\"\"}\n");
    return 0;
}

static int test_exit_codes(void)
{
    static struct run r;
    RUN(&r, "", "/nonexistent/ssehub-test-input");
    CHECK_EQ_INT(r.status, 1);
    CHECK(strstr(r.err, "No such file") != NULL);
    RUN(&r, "", "/");
    CHECK_EQ_INT(r.status, 1); /* reading a directory is a read error */
    CHECK(strstr(r.err, "read error") != NULL);
    RUN(&r, "data: 1\n\ndata: 0123456789\n\n", "--max-line", "10");
    CHECK_EQ_INT(r.status, 1);
    CHECK(strstr(r.err, "limit") != NULL);
    CHECK_EQ_STR(r.out, "{\"type\":\"message\",\"data\":\"1\",\"id\":\"\"}\n"); /* before it */
    RUN(&r, "data: 0123\ndata: 0123\n\n", "--max-event", "8");
    CHECK_EQ_INT(r.status, 1);
    CHECK(strstr(r.err, "--max-event") != NULL);
    RUN(&r, "data: 0123456789\n\n", "--max-line", "100", "--max-event", "100");
    CHECK_EQ_INT(r.status, 0);
    RUN(&r, "", "--max-line", "0");
    CHECK_EQ_INT(r.status, 2);
    RUN(&r, "", "--max-line", "12x");
    CHECK_EQ_INT(r.status, 2);
    RUN(&r, "", "--max-event");
    CHECK_EQ_INT(r.status, 2);
    RUN(&r, "", "--bogus");
    CHECK_EQ_INT(r.status, 2);
    RUN(&r, "", "a", "b");
    CHECK_EQ_INT(r.status, 2);
    RUN(&r, "", "--help");
    CHECK_EQ_INT(r.status, 0);
    CHECK(strstr(r.out, "usage: ssehub parse") != NULL);
    RUN(&r, "", "-");
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_UINT(r.out_len, 0);
    return 0;
}

/*
 * A live stream on a pipe: each event's line comes out as soon as its bytes have been read, while
 * the input is still open (ssehub parse reads with read(2) and writes after every read).
 */
static int test_live_pipe(void)
{
    const char *exe = getenv("SSEHUB");
    CHECK(exe != NULL);
    int in[2], out[2];
    CHECK_EQ_INT(pipe(in), 0);
    CHECK_EQ_INT(pipe(out), 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execl(exe, exe, "parse", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    static const char *const events[] = {"data: first\n\n", "id: 7\ndata: second\n\n"};
    static const char *const lines[] = {
        "{\"type\":\"message\",\"data\":\"first\",\"id\":\"\"}\n",
        "{\"type\":\"message\",\"data\":\"second\",\"id\":\"7\"}\n"};
    int ok = 1;
    for (int e = 0; e < 2 && ok; e++) {
        size_t n = strlen(events[e]), want = strlen(lines[e]), got = 0;
        char buf[256];
        ok = write(in[1], events[e], n) == (ssize_t)n;
        struct pollfd pfd = {out[0], POLLIN, 0};
        while (ok && got < want) { /* the input stays open: the line must come anyway */
            ok = poll(&pfd, 1, 5000) == 1;
            ssize_t k = ok ? read(out[0], buf + got, sizeof(buf) - got) : -1;
            ok = ok && k > 0;
            got += ok ? (size_t)k : 0;
        }
        if (!ok || got != want || memcmp(buf, lines[e], want) != 0) {
            fprintf(stderr, "  event %d: got %.*s\n", e, (int)got, buf);
            ok = 0;
        }
    }
    close(in[1]);
    close(out[0]);
    int st;
    CHECK_EQ_INT(waitpid(pid, &st, 0), pid);
    CHECK(ok);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

static int test_big_input(void)
{
    /* many events across many 64 KiB reads, ids changing: count the lines */
    static struct run r;
    size_t n = 0, cap = 300000;
    char *in = malloc(cap);
    CHECK(in != NULL);
    int events = 0;
    while (n + 64 < cap) {
        n += (size_t)snprintf(in + n, cap - n, "id: %d\ndata: %d\n\n", events, events);
        events++;
    }
    int rc = run_parse(&r, in, n, NULL);
    free(in);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(r.status, 0);
    int lines = 0;
    for (size_t i = 0; i < r.out_len; i++)
        lines += r.out[i] == '\n';
    CHECK(r.out_len < sizeof(r.out) - 1 ? lines == events : lines > 1000);
    return 0;
}

/* The writer directly: bytes the parser never emits must still give valid JSON. */
static int test_json_writer(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    static const char raw[] = "a\rb\xFF\xC3(\xE2\x82\xAC\xF0\x9F\x98\x80\xED\xA0\x80";
    sse_cli_json_string(f, raw, sizeof(raw) - 1);
    fputc(' ', f);
    sse_cli_json_retry(f, 18446744073709551615ull);
    sse_parsed_event ev = {"t", 1, "d", 1, "", 0};
    sse_cli_json_event(f, &ev);
    fclose(f);
    const char *want = "\"a\\u000db\\ufffd\\ufffd(\xE2\x82\xAC\xF0\x9F\x98\x80\\ufffd\\ufffd"
                       "\\ufffd\" {\"retry\":18446744073709551615}\n"
                       "{\"type\":\"t\",\"data\":\"d\",\"id\":\"\"}\n";
    int ok = len == strlen(want) && memcmp(buf, want, len) == 0;
    if (!ok)
        fprintf(stderr, "  got: %.*s\n", (int)len, buf);
    free(buf);
    CHECK(ok);
    return 0;
}

/* Write with the FILE * form into memory; returns the malloc'd output (caller frees). */
static char *json_string_of(const char *s, size_t n, size_t *out_len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, out_len);
    if (!f)
        return NULL;
    sse_cli_json_string(f, s, n);
    fclose(f);
    return buf;
}

/*
 * Escaping at the edges of the writer's eight-byte words and of UTF-8: each input is placed after
 * 0..17 bytes of plain ASCII, so every special byte is tried at every position in a word (and a
 * multi-byte sequence across two words); the expected output is the same prefix, then want.
 */
static int test_json_escape_edges(void)
{
    static const struct {
        const char *in;
        size_t in_len;
        const char *want;
    } cases[] = {
#define C(in, want) {in, sizeof(in) - 1, want}
        C("", ""),
        C("\"", "\\\""),
        C("\\", "\\\\"),
        C("/", "/"),
        C("\x7f", "\\u007f"),
        C("\x1f\x20", "\\u001f "),
        C("\0", "\\u0000"),
        C("\n\r\t\b\f", "\\u000a\\u000d\\u0009\\u0008\\u000c"),
        C("\x7e\x80", "~\\ufffd"),                                 /* lone continuation byte */
        C("\xc2\x80\xc2\x9f", "\xc2\x80\xc2\x9f"),                 /* C1 controls: raw UTF-8 */
        C("\xe2\x80\xa8\xe2\x80\xa9", "\xe2\x80\xa8\xe2\x80\xa9"), /* U+2028/9 raw */
        C("\xef\xbf\xbf\xf4\x8f\xbf\xbf", "\xef\xbf\xbf\xf4\x8f\xbf\xbf"), /* U+FFFF, U+10FFFF */
        C("\xc0\x80", "\\ufffd\\ufffd"),                                   /* overlong NUL */
        C("\xe0\x9f\xbf", "\\ufffd\\ufffd\\ufffd"),                        /* overlong 3-byte */
        C("\xf0\x8f\xbf\xbf", "\\ufffd\\ufffd\\ufffd\\ufffd"),             /* overlong 4-byte */
        C("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"),                        /* surrogate U+D800 */
        C("\xed\x9f\xbf", "\xed\x9f\xbf"),                                 /* U+D7FF */
        C("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"),             /* above U+10FFFF */
        C("\xf5\xf8\xfe\xff", "\\ufffd\\ufffd\\ufffd\\ufffd"),             /* never lead bytes */
        C("\xe2\x82", "\\ufffd\\ufffd"),       /* truncated at the end */
        C("\xe2\x82\"", "\\ufffd\\ufffd\\\""), /* truncated, then a special */
        C("\xf0\x9f\x98\x80\x01", "\xf0\x9f\x98\x80\\u0001"),
        C("abcdefg\"hijklmn\\", "abcdefg\\\"hijklmn\\\\"),
        C("0123456789abcdef\x7f", "0123456789abcdef\\u007f"),
#undef C
    };
    static const char pad[] = "PPPPPPPPPPPPPPPPP"; /* 17 */
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t k = 0; k < sizeof(pad); k++) {
            char in[64], want[128];
            memcpy(in, pad, k);
            memcpy(in + k, cases[c].in, cases[c].in_len);
            int w = snprintf(want, sizeof(want), "\"%.*s%s\"", (int)k, pad, cases[c].want);
            size_t got_len = 0;
            char *got = json_string_of(in, k + cases[c].in_len, &got_len);
            CHECK(got != NULL);
            int ok = got_len == (size_t)w && memcmp(got, want, got_len) == 0;
            if (!ok)
                fprintf(stderr, "  case %zu after %zu bytes: got %.*s want %s\n", c, k,
                        (int)got_len, got, want);
            free(got);
            CHECK(ok);
        }
    }
    return 0;
}

/*
 * The reference the writer must match byte for byte: the obvious byte-at-a-time escaper (the
 * writer before it was made fast), with UTF-8 checked by decoding each sequence to a code point
 * (a different method from the library's byte ranges, so the two check each other).
 */
static size_t ref_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0], need, cp;
    if (c >= 0xC0 && c < 0xE0)
        need = 1, cp = c & 0x1F;
    else if (c >= 0xE0 && c < 0xF0)
        need = 2, cp = c & 0x0F;
    else if (c >= 0xF0 && c < 0xF8)
        need = 3, cp = c & 0x07;
    else
        return 0;
    if (n < need + 1)
        return 0;
    for (unsigned j = 1; j <= need; j++) {
        if ((s[j] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[j] & 0x3F);
    }
    static const unsigned min_cp[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need + 1;
}

static size_t ref_json_string(char *out, const unsigned char *s, size_t n)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            o += (size_t)snprintf(out + o, 7, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            out[o++] = (char)c;
            i++;
        } else if ((k = ref_seq_len(s + i, n - i)) != 0) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\\ufffd", 6);
            o += 6;
            i++;
        }
    }
    out[o++] = '"';
    return o;
}

/* A random string that is mostly plain text, with specials, valid and broken UTF-8 mixed in. */
static size_t random_text(unsigned char *s, size_t n, uint64_t *seed)
{
    static const char *const pieces[] = {"\"",
                                         "\\",
                                         "\n",
                                         "\x7f",
                                         "\x01",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xe2\x80\xa8",
                                         "\xff",
                                         "\xc0\xaf",
                                         "\xed\xa0\x80",
                                         "\xf4\x90\x80\x80",
                                         "\xe2\x82",
                                         "\x80",
                                         "\xf0\x9f\x98"};
    size_t i = 0;
    while (i < n) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(*seed >> 33);
        if (r % 8 != 0) { /* a run of plain text */
            size_t run = r / 8 % 40;
            for (size_t j = 0; j < run && i < n; j++)
                s[i++] = (unsigned char)('a' + (r + j) % 26);
        } else {
            const char *p = pieces[r / 8 % (sizeof(pieces) / sizeof(pieces[0]))];
            for (; *p && i < n; p++)
                s[i++] = (unsigned char)*p;
        }
    }
    return i;
}

/*
 * The fast writer equals the reference on random strings, through the FILE * form (a 4 KiB
 * buffer) and through an sse_cli_jout with the smallest buffer (flushes inside strings).
 */
static int test_json_writer_matches_reference(void)
{
    enum { MAXN = 20000 };
    static unsigned char in[MAXN];
    static char want[6 * MAXN + 2], small_buf[SSE_CLI_JOUT_MIN];
    uint64_t seed = 20261206;
    for (int round = 0; round < 3000; round++) {
        size_t n = round < 2900 ? (size_t)round % 300 : MAXN - (size_t)round % 97;
        n = random_text(in, n, &seed);
        size_t want_len = ref_json_string(want, in, n);
        size_t got_len = 0;
        char *got = json_string_of((const char *)in, n, &got_len);
        CHECK(got != NULL);
        int ok = got_len == want_len && memcmp(got, want, got_len) == 0;
        free(got);
        if (!ok)
            fprintf(stderr, "  round %d (%zu bytes): FILE * form differs from the reference\n",
                    round, n);
        CHECK(ok);

        char *mem = NULL;
        size_t mem_len = 0;
        FILE *f = open_memstream(&mem, &mem_len);
        CHECK(f != NULL);
        sse_cli_jout o;
        sse_cli_jout_init(&o, f, small_buf, sizeof(small_buf));
        sse_cli_jout_string(&o, (const char *)in, n);
        CHECK_EQ_INT(sse_cli_jout_flush(&o), 0);
        fclose(f);
        ok = mem_len == want_len && memcmp(mem, want, mem_len) == 0;
        free(mem);
        if (!ok)
            fprintf(stderr, "  round %d (%zu bytes): small jout differs from the reference\n",
                    round, n);
        CHECK(ok);
    }
    return 0;
}

/* The JSON log line (cli_log.c) escapes through the library's escaper: its message part is the
   byte-at-a-time escape of the message, cut at the first byte whose escape no longer fits, for
   every capacity from the least to beyond the whole line; the line always ends in "}\n. */
static int test_log_line_escaping(void)
{
    char msg[300], want[6 * sizeof(msg)], line[2048];
    for (size_t i = 0; i < sizeof(msg) - 1; i++)
        msg[i] = "ab\"\\\x01\x1f\x7f\xc3\xa9 z"[i % 11];
    msg[sizeof(msg) - 1] = '\0';
    size_t w = 0, cut[sizeof(msg)]; /* cut[i]: escaped length of msg[0..i) */
    for (size_t i = 0; msg[i]; i++) {
        cut[i] = w;
        unsigned char c = (unsigned char)msg[i];
        if (c == '"' || c == '\\')
            w += (size_t)sprintf(want + w, "\\%c", c);
        else if (c < 0x20 || c == 0x7F)
            w += (size_t)sprintf(want + w, "\\u%04x", c);
        else
            want[w++] = (char)c;
    }
    for (size_t cap = 128; cap <= sizeof(line); cap += 7) {
        size_t n = cli_log_json(line, cap, 1, 3, msg);
        CHECK(n > 0 && n < cap && line[n] == '\0');
        CHECK(memcmp(line + n - 3, "\"}\n", 3) == 0);
        const char *m = strstr(line, "\"msg\":\"");
        CHECK(m != NULL);
        m += 7;
        size_t got = (size_t)(line + n - 3 - m);
        CHECK(got <= w && memcmp(m, want, got) == 0);
        if (got < w) { /* cut: at a byte boundary, and the next escape would not have fitted */
            size_t k = 0;
            while (k < sizeof(msg) - 1 && msg[k] && cut[k] < got)
                k++;
            CHECK(cut[k] == got);
            size_t next = (msg[k + 1] ? cut[k + 1] : w) - got;
            CHECK((size_t)(m - line) + got + next + 4 > cap);
        }
    }
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_golden_basic), CHECK_TEST(test_golden_bom_crlf_utf8),
           CHECK_TEST(test_escaping_every_control_char), CHECK_TEST(test_file_argument_and_dash),
           CHECK_TEST(test_exit_codes), CHECK_TEST(test_big_input), CHECK_TEST(test_json_writer),
           CHECK_TEST(test_json_escape_edges), CHECK_TEST(test_json_writer_matches_reference),
           CHECK_TEST(test_live_pipe), CHECK_TEST(test_log_line_escaping))
