// SPDX-License-Identifier: MIT
// lars-reporter's exactly-once bookkeeping for acknowledged agents.
#include "agents.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

void agents_init(rep_agents_t *ag)
{
	*ag = (rep_agents_t){ .map = U64MAP_INIT };
}

/** agents_deinit() - forget every agent and what it has waiting. */
void agents_deinit(rep_agents_t *ag)
{
	size_t it = 0;
	u64map_slot_t *s;
	while ((s = u64map_next(&ag->map, &it))) {
		rep_agent_t *a = s->value;
		pending_deinit(&a->pending);
		free(a);
	}
	u64map_deinit(&ag->map);
	free(ag->ring);
	agents_init(ag);
}

static void ring_push(rep_agents_t *ag, rep_agent_t *a)
{
	if (ag->r_n == ag->r_cap) {
		size_t cap = ag->r_cap ? 2 * ag->r_cap : 64;
		rep_agent_t **r = xreallocarray(NULL, cap, sizeof(*r));
		for (size_t i = 0; i < ag->r_n; i++)
			r[i] = ag->ring[(ag->r_head + i) % ag->r_cap];
		free(ag->ring);
		ag->ring = r;
		ag->r_cap = cap;
		ag->r_head = 0;
	}
	ag->ring[(ag->r_head + ag->r_n++) % ag->r_cap] = a;
	a->ready = true;
}

/* On the ready queue if it has messages taken in (results, or a message
 * without any: its seq is stored too) and nothing in flight. */
static void agent_maybe_ready(rep_agents_t *ag, rep_agent_t *a)
{
	if (!a->ready && !a->in_flight && (pending_keys(&a->pending) || a->min_seq))
		ring_push(ag, a);
}

/**
 * agents_admit() - message @seq of agent @id (from @caller) arrived at
 * @now_ms. *@ap gets the agent (created if new). Return: AGENT_NEW (the
 * caller adds its results with agents_add()), AGENT_HELD or AGENT_COMMITTED
 * (not applied; for COMMITTED acknowledge (*@ap)->committed at once).
 */
enum agent_admit agents_admit(rep_agents_t *ag, uint64_t id, uint64_t seq, int32_t caller,
			      uint64_t now_ms, rep_agent_t **ap)
{
	rep_agent_t *a = u64map_get(&ag->map, id);
	if (!a) {
		a = xcalloc(1, sizeof(*a));
		a->id = id;
		pending_init(&a->pending);
		u64map_put(&ag->map, id, a);
	}
	*ap = a;
	a->last_ms = now_ms;
	a->caller = caller;
	if (seq <= a->committed)
		return AGENT_COMMITTED;
	if (seq <= a->accepted)
		return AGENT_HELD;
	a->accepted = seq;
	if (!a->min_seq)
		a->min_seq = seq;
	agent_maybe_ready(ag, a); /* even without results: its seq is stored */
	return AGENT_NEW;
}

/** agents_add() - one result of a message agents_admit() took in, into @a's map. */
void agents_add(rep_agents_t *ag, rep_agent_t *a, const report_key_t *key,
		const report_add_t *add, uint32_t ts, uint64_t rx_us, uint64_t now_ms)
{
	size_t before = pending_keys(&a->pending);
	if (!before)
		a->first_ms = now_ms;
	pending_add_full(&a->pending, key, add, ts, rx_us, now_ms);
	ag->keys += pending_keys(&a->pending) - before;
	ag->results++;
	agent_maybe_ready(ag, a);
}

/**
 * agents_take_head() - the first ready agent's whole map appended to the
 * array *@vp (*@np entries, room for *@capp), its part described in @out;
 * the agent is in flight until agents_back().
 */
void agents_take_head(rep_agents_t *ag, report_entry_t **vp, size_t *np, size_t *capp,
		      report_agent_seq_t *out)
{
	rep_agent_t *a = ag->ring[ag->r_head];
	ag->r_head = (ag->r_head + 1) % ag->r_cap;
	ag->r_n--;
	a->ready = false;
	size_t k;
	uint64_t results;
	report_entry_t *e = pending_take(&a->pending, &k, &results);
	if (*np + k > *capp) {
		*capp = *np + k;
		*vp = xreallocarray(*vp, *capp ? *capp : 1, sizeof(**vp));
	}
	if (k)
		memcpy(*vp + *np, e, k * sizeof(*e));
	free(e);
	*out = (report_agent_seq_t){ .agent_id = a->id, .caller = a->caller,
				     .min_seq = a->min_seq, .max_seq = a->accepted,
				     .first = *np, .n = k, .n_results = results };
	*np += k;
	ag->keys -= k;
	ag->results -= results;
	a->min_seq = 0;
	a->in_flight = true;
}

/* Drop what @a has waiting (the database refused a batch of it as stored). */
static void agent_discard(rep_agents_t *ag, rep_agent_t *a)
{
	ag->keys -= pending_keys(&a->pending);
	ag->results -= a->pending.n_results;
	pending_deinit(&a->pending);
	a->min_seq = 0;
}

/**
 * agents_back() - the part @s (entries in @v, indexed as in the batch) of a
 * batch came back at @now_ms. @stored: committed, @s->stored and
 * @s->dropped say how; else it was not written and its results wait again.
 */
void agents_back(rep_agents_t *ag, const report_agent_seq_t *s, const report_entry_t *v,
		 bool stored, uint64_t now_ms)
{
	rep_agent_t *a = u64map_get(&ag->map, s->agent_id);
	if (!a) /* cannot happen: an agent in flight is never forgotten */
		return;
	a->in_flight = false;
	a->last_ms = now_ms;
	if (stored) {
		if (s->dropped) {
			/* Another instance stored some of it: the agent sends
			 * again what is above s->stored, this included. */
			agent_discard(ag, a);
			a->committed = s->stored;
			a->accepted = s->stored;
		} else if (s->stored > a->committed) {
			a->committed = s->stored;
			if (a->accepted < a->committed)
				a->accepted = a->committed;
		}
	} else {
		size_t before = pending_keys(&a->pending);
		for (size_t i = 0; i < s->n; i++)
			pending_merge(&a->pending, &v[s->first + i]);
		ag->keys += pending_keys(&a->pending) - before;
		ag->results += s->n_results;
		if (!a->min_seq || s->min_seq < a->min_seq)
			a->min_seq = s->min_seq;
		for (size_t i = 0; i < s->n; i++)
			if (!before && i == 0)
				a->first_ms = v[s->first].first_ms;
			else if (v[s->first + i].first_ms < a->first_ms)
				a->first_ms = v[s->first + i].first_ms;
	}
	agent_maybe_ready(ag, a);
}

/**
 * agents_sweep() - at most every AGENTS_SWEEP_MS (every second while more
 * than AGENTS_MAX are known): forget the agents with
 * nothing waiting or in flight whose last message is AGENTS_IDLE_MS old,
 * or any such agent while more than AGENTS_MAX are known.
 * Return: the agents forgotten.
 */
size_t agents_sweep(rep_agents_t *ag, uint64_t now_ms)
{
	bool crowded = ag->map.n > AGENTS_MAX;
	if (ag->last_sweep_ms &&
	    now_ms - ag->last_sweep_ms < (crowded ? 1000 : AGENTS_SWEEP_MS))
		return 0;
	ag->last_sweep_ms = now_ms ? now_ms : 1;
	uint64_t *gone = NULL;
	size_t n = 0, cap = 0, it = 0;
	u64map_slot_t *s;
	while ((s = u64map_next(&ag->map, &it))) {
		rep_agent_t *a = s->value;
		if (a->in_flight || a->ready || pending_keys(&a->pending) || a->min_seq)
			continue;
		if (!crowded && now_ms - a->last_ms < AGENTS_IDLE_MS)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			gone = xreallocarray(gone, cap, sizeof(*gone));
		}
		gone[n++] = a->id;
	}
	for (size_t i = 0; i < n; i++) {
		rep_agent_t *a = u64map_del(&ag->map, gone[i]);
		pending_deinit(&a->pending);
		free(a);
	}
	free(gone);
	return n;
}
