#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# deploy/prometheus (issue 24.9): the scrape configuration and the alert
# rules are valid for promtool, the rules' unit tests pass, every metric the
# rules name is one a daemon exports, and the scrape targets use the fixed
# metrics ports the daemons default to.
set -euo pipefail
SRC=$1
D=$SRC/deploy/prometheus
command -v promtool >/dev/null || { echo "FAIL: no promtool (apt install prometheus)"; exit 1; }
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cp "$D"/*.yml "$W/"
(cd "$W" && promtool check config prometheus.yml >"$W/out" 2>&1) || fail "check config: $(cat "$W/out")"
(cd "$W" && promtool check rules lars-alerts.yml >"$W/out" 2>&1) || fail "check rules: $(cat "$W/out")"
(cd "$W" && promtool test rules lars-alerts.test.yml >"$W/out" 2>&1) || fail "test rules: $(cat "$W/out")"
# Metric names in the rules, without the histogram suffixes.
for m in $(grep -oE '\blars_[a-z_]+' "$D/lars-alerts.yml" | sed -E 's/_(bucket|count|sum)$//' | sort -u); do
	grep -rqF "\"$m\"" "$SRC/common" "$SRC/dns_svc" "$SRC/report_svc" "$SRC/agent_svc" "$SRC/admin_svc" ||
		grep -qF "\`$m" "$SRC/deploy/README.md" || fail "the rules name $m, which nothing exports"
done
for p in lars-dns:9778 lars-reporter:9779 lars-admin:9780; do
	grep -A3 "job_name: ${p%%:*}\$" "$D/prometheus.yml" | grep -q ":${p##*:}'" ||
		fail "job ${p%%:*} does not scrape port ${p##*:}"
	grep -q "fixed port, ${p##*:}," "$SRC/deploy/conf/${p%%:*}.ini" || fail "${p%%:*}.ini does not say ${p##*:}"
done
[ "$fails" = 0 ] || exit 1
echo "prometheus: config, rules and rule tests pass"
