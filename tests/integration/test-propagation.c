// SPDX-License-Identifier: MIT
// Route propagation end to end (issue 20.3, 20.8): a real lars-dns over a
// real PostgreSQL with a real lars-agent (which says AgentHello and
// acknowledges), an original-agent stand-in (never announces) and a raw
// connection that announces by hand. After a change:
//  - the stand-in's push is the original's bytes (no version field), ours
//    carries the route's version;
//  - lars-dns measured push -> acknowledgement (lars_dns_push_ack_seconds);
//  - `larsctl agents` lists the agent with lag 0 and the new version, the
//    stand-in as "original";
//  - `larsctl route show` says the change is held by the agents that ack;
//  - `lars agent-state` shows the version the agent holds.
#include "test.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "wire_client.h"

static const char *dns_bin, *agent_bin, *larsctl_bin, *lars_bin;
static harness_pg_t pg;
static harness_proc_t dns, agent;
static int base;

/* The output of a shell command (stdout and stderr) into @out. */
__attribute__((format(printf, 3, 4)))
static int run_out(char *out, size_t cap, const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `larsctl agents` until @want is in its output (or @ms pass). */
static bool agents_show(const char *want, int ms, char *out, size_t cap)
{
	int64_t end = harness_deadline(ms);
	do {
		if (run_out(out, cap, "'%s' agents 2>&1", larsctl_bin) == 0 &&
		    strstr(out, want))
			return true;
		usleep(100000);
	} while (harness_left_ms(end) > 0);
	return false;
}

static void test_change_acknowledged(void **state)
{
	/* Ours: the real agent, holding 1/1. */
	assert_true(wc_agent_route_has(harness_port(&agent, "udp2"), 1, 1, 9001, true, 10000));
	int dport = harness_port(&dns, "tcp");
	/* An original agent: GetRouteRequest, never AgentHello. */
	int orig = wc_connect("127.0.0.1", dport, harness_deadline(5000));
	assert_true(orig >= 0);
	wc_route_t r;
	assert_int_equal(wc_get_route_send(orig, 1, 1), 0);
	assert_int_equal(wc_route_recv(orig, &r, 1 << 20, harness_deadline(5000), NULL), 1);
	assert_int_equal(r.version, 0);
	wc_route_free(&r);
	/* Ours by hand: AgentHello first, then its answers carry the version. */
	int mine = wc_connect("127.0.0.1", dport, harness_deadline(5000));
	assert_true(mine >= 0);
	lars_AgentHello h = { .agent_id = 99, .host_name = "by-hand", .caller = 0x7f000001 };
	assert_int_equal(wc_send(mine, LARS_ID_AGENT_HELLO, lars_AgentHello_fields, &h), 0);
	assert_int_equal(wc_get_route_send(mine, 1, 1), 0);
	assert_int_equal(wc_route_recv(mine, &r, 1 << 20, harness_deadline(5000), NULL), 1);
	long long v0 = harness_sql_num("SELECT max(version) FROM route_change WHERE modid = 1 "
				       "AND cmdid = 1");
	assert_int_equal(r.version, v0);
	wc_route_free(&r);

	int dm = harness_port(&dns, "metrics");
	double acks0 = harness_metric(dm, "lars_dns_push_ack_seconds_count");
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9003 >/dev/null", larsctl_bin), 0);
	long long v = harness_sql_num("SELECT version FROM route_version");
	/* The pushes: the original's bytes to the stand-in, the version to ours. */
	assert_int_equal(wc_route_recv(orig, &r, 1 << 20, harness_deadline(5000), NULL), 1);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.version, 0);
	wc_route_free(&r);
	assert_int_equal(wc_route_recv(mine, &r, 1 << 20, harness_deadline(5000), NULL), 1);
	assert_int_equal(r.version, v);
	wc_route_free(&r);
	/* The hand-made agent does not ack: it stays pending (lagging later). */
	assert_true(wc_agent_route_has(harness_port(&agent, "udp2"), 1, 1, 9003, true, 10000));
	int64_t end = harness_deadline(10000);
	while (harness_metric(dm, "lars_dns_push_ack_seconds_count") < acks0 + 1 &&
	       harness_left_ms(end) > 0)
		usleep(20000);
	assert_true(harness_metric(dm, "lars_dns_push_ack_seconds_count") >= acks0 + 1);

	/* larsctl agents: ours ok at the new version with lag 0, the stand-in
	 * original, the silent hand-made one lagging once a second passed. */
	static char out[16384];
	char want[64];
	snprintf(want, sizeof(want), " %lld        0 ok", v);
	bool ok = agents_show(want, 15000, out, sizeof(out));
	printf("# larsctl agents:\n%s", out);
	assert_true(ok);
	assert_true(agents_show(" original", 10000, out, sizeof(out)));
	assert_true(agents_show(" lagging", 10000, out, sizeof(out)));
	/* Lagging ones first; --lagging lists only it. */
	const char *lag = strstr(out, " lagging"), *okp = strstr(out, " ok\n");
	assert_true(lag && okp && lag < okp);
	assert_non_null(strstr(out, "by-hand"));
	assert_int_equal(run_out(out, sizeof(out), "'%s' agents --lagging 2>&1", larsctl_bin), 0);
	assert_non_null(strstr(out, "by-hand"));
	assert_null(strstr(out, " ok\n"));
	assert_null(strstr(out, "original"));

	/* route show: the change is held by the one agent that acknowledged of
	 * the two that acknowledge, and went to one original agent. */
	end = harness_deadline(10000);
	do {
		assert_int_equal(run_out(out, sizeof(out), "'%s' route show 1 1 2>&1", larsctl_bin), 0);
		if (strstr(out, "held by 1 of 2 agents that acknowledge"))
			break;
		usleep(100000);
	} while (harness_left_ms(end) > 0);
	printf("# larsctl route show 1 1:\n%s", out);
	assert_non_null(strstr(out, "held by 1 of 2 agents that acknowledge"));
	assert_non_null(strstr(out, "; 1 original agents"));
	assert_non_null(strstr(out, "127.0.0.1:9003"));

	/* The agent itself says which version it holds. */
	char agent_arg[64];
	snprintf(agent_arg, sizeof(agent_arg), "127.0.0.1:%d", base);
	assert_int_equal(run_out(out, sizeof(out), "'%s' --agent %s agent-state 1 1 2>&1", lars_bin,
				 agent_arg), 0);
	snprintf(want, sizeof(want), "version %lld,", v);
	assert_non_null(strstr(out, want));

	/* Garbage under the new ids closes that connection, nothing else. */
	static const uint8_t junk[] = { 103, 0, 0, 0, 3, 0, 0, 0, 0x08, 0xff, 0xff };
	assert_int_equal(harness_send_all(mine, junk, sizeof(junk)), 0);
	assert_int_equal(harness_wait_eof(mine, 5000), 1);
	close(mine);
	close(orig);
	assert_true(wc_agent_route_has(harness_port(&agent, "udp2"), 1, 1, 9003, true, 5000));
}

static int setup(void **state)
{
	if (harness_pg_start(&pg, "propagation", false))
		return -1;
	if (harness_run("%s migrate >/dev/null", larsctl_bin) ||
	    harness_run("%s route add 1 1 127.0.0.1 9001 >/dev/null", larsctl_bin) ||
	    harness_run("%s route add 1 1 127.0.0.1 9002 >/dev/null", larsctl_bin))
		return -1;
	if (harness_spawn(&dns, dns_bin,
			  harness_write_config("[dns]\nport = 0\nagents_interval_ms = 200\n"
					       "[metrics]\nenabled = true\nport = 0\n")))
		return -1;
	base = harness_free_udp_base();
	if (base <= 0)
		return -1;
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nbase_port = %d\n[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\n",
		 base, harness_port(&dns, "tcp"), harness_free_tcp_port());
	return harness_spawn(&agent, agent_bin, harness_write_config(cfg));
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
		cmocka_unit_test(test_change_acknowledged),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
