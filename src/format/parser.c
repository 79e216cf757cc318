/*
 * parser.c: the incremental text/event-stream parser (WHATWG HTML, "Server-sent events":
 * "Parsing an event stream", "Interpreting an event stream", dispatching).
 *
 * How it is laid out, and why:
 * - Line ends are found on the raw bytes (CR and LF are ASCII and can never be part of a
 *   multi-byte UTF-8 sequence; the decoder's maximal-subpart rule also ends an invalid sequence
 *   at CR, LF or ':'), so decoding each field value on its own gives exactly the result of
 *   decoding the whole stream first. A value is run through the replacement decoder only if its
 *   line holds a byte >= 0x80, which the line scan notices for free.
 * - A line that lies wholly inside the fed chunk is processed in place (zero copy); only the
 *   tail of a chunk that ends mid-line is copied into the line buffer, which is capped by
 *   max_line, so a 100 MB line costs at most max_line bytes before SSE_ELIMIT.
 * - data / event / id values are copied once, into the event's buffers, which max_event caps.
 * - The leading BOM (EF BB BF) is matched byte by byte so that it may be split across chunks; a
 *   CR that ends a chunk sets skip_lf so that an LF starting the next chunk ends nothing.
 * It owns no I/O; callbacks receive borrowed strings valid only during the call.
 */
#include "common/alloc.h"
#include "format/format_internal.h"

#include <sse/format.h>
#include <string.h>

#define SSE__DEFAULT_MAX_LINE ((size_t)1 << 20)   /* 1 MiB */
#define SSE__DEFAULT_MAX_EVENT ((size_t)16 << 20) /* 16 MiB */
#define SSE__KEEP_CAP ((size_t)4 << 10) /* buffers larger than this are freed when emptied */

/* A growable byte string that always has room for a terminating NUL past len. */
struct sse__pbuf {
    char *p;      /* owned (sse__malloc); NULL until first needed */
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated */
    size_t limit; /* growth stops doubling at this size (0: no such size) */
};

struct sse_parser {
    sse_parser_callbacks cb;  /* copied at creation */
    void *user_data;          /* passed to every callback */
    size_t max_line;          /* longest line, terminator excluded */
    size_t max_event;         /* largest data + type + id */
    struct sse__pbuf line;    /* the unfinished line a chunk ended in */
    struct sse__pbuf data;    /* the data buffer (every data line followed by LF) */
    struct sse__pbuf type;    /* the event type buffer */
    struct sse__pbuf id;      /* the last event ID buffer, when id_set */
    struct sse__pbuf last_id; /* the last event ID string (set at dispatch) */
    struct sse__pbuf scratch; /* decoded comments with invalid UTF-8 */
    size_t fixed_len;         /* type.len + the last event ID buffer's length (id.len when
                               * id_set, else last_id.len): the event's size but the data */
    int err;                  /* sticky SSE_ELIMIT / SSE_ENOMEM until reset */
    unsigned line_hi;         /* non-zero if the buffered line holds a byte >= 0x80 */
    unsigned char at_start;   /* no byte of the stream seen yet but BOM candidates */
    unsigned char bom_n;      /* bytes of a BOM matched so far (0..2) while at_start */
    unsigned char skip_lf;    /* the previous chunk ended with CR: drop one leading LF */
    unsigned char id_set;     /* an id field was seen since the last dispatch; if 0, the
                               * last event ID buffer equals last_id */
};

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

/* ------------------------------------------------------------- buffers */

static int pbuf_grow(struct sse__pbuf *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 4 ? need : cap * 2;
    if (b->limit && cap > b->limit && need <= b->limit)
        cap = b->limit; /* do not double past what the parser's limits can ever need */
    char *n = sse__realloc(b->p, cap);
    if (!n)
        return SSE_ENOMEM;
    b->p = n;
    b->cap = cap;
    return 0;
}

/* Room for extra more bytes plus the NUL. */
static inline int pbuf_reserve(struct sse__pbuf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    return pbuf_grow(b, need);
}

static void pbuf_free(struct sse__pbuf *b)
{
    sse__free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Empty b; a large allocation is given back so an idle parser stays small. */
static inline void pbuf_clear(struct sse__pbuf *b)
{
    b->len = 0;
    if (b->cap > SSE__KEEP_CAP)
        pbuf_free(b);
}

/* Whether s[0..n) holds a NUL byte; ids are short: two overlapping word loads, no byte loop. */
static inline int has_nul(const unsigned char *s, size_t n)
{
    if (n > 16) {
        for (size_t i = 0; i < n; i++)
            if (!s[i])
                return 1;
        return 0;
    }
    if (n >= 8) {
        const uint64_t ones = 0x0101010101010101ull;
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        return (((a - ones) & ~a) | ((b - ones) & ~b)) >> 7 & ones ? 1 : 0;
    }
    if (n >= 4) {
        const uint32_t ones = 0x01010101u;
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        return (((a - ones) & ~a) | ((b - ones) & ~b)) >> 7 & ones ? 1 : 0;
    }
    return n && (!s[0] || !s[n / 2] || !s[n - 1]);
}

/* Append s[0..n) that holds a byte >= 0x80: copied if valid UTF-8, else decoded. */
static __attribute__((noinline)) int pbuf_append_utf8(struct sse__pbuf *b, const unsigned char *s,
                                                      size_t n)
{
    size_t v = sse__utf8_valid_prefix(s, n);
    size_t room = v == n ? n : 3 * n;
    if (n > ((size_t)-1) / 4)
        return SSE_ENOMEM;
    int rc = pbuf_reserve(b, room);
    if (rc)
        return rc;
    if (v == n) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    } else {
        b->len += sse__utf8_sanitize(b->p + b->len, s, n);
    }
    return 0;
}

/* Append s[0..n), decoding UTF-8 with replacement if hi says there may be non-ASCII bytes. */
static inline int pbuf_append_text(struct sse__pbuf *b, const unsigned char *s, size_t n,
                                   unsigned hi)
{
    if (hi)
        return pbuf_append_utf8(b, s, n);
    int rc = pbuf_reserve(b, n);
    if (rc)
        return rc;
    if (n <= 16)
        sse__copy_short(b->p + b->len, s, n);
    else
        memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/* Replace b's contents by s[0..n) (decoded). */
static inline int pbuf_set_text(struct sse__pbuf *b, const unsigned char *s, size_t n, unsigned hi)
{
    b->len = 0;
    return pbuf_append_text(b, s, n, hi);
}

/* ------------------------------------------------------------- lifecycle */

int sse_parser_new(sse_parser **out, const sse_parser_options *opts, const sse_parser_callbacks *cb,
                   void *user_data)
{
    if (!out)
        return SSE_EINVAL;
    if (opts && opts->version != SSE_PARSER_OPTIONS_VERSION)
        return SSE_EINVAL;
    sse_parser *p = sse__calloc(1, sizeof(*p));
    if (!p)
        return SSE_ENOMEM;
    if (cb)
        p->cb = *cb;
    p->user_data = user_data;
    p->max_line = opts && opts->max_line ? opts->max_line : SSE__DEFAULT_MAX_LINE;
    p->max_event = opts && opts->max_event ? opts->max_event : SSE__DEFAULT_MAX_EVENT;
    p->at_start = 1;
    p->line.limit = p->max_line + 1;
    p->data.limit = p->max_event + 1;
    *out = p;
    return 0;
}

void sse_parser_free(sse_parser *p)
{
    if (!p)
        return;
    pbuf_free(&p->line);
    pbuf_free(&p->data);
    pbuf_free(&p->type);
    pbuf_free(&p->id);
    pbuf_free(&p->last_id);
    pbuf_free(&p->scratch);
    sse__free(p);
}

void sse_parser_reset(sse_parser *p)
{
    pbuf_clear(&p->line);
    pbuf_clear(&p->data);
    pbuf_clear(&p->type);
    pbuf_clear(&p->scratch);
    /* A new stream's last event ID buffer starts from the last event ID string, as browsers
     * do (Chromium's EventSourceParser is constructed with it): id_set = 0 says exactly that. */
    pbuf_clear(&p->id);
    p->id_set = 0;
    p->fixed_len = p->last_id.len;
    p->err = 0;
    p->line_hi = 0;
    p->at_start = 1;
    p->bom_n = 0;
    p->skip_lf = 0;
}

void sse_parser_end(sse_parser *p)
{
    sse_parser_reset(p);
}

const char *sse_parser_last_event_id(const sse_parser *p, size_t *len)
{
    if (len)
        *len = p->last_id.len;
    return p->last_id.len ? p->last_id.p : "";
}

int sse_parser_set_last_event_id(sse_parser *p, const char *id, size_t len)
{
    if (!id && len)
        return SSE_EINVAL;
    for (size_t i = 0; i < len; i++)
        if (id[i] == '\0' || id[i] == '\r' || id[i] == '\n')
            return SSE_EINVAL;
    if (len && sse__utf8_valid_prefix((const unsigned char *)id, len) != len)
        return SSE_EINVAL;
    if (pbuf_reserve(&p->last_id, len))
        return SSE_ENOMEM;
    if (len)
        memcpy(p->last_id.p, id, len);
    p->last_id.len = len;
    p->last_id.p[len] = '\0';
    p->id.len = 0;
    p->id_set = 0; /* the buffer follows the string */
    p->fixed_len = p->type.len + len;
    return 0;
}

/* ------------------------------------------------------------- interpreting lines */

static int dispatch(sse_parser *p)
{
    /* 1. the last event ID string takes the buffer's value (even when nothing dispatches);
     * afterwards the two are equal again, which id_set = 0 means */
    if (p->id_set) {
        /* swap instead of copying: the old string's allocation becomes the next buffer */
        struct sse__pbuf t = p->last_id;
        p->last_id = p->id;
        p->last_id.p[p->last_id.len] = '\0'; /* id_set means id.p was allocated */
        p->id = t;
        p->id.len = 0;
        p->id_set = 0;
    }
    /* 2. an empty data buffer dispatches nothing, but the type buffer is reset */
    if (p->data.len == 0) {
        p->type.len = 0;
        p->fixed_len = p->last_id.len;
        return 0;
    }
    int rc = 0;
    if (p->cb.on_event) {
        sse_parsed_event ev;
        p->data.p[--p->data.len] = '\0'; /* 3. drop the final LF */
        ev.data = p->data.p;
        ev.data_len = p->data.len;
        if (p->type.len) {
            p->type.p[p->type.len] = '\0';
            ev.type = p->type.p;
            ev.type_len = p->type.len;
        } else {
            ev.type = "message";
            ev.type_len = 7;
        }
        ev.id = p->last_id.len ? p->last_id.p : "";
        ev.id_len = p->last_id.len;
        rc = p->cb.on_event(p->user_data, &ev) ? SSE_ECANCELED : 0;
    }
    pbuf_clear(&p->data);
    p->type.len = 0;
    p->fixed_len = p->last_id.len;
    return rc;
}

static inline int check_event_size(const sse_parser *p)
{
    return p->data.len + p->fixed_len > p->max_event ? SSE_ELIMIT : 0; /* each <= SIZE_MAX / 4 */
}

/* After the event type or the last event ID buffer changed. */
static inline int check_event_size_fixed(sse_parser *p)
{
    p->fixed_len = p->type.len + (p->id_set ? p->id.len : p->last_id.len);
    return check_event_size(p);
}

/* Process one complete line s[0..n) (terminator excluded); hi: it may hold bytes >= 0x80. */
static inline __attribute__((always_inline)) int process_line(sse_parser *p, const unsigned char *s,
                                                              size_t n, unsigned hi)
{
    /* The usual lines start "data: ", "id: " or "event: ": recognise those directly; anything
     * else (the blank line, comments, no space, retry, unknown) takes the general path. */
    enum { F_OTHER, F_DATA, F_ID, F_EVENT, F_RETRY } f;
    const unsigned char *v;
    size_t vn;
    /* the prefixes include the one space that is dropped */
    if (n >= 6 && memcmp(s, "data: ", 6) == 0) {
        f = F_DATA;
        v = s + 6;
        vn = n - 6;
    } else if (n >= 4 && memcmp(s, "id: ", 4) == 0) {
        f = F_ID;
        v = s + 4;
        vn = n - 4;
    } else if (n >= 7 && memcmp(s, "event: ", 7) == 0) {
        f = F_EVENT;
        v = s + 7;
        vn = n - 7;
    } else {
        /* the blank line and comments are tested after the usual fields, which they never
         * match (no prefix fits in 0 bytes or starts with ':') */
        if (n == 0)
            return dispatch(p);
        if (s[0] == ':') {
            if (!p->cb.on_comment)
                return 0;
            const unsigned char *t = s + 1;
            size_t tn = n - 1;
            if (hi && sse__utf8_valid_prefix(t, tn) != tn) {
                int rc = pbuf_set_text(&p->scratch, t, tn, hi);
                if (rc)
                    return rc;
                t = (const unsigned char *)p->scratch.p;
                tn = p->scratch.len;
            }
            return p->cb.on_comment(p->user_data, (const char *)t, tn) ? SSE_ECANCELED : 0;
        }
        const unsigned char *q = memchr(s, ':', n);
        size_t c = q ? (size_t)(q - s) : n; /* length of the field name */
        if (c == 4 && memcmp(s, "data", 4) == 0)
            f = F_DATA;
        else if (c == 2 && s[0] == 'i' && s[1] == 'd')
            f = F_ID;
        else if (c == 5 && memcmp(s, "event", 5) == 0)
            f = F_EVENT;
        else if (c == 5 && memcmp(s, "retry", 5) == 0)
            f = F_RETRY;
        else
            return 0; /* unknown fields are ignored */
        v = s + n;
        vn = 0;
        if (c < n) {
            v = s + c + 1;
            vn = n - c - 1;
            if (vn && *v == ' ') {
                v++;
                vn--;
            }
        }
    }
    int rc;
    switch (f) {
    case F_DATA:
        rc = pbuf_append_text(&p->data, v, vn, hi);
        if (rc)
            return rc;
        p->data.p[p->data.len++] = '\n'; /* reserve always leaves one spare byte */
        return check_event_size(p);
    case F_EVENT:
        rc = pbuf_set_text(&p->type, v, vn, hi);
        return rc ? rc : check_event_size_fixed(p);
    case F_ID:
        if (has_nul(v, vn))
            return 0; /* an id containing NUL is ignored */
        rc = pbuf_set_text(&p->id, v, vn, hi);
        if (rc)
            return rc;
        p->id_set = 1;
        return check_event_size_fixed(p);
    case F_RETRY: {
        if (vn == 0)
            return 0;
        uint64_t ms = 0;
        for (size_t i = 0; i < vn; i++) {
            unsigned d = (unsigned)v[i] - '0';
            if (d > 9)
                return 0; /* not all ASCII digits: ignored */
            if (ms > (UINT64_MAX - d) / 10)
                return 0; /* does not fit: ignored */
            ms = ms * 10 + d;
        }
        if (p->cb.on_retry && p->cb.on_retry(p->user_data, ms))
            return SSE_ECANCELED;
        return 0;
    }
    default:
        return 0;
    }
}

/* process_line out of line, for the paths that are not the per-chunk loop (keeps code small) */
static __attribute__((noinline)) int process_line_slow(sse_parser *p, const unsigned char *s,
                                                       size_t n, unsigned hi)
{
    return process_line(p, s, n, hi);
}

/*
 * Step over the line end at s (a CR, an LF or a CRLF; s < end). A CR that is the chunk's last
 * byte may be the first half of a CRLF: skip_lf drops an LF that starts the next chunk.
 */
static inline const unsigned char *skip_eol(sse_parser *p, const unsigned char *s,
                                            const unsigned char *end)
{
    if (*s++ == '\r') {
        if (s == end)
            p->skip_lf = 1;
        else if (*s == '\n')
            s++;
    }
    return s;
}

/* ------------------------------------------------------------- feeding */

static __attribute__((noinline)) int feed_bytes(sse_parser *p, const unsigned char *s, size_t n)
{
    const unsigned char *end = s + n;
    int rc;

    if (p->skip_lf && s < end) {
        if (*s == '\n')
            s++;
        p->skip_lf = 0;
    }
    /* finish the line an earlier chunk ended in */
    if (p->line.len && s < end) {
        unsigned hi = 0;
        size_t k = sse__scan_eol(s, (size_t)(end - s), &hi);
        if (k > p->max_line - p->line.len)
            return SSE_ELIMIT;
        if (pbuf_reserve(&p->line, k))
            return SSE_ENOMEM;
        memcpy(p->line.p + p->line.len, s, k);
        p->line.len += k;
        p->line_hi |= hi;
        if (s + k == end)
            return 0;
        rc = process_line_slow(p, (const unsigned char *)p->line.p, p->line.len, p->line_hi);
        pbuf_clear(&p->line);
        p->line_hi = 0;
        s = skip_eol(p, s + k, end);
        if (rc)
            return rc;
    }
    /* whole lines inside the chunk are processed in place */
    while (s < end) {
        unsigned hi = 0;
        size_t k = sse__scan_eol(s, (size_t)(end - s), &hi);
        if (k > p->max_line)
            return SSE_ELIMIT;
        if (s + k == end) { /* the chunk ends mid-line: keep the tail */
            if (pbuf_reserve(&p->line, k))
                return SSE_ENOMEM;
            memcpy(p->line.p, s, k);
            p->line.len = k;
            p->line_hi = hi;
            return 0;
        }
        rc = process_line(p, s, k, hi);
        s = skip_eol(p, s + k, end);
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * Small chunks (a byte or a few at a time, as a slow network delivers them): one pass over the
 * bytes with no scan set-up; ordinary bytes go straight into the line buffer.
 */
static inline int feed_small(sse_parser *p, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c != '\n' && c != '\r') {
            p->skip_lf = 0;
            if (p->line.len >= p->max_line)
                return SSE_ELIMIT;
            if (p->line.len + 2 > p->line.cap && pbuf_reserve(&p->line, 1))
                return SSE_ENOMEM;
            p->line.p[p->line.len++] = (char)c;
            p->line_hi |= c & 0x80u;
            continue;
        }
        if (c == '\n' && p->skip_lf) {
            p->skip_lf = 0;
            continue;
        }
        p->skip_lf = 0;
        int rc = process_line_slow(
            p, p->line.len ? (const unsigned char *)p->line.p : (const unsigned char *)"",
            p->line.len, p->line_hi);
        pbuf_clear(&p->line);
        p->line_hi = 0;
        /* as in feed_bytes: a CR's LF is taken from this chunk, or from the next one's start */
        if (c == '\r') {
            if (i + 1 == n)
                p->skip_lf = 1;
            else if (s[i + 1] == '\n')
                i++;
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* The general entry: the leading BOM, then feed_small or feed_bytes. */
static __attribute__((noinline)) int feed_any(sse_parser *p, const unsigned char *s, size_t len)
{
    if (!len)
        return 0;
    if (!s)
        return SSE_EINVAL;
    if (p->at_start) {
        /* the UTF-8 decoder drops one leading BOM, which may arrive split across chunks */
        while (len && p->bom_n < 3 && *s == bom[p->bom_n]) {
            p->bom_n++;
            s++;
            len--;
        }
        if (p->bom_n == 3) {
            p->at_start = 0;
        } else if (!len) {
            return 0; /* still a BOM prefix */
        } else {
            /* not a BOM after all: the bytes held back are ordinary input */
            unsigned char held = p->bom_n;
            p->at_start = 0;
            p->bom_n = 0;
            if (held) {
                int rc = feed_bytes(p, bom, held);
                if (rc)
                    return rc;
            }
        }
        if (!len)
            return 0;
    }
    return len <= 8 ? feed_small(p, s, len) : feed_bytes(p, s, len);
}

/* Everything but the one-ordinary-byte case of sse_parser_feed. */
static __attribute__((noinline)) int feed_slow(sse_parser *p, const unsigned char *s, size_t len)
{
    int rc;
    if (p->err)
        return p->err;
    if (len - 1 < 8 && s && !p->at_start)
        rc = feed_small(p, s, len); /* a few bytes at a time: the short way */
    else
        rc = feed_any(p, s, len);
    if (rc && rc != SSE_ECANCELED)
        p->err = rc;
    return rc;
}

int sse_parser_feed(sse_parser *p, const void *bytes, size_t len)
{
    const unsigned char *s = bytes;
    /* One byte that is not a line end, with room in the line buffer: the case of input fed
     * byte by byte. Kept free of calls so that it compiles to a handful of instructions. */
    if (len == 1 && s && !p->err && !p->at_start) {
        unsigned char c = *s;
        size_t l = p->line.len;
        if (c != '\n' && c != '\r' && l < p->max_line && l + 2 <= p->line.cap) {
            p->line.p[l] = (char)c;
            p->line.len = l + 1;
            p->line_hi |= c & 0x80u;
            p->skip_lf = 0;
            return 0;
        }
    }
    return feed_slow(p, s, len);
}
