// SPDX-License-Identifier: MIT
// larsctl: the operators' tool. Talks to PostgreSQL directly (libpq conninfo
// from --db, else the PG* environment): schema migrations and routes.
//
// Exit codes: 0 done (a duplicate add or a del of an absent host is reported
// on stderr and is still 0), 1 database failure, 2 bad input or usage.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "lars_config.h"
#include "log.h"
#include "migrations.h"
#include "pg_worker.h"
#include "route_write.h"

enum { EXIT_OK = 0, EXIT_DB = 1, EXIT_USAGE = 2 };

static const char usage_main[] =
	"Usage: larsctl [--db CONNINFO] COMMAND [ARGS]\n"
	"\n"
	"Commands:\n"
	"  migrate                         apply the missing schema migrations\n"
	"  route add MODID CMDID IP PORT   add a host to a route\n"
	"  route del MODID CMDID IP PORT   remove a host from a route\n"
	"  route list [MODID [CMDID]]      list routes and their hosts\n"
	"\n"
	"  --db CONNINFO   libpq connection string or URI (default: PG* variables)\n"
	"  -h, --help      help for larsctl or for a command\n"
	"      --version   print the version\n"
	"\n"
	"Exit status: 0 done, 1 database failure, 2 bad input.\n";

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

typedef struct args {
	const char *db;
	bool help;
	int argc;
	char *argv[16];
} args_t;

/* Bad input: one line on stderr, exit 2. @cmd names the help to read. */
__attribute__((format(printf, 2, 3)))
static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "larsctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'larsctl %s%s--help')\n", cmd, *cmd ? " " : "");
	return EXIT_USAGE;
}

static PGconn *connect_db(const char *db)
{
	PGconn *conn = pg_open(db, "larsctl", 10);
	if (PQstatus(conn) != CONNECTION_OK) {
		const char *msg = PQerrorMessage(conn);
		log_error("cannot connect to PostgreSQL: %.*s", (int)strcspn(msg, "\n"), msg);
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

static int cmd_migrate(const args_t *a)
{
	if (a->help) {
		fputs(usage_migrate, stdout);
		return EXIT_OK;
	}
	if (a->argc != 1)
		return usage_error("migrate", "migrate takes no arguments");
	PGconn *conn = connect_db(a->db);
	if (!conn)
		return EXIT_DB;
	int r = migrate_apply(conn, stdout);
	PQfinish(conn);
	return r ? EXIT_DB : EXIT_OK;
}

static int route_list(PGconn *conn, const args_t *a)
{
	int32_t modid, cmdid;
	const char *why;
	char mbuf[16], cbuf[16];
	const char *params[2] = { NULL, NULL };

	if (a->argc > 2) {
		if (route_parse_id(a->argv[2], "MODID", &modid, &why))
			return usage_error("route", "%s", why);
		snprintf(mbuf, sizeof(mbuf), "%d", modid);
		params[0] = mbuf;
	}
	if (a->argc > 3) {
		if (route_parse_id(a->argv[3], "CMDID", &cmdid, &why))
			return usage_error("route", "%s", why);
		snprintf(cbuf, sizeof(cbuf), "%d", cmdid);
		params[1] = cbuf;
	}
	PGresult *res = pg_exec(conn,
		"SELECT modid, cmdid, host(ip), port FROM route_data "
		"WHERE ($1::int IS NULL OR modid = $1::int) "
		"AND ($2::int IS NULL OR cmdid = $2::int) "
		"ORDER BY modid, cmdid, ip, port", 2, params, PGRES_TUPLES_OK);
	if (!res)
		return EXIT_DB;
	printf("%-10s %-10s %s\n", "MODID", "CMDID", "HOST");
	for (int i = 0; i < PQntuples(res); i++)
		printf("%-10s %-10s %s:%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		       PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
	PQclear(res);
	return EXIT_OK;
}

static int cmd_route(const args_t *a)
{
	if (a->help) {
		fputs(usage_route, stdout);
		return EXIT_OK;
	}
	if (a->argc < 2)
		return usage_error("route", "route needs add, del or list");
	const char *sub = a->argv[1];
	bool add = strcmp(sub, "add") == 0, del = strcmp(sub, "del") == 0;
	bool list = strcmp(sub, "list") == 0;
	if (!add && !del && !list)
		return usage_error("route", "unknown route command '%s'", sub);
	if (list && a->argc > 4)
		return usage_error("route", "route list takes at most MODID CMDID");

	route_entry_t e;
	if (add || del) {
		const char *why;
		if (a->argc != 6)
			return usage_error("route", "route %s needs MODID CMDID IP PORT", sub);
		if (route_parse(a->argv[2], a->argv[3], a->argv[4], a->argv[5], &e, &why))
			return usage_error("route", "%s", why);
	}
	PGconn *conn = connect_db(a->db);
	if (!conn)
		return EXIT_DB;
	int r;
	if (list) {
		r = route_list(conn, a);
	} else {
		int64_t version = 0;
		r = add ? route_add(conn, &e, &version) : route_del(conn, &e, &version);
		if (r == ROUTE_CHANGED) {
			printf("%s %d/%d %s:%d (route version %lld)\n",
			       add ? "added" : "removed", e.modid, e.cmdid, e.ip, e.port,
			       (long long)version);
			r = EXIT_OK;
		} else if (r == ROUTE_UNCHANGED) {
			fprintf(stderr, add ? "larsctl: %d/%d %s:%d is already in the route; nothing changed\n"
					    : "larsctl: %d/%d %s:%d is not in the route; nothing changed\n",
				e.modid, e.cmdid, e.ip, e.port);
			r = EXIT_OK;
		} else {
			fprintf(stderr, "larsctl: nothing changed (has `larsctl migrate` been run?)\n");
			r = EXIT_DB;
		}
	}
	PQfinish(conn);
	return r;
}

int main(int argc, char **argv)
{
	args_t a = { 0 };

	log_init_cli("larsctl", LOG_LVL_WARN);
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (strcmp(s, "--db") == 0) {
			if (++i >= argc)
				return usage_error("", "--db needs a value");
			a.db = argv[i];
		} else if (strncmp(s, "--db=", 5) == 0) {
			a.db = s + 5;
		} else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			a.help = true;
		} else if (strcmp(s, "--version") == 0) {
			printf("larsctl %s\n", LARS_VERSION);
			return EXIT_OK;
		} else if (s[0] == '-' && !(s[1] >= '0' && s[1] <= '9')) {
			return usage_error("", "unknown option '%s'", s);
		} else if (a.argc < (int)(sizeof(a.argv) / sizeof(a.argv[0]))) {
			a.argv[a.argc++] = argv[i]; /* "-1" too: the id check explains it */
		} else {
			return usage_error("", "too many arguments");
		}
	}
	if (a.argc == 0) {
		if (a.help) {
			fputs(usage_main, stdout);
			return EXIT_OK;
		}
		return usage_error("", "missing command");
	}
	if (strcmp(a.argv[0], "migrate") == 0)
		return cmd_migrate(&a);
	if (strcmp(a.argv[0], "route") == 0)
		return cmd_route(&a);
	return usage_error("", "unknown command '%s'", a.argv[0]);
}
