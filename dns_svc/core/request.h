// SPDX-License-Identifier: MIT
// lars-dns's requests, answered from the current snapshot: GetRouteRequest
// subscribes the asking connection and returns the route's hosts,
// UnsubscribeRequest ends a subscription. No libuv: the caller decodes
// frames, sends what comes back and counts the outcome.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"
#include "subs.h"

/** struct request_out - what one request did, for the caller to send and count. */
typedef struct request_out {
	bool decoded;     /* the body was a valid message (else ->why says why) */
	const char *why;  /* nanopb's reason when it was not */
	int32_t modid;
	int32_t cmdid;
	unsigned subs;    /* SUBS_* flags of the subscription made */
	bool unsubscribed; /* an UnsubscribeRequest ended a subscription */
	sbuf_t *frame;    /* the answer (a reference the caller drops), or NULL */
} request_out_t;

/* Routes of at least this many hosts are encoded before a snapshot is
 * served (request_prefill), so no request pays for it on the loop. */
#define REQUEST_PREFILL_HOSTS 512

/**
 * request_route_frame() - the GetRouteResponse frame of (@modid, @cmdid)
 * from @snap (may be NULL): its hosts, or none if the route is absent.
 * A route's frame is encoded once and kept in @snap; every answer and push
 * of it is a reference to the same bytes. Aborts when out of memory, like
 * every allocation in the services.
 * Return: 0 with *framep (a new reference), or MSG_E_TOO_LARGE when the
 * route does not fit a TCP frame.
 */
int request_route_frame(snapshot_t *snap, int32_t modid, int32_t cmdid, sbuf_t **framep);
/**
 * request_route_frame_v() - request_route_frame(), with @versioned the
 * frame that carries the route's version (for agents that sent AgentHello;
 * an absent route gets the snapshot's version). Both are cached apart.
 */
int request_route_frame_v(snapshot_t *snap, int32_t modid, int32_t cmdid, bool versioned,
			  sbuf_t **framep);

/**
 * request_prefill() - encode into @snap, before it is served, the frames of
 * the routes in @keys (may be NULL: to be pushed) and of every route of
 * REQUEST_PREFILL_HOSTS hosts or more: the expensive encodes happen where
 * @snap is built, off the loop. A route too big for a frame is left out.
 * With @versioned (agents that sent AgentHello are connected) the versioned
 * frames too; otherwise those are encoded on first use.
 */
void request_prefill(snapshot_t *snap, const snap_keys_t *keys, bool versioned);

/**
 * request_get_route() - a GetRouteRequest of @peer: subscribe it first (a
 * change racing the answer is pushed after it), then answer from @snap
 * (with the route version when @peer->versioned).
 * Return: 0 with out->frame to send, MSG_E_DECODE (bad body) or
 * MSG_E_TOO_LARGE (route too big; subscribed anyway): bad input to the
 * transport, which closes the connection.
 */
int request_get_route(subs_t *subs, subs_peer_t *peer, snapshot_t *snap,
		      const uint8_t *body, size_t len, request_out_t *out);

/**
 * request_unsubscribe() - an UnsubscribeRequest of @peer (body as a
 * GetRouteRequest); no answer.
 * Return: 0, or MSG_E_DECODE.
 */
int request_unsubscribe(subs_t *subs, subs_peer_t *peer, const uint8_t *body,
			size_t len, request_out_t *out);
