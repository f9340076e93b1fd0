// SPDX-License-Identifier: MIT
// A growing text buffer for JSON documents: printf-style appends and JSON
// strings escaped. Plain libc, never aborts: an allocation failure marks the
// buffer and later appends do nothing (the client library links it too).
#pragma once

#include <stdbool.h>
#include <stddef.h>

/** struct jbuf - start as (jbuf_t){ 0 }; p is NUL-terminated once anything is in it. */
typedef struct jbuf {
	char *p;
	size_t n, cap;
	bool oom;
} jbuf_t;

/** jbuf_printf() - append printf-style text (no escaping). */
__attribute__((format(printf, 2, 3)))
void jbuf_printf(jbuf_t *b, const char *fmt, ...);

/**
 * jbuf_str() - append @s as a JSON string: quotes, backslashes and control
 * characters escaped, other bytes as they are (UTF-8 passes); NULL gives null.
 */
void jbuf_str(jbuf_t *b, const char *s);

/**
 * jbuf_take() - the text, which the caller frees; *@lenp gets its length.
 * Return: NULL (and the buffer freed) when an allocation failed. @b is empty
 * afterwards either way.
 */
char *jbuf_take(jbuf_t *b, size_t *lenp);
