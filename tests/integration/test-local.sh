#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# deploy/lars-local as a user keeps restarting it:
#  (a) a service that takes a moment before it execs (the window in which
#      /proc/PID/exe is still setsid or bash) still counts as started: up
#      waits for its --ready-fd line (each daemon wrapped in a script that
#      sleeps 0.3 s, then execs it);
#  (b) five down/up cycles keep every port: services, metrics, agent base
#      (one another program took meanwhile moves, and up says so);
#  (c) a kept port taken by another process meanwhile: up moves that service
#      to another port, says so, and the agent follows lars-dns there;
#  (d) the state is private: the directory 0700 (0710 with group postgres as
#      root), every log and file in it not readable by others; as root, user
#      nobody cannot read a log.
set -euo pipefail
ROOT=$1
BUILD=$2
[ -n "${LARS_TEST_PG:-}" ] || { echo "no PostgreSQL for this run (deploy/lars-local test)"; exit 77; }
export LARS_LOCAL_DIR LARS_BUILD_DIR LARS_LOCAL_NO_BUILD=1
LARS_LOCAL_DIR=$(mktemp -d /tmp/lars-local-t.XXXXXX)
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSFILE LARS_AGENT
LOCAL=$ROOT/deploy/lars-local
wrap=$(mktemp -d /tmp/lars-local-wrap.XXXXXX)
holder=
cleanup() {
	[ -z "$holder" ] || kill "$holder" 2>/dev/null || true
	"$LOCAL" down >/dev/null 2>&1 || true
	rm -rf "$LARS_LOCAL_DIR" "$wrap"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ports() { (cd "$LARS_LOCAL_DIR/run" && for n in dns reporter agent admin; do printf '%s: %s\n' "$n" "$(cat "$n.ready")"; done); }

# (a) the daemons exec 0.3 s after the fork
for d in dns_svc/lars-dns report_svc/lars-reporter agent_svc/lars-agent admin_svc/lars-admin; do
	mkdir -p "$wrap/$(dirname "$d")"
	printf '#!/bin/sh\nsleep 0.3\nexec %s "$@"\n' "$BUILD/$d" >"$wrap/$d"
	chmod +x "$wrap/$d"
done
mkdir -p "$wrap/client" "$wrap/larsctl"
ln -s "$BUILD/larsctl/larsctl" "$wrap/larsctl/larsctl"
ln -s "$BUILD/client/lars" "$wrap/client/lars"
LARS_BUILD_DIR=$wrap
# Kept ports to start from, away from 8888 and 7780, which the end-to-end
# test run alongside takes.
mkdir -p "$LARS_LOCAL_DIR/ports"
echo $((20000 + RANDOM % 12000)) >"$LARS_LOCAL_DIR/ports/agent.base"
echo "http=$((20000 + RANDOM % 12000)) metrics=0" >"$LARS_LOCAL_DIR/ports/admin"
out=$("$LOCAL" up 2>&1) || { echo "$out"; echo "FAIL: (a) up with slow-to-exec services"; exit 1; }
[[ $out == *"host is 127.0.0."* ]] || fail "(a) up showed no get_host answer: $out"
first=$(ports)
"$LOCAL" down >/dev/null 2>&1

# (b) down/up cycles with the real binaries keep every port
LARS_BUILD_DIR=$BUILD
for i in 1 2 3 4 5; do
	out=$("$LOCAL" up 2>&1) || { echo "$out"; fail "(b) up $i failed"; break; }
	now=$(ports)
	# Only a port another program took meanwhile may move, and up says so.
	for n in dns reporter agent admin; do
		was=$(grep "^$n: " <<<"$first")
		is=$(grep "^$n: " <<<"$now")
		[ "$was" = "$is" ] || grep -q "^lars-local: lars-$n: .*\(using\|trying\) another" <<<"$out" ||
			fail "(b) cycle $i moved lars-$n silently: was '$was', now '$is'"
	done
	first=$now
	grep -q "^port = $(sed -n 's/^tcp=\([0-9]*\).*/\1/p' "$LARS_LOCAL_DIR/run/dns.ready")$" \
		"$LARS_LOCAL_DIR/conf/lars-agent.ini" || fail "(b) the agent does not look at lars-dns's port"
	"$LOCAL" down >/dev/null 2>&1
done

# (c) lars-dns's and the console's ports taken by someone else meanwhile
dns_port=$(sed -n 's/^tcp=\([0-9]*\).*/\1/p' "$LARS_LOCAL_DIR/ports/dns")
admin_port=$(sed -n 's/^http=\([0-9]*\).*/\1/p' "$LARS_LOCAL_DIR/ports/admin")
# SO_REUSEADDR (as the daemons use) only to bind over TIME_WAIT; exclusive.
# It writes the ports it holds (one may be held by another program already).
held=$wrap/held
python3 - "$held" "$dns_port" "$admin_port" <<'PY' &
import socket, sys, time
socks, held = [], []
for p in sys.argv[2:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError as e:
        print("cannot hold port %s: %s" % (p, e), file=sys.stderr)
        continue
    s.listen(8)
    socks.append(s)
    held.append(p)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(" ".join(held) + "\n")
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)
PY
holder=$!
deadline=$(($(date +%s) + 10))
until [ -s "$held" ]; do
	[ "$(date +%s)" -lt "$deadline" ] || { fail "(c) the ports were not taken"; break; }
	sleep 0.1
done
grep -qw "$dns_port" "$held" || fail "(c) could not take lars-dns's port $dns_port"
out=$("$LOCAL" up 2>&1) || fail "(c) up with taken ports failed: $out"
[[ $out == *"lars-dns: a port it had is taken now"* ]] || fail "(c) up did not say lars-dns moved: $out"
new_dns=$(sed -n 's/^tcp=\([0-9]*\).*/\1/p' "$LARS_LOCAL_DIR/run/dns.ready")
new_admin=$(sed -n 's/^http=\([0-9]*\).*/\1/p' "$LARS_LOCAL_DIR/run/admin.ready")
[ -n "$new_dns" ] && [ "$new_dns" != "$dns_port" ] || fail "(c) lars-dns on $new_dns, the taken port was $dns_port"
! grep -qw "$admin_port" "$held" || [ "$new_admin" != "$admin_port" ] || fail "(c) lars-admin on $new_admin, the taken port was $admin_port"
grep -q "^port = $new_dns$" "$LARS_LOCAL_DIR/conf/lars-agent.ini" || fail "(c) the agent does not follow lars-dns to $new_dns"
[[ $out == *"lars-dns on $new_dns"* ]] || fail "(c) up printed another lars-dns port: $out"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
holder=
moved=$(ports)
"$LOCAL" down >/dev/null 2>&1
"$LOCAL" up >/dev/null 2>&1 || fail "(c) up after the move failed"
[ "$(ports)" = "$moved" ] || fail "(c) the moved ports were not kept: $moved / $(ports)"

# (d) private state (checked while it runs: the logs have lines in them)
want=700
[ "$(id -u)" != 0 ] || want=710
[ "$(stat -c %a "$LARS_LOCAL_DIR")" = $want ] || fail "(d) state dir mode $(stat -c %a "$LARS_LOCAL_DIR"), want $want"
for f in "$LARS_LOCAL_DIR"/log/*.log; do
	[ -s "$f" ] || fail "(d) $f is empty"
	[ "$(stat -c %a "$f")" = 600 ] || fail "(d) $f mode $(stat -c %a "$f"), want 600"
done
# (The agent's snapshot, run/agent.shm, is 0644 by design: apps of other
# users map it. Here the private state dir keeps them out.)
open=$(find "$LARS_LOCAL_DIR" -path "$LARS_LOCAL_DIR/pg/data" -prune -o \
	-path "$LARS_LOCAL_DIR/run/agent.shm" -prune -o -perm /o+rwx -print)
[ -z "$open" ] || fail "(d) open to others: $open"
if [ "$(id -u)" = 0 ] && id -u nobody >/dev/null 2>&1; then
	if runuser -u nobody -- cat "$LARS_LOCAL_DIR/log/admin.log" >/dev/null 2>&1; then
		fail "(d) user nobody read the console's log"
	fi
	if runuser -u nobody -- ls "$LARS_LOCAL_DIR" >/dev/null 2>&1; then
		fail "(d) user nobody listed the state directory"
	fi
fi

[ "$fails" = 0 ] || exit 1
echo "lars-local: slow exec, 5 down/up cycles, taken ports and private state all passed"
