// SPDX-License-Identifier: MIT
// bench-report: sustained results stored per second by lars-reporter from 8
// connections, beside the same machine's ceiling measured in the same run:
// this program COPYing equivalent rows straight into the staging table and
// merging them (the reporter's own store code, no network, no service), on
// as many connections as the reporter has DB threads.
// Usage: bench-report [SECONDS]  (environment: LARS_REPORTER_BIN, LARSCTL_BIN,
// LARS_PG_CLUSTER; default 10 s, at most 120)
#include <errno.h>
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
		if (report_store_batch(c, v, CEILING_BATCH, &rows))
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
} send_arg_t;

static void *sender(void *p)
{
	send_arg_t *a = p;
	int fd = harness_tcp_connect(a->port);
	if (fd < 0)
		harness_die("connect: %s", strerror(errno));
	lars_HostCallResult res[RESULTS_PER_REPORT];
	for (uint64_t r = 0; !stop_senders && r < 100000000; r++) {
		int base = (int)((r * RESULTS_PER_REPORT) % KEYS_PER_CONN);
		for (int i = 0; i < RESULTS_PER_REPORT; i++)
			res[i] = (lars_HostCallResult){ .ip = 0x0a000000 + base + i,
							 .port = 1 + (base + i) % 1000,
							 .succ = 10, .err = 1 };
		int rc = wc_report_status_send(fd, 100 + a->id, base / 1000, 0x7f000001,
					       (uint32_t)time(NULL), res, RESULTS_PER_REPORT);
		if (rc)
			harness_die("send: %s", strerror(-rc));
		a->sent += RESULTS_PER_REPORT;
	}
	close(fd);
	return NULL;
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
		"[reporter]\nport = 0\ndb_thread_cnt = 2\n[metrics]\nenabled = true\n");
	harness_proc_t p;
	if (harness_spawn(&p, rep_bin, cfg))
		harness_die("lars-reporter did not start");
	int rport = harness_port(&p, "tcp"), mport = harness_port(&p, "metrics");
	pthread_t t[CONNS];
	send_arg_t a[CONNS];
	for (int i = 0; i < CONNS; i++) {
		a[i] = (send_arg_t){ .port = rport, .id = i };
		pthread_create(&t[i], NULL, sender, &a[i]);
	}
	/* Senders run for @seconds; the clock stops when all of it is stored. */
	double t0 = harness_now_s();
	usleep((useconds_t)(seconds * 1e6));
	stop_senders = true;
	uint64_t sent = 0;
	for (int i = 0; i < CONNS; i++) {
		pthread_join(t[i], NULL);
		sent += a[i].sent;
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
	printf("reporter, %d connections: %.0f results stored/s (%.0f rows/s after coalescing repeated keys)\n",
	       CONNS, results_rate, rows_rate);
	printf("ceiling, COPY + merge on %d connections: %.0f rows/s   ratio rows %.2f   (targets: >= 0.50 of the ceiling, >= 50000 results/s)\n",
	       DB_THREADS, ceil_rate, rows_rate / ceil_rate);
	printf("(sent %llu results in %.1f s, all stored after %.1f s: %s)\n",
	       (unsigned long long)sent, seconds, t1 - t0,
	       stored >= (double)sent ? "nothing lost" : "NOT ALL STORED");
	snprintf(cmd, sizeof(cmd), "'%s' stop '%s'; rm -rf '%s'", cluster, dir, dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench-report: could not remove %s\n", dir);
	return stored >= (double)sent ? 0 : 1;
}
