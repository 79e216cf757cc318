/*
 * selector.c: compile and match Mercure topic selectors (the compilers of templates and URL
 * patterns are selector_template.c and selector_urlpattern.c; the LRU cache selector_cache.c).
 *
 * Exact selectors and "*" are a length + memcmp. URI templates (RFC 6570, every operator,
 * explode and prefix modifiers) and URL patterns (the WHATWG URL Pattern subset described in
 * selector.h) are compiled to a Thompson NFA over bytes: literal bytes, byte classes (what a
 * variable may expand to), and epsilon splits/jumps. Matching simulates the NFA on the topic with
 * a set of active states (Pike/Thompson style): no backtracking, so the cost is at most
 * O(len(topic) * nodes), and a hard step budget (SSE__SELECTOR_MAX_STEPS) ends any match that
 * would exceed it, answering "no match". Regexp groups of URL patterns are refused at compile
 * time, so no user-supplied regular expression is ever executed.
 *
 * Matching is lenient where exactness is impossible without the variable values: the NFA accepts
 * every expansion the template can produce, and possibly a few strings no expansion produces
 * (e.g. several exploded named pairs in any order), but a variable never crosses a character it
 * could not expand to (a {var} never matches '/', "?", "#"...).
 *
 * This file does not own: which selectors a request or a token carries (hub, auth).
 */
#include "hub/selector_nfa.h"

#include <strings.h>
/* ---- compile / match -------------------------------------------------------------------- */

static int has_byte(const char *s, size_t n, char c)
{
    return memchr(s, c, n) != NULL;
}

/* Does a URL pattern start with a scheme ("...://" before any '/', '?' or '#')? */
static int has_scheme(const char *t, size_t len)
{
    for (size_t i = 0; i + 2 < len; i++) {
        if (t[i] == '/' || t[i] == '?' || t[i] == '#')
            return 0;
        if (t[i] == ':' && t[i + 1] == '/' && t[i + 2] == '/')
            return i > 0;
    }
    return 0;
}

/* Keep the base URL's scheme://authority for resolving relative patterns / topics. */
static int set_origin(struct sse__selector *s, const char *base, const char *text, size_t len)
{
    size_t blen = strlen(base);
    const char *sep = strstr(base, "://");
    if (!sep || !has_scheme(base, blen))
        return 0; /* not an absolute URL: nothing to resolve against */
    size_t end = (size_t)(sep - base) + 3;
    while (end < blen && base[end] != '/' && base[end] != '?' && base[end] != '#')
        end++;
    s->relative = len > 0 && text[0] == '/';
    if (!s->relative && !has_scheme(text, len))
        return 0; /* a path-relative pattern ("bar"): matched as written */
    s->origin = sse__strndup(base, end);
    if (!s->origin)
        return SSE_ENOMEM;
    s->origin_len = end;
    return 0;
}

int sse__selector_compile(struct sse__selector **out, const char *text, size_t len, int kind,
                          const struct sse__selector_limits *lim)
{
    return sse__selector_compile_base(out, text, len, kind, lim, NULL);
}

int sse__selector_compile_base(struct sse__selector **out, const char *text, size_t len, int kind,
                               const struct sse__selector_limits *lim, const char *base)
{
    size_t max_len = lim && lim->max_len ? lim->max_len : SEL_DEFAULT_MAX_LEN;
    unsigned max_vars = lim && lim->max_vars ? lim->max_vars : SEL_DEFAULT_MAX_VARS;
    struct nb *b = NULL;
    int rc;

    if (!out || (!text && len))
        return SSE_EINVAL;
    if (len > max_len)
        return SSE_ELIMIT;
    if (kind == SSE__SEL_AUTO)
        kind = has_byte(text, len, '{') ? SSE__SEL_TEMPLATE : SSE__SEL_EXACT;
    if (kind != SSE__SEL_EXACT && kind != SSE__SEL_TEMPLATE && kind != SSE__SEL_URLPATTERN)
        return SSE_EINVAL;

    struct sse__selector *s = sse__calloc(1, sizeof(*s));
    if (!s)
        return SSE_ENOMEM;
    s->refs = 1;
    s->kind = kind;
    s->len = len;
    s->text = sse__strndup(text ? text : "", len);
    if (!s->text) {
        rc = SSE_ENOMEM;
        goto out_free_sel;
    }
    if (kind == SSE__SEL_URLPATTERN && base && !(len == 1 && text[0] == '*')) {
        rc = set_origin(s, base, text, len);
        if (rc)
            goto out_free_sel;
    }
    if (len == 1 && text[0] == '*') {
        s->wildcard = 1;
        goto out_ok;
    }
    if (kind == SSE__SEL_EXACT ||
        (kind == SSE__SEL_TEMPLATE && !has_byte(text, len, '{') && !has_byte(text, len, '}'))) {
        s->exact = 1;
        goto out_ok;
    }
    b = sse__calloc(1, sizeof(*b));
    if (!b) {
        rc = SSE_ENOMEM;
        goto out_free_sel;
    }
    if (kind == SSE__SEL_TEMPLATE) {
        unsigned n_vars;
        rc = sse__sel_compile_template(b, text, len, max_vars, &n_vars);
    } else {
        rc = sse__sel_compile_urlpattern(b, text, len, max_vars);
    }
    if (!rc)
        nb_emit(b, N_MATCH, 0, 0);
    if (!rc && b->err)
        rc = b->err;
    if (rc)
        goto out_free_nb;
    /* A pattern with no variable at all is an exact string: the hub can hash it. */
    int all_bytes = 1;
    for (size_t i = 0; i < b->n && all_bytes; i++)
        if (b->nodes[i].op != N_BYTE && b->nodes[i].op != N_MATCH)
            all_bytes = 0;
    if (all_bytes) {
        char *lit = sse__malloc(b->n);
        if (!lit) {
            rc = SSE_ENOMEM;
            goto out_free_nb;
        }
        for (size_t i = 0; i + 1 < b->n; i++)
            lit[i] = (char)b->nodes[i].byte;
        lit[b->n - 1] = '\0';
        sse__free(s->text);
        s->text = lit;
        s->len = b->n - 1;
        s->exact = 1;
        sse__free(b->nodes);
        sse__free(b);
        goto out_ok;
    }
    s->classes = sse__malloc(b->n_classes ? b->n_classes * sizeof(*s->classes) : 1);
    if (!s->classes) {
        rc = SSE_ENOMEM;
        goto out_free_nb;
    }
    memcpy(s->classes, b->classes, b->n_classes * sizeof(*s->classes));
    s->n_classes = b->n_classes;
    s->nodes = b->nodes;
    s->n_nodes = b->n;
    b->nodes = NULL;
    sse__free(b);
    b = NULL;
    /* Literal runs: a stretch of byte nodes chained one to the next is matched with memcmp. */
    s->run = sse__malloc(s->n_nodes * sizeof(*s->run));
    s->run_ci = sse__malloc(s->n_nodes);
    s->lits = sse__malloc(s->n_nodes);
    if (!s->run || !s->run_ci || !s->lits) {
        rc = SSE_ENOMEM;
        goto out_free_sel;
    }
    for (size_t i = s->n_nodes; i-- > 0;) {
        const struct sel_node *nd = &s->nodes[i];
        int byte_node = nd->op == N_BYTE || nd->op == N_IBYTE;
        s->lits[i] = nd->byte;
        /* run[i]: byte nodes i, i+1, ... each leading to the next; the run ends at node
         * i + run[i] (the fast path resumes there). */
        s->run[i] =
            byte_node && nd->out == i + 1 && i + 1 < s->n_nodes ? (uint16_t)(1 + s->run[i + 1]) : 0;
        s->run_ci[i] = s->run[i] && (nd->op == N_IBYTE || (s->run[i] > 1 && s->run_ci[i + 1]));
    }
out_ok:
    *out = s;
    return 0;

out_free_nb:
    sse__free(b->nodes);
    sse__free(b);
out_free_sel:
    sse__free(s->origin);
    sse__free(s->run);
    sse__free(s->run_ci);
    sse__free(s->lits);
    sse__free(s->nodes);
    sse__free(s->classes);
    sse__free(s->text);
    sse__free(s);
    return rc;
}

/* Add node i and its epsilon closure to the list; returns 0 when the budget ran out. */
static int add_state(const struct sse__selector *s, uint16_t *list, size_t *n, uint32_t *mark,
                     uint32_t gen, uint16_t i, uint16_t *stack, size_t *steps)
{
    size_t sp = 0;
    stack[sp++] = i;
    while (sp) {
        uint16_t k = stack[--sp];
        if (mark[k] == gen)
            continue;
        mark[k] = gen;
        if (++*steps > SSE__SELECTOR_MAX_STEPS)
            return 0;
        const struct sel_node *nd = &s->nodes[k];
        switch (nd->op) {
        case N_SPLIT:
            /* the order does not change the set; marked nodes are not pushed again */
            if (mark[nd->out1] != gen)
                stack[sp++] = nd->out1;
            if (mark[nd->out] != gen)
                stack[sp++] = nd->out;
            break;
        case N_JUMP:
            if (mark[nd->out] != gen)
                stack[sp++] = nd->out;
            break;
        case N_FAIL:
            break;
        default:
            list[(*n)++] = k;
            break;
        }
    }
    return 1;
}

/* Simulate the NFA over prefix ‖ topic (prefix: the base origin for a relative topic, or empty). */
static int nfa_run(const struct sse__selector *s, const char *prefix, size_t plen,
                   const char *topic, size_t len, size_t *steps_out)
{
    size_t steps = 0;
    int matched = 0;
    /* Scratch on the stack: nodes <= SEL_MAX_NODES keeps it at 24 KiB. Every node is pushed at
     * most once per generation, so the explicit stack needs no more than twice the node count. */
    uint16_t buf_a[SEL_MAX_NODES], buf_b[SEL_MAX_NODES], stack[2 * SEL_MAX_NODES + 2];
    uint16_t *cur = buf_a, *nxt = buf_b;
    uint32_t mark[SEL_MAX_NODES];
    size_t n_cur = 0, n_nxt;
    uint32_t gen = 1;
    const char *segs[2] = {prefix, topic};
    size_t seg_len[2] = {plen, len};
    memset(mark, 0, s->n_nodes * sizeof(mark[0]));
    if (!add_state(s, cur, &n_cur, mark, gen, 0, stack, &steps))
        goto out;
    for (int g = 0; g < 2; g++) {
        const char *t = segs[g];
        size_t l = seg_len[g];
        for (size_t p = 0; p < l && n_cur;) {
            /* Fast path: a single live state at the start of a literal run (the common shape:
             * literal, variable, literal...): compare the whole run at once. Same answer and
             * the same number of steps as stepping it byte by byte. */
            if (n_cur == 1 && s->run[cur[0]] > 1 && s->run[cur[0]] <= l - p) {
                uint16_t k = cur[0];
                size_t r = s->run[k];
                int differ = 0;
                if (!s->run_ci[k]) {
                    differ = memcmp(t + p, s->lits + k, r) != 0;
                } else {
                    for (size_t i = 0; i < r && !differ; i++) {
                        unsigned char c = (unsigned char)t[p + i];
                        differ = c != s->lits[k + i] &&
                                 !(s->nodes[k + i].op == N_IBYTE && (c | 0x20) == s->lits[k + i]);
                    }
                }
                if (differ) {
                    n_cur = 0;
                    break;
                }
                if (steps + r > SSE__SELECTOR_MAX_STEPS) { /* the budget covers runs too */
                    steps = SSE__SELECTOR_MAX_STEPS + 1;
                    goto out;
                }
                p += r;
                steps += r;
                n_cur = 0;
                gen++;
                if (!add_state(s, cur, &n_cur, mark, gen, (uint16_t)(k + r), stack, &steps))
                    goto out;
                continue;
            }
            unsigned char c = (unsigned char)t[p++];
            n_nxt = 0;
            gen++;
            for (size_t j = 0; j < n_cur; j++) {
                const struct sel_node *nd = &s->nodes[cur[j]];
                int ok = nd->op == N_BYTE    ? nd->byte == c
                         : nd->op == N_IBYTE ? nd->byte == (c | 0x20)
                         : nd->op == N_CLASS ? cls_has(&s->classes[nd->cls], c)
                                             : 0;
                if (ok && mark[nd->out] != gen &&
                    !add_state(s, nxt, &n_nxt, mark, gen, nd->out, stack, &steps))
                    goto out;
            }
            uint16_t *tmp = cur;
            cur = nxt;
            nxt = tmp;
            n_cur = n_nxt;
        }
    }
    for (size_t j = 0; j < n_cur; j++)
        if (s->nodes[cur[j]].op == N_MATCH)
            matched = 1;
out:
    if (steps_out)
        *steps_out = steps;
    return matched;
}

int sse__selector_match_steps(const struct sse__selector *s, const char *topic, size_t len,
                              size_t *steps_out)
{
    const char *prefix = NULL;
    size_t plen = 0;
    if (steps_out)
        *steps_out = 0;
    if (!s || (!topic && len))
        return 0;
    if (s->wildcard)
        return 1;
    if (s->origin) {
        /* draft-08: relative patterns and relative topics are resolved against the hub's URL.
         * A relative pattern sees an absolute topic of the hub's origin as its path; an
         * absolute pattern sees a relative topic prefixed with the hub's origin. */
        if (s->relative) {
            if (len > s->origin_len && topic[s->origin_len] == '/' &&
                !strncasecmp(topic, s->origin, s->origin_len)) {
                topic += s->origin_len;
                len -= s->origin_len;
            }
        } else if (len && topic[0] == '/') {
            prefix = s->origin;
            plen = s->origin_len;
        }
    }
    if (s->exact) {
        if (steps_out)
            *steps_out = 1;
        return !plen && len == s->len && (len == 0 || !memcmp(topic, s->text, len));
    }
    return nfa_run(s, prefix, plen, topic, len, steps_out);
}

int sse__selector_match(const struct sse__selector *sel, const char *topic, size_t len)
{
    return sse__selector_match_steps(sel, topic, len, NULL);
}

int sse__selector_is_wildcard(const struct sse__selector *sel)
{
    return sel && sel->wildcard;
}

int sse__selector_exact(const struct sse__selector *sel, const char **text, size_t *len)
{
    if (!sel || !sel->exact || sel->origin)
        return 0; /* with a base, "/x" also matches "https://hub/x": not one string */
    if (text)
        *text = sel->text;
    if (len)
        *len = sel->len;
    return 1;
}

int sse__selector_kind(const struct sse__selector *sel)
{
    return sel ? sel->kind : SSE__SEL_AUTO;
}

struct sse__selector *sse__selector_ref(struct sse__selector *sel)
{
    if (sel)
        sel->refs++;
    return sel;
}

void sse__selector_unref(struct sse__selector *sel)
{
    if (!sel || --sel->refs)
        return;
    sse__selector_budget_release(sel);
    sse__free(sel->nodes);
    sse__free(sel->classes);
    sse__free(sel->run);
    sse__free(sel->run_ci);
    sse__free(sel->lits);
    sse__free(sel->origin);
    sse__free(sel->text);
    sse__free(sel);
}
