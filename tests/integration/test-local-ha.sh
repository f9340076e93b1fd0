#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# deploy/lars-local up --ha and failover (issue 18.5): a primary and a hot
# standby, two lars-dns, two lars-reporters and an agent using both; then
# `failover` SIGKILLs the primary and promotes the standby while lars
# get-host is asked all along: zero failures, a route change made meanwhile
# lands on the new primary and reaches the agent; larsctl through `env`
# follows; `down` leaves no process behind.
set -euo pipefail
ROOT=$1
BUILD=$2
[ -n "${LARS_TEST_PG:-}" ] || { echo "no PostgreSQL for this run (deploy/lars-local test)"; exit 77; }
export LARS_LOCAL_DIR LARS_BUILD_DIR=$BUILD LARS_LOCAL_NO_BUILD=1
LARS_LOCAL_DIR=$(mktemp -d /tmp/lars-local-ha.XXXXXX)
chmod 755 "$LARS_LOCAL_DIR"
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSFILE LARS_AGENT PGTARGETSESSIONATTRS
LOCAL=$ROOT/deploy/lars-local
cleanup() {
	"$LOCAL" down >/dev/null 2>&1 || true
	rm -rf "$LARS_LOCAL_DIR"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# Running, not a zombie nobody reaps (containers without an init).
alive() {
	local state
	state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}
# Away from 8888, which other tests take.
mkdir -p "$LARS_LOCAL_DIR/ports"
echo $((20000 + RANDOM % 12000)) >"$LARS_LOCAL_DIR/ports/agent.base"
echo "http=0 metrics=0" >"$LARS_LOCAL_DIR/ports/admin"
: >"$LARS_LOCAL_DIR/ports/admin.moved"

out=$("$LOCAL" up --ha 2>&1) || { echo "$out"; echo "FAIL: up --ha"; exit 1; }
[[ $out == *"host is 127.0.0."* ]] || fail "up --ha showed no get_host answer: $out"
st=$("$LOCAL" status)
grep -q '^postgresql *primary' <<<"$st" || fail "no primary in status: $st"
grep -q '^postgresql *standby' <<<"$st" || fail "no standby in status: $st"
for n in lars-dns lars-dns2 lars-reporter lars-reporter2 lars-agent lars-admin; do
	grep -q "^$n  *pid [0-9]" <<<"$st" || fail "$n does not run: $st"
done
grep -q "servers = .*," "$LARS_LOCAL_DIR/conf/lars-agent.ini" || fail "the agent is not given both upstreams"
pids=$(cat "$LARS_LOCAL_DIR"/run/*.pid)

out=$(timeout 120 "$LOCAL" failover 2>&1) || fail "failover failed: $out"
echo "$out" | grep '^lars-local:'
grep -q "during the failover: [0-9]* answered, 0 failed" <<<"$out" || fail "get-host failed during the failover: $out"
grep -q "the agent has the new host" <<<"$out" || fail "the change made during the failover did not reach the agent"
st=$("$LOCAL" status)
grep -q "^postgresql *primary *127.0.0.1:$(cat "$LARS_LOCAL_DIR/pg-standby/port")" <<<"$st" ||
	fail "the standby is not the primary now: $st"

# larsctl through env: both servers, only the writable one.
(
	eval "$("$LOCAL" env)"
	larsctl route add 2 1 127.0.0.77 9077 >/dev/null &&
		lars get-route 2 1 >/dev/null
) || fail "larsctl or lars through env after the failover"
end=$((SECONDS + 10))
until LARS_AGENT=127.0.0.1:$(cat "$LARS_LOCAL_DIR/run/agent.base") "$BUILD/client/lars" get-route 2 1 2>/dev/null |
	grep -q 127.0.0.77; do
	[ $SECONDS -lt $end ] || { fail "a change after the failover did not reach the agent"; break; }
	sleep 0.1
done
# The old primary must not come back.
if "$LOCAL" up --ha >/dev/null 2>&1; then fail "up after a failover started the old primary"; fi

"$LOCAL" down >/dev/null 2>&1
for p in $pids; do
	if alive "$p"; then fail "pid $p still runs after down"; fi
done
for d in pg pg-standby; do
	pid=$(head -n 1 "$LARS_LOCAL_DIR/$d/data/postmaster.pid" 2>/dev/null) || continue
	if alive "$pid"; then fail "PostgreSQL $d still runs after down"; fi
done
[ "$fails" = 0 ] || { echo "$fails failure(s)"; tail -n 20 "$LARS_LOCAL_DIR"/log/*.log; exit 1; }
echo "all lars-local --ha checks passed"
