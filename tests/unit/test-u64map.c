// SPDX-License-Identifier: MIT
// u64map against a plain array model: random puts, gets and deletes.
#include "test.h"

#include <stdbool.h>

#include "u64map.h"

static void test_model(void **state)
{
	enum { KEYS = 4096, OPS = 200000 };
	static uintptr_t model[KEYS]; /* 0 = absent */
	u64map_t m = U64MAP_INIT;
	uint64_t rng = 12345;
	size_t n = 0;

	for (int op = 0; op < OPS; op++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		size_t k = rng % KEYS;
		/* Keys collide in the low bits on purpose: k * 2^20. */
		uint64_t key = (uint64_t)k << 20;
		switch ((rng >> 32) % 3) {
		case 0:
			if (!model[k])
				n++;
			model[k] = (uintptr_t)op + 1;
			u64map_put(&m, key, (void *)model[k]);
			break;
		case 1:
			assert_ptr_equal(u64map_del(&m, key), (void *)model[k]);
			if (model[k])
				n--;
			model[k] = 0;
			break;
		default:
			assert_ptr_equal(u64map_get(&m, key), (void *)model[k]);
		}
		assert_int_equal(m.n, n);
	}
	for (size_t k = 0; k < KEYS; k++)
		assert_ptr_equal(u64map_get(&m, (uint64_t)k << 20), (void *)model[k]);
	size_t iter = 0, seen = 0;
	for (u64map_slot_t *s; (s = u64map_next(&m, &iter));)
		seen++;
	assert_int_equal(seen, n);
	u64map_deinit(&m);
}

static void test_key(void **state)
{
	assert_true(u64map_key(1, 2) != u64map_key(2, 1));
	assert_true(u64map_key(-1, 0) != u64map_key(0, -1));
	u64map_t m = U64MAP_INIT;
	assert_null(u64map_get(&m, 1));
	assert_null(u64map_del(&m, 1));
	u64map_put(&m, u64map_key(7, 3), &m);
	assert_ptr_equal(u64map_get(&m, u64map_key(7, 3)), &m);
	u64map_deinit(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
