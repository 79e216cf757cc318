/*
 * main.c: the `ssehub` command line: dispatches to the subcommands in cmd_*.c.
 * The CLI is the only code in the project that may call exit() or print to stdout on its own.
 */
#include "cli_commands.h"

#include <sse/version.h>
#include <stdio.h>
#include <string.h>

struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct cli_command commands[] = {SSE_CLI_COMMANDS{NULL, NULL, NULL}};

static void usage(FILE *out)
{
    fprintf(out, "usage: ssehub <command> [options]\n"
                 "       ssehub --help | --version\n\n"
                 "Server-Sent Events: a Mercure hub, an EventSource client and tools.\n\n"
                 "commands:\n");
    for (const struct cli_command *c = commands; c->name; c++)
        fprintf(out, "  %-8s %s\n", c->name, c->summary);
    fprintf(out, "\n`ssehub <command> --help` describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("ssehub %s\n", SSE_VERSION_STRING);
        return 0;
    }
    for (const struct cli_command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name))
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "ssehub: unknown command '%s' (see ssehub --help)\n", argv[1]);
    return 2;
}
