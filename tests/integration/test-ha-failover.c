// SPDX-License-Identifier: MIT
// PostgreSQL failover under traffic (issue 18.3 and 18.4): a primary and a
// hot standby made by pg_basebackup (both on loopback), lars-dns A on
// "primary, standby", lars-dns B on the standby alone (no LISTEN there: its
// version poll follows), one lars-reporter and larsctl on the multi-host
// conninfo with target_session_attrs=read-write, an agent on A and B and a
// second agent on B alone. Apps call get_host and report every call. Then the
// primary is SIGKILLed and the standby promoted (pg_ctl promote, what Patroni
// does), and:
//   - no get_host failed at any time (lars-dns served from memory throughout);
//   - a larsctl route add started right after the kill succeeds on the new
//     primary without a configuration change, and reaches both agents;
//   - the history on the new primary holds exactly the calls the apps
//     reported: nothing lost, nothing doubled.
// It prints the push latency through the standby lars-dns and the time from
// the kill to the first successful write.
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "lars_client.h"
#include "msg.h"
#include "wire_client.h"

#define N_APPS 2
#define POLL_MS 250 /* lars-dns B's version poll */

static const char *dns_bin, *agent_bin, *rep_bin, *larsctl_bin;
static harness_pg_t pg;
static char rw[256]; /* the writers' conninfo */
/* The daemons: static, so the teardown stops them after a failed check. */
static harness_proc_t dns_a, dns_b, rep, agent, agent_b;

static long long metric(int port, const char *name)
{
	return (long long)harness_metric(port, name);
}

/* ---- the apps: get_host, then report the call ---- */

typedef struct app {
	pthread_t thread;
	int id, base;
	_Atomic bool *stop;
	_Atomic long long calls, failed; /* get_host calls, and those that failed */
	long long succ, err, refused;    /* reports sent (and refused: not sent) */
	int init_rc;
} app_t;

static _Atomic bool apps_stop;
static app_t apps[N_APPS];

static void *app_main(void *arg)
{
	app_t *a = arg;
	lars_client_options_t o;
	lars_client_options_init(&o);
	o.base_port = a->base;
	o.timeout_ms = 500;
	lars_client_t *c = NULL;
	a->init_rc = lars_client_new(&o, &c);
	if (a->init_rc)
		return NULL;
	double end = harness_now_s() + 120;
	for (long long i = 0; !*a->stop && harness_now_s() < end; i++) {
		lars_host_t h;
		a->calls++;
		if (lars_get_host(c, 1, 1, &h) != LARS_SUCC) {
			a->failed++;
		} else {
			/* 2 % errors: below the agent's err_rate, no host sidelined. */
			bool fails = (i + a->id) % 50 == 0;
			if (lars_report(c, 1, 1, &h, fails ? LARS_OVERLOAD : LARS_SUCC) != LARS_SUCC)
				a->refused++;
			else if (fails)
				a->err++;
			else
				a->succ++;
		}
		usleep(2000);
	}
	lars_client_free(c);
	return NULL;
}

static int spawn_agent(harness_proc_t *p, const char *dns_servers, int rep_port, int *udp2p,
		       int *metricsp)
{
	int base = harness_free_udp_base();
	if (base <= 0)
		return -1;
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nbase_port = %d\n[dnsserver]\nservers = %s\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\ninterval = 1\n"
		 "[metrics]\nenabled = true\nport = 0\n",
		 base, dns_servers, rep_port);
	if (harness_spawn(p, agent_bin, harness_write_config(cfg)))
		return -1;
	*udp2p = harness_port(p, "udp2"); /* (1 + 1) % 3 */
	*metricsp = harness_port(p, "metrics");
	return 0;
}

/* Fork larsctl (writers' conninfo) with @args; its pid. */
static pid_t larsctl_spawn(const char *a1, const char *a2, const char *a3, const char *a4,
			   const char *a5, const char *a6)
{
	pid_t pid = fork();
	if (pid == 0) {
		execl(larsctl_bin, larsctl_bin, "--db", rw, "--retry-for", "60", a1, a2, a3, a4,
		      a5, a6, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Wait (≤ @ms) for @pid: its exit status, or -1. */
static int wait_exit(pid_t pid, int ms)
{
	int64_t end = harness_deadline(ms);
	int st;
	while (harness_left_ms(end) > 0) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		usleep(2000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* A change made through larsctl (primary up): how long until the agent on
 * @agent_port shows it. */
static double push_ms(int agent_port, const char *op, int32_t port)
{
	char p[16];
	snprintf(p, sizeof(p), "%d", port);
	double t0 = harness_now_s();
	assert_int_equal(wait_exit(larsctl_spawn("route", op, "1", "1", "127.0.0.1", p), 30000), 0);
	assert_true(wc_agent_route_has(agent_port, 1, 1, port, strcmp(op, "add") == 0, 10000));
	return (harness_now_s() - t0) * 1000;
}

static void test_failover(void **state)
{
	const char *primary_port = getenv("PGPORT");
	assert_non_null(primary_port);
	int standby = harness_pg_standby(&pg);
	assert_true(standby > 0);
	char a_conn[256], b_conn[256];
	snprintf(rw, sizeof(rw),
		 "host=127.0.0.1,127.0.0.1 port=%s,%d target_session_attrs=read-write",
		 primary_port, standby);
	snprintf(a_conn, sizeof(a_conn), "host=127.0.0.1,127.0.0.1 port=%s,%d", primary_port,
		 standby);
	snprintf(b_conn, sizeof(b_conn), "host=127.0.0.1 port=%d", standby);

	char cfg[768];
	snprintf(cfg, sizeof(cfg),
		 "[dns]\nport = 0\npoll_interval_ms = %d\n[postgres]\nconninfo = %s\n"
		 "[metrics]\nenabled = true\nport = 0\n", POLL_MS, a_conn);
	assert_int_equal(harness_spawn(&dns_a, dns_bin, harness_write_config(cfg)), 0);
	snprintf(cfg, sizeof(cfg),
		 "[dns]\nport = 0\npoll_interval_ms = %d\n[postgres]\nconninfo = %s\n"
		 "[metrics]\nenabled = true\nport = 0\n", POLL_MS, b_conn);
	assert_int_equal(harness_spawn(&dns_b, dns_bin, harness_write_config(cfg)), 0);
	int rep_port = harness_free_tcp_port();
	snprintf(cfg, sizeof(cfg),
		 "[reporter]\nport = %d\nshutdown_timeout = 10\n[postgres]\nconninfo = %s\n"
		 "[metrics]\nenabled = true\nport = 0\n", rep_port, rw);
	assert_int_equal(harness_spawn(&rep, rep_bin, harness_write_config(cfg)), 0);
	int rep_m = harness_port(&rep, "metrics");

	char servers[128];
	snprintf(servers, sizeof(servers), "127.0.0.1:%d, 127.0.0.1:%d",
		 harness_port(&dns_a, "tcp"), harness_port(&dns_b, "tcp"));
	int port_a, m_a, port_b, m_b;
	assert_int_equal(spawn_agent(&agent, servers, rep_port, &port_a, &m_a), 0);
	int base_a = port_a - 2;
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", harness_port(&dns_b, "tcp"));
	assert_int_equal(spawn_agent(&agent_b, servers, rep_port, &port_b, &m_b), 0);
	assert_true(wc_agent_route_has(port_a, 1, 1, 9001, true, 15000));
	assert_true(wc_agent_route_has(port_b, 1, 1, 9001, true, 15000));

	/* Push latency through the standby's lars-dns (version poll). */
	double push[4], push_max = 0, push_sum = 0;
	for (int i = 0; i < 4; i++) {
		push[i] = push_ms(port_b, i % 2 ? "del" : "add", 9010);
		push_sum += push[i];
		push_max = push[i] > push_max ? push[i] : push_max;
	}
	printf("# push through a standby lars-dns (poll %d ms): mean %.0f ms, max %.0f ms\n",
	       POLL_MS, push_sum / 4, push_max);

	/* The apps: all on agent A (the one with two lars-dns). */
	for (int i = 0; i < N_APPS; i++) {
		apps[i] = (app_t){ .id = i, .base = base_a, .stop = &apps_stop };
		assert_int_equal(pthread_create(&apps[i].thread, NULL, app_main, &apps[i]), 0);
	}
	int64_t end = harness_deadline(15000);
	while (metric(rep_m, "lars_reporter_results_stored_total") < 1 && harness_left_ms(end) > 0)
		usleep(20000);
	assert_true(metric(rep_m, "lars_reporter_results_stored_total") >= 1);
	usleep(500000);

	/* The failover: SIGKILL the primary; a write starts at once and
	 * waits it out; the standby is promoted half a second later. */
	double t_kill = harness_now_s();
	assert_int_equal(harness_pg_server(&pg, "kill"), 0);
	pid_t w = larsctl_spawn("route", "add", "1", "1", "127.0.0.1", "9005");
	usleep(500000);
	double t_promote = harness_now_s();
	assert_int_equal(harness_pg_server(&pg, "promote"), 0); /* PG* name it now */
	double t_promoted = harness_now_s();
	int rc = wait_exit(w, 60000);
	double t_write = harness_now_s();
	assert_int_equal(rc, 0);
	printf("# primary SIGKILLed; standby promoted %.0f ms later (pg_ctl promote took %.0f ms); "
	       "the first write succeeded %.0f ms after the kill (%.0f ms after promotion)\n",
	       (t_promote - t_kill) * 1000, (t_promoted - t_promote) * 1000,
	       (t_write - t_kill) * 1000, (t_write - t_promoted) * 1000);
	/* The change reaches both agents: A through lars-dns A (reconnected to
	 * the new primary) or B, agent B through B. */
	assert_true(wc_agent_route_has(port_a, 1, 1, 9005, true, 10000));
	assert_true(wc_agent_route_has(port_b, 1, 1, 9005, true, 10000));
	double t_pushed = harness_now_s();
	printf("# that change reached both agents %.0f ms after the write\n",
	       (t_pushed - t_write) * 1000);

	/* Traffic goes on for a second on the new primary, then stops. */
	usleep(1000000);
	apps_stop = true;
	long long calls = 0, failed = 0, succ = 0, err = 0;
	for (int i = 0; i < N_APPS; i++) {
		pthread_join(apps[i].thread, NULL);
		assert_int_equal(apps[i].init_rc, 0);
		assert_int_equal(apps[i].refused, 0);
		calls += apps[i].calls;
		failed += apps[i].failed;
		succ += apps[i].succ;
		err += apps[i].err;
	}

	/* Everything the agent read is acknowledged and nothing waits. */
	end = harness_deadline(60000);
	long long unacked = -1, buffered = -1, pending = -1, inflight = -1, got = -1;
	while (harness_left_ms(end) > 0) {
		unacked = metric(m_a, "lars_agent_reports_unacked");
		buffered = metric(m_a, "lars_agent_report_buffered_hosts");
		pending = metric(rep_m, "lars_reporter_pending_keys");
		inflight = metric(rep_m, "lars_reporter_inflight_keys");
		got = harness_sql_num("SELECT coalesce(sum(succ + err), 0) FROM host_status_history "
				      "WHERE modid = 1 AND cmdid = 1");
		if (!unacked && !buffered && !pending && !inflight && got == succ + err)
			break;
		usleep(100000);
	}
	long long s_succ = harness_sql_num("SELECT coalesce(sum(succ), 0) FROM host_status_history "
					   "WHERE modid = 1 AND cmdid = 1");
	long long s_err = harness_sql_num("SELECT coalesce(sum(err), 0) FROM host_status_history "
					  "WHERE modid = 1 AND cmdid = 1");
	printf("# failover: %lld get_host calls, %lld failed; %lld reports sent (%lld succ, %lld err), "
	       "history on the new primary %lld (%lld succ, %lld err): lost %lld, doubled %lld\n",
	       calls, failed, succ + err, succ, err, s_succ + s_err, s_succ, s_err,
	       succ + err > s_succ + s_err ? succ + err - s_succ - s_err : 0,
	       s_succ + s_err > succ + err ? s_succ + s_err - succ - err : 0);
	assert_int_equal(failed, 0);
	assert_true(calls >= 200);
	assert_int_equal(unacked, 0);
	assert_int_equal(pending, 0);
	assert_int_equal(s_succ, succ);
	assert_int_equal(s_err, err);

	/* lars-dns B follows the new primary (LISTEN works there now). */
	assert_true(push_ms(port_b, "add", 9011) < 10000);
	assert_int_equal(harness_stop(&agent), 0);
	assert_int_equal(harness_stop(&agent_b), 0);
	assert_int_equal(harness_stop(&rep), 0);
	assert_int_equal(harness_stop(&dns_a), 0);
	assert_int_equal(harness_stop(&dns_b), 0);
}

static int setup(void **state)
{
	if (harness_pg_start(&pg, "ha-failover", true))
		return -1;
	if (harness_run("%s migrate >/dev/null", larsctl_bin) ||
	    harness_run("%s route add 1 1 127.0.0.1 9001 >/dev/null", larsctl_bin) ||
	    harness_run("%s route add 1 1 127.0.0.1 9002 >/dev/null", larsctl_bin))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	apps_stop = true;
	harness_proc_t *procs[] = { &agent, &agent_b, &rep, &dns_a, &dns_b };
	for (size_t i = 0; i < sizeof(procs) / sizeof(procs[0]); i++)
		if (procs[i]->pid > 0)
			harness_stop(procs[i]);
	harness_pg_stop(&pg);
	return 0;
}

int main(void)
{
	if (!getenv("LARS_TEST_PG")) {
		fprintf(stderr, "no PostgreSQL for this run (deploy/lars-local test provides one)\n");
		return 77;
	}
	dns_bin = getenv("LARS_DNS_BIN");
	agent_bin = getenv("LARS_AGENT_BIN");
	rep_bin = getenv("LARS_REPORTER_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	if (!dns_bin || !agent_bin || !rep_bin || !larsctl_bin) {
		fprintf(stderr, "LARS_DNS_BIN, LARS_AGENT_BIN, LARS_REPORTER_BIN and LARSCTL_BIN "
				"must be set\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failover),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
