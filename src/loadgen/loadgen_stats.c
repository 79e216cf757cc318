/*
 * loadgen_stats.c: the numbers of a load-generator run: the log-linear latency histogram, the
 * clocks the measurements use, and the merge of the worker processes' counters, histograms and
 * per-message receipts into the report with its derived rates. No I/O, no printing.
 */
#include "loadgen/loadgen.h"

#include <string.h>
#include <time.h>

void sse__loadgen_hist_init(struct sse__loadgen_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static unsigned hist_index(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
    unsigned m = (unsigned)(v >> (e - 5)) & (SSE__LOADGEN_HIST_SUB - 1);
    unsigned i = 64 + (e - 6) * SSE__LOADGEN_HIST_SUB + m;
    return i < SSE__LOADGEN_HIST_BUCKETS ? i : SSE__LOADGEN_HIST_BUCKETS - 1;
}

/* Upper edge of bucket i (inclusive). */
static uint64_t hist_value(unsigned i)
{
    if (i < 64)
        return i;
    unsigned e = (i - 64) / SSE__LOADGEN_HIST_SUB + 6;
    unsigned m = (i - 64) % SSE__LOADGEN_HIST_SUB;
    uint64_t base = ((uint64_t)(SSE__LOADGEN_HIST_SUB + m)) << (e - 5);
    return base + (((uint64_t)1 << (e - 5)) - 1);
}

void sse__loadgen_hist_add(struct sse__loadgen_hist *h, uint64_t ns)
{
    h->b[hist_index(ns)]++;
    h->count++;
    h->sum += ns;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
}

void sse__loadgen_hist_merge(struct sse__loadgen_hist *dst, const struct sse__loadgen_hist *src)
{
    for (unsigned i = 0; i < SSE__LOADGEN_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t sse__loadgen_hist_quantile(const struct sse__loadgen_hist *h, double q)
{
    if (!h->count)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->count + 0.5);
    if (want < 1)
        want = 1;
    if (want > h->count)
        want = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SSE__LOADGEN_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

uint64_t sse__loadgen_now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sse__loadgen_now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sse__loadgen_subs_on_topic(const struct sse__loadgen_config *c, uint64_t t)
{
    uint64_t n = c->subscribers, tc = c->topics;
    return n / tc + (t < n % tc ? 1 : 0);
}

void sse__loadgen_collect(const struct sse__loadgen_config *c, const struct sse__loadgen_shared *sh,
                          struct sse__loadgen_report *rep)
{
    const struct sse__loadgen_pub_stats *ps = &rep->pub;
    sse__loadgen_hist_init(&rep->latency);
    sse__loadgen_hist_init(&rep->fanout_last);
    rep->dropped = rep->events = rep->warm_events = rep->bad_events = rep->body_bytes = 0;
    rep->first_error = 0;
    for (unsigned i = 0; i < c->procs; i++) {
        const struct sse__loadgen_child *ch = &sh->child[i];
        rep->dropped += ch->dropped;
        rep->events += ch->events;
        rep->warm_events += ch->warm_events;
        rep->bad_events += ch->bad_events;
        rep->body_bytes += ch->bytes;
        if (!rep->first_error)
            rep->first_error = ch->first_error;
        if (__atomic_load_n(&ch->done, __ATOMIC_ACQUIRE))
            sse__loadgen_hist_merge(&rep->latency, &ch->hist);
    }
    rep->expected = rep->fanout_tracked = rep->fanout_complete = 0;
    for (uint64_t s = ps->first_measured_seq; s < ps->end_seq; s++) {
        uint64_t want = sse__loadgen_subs_on_topic(c, s % c->topics);
        rep->expected += want;
        if (s >= c->max_track)
            continue;
        rep->fanout_tracked++;
        if (sh->seq[s].count >= want)
            rep->fanout_complete++;
        if (sh->seq[s].count)
            sse__loadgen_hist_add(&rep->fanout_last, sh->seq[s].max_ns);
    }
    rep->deliveries_per_sec =
        rep->pub_ran && ps->seconds > 0 ? (double)rep->events / ps->seconds : 0;
    rep->connect_rate =
        rep->connect_seconds > 0 ? (double)rep->connected / rep->connect_seconds : 0;
    const struct sse__loadgen_mem *b = &rep->mem_before, *a = &rep->mem_after;
    long long pss_growth = b->pss_kib >= 0 && a->pss_kib >= 0 ? a->pss_kib - b->pss_kib : 0;
    long long rss_growth = b->rss_kib >= 0 && a->rss_kib >= 0 ? a->rss_kib - b->rss_kib : 0;
    rep->pss_per_sub = rep->connected ? (double)pss_growth * 1024.0 / (double)rep->connected : 0;
    rep->rss_per_sub = rep->connected ? (double)rss_growth * 1024.0 / (double)rep->connected : 0;
    rep->errors = rep->failed + rep->dropped + rep->bad_events + ps->errors;
}
