/*
 * alloc.h: the one allocation hook of libsse (internal).
 *
 * Every allocation in the library goes through sse__malloc & co, so that tests can make the Nth
 * allocation fail (tests/harness) and embedders could route memory elsewhere. The hook is the
 * only process-wide state of the library; it is set before any object is created.
 */
#ifndef SSE__ALLOC_H
#define SSE__ALLOC_H

#include <stddef.h>

struct sse__allocator {
    void *(*malloc)(size_t size);
    void *(*realloc)(void *ptr, size_t size);
    void (*free)(void *ptr);
};

/* Replace the allocator (NULL restores libc's). Not thread-safe: call before creating objects. */
void sse__set_allocator(const struct sse__allocator *a);
void *sse__malloc(size_t size);
void *sse__calloc(size_t n, size_t size);
void *sse__realloc(void *ptr, size_t size);
void sse__free(void *ptr);
/* A NUL-terminated copy of len bytes of s, or NULL on OOM. */
char *sse__strndup(const char *s, size_t len);
char *sse__strdup(const char *s);

#endif
