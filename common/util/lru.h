// SPDX-License-Identifier: MIT
// An intrusive doubly linked list kept in use order: head = most recently
// used, tail = the next to evict. Embed an lru_link_t in the entry and find
// the entry again with lru_entry(). No allocation; O(1) everywhere.
#ifndef LARS_LRU_H
#define LARS_LRU_H

#include <stddef.h>

#include "xalloc.h" /* container_of */

typedef struct lru_link {
	struct lru_link *prev, *next;
} lru_link_t;

typedef struct lru {
	lru_link_t *head, *tail;
} lru_t;

#define LRU_INIT ((lru_t){ NULL, NULL })

/* The entry of type @type whose member @member is @link (NULL for NULL). */
#define lru_entry(link, type, member)                                          \
	((link) ? container_of(link, type, member) : (type *)NULL)

/** lru_unlink() - take @n off @l (it must be on it). */
static inline void lru_unlink(lru_t *l, lru_link_t *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
}

/** lru_push_head() - put @n (not on any list) first: the most recent. */
static inline void lru_push_head(lru_t *l, lru_link_t *n)
{
	n->prev = NULL;
	n->next = l->head;
	if (l->head)
		l->head->prev = n;
	else
		l->tail = n;
	l->head = n;
}

/** lru_touch() - @n (on @l) is the most recent now. */
static inline void lru_touch(lru_t *l, lru_link_t *n)
{
	if (l->head != n) {
		lru_unlink(l, n);
		lru_push_head(l, n);
	}
}

#endif
