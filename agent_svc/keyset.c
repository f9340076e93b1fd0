// SPDX-License-Identifier: MIT
// Keys without hosts (pulling, absent, no room), bounded with LRU order.
#include "keyset.h"

#include <stdlib.h>

#include "xalloc.h"

void ks_init(keyset_t *ks, size_t max)
{
	*ks = (keyset_t){ .map = U64MAP_INIT, .max = max ? max : 1 };
}

static void unlink_entry(keyset_t *ks, ks_entry_t *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		ks->head = k->next;
	if (k->next)
		k->next->prev = k->prev;
	else
		ks->tail = k->prev;
	k->prev = k->next = NULL;
}

static void push_head(keyset_t *ks, ks_entry_t *k)
{
	k->prev = NULL;
	k->next = ks->head;
	if (ks->head)
		ks->head->prev = k;
	else
		ks->tail = k;
	ks->head = k;
}

void ks_clear(keyset_t *ks)
{
	for (ks_entry_t *k = ks->head, *next; k; k = next) {
		next = k->next;
		free(k);
	}
	u64map_deinit(&ks->map);
	ks->map = (u64map_t)U64MAP_INIT;
	ks->head = ks->tail = NULL;
}

void ks_deinit(keyset_t *ks)
{
	ks_clear(ks);
}

ks_entry_t *ks_peek(const keyset_t *ks, int32_t modid, int32_t cmdid)
{
	return u64map_get(&ks->map, u64map_key(modid, cmdid));
}

ks_entry_t *ks_find(keyset_t *ks, int32_t modid, int32_t cmdid)
{
	ks_entry_t *k = ks_peek(ks, modid, cmdid);
	if (k && k != ks->head) {
		unlink_entry(ks, k);
		push_head(ks, k);
	}
	return k;
}

void ks_del(keyset_t *ks, ks_entry_t *k)
{
	unlink_entry(ks, k);
	u64map_del(&ks->map, u64map_key(k->modid, k->cmdid));
	free(k);
}

ks_entry_t *ks_put(keyset_t *ks, int32_t modid, int32_t cmdid, enum ks_state state,
		   uint64_t now_ms)
{
	ks_entry_t *k = ks_find(ks, modid, cmdid);
	if (!k) {
		if (ks->map.n >= ks->max && ks->tail) {
			ks_entry_t *old = ks->tail;
			if (ks->on_evict)
				ks->on_evict(old, ks->user);
			ks_del(ks, old);
			ks->n_evicted++;
		}
		k = xcalloc(1, sizeof(*k));
		k->modid = modid;
		k->cmdid = cmdid;
		push_head(ks, k);
		u64map_put(&ks->map, u64map_key(modid, cmdid), k);
	}
	k->state = state;
	k->since_ms = now_ms;
	return k;
}
