// SPDX-License-Identifier: MIT
// Listeners: exclusive ports and fair UDP service.
// - A TCP or UDP listener fails with UV_EADDRINUSE while another socket
//   holds an overlapping address and port, whatever options that socket set
//   (SO_REUSEADDR, SO_REUSEPORT) and in either order (0.0.0.0 against
//   127.0.0.1); with reuse_port on both sides the port is shared.
// - Several UDP sockets on one loop are served in turns: with datagrams
//   queued on every socket, one socket is never served more than
//   UDP_TURN_MAX times in a row while another has some waiting. No timing:
//   the datagrams are queued before the loop runs, the order is what counts.
// The wildcard cases (0.0.0.0, ::) run only in a network namespace of the
// test's own (root), where a wildcard address reaches loopback alone.
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "tcp_server.h"
#include "udp_server.h"
#include "xalloc.h"

static bool wildcards; /* in a private network namespace: 0.0.0.0 and :: are safe */

/* A network namespace of our own with its loopback up, so binding a
 * wildcard address exposes nothing beyond loopback. */
static bool private_netns(void)
{
	if (unshare(CLONE_NEWNET))
		return false;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	bool ok = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
	ifr.ifr_flags |= IFF_UP;
	ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Loopback always; the wildcards only in the private namespace. */
static bool usable(const char *ip)
{
	return wildcards || net_is_loopback(ip);
}

/* A socket of another program: family from @ip, options as given. */
static int holder(int type, const char *ip, int port, bool reuseaddr, bool reuseport,
		  bool do_listen)
{
	struct sockaddr_storage ss;
	assert_int_equal(net_addr(ip, port, &ss), 0);
	int fd = socket(ss.ss_family, type, 0), one = 1;
	assert_true(fd >= 0);
	if (reuseaddr)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	if (reuseport)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
	socklen_t len = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
						 : sizeof(struct sockaddr_in6);
	if (bind(fd, (struct sockaddr *)&ss, len)) {
		close(fd);
		return -1;
	}
	if (do_listen)
		assert_int_equal(listen(fd, 8), 0);
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void drain(uv_loop_t *loop)
{
	uv_run(loop, UV_RUN_NOWAIT);
	uv_run(loop, UV_RUN_NOWAIT);
}

static int try_tcp(uv_loop_t *loop, const char *ip, int port, bool reuse_port)
{
	dispatch_t d;
	dispatch_init(&d);
	tcp_server_t *srv = NULL;
	tcp_server_opts_t o = { .name = "t", .ip = ip, .port = port,
				.reuse_port = reuse_port, .dispatch = &d };
	int r = tcp_server_start(loop, &o, &srv);
	if (r == 0)
		tcp_server_close(srv);
	drain(loop);
	return r;
}

static int try_udp(uv_loop_t *loop, const char *ip, int port, bool reuse_port)
{
	dispatch_t d;
	dispatch_init(&d);
	udp_server_t *srv = NULL;
	udp_server_opts_t o = { .name = "u", .ip = ip, .port = port,
				.reuse_port = reuse_port, .dispatch = &d };
	int r = udp_server_start(loop, &o, &srv);
	if (r == 0)
		udp_server_close(srv);
	drain(loop);
	return r;
}

/* Holder first (any options, bound or listening), then ours: refused. */
static void test_taken_port_refused(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	static const char *const hips[] = { "0.0.0.0", "127.0.0.1", "::" };
	static const char *const oips[] = { "127.0.0.1", "0.0.0.0" };
	int n_cases = 0;
	for (size_t h = 0; h < ARRAY_SIZE(hips); h++)
		for (int opt = 0; opt < 4; opt++)
			for (size_t o = 0; o < ARRAY_SIZE(oips); o++) {
				bool ra = opt & 1, rp = opt & 2;
				if (!usable(hips[h]) || !usable(oips[o]))
					continue;
				/* TCP: a listening holder. */
				int fd = holder(SOCK_STREAM, hips[h], 0, ra, rp, true);
				if (fd < 0)
					continue; /* no IPv6 here */
				int port = bound_port(fd);
				int r = try_tcp(&loop, oips[o], port, false);
				if (r != UV_EADDRINUSE)
					fail_msg("tcp %s:%d shared with a listening holder on %s "
						 "(reuseaddr %d reuseport %d): %s",
						 oips[o], port, hips[h], ra, rp, uv_err_name(r));
				close(fd);
				/* UDP: any holder. */
				fd = holder(SOCK_DGRAM, hips[h], 0, ra, rp, false);
				assert_true(fd >= 0);
				port = bound_port(fd);
				r = try_udp(&loop, oips[o], port, false);
				if (r != UV_EADDRINUSE)
					fail_msg("udp %s:%d shared with a holder on %s "
						 "(reuseaddr %d reuseport %d): %s",
						 oips[o], port, hips[h], ra, rp, uv_err_name(r));
				/* Even when we would share: the holder did not ask
				 * for SO_REUSEPORT, or did; only both sharing works. */
				r = try_udp(&loop, oips[o], port, true);
				if (rp ? r != 0 : r != UV_EADDRINUSE)
					fail_msg("udp %s:%d reuse_port against holder %s reuseport %d: %s",
						 oips[o], port, hips[h], rp, uv_err_name(r));
				close(fd);
				n_cases++;
			}
	assert_true(n_cases >= (wildcards ? 16 : 4));
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* Ours first, exclusive: no other socket can bind (UDP) or listen (TCP). */
static void test_ours_first_keeps_port(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	dispatch_t d;
	dispatch_init(&d);
	static const char *const aips[] = { "0.0.0.0", "127.0.0.1", "::" };
	for (int proto = 0; proto < 2; proto++) {
		tcp_server_t *ts = NULL;
		udp_server_t *us = NULL;
		int port;
		if (proto == 0) {
			tcp_server_opts_t o = { .name = "t", .ip = "127.0.0.1", .dispatch = &d };
			assert_int_equal(tcp_server_start(&loop, &o, &ts), 0);
			port = tcp_server_port(ts);
		} else {
			udp_server_opts_t o = { .name = "u", .ip = "127.0.0.1", .dispatch = &d };
			assert_int_equal(udp_server_start(&loop, &o, &us), 0);
			port = udp_server_port(us);
		}
		for (size_t a = 0; a < ARRAY_SIZE(aips); a++)
			for (int opt = 0; opt < 4; opt++) {
				int fd;
				if (!usable(aips[a]))
					continue;
				if (proto == 0) {
					/* It may bind (SO_REUSEADDR) but never listen. */
					struct sockaddr_storage ss;
					assert_int_equal(net_addr(aips[a], port, &ss), 0);
					fd = socket(ss.ss_family, SOCK_STREAM, 0);
					int one = 1;
					if (opt & 1)
						setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
					if (opt & 2)
						setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
					socklen_t len = ss.ss_family == AF_INET
								? sizeof(struct sockaddr_in)
								: sizeof(struct sockaddr_in6);
					if (bind(fd, (struct sockaddr *)&ss, len) == 0 && listen(fd, 8) == 0)
						fail_msg("a second listener on %s:%d (options %d)", aips[a],
							 port, opt);
					close(fd);
				} else {
					fd = holder(SOCK_DGRAM, aips[a], port, opt & 1, opt & 2, false);
					if (fd >= 0)
						fail_msg("a second udp socket on %s:%d (options %d)", aips[a],
							 port, opt);
				}
			}
		tcp_server_close(ts);
		udp_server_close(us);
		drain(&loop);
	}
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* reuse_port on both sides: two of ours share the port. */
static void test_reuse_port_shares(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	dispatch_t d;
	dispatch_init(&d);
	tcp_server_t *t1, *t2;
	tcp_server_opts_t to = { .name = "t", .ip = "127.0.0.1", .reuse_port = true,
				 .dispatch = &d };
	assert_int_equal(tcp_server_start(&loop, &to, &t1), 0);
	to.port = tcp_server_port(t1);
	assert_int_equal(tcp_server_start(&loop, &to, &t2), 0);
	to.reuse_port = false;
	assert_int_equal(try_tcp(&loop, "127.0.0.1", to.port, false), UV_EADDRINUSE);
	udp_server_t *u1, *u2;
	udp_server_opts_t uo = { .name = "u", .ip = "127.0.0.1", .reuse_port = true,
				 .dispatch = &d };
	assert_int_equal(udp_server_start(&loop, &uo, &u1), 0);
	uo.port = udp_server_port(u1);
	assert_int_equal(udp_server_start(&loop, &uo, &u2), 0);
	assert_int_equal(try_udp(&loop, "127.0.0.1", uo.port, false), UV_EADDRINUSE);
	tcp_server_close(t1);
	tcp_server_close(t2);
	udp_server_close(u1);
	udp_server_close(u2);
	drain(&loop);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- fairness ---- */

#define N_SOCKS 3
#define PER_SOCK 48

typedef struct fair {
	uv_loop_t loop;
	uv_timer_t deadline;
	udp_server_t *srv[N_SOCKS];
	int order[N_SOCKS * PER_SOCK];
	int n;
	int got[N_SOCKS];
	bool timed_out;
} fair_t;

static fair_t fair;

static int fair_on_request(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
			   size_t len)
{
	(void)user;
	(void)msgid;
	(void)body;
	(void)len;
	const udp_peer_t *p = udp_peer_of(peer);
	for (int i = 0; i < N_SOCKS; i++)
		if (p->srv == fair.srv[i]) {
			fair.got[i]++;
			if (fair.n < N_SOCKS * PER_SOCK)
				fair.order[fair.n++] = i;
		}
	if (fair.n == N_SOCKS * PER_SOCK)
		uv_stop(&fair.loop);
	return 0;
}

static void fair_on_deadline(uv_timer_t *t)
{
	(void)t;
	fair.timed_out = true;
	uv_stop(&fair.loop);
}

static void test_udp_turns(void **state)
{
	(void)state;
	memset(&fair, 0, sizeof(fair));
	uv_loop_init(&fair.loop);
	dispatch_t d;
	dispatch_init(&d);
	dispatch_on(&d, LARS_ID_GET_HOST_REQ, fair_on_request, NULL);
	int ports[N_SOCKS];
	for (int i = 0; i < N_SOCKS; i++) {
		udp_server_opts_t o = { .name = "fair", .ip = "127.0.0.1", .dispatch = &d };
		assert_int_equal(udp_server_start(&fair.loop, &o, &fair.srv[i]), 0);
		ports[i] = udp_server_port(fair.srv[i]);
	}
	/* Everything queued before the loop runs: each socket has PER_SOCK
	 * datagrams waiting, as after a burst. */
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int big = 1 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	uint8_t frame[64];
	size_t len;
	for (int k = 0; k < PER_SOCK; k++)
		for (int i = 0; i < N_SOCKS; i++) {
			lars_GetHostRequest req = { .seq = (uint32_t)k, .modid = 1, .cmdid = 1 };
			assert_int_equal(msg_frame_encode(LARS_ID_GET_HOST_REQ,
							  lars_GetHostRequest_fields, &req, frame,
							  sizeof(frame), &len),
					 0);
			struct sockaddr_in to = { .sin_family = AF_INET,
						  .sin_port = htons((uint16_t)ports[i]),
						  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			assert_int_equal(sendto(fd, frame, len, 0, (struct sockaddr *)&to,
						sizeof(to)),
					 (ssize_t)len);
		}
	close(fd);
	uv_timer_init(&fair.loop, &fair.deadline);
	uv_timer_start(&fair.deadline, fair_on_deadline, 10000, 0);
	uv_run(&fair.loop, UV_RUN_DEFAULT);
	assert_false(fair.timed_out);
	for (int i = 0; i < N_SOCKS; i++)
		assert_int_equal(fair.got[i], PER_SOCK);

	/* The longest run of one socket while another still had some waiting. */
	int left[N_SOCKS], longest = 0, run = 0;
	for (int i = 0; i < N_SOCKS; i++)
		left[i] = PER_SOCK;
	for (int k = 0; k < fair.n; k++) {
		int s = fair.order[k];
		bool others_waiting = false;
		for (int i = 0; i < N_SOCKS; i++)
			others_waiting |= i != s && left[i] > 0;
		run = k > 0 && fair.order[k - 1] == s ? run + 1 : 1;
		if (others_waiting && run > longest)
			longest = run;
		left[s]--;
	}
	print_message("longest run of one socket with others waiting: %d (bound %d)\n",
		      longest, UDP_TURN_MAX);
	assert_true(longest >= 1);
	assert_true(longest <= UDP_TURN_MAX);

	for (int i = 0; i < N_SOCKS; i++)
		udp_server_close(fair.srv[i]);
	uv_close((uv_handle_t *)&fair.deadline, NULL);
	uv_run(&fair.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&fair.loop), 0);
}

int main(void)
{
	log_init(LOG_LVL_ERROR);
	wildcards = private_netns();
	if (!wildcards)
		fprintf(stderr, "no network namespace of our own (%s): 0.0.0.0 and :: cases skipped\n",
			strerror(errno));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_taken_port_refused),
		cmocka_unit_test(test_ours_first_keeps_port),
		cmocka_unit_test(test_reuse_port_shares),
		cmocka_unit_test(test_udp_turns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
