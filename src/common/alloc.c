/*
 * alloc.c: allocation wrappers behind the optional allocator hook (see alloc.h).
 */
#include "common/alloc.h"

#include <stdlib.h>
#include <string.h>

static struct sse__allocator sse__alloc = {malloc, realloc, free};

void sse__set_allocator(const struct sse__allocator *a)
{
    if (a)
        sse__alloc = *a;
    else
        sse__alloc = (struct sse__allocator){malloc, realloc, free};
}

void *sse__malloc(size_t size)
{
    return sse__alloc.malloc(size ? size : 1);
}

void *sse__calloc(size_t n, size_t size)
{
    if (size && n > (size_t)-1 / size)
        return NULL;
    void *p = sse__malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *sse__realloc(void *ptr, size_t size)
{
    return sse__alloc.realloc(ptr, size ? size : 1);
}

void sse__free(void *ptr)
{
    if (ptr)
        sse__alloc.free(ptr);
}

char *sse__strndup(const char *s, size_t len)
{
    char *p = sse__malloc(len + 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *sse__strdup(const char *s)
{
    return sse__strndup(s, strlen(s));
}
