// SPDX-License-Identifier: MIT
// lars-dns's requests, answered from the current snapshot.
#include "request.h"

#include <errno.h>
#include <stdlib.h>

#include "frame.h"
#include "log.h"
#include "msg.h"
#include "xalloc.h"

/* A new frame for route @r of @snap (NULL: absent, no hosts); with
 * @versioned its version too. */
static int route_encode(const snapshot_t *snap, const snap_route_t *r, int32_t modid,
			int32_t cmdid, bool versioned, sbuf_t **framep)
{
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	resp.modid = modid;
	resp.cmdid = cmdid;
	msg_array_t arr = MSG_HOSTS(r ? snapshot_hosts(snap, r) : NULL, r ? r->n_hosts : 0);
	msg_array_bind(&arr, &resp.host);
	/* Absent at the default, so the frame is the original's byte for byte. */
	if (r && !snap_policy_is_default(&r->policy)) {
		resp.has_policy = true;
		resp.policy = r->policy;
	}
	if (versioned)
		resp.version = r ? r->version : snap ? snap->version : 0;
	size_t body, len;
	if (msg_encoded_size(lars_GetRouteResponse_fields, &resp, &body))
		return -EINVAL;
	if (body > FRAME_TCP_MAX_LIMIT - FRAME_HDR_LEN)
		return MSG_E_TOO_LARGE;
	sbuf_t *b = sbuf_new(FRAME_HDR_LEN + body);
	int rc = msg_frame_encode(LARS_ID_GET_ROUTE_RESP, lars_GetRouteResponse_fields,
				  &resp, b->data, b->len, &len);
	if (rc) {
		sbuf_unref(b);
		return rc;
	}
	*framep = b;
	return 0;
}

/* The cached frame of route @r, encoded now if it is not yet. */
static int route_cached(snapshot_t *snap, const snap_route_t *r, bool versioned,
			sbuf_t **framep)
{
	size_t i = (size_t)(r - snap->routes);
	sbuf_t ***frames = versioned ? &snap->frames_v : &snap->frames;
	if (!*frames)
		*frames = xcalloc(snap->n_routes, sizeof(**frames));
	if (!(*frames)[i]) {
		int rc = route_encode(snap, r, r->modid, r->cmdid, versioned, &(*frames)[i]);
		if (rc)
			return rc;
	}
	*framep = (*frames)[i];
	return 0;
}

int request_route_frame_v(snapshot_t *snap, int32_t modid, int32_t cmdid, bool versioned,
			  sbuf_t **framep)
{
	const snap_route_t *r = snapshot_find(snap, modid, cmdid);
	if (!r) /* a handful of bytes: not worth keeping */
		return route_encode(snap, NULL, modid, cmdid, versioned, framep);
	sbuf_t *b;
	int rc = route_cached(snap, r, versioned, &b);
	if (rc == 0)
		*framep = sbuf_ref(b);
	return rc;
}

int request_route_frame(snapshot_t *snap, int32_t modid, int32_t cmdid, sbuf_t **framep)
{
	return request_route_frame_v(snap, modid, cmdid, false, framep);
}

void request_prefill(snapshot_t *snap, const snap_keys_t *keys, bool versioned)
{
	sbuf_t *b;
	/* The original's frames, and ours too while agents of ours are there. */
	for (int v = 0; v < (versioned ? 2 : 1); v++) {
		for (size_t i = 0; snap && keys && i < keys->n; i++) {
			const snap_route_t *r = snapshot_find(snap, keys->v[i].modid,
							      keys->v[i].cmdid);
			if (r)
				(void)route_cached(snap, r, v, &b);
		}
		for (size_t i = 0; snap && i < snap->n_routes; i++)
			if (snap->routes[i].n_hosts >= REQUEST_PREFILL_HOSTS)
				(void)route_cached(snap, &snap->routes[i], v, &b);
	}
}

/* The (modid, cmdid) body both requests carry. */
static int request_decode_key(const uint8_t *body, size_t len, request_out_t *out)
{
	lars_GetRouteRequest req = lars_GetRouteRequest_init_zero;
	*out = (request_out_t){ 0 };
	int r = msg_decode(lars_GetRouteRequest_fields, &req, body, len, &out->why);
	if (r)
		return r;
	out->decoded = true;
	out->modid = req.modid;
	out->cmdid = req.cmdid;
	return 0;
}

int request_get_route(subs_t *subs, subs_peer_t *peer, snapshot_t *snap,
		      const uint8_t *body, size_t len, request_out_t *out)
{
	int r = request_decode_key(body, len, out);
	if (r)
		return r;
	out->subs = subs_add(subs, peer, out->modid, out->cmdid);
	return request_route_frame_v(snap, out->modid, out->cmdid, peer->versioned, &out->frame);
}

int request_unsubscribe(subs_t *subs, subs_peer_t *peer, const uint8_t *body,
			size_t len, request_out_t *out)
{
	int r = request_decode_key(body, len, out);
	if (r)
		return r;
	out->unsubscribed = subs_del(subs, peer, out->modid, out->cmdid);
	return 0;
}
