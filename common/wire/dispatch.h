// SPDX-License-Identifier: MIT
// Message dispatch by msgid, shared by every transport, and the typed peer
// a handler answers.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <pb.h>

#include "frame.h"

typedef struct peer peer_t;

/** enum peer_kind - which transport a peer belongs to. */
typedef enum peer_kind {
	PEER_TCP_CONN = 1, /* a connection a tcp_server accepted (tcp_conn_of()) */
	PEER_TCP_CLIENT,   /* a tcp_client's link to its upstream (tcp_client_of()) */
	PEER_UDP,          /* the sender of one datagram to a udp_server (udp_peer_of()) */
} peer_kind_t;

/**
 * struct peer_ops - what a transport does for its peers (the loop layer:
 * tcp_server, tcp_client, udp_server); every member is set.
 * @send:       encode @msg as frame @msgid and send or queue it; 0 or a
 *              negative errno (-ENOTCONN, -ENOBUFS, -EMSGSIZE, UV_E*).
 * @send_frame: the same for an encoded frame; takes @buf (malloc'd) in every case.
 * @close:      stop talking to the peer: close the TCP connection (the client
 *              reconnects); nothing for a datagram's sender.
 * @name:       "ip:port" for logs, valid while the handler runs.
 */
typedef struct peer_ops {
	int (*send)(peer_t *p, int32_t msgid, const pb_msgdesc_t *fields, const void *msg);
	int (*send_frame)(peer_t *p, uint8_t *buf, size_t len);
	void (*close)(peer_t *p, const char *why);
	const char *(*name)(peer_t *p);
} peer_ops_t;

/** struct peer - embedded in the transport's own object; read-only for handlers. */
struct peer {
	peer_kind_t kind;
	const peer_ops_t *ops;
};

/**
 * dispatch_fn - handle one frame's body.
 * @peer: who sent it; answer with peer_send(), or narrow it by its kind.
 * Return: 0, or nonzero for bad input / failure: the transport counts it and
 * closes the connection (TCP) or drops the datagram (UDP).
 */
typedef int (*dispatch_fn)(peer_t *peer, void *user, int32_t msgid,
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
int dispatch_run(const dispatch_t *d, peer_t *peer, int32_t msgid,
		 const uint8_t *body, size_t len);

/** peer_kind() - the transport @p belongs to. */
static inline peer_kind_t peer_kind(const peer_t *p)
{
	return p->kind;
}

/** peer_send() - encode @msg as frame @msgid and send it to @p (see struct peer_ops). */
static inline int peer_send(peer_t *p, int32_t msgid, const pb_msgdesc_t *fields,
			    const void *msg)
{
	return p->ops->send(p, msgid, fields, msg);
}

/** peer_send_frame() - send an encoded frame; takes @buf (malloc'd) in every case. */
static inline int peer_send_frame(peer_t *p, uint8_t *buf, size_t len)
{
	return p->ops->send_frame(p, buf, len);
}

/** peer_close() - close the connection to @p (idempotent; nothing for UDP). */
static inline void peer_close(peer_t *p, const char *why)
{
	p->ops->close(p, why);
}

/** peer_name() - "ip:port" of @p for logs. */
static inline const char *peer_name(peer_t *p)
{
	return p->ops->name(p);
}
