// SPDX-License-Identifier: MIT
// Immutable route snapshot.
#include "snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "u64map.h"
#include "xalloc.h"

static int key_cmp(int32_t am, int32_t ac, int32_t bm, int32_t bc)
{
	if (am != bm)
		return am < bm ? -1 : 1;
	if (ac != bc)
		return ac < bc ? -1 : 1;
	return 0;
}

static int entry_cmp(const snap_entry_t *a, const snap_entry_t *b)
{
	int c = key_cmp(a->modid, a->cmdid, b->modid, b->cmdid);
	if (c)
		return c;
	/* Unsigned ip order: what PostgreSQL's inet order gives for IPv4. */
	if (a->ip != b->ip)
		return (uint32_t)a->ip < (uint32_t)b->ip ? -1 : 1;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	return 0;
}

static int entry_qsort_cmp(const void *a, const void *b)
{
	return entry_cmp(a, b);
}

void snap_builder_init(snap_builder_t *b)
{
	*b = (snap_builder_t){ .sorted = true };
}

void snap_builder_deinit(snap_builder_t *b)
{
	free(b->v);
	snap_builder_init(b);
}

static void entries_push(snap_entry_t **v, size_t *n, size_t *cap, snap_entry_t e)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		*v = xreallocarray(*v, *cap, sizeof(**v));
	}
	(*v)[(*n)++] = e;
}

void snap_builder_add_host(snap_builder_t *b, int32_t modid, int32_t cmdid,
			   const lars_HostInfo *h, const lars_RoutePolicy *policy)
{
	snap_entry_t e = { .modid = modid, .cmdid = cmdid, .ip = h->ip, .port = h->port,
			   .weight = h->weight, .drain = h->drain, .joined_at = h->joined_at };
	if (policy)
		e.policy = *policy;
	if (b->n && entry_cmp(&b->v[b->n - 1], &e) >= 0)
		b->sorted = false;
	entries_push(&b->v, &b->n, &b->cap, e);
}

void snap_builder_add(snap_builder_t *b, int32_t modid, int32_t cmdid,
		      int32_t ip, int32_t port)
{
	lars_HostInfo h = { .ip = ip, .port = port };
	snap_builder_add_host(b, modid, cmdid, &h, NULL);
}

bool snap_policy_is_default(const lars_RoutePolicy *p)
{
	return !p->has_panic_threshold && p->max_ejection_percent == 0 && p->slow_start_s == 0;
}

static bool same_policy(const lars_RoutePolicy *a, const lars_RoutePolicy *b)
{
	return a->has_panic_threshold == b->has_panic_threshold &&
	       (!a->has_panic_threshold || a->panic_threshold == b->panic_threshold) &&
	       a->max_ejection_percent == b->max_ejection_percent &&
	       a->slow_start_s == b->slow_start_s;
}

/* The host of entry @e as lars-dns sends it. */
static lars_HostInfo entry_host(const snap_entry_t *e)
{
	return (lars_HostInfo){ .ip = e->ip, .port = e->port, .weight = e->weight,
				.drain = e->drain, .joined_at = e->joined_at };
}

static size_t index_slot(const snapshot_t *s, int32_t modid, int32_t cmdid)
{
	uint64_t k = u64map_key(modid, cmdid);
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return (size_t)k & (s->index_cap - 1);
}

static void snapshot_index(snapshot_t *s)
{
	s->index_cap = 16;
	while (s->index_cap < s->n_routes * 2)
		s->index_cap *= 2;
	s->index = xcalloc(s->index_cap, sizeof(*s->index));
	for (size_t i = 0; i < s->n_routes; i++) {
		size_t j = index_slot(s, s->routes[i].modid, s->routes[i].cmdid);
		while (s->index[j])
			j = (j + 1) & (s->index_cap - 1);
		s->index[j] = (uint32_t)i + 1;
	}
}

snapshot_t *snapshot_build(snap_builder_t *b, int64_t version)
{
	snapshot_t *s = xcalloc(1, sizeof(*s));
	s->version = version;
	if (!b->sorted)
		qsort(b->v, b->n, sizeof(*b->v), entry_qsort_cmp);
	s->hosts = xreallocarray(NULL, b->n ? b->n : 1, sizeof(*s->hosts));
	size_t cap_routes = 0;
	for (size_t i = 0; i < b->n; i++) {
		const snap_entry_t *e = &b->v[i];
		if (i && entry_cmp(&b->v[i - 1], e) == 0)
			continue; /* duplicate */
		snap_route_t *r = s->n_routes ? &s->routes[s->n_routes - 1] : NULL;
		if (!r || r->modid != e->modid || r->cmdid != e->cmdid) {
			if (s->n_routes == cap_routes) {
				cap_routes = cap_routes ? cap_routes * 2 : 64;
				s->routes = xreallocarray(s->routes, cap_routes, sizeof(*s->routes));
			}
			r = &s->routes[s->n_routes++];
			*r = (snap_route_t){ e->modid, e->cmdid, (uint32_t)s->n_hosts, 0, e->policy };
		}
		s->hosts[s->n_hosts++] = entry_host(e);
		r->n_hosts++;
	}
	snap_builder_deinit(b);
	snapshot_index(s);
	return s;
}

snapshot_t *snapshot_free(snapshot_t *s)
{
	if (s) {
		for (size_t i = 0; s->frames && i < s->n_routes; i++)
			sbuf_unref(s->frames[i]);
		for (size_t i = 0; s->frames_v && i < s->n_routes; i++)
			sbuf_unref(s->frames_v[i]);
		free(s->frames);
		free(s->frames_v);
		free(s->routes);
		free(s->hosts);
		free(s->index);
		free(s);
	}
	return NULL;
}

/* The position + 1 of route (@modid, @cmdid) in s->routes, 0 if absent. */
static uint32_t route_pos(const snapshot_t *s, int32_t modid, int32_t cmdid)
{
	if (!s)
		return 0;
	for (size_t j = index_slot(s, modid, cmdid);; j = (j + 1) & (s->index_cap - 1)) {
		uint32_t i = s->index[j];
		if (!i)
			return 0;
		const snap_route_t *r = &s->routes[i - 1];
		if (r->modid == modid && r->cmdid == cmdid)
			return i;
	}
}

const snap_route_t *snapshot_find(const snapshot_t *s, int32_t modid, int32_t cmdid)
{
	uint32_t i = route_pos(s, modid, cmdid);
	return i ? &s->routes[i - 1] : NULL;
}

void snapshot_set_version(snapshot_t *s, int32_t modid, int32_t cmdid, int64_t version)
{
	uint32_t i = route_pos(s, modid, cmdid);
	if (i)
		s->routes[i - 1].version = version;
}

void snap_keys_add(snap_keys_t *k, int32_t modid, int32_t cmdid)
{
	entries_push(&k->v, &k->n, &k->cap, (snap_entry_t){ modid, cmdid, 0, 0 });
}

void snap_keys_finish(snap_keys_t *k)
{
	qsort(k->v, k->n, sizeof(*k->v), entry_qsort_cmp);
	size_t n = 0;
	for (size_t i = 0; i < k->n; i++)
		if (!n || key_cmp(k->v[n - 1].modid, k->v[n - 1].cmdid,
				  k->v[i].modid, k->v[i].cmdid))
			k->v[n++] = k->v[i];
	k->n = n;
}

void snap_keys_deinit(snap_keys_t *k)
{
	free(k->v);
	*k = (snap_keys_t){ 0 };
}

static bool keys_has(const snap_keys_t *k, int32_t modid, int32_t cmdid)
{
	size_t lo = 0, hi = k->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(k->v[mid].modid, k->v[mid].cmdid, modid, cmdid);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Whether the two routes send the same frames: hosts (with their traffic
 * fields, compared field by field: the structs have padding), policy and
 * version (a version alone changed is pushed, for the agents' acks). */
static bool same_hosts(const snapshot_t *a, const snap_route_t *ra,
		       const snapshot_t *b, const snap_route_t *rb)
{
	if (ra->n_hosts != rb->n_hosts || !same_policy(&ra->policy, &rb->policy) ||
	    ra->version != rb->version)
		return false;
	const lars_HostInfo *ha = snapshot_hosts(a, ra), *hb = snapshot_hosts(b, rb);
	for (uint32_t i = 0; i < ra->n_hosts; i++)
		if (ha[i].ip != hb[i].ip || ha[i].port != hb[i].port ||
		    ha[i].weight != hb[i].weight || ha[i].drain != hb[i].drain ||
		    ha[i].joined_at != hb[i].joined_at)
			return false;
	return true;
}

void snapshot_diff(const snapshot_t *old, const snapshot_t *new_,
		   const snap_keys_t *only, snap_keys_t *out)
{
	size_t i = 0, j = 0;
	size_t no = old ? old->n_routes : 0, nn = new_ ? new_->n_routes : 0;

	while (i < no || j < nn) {
		const snap_route_t *a = i < no ? &old->routes[i] : NULL;
		const snap_route_t *b = j < nn ? &new_->routes[j] : NULL;
		int c = !a ? 1 : !b ? -1 : key_cmp(a->modid, a->cmdid, b->modid, b->cmdid);
		const snap_route_t *r = c <= 0 ? a : b;
		bool changed = c != 0 || !same_hosts(old, a, new_, b);
		if (changed && (!only || keys_has(only, r->modid, r->cmdid)))
			snap_keys_add(out, r->modid, r->cmdid);
		if (c <= 0)
			i++;
		if (c >= 0)
			j++;
	}
}

snapshot_t *snapshot_patch(const snapshot_t *old, const snap_keys_t *keys,
			   snap_builder_t *b, int64_t version)
{
	/*
	 * One merge over three sorted lists: the old routes, the changed keys and
	 * the new entries. Runs of unchanged routes are copied with one memcpy
	 * each, so a change costs little more than copying the arrays.
	 */
	if (!b->sorted)
		qsort(b->v, b->n, sizeof(*b->v), entry_qsort_cmp);
	size_t no = old ? old->n_routes : 0;
	snapshot_t *s = xcalloc(1, sizeof(*s));
	s->version = version;
	s->routes = xreallocarray(NULL, no + b->n + 1, sizeof(*s->routes));
	s->hosts = xreallocarray(NULL, (old ? old->n_hosts : 0) + b->n + 1, sizeof(*s->hosts));

	size_t i = 0, j = 0, k = 0;
	bool same_routes = true; /* no route appeared or vanished */
	while (i < no || j < b->n) {
		const snap_route_t *r = i < no ? &old->routes[i] : NULL;
		const snap_entry_t *e = j < b->n ? &b->v[j] : NULL;
		int c = !r ? 1 : !e ? -1 : key_cmp(r->modid, r->cmdid, e->modid, e->cmdid);
		if (c < 0) {
			/* Old routes before the next new entry: keep the unchanged. */
			while (k < keys->n && key_cmp(keys->v[k].modid, keys->v[k].cmdid,
						      r->modid, r->cmdid) < 0)
				k++;
			if (k < keys->n && key_cmp(keys->v[k].modid, keys->v[k].cmdid,
						   r->modid, r->cmdid) == 0) {
				i++; /* changed, and no hosts now: removed */
				same_routes = false;
				continue;
			}
			size_t run = i + 1; /* extend while unchanged and before e */
			while (run < no &&
			       (!e || key_cmp(old->routes[run].modid, old->routes[run].cmdid,
					      e->modid, e->cmdid) < 0) &&
			       !(k < keys->n && key_cmp(keys->v[k].modid, keys->v[k].cmdid,
							old->routes[run].modid,
							old->routes[run].cmdid) <= 0))
				run++;
			uint32_t from = old->routes[i].first;
			uint32_t to = old->routes[run - 1].first + old->routes[run - 1].n_hosts;
			memcpy(s->hosts + s->n_hosts, old->hosts + from, (to - from) * sizeof(*s->hosts));
			for (size_t x = i; x < run; x++) {
				snap_route_t nr = old->routes[x];
				nr.first = (uint32_t)(nr.first - from + s->n_hosts);
				s->routes[s->n_routes++] = nr;
			}
			s->n_hosts += to - from;
			i = run;
			continue;
		}
		if (c == 0)
			i++; /* replaced by the new entries */
		else
			same_routes = false;
		snap_route_t *nr = &s->routes[s->n_routes++];
		*nr = (snap_route_t){ e->modid, e->cmdid, (uint32_t)s->n_hosts, 0, e->policy };
		for (; j < b->n && b->v[j].modid == e->modid && b->v[j].cmdid == e->cmdid; j++) {
			if (nr->n_hosts && entry_cmp(&b->v[j - 1], &b->v[j]) == 0)
				continue; /* duplicate */
			s->hosts[s->n_hosts++] = entry_host(&b->v[j]);
			nr->n_hosts++;
		}
	}
	snap_builder_deinit(b);
	if (same_routes && old) {
		/* Same routes at the same positions: the old index still fits. */
		s->index_cap = old->index_cap;
		s->index = xreallocarray(NULL, old->index_cap, sizeof(*s->index));
		memcpy(s->index, old->index, old->index_cap * sizeof(*s->index));
	} else {
		snapshot_index(s);
	}
	return s;
}
