/*
 * static.c: serving files from a directory (sse_server_static).
 *
 * The request path is already percent-decoded (an encoded NUL was refused by the parser). A
 * path with a ".." segment is refused before the file system is touched; the resolved path
 * (realpath, so symlinks count) must still lie under the root. Files are read with plain read()
 * on the loop thread: this serves small demo pages and scripts, not large downloads, so files
 * are capped at SSE__STATIC_MAX. ETag / If-None-Match and an exact If-Modified-Since give 304s.
 */
#include "common/alloc.h"
#include "server/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SSE__STATIC_MAX (16u << 20)

static const struct {
    const char *ext;
    const char *type;
} sse__mime[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"ico", "image/x-icon"},
    {"txt", "text/plain; charset=utf-8"},
    {"wasm", "application/wasm"},
    {"woff2", "font/woff2"},
    {"map", "application/json"},
};

static const char *sse__mime_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof(sse__mime) / sizeof(sse__mime[0]); i++)
            if (strcasecmp(dot + 1, sse__mime[i].ext) == 0)
                return sse__mime[i].type;
    return "application/octet-stream";
}

/* Whether the relative path has a ".." segment (or a backslash, refused to be safe). */
static int sse__bad_path(const char *rel)
{
    const char *p = rel;
    while (*p) {
        while (*p == '/')
            p++;
        const char *seg = p;
        while (*p && *p != '/') {
            if (*p == '\\')
                return 1;
            p++;
        }
        if (p - seg == 2 && seg[0] == '.' && seg[1] == '.')
            return 1;
    }
    return 0;
}

static void sse__static_status(sse_request *r, int status)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, sse__http_reason(status));
    sse_request_respond(r, status, "text/plain; charset=utf-8", body, (size_t)n);
}

void sse__static_serve(sse_request *r, const struct sse__route *rt)
{
    char full[4096];
    const char *rel = r->path + rt->path_len;
    if (sse__bad_path(rel)) {
        sse__static_status(r, 404);
        return;
    }
    while (*rel == '/')
        rel++;
    int n = snprintf(full, sizeof(full), "%s/%s", rt->root, rel);
    if (n < 0 || (size_t)n >= sizeof(full) - 16) {
        sse__static_status(r, 404);
        return;
    }
    struct stat st;
    if (n > 0 && full[n - 1] == '/')
        memcpy(full + n, "index.html", 11);
    else if (stat(full, &st) == 0 && S_ISDIR(st.st_mode))
        memcpy(full + n, "/index.html", 12);
    char *real = realpath(full, NULL);
    if (!real || strncmp(real, rt->root, rt->root_len) != 0 ||
        (real[rt->root_len] != '/' && !(rt->root_len == 1 && rt->root[0] == '/'))) {
        free(real);
        sse__static_status(r, 404);
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    const char *type = sse__mime_type(real);
    free(real);
    if (fd < 0) {
        sse__static_status(r, errno == EACCES ? 403 : 404);
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        sse__static_status(r, 404);
        return;
    }
    if ((unsigned long long)st.st_size > SSE__STATIC_MAX) {
        close(fd);
        sse__static_status(r, 500);
        return;
    }
    char etag[64], lm[64];
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtime);
    struct tm tm;
    gmtime_r(&st.st_mtime, &tm);
    strftime(lm, sizeof(lm), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    sse_request_add_header(r, "ETag", etag);
    sse_request_add_header(r, "Last-Modified", lm);
    sse_request_add_header(r, "Cache-Control", "no-cache");
    const char *inm = sse_request_header(r, "If-None-Match");
    const char *ims = sse_request_header(r, "If-Modified-Since");
    /* If-Modified-Since is honoured when it is exactly our Last-Modified (as nginx's default) */
    if ((inm && strstr(inm, etag)) || (!inm && ims && strcmp(ims, lm) == 0)) {
        close(fd);
        sse_request_respond(r, 304, NULL, NULL, 0);
        return;
    }
    size_t size = (size_t)st.st_size;
    char *data = sse__malloc(size ? size : 1);
    if (!data) {
        close(fd);
        sse__static_status(r, 503);
        return;
    }
    size_t got = 0;
    if (!(r->flags & SSE__R_HEAD)) {
        while (got < size) {
            ssize_t k = read(fd, data + got, size - got);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            got += (size_t)k;
        }
    } else {
        got = size;
    }
    close(fd);
    if (got != size) {
        sse__free(data);
        sse__static_status(r, 500);
        return;
    }
    sse_request_respond(r, 200, type, data, size);
    sse__free(data);
}
