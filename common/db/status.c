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
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "listq.h"
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

static int hosts_query(PGconn *conn, const status_filter_t *f, const char *net, int32_t max_age_s,
		       status_host_t **rowsp, size_t *n_rowsp);

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
	return hosts_query(conn, f, NULL, max_age_s, rowsp, n_rowsp);
}

/**
 * status_hosts_at() - the hosts at an address, in every route.
 * @conn: an open connection
 * @net: an address or a network, "a.b.c.d/n" (route_data_ip, migration 012)
 * @max_age_s: as status_hosts()'s
 * @rowsp: gets the rows (free()), by modid, cmdid, ip and port
 * @n_rowsp: gets their number
 *
 * The console's "find a host": every route that holds it, with its state in each.
 * Return: 0, or -EIO (logged; outputs untouched).
 */
int status_hosts_at(PGconn *conn, const char *net, int32_t max_age_s, status_host_t **rowsp,
		    size_t *n_rowsp)
{
	return hosts_query(conn, NULL, net, max_age_s, rowsp, n_rowsp);
}

/* status_hosts() of the routes @f names and, with @net, of the hosts in it. */
static int hosts_query(PGconn *conn, const status_filter_t *f, const char *net, int32_t max_age_s,
		       status_host_t **rowsp, size_t *n_rowsp)
{
	char mbuf[16], cbuf[16], abuf[16];
	const char *params[4];
	filter_params(f, mbuf, cbuf, params);
	params[2] = NULL;
	params[3] = net;
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
		" WHERE " ROUTE_FILTER("r.") " AND ($4::inet IS NULL OR r.ip <<= $4::inet)"
		" ORDER BY r.modid, r.cmdid, r.ip, r.port",
		4, params, PGRES_TUPLES_OK);
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

/* ---- the overview: a page of routes ---- */

/*
 * DESIGN: the overview never sums every host's reports per request. Its
 * unhealthy routes come from a range scan of the partial index
 * host_status_unhealthy (migration 012: the latest reports that say
 * overloaded or whose error share is over fail_pct; a host failing on its
 * callers' sums has at least one such report), whose hosts alone have
 * their callers summed: the cost is the unhealthy hosts', not the fleet's. In the default order
 * (unhealthy first, then by route) the rest is read a page at a time in
 * route order from the indexes of route_data and cmdid_config, and only the
 * routes on the page have their host counts, health and last change read.
 * A search or another order lists the routes that match first (all of them,
 * to sort and count them), so its cost grows with the matches.
 */

/* A host's callers' sums @succ, @err say it fails at the rate @pct. */
#define HOST_FAILING(succ, err, pct) \
	"(" err " > 0 AND " err " * 100.0 > " pct " * (" succ " + " err "))"

/* The key of host_status_unhealthy (migration 012): a report's error share,
 * 2 when it says overloaded. */
#define UNHEALTHY_KEY(t) \
	"(CASE WHEN " t "overload THEN 2.0 ELSE " t "err::float8 / nullif(" t "succ + " t "err, 0) END)"

/* The unhealthy routes: (modid, cmdid, failing, overloaded) per route with a
 * failing or overloaded host, @age and @pct naming the parameters of the max
 * age and the failing rate, @where more conditions on the candidate report h.
 * (The LATERAL ... LIMIT 1 keeps the check that the host is still in its
 * route an index lookup per candidate, never a scan of route_data.) */
#define UNHEALTHY(age, pct, where) \
	"SELECT b.modid, b.cmdid," \
	"  count(*) FILTER (WHERE " HOST_FAILING("s.succ", "s.err", pct) ") AS failing," \
	"  count(*) FILTER (WHERE s.overload) AS overloaded" \
	" FROM (SELECT DISTINCT h.modid, h.cmdid, h.ip, h.port FROM host_status h" \
	"   WHERE (h.overload OR h.err > 0) AND " UNHEALTHY_KEY("h.") " > " pct " / 100.0" \
	"   AND h.updated_at > now() - make_interval(secs => " age ")" where ") b" \
	" CROSS JOIN LATERAL (SELECT 1 FROM route_data r WHERE r.modid = b.modid" \
	"   AND r.cmdid = b.cmdid AND r.ip = b.ip AND r.port = b.port LIMIT 1) r" \
	" CROSS JOIN LATERAL (SELECT bool_or(x.overload) AS overload, sum(x.succ) AS succ," \
	"   sum(x.err) AS err FROM host_status x WHERE x.modid = b.modid AND x.cmdid = b.cmdid" \
	"   AND x.ip = b.ip AND x.port = b.port" \
	"   AND x.updated_at > now() - make_interval(secs => " age ")) s" \
	" GROUP BY b.modid, b.cmdid" \
	" HAVING count(*) FILTER (WHERE s.overload OR " HOST_FAILING("s.succ", "s.err", pct) ") > 0"

/* A route's key in one bigint, for sets of routes passed as one array. */
#define ROUTE_KEY(t) "(" t "modid::bigint * 4294967296 + " t "cmdid)"

/* (modid, cmdid) keys of a page, as PostgreSQL array text. */
typedef struct keys {
	int32_t *modid, *cmdid;
	size_t n, cap;
} keys_t;

static void keys_add(keys_t *k, int32_t modid, int32_t cmdid)
{
	if (k->n == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 128;
		k->modid = xrealloc(k->modid, k->cap * sizeof(*k->modid));
		k->cmdid = xrealloc(k->cmdid, k->cap * sizeof(*k->cmdid));
	}
	k->modid[k->n] = modid;
	k->cmdid[k->n] = cmdid;
	k->n++;
}

static void keys_deinit(keys_t *k)
{
	free(k->modid);
	free(k->cmdid);
	*k = (keys_t){ 0 };
}

/* "{1,2,3}" of @v[from..from+n) (@key: modid * 2^32 + cmdid of both arrays). */
static char *array_text(const int32_t *v, const int32_t *v2, size_t from, size_t n)
{
	size_t cap = 3 + 22 * n, len = 0;
	char *s = xmalloc(cap);
	s[len++] = '{';
	for (size_t i = from; i < from + n; i++) {
		int64_t x = v2 ? (int64_t)v[i] * 4294967296LL + v2[i] : v[i];
		len += (size_t)snprintf(s + len, cap - len, "%s%" PRId64, i > from ? "," : "", x);
	}
	s[len++] = '}';
	s[len] = '\0';
	return s;
}

/* Parses PostgreSQL int array text "{1,2}" into @out (appending). */
static void array_parse(const char *s, int32_t **outp, size_t *np)
{
	size_t n = 0, cap = 0;
	int32_t *out = NULL;
	for (const char *p = s; *p; ) {
		if (*p == '-' || (*p >= '0' && *p <= '9')) {
			char *end;
			long v = strtol(p, &end, 10);
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				out = xrealloc(out, cap * sizeof(*out));
			}
			out[n++] = (int32_t)v;
			p = end;
		} else {
			p++;
		}
	}
	*outp = out;
	*np = n;
}

/* The health of the routes @k in that order (descriptions, hosts, counts,
 * last change) into @page->rows. */
static int page_details(PGconn *conn, const status_list_t *l, const keys_t *k, size_t n,
			status_page_t *page)
{
	if (n == 0)
		return 0;
	char abuf[16], pbuf[32];
	snprintf(abuf, sizeof(abuf), "%d", l->max_age_s);
	snprintf(pbuf, sizeof(pbuf), "%.17g", l->fail_pct);
	char *mods = array_text(k->modid, NULL, 0, n), *cmds = array_text(k->cmdid, NULL, 0, n);
	const char *params[4] = { mods, cmds, abuf, pbuf };
	PGresult *res = pg_exec(conn,
		"SELECT k.modid, k.cmdid, coalesce(m.description, ''), coalesce(c.description, ''),"
		"  (SELECT count(*) FROM route_data r WHERE r.modid = k.modid AND r.cmdid = k.cmdid),"
		"  coalesce(a.reporting, 0), coalesce(a.overloaded, 0), coalesce(a.failing, 0),"
		"  ch.version, " UNIX_S("ch.changed_at")
		" FROM unnest($1::int[], $2::int[]) WITH ORDINALITY AS k(modid, cmdid, ord)"
		" LEFT JOIN modid_config m ON m.modid = k.modid"
		" LEFT JOIN cmdid_config c ON c.modid = k.modid AND c.cmdid = k.cmdid"
		" LEFT JOIN LATERAL (SELECT count(*) AS reporting,"
		"     count(*) FILTER (WHERE s.overload) AS overloaded,"
		"     count(*) FILTER (WHERE " HOST_FAILING("s.succ", "s.err", "$4::float8") ") AS failing"
		"   FROM (SELECT bool_or(h.overload) AS overload, sum(h.succ) AS succ, sum(h.err) AS err"
		"     FROM host_status h JOIN route_data r ON r.modid = h.modid AND r.cmdid = h.cmdid"
		"       AND r.ip = h.ip AND r.port = h.port"
		"     WHERE h.modid = k.modid AND h.cmdid = k.cmdid"
		"       AND h.updated_at > now() - make_interval(secs => $3::int)"
		"     GROUP BY h.ip, h.port) s) a ON true"
		" LEFT JOIN LATERAL (SELECT version, changed_at FROM route_change rc"
		"   WHERE rc.modid = k.modid AND rc.cmdid = k.cmdid"
		"   ORDER BY version DESC LIMIT 1) ch ON true"
		" ORDER BY k.ord",
		4, params, PGRES_TUPLES_OK);
	free(mods);
	free(cmds);
	if (!res)
		return -EIO;
	size_t got = (size_t)PQntuples(res);
	page->rows = got ? xcalloc(got, sizeof(*page->rows)) : NULL;
	for (size_t i = 0; i < got; i++) {
		status_route_t *r = &page->rows[i];
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
	page->n_rows = got;
	PQclear(res);
	return 0;
}

/*
 * The routes with modid $1..$2 in route order (@cmp "<" and @dir "DESC":
 * backwards), those whose ROUTE_KEY is in $3 left out, $4 of them from the
 * $5th. A walk from one route to the next by an index probe each in
 * route_data and cmdid_config (a loose index scan): a page costs its
 * length plus its offset in probes, never a pass over every host.
 */
#define WALK_NEXT(t, cmp, dir, after) \
	"(SELECT modid, cmdid FROM " t " WHERE modid BETWEEN $1::int AND $2::int" after \
	" ORDER BY modid " dir ", cmdid " dir " LIMIT 1)"
#define WALK_AFTER(cmp) " AND (modid, cmdid) " cmp " (w.modid, w.cmdid)"
#define WALK(cmp, dir) \
	"WITH RECURSIVE walk(modid, cmdid) AS (" \
	"  (SELECT modid, cmdid FROM (" WALK_NEXT("route_data", cmp, dir, "") \
	"    UNION ALL " WALK_NEXT("cmdid_config", cmp, dir, "") ") f" \
	"   ORDER BY modid " dir ", cmdid " dir " LIMIT 1)" \
	"  UNION ALL" \
	"  SELECT nx.modid, nx.cmdid FROM walk w CROSS JOIN LATERAL (" \
	"    SELECT modid, cmdid FROM (" WALK_NEXT("route_data", cmp, dir, WALK_AFTER(cmp)) \
	"      UNION ALL " WALK_NEXT("cmdid_config", cmp, dir, WALK_AFTER(cmp)) ") n" \
	"    ORDER BY modid " dir ", cmdid " dir " LIMIT 1) nx)" \
	" SELECT modid, cmdid FROM walk WHERE NOT (" ROUTE_KEY("") " = ANY ($3::bigint[]))" \
	" LIMIT $4::bigint OFFSET $5::bigint"

/* The default orders (no search): unhealthy routes first, or by route; the
 * keys of the page (and one more if there is more) into @k. */
static int page_keys_fast(PGconn *conn, const status_list_t *l, status_page_t *page, keys_t *k)
{
	char abuf[16], pbuf[32], mbuf[16], lo[16], hi[16], nbuf[24], obuf[24];
	snprintf(abuf, sizeof(abuf), "%d", l->max_age_s);
	snprintf(pbuf, sizeof(pbuf), "%.17g", l->fail_pct);
	snprintf(mbuf, sizeof(mbuf), "%d", l->modid);
	bool health = l->sort == STATUS_SORT_HEALTH;
	keys_t bad = { 0 };
	if (health || l->unhealthy) {
		const char *params[3] = { abuf, pbuf, l->modid >= 0 ? mbuf : NULL };
		PGresult *res = pg_exec(conn,
			UNHEALTHY("$1::int", "$2::float8", " AND ($3::int IS NULL OR h.modid = $3::int)")
			" ORDER BY failing DESC, overloaded DESC, b.modid, b.cmdid",
			3, params, PGRES_TUPLES_OK);
		if (!res)
			return -EIO;
		for (int i = 0; i < PQntuples(res); i++)
			keys_add(&bad, col_i32(res, i, 0), col_i32(res, i, 1));
		PQclear(res);
	}
	page->n_unhealthy = (int64_t)bad.n;
	uint64_t ffrom, fn, sfrom, sn;
	listq_split(l->offset, l->limit, health ? bad.n : 0, &ffrom, &fn, &sfrom, &sn);
	for (uint64_t i = ffrom; i < ffrom + fn; i++)
		keys_add(k, bad.modid[i], bad.cmdid[i]);
	if (l->unhealthy) {
		/* Only the unhealthy ones: counted, and the page is theirs. */
		page->total = (int64_t)bad.n;
		page->more = ffrom + fn < bad.n;
		keys_deinit(&bad);
		return 0;
	}
	if (health && fn == l->limit && ffrom + fn < bad.n) {
		page->more = true;
		keys_deinit(&bad);
		return 0;
	}
	/* The rest in route order, the unhealthy ones left out. */
	snprintf(lo, sizeof(lo), "%d", l->modid >= 0 ? l->modid : 0);
	snprintf(hi, sizeof(hi), "%d", l->modid >= 0 ? l->modid : INT32_MAX);
	snprintf(nbuf, sizeof(nbuf), "%" PRIu64, sn);
	snprintf(obuf, sizeof(obuf), "%" PRIu64, sfrom);
	char *skip = array_text(bad.modid, bad.cmdid, 0, health ? bad.n : 0);
	keys_deinit(&bad);
	const char *params[5] = { lo, hi, skip, nbuf, obuf };
	PGresult *res = pg_exec(conn, l->desc && !health ? WALK("<", "DESC") : WALK(">", ""),
				5, params, PGRES_TUPLES_OK);
	free(skip);
	if (!res)
		return -EIO;
	size_t got = (size_t)PQntuples(res);
	for (size_t i = 0; i < got; i++)
		keys_add(k, col_i32(res, (int)i, 0), col_i32(res, (int)i, 1));
	PQclear(res);
	page->more = got == sn;
	if (page->more)
		k->n--; /* the one past the page */
	return 0;
}

/* The routes a search matches (the ids CTE): parameters $1 modid, $2 cmdid,
 * $3 id (modid or cmdid), $4 net (a host in it), $5 like (a description). */
#define IDS_COND \
	"($1::int IS NULL OR modid = $1::int) AND ($2::int IS NULL OR cmdid = $2::int)" \
	" AND ($3::bigint IS NULL OR modid = $3::bigint OR cmdid = $3::bigint)"
#define IDS \
	"SELECT modid, cmdid FROM cmdid_config WHERE " IDS_COND " AND $4::inet IS NULL" \
	"  AND ($5::text IS NULL OR description ILIKE $5::text" \
	"       OR modid IN (SELECT modid FROM modid_config WHERE description ILIKE $5::text))" \
	" UNION SELECT DISTINCT modid, cmdid FROM route_data WHERE " IDS_COND \
	"  AND ($4::inet IS NULL OR ip <<= $4::inet)" \
	"  AND ($5::text IS NULL" \
	"       OR modid IN (SELECT modid FROM modid_config WHERE description ILIKE $5::text))"

/* A search or another order: every route that matches, sorted and counted
 * in SQL; the page's keys (and one more) into @k. */
static int page_keys_sorted(PGconn *conn, const status_list_t *l, status_page_t *page, keys_t *k)
{
	/* Host counts of every route by one pass over route_data, or, for the
	 * routes a search found, one index lookup each. */
	bool search = l->cmdid >= 0 || l->id >= 0 || l->net || l->like || l->modid >= 0;
	/* ORDER BY of each sort, descending and ascending (ties ascending). */
	static const char *const order[][2] = {
		[STATUS_SORT_HEALTH] = { "failing DESC, overloaded DESC, modid, cmdid",
					 "failing, overloaded, modid, cmdid" },
		[STATUS_SORT_ROUTE] = { "modid DESC, cmdid DESC", "modid, cmdid" },
		[STATUS_SORT_HOSTS] = { "hosts DESC, modid, cmdid", "hosts, modid, cmdid" },
		[STATUS_SORT_FAILING] = { "failing DESC, overloaded DESC, modid, cmdid",
					  "failing, overloaded, modid, cmdid" },
		[STATUS_SORT_OVERLOADED] = { "overloaded DESC, failing DESC, modid, cmdid",
					     "overloaded, failing, modid, cmdid" },
		[STATUS_SORT_CHANGED] = { "version DESC NULLS LAST, modid, cmdid",
					  "version NULLS FIRST, modid, cmdid" },
		[STATUS_SORT_DESCRIPTION] = { "description DESC, modid, cmdid",
					      "description, modid, cmdid" },
	};
	char sql[4096];
	/* Only the sort's own column is read for every route that matches. */
	snprintf(sql, sizeof(sql),
		 "WITH ids AS (%s),%s"
		 " bad AS (" UNHEALTHY("$6::int", "$7::float8", "") "),"
		 " listed AS (SELECT i.modid, i.cmdid, coalesce(b.failing, 0) AS failing,"
		 "   coalesce(b.overloaded, 0) AS overloaded, %s AS hosts, %s AS version,"
		 "   %s AS description"
		 "   FROM ids i LEFT JOIN bad b ON b.modid = i.modid AND b.cmdid = i.cmdid"
		 "   WHERE NOT $8::bool OR b.modid IS NOT NULL),"
		 " page AS (SELECT modid, cmdid, row_number() OVER (ORDER BY %s) AS ord FROM listed"
		 "   ORDER BY %s LIMIT $9::bigint OFFSET $10::bigint)"
		 " SELECT (SELECT count(*) FROM listed),"
		 "   (SELECT count(*) FROM listed WHERE failing + overloaded > 0),"
		 "   (SELECT array_agg(modid ORDER BY ord) FROM page),"
		 "   (SELECT array_agg(cmdid ORDER BY ord) FROM page)",
		 IDS, l->sort == STATUS_SORT_HOSTS && !search
			 ? " counts AS (SELECT modid, cmdid, count(*) AS n FROM route_data GROUP BY 1, 2),"
			 : "",
		 l->sort != STATUS_SORT_HOSTS ? "0"
		 : search ? "(SELECT count(*) FROM route_data r WHERE r.modid = i.modid AND r.cmdid = i.cmdid)"
			  : "coalesce((SELECT n FROM counts WHERE counts.modid = i.modid"
			    " AND counts.cmdid = i.cmdid), 0)",
		 l->sort == STATUS_SORT_CHANGED
			 ? "(SELECT max(version) FROM route_change rc WHERE rc.modid = i.modid"
			   " AND rc.cmdid = i.cmdid)"
			 : "0::bigint",
		 l->sort == STATUS_SORT_DESCRIPTION
			 ? "(SELECT coalesce(c.description, '') FROM (SELECT 1) one LEFT JOIN cmdid_config c"
			   " ON c.modid = i.modid AND c.cmdid = i.cmdid)"
			 : "''",
		 order[l->sort][l->desc ? 0 : 1], order[l->sort][l->desc ? 0 : 1]);
	char mbuf[16], cbuf[16], ibuf[24], abuf[16], pbuf[32], nbuf[24], obuf[24];
	snprintf(mbuf, sizeof(mbuf), "%d", l->modid);
	snprintf(cbuf, sizeof(cbuf), "%d", l->cmdid);
	snprintf(ibuf, sizeof(ibuf), "%" PRId64, l->id);
	snprintf(abuf, sizeof(abuf), "%d", l->max_age_s);
	snprintf(pbuf, sizeof(pbuf), "%.17g", l->fail_pct);
	snprintf(nbuf, sizeof(nbuf), "%" PRIu64, l->limit + 1);
	snprintf(obuf, sizeof(obuf), "%" PRIu64, l->offset);
	const char *params[10] = {
		l->modid >= 0 ? mbuf : NULL, l->cmdid >= 0 ? cbuf : NULL, l->id >= 0 ? ibuf : NULL,
		l->net, l->like, abuf, pbuf, l->unhealthy ? "true" : "false", nbuf, obuf,
	};
	PGresult *res = pg_exec(conn, sql, 10, params, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	page->total = col_i64(res, 0, 0);
	page->n_unhealthy = col_i64(res, 0, 1);
	int32_t *mods = NULL, *cmds = NULL;
	size_t nm = 0, nc = 0;
	if (!PQgetisnull(res, 0, 2)) {
		array_parse(PQgetvalue(res, 0, 2), &mods, &nm);
		array_parse(PQgetvalue(res, 0, 3), &cmds, &nc);
	}
	PQclear(res);
	for (size_t i = 0; i < nm && i < nc; i++)
		keys_add(k, mods[i], cmds[i]);
	free(mods);
	free(cmds);
	page->more = k->n > l->limit;
	if (page->more)
		k->n = (size_t)l->limit;
	return 0;
}

/**
 * status_overview() - a page of routes with their health.
 * @conn: an open connection
 * @l: which routes, in which order, which page (see status_list_t)
 * @pagep: gets the page (free with status_page_deinit()); rows as
 *	status_route_t: a route is any (modid, cmdid) with hosts or a
 *	description, its counts per host (the sums over the host's callers'
 *	reports are what is compared with fail_pct, so one caller's errors
 *	are not two hosts)
 *
 * Without a search, in the default order (unhealthy first, or by route),
 * the cost is the page's and the unhealthy hosts', not the fleet's (see
 * DESIGN above); @pagep->total is then -1 (not counted) unless only the
 * unhealthy routes are asked for.
 * Return: 0, or -EIO (logged; @pagep untouched).
 */
int status_overview(PGconn *conn, const status_list_t *l, status_page_t *pagep)
{
	status_page_t page = { .total = -1 };
	keys_t k = { 0 };
	/* These queries read a few hundred rows by index; a parallel plan
	 * (picked for the unhealthy scan's estimate) costs more in starting
	 * its workers than it saves (about 60 ms against 2 ms here). */
	PGresult *set = pg_exec(conn, "SET max_parallel_workers_per_gather = 0", 0, NULL,
				PGRES_COMMAND_OK);
	if (!set)
		return -EIO;
	PQclear(set);
	bool search = l->cmdid >= 0 || l->id >= 0 || l->net || l->like;
	bool fast = !search && ((l->sort == STATUS_SORT_HEALTH && l->desc) ||
				(l->sort == STATUS_SORT_ROUTE && !l->unhealthy));
	int r = fast ? page_keys_fast(conn, l, &page, &k) : page_keys_sorted(conn, l, &page, &k);
	if (r == 0)
		r = page_details(conn, l, &k, k.n, &page);
	keys_deinit(&k);
	if (r) {
		status_page_deinit(&page);
		return r;
	}
	*pagep = page;
	return 0;
}

/**
 * status_page_deinit() - free the rows of a status_overview() page.
 * @page: the page (its rows NULL: nothing)
 */
void status_page_deinit(status_page_t *page)
{
	for (size_t i = 0; page->rows && i < page->n_rows; i++) {
		free(page->rows[i].mod_description);
		free(page->rows[i].description);
	}
	free(page->rows);
	page->rows = NULL;
	page->n_rows = 0;
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
