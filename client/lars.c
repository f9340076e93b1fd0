// SPDX-License-Identifier: MIT
// lars: command-line tools on top of the client library.
//
//   lars get-host MODID CMDID            prints "host is IP:PORT"
//   lars get-route MODID CMDID           prints one IP:PORT per line
//   lars report MODID CMDID IP PORT RETCODE
//   lars simulate MODID CMDID [--err-rate PCT] [--count N] [--fail IP:PORT=PCT ...]
//   lars bench [--threads N] [--seconds S] [--modid M]
//
// Exit status: the LARS_* return code (0 success, 1 overload, 2 system
// error, 3 no such route); 64 for a usage error.
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lars_client.h"

#define EXIT_USAGE 64
#define MAX_FAIL 64
#define MAX_SIM_HOSTS 1024
#define MAX_THREADS 256

static lars_client_options_t opts;

static const char usage[] =
	"Usage: lars [--agent HOST:BASEPORT] [--timeout MS] [--retries N] COMMAND ...\n"
	"\n"
	"  get-host MODID CMDID          ask the agent for a host: \"host is IP:PORT\"\n"
	"  get-route MODID CMDID         every host of the route, one IP:PORT per line\n"
	"  report MODID CMDID IP PORT RETCODE\n"
	"                                report a call's outcome (RETCODE 0 = success)\n"
	"  simulate MODID CMDID [--err-rate PCT] [--count N] [--fail IP:PORT=PCT ...]\n"
	"                                get_host + report in a loop, outcomes drawn from\n"
	"                                the error rates; prints per host picks, successes,\n"
	"                                errors, and the error rate callers saw\n"
	"  bench [--threads N] [--seconds S] [--modid M]\n"
	"                                closed-loop QPS: each thread get_host + report\n"
	"                                on its own key (M, thread number)\n"
	"\n"
	"  --agent HOST:BASEPORT   the agent (default $LARS_AGENT, else 127.0.0.1:8888)\n"
	"  --timeout MS            per attempt (default 100); --retries N (default 3)\n"
	"  -h, --help              help (also after a command)\n"
	"\n"
	"Exit status: 0 success, 1 overload, 2 system error, 3 no such route, 64 usage.\n";

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "lars: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'lars --help')\n");
	return EXIT_USAGE;
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

static bool parse_key(char **argv, int *modid, int *cmdid)
{
	return parse_int(argv[0], 0, 2147483647, modid) && parse_int(argv[1], 0, 2147483647, cmdid);
}

static lars_client_t *client_or_die(void)
{
	lars_client_t *c;
	int r = lars_client_new(&opts, &c);
	if (r) {
		fprintf(stderr, "lars: cannot create a client: %s\n", strerror(-r));
		exit(LARS_SYSTEM_ERROR);
	}
	return c;
}

static int report_error(lars_client_t *c, int r)
{
	if (r == LARS_SYSTEM_ERROR)
		fprintf(stderr, "lars: %s: %s\n", lars_strerror(r), lars_client_error(c));
	else if (r != LARS_SUCC)
		fprintf(stderr, "lars: %s\n", lars_strerror(r));
	return r;
}

static int cmd_get_host(int argc, char **argv)
{
	int modid, cmdid;
	if (argc != 2 || !parse_key(argv, &modid, &cmdid))
		return usage_error("get-host needs MODID CMDID (integers >= 0)");
	lars_client_t *c = client_or_die();
	lars_host_t h;
	int r = lars_get_host(c, modid, cmdid, &h);
	if (r == LARS_SUCC)
		printf("host is %s:%d\n", h.ip_str, h.port);
	report_error(c, r);
	lars_client_free(c);
	return r;
}

static int cmd_get_route(int argc, char **argv)
{
	int modid, cmdid;
	if (argc != 2 || !parse_key(argv, &modid, &cmdid))
		return usage_error("get-route needs MODID CMDID (integers >= 0)");
	lars_client_t *c = client_or_die();
	static lars_host_t hosts[4096];
	size_t n;
	int r = lars_get_route(c, modid, cmdid, hosts, 4096, &n);
	if (r == LARS_SUCC) {
		for (size_t i = 0; i < n && i < 4096; i++)
			printf("%s:%d\n", hosts[i].ip_str, hosts[i].port);
		if (n == 0) {
			r = LARS_NOEXIST; /* no hosts (yet) */
			fprintf(stderr, "lars: the route has no hosts (yet)\n");
		}
	}
	report_error(c, r);
	lars_client_free(c);
	return r;
}

static bool parse_host(const char *ip, const char *port, lars_host_t *h)
{
	struct in_addr a;
	if (inet_pton(AF_INET, ip, &a) != 1 || !parse_int(port, 1, 65535, &h->port))
		return false;
	h->ip = ntohl(a.s_addr);
	snprintf(h->ip_str, sizeof(h->ip_str), "%s", ip);
	return true;
}

static int cmd_report(int argc, char **argv)
{
	int modid, cmdid, retcode;
	lars_host_t h;
	if (argc != 5 || !parse_key(argv, &modid, &cmdid) || !parse_host(argv[2], argv[3], &h) ||
	    !parse_int(argv[4], -2147483647, 2147483647, &retcode))
		return usage_error("report needs MODID CMDID IP PORT RETCODE");
	lars_client_t *c = client_or_die();
	int r = report_error(c, lars_report(c, modid, cmdid, &h, retcode));
	lars_client_free(c);
	return r;
}

/* ---- simulate ---- */

typedef struct sim_host {
	lars_host_t h;
	unsigned long picks, succ, err;
} sim_host_t;

static int cmd_simulate(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "err-rate", required_argument, NULL, 'e' },
		{ "count", required_argument, NULL, 'n' },
		{ "fail", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int err_rate = 0, count = 1000, n_fail = 0;
	struct { lars_host_t h; int pct; } fails[MAX_FAIL];
	int c;
	optind = 0; /* 0: glibc re-initialises, options may follow MODID CMDID */
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'e':
			if (!parse_int(optarg, 0, 100, &err_rate))
				return usage_error("--err-rate takes a percentage 0..100, not '%s'", optarg);
			break;
		case 'n':
			if (!parse_int(optarg, 1, 100000000, &count))
				return usage_error("--count takes 1..100000000, not '%s'", optarg);
			break;
		case 'f': {
			char buf[64];
			snprintf(buf, sizeof(buf), "%s", optarg);
			char *colon = strchr(buf, ':'), *eq = strchr(buf, '=');
			if (!colon || !eq || eq < colon || n_fail == MAX_FAIL)
				return usage_error("--fail takes IP:PORT=PERCENT, not '%s'", optarg);
			*colon = *eq = '\0';
			if (!parse_host(buf, colon + 1, &fails[n_fail].h) ||
			    !parse_int(eq + 1, 0, 100, &fails[n_fail].pct))
				return usage_error("--fail takes IP:PORT=PERCENT, not '%s'", optarg);
			n_fail++;
			break;
		}
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return usage_error("bad option for simulate");
		}
	}
	int modid, cmdid;
	if (argc - optind != 2 || !parse_key(argv + optind, &modid, &cmdid))
		return usage_error("simulate needs MODID CMDID");

	lars_client_t *cl = client_or_die();
	static sim_host_t hosts[MAX_SIM_HOSTS];
	size_t n_hosts = 0;
	unsigned long calls = 0, failed = 0, overload = 0, noexist = 0, syserr = 0;
	unsigned seed = (unsigned)time(NULL);
	lars_reg_init(cl, modid, cmdid);
	for (int i = 0; i < count; i++) {
		lars_host_t h;
		calls++;
		int r = lars_get_host(cl, modid, cmdid, &h);
		if (r != LARS_SUCC) {
			failed++;
			overload += r == LARS_OVERLOAD;
			noexist += r == LARS_NOEXIST;
			syserr += r == LARS_SYSTEM_ERROR;
			continue;
		}
		int pct = err_rate;
		for (int f = 0; f < n_fail; f++)
			if (fails[f].h.ip == h.ip && fails[f].h.port == h.port)
				pct = fails[f].pct;
		bool ok = (int)(rand_r(&seed) % 100) >= pct;
		sim_host_t *s = NULL;
		for (size_t k = 0; k < n_hosts; k++)
			if (hosts[k].h.ip == h.ip && hosts[k].h.port == h.port)
				s = &hosts[k];
		if (!s && n_hosts < MAX_SIM_HOSTS) {
			s = &hosts[n_hosts++];
			*s = (sim_host_t){ .h = h };
		}
		if (s) {
			s->picks++;
			ok ? s->succ++ : s->err++;
		}
		if (!ok)
			failed++;
		lars_report(cl, modid, cmdid, &h, ok ? LARS_SUCC : LARS_SYSTEM_ERROR);
	}
	printf("%-21s %10s %10s %10s\n", "HOST", "PICKS", "SUCC", "ERR");
	for (size_t k = 0; k < n_hosts; k++) {
		char hp[32];
		snprintf(hp, sizeof(hp), "%s:%d", hosts[k].h.ip_str, hosts[k].h.port);
		printf("%-21s %10lu %10lu %10lu\n", hp, hosts[k].picks, hosts[k].succ, hosts[k].err);
	}
	printf("calls %lu, failed %lu (%.2f%%): errors from hosts %lu, overload %lu, "
	       "no route %lu, system error %lu\n",
	       calls, failed, calls ? 100.0 * (double)failed / (double)calls : 0.0,
	       failed - overload - noexist - syserr, overload, noexist, syserr);
	int rc = 0;
	if (syserr == calls) {
		fprintf(stderr, "lars: %s\n", lars_client_error(cl));
		rc = LARS_SYSTEM_ERROR;
	} else if (noexist == calls) {
		fprintf(stderr, "lars: route %d/%d has no hosts\n", modid, cmdid);
		rc = LARS_NOEXIST;
	} else if (overload + noexist + syserr == calls) {
		fprintf(stderr, "lars: no call got a host\n");
		rc = LARS_OVERLOAD;
	}
	lars_client_free(cl);
	return rc;
}

/* ---- bench ---- */

typedef struct bench_thread {
	int modid, cmdid;
	double end;
	unsigned long loops, errors;
	unsigned long per_sec[3600];
	float *lat_us;
	size_t n_lat, cap;
	double start;
} bench_thread_t;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *bench_main(void *arg)
{
	bench_thread_t *t = arg;
	lars_client_t *c;
	if (lars_client_new(&opts, &c))
		return NULL;
	lars_reg_init(c, t->modid, t->cmdid);
	for (;;) {
		double t0 = now_s();
		if (t0 >= t->end)
			break;
		lars_host_t h;
		int r = lars_get_host(c, t->modid, t->cmdid, &h);
		double t1 = now_s();
		if (r != LARS_SUCC) {
			t->errors++;
			continue;
		}
		lars_report(c, t->modid, t->cmdid, &h, LARS_SUCC);
		t->loops++;
		size_t sec = (size_t)(t1 - t->start);
		if (sec < 3600)
			t->per_sec[sec]++;
		if (t->n_lat < t->cap)
			t->lat_us[t->n_lat++] = (float)((t1 - t0) * 1e6);
	}
	lars_client_free(c);
	return NULL;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

static int cmd_bench(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 's' },
		{ "modid", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int threads = 1, seconds = 10, modid = 1, c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			if (!parse_int(optarg, 1, MAX_THREADS, &threads))
				return usage_error("--threads takes 1..256, not '%s'", optarg);
			break;
		case 's':
			if (!parse_int(optarg, 1, 3600, &seconds))
				return usage_error("--seconds takes 1..3600, not '%s'", optarg);
			break;
		case 'm':
			if (!parse_int(optarg, 0, 2147483647, &modid))
				return usage_error("--modid takes an integer >= 0, not '%s'", optarg);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return usage_error("bad option for bench");
		}
	}
	if (optind != argc)
		return usage_error("bench takes no arguments besides its options");
	static bench_thread_t t[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	size_t cap = 2000000 / (size_t)threads + 1;
	float *lat = malloc(sizeof(float) * cap * (size_t)threads);
	if (!lat) {
		fprintf(stderr, "lars: out of memory\n");
		return LARS_SYSTEM_ERROR;
	}
	double start = now_s();
	for (int i = 0; i < threads; i++) {
		t[i] = (bench_thread_t){ .modid = modid, .cmdid = i + 1, .start = start,
					 .end = start + seconds, .lat_us = lat + (size_t)i * cap,
					 .cap = cap };
		pthread_create(&tid[i], NULL, bench_main, &t[i]);
	}
	unsigned long total = 0, errors = 0;
	size_t n = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		total += t[i].loops;
		errors += t[i].errors;
		memmove(lat + n, t[i].lat_us, t[i].n_lat * sizeof(float));
		n += t[i].n_lat;
	}
	for (int s = 0; s < seconds; s++) {
		unsigned long q = 0;
		for (int i = 0; i < threads; i++)
			q += t[i].per_sec[s];
		printf("second %3d: %lu qps\n", s + 1, q);
	}
	qsort(lat, n, sizeof(float), cmp_float);
	printf("threads %d, %d s: average %.0f qps, get_host p50 %.0f us, p99 %.0f us, errors %lu\n",
	       threads, seconds, (double)total / seconds, n ? lat[n / 2] : 0.0,
	       n ? lat[n * 99 / 100] : 0.0, errors);
	if (errors)
		fprintf(stderr, "lars: %lu calls got no host: does every key %d/1..%d have hosts?\n",
			errors, modid, threads);
	free(lat);
	return errors && !total ? LARS_SYSTEM_ERROR : 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "agent", required_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "retries", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char agent_ip[64];
	lars_client_options_init(&opts);
	/* LARS_AGENT=HOST:BASEPORT (deploy/lars-local env sets it) is the default. */
	const char *agent = getenv("LARS_AGENT"), *agent_from = "LARS_AGENT";
	int c;
	while ((c = getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
		switch (c) {
		case 'a':
			agent = optarg;
			agent_from = "--agent";
			break;
		case 'T':
			if (!parse_int(optarg, 1, 600000, &opts.timeout_ms))
				return usage_error("--timeout takes milliseconds, not '%s'", optarg);
			break;
		case 'r':
			if (!parse_int(optarg, 1, 100, &opts.retries))
				return usage_error("--retries takes 1..100, not '%s'", optarg);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return usage_error("unknown option");
		}
	}
	if (agent && *agent) {
		struct in_addr ia;
		snprintf(agent_ip, sizeof(agent_ip), "%s", agent);
		char *colon = strrchr(agent_ip, ':');
		if (colon)
			*colon = '\0';
		if (!colon || !parse_int(colon + 1, 1, 65533, &opts.base_port) ||
		    inet_pton(AF_INET, agent_ip, &ia) != 1)
			return usage_error("%s takes IPV4:BASEPORT, not '%s'", agent_from, agent);
		opts.agent_ip = agent_ip;
	}
	if (optind >= argc)
		return usage_error("missing command");
	const char *cmd = argv[optind];
	int sub_argc = argc - optind - 1;
	char **sub_argv = argv + optind + 1;
	for (int i = 0; i < sub_argc; i++)
		if (strcmp(sub_argv[i], "--help") == 0 || strcmp(sub_argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		}
	if (strcmp(cmd, "get-host") == 0)
		return cmd_get_host(sub_argc, sub_argv);
	if (strcmp(cmd, "get-route") == 0)
		return cmd_get_route(sub_argc, sub_argv);
	if (strcmp(cmd, "report") == 0)
		return cmd_report(sub_argc, sub_argv);
	/* getopt_long wants argv[0] to be the command name. */
	if (strcmp(cmd, "simulate") == 0)
		return cmd_simulate(sub_argc + 1, sub_argv - 1);
	if (strcmp(cmd, "bench") == 0)
		return cmd_bench(sub_argc + 1, sub_argv - 1);
	return usage_error("unknown command '%s'", cmd);
}
