// SPDX-License-Identifier: MIT
// The reporter's pending map: counts add up exactly, the latest status wins
// by arrival (not by the agent's ts), minutes stay apart up to
// PENDING_MINUTES and then fold without losing a count, merge-back after a
// failed batch is lossless; batches are capped and leave oldest first; the
// batch size halves after a statement timeout and grows back.
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
	pending_add(&p, &a, 5, 1, false, 1000, 11, 1);
	pending_add(&p, &a, 9, 9, false, 4000000000u, 12, 2); /* a claimed far future... */
	pending_add(&p, &a, 3, 2, true, 1010, 13, 3); /* ...does not pin the status */
	pending_add(&p, &b, 1, 0, false, 1000, 14, 4);
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

	/* A failed batch folds back in, on top of what arrived meanwhile: the
	 * later arrival keeps the status, even with an older ts. */
	pending_add(&p, &a, 1, 1, false, 900, 50, 50);
	for (size_t i = 0; i < n; i++)
		pending_merge(&p, &v[i]);
	free(v);
	v = pending_take(&p, &n, &results);
	assert_int_equal(n, 2);
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += total(&v[i]);
	assert_int_equal(sum, 29 + 1 + 2);
	assert_int_equal(v[0].ts, 900);
	assert_int_equal(v[0].succ, 1);
	assert_int_equal(v[0].rx_us, 50);
	assert_int_equal(v[0].n_results, 4);
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
		pending_add(&p, &k, (uint32_t)i + 1, 1, false, minute + 5, (uint64_t)i, (uint64_t)i);
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
		pending_add(&p, &k, 1, 0, false, 700000 + (uint32_t)i * 60, 100, 0);
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
			pending_add(&p, &k, 1, 0, false, 60, 1, 0);
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

/* 2.6 M keys arrive in an outage: they leave in batches of at most
 * batch_keys, oldest first, and every result is handed out exactly once. */
static void test_batches_capped_oldest_first(void **state)
{
	pending_t p;
	pending_init(&p);
	const int N = 26000;
	for (int i = 0; i < N; i++) {
		report_key_t k = { 1, 1, i, 1, 1 };
		pending_add(&p, &k, 1, 0, false, 60, (uint64_t)i + 1, (uint64_t)i + 1);
	}
	pending_add(&p, &(report_key_t){ 1, 1, 0, 1, 1 }, 1, 0, false, 60, N + 1, N + 1);
	assert_int_equal(pending_keys(&p), N);
	assert_int_equal(p.n_results, N + 1);
	size_t n;
	uint64_t results, got_results = 0;
	int next = 0, n_batches = 0;
	/* The first batch moves the map to the backlog; new keys wait behind it. */
	report_entry_t *v = pending_take_batch(&p, 10000, &n, &results);
	pending_add(&p, &(report_key_t){ 2, 2, 0, 0, 0 }, 5, 0, false, 60, N + 2, N + 2);
	while (v) {
		assert_true(n >= 1 && n <= 10000);
		n_batches++;
		got_results += results;
		for (size_t i = 0; i < n; i++) {
			if (v[i].key.modid == 2) {
				assert_int_equal(next, N); /* only after the whole backlog */
				continue;
			}
			assert_int_equal(v[i].key.ip, next);
			next++;
		}
		free(v);
		v = pending_take_batch(&p, 10000, &n, &results);
	}
	assert_int_equal(n, 0);
	assert_int_equal(next, N);
	assert_int_equal(n_batches, 4); /* 10000 + 10000 + 6000, then the new key */
	assert_int_equal(got_results, N + 2);
	assert_int_equal(pending_keys(&p), 0);
	assert_int_equal(p.n_results, 0);
	assert_int_equal(pending_oldest_ms(&p), 0);
	pending_deinit(&p);
}

/* A batch that comes back is folded in again and counted again. */
static void test_batch_merge_back_counts(void **state)
{
	pending_t p;
	pending_init(&p);
	for (int i = 0; i < 100; i++)
		pending_add(&p, &(report_key_t){ 1, 1, i % 10, 1, 1 }, 2, 1, false, 60,
			    (uint64_t)i + 1, 5);
	size_t n;
	uint64_t results;
	report_entry_t *v = pending_take_batch(&p, 4, &n, &results);
	assert_int_equal(n, 4);
	assert_int_equal(results, 40);
	assert_int_equal(p.n_results, 60);
	assert_int_equal(pending_keys(&p), 6);
	assert_int_equal(pending_oldest_ms(&p), 5);
	for (size_t i = 0; i < n; i++)
		pending_merge(&p, &v[i]);
	free(v);
	assert_int_equal(pending_keys(&p), 10);
	assert_int_equal(p.n_results, 100);
	v = pending_take(&p, &n, &results);
	assert_int_equal(n, 10);
	assert_int_equal(results, 100);
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += total(&v[i]);
	assert_int_equal(sum, 300);
	free(v);
	pending_deinit(&p);
}

static void test_batch_cap_halves_and_grows(void **state)
{
	batch_cap_t c;
	batch_cap_init(&c, 1000);
	assert_int_equal(batch_cap_size(&c, 2000000), 1000);
	assert_int_equal(batch_cap_size(&c, 10), 10);
	/* A timed-out batch: retried in halves, at once (no backoff). */
	assert_false(batch_cap_done(&c, 1000, BATCH_TIMED_OUT, 2000000));
	assert_int_equal(batch_cap_size(&c, 2000000), 500);
	assert_false(batch_cap_done(&c, 500, BATCH_TIMED_OUT, 2000000));
	assert_int_equal(c.cur, 250);
	/* A smaller batch timing out does not raise the cap to its half. */
	assert_false(batch_cap_done(&c, 1000, BATCH_TIMED_OUT, 2000000));
	assert_int_equal(c.cur, 250);
	/* Down to one key; a single key still timing out waits for the backoff. */
	for (int i = 0; i < 20 && c.cur > 1; i++)
		assert_false(batch_cap_done(&c, c.cur, BATCH_TIMED_OUT, 2000000));
	assert_int_equal(c.cur, 1);
	assert_true(batch_cap_done(&c, 1, BATCH_TIMED_OUT, 2000000));
	assert_int_equal(c.cur, 1);
	/* Other failures: the same size again, after the backoff. */
	assert_true(batch_cap_done(&c, 1, BATCH_FAILED, 2000000));
	assert_int_equal(c.cur, 1);
	/* Grows back by doubling after BATCH_CAP_GROW_AFTER full batches stored. */
	for (int i = 0; i < BATCH_CAP_GROW_AFTER - 1; i++)
		assert_false(batch_cap_done(&c, 1, BATCH_STORED, 2000000));
	assert_int_equal(c.cur, 1);
	assert_false(batch_cap_done(&c, 1, BATCH_STORED, 2000000));
	assert_int_equal(c.cur, 2);
	/* A timeout resets the run of successes. */
	for (int i = 0; i < BATCH_CAP_GROW_AFTER - 1; i++)
		batch_cap_done(&c, 2, BATCH_STORED, 2000000);
	batch_cap_done(&c, 2, BATCH_TIMED_OUT, 2000000);
	assert_int_equal(c.cur, 1);
	batch_cap_done(&c, 1, BATCH_STORED, 2000000);
	assert_int_equal(c.cur, 1);
	/* Back to batch_keys once nothing is pending; never above it. */
	batch_cap_done(&c, 1, BATCH_STORED, 0);
	assert_int_equal(c.cur, 1000);
	for (int i = 0; i < 100; i++)
		batch_cap_done(&c, 1000, BATCH_STORED, 5000);
	assert_int_equal(c.cur, 1000);
	c.cur = 600;
	for (int i = 0; i < BATCH_CAP_GROW_AFTER; i++)
		batch_cap_done(&c, 600, BATCH_STORED, 5000);
	assert_int_equal(c.cur, 1000);
	/* A batch cancelled at shutdown never ran: it waits, and says nothing
	 * about the size (the run of successes goes on). */
	batch_cap_init(&c, 8);
	assert_false(batch_cap_done(&c, 8, BATCH_TIMED_OUT, 100));
	for (int i = 0; i < BATCH_CAP_GROW_AFTER - 1; i++)
		batch_cap_done(&c, 4, BATCH_STORED, 100);
	assert_true(batch_cap_done(&c, 4, BATCH_CANCELLED, 100));
	assert_int_equal(c.cur, 4);
	batch_cap_done(&c, 4, BATCH_STORED, 100);
	assert_int_equal(c.cur, 8);
}

/* The decisions together: a 26,000-key backlog with a "database" that times
 * out any batch over 3,000 keys is stored whole, each result once, in a
 * bounded number of attempts. Before batch_keys and halving, the one batch
 * of everything was retried whole forever. */
static void test_backlog_drains_under_timeout(void **state)
{
	pending_t p;
	pending_init(&p);
	batch_cap_t c;
	batch_cap_init(&c, 10000);
	const int N = 26000;
	for (int i = 0; i < N; i++)
		pending_add(&p, &(report_key_t){ 3, 3, i, 1, 1 }, 1, 1, false, 60, (uint64_t)i + 1, 1);
	uint64_t stored = 0, results_stored = 0;
	int attempts = 0, timeouts = 0;
	while (pending_keys(&p) && attempts < 1000) {
		size_t n;
		uint64_t results;
		report_entry_t *v = pending_take_batch(&p, batch_cap_size(&c, pending_keys(&p)),
						       &n, &results);
		attempts++;
		if (n > 3000) {
			timeouts++;
			for (size_t i = 0; i < n; i++)
				pending_merge(&p, &v[i]);
			assert_false(batch_cap_done(&c, n, BATCH_TIMED_OUT, pending_keys(&p)));
		} else {
			for (size_t i = 0; i < n; i++)
				stored += total(&v[i]);
			results_stored += results;
			batch_cap_done(&c, n, BATCH_STORED, pending_keys(&p));
		}
		free(v);
	}
	assert_int_equal(pending_keys(&p), 0);
	assert_int_equal(stored, 2ull * N);
	assert_int_equal(results_stored, N);
	assert_true(timeouts <= 4);
	assert_true(attempts < 100);
	assert_int_equal(c.cur, 10000); /* back to batch_keys once drained */
	pending_deinit(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_coalesce_and_latest),
		cmocka_unit_test(test_minutes_fold_exactly),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_batches_capped_oldest_first),
		cmocka_unit_test(test_batch_merge_back_counts),
		cmocka_unit_test(test_batch_cap_halves_and_grows),
		cmocka_unit_test(test_backlog_drains_under_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
