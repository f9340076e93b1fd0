#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The console in a real browser: lars-dns and lars-admin on a database of
# their own in the throwaway cluster, a lars-dns-watch subscriber, and
# console.mjs driving headless Chromium (playwright-core) through the pages.
#
#   run.sh SRC_ROOT BUILD_ROOT      (meson test admin-browser)
#
# Skips (77) without PostgreSQL (LARS_TEST_PG), and without Chromium, node or
# tests/browser/node_modules unless CI=true, where that is a failure
# (deploy/lars-local test installs them). Screenshots: BUILD_ROOT/meson-logs/
# admin-screenshots/. Everything listens on 127.0.0.1 only.
set -euo pipefail
SRC=$(cd "$1" && pwd)
BUILD=$(cd "$2" && pwd)
HERE=$SRC/tests/browser
CHROMIUM=${LARS_CHROMIUM:-/usr/bin/chromium}

if [ -z "${LARS_TEST_PG:-}" ]; then
	echo "no PostgreSQL for this run (deploy/lars-local test provides one)"
	exit 77
fi
missing=
[ -x "$CHROMIUM" ] || missing="$missing chromium ($CHROMIUM)"
command -v node >/dev/null 2>&1 || missing="$missing node"
[ -f "$HERE/node_modules/playwright-core/package.json" ] ||
	missing="$missing $HERE/node_modules/playwright-core (cd tests/browser && npm ci)"
if [ -n "$missing" ]; then
	echo "missing:$missing"
	echo "hint: deploy/lars-local test installs them"
	[ "${CI:-}" = true ] && exit 1
	exit 77
fi

LARS_DNS=$BUILD/dns_svc/lars-dns
LARS_ADMIN=$BUILD/admin_svc/lars-admin
LARSCTL=$BUILD/larsctl/larsctl
WATCH=$BUILD/tests/tools/lars-dns-watch
for b in "$LARS_DNS" "$LARS_ADMIN" "$LARSCTL" "$WATCH"; do
	[ -x "$b" ] || { echo "FAIL: $b is not built"; exit 1; }
done

# A database of our own (dropped on exit by drop_test_db).
. "$SRC/tests/lib/pg-testdb.sh"
. "$SRC/tests/lib/wait.sh"

TMP=$(mktemp -d /tmp/lars-browser.XXXXXX)
SHOTS=$BUILD/meson-logs/admin-screenshots
mkdir -p "$SHOTS"
rm -f "$SHOTS"/*.png

declare -A PIDS=() # name -> pid of what we started
DAEMONS=(admin admin2 dns) # stopped in this order, and must exit 0 at SIGTERM

# Stop what we started: the watcher first, then each daemon with SIGTERM,
# waiting (bounded) for it to exit, which must be with status 0 (a sanitizer
# report at exit is a failure). Then the database and the temp dir.
cleanup() {
	local rc=$? name pid st bad=0
	trap - EXIT
	if [ -n "${PIDS[watch]:-}" ]; then
		kill -TERM "${PIDS[watch]}" 2>/dev/null || true
		wait "${PIDS[watch]}" 2>/dev/null || true
	fi
	for name in "${DAEMONS[@]}"; do
		pid=${PIDS[$name]:-}
		[ -n "$pid" ] || continue
		if ! kill -TERM "$pid" 2>/dev/null; then
			echo "FAIL: lars-$name (pid $pid) was already gone"
			bad=1
		fi
		if ! wait_for 15 exited "$pid"; then
			echo "FAIL: lars-$name (pid $pid) still runs 15 s after SIGTERM; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			bad=1
		fi
		st=0
		wait "$pid" 2>/dev/null || st=$?
		if [ "$st" != 0 ]; then
			echo "FAIL: lars-$name exited $st at SIGTERM"
			bad=1
		fi
	done
	if [ "$rc" != 0 ] || [ "$bad" != 0 ]; then
		for name in dns admin admin2 watch; do
			[ -s "$TMP/$name.log" ] || continue
			echo "---- last lines of lars-$name's log ----"
			tail -n 40 "$TMP/$name.log"
		done
		if [ -s "$TMP/watch.out" ]; then
			echo "---- lars-dns-watch output ----"
			cat "$TMP/watch.out"
		fi
	fi
	drop_test_db
	rm -rf "$TMP"
	[ "$bad" = 0 ] || exit 1
	exit "$rc"
}
trap cleanup EXIT
exited() { # exited PID: gone or a zombie (not reaped yet)
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
	[[ $st == Z* ]]
}

# start NAME BIN CONF KEY: run a daemon with --ready-fd, wait for its ready
# line and print the port named KEY in it.
start() {
	local name=$1 bin=$2 conf=$3 key=$4 ready=$TMP/$1.ready port
	: >"$ready"
	"$bin" -c "$conf" --ready-fd 3 3>"$ready" </dev/null >"$TMP/$name.log" 2>&1 &
	PIDS[$name]=$!
	local end=$(( $(now_ms) + 30000 )) # 30 s: sanitizer builds start slowly
	while [ "$(now_ms)" -lt "$end" ]; do
		if [ -s "$ready" ]; then
			port=$(sed -n "s/.*\b$key=\([0-9]*\).*/\1/p" "$ready" | head -n 1)
			[ -n "$port" ] || { echo "FAIL: lars-$name ready line has no $key=: $(cat "$ready")" >&2; return 1; }
			echo "$port"
			return 0
		fi
		if exited "${PIDS[$name]}"; then
			local st=0
			wait "${PIDS[$name]}" || st=$?
			unset "PIDS[$name]"
			echo "FAIL: lars-$name exited ($st) before it was ready" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "FAIL: lars-$name not ready within 30 s" >&2
	return 1
}

"$LARSCTL" migrate >"$TMP/migrate.log" 2>&1 || { cat "$TMP/migrate.log"; echo "FAIL: larsctl migrate"; exit 1; }

# A fleet to page, sort and search (issue 25): modid 7000, cmdid 1..5000,
# host 10.70.C/256.C%256:7000 each, and 10.77.0.1:7001 also in 7000/10, /20
# and /30; 7000/20's host there failing, 7000/4000's overloaded.
FLEET_MODID=7000 FLEET_ROUTES=5000 FLEET_IP=10.77.0.1
psql -X -q -v ON_ERROR_STOP=1 -c "
INSERT INTO route_data (modid, cmdid, ip, port)
  SELECT $FLEET_MODID, c, ('10.70.' || c / 256 || '.' || c % 256)::inet, 7000
  FROM generate_series(1, $FLEET_ROUTES) c
  UNION ALL SELECT $FLEET_MODID, c, '$FLEET_IP', 7001 FROM unnest('{10,20,30}'::int[]) c;
INSERT INTO host_status VALUES
 ($FLEET_MODID, 20, '$FLEET_IP', 7001, '10.9.0.1', 5, 45, false, now(), now()),
 ($FLEET_MODID, 4000, '10.70.15.160', 7000, '10.9.0.1', 50, 0, true, now(), now())" ||
	{ echo "FAIL: cannot insert the fleet"; exit 1; }

PASS=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
echo "$PASS" | "$LARSCTL" admin-user add tester --users-file "$TMP/users" >/dev/null
RPASS=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
echo "$RPASS" | "$LARSCTL" admin-user add viewer --role read --users-file "$TMP/users" >/dev/null

printf '[dns]\nip = 127.0.0.1\nport = 0\n' >"$TMP/dns.ini"
printf '[admin]\nip = 127.0.0.1\nport = 0\nusers_file = %s\nassets_dir = %s\n' \
	"$TMP/users" "$SRC/admin_svc/www" >"$TMP/admin.ini"

# start's PIDS entry must be made in this shell, not a $(...) subshell.
start dns "$LARS_DNS" "$TMP/dns.ini" tcp >"$TMP/dns.port"
DNS_PORT=$(cat "$TMP/dns.port")
start admin "$LARS_ADMIN" "$TMP/admin.ini" http >"$TMP/admin.port"
ADMIN_PORT=$(cat "$TMP/admin.port")
# A second console whose sessions end after 2 s unused (session expiry).
printf 'session_idle = 2\n' | cat "$TMP/admin.ini" - >"$TMP/admin2.ini"
start admin2 "$LARS_ADMIN" "$TMP/admin2.ini" http >"$TMP/admin2.port"
ADMIN2_PORT=$(cat "$TMP/admin2.port")
echo "lars-dns on 127.0.0.1:$DNS_PORT, lars-admin on 127.0.0.1:$ADMIN_PORT"

MODID=4242 CMDID=7 HOST_PORT=9701
# What lars-reporter would have stored about the host console.mjs adds
# (host_status needs no route row): its latest status, and call latency
# (buckets of deploy/sql/006_report_acks.sql) 30-28 minutes ago (a line),
# 20 minutes ago (a minute alone: a dot) and 2 minutes ago (a dot; within
# status_max_age, 600 s, so the hosts table shows it): 4 calls of 2-5 ms,
# sum 8000 us, so mean 2.00 ms and p99 2000 + 3000 * 3.96 / 4 = 4970 us.
lat_row() { # lat_row MINUTES_AGO COUNT SUM_US BUCKETS
	printf "(date_trunc('minute', now()) - interval '%d min', %d, %d, '127.0.0.1', %d, '10.9.0.1', %d, 0, %d, %d, '%s')" \
		"$1" "$MODID" "$CMDID" "$HOST_PORT" "$2" "$2" "$3" "$4"
}
psql -X -q -v ON_ERROR_STOP=1 -c "INSERT INTO host_status VALUES
 ($MODID, $CMDID, '127.0.0.1', $HOST_PORT, '10.9.0.1', 10, 0, false, now(), now());
INSERT INTO host_status_history
 (minute, modid, cmdid, ip, port, caller, succ, err, lat_count, lat_sum_us, lat_buckets) VALUES
 $(lat_row 30 2 1000 '{0,2,0,0,0,0,0,0,0,0,0,0,0}'), $(lat_row 29 1 30000 '{0,0,0,0,0,0,1,0,0,0,0,0,0}'),
 $(lat_row 28 2 3000 '{0,0,2,0,0,0,0,0,0,0,0,0,0}'), $(lat_row 20 1 600000 '{0,0,0,0,0,0,0,0,0,0,1,0,0}'),
 $(lat_row 2 4 8000 '{0,0,0,4,0,0,0,0,0,0,0,0,0}')" ||
	{ echo "FAIL: cannot insert the status rows"; exit 1; }
"$WATCH" --ip 127.0.0.1 --port "$DNS_PORT" --timeout 200 "$MODID" "$CMDID" \
	>"$TMP/watch.out" 2>"$TMP/watch.log" &
PIDS[watch]=$!
# Subscribed once the first answer (the empty route) is there.
watch_answered() { [ -s "$TMP/watch.out" ] || exited "${PIDS[watch]}"; }
wait_for 10 watch_answered || true
first=$(head -n 1 "$TMP/watch.out")
[ "$first" = "route $MODID $CMDID 0 -" ] || { echo "FAIL: lars-dns-watch's first answer: '$first'"; exit 1; }

t0=$(date +%s)
LARS_ADMIN_URL=http://127.0.0.1:$ADMIN_PORT LARS_ADMIN_USER=tester LARS_ADMIN_PASS=$PASS \
	LARS_ADMIN_READ_USER=viewer LARS_ADMIN_READ_PASS=$RPASS \
	LARS_ADMIN_SHORT_URL=http://127.0.0.1:$ADMIN2_PORT \
	LARS_WATCH_OUT=$TMP/watch.out LARS_SHOT_DIR=$SHOTS LARS_CHROMIUM=$CHROMIUM \
	LARS_MODID=$MODID LARS_CMDID=$CMDID LARS_HOST_PORT=$HOST_PORT \
	LARS_FLEET_MODID=$FLEET_MODID LARS_FLEET_ROUTES=$FLEET_ROUTES LARS_FLEET_IP=$FLEET_IP \
	LARS_LAT_MEAN_MS=2.00 LARS_LAT_P99_MS=4.97 LARS_LAT_RUNS=1 LARS_LAT_DOTS=2 \
	node "$HERE/console.mjs" </dev/null
echo "console.mjs took $(($(date +%s) - t0)) s; screenshots in $SHOTS"
# The console logs who made each write (issue 24.8).
grep -q "admin: added $MODID/$CMDID 127.0.0.1:$HOST_PORT (route version [0-9]*) (by tester (console, 127.0.0.1" "$TMP/admin.log" ||
	{ echo "FAIL: the console's log does not name the user of the add"; grep 'admin: ' "$TMP/admin.log" | tail -5; exit 1; }
