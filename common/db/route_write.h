// SPDX-License-Identifier: MIT
// The one write path for routes and descriptions (larsctl, lars-admin):
// validation, then one transaction per change. The database triggers bump
// the version, record the change and NOTIFY in that same transaction.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/** struct route_entry - one validated host of one route. */
typedef struct route_entry {
	int32_t modid;
	int32_t cmdid;
	char ip[16]; /* dotted IPv4 */
	int port;
} route_entry_t;

enum {
	ROUTE_CHANGED = 0,
	ROUTE_UNCHANGED = 1, /* duplicate add, or del of a host not in the route */
	ROUTE_NO_HOST = 2,   /* weight / drain of a host the route does not have */
};

/* Traffic control (migration 008): a host's weight, a route's policy. */
#define ROUTE_WEIGHT_MIN 1
#define ROUTE_WEIGHT_MAX 1000
#define ROUTE_WEIGHT_DEFAULT 100
#define ROUTE_SLOW_START_MAX 86400
#define ROUTE_PANIC_AGENT (-1) /* panic_threshold: the agent's [loadbalance] value */

/** struct route_policy - a route's balancing policy, as stored. */
typedef struct route_policy {
	int panic_threshold;      /* 0..100 percent, or ROUTE_PANIC_AGENT */
	int max_ejection_percent; /* 1..100 (100: the original) */
	int slow_start_s;         /* 0..86400 (0: off) */
} route_policy_t;

#define ROUTE_POLICY_DEFAULT ((route_policy_t){ ROUTE_PANIC_AGENT, 100, 0 })

/** struct route_policy_set - which fields of a policy a change sets. */
typedef struct route_policy_set {
	bool panic, ejection, slow_start;
	route_policy_t v; /* the new values of the fields set */
} route_policy_set_t;

/*
 * The route triggers' WHERE for one host: $1 modid, $2 cmdid, $3 ip, $4 port
 * (route_write.c, route_lease.c).
 */
#define ROUTE_HOST_IS "modid = $1::int AND cmdid = $2::int AND ip = $3::inet AND port = $4::int"

/**
 * route_set_actor() - the actor the change records of this session (or, with
 * @this_transaction, of the open transaction only) name (migration 010);
 * NULL changes nothing. Return: 0 or -EIO.
 */
int route_set_actor(PGconn *conn, const char *actor, bool this_transaction);

/** route_parse_id() - a decimal id 0..2147483647; -EINVAL with *whyp. */
int route_parse_id(const char *s, const char *what, int32_t *outp, const char **whyp);
/**
 * route_parse() - validate the four words an operator typed.
 * Return: 0, or -EINVAL with *whyp a one-line reason and *fieldp (if
 * @fieldp) the input at fault: "modid", "cmdid", "ip" or "port".
 */
int route_parse(const char *modid, const char *cmdid, const char *ip,
		const char *port, route_entry_t *out, const char **whyp,
		const char **fieldp);

#define ROUTE_DESC_MAX 4096

/**
 * route_describe_check() - a description: valid UTF-8, at most 4096 bytes,
 * without C0/C1 control characters (tab aside), DEL, U+2028/U+2029 or bidi
 * overrides/isolates (U+202A-U+202E, U+2066-U+2069). -EINVAL with *whyp.
 */
int route_describe_check(const char *text, const char **whyp);
/**
 * route_describe() - set the description of module @modid (@cmdid < 0) or of
 * route (@modid, @cmdid), registering the ids; one transaction.
 * Return: 0 or -EIO (logged; nothing changed).
 */
int route_describe(PGconn *conn, int32_t modid, int32_t cmdid, const char *text);

/**
 * route_add() / route_del() - change one host, in one transaction.
 * *versionp gets the route version after the change (or the current one).
 * Return: ROUTE_CHANGED, ROUTE_UNCHANGED, or -EIO (logged; nothing changed).
 */
int route_add(PGconn *conn, const route_entry_t *e, int64_t *versionp);
int route_del(PGconn *conn, const route_entry_t *e, int64_t *versionp);
/** route_parse_weight() - "1".."1000": 0, or -EINVAL with *whyp. */
int route_parse_weight(const char *s, int *outp, const char **whyp);
/**
 * route_parse_policy_value() - the value of one policy option: @field is
 * "panic_threshold" (0..100 or "default": the agent's), "max_ejection_percent"
 * (1..100) or "slow_start" (seconds 0..86400). 0 with @set updated, or
 * -EINVAL with *whyp.
 */
int route_parse_policy_value(const char *field, const char *s, route_policy_set_t *set,
			     const char **whyp);

/**
 * route_set_weight() / route_set_drain() - change one host of a route, in
 * one transaction (a 'set' change record, version bump, NOTIFY).
 * Return: ROUTE_CHANGED, ROUTE_UNCHANGED (already so), ROUTE_NO_HOST, or
 * -EIO (logged; nothing changed).
 */
int route_set_weight(PGconn *conn, const route_entry_t *e, int weight, int64_t *versionp);
int route_set_drain(PGconn *conn, const route_entry_t *e, bool drain, int64_t *versionp);

/**
 * route_policy_read() - the policy of route (@modid, @cmdid); the default
 * when it has none stored. Return: 0 or -EIO.
 */
int route_policy_read(PGconn *conn, int32_t modid, int32_t cmdid, route_policy_t *out);
/**
 * route_set_policy() - set the fields @set names, in one transaction (a
 * 'policy' change record, version bump, NOTIFY); *outp (if given) gets the
 * whole policy after it. Return: ROUTE_CHANGED, ROUTE_UNCHANGED or -EIO.
 */
int route_set_policy(PGconn *conn, int32_t modid, int32_t cmdid, const route_policy_set_t *set,
		     route_policy_t *outp, int64_t *versionp);
/** route_policy_text() - "panic_threshold 50 (agent default), ...", as larsctl prints it. */
void route_policy_text(char *buf, size_t cap, const route_policy_t *p);
/**
 * route_tc_message() - the one line that tells an operator what
 * route_set_weight() (@what "weight", @value the weight) or route_set_drain()
 * (@what "drain", @value 1 drain / 0 undo) did (@r its result).
 */
void route_tc_message(char *buf, size_t cap, const char *what, int value, int r,
		      const route_entry_t *e, int64_t version);

/**
 * route_message() - the one line that tells an operator what route_add()
 * (@add) or route_del() did (@r its result), for larsctl and the console.
 */
void route_message(char *buf, size_t cap, bool add, int r, const route_entry_t *e,
		   int64_t version);
