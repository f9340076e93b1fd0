// SPDX-License-Identifier: MIT
// lars-dns's subscriptions, each one node on its route's and its peer's list.
#include "subs.h"

#include <stdlib.h>

#include "xalloc.h"

/* A route's subscribers. Lives in subs->keys_ while it has any. */
typedef struct subs_list {
	subs_node_t *head;
	size_t n;
} subs_list_t;

void subs_init(subs_t *s, size_t max_per_peer)
{
	*s = (subs_t){ .keys_ = U64MAP_INIT, .max_per_peer = max_per_peer ? max_per_peer : 1 };
}

void subs_deinit(subs_t *s)
{
	size_t iter = 0;
	for (u64map_slot_t *slot; (slot = u64map_next(&s->keys_, &iter));)
		free(slot->value);
	u64map_deinit(&s->keys_);
	s->n = 0;
}

void subs_peer_init(subs_peer_t *p, void *conn)
{
	*p = (subs_peer_t){ .conn = conn, .keys_ = U64MAP_INIT, .lru_ = LRU_INIT };
}

/* Take @n off its route's list; the list goes with its last node. */
static void subs_unlink_key(subs_t *s, subs_node_t *n)
{
	subs_list_t *l = u64map_get(&s->keys_, n->key);
	if (n->kprev)
		n->kprev->knext = n->knext;
	else
		l->head = n->knext;
	if (n->knext)
		n->knext->kprev = n->kprev;
	if (--l->n == 0)
		free(u64map_del(&s->keys_, n->key));
	s->n--;
}

static void subs_node_del(subs_t *s, subs_peer_t *p, subs_node_t *n)
{
	subs_unlink_key(s, n);
	lru_unlink(&p->lru_, &n->lru);
	u64map_del(&p->keys_, n->key);
	free(n);
}

size_t subs_peer_deinit(subs_t *s, subs_peer_t *p)
{
	size_t n = 0;
	for (lru_link_t *l = p->lru_.head, *next; l; l = next, n++) {
		next = l->next;
		subs_node_t *node = lru_entry(l, subs_node_t, lru);
		subs_unlink_key(s, node);
		free(node);
	}
	u64map_deinit(&p->keys_);
	p->lru_ = LRU_INIT;
	return n;
}

unsigned subs_add(subs_t *s, subs_peer_t *p, int32_t modid, int32_t cmdid)
{
	uint64_t key = u64map_key(modid, cmdid);
	subs_node_t *n = u64map_get(&p->keys_, key);
	if (n) {
		lru_touch(&p->lru_, &n->lru); /* asked again: the last to go */
		return 0;
	}
	unsigned flags = SUBS_ADDED;
	if (p->keys_.n >= s->max_per_peer && p->lru_.tail) {
		flags |= SUBS_DROPPED;
		if (!p->warned_)
			flags |= SUBS_FIRST_DROP;
		p->warned_ = true;
		subs_node_del(s, p, lru_entry(p->lru_.tail, subs_node_t, lru));
	}
	n = xcalloc(1, sizeof(*n));
	n->key = key;
	n->peer = p;
	lru_push_head(&p->lru_, &n->lru);
	u64map_put(&p->keys_, key, n);
	subs_list_t *l = u64map_get(&s->keys_, key);
	if (!l) {
		l = xcalloc(1, sizeof(*l));
		u64map_put(&s->keys_, key, l);
	}
	n->knext = l->head;
	if (l->head)
		l->head->kprev = n;
	l->head = n;
	l->n++;
	s->n++;
	return flags;
}

bool subs_del(subs_t *s, subs_peer_t *p, int32_t modid, int32_t cmdid)
{
	subs_node_t *n = u64map_get(&p->keys_, u64map_key(modid, cmdid));
	if (!n)
		return false;
	subs_node_del(s, p, n);
	return true;
}

bool subs_has(const subs_peer_t *p, int32_t modid, int32_t cmdid)
{
	return u64map_get(&p->keys_, u64map_key(modid, cmdid)) != NULL;
}

size_t subs_count(const subs_t *s, int32_t modid, int32_t cmdid)
{
	const subs_list_t *l = u64map_get(&s->keys_, u64map_key(modid, cmdid));
	return l ? l->n : 0;
}

size_t subs_collect(const subs_t *s, int32_t modid, int32_t cmdid, void **out, size_t cap)
{
	const subs_list_t *l = u64map_get(&s->keys_, u64map_key(modid, cmdid));
	size_t n = 0;
	for (const subs_node_t *node = l ? l->head : NULL; node && n < cap; node = node->knext)
		out[n++] = node->peer->conn;
	return n;
}
