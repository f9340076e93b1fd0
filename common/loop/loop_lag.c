// SPDX-License-Identifier: MIT
// How late the event loop runs a periodic timer.
//
// A one-shot timer is armed LOOP_LAG_INTERVAL_MS ahead again and again. libuv
// runs it once its cached clock (uv_now(), the loop's time at the start of
// the iteration, in ms) has reached uv_now() at arming + the interval, so
// that instant is when it was due. When the callback runs, uv_hrtime() says
// when it actually did: a callback that blocked the loop for a second (its
// own iteration's uv_now() never moved) shows as a second late, where
// uv_now() would have hidden most of it. The lag is that difference less
// the timer's millisecond granularity (LOOP_LAG_GRANULARITY_NS), so an idle
// loop reads 0 instead of a millisecond of rounding.
//
// A stall of S ms is seen as at least S - LOOP_LAG_INTERVAL_MS late: the
// timer falls due at most one interval after the stall began.
//
// On a machine with more runnable threads than cores, the loop is also late
// when its thread waits for a core. The busy part tells the two apart: the
// thread's CPU time from arming to running the timer bounds how long its own
// callbacks can have blocked the loop, so min(lag, that CPU time) is the
// lateness the daemon caused itself. Tests judge a daemon's loop by it;
// operators read both (a large lag with a small busy part: the machine is
// overloaded, not the daemon).
#include "loop_lag.h"

#include <time.h>

#include "log.h"

static const double loop_lag_bounds[] = {
	0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};

static double loop_lag_gauge_max(void *arg)
{
	const loop_lag_t *l = arg;
	return (double)l->max_ns / 1e9;
}

static double loop_lag_gauge_busy_max(void *arg)
{
	const loop_lag_t *l = arg;
	return (double)l->busy_max_ns / 1e9;
}

/* The calling thread's CPU time; 0 where the clock is missing (busy = 0). */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int loop_lag_arm(loop_lag_t *l);

static void loop_lag_on_timer(uv_timer_t *t)
{
	loop_lag_t *l = t->data;
	uint64_t lag = loop_lag_ns(l->due_ns, uv_hrtime());
	uint64_t cpu = thread_cpu_ns();
	uint64_t busy = loop_lag_busy_ns(lag, cpu > l->cpu_ns ? cpu - l->cpu_ns : 0);
	if (lag > l->max_ns)
		l->max_ns = lag;
	if (busy > l->busy_max_ns)
		l->busy_max_ns = busy;
	metrics_observe(l->hist, (double)lag / 1e9);
	metrics_observe(l->busy, (double)busy / 1e9);
	int r = loop_lag_arm(l);
	if (r)
		log_warn("loop lag timer: %s; lars_loop_lag_seconds stops", uv_err_name(r));
}

/* Due when libuv will think so: its cached ms clock + the interval. */
static int loop_lag_arm(loop_lag_t *l)
{
	l->due_ns = (uv_now(l->timer.loop) + LOOP_LAG_INTERVAL_MS) * 1000000u;
	l->cpu_ns = thread_cpu_ns();
	return uv_timer_start(&l->timer, loop_lag_on_timer, LOOP_LAG_INTERVAL_MS, 0);
}

/**
 * loop_lag_init() - prepare the lag timer and register its metrics.
 * @l: embedded in its owner; the owner adds &@l->timer to its handles group
 *     on success and frees @l only after the timer's close.
 * @loop: the loop to watch.
 * @m: gets lars_loop_lag_seconds, lars_loop_lag_max_seconds and their busy
 *     parts (the gauges read @l: render only while @l lives).
 *
 * Return: 0, or a libuv error (nothing to close then).
 */
int loop_lag_init(loop_lag_t *l, uv_loop_t *loop, metrics_t *m)
{
	*l = (loop_lag_t){ 0 };
	int r = uv_timer_init(loop, &l->timer);
	if (r)
		return r;
	l->timer.data = l;
	l->hist = metrics_histogram(m, "lars_loop_lag_seconds",
				    "How late the event loop ran a 100 ms timer",
				    loop_lag_bounds,
				    sizeof(loop_lag_bounds) / sizeof(loop_lag_bounds[0]));
	metrics_gauge(m, "lars_loop_lag_max_seconds",
		      "The largest lars_loop_lag_seconds since the start", loop_lag_gauge_max, l);
	l->busy = metrics_histogram(m, "lars_loop_lag_busy_seconds",
				    "The part of lars_loop_lag_seconds the loop's thread spent "
				    "on a CPU (its own work, not waiting for a core)",
				    loop_lag_bounds,
				    sizeof(loop_lag_bounds) / sizeof(loop_lag_bounds[0]));
	metrics_gauge(m, "lars_loop_lag_busy_max_seconds",
		      "The largest lars_loop_lag_busy_seconds since the start",
		      loop_lag_gauge_busy_max, l);
	return 0;
}

/**
 * loop_lag_start() - start measuring, from the loop's current time (work
 * before this, such as a daemon's start, is not counted).
 * @l: initialised by loop_lag_init().
 *
 * The timer is unref'd: it never keeps the loop running, and closing its
 * handles group stops it.
 * Return: 0, or a libuv error.
 */
int loop_lag_start(loop_lag_t *l)
{
	uv_update_time(l->timer.loop);
	int r = loop_lag_arm(l);
	if (r == 0)
		uv_unref((uv_handle_t *)&l->timer);
	return r;
}
