// SPDX-License-Identifier: MIT
// Shared, reference-counted bytes.
#include "sbuf.h"

#include <stdlib.h>

#include "xalloc.h"

sbuf_t *sbuf_new(size_t len)
{
	sbuf_t *b = xmalloc(sizeof(*b) + len);
	b->refs = 1;
	b->queued = 0;
	b->len = len;
	return b;
}

sbuf_t *sbuf_unref(sbuf_t *b)
{
	if (b && --b->refs == 0)
		free(b);
	return NULL;
}
