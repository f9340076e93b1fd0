// SPDX-License-Identifier: MIT
// The instances registered through this agent (issue 23): what each should
// be at lars-dns (listed, drained, gone), the leases renewed every TTL/3,
// the health checks due, the drain before a deregistration removes a host.
// No libuv: every call takes now_ms; the agent carries the requests to
// lars-dns and runs the checks (agent_svc/registration.c).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lars.pb.h"

typedef struct reg_cfg {
	int ttl_s;             /* a request's ttl_s 0 */
	int check_interval_ms; /* between two checks of one instance */
	int check_timeout_ms;  /* one check */
	int check_fall;        /* consecutive failures that drain a healthy instance */
	int check_rise;        /* consecutive passes that bring a failing one back */
	int drain_ms;          /* a deregistration's drain before the removal */
	int max;               /* registrations held */
	int32_t caller;        /* the address of a request with ip 0 */
} reg_cfg_t;

/* Where an instance is at lars-dns, as its last answer said. */
enum reg_dns {
	REG_DNS_NONE,     /* not listed (never, removed, or its lease expired) */
	REG_DNS_LISTED,   /* listed with our lease, taking picks */
	REG_DNS_DRAINED,  /* listed with our lease, drained */
	REG_DNS_OPERATOR, /* an operator's host: nothing of ours attached */
};

enum reg_health { REG_UNKNOWN, REG_HEALTHY, REG_FAILING };

/* A health check to run: connect to ip:port (and GET path). */
typedef struct reg_check {
	uint32_t id, gen; /* give both back to reg_check_done() */
	int32_t ip;
	int port;
	int kind; /* LARS_CHECK_TCP or LARS_CHECK_HTTP */
	const char *path;
	int timeout_ms;
} reg_check_t;

typedef struct reg_ops {
	/* Send @req to lars-dns: 0, or an error (the request is tried again). */
	int (*send)(void *user, const lars_LeaseRequest *req);
	/* Start @c; its result comes back through reg_check_done(). */
	void (*check)(void *user, const reg_check_t *c);
	/* One line for the log: an instance changed state. */
	void (*log)(void *user, const char *line);
	void *user;
} reg_ops_t;

typedef struct reg_entry reg_entry_t;

typedef struct reg_counts {
	uint64_t registered, deregistered, renewals, check_failures, drained_by_check;
} reg_counts_t;

typedef struct reg {
	reg_cfg_t cfg;
	reg_ops_t ops;
	reg_entry_t *e; /* cfg.max slots */
	size_t n;       /* slots in use, tombstones included */
	uint32_t next_seq;
	size_t n_single; /* register / drain / deregister requests in flight (reg_tick) */
	bool link_up;   /* connected to lars-dns, AgentHello sent */
	reg_counts_t counts;
	lars_LeaseRequest renew; /* the batch being filled */
} reg_t;

int reg_init(reg_t *r, const reg_cfg_t *cfg, const reg_ops_t *ops);
void reg_deinit(reg_t *r);

/**
 * reg_request() - an app's RegisterRequest (@deregister: a
 * DeregisterRequest), answered into @resp (seq, state, message, ...).
 * Registering again refreshes and calls off a deregistration under way.
 */
void reg_request(reg_t *r, const lars_RegisterRequest *req, bool deregister, uint64_t now_ms,
		 lars_RegisterResponse *resp);

/** reg_lease_answer() - lars-dns's LeaseResponse to one of our requests. */
void reg_lease_answer(reg_t *r, const lars_LeaseResponse *resp, uint64_t now_ms);

/** reg_check_done() - the check reg_ops.check() started for (@id, @gen) ended. */
void reg_check_done(reg_t *r, uint32_t id, uint32_t gen, bool ok, const char *why,
		    uint64_t now_ms);

/**
 * reg_set_link() - the lars-dns connection is up (AgentHello sent) or not.
 * Requests in flight are lost with a connection: sent again when it is up.
 */
void reg_set_link(reg_t *r, bool up, uint64_t now_ms);

/** reg_tick() - checks due, leases to register, renew, drain or remove. */
void reg_tick(reg_t *r, uint64_t now_ms);

/** reg_count() - registrations held (tombstones of removed ones left out). */
size_t reg_count(const reg_t *r);
