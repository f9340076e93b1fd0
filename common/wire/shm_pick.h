// SPDX-License-Identifier: MIT
// Picking a host from a route copied out of the agent's shared memory
// (issue 22), with the agent's rules (agent_svc/core/balancer.c): round
// robin over the idle hosts, or smooth weighted round robin when the route
// is weighted (slow start ramps a new host from 10 % to 100 %); a probe of
// an overloaded host once probe_num picks have gone by; drained hosts never;
// in panic, or when the agent is gone (fail-open), every non-drained host.
// The state is per client and per route: it lives in the caller.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm_snap.h"

enum { SHM_PICK_OK = 0, SHM_PICK_OVERLOAD = 1, SHM_PICK_NOEXIST = 2 };

typedef struct shm_pick {
	int32_t modid, cmdid;
	uint64_t gen;       /* the slot publication @cur belongs to */
	uint32_t rr, probe_rr, access;
	uint32_t skip;      /* weighted: rounds to skip at the start (the seed's) */
	int64_t *cur;       /* smooth weighted round robin's current weights (malloc'd) */
	uint32_t cur_cap;
} shm_pick_t;

/**
 * shm_slow_start_weight() - @w ramped for a host that joined at @joined_s
 * (unix seconds) on a route with @slow_start_s, at @wall_ms: 10 % at the
 * join, 100 % slow_start_s later, linear between, at least 1. Shared by the
 * agent's balancer and the clients, so both ramp a host alike.
 */
uint32_t shm_slow_start_weight(uint32_t w, uint32_t slow_start_s, int64_t joined_s,
				int64_t wall_ms);

/**
 * shm_pick_reset() - a fresh state for (@modid, @cmdid) (its weights'
 * memory kept), starting at turn @seed: clients that each pick a few times
 * (a tool run per call) spread over the hosts as the agent's one round
 * robin did, instead of all taking the first.
 */
void shm_pick_reset(shm_pick_t *p, int32_t modid, int32_t cmdid, uint32_t seed);
/** shm_pick_free() - free what the state holds. */
void shm_pick_free(shm_pick_t *p);

/**
 * shm_pick_host() - pick from @r's @hosts (as shm_read_route() copied them)
 * with @probe_num. @fail_open: the agent is gone, every non-drained host is
 * available. Return: SHM_PICK_OK with *@idx, SHM_PICK_OVERLOAD (every
 * available host overloaded, not a probe turn; or all drained),
 * SHM_PICK_NOEXIST (no hosts). A weighted route whose weights find no
 * memory is picked round robin.
 */
int shm_pick_host(shm_pick_t *p, const shm_route_t *r, const shm_host_t *hosts,
		  uint32_t probe_num, bool fail_open, int64_t wall_ms, size_t *idx);
