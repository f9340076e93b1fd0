// SPDX-License-Identifier: MIT
// Several lars-dns over one database (issue 18.1): an agent configured with
// `[dnsserver] servers = a, b` keeps answering get_host with zero failures
// while the instance it uses is SIGKILLed, resubscribes at the other one
// within 1 s, and later route changes reach it through the survivor.
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
#include "msg.h"
#include "wire_client.h"

static const char *dns_bin, *agent_bin, *larsctl_bin;
static harness_pg_t pg;

static long long metric(int port, const char *name)
{
	return (long long)harness_metric(port, name);
}

/* An app: get_host for 1/1 every millisecond until told to stop (or 60 s). */
typedef struct app {
	int port;
	atomic_bool stop;
	atomic_int calls, failed;
} app_t;

static void *app_run(void *arg)
{
	app_t *a = arg;
	int fd = harness_udp_socket();
	double end = harness_now_s() + 60;
	for (uint32_t seq = 1; !atomic_load(&a->stop) && harness_now_s() < end; seq++) {
		lars_GetHostResponse r;
		int rc = wc_get_host(fd, a->port, seq, 1, 1, &r, 1000);
		atomic_fetch_add(&a->calls, 1);
		if (rc || r.retcode != LARS_RET_SUCC)
			atomic_fetch_add(&a->failed, 1);
		usleep(1000);
	}
	close(fd);
	return NULL;
}

static void test_dns_instance_killed(void **state)
{
	harness_proc_t dns[2], agent;
	const char *dcfg = "[dns]\nport = 0\n[metrics]\nenabled = true\nport = 0\n";
	for (int i = 0; i < 2; i++)
		assert_int_equal(harness_spawn(&dns[i], dns_bin, harness_write_config(dcfg)), 0);
	int base = harness_free_udp_base();
	assert_true(base > 0);
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nbase_port = %d\n"
		 "[dnsserver]\nservers = 127.0.0.1:%d, 127.0.0.1:%d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\n"
		 "[metrics]\nenabled = true\nport = 0\n",
		 base, harness_port(&dns[0], "tcp"), harness_port(&dns[1], "tcp"),
		 harness_free_tcp_port());
	assert_int_equal(harness_spawn(&agent, agent_bin, harness_write_config(cfg)), 0);
	int port = harness_port(&agent, "udp2"); /* (1 + 1) % 3 */
	assert_true(wc_agent_route_has(port, 1, 1, 9001, true, 10000));

	/* The instance the agent subscribed at. */
	int used = -1;
	double end = harness_now_s() + 10;
	while (used < 0 && harness_now_s() < end) {
		for (int i = 0; i < 2 && used < 0; i++)
			if (metric(harness_port(&dns[i], "metrics"), "lars_dns_subscriptions") >= 1)
				used = i;
		if (used < 0)
			usleep(20000);
	}
	assert_true(used >= 0);
	int other = 1 - used;
	int other_metrics = harness_port(&dns[other], "metrics");
	assert_int_equal(metric(other_metrics, "lars_dns_subscriptions"), 0);

	static app_t app;
	app = (app_t){ .port = port };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, app_run, &app), 0);
	usleep(300000);
	double t0 = harness_now_s();
	kill(dns[used].pid, SIGKILL);
	waitpid(dns[used].pid, NULL, 0);
	dns[used].pid = 0;
	/* Resubscribed at the survivor. */
	double resub = -1;
	end = t0 + 10;
	while (harness_now_s() < end) {
		if (metric(other_metrics, "lars_dns_subscriptions") >= 1) {
			resub = harness_now_s() - t0;
			break;
		}
		usleep(5000);
	}
	/* A change made now reaches the agent through the survivor. */
	double tc = harness_now_s();
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9003 >/dev/null", larsctl_bin), 0);
	bool pushed = wc_agent_route_has(port, 1, 1, 9003, true, 10000);
	double push = harness_now_s() - tc;
	usleep(300000);
	atomic_store(&app.stop, true);
	pthread_join(th, NULL);
	printf("# lars-dns SIGKILLed: %d get_host calls, %d failed; resubscribed at the other "
	       "instance %.0f ms later; a change made then reached the agent in %.0f ms\n",
	       atomic_load(&app.calls), atomic_load(&app.failed), resub * 1000, push * 1000);
	assert_true(pushed);
	assert_true(resub >= 0 && resub <= 1.0);
	assert_int_equal(atomic_load(&app.failed), 0);
	assert_true(atomic_load(&app.calls) >= 100);
	assert_int_equal(harness_stop(&agent), 0);
	assert_int_equal(harness_stop(&dns[other]), 0);
}

static int setup(void **state)
{
	if (harness_pg_start(&pg, "ha-dns", false))
		return -1;
	if (harness_run("%s migrate >/dev/null", larsctl_bin) ||
	    harness_run("%s route add 1 1 127.0.0.1 9001 >/dev/null", larsctl_bin) ||
	    harness_run("%s route add 1 1 127.0.0.1 9002 >/dev/null", larsctl_bin))
		return -1;
	return 0;
}

static int teardown(void **state)
{
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
	larsctl_bin = getenv("LARSCTL_BIN");
	if (!dns_bin || !agent_bin || !larsctl_bin) {
		fprintf(stderr, "LARS_DNS_BIN, LARS_AGENT_BIN and LARSCTL_BIN must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dns_instance_killed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
