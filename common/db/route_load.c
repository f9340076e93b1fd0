// SPDX-License-Identifier: MIT
// Reading routes from PostgreSQL into snapshots (DB worker threads only).
#include "route_load.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg_conn.h"
#include "xalloc.h"

#define FETCH_ROWS "50000"

int route_version_read(PGconn *conn, int64_t *versionp)
{
	PGresult *res = pg_exec(conn, "SELECT version FROM route_version WHERE id = 1",
				0, NULL, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	*versionp = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return 0;
}

/* What each row of route_data gives lars-dns: the host with its traffic
 * fields and its route's policy (migration 008); ROUTE_FROM names d and c.
 * (d.ip - '0.0.0.0') is the IPv4 address as the number a<<24|b<<16|c<<8|d. */
#define ROUTE_COLS                                                              \
	"d.modid, d.cmdid, (d.ip - '0.0.0.0'::inet), d.port, d.weight, d.drain, " \
	"CASE WHEN c.slow_start_s > 0 THEN extract(epoch FROM d.created_at)::bigint END, " \
	"c.panic_threshold, coalesce(c.max_ejection_percent, 100), coalesce(c.slow_start_s, 0)"
#define ROUTE_FROM "route_data d LEFT JOIN cmdid_config c USING (modid, cmdid)"

static long col_long(const PGresult *res, int row, int col)
{
	return strtol(PQgetvalue(res, row, col), NULL, 10);
}

/* Rows of ROUTE_COLS into @b, in wire form: each field at its default is
 * 0 (not sent), the join time only for a route with slow start. */
static void add_rows(snap_builder_t *b, const PGresult *res)
{
	int n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		int32_t modid = (int32_t)col_long(res, i, 0);
		int32_t cmdid = (int32_t)col_long(res, i, 1);
		lars_RoutePolicy p = lars_RoutePolicy_init_zero;
		if (!PQgetisnull(res, i, 7)) {
			p.has_panic_threshold = true;
			p.panic_threshold = (uint32_t)col_long(res, i, 7);
		}
		long ej = col_long(res, i, 8);
		p.max_ejection_percent = ej == 100 ? 0 : (uint32_t)ej;
		p.slow_start_s = (uint32_t)col_long(res, i, 9);
		long w = col_long(res, i, 4);
		lars_HostInfo h = {
			.ip = (int32_t)(uint32_t)strtoull(PQgetvalue(res, i, 2), NULL, 10),
			.port = (int32_t)col_long(res, i, 3),
			.weight = w == 100 ? 0 : (uint32_t)w,
			.drain = PQgetvalue(res, i, 5)[0] == 't',
			/* NULL (read as 0) unless the route has slow start. */
			.joined_at = p.slow_start_s ? strtoll(PQgetvalue(res, i, 6), NULL, 10) : 0,
		};
		snap_builder_add_host(b, modid, cmdid, &h, &p);
	}
}

/* Inside a transaction: all of route_data, through a cursor so the client
 * never holds more than one batch of rows as text. */
static int load_all_rows(PGconn *conn, snap_builder_t *b)
{
	if (pg_cmd(conn, "DECLARE lars_routes NO SCROLL CURSOR FOR "
		      "SELECT " ROUTE_COLS " FROM " ROUTE_FROM))
		return -EIO;
	for (;;) {
		PGresult *res = pg_exec(conn, "FETCH FORWARD " FETCH_ROWS " FROM lars_routes",
					0, NULL, PGRES_TUPLES_OK);
		if (!res)
			return -EIO;
		int n = PQntuples(res);
		add_rows(b, res);
		PQclear(res);
		if (n == 0)
			break;
	}
	return pg_cmd(conn, "CLOSE lars_routes");
}

/* "{1,2,3}": the modids (or cmdids) of @keys as a PostgreSQL array literal. */
static char *keys_array(const snap_keys_t *keys, bool modids)
{
	size_t cap = 2 + keys->n * 12, len = 0;
	char *s = xmalloc(cap);
	s[len++] = '{';
	for (size_t i = 0; i < keys->n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s%d", i ? "," : "",
					modids ? keys->v[i].modid : keys->v[i].cmdid);
	s[len++] = '}';
	s[len] = '\0';
	return s;
}

/* Rows of (modid, cmdid, version) into @s's routes. */
static void set_versions(snapshot_t *s, const PGresult *res)
{
	for (int i = 0; i < PQntuples(res); i++)
		snapshot_set_version(s, (int32_t)col_long(res, i, 0), (int32_t)col_long(res, i, 1),
				     strtoll(PQgetvalue(res, i, 2), NULL, 10));
}

/* Inside the load's transaction: each route's version, the newest of its
 * change records (0 for a route whose records were pruned). */
static int load_versions(PGconn *conn, snapshot_t *s)
{
	if (pg_cmd(conn, "DECLARE lars_versions NO SCROLL CURSOR FOR "
		      "SELECT modid, cmdid, max(version) FROM route_change GROUP BY modid, cmdid"))
		return -EIO;
	for (;;) {
		PGresult *res = pg_exec(conn, "FETCH FORWARD " FETCH_ROWS " FROM lars_versions",
					0, NULL, PGRES_TUPLES_OK);
		if (!res)
			return -EIO;
		int n = PQntuples(res);
		set_versions(s, res);
		PQclear(res);
		if (n == 0)
			break;
	}
	return pg_cmd(conn, "CLOSE lars_versions");
}

int route_load_full(PGconn *conn, snapshot_t **outp)
{
	snap_builder_t b;
	int64_t version;

	snap_builder_init(&b);
	if (pg_cmd(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
		return -EIO;
	if (route_version_read(conn, &version) || load_all_rows(conn, &b)) {
		pg_cmd(conn, "ROLLBACK");
		snap_builder_deinit(&b);
		return -EIO;
	}
	snapshot_t *s = snapshot_build(&b, version);
	if (load_versions(conn, s) || pg_cmd(conn, "COMMIT")) {
		pg_cmd(conn, "ROLLBACK");
		snapshot_free(s);
		return -EIO;
	}
	*outp = s;
	return 0;
}

int route_load_changes(PGconn *conn, const snapshot_t *old, snapshot_t **outp,
		       snap_keys_t *changed, bool *fullp)
{
	int64_t version;
	snap_builder_t b;
	snap_keys_t keys = { 0 };
	char from[24], to[24];
	const char *params[2] = { from, to };
	PGresult *res;

	*outp = NULL;
	*fullp = false;
	snap_builder_init(&b);
	if (pg_cmd(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
		return -EIO;
	if (route_version_read(conn, &version))
		goto fail;
	if (version == old->version)
		return pg_cmd(conn, "COMMIT");
	snprintf(from, sizeof(from), "%" PRId64, old->version);
	snprintf(to, sizeof(to), "%" PRId64, version);

	/* Each version bump writes at least one change record; a gap (records
	 * pruned, a restored database, a hand-edited version) means the log
	 * cannot tell what changed: read everything. */
	bool full = version < old->version;
	if (!full) {
		res = pg_exec(conn, "SELECT count(DISTINCT version) FROM route_change "
				    "WHERE version > $1::bigint AND version <= $2::bigint",
			      2, params, PGRES_TUPLES_OK);
		if (!res)
			goto fail;
		full = strtoll(PQgetvalue(res, 0, 0), NULL, 10) != version - old->version;
		PQclear(res);
	}
	snapshot_t *s;
	if (full) {
		log_info("route change log does not cover versions %s..%s: full reload", from, to);
		if (load_all_rows(conn, &b))
			goto fail;
		s = snapshot_build(&b, version);
		if (load_versions(conn, s) || pg_cmd(conn, "COMMIT")) {
			snapshot_free(s);
			goto fail;
		}
		snapshot_diff(old, s, NULL, changed);
		*fullp = true;
		*outp = s;
		return 0;
	}
	/* The changed keys, each with the version of its newest change. */
	PGresult *vres = pg_exec(conn, "SELECT modid, cmdid, max(version) FROM route_change "
				       "WHERE version > $1::bigint AND version <= $2::bigint "
				       "GROUP BY modid, cmdid", 2, params, PGRES_TUPLES_OK);
	if (!vres)
		goto fail;
	for (int i = 0; i < PQntuples(vres); i++)
		snap_keys_add(&keys, (int32_t)col_long(vres, i, 0), (int32_t)col_long(vres, i, 1));
	snap_keys_finish(&keys);
	/* The keys as arrays: the planner then walks the (modid, cmdid, ...)
	 * index per key instead of scanning a large route_data. */
	char *mods = keys_array(&keys, true), *cmds = keys_array(&keys, false);
	const char *kparams[2] = { mods, cmds };
	res = pg_exec(conn,
		"SELECT " ROUTE_COLS " FROM " ROUTE_FROM " "
		"JOIN unnest($1::int[], $2::int[]) AS k (modid, cmdid) USING (modid, cmdid)",
		2, kparams, PGRES_TUPLES_OK);
	free(mods);
	free(cmds);
	if (!res) {
		PQclear(vres);
		goto fail;
	}
	add_rows(&b, res);
	PQclear(res);
	if (pg_cmd(conn, "COMMIT")) {
		PQclear(vres);
		goto fail;
	}
	s = snapshot_patch(old, &keys, &b, version);
	set_versions(s, vres);
	PQclear(vres);
	snapshot_diff(old, s, &keys, changed);
	snap_keys_deinit(&keys);
	*outp = s;
	return 0;
fail:
	pg_cmd(conn, "ROLLBACK");
	snap_builder_deinit(&b);
	snap_keys_deinit(&keys);
	return -EIO;
}

int route_prune_changes(PGconn *conn, int days, long long *deletedp)
{
	char d[16];
	snprintf(d, sizeof(d), "%d", days);
	const char *params[1] = { d };
	*deletedp = 0;
	/* A standby (lars-dns may read from one) cannot delete: its primary's
	 * lars-dns prunes, and the deletion replicates. */
	bool standby;
	if (pg_in_recovery(conn, &standby))
		return -EIO;
	if (standby)
		return 0;
	PGresult *res = pg_exec(conn,
		"DELETE FROM route_change WHERE changed_at < now() - make_interval(days => $1::int)",
		1, params, PGRES_COMMAND_OK);
	if (!res)
		return -EIO;
	*deletedp = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}
