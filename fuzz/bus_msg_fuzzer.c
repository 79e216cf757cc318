/*
 * bus_msg_fuzzer.c: libFuzzer target for the bus message codec (sse_bus_msg_decode and
 * sse_bus_msg_encode, src/bus/bus.c; the format is documented in include/sse/bus.h).
 *
 * The input is a candidate message, decoded as it is. Checks:
 * - only 0, SSE_EPROTO or SSE_ENOMEM come back, and *out is written only on success;
 * - a decoded message is well formed: at least one topic, NUL-terminated id, lengths that add
 *   up to the input exactly (a NUL byte in a topic or the id is refused), and no prefix of it
 *   decodes;
 * - re-encoding it succeeds and reproduces the input byte for byte (the format has one
 *   encoding per message);
 * - decoding that encoding gives the same fields again.
 */
#include "fuzz_common.h"

#include <sse/bus.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_msg(const sse_bus_msg *a, const sse_bus_msg *b)
{
    if (a->origin != b->origin || a->token != b->token || a->time_ms != b->time_ms ||
        a->is_private != b->is_private || a->no_history != b->no_history ||
        a->n_topics != b->n_topics || a->id_len != b->id_len || a->frame_len != b->frame_len)
        return 0;
    for (size_t i = 0; i < a->n_topics; i++)
        if (strcmp(a->topics[i], b->topics[i]) != 0)
            return 0;
    return !memcmp(a->id, b->id, a->id_len) && !memcmp(a->frame, b->frame, a->frame_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    sse_bus_msg *m = NULL;
    int rc = sse_bus_msg_decode(data, size, &m);
    if (rc) {
        REQUIRE(rc == SSE_EPROTO || rc == SSE_ENOMEM);
        REQUIRE(m == NULL);
        return 0;
    }
    REQUIRE(m != NULL);
    REQUIRE(m->n_topics >= 1 && m->n_topics <= UINT16_MAX);
    REQUIRE(m->id[m->id_len] == '\0');
    REQUIRE(m->is_private == 0 || m->is_private == 1);
    REQUIRE(m->no_history == 0 || m->no_history == 1);
    size_t topic_bytes = 0;
    for (size_t i = 0; i < m->n_topics; i++)
        topic_bytes += strlen(m->topics[i]);
    size_t want = sse_bus_msg_size(m->n_topics, topic_bytes, m->id_len, m->frame_len);
    REQUIRE(want == size);
    REQUIRE(strlen(m->id) == m->id_len);

    /* A strict prefix of a message is not a message (the lengths must add up exactly). */
    sse_bus_msg *p = NULL;
    REQUIRE(sse_bus_msg_decode(data, size - 1, &p) == SSE_EPROTO && p == NULL);

    sse_buf b;
    sse_buf_init(&b, 0);
    rc = sse_bus_msg_encode(&b, m);
    REQUIRE(rc == 0 || rc == SSE_ENOMEM);
    if (rc == 0) {
        REQUIRE(b.len == want);
        REQUIRE(!memcmp(b.data, data, size));
        sse_bus_msg *m2 = NULL;
        rc = sse_bus_msg_decode(b.data, b.len, &m2);
        REQUIRE(rc == 0 || rc == SSE_ENOMEM);
        if (rc == 0)
            REQUIRE(same_msg(m, m2));
        sse_bus_msg_free(m2);
    }
    sse_buf_free(&b);
    sse_bus_msg_free(m);
    return 0;
}
