// SPDX-License-Identifier: MIT
// The shared-memory fast path end to end (issue 22): a real lars-dns and
// real agents on a real PostgreSQL, clients of the real library.
//  - picks from the snapshot follow the agent's rules: round robin and
//    weights within +-5 %, and the agent sees no get_host for them;
//  - a route change is in the snapshot as soon as the agent answers with it;
//  - two clients' failures are pooled: the agent sidelines a host failing
//    every call for both (the time is printed), and it comes back by probes;
//  - the agent SIGKILLed: a loop of 100,000 calls sees no error (fail-open),
//    and a restarted agent's new file is taken over;
//  - a second agent on another base port has its own file, its clients
//    and the first's do not meet;
//  - a broken file (garbage, truncated) leaves the client on UDP.
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "lars_client.h"
#include "shm_snap.h"

static const char *dns_bin, *agent_bin, *larsctl_bin;
static harness_pg_t pg;
static harness_proc_t dns, agent;
static char dir[256], shm_path[300], agent_cfg[1024];
static int base;

static lars_client_t *client(bool shm, const char *path)
{
	lars_client_options_t o;
	lars_client_options_init(&o);
	o.base_port = base;
	o.shm = shm;
	o.shm_path = path;
	o.timeout_ms = 200;
	lars_client_t *c;
	assert_int_equal(lars_client_new(&o, &c), 0);
	return c;
}

static double metric(const char *name)
{
	return harness_metric(harness_port(&agent, "metrics"), name);
}

static double get_host_total(void)
{
	return metric("lars_agent_get_host_total{retcode=\"succ\"}") +
	       metric("lars_agent_get_host_total{retcode=\"noexist\"}");
}

/* Until the client (snapshot or not) knows the route with @n hosts. */
static void wait_route(lars_client_t *c, int modid, int n)
{
	int64_t end = harness_deadline(10000);
	lars_host_t h[16];
	size_t got = 0;
	lars_reg_init(c, modid, 1);
	while (harness_left_ms(end) > 0) {
		if (lars_get_route(c, modid, 1, h, 16, &got) == LARS_SUCC && got == (size_t)n)
			return;
		usleep(5000);
	}
	fail_msg("route %d/1: %zu hosts, want %d", modid, got, n);
}

static void test_picks_follow_agent_rules(void **state)
{
	lars_client_t *c = client(true, shm_path);
	wait_route(c, 70, 3);
	wait_route(c, 71, 2);
	/* The snapshot has them: no more get_host at the agent. */
	double before = get_host_total();
	int count[3] = { 0 }, weighted[2] = { 0 }, bad = 0;
	const int n = 30000;
	for (int i = 0; i < n; i++) {
		lars_host_t h;
		if (lars_get_host(c, 70, 1, &h) != LARS_SUCC || h.port < 9001 || h.port > 9003)
			bad++;
		else
			count[h.port - 9001]++;
		if (lars_get_host(c, 71, 1, &h) != LARS_SUCC || (h.port != 9101 && h.port != 9102))
			bad++;
		else
			weighted[h.port - 9101]++;
		lars_report(c, 70, 1, &h, LARS_SUCC);
	}
	double after = get_host_total();
	printf("# %d picks from shared memory: round robin %d %d %d; weights 100:300 -> %d %d; "
	       "get_host at the agent meanwhile %.0f\n", n, count[0], count[1], count[2],
	       weighted[0], weighted[1], after - before);
	assert_int_equal(bad, 0);
	for (int k = 0; k < 3; k++)
		assert_true(count[k] >= n / 3 * 0.95 && count[k] <= n / 3 * 1.05);
	assert_true(weighted[1] >= n * 0.75 * 0.95 && weighted[1] <= n * 0.75 * 1.05);
	assert_true(after - before < 1);
	/* Their results reached the agent in batches. */
	lars_client_free(c);
	assert_true(metric("lars_agent_report_batches_total") > 0);
}

static void test_route_change_visible(void **state)
{
	lars_client_t *shm = client(true, shm_path), *udp = client(false, NULL);
	wait_route(shm, 72, 1);
	assert_int_equal(harness_run("%s route add 72 1 127.0.0.1 9202 >/dev/null", larsctl_bin), 0);
	double t_shm = -1, t_udp = -1, t0 = harness_now_s();
	int64_t end = harness_deadline(10000);
	while (harness_left_ms(end) > 0 && (t_shm < 0 || t_udp < 0)) {
		lars_host_t h[4];
		size_t n = 0;
		if (t_udp < 0 && lars_get_route(udp, 72, 1, h, 4, &n) == LARS_SUCC && n == 2)
			t_udp = harness_now_s() - t0;
		if (t_shm < 0 && lars_get_route(shm, 72, 1, h, 4, &n) == LARS_SUCC && n == 2)
			t_shm = harness_now_s() - t0;
	}
	printf("# route change: in the agent's UDP answers after %.1f ms, in the snapshot after "
	       "%.1f ms\n", t_udp * 1000, t_shm * 1000);
	assert_true(t_shm >= 0 && t_udp >= 0);
	/* Published in the loop turn that applied it: never behind the UDP
	 * answer by more than one round of this loop. */
	assert_true(t_shm <= t_udp + 0.010);
	lars_client_free(shm);
	lars_client_free(udp);
}

/* A second process calling route 73/1 and failing 9301's calls. */
static pid_t failing_caller(void)
{
	pid_t pid = fork();
	if (pid)
		return pid;
	lars_client_t *c = client(true, shm_path);
	int64_t end = harness_deadline(20000);
	while (harness_left_ms(end) > 0) {
		lars_host_t h;
		if (lars_get_host(c, 73, 1, &h) == LARS_SUCC)
			lars_report(c, 73, 1, &h, h.port == 9301 ? LARS_SYSTEM_ERROR : LARS_SUCC);
		usleep(200);
	}
	lars_client_free(c);
	_exit(0);
}

/* Host @port's state in route (@modid, 1) of the agent's file: 1 overloaded,
 * 0 idle, -1 not there. */
static int file_state(int modid, int port)
{
	int fd = open(shm_path, O_RDONLY);
	struct stat st;
	int state = -1;
	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	shm_view_t v;
	static shm_host_t hosts[SHM_HOSTS_MAX];
	shm_route_t r;
	if (map != MAP_FAILED && shm_view_open(&v, map, (size_t)st.st_size) == 0 &&
	    shm_read_route(&v, modid, 1, &r, hosts) == 0)
		for (uint32_t i = 0; i < r.n_hosts; i++)
			if (hosts[i].port == port)
				state = hosts[i].state == SHM_HOST_OVERLOADED;
	if (map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	return state;
}

static void test_verdicts_pooled(void **state)
{
	lars_client_t *c = client(true, shm_path);
	wait_route(c, 73, 2);
	assert_int_equal(file_state(73, 9301), 0);
	pid_t other = failing_caller();
	/* This process fails 9301 too, until the snapshot says overloaded. */
	double t0 = harness_now_s(), first_err = -1, sidelined = -1;
	int64_t end = harness_deadline(10000);
	while (harness_left_ms(end) > 0 && sidelined < 0) {
		lars_host_t h;
		if (lars_get_host(c, 73, 1, &h) == LARS_SUCC) {
			bool bad = h.port == 9301;
			if (bad && first_err < 0)
				first_err = harness_now_s() - t0;
			lars_report(c, 73, 1, &h, bad ? LARS_SYSTEM_ERROR : LARS_SUCC);
		}
		if (first_err >= 0 && file_state(73, 9301) == 1)
			sidelined = harness_now_s() - t0;
		usleep(100);
	}
	kill(other, SIGKILL);
	waitpid(other, NULL, 0);
	printf("# pooled verdicts: 9301 failing for two processes, overloaded in the snapshot "
	       "%.1f ms after this process's first failed call (both processes' errors, batched)\n",
	       (sidelined - first_err) * 1000);
	assert_true(sidelined >= 0);
	/* Sidelined for this client too: 9301 only as a probe, once per
	 * probe_num (10) picks. */
	int picks = 0;
	for (int i = 0; i < 1000; i++) {
		lars_host_t h;
		if (lars_get_host(c, 73, 1, &h) == LARS_SUCC)
			picks += h.port == 9301;
	}
	printf("# after it: 9301 picked %d times in 1000 (probes)\n", picks);
	assert_true(picks <= 1000 / 10 + 1);
	lars_client_free(c);
}

static void *caller_loop(void *arg)
{
	lars_client_t *c = arg;
	int *errors = calloc(1, sizeof(int) * 2);
	for (int i = 0; i < 100000; i++) {
		lars_host_t h;
		if (lars_get_host(c, 70, 1, &h) != LARS_SUCC) {
			errors[0]++;
			continue;
		}
		if (lars_report(c, 70, 1, &h, LARS_SUCC) != LARS_SUCC)
			errors[1]++;
		if (i % 20 == 0)
			usleep(10); /* spread the loop over the kill */
	}
	return errors;
}

static void test_agent_killed_fail_open(void **state)
{
	lars_client_t *c = client(true, shm_path);
	wait_route(c, 70, 3);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, caller_loop, c), 0);
	usleep(200 * 1000);
	kill(agent.pid, SIGKILL);
	waitpid(agent.pid, NULL, 0);
	int *errors;
	pthread_join(t, (void **)&errors);
	printf("# agent SIGKILLed during 100,000 get_host + report: %d get_host errors, %d report "
	       "errors\n", errors[0], errors[1]);
	assert_int_equal(errors[0], 0);
	assert_int_equal(errors[1], 0);
	free(errors);
	/* A restarted agent: a new file renamed over the old; the client maps it
	 * within a second and its results reach the new agent. */
	assert_int_equal(harness_spawn(&agent, agent_bin, harness_write_config(agent_cfg)), 0);
	lars_client_t *fresh = client(true, shm_path);
	wait_route(fresh, 70, 3);
	lars_client_free(fresh);
	int64_t end = harness_deadline(10000);
	while (harness_left_ms(end) > 0 && metric("lars_agent_report_batches_total") < 1) {
		lars_host_t h;
		if (lars_get_host(c, 70, 1, &h) == LARS_SUCC)
			lars_report(c, 70, 1, &h, LARS_SUCC);
		usleep(1000);
	}
	assert_true(metric("lars_agent_report_batches_total") >= 1);
	lars_client_free(c);
}

static void test_second_agent_apart(void **state)
{
	char path2[320], cfg[1024];
	snprintf(path2, sizeof(path2), "%s/agent-b.shm", dir);
	int base2 = harness_free_udp_base();
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nbase_port = %d\nshm_path = %s\n[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\n[metrics]\nenabled = true\nport = 0\n",
		 base2, path2, harness_port(&dns, "tcp"), harness_free_tcp_port());
	harness_proc_t b;
	assert_int_equal(harness_spawn(&b, agent_bin, harness_write_config(cfg)), 0);
	lars_client_options_t o;
	lars_client_options_init(&o);
	o.base_port = base2;
	o.shm_path = path2;
	lars_client_t *cb, *ca = client(true, shm_path);
	assert_int_equal(lars_client_new(&o, &cb), 0);
	wait_route(cb, 71, 2);
	wait_route(ca, 70, 3);
	/* B knows only what its clients asked for: 70/1 is not in its file. */
	int a_ok = 0, b_ok = 0;
	for (int i = 0; i < 1000; i++) {
		lars_host_t h;
		a_ok += lars_get_host(ca, 70, 1, &h) == LARS_SUCC && h.port >= 9001 && h.port <= 9003;
		b_ok += lars_get_host(cb, 71, 1, &h) == LARS_SUCC && (h.port == 9101 || h.port == 9102);
	}
	struct stat sa, sb;
	assert_int_equal(stat(shm_path, &sa), 0);
	assert_int_equal(stat(path2, &sb), 0);
	assert_true(sa.st_ino != sb.st_ino);
	assert_int_equal(a_ok, 1000);
	assert_int_equal(b_ok, 1000);
	lars_client_free(ca);
	lars_client_free(cb);
	assert_int_equal(harness_stop(&b), 0);
	assert_int_equal(stat(path2, &sb), -1); /* a clean stop takes its file away */
}

static void test_broken_files_fall_back(void **state)
{
	char bad[320];
	snprintf(bad, sizeof(bad), "%s/broken.shm", dir);
	const char *contents[] = { "garbage that is no snapshot at all", "" };
	for (size_t k = 0; k < 3; k++) {
		int fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_true(fd >= 0);
		if (k < 2) {
			assert_true(write(fd, contents[k], strlen(contents[k])) >= 0);
		} else {
			/* The real file cut in half. */
			int src = open(shm_path, O_RDONLY);
			static char buf[4096];
			ssize_t n = read(src, buf, sizeof(buf));
			close(src);
			assert_true(n > 100);
			assert_true(write(fd, buf, (size_t)n / 2) >= 0);
		}
		close(fd);
		lars_client_t *c = client(true, bad);
		wait_route(c, 70, 3); /* over UDP */
		double before = get_host_total();
		lars_host_t h;
		assert_int_equal(lars_get_host(c, 70, 1, &h), LARS_SUCC);
		assert_true(get_host_total() - before >= 1); /* it was asked */
		lars_client_free(c);
	}
	/* LARS_SHM=0 turns the snapshot off too. */
	setenv("LARS_SHM", "0", 1);
	lars_client_t *c = client(true, shm_path);
	double before = get_host_total();
	lars_host_t h;
	assert_int_equal(lars_get_host(c, 70, 1, &h), LARS_SUCC);
	assert_true(get_host_total() - before >= 1);
	lars_client_free(c);
	unsetenv("LARS_SHM");
}

static int setup(void **state)
{
	if (harness_pg_start(&pg, "shm", false))
		return -1;
	const char *routes[] = { "70 1 127.0.0.1 9001", "70 1 127.0.0.1 9002", "70 1 127.0.0.1 9003",
				 "71 1 127.0.0.1 9101", "71 1 127.0.0.1 9102", "72 1 127.0.0.1 9201",
				 "73 1 127.0.0.1 9301", "73 1 127.0.0.1 9302" };
	if (harness_run("%s migrate >/dev/null", larsctl_bin))
		return -1;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (harness_run("%s route add %s >/dev/null", larsctl_bin, routes[i]))
			return -1;
	if (harness_run("%s route weight 71 1 127.0.0.1 9102 300 >/dev/null", larsctl_bin))
		return -1;
	snprintf(dir, sizeof(dir), "/tmp/lars-test-shm.XXXXXX");
	if (!mkdtemp(dir) || chmod(dir, 0755))
		return -1;
	snprintf(shm_path, sizeof(shm_path), "%s/agent.shm", dir);
	if (harness_spawn(&dns, dns_bin, harness_write_config("[dns]\nport = 0\n")))
		return -1;
	base = harness_free_udp_base();
	/* Sidelined hosts stay so for the test (no return by timeout mid-count). */
	snprintf(agent_cfg, sizeof(agent_cfg),
		 "[agent]\nbase_port = %d\nshm_path = %s\n[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\n[loadbalance]\noverload_timeout = 120\n"
		 "[metrics]\nenabled = true\nport = 0\n",
		 base, shm_path, harness_port(&dns, "tcp"), harness_free_tcp_port());
	return harness_spawn(&agent, agent_bin, harness_write_config(agent_cfg)) ? -1 : 0;
}

static int teardown(void **state)
{
	int rc = harness_stop(&agent) | harness_stop(&dns);
	harness_pg_stop(&pg);
	harness_run("rm -rf %s", dir);
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
	if (!dns_bin || !agent_bin || !larsctl_bin) {
		fprintf(stderr, "LARS_DNS_BIN, LARS_AGENT_BIN and LARSCTL_BIN must be set\n");
		return 1;
	}
	unsetenv("LARS_SHM");
	unsetenv("LARS_SHM_PATH");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_picks_follow_agent_rules),
		cmocka_unit_test(test_route_change_visible),
		cmocka_unit_test(test_verdicts_pooled),
		cmocka_unit_test(test_broken_files_fall_back),
		cmocka_unit_test(test_second_agent_apart),
		cmocka_unit_test(test_agent_killed_fail_open),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
