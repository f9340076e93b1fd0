// SPDX-License-Identifier: MIT
// larsctl -o json|tsv (issue 24.6): the rows a command prints as one JSON
// document (an array of objects, keys as the columns' names) or as
// tab-separated values under a header line, for scripts. The text format
// stays each command's own fixed-width columns.
#pragma once

#include <stdbool.h>

#include <libpq-fe.h>

#include "jbuf.h"
#include "larsctl.h"

typedef enum out_fmt { OUT_TEXT, OUT_JSON, OUT_TSV } out_fmt_t;

/*
 * A column: its name (JSON key, TSV header) and kind: 's' a string, 'n' a
 * number written as it is, 'b' a boolean ("t", "true", "yes", "1" are true).
 * A NULL value is null in JSON and empty in TSV.
 */
typedef struct out_col {
	const char *name;
	char kind;
} out_col_t;

/** struct out - one table being printed; private. */
typedef struct out {
	out_fmt_t fmt;
	const out_col_t *cols;
	int ncols;
	long rows;
	bool nested; /* JSON: part of a larger document, no newline after ']' */
} out_t;

/**
 * larsctl_output() - the format -o / --output names for @cmd ("text" when
 * absent); @tsv_ok: whether @cmd has a tsv form.
 * Return: 0, or EXIT_USAGE after larsctl_usage_error().
 */
int larsctl_output(const args_t *a, const char *cmd, bool tsv_ok, out_fmt_t *fmtp);

/** out_begin() - start a table in @fmt (JSON or TSV) of @ncols @cols on stdout. */
void out_begin(out_t *o, out_fmt_t fmt, const out_col_t *cols, int ncols);
/** out_row() - one row: @vals[i] for column i, NULL for none. */
void out_row(out_t *o, const char *const *vals);
/** out_row_pg() - row @row of @res, its columns in the order of the table's. */
void out_row_pg(out_t *o, const PGresult *res, int row);
/** out_end() - end the table (JSON: "]", and a newline unless nested). */
void out_end(out_t *o);

/**
 * route_hosts_out() - hosts as the table {modid, cmdid, ip, port, weight,
 * drain} (route list, route export; routes.c); @nested: part of a larger
 * JSON document.
 */
void route_hosts_out(out_fmt_t fmt, bool nested, const status_host_t *rows, size_t n);

/** out_pgresult() - every row of @res as one table of @ncols @cols in @fmt. */
void out_pgresult(out_fmt_t fmt, const out_col_t *cols, int ncols, const PGresult *res);
