// SPDX-License-Identifier: MIT
// libuv TCP client for Lars frames: failover over endpoints, reconnect with
// capped exponential backoff and jitter, a hook after every (re)connect
// (the connection's transport is common/loop/stream.c).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb.h>
#include <uv.h>

#include "dispatch.h"
#include "metrics.h"
#include "net.h"

typedef struct tcp_client tcp_client_t;
typedef void (*tcp_client_cb)(tcp_client_t *cli, void *user);

typedef struct tcp_client_opts {
	const char *name; /* for logs and metrics: "dns", "reporter" */
	const net_endpoint_t *endpoints;
	size_t n_endpoints;
	uint32_t max_frame;
	size_t max_write_queue;    /* bytes; while the server is behind, sends beyond it fail with -ENOBUFS */
	uint32_t connect_timeout_ms;
	uint32_t backoff_base_ms;
	uint32_t backoff_max_ms;   /* also: a connection up this long resets the backoff */
	const dispatch_t *dispatch; /* handlers get a PEER_TCP_CLIENT peer, see tcp_client_of() */
	tcp_client_cb on_connect;    /* after each successful (re)connect */
	tcp_client_cb on_disconnect; /* when an established connection is lost */
	void *user;
	metrics_t *metrics;
} tcp_client_opts_t;

/** tcp_client_start() - start connecting (asynchronously) to the first endpoint. */
int tcp_client_start(uv_loop_t *loop, const tcp_client_opts_t *opts,
		     tcp_client_t **outp);
/** tcp_client_close() - disconnect and stop retrying; freed once handles close. */
void tcp_client_close(tcp_client_t *cli);
bool tcp_client_connected(const tcp_client_t *cli);
/** tcp_client_endpoint() - "host:port" currently used or tried. */
const char *tcp_client_endpoint(const tcp_client_t *cli);
/** tcp_client_n_connects() - successful connects so far. */
uint64_t tcp_client_n_connects(const tcp_client_t *cli);
/** tcp_client_n_failed() - failed connection attempts since the last connect. */
size_t tcp_client_n_failed(const tcp_client_t *cli);
/**
 * tcp_client_send() - encode and queue @msg.
 * Return: 0, -ENOTCONN, -ENOBUFS (queue bound), -EMSGSIZE or a UV_E* error.
 */
int tcp_client_send(tcp_client_t *cli, int32_t msgid, const pb_msgdesc_t *fields,
		    const void *msg);
/** tcp_client_send_frame() - queue an encoded frame; takes @buf in every case. */
int tcp_client_send_frame(tcp_client_t *cli, uint8_t *buf, size_t len);
/** tcp_client_disconnect() - drop the current connection (bad input); it reconnects. */
void tcp_client_disconnect(tcp_client_t *cli, const char *why);
/**
 * tcp_client_set_endpoints() - a new list (a reload), 1..NET_MAX_ENDPOINTS.
 * A connection to an endpoint still listed is kept; otherwise the client
 * drops it and connects to the new list's first. Return: 0 or -EINVAL.
 */
int tcp_client_set_endpoints(tcp_client_t *cli, const net_endpoint_t *eps, size_t n);
void *tcp_client_user(const tcp_client_t *cli);
/** tcp_client_of() - the client behind a handler's PEER_TCP_CLIENT @peer. */
tcp_client_t *tcp_client_of(peer_t *peer);
