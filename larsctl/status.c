// SPDX-License-Identifier: MIT
// larsctl status [--history MINUTES]: the call statistics lars-reporter
// stored, read through common/db/status.c (the queries the console uses)
// and printed as fixed-width columns that scripts read.
#include "larsctl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "route_write.h"

static const char usage_status[] =
	"Usage: larsctl [--db CONNINFO] status [MODID [CMDID]]\n"
	"       larsctl [--db CONNINFO] status --history MINUTES [MODID [CMDID]]\n"
	"The latest status lars-reporter stored per host and caller: successes,\n"
	"errors, error rate, overload and the age of the report; with --history,\n"
	"per-minute sums of successes and errors per route.\n";

/* An error rate in tenths of a percent as "12.3", or "-" without calls. */
static const char *pct_text(int32_t tenths, char out[16])
{
	if (tenths == STATUS_ERR_TENTHS_NONE)
		snprintf(out, 16, "-");
	else
		snprintf(out, 16, "%d.%d", tenths / 10, tenths % 10);
	return out;
}

static int print_callers(PGconn *conn, const status_filter_t *f)
{
	status_caller_t *rows;
	size_t n;
	if (status_callers(conn, f, &rows, &n))
		return EXIT_DB;
	printf("%-10s %-10s %-21s %-15s %10s %10s %6s %-8s %s\n", "MODID", "CMDID", "HOST",
	       "CALLER", "SUCC", "ERR", "ERR%", "OVERLOAD", "AGE");
	for (size_t i = 0; i < n; i++) {
		const status_caller_t *r = &rows[i];
		char host[STATUS_ADDR_MAX + 8], pct[16];
		snprintf(host, sizeof(host), "%s:%d", r->ip, r->port);
		printf("%-10d %-10d %-21s %-15s %10" PRId64 " %10" PRId64 " %6s %-8s %" PRId64 "s\n",
		       r->modid, r->cmdid, host, r->caller, r->succ, r->err,
		       pct_text(r->err_tenths, pct), r->overload ? "yes" : "no", r->age_s);
	}
	free(rows);
	return EXIT_OK;
}

static int print_history(PGconn *conn, const status_filter_t *f, int32_t minutes)
{
	status_minute_t *rows;
	size_t n;
	if (status_history(conn, f, minutes, NULL, &rows, &n))
		return EXIT_DB;
	printf("%-17s %-10s %-10s %12s %12s %6s\n", "MINUTE", "MODID", "CMDID", "SUCC", "ERR",
	       "ERR%");
	for (size_t i = 0; i < n; i++) {
		const status_minute_t *r = &rows[i];
		char when[STATUS_TIME_MAX], pct[16];
		printf("%-17s %-10d %-10d %12" PRId64 " %12" PRId64 " %6s\n",
		       status_time_text(r->minute, r->utc_offset_s, STATUS_TIME_MINUTE, when),
		       r->modid, r->cmdid, r->succ, r->err, pct_text(r->err_tenths, pct));
	}
	free(rows);
	return EXIT_OK;
}

int cmd_status(const args_t *a)
{
	status_filter_t f;
	int32_t minutes = 0;
	const char *why;

	if (a->help) {
		fputs(usage_status, stdout);
		return EXIT_OK;
	}
	if (larsctl_parse_filter(a, 1, "status", &f))
		return EXIT_USAGE;
	if (a->history && (route_parse_id(a->history, "MINUTES", &minutes, &why) || minutes < 1 ||
			   minutes > STATUS_HISTORY_MINUTES_MAX))
		return larsctl_usage_error("status", "--history takes MINUTES 1..525600");
	PGconn *conn = larsctl_connect(a->db);
	if (!conn)
		return EXIT_DB;
	int r = a->history ? print_history(conn, &f, minutes) : print_callers(conn, &f);
	if (r)
		fprintf(stderr, "larsctl: cannot read the statistics (has `larsctl migrate` been run?)\n");
	PQfinish(conn);
	return r;
}
