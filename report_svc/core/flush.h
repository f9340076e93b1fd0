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
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backoff.h"
#include "pending.h"

typedef struct flush_cfg {
	size_t batch_size;       /* pending keys that flush at once */
	size_t batch_keys;       /* most keys in one batch (one transaction) */
	unsigned max_batches;    /* batches in flight at once, shutdown aside */
	size_t max_pending_keys; /* at this many, pause the input */
	uint64_t seed;           /* for the backoff's jitter */
} flush_cfg_t;

/** struct flush_batch - keys to store in one transaction, oldest first. */
typedef struct flush_batch {
	report_entry_t *v;
	size_t n;
	uint64_t n_results; /* results folded into the entries */
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

/** flush_drained() - closing, and every key stored: nothing pending or in flight. */
static inline bool flush_drained(const flush_t *f)
{
	return f->closing && f->n_batches == 0 && pending_keys(&f->pending) == 0;
}
