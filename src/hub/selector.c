/*
 * selector.c: compile and match Mercure topic selectors; a bounded LRU cache of compiled ones.
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
#include "hub/selector.h"

#include "common/alloc.h"

#include <sse/error.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define SEL_DEFAULT_MAX_LEN 1024
#define SEL_DEFAULT_MAX_VARS 32
#define SEL_MAX_NODES 2048 /* NFA size cap: bounds the stack used by a match */
#define SEL_MAX_PREFIX 256 /* largest {var:N} accepted */
#define SEL_MAX_CLASSES 64

enum { N_BYTE, N_CLASS, N_SPLIT, N_JUMP, N_MATCH, N_FAIL, N_IBYTE /* letter, either case */ };

struct sel_node {
    uint8_t op;    /* N_* */
    uint8_t byte;  /* N_BYTE: the byte; N_IBYTE: the lower-case letter */
    uint16_t cls;  /* N_CLASS: index into classes */
    uint16_t out;  /* next node (N_BYTE, N_CLASS, N_SPLIT first choice, N_JUMP) */
    uint16_t out1; /* N_SPLIT second choice */
};

struct sel_class {
    uint32_t bits[8]; /* 256-bit set of accepted bytes */
};

struct sse__selector {
    unsigned refs;          /* reference count */
    int kind;               /* SSE__SEL_EXACT / TEMPLATE / URLPATTERN */
    int wildcard;           /* "*" */
    int exact;              /* matches exactly `text` (no variables) */
    char *text;             /* the source text (NUL-terminated copy) */
    size_t len;             /* its length */
    struct sel_node *nodes; /* NFA (NULL when exact or wildcard) */
    size_t n_nodes;
    struct sel_class *classes;
    size_t n_classes;
    uint16_t *run;       /* per node: how many chained N_BYTE / N_IBYTE nodes start there */
    uint8_t *run_ci;     /* per node: whether that run holds an N_IBYTE (no plain memcmp) */
    unsigned char *lits; /* per node: its byte (N_BYTE), so a run is one memcmp */
    char *origin;        /* URL patterns with a base: the hub's scheme://authority, else NULL */
    size_t origin_len;
    int relative; /* URL pattern starting with '/' (resolved against the base) */
};

/* ---- byte classes ---------------------------------------------------------------------- */

static void cls_add(struct sel_class *c, unsigned char b)
{
    c->bits[b >> 5] |= (uint32_t)1 << (b & 31);
}

static int cls_has(const struct sel_class *c, unsigned char b)
{
    return (c->bits[b >> 5] >> (b & 31)) & 1;
}

static void cls_add_str(struct sel_class *c, const char *s)
{
    for (; *s; s++)
        cls_add(c, (unsigned char)*s);
}

static void cls_add_unreserved(struct sel_class *c)
{
    for (int b = 'a'; b <= 'z'; b++)
        cls_add(c, (unsigned char)b);
    for (int b = 'A'; b <= 'Z'; b++)
        cls_add(c, (unsigned char)b);
    for (int b = '0'; b <= '9'; b++)
        cls_add(c, (unsigned char)b);
    cls_add_str(c, "-._~%");
    /* IRIs: raw UTF-8 bytes are accepted wherever unreserved characters are. */
    for (int b = 0x80; b <= 0xff; b++)
        cls_add(c, (unsigned char)b);
}

static void cls_add_reserved(struct sel_class *c)
{
    cls_add_str(c, ":/?#[]@!$&'()*+,;=");
}

/* Everything printable plus UTF-8 bytes, minus the bytes in `except`. */
static void cls_all_but(struct sel_class *c, const char *except)
{
    memset(c, 0, sizeof(*c));
    for (int b = 0x21; b <= 0xff; b++)
        if (b != 0x7f)
            cls_add(c, (unsigned char)b);
    for (; *except; except++)
        c->bits[(unsigned char)*except >> 5] &= ~((uint32_t)1 << ((unsigned char)*except & 31));
}

/* ---- NFA builder ------------------------------------------------------------------------ */

struct nb {
    struct sel_node *nodes;
    size_t n, cap;
    struct sel_class classes[SEL_MAX_CLASSES];
    size_t n_classes;
    int err; /* first error (SSE_ELIMIT / SSE_ENOMEM) */
};

static size_t nb_emit(struct nb *b, uint8_t op, uint8_t byte, uint16_t cls)
{
    if (b->err)
        return 0;
    if (b->n >= SEL_MAX_NODES) {
        b->err = SSE_ELIMIT;
        return 0;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        struct sel_node *p = sse__realloc(b->nodes, cap * sizeof(*p));
        if (!p) {
            b->err = SSE_ENOMEM;
            return 0;
        }
        b->nodes = p;
        b->cap = cap;
    }
    size_t i = b->n++;
    b->nodes[i] = (struct sel_node){op, byte, cls, (uint16_t)(i + 1), (uint16_t)(i + 1)};
    return i;
}

static void nb_patch(struct nb *b, size_t i, int second, size_t to)
{
    if (b->err)
        return;
    if (second)
        b->nodes[i].out1 = (uint16_t)to;
    else
        b->nodes[i].out = (uint16_t)to;
}

static uint16_t nb_class(struct nb *b, const struct sel_class *c)
{
    for (size_t i = 0; i < b->n_classes; i++)
        if (!memcmp(&b->classes[i], c, sizeof(*c)))
            return (uint16_t)i;
    if (b->n_classes == SEL_MAX_CLASSES) {
        if (!b->err)
            b->err = SSE_ELIMIT;
        return 0;
    }
    b->classes[b->n_classes] = *c;
    return (uint16_t)b->n_classes++;
}

static void nb_bytes(struct nb *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nb_emit(b, N_BYTE, (uint8_t)s[i], 0);
}

/* c* : SPLIT(->C, ->after); C: CLASS -> SPLIT */
static void nb_star(struct nb *b, uint16_t cls)
{
    size_t s = nb_emit(b, N_SPLIT, 0, 0);
    size_t c = nb_emit(b, N_CLASS, 0, cls);
    nb_patch(b, c, 0, s);
    nb_patch(b, s, 1, b->n);
}

/* c+ : C: CLASS; SPLIT(->C, ->after) */
static void nb_plus(struct nb *b, uint16_t cls)
{
    size_t c = nb_emit(b, N_CLASS, 0, cls);
    size_t s = nb_emit(b, N_SPLIT, 0, 0);
    nb_patch(b, s, 0, c);
    nb_patch(b, s, 1, b->n);
}

/* Up to max bytes of cls (an RFC 6570 prefix modifier). */
static void nb_upto(struct nb *b, uint16_t cls, unsigned max)
{
    size_t splits[SEL_MAX_PREFIX];
    for (unsigned i = 0; i < max; i++) {
        splits[i] = nb_emit(b, N_SPLIT, 0, 0);
        nb_emit(b, N_CLASS, 0, cls);
    }
    for (unsigned i = 0; i < max; i++)
        nb_patch(b, splits[i], 1, b->n);
}

/* ---- RFC 6570 templates ---------------------------------------------------------------- */

struct tvar {
    const char *name;
    size_t name_len;
    int explode;
    unsigned prefix; /* 0 = none */
};

struct top {
    char op;
    const char *first, *sep;
    int named;
    int reserved; /* + and #: reserved characters pass unencoded */
};

static const struct top top_table[] = {
    {0, "", ",", 0, 0},    {'+', "", ",", 0, 1},  {'.', ".", ".", 0, 0}, {'/', "/", "/", 0, 0},
    {';', ";", ";", 1, 0}, {'?', "?", "&", 1, 0}, {'&', "&", "&", 1, 0}, {'#', "#", ",", 0, 1},
};

static int varname_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '%' || (ch == '.' && i > 0 && i + 1 < n && s[i - 1] != '.');
        if (!ok)
            return 0;
    }
    return 1;
}

/* One variable's expansion (without the separator before it). */
static void tpl_item(struct nb *b, const struct top *op, const struct tvar *v)
{
    struct sel_class c;
    memset(&c, 0, sizeof(c));
    cls_add_unreserved(&c);
    cls_add(&c, ','); /* list values are comma-joined */
    if (op->reserved)
        cls_add_reserved(&c);
    if (v->explode) {
        /* Exploded lists / maps: items joined by the separator; named ones are key=value. */
        cls_add_str(&c, op->sep);
        if (op->named)
            cls_add(&c, '=');
        nb_star(b, nb_class(b, &c));
        return;
    }
    uint16_t cls = nb_class(b, &c);
    if (op->named) {
        nb_bytes(b, v->name, v->name_len);
        if (op->op == ';') {
            /* ";name" when the value is empty, else ";name=value" */
            size_t s = nb_emit(b, N_SPLIT, 0, 0);
            nb_emit(b, N_BYTE, '=', 0);
            if (v->prefix)
                nb_upto(b, cls, v->prefix);
            else
                nb_star(b, cls);
            nb_patch(b, s, 1, b->n);
            return;
        }
        nb_emit(b, N_BYTE, '=', 0);
    }
    if (v->prefix)
        nb_upto(b, cls, v->prefix);
    else
        nb_star(b, cls);
}

/*
 * One expression. Undefined variables expand to nothing, defined ones are joined by the
 * operator's separator and the whole is preceded by its first character, so the NFA runs two
 * tracks: A (nothing emitted yet) and B (at least one variable emitted; the next needs `sep`).
 */
static void tpl_expr(struct nb *b, const struct top *op, const struct tvar *vars, size_t k)
{
    if (k == 1) {
        /* One variable (the usual case): "" | first value. Same language, fewer states. */
        size_t skip = op->first[0] ? nb_emit(b, N_SPLIT, 0, 0) : (size_t)-1;
        nb_bytes(b, op->first, strlen(op->first));
        tpl_item(b, op, &vars[0]);
        if (skip != (size_t)-1)
            nb_patch(b, skip, 1, b->n);
        return;
    }
    size_t start = nb_emit(b, N_SPLIT, 0, 0); /* out1: the whole expression is empty */
    nb_bytes(b, op->first, strlen(op->first));
    size_t pend_a = (size_t)-1;    /* A_j split whose out1 must reach A_{j+1} */
    size_t pend_b[3 * 32 + 3];     /* nodes (split out1 / jump out) that must reach B_{j+1} */
    int pend_b_second[3 * 32 + 3]; /* which edge of each */
    size_t n_pend_b = 0;

    for (size_t j = 0; j < k; j++) {
        size_t a = nb_emit(b, N_SPLIT, 0, 0);
        if (pend_a != (size_t)-1)
            nb_patch(b, pend_a, 1, a);
        pend_a = a;
        tpl_item(b, op, &vars[j]);
        size_t ja = nb_emit(b, N_JUMP, 0, 0);
        if (j > 0) {
            size_t bs = nb_emit(b, N_SPLIT, 0, 0);
            /* everything pending now lands on B_j */
            for (size_t i = 0; i < n_pend_b; i++)
                nb_patch(b, pend_b[i], pend_b_second[i], bs);
            n_pend_b = 0;
            nb_bytes(b, op->sep, strlen(op->sep));
            tpl_item(b, op, &vars[j]);
            size_t jb = nb_emit(b, N_JUMP, 0, 0);
            pend_b[n_pend_b] = bs;
            pend_b_second[n_pend_b++] = 1;
            pend_b[n_pend_b] = jb;
            pend_b_second[n_pend_b++] = 0;
        }
        pend_b[n_pend_b] = ja;
        pend_b_second[n_pend_b++] = 0;
    }
    size_t fail = nb_emit(b, N_FAIL, 0, 0); /* A_{k+1}: "first" emitted but no variable */
    if (pend_a != (size_t)-1)
        nb_patch(b, pend_a, 1, fail);
    for (size_t i = 0; i < n_pend_b; i++)
        nb_patch(b, pend_b[i], pend_b_second[i], b->n);
    nb_patch(b, start, 1, b->n);
}

static int compile_template(struct nb *b, const char *t, size_t len, unsigned max_vars,
                            unsigned *n_vars)
{
    size_t i = 0;
    *n_vars = 0;
    while (i < len) {
        if (t[i] == '}')
            return SSE_EINVAL;
        if (t[i] != '{') {
            nb_emit(b, N_BYTE, (uint8_t)t[i], 0);
            i++;
            continue;
        }
        size_t end = i + 1;
        while (end < len && t[end] != '}' && t[end] != '{')
            end++;
        if (end >= len || t[end] != '}')
            return SSE_EINVAL;
        const char *e = t + i + 1;
        size_t elen = end - i - 1;
        const struct top *op = &top_table[0];
        if (elen && strchr("+./;?&#=,!@|", e[0])) {
            op = NULL;
            for (size_t o = 1; o < sizeof(top_table) / sizeof(top_table[0]); o++)
                if (top_table[o].op == e[0])
                    op = &top_table[o];
            if (!op)
                return SSE_EINVAL; /* reserved for future extensions */
            e++;
            elen--;
        }
        struct tvar vars[32];
        size_t k = 0, p = 0;
        for (;;) {
            size_t q = p;
            while (q < elen && e[q] != ',')
                q++;
            struct tvar v = {e + p, q - p, 0, 0};
            if (v.name_len && v.name[v.name_len - 1] == '*') {
                v.explode = 1;
                v.name_len--;
            } else {
                const char *colon = memchr(v.name, ':', v.name_len);
                if (colon) {
                    size_t dl = v.name_len - (size_t)(colon - v.name) - 1;
                    unsigned n = 0;
                    if (dl == 0 || dl > 4 || colon[1] == '0')
                        return SSE_EINVAL;
                    for (size_t d = 0; d < dl; d++) {
                        if (colon[1 + d] < '0' || colon[1 + d] > '9')
                            return SSE_EINVAL;
                        n = n * 10 + (unsigned)(colon[1 + d] - '0');
                    }
                    if (n > SEL_MAX_PREFIX)
                        return SSE_ELIMIT;
                    v.prefix = n;
                    v.name_len = (size_t)(colon - v.name);
                }
            }
            if (!varname_ok(v.name, v.name_len))
                return SSE_EINVAL;
            if (++*n_vars > max_vars || k == 32)
                return SSE_ELIMIT;
            vars[k++] = v;
            if (q >= elen)
                break;
            p = q + 1;
        }
        tpl_expr(b, op, vars, k);
        i = end + 1;
    }
    return 0;
}

/* ---- URL patterns ----------------------------------------------------------------------- */

enum { M_PROTOCOL, M_HOST, M_PATH, M_SEARCH, M_HASH };

enum { T_LIT, T_NAME, T_WILD, T_OPEN, T_CLOSE };

struct utok {
    int type;
    unsigned char ch; /* T_LIT */
    int mode;         /* component the token sits in */
    char mod;         /* modifier after a name, wildcard or group: 0, '?', '*', '+' */
};

static int name_char(unsigned char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
           (!first && c >= '0' && c <= '9') || c >= 0x80;
}

static int scheme_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '-' || c == '.';
}

static void mode_class(int mode, int wildcard, struct sel_class *c)
{
    switch (mode) {
    case M_PROTOCOL:
        memset(c, 0, sizeof(*c));
        for (int b = 0; b < 256; b++)
            if (scheme_char((unsigned char)b))
                cls_add(c, (unsigned char)b);
        break;
    case M_HOST:
        cls_all_but(c, wildcard ? "/?#" : "./?#:");
        break;
    case M_PATH:
        cls_all_but(c, wildcard ? "?#" : "/?#");
        break;
    case M_SEARCH:
        cls_all_but(c, "#");
        break;
    default:
        cls_all_but(c, "");
        break;
    }
}

/* Tokenize a URL pattern; names are skipped (only their position matters). */
static int url_tokenize(const char *t, size_t len, struct utok *toks, size_t *n_toks,
                        unsigned max_vars, unsigned *n_groups)
{
    size_t n = 0;
    int mode = M_PATH;
    int in_group = 0;
    *n_groups = 0;
    /* Absolute when a scheme (or a wildcard/name standing for one) precedes "://". */
    const char *sep = NULL;
    for (size_t i = 0; i + 2 < len; i++)
        if (t[i] == ':' && t[i + 1] == '/' && t[i + 2] == '/') {
            sep = t + i;
            break;
        }
    if (sep && t[0] != '/') {
        int ok = 1;
        for (const char *p = t; p < sep; p++)
            if (*p == '/' || *p == '?' || *p == '#')
                ok = 0;
        if (ok)
            mode = M_PROTOCOL;
    }
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)t[i];
        struct utok tk = {T_LIT, 0, mode, 0};
        if (c == '\\') {
            if (i + 1 >= len)
                return SSE_EINVAL;
            tk.ch = (unsigned char)t[i + 1];
            i += 2;
        } else if (c == '(' || c == ')') {
            return SSE_EINVAL; /* regexp groups: refused, no user regex is ever run */
        } else if (c == ':' && i + 1 < len && name_char((unsigned char)t[i + 1], 1) &&
                   !(mode == M_PROTOCOL && t + i == sep)) {
            i++;
            while (i < len && name_char((unsigned char)t[i], 0))
                i++;
            tk.type = T_NAME;
            if (++*n_groups > max_vars)
                return SSE_ELIMIT;
        } else if (c == '*') {
            tk.type = T_WILD;
            i++;
            if (++*n_groups > max_vars)
                return SSE_ELIMIT;
        } else if (c == '{') {
            if (in_group)
                return SSE_EINVAL;
            in_group = 1;
            tk.type = T_OPEN;
            i++;
        } else if (c == '}') {
            if (!in_group)
                return SSE_EINVAL;
            in_group = 0;
            tk.type = T_CLOSE;
            i++;
        } else {
            tk.ch = c;
            i++;
            /* Component boundaries (only outside groups). */
            if (!in_group) {
                if (mode == M_PROTOCOL && t + i - 1 == sep) {
                    /* "://": the two slashes are literals of the host part */
                    toks[n++] = tk;
                    for (int s = 0; s < 2; s++)
                        toks[n++] = (struct utok){T_LIT, '/', M_HOST, 0};
                    i += 2;
                    mode = M_HOST;
                    continue;
                }
                if (c == '/' && mode == M_HOST)
                    mode = M_PATH;
                else if (c == '?' && (mode == M_HOST || mode == M_PATH))
                    mode = M_SEARCH;
                else if (c == '#' && mode != M_HASH)
                    mode = M_HASH;
                tk.mode = mode;
            }
        }
        /* A modifier after a name, a wildcard or a group. */
        if ((tk.type == T_NAME || tk.type == T_WILD || tk.type == T_CLOSE) && i < len &&
            (t[i] == '?' || t[i] == '*' || t[i] == '+')) {
            if (tk.type == T_WILD && t[i] == '*')
                return SSE_EINVAL; /* "**" */
            tk.mod = t[i];
            i++;
        }
        if (tk.type == T_NAME && i < len && t[i] == '(')
            return SSE_EINVAL; /* custom regexp for a name */
        toks[n++] = tk;
    }
    if (in_group)
        return SSE_EINVAL;
    *n_toks = n;
    return 0;
}

static void url_atom(struct nb *b, const struct utok *tk)
{
    struct sel_class c;
    if (tk->type == T_LIT) {
        unsigned char ch = tk->ch, lo = (unsigned char)(ch | 0x20);
        /* Scheme and host are case-insensitive (URLs canonicalize them to lower case): a
         * letter there matches both cases. Everything else is byte for byte. */
        if ((tk->mode == M_PROTOCOL || tk->mode == M_HOST) && lo >= 'a' && lo <= 'z') {
            nb_emit(b, N_IBYTE, lo, 0);
            return;
        }
        nb_emit(b, N_BYTE, ch, 0);
        return;
    }
    mode_class(tk->mode, tk->type == T_WILD, &c);
    uint16_t cls = nb_class(b, &c);
    if (tk->type == T_WILD)
        nb_star(b, cls);
    else
        nb_plus(b, cls);
}

/* Emit tokens [from, to) once (a group body or a single atom), with an optional prefix byte. */
static void url_seq(struct nb *b, const struct utok *toks, size_t from, size_t to, int prefix)
{
    if (prefix >= 0)
        nb_emit(b, N_BYTE, (uint8_t)prefix, 0);
    for (size_t i = from; i < to; i++)
        if (toks[i].type != T_OPEN && toks[i].type != T_CLOSE)
            url_atom(b, &toks[i]);
}

/* Apply a modifier to the sequence [from, to) preceded by prefix (-1 = none). */
static void url_modified(struct nb *b, const struct utok *toks, size_t from, size_t to, int prefix,
                         char mod)
{
    if (mod == 0) {
        url_seq(b, toks, from, to, prefix);
        return;
    }
    size_t skip = (size_t)-1;
    if (mod == '?' || mod == '*')
        skip = nb_emit(b, N_SPLIT, 0, 0);
    size_t body = b->n;
    url_seq(b, toks, from, to, prefix);
    if (mod == '+' || mod == '*') {
        size_t again = nb_emit(b, N_SPLIT, 0, 0);
        nb_patch(b, again, 0, body);
        nb_patch(b, again, 1, b->n);
    }
    if (skip != (size_t)-1)
        nb_patch(b, skip, 1, b->n);
}

static int compile_urlpattern(struct nb *b, const char *t, size_t len, unsigned max_vars)
{
    struct utok *toks = sse__malloc((len + 2) * sizeof(*toks));
    size_t n = 0;
    unsigned groups;
    if (!toks)
        return SSE_ENOMEM;
    int rc = url_tokenize(t, len, toks, &n, max_vars, &groups);
    if (rc)
        goto out_free;
    for (size_t i = 0; i < n; i++) {
        const struct utok *tk = &toks[i];
        if (tk->type == T_OPEN) {
            size_t close = i + 1;
            while (toks[close].type != T_CLOSE)
                close++;
            url_modified(b, toks, i + 1, close, -1, toks[close].mod);
            i = close;
            continue;
        }
        /* In the path, a '/' right before a modified name/wildcard/group is its prefix
         * ("/books/:id?" matches "/books" too), as in the URL Pattern standard. */
        if (tk->type == T_LIT && tk->ch == '/' && tk->mode == M_PATH && i + 1 < n) {
            const struct utok *nx = &toks[i + 1];
            if ((nx->type == T_NAME || nx->type == T_WILD) && nx->mod) {
                url_modified(b, toks, i + 1, i + 2, '/', nx->mod);
                i++;
                continue;
            }
            if (nx->type == T_OPEN) {
                size_t close = i + 2;
                while (toks[close].type != T_CLOSE)
                    close++;
                if (toks[close].mod) {
                    url_modified(b, toks, i + 2, close, '/', toks[close].mod);
                    i = close;
                    continue;
                }
            }
        }
        url_modified(b, toks, i, i + 1, -1, tk->mod);
    }
out_free:
    sse__free(toks);
    return rc;
}

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
        rc = compile_template(b, text, len, max_vars, &n_vars);
    } else {
        rc = compile_urlpattern(b, text, len, max_vars);
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
    sse__free(sel->nodes);
    sse__free(sel->classes);
    sse__free(sel->run);
    sse__free(sel->run_ci);
    sse__free(sel->lits);
    sse__free(sel->origin);
    sse__free(sel->text);
    sse__free(sel);
}

/* ---- the LRU cache ---------------------------------------------------------------------- */

struct cache_entry {
    struct cache_entry *hnext;       /* hash chain */
    struct cache_entry *prev, *next; /* LRU list: head = most recent */
    uint64_t hash;
    int kind;  /* the kind asked for (AUTO stays AUTO) */
    char *key; /* the text asked for */
    size_t key_len;
    struct sse__selector *sel; /* one reference held by the cache */
};

struct sse__selector_cache {
    struct cache_entry **buckets;
    size_t n_buckets;                /* power of two */
    struct cache_entry *head, *tail; /* LRU list */
    size_t n, capacity;
    struct sse__selector_limits lim;
    char *base; /* URL patterns resolve against it (sse__selector_cache_set_base) */
    size_t hits, misses, evictions;
};

static uint64_t fnv1a(const char *s, size_t n, int kind)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(unsigned)kind;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

int sse__selector_cache_new(struct sse__selector_cache **out, size_t capacity,
                            const struct sse__selector_limits *lim)
{
    if (!out)
        return SSE_EINVAL;
    struct sse__selector_cache *c = sse__calloc(1, sizeof(*c));
    if (!c)
        return SSE_ENOMEM;
    c->capacity = capacity ? capacity : 4096;
    c->n_buckets = 16;
    while (c->n_buckets < c->capacity && c->n_buckets < ((size_t)1 << 20))
        c->n_buckets <<= 1;
    c->buckets = sse__calloc(c->n_buckets, sizeof(*c->buckets));
    if (!c->buckets) {
        sse__free(c);
        return SSE_ENOMEM;
    }
    if (lim)
        c->lim = *lim;
    *out = c;
    return 0;
}

static void lru_unlink(struct sse__selector_cache *c, struct cache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct sse__selector_cache *c, struct cache_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static void entry_free(struct cache_entry *e)
{
    sse__selector_unref(e->sel);
    sse__free(e->key);
    sse__free(e);
}

static void cache_evict_tail(struct sse__selector_cache *c)
{
    struct cache_entry *e = c->tail;
    struct cache_entry **pp = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    entry_free(e);
    c->n--;
    c->evictions++;
}

int sse__selector_cache_get(struct sse__selector_cache *c, const char *text, size_t len, int kind,
                            struct sse__selector **out)
{
    if (!c || !out || (!text && len))
        return SSE_EINVAL;
    uint64_t h = fnv1a(text, len, kind);
    struct cache_entry **bucket = &c->buckets[h & (c->n_buckets - 1)];
    for (struct cache_entry *e = *bucket; e; e = e->hnext) {
        if (e->hash == h && e->kind == kind && e->key_len == len &&
            (len == 0 || !memcmp(e->key, text, len))) {
            c->hits++;
            lru_unlink(c, e);
            lru_push_front(c, e);
            *out = sse__selector_ref(e->sel);
            return 0;
        }
    }
    c->misses++;
    struct sse__selector *sel;
    int rc = sse__selector_compile_base(&sel, text, len, kind, &c->lim, c->base);
    if (rc)
        return rc;
    struct cache_entry *e = sse__calloc(1, sizeof(*e));
    if (!e)
        goto out_unref;
    e->key = sse__strndup(text ? text : "", len);
    if (!e->key)
        goto out_free_entry;
    e->hash = h;
    e->kind = kind;
    e->key_len = len;
    e->sel = sse__selector_ref(sel);
    if (c->n == c->capacity)
        cache_evict_tail(c);
    e->hnext = *bucket;
    *bucket = e;
    lru_push_front(c, e);
    c->n++;
    *out = sel;
    return 0;

out_free_entry:
    sse__free(e);
out_unref:
    sse__selector_unref(sel);
    return SSE_ENOMEM;
}

int sse__selector_cache_set_base(struct sse__selector_cache *c, const char *base)
{
    char *copy = NULL;
    if (!c)
        return SSE_EINVAL;
    if (base && !(copy = sse__strdup(base)))
        return SSE_ENOMEM;
    sse__free(c->base);
    c->base = copy;
    return 0;
}

void sse__selector_cache_stats(const struct sse__selector_cache *c, size_t *entries, size_t *hits,
                               size_t *misses, size_t *evictions)
{
    if (entries)
        *entries = c ? c->n : 0;
    if (hits)
        *hits = c ? c->hits : 0;
    if (misses)
        *misses = c ? c->misses : 0;
    if (evictions)
        *evictions = c ? c->evictions : 0;
}

void sse__selector_cache_free(struct sse__selector_cache *c)
{
    if (!c)
        return;
    struct cache_entry *e = c->head;
    while (e) {
        struct cache_entry *next = e->next;
        entry_free(e);
        e = next;
    }
    sse__free(c->buckets);
    sse__free(c->base);
    sse__free(c);
}
