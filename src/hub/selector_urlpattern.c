/*
 * selector_urlpattern.c: URL patterns (the WHATWG URL Pattern subset described in selector.h)
 * compiled to the selector NFA (selector_nfa.h). Regexp groups are refused at compile time, so
 * no user-supplied regular expression is ever executed.
 */
#include "hub/selector_nfa.h"

#include <strings.h>

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

int sse__sel_compile_urlpattern(struct nb *b, const char *t, size_t len, unsigned max_vars)
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
