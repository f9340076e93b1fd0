// SPDX-License-Identifier: MIT
// A growing buffer for JSON text (jbuf.h).
#include "jbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Room for @more bytes and a NUL past n; false (and b->oom) if none. */
static bool jbuf_room(jbuf_t *b, size_t more)
{
	if (b->oom)
		return false;
	if (b->p && b->n + more < b->cap)
		return true;
	size_t ncap = b->cap ? b->cap : 1024;
	while (ncap <= b->n + more)
		ncap *= 2;
	char *q = realloc(b->p, ncap);
	if (!q) {
		b->oom = true;
		return false;
	}
	b->p = q;
	b->cap = ncap;
	return true;
}

void jbuf_printf(jbuf_t *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (k < 0) {
		b->oom = true;
		return;
	}
	if (!jbuf_room(b, (size_t)k))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
	b->n += (size_t)k;
}

void jbuf_str(jbuf_t *b, const char *s)
{
	if (!s) {
		jbuf_printf(b, "null");
		return;
	}
	jbuf_printf(b, "\"");
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (!jbuf_room(b, 6))
			return;
		if (*c == '"' || *c == '\\')
			b->n += (size_t)snprintf(b->p + b->n, b->cap - b->n, "\\%c", *c);
		else if (*c == '\n')
			b->n += (size_t)snprintf(b->p + b->n, b->cap - b->n, "\\n");
		else if (*c == '\t')
			b->n += (size_t)snprintf(b->p + b->n, b->cap - b->n, "\\t");
		else if (*c < 0x20 || *c == 0x7f)
			b->n += (size_t)snprintf(b->p + b->n, b->cap - b->n, "\\u%04x", *c);
		else {
			b->p[b->n++] = (char)*c;
			b->p[b->n] = '\0';
		}
	}
	jbuf_printf(b, "\"");
}

char *jbuf_take(jbuf_t *b, size_t *lenp)
{
	if (!b->p && jbuf_room(b, 0))
		b->p[0] = '\0'; /* nothing appended: "" */
	char *p = b->oom ? NULL : b->p;
	if (b->oom)
		free(b->p);
	if (p && lenp)
		*lenp = b->n;
	*b = (jbuf_t){ 0 };
	return p;
}
