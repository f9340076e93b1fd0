// SPDX-License-Identifier: MIT
// lars-agent end to end with a real lars-dns, lars-reporter and PostgreSQL
// (a cluster of the test's own): NOEXIST then the host after the pull; a
// route added with larsctl is served (pushed, not polled); a host failing 20 times in
// a row leaves rotation and is probed back; the call statistics arrive in
// the reporter's history; bad datagrams are dropped and counted; the route
// table stays within max_routes; killing lars-dns leaves get_host working.
// A second agent takes a flood of made-up keys (issue 14.8) and serves
// routes too big for the old fixed cap over the API (issue 15.8).
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
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
#include "wire_client.h"

static const char *agent_bin, *dns_bin, *rep_bin, *larsctl_bin, *lars_bin;
static harness_pg_t pg;
static harness_proc_t dns, rep, agent;
static harness_proc_t agent2; /* the tests' second agent: stopped in teardown too */
static int ports[3], metrics_port, dns_metrics_port;
static int fd;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

/* get_host to the agent on @port_v (its three sockets), as the original client. */
static int get_host_at(const int *port_v, int32_t modid, int32_t cmdid, lars_HostInfo *out)
{
	static uint32_t seq;
	lars_GetHostResponse r;
	assert_int_equal(wc_get_host(fd, port_v[(modid + cmdid) % 3], ++seq, modid, cmdid, &r, 2000), 0);
	assert_int_equal(r.seq, seq);
	assert_int_equal(r.modid, modid);
	if (out)
		*out = r.host;
	return r.retcode;
}

/* get_host on the socket the original client would use: (modid + cmdid) % 3. */
static int get_host(int32_t modid, int32_t cmdid, lars_HostInfo *out)
{
	return get_host_at(ports, modid, cmdid, out);
}

/* /metrics from @port into @out, the connection closed by the server after
 * the answer (so the read ends at EOF, not at the deadline of 5 s). */
static void get_metrics(int port, char *out, size_t cap)
{
	int mfd = harness_tcp_connect(port);
	assert_true(mfd >= 0);
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	assert_int_equal(harness_send_all(mfd, req, sizeof(req) - 1), 0);
	size_t len = 0;
	double end = now_ms() + 5000;
	while (len < cap - 1 && now_ms() < end) {
		struct pollfd pf = { .fd = mfd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t k = recv(mfd, out + len, cap - 1 - len, 0);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	out[len] = 0;
	close(mfd);
	assert_true(len > 0);
}

/* A metric's value in @text ("name" or "name{labels}"); -1 if absent. */
static long long metric_in(const char *text, const char *name)
{
	char key[256];
	snprintf(key, sizeof(key), "\n%s ", name);
	const char *p = strstr(text, key);
	return p ? atoll(p + strlen(key)) : -1;
}

static long long metric(int port, const char *name)
{
	static char out[1 << 17];
	get_metrics(port, out, sizeof(out));
	return metric_in(out, name);
}

static void report(int32_t modid, int32_t cmdid, int32_t port, int retcode)
{
	lars_HostInfo host = { .ip = 2130706433, .port = port };
	assert_int_equal(wc_report(fd, ports[(modid + cmdid) % 3], modid, cmdid, host, retcode), 0);
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
	assert_int_equal(harness_pg_start(&pg, "agent", false), 0);
	assert_int_equal(harness_run("%s migrate >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9001 >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9002 >/dev/null", larsctl_bin), 0);

	/* A small subscription cap: the flood test checks that it holds. */
	assert_int_equal(harness_spawn(&dns, dns_bin, harness_write_config(
		"[dns]\nport = 0\nmax_subscriptions = 300\n[metrics]\nenabled = true\nport = 0\n")), 0);
	dns_metrics_port = harness_port(&dns, "metrics");
	assert_int_equal(harness_spawn(&rep, rep_bin,
		harness_write_config("[reporter]\nport = 0\nflush_interval_ms = 100\n")), 0);
	/* Three consecutive free ports: the client library's layout. */
	int base = harness_free_udp_base();
	assert_true(base > 0);
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nbase_port = %d\nmax_routes = 1000\nmax_hosts = 4\nmax_absent = 50\n"
		 "[loadbalance]\noverload_timeout = 2\nupdate_timeout = 15\n"
		 "[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\ninterval = 1\n"
		 "[metrics]\nenabled = true\nport = 0\n",
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
	harness_stop(&agent2); /* left running by a failed test */
	int ra = harness_stop(&agent);
	harness_stop(&rep);
	harness_stop(&dns);
	harness_pg_stop(&pg);
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
	/* Any socket: one shared view of the routes. */
	for (int s = 0; s < 3; s++) {
		wc_route_t r;
		assert_true(wc_api_get_route(fd, ports[s], 1, 1, &r, 100, 2000) >= 8);
		assert_int_equal(r.n, 3);
		wc_route_free(&r);
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

/* A second agent of the test's own on the same lars-dns: @extra adds keys. */
static void spawn_agent(harness_proc_t *p, int port_v[3], int *metricsp, const char *extra)
{
	harness_stop(p); /* one left by a failed test */
	int base = harness_free_udp_base();
	assert_true(base > 0);
	char cfg[1024];
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nbase_port = %d\n%s\n"
		 "[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\n"
		 "[metrics]\nenabled = true\nport = 0\n",
		 base, extra, harness_port(&dns, "tcp"), harness_port(&rep, "tcp"));
	assert_int_equal(harness_spawn(p, agent_bin, harness_write_config(cfg)), 0);
	port_v[0] = harness_port(p, "udp");
	port_v[1] = harness_port(p, "udp1");
	port_v[2] = harness_port(p, "udp2");
	*metricsp = harness_port(p, "metrics");
	assert_true(port_v[0] > 0 && port_v[1] > 0 && port_v[2] > 0 && *metricsp > 0);
}

static int wait_host_at(const int *port_v, int32_t modid, int32_t cmdid, lars_HostInfo *out,
			int ms)
{
	double end = now_ms() + ms;
	int r;
	do {
		r = get_host_at(port_v, modid, cmdid, out);
		if (r == LARS_RET_SUCC)
			return r;
		usleep(20000);
	} while (now_ms() < end);
	return r;
}

static void test_flood_of_unknown_keys(void **state)
{
	/* Issue 14.8, scaled down: a small table, a 2 s update_timeout (a route
	 * idle that long may make room for another), a pull budget of 100/s. */
	int p2[3], m2;
	spawn_agent(&agent2, p2, &m2,
		    "max_routes = 200\nmax_absent = 100\nmax_hosts = 10000\n"
		    "pull_rate = 100\npull_burst = 100\n[loadbalance]\nupdate_timeout = 2");
	assert_int_equal(wait_host_at(p2, 1, 1, NULL, 3000), LARS_RET_SUCC);
	usleep(2300000); /* 1/1 idle for longer than update_timeout */
	long long pulls0 = metric(m2, "lars_agent_pulls_total");
	/* The flood: distinct made-up keys for 4 s (at most 40,000 datagrams). */
	double t0 = now_ms();
	int keys = 0, sys_err = 0;
	for (int i = 0; i < 40000 && now_ms() - t0 < 4000; i++, keys++)
		sys_err += get_host_at(p2, 500000 + i, 7, NULL) == LARS_RET_SYSTEM_ERROR;
	double secs = (now_ms() - t0) / 1000;
	/* The real route still answers from its balancer. */
	int fails = 0;
	for (int i = 0; i < 20; i++)
		fails += get_host_at(p2, 1, 1, NULL) != LARS_RET_SUCC;
	static char text[1 << 17];
	get_metrics(m2, text, sizeof(text));
	long long pulls = metric_in(text, "lars_agent_pulls_total") - pulls0;
	long long limited = metric_in(text, "lars_agent_pulls_limited_total");
	long long routes = metric_in(text, "lars_agent_routes");
	long long absent = metric_in(text, "lars_agent_absent_keys");
	long long subs = metric(dns_metrics_port, "lars_dns_subscriptions");
	fprintf(stderr, "flood: %d keys in %.1f s (%d SYSTEM_ERROR); route 1/1 failed %d of 20; "
		"%lld pulls sent to lars-dns, %lld limited; agent routes %lld, absent keys %lld; "
		"lars-dns subscriptions %lld\n",
		keys, secs, sys_err, fails, pulls, limited, routes, absent, subs);
	assert_int_equal(fails, 0);
	assert_true(limited > 0);
	/* The bucket: 100 saved up plus 100 a second (and a little slack). */
	assert_true(pulls <= 100 + 100 * (long long)(secs + 1) + 20);
	assert_true(routes >= 1 && routes <= 5); /* no made-up key entered the table */
	assert_true(absent <= 100);
	/* Both agents: within their max_routes in use + max_absent, under the cap. */
	assert_true(subs >= 1 && subs <= 300);

	/* A route created now reaches the agent by push (the subscription
	 * succeeded): ask for it (NOEXIST once pulled), then add it. */
	double end = now_ms() + 5000;
	int r;
	while ((r = get_host_at(p2, 4242, 1, NULL)) != LARS_RET_NOEXIST && now_ms() < end)
		usleep(50000); /* SYSTEM_ERROR while the pull budget refills */
	assert_int_equal(r, LARS_RET_NOEXIST);
	usleep(300000); /* lars-dns's answer: absent */
	double ta = now_ms();
	assert_int_equal(harness_run("%s route add 4242 1 127.0.0.1 9100 >/dev/null", larsctl_bin), 0);
	bool seen = false;
	while (!seen && now_ms() - ta < 1000) {
		lars_HostInfo h;
		seen = get_host_at(p2, 4242, 1, &h) == LARS_RET_SUCC && h.port == 9100;
		if (!seen)
			usleep(10000);
	}
	assert_true(seen);
	assert_int_equal(get_host(1, 1, NULL), LARS_RET_SUCC); /* the first agent too */
	assert_int_equal(harness_stop(&agent2), 0);
}

/* API get_route from the agent on @port_v into @r (freed first); the datagram's size. */
static ssize_t api_get_route(const int *port_v, int32_t modid, int32_t cmdid, wc_route_t *r)
{
	wc_route_free(r);
	ssize_t n = wc_api_get_route(fd, port_v[0], modid, cmdid, r, 10000, 2000);
	assert_true(n >= 8);
	assert_int_equal(r->modid, modid);
	return n;
}

static void test_api_route_fills_datagram(void **state)
{
	/* Issue 15.8: 5,000 ordinary hosts fit one datagram; 7,000 do not and
	 * arrive cut, saying how many there are. */
	int p2[3], m2;
	spawn_agent(&agent2, p2, &m2, "max_hosts = 10000");
	assert_int_equal(harness_sql("INSERT INTO route_data (modid, cmdid, ip, port) "
				     "SELECT 50, 1, '127.0.0.1', 20000 + g FROM generate_series(0, 4999) g"), 0);
	assert_int_equal(harness_sql("INSERT INTO route_data (modid, cmdid, ip, port) "
				     "SELECT 50, 2, '127.0.0.1', 20000 + g FROM generate_series(0, 6999) g"), 0);
	wc_route_t vec = { 0 };
	ssize_t n = 0;
	double end = now_ms() + 5000;
	do { /* the first answer is empty: the agent is pulling it */
		n = api_get_route(p2, 50, 1, &vec);
		if (vec.n == 5000)
			break;
		usleep(50000);
	} while (now_ms() < end);
	fprintf(stderr, "5000-host route: %zu hosts in a %zd-byte datagram, host_total %d\n",
		vec.n, n, vec.host_total);
	assert_int_equal(vec.n, 5000);
	assert_int_equal(vec.host_total, 0); /* whole: not set, the bytes the original sends */
	assert_true((size_t)n <= MSG_UDP_DATAGRAM_MAX);
	end = now_ms() + 5000;
	do {
		n = api_get_route(p2, 50, 2, &vec);
		if (vec.n)
			break;
		usleep(50000);
	} while (now_ms() < end);
	fprintf(stderr, "7000-host route: %zu hosts in a %zd-byte datagram, host_total %d\n",
		vec.n, n, vec.host_total);
	assert_int_equal(vec.host_total, 7000);
	assert_true(vec.n > 5000 && vec.n < 7000);
	assert_true((size_t)n <= MSG_UDP_DATAGRAM_MAX);
	/* Filled: one more host (12 bytes here) would not have fitted. */
	assert_true((size_t)n + 12 > MSG_UDP_DATAGRAM_MAX);
	const lars_HostInfo *h = vec.hosts;
	for (size_t i = 0; i < vec.n; i++)
		assert_true(h[i].ip == 2130706433 && h[i].port >= 20000 && h[i].port < 27000);
	wc_route_free(&vec);
	assert_true(metric(m2, "lars_agent_get_route_cut_total") >= 1);
	assert_int_equal(harness_stop(&agent2), 0);
	assert_int_equal(harness_sql("DELETE FROM route_data WHERE modid = 50"), 0);
}

static void test_dns_unreachable_is_system_error(void **state)
{
	/* Issue 15.6: nothing at the lars-dns address. The agent cannot know
	 * the route: SYSTEM_ERROR ("route service unreachable"), not NOEXIST. */
	int p3[3], base = harness_free_udp_base(), dead = harness_free_tcp_port();
	assert_true(base > 0 && dead > 0);
	char cfg[512];
	snprintf(cfg, sizeof(cfg), "[agent]\nbase_port = %d\n[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\n", base, dead, harness_port(&rep, "tcp"));
	harness_stop(&agent2);
	assert_int_equal(harness_spawn(&agent2, agent_bin, harness_write_config(cfg)), 0);
	p3[0] = harness_port(&agent2, "udp");
	p3[1] = harness_port(&agent2, "udp1");
	p3[2] = harness_port(&agent2, "udp2");
	/* Until its first connect attempt fails the agent is only connecting:
	 * NOEXIST as the original's first answer; then SYSTEM_ERROR. */
	double end = now_ms() + 5000;
	int r;
	while ((r = get_host_at(p3, 1, 1, NULL)) == LARS_RET_NOEXIST && now_ms() < end)
		usleep(20000);
	assert_int_equal(r, LARS_RET_SYSTEM_ERROR);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(get_host_at(p3, 1, 1, NULL), LARS_RET_SYSTEM_ERROR);
		assert_int_equal(get_host_at(p3, 2, 7, NULL), LARS_RET_SYSTEM_ERROR);
		usleep(100000);
	}
	assert_int_equal(harness_stop(&agent2), 0);
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
	/* An unknown key waits for lars-dns's answer: allow a loaded machine
	 * (and a sanitizer build) 5 s instead of the tool's default 300 ms. */
	assert_int_equal(lars_out(out, sizeof(out), "get-host 77 77 --timeout 500 --retries 10"),
			 LARS_RET_NOEXIST);
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
	/* Issue 15.6: a key the agent does not know, lars-dns gone: SYSTEM_ERROR
	 * once the agent has seen the connection drop (not NOEXIST). */
	double end = now_ms() + 5000;
	int r;
	while ((r = get_host(31337, 5, NULL)) != LARS_RET_SYSTEM_ERROR && now_ms() < end)
		usleep(50000);
	assert_int_equal(r, LARS_RET_SYSTEM_ERROR);
	/* What lars-dns said last still holds: 5/5 does not exist. */
	assert_int_equal(get_host(5, 5, NULL), LARS_RET_NOEXIST);
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
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	if (!agent_bin || !dns_bin || !rep_bin || !larsctl_bin || !lars_bin) {
		fprintf(stderr, "LARS_AGENT_BIN, LARS_DNS_BIN, LARS_REPORTER_BIN, LARSCTL_BIN and "
				"LARS_BIN must be set\n");
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
		cmocka_unit_test(test_flood_of_unknown_keys),
		cmocka_unit_test(test_api_route_fills_datagram),
		cmocka_unit_test(test_dns_unreachable_is_system_error),
		cmocka_unit_test(test_dns_killed_keeps_serving),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
