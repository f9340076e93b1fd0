// SPDX-License-Identifier: MIT
// lars-agent end to end with a real lars-dns, lars-reporter and PostgreSQL
// (a cluster of the test's own): NOEXIST then the host after the pull; a
// route added with larsctl is served (pushed, not polled); a host failing 20 times in
// a row leaves rotation and is probed back; the call statistics arrive in
// the reporter's history; bad datagrams are dropped and counted; the route
// table stays within max_routes; killing lars-dns leaves get_host working.
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"

static const char *agent_bin, *dns_bin, *rep_bin, *larsctl_bin, *cluster, *lars_bin;
static char pg_dir[64];
static harness_proc_t dns, rep, agent;
static int ports[3], metrics_port;
static int fd;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

/* get_host on the socket the original client would use: (modid + cmdid) % 3. */
static int get_host(int32_t modid, int32_t cmdid, lars_HostInfo *out)
{
	static uint32_t seq;
	lars_GetHostRequest req = { .seq = ++seq, .modid = modid, .cmdid = cmdid };
	uint8_t buf[64], resp[65536];
	size_t len;
	assert_int_equal(msg_frame_encode(LARS_ID_GET_HOST_REQ, lars_GetHostRequest_fields, &req,
					  buf, sizeof(buf), &len), 0);
	ssize_t n = harness_udp_call(fd, ports[(modid + cmdid) % 3], buf, len, resp,
				     sizeof(resp), 2000);
	assert_true(n >= 8);
	frame_hdr_t hdr = frame_hdr_read(resp);
	assert_int_equal(hdr.msgid, LARS_ID_GET_HOST_RESP);
	lars_GetHostResponse r = lars_GetHostResponse_init_zero;
	assert_int_equal(msg_decode(lars_GetHostResponse_fields, &r, resp + 8, (size_t)n - 8, NULL), 0);
	assert_int_equal(r.seq, seq);
	assert_int_equal(r.modid, modid);
	if (out)
		*out = r.host;
	return r.retcode;
}

static void report(int32_t modid, int32_t cmdid, int32_t port, int retcode)
{
	lars_ReportRequest req = lars_ReportRequest_init_zero;
	req.modid = modid;
	req.cmdid = cmdid;
	req.has_host = true;
	req.host.ip = 2130706433;
	req.host.port = port;
	req.retcode = retcode;
	uint8_t buf[64];
	size_t len;
	assert_int_equal(msg_frame_encode(LARS_ID_REPORT_REQ, lars_ReportRequest_fields, &req,
					  buf, sizeof(buf), &len), 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)ports[(modid + cmdid) % 3]) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)len);
}

/* Polls get_host until it answers SUCC (≤ @ms). */
static int wait_host(int32_t modid, int32_t cmdid, lars_HostInfo *out, int ms)
{
	double end = now_ms() + ms;
	int r;
	do {
		r = get_host(modid, cmdid, out);
		if (r == LARS_RET_SUCC)
			return r;
		usleep(20000);
	} while (now_ms() < end);
	return r;
}

static int setup(void **state)
{
	int pg_port = 0;
	snprintf(pg_dir, sizeof(pg_dir), "/tmp/lars-test-agent-%d", (int)getpid());
	assert_int_equal(harness_cluster_start(cluster, pg_dir, &pg_port), 0);
	assert_int_equal(harness_run("%s migrate >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9001 >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9002 >/dev/null", larsctl_bin), 0);

	assert_int_equal(harness_spawn(&dns, dns_bin, harness_write_config("[dns]\nport = 0\n")), 0);
	assert_int_equal(harness_spawn(&rep, rep_bin,
		harness_write_config("[reporter]\nport = 0\nflush_interval_ms = 100\n")), 0);
	/* Three consecutive free ports: the client library's layout. */
	int base = harness_free_udp_base();
	assert_true(base > 0);
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nbase_port = %d\nmax_routes = 1000\nmax_hosts = 4\n"
		 "[loadbalance]\noverload_timeout = 2\nupdate_timeout = 15\n"
		 "[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\ninterval = 1\n"
		 "[metrics]\nenabled = true\n",
		 base, harness_port(&dns, "tcp"), harness_port(&rep, "tcp"));
	assert_int_equal(harness_spawn(&agent, agent_bin, harness_write_config(cfg)), 0);
	ports[0] = harness_port(&agent, "udp");
	ports[1] = harness_port(&agent, "udp1");
	ports[2] = harness_port(&agent, "udp2");
	metrics_port = harness_port(&agent, "metrics");
	assert_true(ports[0] > 0 && ports[1] > 0 && ports[2] > 0);
	fd = harness_udp_socket();
	return 0;
}

static int teardown(void **state)
{
	close(fd);
	int ra = harness_stop(&agent);
	harness_stop(&rep);
	harness_stop(&dns);
	harness_run("'%s' stop '%s'; rm -rf '%s'", cluster, pg_dir, pg_dir);
	assert_int_equal(ra, 0);
	return 0;
}

static void test_noexist_then_host(void **state)
{
	lars_HostInfo h;
	assert_int_equal(get_host(1, 1, &h), LARS_RET_NOEXIST); /* pull started */
	assert_int_equal(wait_host(1, 1, &h, 10000), LARS_RET_SUCC);
	assert_int_equal(h.ip, 2130706433);
	assert_true(h.port == 9001 || h.port == 9002);
	/* Round robin over both. */
	lars_HostInfo h2;
	assert_int_equal(get_host(1, 1, &h2), LARS_RET_SUCC);
	assert_int_not_equal(h2.port, h.port);
	/* A route that does not exist: NOEXIST, also after the answer. */
	assert_int_equal(get_host(5, 5, NULL), LARS_RET_NOEXIST);
	usleep(300000);
	assert_int_equal(get_host(5, 5, NULL), LARS_RET_NOEXIST);
}

static void test_larsctl_add_is_served(void **state)
{
	double t0 = now_ms();
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9003 >/dev/null", larsctl_bin), 0);
	bool seen = false;
	/* A deadline for a loaded machine, not a speed claim (bench/ has that). */
	while (!seen && now_ms() - t0 < 15000) {
		lars_HostInfo h;
		assert_int_equal(get_host(1, 1, &h), LARS_RET_SUCC);
		seen = h.port == 9003;
		if (!seen)
			usleep(2000);
	}
	assert_true(seen);
}

static void test_api_get_route(void **state)
{
	lars_GetRouteRequest req = { .modid = 1, .cmdid = 1 };
	uint8_t buf[64], resp[65536];
	size_t len;
	assert_int_equal(msg_frame_encode(LARS_ID_API_GET_ROUTE_REQ, lars_GetRouteRequest_fields,
					  &req, buf, sizeof(buf), &len), 0);
	/* Any socket: one shared view of the routes. */
	for (int s = 0; s < 3; s++) {
		ssize_t n = harness_udp_call(fd, ports[s], buf, len, resp, sizeof(resp), 2000);
		assert_true(n >= 8);
		assert_int_equal(frame_hdr_read(resp).msgid, LARS_ID_API_GET_ROUTE_RESP);
		lars_GetRouteResponse r = lars_GetRouteResponse_init_zero;
		msg_vec_t vec;
		msg_hosts_init(&vec, 100);
		msg_vec_bind(&vec, &r.host);
		assert_int_equal(msg_decode(lars_GetRouteResponse_fields, &r, resp + 8,
					    (size_t)n - 8, NULL), 0);
		assert_int_equal(vec.n, 3);
		msg_vec_deinit(&vec);
	}
}

static void test_failing_host_leaves_and_is_probed_back(void **state)
{
	for (int i = 0; i < 20; i++)
		report(1, 1, 9001, LARS_RET_SYSTEM_ERROR);
	usleep(100000);
	/* Out of rotation: in 11 picks it shows up once, as the probe. */
	int seen = 0;
	for (int i = 0; i < 11; i++) {
		lars_HostInfo h;
		assert_int_equal(get_host(1, 1, &h), LARS_RET_SUCC);
		seen += h.port == 9001;
	}
	assert_int_equal(seen, 1);
	/* overload_timeout = 2 s: back in rotation without any report. */
	usleep(2600000);
	seen = 0;
	for (int i = 0; i < 6; i++) {
		lars_HostInfo h;
		assert_int_equal(get_host(1, 1, &h), LARS_RET_SUCC);
		seen += h.port == 9001;
	}
	assert_int_equal(seen, 2);
}

static void test_stats_reach_history(void **state)
{
	long long before = harness_sql_num("SELECT coalesce(sum(succ + err), 0) FROM host_status_history "
				   "WHERE modid = 1 AND port = 9002");
	for (int i = 0; i < 30; i++)
		report(1, 1, 9002, i % 3 ? LARS_RET_SUCC : LARS_RET_OVERLOAD);
	/* interval = 1 s, then the reporter's batch (a deadline, not a speed test). */
	long long got = harness_wait_sql("SELECT coalesce(sum(succ + err), 0) FROM host_status_history "
				 "WHERE modid = 1 AND port = 9002", before + 30, 30000);
	assert_int_equal(got, before + 30);
	assert_int_equal(harness_sql_num("SELECT count(*) FROM host_status WHERE modid = 1 AND port = 9001"), 1);
}

static void test_bad_datagrams(void **state)
{
	static const char *const bad[] = {
		"04",                          /* one byte */
		"04000000 07000000 08ea33",    /* shorter than msglen */
		"04000000 02000000 0801 ffff", /* longer than msglen */
		"04000000 ffffffff",           /* negative */
		"05000000 00000000",           /* a response id: not served */
		"02000000 00000000",           /* GetRouteResponse: not from apps */
		"63000000 00000000",           /* unknown 99 */
		"04000000 02000000 08ff",      /* truncated protobuf */
		"06000000 03000000 1a0508",    /* report: host longer than the body */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t d[64], resp[256];
		size_t n = test_unhex(bad[i], d, sizeof(d));
		if (harness_udp_call(fd, ports[i % 3], d, n, resp, sizeof(resp), 200) != -1)
			fail_msg("bad datagram %zu (%s) was answered", i, bad[i]);
	}
	assert_int_equal(get_host(1, 1, NULL), LARS_RET_SUCC);
	char out[65536];
	assert_true(harness_http_get(metrics_port, "/metrics", out, sizeof(out)) > 0);
	/* Counted: wrong lengths on the decoder, broken bodies on the handlers. */
	long bad_len = 0, bad_msg = 0;
	for (int s = 0; s < 3; s++) {
		char key[128];
		snprintf(key, sizeof(key),
			 "lars_bad_frames_total{listener=\"agent-udp%d\",reason=\"length\"} ", s);
		const char *p = strstr(out, key);
		assert_non_null(p);
		bad_len += atol(p + strlen(key));
		snprintf(key, sizeof(key), "lars_bad_messages_total{listener=\"agent-udp%d\"} ", s);
		p = strstr(out, key);
		assert_non_null(p);
		bad_msg += atol(p + strlen(key));
	}
	assert_int_equal(bad_len, 3);
	assert_int_equal(bad_msg, 2);
}

static void test_max_routes(void **state)
{
	/* 5,000 distinct keys against max_routes = 1000: the table stays at its
	 * bound and the keys over it get SYSTEM_ERROR (all are in use). */
	int sys_err = 0;
	for (int i = 0; i < 5000; i++)
		sys_err += get_host(1000 + i, 1, NULL) == LARS_RET_SYSTEM_ERROR;
	assert_true(sys_err >= 4000 - 10);
	char out[65536];
	assert_true(harness_http_get(metrics_port, "/metrics", out, sizeof(out)) > 0);
	const char *p = strstr(out, "\nlars_agent_routes ");
	assert_non_null(p);
	assert_true(atoi(p + strlen("\nlars_agent_routes ")) <= 1000);
	/* Known routes keep working. */
	assert_int_equal(get_host(1, 1, NULL), LARS_RET_SUCC);
}

/* Output of a lars tool command, and its exit status. */
static int lars_out(char *out, size_t cap, const char *args)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s --agent 127.0.0.1:%d %s 2>&1", lars_bin, ports[0], args);
	FILE *f = popen(cmd, "r");
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = 0;
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_lars_tool(void **state)
{
	/* The client library and the lars tool through the real agent. */
	static char out[65536];
	assert_int_equal(lars_out(out, sizeof(out), "get-host 1 1"), 0);
	assert_non_null(strstr(out, "host is 127.0.0.1:900"));
	assert_int_equal(lars_out(out, sizeof(out), "get-route 1 1"), 0);
	assert_non_null(strstr(out, "127.0.0.1:9001\n"));
	assert_non_null(strstr(out, "127.0.0.1:9003\n"));
	assert_int_equal(lars_out(out, sizeof(out), "get-host 77 77"), LARS_RET_NOEXIST);
	assert_int_equal(lars_out(out, sizeof(out), "report 1 1 127.0.0.1 9002 0"), 0);
	assert_int_equal(lars_out(out, sizeof(out), "get-host one 1"), 64);
	/* One host fails 90% of its calls: it ends up with the fewest picks. */
	assert_int_equal(lars_out(out, sizeof(out),
				  "simulate 1 1 --count 600 --fail 127.0.0.1:9003=90"), 0);
	const char *p3 = strstr(out, "127.0.0.1:9003"), *p1 = strstr(out, "127.0.0.1:9001");
	assert_non_null(p3);
	assert_non_null(p1);
	long picks3 = atol(p3 + 14), picks1 = atol(p1 + 14);
	assert_true(picks3 < picks1);
	assert_non_null(strstr(out, "calls 600"));
	assert_int_equal(lars_out(out, sizeof(out), "bench --threads 2 --seconds 1 --modid 1"), 0);
	assert_non_null(strstr(out, "average"));
	/* No agent there: a prompt SYSTEM_ERROR, never a hang. */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "%s --agent 127.0.0.1:3 get-host 1 1 >/dev/null 2>&1", lars_bin);
	assert_int_equal(WEXITSTATUS(system(cmd)), LARS_RET_SYSTEM_ERROR);
}

static void test_oversized_route_is_cut(void **state)
{
	/* Six hosts against max_hosts = 4: served from the first four, and
	 * the lars-dns connection stays (other routes keep updating). */
	for (int p = 1; p <= 6; p++)
		assert_int_equal(harness_run("%s route add 9 9 127.0.0.1 %d >/dev/null", larsctl_bin, 9900 + p), 0);
	lars_HostInfo h;
	get_host(9, 9, &h);
	assert_int_equal(wait_host(9, 9, &h, 10000), LARS_RET_SUCC);
	assert_true(h.port >= 9901 && h.port <= 9904);
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9004 >/dev/null", larsctl_bin), 0);
	bool seen = false;
	double end = now_ms() + 15000;
	while (!seen && now_ms() < end) {
		assert_int_equal(get_host(1, 1, &h), LARS_RET_SUCC);
		seen = h.port == 9004;
		usleep(5000);
	}
	assert_true(seen);
	assert_int_equal(harness_run("%s route del 1 1 127.0.0.1 9004 >/dev/null", larsctl_bin), 0);
	usleep(200000);
}

static void test_dns_killed_keeps_serving(void **state)
{
	kill(dns.pid, SIGKILL);
	waitpid(dns.pid, NULL, 0);
	dns.pid = 0;
	for (int i = 0; i < 20; i++)
		assert_int_equal(get_host(1, 1, NULL), LARS_RET_SUCC);
	usleep(500000); /* reconnect attempts fail meanwhile */
	assert_int_equal(get_host(1, 1, NULL), LARS_RET_SUCC);
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
	cluster = getenv("LARS_PG_CLUSTER");
	lars_bin = getenv("LARS_BIN");
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	if (!agent_bin || !dns_bin || !rep_bin || !larsctl_bin || !cluster || !lars_bin) {
		fprintf(stderr, "LARS_AGENT_BIN, LARS_DNS_BIN, LARS_REPORTER_BIN, LARSCTL_BIN and "
				"LARS_PG_CLUSTER must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_noexist_then_host),
		cmocka_unit_test(test_larsctl_add_is_served),
		cmocka_unit_test(test_api_get_route),
		cmocka_unit_test(test_failing_host_leaves_and_is_probed_back),
		cmocka_unit_test(test_stats_reach_history),
		cmocka_unit_test(test_bad_datagrams),
		cmocka_unit_test(test_lars_tool), /* before the table fills up */
		cmocka_unit_test(test_oversized_route_is_cut),
		cmocka_unit_test(test_max_routes),
		cmocka_unit_test(test_dns_killed_keeps_serving),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
