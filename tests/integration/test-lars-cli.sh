#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The lars tool's command line without an agent (issue 15 item 5):
# options after the command, --version, one message for a bad option, and
# a report to an agent that is not there exits 2 with the socket's error;
# the duration options (--latency-us, --latency-us-spread, --slow): their
# values and the commands they belong to.
# Nothing listens on UDP 127.0.0.1:3..5 (privileged, unused ports).
set -uo pipefail
LARS=$1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run ARGS...: sets rc, out (stdout), err (stderr); bounded by timeout(1).
run() {
	local o e
	o=$(mktemp) e=$(mktemp)
	timeout 10 "$LARS" "$@" >"$o" 2>"$e"
	rc=$?
	out=$(cat "$o") err=$(cat "$e")
	rm -f "$o" "$e"
}
unset LARS_AGENT

run --version
[ "$rc" = 0 ] || fail "--version exited $rc ($err)"
[[ $out =~ ^lars\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "--version printed '$out'"
[ -z "$err" ] || fail "--version wrote to stderr: $err"

# Options after the command and its arguments, in every form.
for args in "get-host 1 1 --agent 127.0.0.1:3" "get-host 1 1 --agent=127.0.0.1:3" \
	    "get-host --agent 127.0.0.1:3 1 1" "--timeout 50 get-host 1 --retries 2 1 --agent 127.0.0.1:3" \
	    "get-route 1 1 --agent 127.0.0.1:3" "--agent 127.0.0.1:3 get-host 1 1"; do
	# shellcheck disable=SC2086
	run $args
	[ "$rc" = 2 ] || fail "lars $args exited $rc, want 2 (no agent): $err"
	[[ $err == *"Connection refused"* || $err == *"no answer"* ]] || fail "lars $args said: $err"
done
LARS_AGENT=127.0.0.1:3 run get-host 1 1 --timeout 50
[ "$rc" = 2 ] || fail "LARS_AGENT + option after: exited $rc: $err"

# "--" ends the options; a negative number is an argument.
run -- get-host 1 1
[ "$rc" = 2 ] || [ "$rc" = 0 ] || [ "$rc" = 3 ] || fail "'-- get-host 1 1' exited $rc: $err"
run --agent 127.0.0.1:3 get-host -- 1 --timeout
[ "$rc" = 64 ] || fail "'--timeout' after '--' taken as an option (exit $rc)"

# Usage errors: exit 64, one line.
for args in "--bogus get-host 1 1" "get-host 1 1 --bogus" "get-host 1 1 --count 5" \
	    "get-host 1 1 --agent" "get-host 1" "-x" "get-host -1 1" "get-host 1 1 -o json" \
	    "get-route 1 1 -o yaml"; do
	# shellcheck disable=SC2086
	run $args
	[ "$rc" = 64 ] || fail "lars $args exited $rc, want 64"
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "lars $args: not one message: $err"
done
# Durations: a bad value, the wrong command, or both models at once.
for args in "report 1 1 127.0.0.1 9001 0 --latency-us -1" "report 1 1 127.0.0.1 9001 0 --latency-us 4294967296" \
	    "report 1 1 127.0.0.1 9001 0 --latency-us 1ms" "report 1 1 127.0.0.1 9001 0 --latency-us" \
	    "get-host 1 1 --latency-us 5" "get-route 1 1 --latency-us 5" \
	    "simulate 1 1 --latency-us 5 --latency-us-spread 1:9" "simulate 1 1 --latency-us-spread 9:1" \
	    "simulate 1 1 --latency-us-spread 5" "simulate 1 1 --slow 127.0.0.1:9001" \
	    "simulate 1 1 --slow 127.0.0.1:9001=3:1" "bench --slow 127.0.0.1:9001=5" \
	    "bench --latency-us-spread 1:2" "report 1 1 127.0.0.1 9001 0 --latency-us-spread 1:2"; do
	# shellcheck disable=SC2086
	run $args --agent 127.0.0.1:3
	[ "$rc" = 64 ] || fail "lars $args exited $rc, want 64"
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "lars $args: not one message: $err"
done
run report 1 1 127.0.0.1 9001 0 --latency-us 5 --latency-us-spread 1:2
[[ $err == *"exclude each other"* ]] || fail "both duration options: '$err'"
run get-host 1 1 --latency-us 5
[[ $err == *"option of report, simulate and bench"* ]] || fail "--latency-us on get-host: '$err'"
run --help
for o in --latency-us --latency-us-spread --slow; do
	[[ $out == *"$o "* ]] || fail "--help does not mention $o"
done

run get-host 1 1 --help
[ "$rc" = 0 ] && [[ $out == Usage:* ]] || fail "--help after the command: $rc $out"

# A report to a dead agent: exit 2 and the socket's error (the old tool
# exited 0 silently). Several times: never a silent success.
for i in 1 2 3 4 5; do
	if [ "$i" -le 3 ]; then
		run --agent 127.0.0.1:3 --timeout 50 report 1 1 127.0.0.1 9001 0
	else
		run report 1 1 127.0.0.1 9001 0 --agent 127.0.0.1:3 --timeout 50
	fi
	[ "$rc" = 2 ] || fail "report to a dead agent exited $rc (try $i)"
	[[ $err == *"Connection refused"* || $err == *"does not answer"* ]] ||
		fail "report to a dead agent said: '$err'"
done
run report 1 1 127.0.0.1 9001 -1 --agent 127.0.0.1:3
[ "$rc" = 2 ] || fail "report with RETCODE -1 exited $rc: $err"
# With a duration: the same (lars_report_latency() fails as lars_report()).
for v in 4200 0 4294967295; do
	run report 1 1 127.0.0.1 9001 0 --latency-us "$v" --agent 127.0.0.1:3 --timeout 50
	[ "$rc" = 2 ] || fail "report --latency-us $v to a dead agent exited $rc"
	[[ $err == *"Connection refused"* || $err == *"does not answer"* ]] ||
		fail "report --latency-us $v to a dead agent said: '$err'"
done

[ "$fails" = 0 ] || exit 1
echo "lars command line: ok"
