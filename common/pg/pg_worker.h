// SPDX-License-Identifier: MIT
// PostgreSQL worker threads: jobs run off the event loop, results return
// through uv_async. One PGconn per thread, reconnect with backoff.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

#include "pg_conn.h"

#include "metrics.h"

typedef struct pg_worker pg_worker_t;
typedef struct pg_job pg_job_t;

/**
 * pg_job_work_fn - runs on a worker thread with a connected @conn. Must use
 * parameterised SQL only (pg_exec) and never touch loop objects.
 * Return: 0, or a negative errno; -ENOTCONN (or a broken @conn) makes the
 * worker reconnect.
 */
typedef int (*pg_job_work_fn)(PGconn *conn, pg_job_t *job);
/**
 * pg_job_done_fn - runs on the loop thread when the job finished.
 * @status: what work returned (a failure on a connection found lost
 * afterwards becomes -ENOTCONN), -ENOTCONN if the database was unreachable,
 * -ECANCELED if the worker was shut down first.
 */
typedef void (*pg_job_done_fn)(pg_job_t *job, int status);

/**
 * struct pg_job - embed in your request; it must live until done runs.
 * @read_only: the job changes nothing, so it may run twice: one that fails
 * because its connection broke (a database restart leaves every open
 * connection stale) runs once more on a fresh connection before done is
 * called. Its work must leave the job as it found it when it fails.
 * Writes leave it false: a lost connection reports -ENOTCONN, honestly.
 * @idempotent: the job writes, but running it twice leaves what running it
 * once does (a route add of a host already there changes nothing): one that
 * fails because its connection broke or reached a read-only server (a
 * failover) runs once more on a fresh connection, as a read does.
 */
struct pg_job {
	pg_job_work_fn work;
	pg_job_done_fn done;
	bool read_only;
	bool idempotent;
	pg_job_t *next; /* private */
	int status;     /* private */
};

typedef struct pg_worker_opts {
	const char *name;
	const char *conninfo;     /* libpq conninfo or URI; "" = PG* variables */
	unsigned n_threads;
	unsigned connect_timeout_s;
	unsigned statement_timeout_ms;
	uint32_t backoff_base_ms;
	uint32_t backoff_max_ms;
	metrics_t *metrics;
} pg_worker_opts_t;

int pg_worker_start(uv_loop_t *loop, const pg_worker_opts_t *opts,
		    pg_worker_t **outp);
/**
 * pg_worker_submit() - queue @job; done() is always called, on the loop
 * (at once with -ECANCELED if the worker is closing).
 */
void pg_worker_submit(pg_worker_t *w, pg_job_t *job);
/** pg_worker_pending() - jobs queued or running. */
unsigned pg_worker_pending(const pg_worker_t *w);
/**
 * pg_worker_close() - cancel the queued jobs (done with -ECANCELED, at once),
 * send a cancel to the running ones and let them finish off the loop thread;
 * @w is freed once the threads are joined and its handle closed. Never
 * blocks the loop.
 */
void pg_worker_close(pg_worker_t *w);
