// SPDX-License-Identifier: MIT
// common/loop/nofile.c: how far the open-file soft limit is raised for a
// connection limit, and when the hard limit is too low (warned about).
#include "test.h"

#include <sys/resource.h>

#include "nofile.h"

static void test_raised_to_need(void **state)
{
	/* The usual shell limits: soft 1024, hard 524288; 10,000 connections. */
	nofile_plan_t p = nofile_plan(1024, 524288, 10000);
	assert_int_equal(p.need, 10000 + NOFILE_MARGIN);
	assert_true(p.raise);
	assert_false(p.too_low);
	assert_int_equal(p.soft, 10000 + NOFILE_MARGIN);
}

static void test_enough_already(void **state)
{
	/* LimitNOFILE=65536 in the units: nothing to do, nothing lowered. */
	nofile_plan_t p = nofile_plan(65536, 65536, 10000);
	assert_false(p.raise);
	assert_false(p.too_low);
	assert_int_equal(p.soft, 65536);
	/* Exactly enough is enough. */
	p = nofile_plan(256 + NOFILE_MARGIN, 256 + NOFILE_MARGIN, 256);
	assert_false(p.raise);
	assert_false(p.too_low);
}

static void test_hard_limit_too_low(void **state)
{
	/* Raised as far as allowed, and warned about. */
	nofile_plan_t p = nofile_plan(1024, 4096, 10000);
	assert_true(p.raise);
	assert_true(p.too_low);
	assert_int_equal(p.soft, 4096);
	/* Already at the hard limit: only the warning. */
	p = nofile_plan(4096, 4096, 10000);
	assert_false(p.raise);
	assert_true(p.too_low);
	assert_int_equal(p.soft, 4096);
	/* A high soft limit is never lowered, even with a short hard one. */
	p = nofile_plan(20000, 20000, 1000000);
	assert_false(p.raise);
	assert_int_equal(p.soft, 20000);
}

static void test_infinite_hard(void **state)
{
	nofile_plan_t p = nofile_plan(1024, RLIM_INFINITY, 1000000);
	assert_true(p.raise);
	assert_false(p.too_low);
	assert_int_equal(p.soft, 1000000 + NOFILE_MARGIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raised_to_need),
		cmocka_unit_test(test_enough_already),
		cmocka_unit_test(test_hard_limit_too_low),
		cmocka_unit_test(test_infinite_hard),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
