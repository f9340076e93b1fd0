// SPDX-License-Identifier: MIT
// Counters and gauges in Prometheus text format, and a tiny GET /metrics listener.
//
// The listener understands exactly one request line per connection and then
// closes; it is not a general HTTP server (issue: the admin console moves it
// onto a real HTTP library).
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "net.h"
#include "xalloc.h"

#define METRICS_REQ_MAX 4096
#define METRICS_REQ_TIMEOUT_MS 5000
#define METRICS_WRITE_TIMEOUT_MS 30000

typedef struct metric {
	struct metric *next;
	char *name;
	char *help;
	metrics_counter_t counter;
	metrics_gauge_fn gauge;
	void *arg;
	bool level; /* a gauge stored in ->counter, signed */
} metric_t;

struct metrics {
	metric_t *head;
	metric_t **tail;
};

struct metrics_http {
	uv_tcp_t listener;
	uv_loop_t *loop;
	metrics_t *m;
	int port;
	unsigned n_clients;
	bool closing;
	struct mhttp_client *clients;
};

typedef struct mhttp_client {
	uv_tcp_t tcp;
	uv_timer_t timer;
	metrics_http_t *h;
	struct mhttp_client *next, **pprev;
	char req[METRICS_REQ_MAX];
	size_t len;
	int n_closing;
	bool answered;
	bool head_only; /* HEAD: headers without the body */
} mhttp_client_t;

int metrics_new(metrics_t **outp)
{
	metrics_t *m = xcalloc(1, sizeof(*m));
	m->tail = &m->head;
	*outp = m;
	return 0;
}

metrics_t *metrics_free(metrics_t *m)
{
	if (!m)
		return NULL;
	for (metric_t *x = m->head, *n; x; x = n) {
		n = x->next;
		free(x->name);
		free(x->help);
		free(x);
	}
	free(m);
	return NULL;
}

static metric_t *metrics_add_metric(metrics_t *m, const char *name, const char *help)
{
	metric_t *x = xcalloc(1, sizeof(*x));
	x->name = xstrdup(name);
	x->help = xstrdup(help ? help : "");
	*m->tail = x;
	m->tail = &x->next;
	return x;
}

metrics_counter_t *metrics_counter(metrics_t *m, const char *name, const char *help)
{
	if (!m)
		return NULL;
	for (metric_t *x = m->head; x; x = x->next)
		if (!x->gauge && !x->level && strcmp(x->name, name) == 0)
			return &x->counter;
	return &metrics_add_metric(m, name, help)->counter;
}

metrics_counter_t *metrics_level(metrics_t *m, const char *name, const char *help)
{
	if (!m)
		return NULL;
	for (metric_t *y = m->head; y; y = y->next)
		if (y->level && strcmp(y->name, name) == 0)
			return &y->counter;
	metric_t *x = metrics_add_metric(m, name, help);
	x->level = true;
	return &x->counter;
}

void metrics_gauge(metrics_t *m, const char *name, const char *help,
		   metrics_gauge_fn fn, void *arg)
{
	if (!m)
		return;
	metric_t *x = metrics_add_metric(m, name, help);
	x->gauge = fn;
	x->arg = arg;
}

static size_t family_len(const char *name)
{
	const char *brace = strchr(name, '{');
	return brace ? (size_t)(brace - name) : strlen(name);
}

void metrics_summary(metrics_t *m, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (metric_t *x = m->head; x && len + 1 < cap; x = x->next) {
		uint64_t v = metrics_get(&x->counter);
		if (x->gauge || v == 0)
			continue;
		int n = x->level ? snprintf(out + len, cap - len, "%s%s=%lld",
					    len ? " " : "", x->name, (long long)(int64_t)v)
				 : snprintf(out + len, cap - len, "%s%s=%llu",
					    len ? " " : "", x->name, (unsigned long long)v);
		if (n < 0 || (size_t)n >= cap - len) {
			out[len] = '\0';
			break;
		}
		len += (size_t)n;
	}
}

static bool same_family(const metric_t *a, const metric_t *b)
{
	size_t la = family_len(a->name);
	return la == family_len(b->name) && strncmp(a->name, b->name, la) == 0;
}

static void render_sample(FILE *f, const metric_t *x)
{
	if (x->gauge)
		fprintf(f, "%s %.17g\n", x->name, x->gauge(x->arg));
	else if (x->level)
		fprintf(f, "%s %lld\n", x->name, (long long)(int64_t)metrics_get(&x->counter));
	else
		fprintf(f, "%s %llu\n", x->name, (unsigned long long)metrics_get(&x->counter));
}

int metrics_render(metrics_t *m, char **bufp, size_t *lenp)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -errno;
	/*
	 * The text format wants each family's samples together under one
	 * HELP/TYPE, but families are registered piecemeal (a TCP and a UDP
	 * listener both count lars_frames_total): gather them here.
	 */
	for (metric_t *x = m->head; x; x = x->next) {
		bool seen = false;
		for (metric_t *p = m->head; p != x && !seen; p = p->next)
			seen = same_family(p, x);
		if (seen)
			continue;
		size_t fl = family_len(x->name);
		fprintf(f, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)fl, x->name,
			x->help, (int)fl, x->name,
			x->gauge || x->level ? "gauge" : "counter");
		for (metric_t *y = x; y; y = y->next)
			if (same_family(x, y))
				render_sample(f, y);
	}
	if (fclose(f))
		return -ENOMEM;
	*bufp = buf;
	*lenp = len;
	return 0;
}

/* ---- the listener ---- */

static void mhttp_maybe_free(metrics_http_t *h);

static void mhttp_on_listener_closed(uv_handle_t *handle)
{
	free(container_of((uv_tcp_t *)handle, metrics_http_t, listener));
}

static void mhttp_on_client_closed(uv_handle_t *handle)
{
	mhttp_client_t *c = handle->data;
	if (--c->n_closing > 0)
		return;
	metrics_http_t *h = c->h;
	free(c);
	h->n_clients--;
	mhttp_maybe_free(h);
}

static void mhttp_client_close(mhttp_client_t *c)
{
	if (c->n_closing)
		return;
	if (c->pprev) {
		*c->pprev = c->next;
		if (c->next)
			c->next->pprev = c->pprev;
		c->pprev = NULL;
	}
	c->n_closing = 2;
	uv_close((uv_handle_t *)&c->tcp, mhttp_on_client_closed);
	uv_close((uv_handle_t *)&c->timer, mhttp_on_client_closed);
}

static void mhttp_on_timeout(uv_timer_t *t);

typedef struct mhttp_write {
	uv_write_t req;
	mhttp_client_t *c;
	char *head;
	char *body;
} mhttp_write_t;

static void mhttp_after_write(uv_write_t *req, int status)
{
	mhttp_write_t *w = container_of(req, mhttp_write_t, req);
	mhttp_client_close(w->c);
	free(w->head);
	free(w->body);
	free(w);
}

static void mhttp_respond(mhttp_client_t *c, const char *status, const char *ctype,
			  char *body, size_t body_len)
{
	mhttp_write_t *w = xcalloc(1, sizeof(*w));
	w->c = c;
	w->body = body;
	if (asprintf(&w->head,
		     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n\r\n",
		     status, ctype, body_len) < 0) {
		log_error("metrics: out of memory");
		abort();
	}
	uv_buf_t bufs[2] = { uv_buf_init(w->head, (unsigned)strlen(w->head)),
			     uv_buf_init(body ? body : "", (unsigned)body_len) };
	c->answered = true;
	/* A slow reader gets longer for a big answer, but not forever. */
	uv_timer_start(&c->timer, mhttp_on_timeout, METRICS_WRITE_TIMEOUT_MS, 0);
	if (c->head_only)
		bufs[1].len = 0;
	int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, 2, mhttp_after_write);
	if (r) {
		log_debug("metrics: write failed: %s", uv_err_name(r));
		free(w->head);
		free(w->body);
		free(w);
		mhttp_client_close(c);
	}
}

static void mhttp_handle(mhttp_client_t *c)
{
	char *eol = memchr(c->req, '\n', c->len);
	size_t line_len = eol ? (size_t)(eol - c->req) : c->len;
	if (strncmp(c->req, "GET ", 4) != 0 && strncmp(c->req, "HEAD ", 5) != 0) {
		mhttp_respond(c, "405 Method Not Allowed", "text/plain",
			      xstrdup("method not allowed\n"), 19);
		return;
	}
	c->head_only = c->req[0] == 'H';
	const char *path = c->req + (c->head_only ? 5 : 4);
	size_t plen = strcspn(path, " ?\r\n");
	if ((size_t)(path - c->req) + plen > line_len ||
	    plen != strlen("/metrics") || strncmp(path, "/metrics", plen) != 0) {
		mhttp_respond(c, "404 Not Found", "text/plain",
			      xstrdup("not found\n"), 10);
		return;
	}
	char *body;
	size_t len;
	if (metrics_render(c->h->m, &body, &len)) {
		mhttp_respond(c, "500 Internal Server Error", "text/plain",
			      xstrdup("error\n"), 6);
		return;
	}
	mhttp_respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
		      body, len);
}

static void mhttp_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	mhttp_client_t *c = handle->data;
	*buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof(c->req) - 1 - c->len));
}

static void mhttp_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	mhttp_client_t *c = stream->data;
	if (nread < 0) {
		mhttp_client_close(c);
		return;
	}
	if (nread == 0 || c->answered)
		return;
	c->len += (size_t)nread;
	c->req[c->len] = '\0';
	if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
		uv_read_stop(stream);
		mhttp_handle(c);
	} else if (c->len >= sizeof(c->req) - 1) {
		uv_read_stop(stream);
		mhttp_respond(c, "431 Request Header Fields Too Large",
			      "text/plain", xstrdup("too large\n"), 10);
	}
}

static void mhttp_on_timeout(uv_timer_t *t)
{
	mhttp_client_close(t->data);
}

static void mhttp_on_connection(uv_stream_t *server, int status)
{
	metrics_http_t *h = server->data;
	if (status < 0) {
		log_warn("metrics: accept: %s", uv_err_name(status));
		return;
	}
	mhttp_client_t *c = xcalloc(1, sizeof(*c));
	c->h = h;
	uv_tcp_init(h->loop, &c->tcp);
	uv_timer_init(h->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	h->n_clients++;
	c->next = h->clients;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &h->clients;
	h->clients = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) ||
	    uv_read_start((uv_stream_t *)&c->tcp, mhttp_alloc, mhttp_on_read)) {
		mhttp_client_close(c);
		return;
	}
	uv_timer_start(&c->timer, mhttp_on_timeout, METRICS_REQ_TIMEOUT_MS, 0);
}

int metrics_http_start(uv_loop_t *loop, metrics_t *m, const char *ip, int port,
		       metrics_http_t **outp)
{
	metrics_http_t *h = xcalloc(1, sizeof(*h));
	h->loop = loop;
	h->m = m;
	int r = net_listen_tcp(loop, &h->listener, ip, port, 64, mhttp_on_connection,
			       &h->port);
	if (r) {
		log_error("metrics: cannot listen on %s:%d: %s", ip, port, uv_strerror(r));
		uv_close((uv_handle_t *)&h->listener, mhttp_on_listener_closed);
		return r;
	}
	h->listener.data = h;
	log_info("metrics: listening on %s:%d", ip, h->port);
	*outp = h;
	return 0;
}

int metrics_http_port(const metrics_http_t *h)
{
	return h->port;
}

static void mhttp_maybe_free(metrics_http_t *h)
{
	/* The listener's close callback is the last one; free there. */
	if (h->closing && h->n_clients == 0 && !uv_is_closing((uv_handle_t *)&h->listener))
		uv_close((uv_handle_t *)&h->listener, mhttp_on_listener_closed);
}

void metrics_http_close(metrics_http_t *h)
{
	if (!h)
		return;
	h->closing = true;
	while (h->clients)
		mhttp_client_close(h->clients);
	mhttp_maybe_free(h);
}
