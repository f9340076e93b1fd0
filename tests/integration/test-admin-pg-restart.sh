#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# lars-admin across a PostgreSQL restart, on a cluster of its own (it is
# restarted): every database thread holds a connection, the server restarts,
# and every read right after answers 200 (a read whose connection broke is
# retried once on a new one), and so does a route write on a stale
# connection (it may run twice: adding a host already there changes nothing),
# stored exactly once.
#   test-admin-pg-restart.sh LARS_ADMIN LARSCTL
set -euo pipefail
ADMIN=$1 LARSCTL=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
# The fixture every test uses, with a cluster of its own (it restarts it).
TEST_PG_OWN_CLUSTER=1
. "$SRC/tests/lib/pg-testdb.sh"
. "$SRC/tests/lib/wait.sh"
TMP=$(mktemp -d /tmp/lars-test-admin-pgr.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
	drop_test_db
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$LARSCTL" migrate >/dev/null
"$LARSCTL" route add 5 1 127.0.0.1 9001 >/dev/null

THREADS=3
cat >"$TMP/admin.ini" <<EOF
[admin]
port = 0
assets_dir = $SRC/admin_svc/www
db_threads = $THREADS
[metrics]
enabled = true
port = 0
EOF
: >"$TMP/ready"
"$ADMIN" -c "$TMP/admin.ini" --ready-fd 3 3>"$TMP/ready" >"$TMP/admin.log" 2>&1 &
ADMIN_PID=$!
PIDS+=($ADMIN_PID)
wait_for 10 test -s "$TMP/ready" || { cat "$TMP/admin.log"; echo "FAIL: lars-admin did not start"; exit 1; }
ready_port() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" "$TMP/ready"; }
URL=http://127.0.0.1:$(ready_port http)
METRICS=http://127.0.0.1:$(ready_port metrics)/metrics
get() { curl -s -m 20 -o "$TMP/body" -w '%{http_code}' "$URL$1" || true; }
post() {
	curl -s -m 20 -o "$TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "$2" "$URL$1" || true
}
connections() { curl -s -m 10 "$METRICS" | sed -n 's/^lars_db_connections{worker="admin-db"} //p'; }

locked() {
	[ "$(psql -X -At -c "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		WHERE c.relname = 'route_data' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ]
}

# warm: every worker thread opens its connection. Reads queued behind a
# table lock hold one thread each until the lock goes.
warm() {
	psql -X -q -c "BEGIN; LOCK TABLE route_data; SELECT pg_sleep(2); COMMIT" >/dev/null &
	local lock=$! ps=()
	wait_for 10 locked || true
	for _ in $(seq 1 $THREADS); do
		curl -s -m 20 -o /dev/null "$URL/api/overview" &
		ps+=($!)
	done
	wait "${ps[@]}" "$lock" || true
	[ "$(connections)" = "$THREADS" ] || fail "$(connections) of $THREADS database connections open before the restart"
}

warm
[ "$(get /api/overview)" = 200 ] || fail "read before the restart: $(cat "$TMP/body")"
test_pg_server restart
reads=(/api/overview "/api/route?modid=5&cmdid=1" /api/descriptions "/api/changes?modid=5"
       "/api/history?modid=5&cmdid=1&minutes=2" /api/overview)
n200=0
for path in "${reads[@]}"; do
	got=$(get "$path")
	if [ "$got" = 200 ]; then n200=$((n200 + 1)); else fail "read $path right after the restart: $got $(cat "$TMP/body")"; fi
done
echo "after a PostgreSQL restart: $n200 of ${#reads[@]} reads answered 200"
grep -q "retrying a read on a new connection" "$TMP/admin.log" || fail "no read was retried"

# A route write on a stale connection is retried once on a new one, as a
# failover needs: it answers 200 and the host is stored once.
warm
test_pg_server restart
got=$(post /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002}')
[ "$got" = 200 ] && grep -q '"added"' "$TMP/body" || fail "write on a stale connection: $got $(cat "$TMP/body")"
[ "$(psql -X -At -c "SELECT count(*) FROM route_data WHERE port = 9002")" = 1 ] ||
	fail "the write on a stale connection is not stored once"
grep -q "retrying a write on a new connection" "$TMP/admin.log" || fail "no write was retried"
got=$(post /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9003}')
[ "$got" = 200 ] || fail "a later write: $got $(cat "$TMP/body")"

kill -TERM "$ADMIN_PID"
rc=0
wait "$ADMIN_PID" || rc=$?
[ "$rc" = 0 ] || fail "lars-admin exited $rc at SIGTERM"
[ "$fails" = 0 ] || { echo "$fails failure(s); lars-admin log:"; tail -n 40 "$TMP/admin.log"; exit 1; }
echo "all PostgreSQL restart checks passed"
