// SPDX-License-Identifier: MIT
// bench-report: sustained results stored per second by lars-reporter from 8
// connections, beside the same machine's ceiling measured in the same run:
// this program COPYing equivalent rows straight into the staging table and
// merging them (the reporter's own store code, no network, no service), on
// as many connections as the reporter has DB threads.
// With --acks each connection is an acknowledged agent (agent_id, seq,
// delta, as our lars-agent sends them) and reads the ReportStatusAcks: the
// run ends when every message is acknowledged, and the delay from sending a
// message to its acknowledgement (stored in PostgreSQL) is printed as p50
// and p99.
// --rate N paces each connection to N messages a second (default: as fast
// as the reporter reads), for the delay under a load it keeps up with.
// Usage: bench-report [--acks] [--rate N] [SECONDS]  (environment:
// LARS_REPORTER_BIN, LARSCTL_BIN, LARS_PG_CLUSTER; default 10 s, at most 120)
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "wire_client.h"
#include "pending.h"
#include "report_store.h"

#define CONNS 8
#define RESULTS_PER_REPORT 100
#define KEYS_PER_CONN 200000 /* large: batches rarely see a key twice */
#define DB_THREADS 2
#define CEILING_BATCH 20000

static const char *rep_bin, *larsctl_bin, *cluster;
static _Atomic bool stop_senders;
static bool acks;    /* --acks */
static double rate; /* --rate: messages a second per connection, 0: flat out */

/* ---- the ceiling: store batches directly ---- */

typedef struct ceil_arg {
	int id;
	double seconds;
	uint64_t rows;
} ceil_arg_t;

static void *ceiling_thread(void *p)
{
	ceil_arg_t *a = p;
	PGconn *c = PQconnectdb("");
	if (PQstatus(c) != CONNECTION_OK)
		harness_die("connect: %s", PQerrorMessage(c));
	report_entry_t *v = calloc(CEILING_BATCH, sizeof(*v));
	uint32_t ts = (uint32_t)time(NULL);
	double end = harness_now_s() + a->seconds;
	for (int round = 0; harness_now_s() < end && round < 100000; round++) {
		for (int i = 0; i < CEILING_BATCH; i++) {
			int k = (round * CEILING_BATCH + i) % KEYS_PER_CONN;
			v[i] = (report_entry_t){
				.key = { 900 + a->id, k / 1000, 0x0a000000 + k, 1 + k % 1000, 1 },
				.mins = { { ts - ts % 60, 10, 1 } }, .n_mins = 1,
				.succ = 10, .err = 1, .ts = ts,
			};
		}
		size_t rows;
		if (report_store_batch(c, v, CEILING_BATCH, NULL, 0, &rows))
			harness_die("store failed");
		a->rows += CEILING_BATCH;
	}
	free(v);
	PQfinish(c);
	return NULL;
}

static double ceiling(double seconds)
{
	pthread_t t[DB_THREADS];
	ceil_arg_t a[DB_THREADS];
	double start = harness_now_s();
	for (int i = 0; i < DB_THREADS; i++) {
		a[i] = (ceil_arg_t){ .id = i, .seconds = seconds };
		pthread_create(&t[i], NULL, ceiling_thread, &a[i]);
	}
	uint64_t rows = 0;
	for (int i = 0; i < DB_THREADS; i++) {
		pthread_join(t[i], NULL);
		rows += a[i].rows;
	}
	return (double)rows / (harness_now_s() - start);
}

/* ---- the service ---- */

typedef struct send_arg {
	int port;
	int id;
	uint64_t sent;
	/* --acks */
	uint64_t agent_id, seq, acked;
	double *sent_at; /* by seq */
	size_t sent_cap;
	double *delays;  /* send -> ack, seconds, one per message */
	size_t n_delays;
	bool unacked;    /* not every message acknowledged in time */
} send_arg_t;

/* The acknowledgements waiting on @a's socket, @wait_ms for the first. */
static void read_acks(send_arg_t *a, int fd, int wait_ms)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	while (poll(&pf, 1, wait_ms) > 0) {
		frame_hdr_t h;
		uint8_t body[64];
		int n = wc_recv_frame(fd, &h, body, sizeof(body), harness_deadline(5000));
		if (n <= 0)
			harness_die("reading acks: %s", n ? strerror(-n) : "EOF");
		lars_ReportStatusAck ack = lars_ReportStatusAck_init_zero;
		const char *why;
		if (h.msgid != LARS_ID_REPORT_STATUS_ACK ||
		    msg_decode(lars_ReportStatusAck_fields, &ack, body, (size_t)h.msglen, &why))
			harness_die("not a ReportStatusAck (id %d)", h.msgid);
		if (ack.agent_id != a->agent_id)
			harness_die("an ack for another agent");
		double now = harness_now_s();
		for (uint64_t s = a->acked + 1; s <= ack.seq && s <= a->seq; s++)
			a->delays[a->n_delays++] = now - a->sent_at[s];
		if (ack.seq > a->acked)
			a->acked = ack.seq;
		wait_ms = 0;
	}
}

static int send_report(send_arg_t *a, int fd, int base, const lars_HostCallResult *res)
{
	if (!acks)
		return wc_report_status_send(fd, 100 + a->id, base / 1000, 0x7f000001,
					     (uint32_t)time(NULL), res, RESULTS_PER_REPORT);
	lars_ReportStatusRequest req = lars_ReportStatusRequest_init_zero;
	req.modid = 100 + a->id;
	req.cmdid = base / 1000;
	req.caller = 0x7f000001;
	req.ts = (uint32_t)time(NULL);
	req.agent_id = a->agent_id;
	req.seq = ++a->seq;
	req.delta = true;
	if (a->seq >= a->sent_cap) {
		a->sent_cap = a->sent_cap ? 2 * a->sent_cap : 65536;
		a->sent_at = realloc(a->sent_at, a->sent_cap * sizeof(*a->sent_at));
		a->delays = realloc(a->delays, a->sent_cap * sizeof(*a->delays));
		if (!a->sent_at || !a->delays)
			harness_die("out of memory");
	}
	a->sent_at[a->seq] = harness_now_s();
	msg_array_t arr = MSG_RESULTS(res, RESULTS_PER_REPORT);
	msg_array_bind(&arr, &req.results);
	int rc = wc_send(fd, LARS_ID_REPORT_STATUS_REQ, lars_ReportStatusRequest_fields, &req);
	if (!rc)
		read_acks(a, fd, 0);
	return rc;
}

static void *sender(void *p)
{
	send_arg_t *a = p;
	int fd = harness_tcp_connect(a->port);
	if (fd < 0)
		harness_die("connect: %s", strerror(errno));
	lars_HostCallResult res[RESULTS_PER_REPORT];
	double start = harness_now_s();
	for (uint64_t r = 0; !stop_senders && r < 100000000; r++) {
		while (rate > 0 && !stop_senders && harness_now_s() < start + (double)r / rate) {
			if (acks)
				read_acks(a, fd, 1);
			else
				usleep(1000);
		}
		int base = (int)((r * RESULTS_PER_REPORT) % KEYS_PER_CONN);
		for (int i = 0; i < RESULTS_PER_REPORT; i++)
			res[i] = (lars_HostCallResult){ .ip = 0x0a000000 + base + i,
							 .port = 1 + (base + i) % 1000,
							 .succ = 10, .err = 1 };
		int rc = send_report(a, fd, base, res);
		if (rc)
			harness_die("send: %s", strerror(-rc));
		a->sent += RESULTS_PER_REPORT;
	}
	/* Every message acknowledged (at most 5 minutes). */
	double end = harness_now_s() + 300;
	while (acks && a->acked < a->seq && harness_now_s() < end)
		read_acks(a, fd, 100);
	a->unacked = acks && a->acked < a->seq;
	close(fd);
	return NULL;
}

static int dbl_cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return a < b ? -1 : a > b;
}

/* The send -> ack delays of all senders: p50 and p99 in ms. */
static void delays(send_arg_t *a, int n, double *p50, double *p99)
{
	size_t total = 0, k = 0;
	for (int i = 0; i < n; i++)
		total += a[i].n_delays;
	double *all = malloc((total ? total : 1) * sizeof(*all));
	if (!all)
		harness_die("out of memory");
	for (int i = 0; i < n; i++)
		for (size_t j = 0; j < a[i].n_delays; j++)
			all[k++] = a[i].delays[j];
	qsort(all, total, sizeof(*all), dbl_cmp);
	*p50 = total ? all[total / 2] * 1000 : 0;
	*p99 = total ? all[total * 99 / 100] * 1000 : 0;
	free(all);
}

static double metric(int port, const char *name)
{
	static char out[1 << 16];
	if (harness_http_get(port, "/metrics", out, sizeof(out)) <= 0)
		harness_die("cannot read /metrics");
	char key[128];
	snprintf(key, sizeof(key), "\n%s ", name);
	const char *p = strstr(out, key);
	return p ? atof(p + strlen(key)) : 0;
}

int main(int argc, char **argv)
{
	for (;;) {
		if (argc > 1 && strcmp(argv[1], "--acks") == 0) {
			acks = true;
			argv++;
			argc--;
		} else if (argc > 2 && strcmp(argv[1], "--rate") == 0) {
			rate = atof(argv[2]);
			argv += 2;
			argc -= 2;
		} else {
			break;
		}
	}
	double seconds = argc > 1 ? atof(argv[1]) : 10;
	if (seconds <= 0 || seconds > 120)
		seconds = 10;
	rep_bin = getenv("LARS_REPORTER_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	cluster = getenv("LARS_PG_CLUSTER");
	if (!rep_bin || !larsctl_bin || !cluster)
		harness_die("LARS_REPORTER_BIN, LARSCTL_BIN and LARS_PG_CLUSTER must be set");

	char dir[64], cmd[512];
	snprintf(dir, sizeof(dir), "/tmp/lars-bench-report-%d", (int)getpid());
	int pg_port = 0;
	if (harness_cluster_start(cluster, dir, &pg_port))
		harness_die("cannot start a PostgreSQL cluster");
	snprintf(cmd, sizeof(cmd), "%s migrate >/dev/null", larsctl_bin);
	if (system(cmd) != 0)
		harness_die("larsctl migrate failed");

	double ceil_rate = ceiling(seconds);

	const char *cfg = harness_write_config(
		"[reporter]\nport = 0\ndb_thread_cnt = 2\n[metrics]\nenabled = true\nport = 0\n");
	harness_proc_t p;
	if (harness_spawn(&p, rep_bin, cfg))
		harness_die("lars-reporter did not start");
	int rport = harness_port(&p, "tcp"), mport = harness_port(&p, "metrics");
	pthread_t t[CONNS];
	send_arg_t a[CONNS];
	for (int i = 0; i < CONNS; i++) {
		a[i] = (send_arg_t){ .port = rport, .id = i,
				     .agent_id = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) << 8 ^
						 (uint64_t)(i + 1) };
		pthread_create(&t[i], NULL, sender, &a[i]);
	}
	/* Senders run for @seconds; the clock stops when all of it is stored. */
	double t0 = harness_now_s();
	usleep((useconds_t)(seconds * 1e6));
	stop_senders = true;
	uint64_t sent = 0;
	bool unacked = false;
	for (int i = 0; i < CONNS; i++) {
		pthread_join(t[i], NULL);
		sent += a[i].sent;
		unacked |= a[i].unacked;
	}
	double stored = 0;
	for (int i = 0; i < 3000; i++) { /* at most 5 minutes */
		stored = metric(mport, "lars_reporter_results_stored_total");
		if (stored >= (double)sent)
			break;
		usleep(100000);
	}
	double t1 = harness_now_s();
	double rows = metric(mport, "lars_reporter_rows_stored_total");
	harness_stop(&p);
	double results_rate = stored / (t1 - t0), rows_rate = rows / (t1 - t0);
	printf("reporter, %d connections%s: %.0f results stored/s (%.0f rows/s after coalescing repeated keys)\n",
	       CONNS, acks ? " (acknowledged agents)" : "", results_rate, rows_rate);
	if (acks) {
		double p50, p99;
		delays(a, CONNS, &p50, &p99);
		printf("send -> acknowledged (stored) delay: p50 %.0f ms, p99 %.0f ms%s\n", p50, p99,
		       unacked ? "   NOT ALL ACKNOWLEDGED" : "");
	}
	printf("ceiling, COPY + merge on %d connections: %.0f rows/s   ratio rows %.2f   (targets: >= 0.50 of the ceiling, >= 50000 results/s)\n",
	       DB_THREADS, ceil_rate, rows_rate / ceil_rate);
	printf("(sent %llu results in %.1f s, all stored after %.1f s: %s)\n",
	       (unsigned long long)sent, seconds, t1 - t0,
	       stored >= (double)sent ? "nothing lost" : "NOT ALL STORED");
	snprintf(cmd, sizeof(cmd), "'%s' stop '%s'; rm -rf '%s'", cluster, dir, dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench-report: could not remove %s\n", dir);
	for (int i = 0; i < CONNS; i++) {
		free(a[i].sent_at);
		free(a[i].delays);
	}
	return stored >= (double)sent && !unacked ? 0 : 1;
}
