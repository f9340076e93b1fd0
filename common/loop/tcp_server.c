// SPDX-License-Identifier: MIT
// libuv TCP server speaking Lars frames: accepting, the connection limit,
// pausing; each connection is a stream (stream.c) with the server's policies.
#include "tcp_server.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "stream.h"
#include "u64map.h"
#include "xalloc.h"

struct tcp_server {
	uv_tcp_t listener;
	uv_loop_t *loop;
	tcp_server_opts_t opts;
	stream_cfg_t stream_cfg; /* shared by the connections */
	char name[32];
	int port;
	unsigned n_conns;
	unsigned n_alive; /* conns not yet freed, keeps @srv alive */
	bool closing;
	bool paused; /* not reading from any connection */
	tcp_conn_t *conns;
	stream_budget_t budget; /* max_output_total */
	u64map_t per_ip;        /* address key -> connections from it (as a pointer) */
	uv_timer_t sweep;       /* deadlines and the soft output limit */
	stream_pacer_t pacer;   /* frame handling per loop turn, over all connections */
	log_ratelimit_t rl_bad;
	log_ratelimit_t rl_refused;
	log_ratelimit_t rl_limits;
	struct {
		metrics_counter_t *accepted, *refused, *refused_ip, *frames, *bad[6],
			*bad_msg, *overflow, *budget, *slow, *partial, *idle, *open;
	} m;
};

struct tcp_conn {
	stream_t st;
	peer_t peer; /* what the handlers get */
	tcp_server_t *srv;
	tcp_conn_t *next, **pprev;
	void *data;
	unsigned refs;
	bool closing;
	bool active;            /* tcp_conn_set_active() */
	bool per_ip;            /* counted in srv->per_ip under ip_key */
	uint64_t ip_key;
	uint64_t since_ms;      /* connected */
	uint64_t soft_since_ms; /* over the soft output limit since, or 0 */
	char name[NET_ADDR_STRLEN];
};

/* Loop time the frames of all connections may take per turn: a storm of
 * thousands of peers is spread over turns, timers and pushes run between. */
#define TCP_SERVER_TURN_BUDGET_NS (4 * 1000 * 1000)

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
	free(c);
	srv->n_alive--;
	tcp_server_maybe_free(srv);
}

static void tcp_conn_on_closed(stream_t *st)
{
	tcp_conn_t *c = container_of(st, tcp_conn_t, st);
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
	log_debug("%s: closing %s: %s", srv->name, c->name, why);
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	srv->n_conns--;
	if (c->per_ip) {
		uintptr_t n = (uintptr_t)u64map_get(&srv->per_ip, c->ip_key);
		if (n > 1)
			u64map_put(&srv->per_ip, c->ip_key, (void *)(n - 1));
		else
			u64map_del(&srv->per_ip, c->ip_key);
		c->per_ip = false;
	}
	metrics_sub(srv->m.open, 1);
	if (srv->opts.on_close)
		srv->opts.on_close(c, srv->opts.user);
	stream_close(&c->st, tcp_conn_on_closed);
}

static void tcp_conn_peer_close(peer_t *p, const char *why)
{
	tcp_conn_close(tcp_conn_of(p), why);
}

bool tcp_conn_is_open(const tcp_conn_t *c)
{
	return !c->closing;
}

const char *tcp_conn_peer(const tcp_conn_t *c)
{
	return c->name;
}

static const char *tcp_conn_peer_name(peer_t *p)
{
	return tcp_conn_of(p)->name;
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
	return stream_write_queue(&c->st);
}

/**
 * tcp_conn_of() - the connection a handler's @peer is.
 * @peer: of kind PEER_TCP_CONN (a handler registered with a tcp_server).
 * Return: the connection; the handler does not own a reference.
 */
tcp_conn_t *tcp_conn_of(peer_t *peer)
{
	assert(peer->kind == PEER_TCP_CONN);
	return container_of(peer, tcp_conn_t, peer);
}

/* ---- writing ---- */

/* The server's policy: a peer that does not read is cut off, and so is one
 * whose send would take the output of all of them past max_output_total. */
static void tcp_conn_on_overflow(stream_t *st, size_t queued, size_t len, bool global)
{
	tcp_conn_t *c = container_of(st, tcp_conn_t, st);
	tcp_server_t *srv = c->srv;
	unsigned long long hidden;
	bool say = log_ratelimit_ok(&srv->rl_limits, now_ms(srv), &hidden);
	if (global) {
		metrics_inc(srv->m.budget);
		if (say)
			log_warn("%s: output queued to all connections is at its bound "
				 "%zu bytes; closing %s (%zu bytes behind)%s", srv->name,
				 srv->budget.max, c->name, queued,
				 hidden ? " (more suppressed)" : "");
		tcp_conn_close(c, "output budget spent");
		return;
	}
	metrics_inc(srv->m.overflow);
	if (say)
		log_warn("%s: %s does not read: write queue %zu + %zu bytes over "
			 "the bound %zu, closing%s",
			 srv->name, c->name, queued, len, srv->opts.max_write_queue,
			 hidden ? " (more suppressed)" : "");
	tcp_conn_close(c, "write queue over its bound");
}

int tcp_conn_send_frame(tcp_conn_t *c, uint8_t *buf, size_t len)
{
	if (c->closing) {
		free(buf);
		return -ENOTCONN;
	}
	return stream_send_frame(&c->st, buf, len);
}

int tcp_conn_send_shared(tcp_conn_t *c, sbuf_t *b)
{
	if (c->closing)
		return -ENOTCONN;
	return stream_send_shared(&c->st, b);
}

void tcp_conn_set_active(tcp_conn_t *c)
{
	c->active = true;
}

size_t tcp_server_output_bytes(const tcp_server_t *srv)
{
	return srv->budget.used;
}

static int tcp_conn_peer_send_frame(peer_t *p, uint8_t *buf, size_t len)
{
	return tcp_conn_send_frame(tcp_conn_of(p), buf, len);
}

int tcp_conn_send(tcp_conn_t *c, int32_t msgid, const pb_msgdesc_t *fields,
		  const void *msg)
{
	if (c->closing)
		return -ENOTCONN;
	int r = stream_send(&c->st, msgid, fields, msg);
	/* The two outcomes that leave the connection open: the message itself. */
	if ((r == -EMSGSIZE || r == -EINVAL) && !c->closing)
		log_error("%s: cannot encode frame %d for %s: %s", c->srv->name,
			  msgid, c->name, msg_strerror(r == -EMSGSIZE ? MSG_E_TOO_LARGE : r));
	return r;
}

static int tcp_conn_peer_send(peer_t *p, int32_t msgid, const pb_msgdesc_t *fields,
			      const void *msg)
{
	return tcp_conn_send(tcp_conn_of(p), msgid, fields, msg);
}

/* ---- reading ---- */

static void tcp_conn_bad_input(tcp_conn_t *c, const char *why, const frame_hdr_t *hdr)
{
	tcp_server_t *srv = c->srv;
	unsigned long long hidden;
	if (log_ratelimit_ok(&srv->rl_bad, now_ms(srv), &hidden))
		log_warn("%s: bad input from %s: %s (msgid %d, msglen %d), closing%s",
			 srv->name, c->name, why, hdr ? hdr->msgid : -1,
			 hdr ? hdr->msglen : -1, hidden ? " (more suppressed)" : "");
	tcp_conn_close(c, why);
}

static void tcp_conn_on_fail(stream_t *st, int what, int code, const frame_hdr_t *hdr)
{
	tcp_conn_t *c = container_of(st, tcp_conn_t, st);
	tcp_server_t *srv = c->srv;

	switch (what) {
	case STREAM_F_FRAME:
		metrics_inc(srv->m.bad[code]);
		tcp_conn_bad_input(c, frame_strerror(code), hdr);
		break;
	case STREAM_F_MESSAGE:
		metrics_inc(srv->m.bad_msg);
		tcp_conn_bad_input(c, code > 0 ? msg_strerror(code) : "request failed", hdr);
		break;
	default: /* a read (EOF included) or write error */
		tcp_conn_close(c, code == UV_EOF ? "peer closed" : uv_strerror(code));
		break;
	}
}

/* ---- accepting ---- */

/* One key per address (IPv4, or IPv6 folded to 64 bits: a collision only
 * counts two addresses together). */
static uint64_t tcp_addr_key(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return 1ull << 63 | ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
	const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (int i = 0; i < 16; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h & ~(1ull << 63);
}

static void tcp_server_refuse(tcp_server_t *srv)
{
	/* Accept and close at once: the peer sees a clean EOF, not a stall. */
	uv_tcp_t *t = xmalloc(sizeof(*t));
	int r = uv_tcp_init(srv->loop, t);
	if (r) {
		log_warn("%s: cannot refuse a connection: %s", srv->name, uv_err_name(r));
		free(t);
		return;
	}
	if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)t) == 0)
		metrics_inc(srv->m.refused);
	uv_close((uv_handle_t *)t, (uv_close_cb)free);
	unsigned long long hidden;
	if (log_ratelimit_ok(&srv->rl_refused, now_ms(srv), &hidden))
		log_warn("%s: connection limit %u reached, refusing new connections",
			 srv->name, srv->opts.max_conns);
}

/* What the handlers of a connection's frames can do with it. */
static const peer_ops_t tcp_conn_peer_ops = {
	.send = tcp_conn_peer_send,
	.send_frame = tcp_conn_peer_send_frame,
	.close = tcp_conn_peer_close,
	.name = tcp_conn_peer_name,
};

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
	c->peer = (peer_t){ .kind = PEER_TCP_CONN, .ops = &tcp_conn_peer_ops };
	int r = stream_init(&c->st, srv->loop, &srv->stream_cfg, &c->peer);
	if (r) {
		log_warn("%s: accept failed: %s", srv->name, uv_strerror(r));
		free(c);
		return;
	}
	srv->n_alive++;
	r = uv_accept(ls, (uv_stream_t *)&c->st.tcp);
	if (r) {
		log_warn("%s: accept failed: %s", srv->name, uv_strerror(r));
		c->closing = true;
		stream_close(&c->st, tcp_conn_on_closed);
		return;
	}
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (uv_tcp_getpeername(&c->st.tcp, (struct sockaddr *)&ss, &len) == 0) {
		net_addr_str((struct sockaddr *)&ss, c->name);
		c->ip_key = tcp_addr_key((struct sockaddr *)&ss);
		c->per_ip = srv->opts.max_conns_per_ip > 0;
	} else {
		snprintf(c->name, sizeof(c->name), "?");
	}
	if (c->per_ip) {
		uintptr_t n = (uintptr_t)u64map_get(&srv->per_ip, c->ip_key);
		if (n >= srv->opts.max_conns_per_ip) {
			metrics_inc(srv->m.refused_ip);
			unsigned long long hidden;
			if (log_ratelimit_ok(&srv->rl_refused, now_ms(srv), &hidden))
				log_warn("%s: %s has max_conns_per_ip = %u connections "
					 "open already, refusing it", srv->name, c->name,
					 srv->opts.max_conns_per_ip);
			c->closing = true;
			stream_close(&c->st, tcp_conn_on_closed);
			return;
		}
		u64map_put(&srv->per_ip, c->ip_key, (void *)(n + 1));
	}
	c->since_ms = now_ms(srv);
	r = uv_tcp_nodelay(&c->st.tcp, 1);
	if (r) /* only latency suffers */
		log_debug("%s: TCP_NODELAY on %s: %s", srv->name, c->name, uv_err_name(r));

	c->next = srv->conns;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &srv->conns;
	srv->conns = c;
	srv->n_conns++;
	metrics_inc(srv->m.open);
	metrics_inc(srv->m.accepted);
	log_debug("%s: connection from %s", srv->name, c->name);

	if (srv->opts.on_connect)
		srv->opts.on_connect(c, srv->opts.user);
	if (c->closing || srv->paused)
		return;
	r = stream_read_start(&c->st);
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
			stream_read_stop(&c->st);
		} else {
			int r = stream_read_start(&c->st);
			if (r)
				tcp_conn_close(c, uv_strerror(r));
		}
	}
}

bool tcp_server_paused(const tcp_server_t *srv)
{
	return srv->paused;
}

static double tcp_server_output_gauge(void *arg)
{
	return (double)((tcp_server_t *)arg)->budget.used;
}

/* ---- deadlines and the soft output limit ---- */

/* Why @c must go now, or NULL. */
static const char *tcp_conn_overdue(tcp_server_t *srv, tcp_conn_t *c, uint64_t now)
{
	const tcp_server_opts_t *o = &srv->opts;
	uint64_t partial = stream_partial_since(&c->st);
	if (o->partial_frame_timeout_ms && partial && now > partial &&
	    now - partial >= o->partial_frame_timeout_ms) {
		metrics_inc(srv->m.partial);
		return "a frame unfinished past partial_frame_timeout";
	}
	if (o->hello_timeout_ms && !c->active && now - c->since_ms >= o->hello_timeout_ms) {
		metrics_inc(srv->m.idle);
		return "nothing asked for within the deadline";
	}
	if (!o->soft_write_queue)
		return NULL;
	if (stream_write_queue(&c->st) <= o->soft_write_queue) {
		c->soft_since_ms = 0;
		return NULL;
	}
	if (!c->soft_since_ms) {
		c->soft_since_ms = now | 1;
		return NULL;
	}
	if (now - c->soft_since_ms < o->soft_write_queue_ms)
		return NULL;
	metrics_inc(srv->m.slow);
	unsigned long long hidden;
	if (log_ratelimit_ok(&srv->rl_limits, now, &hidden))
		log_warn("%s: %s is %zu bytes behind, over the soft limit %zu for "
			 "%u ms: closing%s", srv->name, c->name, stream_write_queue(&c->st),
			 o->soft_write_queue, o->soft_write_queue_ms,
			 hidden ? " (more suppressed)" : "");
	return "over the soft output limit too long";
}

/* Every connection once: a few compares each, 10,000 in well under a ms. */
static void tcp_server_on_sweep(uv_timer_t *t)
{
	tcp_server_t *srv = container_of(t, tcp_server_t, sweep);
	uint64_t now = now_ms(srv);
	for (tcp_conn_t *c = srv->conns, *next; c; c = next) {
		next = c->next;
		const char *why = tcp_conn_overdue(srv, c, now);
		if (why)
			tcp_conn_close(c, why);
	}
}

/* A quarter of the shortest deadline, between 50 ms and 1 s; 0: none set. */
static uint64_t tcp_server_sweep_ms(const tcp_server_opts_t *o)
{
	uint64_t iv = 0;
	unsigned t[3] = { o->hello_timeout_ms, o->partial_frame_timeout_ms,
			  o->soft_write_queue ? o->soft_write_queue_ms : 0 };
	bool on[3] = { t[0] > 0, t[1] > 0, o->soft_write_queue > 0 };
	for (int i = 0; i < 3; i++) {
		uint64_t q = t[i] / 4;
		if (!on[i])
			continue;
		q = q < 50 ? 50 : q > 1000 ? 1000 : q;
		if (!iv || q < iv)
			iv = q;
	}
	return iv;
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
	C(refused_ip, "lars_tcp_refused_per_ip_total", "TCP connections refused at max_conns_per_ip");
	C(budget, "lars_tcp_output_budget_overflow_total", "Peers cut off because the output of all connections was at its bound");
	C(slow, "lars_tcp_slow_closed_total", "Peers cut off after staying over the soft output limit too long");
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
	snprintf(name, sizeof(name), "lars_tcp_timeouts_total{listener=\"%s\",reason=\"partial_frame\"}", l);
	srv->m.partial = metrics_counter(m, name, "Connections closed by a deadline");
	snprintf(name, sizeof(name), "lars_tcp_timeouts_total{listener=\"%s\",reason=\"idle\"}", l);
	srv->m.idle = metrics_counter(m, name, "Connections closed by a deadline");
	snprintf(name, sizeof(name), "lars_tcp_connections{listener=\"%s\"}", l);
	srv->m.open = metrics_level(m, name, "TCP connections open");
	snprintf(name, sizeof(name), "lars_tcp_output_bytes{listener=\"%s\"}", l);
	metrics_gauge(m, name, "Real bytes (frames and bookkeeping) queued to all connections",
		      tcp_server_output_gauge, srv);
}

int tcp_server_start(uv_loop_t *loop, const tcp_server_opts_t *opts,
		     tcp_server_t **outp)
{
	tcp_server_t *srv = xcalloc(1, sizeof(*srv));
	srv->loop = loop;
	srv->opts = *opts;
	snprintf(srv->name, sizeof(srv->name), "%s", opts->name ? opts->name : "tcp");
	if (!srv->opts.backlog)
		srv->opts.backlog = 4096; /* a fleet reconnecting at once; the kernel caps it at somaxconn */
	if (!srv->opts.max_conns)
		srv->opts.max_conns = 10000;
	if (!srv->opts.max_frame)
		srv->opts.max_frame = FRAME_TCP_MAX_DEFAULT;
	if (!srv->opts.max_write_queue)
		srv->opts.max_write_queue = 16u * 1024 * 1024;
	srv->rl_bad = (log_ratelimit_t)LOG_RATELIMIT_INIT(1000, 10);
	srv->rl_refused = (log_ratelimit_t)LOG_RATELIMIT_INIT(10000, 1);
	srv->rl_limits = (log_ratelimit_t)LOG_RATELIMIT_INIT(1000, 10);
	srv->budget.max = opts->max_output_total;

	int r = net_listen_tcp(loop, &srv->listener, opts->ip, opts->port,
			       srv->opts.backlog, opts->reuse_port, tcp_server_on_connection,
			       &srv->port);
	if (r) {
		net_log_listen_error(srv->name, "tcp", opts->ip, opts->port, r);
		uv_close((uv_handle_t *)&srv->listener, tcp_server_on_listener_closed);
		return r;
	}
	tcp_server_metrics(srv);
	/* Every connection: the server's limits, and its policies on failure. */
	srv->stream_cfg = (stream_cfg_t){
		.on_fail = tcp_conn_on_fail,
		.on_overflow = tcp_conn_on_overflow,
		.frames = srv->m.frames,
		.dispatch = opts->dispatch,
		.max_frame = srv->opts.max_frame,
		.max_write_queue = srv->opts.max_write_queue,
		.budget = &srv->budget,
		.hold_while_queued = srv->opts.hold_while_queued,
		.pacer = &srv->pacer,
	};
	stream_pacer_init(&srv->pacer, loop, TCP_SERVER_TURN_BUDGET_NS);
	srv->n_alive++; /* the pacer, closed with the server */
	uint64_t sweep_ms = tcp_server_sweep_ms(&srv->opts);
	(void)uv_timer_init(loop, &srv->sweep);
	srv->n_alive++; /* the sweep timer, closed with the server */
	if (sweep_ms) {
		(void)uv_timer_start(&srv->sweep, tcp_server_on_sweep, sweep_ms, sweep_ms);
		uv_unref((uv_handle_t *)&srv->sweep);
	}
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
	u64map_deinit(&srv->per_ip);
	uv_close((uv_handle_t *)&srv->listener, tcp_server_on_listener_closed);
}

static void tcp_server_on_pacer_closed(stream_pacer_t *p)
{
	tcp_server_t *srv = container_of(p, tcp_server_t, pacer);
	srv->n_alive--;
	tcp_server_maybe_free(srv);
}

static void tcp_server_on_sweep_closed(uv_handle_t *h)
{
	tcp_server_t *srv = container_of((uv_timer_t *)h, tcp_server_t, sweep);
	srv->n_alive--;
	tcp_server_maybe_free(srv);
}

void tcp_server_close(tcp_server_t *srv)
{
	if (!srv || srv->closing)
		return;
	srv->closing = true;
	while (srv->conns)
		tcp_conn_close(srv->conns, "server shutting down");
	uv_close((uv_handle_t *)&srv->sweep, tcp_server_on_sweep_closed);
	stream_pacer_close(&srv->pacer, tcp_server_on_pacer_closed);
}
