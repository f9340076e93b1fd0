// SPDX-License-Identifier: MIT
// bench-agent: the original's qps loop (each thread: get_host, then report,
// on its own key) against lars-agent and against lars-udp-echo (a raw UDP
// echo answering the same request with a fixed reply), with the same client
// in the same run, for 1, 2, 4 and 10 threads, ROUNDS times with the order
// alternated, medians. Prints loops/s, the ratio, p50/p99 get_host latency
// for both and the p99 ratio, and exits 1 when a target is missed
// (loops/s ratio >= 0.85, agent p99 <= 1.5x echo at every thread count).
// Usage: bench-agent [SECONDS_PER_CASE [ROUNDS]]  (environment: LARS_AGENT_BIN,
// LARS_DNS_BIN, LARS_REPORTER_BIN, LARSCTL_BIN, LARS_PG_CLUSTER,
// LARS_UDP_ECHO_BIN; default 3 s, at most 60; 3 rounds, at most 9).
// LARS_AGENT_BASE_BIN (optional): a second lars-agent (say, the build before
// a change) measured in the same rounds against the same lars-dns, shown in
// extra columns; the targets apply to LARS_AGENT_BIN only.
// LARS_BENCH_WEIGHTS=1: the three hosts of each key get weights 100, 200 and
// 300 (`larsctl route weight`, issue 19), so the weighted pick is measured.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "wire_client.h"

#define KEYS 10
#define MAX_THREADS 10
#define MAX_SAMPLES 4000000
#define MAX_ROUNDS 9
#define TARGET_RATIO 0.85
#define TARGET_P99_RATIO 1.5

typedef struct client {
	const int *ports;
	int id;
	double seconds;
	uint64_t loops;
	uint64_t errors;
	float *lat_us; /* this thread's samples */
	size_t n_lat, cap_lat;
} client_t;

static void *client_main(void *arg)
{
	client_t *c = arg;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int32_t modid = 1, cmdid = 1 + c->id % KEYS;
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)c->ports[(modid + cmdid) % 3]) };
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to)))
		harness_die("udp socket: %s", strerror(errno));
	double end = harness_now_s() + c->seconds;
	uint32_t seq = 0;
	while (c->loops < 200000000) {
		double t0 = harness_now_s();
		if (t0 >= end)
			break;
		lars_GetHostResponse r;
		int rc = wc_get_host(fd, 0, ++seq, modid, cmdid, &r, 1000);
		double t1 = harness_now_s();
		if (rc == -ETIMEDOUT || rc == -EPROTO || (rc == 0 && r.retcode != LARS_RET_SUCC)) {
			c->errors++;
			continue;
		}
		if (rc)
			harness_die("get_host: %s", strerror(-rc));
		/* Unchecked, as the original client: a lost report is not an error. */
		(void)wc_report(fd, 0, modid, cmdid, r.host, LARS_RET_SUCC);
		c->loops++;
		if (c->n_lat < c->cap_lat)
			c->lat_us[c->n_lat++] = (float)((t1 - t0) * 1e6);
	}
	close(fd);
	return NULL;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

typedef struct result {
	double qps, p50, p99;
	uint64_t errors;
} result_t;

static result_t run_case(const int *ports, int threads, double seconds)
{
	pthread_t t[MAX_THREADS];
	client_t c[MAX_THREADS];
	static float samples[MAX_SAMPLES];
	size_t per = MAX_SAMPLES / (size_t)threads;
	for (int i = 0; i < threads; i++) {
		c[i] = (client_t){ .ports = ports, .id = i, .seconds = seconds,
				   .lat_us = samples + (size_t)i * per, .cap_lat = per };
		pthread_create(&t[i], NULL, client_main, &c[i]);
	}
	result_t r = { 0 };
	uint64_t loops = 0;
	size_t n = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		loops += c[i].loops;
		r.errors += c[i].errors;
		/* Gather this thread's samples after the previous ones. */
		memmove(samples + n, c[i].lat_us, c[i].n_lat * sizeof(float));
		n += c[i].n_lat;
	}
	qsort(samples, n, sizeof(float), cmp_float);
	r.qps = (double)loops / seconds;
	r.p50 = n ? samples[n / 2] : 0;
	r.p99 = n ? samples[n * 99 / 100] : 0;
	return r;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median of each figure over the rounds. */
static result_t median_result(const result_t *r, int n)
{
	double q[MAX_ROUNDS], p50[MAX_ROUNDS], p99[MAX_ROUNDS];
	result_t m = { 0 };
	for (int i = 0; i < n; i++) {
		q[i] = r[i].qps;
		p50[i] = r[i].p50;
		p99[i] = r[i].p99;
		m.errors += r[i].errors;
	}
	m.qps = median(q, n);
	m.p50 = median(p50, n);
	m.p99 = median(p99, n);
	return m;
}

static void read_ports(const harness_proc_t *p, int ports[3])
{
	ports[0] = harness_port(p, "udp");
	ports[1] = harness_port(p, "udp1");
	ports[2] = harness_port(p, "udp2");
	if (ports[0] <= 0 || ports[1] <= 0 || ports[2] <= 0)
		harness_die("no UDP ports in '%s'", p->ready);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	if (seconds <= 0 || seconds > 60)
		seconds = 3;
	int rounds = argc > 2 ? atoi(argv[2]) : 3;
	if (rounds < 1 || rounds > MAX_ROUNDS)
		rounds = 3;
	const char *base_bin = getenv("LARS_AGENT_BASE_BIN");
	if (base_bin && !*base_bin)
		base_bin = NULL;
	const char *agent_bin = getenv("LARS_AGENT_BIN"), *dns_bin = getenv("LARS_DNS_BIN");
	const char *rep_bin = getenv("LARS_REPORTER_BIN"), *larsctl = getenv("LARSCTL_BIN");
	const char *cluster = getenv("LARS_PG_CLUSTER"), *echo_bin = getenv("LARS_UDP_ECHO_BIN");
	if (!agent_bin || !dns_bin || !rep_bin || !larsctl || !cluster || !echo_bin)
		harness_die("LARS_AGENT_BIN, LARS_DNS_BIN, LARS_REPORTER_BIN, LARSCTL_BIN, "
		    "LARS_PG_CLUSTER and LARS_UDP_ECHO_BIN must be set");

	const char *wenv = getenv("LARS_BENCH_WEIGHTS");
	bool weights = wenv && *wenv && strcmp(wenv, "0") != 0;
	char dir[64], cmd[512];
	snprintf(dir, sizeof(dir), "/tmp/lars-bench-agent-%d", (int)getpid());
	int pg_port = 0;
	if (harness_cluster_start(cluster, dir, &pg_port))
		harness_die("cannot start a PostgreSQL cluster");
	snprintf(cmd, sizeof(cmd), "%s migrate >/dev/null", larsctl);
	if (system(cmd))
		harness_die("migrate failed");
	for (int k = 1; k <= KEYS; k++)
		for (int h = 1; h <= 3; h++) {
			snprintf(cmd, sizeof(cmd), "%s route add 1 %d 127.0.0.1 %d >/dev/null",
				 larsctl, k, 9000 + h);
			if (system(cmd))
				harness_die("route add failed");
			if (weights && h > 1) { /* issue 19: weights 100:200:300 (100 is the default) */
				snprintf(cmd, sizeof(cmd),
					 "%s route weight 1 %d 127.0.0.1 %d %d >/dev/null", larsctl,
					 k, 9000 + h, 100 * h);
				if (system(cmd))
					harness_die("route weight failed (a larsctl of issue 19?)");
			}
		}

	harness_proc_t dns, rep, agent, base, echo;
	if (harness_spawn(&dns, dns_bin, harness_write_config("[dns]\nport = 0\n")) ||
	    harness_spawn(&rep, rep_bin, harness_write_config("[reporter]\nport = 0\n")))
		harness_die("services did not start");
	char acfg[512];
	snprintf(acfg, sizeof(acfg),
		 "[agent]\nbase_port = 0\n[dnsserver]\nport = %d\n[reporter]\nport = %d\n",
		 harness_port(&dns, "tcp"), harness_port(&rep, "tcp"));
	if (harness_spawn(&agent, agent_bin, harness_write_config(acfg)))
		harness_die("lars-agent did not start");
	int agent_ports[3], base_ports[3], echo_ports[3];
	read_ports(&agent, agent_ports);
	if (base_bin) {
		if (harness_spawn(&base, base_bin, harness_write_config(acfg)))
			harness_die("%s did not start", base_bin);
		read_ports(&base, base_ports);
	}

	/* The echo prints its ports on stdout; run it through a pipe, with its
	 * pid known so it is stopped at the end (its own timer is the backstop). */
	char echo_secs[16];
	snprintf(echo_secs, sizeof(echo_secs), "%d", (int)(seconds * 4 * 3 * rounds + 120));
	int epipe[2];
	if (pipe(epipe))
		harness_die("pipe: %s", strerror(errno));
	pid_t echo_pid = fork();
	if (echo_pid < 0)
		harness_die("fork: %s", strerror(errno));
	if (echo_pid == 0) {
		dup2(epipe[1], 1);
		close(epipe[0]);
		close(epipe[1]);
		execl(echo_bin, echo_bin, echo_secs, (char *)NULL);
		_exit(127);
	}
	close(epipe[1]);
	FILE *ef = fdopen(epipe[0], "r");
	memset(&echo, 0, sizeof(echo));
	if (!ef || !fgets(echo.ready, sizeof(echo.ready), ef))
		harness_die("lars-udp-echo did not start");
	read_ports(&echo, echo_ports);

	/* Warm up: every key pulled and served, by each agent. */
	for (int b = 0; b < (base_bin ? 2 : 1); b++) {
		const int *ports = b ? base_ports : agent_ports;
		client_t warm = { .ports = ports, .seconds = 0.3 };
		for (int k = 0; k < KEYS; k++) {
			warm.id = k;
			client_main(&warm);
		}
		for (int k = 0; k < KEYS; k++) {
			warm = (client_t){ .ports = ports, .id = k, .seconds = 0.2 };
			client_main(&warm);
		}
	}

	static const int threads[] = { 1, 2, 4, 10 };
	enum { N_T = sizeof(threads) / sizeof(threads[0]) };
	/* [target][thread count][round]; target 0 echo, 1 agent, 2 base. */
	static result_t res[3][N_T][MAX_ROUNDS];
	const int *target_ports[3] = { echo_ports, agent_ports, base_ports };
	int n_targets = base_bin ? 3 : 2;
	for (int round = 0; round < rounds; round++) {
		for (int i = 0; i < N_T; i++) {
			/* Alternate the order so neither side always runs first. */
			for (int k = 0; k < n_targets; k++) {
				int tgt = (k + round + i) % n_targets;
				res[tgt][i][round] = run_case(target_ports[tgt], threads[i], seconds);
			}
		}
		fprintf(stderr, "bench-agent: round %d of %d done\n", round + 1, rounds);
	}

	printf("medians of %d rounds of %g s each, alternated%s\n", rounds, seconds,
	       base_bin ? "; base = LARS_AGENT_BASE_BIN" : "");
	printf("threads   agent loops/s   echo loops/s   ratio   agent p50/p99 us   echo p50/p99 us   p99 ratio%s   (targets: ratio >= %.2f, p99 ratio <= %.1f)\n",
	       base_bin ? "   base loops/s ratio p50/p99 p99-ratio" : "", TARGET_RATIO,
	       TARGET_P99_RATIO);
	int missed = 0;
	char why[1024] = "";
	size_t wl = 0;
	for (int i = 0; i < N_T; i++) {
		result_t e = median_result(res[0][i], rounds);
		result_t a = median_result(res[1][i], rounds);
		double ratio = e.qps > 0 ? a.qps / e.qps : 0;
		double p99r = e.p99 > 0 ? a.p99 / e.p99 : 0;
		printf("%7d   %13.0f   %12.0f   %5.2f   %7.0f/%-8.0f   %7.0f/%-8.0f   %9.2f",
		       threads[i], a.qps, e.qps, ratio, a.p50, a.p99, e.p50, e.p99, p99r);
		if (base_bin) {
			result_t b = median_result(res[2][i], rounds);
			printf("   %8.0f %5.2f %4.0f/%-5.0f %5.2f", b.qps,
			       e.qps > 0 ? b.qps / e.qps : 0, b.p50, b.p99,
			       e.p99 > 0 ? b.p99 / e.p99 : 0);
		}
		printf("%s\n", a.errors || e.errors ? "  (timeouts or errors seen)" : "");
		if (ratio < TARGET_RATIO || p99r > TARGET_P99_RATIO || a.errors) {
			missed++;
			wl += (size_t)snprintf(why + wl, sizeof(why) - wl,
					       "%s %d threads: ratio %.2f, p99 ratio %.2f%s",
					       wl ? ";" : "", threads[i], ratio, p99r,
					       a.errors ? ", errors" : "");
			if (wl >= sizeof(why))
				wl = sizeof(why) - 1;
		}
	}
	fflush(stdout);
	kill(echo_pid, SIGTERM);
	waitpid(echo_pid, NULL, 0);
	fclose(ef);
	if (base_bin)
		harness_stop(&base);
	harness_stop(&agent);
	harness_stop(&rep);
	harness_stop(&dns);
	snprintf(cmd, sizeof(cmd), "'%s' stop '%s'; rm -rf '%s'", cluster, dir, dir);
	if (system(cmd))
		fprintf(stderr, "bench-agent: could not remove %s\n", dir);
	if (missed) {
		fprintf(stderr, "bench-agent: FAILED: target missed at %d of %d thread counts:%s "
			"(targets: loops/s ratio >= %.2f, p99 ratio <= %.1f)\n",
			missed, (int)N_T, why, TARGET_RATIO, TARGET_P99_RATIO);
		return 1;
	}
	printf("bench-agent: every target met\n");
	return 0;
}
