// SPDX-License-Identifier: MIT
// libuv TCP server speaking Lars frames: limits, dispatch, bounded writes.
#include "tcp_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "xalloc.h"

struct tcp_server {
	uv_tcp_t listener;
	uv_loop_t *loop;
	tcp_server_opts_t opts;
	char name[32];
	int port;
	unsigned n_conns;
	unsigned n_alive; /* conns not yet freed, keeps @srv alive */
	bool closing;
	bool paused; /* not reading from any connection */
	tcp_conn_t *conns;
	log_ratelimit_t rl_bad;
	log_ratelimit_t rl_refused;
	struct {
		metrics_counter_t *accepted, *refused, *frames, *bad[6],
			*bad_msg, *overflow, *open;
	} m;
};

struct tcp_conn {
	uv_tcp_t tcp;
	tcp_server_t *srv;
	tcp_conn_t *next, **pprev;
	frame_buf_t in;
	void *data;
	unsigned refs;
	bool closing;
	bool in_dispatch;
	char peer[NET_ADDR_STRLEN];
};

typedef struct tcp_write {
	uv_write_t req;
	tcp_conn_t *c;
	uint8_t *buf;
} tcp_write_t;

static void tcp_server_maybe_free(tcp_server_t *srv);

static void tcp_server_on_listener_closed(uv_handle_t *h)
{
	free(container_of((uv_tcp_t *)h, tcp_server_t, listener));
}

static uint64_t now_ms(const tcp_server_t *srv)
{
	return uv_now(srv->loop);
}

/* ---- connection lifetime ---- */

static void tcp_conn_free(tcp_conn_t *c)
{
	tcp_server_t *srv = c->srv;
	frame_buf_deinit(&c->in);
	free(c);
	srv->n_alive--;
	tcp_server_maybe_free(srv);
}

static void tcp_conn_on_closed(uv_handle_t *h)
{
	tcp_conn_t *c = container_of((uv_tcp_t *)h, tcp_conn_t, tcp);
	tcp_conn_unref(c); /* the handle's own reference */
}

tcp_conn_t *tcp_conn_ref(tcp_conn_t *c)
{
	c->refs++;
	return c;
}

tcp_conn_t *tcp_conn_unref(tcp_conn_t *c)
{
	if (c && --c->refs == 0)
		tcp_conn_free(c);
	return NULL;
}

void tcp_conn_close(tcp_conn_t *c, const char *why)
{
	tcp_server_t *srv = c->srv;

	if (c->closing)
		return;
	c->closing = true;
	log_debug("%s: closing %s: %s", srv->name, c->peer, why);
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	srv->n_conns--;
	metrics_sub(srv->m.open, 1);
	if (srv->opts.on_close)
		srv->opts.on_close(c, srv->opts.user);
	uv_close((uv_handle_t *)&c->tcp, tcp_conn_on_closed);
}

bool tcp_conn_is_open(const tcp_conn_t *c)
{
	return !c->closing;
}

const char *tcp_conn_peer(const tcp_conn_t *c)
{
	return c->peer;
}

void *tcp_conn_data(const tcp_conn_t *c)
{
	return c->data;
}

void tcp_conn_set_data(tcp_conn_t *c, void *data)
{
	c->data = data;
}

void *tcp_conn_user(const tcp_conn_t *c)
{
	return c->srv->opts.user;
}

size_t tcp_conn_write_queue(const tcp_conn_t *c)
{
	return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

/* ---- writing ---- */

static void tcp_conn_after_write(uv_write_t *req, int status)
{
	tcp_write_t *w = container_of(req, tcp_write_t, req);
	tcp_conn_t *c = w->c;
	if (status < 0 && status != UV_ECANCELED && !c->closing)
		tcp_conn_close(c, uv_strerror(status));
	free(w->buf);
	free(w);
	tcp_conn_unref(c);
}

int tcp_conn_send_frame(tcp_conn_t *c, uint8_t *buf, size_t len)
{
	tcp_server_t *srv = c->srv;

	if (c->closing) {
		free(buf);
		return -ENOTCONN;
	}
	uv_stream_t *s = (uv_stream_t *)&c->tcp;
	size_t queued = uv_stream_get_write_queue_size(s);
	if (queued > 0 && queued + len > srv->opts.max_write_queue) {
		/* Still behind on earlier frames: a peer that does not read. A
		 * single big frame to a peer that keeps up is always accepted. */
		free(buf);
		metrics_inc(srv->m.overflow);
		log_warn("%s: %s does not read: write queue %zu + %zu bytes over "
			 "the bound %zu, closing",
			 srv->name, c->peer, queued, len, srv->opts.max_write_queue);
		tcp_conn_close(c, "write queue over its bound");
		return -ENOBUFS;
	}
	if (queued == 0) {
		/* Nothing queued: most replies leave in one syscall, no request. */
		int n = net_write_now(s, buf, &len);
		if (n) {
			free(buf);
			if (n < 0)
				tcp_conn_close(c, uv_strerror(n));
			return n < 0 ? n : 0;
		}
	}
	tcp_write_t *w = xmalloc(sizeof(*w));
	w->c = tcp_conn_ref(c);
	w->buf = buf;
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	int r = uv_write(&w->req, s, &b, 1, tcp_conn_after_write);
	if (r) {
		free(buf);
		free(w);
		tcp_conn_close(c, uv_strerror(r));
		tcp_conn_unref(c);
		return r;
	}
	return 0;
}

int tcp_conn_send(tcp_conn_t *c, int32_t msgid, const pb_msgdesc_t *fields,
		  const void *msg)
{
	uint8_t *buf;
	size_t len;

	if (c->closing)
		return -ENOTCONN;
	/* max_frame bounds what peers send us; what we send is bounded by the
	 * protocol's ceiling (a route of thousands of hosts may exceed it). */
	int r = msg_frame_alloc(msgid, fields, msg, FRAME_TCP_MAX_LIMIT, &buf, &len);
	if (r == -ENOMEM) {
		log_error("%s: out of memory encoding frame %d", c->srv->name, msgid);
		abort();
	}
	if (r) {
		log_error("%s: cannot encode frame %d for %s: %s", c->srv->name,
			  msgid, c->peer, msg_strerror(r));
		return r == MSG_E_TOO_LARGE ? -EMSGSIZE : -EINVAL;
	}
	return tcp_conn_send_frame(c, buf, len);
}

/* ---- reading ---- */

static void tcp_conn_bad_input(tcp_conn_t *c, const char *why, const frame_hdr_t *hdr)
{
	tcp_server_t *srv = c->srv;
	unsigned long long hidden;
	if (log_ratelimit_ok(&srv->rl_bad, now_ms(srv), &hidden))
		log_warn("%s: bad input from %s: %s (msgid %d, msglen %d), closing%s",
			 srv->name, c->peer, why, hdr ? hdr->msgid : -1,
			 hdr ? hdr->msglen : -1, hidden ? " (more suppressed)" : "");
	tcp_conn_close(c, why);
}

static void tcp_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	tcp_conn_t *c = container_of((uv_tcp_t *)h, tcp_conn_t, tcp);
	uint8_t *p;
	size_t n;
	if (frame_buf_space(&c->in, &p, &n)) {
		*buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
		return;
	}
	*buf = uv_buf_init((char *)p, n > UINT32_MAX ? UINT32_MAX : (unsigned)n);
}

static void tcp_conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	tcp_conn_t *c = container_of((uv_tcp_t *)s, tcp_conn_t, tcp);
	tcp_server_t *srv = c->srv;

	if (nread < 0) {
		tcp_conn_close(c, nread == UV_EOF ? "peer closed" : uv_strerror((int)nread));
		return;
	}
	if (nread == 0)
		return;
	frame_buf_commit(&c->in, (size_t)nread);

	/* A handler may close the connection; keep the struct until we return. */
	tcp_conn_ref(c);
	while (!c->closing) {
		frame_hdr_t hdr;
		const uint8_t *body;
		int r = frame_buf_next(&c->in, &hdr, &body);
		if (r == FRAME_E_NEED_MORE)
			break;
		if (r) {
			metrics_inc(srv->m.bad[r]);
			tcp_conn_bad_input(c, frame_strerror(r), &hdr);
			break;
		}
		metrics_inc(srv->m.frames);
		r = dispatch_run(srv->opts.dispatch, c, hdr.msgid, body, (size_t)hdr.msglen);
		if (r && !c->closing) {
			metrics_inc(srv->m.bad_msg);
			tcp_conn_bad_input(c, r > 0 ? msg_strerror(r) : "request failed", &hdr);
		}
	}
	tcp_conn_unref(c);
}

/* ---- accepting ---- */

static void tcp_server_refuse(tcp_server_t *srv)
{
	/* Accept and close at once: the peer sees a clean EOF, not a stall. */
	uv_tcp_t *t = xmalloc(sizeof(*t));
	uv_tcp_init(srv->loop, t);
	if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)t) == 0)
		metrics_inc(srv->m.refused);
	uv_close((uv_handle_t *)t, (uv_close_cb)free);
	unsigned long long hidden;
	if (log_ratelimit_ok(&srv->rl_refused, now_ms(srv), &hidden))
		log_warn("%s: connection limit %u reached, refusing new connections",
			 srv->name, srv->opts.max_conns);
}

static void tcp_server_on_connection(uv_stream_t *ls, int status)
{
	tcp_server_t *srv = container_of((uv_tcp_t *)ls, tcp_server_t, listener);

	if (status < 0) {
		unsigned long long hidden;
		if (log_ratelimit_ok(&srv->rl_refused, now_ms(srv), &hidden))
			log_warn("%s: accept failed: %s", srv->name, uv_strerror(status));
		return;
	}
	if (srv->closing)
		return;
	if (srv->n_conns >= srv->opts.max_conns) {
		tcp_server_refuse(srv);
		return;
	}
	tcp_conn_t *c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->refs = 1; /* the handle */
	frame_buf_init(&c->in, srv->opts.max_frame, &srv->opts.dispatch->ids);
	uv_tcp_init(srv->loop, &c->tcp);
	srv->n_alive++;
	int r = uv_accept(ls, (uv_stream_t *)&c->tcp);
	if (r) {
		log_warn("%s: accept failed: %s", srv->name, uv_strerror(r));
		c->closing = true;
		uv_close((uv_handle_t *)&c->tcp, tcp_conn_on_closed);
		return;
	}
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		net_addr_str((struct sockaddr *)&ss, c->peer);
	else
		snprintf(c->peer, sizeof(c->peer), "?");
	uv_tcp_nodelay(&c->tcp, 1);

	c->next = srv->conns;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &srv->conns;
	srv->conns = c;
	srv->n_conns++;
	metrics_inc(srv->m.open);
	metrics_inc(srv->m.accepted);
	log_debug("%s: connection from %s", srv->name, c->peer);

	if (srv->opts.on_connect)
		srv->opts.on_connect(c, srv->opts.user);
	if (c->closing || srv->paused)
		return;
	r = uv_read_start((uv_stream_t *)&c->tcp, tcp_conn_alloc, tcp_conn_on_read);
	if (r)
		tcp_conn_close(c, uv_strerror(r));
}

void tcp_server_pause(tcp_server_t *srv, bool paused)
{
	if (srv->paused == paused)
		return;
	srv->paused = paused;
	log_info("%s: %s reading from %u connections", srv->name,
		 paused ? "pausing" : "resuming", srv->n_conns);
	for (tcp_conn_t *c = srv->conns, *next; c; c = next) {
		next = c->next; /* a failed start closes c */
		if (paused) {
			uv_read_stop((uv_stream_t *)&c->tcp);
		} else {
			int r = uv_read_start((uv_stream_t *)&c->tcp, tcp_conn_alloc,
					      tcp_conn_on_read);
			if (r)
				tcp_conn_close(c, uv_strerror(r));
		}
	}
}

bool tcp_server_paused(const tcp_server_t *srv)
{
	return srv->paused;
}

static void tcp_server_metrics(tcp_server_t *srv)
{
	metrics_t *m = srv->opts.metrics;
	char name[160];
	const char *l = srv->name;
#define C(field, metric, help)                                                 \
	do {                                                                   \
		snprintf(name, sizeof(name), metric "{listener=\"%s\"}", l);   \
		srv->m.field = metrics_counter(m, name, help);                 \
	} while (0)
	C(accepted, "lars_tcp_accepted_total", "TCP connections accepted");
	C(refused, "lars_tcp_refused_total", "TCP connections refused at the connection limit");
	C(frames, "lars_frames_total", "Frames received and dispatched");
	C(overflow, "lars_tcp_write_overflow_total", "Peers cut off at the write-queue bound");
	C(bad_msg, "lars_bad_messages_total", "Frames whose handler rejected the body");
#undef C
	static const char *const reason[6] = {
		[FRAME_E_TOO_LARGE] = "too_large", [FRAME_E_NEGATIVE] = "negative",
		[FRAME_E_UNKNOWN_ID] = "unknown_id", [FRAME_E_LENGTH] = "length",
	};
	for (int i = 0; i < 6; i++) {
		if (!reason[i])
			continue;
		snprintf(name, sizeof(name),
			 "lars_bad_frames_total{listener=\"%s\",reason=\"%s\"}", l, reason[i]);
		srv->m.bad[i] = metrics_counter(m, name, "Frames refused by the decoder");
	}
	snprintf(name, sizeof(name), "lars_tcp_connections{listener=\"%s\"}", l);
	srv->m.open = metrics_level(m, name, "TCP connections open");
}

int tcp_server_start(uv_loop_t *loop, const tcp_server_opts_t *opts,
		     tcp_server_t **outp)
{
	tcp_server_t *srv = xcalloc(1, sizeof(*srv));
	srv->loop = loop;
	srv->opts = *opts;
	snprintf(srv->name, sizeof(srv->name), "%s", opts->name ? opts->name : "tcp");
	if (!srv->opts.backlog)
		srv->opts.backlog = 511;
	if (!srv->opts.max_conns)
		srv->opts.max_conns = 10000;
	if (!srv->opts.max_frame)
		srv->opts.max_frame = FRAME_TCP_MAX_DEFAULT;
	if (!srv->opts.max_write_queue)
		srv->opts.max_write_queue = 16u * 1024 * 1024;
	srv->rl_bad = (log_ratelimit_t)LOG_RATELIMIT_INIT(1000, 10);
	srv->rl_refused = (log_ratelimit_t)LOG_RATELIMIT_INIT(10000, 1);

	int r = net_listen_tcp(loop, &srv->listener, opts->ip, opts->port,
			       srv->opts.backlog, opts->reuse_port, tcp_server_on_connection,
			       &srv->port);
	if (r) {
		net_log_listen_error(srv->name, "tcp", opts->ip, opts->port, r);
		uv_close((uv_handle_t *)&srv->listener, tcp_server_on_listener_closed);
		return r;
	}
	tcp_server_metrics(srv);
	if (!net_is_loopback(opts->ip))
		log_warn("%s: listening on non-loopback address %s", srv->name, opts->ip);
	log_info("%s: listening on %s:%d", srv->name, opts->ip, srv->port);
	*outp = srv;
	return 0;
}

int tcp_server_port(const tcp_server_t *srv)
{
	return srv->port;
}

unsigned tcp_server_n_conns(const tcp_server_t *srv)
{
	return srv->n_conns;
}

static void tcp_server_maybe_free(tcp_server_t *srv)
{
	if (!srv->closing || srv->n_alive ||
	    uv_is_closing((uv_handle_t *)&srv->listener))
		return;
	/* The listener's close callback is the last one: free there. */
	uv_close((uv_handle_t *)&srv->listener, tcp_server_on_listener_closed);
}

void tcp_server_close(tcp_server_t *srv)
{
	if (!srv || srv->closing)
		return;
	srv->closing = true;
	while (srv->conns)
		tcp_conn_close(srv->conns, "server shutting down");
	tcp_server_maybe_free(srv);
}
