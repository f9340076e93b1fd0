// SPDX-License-Identifier: MIT
// larsctl: what main.c and the command files (routes.c, status.c, users.c)
// share: the parsed arguments, the exit codes and the helpers every command
// uses to refuse input and to connect.
#pragma once

#include <stdbool.h>

#include <libpq-fe.h>

#include "status.h"

/* The exit codes are a contract (scripts test them): 0 done, 1 database
 * (or users file) failure, 2 bad input or usage. */
enum { EXIT_OK = 0, EXIT_DB = 1, EXIT_USAGE = 2 };

/* The command line: options wherever they are, and the words in order. */
typedef struct args {
	const char *db;
	const char *users_file; /* --users-file FILE */
	const char *history;    /* --history MINUTES */
	const char *text;       /* --text TEXT */
	const char *group;      /* --group GROUP (admin-user add, a new file) */
	const char *role;       /* --role read|write (admin-user add) */
	bool force;             /* --force (admin-user add: a short password) */
	bool undo;              /* --undo (route drain: take the host back) */
	bool lagging;           /* --lagging (agents: only the lagging ones) */
	/* route policy: --panic-threshold P, --max-ejection-percent P, --slow-start S */
	const char *panic_threshold;
	const char *max_ejection_percent;
	const char *slow_start;
	const char *output;     /* -o / --output FORMAT (watch: text or json) */
	const char *count;      /* --count N (watch: stop after N lines) */
	/* status: --by-host, --caller IP, --failing, --fail-pct P */
	bool by_host;
	bool failing;
	const char *caller;
	const char *fail_pct;
	const char *since;      /* changes: --since TIME */
	const char *limit;      /* changes: --limit N */
	const char *ip;         /* route del --ip IP */
	const char *port;       /* route del --ip IP --port PORT */
	bool dry_run;           /* route import --dry-run */
	int retry_for_s;        /* --retry-for SECONDS: how long a write waits out a failover */
	bool help;
	int argc;
	char *argv[16];
} args_t;

/** larsctl_usage_error() - bad input: one line on stderr; returns EXIT_USAGE. */
__attribute__((format(printf, 2, 3)))
int larsctl_usage_error(const char *cmd, const char *fmt, ...);

/** larsctl_connect() - the database of --db (else PG*), or NULL (logged). */
PGconn *larsctl_connect(const char *db);

/**
 * larsctl_write_fn - one write in one transaction on @conn: 0, or a negative
 * errno after pg_exec() logged why (pg_conn_lost() then tells whether the
 * connection, not the write, failed).
 */
typedef int (*larsctl_write_fn)(PGconn *conn, void *arg);
/**
 * larsctl_write() - run @fn on a new connection to --db (else PG*), and once
 * more on another while a failover is the reason it could not: connecting
 * failed transiently (refused, standby only, starting up) or the write was
 * cut off by a lost connection or a read-only server. A multi-host conninfo
 * with target_session_attrs=read-write then finds the promoted standby.
 * Retries end after --retry-for seconds (default 30). *attemptsp gets the
 * number of runs of @fn (more than 1: a cut-off one may have committed).
 * Return: what @fn returned, or -ENOTCONN when no connection came (logged).
 */
int larsctl_write(const args_t *a, larsctl_write_fn fn, void *arg, int *attemptsp);

/** larsctl_parse_filter() - optional MODID [CMDID] from argv[@first..]: 0 or EXIT_USAGE. */
int larsctl_parse_filter(const args_t *a, int first, const char *cmd, status_filter_t *f);

/* The commands (each returns the exit code). */
int cmd_migrate(const args_t *a);   /* routes.c */
int cmd_route(const args_t *a);     /* routes.c */
int cmd_describe(const args_t *a);  /* routes.c */
int cmd_status(const args_t *a);    /* status.c */
int cmd_admin_user(const args_t *a); /* users.c */
int cmd_watch(const args_t *a);     /* watch.c */
int cmd_agents(const args_t *a);    /* agents.c */
int cmd_changes(const args_t *a);   /* changes.c */
/** route_export(), route_import(), route_del_ip() - transfer.c. */
int route_export(const args_t *a);
int route_import(const args_t *a);
int route_del_ip(const args_t *a);
/** route_show() - `route show MODID CMDID` (agents.c). */
int route_show(const args_t *a, int32_t modid, int32_t cmdid);
