// SPDX-License-Identifier: MIT
// Counters and gauges in Prometheus text format: the registry and its
// rendering, no event loop (the listener is loop/metrics_http.c).
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

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

/**
 * metrics_new() - an empty registry.
 * @outp: gets it (out of memory aborts in xcalloc, so this cannot fail).
 *
 * Return: 0. Free with metrics_free().
 */
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
