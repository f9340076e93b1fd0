// SPDX-License-Identifier: MIT
// lars-reporter end to end, on a PostgreSQL cluster of its own: history sums
// equal exactly what was sent over several connections; PostgreSQL stopped
// for 10 s during a stream of reports loses nothing; bad frames close only
// their connection; a report with 10,000 results is stored; SIGTERM stores
// what is pending before exit; larsctl status shows it. Issue 14.6: a
// forged far-future ts neither pins a status nor leaves a history row in
// 2106, the status follows the report received last, an untrusted peer's
// caller is its own address. Issue 14.7: a backlog bigger than the statement
// timeout allows is stored exactly once (capped batches, halved on timeout),
// and SIGTERM counts the batches in flight as not stored. Issue 21: an
// acknowledged agent's messages are acked after the commit and applied once
// when sent twice, to one reporter or to two (two processes, and two store
// transactions at once: the commit guard on report_agent_seq); an original
// agent's running totals give history sums equal to its calls; latency is
// stored and its percentiles read back (lars_lat_quantile, status rows).
#include "test.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <libpq-fe.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "pending.h"
#include "report_store.h"
#include "status.h"
#include "wire_client.h"

static const char *rep_bin, *larsctl_bin;
static harness_pg_t pg; /* a cluster of its own: the tests stop it */
static harness_proc_t rep;
static int rep_port;

/* Start again (same port) the cluster pg_server_down() stopped. */
static void cluster_start(void)
{
	assert_int_equal(harness_pg_server(&pg, "up"), 0);
}

static void pg_server_down(void)
{
	assert_int_equal(harness_pg_server(&pg, "down"), 0);
}

/* One number from SQL (-1 if the database does not answer). */
/* Waits (≤ @ms) until @q returns @want; returns the last value seen. */
/* A ReportStatusRequest; results get ports base..base+n-1. */
static void send_report(int fd, int32_t modid, int32_t cmdid, int32_t caller, uint32_t ts,
			size_t n, int base, uint32_t succ, uint32_t err)
{
	lars_HostCallResult *res = calloc(n, sizeof(*res));
	assert_non_null(res);
	for (size_t i = 0; i < n; i++) {
		res[i].ip = 2130706433;
		res[i].port = base + (int)i;
		res[i].succ = succ;
		res[i].err = err;
		res[i].overload = err > succ;
	}
	assert_int_equal(wc_report_status_send(fd, modid, cmdid, caller, ts, res, n), 0);
	free(res);
}

static int spawn_reporter(harness_proc_t *p)
{
	const char *cfg = harness_write_config(
		"[reporter]\nport = 0\nmax_frame = 1048576\nflush_interval_ms = 100\n"
		"batch_size = 5000\nshutdown_timeout = 10\n[metrics]\nenabled = true\nport = 0\n");
	return harness_spawn(p, rep_bin, cfg);
}

/* A TCP connection to the reporter from the loopback address @src. */
static int connect_from(const char *src, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	inet_pton(AF_INET, src, &a.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* A counter from the reporter's /metrics (the whole line's value), or -1. */
static long long metric(const harness_proc_t *p, const char *name)
{
	static char out[65536];
	ssize_t n = harness_http_get(harness_port(p, "metrics"), "/metrics", out, sizeof(out) - 1);
	if (n < 0)
		return -1;
	out[n] = 0;
	size_t len = strlen(name);
	for (char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, name, len) == 0 && l[len] == ' ')
			return strtoll(l + len + 1, NULL, 10);
	return -1;
}

static int spawn_with(harness_proc_t *p, const char *extra)
{
	char cfg[2048];
	snprintf(cfg, sizeof(cfg),
		 "[reporter]\nport = 0\nmax_frame = 1048576\nflush_interval_ms = 100\n%s"
		 "[metrics]\nenabled = true\nport = 0\n", extra);
	return harness_spawn(p, rep_bin, harness_write_config(cfg));
}

/* SIGTERM, wait ≤ @ms for the exit; returns the exit status or -1. */
static int term_and_wait(harness_proc_t *p, int ms)
{
	kill(p->pid, SIGTERM);
	int status = -1;
	double end = harness_now_s() + ms / 1000.0;
	while (p->pid && harness_now_s() < end) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid)
			p->pid = 0;
		else
			usleep(20000);
	}
	if (p->pid) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &status, 0);
		p->pid = 0;
		return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static int setup(void **state)
{
	assert_int_equal(harness_pg_start(&pg, "reporter", true), 0);
	assert_int_equal(harness_run("%s migrate >/dev/null", larsctl_bin), 0);
	assert_int_equal(spawn_reporter(&rep), 0);
	rep_port = harness_port(&rep, "tcp");
	return 0;
}

static int teardown(void **state)
{
	int r = harness_stop(&rep);
	harness_pg_stop(&pg);
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
	pg_server_down();
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
	pg_server_down();
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

/*
 * 14.6: the attack frame (the agent's caller, 999,999 errors, ts 2^32-1)
 * before the fix set the host's status to 100 % failing, pinned it (newest
 * ts wins) against the agent's later reports, and wrote a history row dated
 * 2106. Now it is refused and counted; real reports keep the status.
 */
static void test_forged_future_ts(void **state)
{
	const int32_t agent = 0x0a000014; /* the agent's caller address */
	uint32_t now = (uint32_t)time(NULL);
	long long refused0 = metric(&rep, "lars_reporter_ts_refused_total{reason=\"future\"}");
	int fd = harness_tcp_connect(rep_port);
	send_report(fd, 20, 1, agent, now, 1, 100, 50, 0);
	assert_int_equal(harness_wait_sql("SELECT sum(succ) FROM host_status_history WHERE modid = 20",
					  50, 10000), 50);
	int evil = harness_tcp_connect(rep_port);
	send_report(evil, 20, 1, agent, UINT32_MAX, 1, 100, 0, 999999);
	send_report(evil, 20, 1, agent, (uint32_t)time(NULL) + 301 + 60, 1, 100, 0, 999999);
	/* The agent's next real report. */
	usleep(300000);
	send_report(fd, 20, 1, agent, (uint32_t)time(NULL), 1, 100, 40, 0);
	assert_int_equal(harness_wait_sql("SELECT sum(succ) FROM host_status_history WHERE modid = 20",
					  90, 10000), 90);
	assert_int_equal(harness_wait_sql("SELECT succ FROM host_status WHERE modid = 20", 40, 10000), 40);
	assert_int_equal(harness_sql_num("SELECT err FROM host_status WHERE modid = 20"), 0);
	assert_int_equal(harness_sql_num("SELECT count(*) FROM host_status WHERE modid = 20"), 1);
	assert_int_equal(harness_sql_num("SELECT coalesce(sum(err), 0) FROM host_status_history WHERE modid = 20"), 0);
	assert_int_equal(harness_sql_num("SELECT count(*) FROM host_status_history "
					 "WHERE minute > now() + interval '1 hour'"), 0);
	assert_int_equal(harness_sql_num("SELECT count(*) FROM host_status WHERE ts > now() + interval '1 hour'"), 0);
	assert_int_equal(metric(&rep, "lars_reporter_ts_refused_total{reason=\"future\"}"), refused0 + 2);
	close(evil);
	close(fd);
}

/*
 * 14.6: the status follows the report received last, not the one claiming
 * the latest time: an earlier ts (within the skew) received later replaces
 * it. A ts far behind keeps its counts, stored under our time.
 */
static void test_status_follows_arrival(void **state)
{
	uint32_t now = (uint32_t)time(NULL);
	int fd = harness_tcp_connect(rep_port);
	send_report(fd, 23, 1, 0x0a000017, now + 200, 1, 100, 5, 5);
	assert_int_equal(harness_wait_sql("SELECT succ FROM host_status WHERE modid = 23", 5, 10000), 5);
	send_report(fd, 23, 1, 0x0a000017, now - 100, 1, 100, 7, 0);
	assert_int_equal(harness_wait_sql("SELECT succ FROM host_status WHERE modid = 23", 7, 10000), 7);
	assert_int_equal(harness_sql_num("SELECT err FROM host_status WHERE modid = 23"), 0);
	/* 1970: the counts are real (a report that waited), its time is ours. */
	long long past0 = metric(&rep, "lars_reporter_ts_refused_total{reason=\"past\"}");
	send_report(fd, 23, 2, 0x0a000017, 1, 1, 100, 3, 0);
	assert_int_equal(harness_wait_sql("SELECT sum(succ) FROM host_status_history WHERE modid = 23 AND cmdid = 2",
					  3, 10000), 3);
	assert_int_equal(harness_sql_num("SELECT count(*) FROM host_status_history WHERE modid = 23 AND cmdid = 2 "
					 "AND minute > now() - interval '10 minutes'"), 1);
	assert_int_equal(metric(&rep, "lars_reporter_ts_refused_total{reason=\"past\"}"), past0 + 1);
	close(fd);
}

/*
 * 14.6: the caller of an untrusted peer is its TCP address. On a loopback-
 * only test machine the peers are 127.0.0.x, so this reporter trusts no
 * loopback (trust_loopback = false) and only 127.0.0.3 as a proxy: a client
 * bound to 127.0.0.2 claiming the agent's caller is stored under
 * 127.0.0.2; the "proxy" 127.0.0.3 is believed.
 */
static void test_caller_from_peer(void **state)
{
	harness_proc_t p;
	assert_int_equal(spawn_with(&p, "trust_loopback = false\ntrusted_proxies = 127.0.0.3, 10.0.0.0/8\n"), 0);
	int port = harness_port(&p, "tcp");
	int a = connect_from("127.0.0.2", port), b = connect_from("127.0.0.3", port);
	uint32_t now = (uint32_t)time(NULL);
	send_report(a, 24, 1, 0x0a000018, now, 1, 100, 0, 999);
	send_report(b, 24, 1, 0x0a000018, now, 1, 100, 8, 0);
	assert_int_equal(harness_wait_sql("SELECT count(*) FROM host_status WHERE modid = 24", 2, 10000), 2);
	assert_int_equal(harness_sql_num("SELECT err FROM host_status WHERE modid = 24 AND caller = '127.0.0.2'"), 999);
	assert_int_equal(harness_sql_num("SELECT succ FROM host_status WHERE modid = 24 AND caller = '10.0.0.24'"), 8);
	assert_int_equal(harness_sql_num("SELECT err FROM host_status WHERE modid = 24 AND caller = '10.0.0.24'"), 0);
	assert_int_equal(metric(&p, "lars_reporter_caller_replaced_total"), 1);
	close(a);
	close(b);
	assert_int_equal(harness_stop(&p), 0);
	/* A bad trusted_proxies is a configuration error (exit 2). */
	harness_proc_t q;
	assert_int_not_equal(spawn_with(&q, "trusted_proxies = 10.0.0.0/33\n"), 0);
}

/* ~@keys distinct keys on modid @modid, @per results per frame. */
static long long send_keys(int fd, int32_t modid, int keys, int per)
{
	long long sent = 0;
	for (int base = 0; base < keys; base += per) {
		int n = keys - base < per ? keys - base : per;
		send_report(fd, modid, base / per, 0x0a000015, (uint32_t)time(NULL), (size_t)n, 1, 2, 1);
		sent += 3LL * n;
	}
	return sent;
}

/*
 * 14.7 scaled down: PostgreSQL is stopped while 120,000 distinct keys
 * arrive; the statement timeout (150 ms here, 30 s in production) is far
 * too short to merge them in one batch. Before: the one batch of everything
 * timed out and was retried whole forever, nothing stored. Now: batches of
 * at most batch_keys, halved after each timeout, store every result exactly
 * once.
 */
static void test_outage_backlog_stored_once(void **state)
{
	harness_proc_t p;
	assert_int_equal(spawn_with(&p, "batch_size = 60000\nbatch_keys = 60000\n"
				    "db_thread_cnt = 2\nshutdown_timeout = 30\n"
				    "[postgres]\nstatement_timeout_ms = 150\n"), 0);
	int fd = harness_tcp_connect(harness_port(&p, "tcp"));
	pg_server_down();
	long long sent = send_keys(fd, 21, 120000, 10000);
	/* The same keys again: coalesced, still counted. */
	sent += send_keys(fd, 21, 20000, 10000);
	usleep(500000);
	cluster_start();
	long long got = harness_wait_sql("SELECT coalesce(sum(succ + err), 0) FROM host_status_history WHERE modid = 21",
					 sent, 120000);
	fprintf(stderr, "outage backlog: %lld of %lld stored, %lld batch timeouts\n", got, sent,
		metric(&p, "lars_reporter_batch_timeouts_total"));
	assert_int_equal(got, sent);
	assert_int_equal(harness_sql_num("SELECT count(*) FROM host_status WHERE modid = 21"), 120000);
	/* Nothing more arrives later (exactly once). */
	usleep(500000);
	assert_int_equal(harness_sql_num("SELECT sum(succ + err) FROM host_status_history WHERE modid = 21"), sent);
	close(fd);
	assert_int_equal(harness_stop(&p), 0);
}

/*
 * 14.7: SIGTERM while the database hangs (a table lock; statements wait):
 * the results in batches already sent are not stored either, and the last
 * line says so. Before: "0 keys (0 results) not stored and 2 batches
 * unfinished", the in-flight results left out.
 */
static void test_sigterm_counts_in_flight(void **state)
{
	harness_proc_t p;
	assert_int_equal(spawn_with(&p, "batch_size = 100\nbatch_keys = 100\ndb_thread_cnt = 2\n"
				    "shutdown_timeout = 2\n[postgres]\nstatement_timeout_ms = 60000\n"), 0);
	/* Its retention run at start goes first (it would wait on the lock too). */
	double end = harness_now_s() + 10;
	while (metric(&p, "lars_db_jobs_total{worker=\"reporter-db\"}") < 1 && harness_now_s() < end)
		usleep(20000);
	assert_true(metric(&p, "lars_db_jobs_total{worker=\"reporter-db\"}") >= 1);
	PGconn *lock = PQconnectdb("");
	assert_int_equal(PQstatus(lock), CONNECTION_OK);
	PQclear(PQexec(lock, "BEGIN"));
	PGresult *res = PQexec(lock, "LOCK TABLE host_status_history IN ACCESS EXCLUSIVE MODE");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	int fd = harness_tcp_connect(harness_port(&p, "tcp"));
	/* 250 keys: two batches of 100 wait on the lock, 50 stay pending. */
	long long sent = send_keys(fd, 22, 250, 250) / 3;
	assert_int_equal(harness_wait_sql("SELECT (count(*) > 0)::int FROM pg_stat_activity "
					  "WHERE wait_event_type = 'Lock' "
					  "AND query LIKE 'INSERT INTO host_status_history%'", 1, 15000), 1);
	close(fd);
	int rc = term_and_wait(&p, 20000);
	char *log = slurp(p.log);
	PQclear(PQexec(lock, "ROLLBACK"));
	PQfinish(lock);
	char want[128];
	snprintf(want, sizeof(want), "shutting down with 250 keys (%lld results) not stored", sent);
	if (!strstr(log, want))
		fail_msg("log lacks \"%s\":\n%s", want, log);
	assert_null(strstr(log, "everything received was stored"));
	assert_int_equal(harness_sql_num("SELECT count(*) FROM host_status_history WHERE modid = 22"), 0);
	assert_int_equal(rc, 0);
	unlink(p.log);
	unlink(p.config);
}

/* ---- issue 21: acknowledged agents, running totals, latency ---- */

/* A message of agent @id, seq @seq: @n results (ports @base..) of @succ each. */
static void send_acked(int fd, uint64_t id, uint64_t seq, bool delta, int32_t modid,
		       size_t n, int base, uint32_t succ)
{
	lars_HostCallResult res[64];
	assert_true(n <= 64);
	for (size_t i = 0; i < n; i++)
		res[i] = (lars_HostCallResult){ .ip = 2130706433, .port = base + (int)i,
						 .succ = succ };
	lars_ReportStatusRequest req = lars_ReportStatusRequest_init_zero;
	req.modid = modid;
	req.cmdid = 1;
	req.caller = 2130706433;
	req.ts = (uint32_t)time(NULL);
	req.agent_id = id;
	req.seq = seq;
	req.delta = delta;
	msg_array_t arr = MSG_RESULTS(res, n);
	msg_array_bind(&arr, &req.results);
	assert_int_equal(wc_send(fd, LARS_ID_REPORT_STATUS_REQ, lars_ReportStatusRequest_fields,
				 &req), 0);
}

/* Acks on @fd until one for @id says @want or more (≤ @ms); the last seq seen. */
static uint64_t wait_ack(int fd, uint64_t id, uint64_t want, int ms)
{
	int64_t deadline = harness_deadline(ms);
	uint64_t last = 0;
	while (last < want) {
		frame_hdr_t h;
		uint8_t body[64];
		int n = wc_recv_frame(fd, &h, body, sizeof(body), deadline);
		if (n <= 0)
			break;
		lars_ReportStatusAck ack = lars_ReportStatusAck_init_zero;
		const char *why;
		assert_int_equal(h.msgid, LARS_ID_REPORT_STATUS_ACK);
		assert_int_equal(msg_decode(lars_ReportStatusAck_fields, &ack, body,
					    (size_t)h.msglen, &why), 0);
		assert_true(ack.agent_id == id);
		assert_true(ack.seq >= last); /* never backwards */
		last = ack.seq;
	}
	return last;
}

static void test_acked_applied_once(void **state)
{
	const uint64_t id = 0xfedcba9876543210ull; /* above INT64_MAX: stored negative */
	int fd = harness_tcp_connect(rep_port);
	for (uint64_t seq = 1; seq <= 5; seq++)
		send_acked(fd, id, seq, true, 40, 10, 1000, 2);
	assert_int_equal(wait_ack(fd, id, 5, 15000), 5);
	assert_int_equal(harness_sql_num("SELECT sum(succ) FROM host_status_history WHERE modid = 40"),
			 5 * 10 * 2);
	assert_int_equal(harness_sql_num("SELECT seq FROM report_agent_seq "
					 "WHERE agent_id = -81985529216486896"), 5);
	/* The acks were lost: the agent sends 3..5 again, on a new connection.
	 * Acked at once, not applied again. */
	close(fd);
	fd = harness_tcp_connect(rep_port);
	for (uint64_t seq = 3; seq <= 6; seq++)
		send_acked(fd, id, seq, true, 40, 10, 1000, 2);
	assert_int_equal(wait_ack(fd, id, 6, 15000), 6);
	assert_int_equal(harness_sql_num("SELECT sum(succ) FROM host_status_history WHERE modid = 40"),
			 6 * 10 * 2);
	close(fd);

	/* A second reporter that never saw the agent: what the first stored is
	 * dropped at the commit (and acked), what is new is applied once. */
	harness_proc_t two;
	assert_int_equal(spawn_reporter(&two), 0);
	fd = harness_tcp_connect(harness_port(&two, "tcp"));
	for (uint64_t seq = 5; seq <= 7; seq++)
		send_acked(fd, id, seq, true, 40, 10, 1000, 2);
	/* 5..7 went as one part and were dropped (6 was stored): acked 6, and
	 * the connection closed, so the agent sends what it holds (7) again
	 * before anything newer. */
	uint64_t got = wait_ack(fd, id, 6, 15000);
	assert_true(got >= 6);
	if (got < 7) {
		assert_true(harness_wait_eof(fd, 15000));
		close(fd);
		fd = harness_tcp_connect(harness_port(&two, "tcp"));
		send_acked(fd, id, 7, true, 40, 10, 1000, 2); /* as the agent does */
		assert_int_equal(wait_ack(fd, id, 7, 15000), 7);
	}
	assert_int_equal(harness_sql_num("SELECT sum(succ) FROM host_status_history WHERE modid = 40"),
			 7 * 10 * 2);
	/* 5 (and what came with it) was dropped at the commit, not applied. */
	assert_true(metric(&two, "lars_reporter_results_skipped_total") >= 10);
	close(fd);
	assert_int_equal(harness_stop(&two), 0);
}

/* One report_store_batch() of agent @id, seq @min..@max, @n keys of modid 41. */
typedef struct guard_job {
	PGconn *conn;
	uint64_t id, min, max;
	report_agent_seq_t a;
	int rc;
} guard_job_t;

static void *guard_store(void *p)
{
	guard_job_t *j = p;
	report_entry_t v[4];
	uint32_t ts = (uint32_t)time(NULL);
	for (int i = 0; i < 4; i++)
		v[i] = (report_entry_t){ .key = { 41, 1, 0x7f000001, 100 + i, 0x7f000001 },
					 .mins = { { .minute = ts - ts % 60, .succ = 3 } },
					 .n_mins = 1, .succ = 3, .ts = ts, .n_results = 1 };
	j->a = (report_agent_seq_t){ .agent_id = j->id, .caller = 0x7f000001,
				     .min_seq = j->min, .max_seq = j->max, .first = 0, .n = 4,
				     .n_results = 4 };
	size_t rows;
	j->rc = report_store_batch(j->conn, v, 4, &j->a, 1, &rows);
	return NULL;
}

static void test_commit_guard_two_stores(void **state)
{
	PGconn *c1 = PQconnectdb(""), *c2 = PQconnectdb("");
	assert_int_equal(PQstatus(c1), CONNECTION_OK);
	assert_int_equal(PQstatus(c2), CONNECTION_OK);
	/* The same batch (agent 77, seq 1..3) through two store transactions. */
	guard_job_t a = { .conn = c1, .id = 77, .min = 1, .max = 3 };
	guard_job_t b = { .conn = c2, .id = 77, .min = 1, .max = 3 };
	guard_store(&a);
	assert_int_equal(a.rc, 0);
	assert_false(a.a.dropped);
	assert_int_equal(a.a.stored, 3);
	guard_store(&b);
	assert_int_equal(b.rc, 0);
	assert_true(b.a.dropped);
	assert_int_equal(b.a.stored, 3);
	assert_int_equal(harness_sql_num("SELECT sum(succ) FROM host_status_history WHERE modid = 41"), 12);
	/* At the same time: the second waits for the first's lock, then drops. */
	PGconn *lk = PQconnectdb("");
	PQclear(PQexec(lk, "BEGIN"));
	PQclear(PQexec(lk, "SELECT 1 FROM report_agent_seq WHERE agent_id = 77 FOR UPDATE"));
	guard_job_t c = { .conn = c1, .id = 77, .min = 4, .max = 9 };
	pthread_t t;
	pthread_create(&t, NULL, guard_store, &c);
	/* Blocked on the row lock (bounded wait for it to get there). */
	assert_int_equal(harness_wait_sql("SELECT count(*) FROM pg_stat_activity "
					  "WHERE wait_event_type = 'Lock' "
					  "AND query LIKE 'INSERT INTO report_agent_seq%'", 1, 15000), 1);
	PQclear(PQexec(lk, "UPDATE report_agent_seq SET seq = 5 WHERE agent_id = 77"));
	PQclear(PQexec(lk, "COMMIT"));
	pthread_join(t, NULL);
	assert_int_equal(c.rc, 0);
	assert_true(c.a.dropped); /* 5 >= 4: stored elsewhere */
	assert_int_equal(c.a.stored, 5);
	guard_job_t d = { .conn = c2, .id = 77, .min = 6, .max = 9 };
	guard_store(&d);
	assert_false(d.a.dropped);
	assert_int_equal(d.a.stored, 9);
	assert_int_equal(harness_sql_num("SELECT sum(succ) FROM host_status_history WHERE modid = 41"), 24);
	assert_int_equal(harness_sql_num("SELECT seq FROM report_agent_seq WHERE agent_id = 77"), 9);
	PQfinish(lk);
	PQfinish(c1);
	PQfinish(c2);
}

static void test_running_totals_original_agent(void **state)
{
	/* The original agent: one report per call with each host's totals
	 * since its window reset; resets every 5 calls here. */
	int fd = harness_tcp_connect(rep_port);
	long long calls = 0;
	uint32_t succ = 0, err = 0;
	for (int i = 0; i < 23; i++) {
		if (i % 5 == 0)
			succ = err = 0; /* window reset */
		if (i % 3 == 0)
			err++;
		else
			succ++;
		calls++;
		lars_HostCallResult r = { .ip = 2130706433, .port = 4200, .succ = succ,
					  .err = err };
		lars_ReportStatusRequest req = lars_ReportStatusRequest_init_zero;
		req.modid = 42;
		req.cmdid = 1;
		req.caller = 2130706433;
		req.ts = (uint32_t)time(NULL);
		msg_array_t arr = MSG_RESULTS(&r, 1);
		msg_array_bind(&arr, &req.results);
		assert_int_equal(wc_send(fd, LARS_ID_REPORT_STATUS_REQ,
					 lars_ReportStatusRequest_fields, &req), 0);
	}
	assert_int_equal(harness_wait_sql("SELECT sum(succ + err) FROM host_status_history WHERE modid = 42",
					  calls, 15000), calls);
	/* The status keeps the last totals as sent. */
	assert_int_equal(harness_sql_num("SELECT succ * 100 + err FROM host_status WHERE modid = 42"),
			 succ * 100 + err);
	close(fd);
}

static void test_latency_stored(void **state)
{
	/* The SQL estimate: bucket 1 (0.5..1 ms) holds the median of 10. */
	assert_int_equal(harness_sql_num("SELECT lars_lat_quantile('{0,10,0,0,0,0,0,0,0,0,0,0,0}', 0.5)"),
			 750);
	assert_int_equal(harness_sql_num("SELECT lars_lat_quantile('{10,0,0,0,0,0,0,0,0,0,0,0,0}', 0.99)"),
			 495);
	assert_int_equal(harness_sql_num("SELECT lars_lat_quantile('{0,0,0,0,0,0,0,0,0,0,0,0,4}', 0.5)"),
			 2000000);
	assert_int_equal(harness_sql_num("SELECT coalesce(lars_lat_quantile('{0,0,0,0,0,0,0,0,0,0,0,0,0}', 0.5), -7)"),
			 -7);
	/* A known distribution through the reporter, in two messages merged
	 * into one minute: 90 calls of 300 us, 9 of 3 ms, 1 of 300 ms. */
	int fd = harness_tcp_connect(rep_port);
	for (int half = 0; half < 2; half++) {
		lars_HostCallResult r = { .ip = 2130706433, .port = 4300, .succ = 50,
					  .lat_buckets_count = MSG_LAT_BUCKETS };
		uint32_t n300 = 45, n3000 = half ? 5 : 4, n300k = half ? 1 : 0;
		r.lat_count = n300 + n3000 + n300k;
		r.lat_sum_us = n300 * 300ull + n3000 * 3000ull + n300k * 300000ull;
		r.lat_buckets[msg_lat_bucket(300)] = n300;
		r.lat_buckets[msg_lat_bucket(3000)] = n3000;
		r.lat_buckets[msg_lat_bucket(300000)] = n300k;
		lars_ReportStatusRequest req = lars_ReportStatusRequest_init_zero;
		req.modid = 43;
		req.cmdid = 1;
		req.caller = 2130706433;
		req.ts = (uint32_t)time(NULL) / 60 * 60 + 1; /* both in one minute */
		req.delta = true;
		msg_array_t arr = MSG_RESULTS(&r, 1);
		msg_array_bind(&arr, &req.results);
		assert_int_equal(wc_send(fd, LARS_ID_REPORT_STATUS_REQ,
					 lars_ReportStatusRequest_fields, &req), 0);
		/* Stored apart, so the second merges into the stored minute. */
		assert_int_equal(harness_wait_sql("SELECT sum(lat_count) FROM host_status_history "
						  "WHERE modid = 43", half ? 100 : 49, 15000),
				 half ? 100 : 49);
	}
	close(fd);
	assert_int_equal(harness_sql_num("SELECT lat_sum_us FROM host_status_history WHERE modid = 43"),
			 90 * 300 + 9 * 3000 + 300000);
	/* p50 in bucket 0 (0..0.5 ms), p99 in the 2..5 ms bucket: within one
	 * bucket of the truth (300 us, 3 ms). */
	long long p50 = harness_sql_num("SELECT p50_us FROM host_status_history WHERE modid = 43");
	long long p90 = harness_sql_num("SELECT p90_us FROM host_status_history WHERE modid = 43");
	long long p99 = harness_sql_num("SELECT p99_us FROM host_status_history WHERE modid = 43");
	assert_true(p50 >= 0 && p50 <= 500);
	assert_true(p90 >= 0 && p90 <= 500);
	assert_true(p99 > 2000 && p99 <= 5000);
	/* And as status rows read them (larsctl, lars-admin). */
	PGconn *c = PQconnectdb("");
	status_filter_t f = { 43, 1 };
	status_minute_t *rows;
	size_t n;
	assert_int_equal(status_history(c, &f, 10, NULL, &rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].lat_count, 100);
	assert_int_equal(rows[0].lat_mean_us, (90 * 300 + 9 * 3000 + 300000) / 100);
	assert_int_equal(rows[0].lat_p99_us, p99);
	free(rows);
	status_caller_t *cr;
	assert_int_equal(status_callers(c, &f, &cr, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(cr[0].lat_count, 100);
	assert_int_equal(cr[0].lat_p99_us, p99);
	free(cr);
	PQfinish(c);
}

int main(void)
{
	if (!getenv("LARS_TEST_PG")) {
		fprintf(stderr, "no PostgreSQL for this run (deploy/lars-local test provides one)\n");
		return 77;
	}
	rep_bin = getenv("LARS_REPORTER_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	if (!rep_bin || !larsctl_bin) {
		fprintf(stderr, "LARS_REPORTER_BIN and LARSCTL_BIN must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_history_sums_exact),
		cmocka_unit_test(test_bad_frames_close_only_offender),
		cmocka_unit_test(test_ten_thousand_results),
		cmocka_unit_test(test_status_command),
		cmocka_unit_test(test_forged_future_ts),
		cmocka_unit_test(test_status_follows_arrival),
		cmocka_unit_test(test_caller_from_peer),
		cmocka_unit_test(test_acked_applied_once),
		cmocka_unit_test(test_commit_guard_two_stores),
		cmocka_unit_test(test_running_totals_original_agent),
		cmocka_unit_test(test_latency_stored),
		cmocka_unit_test(test_sigterm_counts_in_flight),
		cmocka_unit_test(test_outage_backlog_stored_once),
		cmocka_unit_test(test_postgres_down_10s_loses_nothing),
		cmocka_unit_test(test_sigterm_stores_pending),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
