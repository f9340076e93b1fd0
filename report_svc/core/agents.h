// SPDX-License-Identifier: MIT
// lars-reporter's exactly-once bookkeeping for acknowledged agents (those
// that send agent_id and seq): per agent the seq known committed, the
// largest seq taken in, its results waiting (a pending map of its own) and
// whether a batch of it is in flight. No libuv, no clock: callers pass now.
//
// DESIGN: a message of an agent is taken in only if its seq is above every
// seq taken in before (it is new); one at or below the committed seq is
// acknowledged at once and not applied; one in between is held already
// (waiting or in flight) and is acknowledged with that batch. An agent's
// results wait in its own map, and the whole map goes into one batch (never
// split), and only while no batch of the agent is in flight: agents with
// results and nothing in flight wait on a ready queue, oldest first. A batch
// that comes back unstored gives its part back to the agent (merged with
// what arrived meanwhile, its smallest seq kept); one stored sets the
// committed seq; one the database dropped (another instance had stored its
// smallest seq) also drops what the agent sent meanwhile, which the agent
// still holds unacknowledged and sends again, so nothing is applied twice
// and nothing is lost. An agent with nothing waiting or in flight is
// forgotten after a while (agents_sweep): the table in PostgreSQL still
// guards its messages.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pending.h"
#include "u64map.h"

typedef struct rep_agent {
	uint64_t id;
	int32_t caller;     /* of its latest message (wire form) */
	uint64_t committed; /* every message up to this one is stored */
	uint64_t accepted;  /* the largest seq taken in, >= committed */
	uint64_t min_seq;   /* the smallest seq in ->pending, 0 when empty */
	pending_t pending;  /* its results waiting, not in flight */
	bool in_flight;     /* a batch of it is being stored */
	bool ready;         /* on the ready queue */
	uint64_t first_ms;  /* when the oldest result in ->pending arrived */
	uint64_t last_ms;   /* its latest message */
} rep_agent_t;

typedef struct rep_agents {
	u64map_t map; /* agent_id -> rep_agent_t */
	rep_agent_t **ring; /* the ready queue */
	size_t r_head, r_n, r_cap;
	size_t keys;      /* in the agents' maps (not in flight) */
	uint64_t results; /* folded into those */
	uint64_t last_sweep_ms;
} rep_agents_t;

/** enum agent_admit - what a message of an acknowledged agent is. */
enum agent_admit {
	AGENT_NEW,       /* take its results in (agents_add) */
	AGENT_HELD,      /* taken in already, waiting or in flight: not applied */
	AGENT_COMMITTED, /* stored already: not applied, acknowledge at once */
};

/* An agent idle this long (nothing waiting or in flight) is forgotten. */
#define AGENTS_IDLE_MS (10 * 60 * 1000)
/* Beyond this many agents known, idle ones are forgotten at the next sweep. */
#define AGENTS_MAX 200000
/* Sweeps at most this often. */
#define AGENTS_SWEEP_MS 60000

void agents_init(rep_agents_t *ag);
void agents_deinit(rep_agents_t *ag);

enum agent_admit agents_admit(rep_agents_t *ag, uint64_t id, uint64_t seq, int32_t caller,
			      uint64_t now_ms, rep_agent_t **ap);
void agents_add(rep_agents_t *ag, rep_agent_t *a, const report_key_t *key,
		const report_add_t *add, uint32_t ts, uint64_t rx_us, uint64_t now_ms);

/** agents_ready() - agents whose messages can go into a batch now (some
 * may carry no result: a part of 0 keys still stores their seq). */
static inline size_t agents_ready(const rep_agents_t *ag)
{
	return ag->r_n;
}

/** agents_head() - the agent that goes next (oldest results first), or NULL. */
static inline rep_agent_t *agents_head(const rep_agents_t *ag)
{
	return ag->r_n ? ag->ring[ag->r_head] : NULL;
}

void agents_take_head(rep_agents_t *ag, report_entry_t **vp, size_t *np, size_t *capp,
		      report_agent_seq_t *out);
void agents_back(rep_agents_t *ag, const report_agent_seq_t *s, const report_entry_t *v,
		 bool stored, uint64_t now_ms);
size_t agents_sweep(rep_agents_t *ag, uint64_t now_ms);
