/*
 * cli_jwks.c: fetch JSON Web Key Sets for `ssehub serve` (file://, http://, https://) and hand
 * them to the hub; refreshes run on libuv's thread pool. See cli_jwks.h for why this lives in
 * the CLI and not in the hub library.
 */
#include "cli_jwks.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JWKS_TIMEOUT_S 10L

struct role_fetch {
    struct cli_jwks *owner;
    int role;        /* SSE_HUB_PUBLISHER or SSE_HUB_SUBSCRIBER */
    const char *url; /* borrowed from the configuration (outlives the fetcher) */
    uv_work_t work;  /* a refresh on the thread pool */
    int in_flight;   /* work queued, its after_work not yet run */
    char *doc;       /* the last document fetched (start, or the refresh's result) */
    size_t len;
    char err[256]; /* the refresh's failure, written on the pool thread */
};

struct cli_jwks {
    uv_loop_t *loop;
    sse_hub *hub; /* NULL before attach and after free */
    size_t max_bytes;
    int freed; /* cli_jwks_free was called: free when the last refresh lands */
    struct role_fetch r[2];
    void (*log)(void *data, int level, const char *line);
    void *log_data;
};

struct sink {
    char *buf;
    size_t len, max;
    int over;
};

static size_t sink_write(char *p, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t add = size * n;
    if (add > s->max - s->len) {
        s->over = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    char *b = realloc(s->buf, s->len + add + 1);
    if (!b)
        return 0;
    memcpy(b + s->len, p, add);
    s->buf = b;
    s->len += add;
    return add;
}

static int fetch_file(const char *path, size_t max, char **doc, size_t *len, char *err,
                      size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct sink s = {NULL, 0, max, 0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (sink_write(chunk, 1, n, &s) != n)
            break;
    int bad = ferror(f) || s.over || (n && !s.over);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: %s", path,
                 s.over ? "larger than --jwks-max-bytes" : "read failed");
        free(s.buf);
        return -1;
    }
    *doc = s.buf ? s.buf : strdup("");
    *len = s.len;
    return *doc ? 0 : -1;
}

int cli_jwks_fetch(const char *url, size_t max, char **doc, size_t *len, char *err, size_t errlen)
{
    if (!strncmp(url, "file://", 7)) /* file:///abs/path: the host part must be empty */
        return fetch_file(url + 7, max, doc, len, err, errlen);
    CURL *e = curl_easy_init();
    struct sink s = {NULL, 0, max, 0};
    long status = 0;
    char cerr[CURL_ERROR_SIZE] = "";
    if (!e) {
        snprintf(err, errlen, "curl: out of memory");
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, JWKS_TIMEOUT_S);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* on a pool thread: no SIGALRM for resolving */
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ssehub-jwks");
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK || status != 200) {
        /* the URL may carry a credential (a token in its query): name the failure, not it */
        if (s.over)
            snprintf(err, errlen, "the key set is larger than --jwks-max-bytes");
        else if (rc != CURLE_OK)
            snprintf(err, errlen, "fetch failed: %s", cerr[0] ? cerr : curl_easy_strerror(rc));
        else
            snprintf(err, errlen, "fetch answered HTTP %ld", status);
        free(s.buf);
        return -1;
    }
    *doc = s.buf ? s.buf : strdup("");
    *len = s.len;
    return *doc ? 0 : -1;
}

int cli_jwks_new(struct cli_jwks **out, uv_loop_t *loop, const char *const urls[2],
                 size_t max_bytes, void (*log)(void *data, int level, const char *line),
                 void *log_data, char *err, size_t errlen)
{
    struct cli_jwks *j = calloc(1, sizeof(*j));
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    j->loop = loop;
    j->max_bytes = max_bytes;
    j->log = log;
    j->log_data = log_data;
    for (int i = 0; i < 2; i++) {
        char e[256];
        j->r[i].owner = j;
        j->r[i].role = i ? SSE_HUB_SUBSCRIBER : SSE_HUB_PUBLISHER;
        j->r[i].url = urls[i];
        j->r[i].work.data = &j->r[i];
        if (i && urls[1] && urls[0] && !strcmp(urls[0], urls[1]) && j->r[0].doc) {
            /* the subscribers use the publishers' set: one fetch at start, not two */
            if (!(j->r[1].doc = malloc(j->r[0].len + 1))) {
                snprintf(err, errlen, "out of memory");
                cli_jwks_free(j);
                return -1;
            }
            memcpy(j->r[1].doc, j->r[0].doc, j->r[0].len);
            j->r[1].len = j->r[0].len;
            continue;
        }
        if (urls[i] &&
            cli_jwks_fetch(urls[i], max_bytes, &j->r[i].doc, &j->r[i].len, e, sizeof(e))) {
            snprintf(err, errlen, "--%s-jwks-url: %s", i ? "subscriber" : "publisher", e);
            cli_jwks_free(j);
            return -1;
        }
    }
    *out = j;
    return 0;
}

int cli_jwks_roles(const struct cli_jwks *j)
{
    return (j->r[0].url ? SSE_HUB_PUBLISHER : 0) | (j->r[1].url ? SSE_HUB_SUBSCRIBER : 0);
}

int cli_jwks_attach(struct cli_jwks *j, sse_hub *hub, char *err, size_t errlen)
{
    j->hub = hub;
    for (int i = 0; i < 2; i++) {
        const char *why = NULL;
        if (j->r[i].url && sse_hub_set_jwks(hub, j->r[i].role, j->r[i].doc, j->r[i].len, &why)) {
            snprintf(err, errlen, "--%s-jwks-url: %s", i ? "subscriber" : "publisher",
                     why ? why : "refused");
            return -1;
        }
        free(j->r[i].doc);
        j->r[i].doc = NULL;
    }
    return 0;
}

__attribute__((format(printf, 3, 4))) static void jlog(struct cli_jwks *j, int level,
                                                       const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (j->log)
        j->log(j->log_data, level, line);
}

/* On a pool thread: only the role's own fields are touched. */
static void refresh_work(uv_work_t *w)
{
    struct role_fetch *r = w->data;
    r->err[0] = '\0';
    free(r->doc);
    r->doc = NULL;
    if (cli_jwks_fetch(r->url, r->owner->max_bytes, &r->doc, &r->len, r->err, sizeof(r->err)))
        r->doc = NULL;
}

static void free_now(struct cli_jwks *j)
{
    for (int i = 0; i < 2; i++)
        free(j->r[i].doc);
    free(j);
}

/* Back on the loop: hand the fresh set to the hub (if it is still there). */
static void refresh_done(uv_work_t *w, int status)
{
    struct role_fetch *r = w->data;
    struct cli_jwks *j = r->owner;
    const char *who = r->role == SSE_HUB_PUBLISHER ? "publisher" : "subscriber";
    r->in_flight = 0;
    if (j->hub && status == 0) {
        const char *why = NULL;
        int failed = 1;
        if (!r->doc)
            jlog(j, SSE_LOG_WARN, "%s key set refresh failed: %s (the old set stays)", who, r->err);
        else if (sse_hub_set_jwks(j->hub, r->role, r->doc, r->len, &why))
            jlog(j, SSE_LOG_WARN, "%s key set refresh refused: %s (the old set stays)", who,
                 why ? why : "?");
        else
            failed = 0;
        if (failed) /* the requests waiting for this set are answered now, not at the timeout */
            sse_hub_jwks_refresh_failed(j->hub, r->role);
        /* one URL for both roles (the subscribers use the publishers' set): both get it */
        struct role_fetch *other = &j->r[r == &j->r[0] ? 1 : 0];
        if (r->doc && !why && other->url && !strcmp(other->url, r->url))
            (void)sse_hub_set_jwks(j->hub, other->role, r->doc, r->len, &why);
    }
    free(r->doc);
    r->doc = NULL;
    if (j->freed && !j->r[0].in_flight && !j->r[1].in_flight)
        free_now(j);
}

void cli_jwks_refresh(void *data, int role)
{
    struct cli_jwks *j = data;
    struct role_fetch *r = &j->r[role == SSE_HUB_PUBLISHER ? 0 : 1];
    /* The hub rate-limits; one fetch per role at a time besides (a slow server). Always on the
       pool, file:// too: the hub is inside a verification when it asks. */
    if (!r->url || r->in_flight || j->freed)
        return;
    if (uv_queue_work(j->loop, &r->work, refresh_work, refresh_done) == 0)
        r->in_flight = 1;
}

void cli_jwks_free(struct cli_jwks *j)
{
    if (!j)
        return;
    j->hub = NULL;
    j->freed = 1;
    if (!j->r[0].in_flight && !j->r[1].in_flight)
        free_now(j);
}
