/*
 * encoder_roundtrip_fuzzer.c: libFuzzer target: arbitrary event fields -> sse_encode_event ->
 * sse_parser -> the same event. The input is split at 0xFE bytes into data, type, id, comment;
 * the first byte says which of them are set and the retry value's low bits.
 * Checks: id/type with CR, LF or NUL are refused with SSE_EINVAL and nothing written; otherwise
 * the stream parses (fed in two pieces) to exactly one event whose data equals the input data
 * with CRLF and CR turned into LF, type and id as given (type "message" when unset or empty),
 * the retry, and one comment per comment line. Fields that are not valid UTF-8 only have to
 * parse without error (the parser replaces invalid bytes; that is the parser fuzzer's domain).
 */
#include "fuzz_common.h"

#include <sse/format.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct rt {
    int events, retries, comments;
    const char *want_data, *want_type, *want_id, *want_comment;
    size_t want_data_len, want_type_len, want_id_len, want_comment_len;
    size_t comment_at; /* bytes of want_comment matched so far */
    long long want_retry;
    int exact;
};

/* a == b with b's CR and CRLF read as LF */
static int eq_lf(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0, j = 0;
    while (j < bn) {
        char c = b[j++];
        if (c == '\r') {
            c = '\n';
            if (j < bn && b[j] == '\n')
                j++;
        }
        if (i >= an || a[i++] != c)
            return 0;
    }
    return i == an;
}

static int on_event(void *ud, const sse_parsed_event *ev)
{
    struct rt *r = ud;
    r->events++;
    if (!r->exact)
        return 0;
    if (!eq_lf(ev->data, ev->data_len, r->want_data, r->want_data_len))
        abort();
    if (ev->type_len != r->want_type_len || memcmp(ev->type, r->want_type, ev->type_len))
        abort();
    if (ev->id_len != r->want_id_len || memcmp(ev->id, r->want_id, ev->id_len))
        abort();
    return 0;
}

static int on_retry(void *ud, uint64_t ms)
{
    struct rt *r = ud;
    r->retries++;
    if ((long long)ms != r->want_retry)
        abort();
    return 0;
}

static int on_comment(void *ud, const char *text, size_t len)
{
    struct rt *r = ud;
    r->comments++;
    if (!r->exact)
        return 0;
    /* the next line of the expected comment */
    const char *c = r->want_comment + r->comment_at;
    size_t left = r->want_comment_len - r->comment_at, k = 0;
    while (k < left && c[k] != '\r' && c[k] != '\n')
        k++;
    if (k != len || memcmp(c, text, len))
        abort();
    r->comment_at += k;
    if (r->comment_at < r->want_comment_len) {
        if (c[k] == '\r' && k + 1 < left && c[k + 1] == '\n')
            r->comment_at++;
        r->comment_at++;
    }
    return 0;
}

static int bad_single_line(const char *s, size_t n)
{
    return memchr(s, '\r', n) || memchr(s, '\n', n) || memchr(s, '\0', n);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 1 || size > 1 << 14)
        return 0;
    unsigned flags = in[0];
    const char *part[4] = {"", "", "", ""};
    size_t plen[4] = {0, 0, 0, 0};
    size_t at = 1;
    for (int i = 0; i < 4 && at <= size; i++) {
        const uint8_t *sep = at < size ? memchr(in + at, 0xFE, size - at) : NULL;
        size_t end = sep ? (size_t)(sep - in) : size;
        part[i] = (const char *)in + at;
        plen[i] = end - at;
        at = end + 1;
    }
    sse_event ev = SSE_EVENT_INIT;
    if (flags & 1)
        ev.data = part[0], ev.data_len = plen[0];
    if (flags & 2)
        ev.type = part[1], ev.type_len = plen[1];
    if (flags & 4)
        ev.id = part[2], ev.id_len = plen[2];
    if (flags & 8)
        ev.comment = part[3], ev.comment_len = plen[3];
    if (flags & 16)
        ev.retry = (long long)(flags >> 5) * 1000;

    sse_buf out;
    sse_buf_init(&out, 0);
    sse_buf_append(&out, "x", 1); /* must survive a refusal */
    int rc = sse_encode_event(&out, &ev);
    int refuse = (ev.type && bad_single_line(ev.type, ev.type_len)) ||
                 (ev.id && bad_single_line(ev.id, ev.id_len));
    if (refuse) {
        if (rc != SSE_EINVAL || out.len != 1 || out.data[0] != 'x')
            abort();
        sse_buf_free(&out);
        return 0;
    }
    if (rc != 0)
        abort();

    struct rt r = {0};
    r.exact = fuzz_valid_utf8((const unsigned char *)part[0], ev.data ? plen[0] : 0) &&
              fuzz_valid_utf8((const unsigned char *)part[1], ev.type ? plen[1] : 0) &&
              fuzz_valid_utf8((const unsigned char *)part[2], ev.id ? plen[2] : 0) &&
              fuzz_valid_utf8((const unsigned char *)part[3], ev.comment ? plen[3] : 0);
    r.want_data = ev.data ? ev.data : "";
    r.want_data_len = ev.data ? ev.data_len : 0;
    r.want_type = ev.type && ev.type_len ? ev.type : "message";
    r.want_type_len = ev.type && ev.type_len ? ev.type_len : 7;
    r.want_id = ev.id ? ev.id : "";
    r.want_id_len = ev.id ? ev.id_len : 0;
    r.want_comment = ev.comment ? ev.comment : "";
    r.want_comment_len = ev.comment ? ev.comment_len : 0;
    r.want_retry = ev.retry;

    static const sse_parser_callbacks cb = {on_event, on_retry, on_comment};
    sse_parser *p;
    if (sse_parser_new(&p, NULL, &cb, &r))
        abort();
    size_t split = 1 + (out.len - 1) * (flags & 7) / 8;
    if (sse_parser_feed(p, out.data + 1, split - 1) ||
        sse_parser_feed(p, out.data + split, out.len - split))
        abort();
    sse_parser_free(p);
    sse_buf_free(&out);
    /* exactly one event; one retry iff set; one comment per comment line */
    if (r.events != 1 || r.retries != (ev.retry >= 0))
        abort();
    if (r.exact && ev.comment && r.comment_at != r.want_comment_len)
        abort();
    if (!ev.comment && r.comments)
        abort();
    return 0;
}
