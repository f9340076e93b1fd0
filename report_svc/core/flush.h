// SPDX-License-Identifier: MIT
// lars-reporter's flush policy: when the pending map goes to the database,
// in which batches, how a refused batch comes back, and when reading from
// the agents stops and starts again. No libuv, no libpq: events come in with
// the caller's monotonic now_ms, actions go out through flush_next().
//
// DESIGN: the map is flushed when batch_size keys are pending (on a report
// or a batch that came back) and on every tick (the flush interval), in
// batches of at most the current batch_cap_t size, at most max_batches in
// flight. A batch that was not stored is folded back into the map, so
// nothing is lost and nothing is stored twice: after a statement timeout it
// is retried at once in halves, anything else waits for the backoff (no
// batch before ->retry_at_ms; the next tick after it retries). At
// max_pending_keys the input is paused; it resumes when a batch comes back
// and fewer than 9/10 of that are pending. On shutdown (flush_close) every
// flush takes all that is pending, whatever is in flight.
//
// Folding back is bounded loop work: a batch that comes back unstored (up to
// batch_keys keys, and at shutdown all that was pending) is queued whole and
// merged into the map FLUSH_FOLD_BUDGET keys at a time by flush_fold_step(),
// which the loop calls once a turn while flush_folding(). Until then its
// keys are still "pending", and every decision sees them: they count in
// flush_pending_keys() (an upper bound: a key also in the map counts twice
// until merged) for flushing, pausing, resuming and draining, and the next
// batch is cut from the front of that queue before the map, unmerged, so
// they are the first to go again (at once after a statement timeout, in
// halves) and a shutdown flush takes them like the rest. Each entry leaves
// the queue exactly once, merged or in a batch, so nothing is lost or stored
// twice. Finishing a fold-back re-checks resuming, as a batch coming back
// does. flush_fold_all() merges the rest in one go, for the last count at
// exit.
//
// Acknowledged agents (agents.h, issue 21): their results wait in their own
// maps, not in ->pending. A batch takes whole ready agents (never a part of
// one; an agent larger than the batch size goes alone) besides the other
// keys, whichever waited longer first, and lays them out after the other
// keys (flush_batch_t). A statement timeout halves the size as before, but
// a batch of one agent (or one key) that times out cannot be cut: it waits
// for the backoff. A batch that comes back gives each agent's part back to
// it at once (agents_back(): merged with what it sent meanwhile, unsliced:
// at most batch_keys keys), only the other keys go to the fold-back queue.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agents.h"
#include "backoff.h"
#include "pending.h"

typedef struct flush_cfg {
	size_t batch_size;       /* pending keys that flush at once */
	size_t batch_keys;       /* most keys in one batch (one transaction) */
	unsigned max_batches;    /* batches in flight at once, shutdown aside */
	size_t max_pending_keys; /* at this many, pause the input */
	uint64_t seed;           /* for the backoff's jitter */
} flush_cfg_t;

/* Keys of a refused batch merged back into the map per flush_fold_step(). */
#define FLUSH_FOLD_BUDGET 4096

/**
 * struct flush_batch - keys to store in one transaction: v[0 .. n_anon) of
 * agents that are not acknowledged, oldest first, then the whole part of
 * each of the n_agents acknowledged agents (agents[i] says where).
 */
typedef struct flush_batch {
	report_entry_t *v;
	size_t n;
	uint64_t n_results; /* results folded into the entries */
	uint64_t oldest_ms; /* no entry arrived before this (an upper bound on age) */
	size_t n_anon;
	report_agent_seq_t *agents;
	size_t n_agents;
} flush_batch_t;

/** enum flush_act - what flush_next() asks the caller to do. */
enum flush_act {
	FLUSH_ACT_NONE,   /* nothing (more) to do for now */
	FLUSH_ACT_SUBMIT, /* store the batch, then give it to flush_batch_done() */
	FLUSH_ACT_PAUSE,  /* stop reading from the agents */
	FLUSH_ACT_RESUME, /* read from them again */
};

/** enum flush_done - what became of a batch that came back. */
enum flush_done {
	FLUSH_DONE_STORED,
	FLUSH_DONE_SPLIT, /* statement timeout: folded back, retried in halves now */
	FLUSH_DONE_RETRY, /* folded back; no batch before ->retry_at_ms */
};

typedef struct flush {
	/* read-only for the caller; ->pending takes new results directly
	 * (pending_add), followed by flush_received() */
	pending_t pending;
	rep_agents_t agents; /* acknowledged agents' results: intake_report_to() */
	batch_cap_t cap;
	unsigned n_batches;       /* in flight */
	size_t inflight_keys;
	uint64_t inflight_results;
	uint64_t retry_at_ms;     /* after a failure, no batch before this */
	bool paused;              /* the input, as the last actions left it */
	bool failing;             /* the database refuses batches */
	bool closing;             /* flush_close(): flush everything */
	bool finished;            /* flush_finish(): no more batches */
	/* private */
	flush_cfg_t cfg;
	backoff_t backoff;
	uint64_t last_behind_log_ms;
	bool want_flush;
	bool want_pause_check;
	bool want_resume;
	bool want_behind_log;
	struct {
		flush_batch_t *v; /* came back unstored, oldest first */
		size_t n, cap;
		size_t pos;       /* entries of v[0] already merged or handed out */
		size_t keys;      /* entries not yet merged or handed out, in all */
		uint64_t results; /* results in them */
		uint64_t oldest_ms;
	} fold;
} flush_t;

void flush_init(flush_t *f, const flush_cfg_t *cfg);
void flush_deinit(flush_t *f);

/* Events. After each one, call flush_next() with the current time until it
 * returns FLUSH_ACT_NONE, before the next event. */

/** flush_received() - results of a report went into ->pending. */
void flush_received(flush_t *f);
/** flush_tick() - the flush interval passed. */
void flush_tick(flush_t *f);
/** flush_batch_done() - a submitted batch came back with @outcome. */
enum flush_done flush_batch_done(flush_t *f, flush_batch_t *b, enum batch_outcome outcome,
				 uint64_t now_ms);
/** flush_close() - shutting down: store everything, in flight or not. */
void flush_close(flush_t *f);
/** flush_finish() - shutdown is over: no more batches, whatever is pending. */
void flush_finish(flush_t *f);

/** flush_next() - the next action; for FLUSH_ACT_SUBMIT the batch in *@b. */
enum flush_act flush_next(flush_t *f, uint64_t now_ms, flush_batch_t *b);

/** flush_fold_step() - merge up to @budget keys of refused batches back. Return: merged. */
size_t flush_fold_step(flush_t *f, size_t budget);
/** flush_fold_all() - merge every refused key back now (the count at exit). */
void flush_fold_all(flush_t *f);

/** flush_folding() - refused keys are waiting for flush_fold_step(). */
static inline bool flush_folding(const flush_t *f)
{
	return f->fold.keys > 0;
}

/** flush_pending_keys() - keys not stored nor in flight: the map and those to fold. */
static inline size_t flush_pending_keys(const flush_t *f)
{
	return pending_keys(&f->pending) + f->fold.keys + f->agents.keys;
}

/** flush_pending_results() - results in flush_pending_keys(). */
static inline uint64_t flush_pending_results(const flush_t *f)
{
	return f->pending.n_results + f->fold.results + f->agents.results;
}

/** flush_oldest_ms() - when the oldest pending result arrived (upper bound on age), 0: none. */
static inline uint64_t flush_oldest_ms(const flush_t *f)
{
	uint64_t o = pending_oldest_ms(&f->pending);
	if (f->fold.keys && (!o || f->fold.oldest_ms < o))
		o = f->fold.oldest_ms;
	const rep_agent_t *a = agents_head(&f->agents); /* the oldest ready agent */
	if (a && (!o || a->first_ms < o))
		o = a->first_ms;
	return o;
}

/** flush_drained() - closing, and every key stored: nothing pending or in flight. */
static inline bool flush_drained(const flush_t *f)
{
	return f->closing && f->n_batches == 0 && flush_pending_keys(f) == 0;
}
