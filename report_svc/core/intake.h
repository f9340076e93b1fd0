// SPDX-License-Identifier: MIT
// lars-reporter's request handling: a ReportStatusRequest body decoded,
// admitted (admit.h: its caller and its time) and folded into the pending
// map. No libuv; the caller passes both clocks.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admit.h"
#include "agents.h"
#include "cum.h"
#include "log.h"
#include "pending.h"

typedef struct intake {
	admit_t admit;
	size_t max_results;  /* results in one report; more is bad input */
	uint64_t last_rx_us; /* receive order handed out last */
	cum_t cum;           /* last totals of reports without the delta marker */
	log_ratelimit_t rl_refused;
} intake_t;

/** struct intake_conn - what a connection's reports are admitted with. */
typedef struct intake_conn {
	admit_peer_t peer;
	bool warned; /* about an address that cannot be a caller */
} intake_conn_t;

/** struct intake_result - what became of one report (for the counters). */
typedef struct intake_result {
	size_t n_results;         /* results the report carried */
	bool added;               /* folded into the pending map */
	bool caller_refused;      /* dropped: an untrusted peer without IPv4 */
	bool caller_replaced;     /* an untrusted peer's caller field was not its address */
	enum admit_ts_result ts;  /* FUTURE: dropped; PAST: stored under our time */
	uint64_t agent_id;        /* acknowledged agent (with a seq), else 0 */
	uint64_t seq;
	bool duplicate;           /* its seq was taken in already: not applied */
	bool ack_now;             /* stored already: acknowledge ack_seq at once */
	uint64_t ack_seq;
	bool cumulative;          /* running totals, turned into differences */
	unsigned resets;          /* of those, totals lower than the last */
} intake_result_t;

int intake_init(intake_t *in, const char *trusted_proxies, bool trust_loopback,
		uint32_t max_skew_s, size_t max_results, const char **whyp);
/** intake_conn_init() - decide once what reports from @peer ("ip:port") are stored under. */
void intake_conn_init(const intake_t *in, const char *peer, intake_conn_t *c);
void intake_deinit(intake_t *in);
int intake_report(intake_t *in, intake_conn_t *c, const char *peer, const uint8_t *body,
		  size_t len, uint64_t wall_us, uint64_t now_ms, pending_t *p,
		  intake_result_t *res);
int intake_report_to(intake_t *in, intake_conn_t *c, const char *peer, const uint8_t *body,
		     size_t len, uint64_t wall_us, uint64_t now_ms, pending_t *p,
		     rep_agents_t *ag, intake_result_t *res);
