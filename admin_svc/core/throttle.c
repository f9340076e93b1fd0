// SPDX-License-Identifier: MIT
// Login back-off per peer address and per user name (see throttle.h).
#include "throttle.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define THROTTLE_KEY_MAX 72

typedef struct throttle_rec {
	char key[THROTTLE_KEY_MAX]; /* "" = free slot */
	unsigned fails;
	unsigned running;    /* checks let through, not done yet */
	uint64_t last_ms;    /* of the last failure (or of the first ask) */
	uint64_t wait_until; /* no new check before */
} throttle_rec_t;

typedef struct throttle_table {
	throttle_rec_t *recs;
	unsigned n;
} throttle_table_t;

struct throttle {
	throttle_opts_t o;
	throttle_table_t addrs, names;
};

static void table_init(throttle_table_t *tb, unsigned n)
{
	tb->recs = xcalloc(n, sizeof(*tb->recs));
	tb->n = n;
}

throttle_t *throttle_new(const throttle_opts_t *o)
{
	throttle_t *t = xcalloc(1, sizeof(*t));
	t->o = *o;
	if (!t->o.addr_free)
		t->o.addr_free = 5;
	if (!t->o.name_free)
		t->o.name_free = 10;
	if (!t->o.base_ms)
		t->o.base_ms = 1000;
	if (!t->o.max_ms)
		t->o.max_ms = 60000;
	if (!t->o.forget_ms)
		t->o.forget_ms = 15 * 60000;
	if (!t->o.addr_slots)
		t->o.addr_slots = 4096;
	if (!t->o.name_slots)
		t->o.name_slots = 256;
	table_init(&t->addrs, t->o.addr_slots);
	table_init(&t->names, t->o.name_slots);
	return t;
}

throttle_t *throttle_free(throttle_t *t)
{
	if (t) {
		free(t->addrs.recs);
		free(t->names.recs);
		free(t);
	}
	return NULL;
}

static bool rec_stale(const throttle_t *t, const throttle_rec_t *r, uint64_t now)
{
	return r->running == 0 && now - r->last_ms >= t->o.forget_ms;
}

/* The record of @key, or NULL. Stale records met on the way are dropped. */
static throttle_rec_t *table_find(const throttle_t *t, throttle_table_t *tb, const char *key,
				  uint64_t now)
{
	for (unsigned i = 0; i < tb->n; i++) {
		throttle_rec_t *r = &tb->recs[i];
		if (!r->key[0])
			continue;
		if (rec_stale(t, r, now)) {
			r->key[0] = '\0';
			continue;
		}
		if (strcmp(r->key, key) == 0)
			return r;
	}
	return NULL;
}

/* A new record for @key: a free slot, else the one failed longest ago
 * (never one with a check running: its done would find nothing). */
static throttle_rec_t *table_add(throttle_table_t *tb, const char *key, uint64_t now)
{
	throttle_rec_t *victim = NULL;
	for (unsigned i = 0; i < tb->n; i++) {
		throttle_rec_t *r = &tb->recs[i];
		if (!r->key[0]) {
			victim = r;
			break;
		}
		if (r->running == 0 && (!victim || r->last_ms < victim->last_ms))
			victim = r;
	}
	if (!victim)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	size_t n = strlen(key);
	if (n >= THROTTLE_KEY_MAX)
		n = THROTTLE_KEY_MAX - 1;
	memcpy(victim->key, key, n);
	victim->key[n] = '\0';
	victim->last_ms = now;
	return victim;
}

static uint64_t delay_ms(const throttle_t *t, unsigned fails, unsigned free_fails)
{
	if (fails < free_fails)
		return 0;
	unsigned shift = fails - free_fails;
	if (shift > 20)
		return t->o.max_ms;
	uint64_t d = (uint64_t)t->o.base_ms << shift;
	return d > t->o.max_ms ? t->o.max_ms : d;
}

int throttle_ask(throttle_t *t, const char *addr, const char *name, uint64_t now,
		 uint64_t *retry_msp)
{
	throttle_rec_t *a = table_find(t, &t->addrs, addr, now);
	if (a && a->fails + a->running >= t->o.addr_free) {
		/* Past the free failures: one check at a time, after the delay. */
		if (a->running || now < a->wait_until) {
			uint64_t left = a->wait_until > now ? a->wait_until - now : 0;
			*retry_msp = left ? left : t->o.base_ms;
			return THROTTLE_WAIT_ADDR;
		}
	}
	if (name && a && a->fails) {
		throttle_rec_t *nr = table_find(t, &t->names, name, now);
		if (nr && nr->fails >= t->o.name_free && now < nr->wait_until) {
			*retry_msp = nr->wait_until - now;
			return THROTTLE_WAIT_NAME;
		}
	}
	if (!a)
		a = table_add(&t->addrs, addr, now);
	if (a)
		a->running++;
	return THROTTLE_CHECK;
}

uint64_t throttle_done(throttle_t *t, const char *addr, const char *name, bool ok, uint64_t now)
{
	throttle_rec_t *a = table_find(t, &t->addrs, addr, now);
	if (a && a->running)
		a->running--;
	if (ok) {
		if (a && a->running == 0) {
			a->key[0] = '\0';
		} else if (a) {
			a->fails = 0;
			a->wait_until = 0;
		}
		return 0;
	}
	uint64_t wait = 0;
	if (!a)
		a = table_add(&t->addrs, addr, now);
	if (a) {
		a->fails++;
		a->last_ms = now;
		wait = delay_ms(t, a->fails, t->o.addr_free);
		a->wait_until = now + wait;
	}
	if (name) {
		throttle_rec_t *nr = table_find(t, &t->names, name, now);
		if (!nr)
			nr = table_add(&t->names, name, now);
		if (nr) {
			nr->fails++;
			nr->last_ms = now;
			nr->wait_until = now + delay_ms(t, nr->fails, t->o.name_free);
		}
	}
	return wait;
}

void throttle_abort(throttle_t *t, const char *addr, uint64_t now)
{
	throttle_rec_t *a = table_find(t, &t->addrs, addr, now);
	if (a && a->running)
		a->running--;
}

unsigned throttle_failures(const throttle_t *t, const char *addr)
{
	for (unsigned i = 0; i < t->addrs.n; i++) {
		const throttle_rec_t *r = &t->addrs.recs[i];
		if (r->key[0] && strcmp(r->key, addr) == 0)
			return r->fails;
	}
	return 0;
}
