// SPDX-License-Identifier: MIT
// Allocation for the services: out of memory is logged and aborts.
// (The client library never uses these; it returns -ENOMEM instead.)
#pragma once

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/** xreallocarray() - realloc with an overflow check on nmemb * size. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);

#define container_of(ptr, type, member)                                        \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p)
{
	free(*(void **)p);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
