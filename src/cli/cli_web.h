/*
 * cli_web.h: the demo pages (web/) built into the ssehub program.
 *
 * The table is generated at build time by cmake/EmbedFiles.cmake (src/cli/CMakeLists.txt) from
 * the files directly under web/, so `ssehub serve --demo` needs no file outside the binary,
 * installed or not, whatever its working directory. cli_demo.c serves it.
 */
#ifndef SSE_CLI_WEB_H
#define SSE_CLI_WEB_H

#include <stddef.h>

struct sse_cli_web_file {
    const char *path;           /* the URL path, "/index.html" */
    const char *content_type;   /* from the extension, e.g. "text/html; charset=utf-8" */
    const unsigned char *bytes; /* the file as it was at build time */
    size_t len;                 /* its length */
};

/* The files of web/, sorted by path (generated: cli_web_files.c in the build folder). */
extern const struct sse_cli_web_file sse_cli_web_files[];
extern const size_t sse_cli_web_files_count;

#endif
