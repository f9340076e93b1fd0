// SPDX-License-Identifier: MIT
// lars-dns at fleet scale and under hostile clients, bounded versions of
// what bench/fleet measures in full: 5,000 connections closing at once while
// another one keeps getting answers; a subscriber that stays behind past the
// soft output limit is cut off while another gets every push; and the three
// attacks of issue 17 (non-readers asking for a 100,000-host route,
// pipelining without reading, idle and half-frame connections holding every
// slot): lars-dns stays under its memory ceiling and a legitimate client is
// answered quickly.
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "wire_client.h"

#define BIG_MODID 77 /* 100,000 hosts */
#define BIG_HOSTS 100000
#define MEM_CEILING_KB (32 * 1024) /* growth an attack may cause (documented in dns_svc/README.md) */

static const char *dns_bin, *larsctl_bin;
static harness_pg_t pg;

static void sql_ok(const char *q)
{
	assert_int_equal(harness_sql(q), 0);
}

/* lars-dns with these [dns] keys after the common ones. */
static void spawn_dns(harness_proc_t *p, const char *keys)
{
	char cfg[1024];
	snprintf(cfg, sizeof(cfg), "[dns]\nport = 0\n%s\n[metrics]\nenabled = true\nport = 0\n", keys);
	assert_int_equal(harness_spawn(p, dns_bin, harness_write_config(cfg)), 0);
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* A value from lars-dns's /metrics, -1 if absent. */
static double metric_real(const harness_proc_t *p, const char *name)
{
	return harness_metric(harness_port(p, "metrics"), name);
}

static long long metric(const harness_proc_t *p, const char *name)
{
	return (long long)metric_real(p, name);
}

/* Samples of histogram @hist above 0.1 s: its count less its 0.1 bucket,
 * both from one scrape (two would race a sample taken in between). */
static long long late_samples(const harness_proc_t *p, const char *hist)
{
	static char out[1 << 18];
	if (harness_http_get(harness_port(p, "metrics"), "/metrics", out, sizeof(out)) <= 0)
		return -1;
	char count[128], bucket[128];
	snprintf(count, sizeof(count), "%s_count", hist);
	snprintf(bucket, sizeof(bucket), "%s_bucket{le=\"0.1\"}", hist);
	return (long long)harness_metric_in(out, count) - (long long)harness_metric_in(out, bucket);
}

/* Wait until @name reaches at least @want (≤ @ms); the last value. */
static long long wait_metric(const harness_proc_t *p, const char *name, long long want, int ms)
{
	double end = harness_now_s() + ms / 1000.0;
	long long v;
	while ((v = metric(p, name)) < want && harness_now_s() < end)
		usleep(50000);
	return v;
}

/* GetRoute on @fd: the answer's host count (or -1), its round trip in *msp. */
static int get_route(int fd, int32_t modid, int32_t cmdid, int timeout_ms, double *msp)
{
	double t = harness_now_s();
	if (wc_get_route_send(fd, modid, cmdid))
		return -1;
	wc_route_t r;
	int rc = wc_route_recv(fd, &r, 4u << 20, harness_deadline(timeout_ms), NULL);
	if (msp)
		*msp = (harness_now_s() - t) * 1000;
	if (rc != 1)
		return -1;
	int n = (int)r.n;
	wc_route_free(&r);
	return n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* A legitimate agent from its own address: @n GetRoutes of route 1/1.
 * Every one answered; the median and the worst round trip. */
static void legit_client(int port, int n, double *p50, double *max)
{
	int fd = harness_tcp_connect_from("127.0.0.200", port, 0);
	assert_true(fd >= 0);
	double ms[64];
	assert_true(n <= 64);
	for (int i = 0; i < n; i++) {
		assert_int_equal(get_route(fd, 1, 1, 10000, &ms[i]), 2);
		usleep(5000);
	}
	close(fd);
	qsort(ms, (size_t)n, sizeof(ms[0]), cmp_double);
	*p50 = ms[n / 2];
	*max = ms[n - 1];
}

/* ---- 5,000 connections closing at once ---- */

typedef struct probe {
	int port;
	atomic_bool stop;
	double worst_ms;
	int answered, failed;
	double ms[16384]; /* each answer's round trip */
} probe_t;

/* GetRoute every 2 ms until told to stop (or 30 s). */
static void *probe_run(void *arg)
{
	probe_t *pr = arg;
	int fd = harness_tcp_connect_from("127.0.0.201", pr->port, 0);
	if (fd < 0) {
		pr->failed++;
		return NULL;
	}
	double end = harness_now_s() + 30;
	while (!atomic_load(&pr->stop) && harness_now_s() < end) {
		double ms;
		if (get_route(fd, 1, 1, 5000, &ms) == 2) {
			if (pr->answered < (int)(sizeof(pr->ms) / sizeof(pr->ms[0])))
				pr->ms[pr->answered] = ms;
			pr->answered++;
			if (ms > pr->worst_ms)
				pr->worst_ms = ms;
		} else {
			pr->failed++;
		}
		usleep(2000);
	}
	close(fd);
	return NULL;
}

static void test_mass_close(void **state)
{
	enum { N = 5000, ROUTES = 50 };
	harness_proc_t d;
	spawn_dns(&d, "max_conns = 6000\nmax_conns_per_ip = 6000");
	int port = harness_port(&d, "tcp");
	static int fds[N];
	/* From a few source addresses: 5,000 ephemeral ports on one is fine too. */
	char src[32];
	for (int i = 0; i < N; i++) {
		snprintf(src, sizeof(src), "127.0.1.%d", 1 + i % 50);
		fds[i] = harness_tcp_connect_from(src, port, 0);
		assert_true(fds[i] >= 0);
		assert_int_equal(wc_get_route_send(fds[i], 100, i % ROUTES), 0);
		assert_int_equal(wc_get_route_send(fds[i], 100, (i + 1) % ROUTES), 0);
	}
	for (int i = 0; i < N; i++) {
		wc_route_t r;
		for (int k = 0; k < 2; k++) {
			assert_int_equal(wc_route_recv(fds[i], &r, 1 << 16, harness_deadline(20000), NULL), 1);
			wc_route_free(&r);
		}
	}
	assert_int_equal(wait_metric(&d, "lars_dns_subscriptions", 2 * N, 10000), 2 * N);

	static probe_t pr;
	pr = (probe_t){ .port = port };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, probe_run, &pr), 0);
	usleep(200000);
	/* Samples of the loop-lag histograms later than 100 ms, before the
	 * storm: all of them, and those lars-dns's own work explains (the rest
	 * is its thread waiting for a core on a machine shared with other tests). */
	long long late0 = late_samples(&d, "lars_loop_lag_seconds");
	long long busy0 = late_samples(&d, "lars_loop_lag_busy_seconds");
	for (int i = 0; i < N; i++)
		close(fds[i]);
	/* All of them are gone (the probe's one subscription is left)... */
	double end = harness_now_s() + 20;
	while (metric(&d, "lars_dns_subscriptions") != 1 && harness_now_s() < end)
		usleep(20000);
	usleep(300000);
	long long left = metric(&d, "lars_dns_subscriptions");
	atomic_store(&pr.stop, true);
	pthread_join(th, NULL);
	/* ...and meanwhile lars-dns answered within 100 ms: its own work never
	 * held its loop longer during the storm (the busy part of its lag), and
	 * the probe's answers came in time (its p95: the probe shares a loaded
	 * machine). */
	long long late = late_samples(&d, "lars_loop_lag_seconds") - late0;
	long long busy = late_samples(&d, "lars_loop_lag_busy_seconds") - busy0;
	double lag = metric_real(&d, "lars_loop_lag_max_seconds") * 1000;
	double busy_max = metric_real(&d, "lars_loop_lag_busy_max_seconds") * 1000;
	int n = pr.answered < (int)(sizeof(pr.ms) / sizeof(pr.ms[0])) ? pr.answered
		: (int)(sizeof(pr.ms) / sizeof(pr.ms[0]));
	qsort(pr.ms, (size_t)n, sizeof(pr.ms[0]), cmp_double);
	double p95 = n ? pr.ms[n * 95 / 100] : 0;
	printf("# probe: %d answers (%d failed), p95 %.1f ms, worst %.1f ms while %d connections "
	       "closed; lars-dns loop late by > 100 ms %lld times, by its own work %lld times "
	       "(max since start %.1f ms, its own work %.1f ms); %lld subscriptions left\n",
	       pr.answered, pr.failed, p95, pr.worst_ms, N, late, busy, lag, busy_max, left);
	assert_int_equal(left, 1);
	assert_int_equal(pr.failed, 0);
	assert_true(pr.answered >= 20);
	assert_true(lag >= 0 && busy_max >= 0 && late >= 0);
	assert_int_equal(busy, 0);
	assert_true(p95 <= 100);
	assert_int_equal(harness_stop(&d), 0);
}

/* ---- a subscriber behind past the soft limit ---- */

static void test_slow_subscriber_soft_limit(void **state)
{
	harness_proc_t d;
	/* Hard limit far away: only the soft one (64 KiB for 1 s) can act. */
	spawn_dns(&d, "output_soft_limit = 65536\noutput_soft_seconds = 1\n"
		      "output_hard_limit = 268435456\nmax_conns_per_ip = 100");
	int port = harness_port(&d, "tcp");
	int slow = harness_tcp_connect_from("127.0.2.1", port, 2048);
	int good = harness_tcp_connect_from("127.0.2.2", port, 0);
	assert_int_equal(wc_get_route_send(slow, 60, 1), 0);
	assert_int_equal(get_route(good, 60, 1, 5000, NULL), 0);
	/* 20,000 hosts (~250 KB a push), then changes: megabytes to a peer
	 * that never reads, more than the kernel's buffers hold. */
	sql_ok("INSERT INTO route_data (modid, cmdid, ip, port) "
	       "SELECT 60, 1, '10.0.0.0'::inet + g, 1000 FROM generate_series(1, 20000) g");
	wc_route_t r;
	assert_int_equal(wc_route_recv(good, &r, 4u << 20, harness_deadline(10000), NULL), 1);
	assert_int_equal(r.n, 20000);
	wc_route_free(&r);
	for (int i = 1; i <= 24; i++) {
		char q[128];
		snprintf(q, sizeof(q), "UPDATE route_data SET port = %d WHERE modid = 60", 1000 + i);
		sql_ok(q);
		/* The reader gets every change on time, the last being port 1000+i. */
		int32_t last = 0;
		double end = harness_now_s() + 10;
		do {
			assert_true(harness_now_s() < end);
			assert_int_equal(wc_route_recv(good, &r, 4u << 20, harness_deadline(10000), NULL), 1);
			assert_int_equal(r.n, 20000);
			last = r.hosts[0].port;
			wc_route_free(&r);
		} while (last != 1000 + i);
	}
	/* The one that never read was cut off by the soft limit, not the hard one. */
	assert_int_equal(wait_metric(&d, "lars_tcp_slow_closed_total{listener=\"dns\"}", 1, 10000), 1);
	assert_int_equal(metric(&d, "lars_tcp_write_overflow_total{listener=\"dns\"}"), 0);
	assert_true(harness_wait_eof(slow, 20000));
	close(slow);
	close(good);
	assert_int_equal(harness_stop(&d), 0);
}

/* ---- attacks ---- */

/* 30 connections that never read, each asking 15 times for the
 * 100,000-host route (~1.3 MB an answer). */
static void test_attack_non_readers(void **state)
{
	enum { N = 30, ASKS = 15 };
	harness_proc_t d;
	spawn_dns(&d, "");
	int port = harness_port(&d, "tcp");
	int fd = harness_tcp_connect_from("127.0.3.1", port, 0);
	assert_int_equal(get_route(fd, BIG_MODID, 1, 10000, NULL), BIG_HOSTS);
	close(fd);
	long base = rss_kb(d.pid);

	int fds[N];
	for (int i = 0; i < N; i++) {
		fds[i] = harness_tcp_connect_from("127.0.3.2", port, 4096);
		assert_true(fds[i] >= 0);
		uint8_t buf[ASKS * 32];
		size_t len = 0;
		for (int k = 0; k < ASKS; k++) {
			lars_GetRouteRequest q = { .modid = BIG_MODID, .cmdid = 1 };
			size_t n;
			assert_int_equal(msg_frame_encode(LARS_ID_GET_ROUTE_REQ, lars_GetRouteRequest_fields,
							  &q, buf + len, sizeof(buf) - len, &n), 0);
			len += n;
		}
		assert_int_equal(harness_send_all(fds[i], buf, len), 0);
	}
	usleep(1500000);
	double p50, max;
	legit_client(port, 20, &p50, &max);
	long grew = rss_kb(d.pid) - base;
	long long queued = metric(&d, "lars_tcp_output_bytes{listener=\"dns\"}");
	printf("# non-readers: RSS +%ld KiB, %lld bytes queued; legit GetRoute p50 %.2f ms, max %.1f ms\n",
	       grew, queued, p50, max);
	assert_true(grew <= MEM_CEILING_KB);
	assert_true(queued >= 0 && queued <= 16 << 20);
	assert_true(p50 <= 10);
	assert_true(max <= 1000);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	assert_int_equal(harness_stop(&d), 0);
}

/* 4 connections pipelining 300,000 small requests each without reading. */
static void test_attack_pipelining(void **state)
{
	enum { N = 4, REQS = 300000 };
	harness_proc_t d;
	spawn_dns(&d, "");
	int port = harness_port(&d, "tcp");
	long base = rss_kb(d.pid);
	static uint8_t buf[REQS * 16];
	size_t len = 0;
	for (int k = 0; k < REQS; k++) {
		lars_GetRouteRequest q = { .modid = 100, .cmdid = k % 50 };
		size_t n;
		assert_int_equal(msg_frame_encode(LARS_ID_GET_ROUTE_REQ, lars_GetRouteRequest_fields,
						  &q, buf + len, sizeof(buf) - len, &n), 0);
		len += n;
	}
	int fds[N];
	size_t sent[N];
	for (int i = 0; i < N; i++) {
		fds[i] = harness_tcp_connect_from("127.0.4.1", port, 4096);
		assert_true(fds[i] >= 0);
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
		sent[i] = 0;
	}
	/* As much as lars-dns takes in 3 s: it stops reading a connection
	 * whose answers wait, so the rest stays in the kernel. */
	double end = harness_now_s() + 3;
	while (harness_now_s() < end) {
		bool any = false;
		for (int i = 0; i < N; i++) {
			if (sent[i] == len)
				continue;
			ssize_t k = send(fds[i], buf + sent[i], len - sent[i], MSG_NOSIGNAL);
			if (k > 0) {
				sent[i] += (size_t)k;
				any = true;
			}
		}
		if (!any)
			usleep(10000);
	}
	double p50, max;
	legit_client(port, 20, &p50, &max);
	long grew = rss_kb(d.pid) - base;
	long long frames = metric(&d, "lars_frames_total{listener=\"dns\"}");
	long long queued = metric(&d, "lars_tcp_output_bytes{listener=\"dns\"}");
	printf("# pipelining: %zu+%zu+%zu+%zu bytes sent, %lld frames read, %lld bytes queued, "
	       "RSS +%ld KiB; legit GetRoute p50 %.2f ms, max %.1f ms\n",
	       sent[0], sent[1], sent[2], sent[3], frames, queued, grew, p50, max);
	assert_true(grew <= MEM_CEILING_KB);
	/* Answers wait in the kernel's buffers, not ours: a connection whose
	 * answer is queued is not read until it drains (absent: 0 bytes). */
	assert_true(queued <= N * 1024);
	assert_true(p50 <= 10);
	assert_true(max <= 1000);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	assert_int_equal(harness_stop(&d), 0);
}

/* Idle and half-frame connections holding every slot: the per-address
 * limit keeps one address from taking them all, the deadlines free them. */
static void test_attack_idle_and_half_frames(void **state)
{
	enum { MAX = 100, PER_IP = 30 };
	harness_proc_t d;
	char keys[256];
	snprintf(keys, sizeof(keys), "max_conns = %d\nmax_conns_per_ip = %d\n"
		 "subscribe_timeout = 4\npartial_frame_timeout = 2", MAX, PER_IP);
	spawn_dns(&d, keys);
	int port = harness_port(&d, "tcp");
	int fds[MAX + 20], n = 0;
	/* One address gets PER_IP connections, the rest are closed at once. */
	for (int i = 0; i < PER_IP + 10; i++)
		fds[n++] = harness_tcp_connect_from("127.0.5.1", port, 0);
	assert_int_equal(wait_metric(&d, "lars_tcp_refused_per_ip_total{listener=\"dns\"}", 10, 10000), 10);
	/* Half frames from two more addresses, idle ones from a fourth. */
	static const uint8_t half[5] = { 0, 0, 0, 2, 0 };
	for (int a = 2; a <= 3; a++) {
		char src[32];
		snprintf(src, sizeof(src), "127.0.5.%d", a);
		for (int i = 0; i < PER_IP; i++) {
			fds[n] = harness_tcp_connect_from(src, port, 0);
			assert_int_equal(harness_send_all(fds[n], half, sizeof(half)), 0);
			n++;
		}
	}
	for (int i = 0; i < MAX - 3 * PER_IP; i++)
		fds[n++] = harness_tcp_connect_from("127.0.5.4", port, 0);
	long long open = wait_metric(&d, "lars_tcp_connections{listener=\"dns\"}", MAX, 10000);
	if (open != MAX)
		printf("# open %lld, n %d, per-ip refused %lld, idle %lld, partial %lld\n", open, n,
		       metric(&d, "lars_tcp_refused_per_ip_total{listener=\"dns\"}"),
		       metric(&d, "lars_tcp_timeouts_total{listener=\"dns\",reason=\"idle\"}"),
		       metric(&d, "lars_tcp_timeouts_total{listener=\"dns\",reason=\"partial_frame\"}"));
	assert_int_equal(open, MAX);
	/* Every slot is taken: a new agent is refused, then served once the
	 * deadlines have closed the connections that asked for nothing (the
	 * half frames go first: their deadline is the shorter one, so each is
	 * counted under its own reason). */
	double t0 = harness_now_s(), end = t0 + 15;
	int served = 0;
	while (!served && harness_now_s() < end) {
		int fd = harness_tcp_connect_from("127.0.5.9", port, 0);
		if (fd >= 0) {
			served = get_route(fd, 1, 1, 1000, NULL) == 2;
			close(fd);
		}
		if (!served)
			usleep(100000);
	}
	printf("# idle/half-frame: a new agent served after %.1f s\n", harness_now_s() - t0);
	assert_true(served);
	assert_true(wait_metric(&d, "lars_tcp_timeouts_total{listener=\"dns\",reason=\"partial_frame\"}",
				2 * PER_IP, 10000) >= 2 * PER_IP);
	assert_true(wait_metric(&d, "lars_tcp_timeouts_total{listener=\"dns\",reason=\"idle\"}",
				MAX - 2 * PER_IP, 10000) >= MAX - 2 * PER_IP);
	/* A half-frame connection was closed, not left hanging. */
	assert_true(harness_wait_eof(fds[PER_IP + 10], 5000));
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	assert_int_equal(harness_stop(&d), 0);
}

static int setup(void **state)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max < 6000) {
		fprintf(stderr, "the hard open-file limit %llu is below 6000\n",
			(unsigned long long)rl.rlim_max);
		return -1;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (harness_pg_start(&pg, "dns-fleet", false))
		return -1;
	if (harness_run("%s migrate >/dev/null", larsctl_bin))
		return -1;
	char q[256];
	snprintf(q, sizeof(q), "INSERT INTO route_data (modid, cmdid, ip, port) "
		 "SELECT %d, 1, '10.0.0.0'::inet + g, 80 FROM generate_series(1, %d) g",
		 BIG_MODID, BIG_HOSTS);
	if (harness_sql("INSERT INTO route_data (modid, cmdid, ip, port) VALUES "
			"(1, 1, '127.0.0.1', 9001), (1, 1, '127.0.0.1', 9002)") ||
	    harness_sql("INSERT INTO route_data (modid, cmdid, ip, port) "
			"SELECT 100, g, '10.9.0.1', 1000 + g FROM generate_series(0, 49) g") ||
	    harness_sql(q))
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
	larsctl_bin = getenv("LARSCTL_BIN");
	if (!dns_bin || !larsctl_bin) {
		fprintf(stderr, "LARS_DNS_BIN and LARSCTL_BIN must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mass_close),
		cmocka_unit_test(test_slow_subscriber_soft_limit),
		cmocka_unit_test(test_attack_non_readers),
		cmocka_unit_test(test_attack_pipelining),
		cmocka_unit_test(test_attack_idle_and_half_frames),
	};
	if (getenv("LARS_TEST_FILTER"))
		cmocka_set_test_filter(getenv("LARS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
