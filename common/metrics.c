// SPDX-License-Identifier: MIT
// Counters and gauges in Prometheus text format, and the GET /metrics listener.
// The listener is common/http.c (libmicrohttpd on the service's loop).
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "xalloc.h"

/* An idle scrape connection is closed after this long. */
#define METRICS_TIMEOUT_S 10

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

/* ---- the listener: GET /metrics on common/http.c ---- */

struct metrics_http {
	http_server_t *http;
	metrics_t *m;
};

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

void metrics_http_close(metrics_http_t *h)
{
	if (!h)
		return;
	/* Answers are synchronous: nothing is outstanding. */
	http_server_close(h->http);
	free(h);
}
