// SPDX-License-Identifier: MIT
// libuv UDP server for Lars frames: one frame per datagram, dispatch, replies.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb.h>
#include <uv.h>

#include "dispatch.h"
#include "metrics.h"

typedef struct udp_server udp_server_t;

/** struct udp_peer - what a UDP handler gets as its peer: reply here. */
typedef struct udp_peer {
	udp_server_t *srv;
	const struct sockaddr *addr;
} udp_peer_t;

/*
 * Fairness: each socket gets at most UDP_TURN_MAX datagrams (one recvmmsg)
 * per turn of the event loop, then the loop moves on to its other sockets
 * and handles; what is left is read on the next turn (epoll is
 * level-triggered). libuv alone would read up to 32 per wake-up, and a
 * client on another socket waited behind them.
 */
#ifndef UDP_TURN_MAX /* -DUDP_TURN_MAX=N to measure another bound */
#define UDP_TURN_MAX 4
#endif

typedef struct udp_server_opts {
	const char *name;
	const char *ip;
	int port; /* 0 = any free port */
	/* false (the default): the port is ours alone, a taken port is an
	 * error. true: SO_REUSEPORT, shared with other sockets that ask too. */
	bool reuse_port;
	const dispatch_t *dispatch; /* handlers get a udp_peer_t * */
	metrics_t *metrics;
} udp_server_opts_t;

/**
 * udp_server_start() - bind @opts->ip:@opts->port and serve on @loop.
 * Return: 0, or a UV_E* error (logged, naming the address; UV_EADDRINUSE
 * when another socket holds the port).
 */
int udp_server_start(uv_loop_t *loop, const udp_server_opts_t *opts,
		     udp_server_t **outp);
int udp_server_port(const udp_server_t *srv);
/** udp_server_close() - close the socket; freed in its close callback. */
void udp_server_close(udp_server_t *srv);
/**
 * udp_server_reply() - encode @msg as frame @msgid and send it to @peer.
 * Return: 0, -EMSGSIZE (over 64 KiB) or a UV_E* error (counted, not fatal).
 */
int udp_server_reply(const udp_peer_t *peer, int32_t msgid,
		     const pb_msgdesc_t *fields, const void *msg);
