// SPDX-License-Identifier: MIT
// PostgreSQL connection helpers without an event loop (see pg_conn.c).
#pragma once

#include <stdbool.h>

#include <libpq-fe.h>

/**
 * pg_open() - connect with our defaults (connect timeout, TCP keepalives and
 * tcp_user_timeout so a dead network is noticed) under whatever @conninfo
 * says ("" = PG* variables; its settings win). The caller checks PQstatus()
 * and PQfinish()es the result either way.
 */
PGconn *pg_open(const char *conninfo, const char *app_name, unsigned connect_timeout_s);

/** pg_in_recovery() - whether @conn's server is a hot standby: 0 with *@standbyp, or -EIO. */
int pg_in_recovery(PGconn *conn, bool *standbyp);

/** pg_cmd() - a statement without parameters or rows (BEGIN, COMMIT, DDL): 0 or -EIO (logged). */
int pg_cmd(PGconn *conn, const char *sql);

/**
 * pg_exec() - PQexecParams with text parameters, checked against @expect.
 * Logs the SQLSTATE and message on failure.
 * Return: the result (caller PQclear()s it), or NULL on failure.
 */
PGresult *pg_exec(PGconn *conn, const char *sql, int n_params,
		  const char *const *params, ExecStatusType expect);

/**
 * pg_conn_lost() - whether a pg_exec() on this thread failed because the
 * connection is gone (SQLSTATE class 08, 57P01-57P03) or reaches a server
 * that cannot write (25006: a standby) since the last pg_conn_lost_clear();
 * the caller reconnects (a read-write conninfo then finds the primary) and
 * may retry, instead of trusting PQstatus().
 */
bool pg_conn_lost(void);
/** pg_conn_lost_clear() - forget an earlier lost connection on this thread. */
void pg_conn_lost_clear(void);

/**
 * pg_sqlstate_retryable() - @state says the statement failed because of the
 * connection or the server it reached, not the statement: class 08,
 * 57P01-57P03 (the server is going away) or 25006 (read-only transaction:
 * a standby). A new connection may succeed where this one failed.
 */
bool pg_sqlstate_retryable(const char *state);

/**
 * pg_connect_error_transient() - a failed pg_open() whose reason ends with a
 * failover or a restart (refused, timed out, read-only or standby server,
 * starting up, shutting down), not a wrong password or database.
 */
bool pg_connect_error_transient(const PGconn *conn);
