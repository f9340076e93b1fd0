// SPDX-License-Identifier: MIT
// larsctl migrate, route add/del/list/weight/drain/policy and describe: the
// schema and the routes, through the write path lars-admin uses too (common/db).
#include "larsctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrations.h"
#include "output.h"
#include "pg_conn.h"
#include "route_write.h"

static const char usage_migrate[] =
	"Usage: larsctl [--db CONNINFO] migrate\n"
	"Applies the schema migrations the database lacks, in order, each in its\n"
	"own transaction; running it again changes nothing.\n";

static const char usage_route[] =
	"Usage: larsctl [--db CONNINFO] route add MODID CMDID IP PORT\n"
	"       larsctl [--db CONNINFO] route del MODID CMDID IP PORT\n"
	"       larsctl [--db CONNINFO] route del --ip IP [--port PORT]\n"
	"       larsctl [--db CONNINFO] route list [MODID [CMDID]] [-o text|json|tsv]\n"
	"       larsctl [--db CONNINFO] route export [MODID [CMDID]] [-o csv|json]\n"
	"       larsctl [--db CONNINFO] route import FILE [--dry-run]\n"
	"       larsctl [--db CONNINFO] route show MODID CMDID\n"
	"       larsctl [--db CONNINFO] route weight MODID CMDID IP PORT WEIGHT\n"
	"       larsctl [--db CONNINFO] route drain MODID CMDID IP PORT [--undo]\n"
	"       larsctl [--db CONNINFO] route policy MODID CMDID [--panic-threshold P]\n"
	"               [--max-ejection-percent P] [--slow-start S]\n"
	"MODID and CMDID are integers 0..2147483647, IP an IPv4 address, PORT 1..65535.\n"
	"Each change is one transaction (data, version, change record, NOTIFY), so\n"
	"lars-dns pushes it to subscribed agents at once.\n"
	"\n"
	"Traffic control (our agents; the original lars_agent ignores all of it):\n"
	"  weight   a host's share of the picks, 1..1000 (default 100): smooth\n"
	"           weighted round robin over the idle hosts\n"
	"  drain    no new picks for the host from the next push on; it stays listed\n"
	"           and its reports still count (--undo: it gets picks again)\n"
	"  policy   without options, shows the route's policy; each option sets one:\n"
	"    --panic-threshold P       when fewer than P % of the hosts are idle, pick\n"
	"                              over every non-drained host instead of answering\n"
	"                              OVERLOAD; 0 = off, 'default' = the agent's own\n"
	"                              [loadbalance] panic_threshold (the default)\n"
	"    --max-ejection-percent P  at most P % of the hosts overloaded at once\n"
	"                              (1..100, default 100; one host always may be)\n"
	"    --slow-start S            a new host's weight ramps from 10 % to 100 %\n"
	"                              over S seconds (0..86400, default 0 = off)\n"
	"route list shows each host's WEIGHT and DRAIN, then the routes whose policy\n"
	"is not the default. route show: one route's hosts, policy and version, and\n"
	"how many agents applied its last change (\"held by N of M agents\", as the\n"
	"lars-dns instances measured it; original agents do not acknowledge).\n"
	"\n"
	"Fleet operations, each in one transaction:\n"
	"  del --ip IP [--port PORT]  decommission: remove host IP (on every port, or\n"
	"                           on PORT) from every route it is in; lists them\n"
	"  export    every host (of MODID, of MODID/CMDID) as CSV with the header\n"
	"            modid,cmdid,ip,port,weight,drain (-o json: an array of objects\n"
	"            with those keys)\n"
	"  import    FILE (- for stdin) in the format export writes (CSV: weight and\n"
	"            drain may be left out, 100 and false; JSON: also the output of\n"
	"            route list -o json): every route named in FILE gets exactly its\n"
	"            hosts, weights and drains; routes not named are left alone.\n"
	"            Prints the difference (+ added, - removed, ~ weight or drain\n"
	"            changed); --dry-run prints it and changes nothing. A bad line\n"
	"            is refused as FILE:LINE: reason (exit 2), before any change.\n"
	"            Policies are not in the file: route policy sets them.\n"
	"\n"
	"route list -o json: {\"hosts\": [{\"modid\", \"cmdid\", \"ip\", \"port\", \"weight\",\n"
	"\"drain\"}], \"policies\": [{\"modid\", \"cmdid\", \"panic_threshold\" (null: the\n"
	"agent's default), \"max_ejection_percent\", \"slow_start\"}]}; -o tsv: the hosts.\n"
	"Exit status: 0 done (a duplicate add or a del of an absent host is reported\n"
	"on stderr and is still 0), 1 database failure, 2 bad input.\n";

static const char usage_describe[] =
	"Usage: larsctl [--db CONNINFO] describe MODID [CMDID] [--text TEXT]\n"
	"Shows the description of modid MODID (or of route MODID/CMDID); with\n"
	"--text, sets it (one line of UTF-8 text, at most 4096 bytes: quotes and\n"
	"SQL in it are stored as given).\n";

int cmd_migrate(const args_t *a)
{
	if (a->help) {
		fputs(usage_migrate, stdout);
		return EXIT_OK;
	}
	if (a->argc != 1)
		return larsctl_usage_error("migrate", "migrate takes no arguments");
	PGconn *conn = larsctl_connect(a->db);
	if (!conn)
		return EXIT_DB;
	int r = migrate_apply(conn, stdout);
	PQfinish(conn);
	return r ? EXIT_DB : EXIT_OK;
}

static const out_col_t host_cols[] = {
	{ "modid", 'n' }, { "cmdid", 'n' }, { "ip", 's' }, { "port", 'n' },
	{ "weight", 'n' }, { "drain", 'b' },
};

static const out_col_t policy_cols[] = {
	{ "modid", 'n' }, { "cmdid", 'n' }, { "panic_threshold", 'n' },
	{ "max_ejection_percent", 'n' }, { "slow_start", 'n' },
};

void route_hosts_out(out_fmt_t fmt, bool nested, const status_host_t *rows, size_t n)
{
	out_t o;
	out_begin(&o, fmt, host_cols, (int)(sizeof(host_cols) / sizeof(host_cols[0])));
	o.nested = nested;
	for (size_t i = 0; i < n; i++) {
		char m[16], c[16], port[8], w[8];
		snprintf(m, sizeof(m), "%d", rows[i].modid);
		snprintf(c, sizeof(c), "%d", rows[i].cmdid);
		snprintf(port, sizeof(port), "%d", rows[i].port);
		snprintf(w, sizeof(w), "%d", rows[i].weight);
		const char *v[] = { m, c, rows[i].ip, port, w, rows[i].drain ? "t" : "f" };
		out_row(&o, v);
	}
	out_end(&o);
}

/* The routes @f names whose policy is not the default: "modid, cmdid". */
static PGresult *policy_routes(PGconn *conn, const status_filter_t *f)
{
	char m[16], c[16];
	snprintf(m, sizeof(m), "%d", f->modid);
	snprintf(c, sizeof(c), "%d", f->cmdid);
	const char *p[2] = { f->modid >= 0 ? m : NULL, f->cmdid >= 0 ? c : NULL };
	return pg_exec(conn,
		"SELECT modid, cmdid FROM cmdid_config"
		" WHERE ($1::int IS NULL OR modid = $1::int) AND ($2::int IS NULL OR cmdid = $2::int)"
		"   AND (panic_threshold IS NOT NULL OR max_ejection_percent <> 100"
		"        OR slow_start_s <> 0) ORDER BY modid, cmdid", 2, p, PGRES_TUPLES_OK);
}

/* route list -o json|tsv: JSON {"hosts": [...], "policies": [...]}; TSV
 * the hosts only. */
static int route_list_out(PGconn *conn, const status_filter_t *f, out_fmt_t fmt,
			  status_host_t *rows, size_t n)
{
	out_t o;
	if (fmt == OUT_JSON)
		fputs("{\"hosts\":", stdout);
	route_hosts_out(fmt, true, rows, n);
	free(rows);
	if (fmt != OUT_JSON)
		return EXIT_OK;
	PGresult *res = policy_routes(conn, f);
	if (!res) {
		fputs("}\n", stdout);
		return EXIT_DB;
	}
	fputs(",\"policies\":", stdout);
	out_begin(&o, fmt, policy_cols, (int)(sizeof(policy_cols) / sizeof(policy_cols[0])));
	o.nested = true;
	int r = EXIT_OK;
	for (int i = 0; i < PQntuples(res) && r == EXIT_OK; i++) {
		route_policy_t pol;
		int32_t modid = (int32_t)strtol(PQgetvalue(res, i, 0), NULL, 10);
		int32_t cmdid = (int32_t)strtol(PQgetvalue(res, i, 1), NULL, 10);
		if (route_policy_read(conn, modid, cmdid, &pol)) {
			r = EXIT_DB;
			break;
		}
		char pt[8], me[8], ss[8];
		snprintf(pt, sizeof(pt), "%d", pol.panic_threshold);
		snprintf(me, sizeof(me), "%d", pol.max_ejection_percent);
		snprintf(ss, sizeof(ss), "%d", pol.slow_start_s);
		const char *v[] = { PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
				    pol.panic_threshold == ROUTE_PANIC_AGENT ? NULL : pt, me, ss };
		out_row(&o, v);
	}
	out_end(&o);
	fputs("}\n", stdout);
	PQclear(res);
	return r;
}

/* The hosts of the routes @f names, one "MODID CMDID IP:PORT" line each. */
static int route_list(PGconn *conn, const status_filter_t *f, out_fmt_t fmt)
{
	status_host_t *rows;
	size_t n;
	if (status_hosts(conn, f, 0, &rows, &n))
		return EXIT_DB;
	if (fmt != OUT_TEXT)
		return route_list_out(conn, f, fmt, rows, n);
	printf("%-10s %-10s %-21s %-6s %s\n", "MODID", "CMDID", "HOST", "WEIGHT", "DRAIN");
	for (size_t i = 0; i < n; i++) {
		char host[STATUS_ADDR_MAX + 8];
		snprintf(host, sizeof(host), "%s:%d", rows[i].ip, rows[i].port);
		printf("%-10d %-10d %-21s %-6d %s\n", rows[i].modid, rows[i].cmdid, host,
		       rows[i].weight, rows[i].drain ? "drained" : "-");
	}
	free(rows);

	/* The routes @f names whose policy is not the default. */
	PGresult *res = policy_routes(conn, f);
	if (!res)
		return EXIT_DB;
	for (int i = 0; i < PQntuples(res); i++) {
		route_policy_t pol;
		char text[160];
		int32_t modid = (int32_t)strtol(PQgetvalue(res, i, 0), NULL, 10);
		int32_t cmdid = (int32_t)strtol(PQgetvalue(res, i, 1), NULL, 10);
		if (route_policy_read(conn, modid, cmdid, &pol)) {
			PQclear(res);
			return EXIT_DB;
		}
		route_policy_text(text, sizeof(text), &pol);
		if (i == 0)
			printf("\n%-10s %-10s %s\n", "MODID", "CMDID", "POLICY");
		printf("%-10d %-10d %s\n", modid, cmdid, text);
	}
	PQclear(res);
	return EXIT_OK;
}

/* route weight / drain as a larsctl_write_fn. */
typedef struct route_tc {
	const route_entry_t *e;
	bool weight;  /* else drain */
	int value;    /* the weight, or 1 drain / 0 undo */
	int r;        /* ROUTE_CHANGED, ROUTE_UNCHANGED, ROUTE_NO_HOST or -EIO */
	int64_t version;
} route_tc_t;

static int route_tc_work(PGconn *conn, void *arg)
{
	route_tc_t *t = arg;
	t->version = 0;
	t->r = t->weight ? route_set_weight(conn, t->e, t->value, &t->version)
			 : route_set_drain(conn, t->e, t->value != 0, &t->version);
	return t->r < 0 ? t->r : 0;
}

/* route policy with options as a larsctl_write_fn. */
typedef struct route_pol {
	int32_t modid, cmdid;
	route_policy_set_t set;
	route_policy_t after;
	int r;
	int64_t version;
} route_pol_t;

static int route_pol_work(PGconn *conn, void *arg)
{
	route_pol_t *t = arg;
	t->r = route_set_policy(conn, t->modid, t->cmdid, &t->set, &t->after, &t->version);
	return t->r < 0 ? t->r : 0;
}

/* What an operator reads after a write that may have been tried again. */
static void maybe_tried_twice(int attempts)
{
	/* A try cut off during its COMMIT may have made the change. */
	if (attempts > 1)
		fprintf(stderr, "larsctl: (an earlier try, cut off by the lost "
				"connection, may have made this change)\n");
}

static int route_policy_cmd(const args_t *a)
{
	route_pol_t t = { 0 };
	const char *why;
	if (a->argc != 4)
		return larsctl_usage_error("route", "route policy needs MODID CMDID");
	if (route_parse_id(a->argv[2], "MODID", &t.modid, &why) ||
	    route_parse_id(a->argv[3], "CMDID", &t.cmdid, &why))
		return larsctl_usage_error("route", "%s", why);
	if ((a->panic_threshold &&
	     route_parse_policy_value("panic_threshold", a->panic_threshold, &t.set, &why)) ||
	    (a->max_ejection_percent &&
	     route_parse_policy_value("max_ejection_percent", a->max_ejection_percent, &t.set,
				      &why)) ||
	    (a->slow_start && route_parse_policy_value("slow_start", a->slow_start, &t.set, &why)))
		return larsctl_usage_error("route", "%s", why);
	char text[160];
	if (!t.set.panic && !t.set.ejection && !t.set.slow_start) {
		PGconn *conn = larsctl_connect(a->db);
		if (!conn)
			return EXIT_DB;
		route_policy_t p;
		int r = route_policy_read(conn, t.modid, t.cmdid, &p);
		PQfinish(conn);
		if (r)
			return EXIT_DB;
		route_policy_text(text, sizeof(text), &p);
		printf("%d/%d: %s\n", t.modid, t.cmdid, text);
		return EXIT_OK;
	}
	int attempts, r = larsctl_write(a, route_pol_work, &t, &attempts);
	if (r < 0) {
		if (!(r == -ENOTCONN && attempts == 0))
			fprintf(stderr, "larsctl: nothing changed (has `larsctl migrate` been run?)\n");
		return EXIT_DB;
	}
	route_policy_text(text, sizeof(text), &t.after);
	if (t.r == ROUTE_CHANGED) {
		printf("%d/%d: %s (route version %lld)\n", t.modid, t.cmdid, text,
		       (long long)t.version);
	} else {
		fprintf(stderr, "larsctl: %d/%d: %s already; nothing changed\n", t.modid,
			t.cmdid, text);
		maybe_tried_twice(attempts);
	}
	return EXIT_OK;
}

static int route_tc_cmd(const args_t *a, bool weight)
{
	route_entry_t e;
	route_tc_t t = { .e = &e, .weight = weight, .value = a->undo ? 0 : 1 };
	const char *why;
	if (a->argc != (weight ? 7 : 6))
		return larsctl_usage_error("route", "route %s needs MODID CMDID IP PORT%s",
					   weight ? "weight" : "drain", weight ? " WEIGHT" : "");
	if (route_parse(a->argv[2], a->argv[3], a->argv[4], a->argv[5], &e, &why, NULL) ||
	    (weight && route_parse_weight(a->argv[6], &t.value, &why)))
		return larsctl_usage_error("route", "%s", why);
	int attempts, r = larsctl_write(a, route_tc_work, &t, &attempts);
	if (r == -ENOTCONN && attempts == 0)
		return EXIT_DB;
	char msg[160];
	route_tc_message(msg, sizeof(msg), weight ? "weight" : "drain", t.value, t.r, &e,
			 t.version);
	if (t.r == ROUTE_CHANGED) {
		printf("%s\n", msg);
	} else if (t.r == ROUTE_UNCHANGED) {
		fprintf(stderr, "larsctl: %s\n", msg);
		maybe_tried_twice(attempts);
	} else if (t.r == ROUTE_NO_HOST) {
		/* Input that names nothing: like a bad value, nothing to change. */
		fprintf(stderr, "larsctl: %s\n", msg);
		return EXIT_USAGE;
	} else {
		fprintf(stderr, "larsctl: nothing changed (has `larsctl migrate` been run?)\n");
		return EXIT_DB;
	}
	return EXIT_OK;
}

/* route add / del as a larsctl_write_fn. */
typedef struct route_change {
	const route_entry_t *e;
	bool add;
	int r;           /* ROUTE_CHANGED, ROUTE_UNCHANGED or -EIO */
	int64_t version;
} route_change_t;

static int route_change_work(PGconn *conn, void *arg)
{
	route_change_t *c = arg;
	c->version = 0;
	c->r = c->add ? route_add(conn, c->e, &c->version) : route_del(conn, c->e, &c->version);
	return c->r < 0 ? c->r : 0;
}

int cmd_route(const args_t *a)
{
	if (a->help) {
		fputs(usage_route, stdout);
		return EXIT_OK;
	}
	if (a->argc < 2)
		return larsctl_usage_error("route", "route needs add, del or list");
	const char *sub = a->argv[1];
	bool add = strcmp(sub, "add") == 0, del = strcmp(sub, "del") == 0;
	bool list = strcmp(sub, "list") == 0, policy = strcmp(sub, "policy") == 0;
	bool weight = strcmp(sub, "weight") == 0, drain = strcmp(sub, "drain") == 0;
	bool show = strcmp(sub, "show") == 0;
	bool export = strcmp(sub, "export") == 0, import = strcmp(sub, "import") == 0;
	if (a->output && !list && !export)
		return larsctl_usage_error("route", "-o is an option of route list and export");
	if (a->dry_run && !import)
		return larsctl_usage_error("route", "--dry-run is an option of route import");
	if ((a->ip || a->port) && !del)
		return larsctl_usage_error("route", "--ip and --port are options of route del");
	if (a->port && !a->ip)
		return larsctl_usage_error("route", "--port goes with --ip");
	if (export)
		return route_export(a);
	if (import)
		return route_import(a);
	if (del && a->ip)
		return route_del_ip(a);
	if (show) {
		int32_t modid, cmdid;
		const char *why;
		if (a->argc != 4)
			return larsctl_usage_error("route", "route show needs MODID CMDID");
		if (route_parse_id(a->argv[2], "MODID", &modid, &why) ||
		    route_parse_id(a->argv[3], "CMDID", &cmdid, &why))
			return larsctl_usage_error("route", "%s", why);
		return route_show(a, modid, cmdid);
	}
	if (!add && !del && !list && !policy && !weight && !drain)
		return larsctl_usage_error("route", "unknown route command '%s'", sub);
	if (a->undo && !drain)
		return larsctl_usage_error("route", "--undo is an option of route drain");
	if ((a->panic_threshold || a->max_ejection_percent || a->slow_start) && !policy)
		return larsctl_usage_error("route", "--panic-threshold, --max-ejection-percent "
					   "and --slow-start are options of route policy");
	if (policy)
		return route_policy_cmd(a);
	if (weight || drain)
		return route_tc_cmd(a, weight);

	route_entry_t e;
	status_filter_t f;
	out_fmt_t fmt = OUT_TEXT;
	if (list && (larsctl_parse_filter(a, 2, "route list", &f) ||
		     larsctl_output(a, "route", true, &fmt)))
		return EXIT_USAGE;
	if (add || del) {
		const char *why;
		if (a->argc != 6)
			return larsctl_usage_error("route", "route %s needs MODID CMDID IP PORT", sub);
		if (route_parse(a->argv[2], a->argv[3], a->argv[4], a->argv[5], &e, &why, NULL))
			return larsctl_usage_error("route", "%s", why);
	}
	if (list) {
		PGconn *conn = larsctl_connect(a->db);
		if (!conn)
			return EXIT_DB;
		int r = route_list(conn, &f, fmt);
		PQfinish(conn);
		return r;
	}
	route_change_t c = { .e = &e, .add = add };
	int attempts, r = larsctl_write(a, route_change_work, &c, &attempts);
	if (r == -ENOTCONN && attempts == 0)
		return EXIT_DB;
	char msg[160];
	route_message(msg, sizeof(msg), add, c.r, &e, c.version);
	if (c.r == ROUTE_CHANGED) {
		printf("%s\n", msg);
	} else if (c.r == ROUTE_UNCHANGED) {
		fprintf(stderr, "larsctl: %s\n", msg);
		maybe_tried_twice(attempts);
	} else {
		fprintf(stderr, "larsctl: nothing changed (has `larsctl migrate` been run?)\n");
		return EXIT_DB;
	}
	return EXIT_OK;
}

/* describe --text as a larsctl_write_fn. */
typedef struct describe {
	const status_filter_t *f;
	const char *text;
} describe_t;

static int describe_work(PGconn *conn, void *arg)
{
	const describe_t *d = arg;
	return route_describe(conn, d->f->modid, d->f->cmdid, d->text);
}

int cmd_describe(const args_t *a)
{
	status_filter_t f;
	const char *why;

	if (a->help) {
		fputs(usage_describe, stdout);
		return EXIT_OK;
	}
	if (a->argc < 2)
		return larsctl_usage_error("describe", "describe needs MODID [CMDID]");
	if (larsctl_parse_filter(a, 1, "describe", &f))
		return EXIT_USAGE;
	if (a->text && route_describe_check(a->text, &why))
		return larsctl_usage_error("describe", "%s", why);
	if (a->text) {
		describe_t d = { .f = &f, .text = a->text };
		int attempts;
		return larsctl_write(a, describe_work, &d, &attempts) ? EXIT_DB : EXIT_OK;
	}
	PGconn *conn = larsctl_connect(a->db);
	if (!conn)
		return EXIT_DB;
	bool route = f.cmdid >= 0;
	char mbuf[16], cbuf[16];
	snprintf(mbuf, sizeof(mbuf), "%d", f.modid);
	snprintf(cbuf, sizeof(cbuf), "%d", f.cmdid);
	const char *params[2] = { mbuf, cbuf };
	PGresult *res = route ? pg_exec(conn, "SELECT description FROM cmdid_config "
					    "WHERE modid = $1::int AND cmdid = $2::int",
				      2, params, PGRES_TUPLES_OK)
			      : pg_exec(conn, "SELECT description FROM modid_config WHERE modid = $1::int",
				      1, params, PGRES_TUPLES_OK);
	if (res && PQntuples(res))
		printf("%s\n", PQgetvalue(res, 0, 0));
	else if (res)
		fprintf(stderr, "larsctl: no such %s\n", route ? "route" : "modid");
	int r = res ? EXIT_OK : EXIT_DB;
	PQclear(res);
	PQfinish(conn);
	return r;
}
