// SPDX-License-Identifier: MIT
// lars-reporter end to end, on a PostgreSQL cluster of its own: history sums
// equal exactly what was sent over several connections; PostgreSQL stopped
// for 10 s during a stream of reports loses nothing; bad frames close only
// their connection; a report with 10,000 results is stored; SIGTERM stores
// what is pending before exit; larsctl status shows it.
#include "test.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"

static const char *rep_bin, *larsctl_bin, *cluster;
static char pg_dir[64];
static int pg_port;
static harness_proc_t rep;
static int rep_port;

static void cluster_start(void)
{
	assert_int_equal(harness_cluster_start(cluster, pg_dir, &pg_port), 0);
}

/* One number from SQL (-1 if the database does not answer). */
/* Waits (≤ @ms) until @q returns @want; returns the last value seen. */
/* A ReportStatusRequest frame; results get ports base..base+n-1. */
static uint8_t *report_frame(int32_t modid, int32_t cmdid, int32_t caller, uint32_t ts,
			     size_t n, int base, uint32_t succ, uint32_t err, size_t *lenp)
{
	lars_HostCallResult *res = calloc(n, sizeof(*res));
	for (size_t i = 0; i < n; i++) {
		res[i].ip = 2130706433;
		res[i].port = base + (int)i;
		res[i].succ = succ;
		res[i].err = err;
		res[i].overload = err > succ;
	}
	lars_ReportStatusRequest req = lars_ReportStatusRequest_init_zero;
	req.modid = modid;
	req.cmdid = cmdid;
	req.caller = caller;
	req.ts = ts;
	msg_array_t arr = MSG_RESULTS(res, n);
	msg_array_bind(&arr, &req.results);
	uint8_t *buf;
	assert_int_equal(msg_frame_alloc(LARS_ID_REPORT_STATUS_REQ, lars_ReportStatusRequest_fields,
					 &req, FRAME_TCP_MAX_LIMIT, &buf, lenp), 0);
	free(res);
	return buf;
}

static void send_report(int fd, int32_t modid, int32_t cmdid, int32_t caller, uint32_t ts,
			size_t n, int base, uint32_t succ, uint32_t err)
{
	size_t len;
	uint8_t *buf = report_frame(modid, cmdid, caller, ts, n, base, succ, err, &len);
	assert_int_equal(harness_send_all(fd, buf, len), 0);
	free(buf);
}

static int spawn_reporter(harness_proc_t *p)
{
	const char *cfg = harness_write_config(
		"[reporter]\nport = 0\nmax_frame = 1048576\nflush_interval_ms = 100\n"
		"batch_size = 5000\nshutdown_timeout = 10\n[metrics]\nenabled = true\n");
	return harness_spawn(p, rep_bin, cfg);
}

static int setup(void **state)
{
	snprintf(pg_dir, sizeof(pg_dir), "/tmp/lars-test-rep-%d", (int)getpid());
	cluster_start();
	assert_int_equal(harness_run("%s migrate >/dev/null", larsctl_bin), 0);
	assert_int_equal(spawn_reporter(&rep), 0);
	rep_port = harness_port(&rep, "tcp");
	return 0;
}

static int teardown(void **state)
{
	int r = harness_stop(&rep);
	harness_run("'%s' stop '%s'; rm -rf '%s'", cluster, pg_dir, pg_dir);
	assert_int_equal(r, 0);
	return 0;
}

static void test_history_sums_exact(void **state)
{
	/* 4 connections x 200 reports x 20 results, over two minutes of ts. */
	int fds[4];
	uint32_t t0 = (uint32_t)time(NULL) - 90;
	long long sent = 0;
	for (int c = 0; c < 4; c++)
		fds[c] = harness_tcp_connect(rep_port);
	for (int i = 0; i < 200; i++) {
		for (int c = 0; c < 4; c++) {
			uint32_t succ = (uint32_t)(i % 7 + c), err = (uint32_t)(i % 3);
			send_report(fds[c], 10, c, 0x0a000001 + c, t0 + (uint32_t)i / 2, 20,
				    8000, succ, err);
			sent += 20LL * (succ + err);
		}
	}
	long long got = harness_wait_sql("SELECT sum(succ + err) FROM host_status_history WHERE modid = 10",
				 sent, 15000);
	assert_int_equal(got, sent);
	/* Latest status: one row per (route, host, caller), from the last report. */
	assert_int_equal(harness_sql_num("SELECT count(*) FROM host_status WHERE modid = 10"), 4 * 20);
	assert_int_equal(harness_sql_num("SELECT max(succ) FROM host_status WHERE modid = 10 AND cmdid = 0"),
			 199 % 7);
	assert_true(harness_sql_num("SELECT count(DISTINCT minute) FROM host_status_history WHERE modid = 10") >= 2);
	for (int c = 0; c < 4; c++)
		close(fds[c]);
}

typedef struct stream {
	int fd;
	int n_reports;
	long long sent;
	double seconds;
} stream_t;

static void *stream_thread(void *arg)
{
	stream_t *s = arg;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (int i = 0; i < 100000; i++) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= s->seconds)
			break;
		send_report(s->fd, 11, 1, 0x0a000009, (uint32_t)time(NULL), 10, 9000 + i % 50, 3, 1);
		s->sent += 10 * 4;
		s->n_reports++;
		usleep(2000);
	}
	return NULL;
}

static void test_postgres_down_10s_loses_nothing(void **state)
{
	stream_t s = { .fd = harness_tcp_connect(rep_port), .seconds = 14 };
	pthread_t t;
	pthread_create(&t, NULL, stream_thread, &s);
	sleep(2);
	assert_int_equal(harness_run("'%s' stop '%s'", cluster, pg_dir), 0);
	sleep(10);
	cluster_start();
	pthread_join(t, NULL);
	assert_true(s.n_reports > 100);
	long long got = harness_wait_sql("SELECT sum(succ + err) FROM host_status_history WHERE modid = 11",
				 s.sent, 30000);
	assert_int_equal(got, s.sent);
	close(s.fd);
}

static void test_bad_frames_close_only_offender(void **state)
{
	static const char *const bad[] = {
		"03000000 ffffff7f",      /* 2^31-1 */
		"03000000 00002000",      /* 2 MiB: over max_frame 1 MiB */
		"03000000 ffffffff",      /* negative */
		"01000000 00000000",      /* GetRouteRequest: not served here */
		"03000000 02000000 08ff", /* truncated varint */
		"03000000 03000000 220508", /* result longer than the body */
	};
	int bystander = harness_tcp_connect(rep_port);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = harness_tcp_connect(rep_port);
		uint8_t buf[64];
		size_t n = test_unhex(bad[i], buf, sizeof(buf));
		assert_int_equal(harness_send_all(fd, buf, n), 0);
		if (!harness_wait_eof(fd, 5000))
			fail_msg("case %zu (%s): connection not closed", i, bad[i]);
		close(fd);
	}
	send_report(bystander, 12, 1, 1, (uint32_t)time(NULL), 3, 100, 5, 0);
	assert_int_equal(harness_wait_sql("SELECT sum(succ) FROM host_status_history WHERE modid = 12",
				  15, 10000), 15);
	close(bystander);
}

static void test_ten_thousand_results(void **state)
{
	int fd = harness_tcp_connect(rep_port);
	send_report(fd, 13, 1, 1, (uint32_t)time(NULL), 10000, 1, 1, 0);
	assert_int_equal(harness_wait_sql("SELECT count(*) FROM host_status WHERE modid = 13", 10000, 15000),
			 10000);
	assert_int_equal(harness_sql_num("SELECT sum(succ) FROM host_status_history WHERE modid = 13"), 10000);
	close(fd);
}

static void test_status_command(void **state)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s status 12 1", larsctl_bin);
	FILE *f = popen(cmd, "r");
	char out[4096] = "";
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	assert_int_equal(pclose(f), 0);
	assert_non_null(strstr(out, "127.0.0.1:100"));
	assert_non_null(strstr(out, "0.0.0.1")); /* caller 1 */
	snprintf(cmd, sizeof(cmd), "%s status --history 10 12 >/dev/null", larsctl_bin);
	assert_int_equal(harness_run("%s", cmd), 0);
	assert_int_equal(harness_run("%s status --history 0 2>/dev/null", larsctl_bin), 2);
	assert_int_equal(harness_run("%s status x 2>/dev/null", larsctl_bin), 2);
}

static void test_sigterm_stores_pending(void **state)
{
	/* A second reporter whose database is down: what it holds at SIGTERM
	 * is stored once the database is back within the shutdown timeout. */
	harness_proc_t p;
	assert_int_equal(spawn_reporter(&p), 0);
	int fd = harness_tcp_connect(harness_port(&p, "tcp"));
	assert_int_equal(harness_run("'%s' stop '%s'", cluster, pg_dir), 0);
	send_report(fd, 14, 1, 1, (uint32_t)time(NULL), 50, 1, 2, 1);
	usleep(500000);
	close(fd);
	kill(p.pid, SIGTERM);
	usleep(1000000);
	cluster_start();
	/* It exits once stored (well before the 10 s timeout), with status 0. */
	int status = -1;
	double end = harness_now_s() + 15;
	while (p.pid && harness_now_s() < end) {
		if (waitpid(p.pid, &status, WNOHANG) == p.pid)
			p.pid = 0;
		else
			usleep(100000);
	}
	assert_int_equal(p.pid, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(harness_sql_num("SELECT sum(succ + err) FROM host_status_history WHERE modid = 14"),
			 50 * 3);
}

int main(void)
{
	if (!getenv("LARS_TEST_PG")) {
		fprintf(stderr, "no PostgreSQL for this run (deploy/lars-local test provides one)\n");
		return 77;
	}
	rep_bin = getenv("LARS_REPORTER_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	cluster = getenv("LARS_PG_CLUSTER");
	if (!rep_bin || !larsctl_bin || !cluster) {
		fprintf(stderr, "LARS_REPORTER_BIN, LARSCTL_BIN and LARS_PG_CLUSTER must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_history_sums_exact),
		cmocka_unit_test(test_bad_frames_close_only_offender),
		cmocka_unit_test(test_ten_thousand_results),
		cmocka_unit_test(test_status_command),
		cmocka_unit_test(test_postgres_down_10s_loses_nothing),
		cmocka_unit_test(test_sigterm_stores_pending),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
