// SPDX-License-Identifier: MIT
// common/metrics/metrics.c: the text exposition of counters, gauges and
// histograms, checked byte for byte, and histogram observations from
// several threads at once.
#include "test.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "metrics.h"

static char *render(metrics_t *m)
{
	char *buf;
	size_t len;
	assert_int_equal(metrics_render(m, &buf, &len), 0);
	assert_int_equal(strlen(buf), len);
	return buf;
}

static double half(void *arg)
{
	return 0.5;
}

static void test_histogram_text(void **state)
{
	metrics_t *m;
	assert_int_equal(metrics_new(&m), 0);
	metrics_inc(metrics_counter(m, "lars_a_total", "A counter"));
	static const double bounds[] = { 0.001, 0.1, 0.25, 1, 2.5 };
	metrics_histogram_t *h = metrics_histogram(m, "lars_x_seconds", "How long", bounds, 5);
	assert_non_null(h);
	/* The same name again: the same histogram, not a second family. */
	assert_ptr_equal(metrics_histogram(m, "lars_x_seconds", "again", bounds, 2), h);
	metrics_gauge(m, "lars_g", "A gauge", half, NULL);

	/* Binary fractions, so the sum prints exactly. A value equal to a
	 * bound counts in that bucket ("le"); NaN is not counted. */
	metrics_observe(h, 0.0009765625);
	metrics_observe(h, 0.25);
	metrics_observe(h, 0.125);
	metrics_observe(h, 0.5);
	metrics_observe(h, 3);
	metrics_observe(h, NAN);
	metrics_observe(NULL, 1);

	char *text = render(m);
	assert_string_equal(text,
		"# HELP lars_a_total A counter\n"
		"# TYPE lars_a_total counter\n"
		"lars_a_total 1\n"
		"# HELP lars_x_seconds How long\n"
		"# TYPE lars_x_seconds histogram\n"
		"lars_x_seconds_bucket{le=\"0.001\"} 1\n"
		"lars_x_seconds_bucket{le=\"0.1\"} 1\n"
		"lars_x_seconds_bucket{le=\"0.25\"} 3\n"
		"lars_x_seconds_bucket{le=\"1\"} 4\n"
		"lars_x_seconds_bucket{le=\"2.5\"} 4\n"
		"lars_x_seconds_bucket{le=\"+Inf\"} 5\n"
		"lars_x_seconds_sum 3.8759765625\n"
		"lars_x_seconds_count 5\n"
		"# HELP lars_g A gauge\n"
		"# TYPE lars_g gauge\n"
		"lars_g 0.5\n");
	free(text);

	/* Left out of the log summary: only the counter is there. */
	char line[256];
	metrics_summary(m, line, sizeof(line));
	assert_string_equal(line, "lars_a_total=1");
	metrics_free(m);
}

static void test_empty_histogram(void **state)
{
	metrics_t *m;
	assert_int_equal(metrics_new(&m), 0);
	static const double bounds[] = { 0.5 };
	metrics_histogram(m, "lars_e", "Empty", bounds, 1);
	char *text = render(m);
	assert_string_equal(text,
		"# HELP lars_e Empty\n"
		"# TYPE lars_e histogram\n"
		"lars_e_bucket{le=\"0.5\"} 0\n"
		"lars_e_bucket{le=\"+Inf\"} 0\n"
		"lars_e_sum 0\n"
		"lars_e_count 0\n");
	free(text);
	metrics_free(m);
	assert_null(metrics_histogram(NULL, "lars_e", "x", bounds, 1));
}

#define N_THREADS 4
#define N_EACH 100000

static void *observe_many(void *arg)
{
	metrics_histogram_t *h = arg;
	for (int i = 0; i < N_EACH; i++)
		metrics_observe(h, (i & 1) ? 0.5 : 2);
	return NULL;
}

/* No observation is lost to a race: counts and the sum add up exactly. */
static void test_concurrent_observe(void **state)
{
	metrics_t *m;
	assert_int_equal(metrics_new(&m), 0);
	static const double bounds[] = { 1 };
	metrics_histogram_t *h = metrics_histogram(m, "lars_c", "Concurrent", bounds, 1);
	pthread_t t[N_THREADS];
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, observe_many, h), 0);
	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	char *text = render(m);
	char want[512];
	snprintf(want, sizeof(want),
		 "# HELP lars_c Concurrent\n"
		 "# TYPE lars_c histogram\n"
		 "lars_c_bucket{le=\"1\"} %d\n"
		 "lars_c_bucket{le=\"+Inf\"} %d\n"
		 "lars_c_sum %d\n"
		 "lars_c_count %d\n",
		 N_THREADS * N_EACH / 2, N_THREADS * N_EACH,
		 N_THREADS * (N_EACH / 2) * 5 / 2, N_THREADS * N_EACH);
	assert_string_equal(text, want);
	free(text);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_histogram_text),
		cmocka_unit_test(test_empty_histogram),
		cmocka_unit_test(test_concurrent_observe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
