/*
 * loadgen_target.c: what differs between the servers the load generator talks to (a Mercure
 * hub, nginx + nchan, a plain broadcast server): the URLs (split by the library's
 * sse__http_split_url, then resolved), the topic names, the subscriber's GET and the
 * publisher's POST with the timestamped data (and, for HTTP/2, the target and authority the
 * subscriber engine puts in its HEADERS). The engines (loadgen_sub.c, loadgen_pub.c) only
 * send what this file builds. No I/O.
 */
#include "http/http_response.h"
#include "loadgen/loadgen.h"

#include <arpa/inet.h>
#include <sse/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int copy_slice(char *dst, size_t cap, struct sse__http_slice s)
{
    if (s.len >= cap)
        return SSE_EINVAL;
    memcpy(dst, s.p, s.len);
    dst[s.len] = '\0';
    return 0;
}

int sse__loadgen_url_parse(struct sse__loadgen_url *u, const char *url)
{
    struct sse__http_url sp;
    char http[4096]; /* an https:// URL rewritten as http:// for the library's splitter */
    memset(u, 0, sizeof(*u));
    if (!url)
        return SSE_EINVAL;
    if (strncasecmp(url, "https://", 8) == 0) {
        if (strlen(url) >= sizeof(http))
            return SSE_EINVAL;
        snprintf(http, sizeof(http), "http://%s", url + 8);
        url = http;
        u->tls = 1;
    }
    if (sse__http_split_url(url, strlen(url), &sp) < 0)
        return SSE_EINVAL;
    if (copy_slice(u->host, sizeof(u->host), sp.host) < 0 ||
        copy_slice(u->path, sizeof(u->path), sp.path) < 0 ||
        copy_slice(u->query, sizeof(u->query), sp.query) < 0)
        return SSE_EINVAL;
    u->port = sp.port;
    if (u->tls) { /* the splitter says 80 when no port was written: https's is 443 */
        const char *after = sp.host.p + sp.host.len;
        if (*after == ']')
            after++;
        if (*after != ':')
            u->port = 443;
    }

    const char *h = strcmp(u->host, "localhost") == 0 ? "127.0.0.1" : u->host;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&u->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&u->addr;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)u->port);
    } else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)u->port);
    } else {
        return SSE_EINVAL;
    }
    return 0;
}

/* Percent-encode s[0..n) into out (cap bytes, NUL-terminated; stops early when full). */
static size_t pct_encode(char *out, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    if (cap)
        out[o] = '\0';
    return o;
}

/*
 * The request target for topic (NULL: none) at u: Mercure adds ?topic= (when topic_param),
 * nchan appends /<topic>, plain uses the URL as it is.
 */
static void request_target(const struct sse__loadgen_config *c, const struct sse__loadgen_url *u,
                           const char *topic, int topic_param, char *out, size_t cap)
{
    const char *q = u->query[0] ? "?" : "";
    if (c->target == SSE__LOADGEN_MERCURE && topic_param) {
        size_t tl =
            (size_t)snprintf(out, cap, "%s?%s%stopic=", u->path, u->query, u->query[0] ? "&" : "");
        if (tl < cap)
            pct_encode(out + tl, cap - tl, topic, strlen(topic));
    } else if (c->target == SSE__LOADGEN_NCHAN) {
        size_t pl = strlen(u->path);
        const char *slash = pl && u->path[pl - 1] == '/' ? "" : "/";
        snprintf(out, cap, "%s%s%s%s%s", u->path, slash, topic, q, u->query);
    } else {
        snprintf(out, cap, "%s%s%s", u->path, q, u->query);
    }
}

void sse__loadgen_host_header(const struct sse__loadgen_url *u, char *out, size_t cap)
{
    int v6 = strchr(u->host, ':') != NULL;
    snprintf(out, cap, "%s%s%s:%d", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
}

void sse__loadgen_sub_target(const struct sse__loadgen_config *c, unsigned t, char *out, size_t cap)
{
    char topic[512];
    snprintf(topic, sizeof(topic), "%s%u", c->topic_prefix, t);
    request_target(c, &c->sub, topic, 1, out, cap);
}

char *sse__loadgen_sub_request(const struct sse__loadgen_config *c, unsigned t, size_t *len)
{
    char target[3072], host[300];
    sse__loadgen_sub_target(c, t, target, sizeof(target));
    sse__loadgen_host_header(&c->sub, host, sizeof(host));
    size_t cap = strlen(target) + strlen(host) + (c->sub_token ? strlen(c->sub_token) : 0) + 256;
    char *req = malloc(cap);
    if (!req)
        return NULL;
    int n = snprintf(req, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n%s%s%s\r\n",
                     target, host, c->sub_token ? "Authorization: Bearer " : "",
                     c->sub_token ? c->sub_token : "", c->sub_token ? "\r\n" : "");
    *len = (size_t)n;
    return req;
}

int sse__loadgen_pub_request(const struct sse__loadgen_config *c, uint64_t seq, int warm,
                             char **buf, size_t *cap, size_t *len)
{
    char topic[512], target[4096], host[300], data[65536];
    unsigned t = (unsigned)(seq % c->topics);
    snprintf(topic, sizeof(topic), "%s%u", c->topic_prefix, t);
    size_t tlen = strlen(topic);
    uint64_t ts = sse__loadgen_now_real();
    int dl = snprintf(data, sizeof(data), "ts=%llu,seq=%llu,w=%d,", (unsigned long long)ts,
                      (unsigned long long)seq, warm);
    while ((unsigned)dl < c->payload && (size_t)dl + 1 < sizeof(data))
        data[dl++] = 'x';
    size_t need = (size_t)dl * 3 + tlen * 3 + 4096 + (c->token ? strlen(c->token) : 0);
    if (need > *cap) {
        char *nb = realloc(*buf, need);
        if (!nb)
            return SSE_ENOMEM;
        *buf = nb;
        *cap = need;
    }
    request_target(c, &c->pub, topic, 0, target, sizeof(target));
    sse__loadgen_host_header(&c->pub, host, sizeof(host));

    /* The body goes after the head; its length is known only once it is encoded, so it is
     * built at the end of the buffer first and moved into place. */
    char *body = *buf + *cap - ((size_t)dl * 3 + tlen * 3 + 32);
    size_t blen;
    const char *ctype;
    if (c->target == SSE__LOADGEN_MERCURE) {
        memcpy(body, "topic=", 6);
        blen = 6 + pct_encode(body + 6, tlen * 3 + 8, topic, tlen);
        memcpy(body + blen, "&data=", 6);
        blen += 6;
        blen += pct_encode(body + blen, (size_t)dl * 3 + 8, data, (size_t)dl);
        ctype = "application/x-www-form-urlencoded";
    } else {
        memcpy(body, data, (size_t)dl);
        blen = (size_t)dl;
        ctype = "text/plain";
    }
    int hl = snprintf(*buf, (size_t)(body - *buf),
                      "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\n%s%s%s\r\n",
                      target, host, ctype, blen, c->token ? "Authorization: Bearer " : "",
                      c->token ? c->token : "", c->token ? "\r\n" : "");
    if (hl < 0 || (size_t)hl >= (size_t)(body - *buf))
        return SSE_ELIMIT;
    memmove(*buf + hl, body, blen);
    *len = (size_t)hl + blen;
    return 0;
}
