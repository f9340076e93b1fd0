// SPDX-License-Identifier: MIT
// The client's reader of the agent's shared memory (common/wire/shm_snap.c,
// shm_pick.c) over a hostile file: the input is the file. When the header
// passes, every key a slot names (and two fixed ones) is looked up and
// picked from, as lars_get_host() does. The reader must never read past
// the file, loop without end or hand out a host it was not given.
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "shm_pick.h"
#include "shm_snap.h"

static void lookup(const shm_view_t *v, int32_t modid, int32_t cmdid, shm_host_t *hosts,
		   shm_pick_t *p)
{
	shm_route_t r;
	if (shm_read_route(v, modid, cmdid, &r, hosts))
		return;
	if (r.n_hosts > v->max_hosts || r.modid != modid || r.cmdid != cmdid)
		__builtin_trap();
	shm_pick_reset(p, modid, cmdid, (uint32_t)modid);
	for (int k = 0; k < 4; k++) {
		size_t idx;
		if (shm_pick_host(p, &r, hosts, v->probe_num, k & 1, 0, &idx) == SHM_PICK_OK &&
		    (idx >= r.n_hosts || hosts[idx].drain))
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Aligned, as a mapping is, and exactly the input's size. */
	uint8_t *file = malloc(size ? size : 1);
	if (!file)
		return 0;
	memcpy(file, data, size);
	shm_view_t v;
	if (shm_view_open(&v, file, size) == 0) {
		shm_host_t *hosts = calloc(v.max_hosts ? v.max_hosts : 1, sizeof(*hosts));
		shm_pick_t p = { 0 };
		lookup(&v, 1, 1, hosts, &p);
		lookup(&v, 2, 1, hosts, &p);
		for (uint32_t i = 0; i < v.n_slots && i < 64; i++) {
			const shm_route_t *s =
				(const shm_route_t *)(file + v.slots_off + (size_t)i * v.slot_size);
			lookup(&v, s->modid, s->cmdid, hosts, &p);
		}
		shm_pick_free(&p);
		free(hosts);
	}
	free(file);
	return 0;
}
