// SPDX-License-Identifier: MIT
// lars-reporter's exactly-once delivery and running totals, on a fake clock:
// a seq taken in twice is applied once, one already committed is acked at
// once; an agent's results go whole into one batch and never while a batch
// of it is in flight; the statement-timeout halving cuts at agent
// boundaries; a batch refused comes back to its agent, one the database
// dropped (stored by another instance) drops what the agent sent meanwhile;
// reports without the delta marker are running totals turned into
// differences, a lower total a window reset; call latency adds up per minute.
// Batches are kept by the test as the DB worker would, and it decides how
// each one comes back (the database part is in test-reporter.c).
#include "test.h"

#include <string.h>

#include "agents.h"
#include "cum.h"
#include "flush.h"
#include "intake.h"
#include "msg.h"

#define WALL_S 1800000000ull
#define TS ((uint32_t)WALL_S)

typedef struct rig {
	flush_t f;
	intake_t in;
	intake_conn_t c;
	flush_batch_t flight[16];
	size_t n_flight;
	uint64_t now;
	uint64_t stored; /* succ + err of batches stored (not dropped parts) */
} rig_t;

static void rig_init(rig_t *t, size_t batch_size, size_t batch_keys, unsigned max_batches)
{
	memset(t, 0, sizeof(*t));
	flush_cfg_t c = { .batch_size = batch_size, .batch_keys = batch_keys,
			  .max_batches = max_batches, .max_pending_keys = 1000000, .seed = 7 };
	flush_init(&t->f, &c);
	const char *why;
	assert_int_equal(intake_init(&t->in, "", true, 300, 100000, &why), 0);
	intake_conn_init(&t->in, "127.0.0.1:4000", &t->c);
	t->now = 1000;
}

static void rig_deinit(rig_t *t)
{
	for (size_t i = 0; i < t->n_flight; i++) {
		free(t->flight[i].v);
		free(t->flight[i].agents);
	}
	flush_deinit(&t->f);
	intake_deinit(&t->in);
}

static void rig_act(rig_t *t)
{
	flush_batch_t b;
	enum flush_act a;
	while ((a = flush_next(&t->f, t->now, &b)) != FLUSH_ACT_NONE) {
		if (a != FLUSH_ACT_SUBMIT)
			continue;
		assert_true(t->n_flight < 16);
		assert_true(b.n > 0 || b.n_agents > 0);
		/* No agent twice in flight, none split: its map is empty now. */
		for (size_t i = 0; i < b.n_agents; i++) {
			for (size_t k = 0; k < t->n_flight; k++)
				for (size_t j = 0; j < t->flight[k].n_agents; j++)
					assert_true(t->flight[k].agents[j].agent_id !=
						    b.agents[i].agent_id);
			rep_agent_t *ag = u64map_get(&t->f.agents.map, b.agents[i].agent_id);
			assert_non_null(ag);
			assert_true(ag->in_flight);
			assert_int_equal(pending_keys(&ag->pending), 0);
		}
		t->flight[t->n_flight++] = b;
	}
}

/* A ReportStatusRequest of @n results (ip @ip0.., @succ ok, @err errors each). */
static int rig_msg(rig_t *t, uint64_t agent_id, uint64_t seq, bool delta, int32_t ip0, int n,
		   uint32_t succ, uint32_t err, intake_result_t *res)
{
	lars_HostCallResult r[64];
	assert_true(n <= 64);
	for (int i = 0; i < n; i++)
		r[i] = (lars_HostCallResult){ .ip = ip0 + i, .port = 80, .succ = succ, .err = err };
	lars_ReportStatusRequest q = lars_ReportStatusRequest_init_zero;
	q.modid = 1;
	q.cmdid = 2;
	q.caller = 9;
	q.ts = TS;
	q.agent_id = agent_id;
	q.seq = seq;
	q.delta = delta;
	msg_array_t arr = MSG_RESULTS(r, (size_t)n);
	msg_array_bind(&arr, &q.results);
	uint8_t buf[8192];
	size_t len;
	assert_int_equal(msg_frame_encode(LARS_ID_REPORT_STATUS_REQ,
					  lars_ReportStatusRequest_fields, &q, buf,
					  sizeof(buf), &len), 0);
	int rc = intake_report_to(&t->in, &t->c, "127.0.0.1:4000", buf + 8, len - 8,
				  WALL_S * 1000000 + t->now * 1000, t->now, &t->f.pending,
				  &t->f.agents, res);
	if (rc == 0 && res->added)
		flush_received(&t->f);
	rig_act(t);
	return rc;
}

static uint64_t entries_sum(const report_entry_t *v, size_t first, size_t n)
{
	uint64_t s = 0;
	for (size_t i = first; i < first + n; i++)
		for (unsigned m = 0; m < v[i].n_mins; m++)
			s += v[i].mins[m].succ + v[i].mins[m].err;
	return s;
}

/*
 * Batch @i comes back: stored (each agent set to its max_seq, or @drop_seq
 * with the part dropped when @drop_seq is at least its min_seq), or @o.
 */
static enum flush_done rig_done(rig_t *t, size_t i, enum batch_outcome o, uint64_t drop_seq)
{
	flush_batch_t b = t->flight[i];
	memmove(&t->flight[i], &t->flight[i + 1], (t->n_flight - i - 1) * sizeof(b));
	t->n_flight--;
	if (o == BATCH_STORED) {
		t->stored += entries_sum(b.v, 0, b.n_anon);
		for (size_t k = 0; k < b.n_agents; k++) {
			report_agent_seq_t *a = &b.agents[k];
			a->dropped = drop_seq && drop_seq >= a->min_seq;
			a->stored = a->dropped ? drop_seq : a->max_seq;
			if (!a->dropped)
				t->stored += entries_sum(b.v, a->first, a->n);
		}
	}
	enum flush_done d = flush_batch_done(&t->f, &b, o, t->now);
	while (flush_folding(&t->f))
		flush_fold_step(&t->f, FLUSH_FOLD_BUDGET);
	rig_act(t);
	return d;
}

static rep_agent_t *agent(rig_t *t, uint64_t id)
{
	return u64map_get(&t->f.agents.map, id);
}

/* ---- exactly once ---- */

static void test_seq_dedupe(void **state)
{
	rig_t t;
	intake_result_t r;
	rig_init(&t, 1000, 1000, 2);
	assert_int_equal(rig_msg(&t, 77, 1, true, 100, 3, 2, 1, &r), 0);
	assert_true(r.added && !r.duplicate && !r.ack_now);
	assert_int_equal(r.agent_id, 77);
	/* Sent again (no ack came): held, not applied twice. */
	assert_int_equal(rig_msg(&t, 77, 1, true, 100, 3, 2, 1, &r), 0);
	assert_true(r.duplicate && !r.added && !r.ack_now);
	assert_int_equal(rig_msg(&t, 77, 2, true, 100, 3, 1, 0, &r), 0);
	assert_true(r.added);
	assert_int_equal(flush_pending_keys(&t.f), 3);
	assert_int_equal(flush_pending_results(&t.f), 6);
	flush_tick(&t.f);
	rig_act(&t);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n_agents, 1);
	assert_int_equal(t.flight[0].agents[0].min_seq, 1);
	assert_int_equal(t.flight[0].agents[0].max_seq, 2);
	assert_int_equal(entries_sum(t.flight[0].v, 0, t.flight[0].n), 3 * 3 + 3 * 1);
	/* Seq 3 while seq 1..2 is in flight: taken in, waits for the batch. */
	assert_int_equal(rig_msg(&t, 77, 3, true, 100, 3, 5, 0, &r), 0);
	assert_true(r.added);
	flush_tick(&t.f);
	rig_act(&t);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(rig_done(&t, 0, BATCH_STORED, 0), FLUSH_DONE_STORED);
	assert_int_equal(agent(&t, 77)->committed, 2);
	/* Seq 2 again (the ack was lost): acked at once, not applied. */
	assert_int_equal(rig_msg(&t, 77, 2, true, 100, 3, 1, 0, &r), 0);
	assert_true(r.duplicate && r.ack_now && !r.added);
	assert_int_equal(r.ack_seq, 2);
	flush_tick(&t.f);
	rig_act(&t);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].agents[0].min_seq, 3);
	assert_int_equal(t.flight[0].agents[0].max_seq, 3);
	assert_int_equal(rig_done(&t, 0, BATCH_STORED, 0), FLUSH_DONE_STORED);
	assert_int_equal(t.stored, 12 + 15);
	assert_int_equal(flush_pending_keys(&t.f), 0);
	rig_deinit(&t);
}

/* A message without results still has its seq stored and acknowledged. */
static void test_empty_message_committed(void **state)
{
	rig_t t;
	intake_result_t r;
	rig_init(&t, 1000, 1000, 2);
	assert_int_equal(rig_msg(&t, 9, 1, true, 100, 0, 0, 0, &r), 0);
	assert_true(r.added);
	flush_tick(&t.f);
	rig_act(&t);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n, 0);
	assert_int_equal(t.flight[0].n_agents, 1);
	assert_int_equal(t.flight[0].agents[0].max_seq, 1);
	rig_done(&t, 0, BATCH_STORED, 0);
	assert_int_equal(agent(&t, 9)->committed, 1);
	rig_msg(&t, 9, 1, true, 100, 0, 0, 0, &r);
	assert_true(r.ack_now && r.ack_seq == 1);
	assert_int_equal(agents_ready(&t.f.agents), 0);
	rig_deinit(&t);
}

static void test_refused_batch_back_to_agent(void **state)
{
	rig_t t;
	intake_result_t r;
	rig_init(&t, 1000, 1000, 2);
	rig_msg(&t, 5, 1, true, 100, 2, 1, 0, &r);
	flush_tick(&t.f);
	rig_act(&t);
	assert_int_equal(t.n_flight, 1);
	rig_msg(&t, 5, 2, true, 100, 4, 1, 0, &r); /* 2 keys old, 2 new */
	assert_int_equal(rig_done(&t, 0, BATCH_FAILED, 0), FLUSH_DONE_RETRY);
	/* Merged with what came meanwhile: one part, seq 1..2, after the backoff. */
	assert_int_equal(flush_pending_keys(&t.f), 4);
	assert_int_equal(agent(&t, 5)->min_seq, 1);
	t.now = t.f.retry_at_ms;
	flush_tick(&t.f);
	rig_act(&t);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n, 4);
	assert_int_equal(t.flight[0].agents[0].min_seq, 1);
	assert_int_equal(t.flight[0].agents[0].max_seq, 2);
	rig_done(&t, 0, BATCH_STORED, 0);
	assert_int_equal(t.stored, 6);
	rig_deinit(&t);
}

static void test_dropped_at_commit(void **state)
{
	rig_t t;
	intake_result_t r;
	rig_init(&t, 1000, 1000, 2);
	rig_msg(&t, 8, 1, true, 100, 2, 1, 0, &r);
	rig_msg(&t, 8, 2, true, 100, 2, 1, 0, &r);
	flush_tick(&t.f);
	rig_act(&t);
	rig_msg(&t, 8, 3, true, 100, 2, 1, 0, &r); /* waits */
	/* Another instance had stored up to 2: nothing of it applied, and
	 * seq 3 goes too (the agent sends it again, acked only up to 2). */
	rig_done(&t, 0, BATCH_STORED, 2);
	assert_int_equal(t.stored, 0);
	assert_int_equal(flush_pending_keys(&t.f), 0);
	assert_int_equal(agent(&t, 8)->committed, 2);
	rig_msg(&t, 8, 2, true, 100, 2, 1, 0, &r);
	assert_true(r.ack_now && r.ack_seq == 2);
	rig_msg(&t, 8, 3, true, 100, 2, 1, 0, &r);
	assert_true(r.added);
	flush_tick(&t.f);
	rig_act(&t);
	rig_done(&t, 0, BATCH_STORED, 0);
	assert_int_equal(t.stored, 2);
	assert_int_equal(agent(&t, 8)->committed, 3);
	rig_deinit(&t);
}

static void test_agent_never_split(void **state)
{
	rig_t t;
	intake_result_t r;
	rig_init(&t, 1000000, 4, 8);
	rig_msg(&t, 0, 0, true, 300, 3, 1, 0, &r);  /* not acknowledged, oldest */
	t.now++;
	rig_msg(&t, 1, 1, true, 100, 10, 1, 0, &r); /* more than a batch */
	rig_msg(&t, 2, 1, true, 200, 2, 1, 0, &r);
	rig_msg(&t, 3, 1, true, 400, 2, 1, 0, &r);
	flush_tick(&t.f);
	rig_act(&t);
	/* The oldest first: the other keys (3; agent 1 does not fit after
	 * them), agent 1 alone (10 keys), then agents 2 and 3 (4). */
	assert_int_equal(t.n_flight, 3);
	assert_int_equal(t.flight[0].n_anon, 3);
	assert_int_equal(t.flight[0].n_agents, 0);
	assert_int_equal(t.flight[1].n, 10);
	assert_int_equal(t.flight[1].n_agents, 1);
	assert_int_equal(t.flight[1].agents[0].agent_id, 1);
	assert_int_equal(t.flight[2].n_agents, 2);
	assert_int_equal(t.flight[2].n, 4);
	/* Agent 1 again while its batch is in flight: nothing more leaves. */
	rig_msg(&t, 1, 2, true, 100, 10, 1, 0, &r);
	flush_tick(&t.f);
	rig_act(&t);
	assert_int_equal(t.n_flight, 3);
	while (t.n_flight)
		rig_done(&t, 0, BATCH_STORED, 0);
	flush_tick(&t.f);
	rig_act(&t);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n, 10);
	assert_int_equal(t.flight[0].agents[0].min_seq, 2);
	while (t.n_flight)
		rig_done(&t, 0, BATCH_STORED, 0);
	assert_int_equal(t.stored, 27);
	rig_deinit(&t);
}

static void test_timeout_halves_at_agents(void **state)
{
	rig_t t;
	intake_result_t r;
	rig_init(&t, 1000000, 8, 1);
	rig_msg(&t, 1, 1, true, 100, 3, 1, 0, &r);
	rig_msg(&t, 2, 1, true, 200, 3, 1, 0, &r);
	rig_msg(&t, 3, 1, true, 300, 3, 1, 0, &r);
	flush_tick(&t.f);
	rig_act(&t);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n, 6); /* agents 1 and 2; 3 would not fit */
	assert_int_equal(rig_done(&t, 0, BATCH_TIMED_OUT, 0), FLUSH_DONE_SPLIT);
	assert_int_equal(t.f.cap.cur, 3);
	/* No backoff, halves: one agent (3 keys) a batch, whole. */
	flush_tick(&t.f);
	rig_act(&t);
	assert_int_equal(t.n_flight, 1);
	assert_int_equal(t.flight[0].n, 3);
	assert_int_equal(t.flight[0].n_agents, 1);
	/* One agent alone still too slow: it cannot be cut, so it waits. */
	assert_int_equal(rig_done(&t, 0, BATCH_TIMED_OUT, 0), FLUSH_DONE_RETRY);
	assert_int_equal(t.n_flight, 0);
	assert_true(t.f.retry_at_ms > t.now);
	t.now = t.f.retry_at_ms;
	for (int i = 0; i < 10 && flush_pending_keys(&t.f); i++) {
		flush_tick(&t.f);
		rig_act(&t);
		assert_int_equal(t.n_flight, 1);
		assert_int_equal(t.flight[0].n, 3);
		rig_done(&t, 0, BATCH_STORED, 0);
	}
	assert_int_equal(t.stored, 9);
	rig_deinit(&t);
}

static void test_agents_forgotten_when_idle(void **state)
{
	rig_t t;
	intake_result_t r;
	rig_init(&t, 1000, 1000, 2);
	rig_msg(&t, 1, 1, true, 100, 1, 1, 0, &r);
	rig_msg(&t, 2, 1, true, 100, 1, 1, 0, &r);
	flush_tick(&t.f);
	rig_act(&t);
	rig_done(&t, 0, BATCH_STORED, 0);
	rig_msg(&t, 2, 2, true, 100, 1, 1, 0, &r);
	flush_tick(&t.f);
	rig_act(&t); /* agent 2 in flight */
	t.now += AGENTS_IDLE_MS + AGENTS_SWEEP_MS;
	flush_tick(&t.f);
	rig_act(&t);
	assert_null(agent(&t, 1));
	assert_non_null(agent(&t, 2));
	rig_done(&t, 0, BATCH_STORED, 0);
	/* Forgotten: a message sent again goes to the database's guard. */
	rig_msg(&t, 1, 1, true, 100, 1, 1, 0, &r);
	assert_true(r.added);
	rig_deinit(&t);
}

/* ---- running totals ---- */

static const report_entry_t *find(const pending_t *p, int32_t ip)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i].key.ip == ip)
			return &p->v[i];
	return NULL;
}

static uint64_t hist(const report_entry_t *e, bool err)
{
	uint64_t s = 0;
	for (unsigned m = 0; m < e->n_mins; m++)
		s += err ? e->mins[m].err : e->mins[m].succ;
	return s;
}

static void test_cumulative_to_delta(void **state)
{
	rig_t t;
	intake_result_t r;
	rig_init(&t, 1000000, 1000000, 1);
	/* The original agent: one report a call, totals since the window
	 * reset: 10 successes, then 3 errors. */
	for (uint32_t i = 1; i <= 10; i++) {
		rig_msg(&t, 0, 0, false, 100, 1, i, 0, &r);
		assert_true(r.cumulative);
	}
	for (uint32_t e = 1; e <= 3; e++)
		rig_msg(&t, 0, 0, false, 100, 1, 10, e, &r);
	const report_entry_t *x = find(&t.f.pending, 100);
	assert_non_null(x);
	assert_int_equal(hist(x, false), 10);
	assert_int_equal(hist(x, true), 3);
	assert_int_equal(x->succ, 10); /* the status as reported */
	assert_int_equal(x->err, 3);
	/* The window reset: lower totals are the counts themselves. */
	rig_msg(&t, 0, 0, false, 100, 1, 2, 0, &r);
	assert_int_equal(r.resets, 1);
	rig_msg(&t, 0, 0, false, 100, 1, 3, 1, &r);
	assert_int_equal(hist(x, false), 13);
	assert_int_equal(hist(x, true), 4);
	assert_int_equal(x->succ, 3);
	/* With the delta marker: added as they are. */
	rig_msg(&t, 0, 0, true, 100, 1, 3, 1, &r);
	assert_false(r.cumulative);
	assert_int_equal(hist(x, false), 16);
	assert_int_equal(hist(x, true), 5);
	rig_deinit(&t);
}

static void test_cum_bounded(void **state)
{
	cum_t c;
	uint32_t ds, de;
	cum_init(&c);
	report_key_t k0 = { 1, 1, 0, 1, 1 };
	cum_delta(&c, &k0, 5, 0, &ds, &de);
	assert_int_equal(ds, 5);
	/* CUM_GEN_KEYS others: k0 is in the older generation, still known. */
	for (uint32_t i = 1; i <= CUM_GEN_KEYS; i++) {
		report_key_t k = { 1, 1, (int32_t)i, 1, 1 };
		cum_delta(&c, &k, 1, 0, &ds, &de);
	}
	cum_delta(&c, &k0, 7, 0, &ds, &de); /* and moved up again */
	assert_int_equal(ds, 2);
	assert_true(cum_keys(&c) <= 2 * CUM_GEN_KEYS);
	/* 2 * CUM_GEN_KEYS more without k0: forgotten, its total counts in full. */
	for (uint32_t i = 1; i <= 2 * CUM_GEN_KEYS; i++) {
		report_key_t k = { 2, 1, (int32_t)i, 1, 1 };
		cum_delta(&c, &k, 1, 0, &ds, &de);
	}
	assert_true(cum_keys(&c) <= 2 * CUM_GEN_KEYS);
	cum_delta(&c, &k0, 9, 0, &ds, &de);
	assert_int_equal(ds, 9);
	/* Seeding leaves a known key alone. */
	cum_seed(&c, &k0, 100, 100);
	cum_delta(&c, &k0, 10, 0, &ds, &de);
	assert_int_equal(ds, 1);
	cum_deinit(&c);
}

/* ---- latency ---- */

static void test_latency_sums(void **state)
{
	pending_t p;
	pending_init(&p);
	report_key_t k = { 1, 2, 3, 4, 5 };
	uint32_t b1[REPORT_LAT_BUCKETS] = { 1, 2 }, b2[REPORT_LAT_BUCKETS] = { 0, 1, 0, 0, 4 };
	report_add_t a1 = { .succ = 3, .st_succ = 3, .lat_count = 3, .lat_sum_us = 2000,
			    .lat_buckets = b1 };
	report_add_t a2 = { .succ = 5, .st_succ = 5, .lat_count = 5, .lat_sum_us = 30000,
			    .lat_buckets = b2 };
	report_add_t none = { .succ = 1, .st_succ = 1 };
	pending_add_full(&p, &k, &a1, TS, 1, 1);
	pending_add_full(&p, &k, &a2, TS + 1, 2, 1);
	pending_add_full(&p, &k, &none, TS + 2, 3, 1);
	assert_int_equal(p.n, 1);
	const report_minute_t *m = &p.v[0].mins[0];
	assert_int_equal(p.v[0].n_mins, 1);
	assert_int_equal(m->succ, 9);
	assert_int_equal(m->lat_count, 8);
	assert_int_equal(m->lat_sum_us, 32000);
	assert_int_equal(m->lat_buckets[0], 1);
	assert_int_equal(m->lat_buckets[1], 3);
	assert_int_equal(m->lat_buckets[4], 4);
	/* More minutes than an entry keeps: the oldest folds, latency too. */
	for (unsigned i = 1; i <= PENDING_MINUTES; i++)
		pending_add_full(&p, &k, &a1, TS + 60 * i, 10 + i, 1);
	uint64_t count = 0, sum = 0, b0 = 0;
	for (unsigned i = 0; i < p.v[0].n_mins; i++) {
		count += p.v[0].mins[i].lat_count;
		sum += p.v[0].mins[i].lat_sum_us;
		b0 += p.v[0].mins[i].lat_buckets[0];
	}
	assert_int_equal(p.v[0].n_mins, PENDING_MINUTES);
	assert_int_equal(count, 8 + 3 * PENDING_MINUTES);
	assert_int_equal(sum, 32000 + 2000 * PENDING_MINUTES);
	assert_int_equal(b0, 1 + PENDING_MINUTES);
	/* Merged back (a refused batch): added again. */
	pending_t q;
	pending_init(&q);
	pending_merge(&q, &p.v[0]);
	pending_merge(&q, &p.v[0]);
	count = 0;
	for (unsigned i = 0; i < q.v[0].n_mins; i++)
		count += q.v[0].mins[i].lat_count;
	assert_int_equal(count, 2 * (8 + 3 * PENDING_MINUTES));
	pending_deinit(&q);
	pending_deinit(&p);
}

static void test_latency_from_report(void **state)
{
	rig_t t;
	rig_init(&t, 1000000, 1000000, 1);
	lars_HostCallResult r = { .ip = 50, .port = 80, .succ = 4, .lat_count = 4,
				  .lat_sum_us = 4100, .lat_buckets_count = MSG_LAT_BUCKETS };
	r.lat_buckets[msg_lat_bucket(100)] = 3;
	r.lat_buckets[msg_lat_bucket(3800)] = 1;
	for (int delta = 1; delta >= 0; delta--) {
		lars_ReportStatusRequest q = lars_ReportStatusRequest_init_zero;
		q.modid = 1;
		q.cmdid = 2;
		q.caller = 9;
		q.ts = TS;
		q.delta = delta;
		msg_array_t arr = MSG_RESULTS(&r, 1);
		msg_array_bind(&arr, &q.results);
		uint8_t buf[512];
		size_t len;
		intake_result_t res;
		assert_int_equal(msg_frame_encode(LARS_ID_REPORT_STATUS_REQ,
						  lars_ReportStatusRequest_fields, &q, buf,
						  sizeof(buf), &len), 0);
		assert_int_equal(intake_report_to(&t.in, &t.c, "127.0.0.1:4000", buf + 8,
						  len - 8, WALL_S * 1000000, 1, &t.f.pending,
						  &t.f.agents, &res), 0);
	}
	/* The delta report's latency counts; the running total's does not
	 * (a total of durations is not taken for a difference). */
	const report_entry_t *x = find(&t.f.pending, 50);
	assert_non_null(x);
	assert_int_equal(x->mins[0].lat_count, 4);
	assert_int_equal(x->mins[0].lat_sum_us, 4100);
	assert_int_equal(x->mins[0].lat_buckets[0], 3);
	assert_int_equal(x->mins[0].lat_buckets[3], 1);
	rig_deinit(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seq_dedupe),
		cmocka_unit_test(test_empty_message_committed),
		cmocka_unit_test(test_refused_batch_back_to_agent),
		cmocka_unit_test(test_dropped_at_commit),
		cmocka_unit_test(test_agent_never_split),
		cmocka_unit_test(test_timeout_halves_at_agents),
		cmocka_unit_test(test_agents_forgotten_when_idle),
		cmocka_unit_test(test_cumulative_to_delta),
		cmocka_unit_test(test_cum_bounded),
		cmocka_unit_test(test_latency_sums),
		cmocka_unit_test(test_latency_from_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
