// SPDX-License-Identifier: MIT
// lars-agent: the UDP API, the dns and reporter clients, the timers.
//
// DESIGN: one loop owns the route table, so all sockets share one view of
// the routes. A request never waits: unknown keys answer NOEXIST and start a
// pull; stale ones are served while the refresh is in flight. Every dns
// (re)connect asks for every known key again, which also re-subscribes this
// connection to their pushes. App reports go into the balancer and into a
// coalesced buffer that is sent per route every [reporter] interval and soon
// after a host changes state; while lars-reporter is away it stays buffered
// (bounded).
//
// Unknown keys are an app's to choose, so they are bounded apart from the
// routes: pulls for them spend tokens of [agent] pull_rate, and a key without
// hosts (being pulled, absent at lars-dns, or without room) lives in the
// keyset ([agent] max_absent), never in the route table. A route enters the
// table only when lars-dns answers with hosts, so a flood of made-up keys
// cannot evict a route that has hosts. Whatever the agent forgets it
// unsubscribes at lars-dns (ID_UnsubscribeRequest), so the connection's
// subscriptions stay within max_routes + max_absent.
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "keyset.h"
#include "log.h"
#include "msg.h"
#include "report_buf.h"
#include "route_table.h"
#include "tcp_client.h"
#include "tokens.h"
#include "udp_server.h"
#include "xalloc.h"

#define TICK_MS 200
#define TICK_BUDGET 20000   /* balancers per tick: a pass over 100k takes 1 s */
#define STATE_FLUSH_MS 100  /* a state change is reported within this */

struct agent {
	uv_loop_t *loop;
	service_t *svc;
	agent_cfg_t cfg;
	metrics_t *m;
	dispatch_t udp_d, dns_d, rep_d; /* lars-reporter sends nothing back */
	udp_server_t *udp[AGENT_MAX_SOCKETS];
	int n_udp;
	tcp_client_t *dns;
	tcp_client_t *rep;
	route_table_t rt;
	keyset_t ks;      /* keys without hosts */
	tokens_t pull_tokens; /* pulls for keys not in the route table */
	/* lars-dns unreachable: a connection was lost, or an attempt failed
	 * since the last connect (not while the first attempt is under way). */
	bool dns_lost;
	report_buf_t rb;
	int32_t caller;
	uv_timer_t tick_timer;
	uv_timer_t report_timer;
	uv_timer_t state_timer; /* a flush soon after a state change */
	unsigned n_timers;
	bool closing;
	struct {
		metrics_counter_t *get_host[4], *reports, *unknown_host, *api_routes,
			*pulls, *pushes, *full, *state_changes, *report_msgs,
			*report_results, *report_dropped, *routes, *evicted, *truncated,
			*pulls_limited, *unsubscribes, *absent, *absent_evicted, *no_room,
			*api_cut;
	} mt;
};

static uint64_t now_ms(const agent_t *a)
{
	return uv_now(a->loop);
}

/* ---- talking to lars-dns ---- */

static int send_pull(agent_t *a, int32_t modid, int32_t cmdid)
{
	lars_GetRouteRequest req = { .modid = modid, .cmdid = cmdid };
	int r = tcp_client_send(a->dns, LARS_ID_GET_ROUTE_REQ, lars_GetRouteRequest_fields, &req);
	if (r == 0)
		metrics_inc(a->mt.pulls);
	return r;
}

static void pull(agent_t *a, rt_entry_t *e)
{
	lb_pulling(&e->lb, now_ms(a));
	/* Not connected: the reconnect asks for every key anyway. */
	send_pull(a, e->lb.modid, e->lb.cmdid);
}

/* The agent forgot a key: lars-dns need not push it any more. */
static void unsubscribe(agent_t *a, int32_t modid, int32_t cmdid)
{
	lars_GetRouteRequest req = { .modid = modid, .cmdid = cmdid };
	/* Not connected: the next connection never had it. */
	if (tcp_client_send(a->dns, LARS_ID_UNSUBSCRIBE_REQ, lars_GetRouteRequest_fields,
			    &req) == 0)
		metrics_inc(a->mt.unsubscribes);
}

static void set_level(metrics_counter_t *c, uint64_t v)
{
	metrics_sub(c, metrics_get(c));
	metrics_add(c, v);
}

static void on_dns_connect(tcp_client_t *cli, void *user)
{
	agent_t *a = user;
	a->dns_lost = false;
	/* Keys without hosts too (at most max_absent): those asked for before
	 * this connection, and the subscriptions that tell when one appears. */
	size_t kn = 0;
	for (lru_link_t *n = a->ks.lru.head; n; n = n->next, kn++) {
		ks_entry_t *k = lru_entry(n, ks_entry_t, lru);
		send_pull(a, k->modid, k->cmdid);
		k->since_ms = now_ms(a);
	}
	if (kn)
		log_info("agent: asked lars-dns for %zu keys without hosts after connecting", kn);
	/* A new connection has no subscriptions: ask for every route again. */
	size_t iter = 0, n = 0;
	for (u64map_slot_t *s; (s = u64map_next(&a->rt.map, &iter));) {
		pull(a, s->value);
		n++;
	}
	if (n)
		log_info("agent: asked lars-dns for %zu routes after connecting", n);
}

static void on_dns_disconnect(tcp_client_t *cli, void *user)
{
	agent_t *a = user;
	a->dns_lost = true;
}

/* Not connected and not merely connecting for the first time. */
static bool dns_unreachable(const agent_t *a)
{
	if (tcp_client_connected(a->dns))
		return false;
	return a->dns_lost || tcp_client_n_failed(a->dns) > 0;
}

static int on_dns_route(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
			size_t len)
{
	agent_t *a = user;
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	msg_vec_t vec;
	const char *why;
	msg_hosts_init(&vec, (size_t)a->cfg.max_hosts);
	msg_vec_bind(&vec, &resp.host);
	int r = msg_decode(lars_GetRouteResponse_fields, &resp, body, len, &why);
	if (r && vec.error == MSG_E_TOO_MANY) {
		/* modid and cmdid precede the hosts on the wire: the route is known.
		 * Serving its first max_hosts beats dropping lars-dns (which would
		 * send the same answer again after the reconnect). */
		metrics_inc(a->mt.truncated);
		log_warn("agent: route %d/%d has more than [agent] max_hosts = %d hosts; "
			 "using the first %zu", resp.modid, resp.cmdid, a->cfg.max_hosts, vec.n);
		r = 0;
	}
	if (r) {
		int err = vec.error ? vec.error : r;
		log_warn("agent: bad GetRouteResponse from lars-dns: %s", why);
		msg_vec_deinit(&vec);
		return err;
	}
	uint64_t now = now_ms(a);
	rt_entry_t *e = rt_peek(&a->rt, resp.modid, resp.cmdid);
	ks_entry_t *k = e ? NULL : ks_peek(&a->ks, resp.modid, resp.cmdid);
	if (e && vec.n == 0) {
		/* Deleted at lars-dns: remembered as absent, out of the table. */
		rt_remove(&a->rt, e);
		ks_put(&a->ks, resp.modid, resp.cmdid, KS_ABSENT, now);
		metrics_inc(a->mt.pushes);
	} else if (e) {
		lb_update(&e->lb, vec.v, vec.n, now);
		metrics_inc(a->mt.pushes);
	} else if (k && vec.n == 0) {
		k->state = KS_ABSENT;
		k->since_ms = now;
		metrics_inc(a->mt.pushes);
	} else if (k) {
		/* Hosts: now it is a route. Only routes idle for update_timeout
		 * make room (LRU); otherwise it waits, answering SYSTEM_ERROR. */
		e = rt_create(&a->rt, resp.modid, resp.cmdid, now);
		if (e) {
			ks_del(&a->ks, k);
			lb_update(&e->lb, vec.v, vec.n, now);
		} else {
			if (k->state != KS_NO_ROOM)
				metrics_inc(a->mt.no_room);
			k->state = KS_NO_ROOM;
			k->since_ms = now;
		}
		metrics_inc(a->mt.pushes);
	}
	/* Neither: a key already forgotten (or a lars-dns that ignores
	 * unsubscribing). Nothing to do. */
	set_level(a->mt.absent, ks_size(&a->ks));
	msg_vec_deinit(&vec);
	return 0;
}

/* ---- reporting to lars-reporter ---- */

static void flush_reports(agent_t *a)
{
	if (!tcp_client_connected(a->rep))
		return; /* everything stays buffered, untouched */
	size_t n;
	rb_route_t **v = rb_take_all(&a->rb, &n);
	bool sending = true;
	uint32_t ts = (uint32_t)time(NULL);

	for (size_t i = 0; i < n; i++) {
		rb_route_t *r = v[i];
		if (!sending) {
			rb_put_back(&a->rb, r);
			continue;
		}
		lars_HostCallResult *res = xreallocarray(NULL, r->hosts.n, sizeof(*res));
		size_t k = 0, iter = 0;
		rt_entry_t *e = rt_peek(&a->rt, r->modid, r->cmdid);
		for (u64map_slot_t *s; (s = u64map_next(&r->hosts, &iter));) {
			rb_counts_t *c = s->value;
			lb_host_t *h = e ? lb_find(&e->lb, c->ip, c->port) : NULL;
			res[k++] = (lars_HostCallResult){ .ip = c->ip, .port = c->port,
							   .succ = c->succ, .err = c->err,
							   .overload = h && h->overload };
		}
		lars_ReportStatusRequest req = lars_ReportStatusRequest_init_zero;
		req.modid = r->modid;
		req.cmdid = r->cmdid;
		req.caller = a->caller;
		req.ts = ts;
		msg_array_t arr = MSG_RESULTS(res, k);
		msg_array_bind(&arr, &req.results);
		int rc = tcp_client_send(a->rep, LARS_ID_REPORT_STATUS_REQ,
					 lars_ReportStatusRequest_fields, &req);
		free(res);
		if (rc) {
			/* Counts stay, coalesced, until the next try. */
			sending = false;
			rb_put_back(&a->rb, r);
			continue;
		}
		metrics_inc(a->mt.report_msgs);
		metrics_add(a->mt.report_results, k);
		rb_route_free(r);
	}
	free(v);
}

static void on_report_timer(uv_timer_t *t)
{
	flush_reports(t->data);
}

static void on_state_timer(uv_timer_t *t)
{
	flush_reports(t->data);
}

/* A host changed state: its route goes out soon, counts or not. */
static void state_changed(agent_t *a, rt_entry_t *e, int32_t ip, int32_t port)
{
	metrics_inc(a->mt.state_changes);
	if (ip || port)
		rb_add(&a->rb, e->lb.modid, e->lb.cmdid, ip, port, 0, 0);
	else
		for (lb_host_t *h = e->lb.overload.head; h; h = h->next)
			rb_add(&a->rb, e->lb.modid, e->lb.cmdid, h->ip, h->port, 0, 0);
	if (!uv_is_active((uv_handle_t *)&a->state_timer))
		uv_timer_start(&a->state_timer, on_state_timer, STATE_FLUSH_MS, 0);
}

static void on_tick_change(rt_entry_t *e, void *user)
{
	agent_t *a = user;
	/* Which host moved is not known here: report the route's hosts. */
	for (lb_host_t *h = e->lb.idle.head; h; h = h->next)
		rb_add(&a->rb, e->lb.modid, e->lb.cmdid, h->ip, h->port, 0, 0);
	state_changed(a, e, 0, 0);
}

static void on_tick(uv_timer_t *t)
{
	agent_t *a = t->data;
	rt_tick(&a->rt, now_ms(a), TICK_BUDGET, on_tick_change, a);
	set_level(a->mt.routes, rt_size(&a->rt));
	set_level(a->mt.absent, ks_size(&a->ks));
}

static void on_evict(rt_entry_t *e, void *user)
{
	agent_t *a = user;
	metrics_inc(a->mt.evicted);
	log_debug("agent: evicting route %d/%d (least recently used)", e->lb.modid, e->lb.cmdid);
	unsubscribe(a, e->lb.modid, e->lb.cmdid);
}

static void on_ks_evict(ks_entry_t *k, void *user)
{
	agent_t *a = user;
	metrics_inc(a->mt.absent_evicted);
	unsubscribe(a, k->modid, k->cmdid);
}

/* ---- the UDP API ---- */

/* A pull for a key not in the route table, within pull_rate. */
static bool pull_unknown(agent_t *a, int32_t modid, int32_t cmdid, uint64_t now)
{
	if (!tokens_take(&a->pull_tokens, now)) {
		metrics_inc(a->mt.pulls_limited);
		return false;
	}
	return send_pull(a, modid, cmdid) == 0;
}

/*
 * The balancer for a request, or NULL with *rcp saying why there is none:
 * NOEXIST while the first pull is out (as the original answers) or when
 * lars-dns says there is no such route; SYSTEM_ERROR when lars-dns is
 * unreachable, the pull budget is spent, or the table has no room.
 */
static rt_entry_t *route_for(agent_t *a, int32_t modid, int32_t cmdid, int *rcp)
{
	uint64_t now = now_ms(a);
	rt_entry_t *e = rt_find(&a->rt, modid, cmdid, now);
	if (e) {
		if (lb_needs_pull(&e->lb, now))
			pull(a, e); /* served from what it has meanwhile */
		return e;
	}
	bool up = tcp_client_connected(a->dns);
	bool unreachable = dns_unreachable(a);
	uint64_t timeout = (uint64_t)a->cfg.lb.update_timeout_s * 1000;
	ks_entry_t *k = ks_find(&a->ks, modid, cmdid);
	if (k) {
		/* Asked again after update_timeout: the answer was lost, or the
		 * route may exist by now (a push would have said so, unless
		 * lars-dns dropped the subscription at its cap). */
		if (up && now - k->since_ms >= timeout && pull_unknown(a, modid, cmdid, now))
			k->since_ms = now; /* the state stays until the answer */
		if (k->state == KS_ABSENT)
			*rcp = LARS_RET_NOEXIST; /* what lars-dns said last */
		else if (k->state == KS_PENDING && !unreachable)
			*rcp = LARS_RET_NOEXIST; /* still being pulled */
		else
			*rcp = LARS_RET_SYSTEM_ERROR;
		return NULL;
	}
	/* Connecting (the agent just started): remembered as pending, pulled
	 * by on_dns_connect. Unreachable: the agent cannot know. */
	if (unreachable || !tokens_take(&a->pull_tokens, now)) {
		if (!unreachable)
			metrics_inc(a->mt.pulls_limited);
		*rcp = LARS_RET_SYSTEM_ERROR; /* lars-dns unreachable, or over pull_rate */
		return NULL;
	}
	if (up && send_pull(a, modid, cmdid)) {
		*rcp = LARS_RET_SYSTEM_ERROR; /* the send queue to lars-dns is full */
		return NULL;
	}
	ks_put(&a->ks, modid, cmdid, KS_PENDING, now);
	*rcp = LARS_RET_NOEXIST;
	return NULL;
}

static int on_get_host(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
		       size_t len)
{
	agent_t *a = user;
	lars_GetHostRequest req = lars_GetHostRequest_init_zero;
	int r = msg_decode(lars_GetHostRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	lars_GetHostResponse resp = lars_GetHostResponse_init_zero;
	resp.seq = req.seq;
	resp.modid = req.modid;
	resp.cmdid = req.cmdid;
	int rc;
	rt_entry_t *e = route_for(a, req.modid, req.cmdid, &rc);
	if (!e) {
		resp.retcode = rc;
	} else {
		resp.retcode = lb_get_host(&e->lb, now_ms(a), &resp.host);
		resp.has_host = resp.retcode == LARS_RET_SUCC;
	}
	metrics_inc(a->mt.get_host[resp.retcode & 3]);
	udp_server_reply(peer, LARS_ID_GET_HOST_RESP, lars_GetHostResponse_fields, &resp);
	return 0;
}

static int on_report(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
		     size_t len)
{
	agent_t *a = user;
	lars_ReportRequest req = lars_ReportRequest_init_zero;
	int r = msg_decode(lars_ReportRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	metrics_inc(a->mt.reports);
	rt_entry_t *e = rt_peek(&a->rt, req.modid, req.cmdid);
	int changed = e ? lb_report(&e->lb, req.host.ip, req.host.port, req.retcode,
				    now_ms(a))
			: -ENOENT;
	if (changed < 0) {
		metrics_inc(a->mt.unknown_host); /* not (any more) in the route */
		return 0;
	}
	bool ok = req.retcode == LARS_RET_SUCC;
	if (rb_add(&a->rb, req.modid, req.cmdid, req.host.ip, req.host.port, ok, !ok))
		metrics_inc(a->mt.report_dropped);
	if (changed == LB_CHANGED)
		state_changed(a, e, req.host.ip, req.host.port);
	return 0;
}

static int on_api_get_route(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
			    size_t len)
{
	agent_t *a = user;
	lars_GetRouteRequest req = lars_GetRouteRequest_init_zero;
	int r = msg_decode(lars_GetRouteRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	metrics_inc(a->mt.api_routes);
	int rc;
	rt_entry_t *e = route_for(a, req.modid, req.cmdid, &rc);
	size_t n = e ? lb_n_hosts(&e->lb) : 0;
	/* As many hosts as one datagram holds by their encoded sizes; a cut
	 * list says how many there are in host_total. */
	msg_route_fit_t fit;
	msg_route_fit_init(&fit, req.modid, req.cmdid, n);
	lars_HostInfo *hosts = xreallocarray(NULL, n ? n : 1, sizeof(*hosts));
	size_t k = 0;
	bool more = true;
	for (lb_host_t *h = e ? e->lb.idle.head : NULL; h && more; h = h->next)
		if ((more = msg_route_fit_add(&fit, h->ip, h->port)))
			hosts[k++] = (lars_HostInfo){ h->ip, h->port };
	for (lb_host_t *h = e ? e->lb.overload.head : NULL; h && more; h = h->next)
		if ((more = msg_route_fit_add(&fit, h->ip, h->port)))
			hosts[k++] = (lars_HostInfo){ h->ip, h->port };
	bool cut;
	k = msg_route_fit_count(&fit, &cut);
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	resp.modid = req.modid;
	resp.cmdid = req.cmdid;
	if (cut) {
		resp.host_total = n > INT32_MAX ? INT32_MAX : (int32_t)n;
		metrics_inc(a->mt.api_cut);
	}
	msg_array_t arr = MSG_HOSTS(hosts, k);
	msg_array_bind(&arr, &resp.host);
	r = udp_server_reply(peer, LARS_ID_API_GET_ROUTE_RESP, lars_GetRouteResponse_fields, &resp);
	if (r)
		log_debug("agent: get_route %d/%d answer not sent (%zu hosts): %s", req.modid,
			 req.cmdid, k, r < 0 ? strerror(-r) : msg_strerror(r));
	free(hosts);
	return 0;
}

/* ---- setup ---- */

static int32_t machine_ipv4(const char *configured)
{
	int32_t ip;
	if (configured[0] && msg_ip_from_str(configured, &ip) == 0)
		return ip;
	uv_interface_address_t *ifs;
	int n;
	ip = 2130706433; /* 127.0.0.1 when nothing else is there */
	if (uv_interface_addresses(&ifs, &n) == 0) {
		for (int i = 0; i < n; i++) {
			if (ifs[i].is_internal || ifs[i].address.address4.sin_family != AF_INET)
				continue;
			ip = (int32_t)ntohl(ifs[i].address.address4.sin_addr.s_addr);
			break;
		}
		uv_free_interface_addresses(ifs, n);
	}
	return ip;
}

static double gauge_buffered(void *arg)
{
	return (double)((agent_t *)arg)->rb.n_hosts;
}

static void agent_metrics(agent_t *a)
{
	metrics_t *m = a->m;
	static const char *const rc[4] = { "succ", "overload", "system_error", "noexist" };
	char name[128];
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "lars_agent_get_host_total{retcode=\"%s\"}", rc[i]);
		a->mt.get_host[i] = metrics_counter(m, name, "get_host answers by return code");
	}
	a->mt.reports = metrics_counter(m, "lars_agent_reports_total", "App reports received");
	a->mt.unknown_host = metrics_counter(m, "lars_agent_reports_unknown_host_total", "App reports for a host not in the route");
	a->mt.api_routes = metrics_counter(m, "lars_agent_get_route_total", "API get_route answers");
	a->mt.pulls = metrics_counter(m, "lars_agent_pulls_total", "GetRouteRequests sent to lars-dns");
	a->mt.pushes = metrics_counter(m, "lars_agent_route_updates_total", "Route answers and pushes applied");
	a->mt.state_changes = metrics_counter(m, "lars_agent_state_changes_total", "Balancers in which a host changed state");
	a->mt.report_msgs = metrics_counter(m, "lars_agent_report_messages_total", "ReportStatusRequests sent to lars-reporter");
	a->mt.report_results = metrics_counter(m, "lars_agent_report_results_total", "Host results sent to lars-reporter");
	a->mt.report_dropped = metrics_counter(m, "lars_agent_report_dropped_total", "App reports not buffered (report buffer full)");
	a->mt.evicted = metrics_counter(m, "lars_agent_routes_evicted_total", "Routes evicted at max_routes");
	a->mt.truncated = metrics_counter(m, "lars_agent_routes_truncated_total", "Route answers cut to max_hosts");
	a->mt.routes = metrics_level(m, "lars_agent_routes", "Routes (balancers) held");
	a->mt.pulls_limited = metrics_counter(m, "lars_agent_pulls_limited_total", "Pulls for unknown keys not sent: over [agent] pull_rate");
	a->mt.unsubscribes = metrics_counter(m, "lars_agent_unsubscribes_total", "UnsubscribeRequests sent to lars-dns for forgotten keys");
	a->mt.absent = metrics_level(m, "lars_agent_absent_keys", "Keys held without hosts (pulling, absent, no room)");
	a->mt.absent_evicted = metrics_counter(m, "lars_agent_absent_evicted_total", "Keys without hosts dropped at [agent] max_absent");
	a->mt.no_room = metrics_counter(m, "lars_agent_routes_no_room_total", "Routes with hosts not held: max_routes, all in use");
	a->mt.api_cut = metrics_counter(m, "lars_agent_get_route_cut_total", "API get_route answers cut to one datagram");
	metrics_gauge(m, "lars_agent_report_buffered_hosts", "Hosts with counts waiting for lars-reporter",
		      gauge_buffered, a);
}

int agent_new(uv_loop_t *loop, service_t *svc, const agent_cfg_t *cfg, metrics_t *m,
	      void (*on_ready)(void *user, const char *ports), void *user, agent_t **outp)
{
	agent_t *a = xcalloc(1, sizeof(*a));
	a->loop = loop;
	a->svc = svc;
	a->cfg = *cfg;
	a->m = m;
	*outp = a;
	agent_metrics(a);
	rt_init(&a->rt, (size_t)cfg->max_routes, (uint64_t)cfg->lb.update_timeout_s * 1000,
		&a->cfg.lb);
	a->rt.on_evict = on_evict;
	a->rt.user = a;
	ks_init(&a->ks, (size_t)cfg->max_absent);
	a->ks.on_evict = on_ks_evict;
	a->ks.user = a;
	tokens_init(&a->pull_tokens, cfg->pull_rate, cfg->pull_burst, uv_now(loop));
	rb_init(&a->rb, (size_t)cfg->report_max_hosts);
	a->caller = machine_ipv4(cfg->caller);
	char caller[16];
	msg_ip_to_str(a->caller, caller);
	log_info("agent: reporting as caller %s", caller);

	uv_timer_init(loop, &a->tick_timer);
	uv_timer_init(loop, &a->report_timer);
	uv_timer_init(loop, &a->state_timer);
	a->tick_timer.data = a->report_timer.data = a->state_timer.data = a;
	a->n_timers = 3;

	dispatch_init(&a->udp_d);
	dispatch_on(&a->udp_d, LARS_ID_GET_HOST_REQ, on_get_host, a);
	dispatch_on(&a->udp_d, LARS_ID_REPORT_REQ, on_report, a);
	dispatch_on(&a->udp_d, LARS_ID_API_GET_ROUTE_REQ, on_api_get_route, a);
	dispatch_init(&a->dns_d);
	dispatch_on(&a->dns_d, LARS_ID_GET_ROUTE_RESP, on_dns_route, a);

	char ports[16 * AGENT_MAX_SOCKETS] = "";
	size_t plen = 0;
	for (int i = 0; i < cfg->sockets; i++) {
		char name[32];
		snprintf(name, sizeof(name), "agent-udp%d", i);
		/* base_port 0 (tests): every socket on a port of its own choosing. */
		udp_server_opts_t o = { .name = name, .ip = cfg->ip,
					.port = cfg->base_port ? cfg->base_port + i : 0,
					.reuse_port = cfg->reuse_port,
					.dispatch = &a->udp_d, .metrics = m };
		int r = udp_server_start(loop, &o, &a->udp[i]);
		if (r)
			return r;
		a->n_udp++;
		if (i == 0)
			plen += (size_t)snprintf(ports + plen, sizeof(ports) - plen, "udp=%d",
						 udp_server_port(a->udp[i]));
		else
			plen += (size_t)snprintf(ports + plen, sizeof(ports) - plen, " udp%d=%d",
						 i, udp_server_port(a->udp[i]));
	}
	tcp_client_opts_t dopts = {
		.name = "dns", .endpoints = cfg->dns, .n_endpoints = (size_t)cfg->n_dns,
		/* Big routes are cut to max_hosts after decoding; the frame itself
		 * may be large (a route of a million hosts is ~12 MB). */
		.max_frame = 64u << 20,
		.dispatch = &a->dns_d, .on_connect = on_dns_connect,
		.on_disconnect = on_dns_disconnect, .user = a, .metrics = m,
	};
	dispatch_init(&a->rep_d);
	tcp_client_opts_t ropts = {
		.name = "reporter", .endpoints = cfg->reporter,
		.n_endpoints = (size_t)cfg->n_reporter, .dispatch = &a->rep_d, .user = a,
		.metrics = m,
	};
	int r = tcp_client_start(loop, &dopts, &a->dns);
	if (r == 0)
		r = tcp_client_start(loop, &ropts, &a->rep);
	if (r)
		return r;
	uv_timer_start(&a->tick_timer, on_tick, TICK_MS, TICK_MS);
	uint64_t iv = (uint64_t)cfg->report_interval_s * 1000;
	uv_timer_start(&a->report_timer, on_report_timer, iv, iv);
	on_ready(user, ports);
	return 0;
}

static void agent_on_timer_closed(uv_handle_t *h)
{
	agent_t *a = h->data;
	if (--a->n_timers > 0)
		return;
	rt_deinit(&a->rt);
	ks_deinit(&a->ks);
	rb_deinit(&a->rb);
	free(a);
}

void agent_close(agent_t *a)
{
	if (!a || a->closing)
		return;
	a->closing = true;
	/* What is buffered goes out if lars-reporter is there (queued on the
	 * socket, written before the loop ends). */
	if (a->rep && tcp_client_connected(a->rep))
		flush_reports(a);
	if (a->rb.n_hosts)
		log_warn("agent: %zu hosts' counts not sent to lars-reporter at exit",
			 a->rb.n_hosts);
	for (int i = 0; i < a->n_udp; i++)
		udp_server_close(a->udp[i]);
	tcp_client_close(a->dns);
	tcp_client_close(a->rep);
	uv_close((uv_handle_t *)&a->tick_timer, agent_on_timer_closed);
	uv_close((uv_handle_t *)&a->report_timer, agent_on_timer_closed);
	uv_close((uv_handle_t *)&a->state_timer, agent_on_timer_closed);
}
