// SPDX-License-Identifier: MIT
// lars-reporter's flush policy on a fake clock: flushes on size and on the
// interval, in-flight limits, pausing the input at max_pending_keys and
// resuming once a batch drains it, a refused batch folded back and retried
// after the backoff (or at once in halves after a statement timeout), the
// database down for a while, and the shutdown flush; the fold-back of a
// refused batch in slices, with flushing, pausing and shutdown while it is
// partial. Batches are kept by the test as the DB worker would, and it
// decides how each one comes back: every count is stored exactly once.
#include "test.h"

#include <string.h>

#include "flush.h"

#define MAX_FLIGHT 256

/* What the loop file would carry out, kept for the assertions. */
typedef struct rig {
	flush_t f;
	flush_batch_t flight[MAX_FLIGHT]; /* submitted, not yet back */
	size_t n_flight;
	unsigned n_submits, n_pauses, n_resumes;
	size_t max_flight; /* most batches in flight at once */
	uint64_t sent, sent_results;     /* succ + err, results added */
	uint64_t stored, stored_results; /* of batches stored */
	uint64_t rx;                     /* receive order */
	bool manual_fold; /* the test steps the fold-back itself */
	unsigned n_fold_steps;
} rig_t;

static uint64_t batch_sum(const flush_batch_t *b)
{
	uint64_t s = 0;
	for (size_t i = 0; i < b->n; i++)
		for (unsigned m = 0; m < b->v[i].n_mins; m++)
			s += b->v[i].mins[m].succ + b->v[i].mins[m].err;
	return s;
}

static void rig_init(rig_t *t, size_t batch_size, size_t batch_keys, unsigned max_batches,
		     size_t max_pending)
{
	memset(t, 0, sizeof(*t));
	flush_cfg_t c = { .batch_size = batch_size, .batch_keys = batch_keys,
			  .max_batches = max_batches, .max_pending_keys = max_pending,
			  .seed = 42 };
	flush_init(&t->f, &c);
}

static void rig_deinit(rig_t *t)
{
	for (size_t i = 0; i < t->n_flight; i++)
		free(t->flight[i].v);
	flush_deinit(&t->f);
}

/* Carry out the actions after an event, as server.c's rep_act() does. */
static void rig_act(rig_t *t, uint64_t now)
{
	flush_batch_t b;
	enum flush_act a;
	while ((a = flush_next(&t->f, now, &b)) != FLUSH_ACT_NONE) {
		switch (a) {
		case FLUSH_ACT_SUBMIT:
			assert_true(t->n_flight < MAX_FLIGHT);
			assert_true(b.n > 0);
			t->flight[t->n_flight++] = b;
			t->n_submits++;
			if (t->n_flight > t->max_flight)
				t->max_flight = t->n_flight;
			break;
		case FLUSH_ACT_PAUSE:
			assert_true(t->f.paused);
			t->n_pauses++;
			break;
		case FLUSH_ACT_RESUME:
			assert_false(t->f.paused);
			t->n_resumes++;
			break;
		case FLUSH_ACT_NONE:
			break;
		}
	}
	assert_int_equal(t->f.n_batches, t->n_flight);
	size_t keys = 0;
	for (size_t i = 0; i < t->n_flight; i++)
		keys += t->flight[i].n;
	assert_int_equal(t->f.inflight_keys, keys);
}

/* A report with @n keys (@first..), each one result of @succ ok and 1 error. */
static void rig_report(rig_t *t, int first, int n, uint32_t succ, uint64_t now)
{
	for (int i = 0; i < n; i++) {
		report_key_t k = { 1, 2, first + i, 80, 9 };
		pending_add(&t->f.pending, &k, succ, 1, false, 1800000000, ++t->rx, now);
		t->sent += succ + 1;
		t->sent_results++;
	}
	flush_received(&t->f);
	rig_act(t, now);
}

static void rig_tick(rig_t *t, uint64_t now)
{
	flush_tick(&t->f);
	rig_act(t, now);
}

/*
 * Loop turns after an event, as server.c's idle handle runs them: a slice
 * of the fold-back of at most @budget keys each, then the actions, until
 * nothing is left to fold. Return: the slices.
 */
static unsigned rig_fold(rig_t *t, size_t budget, uint64_t now)
{
	unsigned n = 0;
	while (flush_folding(&t->f)) {
		size_t keys = flush_pending_keys(&t->f);
		size_t done = flush_fold_step(&t->f, budget);
		assert_true(done > 0 && done <= budget);
		assert_true(flush_pending_keys(&t->f) <= keys); /* merging never adds */
		rig_act(t, now);
		n++;
		assert_true(n < 1000000);
	}
	t->n_fold_steps += n;
	return n;
}

/* Batch @i in flight comes back with @o at @now. */
static enum flush_done rig_done(rig_t *t, size_t i, enum batch_outcome o, uint64_t now)
{
	assert_true(i < t->n_flight);
	flush_batch_t b = t->flight[i];
	memmove(&t->flight[i], &t->flight[i + 1], (t->n_flight - i - 1) * sizeof(b));
	t->n_flight--;
	if (o == BATCH_STORED) {
		t->stored += batch_sum(&b);
		t->stored_results += b.n_results;
	}
	enum flush_done d = flush_batch_done(&t->f, &b, o, now);
	assert_null(b.v);
	rig_act(t, now);
	if (!t->manual_fold)
		rig_fold(t, FLUSH_FOLD_BUDGET, now);
	return d;
}

static void rig_assert_all_stored(const rig_t *t)
{
	assert_int_equal(pending_keys(&t->f.pending), 0);
	assert_int_equal(flush_pending_keys(&t->f), 0);
	assert_false(flush_folding(&t->f));
	assert_int_equal(t->n_flight, 0);
	assert_int_equal(t->f.inflight_keys, 0);
	assert_int_equal(t->f.inflight_results, 0);
	assert_int_equal(t->stored, t->sent);
	assert_int_equal(t->stored_results, t->sent_results);
}

static void test_flush_on_size(void **state)
{
	rig_t t;
	rig_init(&t, 10, 100, 2, 1000);
	rig_report(&t, 0, 9, 1, 0);
	assert_int_equal(t.n_submits, 0); /* below batch_size: waits for the tick */
	rig_report(&t, 9, 1, 1, 1);
	assert_int_equal(t.n_submits, 1);
	assert_int_equal(t.flight[0].n, 10);
	assert_int_equal(t.f.inflight_keys, 10);
	assert_int_equal(pending_keys(&t.f.pending), 0);
	assert_int_equal(rig_done(&t, 0, BATCH_STORED, 5), FLUSH_DONE_STORED);
	assert_int_equal(t.n_submits, 1);
	rig_assert_all_stored(&t);
	rig_deinit(&t);
}

static void test_flush_on_interval(void **state)
{
	rig_t t;
	rig_init(&t, 10, 100, 2, 1000);
	rig_tick(&t, 200); /* nothing pending: nothing to do */
	assert_int_equal(t.n_submits, 0);
	rig_report(&t, 0, 3, 1, 250);
	rig_report(&t, 1, 3, 1, 260); /* two keys again: 4 distinct */
	assert_int_equal(t.n_submits, 0);
	rig_tick(&t, 400);
	assert_int_equal(t.n_submits, 1);
	assert_int_equal(t.flight[0].n, 4);
	assert_int_equal(t.flight[0].n_results, 6);
	rig_done(&t, 0, BATCH_STORED, 420);
	rig_assert_all_stored(&t);
	rig_deinit(&t);
}

/* At most max_batches in flight, each at most batch_keys; a batch that
 * comes back makes room for the next while batch_size keys wait. */
static void test_inflight_limit(void **state)
{
	rig_t t;
	rig_init(&t, 10, 5, 2, 1000);
	rig_report(&t, 0, 30, 1, 0);
	assert_int_equal(t.n_flight, 2);
	assert_int_equal(t.flight[0].n, 5);
	assert_int_equal(pending_keys(&t.f.pending), 20);
	rig_tick(&t, 200);
	assert_int_equal(t.n_flight, 2); /* full */
	rig_done(&t, 0, BATCH_STORED, 210);
	assert_int_equal(t.n_flight, 2); /* 20 pending >= batch_size: the next one */
	assert_int_equal(pending_keys(&t.f.pending), 15);
	rig_done(&t, 0, BATCH_STORED, 220);
	rig_done(&t, 0, BATCH_STORED, 230);
	assert_int_equal(t.n_flight, 2);
	assert_int_equal(pending_keys(&t.f.pending), 5);
	rig_done(&t, 0, BATCH_STORED, 240);
	assert_int_equal(t.n_flight, 1); /* 5 pending < batch_size: they wait for the tick */
	assert_int_equal(pending_keys(&t.f.pending), 5);
	rig_tick(&t, 400);
	assert_int_equal(t.n_flight, 2);
	rig_done(&t, 0, BATCH_STORED, 410);
	rig_done(&t, 0, BATCH_STORED, 420);
	assert_int_equal(t.max_flight, 2);
	rig_assert_all_stored(&t);
	rig_deinit(&t);
}

/* Pending over its limit pauses the input once; a batch that comes back
 * refused leaves it paused, one that drains it below 9/10 resumes it. */
static void test_backpressure(void **state)
{
	rig_t t;
	rig_init(&t, 1000, 40, 1, 100);
	rig_report(&t, 0, 99, 1, 0);
	assert_int_equal(t.n_pauses, 0);
	rig_report(&t, 99, 1, 1, 1);
	assert_int_equal(t.n_pauses, 1);
	assert_true(t.f.paused);
	rig_report(&t, 0, 5, 1, 2); /* already buffered on the socket: no second pause */
	assert_int_equal(t.n_pauses, 1);

	rig_tick(&t, 200);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(pending_keys(&t.f.pending), 60);
	assert_true(t.f.paused); /* resumed only when a batch comes back */

	/* Refused: folded back, 100 pending, still paused. */
	assert_int_equal(rig_done(&t, 0, BATCH_FAILED, 210), FLUSH_DONE_RETRY);
	assert_int_equal(pending_keys(&t.f.pending), 100);
	assert_true(t.f.paused);
	assert_int_equal(t.n_resumes, 0);

	rig_tick(&t, t.f.retry_at_ms);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(pending_keys(&t.f.pending), 60);
	rig_done(&t, 0, BATCH_STORED, t.f.retry_at_ms + 1);
	assert_int_equal(t.n_resumes, 1); /* 60 < 90 */
	assert_false(t.f.paused);

	/* The rest leaves on the ticks; nothing more to resume. */
	for (uint64_t now = 1000; t.n_flight || pending_keys(&t.f.pending); now += 200) {
		assert_true(now < 10000);
		rig_tick(&t, now);
		if (t.n_flight)
			rig_done(&t, 0, BATCH_STORED, now + 10);
	}
	assert_int_equal(t.n_pauses, 1);
	assert_int_equal(t.n_resumes, 1);
	rig_assert_all_stored(&t);
	rig_deinit(&t);
}

/* A refused batch comes back whole: nothing before the backoff, the same
 * counts after it (with what arrived meanwhile coalesced in), and the
 * backoff grows until a batch is stored. */
static void test_failed_batch_backoff(void **state)
{
	rig_t t;
	rig_init(&t, 10, 100, 2, 1000);
	rig_report(&t, 0, 10, 3, 0);
	assert_int_equal(t.n_flight, 1);
	uint64_t first = batch_sum(&t.flight[0]);
	assert_int_equal(first, 40);

	assert_int_equal(rig_done(&t, 0, BATCH_FAILED, 100), FLUSH_DONE_RETRY);
	assert_true(t.f.failing);
	uint64_t at = t.f.retry_at_ms;
	assert_true(at >= 100 + 100 && at <= 100 + 200); /* 200 ms, half of it jitter */
	assert_int_equal(pending_keys(&t.f.pending), 10);
	assert_int_equal(t.f.pending.n_results, 10);
	assert_int_equal(t.n_flight, 0); /* 10 >= batch_size, but it waits */

	rig_report(&t, 5, 10, 1, at - 50); /* 5 known keys, 5 new */
	rig_tick(&t, at - 1);
	assert_int_equal(t.n_flight, 0);
	rig_tick(&t, at);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n, 15);
	assert_int_equal(t.flight[0].n_results, 20);
	assert_int_equal(batch_sum(&t.flight[0]), first + 20);

	/* Refused again: the delay doubles. */
	rig_done(&t, 0, BATCH_FAILED, at + 10);
	uint64_t at2 = t.f.retry_at_ms;
	assert_true(at2 >= at + 10 + 200 && at2 <= at + 10 + 400);
	rig_tick(&t, at2);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(rig_done(&t, 0, BATCH_STORED, at2 + 5), FLUSH_DONE_STORED);
	assert_false(t.f.failing);
	assert_int_equal(t.f.retry_at_ms, 0);
	rig_assert_all_stored(&t);

	/* Stored resets the backoff: the next failure waits 200 ms again. */
	rig_report(&t, 100, 10, 1, at2 + 100);
	rig_done(&t, 0, BATCH_FAILED, at2 + 110);
	assert_true(t.f.retry_at_ms <= at2 + 110 + 200);
	rig_tick(&t, t.f.retry_at_ms);
	rig_done(&t, 0, BATCH_STORED, t.f.retry_at_ms + 1);
	rig_assert_all_stored(&t);
	rig_deinit(&t);
}

/* A statement timeout halves the batch and retries at once; a single key
 * that still times out waits for the backoff. */
static void test_timeout_halves(void **state)
{
	rig_t t;
	rig_init(&t, 10, 64, 2, 1000);
	rig_report(&t, 0, 64, 1, 0);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n, 64);

	assert_int_equal(rig_done(&t, 0, BATCH_TIMED_OUT, 30000), FLUSH_DONE_SPLIT);
	assert_int_equal(t.f.cap.cur, 32);
	assert_int_equal(t.f.retry_at_ms, 0);
	assert_false(t.f.failing);
	assert_int_equal(t.n_flight, 2); /* at once, in halves */
	assert_int_equal(t.flight[0].n, 32);
	assert_int_equal(t.flight[1].n, 32);

	assert_int_equal(rig_done(&t, 1, BATCH_TIMED_OUT, 60000), FLUSH_DONE_SPLIT);
	assert_int_equal(t.f.cap.cur, 16);
	assert_int_equal(t.n_flight, 2);
	assert_int_equal(t.flight[1].n, 16);
	rig_done(&t, 0, BATCH_STORED, 60001);
	assert_int_equal(t.n_flight, 2); /* 16 pending >= batch_size: they go */
	assert_int_equal(t.flight[1].n, 16);
	assert_int_equal(pending_keys(&t.f.pending), 0);
	rig_done(&t, 0, BATCH_STORED, 60002);
	assert_int_equal(t.f.cap.cur, 64); /* nothing pending: back to batch_keys */
	rig_done(&t, 0, BATCH_STORED, 60003);
	rig_assert_all_stored(&t);
	rig_deinit(&t);

	/* Down to one key that still times out: the database is slow, back off. */
	rig_init(&t, 1, 2, 1, 1000);
	rig_report(&t, 0, 1, 1, 0);
	assert_int_equal(t.flight[0].n, 1);
	assert_int_equal(rig_done(&t, 0, BATCH_TIMED_OUT, 100), FLUSH_DONE_RETRY);
	assert_true(t.f.retry_at_ms > 100);
	assert_int_equal(t.n_flight, 0);
	rig_tick(&t, t.f.retry_at_ms);
	rig_done(&t, 0, BATCH_STORED, t.f.retry_at_ms + 1);
	rig_assert_all_stored(&t);
	rig_deinit(&t);
}

/* The database down for 10 s under a steady stream: batches refused,
 * timed out or lost on a broken connection in turn, pending over its limit,
 * the input paused (no reports while it is), then everything stored once
 * the database is back, exactly once, and the input resumed. */
static void test_database_down(void **state)
{
	rig_t t;
	rig_init(&t, 50, 40, 2, 300);
	const enum batch_outcome down[3] = { BATCH_FAILED, BATCH_TIMED_OUT, BATCH_FAILED };
	unsigned n_down = 0, n_retry = 0;
	uint32_t seed = 1;
	uint64_t now;
	for (now = 0; now < 30000; now += 10) {
		bool up = now >= 10000;
		if (!t.f.paused && now < 15000 && now % 50 == 0) {
			seed = seed * 1103515245 + 12345;
			rig_report(&t, (int)(seed >> 16) % 2000, 20, (seed >> 8) % 5, now);
		}
		if (now % 200 == 0)
			rig_tick(&t, now);
		/* The oldest batch in flight comes back every 30 ms. */
		if (t.n_flight && now % 30 == 0) {
			enum flush_done d = rig_done(&t, 0, up ? BATCH_STORED : down[n_down++ % 3],
						     now);
			if (!up)
				assert_int_not_equal(d, FLUSH_DONE_STORED);
			if (d == FLUSH_DONE_RETRY)
				n_retry++;
		}
		assert_true(t.n_flight <= 2);
		if (now > 15000 && !t.n_flight && !pending_keys(&t.f.pending))
			break;
	}
	assert_true(now < 30000);
	assert_true(n_retry > 0);
	assert_true(t.n_pauses >= 1);
	assert_int_equal(t.n_resumes, t.n_pauses);
	assert_false(t.f.paused);
	assert_false(t.f.failing);
	rig_assert_all_stored(&t);
	rig_deinit(&t);
}

/* Shutdown: every flush takes all that is pending whatever is in flight, a
 * refused batch still waits for the backoff, a paused input stays paused,
 * and drained means everything stored. */
static void test_shutdown_flush(void **state)
{
	rig_t t;
	rig_init(&t, 1000, 10, 1, 20);
	rig_report(&t, 0, 35, 1, 0);
	assert_true(t.f.paused);
	rig_tick(&t, 200);
	assert_int_equal(t.n_flight, 1);
	flush_close(&t.f);
	rig_act(&t, 210);
	assert_int_equal(t.n_flight, 4); /* the in-flight limit is gone */
	assert_false(flush_drained(&t.f));

	rig_done(&t, 0, BATCH_STORED, 220);
	assert_int_equal(t.n_resumes, 0); /* closing: nothing is read any more */
	assert_int_equal(rig_done(&t, 0, BATCH_FAILED, 230), FLUSH_DONE_RETRY);
	assert_int_equal(t.n_flight, 2); /* the refused one waits */
	rig_done(&t, 0, BATCH_STORED, 240);
	rig_done(&t, 0, BATCH_STORED, 250);
	assert_false(flush_drained(&t.f));
	rig_tick(&t, t.f.retry_at_ms);
	assert_int_equal(t.n_flight, 1);
	rig_done(&t, 0, BATCH_STORED, t.f.retry_at_ms + 1);
	assert_true(flush_drained(&t.f));
	rig_assert_all_stored(&t);
	rig_deinit(&t);

	/* Out of time: flush_finish() stops the batches; those in flight come
	 * back cancelled and stay pending, counted once. */
	rig_init(&t, 1000, 10, 1, 1000);
	rig_report(&t, 0, 25, 1, 0);
	flush_close(&t.f);
	rig_act(&t, 10);
	assert_int_equal(t.n_flight, 3);
	rig_done(&t, 0, BATCH_STORED, 20);
	flush_finish(&t.f);
	assert_int_equal(rig_done(&t, 0, BATCH_CANCELLED, 30), FLUSH_DONE_RETRY);
	assert_int_equal(rig_done(&t, 0, BATCH_TIMED_OUT, 30), FLUSH_DONE_RETRY);
	assert_int_equal(t.n_flight, 0);
	rig_tick(&t, 100000);
	assert_int_equal(t.n_flight, 0);
	assert_int_equal(pending_keys(&t.f.pending), 15);
	assert_int_equal(t.stored + 15 * 2, t.sent);
	assert_false(flush_drained(&t.f));
	rig_deinit(&t);
}

/* ---- the fold-back of a refused batch, in slices ---- */

/* The sum of succ + err still pending, in the map and waiting to be folded. */
static uint64_t rig_pending_sum(const rig_t *t)
{
	const pending_t *p = &t->f.pending;
	uint64_t s = 0;
	for (size_t i = 0; i < p->n; i++)
		for (unsigned m = 0; m < p->v[i].n_mins; m++)
			s += p->v[i].mins[m].succ + p->v[i].mins[m].err;
	for (size_t i = p->bl_pos; i < p->bl_n; i++)
		for (unsigned m = 0; m < p->bl[i].n_mins; m++)
			s += p->bl[i].mins[m].succ + p->bl[i].mins[m].err;
	for (size_t b = 0; b < t->f.fold.n; b++) {
		const flush_batch_t *fb = &t->f.fold.v[b];
		for (size_t i = b ? 0 : t->f.fold.pos; i < fb->n; i++)
			for (unsigned m = 0; m < fb->v[i].n_mins; m++)
				s += fb->v[i].mins[m].succ + fb->v[i].mins[m].err;
	}
	return s;
}

/* Stored, in flight or pending: every count is somewhere, exactly once. */
static void rig_assert_conserved(const rig_t *t)
{
	uint64_t flight = 0, flight_results = 0;
	for (size_t i = 0; i < t->n_flight; i++) {
		flight += batch_sum(&t->flight[i]);
		flight_results += t->flight[i].n_results;
	}
	assert_int_equal(t->stored + flight + rig_pending_sum(t), t->sent);
	assert_int_equal(t->stored_results + flight_results + flush_pending_results(&t->f),
			 t->sent_results);
}

/* 10,000 keys refused: nothing is merged when the batch comes back, then
 * at most the budget a step; the totals count it all along, results arriving
 * meanwhile for the same keys coalesce with it, and it is stored once. */
static void test_fold_back_in_slices(void **state)
{
	rig_t t;
	rig_init(&t, 100000, 10000, 1, 1000000);
	t.manual_fold = true;
	rig_report(&t, 0, 10000, 2, 100);
	rig_tick(&t, 200);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n, 10000);
	assert_int_equal(rig_done(&t, 0, BATCH_FAILED, 210), FLUSH_DONE_RETRY);
	/* Queued whole: still pending for every decision, nothing merged yet. */
	assert_true(flush_folding(&t.f));
	assert_int_equal(pending_keys(&t.f.pending), 0);
	assert_int_equal(flush_pending_keys(&t.f), 10000);
	assert_int_equal(flush_pending_results(&t.f), 10000);
	assert_int_equal(flush_oldest_ms(&t.f), 100); /* when they arrived */
	rig_assert_conserved(&t);

	unsigned steps = 0;
	while (flush_folding(&t.f)) {
		size_t done = flush_fold_step(&t.f, 512);
		assert_true(done > 0 && done <= 512);
		rig_act(&t, 220);
		steps++;
		if (steps == 5) {
			/* Halfway: the same 100 keys and 100 new ones arrive. */
			rig_report(&t, 9900, 200, 1, 230);
			assert_int_equal(flush_pending_keys(&t.f), 10200);
		}
		assert_int_equal(t.n_flight, 0); /* the backoff holds */
		rig_assert_conserved(&t);
	}
	assert_int_equal(steps, (10000 + 511) / 512);
	assert_int_equal(flush_fold_step(&t.f, 512), 0);
	assert_int_equal(pending_keys(&t.f.pending), 10100); /* coalesced */
	assert_int_equal(flush_pending_keys(&t.f), 10100);
	assert_int_equal(t.f.pending.n_results, 10200);

	for (uint64_t now = t.f.retry_at_ms; t.n_flight || flush_pending_keys(&t.f);
	     now += 200) {
		assert_true(now < 100000);
		rig_tick(&t, now);
		while (t.n_flight)
			rig_done(&t, 0, BATCH_STORED, now + 1);
	}
	rig_assert_all_stored(&t);
	rig_deinit(&t);
}

/* After a statement timeout the refused keys go out again at once, in
 * halves, straight from the fold-back queue and before anything newer;
 * what was merged meanwhile goes with the map. */
static void test_fold_back_handed_out_first(void **state)
{
	rig_t t;
	rig_init(&t, 10, 64, 1, 1000);
	t.manual_fold = true;
	rig_report(&t, 0, 64, 1, 0);
	assert_int_equal(t.flight[0].n, 64);
	rig_report(&t, 1000, 20, 1, 210); /* newer keys in the map */
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(rig_done(&t, 0, BATCH_TIMED_OUT, 30000), FLUSH_DONE_SPLIT);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n, 32); /* half, from the queue */
	for (size_t i = 0; i < 32; i++)
		assert_int_equal(t.flight[0].v[i].key.ip, (int32_t)i);
	assert_int_equal(t.f.fold.keys, 32);
	rig_assert_conserved(&t);
	/* One slice of 10 merged into the map before it comes back. */
	assert_int_equal(flush_fold_step(&t.f, 10), 10);
	rig_act(&t, 30001);
	assert_int_equal(t.f.fold.keys, 22);
	assert_int_equal(pending_keys(&t.f.pending), 30);
	rig_assert_conserved(&t);
	rig_done(&t, 0, BATCH_STORED, 30002);
	/* The rest of the queue first (22 keys, ips 42..63), then the map. */
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n, 22);
	assert_int_equal(t.flight[0].v[0].key.ip, 42);
	assert_false(flush_folding(&t.f));
	rig_done(&t, 0, BATCH_STORED, 30003);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n, 30); /* ips 1000..1019 and 32..41 */
	rig_done(&t, 0, BATCH_STORED, 30004);
	rig_assert_all_stored(&t);
	rig_deinit(&t);
}

/* Paused: a refused batch counts as pending until merged, so it does not
 * resume the input; once merged into the same keys, the fold-back's end
 * finds fewer than 9/10 and resumes. */
static void test_fold_back_resumes_when_merged(void **state)
{
	rig_t t;
	rig_init(&t, 1000, 50, 2, 100);
	t.manual_fold = true;
	rig_report(&t, 0, 100, 1, 0);
	assert_true(t.f.paused);
	rig_tick(&t, 200);
	assert_int_equal(t.n_flight, 2); /* 0..49 and 50..99 */
	rig_report(&t, 0, 50, 1, 210); /* buffered on the sockets before the pause */
	assert_int_equal(rig_done(&t, 0, BATCH_FAILED, 220), FLUSH_DONE_RETRY);
	assert_int_equal(flush_pending_keys(&t.f), 100); /* 50 in the map, 50 to fold */
	assert_true(t.f.paused);
	assert_int_equal(t.n_resumes, 0);
	assert_int_equal(rig_fold(&t, 16, 230), 4);
	assert_int_equal(flush_pending_keys(&t.f), 50); /* the same keys */
	assert_int_equal(t.n_resumes, 1);
	assert_false(t.f.paused);
	rig_assert_conserved(&t);
	rig_done(&t, 0, BATCH_STORED, 240);
	rig_tick(&t, t.f.retry_at_ms);
	rig_done(&t, 0, BATCH_STORED, t.f.retry_at_ms + 1);
	rig_assert_all_stored(&t);
	rig_deinit(&t);
}

/*
 * Shutdown while a fold-back is partial: the shutdown flush takes the rest
 * of the queue first, then the map, and drained means all of it stored.
 * Out of time instead: what came back cancelled is folded at exit
 * (flush_fold_all) and counted exactly; and a queue never folded is freed.
 */
static void test_fold_back_at_shutdown(void **state)
{
	rig_t t;
	rig_init(&t, 100000, 1000, 1, 100000);
	t.manual_fold = true;
	rig_report(&t, 0, 3000, 1, 0);
	rig_tick(&t, 200);
	assert_int_equal(rig_done(&t, 0, BATCH_FAILED, 210), FLUSH_DONE_RETRY);
	assert_int_equal(flush_fold_step(&t.f, 300), 300);
	rig_act(&t, 220);
	assert_int_equal(t.n_flight, 0);
	flush_close(&t.f);
	assert_false(flush_drained(&t.f));
	rig_act(&t, 230);
	assert_int_equal(t.n_flight, 4); /* 700 left in the queue, then 2300 in the map */
	assert_int_equal(t.flight[0].n, 700);
	assert_int_equal(t.flight[0].v[0].key.ip, 300);
	assert_int_equal(t.flight[1].n + t.flight[2].n + t.flight[3].n, 2300);
	assert_false(flush_folding(&t.f));
	rig_assert_conserved(&t);
	while (t.n_flight) {
		assert_false(flush_drained(&t.f));
		rig_done(&t, 0, BATCH_STORED, 240);
	}
	assert_true(flush_drained(&t.f));
	rig_assert_all_stored(&t);
	rig_deinit(&t);

	/* Out of time: batches come back cancelled after flush_finish() and
	 * are not folded by the loop any more; the exit count folds them. */
	rig_init(&t, 100000, 1000, 1, 100000);
	t.manual_fold = true;
	rig_report(&t, 0, 2500, 1, 0);
	flush_close(&t.f);
	rig_act(&t, 10);
	assert_int_equal(t.n_flight, 3);
	rig_done(&t, 0, BATCH_STORED, 20);
	rig_report(&t, 1000, 10, 1, 25); /* arrived before the close, counted */
	flush_finish(&t.f);
	rig_done(&t, 0, BATCH_CANCELLED, 30);
	rig_done(&t, 0, BATCH_CANCELLED, 30);
	assert_int_equal(t.n_flight, 0);
	assert_int_equal(flush_pending_keys(&t.f), 1500 + 10); /* upper bound */
	rig_assert_conserved(&t);
	flush_fold_all(&t.f);
	assert_false(flush_folding(&t.f));
	assert_int_equal(pending_keys(&t.f.pending), 1500); /* the 10 coalesced */
	assert_int_equal(t.f.pending.n_results, 1510);
	assert_int_equal(t.stored + rig_pending_sum(&t), t.sent);
	assert_false(flush_drained(&t.f));
	rig_deinit(&t);

	/* Freed with a queue never folded (checked by -Db_sanitize=address). */
	rig_init(&t, 100000, 1000, 1, 100000);
	t.manual_fold = true;
	rig_report(&t, 0, 1500, 1, 0);
	rig_tick(&t, 200);
	rig_done(&t, 0, BATCH_FAILED, 210);
	assert_int_equal(flush_fold_step(&t.f, 10), 10);
	assert_true(flush_folding(&t.f));
	rig_deinit(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_on_size),
		cmocka_unit_test(test_flush_on_interval),
		cmocka_unit_test(test_inflight_limit),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_failed_batch_backoff),
		cmocka_unit_test(test_timeout_halves),
		cmocka_unit_test(test_database_down),
		cmocka_unit_test(test_shutdown_flush),
		cmocka_unit_test(test_fold_back_in_slices),
		cmocka_unit_test(test_fold_back_handed_out_first),
		cmocka_unit_test(test_fold_back_resumes_when_merged),
		cmocka_unit_test(test_fold_back_at_shutdown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
