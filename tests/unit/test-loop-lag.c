// SPDX-License-Identifier: MIT
// common/loop/loop_lag.c: the lag arithmetic, and on a real loop: a callback
// that blocks the loop shows in lars_loop_lag_max_seconds and the
// histogram, and its busy part only when the callback ran on a CPU (one that
// sleeps stands for a thread waiting for a core); the lag timer alone keeps
// no loop running.
#include "test.h"

#include <string.h>
#include <time.h>

#include "handles.h"
#include "loop_lag.h"
#include "metrics.h"

#define STALL_MS 400

static void test_lag_arithmetic(void **state)
{
	/* On time, early, or within the timer's millisecond: no lag. */
	assert_int_equal(loop_lag_ns(5000000000u, 5000000000u), 0);
	assert_int_equal(loop_lag_ns(5000000000u, 4999000000u), 0);
	assert_int_equal(loop_lag_ns(5000000000u, 5000000000u + LOOP_LAG_GRANULARITY_NS), 0);
	/* Later: less that millisecond. */
	assert_int_equal(loop_lag_ns(5000000000u, 5250000000u),
			 250000000u - LOOP_LAG_GRANULARITY_NS);
	/* The busy part: no more than the lag, no more than the CPU time. */
	assert_int_equal(loop_lag_busy_ns(300, 1000), 300);
	assert_int_equal(loop_lag_busy_ns(300, 20), 20);
	assert_int_equal(loop_lag_busy_ns(0, 20), 0);
}

static int64_t thread_cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Spins until this thread has had @ms of CPU, however loaded the machine. */
static void busy_wait_ms(int ms)
{
	int64_t end = thread_cpu_ms() + ms;
	while (thread_cpu_ms() < end)
		;
}

/* Blocks without a CPU, as a thread waiting for a core does. */
static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts))
		;
}

typedef struct fixture {
	uv_timer_t stall;
	uv_timer_t stop;
	loop_lag_t lag;
	handles_t handles;
	bool sleeps;
} fixture_t;

static void on_stall(uv_timer_t *t)
{
	fixture_t *f = t->data;
	if (f->sleeps)
		sleep_ms(STALL_MS);
	else
		busy_wait_ms(STALL_MS);
}

static void on_stop(uv_timer_t *t)
{
	fixture_t *f = t->data;
	handles_close(&f->handles, NULL);
}

/* A value of @name in @text, or -1. */
static double sample(const char *text, const char *name)
{
	char key[128];
	snprintf(key, sizeof(key), "\n%s ", name);
	const char *p = strstr(text, key);
	return p ? strtod(p + strlen(key), NULL) : -1;
}

/* Runs one stall on a loop with the lag timer; the rendered metrics. */
static char *run_stall(bool sleeps)
{
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	metrics_t *m;
	assert_int_equal(metrics_new(&m), 0);
	fixture_t f = { .sleeps = sleeps };
	handles_init(&f.handles);
	assert_int_equal(loop_lag_init(&f.lag, &loop, m), 0);
	handles_add(&f.handles, &f.lag.timer);
	assert_int_equal(uv_timer_init(&loop, &f.stall), 0);
	handles_add(&f.handles, &f.stall);
	f.stall.data = &f;
	assert_int_equal(uv_timer_init(&loop, &f.stop), 0);
	handles_add(&f.handles, &f.stop);
	f.stop.data = &f;
	assert_int_equal(loop_lag_start(&f.lag), 0);
	/* Blocks the loop once; the lag timer falls due during the stall. */
	assert_int_equal(uv_timer_start(&f.stall, on_stall, 250, 0), 0);
	/* Time enough for the lag timer to run after it, even on a loaded machine. */
	assert_int_equal(uv_timer_start(&f.stop, on_stop, 250 + STALL_MS + 500, 0), 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);

	char *text;
	size_t len;
	assert_int_equal(metrics_render(m, &text, &len), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	metrics_free(m);
	return text;
}

static void test_stall_measured(void **state)
{
	char *text = run_stall(false);
	assert_non_null(strstr(text, "# TYPE lars_loop_lag_seconds histogram\n"));
	assert_non_null(strstr(text, "# TYPE lars_loop_lag_max_seconds gauge\n"));
	/* The timer was due at most one interval after the stall began. */
	double max = sample(text, "lars_loop_lag_max_seconds");
	double floor_s = (STALL_MS - LOOP_LAG_INTERVAL_MS - 1) / 1000.0;
	print_message("max lag %g s after a %d ms stall\n", max, STALL_MS);
	if (max < floor_s)
		fail_msg("max lag %g s after a %d ms stall, want >= %g:\n%s", max, STALL_MS,
			 floor_s, text);
	/* That observation is above 0.25 s, and counted. */
	double below = sample(text, "lars_loop_lag_seconds_bucket{le=\"0.25\"}");
	double count = sample(text, "lars_loop_lag_seconds_count");
	assert_true(count >= 1);
	assert_true(below < count);
	assert_true(sample(text, "lars_loop_lag_seconds_sum") >= floor_s);
	/* It was the loop's own work: the busy part is the lag, give or take
	 * the CPU the thread had before the stall within the window. */
	double busy = sample(text, "lars_loop_lag_busy_max_seconds");
	print_message("busy part %g s\n", busy);
	if (busy < floor_s)
		fail_msg("busy part %g s after a %d ms CPU stall, want >= %g:\n%s", busy,
			 STALL_MS, floor_s, text);
	assert_true(sample(text, "lars_loop_lag_busy_seconds_count") >= 1);
	free(text);
}

/* Late just as much, but off the CPU: no busy part to speak of. */
static void test_wait_not_busy(void **state)
{
	char *text = run_stall(true);
	double max = sample(text, "lars_loop_lag_max_seconds");
	double busy = sample(text, "lars_loop_lag_busy_max_seconds");
	print_message("max lag %g s, busy part %g s after a %d ms sleep\n", max, busy, STALL_MS);
	assert_true(max >= (STALL_MS - LOOP_LAG_INTERVAL_MS - 1) / 1000.0);
	/* The loop's own CPU in that window: its callbacks, a few ms at most. */
	if (busy >= 0.1)
		fail_msg("busy part %g s after sleeping %d ms:\n%s", busy, STALL_MS, text);
	free(text);
}

/* Only the (unref'd) lag timer left: uv_run returns at once. */
static void test_keeps_no_loop_alive(void **state)
{
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	metrics_t *m;
	assert_int_equal(metrics_new(&m), 0);
	fixture_t f;
	handles_init(&f.handles);
	assert_int_equal(loop_lag_init(&f.lag, &loop, m), 0);
	handles_add(&f.handles, &f.lag.timer);
	assert_int_equal(loop_lag_start(&f.lag), 0);
	int64_t t0 = test_now_ms();
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	/* A generous bound: returning is what matters, a 100 ms tick would not. */
	assert_true(test_now_ms() - t0 < 5000);
	handles_close(&f.handles, NULL);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lag_arithmetic),
		cmocka_unit_test(test_stall_measured),
		cmocka_unit_test(test_wait_not_busy),
		cmocka_unit_test(test_keeps_no_loop_alive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
