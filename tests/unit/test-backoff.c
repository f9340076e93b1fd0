// SPDX-License-Identifier: MIT
// Backoff: grows exponentially, stays within [d/2, d], is capped, resets.
#include "test.h"

#include "backoff.h"

static void test_growth_jitter_cap(void **state)
{
	backoff_t b;
	backoff_init(&b, 100, 5000, 42);
	uint32_t expect = 100;
	for (int i = 0; i < 20; i++) {
		uint32_t d = backoff_next(&b);
		assert_in_range(d, expect / 2, expect);
		expect = expect * 2 > 5000 ? 5000 : expect * 2;
	}
	backoff_reset(&b);
	assert_in_range(backoff_next(&b), 50, 100);
}

static void test_jitter_spreads(void **state)
{
	/* Peers that fail together do not retry in lockstep. */
	uint32_t seen[8];
	for (int s = 0; s < 8; s++) {
		backoff_t b;
		backoff_init(&b, 1000, 1000, (uint64_t)s * 7919 + 1);
		seen[s] = backoff_next(&b);
	}
	int distinct = 0;
	for (int i = 0; i < 8; i++) {
		int dup = 0;
		for (int j = 0; j < i; j++)
			dup |= seen[j] == seen[i];
		distinct += !dup;
	}
	assert_true(distinct >= 6);
}

static void test_no_overflow(void **state)
{
	backoff_t b;
	backoff_init(&b, 1, UINT32_MAX, 1);
	for (int i = 0; i < 100; i++)
		assert_true(backoff_next(&b) <= UINT32_MAX);
	backoff_init(&b, 0, 0, 0); /* degenerate settings stay sane */
	assert_in_range(backoff_next(&b), 0, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_growth_jitter_cap),
		cmocka_unit_test(test_jitter_spreads),
		cmocka_unit_test(test_no_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
