// SPDX-License-Identifier: MIT
// lars: command-line tools on top of the client library.
//
//   lars get-host MODID CMDID            prints "host is IP:PORT"
//   lars get-route MODID CMDID           prints one IP:PORT per line (drained marked)
//   lars report MODID CMDID IP PORT RETCODE [--latency-us N]
//   lars simulate MODID CMDID [--err-rate PCT] [--count N] [--fail IP:PORT=PCT ...]
//                 [--latency-us N | --latency-us-spread LO:HI] [--slow IP:PORT=LO[:HI] ...]
//   lars bench [--threads N] [--seconds S] [--modid M] [--latency-us N] [--shm | --udp]
//   lars register MODID CMDID PORT [--ip IP] [--weight W] [--check tcp|http:/PATH|none]
//                 [--ttl S]               registers, keeps it until SIGINT/SIGTERM
//   lars deregister MODID CMDID PORT [--ip IP]
//
// Options may come before or after the command and its arguments (as GNU
// getopt permutes them); "--" ends the options. A negative number ("-1",
// a RETCODE) is an argument, not an option.
//
// Exit status: the LARS_* return code (0 success, 1 overload, 2 system
// error, 3 no such route, or for deregister no such registration); 64 for
// a usage error.
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_state.h"
#include "frame.h"
#include "jbuf.h"
#include "lars_client.h"
#include "lars_config.h"

#define EXIT_USAGE 64
#define MAX_FAIL 64
#define MAX_SLOW 64
#define MAX_SIM_HOSTS 1024
#define MAX_THREADS 256
#define PAUSE_MS 50 /* between asks for a route the agent is still fetching */
#define REFRESH_FALLBACK_S 30 /* register: the TTL assumed when the agent gives none */

static lars_client_options_t opts;

/* --fail IP:PORT=PCT of simulate. */
typedef struct fail_rule {
	lars_host_t h;
	int pct;
} fail_rule_t;

/*
 * The call durations a report carries: none (@on false: lars_report), or
 * drawn uniformly from [@lo, @hi] microseconds (@lo == @hi: a fixed value).
 */
typedef struct lat_model {
	bool on;
	uint32_t lo, hi;
} lat_model_t;

/* --slow IP:PORT=LO[:HI] of simulate: that host's calls take this long. */
typedef struct slow_rule {
	lars_host_t h;
	lat_model_t lat;
} slow_rule_t;

/* Options of report, simulate and bench, parsed with the global ones. */
static struct {
	int err_rate, count, n_fail, n_slow;
	fail_rule_t fails[MAX_FAIL];
	slow_rule_t slows[MAX_SLOW];
	lat_model_t lat;       /* --latency-us or --latency-us-spread */
	int threads, seconds, modid;
	lars_register_options_t reg; /* register: --ip, --weight, --check, --ttl */
	/* The first one given, for the error. */
	const char *sim_opt, *bench_opt, *lat_opt, *spread_opt, *reg_opt, *ip_opt;
	const char *path_opt; /* --shm / --udp: bench and simulate */
} sub = { .count = 1000, .threads = 1, .seconds = 10, .modid = 1 };

static const char usage[] =
	"Usage: lars [OPTIONS] COMMAND ... [OPTIONS]\n"
	"\n"
	"  get-host MODID CMDID          ask the agent for a host: \"host is IP:PORT\";\n"
	"                                a route still being fetched is asked again\n"
	"                                until --timeout x --retries has passed\n"
	"  get-route MODID CMDID [-o json]\n"
	"                                every host of the route, one IP:PORT per line\n"
	"                                (\"IP:PORT drained\" for a drained host)\n"
	"                                (waits the same way; warns when the list is cut);\n"
	"                                -o json: {\"modid\", \"cmdid\", \"hosts\": [{\"ip\",\n"
	"                                \"port\", \"drained\"}], \"host_total\", \"cut\"}\n"
	"  report MODID CMDID IP PORT RETCODE [--latency-us N]\n"
	"                                report a call's outcome (RETCODE 0 = success) and\n"
	"                                its duration in microseconds (0 = not measured,\n"
	"                                the default), then check that the agent answers\n"
	"  simulate MODID CMDID [--err-rate PCT] [--count N] [--fail IP:PORT=PCT ...]\n"
	"           [--latency-us N | --latency-us-spread LO:HI] [--slow IP:PORT=LO[:HI] ...]\n"
	"           [--shm | --udp]\n"
	"                                get_host + report in a loop, outcomes drawn from\n"
	"                                the error rates; prints per host picks, successes,\n"
	"                                errors, and the error rate callers saw. Durations\n"
	"                                (none unless given): N us each, or uniform in\n"
	"                                LO..HI us; --slow: that host's calls take LO us\n"
	"                                (or LO..HI); a MEAN_US column shows what was sent.\n"
	"                                Over UDP unless --shm: calls that take no time\n"
	"                                would outrun the agent's verdicts\n"
	"  agent-state [MODID CMDID] [-o json]\n"
	"                                what the agent holds: every route (or one) with\n"
	"                                its version, age, state and panic flag, and per\n"
	"                                host its state, weight, picks, counters, window\n"
	"                                age and last change with the rule that fired\n"
	"  bench [--threads N] [--seconds S] [--modid M] [--latency-us N] [--shm | --udp]\n"
	"                                closed-loop QPS: each thread get_host + report\n"
	"                                on its own key (M, thread number); each report\n"
	"                                carries the get_host round trip just measured,\n"
	"                                or N us with --latency-us (0: none); --udp asks\n"
	"                                the agent over UDP, --shm (the default when the\n"
	"                                agent's snapshot is there) picks in-process\n"
	"  register MODID CMDID PORT [--ip IP] [--weight W] [--check tcp|http:/PATH|none]\n"
	"           [--ttl S]\n"
	"                                register this instance (IP default: the agent's\n"
	"                                caller address; weight 1..1000, default 100; check\n"
	"                                default tcp; TTL 1..86400 s, default the agent's),\n"
	"                                print \"registered MODID/CMDID IP:PORT (lease N s)\",\n"
	"                                keep it while running (registered again every\n"
	"                                TTL/3, changes on stderr); SIGINT/SIGTERM:\n"
	"                                deregister, wait out the drain, exit 0\n"
	"  deregister MODID CMDID PORT [--ip IP]\n"
	"                                take a registered instance out: the agent drains\n"
	"                                it, then removes it (waited for); 3 if this agent\n"
	"                                has no such registration\n"
	"\n"
	"  --agent HOST:BASEPORT   the agent (default $LARS_AGENT, else 127.0.0.1:8888)\n"
	"  --timeout MS            per attempt (default 100); --retries N (default 3)\n"
	"  -h, --help              help; --version: the version\n"
	"Options go before or after the command; \"--\" ends them.\n"
	"\n"
	"Exit status: 0 success, 1 overload, 2 system error, 3 no such route (deregister:\n"
	"no such registration), 64 usage.\n";

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

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The agent's first answer for a key it has not fetched yet is NOEXIST, as
 * lars_reg_init() knows: ask again every PAUSE_MS until the tool's time
 * (--timeout x --retries) is up. True if there is time for another ask.
 */
static bool wait_more(double deadline)
{
	double left = deadline - now_s();
	if (left <= 0)
		return false;
	double pause = left < PAUSE_MS / 1e3 ? left : PAUSE_MS / 1e3;
	struct timespec ts = { 0, (long)(pause * 1e9) };
	nanosleep(&ts, NULL);
	return true;
}

static double deadline_of_tool(void)
{
	return now_s() + (double)opts.timeout_ms * opts.retries / 1e3;
}

static int cmd_get_host(int argc, char **argv)
{
	int modid, cmdid;
	if (argc != 2 || !parse_key(argv, &modid, &cmdid))
		return usage_error("get-host needs MODID CMDID (integers >= 0)");
	lars_client_t *c = client_or_die();
	lars_host_t h;
	double deadline = deadline_of_tool();
	int r;
	do
		r = lars_get_host(c, modid, cmdid, &h);
	while (r == LARS_NOEXIST && wait_more(deadline));
	if (r == LARS_SUCC)
		printf("host is %s:%d\n", h.ip_str, h.port);
	report_error(c, r);
	lars_client_free(c);
	return r;
}

static const char *output_fmt = "text"; /* -o text | json */

/* get-route -o json: one document, the hosts as the agent gave them. */
static void print_route_json(int modid, int cmdid, const lars_host_t *hosts,
			     const unsigned *flags, size_t n, size_t total)
{
	jbuf_t b = { 0 };
	jbuf_printf(&b, "{\"modid\":%d,\"cmdid\":%d,\"hosts\":[", modid, cmdid);
	for (size_t i = 0; i < n; i++)
		jbuf_printf(&b, "%s{\"ip\":\"%s\",\"port\":%d,\"drained\":%s}", i ? "," : "",
			    hosts[i].ip_str, hosts[i].port,
			    flags[i] & LARS_HOST_DRAINED ? "true" : "false");
	jbuf_printf(&b, "],\"host_total\":%zu,\"cut\":%s}\n", total > n ? total : n,
		    total > n ? "true" : "false");
	size_t len;
	char *text = jbuf_take(&b, &len);
	if (text)
		fwrite(text, 1, len, stdout);
	else
		fprintf(stderr, "lars: out of memory\n");
	free(text);
}

static int cmd_get_route(int argc, char **argv)
{
	int modid, cmdid;
	if (argc != 2 || !parse_key(argv, &modid, &cmdid))
		return usage_error("get-route needs MODID CMDID (integers >= 0)");
	lars_client_t *c = client_or_die();
	/* As many as a datagram can carry (all-zero hosts are 2 bytes each). */
	const size_t cap = 65536 / 2;
	lars_host_t *hosts = malloc(cap * sizeof(*hosts));
	unsigned *flags = malloc(cap * sizeof(*flags));
	if (!hosts || !flags) {
		fprintf(stderr, "lars: out of memory\n");
		free(hosts);
		free(flags);
		lars_client_free(c);
		return LARS_SYSTEM_ERROR;
	}
	size_t n, total;
	double deadline = deadline_of_tool();
	int r;
	do
		r = lars_get_route_flags(c, modid, cmdid, hosts, flags, cap, &n, &total);
	while (r == LARS_SUCC && n == 0 && wait_more(deadline));
	if (r == LARS_SUCC && strcmp(output_fmt, "json") == 0 && n > 0) {
		print_route_json(modid, cmdid, hosts, flags, n < cap ? n : cap, total);
		if (total > n)
			fprintf(stderr, "lars: warning: the list is cut: %zu of %zu hosts (what one "
					"datagram holds)\n", n, total);
	} else if (r == LARS_SUCC) {
		/* A drained host (issue 19) is marked after a space. */
		for (size_t i = 0; i < n && i < cap; i++)
			printf("%s:%d%s\n", hosts[i].ip_str, hosts[i].port,
			       flags[i] & LARS_HOST_DRAINED ? " drained" : "");
		if (total > n)
			fprintf(stderr, "lars: warning: the list is cut: %zu of %zu hosts (what one "
					"datagram holds)\n", n, total);
		if (n == 0) {
			r = LARS_NOEXIST; /* no hosts (yet) */
			fprintf(stderr, "lars: the route has no hosts (yet)\n");
		}
	}
	free(hosts);
	free(flags);
	report_error(c, r);
	lars_client_free(c);
	return r;
}

/* ---- agent-state (issue 20.1): the agent's view, over its own message ids ---- */

/* One AgentStateRequest to the agent's first socket, the answer into @st.
 * Return: 0, or an exit status after the reason on stderr. */
static int agent_state_call(bool all, int modid, int cmdid, as_state_t *st)
{
	lars_AgentStateRequest req = { .modid = modid, .cmdid = cmdid, .all = all };
	uint8_t out[64];
	size_t olen;
	if (msg_frame_encode(LARS_ID_AGENT_STATE_REQ, lars_AgentStateRequest_fields, &req, out,
			     sizeof(out), &olen))
		return LARS_SYSTEM_ERROR;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opts.base_port) };
	inet_pton(AF_INET, opts.agent_ip ? opts.agent_ip : "127.0.0.1", &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "lars: cannot reach the agent: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return LARS_SYSTEM_ERROR;
	}
	static uint8_t in[65536];
	int r = LARS_SYSTEM_ERROR;
	const char *why = "no answer";
	for (int attempt = 0; attempt < opts.retries && r == LARS_SYSTEM_ERROR; attempt++) {
		if (send(fd, out, olen, 0) < 0) {
			why = strerror(errno);
			break;
		}
		double end = now_s() + opts.timeout_ms / 1e3;
		for (;;) {
			int left = (int)((end - now_s()) * 1e3);
			struct pollfd p = { .fd = fd, .events = POLLIN };
			if (left <= 0 || poll(&p, 1, left) <= 0)
				break;
			ssize_t n = recv(fd, in, sizeof(in), 0);
			if (n < 0) {
				why = strerror(errno); /* refused: nothing listens there */
				break;
			}
			frame_hdr_t h;
			const uint8_t *body;
			frame_idset_t ids;
			frame_idset_clear(&ids);
			frame_idset_add(&ids, LARS_ID_AGENT_STATE_RESP);
			if (frame_udp_parse(in, (size_t)n, &ids, &h, &body) != FRAME_OK)
				continue; /* not the answer */
			if (as_decode(body, (size_t)h.msglen, st, &why) == 0)
				r = 0;
			else
				attempt = opts.retries; /* a bad answer: asking again is no use */
			break;
		}
	}
	close(fd);
	if (r)
		fprintf(stderr, "lars: %s: the agent at %s:%d did not answer agent-state (%s; "
				"an original lars_agent has no agent-state, and ours answers only "
				"on loopback)\n", lars_strerror(r),
			opts.agent_ip ? opts.agent_ip : "127.0.0.1", opts.base_port, why);
	return r;
}

/* Milliseconds as "850ms", "12.3s", "4m05s", "2h10m". */
static const char *age_text(uint64_t ms, char buf[24])
{
	if (ms < 1000)
		snprintf(buf, 24, "%llums", (unsigned long long)ms);
	else if (ms < 60000)
		snprintf(buf, 24, "%.1fs", (double)ms / 1e3);
	else if (ms < 3600000)
		snprintf(buf, 24, "%llum%02llus", (unsigned long long)(ms / 60000),
			 (unsigned long long)(ms / 1000 % 60));
	else
		snprintf(buf, 24, "%lluh%02llum", (unsigned long long)(ms / 3600000),
			 (unsigned long long)(ms / 60000 % 60));
	return buf;
}

static void agent_state_text(const as_state_t *st)
{
	size_t hi = 0;
	for (size_t i = 0; i < st->n_routes; i++) {
		const lars_RouteState *r = &st->routes[i];
		char age[24], ver[24] = "-";
		if (r->version)
			snprintf(ver, sizeof(ver), "%lld", (long long)r->version);
		printf("%sroute %d/%d: %s, version %s, updated %s ago, %u hosts%s\n", i ? "\n" : "",
		       r->modid, r->cmdid, as_route_state_name(r->state), ver, age_text(r->age_ms, age),
		       r->host_total, r->panic ? ", PANIC (picking over every host)" : "");
		if (!r->host_listed)
			continue;
		printf("  %-21s %-10s %6s %8s %7s %7s %7s %7s %5s %5s %7s %7s  %s\n", "HOST", "STATE",
		       "WEIGHT", "PICKS", "VSUCC", "VERR", "SUCC", "ERR", "CSUCC", "CERR", "WINDOW",
		       "CHANGED", "RULE");
		for (uint32_t j = 0; j < r->host_listed && hi < st->n_hosts; j++, hi++) {
			const lars_HostState *h = &st->hosts[hi];
			char ip[16], host[32], win[24], chg[24];
			msg_ip_to_str(h->ip, ip);
			snprintf(host, sizeof(host), "%s:%d", ip, h->port);
			printf("  %-21s %-10s %6u %8llu %7u %7u %7u %7u %5u %5u %7s %7s  %s\n", host,
			       as_host_state_name(h->state), h->weight, (unsigned long long)h->picks,
			       h->vsucc, h->verr, h->rsucc, h->rerr, h->contin_succ, h->contin_err,
			       age_text(h->window_age_ms, win), age_text(h->since_change_ms, chg),
			       h->rule[0] ? h->rule : "-");
		}
		if (r->host_listed < r->host_total)
			printf("  ... %u more hosts not listed (one datagram)\n",
			       r->host_total - r->host_listed);
	}
}

static int cmd_agent_state(int argc, char **argv)
{
	int modid = 0, cmdid = 0;
	if (argc != 0 && (argc != 2 || !parse_key(argv, &modid, &cmdid)))
		return usage_error("agent-state takes nothing or MODID CMDID (integers >= 0)");
	as_state_t st;
	as_init(&st);
	int r = agent_state_call(argc == 0, modid, cmdid, &st);
	if (r == 0) {
		if (strcmp(output_fmt, "json") == 0) {
			size_t len;
			char *json = as_json(&st, &len);
			if (json)
				fwrite(json, 1, len, stdout);
			free(json);
		} else if (st.n_routes == 0) {
			printf(argc ? "the agent holds no route %d/%d\n" : "the agent holds no routes\n",
			       modid, cmdid);
		} else {
			agent_state_text(&st);
		}
		if (st.cut)
			fprintf(stderr, "lars: warning: the answer is cut to one datagram: %zu of %u "
					"routes listed (GET /routes on the agent's metrics port has all)\n",
				st.n_routes, st.route_total);
	}
	as_deinit(&st);
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
	/* Without --latency-us the bytes are the original client's. */
	int r = sub.lat.on ? lars_report_latency(c, modid, cmdid, &h, retcode, sub.lat.lo)
			   : lars_report(c, modid, cmdid, &h, retcode);
	if (r == LARS_SUCC) {
		/*
		 * A refusal from a dead agent may arrive after lars_report()
		 * looked, or not at all (ICMP is rate-limited): only an answer
		 * shows the agent got it. get_route changes no balancer state.
		 */
		size_t n, total;
		if (lars_get_route_ex(c, modid, cmdid, NULL, 0, &n, &total) != LARS_SUCC) {
			fprintf(stderr, "lars: system error: the report was sent, but the agent "
					"does not answer: %s\n", lars_client_error(c));
			r = LARS_SYSTEM_ERROR;
		}
	} else {
		report_error(c, r);
	}
	lars_client_free(c);
	return r;
}

/* ---- simulate ---- */

typedef struct sim_host {
	lars_host_t h;
	unsigned long picks, succ, err;
	unsigned long n_lat;  /* reports that carried a duration */
	uint64_t sum_lat_us;  /* and their sum */
} sim_host_t;

/* A duration from @m: uniform in [lo, hi] (two rand_r()s cover 32 bits). */
static uint32_t lat_draw(const lat_model_t *m, unsigned *seed)
{
	if (m->hi <= m->lo)
		return m->lo;
	uint64_t span = (uint64_t)m->hi - m->lo + 1;
	uint64_t r = ((uint64_t)(unsigned)rand_r(seed) << 31) ^ (uint64_t)(unsigned)rand_r(seed);
	return m->lo + (uint32_t)(r % span);
}

/* The model for a call to @h: its --slow rule, else --latency-us(-spread). */
static const lat_model_t *lat_model_for(const lars_host_t *h)
{
	for (int i = 0; i < sub.n_slow; i++)
		if (sub.slows[i].h.ip == h->ip && sub.slows[i].h.port == h->port)
			return &sub.slows[i].lat;
	return &sub.lat;
}

/* report @h's call (@ok) with the duration its model gives; count it in @s. */
static void sim_report(lars_client_t *cl, int modid, int cmdid, const lars_host_t *h, bool ok,
		       sim_host_t *s, unsigned *seed)
{
	int rc = ok ? LARS_SUCC : LARS_SYSTEM_ERROR;
	const lat_model_t *m = lat_model_for(h);
	if (!m->on) {
		lars_report(cl, modid, cmdid, h, rc);
		return;
	}
	uint32_t us = lat_draw(m, seed);
	lars_report_latency(cl, modid, cmdid, h, rc, us);
	if (s && us) {
		s->n_lat++;
		s->sum_lat_us += us;
	}
}

static void sim_print(const sim_host_t *hosts, size_t n_hosts)
{
	bool lat = sub.lat.on || sub.n_slow;
	printf("%-21s %10s %10s %10s", "HOST", "PICKS", "SUCC", "ERR");
	printf(lat ? " %10s\n" : "\n", "MEAN_US");
	for (size_t k = 0; k < n_hosts; k++) {
		const sim_host_t *s = &hosts[k];
		char hp[32];
		snprintf(hp, sizeof(hp), "%s:%d", s->h.ip_str, s->h.port);
		printf("%-21s %10lu %10lu %10lu", hp, s->picks, s->succ, s->err);
		if (!lat)
			printf("\n");
		else if (s->n_lat)
			printf(" %10.0f\n", (double)s->sum_lat_us / (double)s->n_lat);
		else
			printf(" %10s\n", "-");
	}
}

static int cmd_simulate(int argc, char **argv)
{
	int err_rate = sub.err_rate, count = sub.count, n_fail = sub.n_fail;
	const fail_rule_t *fails = sub.fails;
	int modid, cmdid;
	if (argc != 2 || !parse_key(argv, &modid, &cmdid))
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
		sim_report(cl, modid, cmdid, &h, ok, s, &seed);
	}
	sim_print(hosts, n_hosts);
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
	lat_model_t lat; /* on: send lat.lo; off: the measured round trip */
	bool no_lat;     /* --latency-us 0: send none */
	double end;
	unsigned long loops, errors;
	unsigned long per_sec[3600];
	float *lat_us;
	size_t n_lat, cap;
	double start;
} bench_thread_t;

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
		/* The duration sent: the round trip just timed (>= 1 us: 0 is
		 * "not measured"), or --latency-us N, or none. */
		double us = (t1 - t0) * 1e6;
		if (t->no_lat)
			lars_report(c, t->modid, t->cmdid, &h, LARS_SUCC);
		else
			lars_report_latency(c, t->modid, t->cmdid, &h, LARS_SUCC,
					    t->lat.on ? t->lat.lo
						      : us < 1 ? 1 : us > 4e9 ? 4000000000u
						      : (uint32_t)us);
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
	int threads = sub.threads, seconds = sub.seconds, modid = sub.modid;
	if (argc != 0)
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
					 .cap = cap, .lat = sub.lat,
					 .no_lat = sub.lat.on && sub.lat.lo == 0 };
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
	/* Before the summary, which stays the last line (bench/soak.sh reads it). */
	if (!sub.lat.on)
		printf("reports carry latency_us: the get_host round trip measured\n");
	else if (sub.lat.lo)
		printf("reports carry latency_us: %u\n", (unsigned)sub.lat.lo);
	else
		printf("reports carry latency_us: none\n");
	printf("threads %d, %d s: average %.0f qps, get_host p50 %.0f us, p99 %.0f us, errors %lu\n",
	       threads, seconds, (double)total / seconds, n ? lat[n / 2] : 0.0,
	       n ? lat[n * 99 / 100] : 0.0, errors);
	if (errors)
		fprintf(stderr, "lars: %lu calls got no host: does every key %d/1..%d have hosts?\n",
			errors, modid, threads);
	free(lat);
	return errors && !total ? LARS_SYSTEM_ERROR : 0;
}

/* ---- register / deregister (issue 23): self-registration through the agent ---- */

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

/*
 * SIGINT/SIGTERM set stop_signal. No SA_RESTART, so a sleep ends with
 * EINTR; SA_RESETHAND, so a second signal ends the tool at once (the agent
 * finishes a drain it was asked for by itself).
 */
static void catch_stop(void)
{
	struct sigaction sa = { .sa_handler = on_stop, .sa_flags = SA_RESETHAND };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/*
 * Sleep @ms, or less if a stop signal comes. In slices of at most a
 * second: a signal that lands between the check and nanosleep() (which
 * cannot close that window) then costs one slice, not a refresh period.
 */
static void sleep_unless_stopped(int64_t ms)
{
	double end = now_s() + (double)ms / 1e3;
	while (!stop_signal) {
		double left = end - now_s();
		if (left <= 0)
			break;
		struct timespec ts = { 1, 0 };
		if (left < 1)
			ts = (struct timespec){ 0, (long)(left * 1e9) };
		nanosleep(&ts, NULL); /* EINTR: the loop looks at stop_signal */
	}
}

/*
 * "MODID/CMDID IP:PORT": the address of the agent's last answer, else
 * --ip, else "*" (the agent's caller address, unnamed).
 */
static const char *reg_name(const lars_client_t *c, int modid, int cmdid, int port, char buf[64])
{
	lars_host_t h;
	lars_register_lease(c, &h, NULL);
	const char *ip = h.ip ? h.ip_str : sub.reg.ip && *sub.reg.ip ? sub.reg.ip : "*";
	snprintf(buf, 64, "%d/%d %s:%d", modid, cmdid, ip, port);
	return buf;
}

/* A successful lars_register() in words: "registered [again ]NAME (lease 10 s)". */
static const char *reg_state_text(const lars_client_t *c, const char *name, bool again,
				  char buf[128])
{
	unsigned flags;
	int ttl = lars_register_lease(c, NULL, &flags);
	const char *a = again ? "again " : "";
	if (flags & LARS_LEASE_OPERATOR)
		snprintf(buf, 128, "%s is an operator's host: left as it is", name);
	else if (ttl > 0)
		snprintf(buf, 128, "registered %s%s (lease %d s)", a, name, ttl);
	else
		snprintf(buf, 128, "registered %s%s", a, name);
	return buf;
}

/* Register again within a third of the lease (of --ttl or a guess when there is none). */
static int64_t reg_refresh_ms(const lars_client_t *c)
{
	int ttl = lars_register_lease(c, NULL, NULL);
	if (ttl <= 0)
		ttl = sub.reg.ttl_s > 0 ? sub.reg.ttl_s : REFRESH_FALLBACK_S;
	return (int64_t)ttl * 1000 / 3;
}

/*
 * Keep the registration until a stop signal: lars_register() every TTL/3,
 * which also registers again with an agent that restarted. Only changes
 * are logged (failing, no answer, registered again).
 */
static void reg_keep(lars_client_t *c, int modid, int cmdid, int port, const char *name)
{
	char last[128], now[128], text[128];
	reg_state_text(c, name, false, last);
	bool ok = true;
	for (;;) {
		sleep_unless_stopped(reg_refresh_ms(c));
		if (stop_signal)
			return;
		int r = lars_register(c, modid, cmdid, port, &sub.reg);
		if (r == LARS_SUCC)
			reg_state_text(c, name, false, now);
		else
			snprintf(now, sizeof(now), "%s", lars_client_error(c));
		if (strcmp(now, last) != 0 && r == LARS_SUCC)
			fprintf(stderr, "lars: %s\n", reg_state_text(c, name, !ok, text));
		else if (strcmp(now, last) != 0)
			fprintf(stderr, "lars: %s: %s\n", name, now);
		memcpy(last, now, sizeof(last));
		ok = r == LARS_SUCC;
	}
}

/*
 * How a lars_deregister() ended, in words. @quiet_unknown: an instance the
 * agent no longer has counts as deregistered (register's own ending: the
 * agent restarted and forgot it). The exit status.
 */
static int dereg_result(lars_client_t *c, int r, const char *name, bool quiet_unknown)
{
	unsigned flags;
	lars_register_lease(c, NULL, &flags);
	if (r == LARS_SUCC && (flags & LARS_LEASE_OPERATOR))
		printf("%s is an operator's host: left as it is\n", name);
	else if (r == LARS_SUCC)
		printf("deregistered %s\n", name);
	else if (r == LARS_NOEXIST && quiet_unknown)
		printf("deregistered %s (the agent no longer had it)\n", name);
	else if (r == LARS_NOEXIST)
		fprintf(stderr, "lars: %s is not registered through this agent\n", name);
	else
		fprintf(stderr, "lars: %s: %s: %s (a lease lapses after its TTL)\n",
			lars_strerror(r), name, lars_client_error(c));
	fflush(stdout);
	return r == LARS_NOEXIST && quiet_unknown ? 0 : r;
}

/* MODID CMDID PORT of register and deregister. */
static bool parse_instance(int argc, char **argv, int *modid, int *cmdid, int *port)
{
	return argc == 3 && parse_key(argv, modid, cmdid) && parse_int(argv[2], 1, 65535, port);
}

static int cmd_register(int argc, char **argv)
{
	int modid, cmdid, port;
	if (!parse_instance(argc, argv, &modid, &cmdid, &port))
		return usage_error("register needs MODID CMDID PORT (integers >= 0, PORT 1..65535)");
	if (!sub.reg.check)
		sub.reg.check = "tcp";
	lars_client_t *c = client_or_die();
	catch_stop();
	char name[64], text[128];
	int r = lars_register(c, modid, cmdid, port, &sub.reg);
	if (r != LARS_SUCC) {
		report_error(c, r);
		lars_client_free(c);
		return r;
	}
	/* Named once: the address the agent registered, for every line after. */
	reg_name(c, modid, cmdid, port, name);
	printf("%s\n", reg_state_text(c, name, false, text));
	fflush(stdout);
	reg_keep(c, modid, cmdid, port, name);
	r = dereg_result(c, lars_deregister(c, modid, cmdid, port, &sub.reg), name, true);
	lars_client_free(c);
	return r;
}

static int cmd_deregister(int argc, char **argv)
{
	int modid, cmdid, port;
	if (!parse_instance(argc, argv, &modid, &cmdid, &port))
		return usage_error("deregister needs MODID CMDID PORT (integers >= 0, PORT 1..65535)");
	lars_client_t *c = client_or_die();
	char name[64];
	int r = lars_deregister(c, modid, cmdid, port, &sub.reg);
	r = dereg_result(c, r, reg_name(c, modid, cmdid, port, name), false);
	lars_client_free(c);
	return r;
}

static const struct option all_opts[] = {
	{ "agent", required_argument, NULL, 'a' },
	{ "timeout", required_argument, NULL, 'T' },
	{ "retries", required_argument, NULL, 'r' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	/* simulate */
	{ "err-rate", required_argument, NULL, 'e' },
	{ "count", required_argument, NULL, 'n' },
	{ "fail", required_argument, NULL, 'f' },
	{ "latency-us-spread", required_argument, NULL, 'S' },
	{ "slow", required_argument, NULL, 'w' },
	/* report, simulate and bench */
	{ "latency-us", required_argument, NULL, 'L' },
	/* bench */
	{ "threads", required_argument, NULL, 't' },
	{ "seconds", required_argument, NULL, 's' },
	{ "modid", required_argument, NULL, 'm' },
	{ "shm", no_argument, NULL, 'M' },
	{ "udp", no_argument, NULL, 'U' },
	/* agent-state */
	{ "output", required_argument, NULL, 'o' },
	/* register (and --ip: deregister) */
	{ "ip", required_argument, NULL, 'I' },
	{ "weight", required_argument, NULL, 'W' },
	{ "check", required_argument, NULL, 'C' },
	{ "ttl", required_argument, NULL, 'X' },
	{ NULL, 0, NULL, 0 },
};

static bool is_negative_number(const char *s)
{
	if (s[0] != '-' || !s[1])
		return false;
	for (s++; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Does "--NAME" (without "=VALUE") take the next word as its value? */
static bool takes_value(const char *arg)
{
	const char *name = arg + 2;
	size_t len = strlen(name);
	const struct option *hit = NULL;
	for (const struct option *o = all_opts; o->name; o++) {
		if (strncmp(o->name, name, len) != 0)
			continue;
		if (strlen(o->name) == len)
			return o->has_arg == required_argument; /* exact */
		if (hit)
			return false; /* ambiguous: getopt_long says so */
		hit = o;
	}
	return hit && hit->has_arg == required_argument;
}

static bool parse_u32(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		return false;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* "LO[:HI]" microseconds (HI >= LO; LO alone: a fixed value) into @m. */
static bool parse_spread(const char *arg, bool need_hi, lat_model_t *m)
{
	char buf[64];
	if (strlen(arg) >= sizeof(buf))
		return false;
	snprintf(buf, sizeof(buf), "%s", arg);
	char *colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	else if (need_hi)
		return false;
	if (!parse_u32(buf, &m->lo))
		return false;
	m->hi = m->lo;
	if (colon && (!parse_u32(colon + 1, &m->hi) || m->hi < m->lo))
		return false;
	m->on = true;
	return true;
}

/* --slow IP:PORT=LO[:HI] into sub.slows. 0, or an exit status. */
static int take_slow(const char *arg)
{
	char buf[96];
	sub.sim_opt = sub.sim_opt ? sub.sim_opt : "--slow";
	if (strlen(arg) >= sizeof(buf) || sub.n_slow == MAX_SLOW)
		goto bad;
	snprintf(buf, sizeof(buf), "%s", arg);
	char *colon = strchr(buf, ':'), *eq = strchr(buf, '=');
	if (!colon || !eq || eq < colon)
		goto bad;
	*colon = *eq = '\0';
	slow_rule_t *r = &sub.slows[sub.n_slow];
	if (!parse_host(buf, colon + 1, &r->h) || !parse_spread(eq + 1, false, &r->lat))
		goto bad;
	sub.n_slow++;
	return 0;
bad:
	return usage_error("--slow takes IP:PORT=MICROSECONDS or IP:PORT=LO:HI (at most %d), "
			   "not '%s'", MAX_SLOW, arg);
}

/*
 * --ip, --weight, --check, --ttl into sub.reg. The form of --check is a
 * usage error here; the library checks an HTTP path's bytes and length.
 */
static int take_reg_option(int c, const char *arg)
{
	struct in_addr ia;
	switch (c) {
	case 'I':
		sub.ip_opt = "--ip";
		if (inet_pton(AF_INET, arg, &ia) != 1)
			return usage_error("--ip takes a dotted IPv4 address, not '%s'", arg);
		sub.reg.ip = arg;
		return 0;
	case 'W':
		sub.reg_opt = sub.reg_opt ? sub.reg_opt : "--weight";
		if (!parse_int(arg, 1, 1000, &sub.reg.weight))
			return usage_error("--weight takes 1..1000, not '%s'", arg);
		return 0;
	case 'C':
		sub.reg_opt = sub.reg_opt ? sub.reg_opt : "--check";
		if (strcmp(arg, "tcp") != 0 && strcmp(arg, "none") != 0 &&
		    strncmp(arg, "http:/", 6) != 0)
			return usage_error("--check takes tcp, http:/PATH or none, not '%s'", arg);
		sub.reg.check = arg;
		return 0;
	case 'X':
		sub.reg_opt = sub.reg_opt ? sub.reg_opt : "--ttl";
		if (!parse_int(arg, 1, 86400, &sub.reg.ttl_s))
			return usage_error("--ttl takes seconds 1..86400, not '%s'", arg);
		return 0;
	}
	return usage_error("unknown option");
}

/* One option (from getopt_long) into opts / sub. 0, or an exit status. */
static int take_option(int c, const char *arg, const char **agentp, const char **fromp)
{
	switch (c) {
	case 'a':
		*agentp = arg;
		*fromp = "--agent";
		return 0;
	case 'T':
		if (!parse_int(arg, 1, 600000, &opts.timeout_ms))
			return usage_error("--timeout takes milliseconds, not '%s'", arg);
		return 0;
	case 'r':
		if (!parse_int(arg, 1, 100, &opts.retries))
			return usage_error("--retries takes 1..100, not '%s'", arg);
		return 0;
	case 'e':
		sub.sim_opt = sub.sim_opt ? sub.sim_opt : "--err-rate";
		if (!parse_int(arg, 0, 100, &sub.err_rate))
			return usage_error("--err-rate takes a percentage 0..100, not '%s'", arg);
		return 0;
	case 'n':
		sub.sim_opt = sub.sim_opt ? sub.sim_opt : "--count";
		if (!parse_int(arg, 1, 100000000, &sub.count))
			return usage_error("--count takes 1..100000000, not '%s'", arg);
		return 0;
	case 'f': {
		sub.sim_opt = sub.sim_opt ? sub.sim_opt : "--fail";
		char buf[64];
		snprintf(buf, sizeof(buf), "%s", arg);
		char *colon = strchr(buf, ':'), *eq = strchr(buf, '=');
		if (!colon || !eq || eq < colon || sub.n_fail == MAX_FAIL)
			return usage_error("--fail takes IP:PORT=PERCENT, not '%s'", arg);
		*colon = *eq = '\0';
		if (!parse_host(buf, colon + 1, &sub.fails[sub.n_fail].h) ||
		    !parse_int(eq + 1, 0, 100, &sub.fails[sub.n_fail].pct))
			return usage_error("--fail takes IP:PORT=PERCENT, not '%s'", arg);
		sub.n_fail++;
		return 0;
	}
	case 'L':
		if (sub.spread_opt)
			return usage_error("--latency-us and --latency-us-spread exclude each other");
		sub.lat_opt = "--latency-us";
		if (!parse_u32(arg, &sub.lat.lo))
			return usage_error("--latency-us takes microseconds 0..4294967295, not '%s'",
					   arg);
		sub.lat = (lat_model_t){ .on = true, .lo = sub.lat.lo, .hi = sub.lat.lo };
		return 0;
	case 'S':
		if (sub.lat_opt)
			return usage_error("--latency-us and --latency-us-spread exclude each other");
		sub.sim_opt = sub.sim_opt ? sub.sim_opt : "--latency-us-spread";
		sub.spread_opt = "--latency-us-spread";
		if (!parse_spread(arg, true, &sub.lat))
			return usage_error("--latency-us-spread takes LO:HI microseconds (LO <= HI), "
					   "not '%s'", arg);
		return 0;
	case 'w':
		return take_slow(arg);
	case 't':
		sub.bench_opt = sub.bench_opt ? sub.bench_opt : "--threads";
		if (!parse_int(arg, 1, MAX_THREADS, &sub.threads))
			return usage_error("--threads takes 1..256, not '%s'", arg);
		return 0;
	case 's':
		sub.bench_opt = sub.bench_opt ? sub.bench_opt : "--seconds";
		if (!parse_int(arg, 1, 3600, &sub.seconds))
			return usage_error("--seconds takes 1..3600, not '%s'", arg);
		return 0;
	case 'o':
		if (strcmp(arg, "text") != 0 && strcmp(arg, "json") != 0)
			return usage_error("-o takes text or json, not '%s'", arg);
		output_fmt = arg;
		return 0;
	case 'M':
	case 'U':
		/* The agent's shared memory (the library's default when the file
		 * is there), or UDP only. */
		sub.path_opt = c == 'M' ? "--shm" : "--udp";
		opts.shm = c == 'M';
		return 0;
	case 'm':
		sub.bench_opt = sub.bench_opt ? sub.bench_opt : "--modid";
		if (!parse_int(arg, 0, 2147483647, &sub.modid))
			return usage_error("--modid takes an integer >= 0, not '%s'", arg);
		return 0;
	}
	return take_reg_option(c, arg);
}

/* main() with room for the options (@opt_argv) and the other words (@pos). */
static int run(int argc, char **argv, char **opt_argv, char **pos)
{
	static char agent_ip[64];
	lars_client_options_init(&opts);
	lars_register_options_init(&sub.reg);
	/* LARS_AGENT=HOST:BASEPORT (deploy/lars-local env sets it) is the default. */
	const char *agent = getenv("LARS_AGENT"), *agent_from = "LARS_AGENT";

	/*
	 * Split the words into options (with their values) and the rest, in
	 * order, so that options may follow the command: the permutation GNU
	 * getopt does, except that a negative number stays an argument.
	 */
	int n_opt = 0, n_pos = 0;
	opt_argv[n_opt++] = argv[0];
	for (int i = 1; i < argc; i++) {
		char *w = argv[i];
		if (strcmp(w, "--") == 0) {
			while (++i < argc)
				pos[n_pos++] = argv[i];
			break;
		}
		if (w[0] != '-' || !w[1] || is_negative_number(w)) {
			pos[n_pos++] = w;
			continue;
		}
		opt_argv[n_opt++] = w;
		if (((w[1] == '-' && !strchr(w, '=') && takes_value(w)) || strcmp(w, "-o") == 0) &&
		    i + 1 < argc)
			opt_argv[n_opt++] = argv[++i];
	}
	opterr = 0; /* one message, ours */
	int c;
	while ((c = getopt_long(n_opt, opt_argv, "+:ho:", all_opts, NULL)) != -1) {
		int r;
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("lars %s\n", LARS_VERSION);
			return 0;
		case ':':
			return usage_error("%s needs a value", opt_argv[optind - 1]);
		case '?':
			if (optopt)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown option '%s'", opt_argv[optind - 1]);
		default:
			if ((r = take_option(c, optarg, &agent, &agent_from)))
				return r;
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
	if (n_pos == 0)
		return usage_error("missing command");
	const char *cmd = pos[0];
	int sub_argc = n_pos - 1;
	char **sub_argv = pos + 1;
	bool sim = strcmp(cmd, "simulate") == 0, bench = strcmp(cmd, "bench") == 0;
	if (sub.sim_opt && !sim)
		return usage_error("%s is an option of simulate", sub.sim_opt);
	if (sub.bench_opt && !bench)
		return usage_error("%s is an option of bench", sub.bench_opt);
	if (sub.path_opt && !bench && !sim)
		return usage_error("%s is an option of bench and simulate", sub.path_opt);
	/* Simulated calls take no time: from the snapshot they would outrun the
	 * agent's verdicts (which real calls, milliseconds each, do not), so
	 * simulate asks the agent unless told --shm. */
	if (sim && !sub.path_opt)
		opts.shm = 0;
	if (sub.lat_opt && !sim && !bench && strcmp(cmd, "report") != 0)
		return usage_error("%s is an option of report, simulate and bench", sub.lat_opt);
	bool reg = strcmp(cmd, "register") == 0, dereg = strcmp(cmd, "deregister") == 0;
	if (sub.reg_opt && !reg)
		return usage_error("%s is an option of register", sub.reg_opt);
	if (sub.ip_opt && !reg && !dereg)
		return usage_error("--ip is an option of register and deregister");
	if (strcmp(output_fmt, "text") != 0 && strcmp(cmd, "agent-state") != 0 &&
	    strcmp(cmd, "get-route") != 0)
		return usage_error("-o is an option of agent-state and get-route");
	if (strcmp(cmd, "agent-state") == 0)
		return cmd_agent_state(sub_argc, sub_argv);
	if (strcmp(cmd, "get-host") == 0)
		return cmd_get_host(sub_argc, sub_argv);
	if (strcmp(cmd, "get-route") == 0)
		return cmd_get_route(sub_argc, sub_argv);
	if (strcmp(cmd, "report") == 0)
		return cmd_report(sub_argc, sub_argv);
	if (sim)
		return cmd_simulate(sub_argc, sub_argv);
	if (bench)
		return cmd_bench(sub_argc, sub_argv);
	if (reg)
		return cmd_register(sub_argc, sub_argv);
	if (dereg)
		return cmd_deregister(sub_argc, sub_argv);
	return usage_error("unknown command '%s'", cmd);
}

int main(int argc, char **argv)
{
	char **opt_argv = calloc((size_t)argc + 1, sizeof(char *));
	char **pos = calloc((size_t)argc + 1, sizeof(char *));
	int r = LARS_SYSTEM_ERROR;
	if (opt_argv && pos)
		r = run(argc, argv, opt_argv, pos);
	else
		fprintf(stderr, "lars: out of memory\n");
	free(opt_argv);
	free(pos);
	return r;
}
