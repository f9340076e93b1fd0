// SPDX-License-Identifier: MIT
// bench-agent: the original's qps loop (each thread: get_host, then report,
// on its own key) against lars-agent and against lars-udp-echo (a raw UDP
// echo answering the same request with a fixed reply), with the same client
// in the same run, for 1, 2, 4 and 10 threads. Prints loops/s, the ratio and
// p50/p99 get_host latency for both.
// Usage: bench-agent [SECONDS_PER_CASE]  (environment: LARS_AGENT_BIN,
// LARS_DNS_BIN, LARS_REPORTER_BIN, LARSCTL_BIN, LARS_PG_CLUSTER,
// LARS_UDP_ECHO_BIN; default 3 s, at most 60)
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"

#define KEYS 10
#define MAX_THREADS 10
#define MAX_SAMPLES 4000000

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
	connect(fd, (struct sockaddr *)&to, sizeof(to));
	uint8_t req[64], rep[64], resp[4096];
	double end = harness_now_s() + c->seconds;
	uint32_t seq = 0;
	while (c->loops < 200000000) {
		double t0 = harness_now_s();
		if (t0 >= end)
			break;
		lars_GetHostRequest gh = { .seq = ++seq, .modid = modid, .cmdid = cmdid };
		size_t len;
		msg_frame_encode(LARS_ID_GET_HOST_REQ, lars_GetHostRequest_fields, &gh, req,
				 sizeof(req), &len);
		if (send(fd, req, len, 0) != (ssize_t)len)
			harness_die("send: %s", strerror(errno));
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 1000) != 1) {
			c->errors++;
			continue;
		}
		ssize_t n = recv(fd, resp, sizeof(resp), 0);
		double t1 = harness_now_s();
		lars_GetHostResponse r = lars_GetHostResponse_init_zero;
		if (n < 8 || frame_hdr_read(resp).msgid != LARS_ID_GET_HOST_RESP ||
		    msg_decode(lars_GetHostResponse_fields, &r, resp + 8, (size_t)n - 8, NULL) ||
		    r.retcode != LARS_RET_SUCC) {
			c->errors++;
			continue;
		}
		lars_ReportRequest rr = lars_ReportRequest_init_zero;
		rr.modid = modid;
		rr.cmdid = cmdid;
		rr.has_host = true;
		rr.host = r.host;
		rr.retcode = LARS_RET_SUCC;
		msg_frame_encode(LARS_ID_REPORT_REQ, lars_ReportRequest_fields, &rr, rep,
				 sizeof(rep), &len);
		send(fd, rep, len, 0);
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
	const char *agent_bin = getenv("LARS_AGENT_BIN"), *dns_bin = getenv("LARS_DNS_BIN");
	const char *rep_bin = getenv("LARS_REPORTER_BIN"), *larsctl = getenv("LARSCTL_BIN");
	const char *cluster = getenv("LARS_PG_CLUSTER"), *echo_bin = getenv("LARS_UDP_ECHO_BIN");
	if (!agent_bin || !dns_bin || !rep_bin || !larsctl || !cluster || !echo_bin)
		harness_die("LARS_AGENT_BIN, LARS_DNS_BIN, LARS_REPORTER_BIN, LARSCTL_BIN, "
		    "LARS_PG_CLUSTER and LARS_UDP_ECHO_BIN must be set");

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
		}

	harness_proc_t dns, rep, agent, echo;
	if (harness_spawn(&dns, dns_bin, harness_write_config("[dns]\nport = 0\n")) ||
	    harness_spawn(&rep, rep_bin, harness_write_config("[reporter]\nport = 0\n")))
		harness_die("services did not start");
	char acfg[512];
	snprintf(acfg, sizeof(acfg),
		 "[agent]\nbase_port = 0\n[dnsserver]\nport = %d\n[reporter]\nport = %d\n",
		 harness_port(&dns, "tcp"), harness_port(&rep, "tcp"));
	if (harness_spawn(&agent, agent_bin, harness_write_config(acfg)))
		harness_die("lars-agent did not start");
	int agent_ports[3], echo_ports[3];
	read_ports(&agent, agent_ports);

	/* The echo prints its ports on stdout; run it through a pipe. */
	snprintf(cmd, sizeof(cmd), "exec %s %d", echo_bin, (int)(seconds * 8 * 2 + 60));
	FILE *ef = popen(cmd, "r");
	memset(&echo, 0, sizeof(echo));
	if (!ef || !fgets(echo.ready, sizeof(echo.ready), ef))
		harness_die("lars-udp-echo did not start");
	read_ports(&echo, echo_ports);

	/* Warm up: every key pulled and served. */
	client_t warm = { .ports = agent_ports, .seconds = 0.3 };
	for (int k = 0; k < KEYS; k++) {
		warm.id = k;
		client_main(&warm);
	}
	for (int k = 0; k < KEYS; k++) {
		warm = (client_t){ .ports = agent_ports, .id = k, .seconds = 0.2 };
		client_main(&warm);
	}

	printf("threads   agent loops/s   echo loops/s   ratio   agent p50/p99 us   echo p50/p99 us   (targets: ratio >= 0.70, agent p99 <= 2x echo)\n");
	static const int threads[] = { 1, 2, 4, 10 };
	for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
		result_t e = run_case(echo_ports, threads[i], seconds);
		result_t a = run_case(agent_ports, threads[i], seconds);
		printf("%7d   %13.0f   %12.0f   %5.2f   %7.0f/%-8.0f   %7.0f/%-8.0f%s\n",
		       threads[i], a.qps, e.qps, a.qps / e.qps, a.p50, a.p99, e.p50, e.p99,
		       a.errors || e.errors ? "  (timeouts or errors seen)" : "");
	}
	/* The echo exits on its own timer; stop it now. */
	pclose(ef) ;
	harness_stop(&agent);
	harness_stop(&rep);
	harness_stop(&dns);
	snprintf(cmd, sizeof(cmd), "'%s' stop '%s'; rm -rf '%s'", cluster, dir, dir);
	if (system(cmd))
		fprintf(stderr, "bench-agent: could not remove %s\n", dir);
	return 0;
}
