// SPDX-License-Identifier: MIT
// The shared-memory fast path against the UDP path (issue 22), in one run:
// a real lars-dns, lars-reporter and lars-agent on a PostgreSQL cluster of
// its own; closed-loop threads of the real client library, each on a key of
// its own (three hosts), get_host + report per call, first with the agent's
// snapshot (--shm: picked in-process, results batched), then UDP only, at 1
// and 2 threads. Prints calls per second per thread, p50/p99 of one call
// (get_host + report, every 16th call timed), the agent's CPU over each
// phase, and the ratio shm / udp.
//
// Usage: bench-shm [SECONDS]  (per phase, default 3)
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "lars_client.h"

#define KEYS 2
#define SAMPLE_EVERY 16
#define MAX_SAMPLES (1u << 22)

typedef struct worker {
	int base, key;
	bool shm;
	const char *path;
	double seconds;
	unsigned long calls, errors;
	float *lat_ns;
	size_t n_lat;
} worker_t;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *worker_main(void *arg)
{
	worker_t *w = arg;
	lars_client_options_t o;
	lars_client_options_init(&o);
	o.base_port = w->base;
	o.shm = w->shm;
	o.shm_path = w->path;
	lars_client_t *c;
	if (lars_client_new(&o, &c))
		harness_die("lars_client_new");
	lars_reg_init(c, 1, w->key);
	int64_t end = now_ns() + (int64_t)(w->seconds * 1e9);
	for (unsigned long i = 0;; i++) {
		bool timed = i % SAMPLE_EVERY == 0;
		int64_t t0 = timed || (i & 1023) == 0 ? now_ns() : 0;
		if (t0 && t0 >= end)
			break;
		lars_host_t h;
		if (lars_get_host(c, 1, w->key, &h) != LARS_SUCC) {
			w->errors++;
			continue;
		}
		lars_report(c, 1, w->key, &h, LARS_SUCC);
		w->calls++;
		if (timed && w->n_lat < MAX_SAMPLES)
			w->lat_ns[w->n_lat++] = (float)(now_ns() - t0);
	}
	lars_client_free(c);
	return NULL;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

/* utime + stime of @pid in seconds. */
static double cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct result {
	double per_thread, p50_us, p99_us, agent_cpu;
	unsigned long errors;
} result_t;

static result_t run(int base, const char *path, bool shm, int threads, double seconds,
		    pid_t agent)
{
	worker_t w[KEYS];
	pthread_t t[KEYS];
	double cpu0 = cpu_s(agent), t0 = harness_now_s();
	for (int i = 0; i < threads; i++) {
		w[i] = (worker_t){ .base = base, .key = i + 1, .shm = shm, .path = path,
				   .seconds = seconds, .lat_ns = malloc(sizeof(float) * MAX_SAMPLES) };
		if (!w[i].lat_ns)
			harness_die("out of memory");
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	result_t r = { 0 };
	unsigned long calls = 0;
	size_t n = 0;
	float *all = malloc(sizeof(float) * MAX_SAMPLES * (size_t)threads);
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		calls += w[i].calls;
		r.errors += w[i].errors;
		memcpy(all + n, w[i].lat_ns, w[i].n_lat * sizeof(float));
		n += w[i].n_lat;
		free(w[i].lat_ns);
	}
	double wall = harness_now_s() - t0;
	qsort(all, n, sizeof(float), cmp_float);
	r.per_thread = (double)calls / wall / threads;
	r.p50_us = n ? all[n / 2] / 1000.0 : 0;
	r.p99_us = n ? all[n * 99 / 100] / 1000.0 : 0;
	r.agent_cpu = (cpu_s(agent) - cpu0) / wall * 100;
	free(all);
	return r;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	if (seconds <= 0 || seconds > 60)
		seconds = 3;
	const char *agent_bin = getenv("LARS_AGENT_BIN"), *dns_bin = getenv("LARS_DNS_BIN");
	const char *rep_bin = getenv("LARS_REPORTER_BIN"), *larsctl = getenv("LARSCTL_BIN");
	const char *cluster = getenv("LARS_PG_CLUSTER");
	if (!agent_bin || !dns_bin || !rep_bin || !larsctl || !cluster)
		harness_die("LARS_AGENT_BIN, LARS_DNS_BIN, LARS_REPORTER_BIN, LARSCTL_BIN and "
			    "LARS_PG_CLUSTER must be set");
	unsetenv("LARS_SHM");
	char dir[64], cmd[512], path[128], shm_dir[64];
	snprintf(dir, sizeof(dir), "/tmp/lars-bench-shm-%d", (int)getpid());
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
		}
	harness_proc_t dns, rep, agent;
	if (harness_spawn(&dns, dns_bin, harness_write_config("[dns]\nport = 0\n")) ||
	    harness_spawn(&rep, rep_bin, harness_write_config("[reporter]\nport = 0\n")))
		harness_die("services did not start");
	int base = harness_free_udp_base();
	/* The agent's file in a directory only this user writes (the cluster's is postgres's). */
	snprintf(shm_dir, sizeof(shm_dir), "/tmp/lars-bench-shm-file-%d", (int)getpid());
	if (mkdir(shm_dir, 0755))
		harness_die("mkdir %s: %s", shm_dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/agent.shm", shm_dir);
	char acfg[768];
	snprintf(acfg, sizeof(acfg),
		 "[agent]\nbase_port = %d\nshm_path = %s\n[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\n", base, path, harness_port(&dns, "tcp"),
		 harness_port(&rep, "tcp"));
	if (harness_spawn(&agent, agent_bin, harness_write_config(acfg)))
		harness_die("lars-agent did not start");
	run(base, path, true, 1, 0.5, agent.pid); /* warm: routes pulled, file mapped */
	run(base, path, false, 1, 0.5, agent.pid);

	printf("bench-shm: get_host + report per call, closed loop, one key per thread, %.0f s a "
	       "phase\n", seconds);
	printf("%-7s %-4s %14s %9s %9s %11s %7s\n", "threads", "path", "calls/s/thread", "p50 us",
	       "p99 us", "agent cpu %", "errors");
	int rc = 0;
	for (int threads = 1; threads <= KEYS; threads++) {
		/* UDP first, and a second apart: the agent works off the batches
		 * of the shm phase afterwards, which would slow a UDP phase after it. */
		result_t u = run(base, path, false, threads, seconds, agent.pid);
		sleep(1);
		result_t s = run(base, path, true, threads, seconds, agent.pid);
		sleep(1);
		printf("%-7d %-4s %14.0f %9.2f %9.2f %11.1f %7lu\n", threads, "shm", s.per_thread,
		       s.p50_us, s.p99_us, s.agent_cpu, s.errors);
		printf("%-7d %-4s %14.0f %9.2f %9.2f %11.1f %7lu\n", threads, "udp", u.per_thread,
		       u.p50_us, u.p99_us, u.agent_cpu, u.errors);
		printf("threads %d: shm / udp = %.1f (calls per second per thread); targets: "
		       ">= 1,000,000/s/thread, p99 <= 2 us, >= 20x udp\n", threads,
		       u.per_thread > 0 ? s.per_thread / u.per_thread : 0);
		if (s.errors || u.errors)
			rc = 1;
	}
	harness_stop(&agent);
	harness_stop(&rep);
	harness_stop(&dns);
	snprintf(cmd, sizeof(cmd), "'%s' stop '%s'; rm -rf '%s' '%s'", cluster, dir, dir, shm_dir);
	if (system(cmd))
		fprintf(stderr, "bench-shm: cleanup of %s failed\n", dir);
	return rc;
}
