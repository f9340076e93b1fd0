// SPDX-License-Identifier: MIT
// Exclusive listening ports of the real lars-dns, lars-reporter and
// lars-agent (a PostgreSQL database of the test's own; loopback only):
// - a port held by another process's socket (SO_REUSEADDR and SO_REUSEPORT
//   set on it, listening for TCP): the daemon exits 1 and names
//   127.0.0.1:PORT on stderr;
// - a second instance on the port of a running one: the same, and the first
//   keeps serving;
// - reuse_port = true in both: the second starts and both serve (the
//   configuration's explicit request to share).
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "wire_client.h"

static const char *agent_bin, *dns_bin, *rep_bin, *larsctl_bin;
static harness_pg_t pg;
static harness_proc_t dns, rep; /* the running pair behind the agents */

/* A socket of another program on 127.0.0.1:@port (0: any), sharing
 * options set, listening when TCP. *portp gets the port. */
static int hold_port(int type, int port, int *portp)
{
	int fd = socket(AF_INET, type, 0), one = 1;
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	if (type == SOCK_STREAM)
		assert_int_equal(listen(fd, 8), 0);
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*portp = ntohs(a.sin_port);
	return fd;
}

/* Whether @path contains @needle. */
static bool file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char line[1024];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* Starting @bin with @config must fail: exit 1, "127.0.0.1:@port" and the
 * words "address already in use" (what deploy/lars-local looks for) on its
 * stderr. */
static void expect_refused(const char *bin, const char *config, int port)
{
	harness_proc_t p;
	int r = harness_spawn(&p, bin, config);
	if (r == 0) {
		harness_stop(&p);
		fail_msg("%s started on the taken port %d (ready: %s)", bin, port, p.ready);
	}
	assert_int_equal(p.exit_status, 1);
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	if (!file_has(p.log, addr) || !file_has(p.log, "address already in use"))
		fail_msg("%s's stderr (%s) does not name %s as taken", bin, p.log, addr);
	unlink(p.log);
	unlink(p.config);
}

/* ---- what "serving" means for each daemon ---- */

static void dns_serves(int port)
{
	int fd = harness_tcp_connect(port);
	assert_true(fd >= 0);
	assert_int_equal(wc_get_route_send(fd, 1, 1), 0);
	wc_route_t r;
	assert_int_equal(wc_route_recv(fd, &r, 4096, harness_deadline(5000), NULL), 1);
	wc_route_free(&r);
	close(fd);
}

/* A report for (2, @cmdid) reaches the database within 10 s. */
static void rep_serves(int port, int32_t cmdid)
{
	int fd = harness_tcp_connect(port);
	assert_true(fd >= 0);
	lars_HostCallResult res = { .ip = 2130706433, .port = 9000, .succ = 1 };
	assert_int_equal(wc_report_status_send(fd, 2, cmdid, 2130706433, (uint32_t)time(NULL),
					       &res, 1), 0);
	char q[160];
	snprintf(q, sizeof(q),
		 "SELECT count(*) FROM host_status WHERE modid = 2 AND cmdid = %d", (int)cmdid);
	assert_int_equal(harness_wait_sql(q, 1, 10000), 1);
	close(fd);
}

/* Every one of the agent's three sockets answers a get_host. */
static void agent_serves(const int ports[3])
{
	int fd = harness_udp_socket();
	for (int i = 0; i < 3; i++) {
		lars_GetHostResponse resp;
		int r = wc_get_host(fd, ports[i], (uint32_t)i + 1, 1, 1, &resp, 3000);
		if (r == -ETIMEDOUT)
			fail_msg("agent socket %d (port %d) does not answer", i, ports[i]);
		assert_int_equal(r, 0); /* a GetHostResponse */
	}
	close(fd);
}

static const char *dns_config(int port, bool reuse)
{
	static char cfg[128];
	snprintf(cfg, sizeof(cfg), "[dns]\nip = 127.0.0.1\nport = %d\nreuse_port = %s\n", port,
		 reuse ? "true" : "false");
	return harness_write_config(cfg);
}

static const char *rep_config(int port, bool reuse)
{
	static char cfg[160];
	snprintf(cfg, sizeof(cfg),
		 "[reporter]\nip = 127.0.0.1\nport = %d\nreuse_port = %s\nflush_interval_ms = 100\n",
		 port, reuse ? "true" : "false");
	return harness_write_config(cfg);
}

static const char *agent_config(int base, bool reuse)
{
	static char cfg[256];
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nip = 127.0.0.1\nbase_port = %d\nreuse_port = %s\n"
		 "[dnsserver]\nport = %d\n[reporter]\nport = %d\n",
		 base, reuse ? "true" : "false", harness_port(&dns, "tcp"),
		 harness_port(&rep, "tcp"));
	return harness_write_config(cfg);
}

static void agent_ports(const harness_proc_t *p, int ports[3])
{
	ports[0] = harness_port(p, "udp");
	ports[1] = harness_port(p, "udp1");
	ports[2] = harness_port(p, "udp2");
	assert_true(ports[0] > 0 && ports[1] > 0 && ports[2] > 0);
}

/* ---- the cases ---- */

static void test_held_by_another_process(void **state)
{
	(void)state;
	int port;
	int fd = hold_port(SOCK_STREAM, 0, &port);
	expect_refused(dns_bin, dns_config(port, false), port);
	expect_refused(rep_bin, rep_config(port, false), port);
	close(fd);
	/* The agent's second socket taken: it fails as a whole. */
	int base = harness_free_udp_base();
	assert_true(base > 0);
	fd = hold_port(SOCK_DGRAM, base + 1, &port);
	expect_refused(agent_bin, agent_config(base, false), base + 1);
	close(fd);
}

static void test_second_instance(void **state)
{
	(void)state;
	/* lars-dns and lars-reporter: the running pair is the first instance. */
	int dport = harness_port(&dns, "tcp"), rport = harness_port(&rep, "tcp");
	expect_refused(dns_bin, dns_config(dport, false), dport);
	expect_refused(rep_bin, rep_config(rport, false), rport);
	dns_serves(dport);
	rep_serves(rport, 1);

	int base = harness_free_udp_base();
	assert_true(base > 0);
	harness_proc_t a;
	assert_int_equal(harness_spawn(&a, agent_bin, agent_config(base, false)), 0);
	int ports[3];
	agent_ports(&a, ports);
	assert_int_equal(ports[0], base);
	expect_refused(agent_bin, agent_config(base, false), base);
	/* Asking to share is not enough when the first did not. */
	expect_refused(agent_bin, agent_config(base, true), base);
	agent_serves(ports);
	assert_int_equal(harness_stop(&a), 0);
}

static void test_reuse_port_shares(void **state)
{
	(void)state;
	int port = harness_free_tcp_port();
	harness_proc_t d1, d2, r1, r2;
	assert_int_equal(harness_spawn(&d1, dns_bin, dns_config(port, true)), 0);
	assert_int_equal(harness_spawn(&d2, dns_bin, dns_config(port, true)), 0);
	assert_int_equal(harness_port(&d2, "tcp"), port);
	dns_serves(port);
	assert_int_equal(harness_stop(&d2), 0);
	dns_serves(port);
	assert_int_equal(harness_stop(&d1), 0);

	port = harness_free_tcp_port();
	assert_int_equal(harness_spawn(&r1, rep_bin, rep_config(port, true)), 0);
	assert_int_equal(harness_spawn(&r2, rep_bin, rep_config(port, true)), 0);
	assert_int_equal(harness_port(&r2, "tcp"), port);
	rep_serves(port, 2);
	assert_int_equal(harness_stop(&r1), 0);
	assert_int_equal(harness_stop(&r2), 0);

	int base = harness_free_udp_base();
	assert_true(base > 0);
	harness_proc_t a1, a2;
	assert_int_equal(harness_spawn(&a1, agent_bin, agent_config(base, true)), 0);
	assert_int_equal(harness_spawn(&a2, agent_bin, agent_config(base, true)), 0);
	int ports[3];
	agent_ports(&a2, ports);
	assert_int_equal(ports[0], base);
	agent_serves(ports);
	assert_int_equal(harness_stop(&a2), 0);
	agent_serves(ports);
	assert_int_equal(harness_stop(&a1), 0);
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(harness_pg_start(&pg, "ports", false), 0);
	assert_int_equal(harness_run("%s migrate >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_run("%s route add 1 1 127.0.0.1 9001 >/dev/null", larsctl_bin), 0);
	assert_int_equal(harness_spawn(&dns, dns_bin, dns_config(0, false)), 0);
	assert_int_equal(harness_spawn(&rep, rep_bin, rep_config(0, false)), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	int r1 = harness_stop(&rep), r2 = harness_stop(&dns);
	harness_pg_stop(&pg);
	assert_int_equal(r1, 0);
	assert_int_equal(r2, 0);
	return 0;
}

int main(void)
{
	if (!getenv("LARS_TEST_PG")) {
		fprintf(stderr, "no PostgreSQL for this run (deploy/lars-local test provides one)\n");
		return 77;
	}
	agent_bin = getenv("LARS_AGENT_BIN");
	dns_bin = getenv("LARS_DNS_BIN");
	rep_bin = getenv("LARS_REPORTER_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	if (!agent_bin || !dns_bin || !rep_bin || !larsctl_bin) {
		fprintf(stderr, "LARS_AGENT_BIN, LARS_DNS_BIN, LARS_REPORTER_BIN and LARSCTL_BIN "
			"must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_held_by_another_process),
		cmocka_unit_test(test_second_instance),
		cmocka_unit_test(test_reuse_port_shares),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
