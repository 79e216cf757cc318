/*
 * cli_serve_help.c: the help table of `ssehub serve` for main.c (the man page ssehub-serve(1),
 * the bash completion): made from the settings table of cli_serve_config.c, which --help prints.
 */
#include "cli_commands.h"
#include "cli_serve_config.h"

const struct cli_help *sse_cli_serve_help(void)
{
    return serve_config_help_table(sse_cli_serve_summary);
}
