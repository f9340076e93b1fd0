// SPDX-License-Identifier: MIT
// What service_main() gives every real daemon, through the built binaries:
//  - lars_loop_lag_seconds (histogram) and lars_loop_lag_max_seconds on
//    /metrics of lars-agent, lars-admin, lars-reporter and (with
//    LARS_TEST_PG, it needs its routes) lars-dns;
//  - the open-file soft limit raised for [reporter] max_conns, and a warning
//    naming the key when the hard limit is too low for it;
//  - (issue 20.6) process_* and lars_build_info on every daemon, GET
//    /healthz and GET /readyz (the agent without lars-dns is not ready),
//    per-worker database job histograms, the agent's per-state host gauges.
#include "test.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static const char *dns_bin, *rep_bin, *agent_bin, *admin_bin, *larsctl_bin, *src;
static harness_proc_t proc;
static bool proc_running;

/* A rejected DB address: the daemons that can start without it do. */
#define NO_DB "[postgres]\nconninfo = host=127.0.0.1 port=1 connect_timeout=1\n"

static int stop_proc(void **state)
{
	if (!proc_running)
		return 0;
	proc_running = false;
	assert_int_equal(harness_stop(&proc), 0);
	return 0;
}

static void spawn(const char *bin, const char *config)
{
	if (harness_spawn(&proc, bin, harness_write_config(config)))
		fail_msg("%s did not start", bin);
	proc_running = true;
}

/* Both lag metrics, with HELP/TYPE and every histogram series, on @port. */
static void check_lag_metrics(const char *who, int port)
{
	static const char *const want[] = {
		"# HELP lars_loop_lag_seconds ",
		"# TYPE lars_loop_lag_seconds histogram\n",
		"\nlars_loop_lag_seconds_bucket{le=\"0.001\"} ",
		"\nlars_loop_lag_seconds_bucket{le=\"5\"} ",
		"\nlars_loop_lag_seconds_bucket{le=\"+Inf\"} ",
		"\nlars_loop_lag_seconds_sum ",
		"\nlars_loop_lag_seconds_count ",
		"# HELP lars_loop_lag_max_seconds ",
		"# TYPE lars_loop_lag_max_seconds gauge\n",
		"\nlars_loop_lag_max_seconds ",
	};
	static char out[1 << 17];
	assert_true(port > 0);
	if (harness_http_get(port, "/metrics", out, sizeof(out)) <= 0)
		fail_msg("%s: no answer on /metrics", who);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(out, want[i]))
			fail_msg("%s: /metrics lacks \"%s\"", who, want[i]);
	/* Issue 20.6: the process metrics and the build on every daemon. */
	static const char *const proc_want[] = {
		"\nprocess_cpu_seconds_total ", "\nprocess_resident_memory_bytes ",
		"\nprocess_open_fds ", "\nprocess_start_time_seconds ",
		"\nlars_build_info{version=\"",
	};
	for (size_t i = 0; i < sizeof(proc_want) / sizeof(proc_want[0]); i++)
		if (!strstr(out, proc_want[i]))
			fail_msg("%s: /metrics lacks \"%s\"", who, proc_want[i]);
	const char *rss = strstr(out, "\nprocess_resident_memory_bytes ");
	if (strtod(rss + 31, NULL) < 1e6)
		fail_msg("%s: process_resident_memory_bytes is %s", who, rss + 31);
	/* /healthz while the loop runs. */
	if (harness_http_get(port, "/healthz", out, sizeof(out)) <= 0 || !strstr(out, "200") ||
	    !strstr(out, "\r\n\r\nok\n"))
		fail_msg("%s: /healthz: %s", who, out);
}

/* GET /readyz on @port: its status line holds @status and the body @text. */
static void check_readyz(const char *who, int port, const char *status, const char *text)
{
	static char out[8192];
	if (harness_http_get(port, "/readyz", out, sizeof(out)) <= 0 || !strstr(out, status) ||
	    !strstr(out, text))
		fail_msg("%s: /readyz wants %s \"%s\": %s", who, status, text, out);
}

static void test_agent(void **state)
{
	char cfg[512];
	snprintf(cfg, sizeof(cfg),
		 "[agent]\nbase_port = %d\n[dnsserver]\nip = 127.0.0.1\nport = 1\n"
		 "[reporter]\nip = 127.0.0.1\nport = 1\n[metrics]\nenabled = true\nport = 0\n",
		 harness_free_udp_base());
	spawn(agent_bin, cfg);
	check_lag_metrics("lars-agent", harness_port(&proc, "metrics"));
	/* No lars-dns there: serving what it holds, not ready for new keys. */
	check_readyz("lars-agent", harness_port(&proc, "metrics"), " 503 ",
		     "not ready: not connected to lars-dns");
	static char out[1 << 17];
	assert_true(harness_http_get(harness_port(&proc, "metrics"), "/metrics", out,
				     sizeof(out)) > 0);
	assert_non_null(strstr(out, "\nlars_agent_hosts{state=\"idle\"} 0\n"));
	assert_non_null(strstr(out, "\nlars_agent_get_host_seconds_count "));
}

static void test_admin(void **state)
{
	char cfg[1024];
	snprintf(cfg, sizeof(cfg),
		 "[admin]\nport = 0\nassets_dir = %s/admin_svc/www\n" NO_DB
		 "[metrics]\nenabled = true\nport = 0\n", src);
	spawn(admin_bin, cfg);
	check_lag_metrics("lars-admin", harness_port(&proc, "metrics"));
}

static void test_reporter(void **state)
{
	spawn(rep_bin, "[reporter]\nport = 0\n" NO_DB "[metrics]\nenabled = true\nport = 0\n");
	check_lag_metrics("lars-reporter", harness_port(&proc, "metrics"));
	check_readyz("lars-reporter", harness_port(&proc, "metrics"), " 200 ", "ready\n");
}

static void test_dns(void **state)
{
	if (!getenv("LARS_TEST_PG")) {
		print_message("lars-dns part skipped: no LARS_TEST_PG\n");
		skip();
	}
	harness_pg_t pg;
	assert_int_equal(harness_pg_start(&pg, "daemon_metrics", false), 0);
	assert_int_equal(harness_run("%s migrate >/dev/null", larsctl_bin), 0);
	spawn(dns_bin, "[dns]\nport = 0\n[metrics]\nenabled = true\nport = 0\n");
	check_lag_metrics("lars-dns", harness_port(&proc, "metrics"));
	check_readyz("lars-dns", harness_port(&proc, "metrics"), " 200 ", "ready\n");
	static char out[1 << 17];
	assert_true(harness_http_get(harness_port(&proc, "metrics"), "/metrics", out,
				     sizeof(out)) > 0);
	assert_non_null(strstr(out, "\nlars_db_job_seconds_bucket{worker=\"dns-db\",le=\"0.001\"} "));
	assert_non_null(strstr(out, "\nlars_db_job_seconds_count{worker=\"dns-db\"} "));
	assert_non_null(strstr(out, "# TYPE lars_dns_push_seconds histogram\n"));
	assert_non_null(strstr(out, "# TYPE lars_dns_push_ack_seconds histogram\n"));
	stop_proc(state);
	harness_pg_stop(&pg);
}

/* Whether @path holds @needle. */
static bool file_has(const char *path, const char *needle)
{
	static char text[1 << 16];
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return strstr(text, needle) != NULL;
}

/* The soft "Max open files" of @pid, or -1. */
static long long soft_nofile(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	FILE *f = fopen(path, "r");
	long long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "Max open files", 14) == 0)
			v = strtoll(line + 14, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

#define REP_CONNS 3000
#define LOW_SOFT 1024

/* Started with soft limit 1024: lars-reporter raises it for max_conns. */
static void test_nofile_raised(void **state)
{
	struct rlimit saved, low;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	if (saved.rlim_max < REP_CONNS + 256) {
		print_message("hard open-file limit %llu: too low to test raising\n",
			      (unsigned long long)saved.rlim_max);
		skip();
	}
	low = saved;
	low.rlim_cur = LOW_SOFT;
	/* The child inherits it; this process gets its own limit back at once. */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	char cfg[512];
	snprintf(cfg, sizeof(cfg), "[reporter]\nport = 0\nmax_conns = %d\n" NO_DB, REP_CONNS);
	int r = harness_spawn(&proc, rep_bin, harness_write_config(cfg));
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_int_equal(r, 0);
	proc_running = true;
	long long soft = soft_nofile(proc.pid);
	if (soft < REP_CONNS)
		fail_msg("lars-reporter's soft open-file limit is %lld for max_conns = %d",
			 soft, REP_CONNS);
	char want[128];
	snprintf(want, sizeof(want), "open-file limit raised from %d to %lld for "
		 "[reporter] max_conns = %d", LOW_SOFT, soft, REP_CONNS);
	if (!file_has(proc.log, want))
		fail_msg("no \"%s\" in the log %s", want, proc.log);
}

/* A hard limit of 512 for max_conns = 3000: lars-reporter says so. It is
 * started on a port this test holds, so it exits by itself after its
 * configuration was checked (the warning comes from that check). */
static void test_nofile_hard_too_low(void **state)
{
	int hold = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	assert_int_equal(bind(hold, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(hold, 1), 0);
	assert_int_equal(getsockname(hold, (struct sockaddr *)&a, &alen), 0);
	char cfg[512];
	snprintf(cfg, sizeof(cfg), "[reporter]\nport = %d\nmax_conns = %d\n" NO_DB,
		 ntohs(a.sin_port), REP_CONNS);
	const char *path = harness_write_config(cfg);
	char err[] = "/tmp/lars-test-nofile-XXXXXX";
	int efd = mkstemp(err);
	assert_true(efd >= 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { 512, 512 };
		dup2(efd, 2);
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			execl(rep_bin, rep_bin, "-c", path, (char *)NULL);
		_exit(127);
	}
	close(efd);
	int status = 0, rc = -1;
	int64_t deadline = harness_deadline(10000);
	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			break;
		}
		if (harness_left_ms(deadline) == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		usleep(20000);
	}
	close(hold);
	unlink(path);
	char want[160];
	snprintf(want, sizeof(want), "[reporter] max_conns = %d needs about %d open files; "
		 "the hard limit is 512", REP_CONNS, REP_CONNS + 192);
	bool warned = file_has(err, want);
	if (rc != 1 || !warned)
		fail_msg("exit %d (want 1: port taken), warning \"%s\" %s (log %s)", rc, want,
			 warned ? "found" : "missing", err);
	unlink(err);
}

int main(void)
{
	dns_bin = getenv("LARS_DNS_BIN");
	rep_bin = getenv("LARS_REPORTER_BIN");
	agent_bin = getenv("LARS_AGENT_BIN");
	admin_bin = getenv("LARS_ADMIN_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	src = getenv("LARS_SRC");
	if (!dns_bin || !rep_bin || !agent_bin || !admin_bin || !larsctl_bin || !src) {
		fprintf(stderr, "LARS_{DNS,REPORTER,AGENT,ADMIN}_BIN, LARSCTL_BIN, LARS_SRC needed\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_agent, stop_proc),
		cmocka_unit_test_teardown(test_admin, stop_proc),
		cmocka_unit_test_teardown(test_reporter, stop_proc),
		cmocka_unit_test_teardown(test_dns, stop_proc),
		cmocka_unit_test_teardown(test_nofile_raised, stop_proc),
		cmocka_unit_test_teardown(test_nofile_hard_too_low, stop_proc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
