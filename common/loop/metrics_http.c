// SPDX-License-Identifier: MIT
// GET /metrics on common/loop/http.c (libmicrohttpd on the service's loop).
#include "metrics_http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "xalloc.h"

/* An idle scrape connection is closed after this long. */
#define METRICS_TIMEOUT_S 10

struct metrics_http {
	http_server_t *http;
	metrics_t *m;
};

static struct {
	const char *path; /* NULL: free */
	metrics_http_page_fn fn;
	void *arg;
} pages[METRICS_HTTP_PAGES_MAX];

int metrics_http_page_add(const char *path, metrics_http_page_fn fn, void *arg)
{
	metrics_http_page_del(path); /* added again: the newest wins */
	for (size_t i = 0; i < METRICS_HTTP_PAGES_MAX; i++) {
		if (!pages[i].path) {
			pages[i].path = path;
			pages[i].fn = fn;
			pages[i].arg = arg;
			return 0;
		}
	}
	return -ENOSPC;
}

void metrics_http_page_del(const char *path)
{
	for (size_t i = 0; i < METRICS_HTTP_PAGES_MAX; i++)
		if (pages[i].path && strcmp(pages[i].path, path) == 0)
			pages[i].path = NULL;
}

/* A page of metrics_http_page_add() at @path: answered, true; else false. */
static bool serve_page(http_req_t *req, const char *path)
{
	for (size_t i = 0; i < METRICS_HTTP_PAGES_MAX; i++) {
		if (!pages[i].path || strcmp(pages[i].path, path) != 0)
			continue;
		const char *ctype = "text/plain; charset=utf-8";
		char *body = NULL;
		size_t len = 0;
		int status = pages[i].fn(pages[i].arg, &ctype, &body, &len);
		if (!body) {
			http_respond(req, 500, "text/plain; charset=utf-8", "error\n", 6);
			return true;
		}
		http_respond_take(req, (unsigned)status, ctype, body, len);
		return true;
	}
	return false;
}

static void metrics_http_handle(http_req_t *req, void *arg)
{
	metrics_http_t *h = arg;
	const char *method = http_req_method(req);
	static const char text[] = "text/plain; charset=utf-8";

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		http_req_add_header(req, "Allow", "GET, HEAD");
		http_respond(req, 405, text, "method not allowed\n", 19);
		return;
	}
	if (strcmp(http_req_path(req), "/metrics") != 0) {
		if (!serve_page(req, http_req_path(req)))
			http_respond(req, 404, text, "not found\n", 10);
		return;
	}
	char *body;
	size_t len;
	if (metrics_render(h->m, &body, &len)) {
		http_respond(req, 500, text, "error\n", 6);
		return;
	}
	http_respond_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

static void metrics_http_on_closed(void *arg)
{
	free(arg);
}

/**
 * metrics_http_start() - serve GET /metrics of @m on @ip:@port.
 * @loop: the service's loop.
 * @m: the registry; must outlive the listener.
 * @ip: numeric address to bind.
 * @port: 0 for any free port (metrics_http_port() tells which).
 * @reuse_port: share the port (SO_REUSEPORT); else a taken port fails.
 * @outp: gets the listener, only on success.
 *
 * Return: 0, or a negative errno (logged; nothing left behind).
 */
int metrics_http_start(uv_loop_t *loop, metrics_t *m, const char *ip, int port,
		       bool reuse_port, metrics_http_t **outp)
{
	metrics_http_t *h = xcalloc(1, sizeof(*h));
	h->m = m;
	http_server_opts_t o = {
		.name = "metrics",
		.ip = ip,
		.port = port,
		.max_conns = 64,
		.timeout_s = METRICS_TIMEOUT_S,
		.request_timeout_s = METRICS_TIMEOUT_S,
		.reserve = 8, /* a scrape is served while slow clients wait */
		.reuse_port = reuse_port,
		.max_body = 0,
		.handler = metrics_http_handle,
		.arg = h,
		.on_closed = metrics_http_on_closed,
	};
	int r = http_server_start(loop, &o, &h->http);
	if (r) {
		free(h);
		return r;
	}
	*outp = h;
	return 0;
}

int metrics_http_port(const metrics_http_t *h)
{
	return http_server_port(h->http);
}

/**
 * metrics_http_close() - stop listening and close every client.
 * @h: the listener, or NULL. Freed once its server is (it answers nothing
 *     after this: requests now get 503).
 */
void metrics_http_close(metrics_http_t *h)
{
	if (h)
		http_server_close(h->http);
}
