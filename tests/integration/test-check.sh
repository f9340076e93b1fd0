#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every daemon's --check and --check=connect (issue 24.4): the shipped
# example configurations pass; an unknown key, a bad value, a refused
# permission or an address that cannot be bound exits 2 with FILE:LINE:
# reason; a port in use is a warning (the running daemon holds it); with
# =connect, PostgreSQL (reachable, schema current) and the agent's
# upstreams are connected to.
set -euo pipefail
DNS=$1 REP=$2 AGENT=$3 ADMIN=$4 LARSCTL=$5 SRC=$6
. "$(dirname "$0")/../lib/pg-testdb.sh"

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
W=$(mktemp -d)
listener_pid=
cleanup() { [ -z "$listener_pid" ] || kill "$listener_pid" 2>/dev/null || true; rm -rf "$W"; drop_test_db; }
trap cleanup EXIT

# check BIN FILE [--check=connect] -> rc, out, err
check() {
	rc=0
	out=$("$1" "${3:---check}" -c "$2" 2>"$W/err") || rc=$?
	err=$(cat "$W/err")
}

# The examples, as shipped (the console's pages from the source tree).
sed "s|^;assets_dir = .*|assets_dir = $SRC/admin_svc/www|" "$SRC/deploy/conf/lars-admin.ini" > "$W/lars-admin.ini"
for d in "$DNS:$SRC/deploy/conf/lars-dns.ini" "$REP:$SRC/deploy/conf/lars-reporter.ini" \
	 "$AGENT:$SRC/deploy/conf/lars-agent.ini" "$ADMIN:$W/lars-admin.ini"; do
	bin=${d%%:*} ini=${d#*:}
	check "$bin" "$ini"
	[ "$rc" = 0 ] && [[ $out == *"$ini: OK, the daemon would start"* ]] ||
		fail "$(basename "$bin") --check on its example: $rc $out $err"
done

# Strict: an unknown key is an error here (a daemon only warns), with its line.
printf '[dns]\nport = 0\nmax_conn = 5\n[bogus]\nx = 1\n' > "$W/unknown.ini"
check "$DNS" "$W/unknown.ini"
[ "$rc" = 2 ] && [[ $err == *"$W/unknown.ini:3: unknown key [dns] max_conn"* ]] &&
	[[ $err == *"$W/unknown.ini:5: unknown key [bogus] x"* ]] || fail "unknown keys: $rc $err"
printf '[reporter]\nport = 0\nbatch_keys = many\n' > "$W/value.ini"
check "$REP" "$W/value.ini"
[ "$rc" = 2 ] && [[ $err == *"$W/value.ini:3: [reporter] batch_keys = many: not an integer"* ]] ||
	fail "bad value: $rc $err"
printf '[agent]\nbase_port = 0\n[loadbalance]\nprobe_num = 10\nprobe_num = 11\n' > "$W/twice.ini"
check "$AGENT" "$W/twice.ini"
[ "$rc" = 2 ] && [[ $err == *"$W/twice.ini:5: [loadbalance] probe_num set again"* ]] || fail "a key twice: $rc $err"
# A password in a file everyone may read is refused, as at start.
printf '[dns]\nport = 0\n[postgres]\nconninfo = host=/tmp password=secret\n' > "$W/secret.ini"
chmod 0644 "$W/secret.ini"
check "$DNS" "$W/secret.ini"
[ "$rc" = 2 ] && [[ $err == *"$W/secret.ini: holds a database password and is readable by everyone"* ]] ||
	fail "world-readable password: $rc $err"
chmod 0600 "$W/secret.ini"
check "$DNS" "$W/secret.ini"
[ "$rc" = 0 ] || fail "the same file 0600: $rc $err"
# A users file everyone may read, an address not on this machine, a missing file.
printf 'admin:x\n' > "$W/users"
chmod 0644 "$W/users"
printf '[admin]\nip = 192.0.2.1\nport = 0\nusers_file = %s\nassets_dir = %s\n' "$W/users" "$SRC/admin_svc/www" > "$W/admin.ini"
check "$ADMIN" "$W/admin.ini"
[ "$rc" = 2 ] && [[ $err == *"$W/admin.ini: [admin] ip/port: cannot bind 192.0.2.1:0"* ]] &&
	[[ $err == *"$W/admin.ini: [admin] users_file = $W/users: "* ]] || fail "admin checks: $rc $err"
check "$DNS" "$W/nonexistent.ini"
[ "$rc" = 2 ] && [[ $err == *"$W/nonexistent.ini: cannot open configuration"* ]] || fail "no file: $rc $err"
rc=0
"$DNS" --check=always -c "$W/secret.ini" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "--check=always exited $rc"

# [metrics] enabled = true without a port: the daemon's fixed metrics port.
for d in "$DNS:dns:9778" "$REP:reporter:9779" "$AGENT:agent:9888"; do
	IFS=: read -r bin sec mport <<<"$d"
	printf '[%s]
%s = 0
[metrics]
enabled = true
' "$sec" "$([ "$sec" = agent ] && echo base_port || echo port)" > "$W/m.ini"
	out=$("$bin" --check --log-level debug -c "$W/m.ini" 2>&1) || true
	[[ $out == *"[metrics] ip/port 127.0.0.1:$mport"* ]] || fail "$(basename "$bin"): metrics not on $mport: $out"
done
printf '[admin]
port = 0
assets_dir = %s
[metrics]
enabled = true
' "$SRC/admin_svc/www" > "$W/m.ini"
out=$("$ADMIN" --check --log-level debug -c "$W/m.ini" 2>&1) || true
[[ $out == *"[metrics] ip/port 127.0.0.1:9780"* ]] || fail "lars-admin: metrics not on 9780: $out"

# A port in use: a warning, still exit 0 (a check before a restart).
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
time.sleep(60)' > "$W/port" &
listener_pid=$!
for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.1; done
busy=$(cat "$W/port")
printf '[dns]\nport = %s\n' "$busy" > "$W/busy.ini"
check "$DNS" "$W/busy.ini"
[ "$rc" = 0 ] && [[ $err == *"warning: [dns] ip/port 127.0.0.1:$busy is in use now"* ]] &&
	[[ $out == *"see the warnings above"* ]] || fail "a port in use: $rc $out $err"

# =connect: PostgreSQL, and the schema this build needs.
printf '[dns]\nport = 0\n[postgres]\nconninfo = host=127.0.0.1 port=1 connect_timeout=2\n' > "$W/nodb.ini"
check "$DNS" "$W/nodb.ini" --check=connect
[ "$rc" = 2 ] && [[ $err == *"[postgres] conninfo: cannot connect to PostgreSQL"* ]] || fail "no database: $rc $err"
check "$DNS" "$W/nodb.ini"
[ "$rc" = 0 ] || fail "--check without =connect connected: $rc $err"
printf '[reporter]\nport = 0\n' > "$W/rep.ini"
check "$REP" "$W/rep.ini" --check=connect
[ "$rc" = 2 ] && [[ $err == *"run \`larsctl migrate\`"* ]] || fail "a database not migrated: $rc $err"
"$LARSCTL" migrate >/dev/null
for b in "$DNS:[dns]" "$REP:[reporter]" "$ADMIN:[admin]"; do
	printf '%s\nport = 0\n' "${b#*:}" > "$W/c.ini"
	[ "${b#*:}" != "[admin]" ] || printf 'assets_dir = %s\n' "$SRC/admin_svc/www" >> "$W/c.ini"
	check "${b%%:*}" "$W/c.ini" --check=connect
	[ "$rc" = 0 ] && [[ $out == *"its database and upstreams answered"* ]] ||
		fail "$(basename "${b%%:*}") --check=connect: $rc $out $err"
done
# The agent's upstreams: one of two answering is a warning, none an error.
printf '[agent]\nbase_port = 0\n[dnsserver]\nservers = 127.0.0.1:%s, 127.0.0.1:1\n[reporter]\nservers = 127.0.0.1:%s\n' \
	"$busy" "$busy" > "$W/agent.ini"
check "$AGENT" "$W/agent.ini" --check=connect
[ "$rc" = 0 ] && [[ $err == *"warning: [dnsserver]: cannot connect to 127.0.0.1:1 (Connection refused) (1 of 2 reachable)"* ]] ||
	fail "agent, one upstream down: $rc $err"
printf '[agent]\nbase_port = 0\n[dnsserver]\nservers = 127.0.0.1:1\n' > "$W/agent2.ini"
check "$AGENT" "$W/agent2.ini" --check=connect
[ "$rc" = 2 ] && [[ $err == *"[dnsserver]: cannot connect to any of 127.0.0.1:1"* ]] || fail "agent, no lars-dns: $rc $err"

[ "$fails" = 0 ] || exit 1
echo "check: all checks passed"
