// SPDX-License-Identifier: MIT
// Call statistics read back from PostgreSQL: what lars-reporter stored in
// host_status and host_status_history, as plain rows for larsctl (text)
// and lars-admin (JSON). Synchronous on a PGconn, like the rest of common/db.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* Room for host(inet) text: an IPv6 address with an embedded IPv4 one. */
#define STATUS_ADDR_MAX 46
/* The longest minute window status_history() takes (larsctl's limit). */
#define STATUS_HISTORY_MINUTES_MAX 525600

/* The minutes of history the latency of status_callers() rows covers: the
 * current one and those before it. */
#define STATUS_LAT_MINUTES 5

/*
 * Latency fields of the rows (issue 21): lat_count calls had a duration
 * (0: none, and the other two are 0), their mean and their 99th percentile
 * in microseconds, the latter estimated from the summed bucket counts
 * (lars_lat_quantile(), deploy/sql/006_report_acks.sql).
 */

/* The error rate 100 * err / (succ + err) in tenths of a percent, rounded
 * half away from zero as SQL's round(x, 1) does it (the columns larsctl
 * prints): 0..1000, or -1 when there were no calls. */
#define STATUS_ERR_TENTHS_NONE (-1)

/* status_time_text() layouts, and room for any (years of any int). */
#define STATUS_TIME_MAX 80
enum status_time_layout {
	STATUS_TIME_MINUTE, /* "YYYY-MM-DD HH:MM" */
	STATUS_TIME_ISO,    /* "YYYY-MM-DDTHH:MM:SSZ" (offset 0) */
};

/** Which routes: an id, or -1 for any; and which caller (NULL: any). */
typedef struct status_filter {
	int32_t modid;
	int32_t cmdid;
	const char *caller; /* an agent's address (status_callers, the histories) */
} status_filter_t;

/** The latest report of one caller about one host (a host_status row). */
typedef struct status_caller {
	int32_t modid;
	int32_t cmdid;
	char ip[STATUS_ADDR_MAX];
	int32_t port;
	char caller[STATUS_ADDR_MAX]; /* the reporting agent's machine */
	int64_t succ;
	int64_t err;
	int32_t err_tenths; /* the error rate, see STATUS_ERR_TENTHS_NONE */
	bool overload;
	int64_t age_s; /* since the agent's time of the report, at least 0 */
	/* Over the last STATUS_LAT_MINUTES minutes of its history. */
	int64_t lat_count;
	int64_t lat_mean_us;
	int64_t lat_p99_us;
} status_caller_t;

/** A host of a route, with what its callers reported recently. */
typedef struct status_host {
	int32_t modid;
	int32_t cmdid;
	char ip[STATUS_ADDR_MAX];
	int32_t port;
	int64_t added_at; /* Unix seconds */
	int32_t weight;   /* 1..1000 (traffic control) */
	bool drain;       /* drained: no new picks from our agents */
	/* Over the callers whose report is younger than the max age; with
	 * n_callers 0 the rest is 0 and false. */
	int64_t n_callers;
	int64_t succ;
	int64_t err;
	bool overload;      /* any of them */
	int64_t updated_at; /* the newest of them, Unix seconds (rounded down) */
	int64_t age_s;      /* whole seconds since then */
	/* Over its history minutes within the max age (all callers). */
	int64_t lat_count;
	int64_t lat_mean_us;
	int64_t lat_p99_us;
} status_host_t;

/** A route's health: how many of its hosts report, are overloaded, fail. */
typedef struct status_route {
	int32_t modid;
	int32_t cmdid;
	char *mod_description; /* "" when none */
	char *description;     /* "" when none */
	int64_t n_hosts;
	/* Of the hosts with a report younger than the max age: their number,
	 * those any caller says are overloaded, and those over the failing
	 * error rate (summed over their callers). */
	int64_t n_reporting;
	int64_t n_overloaded;
	int64_t n_failing;
	bool has_change;    /* the change log has a row of it: */
	int64_t version;    /* the route version of its last change */
	int64_t changed_at; /* and its time, Unix seconds */
} status_route_t;

/** The sums of one route's counts in one minute (host_status_history). */
typedef struct status_minute {
	int64_t minute;       /* Unix seconds, the start of the minute */
	int32_t utc_offset_s; /* of the session's time zone at @minute */
	int32_t modid;
	int32_t cmdid;
	int64_t succ;
	int64_t err;
	int32_t err_tenths; /* the error rate, see STATUS_ERR_TENTHS_NONE */
	int64_t lat_count;
	int64_t lat_mean_us;
	int64_t lat_p99_us;
} status_minute_t;

/** status_callers() - the latest status per host and caller of the routes @f names. */
int status_callers(PGconn *conn, const status_filter_t *f, status_caller_t **rowsp,
		   size_t *n_rowsp);

/** status_hosts() - the hosts of the routes @f names, with their recent status. */
int status_hosts(PGconn *conn, const status_filter_t *f, int32_t max_age_s,
		 status_host_t **rowsp, size_t *n_rowsp);

/** How the overview orders its routes (status_list_t.sort). */
enum status_sort {
	STATUS_SORT_HEALTH,      /* failing hosts, then overloaded ones, then the route */
	STATUS_SORT_ROUTE,       /* modid, cmdid */
	STATUS_SORT_HOSTS,       /* host count */
	STATUS_SORT_FAILING,     /* failing hosts, then overloaded ones */
	STATUS_SORT_OVERLOADED,  /* overloaded hosts, then failing ones */
	STATUS_SORT_CHANGED,     /* the route version of its last change (never: lowest) */
	STATUS_SORT_DESCRIPTION, /* the route's description */
};

/**
 * Which routes a page of the overview lists, in which order. A search is
 * one of @cmdid/@id/@net/@like at most (admin_svc/core/listq.h reads them
 * from the search box); ties are broken by modid and cmdid, ascending.
 */
typedef struct status_list {
	int32_t modid;      /* -1: any */
	int32_t cmdid;      /* -1: any */
	int64_t id;         /* >= 0: a route whose modid or cmdid is this */
	const char *net;    /* "a.b.c.d/n": a route with a host in it (NULL: any) */
	const char *like;   /* an ILIKE pattern: the module's or the route's description */
	bool unhealthy;     /* only routes with a failing or an overloaded host */
	enum status_sort sort;
	bool desc;          /* the sort keys descending (ties still ascending) */
	uint64_t offset;    /* the page: from this route, */
	uint64_t limit;     /* this many (at least 1) */
	int32_t max_age_s;  /* count the reports received in the last max_age_s seconds */
	double fail_pct;    /* a host fails when its error rate is over this (0..100) */
} status_list_t;

/** A page of the overview. */
typedef struct status_page {
	status_route_t *rows;
	size_t n_rows;
	bool more;           /* routes after this page */
	int64_t total;       /* routes the list holds, -1: not counted (the default order) */
	int64_t n_unhealthy; /* of those, with a failing or an overloaded host */
} status_page_t;

/** status_overview() - one page of routes with their health (see status.c). */
int status_overview(PGconn *conn, const status_list_t *l, status_page_t *pagep);
/** status_page_deinit() - free what status_overview() put in @page. */
void status_page_deinit(status_page_t *page);

/**
 * status_hosts_at() - every host at an address (or in a network, "a.b.c.d/n"),
 * in every route, with its recent status: status_hosts() rows, by modid,
 * cmdid, ip and port.
 */
int status_hosts_at(PGconn *conn, const char *net, int32_t max_age_s, status_host_t **rowsp,
		    size_t *n_rowsp);

/** status_history() - per-minute sums per route over the last @minutes. */
int status_history(PGconn *conn, const status_filter_t *f, int32_t minutes,
		   int64_t *firstp, status_minute_t **rowsp, size_t *n_rowsp);

/** The sums of one host's counts in one minute (all callers, or @f's). */
typedef struct status_host_minute {
	int64_t minute;
	int32_t utc_offset_s;
	int32_t modid;
	int32_t cmdid;
	char ip[STATUS_ADDR_MAX];
	int32_t port;
	int64_t succ;
	int64_t err;
	int32_t err_tenths;
	int64_t lat_count;
	int64_t lat_mean_us;
	int64_t lat_p99_us;
} status_host_minute_t;

/**
 * status_history_hosts() - per-minute sums per host over the last @minutes,
 * by minute and, within one, the highest error rate first; with @fail_pct
 * >= 0 only the hosts whose error rate that minute is above it.
 */
int status_history_hosts(PGconn *conn, const status_filter_t *f, int32_t minutes,
			 double fail_pct, status_host_minute_t **rowsp, size_t *n_rowsp);

/** status_time_text() - @unix_s shifted by @offset_s, as text in @layout. */
const char *status_time_text(int64_t unix_s, int32_t offset_s, enum status_time_layout layout,
			     char out[STATUS_TIME_MAX]);
