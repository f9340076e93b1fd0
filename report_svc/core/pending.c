// SPDX-License-Identifier: MIT
// Results waiting for the database, coalesced by key.
#include "pending.h"

#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "xalloc.h"

_Static_assert(REPORT_LAT_BUCKETS == MSG_LAT_BUCKETS, "latency buckets as on the wire");

/* A map starts small (one per agent, see agents.h) and doubles. */
#define PENDING_INITIAL 16

void pending_init(pending_t *p)
{
	memset(p, 0, sizeof(*p));
}

void pending_deinit(pending_t *p)
{
	free(p->v);
	free(p->index);
	free(p->bl);
	pending_init(p);
}

static size_t key_hash(const report_key_t *k)
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

static bool key_eq(const report_key_t *a, const report_key_t *b)
{
	return a->modid == b->modid && a->cmdid == b->cmdid && a->ip == b->ip &&
	       a->port == b->port && a->caller == b->caller;
}

static void index_insert(pending_t *p, size_t entry)
{
	size_t mask = p->index_cap - 1;
	size_t i = key_hash(&p->v[entry].key) & mask;
	while (p->index[i])
		i = (i + 1) & mask;
	p->index[i] = (uint32_t)entry + 1;
}

/* The entry for @key, created empty if new. */
static report_entry_t *pending_slot(pending_t *p, const report_key_t *key, uint64_t now_ms)
{
	if (p->index_cap) {
		size_t mask = p->index_cap - 1;
		for (size_t i = key_hash(key) & mask; p->index[i]; i = (i + 1) & mask) {
			report_entry_t *e = &p->v[p->index[i] - 1];
			if (key_eq(&e->key, key))
				return e;
		}
	}
	if ((p->n + 1) * 2 > p->index_cap) {
		free(p->index);
		p->index_cap = p->index_cap ? p->index_cap * 2 : 2 * PENDING_INITIAL;
		p->index = xcalloc(p->index_cap, sizeof(*p->index));
		for (size_t i = 0; i < p->n; i++)
			index_insert(p, i);
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : PENDING_INITIAL;
		p->v = xreallocarray(p->v, p->cap, sizeof(*p->v));
	}
	report_entry_t *e = &p->v[p->n];
	*e = (report_entry_t){ .key = *key, .first_ms = now_ms };
	index_insert(p, p->n++);
	if (!p->oldest_ms || now_ms < p->oldest_ms)
		p->oldest_ms = now_ms;
	return e;
}

/* @from's latency added to @to's. */
static void lat_add(report_minute_t *to, const report_minute_t *from)
{
	if (!from->lat_count)
		return;
	to->lat_count += from->lat_count;
	to->lat_sum_us += from->lat_sum_us;
	for (unsigned i = 0; i < REPORT_LAT_BUCKETS; i++)
		to->lat_buckets[i] += from->lat_buckets[i];
}

/* @from's counts (not its minute) added to @to's. */
static void minute_add(report_minute_t *to, const report_minute_t *from)
{
	to->succ += from->succ;
	to->err += from->err;
	lat_add(to, from);
}

/*
 * Counts of @in->minute. An entry keeps PENDING_MINUTES minutes apart, which
 * covers any normal flush delay; a longer backlog (database down) folds the
 * oldest minute into the next one, so memory stays per key and the sums stay
 * exact, only their minute gets coarser.
 */
static void add_minute(report_entry_t *e, const report_minute_t *in)
{
	for (unsigned i = 0; i < e->n_mins; i++) {
		if (e->mins[i].minute == in->minute) {
			minute_add(&e->mins[i], in);
			return;
		}
	}
	if (e->n_mins == PENDING_MINUTES) {
		/* Fold the oldest into the second oldest. */
		unsigned a = 0, b = 1;
		if (e->mins[b].minute < e->mins[a].minute)
			a = 1, b = 0;
		for (unsigned i = 2; i < PENDING_MINUTES; i++) {
			if (e->mins[i].minute < e->mins[a].minute) {
				b = a;
				a = i;
			} else if (e->mins[i].minute < e->mins[b].minute) {
				b = i;
			}
		}
		if (in->minute < e->mins[b].minute) {
			/* Older than all but one: it joins the oldest. */
			minute_add(&e->mins[a], in);
			return;
		}
		minute_add(&e->mins[b], &e->mins[a]);
		e->mins[a] = e->mins[--e->n_mins];
	}
	e->mins[e->n_mins++] = *in;
}

void pending_add(pending_t *p, const report_key_t *key, uint32_t succ, uint32_t err,
		 bool overload, uint32_t ts, uint64_t rx_us, uint64_t now_ms)
{
	report_add_t a = { .succ = succ, .err = err, .st_succ = succ, .st_err = err,
			   .overload = overload };
	pending_add_full(p, key, &a, ts, rx_us, now_ms);
}

/**
 * pending_add_full() - fold one result in: @a's history counts (and latency,
 * when it has some) into the minute of @ts, its status into the entry if
 * @rx_us is the latest received.
 */
void pending_add_full(pending_t *p, const report_key_t *key, const report_add_t *a,
		      uint32_t ts, uint64_t rx_us, uint64_t now_ms)
{
	report_entry_t *e = pending_slot(p, key, now_ms);
	report_minute_t m = { .minute = ts - ts % 60, .succ = a->succ, .err = a->err };
	if (a->lat_count && a->lat_buckets) {
		m.lat_count = a->lat_count;
		m.lat_sum_us = a->lat_sum_us;
		memcpy(m.lat_buckets, a->lat_buckets, sizeof(m.lat_buckets));
	}
	add_minute(e, &m);
	/* The latest received wins: a claimed time cannot pin a status. */
	if (rx_us >= e->rx_us) {
		e->succ = a->st_succ;
		e->err = a->st_err;
		e->overload = a->overload;
		e->ts = ts;
		e->rx_us = rx_us;
	}
	e->n_results++;
	p->n_results++;
}

void pending_merge(pending_t *p, const report_entry_t *in)
{
	report_entry_t *e = pending_slot(p, &in->key, in->first_ms);
	for (unsigned i = 0; i < in->n_mins; i++)
		add_minute(e, &in->mins[i]);
	if (in->rx_us >= e->rx_us) {
		e->succ = in->succ;
		e->err = in->err;
		e->overload = in->overload;
		e->ts = in->ts;
		e->rx_us = in->rx_us;
	}
	e->n_results += in->n_results;
	p->n_results += in->n_results;
	if (in->first_ms < e->first_ms)
		e->first_ms = in->first_ms;
	if (in->first_ms < p->oldest_ms)
		p->oldest_ms = in->first_ms;
}

/* The map becomes the backlog (no copy); the map starts empty. */
static void pending_to_backlog(pending_t *p)
{
	free(p->bl);
	free(p->index);
	p->bl = p->v;
	p->bl_n = p->n;
	p->bl_pos = 0;
	p->bl_oldest_ms = p->oldest_ms;
	p->v = NULL;
	p->n = p->cap = 0;
	p->index = NULL;
	p->index_cap = 0;
	p->oldest_ms = 0;
}

report_entry_t *pending_take_batch(pending_t *p, size_t max, size_t *np,
				   uint64_t *n_resultsp)
{
	*np = 0;
	*n_resultsp = 0;
	if (p->bl_pos == p->bl_n) {
		if (p->n == 0)
			return NULL;
		pending_to_backlog(p);
	}
	size_t k = p->bl_n - p->bl_pos;
	if (max < 1)
		max = 1;
	if (k > max)
		k = max;
	report_entry_t *v = xreallocarray(NULL, k, sizeof(*v));
	memcpy(v, p->bl + p->bl_pos, k * sizeof(*v));
	p->bl_pos += k;
	uint64_t results = 0;
	for (size_t i = 0; i < k; i++)
		results += v[i].n_results;
	p->n_results -= results;
	if (p->bl_pos == p->bl_n) {
		free(p->bl);
		p->bl = NULL;
		p->bl_n = p->bl_pos = 0;
		p->bl_oldest_ms = 0;
	}
	*np = k;
	*n_resultsp = results;
	return v;
}

report_entry_t *pending_take(pending_t *p, size_t *np, uint64_t *n_resultsp)
{
	size_t rest = p->bl_n - p->bl_pos;
	report_entry_t *v;
	if (rest == 0) {
		v = p->v;
		*np = p->n;
		free(p->index);
	} else {
		*np = rest + p->n;
		v = xreallocarray(NULL, *np ? *np : 1, sizeof(*v));
		memcpy(v, p->bl + p->bl_pos, rest * sizeof(*v));
		if (p->n)
			memcpy(v + rest, p->v, p->n * sizeof(*v));
		free(p->v);
		free(p->index);
		free(p->bl);
	}
	*n_resultsp = p->n_results;
	pending_init(p);
	return v;
}

/* ---- batch size ---- */

void batch_cap_init(batch_cap_t *c, size_t max)
{
	c->max = max ? max : 1;
	c->cur = c->max;
	c->n_ok = 0;
}

size_t batch_cap_size(const batch_cap_t *c, size_t pending)
{
	return pending < c->cur ? pending : c->cur;
}

bool batch_cap_done(batch_cap_t *c, size_t n, enum batch_outcome outcome, size_t pending)
{
	switch (outcome) {
	case BATCH_STORED:
		if (pending == 0) {
			c->cur = c->max;
			c->n_ok = 0;
		} else if (n >= c->cur && c->cur < c->max && ++c->n_ok >= BATCH_CAP_GROW_AFTER) {
			c->cur = c->cur > c->max / 2 ? c->max : c->cur * 2;
			c->n_ok = 0;
		}
		return false;
	case BATCH_TIMED_OUT:
		c->n_ok = 0;
		if (n <= 1) {
			c->cur = 1;
			return true; /* one key too slow: the database is, wait */
		}
		/* Halves of what timed out (never larger than the cap now). */
		if (n / 2 < c->cur)
			c->cur = n / 2;
		return false;
	case BATCH_CANCELLED:
		return true; /* says nothing about the size */
	case BATCH_FAILED:
	default:
		c->n_ok = 0;
		return true;
	}
}
