// SPDX-License-Identifier: MIT
// Traffic control end to end (issue 19.9): routes changed with larsctl in a
// real PostgreSQL, pushed by a real lars-dns to a real lars-agent, picked by
// get_host over UDP:
//  - lars-dns sends weights, policies and (with slow start) join times, and
//    nothing of them for a route at the defaults;
//  - weights 100:300 give pick shares 1:3 (within 5 points over 4,000 calls);
//  - `larsctl route drain` stops every pick of the host within 1 s, the
//    other hosts keep answering, and the agent's API get_route still lists
//    the drained host, marked;
//  - 6 of 10 hosts failing with `route policy --panic-threshold 50`: every
//    host keeps getting picks, no OVERLOAD answer, the panic metrics set.
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "wire_client.h"

static const char *dns_bin, *agent_bin, *larsctl_bin, *lars_bin;
static int agent_base;
static harness_pg_t pg;
static harness_proc_t dns, agent;
static int agent_metrics;

/* The agent's UDP port for (modid, cmdid): base + (modid + cmdid) % 3,
 * named "udp", "udp1" and "udp2" in its ready line. */
static int agent_port(int32_t modid, int32_t cmdid)
{
	static const char *const names[3] = { "udp", "udp1", "udp2" };
	return harness_port(&agent, names[(modid + cmdid) % 3]);
}

/* One get_host; the picked port, or -retcode (OVERLOAD -1, ...), or -100 on no answer. */
static int pick(int fd, int32_t modid, int32_t cmdid, uint32_t seq)
{
	lars_GetHostResponse r;
	if (wc_get_host(fd, agent_port(modid, cmdid), seq, modid, cmdid, &r, 1000))
		return -100;
	if (r.retcode != LARS_RET_SUCC)
		return -r.retcode;
	return r.host.port;
}

static void test_weights_share(void **state)
{
	assert_true(wc_agent_route_has(agent_port(1, 1), 1, 1, 9002, true, 10000));
	/* The weight arrives with the route; wait until picks follow it. */
	int fd = harness_udp_socket();
	uint32_t seq = 1;
	int n1 = 0, n2 = 0, other = 0;
	const int calls = 4000;
	for (int i = 0; i < calls; i++) {
		int p = pick(fd, 1, 1, seq++);
		if (p == 9001)
			n1++;
		else if (p == 9002)
			n2++;
		else
			other++;
		lars_HostInfo h = { .ip = 0x7f000001, .port = p > 0 ? p : 9001 };
		if (p > 0)
			wc_report(fd, agent_port(1, 1), 1, 1, h, LARS_RET_SUCC);
	}
	close(fd);
	double share = 100.0 * n2 / calls;
	printf("# weights 100:300 over %d calls: 9001 %d, 9002 %d (%.1f %%, want 75 +- 5), other %d\n",
	       calls, n1, n2, share, other);
	assert_int_equal(other, 0);
	assert_true(share >= 70.0 && share <= 80.0);
}

static void test_drain_stops_picks(void **state)
{
	const int port = agent_port(2, 1);
	assert_true(wc_agent_route_has(port, 2, 1, 9103, true, 10000));
	int fd = harness_udp_socket();
	uint32_t seq = 1;
	/* Traffic before: all three hosts picked. */
	int before[3] = { 0 };
	for (int i = 0; i < 300; i++) {
		int p = pick(fd, 2, 1, seq++);
		if (p < 9101 || p > 9103)
			fail_msg("get_host 2/1 before the drain: %d", p);
		before[p - 9101]++;
	}
	for (int i = 0; i < 3; i++)
		assert_true(before[i] > 0);

	double t0 = harness_now_s();
	assert_int_equal(harness_run("%s route drain 2 1 127.0.0.1 9102 >/dev/null", larsctl_bin), 0);
	/* Calls go on; the last pick of 9102 is within 1 s of the command. */
	double last_drained = -1, end = t0 + 2.5;
	int calls = 0, failed = 0, after_1s = 0, drained_after_1s = 0;
	while (harness_now_s() < end) {
		int p = pick(fd, 2, 1, seq++);
		double t = harness_now_s() - t0;
		calls++;
		if (p < 0)
			failed++;
		if (p == 9102)
			last_drained = t;
		if (t > 1.0) {
			after_1s++;
			drained_after_1s += p == 9102;
		}
		usleep(500);
	}
	printf("# drain: last pick of the drained host %.0f ms after `larsctl route drain`; "
	       "%d calls, %d failed; %d calls after 1 s, %d of them to it\n",
	       last_drained * 1000, calls, failed, after_1s, drained_after_1s);
	assert_int_equal(failed, 0);
	assert_true(after_1s >= 200);
	assert_int_equal(drained_after_1s, 0);

	/* Still listed by the API get_route, marked drained. */
	wc_route_t r;
	assert_true(wc_api_get_route(fd, port, 2, 1, &r, 16, 1000) > 0);
	assert_int_equal(r.n, 3);
	int marked = 0;
	for (size_t i = 0; i < r.n; i++)
		marked += r.hosts[i].drain ? (r.hosts[i].port == 9102 ? 1 : 100) : 0;
	assert_int_equal(marked, 1);
	wc_route_free(&r);
	/* And by the lars tool (lars_get_route_flags() of liblars-client). */
	assert_int_equal(harness_run("%s --agent 127.0.0.1:%d get-route 2 1 | "
				     "grep -qx '127.0.0.1:9102 drained'", lars_bin, agent_base), 0);
	assert_int_equal(harness_run("[ \"$(%s --agent 127.0.0.1:%d get-route 2 1 | grep -c drained)\" = 1 ]",
				     lars_bin, agent_base), 0);

	/* --undo: picked again. */
	assert_int_equal(harness_run("%s route drain 2 1 127.0.0.1 9102 --undo >/dev/null",
				     larsctl_bin), 0);
	int back = 0;
	end = harness_now_s() + 5;
	while (!back && harness_now_s() < end) {
		back = pick(fd, 2, 1, seq++) == 9102;
		usleep(1000);
	}
	close(fd);
	assert_true(back);
}

static void test_panic_keeps_all_hosts(void **state)
{
	const int port = agent_port(3, 1);
	assert_int_equal(harness_run("%s route policy 3 1 --panic-threshold 50 >/dev/null",
				     larsctl_bin), 0);
	assert_true(wc_agent_route_has(port, 3, 1, 9210, true, 10000));
	int fd = harness_udp_socket();
	uint32_t seq = 1;
	/* 9201..9206 fail every call: 15 errors in a row overload each. Run
	 * until six are overloaded (the agent is in panic) or 10 s pass. */
	double end = harness_now_s() + 10;
	while (harness_now_s() < end && harness_metric(agent_metrics, "lars_agent_routes_in_panic") < 1) {
		for (int i = 0; i < 200; i++) {
			int p = pick(fd, 3, 1, seq++);
			if (p <= 0)
				continue;
			lars_HostInfo h = { .ip = 0x7f000001, .port = p };
			wc_report(fd, port, 3, 1, h, p <= 9206 ? LARS_RET_SYSTEM_ERROR : LARS_RET_SUCC);
		}
	}
	assert_true(harness_metric(agent_metrics, "lars_agent_routes_in_panic") >= 1);
	assert_true(harness_metric(agent_metrics, "lars_agent_panic_total") >= 1);

	/* In panic: picks over all ten by weight, never OVERLOAD. */
	int count[10] = { 0 }, overload = 0, failed = 0;
	const int calls = 2000;
	for (int i = 0; i < calls; i++) {
		int p = pick(fd, 3, 1, seq++);
		if (p == -LARS_RET_OVERLOAD)
			overload++;
		else if (p < 9201 || p > 9210)
			failed++;
		else
			count[p - 9201]++;
		if (p > 0) {
			lars_HostInfo h = { .ip = 0x7f000001, .port = p };
			wc_report(fd, port, 3, 1, h, p <= 9206 ? LARS_RET_SYSTEM_ERROR : LARS_RET_SUCC);
		}
	}
	close(fd);
	int least = calls;
	for (int i = 0; i < 10; i++)
		least = count[i] < least ? count[i] : least;
	printf("# panic (6 of 10 failing, threshold 50 %%): %d calls, %d OVERLOAD, %d failed; "
	       "fewest picks of a host %d (even share %d); routes in panic %.0f\n",
	       calls, overload, failed, least, calls / 10,
	       harness_metric(agent_metrics, "lars_agent_routes_in_panic"));
	assert_int_equal(overload, 0);
	assert_int_equal(failed, 0);
	/* Equal weights: an even share each; well above what probes alone give. */
	assert_true(least >= calls / 10 / 2);
	assert_true(harness_metric(agent_metrics, "lars_agent_routes_in_panic") >= 1);
}

/* What lars-dns sends: weights as stored, the policy only when it is not the
 * default, join times only with slow start (from the host's created_at). */
static void test_dns_sends_traffic_fields(void **state)
{
	int fd = wc_connect("127.0.0.1", harness_port(&dns, "tcp"), harness_deadline(5000));
	assert_true(fd >= 0);
	wc_route_t r;
	assert_int_equal(wc_get_route_send(fd, 1, 1), 0);
	assert_int_equal(wc_route_recv(fd, &r, 1 << 20, harness_deadline(5000), NULL), 1);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.hosts[0].weight, 0); /* the default 100: not sent */
	assert_int_equal(r.hosts[1].weight, 300);
	assert_int_equal(r.hosts[1].joined_at, 0);
	assert_false(r.has_policy);
	wc_route_free(&r);

	/* Slow start on: a push with the policy and every host's join time. */
	time_t now = time(NULL);
	assert_int_equal(harness_run("%s route policy 1 1 --slow-start 1 >/dev/null", larsctl_bin), 0);
	assert_int_equal(wc_route_recv(fd, &r, 1 << 20, harness_deadline(5000), NULL), 1);
	assert_true(r.has_policy);
	assert_int_equal(r.policy.slow_start_s, 1);
	assert_false(r.policy.has_panic_threshold);
	assert_int_equal(r.n, 2);
	for (size_t i = 0; i < r.n; i++)
		assert_true(r.hosts[i].joined_at > now - 600 && r.hosts[i].joined_at <= now + 5);
	wc_route_free(&r);
	/* And off again: the original's bytes. */
	assert_int_equal(harness_run("%s route policy 1 1 --slow-start 0 >/dev/null", larsctl_bin), 0);
	assert_int_equal(wc_route_recv(fd, &r, 1 << 20, harness_deadline(5000), NULL), 1);
	assert_false(r.has_policy);
	assert_int_equal(r.hosts[0].joined_at, 0);
	wc_route_free(&r);
	close(fd);
}

static int setup(void **state)
{
	if (harness_pg_start(&pg, "traffic", false))
		return -1;
	if (harness_run("%s migrate >/dev/null", larsctl_bin) ||
	    harness_run("%s route add 1 1 127.0.0.1 9001 >/dev/null", larsctl_bin) ||
	    harness_run("%s route add 1 1 127.0.0.1 9002 >/dev/null", larsctl_bin) ||
	    harness_run("%s route weight 1 1 127.0.0.1 9002 300 >/dev/null", larsctl_bin))
		return -1;
	for (int p = 9101; p <= 9103; p++)
		if (harness_run("%s route add 2 1 127.0.0.1 %d >/dev/null", larsctl_bin, p))
			return -1;
	for (int p = 9201; p <= 9210; p++)
		if (harness_run("%s route add 3 1 127.0.0.1 %d >/dev/null", larsctl_bin, p))
			return -1;
	if (harness_spawn(&dns, dns_bin,
			  harness_write_config("[dns]\nport = 0\n[metrics]\nenabled = true\nport = 0\n")))
		return -1;
	int base = harness_free_udp_base();
	if (base <= 0)
		return -1;
	agent_base = base;
	/* Overloaded hosts stay so for the whole test (no return mid-count). */
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nbase_port = %d\n"
		 "[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\n"
		 "[loadbalance]\noverload_timeout = 120\n"
		 "[metrics]\nenabled = true\nport = 0\n",
		 base, harness_port(&dns, "tcp"), harness_free_tcp_port());
	if (harness_spawn(&agent, agent_bin, harness_write_config(cfg)))
		return -1;
	agent_metrics = harness_port(&agent, "metrics");
	return 0;
}

static int teardown(void **state)
{
	int rc = harness_stop(&agent) | harness_stop(&dns);
	harness_pg_stop(&pg);
	return rc ? -1 : 0;
}

int main(void)
{
	if (!getenv("LARS_TEST_PG")) {
		fprintf(stderr, "no PostgreSQL for this run (deploy/lars-local test provides one)\n");
		return 77;
	}
	dns_bin = getenv("LARS_DNS_BIN");
	agent_bin = getenv("LARS_AGENT_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	lars_bin = getenv("LARS_BIN");
	if (!dns_bin || !agent_bin || !larsctl_bin || !lars_bin) {
		fprintf(stderr, "LARS_DNS_BIN, LARS_AGENT_BIN, LARSCTL_BIN and LARS_BIN must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dns_sends_traffic_fields),
		cmocka_unit_test(test_weights_share),
		cmocka_unit_test(test_drain_stops_picks),
		cmocka_unit_test(test_panic_keeps_all_hosts),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
