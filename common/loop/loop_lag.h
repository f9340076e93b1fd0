// SPDX-License-Identifier: MIT
// How late the event loop runs a periodic timer: lars_loop_lag_seconds (a
// histogram) and lars_loop_lag_max_seconds, for every daemon (service.c).
#pragma once

#include <stdint.h>

#include <uv.h>

#include "metrics.h"

/* The timer's period, and the millisecond a libuv timer may fire late
 * without anything stalling (its clock and epoll's timeout are in ms). */
#define LOOP_LAG_INTERVAL_MS 100
#define LOOP_LAG_GRANULARITY_NS 1000000u

/**
 * struct loop_lag - embed in the owner and put &timer into its handles
 * group (handles.h), which closes it. Private but for @timer.
 */
typedef struct loop_lag {
	uv_timer_t timer;
	uint64_t due_ns;  /* when libuv considers the timer due, uv_hrtime() scale */
	uint64_t max_ns;  /* the largest lag since loop_lag_start() */
	metrics_histogram_t *hist;
} loop_lag_t;

/** loop_lag_init() - the timer on @loop and the two metrics in @m; 0 or a libuv error. */
int loop_lag_init(loop_lag_t *l, uv_loop_t *loop, metrics_t *m);
/** loop_lag_start() - begin measuring (unref'd: it keeps no loop alive); 0 or a libuv error. */
int loop_lag_start(loop_lag_t *l);

/**
 * loop_lag_ns() - how late a timer due at @due_ns ran at @fire_ns, less the
 * timer's own granularity (LOOP_LAG_GRANULARITY_NS); 0 if not later than that.
 */
static inline uint64_t loop_lag_ns(uint64_t due_ns, uint64_t fire_ns)
{
	if (fire_ns <= due_ns + LOOP_LAG_GRANULARITY_NS)
		return 0;
	return fire_ns - due_ns - LOOP_LAG_GRANULARITY_NS;
}
