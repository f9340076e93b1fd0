// SPDX-License-Identifier: MIT
// Schema migrations (deploy/sql/NNN_name.sql, embedded at build time).
#pragma once

#include <stddef.h>
#include <stdio.h>

#include <libpq-fe.h>

typedef struct migration {
	int version;
	const char *name;
	const char *sql;
} migration_t;

extern const migration_t migrations[];
extern const size_t n_migrations;

/**
 * migrate_apply() - apply the migrations @conn's database lacks, in order,
 * each in its own transaction together with its schema_migrations record.
 * Concurrent runs serialise on a session advisory lock; a second run changes nothing.
 * Progress goes to @out. Return: 0, or -EIO (logged, nothing half-applied).
 */
int migrate_apply(PGconn *conn, FILE *out);

/** migrate_current() - highest applied version (0 if none); -EIO on error. */
int migrate_current(PGconn *conn, int *versionp);

/**
 * migrate_check() - connect to @conninfo (NULL or "": the PG* variables) as
 * @app and compare its schema with this build's migrations: a daemon's
 * --check=connect.
 * @msg: gets the reason (an error or a warning), @cap its size
 * Return: 0 (connected, schema current), 1 (a warning: the schema is newer
 * than this build), -1 (cannot connect, or the schema is older: run
 * larsctl migrate).
 */
int migrate_check(const char *conninfo, const char *app, char *msg, size_t cap);
