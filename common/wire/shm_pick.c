// SPDX-License-Identifier: MIT
// Picking from a shared-memory route (shm_pick.h).
#include "shm_pick.h"

#include <stdlib.h>
#include <string.h>

uint32_t shm_slow_start_weight(uint32_t w, uint32_t slow_start_s, int64_t joined_s,
				int64_t wall_ms)
{
	if (!slow_start_s || !joined_s)
		return w;
	int64_t ss_ms = (int64_t)slow_start_s * 1000;
	int64_t age = wall_ms - joined_s * 1000;
	if (age >= ss_ms)
		return w;
	if (age < 0)
		age = 0;
	uint64_t ew = (uint64_t)w * (uint64_t)(100 + 900 * age / ss_ms) / 1000;
	return ew ? (uint32_t)ew : 1;
}

void shm_pick_reset(shm_pick_t *p, int32_t modid, int32_t cmdid, uint32_t seed)
{
	p->modid = modid;
	p->cmdid = cmdid;
	p->gen = 0;
	p->rr = p->probe_rr = p->skip = seed;
	p->access = 0;
	if (p->cur)
		memset(p->cur, 0, sizeof(*p->cur) * p->cur_cap);
}

void shm_pick_free(shm_pick_t *p)
{
	free(p->cur);
	p->cur = NULL;
	p->cur_cap = 0;
}

/* Room for @n current weights (zeroed when new). false: none (no memory). */
static bool cur_room(shm_pick_t *p, size_t n)
{
	if (n <= p->cur_cap)
		return true;
	int64_t *v = realloc(p->cur, n * sizeof(*v));
	if (!v)
		return false;
	memset(v + p->cur_cap, 0, (n - p->cur_cap) * sizeof(*v));
	p->cur = v;
	p->cur_cap = (uint32_t)n;
	return true;
}

/* Whether host @h is a candidate: not drained, and in the state asked for. */
static bool candidate(const shm_host_t *h, bool overloaded, bool any_state)
{
	return !h->drain && (any_state || (h->state == SHM_HOST_OVERLOADED) == overloaded);
}

/* The (@turn mod m)-th of the m candidates, in order; -1 if there is none. */
static long nth_from(const shm_host_t *h, size_t n, uint32_t turn, bool overloaded,
		     bool any_state)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		m += candidate(&h[i], overloaded, any_state);
	if (m == 0)
		return -1;
	size_t k = turn % m;
	for (size_t i = 0; i < n; i++)
		if (candidate(&h[i], overloaded, any_state) && k-- == 0)
			return (long)i;
	return -1;
}

/* Smooth weighted round robin (nginx's) over the candidates. */
static long swrr(shm_pick_t *p, const shm_route_t *r, const shm_host_t *h, bool any_state,
		 int64_t wall_ms)
{
	int64_t total = 0;
	long best = -1;
	for (size_t i = 0; i < r->n_hosts; i++) {
		if (h[i].drain || (!any_state && h[i].state != SHM_HOST_IDLE))
			continue;
		int64_t w = shm_slow_start_weight(h[i].weight ? h[i].weight : 100,
						   r->slow_start_s, h[i].joined_at, wall_ms);
		p->cur[i] += w;
		total += w;
		if (best < 0 || p->cur[i] > p->cur[best])
			best = (long)i;
	}
	if (best >= 0)
		p->cur[best] -= total;
	return best;
}

int shm_pick_host(shm_pick_t *p, const shm_route_t *r, const shm_host_t *hosts,
		  uint32_t probe_num, bool fail_open, int64_t wall_ms, size_t *idx)
{
	size_t n = r->n_hosts;
	if (n == 0)
		return SHM_PICK_NOEXIST;
	if (p->gen != r->gen) { /* hosts may have changed: the weights start over */
		if (p->cur)
			memset(p->cur, 0, sizeof(*p->cur) * p->cur_cap);
		p->gen = r->gen;
	}
	bool weighted = (r->flags & SHM_ROUTE_WEIGHTED) && cur_room(p, n);
	if (weighted && p->skip) { /* the seed's place in the weighted sequence */
		for (uint32_t k = p->skip % (uint32_t)n; k > 0; k--)
			(void)swrr(p, r, hosts, fail_open || (r->flags & SHM_ROUTE_PANIC), wall_ms);
		p->skip = 0;
	}
	bool any = fail_open || (r->flags & SHM_ROUTE_PANIC);
	bool live_overload = !any && nth_from(hosts, n, 0, true, false) >= 0;
	bool live_idle = nth_from(hosts, n, 0, false, any) >= 0;
	long i;
	if (!live_idle && !live_overload)
		return SHM_PICK_OVERLOAD; /* every host drained */
	if (live_overload && p->access >= probe_num) {
		p->access = 0;
		i = nth_from(hosts, n, p->probe_rr++, true, false); /* a probe */
	} else if (!live_idle) {
		p->access++;
		return SHM_PICK_OVERLOAD;
	} else {
		if (live_overload)
			p->access++;
		i = weighted ? swrr(p, r, hosts, any, wall_ms) : nth_from(hosts, n, p->rr++, false, any);
	}
	if (i < 0)
		return SHM_PICK_OVERLOAD;
	*idx = (size_t)i;
	return SHM_PICK_OK;
}
