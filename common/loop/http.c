// SPDX-License-Identifier: MIT
// An HTTP server on the service's libuv loop. libmicrohttpd does the HTTP
// (parsing, keep-alive, timeouts, limits); it runs in "external polling"
// mode with its own epoll set, and that one descriptor is watched by a
// uv_poll handle: when it is readable, or when MHD's next timeout is due,
// the loop calls MHD_run(). So every handler runs on the loop thread.
//
// A handler that cannot answer at once (it waits for a database job) leaves
// the request suspended in MHD; http_respond() later stores the answer and
// resumes the connection, and MHD calls us again to queue it.
//
// Slow clients. MHD's idle timeout restarts on every byte, so a client that
// trickles a header line now and then holds its connection for ever, and
// max_conns of them lock everyone out. We keep our own list of the
// connections still waiting for their request (accepted, or answered and
// kept alive), oldest first: each must have its whole request in within
// request_timeout_s, and at most max_conns - reserve may wait at once; a new
// connection over that closes the oldest waiting one. So a newcomer is always
// accepted, and a request that has arrived (an operator's, sent in one go)
// is always served, whatever number of addresses the slow clients use. We
// close a connection with shutdown(2): MHD sees the end of the stream on its
// descriptor and closes it itself.
//
// The listening socket is ours (MHD_OPTION_LISTEN_SOCKET), so a taken port
// is an error naming the address, and SO_REUSEPORT is set only on request.
#include "http.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "handles.h"
#include "log.h"
#include "net.h"
#include "xalloc.h"

/* Log closed slow connections at most this often (they come in floods). */
#define HTTP_CUT_LOG_MS 10000

/* One connection, from MHD's accept to its close (MHD's socket context). */
typedef struct http_conn {
	struct http_conn *prev, *next; /* in the server's waiting list */
	int fd;
	uint64_t deadline_ms;          /* its request must be in by then */
	bool waiting;
	bool cut;                      /* shut down by us; MHD closes it soon */
} http_conn_t;

struct http_server {
	uv_loop_t *loop;
	struct MHD_Daemon *d;
	uv_poll_t poll;
	uv_timer_t timer;
	uv_timer_t deadline;  /* the oldest waiting connection's deadline */
	http_server_opts_t opts;
	char name[32];
	char where[NET_ADDR_STRLEN];
	int port;
	unsigned outstanding; /* handed to the handler, not answered yet */
	handles_t handles;    /* poll, timer, deadline; freed when all are closed */
	bool closing;
	bool stopped;
	/* Connections waiting for their request, oldest first. */
	http_conn_t *wait_head, *wait_tail;
	unsigned n_waiting;
	unsigned max_waiting; /* max_conns - reserve */
	uint64_t n_expired, n_evicted; /* not yet logged */
	uint64_t cut_logged_ms;
};

typedef struct http_extra_header {
	struct http_extra_header *next;
	char *name;
	char *value;
} http_extra_header_t;

struct http_req {
	http_server_t *s;
	struct MHD_Connection *conn; /* NULL once MHD is done with it */
	http_conn_t *hc;
	const char *method;
	const char *url;
	char *body;
	size_t len, cap;
	http_extra_header_t *headers;
	struct MHD_Response *resp; /* the answer, waiting to be queued */
	unsigned status;
	char peer[NET_ADDR_STRLEN];
	bool too_large;
	bool handed;    /* given to the handler */
	bool answered;
	bool in_handler;
	bool suspended;
};

static void http_run(http_server_t *s);
static void http_finish(http_server_t *s);
static void http_log_cuts(http_server_t *s, bool force);

static void http_on_timer(uv_timer_t *t)
{
	http_run(t->data);
}

static void http_on_poll(uv_poll_t *p, int status, int events)
{
	http_run(p->data);
}

/* One-shot timers only; uv_timer_start() fails only on a closing handle,
 * and ours close only once the server is stopped. */
static void http_timer_start(http_server_t *s, uv_timer_t *t, uv_timer_cb cb, uint64_t ms)
{
	int r = uv_timer_start(t, cb, ms, 0);
	if (r)
		log_error("%s: cannot start a timer: %s", s->name, uv_err_name(r));
}

/* Run MHD until it has nothing to do now, then wait for its descriptor or
 * its next timeout. */
static void http_run(http_server_t *s)
{
	if (s->stopped)
		return;
	if (s->closing && s->outstanding == 0) {
		http_finish(s);
		return;
	}
	MHD_run(s->d);
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(s->d, &ms) == MHD_YES)
		http_timer_start(s, &s->timer, http_on_timer, ms);
	else
		(void)uv_timer_stop(&s->timer); /* always 0 */
}

/* After a resume (outside MHD's callbacks): run MHD from the loop soon. */
static void http_kick(http_server_t *s)
{
	if (!s->stopped)
		http_timer_start(s, &s->timer, http_on_timer, 0);
}

/* The last handle is closed: free the server; tell its owner if it was
 * closed by http_server_close() (not by a failed start). */
static void http_on_closed(handles_t *g)
{
	http_server_t *s = container_of(g, http_server_t, handles);
	void (*on_closed)(void *arg) = s->closing ? s->opts.on_closed : NULL;
	void *arg = s->opts.arg;
	free(s);
	if (on_closed)
		on_closed(arg);
}

/* Everything answered: stop MHD (closing every connection) and the handles. */
static void http_finish(http_server_t *s)
{
	if (s->stopped)
		return;
	/* Let MHD take back resumed connections and send what it can. */
	MHD_run(s->d);
	s->stopped = true;
	(void)uv_poll_stop(&s->poll); /* always 0; before MHD closes the epoll descriptor */
	MHD_stop_daemon(s->d);
	s->d = NULL;
	http_log_cuts(s, true);
	handles_close(&s->handles, http_on_closed);
}

static void conn_unwait(http_server_t *s, http_conn_t *c)
{
	if (!c->waiting)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->wait_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->wait_tail = c->prev;
	c->prev = c->next = NULL;
	c->waiting = false;
	s->n_waiting--;
}

static void http_on_deadline(uv_timer_t *t);

/* @c waits for a request from now on: it goes last, with the latest deadline. */
static void conn_wait(http_server_t *s, http_conn_t *c)
{
	if (c->cut || s->stopped)
		return;
	conn_unwait(s, c);
	c->deadline_ms = uv_now(s->loop) + (uint64_t)s->opts.request_timeout_s * 1000;
	c->prev = s->wait_tail;
	if (s->wait_tail)
		s->wait_tail->next = c;
	else
		s->wait_head = c;
	s->wait_tail = c;
	c->waiting = true;
	if (++s->n_waiting == 1)
		http_timer_start(s, &s->deadline, http_on_deadline,
				 (uint64_t)s->opts.request_timeout_s * 1000);
}

static void http_log_cuts(http_server_t *s, bool force)
{
	uint64_t now = uv_now(s->loop);
	if (!s->n_expired && !s->n_evicted)
		return;
	if (!force && s->cut_logged_ms && now - s->cut_logged_ms < HTTP_CUT_LOG_MS)
		return;
	log_warn("%s: closed %llu connection(s) that had not sent a whole request within %u s "
		 "and %llu to make room (at most %u may wait for theirs)", s->name,
		 (unsigned long long)s->n_expired, s->opts.request_timeout_s,
		 (unsigned long long)s->n_evicted, s->max_waiting);
	s->n_expired = s->n_evicted = 0;
	s->cut_logged_ms = now;
}

/* Close @c from outside MHD: end the stream; MHD reads EOF and closes it. */
static void conn_cut(http_server_t *s, http_conn_t *c, bool expired)
{
	conn_unwait(s, c);
	c->cut = true;
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	if (expired)
		s->n_expired++;
	else
		s->n_evicted++;
	http_kick(s);
}

static void http_on_deadline(uv_timer_t *t)
{
	http_server_t *s = t->data;
	uint64_t now = uv_now(s->loop);
	while (s->wait_head && s->wait_head->deadline_ms <= now)
		conn_cut(s, s->wait_head, true);
	if (s->wait_head)
		http_timer_start(s, &s->deadline, http_on_deadline, s->wait_head->deadline_ms - now);
	http_log_cuts(s, false);
}

static void http_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
			     enum MHD_ConnectionNotificationCode code)
{
	http_server_t *s = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		http_conn_t *c = xcalloc(1, sizeof(*c));
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		c->fd = ci ? ci->connect_fd : -1;
		*socket_context = c;
		conn_wait(s, c);
		/* The newcomer may be an operator: make room for it at the
		 * expense of whoever has been waiting longest. */
		while (s->n_waiting > s->max_waiting && s->wait_head != c)
			conn_cut(s, s->wait_head, false);
		http_log_cuts(s, false);
		return;
	}
	http_conn_t *c = *socket_context;
	if (c) {
		conn_unwait(s, c);
		free(c);
		*socket_context = NULL;
	}
}

/* MHD's socket context of @conn: our http_conn_t. */
static http_conn_t *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static void req_free(http_req_t *req)
{
	for (http_extra_header_t *h = req->headers, *n; h; h = n) {
		n = h->next;
		free(h->name);
		free(h->value);
		free(h);
	}
	if (req->resp)
		MHD_destroy_response(req->resp);
	free(req->body);
	free(req);
}

static enum MHD_Result req_queue(http_req_t *req)
{
	enum MHD_Result r = MHD_queue_response(req->conn, req->status, req->resp);
	MHD_destroy_response(req->resp);
	req->resp = NULL;
	return r;
}

static void req_peer(http_req_t *req)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr)
		net_addr_str(ci->client_addr, req->peer);
	else
		snprintf(req->peer, sizeof(req->peer), "?");
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn,
				   const char *url, const char *method,
				   const char *version, const char *upload_data,
				   size_t *upload_data_size, void **con_cls)
{
	http_server_t *s = cls;
	http_req_t *req = *con_cls;

	if (!req) {
		/* Headers are in; the body (if any) follows in further calls. */
		req = xcalloc(1, sizeof(*req));
		req->s = s;
		req->conn = conn;
		req->method = method;
		req->url = url;
		req->hc = conn_of(conn);
		req_peer(req);
		*con_cls = req;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (req->too_large || req->len + n > s->opts.max_body) {
			req->too_large = true;
			return MHD_YES;
		}
		if (req->len + n + 1 > req->cap) {
			req->cap = req->len + n + 1 < 1024 ? 1024 : 2 * (req->len + n + 1);
			if (req->cap > s->opts.max_body + 1)
				req->cap = s->opts.max_body + 1;
			req->body = xrealloc(req->body, req->cap);
		}
		memcpy(req->body + req->len, upload_data, n);
		req->len += n;
		req->body[req->len] = '\0';
		return MHD_YES;
	}
	if (req->resp)
		return req_queue(req); /* answered while suspended; now resumed */
	if (req->handed) {
		/* Called again before the answer came: keep waiting. */
		MHD_suspend_connection(conn);
		req->suspended = true;
		return MHD_YES;
	}
	/* The whole request is in: no longer subject to the request deadline. */
	if (req->hc)
		conn_unwait(s, req->hc);
	if (s->closing) {
		req->handed = true;
		s->outstanding++;
		http_req_add_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
		http_respond(req, 503, "text/plain; charset=utf-8", "shutting down\n", 14);
		return req_queue(req);
	}
	if (req->too_large) {
		log_warn("%s: %s %s from %s: body over %zu bytes refused", s->name,
			 method, url, req->peer, s->opts.max_body);
		req->handed = true;
		s->outstanding++;
		http_respond(req, 413, "text/plain; charset=utf-8", "request body too large\n", 23);
		return req_queue(req);
	}
	req->handed = true;
	s->outstanding++;
	req->in_handler = true;
	s->opts.handler(req, s->opts.arg);
	req->in_handler = false;
	if (req->answered)
		return req_queue(req);
	MHD_suspend_connection(conn);
	req->suspended = true;
	return MHD_YES;
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			   enum MHD_RequestTerminationCode toe)
{
	http_server_t *s = cls;
	/* Answered, kept alive: the next request has its own deadline. */
	http_conn_t *hc = conn_of(conn);
	if (hc && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		conn_wait(s, hc);
	http_req_t *req = *con_cls;
	if (!req)
		return;
	*con_cls = NULL;
	req->conn = NULL;
	/* A handler still owes its answer: it frees the request then. */
	if (req->handed && !req->answered)
		return;
	req_free(req);
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	http_server_t *s = cls;
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	log_debug("%s: libmicrohttpd: %s", s->name, buf);
}

/*
 * Bind and listen on @addr. SO_REUSEADDR only lets a restart bind while old
 * connections linger in TIME_WAIT (on Linux it never lets two sockets listen
 * on one port); SO_REUSEPORT, which does, only when asked for.
 */
static int http_listen(const http_server_t *s, const struct sockaddr_storage *addr,
		       int *fdp)
{
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int err = -errno;
		log_error("%s: cannot listen on %s: %s", s->name, s->where, strerror(-err));
		return err;
	}
	int on = 1;
	socklen_t len = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						     : sizeof(struct sockaddr_in);
	int r = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (r == 0 && s->opts.reuse_port)
		r = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
	if (r == 0 && addr->ss_family == AF_INET6)
		r = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (r == 0)
		r = bind(fd, (const struct sockaddr *)addr, len);
	if (r == 0)
		r = listen(fd, SOMAXCONN);
	if (r) {
		int err = -errno;
		log_error("%s: cannot listen on %s: %s%s", s->name, s->where, strerror(-err),
			  err == -EADDRINUSE ? " (another process holds the port)" : "");
		close(fd);
		return err;
	}
	*fdp = fd;
	return 0;
}

/**
 * http_server_start() - listen on @opts->ip:@opts->port and serve from @loop.
 * @loop: the loop every handler runs on.
 * @opts: copied; @opts->headers must outlive the server.
 * @outp: gets the server, only on success.
 *
 * Return: 0, or a negative errno (logged). On failure nothing is left but
 * the handles the loop frees in their close callbacks.
 */
int http_server_start(uv_loop_t *loop, const http_server_opts_t *opts, http_server_t **outp)
{
	struct sockaddr_storage addr;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const char *name = opts->name ? opts->name : "http";

	if (net_addr(opts->ip, opts->port, &addr)) {
		log_error("%s: '%s' is not an IP address", name, opts->ip);
		return -EINVAL;
	}
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;

	http_server_t *s = xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->opts = *opts;
	snprintf(s->name, sizeof(s->name), "%s", name);
	net_addr_str((struct sockaddr *)&addr, s->where);
	if (!s->opts.max_conns)
		s->opts.max_conns = 64;
	if (!s->opts.timeout_s)
		s->opts.timeout_s = 30;
	if (!s->opts.request_timeout_s)
		s->opts.request_timeout_s = 10;
	if (s->opts.reserve >= s->opts.max_conns)
		s->opts.reserve = s->opts.max_conns - 1;
	s->max_waiting = s->opts.max_conns - s->opts.reserve;

	int fd = -1;
	int r = http_listen(s, &addr, &fd);
	if (r) {
		free(s);
		return r;
	}
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
		net_addr_str((struct sockaddr *)&bound, s->where);
	s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
						     : ((struct sockaddr_in *)&bound)->sin_port);

	/* From here MHD owns @fd (closed by MHD_stop_daemon, or by
	 * MHD_start_daemon itself on most of its failures; a failed start
	 * ends the process, so an fd it left open does not matter). */
	s->d = MHD_start_daemon(flags, (uint16_t)s->port, NULL, NULL, http_access, s,
				MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, s, /* first, or MHD warns */
				MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				MHD_OPTION_CONNECTION_LIMIT, s->opts.max_conns,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->opts.max_per_ip,
				MHD_OPTION_CONNECTION_TIMEOUT, s->opts.timeout_s,
				MHD_OPTION_NOTIFY_CONNECTION, http_notify_conn, s,
				MHD_OPTION_NOTIFY_COMPLETED, http_completed, s,
				MHD_OPTION_END);
	if (!s->d) {
		int err = errno ? -errno : -EIO;
		log_error("%s: cannot serve HTTP on %s: %s", name, s->where, strerror(-err));
		free(s);
		return err;
	}
	handles_init(&s->handles);
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
	r = di ? uv_poll_init(loop, &s->poll, di->epoll_fd) : UV_EINVAL;
	if (r == 0) {
		handles_add(&s->handles, &s->poll);
		r = uv_timer_init(loop, &s->timer);
	}
	if (r == 0) {
		handles_add(&s->handles, &s->timer);
		r = uv_timer_init(loop, &s->deadline);
	}
	if (r == 0) {
		handles_add(&s->handles, &s->deadline);
		s->poll.data = s->timer.data = s->deadline.data = s;
		r = uv_poll_start(&s->poll, UV_READABLE, http_on_poll);
	}
	if (r) {
		log_error("%s: cannot watch libmicrohttpd's epoll descriptor: %s", name,
			  uv_err_name(r));
		s->stopped = true;
		MHD_stop_daemon(s->d);
		s->d = NULL;
		/* Frees @s from the close callbacks (or at once if none was made). */
		handles_close(&s->handles, http_on_closed);
		return r;
	}
	log_info("%s: listening on %s", name, s->where);
	*outp = s;
	return 0;
}

int http_server_port(const http_server_t *s)
{
	return s->port;
}

void http_server_close(http_server_t *s)
{
	if (!s || s->closing)
		return;
	s->closing = true;
	/* No new connections; ours to close in external polling mode. */
	MHD_socket fd = MHD_quiesce_daemon(s->d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	/* Finishes from the loop once every request handed out is answered. */
	http_kick(s);
}

const char *http_req_method(const http_req_t *req)
{
	return req->method;
}

const char *http_req_path(const http_req_t *req)
{
	return req->url; /* MHD has split off the query string */
}

const char *http_req_header(const http_req_t *req, const char *name)
{
	return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

const char *http_req_query(const http_req_t *req, const char *name)
{
	return req->conn ? MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name)
			 : NULL;
}

const char *http_req_body(const http_req_t *req, size_t *lenp)
{
	if (lenp)
		*lenp = req->len;
	return req->body ? req->body : "";
}

const char *http_req_peer(const http_req_t *req)
{
	return req->peer;
}

bool http_req_basic_auth(const http_req_t *req, char **userp, char **passp)
{
	if (!req->conn)
		return false;
	char *pass = NULL;
	char *user = MHD_basic_auth_get_username_password(req->conn, &pass);
	if (!user) {
		if (pass)
			MHD_free(pass);
		return false;
	}
	*userp = xstrdup(user);
	*passp = xstrdup(pass ? pass : "");
	MHD_free(user);
	if (pass)
		MHD_free(pass);
	return true;
}

void http_req_add_header(http_req_t *req, const char *name, const char *value)
{
	http_extra_header_t *h = xcalloc(1, sizeof(*h));
	h->name = xstrdup(name);
	h->value = xstrdup(value);
	h->next = req->headers;
	req->headers = h;
}

static void http_answer(http_req_t *req, unsigned status, const char *ctype,
			struct MHD_Response *resp)
{
	http_server_t *s = req->s;
	if (!resp) {
		log_error("%s: out of memory for a response", s->name);
		abort();
	}
	if (req->answered) {
		log_error("%s: a request answered twice", s->name);
		abort();
	}
	for (const http_header_t *h = s->opts.headers; h && h->name; h++)
		MHD_add_response_header(resp, h->name, h->value);
	for (http_extra_header_t *h = req->headers; h; h = h->next)
		MHD_add_response_header(resp, h->name, h->value);
	if (ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	req->answered = true;
	req->resp = resp;
	req->status = status;
	s->outstanding--;

	if (!req->conn) {
		/* The connection went away while we worked. */
		req_free(req);
	} else if (req->suspended) {
		req->suspended = false;
		MHD_resume_connection(req->conn);
		http_kick(s);
	}
	/* else: in the handler; http_access queues it when the handler returns. */
	if (s->closing && s->outstanding == 0)
		http_kick(s); /* finish from the loop, never inside MHD */
}

void http_respond(http_req_t *req, unsigned status, const char *ctype,
		  const void *body, size_t len)
{
	http_answer(req, status, ctype,
		    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY));
}

void http_respond_take(http_req_t *req, unsigned status, const char *ctype,
		       char *body, size_t len)
{
	http_answer(req, status, ctype,
		    MHD_create_response_from_buffer_with_free_callback(len, body, free));
}
