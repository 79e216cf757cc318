/*
 * cmd_parse.c: `ssehub parse [FILE]`: run a raw text/event-stream (a file, or stdin) through
 * the format parser and print what an EventSource would see, as JSON lines (cli_json.h):
 * one {"type","data","id"} object per dispatched event, {"retry":N} per accepted retry field.
 * Exit status: 0 at the end of the input, 1 on a read/write error or a limit hit, 2 on usage.
 */
#include "cli_commands.h"
#include "cli_help.h"
#include "cli_json.h"

#include <errno.h>
#include <sse/format.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char sse_cli_parse_summary[] = "parse a text/event-stream (file or stdin) into JSON lines";

/* The help table: --help, the man page ssehub-parse(1) and the completion (cli_help.h). */
static const struct cli_option parse_options[] = {
    {"--max-line", "N", "longest accepted line in bytes (default 1048576)"},
    {"--max-event", "N", "largest accepted event (data + type + id) in bytes (default 16777216)"},
    {"-h, --help", NULL, "this text"},
    {NULL, NULL, NULL},
};

static const struct cli_help parse_help = {
    "parse",
    sse_cli_parse_summary,
    "[--max-line N] [--max-event N] [FILE]",
    "Reads a raw text/event-stream from FILE (or stdin when FILE is absent or '-') and\n"
    "prints one JSON object per line: {\"type\":...,\"data\":...,\"id\":...} for every\n"
    "dispatched event (id is the last event id at dispatch) and {\"retry\":N} for every\n"
    "accepted retry field. Parsing follows the WHATWG HTML standard.",
    parse_options,
    NULL,
    "0 at the end of the input, 1 on a read error or a limit hit, 2 on a usage error",
};

const struct cli_help *sse_cli_parse_help(void)
{
    return &parse_help;
}

static void parse_usage(FILE *out)
{
    cli_help_print(out, &parse_help);
}

static int parse_on_event(void *ud, const sse_parsed_event *ev)
{
    sse_cli_json_event(ud, ev);
    return 0;
}

static int parse_on_retry(void *ud, uint64_t ms)
{
    sse_cli_json_retry(ud, ms);
    return 0;
}

/* A positive byte count for an option, or 0 if s is not one. */
static size_t parse_size(const char *s)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0 || v > (unsigned long long)(SIZE_MAX / 4))
        return 0;
    return (size_t)v;
}

/*
 * `ssehub parse [--max-line N] [--max-event N] [FILE]`; argv[0] is "parse". Prints JSON lines on
 * stdout, messages on stderr. Returns the exit status: 0 at the end of the input, 1 on a read or
 * write error or a limit hit (events before it are printed), 2 on a usage error.
 */
int sse_cli_parse(int argc, char **argv)
{
    sse_parser_options opts = SSE_PARSER_OPTIONS_INIT;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            parse_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--max-line") || !strcmp(a, "--max-event")) {
            size_t v = parse_size(i + 1 < argc ? argv[i + 1] : NULL);
            if (!v) {
                fprintf(stderr, "ssehub parse: %s needs a positive number of bytes\n", a);
                return 2;
            }
            if (!strcmp(a, "--max-line"))
                opts.max_line = v;
            else
                opts.max_event = v;
            i++;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "ssehub parse: unknown option '%s' (see ssehub parse --help)\n", a);
            return 2;
        }
        if (path) {
            fprintf(stderr, "ssehub parse: only one FILE may be given\n");
            return 2;
        }
        path = a;
    }

    FILE *in = stdin;
    const char *name = "<stdin>";
    if (path && strcmp(path, "-") != 0) {
        in = fopen(path, "rb");
        if (!in) {
            fprintf(stderr, "ssehub parse: %s: %s\n", path, strerror(errno));
            return 1;
        }
        name = path;
    }

    sse_parser_callbacks cb = {parse_on_event, parse_on_retry, NULL};
    sse_parser *p;
    int status = 0;
    int rc = sse_parser_new(&p, &opts, &cb, stdout);
    if (rc) {
        fprintf(stderr, "ssehub parse: %s\n", sse_strerror(rc));
        status = 1;
        goto out_close;
    }
    static char chunk[64 * 1024];
    unsigned long long offset = 0;
    for (;;) {
        size_t n = fread(chunk, 1, sizeof(chunk), in);
        if (n) {
            rc = sse_parser_feed(p, chunk, n);
            if (rc == SSE_ELIMIT) {
                fprintf(stderr,
                        "ssehub parse: %s: limit exceeded before byte %llu: a line longer than "
                        "%zu bytes (--max-line) or an event larger than %zu bytes "
                        "(--max-event)\n",
                        name, offset + n, opts.max_line ? opts.max_line : (size_t)1 << 20,
                        opts.max_event ? opts.max_event : (size_t)16 << 20);
                status = 1;
                break;
            }
            if (rc) {
                fprintf(stderr, "ssehub parse: %s: %s\n", name, sse_strerror(rc));
                status = 1;
                break;
            }
            offset += n;
        }
        if (n < sizeof(chunk)) {
            if (ferror(in)) {
                fprintf(stderr, "ssehub parse: %s: read error: %s\n", name, strerror(errno));
                status = 1;
            }
            if (feof(in) || ferror(in))
                break;
        }
    }
    sse_parser_end(p);
    sse_parser_free(p);
out_close:
    if (in != stdin)
        fclose(in);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "ssehub parse: write error: %s\n", strerror(errno));
        status = 1;
    }
    return status;
}
