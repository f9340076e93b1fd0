// SPDX-License-Identifier: MIT
// lars-test-svc: a small daemon built only from common/'s service core, so
// the integration tests exercise the real TCP/UDP servers, config, metrics,
// --ready-fd and shutdown the way the services use them.
//
// GetHostRequest (4) -> GetHostResponse (5): host 127.0.0.1:(9000 + cmdid).
// GetRouteRequest (1) -> GetRouteResponse (2) with cmdid hosts (big frames).
// Test only: a TCP GetHostRequest for modid ECHO_STALL_MODID blocks the loop
// for cmdid ms (at most 10 s) before it is answered, so the tests can see
// lars_loop_lag_seconds measure a stall.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dispatch.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "service.h"
#include "tcp_server.h"
#include "udp_server.h"
#include "xalloc.h"

typedef struct echo_cfg {
	char ip[64];
	int port;
	int udp_port;
	int max_conns;
	int max_frame;
	int max_write_queue;
	service_common_cfg_t common;
} echo_cfg_t;

static echo_cfg_t cfg = { .ip = "127.0.0.1", .max_conns = 1000,
			  .max_frame = FRAME_TCP_MAX_DEFAULT, .max_write_queue = 1 << 20 };

static const config_key_t keys[] = {
	CONFIG_KEY_STR("echo", "ip", cfg.ip),
	CONFIG_KEY_INT("echo", "port", &cfg.port, 0, 65535),
	CONFIG_KEY_INT("echo", "udp_port", &cfg.udp_port, 0, 65535),
	CONFIG_KEY_INT("echo", "max_conns", &cfg.max_conns, 1, 1000000),
	CONFIG_KEY_INT("echo", "max_frame", &cfg.max_frame, 64, FRAME_TCP_MAX_LIMIT),
	CONFIG_KEY_INT("echo", "max_write_queue", &cfg.max_write_queue, 1024, 1 << 30),
};

#define ECHO_STALL_MODID 999999
#define ECHO_STALL_MAX_MS 10000

typedef struct echo {
	tcp_server_t *tcp;
	udp_server_t *udp;
	dispatch_t tcp_d, udp_d; /* the servers' tables: freed with them */
} echo_t;

static void answer_host(const lars_GetHostRequest *req, lars_GetHostResponse *resp)
{
	*resp = (lars_GetHostResponse)lars_GetHostResponse_init_zero;
	resp->seq = req->seq;
	resp->modid = req->modid;
	resp->cmdid = req->cmdid;
	resp->retcode = LARS_RET_SUCC;
	resp->has_host = true;
	resp->host.ip = 2130706433;
	resp->host.port = 9000 + req->cmdid;
}

/* Block the loop thread for @ms, as a slow callback in a daemon would. */
static void echo_stall(int ms)
{
	struct timespec end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, NULL) == EINTR)
		;
}

static int on_tcp_get_host(peer_t *peer, void *user, int32_t msgid,
			   const uint8_t *body, size_t len)
{
	lars_GetHostRequest req = lars_GetHostRequest_init_zero;
	lars_GetHostResponse resp;
	int r = msg_decode(lars_GetHostRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	if (req.modid == ECHO_STALL_MODID && req.cmdid > 0 && req.cmdid <= ECHO_STALL_MAX_MS)
		echo_stall(req.cmdid);
	answer_host(&req, &resp);
	r = peer_send(peer, LARS_ID_GET_HOST_RESP, lars_GetHostResponse_fields, &resp);
	return r == -ENOBUFS ? 0 : r; /* cut off already: not bad input */
}

static int on_tcp_get_route(peer_t *peer, void *user, int32_t msgid,
			    const uint8_t *body, size_t len)
{
	lars_GetRouteRequest req = lars_GetRouteRequest_init_zero;
	int r = msg_decode(lars_GetRouteRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	if (req.cmdid < 0 || req.cmdid > 100000)
		return MSG_E_TOO_MANY;
	lars_HostInfo *hosts = xcalloc((size_t)req.cmdid + 1, sizeof(*hosts));
	for (int i = 0; i < req.cmdid; i++) {
		hosts[i].ip = 2130706433;
		hosts[i].port = 1 + i % 65535;
	}
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	resp.modid = req.modid;
	resp.cmdid = req.cmdid;
	msg_array_t arr = MSG_HOSTS(hosts, (size_t)req.cmdid);
	msg_array_bind(&arr, &resp.host);
	r = peer_send(peer, LARS_ID_GET_ROUTE_RESP, lars_GetRouteResponse_fields, &resp);
	free(hosts);
	return r == -ENOBUFS ? 0 : r;
}

static int on_udp_get_host(peer_t *peer, void *user, int32_t msgid,
			   const uint8_t *body, size_t len)
{
	lars_GetHostRequest req = lars_GetHostRequest_init_zero;
	lars_GetHostResponse resp;
	int r = msg_decode(lars_GetHostRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	answer_host(&req, &resp);
	udp_server_reply(peer, LARS_ID_GET_HOST_RESP, lars_GetHostResponse_fields, &resp);
	return 0;
}

/* Neither server calls back once closed: @e goes with them. */
static void echo_close(echo_t *e)
{
	tcp_server_close(e->tcp);
	udp_server_close(e->udp);
	free(e);
}

/* As the daemons' parts: @on_ready(@user, "tcp=P udp=Q") once listening;
 * *@outp only on success, nothing left behind on failure. */
static int echo_new(uv_loop_t *loop, service_t *svc, const echo_cfg_t *c, metrics_t *m,
		    void (*on_ready)(void *user, const char *ports), void *user, echo_t **outp)
{
	(void)svc;
	echo_t *e = xcalloc(1, sizeof(*e));
	dispatch_init(&e->tcp_d);
	dispatch_on(&e->tcp_d, LARS_ID_GET_HOST_REQ, on_tcp_get_host, e);
	dispatch_on(&e->tcp_d, LARS_ID_GET_ROUTE_REQ, on_tcp_get_route, e);
	dispatch_init(&e->udp_d);
	dispatch_on(&e->udp_d, LARS_ID_GET_HOST_REQ, on_udp_get_host, e);

	tcp_server_opts_t topts = {
		.name = "echo", .ip = c->ip, .port = c->port,
		.max_conns = (unsigned)c->max_conns, .max_frame = (uint32_t)c->max_frame,
		.max_write_queue = (size_t)c->max_write_queue, .dispatch = &e->tcp_d,
		.user = e, .metrics = m,
	};
	udp_server_opts_t uopts = { .name = "echo-udp", .ip = c->ip,
				    .port = c->udp_port, .dispatch = &e->udp_d, .metrics = m };
	int r = tcp_server_start(loop, &topts, &e->tcp);
	if (r == 0)
		r = udp_server_start(loop, &uopts, &e->udp);
	if (r) {
		echo_close(e); /* NULL parts are no-ops */
		return r;
	}
	char ports[64];
	snprintf(ports, sizeof(ports), "tcp=%d udp=%d", tcp_server_port(e->tcp),
		 udp_server_port(e->udp));
	on_ready(user, ports);
	*outp = e;
	return 0;
}

SERVICE_PART(echo_t, echo_new, echo_close, service_on_ready_ports)

static const service_def_t def = {
	.name = "lars-test-svc",
	.summary = "Test daemon built from the Lars service core.",
	.keys = keys, .n_keys = ARRAY_SIZE(keys),
	.common = &cfg.common, .cfg = &cfg,
	.start = service_part_start, .stop = service_part_stop,
};

int main(int argc, char **argv)
{
	return service_main(&def, argc, argv);
}
