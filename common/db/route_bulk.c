// SPDX-License-Identifier: MIT
// Many hosts in one transaction: route_apply() and route_decommission().
#include "route_bulk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jbuf.h"
#include "pg_conn.h"
#include "route_load.h"
#include "xalloc.h"

char *route_host_array(const route_host_t *hosts, size_t n, int col)
{
	jbuf_t t = { 0 };
	jbuf_printf(&t, "{");
	for (size_t i = 0; i < n; i++) {
		const route_host_t *h = &hosts[i];
		const char *sep = i ? "," : "";
		switch (col) {
		case 0: jbuf_printf(&t, "%s%d", sep, h->e.modid); break;
		case 1: jbuf_printf(&t, "%s%d", sep, h->e.cmdid); break;
		case 2: jbuf_printf(&t, "%s%s", sep, h->e.ip); break;
		case 3: jbuf_printf(&t, "%s%d", sep, h->e.port); break;
		case 4: jbuf_printf(&t, "%s%d", sep, h->weight); break;
		default: jbuf_printf(&t, "%s%s", sep, h->drain ? "t" : "f"); break;
		}
	}
	jbuf_printf(&t, "}");
	return jbuf_take(&t, NULL);
}

/* Columns @c.. of @res as a host: modid, cmdid, ip, port, weight, drain. */
static void host_at(const PGresult *res, int row, int c, route_host_t *h)
{
	memset(h, 0, sizeof(*h));
	if (PQgetisnull(res, row, c))
		return;
	h->e.modid = (int32_t)strtol(PQgetvalue(res, row, c), NULL, 10);
	h->e.cmdid = (int32_t)strtol(PQgetvalue(res, row, c + 1), NULL, 10);
	snprintf(h->e.ip, sizeof(h->e.ip), "%s", PQgetvalue(res, row, c + 2));
	h->e.port = (int)strtol(PQgetvalue(res, row, c + 3), NULL, 10);
	h->weight = (int)strtol(PQgetvalue(res, row, c + 4), NULL, 10);
	h->drain = PQgetvalue(res, row, c + 5)[0] == 't';
}

#define IMPORT_KEY "d.modid = i.modid AND d.cmdid = i.cmdid AND d.ip = i.ip AND d.port = i.port"

int route_apply(PGconn *conn, const route_host_t *hosts, size_t n, bool dry_run,
		route_diff_t **diffp, size_t *n_diffp, int64_t *versionp)
{
	*diffp = NULL;
	*n_diffp = 0;
	char *arr[6];
	for (int c = 0; c < 6; c++)
		arr[c] = route_host_array(hosts, n, c);
	const char *params[6] = { arr[0], arr[1], arr[2], arr[3], arr[4], arr[5] };
	PGresult *res = NULL;
	int r = -EIO;

	if (!arr[0] || !arr[1] || !arr[2] || !arr[3] || !arr[4] || !arr[5]) {
		r = -ENOMEM;
		goto out;
	}
	if (pg_cmd(conn, "BEGIN"))
		goto out;
	/* Writers of route_data wait until this commits; readers do not. */
	if (!dry_run && pg_cmd(conn, "LOCK TABLE route_data IN SHARE ROW EXCLUSIVE MODE"))
		goto fail;
	if (pg_cmd(conn, "CREATE TEMP TABLE lars_import (modid int, cmdid int, ip inet, port int,"
			 " weight int, drain bool) ON COMMIT DROP"))
		goto fail;
	res = pg_exec(conn, "INSERT INTO lars_import SELECT * FROM unnest($1::int[], $2::int[],"
			    " $3::inet[], $4::int[], $5::int[], $6::bool[])",
		      6, params, PGRES_COMMAND_OK);
	if (!res)
		goto fail;
	PQclear(res);
	res = pg_exec(conn,
		"SELECT * FROM ("
		" SELECT '+' AS op, NULL::int AS wm, NULL::int AS wc, NULL AS wi, NULL::int AS wp,"
		"  NULL::int AS ww, NULL::bool AS wd,"
		"  i.modid AS nm, i.cmdid AS nc, host(i.ip) AS ni, i.port AS np, i.weight, i.drain"
		" FROM lars_import i WHERE NOT EXISTS"
		"  (SELECT 1 FROM route_data d WHERE " IMPORT_KEY ")"
		" UNION ALL"
		" SELECT '-', d.modid, d.cmdid, host(d.ip), d.port, d.weight, d.drain,"
		"  NULL, NULL, NULL, NULL, NULL, NULL::bool"
		" FROM route_data d WHERE (d.modid, d.cmdid) IN (SELECT modid, cmdid FROM lars_import)"
		"  AND NOT EXISTS (SELECT 1 FROM lars_import i WHERE " IMPORT_KEY ")"
		" UNION ALL"
		" SELECT '~', d.modid, d.cmdid, host(d.ip), d.port, d.weight, d.drain,"
		"  i.modid, i.cmdid, host(i.ip), i.port, i.weight, i.drain"
		" FROM route_data d JOIN lars_import i ON " IMPORT_KEY
		" WHERE d.weight <> i.weight OR d.drain <> i.drain"
		") u ORDER BY coalesce(wm, nm), coalesce(wc, nc), coalesce(wi, ni)::inet,"
		" coalesce(wp, np)", 0, NULL, PGRES_TUPLES_OK);
	if (!res)
		goto fail;
	size_t nd = (size_t)PQntuples(res);
	route_diff_t *d = xcalloc(nd ? nd : 1, sizeof(*d));
	for (size_t k = 0; k < nd; k++) {
		d[k].op = PQgetvalue(res, (int)k, 0)[0];
		host_at(res, (int)k, 1, &d[k].was);
		host_at(res, (int)k, 7, &d[k].now);
	}
	PQclear(res);
	res = NULL;
	*diffp = d;
	*n_diffp = nd;
	if (dry_run || nd == 0) {
		if (pg_cmd(conn, "ROLLBACK"))
			goto out;
		r = route_version_read(conn, versionp);
		goto out;
	}
	static const char *const apply[] = {
		"DELETE FROM route_data d WHERE (d.modid, d.cmdid) IN"
		" (SELECT modid, cmdid FROM lars_import)"
		" AND NOT EXISTS (SELECT 1 FROM lars_import i WHERE " IMPORT_KEY ")",
		/* A new route's ids get their (empty) description entries. */
		"INSERT INTO modid_config (modid) SELECT DISTINCT modid FROM lars_import"
		" ON CONFLICT DO NOTHING",
		"INSERT INTO cmdid_config (modid, cmdid) SELECT DISTINCT modid, cmdid FROM lars_import"
		" ON CONFLICT DO NOTHING",
		"INSERT INTO route_data (modid, cmdid, ip, port, weight, drain)"
		" SELECT modid, cmdid, ip, port, weight, drain FROM lars_import i"
		" WHERE NOT EXISTS (SELECT 1 FROM route_data d WHERE " IMPORT_KEY ")",
		"UPDATE route_data d SET weight = i.weight, drain = i.drain FROM lars_import i"
		" WHERE " IMPORT_KEY " AND (d.weight <> i.weight OR d.drain <> i.drain)",
	};
	for (size_t k = 0; k < sizeof(apply) / sizeof(apply[0]); k++) {
		res = pg_exec(conn, apply[k], 0, NULL, PGRES_COMMAND_OK);
		if (!res)
			goto fail;
		PQclear(res);
		res = NULL;
	}
	if (route_version_read(conn, versionp) || pg_cmd(conn, "COMMIT"))
		goto fail;
	r = 0;
	goto out;
fail:
	pg_cmd(conn, "ROLLBACK");
	PQclear(res);
	res = NULL;
out:
	/* On failure no difference is reported: nothing changed. */
	for (int c = 0; c < 6; c++)
		free(arr[c]);
	if (r) {
		free(*diffp);
		*diffp = NULL;
		*n_diffp = 0;
	}
	return r;
}

int route_decommission(PGconn *conn, const char *ip, int port, route_host_t **removedp,
		       size_t *n_removedp, int64_t *versionp)
{
	*removedp = NULL;
	*n_removedp = 0;
	char p[16];
	snprintf(p, sizeof(p), "%d", port);
	const char *params[2] = { ip, port > 0 ? p : NULL };
	if (pg_cmd(conn, "BEGIN"))
		return -EIO;
	PGresult *res = pg_exec(conn,
		"DELETE FROM route_data WHERE ip = $1::inet AND ($2::int IS NULL OR port = $2::int)"
		" RETURNING modid, cmdid, host(ip), port, weight, drain", 2, params, PGRES_TUPLES_OK);
	if (!res)
		goto fail;
	size_t n = (size_t)PQntuples(res);
	route_host_t *h = xcalloc(n ? n : 1, sizeof(*h));
	for (size_t k = 0; k < n; k++)
		host_at(res, (int)k, 0, &h[k]);
	PQclear(res);
	if (route_version_read(conn, versionp) || pg_cmd(conn, "COMMIT")) {
		free(h);
		goto fail;
	}
	*removedp = h;
	*n_removedp = n;
	return 0;
fail:
	pg_cmd(conn, "ROLLBACK");
	return -EIO;
}
