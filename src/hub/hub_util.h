/*
 * hub_util.h: small pure helpers of the hub (internal): field validation per the Mercure drafts,
 * the reserved-namespace test, the publish-form decoder, ids, JSON and URI-template escaping,
 * cookies and origins. No I/O, no hub state, so each is unit-tested and fuzzed on its own.
 */
#ifndef SSE__HUB_UTIL_H
#define SSE__HUB_UTIL_H

#include <sse/buf.h>
#include <stddef.h>

/* 1 if s[0..n) is valid UTF-8 (sse_utf8_valid_prefix() of format.h: use that directly). */
int sse__hub_utf8_ok(const char *s, size_t n);
/* 1 if s[0..n) is valid UTF-8 without C0, DEL or C1 controls (topics, selectors). */
int sse__hub_text_ok(const char *s, size_t n);
/* 1 if a publisher's id is acceptable: no leading '#', no CR, LF or NUL, valid UTF-8. */
/* The longest update id accepted (bytes): a subscriber must be able to send it back as its
   Last-Event-ID, which the hub reads up to this length. */
#define SSE__HUB_ID_MAX 4096
int sse__hub_id_ok(const char *s, size_t n);
/* 1 if an event type is acceptable: no CR, LF or NUL, valid UTF-8. */
int sse__hub_type_ok(const char *s, size_t n);
/* 1 if retry is one or more ASCII digits (and fits in 18 digits). */
int sse__hub_retry_ok(const char *s, size_t n);
/*
 * 1 if topic, resolved as a URI reference against the hub URL (path /.well-known/mercure), has
 * the path /.well-known/mercure or one under /.well-known/mercure/ (dot segments removed,
 * "%2e" counted as '.'), whatever its scheme or authority. 0 if not, SSE_ENOMEM.
 */
int sse__hub_topic_reserved(const char *topic, size_t n);

/* A random (getrandom) version-4 UUID as "urn:uuid:xxxxxxxx-...", 45 bytes + NUL into out. */
int sse__hub_uuid4(char out[46]);
/* Append s[0..n) as a JSON string literal (quotes included). */
int sse__hub_json_str(sse_buf *b, const char *s, size_t n);
/* Append s[0..n) percent-encoded as an RFC 6570 simple expansion (all but unreserved). */
int sse__hub_pct_encode(sse_buf *b, const char *s, size_t n);

/*
 * Find the value of cookie name in a Cookie header value. Returns 1 and *val / *len (borrowed
 * from header) or 0.
 */
int sse__hub_cookie_get(const char *header, const char *name, const char **val, size_t *len);
/* 1 if name is a valid cookie name (an RFC 7230 token of 1..256 bytes), else 0. */
int sse__hub_cookie_name_ok(const char *name);
/*
 * 1 if the request's Origin (or, without it, the origin part of Referer) is in list (space or
 * comma separated origins, or "*"). 0 if neither header is present or it is not listed.
 */
int sse__hub_origin_allowed(const char *list, const char *origin, const char *referer);

/* ---------------------------------------------------------------- publish form */

enum { SSE__PUB_MAX_TOPICS_HARD = 1024 };

struct sse__pub_limits {
    size_t max_topics;    /* topics accepted (more -> 413) */
    size_t max_topic_len; /* bytes per topic (longer -> 413) */
    size_t max_update;    /* bytes of data + id + type (more -> 413) */
    /* draft-08 enabled on the hub: topic "*", id "earliest", type "mercure", control or format
       characters in id / type and the reserved namespace are 400 (they protect draft-08
       subscribers whoever publishes; a draft-07-only hub is unchanged) */
    int draft08;
};

/* A decoded publish request: every string NUL-terminated and owned (sse__pub_form_free). */
struct sse__pub_form {
    char **topics;
    size_t n_topics;
    sse_buf data; /* valid when has_data */
    int has_data;
    char *id;        /* NULL = none given */
    char *type;      /* NULL = none */
    long long retry; /* -1 = none */
    int is_private;
};

/*
 * Decode and validate an application/x-www-form-urlencoded publish body. Returns 0 and fills f,
 * or an HTTP status (400, 403, 413) with *why a short static reason (f is then freed/empty), or
 * SSE_ENOMEM. Checks: malformed escapes, missing / repeated topic, topic text and length, the
 * reserved namespace (403), id / type / retry syntax, data UTF-8, sizes.
 */
int sse__pub_form_parse(struct sse__pub_form *f, const char *body, size_t len,
                        const struct sse__pub_limits *lim, const char **why);
void sse__pub_form_free(struct sse__pub_form *f);

#endif
