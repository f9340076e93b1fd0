// SPDX-License-Identifier: MIT
// The agent's balancers by (modid, cmdid): bounded, least recently used
// evicted first. No libuv: callers pass now_ms.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balancer.h"
#include "lru.h"
#include "u64map.h"

typedef struct rt_entry rt_entry_t;
struct rt_entry {
	lb_t lb;
	uint64_t used_ms;
	uint32_t pull_gen; /* the owner's lars-dns connection it was last pulled on, 0: none */
	lru_link_t lru; /* on route_table_t.lru */
};

typedef struct route_table {
	u64map_t map;
	lru_t lru; /* head = most recently used */
	size_t max;
	uint64_t min_idle_ms; /* an entry used more recently is never evicted */
	const lb_cfg_t *cfg;
	/* Called with an entry about to be evicted (its counts still inside). */
	void (*on_evict)(rt_entry_t *e, void *user);
	void *user;
	uint64_t n_evicted;
	/* Sweep cursor for rt_tick: the key to continue after. */
	size_t tick_iter;
} route_table_t;

void rt_init(route_table_t *t, size_t max, uint64_t min_idle_ms, const lb_cfg_t *cfg);
void rt_deinit(route_table_t *t);

/** rt_find() - the entry, marked as used now; NULL if unknown. */
rt_entry_t *rt_find(route_table_t *t, int32_t modid, int32_t cmdid, uint64_t now_ms);
/** rt_peek() - the entry without touching its use time. */
rt_entry_t *rt_peek(const route_table_t *t, int32_t modid, int32_t cmdid);
/**
 * rt_create() - a new balancer (PULLING). At max, evicts the least recently
 * used entry if it has been idle min_idle_ms; otherwise refuses.
 * Return: the entry, or NULL (table full of routes in use).
 */
rt_entry_t *rt_create(route_table_t *t, int32_t modid, int32_t cmdid, uint64_t now_ms);

/** rt_remove() - drop @e (freed) without on_evict: the caller knows why. */
void rt_remove(route_table_t *t, rt_entry_t *e);

static inline size_t rt_size(const route_table_t *t)
{
	return t->map.n;
}

/**
 * rt_tick() - lb_tick over at most @budget entries, continuing where the last
 * call stopped (a full pass takes size/budget calls). @on_change runs for a
 * balancer in which a host changed state.
 */
void rt_tick(route_table_t *t, uint64_t now_ms, size_t budget,
	     void (*on_change)(rt_entry_t *e, void *user), void *user);
