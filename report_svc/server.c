// SPDX-License-Identifier: MIT
// lars-reporter: receiving ReportStatusRequest and storing it in batches.
//
// DESIGN: this file carries out what the cores decide. core/intake.c
// decodes a report, admits it (core/admit.c: a caller is the TCP peer's
// address unless the peer is trusted; a ts must be within max_clock_skew of
// our clock) and folds it into the pending map (core/pending.c, coalesced by
// key). core/flush.c decides when batches leave (batch_size keys pending,
// every flush_interval_ms, at most db_thread_cnt at a time), what becomes of
// one the database refuses (folded back, retried with backoff, or in halves
// after a statement timeout) and when the agents' connections stop being
// read (max_pending_keys). Here: the sockets, the DB worker jobs that store
// a batch in one transaction, the timers, the counters and the shutdown. A
// refused batch is folded back a slice per loop turn (an idle handle while
// flush_folding()), so agents' reports are read in between. Acknowledged
// agents (core/agents.c): the connection each one's messages arrive on now
// is kept (agent_id -> a reference to it), a ReportStatusAck goes there after
// the commit of a batch with the agent's part, and at once on the message's
// own connection for a message already stored.
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "flush.h"
#include "intake.h"
#include "handles.h"
#include "log.h"
#include "msg.h"
#include "pending.h"
#include "pg_worker.h"
#include "report_store.h"
#include "tcp_server.h"
#include "u64map.h"
#include "xalloc.h"

#define PRUNE_INTERVAL_MS (3600 * 1000)

typedef struct batch_job {
	pg_job_t base;
	rep_t *r;
	flush_batch_t batch;
	size_t rows; /* history rows written, set by the worker */
	uint64_t submitted_ns;
} batch_job_t;

typedef struct prune_job {
	pg_job_t base;
	rep_t *r;
	report_prune_t done;
} prune_job_t;

/* What a connection carries: its admission, and the acknowledged agents
 * whose current connection it is (the first CONN_AGENTS_MAX of them). */
#define CONN_AGENTS_MAX 64
typedef struct conn_data {
	intake_conn_t ic;
	uint64_t agents[CONN_AGENTS_MAX];
	unsigned n_agents;
} conn_data_t;

struct rep {
	metrics_histogram_t *store_seconds; /* a batch submitted -> committed */
	bool db_failing;                    /* the last batch failed (readiness) */
	uv_loop_t *loop;
	rep_cfg_t cfg;
	metrics_t *m;
	dispatch_t dispatch;
	tcp_server_t *srv;
	pg_worker_t *db;
	intake_t intake;
	flush_t flush;
	u64map_t conns; /* agent_id -> its current tcp_conn_t (a reference) */
	uv_timer_t flush_timer;
	uv_timer_t prune_timer;
	uv_timer_t shutdown_timer;
	uv_idle_t fold_idle; /* a slice of fold-back each loop turn while there is one */
	handles_t timers; /* flush, prune, shutdown, fold */
	bool timers_closed;
	unsigned in_flight; /* DB jobs not yet done: batches and prunes */
	unsigned prunes;    /* of those, prunes: housekeeping a shutdown does not wait for */
	struct {
		metrics_counter_t *reports, *results, *stored, *rows, *batches,
			*batch_failures, *batch_timeouts, *pruned, *paused,
			*ts_future, *ts_past, *caller_peer, *caller_refused,
			*duplicates, *skipped, *acks, *resets;
	} mt;
};

static void rep_act(rep_t *r);
static void rep_maybe_free(rep_t *r);
static void rep_finish(rep_t *r);

static void rep_timer_start(uv_timer_t *t, uv_timer_cb cb, uint64_t timeout_ms,
			    uint64_t repeat_ms)
{
	int rc = uv_timer_start(t, cb, timeout_ms, repeat_ms);
	if (rc)
		log_error("reporter: cannot start a timer: %s", uv_err_name(rc));
}

/* ---- receiving ---- */

static uint64_t wall_clock_us(void)
{
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	return (uint64_t)wall.tv_sec * 1000000 + (uint64_t)wall.tv_nsec / 1000;
}

static void rep_count_report(rep_t *r, const intake_result_t *res)
{
	metrics_inc(r->mt.reports);
	metrics_add(r->mt.results, res->n_results);
	if (res->caller_refused)
		metrics_inc(r->mt.caller_refused);
	if (res->caller_replaced)
		metrics_inc(r->mt.caller_peer);
	if (res->ts == ADMIT_TS_FUTURE)
		metrics_inc(r->mt.ts_future);
	else if (res->ts == ADMIT_TS_PAST)
		metrics_inc(r->mt.ts_past);
	if (res->duplicate)
		metrics_inc(r->mt.duplicates);
	if (res->resets)
		metrics_add(r->mt.resets, res->resets);
}

/* ---- acknowledgements ---- */

static void rep_ack(rep_t *r, tcp_conn_t *c, uint64_t agent_id, uint64_t seq)
{
	lars_ReportStatusAck ack = { .agent_id = agent_id, .seq = seq };
	if (!c || !tcp_conn_is_open(c))
		return;
	/* A peer too slow to take an ack is closed by the write bound. */
	if (tcp_conn_send(c, LARS_ID_REPORT_STATUS_ACK, lars_ReportStatusAck_fields, &ack) == 0)
		metrics_inc(r->mt.acks);
}

/* @c is where @agent_id's messages arrive now: its acks go there. */
static void rep_agent_conn(rep_t *r, tcp_conn_t *c, conn_data_t *cd, uint64_t agent_id)
{
	tcp_conn_t *old = u64map_get(&r->conns, agent_id);
	if (old == c)
		return;
	if (cd->n_agents == CONN_AGENTS_MAX)
		return; /* acked only at once, on the message's own connection */
	cd->agents[cd->n_agents++] = agent_id;
	u64map_put(&r->conns, agent_id, tcp_conn_ref(c));
	if (old)
		tcp_conn_unref(old);
}

/* @c closes: it is nobody's current connection any more. */
static void rep_conn_gone(rep_t *r, tcp_conn_t *c, conn_data_t *cd)
{
	for (unsigned i = 0; i < cd->n_agents; i++) {
		if (u64map_get(&r->conns, cd->agents[i]) != c)
			continue;
		u64map_del(&r->conns, cd->agents[i]);
		tcp_conn_unref(c);
	}
	cd->n_agents = 0;
}

static void rep_conns_free(rep_t *r)
{
	size_t it = 0;
	u64map_slot_t *s;
	while ((s = u64map_next(&r->conns, &it)))
		tcp_conn_unref(s->value);
	u64map_deinit(&r->conns);
}

static int on_report(peer_t *peer, void *user, int32_t msgid, const uint8_t *body,
		     size_t len)
{
	rep_t *r = user;
	tcp_conn_t *c = tcp_conn_of(peer);
	conn_data_t *cd = tcp_conn_data(c);
	intake_result_t res;
	(void)msgid;
	/* No connection data: it is closing; the report is only counted. */
	int rc = intake_report_to(&r->intake, cd ? &cd->ic : NULL, tcp_conn_peer(c), body,
				  len, wall_clock_us(), uv_now(r->loop), &r->flush.pending,
				  &r->flush.agents, &res);
	if (rc)
		return rc;
	rep_count_report(r, &res);
	if (cd && res.agent_id)
		rep_agent_conn(r, c, cd, res.agent_id);
	if (res.ack_now)
		rep_ack(r, c, res.agent_id, res.ack_seq);
	if (res.added) {
		flush_received(&r->flush);
		rep_act(r);
	}
	return 0;
}

static void on_conn(tcp_conn_t *c, void *user)
{
	rep_t *r = user;
	conn_data_t *cd = xcalloc(1, sizeof(*cd));
	intake_conn_init(&r->intake, tcp_conn_peer(c), &cd->ic);
	tcp_conn_set_data(c, cd);
}

static void on_conn_close(tcp_conn_t *c, void *user)
{
	rep_t *r = user;
	conn_data_t *cd = tcp_conn_data(c);
	if (cd)
		rep_conn_gone(r, c, cd);
	free(cd);
	tcp_conn_set_data(c, NULL);
}

/* ---- storing ---- */

static int batch_work(PGconn *conn, pg_job_t *j)
{
	batch_job_t *b = container_of(j, batch_job_t, base);
	return report_store_batch(conn, b->batch.v, b->batch.n, b->batch.agents,
				  b->batch.n_agents, &b->rows);
}

/* A DB job's status as a batch outcome. */
static enum batch_outcome batch_outcome(int status)
{
	switch (status) {
	case 0:
		return BATCH_STORED;
	case -ETIMEDOUT:
		return BATCH_TIMED_OUT;
	case -ECANCELED:
		return BATCH_CANCELLED;
	default:
		return BATCH_FAILED;
	}
}

static void batch_done(pg_job_t *j, int status)
{
	batch_job_t *b = container_of(j, batch_job_t, base);
	rep_t *r = b->r;
	enum batch_outcome outcome = batch_outcome(status);
	uint64_t n_results = b->batch.n_results;

	r->in_flight--;
	if (outcome == BATCH_STORED)
		metrics_observe(r->store_seconds, (double)(uv_hrtime() - b->submitted_ns) / 1e9);
	r->db_failing = outcome == BATCH_FAILED;
	/* Committed: each agent learns what is stored of it, on the connection
	 * it has now (if any). */
	uint64_t skipped = 0;
	for (size_t i = 0; outcome == BATCH_STORED && i < b->batch.n_agents; i++) {
		const report_agent_seq_t *a = &b->batch.agents[i];
		tcp_conn_t *c = u64map_get(&r->conns, a->agent_id);
		rep_ack(r, c, a->agent_id, a->stored);
		if (!a->dropped)
			continue;
		skipped += a->n_results;
		/* Its part held messages stored elsewhere and some that were not:
		 * both are gone here. Left open, the agent would go on with newer
		 * seqs, get them acked and forget the lost ones; reconnecting, it
		 * sends every message it holds again first, in seq order. */
		if (c)
			tcp_conn_close(c, "part of its reports was stored by another "
				       "reporter: it resends from the stored seq");
	}
	enum flush_done done = flush_batch_done(&r->flush, &b->batch, outcome,
						uv_now(r->loop));
	if (done == FLUSH_DONE_STORED) {
		metrics_inc(r->mt.batches);
		metrics_add(r->mt.stored, n_results - skipped);
		metrics_add(r->mt.skipped, skipped);
		metrics_add(r->mt.rows, b->rows);
	} else {
		if (outcome == BATCH_TIMED_OUT)
			metrics_inc(r->mt.batch_timeouts);
		if (done == FLUSH_DONE_RETRY)
			metrics_inc(r->mt.batch_failures);
	}
	free(b);
	rep_act(r);
	if (r->flush.closing) {
		if (!r->flush.finished && flush_drained(&r->flush) && r->in_flight == r->prunes)
			rep_finish(r);
		rep_maybe_free(r);
	}
}

static void rep_submit(rep_t *r, const flush_batch_t *batch)
{
	batch_job_t *b = xcalloc(1, sizeof(*b));
	b->base.work = batch_work;
	b->base.done = batch_done;
	b->r = r;
	b->batch = *batch;
	r->in_flight++;
	b->submitted_ns = uv_hrtime();
	pg_worker_submit(r->db, &b->base);
}

static void on_fold_idle(uv_idle_t *h);

/* Carry out what the flush policy decided after an event. */
static void rep_act(rep_t *r)
{
	flush_batch_t b;
	enum flush_act a;
	while ((a = flush_next(&r->flush, uv_now(r->loop), &b)) != FLUSH_ACT_NONE) {
		switch (a) {
		case FLUSH_ACT_SUBMIT:
			rep_submit(r, &b);
			break;
		case FLUSH_ACT_PAUSE:
			metrics_inc(r->mt.paused);
			if (r->srv)
				tcp_server_pause(r->srv, true);
			break;
		case FLUSH_ACT_RESUME:
			if (r->srv)
				tcp_server_pause(r->srv, false);
			break;
		case FLUSH_ACT_NONE:
			break;
		}
	}
	/* Once shutdown is over the handle is closing; rep_maybe_free() folds the rest. */
	if (flush_folding(&r->flush) && !r->flush.finished &&
	    !uv_is_active((uv_handle_t *)&r->fold_idle)) {
		int rc = uv_idle_start(&r->fold_idle, on_fold_idle);
		if (rc)
			log_error("reporter: cannot start the fold-back: %s", uv_err_name(rc));
	}
}

/* One slice of the fold-back, then what the flush policy makes of it. */
static void on_fold_idle(uv_idle_t *h)
{
	rep_t *r = h->data;
	flush_fold_step(&r->flush, FLUSH_FOLD_BUDGET);
	if (!flush_folding(&r->flush))
		(void)uv_idle_stop(h); /* cannot fail */
	rep_act(r);
}

static void on_flush_timer(uv_timer_t *t)
{
	rep_t *r = t->data;
	flush_tick(&r->flush);
	rep_act(r);
}

static int prune_work(PGconn *conn, pg_job_t *j)
{
	prune_job_t *p = container_of(j, prune_job_t, base);
	return report_store_prune(conn, p->r->cfg.history_days,
				  p->r->cfg.max_clock_skew_s + 60, &p->done);
}

static void prune_done(pg_job_t *j, int status)
{
	prune_job_t *p = container_of(j, prune_job_t, base);
	rep_t *r = p->r;
	r->in_flight--;
	r->prunes--;
	if (status == 0 && p->done.rows > 0)
		metrics_add(r->mt.pruned, (uint64_t)p->done.rows);
	if (status == 0 && (p->done.rows > 0 || p->done.dropped > 0))
		log_info("reporter: removed %lld history rows (%d day partitions) older "
			 "than %d days", p->done.rows, p->done.dropped, r->cfg.history_days);
	if (status == 0 && p->done.created > 0)
		log_info("reporter: created %d history partitions for the coming days",
			 p->done.created);
	free(p);
	rep_maybe_free(r);
}

static void on_prune_timer(uv_timer_t *t)
{
	rep_t *r = t->data;
	if (r->flush.closing)
		return;
	prune_job_t *p = xcalloc(1, sizeof(*p));
	p->base.work = prune_work;
	p->base.done = prune_done;
	p->r = r;
	r->in_flight++;
	r->prunes++;
	pg_worker_submit(r->db, &p->base);
}

/* ---- metrics ---- */

static double gauge_pending_keys(void *arg)
{
	return (double)flush_pending_keys(&((rep_t *)arg)->flush);
}

static double gauge_oldest(void *arg)
{
	rep_t *r = arg;
	uint64_t oldest = flush_oldest_ms(&r->flush);
	return oldest ? (double)(uv_now(r->loop) - oldest) / 1000 : 0;
}

static double gauge_inflight_keys(void *arg)
{
	return (double)((rep_t *)arg)->flush.inflight_keys;
}

static double gauge_cap(void *arg)
{
	return (double)((rep_t *)arg)->flush.cap.cur;
}

/* The counters belong to @r->m and may be registered before @r is sure to live. */
static void rep_counters(rep_t *r)
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
	r->mt.duplicates = metrics_counter(m, "lars_reporter_reports_duplicate_total", "Reports of acknowledged agents not applied: their seq was stored or taken in already");
	r->mt.skipped = metrics_counter(m, "lars_reporter_results_skipped_total", "Results dropped at commit: another reporter instance had stored the agent's messages");
	r->mt.acks = metrics_counter(m, "lars_reporter_acks_total", "ReportStatusAck sent to agents");
	r->mt.resets = metrics_counter(m, "lars_reporter_total_resets_total", "Running totals (reports without the delta marker) lower than the last: window resets");
}

/* The gauges read @r when rendered: registered once @r is running. */
static void rep_gauges(rep_t *r)
{
	metrics_t *m = r->m;
	metrics_gauge(m, "lars_reporter_pending_keys", "Keys waiting for the database", gauge_pending_keys, r);
	metrics_gauge(m, "lars_reporter_oldest_pending_seconds", "Age of the oldest result not yet stored", gauge_oldest, r);
	static const double store_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
					       0.5, 1, 2.5, 5, 10, 30 };
	r->store_seconds = metrics_histogram(m, "lars_reporter_batch_write_seconds",
		"A batch of results from its submission to the worker until committed",
		store_bounds, sizeof(store_bounds) / sizeof(store_bounds[0]));
	metrics_gauge(m, "lars_reporter_inflight_keys", "Keys in batches sent to the database, not yet committed", gauge_inflight_keys, r);
	metrics_gauge(m, "lars_reporter_batch_keys_current", "Keys a batch may hold now (batch_keys, halved after a statement timeout)", gauge_cap, r);
}

/* ---- lifetime ---- */

/**
 * rep_new() - start lars-reporter: the DB workers, the TCP listener, the
 * flush and retention timers; @on_ready(@user, port) once listening.
 * @svc: the service (its state stays main.c's).
 *
 * Return: 0 with *@outp set (undo with rep_close()); else a negative errno,
 * *@outp untouched and nothing left behind (a started DB worker is closed,
 * it frees itself off the loop).
 */
/* /readyz: serving, and the last batch reached the database. */
static bool rep_ready(void *arg, char *why, size_t cap)
{
	const rep_t *r = arg;
	if (!r->db_failing)
		return true;
	snprintf(why, cap, "the last batch could not be stored: the database fails");
	return false;
}

int rep_new(uv_loop_t *loop, service_t *svc, const rep_cfg_t *cfg, metrics_t *m,
	    void (*on_ready)(void *user, int port), void *user, rep_t **outp)
{
	rep_t *r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->cfg = *cfg;
	r->m = m;
	const char *why;
	int rc = intake_init(&r->intake, cfg->trusted_proxies, cfg->trust_loopback,
			     (uint32_t)cfg->max_clock_skew_s, (size_t)cfg->max_results, &why);
	if (rc) {
		log_error("reporter: [reporter] trusted_proxies = %s: %s", cfg->trusted_proxies,
			  why);
		free(r);
		return rc;
	}
	flush_cfg_t fc = {
		.batch_size = (size_t)cfg->batch_size, .batch_keys = (size_t)cfg->batch_keys,
		.max_batches = (unsigned)cfg->db_thread_cnt,
		.max_pending_keys = (size_t)cfg->max_pending_keys, .seed = uv_hrtime(),
	};
	flush_init(&r->flush, &fc);
	rep_counters(r);
	dispatch_init(&r->dispatch);
	rc = dispatch_on(&r->dispatch, LARS_ID_REPORT_STATUS_REQ, on_report, r);
	if (rc)
		goto fail;

	pg_worker_opts_t wo = { .name = "reporter-db", .conninfo = cfg->conninfo,
				.n_threads = (unsigned)cfg->db_thread_cnt,
				.statement_timeout_ms = (unsigned)cfg->statement_timeout_ms,
				.metrics = m };
	rc = pg_worker_start(loop, &wo, &r->db);
	if (rc)
		goto fail;
	tcp_server_opts_t o = {
		.name = "reporter", .ip = cfg->ip, .port = cfg->port,
		.reuse_port = cfg->reuse_port,
		.max_conns = (unsigned)cfg->max_conns, .max_frame = (uint32_t)cfg->max_frame,
		.dispatch = &r->dispatch, .on_connect = on_conn,
		.on_close = on_conn_close, .user = r, .metrics = m,
	};
	rc = tcp_server_start(loop, &o, &r->srv);
	if (rc) {
		pg_worker_close(r->db); /* nothing submitted: no callback to us */
		goto fail;
	}

	/* uv_timer_init() always succeeds (libuv docs). */
	(void)uv_timer_init(loop, &r->flush_timer);
	(void)uv_timer_init(loop, &r->prune_timer);
	(void)uv_timer_init(loop, &r->shutdown_timer);
	(void)uv_idle_init(loop, &r->fold_idle); /* as uv_timer_init() */
	r->flush_timer.data = r->prune_timer.data = r->shutdown_timer.data = r;
	r->fold_idle.data = r;
	handles_init(&r->timers);
	handles_add(&r->timers, &r->flush_timer);
	handles_add(&r->timers, &r->prune_timer);
	handles_add(&r->timers, &r->shutdown_timer);
	handles_add(&r->timers, &r->fold_idle);
	rep_timer_start(&r->flush_timer, on_flush_timer, (uint64_t)cfg->flush_interval_ms,
			(uint64_t)cfg->flush_interval_ms);
	/* Retention at start, then hourly. */
	rep_timer_start(&r->prune_timer, on_prune_timer, 0, PRUNE_INTERVAL_MS);
	rep_gauges(r);
	on_ready(user, tcp_server_port(r->srv));
	service_set_ready_check(svc, rep_ready, r);
	*outp = r;
	return 0;
fail:
	flush_deinit(&r->flush);
	intake_deinit(&r->intake);
	free(r);
	return rc;
}

static void rep_on_timers_closed(handles_t *g)
{
	rep_t *r = container_of(g, rep_t, timers);
	r->timers_closed = true;
	rep_maybe_free(r);
}

/*
 * Freed once the timers are closed and no DB job can call back. By then every
 * batch has come back (stored, or folded back), so what pending holds is
 * exactly what was not stored. The fold-back left is merged in one go here,
 * for that count: the listener and the timers are gone, nothing else waits.
 */
static void rep_maybe_free(rep_t *r)
{
	const flush_t *f = &r->flush;
	if (!r->flush.finished || !r->timers_closed || r->in_flight)
		return;
	flush_fold_all(&r->flush);
	if (flush_pending_keys(f))
		log_error("reporter: shutting down with %zu keys (%llu results) not stored",
			  flush_pending_keys(f), (unsigned long long)flush_pending_results(f));
	else
		log_info("reporter: everything received was stored");
	flush_deinit(&r->flush);
	intake_deinit(&r->intake);
	rep_conns_free(r);
	free(r);
}

/* The shutdown flush is over (done or timed out): cancel and close. */
static void rep_finish(rep_t *r)
{
	const flush_t *f = &r->flush;
	if (f->finished)
		return;
	if (flush_pending_keys(f) || f->n_batches)
		log_warn("reporter: shutdown timeout: %zu keys (%llu results) pending and "
			 "%u batches in flight (%zu keys, %llu results); cancelling them",
			 flush_pending_keys(f), (unsigned long long)flush_pending_results(f),
			 f->n_batches, f->inflight_keys,
			 (unsigned long long)f->inflight_results);
	flush_finish(&r->flush);
	handles_close(&r->timers, rep_on_timers_closed);
	/* Queued batches come back -ECANCELED (folded in, then dropped with us). */
	pg_worker_close(r->db);
	r->db = NULL;
}

static void on_shutdown_timeout(uv_timer_t *t)
{
	rep_finish(t->data);
}

/**
 * rep_close() - stop accepting, store what is pending within the shutdown
 * timeout, log what could not be stored, then close everything; @r is freed
 * once the last DB job and timer are done. NULL is fine.
 */
void rep_close(rep_t *r)
{
	if (!r || r->flush.closing)
		return;
	flush_close(&r->flush);
	tcp_server_close(r->srv); /* no new results */
	r->srv = NULL;
	/* A prune in flight is cancelled with the worker, not waited for. */
	if (flush_pending_keys(&r->flush) == 0 && r->in_flight == r->prunes) {
		rep_finish(r);
		return;
	}
	log_info("reporter: storing %zu pending keys before exit (up to %d s)",
		 flush_pending_keys(&r->flush), r->cfg.shutdown_timeout_s);
	rep_act(r);
	rep_timer_start(&r->shutdown_timer, on_shutdown_timeout,
			(uint64_t)r->cfg.shutdown_timeout_s * 1000, 0);
}
