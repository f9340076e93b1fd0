# SPDX-License-Identifier: MIT
# Sourced by shell tests that need PostgreSQL: a database of their own in the
# throwaway cluster (PG* variables from deploy/lars-local test), dropped on exit.
# Skips (exit 77) when no cluster was provided.
if [ -z "${LARS_TEST_PG:-}" ]; then
	echo "no PostgreSQL for this run (deploy/lars-local test provides one)"
	exit 77
fi
TEST_DB="lars_t_$(basename "$0" .sh | tr -c 'a-z0-9\n' '_')_$$"
psql -q -X -d postgres -c "CREATE DATABASE \"$TEST_DB\"" >/dev/null
export PGDATABASE=$TEST_DB
drop_test_db() {
	psql -q -X -d postgres -c "DROP DATABASE IF EXISTS \"$TEST_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap drop_test_db EXIT
