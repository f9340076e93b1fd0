// SPDX-License-Identifier: MIT
// Open-addressing hash map with linear probing and backward-shift deletion
// (no tombstones, so lookups never slow down after many deletions).
#include "u64map.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

static size_t u64map_hash(uint64_t k)
{
	/* splitmix64 finaliser: sequential ids spread over the table. */
	k ^= k >> 30;
	k *= 0xbf58476d1ce4e5b9ull;
	k ^= k >> 27;
	k *= 0x94d049bb133111ebull;
	k ^= k >> 31;
	return (size_t)k;
}

void u64map_deinit(u64map_t *m)
{
	free(m->slots);
	*m = (u64map_t)U64MAP_INIT;
}

void *u64map_get(const u64map_t *m, uint64_t key)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;
	for (size_t i = u64map_hash(key) & mask;; i = (i + 1) & mask) {
		if (!m->slots[i].value)
			return NULL;
		if (m->slots[i].key == key)
			return m->slots[i].value;
	}
}

static void u64map_grow(u64map_t *m)
{
	u64map_t bigger = { xcalloc(m->cap ? m->cap * 2 : 16, sizeof(u64map_slot_t)),
			    m->cap ? m->cap * 2 : 16, 0 };
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].value)
			u64map_put(&bigger, m->slots[i].key, m->slots[i].value);
	free(m->slots);
	*m = bigger;
}

void u64map_put(u64map_t *m, uint64_t key, void *value)
{
	/* Load factor at most 1/2: probes stay short. */
	if ((m->n + 1) * 2 > m->cap)
		u64map_grow(m);
	size_t mask = m->cap - 1;
	for (size_t i = u64map_hash(key) & mask;; i = (i + 1) & mask) {
		if (!m->slots[i].value) {
			m->slots[i].key = key;
			m->slots[i].value = value;
			m->n++;
			return;
		}
		if (m->slots[i].key == key) {
			m->slots[i].value = value;
			return;
		}
	}
}

void *u64map_del(u64map_t *m, uint64_t key)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;
	size_t i = u64map_hash(key) & mask;
	for (;; i = (i + 1) & mask) {
		if (!m->slots[i].value)
			return NULL;
		if (m->slots[i].key == key)
			break;
	}
	void *value = m->slots[i].value;
	/* Shift back later entries of the run that may no longer be reachable. */
	size_t hole = i;
	for (size_t j = (i + 1) & mask; m->slots[j].value; j = (j + 1) & mask) {
		size_t home = u64map_hash(m->slots[j].key) & mask;
		/* Move j into the hole unless its home lies in (hole, j]. */
		bool stays = hole <= j ? (home > hole && home <= j)
				       : (home > hole || home <= j);
		if (!stays) {
			m->slots[hole] = m->slots[j];
			hole = j;
		}
	}
	m->slots[hole].value = NULL;
	m->n--;
	return value;
}

u64map_slot_t *u64map_next(const u64map_t *m, size_t *iter)
{
	while (*iter < m->cap) {
		u64map_slot_t *s = &m->slots[(*iter)++];
		if (s->value)
			return s;
	}
	return NULL;
}
