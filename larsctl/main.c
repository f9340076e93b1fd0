// SPDX-License-Identifier: MIT
// larsctl: the operators' tool. Talks to PostgreSQL directly (libpq conninfo
// from --db, else the PG* environment): schema migrations and routes
// (routes.c), the call statistics (status.c); and the console's users file
// (users.c). This file reads the command line and hands it to the command.
//
// Exit codes: 0 done (a duplicate add or a del of an absent host is reported
// on stderr and is still 0), 1 database failure, 2 bad input or usage.
#include "larsctl.h"

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
	"  route del --ip IP [--port PORT] remove a machine from every route it is in\n"
	"  route list [MODID [CMDID]]      list routes and their hosts\n"
	"  route export [MODID [CMDID]] [-o csv|json]\n"
	"                                  the routes' hosts as a file import reads\n"
	"  route import FILE [--dry-run]   make the routes in FILE hold exactly its\n"
	"                                  hosts, in one transaction; prints the diff\n"
	"  route weight MODID CMDID IP PORT WEIGHT\n"
	"                                  set a host's weight (1..1000, default 100)\n"
	"  route drain MODID CMDID IP PORT [--undo]\n"
	"                                  no new picks for a host (--undo: again)\n"
	"  route policy MODID CMDID [--panic-threshold P] [--max-ejection-percent P]\n"
	"               [--slow-start S]   show or set a route's balancing policy\n"
	"  describe MODID [CMDID] [--text TEXT]\n"
	"                                  show or set a modid's / route's description\n"
	"  status [MODID [CMDID]]          latest call statistics per host\n"
	"  status --history MINUTES [MODID [CMDID]] [--by-host [--failing]]\n"
	"         [--caller IP]            per-minute sums over the last MINUTES, per\n"
	"                                  route or per host\n"
	"  route show MODID CMDID          a route: hosts, policy, version, and how\n"
	"                                  many agents applied its last change\n"
	"  agents [--lagging]              every agent connected to a lars-dns, its lag\n"
	"  changes [MODID [CMDID]] [--since TIME] [--limit N]\n"
	"                                  the route change log, newest first\n"
	"  watch [MODID [CMDID]] [-o json] [--count N]\n"
	"                                  one line per route change as it commits\n"
	"  admin-user add|del NAME         console users (password asked for)\n"
	"  admin-user list\n"
	"\n"
	"  --db CONNINFO   libpq connection string or URI (default: PG* variables);\n"
	"                  several hosts with target_session_attrs=read-write find\n"
	"                  the primary, also after a failover\n"
	"  --retry-for SECONDS\n"
	"                  how long a change waits out a failover: no writable\n"
	"                  server, or a connection lost mid-change (default 30;\n"
	"                  0 = try once)\n"
	"  -o, --output text|json|tsv\n"
	"                  route list, status, agents and changes: one JSON document\n"
	"                  or tab-separated values for scripts (watch: text or json)\n"
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

/*
 * The change records' actor (migration 010): "USER@HOST (larsctl)", with the
 * user sudo was run by when there is one. Set on the session, so every
 * change the write makes carries it.
 */
static void set_actor(PGconn *conn)
{
	char host[256] = "", actor[512];
	const struct passwd *pw = getpwuid(geteuid());
	const char *user = pw ? pw->pw_name : "uid-unknown";
	const char *sudo = getenv("SUDO_USER");
	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "unknown-host");
	if (sudo && *sudo && strcmp(sudo, user) != 0)
		snprintf(actor, sizeof(actor), "%s@%s (larsctl, sudo by %s)", user, host, sudo);
	else
		snprintf(actor, sizeof(actor), "%s@%s (larsctl)", user, host);
	(void)route_set_actor(conn, actor, false); /* a failure shows in the write that follows */
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int larsctl_write(const args_t *a, larsctl_write_fn fn, void *arg, int *attemptsp)
{
	double deadline = mono_s() + (a->retry_for_s < 0 ? 30 : a->retry_for_s);
	unsigned delay_ms = 200;
	bool told = false;
	*attemptsp = 0;
	for (;;) {
		PGconn *conn = pg_open(a->db, "larsctl", 10);
		int r = -ENOTCONN;
		bool retry;
		if (PQstatus(conn) == CONNECTION_OK) {
			pg_conn_lost_clear();
			set_actor(conn);
			r = fn(conn, arg);
			++*attemptsp;
			retry = r < 0 && pg_conn_lost();
		} else {
			retry = pg_connect_error_transient(conn);
			if (!retry || mono_s() >= deadline) {
				const char *msg = PQerrorMessage(conn);
				log_error("cannot connect to PostgreSQL: %.*s",
					  (int)strcspn(msg, "\n"), msg);
			}
		}
		PQfinish(conn);
		if (!retry || mono_s() >= deadline)
			return r;
		if (!told)
			fprintf(stderr, "larsctl: %s; trying again for up to %d s\n",
				r == -ENOTCONN ? "no writable PostgreSQL server reachable"
					       : "the change was cut off (connection lost, or "
						 "the server is read-only)",
				a->retry_for_s < 0 ? 30 : a->retry_for_s);
		told = true;
		struct timespec ts = { .tv_sec = delay_ms / 1000,
				       .tv_nsec = (long)(delay_ms % 1000) * 1000000 };
		nanosleep(&ts, NULL);
		delay_ms = delay_ms * 2 > 2000 ? 2000 : delay_ms * 2;
	}
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
	f->caller = NULL;
	if (a->argc > first + 2)
		return larsctl_usage_error(cmd, "%s takes at most MODID CMDID", cmd);
	if (a->argc > first && route_parse_id(a->argv[first], "MODID", &f->modid, &why))
		return larsctl_usage_error(cmd, "%s", why);
	if (a->argc > first + 1 && route_parse_id(a->argv[first + 1], "CMDID", &f->cmdid, &why))
		return larsctl_usage_error(cmd, "%s", why);
	return 0;
}

/*
 * value_option() - whether argv[*@ip] is option @name, as "--name VALUE" or
 * "--name=VALUE"; then *@valuep gets VALUE (NULL when it is missing) and
 * *@ip moves past what was used.
 */
static bool value_option(int argc, char **argv, int *ip, const char *name, const char **valuep)
{
	const char *s = argv[*ip];
	size_t n = strlen(name);
	if (strncmp(s, name, n) != 0 || (s[n] != '\0' && s[n] != '='))
		return false;
	if (s[n] == '=')
		*valuep = s + n + 1;
	else
		*valuep = ++*ip < argc ? argv[*ip] : NULL;
	return true;
}

int main(int argc, char **argv)
{
	args_t a = { .retry_for_s = -1 };

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
		} else if (strcmp(s, "--role") == 0) {
			if (++i >= argc)
				return larsctl_usage_error("admin-user", "--role needs read or write");
			a.role = argv[i];
		} else if (strncmp(s, "--role=", 7) == 0) {
			a.role = s + 7;
		} else if (strcmp(s, "--retry-for") == 0 || strncmp(s, "--retry-for=", 12) == 0) {
			const char *v = s[11] == '=' ? s + 12 : (++i < argc ? argv[i] : NULL);
			char *end;
			long n = v ? strtol(v, &end, 10) : -1;
			if (!v || !*v || *end || n < 0 || n > 3600)
				return larsctl_usage_error("", "--retry-for needs SECONDS 0..3600");
			a.retry_for_s = (int)n;
		} else if (value_option(argc, argv, &i, "--panic-threshold", &a.panic_threshold) ||
			   value_option(argc, argv, &i, "--max-ejection-percent",
					&a.max_ejection_percent) ||
			   value_option(argc, argv, &i, "--slow-start", &a.slow_start)) {
			if (i >= argc) /* "--slow-start" last, without its value */
				return larsctl_usage_error("route", "%s needs a value", s);
		} else if (value_option(argc, argv, &i, "--output", &a.output) ||
			   value_option(argc, argv, &i, "-o", &a.output) ||
			   value_option(argc, argv, &i, "--count", &a.count)) {
			if (i >= argc)
				return larsctl_usage_error("", "%s needs a value", s);
		} else if (value_option(argc, argv, &i, "--caller", &a.caller) ||
			   value_option(argc, argv, &i, "--fail-pct", &a.fail_pct)) {
			if (i >= argc)
				return larsctl_usage_error("status", "%s needs a value", s);
		} else if (value_option(argc, argv, &i, "--ip", &a.ip) ||
			   value_option(argc, argv, &i, "--port", &a.port)) {
			if (i >= argc)
				return larsctl_usage_error("route", "%s needs a value", s);
		} else if (strcmp(s, "--dry-run") == 0) {
			a.dry_run = true;
		} else if (value_option(argc, argv, &i, "--since", &a.since) ||
			   value_option(argc, argv, &i, "--limit", &a.limit)) {
			if (i >= argc)
				return larsctl_usage_error("changes", "%s needs a value", s);
		} else if (strcmp(s, "--by-host") == 0) {
			a.by_host = true;
		} else if (strcmp(s, "--failing") == 0) {
			a.failing = true;
		} else if (strcmp(s, "--lagging") == 0) {
			a.lagging = true;
		} else if (strcmp(s, "--undo") == 0) {
			a.undo = true;
		} else if (strcmp(s, "--force") == 0) {
			a.force = true;
		} else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			a.help = true;
		} else if (strcmp(s, "--version") == 0) {
			printf("larsctl %s\n", LARS_VERSION);
			return EXIT_OK;
		} else if (s[0] == '-' && s[1] && !(s[1] >= '0' && s[1] <= '9')) {
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
	if ((a.by_host || a.failing || a.caller || a.fail_pct) && strcmp(a.argv[0], "status") != 0)
		return larsctl_usage_error("", "--by-host, --failing, --fail-pct and --caller are "
					   "options of status");
	if ((a.since || a.limit) && strcmp(a.argv[0], "changes") != 0)
		return larsctl_usage_error("", "%s is an option of changes",
					   a.since ? "--since" : "--limit");
	if ((a.ip || a.port || a.dry_run) && strcmp(a.argv[0], "route") != 0)
		return larsctl_usage_error("", "%s is an option of route",
					   a.dry_run ? "--dry-run" : a.ip ? "--ip" : "--port");
	if (a.lagging && strcmp(a.argv[0], "agents") != 0)
		return larsctl_usage_error("", "--lagging is an option of agents");
	if (a.count && strcmp(a.argv[0], "watch") != 0)
		return larsctl_usage_error("", "--count is an option of watch");
	if (a.output && strcmp(a.argv[0], "watch") != 0 && strcmp(a.argv[0], "route") != 0 &&
	    strcmp(a.argv[0], "status") != 0 && strcmp(a.argv[0], "agents") != 0 &&
	    strcmp(a.argv[0], "changes") != 0)
		return larsctl_usage_error("", "-o is an option of route, status, agents, changes "
					   "and watch");
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
	if (strcmp(a.argv[0], "watch") == 0)
		return cmd_watch(&a);
	if (strcmp(a.argv[0], "agents") == 0)
		return cmd_agents(&a);
	if (strcmp(a.argv[0], "changes") == 0)
		return cmd_changes(&a);
	return larsctl_usage_error("", "unknown command '%s'", a.argv[0]);
}
