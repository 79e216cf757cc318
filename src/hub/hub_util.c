/*
 * hub_util.c: the pure helpers of the hub (see hub_util.h): validation of publish fields per the
 * Mercure drafts, the reserved-namespace rule, the publish-form decoder, UUIDs, escaping,
 * cookies and origins.
 */
#include "hub/hub_util.h"

#include "common/alloc.h"

#include <errno.h>
#include <sse/form.h>
#include <sse/format.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

int sse__hub_utf8_ok(const char *s, size_t n)
{
    return sse_utf8_valid_prefix(s, n) == n;
}

/* Unicode general category Cf (format characters: invisible, they allow identifier spoofing),
   as of Unicode 15.1; draft-08 forbids them in topics, matchers, ids and types. */
static const struct {
    uint32_t lo, hi;
} format_chars[] = {
    {0x00AD, 0x00AD},   {0x0600, 0x0605},   {0x061C, 0x061C},   {0x06DD, 0x06DD},
    {0x070F, 0x070F},   {0x0890, 0x0891},   {0x08E2, 0x08E2},   {0x180E, 0x180E},
    {0x200B, 0x200F},   {0x202A, 0x202E},   {0x2060, 0x2064},   {0x2066, 0x206F},
    {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0x110BD, 0x110BD}, {0x110CD, 0x110CD},
    {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
    {0xE0020, 0xE007F},
};

static int is_format_char(uint32_t cp)
{
    for (size_t i = 0; i < sizeof(format_chars) / sizeof(format_chars[0]); i++)
        if (cp >= format_chars[i].lo && cp <= format_chars[i].hi)
            return 1;
    return 0;
}

int sse__hub_text_ok(const char *s, size_t n)
{
    if (sse_utf8_valid_prefix(s, n) != n)
        return 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        /* C0 and DEL; C1 (U+0080..U+009F) is C2 80..C2 9F, and C2 is always a lead byte here */
        if (p[i] < 0x20 || p[i] == 0x7F || (p[i] == 0xC2 && p[i + 1] <= 0x9F))
            return 0;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        /* valid UTF-8 (checked above): decode the code point for the Cf check */
        size_t len = p[i] >= 0xF0 ? 4 : p[i] >= 0xE0 ? 3 : 2;
        uint32_t cp = p[i] & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
        for (size_t k = 1; k < len; k++)
            cp = (cp << 6) | (p[i + k] & 0x3F);
        if (is_format_char(cp))
            return 0;
        i += len;
    }
    return 1;
}

static int has_crlfnul(const char *s, size_t n)
{
    return memchr(s, '\r', n) || memchr(s, '\n', n) || memchr(s, '\0', n);
}

int sse__hub_id_ok(const char *s, size_t n)
{
    return n > 0 && n <= SSE__HUB_ID_MAX && s[0] != '#' && !has_crlfnul(s, n) &&
           sse__hub_utf8_ok(s, n);
}

int sse__hub_type_ok(const char *s, size_t n)
{
    return !has_crlfnul(s, n) && sse__hub_utf8_ok(s, n);
}

int sse__hub_retry_ok(const char *s, size_t n)
{
    if (n == 0 || n > 18)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* A path segment that means "." or ".." (with %2e spellings), as WHATWG URL reads them. */
static int dot_kind(const char *seg, size_t n)
{
    size_t dots = 0, i = 0;
    while (i < n) {
        if (seg[i] == '.') {
            i++;
        } else if (n - i >= 3 && seg[i] == '%' && seg[i + 1] == '2' &&
                   (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
            i += 3;
        } else {
            return 0;
        }
        dots++;
    }
    return dots == 1 || dots == 2 ? (int)dots : 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int sse__hub_topic_reserved(const char *t, size_t n)
{
    static const char base_dir[] = "/.well-known/"; /* the hub URL's directory */
    size_t i = 0, path_start, path_end;

    /* Scheme? */
    if (n && ((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z')) {
        size_t j = 1;
        while (j < n && (((t[j] | 0x20) >= 'a' && (t[j] | 0x20) <= 'z') ||
                         (t[j] >= '0' && t[j] <= '9') || t[j] == '+' || t[j] == '-' || t[j] == '.'))
            j++;
        if (j < n && t[j] == ':')
            i = j + 1;
    }
    int relative = 0;
    if (n - i >= 2 && t[i] == '/' && t[i + 1] == '/') {
        i += 2;
        while (i < n && t[i] != '/' && t[i] != '?' && t[i] != '#')
            i++;
    } else if (i == 0 && (n == 0 || t[0] != '/')) {
        relative = 1; /* a relative path: merged with the hub URL's directory */
    }
    path_start = i;
    path_end = i;
    while (path_end < n && t[path_end] != '?' && t[path_end] != '#')
        path_end++;

    /* Build the merged path, then remove dot segments into out (bounded by n + base). */
    char stackbuf[512];
    size_t cap = path_end - path_start + sizeof(base_dir) + 2;
    char *in = cap <= sizeof(stackbuf) ? stackbuf : sse__malloc(cap);
    if (!in)
        return SSE_ENOMEM;
    size_t len = 0;
    if (relative) {
        memcpy(in, base_dir, sizeof(base_dir) - 1);
        len = sizeof(base_dir) - 1;
    }
    /* Percent-encoded unreserved characters decoded first (RFC 3986 6.2.2.2), so that
       "/.well-known/%6Dercure" is the namespace too; other escapes stay as they are. */
    for (size_t k = path_start; k < path_end; k++) {
        int hi = k + 2 < path_end && t[k] == '%' ? hexval(t[k + 1]) : -1;
        int lo = hi >= 0 ? hexval(t[k + 2]) : -1;
        unsigned char c = lo >= 0 ? (unsigned char)(hi * 16 + lo) : 0;
        if (lo >= 0 && ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) {
            in[len++] = (char)c, k += 2;
        } else if (lo >= 0 &&
                   ((c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~')) {
            in[len++] = (char)c, k += 2;
        } else {
            in[len++] = t[k];
        }
    }

    /* Remove dot segments (RFC 3986 5.2.4) with a stack of segments, then compare. */
    int reserved = 0;
    if (len && in[0] == '/') {
        size_t nseg = 0, maxseg = len + 1, stack_st[128];
        size_t *st = maxseg * 2 <= 128 ? stack_st : sse__malloc(maxseg * 2 * sizeof(size_t));
        if (!st) {
            reserved = SSE_ENOMEM;
            goto done;
        }
        size_t p = 1;
        for (;;) {
            size_t e = p;
            while (e < len && in[e] != '/')
                e++;
            int last = e >= len;
            int dk = dot_kind(in + p, e - p);
            if (dk == 2 && nseg)
                nseg--;
            if (dk == 0) {
                st[2 * nseg] = p, st[2 * nseg + 1] = e - p, nseg++;
            } else if (last) {
                st[2 * nseg] = p, st[2 * nseg + 1] = 0, nseg++; /* trailing "/" */
            }
            if (last)
                break;
            p = e + 1;
        }
        /* Compare "/" seg "/" seg ... against the namespace without building the string. */
        static const char *const want[2] = {".well-known", "mercure"};
        reserved = nseg >= 2;
        for (size_t k = 0; k < 2 && reserved; k++)
            reserved =
                st[2 * k + 1] == strlen(want[k]) && !memcmp(in + st[2 * k], want[k], st[2 * k + 1]);
        if (st != stack_st)
            sse__free(st);
    }
done:
    if (in != stackbuf)
        sse__free(in);
    return reserved;
}

int sse__hub_uuid4(char out[46])
{
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t k = getrandom(r + got, sizeof(r) - got, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)k;
    }
    r[6] = (unsigned char)((r[6] & 0x0F) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3F) | 0x80);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "urn:uuid:", 9);
    char *p = out + 9;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[r[i] >> 4];
        *p++ = hex[r[i] & 15];
    }
    *p = '\0';
    return 0;
}

int sse__hub_json_str(sse_buf *b, const char *s, size_t n)
{
    /* the project's one JSON escaper (format.h), a piece at a time through a stack buffer: the
       buffer's cap is checked by what is appended, not by the escaper's worst case */
    enum { PIECE = 256 };
    char e[SSE_JSON_ESCAPE_ROOM(PIECE)];
    int rc = sse_buf_append_byte(b, '"');
    for (size_t i = 0; i < n && !rc; i += PIECE) {
        size_t k = n - i < PIECE ? n - i : PIECE;
        rc = sse_buf_append(b, e, sse_json_escape(e, s + i, k));
    }
    return rc ? rc : sse_buf_append_byte(b, '"');
}

int sse__hub_pct_encode(sse_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            rc = sse_buf_append_byte(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = sse_buf_append(b, e, 3);
        }
    }
    return rc;
}

int sse__hub_cookie_get(const char *h, const char *name, const char **val, size_t *len)
{
    size_t nl = strlen(name);
    const char *p = h;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t seg = end ? (size_t)(end - p) : strlen(p);
        if (seg > nl && !memcmp(p, name, nl) && p[nl] == '=') {
            const char *v = p + nl + 1;
            size_t vl = seg - nl - 1;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
                v++;
                vl -= 2;
            }
            *val = v;
            *len = vl;
            return 1;
        }
        p = end;
    }
    return 0;
}

int sse__hub_cookie_name_ok(const char *name)
{
    /* RFC 6265 cookie-name is an RFC 7230 token; 256 bytes is far beyond any real name */
    size_t n = strlen(name);
    if (!n || n > 256)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c))
            return 0;
    }
    return 1;
}

int sse__hub_origin_allowed(const char *list, const char *origin, const char *referer)
{
    const char *o = origin;
    size_t ol;
    if (o && *o && strcmp(o, "null") != 0) {
        ol = strlen(o);
    } else if (referer && *referer) {
        const char *sep = strstr(referer, "://");
        if (!sep)
            return 0;
        const char *host_end = strchr(sep + 3, '/');
        o = referer;
        ol = host_end ? (size_t)(host_end - referer) : strlen(referer);
    } else {
        return 0;
    }
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ' ' && *e != ',' && *e != '\t')
            e++;
        size_t n = (size_t)(e - p);
        if (n == 1 && *p == '*')
            return 1;
        while (n && p[n - 1] == '/')
            n--;
        if (n && n == ol && !strncasecmp(p, o, n))
            return 1;
        p = e;
    }
    return 0;
}

/* ---------------------------------------------------------------- publish form */

void sse__pub_form_free(struct sse__pub_form *f)
{
    for (size_t i = 0; i < f->n_topics; i++)
        sse__free(f->topics[i]);
    sse__free(f->topics);
    sse_buf_free(&f->data);
    sse__free(f->id);
    sse__free(f->type);
    memset(f, 0, sizeof(*f));
    f->retry = -1;
}

static char *dup_buf(sse_buf *b)
{
    return sse__strndup(b->len ? b->data : "", b->len);
}

int sse__pub_form_parse(struct sse__pub_form *f, const char *body, size_t len,
                        const struct sse__pub_limits *lim, const char **why)
{
    sse_buf name, value;
    int rc = 0;
    size_t max_topics = lim->max_topics ? lim->max_topics : 16;
    if (max_topics > SSE__PUB_MAX_TOPICS_HARD)
        max_topics = SSE__PUB_MAX_TOPICS_HARD;
    size_t max_topic = lim->max_topic_len ? lim->max_topic_len : 1024;
    size_t max_update = lim->max_update ? lim->max_update : (1u << 20);
    size_t id_len = 0, type_len = 0;

    memset(f, 0, sizeof(*f));
    f->retry = -1;
    sse_buf_init(&f->data, max_update + 1);
    sse_buf_init(&name, 256);
    sse_buf_init(&value, max_update + 1);
    const char *cur = body ? body : "", *end = cur + (body ? len : 0);
    for (;;) {
        int r = sse_form_next(&cur, end, &name, &value);
        if (r == 0)
            break;
        if (r == SSE_ELIMIT) {
            /* A name longer than any field we know is skipped; a value over the limit is 413. */
            rc = 413, *why = "field too large";
            goto out;
        }
        if (r == SSE_ENOMEM) {
            rc = SSE_ENOMEM;
            goto out;
        }
        if (r < 0) {
            rc = 400, *why = "malformed form encoding";
            goto out;
        }
        const char *n = sse_buf_cstr(&name);
        if (!strcmp(n, "topic")) {
            if (f->n_topics >= max_topics) {
                rc = 413, *why = "too many topics";
                goto out;
            }
            if (value.len > max_topic) {
                rc = 413, *why = "topic too long";
                goto out;
            }
            if (!value.len || !sse__hub_text_ok(value.data, value.len)) {
                rc = 400, *why = "invalid topic (empty, not UTF-8, control or format characters)";
                goto out;
            }
            if (lim->draft08 && value.len == 1 && value.data[0] == '*') {
                rc = 400, *why = "the topic \"*\" is reserved (it is the wildcard matcher)";
                goto out;
            }
            if (!f->topics) {
                f->topics = sse__calloc(max_topics, sizeof(char *));
                if (!f->topics) {
                    rc = SSE_ENOMEM;
                    goto out;
                }
            }
            if (!(f->topics[f->n_topics] = dup_buf(&value))) {
                rc = SSE_ENOMEM;
                goto out;
            }
            f->n_topics++;
        } else if (!strcmp(n, "data")) {
            sse_buf_reset(&f->data);
            if (value.len && sse_buf_append(&f->data, value.data, value.len)) {
                rc = SSE_ENOMEM;
                goto out;
            }
            f->has_data = 1;
        } else if (!strcmp(n, "private")) {
            f->is_private = 1; /* presence alone, whatever the value */
        } else if (!strcmp(n, "id")) {
            if (value.len > SSE__HUB_ID_MAX) { /* refused before anything is stored */
                rc = 400, *why = "id too long (more than 4096 bytes)";
                goto out;
            }
            if (!sse__hub_id_ok(value.len ? value.data : "", value.len)) {
                rc = 400, *why = "invalid id (empty, leading '#', CR, LF or NUL)";
                goto out;
            }
            if (lim->draft08 && !sse__hub_text_ok(value.data, value.len)) {
                rc = 400, *why = "invalid id (control or format characters)";
                goto out;
            }
            if (lim->draft08 && value.len == 8 && !memcmp(value.data, "earliest", 8)) {
                rc = 400, *why = "the id \"earliest\" is reserved";
                goto out;
            }
            sse__free(f->id);
            if (!(f->id = dup_buf(&value))) {
                rc = SSE_ENOMEM;
                goto out;
            }
            id_len = value.len;
        } else if (!strcmp(n, "type")) {
            if (!sse__hub_type_ok(value.len ? value.data : "", value.len)) {
                rc = 400, *why = "invalid type (CR, LF or NUL)";
                goto out;
            }
            if (lim->draft08 && value.len && !sse__hub_text_ok(value.data, value.len)) {
                rc = 400, *why = "invalid type (control or format characters)";
                goto out;
            }
            if (lim->draft08 && value.len == 7 && !memcmp(value.data, "mercure", 7)) {
                rc = 400, *why = "the type \"mercure\" is reserved for the hub's own events";
                goto out;
            }
            sse__free(f->type);
            if (!(f->type = dup_buf(&value))) {
                rc = SSE_ENOMEM;
                goto out;
            }
            type_len = value.len;
        } else if (!strcmp(n, "retry")) {
            if (!sse__hub_retry_ok(value.len ? value.data : "", value.len)) {
                rc = 400, *why = "invalid retry (digits only)";
                goto out;
            }
            long long v = 0;
            for (size_t i = 0; i < value.len; i++)
                v = v * 10 + (value.data[i] - '0');
            f->retry = v;
        }
        /* Unknown fields are ignored, as the reference hub does. */
    }
    if (!f->n_topics) {
        rc = 400, *why = "missing topic";
        goto out;
    }
    if (f->data.len + id_len + type_len > max_update) {
        rc = 413, *why = "update too large";
        goto out;
    }
    if (f->has_data && !sse__hub_utf8_ok(f->data.data, f->data.len)) {
        rc = 400, *why = "data is not valid UTF-8";
        goto out;
    }
    for (size_t i = 0; i < f->n_topics; i++) {
        int r = sse__hub_topic_reserved(f->topics[i], strlen(f->topics[i]));
        if (r < 0) {
            rc = r;
            goto out;
        }
        if (r) { /* draft-08: 400 whatever the token; draft-07 hubs kept their 403 */
            rc = lim->draft08 ? 400 : 403;
            *why = "topic in the reserved /.well-known/mercure namespace";
            goto out;
        }
    }
out:
    sse_buf_free(&name);
    sse_buf_free(&value);
    if (rc)
        sse__pub_form_free(f);
    return rc;
}
