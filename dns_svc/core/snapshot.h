// SPDX-License-Identifier: MIT
// Immutable route snapshot: (modid, cmdid) -> sorted host array. Built off
// the loop (by the DB workers), swapped in by the loop, never changed after.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lars.pb.h"
#include "sbuf.h"

/** struct snap_entry - one host of one route, as loaded. */
typedef struct snap_entry {
	int32_t modid;
	int32_t cmdid;
	int32_t ip; /* wire form: a<<24|b<<16|c<<8|d */
	int32_t port;
	/* Traffic control, in wire form (omitted fields are 0): weight 0 is
	 * the default 100, joined_at 0 unless the route has slow start. */
	uint32_t weight;
	bool drain;
	int64_t joined_at;
	lars_RoutePolicy policy; /* the route's, the same in each of its entries */
} snap_entry_t;

typedef struct snap_route {
	int32_t modid;
	int32_t cmdid;
	uint32_t first;   /* index into ->hosts */
	uint32_t n_hosts;
	lars_RoutePolicy policy; /* wire form: all zero = the default, not sent */
	int64_t version; /* of its last change (route_change); 0 = not known */
} snap_route_t;

typedef struct snapshot {
	int64_t version;
	size_t n_routes;
	snap_route_t *routes; /* sorted by (modid, cmdid) */
	size_t n_hosts;
	lars_HostInfo *hosts; /* per route sorted by (ip unsigned, port) */
	size_t index_cap;     /* power of two */
	uint32_t *index;      /* route number + 1, 0 = empty */
	/* Each route's GetRouteResponse frame once encoded (request.c), or
	 * NULL; allocated at first use. The only part that changes after the
	 * snapshot is built: by the worker before it hands the snapshot over,
	 * by the loop after. */
	sbuf_t **frames;
	/* The same with GetRouteResponse.version, for agents that sent
	 * AgentHello (issue 20.3); NULL until first used. */
	sbuf_t **frames_v;
} snapshot_t;

/** struct snap_builder - collects entries, then makes a snapshot. */
typedef struct snap_builder {
	snap_entry_t *v;
	size_t n;
	size_t cap;
	bool sorted; /* entries arrived in order so far */
} snap_builder_t;

/** struct snap_keys - a list of (modid, cmdid), sorted and distinct once finished. */
typedef struct snap_keys {
	snap_entry_t *v; /* ip/port unused */
	size_t n;
	size_t cap;
} snap_keys_t;

void snap_builder_init(snap_builder_t *b);
void snap_builder_deinit(snap_builder_t *b);
/** snap_builder_add() - a host with the default weight, drain and policy. */
void snap_builder_add(snap_builder_t *b, int32_t modid, int32_t cmdid,
		      int32_t ip, int32_t port);
/**
 * snap_builder_add_host() - a host with its traffic-control fields in wire
 * form (@h: ip, port, weight, drain, joined_at) and its route's @policy
 * (NULL: the default).
 */
void snap_builder_add_host(snap_builder_t *b, int32_t modid, int32_t cmdid,
			   const lars_HostInfo *h, const lars_RoutePolicy *policy);
/** snap_policy_is_default() - @p sends nothing (GetRouteResponse.policy absent). */
bool snap_policy_is_default(const lars_RoutePolicy *p);
/** snapshot_build() - sort (if needed), drop duplicates; empties @b. */
snapshot_t *snapshot_build(snap_builder_t *b, int64_t version);
snapshot_t *snapshot_free(snapshot_t *s);

const snap_route_t *snapshot_find(const snapshot_t *s, int32_t modid, int32_t cmdid);
static inline const lars_HostInfo *snapshot_hosts(const snapshot_t *s,
						  const snap_route_t *r)
{
	return s->hosts + r->first;
}

/** snapshot_set_version() - the version of route (@modid, @cmdid), if @s has it. */
void snapshot_set_version(snapshot_t *s, int32_t modid, int32_t cmdid, int64_t version);

void snap_keys_add(snap_keys_t *k, int32_t modid, int32_t cmdid);
/** snap_keys_finish() - sort and drop duplicates. */
void snap_keys_finish(snap_keys_t *k);
void snap_keys_deinit(snap_keys_t *k);

/**
 * snapshot_diff() - keys whose host list differs between @old (may be NULL)
 * and @new, removed routes included, appended to @out in key order.
 * Restricted to @only (sorted) when it is not NULL.
 */
void snapshot_diff(const snapshot_t *old, const snapshot_t *new_,
		   const snap_keys_t *only, snap_keys_t *out);

/**
 * snapshot_patch() - @old with the routes of @keys replaced by the entries in
 * @b (which hold exactly those keys' hosts now; a key without entries is
 * removed). Linear in the size of @old. Empties @b.
 */
snapshot_t *snapshot_patch(const snapshot_t *old, const snap_keys_t *keys,
			   snap_builder_t *b, int64_t version);
