// SPDX-License-Identifier: MIT
// Writing coalesced results to PostgreSQL: COPY into staging, then merge.
#include "report_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg_conn.h"

#define COPY_CHUNK 65536 /* + PENDING_MINUTES rows of at most 180 bytes */
#define SQLSTATE_QUERY_CANCELED "57014" /* statement_timeout (or a cancel) */

/* -ETIMEDOUT for a statement the timeout cut short, else -EIO; logged. */
static int store_failed(PGconn *conn, PGresult *res, const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
	log_warn("reporter: %s failed (SQLSTATE %s): %.*s", what, state ? state : "-",
		 (int)strcspn(msg, "\n"), msg);
	return state && strcmp(state, SQLSTATE_QUERY_CANCELED) == 0 ? -ETIMEDOUT : -EIO;
}

/* A statement without parameters or rows: 0, -ETIMEDOUT or -EIO. */
static int store_cmd(PGconn *conn, const char *sql, const char *what)
{
	PGresult *res = PQexec(conn, sql);
	int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : store_failed(conn, res, what);
	PQclear(res);
	return rc;
}

static int key_cmp(const void *a, const void *b)
{
	const report_key_t *x = &((const report_entry_t *)a)->key;
	const report_key_t *y = &((const report_entry_t *)b)->key;
	const int32_t fx[5] = { x->modid, x->cmdid, x->ip, x->port, x->caller };
	const int32_t fy[5] = { y->modid, y->cmdid, y->ip, y->port, y->caller };
	for (int i = 0; i < 5; i++)
		if (fx[i] != fy[i])
			return fx[i] < fy[i] ? -1 : 1;
	return 0;
}

/* COPY the entries as text rows of plain integers (cheap to format). */
static int copy_rows(PGconn *conn, const report_entry_t *v, size_t n)
{
	PGresult *res = PQexec(conn, "COPY lars_report_stage FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		int rc = store_failed(conn, res, "COPY");
		PQclear(res);
		return rc;
	}
	PQclear(res);
	char buf[COPY_CHUNK + PENDING_MINUTES * 180];
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		const report_entry_t *e = &v[i];
		/* A row per history minute; the first also carries the status. */
		for (unsigned m = 0; m < e->n_mins; m++) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len,
				"%u\t%d\t%d\t%u\t%d\t%u\t%llu\t%llu\t%u\t%u\t%c\t%u\t%llu\t%c\n",
				e->mins[m].minute, e->key.modid, e->key.cmdid,
				(uint32_t)e->key.ip, e->key.port, (uint32_t)e->key.caller,
				(unsigned long long)e->mins[m].succ,
				(unsigned long long)e->mins[m].err, e->succ, e->err,
				e->overload ? 't' : 'f', e->ts,
				(unsigned long long)e->rx_us, m == 0 ? 't' : 'f');
		}
		if (len >= COPY_CHUNK || i + 1 == n) {
			if (PQputCopyData(conn, buf, (int)len) != 1)
				goto broken;
			len = 0;
		}
	}
	if (PQputCopyEnd(conn, NULL) != 1)
		goto broken;
	res = PQgetResult(conn);
	int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : store_failed(conn, res, "COPY");
	PQclear(res);
	while ((res = PQgetResult(conn)))
		PQclear(res);
	return rc;
broken:
	log_warn("reporter: COPY interrupted: %.*s",
		 (int)strcspn(PQerrorMessage(conn), "\n"), PQerrorMessage(conn));
	return -EIO;
}

int report_store_batch(PGconn *conn, report_entry_t *v, size_t n, size_t *rowsp)
{
	*rowsp = 0;
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), key_cmp);
	if (pg_cmd(conn, "SET client_min_messages = warning") ||
	    pg_cmd(conn, "CREATE TEMP TABLE IF NOT EXISTS lars_report_stage ("
		      " minute bigint, modid integer, cmdid integer, ip bigint,"
		      " port integer, caller bigint, succ_sum bigint, err_sum bigint,"
		      " succ bigint, err bigint, overload boolean, ts bigint,"
		      " rx_us bigint, status boolean)"
		      " ON COMMIT DELETE ROWS"))
		return -EIO;
	if (pg_cmd(conn, "BEGIN"))
		return -EIO;
	int rc = copy_rows(conn, v, n);
	if (rc)
		goto fail;
	/* (key, minute) is distinct within a batch: each row is touched once. */
	rc = store_cmd(conn,
		"INSERT INTO host_status_history AS h "
		" (minute, modid, cmdid, ip, port, caller, succ, err) "
		"SELECT to_timestamp(minute), modid, cmdid, '0.0.0.0'::inet + ip, port, "
		"       '0.0.0.0'::inet + caller, succ_sum, err_sum "
		"FROM lars_report_stage ORDER BY modid, cmdid, ip, port, caller "
		"ON CONFLICT (minute, modid, cmdid, ip, port, caller) DO UPDATE "
		"SET succ = h.succ + EXCLUDED.succ, err = h.err + EXCLUDED.err",
		"history merge");
	if (rc)
		goto fail;
	/* updated_at is when we received the report; the latest received wins
	 * (batches may commit out of order), never the latest claimed ts. */
	rc = store_cmd(conn,
		"INSERT INTO host_status AS s "
		" (modid, cmdid, ip, port, caller, succ, err, overload, ts, updated_at) "
		"SELECT modid, cmdid, '0.0.0.0'::inet + ip, port, '0.0.0.0'::inet + caller, "
		"       succ, err, overload, to_timestamp(ts), "
		"       timestamptz 'epoch' + rx_us * interval '1 microsecond' "
		"FROM lars_report_stage WHERE status ORDER BY modid, cmdid, ip, port, caller "
		"ON CONFLICT (modid, cmdid, ip, port, caller) DO UPDATE "
		"SET succ = EXCLUDED.succ, err = EXCLUDED.err, overload = EXCLUDED.overload, "
		"    ts = EXCLUDED.ts, updated_at = EXCLUDED.updated_at "
		"WHERE s.updated_at <= EXCLUDED.updated_at",
		"status merge");
	if (rc)
		goto fail;
	rc = store_cmd(conn, "COMMIT", "COMMIT");
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++)
		*rowsp += v[i].n_mins;
	return 0;
fail:
	pg_cmd(conn, "ROLLBACK");
	return rc;
}

int report_store_prune(PGconn *conn, int days, int future_s, long long *deletedp)
{
	char d[16], f[16];
	snprintf(d, sizeof(d), "%d", days);
	snprintf(f, sizeof(f), "%d", future_s);
	const char *params[2] = { d, f };
	/* Rows dated beyond our clock + the skew can only come from before the
	 * ts was checked (a forged or broken time): they would never age out. */
	PGresult *res = pg_exec(conn,
		"DELETE FROM host_status_history WHERE minute < now() - make_interval(days => $1::int)"
		" OR minute > now() + make_interval(secs => $2::int)",
		2, params, PGRES_COMMAND_OK);
	if (!res)
		return -EIO;
	*deletedp = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}
