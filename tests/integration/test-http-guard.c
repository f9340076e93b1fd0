// SPDX-License-Identifier: MIT
// The HTTP listeners (common/loop/http.c) against the real daemons:
//  - a port is ours alone: a second lars-admin (or lars-agent's /metrics) on
//    a taken port, or on one held by another socket with SO_REUSEPORT,
//    exits 1 naming the address, and the first keeps answering everything;
//  - slow clients cannot lock the console: hundreds of connections from many
//    127.0.0.x addresses trickling header lines are closed after the request
//    deadline (or to make room), and an operator's request with valid Basic
//    credentials is answered while they are held; one address gets at most
//    max_conns_per_ip connections.
// No database: the pages lars-admin serves need none.
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "harness.h"

static const char *admin_bin, *agent_bin, *larsctl_bin;
static char tmpdir[128], users[192], www[512];
static const char pass[] = "guard-test-pass-42";
/* The daemon a test runs; stopped by stop_proc() even when the test fails
 * (a daemon left running would hold the test's output open). */
static harness_proc_t proc;

/* The slow-connection attack: its size (LARS_TEST_SLOW_CONNS overrides). */
#define SLOW_CONNS 300
#define SLOW_PER_ADDR 15       /* under max_conns_per_ip = 16 */
#define REQUEST_TIMEOUT_S 2    /* [admin] request_timeout in the test */
#define ANSWER_MS 5000         /* an operator's request must be answered by then */

static int setup(void **state)
{
	admin_bin = getenv("LARS_ADMIN_BIN");
	agent_bin = getenv("LARS_AGENT_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	const char *src = getenv("LARS_SRC");
	assert_non_null(admin_bin);
	assert_non_null(agent_bin);
	assert_non_null(larsctl_bin);
	assert_non_null(src);
	snprintf(www, sizeof(www), "%s/admin_svc/www", src);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/lars-test-http.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(users, sizeof(users), "%s/users", tmpdir);
	assert_int_equal(harness_run("echo %s | %s admin-user add op --users-file %s >/dev/null",
				     pass, larsctl_bin, users), 0);
	return 0;
}

static int teardown(void **state)
{
	harness_run("rm -rf %s", tmpdir);
	return 0;
}

/* A lars-admin config; @extra is appended under [admin]. */
static const char *admin_config(int port, const char *extra)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "[admin]\nport = %d\nusers_file = %s\nassets_dir = %s\n%s"
		 "[postgres]\nconninfo = host=127.0.0.1 port=1 connect_timeout=1\n"
		 "[metrics]\nenabled = true\nport = 0\n",
		 port, users, www, extra ? extra : "");
	return harness_write_config(text);
}

static const char *agent_config(int metrics_port)
{
	char text[1024];
	snprintf(text, sizeof(text),
		 "[agent]\nbase_port = %d\n"
		 "[dnsserver]\nip = 127.0.0.1\nport = 1\n"
		 "[reporter]\nip = 127.0.0.1\nport = 1\n"
		 "[metrics]\nport = %d\n",
		 harness_free_udp_base(), metrics_port);
	return harness_write_config(text);
}

/*
 * Run @bin -c @config, which must fail: its exit status (or -1 if it is still
 * running after 10 s, then killed) and its stderr in @err.
 */
static int run_failing(const char *bin, const char *config, char *err, size_t cap)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/failing.err", tmpdir);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		execl(bin, bin, "-c", config, (char *)NULL);
		_exit(127);
	}
	int status = 0, rc = -1;
	double deadline = harness_now_s() + 10;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid) {
			rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			break;
		}
		if (harness_now_s() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		usleep(20000);
	}
	unlink(config);
	err[0] = '\0';
	FILE *f = fopen(path, "r");
	if (f) {
		size_t n = fread(err, 1, cap - 1, f);
		err[n] = '\0';
		fclose(f);
	}
	return rc;
}

/* A listening socket on 127.0.0.1 (any free port) that shares it with anyone
 * of this user who asks (SO_REUSEPORT), as a rogue listener would. */
static int rogue_listener(int *portp)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	int on = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*portp = ntohs(a.sin_port);
	return fd;
}

/* A TCP connection to 127.0.0.1:@port from @src (NULL: any), non-blocking. */
static int connect_from(const char *src, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (src) {
		struct sockaddr_in s = { .sin_family = AF_INET };
		inet_pton(AF_INET, src, &s.sin_addr);
		if (bind(fd, (struct sockaddr *)&s, sizeof(s))) {
			close(fd);
			return -1;
		}
	}
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Send GET @path on @fd, with valid Basic credentials if @auth; only the
 * headers after the request line if @path is NULL (the line went earlier). */
static void http_send(int fd, int port, const char *path, bool auth)
{
	static const char b64_src[] = "op:guard-test-pass-42";
	/* Base64 of b64_src, computed here rather than hard-coded. */
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char b64[64];
	size_t n = strlen(b64_src), o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)b64_src[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)b64_src[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)b64_src[i + 2];
		b64[o++] = tbl[(v >> 18) & 63];
		b64[o++] = tbl[(v >> 12) & 63];
		b64[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		b64[o++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	b64[o] = '\0';

	char req[512];
	int len = snprintf(req, sizeof(req),
			   "%s%s%sHost: 127.0.0.1:%d\r\n%s%s%sConnection: close\r\n\r\n",
			   path ? "GET " : "", path ? path : "", path ? " HTTP/1.1\r\n" : "", port, auth ? "Authorization: Basic " : "", auth ? b64 : "",
			   auth ? "\r\n" : "");
	/* A refused connection may fail here; its answer is then missing. */
	(void)!send(fd, req, (size_t)len, MSG_NOSIGNAL);
}

/* The status of the answer on @fd, or -1 if none came within @ms. Closes @fd. */
static int http_read_status(int fd, int ms)
{
	double deadline = harness_now_s() + ms / 1000.0;
	char buf[64];
	size_t got = 0;
	int status = -1;
	while (got < 12) {
		int left = (int)((deadline - harness_now_s()) * 1000);
		if (left <= 0)
			break;
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, left) <= 0)
			break;
		ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	if (got >= 12 && strncmp(buf, "HTTP/1.", 7) == 0)
		status = atoi(buf + 9);
	close(fd);
	return status;
}

/* One operator request on a new connection: the status, or -1 if none
 * came within @ms. */
static int http_status(int port, const char *path, bool auth, int ms)
{
	int fd = connect_from(NULL, port);
	if (fd < 0)
		return -1;
	http_send(fd, port, path, auth);
	return http_read_status(fd, ms);
}

/* Is @fd closed by the peer (EOF or reset)? Reads and drops what is there. */
static bool peer_closed(int fd)
{
	char buf[512];
	for (int i = 0; i < 16; i++) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r == 0)
			return true;
		if (r < 0)
			return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
	}
	return false;
}

/* A second lars-admin on a taken port, a third on a port held by a rogue
 * SO_REUSEPORT socket: both exit 1 naming the address; the first answers
 * 20 of 20. */
static void test_admin_port_exclusive(void **state)
{
	assert_int_equal(harness_spawn(&proc, admin_bin, admin_config(0, NULL)), 0);
	int port = harness_port(&proc, "http");
	assert_true(port > 0);

	char err[4096], want[64];
	snprintf(want, sizeof(want), "127.0.0.1:%d", port);
	int rc = run_failing(admin_bin, admin_config(port, NULL), err, sizeof(err));
	if (rc != 1 || !strstr(err, want) || !strstr(err, "Address already in use"))
		fail_msg("second lars-admin on %s: exit %d, stderr:\n%s", want, rc, err);

	int rport;
	int rfd = rogue_listener(&rport);
	snprintf(want, sizeof(want), "127.0.0.1:%d", rport);
	rc = run_failing(admin_bin, admin_config(rport, NULL), err, sizeof(err));
	close(rfd);
	if (rc != 1 || !strstr(err, want))
		fail_msg("lars-admin on %s held by another socket: exit %d, stderr:\n%s",
			 want, rc, err);

	int ok = 0;
	for (int i = 0; i < 20; i++)
		ok += http_status(port, "/", true, ANSWER_MS) == 200;
	assert_int_equal(ok, 20);
	assert_int_equal(harness_stop(&proc), 0);
}

/* The same for lars-agent's /metrics. */
static void test_metrics_port_exclusive(void **state)
{
	/* Free ports are only free when looked at: another test may take one
	 * before the agent binds it, so try again with others. */
	int mport = 0, r = -1;
	for (int i = 0; i < 3 && r; i++) {
		mport = harness_free_tcp_port();
		r = harness_spawn(&proc, agent_bin, agent_config(mport));
		if (r)
			harness_stop(&proc);
	}
	assert_int_equal(r, 0);
	assert_int_equal(harness_port(&proc, "metrics"), mport);

	char err[4096], want[64];
	snprintf(want, sizeof(want), "127.0.0.1:%d", mport);
	int rc = run_failing(agent_bin, agent_config(mport), err, sizeof(err));
	if (rc != 1 || !strstr(err, want) || !strstr(err, "Address already in use"))
		fail_msg("second lars-agent with /metrics on %s: exit %d, stderr:\n%s", want, rc,
			 err);

	int rport;
	int rfd = rogue_listener(&rport);
	snprintf(want, sizeof(want), "127.0.0.1:%d", rport);
	rc = run_failing(agent_bin, agent_config(rport), err, sizeof(err));
	close(rfd);
	if (rc != 1 || !strstr(err, want))
		fail_msg("lars-agent /metrics on %s held by another socket: exit %d, stderr:\n%s",
			 want, rc, err);

	int ok = 0;
	for (int i = 0; i < 20; i++)
		ok += http_status(mport, "/metrics", false, ANSWER_MS) == 200;
	assert_int_equal(ok, 20);
	assert_int_equal(harness_stop(&proc), 0);
}

typedef struct slow {
	int fd;
	double opened;
} slow_t;

/* Open slow connection @i (source address by @i) and send a request line. */
static void slow_open(slow_t *s, int i, int port)
{
	char src[32];
	snprintf(src, sizeof(src), "127.0.0.%d", 2 + i / SLOW_PER_ADDR);
	s->fd = connect_from(src, port);
	s->opened = harness_now_s();
	if (s->fd >= 0) {
		static const char line[] = "GET / HTTP/1.1\r\n";
		send(s->fd, line, sizeof(line) - 1, MSG_NOSIGNAL);
	}
}

/*
 * Slow clients against the defaults (max_conns 256, reserve_conns 32,
 * max_conns_per_ip 16) with request_timeout = 2: they keep their pool full
 * (reopening what is closed) and each sends a header line every 250 ms.
 * Five operator requests during the attack are answered; every slow
 * connection is closed (none outlives the deadline by much, though each
 * trickles), long before the 60 s idle timeout.
 */
static void test_slow_clients(void **state)
{
	int n = SLOW_CONNS;
	const char *env = getenv("LARS_TEST_SLOW_CONNS");
	if (env)
		n = atoi(env);
	assert_true(n > 0 && n <= 2000);

	char extra[64];
	snprintf(extra, sizeof(extra), "request_timeout = %d\n", REQUEST_TIMEOUT_S);
	assert_int_equal(harness_spawn(&proc, admin_bin, admin_config(0, extra)), 0);
	int port = harness_port(&proc, "http");
	assert_true(port > 0);

	slow_t *slow = calloc((size_t)n, sizeof(*slow));
	assert_non_null(slow);
	for (int i = 0; i < n; i++)
		slow_open(&slow[i], i, port);

	int answered = 0, asked = 0, n_closed = 0, n_reopened = 0;
	double longest = 0;
	double start = harness_now_s(), end = start + 3.0 * REQUEST_TIMEOUT_S + 1;
	double next_op = start + 0.5;
	while (harness_now_s() < end) {
		for (int i = 0; i < n; i++) {
			slow_t *s = &slow[i];
			if (s->fd >= 0 && !peer_closed(s->fd)) {
				static const char hdr[] = "X-Slow: 1\r\n";
				send(s->fd, hdr, sizeof(hdr) - 1, MSG_NOSIGNAL);
				continue;
			}
			if (s->fd >= 0) {
				double life = harness_now_s() - s->opened;
				if (life > longest)
					longest = life;
				close(s->fd);
				n_closed++;
			}
			slow_open(s, i, port);
			n_reopened++;
		}
		if (asked < 5 && harness_now_s() >= next_op) {
			int st = http_status(port, "/", true, ANSWER_MS);
			asked++;
			answered += st == 200;
			printf("# operator request %d during the attack: %d\n", asked, st);
			next_op = harness_now_s() + 0.5;
		}
		usleep(250000);
	}
	/* The attack stops; what is still open must be closed by the deadline. */
	int still_open = 0;
	double grace = harness_now_s() + REQUEST_TIMEOUT_S + 5;
	for (int i = 0; i < n; i++) {
		slow_t *s = &slow[i];
		while (s->fd >= 0 && !peer_closed(s->fd) && harness_now_s() < grace) {
			struct pollfd pf = { .fd = s->fd, .events = POLLIN };
			int left = (int)((grace - harness_now_s()) * 1000);
			poll(&pf, 1, left > 0 ? left : 0);
		}
		if (s->fd >= 0 && !peer_closed(s->fd))
			still_open++;
		if (s->fd >= 0)
			close(s->fd);
	}
	free(slow);
	printf("# %d slow connections from %d addresses: %d closed by the server during "
	       "%.0f s (longest lived %.1f s), %d reopened, %d still open at the end; "
	       "operator answered %d of %d\n",
	       n, (n + SLOW_PER_ADDR - 1) / SLOW_PER_ADDR, n_closed, end - start, longest,
	       n_reopened, still_open, answered, asked);
	assert_int_equal(answered, asked);
	assert_int_equal(still_open, 0);
	assert_true(n_closed >= n);
	/* And once they are gone, the console is as before. */
	assert_int_equal(http_status(port, "/", true, ANSWER_MS), 200);
	assert_int_equal(harness_stop(&proc), 0);
}

/*
 * One address gets at most max_conns_per_ip (16 by default) connections at
 * once: 20 send a request line and hold; then each completes its request
 * (default request_timeout, 10 s): 16 are answered, 4 were closed unanswered.
 */
static void test_per_ip_limit(void **state)
{
	assert_int_equal(harness_spawn(&proc, admin_bin, admin_config(0, NULL)), 0);
	int port = harness_port(&proc, "http");
	assert_true(port > 0);
	int one[20], refused = 0, ok = 0;
	for (int i = 0; i < 20; i++) {
		one[i] = connect_from("127.0.0.250", port);
		if (one[i] >= 0)
			(void)!send(one[i], "GET / HTTP/1.1\r\n", 16, MSG_NOSIGNAL);
	}
	/* Let the service take them all in (the refused ones are closed). */
	double until = harness_now_s() + 1;
	while (harness_now_s() < until)
		usleep(50000);
	for (int i = 0; i < 20; i++) {
		if (one[i] < 0) {
			refused++;
			continue;
		}
		http_send(one[i], port, NULL, true); /* the rest of the request */
		int st = http_read_status(one[i], ANSWER_MS);
		ok += st == 200;
		refused += st == -1;
	}
	printf("# 20 connections from one address: %d answered, %d refused\n", ok, refused);
	assert_int_equal(ok, 16);
	assert_int_equal(refused, 4);
	assert_int_equal(harness_stop(&proc), 0);
}

static int stop_proc(void **state)
{
	harness_stop(&proc);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_admin_port_exclusive, stop_proc),
		cmocka_unit_test_teardown(test_metrics_port_exclusive, stop_proc),
		cmocka_unit_test_teardown(test_slow_clients, stop_proc),
		cmocka_unit_test_teardown(test_per_ip_limit, stop_proc),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
