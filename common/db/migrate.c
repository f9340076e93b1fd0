// SPDX-License-Identifier: MIT
// Schema migrations: apply what is missing, in order, once.
#include "migrations.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg_conn.h"

/* Any constant shared by every migrator of this schema. */
#define MIGRATE_LOCK_KEY "7235120953"

static int exec_ok(PGconn *conn, const char *sql)
{
	/* Our own statements and migration files only: no values inside. */
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorMessage(res);
		log_error("migrate: %.*s (SQLSTATE %s)", (int)strcspn(msg, "\n"), msg,
			  state ? state : "-");
		PQclear(res);
		return -EIO;
	}
	PQclear(res);
	return 0;
}

int migrate_current(PGconn *conn, int *versionp)
{
	PGresult *res = pg_exec(conn,
		"SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL,
		PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	*versionp = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static int migrate_one(PGconn *conn, const migration_t *m, bool *appliedp)
{
	char version[16];
	snprintf(version, sizeof(version), "%d", m->version);
	const char *params[2] = { version, m->name };
	*appliedp = false;

	if (exec_ok(conn, "BEGIN"))
		return -EIO;
	PGresult *res = pg_exec(conn, "SELECT 1 FROM schema_migrations WHERE version = $1::int",
		      1, params, PGRES_TUPLES_OK);
	if (!res)
		goto fail;
	bool have = PQntuples(res) > 0;
	PQclear(res);
	if (have)
		return exec_ok(conn, "COMMIT");
	if (exec_ok(conn, m->sql))
		goto fail;
	res = pg_exec(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)",
		      2, params, PGRES_COMMAND_OK);
	if (!res)
		goto fail;
	PQclear(res);
	if (exec_ok(conn, "COMMIT"))
		return -EIO;
	*appliedp = true;
	return 0;
fail:
	exec_ok(conn, "ROLLBACK");
	log_error("migrate: %03d_%s not applied; nothing of it was kept", m->version, m->name);
	return -EIO;
}

static int migrate_locked(PGconn *conn, FILE *out)
{
	if (exec_ok(conn, "CREATE TABLE IF NOT EXISTS schema_migrations ("
			  " version integer PRIMARY KEY,"
			  " name text NOT NULL,"
			  " applied_at timestamptz NOT NULL DEFAULT now())"))
		return -EIO;
	unsigned n_applied = 0;
	for (size_t i = 0; i < n_migrations; i++) {
		bool applied;
		if (migrate_one(conn, &migrations[i], &applied))
			return -EIO;
		if (applied) {
			fprintf(out, "applied %03d_%s\n", migrations[i].version, migrations[i].name);
			n_applied++;
		}
	}
	int v;
	if (migrate_current(conn, &v))
		return -EIO;
	if (n_applied == 0)
		fprintf(out, "schema is up to date (version %d)\n", v);
	else
		fprintf(out, "schema now at version %d\n", v);
	return 0;
}

int migrate_apply(PGconn *conn, FILE *out)
{
	if (exec_ok(conn, "SET client_min_messages = warning"))
		return -EIO;
	/* One migrator at a time, from the bookkeeping table's creation on. */
	PGresult *res = pg_exec(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0,
				NULL, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	PQclear(res);
	int r = migrate_locked(conn, out);
	res = pg_exec(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", 0, NULL,
		      PGRES_TUPLES_OK);
	PQclear(res);
	return r;
}

int migrate_check(const char *conninfo, const char *app, char *msg, size_t cap)
{
	PGconn *conn = pg_open(conninfo && *conninfo ? conninfo : NULL, app, 5);
	PGresult *res = NULL;
	int r = 0, have = 0; /* no schema_migrations yet: version 0 */
	int want = n_migrations ? migrations[n_migrations - 1].version : 0;
	if (PQstatus(conn) != CONNECTION_OK) {
		const char *e = PQerrorMessage(conn);
		snprintf(msg, cap, "cannot connect to PostgreSQL: %.*s", (int)strcspn(e, "\n"), e);
		r = -1;
	} else if (!(res = pg_exec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL",
				   0, NULL, PGRES_TUPLES_OK)) ||
		   (PQgetvalue(res, 0, 0)[0] == 't' && migrate_current(conn, &have))) {
		snprintf(msg, cap, "connected, but cannot read schema_migrations (has `larsctl "
			 "migrate` been run?)");
		r = -1;
	} else if (have < want) {
		snprintf(msg, cap, "the schema is at version %d, this build needs %d: run "
			 "`larsctl migrate`", have, want);
		r = -1;
	} else if (have > want) {
		snprintf(msg, cap, "the schema is at version %d, newer than this build's %d (an "
			 "upgrade in progress?)", have, want);
		r = 1;
	}
	PQclear(res);
	PQfinish(conn);
	return r;
}
