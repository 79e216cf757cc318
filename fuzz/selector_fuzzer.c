/*
 * selector_fuzzer.c: libFuzzer target for topic selectors (src/hub/selector.c).
 *
 * Input: byte 0 picks the kind (AUTO, EXACT, TEMPLATE, URLPATTERN; bit 2: with a base URL); the
 * pattern runs up to the first '\n', the rest is the topic. Checks (any failure aborts):
 *  1. the match stays within the step budget (never slow, whatever the pattern);
 *  2. the same answer twice, and through the cache the same compiled selector;
 *  3. exact selectors agree with memcmp, "*" matches everything;
 *  4. oracles built independently from the pattern text: an RFC 6570 template must match its
 *     own expansion with every variable undefined (the literals alone) and with every variable
 *     set to "a"; a URL pattern without modifiers or groups must match its text with each
 *     ":name" replaced by "a" and each "*" by nothing.
 */
#include "hub/selector.h"

#include <sse/error.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ORACLE_CAP 8192

static void must(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "selector_fuzzer: %s\n", what);
        abort();
    }
}

/* Template expansion with every variable undefined (0) or set to "a" (1). -1 if not expandable
 * by this simple oracle (it then checks nothing). */
static long expand_template(const char *t, size_t len, int defined, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (o + 64 > ORACLE_CAP)
            return -1;
        if (t[i] != '{') {
            out[o++] = t[i];
            continue;
        }
        const char *end = memchr(t + i, '}', len - i);
        if (!end)
            return -1;
        const char *e = t + i + 1;
        size_t el = (size_t)(end - e);
        char op = el && strchr("+#./;?&", e[0]) ? e[0] : 0;
        if (op) {
            e++;
            el--;
        }
        if (defined) {
            const char *first = op == '.'   ? "."
                                : op == '/' ? "/"
                                : op == ';' ? ";"
                                : op == '?' ? "?"
                                : op == '&' ? "&"
                                : op == '#' ? "#"
                                            : "";
            const char *sep = op == '.'                  ? "."
                              : op == '/'                ? "/"
                              : op == ';'                ? ";"
                              : (op == '?' || op == '&') ? "&"
                                                         : ",";
            int named = op == ';' || op == '?' || op == '&';
            o += (size_t)snprintf(out + o, ORACLE_CAP - o, "%s", first);
            size_t p = 0;
            int k = 0;
            while (p <= el) {
                size_t q = p;
                while (q < el && e[q] != ',')
                    q++;
                size_t nl = q - p;
                const char *colon = memchr(e + p, ':', nl);
                if (colon)
                    nl = (size_t)(colon - (e + p));
                if (nl && e[p + nl - 1] == '*')
                    nl--;
                if (o + nl + 8 > ORACLE_CAP)
                    return -1;
                if (k++)
                    o += (size_t)snprintf(out + o, ORACLE_CAP - o, "%s", sep);
                if (named) {
                    memcpy(out + o, e + p, nl);
                    o += nl;
                    out[o++] = '=';
                }
                out[o++] = 'a';
                p = q + 1;
            }
        }
        i = (size_t)(end - t);
    }
    return (long)o;
}

/* URL pattern text with ":name" -> "a", "*" -> "", "\x" -> "x"; -1 if it has groups/modifiers. */
static long expand_urlpattern(const char *t, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (o + 2 > ORACLE_CAP || c == '{' || c == '}' || c == '(' || c == '?' || c == '+')
            return -1;
        if (c == '\\') {
            if (++i >= len)
                return -1;
            out[o++] = t[i];
        } else if (c == ':' && i + 1 < len &&
                   ((t[i + 1] >= 'a' && t[i + 1] <= 'z') || (t[i + 1] >= 'A' && t[i + 1] <= 'Z') ||
                    t[i + 1] == '_' || t[i + 1] == '$' || (unsigned char)t[i + 1] >= 0x80)) {
            i++;
            while (i + 1 < len &&
                   ((t[i + 1] >= 'a' && t[i + 1] <= 'z') || (t[i + 1] >= 'A' && t[i + 1] <= 'Z') ||
                    (t[i + 1] >= '0' && t[i + 1] <= '9') || t[i + 1] == '_' || t[i + 1] == '$' ||
                    (unsigned char)t[i + 1] >= 0x80))
                i++;
            out[o++] = 'a';
        } else if (c == '*') {
            if (i + 1 < len && t[i + 1] == '*')
                return -1;
        } else {
            out[o++] = c;
        }
    }
    return (long)o;
}

static void check_match(const struct sse__selector *s, const char *topic, size_t len, int want,
                        const char *what)
{
    size_t steps;
    int got = sse__selector_match_steps(s, topic, len, &steps);
    must(steps <= SSE__SELECTOR_MAX_STEPS + 1, "step budget exceeded");
    /* the budget makes a match answer 0; only insist when the budget was not the reason */
    if (steps <= SSE__SELECTOR_MAX_STEPS && got != want)
        must(0, what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char oracle[ORACLE_CAP];
    if (size < 1)
        return 0;
    int kind = data[0] & 3;
    const char *text = (const char *)data + 1;
    size_t rest = size - 1;
    const char *nl = memchr(text, '\n', rest);
    size_t plen = nl ? (size_t)(nl - text) : rest;
    const char *topic = nl ? nl + 1 : "";
    size_t tlen = nl ? rest - plen - 1 : 0;

    /* bit 2: resolve URL patterns against a hub URL (draft-08 relative patterns / topics) */
    const char *base = (data[0] & 4) ? "https://hub.example:8443/.well-known/mercure" : NULL;
    struct sse__selector *s = NULL;
    int rc = sse__selector_compile_base(&s, text, plen, kind, NULL, base);
    must(rc == 0 || rc == SSE_EINVAL || rc == SSE_ELIMIT || rc == SSE_ENOMEM, "odd error code");
    if (rc)
        return 0;

    size_t steps;
    int m1 = sse__selector_match_steps(s, topic, tlen, &steps);
    must(steps <= SSE__SELECTOR_MAX_STEPS + 1, "step budget exceeded");
    must(sse__selector_match(s, topic, tlen) == m1, "not deterministic");

    const char *ex;
    size_t exlen;
    if (sse__selector_is_wildcard(s))
        must(m1 == 1, "wildcard did not match");
    if (sse__selector_exact(s, &ex, &exlen)) {
        must(m1 == (exlen == tlen && (tlen == 0 || !memcmp(ex, topic, tlen))), "exact != memcmp");
        must(sse__selector_match(s, ex, exlen) == 1, "exact does not match its own text");
    }

    int k = sse__selector_kind(s);
    if (k == SSE__SEL_TEMPLATE) {
        for (int defined = 0; defined < 2; defined++) {
            long n = expand_template(text, plen, defined, oracle);
            if (n >= 0)
                check_match(s, oracle, (size_t)n, 1,
                            defined ? "template does not match its expansion (vars = \"a\")"
                                    : "template does not match its empty expansion");
        }
    } else if (k == SSE__SEL_URLPATTERN && !sse__selector_is_wildcard(s)) {
        long n = expand_urlpattern(text, plen, oracle);
        if (n >= 0)
            check_match(s, oracle, (size_t)n, 1, "URL pattern does not match its expansion");
    }

    /* the cache hands out the same compiled selector for the same (text, kind) */
    struct sse__selector_cache *c;
    if (sse__selector_cache_new(&c, 2, NULL) == 0 && sse__selector_cache_set_base(c, base) == 0) {
        struct sse__selector *a = NULL, *b = NULL;
        if (sse__selector_cache_get(c, text, plen, kind, &a) == 0 &&
            sse__selector_cache_get(c, text, plen, kind, &b) == 0) {
            must(a == b, "cache returned another selector");
            must(sse__selector_match(a, topic, tlen) == m1, "cached selector disagrees");
        }
        sse__selector_unref(a);
        sse__selector_unref(b);
        sse__selector_cache_free(c);
    }
    sse__selector_unref(s);
    return 0;
}
