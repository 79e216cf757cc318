/*
 * mercure_form_fuzzer.c: the hub's publish-form decoding and validation (sse__pub_form_parse),
 * plus the pure helpers it relies on (reserved-namespace test, text rules, cookies, origins).
 *
 * The first input byte picks the limits and the draft (single topic or several); the rest is the
 * form body. Invariants checked on success: every topic is non-empty valid text without control
 * characters and outside /.well-known/mercure, the id (if any) is acceptable, the data is UTF-8
 * and the sizes are within the limits. A failure must be 400, 403, 413 or SSE_ENOMEM.
 */
#include "hub/hub_util.h"

#include <sse/error.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    struct sse__pub_limits lim = {(size_t)(sel & 7) + 1, (size_t)64 << ((sel >> 3) & 3),
                                  (size_t)256 << ((sel >> 5) & 3), sel >> 7};
    struct sse__pub_form f;
    const char *why = NULL;
    int rc = sse__pub_form_parse(&f, body, len, &lim, &why);
    if (rc == 0) {
        if (!f.n_topics || f.n_topics > lim.max_topics)
            abort();
        /* draft-08's reserved values never get through */
        if (lim.draft08 &&
            ((f.id && !strcmp(f.id, "earliest")) || (f.type && !strcmp(f.type, "mercure"))))
            abort();
        for (size_t i = 0; lim.draft08 && i < f.n_topics; i++)
            if (!strcmp(f.topics[i], "*"))
                abort();
        for (size_t i = 0; i < f.n_topics; i++) {
            size_t n = strlen(f.topics[i]);
            if (!n || n > lim.max_topic_len || !sse__hub_text_ok(f.topics[i], n) ||
                sse__hub_topic_reserved(f.topics[i], n) != 0)
                abort();
        }
        if (f.id && !sse__hub_id_ok(f.id, strlen(f.id)))
            abort();
        if (f.type && !sse__hub_type_ok(f.type, strlen(f.type)))
            abort();
        if (f.has_data && !sse__hub_utf8_ok(f.data.data, f.data.len))
            abort();
        if (f.data.len > lim.max_update)
            abort();
        sse__pub_form_free(&f);
    } else if (rc != 400 && rc != 403 && rc != 413 && rc != SSE_ENOMEM) {
        abort();
    } else if (rc != SSE_ENOMEM && !why) {
        abort();
    }

    /* The same bytes as a topic, a cookie header and an origin. */
    (void)sse__hub_topic_reserved(body, len);
    (void)sse__hub_text_ok(body, len);
    char *s = malloc(len + 1);
    if (!s)
        return 0;
    memcpy(s, body, len);
    s[len] = '\0';
    const char *v;
    size_t vl;
    if (sse__hub_cookie_get(s, "mercureAuthorization", &v, &vl) && (v < s || v + vl > s + len))
        abort();
    (void)sse__hub_origin_allowed(s, s, s);
    (void)sse__hub_origin_allowed("https://a.example http://b.example:8080", NULL, s);
    free(s);
    return 0;
}
