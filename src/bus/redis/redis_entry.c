/*
 * redis_entry.c: checks on what Redis hands back (redis_entry.h): stream entries in XREAD and
 * XRANGE replies, entry ids, and redis:// URLs. Pure functions over hiredis reply trees.
 */
#include "bus/redis/redis_entry.h"

#include <sse/error.h>
#include <string.h>

/* A decimal of at most 20 digits that fits in 64 bits. 0 or -1. */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int sse__redis_parse_id(const char *s, size_t n, uint64_t *ms, uint64_t *seq)
{
    if (!s || n > SSE__REDIS_ID_MAX)
        return SSE_EPROTO;
    const char *dash = memchr(s, '-', n);
    if (!dash)
        return SSE_EPROTO;
    uint64_t a, b;
    if (parse_u64(s, (size_t)(dash - s), &a) || parse_u64(dash + 1, n - (size_t)(dash - s) - 1, &b))
        return SSE_EPROTO;
    *ms = a;
    *seq = b;
    return 0;
}

static int is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str;
}

int sse__redis_entries(const redisReply *r, size_t max_message, sse__redis_entry_fn fn, void *ud,
                       size_t *skipped)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return SSE_EPROTO;
    int n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *en = r->element[i];
        struct sse__redis_entry e;
        memset(&e, 0, sizeof(e));
        if (!en || en->type != REDIS_REPLY_ARRAY || en->elements != 2 || !is_str(en->element[0]) ||
            sse__redis_parse_id(en->element[0]->str, en->element[0]->len, &e.ms, &e.seq)) {
            if (skipped)
                (*skipped)++;
            continue;
        }
        e.id = en->element[0]->str;
        e.id_len = en->element[0]->len;
        const redisReply *f = en->element[1];
        e.why = "no field \"m\"";
        if (f && f->type == REDIS_REPLY_ARRAY && f->elements % 2 == 0) {
            for (size_t k = 0; k + 1 < f->elements; k += 2) {
                const redisReply *name = f->element[k], *val = f->element[k + 1];
                if (!is_str(name) || name->len != 1 || name->str[0] != 'm')
                    continue;
                if (!val || val->type != REDIS_REPLY_STRING || !val->str) {
                    e.why = "field \"m\" is not a string";
                } else if (val->len > max_message) {
                    e.why = "message larger than the largest update";
                } else {
                    e.ok = 1;
                    e.why = NULL;
                    e.msg = val->str;
                    e.len = val->len;
                }
                break;
            }
        } else {
            e.why = "fields are not name/value pairs";
        }
        n++;
        if (fn(ud, &e))
            break;
    }
    return n;
}

int sse__redis_xread(const redisReply *r, size_t max_message, sse__redis_entry_fn fn, void *ud,
                     size_t *skipped)
{
    if (r && r->type == REDIS_REPLY_NIL)
        return 0;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 1)
        return SSE_EPROTO;
    const redisReply *st = r->element[0];
    if (!st || st->type != REDIS_REPLY_ARRAY || st->elements != 2 || !is_str(st->element[0]))
        return SSE_EPROTO;
    return sse__redis_entries(st->element[1], max_message, fn, ud, skipped);
}

/* Copy s[0..n) into out (cap bytes with the NUL), %XX decoded. 0 or -1. */
static int copy_decoded(char *out, size_t cap, const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            unsigned v = 0;
            if (i + 2 >= n)
                return -1;
            for (int k = 1; k <= 2; k++) {
                char h = s[i + k];
                v <<= 4;
                if (h >= '0' && h <= '9')
                    v |= (unsigned)(h - '0');
                else if (h >= 'a' && h <= 'f')
                    v |= (unsigned)(h - 'a' + 10);
                else if (h >= 'A' && h <= 'F')
                    v |= (unsigned)(h - 'A' + 10);
                else
                    return -1;
            }
            c = (unsigned char)v;
            i += 2;
        }
        if (c == 0 || w + 1 >= cap)
            return -1;
        out[w++] = (char)c;
    }
    out[w] = '\0';
    return 0;
}

int sse__redis_url_parse(const char *url, struct sse__redis_url *out)
{
    static const char scheme[] = "redis://";
    struct sse__redis_url u;
    memset(&u, 0, sizeof(u));
    u.port = 6379;
    if (!url || strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return SSE_EINVAL;
    const char *p = url + sizeof(scheme) - 1;
    const char *end = p + strlen(p);
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = slash ? slash : end;
    /* The last '@' before the path ends the credentials (a password may hold a raw '@'). */
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return SSE_EINVAL; /* redis://user@host: a user needs a password */
        if (copy_decoded(u.user, sizeof(u.user), p, (size_t)(colon - p)) ||
            copy_decoded(u.pass, sizeof(u.pass), colon + 1, (size_t)(at - colon - 1)) || !u.pass[0])
            return SSE_EINVAL;
        p = at + 1;
    }
    const char *hend;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(auth_end - p));
        if (!rb || rb == p + 1)
            return SSE_EINVAL;
        if ((size_t)(rb - p - 1) >= sizeof(u.host))
            return SSE_EINVAL;
        memcpy(u.host, p + 1, (size_t)(rb - p - 1));
        hend = rb + 1;
        if (hend < auth_end && *hend != ':')
            return SSE_EINVAL;
    } else {
        hend = memchr(p, ':', (size_t)(auth_end - p));
        if (!hend)
            hend = auth_end;
        if (hend == p || (size_t)(hend - p) >= sizeof(u.host))
            return SSE_EINVAL;
        memcpy(u.host, p, (size_t)(hend - p));
        for (const char *q = p; q < hend; q++)
            if (*q == '@' || *q == '[' || *q == ']' || (unsigned char)*q <= ' ')
                return SSE_EINVAL;
    }
    if (hend < auth_end) { /* ":PORT" */
        uint64_t port;
        if (parse_u64(hend + 1, (size_t)(auth_end - hend - 1), &port) || port == 0 || port > 65535)
            return SSE_EINVAL;
        u.port = (int)port;
    }
    if (slash && slash + 1 < end) {
        uint64_t db;
        if (parse_u64(slash + 1, (size_t)(end - slash - 1), &db) || db > 1000000)
            return SSE_EINVAL;
        u.db = (int)db;
    }
    *out = u;
    return 0;
}

int sse__redis_redirect(const char *err, size_t len, char *host, size_t cap, int *port)
{
    int kind;
    size_t i;
    if (!err || cap == 0)
        return 0;
    if (len > 6 && !memcmp(err, "MOVED ", 6))
        kind = 1, i = 6;
    else if (len > 4 && !memcmp(err, "ASK ", 4))
        kind = 2, i = 4;
    else
        return 0;
    size_t slot_start = i;
    while (i < len && err[i] >= '0' && err[i] <= '9')
        i++;
    if (i == slot_start || i - slot_start > 5 || i >= len || err[i] != ' ')
        return 0;
    const char *hp = err + i + 1;
    size_t hl = len - i - 1;
    const char *colon = NULL;
    for (size_t k = 0; k < hl; k++) {
        if ((unsigned char)hp[k] <= ' ')
            return 0;
        if (hp[k] == ':')
            colon = hp + k;
    }
    if (!colon || colon == hp || (size_t)(colon - hp) >= cap)
        return 0;
    uint64_t p;
    if (parse_u64(colon + 1, hl - (size_t)(colon - hp) - 1, &p) || p == 0 || p > 65535)
        return 0;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    *port = (int)p;
    return kind;
}
