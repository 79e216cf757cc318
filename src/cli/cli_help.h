/*
 * cli_help.h: the help of a subcommand as one table -- synopsis, description, options, notes,
 * exit status -- from which `ssehub CMD --help`, its man page (`ssehub --help-man CMD`, written
 * at build time) and the bash completion (`ssehub --help-bash`) are all printed, so the three
 * cannot drift apart.
 *
 * Texts are plain: '\n' breaks a line of --help (the man page refills it), a blank line ("\n\n")
 * starts a paragraph.
 */
#ifndef SSE_CLI_HELP_H
#define SSE_CLI_HELP_H

#include <stdio.h>

struct cli_option {
    const char *flags; /* "--json", "-n, --subscribers"; NULL ends a table */
    const char *arg;   /* "N", "'Name: value'"; NULL for a switch */
    const char *help;
};

struct cli_help {
    const char *name;        /* "sub": the man page is ssehub-sub(1) */
    const char *summary;     /* one line, as in `ssehub --help` */
    const char *synopsis;    /* what follows "usage: ssehub sub "; '\n' starts another line */
    const char *description; /* may be NULL */
    const struct cli_option *options;
    const char *notes;       /* after the options (may be NULL) */
    const char *exit_status; /* may be NULL */
};

/* The --help text. */
void cli_help_print(FILE *out, const struct cli_help *h);
/* The man page, ssehub-NAME(1) in roff (man macros); version is printed in its footer. */
void cli_help_man(FILE *out, const struct cli_help *h, const char *version);
/* Text as roff: '-' and '\' escaped, lines refilled, "\n\n" as a paragraph break (.PP). */
void cli_help_roff_text(FILE *out, const char *text);
/* Every flag of the table ("-n", "--subscribers", ...), each followed by a space. */
void cli_help_flag_words(FILE *out, const struct cli_option *options);
/* For the completion, the options whose argument is a list of choices ("mercure|nchan|plain"):
 * one bash case branch per flag, `--target) vals='mercure nchan plain' ;;`, each after indent. */
void cli_help_choice_cases(FILE *out, const struct cli_option *options, const char *indent);

#endif
