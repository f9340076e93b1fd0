// SPDX-License-Identifier: MIT
// Writing coalesced results to PostgreSQL: COPY into staging, then merge.
#include "report_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg_conn.h"
#include "xalloc.h"

#define COPY_CHUNK 65536 /* + PENDING_MINUTES rows of at most COPY_ROW_MAX bytes */
#define COPY_ROW_MAX 420   /* 14 numbers, and 13 more in an array */
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

/* "{n,n,...}" for a minute's latency buckets, "\\N" (NULL) without any. */
static void lat_text(const report_minute_t *m, char *out, size_t cap)
{
	if (!m->lat_count) {
		snprintf(out, cap, "\\N");
		return;
	}
	size_t len = 0;
	for (unsigned i = 0; i < REPORT_LAT_BUCKETS; i++)
		len += (size_t)snprintf(out + len, cap - len, "%c%u", i ? ',' : '{',
					m->lat_buckets[i]);
	snprintf(out + len, cap - len, "}");
}

/* COPY the entries (but those @skip marks) as text rows of plain integers. */
static int copy_rows(PGconn *conn, const report_entry_t *v, size_t n, const bool *skip)
{
	PGresult *res = PQexec(conn, "COPY lars_report_stage FROM STDIN");
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		int rc = store_failed(conn, res, "COPY");
		PQclear(res);
		return rc;
	}
	PQclear(res);
	char buf[COPY_CHUNK + PENDING_MINUTES * COPY_ROW_MAX];
	char lat[REPORT_LAT_BUCKETS * 11 + 4];
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		const report_entry_t *e = &v[i];
		/* A row per history minute; the first also carries the status. */
		for (unsigned m = 0; !(skip && skip[i]) && m < e->n_mins; m++) {
			const report_minute_t *mi = &e->mins[m];
			lat_text(mi, lat, sizeof(lat));
			len += (size_t)snprintf(buf + len, sizeof(buf) - len,
				"%u\t%d\t%d\t%u\t%d\t%u\t%llu\t%llu\t%u\t%u\t%c\t%u\t%llu\t%c"
				"\t%llu\t%llu\t%s\n",
				mi->minute, e->key.modid, e->key.cmdid,
				(uint32_t)e->key.ip, e->key.port, (uint32_t)e->key.caller,
				(unsigned long long)mi->succ,
				(unsigned long long)mi->err, e->succ, e->err,
				e->overload ? 't' : 'f', e->ts,
				(unsigned long long)e->rx_us, m == 0 ? 't' : 'f',
				(unsigned long long)mi->lat_count,
				(unsigned long long)mi->lat_sum_us, lat);
		}
		if (len >= COPY_CHUNK || (i + 1 == n && len)) {
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

/* ---- the agents' sequence numbers ---- */

typedef struct agent_ord {
	int64_t id; /* as stored: the bigint of the u64 */
	size_t i;
} agent_ord_t;

static int agent_cmp(const void *a, const void *b)
{
	int64_t x = ((const agent_ord_t *)a)->id, y = ((const agent_ord_t *)b)->id;
	return x < y ? -1 : x > y;
}

/* The indexes of the agents @a in the order of their ids as bigint (the lock order). */
static size_t *agents_order(const report_agent_seq_t *a, size_t n)
{
	agent_ord_t *t = xreallocarray(NULL, n, sizeof(*t));
	for (size_t i = 0; i < n; i++)
		t[i] = (agent_ord_t){ (int64_t)a[i].agent_id, i };
	qsort(t, n, sizeof(*t), agent_cmp);
	size_t *o = xreallocarray(NULL, n, sizeof(*o));
	for (size_t i = 0; i < n; i++)
		o[i] = t[i].i;
	free(t);
	return o;
}

/* "{v,v,...}" of @n values: @what(i) for the agents in @order, as text. */
static char *int_array(const report_agent_seq_t *a, const size_t *order, size_t n,
		       int what)
{
	size_t cap = 22 * n + 3, len = 0;
	char *s = xmalloc(cap);
	s[len++] = '{';
	for (size_t i = 0; i < n; i++) {
		const report_agent_seq_t *x = &a[order[i]];
		long long v = what == 0 ? (long long)(int64_t)x->agent_id :
			      what == 1 ? (long long)(uint32_t)x->caller :
					  (long long)x->stored;
		len += (size_t)snprintf(s + len, cap - len, "%s%lld", i ? "," : "", v);
	}
	snprintf(s + len, cap - len, "}");
	return s;
}

/*
 * Lock the agents' rows (created with seq 0 if new), in id order so that
 * two reporters lock alike; each agent whose stored seq is at or above its
 * smallest seq in this batch is dropped (stored elsewhere), the others get
 * the seq they will have. Return: 0, -ETIMEDOUT or -EIO.
 */
static int agents_lock(PGconn *conn, report_agent_seq_t *a, const size_t *order, size_t n)
{
	char *ids = int_array(a, order, n, 0), *callers = int_array(a, order, n, 1);
	const char *params[2] = { ids, callers };
	PGresult *res = PQexecParams(conn,
		"INSERT INTO report_agent_seq AS s (agent_id, caller, seq) "
		"SELECT id, '0.0.0.0'::inet + c, 0 FROM unnest($1::bigint[], $2::bigint[]) "
		"  AS t(id, c) ORDER BY id "
		"ON CONFLICT (agent_id) DO UPDATE SET seq = s.seq RETURNING agent_id, seq",
		2, NULL, params, NULL, NULL, 0);
	free(ids);
	free(callers);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) != n) {
		rc = store_failed(conn, res, "agent seq lock");
		PQclear(res);
		return rc;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		int64_t id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		uint64_t seq = strtoull(PQgetvalue(res, r, 1), NULL, 10);
		/* Binary search in id order. */
		size_t lo = 0, hi = n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if ((int64_t)a[order[mid]].agent_id < id)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == n || (int64_t)a[order[lo]].agent_id != id) {
			log_warn("reporter: agent seq lock: an agent not asked for");
			rc = -EIO;
			break;
		}
		report_agent_seq_t *x = &a[order[lo]];
		x->dropped = seq >= x->min_seq;
		x->stored = x->dropped || seq > x->max_seq ? seq : x->max_seq;
	}
	PQclear(res);
	return rc;
}

/* The new seqs of the agents applied (the rows are locked). */
static int agents_update(PGconn *conn, const report_agent_seq_t *a, const size_t *order,
			 size_t n)
{
	size_t *kept = xreallocarray(NULL, n ? n : 1, sizeof(*kept)), k = 0;
	for (size_t i = 0; i < n; i++)
		if (!a[order[i]].dropped)
			kept[k++] = order[i];
	int rc = 0;
	if (k) {
		char *ids = int_array(a, kept, k, 0), *seqs = int_array(a, kept, k, 2);
		char *callers = int_array(a, kept, k, 1);
		const char *params[3] = { ids, seqs, callers };
		PGresult *res = PQexecParams(conn,
			"UPDATE report_agent_seq s SET seq = t.seq, "
			"  caller = '0.0.0.0'::inet + t.c, updated_at = now() "
			"FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS t(id, seq, c) "
			"WHERE s.agent_id = t.id",
			3, NULL, params, NULL, NULL, 0);
		rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 :
		     store_failed(conn, res, "agent seq update");
		PQclear(res);
		free(ids);
		free(seqs);
		free(callers);
	}
	free(kept);
	return rc;
}

/*
 * Whether a key comes twice in @v (but what @skip marks): then its rows are
 * summed before the merge, which costs a grouping. Keys of one pending map
 * are distinct, so only a batch with agents' parts can have one twice (two
 * agents of one caller, or an agent's and another's).
 */
static bool has_dup_keys(const report_entry_t *v, size_t n, const bool *skip)
{
	size_t cap = 64;
	while (cap < 2 * n)
		cap *= 2;
	uint32_t *t = xcalloc(cap, sizeof(*t));
	bool dup = false;
	for (size_t i = 0; i < n && !dup; i++) {
		if (skip && skip[i])
			continue;
		size_t j = report_key_hash(&v[i].key) & (cap - 1);
		for (; t[j]; j = (j + 1) & (cap - 1)) {
			if (report_key_eq(&v[t[j] - 1].key, &v[i].key)) {
				dup = true;
				break;
			}
		}
		t[j] = (uint32_t)i + 1;
	}
	free(t);
	return dup;
}

/* The history merge: rows as they are, or summed per (key, minute) first. */
#define HISTORY_MERGE(select, from) \
	"INSERT INTO host_status_history AS h " \
	" (minute, modid, cmdid, ip, port, caller, succ, err, lat_count, lat_sum_us," \
	"  lat_buckets) " select from \
	"ORDER BY modid, cmdid, ip, port, caller " \
	"ON CONFLICT (minute, modid, cmdid, ip, port, caller) DO UPDATE " \
	"SET succ = h.succ + EXCLUDED.succ, err = h.err + EXCLUDED.err, " \
	"    lat_count = h.lat_count + EXCLUDED.lat_count, " \
	"    lat_sum_us = h.lat_sum_us + EXCLUDED.lat_sum_us, " \
	"    lat_buckets = CASE WHEN EXCLUDED.lat_buckets IS NULL THEN h.lat_buckets " \
	"      WHEN h.lat_buckets IS NULL THEN EXCLUDED.lat_buckets " \
	"      ELSE lars_lat_add(h.lat_buckets, EXCLUDED.lat_buckets) END"

static const char history_plain[] = HISTORY_MERGE(
	"SELECT to_timestamp(minute), modid, cmdid, '0.0.0.0'::inet + ip, port, "
	"       '0.0.0.0'::inet + caller, succ_sum, err_sum, lat_count, lat_sum_us, "
	"       lat_buckets ",
	"FROM lars_report_stage ");
static const char history_summed[] = HISTORY_MERGE(
	"SELECT to_timestamp(minute), modid, cmdid, '0.0.0.0'::inet + ip, port, "
	"       '0.0.0.0'::inet + caller, sum(succ_sum), sum(err_sum), sum(lat_count), "
	"       sum(lat_sum_us), lars_lat_sum(lat_buckets) ",
	"FROM lars_report_stage GROUP BY minute, modid, cmdid, ip, port, caller ");

int report_store_batch(PGconn *conn, report_entry_t *v, size_t n,
		       report_agent_seq_t *agents, size_t n_agents, size_t *rowsp)
{
	*rowsp = 0;
	if (n == 0 && n_agents == 0)
		return 0;
	if (pg_cmd(conn, "SET client_min_messages = warning") ||
	    pg_cmd(conn, "CREATE TEMP TABLE IF NOT EXISTS lars_report_stage ("
		      " minute bigint, modid integer, cmdid integer, ip bigint,"
		      " port integer, caller bigint, succ_sum bigint, err_sum bigint,"
		      " succ bigint, err bigint, overload boolean, ts bigint,"
		      " rx_us bigint, status boolean, lat_count bigint, lat_sum_us bigint,"
		      " lat_buckets bigint[])"
		      " ON COMMIT DELETE ROWS"))
		return -EIO;
	if (pg_cmd(conn, "BEGIN"))
		return -EIO;
	size_t *order = n_agents ? agents_order(agents, n_agents) : NULL;
	bool *skip = NULL;
	int rc = 0;
	if (n_agents) {
		rc = agents_lock(conn, agents, order, n_agents);
		if (rc)
			goto fail;
		for (size_t i = 0; i < n_agents; i++) {
			if (!agents[i].dropped)
				continue;
			if (!skip)
				skip = xcalloc(n, sizeof(*skip));
			for (size_t k = 0; k < agents[i].n; k++)
				skip[agents[i].first + k] = true;
		}
	}
	rc = copy_rows(conn, v, n, skip);
	if (rc)
		goto fail;
	/* A (key, minute) may come twice (two agents of one caller): summed
	 * first then, so each history row is touched once. */
	bool dup = n_agents && has_dup_keys(v, n, skip);
	rc = store_cmd(conn, dup ? history_summed : history_plain, "history merge");
	if (rc)
		goto fail;
	/* updated_at is when we received the report; the latest received wins
	 * (batches may commit out of order), never the latest claimed ts. */
	rc = store_cmd(conn,
		"INSERT INTO host_status AS s "
		" (modid, cmdid, ip, port, caller, succ, err, overload, ts, updated_at) "
		"SELECT DISTINCT ON (modid, cmdid, ip, port, caller) modid, cmdid, '0.0.0.0'::inet + ip, port, '0.0.0.0'::inet + caller, "
		"       succ, err, overload, to_timestamp(ts), "
		"       timestamptz 'epoch' + rx_us * interval '1 microsecond' "
		"FROM lars_report_stage WHERE status "
		"ORDER BY modid, cmdid, ip, port, caller, rx_us DESC "
		/* An interval without calls (a state change, a quiet window) keeps
		 * the counts and time of the last one with calls (issue 20.5):
		 * the latest status then shows them with their age, not zeros. */
		"ON CONFLICT (modid, cmdid, ip, port, caller) DO UPDATE "
		"SET succ = CASE WHEN EXCLUDED.succ + EXCLUDED.err > 0 THEN EXCLUDED.succ ELSE s.succ END, "
		"    err = CASE WHEN EXCLUDED.succ + EXCLUDED.err > 0 THEN EXCLUDED.err ELSE s.err END, "
		"    ts = CASE WHEN EXCLUDED.succ + EXCLUDED.err > 0 THEN EXCLUDED.ts ELSE s.ts END, "
		"    overload = EXCLUDED.overload, updated_at = EXCLUDED.updated_at "
		"WHERE s.updated_at <= EXCLUDED.updated_at",
		"status merge");
	if (rc)
		goto fail;
	if (n_agents) {
		rc = agents_update(conn, agents, order, n_agents);
		if (rc)
			goto fail;
	}
	rc = store_cmd(conn, "COMMIT", "COMMIT");
	if (rc)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (!skip || !skip[i])
			*rowsp += v[i].n_mins;
	goto out;
fail:
	pg_cmd(conn, "ROLLBACK");
out:
	free(order);
	free(skip);
	return rc;
}

int report_store_prune(PGconn *conn, int days, int future_s, report_prune_t *out)
{
	char d[16], f[16], a[16];
	snprintf(d, sizeof(d), "%d", days);
	snprintf(f, sizeof(f), "%d", future_s);
	snprintf(a, sizeof(a), "%d", REPORT_PARTITIONS_AHEAD);
	memset(out, 0, sizeof(*out));
	/* Partitions ahead, whole days past the retention dropped, expired
	 * rows in the DEFAULT partition deleted: deploy/sql/007. */
	const char *mp[2] = { a, d };
	PGresult *res = pg_exec(conn, "SELECT created, dropped, rows_removed "
				      "FROM lars_history_maintain($1::int, $2::int)",
				2, mp, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	out->created = atoi(PQgetvalue(res, 0, 0));
	out->dropped = atoi(PQgetvalue(res, 0, 1));
	out->rows = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	PQclear(res);
	/* Rows dated beyond our clock + the skew can only come from before the
	 * ts was checked (a forged or broken time): they would never age out.
	 * Partition pruning keeps this to the days ahead and the DEFAULT one. */
	const char *params[1] = { f };
	res = pg_exec(conn,
		"DELETE FROM host_status_history WHERE minute > now() + make_interval(secs => $1::int)",
		1, params, PGRES_COMMAND_OK);
	if (!res)
		return -EIO;
	out->rows += strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}
