# SPDX-License-Identifier: MIT
# Sourced by shell tests that need PostgreSQL: a database of their own through
# tests/tools/lars-test-pg, the fixture the C tests use too (harness_pg_start):
# on the server the PG* variables name (the run's), or a private cluster
# with TEST_PG_OWN_CLUSTER=1 set before sourcing (tests that restart it:
# test_pg_server down|up|restart|kill). Sets PG* (PGDATABASE=$TEST_DB);
# dropped on exit (drop_test_db; a test with its own EXIT trap calls it).
# Skips (exit 77) without $LARS_TEST_PG.
TEST_PG_TOOL=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)/lars-test-pg
if [ -z "${LARS_TEST_PG:-}" ]; then
	echo "no PostgreSQL for this run (deploy/lars-local test provides one)"
	exit 77
fi
TEST_PG_DIR=$(mktemp -d "/tmp/lars-test-pg-$(basename "$0" .sh).XXXXXX")
if ! _pg_env=$("$TEST_PG_TOOL" start "$TEST_PG_DIR" "$(basename "$0" .sh | tr -c 'A-Za-z0-9\n' '_')" \
	${TEST_PG_OWN_CLUSTER:+--own-cluster}); then
	"$TEST_PG_TOOL" stop "$TEST_PG_DIR"
	echo "FAIL: lars-test-pg start: no database"
	exit 1
fi
# Its "export PG..." line replaces whatever PG* the caller had.
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE
eval "$_pg_env"
unset _pg_env
TEST_DB=$PGDATABASE
test_pg_server() { "$TEST_PG_TOOL" server "$1" "$TEST_PG_DIR" >/dev/null; }
drop_test_db() {
	if [ -n "$TEST_PG_DIR" ]; then
		"$TEST_PG_TOOL" stop "$TEST_PG_DIR" || true
		TEST_PG_DIR=
	fi
}
trap drop_test_db EXIT
