#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Login guessing against the real lars-admin (no database needed: logins are
# checked before any query). One address guessing a password is slowed to a
# few checks a minute and answered 429 + Retry-After unchecked in between;
# guesses spread over many addresses are slowed per user name; the operator
# who types the right password from an address that did not fail still gets
# in during both attacks; the login form (POST /api/login) is slowed the
# same way. Prints the guesses checked per second.
#   test-admin-login.sh LARS_ADMIN LARSCTL
set -euo pipefail
ADMIN=$1 LARSCTL=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d /tmp/lars-test-admin-login.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. "$SRC/tests/lib/wait.sh"

PASS="right-$RANDOM-$RANDOM-password"
CPASS="carols-$RANDOM-$RANDOM-password"
echo "$PASS" | "$LARSCTL" admin-user add tester --users-file "$TMP/users" >/dev/null
echo "$CPASS" | "$LARSCTL" admin-user add carol --users-file "$TMP/users" >/dev/null
cat >"$TMP/admin.ini" <<EOF
[admin]
port = 0
users_file = $TMP/users
assets_dir = $SRC/admin_svc/www
[postgres]
conninfo = host=127.0.0.1 port=1 dbname=none connect_timeout=1
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
PORT=$(ready_port http)
URL=http://127.0.0.1:$PORT/
METRICS=http://127.0.0.1:$(ready_port metrics)/metrics

# login FROM USER PASS: the status of GET / sent from source address FROM.
login() { curl -s -m 10 --interface "$1" -u "$2:$3" -o /dev/null -w '%{http_code}' "$URL" || true; }

# guess FILE FROM USER SECONDS MAX: wrong passwords, one after the other,
# for SECONDS (and at most MAX tries); one status per line into FILE.
guess() {
	local file=$1 from=$2 user=$3 stop=$(($(now_ms) + $4 * 1000)) i=0
	: >"$file"
	while [ "$(now_ms)" -lt "$stop" ] && [ $i -lt "$5" ]; do
		login "$from" "$user" "guess-$i-$RANDOM" >>"$file"
		echo >>"$file"
		i=$((i + 1))
	done
}
count() { grep -c "^$2\$" "$1" || true; }

# ---- one address guesses for 10 s, 4 connections at a time ----
WINDOW=10
t0=$(now_ms)
GUESS_PIDS=()
for k in 1 2 3 4; do
	: >"$TMP/a$k.codes"
	guess "$TMP/a$k.codes" 127.0.0.1 tester "$WINDOW" 3000 &
	GUESS_PIDS+=($!)
done
codes() { cat "$TMP"/a[1-4].codes; }
# During the attack: the operator, from an address that did not fail, gets in
# (no success is cached yet: the password is checked).
refused3() { [ "$(codes | grep -c '^429$')" -ge 3 ]; }
wait_for 10 refused3 || true
[ "$(codes | grep -c '^429$')" -ge 3 ] || fail "the guessing address was never refused: $(codes | sort | uniq -c | tr '\n' ' ')"
[ "$(login 127.0.0.2 tester "$PASS")" = 200 ] || fail "the right password from another address during the attack"
wait "${GUESS_PIDS[@]}"
t1=$(now_ms)
codes >"$TMP/a.codes"
checked=$(count "$TMP/a.codes" 401)
refused=$(count "$TMP/a.codes" 429)
echo "one address: $checked guesses checked in $(((t1 - t0) / 1000)) s" \
	"($(awk "BEGIN { printf \"%.1f\", $checked * 1000 / ($t1 - $t0) }")/s), $refused refused unchecked"
# 5 free failures, then waits of 1, 2, 4, 8 ... s: at most 8 in 10 s, and
# fewer when the machine is slow. Unthrottled, this was hundreds.
[ "$checked" -le 10 ] || fail "one address had $checked guesses checked in ${WINDOW} s"
[ "$(wc -l <"$TMP/a.codes")" = $((checked + refused)) ] ||
	fail "answers other than 401/429: $(sort "$TMP/a.codes" | uniq -c | tr '\n' ' ')"
# Refused unchecked: even a right password (carol's, not cached) waits, with
# a Retry-After. (Credentials that succeeded in the last minute are
# remembered and pass: a browser already logged in keeps working.)
h=$(curl -s -m 10 -u "carol:$CPASS" -D - -o "$TMP/body" "$URL" || true)
[[ $h == "HTTP/1.1 429"* ]] || fail "the guessing address, right password: $(head -n 1 <<<"$h")"
grep -qi '^Retry-After: [1-9][0-9]*' <<<"$h" || fail "no Retry-After: $h"
grep -q 'password was not checked' "$TMP/body" || fail "429 body: $(cat "$TMP/body")"
grep -q "127.0.0.1 failed to log in [0-9]* times: its next try waits" "$TMP/admin.log" ||
	fail "the back-off is not logged"

# ---- many addresses guess one name (20 addresses, 6 rounds) ----
: >"$TMP/b.codes"
stop=$(($(now_ms) + 30000))
for round in 1 2 3 4 5 6; do
	for n in $(seq 1 20); do
		[ "$(now_ms)" -lt "$stop" ] || break 2
		login "127.0.1.$n" carol "r$round-$n-$RANDOM" >>"$TMP/b.codes"
		echo >>"$TMP/b.codes"
	done
done
checked=$(count "$TMP/b.codes" 401)
echo "20 addresses, one name: $checked of $(wc -l <"$TMP/b.codes") guesses checked"
# Per address alone this is 100 (5 free each); per name, once the name has
# had its 10 free failures, an address that failed waits: about 20.
[ "$checked" -le 40 ] || fail "$checked guesses checked from 20 addresses"
# A fresh address still gets its guess checked, but only one.
[ "$(login 127.0.3.1 carol wrong-1)" = 401 ] || fail "a fresh address's first guess"
[ "$(login 127.0.3.1 carol wrong-2)" = 429 ] || fail "a fresh address's second guess while the name is slowed"
# And the operator, from an address with no failures, gets in at once.
[ "$(login 127.0.4.1 carol "$CPASS")" = 200 ] || fail "the right password from a clean address during the name attack"

# ---- the login form: the same back-off, no session for a guess ----
form() { # form FROM USER PASS: the status of POST /api/login
	curl -s -m 10 --interface "$1" -c "$TMP/jar-$1" -o /dev/null -w '%{http_code}' \
		-H 'Content-Type: application/json' --data-binary "{\"user\":\"$2\",\"password\":\"$3\"}" \
		"${URL}api/login" || true
}
: >"$TMP/f.codes"
for i in $(seq 1 12); do
	form 127.0.5.1 tester "form-guess-$i" >>"$TMP/f.codes"
	echo >>"$TMP/f.codes"
done
checked=$(count "$TMP/f.codes" 401)
echo "the login form from one address: $checked of 12 guesses checked"
[ "$(count "$TMP/f.codes" 429)" -ge 1 ] || fail "form guesses were never refused: $(sort "$TMP/f.codes" | uniq -c | tr '\n' ' ')"
[ "$checked" -le 10 ] || fail "$checked form guesses checked from one address"
grep -q lars_session "$TMP/jar-127.0.5.1" && fail "a guess got a session"
# The operator, from an address that did not fail, logs in with the form.
[ "$(form 127.0.5.2 tester "$PASS")" = 200 ] || fail "the right password in the form from a clean address"
grep -q lars_session "$TMP/jar-127.0.5.2" || fail "the right password got no session"

m_out=$(curl -s -m 10 "$METRICS") # whole: an early grep -q would SIGPIPE curl under pipefail
grep -q '^lars_admin_login_throttled_total [1-9]' <<<"$m_out" || fail "metrics: throttled logins"
kill -TERM "$ADMIN_PID"
rc=0
wait "$ADMIN_PID" || rc=$?
[ "$rc" = 0 ] || fail "lars-admin exited $rc at SIGTERM"
[ "$fails" = 0 ] || { echo "$fails failure(s); lars-admin log:"; tail -n 40 "$TMP/admin.log"; exit 1; }
echo "all login back-off checks passed"
