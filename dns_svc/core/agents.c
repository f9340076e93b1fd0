// SPDX-License-Identifier: MIT
// Route propagation: connections, pending pushes, and per change counts.
#include "agents.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* A push awaiting its acknowledgement. */
typedef struct da_pending {
	int64_t version;    /* the newest pushed */
	uint64_t sent_us;   /* when it was pushed */
	uint64_t first_us;  /* the oldest push not acknowledged since (for the lag) */
} da_pending_t;

void da_init(dns_agents_t *a)
{
	memset(a, 0, sizeof(*a));
}

void da_deinit(dns_agents_t *a)
{
	u64map_deinit(&a->index);
}

void da_conn_init(da_conn_t *c, int64_t now_unix)
{
	*c = (da_conn_t){ .connected_unix = now_unix, .pending = U64MAP_INIT };
}

void da_conn_deinit(da_conn_t *c)
{
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&c->pending, &iter));)
		free(s->value);
	u64map_deinit(&c->pending);
}

void da_hello(da_conn_t *c, const lars_AgentHello *h)
{
	c->hello = true;
	c->agent_id = h->agent_id;
	snprintf(c->host_name, sizeof(c->host_name), "%s", h->host_name);
	c->caller = h->caller;
}

/* The index key of (version, route): a mix, checked against the slot. */
static uint64_t prop_key(int64_t version, int32_t modid, int32_t cmdid)
{
	uint64_t k = (uint64_t)version * 0x9e3779b97f4a7c15ull ^ u64map_key(modid, cmdid);
	return k ? k : 1;
}

static da_prop_t *prop_find(dns_agents_t *a, int64_t version, int32_t modid, int32_t cmdid)
{
	uintptr_t slot = (uintptr_t)u64map_get(&a->index, prop_key(version, modid, cmdid));
	if (!slot)
		return NULL;
	da_prop_t *p = &a->ring[slot - 1];
	return p->used && p->version == version && p->modid == modid && p->cmdid == cmdid ? p
														: NULL;
}

/* The change's counts, a new slot (the oldest reused) if it has none. */
static da_prop_t *prop_get(dns_agents_t *a, int64_t version, int32_t modid, int32_t cmdid,
			   int64_t now_unix)
{
	da_prop_t *p = prop_find(a, version, modid, cmdid);
	if (p)
		return p;
	p = &a->ring[a->next];
	if (p->used) {
		uint64_t old = prop_key(p->version, p->modid, p->cmdid);
		if ((uintptr_t)u64map_get(&a->index, old) == a->next + 1)
			u64map_del(&a->index, old);
	}
	*p = (da_prop_t){ .version = version, .modid = modid, .cmdid = cmdid,
			  .pushed_unix = now_unix, .used = true, .dirty = true };
	u64map_put(&a->index, prop_key(version, modid, cmdid), (void *)(uintptr_t)(a->next + 1));
	a->next = (a->next + 1) % DA_PROPS_MAX;
	return p;
}

void da_pushed(dns_agents_t *a, da_conn_t *c, int32_t modid, int32_t cmdid, int64_t version,
	       uint64_t now_us, int64_t now_unix)
{
	if (version <= 0)
		return; /* a route whose version is not known: nothing to track */
	da_prop_t *p = prop_get(a, version, modid, cmdid, now_unix);
	p->dirty = true;
	if (!c->hello) {
		p->no_ack++;
		return;
	}
	p->pushed++;
	uint64_t key = u64map_key(modid, cmdid);
	da_pending_t *w = u64map_get(&c->pending, key);
	if (!w) {
		w = xmalloc(sizeof(*w));
		w->first_us = now_us;
		u64map_put(&c->pending, key, w);
	}
	w->version = version;
	w->sent_us = now_us;
}

bool da_ack(dns_agents_t *a, da_conn_t *c, int32_t modid, int32_t cmdid, int64_t version,
	    uint64_t now_us, int64_t now_unix, uint64_t *latency_us)
{
	if (!c->hello)
		return false;
	c->acks++;
	c->last_ack_unix = now_unix;
	if (version > c->acked_version)
		c->acked_version = version;
	uint64_t key = u64map_key(modid, cmdid);
	da_pending_t *w = u64map_get(&c->pending, key);
	if (!w || version < w->version)
		return false; /* an answer's, or an older push's (a newer one is out) */
	u64map_del(&c->pending, key);
	*latency_us = now_us - w->sent_us;
	da_prop_t *p = prop_find(a, w->version, modid, cmdid);
	if (p) {
		p->acked++;
		if (*latency_us / 1000 > p->slowest_ms)
			p->slowest_ms = *latency_us / 1000;
		p->dirty = true;
	}
	free(w);
	return true;
}

uint64_t da_lag_ms(const da_conn_t *c, uint64_t now_us)
{
	uint64_t lag = 0;
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&c->pending, &iter));) {
		const da_pending_t *w = s->value;
		if (now_us - w->first_us > lag)
			lag = now_us - w->first_us;
	}
	return lag / 1000;
}

size_t da_take_dirty(dns_agents_t *a, da_prop_t *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < DA_PROPS_MAX && n < max; i++) {
		da_prop_t *p = &a->ring[i];
		if (p->used && p->dirty) {
			out[n++] = *p;
			p->dirty = false;
		}
	}
	return n;
}
