# SPDX-License-Identifier: MIT
# Sourced by shell tests that need PostgreSQL: a database of their own, dropped
# on exit (drop_test_db; a test with its own EXIT trap calls it).
# The same fixture as the C tests: with $LARS_PG_CLUSTER (deploy/pg-cluster)
# the test starts a throwaway cluster of its own through it and stops it in
# drop_test_db; without it, the PG* variables must name a running server.
# Skips (exit 77) without $LARS_TEST_PG.
if [ -z "${LARS_TEST_PG:-}" ]; then
	echo "no PostgreSQL for this run (deploy/lars-local test provides one)"
	exit 77
fi
TEST_DB="lars_t_$(basename "$0" .sh | tr -c 'a-z0-9\n' '_')_$$"
TEST_PG_DIR=
if [ -n "${LARS_PG_CLUSTER:-}" ]; then
	TEST_PG_DIR=$(mktemp -d "/tmp/lars-test-pg-$(basename "$0" .sh).XXXXXX")
	chmod 755 "$TEST_PG_DIR" # the cluster's owner (postgres, as root) must reach it
	# Its "export PG..." lines replace whatever PG* the caller had.
	if ! _pg_env=$("$LARS_PG_CLUSTER" start "$TEST_PG_DIR/pg"); then
		rm -rf "$TEST_PG_DIR"
		echo "FAIL: $LARS_PG_CLUSTER start did not start a cluster"
		exit 1
	fi
	unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE
	eval "$_pg_env"
	unset _pg_env
fi
psql -q -X -d postgres -c "CREATE DATABASE \"$TEST_DB\"" >/dev/null
export PGDATABASE=$TEST_DB
drop_test_db() {
	psql -q -X -d postgres -c "DROP DATABASE IF EXISTS \"$TEST_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
	if [ -n "$TEST_PG_DIR" ]; then
		"$LARS_PG_CLUSTER" stop "$TEST_PG_DIR/pg" >/dev/null 2>&1 || true
		rm -rf "$TEST_PG_DIR"
		TEST_PG_DIR=
	fi
}
trap drop_test_db EXIT
