// SPDX-License-Identifier: MIT
// libuv TCP server speaking Lars frames: limits, dispatch, bounded writes
// (the per-connection transport is common/loop/stream.c).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb.h>
#include <uv.h>

#include "dispatch.h"
#include "metrics.h"
#include "sbuf.h"

typedef struct tcp_server tcp_server_t;
typedef struct tcp_conn tcp_conn_t;

typedef void (*tcp_conn_cb)(tcp_conn_t *c, void *user);

typedef struct tcp_server_opts {
	const char *name; /* for logs and the metrics' listener="" label */
	const char *ip;
	int port; /* 0 = any free port, see tcp_server_port() */
	/* false (the default): the port is ours alone, a taken port is an
	 * error. true: SO_REUSEPORT, shared with other sockets that ask too. */
	bool reuse_port;
	int backlog;
	unsigned max_conns;     /* over it, new connections are closed at once */
	uint32_t max_frame;     /* header + body a peer may send; bigger closes it */
	/* Output limits, in real bytes (frames plus bookkeeping), as redis's
	 * client-output-buffer-limit: a peer still behind by more than
	 * max_write_queue (hard) is cut off at once; one over soft_write_queue
	 * for soft_write_queue_ms is cut off then (0 = no soft limit). */
	size_t max_write_queue;
	size_t soft_write_queue;
	unsigned soft_write_queue_ms;
	/* Over every connection; a send whose waiting part would pass it cuts
	 * its peer off (what the kernel takes at once is not counted); 0 = none. */
	size_t max_output_total;
	/* Read no further frame from a connection while its answers wait. */
	bool hold_while_queued;
	unsigned max_conns_per_ip; /* from one address; 0 = no limit */
	/* A connection not marked active (tcp_conn_set_active) this long after
	 * connecting is closed; 0 = never. */
	unsigned hello_timeout_ms;
	/* A frame begun and not finished this long closes the connection; 0 = never. */
	unsigned partial_frame_timeout_ms;
	const dispatch_t *dispatch; /* handlers get a PEER_TCP_CONN peer, see tcp_conn_of() */
	tcp_conn_cb on_connect;
	tcp_conn_cb on_close; /* once per connection, when it starts closing */
	void *user;
	metrics_t *metrics; /* may be NULL */
} tcp_server_opts_t;

/** tcp_server_start() - bind, listen and serve on @loop; a taken port is logged, UV_EADDRINUSE. */
int tcp_server_start(uv_loop_t *loop, const tcp_server_opts_t *opts,
		     tcp_server_t **outp);
/** tcp_server_port() - the bound port. */
int tcp_server_port(const tcp_server_t *srv);
/** tcp_server_n_conns() - connections currently open. */
unsigned tcp_server_n_conns(const tcp_server_t *srv);
/**
 * tcp_server_pause() - stop (or resume) reading from every connection, new
 * ones included: backpressure that loses nothing, peers' sends just wait.
 */
void tcp_server_pause(tcp_server_t *srv, bool paused);
bool tcp_server_paused(const tcp_server_t *srv);
/**
 * tcp_server_close() - stop accepting and close every connection (on_close
 * runs for each). @srv is freed once all its handles are closed.
 */
void tcp_server_close(tcp_server_t *srv);

/**
 * tcp_conn_send() - encode @msg as frame @msgid and queue it.
 * A peer whose write queue would exceed the bound is closed.
 * Return: 0, -ENOTCONN if the connection is closing, -EMSGSIZE, -ENOBUFS
 * (over the queue bound; the connection is now closing) or a UV_E* error.
 */
int tcp_conn_send(tcp_conn_t *c, int32_t msgid, const pb_msgdesc_t *fields,
		  const void *msg);
/** tcp_conn_send_frame() - queue a whole encoded frame; takes @buf (malloc'd) in every case. */
int tcp_conn_send_frame(tcp_conn_t *c, uint8_t *buf, size_t len);
/**
 * tcp_conn_send_shared() - queue a shared frame: a reference, never a copy.
 * The caller keeps its reference. Return: as tcp_conn_send_frame().
 */
int tcp_conn_send_shared(tcp_conn_t *c, sbuf_t *b);
/** tcp_conn_set_active() - @c did what a client does (hello_timeout no longer applies). */
void tcp_conn_set_active(tcp_conn_t *c);
/** tcp_server_output_bytes() - real bytes queued over every connection. */
size_t tcp_server_output_bytes(const tcp_server_t *srv);
/** tcp_conn_close() - close (idempotent); @why is logged at debug. */
void tcp_conn_close(tcp_conn_t *c, const char *why);
/** tcp_conn_ref() / tcp_conn_unref() - keep the struct alive past close (e.g. for a DB job). */
tcp_conn_t *tcp_conn_ref(tcp_conn_t *c);
tcp_conn_t *tcp_conn_unref(tcp_conn_t *c);
bool tcp_conn_is_open(const tcp_conn_t *c);
/** tcp_conn_peer() - "ip:port" of the peer. */
const char *tcp_conn_peer(const tcp_conn_t *c);
void *tcp_conn_data(const tcp_conn_t *c);
void tcp_conn_set_data(tcp_conn_t *c, void *data);
/** tcp_conn_user() - the server's opts.user. */
void *tcp_conn_user(const tcp_conn_t *c);
/** tcp_conn_write_queue() - bytes queued but not yet written. */
size_t tcp_conn_write_queue(const tcp_conn_t *c);
/** tcp_conn_of() - the connection behind a handler's PEER_TCP_CONN @peer. */
tcp_conn_t *tcp_conn_of(peer_t *peer);
