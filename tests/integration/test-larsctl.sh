#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# larsctl against a real PostgreSQL: migrations once, route add/del/list with
# the version, change log and description rows they imply, duplicate adds,
# and bad input that must exit 2 with one line on stderr and change nothing;
# status and status --history, column for column.
set -euo pipefail
LARSCTL=$1
. "$(dirname "$0")/../lib/pg-testdb.sh"

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
TMPDIR_W=$(mktemp -d)
trap 'rm -rf "$TMPDIR_W"; drop_test_db' EXIT
q() { psql -X -At -c "$1"; }
pyjson() { /usr/bin/python3 -c "import json, sys; d = json.load(sys.stdin); $1"; }

out=$("$LARSCTL" migrate)
[[ $out == *"applied 001_routes"*"applied 002_report"*"applied 003_route_writers"*"applied 004_console"* ]] || fail "first migrate: $out"
out=$("$LARSCTL" migrate)
[[ $out == *"up to date (version 12)"* ]] || fail "second migrate: $out"
[ "$(q 'SELECT count(*) FROM schema_migrations')" = 12 ] || fail "schema_migrations rows"
# Two migrators at once: the advisory lock serialises them, nothing twice.
psql -X -q -c 'CREATE DATABASE "'"$TEST_DB"'_2"' -d postgres
PGDATABASE=${TEST_DB}_2 "$LARSCTL" migrate >/dev/null &
PGDATABASE=${TEST_DB}_2 "$LARSCTL" migrate >/dev/null || fail "concurrent migrate"
wait $! || fail "concurrent migrate (background)"
[ "$(PGDATABASE=${TEST_DB}_2 q 'SELECT count(*) FROM schema_migrations')" = 12 ] || fail "concurrent migrate rows"
psql -X -q -d postgres -c 'DROP DATABASE "'"$TEST_DB"'_2"'

out=$("$LARSCTL" route add 1 1 127.0.0.1 9001)
[[ $out == "added 1/1 127.0.0.1:9001 (route version 1)" ]] || fail "add: $out"
"$LARSCTL" route add 1 1 127.0.0.1 9002 >/dev/null
"$LARSCTL" route add 7 3 192.168.1.177 80 >/dev/null
[ "$(q 'SELECT version FROM route_version')" = 3 ] || fail "version after 3 adds"
[ "$(q "SELECT count(*) FROM route_change WHERE action = 'add'")" = 3 ] || fail "change log"
[ "$(q 'SELECT count(*) FROM modid_config')" = 2 ] || fail "modid_config rows"
[ "$(q 'SELECT count(*) FROM cmdid_config')" = 2 ] || fail "cmdid_config rows"

# A duplicate is reported, exit 0, nothing changes.
err=$("$LARSCTL" route add 1 1 127.0.0.1 9001 2>&1 >/dev/null) || fail "duplicate add exit $?"
[[ $err == *"already in the route; nothing changed"* ]] || fail "duplicate message: $err"
[ "$(q 'SELECT version FROM route_version')" = 3 ] || fail "duplicate bumped the version"
[ "$(q 'SELECT count(*) FROM route_data')" = 3 ] || fail "duplicate row"

# Bad input: exit 2, exactly one line on stderr, nothing changed.
bad_cases=(
	"route add 1 1 127.0.0.1 0"
	"route add 1 1 127.0.0.1 65536"
	"route add 1 1 127.0.0.1 http"
	"route add 1 1 ::1 80"
	"route add 1 1 1.2.3 80"
	"route add 1 1 256.1.1.1 80"
	"route add 1 1 localhost 80"
	"route add -1 1 127.0.0.1 80"
	"route add 1 -5 127.0.0.1 80"
	"route add 2147483648 1 127.0.0.1 80"
	"route add 1x 1 127.0.0.1 80"
	"route add 1 1 127.0.0.1"
	"route add 1 1 127.0.0.1 80 extra"
	"route del 1 1 127.0.0.1 0"
	"route list x"
	"route list 1 2 3"
	"route frob"
	"route"
	"frob"
	""
	"--nope route list"
)
for c in "${bad_cases[@]}"; do
	set +e
	# shellcheck disable=SC2086
	err=$("$LARSCTL" $c 2>&1 >/dev/null)
	rc=$?
	set -e
	[ "$rc" = 2 ] || fail "'$c' exited $rc, want 2"
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "'$c' wrote more than one line: $err"
	[[ $err == larsctl:* ]] || fail "'$c' message: $err"
done
# Text that looks like SQL is an argument like any other.
set +e
"$LARSCTL" route add "1; DROP TABLE route_data" 1 127.0.0.1 80 2>/dev/null
rc=$?
set -e
[ "$rc" = 2 ] || fail "sql-looking modid exited $rc"
[ "$(q 'SELECT version FROM route_version')" = 3 ] || fail "bad input changed the version"
[ "$(q 'SELECT count(*) FROM route_data')" = 3 ] || fail "bad input changed the data"

out=$("$LARSCTL" route list)
[ "$(printf '%s\n' "$out" | wc -l)" = 4 ] || fail "list all: $out"
[[ $out == *"192.168.1.177:80"* ]] || fail "list shows hosts: $out"
out=$("$LARSCTL" route list 1 1)
[ "$(printf '%s\n' "$out" | grep -c '127.0.0.1:900')" = 2 ] || fail "list 1 1: $out"
out=$("$LARSCTL" route list 5)
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "list of an absent modid: $out"
out=$("$LARSCTL" --db "dbname=$TEST_DB" route list 7 3)
[[ $out == *"192.168.1.177:80"* ]] || fail "--db conninfo: $out"

out=$("$LARSCTL" route del 1 1 127.0.0.1 9002)
[[ $out == "removed 1/1 127.0.0.1:9002 (route version 4)" ]] || fail "del: $out"
[ "$(q "SELECT count(*) FROM route_change WHERE action = 'del'")" = 1 ] || fail "del change log"
err=$("$LARSCTL" route del 1 1 127.0.0.1 9002 2>&1 >/dev/null) || fail "second del exit $?"
[[ $err == *"not in the route; nothing changed"* ]] || fail "second del: $err"
[ "$(q 'SELECT version FROM route_version')" = 4 ] || fail "absent del bumped the version"

# Any writer goes through the triggers: a hand-made insert bumps and logs too.
q "INSERT INTO route_data (modid, cmdid, ip, port) VALUES (9, 9, '10.0.0.1', 1)" >/dev/null
[ "$(q 'SELECT version FROM route_version')" = 5 ] || fail "trigger did not bump"
# TRUNCATE bypasses row triggers; its own trigger still bumps the version.
q "TRUNCATE route_data" >/dev/null
[ "$(q 'SELECT version FROM route_version')" = 6 ] || fail "TRUNCATE did not bump"
# The schema refuses what larsctl refuses, for writers that skip larsctl.
if q "INSERT INTO route_data (modid, cmdid, ip, port) VALUES (9, 9, '::1', 1)" 2>/dev/null; then
	fail "schema accepted an IPv6 address"
fi

# Quotes and SQL in a description are stored as given and change nothing else.
evil="Robert'); DROP TABLE route_data; -- \"quoted\" \$1 \\ ;"
"$LARSCTL" describe 1 1 --text "$evil" || fail "describe set exited $?"
[ "$("$LARSCTL" describe 1 1)" = "$evil" ] || fail "description not stored as given"
"$LARSCTL" describe 1 --text "mod 1: it's fine" || fail "describe modid exited $?"
[ "$("$LARSCTL" describe 1)" = "mod 1: it's fine" ] || fail "modid description"
[ "$(q "SELECT to_regclass('route_data') IS NOT NULL")" = t ] || fail "route_data harmed"
set +e
"$LARSCTL" describe x --text y 2>/dev/null; rc=$?
set -e
[ "$rc" = 2 ] || fail "describe with a bad id exited $rc"
# What would change how a description reads (C0/C1 controls, bidi overrides
# and isolates) and invalid UTF-8 are bad input: exit 2 with one line from
# our own check (not PostgreSQL's refusal, exit 1), nothing stored.
desc_bad=(
	$'a\nb' $'esc\e[31m' $'c1 \xc2\x9b31m' $'c1 \xc2\x80' $'rlo \xe2\x80\xae' $'lre \xe2\x80\xaa'
	$'lri \xe2\x81\xa6' $'pdi \xe2\x81\xa9' $'surrogate \xed\xa0\x80' $'overlong \xc0\xaf'
	$'latin-1 caf\xe9' $'above \xf4\x90\x80\x80' $'cut \xe2\x80'
)
for t in "${desc_bad[@]}"; do
	rc=0
	err=$("$LARSCTL" describe 1 1 --text "$t" 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 2 ] || fail "describe $(printf %q "$t") exited $rc, want 2"
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "describe $(printf %q "$t") said more than one line: $err"
	[[ $err == "larsctl: a description is"* ]] || fail "describe $(printf %q "$t") said: $err"
done
[ "$("$LARSCTL" describe 1 1)" = "$evil" ] || fail "a refused description changed the stored one"
"$LARSCTL" describe 1 1 --text $'caf\xc3\xa9 \xe2\x80\x8e tab\tok' || fail "describe with UTF-8 text exited $?"

# ---- status and status --history: the columns scripts read ----
# (common/db/status.c runs the queries; the console runs the same ones, see
# test-admin.sh.) A report dated ahead of the database's clock is 0 s old;
# ERR% is SQL's round(x, 1): 3 of 2000 is 0.15 %, shown as 0.2; no calls "-".
q "INSERT INTO host_status VALUES
 (20, 1, '10.0.0.1', 80, '10.9.0.1', 1997, 3, true, now() + interval '1 hour', now()),
 (20, 1, '10.0.0.1', 80, '10.9.0.2', 0, 0, false, now() + interval '1 hour', now()),
 (20, 2, '10.0.0.2', 8080, '::1', 4611686018427387903, 1, false, now() + interval '1 hour', now()),
 (21, 1, '10.0.0.3', 1, '10.9.0.1', 1, 2, false, now() - interval '2 days', now())" >/dev/null
want_status=$(cat <<'EOT'
MODID      CMDID      HOST                  CALLER                SUCC        ERR   ERR% OVERLOAD AGE
20         1          10.0.0.1:80           10.9.0.1              1997          3    0.2 yes      0s
20         1          10.0.0.1:80           10.9.0.2                 0          0      - no       0s
20         2          10.0.0.2:8080         ::1             4611686018427387903          1    0.0 no       0s
EOT
)
out=$("$LARSCTL" status 20) || fail "status 20 exited $?"
[ "$out" = "$want_status" ] || fail "status 20:"$'\n'"$out"$'\n'"want:"$'\n'"$want_status"
out=$("$LARSCTL" status 20 2) || fail "status 20 2 exited $?"
[ "$out" = "$(sed -n '1p;4p' <<<"$want_status")" ] || fail "status 20 2: $out"
age=$("$LARSCTL" status 21 | awk 'NR == 2 {print $NF}')
[[ $age =~ ^[0-9]+s$ ]] && [ "${age%s}" -ge 172800 ] && [ "${age%s}" -lt 173000 ] || fail "status age: $age"
[ "$("$LARSCTL" status 22)" = "$(head -n 1 <<<"$want_status")" ] || fail "status of a route without reports"
# History: per-minute sums per route, the minute in the session's time zone
# (PGTZ here: +05:30 shows that it is not UTC's); 3 of 2002 is 0.1 %.
q "INSERT INTO host_status_history VALUES
 (date_trunc('minute', now()) - interval '2 min', 20, 1, '10.0.0.1', 80, '10.9.0.1', 1000, 1),
 (date_trunc('minute', now()) - interval '2 min', 20, 1, '10.0.0.1', 80, '10.9.0.2', 999, 2),
 (date_trunc('minute', now()) - interval '2 min', 20, 2, '10.0.0.2', 8080, '::1', 0, 0),
 (date_trunc('minute', now()) - interval '1 min', 20, 1, '10.0.0.1', 80, '10.9.0.1', 1, 1),
 (date_trunc('minute', now()) - interval '90 min', 20, 1, '10.0.0.1', 80, '10.9.0.1', 5, 5)" >/dev/null
m2=$(PGTZ=Asia/Kolkata q "SELECT to_char(min(minute), 'YYYY-MM-DD HH24:MI') FROM host_status_history WHERE modid = 20 AND succ = 1000")
m1=$(PGTZ=Asia/Kolkata q "SELECT to_char(minute, 'YYYY-MM-DD HH24:MI') FROM host_status_history WHERE modid = 20 AND succ = 1")
m90=$(PGTZ=Asia/Kolkata q "SELECT to_char(minute, 'YYYY-MM-DD HH24:MI') FROM host_status_history WHERE modid = 20 AND succ = 5")
want_hist=$(printf '%-17s %-10s %-10s %12s %12s %6s\n' MINUTE MODID CMDID SUCC ERR 'ERR%' \
	"$m2" 20 1 1999 3 0.1 "$m2" 20 2 0 0 - "$m1" 20 1 1 1 50.0)
out=$(PGTZ=Asia/Kolkata "$LARSCTL" status --history 5 20) || fail "status --history exited $?"
[ "$out" = "$want_hist" ] || fail "status --history 5 20:"$'\n'"$out"$'\n'"want:"$'\n'"$want_hist"
out=$(PGTZ=Asia/Kolkata "$LARSCTL" status --history=100 20 1)
[ "$(sed -n 2p <<<"$out")" = "$(printf '%-17s %-10s %-10s %12s %12s %6s' "$m90" 20 1 5 5 50.0)" ] ||
	fail "status --history 100 20 1: $out"
[ "$(wc -l <<<"$out")" = 4 ] || fail "status --history 100 20 1 rows: $out"
for c in "status --history 0" "status --history 525601" "status --history x" "status --history" \
	 "status 20 1 2" "status x"; do
	rc=0
	# shellcheck disable=SC2086
	err=$("$LARSCTL" $c 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 2 ] && [ "$(wc -l <<<"$err")" = 1 ] || fail "'$c' exited $rc: $err"
done
[ "$(PGTZ=UTC "$LARSCTL" status --history 525600 | wc -l)" = 5 ] || fail "status --history 525600"

# ---- latency: MEAN_US and P99_US appended when any row has latency ----
# Buckets (13, deploy/sql/006_report_acks.sql): <=0.5, 1, 2, 5 ms, ... >2 s.
# By hand: 10.0.1.1:80 from 10.9.0.1 has 4 calls of 500-1000 us (sum 3600)
# a minute ago and 2 of 2000-5000 us (sum 6000) now: mean 9600 / 6 = 1600,
# p99 at 0.99 * 6 = 5.94 is in the 2000-5000 bucket, 2000 + 3000 * 1.94 / 2
# = 4910. 10.0.1.3:90 has one call above 2 s: p99 is the bucket's lower
# bound, 2000000. 10.0.1.2:81's latency is 10 minutes old (outside the 5
# minutes of status), and 10.9.0.2 reported none: "-".
q "INSERT INTO host_status VALUES
 (23, 1, '10.0.1.1', 80, '10.9.0.1', 10, 0, false, now() + interval '1 hour', now()),
 (23, 1, '10.0.1.1', 80, '10.9.0.2', 5, 1, false, now() + interval '1 hour', now()),
 (23, 1, '10.0.1.2', 81, '10.9.0.1', 3, 0, false, now() + interval '1 hour', now()),
 (23, 2, '10.0.1.3', 90, '10.9.0.1', 1, 0, true, now() + interval '1 hour', now())" >/dev/null
q "INSERT INTO host_status_history
 (minute, modid, cmdid, ip, port, caller, succ, err, lat_count, lat_sum_us, lat_buckets) VALUES
 (date_trunc('minute', now()) - interval '1 min', 23, 1, '10.0.1.1', 80, '10.9.0.1', 6, 0, 4, 3600,
  '{0,4,0,0,0,0,0,0,0,0,0,0,0}'),
 (date_trunc('minute', now()) - interval '1 min', 23, 1, '10.0.1.1', 80, '10.9.0.2', 5, 1, 0, 0, NULL),
 (date_trunc('minute', now()) - interval '1 min', 23, 3, '10.0.1.4', 1, '10.9.0.1', 1, 1, 0, 0, NULL),
 (date_trunc('minute', now()), 23, 1, '10.0.1.1', 80, '10.9.0.1', 4, 0, 2, 6000,
  '{0,0,0,2,0,0,0,0,0,0,0,0,0}'),
 (date_trunc('minute', now()), 23, 2, '10.0.1.3', 90, '10.9.0.1', 1, 0, 1, 3000000,
  '{0,0,0,0,0,0,0,0,0,0,0,0,1}'),
 (date_trunc('minute', now()) - interval '10 min', 23, 1, '10.0.1.2', 81, '10.9.0.1', 3, 0, 3, 300,
  '{3,0,0,0,0,0,0,0,0,0,0,0,0}')" >/dev/null
want_lat=$(cat <<'EOT'
MODID      CMDID      HOST                  CALLER                SUCC        ERR   ERR% OVERLOAD AGE         MEAN_US     P99_US
23         1          10.0.1.1:80           10.9.0.1                10          0    0.0 no       0s             1600       4910
23         1          10.0.1.1:80           10.9.0.2                 5          1   16.7 no       0s                -          -
23         1          10.0.1.2:81           10.9.0.1                 3          0    0.0 no       0s                -          -
23         2          10.0.1.3:90           10.9.0.1                 1          0    0.0 yes      0s          3000000    2000000
EOT
)
out=$("$LARSCTL" status 23) || fail "status 23 exited $?"
[ "$out" = "$want_lat" ] || fail "status 23:"$'\n'"$out"$'\n'"want:"$'\n'"$want_lat"
out=$("$LARSCTL" status 23 2) || fail "status 23 2 exited $?"
[ "$out" = "$(sed -n '1p;5p' <<<"$want_lat")" ] || fail "status 23 2: $out"
# All routes: every line has the two columns, "-" where a row has none.
out=$("$LARSCTL" status)
[ "$(head -n 1 <<<"$out")" = "$(head -n 1 <<<"$want_lat")" ] || fail "status header with latency: $out"
[ "$(grep -c '^20 .* 0s  *-  *-$' <<<"$out")" = 3 ] || fail "status rows without latency: $out"
# Per minute: a minute ago 23/1 had 11 + 1 calls (8.3 %), 4 with latency,
# mean 900, p99 500 + 500 * 3.96 / 4 = 995; 23/3 none; now 23/1 mean 3000,
# p99 2000 + 3000 * 1.98 / 2 = 4970, and 23/2 as above.
ma=$(PGTZ=Asia/Kolkata q "SELECT to_char(minute, 'YYYY-MM-DD HH24:MI') FROM host_status_history WHERE modid = 23 AND cmdid = 3")
mb=$(PGTZ=Asia/Kolkata q "SELECT to_char(minute, 'YYYY-MM-DD HH24:MI') FROM host_status_history WHERE modid = 23 AND cmdid = 2")
hf='%-17s %-10s %-10s %12s %12s %6s %10s %10s\n'
want_lhist=$(printf "$hf" MINUTE MODID CMDID SUCC ERR 'ERR%' MEAN_US P99_US \
	"$ma" 23 1 11 1 8.3 900 995 "$ma" 23 3 1 1 50.0 - - \
	"$mb" 23 1 4 0 0.0 3000 4970 "$mb" 23 2 1 0 0.0 3000000 2000000)
out=$(PGTZ=Asia/Kolkata "$LARSCTL" status --history 5 23) || fail "status --history 5 23 exited $?"
[ "$out" = "$want_lhist" ] || fail "status --history 5 23:"$'\n'"$out"$'\n'"want:"$'\n'"$want_lhist"
out=$(PGTZ=Asia/Kolkata "$LARSCTL" status --history 5 23 3)
[ "$out" = "$(printf '%-17s %-10s %-10s %12s %12s %6s\n' MINUTE MODID CMDID SUCC ERR 'ERR%' "$ma" 23 3 1 1 50.0)" ] ||
	fail "status --history 5 23 3 (no latency): $out"
# The routes without latency print exactly what they did before.
out=$("$LARSCTL" status 20)
[ "$out" = "$want_status" ] || fail "status 20 after latency rows elsewhere:"$'\n'"$out"
out=$(PGTZ=Asia/Kolkata "$LARSCTL" status --history 5 20)
[ "$out" = "$want_hist" ] || fail "status --history 5 20 after latency rows elsewhere:"$'\n'"$out"

# ---- per host history, --caller, --failing (issue 20.5) ----
# Per host per minute, the hosts of a route add up to its per-route line.
byhost=$(PGTZ=UTC "$LARSCTL" status --history 15 --by-host) || fail "--by-host exited $?"
[ "$(head -n 1 <<<"$byhost" | awk '{print $4}')" = HOST ] || fail "--by-host header: $byhost"
sums_host=$(awk 'NR > 1 {k = $1 " " $2 " " $3 " " $4; s[k] += $6; e[k] += $7} END {for (k in s) print k, s[k], e[k]}' <<<"$byhost" | sort)
sums_route=$(PGTZ=UTC "$LARSCTL" status --history 15 | awk 'NR > 1 {print $1, $2, $3, $4, $5, $6}' | sort)
[ -n "$sums_route" ] && [ "$sums_host" = "$sums_route" ] ||
	fail "--by-host sums differ from the per-route lines:"$'\n'"$sums_host"$'\n'"vs"$'\n'"$sums_route"
# One caller only: 20/1 two minutes ago was 999 + 2 from 10.9.0.2.
out=$(PGTZ=Asia/Kolkata "$LARSCTL" status --history 5 20 1 --caller 10.9.0.2)
[ "$(sed -n 2p <<<"$out")" = "$(printf '%-17s %-10s %-10s %12s %12s %6s' "$m2" 20 1 999 2 0.2)" ] &&
	[ "$(wc -l <<<"$out")" = 2 ] || fail "status --history --caller:"$'\n'"$out"
out=$("$LARSCTL" status 20 --caller 10.9.0.2)
[ "$(wc -l <<<"$out")" = 2 ] && [[ $out == *"10.9.0.2"* ]] || fail "status --caller: $out"
# Failing hosts only: above 10 % in their minute (1 of 2, 1 of 2), highest first.
out=$(PGTZ=UTC "$LARSCTL" status --history 5 --by-host --failing)
[ "$(awk 'NR > 1 {print $3 "/" $4 " " $5 " " $8}' <<<"$out" | sort | tr '\n' ,)" = "20/1 10.0.0.1:80 50.0,23/3 10.0.1.4:1 50.0," ] ||
	fail "status --by-host --failing:"$'\n'"$out"
out=$(PGTZ=UTC "$LARSCTL" status --history 5 --by-host --failing --fail-pct 5)
[[ $out == *"10.0.1.1:80"*"8.3"* ]] || fail "--fail-pct 5 does not list 23/1's 8.3 %: $out"
for c in "status --by-host" "status --history 5 --failing" "status --history 5 --by-host --fail-pct 5" \
	 "status --history 5 --by-host --failing --fail-pct 101" "status --caller 10.0.0" \
	 "status --caller" "route list --by-host" "watch 1 2 3" "watch -o yaml" "watch --count 0" \
	 "status --count 5"; do
	rc=0
	# shellcheck disable=SC2086
	err=$("$LARSCTL" $c 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 2 ] && [ "$(wc -l <<<"$err")" = 1 ] || fail "'$c' exited $rc: $err"
done

# ---- watch (issue 20.4): changes by any writer, as they commit ----
"$LARSCTL" watch --count 3 >"$TMPDIR_W/watch.txt" 2>&1 &
wpid=$!
"$LARSCTL" watch 40 -o json --count 1 >"$TMPDIR_W/watch.json" 2>&1 &
jpid=$!
sleep 1 # LISTEN is set up (a change before that is not this watch's)
q "INSERT INTO route_data (modid, cmdid, ip, port) VALUES (40, 1, '10.4.0.1', 80), (40, 1, '10.4.0.2', 81)" >/dev/null
"$LARSCTL" route weight 40 1 10.4.0.2 81 7 >/dev/null
"$LARSCTL" route del 40 1 10.4.0.1 80 >/dev/null
for pid in $wpid $jpid; do
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill "$pid" 2>/dev/null && fail "watch $pid did not end after its --count lines"
	wait "$pid" || fail "watch exited $?"
done
v=$(q 'SELECT version FROM route_version')
want_watch=$(printf '%s\n' "$((v - 2)) 40/1 +10.4.0.1:80 +10.4.0.2:81" \
	"$((v - 1)) 40/1 ~10.4.0.2:81(weight 7)" "$v 40/1 -10.4.0.1:80")
[ "$(awk '{$2 = ""; print}' "$TMPDIR_W/watch.txt" | sed 's/  / /')" = "$want_watch" ] ||
	fail "watch printed:"$'\n'"$(cat "$TMPDIR_W/watch.txt")"$'\n'"want (time aside):"$'\n'"$want_watch"
[[ $(cat "$TMPDIR_W/watch.json") == '{"version":'$((v - 2))',"changed_at":"'*'","modid":40,"cmdid":1,"added":["10.4.0.1:80","10.4.0.2:81"],"removed":[],"set":[],"policy":null}' ]] ||
	fail "watch -o json printed: $(cat "$TMPDIR_W/watch.json")"

# ---- traffic control: weight, drain, policy (migration 008) ----
# Each change is one version with one change record saying what it set.
"$LARSCTL" route add 30 1 10.3.0.1 80 >/dev/null
"$LARSCTL" route add 30 1 10.3.0.2 80 >/dev/null
v0=$(q 'SELECT version FROM route_version')
out=$("$LARSCTL" route weight 30 1 10.3.0.2 80 300)
[ "$out" = "30/1 10.3.0.2:80 is weight 300 now (route version $((v0 + 1)))" ] || fail "weight: $out"
[ "$(q "SELECT action || ' ' || detail FROM route_change WHERE version = $((v0 + 1))")" = "set weight 300" ] ||
	fail "weight change record"
err=$("$LARSCTL" route weight 30 1 10.3.0.2 80 300 2>&1 >/dev/null) || fail "same weight exited $?"
[[ $err == *"is weight 300 already; nothing changed"* ]] || fail "same weight: $err"
out=$("$LARSCTL" route drain 30 1 10.3.0.1 80)
[ "$out" = "30/1 10.3.0.1:80 is drained now (route version $((v0 + 2)))" ] || fail "drain: $out"
[ "$(q "SELECT detail FROM route_change WHERE version = $((v0 + 2))")" = "weight 100, drained" ] ||
	fail "drain change record"
want_list=$(printf '%-10s %-10s %-21s %-6s %s\n' MODID CMDID HOST WEIGHT DRAIN \
	30 1 10.3.0.1:80 100 drained 30 1 10.3.0.2:80 300 -)
out=$("$LARSCTL" route list 30)
[ "$out" = "$want_list" ] || fail "route list 30:"$'\n'"$out"$'\n'"want:"$'\n'"$want_list"
out=$("$LARSCTL" route policy 30 1)
[ "$out" = "30/1: panic_threshold the agent's default, max_ejection_percent 100 %, slow_start 0 s (off)" ] ||
	fail "default policy: $out"
out=$("$LARSCTL" route policy 30 1 --panic-threshold 50 --max-ejection-percent=20 --slow-start 30)
[ "$out" = "30/1: panic_threshold 50 %, max_ejection_percent 20 %, slow_start 30 s (route version $((v0 + 3)))" ] ||
	fail "policy set: $out"
[ "$(q "SELECT action || ': ' || detail FROM route_change WHERE version = $((v0 + 3))")" = \
	"policy: panic_threshold 50, max_ejection_percent 20, slow_start 30 s" ] || fail "policy change record"
# One field at a time keeps the others; 'default' hands panic back to the agent.
"$LARSCTL" route policy 30 1 --panic-threshold default >/dev/null || fail "panic default exited $?"
[ "$(q "SELECT coalesce(panic_threshold::text, 'null') || ' ' || max_ejection_percent || ' ' || slow_start_s
	FROM cmdid_config WHERE modid = 30 AND cmdid = 1")" = "null 20 30" ] || fail "partial policy change"
out=$("$LARSCTL" route list 30)
[ "$(tail -n 2 <<<"$out")" = "$(printf '%-10s %-10s %s\n' MODID CMDID POLICY 30 1 \
	"panic_threshold the agent's default, max_ejection_percent 20 %, slow_start 30 s")" ] ||
	fail "route list policy:"$'\n'"$out"
"$LARSCTL" route drain 30 1 10.3.0.1 80 --undo >/dev/null || fail "drain --undo exited $?"
[ "$(q "SELECT drain FROM route_data WHERE ip = '10.3.0.1'")" = f ] || fail "drain --undo"
v1=$(q 'SELECT version FROM route_version')
# Bad values: exit 2, one line, nothing changed.
tc_bad=(
	"route weight 30 1 10.3.0.2 80 0" "route weight 30 1 10.3.0.2 80 1001" "route weight 30 1 10.3.0.2 80 x"
	"route weight 30 1 10.3.0.2 80 -5" "route weight 30 1 10.3.0.2 80" "route weight 30 1 10.3.0.9 80 5"
	"route drain 30 1 10.3.0.9 80" "route drain 30 1 10.3.0.1" "route drain 30 1 10.3.0.1 80 --slow-start 5"
	"route weight 30 1 10.3.0.2 80 5 --undo"
	"route policy 30 1 --panic-threshold 101" "route policy 30 1 --panic-threshold -1"
	"route policy 30 1 --max-ejection-percent 0" "route policy 30 1 --max-ejection-percent 101"
	"route policy 30 1 --slow-start 86401" "route policy 30 1 --slow-start x" "route policy 30 1 --slow-start"
	"route policy 30" "route policy x 1 --slow-start 5" "route add 30 1 10.3.0.3 80 --panic-threshold 5"
)
for c in "${tc_bad[@]}"; do
	rc=0
	# shellcheck disable=SC2086
	err=$("$LARSCTL" $c 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 2 ] || fail "'$c' exited $rc, want 2"
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && [[ $err == larsctl:* ]] || fail "'$c' said: $err"
done
[ "$(q 'SELECT version FROM route_version')" = "$v1" ] || fail "a refused traffic change bumped the version"
[ "$(q "SELECT string_agg(weight || ' ' || drain, ',' ORDER BY ip) FROM route_data WHERE modid = 30")" = "100 false,300 false" ] ||
	fail "a refused traffic change changed the hosts"
# The schema refuses what larsctl refuses, for writers that skip larsctl.
q "UPDATE route_data SET weight = 0 WHERE modid = 30" 2>/dev/null && fail "schema took weight 0"
q "UPDATE cmdid_config SET slow_start_s = -1 WHERE modid = 30" 2>/dev/null && fail "schema took slow start -1"
# A description edit is no route change: no version, no record.
"$LARSCTL" describe 30 1 --text "thirty" || fail "describe 30 1 exited $?"
[ "$(q 'SELECT version FROM route_version')" = "$v1" ] || fail "a description bumped the version"

# changes (issue 24.7): the change log newest first, filtered, limited.
out=$("$LARSCTL" changes 30 1 --limit 3) || fail "changes exited $?"
[ "$(head -n 1 <<<"$out" | awk '{print $1, $2, $3, $4, $5, $6, $7, $8}')" = "ID VERSION TIME ROUTE ACTION HOST ACTOR DETAIL" ] ||
	fail "changes header: $out"
[ "$(wc -l <<<"$out")" = 4 ] || fail "changes --limit 3: $out"
newest=$(q "SELECT id FROM route_change WHERE modid = 30 AND cmdid = 1 ORDER BY id DESC LIMIT 1")
[ "$(sed -n 2p <<<"$out" | awk '{print $1, $4}')" = "$newest 30/1" ] || fail "changes newest first: $out"
me="$(id -un)@$(hostname) (larsctl)"
[[ $("$LARSCTL" changes 30 1 --limit 1000) == *" policy   -                     $me"*" panic_threshold 50, max_ejection_percent 20, slow_start 30 s"* ]] ||
	fail "changes policy row: $("$LARSCTL" changes 30 1)"
# The audit trail (issue 24.8): who made each change. larsctl names the
# Unix user and host, another writer its role and application.
[ "$(q "SELECT DISTINCT actor FROM route_change WHERE modid = 30")" = "$me" ] ||
	fail "actor of larsctl's changes: $(q "SELECT DISTINCT actor FROM route_change WHERE modid = 30")"
PGAPPNAME=psql psql -X -q -c "INSERT INTO route_data (modid, cmdid, ip, port) VALUES (34, 1, '10.3.4.1', 80)"
[ "$(q "SELECT actor FROM route_change WHERE modid = 34")" = "$(q 'SELECT session_user') (psql)" ] ||
	fail "actor of a psql insert: $(q "SELECT actor FROM route_change WHERE modid = 34")"
# Description edits are in the change log (no route version), a modid's as MODID/*.
v0=$(q 'SELECT version FROM route_version')
"$LARSCTL" describe 34 1 --text 'checkout API' >/dev/null
"$LARSCTL" describe 34 --text 'the shop' >/dev/null
"$LARSCTL" describe 34 --text 'the shop' >/dev/null
[ "$(q 'SELECT version FROM route_version')" = "$v0" ] || fail "a description bumped the route version"
out=$("$LARSCTL" changes 34 --limit 5)
[ "$(sed -n 2p <<<"$out" | awk '{print $2, $4, $5}')" = "- 34/* describe" ] && [[ $(sed -n 2p <<<"$out") == *"$me"*" the shop" ]] &&
	[ "$(sed -n 3p <<<"$out" | awk '{print $2, $4, $5}')" = "- 34/1 describe" ] && [[ $(sed -n 3p <<<"$out") == *" checkout API" ]] &&
	[ "$(wc -l <<<"$out")" = 4 ] || fail "describe in the change log (the same text twice is one change): $out"
out=$("$LARSCTL" changes 34 --limit 1 -o json)
pyjson 'assert d[0]["action"] == "describe" and d[0]["version"] is None and d[0]["cmdid"] is None and d[0]["detail"] == "the shop", d' <<<"$out" ||
	fail "describe -o json: $out"
"$LARSCTL" route del 34 1 10.3.4.1 80 >/dev/null
[ "$("$LARSCTL" changes 30 --since 1h | wc -l)" = "$(( $(q "SELECT count(*) FROM route_change WHERE modid = 30") + 1 ))" ] ||
	fail "changes --since 1h"
[ "$("$LARSCTL" changes --since 2999-01-01 | wc -l)" = 1 ] || fail "changes --since the future"
[ "$("$LARSCTL" changes --since "$(date -u +%Y-%m-%d) 00:00+00" --limit 100000 | wc -l)" -gt 10 ] ||
	fail "changes --since today"
for c in "changes --limit 0" "changes --limit x" "changes --since yesterdayish" "changes --since 5w" \
	 "changes 1 2 3" "changes --since" "status --limit 5"; do
	rc=0
	# shellcheck disable=SC2086
	err=$("$LARSCTL" $c 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 2 ] && [ "$(wc -l <<<"$err")" = 1 ] || fail "'$c' exited $rc: $err"
done

# agents and route show (issue 20.3; test-propagation.c has them with agents).
out=$("$LARSCTL" agents) || fail "agents exited $?"
[ "$(head -c 8 <<<"$out")" = INSTANCE ] || fail "agents header: $out"
out=$("$LARSCTL" route show 30 1) || fail "route show exited $?"
[[ $out == "route 30/1: 2 hosts"* && $out == *"10.3.0.2:80           300"* ]] || fail "route show: $out"
for c in "route show 99 99" "route show 30" "route show x 1" "agents x" "route list --lagging"; do
	rc=0
	# shellcheck disable=SC2086
	err=$("$LARSCTL" $c 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 2 ] && [ "$(wc -l <<<"$err")" = 1 ] || fail "'$c' exited $rc: $err"
done

# -o json / -o tsv (issue 24.6): the same rows as the text, for scripts.
out=$("$LARSCTL" route list 30 -o json) || fail "route list -o json exited $?"
pyjson 'h = d["hosts"]; assert len(h) == 2, h; assert h[1] == {"modid": 30, "cmdid": 1, "ip": "10.3.0.2", "port": 80, "weight": 300, "drain": False}, h
p = d["policies"]; assert p == [{"modid": 30, "cmdid": 1, "panic_threshold": None, "max_ejection_percent": 20, "slow_start": 30}], p' <<<"$out" ||
	fail "route list -o json: $out"
out=$("$LARSCTL" route list 30 -o tsv)
[ "$(head -1 <<<"$out")" = "$(printf 'modid\tcmdid\tip\tport\tweight\tdrain')" ] &&
	[ "$(sed -n 3p <<<"$out")" = "$(printf '30\t1\t10.3.0.2\t80\t300\tfalse')" ] || fail "route list -o tsv: $out"
[ "$("$LARSCTL" route list -o tsv | wc -l)" = "$(( $(q 'SELECT count(*) FROM route_data') + 1 ))" ] ||
	fail "route list -o tsv: one line per host"
out=$("$LARSCTL" changes 30 1 --limit 3 -o json)
pyjson 'assert d[0]["action"] == "describe" and d[0]["detail"] == "thirty", d
d = d[1:]
assert len(d) == 2 and d[0]["id"] > d[1]["id"], d
assert d[0] == {"id": d[0]["id"], "version": d[0]["version"], "changed_at": d[0]["changed_at"], "modid": 30, "cmdid": 1, "action": "set", "ip": "10.3.0.1", "port": 80, "detail": "weight 100", "actor": d[0]["actor"]}, d
assert d[0]["actor"].endswith(" (larsctl)"), d
assert d[1]["action"] == "policy" and d[1]["ip"] is None and d[1]["port"] is None, d' <<<"$out" || fail "changes -o json: $out"
out=$("$LARSCTL" changes 30 1 --limit 1000 -o tsv)
[ "$(wc -l <<<"$out")" = "$(( $(q 'SELECT count(*) FROM route_change WHERE modid = 30 AND cmdid = 1') + 1 ))" ] &&
	[ "$(head -1 <<<"$out" | tr '\t' ' ')" = "id version changed_at modid cmdid action ip port detail actor" ] ||
	fail "changes -o tsv: $out"
for c in "status" "status --history 60" "status --history 60 --by-host" "agents"; do
	# shellcheck disable=SC2086
	out=$("$LARSCTL" $c -o json) || fail "'$c -o json' exited $?"
	pyjson 'assert isinstance(d, list)' <<<"$out" || fail "'$c -o json': $out"
	# shellcheck disable=SC2086
	out=$("$LARSCTL" $c -o tsv) || fail "'$c -o tsv' exited $?"
	# shellcheck disable=SC2086
	[ "$(wc -l <<<"$out")" = "$("$LARSCTL" $c | wc -l)" ] || fail "'$c -o tsv' rows: $out"
done
for c in "route list -o xml" "route add 1 1 10.0.0.1 80 -o json" "describe 1 -o json" \
	 "route policy 30 1 -o tsv" "admin-user list -o json"; do
	rc=0
	# shellcheck disable=SC2086
	err=$("$LARSCTL" $c 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 2 ] && [ "$(wc -l <<<"$err")" = 1 ] || fail "'$c' exited $rc: $err"
done

# route export / import / del --ip (issue 24.7): each one transaction (the
# change records of one transaction share its now()).
ver() { q 'SELECT version FROM route_version'; }
one_xact() { [ "$(q "SELECT count(DISTINCT changed_at) FROM route_change WHERE version > $1")" = 1 ]; }
out=$("$LARSCTL" route export 30)
[ "$out" = "$(printf 'modid,cmdid,ip,port,weight,drain\n30,1,10.3.0.1,80,100,false\n30,1,10.3.0.2,80,300,false')" ] ||
	fail "route export 30: $out"
"$LARSCTL" route export > "$TMPDIR_W/all.csv"
"$LARSCTL" route export -o json > "$TMPDIR_W/all.json"
[ "$(wc -l < "$TMPDIR_W/all.csv")" = "$(( $(q 'SELECT count(*) FROM route_data') + 1 ))" ] || fail "export: one line per host"
v0=$(ver)
cat > "$TMPDIR_W/new.csv" <<'EOT'
# 30/1 gets a third host, 10.3.0.2 drained at weight 50; 31/1 is new
modid,cmdid,ip,port,weight,drain
30,1,10.3.0.2,80,50,true
30,1,10.3.0.9,81
31,1, 10.3.1.1 ,80,7
EOT
out=$("$LARSCTL" route import "$TMPDIR_W/new.csv" --dry-run) || fail "import --dry-run exited $?"
[ "$out" = "$(printf '%s\n' '- 30/1 10.3.0.1:80' '~ 30/1 10.3.0.2:80 weight 300 -> 50 drained' \
	'+ 30/1 10.3.0.9:81 weight 100' '+ 31/1 10.3.1.1:80 weight 7' \
	"dry run: 2 to add, 1 to remove, 1 to change; nothing changed (route version $v0)")" ] ||
	fail "import --dry-run: $out"
[ "$(ver)" = "$v0" ] && [ "$("$LARSCTL" route export)" = "$(cat "$TMPDIR_W/all.csv")" ] || fail "--dry-run changed something"
out=$("$LARSCTL" route import "$TMPDIR_W/new.csv") || fail "import exited $?"
[[ $out == *"2 added, 1 removed, 1 changed in one transaction"* ]] || fail "import: $out"
one_xact "$v0" || fail "import: not one transaction"
[ "$("$LARSCTL" route export 30 -o json)" = '[{"modid":30,"cmdid":1,"ip":"10.3.0.2","port":80,"weight":50,"drain":true},{"modid":30,"cmdid":1,"ip":"10.3.0.9","port":81,"weight":100,"drain":false}]' ] ||
	fail "after import: $("$LARSCTL" route export 30 -o json)"
[ "$(q "SELECT weight FROM route_data WHERE modid = 31")" = 7 ] || fail "import: the new route"
[ "$(q "SELECT count(*) FROM cmdid_config WHERE modid = 31")" = 1 ] || fail "import: the new route's ids"
out=$("$LARSCTL" route import "$TMPDIR_W/new.csv")
[[ $out == "the routes already match: nothing changed"* ]] || fail "import twice: $out"
# Back from the JSON export: everything as it was.
v0=$(ver)
"$LARSCTL" route import "$TMPDIR_W/all.json" >/dev/null || fail "import of the JSON export"
"$LARSCTL" route del 31 1 10.3.1.1 80 >/dev/null
[ "$("$LARSCTL" route export)" = "$(cat "$TMPDIR_W/all.csv")" ] || fail "export/import round trip: $("$LARSCTL" route export)"
"$LARSCTL" route list -o json | "$LARSCTL" route import - | grep -q "already match" || fail "import - of route list -o json"
# Bad files: FILE:LINE: reason, exit 2, nothing changed.
v0=$(ver)
printf '30,1,10.3.0.1,80\n30,1,10.3.0.300,80\n' > "$TMPDIR_W/bad1.csv"
printf '30,1,10.3.0.1,80\n30,1,10.3.0.1,80,5\n' > "$TMPDIR_W/bad2.csv"
printf '30,1,10.3.0.1\n' > "$TMPDIR_W/bad3.csv"
printf '30,1,10.3.0.1,80,0\n' > "$TMPDIR_W/bad4.csv"
printf '30,1,10.3.0.1,80,5,maybe\n' > "$TMPDIR_W/bad5.csv"
printf '[{"modid":30,"cmdid":1,"ip":"10.3.0.1"}]' > "$TMPDIR_W/bad6.json"
printf '[{"modid":30,' > "$TMPDIR_W/bad7.json"
printf '# nothing\n' > "$TMPDIR_W/bad8.csv"
for f in bad1.csv:2 bad2.csv:2 bad3.csv:1 bad4.csv:1 bad5.csv:1 "bad6.json: host 1" bad7.json:1 bad8.csv; do
	rc=0
	err=$("$LARSCTL" route import "$TMPDIR_W/${f%%:*}" 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 2 ] && [ "$(wc -l <<<"$err")" = 1 ] && [[ $err == "larsctl: $TMPDIR_W/$f"* ]] ||
		fail "import $f exited $rc: $err"
done
[ "$(ver)" = "$v0" ] || fail "a refused import changed something"
# Decommission: one machine out of every route, in one transaction.
"$LARSCTL" route add 32 1 10.3.9.9 80 >/dev/null
"$LARSCTL" route add 32 2 10.3.9.9 81 >/dev/null
"$LARSCTL" route add 33 1 10.3.9.9 80 >/dev/null
"$LARSCTL" route add 33 1 10.3.9.8 80 >/dev/null
v0=$(ver)
out=$("$LARSCTL" route del --ip 10.3.9.9 --port 80)
[ "$out" = "$(printf '%s\n' 'removed 32/1 10.3.9.9:80' 'removed 33/1 10.3.9.9:80' \
	"10.3.9.9:80 removed from 2 routes in one transaction (route version $(ver))")" ] || fail "del --ip --port: $out"
one_xact "$v0" || fail "del --ip --port: not one transaction"
out=$("$LARSCTL" route del --ip 10.3.9.9)
[[ $out == "removed 32/2 10.3.9.9:81"* ]] || fail "del --ip: $out"
[ "$(q "SELECT count(*) FROM route_data WHERE ip = '10.3.9.9'")" = 0 ] &&
	[ "$(q "SELECT count(*) FROM route_data WHERE ip = '10.3.9.8'")" = 1 ] || fail "del --ip removed the wrong hosts"
rc=0
err=$("$LARSCTL" route del --ip 10.3.9.9 2>&1 >/dev/null) || rc=$?
[ "$rc" = 0 ] && [[ $err == *"no route has 10.3.9.9; nothing changed"* ]] || fail "del --ip again: $rc $err"
for c in "route del --ip 10.3.9" "route del --ip 10.3.9.9 --port 0" "route del 1 1 --ip 10.3.9.9" \
	 "route del --port 80" "route add 1 1 10.0.0.1 80 --ip 10.0.0.1" "route import" \
	 "route import a b" "route list --dry-run" "route export -o tsv" "route export 1 2 3" \
	 "status --ip 10.0.0.1"; do
	rc=0
	# shellcheck disable=SC2086
	err=$("$LARSCTL" $c 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 2 ] && [ "$(wc -l <<<"$err")" = 1 ] || fail "'$c' exited $rc: $err"
done

for c in "--help" "migrate --help" "route --help" "route add --help" "describe --help" \
	 "status --help" "watch --help" "agents --help" "changes --help"; do
	# shellcheck disable=SC2086
	"$LARSCTL" $c >/dev/null || fail "'$c' exited $?"
done
set +e
"$LARSCTL" --db "host=127.0.0.1 port=1 connect_timeout=2" route list 2>/dev/null
rc=$?
set -e
[ "$rc" = 1 ] || fail "unreachable database exited $rc, want 1"
for c in "status" "status --history 5"; do
	rc=0
	# shellcheck disable=SC2086
	err=$("$LARSCTL" --db "host=127.0.0.1 port=1 connect_timeout=2" $c 2>&1 >/dev/null) || rc=$?
	[ "$rc" = 1 ] && [[ $err == *"cannot connect to PostgreSQL"* ]] || fail "unreachable database, $c: $rc $err"
done

# --retry-for: a change waits out a server that refuses connections (a
# failover), then fails as before; a wrong password or option fails at once.
rc=0
t0=$SECONDS
err=$("$LARSCTL" --db "host=127.0.0.1 port=1 connect_timeout=2" --retry-for 2 route add 1 1 10.0.0.1 80 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ $err == *"trying again for up to 2 s"* ]] && [[ $err == *"cannot connect to PostgreSQL"* ]] ||
	fail "--retry-for 2 on a refused server: $rc $err"
[ $((SECONDS - t0)) -ge 1 ] && [ $((SECONDS - t0)) -le 15 ] || fail "--retry-for 2 took $((SECONDS - t0)) s"
rc=0
err=$("$LARSCTL" --db "host=127.0.0.1 nosuchoption=1" --retry-for 30 route add 1 1 10.0.0.1 80 2>&1) || rc=$?
[ "$rc" = 1 ] && [[ $err != *"trying again"* ]] || fail "a bad conninfo was retried: $rc $err"
for bad in x -1 3601 ""; do
	rc=0
	"$LARSCTL" --retry-for "$bad" route add 1 1 10.0.0.1 80 >/dev/null 2>&1 || rc=$?
	[ "$rc" = 2 ] || fail "--retry-for '$bad' exited $rc, want 2"
done

[ "$fails" = 0 ] || exit 1
echo "larsctl: all checks passed"
