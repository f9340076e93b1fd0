// SPDX-License-Identifier: MIT
// Route propagation in lars-dns's core (issue 20.3) on a fake clock: pushes
// to agents that said AgentHello await their acknowledgement (latency, lag,
// a newer push covering an older one), original agents are counted apart,
// acks of answers or stale versions measure nothing, and the per-change
// counts come out once per change, the oldest slot reused.
#include "test.h"

#include <string.h>

#include "agents.h"

#define US(ms) ((uint64_t)(ms) * 1000)

static void test_push_ack(void **state)
{
	static dns_agents_t a;
	da_init(&a);
	da_conn_t ours, orig;
	da_conn_init(&ours, 1000);
	da_conn_init(&orig, 1000);
	lars_AgentHello h = { .agent_id = 7, .host_name = "web-1", .caller = 0x7f000001 };
	da_hello(&ours, &h);
	assert_true(ours.hello);
	assert_string_equal(ours.host_name, "web-1");

	da_pushed(&a, &ours, 1, 1, 10, US(100), 1000);
	da_pushed(&a, &orig, 1, 1, 10, US(100), 1000);
	assert_int_equal(da_pending(&ours), 1);
	assert_int_equal(da_pending(&orig), 0);
	assert_int_equal(da_lag_ms(&ours, US(350)), 250);
	/* A newer push before the ack: the lag counts from the first. */
	da_pushed(&a, &ours, 1, 1, 11, US(300), 1000);
	assert_int_equal(da_lag_ms(&ours, US(400)), 300);
	uint64_t lat = 0;
	/* The ack of the older version measures nothing; the newer one does. */
	assert_false(da_ack(&a, &ours, 1, 1, 10, US(410), 1001, &lat));
	assert_int_equal(da_pending(&ours), 1);
	assert_true(da_ack(&a, &ours, 1, 1, 11, US(420), 1001, &lat));
	assert_int_equal(lat, US(120));
	assert_int_equal(da_pending(&ours), 0);
	assert_int_equal(da_lag_ms(&ours, US(1000)), 0);
	assert_int_equal(ours.acked_version, 11);
	assert_int_equal(ours.last_ack_unix, 1001);
	/* An ack of an answer (nothing pushed), or from an original: nothing. */
	assert_false(da_ack(&a, &ours, 2, 2, 12, US(500), 1001, &lat));
	assert_false(da_ack(&a, &orig, 1, 1, 11, US(500), 1001, &lat));
	/* Versions not known (0): nothing tracked. */
	da_pushed(&a, &ours, 3, 3, 0, US(500), 1001);
	assert_int_equal(da_pending(&ours), 0);

	da_prop_t out[8];
	size_t n = da_take_dirty(&a, out, 8);
	assert_int_equal(n, 2);
	const da_prop_t *v10 = out[0].version == 10 ? &out[0] : &out[1];
	const da_prop_t *v11 = out[0].version == 10 ? &out[1] : &out[0];
	assert_int_equal(v10->pushed, 1);
	assert_int_equal(v10->no_ack, 1);
	assert_int_equal(v10->acked, 0);
	assert_int_equal(v11->pushed, 1);
	assert_int_equal(v11->acked, 1);
	assert_int_equal(v11->slowest_ms, 120);
	assert_int_equal(v11->pushed_unix, 1000);
	assert_int_equal(da_take_dirty(&a, out, 8), 0); /* taken */
	da_conn_deinit(&ours);
	da_conn_deinit(&orig);
	da_deinit(&a);
}

static void test_ring_reuse(void **state)
{
	static dns_agents_t a;
	da_init(&a);
	da_conn_t c;
	da_conn_init(&c, 0);
	lars_AgentHello h = { .agent_id = 1 };
	da_hello(&c, &h);
	/* More changes than slots: the oldest go, the newest are all kept. */
	for (int64_t v = 1; v <= DA_PROPS_MAX + 10; v++)
		da_pushed(&a, &c, (int32_t)v, 1, v, US(v), 0);
	static da_prop_t out[DA_PROPS_MAX];
	size_t n = da_take_dirty(&a, out, DA_PROPS_MAX);
	assert_int_equal(n, DA_PROPS_MAX);
	int64_t lo = INT64_MAX;
	for (size_t i = 0; i < n; i++)
		lo = out[i].version < lo ? out[i].version : lo;
	assert_int_equal(lo, 11);
	/* Acks of changes still held count; of reused slots, only the lag ends. */
	uint64_t lat;
	assert_true(da_ack(&a, &c, DA_PROPS_MAX + 10, 1, DA_PROPS_MAX + 10, US(DA_PROPS_MAX + 20), 0,
			   &lat));
	assert_true(da_ack(&a, &c, 1, 1, 1, US(DA_PROPS_MAX + 20), 0, &lat));
	n = da_take_dirty(&a, out, DA_PROPS_MAX);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].version, DA_PROPS_MAX + 10);
	assert_int_equal(out[0].acked, 1);
	da_conn_deinit(&c);
	da_deinit(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_ack),
		cmocka_unit_test(test_ring_reuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
