// SPDX-License-Identifier: MIT
// Issue 21.4: statistics that add up, with real processes on a PostgreSQL
// cluster of this test's own. Three apps (threads, each a liblars-client
// client of its own) report a steady stream of calls through a real
// lars-agent to lars-reporter, counting what they sent; then
//   (a) lars-reporter is SIGKILLed mid-stream and started again (same port),
//   (a') the same, after its last acks were lost on the way (a relay
//       swallows them): what it committed comes to it again,
//   (b) lars-reporter is SIGSTOPped for 20 s, then SIGCONTed,
//   (c) PostgreSQL is SIGKILLed mid-stream and started again,
//   (d) an agent with two reporters ([reporter] servers = A, B) loses the
//       one it uses, A (SIGKILL), after A's last acks were lost on the way
//       (a relay swallows them): what A committed comes to B again,
// and after each, once the apps stopped, the agent holds nothing unacked
// and the reporter nothing pending, the history's sum(succ), sum(err) and
// the latency counts equal exactly what the apps sent: nothing lost,
// nothing doubled. (e) A stand-in for the original C++ agent speaks TCP to
// lars-reporter as the original does (one ReportStatusRequest per call with
// each host's running totals since its window reset, no agent_id, no
// delta; windows of WINDOW_S here instead of 15 s, at least two resets):
// the history sums equal its calls. (f) 1,000 calls with durations from a
// known distribution: the stored histogram is exact and p50/p90/p99 are
// within one bucket of the sample's true quantiles.
//
// The one thing the test cannot control is the kernel dropping an app's
// UDP datagram before the agent reads it (a stalled agent on a loaded
// machine, its receive buffer full): those are read from /proc/net/udp
// for the agent's sockets, printed, and taken out of "sent" (normally 0).
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "lars_client.h"
#include "msg.h"
#include "wire_client.h"

/* The p50/p90/p99 columns of host_status_history (deploy/sql/006_report_acks.sql). */
#define COL_P50 "p50_us"
#define COL_P90 "p90_us"
#define COL_P99 "p99_us"

enum {
	N_APPS = 3,
	N_HOSTS = 3,       /* 127.0.0.1:9001..9003 on every key */
	N_CMDS = 2,        /* cmdid 1 and 2 of each scenario's modid */
	APP_PAUSE_US = 1500,
	APP_MAX_CALLS = 200000, /* per app and stream: bounds the loop in count */
	APP_MAX_S = 120,        /* ... and in time */
	QUIET_MS = 120000,      /* after a stream: until everything is acked */
	WINDOW_S = 4,           /* the original agent's window (15 s there) */
	STANDIN_S = 13,         /* > 3 windows: three resets */
	LAT_CALLS = 1000,
};

/* Each scenario its own modid, so each sum is its own. */
enum { MOD_KILL = 101, MOD_STOP = 102, MOD_PG = 103, MOD_FAILOVER = 104, MOD_ORIG = 105,
       MOD_LAT = 106, MOD_KILL_ACKS = 107 };

static const char *dns_bin, *rep_bin, *agent_bin, *larsctl_bin;
static harness_pg_t pg; /* a cluster of its own: (c) SIGKILLs it */
static harness_proc_t dns, rep, agent;
static int dns_port, rep_port, agent_base, agent_metrics;
/* A scenario's own daemons ((d): two reporters and an agent; (e): a
 * reporter), stopped by the teardown too when the scenario failed. */
static harness_proc_t extra[3];

/* ---- daemons and metrics ---- */

static int spawn_reporter_on(harness_proc_t *p, int port)
{
	char cfg[512];
	snprintf(cfg, sizeof(cfg), "[reporter]\nport = %d\nshutdown_timeout = 10\n"
		 "[metrics]\nenabled = true\nport = 0\n", port);
	return harness_spawn(p, rep_bin, harness_write_config(cfg));
}

/* An agent on free UDP ports reporting to @reporters ("servers" value). */
static int spawn_agent(harness_proc_t *p, int *basep, int *metricsp, const char *reporters)
{
	char cfg[1024];
	*basep = harness_free_udp_base();
	snprintf(cfg, sizeof(cfg), "[agent]\nbase_port = %d\n[dnsserver]\nport = %d\n"
		 "[reporter]\nservers = %s\ninterval = 1\n[metrics]\nenabled = true\nport = 0\n",
		 *basep, dns_port, reporters);
	int r = harness_spawn(p, agent_bin, harness_write_config(cfg));
	if (r == 0)
		*metricsp = harness_port(p, "metrics");
	return r;
}

/* The value of the /metrics line @name (the whole name, labels included), or -1. */
static long long metric(int port, const char *name)
{
	return (long long)harness_metric(port, name);
}

/*
 * SIGKILL the reporter @p at a moment it holds results it read but has not
 * committed (pending or in a batch under way; waits ≤ 10 s for one): what
 * a reporter without acknowledgements lost. Return: the keys it held.
 */
static long long kill_holding(harness_proc_t *p)
{
	int m = harness_port(p, "metrics");
	long long held = 0;
	int64_t end = harness_deadline(10000);
	while (held <= 0 && harness_left_ms(end) > 0) {
		held = metric(m, "lars_reporter_pending_keys") + metric(m, "lars_reporter_inflight_keys");
		if (held <= 0)
			usleep(2000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	p->pid = 0;
	return held;
}

/*
 * Datagrams the kernel dropped on the agent's sockets (base..base+2): the
 * last column of /proc/net/udp. Return: the sum, or -1 if unreadable.
 */
static long long udp_drops(int base)
{
	FILE *f = fopen("/proc/net/udp", "r");
	if (!f)
		return -1;
	char line[512];
	long long sum = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned addr, port;
		if (sscanf(line, " %*d: %x:%x", &addr, &port) != 2)
			continue;
		if ((int)port < base || (int)port > base + 2)
			continue;
		const char *last = strrchr(line, ' ');
		if (last)
			sum += strtoll(last + 1, NULL, 10);
	}
	fclose(f);
	return sum;
}

/* ---- the apps ---- */

typedef struct app {
	pthread_t thread;
	int id, base;
	int32_t modid;
	_Atomic bool *stop;
	_Atomic long long calls; /* reports sent so far (progress, read by the main thread) */
	long long succ, err, lat_n, lat_sum; /* sent: what the history must hold */
	long long refused;                   /* lars_report_latency() failed: not sent */
	int init_rc;
} app_t;

typedef struct stream {
	_Atomic bool stop;
	bool running; /* threads to join */
	app_t app[N_APPS];
	long long drops0;
	double t0;
} stream_t;

/* The stream under way: static, as its threads outlive a failed test's frame. */
static stream_t stream;

/* A call's outcome and duration from its index, the same for every run. */
static bool call_fails(long long i, int id)
{
	return (i + id) % 5 == 0;
}

static uint32_t call_latency(long long i, int id)
{
	if ((i + id) % 3 == 0)
		return 0; /* not measured */
	return 1 + (uint32_t)((i * 7919 + id * 104729) % 300000);
}

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
	lars_host_t hosts[N_CMDS][N_HOSTS];
	for (int k = 0; k < N_CMDS; k++) {
		size_t n = 0;
		/* The agent pulls the route from lars-dns: wait for it in time. */
		int64_t end = harness_deadline(15000);
		a->init_rc = LARS_NOEXIST;
		while (harness_left_ms(end) > 0) {
			if (lars_reg_init(c, a->modid, k + 1) == LARS_SUCC &&
			    lars_get_route(c, a->modid, k + 1, hosts[k], N_HOSTS, &n) == LARS_SUCC &&
			    n == N_HOSTS) {
				a->init_rc = 0;
				break;
			}
			usleep(50000);
		}
		if (a->init_rc)
			goto out;
	}
	double end = harness_now_s() + APP_MAX_S;
	for (long long i = 0; i < APP_MAX_CALLS && !*a->stop && harness_now_s() < end; i++) {
		int k = (int)(i % N_CMDS);
		const lars_host_t *h = &hosts[k][(i / N_CMDS) % N_HOSTS];
		bool fails = call_fails(i, a->id);
		uint32_t lat = call_latency(i, a->id);
		if (lars_report_latency(c, a->modid, k + 1, h, fails ? LARS_OVERLOAD : LARS_SUCC,
					lat) != LARS_SUCC) {
			a->refused++;
		} else {
			if (fails)
				a->err++;
			else
				a->succ++;
			if (lat) {
				a->lat_n++;
				a->lat_sum += lat;
			}
		}
		a->calls++;
		usleep(APP_PAUSE_US);
	}
out:
	lars_client_free(c);
	return NULL;
}

/* Stop and join the apps of @s if they run (after a failure, too). */
static void stream_join(stream_t *s)
{
	if (!s->running)
		return;
	s->stop = true;
	for (int i = 0; i < N_APPS; i++)
		pthread_join(s->app[i].thread, NULL);
	s->running = false;
}

static void stream_start(stream_t *s, int base, int32_t modid)
{
	stream_join(s);
	memset(s, 0, sizeof(*s));
	s->drops0 = udp_drops(base);
	s->t0 = harness_now_s();
	for (int i = 0; i < N_APPS; i++) {
		app_t *a = &s->app[i];
		a->id = i;
		a->base = base;
		a->modid = modid;
		a->stop = &s->stop;
		assert_int_equal(pthread_create(&a->thread, NULL, app_main, a), 0);
	}
	s->running = true;
}

/* Wait (≤ @ms) until every app made @n calls: the stream runs. */
static void stream_wait_calls(stream_t *s, long long n, int ms)
{
	int64_t end = harness_deadline(ms);
	for (int i = 0; i < N_APPS; i++) {
		while (s->app[i].calls < n && harness_left_ms(end) > 0)
			usleep(20000);
		if (s->app[i].calls < n)
			fail_msg("app %d made %lld calls of %lld (init %d)", i,
				 (long long)s->app[i].calls, n, s->app[i].init_rc);
	}
}

typedef struct totals {
	long long succ, err, lat_n, lat_sum, drops;
	double stream_s, quiet_s; /* how long the apps sent; then until all was acked */
} totals_t;

static totals_t stream_stop(stream_t *s, int base)
{
	totals_t t = { 0 };
	stream_join(s);
	for (int i = 0; i < N_APPS; i++) {
		app_t *a = &s->app[i];
		assert_int_equal(a->init_rc, 0);
		assert_int_equal(a->refused, 0);
		t.succ += a->succ;
		t.err += a->err;
		t.lat_n += a->lat_n;
		t.lat_sum += a->lat_sum;
	}
	t.drops = udp_drops(base) - s->drops0;
	t.stream_s = harness_now_s() - s->t0;
	return t;
}

/*
 * After a stream: wait (≤ QUIET_MS) until the agent read @want reports
 * more than @reports0, holds no counts (buffered or unacked) and the
 * reporter on @rep_metrics has nothing pending or in flight.
 */
static void wait_quiet(int agent_m, long long reports0, long long want, int rep_metrics)
{
	int64_t end = harness_deadline(QUIET_MS);
	long long got = -1, buffered = -1, unacked = -1, pending = -1, inflight = -1;
	while (harness_left_ms(end) > 0) {
		got = metric(agent_m, "lars_agent_reports_total") - reports0;
		buffered = metric(agent_m, "lars_agent_report_buffered_hosts");
		unacked = metric(agent_m, "lars_agent_reports_unacked");
		pending = metric(rep_metrics, "lars_reporter_pending_keys");
		inflight = metric(rep_metrics, "lars_reporter_inflight_keys");
		if (got == want && buffered == 0 && unacked == 0 && pending == 0 && inflight == 0)
			return;
		usleep(100000);
	}
	fail_msg("not quiet within %d ms: agent read %lld of %lld reports, %lld hosts buffered, "
		 "%lld unacked; reporter %lld keys pending, %lld in flight",
		 QUIET_MS, got, want, buffered, unacked, pending, inflight);
}

static long long history(const char *what, int32_t modid)
{
	char q[256];
	snprintf(q, sizeof(q), "SELECT coalesce(sum(%s), 0) FROM host_status_history WHERE modid = %d",
		 what, modid);
	return harness_sql_num(q);
}

/*
 * The check after each fault: the history of @modid holds exactly @t
 * (less what the kernel dropped before the agent read it, when it did).
 */
static void check_exact(const char *fault, int32_t modid, const totals_t *t)
{
	long long succ = history("succ", modid), err = history("err", modid);
	long long lat_n = history("lat_count", modid), lat_sum = history("lat_sum_us", modid);
	long long sent = t->succ + t->err;
	fprintf(stderr, "report-exact %s: sent %lld stored %lld (succ %lld/%lld, err %lld/%lld, "
		"latencies %lld/%lld, sum %lld/%lld us; %lld datagrams dropped by the kernel; "
		"apps sent for %.1f s, all acked %.1f s later)\n",
		fault, sent, succ + err, t->succ, succ, t->err, err, t->lat_n, lat_n, t->lat_sum,
		lat_sum, t->drops, t->stream_s, t->quiet_s);
	if (t->drops == 0) {
		assert_int_equal(succ, t->succ);
		assert_int_equal(err, t->err);
		assert_int_equal(lat_n, t->lat_n);
		assert_int_equal(lat_sum, t->lat_sum);
	} else {
		/* Which calls were lost is unknown: only the total is exact. */
		assert_int_equal(succ + err, sent - t->drops);
	}
}

/* ---- an ack sink, for (d) ---- */

/*
 * A TCP relay in front of reporter A that passes the agent's reports on
 * and, once told to swallow, drops what A sends back (its acks): A
 * commits, the agent never learns it, as when A dies between its COMMIT
 * and the ack. One agent connection at a time; it ends with either side.
 */
typedef struct ack_sink {
	pthread_t thread;
	int lfd, port, upstream;
	_Atomic bool quit, swallow;
	_Atomic long long swallowed; /* bytes from A not passed on */
} ack_sink_t;

static ack_sink_t sink;

static void *sink_main(void *arg)
{
	ack_sink_t *k = arg;
	int cfd = -1, ufd = -1;
	char buf[65536];
	while (!k->quit) {
		struct pollfd pf[3] = { { .fd = k->lfd, .events = POLLIN },
					{ .fd = cfd, .events = POLLIN },
					{ .fd = ufd, .events = POLLIN } };
		if (poll(pf, 3, 100) <= 0)
			continue;
		if (pf[0].revents & POLLIN) {
			int fd = accept4(k->lfd, NULL, NULL, SOCK_CLOEXEC);
			int up = fd < 0 || cfd >= 0 ? -1 : harness_tcp_connect(k->upstream);
			if (up < 0) {
				if (fd >= 0)
					close(fd);
			} else {
				cfd = fd;
				ufd = up;
			}
		}
		bool end = false;
		if (cfd >= 0 && pf[1].revents) {
			ssize_t n = recv(cfd, buf, sizeof(buf), 0);
			end = n <= 0 || harness_send_all(ufd, buf, (size_t)n) != 0;
		}
		if (!end && ufd >= 0 && pf[2].revents) {
			ssize_t n = recv(ufd, buf, sizeof(buf), 0);
			end = n <= 0;
			if (n > 0 && k->swallow)
				k->swallowed += n;
			else if (n > 0)
				end = harness_send_all(cfd, buf, (size_t)n) != 0;
		}
		if (end) {
			close(cfd);
			close(ufd);
			cfd = ufd = -1;
		}
	}
	if (cfd >= 0) {
		close(cfd);
		close(ufd);
	}
	return NULL;
}

static void sink_start(ack_sink_t *k, int upstream)
{
	memset(k, 0, sizeof(*k));
	k->upstream = upstream;
	k->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	assert_int_equal(bind(k->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(k->lfd, 8), 0);
	assert_int_equal(getsockname(k->lfd, (struct sockaddr *)&a, &len), 0);
	k->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&k->thread, NULL, sink_main, k), 0);
}

static void sink_stop(ack_sink_t *k)
{
	if (k->lfd <= 0)
		return;
	k->quit = true;
	pthread_join(k->thread, NULL);
	close(k->lfd);
	k->lfd = 0;
}

/* ---- fixture ---- */

static int setup(void **state)
{
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	assert_int_equal(harness_pg_start(&pg, "report_exact", true), 0);
	assert_int_equal(harness_run("%s migrate >/dev/null", larsctl_bin), 0);
	/* Every scenario's routes: cmdid 1 and 2, three hosts each. */
	assert_int_equal(harness_sql("INSERT INTO route_data (modid, cmdid, ip, port) "
				     "SELECT m, c, '127.0.0.1', 9000 + h FROM generate_series(101, 107) m, "
				     "generate_series(1, 2) c, generate_series(1, 3) h"), 0);
	assert_int_equal(harness_spawn(&dns, dns_bin, harness_write_config(
		"[dns]\nport = 0\npoll_interval_ms = 300\n")), 0);
	dns_port = harness_port(&dns, "tcp");
	rep_port = harness_free_tcp_port();
	assert_int_equal(spawn_reporter_on(&rep, rep_port), 0);
	char servers[64];
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", rep_port);
	assert_int_equal(spawn_agent(&agent, &agent_base, &agent_metrics, servers), 0);
	return 0;
}

/* After each test, passed or failed: its apps, relay and daemons of its own stopped. */
static int cleanup(void **state)
{
	stream_join(&stream);
	sink_stop(&sink);
	for (int i = 0; i < 3; i++)
		if (extra[i].pid > 0)
			harness_stop(&extra[i]);
	return 0;
}

static int teardown(void **state)
{
	cleanup(state);
	int ra = harness_stop(&agent), rr = harness_stop(&rep), rd = harness_stop(&dns);
	harness_pg_stop(&pg);
	assert_int_equal(ra, 0);
	assert_int_equal(rr, 0);
	assert_int_equal(rd, 0);
	return 0;
}

/* Nothing counted as dropped or unknown by the agent during a scenario. */
typedef struct agent_marks {
	long long reports, dropped, unknown, resent;
} agent_marks_t;

static agent_marks_t agent_mark(int m)
{
	return (agent_marks_t){
		.reports = metric(m, "lars_agent_reports_total"),
		.dropped = metric(m, "lars_agent_reports_dropped_total"),
		.unknown = metric(m, "lars_agent_reports_unknown_host_total"),
		.resent = metric(m, "lars_agent_reports_resent_total"),
	};
}

static void finish(const char *fault, int m, const agent_marks_t *m0, stream_t *s, int base,
		   int rep_m, int32_t modid)
{
	totals_t t = stream_stop(s, base);
	double q0 = harness_now_s();
	wait_quiet(m, m0->reports, t.succ + t.err - t.drops, rep_m);
	t.quiet_s = harness_now_s() - q0;
	assert_int_equal(metric(m, "lars_agent_reports_dropped_total"), m0->dropped);
	assert_int_equal(metric(m, "lars_agent_reports_unknown_host_total"), m0->unknown);
	fprintf(stderr, "report-exact %s: the agent sent %lld messages again; the reporter now "
		"in use took %lld duplicates in, skipped %lld results as stored elsewhere (counts of "
		"this reporter process)\n", fault,
		metric(m, "lars_agent_reports_resent_total") - m0->resent,
		metric(rep_m, "lars_reporter_reports_duplicate_total"),
		metric(rep_m, "lars_reporter_results_skipped_total"));
	check_exact(fault, modid, &t);
}

/* ---- (a) lars-reporter SIGKILLed and started again ---- */

static void test_reporter_sigkill(void **state)
{
	stream_t *s = &stream;
	agent_marks_t m0 = agent_mark(agent_metrics);
	stream_start(s, agent_base, MOD_KILL);
	stream_wait_calls(s, 1000, 30000);
	long long held = kill_holding(&rep);
	fprintf(stderr, "report-exact (a): lars-reporter SIGKILLed holding %lld keys\n", held);
	sleep(2);
	assert_int_equal(spawn_reporter_on(&rep, rep_port), 0); /* same port */
	stream_wait_calls(s, s->app[0].calls + 1000, 30000);
	finish("(a) lars-reporter SIGKILL+restart", agent_metrics, &m0, s, agent_base,
	       harness_port(&rep, "metrics"), MOD_KILL);
}

/* ---- (b) lars-reporter SIGSTOPped for 20 s ---- */

static void test_reporter_sigstop_20s(void **state)
{
	stream_t *s = &stream;
	agent_marks_t m0 = agent_mark(agent_metrics);
	stream_start(s, agent_base, MOD_STOP);
	stream_wait_calls(s, 1000, 30000);
	assert_int_equal(kill(rep.pid, SIGSTOP), 0);
	sleep(20);
	assert_int_equal(kill(rep.pid, SIGCONT), 0);
	stream_wait_calls(s, s->app[0].calls + 1000, 30000);
	finish("(b) lars-reporter SIGSTOP 20 s", agent_metrics, &m0, s, agent_base,
	       harness_port(&rep, "metrics"), MOD_STOP);
}

/* ---- (c) PostgreSQL SIGKILLed and started again ---- */

static void test_postgres_sigkill(void **state)
{
	stream_t *s = &stream;
	agent_marks_t m0 = agent_mark(agent_metrics);
	stream_start(s, agent_base, MOD_PG);
	stream_wait_calls(s, 1000, 30000);
	assert_int_equal(harness_pg_server(&pg, "kill"), 0);
	stream_wait_calls(s, s->app[0].calls + 2000, 30000);
	assert_int_equal(harness_pg_server(&pg, "up"), 0); /* same port */
	stream_wait_calls(s, s->app[0].calls + 1000, 30000);
	finish("(c) PostgreSQL SIGKILL+restart", agent_metrics, &m0, s, agent_base,
	       harness_port(&rep, "metrics"), MOD_PG);
}

/* ---- (d) two reporters, the one in use killed ---- */

/*
 * Reporter A behind the ack sink is SIGKILLed after its last acks were
 * lost: what it committed meanwhile reaches a reporter again, which must
 * leave it out and store the rest. @failover: the agent's second server B
 * takes over ((d)); else A is started again on its port ((a'), as (a) but
 * killed between its COMMIT and the ack).
 */
static void acks_lost_then_kill(bool failover, int32_t modid, const char *fault)
{
	harness_proc_t *r = extra, *ag = &extra[2];
	int port[2], m[2], base, am;
	for (int i = 0; i < (failover ? 2 : 1); i++) {
		port[i] = harness_free_tcp_port();
		assert_int_equal(spawn_reporter_on(&r[i], port[i]), 0);
		m[i] = harness_port(&r[i], "metrics");
	}
	/* The agent's first server: A behind the sink. */
	sink_start(&sink, port[0]);
	char servers[64];
	if (failover)
		snprintf(servers, sizeof(servers), "127.0.0.1:%d, 127.0.0.1:%d", sink.port, port[1]);
	else
		snprintf(servers, sizeof(servers), "127.0.0.1:%d", sink.port);
	assert_int_equal(spawn_agent(ag, &base, &am, servers), 0);
	stream_t *s = &stream;
	agent_marks_t m0 = agent_mark(am);
	stream_start(s, base, modid);
	stream_wait_calls(s, 500, 30000);
	/* A acks (the agent knows it is ours), then its acks are lost. */
	int64_t end = harness_deadline(15000);
	while (metric(am, "lars_agent_reports_acked_total") <= 0 && harness_left_ms(end) > 0)
		usleep(20000);
	assert_true(metric(am, "lars_agent_reports_acked_total") > 0);
	if (failover)
		assert_int_equal(metric(m[1], "lars_reporter_reports_total"), 0);
	sink.swallow = true;
	long long a_stored0 = metric(m[0], "lars_reporter_results_stored_total");
	/* A commits more that the agent never sees acked (under ack_timeout). */
	end = harness_deadline(15000);
	while (metric(m[0], "lars_reporter_results_stored_total") == a_stored0 &&
	       harness_left_ms(end) > 0)
		usleep(20000);
	stream_wait_calls(s, s->app[0].calls + 700, 30000);
	long long a_stored = metric(m[0], "lars_reporter_results_stored_total");
	long long unacked = metric(am, "lars_agent_reports_unacked");
	long long held = kill_holding(&r[0]);
	fprintf(stderr, "report-exact %s: reporter A SIGKILLed holding %lld keys; it stored %lld "
		"results since its acks were lost (%lld bytes), the agent holds %lld messages "
		"unacked\n", fault, held, a_stored - a_stored0, (long long)sink.swallowed, unacked);
	int now = 1; /* the reporter in use now */
	if (!failover) {
		unlink(r[0].log);
		unlink(r[0].config);
		sleep(1);
		sink.swallow = false; /* the new A's acks pass */
		assert_int_equal(spawn_reporter_on(&r[0], port[0]), 0);
		m[0] = harness_port(&r[0], "metrics");
		now = 0;
	}
	stream_wait_calls(s, s->app[0].calls + 2000, 30000);
	finish(fault, am, &m0, s, base, m[now], modid);
	/* A's committed messages came again and were left out. */
	long long dup = metric(m[now], "lars_reporter_reports_duplicate_total");
	long long skipped = metric(m[now], "lars_reporter_results_skipped_total");
	assert_true(a_stored > a_stored0 && unacked > 0);
	assert_true(dup + skipped > 0);
	assert_int_equal(harness_stop(ag), 0);
	assert_int_equal(harness_stop(&r[now]), 0);
	sink_stop(&sink);
	if (failover) {
		unlink(r[0].log);
		unlink(r[0].config);
	}
}

static void test_reporter_sigkill_acks_lost(void **state)
{
	acks_lost_then_kill(false, MOD_KILL_ACKS, "(a') lars-reporter SIGKILL after lost acks+restart");
}

static void test_failover_two_reporters(void **state)
{
	acks_lost_then_kill(true, MOD_FAILOVER, "(d) failover, reporter A of A, B SIGKILLed");
}

/* ---- (e) the original agent's running totals ---- */

typedef struct orig_host {
	uint32_t succ, err; /* since the window reset */
} orig_host_t;

/*
 * One ReportStatusRequest as the original agent sends it: no agent_id, no
 * seq, no delta marker (wc_report_status_send() marks its counts deltas).
 */
static int orig_send(int fd, int32_t modid, int32_t cmdid, int32_t caller,
		     const lars_HostCallResult *res, size_t n)
{
	lars_ReportStatusRequest req = lars_ReportStatusRequest_init_zero;
	req.modid = modid;
	req.cmdid = cmdid;
	req.caller = caller;
	req.ts = (uint32_t)time(NULL);
	msg_array_t arr = MSG_RESULTS(res, n);
	msg_array_bind(&arr, &req.results);
	return wc_send(fd, LARS_ID_REPORT_STATUS_REQ, lars_ReportStatusRequest_fields, &req);
}

/*
 * The original C++ agent as captured: every app call sends one
 * ReportStatusRequest of the route's hosts with their running totals since
 * the window reset, no agent_id, no delta; totals go back to 0 every window.
 */
static void test_original_agent_totals(void **state)
{
	/* A reporter of its own: its counts are the stand-in's only. */
	harness_proc_t *r = &extra[0];
	assert_int_equal(spawn_reporter_on(r, 0), 0);
	int fd = harness_tcp_connect(harness_port(r, "tcp"));
	assert_true(fd >= 0);
	const int rm = harness_port(r, "metrics");
	long long msgs0 = metric(rm, "lars_reporter_reports_total");
	orig_host_t h[N_HOSTS] = { 0 };
	long long succ = 0, err = 0, calls = 0, resets = 0;
	double start = harness_now_s(), window = start;
	while (harness_now_s() - start < STANDIN_S && calls < 100000) {
		if (harness_now_s() - window >= WINDOW_S) {
			memset(h, 0, sizeof(h));
			window += WINDOW_S;
			resets++;
		}
		int i = (int)(calls % N_HOSTS);
		bool fails = (calls / N_HOSTS) % 4 == 1;
		if (fails) {
			h[i].err++;
			err++;
		} else {
			h[i].succ++;
			succ++;
		}
		lars_HostCallResult res[N_HOSTS];
		for (int j = 0; j < N_HOSTS; j++)
			res[j] = (lars_HostCallResult){ .ip = 0x7f000001, .port = 9001 + j,
							 .succ = h[j].succ, .err = h[j].err,
							 .overload = false };
		assert_int_equal(orig_send(fd, MOD_ORIG, 1, 0x0a0000e1, res, N_HOSTS), 0);
		calls++;
		usleep(8000);
	}
	assert_true(resets >= 2);
	/* Everything read, nothing pending or in flight, then the sums. */
	int64_t end = harness_deadline(QUIET_MS);
	while (harness_left_ms(end) > 0 &&
	       !(metric(rm, "lars_reporter_reports_total") - msgs0 == calls &&
		 metric(rm, "lars_reporter_pending_keys") == 0 &&
		 metric(rm, "lars_reporter_inflight_keys") == 0))
		usleep(100000);
	assert_int_equal(metric(rm, "lars_reporter_reports_total") - msgs0, calls);
	long long s_succ = history("succ", MOD_ORIG), s_err = history("err", MOD_ORIG);
	fprintf(stderr, "report-exact (e) original-agent stand-in (%lld windows of %d s): "
		"sent %lld stored %lld (succ %lld/%lld, err %lld/%lld) in %lld messages\n",
		resets + 1, WINDOW_S, succ + err, s_succ + s_err, succ, s_succ, err, s_err, calls);
	fprintf(stderr, "report-exact (e): the reporter saw %lld window resets\n",
		metric(rm, "lars_reporter_total_resets_total"));
	assert_int_equal(s_succ, succ);
	assert_int_equal(s_err, err);
	/* The latest status keeps its meaning: the last totals sent. */
	for (int j = 0; j < N_HOSTS; j++) {
		char q[256];
		snprintf(q, sizeof(q), "SELECT succ * 1000000 + err FROM host_status "
			 "WHERE modid = %d AND port = %d", MOD_ORIG, 9001 + j);
		assert_int_equal(harness_sql_num(q), (long long)h[j].succ * 1000000 + h[j].err);
	}
	close(fd);
	assert_int_equal(harness_stop(r), 0);
}

/* ---- (f) latency percentiles ---- */

/* The distribution: buckets and their shares of LAT_CALLS, uniform inside. */
static const struct {
	unsigned bucket, calls;
} lat_plan[] = {
	{ 1, 300 }, /* (0.5, 1] ms */
	{ 2, 250 }, /* (1, 2] ms */
	{ 4, 250 }, /* (5, 10] ms */
	{ 6, 150 }, /* (20, 50] ms */
	{ 8, 50 },  /* (100, 200] ms */
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The sample's q-quantile: the value at rank ceil(q * n). */
static uint32_t true_quantile(const uint32_t *sorted, size_t n, double q)
{
	size_t rank = (size_t)ceil(q * (double)n);
	return sorted[rank ? rank - 1 : 0];
}

static void test_latency_percentiles(void **state)
{
	static uint32_t lat[LAT_CALLS], sorted[LAT_CALLS];
	long long buckets[MSG_LAT_BUCKETS] = { 0 }, sum = 0;
	unsigned seed = (unsigned)time(NULL);
	size_t n = 0;
	for (size_t p = 0; p < sizeof(lat_plan) / sizeof(lat_plan[0]); p++) {
		uint32_t lo = msg_lat_bounds_us[lat_plan[p].bucket - 1] + 1;
		uint32_t hi = msg_lat_bounds_us[lat_plan[p].bucket];
		for (unsigned i = 0; i < lat_plan[p].calls; i++)
			lat[n++] = lo + (uint32_t)(rand_r(&seed) % (hi - lo + 1));
	}
	assert_int_equal(n, LAT_CALLS);
	/* In random order, as calls come. */
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rand_r(&seed) % (i + 1);
		uint32_t t = lat[i];
		lat[i] = lat[j];
		lat[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		buckets[msg_lat_bucket(lat[i])]++;
		sum += lat[i];
	}
	memcpy(sorted, lat, sizeof(lat));
	qsort(sorted, n, sizeof(sorted[0]), cmp_u32);
	/* One history row (one minute) for the comparison: start early in a minute. */
	int64_t end = harness_deadline(30000);
	while (time(NULL) % 60 > 40 && harness_left_ms(end) > 0)
		usleep(200000);
	lars_client_options_t o;
	lars_client_options_init(&o);
	o.base_port = agent_base;
	o.timeout_ms = 500;
	lars_client_t *c;
	assert_int_equal(lars_client_new(&o, &c), 0);
	lars_host_t host;
	end = harness_deadline(15000);
	int rc;
	while ((rc = lars_get_host(c, MOD_LAT, 1, &host)) != LARS_SUCC && harness_left_ms(end) > 0)
		usleep(50000);
	assert_int_equal(rc, LARS_SUCC);
	agent_marks_t m0 = agent_mark(agent_metrics);
	long long drops0 = udp_drops(agent_base);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(lars_report_latency(c, MOD_LAT, 1, &host, LARS_SUCC, lat[i]), LARS_SUCC);
		usleep(1000);
	}
	lars_client_free(c);
	wait_quiet(agent_metrics, m0.reports, LAT_CALLS - (udp_drops(agent_base) - drops0),
		   harness_port(&rep, "metrics"));
	assert_int_equal(udp_drops(agent_base), drops0); /* 1,000 datagrams at 1 ms: none lost */
	char q[512];
	snprintf(q, sizeof(q), "SELECT count(*) FROM host_status_history WHERE modid = %d", MOD_LAT);
	assert_int_equal(harness_sql_num(q), 1);
	assert_int_equal(history("lat_count", MOD_LAT), LAT_CALLS);
	assert_int_equal(history("lat_sum_us", MOD_LAT), sum);
	for (int b = 0; b < MSG_LAT_BUCKETS; b++) {
		snprintf(q, sizeof(q), "SELECT coalesce(lat_buckets[%d], -1) FROM host_status_history "
			 "WHERE modid = %d", b + 1, MOD_LAT);
		long long got = harness_sql_num(q);
		if (got != buckets[b])
			fail_msg("bucket %d: stored %lld, sent %lld", b, got, buckets[b]);
	}
	static const struct {
		const char *col;
		double q;
	} qs[] = { { COL_P50, 0.5 }, { COL_P90, 0.9 }, { COL_P99, 0.99 } };
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		snprintf(q, sizeof(q), "SELECT %s FROM host_status_history WHERE modid = %d", qs[i].col,
			 MOD_LAT);
		long long est = harness_sql_num(q);
		uint32_t truth = true_quantile(sorted, n, qs[i].q);
		int be = est < 0 ? -100 : (int)msg_lat_bucket((uint32_t)est), bt = (int)msg_lat_bucket(truth);
		fprintf(stderr, "report-exact (f) latency p%g: stored %lld us (bucket %d), true %u us "
			"(bucket %d)\n", qs[i].q * 100, est, be, truth, bt);
		assert_true(be >= bt - 1 && be <= bt + 1);
	}
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
		cmocka_unit_test_teardown(test_reporter_sigkill, cleanup),
		cmocka_unit_test_teardown(test_reporter_sigkill_acks_lost, cleanup),
		cmocka_unit_test_teardown(test_reporter_sigstop_20s, cleanup),
		cmocka_unit_test_teardown(test_postgres_sigkill, cleanup),
		cmocka_unit_test_teardown(test_failover_two_reporters, cleanup),
		cmocka_unit_test_teardown(test_original_agent_totals, cleanup),
		cmocka_unit_test_teardown(test_latency_percentiles, cleanup),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
