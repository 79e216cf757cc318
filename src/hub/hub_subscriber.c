/*
 * hub_subscriber.c: one subscriber of the hub: holding live updates while its replay is in
 * flight, whether its grants let it read a private update, and its teardown (the one place a
 * subscriber is freed: on close, on a failed subscribe, and when the hub is freed).
 *
 * Not owned here: the subscribe request (hub_subscribe.c), the fan-out (hub_update.c).
 */
#include "common/alloc.h"
#include "hub/hub_internal.h"

#include <string.h>

void sse__hub_subscriber_free(sse_hub *h, struct sse__hub_subscriber *s)
{
    if (s->replay) /* its stream closed mid-replay: the replay ends where it waits */
        sse__hub_replay_detach(s->replay);
    for (size_t i = 0; i < s->n_subs; i++) {
        sse__index_remove(h->index, &s->subs[i].isub);
        sse__selector_unref(s->subs[i].isub.sel);
        sse__free(s->subs[i].text);
    }
    for (size_t i = 0; i < s->n_gsel; i++)
        sse__selector_unref(s->gsel[i]);
    for (size_t i = 0; i < s->n_pending; i++)
        sse_frame_unref(s->pending[i].frame);
    sse__free(s->pending);
    sse__free(s->gsel);
    sse__free(s->subs);
    sse__free(s->id);
    sse__grants_release(s->grants);
    sse__free(s);
}

void sse__hub_hold(struct sse__hub_subscriber *s, sse_frame *frame, uint64_t position)
{
    if (s->pending_overflow)
        return;
    if (s->n_pending == s->cap_pending) {
        size_t nc = s->cap_pending ? s->cap_pending * 2 : 8;
        struct sse__hub_held *a =
            nc <= SSE__HUB_PENDING_MAX ? sse__realloc(s->pending, nc * sizeof(*a)) : NULL;
        if (!a) {
            s->pending_overflow = 1;
            return;
        }
        s->pending = a;
        s->cap_pending = nc;
    }
    s->pending[s->n_pending].frame = sse_frame_ref(frame);
    s->pending[s->n_pending++].position = position;
}

/* ---------------------------------------------------------------- subscription events */

int sse__hub_can_read(const struct sse__hub_subscriber *s, const char *const *topics, size_t n)
{
    for (size_t g = 0; g < s->n_gsel; g++)
        for (size_t i = 0; i < n; i++)
            if (sse__selector_match(s->gsel[g], topics[i], strlen(topics[i])))
                return 1;
    return 0;
}
