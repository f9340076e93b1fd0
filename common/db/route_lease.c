// SPDX-License-Identifier: MIT
// Leases of self-registered hosts (route_lease.h).
#include "route_lease.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_conn.h"
#include "route_bulk.h"
#include "route_load.h"

/* pg_try_advisory_xact_lock() key of the expiry pass ("lars" "leas"). */
#define LEASE_EXPIRY_LOCK "7809632785326760307"

#define HOST_IS ROUTE_HOST_IS

int route_lease_check(int ttl_s, int weight, const char **whyp)
{
	if (ttl_s < 1 || ttl_s > ROUTE_LEASE_TTL_MAX) {
		*whyp = "a lease's TTL is 1..86400 seconds";
		return -EINVAL;
	}
	if (weight < ROUTE_WEIGHT_MIN || weight > ROUTE_WEIGHT_MAX) {
		*whyp = "WEIGHT must be an integer 1..1000 (the default is 100)";
		return -EINVAL;
	}
	return 0;
}

/* Runs @sql (rows expected when @rows), PQclear()s it: 0 or -EIO. */
static int exec_ok(PGconn *conn, const char *sql, int n, const char *const *p, bool rows)
{
	PGresult *res = pg_exec(conn, sql, n, p, rows ? PGRES_TUPLES_OK : PGRES_COMMAND_OK);
	PQclear(res);
	return res ? 0 : -EIO;
}

/* A host and its owner as text parameters $1..$5 (modid, cmdid, ip, port, owner). */
typedef struct lease_args {
	char m[16], c[16], port[16], o[24];
	const char *p[5];
} lease_args_t;

static void lease_args(lease_args_t *a, const route_entry_t *e, uint64_t owner)
{
	snprintf(a->m, sizeof(a->m), "%d", e->modid);
	snprintf(a->c, sizeof(a->c), "%d", e->cmdid);
	snprintf(a->port, sizeof(a->port), "%d", e->port);
	snprintf(a->o, sizeof(a->o), "%" PRId64, (int64_t)owner);
	a->p[0] = a->m;
	a->p[1] = a->c;
	a->p[2] = e->ip;
	a->p[3] = a->port;
	a->p[4] = a->o;
}

/* BEGIN, with @actor for the change records: 0, or -EIO (rolled back). */
static int lease_begin(PGconn *conn, const char *actor)
{
	if (pg_cmd(conn, "BEGIN"))
		return -EIO;
	if (route_set_actor(conn, actor, true) == 0)
		return 0;
	pg_cmd(conn, "ROLLBACK");
	return -EIO;
}

/* The route version after the change, and COMMIT: 0, or -EIO (rolled back). */
static int lease_commit(PGconn *conn, int64_t *versionp)
{
	if (route_version_read(conn, versionp) == 0 && pg_cmd(conn, "COMMIT") == 0)
		return 0;
	pg_cmd(conn, "ROLLBACK");
	return -EIO;
}

int route_lease_register(PGconn *conn, const route_entry_t *e, int weight, uint64_t owner,
			 int ttl_s, const char *actor, int *resultp, int64_t *versionp)
{
	char m[16], c[16], port[16], w[16], o[24], ttl[16];
	snprintf(m, sizeof(m), "%d", e->modid);
	snprintf(c, sizeof(c), "%d", e->cmdid);
	snprintf(port, sizeof(port), "%d", e->port);
	snprintf(w, sizeof(w), "%d", weight);
	snprintf(o, sizeof(o), "%" PRId64, (int64_t)owner);
	snprintf(ttl, sizeof(ttl), "%d", ttl_s);
	const char *p[7] = { m, c, e->ip, port, w, o, ttl };
	if (lease_begin(conn, actor))
		return -EIO;
	/* The host, locked, with its lease if it has one. */
	PGresult *res = pg_exec(conn,
		"SELECT d.id, l.route_id IS NOT NULL FROM route_data d"
		" LEFT JOIN route_lease l ON l.route_id = d.id"
		" WHERE d." HOST_IS " FOR UPDATE OF d", 4, p, PGRES_TUPLES_OK);
	if (!res)
		goto fail;
	bool have = PQntuples(res) > 0, leased = have && PQgetvalue(res, 0, 1)[0] == 't';
	char id[24] = "";
	if (have)
		snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (have && !leased) {
		*resultp = ROUTE_LEASE_OPERATOR;
	} else if (have) {
		const char *q[3] = { id, o, ttl };
		if (exec_ok(conn, "UPDATE route_lease SET owner = $2::bigint, ttl_s = $3::int,"
				  " expires_at = now() + make_interval(secs => $3::int)"
				  " WHERE route_id = $1::bigint", 3, q, false))
			goto fail;
		/* Registering again ends a drain (a check passes again, a
		 * deregistration called off) and applies a new weight; a route
		 * change only when one of them differs. */
		const char *u[2] = { id, w };
		if (exec_ok(conn, "UPDATE route_data SET drain = false, weight = $2::int"
				  " WHERE id = $1::bigint AND (drain OR weight <> $2::int)",
			    2, u, false))
			goto fail;
		*resultp = ROUTE_LEASE_RENEWED;
	} else {
		/* As route_add(): the ids get their (empty) description entries. */
		if (exec_ok(conn, "INSERT INTO modid_config (modid) VALUES ($1::int)"
				  " ON CONFLICT DO NOTHING", 1, p, false) ||
		    exec_ok(conn, "INSERT INTO cmdid_config (modid, cmdid) VALUES ($1::int, $2::int)"
				  " ON CONFLICT DO NOTHING", 2, p, false) ||
		    exec_ok(conn, "WITH d AS (INSERT INTO route_data (modid, cmdid, ip, port, weight)"
				  " VALUES ($1::int, $2::int, $3::inet, $4::int, $5::int) RETURNING id)"
				  " INSERT INTO route_lease (route_id, owner, ttl_s, expires_at)"
				  " SELECT id, $6::bigint, $7::int, now() + make_interval(secs => $7::int)"
				  " FROM d", 7, p, false))
			goto fail;
		*resultp = ROUTE_LEASE_ADDED;
	}
	return lease_commit(conn, versionp);
fail:
	pg_cmd(conn, "ROLLBACK");
	return -EIO;
}

/* Row @t of a renewal's RETURNING names one of the hosts @e: marked. */
static void mark_renewed(PGresult *res, int t, const route_entry_t *e, size_t n, bool *renewed)
{
	int modid = atoi(PQgetvalue(res, t, 0)), cmdid = atoi(PQgetvalue(res, t, 1));
	int port = atoi(PQgetvalue(res, t, 3));
	const char *ip = PQgetvalue(res, t, 2);
	for (size_t i = 0; i < n; i++)
		if (e[i].modid == modid && e[i].cmdid == cmdid && e[i].port == port &&
		    strcmp(e[i].ip, ip) == 0)
			renewed[i] = true;
}

int route_lease_renew(PGconn *conn, uint64_t owner, const route_entry_t *e, size_t n,
		      size_t *renewedp, bool *renewed)
{
	*renewedp = 0;
	for (size_t i = 0; renewed && i < n; i++)
		renewed[i] = false;
	if (n == 0)
		return 0;
	char o[24];
	snprintf(o, sizeof(o), "%" PRId64, (int64_t)owner);
	/* The hosts' columns as arrays, as route_apply() sends them. */
	route_host_t *h = calloc(n, sizeof(*h));
	char *a[4] = { NULL };
	for (size_t i = 0; h && i < n; i++)
		h[i].e = e[i];
	for (int f = 0; h && f < 4; f++)
		a[f] = route_host_array(h, n, f);
	free(h);
	int r = -EIO;
	if (a[0] && a[1] && a[2] && a[3]) {
		const char *p[5] = { o, a[0], a[1], a[2], a[3] };
		PGresult *res = pg_exec(conn,
			"UPDATE route_lease l SET expires_at = now() + make_interval(secs => l.ttl_s)"
			" FROM route_data d,"
			"  unnest($2::int[], $3::int[], $4::inet[], $5::int[]) AS k (modid, cmdid, ip, port)"
			" WHERE l.route_id = d.id AND l.owner = $1::bigint"
			"   AND (d.modid, d.cmdid, d.ip, d.port) = (k.modid, k.cmdid, k.ip, k.port)"
			" RETURNING d.modid, d.cmdid, host(d.ip), d.port",
			5, p, PGRES_TUPLES_OK);
		if (res) {
			*renewedp = (size_t)PQntuples(res);
			for (int t = 0; renewed && t < PQntuples(res); t++)
				mark_renewed(res, t, e, n, renewed);
			PQclear(res);
			r = 0;
		}
	}
	for (int f = 0; f < 4; f++)
		free(a[f]);
	return r;
}

int route_lease_deregister(PGconn *conn, const route_entry_t *e, uint64_t owner,
			   const char *actor, int *resultp, int64_t *versionp)
{
	lease_args_t a;
	lease_args(&a, e, owner);
	if (lease_begin(conn, actor))
		return -EIO;
	PGresult *res = pg_exec(conn,
		"WITH d AS (DELETE FROM route_data d USING route_lease l"
		"  WHERE l.route_id = d.id AND l.owner = $5::bigint AND d." HOST_IS " RETURNING d.id)"
		" DELETE FROM route_lease WHERE route_id IN (SELECT id FROM d) RETURNING route_id",
		5, a.p, PGRES_TUPLES_OK);
	if (!res) {
		pg_cmd(conn, "ROLLBACK");
		return -EIO;
	}
	*resultp = PQntuples(res) ? ROUTE_LEASE_REMOVED : ROUTE_LEASE_ABSENT;
	PQclear(res);
	return lease_commit(conn, versionp);
}

int route_lease_drain(PGconn *conn, const route_entry_t *e, uint64_t owner, const char *actor,
		      int *resultp, int64_t *versionp)
{
	lease_args_t a;
	lease_args(&a, e, owner);
	if (lease_begin(conn, actor))
		return -EIO;
	/* The owner's host, and whether it still takes picks. */
	PGresult *res = pg_exec(conn,
		"SELECT d.id, d.drain FROM route_data d JOIN route_lease l ON l.route_id = d.id"
		" WHERE l.owner = $5::bigint AND d." HOST_IS " FOR UPDATE OF d",
		5, a.p, PGRES_TUPLES_OK);
	if (!res)
		goto fail;
	bool have = PQntuples(res) > 0, drained = have && PQgetvalue(res, 0, 1)[0] == 't';
	char id[24] = "";
	if (have)
		snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	const char *q[1] = { id };
	if (have && !drained &&
	    exec_ok(conn, "UPDATE route_data SET drain = true WHERE id = $1::bigint", 1, q, false))
		goto fail;
	*resultp = have ? ROUTE_LEASE_DRAINED : ROUTE_LEASE_ABSENT;
	return lease_commit(conn, versionp);
fail:
	pg_cmd(conn, "ROLLBACK");
	return -EIO;
}

int route_lease_expire(PGconn *conn, const char *actor, size_t *expiredp)
{
	*expiredp = 0;
	if (pg_cmd(conn, "BEGIN"))
		return -EIO;
	PGresult *res = pg_exec(conn, "SELECT pg_try_advisory_xact_lock(" LEASE_EXPIRY_LOCK ")",
				0, NULL, PGRES_TUPLES_OK);
	if (!res)
		goto fail;
	bool mine = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!mine) /* another instance expires them now */
		return pg_cmd(conn, "ROLLBACK") ? -EIO : 0;
	if (route_set_actor(conn, actor, true))
		goto fail;
	res = pg_exec(conn,
		"WITH d AS (DELETE FROM route_data WHERE id IN"
		"  (SELECT route_id FROM route_lease WHERE expires_at < now()) RETURNING id)"
		" DELETE FROM route_lease WHERE route_id IN (SELECT id FROM d)",
		0, NULL, PGRES_COMMAND_OK);
	if (!res)
		goto fail;
	*expiredp = (size_t)strtoull(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	/* Leases whose host is gone: expired ones and those an operator's
	 * removal left behind. */
	if (exec_ok(conn, "DELETE FROM route_lease l WHERE NOT EXISTS"
			  " (SELECT 1 FROM route_data d WHERE d.id = l.route_id)", 0, NULL, false))
		goto fail;
	return pg_cmd(conn, "COMMIT") ? -EIO : 0;
fail:
	pg_cmd(conn, "ROLLBACK");
	return -EIO;
}
