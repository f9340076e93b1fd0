// SPDX-License-Identifier: MIT
// INI configuration: typed keys, defaults kept, unknown keys warned, bad
// values and syntax rejected with file:line.
#include "test.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "net.h"

typedef struct cfg {
	int port;
	double err_rate;
	bool flag;
	char conninfo[128];
	net_endpoint_t servers[NET_MAX_ENDPOINTS];
	int n_servers;
} cfg_t;

static int parse_servers(const char *value, void *dst, const char **whyp)
{
	cfg_t *c = (cfg_t *)((char *)dst - offsetof(cfg_t, servers));
	int n = net_endpoints_parse(value, c->servers, NET_MAX_ENDPOINTS);
	if (n < 0) {
		*whyp = "expected host:port, host:port";
		return -EINVAL;
	}
	c->n_servers = n;
	return 0;
}

static cfg_t cfg;
static config_key_t keys[] = {
	CONFIG_KEY_INT("dnsserver", "port", &cfg.port, 1, 65535),
	CONFIG_KEY_DOUBLE("loadbalance", "err_rate", &cfg.err_rate, 0, 1),
	CONFIG_KEY_BOOL("x", "flag", &cfg.flag),
	CONFIG_KEY_STR("db", "conninfo", cfg.conninfo),
	CONFIG_KEY_FN("dnsserver", "servers", &cfg.servers, parse_servers),
};

static char path[64];
/* stderr goes here so the test can check what was logged. */
static char logpath[64];

static int load(const char *text)
{
	cfg = (cfg_t){ .port = 7778, .err_rate = 0.1 };
	strcpy(cfg.conninfo, "default");
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_non_null(freopen(logpath, "w", stderr));
	int r = config_load(path, keys, sizeof(keys) / sizeof(keys[0]));
	fflush(stderr);
	return r;
}

static int logged(const char *needle)
{
	size_t len;
	uint8_t *buf = test_read_file(logpath, &len);
	buf = realloc(buf, len + 1);
	buf[len] = 0;
	int found = strstr((char *)buf, needle) != NULL;
	if (!found)
		print_message("log was:\n%s\n", buf);
	free(buf);
	return found;
}

static void test_values_and_defaults(void **state)
{
	assert_int_equal(load("; comment\n[dnsserver]\nport = 9000\n"
			      "servers = 127.0.0.1:7778, [::1]:7779\n"
			      "[loadbalance]\nerr_rate=0.25\n"
			      "[db]\nconninfo = host=127.0.0.1 dbname=lars\n"), 0);
	assert_int_equal(cfg.port, 9000);
	assert_true(cfg.err_rate == 0.25);
	assert_false(cfg.flag); /* default kept */
	assert_string_equal(cfg.conninfo, "host=127.0.0.1 dbname=lars");
	assert_int_equal(cfg.n_servers, 2);
	assert_string_equal(cfg.servers[1].host, "::1");
	assert_int_equal(cfg.servers[1].port, 7779);
	assert_int_equal(load("[x]\nflag = yes\n"), 0);
	assert_true(cfg.flag);
	assert_int_equal(cfg.port, 7778);
}

static void test_unknown_key_warns(void **state)
{
	assert_int_equal(load("[dnsserver]\nport = 1\nprot = 2\n[nosuch]\na = b\n"), 0);
	assert_true(logged(":3: unknown key [dnsserver] prot"));
	assert_true(logged(":5: unknown key [nosuch] a"));
}

static void test_bad_values_name_line(void **state)
{
	assert_int_equal(load("[dnsserver]\n\nport = 70000\n"), -EINVAL);
	assert_true(logged(":3: [dnsserver] port = 70000: out of range"));
	assert_int_equal(load("[dnsserver]\nport = 12ab\n"), -EINVAL);
	assert_true(logged(":2: [dnsserver] port = 12ab: not an integer"));
	assert_int_equal(load("[loadbalance]\nerr_rate = 1.5\n"), -EINVAL);
	assert_true(logged("out of range"));
	assert_int_equal(load("[loadbalance]\nerr_rate = nan\n"), -EINVAL);
	assert_int_equal(load("[x]\nflag = maybe\n"), -EINVAL);
	assert_true(logged(":2: [x] flag = maybe"));
	assert_int_equal(load("[dnsserver]\nservers = localhost\n"), -EINVAL);
	assert_true(logged("expected host:port"));
	assert_int_equal(load("[dnsserver]\nservers = 127.0.0.1:0\n"), -EINVAL);
}

static void test_syntax_and_long_lines(void **state)
{
	assert_int_equal(load("[dnsserver\nport = 1\n"), -EINVAL);
	assert_true(logged(":1: syntax error"));
	assert_int_equal(load("[dnsserver]\nport 1\n"), -EINVAL);
	assert_true(logged(":2: syntax error"));
	char big[1024];
	memset(big, 'a', sizeof(big));
	memcpy(big, "[db]\nconninfo = ", 16);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = 0;
	assert_int_equal(load(big), -EINVAL);
	assert_true(logged(":2: line too long"));
	/* A string longer than its buffer. */
	char longv[200];
	snprintf(longv, sizeof(longv), "[db]\nconninfo = %0150d\n", 1);
	assert_int_equal(load(longv), -EINVAL);
	assert_true(logged("too long"));
}

static void test_twice_and_continuations(void **state)
{
	assert_int_equal(load("[dnsserver]\nport = 1\nport = 2\n"), -EINVAL);
	assert_true(logged(":3: [dnsserver] port set again (first at line 2"));
	/* An indented line is inih's multi-line value: never silently glued. */
	assert_int_equal(load("[db]\nconninfo = host=a\n  port = 7777\n"), -EINVAL);
	assert_true(logged(":3: [db] conninfo set again"));
	/* Decimal only: a leading zero is not octal. */
	assert_int_equal(load("[dnsserver]\nport = 08080\n"), 0);
	assert_int_equal(cfg.port, 8080);
}

static void test_missing_file(void **state)
{
	assert_non_null(freopen(logpath, "w", stderr));
	assert_int_equal(config_load("/nonexistent/lars.ini", keys, 1), -ENOENT);
}

int main(void)
{
	log_init(LOG_LVL_INFO);
	snprintf(path, sizeof(path), "/tmp/lars-test-config-%d.ini", (int)getpid());
	snprintf(logpath, sizeof(logpath), "/tmp/lars-test-config-%d.log", (int)getpid());
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_and_defaults),
		cmocka_unit_test(test_unknown_key_warns),
		cmocka_unit_test(test_bad_values_name_line),
		cmocka_unit_test(test_syntax_and_long_lines),
		cmocka_unit_test(test_twice_and_continuations),
		cmocka_unit_test(test_missing_file),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(path);
	unlink(logpath);
	return r;
}
