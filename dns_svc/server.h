// SPDX-License-Identifier: MIT
// lars-dns: serving routes from the current snapshot, subscriptions, and the
// refresh pipeline that swaps snapshots and pushes what changed.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "metrics.h"
#include "pg_worker.h"
#include "service.h"

typedef struct dns_cfg {
	char ip[64];
	int port;
	int max_conns;
	int max_frame;
	int max_write_queue;   /* the hard output limit when output_hard_limit is 0 */
	int output_hard_limit; /* bytes behind that cut a subscriber off at once */
	int output_soft_limit; /* bytes behind that cut it off after output_soft_seconds */
	int output_soft_seconds;
	int output_total_limit; /* bytes queued to all connections together */
	int max_conns_per_ip;
	int subscribe_timeout_s;     /* a connection that asks for nothing is closed */
	int partial_frame_timeout_s; /* a frame begun and not finished */
	int max_subscriptions; /* keys one connection may subscribe to */
	int db_threads;
	int lease_db_threads; /* [dns] lease_db_threads: lease requests and expiry, apart */
	int poll_interval_ms;  /* version check, the fallback for NOTIFY */
	int reload_interval_s; /* full reload and compare */
	int change_log_days;   /* route_change rows kept */
	int agents_interval_ms; /* connected agents and propagation written; 0 = never */
	int lease_expiry_interval_ms; /* self-registered hosts past their lease removed; 0 = never */
	bool wait_for_db;
	bool reuse_port; /* share the port (SO_REUSEPORT); exclusive by default */
	char conninfo[1024];
	int reactor_threads; /* the original's [reactor] threadNum: no effect */
	service_common_cfg_t common;
} dns_cfg_t;

typedef struct dns dns_t;

/**
 * dns_ready_cb - lars-dns serves now, on TCP port @port. On a failed first
 * load without wait_for_db the service fails (service_fail) instead.
 */
typedef void (*dns_ready_cb)(void *user, int port);

/** dns_new() - load the routes (off the loop), then listen and serve; *outp only on success. */
int dns_new(uv_loop_t *loop, service_t *svc, const dns_cfg_t *cfg, metrics_t *m,
	    dns_ready_cb on_ready, void *user, dns_t **outp);
/** dns_close() - stop serving, close every handle; freed when they are. */
void dns_close(dns_t *d);
