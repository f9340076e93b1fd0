// SPDX-License-Identifier: MIT
// bench-fleet: lars-dns serving a fleet. One process simulates N agents as
// TCP connections (epoll, one thread, loopback sources 127.0.0.2..250) to a
// real lars-dns on a PostgreSQL cluster of its own, each subscribed to K of
// R routes (modid 100); CHANGES "changed" routes have HOT subscribers each,
// the rest of the N*K subscriptions are random (at the defaults, 200 x
// 1,000 = all 200,000 of them). It prints, one figure per line:
//  1. lars-dns RSS (VmRSS) per connection and per subscription;
//  2. push latency from `larsctl route add` returning to the last of the
//     route's subscribers holding the push (p50 / p99 / max, one change per
//     changed route);
//  3. the worst loop lag of lars-dns in each phase (lars_loop_lag_max_seconds
//     if it rose during the phase, else the highest lars_loop_lag_seconds
//     bucket that gained a sample; "n/a" on a lars-dns without them) and the
//     worst GetRoute round trip of a separate probe connection asking every
//     5 ms: while all N connections close at once, while all N reconnect and
//     resubscribe at once, and in the other phases;
//  4. the time until every agent is resubscribed after lars-dns restarts
//     (SIGTERM, start again; agents reconnect with the agent's backoff,
//     100 ms doubling to 10 s, equal jitter);
//  5. a bulk change of every route in one transaction: the time until every
//     subscriber holds it, the loop lag and probe round trip meanwhile;
// and checks that nothing was lost: each push, and at the end every
// subscription against the host list PostgreSQL holds for its route (exit 1
// on a mismatch or a failed step). Targets are shown with PASS/MISS; a
// missed target does not fail the benchmark. Every wait has a deadline in
// time (each phase at most 2 minutes, the whole run 15).
// The open-file limit is raised to the hard limit; lars-dns, forked from
// here, inherits it (N connections need N descriptors on each side).
// Usage: bench-fleet [N=10000] [K=20] [R=100000] [HOT=1000] [CHANGES=200]
//   (or FLEET_N, FLEET_K, FLEET_R, FLEET_HOT, FLEET_CHANGES in the
//   environment; a bare number, the seconds the other benchmarks take, is
//   ignored). Environment: LARS_DNS_BIN, LARSCTL_BIN, LARS_PG_CLUSTER.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <libpq-fe.h>

#include "backoff.h"
#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "wire_client.h"

#define MODID 100          /* the fleet's routes: (100, 0..R-1) */
#define PROBE_MODID 1      /* the probe's route, never changed */
#define MAX_K 64           /* answered slots are a 64-bit mask */
#define N_SOURCES 249      /* 127.0.0.2 .. 127.0.0.250 */
#define PROBE_EVERY_MS 5
#define MAX_HOSTS 1000000  /* decode cap for one route */
#define TOTAL_DEADLINE_S 900
#define PHASE_DEADLINE_MS 120000
#define PUSH_DEADLINE_MS 10000
#define CONNECT_BATCH 256  /* the setup's connects, below lars-dns's backlog */
#define STR_(x) #x
#define STR(x) STR_(x)

extern char **environ;

static int cmp_double(const void *a, const void *b);

/* ---- clock ---- */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t bench_end_us; /* the global deadline */

/* A phase ends at @ms from now or at the global deadline, whichever is first. */
static int64_t phase_deadline(int ms)
{
	int64_t d = now_us() + (int64_t)ms * 1000;
	return d < bench_end_us ? d : bench_end_us;
}

/* ---- parameters ---- */

static struct {
	int n, k, r, hot, changes;
} par = { .n = 10000, .k = 20, .r = 100000, .hot = 1000, .changes = 200 };

static void par_set(const char *name, const char *val, int *slot, int min, int max)
{
	char *end;
	long v = strtol(val, &end, 10);
	if (*end || v < min || v > max)
		harness_die("%s must be %d..%d, not '%s'", name, min, max, val);
	*slot = (int)v;
}

static void par_parse(int argc, char **argv)
{
	static const struct {
		const char *name;
		int *slot, min, max;
	} keys[] = {
		{ "N", &par.n, 1, 100000 }, { "K", &par.k, 1, MAX_K },
		{ "R", &par.r, 1, 1000000 }, { "HOT", &par.hot, 1, 100000 },
		{ "CHANGES", &par.changes, 1, 10000 },
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char env[32];
		snprintf(env, sizeof(env), "FLEET_%s", keys[i].name);
		const char *v = getenv(env);
		if (v && *v)
			par_set(env, v, keys[i].slot, keys[i].min, keys[i].max);
	}
	for (int a = 1; a < argc; a++) {
		const char *eq = strchr(argv[a], '=');
		if (!eq) {
			if (*argv[a] && strspn(argv[a], "0123456789.") != strlen(argv[a]))
				harness_die("unknown argument '%s' (N=, K=, R=, HOT=, CHANGES=)",
					    argv[a]);
			continue; /* the seconds `lars-local bench` gives every benchmark */
		}
		size_t i, len = (size_t)(eq - argv[a]);
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strlen(keys[i].name) == len && !strncmp(argv[a], keys[i].name, len))
				break;
		if (i == sizeof(keys) / sizeof(keys[0]))
			harness_die("unknown parameter '%s' (N=, K=, R=, HOT=, CHANGES=)", argv[a]);
		par_set(keys[i].name, eq + 1, keys[i].slot, keys[i].min, keys[i].max);
	}
	if (par.k > par.r)
		harness_die("K (%d) must not exceed R (%d)", par.k, par.r);
	if (par.changes > par.r)
		par.changes = par.r;
	/* The changed routes' subscribers come out of the N*K slots. */
	if (par.hot > par.n)
		par.hot = par.n;
	if ((long)par.hot * par.changes > (long)par.n * par.k)
		par.hot = (int)((long)par.n * par.k / par.changes);
	if (par.hot < 1)
		harness_die("N*K too small for %d changed routes", par.changes);
}

/* ---- routes and what each subscriber should hold ---- */

/* Order-independent fingerprint of a host list: sum of mixed hosts. */
static uint64_t host_mix(int32_t ip, int32_t port)
{
	uint64_t x = (uint64_t)(uint32_t)ip << 32 | (uint32_t)port;
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t *route_fp; /* R: what the bench expects the route to hold */
static int32_t *hot_route; /* changes: the routes the push phase changes */

/* ---- the simulated agents ---- */

enum { AG_IDLE, AG_WAIT, AG_CONNECTING, AG_UP };

typedef struct agent {
	int fd;
	uint8_t state;
	bool subscribed;  /* its K requests went out on this connection */
	uint16_t answered;
	uint64_t answered_mask;
	int64_t retry_at;  /* AG_WAIT: when to connect again */
	int64_t up_since;
	int64_t full_at;   /* when its K-th answer arrived on this connection */
	backoff_t backoff;
	frame_buf_t fb;
	int32_t *routes;   /* K cmdids */
	uint64_t *fp;      /* K: fingerprint of the last list received */
} agent_t;

static struct {
	agent_t *ag;
	int32_t *routes; /* N*K */
	uint64_t *fp;    /* N*K */
	int ep;
	int port;
	bool reconnect;        /* lost connections connect again (backoff) */
	bool subscribe;        /* a new connection sends its K requests */
	long n_up, n_full, n_connecting;
	long n_match;          /* subscriptions holding route_fp of their route */
	int64_t all_match_at;  /* when n_match last reached N*K */
	long frames, unexpected, failures;
	frame_idset_t ids;
	int *waiting;          /* agents in AG_WAIT */
	int n_waiting;
} sim;

static long total_subs(void)
{
	return (long)par.n * par.k;
}

/* Assign K distinct routes to each agent: the changed routes first, @hot
 * consecutive agents each, then random routes that are not changed ones. */
static void sim_assign(void)
{
	int n = par.n, k = par.k;
	int *used = calloc((size_t)n, sizeof(int));
	char *is_hot = calloc((size_t)par.r, 1);
	if (!used || !is_hot)
		harness_die("out of memory");
	for (int c = 0; c < par.changes; c++) {
		hot_route[c] = (int32_t)((long)c * par.r / par.changes);
		is_hot[hot_route[c]] = 1;
	}
	long s = 0;
	for (int c = 0; c < par.changes; c++)
		for (int j = 0; j < par.hot; j++, s++) {
			int a = (int)(s % n);
			sim.ag[a].routes[used[a]++] = hot_route[c];
		}
	uint64_t rng = 0x2545f4914f6cdd1dull;
	for (int a = 0; a < n; a++) {
		while (used[a] < k) {
			int32_t r = -1;
			for (int tries = 0; tries < 1000 && r < 0; tries++) {
				rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
				int32_t c = (int32_t)(rng % (uint64_t)par.r);
				bool dup = is_hot[c] && par.r > par.changes + k;
				for (int j = 0; j < used[a] && !dup; j++)
					dup = sim.ag[a].routes[j] == c;
				if (!dup)
					r = c;
			}
			if (r < 0)
				harness_die("cannot pick distinct routes for agent %d", a);
			sim.ag[a].routes[used[a]++] = r;
		}
	}
	free(used);
	free(is_hot);
}

static void sim_init(int port)
{
	long subs = total_subs();
	sim.port = port;
	sim.ag = calloc((size_t)par.n, sizeof(agent_t));
	sim.routes = calloc((size_t)subs, sizeof(int32_t));
	sim.fp = calloc((size_t)subs, sizeof(uint64_t));
	sim.waiting = calloc((size_t)par.n, sizeof(int));
	if (!sim.ag || !sim.routes || !sim.fp || !sim.waiting)
		harness_die("out of memory");
	sim.ep = epoll_create1(EPOLL_CLOEXEC);
	if (sim.ep < 0)
		harness_die("epoll_create1: %s", strerror(errno));
	frame_idset_clear(&sim.ids);
	frame_idset_add(&sim.ids, LARS_ID_GET_ROUTE_RESP);
	for (int a = 0; a < par.n; a++) {
		agent_t *g = &sim.ag[a];
		g->fd = -1;
		g->routes = sim.routes + (long)a * par.k;
		g->fp = sim.fp + (long)a * par.k;
		backoff_init(&g->backoff, 100, 10000, 0x9e3779b97f4a7c15ull * (uint64_t)(a + 1));
	}
	sim_assign();
}

/* Fingerprint @v into subscription slot @i, keeping n_match current. */
static void sub_store(long i, int32_t cmdid, uint64_t v)
{
	bool was = sim.fp[i] == route_fp[cmdid];
	bool is = v == route_fp[cmdid];
	sim.fp[i] = v;
	sim.n_match += (long)is - (long)was;
	if (is && !was && sim.n_match == total_subs())
		sim.all_match_at = now_us();
}

/* After route_fp changed: count again which subscriptions hold it. */
static void sim_recount(void)
{
	long m = 0;
	for (long i = 0; i < total_subs(); i++)
		m += sim.fp[i] == route_fp[sim.routes[i]];
	sim.n_match = m;
}

static void agent_close(int a, bool lost)
{
	agent_t *g = &sim.ag[a];
	if (g->fd >= 0) {
		close(g->fd); /* leaves the epoll set with it */
		g->fd = -1;
	}
	if (g->state == AG_UP) {
		sim.n_up--;
		if (g->answered == par.k)
			sim.n_full--;
	} else if (g->state == AG_CONNECTING) {
		sim.n_connecting--;
	}
	frame_buf_deinit(&g->fb);
	g->answered = 0;
	g->answered_mask = 0;
	g->subscribed = false;
	g->state = AG_IDLE;
	if (lost && sim.reconnect) {
		/* As the agent's tcp_client: a connection that stayed up resets. */
		if (g->up_since && now_us() - g->up_since >= 10000000)
			backoff_reset(&g->backoff);
		g->retry_at = now_us() + (int64_t)backoff_next(&g->backoff) * 1000;
		g->state = AG_WAIT;
		sim.waiting[sim.n_waiting++] = a;
	}
	g->up_since = 0;
}

static void agent_connect(int a)
{
	agent_t *g = &sim.ag[a];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		harness_die("socket: %s (raise the open-file limit)", strerror(errno));
	int one = 1;
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in src = { .sin_family = AF_INET };
	src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(a % N_SOURCES));
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)))
		harness_die("bind 127.0.0.%d: %s", 2 + a % N_SOURCES, strerror(errno));
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)sim.port) };
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g->fd = fd;
	g->state = AG_CONNECTING;
	sim.n_connecting++;
	frame_buf_init(&g->fb, FRAME_TCP_MAX_LIMIT, &sim.ids);
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)a };
	if (epoll_ctl(sim.ep, EPOLL_CTL_ADD, fd, &ev))
		harness_die("epoll_ctl: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) && errno != EINPROGRESS) {
		sim.failures++;
		agent_close(a, true);
	}
}

/* The K GetRouteRequests, in one write (a few hundred bytes). */
static void agent_subscribe(int a)
{
	agent_t *g = &sim.ag[a];
	uint8_t buf[MAX_K * 32];
	size_t len = 0;
	for (int j = 0; j < par.k; j++) {
		lars_GetRouteRequest req = { .modid = MODID, .cmdid = g->routes[j] };
		size_t n;
		if (msg_frame_encode(LARS_ID_GET_ROUTE_REQ, lars_GetRouteRequest_fields, &req,
				     buf + len, sizeof(buf) - len, &n))
			harness_die("encode GetRouteRequest");
		len += n;
	}
	ssize_t w = send(g->fd, buf, len, MSG_NOSIGNAL);
	if (w < 0) {
		sim.failures++;
		agent_close(a, true);
		return;
	}
	if ((size_t)w != len)
		harness_die("agent %d: short write of its %d requests (%zd of %zu bytes)",
			    a, par.k, w, len);
	g->subscribed = true;
}

static void agent_connected(int a)
{
	agent_t *g = &sim.ag[a];
	int err = 0;
	socklen_t el = sizeof(err);
	getsockopt(g->fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err) {
		sim.failures++;
		agent_close(a, true);
		return;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)a };
	epoll_ctl(sim.ep, EPOLL_CTL_MOD, g->fd, &ev);
	g->state = AG_UP;
	g->up_since = now_us();
	sim.n_connecting--;
	sim.n_up++;
	if (sim.subscribe)
		agent_subscribe(a);
}

/* One GetRouteResponse (answer or push) for agent @a. */
static void agent_frame(int a, const frame_hdr_t *hdr, const uint8_t *body)
{
	agent_t *g = &sim.ag[a];
	static msg_vec_t hosts;
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	const char *why = NULL;
	msg_hosts_init(&hosts, MAX_HOSTS);
	msg_vec_bind(&hosts, &resp.host);
	if (msg_decode(lars_GetRouteResponse_fields, &resp, body, (size_t)hdr->msglen, &why))
		harness_die("agent %d: undecodable GetRouteResponse: %s", a, why ? why : "?");
	uint64_t v = 0;
	const lars_HostInfo *h = hosts.v;
	for (size_t i = 0; i < hosts.n; i++)
		v += host_mix(h[i].ip, h[i].port);
	msg_vec_deinit(&hosts);
	sim.frames++;
	int j;
	for (j = 0; j < par.k; j++)
		if (g->routes[j] == resp.cmdid)
			break;
	if (resp.modid != MODID || j == par.k) {
		sim.unexpected++;
		return;
	}
	sub_store((long)a * par.k + j, resp.cmdid, v);
	if (!(g->answered_mask & (1ull << j))) {
		g->answered_mask |= 1ull << j;
		if (++g->answered == par.k) {
			sim.n_full++;
			g->full_at = now_us();
		}
	}
}

static void agent_readable(int a)
{
	agent_t *g = &sim.ag[a];
	for (int rounds = 0; rounds < 64; rounds++) {
		uint8_t *p;
		size_t cap;
		if (frame_buf_space(&g->fb, &p, &cap))
			harness_die("out of memory");
		ssize_t n = recv(g->fd, p, cap, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			agent_close(a, true);
			return;
		}
		if (n < 0)
			return;
		frame_buf_commit(&g->fb, (size_t)n);
		frame_hdr_t hdr;
		const uint8_t *body;
		int r;
		while ((r = frame_buf_next(&g->fb, &hdr, &body)) == FRAME_OK)
			agent_frame(a, &hdr, body);
		if (r != FRAME_E_NEED_MORE)
			harness_die("agent %d: bad frame from lars-dns: %s (msgid %d, len %d)",
				    a, frame_strerror(r), hdr.msgid, hdr.msglen);
		if ((size_t)n < cap)
			return;
	}
}

/* Connect the agents whose backoff has passed. */
static void sim_retry_due(void)
{
	int64_t t = now_us();
	int kept = 0;
	for (int i = 0; i < sim.n_waiting; i++) {
		int a = sim.waiting[i];
		if (sim.ag[a].state == AG_WAIT && sim.ag[a].retry_at <= t)
			agent_connect(a);
		else if (sim.ag[a].state == AG_WAIT)
			sim.waiting[kept++] = a;
	}
	sim.n_waiting = kept;
}

/* One turn of the simulator: events for up to @timeout_ms, then retries. */
static void sim_step(int timeout_ms)
{
	struct epoll_event ev[1024];
	int n = epoll_wait(sim.ep, ev, 1024, timeout_ms);
	if (n < 0 && errno != EINTR)
		harness_die("epoll_wait: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		int a = (int)ev[i].data.u32;
		agent_t *g = &sim.ag[a];
		if (g->state == AG_CONNECTING)
			agent_connected(a);
		else if (g->state == AG_UP)
			agent_readable(a);
	}
	if (sim.n_waiting)
		sim_retry_due();
}

typedef bool (*sim_done_fn)(void);

/* Run the simulator until @done or @deadline; true if @done. */
static bool sim_run(sim_done_fn done, int64_t deadline)
{
	while (!done()) {
		if (now_us() >= deadline)
			return false;
		sim_step(1);
	}
	return true;
}

static bool all_up_so_far(void)
{
	return sim.n_connecting == 0 && sim.n_waiting == 0;
}

static bool all_full(void)
{
	return sim.n_full == par.n;
}

static bool all_match(void)
{
	return sim.n_match == total_subs();
}

/* Start connecting every idle agent (all at once). */
static void sim_connect_all(void)
{
	for (int a = 0; a < par.n; a++)
		if (sim.ag[a].state == AG_IDLE)
			agent_connect(a);
}

static void sim_close_all(void)
{
	for (int a = 0; a < par.n; a++)
		agent_close(a, false);
}

/* ---- lars-dns: process, metrics, RSS ---- */

static const char *dns_bin, *larsctl_bin, *cluster;
static harness_proc_t dns;
static int dns_port, metrics_port;
static char metrics_buf[1 << 20];

static void dns_start(void)
{
	char text[512];
	snprintf(text, sizeof(text),
		 "[dns]\nport = %d\nmax_conns = %d\nmax_subscriptions = %d\n"
		 "[metrics]\nenabled = true\nport = 0\n[log]\nlevel = info\n",
		 dns_port, par.n + 100, par.k + 10);
	const char *cfg = harness_write_config(text);
	if (!cfg || harness_spawn(&dns, dns_bin, cfg))
		harness_die("lars-dns did not start");
	metrics_port = harness_port(&dns, "metrics");
	if (harness_port(&dns, "tcp") != dns_port || metrics_port <= 0)
		harness_die("lars-dns ready line without tcp=%d and metrics=: %s", dns_port,
			    dns.ready);
}

/*
 * GET /metrics with "Connection: close" (harness_http_get() keeps the
 * connection and waits out its 5 s deadline): the response in metrics_buf
 * within 5 s, or -1.
 */
static ssize_t metrics_get(void)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	int64_t deadline = harness_deadline(5000);
	int fd = wc_connect("127.0.0.1", metrics_port, deadline);
	size_t len = 0;
	if (fd < 0)
		return -1;
	if (harness_send_all(fd, req, sizeof(req) - 1)) {
		close(fd);
		return -1;
	}
	while (len < sizeof(metrics_buf) - 1) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int left = harness_left_ms(deadline);
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			break;
		ssize_t k = recv(fd, metrics_buf + len, sizeof(metrics_buf) - 1 - len, 0);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	metrics_buf[len] = 0;
	close(fd);
	return len ? (ssize_t)len : -1;
}

/*
 * A sample in metrics_buf: the line "@name VALUE", or with @name bare, the
 * largest of its labelled samples "@name{...} VALUE" too.
 * Return: the value, -1 if absent.
 */
static double metric_in_buf(const char *name)
{
	double best = -1;
	size_t len = strlen(name);
	bool bare = !strchr(name, '{');
	for (const char *p = metrics_buf; (p = strstr(p, name)); p += len) {
		const char *v = p + len;
		if (p != metrics_buf && p[-1] != '\n')
			continue;
		if (*v == '{' && bare)
			v = strchr(v, '}') ? strchr(v, '}') + 1 : v;
		if (*v != ' ')
			continue;
		double x = atof(v + 1);
		if (x > best)
			best = x;
	}
	return best;
}

/* A sample from lars-dns's /metrics; -1 if absent or unreachable. */
static double dns_metric(const char *name)
{
	return metrics_get() > 0 ? metric_in_buf(name) : -1;
}

#define LAG_BUCKETS_MAX 32

/**
 * struct lag_snap - lars-dns's loop lag at one moment: the max since start
 * and the cumulative buckets of the histogram lars_loop_lag_seconds.
 * The difference of two tells what happened in between, even once the max
 * since start is higher than anything a later phase causes.
 */
typedef struct lag_snap {
	double max;  /* lars_loop_lag_max_seconds, -1 if absent */
	int n;       /* buckets read, +Inf last */
	double le[LAG_BUCKETS_MAX];
	double cum[LAG_BUCKETS_MAX];
} lag_snap_t;

static const char lag_bucket[] = "lars_loop_lag_seconds_bucket{le=\"";

static lag_snap_t lag_read(void)
{
	lag_snap_t l = { .max = -1 };
	if (metrics_get() <= 0)
		return l;
	l.max = metric_in_buf("lars_loop_lag_max_seconds");
	for (const char *p = metrics_buf; (p = strstr(p, lag_bucket)) && l.n < LAG_BUCKETS_MAX;
	     p++) {
		const char *v = p + strlen(lag_bucket), *end = strstr(v, "\"} ");
		if (!end)
			break;
		l.le[l.n] = strncmp(v, "+Inf", 4) ? atof(v) : 1e300;
		l.cum[l.n++] = atof(end + 3);
	}
	return l;
}

/* A fresh lars-dns: everything it reports happened since it started. */
static const lag_snap_t lag_zero = { .max = 0 };

static double dns_connections(void)
{
	return dns_metric("lars_tcp_connections{listener=\"dns\"}");
}

/* VmRSS of lars-dns in KiB. */
static long dns_rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)dns.pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	fclose(f);
	return kb;
}

/* Wait (simulator running) until lars-dns counts @lo..@hi connections
 * (the probe's may be one of them). */
static bool dns_wait_connections(long lo, long hi, int ms)
{
	int64_t deadline = phase_deadline(ms);
	while (now_us() < deadline) {
		double n = dns_connections();
		if (n >= (double)lo && n <= (double)hi)
			return true;
		int64_t until = now_us() + 20000;
		while (now_us() < until)
			sim_step(5);
	}
	return false;
}

/*
 * The kernel's count of connection attempts a full listen queue dropped
 * (TcpExt ListenDrops, this network namespace: loopback only here), or -1.
 */
static long listen_drops(void)
{
	char head[4096], vals[4096];
	long v = -1;
	FILE *f = fopen("/proc/net/netstat", "r");
	if (!f)
		return -1;
	while (fgets(head, sizeof(head), f) && fgets(vals, sizeof(vals), f)) {
		if (strncmp(head, "TcpExt:", 7))
			continue;
		char *hs, *vs;
		char *h = strtok_r(head, " \n", &hs), *x = strtok_r(vals, " \n", &vs);
		while (h && x && strcmp(h, "ListenDrops"))
			h = strtok_r(NULL, " \n", &hs), x = strtok_r(NULL, " \n", &vs);
		if (h && x)
			v = atol(x);
		break;
	}
	fclose(f);
	return v;
}

/* The agents' times to their K-th answer after @t0: p50 / p99 / max in s. */
static void print_full_spread(const char *phase, int64_t t0)
{
	double *d = calloc((size_t)par.n, sizeof(double));
	int n = 0;
	if (!d)
		harness_die("out of memory");
	for (int a = 0; a < par.n; a++)
		if (sim.ag[a].answered == par.k)
			d[n++] = (double)(sim.ag[a].full_at - t0) / 1e6;
	if (n) {
		qsort(d, (size_t)n, sizeof(double), cmp_double);
		printf("%s: agents resubscribed after p50 %.2f s  p99 %.2f s  max %.2f s\n", phase,
		       d[n / 2], d[(n * 99 + 99) / 100 - 1], d[n - 1]);
	}
	free(d);
}

/* ---- the probe: one more connection asking every few ms ---- */

static struct {
	pthread_t thread;
	pthread_mutex_t mu;
	atomic_bool stop, pause;
	int64_t max_us;      /* worst round trip since probe_begin() */
	int64_t sent_at;     /* the request in flight, 0 if none */
	long n;
	long failures;
} probe = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void probe_record(int64_t rtt)
{
	pthread_mutex_lock(&probe.mu);
	if (rtt > probe.max_us)
		probe.max_us = rtt;
	probe.sent_at = 0;
	probe.n++;
	pthread_mutex_unlock(&probe.mu);
}

static void *probe_main(void *unused)
{
	int fd = -1;
	(void)unused;
	while (!atomic_load(&probe.stop) && now_us() < bench_end_us) {
		if (atomic_load(&probe.pause)) {
			if (fd >= 0)
				close(fd);
			fd = -1;
			usleep(10000);
			continue;
		}
		if (fd < 0 && (fd = wc_connect("127.0.0.1", dns_port, harness_deadline(5000))) < 0) {
			usleep(50000);
			continue;
		}
		int64_t t0 = now_us();
		pthread_mutex_lock(&probe.mu);
		probe.sent_at = t0;
		pthread_mutex_unlock(&probe.mu);
		wc_route_t r = { 0 };
		int got = wc_get_route_send(fd, PROBE_MODID, 1);
		if (got == 0)
			got = wc_route_recv(fd, &r, 1 << 20, harness_deadline(60000), NULL);
		wc_route_free(&r);
		if (got != 1) {
			pthread_mutex_lock(&probe.mu);
			probe.sent_at = 0;
			if (!atomic_load(&probe.pause))
				probe.failures++;
			pthread_mutex_unlock(&probe.mu);
			close(fd);
			fd = -1;
			continue;
		}
		probe_record(now_us() - t0);
		int64_t next = t0 + PROBE_EVERY_MS * 1000;
		if (now_us() < next)
			usleep((useconds_t)(next - now_us()));
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void probe_begin(void)
{
	pthread_mutex_lock(&probe.mu);
	probe.max_us = 0;
	probe.n = 0;
	pthread_mutex_unlock(&probe.mu);
}

/* Worst round trip since probe_begin(), the one in flight included (ms). */
static double probe_end(long *np)
{
	pthread_mutex_lock(&probe.mu);
	int64_t m = probe.max_us;
	if (probe.sent_at && now_us() - probe.sent_at > m)
		m = now_us() - probe.sent_at;
	*np = probe.n;
	pthread_mutex_unlock(&probe.mu);
	return (double)m / 1000;
}

/* ---- reporting ---- */

static int errors; /* lost or wrong data, failed steps: exit 1 */

static const char *mark(bool ok)
{
	return ok ? "PASS" : "MISS";
}

/*
 * The worst loop lag in a phase, from snapshots before and after it: the
 * max since start if it rose (it happened in the phase), else the highest
 * histogram bucket that gained a sample, as a range. The target is 50 ms,
 * a bucket bound, so PASS/MISS is exact either way.
 */
static void print_lag(const char *phase, const lag_snap_t *b, const lag_snap_t *a,
		      double probe_ms, long probes)
{
	if (a->max < 0) {
		printf("max loop lag, %s: n/a (lars-dns has no lars_loop_lag_max_seconds)\n", phase);
	} else if (a->max > b->max) {
		printf("max loop lag, %s: %.1f ms   target <= 50 ms %s\n", phase, a->max * 1000,
		       mark(a->max <= 0.05));
	} else {
		int top = -1;
		bool same = a->n == b->n;
		for (int i = 0; i < a->n; i++) {
			double d = a->cum[i] - (same ? b->cum[i] : 0);
			double dprev = i ? a->cum[i - 1] - (same ? b->cum[i - 1] : 0) : 0;
			if (d > dprev)
				top = i;
		}
		if (top < 0) {
			printf("max loop lag, %s: no lars_loop_lag_seconds sample in the phase "
			       "(max since start %.1f ms)\n", phase, a->max * 1000);
		} else {
			double lo = top ? a->le[top - 1] : 0, hi = a->le[top];
			if (hi > 1e299)
				printf("max loop lag, %s: > %.0f ms (histogram bucket; max since start "
				       "%.1f ms)   target <= 50 ms MISS\n", phase, lo * 1000, a->max * 1000);
			else
				printf("max loop lag, %s: %.0f..%.0f ms (histogram bucket; max since "
				       "start %.1f ms)   target <= 50 ms %s\n", phase, lo * 1000, hi * 1000,
				       a->max * 1000, mark(hi <= 0.05));
		}
	}
	printf("probe GetRoute worst round trip, %s: %.1f ms (%ld answers)\n", phase, probe_ms,
	       probes);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- PostgreSQL ---- */

static PGconn *db;

static void sql(const char *q)
{
	PGresult *res = PQexec(db, q);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		harness_die("%s: %s", q, PQresultErrorMessage(res));
	PQclear(res);
}

/* Every fleet route's fingerprint as PostgreSQL holds it, into @fp (R). */
static void db_fingerprints(uint64_t *fp)
{
	memset(fp, 0, (size_t)par.r * sizeof(*fp));
	char q[256];
	snprintf(q, sizeof(q),
		 "SELECT cmdid, (ip - '0.0.0.0'::inet), port FROM route_data "
		 "WHERE modid = %d AND cmdid < %d", MODID, par.r);
	PGresult *res = PQexec(db, q);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		harness_die("%s: %s", q, PQresultErrorMessage(res));
	for (int i = 0; i < PQntuples(res); i++) {
		int32_t cmdid = atoi(PQgetvalue(res, i, 0));
		int32_t ip = (int32_t)(uint32_t)strtoull(PQgetvalue(res, i, 1), NULL, 10);
		fp[cmdid] += host_mix(ip, atoi(PQgetvalue(res, i, 2)));
	}
	PQclear(res);
}

static void db_setup(void)
{
	char q[512];
	if (harness_run("%s migrate >/dev/null && %s route add %d 1 127.0.0.1 9001 >/dev/null",
			larsctl_bin, larsctl_bin, PROBE_MODID))
		harness_die("larsctl migrate failed");
	db = PQconnectdb("");
	if (PQstatus(db) != CONNECTION_OK)
		harness_die("connect: %s", PQerrorMessage(db));
	snprintf(q, sizeof(q), "INSERT INTO modid_config (modid) VALUES (%d) "
			       "ON CONFLICT DO NOTHING", MODID);
	sql(q);
	snprintf(q, sizeof(q),
		 "INSERT INTO route_data (modid, cmdid, ip, port) "
		 "SELECT %d, g, '10.0.0.0'::inet + g, 1000 + g %% 50000 "
		 "FROM generate_series(0, %d) g", MODID, par.r - 1);
	sql(q);
	route_fp = calloc((size_t)par.r, sizeof(*route_fp));
	hot_route = calloc((size_t)par.changes, sizeof(*hot_route));
	if (!route_fp || !hot_route)
		harness_die("out of memory");
	db_fingerprints(route_fp);
}

/* ---- the phases ---- */

static void phase_connect_subscribe(void)
{
	long rss0 = dns_rss_kb();
	lag_snap_t l0 = lag_read();
	long n0, n1;
	probe_begin();
	sim.subscribe = false;
	sim.reconnect = true;
	double t = harness_now_s();
	/*
	 * In batches that lars-dns has accepted before the next: a connect
	 * storm overflows its listen backlog, and with SYN cookies a client
	 * that sends nothing stays "connected" to nothing (the storms below
	 * send at once, so their requests retransmit and get in).
	 */
	for (int a0 = 0; a0 < par.n; a0 += CONNECT_BATCH) {
		int a1 = a0 + CONNECT_BATCH < par.n ? a0 + CONNECT_BATCH : par.n;
		for (int a = a0; a < a1; a++)
			agent_connect(a);
		if (!sim_run(all_up_so_far, phase_deadline(PHASE_DEADLINE_MS)) ||
		    !dns_wait_connections(sim.n_up, sim.n_up + 1, 60000))
			harness_die("only %ld of %d agents connected (lars-dns counts %.0f)",
				    sim.n_up, a1, dns_connections());
	}
	double t_conn = harness_now_s() - t;
	long rss1 = dns_rss_kb();
	double p0 = probe_end(&n0);
	lag_snap_t l1 = lag_read();
	probe_begin();
	sim.subscribe = true;
	t = harness_now_s();
	for (int a = 0; a < par.n; a++)
		if (sim.ag[a].state == AG_UP && !sim.ag[a].subscribed)
			agent_subscribe(a);
	if (!sim_run(all_full, phase_deadline(PHASE_DEADLINE_MS)))
		harness_die("only %ld of %d agents got their %d answers", sim.n_full, par.n, par.k);
	double t_sub = harness_now_s() - t;
	long rss2 = dns_rss_kb();
	double p1 = probe_end(&n1);
	lag_snap_t l2 = lag_read();
	printf("setup: %d connections in %.2f s, %ld subscriptions answered in %.2f s\n",
	       par.n, t_conn, total_subs(), t_sub);
	printf("lars-dns RSS: %.1f MiB idle, %.1f MiB with %d connections, %.1f MiB with %ld "
	       "subscriptions\n", rss0 / 1024.0, rss1 / 1024.0, par.n, rss2 / 1024.0, total_subs());
	printf("lars-dns RSS per connection: %.2f KiB\n", (double)(rss1 - rss0) / par.n);
	printf("lars-dns RSS per subscription: %.3f KiB\n", (double)(rss2 - rss1) / total_subs());
	print_lag("setup: connecting in batches of " STR(CONNECT_BATCH), &l0, &l1, p0, n0);
	print_lag("setup: every agent subscribing at once", &l1, &l2, p1, n1);
	if (!all_match()) {
		printf("initial answers: %ld of %ld subscriptions hold a wrong host list\n",
		       total_subs() - sim.n_match, total_subs());
		errors++;
	}
}

/* `larsctl route add` as a child, the simulator running meanwhile. */
static pid_t larsctl_spawn(int c)
{
	char cmdid[16], ip[32], port[16];
	snprintf(cmdid, sizeof(cmdid), "%d", hot_route[c]);
	snprintf(ip, sizeof(ip), "10.100.%d.%d", c / 256 % 256, c % 256);
	snprintf(port, sizeof(port), "%d", 7000 + c);
	char modid[16];
	snprintf(modid, sizeof(modid), "%d", MODID);
	char *argv[] = { (char *)larsctl_bin, "route", "add", modid, cmdid, ip, port, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int r = posix_spawn(&pid, larsctl_bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		harness_die("spawn larsctl: %s", strerror(r));
	struct in_addr a;
	inet_pton(AF_INET, ip, &a);
	route_fp[hot_route[c]] += host_mix((int32_t)ntohl(a.s_addr), 7000 + c);
	return pid;
}

static void phase_push(void)
{
	double *lat = calloc((size_t)par.changes, sizeof(double));
	int lost = 0;
	if (!lat)
		harness_die("out of memory");
	lag_snap_t before = lag_read();
	probe_begin();
	for (int c = 0; c < par.changes; c++) {
		pid_t pid = larsctl_spawn(c);
		sim_recount();
		int64_t deadline = phase_deadline(PUSH_DEADLINE_MS), exited = 0;
		while (now_us() < deadline && (!exited || !all_match())) {
			sim_step(1);
			int st;
			if (!exited && waitpid(pid, &st, WNOHANG) == pid) {
				exited = now_us();
				if (!WIFEXITED(st) || WEXITSTATUS(st))
					harness_die("larsctl route add failed (change %d)", c);
			}
		}
		if (!exited) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			harness_die("larsctl route add did not return within %d s", PUSH_DEADLINE_MS / 1000);
		}
		if (!all_match()) {
			lost++;
			lat[c] = (double)(now_us() - exited) / 1000;
			continue;
		}
		lat[c] = sim.all_match_at > exited ? (double)(sim.all_match_at - exited) / 1000 : 0;
	}
	long n;
	double pr = probe_end(&n);
	lag_snap_t after = lag_read();
	qsort(lat, (size_t)par.changes, sizeof(double), cmp_double);
	double p99 = lat[(par.changes * 99 + 99) / 100 - 1];
	printf("push latency to the last of %d subscribers, %d changes: p50 %.2f ms  p99 %.2f ms  "
	       "max %.2f ms   target p99 <= 50 ms %s\n", par.hot, par.changes,
	       lat[par.changes / 2], p99, lat[par.changes - 1], mark(p99 <= 50));
	print_lag("pushes", &before, &after, pr, n);
	if (lost) {
		printf("push: %d of %d changes did not reach every subscriber within %d s\n",
		       lost, par.changes, PUSH_DEADLINE_MS / 1000);
		errors++;
	}
	free(lat);
}

static void phase_close_storm(void)
{
	lag_snap_t before = lag_read();
	probe_begin();
	double t = harness_now_s();
	sim.reconnect = false;
	sim_close_all();
	double t_close = harness_now_s() - t;
	bool gone = dns_wait_connections(0, 1, 120000);
	double t_gone = harness_now_s() - t;
	usleep(200000);
	long n;
	double pr = probe_end(&n);
	lag_snap_t after = lag_read();
	if (!gone) {
		printf("close storm: lars-dns still counts %.0f connections (1 the probe's) after 120 s\n",
		       dns_connections());
		errors++;
	}
	printf("close storm: %d connections closed by the agents in %.2f s; lars-dns counted none "
	       "(the probe's aside) after %.2f s\n", par.n, t_close, t_gone);
	print_lag("all connections closing at once", &before, &after, pr, n);
}

static void phase_reconnect_storm(void)
{
	lag_snap_t before = lag_read();
	probe_begin();
	sim.reconnect = true;
	sim.subscribe = true;
	long drops0 = listen_drops();
	int64_t t0 = now_us();
	double t = harness_now_s();
	sim_connect_all();
	bool ok = sim_run(all_full, phase_deadline(PHASE_DEADLINE_MS));
	double t_all = harness_now_s() - t;
	usleep(200000);
	long n;
	double pr = probe_end(&n);
	lag_snap_t after = lag_read();
	if (!ok) {
		printf("reconnect storm: only %ld of %d agents resubscribed within %d s\n",
		       sim.n_full, par.n, PHASE_DEADLINE_MS / 1000);
		errors++;
	}
	printf("reconnect storm: %d agents connected and got their %d answers in %.2f s "
	       "(%ld connect failures retried)\n", par.n, par.k, t_all, sim.failures);
	print_lag("all connections reconnecting and resubscribing at once", &before, &after, pr, n);
	print_full_spread("reconnect storm", t0);
	if (drops0 >= 0)
		printf("reconnect storm: %ld connection attempts dropped by a full listen queue "
		       "(kernel ListenDrops)\n", listen_drops() - drops0);
	if (!all_match()) {
		printf("reconnect storm: %ld subscriptions hold a wrong host list\n",
		       total_subs() - sim.n_match);
		errors++;
	}
}

static struct {
	atomic_bool done;
	int stop_status;
	int64_t term_at, ready_at;
	double stop_s;
} restart;

static void *restart_main(void *unused)
{
	(void)unused;
	restart.term_at = now_us();
	restart.stop_status = harness_stop(&dns);
	restart.stop_s = (double)(now_us() - restart.term_at) / 1e6;
	dns_start();
	restart.ready_at = now_us();
	atomic_store(&restart.done, true);
	return NULL;
}

static bool restart_done(void)
{
	return atomic_load(&restart.done);
}

static void phase_restart(void)
{
	pthread_t t;
	atomic_store(&probe.pause, true);
	sim.reconnect = true;
	sim.subscribe = true;
	long fail0 = sim.failures, drops0 = listen_drops();
	if (pthread_create(&t, NULL, restart_main, NULL))
		harness_die("pthread_create");
	/* harness_stop() waits ≤ 10 s, harness_spawn() ≤ 10 s (or dies). */
	sim_run(restart_done, phase_deadline(60000));
	pthread_join(t, NULL);
	probe_begin();
	atomic_store(&probe.pause, false);
	bool ok = sim_run(all_full, phase_deadline(PHASE_DEADLINE_MS));
	int64_t end = now_us();
	usleep(200000);
	long n;
	double pr = probe_end(&n);
	lag_snap_t after = lag_read();
	if (restart.stop_status != 0) {
		printf("restart: lars-dns exited with status %d on SIGTERM (see %s)\n",
		       restart.stop_status, dns.log);
		errors++;
	}
	double from_ready = (double)(end - restart.ready_at) / 1e6;
	printf("restart: SIGTERM to exit with %d connections %.2f s; start to ready %.2f s\n",
	       par.n, restart.stop_s,
	       (double)(restart.ready_at - restart.term_at) / 1e6 - restart.stop_s);
	if (!ok) {
		printf("restart: only %ld of %d agents resubscribed within %d s of lars-dns ready\n",
		       sim.n_full, par.n, PHASE_DEADLINE_MS / 1000);
		errors++;
	}
	printf("restart: every agent resubscribed %.2f s after lars-dns was ready (%.2f s after "
	       "SIGTERM; %ld connect attempts refused or failed)   target <= 5 s %s\n",
	       from_ready, (double)(end - restart.term_at) / 1e6, sim.failures - fail0,
	       mark(ok && from_ready <= 5));
	print_lag("every agent resubscribing after the restart (since lars-dns started)",
		  &lag_zero, &after, pr, n);
	print_full_spread("restart, from lars-dns ready", restart.ready_at);
	if (drops0 >= 0)
		printf("restart: %ld connection attempts dropped by a full listen queue "
		       "(kernel ListenDrops)\n", listen_drops() - drops0);
	if (!all_match()) {
		printf("restart: %ld subscriptions hold a wrong host list\n",
		       total_subs() - sim.n_match);
		errors++;
	}
}

static void phase_bulk(void)
{
	char q[512];
	lag_snap_t before = lag_read();
	probe_begin();
	/* One host more on every fleet route, in one transaction: the
	 * statement trigger bumps the version, logs each row and notifies. */
	snprintf(q, sizeof(q),
		 "INSERT INTO route_data (modid, cmdid, ip, port) "
		 "SELECT %d, g, '10.200.0.0'::inet + g, 9 FROM generate_series(0, %d) g",
		 MODID, par.r - 1);
	for (int r = 0; r < par.r; r++)
		route_fp[r] += host_mix((int32_t)(0x0ac80000u + (uint32_t)r), 9);
	sim_recount();
	double t = harness_now_s();
	sql("BEGIN");
	sql(q);
	sql("COMMIT");
	double t_commit = harness_now_s();
	bool ok = sim_run(all_match, phase_deadline(PHASE_DEADLINE_MS));
	double t_all = harness_now_s() - t_commit;
	usleep(200000);
	long n;
	double pr = probe_end(&n);
	lag_snap_t after = lag_read();
	if (!ok) {
		printf("bulk change: %ld of %ld subscriptions still without it after %d s\n",
		       total_subs() - sim.n_match, total_subs(), PHASE_DEADLINE_MS / 1000);
		errors++;
	} else {
		printf("bulk change of %d routes in one transaction (%.2f s to commit): every push "
		       "to all %ld subscriptions delivered %.2f s after COMMIT\n", par.r,
		       t_commit - t, total_subs(), t_all);
	}
	print_lag("bulk change", &before, &after, pr, n);
}

/* Every subscription against what PostgreSQL holds now. */
static void phase_check(void)
{
	uint64_t *fp = calloc((size_t)par.r, sizeof(*fp));
	if (!fp)
		harness_die("out of memory");
	/* Late pushes still in flight land first. */
	int64_t until = phase_deadline(500);
	while (now_us() < until)
		sim_step(10);
	db_fingerprints(fp);
	long bad_routes = 0, bad = 0;
	for (int r = 0; r < par.r; r++)
		bad_routes += fp[r] != route_fp[r];
	for (long i = 0; i < total_subs(); i++)
		bad += sim.fp[i] != fp[sim.routes[i]];
	if (bad_routes)
		printf("check: the bench's idea of %ld routes differs from PostgreSQL\n", bad_routes);
	if (bad || sim.unexpected || sim.n_full != par.n) {
		printf("nothing lost: MISMATCH: %ld of %ld subscriptions hold another host list than "
		       "PostgreSQL; %ld unexpected frames; %ld of %d agents fully subscribed\n",
		       bad, total_subs(), sim.unexpected, sim.n_full, par.n);
		errors++;
	} else {
		printf("nothing lost: OK (%ld subscriptions of %d agents hold PostgreSQL's host "
		       "lists; %ld frames received)\n", total_subs(), par.n, sim.frames);
	}
	if (probe.failures)
		printf("probe: %ld failed round trips (lars-dns running)\n", probe.failures);
	free(fp);
}

/* ---- main ---- */

static char pg_dir[64];

/* On every exit, harness_die() included: nothing left running. */
static void cleanup(void)
{
	if (dns.pid > 0) {
		kill(dns.pid, SIGKILL);
		waitpid(dns.pid, NULL, 0);
		dns.pid = 0;
	}
	if (db)
		PQfinish(db);
	db = NULL;
	if (pg_dir[0] && harness_run("'%s' stop '%s' >/dev/null 2>&1; rm -rf '%s'", cluster,
				     pg_dir, pg_dir))
		fprintf(stderr, "bench-fleet: could not remove %s\n", pg_dir);
	pg_dir[0] = 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	/* lars-dns inherits it: one per agent, plus its own. */
	if (rl.rlim_cur < (rlim_t)par.n + 200)
		harness_die("open-file hard limit %llu is too low for N = %d (need %d)",
			    (unsigned long long)rl.rlim_cur, par.n, par.n + 200);
}

int main(int argc, char **argv)
{
	par_parse(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	bench_end_us = now_us() + (int64_t)TOTAL_DEADLINE_S * 1000000;
	dns_bin = getenv("LARS_DNS_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	cluster = getenv("LARS_PG_CLUSTER");
	if (!dns_bin || !larsctl_bin || !cluster)
		harness_die("LARS_DNS_BIN, LARSCTL_BIN and LARS_PG_CLUSTER must be set");
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);

	printf("fleet: N = %d agents, K = %d routes each, R = %d routes; %d changed routes with "
	       "%d subscribers each\n", par.n, par.k, par.r, par.changes, par.hot);
	snprintf(pg_dir, sizeof(pg_dir), "/tmp/lars-bench-fleet-%d", (int)getpid());
	int pg_port = 0;
	if (harness_cluster_start(cluster, pg_dir, &pg_port)) {
		pg_dir[0] = 0;
		harness_die("cannot start a PostgreSQL cluster");
	}
	atexit(cleanup);
	db_setup();
	dns_port = harness_free_tcp_port();
	dns_start();
	sim_init(dns_port);
	if (pthread_create(&probe.thread, NULL, probe_main, NULL))
		harness_die("pthread_create");

	phase_connect_subscribe();
	phase_push();
	phase_close_storm();
	phase_reconnect_storm();
	phase_restart();
	phase_bulk();
	phase_check();

	atomic_store(&probe.stop, true);
	pthread_join(probe.thread, NULL);
	sim_close_all();
	int st = harness_stop(&dns);
	if (st != 0) {
		printf("lars-dns exited with status %d at the end (log %s)\n", st, dns.log);
		errors++;
	}
	cleanup();
	return errors ? 1 : 0;
}
