// SPDX-License-Identifier: MIT
// lars-dns's requests, answered from the current snapshot.
#include "request.h"

#include <errno.h>
#include <stdlib.h>

#include "frame.h"
#include "log.h"
#include "msg.h"

int request_route_frame(const snapshot_t *snap, int32_t modid, int32_t cmdid,
			uint8_t **bufp, size_t *lenp)
{
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	resp.modid = modid;
	resp.cmdid = cmdid;
	const snap_route_t *r = snapshot_find(snap, modid, cmdid);
	msg_array_t arr = MSG_HOSTS(r ? snapshot_hosts(snap, r) : NULL, r ? r->n_hosts : 0);
	msg_array_bind(&arr, &resp.host);
	int rc = msg_frame_alloc(LARS_ID_GET_ROUTE_RESP, lars_GetRouteResponse_fields,
				 &resp, FRAME_TCP_MAX_LIMIT, bufp, lenp);
	if (rc == -ENOMEM) {
		log_error("dns: out of memory encoding a route");
		abort();
	}
	return rc;
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

int request_get_route(subs_t *subs, subs_peer_t *peer, const snapshot_t *snap,
		      const uint8_t *body, size_t len, request_out_t *out)
{
	int r = request_decode_key(body, len, out);
	if (r)
		return r;
	out->subs = subs_add(subs, peer, out->modid, out->cmdid);
	return request_route_frame(snap, out->modid, out->cmdid, &out->frame, &out->len);
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
