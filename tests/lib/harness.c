// SPDX-License-Identifier: MIT
// Integration-test helpers (see harness.h).
#include "harness.h"
#include "wire_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <stdarg.h>
#include <unistd.h>

#include <libpq-fe.h>

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t harness_deadline(int ms)
{
	return mono_ms() + ms;
}

int harness_left_ms(int64_t deadline)
{
	int64_t left = deadline - mono_ms();
	return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

const char *harness_write_config(const char *text)
{
	static char paths[8][64];
	static int slot;
	char *path = paths[slot++ % 8];
	snprintf(path, 64, "/tmp/lars-test-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	size_t len = strlen(text);
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		return NULL;
	}
	close(fd);
	return path;
}

static void harness_wait_exit(harness_proc_t *p, int ms);

/*
 * Every child not yet reaped. A failed assertion leaves its test without
 * harness_stop(); at exit the leftovers are killed, or a daemon would outlive
 * the test and keep `meson test` waiting on the output pipe it inherited.
 */
static pid_t live_pids[64];

/* Still a child of ours (running or a zombie)? Peeks, reaps nothing. */
static bool our_child(pid_t pid)
{
	siginfo_t si;
	return pid > 0 && waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

static void kill_leftovers(void)
{
	for (size_t i = 0; i < sizeof(live_pids) / sizeof(live_pids[0]); i++) {
		if (our_child(live_pids[i])) {
			kill(live_pids[i], SIGKILL);
			waitpid(live_pids[i], NULL, 0);
		}
		live_pids[i] = 0;
	}
}

/* Replaces @old by @pid in the table; a slot whose child a test reaped by
 * itself is free too. */
static void track_pid(pid_t old, pid_t pid)
{
	static bool registered;
	if (!registered && pid > 0)
		registered = atexit(kill_leftovers) == 0;
	for (size_t i = 0; i < sizeof(live_pids) / sizeof(live_pids[0]); i++) {
		if (live_pids[i] == old || (pid > 0 && !our_child(live_pids[i]))) {
			live_pids[i] = pid;
			return;
		}
	}
}

int harness_spawn(harness_proc_t *p, const char *bin, const char *config)
{
	int pfd[2];
	memset(p, 0, sizeof(*p));
	snprintf(p->log, sizeof(p->log), "%s.log", config);
	snprintf(p->config, sizeof(p->config), "%s", config);
	if (pipe(pfd))
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(pfd[0]);
		int logfd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (logfd >= 0) {
			dup2(logfd, 1);
			dup2(logfd, 2);
		}
		char fdarg[16];
		snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
		execl(bin, bin, "-c", config, "--ready-fd", fdarg, "--log-level",
		      "debug", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	p->pid = pid;
	track_pid(0, pid);
	size_t len = 0;
	bool eof = false;
	int64_t deadline = mono_ms() + 10000;
	for (;;) {
		int left = (int)(deadline - mono_ms());
		if (left <= 0)
			break;
		struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
		if (poll(&pf, 1, left) <= 0)
			break;
		ssize_t n = read(pfd[0], p->ready + len, sizeof(p->ready) - 1 - len);
		if (n <= 0) {
			eof = n == 0;
			break;
		}
		len += (size_t)n;
		p->ready[len] = 0;
		if (strchr(p->ready, '\n'))
			break;
	}
	close(pfd[0]);
	if (!strchr(p->ready, '\n')) {
		fprintf(stderr, "harness: %s did not become ready; its log %s:\n", bin, p->log);
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "cat %s >&2", p->log);
		if (system(cmd)) {
		}
		/* Closed without a line: it is exiting on its own; let it. */
		if (eof)
			harness_wait_exit(p, 10000);
		harness_stop(p);
		return -ETIMEDOUT;
	}
	return 0;
}

int harness_port(const harness_proc_t *p, const char *name)
{
	char key[64];
	snprintf(key, sizeof(key), "%s=", name);
	const char *s = p->ready;
	while ((s = strstr(s, key))) {
		if (s == p->ready || s[-1] == ' ')
			return atoi(s + strlen(key));
		s++;
	}
	return -1;
}

static int harness_reap(harness_proc_t *p);

/* Waits up to @ms for the child to exit by itself; records its status. */
static void harness_wait_exit(harness_proc_t *p, int ms)
{
	int status;
	int64_t deadline = mono_ms() + ms;
	while (p->pid > 0 && mono_ms() < deadline) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			track_pid(p->pid, 0);
			p->pid = 0;
			p->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			return;
		}
		usleep(10000);
	}
}

int harness_stop(harness_proc_t *p)
{
	if (p->pid <= 0) /* already reaped */
		return p->exit_status;
	p->exit_status = harness_reap(p);
	return p->exit_status;
}

static int harness_reap(harness_proc_t *p)
{
	int status;
	if (p->pid <= 0)
		return -1;
	kill(p->pid, SIGTERM);
	int64_t deadline = mono_ms() + 10000;
	while (mono_ms() < deadline) {
		pid_t r = waitpid(p->pid, &status, WNOHANG);
		if (r == p->pid) {
			track_pid(p->pid, 0);
			p->pid = 0;
			if (!WIFEXITED(status))
				return -1;
			if (WEXITSTATUS(status) == 0) {
				unlink(p->log);
				unlink(p->config);
			}
			return WEXITSTATUS(status);
		}
		usleep(10000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &status, 0);
	track_pid(p->pid, 0);
	p->pid = 0;
	return -1;
}

int harness_tcp_connect(int port)
{
	return harness_tcp_connect_from(NULL, port, 0);
}

int harness_tcp_connect_from(const char *src, int port, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in a = { .sin_family = AF_INET };
	if (src && (inet_pton(AF_INET, src, &a.sin_addr) != 1 ||
		    bind(fd, (struct sockaddr *)&a, sizeof(a)))) {
		close(fd);
		return -1;
	}
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int harness_udp_socket(void)
{
	return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

int harness_send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int harness_recv_frame(int fd, frame_hdr_t *hdrp, uint8_t *body, size_t cap,
		       int timeout_ms)
{
	int r = wc_recv_frame(fd, hdrp, body, cap, harness_deadline(timeout_ms));
	return r < 0 ? -1 : r;
}

int harness_wait_eof(int fd, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	uint8_t buf[4096];
	for (;;) {
		int left = (int)(deadline - mono_ms());
		if (left <= 0)
			return 0;
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, left) <= 0)
			return 0;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return 1;
	}
}

ssize_t harness_udp_call(int fd, int port, const void *req, size_t len,
			 uint8_t *resp, size_t cap, int timeout_ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (sendto(fd, req, len, 0, (struct sockaddr *)&a, sizeof(a)) != (ssize_t)len)
		return -1;
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	if (poll(&pf, 1, timeout_ms) <= 0)
		return -1;
	return recv(fd, resp, cap, 0);
}

ssize_t harness_http_get(int port, const char *path, char *out, size_t cap)
{
	int fd = harness_tcp_connect(port);
	if (fd < 0)
		return -1;
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
	if (harness_send_all(fd, req, (size_t)n)) {
		close(fd);
		return -1;
	}
	size_t len = 0;
	int64_t deadline = mono_ms() + 5000;
	while (len < cap - 1) {
		int left = (int)(deadline - mono_ms());
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			break;
		ssize_t k = recv(fd, out + len, cap - 1 - len, 0);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	out[len] = 0;
	close(fd);
	return (ssize_t)len;
}

double harness_metric(int port, const char *name)
{
	static char out[1 << 18];
	ssize_t n = harness_http_get(port, "/metrics", out, sizeof(out));
	if (n <= 0)
		return -1;
	return harness_metric_in(out, name);
}

double harness_metric_in(const char *out, const char *name)
{
	size_t len = strlen(name);
	for (const char *l = out; *l;) {
		if (strncmp(l, name, len) == 0 && l[len] == ' ')
			return strtod(l + len + 1, NULL);
		const char *nl = strchr(l, '\n');
		if (!nl)
			break;
		l = nl + 1;
	}
	return -1;
}

double harness_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void harness_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", program_invocation_short_name);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

int harness_run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int r = system(cmd);
	return r != -1 && WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

/*
 * Takes over the PG* variables of a line "export PGHOST=... PGPORT=N ..."
 * (deploy/pg-cluster and tests/tools/lars-test-pg print one). Returns the
 * port, or -1 if @line is not one.
 */
static int take_pg_env(char *line)
{
	if (strncmp(line, "export ", 7) != 0)
		return -1;
	int port = 0;
	char *save = NULL;
	for (char *w = strtok_r(line + 7, " \n", &save); w; w = strtok_r(NULL, " \n", &save)) {
		char *eq = strchr(w, '=');
		if (!eq || strncmp(w, "PG", 2) != 0)
			return -1;
		*eq = 0;
		char *v = eq + 1;
		size_t vl = strlen(v);
		if (vl >= 2 && v[0] == '\'' && v[vl - 1] == '\'') {
			v[vl - 1] = 0;
			v++;
		}
		if (!strcmp(w, "PGPORT"))
			port = atoi(v);
		setenv(w, v, 1);
	}
	return port > 0 ? port : -1;
}

/* Runs @cmd; its whole standard output into @out (NUL-terminated). 0 if it exited 0. */
static int run_capture(const char *cmd, char *out, size_t cap)
{
	FILE *f = popen(cmd, "r");
	if (!f)
		return -1;
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = 0;
	int st = pclose(f);
	return st == 0 && n < cap - 1 ? 0 : -1;
}

int harness_cluster_start(const char *cluster, const char *dir, int *portp)
{
	char cmd[512], out[1024] = "";
	if (*portp)
		snprintf(cmd, sizeof(cmd), "'%s' start '%s' %d", cluster, dir, *portp);
	else
		snprintf(cmd, sizeof(cmd), "'%s' start '%s'", cluster, dir);
	if (run_capture(cmd, out, sizeof(out)) || !strstr(out, "PGPASSFILE="))
		return -1;
	int port = take_pg_env(out);
	if (port < 0)
		return -1;
	*portp = port;
	return 0;
}

int harness_pg_start(harness_pg_t *pg, const char *name, bool own_cluster)
{
	char cmd[512], out[1024] = "";
	memset(pg, 0, sizeof(*pg));
	snprintf(pg->dir, sizeof(pg->dir), "/tmp/lars-test-pg-XXXXXX");
	if (!mkdtemp(pg->dir)) {
		fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
		pg->dir[0] = 0;
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "'%s' start '%s' '%s'%s", HARNESS_PG_TOOL, pg->dir, name,
		 own_cluster ? " --own-cluster" : "");
	if (run_capture(cmd, out, sizeof(out)) || take_pg_env(out) < 0) {
		fprintf(stderr, "harness: %s failed\n", cmd);
		harness_pg_stop(pg);
		return -1;
	}
	return 0;
}

int harness_pg_server(harness_pg_t *pg, const char *what)
{
	char cmd[512], out[1024] = "";
	snprintf(cmd, sizeof(cmd), "'%s' server %s '%s'", HARNESS_PG_TOOL, what, pg->dir);
	if (run_capture(cmd, out, sizeof(out))) {
		fprintf(stderr, "harness: %s failed\n", cmd);
		return -1;
	}
	/* "up" prints the (unchanged) variables again. */
	if (out[0] && take_pg_env(out) < 0)
		return -1;
	return 0;
}

int harness_pg_standby(harness_pg_t *pg)
{
	if (harness_pg_server(pg, "standby"))
		return -1;
	char path[128];
	snprintf(path, sizeof(path), "%s/standby/port", pg->dir);
	FILE *f = fopen(path, "r");
	int port = -1;
	if (!f || fscanf(f, "%d", &port) != 1)
		port = -1;
	if (f)
		fclose(f);
	return port;
}

void harness_pg_stop(harness_pg_t *pg)
{
	if (!pg->dir[0])
		return;
	if (harness_run("'%s' stop '%s'", HARNESS_PG_TOOL, pg->dir))
		fprintf(stderr, "harness: lars-test-pg stop %s failed\n", pg->dir);
	pg->dir[0] = 0;
}

int harness_sql(const char *q)
{
	PGconn *c = PQconnectdb("connect_timeout=5");
	int r = -1;
	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *res = PQexec(c, q);
		ExecStatusType st = PQresultStatus(res);
		r = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
		if (r)
			fprintf(stderr, "harness: %s: %s", q, PQresultErrorMessage(res));
		PQclear(res);
	} else {
		fprintf(stderr, "harness: %s", PQerrorMessage(c));
	}
	PQfinish(c);
	return r;
}

long long harness_sql_num(const char *q)
{
	/* A scram-sha-256 login costs both sides CPU: on a loaded machine give
	 * it the time harness_sql() gives, and one more try. A server that is
	 * down refuses at once either way. */
	PGconn *c = PQconnectdb("connect_timeout=5");
	if (PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		usleep(100000);
		c = PQconnectdb("connect_timeout=5");
	}
	long long v = -1;
	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *res = PQexec(c, q);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			v = PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
	}
	PQfinish(c);
	return v;
}

long long harness_wait_sql(const char *q, long long want, int ms)
{
	long long v = -1;
	int64_t deadline = mono_ms() + ms;
	for (;;) {
		v = harness_sql_num(q);
		if (v == want || mono_ms() >= deadline)
			return v;
		usleep(100000);
	}
}

int harness_free_tcp_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int port = 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

int harness_free_udp_base(void)
{
	/* Not rand(): tests that never call srand() all draw the same first
	 * candidate, and two of them running side by side both find it free
	 * before either daemon binds it. Each process starts elsewhere. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t x = (((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20)) | 1;
	for (int tries = 0; tries < 200; tries++) {
		x ^= x << 13; /* xorshift64 */
		x ^= x >> 7;
		x ^= x << 17;
		int p = 20000 + (int)(x % 12000), s[3], ok = 1;
		for (int i = 0; i < 3; i++) {
			s[i] = socket(AF_INET, SOCK_DGRAM, 0);
			struct sockaddr_in a = { .sin_family = AF_INET,
						 .sin_port = htons((uint16_t)(p + i)),
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			ok &= bind(s[i], (struct sockaddr *)&a, sizeof(a)) == 0;
		}
		for (int i = 0; i < 3; i++)
			close(s[i]);
		if (ok)
			return p;
	}
	return 0;
}
