// SPDX-License-Identifier: MIT
// Route propagation (issue 20.3): who each connection is (AgentHello), which
// pushed route versions it has not acknowledged yet, and per pushed change
// (version, route) how many agents got it, acknowledged it, and how long the
// slowest took. No libuv: every call takes the clock (monotonic microseconds
// and wall seconds).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lars.pb.h"
#include "u64map.h"

/* The changes whose propagation is kept in memory (the newest). */
#define DA_PROPS_MAX 4096

/** struct da_conn - one lars-dns connection, as propagation sees it. */
typedef struct da_conn {
	bool hello;               /* sent AgentHello: ours, acknowledges routes */
	uint64_t agent_id;
	char host_name[65];
	int32_t caller;
	int64_t connected_unix;   /* wall seconds */
	int64_t acked_version;    /* the newest version it acknowledged, 0 = none */
	int64_t last_ack_unix;    /* 0 = never */
	uint64_t acks;
	u64map_t pending;         /* route key -> da_pending_t: pushed, not acknowledged */
} da_conn_t;

/** struct da_prop - the propagation of one pushed change. */
typedef struct da_prop {
	int64_t version;
	int32_t modid, cmdid;
	uint32_t pushed;   /* to agents that acknowledge (ours) */
	uint32_t acked;
	uint32_t no_ack;   /* to original agents, which never acknowledge */
	uint64_t slowest_ms; /* push -> acknowledgement, the slowest so far */
	int64_t pushed_unix; /* the first push */
	bool dirty;        /* changed since da_take_dirty() */
	bool used;
} da_prop_t;

typedef struct dns_agents {
	da_prop_t ring[DA_PROPS_MAX]; /* the newest changes; the oldest reused */
	size_t next;
	u64map_t index;               /* da_prop_key() -> ring slot + 1 */
} dns_agents_t;

void da_init(dns_agents_t *a);
void da_deinit(dns_agents_t *a);

void da_conn_init(da_conn_t *c, int64_t now_unix);
void da_conn_deinit(da_conn_t *c);
/** da_hello() - @c said who it is. */
void da_hello(da_conn_t *c, const lars_AgentHello *h);

/**
 * da_pushed() - route (@modid, @cmdid) at @version went to @c in a push:
 * counted for the change, and awaited from @c if it acknowledges.
 */
void da_pushed(dns_agents_t *a, da_conn_t *c, int32_t modid, int32_t cmdid, int64_t version,
	       uint64_t now_us, int64_t now_unix);
/**
 * da_ack() - @c acknowledged @version of (@modid, @cmdid).
 * Return: true with *@latency_us when it answered a push (measured), false
 * for an ack of an answer, a stale version, or from a connection without
 * AgentHello.
 */
bool da_ack(dns_agents_t *a, da_conn_t *c, int32_t modid, int32_t cmdid, int64_t version,
	    uint64_t now_us, int64_t now_unix, uint64_t *latency_us);

/** da_lag_ms() - how long @c's oldest unacknowledged push has waited (0: none). */
uint64_t da_lag_ms(const da_conn_t *c, uint64_t now_us);
static inline size_t da_pending(const da_conn_t *c)
{
	return c->pending.n;
}

/** da_take_dirty() - copy up to @max changes updated since the last call; clears them. */
size_t da_take_dirty(dns_agents_t *a, da_prop_t *out, size_t max);
