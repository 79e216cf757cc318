/*
 * redis_entry.h: what the Redis bus reads from Redis, checked before anything is believed: the
 * entries of XREAD and XRANGE replies (each carries one bus message, include/sse/bus.h, as the
 * field "m"), stream entry ids ("MS-SEQ"), and redis:// URLs.
 *
 * No I/O here: the replies are hiredis redisReply trees, already parsed by hiredis's reader.
 * Everything is bounded; malformed input is reported, never trusted (fuzz/redis_entry_fuzzer.c).
 * Not owned here: the connections, reconnects and the bus itself (redis_bus.c).
 */
#ifndef SSE_BUS_REDIS_ENTRY_H
#define SSE_BUS_REDIS_ENTRY_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

/* The longest stream entry id we accept ("18446744073709551615-18446744073709551615"). */
enum { SSE__REDIS_ID_MAX = 41 };

/* One stream entry of a reply. Pointers are borrowed from the reply. */
struct sse__redis_entry {
    const char *id; /* the entry id as Redis wrote it (NUL-terminated) */
    size_t id_len;
    uint64_t ms, seq; /* the id's two halves */
    const char *msg;  /* the bus message bytes (field "m"); NULL when !ok */
    size_t len;
    int ok;          /* 0: the id is good but the fields are not (why says what) */
    const char *why; /* when !ok: a static description */
};

/* Called for every entry with a valid id, in reply order. Return 0 to go on, non-zero to stop. */
typedef int (*sse__redis_entry_fn)(void *ud, const struct sse__redis_entry *e);

/*
 * Walk an XRANGE / XREVRANGE reply (an array of [id, [field, value, ...]]). Entries with a valid
 * id are handed to fn (ok = 0 when their fields are unusable: no "m", not a string, or longer
 * than max_message); entries whose id is unusable are skipped and counted in *skipped (may be
 * NULL). Returns the number of entries handed to fn, or SSE_EPROTO when the reply is not an
 * array (an error reply, a wrong type at the key).
 */
int sse__redis_entries(const redisReply *r, size_t max_message, sse__redis_entry_fn fn, void *ud,
                       size_t *skipped);

/*
 * Walk an XREAD reply for one stream: nil (BLOCK timed out) is 0 entries; else an array of
 * [key, entries], whose entries are walked as sse__redis_entries does. Returns the number of
 * entries handed to fn, or SSE_EPROTO.
 */
int sse__redis_xread(const redisReply *r, size_t max_message, sse__redis_entry_fn fn, void *ud,
                     size_t *skipped);

/* Parse a stream entry id "MS-SEQ" (decimal, no sign, each at most 20 digits and in range).
 * 0, or SSE_EPROTO. */
int sse__redis_parse_id(const char *s, size_t n, uint64_t *ms, uint64_t *seq);

/* A parsed redis://[user:pass@]HOST[:PORT][/DB] URL. */
struct sse__redis_url {
    char host[256]; /* name, IPv4, or IPv6 without the brackets */
    int port;       /* default 6379 */
    char user[128]; /* "" = none (AUTH with the password only) */
    char pass[256]; /* "" = no AUTH */
    int db;         /* default 0 (no SELECT) */
};

/* Parse url into *u (written only on success); user and password may be %-encoded. 0 or
 * SSE_EINVAL. */
int sse__redis_url_parse(const char *url, struct sse__redis_url *u);

/*
 * A Redis Cluster redirection: an error reply "MOVED <slot> <host>:<port>" or "ASK <slot>
 * <host>:<port>" (the host may be an IPv6 address; the port is after the last ':'). Returns 1
 * (MOVED) or 2 (ASK) and fills host (cap bytes with the NUL) and *port; 0 when err is not a
 * redirection or does not parse.
 */
int sse__redis_redirect(const char *err, size_t len, char *host, size_t cap, int *port);

#endif
