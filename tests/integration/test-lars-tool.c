// SPDX-License-Identifier: MIT
// The lars tool against a real lars-agent, lars-dns and PostgreSQL (a
// database of the test's own): the first `lars get-host` for a key the agent
// has never fetched prints a host (issue 15 item 6: the printed first step
// after `deploy/lars-local up`), the same for get-route; options after the
// command work against the real agent, and a report to it exits 0; reports
// carrying a duration (report --latency-us, simulate's --latency-us-spread and
// --slow, bench's measured round trip) are taken by the real agent and
// counted into the history like any other; `lars agent-state` (and the
// agent's GET /routes) shows a host that failed every call sidelined, with
// the rule, and garbage under the new message ids changes nothing.
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static const char *agent_bin, *dns_bin, *rep_bin, *larsctl_bin, *lars_bin;
static harness_pg_t pg;
static harness_proc_t dns, rep, agent;
static int base;

static int setup(void **state)
{
	assert_int_equal(harness_pg_start(&pg, "lars_tool", false), 0);
	assert_int_equal(harness_run("%s migrate >/dev/null", larsctl_bin), 0);
	for (int c = 1; c <= 4; c++)
		for (int p = 1; p <= 3; p++)
			assert_int_equal(harness_run("%s route add 5 %d 127.0.0.1 %d >/dev/null",
						     larsctl_bin, c, 9500 + 10 * c + p), 0);
	assert_int_equal(harness_spawn(&dns, dns_bin, harness_write_config("[dns]\nport = 0\n")), 0);
	assert_int_equal(harness_spawn(&rep, rep_bin,
		harness_write_config("[reporter]\nport = 0\nflush_interval_ms = 100\n")), 0);
	base = harness_free_udp_base();
	assert_true(base > 0);
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nbase_port = %d\n"
		 "[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\ninterval = 1\n"
		 "[metrics]\nenabled = true\nport = 0\n",
		 base, harness_port(&dns, "tcp"), harness_port(&rep, "tcp"));
	assert_int_equal(harness_spawn(&agent, agent_bin, harness_write_config(cfg)), 0);
	return 0;
}

static int teardown(void **state)
{
	int ra = harness_stop(&agent);
	harness_stop(&rep);
	harness_stop(&dns);
	harness_pg_stop(&pg);
	assert_int_equal(ra, 0);
	return 0;
}

/* `lars ARGS` with LARS_AGENT set to the agent: exit status, output in @out. */
static int lars(char *out, size_t cap, const char *args)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "LARS_AGENT=127.0.0.1:%d '%s' %s 2>&1", base, lars_bin, args);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_first_get_host(void **state)
{
	/* Keys nobody asked the agent for: its first answer is NOEXIST while
	 * it pulls them; the tool waits for them. The old tool exited 3 at
	 * once whatever the timeout; 1 s x 3 keeps a loaded machine in time. */
	char out[4096];
	assert_int_equal(lars(out, sizeof(out), "--timeout 1000 get-host 5 1"), 0);
	assert_non_null(strstr(out, "host is 127.0.0.1:951"));
	assert_int_equal(lars(out, sizeof(out), "--timeout 1000 get-route 5 2"), 0);
	assert_non_null(strstr(out, "127.0.0.1:9521\n"));
	assert_non_null(strstr(out, "127.0.0.1:9523\n"));
	/* get-route -o json (issue 24.6): one document, the same hosts. */
	assert_int_equal(lars(out, sizeof(out), "--timeout 1000 get-route 5 2 -o json"), 0);
	assert_non_null(strstr(out, "{\"modid\":5,\"cmdid\":2,\"hosts\":[{\"ip\":\"127.0.0.1\","));
	assert_non_null(strstr(out, "{\"ip\":\"127.0.0.1\",\"port\":9521,\"drained\":false}"));
	assert_non_null(strstr(out, "{\"ip\":\"127.0.0.1\",\"port\":9523,\"drained\":false}"));
	assert_non_null(strstr(out, "],\"host_total\":"));
	assert_non_null(strstr(out, ",\"cut\":false}\n"));
	/* Options after the command, against the real agent. */
	char args[256];
	snprintf(args, sizeof(args), "get-host 5 3 --agent 127.0.0.1:%d --timeout 1000", base);
	assert_int_equal(lars(out, sizeof(out), args), 0);
	assert_non_null(strstr(out, "host is 127.0.0.1:953"));
	/* A report to the real agent: sent, answered, exit 0. */
	snprintf(args, sizeof(args), "report 5 3 127.0.0.1 9531 0 --agent 127.0.0.1:%d", base);
	assert_int_equal(lars(out, sizeof(out), args), 0);
	assert_string_equal(out, "");
}

static void test_latency_reports_accepted(void **state)
{
	char out[8192], args[256];
	snprintf(args, sizeof(args), "report 5 3 127.0.0.1 9532 0 --latency-us 4200");
	assert_int_equal(lars(out, sizeof(out), args), 0);
	assert_string_equal(out, "");
	/* 200 calls with durations; one host slow. Every call got a host and
	 * every report reaches the history (interval = 1 s, then the
	 * reporter's flush: a deadline, not a speed test). */
	const char *sum = "SELECT coalesce(sum(succ + err), 0) FROM host_status_history "
			  "WHERE modid = 5 AND cmdid = 4";
	long long before = harness_sql_num(sum);
	assert_true(before >= 0);
	assert_int_equal(lars(out, sizeof(out),
			      "--timeout 1000 simulate 5 4 --count 200 --latency-us-spread 1000:5000 "
			      "--slow 127.0.0.1:9541=200000"), 0);
	assert_non_null(strstr(out, "MEAN_US"));
	assert_non_null(strstr(out, "calls 200, failed 0 "));
	assert_int_equal(harness_wait_sql(sum, before + 200, 30000), before + 200);
	/* bench sends the get_host round trip it measured with each report. */
	assert_int_equal(lars(out, sizeof(out), "bench --threads 1 --seconds 1 --modid 5"), 0);
	assert_non_null(strstr(out, "the get_host round trip measured"));
	assert_non_null(strstr(out, "errors 0\n"));
}

static void test_absent_route_still_noexist(void **state)
{
	/* lars-dns has no such route: NOEXIST once the tool's time is up. */
	char out[4096];
	assert_int_equal(lars(out, sizeof(out), "get-host 8 8"), 3);
	assert_non_null(strstr(out, "no such route"));
	assert_int_equal(lars(out, sizeof(out), "get-host 5 4"), 0); /* others still work */
}

/* Issue 20.1: what the agent holds, after a host failed every call. */
static void test_agent_state(void **state)
{
	char out[16384];
	assert_int_equal(lars(out, sizeof(out), "--timeout 1000 simulate 5 1 --count 300 "
				"--fail 127.0.0.1:9512=100"), 0);
	assert_int_equal(lars(out, sizeof(out), "agent-state 5 1"), 0);
	const char *line = strstr(out, "127.0.0.1:9512 ");
	if (!line || !strstr(line, "overloaded") ||
	    !(strstr(line, "consecutive errors") || strstr(line, "err rate")))
		fail_msg("agent-state 5 1 does not show 9512 sidelined with its rule:\n%s", out);
	assert_non_null(strstr(out, "route 5/1: ready"));
	assert_non_null(strstr(out, "127.0.0.1:9511 "));
	/* All routes, as JSON; the same from GET /routes. */
	assert_int_equal(lars(out, sizeof(out), "agent-state -o json"), 0);
	assert_non_null(strstr(out, "{\"routes\":[{\"modid\":5,\"cmdid\":1,"));
	assert_non_null(strstr(out, "\"port\":9512,\"state\":\"overloaded\""));
	static char page[1 << 16];
	assert_true(harness_http_get(harness_port(&agent, "metrics"), "/routes", page,
				     sizeof(page)) > 0);
	assert_non_null(strstr(page, "\"port\":9512,\"state\":\"overloaded\""));
	/* A key the agent does not hold; bad usage. */
	assert_int_equal(lars(out, sizeof(out), "agent-state 77 1"), 0);
	assert_non_null(strstr(out, "the agent holds no route 77/1"));
	assert_int_equal(lars(out, sizeof(out), "agent-state 5"), 64);
	assert_int_equal(lars(out, sizeof(out), "agent-state -o yaml"), 64);
	assert_int_equal(lars(out, sizeof(out), "get-host 5 1 -o json"), 64);
	/* Garbage under the new ids is dropped; the agent keeps answering. */
	int fd = harness_udp_socket();
	static const uint8_t junk[] = { 100, 0, 0, 0, 4, 0, 0, 0, 0x0a, 0xff, 0xff, 0x7f };
	static const uint8_t huge[] = { 100, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f };
	static const uint8_t resp[] = { 101, 0, 0, 0, 0, 0, 0, 0 };
	uint8_t back[64];
	for (int i = 0; i < 3; i++) {
		assert_true(harness_udp_call(fd, base, junk, sizeof(junk), back, sizeof(back), 50) <= 0);
		assert_true(harness_udp_call(fd, base, huge, sizeof(huge), back, sizeof(back), 50) <= 0);
		assert_true(harness_udp_call(fd, base, resp, sizeof(resp), back, sizeof(back), 50) <= 0);
	}
	close(fd);
	assert_int_equal(lars(out, sizeof(out), "agent-state 5 1"), 0);
	assert_non_null(strstr(out, "127.0.0.1:9512 "));
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
	lars_bin = getenv("LARS_BIN");
	if (!agent_bin || !dns_bin || !rep_bin || !larsctl_bin || !lars_bin) {
		fprintf(stderr, "LARS_AGENT_BIN, LARS_DNS_BIN, LARS_REPORTER_BIN, LARSCTL_BIN and "
				"LARS_BIN must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_get_host),
		cmocka_unit_test(test_latency_reports_accepted),
		cmocka_unit_test(test_absent_route_still_noexist),
		cmocka_unit_test(test_agent_state),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
