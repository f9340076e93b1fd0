// SPDX-License-Identifier: MIT
// lars-reporter: receiving ReportStatusRequest and storing it in batches.
//
// DESIGN: the loop folds every result into the pending map (coalesced by
// key) and never waits for the database. Batches leave the map whole: when it
// holds batch_size keys or every flush_interval_ms, at most db_thread_cnt at
// a time, each one transaction on a DB worker. A batch the database refuses
// is folded back into the map and retried with backoff, so nothing is lost
// while PostgreSQL is slow or down; memory grows with distinct keys only,
// and above max_pending_keys the agents' connections stop being read (they
// buffer on their side) until it drains.
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "dispatch.h"
#include "log.h"
#include "msg.h"
#include "pending.h"
#include "pg_worker.h"
#include "store.h"
#include "tcp_server.h"
#include "xalloc.h"

#define PRUNE_INTERVAL_MS (3600 * 1000)
#define BEHIND_LOG_MS 10000

typedef struct batch_job {
	pg_job_t base;
	rep_t *r;
	report_entry_t *v;
	size_t n;
	uint64_t n_results;
	size_t rows; /* history rows written, set by the worker */
} batch_job_t;

typedef struct prune_job {
	pg_job_t base;
	rep_t *r;
	long long deleted;
} prune_job_t;

struct rep {
	uv_loop_t *loop;
	service_t *svc;
	rep_cfg_t cfg;
	metrics_t *m;
	dispatch_t dispatch;
	tcp_server_t *srv;
	pg_worker_t *db;
	pending_t pending;
	uv_timer_t flush_timer;
	uv_timer_t prune_timer;
	uv_timer_t shutdown_timer;
	unsigned n_timers;
	unsigned in_flight; /* DB jobs not yet done */
	backoff_t backoff;
	uint64_t retry_at_ms; /* after a failure, no batch before this */
	uint64_t last_behind_log_ms;
	bool failing;
	bool closing;
	bool finished; /* shutdown flush over, worker closing */
	struct {
		metrics_counter_t *reports, *results, *stored, *rows, *batches,
			*batch_failures, *pruned, *paused;
	} mt;
};

static void rep_flush(rep_t *r, bool force);
static void rep_maybe_free(rep_t *r);
static void rep_finish(rep_t *r);

/* ---- receiving ---- */

static int on_report(void *peer, void *user, int32_t msgid, const uint8_t *body,
		     size_t len)
{
	rep_t *r = user;
	tcp_conn_t *c = peer;
	lars_ReportStatusRequest req = lars_ReportStatusRequest_init_zero;
	msg_vec_t vec;
	const char *why;

	msg_results_init(&vec, (size_t)r->cfg.max_results);
	msg_vec_bind(&vec, &req.results);
	int rc = msg_decode(lars_ReportStatusRequest_fields, &req, body, len, &why);
	if (rc) {
		log_debug("reporter: bad ReportStatusRequest from %s: %s%s",
			  tcp_conn_peer(c), why,
			  vec.error == MSG_E_TOO_MANY ? " (too many results)" : "");
		int err = vec.error ? vec.error : rc;
		msg_vec_deinit(&vec);
		return err;
	}
	uint64_t now = uv_now(r->loop);
	/* No time from the agent: ours, so the history has a minute to use. */
	uint32_t ts = req.ts ? req.ts : (uint32_t)time(NULL);
	const lars_HostCallResult *res = vec.v;
	for (size_t i = 0; i < vec.n; i++) {
		report_key_t key = { req.modid, req.cmdid, res[i].ip, res[i].port, req.caller };
		pending_add(&r->pending, &key, res[i].succ, res[i].err, res[i].overload,
			    ts, now);
	}
	metrics_inc(r->mt.reports);
	metrics_add(r->mt.results, vec.n);
	msg_vec_deinit(&vec);

	if (pending_keys(&r->pending) >= (size_t)r->cfg.batch_size)
		rep_flush(r, false);
	if (pending_keys(&r->pending) >= (size_t)r->cfg.max_pending_keys &&
	    !tcp_server_paused(r->srv)) {
		log_warn("reporter: %zu keys pending (max_pending_keys): not reading "
			 "from agents until the database catches up",
			 pending_keys(&r->pending));
		metrics_inc(r->mt.paused);
		tcp_server_pause(r->srv, true);
	}
	return 0;
}

/* ---- storing ---- */

static int batch_work(PGconn *conn, pg_job_t *j)
{
	batch_job_t *b = container_of(j, batch_job_t, base);
	return report_store_batch(conn, b->v, b->n, &b->rows);
}

static void log_behind(rep_t *r, const char *what)
{
	uint64_t now = uv_now(r->loop);
	uint64_t oldest = pending_oldest_ms(&r->pending);
	log_warn("reporter: %s; %zu keys (%llu results) pending, oldest %.1f s, %u batches in flight",
		 what, pending_keys(&r->pending),
		 (unsigned long long)r->pending.n_results,
		 oldest ? (double)(now - oldest) / 1000 : 0.0, r->in_flight);
	r->last_behind_log_ms = now;
}

static void batch_done(pg_job_t *j, int status)
{
	batch_job_t *b = container_of(j, batch_job_t, base);
	rep_t *r = b->r;

	r->in_flight--;
	if (status == 0) {
		metrics_inc(r->mt.batches);
		metrics_add(r->mt.stored, b->n_results);
		metrics_add(r->mt.rows, b->rows);
		backoff_reset(&r->backoff);
		r->retry_at_ms = 0;
		if (r->failing) {
			log_info("reporter: database writes work again");
			r->failing = false;
		}
	} else {
		/* Nothing of it was written: fold it back, try again later. */
		for (size_t i = 0; i < b->n; i++)
			pending_merge(&r->pending, &b->v[i]);
		r->pending.n_results += b->n_results;
		metrics_inc(r->mt.batch_failures);
		r->retry_at_ms = uv_now(r->loop) + backoff_next(&r->backoff);
		if (!r->failing)
			log_behind(r, status == -ECANCELED ? "batch cancelled"
							   : "cannot store a batch, retrying with backoff");
		else if (uv_now(r->loop) - r->last_behind_log_ms >= BEHIND_LOG_MS)
			log_behind(r, "still behind");
		r->failing = status != -ECANCELED;
	}
	free(b->v);
	free(b);
	if (r->srv && tcp_server_paused(r->srv) &&
	    pending_keys(&r->pending) < (size_t)r->cfg.max_pending_keys * 9 / 10)
		tcp_server_pause(r->srv, false);
	if (r->closing) {
		if (!r->finished && pending_keys(&r->pending) == 0 && r->in_flight == 0)
			rep_finish(r);
		else if (!r->finished)
			rep_flush(r, true);
		rep_maybe_free(r);
		return;
	}
	if (pending_keys(&r->pending) >= (size_t)r->cfg.batch_size)
		rep_flush(r, false);
}

static void rep_flush(rep_t *r, bool force)
{
	if (pending_keys(&r->pending) == 0 || r->finished)
		return;
	if (!force && r->in_flight >= (unsigned)r->cfg.db_thread_cnt)
		return;
	if (uv_now(r->loop) < r->retry_at_ms)
		return;
	batch_job_t *b = xcalloc(1, sizeof(*b));
	b->base.work = batch_work;
	b->base.done = batch_done;
	b->r = r;
	b->v = pending_take(&r->pending, &b->n, &b->n_results);
	r->in_flight++;
	pg_worker_submit(r->db, &b->base);
}

static void on_flush_timer(uv_timer_t *t)
{
	rep_t *r = t->data;
	rep_flush(r, r->closing);
	if (r->failing && uv_now(r->loop) - r->last_behind_log_ms >= BEHIND_LOG_MS)
		log_behind(r, "still behind");
}

static int prune_work(PGconn *conn, pg_job_t *j)
{
	prune_job_t *p = container_of(j, prune_job_t, base);
	return report_store_prune(conn, p->r->cfg.history_days, &p->deleted);
}

static void prune_done(pg_job_t *j, int status)
{
	prune_job_t *p = container_of(j, prune_job_t, base);
	rep_t *r = p->r;
	r->in_flight--;
	if (status == 0 && p->deleted > 0) {
		metrics_add(r->mt.pruned, (uint64_t)p->deleted);
		log_info("reporter: removed %lld history rows older than %d days",
			 p->deleted, r->cfg.history_days);
	}
	free(p);
	rep_maybe_free(r);
}

static void on_prune_timer(uv_timer_t *t)
{
	rep_t *r = t->data;
	if (r->closing)
		return;
	prune_job_t *p = xcalloc(1, sizeof(*p));
	p->base.work = prune_work;
	p->base.done = prune_done;
	p->r = r;
	r->in_flight++;
	pg_worker_submit(r->db, &p->base);
}

/* ---- metrics ---- */

static double gauge_pending_keys(void *arg)
{
	return (double)pending_keys(&((rep_t *)arg)->pending);
}

static double gauge_oldest(void *arg)
{
	rep_t *r = arg;
	uint64_t oldest = pending_oldest_ms(&r->pending);
	return oldest ? (double)(uv_now(r->loop) - oldest) / 1000 : 0;
}

static void rep_metrics(rep_t *r)
{
	metrics_t *m = r->m;
	r->mt.reports = metrics_counter(m, "lars_reporter_reports_total", "ReportStatusRequests received");
	r->mt.results = metrics_counter(m, "lars_reporter_results_total", "Host call results received");
	r->mt.stored = metrics_counter(m, "lars_reporter_results_stored_total", "Host call results written to PostgreSQL");
	r->mt.rows = metrics_counter(m, "lars_reporter_rows_stored_total", "History rows (key, minute) merged into PostgreSQL; fewer than results when keys repeat");
	r->mt.batches = metrics_counter(m, "lars_reporter_batches_total", "Batches committed");
	r->mt.batch_failures = metrics_counter(m, "lars_reporter_batch_failures_total", "Batches refused and folded back for a retry");
	r->mt.pruned = metrics_counter(m, "lars_reporter_history_pruned_total", "History rows removed by retention");
	r->mt.paused = metrics_counter(m, "lars_reporter_backpressure_total", "Times reading from agents was paused");
	metrics_gauge(m, "lars_reporter_pending_keys", "Keys waiting for the database", gauge_pending_keys, r);
	metrics_gauge(m, "lars_reporter_oldest_pending_seconds", "Age of the oldest result not yet stored", gauge_oldest, r);
}

/* ---- lifetime ---- */

int rep_new(uv_loop_t *loop, service_t *svc, const rep_cfg_t *cfg, metrics_t *m,
	    void (*on_ready)(void *user, int port), void *user, rep_t **outp)
{
	rep_t *r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->svc = svc;
	r->cfg = *cfg;
	r->m = m;
	pending_init(&r->pending);
	backoff_init(&r->backoff, 200, 5000, uv_hrtime());
	rep_metrics(r);
	dispatch_init(&r->dispatch);
	dispatch_on(&r->dispatch, LARS_ID_REPORT_STATUS_REQ, on_report, r);
	uv_timer_init(loop, &r->flush_timer);
	uv_timer_init(loop, &r->prune_timer);
	uv_timer_init(loop, &r->shutdown_timer);
	r->flush_timer.data = r->prune_timer.data = r->shutdown_timer.data = r;
	r->n_timers = 3;

	pg_worker_opts_t wo = { .name = "reporter-db", .conninfo = cfg->conninfo,
				.n_threads = (unsigned)cfg->db_thread_cnt, .metrics = m };
	int rc = pg_worker_start(loop, &wo, &r->db);
	if (rc == 0) {
		tcp_server_opts_t o = {
			.name = "reporter", .ip = cfg->ip, .port = cfg->port,
			.reuse_port = cfg->reuse_port,
			.max_conns = (unsigned)cfg->max_conns, .max_frame = (uint32_t)cfg->max_frame,
			.dispatch = &r->dispatch, .user = r, .metrics = m,
		};
		rc = tcp_server_start(loop, &o, &r->srv);
	}
	if (rc) {
		r->srv = NULL;
		*outp = r;
		return rc; /* the caller fails the service; rep_close cleans up */
	}
	uv_timer_start(&r->flush_timer, on_flush_timer, (uint64_t)cfg->flush_interval_ms,
		       (uint64_t)cfg->flush_interval_ms);
	/* Retention at start, then hourly. */
	uv_timer_start(&r->prune_timer, on_prune_timer, 0, PRUNE_INTERVAL_MS);
	on_ready(user, tcp_server_port(r->srv));
	*outp = r;
	return 0;
}

static void rep_on_timer_closed(uv_handle_t *h)
{
	rep_t *r = h->data;
	r->n_timers--;
	rep_maybe_free(r);
}

/* Freed once the timers are closed and no DB job can call back. */
static void rep_maybe_free(rep_t *r)
{
	if (!r->finished || r->n_timers || r->in_flight)
		return;
	pending_deinit(&r->pending);
	free(r);
}

/* The shutdown flush is over (done or timed out): report and close. */
static void rep_finish(rep_t *r)
{
	if (r->finished)
		return;
	if (pending_keys(&r->pending) || r->in_flight)
		log_error("reporter: shutting down with %zu keys (%llu results) not "
			  "stored and %u batches unfinished",
			  pending_keys(&r->pending), (unsigned long long)r->pending.n_results,
			  r->in_flight);
	else
		log_info("reporter: everything received was stored");
	r->finished = true;
	uv_close((uv_handle_t *)&r->flush_timer, rep_on_timer_closed);
	uv_close((uv_handle_t *)&r->prune_timer, rep_on_timer_closed);
	uv_close((uv_handle_t *)&r->shutdown_timer, rep_on_timer_closed);
	/* Queued batches come back -ECANCELED (folded in, then dropped with us). */
	pg_worker_close(r->db);
	r->db = NULL;
}

static void on_shutdown_timeout(uv_timer_t *t)
{
	rep_finish(t->data);
}

void rep_close(rep_t *r)
{
	if (!r || r->closing)
		return;
	r->closing = true;
	tcp_server_close(r->srv); /* no new results */
	r->srv = NULL;
	if (!r->db) {
		rep_finish(r);
		return;
	}
	if (pending_keys(&r->pending) == 0 && r->in_flight == 0) {
		rep_finish(r);
		return;
	}
	log_info("reporter: storing %zu pending keys before exit (up to %d s)",
		 pending_keys(&r->pending), r->cfg.shutdown_timeout_s);
	r->retry_at_ms = 0;
	rep_flush(r, true);
	uv_timer_start(&r->shutdown_timer, on_shutdown_timeout,
		       (uint64_t)r->cfg.shutdown_timeout_s * 1000, 0);
}
