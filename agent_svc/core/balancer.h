// SPDX-License-Identifier: MIT
// The load balancer of one (modid, cmdid): idle and overload host lists,
// probing, virtual and real counters, windows and timeouts, exactly as the
// original Lars agent (DESIGN §5). No libuv: every call takes now_ms.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lars.pb.h"
#include "u64map.h"

/** struct lb_cfg - [loadbalance]; see lb_cfg_defaults() for the original's values. */
typedef struct lb_cfg {
	int probe_num;
	int init_succ_cnt;
	int init_err_cnt;
	double err_rate;
	double succ_rate;
	int contin_err_limit;
	int contin_succ_limit;
	double window_err_rate;
	int idle_timeout_s;
	int overload_timeout_s;
	int update_timeout_s;
	int panic_threshold;        /* percent; a route's policy overrides; 0 = off */
	int max_overload_timeout_s; /* cap of the ejection backoff */
} lb_cfg_t;

void lb_cfg_defaults(lb_cfg_t *c);
/** lb_cfg_equal() - the same values, field by field. */
bool lb_cfg_equal(const lb_cfg_t *a, const lb_cfg_t *b);

/* Room for the rule that moved a host ("err rate 0.34 > 0.10"). */
#define LB_RULE_MAX 48

typedef struct lb_host lb_host_t;
struct lb_host {
	int32_t ip;
	int32_t port;
	uint32_t vsucc, verr;             /* virtual: drive state changes */
	uint32_t rsucc, rerr;             /* real: the current window */
	uint32_t contin_succ, contin_err;
	bool overload;
	bool drain;                 /* no picks, still listed and counted */
	uint32_t weight;            /* 1..1000 (0 on the wire = 100) */
	int64_t joined_at;          /* unix seconds, for slow start; 0 = unknown */
	int64_t cur;                /* smooth weighted round robin's current weight */
	uint32_t eject_n;           /* consecutive ejections (backoff) */
	uint64_t idle_since_ms;     /* window start (became idle / last reset) */
	uint64_t overload_since_ms;
	uint64_t overload_ms;       /* how long this ejection lasts */
	uint64_t returned_ms;       /* last return from overload; 0 = never */
	/* Introspection (issue 20): what `lars agent-state` shows. */
	uint64_t picks;             /* get_host answers with this host */
	uint64_t changed_ms;        /* last idle <-> overloaded move (or joining) */
	char rule[LB_RULE_MAX];     /* the rule of that move ("" = joined) */
	lb_host_t *prev, *next;     /* in the idle or the overload list */
};

typedef struct lb_list {
	lb_host_t *head, *tail;
	size_t n;
} lb_list_t;

enum lb_status {
	LB_PULLING, /* asked the route service, no answer yet */
	LB_NEW,     /* has data (possibly an empty route: absent) */
};

typedef struct lb {
	int32_t modid;
	int32_t cmdid;
	enum lb_status status;
	bool has_data;            /* an answer arrived at least once */
	uint64_t updated_ms;      /* last route update */
	uint64_t pulled_ms;       /* last time a pull was asked for */
	uint32_t access_cnt;
	lb_list_t idle;
	lb_list_t overload;
	u64map_t hosts;           /* (ip, port) -> lb_host_t */
	const lb_cfg_t *cfg;
	/* Issue 19: the route's policy (lb_set_policy) and what follows from it. */
	int panic_threshold;      /* percent, 0 = off */
	uint32_t max_ejection_pct; /* 1..100 */
	uint32_t slow_start_s;    /* 0 = off */
	bool weighted;            /* weights differ or slow start: not plain round robin */
	size_t n_drained;         /* drained hosts, either list */
	size_t n_idle_drained;    /* drained hosts on the idle list */
	bool in_panic;
	int64_t wall_ms;          /* unix time, ms (lb_set_wall), for slow start */
	int64_t version;          /* the route version lars-dns sent; 0 = not known */
} lb_t;

/* What a state change (or anything worth reporting at once) looks like. */
enum {
	LB_NO_CHANGE = 0,
	LB_CHANGED = 1,
};

/* lb_get_host()'s outcomes; the agent's core maps them to its answers. */
enum {
	LB_OK = 0,
	LB_E_OVERLOAD = 1, /* every host overloaded, not a probe turn */
	LB_E_NOEXIST = 2,  /* no hosts */
};

/**
 * struct lb_iter - a walk over a route's hosts, idle ones first, then the
 * overloaded ones. Valid while the balancer is not changed.
 * @n: the route's hosts (what the walk yields at most).
 */
typedef struct lb_iter {
	const lb_host_t *next;
	const lb_host_t *overload; /* where the walk goes after idle */
	size_t n;
} lb_iter_t;

void lb_init(lb_t *lb, int32_t modid, int32_t cmdid, const lb_cfg_t *cfg);
void lb_deinit(lb_t *lb);

/**
 * lb_get_host() - pick a host (round robin, probing overloaded hosts every
 * probe_num calls). Return: LB_OK with *out set, LB_E_OVERLOAD (every host
 * overloaded, not a probe turn) or LB_E_NOEXIST (no hosts).
 */
int lb_get_host(lb_t *lb, uint64_t now_ms, lars_HostInfo *out);

/**
 * lb_set_policy() - the route's policy from lars-dns (NULL: the default:
 * panic_threshold from [loadbalance], no ejection limit, no slow start).
 */
void lb_set_policy(lb_t *lb, const lars_RoutePolicy *p);
/** lb_set_wall() - the wall clock (unix ms) slow start ramps on. */
static inline void lb_set_wall(lb_t *lb, int64_t unix_ms)
{
	lb->wall_ms = unix_ms;
}
/** lb_weight() - @h's weight now, slow start applied (at least 1). */
uint32_t lb_weight(const lb_t *lb, const lb_host_t *h);
/** lb_check_panic() - re-evaluate panic mode. Return: +1 entered, -1 left, 0 same. */
int lb_check_panic(lb_t *lb);

/** lb_needs_pull() - NEW and older than update_timeout, or a pull gone unanswered as long. */
bool lb_needs_pull(const lb_t *lb, uint64_t now_ms);
/** lb_pulling() - mark that a GetRouteRequest was sent now. */
void lb_pulling(lb_t *lb, uint64_t now_ms);

/**
 * lb_update() - the route's hosts now (answer or push): new hosts join idle
 * with fresh counters, vanished ones leave whichever list, staying ones keep
 * their counters. An empty list leaves the route known as absent.
 */
void lb_update(lb_t *lb, const lars_HostInfo *hosts, size_t n, uint64_t now_ms);

/**
 * lb_report() - one call's outcome (@ok: it succeeded) for a host.
 * Return: LB_CHANGED if the host moved between idle and overload,
 * LB_NO_CHANGE, or -ENOENT for a host not in the route.
 */
int lb_report(lb_t *lb, int32_t ip, int32_t port, bool ok, uint64_t now_ms);

/**
 * lb_tick() - window and overload expiry without any report (from a timer).
 * Return: LB_CHANGED if any host changed state.
 */
int lb_tick(lb_t *lb, uint64_t now_ms);

lb_host_t *lb_find(const lb_t *lb, int32_t ip, int32_t port);
/** lb_iter_init() - walk @lb's hosts (none for a NULL @lb). */
void lb_iter_init(lb_iter_t *it, const lb_t *lb);
/** lb_iter_next() - the next host, or NULL at the end. */
const lb_host_t *lb_iter_next(lb_iter_t *it);

static inline size_t lb_n_hosts(const lb_t *lb)
{
	return lb->idle.n + lb->overload.n;
}
