// SPDX-License-Identifier: MIT
// larsctl changes (issue 24.7): the change log the console shows, newest
// first: who changed which route when, with what the change set.
#include "larsctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "pg_conn.h"

#define CHANGES_LIMIT_MAX 100000

static const char usage_changes[] =
	"Usage: larsctl [--db CONNINFO] changes [MODID [CMDID]] [--since TIME] [--limit N]\n"
	"               [-o text|json|tsv]\n"
	"The route change log, newest first (at most N lines, default 100):\n"
	"  ID VERSION TIME MODID/CMDID ACTION HOST ACTOR DETAIL\n"
	"ACTION is add, del, set (a host's weight or drain; DETAIL says the new values),\n"
	"policy (the route's policy; HOST is -) or describe (a description was set:\n"
	"DETAIL is the text, MODID/* for a modid's; no route version: VERSION -).\n"
	"ACTOR is who made it: USER@HOST (larsctl), NAME (console, PEER), or the\n"
	"database role and application of another writer. TIME is UTC.\n"
	"--since TIME: only changes at or after TIME, a time PostgreSQL reads\n"
	"(2026-12-03, \"2026-12-03 10:00+01\") or an age: 30s, 15m, 2h, 7d.\n"
	"lars-dns prunes the log after [dns] change_log_days (7).\n"
	"-o json: one array of {\"id\", \"version\", \"changed_at\", \"modid\", \"cmdid\",\n"
	"\"action\", \"ip\", \"port\", \"detail\", \"actor\"} (null when none: version\n"
	"of a describe, cmdid of a modid's description, ip, port, detail, actor);\n"
	"-o tsv: the same columns under a header line.\n"
	"Exit status: 0 done, 1 database failure, 2 bad input.\n";

static const out_col_t changes_cols[] = {
	{ "id", 'n' }, { "version", 'n' }, { "changed_at", 's' }, { "modid", 'n' },
	{ "cmdid", 'n' }, { "action", 's' }, { "ip", 's' }, { "port", 'n' }, { "detail", 's' },
	{ "actor", 's' },
};

/* "15m" and the like as a PostgreSQL interval text, else NULL. */
static const char *age_interval(const char *s, char out[48])
{
	char *end;
	long n = strtol(s, &end, 10);
	if (end == s || n < 0 || n > 100000000 || end[0] == '\0' || end[1] != '\0')
		return NULL;
	const char *unit = end[0] == 's' ? "seconds" : end[0] == 'm' ? "minutes"
			 : end[0] == 'h' ? "hours" : end[0] == 'd' ? "days" : NULL;
	if (!unit)
		return NULL;
	snprintf(out, 48, "%ld %s", n, unit);
	return out;
}

int cmd_changes(const args_t *a)
{
	status_filter_t f;
	if (a->help) {
		fputs(usage_changes, stdout);
		return EXIT_OK;
	}
	out_fmt_t fmt;
	if (larsctl_parse_filter(a, 1, "changes", &f) || larsctl_output(a, "changes", true, &fmt))
		return EXIT_USAGE;
	int limit = 100;
	if (a->limit) {
		char *end;
		long n = strtol(a->limit, &end, 10);
		if (!*a->limit || *end || n < 1 || n > CHANGES_LIMIT_MAX)
			return larsctl_usage_error("changes", "--limit takes 1..%d, not '%s'",
						   CHANGES_LIMIT_MAX, a->limit);
		limit = (int)n;
	}
	char ival[48];
	const char *age = a->since ? age_interval(a->since, ival) : NULL;
	PGconn *conn = larsctl_connect(a->db);
	if (!conn)
		return EXIT_DB;
	if (a->since && !age) {
		/* Checked by PostgreSQL itself, quietly: a time it cannot read
		 * is the operator's mistake (exit 2), not a database failure. */
		const char *p[1] = { a->since };
		PGresult *res = PQexecParams(conn, "SELECT $1::timestamptz", 1, NULL, p, NULL,
					     NULL, 0);
		bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		bool bad = !ok && state && strncmp(state, "22", 2) == 0;
		PQclear(res);
		if (bad) {
			PQfinish(conn);
			return larsctl_usage_error("changes", "--since takes a time (2026-12-03, "
						   "\"2026-12-03 10:00+01\") or an age (15m, 2h, "
						   "7d), not '%s'", a->since);
		}
		if (!ok) {
			PQfinish(conn);
			return EXIT_DB;
		}
	}
	char m[16], c[16], l[16];
	snprintf(m, sizeof(m), "%d", f.modid);
	snprintf(c, sizeof(c), "%d", f.cmdid);
	snprintf(l, sizeof(l), "%d", limit);
	const char *p[5] = { f.modid >= 0 ? m : NULL, f.cmdid >= 0 ? c : NULL,
			     age ? NULL : a->since, age, l };
	PGresult *res = pg_exec(conn,
		"SELECT id, nullif(version, 0), to_char(changed_at AT TIME ZONE 'UTC',"
		"  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), modid, nullif(cmdid, -1), action, host(ip),"
		"  port, nullif(detail, ''), nullif(actor, '')"
		" FROM route_change"
		" WHERE ($1::int IS NULL OR modid = $1::int) AND ($2::int IS NULL OR cmdid = $2::int)"
		"   AND ($3::timestamptz IS NULL OR changed_at >= $3::timestamptz)"
		"   AND ($4::interval IS NULL OR changed_at >= now() - $4::interval)"
		" ORDER BY id DESC LIMIT $5::int", 5, p, PGRES_TUPLES_OK);
	if (!res) {
		fprintf(stderr, "larsctl: cannot read the change log (has `larsctl migrate` been run?)\n");
		PQfinish(conn);
		return EXIT_DB;
	}
	if (fmt != OUT_TEXT) {
		out_pgresult(fmt, changes_cols, (int)(sizeof(changes_cols) / sizeof(changes_cols[0])), res);
		PQclear(res);
		PQfinish(conn);
		return EXIT_OK;
	}
	printf("%-10s %-10s %-20s %-21s %-8s %-21s %-30s %s\n", "ID", "VERSION", "TIME", "ROUTE",
	       "ACTION", "HOST", "ACTOR", "DETAIL");
	for (int i = 0; i < PQntuples(res); i++) {
		char route[24], host[64];
		snprintf(route, sizeof(route), "%s/%s", PQgetvalue(res, i, 3),
			 PQgetisnull(res, i, 4) ? "*" : PQgetvalue(res, i, 4));
		if (PQgetisnull(res, i, 6))
			snprintf(host, sizeof(host), "-");
		else
			snprintf(host, sizeof(host), "%s:%s", PQgetvalue(res, i, 6),
				 PQgetvalue(res, i, 7));
		printf("%-10s %-10s %-20s %-21s %-8s %-21s %-30s %s\n", PQgetvalue(res, i, 0),
		       PQgetisnull(res, i, 1) ? "-" : PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
		       route, PQgetvalue(res, i, 5), host,
		       PQgetisnull(res, i, 9) ? "-" : PQgetvalue(res, i, 9),
		       PQgetisnull(res, i, 8) ? "-" : PQgetvalue(res, i, 8));
	}
	PQclear(res);
	PQfinish(conn);
	return EXIT_OK;
}
