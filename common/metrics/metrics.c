// SPDX-License-Identifier: MIT
// Counters, gauges and histograms in Prometheus text format: the registry
// and its rendering, no event loop (the listener is loop/metrics_http.c).
#include "metrics.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

/*
 * Each bucket counts only the values that fell into it (not cumulative), so
 * an observation is one relaxed increment; rendering adds them up. _count is
 * that total too, so it always equals the +Inf bucket even while other
 * threads observe. The sum is a double kept as its bits, added by CAS.
 */
struct metrics_histogram {
	double *bounds;            /* n_bounds finite upper bounds, increasing */
	size_t n_bounds;
	_Atomic uint64_t *buckets; /* n_bounds + 1: the last one is +Inf */
	_Atomic uint64_t sum_bits;
};

typedef struct metric {
	struct metric *next;
	char *name;
	char *help;
	metrics_counter_t counter;
	metrics_gauge_fn gauge;
	void *arg;
	metrics_histogram_t *hist; /* a histogram: ->counter unused */
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
		if (x->hist) {
			free(x->hist->bounds);
			free(x->hist->buckets);
			free(x->hist);
		}
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
		if (!x->gauge && !x->level && !x->hist && strcmp(x->name, name) == 0)
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

/**
 * metrics_histogram() - register (or find) a histogram.
 * @m: the registry (NULL: returns NULL, and metrics_observe() ignores that).
 * @name: the family name, with labels or without; the series are
 *        family_bucket{labels,le=...}, family_sum{labels} and family_count{labels}.
 * @help: its HELP text.
 * @bounds: @n_bounds finite upper bounds, strictly increasing (copied); the
 *          +Inf bucket is always added.
 * @n_bounds: how many.
 *
 * A second registration of @name returns the first (its bounds stay).
 * Return: the histogram, owned by @m (valid until metrics_free).
 */
metrics_histogram_t *metrics_histogram(metrics_t *m, const char *name, const char *help,
				       const double *bounds, size_t n_bounds)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < n_bounds; i++)
		assert(isfinite(bounds[i]) && (i == 0 || bounds[i - 1] < bounds[i]));
	for (metric_t *x = m->head; x; x = x->next)
		if (x->hist && strcmp(x->name, name) == 0)
			return x->hist;
	metrics_histogram_t *h = xcalloc(1, sizeof(*h));
	h->bounds = xcalloc(n_bounds ? n_bounds : 1, sizeof(*h->bounds));
	if (n_bounds)
		memcpy(h->bounds, bounds, n_bounds * sizeof(*bounds));
	h->n_bounds = n_bounds;
	h->buckets = xcalloc(n_bounds + 1, sizeof(*h->buckets));
	metrics_add_metric(m, name, help)->hist = h;
	return h;
}

static double bits_to_double(uint64_t bits)
{
	double d;
	memcpy(&d, &bits, sizeof(d));
	return d;
}

static uint64_t double_to_bits(double d)
{
	uint64_t bits;
	memcpy(&bits, &d, sizeof(bits));
	return bits;
}

/**
 * metrics_observe() - count one value.
 * @h: the histogram, or NULL (nothing happens).
 * @v: the value; it goes into the first bucket whose bound is >= @v (the
 *     text format's "le"), or +Inf. NaN is ignored.
 *
 * Any thread may call it (relaxed atomics, like the counters).
 */
void metrics_observe(metrics_histogram_t *h, double v)
{
	if (!h || isnan(v))
		return;
	size_t i = 0;
	while (i < h->n_bounds && v > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old,
						      double_to_bits(bits_to_double(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

/* @v in the fewest digits that read back as the same double: "0.1", not
 * "0.10000000000000001" (bounds are labels, so they should look as written). */
static void format_shortest(char *out, size_t cap, double v)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, cap, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static size_t family_len(const char *name)
{
	const char *brace = strchr(name, '{');
	return brace ? (size_t)(brace - name) : strlen(name);
}

/* The samples of histogram @x; its labels ("name{worker=\"db\"}") go
 * before le in each bucket and on _sum and _count. */
static void render_histogram(FILE *f, const metric_t *x)
{
	const metrics_histogram_t *h = x->hist;
	size_t fl = family_len(x->name);
	const char *labels = x->name[fl] == '{' ? x->name + fl + 1 : "";
	int ll = *labels ? (int)strlen(labels) - 1 : 0; /* without the '}' */
	uint64_t total = 0;
	char le[32];
	for (size_t i = 0; i <= h->n_bounds; i++) {
		total += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		if (i < h->n_bounds)
			format_shortest(le, sizeof(le), h->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		fprintf(f, "%.*s_bucket{%.*s%sle=\"%s\"} %llu\n", (int)fl, x->name, ll, labels,
			ll ? "," : "", le, (unsigned long long)total);
	}
	const char *open = ll ? "{" : "", *close = ll ? "}" : "";
	fprintf(f, "%.*s_sum%s%.*s%s %.17g\n%.*s_count%s%.*s%s %llu\n", (int)fl, x->name, open,
		ll, labels, close,
		bits_to_double(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)),
		(int)fl, x->name, open, ll, labels, close, (unsigned long long)total);
}

void metrics_summary(metrics_t *m, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (metric_t *x = m->head; x && len + 1 < cap; x = x->next) {
		uint64_t v = metrics_get(&x->counter);
		if (x->gauge || x->hist || v == 0)
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
		if (x->hist) {
			size_t fl = family_len(x->name);
			fprintf(f, "# HELP %.*s %s\n# TYPE %.*s histogram\n", (int)fl, x->name,
				x->help, (int)fl, x->name);
			for (metric_t *y = x; y; y = y->next)
				if (y->hist && same_family(x, y))
					render_histogram(f, y);
			continue;
		}
		size_t fl = family_len(x->name);
		fprintf(f, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)fl, x->name,
			x->help, (int)fl, x->name,
			x->gauge || x->level ? "gauge" : "counter");
		for (metric_t *y = x; y; y = y->next)
			if (!y->hist && same_family(x, y))
				render_sample(f, y);
	}
	if (fclose(f))
		return -ENOMEM;
	*bufp = buf;
	*lenp = len;
	return 0;
}
