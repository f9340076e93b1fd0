// SPDX-License-Identifier: MIT
// wire_client: the Lars protocol from a client's side, for the integration
// tests, tests/tools and the benchmarks: GetHost, Report and the API
// GetRoute over UDP to lars-agent; GetRoute, its pushes and Unsubscribe
// over TCP to lars-dns; ReportStatusRequest over TCP to lars-reporter.
// Blocking sockets; every receive ends at a deadline in time.
// Return values: negative errno for failures (-ETIMEDOUT when the deadline
// passed, -EPROTO for an answer that is not the expected message).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "msg.h"

/** struct wc_route - a decoded GetRouteResponse (lars-dns) or API answer (agent). */
typedef struct wc_route {
	int32_t modid, cmdid;
	int32_t host_total; /* the agent's API answer: hosts before the cut */
	bool has_policy;    /* lars-dns sent the route's policy (not the default) */
	lars_RoutePolicy policy;
	int64_t version;    /* lars-dns to agents that sent AgentHello; 0 = absent */
	size_t n;
	lars_HostInfo *hosts; /* @n hosts, malloc'd; wc_route_free() */
} wc_route_t;

/** wc_route_free() - free the hosts of @r (NULL-safe) and zero it. */
void wc_route_free(wc_route_t *r);

/**
 * wc_connect() - TCP connection to @ip:@port (IPv4 text) made before
 * @deadline (harness_deadline()), TCP_NODELAY set, blocking again.
 * Return: the socket, -ETIMEDOUT, or a negative errno (-ECONNREFUSED, ...).
 */
int wc_connect(const char *ip, int port, int64_t deadline);

/**
 * wc_send() - encode @msg as a frame @msgid (up to FRAME_TCP_MAX_LIMIT)
 * and write all of it to the stream @fd.
 * Return: 0, -EMSGSIZE if it does not fit, -EINVAL, or a negative errno.
 */
int wc_send(int fd, int32_t msgid, const pb_msgdesc_t *fields, const void *msg);

/**
 * wc_recv_frame() - read one frame from the stream @fd before @deadline.
 * Return: 1 with *hdrp and @body (@cap bytes) filled, 0 if the peer closed,
 * -ETIMEDOUT, -EMSGSIZE (body above @cap; *hdrp says how large), -EIO.
 */
int wc_recv_frame(int fd, frame_hdr_t *hdrp, uint8_t *body, size_t cap, int64_t deadline);

/* ---- lars-dns (TCP) ---- */

/** wc_get_route_send() - GetRouteRequest (@modid, @cmdid): answer and subscribe. */
int wc_get_route_send(int fd, int32_t modid, int32_t cmdid);
/** wc_unsubscribe_send() - UnsubscribeRequest (@modid, @cmdid). */
int wc_unsubscribe_send(int fd, int32_t modid, int32_t cmdid);
/**
 * wc_route_recv() - the next GetRouteResponse (an answer or a push) before
 * @deadline, at most @max_frame bytes of body.
 * Return: 1 with *r filled (wc_route_free() it), 0 if lars-dns closed the
 * connection, -ETIMEDOUT, -EMSGSIZE (frame above @max_frame), -EBADMSG (a
 * frame with another msgid, read and dropped: *msgidp says which, if not
 * NULL), -EPROTO (undecodable body), -EIO.
 */
int wc_route_recv(int fd, wc_route_t *r, size_t max_frame, int64_t deadline,
		  int32_t *msgidp);

/* ---- lars-reporter (TCP) ---- */

/**
 * wc_report_status_send() - ReportStatusRequest with the @n results @res
 * from @caller at @ts for (@modid, @cmdid).
 */
int wc_report_status_send(int fd, int32_t modid, int32_t cmdid, int32_t caller, uint32_t ts,
			  const lars_HostCallResult *res, size_t n);

/* ---- lars-agent (UDP) ---- */

/**
 * wc_get_host() - GetHostRequest @seq for (@modid, @cmdid) to the agent at
 * 127.0.0.1:@port (0: @fd is connected already), and the first datagram back
 * within @timeout_ms, decoded into *resp (its seq as sent back: the caller
 * checks it).
 * Return: 0, -ETIMEDOUT, -EPROTO (not a GetHostResponse), or a negative errno.
 */
int wc_get_host(int fd, int port, uint32_t seq, int32_t modid, int32_t cmdid,
		lars_GetHostResponse *resp, int timeout_ms);
/**
 * wc_report() - ReportRequest: the call to @host for (@modid, @cmdid) ended
 * with @retcode; one datagram to 127.0.0.1:@port (0: @fd is connected).
 */
int wc_report(int fd, int port, int32_t modid, int32_t cmdid, lars_HostInfo host,
	      int32_t retcode);
/**
 * wc_api_get_route() - the API GetRoute (the agent's view of the route) from
 * 127.0.0.1:@port within @timeout_ms, at most @max_hosts hosts.
 * Return: the size of the answering datagram with *r filled (wc_route_free()),
 * -ETIMEDOUT, -EPROTO, or a negative errno.
 */
ssize_t wc_api_get_route(int fd, int port, int32_t modid, int32_t cmdid, wc_route_t *r,
			 size_t max_hosts, int timeout_ms);
/**
 * wc_agent_route_has() - whether the agent on 127.0.0.1:@agent_port lists
 * (@want) or no longer lists (!@want) a host on @port in its route (@modid,
 * @cmdid), asking its API GetRoute until that holds or @ms pass.
 * Return: true when it held.
 */
bool wc_agent_route_has(int agent_port, int32_t modid, int32_t cmdid, int32_t port,
			bool want, int ms);
