// SPDX-License-Identifier: MIT
// The route service's data path: entries from the input build a snapshot,
// more of the input patches it; the patch must equal a full rebuild and the
// diff must name exactly the changed keys. Then requests (TCP frames from
// the rest of the input) are answered from it as lars-dns does.
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "snapshot.h"

static void take_entries(const uint8_t **data, size_t *size, snap_builder_t *b, size_t max)
{
	/* 4 bytes per entry: small keys so they collide, hosts from the rest. */
	while (*size >= 4 && max--) {
		const uint8_t *p = *data;
		snap_builder_add(b, p[0] & 7, p[1] & 3, (int32_t)(0x7f000000u | p[2]), p[3] & 7);
		*data += 4;
		*size -= 4;
	}
}

static void same(const snapshot_t *a, const snapshot_t *b)
{
	if (a->n_routes != b->n_routes || a->n_hosts != b->n_hosts ||
	    memcmp(a->routes, b->routes, a->n_routes * sizeof(*a->routes)) ||
	    memcmp(a->hosts, b->hosts, a->n_hosts * sizeof(*a->hosts)))
		__builtin_trap();
	for (size_t i = 0; i < a->n_routes; i++)
		if (snapshot_find(b, a->routes[i].modid, a->routes[i].cmdid) == NULL)
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t n_old = data[0] % 32, n_keys = data[1] % 8;
	data += 2;
	size -= 2;
	snap_builder_t b;
	snap_builder_init(&b);
	take_entries(&data, &size, &b, n_old);
	/* Keep a copy of the old entries to rebuild the expected result. */
	snap_entry_t old_entries[32];
	size_t n_old_entries = b.n;
	memcpy(old_entries, b.v, b.n * sizeof(*b.v));
	snapshot_t *old = snapshot_build(&b, 1);

	snap_keys_t keys = { 0 };
	for (size_t i = 0; i < n_keys && size >= 1; i++) {
		snap_keys_add(&keys, data[0] & 7, (data[0] >> 3) & 3);
		data++;
		size--;
	}
	snap_keys_finish(&keys);
	snap_builder_t changes, expect;
	snap_builder_init(&changes);
	snap_builder_init(&expect);
	snap_builder_t raw;
	snap_builder_init(&raw);
	take_entries(&data, &size, &raw, 16);
	/* Only entries of changed keys belong to a patch. */
	for (size_t i = 0; i < raw.n; i++) {
		snap_keys_t one = { 0 };
		bool in = false;
		for (size_t k = 0; k < keys.n; k++)
			in |= keys.v[k].modid == raw.v[i].modid && keys.v[k].cmdid == raw.v[i].cmdid;
		(void)one;
		if (in) {
			snap_builder_add(&changes, raw.v[i].modid, raw.v[i].cmdid, raw.v[i].ip, raw.v[i].port);
			snap_builder_add(&expect, raw.v[i].modid, raw.v[i].cmdid, raw.v[i].ip, raw.v[i].port);
		}
	}
	snap_builder_deinit(&raw);
	for (size_t i = 0; i < n_old_entries; i++) {
		bool in = false;
		for (size_t k = 0; k < keys.n; k++)
			in |= keys.v[k].modid == old_entries[i].modid && keys.v[k].cmdid == old_entries[i].cmdid;
		if (!in)
			snap_builder_add(&expect, old_entries[i].modid, old_entries[i].cmdid,
					 old_entries[i].ip, old_entries[i].port);
	}
	snapshot_t *patched = snapshot_patch(old, &keys, &changes, 2);
	snapshot_t *rebuilt = snapshot_build(&expect, 2);
	same(rebuilt, patched);
	snap_keys_t diff = { 0 };
	snapshot_diff(old, patched, &keys, &diff);
	for (size_t i = 0; i < diff.n; i++) {
		const snap_route_t *a = snapshot_find(old, diff.v[i].modid, diff.v[i].cmdid);
		const snap_route_t *c = snapshot_find(patched, diff.v[i].modid, diff.v[i].cmdid);
		if (a && c && a->n_hosts == c->n_hosts &&
		    !memcmp(snapshot_hosts(old, a), snapshot_hosts(patched, c), a->n_hosts * 8))
			__builtin_trap(); /* listed but unchanged */
	}

	/* Requests from the rest, answered from the patched snapshot. */
	frame_idset_t ids;
	frame_idset_clear(&ids);
	frame_idset_add(&ids, LARS_ID_GET_ROUTE_REQ);
	frame_buf_t fb;
	frame_buf_init(&fb, 4096, &ids);
	uint8_t *dst;
	size_t room;
	if (frame_buf_space(&fb, &dst, &room) == 0) {
		size_t k = size < room ? size : room;
		memcpy(dst, data, k);
		frame_buf_commit(&fb, k);
		frame_hdr_t hdr;
		const uint8_t *body;
		while (frame_buf_next(&fb, &hdr, &body) == FRAME_OK) {
			lars_GetRouteRequest q = lars_GetRouteRequest_init_zero;
			if (msg_decode(lars_GetRouteRequest_fields, &q, body, (size_t)hdr.msglen, NULL))
				break;
			const snap_route_t *r = snapshot_find(patched, q.modid, q.cmdid);
			lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
			resp.modid = q.modid;
			resp.cmdid = q.cmdid;
			msg_array_t arr = MSG_HOSTS(r ? snapshot_hosts(patched, r) : NULL, r ? r->n_hosts : 0);
			msg_array_bind(&arr, &resp.host);
			uint8_t *out;
			size_t olen;
			if (msg_frame_alloc(LARS_ID_GET_ROUTE_RESP, lars_GetRouteResponse_fields, &resp,
					    FRAME_TCP_MAX_LIMIT, &out, &olen) == 0)
				free(out);
		}
	}
	frame_buf_deinit(&fb);
	snap_keys_deinit(&diff);
	snap_keys_deinit(&keys);
	snapshot_free(old);
	snapshot_free(patched);
	snapshot_free(rebuilt);
	return 0;
}
