// SPDX-License-Identifier: MIT
// Address helpers shared by the transports.
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#define NET_ADDR_STRLEN 64 /* "[v6addr]:port" */

/** struct net_endpoint - one "host:port" from configuration. */
typedef struct net_endpoint {
	char host[INET6_ADDRSTRLEN];
	int port;
} net_endpoint_t;

#define NET_MAX_ENDPOINTS 16

/** net_addr() - numeric @ip and @port to a sockaddr; UV_EINVAL otherwise. */
int net_addr(const char *ip, int port, struct sockaddr_storage *ss);
/** net_addr_str() - "ip:port" of @sa into @out. */
void net_addr_str(const struct sockaddr *sa, char out[NET_ADDR_STRLEN]);
/** net_is_loopback() - whether @ip is in 127.0.0.0/8 or ::1. */
bool net_is_loopback(const char *ip);
/** net_addr_is_loopback() - whether @sa is in 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
bool net_addr_is_loopback(const struct sockaddr *sa);

/**
 * net_listen_tcp() - init @tcp (always, so the caller may uv_close it),
 * bind @ip:@port and listen. *portp gets the bound port (useful after 0).
 * The port is exclusive unless @reuse_port (SO_REUSEPORT): another
 * listening socket on an overlapping address makes it fail with
 * UV_EADDRINUSE.
 */
int net_listen_tcp(uv_loop_t *loop, uv_tcp_t *tcp, const char *ip, int port,
		   int backlog, bool reuse_port, uv_connection_cb cb, int *portp);

/**
 * net_set_reuse_port() - SO_REUSEPORT on the socket of @h (a TCP or UDP
 * handle whose socket exists) when @on; nothing otherwise.
 * Return: 0 or a UV_E* error.
 */
int net_set_reuse_port(uv_handle_t *h, bool on);

/**
 * net_log_listen_error() - log why @name could not listen on @proto
 * @ip:@port (error @err), in words an operator can act on for a taken port.
 */
void net_log_listen_error(const char *name, const char *proto, const char *ip, int port,
			  int err);

/**
 * net_write_now() - write what the kernel takes right away (uv_try_write).
 * Return: 1 if all of it went, 0 if the rest (*lenp bytes, moved to the
 * front of @buf) must be queued, or a UV_E* error.
 */
int net_write_now(uv_stream_t *s, uint8_t *buf, size_t *lenp);

/**
 * net_endpoints_parse() - "host:port, host:port" (IPv6 as [addr]:port) into
 * @out (at most NET_MAX_ENDPOINTS). Return: the count, or -EINVAL.
 */
int net_endpoints_parse(const char *s, net_endpoint_t *out, size_t max);
