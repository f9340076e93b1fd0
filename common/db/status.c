// SPDX-License-Identifier: MIT
// Call statistics read back from PostgreSQL: the one copy of the status and
// history queries that larsctl and lars-admin share (see status.h).
//
// Counts leave the database as bigint (a sum too: more than 2^63 calls in
// one minute of one route is an error, not a number); times as Unix
// seconds; the error rate larsctl prints is rounded by SQL's round(x, 1),
// so it reads as it always did.
#include "status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_conn.h"
#include "xalloc.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define STATUS_LAT_MINUTES_TEXT STR(STATUS_LAT_MINUTES)

/* 100 * err / (succ + err) as tenths of a percent, NULL without calls. */
#define ERR_TENTHS(succ, err) \
	"(round(100.0 * (" err ") / nullif((" succ ") + (" err "), 0), 1) * 10)::int"
/* A timestamptz as whole Unix seconds. */
#define UNIX_S(t) "floor(extract(epoch FROM " t "))::bigint"
/* The first minute of a window of $3 minutes that ends with the current one. */
#define WINDOW_FIRST "(date_trunc('minute', now()) - make_interval(mins => $3::int - 1))"
/* The latency columns of summed history rows @h: count, mean, p99 (3 columns). */
#define LAT_COLS(h) \
	"coalesce(" h ".lat_count, 0)::bigint, " \
	"coalesce(" h ".lat_sum_us / nullif(" h ".lat_count, 0), 0)::bigint, " \
	"coalesce(lars_lat_quantile(" h ".lat_buckets, 0.99), 0)"
/* The sums LAT_COLS() reads, over history rows. */
#define LAT_SUMS \
	"sum(lat_count) AS lat_count, sum(lat_sum_us) AS lat_sum_us, " \
	"lars_lat_sum(lat_buckets) AS lat_buckets"
/* Optional route ids $1, $2 against @t's columns. */
#define ROUTE_FILTER(t) \
	"($1::int IS NULL OR " t "modid = $1::int) AND ($2::int IS NULL OR " t "cmdid = $2::int)"

/* The text parameters $1 (modid) and $2 (cmdid) of @f: NULL for any. */
static void filter_params(const status_filter_t *f, char mbuf[16], char cbuf[16],
			  const char *params[2])
{
	params[0] = params[1] = NULL;
	if (f && f->modid >= 0) {
		snprintf(mbuf, 16, "%d", f->modid);
		params[0] = mbuf;
	}
	if (f && f->cmdid >= 0) {
		snprintf(cbuf, 16, "%d", f->cmdid);
		params[1] = cbuf;
	}
}

static int64_t col_i64(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static int32_t col_i32(const PGresult *res, int row, int col)
{
	return (int32_t)strtol(PQgetvalue(res, row, col), NULL, 10);
}

/* An error rate column: NULL (no calls) is STATUS_ERR_TENTHS_NONE. */
static int32_t col_tenths(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? STATUS_ERR_TENTHS_NONE : col_i32(res, row, col);
}

/* LAT_COLS() at @col into the three fields. */
static void col_lat(const PGresult *res, int row, int col, int64_t *count, int64_t *mean,
		    int64_t *p99)
{
	*count = col_i64(res, row, col);
	*mean = col_i64(res, row, col + 1);
	*p99 = col_i64(res, row, col + 2);
}

static void col_addr(const PGresult *res, int row, int col, char out[STATUS_ADDR_MAX])
{
	snprintf(out, STATUS_ADDR_MAX, "%s", PQgetvalue(res, row, col));
}

/* Room for the rows of @res (NULL for none). */
static void *rows_alloc(const PGresult *res, size_t size)
{
	size_t n = (size_t)PQntuples(res);
	return n ? xcalloc(n, size) : NULL;
}

/**
 * status_callers() - the latest status per host and caller.
 * @conn: an open connection
 * @f: the routes (NULL: all)
 * @rowsp: gets the rows, by modid, cmdid, ip, port and caller; the caller
 *	frees them with free() (NULL when there are none)
 * @n_rowsp: gets their number
 *
 * One row per host_status row: what each agent reported last about each
 * host, whether or not the host is still in its route.
 * Return: 0, or -EIO (logged; *rowsp and *n_rowsp untouched).
 */
int status_callers(PGconn *conn, const status_filter_t *f, status_caller_t **rowsp,
		   size_t *n_rowsp)
{
	char mbuf[16], cbuf[16];
	const char *params[3];
	filter_params(f, mbuf, cbuf, params);
	params[2] = f ? f->caller : NULL;
	PGresult *res = pg_exec(conn,
		"SELECT s.modid, s.cmdid, host(s.ip), s.port, host(s.caller), s.succ, s.err, "
		"       " ERR_TENTHS("s.succ", "s.err") ", s.overload, "
		"       greatest(0, extract(epoch FROM now() - s.ts))::bigint, " LAT_COLS("l") " "
		"FROM host_status s LEFT JOIN LATERAL (SELECT " LAT_SUMS
		"  FROM host_status_history h WHERE h.modid = s.modid AND h.cmdid = s.cmdid"
		"  AND h.ip = s.ip AND h.port = s.port AND h.caller = s.caller"
		"  AND h.minute >= date_trunc('minute', now()) - make_interval(mins => "
		STATUS_LAT_MINUTES_TEXT " - 1)) l ON true "
		"WHERE " ROUTE_FILTER("s.") " AND ($3::inet IS NULL OR s.caller = $3::inet) "
		"ORDER BY s.modid, s.cmdid, s.ip, s.port, s.caller", 3, params, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	status_caller_t *rows = rows_alloc(res, sizeof(*rows));
	for (int i = 0; i < PQntuples(res); i++) {
		status_caller_t *r = &rows[i];
		r->modid = col_i32(res, i, 0);
		r->cmdid = col_i32(res, i, 1);
		col_addr(res, i, 2, r->ip);
		r->port = col_i32(res, i, 3);
		col_addr(res, i, 4, r->caller);
		r->succ = col_i64(res, i, 5);
		r->err = col_i64(res, i, 6);
		r->err_tenths = col_tenths(res, i, 7);
		r->overload = PQgetvalue(res, i, 8)[0] == 't';
		r->age_s = col_i64(res, i, 9);
		col_lat(res, i, 10, &r->lat_count, &r->lat_mean_us, &r->lat_p99_us);
	}
	*n_rowsp = (size_t)PQntuples(res);
	*rowsp = rows;
	PQclear(res);
	return 0;
}

/**
 * status_hosts() - the hosts of the routes, with their recent status.
 * @conn: an open connection
 * @f: the routes (NULL: all)
 * @max_age_s: count the reports received in the last @max_age_s seconds;
 *	0 reads the hosts alone (n_callers 0 for each)
 * @rowsp: gets the rows, by modid, cmdid, ip and port; the caller frees them
 *	with free() (NULL when there are none)
 * @n_rowsp: gets their number
 *
 * One row per route_data row (larsctl route list, the console's route page),
 * with the sums over its callers' latest reports when @max_age_s is given.
 * Return: 0, or -EIO (logged; *rowsp and *n_rowsp untouched).
 */
int status_hosts(PGconn *conn, const status_filter_t *f, int32_t max_age_s,
		 status_host_t **rowsp, size_t *n_rowsp)
{
	char mbuf[16], cbuf[16], abuf[16];
	const char *params[3];
	filter_params(f, mbuf, cbuf, params);
	params[2] = NULL;
	if (max_age_s > 0) {
		snprintf(abuf, sizeof(abuf), "%d", max_age_s);
		params[2] = abuf;
	}
	/* Without $3 the lateral part is a constant-false filter: never run. */
	PGresult *res = pg_exec(conn,
		"SELECT r.modid, r.cmdid, host(r.ip), r.port, " UNIX_S("r.created_at") ","
		"  s.callers, coalesce(s.succ, 0), coalesce(s.err, 0), coalesce(s.overload, false),"
		"  coalesce(" UNIX_S("s.updated_at") ", 0),"
		"  coalesce(floor(extract(epoch FROM now() - s.updated_at))::bigint, 0),"
		"  " LAT_COLS("l") ", r.weight, r.drain"
		" FROM route_data r LEFT JOIN LATERAL ("
		"   SELECT sum(h.succ)::bigint AS succ, sum(h.err)::bigint AS err,"
		"          bool_or(h.overload) AS overload, count(*) AS callers,"
		"          max(h.updated_at) AS updated_at"
		"   FROM host_status h WHERE $3::int IS NOT NULL"
		"   AND h.modid = r.modid AND h.cmdid = r.cmdid AND h.ip = r.ip AND h.port = r.port"
		"   AND h.updated_at > now() - make_interval(secs => $3::int)) s ON true"
		" LEFT JOIN LATERAL (SELECT " LAT_SUMS
		"   FROM host_status_history h WHERE $3::int IS NOT NULL"
		"   AND h.modid = r.modid AND h.cmdid = r.cmdid AND h.ip = r.ip AND h.port = r.port"
		"   AND h.minute > date_trunc('minute', now() - make_interval(secs => $3::int))"
		"       - interval '1 minute') l ON true"
		" WHERE " ROUTE_FILTER("r.") " ORDER BY r.modid, r.cmdid, r.ip, r.port",
		3, params, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	status_host_t *rows = rows_alloc(res, sizeof(*rows));
	for (int i = 0; i < PQntuples(res); i++) {
		status_host_t *r = &rows[i];
		r->modid = col_i32(res, i, 0);
		r->cmdid = col_i32(res, i, 1);
		col_addr(res, i, 2, r->ip);
		r->port = col_i32(res, i, 3);
		r->added_at = col_i64(res, i, 4);
		r->n_callers = PQgetisnull(res, i, 5) ? 0 : col_i64(res, i, 5);
		if (r->n_callers) {
			r->succ = col_i64(res, i, 6);
			r->err = col_i64(res, i, 7);
			r->overload = PQgetvalue(res, i, 8)[0] == 't';
			r->updated_at = col_i64(res, i, 9);
			r->age_s = col_i64(res, i, 10);
		}
		col_lat(res, i, 11, &r->lat_count, &r->lat_mean_us, &r->lat_p99_us);
		r->weight = col_i32(res, i, 14);
		r->drain = PQgetvalue(res, i, 15)[0] == 't';
	}
	*n_rowsp = (size_t)PQntuples(res);
	*rowsp = rows;
	PQclear(res);
	return 0;
}

/**
 * status_routes() - the health of each route.
 * @conn: an open connection
 * @modid: the routes of this modid, or -1 for all
 * @max_age_s: count the reports received in the last @max_age_s seconds
 * @fail_pct: a host fails when its error rate is over this (0..100)
 * @limit: at most this many routes (at least 1)
 * @rowsp: gets the rows, by modid and cmdid; the caller frees them with
 *	status_routes_free()
 * @n_rowsp: gets their number
 * @truncatedp: gets whether there were more than @limit
 *
 * A route is any (modid, cmdid) with hosts or a description. Its counts are
 * per host of the route: the sums over the host's callers are what is
 * compared with @fail_pct, so one caller's errors are not two hosts.
 * Return: 0, or -EIO (logged; outputs untouched).
 */
int status_routes(PGconn *conn, int32_t modid, int32_t max_age_s, double fail_pct, size_t limit,
		  status_route_t **rowsp, size_t *n_rowsp, bool *truncatedp)
{
	char abuf[16], pbuf[32], lbuf[24], mbuf[16];
	snprintf(abuf, sizeof(abuf), "%d", max_age_s);
	snprintf(pbuf, sizeof(pbuf), "%.17g", fail_pct);
	snprintf(lbuf, sizeof(lbuf), "%zu", limit);
	snprintf(mbuf, sizeof(mbuf), "%d", modid);
	const char *params[4] = { abuf, pbuf, lbuf, modid >= 0 ? mbuf : NULL };
	PGresult *res = pg_exec(conn,
		"WITH ids AS ("
		"  SELECT modid, cmdid FROM cmdid_config WHERE $4::int IS NULL OR modid = $4::int"
		"  UNION SELECT DISTINCT modid, cmdid FROM route_data"
		"  WHERE $4::int IS NULL OR modid = $4::int"
		"  ORDER BY 1, 2 LIMIT $3::int + 1),"
		" st AS ("
		"  SELECT h.modid, h.cmdid, h.ip, h.port, bool_or(h.overload) AS overload,"
		"         sum(h.succ) AS succ, sum(h.err) AS err"
		"  FROM host_status h JOIN ids USING (modid, cmdid)"
		"  JOIN route_data r USING (modid, cmdid, ip, port)"
		"  WHERE h.updated_at > now() - make_interval(secs => $1::int)"
		"  GROUP BY 1, 2, 3, 4),"
		" agg AS ("
		"  SELECT modid, cmdid, count(*) AS reporting,"
		"         count(*) FILTER (WHERE overload) AS overloaded,"
		"         count(*) FILTER (WHERE err > 0 AND err * 100.0 > $2::float8 * (succ + err))"
		"           AS failing"
		"  FROM st GROUP BY 1, 2)"
		" SELECT i.modid, i.cmdid, coalesce(m.description, ''), coalesce(c.description, ''),"
		"        (SELECT count(*) FROM route_data r"
		"          WHERE r.modid = i.modid AND r.cmdid = i.cmdid),"
		"        coalesce(a.reporting, 0), coalesce(a.overloaded, 0), coalesce(a.failing, 0),"
		"        ch.version, " UNIX_S("ch.changed_at")
		" FROM ids i LEFT JOIN modid_config m USING (modid)"
		" LEFT JOIN cmdid_config c USING (modid, cmdid)"
		" LEFT JOIN agg a USING (modid, cmdid)"
		" LEFT JOIN LATERAL (SELECT version, changed_at FROM route_change rc"
		"   WHERE rc.modid = i.modid AND rc.cmdid = i.cmdid"
		"   ORDER BY version DESC LIMIT 1) ch ON true"
		" ORDER BY 1, 2",
		4, params, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	size_t n = (size_t)PQntuples(res);
	bool truncated = n > limit;
	if (truncated)
		n = limit;
	status_route_t *rows = n ? xcalloc(n, sizeof(*rows)) : NULL;
	for (size_t i = 0; i < n; i++) {
		status_route_t *r = &rows[i];
		int row = (int)i;
		r->modid = col_i32(res, row, 0);
		r->cmdid = col_i32(res, row, 1);
		r->mod_description = xstrdup(PQgetvalue(res, row, 2));
		r->description = xstrdup(PQgetvalue(res, row, 3));
		r->n_hosts = col_i64(res, row, 4);
		r->n_reporting = col_i64(res, row, 5);
		r->n_overloaded = col_i64(res, row, 6);
		r->n_failing = col_i64(res, row, 7);
		r->has_change = !PQgetisnull(res, row, 8);
		if (r->has_change) {
			r->version = col_i64(res, row, 8);
			r->changed_at = col_i64(res, row, 9);
		}
	}
	*rowsp = rows;
	*n_rowsp = n;
	*truncatedp = truncated;
	PQclear(res);
	return 0;
}

/**
 * status_routes_free() - free the rows of status_routes().
 * @rows: the rows, or NULL
 * @n_rows: their number
 */
void status_routes_free(status_route_t *rows, size_t n_rows)
{
	for (size_t i = 0; rows && i < n_rows; i++) {
		free(rows[i].mod_description);
		free(rows[i].description);
	}
	free(rows);
}

/**
 * status_history() - per-minute sums per route over the last minutes.
 * @conn: an open connection
 * @f: the routes (NULL: all)
 * @minutes: the window, 1..STATUS_HISTORY_MINUTES_MAX: the current minute
 *	and the @minutes - 1 before it (and any minute after: an agent's clock
 *	may run ahead)
 * @firstp: gets the window's first minute, Unix seconds (NULL: not wanted)
 * @rowsp: gets the minutes with data, by minute, modid and cmdid; the caller
 *	frees them with free() (NULL when there are none)
 * @n_rowsp: gets their number
 *
 * One statement, so the window and the rows agree on what "now" is.
 * Return: 0; -EINVAL for @minutes out of range; -EIO (logged). Outputs are
 * set only on success.
 */
int status_history(PGconn *conn, const status_filter_t *f, int32_t minutes,
		   int64_t *firstp, status_minute_t **rowsp, size_t *n_rowsp)
{
	char mbuf[16], cbuf[16], nbuf[16];
	const char *params[4];
	if (minutes < 1 || minutes > STATUS_HISTORY_MINUTES_MAX)
		return -EINVAL;
	filter_params(f, mbuf, cbuf, params);
	snprintf(nbuf, sizeof(nbuf), "%d", minutes);
	params[2] = nbuf;
	params[3] = f ? f->caller : NULL;
	/* The window comes back on every row, and alone (h.* NULL) when no
	 * minute has data. */
	PGresult *res = pg_exec(conn,
		"SELECT " UNIX_S(WINDOW_FIRST) ", " UNIX_S("h.minute") ","
		"  extract(timezone FROM h.minute)::int, h.modid, h.cmdid,"
		"  h.succ::bigint, h.err::bigint, " ERR_TENTHS("h.succ", "h.err") ", "
		LAT_COLS("h")
		" FROM (SELECT 1) one LEFT JOIN ("
		"  SELECT minute, modid, cmdid, sum(succ) AS succ, sum(err) AS err, " LAT_SUMS
		"  FROM host_status_history WHERE minute >= " WINDOW_FIRST " AND " ROUTE_FILTER("")
		"  AND ($4::inet IS NULL OR caller = $4::inet)"
		"  GROUP BY minute, modid, cmdid) h ON true"
		" ORDER BY h.minute, h.modid, h.cmdid",
		4, params, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	int n = PQntuples(res);
	if (n == 1 && PQgetisnull(res, 0, 1))
		n = 0;
	status_minute_t *rows = n ? xcalloc((size_t)n, sizeof(*rows)) : NULL;
	for (int i = 0; i < n; i++) {
		status_minute_t *r = &rows[i];
		r->minute = col_i64(res, i, 1);
		r->utc_offset_s = col_i32(res, i, 2);
		r->modid = col_i32(res, i, 3);
		r->cmdid = col_i32(res, i, 4);
		r->succ = col_i64(res, i, 5);
		r->err = col_i64(res, i, 6);
		r->err_tenths = col_tenths(res, i, 7);
		col_lat(res, i, 8, &r->lat_count, &r->lat_mean_us, &r->lat_p99_us);
	}
	if (firstp)
		*firstp = col_i64(res, 0, 0);
	*n_rowsp = (size_t)n;
	*rowsp = rows;
	PQclear(res);
	return 0;
}

/**
 * status_history_hosts() - per-minute sums per host.
 * @conn: an open connection
 * @f: the routes and caller (NULL: all)
 * @minutes: the window, 1..STATUS_HISTORY_MINUTES_MAX, ending with this minute
 * @fail_pct: >= 0: only a host whose error rate in the minute is above it
 * @rowsp: gets the rows (free()), by minute, then error rate (highest
 *	first, a minute without calls last), then modid, cmdid, ip, port
 * @n_rowsp: gets their number
 *
 * Summed over the callers (or @f->caller's alone), so over a minute the
 * hosts of a route add up to status_history()'s row of it.
 * Return: 0, -EINVAL (@minutes), or -EIO (logged).
 */
int status_history_hosts(PGconn *conn, const status_filter_t *f, int32_t minutes,
			 double fail_pct, status_host_minute_t **rowsp, size_t *n_rowsp)
{
	char mbuf[16], cbuf[16], nbuf[16], pbuf[32];
	const char *params[5];
	if (minutes < 1 || minutes > STATUS_HISTORY_MINUTES_MAX)
		return -EINVAL;
	filter_params(f, mbuf, cbuf, params);
	snprintf(nbuf, sizeof(nbuf), "%d", minutes);
	snprintf(pbuf, sizeof(pbuf), "%.17g", fail_pct);
	params[2] = nbuf;
	params[3] = f ? f->caller : NULL;
	params[4] = fail_pct >= 0 ? pbuf : NULL;
	PGresult *res = pg_exec(conn,
		"SELECT " UNIX_S("h.minute") ", extract(timezone FROM h.minute)::int, h.modid,"
		"  h.cmdid, host(h.ip), h.port, h.succ::bigint, h.err::bigint, "
		ERR_TENTHS("h.succ", "h.err") ", " LAT_COLS("h")
		" FROM (SELECT minute, modid, cmdid, ip, port, sum(succ) AS succ, sum(err) AS err, "
		LAT_SUMS
		"  FROM host_status_history WHERE minute >= " WINDOW_FIRST " AND " ROUTE_FILTER("")
		"  AND ($4::inet IS NULL OR caller = $4::inet)"
		"  GROUP BY minute, modid, cmdid, ip, port) h"
		" WHERE $5::float8 IS NULL"
		"    OR (h.succ + h.err > 0 AND 100.0 * h.err / (h.succ + h.err) > $5::float8)"
		" ORDER BY h.minute, h.err::float8 / nullif(h.succ + h.err, 0) DESC NULLS LAST,"
		"   h.modid, h.cmdid, h.ip, h.port",
		5, params, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	status_host_minute_t *rows = rows_alloc(res, sizeof(*rows));
	for (int i = 0; i < PQntuples(res); i++) {
		status_host_minute_t *r = &rows[i];
		r->minute = col_i64(res, i, 0);
		r->utc_offset_s = col_i32(res, i, 1);
		r->modid = col_i32(res, i, 2);
		r->cmdid = col_i32(res, i, 3);
		col_addr(res, i, 4, r->ip);
		r->port = col_i32(res, i, 5);
		r->succ = col_i64(res, i, 6);
		r->err = col_i64(res, i, 7);
		r->err_tenths = col_tenths(res, i, 8);
		col_lat(res, i, 9, &r->lat_count, &r->lat_mean_us, &r->lat_p99_us);
	}
	*n_rowsp = (size_t)PQntuples(res);
	*rowsp = rows;
	PQclear(res);
	return 0;
}

/**
 * status_time_text() - a time as text.
 * @unix_s: Unix seconds
 * @offset_s: added first: a status_minute_t's utc_offset_s gives the time in
 *	the database session's zone (what to_char() would print), 0 UTC
 * @layout: STATUS_TIME_MINUTE or STATUS_TIME_ISO
 * @out: the buffer
 *
 * Return: @out ("?" for a time gmtime_r() cannot represent).
 */
const char *status_time_text(int64_t unix_s, int32_t offset_s, enum status_time_layout layout,
			     char out[STATUS_TIME_MAX])
{
	time_t t = (time_t)(unix_s + offset_s);
	struct tm tm;
	if (!gmtime_r(&t, &tm)) {
		snprintf(out, STATUS_TIME_MAX, "?");
		return out;
	}
	if (layout == STATUS_TIME_ISO)
		snprintf(out, STATUS_TIME_MAX, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	else
		snprintf(out, STATUS_TIME_MAX, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min);
	return out;
}
