// SPDX-License-Identifier: MIT
// What the reporter admits a report with: the caller comes from the TCP peer
// unless the peer is trusted (loopback, trusted_proxies), and a ts beyond
// max_clock_skew is refused (ahead) or replaced by ours (behind).
#include "test.h"

#include <errno.h>

#include "admit.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ts_window),
		cmocka_unit_test(test_nets_parse),
		cmocka_unit_test(test_peer),
		cmocka_unit_test(test_peer_ip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
