// SPDX-License-Identifier: MIT
// lars-reporter: receiving ReportStatusRequest and storing it in batches.
#pragma once

#include <stdbool.h>

#include <uv.h>

#include "metrics.h"
#include "service.h"

typedef struct rep_cfg {
	char ip[64];
	int port;
	int max_conns;
	bool reuse_port; /* share the port (SO_REUSEPORT); exclusive by default */
	int max_frame;
	int max_results;      /* results in one ReportStatusRequest */
	int db_thread_cnt;
	int batch_size;       /* pending keys that trigger a flush at once */
	int batch_keys;       /* most keys in one batch (one transaction) */
	int statement_timeout_ms;
	int max_clock_skew_s; /* a report's ts further ahead is refused */
	bool trust_loopback;  /* loopback peers' caller field is used */
	char trusted_proxies[1024]; /* peers whose caller field is used, IPs/CIDRs */
	int flush_interval_ms;
	int max_pending_keys; /* above: stop reading from agents until it drains */
	int history_days;
	int shutdown_timeout_s;
	char conninfo[1024];
	service_common_cfg_t common;
} rep_cfg_t;

typedef struct rep rep_t;
typedef void (*rep_done_cb)(void *user);

/** rep_new() - listen and serve; @on_ready(@user, port) once listening; *@outp only on success. */
int rep_new(uv_loop_t *loop, service_t *svc, const rep_cfg_t *cfg, metrics_t *m,
	    void (*on_ready)(void *user, int port), void *user, rep_t **outp);
/**
 * rep_close() - stop accepting, store what is pending within the shutdown
 * timeout, log what could not be stored, then close everything.
 */
void rep_close(rep_t *r);
