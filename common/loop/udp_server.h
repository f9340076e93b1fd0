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
#include "net.h"

typedef struct udp_server udp_server_t;

/**
 * struct udp_peer - the sender of the datagram being handled; handlers get
 * &base (kind PEER_UDP) and reply with udp_server_reply() or peer_send().
 */
typedef struct udp_peer {
	peer_t base;
	udp_server_t *srv;
	const struct sockaddr *addr;
	char name_[NET_ADDR_STRLEN]; /* private: "ip:port" once asked for */
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
	const dispatch_t *dispatch; /* handlers get a PEER_UDP peer, see udp_peer_of() */
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
 * udp_server_reply() - encode @msg as frame @msgid and send it to @peer
 * (a PEER_UDP peer). Return: 0, -EMSGSIZE (over 64 KiB) or a UV_E* error
 * (counted, not fatal).
 */
int udp_server_reply(peer_t *peer, int32_t msgid, const pb_msgdesc_t *fields,
		     const void *msg);
/** udp_peer_of() - the datagram's sender behind a handler's PEER_UDP @peer. */
udp_peer_t *udp_peer_of(peer_t *peer);
