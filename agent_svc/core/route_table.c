// SPDX-License-Identifier: MIT
// The agent's balancers by (modid, cmdid), bounded with LRU eviction.
#include "route_table.h"

#include <stdlib.h>

#include "xalloc.h"

void rt_init(route_table_t *t, size_t max, uint64_t min_idle_ms, const lb_cfg_t *cfg)
{
	*t = (route_table_t){ .map = U64MAP_INIT, .max = max, .min_idle_ms = min_idle_ms,
			      .cfg = cfg };
}

void rt_deinit(route_table_t *t)
{
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&t->map, &iter));) {
		rt_entry_t *e = s->value;
		lb_deinit(&e->lb);
		free(e);
	}
	u64map_deinit(&t->map);
	t->lru = LRU_INIT;
}

rt_entry_t *rt_peek(const route_table_t *t, int32_t modid, int32_t cmdid)
{
	return u64map_get(&t->map, u64map_key(modid, cmdid));
}

rt_entry_t *rt_find(route_table_t *t, int32_t modid, int32_t cmdid, uint64_t now_ms)
{
	rt_entry_t *e = rt_peek(t, modid, cmdid);
	if (e) {
		lru_touch(&t->lru, &e->lru);
		e->used_ms = now_ms;
	}
	return e;
}

void rt_remove(route_table_t *t, rt_entry_t *e)
{
	lru_unlink(&t->lru, &e->lru);
	u64map_del(&t->map, u64map_key(e->lb.modid, e->lb.cmdid));
	lb_deinit(&e->lb);
	free(e);
}

rt_entry_t *rt_create(route_table_t *t, int32_t modid, int32_t cmdid, uint64_t now_ms)
{
	if (t->map.n >= t->max) {
		rt_entry_t *old = lru_entry(t->lru.tail, rt_entry_t, lru);
		if (!old || now_ms - old->used_ms < t->min_idle_ms)
			return NULL;
		if (t->on_evict)
			t->on_evict(old, t->user);
		rt_remove(t, old);
		t->n_evicted++;
	}
	rt_entry_t *e = xcalloc(1, sizeof(*e));
	lb_init(&e->lb, modid, cmdid, t->cfg);
	e->used_ms = now_ms;
	lru_push_head(&t->lru, &e->lru);
	u64map_put(&t->map, u64map_key(modid, cmdid), e);
	return e;
}

void rt_tick(route_table_t *t, uint64_t now_ms, size_t budget,
	     void (*on_change)(rt_entry_t *e, void *user), void *user)
{
	/* The map's slot order is stable between inserts: a cursor into it
	 * walks every entry across calls (a grown map just restarts). */
	if (t->tick_iter > t->map.cap)
		t->tick_iter = 0;
	for (size_t done = 0; done < budget;) {
		u64map_slot_t *s = u64map_next(&t->map, &t->tick_iter);
		if (!s) {
			t->tick_iter = 0;
			break;
		}
		rt_entry_t *e = s->value;
		if (lb_tick(&e->lb, now_ms) == LB_CHANGED && on_change)
			on_change(e, user);
		done++;
	}
}
