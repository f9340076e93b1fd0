// SPDX-License-Identifier: MIT
// How late the event loop runs a periodic timer: lars_loop_lag_seconds (a
// histogram) and lars_loop_lag_max_seconds, for every daemon (service.c);
// and how much of that lateness the loop's thread spent on a CPU, its own
// work rather than waiting for a core: lars_loop_lag_busy_seconds and
// lars_loop_lag_busy_max_seconds.
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
	uint64_t cpu_ns;  /* the loop thread's CPU time when the timer was armed */
	uint64_t busy_max_ns; /* the largest busy part since loop_lag_start() */
	metrics_histogram_t *hist;
	metrics_histogram_t *busy;
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

/**
 * loop_lag_busy_ns() - the part of @lag_ns the loop's own work can explain:
 * a thread that ran @cpu_ns on a CPU since the timer was armed blocked its
 * loop for at most that long, so the rest was spent waiting for a core (a
 * loaded machine). Return: the smaller of the two.
 */
static inline uint64_t loop_lag_busy_ns(uint64_t lag_ns, uint64_t cpu_ns)
{
	return lag_ns < cpu_ns ? lag_ns : cpu_ns;
}
