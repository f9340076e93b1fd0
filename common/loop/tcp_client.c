// SPDX-License-Identifier: MIT
// libuv TCP client for Lars frames with failover and backoff.
//
// Every connection attempt gets a fresh socket object (a closed libuv handle
// cannot be reused before its close callback), so a late callback of an old
// attempt can never touch the current one.
#include "tcp_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "xalloc.h"

typedef struct tcp_sock {
	uv_tcp_t tcp;
	uv_connect_t connect;
	tcp_client_t *cli; /* NULL once detached from the client */
	frame_buf_t in;
} tcp_sock_t;

struct tcp_client {
	uv_loop_t *loop;
	tcp_client_opts_t opts;
	net_endpoint_t endpoints[NET_MAX_ENDPOINTS];
	char name[32];
	char endpoint[NET_ADDR_STRLEN];
	size_t cur;             /* endpoint index */
	size_t n_failed_cycle;  /* failures since the last success */
	tcp_sock_t *sock;       /* current attempt or connection */
	bool connected;
	bool closing;
	unsigned n_alive; /* open handles: sockets + 2 timers */
	uv_timer_t retry;
	uv_timer_t connect_timeout;
	backoff_t backoff;
	uint64_t connected_at; /* loop time of the last connect */
	log_ratelimit_t rl_lost;
	uint64_t n_connects;
	struct {
		metrics_counter_t *connects, *failures, *bad, *up;
	} m;
};

typedef struct tcp_client_write {
	uv_write_t req;
	uint8_t *buf;
} tcp_client_write_t;

static void tcp_client_try(tcp_client_t *cli);

static void tcp_client_on_retry(uv_timer_t *t)
{
	tcp_client_try(t->data);
}

static void tcp_client_release(tcp_client_t *cli)
{
	if (--cli->n_alive == 0)
		free(cli);
}

static void tcp_sock_on_closed(uv_handle_t *h)
{
	tcp_sock_t *s = container_of((uv_tcp_t *)h, tcp_sock_t, tcp);
	tcp_client_t *cli = h->data;
	frame_buf_deinit(&s->in);
	free(s);
	tcp_client_release(cli);
}

/* Detach and close the current socket; schedule the next attempt. */
static void tcp_client_drop(tcp_client_t *cli, const char *why, bool failed)
{
	tcp_sock_t *s = cli->sock;
	bool was_connected = cli->connected;

	if (!s)
		return;
	cli->sock = NULL;
	cli->connected = false;
	s->cli = NULL;
	uv_timer_stop(&cli->connect_timeout);
	uv_close((uv_handle_t *)&s->tcp, tcp_sock_on_closed);
	/* Only a connection that stayed up resets the backoff: a server that
	 * accepts and closes at once (connection limit) is not hammered. */
	bool stable = was_connected &&
		      uv_now(cli->loop) - cli->connected_at >= cli->opts.backoff_max_ms;
	if (was_connected) {
		unsigned long long hidden;
		metrics_sub(cli->m.up, 1);
		if (!cli->closing &&
		    (stable || log_ratelimit_ok(&cli->rl_lost, uv_now(cli->loop), &hidden)))
			log_warn("%s: lost connection to %s: %s%s", cli->name,
				 cli->endpoint, why, stable ? "" : " (it was short-lived)");
		/* Not while closing: the owner is tearing down, not recovering. */
		if (cli->opts.on_disconnect && !cli->closing)
			cli->opts.on_disconnect(cli, cli->opts.user);
	} else if (failed) {
		metrics_inc(cli->m.failures);
		/* Log state changes, not every retry. */
		if (cli->n_failed_cycle == 0)
			log_warn("%s: cannot connect to %s: %s", cli->name,
				 cli->endpoint, why);
		else
			log_debug("%s: cannot connect to %s: %s", cli->name,
				  cli->endpoint, why);
	}
	if (cli->closing)
		return;
	/* Fail over to the next endpoint; back off once all were tried. */
	cli->n_failed_cycle++;
	cli->cur = (cli->cur + 1) % cli->opts.n_endpoints;
	uint32_t delay = 0;
	if (stable)
		backoff_reset(&cli->backoff);
	if (cli->n_failed_cycle >= cli->opts.n_endpoints || was_connected)
		delay = backoff_next(&cli->backoff);
	uv_timer_start(&cli->retry, tcp_client_on_retry, delay, 0);
}

void tcp_client_disconnect(tcp_client_t *cli, const char *why)
{
	tcp_client_drop(cli, why, true);
}

static void tcp_sock_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	tcp_sock_t *s = container_of((uv_tcp_t *)h, tcp_sock_t, tcp);
	uint8_t *p;
	size_t n;
	if (frame_buf_space(&s->in, &p, &n)) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	*buf = uv_buf_init((char *)p, n > UINT32_MAX ? UINT32_MAX : (unsigned)n);
}

static void tcp_sock_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	tcp_sock_t *s = container_of((uv_tcp_t *)st, tcp_sock_t, tcp);
	tcp_client_t *cli = s->cli;

	if (!cli)
		return;
	if (nread < 0) {
		tcp_client_drop(cli, nread == UV_EOF ? "closed by peer"
						     : uv_strerror((int)nread), false);
		return;
	}
	frame_buf_commit(&s->in, (size_t)nread);
	while (cli->sock == s) {
		frame_hdr_t hdr;
		const uint8_t *body;
		int r = frame_buf_next(&s->in, &hdr, &body);
		if (r == FRAME_E_NEED_MORE)
			break;
		if (r) {
			metrics_inc(cli->m.bad);
			log_warn("%s: bad frame from %s: %s (msgid %d, msglen %d)",
				 cli->name, cli->endpoint, frame_strerror(r),
				 hdr.msgid, hdr.msglen);
			tcp_client_drop(cli, frame_strerror(r), false);
			break;
		}
		r = dispatch_run(cli->opts.dispatch, cli, hdr.msgid, body,
				 (size_t)hdr.msglen);
		if (r && cli->sock == s) {
			metrics_inc(cli->m.bad);
			log_warn("%s: bad message %d from %s: %s", cli->name,
				 hdr.msgid, cli->endpoint,
				 r > 0 ? msg_strerror(r) : "handler failed");
			tcp_client_drop(cli, "bad message", false);
		}
	}
}

static void tcp_client_on_connect(uv_connect_t *req, int status)
{
	tcp_sock_t *s = container_of(req, tcp_sock_t, connect);
	tcp_client_t *cli = s->cli;

	if (!cli) /* detached: timed out or client closing */
		return;
	if (status < 0) {
		tcp_client_drop(cli, uv_strerror(status), true);
		return;
	}
	uv_timer_stop(&cli->connect_timeout);
	int r = uv_read_start((uv_stream_t *)&s->tcp, tcp_sock_alloc, tcp_sock_on_read);
	if (r) {
		tcp_client_drop(cli, uv_strerror(r), true);
		return;
	}
	uv_tcp_nodelay(&s->tcp, 1);
	uv_tcp_keepalive(&s->tcp, 1, 60);
	cli->connected = true;
	cli->n_failed_cycle = 0;
	cli->n_connects++;
	cli->connected_at = uv_now(cli->loop);
	metrics_inc(cli->m.connects);
	metrics_inc(cli->m.up);
	log_info("%s: connected to %s", cli->name, cli->endpoint);
	if (cli->opts.on_connect)
		cli->opts.on_connect(cli, cli->opts.user);
}

static void tcp_client_on_connect_timeout(uv_timer_t *t)
{
	tcp_client_t *cli = t->data;
	tcp_client_drop(cli, "connect timed out", true);
}

static void tcp_client_try(tcp_client_t *cli)
{
	const net_endpoint_t *ep = &cli->endpoints[cli->cur];
	struct sockaddr_storage ss;

	if (cli->closing || cli->sock)
		return;
	snprintf(cli->endpoint, sizeof(cli->endpoint),
		 strchr(ep->host, ':') ? "[%s]:%d" : "%s:%d", ep->host, ep->port);
	tcp_sock_t *s = xcalloc(1, sizeof(*s));
	s->cli = cli;
	frame_buf_init(&s->in, cli->opts.max_frame, &cli->opts.dispatch->ids);
	uv_tcp_init(cli->loop, &s->tcp);
	s->tcp.data = cli;
	cli->n_alive++;
	cli->sock = s;
	int r = net_addr(ep->host, ep->port, &ss);
	if (r == 0)
		r = uv_tcp_connect(&s->connect, &s->tcp, (struct sockaddr *)&ss,
				   tcp_client_on_connect);
	if (r) {
		tcp_client_drop(cli, uv_strerror(r), true);
		return;
	}
	uv_timer_start(&cli->connect_timeout, tcp_client_on_connect_timeout,
		       cli->opts.connect_timeout_ms, 0);
}

int tcp_client_start(uv_loop_t *loop, const tcp_client_opts_t *opts,
		     tcp_client_t **outp)
{
	if (opts->n_endpoints == 0 || opts->n_endpoints > NET_MAX_ENDPOINTS)
		return -EINVAL;
	tcp_client_t *cli = xcalloc(1, sizeof(*cli));
	cli->loop = loop;
	cli->opts = *opts;
	memcpy(cli->endpoints, opts->endpoints, opts->n_endpoints * sizeof(*opts->endpoints));
	cli->opts.endpoints = cli->endpoints;
	snprintf(cli->name, sizeof(cli->name), "%s", opts->name ? opts->name : "client");
	if (!cli->opts.max_frame)
		cli->opts.max_frame = FRAME_TCP_MAX_DEFAULT;
	if (!cli->opts.max_write_queue)
		cli->opts.max_write_queue = 16u * 1024 * 1024;
	if (!cli->opts.connect_timeout_ms)
		cli->opts.connect_timeout_ms = 3000;
	if (!cli->opts.backoff_base_ms)
		cli->opts.backoff_base_ms = 100;
	if (!cli->opts.backoff_max_ms)
		cli->opts.backoff_max_ms = 10000;
	backoff_init(&cli->backoff, cli->opts.backoff_base_ms, cli->opts.backoff_max_ms,
		     (uint64_t)uv_hrtime() ^ (uintptr_t)cli);
	cli->rl_lost = (log_ratelimit_t)LOG_RATELIMIT_INIT(10000, 1);
	uv_timer_init(loop, &cli->retry);
	uv_timer_init(loop, &cli->connect_timeout);
	cli->retry.data = cli->connect_timeout.data = cli;
	cli->n_alive = 2;

	char name[160];
	snprintf(name, sizeof(name), "lars_upstream_connects_total{upstream=\"%s\"}", cli->name);
	cli->m.connects = metrics_counter(opts->metrics, name, "Successful connects to an upstream service");
	snprintf(name, sizeof(name), "lars_upstream_connect_failures_total{upstream=\"%s\"}", cli->name);
	cli->m.failures = metrics_counter(opts->metrics, name, "Failed connection attempts");
	snprintf(name, sizeof(name), "lars_upstream_bad_frames_total{upstream=\"%s\"}", cli->name);
	cli->m.bad = metrics_counter(opts->metrics, name, "Bad frames or messages received from an upstream");
	snprintf(name, sizeof(name), "lars_upstream_connected{upstream=\"%s\"}", cli->name);
	cli->m.up = metrics_level(opts->metrics, name, "1 while connected to an upstream");

	tcp_client_try(cli);
	*outp = cli;
	return 0;
}

static void tcp_client_on_timer_closed(uv_handle_t *h)
{
	tcp_client_release(h->data);
}

void tcp_client_close(tcp_client_t *cli)
{
	if (!cli || cli->closing)
		return;
	cli->closing = true;
	tcp_client_drop(cli, "closing", false);
	uv_close((uv_handle_t *)&cli->retry, tcp_client_on_timer_closed);
	uv_close((uv_handle_t *)&cli->connect_timeout, tcp_client_on_timer_closed);
}

bool tcp_client_connected(const tcp_client_t *cli)
{
	return cli->connected;
}

const char *tcp_client_endpoint(const tcp_client_t *cli)
{
	return cli->endpoint;
}

uint64_t tcp_client_n_connects(const tcp_client_t *cli)
{
	return cli->n_connects;
}

size_t tcp_client_n_failed(const tcp_client_t *cli)
{
	return cli->n_failed_cycle;
}

void *tcp_client_user(const tcp_client_t *cli)
{
	return cli->opts.user;
}

static void tcp_client_after_write(uv_write_t *req, int status)
{
	tcp_client_write_t *w = container_of(req, tcp_client_write_t, req);
	/* Errors surface as a read error on the same socket. */
	free(w->buf);
	free(w);
}

int tcp_client_send_frame(tcp_client_t *cli, uint8_t *buf, size_t len)
{
	if (!cli->connected) {
		free(buf);
		return -ENOTCONN;
	}
	uv_stream_t *st = (uv_stream_t *)&cli->sock->tcp;
	size_t queued = uv_stream_get_write_queue_size(st);
	if (queued > 0 && queued + len > cli->opts.max_write_queue) {
		/* The server is behind: the caller keeps the data (-ENOBUFS). */
		free(buf);
		return -ENOBUFS;
	}
	if (queued == 0) {
		/* Straight to the kernel when nothing waits: no request, and what
		 * is sent just before a close is not cancelled with the handle. */
		int n = net_write_now(st, buf, &len);
		if (n) {
			free(buf);
			if (n < 0)
				tcp_client_drop(cli, uv_strerror(n), false);
			return n < 0 ? n : 0;
		}
	}
	tcp_client_write_t *w = xmalloc(sizeof(*w));
	w->buf = buf;
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	int r = uv_write(&w->req, st, &b, 1, tcp_client_after_write);
	if (r) {
		free(buf);
		free(w);
		tcp_client_drop(cli, uv_strerror(r), false);
		return r;
	}
	return 0;
}

int tcp_client_send(tcp_client_t *cli, int32_t msgid, const pb_msgdesc_t *fields,
		    const void *msg)
{
	uint8_t *buf;
	size_t len;

	if (!cli->connected)
		return -ENOTCONN;
	int r = msg_frame_alloc(msgid, fields, msg, FRAME_TCP_MAX_LIMIT, &buf, &len);
	if (r == -ENOMEM) {
		log_error("%s: out of memory encoding frame %d", cli->name, msgid);
		abort();
	}
	if (r)
		return r == MSG_E_TOO_LARGE ? -EMSGSIZE : -EINVAL;
	return tcp_client_send_frame(cli, buf, len);
}
