// SPDX-License-Identifier: MIT
// The balancer on a fake clock: every branch of host selection and every
// state transition of DESIGN §5, with the original's defaults.
#include "test.h"

#include <errno.h>
#include <string.h>

#include "balancer.h"
#include "msg.h"

#define S(sec) ((uint64_t)(sec) * 1000)

static lb_cfg_t cfg;
static lb_t lb;
static const lars_HostInfo A = { 1, 1 }, B = { 2, 2 }, C = { 3, 3 };

static int setup(void **state)
{
	lb_cfg_defaults(&cfg);
	lb_init(&lb, 1, 1, &cfg);
	return 0;
}

static int teardown(void **state)
{
	lb_deinit(&lb);
	return 0;
}

static void set_hosts(const lars_HostInfo *h, size_t n, uint64_t now)
{
	lb_update(&lb, h, n, now);
}

static int32_t pick(uint64_t now)
{
	lars_HostInfo out = { 0 };
	int r = lb_get_host(&lb, now, &out);
	return r == LB_OK ? out.ip : -r;
}

static int fail_n(const lars_HostInfo *h, int n, uint64_t now)
{
	int changed = LB_NO_CHANGE;
	for (int i = 0; i < n; i++)
		changed |= lb_report(&lb, h->ip, h->port, false, now);
	return changed;
}

static int succ_n(const lars_HostInfo *h, int n, uint64_t now)
{
	int changed = LB_NO_CHANGE;
	for (int i = 0; i < n; i++)
		changed |= lb_report(&lb, h->ip, h->port, true, now);
	return changed;
}

static void test_defaults(void **state)
{
	assert_int_equal(cfg.probe_num, 10);
	assert_int_equal(cfg.init_succ_cnt, 180);
	assert_int_equal(cfg.init_err_cnt, 5);
	assert_true(cfg.err_rate == 0.1 && cfg.succ_rate == 0.95 && cfg.window_err_rate == 0.7);
	assert_int_equal(cfg.contin_err_limit, 15);
	assert_int_equal(cfg.contin_succ_limit, 15);
	assert_int_equal(cfg.idle_timeout_s, 15);
	assert_int_equal(cfg.overload_timeout_s, 15);
	assert_int_equal(cfg.update_timeout_s, 15);
}

static void test_pulling_and_absent(void **state)
{
	/* No data yet (PULLING): NOEXIST. */
	assert_int_equal(lb.status, LB_PULLING);
	assert_int_equal(pick(0), -LB_E_NOEXIST);
	lb_pulling(&lb, S(0));
	assert_false(lb_needs_pull(&lb, S(14)));
	assert_true(lb_needs_pull(&lb, S(15))); /* the answer never came: ask again */
	/* An empty route: NEW, NOEXIST, and no new pull before update_timeout. */
	set_hosts(NULL, 0, S(20));
	assert_int_equal(lb.status, LB_NEW);
	assert_int_equal(pick(S(21)), -LB_E_NOEXIST);
	assert_false(lb_needs_pull(&lb, S(34)));
	assert_true(lb_needs_pull(&lb, S(35)));
}

static void test_round_robin(void **state)
{
	const lars_HostInfo h[3] = { A, B, C };
	set_hosts(h, 3, 0);
	assert_int_equal(pick(0), 1);
	assert_int_equal(pick(0), 2);
	assert_int_equal(pick(0), 3);
	assert_int_equal(pick(0), 1);
	/* A route older than update_timeout wants a pull, and still serves. */
	assert_false(lb_needs_pull(&lb, S(14)));
	assert_true(lb_needs_pull(&lb, S(15)));
	lb_pulling(&lb, S(15));
	assert_int_equal(pick(S(15)), 2);
}

static void test_contin_err_to_overload(void **state)
{
	const lars_HostInfo h[2] = { A, B };
	set_hosts(h, 2, 0);
	assert_int_equal(fail_n(&A, 14, S(1)), LB_NO_CHANGE);
	assert_false(lb_find(&lb, 1, 1)->overload);
	assert_int_equal(fail_n(&A, 1, S(1)), LB_CHANGED); /* 15 in a row */
	lb_host_t *a = lb_find(&lb, 1, 1);
	assert_true(a->overload);
	/* Becoming overload resets: vsucc 0, verr init_err_cnt, the rest 0. */
	assert_int_equal(a->vsucc, 0);
	assert_int_equal(a->verr, 5);
	assert_int_equal(a->rsucc + a->rerr + a->contin_err + a->contin_succ, 0);
	assert_int_equal(lb.overload.n, 1);
	assert_int_equal(lb.idle.n, 1);
	/* Unknown host. */
	assert_int_equal(lb_report(&lb, 9, 9, true, S(1)), -ENOENT);
}

static void test_err_rate_to_overload(void **state)
{
	set_hosts(&A, 1, 0);
	/* fail, fail, succeed: never 15 in a row, the rate crosses 0.1. */
	int cycles = 0, changed = LB_NO_CHANGE;
	while (changed == LB_NO_CHANGE && cycles < 100) {
		changed |= fail_n(&A, 2, S(1));
		if (changed)
			break;
		changed |= succ_n(&A, 1, S(1));
		cycles++;
	}
	assert_int_equal(changed, LB_CHANGED);
	/* verr/(vsucc+verr) > 0.1 first holds at 22 errors against 191 successes. */
	assert_int_equal(cycles, 10);
	assert_true(lb_find(&lb, 1, 1)->overload);
}

static void test_contin_succ_to_idle(void **state)
{
	set_hosts(&A, 1, 0);
	fail_n(&A, 15, S(1));
	assert_true(lb_find(&lb, 1, 1)->overload);
	assert_int_equal(succ_n(&A, 14, S(2)), LB_NO_CHANGE);
	assert_int_equal(succ_n(&A, 1, S(2)), LB_CHANGED);
	lb_host_t *a = lb_find(&lb, 1, 1);
	assert_false(a->overload);
	/* Becoming idle resets: vsucc init_succ_cnt, the rest 0. */
	assert_int_equal(a->vsucc, 180);
	assert_int_equal(a->verr + a->rsucc + a->rerr + a->contin_err + a->contin_succ, 0);
}

static void test_succ_rate_to_idle(void **state)
{
	cfg.contin_succ_limit = 1000; /* let the rate decide */
	set_hosts(&A, 1, 0);
	fail_n(&A, 15, S(1));
	/* vsucc/(vsucc+5) > 0.95 first at 96 successes. */
	assert_int_equal(succ_n(&A, 95, S(2)), LB_NO_CHANGE);
	assert_int_equal(succ_n(&A, 1, S(2)), LB_CHANGED);
	assert_false(lb_find(&lb, 1, 1)->overload);
}

static void test_success_never_overloads_idle_and_failure_never_idles(void **state)
{
	set_hosts(&A, 1, 0);
	assert_int_equal(succ_n(&A, 1000, S(1)), LB_NO_CHANGE);
	fail_n(&A, 15, S(2));
	/* Failures on an overloaded host keep it there (until its timeout). */
	assert_int_equal(fail_n(&A, 50, S(3)), LB_NO_CHANGE);
	assert_true(lb_find(&lb, 1, 1)->overload);
}

/* 7 errors and 3 successes interleaved: rate 0.037 (idle stays), window 0.7. */
static void window_pattern(uint64_t now)
{
	for (int i = 0; i < 10; i++)
		lb_report(&lb, A.ip, A.port, i % 10 < 3, now);
}

static void test_window_to_overload_on_report(void **state)
{
	set_hosts(&A, 1, 0);
	window_pattern(S(1));
	lb_host_t *a = lb_find(&lb, 1, 1);
	assert_false(a->overload);
	assert_int_equal(a->rerr, 7);
	assert_int_equal(a->rsucc, 3);
	/* Before the window ends nothing happens; at 15 s a report decides. */
	assert_int_equal(succ_n(&A, 0, S(14)), LB_NO_CHANGE);
	assert_int_equal(lb_report(&lb, A.ip, A.port, false, S(15)), LB_CHANGED);
	assert_true(a->overload);
}

static void test_window_resets_when_healthy(void **state)
{
	set_hosts(&A, 1, 0);
	lb_report(&lb, A.ip, A.port, false, S(1)); /* one error in ten */
	succ_n(&A, 9, S(1));
	lb_host_t *a = lb_find(&lb, 1, 1);
	assert_int_equal(lb_report(&lb, A.ip, A.port, true, S(16)), LB_NO_CHANGE);
	/* A new window: counters back to idle values, window restarted. */
	assert_false(a->overload);
	assert_int_equal(a->rsucc + a->rerr, 0);
	assert_int_equal(a->vsucc, 180);
	assert_int_equal(a->idle_since_ms, S(16));
}

static void test_timer_runs_windows_without_reports(void **state)
{
	set_hosts(&A, 1, 0);
	window_pattern(S(1));
	assert_int_equal(lb_tick(&lb, S(14)), LB_NO_CHANGE);
	assert_int_equal(lb_tick(&lb, S(15)), LB_CHANGED); /* no report needed */
	lb_host_t *a = lb_find(&lb, 1, 1);
	assert_true(a->overload);
	/* And an overloaded host returns after overload_timeout, reports or not. */
	assert_int_equal(lb_tick(&lb, S(29)), LB_NO_CHANGE);
	assert_int_equal(lb_tick(&lb, S(30)), LB_CHANGED);
	assert_false(a->overload);
	assert_int_equal(a->vsucc, 180);
}

static void test_overload_timeout_on_report(void **state)
{
	set_hosts(&A, 1, 0);
	fail_n(&A, 15, S(0));
	/* A failure after the timeout: the window rule still returns it. */
	assert_int_equal(lb_report(&lb, A.ip, A.port, false, S(15)), LB_CHANGED);
	assert_false(lb_find(&lb, 1, 1)->overload);
}

static void test_probe_every_probe_num(void **state)
{
	const lars_HostInfo h[2] = { A, B };
	set_hosts(h, 2, 0);
	fail_n(&B, 15, 0); /* B overloaded */
	/* Ten idle picks (access_cnt 1..10), then the eleventh probes B. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick(0), 1);
	assert_int_equal(pick(0), 2);
	assert_int_equal(lb.access_cnt, 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick(0), 1);
	assert_int_equal(pick(0), 2);
}

static void test_all_overloaded(void **state)
{
	const lars_HostInfo h[2] = { A, B };
	set_hosts(h, 2, 0);
	fail_n(&A, 15, 0);
	fail_n(&B, 15, 0);
	/* OVERLOAD ten times, then a probe, round robin over the overloaded. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick(0), -LB_E_OVERLOAD);
	assert_int_equal(pick(0), 1);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick(0), -LB_E_OVERLOAD);
	assert_int_equal(pick(0), 2);
}

static void test_update_keeps_and_removes(void **state)
{
	const lars_HostInfo h3[3] = { A, B, C };
	set_hosts(h3, 3, 0);
	fail_n(&B, 15, S(1));  /* B overloaded */
	fail_n(&A, 3, S(1));   /* A keeps counters */
	lb_host_t *a = lb_find(&lb, 1, 1);
	/* New route: A stays, B (overloaded) is gone, C gone, D new. */
	const lars_HostInfo D = { 4, 4 };
	const lars_HostInfo h2[2] = { D, A };
	set_hosts(h2, 2, S(2));
	assert_ptr_equal(lb_find(&lb, 1, 1), a);
	assert_int_equal(a->verr, 3);
	assert_int_equal(a->contin_err, 3);
	assert_null(lb_find(&lb, 2, 2));
	assert_null(lb_find(&lb, 3, 3));
	assert_int_equal(lb.overload.n, 0);
	assert_int_equal(lb.idle.n, 2);
	lb_host_t *d = lb_find(&lb, 4, 4);
	assert_int_equal(d->vsucc, 180); /* fresh counters */
	assert_int_equal(d->idle_since_ms, S(2));
	/* Only A and D are picked from now on. */
	for (int i = 0; i < 4; i++) {
		int32_t ip = pick(S(2));
		assert_true(ip == 1 || ip == 4);
	}
	/* Removing everything: NOEXIST. */
	set_hosts(NULL, 0, S(3));
	assert_int_equal(pick(S(3)), -LB_E_NOEXIST);
	assert_int_equal(lb_n_hosts(&lb), 0);
}

static void test_update_keeps_overloaded_host_that_stays(void **state)
{
	const lars_HostInfo h[2] = { A, B };
	set_hosts(h, 2, 0);
	fail_n(&A, 15, S(1));
	set_hosts(h, 2, S(2)); /* a push with the same hosts */
	assert_true(lb_find(&lb, 1, 1)->overload);
	assert_int_equal(lb.overload.n, 1);
	/* Duplicates in an answer count once. */
	const lars_HostInfo dup[3] = { A, A, B };
	set_hosts(dup, 3, S(3));
	assert_int_equal(lb_n_hosts(&lb), 2);
}

static void test_iter_idle_then_overload(void **state)
{
	lb_iter_t it;
	lb_iter_init(&it, &lb); /* no hosts */
	assert_int_equal(it.n, 0);
	assert_null(lb_iter_next(&it));
	lb_iter_init(&it, NULL); /* no route */
	assert_null(lb_iter_next(&it));
	const lars_HostInfo h[3] = { A, B, C };
	set_hosts(h, 3, 0);
	fail_n(&B, 15, S(1)); /* B overloaded: walked after the idle ones */
	lb_iter_init(&it, &lb);
	assert_int_equal(it.n, 3);
	int32_t seen[4] = { 0 };
	size_t n = 0;
	for (const lb_host_t *x; (x = lb_iter_next(&it)) && n < 4;)
		seen[n++] = x->ip;
	assert_int_equal(n, 3);
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 3);
	assert_int_equal(seen[2], 2);
	/* Only overloaded hosts: the walk starts in the overload list. */
	fail_n(&A, 15, S(1));
	fail_n(&C, 15, S(1));
	lb_iter_init(&it, &lb);
	n = 0;
	while (lb_iter_next(&it) && n < 4)
		n++;
	assert_int_equal(n, 3);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_defaults),
		T(test_pulling_and_absent),
		T(test_round_robin),
		T(test_contin_err_to_overload),
		T(test_err_rate_to_overload),
		T(test_contin_succ_to_idle),
		T(test_succ_rate_to_idle),
		T(test_success_never_overloads_idle_and_failure_never_idles),
		T(test_window_to_overload_on_report),
		T(test_window_resets_when_healthy),
		T(test_timer_runs_windows_without_reports),
		T(test_overload_timeout_on_report),
		T(test_probe_every_probe_num),
		T(test_all_overloaded),
		T(test_update_keeps_and_removes),
		T(test_update_keeps_overloaded_host_that_stays),
		T(test_iter_idle_then_overload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
