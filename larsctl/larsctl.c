// SPDX-License-Identifier: MIT
// larsctl: the operators' tool. Talks to PostgreSQL directly (libpq conninfo
// from --db, else the PG* environment): schema migrations and routes; and
// the console's users file (admin-user).
//
// Exit codes: 0 done (a duplicate add or a del of an absent host is reported
// on stderr and is still 0), 1 database failure, 2 bad input or usage.
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "lars_config.h"
#include "log.h"
#include "migrations.h"
#include "pg_conn.h"
#include "route_write.h"
#include "userfile.h"

enum { EXIT_OK = 0, EXIT_DB = 1, EXIT_USAGE = 2 };

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

static const char usage_status[] =
	"Usage: larsctl [--db CONNINFO] status [MODID [CMDID]]\n"
	"       larsctl [--db CONNINFO] status --history MINUTES [MODID [CMDID]]\n"
	"The latest status lars-reporter stored per host and caller: successes,\n"
	"errors, error rate, overload and the age of the report; with --history,\n"
	"per-minute sums of successes and errors per route.\n";

static const char usage_describe[] =
	"Usage: larsctl [--db CONNINFO] describe MODID [CMDID] [--text TEXT]\n"
	"Shows the description of modid MODID (or of route MODID/CMDID); with\n"
	"--text, sets it (one line of UTF-8 text, at most 4096 bytes: quotes and\n"
	"SQL in it are stored as given).\n";

static const char usage_admin_user[] =
	"Usage: larsctl admin-user add NAME [--users-file FILE] [--group GROUP] [--force]\n"
	"       larsctl admin-user del NAME [--users-file FILE]\n"
	"       larsctl admin-user list [--users-file FILE]\n"
	"Manages who may log in to the web console (lars-admin): one NAME:HASH\n"
	"line per user (crypt(3), the system's preferred method). add asks for the\n"
	"password twice on the terminal, or reads one line from standard input\n"
	"when it is not a terminal; it replaces the password of an existing user.\n"
	"A password has at least 12 characters (bytes); --force takes a shorter one.\n"
	"The file is replaced atomically and keeps its owner, group and mode. A new\n"
	"file gets mode 0640 and group GROUP (default: the directory's group when\n"
	"the directory is not world-writable, else root), and add says so.\n"
	"FILE defaults to $LARS_ADMIN_USERS, else " LARS_ADMIN_USERS_DEFAULT ".\n"
	"NAME: 1..64 of A-Z a-z 0-9 . _ -\n";

typedef struct args {
	const char *db;
	const char *users_file; /* --users-file FILE */
	const char *history; /* --history MINUTES */
	const char *text;    /* --text TEXT */
	const char *group;   /* --group GROUP (admin-user add, a new file) */
	bool force;          /* --force (admin-user add: a short password) */
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

static int parse_filter(const args_t *a, int first, const char *cmd, char mbuf[16],
			char cbuf[16], const char *params[2]);

static int route_list(PGconn *conn, const char *params[2])
{
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

	route_entry_t e;
	char mbuf[16], cbuf[16];
	const char *params[2];
	if (list && parse_filter(a, 2, "route list", mbuf, cbuf, params))
		return EXIT_USAGE;
	if (add || del) {
		const char *why;
		if (a->argc != 6)
			return usage_error("route", "route %s needs MODID CMDID IP PORT", sub);
		if (route_parse(a->argv[2], a->argv[3], a->argv[4], a->argv[5], &e, &why, NULL))
			return usage_error("route", "%s", why);
	}
	PGconn *conn = connect_db(a->db);
	if (!conn)
		return EXIT_DB;
	int r;
	if (list) {
		r = route_list(conn, params);
	} else {
		int64_t version = 0;
		r = add ? route_add(conn, &e, &version) : route_del(conn, &e, &version);
		char msg[160];
		route_message(msg, sizeof(msg), add, r, &e, version);
		if (r == ROUTE_CHANGED) {
			printf("%s\n", msg);
			r = EXIT_OK;
		} else if (r == ROUTE_UNCHANGED) {
			fprintf(stderr, "larsctl: %s\n", msg);
			r = EXIT_OK;
		} else {
			fprintf(stderr, "larsctl: nothing changed (has `larsctl migrate` been run?)\n");
			r = EXIT_DB;
		}
	}
	PQfinish(conn);
	return r;
}

/* Optional MODID [CMDID] from argv[first..] into text parameters (NULL = any). */
static int parse_filter(const args_t *a, int first, const char *cmd, char mbuf[16],
			char cbuf[16], const char *params[2])
{
	int32_t v;
	const char *why;
	params[0] = params[1] = NULL;
	if (a->argc > first + 2)
		return usage_error(cmd, "%s takes at most MODID CMDID", cmd);
	if (a->argc > first) {
		if (route_parse_id(a->argv[first], "MODID", &v, &why))
			return usage_error(cmd, "%s", why);
		snprintf(mbuf, 16, "%d", v);
		params[0] = mbuf;
	}
	if (a->argc > first + 1) {
		if (route_parse_id(a->argv[first + 1], "CMDID", &v, &why))
			return usage_error(cmd, "%s", why);
		snprintf(cbuf, 16, "%d", v);
		params[1] = cbuf;
	}
	return 0;
}

static int cmd_status(const args_t *a)
{
	char mbuf[16], cbuf[16], hbuf[16];
	const char *params[3];
	int32_t minutes = 0;
	const char *why;

	if (a->help) {
		fputs(usage_status, stdout);
		return EXIT_OK;
	}
	if (parse_filter(a, 1, "status", mbuf, cbuf, params))
		return EXIT_USAGE;
	if (a->history) {
		if (route_parse_id(a->history, "MINUTES", &minutes, &why) || minutes < 1 ||
		    minutes > 525600)
			return usage_error("status", "--history takes MINUTES 1..525600");
		snprintf(hbuf, sizeof(hbuf), "%d", minutes);
		params[2] = hbuf;
	}
	PGconn *conn = connect_db(a->db);
	if (!conn)
		return EXIT_DB;
	PGresult *res;
	if (a->history) {
		res = pg_exec(conn,
			"SELECT to_char(minute, 'YYYY-MM-DD HH24:MI'), modid, cmdid, "
			"       sum(succ), sum(err), "
			"       round(100.0 * sum(err) / nullif(sum(succ) + sum(err), 0), 1) "
			"FROM host_status_history "
			"WHERE minute >= date_trunc('minute', now()) - make_interval(mins => $3::int - 1) "
			"AND ($1::int IS NULL OR modid = $1::int) AND ($2::int IS NULL OR cmdid = $2::int) "
			"GROUP BY minute, modid, cmdid ORDER BY minute, modid, cmdid",
			3, params, PGRES_TUPLES_OK);
		if (res) {
			printf("%-17s %-10s %-10s %12s %12s %6s\n", "MINUTE", "MODID", "CMDID",
			       "SUCC", "ERR", "ERR%");
			for (int i = 0; i < PQntuples(res); i++)
				printf("%-17s %-10s %-10s %12s %12s %6s\n", PQgetvalue(res, i, 0),
				       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
				       PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
				       PQgetisnull(res, i, 5) ? "-" : PQgetvalue(res, i, 5));
		}
	} else {
		res = pg_exec(conn,
			"SELECT modid, cmdid, host(ip) || ':' || port, host(caller), succ, err, "
			"       round(100.0 * err / nullif(succ + err, 0), 1), "
			"       CASE WHEN overload THEN 'yes' ELSE 'no' END, "
			"       greatest(0, extract(epoch FROM now() - ts))::bigint "
			"FROM host_status "
			"WHERE ($1::int IS NULL OR modid = $1::int) AND ($2::int IS NULL OR cmdid = $2::int) "
			"ORDER BY modid, cmdid, ip, port, caller", 2, params, PGRES_TUPLES_OK);
		if (res) {
			printf("%-10s %-10s %-21s %-15s %10s %10s %6s %-8s %s\n", "MODID", "CMDID",
			       "HOST", "CALLER", "SUCC", "ERR", "ERR%", "OVERLOAD", "AGE");
			for (int i = 0; i < PQntuples(res); i++)
				printf("%-10s %-10s %-21s %-15s %10s %10s %6s %-8s %ss\n",
				       PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
				       PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
				       PQgetvalue(res, i, 4), PQgetvalue(res, i, 5),
				       PQgetisnull(res, i, 6) ? "-" : PQgetvalue(res, i, 6),
				       PQgetvalue(res, i, 7), PQgetvalue(res, i, 8));
		}
	}
	int r = res ? EXIT_OK : EXIT_DB;
	if (!res)
		fprintf(stderr, "larsctl: cannot read the statistics (has `larsctl migrate` been run?)\n");
	PQclear(res);
	PQfinish(conn);
	return r;
}

static int cmd_describe(const args_t *a)
{
	char mbuf[16], cbuf[16];
	const char *params[3];
	const char *why;

	if (a->help) {
		fputs(usage_describe, stdout);
		return EXIT_OK;
	}
	if (a->argc < 2)
		return usage_error("describe", "describe needs MODID [CMDID]");
	if (parse_filter(a, 1, "describe", mbuf, cbuf, params))
		return EXIT_USAGE;
	if (a->text && route_describe_check(a->text, &why))
		return usage_error("describe", "%s", why);
	PGconn *conn = connect_db(a->db);
	if (!conn)
		return EXIT_DB;
	bool route = params[1] != NULL;
	PGresult *res = NULL;
	if (a->text) {
		int r = route_describe(conn, (int32_t)atol(params[0]),
				       route ? (int32_t)atol(params[1]) : -1, a->text);
		PQfinish(conn);
		return r ? EXIT_DB : EXIT_OK;
	} else {
		res = route ? pg_exec(conn, "SELECT description FROM cmdid_config "
					    "WHERE modid = $1::int AND cmdid = $2::int",
				      2, params, PGRES_TUPLES_OK)
			    : pg_exec(conn, "SELECT description FROM modid_config WHERE modid = $1::int",
				      1, params, PGRES_TUPLES_OK);
		if (res && PQntuples(res))
			printf("%s\n", PQgetvalue(res, 0, 0));
		else if (res)
			fprintf(stderr, "larsctl: no such %s\n", route ? "route" : "modid");
		PQclear(res);
	}
	PQfinish(conn);
	return res ? EXIT_OK : EXIT_DB;
}

/* One line of a password: from the terminal without echo, else from stdin. */
static char *read_password(const char *prompt)
{
	FILE *tty = isatty(STDIN_FILENO) ? fopen("/dev/tty", "r+e") : NULL;
	FILE *in = tty ? tty : stdin;
	struct termios old, quiet;
	bool echo_off = false;
	if (tty) {
		fputs(prompt, tty);
		fflush(tty);
		if (tcgetattr(fileno(tty), &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off = tcsetattr(fileno(tty), TCSAFLUSH, &quiet) == 0;
		}
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, in);
	if (echo_off) {
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
		fputc('\n', tty);
	}
	if (tty)
		fclose(tty);
	if (n < 0) {
		free(line);
		return NULL;
	}
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static void free_password(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

/* A group name or number; 0, or -1 when there is no such group. */
static int parse_group(const char *s, gid_t *gidp)
{
	const struct group *g = getgrnam(s);
	if (g) {
		*gidp = g->gr_gid;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v >= (gid_t)-1 || s[0] == '-')
		return -1;
	*gidp = (gid_t)v;
	return 0;
}

static const char *user_str(uid_t uid, char *buf, size_t cap)
{
	const struct passwd *p = getpwuid(uid);
	if (p)
		snprintf(buf, cap, "%s", p->pw_name);
	else
		snprintf(buf, cap, "%u", (unsigned)uid);
	return buf;
}

static const char *group_str(gid_t gid, char *buf, size_t cap)
{
	const struct group *g = getgrgid(gid);
	if (g)
		snprintf(buf, cap, "%s", g->gr_name);
	else
		snprintf(buf, cap, "%u", (unsigned)gid);
	return buf;
}

static int cmd_admin_user(const args_t *a)
{
	if (a->help) {
		fputs(usage_admin_user, stdout);
		return EXIT_OK;
	}
	const char *path = a->users_file ? a->users_file : getenv("LARS_ADMIN_USERS");
	if (!path || !*path)
		path = LARS_ADMIN_USERS_DEFAULT;
	const char *sub = a->argc > 1 ? a->argv[1] : "";
	bool add = strcmp(sub, "add") == 0, del = strcmp(sub, "del") == 0;
	bool list = strcmp(sub, "list") == 0;
	if (!add && !del && !list)
		return usage_error("admin-user", "admin-user needs add, del or list");
	if (a->argc != (list ? 2 : 3))
		return usage_error("admin-user", list ? "admin-user list takes no NAME"
						      : "admin-user %s needs NAME", sub);
	const char *name = list ? NULL : a->argv[2];
	if (name && !userfile_valid_name(name))
		return usage_error("admin-user", "NAME must be 1..64 of A-Z a-z 0-9 . _ -");
	if ((a->group || a->force) && !add)
		return usage_error("admin-user", "%s is for admin-user add",
				   a->group ? "--group" : "--force");
	gid_t new_gid = USERFILE_GID_DEFAULT;
	if (a->group && parse_group(a->group, &new_gid))
		return usage_error("admin-user", "no group '%s'", a->group);

	userfile_t uf = { 0 };
	const char *why = "";
	int r = userfile_load(path, false, &uf, &why);
	if (r == -ENOENT && add) {
		r = 0; /* the first user creates the file */
	} else if (r) {
		fprintf(stderr, "larsctl: cannot read %s: %s\n", path,
			r == -EINVAL ? why : strerror(-r));
		return EXIT_DB;
	}
	if (list) {
		for (size_t i = 0; i < uf.n; i++)
			printf("%s\n", uf.users[i].name);
		userfile_free(&uf);
		return EXIT_OK;
	}
	if (del && !userfile_del(&uf, name)) {
		fprintf(stderr, "larsctl: no user '%s' in %s; nothing changed\n", name, path);
		userfile_free(&uf);
		return EXIT_OK;
	}
	if (add) {
		char *pw = read_password("Password: ");
		char *again = pw && isatty(STDIN_FILENO) ? read_password("Again: ") : NULL;
		const char *bad = !pw ? "no password given"
				: !*pw ? "the password is empty"
				: strlen(pw) > USERFILE_PASS_MAX ? "the password is over 256 bytes"
				: strlen(pw) < USERFILE_PASS_MIN && !a->force
				? "the password is shorter than 12 characters (the minimum length; "
				  "--force takes it)"
				: again && strcmp(pw, again) != 0 ? "the passwords differ" : NULL;
		char *hash = bad ? NULL : userfile_hash(pw);
		free_password(pw);
		free_password(again);
		if (bad) {
			userfile_free(&uf);
			return usage_error("admin-user", "%s; nothing changed", bad);
		}
		if (!hash) {
			fprintf(stderr, "larsctl: cannot hash the password: %s\n", strerror(errno));
			userfile_free(&uf);
			return EXIT_DB;
		}
		userfile_set(&uf, name, hash);
		free(hash);
	}
	userfile_attrs_t at;
	r = userfile_save(path, &uf, new_gid, &at);
	userfile_free(&uf);
	if (r) {
		fprintf(stderr, "larsctl: cannot write %s: %s; nothing changed\n", path,
			strerror(-r));
		return EXIT_DB;
	}
	if (at.created) {
		char owner[64], group[64];
		printf("created %s (owner %s, group %s, mode %04o)\n", path,
		       user_str(at.uid, owner, sizeof(owner)),
		       group_str(at.gid, group, sizeof(group)), (unsigned)at.mode);
	} else if (a->group && at.gid != new_gid) {
		char group[64];
		fprintf(stderr, "larsctl: %s exists: kept its group %s (--group is for a new "
			"file; chgrp it yourself)\n", path, group_str(at.gid, group, sizeof(group)));
	}
	printf("%s user '%s' in %s\n", add ? "saved" : "removed", name, path);
	return EXIT_OK;
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
		} else if (strcmp(s, "--text") == 0) {
			if (++i >= argc)
				return usage_error("describe", "--text needs TEXT");
			a.text = argv[i];
		} else if (strncmp(s, "--text=", 7) == 0) {
			a.text = s + 7;
		} else if (strcmp(s, "--history") == 0) {
			if (++i >= argc)
				return usage_error("status", "--history needs MINUTES");
			a.history = argv[i];
		} else if (strncmp(s, "--history=", 10) == 0) {
			a.history = s + 10;
		} else if (strcmp(s, "--users-file") == 0) {
			if (++i >= argc)
				return usage_error("admin-user", "--users-file needs FILE");
			a.users_file = argv[i];
		} else if (strncmp(s, "--users-file=", 13) == 0) {
			a.users_file = s + 13;
		} else if (strcmp(s, "--group") == 0) {
			if (++i >= argc)
				return usage_error("admin-user", "--group needs GROUP");
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
	if (strcmp(a.argv[0], "status") == 0)
		return cmd_status(&a);
	if (strcmp(a.argv[0], "describe") == 0)
		return cmd_describe(&a);
	if (strcmp(a.argv[0], "admin-user") == 0)
		return cmd_admin_user(&a);
	return usage_error("", "unknown command '%s'", a.argv[0]);
}
