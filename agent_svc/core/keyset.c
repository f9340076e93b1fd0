// SPDX-License-Identifier: MIT
// Keys without hosts (pulling, absent, no room), bounded with LRU order.
#include "keyset.h"

#include <stdlib.h>

#include "xalloc.h"

void ks_init(keyset_t *ks, size_t max)
{
	*ks = (keyset_t){ .map = U64MAP_INIT, .max = max ? max : 1 };
}

void ks_clear(keyset_t *ks)
{
	for (lru_link_t *n = ks->lru.head, *next; n; n = next) {
		next = n->next;
		free(lru_entry(n, ks_entry_t, lru));
	}
	u64map_deinit(&ks->map);
	ks->map = (u64map_t)U64MAP_INIT;
	ks->lru = LRU_INIT;
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
	if (k)
		lru_touch(&ks->lru, &k->lru);
	return k;
}

void ks_del(keyset_t *ks, ks_entry_t *k)
{
	lru_unlink(&ks->lru, &k->lru);
	u64map_del(&ks->map, u64map_key(k->modid, k->cmdid));
	free(k);
}

ks_entry_t *ks_put(keyset_t *ks, int32_t modid, int32_t cmdid, enum ks_state state,
		   uint64_t now_ms)
{
	ks_entry_t *k = ks_find(ks, modid, cmdid);
	if (!k) {
		if (ks->map.n >= ks->max && ks->lru.tail) {
			ks_entry_t *old = lru_entry(ks->lru.tail, ks_entry_t, lru);
			if (ks->on_evict)
				ks->on_evict(old, ks->user);
			ks_del(ks, old);
			ks->n_evicted++;
		}
		k = xcalloc(1, sizeof(*k));
		k->modid = modid;
		k->cmdid = cmdid;
		lru_push_head(&ks->lru, &k->lru);
		u64map_put(&ks->map, u64map_key(modid, cmdid), k);
	}
	k->state = state;
	k->since_ms = now_ms;
	return k;
}
