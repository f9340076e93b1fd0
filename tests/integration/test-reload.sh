#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# SIGHUP reloads (issue 24.5), on a real lars-agent: [log] level, the
# [loadbalance] values and the lars-dns server list are applied at once (the
# agent moves to the new lars-dns), a changed key that needs a restart is
# named in the log and left as it runs, and a file with an error changes
# nothing while the agent goes on serving.
set -euo pipefail
AGENT=$1 LARS=$2
W=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# wait_for SECONDS CMD...: until CMD succeeds, at most SECONDS.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.1
	done
}

# Two stand-ins for lars-dns that only count connections, and a dead port.
/usr/bin/python3 -c '
import select, socket, sys, time
ls = []
for _ in range(2):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0)); s.listen(16); ls.append(s)
d = socket.socket(); d.bind(("127.0.0.1", 0)); dead = d.getsockname()[1]; d.close()
print(ls[0].getsockname()[1], ls[1].getsockname()[1], dead, flush=True)
held, end = [], time.time() + 120
while time.time() < end:
    r, _, _ = select.select(ls, [], [], 0.5)
    for s in r:
        c, _ = s.accept(); held.append(c)
        print("accept", s.getsockname()[1], flush=True)
' > "$W/listen" &
pids+=($!)
wait_for 10 test -s "$W/listen" || { echo "FAIL: no listener"; exit 1; }
read -r L1 L2 DEAD < <(head -1 "$W/listen")

conf() {
	cat > "$W/agent.ini" <<EOT
[agent]
base_port = 0
max_routes = $1
[dnsserver]
servers = 127.0.0.1:$2
[reporter]
servers = 127.0.0.1:$DEAD
[loadbalance]
contin_err_limit = $3
[log]
level = $4
EOT
}
conf 1000 "$L1" 15 info
"$AGENT" -c "$W/agent.ini" --ready-fd 3 3>"$W/ready" 2>"$W/log" &
agent=$!
pids+=($agent)
wait_for 10 grep -q 'udp=' "$W/ready" || { echo "FAIL: agent not ready"; cat "$W/log"; exit 1; }
port=$(sed -n 's/.*udp=\([0-9]*\).*/\1/p' "$W/ready")
accepted() { grep -q "^accept $1\$" "$W/listen"; }
wait_for 10 accepted "$L1" || fail "the agent never connected to the first lars-dns"
! grep -q ' D ' "$W/log" || fail "debug lines at [log] level = info"

# Reload: new lars-dns, debug logs, a new contin_err_limit, and max_routes
# (a restart's business).
conf 5 "$L2" 6 debug
lines=$(wc -l < "$W/log")
kill -HUP "$agent"
reloaded() { tail -n +"$((lines + 1))" "$W/log" | grep -q "reload: $W/agent.ini read"; }
wait_for 10 reloaded || fail "no reload line: $(cat "$W/log")"
sum=$(tail -n +"$((lines + 1))" "$W/log" | grep "reload: $W/agent.ini read")
[[ $sum == *"applied: "*"[loadbalance] contin_err_limit"* && $sum == *"[log] level"* ]] ||
	fail "applied keys: $sum"
[[ $sum == *"needs a restart (unchanged until then): [agent] max_routes"* ]] || fail "restart keys: $sum"
grep -q "reload: \[dnsserver\] servers: 127.0.0.1:$L2 (were 127.0.0.1:$L1)" "$W/log" ||
	fail "server list line: $(cat "$W/log")"
grep -q "reload: \[loadbalance\] applied to every route from its next decision on (probe_num 10, .*contin_err_limit 6," "$W/log" ||
	fail "loadbalance line: $(cat "$W/log")"
wait_for 15 accepted "$L2" || fail "the agent did not move to the new lars-dns"
# Debug now: the dead reporter's retries show (10 s backoff at most).
debug_after() { tail -n +"$((lines + 1))" "$W/log" | grep -q ' D '; }
wait_for 25 debug_after || fail "no debug line after [log] level = debug"

# A broken file: nothing changes, the agent still answers.
printf '[loadbalance]\ncontin_err_limit = lots\n' > "$W/agent.ini"
lines=$(wc -l < "$W/log")
kill -HUP "$agent"
refused() { tail -n +"$((lines + 1))" "$W/log" | grep -q "reload: $W/agent.ini has errors (above); nothing changed"; }
wait_for 10 refused || fail "a broken file was not refused: $(tail -5 "$W/log")"
tail -n +"$((lines + 1))" "$W/log" | grep -q "agent.ini:2: \[loadbalance\] contin_err_limit = lots" ||
	fail "the reason with its line"
"$LARS" --agent "127.0.0.1:$port" --timeout 500 --retries 1 agent-state >/dev/null || fail "agent-state after a refused reload"
kill -0 "$agent" || fail "the agent died"
# The same file twice: nothing applied.
conf 5 "$L2" 6 debug
lines=$(wc -l < "$W/log")
kill -HUP "$agent"
wait_for 10 reloaded || fail "no second reload line"
tail -n +"$((lines + 1))" "$W/log" | grep -q "applied: nothing; needs a restart (unchanged until then): \[agent\] max_routes" ||
	fail "a reload of the same values: $(tail -3 "$W/log")"
kill "$agent"
wait "$agent" || fail "agent exited $?"
[ "$fails" = 0 ] || { cat "$W/log"; exit 1; }
echo "reload: all checks passed"
