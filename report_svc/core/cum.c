// SPDX-License-Identifier: MIT
// Running totals into differences (see cum.h).
#include "cum.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

void cum_init(cum_t *c)
{
	memset(c, 0, sizeof(*c));
}

void cum_deinit(cum_t *c)
{
	free(c->cur.v);
	free(c->old.v);
	cum_init(c);
}

static size_t cum_hash(const report_key_t *k)
{
	uint64_t h = 0x9e3779b97f4a7c15ull;
	const int32_t f[5] = { k->modid, k->cmdid, k->ip, k->port, k->caller };
	for (int i = 0; i < 5; i++) {
		h ^= (uint32_t)f[i];
		h *= 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	return (size_t)h;
}

static bool cum_key_eq(const report_key_t *a, const report_key_t *b)
{
	return a->modid == b->modid && a->cmdid == b->cmdid && a->ip == b->ip &&
	       a->port == b->port && a->caller == b->caller;
}

/* @key's slot in @g: the one holding it, or the empty one it would take. */
static cum_slot_t *gen_find(const cum_gen_t *g, const report_key_t *key)
{
	if (!g->cap)
		return NULL;
	size_t mask = g->cap - 1;
	for (size_t i = cum_hash(key) & mask;; i = (i + 1) & mask) {
		cum_slot_t *s = &g->v[i];
		if (!s->used || cum_key_eq(&s->key, key))
			return s;
	}
}

static void gen_grow(cum_gen_t *g)
{
	cum_gen_t n = { .cap = g->cap ? 2 * g->cap : 1024 };
	n.v = xcalloc(n.cap, sizeof(*n.v));
	for (size_t i = 0; i < g->cap; i++) {
		if (!g->v[i].used)
			continue;
		*gen_find(&n, &g->v[i].key) = g->v[i];
		n.n++;
	}
	free(g->v);
	*g = n;
}

/* A new slot for @key in the current generation (it is in neither). */
static cum_slot_t *cum_insert(cum_t *c, const report_key_t *key)
{
	if (c->cur.n >= CUM_GEN_KEYS) {
		free(c->old.v);
		c->old = c->cur;
		c->cur = (cum_gen_t){ 0 };
	}
	if ((c->cur.n + 1) * 2 > c->cur.cap)
		gen_grow(&c->cur);
	cum_slot_t *s = gen_find(&c->cur, key);
	*s = (cum_slot_t){ .key = *key, .used = true };
	c->cur.n++;
	return s;
}

/* @key's slot if remembered (moved to the current generation), else NULL. */
static cum_slot_t *cum_lookup(cum_t *c, const report_key_t *key)
{
	cum_slot_t *s = gen_find(&c->cur, key);
	if (s && s->used)
		return s;
	s = gen_find(&c->old, key);
	if (!s || !s->used)
		return NULL;
	cum_slot_t keep = *s;
	/* Left in the old generation too: it is forgotten with it. */
	cum_slot_t *n = cum_insert(c, key);
	n->succ = keep.succ;
	n->err = keep.err;
	return n;
}

bool cum_delta(cum_t *c, const report_key_t *key, uint32_t succ, uint32_t err,
	       uint32_t *dsp, uint32_t *dep)
{
	cum_slot_t *s = cum_lookup(c, key);
	bool reset = false;
	if (!s) {
		s = cum_insert(c, key);
		*dsp = succ;
		*dep = err;
	} else if (succ < s->succ || err < s->err) {
		reset = true;
		c->resets++;
		*dsp = succ;
		*dep = err;
	} else {
		*dsp = succ - s->succ;
		*dep = err - s->err;
	}
	s->succ = succ;
	s->err = err;
	return reset;
}

void cum_seed(cum_t *c, const report_key_t *key, uint32_t succ, uint32_t err)
{
	if (cum_lookup(c, key))
		return;
	cum_slot_t *s = cum_insert(c, key);
	s->succ = succ;
	s->err = err;
}
