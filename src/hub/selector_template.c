/*
 * selector_template.c: RFC 6570 URI templates (every operator, explode and prefix modifiers)
 * compiled to the selector NFA (selector_nfa.h). The NFA accepts every expansion the template
 * can produce, and a variable never crosses a character it could not expand to.
 */
#include "hub/selector_nfa.h"

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

int sse__sel_compile_template(struct nb *b, const char *t, size_t len, unsigned max_vars,
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
