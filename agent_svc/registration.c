// SPDX-License-Identifier: MIT
// lars-agent's self-registration I/O (registration.h).
//
// DESIGN: core/registry.c decides; this file carries it out. A 100 ms timer
// ticks the registry; its LeaseRequests go on the lars-dns connection and
// its checks run here as one TCP connection each, bounded by a timer: a
// TCP check passes when the connection is made, an HTTP check when the
// status line says 2xx. A check ends once (finish()), whichever of answer,
// error or timeout comes first; its handles then close and free it.
#include "registration.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "net.h"
#include "udp_server.h"
#include "xalloc.h"

#define REG_TICK_MS 100
#define CHECK_BUF 512 /* the status line must come within it */

typedef struct check_run {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t connect;
	uv_write_t write;
	agent_reg_t *ar;
	uint32_t id, gen;
	int kind;
	bool done;
	int open_handles;
	char req[256];
	char buf[CHECK_BUF];
	size_t got;
	struct check_run *prev, *next;
} check_run_t;

struct agent_reg {
	uv_loop_t *loop;
	uv_timer_t tick;
	reg_t reg;
	tcp_client_t *dns;
	check_run_t *runs;
	size_t n_runs;
	bool closing, tick_closed;
	metrics_counter_t *requests, *refused, *checks, *check_failures;
	reg_counts_t seen; /* the core's counts already added to the metrics */
	metrics_counter_t *registered, *deregistered, *renewals, *drained;
};

static void areg_maybe_free(agent_reg_t *ar)
{
	if (!ar->closing || !ar->tick_closed || ar->runs)
		return;
	reg_deinit(&ar->reg);
	free(ar);
}

/* ---- health checks ---- */

static void on_run_closed(uv_handle_t *h)
{
	check_run_t *c = h->data;
	if (--c->open_handles > 0)
		return;
	agent_reg_t *ar = c->ar;
	if (c->prev)
		c->prev->next = c->next;
	else
		ar->runs = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ar->n_runs--;
	free(c);
	areg_maybe_free(ar);
}

/* The check's outcome, once; then its handles close. */
static void finish(check_run_t *c, bool ok, const char *why)
{
	if (c->done)
		return;
	c->done = true;
	agent_reg_t *ar = c->ar;
	metrics_inc(ar->checks);
	if (!ok)
		metrics_inc(ar->check_failures);
	if (!ar->closing)
		reg_check_done(&ar->reg, c->id, c->gen, ok, why, uv_now(ar->loop));
	uv_close((uv_handle_t *)&c->tcp, on_run_closed);
	uv_close((uv_handle_t *)&c->timer, on_run_closed);
}

static void on_check_timeout(uv_timer_t *t)
{
	finish(t->data, false, "timed out");
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	check_run_t *c = h->data;
	(void)suggested;
	*buf = uv_buf_init(c->buf + c->got, (unsigned)(sizeof(c->buf) - 1 - c->got));
}

/* "HTTP/1.x NNN ...": 2xx passes. */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	check_run_t *c = s->data;
	(void)buf;
	if (n < 0) {
		finish(c, false, n == UV_EOF ? "closed before a status line" : uv_strerror((int)n));
		return;
	}
	c->got += (size_t)n;
	c->buf[c->got] = '\0';
	char *eol = strstr(c->buf, "\r\n");
	if (!eol && c->got < sizeof(c->buf) - 1)
		return;
	int status = 0;
	if (sscanf(c->buf, "HTTP/%*d.%*d %d", &status) != 1) {
		finish(c, false, "not an HTTP answer");
		return;
	}
	char why[32];
	snprintf(why, sizeof(why), "HTTP status %d", status);
	finish(c, status >= 200 && status < 300, why);
}

static void on_written(uv_write_t *w, int status)
{
	check_run_t *c = w->data;
	if (status < 0)
		finish(c, false, uv_strerror(status));
}

static void on_connected(uv_connect_t *req, int status)
{
	check_run_t *c = req->data;
	if (status == UV_ECANCELED)
		return; /* closed by finish() already */
	if (status < 0) {
		finish(c, false, uv_strerror(status));
		return;
	}
	if (c->kind == LARS_CHECK_TCP) {
		finish(c, true, NULL);
		return;
	}
	uv_buf_t b = uv_buf_init(c->req, (unsigned)strlen(c->req));
	c->write.data = c;
	int r = uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_written);
	if (r == 0)
		r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (r)
		finish(c, false, uv_strerror(r));
}

static void run_check(void *user, const reg_check_t *k)
{
	agent_reg_t *ar = user;
	check_run_t *c = xcalloc(1, sizeof(*c));
	c->ar = ar;
	c->id = k->id;
	c->gen = k->gen;
	c->kind = k->kind;
	char ip[16];
	msg_ip_to_str(k->ip, ip);
	snprintf(c->req, sizeof(c->req),
		 "GET %s HTTP/1.0\r\nHost: %s:%d\r\nUser-Agent: lars-agent\r\nConnection: close\r\n\r\n",
		 k->path, ip, k->port);
	(void)uv_tcp_init(ar->loop, &c->tcp); /* cannot fail on a live loop */
	(void)uv_timer_init(ar->loop, &c->timer);
	c->tcp.data = c->timer.data = c->connect.data = c;
	c->open_handles = 2;
	c->next = ar->runs;
	if (ar->runs)
		ar->runs->prev = c;
	ar->runs = c;
	ar->n_runs++;
	struct sockaddr_in sa;
	int r = uv_ip4_addr(ip, k->port, &sa);
	if (r == 0)
		r = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&sa, on_connected);
	if (r == 0)
		r = uv_timer_start(&c->timer, on_check_timeout, (uint64_t)k->timeout_ms, 0);
	if (r)
		finish(c, false, uv_strerror(r));
}

/* ---- lars-dns ---- */

static int send_lease(void *user, const lars_LeaseRequest *req)
{
	agent_reg_t *ar = user;
	if (!ar->dns || !tcp_client_connected(ar->dns))
		return -ENOTCONN;
	return tcp_client_send(ar->dns, LARS_ID_LEASE_REQ, lars_LeaseRequest_fields, req);
}

static void log_line(void *user, const char *line)
{
	(void)user;
	log_info("agent: %s", line);
}

int areg_on_lease(peer_t *peer, void *user, int32_t msgid, const uint8_t *body, size_t len)
{
	agent_reg_t *ar = user;
	lars_LeaseResponse resp = lars_LeaseResponse_init_zero;
	const char *why;
	int r = msg_decode(lars_LeaseResponse_fields, &resp, body, len, &why);
	if (r) {
		log_debug("agent: bad LeaseResponse from %s: %s", peer_name(peer), why);
		return r;
	}
	if (resp.message[0])
		log_warn("agent: lars-dns on a lease request: %s", resp.message);
	reg_lease_answer(&ar->reg, &resp, uv_now(ar->loop));
	return 0;
}

void areg_set_dns(agent_reg_t *ar, tcp_client_t *dns)
{
	ar->dns = dns;
}

void areg_link(agent_reg_t *ar, bool up)
{
	reg_set_link(&ar->reg, up, uv_now(ar->loop));
}

/* ---- apps ---- */

int areg_on_udp(peer_t *peer, void *user, int32_t msgid, const uint8_t *body, size_t len)
{
	agent_reg_t *ar = user;
	const struct sockaddr *from = udp_peer_of(peer)->addr;
	if (!net_addr_is_loopback(from)) {
		log_debug("agent: registration from %s refused: not from loopback", peer_name(peer));
		return 0; /* dropped: another machine never registers here */
	}
	lars_RegisterRequest req = lars_RegisterRequest_init_zero;
	int r = msg_decode(lars_RegisterRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	metrics_inc(ar->requests);
	lars_RegisterResponse resp;
	uint64_t now = uv_now(ar->loop);
	reg_request(&ar->reg, &req, msgid == LARS_ID_DEREGISTER_REQ, now, &resp);
	if (resp.state == LARS_REG_REFUSED) {
		metrics_inc(ar->refused);
		log_info("agent: registration from %s refused: %s", peer_name(peer), resp.message);
	}
	reg_tick(&ar->reg, now); /* a new one's check and request go out now */
	r = udp_server_reply(peer, LARS_ID_REGISTER_RESP, lars_RegisterResponse_fields, &resp);
	if (r)
		log_debug("agent: RegisterResponse to %s not sent: %d", peer_name(peer), r);
	return 0;
}

/* ---- the timer ---- */

static void sync_counts(agent_reg_t *ar)
{
	const reg_counts_t *c = &ar->reg.counts;
	metrics_add(ar->registered, c->registered - ar->seen.registered);
	metrics_add(ar->deregistered, c->deregistered - ar->seen.deregistered);
	metrics_add(ar->renewals, c->renewals - ar->seen.renewals);
	metrics_add(ar->drained, c->drained_by_check - ar->seen.drained_by_check);
	ar->seen = *c;
}

static void on_tick(uv_timer_t *t)
{
	agent_reg_t *ar = t->data;
	reg_tick(&ar->reg, uv_now(ar->loop));
	sync_counts(ar);
}

static double gauge_held(void *arg)
{
	return (double)reg_count(&((agent_reg_t *)arg)->reg);
}

agent_reg_t *areg_new(uv_loop_t *loop, const reg_cfg_t *cfg, metrics_t *m)
{
	agent_reg_t *ar = xcalloc(1, sizeof(*ar));
	ar->loop = loop;
	reg_ops_t ops = { .send = send_lease, .check = run_check, .log = log_line, .user = ar };
	reg_init(&ar->reg, cfg, &ops);
	ar->requests = metrics_counter(m, "lars_agent_register_requests_total",
				       "Register and Deregister requests from apps");
	ar->refused = metrics_counter(m, "lars_agent_register_refused_total",
				      "Register requests refused (bad input, table full)");
	ar->registered = metrics_counter(m, "lars_agent_registrations_total",
					 "Instances registered through this agent");
	ar->deregistered = metrics_counter(m, "lars_agent_deregistrations_total",
					   "Instances deregistered by their app");
	ar->renewals = metrics_counter(m, "lars_agent_lease_renewals_total",
				       "Lease renewals sent to lars-dns");
	ar->drained = metrics_counter(m, "lars_agent_registrations_drained_total",
				      "Registered instances drained because their check failed");
	ar->checks = metrics_counter(m, "lars_agent_health_checks_total",
				     "Health checks of registered instances run");
	ar->check_failures = metrics_counter(m, "lars_agent_health_check_failures_total",
					     "Health checks that failed");
	metrics_gauge(m, "lars_agent_registrations", "Instances registered through this agent now",
		      gauge_held, ar);
	(void)uv_timer_init(loop, &ar->tick);
	ar->tick.data = ar;
	int r = uv_timer_start(&ar->tick, on_tick, REG_TICK_MS, REG_TICK_MS);
	if (r) {
		log_error("agent: cannot start the registration timer: %s", uv_err_name(r));
		areg_close(ar);
		return NULL;
	}
	return ar;
}

static void on_tick_closed(uv_handle_t *h)
{
	agent_reg_t *ar = h->data;
	ar->tick_closed = true;
	areg_maybe_free(ar);
}

void areg_close(agent_reg_t *ar)
{
	if (!ar || ar->closing)
		return;
	ar->closing = true;
	for (check_run_t *c = ar->runs; c; c = c->next)
		finish(c, false, "agent stopping");
	uv_close((uv_handle_t *)&ar->tick, on_tick_closed);
}
