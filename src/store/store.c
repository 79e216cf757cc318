/*
 * store.c: the generic side of include/sse/store.h: the dispatch helpers (sse_store_append & co),
 * which only call through the backend's vtable. Backends live in the folders beside this file
 * (memory/ now; lmdb/ and redis/ later), each with its own constructor and settings.
 */
#include <sse/store.h>

int sse_store_append(sse_store *s, const sse_store_entry *e, sse_store_append_cb cb, void *ud)
{
    return s->ops->append(s, e, cb, ud);
}

int sse_store_replay(sse_store *s, const char *after_id, size_t after_len, sse_store_entry_cb each,
                     sse_store_done_cb done, void *ud)
{
    return s->ops->replay(s, after_id, after_len, each, done, ud);
}

int sse_store_replay_from(sse_store *s, uint64_t after_position, sse_store_entry_cb each,
                          sse_store_done_cb done, void *ud)
{
    if (!s->ops->replay_from)
        return SSE_EUNSUPPORTED;
    return s->ops->replay_from(s, after_position, each, done, ud);
}

int sse_store_scan_back(sse_store *s, const char *id, size_t id_len, size_t max,
                        sse_store_entry_cb each, sse_store_done_cb done, void *ud)
{
    if (!s->ops->scan_back)
        return SSE_EUNSUPPORTED;
    return s->ops->scan_back(s, id, id_len, max, each, done, ud);
}

int sse_store_last_id(sse_store *s, sse_buf *out)
{
    return s->ops->last_id(s, out);
}

int sse_store_trim(sse_store *s, const sse_store_limits *lim, long long now_ms)
{
    return s->ops->trim(s, lim, now_ms);
}

void sse_store_stats(const sse_store *s, size_t *count, size_t *bytes)
{
    s->ops->stats(s, count, bytes);
}

int sse_store_healthy(const sse_store *s, const char **why)
{
    return !s->ops->healthy || s->ops->healthy(s, why);
}

void sse_store_close(sse_store *s, void (*done)(void *ud), void *ud)
{
    if (s)
        s->ops->close(s, done, ud);
}

void sse_store_free(sse_store *s)
{
    sse_store_close(s, NULL, NULL);
}
