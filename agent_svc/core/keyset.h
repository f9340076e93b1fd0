// SPDX-License-Identifier: MIT
// Keys the agent holds no hosts for: being pulled, absent at lars-dns, or
// with no room in the route table. Bounded, least recently asked dropped
// first. Kept apart from the route table so that unknown keys can never
// evict a route that has hosts. No libuv: callers pass now_ms.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "lru.h"
#include "u64map.h"

enum ks_state {
	KS_PENDING, /* a GetRouteRequest is out, no answer yet */
	KS_ABSENT,  /* lars-dns answered: no such route */
	KS_NO_ROOM, /* a route with hosts, but the route table is full of routes in use */
};

typedef struct ks_entry ks_entry_t;
struct ks_entry {
	int32_t modid;
	int32_t cmdid;
	enum ks_state state;
	uint64_t since_ms; /* the last pull or answer */
	uint32_t pull_gen; /* the owner's lars-dns connection it was last pulled on, 0: none */
	lru_link_t lru; /* on keyset_t.lru */
};

typedef struct keyset {
	u64map_t map;
	lru_t lru; /* head = most recently asked */
	size_t max;
	/* Called with an entry about to be dropped at max (to unsubscribe it). */
	void (*on_evict)(ks_entry_t *k, void *user);
	void *user;
	uint64_t n_evicted;
} keyset_t;

void ks_init(keyset_t *ks, size_t max);
void ks_deinit(keyset_t *ks);
/** ks_peek() - the entry, or NULL; its place in the order is untouched. */
ks_entry_t *ks_peek(const keyset_t *ks, int32_t modid, int32_t cmdid);
/** ks_find() - the entry marked as just asked for, or NULL. */
ks_entry_t *ks_find(keyset_t *ks, int32_t modid, int32_t cmdid);
/**
 * ks_put() - the entry for the key, added (at max, the least recently asked
 * entry is dropped first, through on_evict) or found, set to @state at @now_ms
 * and marked as just asked for. Return: the entry, owned by @ks.
 */
ks_entry_t *ks_put(keyset_t *ks, int32_t modid, int32_t cmdid, enum ks_state state,
		   uint64_t now_ms);
/** ks_del() - forget @k (freed). */
void ks_del(keyset_t *ks, ks_entry_t *k);
/** ks_clear() - forget every key (no on_evict: a new lars-dns connection has none). */
void ks_clear(keyset_t *ks);

static inline size_t ks_size(const keyset_t *ks)
{
	return ks->map.n;
}
