// SPDX-License-Identifier: MIT
// lars_register() / lars_deregister() (issue 23) against a fake agent (three
// UDP sockets in this process): bad arguments are refused with nothing sent;
// the request's fields and socket; pending asked again until registered;
// refused, failing, an operator's host, a bad state, a stale answer; the
// drain waited out, an unknown instance (NOEXIST), every wait bounded; and
// `lars register` ($LARS_BIN): the line, refreshes every TTL/3, a failing
// check logged, SIGTERM deregisters and exits 0; `lars deregister`'s exits.
#include "test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "lars_client.h"
#include "msg.h"

/* What the fake agent does, by the request's modid. */
enum {
	K_PENDING_TWICE = 1, /* pending twice, then registered; drains 300 ms */
	K_REFUSED = 2,
	K_FAILING = 3,
	K_OPERATOR = 4,
	K_PENDING = 5,      /* pending for ever */
	K_STALE = 6,        /* a wrong-seq answer first */
	K_BAD_STATE = 7,    /* state 42 */
	K_UNKNOWN = 8,      /* deregister: not registered here */
	K_DRAIN_FOREVER = 9, /* deregister: draining, 200 ms each time, for ever */
	K_MAX = 16,
};

#define DRAIN_MS 300
#define TTL_DEFAULT 9

static int fds[3], base_port;
static _Atomic bool stop;
static pthread_t agent;
static const char *lars_bin;
static _Atomic int n_requests;
static _Atomic int asks[K_MAX], deregs[K_MAX];
static _Atomic int64_t drain_start[K_MAX];
static _Atomic bool fail_check[K_MAX]; /* answer FAILING from now on */
static lars_RegisterRequest last_req;
static int32_t last_msgid;
static _Atomic int last_sock;

static void reply(int fd, const struct sockaddr_in *to, const lars_RegisterResponse *r)
{
	uint8_t buf[512];
	size_t len;
	assert_int_equal(msg_frame_encode(LARS_ID_REGISTER_RESP, lars_RegisterResponse_fields, r,
					  buf, sizeof(buf), &len), 0);
	sendto(fd, buf, len, 0, (const struct sockaddr *)to, sizeof(*to));
}

static void answer_register(const lars_RegisterRequest *q, lars_RegisterResponse *r)
{
	int k = q->modid;
	int n = ++asks[k];
	r->ttl_s = q->ttl_s ? q->ttl_s : TTL_DEFAULT;
	r->state = LARS_REG_REGISTERED;
	if (fail_check[k] || k == K_FAILING)
		r->state = LARS_REG_FAILING;
	if (fail_check[k]) /* as our agent says it */
		snprintf(r->message, sizeof(r->message), "health check failing: connection refused");
	else if (k == K_REFUSED)
		snprintf(r->message, sizeof(r->message), "ttl over 86400");
	if (k == K_REFUSED)
		r->state = LARS_REG_REFUSED;
	if (k == K_OPERATOR) {
		r->state = LARS_REG_OPERATOR;
		r->ttl_s = 0;
	}
	if ((k == K_PENDING_TWICE && n <= 2) || k == K_PENDING)
		r->state = LARS_REG_PENDING;
	if (k == K_BAD_STATE)
		r->state = 42;
}

static void answer_deregister(const lars_RegisterRequest *q, lars_RegisterResponse *r)
{
	int k = q->modid;
	deregs[k]++;
	if (k == K_UNKNOWN) {
		r->state = LARS_REG_UNKNOWN;
		return;
	}
	if (k == K_OPERATOR) {
		r->state = LARS_REG_OPERATOR;
		return;
	}
	if (k == K_DRAIN_FOREVER) {
		r->state = LARS_REG_DRAINING;
		r->drain_ms = 200;
		return;
	}
	int64_t now = test_now_ms();
	if (!drain_start[k])
		drain_start[k] = now;
	int64_t left = drain_start[k] + DRAIN_MS - now;
	r->state = left > 0 ? LARS_REG_DRAINING : LARS_REG_REMOVED;
	r->drain_ms = left > 0 ? (uint32_t)left : 0;
}

static void serve(int i, const uint8_t *buf, size_t n, const struct sockaddr_in *from)
{
	frame_hdr_t hdr = frame_hdr_read(buf);
	lars_RegisterRequest q = lars_RegisterRequest_init_zero;
	if (msg_decode(lars_RegisterRequest_fields, &q, buf + 8, n - 8, NULL) || q.modid < 0 ||
	    q.modid >= K_MAX)
		return;
	n_requests++;
	last_req = q;
	last_msgid = hdr.msgid;
	last_sock = i;
	lars_RegisterResponse r = lars_RegisterResponse_init_zero;
	r.seq = q.seq;
	/* ip 0: the caller's address, as the agent fills it. */
	r.ip = q.ip ? q.ip : (int32_t)ntohl(from->sin_addr.s_addr);
	if (hdr.msgid == LARS_ID_REGISTER_REQ)
		answer_register(&q, &r);
	else if (hdr.msgid == LARS_ID_DEREGISTER_REQ)
		answer_deregister(&q, &r);
	else
		return;
	if (q.modid == K_STALE) {
		lars_RegisterResponse old = r;
		old.seq = q.seq - 1;
		old.state = LARS_REG_REFUSED;
		reply(fds[i], from, &old);
	}
	reply(fds[i], from, &r);
}

static void *agent_main(void *arg)
{
	(void)arg;
	uint8_t buf[65536];
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
			if (n >= 8)
				serve(i, buf, (size_t)n, &from);
		}
	}
	return NULL;
}

static int setup(void **state)
{
	(void)state;
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
	(void)state;
	stop = true;
	pthread_join(agent, NULL);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	return 0;
}

static lars_client_t *client(void)
{
	lars_client_options_t o;
	lars_client_options_init(&o);
	o.base_port = base_port;
	o.timeout_ms = 100;
	o.retries = 3;
	lars_client_t *c;
	assert_int_equal(lars_client_new(&o, &c), 0);
	return c;
}

static void expect_bad(lars_client_t *c, int port, const lars_register_options_t *o,
		       const char *why)
{
	int before = n_requests;
	assert_int_equal(lars_register(c, 1, 1, port, o), LARS_SYSTEM_ERROR);
	if (!strstr(lars_client_error(c), why))
		fail_msg("error '%s', want '%s'", lars_client_error(c), why);
	assert_int_equal(n_requests, before);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	lars_client_t *c = client();
	lars_register_options_t o;
	expect_bad(c, 0, NULL, "port 0");
	expect_bad(c, 65536, NULL, "port 65536");
	lars_register_options_init(&o);
	o.weight = 1001;
	expect_bad(c, 9001, &o, "weight 1001");
	o.weight = -1;
	expect_bad(c, 9001, &o, "weight -1");
	lars_register_options_init(&o);
	o.ttl_s = 86401;
	expect_bad(c, 9001, &o, "ttl_s 86401");
	o.ttl_s = -1;
	expect_bad(c, 9001, &o, "ttl_s -1");
	lars_register_options_init(&o);
	o.ip = "10.0.0";
	expect_bad(c, 9001, &o, "not a dotted IPv4");
	o.ip = "::1";
	expect_bad(c, 9001, &o, "not a dotted IPv4");
	lars_register_options_init(&o);
	static const char *const bad_checks[] = { "udp", "http", "http:", "http:x",
						  "http:/a b", "http:/a\r\nHost: x", "TCP" };
	for (size_t i = 0; i < sizeof(bad_checks) / sizeof(bad_checks[0]); i++) {
		o.check = bad_checks[i];
		expect_bad(c, 9001, &o, "check");
	}
	char long_path[200] = "http:/";
	memset(long_path + 6, 'a', 128);
	o.check = long_path;
	expect_bad(c, 9001, &o, "at most 127 bytes");
	lars_register_options_init(&o);
	o.size = 8;
	expect_bad(c, 9001, &o, "options.size");
	/* A negative key, a NULL client: refused, nothing sent, no crash. */
	int before = n_requests;
	assert_int_equal(lars_register(c, -1, 1, 9001, NULL), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_deregister(c, 1, -1, 9001, NULL), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_register(NULL, 1, 1, 9001, NULL), LARS_SYSTEM_ERROR);
	assert_non_null(strstr(lars_client_error(NULL), "NULL"));
	assert_int_equal(lars_deregister(NULL, 1, 1, 9001, NULL), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_register_lease(NULL, NULL, NULL), 0);
	lars_register_options_init(NULL);
	/* Deregistering looks at the key, ip and port only. */
	lars_register_options_init(&o);
	o.ip = "1.2.3";
	assert_int_equal(lars_deregister(c, 1, 1, 9001, &o), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_deregister(c, 1, 1, 0, NULL), LARS_SYSTEM_ERROR);
	assert_int_equal(n_requests, before);
	lars_client_free(c);
}

static void test_register_pending_then_registered(void **state)
{
	(void)state;
	lars_client_t *c = client();
	lars_register_options_t o;
	lars_register_options_init(&o);
	o.ip = "10.1.2.3";
	o.weight = 7;
	o.ttl_s = 30;
	o.check = "http:/health?x=1";
	asks[K_PENDING_TWICE] = 0;
	assert_int_equal(lars_register_lease(c, NULL, NULL), 0);
	int64_t t0 = test_now_ms();
	assert_int_equal(lars_register(c, K_PENDING_TWICE, 2, 9001, &o), LARS_SUCC);
	assert_int_equal(asks[K_PENDING_TWICE], 3);
	assert_true(test_now_ms() - t0 >= 2 * 50 - 5); /* paused between the asks */
	assert_string_equal(lars_client_error(c), "");
	assert_int_equal(last_msgid, LARS_ID_REGISTER_REQ);
	assert_int_equal(last_req.modid, K_PENDING_TWICE);
	assert_int_equal(last_req.cmdid, 2);
	assert_int_equal(last_req.port, 9001);
	assert_int_equal(last_req.ip, (int32_t)0x0A010203);
	assert_int_equal(last_req.weight, 7);
	assert_int_equal(last_req.ttl_s, 30);
	assert_int_equal(last_req.check, LARS_CHECK_HTTP);
	assert_string_equal(last_req.check_path, "/health?x=1");
	assert_int_equal(last_sock, (K_PENDING_TWICE + 2) % 3); /* the key's socket */
	lars_host_t h;
	unsigned flags = 99;
	assert_int_equal(lars_register_lease(c, &h, &flags), 30);
	assert_string_equal(h.ip_str, "10.1.2.3");
	assert_int_equal(h.port, 9001);
	assert_int_equal(flags, 0);
	/* Defaults: ip 0 (the agent fills in the caller), weight 0, TTL 0, no check. */
	assert_int_equal(lars_register(c, K_PENDING_TWICE, 2, 9002, NULL), LARS_SUCC);
	assert_int_equal(last_req.ip, 0);
	assert_int_equal(last_req.weight, 0);
	assert_int_equal(last_req.ttl_s, 0);
	assert_int_equal(last_req.check, LARS_CHECK_NONE);
	assert_int_equal(lars_register_lease(c, &h, NULL), TTL_DEFAULT);
	assert_string_equal(h.ip_str, "127.0.0.1");
	o.check = "tcp";
	assert_int_equal(lars_register(c, K_PENDING_TWICE, 2, 9002, &o), LARS_SUCC);
	assert_int_equal(last_req.check, LARS_CHECK_TCP);
	o.check = "none";
	assert_int_equal(lars_register(c, K_PENDING_TWICE, 2, 9002, &o), LARS_SUCC);
	assert_int_equal(last_req.check, LARS_CHECK_NONE);
	lars_client_free(c);
}

static void test_register_outcomes(void **state)
{
	(void)state;
	lars_client_t *c = client();
	assert_int_equal(lars_register(c, K_REFUSED, 1, 9001, NULL), LARS_SYSTEM_ERROR);
	assert_string_equal(lars_client_error(c), "refused by the agent: ttl over 86400");
	assert_int_equal(lars_register_lease(c, NULL, NULL), 0);
	assert_int_equal(lars_register(c, K_FAILING, 1, 9001, NULL), LARS_SYSTEM_ERROR);
	assert_string_equal(lars_client_error(c), "health check failing");
	assert_int_equal(lars_register_lease(c, NULL, NULL), TTL_DEFAULT); /* still held, drained */
	unsigned flags;
	assert_int_equal(lars_register(c, K_OPERATOR, 1, 9001, NULL), LARS_SUCC);
	assert_int_equal(lars_register_lease(c, NULL, &flags), 0);
	assert_int_equal(flags, LARS_LEASE_OPERATOR);
	assert_int_equal(lars_register(c, K_STALE, 1, 9001, NULL), LARS_SUCC);
	assert_int_equal(lars_register(c, K_BAD_STATE, 1, 9001, NULL), LARS_SYSTEM_ERROR);
	assert_non_null(strstr(lars_client_error(c), "state 42"));
	/* Pending for ever: given up after max(1 s, 4 x 100 ms x 3), plus one call. */
	int64_t t0 = test_now_ms();
	assert_int_equal(lars_register(c, K_PENDING, 1, 9001, NULL), LARS_SYSTEM_ERROR);
	int64_t took = test_now_ms() - t0;
	assert_non_null(strstr(lars_client_error(c), "still pending"));
	if (took < 1100 || took > 1200 + 300 + 200)
		fail_msg("pending for ever took %lld ms", (long long)took);
	lars_client_free(c);
}

static void test_deregister(void **state)
{
	(void)state;
	lars_client_t *c = client();
	drain_start[K_PENDING_TWICE] = 0;
	deregs[K_PENDING_TWICE] = 0;
	int64_t t0 = test_now_ms();
	assert_int_equal(lars_deregister(c, K_PENDING_TWICE, 2, 9001, NULL), LARS_SUCC);
	int64_t took = test_now_ms() - t0;
	if (took < DRAIN_MS - 10 || took > DRAIN_MS + 300)
		fail_msg("the drain took %lld ms", (long long)took);
	/* Asked about every 100 ms. */
	assert_true(deregs[K_PENDING_TWICE] >= 3 && deregs[K_PENDING_TWICE] <= 6);
	assert_int_equal(last_msgid, LARS_ID_DEREGISTER_REQ);
	assert_int_equal(last_req.ip, 0);
	assert_int_equal(lars_register_lease(c, NULL, NULL), 0);
	assert_int_equal(lars_deregister(c, K_UNKNOWN, 1, 9001, NULL), LARS_NOEXIST);
	assert_string_equal(lars_client_error(c), "");
	unsigned flags;
	assert_int_equal(lars_deregister(c, K_OPERATOR, 1, 9001, NULL), LARS_SUCC);
	lars_register_lease(c, NULL, &flags);
	assert_int_equal(flags, LARS_LEASE_OPERATOR);
	/* A drain that never ends: 200 ms + max(1 s, 1.2 s), then given up. */
	t0 = test_now_ms();
	assert_int_equal(lars_deregister(c, K_DRAIN_FOREVER, 1, 9001, NULL), LARS_SYSTEM_ERROR);
	took = test_now_ms() - t0;
	assert_non_null(strstr(lars_client_error(c), "still draining"));
	if (took < 1300 || took > 1400 + 300 + 200)
		fail_msg("the endless drain took %lld ms", (long long)took);
	lars_client_free(c);
}

static void test_no_agent(void **state)
{
	(void)state;
	lars_client_options_t o;
	lars_client_options_init(&o);
	o.base_port = 3; /* privileged, unused: refused */
	o.timeout_ms = 50;
	o.retries = 2;
	lars_client_t *c;
	assert_int_equal(lars_client_new(&o, &c), 0);
	int64_t t0 = test_now_ms();
	assert_int_equal(lars_register(c, 1, 1, 9001, NULL), LARS_SYSTEM_ERROR);
	assert_int_equal(lars_deregister(c, 1, 1, 9001, NULL), LARS_SYSTEM_ERROR);
	assert_true(test_now_ms() - t0 < 1000);
	assert_non_null(strstr(lars_client_error(c), "agent"));
	lars_client_free(c);
}

/* ---- the lars tool ---- */

/* Does file @path contain @want before @deadline_ms? */
static bool file_has(const char *path, const char *want, int64_t deadline_ms)
{
	do {
		char buf[8192] = "";
		FILE *f = fopen(path, "r");
		if (f) {
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);
			buf[n] = '\0';
			fclose(f);
		}
		if (strstr(buf, want))
			return true;
		usleep(20000);
	} while (test_now_ms() < deadline_ms);
	return false;
}

static pid_t spawn_lars(const char *args, const char *out, const char *err)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "exec '%s' %s --agent 127.0.0.1:%d >'%s' 2>'%s'", lars_bin, args,
		 base_port, out, err);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* The exit status of @pid within 10 s (SIGKILL and fail after). */
static int wait_exit(pid_t pid)
{
	int64_t end = test_now_ms() + 10000;
	int st;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (test_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail_msg("lars did not exit within 10 s");
		}
		usleep(20000);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_lars_register(void **state)
{
	(void)state;
	if (!lars_bin) {
		fprintf(stderr, "LARS_BIN not set: the lars tool checks are skipped\n");
		return;
	}
	char out[] = "/tmp/lars-reg-out-XXXXXX", err[] = "/tmp/lars-reg-err-XXXXXX";
	close(mkstemp(out));
	close(mkstemp(err));
	asks[K_PENDING_TWICE] = 0;
	drain_start[K_PENDING_TWICE] = 0;
	fail_check[K_PENDING_TWICE] = false;
	pid_t pid = spawn_lars("register 1 3 9001 --ttl 1", out, err);
	int64_t end = test_now_ms() + 10000;
	assert_true(file_has(out, "registered 1/3 127.0.0.1:9001 (lease 1 s)\n", end));
	assert_int_equal(last_req.check, LARS_CHECK_TCP); /* the tool's default */
	/* Registered again every TTL/3 (333 ms). */
	int before = asks[K_PENDING_TWICE];
	usleep(1100000);
	int again = asks[K_PENDING_TWICE] - before;
	if (again < 2 || again > 5)
		fail_msg("%d refreshes in 1.1 s with a TTL of 1 s", again);
	/* A failing check, then healthy again: one line each on stderr. */
	fail_check[K_PENDING_TWICE] = true;
	assert_true(file_has(err, "lars: 1/3 127.0.0.1:9001: health check failing: connection refused\n", end));
	fail_check[K_PENDING_TWICE] = false;
	assert_true(file_has(err, "lars: registered again 1/3 127.0.0.1:9001 (lease 1 s)\n", end));
	/* SIGTERM: deregistered, the drain waited out, exit 0. */
	int64_t t0 = test_now_ms();
	kill(pid, SIGTERM);
	assert_int_equal(wait_exit(pid), 0);
	assert_true(test_now_ms() - t0 >= DRAIN_MS - 10);
	assert_true(file_has(out, "deregistered 1/3 127.0.0.1:9001\n", end));
	assert_int_equal(last_msgid, LARS_ID_DEREGISTER_REQ);
	/* The first registration fails: exit 2 with the agent's reason. */
	pid = spawn_lars("register 2 1 9001", out, err);
	assert_int_equal(wait_exit(pid), LARS_SYSTEM_ERROR);
	assert_true(file_has(err, "refused by the agent: ttl over 86400", end));
	/* deregister: removed (0), unknown (3), an operator's host (0). */
	drain_start[K_PENDING_TWICE] = 0;
	pid = spawn_lars("deregister 1 1 9001 --ip 10.9.8.7", out, err);
	assert_int_equal(wait_exit(pid), 0);
	assert_true(file_has(out, "deregistered 1/1 10.9.8.7:9001\n", end));
	pid = spawn_lars("deregister 8 1 9001", out, err);
	assert_int_equal(wait_exit(pid), LARS_NOEXIST);
	assert_true(file_has(err, "is not registered through this agent", end));
	pid = spawn_lars("deregister 4 1 9001", out, err);
	assert_int_equal(wait_exit(pid), 0);
	assert_true(file_has(out, "is an operator's host: left as it is", end));
	unlink(out);
	unlink(err);
}

int main(void)
{
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	lars_bin = getenv("LARS_BIN");
	unsetenv("LARS_AGENT");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_register_pending_then_registered),
		cmocka_unit_test(test_register_outcomes),
		cmocka_unit_test(test_deregister),
		cmocka_unit_test(test_no_agent),
		cmocka_unit_test(test_lars_register),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
