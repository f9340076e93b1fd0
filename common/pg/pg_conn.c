// SPDX-License-Identifier: MIT
// PostgreSQL connection helpers: open with our defaults, run checked
// statements. No event loop: larsctl links these alone, the worker pool
// (pg_worker.c) and the LISTEN thread (pg_listen.c) build on them.
#include "pg_conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* Set by pg_exec() on a worker thread when a statement failed because the
 * connection is gone: SQLSTATE class 08 (connection exception) or the
 * server's "terminating connection" (57P01-57P03), which may come while
 * PQstatus() still says CONNECTION_OK; or because it reaches a server that
 * cannot write (25006 read_only_sql_transaction: a standby, or what the
 * conninfo found before a failover), where a new connection under a
 * target_session_attrs=read-write conninfo finds the primary. */
static _Thread_local bool pg__conn_lost;

bool pg_conn_lost(void)
{
	return pg__conn_lost;
}

void pg_conn_lost_clear(void)
{
	pg__conn_lost = false;
}

bool pg_sqlstate_retryable(const char *state)
{
	return state && (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
			 strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
			 strcmp(state, "25006") == 0);
}

bool pg_connect_error_transient(const PGconn *conn)
{
	/* libpq gives no SQLSTATE for a failed connection: these are the
	 * messages of a server that is down, still starting, or not (yet) the
	 * primary, all of which a failover ends. A refused password or an
	 * unknown database is not among them. */
	static const char *const transient[] = {
		"Connection refused", "Connection reset", "timeout expired",
		"read-only", "hot standby", "not yet accepting connections",
		"is starting up", "is shutting down", "in recovery mode",
		"not accepting connections", "server closed the connection",
	};
	const char *msg = conn ? PQerrorMessage(conn) : "";
	for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
		if (strstr(msg, transient[i]))
			return true;
	return false;
}

PGresult *pg_exec(PGconn *conn, const char *sql, int n_params,
		  const char *const *params, ExecStatusType expect)
{
	PGresult *res = PQexecParams(conn, sql, n_params, NULL, params, NULL, NULL, 0);
	if (res && PQresultStatus(res) == expect)
		return res;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (pg_sqlstate_retryable(state) || (!res && PQstatus(conn) != CONNECTION_OK))
		pg__conn_lost = true;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
	size_t len = strcspn(msg, "\n");
	log_warn("pg: query failed (SQLSTATE %s): %.*s", state ? state : "-",
		 (int)len, msg);
	PQclear(res);
	return NULL;
}

int pg_cmd(PGconn *conn, const char *sql)
{
	PGresult *res = pg_exec(conn, sql, 0, NULL, PGRES_COMMAND_OK);
	PQclear(res);
	return res ? 0 : -EIO;
}

PGconn *pg_open(const char *conninfo, const char *app_name, unsigned connect_timeout_s)
{
	char timeout[16];
	snprintf(timeout, sizeof(timeout), "%u", connect_timeout_s);
	/* Our defaults come first: what the operator's conninfo says wins. */
	const char *const keys[] = { "connect_timeout", "keepalives",
				     "keepalives_idle", "keepalives_interval",
				     "keepalives_count", "tcp_user_timeout",
				     "fallback_application_name", "dbname", NULL };
	const char *const vals[] = { timeout, "1", "10", "5", "3", "30000",
				     app_name, conninfo ? conninfo : "", NULL };
	return PQconnectdbParams(keys, vals, 1);
}


int pg_in_recovery(PGconn *conn, bool *standbyp)
{
	PGresult *res = pg_exec(conn, "SELECT pg_is_in_recovery()", 0, NULL, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	*standbyp = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return 0;
}
