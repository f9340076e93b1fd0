// SPDX-License-Identifier: MIT
// lars-dns's subscription index: one node per (connection, route) linked
// into both lists, so asking twice holds one node, a connection with many
// keys lets go of exactly its own, and a connection closing while its route
// is being pushed leaves the others' subscriptions whole.
#include "test.h"

#include "subs.h"

static void test_subscribe_twice_one_node(void **state)
{
	subs_t s;
	subs_init(&s, 100);
	int conn;
	subs_peer_t p;
	subs_peer_init(&p, &conn);
	assert_int_equal(subs_add(&s, &p, 1, 1), SUBS_ADDED);
	assert_int_equal(subs_add(&s, &p, 1, 1), 0);
	assert_int_equal(subs_add(&s, &p, 1, 1), 0);
	assert_int_equal(subs_count(&s, 1, 1), 1);
	assert_int_equal(subs_peer_count(&p), 1);
	assert_int_equal(s.n, 1);
	void *to[4];
	assert_int_equal(subs_collect(&s, 1, 1, to, 4), 1);
	assert_ptr_equal(to[0], &conn);
	/* Forgetting it once forgets it: no second node was left behind. */
	assert_true(subs_del(&s, &p, 1, 1));
	assert_false(subs_del(&s, &p, 1, 1));
	assert_int_equal(subs_count(&s, 1, 1), 0);
	assert_int_equal(subs_peer_deinit(&s, &p), 0);
	subs_deinit(&s);
}

/* 1,000 connections on 200 shared routes, 20 each: closing one takes its
 * 20 out of the routes' lists and nothing of the others. */
static void test_close_with_many_keys(void **state)
{
	enum { PEERS = 1000, ROUTES = 200, PER = 20, BIG = 10000 };
	subs_t s;
	subs_init(&s, BIG);
	static subs_peer_t p[PEERS];
	static int conn[PEERS];
	for (int i = 0; i < PEERS; i++) {
		subs_peer_init(&p[i], &conn[i]);
		for (int k = 0; k < PER; k++)
			assert_int_equal(subs_add(&s, &p[i], 1, (i + k * 7) % ROUTES), SUBS_ADDED);
	}
	assert_int_equal(s.n, PEERS * PER);
	size_t before = subs_count(&s, 1, 0);
	assert_true(before > 0);
	bool had0 = subs_has(&p[0], 1, 0);
	assert_int_equal(subs_peer_deinit(&s, &p[0]), PER);
	assert_int_equal(s.n, (PEERS - 1) * PER);
	assert_int_equal(subs_count(&s, 1, 0), before - had0);
	/* The rest close in turn; every list empties and goes. */
	for (int i = 1; i < PEERS; i++)
		assert_int_equal(subs_peer_deinit(&s, &p[i]), PER);
	assert_int_equal(s.n, 0);
	for (int r = 0; r < ROUTES; r++)
		assert_int_equal(subs_count(&s, 1, r), 0);
	assert_int_equal(s.keys_.n, 0);

	/* One connection with 10,000 keys lets go of all of them. */
	subs_peer_t big;
	subs_peer_init(&big, &conn[0]);
	for (int k = 0; k < BIG; k++)
		subs_add(&s, &big, 2, k);
	assert_int_equal(subs_peer_count(&big), BIG);
	assert_int_equal(subs_peer_deinit(&s, &big), BIG);
	assert_int_equal(s.n, 0);
	assert_int_equal(s.keys_.n, 0);
	subs_deinit(&s);
}

/* A push collects a route's subscribers, then sends; connections that close
 * meanwhile leave the list without touching the collected copy or the
 * subscriptions of those still open. */
static void test_close_during_fan_out(void **state)
{
	enum { N = 50 };
	subs_t s;
	subs_init(&s, 10);
	static subs_peer_t p[N];
	static int conn[N];
	for (int i = 0; i < N; i++) {
		subs_peer_init(&p[i], &conn[i]);
		subs_add(&s, &p[i], 9, 9);
		subs_add(&s, &p[i], 9, 10 + i);
	}
	void *to[N];
	assert_int_equal(subs_collect(&s, 9, 9, to, N), N);
	/* Every odd one closes while the push is half way. */
	size_t sent = 0;
	for (size_t j = 0; j < N; j++) {
		int i = (int)((int *)to[j] - conn);
		assert_true(i >= 0 && i < N);
		if (j == N / 2)
			for (int k = 1; k < N; k += 2)
				assert_int_equal(subs_peer_deinit(&s, &p[k]), 2);
		sent += !(j >= N / 2 && (i & 1));
	}
	assert_int_equal(sent, N / 2 + N / 4 + (N / 2) % 2);
	assert_int_equal(subs_count(&s, 9, 9), N / 2);
	for (int i = 0; i < N; i += 2) {
		assert_true(subs_has(&p[i], 9, 9));
		assert_true(subs_has(&p[i], 9, 10 + i));
	}
	for (int i = 1; i < N; i += 2)
		assert_int_equal(subs_count(&s, 9, 10 + i), 0);
	/* The next push sees only those left. */
	assert_int_equal(subs_collect(&s, 9, 9, to, N), N / 2);
	for (size_t j = 0; j < N / 2; j++)
		assert_int_equal(((int *)to[j] - conn) % 2, 0);
	for (int i = 0; i < N; i += 2)
		subs_peer_deinit(&s, &p[i]);
	assert_int_equal(s.n, 0);
	subs_deinit(&s);
}

/* At max_per_peer the least recently asked goes, and only that one. */
static void test_cap_drops_least_recent(void **state)
{
	subs_t s;
	subs_init(&s, 3);
	int conn;
	subs_peer_t p;
	subs_peer_init(&p, &conn);
	subs_add(&s, &p, 1, 1);
	subs_add(&s, &p, 1, 2);
	subs_add(&s, &p, 1, 3);
	subs_add(&s, &p, 1, 1); /* asked again: now the most recent */
	assert_int_equal(subs_add(&s, &p, 1, 4), SUBS_ADDED | SUBS_DROPPED | SUBS_FIRST_DROP);
	assert_false(subs_has(&p, 1, 2));
	assert_true(subs_has(&p, 1, 1));
	assert_int_equal(subs_add(&s, &p, 1, 5), SUBS_ADDED | SUBS_DROPPED);
	assert_false(subs_has(&p, 1, 3));
	assert_int_equal(s.n, 3);
	assert_int_equal(subs_peer_deinit(&s, &p), 3);
	subs_deinit(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subscribe_twice_one_node),
		cmocka_unit_test(test_close_with_many_keys),
		cmocka_unit_test(test_close_during_fan_out),
		cmocka_unit_test(test_cap_drops_least_recent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
