#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# lars-admin's JSON API against the real service and a real PostgreSQL:
# login refused without (or with wrong) credentials and logged with the peer,
# security headers on every answer, bad input refused with nothing changed,
# writes from another origin refused, a console write pushed by lars-dns to
# a subscribed TCP client, hostile HTTP survived, start-up refusals.
#   test-admin.sh LARS_ADMIN LARS_DNS LARSCTL DNS_WATCH
set -euo pipefail
ADMIN=$1 DNS=$2 LARSCTL=$3 WATCH=$4
SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$SRC/tests/lib/pg-testdb.sh"
. "$SRC/tests/lib/wait.sh"

TMP=$(mktemp -d /tmp/lars-test-admin.XXXXXX)
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
q() { psql -X -At -c "$1"; }

# start NAME BIN CONF: run a daemon, wait for its ready line, set $PORT_<NAME>.
start() {
	local name=$1 bin=$2 conf=$3
	: >"$TMP/$name.ready"
	"$bin" -c "$conf" --ready-fd 3 3>"$TMP/$name.ready" >>"$TMP/$name.log" 2>&1 &
	eval "PID_$name=$!"
	PIDS+=($!)
	wait_for 30 test -s "$TMP/$name.ready" && return 0
	cat "$TMP/$name.log"
	echo "FAIL: $name did not start"
	exit 1
}
exited() { # exited PID: gone or a zombie (not reaped yet)
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
	[[ $st == Z* ]]
}
ready_port() { sed -n "s/.*\b$2=\([0-9]*\).*/\1/p" "$TMP/$1.ready"; }

# stop NAME: SIGTERM; it must exit 0 (sanitizer reports make it non-zero).
stop() {
	local pid
	pid=$(eval "echo \$PID_$1")
	kill -TERM "$pid"
	if ! wait_for 20 exited "$pid"; then
		fail "$1 did not exit within 20 s of SIGTERM"
		kill -KILL "$pid"
	fi
	local rc=0
	wait "$pid" || rc=$?
	[ "$rc" = 0 ] || fail "$1 exited $rc at SIGTERM"
}

"$LARSCTL" migrate >/dev/null
"$LARSCTL" route add 5 1 127.0.0.1 9001 >/dev/null

PASS="test-password-$RANDOM-$RANDOM"
echo "$PASS" | "$LARSCTL" admin-user add tester --users-file "$TMP/users" >/dev/null
[ "$(stat -c %a "$TMP/users")" = 640 ] || fail "users file mode $(stat -c %a "$TMP/users")"

printf '[dns]\nport = 0\n' >"$TMP/dns.ini"
start dns "$DNS" "$TMP/dns.ini"
cat >"$TMP/admin.ini" <<EOF
[admin]
port = 0
users_file = $TMP/users
assets_dir = $SRC/admin_svc/www
max_body = 8192
[metrics]
enabled = true
port = 0
EOF
start admin "$ADMIN" "$TMP/admin.ini"
URL=http://127.0.0.1:$(ready_port admin http)
METRICS=http://127.0.0.1:$(ready_port admin metrics)

# call METHOD PATH [curl args...]: prints "STATUS BODY" (credentials given).
call() {
	local method=$1 path=$2
	shift 2
	curl -s -m 10 -u "tester:$PASS" -X "$method" -o "$TMP/body" -w '%{http_code}' \
		"$@" "$URL$path" || true
	printf ' %s' "$(cat "$TMP/body" 2>/dev/null)"
}
post() { # post PATH JSON [curl args...]
	local path=$1 json=$2
	shift 2
	call POST "$path" -H 'Content-Type: application/json' --data-binary "$json" "$@"
}
expect() { # expect WHAT "STATUS BODY" STATUS [SUBSTRING]
	local what=$1 got=$2 status=$3 sub=${4:-}
	[[ $got == "$status "* ]] || { fail "$what: want $status, got: $got"; return; }
	[ -z "$sub" ] || [[ $got == *"$sub"* ]] || fail "$what: '$sub' not in: $got"
}
state() { q "SELECT (SELECT version FROM route_version) || '/' || (SELECT count(*) FROM route_data) || '/' || (SELECT count(*) FROM route_change) || '/' || (SELECT string_agg(description, ',' ORDER BY modid) FROM modid_config)"; }

# ---- who may get in ----
got=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$URL/api/overview")
[ "$got" = 401 ] || fail "no credentials: $got"
got=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$URL/")
[ "$got" = 401 ] || fail "no credentials, page: $got"
got=$(curl -s -m 10 -u "tester:wrong" -o /dev/null -w '%{http_code}' "$URL/api/overview")
[ "$got" = 401 ] || fail "wrong password: $got"
got=$(curl -s -m 10 -u "nobody:$PASS" -o /dev/null -w '%{http_code}' "$URL/api/overview")
[ "$got" = 401 ] || fail "unknown user: $got"
got=$(curl -s -m 10 -H 'Authorization: Bearer x' -o /dev/null -w '%{http_code}' "$URL/api/overview")
[ "$got" = 401 ] || fail "not Basic: $got"
grep -q "login failed for user 'tester' from 127.0.0.1:[0-9]* (wrong password)" "$TMP/admin.log" ||
	fail "wrong password not logged with the peer"
grep -q "login failed for an unknown user name from 127.0.0.1:" "$TMP/admin.log" ||
	fail "unknown user not logged"
# A password typed into the name field must not land in the log: a name that
# is not a user is logged as a fixed placeholder.
TYPED="typed-into-the-name-field-$RANDOM"
got=$(curl -s -m 10 -u "$TYPED:" -o /dev/null -w '%{http_code}' "$URL/api/overview")
[ "$got" = 401 ] || fail "password as name: $got"
grep -q "nobody" "$TMP/admin.log" && fail "an unknown user name is in the log"
grep -q "$TYPED" "$TMP/admin.log" && fail "a password typed as the name is in the log"
[ "$(grep -c "login failed for an unknown user name from 127.0.0.1:" "$TMP/admin.log")" = 2 ] ||
	fail "unknown names: $(grep 'login failed' "$TMP/admin.log")"

# lars_admin_login_failed_total counts requests that carried credentials, not
# the credential-less first request every browser sends before the prompt.
failed_count() { curl -s -m 10 "$METRICS/metrics" | sed -n 's/^lars_admin_login_failed_total //p'; }
n0=$(failed_count)
for _ in 1 2 3 4 5; do curl -s -m 10 -o /dev/null "$URL/"; curl -s -m 10 -o /dev/null "$URL/app.js"; done
n1=$(failed_count)
[ "$n1" = "$n0" ] || fail "credential-less requests counted as failed logins: $n0 -> $n1"
curl -s -m 10 -u "tester:wrong-again" -o /dev/null "$URL/"
n2=$(failed_count)
[ "$n2" = $((n0 + 1)) ] || fail "one wrong password: $n0 -> $n2"
hdrs=$(curl -s -m 10 -D - -o /dev/null "$URL/api/overview")
[[ $hdrs == *"WWW-Authenticate: Basic realm=\"Lars console\""* ]] || fail "no Basic challenge: $hdrs"

# Every answer carries the security headers: 401, 200 page, asset, API, 404.
for p in "/" "/app.js" "/style.css" "/api/overview" "/nope.html" "/api/nope"; do
	h=$(curl -s -m 10 -u "tester:$PASS" -D - -o /dev/null "$URL$p")
	[[ $h == *"Content-Security-Policy: default-src 'self'; script-src 'self'"* ]] ||
		fail "$p: no Content-Security-Policy"
	[[ $h == *"X-Content-Type-Options: nosniff"* ]] || fail "$p: no nosniff"
done
h=$(curl -s -m 10 -D - -o /dev/null "$URL/")
[[ $h == *"Content-Security-Policy:"* ]] || fail "401: no Content-Security-Policy"

# ---- roles and sessions (issue 25, item 4) ----
# A read user sees what a write user sees and changes nothing: 403 on every
# write, before its body is looked at. (From 127.0.0.3: the failures above
# slowed 127.0.0.1, and a login with the form is never cached.)
RPASS="viewer-password-$RANDOM-$RANDOM"
echo "$RPASS" | "$LARSCTL" admin-user add viewer --role read --users-file "$TMP/users" >/dev/null
[ "$(grep -c ':read$' "$TMP/users")" = 1 ] || fail "users file roles: $(cut -d: -f1,3 "$TMP/users")"
S="-s -m 10 --interface 127.0.0.3"
rcall() { # rcall METHOD PATH [curl args...]: as call, as the read user
	local method=$1 path=$2
	shift 2
	# shellcheck disable=SC2086
	curl $S -u "viewer:$RPASS" -X "$method" -o "$TMP/body" -w '%{http_code}' "$@" "$URL$path" || true
	printf ' %s' "$(cat "$TMP/body" 2>/dev/null)"
}
users_reloaded() { [[ $(rcall GET /api/whoami) == "200 "* ]]; }
wait_for 10 users_reloaded || fail "the read user was not loaded"
expect "whoami read" "$(rcall GET /api/whoami)" 200 '{"user":"viewer","role":"read","via":"basic","expires_at":null}'
expect "whoami write" "$(call GET /api/whoami)" 200 '{"user":"tester","role":"write","via":"basic"'
expect "read user reads" "$(rcall GET /api/overview)" 200 '"routes":['
before=$(state)
for w in 'routes/add {"modid":5,"cmdid":1,"ip":"10.1.1.1","port":1}' \
	 'routes/del {"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9001}' \
	 'routes/weight {"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9001,"weight":5}' \
	 'routes/drain {"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9001,"drain":true}' \
	 'routes/policy {"modid":5,"cmdid":1,"slow_start_s":5}' \
	 'describe {"modid":5,"cmdid":1,"description":"by a reader"}' 'describe not-even-json'; do
	expect "read user ${w%% *}" "$(rcall POST "/api/${w%% *}" -H 'Content-Type: application/json' --data-binary "${w#* }")" \
		403 "may only read (role read); nothing was changed"
done
[ "$(state)" = "$before" ] || fail "a read user's write changed something: $before -> $(state)"
grep -q "admin: /api/routes/add from 127.0.0.3:[0-9]* refused: 'viewer' has the role read" "$TMP/admin.log" ||
	fail "the refused write of a read user is not logged"

# The login form: a session cookie (HttpOnly, SameSite=Strict, Path=/; Secure
# behind TLS), good for pages and the API; logout ends it.
login_form() { # login_form USER PASS [curl args...]: status, headers in $TMP/lh, cookie jar $TMP/jar
	local u=$1 p=$2
	shift 2
	# shellcheck disable=SC2086
	curl $S -c "$TMP/jar" -D "$TMP/lh" -o "$TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "{\"user\":\"$u\",\"password\":\"$p\"}" "$@" "$URL/api/login" || true
}
scall() { # scall METHOD PATH [curl args...]: with the session cookie only
	local method=$1 path=$2
	shift 2
	# shellcheck disable=SC2086
	curl $S -b "$TMP/jar" -X "$method" -o "$TMP/body" -w '%{http_code}' "$@" "$URL$path" || true
	printf ' %s' "$(cat "$TMP/body" 2>/dev/null)"
}
[ "$(login_form tester wrong-password)" = 401 ] || fail "a wrong password in the form: $(cat "$TMP/body")"
grep -qi '^Set-Cookie' "$TMP/lh" && fail "a failed login set a cookie"
[ "$(login_form tester "$PASS")" = 200 ] || fail "the form login: $(cat "$TMP/body")"
cookie=$(grep -i '^Set-Cookie: lars_session=' "$TMP/lh" | tr -d '\r' || true)
[[ $cookie =~ lars_session=[0-9a-f]{64}\;\ Path=/\;\ Max-Age=43200\;\ HttpOnly\;\ SameSite=Strict$ ]] ||
	fail "the session cookie: $cookie"
grep -q '"user":"tester","role":"write","via":"session","expires_at":"' "$TMP/body" || fail "login answer: $(cat "$TMP/body")"
expect "session whoami" "$(scall GET /api/whoami)" 200 '"user":"tester","role":"write","via":"session"'
got=$(curl $S -b "$TMP/jar" -o /dev/null -w '%{http_code}' "$URL/route.html")
[ "$got" = 200 ] || fail "a page with the session: $got"
expect "session write" "$(scall POST /api/describe -H 'Content-Type: application/json' --data-binary '{"modid":5,"description":"shop"}')" 200 '"result":"saved"'
grep -q "saved the description of modid 5 (by tester (console, 127.0.0.3:" "$TMP/admin.log" || fail "a session's write does not name its user"
[ "$(login_form tester "$PASS" -H 'X-Forwarded-Proto: https')" = 200 ] || fail "the form login behind TLS"
grep -qi '^Set-Cookie: lars_session=.*; Secure' "$TMP/lh" || fail "no Secure behind TLS: $(grep -i set-cookie "$TMP/lh")"
tok=$(awk '$6 == "lars_session" { print $7 }' "$TMP/jar")
expect "logout" "$(scall POST /api/logout -D "$TMP/oh")" 200 '"result":"logged out"'
grep -qi '^Set-Cookie: lars_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict' "$TMP/oh" || fail "logout does not clear the cookie: $(cat "$TMP/oh")"
# The old cookie (curl's jar was cleared by the logout answer: send it by hand).
got=$(curl $S -H "Cookie: lars_session=$tok" -o "$TMP/body" -w '%{http_code}' "$URL/api/whoami")
[ "$got" = 401 ] && grep -q 'session ended' "$TMP/body" || fail "the logged-out session: $got $(cat "$TMP/body")"
# A page without a login is the login form, with no Basic challenge (the
# browser shows the form, not its dialog); the API keeps the challenge.
curl $S -D "$TMP/ph" -o "$TMP/body" "$URL/route.html?modid=5&cmdid=1" || true
head -n 1 "$TMP/ph" | grep -q ' 401' || fail "a page without a login: $(head -n 1 "$TMP/ph")"
grep -q 'id="login-form"' "$TMP/body" || fail "a page without a login is not the login form"
grep -qi '^WWW-Authenticate' "$TMP/ph" && fail "a page's 401 carries a Basic challenge"
got=$(curl $S -H 'Sec-Fetch-Mode: cors' -D - -o /dev/null "$URL/api/overview" || true)
grep -qi '^WWW-Authenticate' <<<"$got" && fail "a page's fetch got a Basic challenge"
for p in /login.html /login.js /style.css; do
	got=$(curl $S -o /dev/null -w '%{http_code}' "$URL$p")
	[ "$got" = 200 ] || fail "$p without a login: $got"
done
got=$(curl $S -o /dev/null -w '%{http_code}' "$URL/app.js")
[ "$got" = 401 ] || fail "app.js without a login: $got"
# The read user with the form: a session that still may only read.
[ "$(login_form viewer "$RPASS")" = 200 ] || fail "the read user's form login"
expect "read session write" "$(scall POST /api/routes/add -H 'Content-Type: application/json' --data-binary '{"modid":5,"cmdid":1,"ip":"10.1.1.1","port":1}')" 403 "may only read"
# admin-user add (a new password, a new role) ends the user's sessions at
# once; the next login has the new role.
echo "$RPASS-new" | "$LARSCTL" admin-user add viewer --role write --users-file "$TMP/users" >/dev/null
session_gone() { [[ $(scall GET /api/whoami) == "401 "*"session ended"* ]]; }
wait_for 10 session_gone || fail "a new password did not end the session: $(scall GET /api/whoami)"
[ "$(login_form viewer "$RPASS-new")" = 200 ] || fail "the login with the new password"
expect "new role" "$(scall GET /api/whoami)" 200 '"user":"viewer","role":"write","via":"session"'
# A removed user's sessions end.
"$LARSCTL" admin-user del viewer --users-file "$TMP/users" >/dev/null
wait_for 10 session_gone || fail "a removed user's session lives on: $(scall GET /api/whoami)"
# Bad logins: another origin, no JSON, no password, GET.
got=$(login_form tester "$PASS" -H 'Origin: http://evil.example')
[ "$got" = 403 ] || fail "a login from another origin: $got"
got=$(curl $S -o /dev/null -w '%{http_code}' -H 'Content-Type: text/plain' -d 'x' "$URL/api/login")
[ "$got" = 415 ] || fail "a login that is not JSON: $got"
got=$(curl $S -o "$TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' -d '{"user":"tester"}' "$URL/api/login")
[ "$got" = 400 ] && grep -q '"field":"password"' "$TMP/body" || fail "a login without a password: $got $(cat "$TMP/body")"
got=$(curl $S -o /dev/null -w '%{http_code}' "$URL/api/login")
[ "$got" = 405 ] || fail "GET /api/login: $got"

# ---- reads ----
expect overview "$(call GET /api/overview)" 200 '"modid":5,"cmdid":1'
expect route "$(call GET '/api/route?modid=5&cmdid=1')" 200 '"ip":"127.0.0.1","port":9001'
expect "route unknown" "$(call GET '/api/route?modid=77&cmdid=1')" 404 'no route 77/1'
expect "route bad id" "$(call GET '/api/route?modid=x&cmdid=1')" 400 '"field":"modid"'
expect "route no cmdid" "$(call GET '/api/route?modid=5')" 400 '"field":"cmdid"'
expect history "$(call GET '/api/history?modid=5&cmdid=1&minutes=5')" 200 '"minutes":[{"minute"'
n=$(call GET '/api/history?modid=5&cmdid=1&minutes=5' | grep -o '"minute"' | wc -l)
[ "$n" = 5 ] || fail "history: $n minutes instead of 5"
expect "history too long" "$(call GET '/api/history?modid=5&cmdid=1&minutes=99999')" 400 '"field":"minutes"'
expect changes "$(call GET '/api/changes?modid=5')" 200 '"action":"add","ip":"127.0.0.1","port":9001'
expect "changes limit" "$(call GET '/api/changes?limit=0')" 400 '"field":"limit"'
expect descriptions "$(call GET /api/descriptions)" 200 '"cmds":[{"modid":5,"cmdid":1'
expect "unknown api" "$(call GET /api/frob)" 404
expect "write with GET" "$(call GET /api/routes/add)" 405
expect "bad method" "$(call DELETE /api/overview)" 405
expect "page post" "$(call POST /index.html -H 'Content-Type: application/json' -d '{}')" 405

# Host health from lars-reporter's tables.
q "INSERT INTO host_status VALUES (5, 1, '127.0.0.1', 9001, '10.0.0.1', 50, 50, true, now(), now()),
                                  (5, 1, '127.0.0.1', 9001, '10.0.0.2', 10, 0, false, now(), now())" >/dev/null
# Every history row below is placed relative to one minute M read here, so a
# minute beginning during the test cannot make two of them the same row.
M=$(q "SELECT date_trunc('minute', now())")
q "INSERT INTO host_status_history VALUES ('$M', 5, 1, '127.0.0.1', 9001, '10.0.0.1', 7, 3)" >/dev/null
got=$(call GET '/api/route?modid=5&cmdid=1')
expect "route status" "$got" 200 '"status":{"succ":60,"err":50'
[[ $got == *'"overload":true'*'"failing":true,"callers":2'* ]] || fail "route status fields: $got"
[[ $got == *'"lat_count":0,"lat_mean_us":null,"lat_p99_us":null}'* ]] || fail "route status without latency: $got"
got=$(call GET /api/overview)
[[ $got == *'"hosts":1,"overloaded":1,"failing":1,"reporting":1'* ]] || fail "overview health: $got"
got=$(call GET '/api/history?modid=5&cmdid=1&minutes=2')
# (The row is in the current minute, or the one before if a minute began
# between the insert and the query.)
[[ $got == *'"succ":7,"err":3,"lat_count":0,"lat_mean_us":null,"lat_p99_us":null}'* ]] || fail "history sums: $got"
[ "$(grep -o '"minute"' <<<"$got" | wc -l)" = 2 ] || fail "history minutes: $got"
# larsctl and the console read these tables through the same queries
# (common/db/status.c): for the same rows they show the same numbers. More
# rows first: a minute before, another caller.
q "INSERT INTO host_status_history VALUES
 ('$M'::timestamptz - interval '1 min', 5, 1, '127.0.0.1', 9001, '10.0.0.2', 11, 0),
 ('$M', 5, 1, '127.0.0.1', 9001, '10.0.0.2', 5, 5)" >/dev/null
# Call latency (buckets of deploy/sql/006_report_acks.sql): a minute ago one
# call of 500-1000 us and one of 1000-2000 us (sum 1500): mean 750, p99 at
# 0.99 * 2 = 1.98 is 1000 + 1000 * 0.98 = 1980. Three minutes ago one above
# 2 s (2.5 s): outside the 3 minutes of history, inside the route page's
# status_max_age (600 s): there 3 calls, mean 2501500 / 3 = 833833, p99 the
# last bucket's lower bound 2000000.
q "INSERT INTO host_status_history
 (minute, modid, cmdid, ip, port, caller, succ, err, lat_count, lat_sum_us, lat_buckets) VALUES
 ('$M'::timestamptz - interval '1 min', 5, 1, '127.0.0.1', 9001, '10.0.0.1', 0, 0, 2, 1500,
  '{0,1,1,0,0,0,0,0,0,0,0,0,0}'),
 ('$M'::timestamptz - interval '3 min', 5, 1, '127.0.0.1', 9001, '10.0.0.1', 0, 0, 1, 2500000,
  '{0,0,0,0,0,0,0,0,0,0,0,0,1}')" >/dev/null
got=$(call GET '/api/route?modid=5&cmdid=1')
[[ $got == *'"callers":2,'*'"lat_count":3,"lat_mean_us":833833,"lat_p99_us":2000000}'* ]] ||
	fail "route status latency: $got"
got=$(call GET '/api/history?modid=5&cmdid=1&minutes=3')
[ "$(grep -o '"lat_count":2,"lat_mean_us":750,"lat_p99_us":1980}' <<<"$got" | wc -l)" = 1 ] ||
	fail "history latency: $got"
[ "$(grep -o '"lat_count":0,"lat_mean_us":null,"lat_p99_us":null}' <<<"$got" | wc -l)" = 2 ] ||
	fail "history minutes without latency: $got"
cli_status=$("$LARSCTL" status 5 1) || fail "larsctl status exited $?"
api_route=$(call GET '/api/route?modid=5&cmdid=1')
cli_hist=$(PGTZ=UTC "$LARSCTL" status --history 3 5 1) || fail "larsctl status --history exited $?"
api_hist=$(call GET '/api/history?modid=5&cmdid=1&minutes=3')
same=$(/usr/bin/python3 - "$cli_status" "${api_route#200 }" "$cli_hist" "${api_hist#200 }" <<'PY'
import json, sys
status, route, hist, api_hist = sys.argv[1:]
cli = {}  # host -> [succ, err, callers], summed over larsctl's caller rows
for line in status.splitlines()[1:]:
    f = line.split()
    h = cli.setdefault(f[2], [0, 0, 0])
    h[0] += int(f[4]); h[1] += int(f[5]); h[2] += 1
api = {"%s:%d" % (h["ip"], h["port"]): [h["status"]["succ"], h["status"]["err"], h["status"]["callers"]]
       for h in json.loads(route)["hosts"] if h["status"]}
cli_m = {}  # minute -> (succ, err, mean, p99), latency None for "-"
lat = lambda v: None if v == "-" else int(v)
for line in hist.splitlines()[1:]:
    f = line.split()
    cli_m["%sT%s:00Z" % (f[0], f[1])] = (int(f[4]), int(f[5]), lat(f[7]), lat(f[8]))
api_m = {m["minute"]: (m["succ"], m["err"], m["lat_mean_us"], m["lat_p99_us"])
         for m in json.loads(api_hist)["minutes"] if m["succ"] or m["err"] or m["lat_count"]}
if cli != api or not cli:
    print("status: larsctl %s, console %s" % (cli, api))
elif cli_m != api_m or len(cli_m) < 2 or not any(m[2] for m in cli_m.values()):
    print("history: larsctl %s, console %s" % (cli_m, api_m))
else:
    print("same")
PY
)
[ "$same" = same ] || fail "larsctl and the console differ: $same"

# ---- a write, pushed by lars-dns to a subscriber ----
"$WATCH" --port "$(ready_port dns tcp)" --count 3 --timeout 30 5 1 >"$TMP/watch.out" 2>"$TMP/watch.err" &
WATCH_PID=$!
wait_for 15 test -s "$TMP/watch.out" || true
[ "$(head -n 1 "$TMP/watch.out")" = "route 5 1 1 127.0.0.1:9001" ] || fail "subscribe: $(cat "$TMP/watch.out")"
expect add "$(post /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002}')" 200 \
	'"result":"added","version":2,"message":"added 5/1 127.0.0.1:9002 (route version 2)"'
expect "add again" "$(post /api/routes/add '{"modid":"5","cmdid":"1","ip":"127.0.0.1","port":"9002"}')" 200 \
	'"result":"unchanged"'
expect del "$(post /api/routes/del '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9001}')" 200 '"result":"removed"'
rc=0
wait "$WATCH_PID" || rc=$?
[ "$rc" = 0 ] || fail "watcher exited $rc: $(cat "$TMP/watch.err")"
[ "$(sed -n 2p "$TMP/watch.out")" = "route 5 1 2 127.0.0.1:9001,127.0.0.1:9002" ] || fail "push after add: $(cat "$TMP/watch.out")"
[ "$(sed -n 3p "$TMP/watch.out")" = "route 5 1 1 127.0.0.1:9002" ] || fail "push after del: $(cat "$TMP/watch.out")"
[ "$(q "SELECT count(*) FROM route_change WHERE modid = 5 AND port = 9002 AND action = 'add'")" = 1 ] ||
	fail "change record of the console's add"
expect describe "$(post /api/describe '{"modid":5,"cmdid":1,"description":"orders \"v2\" <b>"}')" 200 '"result":"saved"'
[ "$("$LARSCTL" describe 5 1)" = 'orders "v2" <b>' ] || fail "description not stored as given"
expect "describe mod" "$(post /api/describe '{"modid":5,"cmdid":null,"description":"shop"}')" 200
[ "$("$LARSCTL" describe 5)" = 'shop' ] || fail "module description"
# Traffic control through the same write path as larsctl: a 'set' or
# 'policy' change record, a version each; the route page shows them.
expect weight "$(post /api/routes/weight '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002,"weight":250}')" 200 \
	'"result":"changed"'
expect "weight again" "$(post /api/routes/weight '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002,"weight":"250"}')" 200 \
	'"result":"unchanged"'
expect drain "$(post /api/routes/drain '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002,"drain":true}')" 200 \
	'is drained now'
expect policy "$(post /api/routes/policy '{"modid":5,"cmdid":1,"panic_threshold":40,"slow_start_s":20}')" 200 \
	'"policy":{"panic_threshold":40,"max_ejection_percent":100,"slow_start_s":20}'
expect "route page traffic" "$(call GET '/api/route?modid=5&cmdid=1')" 200 '"weight":250,"drain":true'
expect "route page policy" "$(call GET '/api/route?modid=5&cmdid=1')" 200 '"policy":{"panic_threshold":40'
expect "policy back" "$(post /api/routes/policy '{"modid":5,"cmdid":1,"panic_threshold":null,"slow_start_s":0}')" 200 \
	'"policy":{"panic_threshold":null,"max_ejection_percent":100,"slow_start_s":0}'
expect undrain "$(post /api/routes/drain '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002,"drain":false}')" 200
[ "$(q "SELECT string_agg(action || ':' || detail, ',' ORDER BY id) FROM route_change WHERE modid = 5 AND action IN ('set', 'policy')")" = \
	"set:weight 250,set:weight 250, drained,policy:panic_threshold 40, slow_start 20 s,policy:default,set:weight 250" ] ||
	fail "traffic change records: $(q "SELECT string_agg(action || ':' || detail, ',' ORDER BY id) FROM route_change WHERE modid = 5")"
expect "changes detail" "$(call GET '/api/changes?modid=5&limit=1')" 200 '"detail":"weight 250"'
# Issue 20.7: the agents list, per-host history, propagation on the change log.
expect agents "$(call GET /api/agents)" 200 '"agents":['
expect "host history" "$(call GET '/api/host-history?modid=5&cmdid=1&minutes=5')" 200 '"rows":['
expect "host history bad" "$(call GET '/api/host-history?modid=5&minutes=5')" 400 '"field":"cmdid"'
expect "changes propagation" "$(call GET '/api/changes?modid=5&limit=1')" 200 '"pushed":'

# ---- bad input: 4xx, the field named, nothing changed ----
before=$(state)
bad() { # bad WHAT PATH JSON STATUS [SUBSTRING]
	expect "$1" "$(post "$2" "$3")" "$4" "${5:-}"
}
bad "bad ip" /api/routes/add '{"modid":5,"cmdid":1,"ip":"300.1.1.1","port":80}' 400 '"field":"ip"'
bad "ipv6" /api/routes/add '{"modid":5,"cmdid":1,"ip":"::1","port":80}' 400 '"field":"ip"'
bad "port 0" /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":0}' 400 '"field":"port"'
bad "port big" /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":65536}' 400 '"field":"port"'
bad "port text" /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":"http"}' 400 '"field":"port"'
bad "port float" /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":80.5}' 400 '"field":"port"'
bad "modid neg" /api/routes/add '{"modid":-1,"cmdid":1,"ip":"127.0.0.1","port":80}' 400 '"field":"modid"'
bad "modid big" /api/routes/add '{"modid":2147483648,"cmdid":1,"ip":"127.0.0.1","port":80}' 400 '"field":"modid"'
bad "cmdid missing" /api/routes/add '{"modid":5,"ip":"127.0.0.1","port":80}' 400 '"field":"cmdid"'
bad "cmdid list" /api/routes/del '{"modid":5,"cmdid":[1],"ip":"127.0.0.1","port":80}' 400 '"field":"cmdid"'
bad "not json" /api/routes/add '{"modid":5,' 400 'JSON object'
bad "json array" /api/routes/add '[1,2]' 400 'JSON object'
bad "duplicate key" /api/routes/add '{"modid":5,"modid":6,"cmdid":1,"ip":"127.0.0.1","port":80}' 400
bad "garbage" /api/routes/add $'\x00\xff\xfe' 400
bad "weight 0" /api/routes/weight '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002,"weight":0}' 400 '"field":"weight"'
bad "weight big" /api/routes/weight '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002,"weight":1001}' 400 '"field":"weight"'
bad "weight missing" /api/routes/weight '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002}' 400 '"field":"weight"'
bad "weight float" /api/routes/weight '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002,"weight":2.5}' 400 '"field":"weight"'
bad "weight absent host" /api/routes/weight '{"modid":5,"cmdid":1,"ip":"127.0.0.9","port":9002,"weight":5}' 404 'not in route 5/1'
bad "drain text" /api/routes/drain '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002,"drain":"yes"}' 400 '"field":"drain"'
bad "drain bad ip" /api/routes/drain '{"modid":5,"cmdid":1,"ip":"x","port":9002,"drain":true}' 400 '"field":"ip"'
bad "policy empty" /api/routes/policy '{"modid":5,"cmdid":1}' 400 '"field":"policy"'
bad "policy panic big" /api/routes/policy '{"modid":5,"cmdid":1,"panic_threshold":101}' 400 '"field":"panic_threshold"'
bad "policy panic text" /api/routes/policy '{"modid":5,"cmdid":1,"panic_threshold":"50"}' 400 '"field":"panic_threshold"'
bad "policy ejection 0" /api/routes/policy '{"modid":5,"cmdid":1,"max_ejection_percent":0}' 400 '"field":"max_ejection_percent"'
bad "policy slow long" /api/routes/policy '{"modid":5,"cmdid":1,"slow_start_s":86401}' 400 '"field":"slow_start_s"'
bad "policy bad cmdid" /api/routes/policy '{"modid":5,"cmdid":-1,"slow_start_s":5}' 400 '"field":"cmdid"'
bad "desc control" /api/describe '{"modid":5,"description":"a\nb"}' 400 '"field":"description"'
bad "desc bidi override" /api/describe '{"modid":5,"description":"invoice\u202eexe.pdf"}' 400 '"field":"description"'
bad "desc bidi isolate" /api/describe '{"modid":5,"description":"a\u2066b"}' 400 '"field":"description"'
bad "desc C1 control" /api/describe '{"modid":5,"description":"a\u009b31mb"}' 400 '"field":"description"'
bad "desc number" /api/describe '{"modid":5,"description":7}' 400 '"field":"description"'
bad "desc long" /api/describe "{\"modid\":5,\"description\":\"$(head -c 4097 /dev/zero | tr '\0' x)\"}" 400 '"field":"description"'
bad "desc bad modid" /api/describe '{"modid":"x","description":"y"}' 400 '"field":"modid"'
# Values are checked whole, never cut first: 40 characters ending in "x" were
# once read as 905.
long_id="$(head -c 36 /dev/zero | tr '\0' 0)0905x"
bad "modid cut" /api/routes/add "{\"modid\":\"$long_id\",\"cmdid\":1,\"ip\":\"127.0.0.1\",\"port\":80}" 400 '"field":"modid"'
bad "modid long digits" /api/routes/add "{\"modid\":\"$(head -c 36 /dev/zero | tr '\0' 0)905\",\"cmdid\":1,\"ip\":\"127.0.0.1\",\"port\":80}" 400 '"field":"modid"'
bad "cmdid cut" /api/routes/del "{\"modid\":5,\"cmdid\":\"$long_id\",\"ip\":\"127.0.0.1\",\"port\":80}" 400 '"field":"cmdid"'
bad "ip cut" /api/routes/add "{\"modid\":5,\"cmdid\":1,\"ip\":\"127.0.0.1$(head -c 60 /dev/zero | tr '\0' ' ')x\",\"port\":80}" 400 '"field":"ip"'
bad "port cut" /api/routes/add "{\"modid\":5,\"cmdid\":1,\"ip\":\"127.0.0.1\",\"port\":\"$(head -c 36 /dev/zero | tr '\0' 0)80x\"}" 400 '"field":"port"'
bad "modid nul" /api/routes/add '{"modid":"5\u0000x","cmdid":1,"ip":"127.0.0.1","port":80}' 400
bad "desc modid cut" /api/describe "{\"modid\":\"$long_id\",\"description\":\"y\"}" 400 '"field":"modid"'
bad "desc cmdid cut" /api/describe "{\"modid\":5,\"cmdid\":\"$long_id\",\"description\":\"y\"}" 400 '"field":"cmdid"'
expect "modid leading zeros" "$(post /api/routes/del '{"modid":"0000000005","cmdid":1,"ip":"127.0.0.1","port":80}')" 200 '"result":"unchanged"'
expect "too large" "$(post /api/routes/add "{\"pad\":\"$(head -c 9000 /dev/zero | tr '\0' x)\"}")" 413
expect "text/plain" "$(call POST /api/routes/add -H 'Content-Type: text/plain' \
	-d '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":81}')" 415
# Writes from another site: refused whatever the credentials.
expect "cross origin" "$(post /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":81}' \
	-H 'Origin: http://evil.example')" 403
expect "null origin" "$(post /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":81}' \
	-H 'Origin: null')" 403
expect "cross referer" "$(post /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":81}' \
	-H 'Referer: http://evil.example/x')" 403
expect "cross site" "$(post /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":81}' \
	-H 'Sec-Fetch-Site: cross-site')" 403
expect "no credentials write" "$(curl -s -m 10 -o "$TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' \
	-d '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":81}' "$URL/api/routes/add") x" 401
[ "$(state)" = "$before" ] || fail "bad input changed something: $before -> $(state)"
# The same origin is fine.
expect "same origin" "$(post /api/routes/del '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9002}' \
	-H "Origin: $URL" -H 'Sec-Fetch-Site: same-origin')" 200 '"result":"removed"'

# ---- hostile HTTP: the service answers or closes, and lives on ----
hostile() { printf '%b' "$1" | timeout "${2:-10}" bash -c "exec 3<>/dev/tcp/127.0.0.1/${URL##*:}; cat >&3; cat <&3" >/dev/null 2>&1 || true; }
hostile 'GARBAGE\r\n\r\n'
hostile 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n'
hostile "GET /$(head -c 70000 /dev/zero | tr '\0' a) HTTP/1.1\r\nHost: x\r\n\r\n"
# A body that never comes: the server waits (idle timeout); the client gives up.
hostile 'POST /api/routes/add HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"trunc' 1
hostile 'GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
expect "traversal" "$(call GET /..%2f..%2fetc%2fpasswd)" 404
expect "alive after hostile input" "$(call GET /api/overview)" 200
# The users file is looked at again (at most once a second) and re-read when
# it changed: an added user gets in, a removed one is out, soon after.
# (From an address of its own, 127.0.0.7: its polls fail until the file is
# re-read, and failed logins slow the address they come from.)
other_is() {
	got=$(curl -s -m 10 --interface 127.0.0.7 -u "other:other-password" -o /dev/null -w '%{http_code}' "$URL/api/descriptions")
	[ "$got" = "$1" ]
}
as_other() { # as_other WANT: poll until the answer is WANT (15 s at most)
	local got=
	wait_for 15 other_is "$1" || true
	echo "$got"
}
echo "other-password" | "$LARSCTL" admin-user add other --users-file "$TMP/users" >/dev/null
got=$(as_other 200)
[ "$got" = 200 ] || fail "a user added while running: $got"
"$LARSCTL" admin-user del other --users-file "$TMP/users" >/dev/null
got=$(as_other 401)
[ "$got" = 401 ] || fail "a user removed while running: $got"
# Read whole before grep -q: a grep that stops early would SIGPIPE curl,
# and pipefail would count that as a miss.
m_out=$(curl -s -m 10 "$METRICS/metrics")
grep -q '^lars_admin_login_failed_total [1-9]' <<<"$m_out" || fail "metrics: login failures"
grep -q '^lars_admin_writes_total [1-9]' <<<"$m_out" || fail "metrics: writes"

# ---- the Host header: this console's address or a configured name only ----
# Without a users file (loopback-only mode) a page on a DNS-rebinding name
# (the attacker's name, resolving to 127.0.0.1) was once able to add a route:
# its Origin matched its own Host.
cat >"$TMP/open-lo.ini" <<EOF
[admin]
port = 0
assets_dir = $SRC/admin_svc/www
server_names = Console.Example, lars.internal
EOF
start openlo "$ADMIN" "$TMP/open-lo.ini"
OPORT=$(ready_port openlo http)
OURL=http://127.0.0.1:$OPORT
hstatus() { # hstatus HOST [curl args...]: status of GET /api/overview sent with Host: HOST
	local host=$1
	shift
	curl -s -m 10 -o "$TMP/hbody" -w '%{http_code}' -H "Host: $host" "$@" "$OURL/api/overview" || true
}
before=$(state)
EVIL=rebind.attacker.example:$OPORT
got=$(curl -s -m 10 -o "$TMP/hbody" -w '%{http_code}' -H "Host: $EVIL" -H "Origin: http://$EVIL" \
	-H 'Sec-Fetch-Site: same-origin' -H 'Content-Type: application/json' \
	--data-binary '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9555}' "$OURL/api/routes/add" || true)
[ "$got" = 421 ] || fail "rebinding write: $got $(cat "$TMP/hbody")"
grep -q "answers to 127.0.0.1:$OPORT" "$TMP/hbody" || fail "421 message: $(cat "$TMP/hbody")"
[ "$(state)" = "$before" ] || fail "a rebinding page changed something: $before -> $(state)"
[ "$(hstatus "$EVIL")" = 421 ] || fail "rebinding read"
[ "$(hstatus "127.0.0.1:$OPORT")" = 200 ] || fail "Host 127.0.0.1:port"
[ "$(hstatus "localhost:$OPORT")" = 200 ] || fail "Host localhost:port (loopback)"
[ "$(hstatus "LOCALHOST:$OPORT")" = 200 ] || fail "Host in upper case"
[ "$(hstatus "console.example")" = 200 ] || fail "a server_names name"
[ "$(hstatus "lars.internal:8443")" = 200 ] || fail "a server_names name with a proxy's port"
[ "$(hstatus "127.0.0.1:1")" = 421 ] || fail "another port"
[ "$(hstatus "127.0.0.2:$OPORT")" = 421 ] || fail "another address"
[ "$(hstatus "localhost")" = 421 ] || fail "localhost without the port"
[ "$(hstatus "console.example.attacker.example")" = 421 ] || fail "a name ending like ours"
[ "$(hstatus "127.0.0.1:$OPORT:1")" = 421 ] || fail "two ports"
[ "$(hstatus "[::1]:$OPORT")" = 421 ] || fail "::1 while listening on 127.0.0.1"
raw=$(printf 'GET /api/overview HTTP/1.0\r\n\r\n' |
	timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$OPORT; cat >&3; cat <&3" 2>/dev/null || true)
[[ $raw == "HTTP/1."?" 400"*"needs a Host header"* ]] || fail "no Host: $raw"
# The console's own pages still write.
got=$(curl -s -m 10 -o "$TMP/hbody" -w '%{http_code}' -H "Origin: $OURL" -H 'Sec-Fetch-Site: same-origin' \
	-H 'Content-Type: application/json' --data-binary '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9556}' \
	"$OURL/api/routes/add" || true)
[ "$got" = 200 ] || fail "same-origin write with a good Host: $got $(cat "$TMP/hbody")"
got=$(curl -s -m 10 -o "$TMP/hbody" -w '%{http_code}' -H "Host: localhost:$OPORT" \
	-H "Origin: http://localhost:$OPORT" -H 'Content-Type: application/json' \
	--data-binary '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9556}' "$OURL/api/routes/del" || true)
[ "$got" = 200 ] || fail "write via localhost: $got $(cat "$TMP/hbody")"
# The login-protected console checks the Host before the credentials.
got=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -H "Host: $EVIL" "$URL/api/overview")
[ "$got" = 421 ] || fail "bad Host with a users file: $got"
m_out=$(curl -s -m 10 "$METRICS/metrics")
grep -q '^lars_admin_bad_host_total [1-9]' <<<"$m_out" || fail "metrics: bad Host"
stop openlo
for names in "a:80" "x y/z" "a_b"; do
	printf '[admin]\nport = 0\nassets_dir = %s\nserver_names = %s\n' "$SRC/admin_svc/www" "$names" \
		>"$TMP/names.ini"
	rc=0
	"$ADMIN" -c "$TMP/names.ini" >"$TMP/names.log" 2>&1 || rc=$?
	[ "$rc" = 2 ] || fail "server_names = $names: exit $rc"
	grep -q "server_names" "$TMP/names.log" || fail "server_names refusal: $(cat "$TMP/names.log")"
done

# ---- lists: paging, sorting, search, unhealthy first, find a host (issue 25) ----
# 300 more routes (modid 900, cmdid 1..300), host 10.9.C/256.C%256:7000 each,
# route 900/C also on 10.99.0.1:7000 when C is a multiple of 50; cmdid 7
# failing, cmdid 8 overloaded (fresh reports), cmdid 9 erroring long ago,
# 900/50 failing on 10.99.0.1; 901/1 a route with a description only.
q "INSERT INTO modid_config (modid, description) VALUES (900, 'fleet module');
   INSERT INTO cmdid_config (modid, cmdid, description)
     SELECT 900, c, 'svc-' || c FROM generate_series(1, 300) c;
   INSERT INTO route_data (modid, cmdid, ip, port)
     SELECT 900, c, ('10.9.' || c / 256 || '.' || c % 256)::inet, 7000 FROM generate_series(1, 300) c
     UNION ALL SELECT 900, c, '10.99.0.1', 7000 FROM generate_series(50, 300, 50) c;
   INSERT INTO modid_config (modid) VALUES (901);
   INSERT INTO cmdid_config (modid, cmdid, description) VALUES (901, 1, 'described only');
   INSERT INTO host_status VALUES
     (900, 7, '10.9.0.7', 7000, '10.0.0.1', 10, 90, false, now(), now()),
     (900, 8, '10.9.0.8', 7000, '10.0.0.1', 100, 0, true, now(), now()),
     (900, 9, '10.9.0.9', 7000, '10.0.0.1', 0, 100, false, now(), now() - interval '1 hour'),
     (900, 50, '10.99.0.1', 7000, '10.0.0.1', 5, 5, false, now(), now())" >/dev/null
n_routes=$(q "SELECT count(*) FROM (SELECT modid, cmdid FROM route_data UNION SELECT modid, cmdid FROM cmdid_config) r")
jget() { jq -c "$1" "$TMP/body"; }
# The default order: failing routes first (most failing hosts first), then
# overloaded ones, then every other route by modid, cmdid (5/1's failing
# host was removed above).
expect "lists default" "$(call GET '/api/overview?limit=4')" 200 '"sort":"health","order":"desc","more":true'
[ "$(jget '[.routes[] | "\(.modid)/\(.cmdid)"]')" = '["900/7","900/50","900/8","5/1"]' ] ||
	fail "unhealthy first: $(jget '[.routes[] | "\(.modid)/\(.cmdid)"]')"
[ "$(jget '[.total, .unhealthy]')" = '[null,3]' ] || fail "total/unhealthy: $(jget '[.total, .unhealthy]')"
# Every route exactly once over the pages, in both default orders; the
# stale report of 900/9 counts for nothing.
for sort in health route; do
	seen=$TMP/seen-$sort; : >"$seen"
	off=0
	while :; do
		expect "page $sort $off" "$(call GET "/api/overview?limit=37&offset=$off&sort=$sort")" 200
		jq -r '.routes[] | "\(.modid)/\(.cmdid) \(.failing) \(.overloaded)"' "$TMP/body" >>"$seen"
		[ "$(jget .more)" = true ] || break
		off=$((off + 37))
		[ "$off" -lt 2000 ] || { fail "pages never end ($sort)"; break; }
	done
	[ "$(wc -l <"$seen")" = "$n_routes" ] || fail "$sort: $(wc -l <"$seen") rows over the pages, want $n_routes"
	[ "$(cut -d' ' -f1 "$seen" | sort -u | wc -l)" = "$n_routes" ] || fail "$sort: a route twice"
	grep -qx '900/9 0 0' "$seen" || fail "$sort: 900/9's old report counted: $(grep '^900/9 ' "$seen")"
done
[ "$(head -1 "$TMP/seen-route" | cut -d' ' -f1)" = 5/1 ] || fail "route order starts with $(head -1 "$TMP/seen-route")"
grep -q '^901/1 ' "$TMP/seen-route" || fail "a route with a description only is not listed"
expect "route desc" "$(call GET '/api/overview?limit=1&sort=route&order=desc')" 200 '"modid":901,"cmdid":1'
expect "hosts desc" "$(call GET '/api/overview?limit=1&sort=hosts')" 200 '"hosts":2'
[ "$(jget .total)" = "$n_routes" ] || fail "sorted: total $(jget .total), want $n_routes"
expect "unhealthy only" "$(call GET '/api/overview?unhealthy=1&limit=2&offset=1')" 200 '"more":false,"truncated":false,"total":3,"unhealthy":3'
[ "$(jget '[.routes[] | "\(.modid)/\(.cmdid)"]')" = '["900/50","900/8"]' ] || fail "unhealthy page 2: $(cat "$TMP/body")"
# Search: a route, a number (modid or cmdid), a description, an address, a network.
expect "q route" "$(call GET '/api/overview?q=900/12')" 200 '"total":1'
expect "q module" "$(call GET '/api/overview?q=900/&limit=1&sort=route')" 200 '"modid":900,"cmdid":1,'
expect "q id" "$(call GET '/api/overview?q=5&sort=route')" 200 '"total":2'
[ "$(jget '[.routes[] | "\(.modid)/\(.cmdid)"]')" = '["5/1","900/5"]' ] || fail "q id: $(cat "$TMP/body")"
expect "q text" "$(call GET '/api/overview?q=SVC-29&sort=route')" 200 '"total":11'
expect "q text mod" "$(call GET '/api/overview?q=fleet%20mod&limit=1')" 200 '"total":300'
expect "q like chars" "$(call GET '/api/overview?q=svc_1')" 200 '"total":0'
expect "q ip" "$(call GET '/api/overview?q=10.99.0.1&sort=route')" 200 '"total":6'
[ "$(jget '[.routes[].cmdid]')" = '[50,100,150,200,250,300]' ] || fail "q ip: $(cat "$TMP/body")"
expect "q net" "$(call GET '/api/overview?q=10.9.1.0/24')" 200 '"total":45'
expect "q prefix" "$(call GET '/api/overview?q=10.9.&unhealthy=1')" 200 '"total":3'
expect "q modid filter" "$(call GET '/api/overview?modid=5&q=900/1')" 200 '"total":0'
expect "q too long" "$(call GET "/api/overview?q=$(printf 'x%.0s' {1..201})")" 400 '"field":"q"'
expect "bad sort" "$(call GET '/api/overview?sort=size')" 400 '"field":"sort"'
expect "bad order" "$(call GET '/api/overview?order=up')" 400 '"field":"order"'
expect "bad offset" "$(call GET '/api/overview?offset=-1')" 400 '"field":"offset"'
expect "bad unhealthy" "$(call GET '/api/overview?unhealthy=yes')" 400 '"field":"unhealthy"'
# Find a host: every route with it, its state in each.
expect "host" "$(call GET '/api/host?ip=10.99.0.1')" 200 '"net":"10.99.0.1/32"'
[ "$(jget '[.hosts[] | "\(.modid)/\(.cmdid)"] | length')" = 6 ] || fail "host: $(cat "$TMP/body")"
[ "$(jget '.hosts[0] | [.cmdid, .port, .status.failing, .status.err_pct]')" = '[50,7000,true,50]' ] ||
	fail "host state: $(jget '.hosts[0]')"
[ "$(jget '.hosts[1].status')" = null ] || fail "host without a report: $(jget '.hosts[1]')"
expect "host none" "$(call GET '/api/host?ip=10.200.0.1')" 200 '"hosts":[]'
expect "host bad" "$(call GET '/api/host?ip=frob')" 400 '"field":"ip"'
expect "host missing" "$(call GET '/api/host')" 400 '"field":"ip"'
# The change log: search, sort, offset, more.
expect "changes q ip" "$(call GET '/api/changes?q=10.99.0.1&limit=4')" 200 '"more":true'
[ "$(jget '[.changes[] | .ip] | unique')" = '["10.99.0.1"]' ] || fail "changes q ip: $(cat "$TMP/body")"
expect "changes q route" "$(call GET '/api/changes?q=900/12')" 200 '"more":false'
[ "$(jget '[.changes[] | "\(.modid)/\(.cmdid)"] | unique')" = '["900/12"]' ] || fail "changes q route: $(cat "$TMP/body")"
expect "changes route asc" "$(call GET '/api/changes?sort=route&order=asc&limit=1')" 200 '"modid":5,"cmdid":-1,"action":"describe"'
expect "changes oldest" "$(call GET '/api/changes?order=asc&limit=1')" 200 '"modid":5,"cmdid":1,"action":"add"'
first=$(call GET '/api/changes?limit=2' | sed 's/^200 //' | jq -c '.changes[1].id')
expect "changes offset" "$(call GET '/api/changes?limit=1&offset=1')" 200 "\"id\":$first,"
expect "changes q actor" "$(call GET '/api/changes?q=psql&limit=1')" 200 '"actor":"'
expect "changes bad sort" "$(call GET '/api/changes?sort=size')" 400 '"field":"sort"'
# The seeded routes go again (later checks count routes and changes).
q "DELETE FROM host_status WHERE modid = 900;
   DELETE FROM route_data WHERE modid = 900;
   DELETE FROM cmdid_config WHERE modid IN (900, 901); DELETE FROM modid_config WHERE modid IN (900, 901)" >/dev/null

# SIGTERM while a write waits in the database: it is cancelled and answered,
# nothing is changed, and the service exits 0.
psql -X -q -c "BEGIN; LOCK TABLE route_data; SELECT pg_sleep(5); COMMIT" >/dev/null &
LOCK_PID=$!
locked() {
	[ "$(q "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'route_data' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ]
}
wait_for 5 locked || true
post /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":9444}' >"$TMP/pending.out" &
CURL_PID=$!
waiting_on_lock() {
	[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")" -ge 1 ]
}
wait_for 5 waiting_on_lock || true
stop admin
wait "$CURL_PID" || true
[[ $(cat "$TMP/pending.out") == "503 "*"shutting down; nothing was changed"* ]] ||
	fail "write pending at SIGTERM: $(cat "$TMP/pending.out")"
wait "$LOCK_PID" || true
[ "$(q "SELECT count(*) FROM route_data WHERE port = 9444")" = 0 ] || fail "the cancelled write was stored"
stop dns

# ---- start-up refusals ----
rc=0
printf '[admin]\nip = 0.0.0.0\nport = 0\nassets_dir = %s\n' "$SRC/admin_svc/www" >"$TMP/open.ini"
"$ADMIN" -c "$TMP/open.ini" >"$TMP/open.log" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "non-loopback without users file: exit $rc"
grep -q "not a loopback address" "$TMP/open.log" || fail "non-loopback refusal message: $(cat "$TMP/open.log")"
chmod 0644 "$TMP/users"
rc=0
timeout 20 "$ADMIN" -c "$TMP/admin.ini" >"$TMP/worldread.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "world-readable users file: exit $rc"
grep -q "world-readable" "$TMP/worldread.log" || fail "world-readable message: $(cat "$TMP/worldread.log")"

# ---- the database down: 503, nothing hangs ----
chmod 0600 "$TMP/users"
cat >"$TMP/nodb.ini" <<EOF
[admin]
port = 0
users_file = $TMP/users
assets_dir = $SRC/admin_svc/www
[postgres]
conninfo = host=127.0.0.1 port=1 dbname=none connect_timeout=2
EOF
start nodb "$ADMIN" "$TMP/nodb.ini"
URL=http://127.0.0.1:$(ready_port nodb http)
expect "db down read" "$(call GET /api/overview)" 503 'database is unavailable'
expect "db down write" "$(post /api/routes/add '{"modid":5,"cmdid":1,"ip":"127.0.0.1","port":81}')" 503
stop nodb

[ "$fails" = 0 ] || { echo "$fails failure(s); lars-admin log:"; cat "$TMP/admin.log"; exit 1; }
echo "all admin API checks passed"
