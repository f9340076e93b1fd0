// SPDX-License-Identifier: MIT
// larsctl watch (issue 20.4): one line per route change as it commits, like
// `consul watch` or `etcdctl watch`, until interrupted. LISTEN lars_route
// (the route triggers NOTIFY in the writer's transaction), then read the
// change log past the last version shown; a lost connection is reconnected
// and the log read from where it stopped, so nothing committed meanwhile is
// skipped (unless lars-dns pruned it: the line then says so).
#include "larsctl.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jbuf.h"
#include "log.h"
#include "pg_conn.h"
#include "route_load.h"

static const char usage_watch[] =
	"Usage: larsctl [--db CONNINFO] watch [MODID [CMDID]] [-o text|json] [--count N]\n"
	"Prints one line per route change as it commits (by larsctl, the console,\n"
	"psql or anyone), until interrupted (or after N lines with --count):\n"
	"  VERSION TIME MODID/CMDID +IP:PORT (added) -IP:PORT (removed)\n"
	"  ~IP:PORT(weight W[, drained]) (set) policy(...) (the route's policy)\n"
	"-o json: one JSON object per line {\"version\", \"changed_at\", \"modid\",\n"
	"\"cmdid\", \"added\": [\"IP:PORT\"], \"removed\", \"set\": [{\"host\", \"detail\"}],\n"
	"\"policy\"}. A version whose records are gone (pruned, TRUNCATE) prints\n"
	"\"VERSION TIME */* (not in the change log: every route may have changed)\".\n"
	"Starts at the current version; reconnects and catches up after a lost\n"
	"connection.\n";

static volatile sig_atomic_t stop_watch;

static void on_signal(int sig)
{
	(void)sig;
	stop_watch = 1;
}

typedef struct watch {
	status_filter_t f;
	bool json;
	long count;   /* lines left; < 0 = no limit */
	int64_t seen; /* the last version shown */
} watch_t;

/* One version of one route (rows [@from, @to) of @res) as a line. */
static void print_group(const watch_t *w, const PGresult *res, int from, int to)
{
	jbuf_t b = { 0 }, *l = &b;
	const char *version = PQgetvalue(res, from, 0), *when = PQgetvalue(res, from, 1);
	const char *modid = PQgetvalue(res, from, 2), *cmdid = PQgetvalue(res, from, 3);
	if (w->json) {
		jbuf_printf(l, "{\"version\":%s,\"changed_at\":\"%s\",\"modid\":%s,\"cmdid\":%s", version,
		    when, modid, cmdid);
		static const char *const lists[] = { "add", "del" };
		static const char *const names[] = { "added", "removed" };
		for (int k = 0; k < 2; k++) {
			jbuf_printf(l, ",\"%s\":[", names[k]);
			bool first = true;
			for (int i = from; i < to; i++) {
				if (strcmp(PQgetvalue(res, i, 4), lists[k]) != 0)
					continue;
				jbuf_printf(l, "%s\"%s:%s\"", first ? "" : ",", PQgetvalue(res, i, 5),
				    PQgetvalue(res, i, 6));
				first = false;
			}
			jbuf_printf(l, "]");
		}
		jbuf_printf(l, ",\"set\":[");
		bool first = true;
		const char *policy = NULL;
		for (int i = from; i < to; i++) {
			const char *action = PQgetvalue(res, i, 4);
			if (strcmp(action, "policy") == 0)
				policy = PQgetvalue(res, i, 7);
			if (strcmp(action, "set") != 0)
				continue;
			jbuf_printf(l, "%s{\"host\":\"%s:%s\",\"detail\":", first ? "" : ",",
			    PQgetvalue(res, i, 5), PQgetvalue(res, i, 6));
			jbuf_str(l, PQgetvalue(res, i, 7));
			jbuf_printf(l, "}");
			first = false;
		}
		jbuf_printf(l, "],\"policy\":");
		if (policy)
			jbuf_str(l, policy);
		else
			jbuf_printf(l, "null");
		jbuf_printf(l, "}");
	} else {
		jbuf_printf(l, "%s %s %s/%s", version, when, modid, cmdid);
		for (int i = from; i < to; i++) {
			const char *action = PQgetvalue(res, i, 4);
			const char *ip = PQgetvalue(res, i, 5), *port = PQgetvalue(res, i, 6);
			const char *detail = PQgetvalue(res, i, 7);
			if (strcmp(action, "add") == 0)
				jbuf_printf(l, " +%s:%s", ip, port);
			else if (strcmp(action, "del") == 0)
				jbuf_printf(l, " -%s:%s", ip, port);
			else if (strcmp(action, "set") == 0)
				jbuf_printf(l, " ~%s:%s(%s)", ip, port, detail);
			else
				jbuf_printf(l, " policy(%s)", detail);
		}
	}
	char *text = jbuf_take(l, NULL);
	if (text)
		printf("%s\n", text);
	free(text);
}

/* A version with no records left (pruned, or a TRUNCATE). */
static void print_gap(const watch_t *w, int64_t version, const char *when)
{
	if (w->json)
		printf("{\"version\":%" PRId64 ",\"changed_at\":\"%s\",\"modid\":null,\"cmdid\":null,"
		       "\"added\":[],\"removed\":[],\"set\":[],\"policy\":null,\"unknown\":true}\n",
		       version, when);
	else
		printf("%" PRId64 " %s */* (not in the change log: every route may have changed)\n",
		       version, when);
}

/* Whether one more line may go out (--count). */
static bool take_line(watch_t *w)
{
	if (w->count == 0)
		return false;
	if (w->count > 0)
		w->count--;
	return true;
}

#define ISO_UTC(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Print what committed after w->seen. Return: 0, or -EIO (connection). */
static int catch_up(PGconn *conn, watch_t *w)
{
	int64_t now;
	if (route_version_read(conn, &now))
		return -EIO;
	if (now <= w->seen) {
		w->seen = now < w->seen ? now : w->seen; /* a restored database: start over */
		return 0;
	}
	char from[24], to[24], m[16], c[16];
	snprintf(from, sizeof(from), "%" PRId64, w->seen);
	snprintf(to, sizeof(to), "%" PRId64, now);
	snprintf(m, sizeof(m), "%d", w->f.modid);
	snprintf(c, sizeof(c), "%d", w->f.cmdid);
	const char *p[4] = { from, to, w->f.modid >= 0 ? m : NULL, w->f.cmdid >= 0 ? c : NULL };
	PGresult *res = pg_exec(conn,
		"SELECT version, " ISO_UTC("changed_at") ", modid, cmdid, action,"
		"  coalesce(host(ip), ''), coalesce(port::text, ''), detail"
		" FROM route_change WHERE version > $1::bigint AND version <= $2::bigint"
		"   AND ($3::int IS NULL OR modid = $3::int) AND ($4::int IS NULL OR cmdid = $4::int)"
		" ORDER BY version, modid, cmdid, id", 4, p, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	/* Versions without any record at all: pruned or truncated. Only
	 * without a filter: with one, another route's version is no gap. */
	PGresult *gaps = NULL;
	if (w->f.modid < 0) {
		gaps = pg_exec(conn,
			"SELECT v, " ISO_UTC("now()") " FROM generate_series($1::bigint + 1, $2::bigint) v"
			" WHERE NOT EXISTS (SELECT 1 FROM route_change WHERE version = v)"
			" ORDER BY v LIMIT 1000", 2, p, PGRES_TUPLES_OK);
		if (!gaps) {
			PQclear(res);
			return -EIO;
		}
	}
	int n = PQntuples(res), g = 0, ng = gaps ? PQntuples(gaps) : 0;
	for (int i = 0; i < n;) {
		int64_t v = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		for (; g < ng && strtoll(PQgetvalue(gaps, g, 0), NULL, 10) < v; g++)
			if (take_line(w))
				print_gap(w, strtoll(PQgetvalue(gaps, g, 0), NULL, 10),
					  PQgetvalue(gaps, g, 1));
		int j = i + 1;
		while (j < n && strcmp(PQgetvalue(res, j, 0), PQgetvalue(res, i, 0)) == 0 &&
		       strcmp(PQgetvalue(res, j, 2), PQgetvalue(res, i, 2)) == 0 &&
		       strcmp(PQgetvalue(res, j, 3), PQgetvalue(res, i, 3)) == 0)
			j++;
		if (take_line(w))
			print_group(w, res, i, j);
		i = j;
	}
	for (; g < ng; g++)
		if (take_line(w))
			print_gap(w, strtoll(PQgetvalue(gaps, g, 0), NULL, 10), PQgetvalue(gaps, g, 1));
	fflush(stdout);
	PQclear(res);
	PQclear(gaps);
	w->seen = now;
	return 0;
}

/* Connected and listening, or NULL (logged). */
static PGconn *watch_connect(const char *db)
{
	PGconn *conn = pg_open(db, "larsctl watch", 10);
	if (PQstatus(conn) != CONNECTION_OK) {
		const char *msg = PQerrorMessage(conn);
		log_error("cannot connect to PostgreSQL: %.*s", (int)strcspn(msg, "\n"), msg);
		PQfinish(conn);
		return NULL;
	}
	if (pg_cmd(conn, "LISTEN lars_route")) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

int cmd_watch(const args_t *a)
{
	if (a->help) {
		fputs(usage_watch, stdout);
		return EXIT_OK;
	}
	watch_t w = { .count = -1 };
	if (larsctl_parse_filter(a, 1, "watch", &w.f))
		return EXIT_USAGE;
	if (a->output && strcmp(a->output, "json") != 0 && strcmp(a->output, "text") != 0)
		return larsctl_usage_error("watch", "-o takes text or json, not '%s'", a->output);
	w.json = a->output && strcmp(a->output, "json") == 0;
	if (a->count) {
		char *end;
		long n = strtol(a->count, &end, 10);
		if (!*a->count || *end || n < 1 || n > 1000000000)
			return larsctl_usage_error("watch", "--count takes 1..1000000000, not '%s'",
						   a->count);
		w.count = n;
	}
	PGconn *conn = watch_connect(a->db);
	if (!conn)
		return EXIT_DB;
	if (route_version_read(conn, &w.seen)) {
		PQfinish(conn);
		return EXIT_DB;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	unsigned delay_ms = 200;
	while (!stop_watch && w.count != 0) {
		if (!conn) {
			struct timespec ts = { delay_ms / 1000, (long)(delay_ms % 1000) * 1000000 };
			nanosleep(&ts, NULL);
			delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
			if (!(conn = watch_connect(a->db)))
				continue;
			fprintf(stderr, "larsctl: watch: connected again, catching up from version "
					"%" PRId64 "\n", w.seen);
			delay_ms = 200;
		}
		/* Notifications, or a look every 5 s (a NOTIFY lost with a connection). */
		struct pollfd p = { .fd = PQsocket(conn), .events = POLLIN };
		int r = poll(&p, 1, 5000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0 && !PQconsumeInput(conn))
			goto lost;
		for (PGnotify *n; (n = PQnotifies(conn));)
			PQfreemem(n);
		if (catch_up(conn, &w) == 0 && !ferror(stdout))
			continue;
		if (ferror(stdout))
			break; /* a closed pipe: nobody reads any more */
lost:
		fprintf(stderr, "larsctl: watch: lost the database connection; reconnecting\n");
		PQfinish(conn);
		conn = NULL;
	}
	PQfinish(conn);
	return EXIT_OK;
}
