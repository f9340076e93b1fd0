// SPDX-License-Identifier: MIT
// larsctl migrate, route add/del/list and describe: the schema and the
// routes, through the write path lars-admin uses too (common/db).
#include "larsctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrations.h"
#include "pg_conn.h"
#include "route_write.h"

static const char usage_migrate[] =
	"Usage: larsctl [--db CONNINFO] migrate\n"
	"Applies the schema migrations the database lacks, in order, each in its\n"
	"own transaction; running it again changes nothing.\n";

static const char usage_route[] =
	"Usage: larsctl [--db CONNINFO] route add MODID CMDID IP PORT\n"
	"       larsctl [--db CONNINFO] route del MODID CMDID IP PORT\n"
	"       larsctl [--db CONNINFO] route list [MODID [CMDID]]\n"
	"MODID and CMDID are integers 0..2147483647, IP an IPv4 address, PORT 1..65535.\n"
	"Each change is one transaction (data, version, change record, NOTIFY), so\n"
	"lars-dns pushes it to subscribed agents at once.\n";

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

/* The hosts of the routes @f names, one "MODID CMDID IP:PORT" line each. */
static int route_list(PGconn *conn, const status_filter_t *f)
{
	status_host_t *rows;
	size_t n;
	if (status_hosts(conn, f, 0, &rows, &n))
		return EXIT_DB;
	printf("%-10s %-10s %s\n", "MODID", "CMDID", "HOST");
	for (size_t i = 0; i < n; i++)
		printf("%-10d %-10d %s:%d\n", rows[i].modid, rows[i].cmdid, rows[i].ip,
		       rows[i].port);
	free(rows);
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
	bool list = strcmp(sub, "list") == 0;
	if (!add && !del && !list)
		return larsctl_usage_error("route", "unknown route command '%s'", sub);

	route_entry_t e;
	status_filter_t f;
	if (list && larsctl_parse_filter(a, 2, "route list", &f))
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
		int r = route_list(conn, &f);
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
		/* A try cut off during its COMMIT may have made the change. */
		if (attempts > 1)
			fprintf(stderr, "larsctl: (an earlier try, cut off by the lost "
					"connection, may have made this change)\n");
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
