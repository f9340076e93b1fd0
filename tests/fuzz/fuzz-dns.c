// SPDX-License-Identifier: MIT
// The route service's data path: entries from the input build a snapshot,
// more of the input patches it; the patch must equal a full rebuild and the
// diff must name exactly the changed keys. Then requests (TCP frames from
// the rest of the input) go through lars-dns's own request core, from two
// connections with a small max_subscriptions, and the changed keys are
// pushed to their subscribers as lars-dns does.
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "request.h"
#include "snapshot.h"
#include "subs.h"

#define FUZZ_MAX_SUBS 4

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

/* @n hosts alike, field by field (the structs have padding). */
static bool hosts_equal(const lars_HostInfo *x, const lars_HostInfo *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (x[i].ip != y[i].ip || x[i].port != y[i].port || x[i].weight != y[i].weight ||
		    x[i].drain != y[i].drain || x[i].joined_at != y[i].joined_at)
			return false;
	return true;
}

static void same(const snapshot_t *a, const snapshot_t *b)
{
	if (a->n_routes != b->n_routes || a->n_hosts != b->n_hosts ||
	    !hosts_equal(a->hosts, b->hosts, a->n_hosts))
		__builtin_trap();
	for (size_t i = 0; i < a->n_routes; i++)
		if (a->routes[i].modid != b->routes[i].modid ||
		    a->routes[i].cmdid != b->routes[i].cmdid ||
		    a->routes[i].first != b->routes[i].first ||
		    a->routes[i].n_hosts != b->routes[i].n_hosts)
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
		bool in = false;
		for (size_t k = 0; k < keys.n; k++)
			in |= keys.v[k].modid == raw.v[i].modid && keys.v[k].cmdid == raw.v[i].cmdid;
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
		    hosts_equal(snapshot_hosts(old, a), snapshot_hosts(patched, c), a->n_hosts))
			__builtin_trap(); /* listed but unchanged */
	}

	/* Requests from the rest, from two connections taking turns, answered
	 * from the patched snapshot by the daemon's own handlers' core. */
	subs_t subs;
	subs_init(&subs, FUZZ_MAX_SUBS);
	int conns[2];
	subs_peer_t peers[2];
	subs_peer_init(&peers[0], &conns[0]);
	subs_peer_init(&peers[1], &conns[1]);
	frame_idset_t ids;
	frame_idset_clear(&ids);
	frame_idset_add(&ids, LARS_ID_GET_ROUTE_REQ);
	frame_idset_add(&ids, LARS_ID_UNSUBSCRIBE_REQ);
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
		for (unsigned turn = 0; frame_buf_next(&fb, &hdr, &body) == FRAME_OK; turn++) {
			subs_peer_t *p = &peers[turn & 1];
			size_t before = subs_peer_count(p);
			request_out_t o;
			int r = hdr.msgid == LARS_ID_GET_ROUTE_REQ
				? request_get_route(&subs, p, patched, body, (size_t)hdr.msglen, &o)
				: request_unsubscribe(&subs, p, body, (size_t)hdr.msglen, &o);
			if (r != 0 && (r != MSG_E_DECODE || o.decoded || o.frame))
				__builtin_trap(); /* every route here fits a frame */
			if (r)
				break; /* the transport closes the connection */
			if (hdr.msgid == LARS_ID_GET_ROUTE_REQ) {
				/* Answered, subscribed, within the cap. */
				if (!o.frame || !subs_has(p, o.modid, o.cmdid) ||
				    subs_peer_count(p) > FUZZ_MAX_SUBS ||
				    subs_peer_count(p) != before + !!(o.subs & SUBS_ADDED) -
							     !!(o.subs & SUBS_DROPPED))
					__builtin_trap();
				sbuf_unref(o.frame);
			} else if (o.frame || subs_has(p, o.modid, o.cmdid) ||
				   subs_peer_count(p) != before - o.unsubscribed) {
				__builtin_trap();
			}
			if (subs.n != subs_peer_count(&peers[0]) + subs_peer_count(&peers[1]))
				__builtin_trap();
		}
	}
	/* Push the changed keys to whoever subscribed to them. */
	for (size_t i = 0; i < diff.n; i++) {
		void *to[2];
		size_t n = subs_collect(&subs, diff.v[i].modid, diff.v[i].cmdid, to, 2);
		if (n != subs_count(&subs, diff.v[i].modid, diff.v[i].cmdid))
			__builtin_trap();
		for (size_t j = 0; j < n; j++)
			if (!subs_has(&peers[to[j] == &conns[1]], diff.v[i].modid, diff.v[i].cmdid))
				__builtin_trap();
		sbuf_t *out;
		if (n && request_route_frame(patched, diff.v[i].modid, diff.v[i].cmdid, &out) == 0)
			sbuf_unref(out);
	}
	size_t held = subs.n;
	if (subs_peer_deinit(&subs, &peers[0]) + subs_peer_deinit(&subs, &peers[1]) != held ||
	    subs.n != 0)
		__builtin_trap();
	subs_deinit(&subs);
	frame_buf_deinit(&fb);
	snap_keys_deinit(&diff);
	snap_keys_deinit(&keys);
	snapshot_free(old);
	snapshot_free(patched);
	snapshot_free(rebuilt);
	return 0;
}
