// SPDX-License-Identifier: MIT
// Self-registration end to end (issue 23): a real lars-dns, two real agents
// (A, where instances register; B, another machine's agent that only picks)
// and a real PostgreSQL.
//  - registered through A -> routable through B within 1 s;
//  - the instance's port closed (its TCP check fails) -> drained within
//    check_interval x check_fall, removed when its lease runs out, back
//    when the port opens again;
//  - a route with slow start ramps a new registration from its join time;
//  - deregistration -> no pick of it at B after the drain's push, removed
//    after drain_s;
//  - `lars register` SIGKILLed together with agent A -> removed within the
//    TTL and one expiry pass; a running `lars register` re-registers
//    through a restarted agent within one TTL;
//  - lars-dns restarted -> the leases are kept and renewed;
//  - bad input (port 0, negative modid, TTL 0 or over a day) -> a clear
//    error, nothing stored.
// (Two lars-dns instances expiring the same leases: test-leases.)
#include "test.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "wire_client.h"

extern char **environ;

#define TTL_S 3
#define CHECK_MS 200
#define FALL 2
#define DRAIN_S 1
#define EXPIRY_MS 200

static const char *dns_bin, *agent_bin, *larsctl_bin, *lars_bin;
static harness_pg_t pg;
static harness_proc_t dns, agent_a, agent_b;
static char dns_cfg[1024], a_cfg[1024], b_cfg[1024];
static int a_base;

static long long num(const char *q)
{
	return harness_sql_num(q);
}

static int key_port(const harness_proc_t *agent, int32_t modid, int32_t cmdid)
{
	static const char *const names[3] = { "udp", "udp1", "udp2" };
	return harness_port(agent, names[(modid + cmdid) % 3]);
}

/* A listening socket on a free loopback port: the instance the checks reach. */
static int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(0x7f000001) };
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 64))
		harness_die("listen on %d: %s", port, strerror(errno));
	return fd;
}

/* One Register (or Deregister) request to agent A; the answer's state, or -1. */
static int reg_call(int32_t msgid, int32_t modid, int32_t cmdid, int port, uint32_t check,
		    uint32_t ttl, lars_RegisterResponse *out)
{
	lars_RegisterRequest req = { .seq = 1, .modid = modid, .cmdid = cmdid, .port = port,
				     .ttl_s = ttl, .check = check };
	uint8_t buf[FRAME_HDR_LEN + lars_RegisterRequest_size], dgram[2048];
	size_t len;
	if (msg_frame_encode(msgid, lars_RegisterRequest_fields, &req, buf, sizeof(buf), &len))
		return -1;
	int fd = harness_udp_socket();
	ssize_t n = harness_udp_call(fd, key_port(&agent_a, modid, cmdid), buf, len, dgram,
				     sizeof(dgram), 1000);
	close(fd);
	lars_RegisterResponse resp = lars_RegisterResponse_init_zero;
	if (n < FRAME_HDR_LEN || frame_hdr_read(dgram).msgid != LARS_ID_REGISTER_RESP ||
	    msg_decode(lars_RegisterResponse_fields, &resp, dgram + FRAME_HDR_LEN,
		       (size_t)n - FRAME_HDR_LEN, NULL))
		return -1;
	if (out)
		*out = resp;
	return (int)resp.state;
}

/* Register until the answer is final (not pending), within @ms. */
static int reg_until_final(int32_t modid, int32_t cmdid, int port, uint32_t check, uint32_t ttl,
			   int ms)
{
	int64_t end = harness_deadline(ms);
	int st;
	do {
		st = reg_call(LARS_ID_REGISTER_REQ, modid, cmdid, port, check, ttl, NULL);
		if (st > LARS_REG_PENDING)
			return st;
		usleep(20000);
	} while (harness_left_ms(end) > 0);
	return st;
}

/* Agent B's view of host @port of the route: 0 absent, 1 listed, 2 drained. */
static int b_sees(int32_t modid, int32_t cmdid, int port)
{
	int fd = harness_udp_socket();
	wc_route_t r;
	int seen = -1;
	if (wc_api_get_route(fd, key_port(&agent_b, modid, cmdid), modid, cmdid, &r, 64, 1000) >= 0) {
		seen = 0;
		for (size_t i = 0; i < r.n; i++)
			if (r.hosts[i].port == port)
				seen = r.hosts[i].drain ? 2 : 1;
		wc_route_free(&r);
	}
	close(fd);
	return seen;
}

/* Wait until B sees @want for the host; seconds it took, or -1. */
static double wait_b(int32_t modid, int32_t cmdid, int port, int want, int ms)
{
	double t0 = harness_now_s();
	int64_t end = harness_deadline(ms);
	while (harness_left_ms(end) > 0) {
		if (b_sees(modid, cmdid, port) == want)
			return harness_now_s() - t0;
		usleep(2000);
	}
	return -1;
}

static long long hosts(int32_t modid, int port)
{
	char q[160];
	snprintf(q, sizeof(q), "SELECT count(*) FROM route_data WHERE modid = %d AND port = %d",
		 modid, port);
	return num(q);
}

static void test_registered_routable_at_b(void **state)
{
	int port = harness_free_tcp_port(), lfd = listen_on(port);
	assert_int_equal(b_sees(60, 1, port), 0); /* B holds the key already (subscribed) */
	double t0 = harness_now_s();
	assert_int_equal(reg_until_final(60, 1, port, LARS_CHECK_TCP, TTL_S, 5000), LARS_REG_REGISTERED);
	double reg = harness_now_s() - t0;
	double at_b = wait_b(60, 1, port, 1, 5000);
	assert_true(at_b >= 0);
	printf("# registered through A: answered REGISTERED after %.0f ms, routable at B %.0f ms "
	       "after the first request\n", reg * 1000, (reg + at_b) * 1000);
	assert_true(reg + at_b < 1.0);
	char q[256];
	snprintf(q, sizeof(q), "SELECT count(*) FROM route_change WHERE modid = 60 AND port = %d"
		 " AND action = 'add' AND actor = 'agent 127.0.0.1'", port);
	assert_int_equal(num(q), 1);
	snprintf(q, sizeof(q), "SELECT count(*) FROM route_lease l JOIN route_data d ON d.id = l.route_id"
		 " WHERE d.modid = 60 AND d.port = %d AND l.ttl_s = %d", port, TTL_S);
	assert_int_equal(num(q), 1);
	/* Registered again: nothing changes (no new version). */
	long long v = num("SELECT version FROM route_version");
	assert_int_equal(reg_until_final(60, 1, port, LARS_CHECK_TCP, TTL_S, 2000), LARS_REG_REGISTERED);
	assert_int_equal(num("SELECT version FROM route_version"), v);
	/* The lease is renewed every TTL/3 while the check passes: it outlives
	 * its TTL without the app sending anything. */
	sleep(TTL_S + 1);
	assert_int_equal(hosts(60, port), 1);
	close(lfd);
}

/* Warm-up: a route with slow start ramps a new registration from the time
 * it joined, which lars-dns sends (every agent ramps it alike). */
static void test_registration_warms_up(void **state)
{
	int port = harness_free_tcp_port();
	assert_int_equal(harness_run("%s route policy 66 1 --slow-start 30 >/dev/null", larsctl_bin), 0);
	assert_int_equal(b_sees(66, 1, port), 0);
	assert_int_equal(reg_until_final(66, 1, port, LARS_CHECK_NONE, TTL_S, 5000),
			 LARS_REG_REGISTERED);
	assert_true(wait_b(66, 1, port, 1, 5000) >= 0);
	/* What lars-dns sends every agent (the agents' API answers leave it out). */
	int fd = wc_connect("127.0.0.1", harness_port(&dns, "tcp"), harness_deadline(3000));
	assert_true(fd >= 0);
	wc_route_t r;
	assert_int_equal(wc_get_route_send(fd, 66, 1), 0);
	assert_true(wc_route_recv(fd, &r, 1 << 20, harness_deadline(3000), NULL) > 0);
	close(fd);
	assert_int_equal(r.n, 1);
	int64_t now = (int64_t)time(NULL), joined = r.hosts[0].joined_at;
	wc_route_free(&r);
	printf("# warm-up: joined_at %lld s before now (slow start 30 s)\n", (long long)(now - joined));
	assert_true(joined > 0 && now - joined >= -2 && now - joined <= 5); /* clocks: whole seconds */
}

static void test_check_fails_drain_then_expire(void **state)
{
	int port = harness_free_tcp_port(), lfd = listen_on(port);
	assert_int_equal(reg_until_final(61, 1, port, LARS_CHECK_TCP, TTL_S, 5000), LARS_REG_REGISTERED);
	assert_true(wait_b(61, 1, port, 1, 5000) >= 0);
	close(lfd); /* the instance is gone: connections refused */
	double t0 = harness_now_s();
	double drained = wait_b(61, 1, port, 2, 10000);
	assert_true(drained >= 0);
	char q[160];
	snprintf(q, sizeof(q), "SELECT count(*) FROM route_data WHERE modid = 61 AND port = %d", port);
	assert_int_equal(harness_wait_sql(q, 0, 15000), 0);
	double removed = harness_now_s() - t0;
	printf("# port closed: drained at B after %.0f ms (check every %d ms, fall %d: bound %d ms "
	       "+ 1 s), removed after %.0f ms (TTL %d s + expiry pass %d ms)\n", drained * 1000,
	       CHECK_MS, FALL, CHECK_MS * FALL, removed * 1000, TTL_S, EXPIRY_MS);
	assert_true(drained <= (CHECK_MS * FALL + 1000) / 1000.0);
	assert_true(removed <= TTL_S + 1.0 + 2 * EXPIRY_MS / 1000.0);
	lars_RegisterResponse r;
	assert_int_equal(reg_call(LARS_ID_REGISTER_REQ, 61, 1, port, LARS_CHECK_TCP, TTL_S, &r),
			 LARS_REG_FAILING);
	assert_non_null(strstr(r.message, "health check failing"));
	/* Back when the port opens again (rise 2 passes): added anew. */
	lfd = listen_on(port);
	double back = wait_b(61, 1, port, 1, 10000);
	assert_true(back >= 0);
	printf("# port open again: listed at B after %.0f ms\n", back * 1000);
	close(lfd);
	assert_true(wait_b(61, 1, port, 2, 10000) >= 0);
}

static void test_deregister_lossless(void **state)
{
	int port = harness_free_tcp_port(), other = port + 1;
	assert_int_equal(harness_run("%s route add 62 1 127.0.0.1 %d >/dev/null", larsctl_bin, other), 0);
	assert_int_equal(reg_until_final(62, 1, port, LARS_CHECK_NONE, TTL_S, 5000), LARS_REG_REGISTERED);
	assert_true(wait_b(62, 1, port, 1, 5000) >= 0);
	lars_RegisterResponse r;
	assert_int_equal(reg_call(LARS_ID_DEREGISTER_REQ, 62, 1, port, 0, 0, &r), LARS_REG_DRAINING);
	double t0 = harness_now_s(), drained_at = -1, gone_at = -1;
	int fd = harness_udp_socket(), after = 0, calls = 0, seen_before = 0;
	uint32_t seq = 1;
	int64_t end = harness_deadline(15000);
	while (harness_left_ms(end) > 0 && gone_at < 0) {
		int seen = b_sees(62, 1, port);
		if (seen == 2 && drained_at < 0)
			drained_at = harness_now_s() - t0;
		if (seen == 0 && drained_at >= 0)
			gone_at = harness_now_s() - t0;
		for (int k = 0; k < 20; k++) {
			lars_GetHostResponse h;
			if (wc_get_host(fd, key_port(&agent_b, 62, 1), seq++, 62, 1, &h, 1000) ||
			    h.retcode != LARS_RET_SUCC)
				continue;
			calls++;
			if (h.host.port == port && drained_at >= 0)
				after++;
			else if (h.host.port == port)
				seen_before++;
		}
	}
	close(fd);
	printf("# deregistered: drained at B after %.0f ms, removed after %.0f ms (drain_s %d); "
	       "%d get_host at B, %d picks of it before the drain push, %d after\n",
	       drained_at * 1000, gone_at * 1000, DRAIN_S, calls, seen_before, after);
	assert_true(drained_at >= 0 && gone_at >= 0);
	assert_int_equal(after, 0);
	assert_true(gone_at - drained_at >= DRAIN_S - 0.2);
	assert_true(gone_at <= DRAIN_S + 2.0);
	assert_int_equal(hosts(62, port), 0);
	assert_int_equal(hosts(62, other), 1); /* the operator's host stays */
	assert_int_equal(reg_call(LARS_ID_DEREGISTER_REQ, 62, 1, port, 0, 0, NULL), LARS_REG_REMOVED);
	char q[200];
	snprintf(q, sizeof(q), "SELECT count(*) FROM route_change WHERE modid = 62 AND port = %d"
		 " AND actor = 'agent 127.0.0.1' AND action IN ('add', 'set', 'del')", port);
	assert_true(num(q) >= 3); /* added, drained, removed: all by the agent */
}

static pid_t spawn_lars(const char *verb, int32_t modid, int port, const char *extra)
{
	char agent[64], m[16], p[16], ttl[16];
	snprintf(agent, sizeof(agent), "127.0.0.1:%d", a_base);
	snprintf(m, sizeof(m), "%d", modid);
	snprintf(p, sizeof(p), "%d", port);
	snprintf(ttl, sizeof(ttl), "%d", TTL_S);
	char *argv[] = { (char *)lars_bin, "--agent", agent, (char *)verb, m, "1", p, "--ttl", ttl,
			 "--check", (char *)extra, NULL };
	pid_t pid;
	if (posix_spawn(&pid, lars_bin, NULL, NULL, argv, environ))
		harness_die("spawn %s", lars_bin);
	return pid;
}

static void restart_agent_a(bool kill_first)
{
	if (kill_first) {
		kill(agent_a.pid, SIGKILL);
		waitpid(agent_a.pid, NULL, 0);
	}
	assert_int_equal(harness_spawn(&agent_a, agent_bin, harness_write_config(a_cfg)), 0);
}

static void test_lars_register_and_agent_restart(void **state)
{
	int port = harness_free_tcp_port();
	char q[200];
	snprintf(q, sizeof(q), "SELECT count(*) FROM route_data WHERE modid = 63 AND port = %d", port);
	pid_t lars = spawn_lars("register", 63, port, "none");
	assert_int_equal(harness_wait_sql(q, 1, 5000), 1);
	snprintf(q, sizeof(q), "SELECT l.owner FROM route_lease l JOIN route_data d ON d.id = l.route_id"
		 " WHERE d.modid = 63 AND d.port = %d", port);
	long long owner = num(q);
	/* The agent restarts (a new agent id): the running `lars register`
	 * registers again through it within one TTL; the lease changes hands. */
	restart_agent_a(true);
	double t0 = harness_now_s();
	int64_t end = harness_deadline((TTL_S + 2) * 1000);
	while (harness_left_ms(end) > 0 && num(q) == owner)
		usleep(20000);
	double taken = harness_now_s() - t0;
	printf("# agent restarted: `lars register` registered again %.0f ms later (TTL %d s)\n",
	       taken * 1000, TTL_S);
	assert_true(num(q) != owner);
	assert_true(taken <= TTL_S);
	/* Both SIGKILLed: nobody renews, lars-dns removes it within the TTL
	 * and one expiry pass. */
	kill(lars, SIGKILL);
	waitpid(lars, NULL, 0);
	kill(agent_a.pid, SIGKILL);
	waitpid(agent_a.pid, NULL, 0);
	t0 = harness_now_s();
	snprintf(q, sizeof(q), "SELECT count(*) FROM route_data WHERE modid = 63 AND port = %d", port);
	assert_int_equal(harness_wait_sql(q, 0, (TTL_S + 5) * 1000), 0);
	double gone = harness_now_s() - t0;
	printf("# `lars register` and its agent SIGKILLed: removed %.0f ms later (TTL %d s + pass "
	       "every %d ms)\n", gone * 1000, TTL_S, EXPIRY_MS);
	assert_true(gone <= TTL_S + 2 * EXPIRY_MS / 1000.0 + 0.5);
	restart_agent_a(false);
	/* SIGTERM: `lars register` deregisters (drained, then removed) and exits 0. */
	lars = spawn_lars("register", 63, port, "none");
	assert_int_equal(harness_wait_sql(q, 1, 5000), 1);
	kill(lars, SIGTERM);
	int status;
	waitpid(lars, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(num(q), 0); /* it returned after the removal */
}

static void test_dns_restart_keeps_leases(void **state)
{
	int port = harness_free_tcp_port();
	assert_int_equal(reg_until_final(64, 1, port, LARS_CHECK_NONE, 10, 5000), LARS_REG_REGISTERED);
	char q[240];
	snprintf(q, sizeof(q), "SELECT (extract(epoch FROM l.expires_at) * 1000)::bigint"
		 " FROM route_lease l JOIN route_data d ON d.id = l.route_id"
		 " WHERE d.modid = 64 AND d.port = %d", port);
	long long before = num(q);
	assert_int_equal(harness_stop(&dns), 0);
	sleep(1);
	assert_int_equal(harness_spawn(&dns, dns_bin, harness_write_config(dns_cfg)), 0);
	/* Kept (never removed) and renewed through the new lars-dns. */
	int64_t end = harness_deadline(10000);
	while (harness_left_ms(end) > 0 && num(q) <= before + 1000)
		usleep(50000);
	printf("# lars-dns restarted: the lease kept, its expiry renewed %lld ms later\n", num(q) - before);
	assert_true(num(q) > before + 1000);
	snprintf(q, sizeof(q), "SELECT count(*) FROM route_change WHERE modid = 64 AND port = %d"
		 " AND action = 'del'", port);
	assert_int_equal(num(q), 0);
	assert_int_equal(hosts(64, port), 1);
}

/* The next frame from lars-dns on @fd, decoded as a LeaseResponse. */
static lars_LeaseResponse lease_answer(int fd)
{
	frame_hdr_t h;
	uint8_t body[4096];
	lars_LeaseResponse resp = lars_LeaseResponse_init_zero;
	assert_int_equal(wc_recv_frame(fd, &h, body, sizeof(body), harness_deadline(3000)), 1);
	assert_int_equal(h.msgid, LARS_ID_LEASE_RESP);
	assert_int_equal(msg_decode(lars_LeaseResponse_fields, &resp, body, (size_t)h.msglen, NULL), 0);
	return resp;
}

static void test_bad_input(void **state)
{
	long long before = num("SELECT count(*) FROM route_data");
	lars_RegisterResponse r;
	assert_int_equal(reg_call(LARS_ID_REGISTER_REQ, 65, 1, 0, 0, 0, &r), LARS_REG_REFUSED);
	assert_non_null(strstr(r.message, "port"));
	assert_int_equal(reg_call(LARS_ID_REGISTER_REQ, -1, 1, 9000, 0, 0, &r), LARS_REG_REFUSED);
	assert_non_null(strstr(r.message, "modid"));
	assert_int_equal(reg_call(LARS_ID_REGISTER_REQ, 65, 1, 9000, 0, 86401, &r), LARS_REG_REFUSED);
	assert_non_null(strstr(r.message, "ttl"));
	/* The tool: TTL 0 and over a day, port 0: an error, nothing sent. */
	char agent[64];
	snprintf(agent, sizeof(agent), "127.0.0.1:%d", a_base);
	assert_true(harness_run("%s --agent %s register 65 1 9000 --check none --ttl 0 2>/dev/null", lars_bin, agent) != 0);
	assert_true(harness_run("%s --agent %s register 65 1 9000 --check none --ttl 86401 2>/dev/null", lars_bin, agent) != 0);
	assert_true(harness_run("%s --agent %s register 65 1 0 --check none 2>/dev/null", lars_bin, agent) != 0);
	assert_true(harness_run("%s --agent %s register -3 1 9000 --check none 2>/dev/null", lars_bin, agent) != 0);
	/* lars-dns itself: a LeaseRequest before AgentHello, a TTL of 0, an
	 * unknown op, garbage: refused or the connection closed, nothing stored. */
	int fd = wc_connect("127.0.0.1", harness_port(&dns, "tcp"), harness_deadline(3000));
	assert_true(fd >= 0);
	lars_LeaseRequest lr = { .seq = 5, .op = LARS_LEASE_REGISTER, .host_count = 1,
				 .host = { { .modid = 65, .cmdid = 1, .ip = 0x7f000001, .port = 9000,
					     .ttl_s = 10 } } };
	assert_int_equal(wc_send(fd, LARS_ID_LEASE_REQ, lars_LeaseRequest_fields, &lr), 0);
	lars_LeaseResponse resp = lease_answer(fd);
	assert_int_equal(resp.seq, 5);
	assert_int_equal(resp.result[0], LARS_LEASE_R_FAILED);
	assert_non_null(strstr(resp.message, "AgentHello"));
	lars_AgentHello hello = { .agent_id = 77, .caller = 0x7f000001 };
	assert_int_equal(wc_send(fd, LARS_ID_AGENT_HELLO, lars_AgentHello_fields, &hello), 0);
	lr.host[0].ttl_s = 0;
	assert_int_equal(wc_send(fd, LARS_ID_LEASE_REQ, lars_LeaseRequest_fields, &lr), 0);
	resp = lease_answer(fd);
	assert_int_equal(resp.result[0], LARS_LEASE_R_FAILED);
	assert_non_null(strstr(resp.message, "TTL"));
	lr.host[0].ttl_s = 10;
	lr.host[0].port = 0;
	assert_int_equal(wc_send(fd, LARS_ID_LEASE_REQ, lars_LeaseRequest_fields, &lr), 0);
	resp = lease_answer(fd);
	assert_non_null(strstr(resp.message, "port"));
	lr.op = 9;
	lr.host[0].port = 9000;
	assert_int_equal(wc_send(fd, LARS_ID_LEASE_REQ, lars_LeaseRequest_fields, &lr), 0);
	resp = lease_answer(fd);
	assert_non_null(strstr(resp.message, "unknown"));
	static const uint8_t garbage[] = { 107, 0, 0, 0, 3, 0, 0, 0, 0xff, 0xff, 0xff };
	assert_true(harness_send_all(fd, garbage, sizeof(garbage)) >= 0);
	assert_int_equal(harness_wait_eof(fd, 3000), 1);
	close(fd);
	assert_int_equal(num("SELECT count(*) FROM route_data"), before);
	assert_int_equal(num("SELECT count(*) FROM route_data WHERE modid = 65"), 0);
}

static int setup(void **state)
{
	if (harness_pg_start(&pg, "register", false))
		return -1;
	if (harness_run("%s migrate >/dev/null", larsctl_bin))
		return -1;
	snprintf(dns_cfg, sizeof(dns_cfg),
		 "[dns]\nport = %d\nlease_expiry_interval_ms = %d\n"
		 "[metrics]\nenabled = true\nport = 0\n", harness_free_tcp_port(), EXPIRY_MS);
	if (harness_spawn(&dns, dns_bin, harness_write_config(dns_cfg)))
		return -1;
	char regs[256];
	snprintf(regs, sizeof(regs),
		 "[register]\nttl_s = %d\ncheck_interval_ms = %d\ncheck_timeout_ms = %d\n"
		 "check_fall = %d\ncheck_rise = 2\ndrain_s = %d\n",
		 TTL_S, CHECK_MS, CHECK_MS, FALL, DRAIN_S);
	int dns_port = harness_port(&dns, "tcp"), rep = harness_free_tcp_port();
	a_base = harness_free_udp_base();
	snprintf(a_cfg, sizeof(a_cfg),
		 "[agent]\nbase_port = %d\ncaller = 127.0.0.1\n"
		 "[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\n%s[metrics]\nenabled = true\nport = 0\n",
		 a_base, dns_port, rep, regs);
	if (a_base <= 0 || harness_spawn(&agent_a, agent_bin, harness_write_config(a_cfg)))
		return -1;
	int b_base = harness_free_udp_base();
	snprintf(b_cfg, sizeof(b_cfg),
		 "[agent]\nbase_port = %d\n[dnsserver]\nip = 127.0.0.1\nport = %d\n"
		 "[reporter]\nip = 127.0.0.1\nport = %d\n[metrics]\nenabled = true\nport = 0\n",
		 b_base, dns_port, rep);
	if (b_base <= 0 || harness_spawn(&agent_b, agent_bin, harness_write_config(b_cfg)))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	int rc = harness_stop(&agent_a) | harness_stop(&agent_b) | harness_stop(&dns);
	harness_pg_stop(&pg);
	return rc ? -1 : 0;
}

int main(void)
{
	if (!getenv("LARS_TEST_PG")) {
		fprintf(stderr, "no PostgreSQL for this run (deploy/lars-local test provides one)\n");
		return 77;
	}
	dns_bin = getenv("LARS_DNS_BIN");
	agent_bin = getenv("LARS_AGENT_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	lars_bin = getenv("LARS_BIN");
	if (!dns_bin || !agent_bin || !larsctl_bin || !lars_bin) {
		fprintf(stderr, "LARS_DNS_BIN, LARS_AGENT_BIN, LARSCTL_BIN and LARS_BIN must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_registered_routable_at_b),
		cmocka_unit_test(test_registration_warms_up),
		cmocka_unit_test(test_check_fails_drain_then_expire),
		cmocka_unit_test(test_deregister_lossless),
		cmocka_unit_test(test_dns_restart_keeps_leases),
		cmocka_unit_test(test_lars_register_and_agent_restart),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
