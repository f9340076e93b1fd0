// SPDX-License-Identifier: MIT
// The agent's view of its routes: arrays, datagram fit, codec and JSON.
#include "agent_state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jbuf.h"

void as_init(as_state_t *s)
{
	*s = (as_state_t){ 0 };
}

void as_deinit(as_state_t *s)
{
	free(s->routes);
	free(s->hosts);
	as_init(s);
}

/* Room for one more element of @size bytes in *@v (capacity *@cap). */
static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 16, bytes;
	if (__builtin_mul_overflow(ncap, size, &bytes))
		return -ENOMEM;
	void *p = realloc(*v, bytes);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = ncap;
	return 0;
}

int as_add_route(as_state_t *s, const lars_RouteState *r)
{
	if (grow((void **)&s->routes, &s->cap_routes, s->n_routes, sizeof(*r)))
		return -ENOMEM;
	s->routes[s->n_routes] = *r;
	s->routes[s->n_routes++].host_listed = 0;
	return 0;
}

int as_add_host(as_state_t *s, const lars_HostState *h)
{
	if (!s->n_routes || grow((void **)&s->hosts, &s->cap_hosts, s->n_hosts, sizeof(*h)))
		return -ENOMEM;
	s->hosts[s->n_hosts++] = *h;
	s->routes[s->n_routes - 1].host_listed++;
	return 0;
}

/* Bytes one element of a repeated submessage field takes: tag, length, body. */
static size_t elem_size(const pb_msgdesc_t *fields, const void *msg)
{
	size_t body = 0;
	if (msg_encoded_size(fields, msg, &body))
		return SIZE_MAX / 4;
	size_t len = 1;
	for (size_t b = body; b >= 0x80; b >>= 7)
		len++;
	return 1 + len + body;
}

size_t as_fit(as_state_t *s, size_t budget)
{
	/* route_total (tag + up to 5 bytes) and cut (2). */
	size_t used = 8, hi = 0;
	for (size_t i = 0; i < s->n_routes; i++) {
		lars_RouteState *r = &s->routes[i];
		size_t rsz = elem_size(lars_RouteState_fields, r);
		if (used + rsz > budget) {
			s->n_routes = i;
			s->n_hosts = hi;
			s->cut = true;
			return used;
		}
		used += rsz;
		for (uint32_t j = 0; j < r->host_listed; j++) {
			size_t hsz = elem_size(lars_HostState_fields, &s->hosts[hi + j]);
			if (used + hsz > budget) {
				/* A smaller host_listed never encodes longer. */
				r->host_listed = j;
				s->n_routes = i + 1;
				s->n_hosts = hi + j;
				s->cut = true;
				return used;
			}
			used += hsz;
		}
		hi += r->host_listed;
	}
	return used;
}

void as_bind(as_state_t *s, lars_AgentStateResponse *resp)
{
	s->arr_routes = (msg_array_t){ s->routes, s->n_routes, sizeof(lars_RouteState),
				       lars_RouteState_fields };
	s->arr_hosts = (msg_array_t){ s->hosts, s->n_hosts, sizeof(lars_HostState),
				      lars_HostState_fields };
	msg_array_bind(&s->arr_routes, &resp->route);
	msg_array_bind(&s->arr_hosts, &resp->host);
	resp->route_total = s->route_total;
	resp->cut = s->cut;
}

int as_decode(const uint8_t *body, size_t len, as_state_t *s, const char **whyp)
{
	lars_AgentStateResponse resp = lars_AgentStateResponse_init_zero;
	msg_vec_t vr, vh;
	msg_vec_init(&vr, lars_RouteState_fields, sizeof(lars_RouteState), MSG_UDP_DATAGRAM_MAX / 2);
	msg_vec_init(&vh, lars_HostState_fields, sizeof(lars_HostState), MSG_UDP_DATAGRAM_MAX / 2);
	msg_vec_bind(&vr, &resp.route);
	msg_vec_bind(&vh, &resp.host);
	int r = msg_decode(lars_AgentStateResponse_fields, &resp, body, len, whyp);
	if (r == 0 && (vr.error || vh.error))
		r = -ENOMEM;
	as_deinit(s);
	s->routes = vr.v;
	s->n_routes = s->cap_routes = vr.n;
	s->hosts = vh.v;
	s->n_hosts = s->cap_hosts = vh.n;
	s->route_total = resp.route_total;
	s->cut = resp.cut;
	if (r)
		return r;
	size_t listed = 0;
	for (size_t i = 0; i < s->n_routes; i++)
		listed += s->routes[i].host_listed;
	if (listed != s->n_hosts) {
		if (whyp)
			*whyp = "host count differs from the routes' host_listed";
		return MSG_E_DECODE;
	}
	return 0;
}

const char *as_route_state_name(uint32_t state)
{
	static const char *const names[] = { "pulling", "ready", "absent" };
	return state < 3 ? names[state] : "unknown";
}

const char *as_host_state_name(uint32_t state)
{
	static const char *const names[] = { "idle", "overloaded", "drained" };
	return state < 3 ? names[state] : "unknown";
}

/* ---- JSON ---- */

static void json_host(jbuf_t *b, const lars_HostState *h)
{
	char ip[16];
	msg_ip_to_str(h->ip, ip);
	jbuf_printf(b, "{\"ip\":\"%s\",\"port\":%d,\"state\":\"%s\",\"overloaded\":%s,\"weight\":%" PRIu32
		",\"picks\":%" PRIu64 ",\"vsucc\":%" PRIu32 ",\"verr\":%" PRIu32
		",\"rsucc\":%" PRIu32 ",\"rerr\":%" PRIu32 ",\"contin_succ\":%" PRIu32
		",\"contin_err\":%" PRIu32 ",\"window_age_ms\":%" PRIu64
		",\"since_change_ms\":%" PRIu64 ",\"ejections\":%" PRIu32 ",\"rule\":",
	     ip, h->port, as_host_state_name(h->state), h->overloaded ? "true" : "false", h->weight,
	     h->picks, h->vsucc, h->verr, h->rsucc, h->rerr, h->contin_succ, h->contin_err,
	     h->window_age_ms, h->since_change_ms, h->ejections);
	jbuf_str(b, h->rule);
	jbuf_printf(b, "}");
}

char *as_json(const as_state_t *s, size_t *lenp)
{
	jbuf_t b = { 0 };
	size_t hi = 0;
	jbuf_printf(&b, "{\"routes\":[");
	for (size_t i = 0; i < s->n_routes; i++) {
		const lars_RouteState *r = &s->routes[i];
		jbuf_printf(&b, "%s{\"modid\":%d,\"cmdid\":%d,\"version\":%" PRId64 ",\"age_ms\":%" PRIu64
			 ",\"state\":\"%s\",\"panic\":%s,\"host_total\":%" PRIu32 ",\"hosts\":[",
		     i ? "," : "", r->modid, r->cmdid, r->version, r->age_ms,
		     as_route_state_name(r->state), r->panic ? "true" : "false", r->host_total);
		for (uint32_t j = 0; j < r->host_listed && hi < s->n_hosts; j++, hi++) {
			if (j)
				jbuf_printf(&b, ",");
			json_host(&b, &s->hosts[hi]);
		}
		jbuf_printf(&b, "]}");
	}
	jbuf_printf(&b, "],\"route_total\":%" PRIu32 ",\"cut\":%s}\n", s->route_total,
	     s->cut ? "true" : "false");
	return jbuf_take(&b, lenp);
}
