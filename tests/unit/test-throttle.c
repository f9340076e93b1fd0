// SPDX-License-Identifier: MIT
// Login back-off on a fake clock: free failures, doubling waits with a cap,
// one check at a time, per-name slowing that never refuses a clean address,
// forgetting, bounded tables.
#include "test.h"

#include <stdio.h>

#include "throttle.h"

static const throttle_opts_t opts = { .addr_free = 3, .name_free = 4, .base_ms = 1000,
				      .max_ms = 8000, .forget_ms = 60000, .addr_slots = 8,
				      .name_slots = 4 };

/* One check from @addr for @name that fails (or succeeds) at @now. */
static int attempt(throttle_t *t, const char *addr, const char *name, bool ok, uint64_t now)
{
	uint64_t retry = 0;
	int r = throttle_ask(t, addr, name, now, &retry);
	if (r == THROTTLE_CHECK)
		throttle_done(t, addr, name, ok, now);
	return r;
}

static void test_address_backoff(void **state)
{
	throttle_t *t = throttle_new(&opts);
	uint64_t now = 1000000, retry = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(attempt(t, "10.0.0.1", NULL, false, now), THROTTLE_CHECK);
	/* After the free failures: 1 s, then 2, 4, 8, 8 (the cap). */
	uint64_t waits[] = { 1000, 2000, 4000, 8000, 8000 };
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(throttle_ask(t, "10.0.0.1", NULL, now, &retry), THROTTLE_WAIT_ADDR);
		assert_int_equal(retry, waits[i]);
		assert_int_equal(throttle_ask(t, "10.0.0.1", NULL, now + waits[i] - 1, &retry),
				 THROTTLE_WAIT_ADDR);
		assert_int_equal(retry, 1);
		now += waits[i];
		assert_int_equal(attempt(t, "10.0.0.1", NULL, false, now), THROTTLE_CHECK);
	}
	assert_int_equal(throttle_failures(t, "10.0.0.1"), 8);
	/* Another address is not affected. */
	assert_int_equal(attempt(t, "10.0.0.2", NULL, false, now), THROTTLE_CHECK);
	/* A success clears the address. */
	now += 8000;
	assert_int_equal(attempt(t, "10.0.0.1", NULL, true, now), THROTTLE_CHECK);
	assert_int_equal(throttle_failures(t, "10.0.0.1"), 0);
	assert_int_equal(attempt(t, "10.0.0.1", NULL, false, now), THROTTLE_CHECK);
	throttle_free(t);
}

static void test_one_check_at_a_time(void **state)
{
	throttle_t *t = throttle_new(&opts);
	uint64_t now = 5000, retry;
	/* Parallel guesses count while they run: no more than the free ones. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(throttle_ask(t, "10.0.0.1", NULL, now, &retry), THROTTLE_CHECK);
	assert_int_equal(throttle_ask(t, "10.0.0.1", NULL, now, &retry), THROTTLE_WAIT_ADDR);
	for (int i = 0; i < 3; i++)
		throttle_done(t, "10.0.0.1", NULL, false, now);
	now += 1000;
	assert_int_equal(throttle_ask(t, "10.0.0.1", NULL, now, &retry), THROTTLE_CHECK);
	assert_int_equal(throttle_ask(t, "10.0.0.1", NULL, now + 100000, &retry),
			 THROTTLE_WAIT_ADDR);
	throttle_abort(t, "10.0.0.1", now);
	assert_int_equal(throttle_failures(t, "10.0.0.1"), 3);
	throttle_free(t);
}

static void test_name_slows_failing_addresses_only(void **state)
{
	throttle_t *t = throttle_new(&opts);
	uint64_t now = 7000, retry;
	char addr[32];
	/* Four addresses fail once each for "alice": the name's free failures. */
	for (int i = 1; i <= 4; i++) {
		snprintf(addr, sizeof(addr), "10.0.1.%d", i);
		assert_int_equal(attempt(t, addr, "alice", false, now), THROTTLE_CHECK);
	}
	/* An address that failed waits for the name, below its own limit. */
	assert_int_equal(throttle_ask(t, "10.0.1.1", "alice", now, &retry), THROTTLE_WAIT_NAME);
	assert_int_equal(retry, 1000);
	/* Other names from it are not slowed by alice's record. */
	assert_int_equal(attempt(t, "10.0.1.1", "bob", false, now), THROTTLE_CHECK);
	/* A clean address is always checked: the operator gets in. */
	assert_int_equal(attempt(t, "10.0.9.9", "alice", true, now), THROTTLE_CHECK);
	/* After the name's wait, the failing address may try again. */
	assert_int_equal(attempt(t, "10.0.1.1", "alice", false, now + 1000), THROTTLE_CHECK);
	assert_int_equal(throttle_ask(t, "10.0.1.2", "alice", now + 1000, &retry),
			 THROTTLE_WAIT_NAME);
	assert_int_equal(retry, 2000);
	throttle_free(t);
}

static void test_forget_and_bounded(void **state)
{
	throttle_t *t = throttle_new(&opts);
	uint64_t now = 9000, retry;
	for (int i = 0; i < 6; i++)
		attempt(t, "10.0.0.1", NULL, false, now + (uint64_t)i * 20000);
	now += 5 * 20000;
	assert_int_equal(throttle_ask(t, "10.0.0.1", NULL, now, &retry), THROTTLE_WAIT_ADDR);
	/* Quiet for forget_ms: a fresh start. */
	now += 60000;
	assert_int_equal(attempt(t, "10.0.0.1", NULL, false, now), THROTTLE_CHECK);
	assert_int_equal(throttle_failures(t, "10.0.0.1"), 1);
	/* More addresses than slots: the oldest record goes, nothing breaks. */
	char addr[32];
	for (int i = 0; i < 50; i++) {
		snprintf(addr, sizeof(addr), "10.0.2.%d", i);
		assert_int_equal(attempt(t, addr, "alice", false, now + 1 + (uint64_t)i), THROTTLE_CHECK);
		assert_int_equal(throttle_failures(t, addr), 1);
	}
	throttle_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_backoff),
		cmocka_unit_test(test_one_check_at_a_time),
		cmocka_unit_test(test_name_slows_failing_addresses_only),
		cmocka_unit_test(test_forget_and_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
