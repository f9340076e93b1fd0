// SPDX-License-Identifier: MIT
// Leases of self-registered hosts (issue 23 item 3) on a real PostgreSQL:
// a registration adds the host through the route triggers with its actor,
// registering again or renewing is no route change, an operator's host
// gets no lease, only the owner deregisters; the expiry pass removes what
// ran out, one session at a time (the advisory lock), and two real lars-dns
// instances expiring the same leases record each removal exactly once.
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "pg_conn.h"
#include "route_lease.h"

static const char *dns_bin, *larsctl_bin;
static harness_pg_t pg;
static PGconn *conn;

static route_entry_t host(int32_t modid, int32_t cmdid, const char *ip, int port)
{
	route_entry_t e = { .modid = modid, .cmdid = cmdid, .port = port };
	snprintf(e.ip, sizeof(e.ip), "%s", ip);
	return e;
}

static long long num(const char *q)
{
	return harness_sql_num(q);
}

static void test_register_renew_deregister(void **state)
{
	route_entry_t a = host(40, 1, "10.4.0.1", 80), op = host(40, 1, "10.4.0.9", 80);
	int64_t v0, v;
	int res;
	assert_int_equal(harness_run("%s route add 40 1 10.4.0.9 80 >/dev/null", larsctl_bin), 0);
	v0 = num("SELECT version FROM route_version");

	assert_int_equal(route_lease_register(conn, &a, 50, 7, 30, "agent 10.0.0.7", &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_ADDED);
	assert_true(v == v0 + 1);
	assert_int_equal(num("SELECT weight FROM route_data WHERE ip = '10.4.0.1'"), 50);
	assert_int_equal(num("SELECT count(*) FROM route_change WHERE ip = '10.4.0.1' AND action = 'add'"
			     " AND actor = 'agent 10.0.0.7'"), 1);
	assert_int_equal(num("SELECT count(*) FROM route_lease l JOIN route_data d ON d.id = l.route_id"
			     " WHERE d.ip = '10.4.0.1' AND owner = 7 AND ttl_s = 30"
			     " AND expires_at > now() + interval '25 s'"), 1);
	/* Again (an agent restarted, say): renewed, no route change. */
	assert_int_equal(route_lease_register(conn, &a, 50, 8, 20, "agent 10.0.0.7", &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_RENEWED);
	assert_true(v == v0 + 1);
	assert_int_equal(num("SELECT owner FROM route_lease"), 8);
	/* An operator's host: nothing attached, nothing changed. */
	assert_int_equal(route_lease_register(conn, &op, 100, 8, 30, "agent x", &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_OPERATOR);
	assert_true(v == v0 + 1);
	assert_int_equal(num("SELECT count(*) FROM route_lease"), 1);
	/* Renewals: only the owner's, and they are no route change. */
	route_entry_t both[2] = { a, op };
	size_t n;
	bool renewed[2];
	assert_int_equal(route_lease_renew(conn, 8, both, 2, &n, renewed), 0);
	assert_int_equal(n, 1);
	assert_true(renewed[0] && !renewed[1]);
	assert_int_equal(route_lease_renew(conn, 7, both, 2, &n, renewed), 0);
	assert_int_equal(n, 0);
	assert_true(!renewed[0] && !renewed[1]);
	assert_int_equal(num("SELECT version FROM route_version"), v0 + 1);
	/* Drain: only the owner's host, once a route change; registering
	 * again ends it, and a new weight is one more change. */
	assert_int_equal(route_lease_drain(conn, &op, 8, "agent x", &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_ABSENT);
	assert_int_equal(route_lease_drain(conn, &a, 7, "agent x", &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_ABSENT);
	assert_int_equal(route_lease_drain(conn, &a, 8, "agent x", &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_DRAINED);
	assert_true(v == v0 + 2);
	assert_int_equal(route_lease_drain(conn, &a, 8, "agent x", &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_DRAINED);
	assert_true(v == v0 + 2);
	assert_int_equal(num("SELECT count(*) FROM route_data WHERE drain AND ip = '10.4.0.1'"), 1);
	assert_int_equal(route_lease_register(conn, &a, 50, 8, 30, "agent x", &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_RENEWED);
	assert_true(v == v0 + 3);
	assert_int_equal(num("SELECT count(*) FROM route_data WHERE drain"), 0);
	assert_int_equal(route_lease_register(conn, &a, 70, 8, 30, "agent x", &res, &v), 0);
	assert_true(v == v0 + 4);
	assert_int_equal(num("SELECT weight FROM route_data WHERE ip = '10.4.0.1'"), 70);
	v0 += 3;
	/* Only the owner deregisters; the host goes through the triggers. */
	assert_int_equal(route_lease_deregister(conn, &a, 7, "agent y", &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_ABSENT);
	assert_int_equal(route_lease_deregister(conn, &op, 8, "agent y", &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_ABSENT); /* the operator's host stays */
	assert_int_equal(route_lease_deregister(conn, &a, 8, "agent 10.0.0.7", &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_REMOVED);
	assert_true(v == v0 + 2);
	assert_int_equal(num("SELECT count(*) FROM route_data WHERE modid = 40"), 1);
	assert_int_equal(num("SELECT count(*) FROM route_lease"), 0);
	assert_int_equal(num("SELECT count(*) FROM route_change WHERE ip = '10.4.0.1' AND action = 'del'"
			     " AND actor = 'agent 10.0.0.7'"), 1);
	/* An operator removing a leased host: its lease matches nothing any
	 * more (a new registration starts afresh) and the expiry pass drops it. */
	assert_int_equal(route_lease_register(conn, &a, 100, 8, 30, NULL, &res, &v), 0);
	assert_int_equal(harness_run("%s route del 40 1 10.4.0.1 80 >/dev/null", larsctl_bin), 0);
	assert_int_equal(route_lease_register(conn, &a, 100, 8, 30, NULL, &res, &v), 0);
	assert_int_equal(res, ROUTE_LEASE_ADDED);
	assert_int_equal(num("SELECT count(*) FROM route_lease"), 2);
	assert_int_equal(route_lease_expire(conn, "test", &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(num("SELECT count(*) FROM route_lease"), 1);
	assert_int_equal(route_lease_deregister(conn, &a, 8, NULL, &res, &v), 0);
	assert_int_equal(route_lease_expire(conn, "test", &n), 0);
	assert_int_equal(num("SELECT count(*) FROM route_lease"), 0);
	/* Bad input. */
	const char *why;
	assert_int_equal(route_lease_check(0, 100, &why), -EINVAL);
	assert_int_equal(route_lease_check(86401, 100, &why), -EINVAL);
	assert_int_equal(route_lease_check(10, 0, &why), -EINVAL);
	assert_int_equal(route_lease_check(10, 1001, &why), -EINVAL);
	assert_int_equal(route_lease_check(86400, 1000, &why), 0);
}

static void test_expiry_one_session_at_a_time(void **state)
{
	route_entry_t a = host(41, 1, "10.4.1.1", 80);
	int res;
	int64_t v;
	size_t n;
	assert_int_equal(route_lease_register(conn, &a, 100, 5, 1, "agent z", &res, &v), 0);
	assert_int_equal(harness_sql("UPDATE route_lease SET expires_at = now() - interval '1 s'"), 0);
	/* Another session holds the expiry lock: nothing done here. */
	PGconn *other = pg_open(NULL, "test-leases", 5);
	assert_int_equal(PQstatus(other), CONNECTION_OK);
	PGresult *r = PQexec(other, "SELECT pg_advisory_lock(7809632785326760307)");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	assert_int_equal(route_lease_expire(conn, "test", &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(num("SELECT count(*) FROM route_data WHERE modid = 41"), 1);
	r = PQexec(other, "SELECT pg_advisory_unlock(7809632785326760307)");
	PQclear(r);
	PQfinish(other);
	assert_int_equal(route_lease_expire(conn, "lars-dns (lease expired)", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(num("SELECT count(*) FROM route_data WHERE modid = 41"), 0);
	assert_int_equal(num("SELECT count(*) FROM route_change WHERE modid = 41 AND action = 'del'"
			     " AND actor = 'lars-dns (lease expired)'"), 1);
	/* Nothing due: nothing removed, no version. */
	int64_t v1 = num("SELECT version FROM route_version");
	assert_int_equal(route_lease_expire(conn, "test", &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(num("SELECT version FROM route_version"), v1);
}

static void test_two_dns_expire_once(void **state)
{
	enum { N = 20 };
	int res;
	int64_t v;
	for (int i = 0; i < N; i++) {
		char ip[16];
		snprintf(ip, sizeof(ip), "10.4.2.%d", i + 1);
		route_entry_t e = host(42, 1, ip, 80);
		assert_int_equal(route_lease_register(conn, &e, 100, 6, 2, "agent w", &res, &v), 0);
	}
	assert_int_equal(harness_run("%s route add 42 1 10.4.2.200 80 >/dev/null", larsctl_bin), 0);
	harness_proc_t d[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(harness_spawn(&d[i], dns_bin, harness_write_config(
			"[dns]\nport = 0\nlease_expiry_interval_ms = 50\n"
			"[metrics]\nenabled = true\nport = 0\n")), 0);
	/* Due after 2 s; both instances pass every 50 ms. */
	assert_int_equal(harness_wait_sql("SELECT count(*) FROM route_data WHERE modid = 42", 1, 15000), 1);
	assert_int_equal(num("SELECT count(*) FROM route_data WHERE ip = '10.4.2.200'"), 1);
	assert_int_equal(num("SELECT count(*) FROM route_change WHERE modid = 42 AND action = 'del'"), N);
	assert_int_equal(num("SELECT count(DISTINCT ip) FROM route_change WHERE modid = 42 AND action = 'del'"
			     " AND actor = 'lars-dns (lease expired)'"), N);
	double sum = 0;
	for (int i = 0; i < 2; i++)
		sum += harness_metric(harness_port(&d[i], "metrics"), "lars_dns_leases_expired_total");
	printf("# %d leases expired by two lars-dns: %.0f removals counted, %lld change records\n", N,
	       sum, num("SELECT count(*) FROM route_change WHERE modid = 42 AND action = 'del'"));
	assert_true(sum == N);
	for (int i = 0; i < 2; i++)
		assert_int_equal(harness_stop(&d[i]), 0);
}

static int setup(void **state)
{
	if (harness_pg_start(&pg, "leases", false))
		return -1;
	if (harness_run("%s migrate >/dev/null", larsctl_bin))
		return -1;
	conn = pg_open(NULL, "test-leases", 5);
	return PQstatus(conn) == CONNECTION_OK ? 0 : -1;
}

static int teardown(void **state)
{
	PQfinish(conn);
	harness_pg_stop(&pg);
	return 0;
}

int main(void)
{
	if (!getenv("LARS_TEST_PG")) {
		fprintf(stderr, "no PostgreSQL for this run (deploy/lars-local test provides one)\n");
		return 77;
	}
	dns_bin = getenv("LARS_DNS_BIN");
	larsctl_bin = getenv("LARSCTL_BIN");
	if (!dns_bin || !larsctl_bin) {
		fprintf(stderr, "LARS_DNS_BIN and LARSCTL_BIN must be set\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_renew_deregister),
		cmocka_unit_test(test_expiry_one_session_at_a_time),
		cmocka_unit_test(test_two_dns_expire_once),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
