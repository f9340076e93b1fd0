// SPDX-License-Identifier: MIT
// Which PostgreSQL failures a failover ends (common/pg/pg_conn.c): the
// SQLSTATEs that make a worker reconnect, and the connect errors larsctl
// waits out. No server needed: a refused connection is a real one.
#include "test.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pg_conn.h"

static void test_sqlstate_retryable(void **state)
{
	/* The connection broke, the server is going away, or it cannot write. */
	const char *yes[] = { "08000", "08003", "08006", "57P01", "57P02", "57P03", "25006" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(pg_sqlstate_retryable(yes[i]));
	/* The statement's own fault, or a timeout: running it again elsewhere
	 * does not help (or is the caller's decision). */
	const char *no[] = { "23505", "42P01", "57014", "40001", "22P02", "25001", "" };
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(pg_sqlstate_retryable(no[i]));
	assert_false(pg_sqlstate_retryable(NULL));
}

/* A loopback port nobody listens on: bound, never listened, then closed. */
static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void test_connect_refused_is_transient(void **state)
{
	char ci[128];
	int p = closed_port();
	/* Both servers of a multi-host conninfo down: the primary is dead and
	 * the standby not promoted yet (or restarting). */
	snprintf(ci, sizeof(ci), "host=127.0.0.1,127.0.0.1 port=%d,%d dbname=x user=x", p, p);
	PGconn *c = pg_open(ci, "test", 2);
	assert_int_not_equal(PQstatus(c), CONNECTION_OK);
	assert_true(pg_connect_error_transient(c));
	PQfinish(c);
}

static void test_bad_conninfo_is_not_transient(void **state)
{
	/* A mistake in the conninfo never goes away by waiting. */
	PGconn *c = pg_open("host=127.0.0.1 nosuchoption=1", "test", 2);
	assert_int_not_equal(PQstatus(c), CONNECTION_OK);
	assert_false(pg_connect_error_transient(c));
	PQfinish(c);
	assert_false(pg_connect_error_transient(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sqlstate_retryable),
		cmocka_unit_test(test_connect_refused_is_transient),
		cmocka_unit_test(test_bad_conninfo_is_not_transient),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
