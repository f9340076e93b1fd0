#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# deploy/pg-cluster's cluster as another local user sees it, and what the
# services' role may do:
#  (a) the password file is 0600; without it no role logs in (as this user,
#      and as root also as user nobody, who cannot read the file either);
#  (b) after `larsctl migrate` the services' role `lars` is no superuser, may
#      not COPY ... TO PROGRAM or read server files, create tables, drop or
#      truncate them; it may do what lars-dns, lars-reporter and lars-admin do
#      (a route added through the same code as the console's, the reporter's
#      writes and prunes).
set -euo pipefail
ROOT=$1
LARSCTL=$2
[ -n "${LARS_TEST_PG:-}" ] || { echo "no PostgreSQL for this run (deploy/lars-local test)"; exit 77; }
CLUSTER=$ROOT/deploy/pg-cluster
dir=$(mktemp -d /tmp/lars-pgauth.XXXXXX)
chmod 755 "$dir"
trap '"$CLUSTER" stop "$dir/pg" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSFILE PGPASSWORD
eval "$("$CLUSTER" start "$dir/pg")"
if [ -z "${PGPASSFILE:-}" ]; then
	fail "(a) pg-cluster printed no PGPASSFILE"
	export PGPASSFILE=$dir/none
	: >"$PGPASSFILE"
	chmod 600 "$PGPASSFILE"
fi
[ "$(stat -c %a "$PGPASSFILE")" = 600 ] || fail "(a) $PGPASSFILE has mode $(stat -c %a "$PGPASSFILE")"

# (a) no password, no login (-w: never prompt)
for role in postgres lars_owner lars; do
	if PGPASSFILE=/nonexistent psql -X -w -h 127.0.0.1 -p "$PGPORT" -U "$role" -d lars -c 'SELECT 1' >/dev/null 2>&1; then
		fail "(a) $role logged in without the password"
	fi
done
if [ "$(id -u)" = 0 ] && id -u nobody >/dev/null 2>&1; then
	for role in postgres lars_owner lars; do
		if runuser -u nobody -- env -i PATH="$PATH" psql -X -w -h 127.0.0.1 -p "$PGPORT" -U "$role" -d lars \
			-c "COPY (SELECT 1) TO PROGRAM 'id'" >/dev/null 2>&1; then
			fail "(a) user nobody logged in as $role"
		fi
		if runuser -u nobody -- env -i PATH="$PATH" PGPASSFILE="$PGPASSFILE" psql -X -w -h 127.0.0.1 \
			-p "$PGPORT" -U "$role" -d lars -c 'SELECT 1' >/dev/null 2>&1; then
			fail "(a) user nobody logged in as $role with the password file"
		fi
	done
	runuser -u nobody -- cat "$PGPASSFILE" >/dev/null 2>&1 && fail "(a) user nobody read $PGPASSFILE"
else
	echo "not root: the user-nobody checks are skipped"
fi

# (b) the services' role
"$LARSCTL" migrate >/dev/null
svc() { PGUSER=lars psql -X -w -At -v ON_ERROR_STOP=1 -c "$1" 2>&1; }
refused() { # refused SQL: lars may not
	local out
	if out=$(svc "$1"); then fail "(b) lars may: $1 ($out)"; fi
}
[ "$(svc 'SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls FROM pg_roles WHERE rolname = current_user')" = f ] ||
	fail "(b) lars has a superuser-like attribute"
[ "$(svc "SELECT pg_has_role('lars', 'pg_execute_server_program', 'USAGE') OR pg_has_role('lars', 'pg_read_server_files', 'USAGE') OR pg_has_role('lars', 'pg_write_server_files', 'USAGE')")" = f ] ||
	fail "(b) lars may use server programs or files"
refused "COPY (SELECT 1) TO PROGRAM 'id'"
refused "SELECT pg_read_file('PG_VERSION')"
refused "CREATE TABLE lars_rogue (x int)"
refused "TRUNCATE route_data"
refused "DROP TABLE host_status"
refused "ALTER TABLE route_data DISABLE TRIGGER USER"
refused "DELETE FROM route_version"
# What the services do, as lars.
PGUSER=lars "$LARSCTL" route add 7 1 127.0.0.7 9071 >/dev/null || fail "(b) lars cannot add a route (the console's write)"
PGUSER=lars "$LARSCTL" route del 7 1 127.0.0.7 9071 >/dev/null || fail "(b) lars cannot remove a route"
for q in "SELECT count(*) FROM route_data" "SELECT version FROM route_version" \
	"SELECT count(*) FROM route_change" "SELECT count(*) FROM modid_config" \
	"DELETE FROM route_change WHERE changed_at < now() - interval '7 days'" \
	"INSERT INTO host_status (modid, cmdid, ip, port, caller, succ, err, overload, ts) VALUES (7, 1, '127.0.0.7', 9071, '127.0.0.1', 1, 0, false, now()) ON CONFLICT (modid, cmdid, ip, port, caller) DO UPDATE SET succ = EXCLUDED.succ WHERE host_status.ts <= EXCLUDED.ts" \
	"INSERT INTO host_status_history (minute, modid, cmdid, ip, port, caller, succ, err) VALUES (date_trunc('minute', now()), 7, 1, '127.0.0.7', 9071, '127.0.0.1', 1, 0) ON CONFLICT (minute, modid, cmdid, ip, port, caller) DO UPDATE SET succ = host_status_history.succ + EXCLUDED.succ" \
	"DELETE FROM host_status_history WHERE minute < now() - interval '7 days'" \
	"CREATE TEMP TABLE stage (x int)" \
	"LISTEN lars_route"; do
	out=$(svc "$q") || fail "(b) lars may not: $q ($out)"
done

[ "$fails" = 0 ] || exit 1
echo "pg-cluster: passwords required, the services' role confined"
