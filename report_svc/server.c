// SPDX-License-Identifier: MIT
// lars-reporter: receiving ReportStatusRequest and storing it in batches.
//
// DESIGN: the loop folds every result into the pending map (coalesced by
// key) and never waits for the database. Batches leave oldest first, at most
// batch_keys keys each: when batch_size keys are pending or every
// flush_interval_ms, at most db_thread_cnt at a time, each one transaction on
// a DB worker. A batch the database refuses is folded back into the map and
// retried with backoff, so nothing is lost while PostgreSQL is slow or down;
// one that hits the statement timeout is retried in halves at once
// (batch_cap_t), so a backlog cannot be retried whole forever. Memory grows
// with distinct keys only, and above max_pending_keys the agents'
// connections stop being read (they buffer on their side) until it drains.
//
// A report's caller is the TCP peer's address unless the peer is trusted
// (loopback, trusted_proxies); its ts must be within max_clock_skew of our
// clock (admit.c), and a status row follows the report received last.
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admit.h"
#include "backoff.h"
#include "dispatch.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "pending.h"
#include "pg_worker.h"
#include "report_store.h"
#include "tcp_server.h"
#include "xalloc.h"

#define PRUNE_INTERVAL_MS (3600 * 1000)
#define BEHIND_LOG_MS 10000
#define REFUSED_LOG_MS 10000

typedef struct batch_job {
	pg_job_t base;
	rep_t *r;
	report_entry_t *v;
	size_t n;
	uint64_t n_results;
	size_t rows; /* history rows written, set by the worker */
} batch_job_t;

/* What on_connect decided for a connection (its tcp_conn data). */
typedef struct rep_conn {
	admit_peer_t peer;
	bool warned; /* about an address that cannot be a caller */
} rep_conn_t;

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
	unsigned n_batches; /* of which batches */
	size_t inflight_keys;
	uint64_t inflight_results;
	batch_cap_t cap;
	admit_t admit;
	uint64_t last_rx_us;
	log_ratelimit_t rl_refused;
	backoff_t backoff;
	uint64_t retry_at_ms; /* after a failure, no batch before this */
	uint64_t last_behind_log_ms;
	bool failing;
	bool closing;
	bool finished; /* shutdown flush over, worker closing */
	struct {
		metrics_counter_t *reports, *results, *stored, *rows, *batches,
			*batch_failures, *batch_timeouts, *pruned, *paused,
			*ts_future, *ts_past, *caller_peer, *caller_refused;
	} mt;
};

static void rep_flush(rep_t *r, bool force);
static void rep_maybe_free(rep_t *r);
static void rep_finish(rep_t *r);

/* ---- receiving ---- */

static int on_report(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
		     size_t len)
{
	rep_t *r = user;
	tcp_conn_t *c = tcp_conn_of(peer);
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
	metrics_inc(r->mt.reports);
	metrics_add(r->mt.results, vec.n);
	rep_conn_t *rconn = tcp_conn_data(c);
	if (!rconn) { /* closing already */
		msg_vec_deinit(&vec);
		return 0;
	}
	int32_t caller = req.caller;
	if (!rconn->peer.trusted) {
		if (!rconn->peer.has_ipv4) {
			/* An IPv6 peer has no IPv4 caller address to store under. */
			metrics_inc(r->mt.caller_refused);
			if (!rconn->warned)
				log_warn("reporter: %s: reports refused: an IPv6 peer cannot be a "
					 "caller (IPv4); list it in [reporter] trusted_proxies to "
					 "accept the caller it sends", tcp_conn_peer(c));
			rconn->warned = true;
			msg_vec_deinit(&vec);
			return 0;
		}
		if (caller != rconn->peer.caller)
			metrics_inc(r->mt.caller_peer);
		caller = rconn->peer.caller;
	}
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	uint32_t ts;
	enum admit_ts_result tr = admit_ts(&r->admit, req.ts, (uint64_t)wall.tv_sec, &ts);
	if (tr != ADMIT_TS_OK) {
		unsigned long long hidden;
		long long off = (long long)req.ts - (long long)wall.tv_sec;
		metrics_inc(tr == ADMIT_TS_FUTURE ? r->mt.ts_future : r->mt.ts_past);
		if (log_ratelimit_ok(&r->rl_refused, now, &hidden))
			log_warn("reporter: %s: report for %d/%d with ts %lld s %s our clock "
				 "(max_clock_skew %u s): %s%s", tcp_conn_peer(c), req.modid,
				 req.cmdid, off < 0 ? -off : off, off < 0 ? "behind" : "ahead of",
				 r->admit.max_skew_s,
				 tr == ADMIT_TS_FUTURE ? "refused" : "stored under our time",
				 hidden ? " (more suppressed)" : "");
		if (tr == ADMIT_TS_FUTURE) {
			msg_vec_deinit(&vec);
			return 0;
		}
	}
	/* Receive order: wall-clock microseconds, strictly increasing here, so
	 * status rows follow arrival across batches and restarts. */
	uint64_t rx_us = (uint64_t)wall.tv_sec * 1000000 + (uint64_t)wall.tv_nsec / 1000;
	if (rx_us <= r->last_rx_us)
		rx_us = r->last_rx_us + 1;
	r->last_rx_us = rx_us;
	const lars_HostCallResult *res = vec.v;
	for (size_t i = 0; i < vec.n; i++) {
		report_key_t key = { req.modid, req.cmdid, res[i].ip, res[i].port, caller };
		pending_add(&r->pending, &key, res[i].succ, res[i].err, res[i].overload,
			    ts, rx_us, now);
	}
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

static void on_conn(tcp_conn_t *c, void *user)
{
	rep_t *r = user;
	rep_conn_t *rc = xcalloc(1, sizeof(*rc));
	char ip[NET_ADDR_STRLEN];
	if (admit_peer_ip(tcp_conn_peer(c), ip, sizeof(ip)) ||
	    admit_peer(&r->admit, ip, &rc->peer))
		rc->peer = (admit_peer_t){ 0 }; /* no address: nothing to store under */
	tcp_conn_set_data(c, rc);
}

static void on_conn_close(tcp_conn_t *c, void *user)
{
	(void)user;
	free(tcp_conn_data(c));
	tcp_conn_set_data(c, NULL);
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
	log_warn("reporter: %s; %zu keys (%llu results) pending, oldest %.1f s, "
		 "%u batches in flight (%zu keys, %llu results)",
		 what, pending_keys(&r->pending),
		 (unsigned long long)r->pending.n_results,
		 oldest ? (double)(now - oldest) / 1000 : 0.0, r->n_batches,
		 r->inflight_keys, (unsigned long long)r->inflight_results);
	r->last_behind_log_ms = now;
}

static void batch_done(pg_job_t *j, int status)
{
	batch_job_t *b = container_of(j, batch_job_t, base);
	rep_t *r = b->r;

	r->in_flight--;
	r->n_batches--;
	r->inflight_keys -= b->n;
	r->inflight_results -= b->n_results;
	if (status == 0) {
		metrics_inc(r->mt.batches);
		metrics_add(r->mt.stored, b->n_results);
		metrics_add(r->mt.rows, b->rows);
		batch_cap_done(&r->cap, b->n, BATCH_STORED, pending_keys(&r->pending));
		backoff_reset(&r->backoff);
		r->retry_at_ms = 0;
		if (r->failing) {
			log_info("reporter: database writes work again");
			r->failing = false;
		}
	} else if (status == -ETIMEDOUT && !r->finished &&
		   !batch_cap_done(&r->cap, b->n, BATCH_TIMED_OUT, pending_keys(&r->pending))) {
		/* Too big for the statement timeout: retried at once in halves. */
		for (size_t i = 0; i < b->n; i++)
			pending_merge(&r->pending, &b->v[i]);
		metrics_inc(r->mt.batch_timeouts);
		log_warn("reporter: a batch of %zu keys (%llu results) hit the statement "
			 "timeout; retrying in batches of %zu keys", b->n,
			 (unsigned long long)b->n_results, r->cap.cur);
	} else {
		/* Nothing of it was written: fold it back, try again later. */
		for (size_t i = 0; i < b->n; i++)
			pending_merge(&r->pending, &b->v[i]);
		if (status == -ETIMEDOUT)
			metrics_inc(r->mt.batch_timeouts);
		else if (status != -ECANCELED)
			batch_cap_done(&r->cap, b->n, BATCH_FAILED, pending_keys(&r->pending));
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

/* Submit batches (each at most the current cap) while threads are free, or
 * all of what is pending when @force (the shutdown flush). */
static void rep_flush(rep_t *r, bool force)
{
	while (pending_keys(&r->pending) && !r->finished) {
		if (!force && r->n_batches >= (unsigned)r->cfg.db_thread_cnt)
			return;
		if (uv_now(r->loop) < r->retry_at_ms)
			return;
		batch_job_t *b = xcalloc(1, sizeof(*b));
		b->base.work = batch_work;
		b->base.done = batch_done;
		b->r = r;
		b->v = pending_take_batch(&r->pending,
					  batch_cap_size(&r->cap, pending_keys(&r->pending)),
					  &b->n, &b->n_results);
		r->in_flight++;
		r->n_batches++;
		r->inflight_keys += b->n;
		r->inflight_results += b->n_results;
		pg_worker_submit(r->db, &b->base);
	}
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
	return report_store_prune(conn, p->r->cfg.history_days,
				  p->r->cfg.max_clock_skew_s + 60, &p->deleted);
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

static double gauge_inflight_keys(void *arg)
{
	return (double)((rep_t *)arg)->inflight_keys;
}

static double gauge_cap(void *arg)
{
	return (double)((rep_t *)arg)->cap.cur;
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
	r->mt.batch_timeouts = metrics_counter(m, "lars_reporter_batch_timeouts_total", "Batches that hit the statement timeout (SQLSTATE 57014), retried in halves");
	r->mt.ts_future = metrics_counter(m, "lars_reporter_ts_refused_total{reason=\"future\"}", "Reports whose ts was beyond max_clock_skew: future = report dropped, past = stored under our time");
	r->mt.ts_past = metrics_counter(m, "lars_reporter_ts_refused_total{reason=\"past\"}", "Reports whose ts was beyond max_clock_skew: future = report dropped, past = stored under our time");
	r->mt.caller_peer = metrics_counter(m, "lars_reporter_caller_replaced_total", "Reports from an untrusted peer whose caller field was not its address (stored under the address)");
	r->mt.caller_refused = metrics_counter(m, "lars_reporter_caller_refused_total", "Reports dropped: an untrusted peer without an IPv4 address");
	r->mt.pruned = metrics_counter(m, "lars_reporter_history_pruned_total", "History rows removed by retention");
	r->mt.paused = metrics_counter(m, "lars_reporter_backpressure_total", "Times reading from agents was paused");
	metrics_gauge(m, "lars_reporter_pending_keys", "Keys waiting for the database", gauge_pending_keys, r);
	metrics_gauge(m, "lars_reporter_oldest_pending_seconds", "Age of the oldest result not yet stored", gauge_oldest, r);
	metrics_gauge(m, "lars_reporter_inflight_keys", "Keys in batches sent to the database, not yet committed", gauge_inflight_keys, r);
	metrics_gauge(m, "lars_reporter_batch_keys_current", "Keys a batch may hold now (batch_keys, halved after a statement timeout)", gauge_cap, r);
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
	batch_cap_init(&r->cap, (size_t)cfg->batch_keys);
	r->admit.trust_loopback = cfg->trust_loopback;
	r->admit.max_skew_s = (uint32_t)cfg->max_clock_skew_s;
	const char *why;
	if (admit_parse_nets(&r->admit, cfg->trusted_proxies, &why))
		abort(); /* main checked it */
	r->rl_refused = (log_ratelimit_t)LOG_RATELIMIT_INIT(REFUSED_LOG_MS, 3);
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
				.n_threads = (unsigned)cfg->db_thread_cnt,
				.statement_timeout_ms = (unsigned)cfg->statement_timeout_ms,
				.metrics = m };
	int rc = pg_worker_start(loop, &wo, &r->db);
	if (rc == 0) {
		tcp_server_opts_t o = {
			.name = "reporter", .ip = cfg->ip, .port = cfg->port,
			.reuse_port = cfg->reuse_port,
			.max_conns = (unsigned)cfg->max_conns, .max_frame = (uint32_t)cfg->max_frame,
			.dispatch = &r->dispatch, .on_connect = on_conn,
			.on_close = on_conn_close, .user = r, .metrics = m,
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

/*
 * Freed once the timers are closed and no DB job can call back. By then every
 * batch has come back (stored, or folded into pending), so what pending
 * holds is exactly what was not stored.
 */
static void rep_maybe_free(rep_t *r)
{
	if (!r->finished || r->n_timers || r->in_flight)
		return;
	if (pending_keys(&r->pending))
		log_error("reporter: shutting down with %zu keys (%llu results) not stored",
			  pending_keys(&r->pending), (unsigned long long)r->pending.n_results);
	else
		log_info("reporter: everything received was stored");
	pending_deinit(&r->pending);
	free(r);
}

/* The shutdown flush is over (done or timed out): cancel and close. */
static void rep_finish(rep_t *r)
{
	if (r->finished)
		return;
	if (pending_keys(&r->pending) || r->n_batches)
		log_warn("reporter: shutdown timeout: %zu keys (%llu results) pending and "
			 "%u batches in flight (%zu keys, %llu results); cancelling them",
			 pending_keys(&r->pending), (unsigned long long)r->pending.n_results,
			 r->n_batches, r->inflight_keys,
			 (unsigned long long)r->inflight_results);
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
