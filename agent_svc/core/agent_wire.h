// SPDX-License-Identifier: MIT
// The agent's messages around its core: decode a frame body, ask the core,
// fill the answer to encode; drain the core's queues into send functions.
// lars-agent's loop and the fuzz target run the same functions; only the
// send functions and the replies differ.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_core.h"
#include "msg.h"

/* Queue one request (a GetRouteRequest body) to lars-dns. Return: 0 if queued. */
typedef int (*awire_dns_send_fn)(void *user, int32_t msgid, const lars_GetRouteRequest *req);
/* Queue one ReportStatusRequest (@n_results hosts) to lars-reporter. Return: 0 if queued. */
typedef int (*awire_report_send_fn)(void *user, const lars_ReportStatusRequest *req,
				    size_t n_results);

/* Queue a RouteAck (issue 20.3) to lars-dns. Return: 0 if queued. */
typedef int (*awire_ack_send_fn)(void *user, const lars_RouteAck *ack);

/**
 * struct awire - the core and how its requests leave.
 * @max_hosts: hosts accepted in one route from lars-dns (more are cut).
 * @caller: the ip reported as caller to lars-reporter.
 */
typedef struct awire {
	acore_t *core;
	awire_dns_send_fn send_dns;
	awire_report_send_fn send_report;
	void *user;
	size_t max_hosts;
	int32_t caller;
	awire_ack_send_fn send_ack; /* NULL: routes are not acknowledged */
} awire_t;

/** struct awire_route - an API get_route answer, ready to encode. */
typedef struct awire_route {
	lars_GetRouteResponse resp; /* its hosts bound to @arr: do not move */
	msg_array_t arr;
	lars_HostInfo *hosts;
	bool cut; /* fewer hosts than the route has: host_total says how many */
} awire_route_t;

int awire_get_host(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms,
		   lars_GetHostResponse *resp);
int awire_report(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms);
/**
 * awire_report_batch() - a ReportBatchRequest body (a client's results, many
 * hosts) in; *@callsp: the calls it carried. Return: 0, or MSG_E_DECODE.
 */
int awire_report_batch(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms,
		       uint64_t *callsp);
int awire_get_route(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms,
		    awire_route_t *out);
void awire_route_deinit(awire_route_t *r);
int awire_route_answer(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms,
		       bool *truncatedp);
int awire_drain_dns(awire_t *w, int rc);
bool awire_resend_reports(awire_t *w, uint64_t now_ms);
void awire_flush_reports(awire_t *w, uint32_t ts, uint64_t now_ms);
int awire_report_ack(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms,
		     uint64_t *agent_idp, uint64_t *seqp);
