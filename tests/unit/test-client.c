// SPDX-License-Identifier: MIT
// The client library against a fake agent (three UDP sockets in this
// process): seq matching, stale replies, retries, timeouts, malformed
// replies, get_route capacity, reports, one client per thread; NULL and
// negative arguments, $LARS_AGENT, the options' size; the agent's
// SYSTEM_ERROR and cut route answers, also through the lars tool ($LARS_BIN);
// lars_report_latency()'s bytes against the protoc-made golden files, and
// the durations `lars report/simulate/bench` send.
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "lars_client.h"
#include "msg.h"

enum mode {
	ANSWER,        /* a correct answer */
	STALE_FIRST,   /* a wrong-seq answer, then the right one */
	SILENT,        /* never answer */
	DROP_FIRST,    /* ignore the first request of each call */
	TRUNCATED,     /* 8 + msglen != datagram length */
	GARBAGE,       /* a valid frame with broken protobuf */
	BAD_RETCODE,   /* retcode 42 */
	OTHER_KEY,     /* a route answer for another key, then the right one */
	SYS_ERROR,     /* retcode SYSTEM_ERROR: the agent cannot reach lars-dns */
	CUT,           /* 5 hosts of a route of 5000 (host_total) */
	BIG,           /* a route of 5000 ordinary hosts, whole */
	NOEXIST_FIRST, /* NOEXIST for a key's first two get_host, then hosts */
};

#define BIG_HOSTS 5000

static int fds[3], base_port;
static _Atomic int mode;
static _Atomic bool stop;
static _Atomic int n_requests, n_reports;
static lars_ReportRequest last_report;
static uint8_t last_report_body[256]; /* its bytes after the frame header */
static size_t last_report_len;
/* The durations the reports carried: 0 (none) counted apart. */
static _Atomic unsigned long lat_none, lat_n;
static _Atomic uint64_t lat_sum;
static _Atomic uint32_t lat_min, lat_max;
static pthread_t agent;
static const char *lars_bin;
static _Atomic int seen_keys[64]; /* NOEXIST_FIRST: asks per cmdid */

static void reply(int fd, const struct sockaddr_in *to, int32_t id, const pb_msgdesc_t *f,
		  const void *msg)
{
	uint8_t buf[65536];
	size_t len;
	assert_int_equal(msg_frame_encode(id, f, msg, buf, sizeof(buf), &len), 0);
	sendto(fd, buf, len, 0, (const struct sockaddr *)to, sizeof(*to));
}

static void *agent_main(void *arg)
{
	uint8_t buf[65536];
	int drop_next = 1;
	while (!stop) {
		struct pollfd p[3];
		for (int i = 0; i < 3; i++)
			p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
		if (poll(p, 3, 50) <= 0)
			continue;
		for (int i = 0; i < 3; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(fds[i], buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
			if (n < 8)
				continue;
			frame_hdr_t hdr = frame_hdr_read(buf);
			if (hdr.msgid == LARS_ID_REPORT_REQ) {
				lars_ReportRequest r = lars_ReportRequest_init_zero;
				msg_decode(lars_ReportRequest_fields, &r, buf + 8, (size_t)n - 8, NULL);
				last_report = r;
				last_report_len = (size_t)n - 8 < sizeof(last_report_body)
							  ? (size_t)n - 8 : sizeof(last_report_body);
				memcpy(last_report_body, buf + 8, last_report_len);
				if (r.latency_us == 0) {
					lat_none++;
				} else {
					lat_n++;
					lat_sum += r.latency_us;
					if (r.latency_us < lat_min)
						lat_min = r.latency_us;
					if (r.latency_us > lat_max)
						lat_max = r.latency_us;
				}
				n_reports++;
				continue;
			}
			n_requests++;
			int m = mode;
			if (m == SILENT)
				continue;
			if (m == DROP_FIRST && drop_next) {
				drop_next = 0;
				continue;
			}
			drop_next = 1;
			if (hdr.msgid == LARS_ID_API_GET_ROUTE_REQ) {
				lars_GetRouteRequest q = lars_GetRouteRequest_init_zero;
				msg_decode(lars_GetRouteRequest_fields, &q, buf + 8, (size_t)n - 8, NULL);
				static lars_HostInfo hosts[BIG_HOSTS];
				for (int k = 0; k < BIG_HOSTS; k++)
					hosts[k] = (lars_HostInfo){ 2130706433 + k / 1000, 9000 + k % 1000 };
				lars_GetRouteResponse r = lars_GetRouteResponse_init_zero;
				msg_array_t arr = MSG_HOSTS(hosts, m == BIG ? BIG_HOSTS : 5);
				if (m == CUT)
					r.host_total = BIG_HOSTS;
				msg_array_bind(&arr, &r.host);
				if (m == OTHER_KEY) {
					r.modid = q.modid + 1;
					r.cmdid = q.cmdid;
					reply(fds[i], &from, LARS_ID_API_GET_ROUTE_RESP,
					      lars_GetRouteResponse_fields, &r);
				}
				r.modid = q.modid;
				r.cmdid = q.cmdid;
				reply(fds[i], &from, LARS_ID_API_GET_ROUTE_RESP,
				      lars_GetRouteResponse_fields, &r);
				continue;
			}
			lars_GetHostRequest q = lars_GetHostRequest_init_zero;
			msg_decode(lars_GetHostRequest_fields, &q, buf + 8, (size_t)n - 8, NULL);
			lars_GetHostResponse r = lars_GetHostResponse_init_zero;
			r.seq = q.seq;
			r.modid = q.modid;
			r.cmdid = q.cmdid;
			r.has_host = true;
			r.host = (lars_HostInfo){ (int32_t)0xC0A801B1, 9000 + q.cmdid };
			if (m == STALE_FIRST) {
				lars_GetHostResponse old = r;
				old.seq = q.seq - 1;
				old.host.port = 1;
				reply(fds[i], &from, LARS_ID_GET_HOST_RESP, lars_GetHostResponse_fields, &old);
			}
			if (m == TRUNCATED) {
				static const uint8_t bad[] = { 5, 0, 0, 0, 9, 0, 0, 0, 8, 1 };
				sendto(fds[i], bad, sizeof(bad), 0, (struct sockaddr *)&from, fl);
				continue;
			}
			if (m == GARBAGE) {
				static const uint8_t bad[] = { 5, 0, 0, 0, 2, 0, 0, 0, 8, 0xff };
				sendto(fds[i], bad, sizeof(bad), 0, (struct sockaddr *)&from, fl);
				continue;
			}
			if (m == BAD_RETCODE)
				r.retcode = 42;
			if (m == SYS_ERROR) {
				r.retcode = LARS_SYSTEM_ERROR;
				r.has_host = false;
			}
			if (m == NOEXIST_FIRST && q.cmdid >= 0 && q.cmdid < 64 &&
			    seen_keys[q.cmdid]++ < 2) {
				r.retcode = LARS_NOEXIST;
				r.has_host = false;
			}
			reply(fds[i], &from, LARS_ID_GET_HOST_RESP, lars_GetHostResponse_fields, &r);
		}
	}
	return NULL;
}

static int setup(void **state)
{
	/* Three consecutive free ports. */
	for (int tries = 0; tries < 200; tries++) {
		base_port = 20000 + (int)((unsigned)rand() % 12000);
		int ok = 1;
		for (int i = 0; i < 3; i++) {
			fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
			struct sockaddr_in a = { .sin_family = AF_INET,
						 .sin_port = htons((uint16_t)(base_port + i)),
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			if (bind(fds[i], (struct sockaddr *)&a, sizeof(a))) {
				for (int k = 0; k <= i; k++)
					close(fds[k]);
				ok = 0;
				break;
			}
		}
		if (ok)
			return pthread_create(&agent, NULL, agent_main, NULL);
	}
	return -1;
}

static int teardown(void **state)
{
	stop = true;
	pthread_join(agent, NULL);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	return 0;
}

static lars_client_t *client(int timeout_ms, int retries)
{
	lars_client_options_t o;
	lars_client_options_init(&o);
	o.base_port = base_port;
	o.timeout_ms = timeout_ms;
	o.retries = retries;
	lars_client_t *c;
	assert_int_equal(lars_client_new(&o, &c), 0);
	return c;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

static void test_get_host(void **state)
{
	mode = ANSWER;
	lars_client_t *c = client(200, 3);
	lars_host_t h;
	for (int cmdid = 1; cmdid <= 3; cmdid++) { /* all three sockets */
		assert_int_equal(lars_get_host(c, 7, cmdid, &h), LARS_SUCC);
		assert_int_equal(h.port, 9000 + cmdid);
		assert_int_equal(h.ip, 0xC0A801B1u);
		assert_string_equal(h.ip_str, "192.168.1.177"); /* the right way round */
	}
	assert_string_equal(lars_client_error(c), "");
	lars_client_free(c);
}

static void test_stale_reply_skipped(void **state)
{
	mode = STALE_FIRST;
	lars_client_t *c = client(200, 3);
	lars_host_t h;
	for (int i = 0; i < 20; i++) {
		assert_int_equal(lars_get_host(c, 1, 1, &h), LARS_SUCC);
		assert_int_equal(h.port, 9001); /* never the stale port 1 */
	}
	lars_client_free(c);
}

static void test_late_answer_from_earlier_call(void **state)
{
	/* A call times out; its answer arrives late, during the next call. */
	mode = DROP_FIRST;
	lars_client_t *c = client(50, 2);
	lars_host_t h;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(lars_get_host(c, 2, i, &h), LARS_SUCC); /* second attempt */
		assert_int_equal(h.port, 9000 + i);
	}
	lars_client_free(c);
}

static void test_timeout_bounded(void **state)
{
	mode = SILENT;
	lars_client_t *c = client(40, 3);
	lars_host_t h;
	int before = n_requests;
	double t0 = now_ms();
	assert_int_equal(lars_get_host(c, 1, 1, &h), LARS_SYSTEM_ERROR);
	double took = now_ms() - t0;
	assert_true(took >= 110 && took < 400);
	assert_int_equal(n_requests - before, 3); /* one send per attempt */
	assert_non_null(strstr(lars_client_error(c), "no answer"));
	size_t n;
	assert_int_equal(lars_get_route(c, 1, 1, &h, 1, &n), LARS_SYSTEM_ERROR);
	lars_client_free(c);
}

static void test_malformed_replies(void **state)
{
	lars_client_t *c = client(100, 2);
	lars_host_t h;
	static const int modes[] = { TRUNCATED, GARBAGE, BAD_RETCODE };
	for (size_t i = 0; i < 3; i++) {
		mode = modes[i];
		assert_int_equal(lars_get_host(c, 1, 1, &h), LARS_SYSTEM_ERROR);
		assert_non_null(strstr(lars_client_error(c), "bad reply"));
	}
	mode = ANSWER;
	assert_int_equal(lars_get_host(c, 1, 1, &h), LARS_SUCC); /* and it recovers */
	lars_client_free(c);
}

static void test_get_route_and_reg_init(void **state)
{
	mode = OTHER_KEY; /* an answer for another key first: skipped */
	lars_client_t *c = client(200, 3);
	lars_host_t hosts[3];
	size_t n;
	assert_int_equal(lars_get_route(c, 4, 5, hosts, 3, &n), LARS_SUCC);
	assert_int_equal(n, 5);           /* the route has five */
	assert_int_equal(hosts[2].port, 9002); /* three fitted */
	assert_string_equal(hosts[0].ip_str, "127.0.0.1");
	assert_int_equal(lars_reg_init(c, 4, 5), LARS_SUCC);
	lars_client_free(c);
}

static void test_report(void **state)
{
	mode = ANSWER;
	lars_client_t *c = client(100, 3);
	lars_host_t h;
	assert_int_equal(lars_get_host(c, 3, 4, &h), LARS_SUCC);
	int before = n_reports;
	assert_int_equal(lars_report(c, 3, 4, &h, LARS_OVERLOAD), LARS_SUCC);
	/* The fake agent's thread counts it: wait for that, up to a deadline. */
	for (int64_t end = test_now_ms() + 10000; n_reports == before && test_now_ms() < end;)
		usleep(2000);
	assert_int_equal(n_reports, before + 1);
	assert_int_equal(last_report.modid, 3);
	assert_int_equal(last_report.cmdid, 4);
	assert_int_equal(last_report.host.ip, (int32_t)0xC0A801B1);
	assert_int_equal(last_report.host.port, 9004);
	assert_int_equal(last_report.retcode, LARS_OVERLOAD);
	lars_client_free(c);
}

/* Wait (up to a deadline) until the fake agent has counted @want reports. */
static void wait_reports(int want)
{
	for (int64_t end = test_now_ms() + 10000; n_reports < want && test_now_ms() < end;)
		usleep(2000);
	assert_int_equal(n_reports, want);
}

static void lat_reset(void)
{
	lat_none = lat_n = 0;
	lat_sum = 0;
	lat_min = UINT32_MAX;
	lat_max = 0;
}

/*
 * tests/golden/ReportRequest.bin and ReportRequest_latency.bin, made by
 * protoc --encode from the .txtpb beside them: 1/1, 192.168.1.177:8080,
 * retcode 1 without a duration; retcode 0 with latency_us 4200.
 */
static const uint8_t golden_report[] = {
	0x08, 0x01, 0x10, 0x01, 0x1a, 0x0e, 0x08, 0xb1, 0x83, 0xa0, 0x85, 0xfc, 0xff, 0xff,
	0xff, 0xff, 0x01, 0x10, 0x90, 0x3f, 0x20, 0x01,
};
static const uint8_t golden_report_latency[] = {
	0x08, 0x01, 0x10, 0x01, 0x1a, 0x0e, 0x08, 0xb1, 0x83, 0xa0, 0x85, 0xfc, 0xff, 0xff,
	0xff, 0xff, 0x01, 0x10, 0x90, 0x3f, 0x28, 0xe8, 0x20,
};

static void assert_last_body(const uint8_t *want, size_t len)
{
	assert_int_equal(last_report_len, len);
	assert_memory_equal(last_report_body, want, len);
}

static void test_report_latency(void **state)
{
	mode = ANSWER;
	lars_client_t *c = client(100, 3);
	lars_host_t h = { .ip = 0xC0A801B1, .ip_str = "192.168.1.177", .port = 8080 };
	/* The duration is field 5 on the wire, byte for byte as protoc has it. */
	int before = n_reports;
	assert_int_equal(lars_report_latency(c, 1, 1, &h, LARS_SUCC, 4200), LARS_SUCC);
	wait_reports(before + 1);
	assert_last_body(golden_report_latency, sizeof(golden_report_latency));
	assert_int_equal(last_report.latency_us, 4200);
	/* lars_report() is unchanged: the original client's bytes, no field 5. */
	assert_int_equal(lars_report(c, 1, 1, &h, LARS_OVERLOAD), LARS_SUCC);
	wait_reports(before + 2);
	assert_last_body(golden_report, sizeof(golden_report));
	/* 0 is "not measured": the same bytes as lars_report(). */
	assert_int_equal(lars_report_latency(c, 1, 1, &h, LARS_OVERLOAD, 0), LARS_SUCC);
	wait_reports(before + 3);
	assert_last_body(golden_report, sizeof(golden_report));
	/* The whole range of the field. */
	assert_int_equal(lars_report_latency(c, 3, 4, &h, 7, UINT32_MAX), LARS_SUCC);
	wait_reports(before + 4);
	assert_int_equal(last_report.latency_us, UINT32_MAX);
	assert_int_equal(last_report.retcode, 7);
	assert_int_equal(last_report.modid, 3);
	/* Bad input as lars_report(): refused, nothing sent. */
	assert_int_equal(lars_report_latency(NULL, 1, 1, &h, 0, 5), LARS_SYSTEM_ERROR);
	assert_non_null(strstr(lars_client_error(NULL), "no client"));
	assert_int_equal(lars_report_latency(c, 1, 1, NULL, 0, 5), LARS_SYSTEM_ERROR);
	assert_non_null(strstr(lars_client_error(c), "bad input"));
	assert_int_equal(lars_report_latency(c, -1, 1, &h, 0, 5), LARS_SYSTEM_ERROR);
	lars_host_t got;
	assert_int_equal(lars_get_host(c, 1, 1, &got), LARS_SUCC); /* after any report */
	assert_int_equal(n_reports, before + 4);
	lars_client_free(c);
}

static void *thread_main(void *arg)
{
	intptr_t id = (intptr_t)arg;
	lars_client_t *c = client(500, 3);
	for (int i = 0; i < 500; i++) {
		lars_host_t h;
		int cmdid = (int)id * 1000 + i;
		if (lars_get_host(c, 9, cmdid, &h) != LARS_SUCC || h.port != 9000 + cmdid)
			return (void *)1;
	}
	lars_client_free(c);
	return NULL;
}

static void test_one_client_per_thread(void **state)
{
	mode = ANSWER;
	pthread_t t[4];
	for (intptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, thread_main, (void *)i);
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		assert_null(r);
	}
}

static void test_no_agent(void **state)
{
	/* Nothing listens: refused at once, never a hang. */
	lars_client_options_t o;
	lars_client_options_init(&o);
	o.base_port = 1; /* privileged, unused ports 1..3 */
	lars_client_t *c;
	assert_int_equal(lars_client_new(&o, &c), 0);
	lars_host_t h = { .ip = 2130706433, .ip_str = "127.0.0.1", .port = 9 };
	double t0 = now_ms();
	assert_int_equal(lars_get_host(c, 1, 1, &h), LARS_SYSTEM_ERROR);
	assert_true(now_ms() - t0 < 400);
	assert_true(strlen(lars_client_error(c)) > 0);
	assert_int_equal(lars_report(c, 1, 1, &h, 0) == LARS_SUCC ||
			 lars_report(c, 1, 1, &h, 0) == LARS_SYSTEM_ERROR, 1);
	lars_client_free(c);
	/* Bad options. */
	o.agent_ip = "not-an-ip";
	assert_int_equal(lars_client_new(&o, &c), -EINVAL);
	lars_client_options_init(&o);
	o.timeout_ms = 0;
	assert_int_equal(lars_client_new(&o, &c), -EINVAL);
	assert_string_equal(lars_strerror(LARS_NOEXIST), "no such route");
}

static void test_null_and_bad_input(void **state)
{
	mode = ANSWER;
	lars_client_t *c = client(100, 2);
	lars_host_t h = { .ip = 2130706433, .ip_str = "127.0.0.1", .port = 9 };
	size_t n, total;
	/* NULL clients: an error and a reason, never a crash. */
	assert_int_equal(lars_get_host(NULL, 1, 1, &h), LARS_SYSTEM_ERROR);
	assert_non_null(strstr(lars_client_error(NULL), "no client"));
	assert_int_equal(lars_report(NULL, 1, 1, &h, 0), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_get_route(NULL, 1, 1, &h, 1, &n), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_get_route_ex(NULL, 1, 1, &h, 1, &n, &total), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_reg_init(NULL, 1, 1), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_client_new(NULL, NULL), -EINVAL);
	assert_true(strlen(lars_client_error(NULL)) > 0);
	lars_client_options_init(NULL);
	lars_client_free(NULL);
	/* NULL out-pointers, and nothing is sent for them. */
	int before = n_requests, reports = n_reports;
	assert_int_equal(lars_get_host(c, 1, 1, NULL), LARS_SYSTEM_ERROR);
	assert_non_null(strstr(lars_client_error(c), "bad input"));
	assert_int_equal(lars_report(c, 1, 1, NULL, 0), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_get_route(c, 1, 1, &h, 1, NULL), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_get_route(c, 1, 1, NULL, 1, &n), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_get_route_ex(c, 1, 1, &h, 1, &n, NULL), LARS_SYSTEM_ERROR);
	/* Negative keys are bad input, refused here. */
	assert_int_equal(lars_get_host(c, -1, 1, &h), LARS_SYSTEM_ERROR);
	assert_non_null(strstr(lars_client_error(c), "bad input"));
	assert_int_equal(lars_get_host(c, 1, -5, &h), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_get_route(c, -1, 1, &h, 1, &n), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_report(c, 1, -1, &h, 0), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_reg_init(c, -1, -1), LARS_SYSTEM_ERROR);
	/* A route count of 0 needs no array. */
	assert_int_equal(lars_get_route(c, 1, 1, NULL, 0, &n), LARS_SUCC);
	assert_int_equal(n, 5);
	assert_int_equal(n_requests - before, 1); /* only that one went out */
	/* The fake agent reads on another thread: a report would be counted
	 * by the time a later answered call returns. */
	assert_int_equal(lars_get_host(c, 1, 1, &h), LARS_SUCC);
	assert_int_equal(n_reports, reports);
	lars_client_free(c);
}

static void test_env_agent(void **state)
{
	/* lars_client_new(NULL) finds the agent in $LARS_AGENT, as lars does. */
	mode = ANSWER;
	char env[64];
	snprintf(env, sizeof(env), "127.0.0.1:%d", base_port);
	assert_int_equal(setenv("LARS_AGENT", env, 1), 0);
	lars_client_t *c = NULL;
	assert_int_equal(lars_client_new(NULL, &c), 0);
	lars_host_t h;
	assert_int_equal(lars_get_host(c, 2, 3, &h), LARS_SUCC);
	assert_int_equal(h.port, 9003);
	lars_client_free(c);
	assert_int_equal(setenv("LARS_AGENT", "localhost", 1), 0);
	assert_int_equal(lars_client_new(NULL, &c), -EINVAL);
	assert_non_null(strstr(lars_client_error(NULL), "LARS_AGENT"));
	/* Options given: they win over the environment. */
	lars_client_options_t o;
	lars_client_options_init(&o);
	o.base_port = base_port;
	assert_int_equal(lars_client_new(&o, &c), 0);
	assert_int_equal(lars_get_host(c, 2, 3, &h), LARS_SUCC);
	lars_client_free(c);
	unsetenv("LARS_AGENT");
}

static void test_options_size(void **state)
{
	lars_client_options_t o;
	lars_client_options_init(&o);
	assert_int_equal(o.size, sizeof(o));
	o.base_port = base_port;
	lars_client_t *c;
	/* Without a size (not from lars_client_options_init): refused. */
	lars_client_options_t bare = o;
	bare.size = 0;
	assert_int_equal(lars_client_new(&bare, &c), -EINVAL);
	assert_non_null(strstr(lars_client_error(NULL), "size"));
	/* A caller built against a later header, with fields this library
	 * does not know: it reads only its own. */
	struct { lars_client_options_t o; int later_field; } newer = { o, 12345 };
	newer.o.size = sizeof(newer);
	assert_int_equal(lars_client_new(&newer.o, &c), 0);
	lars_host_t h;
	mode = ANSWER;
	assert_int_equal(lars_get_host(c, 1, 1, &h), LARS_SUCC);
	lars_client_free(c);
	assert_true(LARS_CLIENT_OPTIONS_MIN_SIZE <= sizeof(o));
}

static void test_system_error_reason(void **state)
{
	mode = SYS_ERROR;
	lars_client_t *c = client(100, 2);
	lars_host_t h;
	assert_int_equal(lars_get_host(c, 1, 1, &h), LARS_SYSTEM_ERROR);
	assert_string_equal(lars_client_error(c), "route service unreachable");
	mode = ANSWER;
	assert_int_equal(lars_get_host(c, 1, 1, &h), LARS_SUCC);
	assert_string_equal(lars_client_error(c), "");
	lars_client_free(c);
}

static void test_route_cut_and_big(void **state)
{
	lars_client_t *c = client(500, 3);
	static lars_host_t hosts[BIG_HOSTS];
	size_t n = 0, total = 0;
	mode = CUT;
	assert_int_equal(lars_get_route_ex(c, 4, 5, hosts, BIG_HOSTS, &n, &total), LARS_SUCC);
	assert_int_equal(n, 5);
	assert_int_equal(total, BIG_HOSTS);
	assert_int_equal(lars_get_route(c, 4, 5, hosts, BIG_HOSTS, &n), LARS_SUCC);
	assert_int_equal(n, 5);
	/* A whole route of 5000 ordinary hosts fits one datagram. */
	mode = BIG;
	assert_int_equal(lars_get_route_ex(c, 4, 5, hosts, BIG_HOSTS, &n, &total), LARS_SUCC);
	assert_int_equal(n, BIG_HOSTS);
	assert_int_equal(total, BIG_HOSTS);
	assert_int_equal(hosts[BIG_HOSTS - 1].port, 9999);
	assert_string_equal(hosts[BIG_HOSTS - 1].ip_str, "127.0.0.5");
	mode = ANSWER;
	assert_int_equal(lars_get_route_ex(c, 4, 5, hosts, 3, &n, &total), LARS_SUCC);
	assert_int_equal(n, 5);
	assert_int_equal(total, 5); /* not cut */
	lars_client_free(c);
}

/* `lars --agent <fake> ARGS`: its exit status; stdout and stderr into @out. */
static int lars_run(char *out, size_t cap, const char *args)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "'%s' %s --agent 127.0.0.1:%d 2>&1", lars_bin, args, base_port);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_lars_tool(void **state)
{
	if (!lars_bin) {
		fprintf(stderr, "LARS_BIN not set: the lars tool checks are skipped\n");
		return;
	}
	static char out[1 << 20];
	/* A cut list: printed, and a warning says so. */
	mode = CUT;
	assert_int_equal(lars_run(out, sizeof(out), "get-route 4 5"), 0);
	assert_non_null(strstr(out, "127.0.0.1:9004\n"));
	assert_non_null(strstr(out, "the list is cut: 5 of 5000 hosts"));
	mode = BIG;
	assert_int_equal(lars_run(out, sizeof(out), "get-route 4 5"), 0);
	assert_non_null(strstr(out, "127.0.0.5:9999\n"));
	assert_null(strstr(out, "cut"));
	/* The agent cannot reach lars-dns. */
	mode = SYS_ERROR;
	assert_int_equal(lars_run(out, sizeof(out), "get-host 1 1"), LARS_SYSTEM_ERROR);
	assert_non_null(strstr(out, "route service unreachable"));
	/* A route still being fetched: asked again within the timeout. */
	mode = NOEXIST_FIRST;
	seen_keys[7] = 0;
	assert_int_equal(lars_run(out, sizeof(out), "get-host 1 7 --timeout 500"), 0);
	assert_non_null(strstr(out, "host is 192.168.1.177:9007"));
	assert_true(seen_keys[7] >= 3);
	/* A report to a live agent: sent and answered, exit 0, options last. */
	mode = ANSWER;
	int before = n_reports;
	assert_int_equal(lars_run(out, sizeof(out), "report 3 4 127.0.0.1 9004 -1"), 0);
	assert_int_equal(n_reports, before + 1);
	assert_int_equal(last_report.retcode, -1);
	assert_int_equal(last_report.latency_us, 0);
}

/*
 * An answered get_host on @modid/@cmdid's port: the fake agent reads a port's
 * datagrams in order, so every report sent there before (by a tool that has
 * exited) has been counted.
 */
static void agent_sync(int modid, int cmdid)
{
	lars_client_t *c = client(1000, 3);
	lars_host_t h;
	assert_int_equal(lars_get_host(c, modid, cmdid, &h), LARS_SUCC);
	lars_client_free(c);
}

static void test_lars_tool_latency(void **state)
{
	if (!lars_bin) {
		fprintf(stderr, "LARS_BIN not set: the lars tool checks are skipped\n");
		return;
	}
	static char out[1 << 16];
	mode = ANSWER;
	/* report --latency-us N: the duration on the wire, before or after. */
	int before = n_reports;
	assert_int_equal(lars_run(out, sizeof(out), "report 3 4 127.0.0.1 9004 0 --latency-us 4200"),
			 0);
	assert_int_equal(n_reports, before + 1);
	assert_int_equal(last_report.latency_us, 4200);
	assert_int_equal(last_report.host.port, 9004);
	assert_int_equal(lars_run(out, sizeof(out),
				  "--latency-us 4294967295 report 3 4 127.0.0.1 9004 1"), 0);
	assert_int_equal(last_report.latency_us, UINT32_MAX);
	assert_int_equal(last_report.retcode, 1);

	/* simulate --latency-us N: every report carries N; the mean is shown. */
	lat_reset();
	before = n_reports;
	assert_int_equal(lars_run(out, sizeof(out), "simulate 1 1 --count 50 --latency-us 1500"), 0);
	wait_reports(before + 50);
	assert_int_equal(lat_n, 50);
	assert_int_equal(lat_min, 1500);
	assert_int_equal(lat_max, 1500);
	assert_non_null(strstr(out, "MEAN_US"));
	assert_non_null(strstr(out, "192.168.1.177:9001"));
	assert_non_null(strstr(out, " 1500\n"));

	/* --latency-us-spread LO:HI: uniform in LO..HI, both ends inclusive
	 * (400 draws of 11 values: not all the same). */
	lat_reset();
	before = n_reports;
	assert_int_equal(lars_run(out, sizeof(out),
				  "simulate 1 2 --count 400 --latency-us-spread 1000:1010"), 0);
	wait_reports(before + 400);
	assert_int_equal(lat_n, 400);
	assert_true(lat_min >= 1000 && lat_max <= 1010);
	assert_true(lat_min < lat_max);

	/* --slow: that host's durations; the others' keep the spread, or none. */
	lat_reset();
	before = n_reports;
	assert_int_equal(lars_run(out, sizeof(out),
				  "simulate 1 1 --count 20 --slow 192.168.1.177:9001=90000:90010 "
				  "--latency-us-spread 10:20"), 0);
	wait_reports(before + 20);
	assert_true(lat_min >= 90000 && lat_max <= 90010);
	lat_reset();
	before = n_reports;
	assert_int_equal(lars_run(out, sizeof(out),
				  "simulate 1 2 --count 20 --slow 192.168.1.177:9001=90000"), 0);
	wait_reports(before + 20);
	assert_int_equal(lat_none, 20); /* 1/2's host is :9002, not slow */
	assert_non_null(strstr(out, "MEAN_US"));

	/* Without a duration option simulate sends none, and prints as before. */
	lat_reset();
	before = n_reports;
	assert_int_equal(lars_run(out, sizeof(out), "simulate 1 1 --count 10"), 0);
	wait_reports(before + 10);
	assert_int_equal(lat_none, 10);
	assert_null(strstr(out, "MEAN_US"));

	/* bench: the measured get_host round trip by default (>= 1 us: 0
	 * would say "not measured"), N with --latency-us, 0 = none. */
	lat_reset();
	assert_int_equal(lars_run(out, sizeof(out), "bench --threads 1 --seconds 1"), 0);
	agent_sync(1, 1);
	assert_non_null(strstr(out, "the get_host round trip measured"));
	assert_true(lat_n > 0);
	assert_true(lat_min >= 1);
	lat_reset();
	assert_int_equal(lars_run(out, sizeof(out), "bench --seconds 1 --latency-us 777"), 0);
	agent_sync(1, 1);
	assert_non_null(strstr(out, "latency_us: 777\n"));
	assert_true(lat_n > 0);
	assert_true(lat_min == 777 && lat_max == 777);
	lat_reset();
	assert_int_equal(lars_run(out, sizeof(out), "bench --seconds 1 --latency-us 0"), 0);
	agent_sync(1, 1);
	assert_non_null(strstr(out, "latency_us: none\n"));
	assert_true(lat_none > 0);
	assert_int_equal(lat_n, 0);
	/* The summary stays the last line (bench/soak.sh reads it). */
	const char *summary = strstr(out, "threads 1, 1 s: average");
	assert_non_null(summary);
	assert_string_equal(strchr(summary, '\n'), "\n");

	/* Usage errors: exit 64, nothing sent. */
	before = n_reports;
	assert_int_equal(lars_run(out, sizeof(out), "get-host 1 1 --latency-us 5"), 64);
	assert_non_null(strstr(out, "option of report, simulate and bench"));
	assert_int_equal(lars_run(out, sizeof(out), "report 1 1 127.0.0.1 9 0 --latency-us -3"), 64);
	assert_int_equal(lars_run(out, sizeof(out), "report 1 1 127.0.0.1 9 0 --latency-us 2x"), 64);
	assert_int_equal(lars_run(out, sizeof(out),
				  "simulate 1 1 --latency-us 5 --latency-us-spread 1:2"), 64);
	assert_int_equal(lars_run(out, sizeof(out), "simulate 1 1 --latency-us-spread 9:3"), 64);
	assert_int_equal(lars_run(out, sizeof(out), "bench --latency-us-spread 1:3"), 64);
	assert_int_equal(lars_run(out, sizeof(out), "simulate 1 1 --slow 127.0.0.1=5"), 64);
	assert_int_equal(n_reports, before);
}

int main(void)

{
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	lars_bin = getenv("LARS_BIN");
	unsetenv("LARS_AGENT"); /* the defaults are what is tested */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_host),
		cmocka_unit_test(test_stale_reply_skipped),
		cmocka_unit_test(test_late_answer_from_earlier_call),
		cmocka_unit_test(test_timeout_bounded),
		cmocka_unit_test(test_malformed_replies),
		cmocka_unit_test(test_get_route_and_reg_init),
		cmocka_unit_test(test_report),
		cmocka_unit_test(test_report_latency),
		cmocka_unit_test(test_one_client_per_thread),
		cmocka_unit_test(test_no_agent),
		cmocka_unit_test(test_null_and_bad_input),
		cmocka_unit_test(test_env_agent),
		cmocka_unit_test(test_options_size),
		cmocka_unit_test(test_system_error_reason),
		cmocka_unit_test(test_route_cut_and_big),
		cmocka_unit_test(test_lars_tool),
		cmocka_unit_test(test_lars_tool_latency),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
