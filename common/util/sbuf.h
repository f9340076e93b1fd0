// SPDX-License-Identifier: MIT
// Shared bytes: one encoded frame, reference-counted, so a push to a
// thousand subscribers and a thousand GetRoute answers are one allocation.
//
// The count is plain (not atomic): a buffer may be filled on a worker
// thread, but from the moment it is handed to the loop only the loop refs
// and unrefs it.
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct sbuf {
	unsigned refs;
	unsigned queued; /* write queues holding it (see stream.c's budget) */
	size_t len;
	uint8_t data[];
} sbuf_t;

/** sbuf_new() - @len bytes, one reference, contents undefined. Aborts on OOM. */
sbuf_t *sbuf_new(size_t len);
/** sbuf_ref() - one more holder. Return: @b. */
static inline sbuf_t *sbuf_ref(sbuf_t *b)
{
	b->refs++;
	return b;
}
/** sbuf_unref() - one holder less; freed with the last (NULL is fine). Return: NULL. */
sbuf_t *sbuf_unref(sbuf_t *b);
/** sbuf_cost() - memory one buffer of @len bytes takes, bookkeeping included. */
static inline size_t sbuf_cost(size_t len)
{
	return sizeof(sbuf_t) + len;
}
