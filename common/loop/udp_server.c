// SPDX-License-Identifier: MIT
// libuv UDP server for Lars frames.
#include "udp_server.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "xalloc.h"

/* Send requests for small replies are recycled instead of malloc'd. */
#define UDP_SMALL_FRAME 256
#define UDP_FREELIST_MAX 64

typedef struct udp_send {
	uv_udp_send_t req;
	struct udp_send *next;
	udp_server_t *srv;
	size_t cap;
	uint8_t buf[];
} udp_send_t;

struct udp_server {
	uv_udp_t udp;
	uv_loop_t *loop;
	udp_server_opts_t opts;
	char name[32];
	int port;
	bool closing;
	bool closed; /* the handle's close callback ran */
	unsigned n_sends; /* in flight; free after they complete */
	udp_send_t *freelist;
	unsigned n_free;
	log_ratelimit_t rl_bad;
	/* recvmmsg: libuv fills up to UDP_TURN_MAX datagrams of 64 KiB each
	 * per system call from this one buffer. */
	uint8_t *rbuf;
	/* This turn's batch was handed out: the next alloc ends the turn. */
	bool turn_used;
	struct {
		metrics_counter_t *frames, *bad[6], *bad_msg, *partial,
			*send_err;
	} m;
};

static const peer_ops_t udp_peer_ops;

static void udp_server_maybe_free(udp_server_t *srv)
{
	if (!srv->closed || srv->n_sends)
		return;
	while (srv->freelist) {
		udp_send_t *s = srv->freelist;
		srv->freelist = s->next;
		free(s);
	}
	free(srv->rbuf);
	free(srv);
}

/*
 * libuv asks for a buffer before each recvmmsg and keeps reading one socket
 * until it is empty or 32 datagrams went by. The first request of a turn
 * gets room for UDP_TURN_MAX datagrams; the second gets none, which makes
 * libuv stop here (UV_ENOBUFS, the turn's end) and serve the next socket.
 */
static void udp_server_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	udp_server_t *srv = container_of((uv_udp_t *)h, udp_server_t, udp);
	(void)suggested;
	if (srv->turn_used) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	srv->turn_used = true;
	*buf = uv_buf_init((char *)srv->rbuf, UDP_TURN_MAX * 65536);
}

static void udp_server_bad(udp_server_t *srv, const struct sockaddr *addr,
			   const char *why, ssize_t len)
{
	unsigned long long hidden;
	if (log_ratelimit_ok(&srv->rl_bad, uv_now(srv->loop), &hidden)) {
		char peer[NET_ADDR_STRLEN];
		net_addr_str(addr, peer);
		log_warn("%s: dropped datagram of %zd bytes from %s: %s%s", srv->name,
			 len, peer, why, hidden ? " (more suppressed)" : "");
	}
}

static void udp_server_on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
			       const struct sockaddr *addr, unsigned flags)
{
	udp_server_t *srv = container_of(h, udp_server_t, udp);

	if (nread == UV_ENOBUFS) {
		/* Our own refusal in udp_server_alloc: this socket's turn is over. */
		srv->turn_used = false;
		return;
	}
	if (nread < 0) {
		srv->turn_used = false;
		log_warn("%s: receive error: %s", srv->name, uv_strerror((int)nread));
		return;
	}
	if (nread == 0 && !addr) {
		/* The end of a recvmmsg batch (our buffer is reused; the turn ends
		 * at the next alloc), or nothing more to read (the turn is over). */
		if (!(flags & UV_UDP_MMSG_FREE))
			srv->turn_used = false;
		return;
	}
	if (flags & UV_UDP_PARTIAL) {
		metrics_inc(srv->m.partial);
		udp_server_bad(srv, addr, "truncated by the kernel", nread);
		return;
	}
	frame_hdr_t hdr;
	const uint8_t *body;
	int r = frame_udp_parse((const uint8_t *)buf->base, (size_t)nread,
				&srv->opts.dispatch->ids, &hdr, &body);
	if (r) {
		metrics_inc(srv->m.bad[r]);
		udp_server_bad(srv, addr, frame_strerror(r), nread);
		return;
	}
	metrics_inc(srv->m.frames);
	udp_peer_t peer = {
		.base = { .kind = PEER_UDP, .ops = &udp_peer_ops },
		.srv = srv,
		.addr = addr,
	};
	r = dispatch_run(srv->opts.dispatch, &peer.base, hdr.msgid, body, (size_t)hdr.msglen);
	if (r) {
		metrics_inc(srv->m.bad_msg);
		udp_server_bad(srv, addr, r > 0 ? msg_strerror(r) : "request failed", nread);
	}
}

static void udp_server_after_send(uv_udp_send_t *req, int status)
{
	udp_send_t *s = container_of(req, udp_send_t, req);
	udp_server_t *srv = s->srv;
	if (status < 0)
		metrics_inc(srv->m.send_err);
	srv->n_sends--;
	if (s->cap == UDP_SMALL_FRAME && srv->n_free < UDP_FREELIST_MAX && !srv->closing) {
		s->next = srv->freelist;
		srv->freelist = s;
		srv->n_free++;
	} else {
		free(s);
	}
	udp_server_maybe_free(srv);
}

/*
 * Send the @len bytes at @frame to @addr: straight away when the socket
 * takes it (it rarely is full), else with a request. @s, if not NULL, is a
 * request that holds @frame already; it is taken in every case.
 */
static int udp_server_send(udp_server_t *srv, const struct sockaddr *addr,
			   const uint8_t *frame, size_t len, udp_send_t *s)
{
	uv_buf_t b = uv_buf_init((char *)frame, (unsigned)len);
	int n = uv_udp_try_send(&srv->udp, &b, 1, addr);
	if (n >= 0) {
		free(s);
		return 0;
	}
	if (n != UV_EAGAIN) {
		free(s);
		metrics_inc(srv->m.send_err);
		return n;
	}
	if (!s) {
		if (len > UDP_SMALL_FRAME) {
			s = xmalloc(sizeof(*s) + len);
			s->cap = len;
		} else if (srv->freelist) {
			s = srv->freelist;
			srv->freelist = s->next;
			srv->n_free--;
		} else {
			s = xmalloc(sizeof(*s) + UDP_SMALL_FRAME);
			s->cap = UDP_SMALL_FRAME;
		}
		memcpy(s->buf, frame, len);
		b = uv_buf_init((char *)s->buf, (unsigned)len);
	}
	s->srv = srv;
	int r = uv_udp_send(&s->req, &srv->udp, &b, 1, addr, udp_server_after_send);
	if (r) {
		free(s);
		metrics_inc(srv->m.send_err);
		return r;
	}
	srv->n_sends++;
	return 0;
}

/**
 * udp_server_reply() - encode @msg as frame @msgid and send it to @peer.
 * @peer: a PEER_UDP peer, the sender of the datagram being handled.
 * Return: 0, -EMSGSIZE (over 64 KiB), -EINVAL, UV_ECANCELED (closing) or a
 * UV_E* send error (counted, not fatal).
 */
int udp_server_reply(peer_t *peer, int32_t msgid, const pb_msgdesc_t *fields,
		     const void *msg)
{
	udp_peer_t *p = udp_peer_of(peer);
	udp_server_t *srv = p->srv;
	uint8_t small[UDP_SMALL_FRAME];
	uint8_t *frame = small;
	size_t len;
	udp_send_t *s = NULL;

	if (srv->closing)
		return UV_ECANCELED;
	int r = msg_frame_encode(msgid, fields, msg, small, sizeof(small), &len);
	if (r == MSG_E_TOO_LARGE) {
		/* Rare (big routes): encode straight into a request of its own. */
		size_t body;
		if (msg_encoded_size(fields, msg, &body) ||
		    FRAME_HDR_LEN + body > FRAME_UDP_MAX)
			return -EMSGSIZE;
		s = xmalloc(sizeof(*s) + FRAME_HDR_LEN + body);
		s->cap = FRAME_HDR_LEN + body;
		r = msg_frame_encode(msgid, fields, msg, s->buf, s->cap, &len);
		frame = s->buf;
	}
	if (r) {
		free(s);
		return r == MSG_E_TOO_LARGE ? -EMSGSIZE : -EINVAL;
	}
	return udp_server_send(srv, p->addr, frame, len, s);
}

/* An encoded frame (peer_send_frame()); takes @buf in every case. */
static int udp_peer_send_frame(peer_t *peer, uint8_t *buf, size_t len)
{
	udp_peer_t *p = udp_peer_of(peer);
	int r;
	if (p->srv->closing)
		r = UV_ECANCELED;
	else if (len > FRAME_UDP_MAX)
		r = -EMSGSIZE;
	else
		r = udp_server_send(p->srv, p->addr, buf, len, NULL);
	free(buf);
	return r;
}

/* A datagram's sender has no connection to close: the transport drops
 * the datagram when the handler fails. */
static void udp_peer_close(peer_t *peer, const char *why)
{
	(void)peer;
	(void)why;
}

static const char *udp_peer_name(peer_t *peer)
{
	udp_peer_t *p = udp_peer_of(peer);
	if (!p->name_[0]) /* formatted on demand: most datagrams never log */
		net_addr_str(p->addr, p->name_);
	return p->name_;
}

static const peer_ops_t udp_peer_ops = {
	.send = udp_server_reply,
	.send_frame = udp_peer_send_frame,
	.close = udp_peer_close,
	.name = udp_peer_name,
};

/**
 * udp_peer_of() - the datagram's sender behind a handler's @peer.
 * @peer: of kind PEER_UDP (a handler registered with a udp_server).
 * Return: valid while the handler runs.
 */
udp_peer_t *udp_peer_of(peer_t *peer)
{
	assert(peer->kind == PEER_UDP);
	return container_of(peer, udp_peer_t, base);
}

static void udp_server_metrics(udp_server_t *srv)
{
	metrics_t *m = srv->opts.metrics;
	char name[160];
	static const char *const reason[6] = {
		[FRAME_E_TOO_LARGE] = "too_large", [FRAME_E_NEGATIVE] = "negative",
		[FRAME_E_UNKNOWN_ID] = "unknown_id", [FRAME_E_LENGTH] = "length",
	};
	snprintf(name, sizeof(name), "lars_frames_total{listener=\"%s\"}", srv->name);
	srv->m.frames = metrics_counter(m, name, "Frames received and dispatched");
	for (int i = 0; i < 6; i++) {
		if (!reason[i])
			continue;
		snprintf(name, sizeof(name),
			 "lars_bad_frames_total{listener=\"%s\",reason=\"%s\"}",
			 srv->name, reason[i]);
		srv->m.bad[i] = metrics_counter(m, name, "Frames refused by the decoder");
	}
	snprintf(name, sizeof(name), "lars_bad_messages_total{listener=\"%s\"}", srv->name);
	srv->m.bad_msg = metrics_counter(m, name, "Frames whose handler rejected the body");
	snprintf(name, sizeof(name), "lars_udp_truncated_total{listener=\"%s\"}", srv->name);
	srv->m.partial = metrics_counter(m, name, "Datagrams truncated by the kernel");
	snprintf(name, sizeof(name), "lars_udp_send_errors_total{listener=\"%s\"}", srv->name);
	srv->m.send_err = metrics_counter(m, name, "Replies that could not be sent");
}

static void udp_server_on_closed(uv_handle_t *h)
{
	udp_server_t *srv = container_of((uv_udp_t *)h, udp_server_t, udp);
	srv->closed = true;
	udp_server_maybe_free(srv);
}

int udp_server_start(uv_loop_t *loop, const udp_server_opts_t *opts,
		     udp_server_t **outp)
{
	udp_server_t *srv = xcalloc(1, sizeof(*srv));
	struct sockaddr_storage ss;
	srv->loop = loop;
	srv->opts = *opts;
	snprintf(srv->name, sizeof(srv->name), "%s", opts->name ? opts->name : "udp");
	srv->rl_bad = (log_ratelimit_t)LOG_RATELIMIT_INIT(1000, 10);
	int r = net_addr(opts->ip, opts->port, &ss);
	if (r) {
		log_error("%s: bad address %s:%d", srv->name, opts->ip, opts->port);
		free(srv);
		return r;
	}
	/* The socket exists from here on, so its options precede the bind. */
	r = uv_udp_init_ex(loop, &srv->udp, ss.ss_family | UV_UDP_RECVMMSG);
	if (r) {
		free(srv);
		return r;
	}
	srv->rbuf = xmalloc(UDP_TURN_MAX * 65536);
	/* No UV_UDP_REUSEADDR and no SO_REUSEPORT unless asked: Linux then
	 * refuses any overlapping bind (0.0.0.0 against 127.0.0.1 included)
	 * in both directions, whatever options the other socket has. */
	r = net_set_reuse_port((uv_handle_t *)&srv->udp, opts->reuse_port);
	if (r == 0)
		r = uv_udp_bind(&srv->udp, (struct sockaddr *)&ss, 0);
	if (r == 0) {
		int len = sizeof(ss);
		r = uv_udp_getsockname(&srv->udp, (struct sockaddr *)&ss, &len);
		srv->port = ntohs(ss.ss_family == AF_INET
					  ? ((struct sockaddr_in *)&ss)->sin_port
					  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	if (r == 0)
		r = uv_udp_recv_start(&srv->udp, udp_server_alloc, udp_server_on_recv);
	if (r) {
		net_log_listen_error(srv->name, "udp", opts->ip, opts->port, r);
		srv->closing = true;
		uv_close((uv_handle_t *)&srv->udp, udp_server_on_closed);
		return r;
	}
	udp_server_metrics(srv);
	if (!net_is_loopback(opts->ip))
		log_warn("%s: listening on non-loopback address %s", srv->name, opts->ip);
	log_info("%s: listening on udp %s:%d", srv->name, opts->ip, srv->port);
	*outp = srv;
	return 0;
}

int udp_server_port(const udp_server_t *srv)
{
	return srv->port;
}

void udp_server_close(udp_server_t *srv)
{
	if (!srv || srv->closing)
		return;
	srv->closing = true;
	uv_close((uv_handle_t *)&srv->udp, udp_server_on_closed);
}
