// SPDX-License-Identifier: MIT
// lars-dns end to end, against a PostgreSQL cluster of this test's own (so
// it may restart it): answers, pushes after larsctl and after any SQL writer,
// removal pushes an empty list, bad input closes only the offender, 500
// subscribers all get their pushes, and a PostgreSQL restart under a running
// lars-dns: it keeps answering and later pushes a change made after it.
#include "test.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "wire_client.h"

static const char *dns_bin, *larsctl_bin;
static harness_pg_t pg;
static harness_proc_t dns;
static int dns_port;

static void sql_ok(const char *q)
{
	assert_int_equal(harness_sql(q), 0);
}

/* Start again (same port) the cluster that pg_server_down() stopped. */
static void cluster_start(void)
{
	assert_int_equal(harness_pg_server(&pg, "up"), 0);
}

static void pg_server_down(void)
{
	assert_int_equal(harness_pg_server(&pg, "down"), 0);
}

/* ---- the protocol, from an agent's side ---- */

static void send_get_route(int fd, int32_t modid, int32_t cmdid)
{
	assert_int_equal(wc_get_route_send(fd, modid, cmdid), 0);
}

typedef struct route {
	int32_t modid, cmdid;
	size_t n;
	lars_HostInfo hosts[64];
} route_t;

/* 1 with @r filled, 0 on EOF, -1 on timeout; anything else fails the test. */
static int recv_route(int fd, route_t *r, int timeout_ms)
{
	wc_route_t w;
	int rc = wc_route_recv(fd, &w, 1 << 16, harness_deadline(timeout_ms), NULL);
	if (rc == -ETIMEDOUT)
		return -1;
	if (rc < 0)
		fail_msg("no GetRouteResponse from lars-dns: %s", strerror(-rc));
	if (rc == 0)
		return 0;
	assert_true(w.n <= 64);
	r->modid = w.modid;
	r->cmdid = w.cmdid;
	r->n = w.n;
	if (w.n)
		memcpy(r->hosts, w.hosts, w.n * sizeof(lars_HostInfo));
	wc_route_free(&w);
	return 1;
}

static int subscribe(int32_t modid, int32_t cmdid, route_t *first)
{
	int fd = harness_tcp_connect(dns_port);
	assert_true(fd >= 0);
	send_get_route(fd, modid, cmdid);
	assert_int_equal(recv_route(fd, first, 5000), 1);
	assert_int_equal(first->modid, modid);
	assert_int_equal(first->cmdid, cmdid);
	return fd;
}

/* ---- fixture ---- */

static int setup(void **state)
{
	/* A cluster of its own: the tests stop and start it. */
	assert_int_equal(harness_pg_start(&pg, "dns", true), 0);
	assert_int_equal(harness_run("%s migrate >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9002 >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9001 >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_run("%s route add 1 1 10.0.0.1 80 >/dev/null", larsctl_bin), 0);
	const char *cfg = harness_write_config(
		"[dns]\nport = 0\nmax_frame = 4096\npoll_interval_ms = 500\nmax_subscriptions = 100\n"
		"reload_interval = 5\n[metrics]\nenabled = true\nport = 0\n");
	assert_int_equal(harness_spawn(&dns, dns_bin, cfg), 0);
	dns_port = harness_port(&dns, "tcp");
	assert_true(dns_port > 0);
	return 0;
}

static int teardown(void **state)
{
	int r = harness_stop(&dns);
	harness_pg_stop(&pg);
	assert_int_equal(r, 0);
	return 0;
}

/* ---- tests ---- */

static void test_get_route(void **state)
{
	route_t r;
	int fd = subscribe(1, 1, &r);
	assert_int_equal(r.n, 3);
	/* Sorted by address, then port; ip in the wire's number form. */
	assert_int_equal(r.hosts[0].ip, 0x0a000001);
	assert_int_equal(r.hosts[1].ip, 2130706433);
	assert_int_equal(r.hosts[1].port, 9001);
	assert_int_equal(r.hosts[2].port, 9002);
	/* An unknown route is an empty list, and the connection stays. */
	send_get_route(fd, 42, 42);
	assert_int_equal(recv_route(fd, &r, 5000), 1);
	assert_int_equal(r.modid, 42);
	assert_int_equal(r.n, 0);
	/* modid 0 / cmdid 0: an empty body is a valid request. */
	assert_int_equal(harness_send_all(fd, "\x01\0\0\0\0\0\0\0", 8), 0);
	assert_int_equal(recv_route(fd, &r, 5000), 1);
	assert_int_equal(r.modid, 0);
	close(fd);
}

static void test_push_after_larsctl(void **state)
{
	route_t r;
	int fd = subscribe(2, 1, &r);
	assert_int_equal(r.n, 0);
	assert_int_equal(harness_run("%s route add 2 1 127.0.0.1 9100 >/dev/null", larsctl_bin), 0);
	assert_int_equal(recv_route(fd, &r, 5000), 1);
	assert_int_equal(r.modid, 2);
	assert_int_equal(r.cmdid, 1);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.hosts[0].port, 9100);
	/* Deleting the last host pushes an empty list: the route is gone. */
	assert_int_equal(harness_run("%s route del 2 1 127.0.0.1 9100 >/dev/null", larsctl_bin), 0);
	assert_int_equal(recv_route(fd, &r, 5000), 1);
	assert_int_equal(r.modid, 2);
	assert_int_equal(r.n, 0);
	/* A duplicate add changes nothing and pushes nothing. */
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9001 2>/dev/null", larsctl_bin), 0);
	assert_int_equal(recv_route(fd, &r, 1500), -1);
	close(fd);
}

static void test_push_after_any_writer(void **state)
{
	route_t r;
	int fd = subscribe(4, 4, &r);
	sql_ok("INSERT INTO route_data (modid, cmdid, ip, port) VALUES "
	    "(4, 4, '192.168.1.177', 1), (4, 4, '192.168.1.178', 2)");
	assert_int_equal(recv_route(fd, &r, 5000), 1);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.hosts[0].ip, -1062731343); /* 192.168.1.177 */
	/* An UPDATE moves a host: one push with the new list. */
	sql_ok("UPDATE route_data SET port = 3 WHERE modid = 4 AND port = 2");
	assert_int_equal(recv_route(fd, &r, 5000), 1);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.hosts[1].port, 3);
	close(fd);
}

static void test_bad_input_closes_only_offender(void **state)
{
	static const char *const bad[] = {
		"01000000 ffffff7f",        /* msglen 2^31-1 */
		"01000000 00100000",        /* 4 KiB + : over max_frame 4096 */
		"01000000 f6ffffff",        /* negative */
		"05000000 00000000",        /* GetHostResponse: not served here */
		"63000000 00000000",        /* unknown id 99 */
		"01000000 02000000 08ff",   /* truncated varint */
		"01000000 01000000 0f",     /* wire type 7 */
	};
	route_t r;
	int bystander = subscribe(5, 1, &r);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = harness_tcp_connect(dns_port);
		uint8_t buf[64];
		size_t n = test_unhex(bad[i], buf, sizeof(buf));
		assert_int_equal(harness_send_all(fd, buf, n), 0);
		if (!harness_wait_eof(fd, 5000))
			fail_msg("case %zu (%s): connection not closed", i, bad[i]);
		close(fd);
	}
	/* The bystander is still served and still subscribed. */
	send_get_route(bystander, 1, 1);
	assert_int_equal(recv_route(bystander, &r, 5000), 1);
	assert_int_equal(r.n, 3);
	assert_int_equal(harness_run("%s route add 5 1 127.0.0.1 9500 >/dev/null", larsctl_bin), 0);
	assert_int_equal(recv_route(bystander, &r, 5000), 1);
	assert_int_equal(r.modid, 5);
	assert_int_equal(r.n, 1);
	close(bystander);
}

static void test_500_subscribers(void **state)
{
	enum { N = 500 };
	static int fds[N];
	static struct pollfd pfd[N];
	route_t r;

	for (int i = 0; i < N; i++) {
		fds[i] = harness_tcp_connect(dns_port);
		assert_true(fds[i] >= 0);
		send_get_route(fds[i], 100, i);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(recv_route(fds[i], &r, 5000), 1);
		assert_int_equal(r.cmdid, i);
		assert_int_equal(r.n, 0);
	}
	/* One statement changes all 500 routes. */
	sql_ok("INSERT INTO route_data (modid, cmdid, ip, port) "
	    "SELECT 100, g, '127.0.0.1', 10000 + g FROM generate_series(0, 499) g");
	int got = 0;
	bool done[N] = { false };
	/* Bounded by wall-clock time, not by wake-ups: under load poll() may
	 * return for one push at a time. */
	double deadline = harness_now_s() + 60;
	while (got < N && harness_now_s() < deadline) {
		for (int i = 0; i < N; i++)
			pfd[i] = (struct pollfd){ .fd = done[i] ? -1 : fds[i], .events = POLLIN };
		if (poll(pfd, N, 100) <= 0)
			continue;
		for (int i = 0; i < N; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			assert_int_equal(recv_route(fds[i], &r, 5000), 1);
			assert_int_equal(r.cmdid, i);
			assert_int_equal(r.n, 1);
			assert_int_equal(r.hosts[0].port, 10000 + i);
			done[i] = true;
			got++;
		}
	}
	assert_int_equal(got, N);
	for (int i = 0; i < N; i++)
		close(fds[i]);
}

static void test_postgres_restart(void **state)
{
	route_t r;
	int fd = subscribe(6, 1, &r);
	assert_int_equal(r.n, 0);
	pg_server_down();
	/* Down: answers keep coming from the last snapshot. */
	for (int i = 0; i < 3; i++) {
		int q = harness_tcp_connect(dns_port);
		send_get_route(q, 1, 1);
		assert_int_equal(recv_route(q, &r, 5000), 1);
		assert_int_equal(r.n, 3);
		close(q);
		usleep(700000); /* across a few failed version polls */
	}
	cluster_start(); /* same port */
	/* Changed right away, before lars-dns has necessarily reconnected. */
	sql_ok("INSERT INTO route_data (modid, cmdid, ip, port) VALUES (6, 1, '127.0.0.1', 9600)");
	assert_int_equal(recv_route(fd, &r, 15000), 1);
	assert_int_equal(r.modid, 6);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.hosts[0].port, 9600);
	/* And the connection that lived through it is still subscribed. */
	assert_int_equal(harness_run("%s route add 6 1 127.0.0.1 9601 >/dev/null", larsctl_bin), 0);
	assert_int_equal(recv_route(fd, &r, 5000), 1);
	assert_int_equal(r.n, 2);
	close(fd);
}

static void test_refuses_to_start_without_db(void **state)
{
	/* Unreachable at first start: a clear error and exit 1, not an empty
	 * route table served to every agent. */
	harness_proc_t p;
	const char *cfg = harness_write_config(
		"[dns]\nport = 0\n[postgres]\nconninfo = host=127.0.0.1 port=1 connect_timeout=2\n");
	assert_int_not_equal(harness_spawn(&p, dns_bin, cfg), 0);
	assert_int_equal(p.exit_status, 1);
}

typedef struct spawn_arg {
	harness_proc_t p;
	const char *cfg;
	int r;
} spawn_arg_t;

static void *spawn_thread(void *arg)
{
	spawn_arg_t *a = arg;
	a->r = harness_spawn(&a->p, dns_bin, a->cfg);
	return NULL;
}

static void test_wait_for_db(void **state)
{
	/* With wait_for_db it waits for PostgreSQL, then serves. */
	pg_server_down();
	spawn_arg_t a = { .cfg = harness_write_config("[dns]\nport = 0\nwait_for_db = true\n") };
	pthread_t t;
	pthread_create(&t, NULL, spawn_thread, &a);
	usleep(1500000);
	cluster_start();
	pthread_join(t, NULL);
	assert_int_equal(a.r, 0);
	int port = harness_port(&a.p, "tcp");
	int fd = harness_tcp_connect(port);
	route_t r;
	send_get_route(fd, 1, 1);
	assert_int_equal(recv_route(fd, &r, 5000), 1);
	assert_int_equal(r.n, 3);
	close(fd);
	assert_int_equal(harness_stop(&a.p), 0);
}

/* A metric from lars-dns's /metrics (Connection: close: the read ends at EOF). */
static long long dns_metric(const char *name)
{
	static char out[1 << 16];
	int fd = harness_tcp_connect(harness_port(&dns, "metrics"));
	assert_true(fd >= 0);
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	assert_int_equal(harness_send_all(fd, req, sizeof(req) - 1), 0);
	size_t len = 0;
	double end = harness_now_s() + 5;
	while (len < sizeof(out) - 1 && harness_now_s() < end) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t k = recv(fd, out + len, sizeof(out) - 1 - len, 0);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	out[len] = 0;
	close(fd);
	char key[160];
	snprintf(key, sizeof(key), "\n%s ", name);
	const char *p = strstr(out, key);
	return p ? atoll(p + strlen(key)) : -1;
}

static void send_unsubscribe(int fd, int32_t modid, int32_t cmdid)
{
	assert_int_equal(wc_unsubscribe_send(fd, modid, cmdid), 0);
}

static void test_subscription_cap_drops_oldest(void **state)
{
	/* Issue 14.8: max_subscriptions = 100 and one connection asking for 150
	 * keys. The least recently asked go; a new one still subscribes. 700/0
	 * is asked again every 20 keys, so it stays. */
	route_t r;
	long long dropped0 = dns_metric("lars_dns_subscriptions_dropped_total");
	int fd = subscribe(700, 0, &r);
	int asked = 0;
	for (int i = 1; i < 150; i++) {
		send_get_route(fd, 700, i);
		asked++;
		if (i % 20 == 0) {
			send_get_route(fd, 700, 0);
			asked++;
		}
	}
	for (int i = 0; i < asked; i++)
		assert_int_equal(recv_route(fd, &r, 5000), 1);
	long long subs = dns_metric("lars_dns_subscriptions");
	long long dropped = dns_metric("lars_dns_subscriptions_dropped_total") - dropped0;
	fprintf(stderr, "150 keys against max_subscriptions = 100: %lld held, %lld dropped\n",
		subs, dropped);
	assert_true(subs >= 100 && subs <= 100 + 5); /* + other tests' open ones, if any */
	/* The newest (149) and the re-asked (0) are pushed; a dropped one (1) is not. */
	sql_ok("INSERT INTO route_data (modid, cmdid, ip, port) VALUES "
	       "(700, 0, '127.0.0.1', 7000), (700, 1, '127.0.0.1', 7001), "
	       "(700, 149, '127.0.0.1', 7149)");
	bool got0 = false, got149 = false;
	double end = harness_now_s() + 5;
	while (!(got0 && got149) && harness_now_s() < end) {
		if (recv_route(fd, &r, 200) != 1)
			continue;
		assert_int_not_equal(r.cmdid, 1);
		got0 |= r.cmdid == 0 && r.n == 1;
		got149 |= r.cmdid == 149 && r.n == 1;
	}
	assert_true(got0 && got149);
	assert_int_equal(dropped, 50);
	/* Unsubscribed: no push for 149 any more, and the connection stays. */
	send_unsubscribe(fd, 700, 149);
	sql_ok("INSERT INTO route_data (modid, cmdid, ip, port) VALUES "
	       "(700, 149, '127.0.0.1', 7150), (700, 0, '127.0.0.1', 7002)");
	end = harness_now_s() + 5;
	bool again0 = false;
	while (!again0 && harness_now_s() < end) {
		if (recv_route(fd, &r, 200) != 1)
			continue;
		assert_int_not_equal(r.cmdid, 149);
		assert_int_not_equal(r.cmdid, 1);
		again0 = r.cmdid == 0 && r.n == 2;
	}
	assert_true(again0);
	/* 149's push, had there been one, was sent in the same refresh. */
	while (recv_route(fd, &r, 300) == 1)
		assert_int_not_equal(r.cmdid, 149);
	assert_true(dns_metric("lars_dns_unsubscribes_total") >= 1);
	send_get_route(fd, 1, 1);
	assert_int_equal(recv_route(fd, &r, 5000), 1);
	assert_int_equal(r.modid, 1);
	close(fd);
	sql_ok("DELETE FROM route_data WHERE modid = 700");
}

static void test_truncate_pushes_removal(void **state)
{
	/* TRUNCATE fires no row trigger; its own trigger makes lars-dns reload. */
	route_t r;
	int fd = subscribe(1, 1, &r);
	assert_int_equal(r.n, 3);
	sql_ok("TRUNCATE route_data");
	assert_int_equal(recv_route(fd, &r, 5000), 1);
	assert_int_equal(r.modid, 1);
	assert_int_equal(r.n, 0);
	close(fd);
}

int main(void)
{
	if (!getenv("LARS_TEST_PG")) {
		fprintf(stderr, "no PostgreSQL for this run (deploy/lars-local test provides one)\n");
		return 77;
	}
	dns_bin = getenv("LARS_DNS_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	if (!dns_bin || !larsctl_bin) {
		fprintf(stderr, "LARS_DNS_BIN and LARSCTL_BIN must be set\n");
		return 1;
	}
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 2048 && rl.rlim_max >= 2048) {
		rl.rlim_cur = 2048;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_route),
		cmocka_unit_test(test_push_after_larsctl),
		cmocka_unit_test(test_push_after_any_writer),
		cmocka_unit_test(test_bad_input_closes_only_offender),
		cmocka_unit_test(test_500_subscribers),
		cmocka_unit_test(test_postgres_restart),
		cmocka_unit_test(test_refuses_to_start_without_db),
		cmocka_unit_test(test_wait_for_db),
		cmocka_unit_test(test_subscription_cap_drops_oldest),
		cmocka_unit_test(test_truncate_pushes_removal),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
