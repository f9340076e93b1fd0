// SPDX-License-Identifier: MIT
// Traffic control in the balancer (issue 19) on a fake clock: weights
// (smooth weighted round robin), drain, slow start on a fake wall clock,
// panic mode, the ejection limit and the ejection backoff, and how they
// play together.
#include "test.h"

#include <string.h>

#include "balancer.h"
#include "msg.h"

#define S(sec) ((uint64_t)(sec) * 1000)
#define T0 S(1000)
#define NH 10

static lb_cfg_t cfg;
static lb_t lb;
static lars_HostInfo hosts[NH];

static int setup(void **state)
{
	(void)state;
	lb_cfg_defaults(&cfg);
	lb_init(&lb, 1, 1, &cfg);
	for (int i = 0; i < NH; i++)
		hosts[i] = (lars_HostInfo){ .ip = i + 1, .port = i + 1 };
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lb_deinit(&lb);
	return 0;
}

/* The ip picked, or minus the error. */
static int32_t pick(lb_t *l, uint64_t now)
{
	lars_HostInfo out = { 0 };
	int r = lb_get_host(l, now, &out);
	return r == LB_OK ? out.ip : -r;
}

static int fail_n(int32_t ip, int n, uint64_t now)
{
	int changed = LB_NO_CHANGE;
	for (int i = 0; i < n; i++)
		changed |= lb_report(&lb, ip, ip, false, now);
	return changed;
}

static int succ_n(int32_t ip, int n, uint64_t now)
{
	int changed = LB_NO_CHANGE;
	for (int i = 0; i < n; i++)
		changed |= lb_report(&lb, ip, ip, true, now);
	return changed;
}

static bool overloaded(int32_t ip)
{
	return lb_find(&lb, ip, ip)->overload;
}

/* ---- the original round robin, as a reference model ---- */

typedef struct ref {
	int32_t idle[NH], over[NH];
	int ni, no;
	uint32_t access_cnt;
} ref_t;

static int32_t ref_rotate(int32_t *v, int n)
{
	int32_t h = v[0];
	memmove(v, v + 1, (size_t)(n - 1) * sizeof(*v));
	v[n - 1] = h;
	return h;
}

static int32_t ref_pick(ref_t *r)
{
	if (r->ni == 0) {
		if (r->access_cnt >= (uint32_t)cfg.probe_num) {
			r->access_cnt = 0;
			return ref_rotate(r->over, r->no);
		}
		r->access_cnt++;
		return -LB_E_OVERLOAD;
	}
	if (r->no == 0)
		return ref_rotate(r->idle, r->ni);
	if (r->access_cnt >= (uint32_t)cfg.probe_num) {
		r->access_cnt = 0;
		return ref_rotate(r->over, r->no);
	}
	r->access_cnt++;
	return ref_rotate(r->idle, r->ni);
}

static void ref_move(int32_t *from, int *nf, int32_t *to, int *nt, int32_t ip)
{
	for (int i = 0; i < *nf; i++) {
		if (from[i] == ip) {
			memmove(from + i, from + i + 1, (size_t)(*nf - i - 1) * sizeof(*from));
			(*nf)--;
			to[(*nt)++] = ip;
			return;
		}
	}
	fail_msg("host %d not in the list", ip);
}

/* Equal weights (not the default) pick exactly as the original round robin,
 * through an ejection, probes and a return. */
static void test_equal_weights_pick_as_original(void **state)
{
	(void)state;
	ref_t ref = { .ni = 4 };
	for (int i = 0; i < 4; i++) {
		hosts[i].weight = 7;
		ref.idle[i] = hosts[i].ip;
	}
	lb_update(&lb, hosts, 4, T0);
	uint64_t now = T0;
	for (int step = 0; step < 400; step++) {
		assert_int_equal(pick(&lb, now), ref_pick(&ref));
		if (step == 50) {
			assert_int_equal(fail_n(2, cfg.contin_err_limit, now), LB_CHANGED);
			ref_move(ref.idle, &ref.ni, ref.over, &ref.no, 2);
		}
		if (step == 120) {
			assert_int_equal(fail_n(4, cfg.contin_err_limit, now), LB_CHANGED);
			ref_move(ref.idle, &ref.ni, ref.over, &ref.no, 4);
		}
		if (step == 200) {
			assert_int_equal(succ_n(2, cfg.contin_succ_limit, now), LB_CHANGED);
			ref_move(ref.over, &ref.no, ref.idle, &ref.ni, 2);
		}
		if (step == 300) { /* everyone out: OVERLOAD and probes */
			for (int32_t ip = 1; ip <= 3; ip++)
				if (!overloaded(ip)) {
					assert_int_equal(fail_n(ip, cfg.contin_err_limit, now),
							 LB_CHANGED);
					ref_move(ref.idle, &ref.ni, ref.over, &ref.no, ip);
				}
			assert_int_equal(lb.idle.n, 0);
		}
	}
	assert_false(lb.weighted);
}

/* Weights 1:3: exactly 1:3 over 4,000 picks, evenly interleaved. */
static void test_weights_one_to_three(void **state)
{
	(void)state;
	hosts[0].weight = 100;
	hosts[1].weight = 300;
	lb_update(&lb, hosts, 2, T0);
	assert_true(lb.weighted);
	int n[3] = { 0 }, run = 0, max_run = 0;
	int32_t last = 0;
	for (int i = 0; i < 4000; i++) {
		int32_t ip = pick(&lb, T0);
		assert_true(ip == 1 || ip == 2);
		n[ip]++;
		run = ip == last ? run + 1 : 1;
		last = ip;
		if (run > max_run)
			max_run = run;
	}
	assert_int_equal(n[1], 1000);
	assert_int_equal(n[2], 3000);
	assert_true(max_run <= 3); /* smooth: B B A B, never bursts */
}

/* Weights beyond 1000 are clamped; 0 means 100. */
static void test_weight_bounds(void **state)
{
	(void)state;
	hosts[0].weight = 0;
	hosts[1].weight = 5000;
	lb_update(&lb, hosts, 2, T0);
	assert_int_equal(lb_find(&lb, 1, 1)->weight, 100);
	assert_int_equal(lb_find(&lb, 2, 2)->weight, 1000);
}

/* Drain: no picks, no probes; still listed, reports still counted. */
static void test_drain(void **state)
{
	(void)state;
	hosts[0].drain = true;
	lb_update(&lb, hosts, 3, T0);
	for (int i = 0; i < 300; i++)
		assert_int_not_equal(pick(&lb, T0), 1);
	assert_int_equal(lb_report(&lb, 1, 1, false, T0), LB_NO_CHANGE);
	assert_int_equal(lb_find(&lb, 1, 1)->rerr, 1);
	lb_iter_t it;
	lb_iter_init(&it, &lb);
	int listed = 0;
	for (const lb_host_t *h; (h = lb_iter_next(&it));)
		listed += h->ip == 1 && h->drain;
	assert_int_equal(listed, 1);

	/* The drained host overloaded too, others overloaded: probes skip it. */
	fail_n(1, cfg.contin_err_limit, T0);
	fail_n(2, cfg.contin_err_limit, T0);
	fail_n(3, cfg.contin_err_limit, T0);
	assert_int_equal(lb.idle.n, 0);
	int probes = 0;
	for (int i = 0; i < 1100; i++) {
		int32_t ip = pick(&lb, T0);
		assert_int_not_equal(ip, 1);
		probes += ip > 0;
	}
	assert_int_equal(probes, 100);

	/* Undrained by the next push: picked again. */
	hosts[0].drain = false;
	lb_update(&lb, hosts, 3, T0);
	succ_n(1, cfg.contin_succ_limit, T0);
	int seen = 0;
	for (int i = 0; i < 20; i++)
		seen += pick(&lb, T0) == 1;
	assert_true(seen > 0);
}

/* Every host drained: OVERLOAD, never a drained host. */
static void test_all_drained(void **state)
{
	(void)state;
	hosts[0].drain = hosts[1].drain = true;
	lb_update(&lb, hosts, 2, T0);
	for (int i = 0; i < 50; i++)
		assert_int_equal(pick(&lb, T0), -LB_E_OVERLOAD);
}

static const int64_t WALL0 = 1800000000; /* unix seconds */

/* Slow start: 10 % at the join to 100 % slow_start_s later, on the wall clock. */
static void test_slow_start_ramp(void **state)
{
	(void)state;
	lars_RoutePolicy p = { .slow_start_s = 100 };
	hosts[0].joined_at = WALL0;
	hosts[1].joined_at = WALL0 - 1000; /* long in */
	lb_update(&lb, hosts, 2, T0);
	lb_set_policy(&lb, &p);
	const lb_host_t *a = lb_find(&lb, 1, 1), *b = lb_find(&lb, 2, 2);
	lb_set_wall(&lb, WALL0 * 1000);
	assert_int_equal(lb_weight(&lb, a), 10);
	assert_int_equal(lb_weight(&lb, b), 100);
	lb_set_wall(&lb, WALL0 * 1000 - 5000); /* a clock behind: still 10 % */
	assert_int_equal(lb_weight(&lb, a), 10);
	lb_set_wall(&lb, (WALL0 + 50) * 1000);
	assert_int_equal(lb_weight(&lb, a), 55);
	lb_set_wall(&lb, (WALL0 + 100) * 1000);
	assert_int_equal(lb_weight(&lb, a), 100);

	/* Shares follow: 10:100 at the join. */
	lb_set_wall(&lb, WALL0 * 1000);
	int n1 = 0;
	for (int i = 0; i < 1100; i++)
		n1 += pick(&lb, T0) == 1;
	assert_int_equal(n1, 100);

	/* Without slow start in the policy the join time is ignored. */
	lb_set_policy(&lb, NULL);
	assert_int_equal(lb_weight(&lb, a), 100);
}

/* An agent restarted mid-ramp (a new balancer, same join time and clock)
 * gives the same weight as one that ran all along. */
static void test_slow_start_across_restart(void **state)
{
	(void)state;
	lars_RoutePolicy p = { .slow_start_s = 60 };
	hosts[0].joined_at = WALL0;
	hosts[0].weight = 400;
	lb_update(&lb, hosts, 1, T0);
	lb_set_policy(&lb, &p);
	lb_set_wall(&lb, (WALL0 + 30) * 1000);
	uint32_t w_old = lb_weight(&lb, lb_find(&lb, 1, 1));

	lb_t fresh;
	lb_init(&fresh, 1, 1, &cfg);
	lb_update(&fresh, hosts, 1, S(5)); /* another process: another monotonic clock */
	lb_set_policy(&fresh, &p);
	lb_set_wall(&fresh, (WALL0 + 30) * 1000);
	assert_int_equal(lb_weight(&fresh, lb_find(&fresh, 1, 1)), w_old);
	assert_int_equal(w_old, 400 * 550 / 1000);
	lb_deinit(&fresh);
}

/* Panic: 6 of 10 failing with threshold 50 picks over every host. */
static void test_panic_picks_all(void **state)
{
	(void)state;
	lars_RoutePolicy p = { .has_panic_threshold = true, .panic_threshold = 50 };
	lb_update(&lb, hosts, NH, T0);
	lb_set_policy(&lb, &p);
	for (int32_t ip = 1; ip <= 6; ip++)
		assert_int_equal(fail_n(ip, cfg.contin_err_limit, T0), LB_CHANGED);
	assert_int_equal(lb_check_panic(&lb), 1);
	int n[NH + 1] = { 0 };
	for (int i = 0; i < 1000; i++) {
		int32_t ip = pick(&lb, T0);
		assert_true(ip >= 1 && ip <= NH); /* never OVERLOAD */
		n[ip]++;
	}
	for (int ip = 1; ip <= NH; ip++)
		assert_int_equal(n[ip], 100);
	assert_true(lb.in_panic);
	/* Back to 5 idle of 10: out of panic, the original rules again. */
	assert_int_equal(succ_n(1, cfg.contin_succ_limit, T0), LB_CHANGED);
	assert_int_equal(lb_check_panic(&lb), -1);
	assert_int_equal(lb_check_panic(&lb), 0); /* once */
	int probes = 0;
	for (int i = 0; i < 11; i++) {
		int32_t ip = pick(&lb, T0);
		assert_true(ip > 0);
		probes += overloaded(ip);
	}
	assert_int_equal(probes, 1); /* one probe in probe_num + 1 picks */
}

/* Without panic the same failure answers OVERLOAD only once every host is
 * out; explicit 0 in the route's policy overrides the agent default. */
static void test_panic_off_by_policy(void **state)
{
	(void)state;
	cfg.panic_threshold = 50;
	lars_RoutePolicy p = { .has_panic_threshold = true, .panic_threshold = 0 };
	lb_update(&lb, hosts, 2, T0);
	lb_set_policy(&lb, NULL);
	assert_int_equal(lb.panic_threshold, 50); /* the agent default */
	lb_set_policy(&lb, &p);
	assert_int_equal(lb.panic_threshold, 0);
	fail_n(1, cfg.contin_err_limit, T0);
	fail_n(2, cfg.contin_err_limit, T0);
	int overload = 0;
	for (int i = 0; i < 11; i++)
		overload += pick(&lb, T0) == -LB_E_OVERLOAD;
	assert_int_equal(overload, 10);
	assert_false(lb.in_panic);
}

/* Panic with drained hosts: drained ones count as unavailable and are never
 * picked, even in panic. */
static void test_panic_with_drained(void **state)
{
	(void)state;
	lars_RoutePolicy p = { .has_panic_threshold = true, .panic_threshold = 50 };
	for (int i = 0; i < 4; i++)
		hosts[i].drain = true; /* 1..4 */
	lb_update(&lb, hosts, NH, T0);
	lb_set_policy(&lb, &p);
	fail_n(5, cfg.contin_err_limit, T0); /* 5 of 10 available: not yet */
	assert_int_equal(lb_check_panic(&lb), 0);
	for (int i = 0; i < 100; i++) {
		int32_t ip = pick(&lb, T0);
		assert_true(ip >= 5);
	}
	fail_n(6, cfg.contin_err_limit, T0); /* 4 of 10 */
	assert_int_equal(lb_check_panic(&lb), 1);
	int n[NH + 1] = { 0 };
	for (int i = 0; i < 600; i++) {
		int32_t ip = pick(&lb, T0);
		assert_true(ip >= 5 && ip <= NH);
		n[ip]++;
	}
	for (int ip = 5; ip <= NH; ip++)
		assert_int_equal(n[ip], 100); /* the overloaded 5 and 6 too */
}

/* Ejection limit 30 %: of 10 failing hosts 3 go to the overload list, the
 * rest stay idle with their counters; overloaded ones are probed. */
static void test_ejection_limit_with_probes(void **state)
{
	(void)state;
	lars_RoutePolicy p = { .max_ejection_percent = 30 };
	lb_update(&lb, hosts, NH, T0);
	lb_set_policy(&lb, &p);
	for (int32_t ip = 1; ip <= NH; ip++)
		fail_n(ip, cfg.contin_err_limit, T0);
	assert_int_equal(lb.overload.n, 3);
	assert_int_equal(lb.idle.n, 7);
	const lb_host_t *h4 = lb_find(&lb, 4, 4);
	assert_false(h4->overload);
	assert_int_equal(h4->rerr, (uint32_t)cfg.contin_err_limit); /* counters kept */
	/* Probes every probe_num picks go to the three overloaded hosts. */
	int probes = 0;
	for (int i = 0; i < 1100; i++) {
		int32_t ip = pick(&lb, T0);
		assert_true(ip > 0);
		probes += overloaded(ip);
	}
	assert_int_equal(probes, 100);
	/* One comes back: the next failing idle host takes its place. */
	assert_int_equal(succ_n(1, cfg.contin_succ_limit, T0), LB_CHANGED);
	assert_int_equal(fail_n(4, 1, T0), LB_CHANGED);
	assert_true(overloaded(4));
	assert_int_equal(lb.overload.n, 3);
}

/* At least one host is always ejectable, whatever the limit. */
static void test_ejection_limit_one_always(void **state)
{
	(void)state;
	lars_RoutePolicy p = { .max_ejection_percent = 10 };
	lb_update(&lb, hosts, 2, T0);
	lb_set_policy(&lb, &p);
	assert_int_equal(fail_n(1, cfg.contin_err_limit, T0), LB_CHANGED);
	assert_int_equal(fail_n(2, cfg.contin_err_limit, T0), LB_NO_CHANGE);
	assert_int_equal(lb.overload.n, 1);
}

/* Backoff: ejected again within 4 x overload_timeout of its return, the
 * n-th ejection lasts n x overload_timeout, capped at max_overload_timeout. */
static void test_backoff(void **state)
{
	(void)state;
	cfg.max_overload_timeout_s = 40;
	lb_update(&lb, hosts, 2, T0);
	uint64_t t = T0;
	fail_n(1, cfg.contin_err_limit, t); /* n = 1: 15 s */
	assert_int_equal(lb_tick(&lb, t + S(15) - 1), LB_NO_CHANGE);
	t += S(15);
	assert_int_equal(lb_tick(&lb, t), LB_CHANGED);
	assert_false(overloaded(1));
	t += S(5);
	fail_n(1, cfg.contin_err_limit, t); /* n = 2: 30 s */
	assert_int_equal(lb_find(&lb, 1, 1)->eject_n, 2);
	assert_int_equal(lb_tick(&lb, t + S(30) - 1), LB_NO_CHANGE);
	t += S(30);
	assert_int_equal(lb_tick(&lb, t), LB_CHANGED);
	t += S(10);
	fail_n(1, cfg.contin_err_limit, t); /* n = 3: 45 s, capped at 40 */
	assert_int_equal(lb_tick(&lb, t + S(40) - 1), LB_NO_CHANGE);
	t += S(40);
	assert_int_equal(lb_tick(&lb, t), LB_CHANGED);
	/* Ejected again only after 4 x overload_timeout: n starts over. */
	t += S(60);
	lb_report(&lb, 1, 1, true, t - S(1)); /* keep the window from resetting n first */
	fail_n(1, cfg.contin_err_limit, t);
	assert_true(overloaded(1));
	assert_int_equal(lb_find(&lb, 1, 1)->eject_n, 1);
	assert_int_equal(lb_tick(&lb, t + S(15)), LB_CHANGED);
}

/* A full window idle resets n: the next ejection lasts overload_timeout. */
static void test_backoff_reset_by_idle_window(void **state)
{
	(void)state;
	lb_update(&lb, hosts, 2, T0);
	uint64_t t = T0;
	fail_n(1, cfg.contin_err_limit, t);
	t += S(15);
	assert_int_equal(lb_tick(&lb, t), LB_CHANGED); /* back, n = 1 */
	t += S(5);
	fail_n(1, cfg.contin_err_limit, t); /* n = 2 */
	t += S(30);
	assert_int_equal(lb_tick(&lb, t), LB_CHANGED); /* back */
	t += S(cfg.idle_timeout_s);
	assert_int_equal(lb_tick(&lb, t), LB_NO_CHANGE); /* a clean window */
	assert_int_equal(lb_find(&lb, 1, 1)->eject_n, 0);
	t += S(1); /* within 4 x overload_timeout of the return */
	fail_n(1, cfg.contin_err_limit, t);
	assert_int_equal(lb_find(&lb, 1, 1)->eject_n, 1);
	assert_int_equal(lb_tick(&lb, t + S(15)), LB_CHANGED);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_equal_weights_pick_as_original),
		T(test_weights_one_to_three),
		T(test_weight_bounds),
		T(test_drain),
		T(test_all_drained),
		T(test_slow_start_ramp),
		T(test_slow_start_across_restart),
		T(test_panic_picks_all),
		T(test_panic_off_by_policy),
		T(test_panic_with_drained),
		T(test_ejection_limit_with_probes),
		T(test_ejection_limit_one_always),
		T(test_backoff),
		T(test_backoff_reset_by_idle_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
