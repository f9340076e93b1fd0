// SPDX-License-Identifier: MIT
// bench-leases: self-registration at fleet size (issue 23 item 7), by
// default 10,000 registrations from 100 agents with a TTL of 10 s.
// One process simulates the agents: it speaks the agent -> lars-dns wire
// itself (one epoll thread; 100 real lars-agent processes would not fit on
// this 2-core machine beside lars-dns and PostgreSQL) on TCP connections
// from 127.0.0.2..250 to a real lars-dns on a PostgreSQL cluster of its
// own. Each agent says AgentHello (an agent_id of its own: the lease
// owner), registers PER hosts (LeaseRequest register, one host each, at
// most INFLIGHT in flight per connection) spread over ROUTES routes
// (modid 200), then renews as agent_svc/core/registry.c does: each
// registration TTL/3 after the request that last renewed it went out, the
// due ones of a connection in one LeaseRequest per 100 ms tick (at most
// 256 hosts; the agents' ticks are spread over the 100 ms). SUBS more
// connections, the "other agents", say AgentHello, subscribe to every
// route and acknowledge each push (RouteAck). It prints:
//  1. a reference, idle, one change at a time: a plain SQL INSERT into
//     route_data -> the push at every subscriber, and one registration ->
//     its push (p50/p99, ratio), and lars-dns's CPU with every connection
//     up and nothing to do;
//  2. the registration phase: registrations/s, register -> answer, and
//     register -> push at the other agents (p50/p99 over every arrival, and
//     to the last of them), beside the SQL INSERT reference; answer -> push;
//  3. steady renewals for SECONDS: renewals/s the database saw
//     (pg_stat_user_tables.n_tup_upd of route_lease, read while renewals
//     run at both ends: each backend reports up to about a second late)
//     beside the bench's own count and the ideal N*3/TTL, renew
//     statements/s, database commits/s;
//     lars-dns CPU (utime+stime of /proc/PID/stat, % of one core) beside
//     the idle reference, and PostgreSQL's (all its processes);
//  4. checks, exit 1 on any failure: every registration acknowledged and
//     held by every subscriber; no lease expired in the renewal phase (no
//     route_change 'del' of the fleet's routes, lars_dns_leases_expired_total
//     unchanged, no push of the fleet's routes, all N leased rows there);
//     no renewal answered "absent"; each subscriber's host lists what the
//     bench registered; lars-dns exits cleanly.
// Every wait has a deadline (the whole run at most 10 minutes + SECONDS).
// Usage: bench-leases [SECONDS]   (the renewal phase, 30 by default, 1..600)
// Environment: LARS_DNS_BIN, LARSCTL_BIN, LARS_PG_CLUSTER; sizes
// LEASE_AGENTS (100), LEASE_PER_AGENT (100), LEASE_TTL (10 s),
// LEASE_ROUTES (100), LEASE_SUBS (5), LEASE_INFLIGHT (8).
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "wire_client.h"

#define MODID 200            /* the fleet's routes: (200, 0..ROUTES-1) */
#define REF_MODID 201        /* the references: cmdid 0 SQL INSERTs, 1 registrations */
#define REF_N 50             /* changes of each reference kind */
#define REF_TTL 3600         /* the reference registrations outlive the run */
#define IP_BASE 0x0a010000u  /* agent a registers 10.1.0.0 + a ... */
#define PORT_BASE 20000      /* ... its registration h on port 20000 + h */
#define REF_IP 0x0afa0000u   /* 10.250.K.x: the references' hosts */
#define N_SOURCES 249        /* agents from 127.0.0.2 .. 127.0.0.250 */
#define TICK_MS 100          /* registry.c: the agent's tick */
#define RESEND_MS 3000       /* registry.c: unanswered, sent again */
#define RETRY_MS 1000        /* registry.c: after "failed" */
#define RB_MAX 16            /* renewal batches in flight per connection */
#define MAX_SUBS 32          /* subscribers: a bit each */
#define MAX_HOSTS 1000000    /* decode cap of one route */
#define SETUP_DEADLINE_MS 30000
#define REF_DEADLINE_MS 10000
#define REG_DEADLINE_MS 300000
#define PUSH_DEADLINE_MS 30000
#define TOTAL_DEADLINE_S 600
#define IDLE_MS 5000         /* the idle CPU reference */
#define SETTLE_MS 1000       /* after the last renewal: what is late arrives */

/* ---- clock, deadlines ---- */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t bench_end_us;

static int64_t deadline_in(int ms)
{
	int64_t d = now_us() + (int64_t)ms * 1000;
	return d < bench_end_us ? d : bench_end_us;
}

/* ---- parameters ---- */

static struct {
	int agents, per, ttl, routes, subs, inflight;
	double seconds;
	long n; /* agents * per */
} par = { .agents = 100, .per = 100, .ttl = 10, .routes = 100, .subs = 5, .inflight = 8,
	  .seconds = 30 };

static void env_int(const char *name, int *slot, int min, int max)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return;
	char *end;
	long x = strtol(v, &end, 10);
	if (*end || x < min || x > max)
		harness_die("%s must be %d..%d, not '%s'", name, min, max, v);
	*slot = (int)x;
}

static void par_parse(int argc, char **argv)
{
	if (argc > 2)
		harness_die("usage: bench-leases [SECONDS]  (sizes: LEASE_AGENTS, LEASE_PER_AGENT, "
			    "LEASE_TTL, LEASE_ROUTES, LEASE_SUBS, LEASE_INFLIGHT)");
	if (argc == 2 && *argv[1]) {
		char *end;
		double s = strtod(argv[1], &end);
		if (*end || !(s >= 1 && s <= 600))
			harness_die("SECONDS must be 1..600, not '%s'", argv[1]);
		par.seconds = s;
	}
	env_int("LEASE_AGENTS", &par.agents, 1, 1000);
	env_int("LEASE_PER_AGENT", &par.per, 1, 10000);
	env_int("LEASE_TTL", &par.ttl, 3, 86400);
	env_int("LEASE_ROUTES", &par.routes, 1, 10000);
	env_int("LEASE_SUBS", &par.subs, 1, MAX_SUBS);
	env_int("LEASE_INFLIGHT", &par.inflight, 1, 256);
	par.n = (long)par.agents * par.per;
	if (par.n > 200000)
		harness_die("LEASE_AGENTS x LEASE_PER_AGENT = %ld: at most 200,000", par.n);
}

/* The renewal period, as registry.c: ttl_s * 1000 / 3 ms. */
static int64_t renew_period_us(void)
{
	return (int64_t)par.ttl * 1000 / 3 * 1000;
}

/* ---- the registrations ---- */

enum { RS_NEW, RS_REG, RS_RETRY, RS_UP, RS_RENEW, RS_LOST, RS_BAD };

/* Registration g = a * PER + h: agent a, route g % ROUTES, 10.1.0.0 + a : 20000 + h. */
typedef struct reg {
	int64_t first_us; /* its first register request went out */
	int64_t sent_us;  /* the request in flight, or the last one answered */
	int64_t ack_us;   /* the register answer */
	int64_t due_us;   /* the next renewal */
	int64_t retry_us; /* RS_RETRY: register again then */
	int64_t all_us;   /* the last subscriber got it */
	uint32_t seen;    /* subscribers that got it */
	uint8_t st;
} reg_t;

static reg_t *regs;
static int32_t *route_want; /* ROUTES: hosts the bench registered on each */

static int32_t reg_route(long g)
{
	return (int32_t)(g % par.routes);
}

static lars_LeaseHost reg_host(long g)
{
	int a = (int)(g / par.per), h = (int)(g % par.per);
	return (lars_LeaseHost){ .modid = MODID, .cmdid = reg_route(g),
				 .ip = (int32_t)(IP_BASE + (uint32_t)a), .port = PORT_BASE + h,
				 .weight = 100, .ttl_s = (uint32_t)par.ttl };
}

/* ---- connections ---- */

typedef struct rbatch {
	uint32_t seq; /* 0: free */
	int n;
	int64_t sent_us;
	int32_t h[LARS_LEASE_BATCH_MAX];
} rbatch_t;

typedef struct conn {
	int fd, idx; /* idx: the agent, or the subscriber */
	bool is_sub;
	frame_buf_t fb;
	uint8_t *out;
	size_t out_len, out_cap;
	bool pollout;
	/* an agent */
	uint32_t next_seq;
	int next_h;        /* its next registration never sent */
	int n_reg;         /* register requests in flight */
	uint32_t *reg_seq; /* INFLIGHT slots: the request's seq, 0 = free */
	int32_t *reg_h;
	int64_t *reg_sent;
	int64_t next_tick_us;
	rbatch_t *rb;      /* RB_MAX */
	int n_rb;
	/* a subscriber */
	int answered;      /* routes answered (ROUTES + 2) */
	uint8_t *got;
	int32_t *count;    /* ROUTES: hosts in the last frame of each */
} conn_t;

static struct {
	conn_t *c; /* agents, then subscribers */
	int n;
	int ep, port;
	bool registering, renewing, in_renewal;
	frame_idset_t agent_ids, sub_ids;
	int retry_waiting; /* registrations in RS_RETRY */
} sim;

/* What happened, counted as it happens. */
static struct {
	long acked, bad_result, reg_sent, reg_failed, reg_timeouts;
	long renew_reqs, renew_hosts, renewed, renew_absent, renew_failed, renew_timeouts,
		renew_deferred;
	long pushes, renewal_pushes, bad_hosts, unexpected, all_seen;
	long late; /* answers to requests sent again meanwhile */
	char first_fail[128];
} st;

static double *lat_pair; /* N * SUBS: register -> push, every arrival (ms) */
static long n_pair;

static conn_t *sub_conn(int s)
{
	return &sim.c[par.agents + s];
}

static void conn_flush(conn_t *c)
{
	size_t off = 0;
	while (off < c->out_len) {
		ssize_t w = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w <= 0)
			harness_die("%s %d: send to lars-dns: %s", c->is_sub ? "subscriber" : "agent",
				    c->idx, strerror(errno));
		off += (size_t)w;
	}
	memmove(c->out, c->out + off, c->out_len - off);
	c->out_len -= off;
	bool want = c->out_len > 0;
	if (want != c->pollout) {
		struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0),
					  .data.u32 = (uint32_t)(c - sim.c) };
		if (epoll_ctl(sim.ep, EPOLL_CTL_MOD, c->fd, &ev))
			harness_die("epoll_ctl: %s", strerror(errno));
		c->pollout = want;
	}
}

static void conn_send(conn_t *c, int32_t msgid, const pb_msgdesc_t *fields, const void *msg)
{
	static uint8_t buf[64 << 10];
	size_t n;
	if (msg_frame_encode(msgid, fields, msg, buf, sizeof(buf), &n))
		harness_die("encode message %d", msgid);
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 16384;
		while (cap < c->out_len + n)
			cap *= 2;
		if (cap > (64u << 20))
			harness_die("%s %d: lars-dns reads nothing (64 MiB waiting)",
				    c->is_sub ? "subscriber" : "agent", c->idx);
		uint8_t *p = realloc(c->out, cap);
		if (!p)
			harness_die("out of memory");
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, buf, n);
	c->out_len += n;
	if (!c->pollout)
		conn_flush(c);
}

static uint32_t next_seq(conn_t *c)
{
	uint32_t s = c->next_seq++;
	if (c->next_seq >= 0x80000000u) /* the high bit: the references' */
		c->next_seq = 1;
	return s;
}

/* A blocking loopback connection from @src, made non-blocking and added. */
static void conn_open(conn_t *c, const char *src)
{
	int fd = harness_tcp_connect_from(src, sim.port, 0);
	if (fd < 0)
		harness_die("connect from %s to lars-dns: %s", src, strerror(errno));
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK))
		harness_die("fcntl: %s", strerror(errno));
	c->fd = fd;
	frame_buf_init(&c->fb, FRAME_TCP_MAX_LIMIT, c->is_sub ? &sim.sub_ids : &sim.agent_ids);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)(c - sim.c) };
	if (epoll_ctl(sim.ep, EPOLL_CTL_ADD, fd, &ev))
		harness_die("epoll_ctl: %s", strerror(errno));
}

static void send_hello(conn_t *c, uint64_t agent_id, uint32_t caller)
{
	lars_AgentHello h = { .agent_id = agent_id, .caller = (int32_t)caller };
	snprintf(h.host_name, sizeof(h.host_name), "bench-%s-%d", c->is_sub ? "sub" : "agent",
		 c->idx);
	conn_send(c, LARS_ID_AGENT_HELLO, lars_AgentHello_fields, &h);
}

/* ---- the agents ---- */

static void send_register(conn_t *c, int slot, int32_t h, int64_t t)
{
	long g = (long)c->idx * par.per + h;
	reg_t *r = &regs[g];
	lars_LeaseRequest req = lars_LeaseRequest_init_zero;
	req.seq = next_seq(c);
	req.op = LARS_LEASE_REGISTER;
	req.host_count = 1;
	req.host[0] = reg_host(g);
	conn_send(c, LARS_ID_LEASE_REQ, lars_LeaseRequest_fields, &req);
	c->reg_seq[slot] = req.seq;
	c->reg_h[slot] = h;
	c->reg_sent[slot] = t;
	if (!r->first_us)
		r->first_us = t;
	r->sent_us = t;
	r->st = RS_REG;
	st.reg_sent++;
}

/* Fill the free register slots: registrations to retry first, then new ones. */
static void agent_pump(conn_t *c, int64_t t)
{
	if (!sim.registering || c->n_reg >= par.inflight)
		return;
	long g0 = (long)c->idx * par.per;
	for (int h = 0; sim.retry_waiting && h < c->next_h && c->n_reg < par.inflight; h++) {
		reg_t *r = &regs[g0 + h];
		if (r->st != RS_RETRY || r->retry_us > t)
			continue;
		int s = 0;
		while (c->reg_seq[s])
			s++;
		sim.retry_waiting--;
		c->n_reg++;
		send_register(c, s, h, t);
	}
	while (c->next_h < par.per && c->n_reg < par.inflight) {
		int s = 0;
		while (c->reg_seq[s])
			s++;
		c->n_reg++;
		send_register(c, s, c->next_h++, t);
	}
}

static void send_batch(conn_t *c, rbatch_t *b, int64_t t)
{
	static lars_LeaseRequest req;
	memset(&req, 0, sizeof(req));
	req.seq = b->seq;
	req.op = LARS_LEASE_RENEW;
	req.host_count = (pb_size_t)b->n;
	for (int i = 0; i < b->n; i++)
		req.host[i] = reg_host((long)c->idx * par.per + b->h[i]);
	conn_send(c, LARS_ID_LEASE_REQ, lars_LeaseRequest_fields, &req);
	b->sent_us = t;
	c->n_rb++;
	st.renew_reqs++;
	st.renew_hosts += b->n;
}

static rbatch_t *free_batch(conn_t *c)
{
	for (int i = 0; i < RB_MAX; i++)
		if (!c->rb[i].seq)
			return &c->rb[i];
	return NULL;
}

/* The agent's tick: requests without an answer, then its due renewals. */
static void agent_tick(conn_t *c, int64_t t)
{
	long g0 = (long)c->idx * par.per;
	for (int s = 0; s < par.inflight; s++) {
		if (!c->reg_seq[s] || t - c->reg_sent[s] < (int64_t)RESEND_MS * 1000)
			continue;
		st.reg_timeouts++;
		send_register(c, s, c->reg_h[s], t); /* sent again, a new seq */
	}
	for (int i = 0; i < RB_MAX; i++) {
		rbatch_t *b = &c->rb[i];
		if (!b->seq || t - b->sent_us < (int64_t)RESEND_MS * 1000)
			continue;
		st.renew_timeouts++;
		for (int k = 0; k < b->n; k++) {
			reg_t *r = &regs[g0 + b->h[k]];
			r->st = RS_UP;
			r->due_us = t; /* renewed again on this tick */
		}
		b->seq = 0;
		c->n_rb--;
	}
	agent_pump(c, t);
	if (!sim.renewing)
		return;
	rbatch_t *b = NULL;
	for (int h = 0; h < c->next_h; h++) {
		reg_t *r = &regs[g0 + h];
		if (r->st != RS_UP || r->due_us > t)
			continue;
		if (!b) {
			if (!(b = free_batch(c))) {
				st.renew_deferred++;
				break;
			}
			b->seq = next_seq(c);
			b->n = 0;
		}
		b->h[b->n++] = h;
		r->st = RS_RENEW;
		r->sent_us = t;
		if (b->n == LARS_LEASE_BATCH_MAX) {
			send_batch(c, b, t);
			b = NULL;
		}
	}
	if (b)
		send_batch(c, b, t);
}

/* ---- the references ---- */

typedef struct ref_change {
	bool active;
	int32_t cmdid, ip, port;
	uint32_t seq;     /* a registration's request */
	uint32_t mask;    /* subscribers that got the host */
	int64_t t0, done_us, ack_us;
	uint32_t result;
} ref_change_t;

static ref_change_t ref;

static void ref_seen(int s, int32_t cmdid, const lars_HostInfo *h, size_t n, int64_t t)
{
	if (!ref.active || cmdid != ref.cmdid || (ref.mask & (1u << s)))
		return;
	for (size_t i = 0; i < n; i++)
		if (h[i].ip == ref.ip && h[i].port == ref.port) {
			ref.mask |= 1u << s;
			if (__builtin_popcount(ref.mask) == par.subs)
				ref.done_us = t;
			return;
		}
}

static void agent_frame(conn_t *c, const frame_hdr_t *hdr, const uint8_t *body)
{
	static lars_LeaseResponse resp;
	const char *why = NULL;
	int64_t t = now_us();
	memset(&resp, 0, sizeof(resp));
	if (hdr->msgid != LARS_ID_LEASE_RESP) {
		st.unexpected++;
		return;
	}
	if (msg_decode(lars_LeaseResponse_fields, &resp, body, (size_t)hdr->msglen, &why))
		harness_die("agent %d: undecodable LeaseResponse: %s", c->idx, why ? why : "?");
	long g0 = (long)c->idx * par.per;
	if (resp.seq & 0x80000000u) { /* a reference registration */
		if (ref.active && resp.seq == ref.seq) {
			ref.ack_us = t;
			ref.result = resp.result_count == 1 ? resp.result[0] : LARS_LEASE_R_FAILED;
		}
		return;
	}
	if (resp.op == LARS_LEASE_REGISTER) {
		int s;
		for (s = 0; s < par.inflight && c->reg_seq[s] != resp.seq; s++)
			;
		if (s == par.inflight) {
			st.late++; /* answered after it was sent again */
			return;
		}
		reg_t *r = &regs[g0 + c->reg_h[s]];
		c->reg_seq[s] = 0;
		c->n_reg--;
		uint32_t res = resp.result_count == 1 ? resp.result[0] : LARS_LEASE_R_FAILED;
		if (res == LARS_LEASE_R_ADDED || res == LARS_LEASE_R_RENEWED) {
			r->st = RS_UP;
			r->ack_us = t;
			r->due_us = r->sent_us + renew_period_us();
			st.acked++;
		} else if (res == LARS_LEASE_R_FAILED) {
			if (!st.first_fail[0])
				snprintf(st.first_fail, sizeof(st.first_fail), "%s",
					 resp.message[0] ? resp.message : "failed");
			st.reg_failed++;
			r->st = RS_RETRY;
			r->retry_us = t + (int64_t)RETRY_MS * 1000;
			sim.retry_waiting++;
		} else {
			st.bad_result++;
			r->st = RS_BAD;
		}
		agent_pump(c, t);
		return;
	}
	if (resp.op != LARS_LEASE_RENEW) {
		st.unexpected++;
		return;
	}
	rbatch_t *b = NULL;
	for (int i = 0; i < RB_MAX && !b; i++)
		if (c->rb[i].seq == resp.seq)
			b = &c->rb[i];
	if (!b) {
		st.late++; /* answered after it was sent again */
		return;
	}
	for (int k = 0; k < b->n; k++) {
		reg_t *r = &regs[g0 + b->h[k]];
		uint32_t res = k < resp.result_count ? resp.result[k] : LARS_LEASE_R_FAILED;
		if (res == LARS_LEASE_R_RENEWED) {
			r->st = RS_UP;
			r->due_us = b->sent_us + renew_period_us();
			st.renewed++;
		} else if (res == LARS_LEASE_R_FAILED) {
			if (!st.first_fail[0])
				snprintf(st.first_fail, sizeof(st.first_fail), "%s",
					 resp.message[0] ? resp.message : "failed");
			st.renew_failed++;
			r->st = RS_UP;
			r->due_us = t + (int64_t)RETRY_MS * 1000;
		} else { /* absent: the lease ran out or was taken */
			st.renew_absent++;
			r->st = RS_LOST;
		}
	}
	b->seq = 0;
	c->n_rb--;
}

/* ---- the subscribers ---- */

static void sub_frame(conn_t *c, const frame_hdr_t *hdr, const uint8_t *body)
{
	static msg_vec_t hosts;
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	const char *why = NULL;
	int64_t t = now_us();
	if (hdr->msgid != LARS_ID_GET_ROUTE_RESP) {
		st.unexpected++;
		return;
	}
	msg_hosts_init(&hosts, MAX_HOSTS);
	msg_vec_bind(&hosts, &resp.host);
	if (msg_decode(lars_GetRouteResponse_fields, &resp, body, (size_t)hdr->msglen, &why))
		harness_die("subscriber %d: undecodable GetRouteResponse: %s", c->idx,
			    why ? why : "?");
	const lars_HostInfo *h = hosts.v;
	size_t n = hosts.n;
	if (resp.version > 0) { /* as the agent: applied, acknowledged */
		lars_RouteAck ack = { .modid = resp.modid, .cmdid = resp.cmdid,
				      .version = resp.version };
		conn_send(c, LARS_ID_ROUTE_ACK, lars_RouteAck_fields, &ack);
	}
	int slot = -1;
	if (resp.modid == REF_MODID && (resp.cmdid == 0 || resp.cmdid == 1))
		slot = par.routes + resp.cmdid;
	else if (resp.modid == MODID && resp.cmdid >= 0 && resp.cmdid < par.routes)
		slot = resp.cmdid;
	if (slot < 0) {
		st.unexpected++;
		msg_vec_deinit(&hosts);
		return;
	}
	if (!c->got[slot]) {
		c->got[slot] = 1;
		c->answered++;
	} else if (slot < par.routes) {
		st.pushes++;
		if (sim.in_renewal)
			st.renewal_pushes++;
	}
	if (slot >= par.routes) {
		ref_seen(c->idx, resp.cmdid, h, n, t);
		msg_vec_deinit(&hosts);
		return;
	}
	c->count[slot] = (int32_t)n;
	uint32_t bit = 1u << c->idx;
	for (size_t i = 0; i < n; i++) {
		uint32_t a = (uint32_t)h[i].ip - IP_BASE;
		int32_t k = h[i].port - PORT_BASE;
		long g = (long)a * par.per + k;
		if (a >= (uint32_t)par.agents || k < 0 || k >= par.per || reg_route(g) != slot ||
		    !regs[g].first_us) {
			st.bad_hosts++;
			continue;
		}
		reg_t *r = &regs[g];
		if (r->seen & bit)
			continue;
		r->seen |= bit;
		lat_pair[n_pair++] = (double)(t - r->first_us) / 1000;
		if (__builtin_popcount(r->seen) == par.subs) {
			r->all_us = t;
			st.all_seen++;
		}
	}
	msg_vec_deinit(&hosts);
}

static void conn_readable(conn_t *c)
{
	for (int rounds = 0; rounds < 64; rounds++) {
		uint8_t *p;
		size_t cap;
		if (frame_buf_space(&c->fb, &p, &cap))
			harness_die("out of memory");
		ssize_t n = recv(c->fd, p, cap, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			harness_die("%s %d: lars-dns closed the connection (%s; see its log)",
				    c->is_sub ? "subscriber" : "agent", c->idx,
				    n ? strerror(errno) : "EOF");
		frame_buf_commit(&c->fb, (size_t)n);
		frame_hdr_t hdr;
		const uint8_t *body;
		int r;
		while ((r = frame_buf_next(&c->fb, &hdr, &body)) == FRAME_OK) {
			if (c->is_sub)
				sub_frame(c, &hdr, body);
			else
				agent_frame(c, &hdr, body);
		}
		if (r != FRAME_E_NEED_MORE)
			harness_die("bad frame from lars-dns: %s (msgid %d, len %d)", frame_strerror(r),
				    hdr.msgid, hdr.msglen);
		if ((size_t)n < cap)
			return;
	}
}

/* One turn: events for up to @timeout_ms, then the agents' ticks. */
static void sim_step(int timeout_ms)
{
	struct epoll_event ev[256];
	int n = epoll_wait(sim.ep, ev, 256, timeout_ms);
	if (n < 0 && errno != EINTR)
		harness_die("epoll_wait: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		conn_t *c = &sim.c[ev[i].data.u32];
		if (ev[i].events & EPOLLOUT)
			conn_flush(c);
		if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			conn_readable(c);
	}
	int64_t t = now_us();
	for (int a = 0; a < par.agents; a++) {
		conn_t *c = &sim.c[a];
		if (t < c->next_tick_us)
			continue;
		agent_tick(c, t);
		c->next_tick_us += (int64_t)TICK_MS * 1000;
		if (c->next_tick_us <= t) /* late: the next one a whole tick on */
			c->next_tick_us = t + (int64_t)TICK_MS * 1000;
	}
}

typedef bool (*done_fn)(void);

static bool sim_run(done_fn done, int64_t deadline)
{
	while (!done || !done()) {
		if (now_us() >= deadline)
			return done == NULL;
		sim_step(1);
	}
	return true;
}

static void sim_for_ms(int ms)
{
	sim_run(NULL, deadline_in(ms));
}

static bool all_answered(void)
{
	for (int s = 0; s < par.subs; s++)
		if (sub_conn(s)->answered < par.routes + 2)
			return false;
	return true;
}

static bool all_acked(void)
{
	return st.acked + st.bad_result >= par.n;
}

static bool all_seen(void)
{
	return st.all_seen >= par.n;
}

static bool ref_done(void)
{
	return ref.done_us && (!ref.seq || ref.ack_us);
}

static bool renewals_answered(void)
{
	for (int a = 0; a < par.agents; a++)
		if (sim.c[a].n_rb)
			return false;
	return true;
}

static void sim_init(int port)
{
	sim.port = port;
	sim.n = par.agents + par.subs;
	sim.c = calloc((size_t)sim.n, sizeof(conn_t));
	regs = calloc((size_t)par.n, sizeof(reg_t));
	route_want = calloc((size_t)par.routes, sizeof(int32_t));
	lat_pair = calloc((size_t)par.n * (size_t)par.subs, sizeof(double));
	if (!sim.c || !regs || !route_want || !lat_pair)
		harness_die("out of memory");
	for (long g = 0; g < par.n; g++)
		route_want[reg_route(g)]++;
	sim.ep = epoll_create1(EPOLL_CLOEXEC);
	if (sim.ep < 0)
		harness_die("epoll_create1: %s", strerror(errno));
	frame_idset_clear(&sim.agent_ids);
	frame_idset_add(&sim.agent_ids, LARS_ID_LEASE_RESP);
	frame_idset_add(&sim.agent_ids, LARS_ID_GET_ROUTE_RESP);
	frame_idset_clear(&sim.sub_ids);
	frame_idset_add(&sim.sub_ids, LARS_ID_GET_ROUTE_RESP);
	int64_t t = now_us();
	for (int i = 0; i < sim.n; i++) {
		conn_t *c = &sim.c[i];
		c->is_sub = i >= par.agents;
		c->idx = c->is_sub ? i - par.agents : i;
		c->fd = -1;
		c->next_seq = 1;
		if (c->is_sub) {
			c->got = calloc((size_t)par.routes + 2, 1);
			c->count = calloc((size_t)par.routes, sizeof(int32_t));
			if (!c->got || !c->count)
				harness_die("out of memory");
			continue;
		}
		c->reg_seq = calloc((size_t)par.inflight, sizeof(uint32_t));
		c->reg_h = calloc((size_t)par.inflight, sizeof(int32_t));
		c->reg_sent = calloc((size_t)par.inflight, sizeof(int64_t));
		c->rb = calloc(RB_MAX, sizeof(rbatch_t));
		if (!c->reg_seq || !c->reg_h || !c->reg_sent || !c->rb)
			harness_die("out of memory");
		/* Independent agents: their ticks spread over the 100 ms. */
		c->next_tick_us = t + (int64_t)TICK_MS * 1000 * i / par.agents;
	}
}

/* Every connection up: the agents say hello; the subscribers say hello and
 * ask for every route (the fleet's and the two references'). */
static void sim_connect(void)
{
	char src[32];
	for (int a = 0; a < par.agents; a++) {
		conn_t *c = &sim.c[a];
		uint32_t caller = 0x7f000002u + (uint32_t)(a % N_SOURCES);
		snprintf(src, sizeof(src), "127.0.0.%u", caller & 0xff);
		conn_open(c, src);
		send_hello(c, 0x1ea5e00000000000ull + (uint64_t)a + 1, caller);
	}
	for (int s = 0; s < par.subs; s++) {
		conn_t *c = sub_conn(s);
		uint32_t caller = 0x7f000102u + (uint32_t)s;
		snprintf(src, sizeof(src), "127.0.1.%u", caller & 0xff);
		conn_open(c, src);
		send_hello(c, 0x5ab5000000000000ull + (uint64_t)s + 1, caller);
		for (int r = 0; r < par.routes + 2; r++) {
			lars_GetRouteRequest q = { .modid = r < par.routes ? MODID : REF_MODID,
						   .cmdid = r < par.routes ? r : r - par.routes };
			conn_send(c, LARS_ID_GET_ROUTE_REQ, lars_GetRouteRequest_fields, &q);
		}
	}
}

/* ---- lars-dns, PostgreSQL, CPU ---- */

static const char *dns_bin, *larsctl_bin, *cluster;
static harness_proc_t dns;
static int metrics_port;
static PGconn *db;
static char pg_dir[64];
static int errors;

static void dns_start(int port)
{
	char text[512];
	snprintf(text, sizeof(text),
		 "[dns]\nport = %d\nmax_conns = %d\n"
		 "[metrics]\nenabled = true\nport = 0\n[log]\nlevel = info\n",
		 port, par.agents + par.subs + 100);
	const char *cfg = harness_write_config(text);
	if (!cfg || harness_spawn(&dns, dns_bin, cfg))
		harness_die("lars-dns did not start");
	metrics_port = harness_port(&dns, "metrics");
	if (harness_port(&dns, "tcp") != port || metrics_port <= 0)
		harness_die("lars-dns ready line without tcp=%d and metrics=: %s", port, dns.ready);
}

/* A sample of lars-dns's /metrics ("Connection: close": no 5 s wait), or -1. */
static double dns_metric(const char *name)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	static char buf[1 << 20];
	int64_t deadline = harness_deadline(5000);
	int fd = wc_connect("127.0.0.1", metrics_port, deadline);
	size_t len = 0;
	if (fd < 0)
		return -1;
	if (harness_send_all(fd, req, sizeof(req) - 1)) {
		close(fd);
		return -1;
	}
	while (len < sizeof(buf) - 1) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int left = harness_left_ms(deadline);
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			break;
		ssize_t k = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	buf[len] = 0;
	close(fd);
	return len ? harness_metric_in(buf, name) : -1;
}

static long long sql_num(const char *q)
{
	PGresult *res = PQexec(db, q);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		harness_die("%s: %s", q, PQresultErrorMessage(res));
	long long v = PQgetisnull(res, 0, 0) ? 0 : atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

static void sql(const char *q)
{
	PGresult *res = PQexec(db, q);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		harness_die("%s: %s", q, PQresultErrorMessage(res));
	PQclear(res);
}

/* utime + stime (+ cutime + cstime with @children) of @pid in ticks; -1 if gone. */
static long long proc_ticks(long pid, bool children, long *ppidp)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* After "(comm)": field 3 (state), 4 (ppid), ... 14 utime, 15 stime,
	 * 16 cutime, 17 cstime. */
	long long f[18] = { 0 };
	char *save = NULL;
	int k = 3;
	for (char *tok = strtok_r(p + 1, " ", &save); tok && k <= 17;
	     tok = strtok_r(NULL, " ", &save), k++)
		f[k] = k == 3 ? 0 : atoll(tok);
	if (ppidp)
		*ppidp = (long)f[4];
	return f[14] + f[15] + (children ? f[16] + f[17] : 0);
}

static long postmaster_pid(void)
{
	char path[128], line[64] = "";
	snprintf(path, sizeof(path), "%s/data/postmaster.pid", pg_dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	return atol(line) > 0 ? atol(line) : -1;
}

/* CPU seconds of PostgreSQL: the postmaster (with the children it reaped)
 * and every process it started; -1 if not readable. */
static double pg_cpu_s(void)
{
	long pm = postmaster_pid();
	if (pm <= 0)
		return -1;
	long long t = proc_ticks(pm, true, NULL);
	if (t < 0)
		return -1;
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		long ppid = 0;
		if (*end || pid <= 0 || pid == pm)
			continue;
		long long x = proc_ticks(pid, true, &ppid);
		if (x >= 0 && ppid == pm)
			t += x;
	}
	closedir(d);
	return (double)t / (double)sysconf(_SC_CLK_TCK);
}

static double dns_cpu_s(void)
{
	long long t = proc_ticks((long)dns.pid, false, NULL);
	return t < 0 ? -1 : (double)t / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* CPU of lars-dns, PostgreSQL and this process at one moment. */
typedef struct cpu_snap {
	int64_t t;
	double dns, pg, self;
} cpu_snap_t;

static cpu_snap_t cpu_now(void)
{
	return (cpu_snap_t){ .t = now_us(), .dns = dns_cpu_s(), .pg = pg_cpu_s(),
			     .self = self_cpu_s() };
}

/* Percent of one core of the three between two snapshots. */
typedef struct cpu_pct {
	double dns, pg, self, secs;
} cpu_pct_t;

static cpu_pct_t cpu_between(const cpu_snap_t *a, const cpu_snap_t *b)
{
	double s = (double)(b->t - a->t) / 1e6;
	return (cpu_pct_t){ .secs = s, .dns = (b->dns - a->dns) / s * 100,
			    .pg = a->pg < 0 || b->pg < 0 ? -1 : (b->pg - a->pg) / s * 100,
			    .self = (b->self - a->self) / s * 100 };
}

static void loadavg(char *out, size_t cap)
{
	FILE *f = fopen("/proc/loadavg", "r");
	out[0] = 0;
	if (f) {
		if (!fgets(out, (int)cap, f))
			out[0] = 0;
		fclose(f);
	}
	out[strcspn(out, "\n")] = 0;
}

/* ---- figures ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The @p quantile of the sorted @v (nearest rank). */
static double pct(const double *v, long n, double p)
{
	if (n <= 0)
		return 0;
	double x = p * (double)n;
	long i = (long)x;
	i += (double)i < x; /* the rank: x rounded up */
	i--;
	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* ---- the phases ---- */

static struct {
	double sql_p50, sql_p99, reg_p50, reg_p99, ack_p50, ack_p99;
	cpu_pct_t idle;
} refr;

static void phase_setup(void)
{
	sim_connect();
	if (!sim_run(all_answered, deadline_in(SETUP_DEADLINE_MS)))
		harness_die("the %d subscribers did not get their %d answers within %d s", par.subs,
			    par.routes + 2, SETUP_DEADLINE_MS / 1000);
	/* The reference's CPU: every connection up, nothing to do. */
	sim_for_ms(200);
	cpu_snap_t a = cpu_now();
	sim_for_ms(IDLE_MS);
	cpu_snap_t b = cpu_now();
	refr.idle = cpu_between(&a, &b);
}

/* One reference change: wait until every subscriber holds the host. */
static double ref_wait(int k, const char *what)
{
	if (!sim_run(ref_done, deadline_in(REF_DEADLINE_MS)))
		harness_die("reference %s %d: the push did not reach all %d subscribers within %d s",
			    what, k, par.subs, REF_DEADLINE_MS / 1000);
	ref.active = false;
	return (double)(ref.done_us - ref.t0) / 1000;
}

static void phase_reference(void)
{
	double lsql[REF_N], lreg[REF_N], lack[REF_N];
	char q[256];
	sql("INSERT INTO modid_config (modid) VALUES (201) ON CONFLICT DO NOTHING");
	sql("INSERT INTO cmdid_config (modid, cmdid) VALUES (201, 0), (201, 1) "
	    "ON CONFLICT DO NOTHING");
	for (int k = 0; k < REF_N; k++) {
		/* A plain SQL INSERT: the route triggers bump, record, notify. */
		ref = (ref_change_t){ .active = true, .cmdid = 0,
				     .ip = (int32_t)(REF_IP + (uint32_t)k + 1), .port = 30000 + k };
		snprintf(q, sizeof(q), "INSERT INTO route_data (modid, cmdid, ip, port) "
			 "VALUES (%d, 0, '10.250.0.%d', %d)", REF_MODID, k + 1, ref.port);
		ref.t0 = now_us();
		sql(q);
		lsql[k] = ref_wait(k, "SQL INSERT");
		/* One registration from agent 0, nothing else going on. */
		conn_t *c = &sim.c[0];
		lars_LeaseRequest req = lars_LeaseRequest_init_zero;
		ref = (ref_change_t){ .active = true, .cmdid = 1,
				     .ip = (int32_t)(REF_IP + 0x100u + (uint32_t)k + 1),
				     .port = 30000 + k, .seq = 0x80000000u | (uint32_t)k };
		req.seq = ref.seq;
		req.op = LARS_LEASE_REGISTER;
		req.host_count = 1;
		req.host[0] = (lars_LeaseHost){ .modid = REF_MODID, .cmdid = 1, .ip = ref.ip,
						.port = ref.port, .weight = 100, .ttl_s = REF_TTL };
		ref.t0 = now_us();
		conn_send(c, LARS_ID_LEASE_REQ, lars_LeaseRequest_fields, &req);
		lreg[k] = ref_wait(k, "registration");
		if (ref.result != LARS_LEASE_R_ADDED)
			harness_die("reference registration %d: result %u, not added", k, ref.result);
		lack[k] = (double)(ref.ack_us - ref.t0) / 1000;
	}
	qsort(lsql, REF_N, sizeof(double), cmp_double);
	qsort(lreg, REF_N, sizeof(double), cmp_double);
	qsort(lack, REF_N, sizeof(double), cmp_double);
	refr.sql_p50 = pct(lsql, REF_N, 0.5);
	refr.sql_p99 = pct(lsql, REF_N, 0.99);
	refr.reg_p50 = pct(lreg, REF_N, 0.5);
	refr.reg_p99 = pct(lreg, REF_N, 0.99);
	refr.ack_p50 = pct(lack, REF_N, 0.5);
	refr.ack_p99 = pct(lack, REF_N, 0.99);
}

static struct {
	bool acked, seen;
	double t_ack, t_seen, rate;
	double ack_p50, ack_p99, pair_p50, pair_p99, pair_max, last_p50, last_p99, last_max;
	double gap_p50, gap_p99;
	long missing_subs;
	cpu_pct_t cpu;
} regp;

static void phase_register(void)
{
	cpu_snap_t a = cpu_now();
	sim.registering = sim.renewing = true;
	int64_t t0 = now_us();
	for (int i = 0; i < par.agents; i++)
		agent_pump(&sim.c[i], t0);
	regp.acked = sim_run(all_acked, deadline_in(REG_DEADLINE_MS));
	int64_t t1 = now_us();
	regp.seen = sim_run(all_seen, deadline_in(PUSH_DEADLINE_MS));
	int64_t t2 = now_us();
	cpu_snap_t b = cpu_now();
	regp.cpu = cpu_between(&a, &b);
	regp.t_ack = (double)(t1 - t0) / 1e6;
	regp.t_seen = (double)(t2 - t0) / 1e6;
	regp.rate = (double)st.acked / regp.t_ack;
	double *ack = calloc((size_t)par.n, sizeof(double));
	double *last = calloc((size_t)par.n, sizeof(double));
	double *gap = calloc((size_t)par.n, sizeof(double));
	if (!ack || !last || !gap)
		harness_die("out of memory");
	long na = 0, nl = 0, ng = 0;
	for (long g = 0; g < par.n; g++) {
		if (regs[g].ack_us)
			ack[na++] = (double)(regs[g].ack_us - regs[g].first_us) / 1000;
		if (regs[g].ack_us && regs[g].all_us)
			gap[ng++] = (double)(regs[g].all_us - regs[g].ack_us) / 1000;
		if (regs[g].all_us)
			last[nl++] = (double)(regs[g].all_us - regs[g].first_us) / 1000;
		else
			regp.missing_subs++;
	}
	qsort(ack, (size_t)na, sizeof(double), cmp_double);
	qsort(last, (size_t)nl, sizeof(double), cmp_double);
	qsort(gap, (size_t)ng, sizeof(double), cmp_double);
	regp.gap_p50 = pct(gap, ng, 0.5);
	regp.gap_p99 = pct(gap, ng, 0.99);
	qsort(lat_pair, (size_t)n_pair, sizeof(double), cmp_double);
	regp.ack_p50 = pct(ack, na, 0.5);
	regp.ack_p99 = pct(ack, na, 0.99);
	regp.pair_p50 = pct(lat_pair, n_pair, 0.5);
	regp.pair_p99 = pct(lat_pair, n_pair, 0.99);
	regp.pair_max = n_pair ? lat_pair[n_pair - 1] : 0;
	regp.last_p50 = pct(last, nl, 0.5);
	regp.last_p99 = pct(last, nl, 0.99);
	regp.last_max = nl ? last[nl - 1] : 0;
	free(ack);
	free(last);
	free(gap);
	if (!regp.acked) {
		printf("registration: only %ld of %ld registrations acknowledged within %d s "
		       "(%ld refused as an operator's or otherwise)\n", st.acked, par.n,
		       REG_DEADLINE_MS / 1000, st.bad_result);
		errors++;
	} else if (st.bad_result) {
		printf("registration: %ld answered neither added nor failed\n", st.bad_result);
		errors++;
	}
	if (!regp.seen) {
		printf("pushes missing: %ld of %ld registrations did not reach all %d subscribers "
		       "within %d s of the last answer\n", regp.missing_subs, par.n, par.subs,
		       PUSH_DEADLINE_MS / 1000);
		errors++;
	}
}

static struct {
	double secs, db_rate, bench_rate, sent_rate, stmt_rate, dns_stmt_rate, commit_rate;
	double hosts_per_stmt, cpu_per_renewal_us;
	long long db_upd, commits, deleted, expired, leased, rows;
	long pushes, absent, failed, timeouts, deferred;
	cpu_pct_t cpu;
} ren;

static void phase_renew(void)
{
	char q[512];
	sim.in_renewal = true;
	long long upd0 = sql_num("SELECT n_tup_upd FROM pg_stat_user_tables "
				 "WHERE relname = 'route_lease'");
	long long com0 = sql_num("SELECT xact_commit FROM pg_stat_database "
				 "WHERE datname = current_database()");
	long long chg0 = sql_num("SELECT coalesce(max(id), 0) FROM route_change");
	double exp0 = dns_metric("lars_dns_leases_expired_total");
	double dreq0 = dns_metric("lars_dns_lease_requests_total{op=\"renew\"}");
	long reqs0 = st.renew_reqs, hosts0 = st.renew_hosts, renewed0 = st.renewed;
	long push0 = st.renewal_pushes, abs0 = st.renew_absent, fail0 = st.renew_failed,
	     to0 = st.renew_timeouts, def0 = st.renew_deferred;
	cpu_snap_t a = cpu_now();
	sim_for_ms((int)(par.seconds * 1000));
	cpu_snap_t b = cpu_now();
	long reqs1 = st.renew_reqs, hosts1 = st.renew_hosts, renewed1 = st.renewed;
	/* Read while the renewals still run, as at the start: each backend's
	 * statistics reach pg_stat_* late by the same up to a second or so at
	 * both ends (an idle backend's last ones only after 10 s). */
	ren.db_upd = sql_num("SELECT n_tup_upd FROM pg_stat_user_tables "
			     "WHERE relname = 'route_lease'") - upd0;
	ren.commits = sql_num("SELECT xact_commit FROM pg_stat_database "
			      "WHERE datname = current_database()") - com0;
	double dreq1 = dns_metric("lars_dns_lease_requests_total{op=\"renew\"}");
	/* The end: no more renewals; the last answers, then the checks (the
	 * leases renewed last run out TTL - TTL/3 from now at the earliest). */
	sim.renewing = false;
	sim_run(renewals_answered, deadline_in(RESEND_MS + 1000));
	sim_for_ms(SETTLE_MS);
	sim.in_renewal = false;
	ren.cpu = cpu_between(&a, &b);
	ren.secs = ren.cpu.secs;
	snprintf(q, sizeof(q), "SELECT count(*) FROM route_change WHERE id > %lld AND modid = %d "
		 "AND action = 'del'", chg0, MODID);
	ren.deleted = sql_num(q);
	ren.expired = (long long)(dns_metric("lars_dns_leases_expired_total") - exp0);
	snprintf(q, sizeof(q), "SELECT count(*) FROM route_lease l JOIN route_data d "
		 "ON d.id = l.route_id WHERE d.modid = %d", MODID);
	ren.leased = sql_num(q);
	snprintf(q, sizeof(q), "SELECT count(*) FROM route_data WHERE modid = %d", MODID);
	ren.rows = sql_num(q);
	ren.db_rate = (double)ren.db_upd / ren.secs;
	ren.bench_rate = (double)(renewed1 - renewed0) / ren.secs;
	ren.sent_rate = (double)(hosts1 - hosts0) / ren.secs;
	ren.stmt_rate = (double)(reqs1 - reqs0) / ren.secs;
	ren.dns_stmt_rate = dreq0 >= 0 && dreq1 >= 0 ? (dreq1 - dreq0) / ren.secs : -1;
	ren.commit_rate = (double)ren.commits / ren.secs;
	ren.hosts_per_stmt = reqs1 > reqs0 ? (double)(hosts1 - hosts0) / (double)(reqs1 - reqs0) : 0;
	ren.cpu_per_renewal_us = hosts1 > hosts0
		? (b.dns - a.dns) / (double)(hosts1 - hosts0) * 1e6 : 0;
	ren.pushes = st.renewal_pushes - push0;
	ren.absent = st.renew_absent - abs0;
	ren.failed = st.renew_failed - fail0;
	ren.timeouts = st.renew_timeouts - to0;
	ren.deferred = st.renew_deferred - def0;
}

/* Each subscriber's host lists against what the bench registered. */
static long check_subscribers(void)
{
	long bad = 0;
	for (int s = 0; s < par.subs; s++)
		for (int r = 0; r < par.routes; r++)
			bad += sub_conn(s)->count[r] != route_want[r];
	return bad;
}

static void print_cpu(const char *label, const cpu_pct_t *c)
{
	char pg[32];
	if (c->pg < 0)
		snprintf(pg, sizeof(pg), "n/a");
	else
		snprintf(pg, sizeof(pg), "%.1f%%", c->pg);
	printf("  %s: lars-dns %.1f%%, PostgreSQL %s, this process %.1f%% of one core "
	       "(over %.1f s)\n", label, c->dns, pg, c->self, c->secs);
}

static void print_summary(const char *load0, const char *load1)
{
	double ideal = (double)par.n * 3 / par.ttl;
	printf("== bench-leases summary ==\n");
	printf("setup: %d agents x %d registrations = %ld, TTL %d s (renewed every %.2f s, "
	       "batched per agent per %d ms tick, <= %d hosts a request), %d routes of modid %d, "
	       "%d other agents subscribed to all of them; %d register requests in flight per "
	       "agent. The agents are simulated on the wire (one epoll thread), not %d "
	       "lars-agent processes: those would not fit on %ld cores.\n",
	       par.agents, par.per, par.n, par.ttl, (double)renew_period_us() / 1e6, TICK_MS,
	       LARS_LEASE_BATCH_MAX, par.routes, MODID, par.subs, par.inflight, par.agents,
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("load average (1/5/15 min, runnable/all, last pid): at start %s; at end %s\n",
	       load0, load1);
	printf("reference, idle, one change at a time (%d each): plain SQL INSERT -> push at all "
	       "%d subscribers p50 %.2f ms  p99 %.2f ms; one registration -> push p50 %.2f ms  "
	       "p99 %.2f ms (answer p50 %.2f ms)   ratio of p50s %.2f\n", REF_N, par.subs,
	       refr.sql_p50, refr.sql_p99, refr.reg_p50, refr.reg_p99, refr.ack_p50,
	       refr.reg_p50 / (refr.sql_p50 > 0 ? refr.sql_p50 : 1));
	printf("registration phase: %ld registrations acknowledged in %.2f s: %.0f/s; all "
	       "pushed to every subscriber %.2f s after the start (%ld register requests sent, "
	       "%ld failed and retried after %d ms%s%s%s, %ld unanswered for %d s and sent again)\n",
	       st.acked, regp.t_ack, regp.rate, regp.t_seen, st.reg_sent, st.reg_failed, RETRY_MS,
	       st.first_fail[0] ? ": \"" : "", st.first_fail, st.first_fail[0] ? "\"" : "",
	       st.reg_timeouts, RESEND_MS / 1000);
	printf("  register -> answer: p50 %.2f ms  p99 %.2f ms\n", regp.ack_p50, regp.ack_p99);
	printf("  register -> push at the other agents (%ld arrivals): p50 %.2f ms  p99 %.2f ms  "
	       "max %.2f ms   ratio of p50s to the SQL INSERT reference %.1f\n", n_pair,
	       regp.pair_p50, regp.pair_p99, regp.pair_max,
	       regp.pair_p50 / (refr.sql_p50 > 0 ? refr.sql_p50 : 1));
	printf("  register -> push at the last of the %d: p50 %.2f ms  p99 %.2f ms  max %.2f ms "
	       "(%ld route pushes received)\n", par.subs, regp.last_p50, regp.last_p99,
	       regp.last_max, st.pushes);
	printf("  its answer -> push at the last of the %d: p50 %.2f ms  p99 %.2f ms (negative: "
	       "the push came first)\n", par.subs, regp.gap_p50, regp.gap_p99);
	print_cpu("CPU, registration phase", &regp.cpu);
	printf("renewal phase (%.1f s): renewals the database saw (route_lease n_tup_upd): "
	       "%.0f/s  (%lld rows)   ideal N*3/TTL %.0f/s, ratio %.3f\n", ren.secs, ren.db_rate,
	       ren.db_upd, ideal, ren.db_rate / ideal);
	printf("  renewals answered \"renewed\": %.0f/s; hosts sent for renewal %.0f/s\n",
	       ren.bench_rate, ren.sent_rate);
	if (ren.dns_stmt_rate >= 0)
		printf("  renew statements (one UPDATE per LeaseRequest): %.1f/s sent (lars-dns "
		       "counted %.1f/s), %.1f hosts each; database commits (all of it): %.1f/s\n",
		       ren.stmt_rate, ren.dns_stmt_rate, ren.hosts_per_stmt, ren.commit_rate);
	else
		printf("  renew statements (one UPDATE per LeaseRequest): %.1f/s, %.1f hosts each; "
		       "database commits (all of it): %.1f/s\n", ren.stmt_rate, ren.hosts_per_stmt,
		       ren.commit_rate);
	printf("  lars-dns CPU: %.2f%% of one core (idle with the same connections: %.2f%%), "
	       "%.1f us per renewal\n", ren.cpu.dns, refr.idle.dns, ren.cpu_per_renewal_us);
	print_cpu("CPU, renewal phase", &ren.cpu);
	print_cpu("CPU, idle reference", &refr.idle);
	printf("  renewals not renewed: %ld absent (lease gone), %ld failed, %ld unanswered for "
	       "%d s; %ld ticks postponed (%d batches in flight); %ld late answers in the run "
	       "(to requests sent again)\n", ren.absent, ren.failed, ren.timeouts,
	       RESEND_MS / 1000, ren.deferred, RB_MAX, st.late);
	printf("  wrongly expired during the phase: %lld (route_change 'del' of modid %d: %lld, "
	       "lars_dns_leases_expired_total +%lld, pushes of the fleet's routes %ld, leased "
	       "rows %lld and route rows %lld of %ld)\n",
	       ren.deleted + (ren.leased < par.n ? par.n - ren.leased : 0), MODID, ren.deleted,
	       ren.expired, ren.pushes, ren.leased, ren.rows, par.n);
}

static void checks(void)
{
	if (ren.deleted || ren.expired || ren.pushes || ren.leased != par.n || ren.rows != par.n ||
	    ren.absent) {
		printf("FAIL: leases expired or hosts changed during the renewal phase\n");
		errors++;
	}
	long bad = check_subscribers();
	if (bad || st.bad_hosts || st.unexpected) {
		printf("FAIL: %ld (subscriber, route) host lists differ from what was registered; "
		       "%ld unknown hosts, %ld unexpected frames\n", bad, st.bad_hosts, st.unexpected);
		errors++;
	}
	if (ren.db_upd <= 0) {
		printf("FAIL: the database saw no renewals\n");
		errors++;
	}
}

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
		fprintf(stderr, "bench-leases: could not remove %s\n", pg_dir);
	pg_dir[0] = 0;
}

int main(int argc, char **argv)
{
	par_parse(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	bench_end_us = now_us() + ((int64_t)TOTAL_DEADLINE_S + (int64_t)par.seconds) * 1000000;
	dns_bin = getenv("LARS_DNS_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	cluster = getenv("LARS_PG_CLUSTER");
	if (!dns_bin || !larsctl_bin || !cluster)
		harness_die("LARS_DNS_BIN, LARSCTL_BIN and LARS_PG_CLUSTER must be set");
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)(par.agents + par.subs + 200))
		harness_die("open-file limit %llu too low for %d agents",
			    (unsigned long long)rl.rlim_cur, par.agents);
	signal(SIGPIPE, SIG_IGN);
	char load0[128], load1[128];
	loadavg(load0, sizeof(load0));

	printf("leases: %d agents x %d registrations, TTL %d s, %d routes, %d subscribers, "
	       "renewal phase %.0f s\n", par.agents, par.per, par.ttl, par.routes, par.subs,
	       par.seconds);
	snprintf(pg_dir, sizeof(pg_dir), "/tmp/lars-bench-leases-%d", (int)getpid());
	int pg_port = 0;
	if (harness_cluster_start(cluster, pg_dir, &pg_port)) {
		pg_dir[0] = 0;
		harness_die("cannot start a PostgreSQL cluster");
	}
	atexit(cleanup);
	if (harness_run("%s migrate >/dev/null", larsctl_bin))
		harness_die("larsctl migrate failed");
	db = PQconnectdb("");
	if (PQstatus(db) != CONNECTION_OK)
		harness_die("connect: %s", PQerrorMessage(db));
	int port = harness_free_tcp_port();
	dns_start(port);
	sim_init(port);

	phase_setup();
	printf("setup: %d agents and %d subscribers connected; lars-dns idle %.2f%% of one core\n",
	       par.agents, par.subs, refr.idle.dns);
	phase_reference();
	printf("reference: SQL INSERT -> push p50 %.2f ms, registration -> push p50 %.2f ms\n",
	       refr.sql_p50, refr.reg_p50);
	phase_register();
	printf("registration: %ld acknowledged in %.2f s, at every subscriber after %.2f s\n",
	       st.acked, regp.t_ack, regp.t_seen);
	phase_renew();
	loadavg(load1, sizeof(load1));
	print_summary(load0, load1);
	checks();

	for (int i = 0; i < sim.n; i++)
		if (sim.c[i].fd >= 0)
			close(sim.c[i].fd);
	int stop = harness_stop(&dns);
	if (stop != 0) {
		printf("FAIL: lars-dns exited with status %d (log %s)\n", stop, dns.log);
		errors++;
	}
	cleanup();
	printf("result: %s\n", errors ? "FAIL" : "OK");
	return errors ? 1 : 0;
}
