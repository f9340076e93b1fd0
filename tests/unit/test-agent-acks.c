// SPDX-License-Identifier: MIT
// The agent's unacknowledged reports on a fake clock (agent_svc/core/
// report_acks.c): an ack forgets every message up to its seq, acks for
// another agent or beyond what was sent are ignored, held messages go again
// oldest first after a reconnect and on the ack timeout, unchanged (seq, ts,
// results), new ones only after them; the bound drops the oldest and counts
// them; a reporter that never acks (an original) gets nothing twice.
#include "test.h"

#include <string.h>

#include "report_acks.h"

#define ID 0xfeedc0de12345678ull
#define TMO 5000
#define T0 1000000

static report_acks_t ra;

static int setup(void **state)
{
	ra_init(&ra, ID, 10, TMO);
	return 0;
}

static int teardown(void **state)
{
	ra_deinit(&ra);
	return 0;
}

/* A message of @n results for route 1/@cmdid, each host k with k+1 successes. */
static uint64_t send_msg(int32_t cmdid, size_t n, uint64_t now)
{
	lars_HostCallResult res[8] = { 0 };
	for (size_t k = 0; k < n; k++)
		res[k] = (lars_HostCallResult){ .ip = (int32_t)(100 + k), .port = cmdid,
						.succ = (uint32_t)k + 1, .err = 1,
						.lat_count = 1, .lat_sum_us = 700,
						.lat_buckets_count = 13 };
	assert_true(ra_can_send_new(&ra));
	uint64_t seq = ra_peek_seq(&ra);
	ra_sent(&ra, 1, cmdid, (uint32_t)(now / 1000), true, res, n, now);
	return seq;
}

/* Everything due now goes out; the seqs, in order, into @seqs. Return: how many. */
static size_t resend_all(uint64_t *seqs, size_t cap, uint64_t now)
{
	size_t k = 0;
	for (const ra_msg_t *m; (m = ra_next_resend(&ra));) {
		assert_true(k < cap);
		assert_false(ra_can_send_new(&ra));
		seqs[k++] = m->seq;
		ra_resent(&ra, now);
	}
	assert_true(ra_can_send_new(&ra) == ra.connected);
	return k;
}

/* The connection acks (a first ack of nothing new). */
static void make_acking(uint64_t now)
{
	assert_int_equal(ra_ack(&ra, ID, 0, now), RA_ACK_OK);
	assert_int_equal(ra.mode, RA_ACKING);
}

static void test_ack_forgets_up_to_seq(void **state)
{
	ra_connected(&ra, T0);
	assert_int_equal(send_msg(1, 2, T0), 1);
	assert_int_equal(send_msg(2, 2, T0), 2);
	assert_int_equal(send_msg(3, 2, T0), 3);
	assert_int_equal(ra_held(&ra), 3);
	assert_int_equal(ra.n_results, 6);
	assert_int_equal(ra_ack(&ra, ID, 2, T0 + 10), RA_ACK_OK);
	assert_int_equal(ra_held(&ra), 1);
	assert_int_equal(ra.n_results, 2);
	assert_int_equal(ra.cnt.acked, 2);
	assert_int_equal(ra.mode, RA_ACKING);
	/* An older ack again changes nothing. */
	assert_int_equal(ra_ack(&ra, ID, 1, T0 + 20), RA_ACK_OK);
	assert_int_equal(ra_held(&ra), 1);
	assert_int_equal(ra_ack(&ra, ID, 3, T0 + 30), RA_ACK_OK);
	assert_int_equal(ra_held(&ra), 0);
	assert_int_equal(ra.cnt.acked, 3);
	assert_int_equal(send_msg(1, 1, T0 + 40), 4); /* seq goes on */
}

static void test_foreign_and_future_acks_ignored(void **state)
{
	ra_connected(&ra, T0);
	send_msg(1, 1, T0);
	send_msg(2, 1, T0);
	assert_int_equal(ra_ack(&ra, ID ^ 1, 2, T0), RA_ACK_OTHER_AGENT);
	assert_int_equal(ra_ack(&ra, ID, 3, T0), RA_ACK_BEYOND); /* only 1, 2 sent */
	assert_int_equal(ra_held(&ra), 2);
	assert_int_equal(ra.cnt.ignored_acks, 2);
	assert_int_equal(ra.mode, RA_UNKNOWN); /* neither proves the connection acks */
	assert_int_equal(ra_ack(&ra, ID, 2, T0), RA_ACK_OK);
	assert_int_equal(ra_held(&ra), 0);
}

/* The @i-th held message (0: the oldest). */
static const ra_msg_t *held(size_t i)
{
	assert_true(i < ra.n);
	return &ra.v[(ra.head + i) % ra.cap];
}

static void test_reconnect_resends_in_order_unchanged(void **state)
{
	ra_connected(&ra, T0);
	make_acking(T0);
	send_msg(1, 1, T0);
	send_msg(2, 3, T0 + 1000);
	send_msg(3, 2, T0 + 2000);
	assert_int_equal(ra_ack(&ra, ID, 1, T0 + 2500), RA_ACK_OK);
	lars_HostCallResult r2[3];
	memcpy(r2, held(0)->res, sizeof(r2));
	ra_disconnected(&ra);
	assert_false(ra_can_send_new(&ra));
	assert_null(ra_next_resend(&ra)); /* not while away */
	ra_connected(&ra, T0 + 9000);
	assert_false(ra_can_send_new(&ra)); /* the held ones first */
	const ra_msg_t *m = ra_next_resend(&ra);
	assert_non_null(m);
	assert_int_equal(m->seq, 2);
	assert_int_equal(m->cmdid, 2);
	assert_int_equal(m->ts, (T0 + 1000) / 1000);
	assert_true(m->delta);
	assert_int_equal(m->n, 3);
	assert_memory_equal(m->res, r2, sizeof(r2));
	ra_resent(&ra, T0 + 9000);
	m = ra_next_resend(&ra);
	assert_int_equal(m->seq, 3);
	assert_int_equal(m->n, 2);
	ra_resent(&ra, T0 + 9000);
	assert_null(ra_next_resend(&ra));
	assert_true(ra_can_send_new(&ra));
	assert_int_equal(ra.cnt.resent, 2);
	assert_int_equal(send_msg(4, 1, T0 + 9001), 4);
	/* Lost again before this connection acked: still ours, resent again. */
	ra_disconnected(&ra);
	ra_connected(&ra, T0 + 12000);
	uint64_t seqs[8];
	assert_int_equal(resend_all(seqs, 8, T0 + 12000), 3);
	assert_int_equal(seqs[0], 2);
	assert_int_equal(seqs[1], 3);
	assert_int_equal(seqs[2], 4);
	assert_int_equal(ra_ack(&ra, ID, 4, T0 + 12100), RA_ACK_OK);
	assert_int_equal(ra_held(&ra), 0);
}

static void test_ack_timeout_resends(void **state)
{
	ra_connected(&ra, T0);
	make_acking(T0);
	send_msg(1, 1, T0 + 100);
	send_msg(2, 1, T0 + 200);
	assert_int_equal(ra_tick(&ra, T0 + 100 + TMO - 1), RA_TICK_NONE);
	assert_int_equal(ra_tick(&ra, T0 + 100 + TMO), RA_TICK_RESEND);
	assert_false(ra_can_send_new(&ra));
	uint64_t seqs[8];
	assert_int_equal(resend_all(seqs, 8, T0 + 100 + TMO), 2);
	assert_int_equal(seqs[0], 1);
	assert_int_equal(seqs[1], 2);
	/* The timeout runs again from the resend; an ack in time holds it off. */
	assert_int_equal(ra_tick(&ra, T0 + 100 + 2 * TMO - 1), RA_TICK_NONE);
	assert_int_equal(ra_ack(&ra, ID, 1, T0 + 100 + 2 * TMO - 1), RA_ACK_OK);
	assert_int_equal(ra_tick(&ra, T0 + 100 + 2 * TMO), RA_TICK_NONE);
	assert_int_equal(ra_tick(&ra, T0 + 100 + 3 * TMO - 1), RA_TICK_RESEND);
	assert_int_equal(resend_all(seqs, 8, T0 + 100 + 3 * TMO), 1);
	assert_int_equal(seqs[0], 2);
	assert_int_equal(ra.cnt.resent, 3);
	assert_int_equal(ra_ack(&ra, ID, 2, T0 + 100 + 3 * TMO), RA_ACK_OK);
	/* Nothing held: nothing to time out. */
	assert_int_equal(ra_tick(&ra, T0 + 100 + 10 * TMO), RA_TICK_NONE);
}

static void test_resend_not_restarted_while_stuck(void **state)
{
	ra_connected(&ra, T0);
	make_acking(T0);
	send_msg(1, 1, T0);
	send_msg(2, 1, T0);
	assert_int_equal(ra_tick(&ra, T0 + TMO), RA_TICK_RESEND);
	ra_resent(&ra, T0 + TMO); /* seq 1 out, seq 2 could not be sent */
	assert_int_equal(ra_next_resend(&ra)->seq, 2);
	assert_false(ra_can_send_new(&ra));
	assert_int_equal(ra_tick(&ra, T0 + 3 * TMO), RA_TICK_NONE); /* goes on from seq 2 */
	assert_int_equal(ra_next_resend(&ra)->seq, 2);
}

static void test_bound_drops_oldest_and_counts(void **state)
{
	ra_connected(&ra, T0); /* max 10 results */
	make_acking(T0);
	send_msg(1, 4, T0); /* calls: 2+3+4+5 = 14 */
	send_msg(2, 4, T0);
	assert_int_equal(ra.n_results, 8);
	send_msg(3, 4, T0); /* 12 > 10: seq 1 goes */
	assert_int_equal(ra_held(&ra), 2);
	assert_int_equal(ra.n_results, 8);
	assert_int_equal(held(0)->seq, 2);
	assert_int_equal(ra.cnt.dropped_msgs, 1);
	assert_int_equal(ra.cnt.dropped_calls, 14);
	send_msg(4, 8, T0); /* 16 > 10: both go */
	assert_int_equal(ra_held(&ra), 1);
	assert_int_equal(held(0)->seq, 4);
	assert_int_equal(ra.cnt.dropped_msgs, 3);
	assert_int_equal(ra.cnt.dropped_calls, 3 * 14);
	/* A drop while a resend is under way keeps the resend at the right one. */
	send_msg(5, 2, T0);
	ra_disconnected(&ra);
	ra_connected(&ra, T0 + 100);
	ra_resent(&ra, T0 + 100); /* seq 4 again */
	assert_int_equal(ra_next_resend(&ra)->seq, 5);
	assert_int_equal(ra_ack(&ra, ID, 4, T0 + 200), RA_ACK_OK);
	assert_int_equal(ra_next_resend(&ra)->seq, 5);
	ra_resent(&ra, T0 + 300);
	for (int i = 0; i < 99; i++) /* many messages: the ring grows and wraps */
		send_msg(1, 1, T0 + 300);
	assert_int_equal(ra_held(&ra), 10);
	assert_int_equal(ra.n_results, 10);
	assert_int_equal(held(9)->seq, ra_peek_seq(&ra) - 1);
	assert_int_equal(held(0)->seq, ra_peek_seq(&ra) - 10);
}

/* An original lars_reporter never acks: nothing held for long, nothing sent twice. */
static void test_never_acking_reporter_gets_nothing_twice(void **state)
{
	ra_connected(&ra, T0);
	assert_int_equal(ra_tick(&ra, T0 + 10 * TMO), RA_TICK_NONE); /* nothing sent yet */
	send_msg(1, 1, T0 + 10 * TMO);
	send_msg(2, 1, T0 + 11 * TMO);
	uint64_t t = T0 + 11 * TMO;
	assert_int_equal(ra_tick(&ra, T0 + 11 * TMO - 1), RA_TICK_NONE);
	assert_int_equal(ra_tick(&ra, t), RA_TICK_NOT_ACKING);
	assert_int_equal(ra_held(&ra), 0);
	/* From now on sent is stored on this connection; each new one is held
	 * until it has not acked for ack_timeout; never anything resent. */
	int n_judged = 0;
	for (int i = 0; i < 50; i++) {
		t += 1000;
		send_msg(1, 2, t);
		enum ra_event ev = ra_tick(&ra, t);
		assert_true(ev == RA_TICK_NONE || ev == RA_TICK_NOT_ACKING);
		n_judged += ev == RA_TICK_NOT_ACKING;
		assert_null(ra_next_resend(&ra));
		if (i % 10 == 9) {
			ra_disconnected(&ra);
			ra_connected(&ra, t);
			assert_null(ra_next_resend(&ra));
			assert_true(ra_can_send_new(&ra));
		}
	}
	assert_int_equal(n_judged, 4); /* each new connection once, 5 s after its first send */
	assert_int_equal(ra.cnt.resent, 0);
	assert_int_equal(ra.cnt.dropped_msgs, 0);
	/* A connection lost before showing either way: its messages are not resent. */
	ra_disconnected(&ra);
	ra_connected(&ra, t);
	send_msg(1, 1, t);
	ra_disconnected(&ra);
	ra_connected(&ra, t + 1);
	assert_null(ra_next_resend(&ra));
	assert_int_equal(ra_held(&ra), 0);
	assert_int_equal(ra.cnt.resent, 0);
}

static void test_late_ack_makes_it_acking(void **state)
{
	ra_connected(&ra, T0);
	send_msg(1, 1, T0);
	assert_int_equal(ra_tick(&ra, T0 + TMO), RA_TICK_NOT_ACKING);
	send_msg(2, 1, T0 + TMO + 1); /* not held */
	assert_int_equal(ra_ack(&ra, ID, 2, T0 + TMO + 2), RA_ACK_OK);
	assert_int_equal(ra.mode, RA_ACKING);
	send_msg(3, 1, T0 + TMO + 3);
	assert_int_equal(ra_held(&ra), 1);
	ra_disconnected(&ra);
	ra_connected(&ra, T0 + TMO + 4);
	assert_int_equal(ra_next_resend(&ra)->seq, 3);
}

/* After an acking connection a new one gets longer to show it acks; one that
 * does not is an original all the same, and gets at most the one resend. */
static void test_grace_after_acking_connection(void **state)
{
	ra_connected(&ra, T0);
	make_acking(T0);
	send_msg(1, 1, T0);
	ra_disconnected(&ra);
	ra_connected(&ra, T0 + 100);
	uint64_t seqs[4];
	assert_int_equal(resend_all(seqs, 4, T0 + 100), 1);
	send_msg(2, 1, T0 + 200);
	uint64_t t = T0 + 100;
	for (int i = 1; i < RA_GRACE_AFTER_ACKING; i++)
		assert_int_equal(ra_tick(&ra, t + (uint64_t)i * TMO), RA_TICK_NONE);
	assert_int_equal(ra_held(&ra), 2); /* still held, not resent on the timer */
	assert_int_equal(ra_tick(&ra, t + RA_GRACE_AFTER_ACKING * TMO), RA_TICK_NOT_ACKING);
	assert_int_equal(ra_held(&ra), 0);
	ra_disconnected(&ra);
	ra_connected(&ra, t + RA_GRACE_AFTER_ACKING * TMO + 1);
	assert_null(ra_next_resend(&ra));
	assert_int_equal(ra.cnt.resent, 1);
	/* Judged on this connection with the short timeout again. */
	send_msg(3, 1, t + RA_GRACE_AFTER_ACKING * TMO + 1);
	assert_int_equal(ra_tick(&ra, t + (RA_GRACE_AFTER_ACKING + 1) * TMO + 1),
			 RA_TICK_NOT_ACKING);
}

/* The agent's first connection lost before any ack: nothing known, not resent. */
static void test_first_connection_lost_before_any_ack(void **state)
{
	ra_connected(&ra, T0);
	send_msg(1, 1, T0);
	ra_disconnected(&ra);
	ra_connected(&ra, T0 + 100);
	assert_null(ra_next_resend(&ra));
	assert_int_equal(ra_held(&ra), 0);
	assert_int_equal(send_msg(1, 1, T0 + 100), 2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_ack_forgets_up_to_seq),
		T(test_foreign_and_future_acks_ignored),
		T(test_reconnect_resends_in_order_unchanged),
		T(test_ack_timeout_resends),
		T(test_resend_not_restarted_while_stuck),
		T(test_bound_drops_oldest_and_counts),
		T(test_never_acking_reporter_gets_nothing_twice),
		T(test_late_ack_makes_it_acking),
		T(test_grace_after_acking_connection),
		T(test_first_connection_lost_before_any_ack),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
