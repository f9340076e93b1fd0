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
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "net.h"
#include "xalloc.h"

struct http_server {
	uv_loop_t *loop;
	struct MHD_Daemon *d;
	uv_poll_t poll;
	uv_timer_t timer;
	http_server_opts_t opts;
	char name[32];
	int port;
	unsigned outstanding; /* handed to the handler, not answered yet */
	int n_handles;        /* open uv handles; freed when the last closes */
	bool closing;
	bool stopped;
};

typedef struct http_extra_header {
	struct http_extra_header *next;
	char *name;
	char *value;
} http_extra_header_t;

struct http_req {
	http_server_t *s;
	struct MHD_Connection *conn; /* NULL once MHD is done with it */
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

static void http_on_timer(uv_timer_t *t)
{
	http_run(t->data);
}

static void http_on_poll(uv_poll_t *p, int status, int events)
{
	http_run(p->data);
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
		uv_timer_start(&s->timer, http_on_timer, ms, 0);
	else
		uv_timer_stop(&s->timer);
}

/* After a resume (outside MHD's callbacks): run MHD from the loop soon. */
static void http_kick(http_server_t *s)
{
	if (!s->stopped)
		uv_timer_start(&s->timer, http_on_timer, 0, 0);
}

static void http_on_handle_closed(uv_handle_t *h)
{
	http_server_t *s = h->data;
	if (--s->n_handles == 0)
		free(s);
}

/* Everything answered: stop MHD (closing every connection) and the handles. */
static void http_finish(http_server_t *s)
{
	if (s->stopped)
		return;
	/* Let MHD take back resumed connections and send what it can. */
	MHD_run(s->d);
	s->stopped = true;
	uv_poll_stop(&s->poll); /* before MHD closes the epoll descriptor */
	MHD_stop_daemon(s->d);
	s->d = NULL;
	uv_close((uv_handle_t *)&s->poll, http_on_handle_closed);
	uv_close((uv_handle_t *)&s->timer, http_on_handle_closed);
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
	if (!s->opts.max_conns)
		s->opts.max_conns = 64;
	if (!s->opts.timeout_s)
		s->opts.timeout_s = 30;

	s->d = MHD_start_daemon(flags, (uint16_t)opts->port, NULL, NULL, http_access, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
				MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
				MHD_OPTION_CONNECTION_LIMIT, s->opts.max_conns,
				MHD_OPTION_CONNECTION_TIMEOUT, s->opts.timeout_s,
				MHD_OPTION_NOTIFY_COMPLETED, http_completed, s,
				MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, s,
				MHD_OPTION_END);
	if (!s->d) {
		int err = errno ? -errno : -EIO;
		log_error("%s: cannot listen on %s:%d: %s", name, opts->ip, opts->port,
			  strerror(-err));
		free(s);
		return err;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : opts->port;
	di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
	int r = di ? uv_poll_init(loop, &s->poll, di->epoll_fd) : UV_EINVAL;
	if (r) {
		log_error("%s: cannot watch libmicrohttpd's epoll descriptor: %s", name,
			  uv_strerror(r));
		MHD_stop_daemon(s->d);
		free(s);
		return r;
	}
	uv_timer_init(loop, &s->timer);
	s->poll.data = s->timer.data = s;
	s->n_handles = 2;
	uv_poll_start(&s->poll, UV_READABLE, http_on_poll);
	log_info("%s: listening on %s:%d", name, opts->ip, s->port);
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
