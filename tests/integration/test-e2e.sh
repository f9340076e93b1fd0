#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole system as a new user gets it: deploy/lars-local up (its own state
# directory, free ports, its own PostgreSQL), then the lars and larsctl tools:
#  (a) first use: a route added with larsctl, lars get-host answers one of its
#      hosts, and every host is picked in turn;
#  (b) a larsctl change reaches lars get-route (pushed; a deadline, not a speed test);
#  (c) lars simulate with one host failing 100%: after the first seconds it
#      gets only probes, and larsctl status shows its errors;
#  (d) lars-dns killed: get-host keeps working; restarted (lars-local up): a
#      new change arrives;
#  (e) lars-agent killed: lars get-host keeps answering from the agent's
#      snapshot (fail-open); over UDP only it returns 2, it does not hang;
# and down / up again keeps the routes. The services' database sessions are
# role lars (no superuser); no login without the password file.
set -euo pipefail
ROOT=$1
BUILD=$2
[ -n "${LARS_TEST_PG:-}" ] || { echo "no PostgreSQL for this run (deploy/lars-local test)"; exit 77; }
export LARS_LOCAL_DIR; LARS_LOCAL_DIR=$(mktemp -d /tmp/lars-e2e.XXXXXX)
export LARS_BUILD_DIR=$BUILD LARS_LOCAL_NO_BUILD=1
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSFILE LARS_AGENT
LOCAL=$ROOT/deploy/lars-local
cleanup() {
	"$LOCAL" down >/dev/null 2>&1 || true
	rm -rf "$LARS_LOCAL_DIR"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ms() { date +%s%3N; }
. "$ROOT/tests/lib/wait.sh"

# The console on a kept port of its own, not 7780: another lars-admin there
# (a run alongside) shared the port while HTTP listeners used SO_REUSEPORT.
mkdir -p "$LARS_LOCAL_DIR/ports"
echo "http=$((20000 + RANDOM % 12000)) metrics=0" >"$LARS_LOCAL_DIR/ports/admin"
out=$("$LOCAL" up 2>&1) || { echo "$out"; exit 1; }
[[ $out == *"host is 127.0.0."* ]] || fail "up did not show a get_host answer: $out"
eval "$("$LOCAL" env)"
[ -n "${LARS_AGENT:-}" ] || fail "env gave no LARS_AGENT"

# The console: up printed its URL and a generated login that works.
url=$(sed -n 's|^Web console: \(http://[0-9.:]*/\)$|\1|p' <<<"$out")
user=$(sed -n 's/^user=//p' "$LARS_LOCAL_DIR/admin-credentials")
pass=$(sed -n 's/^password=//p' "$LARS_LOCAL_DIR/admin-credentials")
[ -n "$url" ] && [ -n "$pass" ] || fail "up printed no console URL and login: $out"
[[ $out == *"password $pass"* ]] || fail "up did not print the console password"
[ "$(stat -c %a "$LARS_LOCAL_DIR/admin-credentials")" = 600 ] || fail "credentials file not 0600"
got=$(curl -s -m 10 -u "$user:$pass" "${url}api/overview") || true
[[ $got == *'"modid":1,"cmdid":1'* ]] || fail "console overview with the printed login: $got"
got=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "${url}api/overview") || true
[ "$got" = 401 ] || fail "console without a login: $got"

# The services log in as the role `lars` (no superuser); nobody else
# gets in without the password file.
users=$(psql -X -w -At -c "SELECT DISTINCT usename FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
[ "$users" = lars ] || fail "the services' database sessions are not (only) role lars: '$users'"
[ "$(psql -X -w -At -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'lars'")" = f ] || fail "role lars is a superuser"
if PGPASSFILE=/nonexistent psql -X -w -c 'SELECT 1' >/dev/null 2>&1; then fail "logged in without the password file"; fi
if [ "$(id -u)" = 0 ] && id -u nobody >/dev/null 2>&1 &&
	runuser -u nobody -- env -i PATH="$PATH" psql -X -w -h 127.0.0.1 -p "$PGPORT" -U lars -d lars -c 'SELECT 1' >/dev/null 2>&1; then
	fail "user nobody logged in to the local cluster"
fi

# (a) first use
larsctl route add 10 1 127.0.0.1 9101 >/dev/null
larsctl route add 10 1 127.0.0.1 9102 >/dev/null
larsctl route add 10 1 127.0.0.1 9103 >/dev/null
wait_for 15 lars get-route 10 1 >/dev/null 2>&1 || true
h=$(lars get-host 10 1) || fail "(a) get-host exited $?"
[[ $h =~ ^host\ is\ 127\.0\.0\.1:910[123]$ ]] || fail "(a) get-host said: $h"
# Over UDP the agent's one round robin gives three runs three hosts.
seen=$( (for _ in 1 2 3; do LARS_SHM=0 lars get-host 10 1; done) | sort -u | wc -l)
[ "$seen" = 3 ] || fail "(a) three calls picked $seen distinct hosts"
# From the snapshot each run starts its round robin at a random turn: 60 runs
# miss a host with a chance of 3 * (2/3)^60, below 1e-10.
seen=$( (for _ in $(seq 60); do lars get-host 10 1; done) | sort -u | wc -l)
[ "$seen" = 3 ] || fail "(a) 60 runs from the snapshot picked $seen distinct hosts"

# (b) a change reaches get-route (bench/ measures how fast)
larsctl route add 10 1 127.0.0.1 9104 >/dev/null
served() { lars get-route "$1" "$2" 2>/dev/null | grep -q ":$3\$"; }
wait_for 15 served 10 1 9104 || fail "(b) 9104 not served within 15 s"

# (c) one host failing every call
for p in 9201 9202 9203; do larsctl route add 10 2 127.0.0.1 $p >/dev/null; done
wait_for 15 lars get-route 10 2 >/dev/null 2>&1 || true
sim_picks() {
	sim=$(lars simulate 10 2 --count 3000 --fail 127.0.0.1:9201=100 "$@")
	picks=$(printf '%s\n' "$sim" | awk '$1 == "127.0.0.1:9201" {print $2}')
	others=$(printf '%s\n' "$sim" | awk '$1 != "127.0.0.1:9201" && $1 ~ /^127/ {s += $2} END {print s}')
}
# Over UDP: before it is overloaded (15 failures in a row) it takes a third of
# the calls; after that one pick in probe_num + 1 = 11: well under 3000 / 11 + 50.
sim_picks --udp
[ -n "$picks" ] && [ "$picks" -lt 330 ] || fail "(c) the failing host got $picks picks: $sim"
[ "${others:-0}" -gt 2500 ] || fail "(c) the healthy hosts got only $others picks"
# From the agent's snapshot the calls are some fifty times faster, so more of
# them pass while its errors are on their way (a batch of 8, then the
# agent's verdict); still it loses its third (1,000) soon: one pick in 11
# is 270, half as many again is allowed for the start.
sim_picks --shm
[ -n "$picks" ] && [ "$picks" -lt 600 ] || fail "(c) from the snapshot the failing host got $picks picks: $sim"
[ "${others:-0}" -gt 2400 ] || fail "(c) from the snapshot the healthy hosts got only $others picks"
errors_shown() {
	local st
	st=$(larsctl status 10 2 2>/dev/null | awk '$3 == "127.0.0.1:9201" {print $6}')
	[ -n "$st" ] && [ "$st" -gt 0 ]
}
wait_for 30 errors_shown || fail "(c) larsctl status shows no errors for 127.0.0.1:9201"

# (d) lars-dns killed, then restarted
kill -KILL "$(cat "$LARS_LOCAL_DIR/run/dns.pid")"
sleep 0.3
for _ in 1 2 3 4 5; do
	lars get-host 10 1 >/dev/null || fail "(d) get-host failed with lars-dns down"
done
"$LOCAL" up >/dev/null 2>&1 || fail "(d) up did not restart lars-dns"
larsctl route add 10 1 127.0.0.1 9105 >/dev/null
wait_for 30 served 10 1 9105 || fail "(d) a change after the restart did not arrive"

# (e) lars-agent killed
kill -KILL "$(cat "$LARS_LOCAL_DIR/run/agent.pid")"
sleep 0.2
t0=$(ms)
set +e
lars get-host 10 1 >/dev/null 2>&1
rc=$?
set -e
took=$(( $(ms) - t0 ))
[ "$rc" = 0 ] || fail "(e) get-host exited $rc with the agent dead: the snapshot should fail open"
# Over UDP only (LARS_SHM=0) there is nobody to answer: 2, without hanging.
t0=$(ms)
set +e
LARS_SHM=0 lars get-host 10 1 >/dev/null 2>&1
rc=$?
set -e
took=$(( $(ms) - t0 ))
[ "$rc" = 2 ] || fail "(e) get-host over UDP exited $rc with the agent dead, want 2"
# A hang, not a speed test: its own timeout ends it well before this.
[ "$took" -lt 20000 ] || fail "(e) get-host took $took ms"

# down, then up again: the routes are still there
"$LOCAL" down >/dev/null 2>&1
st=$("$LOCAL" status)
grep -q '^lars-dns *stopped' <<<"$st" || fail "down left lars-dns running: $st"
"$LOCAL" up >/dev/null 2>&1 || fail "up after down failed"
eval "$("$LOCAL" env)"
[ "$(larsctl route list 10 1 | grep -c '127.0.0.1:910')" = 5 ] || fail "routes lost across down/up"

[ "$fails" = 0 ] || exit 1
echo "end to end: all scenarios passed"
