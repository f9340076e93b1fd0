// SPDX-License-Identifier: MIT
// The agent's route table (bounded, LRU eviction of idle routes, chunked
// ticks) and its report buffer (coalesced, grouped per route, bounded).
#include "test.h"

#include <errno.h>

#include "keyset.h"
#include "report_buf.h"
#include "route_table.h"
#include "tokens.h"

static lb_cfg_t cfg;

static void test_lru_eviction(void **state)
{
	route_table_t t;
	lb_cfg_defaults(&cfg);
	rt_init(&t, 3, 15000, &cfg);
	assert_non_null(rt_create(&t, 1, 1, 0));
	assert_non_null(rt_create(&t, 1, 2, 0));
	assert_non_null(rt_create(&t, 1, 3, 0));
	/* Full, and everything was used just now: refused. */
	assert_null(rt_create(&t, 1, 4, 1000));
	/* 1/1 used again at 10 s; at 16 s the least recently used (1/2) goes. */
	assert_non_null(rt_find(&t, 1, 1, 10000));
	assert_non_null(rt_create(&t, 1, 4, 16000));
	assert_null(rt_peek(&t, 1, 2));
	assert_non_null(rt_peek(&t, 1, 1));
	assert_int_equal(rt_size(&t), 3);
	assert_int_equal(t.n_evicted, 1);
	rt_deinit(&t);
}

static int n_changed;
static void count_change(rt_entry_t *e, void *user)
{
	n_changed++;
}

static void test_tick_in_chunks(void **state)
{
	route_table_t t;
	lb_cfg_defaults(&cfg);
	rt_init(&t, 1000, 0, &cfg);
	const lars_HostInfo h = { 1, 1 };
	for (int i = 0; i < 100; i++) {
		rt_entry_t *e = rt_create(&t, 1, i, 0);
		lb_update(&e->lb, &h, 1, 0);
		for (int k = 0; k < 15; k++)
			lb_report(&e->lb, 1, 1, false, 0); /* overloaded at 0 */
	}
	/* overload_timeout passed: 100 routes change, 30 per call. */
	n_changed = 0;
	for (int call = 0; call < 4; call++)
		rt_tick(&t, 15000, 30, count_change, NULL);
	assert_int_equal(n_changed, 100);
	rt_deinit(&t);
}

static void test_report_buf(void **state)
{
	report_buf_t b;
	rb_init(&b, 3);
	assert_int_equal(rb_add(&b, 1, 1, 10, 80, 1, 0), 0);
	assert_int_equal(rb_add(&b, 1, 1, 10, 80, 0, 1), 0); /* coalesced */
	assert_int_equal(rb_add(&b, 1, 1, 11, 80, 1, 0), 0);
	assert_int_equal(rb_add(&b, 2, 1, 10, 80, 5, 0), 0);
	assert_int_equal(rb_add(&b, 3, 1, 10, 80, 7, 0), -ENOSPC); /* bound */
	assert_int_equal(b.n_dropped, 7);
	size_t n;
	rb_route_t **v = rb_take_all(&b, &n);
	assert_int_equal(n, 2);
	assert_int_equal(b.n_hosts, 0);
	size_t hosts = 0;
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		size_t iter = 0;
		for (u64map_slot_t *s; (s = u64map_next(&v[i]->hosts, &iter));) {
			rb_counts_t *c = s->value;
			total += c->succ + c->err;
			hosts++;
		}
	}
	assert_int_equal(hosts, 3);
	assert_int_equal(total, 8);
	/* Not sent: back in, coalesced with what came meanwhile. */
	rb_add(&b, 2, 1, 10, 80, 1, 0);
	for (size_t i = 0; i < n; i++)
		rb_put_back(&b, v[i]);
	free(v);
	assert_int_equal(b.n_hosts, 3);
	v = rb_take_all(&b, &n);
	for (size_t i = 0; i < n; i++) {
		if (v[i]->modid == 2) {
			rb_counts_t *c = u64map_get(&v[i]->hosts, (uint64_t)10 << 32 | 80);
			assert_int_equal(c->succ, 6);
		}
		rb_route_free(v[i]);
	}
	free(v);
	rb_deinit(&b);
}

static int n_ks_evicted;
static int32_t last_evicted;
static void on_ks_evict(ks_entry_t *k, void *user)
{
	n_ks_evicted++;
	last_evicted = k->cmdid;
}

static void test_keyset_bounded_lru(void **state)
{
	keyset_t ks;
	ks_init(&ks, 3);
	ks.on_evict = on_ks_evict;
	ks_put(&ks, 1, 1, KS_PENDING, 0);
	ks_put(&ks, 1, 2, KS_PENDING, 0);
	ks_put(&ks, 1, 3, KS_ABSENT, 0);
	assert_non_null(ks_find(&ks, 1, 1)); /* asked again: 1/2 is now the oldest */
	ks_put(&ks, 1, 4, KS_PENDING, 10);
	assert_int_equal(ks_size(&ks), 3);
	assert_int_equal(n_ks_evicted, 1);
	assert_int_equal(last_evicted, 2);
	assert_null(ks_peek(&ks, 1, 2));
	/* Put on a known key updates it in place. */
	ks_entry_t *k = ks_put(&ks, 1, 3, KS_NO_ROOM, 20);
	assert_int_equal(k->state, KS_NO_ROOM);
	assert_int_equal(k->since_ms, 20);
	assert_int_equal(ks_size(&ks), 3);
	/* A million made-up keys: still three, one eviction per key over. */
	for (int i = 0; i < 1000000; i++)
		ks_put(&ks, 9, i, KS_PENDING, 30);
	assert_int_equal(ks_size(&ks), 3);
	assert_int_equal(ks.n_evicted, 1 + 1000000);
	ks_del(&ks, ks_peek(&ks, 9, 999999));
	assert_int_equal(ks_size(&ks), 2);
	ks_clear(&ks);
	assert_int_equal(ks_size(&ks), 0);
	ks_put(&ks, 2, 2, KS_ABSENT, 40); /* usable after a clear */
	assert_non_null(ks_peek(&ks, 2, 2));
	ks_deinit(&ks);
}

static void test_tokens(void **state)
{
	tokens_t t;
	tokens_init(&t, 100, 10, 1000); /* 100 a second, 10 saved up */
	int n = 0;
	for (int i = 0; i < 50; i++)
		n += tokens_take(&t, 1000);
	assert_int_equal(n, 10);
	/* 100 ms later: 10 more, never more than the burst. */
	n = 0;
	for (int i = 0; i < 50; i++)
		n += tokens_take(&t, 1100);
	assert_int_equal(n, 10);
	n = 0;
	for (int i = 0; i < 50; i++)
		n += tokens_take(&t, 100000);
	assert_int_equal(n, 10);
	/* 5 ms: half a token, none; 10 ms: one. */
	assert_false(tokens_take(&t, 100005));
	assert_true(tokens_take(&t, 100010));
	assert_false(tokens_take(&t, 100010));
	/* A clock that goes back takes nothing away and gives nothing. */
	assert_false(tokens_take(&t, 50000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_tick_in_chunks),
		cmocka_unit_test(test_report_buf),
		cmocka_unit_test(test_keyset_bounded_lru),
		cmocka_unit_test(test_tokens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
