// SPDX-License-Identifier: MIT
// lars-dns's refresh decisions: when to read the database, what kind of
// read, when to retry, when to serve what came back.
//
// DESIGN: one database job at a time keeps the snapshot chain linear. A
// NOTIFY, a poll or a reload asked for while a job runs is remembered (once:
// any number of them coalesce into one follow-up job, a full one if any of
// them was) and submitted when the job is done. The first load has nothing
// to compare with and nothing to serve from: if it fails the service fails,
// or with wait_for_db it is retried after a capped exponential backoff.
// Later failures keep the current snapshot; a job that found its connection
// lost is resubmitted once at once (the database worker paces reconnects),
// after that the next poll tries again. No libuv, no libpq: events come in
// with now_ms, actions go out in refresh_action_t.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backoff.h"

/* The first load's retry delays with wait_for_db. */
#define REFRESH_RETRY_BASE_MS 500u
#define REFRESH_RETRY_MAX_MS 10000u

/** enum refresh_job_kind - which database read to submit. */
enum refresh_job_kind {
	REFRESH_JOB_NONE = 0,
	REFRESH_JOB_LOAD,    /* every route; there is no snapshot yet */
	REFRESH_JOB_CHANGES, /* incremental: the version, then the changed keys */
	REFRESH_JOB_RELOAD,  /* every route compared with the current snapshot,
			      * then prune the change log (housekeeping) */
};

/** enum refresh_status - how a database job ended. */
enum refresh_status {
	REFRESH_OK = 0,
	REFRESH_FAILED,   /* an error; the connection is fine */
	REFRESH_LOST,     /* the connection was lost or unreachable (-ENOTCONN) */
	REFRESH_CANCELED, /* the worker shut down first */
};

/* Action flags: carry them out in this order. */
enum {
	REFRESH_FAILURE = 1u << 0,      /* the job failed: count it */
	REFRESH_FAIL_SERVICE = 1u << 1, /* the first load failed, no wait_for_db */
	REFRESH_DB_DOWN = 1u << 2,      /* first failure after serving: log it once */
	REFRESH_DB_BACK = 1u << 3,      /* a success after failures */
	REFRESH_SERVE = 1u << 4,        /* swap in the job's snapshot (if it made one) */
	REFRESH_PUSH = 1u << 5,         /* with SERVE: push the changed keys */
	REFRESH_START = 1u << 6,        /* with SERVE, the first: start serving, arm
					 * the poll (and reload) timers */
	REFRESH_SUBMIT = 1u << 7,       /* submit ->job (after everything above) */
	REFRESH_RETRY = 1u << 8,        /* call refresh_retry() in ->delay_ms */
};

typedef struct refresh_action {
	unsigned flags;
	enum refresh_job_kind job; /* with REFRESH_SUBMIT */
	uint32_t delay_ms;         /* with REFRESH_RETRY */
	uint64_t took_ms;          /* with SERVE: since the job was submitted */
	uint32_t poll_ms;          /* with START: poll every */
	uint64_t reload_ms;        /* with START: full reload every (0: never) */
} refresh_action_t;

typedef struct refresh_cfg {
	uint32_t poll_interval_ms;   /* version check, the fallback for NOTIFY */
	uint64_t reload_interval_ms; /* full reload and compare; 0 = never */
	bool wait_for_db;            /* retry a failed first load */
	uint64_t seed;               /* the retry backoff's jitter */
} refresh_cfg_t;

/* All private: the state of server.c's refresh pipeline. */
typedef struct refresh {
	refresh_cfg_t cfg;
	backoff_t backoff;
	bool loaded;     /* a snapshot is served */
	bool running;    /* a job is in flight */
	bool again;      /* another refresh was asked for meanwhile */
	bool again_full; /* ...and one of them was full */
	bool closing;
	bool db_failing; /* the last refresh failed (after serving) */
	bool retried;    /* the one immediate retry after a lost connection is used */
	uint64_t started_ms;
} refresh_t;

void refresh_init(refresh_t *r, const refresh_cfg_t *cfg);

/** refresh_start() - the service starts: load every route. */
refresh_action_t refresh_start(refresh_t *r, uint64_t now_ms);
/** refresh_notify() - a NOTIFY arrived, or LISTEN (re)connected: check for changes. */
refresh_action_t refresh_notify(refresh_t *r, uint64_t now_ms);
/** refresh_poll() - the poll timer is due: check for changes. */
refresh_action_t refresh_poll(refresh_t *r, uint64_t now_ms);
/** refresh_reload() - a full reload is due or asked for. */
refresh_action_t refresh_reload(refresh_t *r, uint64_t now_ms);
/** refresh_retry() - the delay of a REFRESH_RETRY is over. */
refresh_action_t refresh_retry(refresh_t *r, uint64_t now_ms);
/** refresh_done() - the job in flight ended with @status. */
refresh_action_t refresh_done(refresh_t *r, enum refresh_status status, uint64_t now_ms);
/** refresh_close() - shutting down: every later event yields no action. */
void refresh_close(refresh_t *r);

/** refresh_running() - whether a job is in flight (its done is still to come). */
static inline bool refresh_running(const refresh_t *r)
{
	return r->running;
}
