// SPDX-License-Identifier: MIT
// The service core as the daemons use it, through a real process
// (lars-test-svc): readiness on --ready-fd with port 0, TCP and UDP serving,
// bad input closing only the offending peer, the connection limit, the
// write-queue bound, /metrics, the loop-lag metrics seeing a stalled loop,
// and a clean exit on SIGTERM.
#include "test.h"

#include <sys/time.h>

#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"

static const char *bin;
static harness_proc_t proc;
static int tcp_port, udp_port, metrics_port;

static const char config[] =
	"[echo]\n"
	"ip = 127.0.0.1\n"
	"port = 0\n"
	"udp_port = 0\n"
	"max_conns = 8\n"
	"max_frame = 65536\n"
	"max_write_queue = 262144\n"
	"[metrics]\n"
	"enabled = true\n"
	"port = 0\n";

static size_t get_host_frame(uint8_t *buf, uint32_t seq, int modid, int cmdid)
{
	lars_GetHostRequest req = { .seq = seq, .modid = modid, .cmdid = cmdid };
	size_t len;
	assert_int_equal(msg_frame_encode(LARS_ID_GET_HOST_REQ, lars_GetHostRequest_fields,
					  &req, buf, 64, &len), 0);
	return len;
}

/* One request/response over @fd; checks the answer. */
static void tcp_roundtrip(int fd, uint32_t seq, int cmdid)
{
	uint8_t buf[64], body[256];
	size_t len = get_host_frame(buf, seq, 1, cmdid);
	assert_int_equal(harness_send_all(fd, buf, len), 0);
	frame_hdr_t hdr;
	assert_int_equal(harness_recv_frame(fd, &hdr, body, sizeof(body), 5000), 1);
	assert_int_equal(hdr.msgid, LARS_ID_GET_HOST_RESP);
	lars_GetHostResponse resp = lars_GetHostResponse_init_zero;
	assert_int_equal(msg_decode(lars_GetHostResponse_fields, &resp, body,
				    (size_t)hdr.msglen, NULL), 0);
	assert_int_equal(resp.seq, seq);
	assert_int_equal(resp.cmdid, cmdid);
	assert_int_equal(resp.host.port, 9000 + cmdid);
}

static int setup(void **state)
{
	const char *cfg = harness_write_config(config);
	assert_non_null(cfg);
	assert_int_equal(harness_spawn(&proc, bin, cfg), 0);
	tcp_port = harness_port(&proc, "tcp");
	udp_port = harness_port(&proc, "udp");
	metrics_port = harness_port(&proc, "metrics");
	assert_true(tcp_port > 0 && udp_port > 0 && metrics_port > 0);
	return 0;
}

static int teardown(void **state)
{
	/* SIGTERM must end in a clean exit: every handle closed, loop closed. */
	assert_int_equal(harness_stop(&proc), 0);
	return 0;
}

static void test_tcp_serves_split_and_coalesced(void **state)
{
	int fd = harness_tcp_connect(tcp_port);
	assert_true(fd >= 0);
	tcp_roundtrip(fd, 1, 1);

	/* A frame sent one byte at a time. */
	uint8_t buf[64], body[256];
	size_t len = get_host_frame(buf, 2, 1, 2);
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(harness_send_all(fd, buf + i, 1), 0);
		usleep(1000);
	}
	frame_hdr_t hdr;
	assert_int_equal(harness_recv_frame(fd, &hdr, body, sizeof(body), 5000), 1);
	assert_int_equal(hdr.msgid, LARS_ID_GET_HOST_RESP);

	/* Fifty frames in one write: fifty answers, in order. */
	uint8_t many[50 * 32];
	size_t n = 0;
	for (uint32_t i = 0; i < 50; i++)
		n += get_host_frame(many + n, 100 + i, 1, 3);
	assert_int_equal(harness_send_all(fd, many, n), 0);
	for (uint32_t i = 0; i < 50; i++) {
		lars_GetHostResponse resp = lars_GetHostResponse_init_zero;
		assert_int_equal(harness_recv_frame(fd, &hdr, body, sizeof(body), 5000), 1);
		assert_int_equal(msg_decode(lars_GetHostResponse_fields, &resp, body,
					    (size_t)hdr.msglen, NULL), 0);
		assert_int_equal(resp.seq, 100 + i);
	}
	close(fd);
}

static void test_big_frame_over_tcp(void **state)
{
	/* 6000 hosts: a response above UDP's 64 KiB limit (and above this
	 * server's input max_frame, which bounds only what peers send). */
	int fd = harness_tcp_connect(tcp_port);
	lars_GetRouteRequest req = { .modid = 1, .cmdid = 6000 };
	uint8_t buf[64];
	size_t len;
	assert_int_equal(msg_frame_encode(LARS_ID_GET_ROUTE_REQ, lars_GetRouteRequest_fields,
					  &req, buf, sizeof(buf), &len), 0);
	assert_int_equal(harness_send_all(fd, buf, len), 0);
	static uint8_t body[1 << 20];
	frame_hdr_t hdr;
	assert_int_equal(harness_recv_frame(fd, &hdr, body, sizeof(body), 5000), 1);
	assert_int_equal(hdr.msgid, LARS_ID_GET_ROUTE_RESP);
	assert_true(hdr.msglen > 65535);
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	msg_vec_t vec;
	msg_hosts_init(&vec, 10000);
	msg_vec_bind(&vec, &resp.host);
	assert_int_equal(msg_decode(lars_GetRouteResponse_fields, &resp, body,
				    (size_t)hdr.msglen, NULL), 0);
	assert_int_equal(vec.n, 6000);
	msg_vec_deinit(&vec);
	close(fd);
}

/* Each bad input closes that connection; a bystander keeps being served. */
static void test_bad_tcp_input_closes_only_offender(void **state)
{
	static const char *const bad[] = {
		"04000000 ffffff7f",          /* msglen 2^31-1: over max_frame */
		"04000000 00000200",          /* 128 KiB: over max_frame 64 KiB */
		"04000000 ffffffff",          /* negative length */
		"09000000 00000000",          /* unknown msgid */
		"ffffffff 00000000",          /* msgid -1 */
		"04000000 02000000 08ff",     /* truncated varint in the body */
		"04000000 03000000 2a0508",   /* submessage longer than the body */
		"04000000 01000000 0f",       /* wire type 7 */
	};
	int bystander = harness_tcp_connect(tcp_port);
	assert_true(bystander >= 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = harness_tcp_connect(tcp_port);
		assert_true(fd >= 0);
		uint8_t buf[64];
		size_t n = test_unhex(bad[i], buf, sizeof(buf));
		assert_int_equal(harness_send_all(fd, buf, n), 0);
		if (!harness_wait_eof(fd, 5000))
			fail_msg("case %zu (%s): connection not closed", i, bad[i]);
		close(fd);
		tcp_roundtrip(bystander, (uint32_t)i, 4);
	}
	/* A truncated header followed by a close is just a disconnect. */
	int fd = harness_tcp_connect(tcp_port);
	assert_int_equal(harness_send_all(fd, "\x04\x00\x00", 3), 0);
	close(fd);
	tcp_roundtrip(bystander, 99, 5);
	close(bystander);
}

static void test_udp(void **state)
{
	int fd = harness_udp_socket();
	uint8_t req[64], resp[65536];
	size_t len = get_host_frame(req, 6634, 1, 1);
	ssize_t n = harness_udp_call(fd, udp_port, req, len, resp, sizeof(resp), 5000);
	assert_true(n > 8);
	frame_hdr_t hdr = frame_hdr_read(resp);
	assert_int_equal(hdr.msgid, LARS_ID_GET_HOST_RESP);
	assert_int_equal(hdr.msglen, n - 8);

	/* Bad datagrams get no answer; a good one right after does. */
	static const char *const bad[] = {
		"0400",                         /* shorter than a header */
		"04000000 07000000 08ea33",     /* shorter than msglen */
		"04000000 01000000 0801 00",    /* longer than msglen */
		"04000000 ffffffff",            /* negative */
		"63000000 00000000",            /* unknown id 99 */
		"04000000 02000000 08ff",       /* truncated protobuf */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t d[64];
		size_t dn = test_unhex(bad[i], d, sizeof(d));
		n = harness_udp_call(fd, udp_port, d, dn, resp, sizeof(resp), 200);
		if (n != -1)
			fail_msg("bad datagram %zu (%s) was answered", i, bad[i]);
	}
	/* Empty body: a valid GetHostRequest for 0/0, seq 0. */
	n = harness_udp_call(fd, udp_port, "\x04\0\0\0\0\0\0\0", 8, resp, sizeof(resp), 5000);
	assert_true(n > 8);
	n = harness_udp_call(fd, udp_port, req, len, resp, sizeof(resp), 5000);
	assert_true(n > 8);
	close(fd);
}

static void test_connection_limit(void **state)
{
	/* max_conns = 8: the ninth is closed at once, served again later. */
	int fds[8];
	for (int i = 0; i < 8; i++) {
		fds[i] = harness_tcp_connect(tcp_port);
		assert_true(fds[i] >= 0);
		tcp_roundtrip(fds[i], (uint32_t)i, 1); /* accepted for sure */
	}
	int extra = harness_tcp_connect(tcp_port);
	assert_true(extra >= 0);
	assert_true(harness_wait_eof(extra, 5000));
	close(extra);
	close(fds[0]);
	/* The server notices the close asynchronously: retry until a deadline. */
	int ok = 0;
	double end = harness_now_s() + 15;
	while (!ok && harness_now_s() < end) {
		int fd = harness_tcp_connect(tcp_port);
		uint8_t buf[64], body[64];
		size_t len = get_host_frame(buf, 7, 1, 1);
		frame_hdr_t hdr;
		if (harness_send_all(fd, buf, len) == 0 &&
		    harness_recv_frame(fd, &hdr, body, sizeof(body), 1000) == 1)
			ok = 1;
		close(fd);
		if (!ok)
			usleep(20000);
	}
	assert_true(ok);
	for (int i = 1; i < 8; i++)
		close(fds[i]);
}

static void test_write_queue_bound(void **state)
{
	/* A peer that asks for ~70 KB answers and never reads is cut off at
	 * max_write_queue (256 KiB); a bystander is unaffected. */
	int bystander = harness_tcp_connect(tcp_port);
	int fd = harness_tcp_connect(tcp_port);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	/* A send that blocks because the server never cuts it off fails at a deadline. */
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	lars_GetRouteRequest req = { .modid = 1, .cmdid = 6000 };
	uint8_t buf[64];
	size_t len;
	assert_int_equal(msg_frame_encode(LARS_ID_GET_ROUTE_REQ, lars_GetRouteRequest_fields,
					  &req, buf, sizeof(buf), &len), 0);
	int cut = 0;
	for (int i = 0; i < 400 && !cut; i++) {
		if (harness_send_all(fd, buf, len))
			cut = 1;
		if (i % 20 == 19)
			tcp_roundtrip(bystander, (uint32_t)i, 2);
	}
	/* The server closed it: reading now drains what was queued, then EOF. */
	assert_true(harness_wait_eof(fd, 10000));
	close(fd);
	tcp_roundtrip(bystander, 1, 2);
	close(bystander);
}

static void test_metrics(void **state)
{
	char out[65536];
	ssize_t n = harness_http_get(metrics_port, "/metrics", out, sizeof(out));
	assert_true(n > 0);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(out, "# TYPE lars_bad_frames_total counter"));
	/* One HELP/TYPE per family, though TCP and UDP listeners both count it. */
	const char *first = strstr(out, "# TYPE lars_frames_total counter");
	assert_non_null(first);
	assert_null(strstr(first + 1, "# TYPE lars_frames_total counter"));
	assert_non_null(strstr(out, "lars_frames_total{listener=\"echo-udp\"} "));
	assert_non_null(strstr(out, "lars_bad_frames_total{listener=\"echo\",reason=\"too_large\"} "));
	assert_null(strstr(out, "lars_bad_frames_total{listener=\"echo\",reason=\"too_large\"} 0\n"));
	assert_non_null(strstr(out, "lars_tcp_refused_total{listener=\"echo\"} "));
	assert_null(strstr(out, "lars_tcp_refused_total{listener=\"echo\"} 0\n"));
	assert_non_null(strstr(out, "lars_tcp_write_overflow_total{listener=\"echo\"} 1\n"));
	assert_non_null(strstr(out, "# TYPE lars_tcp_connections gauge"));
	n = harness_http_get(metrics_port, "/nope", out, sizeof(out));
	assert_non_null(strstr(out, "404"));
}

/* The value of the sample @name (with its labels) in @text, or -1. */
static double metric_value(const char *text, const char *name)
{
	char key[160];
	snprintf(key, sizeof(key), "\n%s ", name);
	const char *p = strstr(text, key);
	return p ? strtod(p + strlen(key), NULL) : -1;
}

/* echo_svc's test-only GetHost (modid 999999): blocks its loop cmdid ms. */
#define STALL_MODID 999999
#define STALL_MS 800
#define LAG_INTERVAL_MS 100 /* common/loop/loop_lag.h */

/* service_main() gives every daemon the lag metrics; a loop blocked for
 * STALL_MS shows: the lag timer fell due at most one interval into it. */
static void test_loop_lag(void **state)
{
	static char out[65536];
	assert_true(harness_http_get(metrics_port, "/metrics", out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "# TYPE lars_loop_lag_seconds histogram\n"));
	assert_non_null(strstr(out, "\nlars_loop_lag_seconds_bucket{le=\"0.001\"} "));
	assert_non_null(strstr(out, "\nlars_loop_lag_seconds_bucket{le=\"+Inf\"} "));
	assert_non_null(strstr(out, "\nlars_loop_lag_seconds_sum "));
	assert_non_null(strstr(out, "# TYPE lars_loop_lag_max_seconds gauge\n"));
	double before = metric_value(out, "lars_loop_lag_seconds_count");
	assert_true(before >= 0);

	int fd = harness_tcp_connect(tcp_port);
	assert_true(fd >= 0);
	uint8_t buf[64], body[256];
	size_t len = get_host_frame(buf, 77, STALL_MODID, STALL_MS);
	assert_int_equal(harness_send_all(fd, buf, len), 0);
	frame_hdr_t hdr;
	assert_int_equal(harness_recv_frame(fd, &hdr, body, sizeof(body), 15000), 1);
	close(fd);

	/* The timer runs in the loop's next turn; wait for it up to a deadline. */
	double want = (STALL_MS - LAG_INTERVAL_MS - 1) / 1000.0, max = -1;
	int64_t deadline = harness_deadline(10000);
	do {
		if (harness_http_get(metrics_port, "/metrics", out, sizeof(out)) > 0)
			max = metric_value(out, "lars_loop_lag_max_seconds");
		if (max < want)
			usleep(50000);
	} while (max < want && harness_left_ms(deadline) > 0);
	if (max < want)
		fail_msg("lars_loop_lag_max_seconds = %g after a %d ms stall, want >= %g",
			 max, STALL_MS, want);
	print_message("lars_loop_lag_max_seconds = %g after a %d ms stall\n", max, STALL_MS);
	/* It was observed: above the 0.5 s bucket, counted, and in the sum. */
	double count = metric_value(out, "lars_loop_lag_seconds_count");
	assert_true(count > before);
	assert_true(metric_value(out, "lars_loop_lag_seconds_bucket{le=\"0.5\"}") < count);
	assert_true(metric_value(out, "lars_loop_lag_seconds_bucket{le=\"+Inf\"}") == count);
	assert_true(metric_value(out, "lars_loop_lag_seconds_sum") >= want);
	/* The daemon serves on. */
	fd = harness_tcp_connect(tcp_port);
	tcp_roundtrip(fd, 78, 1);
	close(fd);
}

static void test_sd_notify_ready(void **state)
{
	/* Type=notify units: READY=1 once serving, STOPPING=1 at SIGTERM. */
	char path[108];
	snprintf(path, sizeof(path), "/tmp/lars-notify-%d", (int)getpid());
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	memcpy(a.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	harness_proc_t p;
	assert_int_equal(harness_spawn(&p, bin, harness_write_config(config)), 0);
	unsetenv("NOTIFY_SOCKET");
	char msg[512] = "";
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 5000), 1);
	ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
	assert_true(n > 0);
	msg[n] = 0;
	assert_non_null(strstr(msg, "READY=1"));
	assert_int_equal(harness_stop(&p), 0);
	assert_int_equal(poll(&pf, 1, 5000), 1);
	n = recv(fd, msg, sizeof(msg) - 1, 0);
	msg[n > 0 ? n : 0] = 0;
	assert_non_null(strstr(msg, "STOPPING=1"));
	close(fd);
	unlink(path);
}

int main(int argc, char **argv)
{
	bin = getenv("LARS_TEST_SVC_BIN");
	if (!bin) {
		fprintf(stderr, "LARS_TEST_SVC_BIN not set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_serves_split_and_coalesced),
		cmocka_unit_test(test_big_frame_over_tcp),
		cmocka_unit_test(test_bad_tcp_input_closes_only_offender),
		cmocka_unit_test(test_udp),
		cmocka_unit_test(test_connection_limit),
		cmocka_unit_test(test_write_queue_bound),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_loop_lag),
		cmocka_unit_test(test_sd_notify_ready),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
