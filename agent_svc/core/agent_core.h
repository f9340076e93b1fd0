// SPDX-License-Identifier: MIT
// The agent's decisions: what get_host, get_route and report answer, what a
// route answer or push from lars-dns changes, which pulls and unsubscribes go
// to lars-dns, which counts go to lars-reporter, and what the timers expire.
// No sockets and no clock of its own: every call takes now_ms, and what is
// to be sent comes out of queues the loop drains (acore_next_dns(),
// acore_take_reports()). The loop tells the core how the lars-dns link is.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_state.h"
#include "balancer.h"
#include "keyset.h"
#include "report_acks.h"
#include "report_buf.h"
#include "route_table.h"

typedef struct acore acore_t;

/* The core's answers; acore_retcode() maps them to the wire, in one place. */
enum {
	ACORE_OK = 0,
	ACORE_E_OVERLOAD = 1,    /* every host overloaded, not a probe turn */
	ACORE_E_PENDING = 2,     /* no hosts yet: being pulled (or waits for the connection) */
	ACORE_E_ABSENT = 3,      /* lars-dns says there is no such route */
	ACORE_E_UNREACHABLE = 4, /* lars-dns is unreachable: the agent cannot know */
	ACORE_E_LIMITED = 5,     /* over [agent] pull_rate: not pulled */
	ACORE_E_NO_ROOM = 6,     /* hosts, but max_routes routes all in use */
	ACORE_E_BUSY = 7,        /* the pull could not be sent (lars-dns's queue full) */
	ACORE_E_UNKNOWN_HOST = 8, /* a report for a host not (any more) in the route */
};

/* State of the connection to lars-dns, as the loop sees it. */
enum acore_link {
	ACORE_LINK_CONNECTING, /* the first attempt is under way */
	ACORE_LINK_UP,
	ACORE_LINK_DOWN,       /* lost, or an attempt failed since the last connect */
};

/* What the core counts; the loop exports them under their metric names. */
enum acore_counter {
	ACORE_C_UNKNOWN_HOST,   /* reports for a host not in the route */
	ACORE_C_ROUTE_UPDATES,  /* route answers and pushes applied */
	ACORE_C_STATE_CHANGES,  /* balancers in which a host changed state */
	ACORE_C_REPORT_DROPPED, /* reports not buffered: report buffer full */
	ACORE_C_EVICTED,        /* routes evicted at max_routes */
	ACORE_C_PULLS_LIMITED,  /* pulls not sent: over pull_rate */
	ACORE_C_ABSENT_EVICTED, /* keys without hosts dropped at max_absent */
	ACORE_C_NO_ROOM,        /* routes with hosts not held: max_routes, all in use */
	ACORE_C_REPORTS_DROPPED, /* calls in unacknowledged messages dropped at the bound */
	ACORE_C_REPORTS_RESENT, /* ReportStatusRequests sent again */
	ACORE_C_REPORTS_ACKED,  /* ReportStatusRequests acknowledged */
	ACORE_C_PANIC,          /* routes entering panic mode (issue 19.5) */
	ACORE_N_COUNTERS
};

typedef struct acore_cfg {
	size_t max_routes;
	size_t max_absent;       /* keys without hosts remembered */
	double pull_rate;        /* pulls a second for keys not in the route table */
	double pull_burst;
	size_t report_max_hosts; /* hosts with counts buffered for lars-reporter, and
				  * results held unacknowledged (each bound apart) */
	uint64_t agent_id;       /* in every ReportStatusRequest: random, nonzero */
	uint64_t ack_timeout_ms; /* no ack for this long: held messages go again */
	bool cumulative;         /* [reporter] counts = cumulative: window totals, no delta */
	bool track_changes;      /* keep the keys whose route changed (acore_next_changed()) */
	lb_cfg_t lb;
} acore_cfg_t;

enum acore_dns_kind {
	ACORE_PULL,        /* GetRouteRequest */
	ACORE_UNSUBSCRIBE, /* UnsubscribeRequest */
};

/** struct acore_dns_msg - one request for lars-dns, from acore_next_dns(). */
typedef struct acore_dns_msg {
	enum acore_dns_kind kind;
	int32_t modid;
	int32_t cmdid;
	/* private: what acore_dns_unsent() needs to undo */
	int _why;
	uint64_t _since_ms;
} acore_dns_msg_t;

/** struct acore_report - one ReportStatusRequest (but caller) for lars-reporter. */
typedef struct acore_report {
	int32_t modid;
	int32_t cmdid;
	const lars_HostCallResult *results; /* owned by the core, until the next call */
	size_t n;
	uint64_t agent_id;
	uint64_t seq;
	uint32_t ts;
	bool delta;
} acore_report_t;

/* Balancers looked at per acore_tick(): a pass over 100k routes takes 1 s at 5 ticks a second. */
#define ACORE_TICK_BUDGET 20000
/* Keys looked at per acore_repull_step() (one loop turn): each may be a pull
 * sent, so this bounds the frames one turn encodes and queues. */
#define ACORE_REPULL_BUDGET 1000

int acore_new(const acore_cfg_t *cfg, uint64_t now_ms, acore_t **outp);
acore_t *acore_free(acore_t *c);

/** acore_set_link() - how the lars-dns link is now (before a request). */
void acore_set_link(acore_t *c, enum acore_link link);

/**
 * acore_set_lb() - new [loadbalance] values (a reload): every route's
 * balancer reads them from its next decision on; counters, windows and
 * host states are kept. Return: whether anything differed.
 */
bool acore_set_lb(acore_t *c, const lb_cfg_t *lb);
/** acore_dns_connected() - a new lars-dns connection: every key is to be pulled again. */
void acore_dns_connected(acore_t *c, uint64_t now_ms);
/** acore_repull_step() - pull the next @budget keys of that; false once all are done. */
bool acore_repull_step(acore_t *c, uint64_t now_ms, size_t budget);
/** acore_repulling() - whether a re-pull has keys left. */
bool acore_repulling(const acore_t *c);

int acore_get_host(acore_t *c, int32_t modid, int32_t cmdid, uint64_t now_ms,
		   lars_HostInfo *hostp);
int acore_get_route(acore_t *c, int32_t modid, int32_t cmdid, uint64_t now_ms,
		    lb_iter_t *itp);
int acore_report(acore_t *c, int32_t modid, int32_t cmdid, int32_t ip, int32_t port,
		 bool ok, uint64_t now_ms);
int acore_report_call(acore_t *c, int32_t modid, int32_t cmdid, int32_t ip, int32_t port,
		      bool ok, uint32_t latency_us, uint64_t now_ms);
/**
 * acore_set_wall() - the wall clock (unix ms) for slow start, set by the loop
 * before it calls in (every agent ramps a host on the same join time).
 */
void acore_set_wall(acore_t *c, int64_t unix_ms);
/** acore_routes_in_panic() - routes whose balancer is in panic mode now. */
size_t acore_routes_in_panic(const acore_t *c);
/** acore_apply_route_policy() - acore_apply_route() with the route's policy (NULL: default). */
void acore_apply_route_policy(acore_t *c, int32_t modid, int32_t cmdid,
			      const lars_HostInfo *hosts, size_t n,
			      const lars_RoutePolicy *policy, uint64_t now_ms);
void acore_apply_route(acore_t *c, int32_t modid, int32_t cmdid, const lars_HostInfo *hosts,
		       size_t n, uint64_t now_ms);
void acore_tick(acore_t *c, uint64_t now_ms);
/** acore_count_hosts() - hosts of the routes held by state (AS_HOST_IDLE, ...). */
void acore_count_hosts(const acore_t *c, size_t counts[3]);
/**
 * acore_set_route_version() - the version lars-dns sent with the route just
 * applied. Return: whether the route is held (absent keys are too).
 */
bool acore_set_route_version(acore_t *c, int32_t modid, int32_t cmdid, int64_t version);

/**
 * acore_state() - what the agent holds, for `lars agent-state` and GET
 * /routes (issue 20.1): every route and key without hosts (@all), by modid
 * and cmdid, or the one of (@modid, @cmdid). Changes nothing (no pull).
 * Return: 0, or -ENOMEM (@out partly filled).
 */
int acore_state(const acore_t *c, bool all, int32_t modid, int32_t cmdid, uint64_t now_ms,
		as_state_t *out);

bool acore_next_dns(acore_t *c, acore_dns_msg_t *msgp);
int acore_dns_unsent(acore_t *c, const acore_dns_msg_t *msg);

bool acore_take_flush_soon(acore_t *c);
size_t acore_take_reports(acore_t *c, uint32_t ts, uint64_t now_ms);
bool acore_next_report(acore_t *c, acore_report_t *rp);
void acore_reports_unsent(acore_t *c);

/* The lars-reporter link and its acknowledgements (core/report_acks.c). */
void acore_reporter_connected(acore_t *c, uint64_t now_ms);
void acore_reporter_lost(acore_t *c);
int acore_reporter_ack(acore_t *c, uint64_t agent_id, uint64_t seq, uint64_t now_ms);
enum ra_event acore_reporter_tick(acore_t *c, uint64_t now_ms);
bool acore_next_resend(acore_t *c, acore_report_t *rp);
void acore_resent(acore_t *c, uint64_t now_ms);

int acore_retcode(int rc);

/* Calls of one batch entry that go into the balancer one by one. */
#define ACORE_BATCH_CALLS_MAX 4096u
/**
 * acore_report_batch() - a client's results for one host from a
 * ReportBatchRequest (shared-memory fast path): into the balancer call by
 * call, successes and errors interleaved, and into the report buffer whole.
 * Return: as acore_report().
 */
int acore_report_batch(acore_t *c, const lars_ReportBatchEntry *b, uint64_t now_ms);

/**
 * acore_next_changed() - with cfg.track_changes, the next key whose route
 * changed since it was last taken (hosts, policy, version, a host's state,
 * panic mode, or gone: acore_peek_route() then finds none), each once.
 * Return: false when there is none.
 */
bool acore_next_changed(acore_t *c, int32_t *modidp, int32_t *cmdidp);
/** acore_peek_route() - the route's balancer without touching its use time; NULL if none. */
const lb_t *acore_peek_route(const acore_t *c, int32_t modid, int32_t cmdid);
/** acore_wall() - the wall clock last given by acore_set_wall(). */
int64_t acore_wall(const acore_t *c);

uint64_t acore_count(const acore_t *c, enum acore_counter i);
const route_table_t *acore_routes(const acore_t *c);
const keyset_t *acore_keyset(const acore_t *c);
const report_buf_t *acore_report_buf(const acore_t *c);
const report_acks_t *acore_report_acks(const acore_t *c);
