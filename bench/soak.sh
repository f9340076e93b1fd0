#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# soak: the whole system under traffic for a while: `lars bench` (get_host +
# report, 2 threads) minute after minute, a route change every second, all
# through deploy/lars-local in a scratch directory. Prints RSS of each
# service after warm-up and at the end (growth over 10% fails), errors (any
# fails) and p99 latency per minute.
#   bench/soak.sh [SECONDS]   default 600; CI runs 60
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-600}
[ "$SECS" -ge 30 ] && [ "$SECS" -le 86400 ] || { echo "soak: SECONDS 30..86400"; exit 64; }
export LARS_BUILD_DIR=${LARS_BUILD_DIR:-$ROOT/build} LARS_LOCAL_NO_BUILD=1
export LARS_LOCAL_DIR; LARS_LOCAL_DIR=$(mktemp -d /tmp/lars-soak.XXXXXX)
unset PGHOST PGPORT PGUSER PGDATABASE LARS_AGENT
LOCAL=$ROOT/deploy/lars-local
changer=
cleanup() {
	[ -n "$changer" ] && kill "$changer" 2>/dev/null || true
	"$LOCAL" down >/dev/null 2>&1 || true
	rm -rf "$LARS_LOCAL_DIR"
}
trap cleanup EXIT

"$LOCAL" up >/dev/null
env=$("$LOCAL" env) || { echo "soak: lars-local env failed"; exit 1; }
eval "$env"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$(cat "$LARS_LOCAL_DIR/run/$1.pid")/status"; }

# A route change every second for the whole run (bounded by time).
(
	end=$(( $(date +%s) + SECS + 30 ))
	i=0
	while [ "$(date +%s)" -lt "$end" ]; do
		larsctl route add 1 1 127.0.0.9 $((20000 + i % 50)) >/dev/null 2>&1 || true
		larsctl route del 1 1 127.0.0.9 $((20000 + (i + 25) % 50)) >/dev/null 2>&1 || true
		i=$((i + 1))
		sleep 1
	done
) &
changer=$!

lars bench --threads 2 --seconds 15 >/dev/null   # warm-up
declare -A start
for s in dns reporter agent; do start[$s]=$(rss "$s"); done

errors=0
minutes=$(( (SECS + 59) / 60 ))
printf '%-8s %12s %10s %10s\n' MINUTE AVG_QPS P99_US ERRORS
for m in $(seq 1 "$minutes"); do
	left=$(( SECS - (m - 1) * 60 ))
	secs=$(( left < 60 ? left : 60 ))
	line=$(lars bench --threads 2 --seconds "$secs" | tail -n 1)
	qps=$(sed -n 's/.*average \([0-9]*\) qps.*/\1/p' <<<"$line")
	p99=$(sed -n 's/.*p99 \([0-9]*\) us.*/\1/p' <<<"$line")
	err=$(sed -n 's/.*errors \([0-9]*\).*/\1/p' <<<"$line")
	printf '%-8s %12s %10s %10s\n' "$m" "$qps" "$p99" "$err"
	errors=$((errors + err))
done

fail=0
printf '%-14s %12s %12s %8s\n' SERVICE RSS_START_KB RSS_END_KB GROWTH
for s in dns reporter agent; do
	end=$(rss "$s")
	growth=$(( (end - start[$s]) * 100 / start[$s] ))
	printf '%-14s %12s %12s %7s%%\n' "lars-$s" "${start[$s]}" "$end" "$growth"
	[ "$growth" -le 10 ] || fail=1
done
echo "errors: $errors"
[ "$errors" = 0 ] || fail=1
[ "$fail" = 0 ] && echo "soak: passed" || { echo "soak: FAILED"; exit 1; }
