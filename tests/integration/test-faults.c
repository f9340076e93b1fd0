// SPDX-License-Identifier: MIT
// Faults with real processes on a PostgreSQL cluster of this test's own:
// PostgreSQL SIGKILLed and restarted under load (lars-dns keeps answering,
// the report history loses nothing); lars-reporter killed while the agent
// gets reports (its buffered counts arrive after the restart); a subscriber
// that stops reading is cut off at the write-queue bound while another one
// gets every push; 2,000 connections to lars-dns at once; the connection
// limit refuses cleanly and serves again; a million-element repeated field
// is refused before it costs memory.
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "wire_client.h"

static const char *dns_bin, *rep_bin, *agent_bin, *larsctl_bin;
static harness_pg_t pg; /* a cluster of its own: SIGKILLed and started again */
static harness_proc_t dns, rep, agent;
static int dns_port, rep_port, agent_base;

static void sql_ok(const char *q)
{
	assert_int_equal(harness_sql(q), 0);
}

/* Start again (same port) the cluster a test killed. */
static void cluster_start(void)
{
	assert_int_equal(harness_pg_server(&pg, "up"), 0);
}

static int spawn_reporter(void)
{
	char cfg[256];
	snprintf(cfg, sizeof(cfg), "[reporter]\nport = %d\nmax_frame = 16777216\n"
		 "flush_interval_ms = 100\n", rep_port);
	return harness_spawn(&rep, rep_bin, harness_write_config(cfg));
}

/* ---- frames ---- */

static void send_get_route(int fd, int32_t modid, int32_t cmdid)
{
	assert_int_equal(wc_get_route_send(fd, modid, cmdid), 0);
}

/* One GetRouteResponse; returns its host count, -1 on timeout, -2 on EOF. */
static int recv_route(int fd, int timeout_ms, int32_t *first_port)
{
	wc_route_t r;
	int rc = wc_route_recv(fd, &r, 1 << 20, harness_deadline(timeout_ms), NULL);
	if (rc == -EPROTO || rc == -EBADMSG)
		fail_msg("not a GetRouteResponse from lars-dns: %s", strerror(-rc));
	if (rc <= 0)
		return rc == 0 ? -2 : -1;
	int n = (int)r.n;
	if (first_port && n)
		*first_port = r.hosts[0].port;
	wc_route_free(&r);
	return n;
}

/* A report of @n results; a send the reporter cut short (it refuses the
 * frame while it arrives) is what some tests want: not checked here. */
static void send_report_frame(int fd, int32_t modid, size_t n, uint32_t succ, uint32_t err)
{
	lars_HostCallResult *res = calloc(n, sizeof(*res));
	assert_non_null(res);
	for (size_t i = 0; i < n; i++)
		res[i] = (lars_HostCallResult){ .ip = 2130706433, .port = 1 + (int)(i % 60000),
						 .succ = succ, .err = err };
	int r = wc_report_status_send(fd, modid, 1, 7, (uint32_t)time(NULL), res, n);
	assert_true(r != -EINVAL && r != -EMSGSIZE && r != -ENOMEM);
	free(res);
}

/* ---- fixture ---- */

static int setup(void **state)
{
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	/* 2,000 connections in this process and in lars-dns (inherits it). */
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max < 8192 && rl.rlim_max != RLIM_INFINITY) {
		fprintf(stderr, "file limit %lu is too low for 2,000 connections\n",
			(unsigned long)rl.rlim_max);
		return -1;
	}
	rl.rlim_cur = 8192;
	setrlimit(RLIMIT_NOFILE, &rl);
	assert_int_equal(harness_pg_start(&pg, "faults", true), 0);
	assert_int_equal(harness_run("%s migrate >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9001 >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9002 >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_spawn(&dns, dns_bin, harness_write_config(
		"[dns]\nport = 0\nmax_conns = 3000\nmax_conns_per_ip = 3000\nmax_write_queue = 65536\n"
		"poll_interval_ms = 300\n[metrics]\nenabled = true\nport = 0\n")), 0);
	dns_port = harness_port(&dns, "tcp");
	rep_port = harness_free_tcp_port();
	assert_int_equal(spawn_reporter(), 0);
	agent_base = harness_free_udp_base();
	char cfg[512];
	snprintf(cfg, sizeof(cfg), "[agent]\nbase_port = %d\n[dnsserver]\nport = %d\n"
		 "[reporter]\nport = %d\ninterval = 1\n", agent_base, dns_port, rep_port);
	assert_int_equal(harness_spawn(&agent, agent_bin, harness_write_config(cfg)), 0);
	return 0;
}

static int teardown(void **state)
{
	int ra = harness_stop(&agent), rr = harness_stop(&rep), rd = harness_stop(&dns);
	harness_pg_stop(&pg);
	assert_int_equal(ra, 0);
	assert_int_equal(rr, 0);
	assert_int_equal(rd, 0);
	return 0;
}

/* ---- PostgreSQL killed under load ---- */

typedef struct load {
	_Atomic bool stop;
	long long sent;
	int dns_failures, dns_ok;
} load_t;

static void *report_load(void *arg)
{
	load_t *l = arg;
	int fd = harness_tcp_connect(rep_port);
	while (!l->stop) {
		send_report_frame(fd, 20, 20, 2, 1);
		l->sent += 20 * 3;
		usleep(3000);
	}
	close(fd);
	return NULL;
}

static void *dns_load(void *arg)
{
	load_t *l = arg;
	int fd = harness_tcp_connect(dns_port);
	while (!l->stop) {
		send_get_route(fd, 1, 1);
		if (recv_route(fd, 2000, NULL) == 2)
			l->dns_ok++;
		else
			l->dns_failures++;
		usleep(2000);
	}
	close(fd);
	return NULL;
}

static void test_postgres_sigkill_under_load(void **state)
{
	load_t l = { 0 };
	pthread_t r, d;
	pthread_create(&r, NULL, report_load, &l);
	pthread_create(&d, NULL, dns_load, &l);
	sleep(2);
	assert_int_equal(harness_pg_server(&pg, "kill"), 0);
	sleep(2);
	cluster_start();
	sleep(3);
	l.stop = true;
	pthread_join(r, NULL);
	pthread_join(d, NULL);
	assert_int_equal(l.dns_failures, 0); /* answered from memory throughout */
	assert_true(l.dns_ok > 100);
	assert_int_equal(harness_wait_sql("SELECT sum(succ + err) FROM host_status_history WHERE modid = 20",
				  l.sent, 30000), l.sent);
	/* And lars-dns pushes again. */
	int fd = harness_tcp_connect(dns_port);
	send_get_route(fd, 21, 1);
	assert_int_equal(recv_route(fd, 5000, NULL), 0);
	sql_ok("INSERT INTO route_data (modid, cmdid, ip, port) VALUES (21, 1, '127.0.0.1', 2101)");
	assert_int_equal(recv_route(fd, 10000, NULL), 1);
	close(fd);
}

/* ---- lars-reporter killed ---- */

/* A ReportRequest (@retcode for 127.0.0.1:@port) to the agent's socket for the key. */
static void agent_report(int fd, int32_t modid, int32_t cmdid, int retcode, int port)
{
	lars_HostInfo host = { .ip = 2130706433, .port = port };
	assert_int_equal(wc_report(fd, agent_base + (modid + cmdid) % 3, modid, cmdid, host,
				   retcode), 0);
}

static void test_reporter_killed_agent_buffers(void **state)
{
	int fd = harness_udp_socket();
	lars_GetHostResponse gh;
	/* The agent pulls 1/1 (whatever it answers first). */
	assert_int_equal(wc_get_host(fd, agent_base + 2, 1, 1, 1, &gh, 2000), 0);
	usleep(500000);
	kill(rep.pid, SIGKILL);
	waitpid(rep.pid, NULL, 0);
	rep.pid = 0;
	usleep(300000);
	long long before = harness_sql_num("SELECT coalesce(sum(succ + err), 0) FROM host_status_history "
				   "WHERE modid = 1 AND port = 9002");
	/* 40 reports while lars-reporter is gone: the agent keeps the counts. */
	for (int i = 0; i < 40; i++)
		agent_report(fd, 1, 1, i % 4 == 0 ? 1 : 0, 9002);
	sleep(2);
	assert_int_equal(spawn_reporter(), 0); /* same port */
	assert_int_equal(harness_wait_sql("SELECT coalesce(sum(succ + err), 0) FROM host_status_history "
				  "WHERE modid = 1 AND port = 9002", before + 40, 20000), before + 40);
	close(fd);
}

/* ---- a subscriber that stops reading ---- */

static void test_half_open_subscriber_cut_off(void **state)
{
	int slow = harness_tcp_connect(dns_port);
	int small = 2048;
	setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	int good = harness_tcp_connect(dns_port);
	send_get_route(slow, 50, 1);
	send_get_route(good, 50, 1);
	assert_int_equal(recv_route(good, 5000, NULL), 0);
	/* 20,000 hosts (~250 KB a push), then 24 changes: ~6 MB to each, more
	 * than the kernel's socket buffers hold for a peer that never reads. */
	sql_ok("INSERT INTO route_data (modid, cmdid, ip, port) "
	    "SELECT 50, 1, '10.0.0.0'::inet + g, 1000 FROM generate_series(1, 20000) g");
	assert_int_equal(recv_route(good, 10000, NULL), 20000);
	for (int i = 1; i <= 24; i++) {
		char q[256];
		snprintf(q, sizeof(q), "UPDATE route_data SET port = %d WHERE modid = 50", 1000 + i);
		sql_ok(q);
		int32_t port = 0;
		/* The reader gets every change, the last one being port 1000+i. */
		double end = harness_now_s() + 30;
		do {
			assert_true(harness_now_s() < end);
			assert_int_equal(recv_route(good, 10000, &port), 20000);
		} while (port != 1000 + i);
	}
	/* The one that never read was cut off at the bound (its socket then
	 * drains through a tiny window before the FIN: not waited for here). */
	char out[65536];
	harness_http_get(harness_port(&dns, "metrics"), "/metrics", out, sizeof(out));
	const char *p = strstr(out, "lars_tcp_write_overflow_total{listener=\"dns\"} ");
	assert_non_null(p);
	assert_int_equal(atoi(p + strlen("lars_tcp_write_overflow_total{listener=\"dns\"} ")), 1);
	close(slow);
	close(good);
}

/* ---- many connections, and the limit ---- */

static void test_2000_connections(void **state)
{
	enum { N = 2000 };
	static int fds[N];
	for (int i = 0; i < N; i++) {
		fds[i] = harness_tcp_connect(dns_port);
		assert_true(fds[i] >= 0);
	}
	for (int i = 0; i < N; i++)
		send_get_route(fds[i], 1, 1);
	for (int i = 0; i < N; i++)
		assert_int_equal(recv_route(fds[i], 10000, NULL), 2);
	for (int i = 0; i < N; i++)
		close(fds[i]);
}

static void test_connection_limit(void **state)
{
	harness_proc_t d2;
	assert_int_equal(harness_spawn(&d2, dns_bin,
		harness_write_config("[dns]\nport = 0\nmax_conns = 5\n")), 0);
	int port = harness_port(&d2, "tcp"), fds[5];
	for (int i = 0; i < 5; i++) {
		fds[i] = harness_tcp_connect(port);
		send_get_route(fds[i], 1, 1);
		assert_int_equal(recv_route(fds[i], 5000, NULL), 2);
	}
	int extra = harness_tcp_connect(port);
	assert_true(extra >= 0);
	assert_true(harness_wait_eof(extra, 5000)); /* refused cleanly */
	close(extra);
	close(fds[0]);
	int served = 0;
	/* The server notices the close asynchronously: retry until a deadline. */
	double end = harness_now_s() + 15;
	while (!served && harness_now_s() < end) {
		int fd = harness_tcp_connect(port);
		send_get_route(fd, 1, 1);
		served = recv_route(fd, 1000, NULL) == 2;
		close(fd);
		if (!served)
			usleep(20000);
	}
	assert_true(served);
	for (int i = 1; i < 5; i++)
		close(fds[i]);
	assert_int_equal(harness_stop(&d2), 0);
}

/* ---- hostile lengths ---- */

static void test_million_element_field(void **state)
{
	/* ~12 MB frame within max_frame (16 MB), a million results against
	 * max_results 200,000: refused while decoding, the connection closed. */
	int fd = harness_tcp_connect(rep_port);
	send_report_frame(fd, 30, 1000000, 1, 0);
	assert_true(harness_wait_eof(fd, 10000));
	close(fd);
	/* msglen 2^31-1: refused from the header alone. */
	fd = harness_tcp_connect(rep_port);
	assert_int_equal(harness_send_all(fd, "\x03\0\0\0\xff\xff\xff\x7f", 8), 0);
	assert_true(harness_wait_eof(fd, 5000));
	close(fd);
	/* Still serving, nothing of the refused report stored. */
	fd = harness_tcp_connect(rep_port);
	send_report_frame(fd, 31, 5, 1, 0);
	assert_int_equal(harness_wait_sql("SELECT sum(succ) FROM host_status_history WHERE modid = 31", 5, 10000), 5);
	assert_int_equal(harness_sql_num("SELECT count(*) FROM host_status WHERE modid = 30"), 0);
	close(fd);
}

static void test_world_readable_secret_refused(void **state)
{
	harness_proc_t p;
	const char *cfg = harness_write_config(
		"[dns]\nport = 0\n[postgres]\nconninfo = host=127.0.0.1 password=hunter2\n");
	chmod(cfg, 0644);
	assert_int_not_equal(harness_spawn(&p, dns_bin, cfg), 0);
	assert_int_equal(p.exit_status, 2);
	chmod(cfg, 0600);
}

int main(void)
{
	if (!getenv("LARS_TEST_PG")) {
		fprintf(stderr, "no PostgreSQL for this run (deploy/lars-local test provides one)\n");
		return 77;
	}
	dns_bin = getenv("LARS_DNS_BIN");
	rep_bin = getenv("LARS_REPORTER_BIN");
	agent_bin = getenv("LARS_AGENT_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	if (!dns_bin || !rep_bin || !agent_bin || !larsctl_bin) {
		fprintf(stderr, "LARS_DNS_BIN, LARS_REPORTER_BIN, LARS_AGENT_BIN and LARSCTL_BIN "
				"must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_postgres_sigkill_under_load),
		cmocka_unit_test(test_reporter_killed_agent_buffers),
		cmocka_unit_test(test_half_open_subscriber_cut_off),
		cmocka_unit_test(test_2000_connections),
		cmocka_unit_test(test_connection_limit),
		cmocka_unit_test(test_million_element_field),
		cmocka_unit_test(test_world_readable_secret_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
