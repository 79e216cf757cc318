/*
 * cli_bench_util.c: small helpers of `ssehub bench`: the latency histogram, clocks, URL parsing.
 * No I/O beyond name resolution of "localhost".
 */
#include "cli_bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void bench_hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static unsigned hist_index(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
    unsigned m = (unsigned)(v >> (e - 5)) & (BENCH_HIST_SUB - 1);
    unsigned i = 64 + (e - 6) * BENCH_HIST_SUB + m;
    return i < BENCH_HIST_BUCKETS ? i : BENCH_HIST_BUCKETS - 1;
}

/* Upper edge of bucket i (inclusive). */
static uint64_t hist_value(unsigned i)
{
    if (i < 64)
        return i;
    unsigned e = (i - 64) / BENCH_HIST_SUB + 6;
    unsigned m = (i - 64) % BENCH_HIST_SUB;
    uint64_t base = ((uint64_t)(BENCH_HIST_SUB + m)) << (e - 5);
    return base + (((uint64_t)1 << (e - 5)) - 1);
}

void bench_hist_add(struct bench_hist *h, uint64_t ns)
{
    h->b[hist_index(ns)]++;
    h->count++;
    h->sum += ns;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
    if (!h->count)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->count + 0.5);
    if (want < 1)
        want = 1;
    if (want > h->count)
        want = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

uint64_t bench_now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_subs_on_topic(const struct bench_config *c, uint64_t t)
{
    uint64_t n = c->subscribers, tc = c->topics;
    return n / tc + (t < n % tc ? 1 : 0);
}

int bench_url_parse(struct bench_url *u, const char *url)
{
    memset(u, 0, sizeof(*u));
    if (strncmp(url, "http://", 7) != 0)
        return -EINVAL;
    const char *p = url + 7, *hend, *rest;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (!hend)
            return -EINVAL;
        p++;
        rest = hend + 1;
    } else {
        hend = p + strcspn(p, ":/?");
        rest = hend;
    }
    size_t hl = (size_t)(hend - p);
    if (hl == 0 || hl >= sizeof(u->host))
        return -EINVAL;
    memcpy(u->host, p, hl);
    u->host[hl] = '\0';
    u->port = 80;
    if (*rest == ':') {
        char *end;
        long port = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || port <= 0 || port > 65535)
            return -EINVAL;
        u->port = (int)port;
        rest = end;
    }
    const char *q = strchr(rest, '?');
    size_t pl = q ? (size_t)(q - rest) : strlen(rest);
    if (pl >= sizeof(u->path) || (q && strlen(q + 1) >= sizeof(u->query)))
        return -EINVAL;
    if (pl == 0) {
        u->path[0] = '/';
    } else {
        if (rest[0] != '/')
            return -EINVAL;
        memcpy(u->path, rest, pl);
    }
    if (q)
        memcpy(u->query, q + 1, strlen(q + 1) + 1);

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
        return -EINVAL;
    }
    return 0;
}

enum {
    CH_SIZE = 0, /* hex digits of the chunk size */
    CH_EXT,      /* chunk extension, skipped up to LF */
    CH_DATA,     /* payload bytes */
    CH_DATA_END, /* CR LF after the payload */
    CH_TRAILER,  /* at the start of a trailer line */
    CH_TRAILER_LINE
};

int bench_chunked_feed(struct bench_chunked *c, const char *p, size_t n, size_t *used,
                       void (*out)(void *ud, const char *bytes, size_t len), void *ud)
{
    size_t i = 0;
    while (i < n) {
        char ch = p[i];
        switch (c->state) {
        case CH_SIZE:
            if (ch >= '0' && ch <= '9')
                c->left = c->left * 16 + (uint64_t)(ch - '0');
            else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
                c->left = c->left * 16 + (uint64_t)((ch | 0x20) - 'a' + 10);
            else if (ch == ';' || ch == '\r' || ch == ' ')
                c->state = CH_EXT;
            else if (ch == '\n')
                c->state = c->left ? CH_DATA : CH_TRAILER;
            else
                return -1;
            if (c->left > ((uint64_t)1 << 40))
                return -1;
            i++;
            break;
        case CH_EXT:
            if (ch == '\n')
                c->state = c->left ? CH_DATA : CH_TRAILER;
            i++;
            break;
        case CH_DATA: {
            size_t take = n - i;
            if (take > c->left)
                take = (size_t)c->left;
            out(ud, p + i, take);
            i += take;
            c->left -= take;
            if (!c->left)
                c->state = CH_DATA_END;
            break;
        }
        case CH_DATA_END:
            if (ch == '\n')
                c->state = CH_SIZE;
            else if (ch != '\r')
                return -1;
            i++;
            break;
        case CH_TRAILER:
            i++;
            if (ch == '\n') {
                c->state = CH_SIZE;
                c->left = 0;
                *used = i;
                return 1;
            }
            if (ch != '\r')
                c->state = CH_TRAILER_LINE;
            break;
        case CH_TRAILER_LINE:
            if (ch == '\n')
                c->state = CH_TRAILER;
            i++;
            break;
        default:
            return -1;
        }
    }
    *used = i;
    return 0;
}
