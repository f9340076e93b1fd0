// SPDX-License-Identifier: MIT
// lars-agent's shared-memory snapshot (issue 22): its routes and each host's
// state in a file clients map read-only (common/wire/shm_snap.h), kept
// current from the core's changed keys every loop turn, with a heartbeat
// every second.
#pragma once

#include <stdint.h>

#include <uv.h>

#include "agent_core.h"

typedef struct agent_shm agent_shm_t;

typedef struct agent_shm_cfg {
	const char *path;     /* the file; its directory must be writable by us only */
	uint32_t max_routes;  /* slots */
	uint32_t max_hosts;   /* hosts a slot holds; a bigger route is left to UDP */
	uint32_t probe_num;
} agent_shm_cfg_t;

/**
 * ashm_open() - create the file (a new one renamed over the old, so clients
 * of a previous agent keep their mapping), publish every route @core holds
 * and keep it current. NULL on failure (logged; the agent serves UDP only).
 */
agent_shm_t *ashm_open(uv_loop_t *loop, const agent_shm_cfg_t *cfg, acore_t *core);
/** ashm_set_probe_num() - [loadbalance] probe_num after a reload. */
void ashm_set_probe_num(agent_shm_t *s, uint32_t probe_num);
/** ashm_flush() - publish the routes that changed now (the check handle does it every loop turn). */
void ashm_flush(agent_shm_t *s);
/** ashm_close() - stop updating and unlink the file (clients mapping it fail open). NULL is fine. */
void ashm_close(agent_shm_t *s);
