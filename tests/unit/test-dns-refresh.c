// SPDX-License-Identifier: MIT
// lars-dns's refresh state machine on a fake clock: the first load (fail, or
// wait for the database with a capped backoff), the one immediate retry after
// a lost connection, NOTIFYs coalescing while a job runs, the poll fallback,
// the full reload, and shutdown.
#include "test.h"

#include "backoff.h"
#include "refresh.h"

#define POLL_MS 1000u
#define RELOAD_MS 300000u
#define SEED 42u

static refresh_cfg_t cfg(bool wait_for_db)
{
	return (refresh_cfg_t){ .poll_interval_ms = POLL_MS, .reload_interval_ms = RELOAD_MS,
				.wait_for_db = wait_for_db, .seed = SEED };
}

static void assert_submit(refresh_action_t a, enum refresh_job_kind kind)
{
	assert_true(a.flags & REFRESH_SUBMIT);
	assert_int_equal(a.job, kind);
}

/* A refresher that has served its first snapshot. */
static void loaded(refresh_t *r, bool wait_for_db)
{
	refresh_cfg_t c = cfg(wait_for_db);
	refresh_init(r, &c);
	assert_submit(refresh_start(r, 0), REFRESH_JOB_LOAD);
	refresh_action_t a = refresh_done(r, REFRESH_OK, 20);
	assert_int_equal(a.flags, REFRESH_SERVE | REFRESH_START);
}

static void test_first_load_serves(void **state)
{
	refresh_t r;
	refresh_cfg_t c = cfg(false);
	refresh_init(&r, &c);
	refresh_action_t a = refresh_start(&r, 1000);
	assert_int_equal(a.flags, REFRESH_SUBMIT);
	assert_int_equal(a.job, REFRESH_JOB_LOAD);
	assert_true(refresh_running(&r));
	a = refresh_done(&r, REFRESH_OK, 1250);
	/* Serve, start listening and arm the timers; nothing to push to yet. */
	assert_int_equal(a.flags, REFRESH_SERVE | REFRESH_START);
	assert_int_equal(a.took_ms, 250);
	assert_int_equal(a.poll_ms, POLL_MS);
	assert_int_equal(a.reload_ms, RELOAD_MS);
	assert_false(refresh_running(&r));

	/* Without a reload interval no reload timer is armed. */
	c.reload_interval_ms = 0;
	refresh_init(&r, &c);
	refresh_start(&r, 0);
	a = refresh_done(&r, REFRESH_OK, 1);
	assert_true(a.flags & REFRESH_START);
	assert_int_equal(a.reload_ms, 0);
}

static void test_first_load_fails_without_wait(void **state)
{
	refresh_t r;
	refresh_cfg_t c = cfg(false);
	refresh_init(&r, &c);
	refresh_start(&r, 0);
	refresh_action_t a = refresh_done(&r, REFRESH_LOST, 30);
	assert_int_equal(a.flags, REFRESH_FAILURE | REFRESH_FAIL_SERVICE);
	refresh_init(&r, &c);
	refresh_start(&r, 0);
	a = refresh_done(&r, REFRESH_FAILED, 30);
	assert_int_equal(a.flags, REFRESH_FAILURE | REFRESH_FAIL_SERVICE);
}

/*
 * --wait-for-db with the database down: every lost connection is retried
 * after the backoff (500 ms doubling to 10 s, half of it jitter), each retry
 * submits the next load, and the first one that succeeds is served.
 */
static void test_wait_for_db_retries_after_backoff(void **state)
{
	refresh_t r;
	refresh_cfg_t c = cfg(true);
	refresh_init(&r, &c);
	backoff_t expect;
	backoff_init(&expect, REFRESH_RETRY_BASE_MS, REFRESH_RETRY_MAX_MS, SEED);

	uint64_t now = 0;
	assert_submit(refresh_start(&r, now), REFRESH_JOB_LOAD);
	uint32_t cap = REFRESH_RETRY_BASE_MS;
	for (int i = 0; i < 8; i++) {
		now += 3; /* the worker answers at once: no connection */
		refresh_action_t a = refresh_done(&r, REFRESH_LOST, now);
		assert_int_equal(a.flags, REFRESH_FAILURE | REFRESH_RETRY);
		assert_int_equal(a.delay_ms, backoff_next(&expect));
		assert_true(a.delay_ms >= cap / 2 && a.delay_ms <= cap);
		cap = cap * 2 > REFRESH_RETRY_MAX_MS ? REFRESH_RETRY_MAX_MS : cap * 2;
		assert_false(refresh_running(&r));
		now += a.delay_ms;
		a = refresh_retry(&r, now);
		assert_int_equal(a.flags, REFRESH_SUBMIT);
		assert_int_equal(a.job, REFRESH_JOB_LOAD);
	}
	assert_int_equal(cap, REFRESH_RETRY_MAX_MS);
	/* An error that is not a lost connection waits the same way. */
	refresh_action_t a = refresh_done(&r, REFRESH_FAILED, now + 5);
	assert_int_equal(a.flags, REFRESH_FAILURE | REFRESH_RETRY);
	assert_true(a.delay_ms >= REFRESH_RETRY_MAX_MS / 2 && a.delay_ms <= REFRESH_RETRY_MAX_MS);
	now += 5 + a.delay_ms;
	assert_submit(refresh_retry(&r, now), REFRESH_JOB_LOAD);

	/* PostgreSQL is up: serve, no "answers again" (it never answered). */
	a = refresh_done(&r, REFRESH_OK, now + 40);
	assert_int_equal(a.flags, REFRESH_SERVE | REFRESH_START);
	assert_int_equal(a.took_ms, 40);
}

/*
 * Serving, then the connection is lost (PostgreSQL restarted): one retry at
 * once, then the failing state is logged once and the next poll tries again;
 * the success that follows is served, pushed and logged as "answers again".
 */
static void test_lost_connection_after_serving(void **state)
{
	refresh_t r;
	loaded(&r, false);
	assert_submit(refresh_poll(&r, 1000), REFRESH_JOB_CHANGES);
	refresh_action_t a = refresh_done(&r, REFRESH_LOST, 1002);
	assert_int_equal(a.flags, REFRESH_FAILURE | REFRESH_DB_DOWN | REFRESH_SUBMIT);
	assert_int_equal(a.job, REFRESH_JOB_CHANGES);
	assert_true(refresh_running(&r));

	/* The retry finds the database still down: wait for the next poll. */
	a = refresh_done(&r, REFRESH_LOST, 1004);
	assert_int_equal(a.flags, REFRESH_FAILURE);
	assert_false(refresh_running(&r));
	assert_submit(refresh_poll(&r, 2000), REFRESH_JOB_CHANGES);
	a = refresh_done(&r, REFRESH_LOST, 2003);
	assert_int_equal(a.flags, REFRESH_FAILURE); /* logged once, retried once */

	assert_submit(refresh_poll(&r, 3000), REFRESH_JOB_CHANGES);
	a = refresh_done(&r, REFRESH_OK, 3030);
	assert_int_equal(a.flags, REFRESH_DB_BACK | REFRESH_SERVE | REFRESH_PUSH);
	assert_int_equal(a.took_ms, 30);

	/* The next loss gets its immediate retry again, which succeeds. */
	assert_submit(refresh_notify(&r, 3100), REFRESH_JOB_CHANGES);
	a = refresh_done(&r, REFRESH_LOST, 3101);
	assert_int_equal(a.flags, REFRESH_FAILURE | REFRESH_DB_DOWN | REFRESH_SUBMIT);
	a = refresh_done(&r, REFRESH_OK, 3150);
	assert_int_equal(a.flags, REFRESH_DB_BACK | REFRESH_SERVE | REFRESH_PUSH);
	assert_int_equal(a.took_ms, 49); /* the retry's own time */

	/* A plain error (not a lost connection) is not retried at once. */
	assert_submit(refresh_poll(&r, 4000), REFRESH_JOB_CHANGES);
	a = refresh_done(&r, REFRESH_FAILED, 4001);
	assert_int_equal(a.flags, REFRESH_FAILURE | REFRESH_DB_DOWN);
	assert_false(refresh_running(&r));
}

/* Any number of NOTIFYs and polls during a job become one follow-up job. */
static void test_notify_coalescing(void **state)
{
	refresh_t r;
	loaded(&r, false);
	assert_submit(refresh_notify(&r, 100), REFRESH_JOB_CHANGES);
	for (int i = 0; i < 50; i++)
		assert_int_equal(refresh_notify(&r, 101 + (uint64_t)i).flags, 0);
	assert_int_equal(refresh_poll(&r, 200).flags, 0);
	refresh_action_t a = refresh_done(&r, REFRESH_OK, 300);
	assert_int_equal(a.flags, REFRESH_SERVE | REFRESH_PUSH | REFRESH_SUBMIT);
	assert_int_equal(a.job, REFRESH_JOB_CHANGES);
	assert_int_equal(a.took_ms, 200);
	a = refresh_done(&r, REFRESH_OK, 310);
	assert_int_equal(a.flags, REFRESH_SERVE | REFRESH_PUSH);
	assert_int_equal(a.took_ms, 10);
	assert_false(refresh_running(&r));

	/* A NOTIFY during a job that then fails still gets its job, at once. */
	assert_submit(refresh_notify(&r, 400), REFRESH_JOB_CHANGES);
	assert_int_equal(refresh_notify(&r, 401).flags, 0);
	a = refresh_done(&r, REFRESH_FAILED, 402);
	assert_int_equal(a.flags, REFRESH_FAILURE | REFRESH_DB_DOWN | REFRESH_SUBMIT);
	assert_int_equal(a.job, REFRESH_JOB_CHANGES);
	a = refresh_done(&r, REFRESH_OK, 420);
	assert_int_equal(a.flags, REFRESH_DB_BACK | REFRESH_SERVE | REFRESH_PUSH);
}

/*
 * The reload: a full read, compared and pruned. Asked for during a job it
 * wins over the incremental checks coalesced with it, and it is done once.
 */
static void test_full_reload(void **state)
{
	refresh_t r;
	loaded(&r, false);
	assert_submit(refresh_reload(&r, RELOAD_MS), REFRESH_JOB_RELOAD);
	refresh_action_t a = refresh_done(&r, REFRESH_OK, RELOAD_MS + 900);
	assert_int_equal(a.flags, REFRESH_SERVE | REFRESH_PUSH);
	assert_int_equal(a.took_ms, 900);

	assert_submit(refresh_notify(&r, 400000), REFRESH_JOB_CHANGES);
	assert_int_equal(refresh_notify(&r, 400001).flags, 0);
	assert_int_equal(refresh_reload(&r, 400002).flags, 0);
	assert_int_equal(refresh_poll(&r, 400003).flags, 0);
	a = refresh_done(&r, REFRESH_OK, 400010);
	assert_submit(a, REFRESH_JOB_RELOAD);
	/* What comes during the reload is incremental again. */
	assert_int_equal(refresh_notify(&r, 400011).flags, 0);
	a = refresh_done(&r, REFRESH_OK, 400500);
	assert_submit(a, REFRESH_JOB_CHANGES);
	a = refresh_done(&r, REFRESH_OK, 400510);
	assert_int_equal(a.flags, REFRESH_SERVE | REFRESH_PUSH);

	/* A reload that fails with a lost connection is retried at once, as an
	 * incremental check (as before the split: the follow-up is full only if a
	 * reload was asked for while the job ran); the next reload is full. */
	assert_submit(refresh_reload(&r, 600000), REFRESH_JOB_RELOAD);
	a = refresh_done(&r, REFRESH_LOST, 600001);
	assert_int_equal(a.flags, REFRESH_FAILURE | REFRESH_DB_DOWN | REFRESH_SUBMIT);
	assert_int_equal(a.job, REFRESH_JOB_CHANGES);
	assert_int_equal(refresh_reload(&r, 600002).flags, 0);
	a = refresh_done(&r, REFRESH_OK, 600003);
	assert_submit(a, REFRESH_JOB_RELOAD);
}

/*
 * The poll fallback without NOTIFY (LISTEN down): on a fake clock the poll
 * timer armed by START fires every poll_ms; each tick checks for changes, a
 * tick while a slow job runs folds into one follow-up, and a change made in
 * the database is served within one poll interval plus a job.
 */
static void test_poll_fallback(void **state)
{
	refresh_t r;
	refresh_cfg_t c = cfg(false);
	refresh_init(&r, &c);
	refresh_start(&r, 0);
	refresh_action_t a = refresh_done(&r, REFRESH_OK, 10);
	assert_true(a.flags & REFRESH_START);
	uint64_t next_poll = 10 + a.poll_ms;

	const uint64_t job_ms = 1500; /* slower than the poll interval */
	const uint64_t changed_at = 7200;
	uint64_t job_end = 0, job_started = 0, served_change_at = 0;
	unsigned n_jobs = 0, n_coalesced = 0;
	for (uint64_t now = 10; now <= 20000; now++) {
		if (job_end && now == job_end) {
			job_end = 0;
			a = refresh_done(&r, REFRESH_OK, now);
			assert_true(a.flags & REFRESH_SERVE);
			assert_int_equal(a.took_ms, now - job_started);
			if (!served_change_at && job_started >= changed_at)
				served_change_at = now;
			if (a.flags & REFRESH_SUBMIT) {
				assert_int_equal(a.job, REFRESH_JOB_CHANGES);
				job_started = now;
				job_end = now + job_ms;
				n_jobs++;
			}
		}
		if (now == next_poll) {
			next_poll += POLL_MS;
			a = refresh_poll(&r, now);
			if (job_end) {
				assert_int_equal(a.flags, 0);
				n_coalesced++;
			} else {
				assert_submit(a, REFRESH_JOB_CHANGES);
				job_started = now;
				job_end = now + job_ms;
				n_jobs++;
			}
		}
	}
	/* Jobs back to back: one per 1.5 s, ticks in between coalesced. */
	assert_true(n_jobs >= 12 && n_jobs <= 14);
	assert_true(n_coalesced >= 5);
	assert_true(served_change_at > changed_at);
	assert_true(served_change_at <= changed_at + POLL_MS + 2 * job_ms);
}

/* After close nothing is submitted or served; the job in flight still ends. */
static void test_close(void **state)
{
	refresh_t r;
	loaded(&r, true);
	assert_submit(refresh_poll(&r, 1000), REFRESH_JOB_CHANGES);
	assert_int_equal(refresh_notify(&r, 1001).flags, 0);
	refresh_close(&r);
	assert_int_equal(refresh_notify(&r, 1002).flags, 0);
	assert_int_equal(refresh_reload(&r, 1003).flags, 0);
	assert_true(refresh_running(&r));
	refresh_action_t a = refresh_done(&r, REFRESH_CANCELED, 1004);
	assert_int_equal(a.flags, 0);
	assert_false(refresh_running(&r));
	assert_int_equal(refresh_poll(&r, 2000).flags, 0);

	/* A canceled first load neither retries nor fails the service. */
	refresh_cfg_t c = cfg(true);
	refresh_init(&r, &c);
	refresh_start(&r, 0);
	assert_int_equal(refresh_done(&r, REFRESH_CANCELED, 1).flags, 0);
	/* A done without a job in flight is ignored. */
	assert_int_equal(refresh_done(&r, REFRESH_OK, 2).flags, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_load_serves),
		cmocka_unit_test(test_first_load_fails_without_wait),
		cmocka_unit_test(test_wait_for_db_retries_after_backoff),
		cmocka_unit_test(test_lost_connection_after_serving),
		cmocka_unit_test(test_notify_coalescing),
		cmocka_unit_test(test_full_reload),
		cmocka_unit_test(test_poll_fallback),
		cmocka_unit_test(test_close),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
