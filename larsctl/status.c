// SPDX-License-Identifier: MIT
// larsctl status [--history MINUTES]: the call statistics lars-reporter
// stored, read through common/db/status.c (the queries the console uses)
// and printed as fixed-width columns that scripts read.
#include "larsctl.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "output.h"
#include "route_write.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static const char usage_status[] =
	"Usage: larsctl [--db CONNINFO] status [MODID [CMDID]] [--caller IP]\n"
	"               [-o text|json|tsv]\n"
	"       larsctl [--db CONNINFO] status --history MINUTES [MODID [CMDID]]\n"
	"               [--by-host [--failing [--fail-pct P]]] [--caller IP]\n"
	"               [-o text|json|tsv]\n"
	"The latest status lars-reporter stored per host and caller: successes,\n"
	"errors, error rate, overload and the age of the report (of its last\n"
	"interval with calls: one without any keeps the counts before it); with\n"
	"--history, per-minute sums of successes and errors per route.\n"
	"  --by-host     per minute per host (MODID CMDID HOST), within a minute the\n"
	"                highest error rate first; a route's hosts add up to its\n"
	"                per-route line\n"
	"  --failing     with --by-host: only the hosts whose error rate in the minute\n"
	"                is above --fail-pct P (default 10, as the console's fail_pct)\n"
	"  --caller IP   only what the agent on IP reported\n"
	"When a row has call latency, every line ends with two more columns:\n"
	"MEAN_US and P99_US, the mean and the estimated 99th percentile of the\n"
	"calls' durations in microseconds (\"-\" for a row without any): per\n"
	"host and caller over the last " STR(STATUS_LAT_MINUTES) " minutes of history, per route\n"
	"and minute with --history.\n"
	"-o json: one array of objects, -o tsv: a header line and one line per row,\n"
	"with the columns modid, cmdid, ip, port, caller, succ, err, err_pct,\n"
	"overload, age_s, lat_mean_us, lat_p99_us (the latest status); minute,\n"
	"modid, cmdid, [ip, port,] succ, err, err_pct, lat_mean_us, lat_p99_us\n"
	"(--history [--by-host]; minute in UTC, 2026-12-03T10:00:00Z). err_pct and\n"
	"the latency are null (empty) without calls.\n"
	"Exit status: 0 done, 1 database failure, 2 bad input.\n";

static const out_col_t caller_cols[] = {
	{ "modid", 'n' }, { "cmdid", 'n' }, { "ip", 's' }, { "port", 'n' }, { "caller", 's' },
	{ "succ", 'n' }, { "err", 'n' }, { "err_pct", 'n' }, { "overload", 'b' },
	{ "age_s", 'n' }, { "lat_mean_us", 'n' }, { "lat_p99_us", 'n' },
};
static const out_col_t minute_cols[] = {
	{ "minute", 's' }, { "modid", 'n' }, { "cmdid", 'n' }, { "succ", 'n' }, { "err", 'n' },
	{ "err_pct", 'n' }, { "lat_mean_us", 'n' }, { "lat_p99_us", 'n' },
};
static const out_col_t host_minute_cols[] = {
	{ "minute", 's' }, { "modid", 'n' }, { "cmdid", 'n' }, { "ip", 's' }, { "port", 'n' },
	{ "succ", 'n' }, { "err", 'n' }, { "err_pct", 'n' }, { "lat_mean_us", 'n' },
	{ "lat_p99_us", 'n' },
};
#define NCOLS(c) ((int)(sizeof(c) / sizeof((c)[0])))

/* Numbers as text for out_row(): a ring of buffers, one per column. */
typedef struct vals {
	char buf[12][32];
	const char *v[12];
	int n;
} vals_t;

__attribute__((format(printf, 2, 3)))
static void val(vals_t *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->buf[x->n], sizeof(x->buf[0]), fmt, ap);
	va_end(ap);
	x->v[x->n] = x->buf[x->n];
	x->n++;
}

static void val_null(vals_t *x)
{
	x->v[x->n++] = NULL;
}

/* The shared tail of every row: err_pct and the latency (null without calls). */
static void val_rate(vals_t *x, int32_t tenths)
{
	if (tenths == STATUS_ERR_TENTHS_NONE)
		val_null(x);
	else
		val(x, "%d.%d", tenths / 10, tenths % 10);
}

static void val_lat(vals_t *x, int64_t count, int64_t mean, int64_t p99)
{
	if (count == 0) {
		val_null(x);
		val_null(x);
	} else {
		val(x, "%" PRId64, mean);
		val(x, "%" PRId64, p99);
	}
}

/* succ, err, err_pct and the latency: the tail of a per-minute row. */
static void val_sums(vals_t *x, int64_t succ, int64_t err, int32_t tenths, int64_t count,
		     int64_t mean, int64_t p99)
{
	val(x, "%" PRId64, succ);
	val(x, "%" PRId64, err);
	val_rate(x, tenths);
	val_lat(x, count, mean, p99);
}

static void val_minute(vals_t *x, int64_t minute)
{
	time_t t = (time_t)minute;
	struct tm tm;
	gmtime_r(&t, &tm);
	x->v[x->n] = x->buf[x->n];
	strftime(x->buf[x->n], sizeof(x->buf[0]), "%Y-%m-%dT%H:%M:%SZ", &tm);
	x->n++;
}

/* Latency columns: "%10s %10s" widths, after the existing ones. */
#define LAT_HEAD " %10s %10s"

/* A latency value in microseconds as text, or "-" when @count is 0. */
static const char *lat_text(int64_t count, int64_t us, char out[24])
{
	if (count == 0)
		snprintf(out, 24, "-");
	else
		snprintf(out, 24, "%" PRId64, us);
	return out;
}

/* The latency columns of a row, or "" (the lines stay as they were) when
 * no row has latency: " MEAN_US P99_US" right-aligned. */
static const char *lat_cols(bool show, int64_t count, int64_t mean, int64_t p99, char out[64])
{
	char m[24], p[24];
	if (!show)
		out[0] = '\0';
	else
		snprintf(out, 64, LAT_HEAD, lat_text(count, mean, m), lat_text(count, p99, p));
	return out;
}

/* An error rate in tenths of a percent as "12.3", or "-" without calls. */
static const char *pct_text(int32_t tenths, char out[16])
{
	if (tenths == STATUS_ERR_TENTHS_NONE)
		snprintf(out, 16, "-");
	else
		snprintf(out, 16, "%d.%d", tenths / 10, tenths % 10);
	return out;
}

static int print_callers(PGconn *conn, const status_filter_t *f, out_fmt_t fmt)
{
	status_caller_t *rows;
	size_t n;
	bool lat = false;
	char cols[64];
	if (status_callers(conn, f, &rows, &n))
		return EXIT_DB;
	if (fmt != OUT_TEXT) {
		out_t o;
		out_begin(&o, fmt, caller_cols, NCOLS(caller_cols));
		for (size_t i = 0; i < n; i++) {
			const status_caller_t *r = &rows[i];
			vals_t x = { .n = 0 };
			val(&x, "%d", r->modid);
			val(&x, "%d", r->cmdid);
			x.v[x.n++] = r->ip;
			val(&x, "%d", r->port);
			x.v[x.n++] = r->caller;
			val(&x, "%" PRId64, r->succ);
			val(&x, "%" PRId64, r->err);
			val_rate(&x, r->err_tenths);
			val(&x, "%s", r->overload ? "t" : "f");
			val(&x, "%" PRId64, r->age_s);
			val_lat(&x, r->lat_count, r->lat_mean_us, r->lat_p99_us);
			out_row(&o, x.v);
		}
		out_end(&o);
		free(rows);
		return EXIT_OK;
	}
	for (size_t i = 0; i < n; i++)
		lat = lat || rows[i].lat_count > 0;
	/* With the latency columns after it, AGE gets a width of its own. */
	printf("%-10s %-10s %-21s %-15s %10s %10s %6s %-8s %-*s", "MODID", "CMDID", "HOST",
	       "CALLER", "SUCC", "ERR", "ERR%", "OVERLOAD", lat ? 8 : 0, "AGE");
	if (lat)
		printf(LAT_HEAD, "MEAN_US", "P99_US");
	putchar('\n');
	for (size_t i = 0; i < n; i++) {
		const status_caller_t *r = &rows[i];
		char host[STATUS_ADDR_MAX + 8], pct[16], age[24];
		snprintf(host, sizeof(host), "%s:%d", r->ip, r->port);
		snprintf(age, sizeof(age), "%" PRId64 "s", r->age_s);
		printf("%-10d %-10d %-21s %-15s %10" PRId64 " %10" PRId64 " %6s %-8s %-*s%s\n",
		       r->modid, r->cmdid, host, r->caller, r->succ, r->err,
		       pct_text(r->err_tenths, pct), r->overload ? "yes" : "no", lat ? 8 : 0, age,
		       lat_cols(lat, r->lat_count, r->lat_mean_us, r->lat_p99_us, cols));
	}
	free(rows);
	return EXIT_OK;
}

static int print_history(PGconn *conn, const status_filter_t *f, int32_t minutes,
			 out_fmt_t fmt)
{
	status_minute_t *rows;
	size_t n;
	bool lat = false;
	char cols[64];
	if (status_history(conn, f, minutes, NULL, &rows, &n))
		return EXIT_DB;
	if (fmt != OUT_TEXT) {
		out_t o;
		out_begin(&o, fmt, minute_cols, NCOLS(minute_cols));
		for (size_t i = 0; i < n; i++) {
			const status_minute_t *r = &rows[i];
			vals_t x = { .n = 0 };
			val_minute(&x, r->minute);
			val(&x, "%d", r->modid);
			val(&x, "%d", r->cmdid);
			val_sums(&x, r->succ, r->err, r->err_tenths, r->lat_count, r->lat_mean_us,
				 r->lat_p99_us);
			out_row(&o, x.v);
		}
		out_end(&o);
		free(rows);
		return EXIT_OK;
	}
	for (size_t i = 0; i < n; i++)
		lat = lat || rows[i].lat_count > 0;
	printf("%-17s %-10s %-10s %12s %12s %6s", "MINUTE", "MODID", "CMDID", "SUCC", "ERR",
	       "ERR%");
	if (lat)
		printf(LAT_HEAD, "MEAN_US", "P99_US");
	putchar('\n');
	for (size_t i = 0; i < n; i++) {
		const status_minute_t *r = &rows[i];
		char when[STATUS_TIME_MAX], pct[16];
		printf("%-17s %-10d %-10d %12" PRId64 " %12" PRId64 " %6s%s\n",
		       status_time_text(r->minute, r->utc_offset_s, STATUS_TIME_MINUTE, when),
		       r->modid, r->cmdid, r->succ, r->err, pct_text(r->err_tenths, pct),
		       lat_cols(lat, r->lat_count, r->lat_mean_us, r->lat_p99_us, cols));
	}
	free(rows);
	return EXIT_OK;
}

static int print_history_hosts(PGconn *conn, const status_filter_t *f, int32_t minutes,
			       double fail_pct, out_fmt_t fmt)
{
	status_host_minute_t *rows;
	size_t n;
	bool lat = false;
	char cols[64];
	if (status_history_hosts(conn, f, minutes, fail_pct, &rows, &n))
		return EXIT_DB;
	if (fmt != OUT_TEXT) {
		out_t o;
		out_begin(&o, fmt, host_minute_cols, NCOLS(host_minute_cols));
		for (size_t i = 0; i < n; i++) {
			const status_host_minute_t *r = &rows[i];
			vals_t x = { .n = 0 };
			val_minute(&x, r->minute);
			val(&x, "%d", r->modid);
			val(&x, "%d", r->cmdid);
			x.v[x.n++] = r->ip;
			val(&x, "%d", r->port);
			val_sums(&x, r->succ, r->err, r->err_tenths, r->lat_count, r->lat_mean_us,
				 r->lat_p99_us);
			out_row(&o, x.v);
		}
		out_end(&o);
		free(rows);
		return EXIT_OK;
	}
	for (size_t i = 0; i < n; i++)
		lat = lat || rows[i].lat_count > 0;
	printf("%-17s %-10s %-10s %-21s %12s %12s %6s", "MINUTE", "MODID", "CMDID", "HOST",
	       "SUCC", "ERR", "ERR%");
	if (lat)
		printf(LAT_HEAD, "MEAN_US", "P99_US");
	putchar('\n');
	for (size_t i = 0; i < n; i++) {
		const status_host_minute_t *r = &rows[i];
		char when[STATUS_TIME_MAX], pct[16], host[STATUS_ADDR_MAX + 8];
		snprintf(host, sizeof(host), "%s:%d", r->ip, r->port);
		printf("%-17s %-10d %-10d %-21s %12" PRId64 " %12" PRId64 " %6s%s\n",
		       status_time_text(r->minute, r->utc_offset_s, STATUS_TIME_MINUTE, when),
		       r->modid, r->cmdid, host, r->succ, r->err, pct_text(r->err_tenths, pct),
		       lat_cols(lat, r->lat_count, r->lat_mean_us, r->lat_p99_us, cols));
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
	out_fmt_t fmt;
	if (larsctl_parse_filter(a, 1, "status", &f) || larsctl_output(a, "status", true, &fmt))
		return EXIT_USAGE;
	if (a->history && (route_parse_id(a->history, "MINUTES", &minutes, &why) || minutes < 1 ||
			   minutes > STATUS_HISTORY_MINUTES_MAX))
		return larsctl_usage_error("status", "--history takes MINUTES 1..525600");
	if ((a->by_host || a->failing || a->fail_pct) && !a->history)
		return larsctl_usage_error("status", "--by-host, --failing and --fail-pct go with "
					   "--history MINUTES");
	if ((a->failing || a->fail_pct) && !a->by_host)
		return larsctl_usage_error("status", "--failing and --fail-pct go with --by-host");
	if (a->fail_pct && !a->failing)
		return larsctl_usage_error("status", "--fail-pct goes with --failing");
	double fail_pct = -1;
	if (a->failing) {
		char *end;
		fail_pct = a->fail_pct ? strtod(a->fail_pct, &end) : 10.0;
		if (a->fail_pct && (!*a->fail_pct || *end || !(fail_pct >= 0 && fail_pct <= 100)))
			return larsctl_usage_error("status", "--fail-pct takes a percent 0..100");
	}
	unsigned char addr[16];
	if (a->caller && inet_pton(AF_INET, a->caller, addr) != 1 &&
	    inet_pton(AF_INET6, a->caller, addr) != 1)
		return larsctl_usage_error("status", "--caller takes an IP address, not '%s'",
					   a->caller);
	f.caller = a->caller;
	PGconn *conn = larsctl_connect(a->db);
	if (!conn)
		return EXIT_DB;
	int r = !a->history ? print_callers(conn, &f, fmt)
		: a->by_host ? print_history_hosts(conn, &f, minutes, fail_pct, fmt)
			     : print_history(conn, &f, minutes, fmt);
	if (r)
		fprintf(stderr, "larsctl: cannot read the statistics (has `larsctl migrate` been run?)\n");
	PQfinish(conn);
	return r;
}
