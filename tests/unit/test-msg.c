// SPDX-License-Identifier: MIT
// Message bodies: empty and short bodies, garbage and truncated protobuf,
// repeated-field caps, big routes, frame size limits.
#include "test.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "msg.h"

static void test_empty_body_is_zero_message(void **state)
{
	lars_GetHostRequest req = { .seq = 9, .modid = 9, .cmdid = 9 };
	req = (lars_GetHostRequest)lars_GetHostRequest_init_zero;
	assert_int_equal(msg_decode(lars_GetHostRequest_fields, &req, (const uint8_t *)"", 0, NULL), 0);
	assert_int_equal(req.seq, 0);
	assert_int_equal(req.modid, 0);
	/* Only seq present: the rest stay zero. */
	assert_int_equal(msg_decode(lars_GetHostRequest_fields, &req,
				    (const uint8_t *)"\x08\x05", 2, NULL), 0);
	assert_int_equal(req.seq, 5);
	assert_int_equal(req.cmdid, 0);
}

static void test_truncated_and_garbage(void **state)
{
	static const char *const bad[] = {
		"08",                    /* tag without its varint */
		"08 ff",                 /* varint cut short */
		"08 ff ff ff ff ff ff ff ff ff ff ff", /* varint over 10 bytes */
		"2a 09 08 81 80",        /* submessage longer than the body */
		"0f",                    /* wire type 7 does not exist */
		"1a 05 08 01",           /* host length 5, 2 bytes left */
		"ff ff ff ff 0f",        /* absurd tag */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t body[32];
		size_t n = test_unhex(bad[i], body, sizeof(body));
		lars_GetHostResponse m = lars_GetHostResponse_init_zero;
		const char *why = NULL;
		int r = msg_decode(lars_GetHostResponse_fields, &m, body, n, &why);
		if (r != MSG_E_DECODE)
			fail_msg("case %zu (%s) decoded: %d", i, bad[i], r);
		assert_non_null(why);
	}
	/* Unknown fields are skipped (newer peers add fields). */
	uint8_t body[32];
	size_t n = test_unhex("08 01 b0 06 07 10 02", body, sizeof(body));
	lars_GetRouteRequest req = lars_GetRouteRequest_init_zero;
	assert_int_equal(msg_decode(lars_GetRouteRequest_fields, &req, body, n, NULL), 0);
	assert_int_equal(req.modid, 1);
	assert_int_equal(req.cmdid, 2);
}

static void test_route_roundtrip_big(void **state)
{
	enum { N = 5000 };
	lars_HostInfo *hosts = calloc(N, sizeof(*hosts));
	for (int i = 0; i < N; i++) {
		hosts[i].ip = (int32_t)(0xC0A80000u + (unsigned)i); /* negative */
		hosts[i].port = 1 + i;
	}
	lars_GetRouteResponse out = lars_GetRouteResponse_init_zero;
	out.modid = 42;
	out.cmdid = 7;
	msg_array_t arr = MSG_HOSTS(hosts, N);
	msg_array_bind(&arr, &out.host);
	uint8_t *frame;
	size_t len;
	assert_int_equal(msg_frame_alloc(2, lars_GetRouteResponse_fields, &out,
					 FRAME_TCP_MAX_DEFAULT, &frame, &len), 0);
	assert_true(len > FRAME_UDP_MAX); /* needs TCP's larger maximum */
	/* And refuses when the transport's maximum is lower. */
	uint8_t *small;
	size_t slen;
	assert_int_equal(msg_frame_alloc(2, lars_GetRouteResponse_fields, &out,
					 FRAME_UDP_MAX, &small, &slen), MSG_E_TOO_LARGE);

	frame_hdr_t hdr = frame_hdr_read(frame);
	assert_int_equal(hdr.msglen, (int32_t)(len - 8));
	lars_GetRouteResponse in = lars_GetRouteResponse_init_zero;
	msg_vec_t vec;
	msg_hosts_init(&vec, N);
	msg_vec_bind(&vec, &in.host);
	assert_int_equal(msg_decode(lars_GetRouteResponse_fields, &in, frame + 8,
				    len - 8, NULL), 0);
	assert_int_equal(in.modid, 42);
	assert_int_equal(vec.n, N);
	assert_memory_equal(vec.v, hosts, N * sizeof(*hosts));
	msg_vec_deinit(&vec);

	/* One host over the cap fails the decode, with the reason on the vector. */
	in = (lars_GetRouteResponse)lars_GetRouteResponse_init_zero;
	msg_hosts_init(&vec, N - 1);
	msg_vec_bind(&vec, &in.host);
	assert_int_equal(msg_decode(lars_GetRouteResponse_fields, &in, frame + 8,
				    len - 8, NULL), MSG_E_DECODE);
	assert_int_equal(vec.error, MSG_E_TOO_MANY);
	msg_vec_deinit(&vec);
	free(frame);
	free(hosts);
}

static void test_udp_host_bound(void **state)
{
	/* MSG_UDP_MAX_HOSTS worst-case hosts (negative ips) fit one datagram. */
	size_t n = MSG_UDP_MAX_HOSTS;
	lars_HostInfo *hosts = calloc(n, sizeof(*hosts));
	for (size_t i = 0; i < n; i++) {
		hosts[i].ip = -1;
		hosts[i].port = -1;
	}
	lars_GetRouteResponse out = lars_GetRouteResponse_init_zero;
	out.modid = out.cmdid = -1;
	msg_array_t arr = MSG_HOSTS(hosts, n);
	msg_array_bind(&arr, &out.host);
	uint8_t *buf = malloc(FRAME_UDP_MAX);
	size_t len;
	assert_int_equal(msg_frame_encode(8, lars_GetRouteResponse_fields, &out, buf,
					  FRAME_UDP_MAX, &len), 0);
	assert_true(len <= FRAME_UDP_MAX);
	arr.n = n + 100;
	hosts = realloc(hosts, arr.n * sizeof(*hosts));
	memset(hosts, 0xff, arr.n * sizeof(*hosts));
	arr.v = hosts;
	assert_int_equal(msg_frame_encode(8, lars_GetRouteResponse_fields, &out, buf,
					  FRAME_UDP_MAX, &len), MSG_E_TOO_LARGE);
	free(buf);
	free(hosts);
}

static void test_sizes_match_nanopb(void **state)
{
	static const int32_t v[] = { 0, 1, 127, 128, 16383, 16384, 65535, 2130706433,
				     INT32_MAX, -1, INT32_MIN };
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		for (size_t j = 0; j < sizeof(v) / sizeof(v[0]); j++) {
			lars_HostInfo h = { v[i], v[j] };
			lars_GetRouteResponse r = lars_GetRouteResponse_init_zero;
			msg_array_t arr = MSG_HOSTS(&h, 1);
			msg_array_bind(&arr, &r.host);
			size_t sz;
			assert_int_equal(msg_encoded_size(lars_GetRouteResponse_fields, &r, &sz), 0);
			assert_int_equal(sz, msg_host_elem_size(v[i], v[j]));
		}
	}
}

/* Fill one datagram for @n hosts (ip, port from @ip0/@port0 up); encode it. */
static void fit_and_encode(size_t n, int32_t ip0, int32_t port0, size_t *sentp, size_t *lenp,
			   int32_t *totalp)
{
	lars_HostInfo *hosts = calloc(n, sizeof(*hosts));
	msg_route_fit_t fit;
	msg_route_fit_init(&fit, 7, 9, n);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		hosts[i] = (lars_HostInfo){ ip0 + (int32_t)i, port0 + (int32_t)(i % 1000) };
		if (!msg_route_fit_add(&fit, hosts[i].ip, hosts[i].port))
			break;
		k++;
	}
	bool cut;
	k = msg_route_fit_count(&fit, &cut);
	lars_GetRouteResponse out = lars_GetRouteResponse_init_zero;
	out.modid = 7;
	out.cmdid = 9;
	if (cut)
		out.host_total = (int32_t)n;
	msg_array_t arr = MSG_HOSTS(hosts, k);
	msg_array_bind(&arr, &out.host);
	static uint8_t buf[FRAME_UDP_MAX];
	size_t len;
	assert_int_equal(msg_frame_encode(8, lars_GetRouteResponse_fields, &out, buf,
					  MSG_UDP_DATAGRAM_MAX, &len), 0);
	/* Decoded back: the hosts and host_total. */
	lars_GetRouteResponse in = lars_GetRouteResponse_init_zero;
	msg_vec_t vec;
	msg_hosts_init(&vec, MSG_UDP_FIT_MAX_HOSTS);
	msg_vec_bind(&vec, &in.host);
	assert_int_equal(msg_decode(lars_GetRouteResponse_fields, &in, buf + 8, len - 8, NULL), 0);
	assert_int_equal(vec.n, k);
	assert_int_equal(in.host_total, out.host_total);
	msg_vec_deinit(&vec);
	*sentp = k;
	*lenp = len;
	*totalp = in.host_total;
	free(hosts);
}

static void test_route_fit(void **state)
{
	size_t k, len;
	int32_t total;
	/* Ordinary addresses (10.0.0.0/8, ports 20000+): 12 bytes a host. */
	fit_and_encode(5000, 167772161, 20000, &k, &len, &total);
	assert_int_equal(k, 5000);
	assert_int_equal(total, 0);
	fit_and_encode(7000, 167772161, 20000, &k, &len, &total);
	assert_true(k > 5000 && k < 7000);
	assert_int_equal(total, 7000);
	assert_true(len <= MSG_UDP_DATAGRAM_MAX && len + 12 > MSG_UDP_DATAGRAM_MAX);
	/* Worst case ip and port (negative ips, 5-byte ports): more than
	 * MSG_UDP_MAX_HOSTS, the bound for hosts carrying every optional field
	 * too (weight, drain, join time), fits the 65507-byte datagram. */
	fit_and_encode(4000, INT32_MIN, -1000, &k, &len, &total);
	assert_true(k >= 2700 && k >= MSG_UDP_MAX_HOSTS && k < 4000);
	assert_int_equal(total, 4000);
	/* An empty route: nothing to cut, no host_total. */
	fit_and_encode(0, 0, 0, &k, &len, &total);
	assert_int_equal(k, 0);
	assert_int_equal(total, 0);
}

static void test_ip_text(void **state)
{
	char s[16];
	int32_t ip;
	msg_ip_to_str(2130706433, s);
	assert_string_equal(s, "127.0.0.1");
	assert_int_equal(msg_ip_from_str("192.168.1.177", &ip), 0);
	assert_int_equal(ip, -1062731343);
	msg_ip_to_str(ip, s);
	assert_string_equal(s, "192.168.1.177");
	assert_int_equal(msg_ip_from_str("255.255.255.255", &ip), 0);
	assert_int_equal(ip, -1);
	assert_int_equal(msg_ip_from_str("::1", &ip), -EINVAL);
	assert_int_equal(msg_ip_from_str("1.2.3", &ip), -EINVAL);
	assert_int_equal(msg_ip_from_str("", &ip), -EINVAL);
}

/* Durations fall in the fixed buckets: a bound belongs to its own bucket. */
static void test_lat_buckets(void **state)
{
	assert_int_equal(msg_lat_bucket(0), 0);
	assert_int_equal(msg_lat_bucket(500), 0);
	assert_int_equal(msg_lat_bucket(501), 1);
	assert_int_equal(msg_lat_bucket(4200), 3);
	assert_int_equal(msg_lat_bucket(2000000), MSG_LAT_BUCKETS - 2);
	assert_int_equal(msg_lat_bucket(2000001), MSG_LAT_BUCKETS - 1);
	assert_int_equal(msg_lat_bucket(UINT32_MAX), MSG_LAT_BUCKETS - 1);
	for (unsigned i = 1; i < MSG_LAT_BUCKETS - 1; i++)
		assert_true(msg_lat_bounds_us[i] > msg_lat_bounds_us[i - 1]);
	/* The wire's array holds them all. */
	lars_HostCallResult r;
	assert_true(sizeof(r.lat_buckets) / sizeof(r.lat_buckets[0]) >= MSG_LAT_BUCKETS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_body_is_zero_message),
		cmocka_unit_test(test_truncated_and_garbage),
		cmocka_unit_test(test_route_roundtrip_big),
		cmocka_unit_test(test_udp_host_bound),
		cmocka_unit_test(test_sizes_match_nanopb),
		cmocka_unit_test(test_route_fit),
		cmocka_unit_test(test_ip_text),
		cmocka_unit_test(test_lat_buckets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
