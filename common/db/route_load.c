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
/* The IPv4 address as the number a<<24|b<<16|c<<8|d (0..2^32-1). */
#define IP_NUM "(ip - '0.0.0.0'::inet)"

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

/* Rows of (modid, cmdid, ipnum, port) into @b. */
static void add_rows(snap_builder_t *b, const PGresult *res)
{
	int n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		int32_t modid = (int32_t)strtol(PQgetvalue(res, i, 0), NULL, 10);
		int32_t cmdid = (int32_t)strtol(PQgetvalue(res, i, 1), NULL, 10);
		uint32_t ip = (uint32_t)strtoull(PQgetvalue(res, i, 2), NULL, 10);
		int32_t port = (int32_t)strtol(PQgetvalue(res, i, 3), NULL, 10);
		snap_builder_add(b, modid, cmdid, (int32_t)ip, port);
	}
}

/* Inside a transaction: all of route_data, through a cursor so the client
 * never holds more than one batch of rows as text. */
static int load_all_rows(PGconn *conn, snap_builder_t *b)
{
	if (pg_cmd(conn, "DECLARE lars_routes NO SCROLL CURSOR FOR "
		      "SELECT modid, cmdid, " IP_NUM ", port FROM route_data"))
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

int route_load_full(PGconn *conn, snapshot_t **outp)
{
	snap_builder_t b;
	int64_t version;

	snap_builder_init(&b);
	if (pg_cmd(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
		return -EIO;
	if (route_version_read(conn, &version) || load_all_rows(conn, &b) || pg_cmd(conn, "COMMIT")) {
		pg_cmd(conn, "ROLLBACK");
		snap_builder_deinit(&b);
		return -EIO;
	}
	*outp = snapshot_build(&b, version);
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
		if (load_all_rows(conn, &b) || pg_cmd(conn, "COMMIT"))
			goto fail;
		s = snapshot_build(&b, version);
		snapshot_diff(old, s, NULL, changed);
		*fullp = true;
		*outp = s;
		return 0;
	}
	res = pg_exec(conn, "SELECT DISTINCT modid, cmdid FROM route_change "
			    "WHERE version > $1::bigint AND version <= $2::bigint",
		      2, params, PGRES_TUPLES_OK);
	if (!res)
		goto fail;
	for (int i = 0; i < PQntuples(res); i++)
		snap_keys_add(&keys, (int32_t)strtol(PQgetvalue(res, i, 0), NULL, 10),
			      (int32_t)strtol(PQgetvalue(res, i, 1), NULL, 10));
	PQclear(res);
	snap_keys_finish(&keys);
	/* The keys as arrays: the planner then walks the (modid, cmdid, ...)
	 * index per key instead of scanning a large route_data. */
	char *mods = keys_array(&keys, true), *cmds = keys_array(&keys, false);
	const char *kparams[2] = { mods, cmds };
	res = pg_exec(conn,
		"SELECT d.modid, d.cmdid, (d.ip - '0.0.0.0'::inet), d.port FROM route_data d "
		"JOIN unnest($1::int[], $2::int[]) AS k (modid, cmdid) USING (modid, cmdid)",
		2, kparams, PGRES_TUPLES_OK);
	free(mods);
	free(cmds);
	if (!res)
		goto fail;
	add_rows(&b, res);
	PQclear(res);
	if (pg_cmd(conn, "COMMIT"))
		goto fail;
	s = snapshot_patch(old, &keys, &b, version);
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
	PGresult *res = pg_exec(conn, "SELECT pg_is_in_recovery()", 0, NULL, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	bool standby = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (standby)
		return 0;
	res = pg_exec(conn,
		"DELETE FROM route_change WHERE changed_at < now() - make_interval(days => $1::int)",
		1, params, PGRES_COMMAND_OK);
	if (!res)
		return -EIO;
	*deletedp = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}
