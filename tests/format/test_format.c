/*
 * test_format.c: unit tests of the text/event-stream encoder and parser (src/format).
 *
 * Parser vectors are written as input -> log, where the log lists what the callbacks saw:
 * "type|data|id;" per event, "retry=N;" per accepted retry, "#text;" per comment, with LF, CR and
 * NUL shown as \n, \r, \0. Every vector is fed whole, split at every point into two chunks,
 * split at every pair of points (short vectors), and one byte at a time: all must log the same.
 */
#include "common/alloc.h"
#include "harness/check.h"
#include "harness/failalloc.h"

#include <sse/format.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- logging callbacks */

struct log {
    sse_buf b;
    int cancel_after; /* > 0: the Nth callback returns 1 */
    int calls;
    long long events;
};

static void log_esc(sse_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            sse_buf_append(b, "\\n", 2);
        else if (s[i] == '\r')
            sse_buf_append(b, "\\r", 2);
        else if (s[i] == '\0')
            sse_buf_append(b, "\\0", 2);
        else
            sse_buf_append_byte(b, s[i]);
    }
}

static int ret_for(struct log *l)
{
    l->calls++;
    return l->cancel_after > 0 && l->calls == l->cancel_after;
}

static int on_event(void *ud, const sse_parsed_event *ev)
{
    struct log *l = ud;
    l->events++;
    /* strings are NUL-terminated */
    if (ev->type[ev->type_len] || ev->data[ev->data_len] || ev->id[ev->id_len])
        sse_buf_append_str(&l->b, "<no NUL>");
    log_esc(&l->b, ev->type, ev->type_len);
    sse_buf_append_byte(&l->b, '|');
    log_esc(&l->b, ev->data, ev->data_len);
    sse_buf_append_byte(&l->b, '|');
    log_esc(&l->b, ev->id, ev->id_len);
    sse_buf_append_byte(&l->b, ';');
    return ret_for(l);
}

static int on_retry(void *ud, uint64_t ms)
{
    struct log *l = ud;
    sse_buf_printf(&l->b, "retry=%llu;", (unsigned long long)ms);
    return ret_for(l);
}

static int on_comment(void *ud, const char *text, size_t len)
{
    struct log *l = ud;
    sse_buf_append_byte(&l->b, '#');
    log_esc(&l->b, text, len);
    sse_buf_append_byte(&l->b, ';');
    return ret_for(l);
}

static const sse_parser_callbacks log_cb = {on_event, on_retry, on_comment};

/*
 * Parse in[0..n) fed in pieces ending at the given cut points (sorted, ncuts of them), append
 * the log to l and "!<errname>;" when a feed fails (feeding stops there). Returns 0 or an
 * allocation failure of the parser's creation.
 */
static int parse_cuts(struct log *l, const sse_parser_options *o, const char *in, size_t n,
                      const size_t *cuts, size_t ncuts)
{
    sse_parser *p;
    int rc = sse_parser_new(&p, o, &log_cb, l);
    if (rc)
        return rc;
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        rc = sse_parser_feed(p, in + at, to - at);
        at = to;
        if (rc) {
            sse_buf_printf(&l->b, "!%s;", sse_errname(rc));
            break;
        }
    }
    sse_parser_end(p);
    sse_parser_free(p);
    return 0;
}

/* Parse with the given cuts and compare with want; prints the case on a mismatch. */
static int run_cuts(struct log *l, const sse_parser_options *o, const char *in, size_t n,
                    const size_t *cuts, size_t ncuts, const char *want, int line)
{
    l->b.len = 0;
    parse_cuts(l, o, in, n, cuts, ncuts);
    if (l->b.len == strlen(want) && memcmp(l->b.data ? l->b.data : "", want, l->b.len) == 0)
        return 0;
    fprintf(stderr, "  FAIL line %d, %zu cut(s) at %zu,%zu:\n    got:  %.*s\n    want: %s\n", line,
            ncuts, ncuts ? cuts[0] : 0, ncuts > 1 ? cuts[1] : 0, (int)l->b.len,
            l->b.data ? l->b.data : "", want);
    return 1;
}

/* Run one vector whole, at every split point, every pair (short vectors), and 1 byte a time. */
static int check_vector(const char *in, size_t n, const char *want, const sse_parser_options *o,
                        int line)
{
    struct log l = {0};
    size_t cuts[2] = {0, 0};
    int bad = 0;
    sse_buf_init(&l.b, 0);
    bad |= run_cuts(&l, o, in, n, cuts, 0, want, line);
    for (size_t i = 1; i < n && !bad; i++) {
        cuts[0] = i;
        bad |= run_cuts(&l, o, in, n, cuts, 1, want, line);
        for (size_t j = i + 1; n <= 48 && j < n && !bad; j++) {
            cuts[1] = j;
            bad |= run_cuts(&l, o, in, n, cuts, 2, want, line);
        }
    }
    if (!bad) {
        size_t *all = malloc((n ? n : 1) * sizeof(*all));
        for (size_t i = 0; all && i + 1 < n; i++)
            all[i] = i + 1;
        if (all)
            bad |= run_cuts(&l, o, in, n, all, n ? n - 1 : 0, want, line);
        free(all);
    }
    sse_buf_free(&l.b);
    return bad;
}

#define VEC(in, want) failures += check_vector(in, sizeof(in) - 1, want, NULL, __LINE__)
#define VECO(o, in, want) failures += check_vector(in, sizeof(in) - 1, want, o, __LINE__)

/* ------------------------------------------------------------- parser vectors */

static int test_parse_fields(void)
{
    int failures = 0;
    VEC("data: hello\n\n", "message|hello|;");
    VEC("data:hello\n\n", "message|hello|;");
    VEC("data:  hello\n\n", "message| hello|;"); /* only one space removed */
    VEC("data: a\ndata: b\n\n", "message|a\\nb|;");
    VEC("data\n\n", "message||;"); /* no colon: name = line, value "" */
    VEC("data:\n\n", "message||;");
    VEC("data: \n\n", "message||;");
    VEC("data:\ndata:\n\n", "message|\\n|;");
    VEC("data: a\ndata:\n\n", "message|a\\n|;"); /* only the final LF is removed */
    VEC("data:x:y: z\n\n", "message|x:y: z|;");
    VEC("data \n\n", "");                             /* field "data " is unknown */
    VEC("Data: x\n\n", "");                           /* names are case-sensitive */
    VEC("foo: bar\ndata: x\nbar\n\n", "message|x|;"); /* unknown fields ignored */
    VEC("\n\n\ndata: x\n\n", "message|x|;");
    VEC("data: a\0b\n\n", "message|a\\0b|;"); /* NUL in data is kept */
    return failures;
}

static int test_parse_event_type(void)
{
    int failures = 0;
    VEC("event: foo\ndata: x\n\n", "foo|x|;");
    VEC("event: foo\ndata: x\n\ndata: y\n\n", "foo|x|;message|y|;"); /* reset after dispatch */
    VEC("event: foo\n\ndata: y\n\n", "message|y|;"); /* empty data: no dispatch, type reset */
    VEC("event\ndata: x\n\n", "message|x|;");        /* empty type means message */
    VEC("event: a\nevent: b\ndata: x\n\n", "b|x|;");
    VEC("data: x\nevent: e\n\n", "e|x|;");
    VEC("event:  sp\ndata: x\n\n", " sp|x|;");
    return failures;
}

static int test_parse_id(void)
{
    int failures = 0;
    VEC("id: 1\ndata: x\n\ndata: y\n\n", "message|x|1;message|y|1;"); /* kept across events */
    VEC("id: 1\ndata: x\n\nid\ndata: y\n\n", "message|x|1;message|y|;");
    VEC("id: 1\ndata: x\n\nid:\ndata: y\n\n", "message|x|1;message|y|;");
    VEC("id: 1\ndata: x\n\nid: a\0b\ndata: y\n\n", "message|x|1;message|y|1;"); /* NUL: ignored */
    VEC("id: 5\n\ndata: x\n\n", "message|x|5;"); /* set even when nothing dispatches */
    VEC("data: x\nid: 7\n\n", "message|x|7;");
    VEC("id: \xF0\x9F\x98\x80\ndata: x\n\n", "message|x|\xF0\x9F\x98\x80;");
    VEC("id:  a b \ndata: x\n\n", "message|x| a b ;");
    return failures;
}

static int test_parse_retry(void)
{
    int failures = 0;
    VEC("retry: 1000\n", "retry=1000;");
    VEC("retry:0\n", "retry=0;");
    VEC("retry: 007\n", "retry=7;");
    VEC("retry: 18446744073709551615\n", "retry=18446744073709551615;");
    VEC("retry: 18446744073709551616\n", ""); /* overflows uint64: ignored */
    VEC("retry: 99999999999999999999999\n", "");
    VEC("retry: 10a\n", "");
    VEC("retry: -1\n", "");
    VEC("retry: 1.5\n", "");
    VEC("retry:\n", "");
    VEC("retry\n", "");
    VEC("retry:  5\n", "");       /* " 5" is not all digits */
    VEC("retry: \xD9\xA3\n", ""); /* ARABIC-INDIC DIGIT THREE: no */
    VEC("retry: 5\ndata: x\n\n", "retry=5;message|x|;");
    return failures;
}

static int test_parse_line_ends(void)
{
    int failures = 0;
    VEC("data: a\rdata: b\r\r", "message|a\\nb|;");
    VEC("data: a\r\ndata: b\r\n\r\n", "message|a\\nb|;");
    VEC("data: a\r\n\rdata: b\n\r\n", "message|a|;message|b|;");
    VEC("data: a\n\r", "message|a|;"); /* LF then CR: two line ends */
    VEC("data: a\r\n", "");            /* CRLF is one line end */
    VEC("data: a\r\r\n", "message|a|;");
    VEC("data: a\r\n\r\n\r\n", "message|a|;");
    VEC("data: a\n\ndata: b\r\rdata: c\r\n\r\n", "message|a|;message|b|;message|c|;");
    VEC("data: x\r\n\r\n\r\r\n\n", "message|x|;");
    return failures;
}

static int test_parse_comments(void)
{
    int failures = 0;
    VEC(": hi\ndata: x\n\n", "# hi;message|x|;");
    VEC(":\n", "#;");
    VEC("::x: y\n", "#:x: y;");
    VEC(": a\r: b\r\n", "# a;# b;");
    VEC(": ok\n\n", "# ok;"); /* a comment does not make an event */
    VEC(":\xFF\n", "#\xEF\xBF\xBD;");
    return failures;
}

static int test_parse_end_of_stream(void)
{
    int failures = 0;
    VEC("data: x\n", ""); /* incomplete event discarded */
    VEC("data: x", "");
    VEC("data: x\n\ndata: y\n", "message|x|;");
    VEC("data: x\r", "");
    return failures;
}

static int test_parse_bom(void)
{
    int failures = 0;
    VEC("\xEF\xBB\xBF"
        "data: x\n\n",
        "message|x|;");
    VEC("\xEF\xBB\xBF\xEF\xBB\xBF"
        "data: x\n\ndata: y\n\n",
        "message|y|;"); /* 2nd is a char */
    VEC("\xEF\xBB"
        "data: x\n\ndata: y\n\n",
        "message|y|;"); /* broken BOM: ff fd in the name */
    VEC("\xEF"
        "data: x\n\ndata: y\n\n",
        "message|y|;");
    VEC("\xEF\xBB\xBF", "");
    VEC("\xEF\xBB\xBF\n"
        "data: x\n\n",
        "message|x|;");
    VEC("\xEF\xBB\n"
        "data: x\n\n",
        "message|x|;"); /* held bytes are a line of their own */
    VEC("\xEF\xBB"
        ": c\n",
        "");
    VEC(":\xEF\xBB\n", "#\xEF\xBF\xBD;"); /* mid-stream: ordinary (bad) bytes */
    VEC("data: \xEF\xBB\xBF"
        "x\n\n",
        "message|\xEF\xBB\xBFx|;"); /* U+FEFF in a value stays */
    return failures;
}

/* The Encoding Standard's UTF-8 decoder: one U+FFFD per maximal subpart. */
/* The one UTF-8 validator (format.h), shared by the parser, the hub and the CLI. */
static int test_utf8_valid_prefix(void)
{
#define VP(lit) sse_utf8_valid_prefix(lit, sizeof(lit) - 1)
    CHECK_EQ_UINT(VP(""), 0);
    CHECK_EQ_UINT(VP("plain ascii, longer than eight bytes"), 36);
    CHECK_EQ_UINT(VP("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), 14);
    CHECK_EQ_UINT(VP("abc\xff"), 3);           /* never a lead byte */
    CHECK_EQ_UINT(VP("ab\xc0\xaf"), 2);        /* overlong */
    CHECK_EQ_UINT(VP("a\xed\xa0\x80"), 1);     /* surrogate */
    CHECK_EQ_UINT(VP("a\xf4\x90\x80\x80"), 1); /* above U+10FFFF */
    CHECK_EQ_UINT(VP("12345678\xe2\x82"), 8);  /* truncated at the end */
    CHECK_EQ_UINT(VP("\xc3\xa9\xc3"), 2);
#undef VP
    return 0;
}

/*
 * A reference for sse_utf8_valid_prefix written differently from it: each sequence is decoded to
 * a code point, which is then checked against RFC 3629 (shortest form, no surrogates,
 * <= U+10FFFF). Returns the length of the longest prefix of whole valid sequences.
 */
static size_t ref_utf8_valid_prefix(const unsigned char *s, size_t n)
{
    static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, cp = c & 0x07;
        } else {
            return i;
        }
        if (n - i <= need)
            return i;
        for (unsigned j = 1; j <= need; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + j] & 0x3Fu);
        }
        if (cp < min_cp[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += need + 1;
    }
    return n;
}

/*
 * The validator on a table of sequences (valid and invalid, with what is valid of each), each
 * placed after 0..40 ASCII bytes and followed by ASCII, so that every sequence starts at every
 * position of the 16- and 8-byte ASCII strides and of the word that finds the first high byte.
 */
static int test_utf8_table(void)
{
    static const struct {
        const char *seq;
        size_t len;
        size_t valid; /* length of its valid prefix */
    } table[] = {
#define V(lit) {lit, sizeof(lit) - 1, sizeof(lit) - 1}
#define X(lit, v)                                                                                  \
    {                                                                                              \
        lit, sizeof(lit) - 1, v                                                                    \
    }
        V("\x7f"),
        V("\xc2\x80"),         /* U+0080, smallest two-byte */
        V("\xdf\xbf"),         /* U+07FF */
        V("\xe0\xa0\x80"),     /* U+0800, smallest three-byte */
        V("\xed\x9f\xbf"),     /* U+D7FF, just below the surrogates */
        V("\xee\x80\x80"),     /* U+E000, just above */
        V("\xef\xbf\xbf"),     /* U+FFFF */
        V("\xef\xbb\xbf"),     /* U+FEFF (BOM) is valid */
        V("\xf0\x90\x80\x80"), /* U+10000, smallest four-byte */
        V("\xf4\x8f\xbf\xbf"), /* U+10FFFF, the last */
        V("\xf3\xbf\xbf\xbf"),
        V("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), /* mixed run without ASCII between */
        X("\x80", 0),                              /* continuation byte without lead */
        X("\xbf", 0),
        X("\xc0\x80", 0), /* overlong NUL */
        X("\xc1\xbf", 0), /* overlong U+007F */
        X("\xe0\x80\x80", 0),
        X("\xe0\x9f\xbf", 0), /* overlong U+07FF */
        X("\xf0\x80\x80\x80", 0),
        X("\xf0\x8f\xbf\xbf", 0),         /* overlong U+FFFF */
        X("\xed\xa0\x80", 0),             /* U+D800 */
        X("\xed\xbf\xbf", 0),             /* U+DFFF */
        X("\xed\xa0\x80\xed\xb0\x80", 0), /* a surrogate pair in CESU-8 */
        X("\xf4\x90\x80\x80", 0),         /* U+110000 */
        X("\xf5\x80\x80\x80", 0),
        X("\xf8\x88\x80\x80\x80", 0), /* five-byte form */
        X("\xfc\x84\x80\x80\x80\x80", 0),
        X("\xfe", 0),
        X("\xff", 0),
        X("\xc2", 0), /* truncated by ASCII */
        X("\xe2\x82", 0),
        X("\xf0\x9f\x98", 0),
        X("\xc2\xc2\x80", 0), /* lead followed by a lead */
        X("\xe2\x82\xc2\x80", 0),
        X("\xc3\xa9\x80", 2), /* valid, then a stray continuation */
        X("\xe2\x82\xac\xe2\x82", 3),
        X("\xf0\x9f\x98\x80\xed\xa0\x80", 4),
        X("\xdf\xbf\xc0\xaf", 2),
#undef V
#undef X
    };
    static const char ascii[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEF"; /* 42 */
    for (size_t t = 0; t < sizeof(table) / sizeof(table[0]); t++) {
        for (size_t pre = 0; pre <= 40; pre++) {
            for (size_t post = 0; post <= 17; post += 17) {
                char in[128];
                memcpy(in, ascii, pre);
                memcpy(in + pre, table[t].seq, table[t].len);
                memcpy(in + pre + table[t].len, ascii, post);
                size_t n = pre + table[t].len + post;
                size_t want = table[t].valid == table[t].len ? n : pre + table[t].valid;
                size_t got = sse_utf8_valid_prefix(in, n);
                if (got != want || ref_utf8_valid_prefix((const unsigned char *)in, n) != want)
                    fprintf(stderr, "  table row %zu after %zu + before %zu ASCII bytes\n", t, pre,
                            post);
                CHECK_EQ_UINT(got, want);
                CHECK_EQ_UINT(ref_utf8_valid_prefix((const unsigned char *)in, n), want);
                /* cut short anywhere: a valid part never reaches into the cut sequence */
                size_t cut = pre + table[t].len - 1;
                CHECK_EQ_UINT(sse_utf8_valid_prefix(in, cut),
                              ref_utf8_valid_prefix((const unsigned char *)in, cut));
            }
        }
    }
    return 0;
}

/*
 * The validator against the reference on every string of one, two and three bytes (2^24 + ...),
 * and on four-byte strings with every lead and second byte and the boundary values of the others;
 * each also after 13 ASCII bytes (so it is checked past the word strides too).
 */
static int test_utf8_exhaustive(void)
{
    unsigned char in[32];
    memset(in, 'a', 13);
    unsigned long mismatches = 0;
    for (int pre = 0; pre <= 13; pre += 13) {
        for (uint32_t v = 0; v < (1u << 24); v++) {
            unsigned char *s = in + pre;
            s[0] = (unsigned char)(v >> 16);
            s[1] = (unsigned char)(v >> 8);
            s[2] = (unsigned char)v;
            for (size_t len = 1; len <= 3; len++) {
                if (len < 3 && (v & ((1u << (8 * (3 - len))) - 1)) != 0)
                    continue; /* shorter strings: once each, not 2^16 times */
                size_t n = (size_t)pre + len;
                if (sse_utf8_valid_prefix((const char *)in, n) != ref_utf8_valid_prefix(in, n) &&
                    mismatches++ < 5)
                    fprintf(stderr, "  mismatch on %02x %02x %02x (len %zu, after %d)\n", s[0],
                            s[1], s[2], len, pre);
            }
        }
        static const unsigned char edges[] = {0x00, 0x7f, 0x80, 0x8f, 0x90,
                                              0x9f, 0xa0, 0xbf, 0xc0, 0xff};
        for (unsigned lead = 0x80; lead <= 0xff; lead++)
            for (unsigned b1 = 0; b1 <= 0xff; b1++)
                for (size_t e2 = 0; e2 < sizeof(edges); e2++)
                    for (size_t e3 = 0; e3 < sizeof(edges); e3++) {
                        unsigned char *s = in + pre;
                        s[0] = (unsigned char)lead, s[1] = (unsigned char)b1;
                        s[2] = edges[e2], s[3] = edges[e3];
                        size_t n = (size_t)pre + 4;
                        if (sse_utf8_valid_prefix((const char *)in, n) !=
                                ref_utf8_valid_prefix(in, n) &&
                            mismatches++ < 5)
                            fprintf(stderr, "  mismatch on %02x %02x %02x %02x\n", s[0], s[1], s[2],
                                    s[3]);
                    }
    }
    CHECK_EQ_UINT(mismatches, 0);
    return 0;
}

static int test_parse_utf8(void)
{
    int failures = 0;
#define R "\xEF\xBF\xBD"
    VEC("data: a\xFF"
        "b\n\n",
        "message|a" R "b|;");
    VEC("data: \xE2\x82\xAC\n\n", "message|\xE2\x82\xAC|;");    /* valid euro sign */
    VEC("data: \xE2\x82x\n\n", "message|" R "x|;");             /* truncated: one */
    VEC("data: \xE2\x82\n\n", "message|" R "|;");               /* truncated at EOL */
    VEC("data: \xF0\x80\x80\n\n", "message|" R R R "|;");       /* overlong: three */
    VEC("data: \xED\xA0\x80\n\n", "message|" R R R "|;");       /* surrogate */
    VEC("data: \xF4\x90\x80\x80\n\n", "message|" R R R R "|;"); /* > U+10FFFF */
    VEC("data: \xC0\xAF\n\n", "message|" R R "|;");
    VEC("data: \xC2\n\n", "message|" R "|;");
    VEC("data: \xF1\x80\x80\n\n", "message|" R "|;");
    VEC("data: \xF1\x80\x80\xF0\x9F\x98\x80\n\n", "message|" R "\xF0\x9F\x98\x80|;");
    VEC("data: \x80\x80\n\n", "message|" R R "|;");
    VEC("data: \xF8\x88\x80\x80\x80\n\n", "message|" R R R R R "|;");
    VEC("data: \xE0\x9F\x80\n\n", "message|" R R R "|;");
    VEC("data: \xE0\xA0\x80\n\n", "message|\xE0\xA0\x80|;");
    VEC("data: \xF4\x8F\xBF\xBF\n\n", "message|\xF4\x8F\xBF\xBF|;");
    VEC("data: \xE2\x82:x\n\n", "message|" R ":x|;"); /* ':' ends it too */
    VEC("event: \xFFz\ndata: x\n\n", R "z|x|;");
    VEC("id: \xC3\ndata: x\n\n", "message|x|" R ";");
    VEC("da\xFFta: x\n\n", "");
    VEC("data: abcdefghijklmnop\xCE\xBB"
        "qrstuvwxyz0123456789\xFF\n\n",
        "message|abcdefghijklmnop\xCE\xBBqrstuvwxyz0123456789" R "|;");
#undef R
    return failures;
}

static int test_parse_limits(void)
{
    int failures = 0;
    sse_parser_options o = SSE_PARSER_OPTIONS_INIT;
    o.max_line = 10;
    VECO(&o, "data: 1234\n\n", "message|1234|;"); /* 10 bytes: fine */
    VECO(&o, "data: 12345\n\n", "!SSE_ELIMIT;");
    VECO(&o, "data: 1\n\ndata: 12345\n\ndata: 2\n\n", "message|1|;!SSE_ELIMIT;");
    VECO(&o, ":123456789\r\n", "#123456789;");
    VECO(&o, "data: 12345", "!SSE_ELIMIT;"); /* also without a line end */
    o.max_line = 0;
    o.max_event = 8;
    VECO(&o, "data: 1234567\n\n", "message|1234567|;"); /* 7 + LF */
    VECO(&o, "data: 12345678\n\n", "!SSE_ELIMIT;");
    VECO(&o, "data: 1234\ndata: 123\n\n", "!SSE_ELIMIT;");
    VECO(&o, "event: abc\ndata: 1234\n\n", "abc|1234|;"); /* type counts: 3 + 5 */
    VECO(&o, "event: abcd\ndata: 1234\n\n", "!SSE_ELIMIT;");
    /* the event size counts decoded bytes: each lone 0xFF becomes 3 bytes of U+FFFD */
    VECO(&o, "data: \xFF\xFF\n\n", "message|\xEF\xBF\xBD\xEF\xBF\xBD|;"); /* 6 + LF */
    VECO(&o, "data: \xFF\xFF\xFF\n\n", "!SSE_ELIMIT;");                   /* 9 + LF */
    o.max_event = 0;
    o.max_line = 7; /* the line limit counts raw bytes */
    VECO(&o, "data:\xFF\xFF\n\n", "message|\xEF\xBF\xBD\xEF\xBF\xBD|;");
    VECO(&o, "data: \xFF\xFF\n\n", "!SSE_ELIMIT;");
    return failures;
}

/* ------------------------------------------------------------- parser API */

static int test_parser_limit_sticky_and_reset(void)
{
    struct log l = {0};
    sse_parser *p;
    sse_parser_options o = SSE_PARSER_OPTIONS_INIT;
    o.max_line = 8;
    sse_buf_init(&l.b, 0);
    CHECK_EQ_INT(sse_parser_new(&p, &o, &log_cb, &l), 0);
    CHECK_EQ_INT(sse_parser_feed(p, "data: 1234567890", 16), SSE_ELIMIT);
    CHECK_EQ_INT(sse_parser_feed(p, "\n\n", 2), SSE_ELIMIT); /* unusable until reset */
    sse_parser_reset(p);
    CHECK_EQ_INT(sse_parser_feed(p, "data: ok\n\n", 10), 0);
    CHECK_EQ_MEM(l.b.data, l.b.len, "message|ok|;", 12);
    sse_parser_free(p);
    sse_buf_free(&l.b);
    return 0;
}

static int test_parser_last_event_id(void)
{
    struct log l = {0};
    sse_parser *p;
    size_t n = 99;
    sse_buf_init(&l.b, 0);
    CHECK_EQ_INT(sse_parser_new(&p, NULL, &log_cb, &l), 0);
    CHECK_EQ_STR(sse_parser_last_event_id(p, &n), "");
    CHECK_EQ_UINT(n, 0);
    CHECK_EQ_INT(sse_parser_set_last_event_id(p, "a\nb", 3), SSE_EINVAL);
    CHECK_EQ_INT(sse_parser_set_last_event_id(p, "a\0b", 3), SSE_EINVAL);
    CHECK_EQ_INT(sse_parser_set_last_event_id(p, "\xFF", 1), SSE_EINVAL);
    CHECK_EQ_INT(sse_parser_set_last_event_id(p, "start", 5), 0);
    CHECK_EQ_STR(sse_parser_last_event_id(p, &n), "start");
    CHECK_EQ_INT(sse_parser_feed(p, "data: a\n\n", 9), 0);
    /* the id field is applied at dispatch only */
    CHECK_EQ_INT(sse_parser_feed(p, "id: 42\n", 7), 0);
    CHECK_EQ_STR(sse_parser_last_event_id(p, NULL), "start");
    CHECK_EQ_INT(sse_parser_feed(p, "\n", 1), 0);
    CHECK_EQ_STR(sse_parser_last_event_id(p, &n), "42");
    CHECK_EQ_UINT(n, 2);
    /* an id without a blank line before the end of the stream is lost */
    CHECK_EQ_INT(sse_parser_feed(p, "id: 43\ndata: x\n", 15), 0);
    sse_parser_end(p);
    CHECK_EQ_STR(sse_parser_last_event_id(p, NULL), "42");
    /* a new stream: BOM expected again, last id kept and used */
    CHECK_EQ_INT(sse_parser_feed(p,
                                 "\xEF\xBB\xBF"
                                 "data: b\n\n",
                                 12),
                 0);
    sse_parser_reset(p);
    CHECK_EQ_INT(sse_parser_feed(p, "data: c\n\n", 9), 0);
    CHECK_EQ_MEM(l.b.data, l.b.len, "message|a|start;message|b|42;message|c|42;", 42);
    sse_parser_free(p);
    sse_buf_free(&l.b);
    return 0;
}

static int test_parser_cancel(void)
{
    struct log l = {0};
    sse_parser *p;
    sse_buf_init(&l.b, 0);
    l.cancel_after = 1;
    CHECK_EQ_INT(sse_parser_new(&p, NULL, &log_cb, &l), 0);
    CHECK_EQ_INT(sse_parser_feed(p, "data: 1\n\ndata: 2\n\n", 18), SSE_ECANCELED);
    CHECK_EQ_INT(sse_parser_feed(p, "data: 3\n\n", 9), 0); /* the rest of that chunk is gone */
    CHECK_EQ_MEM(l.b.data, l.b.len, "message|1|;message|3|;", 22);
    sse_parser_free(p);
    sse_buf_free(&l.b);
    return 0;
}

static int test_parser_args(void)
{
    sse_parser *p = NULL;
    sse_parser_options o = SSE_PARSER_OPTIONS_INIT;
    o.version = 99;
    CHECK_EQ_INT(sse_parser_new(&p, &o, NULL, NULL), SSE_EINVAL);
    CHECK(p == NULL);
    CHECK_EQ_INT(sse_parser_new(NULL, NULL, NULL, NULL), SSE_EINVAL);
    CHECK_EQ_INT(sse_parser_new(&p, NULL, NULL, NULL), 0); /* no callbacks: still parses */
    CHECK_EQ_INT(sse_parser_feed(p, "data: x\n\n: c\nretry: 1\n", 23), 0);
    CHECK_EQ_INT(sse_parser_feed(p, NULL, 0), 0);
    CHECK_EQ_INT(sse_parser_feed(p, NULL, 1), SSE_EINVAL);
    sse_parser_free(p);
    sse_parser_free(NULL);
    return 0;
}

/* ------------------------------------------------------------- encoder */

static int encode_ok(sse_buf *b, const sse_event *ev, const char *want)
{
    b->len = 0;
    CHECK_EQ_INT(sse_encode_event(b, ev), 0);
    CHECK_EQ_MEM(b->data, b->len, want, strlen(want));
    return 0;
}

static int test_encode_event(void)
{
    sse_buf b;
    sse_buf_init(&b, 0);
    sse_event ev = SSE_EVENT_INIT;
    CHECK(!encode_ok(&b, &ev, "data:\n\n"));
    ev.data = "hello";
    ev.data_len = 5;
    CHECK(!encode_ok(&b, &ev, "data: hello\n\n"));
    ev.data = "a\nb\rc\r\nd";
    ev.data_len = 8;
    CHECK(!encode_ok(&b, &ev, "data: a\ndata: b\ndata: c\ndata: d\n\n"));
    ev.data = "\n\n";
    ev.data_len = 2;
    CHECK(!encode_ok(&b, &ev, "data:\ndata:\ndata:\n\n"));
    ev.data = "x\r";
    ev.data_len = 2;
    CHECK(!encode_ok(&b, &ev, "data: x\ndata:\n\n"));
    ev.data = "";
    ev.data_len = 0;
    CHECK(!encode_ok(&b, &ev, "data:\n\n"));
    ev.data = "d";
    ev.data_len = 1;
    ev.type = "update";
    ev.type_len = 6;
    ev.id = "7";
    ev.id_len = 1;
    ev.retry = 1500;
    ev.comment = "c1\nc2";
    ev.comment_len = 5;
    CHECK(!encode_ok(&b, &ev, ":c1\n:c2\nid: 7\nevent: update\nretry: 1500\ndata: d\n\n"));
    ev.comment = NULL;
    ev.comment_len = 0;
    ev.id_len = 0; /* empty id resets the receiver's last id */
    ev.retry = 0;
    CHECK(!encode_ok(&b, &ev, "id:\nevent: update\nretry: 0\ndata: d\n\n"));
    sse_buf_free(&b);
    return 0;
}

static int test_encode_refuses(void)
{
    sse_buf b;
    sse_buf_init(&b, 0);
    CHECK_EQ_INT(sse_buf_append(&b, "keep", 4), 0);
    const char *bad[] = {"a\nb", "a\rb", "a\0b"};
    for (int i = 0; i < 3; i++) {
        sse_event ev = SSE_EVENT_INIT;
        ev.data = "x";
        ev.data_len = 1;
        ev.id = bad[i];
        ev.id_len = 3;
        CHECK_EQ_INT(sse_encode_event(&b, &ev), SSE_EINVAL);
        CHECK_EQ_MEM(b.data, b.len, "keep", 4);
        ev.id = NULL;
        ev.id_len = 0;
        ev.type = bad[i];
        ev.type_len = 3;
        CHECK_EQ_INT(sse_encode_event(&b, &ev), SSE_EINVAL);
        CHECK_EQ_MEM(b.data, b.len, "keep", 4);
    }
    sse_buf_free(&b);
    /* the buffer's cap: nothing written */
    sse_buf_init(&b, 16);
    CHECK_EQ_INT(sse_buf_append(&b, "keep", 4), 0);
    sse_event ev = SSE_EVENT_INIT;
    ev.data = "0123456789";
    ev.data_len = 10;
    CHECK_EQ_INT(sse_encode_event(&b, &ev), SSE_ELIMIT);
    CHECK_EQ_MEM(b.data, b.len, "keep", 4);
    CHECK_EQ_INT(sse_encode_comment(&b, "0123456789abc", 13), SSE_ELIMIT);
    CHECK_EQ_INT(sse_encode_retry(&b, 1234567890123ull), SSE_ELIMIT);
    CHECK_EQ_MEM(b.data, b.len, "keep", 4);
    ev.data_len = 5; /* "data: 01234\n\n" = 13 bytes: 17 > 16 */
    CHECK_EQ_INT(sse_encode_event(&b, &ev), SSE_ELIMIT);
    ev.data_len = 4; /* 12 + 4 = 16 fits exactly */
    CHECK_EQ_INT(sse_encode_event(&b, &ev), 0);
    CHECK_EQ_MEM(b.data, b.len, "keepdata: 0123\n\n", 16);
    sse_buf_free(&b);
    return 0;
}

static int test_encode_comment_retry(void)
{
    sse_buf b;
    sse_buf_init(&b, 0);
    CHECK_EQ_INT(sse_encode_comment(&b, "", 0), 0);
    CHECK_EQ_INT(sse_encode_comment(&b, "ping", 4), 0);
    CHECK_EQ_INT(sse_encode_comment(&b, "a\r\nb\n", 5), 0);
    CHECK_EQ_INT(sse_encode_retry(&b, 0), 0);
    CHECK_EQ_INT(sse_encode_retry(&b, 18446744073709551615ull), 0);
    const char *want = ":\n:ping\n:a\n:b\n:\nretry: 0\n\nretry: 18446744073709551615\n\n";
    CHECK_EQ_MEM(b.data, b.len, want, strlen(want));
    sse_buf_free(&b);
    return 0;
}

/* ------------------------------------------------------------- round trip */

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Append a random valid UTF-8 string; lines=1 allows CR, LF, CRLF; nul=1 allows NUL. */
static void rand_text(sse_buf *b, size_t max, int lines, int nul)
{
    static const char *pieces[] = {"a",
                                   " ",
                                   ":",
                                   "data",
                                   "\xC3\xA9",
                                   "\xE2\x82\xAC",
                                   "\xF0\x9F\x98\x80",
                                   "\xEF\xBB\xBF",
                                   "\xE2\x80\xA8",
                                   "z9",
                                   "retry",
                                   "\t",
                                   "id",
                                   "event",
                                   "{\"k\":1}"};
    size_t n = rnd() % (max + 1);
    for (size_t i = 0; i < n; i++) {
        uint32_t r = rnd() % 24;
        if (lines && r == 0)
            sse_buf_append_byte(b, '\n');
        else if (lines && r == 1)
            sse_buf_append_byte(b, '\r');
        else if (lines && r == 2)
            sse_buf_append(b, "\r\n", 2);
        else if (nul && r == 3)
            sse_buf_append_byte(b, '\0');
        else
            sse_buf_append_str(b, pieces[r % 15]);
    }
}

/* Normalise line ends to LF, the way the parser reports multi-line data. */
static void to_lf(sse_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            sse_buf_append_byte(out, '\n');
            if (i + 1 < n && s[i + 1] == '\n')
                i++;
        } else {
            sse_buf_append_byte(out, s[i]);
        }
    }
}

static int test_round_trip(void)
{
    const unsigned seed = 20261121;
    printf("round trip seed %u\n", seed);
    rng_state = seed;
    sse_buf wire, want, text[4];
    struct log l = {0};
    sse_buf_init(&wire, 0);
    sse_buf_init(&want, 0);
    sse_buf_init(&l.b, 0);
    for (int i = 0; i < 4; i++)
        sse_buf_init(&text[i], 0);
    sse_buf last_id;
    sse_buf_init(&last_id, 0);
    for (int iter = 0; iter < 300; iter++) {
        wire.len = want.len = l.b.len = last_id.len = 0;
        int nev = 1 + (int)(rnd() % 12);
        for (int e = 0; e < nev; e++) {
            sse_event ev = SSE_EVENT_INIT;
            for (int i = 0; i < 4; i++)
                text[i].len = 0;
            rand_text(&text[0], 40, 1, 1); /* data */
            rand_text(&text[1], 6, 0, 0);  /* type */
            rand_text(&text[2], 6, 0, 0);  /* id */
            rand_text(&text[3], 10, 1, 1); /* comment */
            if (rnd() % 8) {
                ev.data = text[0].data ? text[0].data : "";
                ev.data_len = text[0].len;
            }
            if (rnd() % 2) {
                ev.type = text[1].data ? text[1].data : "";
                ev.type_len = text[1].len;
            }
            if (rnd() % 2) {
                ev.id = text[2].data ? text[2].data : "";
                ev.id_len = text[2].len;
                last_id.len = 0;
                sse_buf_append(&last_id, ev.id, ev.id_len);
            }
            if (rnd() % 4 == 0)
                ev.retry = (long long)rnd();
            if (rnd() % 4 == 0) {
                ev.comment = text[3].data ? text[3].data : "";
                ev.comment_len = text[3].len;
            }
            CHECK_EQ_INT(sse_encode_event(&wire, &ev), 0);
            /* what the parser must report */
            if (ev.comment) {
                sse_buf lf;
                sse_buf_init(&lf, 0);
                to_lf(&lf, ev.comment, ev.comment_len);
                sse_buf_cstr(&lf); /* never NULL below */
                size_t a = 0;
                for (size_t k = 0; k <= lf.len; k++) {
                    if (k == lf.len || lf.data[k] == '\n') {
                        sse_buf_append_byte(&want, '#');
                        log_esc(&want, lf.data + a, k - a);
                        sse_buf_append_byte(&want, ';');
                        a = k + 1;
                    }
                }
                sse_buf_free(&lf);
            }
            if (ev.retry >= 0)
                sse_buf_printf(&want, "retry=%lld;", ev.retry);
            if (ev.type && ev.type_len)
                log_esc(&want, ev.type, ev.type_len);
            else
                sse_buf_append_str(&want, "message");
            sse_buf_append_byte(&want, '|');
            sse_buf lf;
            sse_buf_init(&lf, 0);
            if (ev.data)
                to_lf(&lf, ev.data, ev.data_len);
            log_esc(&want, lf.data, lf.len);
            sse_buf_free(&lf);
            sse_buf_append_byte(&want, '|');
            log_esc(&want, last_id.data, last_id.len);
            sse_buf_append_byte(&want, ';');
        }
        /* parse with random chunk sizes (1..64 bytes, or all at once) */
        sse_parser *p;
        CHECK_EQ_INT(sse_parser_new(&p, NULL, &log_cb, &l), 0);
        size_t at = 0;
        while (at < wire.len) {
            size_t k = iter % 3 == 0 ? wire.len : 1 + rnd() % 64;
            if (k > wire.len - at)
                k = wire.len - at;
            CHECK_EQ_INT(sse_parser_feed(p, wire.data + at, k), 0);
            at += k;
        }
        sse_parser_free(p);
        if (l.b.len != want.len || memcmp(l.b.data, want.data, want.len)) {
            fprintf(stderr, "  round trip iteration %d (seed %u) differs\n", iter, seed);
            CHECK_EQ_MEM(l.b.data, l.b.len, want.data, want.len);
        }
    }
    for (int i = 0; i < 4; i++)
        sse_buf_free(&text[i]);
    sse_buf_free(&wire);
    sse_buf_free(&want);
    sse_buf_free(&l.b);
    sse_buf_free(&last_id);
    return 0;
}

/* ------------------------------------------------------------- failing allocations */

static int parse_with_failures(long n, int *hit)
{
    static const char in[] = "\xEF\xBB\xBFid: 1\nevent: e\xFF\n: c\xFF\ndata: a\ndata: \xC3\n\n"
                             "data: partial line across chunks\n\n";
    struct log l = {0};
    sse_parser *p = NULL;
    sse_buf_init(&l.b, 0);
    sse_buf_reserve(&l.b, 4096); /* the log itself must not take the failure */
    failalloc_arm(n);
    int rc = sse_parser_new(&p, NULL, &log_cb, &l);
    for (size_t i = 0; rc == 0 && i < sizeof(in) - 1; i += 7) {
        size_t k = sizeof(in) - 1 - i < 7 ? sizeof(in) - 1 - i : 7;
        rc = sse_parser_feed(p, in + i, k);
    }
    if (rc == 0)
        rc = sse_parser_set_last_event_id(p, "abc", 3);
    *hit = failalloc_was_hit();
    failalloc_arm(0);
    sse_parser_free(p);
    sse_buf_free(&l.b);
    if (*hit)
        return rc == SSE_ENOMEM ? 0 : 1;
    return rc;
}

static int test_failalloc_parser(void)
{
    int hit = 1;
    long n;
    for (n = 1; hit && n < 200; n++)
        CHECK_EQ_INT(parse_with_failures(n, &hit), 0);
    CHECK(!hit);
    CHECK(n > 3); /* several allocation points were exercised */
    return 0;
}

static int test_failalloc_encoder(void)
{
    int hit = 1;
    long n;
    for (n = 1; hit && n < 50; n++) {
        sse_buf b;
        sse_buf_init(&b, 0);
        sse_event ev = SSE_EVENT_INIT;
        ev.data = "x\ny";
        ev.data_len = 3;
        failalloc_arm(n);
        int rc = sse_encode_event(&b, &ev);
        hit = failalloc_was_hit();
        failalloc_arm(0);
        if (hit) {
            CHECK_EQ_INT(rc, SSE_ENOMEM);
            CHECK_EQ_UINT(b.len, 0);
        } else {
            CHECK_EQ_INT(rc, 0);
        }
        sse_buf_free(&b);
    }
    CHECK(!hit);
    return 0;
}

/* ------------------------------------------------------------- hostile input */

/* An allocator that knows how many bytes are live and the peak. */
static size_t live_bytes, peak_bytes;
static void *count_malloc(size_t n)
{
    size_t *p = malloc(n + 16);
    if (!p)
        return NULL;
    p[0] = n;
    live_bytes += n;
    if (live_bytes > peak_bytes)
        peak_bytes = live_bytes;
    return (char *)p + 16;
}
static void count_free(void *q)
{
    if (!q)
        return;
    size_t *p = (size_t *)(void *)((char *)q - 16);
    live_bytes -= p[0];
    free(p);
}
static void *count_realloc(void *q, size_t n)
{
    void *r = count_malloc(n);
    if (!r)
        return NULL;
    if (q) {
        size_t old = ((size_t *)(void *)((char *)q - 16))[0];
        memcpy(r, q, old < n ? old : n);
        count_free(q);
    }
    return r;
}

static int test_huge_line_bounded(void)
{
    static const struct sse__allocator counting = {count_malloc, count_realloc, count_free};
    size_t piece = 64 * 1024, total = 100 * 1024 * 1024;
    char *chunk = malloc(piece);
    CHECK(chunk != NULL);
    memset(chunk, 'x', piece);
    memcpy(chunk, "data: ", 6);
    live_bytes = peak_bytes = 0;
    sse__set_allocator(&counting);
    sse_parser *p;
    int rc = sse_parser_new(&p, NULL, NULL, NULL);
    size_t fed = 0, failed_at = 0;
    while (rc == 0 && fed < total) {
        rc = sse_parser_feed(p, chunk, piece);
        fed += piece;
        memset(chunk, 'x', 6);
        if (rc)
            failed_at = fed;
    }
    /* keep feeding: it stays failed and allocates nothing more */
    for (int i = 0; i < 100 && rc == SSE_ELIMIT; i++)
        rc = sse_parser_feed(p, chunk, piece);
    sse_parser_free(p);
    sse__set_allocator(NULL);
    free(chunk);
    CHECK_EQ_INT(rc, SSE_ELIMIT);
    CHECK(failed_at > 0 && failed_at <= (1u << 20) + piece); /* at the 1 MiB default */
    CHECK(peak_bytes <= 2u * (1u << 20) + 4096);
    CHECK_EQ_UINT(live_bytes, 0);
    printf("100 MB line: SSE_ELIMIT after %zu bytes, peak parser memory %zu bytes\n", failed_at,
           peak_bytes);
    return 0;
}

static int count_only(void *ud, const sse_parsed_event *ev)
{
    (void)ev;
    ((struct log *)ud)->events++;
    return 0;
}

/* After a big event, an idle parser gives the memory back (long-lived client connections). */
static int test_idle_memory_returned(void)
{
    static const struct sse__allocator counting = {count_malloc, count_realloc, count_free};
    size_t n = 200 * 1024;
    char *in = malloc(n);
    CHECK(in != NULL);
    for (size_t i = 0; i < n; i += 100) /* "data: xxx...\n" lines of 100 bytes */
        memcpy(in + i, "data: ", 6), memset(in + i + 6, 'x', 93), in[i + 99] = '\n';
    live_bytes = peak_bytes = 0;
    sse__set_allocator(&counting);
    struct log l = {0};
    sse_parser_callbacks cb = {count_only, NULL, NULL};
    sse_parser *p;
    int rc = sse_parser_new(&p, NULL, &cb, &l);
    size_t base = live_bytes;
    if (rc == 0)
        rc = sse_parser_feed(p, "id: 1\nevent: big\n", 18);
    for (size_t i = 0; rc == 0 && i < n; i += 4096) /* pieces that split lines */
        rc = sse_parser_feed(p, in + i, n - i < 4096 ? n - i : 4096);
    if (rc == 0)
        rc = sse_parser_feed(p, "\n", 1);
    size_t peak = peak_bytes, idle = live_bytes - base;
    sse_parser_free(p);
    sse__set_allocator(NULL);
    free(in);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(l.events, 1);
    CHECK(peak >= n);        /* the event really was buffered */
    CHECK(idle <= 4 * 4096); /* and given back once dispatched */
    CHECK_EQ_UINT(live_bytes, 0);
    return 0;
}

static int count_event(void *ud, const sse_parsed_event *ev)
{
    struct log *l = ud;
    l->events++;
    return ev->data_len == 1 && ev->data[0] == 'x' ? 0 : 1;
}

static int test_million_events_one_chunk(void)
{
    const size_t n = 1000000;
    static const char one[] = "data:x\n\n";
    char *in = malloc(n * 8);
    CHECK(in != NULL);
    for (size_t i = 0; i < n; i++)
        memcpy(in + i * 8, one, 8);
    struct log l = {0};
    sse_parser_callbacks cb = {count_event, NULL, NULL};
    sse_parser *p;
    CHECK_EQ_INT(sse_parser_new(&p, NULL, &cb, &l), 0);
    int rc = sse_parser_feed(p, in, n * 8);
    sse_parser_free(p);
    free(in);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(l.events, (long long)n);
    return 0;
}

static int test_random_garbage(void)
{
    /* random bytes biased to the interesting ones: no crash, and every dispatched string is
     * valid UTF-8 without CR (the vectors check the exact output; this checks robustness) */
    static const char alphabet[] = "data:id event retry\n\r\0\xFF\xEF\xBB\xBF\xC3\xE2\x82 :x";
    rng_state = 77;
    char buf[512];
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = rnd() % sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = alphabet[rnd() % (sizeof(alphabet) - 1)];
        struct log l = {0};
        sse_buf_init(&l.b, 0);
        sse_parser *p;
        CHECK_EQ_INT(sse_parser_new(&p, NULL, &log_cb, &l), 0);
        for (size_t at = 0; at < n;) {
            size_t k = 1 + rnd() % 16;
            if (k > n - at)
                k = n - at;
            CHECK_EQ_INT(sse_parser_feed(p, buf + at, k), 0);
            at += k;
        }
        sse_parser_free(p);
        /* the log shows a CR as the two characters \r (the alphabet has no backslash) */
        sse_buf_append_byte(&l.b, '\0');
        CHECK(strstr(l.b.data, "\\r") == NULL);
        sse_buf_free(&l.b);
    }
    return 0;
}

/* A CRLF split across two chunks, the CR ending a chunk longer than 8 bytes (feed_bytes, not
 * feed_small): one line end, so one event "123456789\nb" (issue 9: dropping skip_lf there gave two
 * events and survived the vectors). */
static int test_crlf_split_after_long_chunk(void)
{
    static const char *const first[] = {"data: 123456789\r", ":0123456789\r\ndata: 123456789\r"};
    for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++) {
        struct log l = {0};
        sse_buf_init(&l.b, 0);
        sse_parser *p;
        CHECK_EQ_INT(sse_parser_new(&p, NULL, &log_cb, &l), 0);
        CHECK(strlen(first[i]) > 8);
        CHECK_EQ_INT(sse_parser_feed(p, first[i], strlen(first[i])), 0);
        CHECK_EQ_INT(sse_parser_feed(p, "\ndata: b\n\n", 11), 0);
        sse_parser_free(p);
        sse_buf_append_byte(&l.b, '\0');
        const char *want = i ? "#0123456789;message|123456789\\nb|;" : "message|123456789\\nb|;";
        CHECK_EQ_STR(l.b.data, want);
        CHECK_EQ_INT(l.events, 1);
        sse_buf_free(&l.b);
    }
    return 0;
}

/* The one JSON escaper: each byte class at every offset of the 16- and 8-byte steps, against a
   byte-at-a-time reference; bytes >= 0x80 and NUL handled; the room bound respected. */
static size_t json_ref(char *out, const unsigned char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            o += (size_t)sprintf(out + o, "\\%c", s[i]);
        else if (s[i] < 0x20 || s[i] == 0x7F)
            o += (size_t)sprintf(out + o, "\\u%04x", s[i]);
        else
            out[o++] = (char)s[i];
    }
    return o;
}

static int test_json_escape(void)
{
    char out[SSE_JSON_ESCAPE_ROOM(64) + 16], want[6 * 64 + 8];
    memset(out, 'Z', sizeof(out));
    CHECK_EQ_UINT(sse_json_escape(out, "", 0), 0);
    size_t n = sse_json_escape(out, "a\"b\\c\x01\x7f\xc3\xa9", 9);
    CHECK_EQ_UINT(n, 21);
    CHECK(memcmp(out, "a\\\"b\\\\c\\u0001\\u007f\xc3\xa9", 21) == 0);
    CHECK_EQ_UINT(sse_json_escape(out, "\0", 1), 6);
    CHECK(memcmp(out, "\\u0000", 6) == 0);
    static const unsigned char specials[] = {'"', '\\', 0, 0x1F, 0x7F, 0x80, 0xFF, 'x'};
    unsigned seed = 7;
    for (size_t len = 0; len <= 64; len++)
        for (size_t at = 0; at < len || (at == 0 && len == 0); at++)
            for (size_t c = 0; c < sizeof(specials); c++) {
                unsigned char in[64];
                for (size_t i = 0; i < len; i++) {
                    seed = seed * 1103515245u + 12345u;
                    in[i] = (unsigned char)(0x20 + (seed >> 16) % 0x5f); /* printable */
                    if (in[i] == '"' || in[i] == '\\')
                        in[i] = 'q';
                }
                if (len)
                    in[at] = specials[c];
                memset(out, 'Z', sizeof(out));
                size_t got = sse_json_escape(out, (const char *)in, len);
                size_t w = json_ref(want, in, len);
                CHECK_EQ_UINT(got, w);
                CHECK(memcmp(out, want, w) == 0);
                for (size_t i = SSE_JSON_ESCAPE_ROOM(len); i < sizeof(out); i++)
                    CHECK(out[i] == 'Z'); /* nothing written past the room */
            }
    return 0;
}

CHECK_MAIN(CHECK_TEST(test_parse_fields), CHECK_TEST(test_json_escape),
           CHECK_TEST(test_parse_event_type), CHECK_TEST(test_parse_id),
           CHECK_TEST(test_parse_retry), CHECK_TEST(test_parse_line_ends),
           CHECK_TEST(test_parse_comments), CHECK_TEST(test_parse_end_of_stream),
           CHECK_TEST(test_parse_bom), CHECK_TEST(test_parse_utf8),
           CHECK_TEST(test_utf8_valid_prefix), CHECK_TEST(test_utf8_table),
           CHECK_TEST(test_utf8_exhaustive), CHECK_TEST(test_parse_limits),
           CHECK_TEST(test_parser_limit_sticky_and_reset), CHECK_TEST(test_parser_last_event_id),
           CHECK_TEST(test_parser_cancel), CHECK_TEST(test_parser_args),
           CHECK_TEST(test_encode_event), CHECK_TEST(test_encode_refuses),
           CHECK_TEST(test_encode_comment_retry), CHECK_TEST(test_round_trip),
           CHECK_TEST(test_failalloc_parser), CHECK_TEST(test_failalloc_encoder),
           CHECK_TEST(test_huge_line_bounded), CHECK_TEST(test_crlf_split_after_long_chunk),
           CHECK_TEST(test_idle_memory_returned), CHECK_TEST(test_million_events_one_chunk),
           CHECK_TEST(test_random_garbage))
