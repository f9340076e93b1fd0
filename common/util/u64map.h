// SPDX-License-Identifier: MIT
// Open-addressing hash map from uint64_t keys to pointers (loop-thread use).
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct u64map_slot {
	uint64_t key;
	void *value; /* NULL = empty slot */
} u64map_slot_t;

typedef struct u64map {
	u64map_slot_t *slots;
	size_t cap; /* power of two, or 0 */
	size_t n;
} u64map_t;

#define U64MAP_INIT { NULL, 0, 0 }

/** u64map_key() - the map key of a (modid, cmdid) pair. */
static inline uint64_t u64map_key(int32_t modid, int32_t cmdid)
{
	return (uint64_t)(uint32_t)modid << 32 | (uint32_t)cmdid;
}

void u64map_deinit(u64map_t *m);
void *u64map_get(const u64map_t *m, uint64_t key);
/** u64map_put() - insert or replace; @value must not be NULL. Aborts on OOM. */
void u64map_put(u64map_t *m, uint64_t key, void *value);
/** u64map_del() - remove @key; returns its value or NULL. */
void *u64map_del(u64map_t *m, uint64_t key);

/** u64map_next() - iterate: start with *iter = 0; NULL at the end. */
u64map_slot_t *u64map_next(const u64map_t *m, size_t *iter);
