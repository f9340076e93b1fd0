// SPDX-License-Identifier: MIT
// Message dispatch by msgid, shared by every transport.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

/**
 * dispatch_fn - handle one frame's body.
 * @peer: the transport's peer (tcp_conn_t *, udp_peer_t * or tcp_client_t *).
 * Return: 0, or nonzero for bad input / failure: the transport counts it and
 * closes the connection (TCP) or drops the datagram (UDP).
 */
typedef int (*dispatch_fn)(void *peer, void *user, int32_t msgid,
			   const uint8_t *body, size_t len);

typedef struct dispatch {
	struct {
		dispatch_fn fn;
		void *user;
	} slot[FRAME_MAX_ID + 1];
	frame_idset_t ids; /* what the frame decoders accept */
} dispatch_t;

void dispatch_init(dispatch_t *d);
/** dispatch_on() - route @msgid to @fn; -EINVAL if the id is out of range. */
int dispatch_on(dispatch_t *d, int32_t msgid, dispatch_fn fn, void *user);
/** dispatch_run() - call the handler; -ENOENT if none is registered. */
int dispatch_run(const dispatch_t *d, void *peer, int32_t msgid,
		 const uint8_t *body, size_t len);
