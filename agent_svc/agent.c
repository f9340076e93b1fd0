// SPDX-License-Identifier: MIT
// lars-agent: the UDP API, the dns and reporter clients, the timers.
//
// DESIGN: one loop owns the agent's core (core/agent_core.c: the route
// table, the keys without hosts, the report buffer and every decision about
// them), so all sockets share one view of the routes. This file only carries
// the core's decisions out: a frame's body goes through core/agent_wire.c
// (decode, core, answer), the answer goes back, and what the core queued for
// lars-dns and lars-reporter is sent; timers tick the core and flush reports.
// The re-pull after a lars-dns (re)connect goes out a slice per loop turn
// (an idle handle while it lasts), so requests are answered in between.
// Reports carry this agent's random agent_id and a seq; lars-reporter's
// ReportStatusAcks come back on its connection and go to the core, which
// decides what is held, sent again (after a reconnect, on the ack timeout
// checked every tick) or forgotten (core/report_acks.c).
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent_core.h"
#include "agent_wire.h"
#include "dispatch.h"
#include "handles.h"
#include "log.h"
#include "msg.h"
#include "tcp_client.h"
#include "metrics_http.h"
#include "registration.h"
#include "shm.h"
#include "udp_server.h"
#include "xalloc.h"

#define TICK_MS 200
#define STATE_FLUSH_MS 100  /* a state change is reported within this */
#define SHM_DEFAULT_ROUTES 4096 /* [agent] shm_max_routes 0: min(max_routes, this) */
#define SHM_DEFAULT_HOSTS 128   /* [agent] shm_max_hosts 0: min(max_hosts, this) */

struct agent {
	uint64_t agent_id; /* in AgentHello, as in every ReportStatusRequest */
	uv_loop_t *loop;
	service_t *svc;
	agent_cfg_t cfg;
	metrics_t *m;
	dispatch_t udp_d, dns_d, rep_d; /* lars-reporter sends ReportStatusAcks back */
	udp_server_t *udp[AGENT_MAX_SOCKETS];
	int n_udp;
	tcp_client_t *dns;
	tcp_client_t *rep;
	agent_shm_t *shm; /* the routes in shared memory (issue 22); NULL: off or failed */
	agent_reg_t *reg; /* self-registration (issue 23); NULL: [register] enabled = false */
	acore_t *core;
	awire_t wire;
	/* lars-dns unreachable: a connection was lost, or an attempt failed
	 * since the last connect (not while the first attempt is under way). */
	bool dns_lost;
	uv_timer_t tick_timer;
	uv_timer_t report_timer;
	uv_timer_t state_timer; /* a flush soon after a state change */
	uv_idle_t repull_idle;  /* a slice of the re-pull each loop turn while one lasts */
	handles_t timers; /* tick, report, state, repull */
	bool closing;
	log_ratelimit_t drop_rl, resend_rl;
	struct {
		metrics_counter_t *get_host[4], *reports, *report_batches, *api_routes, *pulls, *report_msgs,
			*report_results, *routes, *truncated, *unsubscribes, *absent, *api_cut;
		metrics_counter_t *core[ACORE_N_COUNTERS]; /* the core's counts */
		metrics_histogram_t *get_host_seconds; /* decode, pick, answer sent */
		size_t hosts_state[3];                 /* lars_agent_hosts, at the last scrape */
		uint64_t core_seen[ACORE_N_COUNTERS];      /* already added to them */
	} mt;
};

static uint64_t now_ms(const agent_t *a)
{
	return uv_now(a->loop);
}

/* The wall clock in unix ms: slow start ramps on the join time lars-dns sends. */
static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* lars_agent_hosts{state}: counted once per scrape (the idle gauge comes
 * first in the family and counts for the other two). */
static double hosts_idle(void *arg)
{
	agent_t *a = arg;
	acore_count_hosts(a->core, a->mt.hosts_state);
	return (double)a->mt.hosts_state[AS_HOST_IDLE];
}

static double hosts_overloaded(void *arg)
{
	const agent_t *a = arg;
	return (double)a->mt.hosts_state[AS_HOST_OVERLOADED];
}

static double hosts_drained(void *arg)
{
	const agent_t *a = arg;
	return (double)a->mt.hosts_state[AS_HOST_DRAINED];
}

/* /readyz: listening, and lars-dns connected (new keys can be fetched). */
static bool agent_ready(void *arg, char *why, size_t cap)
{
	const agent_t *a = arg;
	if (tcp_client_connected(a->dns))
		return true;
	snprintf(why, cap, "not connected to lars-dns: serving the routes it holds, new "
			   "keys cannot be fetched");
	return false;
}

static double routes_in_panic(void *arg)
{
	const agent_t *a = arg;
	return (double)acore_routes_in_panic(a->core);
}

static void set_level(metrics_counter_t *c, uint64_t v)
{
	metrics_sub(c, metrics_get(c));
	metrics_add(c, v);
}

static void log_drops(agent_t *a);

/* What the core counted since the last call, into its metrics. */
static void sync_counts(agent_t *a)
{
	log_drops(a);
	for (int i = 0; i < ACORE_N_COUNTERS; i++) {
		uint64_t v = acore_count(a->core, (enum acore_counter)i);
		if (v != a->mt.core_seen[i]) {
			metrics_add(a->mt.core[i], v - a->mt.core_seen[i]);
			a->mt.core_seen[i] = v;
		}
	}
}

/* ---- talking to lars-dns ---- */

/* Not connected: the core knows that the reconnect asks for every key. */
static int send_dns(void *user, int32_t msgid, const lars_GetRouteRequest *req)
{
	agent_t *a = user;
	int r = tcp_client_send(a->dns, msgid, lars_GetRouteRequest_fields, req);
	if (r == 0)
		metrics_inc(msgid == LARS_ID_GET_ROUTE_REQ ? a->mt.pulls : a->mt.unsubscribes);
	return r;
}

/* How the lars-dns link is, for the core, before a request. */
static void tell_link(agent_t *a)
{
	enum acore_link l = ACORE_LINK_CONNECTING;
	if (tcp_client_connected(a->dns))
		l = ACORE_LINK_UP;
	else if (a->dns_lost || tcp_client_n_failed(a->dns) > 0)
		l = ACORE_LINK_DOWN;
	acore_set_link(a->core, l);
}

/* One slice of the re-pull a loop turn, sent; the handle stops after the last. */
static void on_repull_idle(uv_idle_t *h)
{
	agent_t *a = h->data;
	if (!acore_repull_step(a->core, now_ms(a), ACORE_REPULL_BUDGET))
		(void)uv_idle_stop(h); /* done, or the connection went away: cannot fail */
	awire_drain_dns(&a->wire, ACORE_OK);
}

static int send_ack(void *user, const lars_RouteAck *ack)
{
	agent_t *a = user;
	return tcp_client_send(a->dns, LARS_ID_ROUTE_ACK, lars_RouteAck_fields, ack);
}

static void on_dns_connect(tcp_client_t *cli, void *user)
{
	agent_t *a = user;
	a->dns_lost = false;
	/* Who we are, before any request: our lars-dns then sends route
	 * versions, which we acknowledge (issue 20.3). The original lars-dns
	 * has no callback for this id and skips it. */
	if (!a->cfg.announce)
		goto hello_done;
	lars_AgentHello hello = { .agent_id = a->agent_id, .caller = a->wire.caller };
	size_t hl = sizeof(hello.host_name);
	if (uv_os_gethostname(hello.host_name, &hl))
		hello.host_name[0] = '\0';
	if (tcp_client_send(a->dns, LARS_ID_AGENT_HELLO, lars_AgentHello_fields, &hello))
		log_debug("agent: AgentHello not queued");
	else if (a->reg)
		areg_link(a->reg, true); /* the hello names the leases' owner */
hello_done:
	acore_dns_connected(a->core, now_ms(a)); /* notes the keys, pulls none yet */
	if (!acore_repulling(a->core) || a->closing)
		return;
	int r = uv_idle_start(&a->repull_idle, on_repull_idle);
	if (r)
		log_warn("agent: re-pull idle handle: %s (keys are pulled on demand)",
			 uv_err_name(r));
}

static void on_dns_disconnect(tcp_client_t *cli, void *user)
{
	agent_t *a = user;
	a->dns_lost = true;
	acore_set_link(a->core, ACORE_LINK_DOWN); /* ends a re-pull under way */
	if (a->reg)
		areg_link(a->reg, false);
	if (!a->closing)
		(void)uv_idle_stop(&a->repull_idle);
}

static int on_dns_route(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
			size_t len)
{
	agent_t *a = user;
	bool truncated;
	int r = awire_route_answer(&a->wire, body, len, now_ms(a), &truncated);
	if (truncated)
		metrics_inc(a->mt.truncated);
	if (r)
		return r;
	set_level(a->mt.absent, ks_size(acore_keyset(a->core)));
	sync_counts(a);
	return 0;
}

/* ---- reporting to lars-reporter ---- */

static int send_report(void *user, const lars_ReportStatusRequest *req, size_t n_results)
{
	agent_t *a = user;
	int r = tcp_client_send(a->rep, LARS_ID_REPORT_STATUS_REQ,
				lars_ReportStatusRequest_fields, req);
	if (r == 0) {
		metrics_inc(a->mt.report_msgs);
		metrics_add(a->mt.report_results, n_results);
	}
	return r;
}

static void flush_reports(agent_t *a)
{
	if (!tcp_client_connected(a->rep))
		return; /* everything stays buffered, untouched */
	awire_flush_reports(&a->wire, (uint32_t)time(NULL), now_ms(a));
	sync_counts(a);
}

/* Unacknowledged results dropped at the bound: said, not too often. */
static void log_drops(agent_t *a)
{
	uint64_t v = acore_count(a->core, ACORE_C_REPORTS_DROPPED);
	if (v == a->mt.core_seen[ACORE_C_REPORTS_DROPPED])
		return;
	unsigned long long hidden;
	if (log_ratelimit_ok(&a->drop_rl, now_ms(a), &hidden))
		log_warn("agent: lars-reporter has not acknowledged %zu messages; %" PRIu64
			 " calls' counts dropped so far at [reporter] max_pending_hosts = %d "
			 "(%llu such lines suppressed)", ra_held(acore_report_acks(a->core)), v,
			 a->cfg.report_max_hosts, hidden);
}

static void on_rep_connect(tcp_client_t *cli, void *user)
{
	agent_t *a = user;
	acore_reporter_connected(a->core, now_ms(a));
	size_t held = ra_held(acore_report_acks(a->core));
	if (held)
		log_info("agent: lars-reporter %s: sending %zu unacknowledged messages again",
			 tcp_client_endpoint(cli), held);
	awire_resend_reports(&a->wire, now_ms(a));
	sync_counts(a);
}

static void on_rep_disconnect(tcp_client_t *cli, void *user)
{
	agent_t *a = user;
	acore_reporter_lost(a->core);
}

static int on_report_ack(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
			 size_t len)
{
	agent_t *a = user;
	uint64_t id, seq;
	int r = awire_report_ack(&a->wire, body, len, now_ms(a), &id, &seq);
	if (r == MSG_E_DECODE)
		return r;
	if (r == RA_ACK_OTHER_AGENT)
		log_debug("agent: ack for agent_id %016" PRIx64 " (not ours) ignored", id);
	else if (r == RA_ACK_BEYOND)
		log_debug("agent: ack of seq %" PRIu64 " ignored: sent only up to %" PRIu64, seq,
			  ra_peek_seq(acore_report_acks(a->core)) - 1);
	sync_counts(a);
	return 0;
}

/* The ack timeout: held messages again, or an original reporter found out. */
static void reporter_tick(agent_t *a)
{
	enum ra_event ev = acore_reporter_tick(a->core, now_ms(a));
	unsigned long long hidden;
	if (ev == RA_TICK_NOT_ACKING) {
		log_info("agent: lars-reporter %s sent no ReportStatusAck in time ([reporter] "
			 "ack_timeout_ms = %d): taken for an original lars_reporter, sent counts "
			 "count as stored (nothing is sent twice to it)",
			 tcp_client_endpoint(a->rep), a->cfg.ack_timeout_ms);
	} else if (ev == RA_TICK_RESEND) {
		if (log_ratelimit_ok(&a->resend_rl, now_ms(a), &hidden))
			log_warn("agent: no ack from lars-reporter %s for %d ms: sending %zu "
				 "messages again (%llu such lines suppressed)",
				 tcp_client_endpoint(a->rep), a->cfg.ack_timeout_ms,
				 ra_held(acore_report_acks(a->core)), hidden);
		awire_resend_reports(&a->wire, now_ms(a));
	}
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
static void flush_soon(agent_t *a)
{
	if (!acore_take_flush_soon(a->core) || uv_is_active((uv_handle_t *)&a->state_timer))
		return;
	int r = uv_timer_start(&a->state_timer, on_state_timer, STATE_FLUSH_MS, 0);
	if (r)
		log_warn("agent: state flush timer: %s (reported at the next interval)",
			 uv_err_name(r));
}

static void on_tick(uv_timer_t *t)
{
	agent_t *a = t->data;
	acore_tick(a->core, now_ms(a));
	reporter_tick(a);
	flush_soon(a);
	set_level(a->mt.routes, rt_size(acore_routes(a->core)));
	set_level(a->mt.absent, ks_size(acore_keyset(a->core)));
	sync_counts(a);
}

/* ---- the UDP API ---- */

static int on_get_host(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
		       size_t len)
{
	agent_t *a = user;
	lars_GetHostResponse resp;
	uint64_t t0 = uv_hrtime();
	tell_link(a);
	acore_set_wall(a->core, wall_ms());
	int r = awire_get_host(&a->wire, body, len, now_ms(a), &resp);
	if (r)
		return r;
	metrics_inc(a->mt.get_host[resp.retcode & 3]);
	sync_counts(a);
	udp_server_reply(peer, LARS_ID_GET_HOST_RESP, lars_GetHostResponse_fields, &resp);
	metrics_observe(a->mt.get_host_seconds, (double)(uv_hrtime() - t0) / 1e9);
	return 0;
}

static int on_report(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
		     size_t len)
{
	agent_t *a = user;
	int r = awire_report(&a->wire, body, len, now_ms(a));
	if (r)
		return r;
	metrics_inc(a->mt.reports);
	flush_soon(a);
	sync_counts(a);
	return 0;
}

/* A client's results from the shared-memory fast path, many hosts at once. */
static int on_report_batch(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
			   size_t len)
{
	agent_t *a = user;
	uint64_t calls;
	int r = awire_report_batch(&a->wire, body, len, now_ms(a), &calls);
	if (r)
		return r;
	metrics_inc(a->mt.report_batches);
	metrics_add(a->mt.reports, calls); /* each call's result, as a ReportRequest's */
	flush_soon(a);
	sync_counts(a);
	return 0;
}

static int on_api_get_route(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
			    size_t len)
{
	agent_t *a = user;
	awire_route_t ans;
	tell_link(a);
	int r = awire_get_route(&a->wire, body, len, now_ms(a), &ans);
	if (r)
		return r;
	metrics_inc(a->mt.api_routes);
	if (ans.cut)
		metrics_inc(a->mt.api_cut);
	sync_counts(a);
	r = udp_server_reply(peer, LARS_ID_API_GET_ROUTE_RESP, lars_GetRouteResponse_fields,
			     &ans.resp);
	if (r)
		log_debug("agent: get_route %d/%d answer not sent (%zu hosts): %s", ans.resp.modid,
			  ans.resp.cmdid, ans.arr.n, r < 0 ? strerror(-r) : msg_strerror(r));
	awire_route_deinit(&ans);
	return 0;
}

/* ---- introspection (issue 20.1) ---- */

/* Room for the frame header in one datagram. */
#define STATE_BODY_MAX (MSG_UDP_DATAGRAM_MAX - FRAME_HDR_LEN)

static int on_agent_state(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
			  size_t len)
{
	agent_t *a = user;
	/* The agent's inner view: for this machine's operators only. */
	const struct sockaddr *from = udp_peer_of(peer)->addr;
	char addr[NET_ADDR_STRLEN];
	net_addr_str(from, addr);
	if (!net_addr_is_loopback(from)) {
		log_debug("agent: agent-state from %s refused: not from loopback", addr);
		return 0; /* dropped, as any datagram we do not answer */
	}
	lars_AgentStateRequest req = lars_AgentStateRequest_init_zero;
	int r = msg_decode(lars_AgentStateRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	as_state_t st;
	as_init(&st);
	acore_set_wall(a->core, wall_ms());
	if (acore_state(a->core, req.all, req.modid, req.cmdid, now_ms(a), &st) == 0) {
		as_fit(&st, STATE_BODY_MAX);
		lars_AgentStateResponse resp = lars_AgentStateResponse_init_zero;
		as_bind(&st, &resp);
		r = udp_server_reply(peer, LARS_ID_AGENT_STATE_RESP, lars_AgentStateResponse_fields,
				     &resp);
		if (r)
			log_debug("agent: agent-state answer to %s not sent: %s", addr,
				  r < 0 ? strerror(-r) : msg_strerror(r));
	}
	as_deinit(&st);
	return 0;
}

/* GET /routes on the metrics listener: every route, uncut, as JSON. */
static int routes_page(void *arg, const char **ctypep, char **bodyp, size_t *lenp)
{
	agent_t *a = arg;
	as_state_t st;
	as_init(&st);
	acore_set_wall(a->core, wall_ms());
	int r = acore_state(a->core, true, 0, 0, now_ms(a), &st);
	char *json = r ? NULL : as_json(&st, lenp);
	as_deinit(&st);
	if (!json)
		return 500;
	*ctypep = "application/json";
	*bodyp = json;
	return 200;
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
	return (double)acore_report_buf(((agent_t *)arg)->core)->n_hosts;
}

static double gauge_unacked(void *arg)
{
	return (double)ra_held(acore_report_acks(((agent_t *)arg)->core));
}

static void agent_metrics(agent_t *a)
{
	metrics_t *m = a->m;
	metrics_counter_t **core = a->mt.core;
	static const char *const rc[4] = { "succ", "overload", "system_error", "noexist" };
	char name[128];
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "lars_agent_get_host_total{retcode=\"%s\"}", rc[i]);
		a->mt.get_host[i] = metrics_counter(m, name, "get_host answers by return code");
	}
	a->mt.reports = metrics_counter(m, "lars_agent_reports_total",
					"App call results received (ReportRequests and the calls of batches)");
	a->mt.report_batches = metrics_counter(m, "lars_agent_report_batches_total",
					       "Batched results from clients of the shared memory");
	core[ACORE_C_UNKNOWN_HOST] = metrics_counter(m, "lars_agent_reports_unknown_host_total", "App reports for a host not in the route");
	a->mt.api_routes = metrics_counter(m, "lars_agent_get_route_total", "API get_route answers");
	a->mt.pulls = metrics_counter(m, "lars_agent_pulls_total", "GetRouteRequests sent to lars-dns");
	core[ACORE_C_ROUTE_UPDATES] = metrics_counter(m, "lars_agent_route_updates_total", "Route answers and pushes applied");
	core[ACORE_C_STATE_CHANGES] = metrics_counter(m, "lars_agent_state_changes_total", "Balancers in which a host changed state");
	a->mt.report_msgs = metrics_counter(m, "lars_agent_report_messages_total", "ReportStatusRequests sent to lars-reporter");
	a->mt.report_results = metrics_counter(m, "lars_agent_report_results_total", "Host results sent to lars-reporter");
	core[ACORE_C_REPORT_DROPPED] = metrics_counter(m, "lars_agent_report_dropped_total", "App reports lost: not buffered (report buffer full) or dropped unacknowledged");
	core[ACORE_C_REPORTS_DROPPED] = metrics_counter(m, "lars_agent_reports_dropped_total", "App reports in unacknowledged messages dropped at [reporter] max_pending_hosts");
	core[ACORE_C_REPORTS_RESENT] = metrics_counter(m, "lars_agent_reports_resent_total", "ReportStatusRequests sent again (reconnect, ack timeout)");
	core[ACORE_C_REPORTS_ACKED] = metrics_counter(m, "lars_agent_reports_acked_total", "ReportStatusRequests acknowledged by lars-reporter");
	core[ACORE_C_EVICTED] = metrics_counter(m, "lars_agent_routes_evicted_total", "Routes evicted at max_routes");
	a->mt.truncated = metrics_counter(m, "lars_agent_routes_truncated_total", "Route answers cut to max_hosts");
	a->mt.routes = metrics_level(m, "lars_agent_routes", "Routes (balancers) held");
	core[ACORE_C_PULLS_LIMITED] = metrics_counter(m, "lars_agent_pulls_limited_total", "Pulls for unknown keys not sent: over [agent] pull_rate");
	a->mt.unsubscribes = metrics_counter(m, "lars_agent_unsubscribes_total", "UnsubscribeRequests sent to lars-dns for forgotten keys");
	a->mt.absent = metrics_level(m, "lars_agent_absent_keys", "Keys held without hosts (pulling, absent, no room)");
	core[ACORE_C_ABSENT_EVICTED] = metrics_counter(m, "lars_agent_absent_evicted_total", "Keys without hosts dropped at [agent] max_absent");
	core[ACORE_C_NO_ROOM] = metrics_counter(m, "lars_agent_routes_no_room_total", "Routes with hosts not held: max_routes, all in use");
	a->mt.api_cut = metrics_counter(m, "lars_agent_get_route_cut_total", "API get_route answers cut to one datagram");
	core[ACORE_C_PANIC] = metrics_counter(m, "lars_agent_panic_total", "Routes entering panic mode: too few hosts available, picking over all of them");
	metrics_gauge(m, "lars_agent_routes_in_panic", "Routes in panic mode now", routes_in_panic, a);
	static const double gh_bounds[] = { 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
					    0.0005, 0.001, 0.0025, 0.005, 0.01 };
	a->mt.get_host_seconds = metrics_histogram(m, "lars_agent_get_host_seconds",
		"A get_host on the agent: decode, pick and answer sent (the loop's share)",
		gh_bounds, sizeof(gh_bounds) / sizeof(gh_bounds[0]));
	metrics_gauge(m, "lars_agent_hosts{state=\"idle\"}", "Hosts of the routes held, by state",
		      hosts_idle, a);
	metrics_gauge(m, "lars_agent_hosts{state=\"overloaded\"}", "Hosts of the routes held, by state",
		      hosts_overloaded, a);
	metrics_gauge(m, "lars_agent_hosts{state=\"drained\"}", "Hosts of the routes held, by state",
		      hosts_drained, a);
	metrics_gauge(m, "lars_agent_report_buffered_hosts", "Hosts with counts waiting for lars-reporter",
		      gauge_buffered, a);
	metrics_gauge(m, "lars_agent_reports_unacked", "ReportStatusRequests waiting for an ack",
		      gauge_unacked, a);
}

/* A random nonzero agent_id (time and pid if the kernel has no randomness). */
static uint64_t new_agent_id(void)
{
	uint64_t id = 0;
	while (!id) {
		if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			id = ((uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec << 20 ^
			      (uint64_t)getpid()) * 0x9e3779b97f4a7c15ull;
		}
	}
	return id;
}

static void agent_on_timers_closed(handles_t *g)
{
	agent_t *a = container_of(g, agent_t, timers);
	acore_free(a->core);
	free(a);
}

/* The routes in shared memory (without it, logged, clients ask over UDP); with
 * [agent] shm = false, no file of a predecessor left behind. */
static void start_shm(agent_t *a, int port0)
{
	char path[256];
	if (a->cfg.shm_path[0])
		snprintf(path, sizeof(path), "%s", a->cfg.shm_path);
	else
		snprintf(path, sizeof(path), "/run/lars/agent-%d.shm", port0);
	if (!a->cfg.shm) {
		/* A crashed predecessor's file would have clients fail open on
		 * it for shm_max_stale: gone, they ask us over UDP. */
		(void)unlink(path);
		return;
	}
	/* 0: from max_routes / max_hosts, bounded (a route table's worth of
	 * slots could be gigabytes). */
	int routes = a->cfg.shm_max_routes ? a->cfg.shm_max_routes
		     : a->cfg.max_routes < SHM_DEFAULT_ROUTES ? a->cfg.max_routes : SHM_DEFAULT_ROUTES;
	int hosts = a->cfg.shm_max_hosts ? a->cfg.shm_max_hosts
		    : a->cfg.max_hosts < SHM_DEFAULT_HOSTS ? a->cfg.max_hosts : SHM_DEFAULT_HOSTS;
	agent_shm_cfg_t sc = { .path = path, .max_routes = (uint32_t)routes,
			       .max_hosts = (uint32_t)hosts,
			       .probe_num = (uint32_t)a->cfg.lb.probe_num };
	a->shm = ashm_open(a->loop, &sc, a->core);
}

/**
 * agent_new() - bind the UDP sockets, start the lars-dns and lars-reporter
 * clients and the timers; then @on_ready(@user, "udp=P0 udp1=P1 ...") names
 * the bound ports.
 * @outp: set to the agent on success only; agent_close() it. On failure
 *        what was started is closed again (freed as the loop runs).
 * Return: 0, or the negative error of the socket or client that failed.
 */
int agent_new(uv_loop_t *loop, service_t *svc, const agent_cfg_t *cfg, metrics_t *m,
	      void (*on_ready)(void *user, const char *ports), void *user, agent_t **outp)
{
	agent_t *a = xcalloc(1, sizeof(*a));
	a->loop = loop;
	a->svc = svc;
	a->cfg = *cfg;
	a->m = m;
	acore_cfg_t ccfg = {
		.max_routes = (size_t)cfg->max_routes, .max_absent = (size_t)cfg->max_absent,
		.pull_rate = cfg->pull_rate, .pull_burst = cfg->pull_burst,
		.report_max_hosts = (size_t)cfg->report_max_hosts, .lb = cfg->lb,
		.agent_id = new_agent_id(), .ack_timeout_ms = (uint64_t)cfg->ack_timeout_ms,
		.cumulative = cfg->counts_cumulative, .track_changes = cfg->shm,
	};
	int r = acore_new(&ccfg, uv_now(loop), &a->core);
	if (r) {
		free(a);
		return r;
	}
	/* From here on the timers exist: agent_close() undoes whatever follows. */
	(void)uv_timer_init(loop, &a->tick_timer); /* cannot fail on a live loop */
	(void)uv_timer_init(loop, &a->report_timer);
	(void)uv_timer_init(loop, &a->state_timer);
	(void)uv_idle_init(loop, &a->repull_idle);
	a->tick_timer.data = a->report_timer.data = a->state_timer.data = a;
	a->repull_idle.data = a;
	handles_init(&a->timers);
	handles_add(&a->timers, &a->tick_timer);
	handles_add(&a->timers, &a->report_timer);
	handles_add(&a->timers, &a->state_timer);
	handles_add(&a->timers, &a->repull_idle);
	agent_metrics(a);
	a->wire = (awire_t){ .core = a->core, .send_dns = send_dns, .send_report = send_report,
			     .user = a, .max_hosts = (size_t)cfg->max_hosts,
			     .caller = machine_ipv4(cfg->caller), .send_ack = send_ack };
	a->agent_id = ccfg.agent_id;
	char caller[16];
	msg_ip_to_str(a->wire.caller, caller);
	log_info("agent: reporting as caller %s, agent_id %016" PRIx64
		 " (report_agent_seq.agent_id %" PRId64 "), counts = %s", caller, ccfg.agent_id,
		 (int64_t)ccfg.agent_id, cfg->counts_cumulative ? "cumulative" : "delta");
	a->drop_rl = (log_ratelimit_t)LOG_RATELIMIT_INIT(10000, 1);
	a->resend_rl = (log_ratelimit_t)LOG_RATELIMIT_INIT(10000, 1);

	dispatch_init(&a->udp_d);
	dispatch_on(&a->udp_d, LARS_ID_GET_HOST_REQ, on_get_host, a);
	dispatch_on(&a->udp_d, LARS_ID_REPORT_REQ, on_report, a);
	dispatch_on(&a->udp_d, LARS_ID_REPORT_BATCH_REQ, on_report_batch, a);
	dispatch_on(&a->udp_d, LARS_ID_API_GET_ROUTE_REQ, on_api_get_route, a);
	dispatch_on(&a->udp_d, LARS_ID_AGENT_STATE_REQ, on_agent_state, a);
	if (metrics_http_page_add("/routes", routes_page, a))
		log_warn("agent: GET /routes not served: no room for another page");
	dispatch_init(&a->dns_d);
	dispatch_on(&a->dns_d, LARS_ID_GET_ROUTE_RESP, on_dns_route, a);
	if (cfg->reg_enabled && cfg->announce) {
		reg_cfg_t rc = cfg->reg;
		rc.caller = a->wire.caller;
		a->reg = areg_new(loop, &rc, m);
		if (!a->reg) {
			r = -ENOMEM;
			goto fail;
		}
		dispatch_on(&a->udp_d, LARS_ID_REGISTER_REQ, areg_on_udp, a->reg);
		dispatch_on(&a->udp_d, LARS_ID_DEREGISTER_REQ, areg_on_udp, a->reg);
		dispatch_on(&a->dns_d, LARS_ID_LEASE_RESP, areg_on_lease, a->reg);
	} else if (cfg->reg_enabled) {
		log_info("agent: self-registration off: it needs [dnsserver] announce = true");
	}

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
		r = udp_server_start(loop, &o, &a->udp[i]);
		if (r)
			goto fail;
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
	dispatch_on(&a->rep_d, LARS_ID_REPORT_STATUS_ACK, on_report_ack, a);
	tcp_client_opts_t ropts = {
		.name = "reporter", .endpoints = cfg->reporter,
		.n_endpoints = (size_t)cfg->n_reporter, .dispatch = &a->rep_d,
		.on_connect = on_rep_connect, .on_disconnect = on_rep_disconnect, .user = a,
		.metrics = m,
	};
	start_shm(a, udp_server_port(a->udp[0]));
	r = tcp_client_start(loop, &dopts, &a->dns);
	if (r == 0 && a->reg)
		areg_set_dns(a->reg, a->dns);
	if (r == 0)
		r = tcp_client_start(loop, &ropts, &a->rep);
	if (r)
		goto fail;
	r = uv_timer_start(&a->tick_timer, on_tick, TICK_MS, TICK_MS);
	uint64_t iv = (uint64_t)cfg->report_interval_s * 1000;
	if (r == 0)
		r = uv_timer_start(&a->report_timer, on_report_timer, iv, iv);
	if (r) {
		log_error("agent: cannot start timers: %s", uv_err_name(r));
		goto fail;
	}
	service_set_ready_check(svc, agent_ready, a);
	*outp = a;
	on_ready(user, ports);
	return 0;
fail:
	agent_close(a);
	return r;
}

static bool same_endpoints(const net_endpoint_t *a, int na, const net_endpoint_t *b, int nb)
{
	if (na != nb)
		return false;
	for (int i = 0; i < na; i++)
		if (strcmp(a[i].host, b[i].host) != 0 || a[i].port != b[i].port)
			return false;
	return true;
}

static void endpoints_text(const net_endpoint_t *v, int n, char *buf, size_t cap)
{
	size_t off = 0;
	buf[0] = '\0';
	for (int i = 0; i < n && off < cap; i++) {
		int k = snprintf(buf + off, cap - off, "%s%s:%d", i ? ", " : "", v[i].host, v[i].port);
		off += k > 0 ? (size_t)k : 0;
	}
}

/* One upstream list: the client told, a->cfg updated, a line logged. */
static void reload_servers(tcp_client_t *cli, const char *what, net_endpoint_t *have, int *n_have,
			   const net_endpoint_t *want, int n_want)
{
	if (same_endpoints(have, *n_have, want, n_want))
		return;
	char was[512], now[512];
	endpoints_text(have, *n_have, was, sizeof(was));
	endpoints_text(want, n_want, now, sizeof(now));
	if (tcp_client_set_endpoints(cli, want, (size_t)n_want)) {
		log_error("reload: [%s] servers = %s refused; keeping %s", what, now, was);
		return;
	}
	memcpy(have, want, (size_t)n_want * sizeof(*want));
	*n_have = n_want;
	log_info("reload: [%s] servers: %s (were %s)", what, now, was);
}

void agent_reload(agent_t *a, const agent_cfg_t *cfg)
{
	if (acore_set_lb(a->core, &cfg->lb)) {
		a->cfg.lb = cfg->lb;
		ashm_set_probe_num(a->shm, (uint32_t)cfg->lb.probe_num);
		log_info("reload: [loadbalance] applied to every route from its next decision on "
			 "(probe_num %d, err_rate %g, succ_rate %g, contin_err_limit %d, "
			 "contin_succ_limit %d, window_err_rate %g, idle_timeout %d, "
			 "overload_timeout %d, panic_threshold %d)", cfg->lb.probe_num,
			 cfg->lb.err_rate, cfg->lb.succ_rate, cfg->lb.contin_err_limit,
			 cfg->lb.contin_succ_limit, cfg->lb.window_err_rate, cfg->lb.idle_timeout_s,
			 cfg->lb.overload_timeout_s, cfg->lb.panic_threshold);
	}
	reload_servers(a->dns, "dnsserver", a->cfg.dns, &a->cfg.n_dns, cfg->dns, cfg->n_dns);
	reload_servers(a->rep, "reporter", a->cfg.reporter, &a->cfg.n_reporter, cfg->reporter,
		       cfg->n_reporter);
}

/** agent_close() - send what is buffered if connected, close everything (NULL is fine). */
void agent_close(agent_t *a)
{
	if (!a || a->closing)
		return;
	a->closing = true;
	metrics_http_page_del("/routes");
	service_set_ready_check(a->svc, NULL, NULL);
	/* What is buffered goes out if lars-reporter is there (queued on the
	 * socket, written before the loop ends). */
	if (a->rep && tcp_client_connected(a->rep))
		flush_reports(a);
	size_t left = acore_report_buf(a->core)->n_hosts;
	if (left)
		log_warn("agent: %zu hosts' counts not sent to lars-reporter at exit", left);
	size_t held = ra_held(acore_report_acks(a->core));
	if (held && acore_report_acks(a->core)->mode == RA_ACKING)
		log_warn("agent: %zu messages to lars-reporter not acknowledged at exit", held);
	for (int i = 0; i < a->n_udp; i++)
		udp_server_close(a->udp[i]);
	areg_close(a->reg);
	ashm_close(a->shm);
	tcp_client_close(a->dns);
	tcp_client_close(a->rep);
	handles_close(&a->timers, agent_on_timers_closed);
}
