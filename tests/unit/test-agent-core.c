// SPDX-License-Identifier: MIT
// The agent's decisions on a fake clock: get_host of an unknown key, the pull
// it queues and the answer that makes it a route; pushes; pull tokens;
// reports and taking them; expiry; eviction and its unsubscribes; the
// re-pull after a (re)connect in slices (a budget each, every key once, a
// lost connection starting it again, keys forgotten or pulled meanwhile);
// latency aggregation and cumulative counts; acks, resends in seq order and
// a reporter that never acks (report_acks.c has its own test-agent-acks.c);
// and the agent_wire glue the daemon and the fuzz target share.
#include "test.h"

#include <errno.h>
#include <string.h>

#include "agent_core.h"
#include "agent_wire.h"
#include "msg.h"

#define S(sec) ((uint64_t)(sec) * 1000)
#define T0 S(1000) /* the fake clock starts here */

#define AGENT_ID 0x0123456789abcdefull

static const lars_HostInfo A = { 10, 80 }, B = { 11, 80 }, C = { 12, 80 };

static acore_cfg_t cfg;
static acore_t *c;

static int setup(void **state)
{
	cfg = (acore_cfg_t){ .max_routes = 100, .max_absent = 100, .pull_rate = 1000,
			     .pull_burst = 1000, .report_max_hosts = 1000,
			     .agent_id = AGENT_ID, .ack_timeout_ms = 5000 };
	lb_cfg_defaults(&cfg.lb);
	assert_int_equal(acore_new(&cfg, T0, &c), 0);
	acore_set_link(c, ACORE_LINK_UP);
	acore_reporter_connected(c, T0);
	return 0;
}

static int teardown(void **state)
{
	c = acore_free(c);
	return 0;
}

/* The next request for lars-dns must be @kind for @cmdid (modid 1). */
static void expect_dns(enum acore_dns_kind kind, int32_t cmdid)
{
	acore_dns_msg_t m;
	assert_true(acore_next_dns(c, &m));
	assert_int_equal(m.kind, kind);
	assert_int_equal(m.modid, 1);
	assert_int_equal(m.cmdid, cmdid);
}

static void expect_no_dns(void)
{
	acore_dns_msg_t m;
	assert_false(acore_next_dns(c, &m));
}

static int get(int32_t cmdid, uint64_t now, int32_t *ipp)
{
	lars_HostInfo h = { -1, -1 };
	int rc = acore_get_host(c, 1, cmdid, now, &h);
	if (rc == ACORE_OK)
		*ipp = h.ip;
	else
		assert_true(h.ip == -1 && h.port == -1); /* untouched without a host */
	return rc;
}

/* A route 1/@cmdid with hosts, as the daemon gets one: asked, pulled, answered. */
static void make_route(int32_t cmdid, const lars_HostInfo *h, size_t n, uint64_t now)
{
	int32_t ip;
	assert_int_equal(get(cmdid, now, &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, cmdid);
	acore_apply_route(c, 1, cmdid, h, n, now);
}

static void test_retcodes_on_the_wire(void **state)
{
	assert_int_equal(acore_retcode(ACORE_OK), LARS_RET_SUCC);
	assert_int_equal(acore_retcode(ACORE_E_OVERLOAD), LARS_RET_OVERLOAD);
	assert_int_equal(acore_retcode(ACORE_E_PENDING), LARS_RET_NOEXIST);
	assert_int_equal(acore_retcode(ACORE_E_ABSENT), LARS_RET_NOEXIST);
	assert_int_equal(acore_retcode(ACORE_E_UNREACHABLE), LARS_RET_SYSTEM_ERROR);
	assert_int_equal(acore_retcode(ACORE_E_LIMITED), LARS_RET_SYSTEM_ERROR);
	assert_int_equal(acore_retcode(ACORE_E_NO_ROOM), LARS_RET_SYSTEM_ERROR);
	assert_int_equal(acore_retcode(ACORE_E_BUSY), LARS_RET_SYSTEM_ERROR);
}

static void test_noexist_pull_then_host(void **state)
{
	int32_t ip = 0;
	/* Unknown: NOEXIST on the wire, one pull queued, the key held apart. */
	assert_int_equal(get(1, T0, &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 1);
	expect_no_dns();
	assert_int_equal(ks_size(acore_keyset(c)), 1);
	assert_int_equal(rt_size(acore_routes(c)), 0);
	/* Asked again while the pull is out: no second pull. */
	assert_int_equal(get(1, T0 + 10, &ip), ACORE_E_PENDING);
	expect_no_dns();
	/* The answer: a route now, served round robin. */
	const lars_HostInfo h[2] = { A, B };
	acore_apply_route(c, 1, 1, h, 2, T0 + 20);
	assert_int_equal(acore_count(c, ACORE_C_ROUTE_UPDATES), 1);
	assert_int_equal(rt_size(acore_routes(c)), 1);
	assert_int_equal(ks_size(acore_keyset(c)), 0);
	assert_int_equal(get(1, T0 + 30, &ip), ACORE_OK);
	assert_int_equal(ip, A.ip);
	assert_int_equal(get(1, T0 + 30, &ip), ACORE_OK);
	assert_int_equal(ip, B.ip);
	expect_no_dns();
}

static void test_answer_without_hosts_is_absent(void **state)
{
	int32_t ip;
	assert_int_equal(get(1, T0, &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 1);
	acore_apply_route(c, 1, 1, NULL, 0, T0 + 5);
	assert_int_equal(get(1, T0 + 10, &ip), ACORE_E_ABSENT);
	assert_int_equal(acore_retcode(ACORE_E_ABSENT), LARS_RET_NOEXIST);
	expect_no_dns();
	/* After update_timeout the next ask pulls again; a lost pull (not
	 * sent) leaves it due, so the ask after that pulls once more. */
	assert_int_equal(get(1, T0 + 5 + S(15), &ip), ACORE_E_ABSENT);
	acore_dns_msg_t m;
	assert_true(acore_next_dns(c, &m));
	assert_int_equal(m.kind, ACORE_PULL);
	assert_int_equal(acore_dns_unsent(c, &m), 0);
	assert_int_equal(get(1, T0 + 6 + S(15), &ip), ACORE_E_ABSENT);
	expect_dns(ACORE_PULL, 1);
	/* Sent this time: not again before another update_timeout. */
	assert_int_equal(get(1, T0 + 7 + S(15), &ip), ACORE_E_ABSENT);
	expect_no_dns();
	/* A push with hosts turns it into a route. */
	acore_apply_route(c, 1, 1, &C, 1, T0 + S(20));
	assert_int_equal(get(1, T0 + S(20), &ip), ACORE_OK);
	assert_int_equal(ip, C.ip);
}

static void test_push_updates_and_deletes(void **state)
{
	const lars_HostInfo h[2] = { A, B };
	make_route(1, h, 2, T0);
	int32_t ip;
	/* A push with other hosts: only those are served. */
	const lars_HostInfo h2[2] = { B, C };
	acore_apply_route(c, 1, 1, h2, 2, T0 + S(1));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(get(1, T0 + S(1), &ip), ACORE_OK);
		assert_true(ip == B.ip || ip == C.ip);
	}
	/* Deleted at lars-dns: out of the table, remembered as absent. */
	acore_apply_route(c, 1, 1, NULL, 0, T0 + S(2));
	assert_int_equal(rt_size(acore_routes(c)), 0);
	assert_int_equal(get(1, T0 + S(2), &ip), ACORE_E_ABSENT);
	assert_int_equal(acore_count(c, ACORE_C_ROUTE_UPDATES), 3);
	/* A push for a key the agent never asked for (or forgot) changes nothing. */
	acore_apply_route(c, 1, 99, h, 2, T0 + S(3));
	assert_int_equal(rt_size(acore_routes(c)), 0);
	assert_int_equal(acore_count(c, ACORE_C_ROUTE_UPDATES), 3);
	expect_no_dns();
}

static void test_pulls_are_token_limited(void **state)
{
	c = acore_free(c);
	cfg.pull_rate = 10; /* one token per 100 ms */
	cfg.pull_burst = 2;
	assert_int_equal(acore_new(&cfg, T0, &c), 0);
	acore_set_link(c, ACORE_LINK_UP);
	int32_t ip;
	assert_int_equal(get(1, T0, &ip), ACORE_E_PENDING);
	assert_int_equal(get(2, T0, &ip), ACORE_E_PENDING);
	assert_int_equal(get(3, T0, &ip), ACORE_E_LIMITED); /* the burst is spent */
	assert_int_equal(acore_retcode(ACORE_E_LIMITED), LARS_RET_SYSTEM_ERROR);
	assert_int_equal(acore_count(c, ACORE_C_PULLS_LIMITED), 1);
	expect_dns(ACORE_PULL, 1);
	expect_dns(ACORE_PULL, 2);
	expect_no_dns();
	assert_int_equal(ks_size(acore_keyset(c)), 2); /* 3 is not remembered */
	/* 50 ms: half a token; 100 ms: one pull more. */
	assert_int_equal(get(3, T0 + 50, &ip), ACORE_E_LIMITED);
	assert_int_equal(get(3, T0 + 100, &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 3);
	/* Asking again for a pending key after update_timeout spends a token
	 * too; without one it is not pulled and keeps its answer. */
	assert_int_equal(get(1, T0 + 100 + S(15), &ip), ACORE_E_PENDING);
	assert_int_equal(get(2, T0 + 100 + S(15), &ip), ACORE_E_PENDING);
	assert_int_equal(get(3, T0 + 100 + S(15), &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 1);
	expect_dns(ACORE_PULL, 2);
	expect_no_dns();
	assert_int_equal(acore_count(c, ACORE_C_PULLS_LIMITED), 3);
	/* Routes with hosts are refreshed without tokens. */
	acore_apply_route(c, 1, 1, &A, 1, T0 + S(16));
	assert_int_equal(get(1, T0 + S(32), &ip), ACORE_OK); /* stale: served, pulled */
	expect_dns(ACORE_PULL, 1);
	assert_int_equal(acore_count(c, ACORE_C_PULLS_LIMITED), 3);
}

static void test_link_states(void **state)
{
	int32_t ip;
	/* Connecting: remembered as pending, pulled once connected. */
	acore_set_link(c, ACORE_LINK_CONNECTING);
	assert_int_equal(get(1, T0, &ip), ACORE_E_PENDING);
	expect_no_dns();
	acore_dns_connected(c, T0 + S(1));
	expect_no_dns(); /* pulled by the re-pull steps */
	assert_false(acore_repull_step(c, T0 + S(1), 100));
	expect_dns(ACORE_PULL, 1);
	expect_no_dns();
	acore_apply_route(c, 1, 1, &A, 1, T0 + S(1));
	/* Unreachable: unknown keys cannot be known, pending ones neither;
	 * routes with hosts are served, without a pull. */
	assert_int_equal(get(2, T0 + S(1), &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 2);
	acore_set_link(c, ACORE_LINK_DOWN);
	assert_int_equal(get(3, T0 + S(2), &ip), ACORE_E_UNREACHABLE);
	assert_int_equal(get(2, T0 + S(2), &ip), ACORE_E_UNREACHABLE);
	assert_int_equal(acore_retcode(ACORE_E_UNREACHABLE), LARS_RET_SYSTEM_ERROR);
	assert_int_equal(get(1, T0 + S(30), &ip), ACORE_OK);
	assert_int_equal(ip, A.ip);
	expect_no_dns();
	assert_null(ks_peek(acore_keyset(c), 1, 3));
	/* Reconnected: every key without hosts and every route is asked again. */
	acore_dns_connected(c, T0 + S(31));
	assert_false(acore_repull_step(c, T0 + S(31), 100));
	assert_false(acore_repulling(c));
	expect_dns(ACORE_PULL, 2);
	expect_dns(ACORE_PULL, 1);
	expect_no_dns();
	assert_int_equal(rt_peek(acore_routes(c), 1, 1)->lb.status, LB_PULLING);
}

static int send_fails(void *user, int32_t msgid, const lars_GetRouteRequest *req)
{
	(*(int *)user)++;
	return -ENOBUFS;
}

static void test_unsent_new_pull_is_busy(void **state)
{
	/* lars-dns's send queue is full: the key is not remembered and the
	 * answer says SYSTEM_ERROR; the next ask tries again. */
	int n_sends = 0;
	awire_t w = { .core = c, .send_dns = send_fails, .user = &n_sends };
	int32_t ip;
	int rc = awire_drain_dns(&w, get(1, T0, &ip));
	assert_int_equal(rc, ACORE_E_BUSY);
	assert_int_equal(n_sends, 1);
	assert_int_equal(ks_size(acore_keyset(c)), 0);
	assert_int_equal(get(1, T0 + 1, &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 1);
}

static const lars_HostCallResult *result_of(const acore_report_t *r, int32_t ip)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->results[i].ip == ip)
			return &r->results[i];
	return NULL;
}

static void test_reports_aggregate_and_are_taken(void **state)
{
	const lars_HostInfo h[2] = { A, B };
	make_route(1, h, 2, T0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(acore_report(c, 1, 1, A.ip, A.port, true, T0), ACORE_OK);
	assert_int_equal(acore_report(c, 1, 1, A.ip, A.port, false, T0), ACORE_OK);
	assert_int_equal(acore_report(c, 1, 1, B.ip, B.port, true, T0), ACORE_OK);
	/* Not in the route: counted, not buffered. */
	assert_int_equal(acore_report(c, 1, 1, C.ip, C.port, true, T0), ACORE_E_UNKNOWN_HOST);
	assert_int_equal(acore_report(c, 1, 7, A.ip, A.port, true, T0), ACORE_E_UNKNOWN_HOST);
	assert_int_equal(acore_count(c, ACORE_C_UNKNOWN_HOST), 2);
	assert_false(acore_take_flush_soon(c)); /* no state change */
	assert_int_equal(acore_report_buf(c)->n_hosts, 2);

	assert_int_equal(acore_take_reports(c, 0, T0), 1);
	assert_int_equal(acore_report_buf(c)->n_hosts, 0);
	acore_report_t r;
	assert_true(acore_next_report(c, &r));
	assert_int_equal(r.modid, 1);
	assert_int_equal(r.cmdid, 1);
	assert_int_equal(r.n, 2);
	assert_int_equal(result_of(&r, A.ip)->succ, 3);
	assert_int_equal(result_of(&r, A.ip)->err, 1);
	assert_int_equal(result_of(&r, B.ip)->succ, 1);
	assert_false(result_of(&r, A.ip)->overload);
	/* Not sent: back in, coalesced with what came meanwhile. */
	assert_int_equal(acore_report(c, 1, 1, A.ip, A.port, true, T0), ACORE_OK);
	acore_reports_unsent(c);
	assert_int_equal(acore_report_buf(c)->n_hosts, 2);
	assert_int_equal(acore_take_reports(c, 0, T0), 1);
	assert_true(acore_next_report(c, &r));
	assert_int_equal(result_of(&r, A.ip)->succ, 4);
	assert_false(acore_next_report(c, &r)); /* sent: gone */
	assert_int_equal(acore_take_reports(c, 0, T0), 0);
	assert_false(acore_next_report(c, &r));
}

static void test_state_change_is_reported_soon(void **state)
{
	const lars_HostInfo h[2] = { A, B };
	make_route(1, h, 2, T0);
	/* 15 errors in a row: A overloaded; the route wants out soon. */
	for (int i = 0; i < 15; i++)
		acore_report(c, 1, 1, A.ip, A.port, false, T0 + S(1));
	assert_int_equal(acore_count(c, ACORE_C_STATE_CHANGES), 1);
	assert_true(acore_take_flush_soon(c));
	assert_false(acore_take_flush_soon(c));
	assert_int_equal(acore_take_reports(c, 0, T0), 1);
	acore_report_t r;
	assert_true(acore_next_report(c, &r));
	assert_true(result_of(&r, A.ip)->overload);
	assert_int_equal(result_of(&r, A.ip)->err, 15);
	assert_false(acore_next_report(c, &r));
	int32_t ip;
	/* Only B is picked until A is probed (every probe_num calls). */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(get(1, T0 + S(2), &ip), ACORE_OK);
		assert_int_equal(ip, B.ip);
	}
}

static void test_expiry_on_the_clock(void **state)
{
	const lars_HostInfo h[2] = { A, B };
	make_route(1, h, 2, T0);
	for (int i = 0; i < 15; i++)
		acore_report(c, 1, 1, A.ip, A.port, false, T0);
	assert_true(acore_take_flush_soon(c));
	acore_take_reports(c, 0, T0);
	for (acore_report_t r; acore_next_report(c, &r);)
		;
	/* Before overload_timeout the tick changes nothing ... */
	acore_tick(c, T0 + S(14));
	assert_false(acore_take_flush_soon(c));
	assert_int_equal(acore_count(c, ACORE_C_STATE_CHANGES), 1);
	/* ... at it A is idle again, reported at once (0/0 for each host). */
	acore_tick(c, T0 + S(15));
	assert_int_equal(acore_count(c, ACORE_C_STATE_CHANGES), 2);
	assert_true(acore_take_flush_soon(c));
	assert_int_equal(acore_take_reports(c, 0, T0), 1);
	acore_report_t r;
	assert_true(acore_next_report(c, &r));
	assert_int_equal(r.n, 2);
	assert_false(result_of(&r, A.ip)->overload);
	assert_int_equal(result_of(&r, A.ip)->succ + result_of(&r, A.ip)->err, 0);
	assert_false(acore_next_report(c, &r));
	/* The route is stale after update_timeout: served, and pulled once. */
	int32_t ip;
	expect_no_dns();
	assert_int_equal(get(1, T0 + S(15), &ip), ACORE_OK);
	expect_dns(ACORE_PULL, 1);
	assert_int_equal(get(1, T0 + S(16), &ip), ACORE_OK);
	expect_no_dns();
	/* That pull's answer got lost: asked again update_timeout later. */
	assert_int_equal(get(1, T0 + S(30), &ip), ACORE_OK);
	expect_dns(ACORE_PULL, 1);
	/* A pending key whose answer got lost is pulled again as well. */
	assert_int_equal(get(2, T0 + S(30), &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 2);
	assert_int_equal(get(2, T0 + S(44), &ip), ACORE_E_PENDING);
	expect_no_dns();
	assert_int_equal(get(2, T0 + S(45), &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 2);
}

static void test_no_room_then_eviction_unsubscribes(void **state)
{
	c = acore_free(c);
	cfg.max_routes = 1;
	cfg.max_absent = 2;
	assert_int_equal(acore_new(&cfg, T0, &c), 0);
	acore_set_link(c, ACORE_LINK_UP);
	make_route(1, &A, 1, T0);
	int32_t ip;
	/* 1/2 has hosts but 1/1 was used just now: no room. */
	assert_int_equal(get(2, T0 + S(1), &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 2);
	acore_apply_route(c, 1, 2, &B, 1, T0 + S(1));
	assert_int_equal(acore_count(c, ACORE_C_NO_ROOM), 1);
	assert_int_equal(get(2, T0 + S(2), &ip), ACORE_E_NO_ROOM);
	assert_int_equal(acore_retcode(ACORE_E_NO_ROOM), LARS_RET_SYSTEM_ERROR);
	/* 1/1 idle for update_timeout: the next answer for 1/2 evicts it. */
	acore_apply_route(c, 1, 2, &B, 1, T0 + S(16));
	expect_dns(ACORE_UNSUBSCRIBE, 1);
	expect_no_dns();
	assert_int_equal(acore_count(c, ACORE_C_EVICTED), 1);
	assert_int_equal(get(2, T0 + S(16), &ip), ACORE_OK);
	assert_int_equal(ip, B.ip);
	assert_null(rt_peek(acore_routes(c), 1, 1));
	/* Keys without hosts are bounded too: the least recently asked goes. */
	assert_int_equal(get(3, T0 + S(17), &ip), ACORE_E_PENDING);
	assert_int_equal(get(4, T0 + S(17), &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 3);
	expect_dns(ACORE_PULL, 4);
	assert_int_equal(get(5, T0 + S(17), &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 5);
	expect_dns(ACORE_UNSUBSCRIBE, 3);
	expect_no_dns();
	assert_int_equal(acore_count(c, ACORE_C_ABSENT_EVICTED), 1);
	assert_int_equal(ks_size(acore_keyset(c)), 2);
}

/* ---- the re-pull after a (re)connect, in slices ---- */

#define RP_MAX 6000 /* cmdids 0 .. RP_MAX-1, modid 1 */

static unsigned rp_pulls[RP_MAX], rp_unsubs[RP_MAX];

/* A core with @n_routes routes (cmdid 0..) and @n_keys keys without hosts
 * (absent, the cmdids after), made at T0 on a first connection. */
static void rp_fill(size_t n_routes, size_t n_keys, size_t max_routes, size_t max_absent)
{
	c = acore_free(c);
	cfg.max_routes = max_routes;
	cfg.max_absent = max_absent;
	cfg.pull_rate = 1e6;
	cfg.pull_burst = 1e6;
	assert_int_equal(acore_new(&cfg, T0, &c), 0);
	acore_dns_connected(c, T0);
	assert_false(acore_repull_step(c, T0, 1)); /* nothing known yet */
	int32_t ip;
	for (size_t i = 0; i < n_routes + n_keys; i++) {
		int32_t id = (int32_t)i;
		assert_int_equal(get(id, T0, &ip), ACORE_E_PENDING);
		expect_dns(ACORE_PULL, id);
		lars_HostInfo h = { 1000 + id, 80 };
		acore_apply_route(c, 1, id, &h, i < n_routes ? 1 : 0, T0);
	}
	expect_no_dns();
	assert_int_equal(rt_size(acore_routes(c)), n_routes);
	assert_int_equal(ks_size(acore_keyset(c)), n_keys);
	memset(rp_pulls, 0, sizeof(rp_pulls));
	memset(rp_unsubs, 0, sizeof(rp_unsubs));
}

/* Take what the core queued for lars-dns, counted per key. Return: pulls. */
static size_t rp_drain(void)
{
	size_t n = 0;
	acore_dns_msg_t m;
	while (acore_next_dns(c, &m)) {
		assert_int_equal(m.modid, 1);
		assert_true(m.cmdid >= 0 && m.cmdid < RP_MAX);
		if (m.kind == ACORE_PULL) {
			rp_pulls[m.cmdid]++;
			n++;
		} else {
			rp_unsubs[m.cmdid]++;
		}
	}
	return n;
}

/* One step of @budget: at most @budget pulls come out. Return: more left. */
static bool rp_step(uint64_t now, size_t budget, size_t *pullsp)
{
	bool more = acore_repull_step(c, now, budget);
	size_t n = rp_drain();
	assert_true(n <= budget);
	if (pullsp)
		*pullsp += n;
	assert_int_equal(acore_repulling(c), more);
	return more;
}

static bool rp_known(int32_t id)
{
	return rt_peek(acore_routes(c), 1, id) || ks_peek(acore_keyset(c), 1, id);
}

/* 5,000 keys, 64 a step: every route and every key without hosts pulled
 * exactly once, in 79 steps, and requests answered between the steps. */
static void test_repull_in_slices(void **state)
{
	rp_fill(3000, 2000, 3000, 2000);
	acore_set_link(c, ACORE_LINK_DOWN);
	uint64_t now = T0 + S(60);
	acore_dns_connected(c, now);
	expect_no_dns(); /* the connect itself queues nothing */
	assert_true(acore_repulling(c));
	size_t steps = 0, pulls = 0, on_demand = 0;
	while (rp_step(now, 64, &pulls)) {
		steps++;
		assert_true(steps < 1000);
		/* A route served between two slices: stale, so pulled at the
		 * first ask (once: the re-pull skips it then), served all along. */
		int32_t ip;
		assert_int_equal(get(2999, now, &ip), ACORE_OK);
		on_demand += rp_drain();
		now += 1;
	}
	assert_int_equal(steps + 1, (5000 + 63) / 64);
	assert_true(on_demand <= 1);
	assert_int_equal(pulls + on_demand, 5000);
	for (int32_t i = 0; i < 5000; i++) {
		assert_int_equal(rp_pulls[i], 1);
		assert_int_equal(rp_unsubs[i], 0);
	}
	/* Routes are PULLING (served meanwhile); the keys' clocks restarted. */
	assert_int_equal(rt_peek(acore_routes(c), 1, 0)->lb.status, LB_PULLING);
	assert_true(ks_peek(acore_keyset(c), 1, 4999)->since_ms >= T0 + S(60));
	assert_false(acore_repull_step(c, now, 64));
	assert_int_equal(rp_drain(), 0);
}

/* The connection lost half way: the rest is dropped, nothing is pulled
 * while down, and the next connect pulls every key again from the start. */
static void test_repull_disconnect_restarts(void **state)
{
	rp_fill(1500, 500, 2000, 1000);
	uint64_t now = T0 + S(60);
	acore_set_link(c, ACORE_LINK_DOWN);
	acore_dns_connected(c, now);
	size_t pulls = 0;
	for (int i = 0; i < 10; i++)
		assert_true(rp_step(now, 100, &pulls));
	assert_int_equal(pulls, 1000);
	acore_set_link(c, ACORE_LINK_DOWN);
	assert_false(acore_repulling(c));
	assert_false(acore_repull_step(c, now, 100));
	assert_int_equal(rp_drain(), 0);
	/* A connect attempt under way is not a connection either. */
	acore_set_link(c, ACORE_LINK_CONNECTING);
	assert_false(acore_repull_step(c, now, 100));
	assert_int_equal(rp_drain(), 0);

	memset(rp_pulls, 0, sizeof(rp_pulls));
	now += S(5);
	acore_dns_connected(c, now);
	/* Connected again before that re-pull ended: it starts over too. */
	pulls = 0;
	assert_true(rp_step(now, 300, &pulls));
	acore_dns_connected(c, now + 1);
	memset(rp_pulls, 0, sizeof(rp_pulls));
	pulls = 0;
	while (rp_step(now + 1, 300, &pulls))
		;
	assert_int_equal(pulls, 2000);
	for (int32_t i = 0; i < 2000; i++)
		assert_int_equal(rp_pulls[i], 1);
}

/*
 * Mid re-pull, the table changes under it: routes evicted for new ones,
 * a route deleted at lars-dns, keys without hosts dropped at max_absent.
 * Nothing forgotten is pulled (and nothing freed is touched: each key is
 * looked up again at its turn; -Db_sanitize=address checks that), new keys
 * are pulled once on demand, the rest once by the re-pull.
 */
static void test_repull_eviction_safe(void **state)
{
	rp_fill(2000, 1000, 2000, 1200);
	uint64_t now = T0 + S(60); /* every route idle: evictable */
	acore_set_link(c, ACORE_LINK_DOWN);
	acore_dns_connected(c, now);
	size_t pulls = 0;
	for (int i = 0; i < 15; i++) /* half way */
		assert_true(rp_step(now, 100, &pulls));
	/* 500 new routes (4000..4499) evict 500 old ones. */
	int32_t ip;
	for (int32_t id = 4000; id < 4500; id++) {
		assert_int_equal(get(id, now, &ip), ACORE_E_PENDING);
		lars_HostInfo h = { id, 80 };
		acore_apply_route(c, 1, id, &h, 1, now);
	}
	/* 600 new unknown keys (5000..5599) drop 400 old keys without hosts. */
	for (int32_t id = 5000; id < 5600; id++)
		assert_int_equal(get(id, now, &ip), ACORE_E_PENDING);
	/* Routes deleted at lars-dns: pushed on this connection, so known to
	 * be subscribed; absent now, not pulled again. */
	int32_t deleted[3] = { 0 };
	int n_deleted = 0;
	for (int32_t id = 1999; id >= 0 && n_deleted < 3; id--) {
		if (rt_peek(acore_routes(c), 1, id) && rp_pulls[id] == 0) {
			acore_apply_route(c, 1, id, NULL, 0, now);
			deleted[n_deleted++] = id;
		}
	}
	assert_int_equal(n_deleted, 3);
	size_t before[RP_MAX];
	for (int32_t i = 0; i < RP_MAX; i++)
		before[i] = rp_pulls[i];
	size_t on_demand = rp_drain();
	assert_int_equal(on_demand, 500 + 600);
	assert_int_equal(acore_count(c, ACORE_C_EVICTED), 500);
	assert_int_equal(acore_count(c, ACORE_C_ABSENT_EVICTED), 400 + 3);

	while (rp_step(now, 100, &pulls))
		;
	unsigned gone_pulled = 0, gone_unpulled = 0; /* before they were forgotten */
	for (int32_t i = 0; i < RP_MAX; i++) {
		if ((i >= 3000 && i < 4000) || (i >= 4500 && i < 5000) ||
		    i == deleted[0] || i == deleted[1] || i == deleted[2])
			continue; /* never known, or checked below */
		if (i >= 4000) {
			assert_int_equal(rp_pulls[i], i < 4500 || (i >= 5000 && i < 5600));
			continue;
		}
		if (!rp_known(i)) {
			/* Forgotten: unsubscribed, and not pulled since. */
			assert_int_equal(rp_unsubs[i], 1);
			assert_int_equal(rp_pulls[i], before[i]);
			assert_true(rp_pulls[i] <= 1);
			if (i < 2000)
				*(before[i] ? &gone_pulled : &gone_unpulled) += 1;
		} else {
			assert_int_equal(rp_pulls[i], 1);
		}
	}
	assert_int_equal(gone_pulled + gone_unpulled, 500);
	assert_true(gone_pulled > 0 && gone_unpulled > 0); /* both sides of the cursor */
	for (int k = 0; k < n_deleted; k++) {
		assert_int_equal(rp_pulls[deleted[k]], 0);
		assert_non_null(ks_peek(acore_keyset(c), 1, deleted[k]));
	}
}

/* A key pulled on demand while the re-pull is under way (a stale route,
 * a key without hosts asked again) is not pulled a second time by it; one
 * whose pull could not be sent is. */
static void test_repull_skips_pulled_on_demand(void **state)
{
	rp_fill(1000, 1000, 1000, 1000);
	uint64_t now = T0 + S(60); /* older than update_timeout: every key is due */
	acore_set_link(c, ACORE_LINK_DOWN);
	acore_dns_connected(c, now);
	size_t pulls = 0;
	assert_true(rp_step(now, 10, &pulls));
	int32_t ip;
	int32_t asked_route = -1, asked_key = -1, unsent = -1;
	for (int32_t id = 999; id >= 0 && asked_route < 0; id--)
		if (rp_pulls[id] == 0)
			asked_route = id;
	for (int32_t id = 1999; id >= 1000 && asked_key < 0; id--)
		if (rp_pulls[id] == 0)
			asked_key = id;
	for (int32_t id = 998; id >= 0 && unsent < 0; id--)
		if (rp_pulls[id] == 0 && id != asked_route)
			unsent = id;
	assert_true(asked_route >= 0 && asked_key >= 0 && unsent >= 0);
	assert_int_equal(get(asked_route, now, &ip), ACORE_OK); /* stale: served, pulled */
	assert_int_equal(get(asked_key, now, &ip), ACORE_E_ABSENT); /* due: pulled again */
	assert_int_equal(rp_drain(), 2);
	/* A stale route pulled on demand, but lars-dns's queue was full. */
	assert_int_equal(get(unsent, now, &ip), ACORE_OK);
	acore_dns_msg_t m;
	assert_true(acore_next_dns(c, &m));
	assert_int_equal(m.cmdid, unsent);
	assert_int_equal(acore_dns_unsent(c, &m), 0);
	while (rp_step(now, 10, &pulls))
		;
	assert_int_equal(pulls, 2000 - 2);
	for (int32_t i = 0; i < 2000; i++)
		assert_int_equal(rp_pulls[i], 1);
}

/* ---- agent_wire: the daemon's decode → core → answer ---- */

static int n_dns_sent;
static lars_GetRouteRequest last_dns;
static int send_ok(void *user, int32_t msgid, const lars_GetRouteRequest *req)
{
	n_dns_sent++;
	last_dns = *req;
	return 0;
}

static size_t enc(const pb_msgdesc_t *fields, const void *msg, uint8_t *buf, size_t cap)
{
	size_t len;
	assert_int_equal(msg_frame_encode(1, fields, msg, buf, cap, &len), 0);
	return len - 8; /* the body */
}

static void test_wire_get_host_and_route_answer(void **state)
{
	awire_t w = { .core = c, .send_dns = send_ok, .max_hosts = 2 };
	uint8_t buf[512];
	lars_GetHostRequest q = { .seq = 7, .modid = 1, .cmdid = 1 };
	size_t len = enc(lars_GetHostRequest_fields, &q, buf, sizeof(buf));
	lars_GetHostResponse resp;
	n_dns_sent = 0;
	assert_int_equal(awire_get_host(&w, buf + 8, len, T0, &resp), 0);
	assert_int_equal(resp.seq, 7);
	assert_int_equal(resp.retcode, LARS_RET_NOEXIST);
	assert_false(resp.has_host);
	assert_int_equal(n_dns_sent, 1);
	assert_int_equal(last_dns.cmdid, 1);
	/* The answer from lars-dns, with more hosts than max_hosts: cut. */
	const lars_HostInfo h[3] = { A, B, C };
	msg_array_t arr = MSG_HOSTS(h, 3);
	lars_GetRouteResponse r = lars_GetRouteResponse_init_zero;
	r.modid = 1;
	r.cmdid = 1;
	msg_array_bind(&arr, &r.host);
	size_t rlen = enc(lars_GetRouteResponse_fields, &r, buf, sizeof(buf));
	bool truncated;
	assert_int_equal(awire_route_answer(&w, buf + 8, rlen, T0 + 1, &truncated), 0);
	assert_true(truncated);
	assert_int_equal(lb_n_hosts(&rt_peek(acore_routes(c), 1, 1)->lb), 2);
	len = enc(lars_GetHostRequest_fields, &q, buf, sizeof(buf));
	assert_int_equal(awire_get_host(&w, buf + 8, len, T0 + 2, &resp), 0);
	assert_int_equal(resp.retcode, LARS_RET_SUCC);
	assert_true(resp.has_host);
	assert_int_equal(resp.host.ip, A.ip);
	/* The API's get_route lists the hosts. */
	lars_GetRouteRequest g = { .modid = 1, .cmdid = 1 };
	len = enc(lars_GetRouteRequest_fields, &g, buf, sizeof(buf));
	awire_route_t ans;
	assert_int_equal(awire_get_route(&w, buf + 8, len, T0 + 3, &ans), 0);
	assert_int_equal(ans.arr.n, 2);
	assert_false(ans.cut);
	awire_route_deinit(&ans);
	/* Broken bodies are refused, nothing answered. */
	const uint8_t junk[] = { 0xff, 0xff, 0xff };
	assert_int_equal(awire_get_host(&w, junk, sizeof(junk), T0, &resp), MSG_E_DECODE);
	assert_int_equal(awire_report(&w, junk, sizeof(junk), T0), MSG_E_DECODE);
	assert_int_not_equal(awire_route_answer(&w, junk, sizeof(junk), T0, &truncated), 0);
}

static int n_reports_sent, report_fail_after;
static int send_report(void *user, const lars_ReportStatusRequest *req, size_t n)
{
	if (n_reports_sent >= report_fail_after)
		return -ENOBUFS;
	n_reports_sent++;
	assert_int_equal(req->caller, 42);
	assert_int_equal(req->ts, 1234);
	return 0;
}

static void test_wire_flush_reports(void **state)
{
	awire_t w = { .core = c, .send_dns = send_ok, .send_report = send_report, .caller = 42 };
	for (int32_t k = 1; k <= 3; k++) {
		make_route(k, &A, 1, T0);
		acore_report(c, 1, k, A.ip, A.port, true, T0);
	}
	/* The second send fails: it and the rest stay buffered. */
	n_reports_sent = 0;
	report_fail_after = 1;
	awire_flush_reports(&w, 1234, T0);
	assert_int_equal(n_reports_sent, 1);
	assert_int_equal(acore_report_buf(c)->n_hosts, 2);
	report_fail_after = 100;
	awire_flush_reports(&w, 1234, T0);
	assert_int_equal(n_reports_sent, 3);
	assert_int_equal(acore_report_buf(c)->n_hosts, 0);
}


static void test_report_latency_aggregated(void **state)
{
	const lars_HostInfo h[2] = { A, B };
	make_route(1, h, 2, T0);
	/* A: 100 µs, 700 µs, 3 s and one without a duration; B: none. */
	acore_report_call(c, 1, 1, A.ip, A.port, true, 100, T0);
	acore_report_call(c, 1, 1, A.ip, A.port, true, 700, T0);
	acore_report_call(c, 1, 1, A.ip, A.port, false, 3000000, T0);
	acore_report_call(c, 1, 1, A.ip, A.port, true, 0, T0);
	acore_report(c, 1, 1, B.ip, B.port, true, T0);
	assert_int_equal(acore_take_reports(c, 7, T0), 1);
	acore_report_t r;
	assert_true(acore_next_report(c, &r));
	const lars_HostCallResult *a = result_of(&r, A.ip), *b = result_of(&r, B.ip);
	assert_int_equal(a->succ, 3);
	assert_int_equal(a->err, 1);
	assert_int_equal(a->lat_count, 3);
	assert_int_equal(a->lat_sum_us, 3000800);
	assert_int_equal(a->lat_buckets_count, MSG_LAT_BUCKETS);
	uint32_t want[MSG_LAT_BUCKETS] = { [0] = 1, [1] = 1, [MSG_LAT_BUCKETS - 1] = 1 };
	assert_memory_equal(a->lat_buckets, want, sizeof(want));
	assert_int_equal(b->lat_count, 0);
	assert_int_equal(b->lat_buckets_count, 0); /* no latency fields on the wire */
	/* Not sent: coalesced back with what came meanwhile, latency too. */
	acore_report_call(c, 1, 1, A.ip, A.port, true, 1500, T0);
	acore_reports_unsent(c);
	assert_int_equal(acore_take_reports(c, 8, T0), 1);
	assert_true(acore_next_report(c, &r));
	a = result_of(&r, A.ip);
	assert_int_equal(a->succ, 4);
	assert_int_equal(a->lat_count, 4);
	assert_int_equal(a->lat_sum_us, 3002300);
	assert_int_equal(a->lat_buckets[2], 1);
	assert_int_equal(r.seq, 1); /* the unsent one used no seq */
	assert_int_equal(r.ts, 8);
	assert_true(r.delta);
	assert_int_equal(r.agent_id, AGENT_ID);
	assert_false(acore_next_report(c, &r));
}

static void test_report_cumulative_window_totals(void **state)
{
	c = acore_free(c);
	cfg.cumulative = true;
	assert_int_equal(acore_new(&cfg, T0, &c), 0);
	acore_set_link(c, ACORE_LINK_UP);
	acore_reporter_connected(c, T0);
	const lars_HostInfo h[2] = { A, B };
	make_route(1, h, 2, T0);
	for (int i = 0; i < 3; i++)
		acore_report_call(c, 1, 1, A.ip, A.port, true, 500, T0);
	acore_report(c, 1, 1, A.ip, A.port, false, T0);
	acore_take_reports(c, 1, T0);
	acore_report_t r;
	assert_true(acore_next_report(c, &r));
	assert_false(r.delta);
	assert_int_equal(result_of(&r, A.ip)->succ, 3);
	assert_int_equal(result_of(&r, A.ip)->err, 1);
	assert_int_equal(result_of(&r, A.ip)->lat_count, 0); /* no latency in cumulative */
	assert_false(acore_next_report(c, &r));
	/* The next message: totals since the window began, not the difference. */
	acore_report(c, 1, 1, A.ip, A.port, true, T0 + S(1));
	acore_take_reports(c, 2, T0 + S(1));
	assert_true(acore_next_report(c, &r));
	assert_int_equal(r.seq, 2);
	assert_int_equal(result_of(&r, A.ip)->succ, 4);
	assert_int_equal(result_of(&r, A.ip)->err, 1);
	assert_null(result_of(&r, B.ip)); /* no calls: not sent */
	assert_false(acore_next_report(c, &r));
	/* A new window (idle_timeout over) starts the totals again. */
	acore_report(c, 1, 1, A.ip, A.port, true, T0 + S(cfg.lb.idle_timeout_s + 1));
	acore_report(c, 1, 1, A.ip, A.port, true, T0 + S(cfg.lb.idle_timeout_s + 1));
	acore_take_reports(c, 3, T0 + S(cfg.lb.idle_timeout_s + 1));
	assert_true(acore_next_report(c, &r));
	assert_true(result_of(&r, A.ip)->succ < 4);
	assert_false(acore_next_report(c, &r));
	cfg.cumulative = false;
}

/* What lars-reporter got, in order. */
#define MAX_SENT 64
static struct sent {
	uint64_t agent_id, seq;
	int32_t cmdid;
	uint32_t ts;
	bool delta;
	size_t n;
	uint32_t succ; /* over the results */
} sent[MAX_SENT];
static size_t n_sent;
static bool rep_fail;

static int capture_report(void *user, const lars_ReportStatusRequest *req, size_t n)
{
	if (rep_fail)
		return -ENOBUFS;
	assert_true(n_sent < MAX_SENT);
	const msg_array_t *arr = req->results.arg;
	const lars_HostCallResult *res = arr->v;
	uint32_t succ = 0;
	for (size_t i = 0; i < arr->n; i++)
		succ += res[i].succ;
	assert_int_equal(arr->n, n);
	assert_int_equal(req->caller, 42);
	sent[n_sent++] = (struct sent){ req->agent_id, req->seq, req->cmdid, req->ts, req->delta,
					n, succ };
	return 0;
}

static void expect_sent(size_t from, const uint64_t *seqs, size_t n)
{
	assert_int_equal(n_sent - from, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(sent[from + i].seq, seqs[i]);
		assert_int_equal(sent[from + i].agent_id, AGENT_ID);
		assert_true(sent[from + i].delta);
	}
}

/* An ack from lars-reporter as the wire has it. */
static int ack(awire_t *w, uint64_t agent_id, uint64_t seq, uint64_t now)
{
	lars_ReportStatusAck a = { .agent_id = agent_id, .seq = seq };
	uint8_t buf[64];
	size_t len;
	assert_int_equal(msg_frame_encode(LARS_ID_REPORT_STATUS_ACK, lars_ReportStatusAck_fields,
					  &a, buf, sizeof(buf), &len), 0);
	uint64_t id, s;
	int r = awire_report_ack(w, buf + 8, len - 8, now, &id, &s);
	assert_int_equal(id, agent_id);
	assert_int_equal(s, seq);
	return r;
}

static void test_wire_acks_and_resends(void **state)
{
	awire_t w = { .core = c, .send_dns = send_ok, .send_report = capture_report,
		      .caller = 42 };
	n_sent = 0;
	rep_fail = false;
	for (int32_t k = 1; k <= 3; k++)
		make_route(k, &A, 1, T0);
	acore_report(c, 1, 1, A.ip, A.port, true, T0);
	awire_flush_reports(&w, 100, T0);
	expect_sent(0, (uint64_t[]){ 1 }, 1);
	assert_int_equal(ack(&w, AGENT_ID, 1, T0 + 10), RA_ACK_OK);
	assert_int_equal(acore_count(c, ACORE_C_REPORTS_ACKED), 1);
	assert_int_equal(ack(&w, AGENT_ID ^ 1, 1, T0 + 10), RA_ACK_OTHER_AGENT);
	assert_int_equal(ack(&w, AGENT_ID, 2, T0 + 10), RA_ACK_BEYOND);
	uint8_t junk[] = { 0xff, 0xff };
	uint64_t id, s;
	assert_int_equal(awire_report_ack(&w, junk, sizeof(junk), T0, &id, &s), MSG_E_DECODE);
	/* Two more go out; the connection drops before their ack. */
	acore_report(c, 1, 2, A.ip, A.port, true, T0 + S(1));
	acore_report(c, 1, 3, A.ip, A.port, true, T0 + S(1));
	acore_report(c, 1, 3, A.ip, A.port, true, T0 + S(1));
	awire_flush_reports(&w, 101, T0 + S(1));
	assert_int_equal(n_sent, 3);
	assert_int_equal(ra_held(acore_report_acks(c)), 2);
	acore_reporter_lost(c);
	acore_report(c, 1, 1, A.ip, A.port, true, T0 + S(2));
	awire_flush_reports(&w, 102, T0 + S(2)); /* away: nothing goes */
	assert_int_equal(n_sent, 3);
	/* Back: the held two first, unchanged (seq, ts, counts), then the new one. */
	acore_reporter_connected(c, T0 + S(3));
	awire_flush_reports(&w, 103, T0 + S(3));
	expect_sent(3, (uint64_t[]){ 2, 3, 4 }, 3);
	for (int i = 1; i <= 2; i++) {
		assert_int_equal(sent[2 + i].cmdid, sent[i].cmdid);
		assert_int_equal(sent[2 + i].ts, sent[i].ts);
		assert_int_equal(sent[2 + i].succ, sent[i].succ);
	}
	assert_int_equal(sent[4].succ, 2);
	assert_int_equal(sent[5].ts, 103);
	assert_int_equal(acore_count(c, ACORE_C_REPORTS_RESENT), 2);
	/* The new connection acks what its reporter had stored (seq 1): ours. */
	assert_int_equal(ack(&w, AGENT_ID, 1, T0 + S(3)), RA_ACK_OK);
	/* No ack for ack_timeout: all three again, in order; new counts after them. */
	assert_int_equal(acore_reporter_tick(c, T0 + S(3) + 4999), RA_TICK_NONE);
	assert_int_equal(acore_reporter_tick(c, T0 + S(8)), RA_TICK_RESEND);
	acore_report(c, 1, 1, A.ip, A.port, true, T0 + S(8));
	rep_fail = true; /* the write queue is full: nothing new may pass them */
	awire_flush_reports(&w, 108, T0 + S(8));
	assert_int_equal(n_sent, 6);
	rep_fail = false;
	awire_flush_reports(&w, 108, T0 + S(8));
	expect_sent(6, (uint64_t[]){ 2, 3, 4, 5 }, 4);
	assert_int_equal(ack(&w, AGENT_ID, 5, T0 + S(9)), RA_ACK_OK);
	assert_int_equal(ra_held(acore_report_acks(c)), 0);
	assert_int_equal(acore_count(c, ACORE_C_REPORTS_ACKED), 5);
	assert_int_equal(acore_reporter_tick(c, T0 + S(60)), RA_TICK_NONE);
}

static void test_wire_bound_drops_counted(void **state)
{
	c = acore_free(c);
	cfg.report_max_hosts = 2;
	assert_int_equal(acore_new(&cfg, T0, &c), 0);
	cfg.report_max_hosts = 1000;
	acore_set_link(c, ACORE_LINK_UP);
	acore_reporter_connected(c, T0);
	awire_t w = { .core = c, .send_dns = send_ok, .send_report = capture_report,
		      .caller = 42 };
	n_sent = 0;
	rep_fail = false;
	const lars_HostInfo h[2] = { A, B };
	make_route(1, h, 2, T0);
	acore_report(c, 1, 1, A.ip, A.port, true, T0);
	awire_flush_reports(&w, 1, T0);
	assert_int_equal(ack(&w, AGENT_ID, 0, T0), RA_ACK_OK); /* this reporter acks */
	acore_report(c, 1, 1, A.ip, A.port, true, T0);
	acore_report(c, 1, 1, B.ip, B.port, false, T0);
	awire_flush_reports(&w, 2, T0); /* 1 + 2 results > 2: seq 1 goes */
	assert_int_equal(ra_held(acore_report_acks(c)), 1);
	assert_int_equal(acore_count(c, ACORE_C_REPORTS_DROPPED), 1);
	assert_int_equal(acore_count(c, ACORE_C_REPORT_DROPPED), 1);
	/* The buffer's own refusals count in the old name only. */
	acore_report(c, 1, 1, A.ip, A.port, true, T0);
	acore_report(c, 1, 1, B.ip, B.port, true, T0);
	make_route(2, &C, 1, T0);
	assert_int_equal(acore_report(c, 1, 2, C.ip, C.port, true, T0), ACORE_OK);
	assert_int_equal(acore_count(c, ACORE_C_REPORT_DROPPED), 2);
	assert_int_equal(acore_count(c, ACORE_C_REPORTS_DROPPED), 1);
}

/* An original lars_reporter never acks: every seq reaches it exactly once. */
static void test_wire_never_acking_reporter_no_duplicates(void **state)
{
	awire_t w = { .core = c, .send_dns = send_ok, .send_report = capture_report,
		      .caller = 42 };
	n_sent = 0;
	rep_fail = false;
	make_route(1, &A, 1, T0);
	uint64_t now = T0;
	for (int i = 0; i < 60; i++) {
		now += S(1);
		acore_report(c, 1, 1, A.ip, A.port, true, now);
		if (acore_reporter_tick(c, now) == RA_TICK_RESEND)
			awire_resend_reports(&w, now);
		awire_flush_reports(&w, (uint32_t)(now / 1000), now);
		if (i % 20 == 19) { /* lost and back */
			acore_reporter_lost(c);
			acore_reporter_connected(c, now);
			awire_resend_reports(&w, now);
		}
	}
	assert_int_equal(n_sent, 60);
	for (size_t i = 0; i < n_sent; i++) {
		assert_int_equal(sent[i].seq, i + 1);
		assert_int_equal(sent[i].succ, 1);
	}
	assert_int_equal(acore_count(c, ACORE_C_REPORTS_RESENT), 0);
	assert_int_equal(acore_count(c, ACORE_C_REPORTS_DROPPED), 0);
	assert_true(ra_held(acore_report_acks(c)) <= 5); /* only while a connection is new */
}

/* Issue 19 over the wire: weights, a drain and the policy in a route answer
 * from lars-dns reach the balancer; the API's get_route marks the drain. */
static void test_wire_traffic_control(void **state)
{
	awire_t w = { .core = c, .send_dns = send_ok, .max_hosts = 10 };
	uint8_t buf[512];
	int32_t ip;
	assert_int_equal(get(1, T0, &ip), ACORE_E_PENDING);
	lars_HostInfo h[3] = { A, B, C };
	h[0].weight = 100;
	h[1].weight = 300;
	h[2].drain = true;
	msg_array_t arr = MSG_HOSTS(h, 3);
	lars_GetRouteResponse r = lars_GetRouteResponse_init_zero;
	r.modid = 1;
	r.cmdid = 1;
	r.has_policy = true;
	r.policy = (lars_RoutePolicy){ .has_panic_threshold = true, .panic_threshold = 40,
				       .max_ejection_percent = 50 };
	msg_array_bind(&arr, &r.host);
	size_t rlen = enc(lars_GetRouteResponse_fields, &r, buf, sizeof(buf));
	bool truncated;
	assert_int_equal(awire_route_answer(&w, buf + 8, rlen, T0 + 1, &truncated), 0);
	const lb_t *lb = &rt_peek(acore_routes(c), 1, 1)->lb;
	assert_int_equal(lb->panic_threshold, 40);
	assert_int_equal(lb->max_ejection_pct, 50);
	int n[3] = { 0 };
	for (int i = 0; i < 4000; i++) {
		assert_int_equal(get(1, T0 + 2, &ip), ACORE_OK);
		n[ip - A.ip]++;
	}
	assert_int_equal(n[0], 1000);
	assert_int_equal(n[1], 3000);
	assert_int_equal(n[2], 0); /* drained */
	lars_GetRouteRequest g = { .modid = 1, .cmdid = 1 };
	size_t len = enc(lars_GetRouteRequest_fields, &g, buf, sizeof(buf));
	awire_route_t ans;
	assert_int_equal(awire_get_route(&w, buf + 8, len, T0 + 3, &ans), 0);
	assert_int_equal(ans.arr.n, 3);
	int drained = 0;
	for (size_t i = 0; i < 3; i++)
		drained += ans.hosts[i].drain ? (ans.hosts[i].ip == C.ip ? 1 : 100) : 0;
	assert_int_equal(drained, 1);
	awire_route_deinit(&ans);
}

/* Panic mode counted once per entry, the gauge follows entry, exit and the
 * route's deletion. */
static void test_panic_counted(void **state)
{
	lars_HostInfo h[10];
	for (int i = 0; i < 10; i++)
		h[i] = (lars_HostInfo){ .ip = 100 + i, .port = 80 };
	int32_t ip;
	assert_int_equal(get(1, T0, &ip), ACORE_E_PENDING);
	expect_dns(ACORE_PULL, 1);
	lars_RoutePolicy p = { .has_panic_threshold = true, .panic_threshold = 50 };
	acore_apply_route_policy(c, 1, 1, h, 10, &p, T0);
	for (int i = 0; i < 6; i++)
		for (int k = 0; k < cfg.lb.contin_err_limit; k++)
			acore_report(c, 1, 1, h[i].ip, 80, false, T0 + 1);
	assert_int_equal(acore_routes_in_panic(c), 1);
	assert_int_equal(acore_count(c, ACORE_C_PANIC), 1);
	bool seen[10] = { false };
	for (int i = 0; i < 200; i++) {
		assert_int_equal(get(1, T0 + 2, &ip), ACORE_OK); /* never OVERLOAD */
		seen[ip - 100] = true;
	}
	for (int i = 0; i < 10; i++)
		assert_true(seen[i]);
	assert_int_equal(acore_count(c, ACORE_C_PANIC), 1);
	/* One comes back: 5 of 10, out of panic. */
	for (int k = 0; k < cfg.lb.contin_succ_limit; k++)
		acore_report(c, 1, 1, h[0].ip, 80, true, T0 + 3);
	assert_int_equal(acore_routes_in_panic(c), 0);
	/* In again, then the route deleted at lars-dns: none in panic. */
	for (int k = 0; k < cfg.lb.contin_err_limit; k++)
		acore_report(c, 1, 1, h[0].ip, 80, false, T0 + 4);
	assert_int_equal(acore_routes_in_panic(c), 1);
	assert_int_equal(acore_count(c, ACORE_C_PANIC), 2);
	acore_apply_route(c, 1, 1, NULL, 0, T0 + 5);
	assert_int_equal(acore_routes_in_panic(c), 0);
}

/* Slow start across an agent restart: a new core given the same join time
 * and wall clock picks exactly as the one that ran all along. */
static void test_slow_start_across_core_restart(void **state)
{
	const int64_t wall = 1800000000;
	lars_HostInfo h[2] = { A, B };
	h[0].joined_at = wall;         /* new */
	h[1].joined_at = wall - 3600;  /* long in */
	lars_RoutePolicy p = { .slow_start_s = 100 };
	int32_t ip;
	assert_int_equal(get(1, T0, &ip), ACORE_E_PENDING);
	acore_apply_route_policy(c, 1, 1, h, 2, &p, T0);
	acore_set_wall(c, (wall + 50) * 1000);
	for (int i = 0; i < 77; i++) /* some picks before the "restart" */
		assert_int_equal(get(1, T0 + 1, &ip), ACORE_OK);

	acore_t *c2;
	assert_int_equal(acore_new(&cfg, S(7), &c2), 0);
	acore_set_link(c2, ACORE_LINK_UP);
	lars_HostInfo out;
	assert_int_equal(acore_get_host(c2, 1, 1, S(7), &out), ACORE_E_PENDING);
	acore_apply_route_policy(c2, 1, 1, h, 2, &p, S(7));
	acore_set_wall(c2, (wall + 50) * 1000);
	const lb_t *l1 = &rt_peek(acore_routes(c), 1, 1)->lb;
	const lb_t *l2 = &rt_peek(acore_routes(c2), 1, 1)->lb;
	int n1 = 0, n2 = 0;
	for (int i = 0; i < 1550; i++) {
		assert_int_equal(get(1, T0 + 2, &ip), ACORE_OK);
		n1 += ip == A.ip;
		assert_int_equal(acore_get_host(c2, 1, 1, S(8), &out), ACORE_OK);
		n2 += out.ip == A.ip;
	}
	assert_int_equal(n1, 550); /* 55 : 100 */
	assert_int_equal(n2, 550);
	/* The wall clock of the last pick: both give the same weight. */
	assert_int_equal(lb_weight(l1, lb_find(l1, A.ip, A.port)), 55);
	assert_int_equal(lb_weight(l2, lb_find(l2, A.ip, A.port)), 55);
	acore_free(c2);
}

/* A reload's [loadbalance] (issue 24.5): an existing route's balancer reads
 * the new values from its next decision on; its counters are kept. */
static void test_set_lb_applies_to_existing_routes(void **state)
{
	const lars_HostInfo h[2] = { A, B };
	make_route(1, h, 2, T0);
	/* Under the default contin_err_limit (15) 5 errors in a row keep A idle. */
	for (int i = 0; i < 5; i++)
		acore_report(c, 1, 1, A.ip, A.port, false, T0 + S(1));
	assert_int_equal(acore_count(c, ACORE_C_STATE_CHANGES), 0);
	lb_cfg_t lb = cfg.lb;
	assert_false(acore_set_lb(c, &lb)); /* the same values: nothing to do */
	lb.contin_err_limit = 6;
	assert_true(acore_set_lb(c, &lb));
	/* The sixth error in a row now overloads A: the five before still count. */
	acore_report(c, 1, 1, A.ip, A.port, false, T0 + S(1));
	assert_int_equal(acore_count(c, ACORE_C_STATE_CHANGES), 1);
	int32_t ip;
	for (int i = 0; i < 5; i++) {
		assert_int_equal(get(1, T0 + S(2), &ip), ACORE_OK);
		assert_int_equal(ip, B.ip);
	}
	/* A route made after the reload gets the new values as well. */
	const lars_HostInfo h2[2] = { C, B };
	make_route(2, h2, 2, T0 + S(3));
	for (int i = 0; i < 6; i++)
		acore_report(c, 1, 2, C.ip, C.port, false, T0 + S(3));
	assert_int_equal(acore_count(c, ACORE_C_STATE_CHANGES), 2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_set_lb_applies_to_existing_routes),
		T(test_wire_traffic_control),
		T(test_panic_counted),
		T(test_slow_start_across_core_restart),
		T(test_retcodes_on_the_wire),
		T(test_noexist_pull_then_host),
		T(test_answer_without_hosts_is_absent),
		T(test_push_updates_and_deletes),
		T(test_pulls_are_token_limited),
		T(test_link_states),
		T(test_unsent_new_pull_is_busy),
		T(test_reports_aggregate_and_are_taken),
		T(test_state_change_is_reported_soon),
		T(test_expiry_on_the_clock),
		T(test_no_room_then_eviction_unsubscribes),
		T(test_repull_in_slices),
		T(test_repull_disconnect_restarts),
		T(test_repull_eviction_safe),
		T(test_repull_skips_pulled_on_demand),
		T(test_wire_get_host_and_route_answer),
		T(test_wire_flush_reports),
		T(test_report_latency_aggregated),
		T(test_report_cumulative_window_totals),
		T(test_wire_acks_and_resends),
		T(test_wire_bound_drops_counted),
		T(test_wire_never_acking_reporter_no_duplicates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
