/*
 * redis_entry_fuzzer.c: libFuzzer target for what the Redis bus believes of Redis's replies
 * (src/bus/redis/redis_entry.c): XREAD and XRANGE replies, entry ids and redis:// URLs.
 *
 * The input's first byte picks the mode; the rest is:
 * - 0..1: RESP bytes, parsed by hiredis's reader (as on the wire, at most 16 replies), each
 *   reply walked as an XREAD reply (0) or an XRANGE reply (1). Checks: the walk returns
 *   SSE_EPROTO or the number of entries handed over; each entry's id parses to the halves given;
 *   an ok entry has its message, no longer than the bound; a refused one says why.
 * - 2: a stream entry id: parsing agrees with printing the halves back (one spelling per id,
 *   leading zeros aside).
 * - 3: a redis:// URL: parsing never overruns its fields, a parsed port is in range.
 * - 4: a cluster redirection error ("MOVED 1 host:port"): a parsed host fits, the port is in
 *   range.
 */
#include "bus/redis/redis_entry.h"
#include "fuzz_common.h"

#include <inttypes.h>
#include <sse/error.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_MESSAGE = 64 };

struct walk {
    int n;
};

static int each(void *ud, const struct sse__redis_entry *e)
{
    struct walk *w = ud;
    uint64_t ms, seq;
    REQUIRE(e->id && e->id_len <= SSE__REDIS_ID_MAX);
    REQUIRE(sse__redis_parse_id(e->id, e->id_len, &ms, &seq) == 0);
    REQUIRE(ms == e->ms && seq == e->seq);
    if (e->ok) {
        REQUIRE(e->msg != NULL && e->len <= MAX_MESSAGE && e->why == NULL);
    } else {
        REQUIRE(e->msg == NULL && e->why != NULL);
    }
    w->n++;
    return 0;
}

/*
 * hiredis 0.14's reader allocates an array as large as a reply declares ("*100000000") before
 * the elements arrive (1.0 added a bound, maxelements): only a hostile Redis server could send
 * that, as Redis writes the replies itself whatever the data at the key. Inputs declaring more
 * than 4096 elements or bytes are not run, so the fuzzer explores our code, not that allocation.
 */
static int declares_huge(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((i == 0 || p[i - 1] == '\n') &&
            (p[i] == '*' || p[i] == '$' || p[i] == '%' || p[i] == '~' || p[i] == '>')) {
            unsigned long v = 0;
            size_t k = i + 1;
            while (k < n && p[k] >= '0' && p[k] <= '9' && v <= 4096)
                v = v * 10 + (unsigned long)(p[k++] - '0');
            if (v > 4096)
                return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    int mode = data[0] % 5;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if (mode <= 1) {
        if (declares_huge(p, n))
            return 0;
        redisReader *r = redisReaderCreate();
        if (!r)
            return 0;
        if (redisReaderFeed(r, p, n) == REDIS_OK) {
            for (int k = 0; k < 16; k++) {
                void *reply = NULL;
                if (redisReaderGetReply(r, &reply) != REDIS_OK || !reply)
                    break;
                struct walk w = {0};
                size_t skipped = 0;
                int rc = mode == 0 ? sse__redis_xread(reply, MAX_MESSAGE, each, &w, &skipped)
                                   : sse__redis_entries(reply, MAX_MESSAGE, each, &w, &skipped);
                REQUIRE(rc == SSE_EPROTO || rc == w.n);
                freeReplyObject(reply);
            }
        }
        redisReaderFree(r);
    } else if (mode == 2) {
        uint64_t ms, seq;
        if (sse__redis_parse_id(p, n, &ms, &seq) == 0) {
            char back[64];
            int len = snprintf(back, sizeof(back), "%" PRIu64 "-%" PRIu64, ms, seq);
            REQUIRE(len > 0 && (size_t)len <= n);
            uint64_t ms2, seq2;
            REQUIRE(sse__redis_parse_id(back, (size_t)len, &ms2, &seq2) == 0);
            REQUIRE(ms2 == ms && seq2 == seq);
        }
    } else if (mode == 4) {
        char host[32];
        int port = 0;
        int kind = sse__redis_redirect(p, n, host, sizeof(host), &port);
        REQUIRE(kind >= 0 && kind <= 2);
        if (kind)
            REQUIRE(port > 0 && port <= 65535 && host[0] && strlen(host) < sizeof(host));
    } else {
        char *s = malloc(n + 1);
        if (!s)
            return 0;
        memcpy(s, p, n);
        s[n] = '\0';
        struct sse__redis_url u;
        if (sse__redis_url_parse(s, &u) == 0) {
            REQUIRE(u.port > 0 && u.port <= 65535 && u.db >= 0);
            REQUIRE(u.host[0] && strlen(u.host) < sizeof(u.host));
            REQUIRE(strlen(u.user) < sizeof(u.user) && strlen(u.pass) < sizeof(u.pass));
        }
        free(s);
    }
    return 0;
}
