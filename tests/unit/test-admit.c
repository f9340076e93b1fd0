// SPDX-License-Identifier: MIT
// What the reporter admits a report with: the caller comes from the TCP peer
// unless the peer is trusted (loopback, trusted_proxies), and a ts beyond
// max_clock_skew is refused (ahead) or replaced by ours (behind). Then a
// whole ReportStatusRequest through intake_report(), as lars-reporter
// handles one: decoded, admitted, folded into the pending map.
#include "test.h"

#include <errno.h>
#include <string.h>

#include "admit.h"
#include "intake.h"
#include "msg.h"

static void test_ts_window(void **state)
{
	admit_t a = { .max_skew_s = 300 };
	uint32_t ts = 7;
	const uint64_t now = 1800000000;
	assert_int_equal(admit_ts(&a, (uint32_t)now, now, &ts), ADMIT_TS_OK);
	assert_int_equal(ts, now);
	assert_int_equal(admit_ts(&a, (uint32_t)now + 300, now, &ts), ADMIT_TS_OK);
	assert_int_equal(ts, now + 300);
	assert_int_equal(admit_ts(&a, (uint32_t)now - 300, now, &ts), ADMIT_TS_OK);
	assert_int_equal(ts, now - 300);
	/* The attack: 2^32 - 1 (year 2106) is refused and ts is left alone. */
	ts = 7;
	assert_int_equal(admit_ts(&a, UINT32_MAX, now, &ts), ADMIT_TS_FUTURE);
	assert_int_equal(ts, 7);
	assert_int_equal(admit_ts(&a, (uint32_t)now + 301, now, &ts), ADMIT_TS_FUTURE);
	/* Behind: a report that waited (backpressure) keeps its counts, under our time. */
	assert_int_equal(admit_ts(&a, (uint32_t)now - 301, now, &ts), ADMIT_TS_PAST);
	assert_int_equal(ts, now);
	assert_int_equal(admit_ts(&a, 1, now, &ts), ADMIT_TS_PAST);
	assert_int_equal(ts, now);
	/* No ts sent: ours. */
	assert_int_equal(admit_ts(&a, 0, now, &ts), ADMIT_TS_OK);
	assert_int_equal(ts, now);
}

static void test_nets_parse(void **state)
{
	admit_t a = { 0 };
	const char *why = NULL;
	assert_int_equal(admit_parse_nets(&a, "", &why), 0);
	assert_int_equal(a.n_nets, 0);
	assert_int_equal(admit_parse_nets(&a, " 10.1.2.3, 192.168.0.0/16,fd00::/8 ,::1/128", &why), 0);
	assert_int_equal(a.n_nets, 4);
	assert_int_equal(a.nets[0].prefix, 128);
	assert_int_equal(a.nets[1].prefix, 96 + 16);
	assert_int_equal(a.nets[2].prefix, 8);
	static const char *const bad[] = { "10.0.0.0/33", "fd00::/129", "10.0.0/8", "host.example",
					   "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x", "1.2.3.4/+8" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (admit_parse_nets(&a, bad[i], &why) != -EINVAL || !why)
			fail_msg("accepted %s", bad[i]);
	}
}

static void test_peer(void **state)
{
	admit_t a = { .trust_loopback = true };
	const char *why;
	assert_int_equal(admit_parse_nets(&a, "10.9.0.0/16, 127.0.0.3, 2001:db8::/32", &why), 0);
	admit_peer_t p;
	/* Loopback, trusted by default: the frame's caller stands. */
	assert_int_equal(admit_peer(&a, "127.0.0.2", &p), 0);
	assert_true(p.trusted);
	assert_int_equal(admit_peer(&a, "::1", &p), 0);
	assert_true(p.trusted);
	assert_int_equal(admit_peer(&a, "::ffff:127.0.0.1", &p), 0);
	assert_true(p.trusted);
	/* A proxy in the list: trusted. */
	assert_int_equal(admit_peer(&a, "10.9.200.1", &p), 0);
	assert_true(p.trusted);
	assert_int_equal(admit_peer(&a, "::ffff:10.9.0.7", &p), 0);
	assert_true(p.trusted);
	assert_int_equal(admit_peer(&a, "2001:db8::5", &p), 0);
	assert_true(p.trusted);
	/* Anyone else: its own address is the caller. */
	assert_int_equal(admit_peer(&a, "10.10.0.1", &p), 0);
	assert_false(p.trusted);
	assert_true(p.has_ipv4);
	assert_int_equal(p.caller, 0x0a0a0001);
	assert_int_equal(admit_peer(&a, "::ffff:192.168.1.2", &p), 0);
	assert_false(p.trusted);
	assert_int_equal(p.caller, (int32_t)0xc0a80102u);
	/* An IPv6 peer not trusted: no IPv4 caller to store under. */
	assert_int_equal(admit_peer(&a, "2001:db9::1", &p), 0);
	assert_false(p.trusted);
	assert_false(p.has_ipv4);
	assert_int_equal(admit_peer(&a, "nonsense", &p), -EINVAL);
	assert_false(p.trusted);
	/* Loopback not trusted: only the listed 127.0.0.3 is. */
	a.trust_loopback = false;
	assert_int_equal(admit_peer(&a, "127.0.0.2", &p), 0);
	assert_false(p.trusted);
	assert_int_equal(p.caller, 0x7f000002);
	assert_int_equal(admit_peer(&a, "127.0.0.3", &p), 0);
	assert_true(p.trusted);
}

static void test_peer_ip(void **state)
{
	char ip[64];
	assert_int_equal(admit_peer_ip("127.0.0.2:5555", ip, sizeof(ip)), 0);
	assert_string_equal(ip, "127.0.0.2");
	assert_int_equal(admit_peer_ip("[::ffff:10.0.0.1]:80", ip, sizeof(ip)), 0);
	assert_string_equal(ip, "::ffff:10.0.0.1");
	assert_int_equal(admit_peer_ip("?", ip, sizeof(ip)), -EINVAL);
	assert_int_equal(admit_peer_ip("[::1", ip, sizeof(ip)), -EINVAL);
	assert_int_equal(admit_peer_ip("127.0.0.1:1", ip, 4), -EINVAL);
}

/* ---- a report, as lars-reporter handles it ---- */

#define WALL_S 1800000000ull

typedef struct frame {
	uint8_t buf[4096];
	size_t len;
} frame_t;

/* A ReportStatusRequest for (1, 2) from @caller with @n results into @f. */
static const frame_t *report(frame_t *f, int32_t caller, uint32_t ts,
			     const lars_HostCallResult *res, size_t n)
{
	lars_ReportStatusRequest q = lars_ReportStatusRequest_init_zero;
	q.modid = 1;
	q.cmdid = 2;
	q.caller = caller;
	q.ts = ts;
	msg_array_t arr = MSG_RESULTS(res, n);
	msg_array_bind(&arr, &q.results);
	assert_int_equal(msg_frame_encode(LARS_ID_REPORT_STATUS_REQ,
					  lars_ReportStatusRequest_fields, &q, f->buf,
					  sizeof(f->buf), &f->len), 0);
	return f;
}

/* @f's body through intake_report(), as on_report() passes it. */
static int feed(intake_t *in, intake_conn_t *c, const char *peer, const frame_t *f,
		uint64_t wall_us, uint64_t now_ms, pending_t *p, intake_result_t *r)
{
	return intake_report(in, c, peer, f->buf + 8, f->len - 8, wall_us, now_ms, p, r);
}

static const report_entry_t *find(const pending_t *p, int32_t ip, int32_t caller)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i].key.ip == ip && p->v[i].key.caller == caller)
			return &p->v[i];
	return NULL;
}

static void test_intake_caller(void **state)
{
	intake_t in;
	const char *why;
	assert_int_equal(intake_init(&in, "10.9.0.0/16", true, 300, 100, &why), 0);
	assert_int_equal(intake_init(&in, "10.9.0.0/99", true, 300, 100, &why), -EINVAL);
	assert_int_equal(intake_init(&in, "10.9.0.0/16", true, 300, 100, &why), 0);
	intake_conn_t lo, proxy, agent, v6, junk;
	intake_conn_init(&in, "127.0.0.1:5000", &lo);
	intake_conn_init(&in, "10.9.1.1:5000", &proxy);
	intake_conn_init(&in, "10.1.2.3:5000", &agent);
	intake_conn_init(&in, "[2001:db8::1]:5000", &v6);
	intake_conn_init(&in, "?", &junk);
	pending_t p;
	pending_init(&p);
	const lars_HostCallResult res[2] = { { 0x0a000001, 80, 5, 1, false },
					     { 0x0a000002, 80, 2, 0, true } };
	const uint64_t wall = WALL_S * 1000000, now = 7;
	frame_t f;
	intake_result_t r;

	/* Trusted: the caller it sends. */
	assert_int_equal(feed(&in, &lo, "127.0.0.1:5000", report(&f, 77, 0, res, 2), wall, now,
			      &p, &r), 0);
	assert_true(r.added);
	assert_int_equal(r.n_results, 2);
	assert_false(r.caller_replaced);
	assert_non_null(find(&p, 0x0a000001, 77));
	assert_int_equal(feed(&in, &proxy, "10.9.1.1:5000", report(&f, 78, 0, res, 1), wall, now,
			      &p, &r), 0);
	assert_non_null(find(&p, 0x0a000001, 78));

	/* Untrusted: its own address, whatever it claims. */
	assert_int_equal(feed(&in, &agent, "10.1.2.3:5000", report(&f, 77, 0, res, 2), wall, now,
			      &p, &r), 0);
	assert_true(r.added);
	assert_true(r.caller_replaced);
	const report_entry_t *e = find(&p, 0x0a000002, 0x0a010203);
	assert_non_null(e);
	assert_int_equal(e->succ, 2);
	assert_true(e->overload);
	assert_int_equal(e->ts, WALL_S); /* none sent: ours */
	assert_int_equal(feed(&in, &agent, "10.1.2.3:5000",
			      report(&f, 0x0a010203, 0, res, 1), wall, now, &p, &r), 0);
	assert_false(r.caller_replaced); /* it said the truth */
	assert_int_equal(pending_keys(&p), 5);

	/* Untrusted IPv6, or no address: refused, counted, nothing added. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(feed(&in, &v6, "[2001:db8::1]:5000",
				      report(&f, 77, 0, res, 2), wall, now, &p, &r), 0);
		assert_false(r.added);
		assert_true(r.caller_refused);
		assert_int_equal(r.n_results, 2);
		assert_true(v6.warned);
	}
	assert_int_equal(feed(&in, &junk, "?", report(&f, 77, 0, res, 2), wall,
			      now, &p, &r), 0);
	assert_true(r.caller_refused);
	/* The connection is closing: counted, not added. */
	assert_int_equal(feed(&in, NULL, "127.0.0.1:5000", report(&f, 77, 0, res, 2), wall, now,
			      &p, &r), 0);
	assert_false(r.added);
	assert_false(r.caller_refused);
	assert_int_equal(r.n_results, 2);
	assert_int_equal(pending_keys(&p), 5);
	assert_int_equal(p.n_results, 2 + 1 + 2 + 1);
	pending_deinit(&p);
	intake_deinit(&in);
}

static void test_intake_time_and_order(void **state)
{
	intake_t in;
	const char *why;
	assert_int_equal(intake_init(&in, "", true, 300, 2, &why), 0);
	intake_conn_t c;
	intake_conn_init(&in, "127.0.0.1:1", &c);
	pending_t p;
	pending_init(&p);
	const uint64_t wall = WALL_S * 1000000 + 123456;
	lars_HostCallResult res[3] = { { 1, 80, 5, 1, false }, { 2, 80, 1, 1, false },
			      { 3, 80, 1, 1, false } };
	frame_t f;
	intake_result_t r;

	/* Ahead by more than the skew: dropped. */
	assert_int_equal(feed(&in, &c, "127.0.0.1:1",
			      report(&f, 9, (uint32_t)WALL_S + 301, res, 1), wall,
			      1, &p, &r), 0);
	assert_false(r.added);
	assert_int_equal(r.ts, ADMIT_TS_FUTURE);
	assert_int_equal(pending_keys(&p), 0);
	/* Behind: kept, under our time. */
	assert_int_equal(feed(&in, &c, "127.0.0.1:1",
			      report(&f, 9, (uint32_t)WALL_S - 3600, res, 1), wall,
			      2, &p, &r), 0);
	assert_true(r.added);
	assert_int_equal(r.ts, ADMIT_TS_PAST);
	assert_int_equal(p.v[0].ts, WALL_S);
	assert_int_equal(p.v[0].rx_us, wall);
	assert_int_equal(p.v[0].first_ms, 2);

	/* Two reports in the same microsecond (or a clock step back): the
	 * later one still wins the status, whatever ts it claims. */
	res[0].succ = 8;
	assert_int_equal(feed(&in, &c, "127.0.0.1:1",
			      report(&f, 9, (uint32_t)WALL_S + 60, res, 1),
			      wall - 5, 3, &p, &r), 0);
	assert_int_equal(r.ts, ADMIT_TS_OK);
	assert_int_equal(p.v[0].rx_us, wall + 1);
	assert_int_equal(p.v[0].succ, 8);
	assert_int_equal(p.v[0].ts, WALL_S + 60);
	assert_int_equal(p.v[0].n_results, 2);

	/* Bad input: the connection is closed, nothing added. */
	assert_int_equal(feed(&in, &c, "127.0.0.1:1", report(&f, 9, 0, res, 3),
			      wall, 4, &p, &r), MSG_E_TOO_MANY);
	static const uint8_t junk[] = { 0x22, 0x7f, 0x01 };
	assert_int_equal(intake_report(&in, &c, "127.0.0.1:1", junk, sizeof(junk), wall, 4, &p,
			      &r), MSG_E_DECODE);
	assert_int_equal(pending_keys(&p), 1);
	assert_int_equal(p.n_results, 2);
	pending_deinit(&p);
	intake_deinit(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ts_window),
		cmocka_unit_test(test_nets_parse),
		cmocka_unit_test(test_peer),
		cmocka_unit_test(test_peer_ip),
		cmocka_unit_test(test_intake_caller),
		cmocka_unit_test(test_intake_time_and_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
