// SPDX-License-Identifier: MIT
// lars-agent: the UDP API for apps, the route-service and report-service
// clients, and the timers around the balancers.
#pragma once

#include <stdbool.h>

#include <uv.h>

#include "balancer.h"
#include "registry.h"
#include "metrics.h"
#include "net.h"
#include "service.h"

#define AGENT_MAX_SOCKETS 16

typedef struct agent_cfg {
	char ip[64];
	int base_port;
	int sockets;
	bool reuse_port; /* share the UDP ports (SO_REUSEPORT); exclusive by default */
	int max_routes;
	int max_absent;  /* keys without hosts remembered (pulling, absent) */
	int pull_rate;   /* pulls a second for keys not in the route table */
	int pull_burst;  /* such pulls saved up */
	char caller[64]; /* IPv4 reported as caller; empty = this machine's */
	lb_cfg_t lb;
	net_endpoint_t dns[NET_MAX_ENDPOINTS];
	int n_dns;
	bool announce; /* AgentHello to lars-dns, then route versions acknowledged */
	net_endpoint_t reporter[NET_MAX_ENDPOINTS];
	int n_reporter;
	int report_interval_s;
	int report_max_hosts;
	int ack_timeout_ms;     /* [reporter] ack_timeout_ms */
	bool counts_cumulative; /* [reporter] counts = cumulative */
	int max_hosts; /* hosts accepted in one route from the route service */
	bool shm;          /* [agent] shm: routes in shared memory for clients (issue 22) */
	char shm_path[256]; /* [agent] shm_path; empty: /run/lars/agent-<base_port>.shm */
	int shm_max_routes, shm_max_hosts;
	reg_cfg_t reg; /* [register]: self-registration (issue 23); reg.caller is set by the agent */
	bool reg_enabled;
	service_common_cfg_t common;
} agent_cfg_t;

typedef struct agent agent_t;

/**
 * agent_new() - bind the UDP sockets and start the clients; then
 * @on_ready(@user, "udp=P0 udp1=P1 ...") names the bound ports.
 */
int agent_new(uv_loop_t *loop, service_t *svc, const agent_cfg_t *cfg, metrics_t *m,
	      void (*on_ready)(void *user, const char *ports), void *user, agent_t **outp);
/**
 * agent_reload() - a SIGHUP's new configuration: the [loadbalance] values
 * (every route, from its next decision on) and the lars-dns / lars-reporter
 * server lists (a connection to a server still listed is kept). Logs what
 * it changed; the rest of @cfg needs a restart (service.c names it).
 */
void agent_reload(agent_t *a, const agent_cfg_t *cfg);

/** agent_close() - send what is buffered if connected, close everything. */
void agent_close(agent_t *a);
