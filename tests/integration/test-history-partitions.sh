#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# host_status_history partitioned by day (issue 18.6, deploy/sql/007):
#  (a) the migration converts a table holding rows of many days: every row,
#      sum and latency column kept, a partition per day, the DEFAULT empty;
#  (b) a row of a day without a partition lands in DEFAULT, and creating
#      that day's partition (as the services' role, through the function the
#      reporter calls) moves it there;
#  (c) lars-reporter at start creates the partitions of the coming days and
#      drops the days wholly older than [reporter] history_days, keeping
#      the others; the rows it removed are counted in its metric.
#   test-history-partitions.sh LARSCTL LARS_REPORTER
set -euo pipefail
LARSCTL=$1 REPORTER=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$SRC/tests/lib/pg-testdb.sh"
. "$SRC/tests/lib/wait.sh"
TMP=$(mktemp -d /tmp/lars-test-hist.XXXXXX)
RPID=
cleanup() {
	[ -z "$RPID" ] || kill "$RPID" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$TMP"
	drop_test_db
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
q() { psql -X -w -At -v ON_ERROR_STOP=1 -c "$1"; }
svc() { PGUSER=lars psql -X -w -At -v ON_ERROR_STOP=1 -c "$1"; }
day() { q "SELECT to_char((now() AT TIME ZONE 'UTC')::date + ($1), 'YYYYMMDD')"; }

# (a) The schema as it was before 007, with rows 10 and 3 days ago, today
# and (a forged time) 2 days ahead.
q "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
   applied_at timestamptz NOT NULL DEFAULT now())" >/dev/null
for f in "$SRC"/deploy/sql/00[1-6]_*.sql; do
	psql -X -w -q -v ON_ERROR_STOP=1 -1 -f "$f" >/dev/null || { fail "applying $f"; exit 1; }
	n=$(basename "$f" .sql)
	q "INSERT INTO schema_migrations (version, name) VALUES (${n%%_*}::int, '${n#*_}')" >/dev/null
done
q "INSERT INTO host_status_history (minute, modid, cmdid, ip, port, caller, succ, err,
       lat_count, lat_sum_us, lat_buckets)
   SELECT date_trunc('minute', now()) - make_interval(days => d) - make_interval(mins => m),
          1, 1, '127.0.0.1', 9000 + m % 3, '10.0.0.1', 10 + m, m % 4, 2, 3000,
          '{0,0,1,1,0,0,0,0,0,0,0,0,0}'
   FROM unnest(ARRAY[10, 3, 0, -2]) AS d, generate_series(0, 49) AS m" >/dev/null
before=$(q "SELECT count(*), sum(succ), sum(err), sum(lat_count), sum(p99_us) FROM host_status_history")
out=$("$LARSCTL" migrate) || fail "(a) migrate: $out"
[[ $out == *"007"* ]] || fail "(a) migrate did not apply 007: $out"
after=$(q "SELECT count(*), sum(succ), sum(err), sum(lat_count), sum(p99_us) FROM host_status_history")
[ "$before" = "$after" ] || fail "(a) rows changed: $before before, $after after"
[ "$(q "SELECT relkind FROM pg_class WHERE relname = 'host_status_history'")" = p ] ||
	fail "(a) host_status_history is not partitioned"
[ "$(q 'SELECT count(*) FROM host_status_history_default')" = 0 ] ||
	fail "(a) rows left in the DEFAULT partition"
# Each row in the partition of its UTC day, and those partitions exist.
[ "$(q "SELECT count(*) FROM host_status_history
        WHERE tableoid::regclass::text <> 'host_status_history_' ||
              to_char((minute AT TIME ZONE 'UTC')::date, 'YYYYMMDD')")" = 0 ] ||
	fail "(a) a row outside its day's partition"
for d in -10 -3 0 1 2 3; do
	[ -n "$(q "SELECT to_regclass('host_status_history_$(day "$d")')")" ] ||
		fail "(a) no partition for day $d"
done
echo "(a) 007 moved $(cut -d'|' -f1 <<<"$after") rows of 4 days into partitions, sums kept"

# (b) A day without a partition: the DEFAULT partition takes the row, and
# the function the reporter runs (as role lars) moves it into the new day.
far=$(day 20)
svc "INSERT INTO host_status_history (minute, modid, cmdid, ip, port, caller, succ, err)
     VALUES (date_trunc('minute', now()) + interval '20 days', 1, 1, '127.0.0.1', 9001,
             '10.0.0.2', 5, 1)" >/dev/null || fail "(b) lars cannot write a day without a partition"
[ "$(q 'SELECT count(*) FROM host_status_history_default')" = 1 ] || fail "(b) DEFAULT did not take the row"
res=$(svc "SELECT created FROM lars_history_maintain(21, 36500)") || fail "(b) lars cannot run lars_history_maintain: $res"
[ "$(q 'SELECT count(*) FROM host_status_history_default')" = 0 ] || fail "(b) the row stayed in DEFAULT"
[ "$(q "SELECT tableoid::regclass FROM host_status_history WHERE caller = '10.0.0.2'")" = "host_status_history_$far" ] ||
	fail "(b) the row is not in host_status_history_$far"
# The services' role may not change partitions itself.
if svc "DROP TABLE host_status_history_$far" >/dev/null 2>&1; then fail "(b) lars dropped a partition directly"; fi
# Back to three days ahead for (c); one of them missing, as after midnight.
for d in $(seq 4 21); do q "DROP TABLE IF EXISTS host_status_history_$(day "$d")" >/dev/null; done
q "DROP TABLE host_status_history_$(day 3)" >/dev/null

# (c) The reporter at start: 5 days kept, so the day 10 days ago goes, the
# day 3 days ago stays, and today + 3 is created again.
old_rows=$(q "SELECT count(*) FROM host_status_history_$(day -10)")
# And the forged rows 2 days ahead (beyond the clock + skew): deleted too.
future_rows=$(q "SELECT count(*) FROM host_status_history WHERE minute > now() + interval '1 day'")
want=$((old_rows + future_rows))
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/rep.ini" <<CONF
[reporter]
port = 0
history_days = 5
[metrics]
enabled = true
port = $mport
CONF
PGUSER=lars "$REPORTER" -c "$TMP/rep.ini" >"$TMP/rep.log" 2>&1 &
RPID=$!
end=$((SECONDS + 30))
while [ $SECONDS -lt $end ]; do
	[ -n "$(q "SELECT to_regclass('host_status_history_$(day 3)')")" ] &&
		[ -z "$(q "SELECT to_regclass('host_status_history_$(day -10)')")" ] && break
	sleep 0.1
done
[ -n "$(q "SELECT to_regclass('host_status_history_$(day 3)')")" ] || fail "(c) the reporter created no partition ahead"
[ -z "$(q "SELECT to_regclass('host_status_history_$(day -10)')")" ] || fail "(c) the day 10 days ago was not dropped"
[ -n "$(q "SELECT to_regclass('host_status_history_$(day -3)')")" ] || fail "(c) the day 3 days ago was dropped"
[ "$(q "SELECT count(*) FROM host_status_history WHERE minute < now() - interval '5 days'")" = 0 ] ||
	fail "(c) rows older than the retention are left"
pruned=
end=$((SECONDS + 10))
while [ $SECONDS -lt $end ]; do
	pruned=$(curl -s "http://127.0.0.1:$mport/metrics" | sed -n 's/^lars_reporter_history_pruned_total \([0-9]*\).*/\1/p')
	[ "$pruned" = "$want" ] && break
	sleep 0.1
done
[ "$pruned" = "$want" ] || fail "(c) lars_reporter_history_pruned_total is '$pruned', not $want"
[ "$(q "SELECT count(*) FROM host_status_history WHERE minute > now() + interval '1 day'")" = 0 ] ||
	fail "(c) rows dated ahead of the clock are left"
grep -q "day partitions" "$TMP/rep.log" || fail "(c) the reporter logged no partition drop"
echo "(c) the reporter dropped the partition 10 days old ($old_rows rows), deleted $future_rows rows dated ahead, created the days ahead"
kill -TERM "$RPID"
wait "$RPID" || fail "lars-reporter exited $? at SIGTERM"
RPID=

# Readers unchanged: larsctl reads the history through the parent.
"$LARSCTL" status --history 10000 1 1 >"$TMP/hist" || fail "larsctl status --history failed"
grep -q "^" "$TMP/hist" || fail "larsctl status --history printed nothing"

[ "$fails" = 0 ] || { echo "$fails failure(s)"; tail -n 20 "$TMP/rep.log"; exit 1; }
echo "all history partition checks passed"
