// SPDX-License-Identifier: MIT
// libuv TCP client for Lars frames with failover and backoff.
//
// Every connection attempt gets a fresh socket object (a closed libuv handle
// cannot be reused before its close callback), so a late callback of an old
// attempt can never touch the current one.
#include "tcp_client.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "stream.h"
#include "xalloc.h"

typedef struct tcp_sock {
	stream_t st;
	uv_connect_t connect;
	tcp_client_t *owner; /* for the close callback */
	bool attached;       /* false once detached from the client */
} tcp_sock_t;

struct tcp_client {
	peer_t peer; /* what the handlers get */
	uv_loop_t *loop;
	tcp_client_opts_t opts;
	stream_cfg_t stream_cfg; /* shared by each attempt's socket */
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

static void tcp_client_try(tcp_client_t *cli);
static const peer_ops_t tcp_client_peer_ops;

static void tcp_client_on_retry(uv_timer_t *t)
{
	tcp_client_try(t->data);
}

static void tcp_client_release(tcp_client_t *cli)
{
	if (--cli->n_alive == 0)
		free(cli);
}

static void tcp_sock_on_closed(stream_t *st)
{
	tcp_sock_t *s = container_of(st, tcp_sock_t, st);
	tcp_client_t *cli = s->owner;
	free(s);
	tcp_client_release(cli);
}

/* Log what a timer call failed with; the client then waits for a timer that
 * never fires, which libuv 1.44 cannot make happen on an open timer. */
static void tcp_client_timer_check(tcp_client_t *cli, const char *what, int r)
{
	if (r)
		log_error("%s: %s timer: %s", cli->name, what, uv_err_name(r));
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
	s->attached = false;
	tcp_client_timer_check(cli, "connect", uv_timer_stop(&cli->connect_timeout));
	stream_close(&s->st, tcp_sock_on_closed);
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
	tcp_client_timer_check(cli, "retry",
			       uv_timer_start(&cli->retry, tcp_client_on_retry, delay, 0));
}

void tcp_client_disconnect(tcp_client_t *cli, const char *why)
{
	tcp_client_drop(cli, why, true);
}

int tcp_client_set_endpoints(tcp_client_t *cli, const net_endpoint_t *eps, size_t n)
{
	if (n == 0 || n > NET_MAX_ENDPOINTS)
		return -EINVAL;
	net_endpoint_t now = cli->endpoints[cli->cur];
	size_t keep = n;
	for (size_t i = 0; i < n && keep == n; i++)
		if (strcmp(eps[i].host, now.host) == 0 && eps[i].port == now.port)
			keep = i;
	memcpy(cli->endpoints, eps, n * sizeof(*eps));
	cli->opts.n_endpoints = n;
	cli->n_failed_cycle = 0;
	if (keep < n) {
		cli->cur = keep;
		return 0;
	}
	/* A failover moves to cur + 1: the new list's first. */
	cli->cur = n - 1;
	if (cli->sock && !cli->closing)
		tcp_client_drop(cli, "its endpoint is no longer configured", true);
	else
		cli->cur = 0;
	return 0;
}

static void tcp_client_peer_close(peer_t *p, const char *why)
{
	tcp_client_disconnect(tcp_client_of(p), why);
}

/* The client's policy: any failure of the connection drops it; it reconnects. */
static void tcp_sock_on_fail(stream_t *st, int what, int code, const frame_hdr_t *hdr)
{
	tcp_client_t *cli = container_of(st, tcp_sock_t, st)->owner;

	switch (what) {
	case STREAM_F_FRAME:
		metrics_inc(cli->m.bad);
		log_warn("%s: bad frame from %s: %s (msgid %d, msglen %d)",
			 cli->name, cli->endpoint, frame_strerror(code),
			 hdr->msgid, hdr->msglen);
		tcp_client_drop(cli, frame_strerror(code), false);
		break;
	case STREAM_F_MESSAGE:
		metrics_inc(cli->m.bad);
		log_warn("%s: bad message %d from %s: %s", cli->name,
			 hdr->msgid, cli->endpoint,
			 code > 0 ? msg_strerror(code) : "handler failed");
		tcp_client_drop(cli, "bad message", false);
		break;
	default: /* a read (EOF included) or write error */
		tcp_client_drop(cli, code == UV_EOF ? "closed by peer" : uv_strerror(code),
				false);
		break;
	}
}

static void tcp_client_on_connect(uv_connect_t *req, int status)
{
	tcp_sock_t *s = container_of(req, tcp_sock_t, connect);
	tcp_client_t *cli = s->owner;

	if (!s->attached) /* detached: timed out or client closing */
		return;
	if (status < 0) {
		tcp_client_drop(cli, uv_strerror(status), true);
		return;
	}
	tcp_client_timer_check(cli, "connect", uv_timer_stop(&cli->connect_timeout));
	int r = stream_read_start(&s->st);
	if (r) {
		tcp_client_drop(cli, uv_strerror(r), true);
		return;
	}
	/* Either failing costs only latency or a late notice of a dead peer. */
	r = uv_tcp_nodelay(&s->st.tcp, 1);
	if (r)
		log_debug("%s: TCP_NODELAY: %s", cli->name, uv_err_name(r));
	r = uv_tcp_keepalive(&s->st.tcp, 1, 60);
	if (r)
		log_debug("%s: SO_KEEPALIVE: %s", cli->name, uv_err_name(r));
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
	int r = stream_init(&s->st, cli->loop, &cli->stream_cfg, &cli->peer);
	if (r) {
		free(s);
		log_error("%s: cannot create a socket: %s", cli->name, uv_err_name(r));
		tcp_client_timer_check(cli, "retry",
				       uv_timer_start(&cli->retry, tcp_client_on_retry,
						      backoff_next(&cli->backoff), 0));
		return;
	}
	s->owner = cli;
	s->attached = true;
	cli->n_alive++;
	cli->sock = s;
	r = net_addr(ep->host, ep->port, &ss);
	if (r == 0)
		r = uv_tcp_connect(&s->connect, &s->st.tcp, (struct sockaddr *)&ss,
				   tcp_client_on_connect);
	if (r) {
		tcp_client_drop(cli, uv_strerror(r), true);
		return;
	}
	tcp_client_timer_check(cli, "connect",
			       uv_timer_start(&cli->connect_timeout, tcp_client_on_connect_timeout,
					      cli->opts.connect_timeout_ms, 0));
}

static void tcp_client_on_timer_closed(uv_handle_t *h)
{
	tcp_client_release(h->data);
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
	cli->peer = (peer_t){ .kind = PEER_TCP_CLIENT, .ops = &tcp_client_peer_ops };
	/* No on_overflow: the caller keeps what did not fit (-ENOBUFS). */
	cli->stream_cfg = (stream_cfg_t){ .on_fail = tcp_sock_on_fail,
					  .dispatch = opts->dispatch,
					  .max_frame = cli->opts.max_frame,
					  .max_write_queue = cli->opts.max_write_queue };
	int r = uv_timer_init(loop, &cli->retry);
	if (r) {
		free(cli);
		return r;
	}
	r = uv_timer_init(loop, &cli->connect_timeout);
	if (r) {
		/* The one open handle frees @cli in its close callback. */
		cli->n_alive = 1;
		cli->retry.data = cli;
		uv_close((uv_handle_t *)&cli->retry, tcp_client_on_timer_closed);
		return r;
	}
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

static const char *tcp_client_peer_name(peer_t *p)
{
	return tcp_client_of(p)->endpoint;
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

/**
 * tcp_client_of() - the client behind a handler's @peer.
 * @peer: of kind PEER_TCP_CLIENT (a handler registered with a tcp_client).
 */
tcp_client_t *tcp_client_of(peer_t *peer)
{
	assert(peer->kind == PEER_TCP_CLIENT);
	return container_of(peer, tcp_client_t, peer);
}

int tcp_client_send_frame(tcp_client_t *cli, uint8_t *buf, size_t len)
{
	if (!cli->connected) {
		free(buf);
		return -ENOTCONN;
	}
	return stream_send_frame(&cli->sock->st, buf, len);
}

static int tcp_client_peer_send_frame(peer_t *p, uint8_t *buf, size_t len)
{
	return tcp_client_send_frame(tcp_client_of(p), buf, len);
}

int tcp_client_send(tcp_client_t *cli, int32_t msgid, const pb_msgdesc_t *fields,
		    const void *msg)
{
	if (!cli->connected)
		return -ENOTCONN;
	return stream_send(&cli->sock->st, msgid, fields, msg);
}

static int tcp_client_peer_send(peer_t *p, int32_t msgid, const pb_msgdesc_t *fields,
				const void *msg)
{
	return tcp_client_send(tcp_client_of(p), msgid, fields, msg);
}

static const peer_ops_t tcp_client_peer_ops = {
	.send = tcp_client_peer_send,
	.send_frame = tcp_client_peer_send_frame,
	.close = tcp_client_peer_close,
	.name = tcp_client_peer_name,
};
