/*
 * selector_nfa.h: the compiled form of a topic selector (a Thompson NFA over bytes) and the
 * builder that the template and URL-pattern compilers share. Internal to src/hub's selector
 * files: selector.c (compile, match, references), selector_template.c (RFC 6570),
 * selector_urlpattern.c (URL patterns), selector_cache.c (the LRU cache).
 */
#ifndef SSE__HUB_SELECTOR_NFA_H
#define SSE__HUB_SELECTOR_NFA_H

#include "common/alloc.h"
#include "hub/selector.h"

#include <sse/error.h>
#include <stdint.h>
#include <string.h>

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

/* What the patterns compiled by one cache hold, shared by the cache and each of them. */
struct sse__selector_budget {
    unsigned refs;     /* the cache + every selector charged to it */
    size_t nodes_live; /* automaton nodes of the charged selectors still alive */
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
    struct sse__selector_budget *budget; /* charged with n_nodes (a cache's), or NULL */
};

/* Give back what sel was charged (its last reference is gone). */
void sse__selector_budget_release(struct sse__selector *sel);

/* ---- byte classes ---------------------------------------------------------------------- */

static inline void cls_add(struct sel_class *c, unsigned char b)
{
    c->bits[b >> 5] |= (uint32_t)1 << (b & 31);
}

static inline int cls_has(const struct sel_class *c, unsigned char b)
{
    return (c->bits[b >> 5] >> (b & 31)) & 1;
}

static inline void cls_add_str(struct sel_class *c, const char *s)
{
    for (; *s; s++)
        cls_add(c, (unsigned char)*s);
}

static inline void cls_add_unreserved(struct sel_class *c)
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

static inline void cls_add_reserved(struct sel_class *c)
{
    cls_add_str(c, ":/?#[]@!$&'()*+,;=");
}

/* Everything printable plus UTF-8 bytes, minus the bytes in `except`. */
static inline void cls_all_but(struct sel_class *c, const char *except)
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

static inline size_t nb_emit(struct nb *b, uint8_t op, uint8_t byte, uint16_t cls)
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

static inline void nb_patch(struct nb *b, size_t i, int second, size_t to)
{
    if (b->err)
        return;
    if (second)
        b->nodes[i].out1 = (uint16_t)to;
    else
        b->nodes[i].out = (uint16_t)to;
}

static inline uint16_t nb_class(struct nb *b, const struct sel_class *c)
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

static inline void nb_bytes(struct nb *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nb_emit(b, N_BYTE, (uint8_t)s[i], 0);
}

/* c* : SPLIT(->C, ->after); C: CLASS -> SPLIT */
static inline void nb_star(struct nb *b, uint16_t cls)
{
    size_t s = nb_emit(b, N_SPLIT, 0, 0);
    size_t c = nb_emit(b, N_CLASS, 0, cls);
    nb_patch(b, c, 0, s);
    nb_patch(b, s, 1, b->n);
}

/* c+ : C: CLASS; SPLIT(->C, ->after) */
static inline void nb_plus(struct nb *b, uint16_t cls)
{
    size_t c = nb_emit(b, N_CLASS, 0, cls);
    size_t s = nb_emit(b, N_SPLIT, 0, 0);
    nb_patch(b, s, 0, c);
    nb_patch(b, s, 1, b->n);
}

/* Up to max bytes of cls (an RFC 6570 prefix modifier). */
static inline void nb_upto(struct nb *b, uint16_t cls, unsigned max)
{
    size_t splits[SEL_MAX_PREFIX];
    for (unsigned i = 0; i < max; i++) {
        splits[i] = nb_emit(b, N_SPLIT, 0, 0);
        nb_emit(b, N_CLASS, 0, cls);
    }
    for (unsigned i = 0; i < max; i++)
        nb_patch(b, splits[i], 1, b->n);
}

/* Compile an RFC 6570 template (selector_template.c) / a URL pattern (selector_urlpattern.c)
   into b. 0, SSE_EINVAL (not a valid one), SSE_ELIMIT or SSE_ENOMEM. */
int sse__sel_compile_template(struct nb *b, const char *t, size_t len, unsigned max_vars,
                              unsigned *n_vars);
int sse__sel_compile_urlpattern(struct nb *b, const char *t, size_t len, unsigned max_vars);

#endif
