// SPDX-License-Identifier: MIT
// lars-agent's acknowledged reports against a real lars-reporter and
// PostgreSQL (a cluster of the test's own), with a short [reporter]
// ack_timeout_ms. The agent's reports carry agent_id, seq and delta; a
// reporter that never acks (the original, and this tree's lars-reporter until
// it acks) must still get every count exactly once: across the agent's ack
// timeout (it is judged an original and nothing is sent again), over quiet
// periods and across a restart of lars-reporter (reconnect: nothing sent
// twice). A reporter that acks must get the same sums: exactly once either way.
#include "test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "wire_client.h"

static const char *agent_bin, *dns_bin, *rep_bin, *larsctl_bin;
static harness_pg_t pg;
static harness_proc_t dns, rep, agent;
static int ports[3], metrics_port, rep_port;
static int fd;

#define SUM_Q "SELECT coalesce(sum(succ + err), 0) FROM host_status_history " \
	      "WHERE modid = 7 AND cmdid = 1"

static int spawn_reporter(void)
{
	char cfg[256];
	snprintf(cfg, sizeof(cfg), "[reporter]\nport = %d\nflush_interval_ms = 100\n", rep_port);
	return harness_spawn(&rep, rep_bin, harness_write_config(cfg));
}

static long long metric(const char *name)
{
	assert_true(harness_http_get(metrics_port, "/metrics", (char[16]){ 0 }, 16) > 0);
	return (long long)harness_metric(metrics_port, name);
}

/* How often @what is in @p's log (its stderr) so far. */
static int log_count(const harness_proc_t *p, const char *what)
{
	FILE *f = fopen(p->log, "r");
	assert_non_null(f);
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	fclose(f);
	return n;
}

/* @n reports for 7/1 at port 9001 (a third of them errors). */
static void report_n(int n)
{
	lars_HostInfo host = { .ip = 2130706433, .port = 9001 };
	for (int i = 0; i < n; i++)
		assert_int_equal(wc_report(fd, ports[(7 + 1) % 3], 7, 1, host,
					   i % 3 ? LARS_RET_SUCC : LARS_RET_SYSTEM_ERROR), 0);
}

static int wait_host(int ms)
{
	static uint32_t seq;
	int64_t end = harness_deadline(ms);
	int r;
	do {
		lars_GetHostResponse resp;
		assert_int_equal(wc_get_host(fd, ports[(7 + 1) % 3], ++seq, 7, 1, &resp, 2000), 0);
		r = resp.retcode;
		if (r == LARS_RET_SUCC)
			return r;
		usleep(20000);
	} while (harness_left_ms(end) > 0);
	return r;
}

static int setup(void **state)
{
	assert_int_equal(harness_pg_start(&pg, "agent_once", false), 0);
	assert_int_equal(harness_run("%s migrate >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_run("%s route add 7 1 127.0.0.1 9001 >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_spawn(&dns, dns_bin, harness_write_config("[dns]\nport = 0\n")), 0);
	rep_port = harness_free_tcp_port();
	assert_true(rep_port > 0);
	assert_int_equal(spawn_reporter(), 0);
	int base = harness_free_udp_base();
	assert_true(base > 0);
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nbase_port = %d\n"
		 "[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\ninterval = 1\nack_timeout_ms = 1000\n"
		 "counts = delta\n"
		 "[metrics]\nenabled = true\nport = 0\n",
		 base, harness_port(&dns, "tcp"), rep_port);
	assert_int_equal(harness_spawn(&agent, agent_bin, harness_write_config(cfg)), 0);
	ports[0] = harness_port(&agent, "udp");
	ports[1] = harness_port(&agent, "udp1");
	ports[2] = harness_port(&agent, "udp2");
	metrics_port = harness_port(&agent, "metrics");
	fd = harness_udp_socket();
	return 0;
}

static int teardown(void **state)
{
	close(fd);
	int ra = harness_stop(&agent);
	harness_stop(&rep);
	harness_stop(&dns);
	harness_pg_stop(&pg);
	assert_int_equal(ra, 0);
	return 0;
}

/* The history's sum reaches @want within 30 s and is still @want after @quiet_ms. */
static void expect_sum_stays(long long want, int quiet_ms)
{
	long long got = harness_wait_sql(SUM_Q, want, 30000);
	assert_int_equal(got, want);
	usleep((useconds_t)quiet_ms * 1000);
	assert_int_equal(harness_sql_num(SUM_Q), want);
}

static void test_every_count_once(void **state)
{
	assert_int_equal(wait_host(10000), LARS_RET_SUCC);
	long long calls = 0;
	/* Over more than ack_timeout_ms (1 s) and several report intervals. */
	for (int round = 0; round < 6; round++) {
		report_n(50);
		calls += 50;
		usleep(500000);
	}
	/* Quiet: three ack timeouts and intervals go by; nothing may come twice. */
	expect_sum_stays(calls, 3500);
	long long acked = metric("lars_agent_reports_acked_total");
	long long resent = metric("lars_agent_reports_resent_total");
	assert_true(acked >= 0 && resent >= 0);
	if (acked == 0) { /* a reporter that never acks gets nothing again */
		assert_int_equal(resent, 0);
		assert_int_equal(log_count(&agent, "taken for an original lars_reporter"), 1);
	}
	assert_int_equal(metric("lars_agent_reports_dropped_total"), 0);
	fprintf(stderr, "before restart: calls %lld, stored %lld, acked %lld, resent %lld, "
		"unacked %lld\n", calls, harness_sql_num(SUM_Q), acked, resent,
		metric("lars_agent_reports_unacked"));

	/* lars-reporter stopped (after storing all of the above) and started
	 * again on the same port: the agent reconnects. */
	assert_int_equal(harness_stop(&rep), 0);
	report_n(30); /* buffered while it is away (or sent and acked once back) */
	calls += 30;
	assert_int_equal(spawn_reporter(), 0);
	for (int round = 0; round < 4; round++) {
		usleep(500000);
		report_n(40);
		calls += 40;
	}
	expect_sum_stays(calls, 3500);
	acked = metric("lars_agent_reports_acked_total");
	resent = metric("lars_agent_reports_resent_total");
	fprintf(stderr, "after restart: calls %lld, stored %lld, acked %lld, resent %lld, "
		"unacked %lld\n", calls, harness_sql_num(SUM_Q), acked, resent,
		metric("lars_agent_reports_unacked"));
	if (acked == 0) { /* each connection judged once */
		assert_int_equal(resent, 0);
		assert_int_equal(log_count(&agent, "taken for an original lars_reporter"), 2);
	}
	assert_int_equal(metric("lars_agent_reports_dropped_total"), 0);
	assert_int_equal(metric("lars_agent_report_dropped_total"), 0);
}

int main(void)
{
	if (!getenv("LARS_TEST_PG")) {
		fprintf(stderr, "no PostgreSQL for this run (deploy/lars-local test provides one)\n");
		return 77;
	}
	agent_bin = getenv("LARS_AGENT_BIN");
	dns_bin = getenv("LARS_DNS_BIN");
	rep_bin = getenv("LARS_REPORTER_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	if (!agent_bin || !dns_bin || !rep_bin || !larsctl_bin) {
		fprintf(stderr, "LARS_AGENT_BIN, LARS_DNS_BIN, LARS_REPORTER_BIN and LARSCTL_BIN "
				"must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_count_once, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
