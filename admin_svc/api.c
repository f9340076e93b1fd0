// SPDX-License-Identifier: MIT
// The console's JSON API. Input is checked on the loop (the route checks of
// common/db/route_write.c, as larsctl does), then one job on a PostgreSQL
// worker thread runs the queries and builds the answer, which the loop
// sends. Writes go through route_add/route_del/route_describe: the same
// transaction as larsctl, so lars-dns pushes them the same way. The status
// reads (overview health, a route's hosts, history) are common/db/status.c's,
// the queries larsctl prints: this file only turns their rows into JSON.
#include "admin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listq.h"
#include "log.h"
#include "route_write.h"
#include "status.h"
#include "xalloc.h"

/* timestamptz as ISO 8601 UTC text in SQL. */
#define ISO(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

#define CHANGES_LIMIT_MAX 1000
#define OVERVIEW_LIMIT_MAX 100000
#define HISTORY_MINUTES_MAX 1440

typedef struct api_call api_call_t;
typedef int (*api_work_fn)(PGconn *conn, api_call_t *c);

struct api_call {
	pg_job_t job;
	admin_t *a;
	http_req_t *req;
	api_work_fn work;
	/* inputs, checked on the loop */
	char modid[16], cmdid[16]; /* "" = not given */
	char limit[16], before[24], minutes[16], offset[24];
	/* lists: the search box, the order, only the unhealthy */
	listq_search_t search;
	int sort;
	bool desc;
	bool unhealthy;
	char fail_pct[32];
	int32_t max_age_s;
	route_entry_t entry;
	bool add;
	char *text;
	/* traffic control: a host's weight (tc_weight) or drain, a route's policy */
	bool tc_weight;
	int tc_value;
	route_policy_set_t policy;
	/* writes: who, for the change records and the log (migration 010) */
	char actor[192];
	/* outputs, built on the worker */
	json_t *out;
	unsigned status; /* 0 = 200 */
	char msg[192];
};

/* ---- answers from rows ---- */

/* One row as an object: column names are keys, types follow the columns
 * (int2/4/8 → integer, bool, float/numeric → real, NULL → null, else text). */
static json_t *row_json(const PGresult *res, int row)
{
	json_t *o = json_object();
	for (int col = 0; col < PQnfields(res); col++) {
		const char *v = PQgetvalue(res, row, col);
		json_t *j;
		if (PQgetisnull(res, row, col)) {
			j = json_null();
		} else {
			switch (PQftype(res, col)) {
			case 20: /* int8 */
			case 21: /* int2 */
			case 23: /* int4 */
				j = json_integer(strtoll(v, NULL, 10));
				break;
			case 16: /* bool */
				j = json_boolean(v[0] == 't');
				break;
			case 700: /* float4 */
			case 701: /* float8 */
			case 1700: /* numeric */
				j = json_real(strtod(v, NULL));
				break;
			default:
				j = json_string(v);
				if (!j) /* not UTF-8: never from our schema, but never crash */
					j = json_string("?");
			}
		}
		json_object_set_new(o, PQfname(res, col), j);
	}
	return o;
}

static json_t *rows_json(const PGresult *res)
{
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(arr, row_json(res, i));
	return arr;
}

/* Runs @sql and returns its rows as an array (NULL on failure). */
static json_t *query_rows(PGconn *conn, const char *sql, int n, const char *const *params)
{
	PGresult *res = pg_exec(conn, sql, n, params, PGRES_TUPLES_OK);
	if (!res)
		return NULL;
	json_t *arr = rows_json(res);
	PQclear(res);
	return arr;
}

/* Merges the first row of @sql into @o (false on failure; no row: nothing). */
static bool query_merge_row(PGconn *conn, json_t *o, const char *sql, int n,
			    const char *const *params)
{
	PGresult *res = pg_exec(conn, sql, n, params, PGRES_TUPLES_OK);
	if (!res)
		return false;
	if (PQntuples(res)) {
		json_t *row = row_json(res, 0);
		json_object_update(o, row);
		json_decref(row);
	}
	PQclear(res);
	return true;
}

static const char *opt(const char *s)
{
	return s[0] ? s : NULL; /* "" → SQL NULL */
}

/* ---- reads ---- */

/* The route of a call (modid and cmdid checked on the loop; "" = any). */
static status_filter_t route_filter(const api_call_t *c)
{
	status_filter_t f = { .modid = -1, .cmdid = -1 };
	if (c->modid[0])
		f.modid = (int32_t)strtol(c->modid, NULL, 10);
	if (c->cmdid[0])
		f.cmdid = (int32_t)strtol(c->cmdid, NULL, 10);
	return f;
}

/* The latency members of @o: "lat_count", and "lat_mean_us" and
 * "lat_p99_us" (null when no call had a duration). */
static void lat_json(json_t *o, int64_t count, int64_t mean_us, int64_t p99_us)
{
	json_object_set_new(o, "lat_count", json_integer(count));
	json_object_set_new(o, "lat_mean_us", count ? json_integer(mean_us) : json_null());
	json_object_set_new(o, "lat_p99_us", count ? json_integer(p99_us) : json_null());
}

/* A host of the route page: where it is, and its status (null when no
 * caller reported within the max age). */
static json_t *host_json(const status_host_t *r, double fail_pct)
{
	char when[STATUS_TIME_MAX];
	json_t *h = json_object();
	json_object_set_new(h, "ip", json_string(r->ip));
	json_object_set_new(h, "port", json_integer(r->port));
	json_object_set_new(h, "added_at",
			    json_string(status_time_text(r->added_at, 0, STATUS_TIME_ISO, when)));
	json_object_set_new(h, "weight", json_integer(r->weight));
	json_object_set_new(h, "drain", json_boolean(r->drain));
	if (r->n_callers == 0) {
		json_object_set_new(h, "status", json_null());
		return h;
	}
	double pct = r->succ + r->err ? 100.0 * (double)r->err / (double)(r->succ + r->err) : 0;
	json_t *st = json_object();
	json_object_set_new(st, "succ", json_integer(r->succ));
	json_object_set_new(st, "err", json_integer(r->err));
	json_object_set_new(st, "err_pct", json_real(pct));
	json_object_set_new(st, "overload", json_boolean(r->overload));
	json_object_set_new(st, "failing", json_boolean(r->err > 0 && pct > fail_pct));
	json_object_set_new(st, "callers", json_integer(r->n_callers));
	json_object_set_new(st, "age_s", json_integer(r->age_s));
	json_object_set_new(st, "updated_at",
			    json_string(status_time_text(r->updated_at, 0, STATUS_TIME_ISO, when)));
	lat_json(st, r->lat_count, r->lat_mean_us, r->lat_p99_us);
	json_object_set_new(h, "status", st);
	return h;
}

/* Text from the database as a JSON string (never NULL: our schema holds
 * UTF-8, but a bad byte must not crash the console). */
static json_t *text_json(const char *s)
{
	json_t *j = json_string(s);
	return j ? j : json_string("?");
}

static json_t *route_health_json(const status_route_t *r)
{
	char when[STATUS_TIME_MAX];
	json_t *o = json_object();
	json_object_set_new(o, "modid", json_integer(r->modid));
	json_object_set_new(o, "cmdid", json_integer(r->cmdid));
	json_object_set_new(o, "mod_description", text_json(r->mod_description));
	json_object_set_new(o, "description", text_json(r->description));
	json_object_set_new(o, "hosts", json_integer(r->n_hosts));
	json_object_set_new(o, "overloaded", json_integer(r->n_overloaded));
	json_object_set_new(o, "failing", json_integer(r->n_failing));
	json_object_set_new(o, "reporting", json_integer(r->n_reporting));
	json_object_set_new(o, "version", r->has_change ? json_integer(r->version) : json_null());
	json_object_set_new(o, "changed_at", r->has_change
			    ? json_string(status_time_text(r->changed_at, 0, STATUS_TIME_ISO, when))
			    : json_null());
	return o;
}

/* The overview's sort names (status.h enum status_sort, in its order) and
 * each one's direction when none is given. */
static const char *const overview_sorts[] = { "health", "route", "hosts", "failing", "overloaded",
					      "changed", "description" };
static const bool overview_sort_desc[] = { true, false, true, true, true, true, false };

static int work_overview(PGconn *conn, api_call_t *c)
{
	status_filter_t f = route_filter(c);
	const listq_search_t *q = &c->search;
	status_list_t l = {
		.modid = q->kind == LISTQ_ROUTE ? q->modid : f.modid,
		.cmdid = q->kind == LISTQ_ROUTE ? q->cmdid : -1,
		.id = q->kind == LISTQ_ID ? q->id : -1,
		.net = q->kind == LISTQ_NET ? q->net : NULL,
		.like = q->kind == LISTQ_TEXT ? q->like : NULL,
		.unhealthy = c->unhealthy,
		.sort = (enum status_sort)c->sort,
		.desc = c->desc,
		.offset = strtoull(c->offset, NULL, 10),
		.limit = strtoull(c->limit, NULL, 10),
		.max_age_s = c->max_age_s,
		.fail_pct = strtod(c->fail_pct, NULL),
	};
	/* A route search inside ?modid= of another module matches nothing. */
	if (q->kind == LISTQ_ROUTE && f.modid >= 0 && f.modid != q->modid)
		l.id = (int64_t)INT32_MAX + 1;
	status_page_t page;
	if (status_overview(conn, &l, &page))
		return -EIO;
	json_t *o = json_object();
	if (!query_merge_row(conn, o,
			     "SELECT version, " ISO("changed_at") " AS changed_at FROM route_version",
			     0, NULL)) {
		status_page_deinit(&page);
		json_decref(o);
		return -EIO;
	}
	json_t *routes = json_array();
	for (size_t i = 0; i < page.n_rows; i++)
		json_array_append_new(routes, route_health_json(&page.rows[i]));
	status_page_deinit(&page);
	json_object_set_new(o, "routes", routes);
	json_object_set_new(o, "offset", json_integer((json_int_t)l.offset));
	json_object_set_new(o, "limit", json_integer((json_int_t)l.limit));
	json_object_set_new(o, "sort", json_string(overview_sorts[c->sort]));
	json_object_set_new(o, "order", json_string(c->desc ? "desc" : "asc"));
	json_object_set_new(o, "more", json_boolean(page.more));
	json_object_set_new(o, "truncated", json_boolean(page.more));
	json_object_set_new(o, "total", page.total >= 0 ? json_integer(page.total) : json_null());
	json_object_set_new(o, "unhealthy", json_integer(page.n_unhealthy));
	c->out = o;
	return 0;
}

/* Find a host: every route with a host at the address (or in the network),
 * with its state in each. */
static int work_host(PGconn *conn, api_call_t *c)
{
	status_host_t *rows;
	size_t n;
	if (status_hosts_at(conn, c->search.net, c->max_age_s, &rows, &n))
		return -EIO;
	double fail_pct = strtod(c->fail_pct, NULL);
	json_t *hosts = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *h = host_json(&rows[i], fail_pct);
		json_object_set_new(h, "modid", json_integer(rows[i].modid));
		json_object_set_new(h, "cmdid", json_integer(rows[i].cmdid));
		json_array_append_new(hosts, h);
	}
	free(rows);
	c->out = json_object();
	json_object_set_new(c->out, "net", json_string(c->search.net));
	json_object_set_new(c->out, "hosts", hosts);
	return 0;
}

/* A route's policy: panic_threshold null = the agent's [loadbalance] value. */
static json_t *policy_json(const route_policy_t *p)
{
	json_t *o = json_object();
	json_object_set_new(o, "panic_threshold", p->panic_threshold == ROUTE_PANIC_AGENT
				? json_null() : json_integer(p->panic_threshold));
	json_object_set_new(o, "max_ejection_percent", json_integer(p->max_ejection_percent));
	json_object_set_new(o, "slow_start_s", json_integer(p->slow_start_s));
	return o;
}

static int work_route(PGconn *conn, api_call_t *c)
{
	const char *p[2] = { c->modid, c->cmdid };
	PGresult *res = pg_exec(conn,
		"SELECT $1::int AS modid, $2::int AS cmdid,"
		"  (SELECT description FROM modid_config WHERE modid = $1::int) AS mod_description,"
		"  (SELECT description FROM cmdid_config WHERE modid = $1::int AND cmdid = $2::int)"
		"    AS description,"
		"  (SELECT count(*) FROM route_data WHERE modid = $1::int AND cmdid = $2::int) AS n,"
		"  ch.version, " ISO("ch.changed_at") " AS changed_at"
		" FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT version, changed_at FROM route_change"
		"   WHERE modid = $1::int AND cmdid = $2::int ORDER BY version DESC LIMIT 1) ch ON true",
		2, p, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	bool known = !PQgetisnull(res, 0, 3) || strcmp(PQgetvalue(res, 0, 4), "0") != 0;
	json_t *o = row_json(res, 0);
	PQclear(res);
	if (!known) {
		json_decref(o);
		c->status = 404;
		snprintf(c->msg, sizeof(c->msg), "no route %s/%s", c->modid, c->cmdid);
		return 0;
	}
	json_object_del(o, "n");
	if (json_is_null(json_object_get(o, "description")))
		json_object_set_new(o, "description", json_string(""));
	if (json_is_null(json_object_get(o, "mod_description")))
		json_object_set_new(o, "mod_description", json_string(""));
	status_host_t *rows;
	size_t n;
	status_filter_t f = route_filter(c);
	if (status_hosts(conn, &f, c->max_age_s, &rows, &n)) {
		json_decref(o);
		return -EIO;
	}
	double fail_pct = strtod(c->fail_pct, NULL);
	json_t *hosts = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(hosts, host_json(&rows[i], fail_pct));
	free(rows);
	json_object_set_new(o, "hosts", hosts);
	route_policy_t pol;
	if (route_policy_read(conn, f.modid, f.cmdid, &pol)) {
		json_decref(o);
		return -EIO;
	}
	json_object_set_new(o, "policy", policy_json(&pol));
	c->out = o;
	return 0;
}

static int work_history(PGconn *conn, api_call_t *c)
{
	status_minute_t *rows;
	size_t n;
	int64_t first;
	int32_t minutes = (int32_t)strtol(c->minutes, NULL, 10);
	status_filter_t f = route_filter(c);
	if (status_history(conn, &f, minutes, &first, &rows, &n))
		return -EIO;
	/* Every minute of the window, 0 where nothing was reported (and
	 * nothing of the minutes after it: an agent's clock ahead). With
	 * modid and cmdid both given a minute has one row at most. */
	json_t *arr = json_array();
	size_t j = 0;
	for (int32_t i = 0; i < minutes; i++) {
		int64_t minute = first + 60 * (int64_t)i;
		const status_minute_t none = { .minute = minute }, *row = &none;
		for (; j < n && rows[j].minute <= minute; j++) {
			if (rows[j].minute == minute)
				row = &rows[j];
		}
		char when[STATUS_TIME_MAX];
		json_t *m = json_object();
		json_object_set_new(m, "minute", json_string(status_time_text(minute, 0, STATUS_TIME_ISO,
									     when)));
		json_object_set_new(m, "succ", json_integer(row->succ));
		json_object_set_new(m, "err", json_integer(row->err));
		lat_json(m, row->lat_count, row->lat_mean_us, row->lat_p99_us);
		json_array_append_new(arr, m);
	}
	free(rows);
	c->out = json_object();
	json_object_set_new(c->out, "minutes", arr);
	return 0;
}

/* The change log's sort names and their ORDER BY, descending and ascending. */
static const char *const changes_sorts[] = { "time", "route" };
static const char *const changes_order[][2] = {
	{ "id DESC", "id" },
	{ "rc.modid DESC, rc.cmdid DESC, id DESC", "rc.modid, rc.cmdid, id DESC" },
};

static int work_changes(PGconn *conn, api_call_t *c)
{
	const listq_search_t *q = &c->search;
	char qm[16], qc[16], qi[24], lim[24];
	snprintf(qm, sizeof(qm), "%d", q->modid);
	snprintf(qc, sizeof(qc), "%d", q->cmdid);
	snprintf(qi, sizeof(qi), "%" PRId64, q->id);
	snprintf(lim, sizeof(lim), "%lld", strtoll(c->limit, NULL, 10) + 1);
	const char *p[10] = {
		opt(c->modid), opt(c->cmdid), opt(c->before), lim, c->offset[0] ? c->offset : "0",
		q->kind == LISTQ_ROUTE ? qm : NULL,
		q->kind == LISTQ_ROUTE && q->cmdid >= 0 ? qc : NULL,
		q->kind == LISTQ_ID ? qi : NULL,
		q->kind == LISTQ_NET ? q->net : NULL,
		q->kind == LISTQ_TEXT ? q->like : NULL,
	};
	char sql[3072];
	snprintf(sql, sizeof(sql),
		"SELECT id, rc.version, rc.modid, rc.cmdid, action, host(ip) AS ip, port, detail, actor,"
		"  " ISO("changed_at") " AS changed_at,"
		"  p.pushed, p.acked, p.no_ack, p.slowest_ms"
		" FROM route_change rc LEFT JOIN LATERAL ("
		"   SELECT sum(pushed)::int AS pushed, sum(acked)::int AS acked,"
		"     sum(no_ack)::int AS no_ack, max(slowest_ms)::int AS slowest_ms"
		"   FROM route_propagation rp WHERE rp.version = rc.version AND rp.modid = rc.modid"
		"     AND rp.cmdid = rc.cmdid HAVING count(*) > 0) p ON true"
		" WHERE ($1::int IS NULL OR rc.modid = $1::int) AND ($2::int IS NULL OR rc.cmdid = $2::int)"
		"   AND ($3::bigint IS NULL OR id < $3::bigint)"
		"   AND ($6::int IS NULL OR rc.modid = $6::int) AND ($7::int IS NULL OR rc.cmdid = $7::int)"
		"   AND ($8::bigint IS NULL OR rc.modid = $8::bigint OR rc.cmdid = $8::bigint)"
		"   AND ($9::inet IS NULL OR ip <<= $9::inet)"
		"   AND ($10::text IS NULL OR actor ILIKE $10::text OR detail ILIKE $10::text"
		"        OR action ILIKE $10::text)"
		" ORDER BY %s LIMIT $4::int OFFSET $5::bigint",
		changes_order[c->sort][c->desc ? 0 : 1]);
	json_t *rows = query_rows(conn, sql, 10, p);
	if (!rows)
		return -EIO;
	size_t limit = strtoul(c->limit, NULL, 10);
	bool more = json_array_size(rows) > limit;
	if (more)
		json_array_remove(rows, limit);
	c->out = json_object();
	json_object_set_new(c->out, "changes", rows);
	json_object_set_new(c->out, "more", json_boolean(more));
	json_object_set_new(c->out, "sort", json_string(changes_sorts[c->sort]));
	json_object_set_new(c->out, "order", json_string(c->desc ? "desc" : "asc"));
	return 0;
}

/* Every agent connected to a lars-dns (lars_dns_agent), lagging ones first. */
static int work_agents(PGconn *conn, api_call_t *c)
{
	json_t *rows = query_rows(conn,
		"SELECT instance, peer, acks, CASE WHEN acks THEN to_hex(agent_id) END AS agent_id,"
		"  host_name, host(caller) AS caller, " ISO("connected_at") " AS connected_at,"
		"  subscriptions, acked_version, " ISO("last_ack_at") " AS last_ack_at, pending,"
		"  lag_ms, acks AND lag_ms >= 1000 AS lagging, " ISO("updated_at") " AS updated_at"
		" FROM lars_dns_agent ORDER BY acks AND lag_ms >= 1000 DESC, lag_ms DESC, instance,"
		"  conn_id LIMIT 100000", 0, NULL);
	if (!rows)
		return -EIO;
	c->out = json_object();
	json_object_set_new(c->out, "agents", rows);
	return 0;
}

/* Per host per minute of one route (the route page's per-host lines). */
static int work_host_history(PGconn *conn, api_call_t *c)
{
	status_host_minute_t *rows;
	size_t n;
	int32_t minutes = (int32_t)strtol(c->minutes, NULL, 10);
	status_filter_t f = route_filter(c);
	if (status_history_hosts(conn, &f, minutes, -1, &rows, &n))
		return -EIO;
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		char when[STATUS_TIME_MAX];
		json_t *m = json_object();
		json_object_set_new(m, "minute", json_string(status_time_text(rows[i].minute, 0,
									     STATUS_TIME_ISO, when)));
		json_object_set_new(m, "ip", json_string(rows[i].ip));
		json_object_set_new(m, "port", json_integer(rows[i].port));
		json_object_set_new(m, "succ", json_integer(rows[i].succ));
		json_object_set_new(m, "err", json_integer(rows[i].err));
		json_array_append_new(arr, m);
	}
	free(rows);
	c->out = json_object();
	json_object_set_new(c->out, "rows", arr);
	return 0;
}

static int work_descriptions(PGconn *conn, api_call_t *c)
{
	json_t *mods = query_rows(conn, "SELECT modid, description FROM modid_config ORDER BY 1",
				  0, NULL);
	json_t *cmds = mods ? query_rows(conn, "SELECT modid, cmdid, description FROM cmdid_config "
					       "ORDER BY 1, 2", 0, NULL) : NULL;
	if (!cmds) {
		json_decref(mods);
		return -EIO;
	}
	c->out = json_object();
	json_object_set_new(c->out, "mods", mods);
	json_object_set_new(c->out, "cmds", cmds);
	return 0;
}

/* ---- writes ---- */


static int work_route_write(PGconn *conn, api_call_t *c)
{
	/* Every change record of this write names who made it. */
	if (route_set_actor(conn, c->actor, false))
		return -EIO;
	int64_t version = 0;
	int r = c->add ? route_add(conn, &c->entry, &version) : route_del(conn, &c->entry, &version);
	if (r < 0)
		return r;
	char msg[192];
	route_message(msg, sizeof(msg), c->add, r, &c->entry, version);
	c->out = json_object();
	json_object_set_new(c->out, "result", json_string(r == ROUTE_UNCHANGED ? "unchanged"
							  : c->add ? "added" : "removed"));
	json_object_set_new(c->out, "version", json_integer(version));
	json_object_set_new(c->out, "message", json_string(msg));
	log_info("admin: %s (by %s)", msg, c->actor);
	return 0;
}

static int work_route_tc(PGconn *conn, api_call_t *c)
{
	/* Every change record of this write names who made it. */
	if (route_set_actor(conn, c->actor, false))
		return -EIO;
	int64_t version = 0;
	int r = c->tc_weight ? route_set_weight(conn, &c->entry, c->tc_value, &version)
			     : route_set_drain(conn, &c->entry, c->tc_value != 0, &version);
	if (r < 0)
		return r;
	char msg[192];
	route_tc_message(msg, sizeof(msg), c->tc_weight ? "weight" : "drain", c->tc_value, r,
			 &c->entry, version);
	if (r == ROUTE_NO_HOST) {
		c->status = 404;
		snprintf(c->msg, sizeof(c->msg), "%s", msg);
		return 0;
	}
	c->out = json_object();
	json_object_set_new(c->out, "result", json_string(r == ROUTE_UNCHANGED ? "unchanged"
							  : "changed"));
	json_object_set_new(c->out, "version", json_integer(version));
	json_object_set_new(c->out, "message", json_string(msg));
	if (r == ROUTE_CHANGED)
		log_info("admin: %s (by %s)", msg, c->actor);
	return 0;
}

static int work_policy(PGconn *conn, api_call_t *c)
{
	/* Every change record of this write names who made it. */
	if (route_set_actor(conn, c->actor, false))
		return -EIO;
	int64_t version = 0;
	route_policy_t after;
	int r = route_set_policy(conn, c->entry.modid, c->entry.cmdid, &c->policy, &after,
				 &version);
	if (r < 0)
		return r;
	char text[160], msg[192];
	route_policy_text(text, sizeof(text), &after);
	snprintf(msg, sizeof(msg), "%d/%d: %s%s", c->entry.modid, c->entry.cmdid, text,
		 r == ROUTE_UNCHANGED ? " already; nothing changed" : "");
	c->out = json_object();
	json_object_set_new(c->out, "result", json_string(r == ROUTE_UNCHANGED ? "unchanged"
							  : "changed"));
	json_object_set_new(c->out, "version", json_integer(version));
	json_object_set_new(c->out, "policy", policy_json(&after));
	json_object_set_new(c->out, "message", json_string(msg));
	if (r == ROUTE_CHANGED)
		log_info("admin: %s (by %s)", msg, c->actor);
	return 0;
}

static int work_describe(PGconn *conn, api_call_t *c)
{
	/* Every change record of this write names who made it. */
	if (route_set_actor(conn, c->actor, false))
		return -EIO;
	int32_t cmdid = c->cmdid[0] ? c->entry.cmdid : -1;
	int r = route_describe(conn, c->entry.modid, cmdid, c->text);
	if (r)
		return r;
	char msg[64];
	if (cmdid >= 0)
		snprintf(msg, sizeof(msg), "saved the description of %d/%d", c->entry.modid, cmdid);
	else
		snprintf(msg, sizeof(msg), "saved the description of modid %d", c->entry.modid);
	c->out = json_object();
	json_object_set_new(c->out, "result", json_string("saved"));
	json_object_set_new(c->out, "message", json_string(msg));
	log_info("admin: %s (by %s)", msg, c->actor);
	return 0;
}

/* ---- running a call ---- */

static void api_call_free(api_call_t *c)
{
	json_decref(c->out);
	free(c->text);
	free(c);
}

static int api_job_work(PGconn *conn, pg_job_t *job)
{
	api_call_t *c = container_of(job, api_call_t, job);
	return c->work(conn, c);
}

static void api_job_done(pg_job_t *job, int status)
{
	api_call_t *c = container_of(job, api_call_t, job);
	if (c->a->db)
		c->a->db_failing = status == -ENOTCONN;
	if (status == 0 && c->status) {
		admin_reply_error(c->req, c->status, c->msg, NULL);
	} else if (status == 0) {
		admin_reply_json(c->req, 200, c->out);
		c->out = NULL;
	} else if (!c->a->db) {
		/* Cancelled by the shutdown: its transaction was rolled back. */
		admin_reply_error(c->req, 503, "lars-admin is shutting down; nothing was changed",
				  NULL);
	} else if (status == -ENOTCONN || status == -ECANCELED) {
		metrics_inc(c->a->c_db_errors);
		admin_reply_error(c->req, 503, "the database is unavailable; nothing was changed",
				  NULL);
	} else {
		metrics_inc(c->a->c_db_errors);
		admin_reply_error(c->req, 500, "the database refused the request; nothing was "
				  "changed (see lars-admin's log; has `larsctl migrate` been run?)", NULL);
	}
	api_call_free(c);
}

static void api_submit(api_call_t *c, const auth_who_t *who)
{
	c->job.work = api_job_work;
	c->job.done = api_job_done;
	/* Retried once on a fresh connection when theirs broke or reached a
	 * read-only server (a failover): reads, and the route writes, which
	 * may run twice (adding a host already there, removing one already
	 * gone, setting the same description, weight, drain or policy again
	 * changes nothing). */
	c->job.read_only = c->work != work_route_write && c->work != work_describe &&
			   c->work != work_route_tc && c->work != work_policy;
	c->job.idempotent = !c->job.read_only;
	if (!c->job.read_only) {
		/* The console user who logged in (checked before any call), or
		 * none without a users file. */
		if (who->user[0])
			snprintf(c->actor, sizeof(c->actor), "%.64s (console, %s)", who->user,
				 http_req_peer(c->req));
		else
			snprintf(c->actor, sizeof(c->actor), "anonymous (console without users_file, %s)",
				 http_req_peer(c->req));
	}
	if (!c->a->db) {
		api_job_done(&c->job, -ECANCELED);
		return;
	}
	pg_worker_submit(c->a->db, &c->job);
}

static api_call_t *api_call_new(admin_t *a, http_req_t *req, api_work_fn work)
{
	api_call_t *c = xcalloc(1, sizeof(*c));
	c->a = a;
	c->req = req;
	c->work = work;
	c->max_age_s = a->cfg.status_max_age_s;
	snprintf(c->fail_pct, sizeof(c->fail_pct), "%.17g", a->cfg.fail_pct);
	return c;
}

static void bad_input(api_call_t *c, const char *why, const char *field)
{
	metrics_inc(c->a->c_bad_input);
	admin_reply_error(c->req, 400, why, field);
	api_call_free(c);
}

/* A query argument that must be an integer in [lo, hi]; absent → @def
 * (NULL def: required; "" def: optional, left empty). */
static bool query_int(api_call_t *c, const char *name, const char *what, long long lo,
		      long long hi, const char *def, char *out, size_t cap)
{
	const char *v = http_req_query(c->req, name);
	if (!v || !*v) {
		if (def) {
			snprintf(out, cap, "%s", def);
			return true;
		}
		char why[96];
		snprintf(why, sizeof(why), "%s is missing", what);
		bad_input(c, why, name);
		return false;
	}
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || *end || end == v || x < lo || x > hi || v[0] == '+' || v[0] == ' ') {
		char why[128];
		snprintf(why, sizeof(why), "%s must be an integer %lld..%lld", what, lo, hi);
		bad_input(c, why, name);
		return false;
	}
	snprintf(out, cap, "%lld", x);
	return true;
}

#define QUERY_INT(c, name, what, lo, hi, def, out) \
	query_int((c), (name), (what), (lo), (hi), (def), (out), sizeof(out))

static const bool changes_sort_desc[] = { true, false };

/* A list's q, sort, order and unhealthy arguments (@sorts: the names, in
 * the order of the sort enum; @sort_desc: each one's default direction).
 * False after bad_input(). */
static bool list_args(api_call_t *c, const char *const *sorts, const bool *sort_desc, size_t n)
{
	const char *why;
	if (listq_parse_search(http_req_query(c->req, "q"), &c->search, &why)) {
		bad_input(c, why, "q");
		return false;
	}
	if (listq_parse_name(http_req_query(c->req, "sort"), sorts, n, 0, &c->sort)) {
		char msg[160];
		size_t len = (size_t)snprintf(msg, sizeof(msg), "sort must be one of");
		for (size_t i = 0; i < n && len < sizeof(msg); i++)
			len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s %s", i ? "," : "",
						sorts[i]);
		bad_input(c, msg, "sort");
		return false;
	}
	if (listq_parse_order(http_req_query(c->req, "order"), sort_desc[c->sort], &c->desc)) {
		bad_input(c, "order must be asc or desc", "order");
		return false;
	}
	const char *u = http_req_query(c->req, "unhealthy");
	if (u && *u && strcmp(u, "0") && strcmp(u, "1") && strcmp(u, "true") && strcmp(u, "false")) {
		bad_input(c, "unhealthy must be 1 or 0", "unhealthy");
		return false;
	}
	c->unhealthy = u && (strcmp(u, "1") == 0 || strcmp(u, "true") == 0);
	return true;
}

static void get_call(admin_t *a, http_req_t *req, const char *what, const auth_who_t *who)
{
	api_call_t *c;
	if (strcmp(what, "overview") == 0) {
		c = api_call_new(a, req, work_overview);
		if (!QUERY_INT(c, "modid", "MODID", 0, INT32_MAX, "", c->modid) ||
		    !QUERY_INT(c, "limit", "limit", 1, OVERVIEW_LIMIT_MAX, "1000", c->limit) ||
		    !QUERY_INT(c, "offset", "offset", 0, INT64_MAX / 2, "0", c->offset) ||
		    !list_args(c, overview_sorts, overview_sort_desc, ARRAY_SIZE(overview_sorts)))
			return;
	} else if (strcmp(what, "host") == 0) {
		c = api_call_new(a, req, work_host);
		const char *why = "ip must be an IPv4 address like 10.0.0.7 or a network like 10.0.0.0/24";
		const char *ip = http_req_query(req, "ip");
		if (!ip || listq_parse_search(ip, &c->search, &why) || c->search.kind != LISTQ_NET) {
			bad_input(c, why, "ip");
			return;
		}
	} else if (strcmp(what, "agents") == 0) {
		c = api_call_new(a, req, work_agents);
	} else if (strcmp(what, "route") == 0 || strcmp(what, "history") == 0 ||
		   strcmp(what, "host-history") == 0) {
		bool route = what[0] == 'r';
		c = api_call_new(a, req, route ? work_route
				 : what[0] == 'h' && what[1] == 'o' ? work_host_history
								     : work_history);
		if (!QUERY_INT(c, "modid", "MODID", 0, INT32_MAX, NULL, c->modid) ||
		    !QUERY_INT(c, "cmdid", "CMDID", 0, INT32_MAX, NULL, c->cmdid) ||
		    (!route && !QUERY_INT(c, "minutes", "minutes", 1, HISTORY_MINUTES_MAX, "60",
					  c->minutes)))
			return;
	} else if (strcmp(what, "changes") == 0) {
		c = api_call_new(a, req, work_changes);
		if (!QUERY_INT(c, "modid", "MODID", 0, INT32_MAX, "", c->modid) ||
		    !QUERY_INT(c, "cmdid", "CMDID", 0, INT32_MAX, "", c->cmdid) ||
		    !QUERY_INT(c, "before", "before", 1, INT64_MAX, "", c->before) ||
		    !QUERY_INT(c, "limit", "limit", 1, CHANGES_LIMIT_MAX, "100", c->limit) ||
		    !QUERY_INT(c, "offset", "offset", 0, INT64_MAX / 2, "0", c->offset) ||
		    !list_args(c, changes_sorts, changes_sort_desc, ARRAY_SIZE(changes_sorts)))
			return;
	} else if (strcmp(what, "descriptions") == 0) {
		c = api_call_new(a, req, work_descriptions);
	} else if (strncmp(what, "routes/", 7) == 0 || strcmp(what, "describe") == 0) {
		http_req_add_header(req, "Allow", "POST");
		admin_reply_error(req, 405, "changes are made with POST", NULL);
		return;
	} else {
		admin_reply_error(req, 404, "no such API", NULL);
		return;
	}
	api_submit(c, who);
}

/* A JSON member as the text an operator would have typed: integers and
 * strings as they are; anything else fails the same check larsctl makes.
 * False if it does not fit @cap whole: it is refused, never cut (a cut
 * "0000...0905x" would read as 905). */
static bool member_text(json_t *body, const char *key, char *out, size_t cap)
{
	json_t *v = json_object_get(body, key);
	int n;
	if (json_is_integer(v))
		n = snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_string(v))
		n = json_string_length(v) < cap ? snprintf(out, cap, "%s", json_string_value(v))
						 : (int)cap;
	else
		n = snprintf(out, cap, "%s", v ? "?" : "");
	/* An embedded NUL ("5\u00001") would cut the text too. */
	return n >= 0 && (size_t)n < cap && (!json_is_string(v) || strlen(out) == json_string_length(v));
}

/* The members of a write, each refused with its name when it is longer than
 * any valid value (@caps: bytes with the NUL). */
static bool members(api_call_t *c, json_t *body, const char *const *keys, const size_t *caps,
		    char (*outs)[64], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!member_text(body, keys[i], outs[i], caps[i])) {
			char why[96];
			snprintf(why, sizeof(why), "%s is too long (at most %zu characters)",
				 keys[i], caps[i] - 1);
			json_decref(body);
			bad_input(c, why, keys[i]);
			return false;
		}
	}
	return true;
}

/*
 * The traffic-control members of a write to routes/weight ("weight": 1..1000),
 * routes/drain ("drain": true or false) or routes/policy (any of
 * "panic_threshold": 0..100 or null for the agent's, "max_ejection_percent",
 * "slow_start_s"; at least one). False after bad_input().
 */
static bool traffic_members(api_call_t *c, json_t *body, const char *what)
{
	const char *why = NULL, *field = NULL;
	char v[64];
	if (strcmp(what, "routes/weight") == 0) {
		c->tc_weight = true;
		field = "weight";
		if (!member_text(body, "weight", v, 8))
			why = "weight must be an integer 1..1000 (the default is 100)";
		else if (route_parse_weight(v, &c->tc_value, &why) == 0)
			field = NULL;
	} else if (strcmp(what, "routes/drain") == 0) {
		c->tc_value = json_is_true(json_object_get(body, "drain"));
		if (!json_is_boolean(json_object_get(body, "drain"))) {
			why = "drain must be true or false";
			field = "drain";
		}
	} else {
		static const char *const keys[] = { "panic_threshold", "max_ejection_percent",
						    "slow_start_s" };
		static const char *const fields[] = { "panic_threshold", "max_ejection_percent",
						      "slow_start" };
		for (size_t i = 0; i < 3 && !field; i++) {
			json_t *j = json_object_get(body, keys[i]);
			if (!j)
				continue;
			if (i == 0 && json_is_null(j))
				snprintf(v, sizeof(v), "default");
			else if (!json_is_integer(j) || !member_text(body, keys[i], v, 8))
				snprintf(v, sizeof(v), "?");
			if (route_parse_policy_value(fields[i], v, &c->policy, &why))
				field = keys[i];
		}
		if (!field && !c->policy.panic && !c->policy.ejection && !c->policy.slow_start) {
			why = "set at least one of panic_threshold, max_ejection_percent, slow_start_s";
			field = "policy";
		}
	}
	json_decref(body);
	if (field) {
		bad_input(c, why, field);
		return false;
	}
	return true;
}

static api_work_fn post_work(const char *what)
{
	if (strcmp(what, "routes/add") == 0 || strcmp(what, "routes/del") == 0)
		return work_route_write;
	if (strcmp(what, "routes/weight") == 0 || strcmp(what, "routes/drain") == 0)
		return work_route_tc;
	if (strcmp(what, "routes/policy") == 0)
		return work_policy;
	if (strcmp(what, "describe") == 0)
		return work_describe;
	return NULL;
}

static void post_call(admin_t *a, http_req_t *req, const char *what, const auth_who_t *who)
{
	const char *why;
	api_work_fn work = post_work(what);
	bool route_write = work == work_route_write || work == work_route_tc;
	if (!work) {
		admin_reply_error(req, 404, "no such API", NULL);
		return;
	}
	if (who->read_only) {
		/* Before the body is looked at: a read user changes nothing. */
		metrics_inc(a->c_forbidden);
		char msg[160];
		snprintf(msg, sizeof(msg), "user '%s' may only read (role read); nothing was changed",
			 who->user);
		log_warn("admin: %s from %s refused: '%s' has the role read", http_req_path(req),
			 http_req_peer(req), who->user);
		admin_reply_error(req, 403, msg, NULL);
		return;
	}
	if (!auth_same_origin(req, &why)) {
		metrics_inc(a->c_forbidden);
		log_warn("admin: %s from %s refused: %s", http_req_path(req), http_req_peer(req), why);
		admin_reply_error(req, 403, why, NULL);
		return;
	}
	const char *ctype = http_req_header(req, "Content-Type");
	if (!ctype || strncasecmp(ctype, "application/json", 16) != 0) {
		metrics_inc(a->c_bad_input);
		admin_reply_error(req, 415, "send the body as Content-Type: application/json", NULL);
		return;
	}
	size_t len;
	const char *text = http_req_body(req, &len);
	json_error_t jerr;
	json_t *body = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	api_call_t *c = api_call_new(a, req, work);
	if (!json_is_object(body)) {
		json_decref(body);
		bad_input(c, "the body must be a JSON object", NULL);
		return;
	}
	/* The longest valid values: "2147483647", "255.255.255.255", "65535"
	 * (ids may carry leading zeros up to that length). */
	static const char *const keys[] = { "modid", "cmdid", "ip", "port" };
	static const size_t caps[] = { 11, 11, 16, 11 };
	char v[4][64];
	if (!members(c, body, keys, caps, v, route_write ? 4 : 2))
		return;
	const char *modid = v[0], *cmdid = v[1];
	const char *field = NULL;
	if (route_write) {
		if (route_parse(modid, cmdid, v[2], v[3], &c->entry, &why, &field)) {
			json_decref(body);
			bad_input(c, why, field);
			return;
		}
		c->add = strcmp(what, "routes/add") == 0;
		if (work == work_route_write)
			json_decref(body);
		else if (!traffic_members(c, body, what))
			return;
	} else if (work == work_policy) {
		field = route_parse_id(modid, "MODID", &c->entry.modid, &why) ? "modid"
			: route_parse_id(cmdid, "CMDID", &c->entry.cmdid, &why) ? "cmdid" : NULL;
		if (field) {
			json_decref(body);
			bad_input(c, why, field);
			return;
		}
		if (!traffic_members(c, body, what))
			return;
	} else {
		json_t *desc = json_object_get(body, "description");
		json_t *cmd = json_object_get(body, "cmdid");
		bool has_cmd = cmd && !json_is_null(cmd) &&
			       !(json_is_string(cmd) && !*json_string_value(cmd));
		if (route_parse_id(modid, "MODID", &c->entry.modid, &why)) {
			field = "modid";
		} else if (has_cmd && route_parse_id(cmdid, "CMDID", &c->entry.cmdid, &why)) {
			field = "cmdid";
		} else if (!json_is_string(desc)) {
			why = "description must be text";
			field = "description";
		} else if (route_describe_check(json_string_value(desc), &why)) {
			field = "description";
		}
		if (field) {
			json_decref(body);
			bad_input(c, why, field);
			return;
		}
		c->text = xstrdup(json_string_value(desc));
		if (has_cmd)
			snprintf(c->cmdid, sizeof(c->cmdid), "%d", c->entry.cmdid);
		json_decref(body);
	}
	metrics_inc(a->c_writes);
	api_submit(c, who);
}

void api_handle(admin_t *a, http_req_t *req, const auth_who_t *who)
{
	const char *method = http_req_method(req);
	const char *what = http_req_path(req) + strlen("/api/");
	if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
		get_call(a, req, what, who);
	} else if (strcmp(method, "POST") == 0) {
		post_call(a, req, what, who);
	} else {
		http_req_add_header(req, "Allow", "GET, HEAD, POST");
		admin_reply_error(req, 405, "the API takes GET and POST", NULL);
	}
}
