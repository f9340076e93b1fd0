// SPDX-License-Identifier: MIT
// PostgreSQL worker threads.
//
// DESIGN: the loop pushes jobs on a mutex-protected queue; each thread owns
// one PGconn, opened in that thread, and its own reconnect backoff. A thread
// that finds its connection gone tries to reconnect, at most once per backoff
// delay; in between, jobs fail fast with -ENOTCONN so callers keep serving
// from memory and decide themselves what to retry. Finished jobs go to a
// second queue drained by a uv_async on the loop (async sends coalesce).
//
// Shutdown never blocks the loop: queued jobs are cancelled at once, running
// ones get a PQcancel, and a joiner thread waits for the workers before the
// async handle is closed. TCP keepalives and tcp_user_timeout bound how long
// a query can hang on a dead network.
#include "pg_worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "log.h"
#include "pg_conn.h"
#include "xalloc.h"

#define PG_MAX_THREADS 64

/* One worker thread's own state: its connection and its reconnect pacing. */
typedef struct pg_thread {
	pthread_t tid;
	struct pg_worker *w;
	PGconn *conn;
	PGcancel *cancel; /* of the running job's connection; under w->lock */
	bool up;          /* counted in the connections gauge */
	backoff_t backoff;
	uint64_t next_try_ms;
	bool was_connected; /* the last run had a connection to lose */
} pg_thread_t;

struct pg_worker {
	uv_async_t async;
	uv_loop_t *loop;
	pg_worker_opts_t opts;
	char name[32];
	char *conninfo;
	char statement_timeout[16];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pg_job_t *todo, **todo_tail;
	pg_job_t *done, **done_tail;
	bool stopping;   /* no new jobs run */
	bool joined;     /* every worker thread has exited (joiner says so) */
	bool closing;    /* the async handle is being closed */
	bool down_logged; /* the outage was logged; log the recovery */
	unsigned n_threads;
	pg_thread_t threads[PG_MAX_THREADS];
	pthread_t joiner;
	bool have_joiner;
	_Atomic unsigned n_pending;
	struct {
		metrics_counter_t *jobs, *failed, *reconnects, *up;
		metrics_histogram_t *seconds; /* a job's work on its thread */
	} m;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Worker thread: a connection, or NULL if the database is unreachable now. */
static PGconn *pg_connect(pg_worker_t *w, pg_thread_t *t)
{
	if (t->conn && PQstatus(t->conn) == CONNECTION_OK)
		return t->conn;
	if (t->conn) {
		PQfinish(t->conn);
		t->conn = NULL;
	}
	/* Within the backoff delay, fail fast: callers serve from memory. */
	if (mono_ms() < t->next_try_ms)
		return NULL;

	PGconn *conn = pg_open(w->conninfo, w->name, w->opts.connect_timeout_s);
	bool ok = conn && PQstatus(conn) == CONNECTION_OK;
	if (ok) {
		/* A bound on every statement, whatever the conninfo's options. */
		const char *params[1] = { w->statement_timeout };
		PGresult *res = pg_exec(conn, "SELECT set_config('statement_timeout', $1, false)",
					1, params, PGRES_TUPLES_OK);
		ok = res != NULL;
		PQclear(res);
	}

	/* Log state changes once for all threads, not every try. */
	pthread_mutex_lock(&w->lock);
	if (ok && w->down_logged) {
		log_info("%s: database reachable again", w->name);
		w->down_logged = false;
	} else if (!ok && !w->down_logged) {
		const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
		log_warn("%s: cannot connect to PostgreSQL: %.*s (retrying with backoff)",
			 w->name, (int)strcspn(msg, "\n"), msg);
		w->down_logged = true;
	}
	pthread_mutex_unlock(&w->lock);
	if (!ok) {
		PQfinish(conn);
		t->next_try_ms = mono_ms() + backoff_next(&t->backoff);
		return NULL;
	}
	backoff_reset(&t->backoff);
	t->next_try_ms = 0;
	metrics_inc(w->m.reconnects);
	t->conn = conn;
	return conn;
}

static void pg_thread_set_up(pg_worker_t *w, pg_thread_t *t, bool up)
{
	if (up == t->up)
		return;
	if (up)
		metrics_inc(w->m.up);
	else
		metrics_sub(w->m.up, 1);
	t->up = up;
}

/* Hand a finished job to the loop. */
static void pg_worker_finish(pg_worker_t *w, pg_job_t *job, int status)
{
	job->status = status;
	pthread_mutex_lock(&w->lock);
	job->next = NULL;
	*w->done_tail = job;
	w->done_tail = &job->next;
	pthread_mutex_unlock(&w->lock);
	/* Fails only on a handle that is not an async one. */
	(void)uv_async_send(&w->async);
}

/* Runs @job once on this thread's connection. Return: what work returned,
 * or -ENOTCONN when there was no connection or it broke during the job
 * (its failure is then the connection's). */
static int pg_thread_run(pg_worker_t *w, pg_thread_t *t, pg_job_t *job, bool retry)
{
	PGconn *c = pg_connect(w, t);
	pg_thread_set_up(w, t, c != NULL);
	t->was_connected = c != NULL;
	if (!c)
		return -ENOTCONN;
	/* Shutdown may cancel the running statement. */
	PGcancel *cancel = PQgetCancel(c);
	pthread_mutex_lock(&w->lock);
	t->cancel = cancel;
	/* A retry after the shutdown began would miss its cancel. */
	bool cancelled = retry && w->stopping;
	pthread_mutex_unlock(&w->lock);
	pg_conn_lost_clear();
	uint64_t t0 = uv_hrtime();
	int status = cancelled ? -ECANCELED : job->work(c, job);
	metrics_observe(w->m.seconds, (double)(uv_hrtime() - t0) / 1e9);
	pthread_mutex_lock(&w->lock);
	cancel = t->cancel;
	t->cancel = NULL;
	pthread_mutex_unlock(&w->lock);
	PQfreeCancel(cancel);
	if (status == -ENOTCONN || PQstatus(c) != CONNECTION_OK || (status && pg_conn_lost())) {
		log_warn("%s: lost the PostgreSQL connection", w->name);
		pg_thread_set_up(w, t, false);
		PQfinish(c);
		t->conn = NULL;
		/* Work that finished before the loss stands. */
		if (status)
			status = -ENOTCONN;
	}
	return status;
}

static void *pg_thread_main(void *arg)
{
	pg_thread_t *t = arg;
	pg_worker_t *w = t->w;

	for (;;) {
		pthread_mutex_lock(&w->lock);
		while (!w->todo && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->stopping) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		pg_job_t *job = w->todo;
		w->todo = job->next;
		if (!w->todo)
			w->todo_tail = &w->todo;
		pthread_mutex_unlock(&w->lock);

		int status = pg_thread_run(w, t, job, false);
		/* A read (or a write that may run twice) that failed on a
		 * connection found broken (a restart of the server leaves each
		 * thread's connection stale until used; a failover ends it)
		 * runs once more on a fresh one. */
		if (status == -ENOTCONN && (job->read_only || job->idempotent) && t->was_connected) {
			log_info("%s: retrying a %s on a new connection", w->name,
				 job->read_only ? "read" : "write");
			status = pg_thread_run(w, t, job, true);
		}
		if (status)
			metrics_inc(w->m.failed);
		metrics_inc(w->m.jobs);
		pg_worker_finish(w, job, status);
	}
	pg_thread_set_up(w, t, false);
	PQfinish(t->conn);
	t->conn = NULL;
	return NULL;
}

static void pg_worker_free(pg_worker_t *w)
{
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w->conninfo);
	free(w);
}

static void pg_worker_on_closed(uv_handle_t *h)
{
	pg_worker_free(container_of((uv_async_t *)h, pg_worker_t, async));
}

static void pg_worker_on_async(uv_async_t *a)
{
	pg_worker_t *w = container_of(a, pg_worker_t, async);

	/* Sends coalesce: drain everything that finished. */
	pthread_mutex_lock(&w->lock);
	pg_job_t *list = w->done;
	w->done = NULL;
	w->done_tail = &w->done;
	bool joined = w->joined;
	pthread_mutex_unlock(&w->lock);
	while (list) {
		pg_job_t *job = list;
		list = job->next;
		w->n_pending--;
		job->done(job, job->status);
	}
	/* The joiner's send comes after every worker's last one. */
	if (joined && !w->closing) {
		w->closing = true;
		if (w->have_joiner)
			pthread_join(w->joiner, NULL);
		/* Jobs a done callback submitted just now were cancelled inline. */
		uv_close((uv_handle_t *)&w->async, pg_worker_on_closed);
	}
}

/* Waits for the workers off the loop thread, cancelling what still runs. */
static void *pg_joiner_main(void *arg)
{
	pg_worker_t *w = arg;

	pthread_mutex_lock(&w->lock);
	PGcancel *cancels[PG_MAX_THREADS];
	unsigned n = 0;
	for (unsigned i = 0; i < w->n_threads; i++) {
		if (w->threads[i].cancel) {
			cancels[n++] = w->threads[i].cancel;
			w->threads[i].cancel = NULL; /* ours to free now */
		}
	}
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < n; i++) {
		char err[256];
		if (!PQcancel(cancels[i], err, sizeof(err)))
			log_debug("%s: cancel at shutdown: %s", w->name, err);
		PQfreeCancel(cancels[i]);
	}
	for (unsigned i = 0; i < w->n_threads; i++)
		pthread_join(w->threads[i].tid, NULL);
	pthread_mutex_lock(&w->lock);
	w->joined = true;
	pthread_mutex_unlock(&w->lock);
	(void)uv_async_send(&w->async); /* as in pg_worker_finish() */
	return NULL;
}

/**
 * pg_worker_start() - start @opts->n_threads database threads.
 * @loop: where the jobs' done callbacks run.
 * @opts: copied; defaults for the zero fields.
 * @outp: gets the worker, only on success.
 *
 * Return: 0, or a negative errno (logged). A worker that started some
 * threads before failing shuts them down and frees itself off the loop.
 */
int pg_worker_start(uv_loop_t *loop, const pg_worker_opts_t *opts,
		    pg_worker_t **outp)
{
	pg_worker_t *w = xcalloc(1, sizeof(*w));
	w->loop = loop;
	w->opts = *opts;
	snprintf(w->name, sizeof(w->name), "%s", opts->name ? opts->name : "pg");
	w->conninfo = xstrdup(opts->conninfo ? opts->conninfo : "");
	if (!w->opts.n_threads)
		w->opts.n_threads = 1;
	if (w->opts.n_threads > PG_MAX_THREADS)
		w->opts.n_threads = PG_MAX_THREADS;
	if (!w->opts.connect_timeout_s)
		w->opts.connect_timeout_s = 5;
	if (!w->opts.statement_timeout_ms)
		w->opts.statement_timeout_ms = 30000;
	if (!w->opts.backoff_base_ms)
		w->opts.backoff_base_ms = 200;
	if (!w->opts.backoff_max_ms)
		w->opts.backoff_max_ms = 10000;
	snprintf(w->statement_timeout, sizeof(w->statement_timeout), "%u",
		 w->opts.statement_timeout_ms);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->todo_tail = &w->todo;
	w->done_tail = &w->done;

	char name[160];
	snprintf(name, sizeof(name), "lars_db_jobs_total{worker=\"%s\"}", w->name);
	w->m.jobs = metrics_counter(opts->metrics, name, "Database jobs finished");
	snprintf(name, sizeof(name), "lars_db_job_failures_total{worker=\"%s\"}", w->name);
	w->m.failed = metrics_counter(opts->metrics, name, "Database jobs that failed");
	snprintf(name, sizeof(name), "lars_db_connects_total{worker=\"%s\"}", w->name);
	w->m.reconnects = metrics_counter(opts->metrics, name, "PostgreSQL connections opened");
	snprintf(name, sizeof(name), "lars_db_connections{worker=\"%s\"}", w->name);
	w->m.up = metrics_level(opts->metrics, name, "PostgreSQL connections up");
	static const double job_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					     0.25, 0.5, 1, 2.5, 5, 10, 30 };
	snprintf(name, sizeof(name), "lars_db_job_seconds{worker=\"%s\"}", w->name);
	w->m.seconds = metrics_histogram(opts->metrics, name,
		"A database job's work on its worker thread (its queueing aside)",
		job_bounds, sizeof(job_bounds) / sizeof(job_bounds[0]));

	int r = uv_async_init(loop, &w->async, pg_worker_on_async);
	if (r) {
		log_error("%s: cannot create the async handle: %s", w->name, uv_err_name(r));
		pg_worker_free(w);
		return r;
	}
	for (unsigned i = 0; i < w->opts.n_threads; i++) {
		pg_thread_t *t = &w->threads[i];
		t->w = w;
		backoff_init(&t->backoff, w->opts.backoff_base_ms, w->opts.backoff_max_ms,
			     uv_hrtime() ^ ((uint64_t)i << 32) ^ (uintptr_t)w);
		r = pthread_create(&t->tid, NULL, pg_thread_main, t);
		if (r) {
			log_error("%s: cannot start worker thread: %s", w->name, strerror(r));
			pg_worker_close(w);
			return -r;
		}
		w->n_threads++;
	}
	*outp = w;
	return 0;
}

void pg_worker_submit(pg_worker_t *w, pg_job_t *job)
{
	job->next = NULL;
	job->status = 0;
	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		job->done(job, -ECANCELED);
		return;
	}
	w->n_pending++;
	*w->todo_tail = job;
	w->todo_tail = &job->next;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

unsigned pg_worker_pending(const pg_worker_t *w)
{
	return w->n_pending;
}

void pg_worker_close(pg_worker_t *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		return;
	}
	w->stopping = true;
	pg_job_t *cancelled = w->todo;
	w->todo = NULL;
	w->todo_tail = &w->todo;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);

	while (cancelled) {
		pg_job_t *job = cancelled;
		cancelled = job->next;
		w->n_pending--;
		job->done(job, -ECANCELED);
	}
	int r = pthread_create(&w->joiner, NULL, pg_joiner_main, w);
	if (r == 0) {
		w->have_joiner = true;
		return;
	}
	/* No thread for the joiner: wait here, it is the only way left. */
	log_warn("%s: cannot start the joiner thread: %s", w->name, strerror(r));
	pg_joiner_main(w);
}
