// SPDX-License-Identifier: MIT
// Counters, gauges and histograms in Prometheus text format (registry and
// rendering).
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct metrics metrics_t;

/** A counter: any thread may add to it (relaxed atomics). */
typedef struct metrics_counter {
	_Atomic uint64_t value;
} metrics_counter_t;

/** A histogram: any thread may observe into it (relaxed atomics). */
typedef struct metrics_histogram metrics_histogram_t;

/** A gauge read when /metrics is rendered (on the loop thread). */
typedef double (*metrics_gauge_fn)(void *arg);

int metrics_new(metrics_t **outp);
metrics_t *metrics_free(metrics_t *m);

/**
 * metrics_counter() - register (or find) a counter.
 * @name may carry labels: "lars_frames_bad_total{reason=\"too_large\"}".
 * Series of one family share HELP/TYPE and should be registered together.
 * Return: the counter, owned by @m (valid until metrics_free).
 */
metrics_counter_t *metrics_counter(metrics_t *m, const char *name, const char *help);
/**
 * metrics_level() - register a gauge kept as a value (metrics_add/metrics_sub),
 * owned by @m so it outlives whatever updates it.
 */
metrics_counter_t *metrics_level(metrics_t *m, const char *name, const char *help);
/** metrics_gauge() - register a gauge computed by @fn(@arg) at render time. */
void metrics_gauge(metrics_t *m, const char *name, const char *help,
		   metrics_gauge_fn fn, void *arg);

/**
 * metrics_histogram() - register (or find) a histogram of @n_bounds upper
 * bounds (strictly increasing, finite; "+Inf" is added). @name may carry
 * labels ("lars_pg_job_seconds{worker=\"dns-db\"}"): they go before le.
 * Return: the histogram, owned by @m (valid until metrics_free).
 */
metrics_histogram_t *metrics_histogram(metrics_t *m, const char *name, const char *help,
				       const double *bounds, size_t n_bounds);
/** metrics_observe() - count @v into @h (NULL: nothing); NaN is ignored. */
void metrics_observe(metrics_histogram_t *h, double v);

static inline void metrics_add(metrics_counter_t *c, uint64_t n)
{
	if (c)
		atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}
static inline void metrics_sub(metrics_counter_t *c, uint64_t n)
{
	if (c)
		atomic_fetch_sub_explicit(&c->value, n, memory_order_relaxed);
}
static inline void metrics_inc(metrics_counter_t *c)
{
	metrics_add(c, 1);
}
static inline uint64_t metrics_get(const metrics_counter_t *c)
{
	return c ? atomic_load_explicit(&c->value, memory_order_relaxed) : 0;
}

/**
 * metrics_summary() - "name=value ..." of the non-zero counters and levels
 * (gauges computed by callbacks and histograms left out: a histogram is a
 * dozen numbers, /metrics has them) into @out; truncated to fit.
 */
void metrics_summary(metrics_t *m, char *out, size_t cap);

/** metrics_render() - the text exposition into a new malloc'd buffer. */
int metrics_render(metrics_t *m, char **bufp, size_t *lenp);
