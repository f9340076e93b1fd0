// SPDX-License-Identifier: MIT
// The agent's view of its routes (issue 20.1): AgentStateResponse as plain
// arrays, built by the agent, cut to one datagram, encoded and decoded, and
// written as JSON (the agent's GET /routes and `lars agent-state -o json`
// share this one writer, so both show the same fields by the same names).
// No libuv, no log; allocation failures are returned, never fatal.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lars.pb.h"
#include "msg.h"

enum as_route_state { AS_ROUTE_PULLING = 0, AS_ROUTE_READY = 1, AS_ROUTE_ABSENT = 2 };
enum as_host_state { AS_HOST_IDLE = 0, AS_HOST_OVERLOADED = 1, AS_HOST_DRAINED = 2 };

/**
 * struct as_state - routes in order, each with its host_listed hosts in
 * @hosts one route after the other.
 */
typedef struct as_state {
	lars_RouteState *routes;
	size_t n_routes, cap_routes;
	lars_HostState *hosts;
	size_t n_hosts, cap_hosts;
	uint32_t route_total; /* routes the request named that the agent holds */
	bool cut;
	/* Encoding: the arrays bound to the answer (as_bind()). */
	msg_array_t arr_routes, arr_hosts;
} as_state_t;

void as_init(as_state_t *s);
void as_deinit(as_state_t *s);

/** as_add_route() - append @r (host_listed reset to 0). Return: 0 or -ENOMEM. */
int as_add_route(as_state_t *s, const lars_RouteState *r);
/** as_add_host() - append @h to the last route (host_listed + 1). Return: 0 or -ENOMEM. */
int as_add_host(as_state_t *s, const lars_HostState *h);

/**
 * as_fit() - keep what fits an encoded body of @budget bytes: routes in
 * order, and of the last one that fits only the hosts that fit too; sets
 * ->cut when anything was left out. Return: the body size kept.
 */
size_t as_fit(as_state_t *s, size_t budget);

/** as_bind() - @resp (zeroed by the caller) encodes @s; @s must outlive the encode. */
void as_bind(as_state_t *s, lars_AgentStateResponse *resp);

/**
 * as_decode() - an AgentStateResponse body into @s (as_init()ed; freed by
 * as_deinit() also on failure), hosts checked against the routes' counts.
 * Return: 0, MSG_E_DECODE (with *whyp) or -ENOMEM.
 */
int as_decode(const uint8_t *body, size_t len, as_state_t *s, const char **whyp);

/** as_route_state_name() / as_host_state_name() - "pulling", "idle", ... */
const char *as_route_state_name(uint32_t state);
const char *as_host_state_name(uint32_t state);

/**
 * as_json() - @s as one JSON object {"routes": [{..., "hosts": [...]}],
 * "route_total", "cut"}; malloc'd, NUL-terminated, *@lenp its length.
 * Return: the text, or NULL when out of memory.
 */
char *as_json(const as_state_t *s, size_t *lenp);
