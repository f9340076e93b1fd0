// SPDX-License-Identifier: MIT
// The reporter's pending map: counts add up exactly, the latest status wins
// by the agent's ts, minutes stay apart up to PENDING_MINUTES and then fold
// without losing a count, merge-back after a failed batch is lossless.
#include "test.h"

#include "pending.h"

static uint64_t total(const report_entry_t *e)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < e->n_mins; i++)
		t += e->mins[i].succ + e->mins[i].err;
	return t;
}

static void test_coalesce_and_latest(void **state)
{
	pending_t p;
	pending_init(&p);
	report_key_t a = { 1, 1, 10, 80, 7 }, b = { 1, 1, 10, 81, 7 };
	pending_add(&p, &a, 5, 1, false, 1000, 1);
	pending_add(&p, &a, 3, 2, true, 1010, 2);
	pending_add(&p, &a, 9, 9, false, 1005, 3); /* older ts: counted, not latest */
	pending_add(&p, &b, 1, 0, false, 1000, 4);
	assert_int_equal(pending_keys(&p), 2);
	assert_int_equal(p.n_results, 4);
	assert_int_equal(pending_oldest_ms(&p), 1);
	size_t n;
	uint64_t results;
	report_entry_t *v = pending_take(&p, &n, &results);
	assert_int_equal(n, 2);
	assert_int_equal(results, 4);
	assert_int_equal(total(&v[0]), 5 + 1 + 3 + 2 + 9 + 9);
	assert_int_equal(v[0].succ, 3);
	assert_int_equal(v[0].err, 2);
	assert_true(v[0].overload);
	assert_int_equal(v[0].ts, 1010);
	assert_int_equal(pending_keys(&p), 0);
	assert_int_equal(pending_oldest_ms(&p), 0);

	/* A failed batch folds back in, on top of what arrived meanwhile. */
	pending_add(&p, &a, 1, 1, false, 2000, 50);
	for (size_t i = 0; i < n; i++)
		pending_merge(&p, &v[i]);
	free(v);
	v = pending_take(&p, &n, &results);
	assert_int_equal(n, 2);
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += total(&v[i]);
	assert_int_equal(sum, 29 + 1 + 2);
	assert_int_equal(v[0].ts, 2000);
	free(v);
	pending_deinit(&p);
}

static void test_minutes_fold_exactly(void **state)
{
	pending_t p;
	pending_init(&p);
	report_key_t k = { 2, 2, 1, 1, 1 };
	uint64_t sent = 0;
	/* Ten distinct minutes, in a scrambled order. */
	for (int i = 0; i < 10; i++) {
		uint32_t minute = (uint32_t)((i * 7) % 10) * 60 + 600000;
		pending_add(&p, &k, (uint32_t)i + 1, 1, false, minute + 5, (uint64_t)i);
		sent += (uint64_t)i + 2;
	}
	size_t n;
	uint64_t results;
	report_entry_t *v = pending_take(&p, &n, &results);
	assert_int_equal(n, 1);
	assert_true(v[0].n_mins <= PENDING_MINUTES);
	assert_int_equal(total(&v[0]), sent);
	/* The newest minute is kept apart. */
	bool newest = false;
	for (unsigned i = 0; i < v[0].n_mins; i++)
		newest |= v[0].mins[i].minute == 600000 + 9 * 60;
	assert_true(newest);
	/* Within the limit, every minute stays apart. */
	for (int i = 0; i < 3; i++)
		pending_add(&p, &k, 1, 0, false, 700000 + (uint32_t)i * 60, 0);
	free(v);
	v = pending_take(&p, &n, &results);
	assert_int_equal(v[0].n_mins, 3);
	free(v);
	pending_deinit(&p);
}

static void test_many_keys(void **state)
{
	pending_t p;
	pending_init(&p);
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 50000; i++) {
			report_key_t k = { i % 100, i / 100, i, 1, 1 };
			pending_add(&p, &k, 1, 0, false, 60, 0);
		}
	assert_int_equal(pending_keys(&p), 50000);
	size_t n;
	uint64_t results;
	report_entry_t *v = pending_take(&p, &n, &results);
	assert_int_equal(results, 150000);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(total(&v[i]), 3);
	free(v);
	pending_deinit(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_coalesce_and_latest),
		cmocka_unit_test(test_minutes_fold_exactly),
		cmocka_unit_test(test_many_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
