// SPDX-License-Identifier: MIT
// larsctl: the operators' tool. Talks to PostgreSQL directly (libpq conninfo
// from --db, else the PG* environment): schema migrations and routes
// (routes.c), the call statistics (status.c); and the console's users file
// (users.c). This file reads the command line and hands it to the command.
//
// Exit codes: 0 done (a duplicate add or a del of an absent host is reported
// on stderr and is still 0), 1 database failure, 2 bad input or usage.
#include "larsctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lars_config.h"
#include "log.h"
#include "pg_conn.h"
#include "route_write.h"

static const char usage_main[] =
	"Usage: larsctl [--db CONNINFO] COMMAND [ARGS]\n"
	"\n"
	"Commands:\n"
	"  migrate                         apply the missing schema migrations\n"
	"  route add MODID CMDID IP PORT   add a host to a route\n"
	"  route del MODID CMDID IP PORT   remove a host from a route\n"
	"  route list [MODID [CMDID]]      list routes and their hosts\n"
	"  describe MODID [CMDID] [--text TEXT]\n"
	"                                  show or set a modid's / route's description\n"
	"  status [MODID [CMDID]]          latest call statistics per host\n"
	"  status --history MINUTES [MODID [CMDID]]\n"
	"                                  per-minute sums over the last MINUTES\n"
	"  admin-user add|del NAME         console users (password asked for)\n"
	"  admin-user list\n"
	"\n"
	"  --db CONNINFO   libpq connection string or URI (default: PG* variables)\n"
	"  -h, --help      help for larsctl or for a command\n"
	"      --version   print the version\n"
	"\n"
	"Exit status: 0 done, 1 database failure, 2 bad input.\n";

/**
 * larsctl_usage_error() - refuse bad input.
 * @cmd: the command whose help explains it ("" for larsctl's own)
 * @fmt: the reason, printf style
 *
 * Return: EXIT_USAGE, after one line "larsctl: REASON (see 'larsctl CMD --help')"
 * on stderr.
 */
int larsctl_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "larsctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'larsctl %s%s--help')\n", cmd, *cmd ? " " : "");
	return EXIT_USAGE;
}

/**
 * larsctl_connect() - connect to the database.
 * @db: a conninfo string or URI (NULL: the PG* variables)
 *
 * Return: the connection (the caller PQfinish()es it), or NULL after
 * logging the first line of libpq's reason.
 */
PGconn *larsctl_connect(const char *db)
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

/**
 * larsctl_parse_filter() - the optional MODID [CMDID] of a command.
 * @a: the arguments
 * @first: the index in @a->argv of MODID
 * @cmd: the command, for the messages
 * @f: gets the ids (-1: not given)
 *
 * Return: 0, or EXIT_USAGE after larsctl_usage_error() (more than two ids,
 * or one that is not an id).
 */
int larsctl_parse_filter(const args_t *a, int first, const char *cmd, status_filter_t *f)
{
	const char *why;
	f->modid = f->cmdid = -1;
	if (a->argc > first + 2)
		return larsctl_usage_error(cmd, "%s takes at most MODID CMDID", cmd);
	if (a->argc > first && route_parse_id(a->argv[first], "MODID", &f->modid, &why))
		return larsctl_usage_error(cmd, "%s", why);
	if (a->argc > first + 1 && route_parse_id(a->argv[first + 1], "CMDID", &f->cmdid, &why))
		return larsctl_usage_error(cmd, "%s", why);
	return 0;
}

int main(int argc, char **argv)
{
	args_t a = { 0 };

	log_init_cli("larsctl", LOG_LVL_WARN);
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (strcmp(s, "--db") == 0) {
			if (++i >= argc)
				return larsctl_usage_error("", "--db needs a value");
			a.db = argv[i];
		} else if (strncmp(s, "--db=", 5) == 0) {
			a.db = s + 5;
		} else if (strcmp(s, "--text") == 0) {
			if (++i >= argc)
				return larsctl_usage_error("describe", "--text needs TEXT");
			a.text = argv[i];
		} else if (strncmp(s, "--text=", 7) == 0) {
			a.text = s + 7;
		} else if (strcmp(s, "--history") == 0) {
			if (++i >= argc)
				return larsctl_usage_error("status", "--history needs MINUTES");
			a.history = argv[i];
		} else if (strncmp(s, "--history=", 10) == 0) {
			a.history = s + 10;
		} else if (strcmp(s, "--users-file") == 0) {
			if (++i >= argc)
				return larsctl_usage_error("admin-user", "--users-file needs FILE");
			a.users_file = argv[i];
		} else if (strncmp(s, "--users-file=", 13) == 0) {
			a.users_file = s + 13;
		} else if (strcmp(s, "--group") == 0) {
			if (++i >= argc)
				return larsctl_usage_error("admin-user", "--group needs GROUP");
			a.group = argv[i];
		} else if (strncmp(s, "--group=", 8) == 0) {
			a.group = s + 8;
		} else if (strcmp(s, "--force") == 0) {
			a.force = true;
		} else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			a.help = true;
		} else if (strcmp(s, "--version") == 0) {
			printf("larsctl %s\n", LARS_VERSION);
			return EXIT_OK;
		} else if (s[0] == '-' && !(s[1] >= '0' && s[1] <= '9')) {
			return larsctl_usage_error("", "unknown option '%s'", s);
		} else if (a.argc < (int)(sizeof(a.argv) / sizeof(a.argv[0]))) {
			a.argv[a.argc++] = argv[i]; /* "-1" too: the id check explains it */
		} else {
			return larsctl_usage_error("", "too many arguments");
		}
	}
	if (a.argc == 0) {
		if (a.help) {
			fputs(usage_main, stdout);
			return EXIT_OK;
		}
		return larsctl_usage_error("", "missing command");
	}
	if (strcmp(a.argv[0], "migrate") == 0)
		return cmd_migrate(&a);
	if (strcmp(a.argv[0], "route") == 0)
		return cmd_route(&a);
	if (strcmp(a.argv[0], "status") == 0)
		return cmd_status(&a);
	if (strcmp(a.argv[0], "describe") == 0)
		return cmd_describe(&a);
	if (strcmp(a.argv[0], "admin-user") == 0)
		return cmd_admin_user(&a);
	return larsctl_usage_error("", "unknown command '%s'", a.argv[0]);
}
