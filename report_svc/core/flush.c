// SPDX-License-Identifier: MIT
// lars-reporter's flush policy: batches, fold-back, backoff, backpressure.
#include "flush.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

#define FLUSH_BACKOFF_BASE_MS 200
#define FLUSH_BACKOFF_MAX_MS 5000
#define FLUSH_BEHIND_LOG_MS 10000 /* "still behind" at most this often */

/**
 * flush_init() - an empty policy for @cfg; the backoff starts at 200 ms and
 * doubles up to 5 s. Undo with flush_deinit().
 */
void flush_init(flush_t *f, const flush_cfg_t *cfg)
{
	*f = (flush_t){ .cfg = *cfg };
	pending_init(&f->pending);
	agents_init(&f->agents);
	batch_cap_init(&f->cap, cfg->batch_keys);
	backoff_init(&f->backoff, FLUSH_BACKOFF_BASE_MS, FLUSH_BACKOFF_MAX_MS, cfg->seed);
}

/**
 * flush_deinit() - free what is pending, refused batches not yet folded
 * back included. Batches in flight belong to whoever holds them
 * (flush_batch_done() takes them back).
 */
void flush_deinit(flush_t *f)
{
	for (size_t i = 0; i < f->fold.n; i++)
		free(f->fold.v[i].v);
	free(f->fold.v);
	f->fold.v = NULL;
	f->fold.n = f->fold.cap = f->fold.pos = f->fold.keys = 0;
	f->fold.results = 0;
	pending_deinit(&f->pending);
	agents_deinit(&f->agents);
}

static void flush_log_behind(flush_t *f, uint64_t now_ms, const char *what)
{
	uint64_t oldest = flush_oldest_ms(f);
	log_warn("reporter: %s; %zu keys (%llu results) pending, oldest %.1f s, "
		 "%u batches in flight (%zu keys, %llu results)",
		 what, flush_pending_keys(f),
		 (unsigned long long)flush_pending_results(f),
		 oldest ? (double)(now_ms - oldest) / 1000 : 0.0, f->n_batches,
		 f->inflight_keys, (unsigned long long)f->inflight_results);
	f->last_behind_log_ms = now_ms;
}

/**
 * flush_received() - results of one report were added to @f->pending. A
 * flush follows if batch_size keys are pending, then the input is paused if
 * max_pending_keys still are.
 */
void flush_received(flush_t *f)
{
	if (flush_pending_keys(f) >= f->cfg.batch_size)
		f->want_flush = true;
	f->want_pause_check = true;
}

/**
 * flush_tick() - the flush interval passed: flush what is pending (all of it
 * when closing), as far as the in-flight limit and the backoff allow. While
 * the database refuses batches, says how far behind we are every 10 s.
 */
void flush_tick(flush_t *f)
{
	f->want_flush = true;
	f->want_behind_log = true;
}

/*
 * A batch that was not stored goes back, counts and all: queued whole (it
 * owns @b->v now), merged into the map by flush_fold_step() or handed out
 * again first by flush_next(), whichever comes to each entry first.
 */
static void flush_fold_back(flush_t *f, flush_batch_t *b)
{
	if (b->n == 0) {
		free(b->v);
		return;
	}
	if (f->fold.n == f->fold.cap) {
		f->fold.cap = f->fold.cap ? 2 * f->fold.cap : 4;
		f->fold.v = xreallocarray(f->fold.v, f->fold.cap, sizeof(*f->fold.v));
	}
	if (!f->fold.keys || b->oldest_ms < f->fold.oldest_ms)
		f->fold.oldest_ms = b->oldest_ms;
	f->fold.v[f->fold.n++] = *b;
	f->fold.keys += b->n;
	f->fold.results += b->n_results;
}

/* The first queued batch is used up: gone from the queue. */
static void fold_pop(flush_t *f)
{
	free(f->fold.v[0].v);
	memmove(&f->fold.v[0], &f->fold.v[1], (f->fold.n - 1) * sizeof(*f->fold.v));
	f->fold.n--;
	f->fold.pos = 0;
}

/* The next batch from the queue: up to @max keys of its first batch. */
static void fold_take(flush_t *f, size_t max, flush_batch_t *b)
{
	flush_batch_t *h = &f->fold.v[0];
	size_t k = h->n - f->fold.pos;
	if (max < 1)
		max = 1;
	if (k > max)
		k = max;
	if (f->fold.pos == 0 && k == h->n) {
		*b = *h; /* whole: no copy */
		h->v = NULL;
		fold_pop(f);
	} else {
		*b = (flush_batch_t){ .v = xreallocarray(NULL, k, sizeof(*b->v)), .n = k,
				      .oldest_ms = h->oldest_ms };
		memcpy(b->v, h->v + f->fold.pos, k * sizeof(*b->v));
		for (size_t i = 0; i < k; i++)
			b->n_results += b->v[i].n_results;
		f->fold.pos += k;
		if (f->fold.pos == h->n)
			fold_pop(f);
	}
	f->fold.keys -= k;
	f->fold.results -= b->n_results;
}

/* What a batch coming back (or a fold-back done) decides: resume, flush. */
static void flush_after_return(flush_t *f)
{
	if (!f->closing && f->paused &&
	    flush_pending_keys(f) < f->cfg.max_pending_keys * 9 / 10)
		f->want_resume = true;
	if (f->closing ? !f->finished : flush_pending_keys(f) >= f->cfg.batch_size)
		f->want_flush = true;
}

/**
 * flush_fold_step() - merge up to @budget keys of the batches that came back
 * unstored into the map, oldest first, counts and all. Once the last one is
 * merged, resuming and flushing are decided again (call flush_next()).
 * Return: the keys merged (0: nothing was waiting).
 */
size_t flush_fold_step(flush_t *f, size_t budget)
{
	size_t done = 0;
	while (f->fold.n && done < budget) {
		flush_batch_t *h = &f->fold.v[0];
		size_t k = h->n - f->fold.pos;
		if (k > budget - done)
			k = budget - done;
		for (size_t i = 0; i < k; i++) {
			const report_entry_t *e = &h->v[f->fold.pos + i];
			pending_merge(&f->pending, e); /* its results count there now */
			f->fold.results -= e->n_results;
		}
		f->fold.pos += k;
		f->fold.keys -= k;
		done += k;
		if (f->fold.pos == h->n)
			fold_pop(f);
	}
	if (done && !f->fold.keys)
		flush_after_return(f);
	return done;
}

/**
 * flush_fold_all() - merge every key still waiting to be folded back, in one
 * call: for the exact count of what is left at exit, when nothing else
 * waits on the loop any more.
 */
void flush_fold_all(flush_t *f)
{
	flush_fold_step(f, SIZE_MAX);
}

/**
 * flush_batch_done() - the batch @b that flush_next() handed out came back
 * with @outcome at @now_ms. Stored: the backoff resets. Timed out (and more
 * than one key): folded back and cut in halves, at once. Otherwise folded
 * back, and no batch goes before the backoff's delay (->retry_at_ms). A
 * paused input resumes once fewer than 9/10 of max_pending_keys are pending.
 * Folded back means queued for flush_fold_step() (see flush.h): its keys
 * count as pending from now on.
 *
 * Return: what became of the batch. @b->v is freed or queued, @b emptied.
 */
enum flush_done flush_batch_done(flush_t *f, flush_batch_t *b, enum batch_outcome outcome,
				 uint64_t now_ms)
{
	enum flush_done done;

	f->n_batches--;
	f->inflight_keys -= b->n;
	f->inflight_results -= b->n_results;
	/* The acknowledged agents' parts go back to them, stored or not. */
	uint64_t agent_results = 0;
	for (size_t i = 0; i < b->n_agents; i++) {
		agents_back(&f->agents, &b->agents[i], b->v, outcome == BATCH_STORED, now_ms);
		agent_results += b->agents[i].n_results;
	}
	/* What can be cut apart: the other keys one by one, an agent whole. */
	size_t units = b->n_anon + b->n_agents, n = units <= 1 ? 1 : b->n;
	size_t n_keys = b->n;
	uint64_t n_results = b->n_results;
	free(b->agents);
	b->agents = NULL;
	b->n_agents = 0;
	b->n = b->n_anon; /* what a fold-back takes */
	b->n_results -= agent_results;
	if (outcome == BATCH_STORED) {
		batch_cap_done(&f->cap, n, BATCH_STORED, flush_pending_keys(f));
		backoff_reset(&f->backoff);
		f->retry_at_ms = 0;
		if (f->failing) {
			log_info("reporter: database writes work again");
			f->failing = false;
		}
		done = FLUSH_DONE_STORED;
	} else if (outcome == BATCH_TIMED_OUT && !f->finished &&
		   !batch_cap_done(&f->cap, n, BATCH_TIMED_OUT, flush_pending_keys(f))) {
		/* Too big for the statement timeout: retried at once in halves. */
		log_warn("reporter: a batch of %zu keys (%llu results) hit the statement "
			 "timeout; retrying in batches of %zu keys", n_keys,
			 (unsigned long long)n_results, f->cap.cur);
		flush_fold_back(f, b);
		done = FLUSH_DONE_SPLIT;
	} else {
		/* Nothing of it was written: fold it back, try again later. */
		flush_fold_back(f, b);
		if (outcome == BATCH_FAILED)
			batch_cap_done(&f->cap, n, BATCH_FAILED, flush_pending_keys(f));
		f->retry_at_ms = now_ms + backoff_next(&f->backoff);
		if (!f->failing)
			flush_log_behind(f, now_ms, outcome == BATCH_CANCELLED
				? "batch cancelled" : "cannot store a batch, retrying with backoff");
		else if (now_ms - f->last_behind_log_ms >= FLUSH_BEHIND_LOG_MS)
			flush_log_behind(f, now_ms, "still behind");
		f->failing = outcome != BATCH_CANCELLED;
		done = FLUSH_DONE_RETRY;
	}
	if (done == FLUSH_DONE_STORED)
		free(b->v); /* otherwise the fold-back queue owns it */
	*b = (flush_batch_t){ 0 };
	flush_after_return(f);
	return done;
}

/**
 * flush_close() - shutting down: from now on every flush takes all that is
 * pending (the in-flight limit no longer applies) and the backoff is
 * forgotten once. flush_drained() says when everything is stored.
 */
void flush_close(flush_t *f)
{
	f->closing = true;
	f->retry_at_ms = 0;
	f->want_flush = true;
}

/**
 * flush_finish() - the shutdown flush is over (stored, or out of time): no
 * batch leaves any more; those in flight still come back to
 * flush_batch_done() and are folded back.
 */
void flush_finish(flush_t *f)
{
	f->finished = true;
	f->want_flush = false;
}

/* Keys a batch can take now: any but those of agents with a batch in flight. */
static bool flush_cuttable(const flush_t *f)
{
	return pending_keys(&f->pending) || f->fold.keys || agents_ready(&f->agents);
}

/* The ready agent @i places after the queue's head. */
static const rep_agent_t *ready_at(const rep_agents_t *ag, size_t i)
{
	return ag->ring[(ag->r_head + i) % ag->r_cap];
}

/*
 * The next batch, at most @max keys: refused keys first, then the map (as
 * before acknowledgements), and whole ready agents, oldest first; an agent
 * with more than @max keys goes alone. Whichever is older fills first.
 */
static void flush_cut(flush_t *f, size_t max, flush_batch_t *b)
{
	*b = (flush_batch_t){ 0 };
	size_t anon = pending_keys(&f->pending) + f->fold.keys;
	uint64_t anon_oldest = pending_oldest_ms(&f->pending);
	if (f->fold.keys && (!anon_oldest || f->fold.oldest_ms < anon_oldest))
		anon_oldest = f->fold.oldest_ms;
	const rep_agent_t *h = agents_head(&f->agents);
	bool agents_first = h && (!anon || h->first_ms <= anon_oldest);
	size_t room = agents_first ? max : max > anon ? max - anon : 0;
	size_t n_ag = 0, ag_keys = 0;
	uint64_t ag_oldest = 0;
	while (n_ag < agents_ready(&f->agents)) {
		const rep_agent_t *a = ready_at(&f->agents, n_ag);
		size_t k = pending_keys(&a->pending);
		if (ag_keys + k > room && (n_ag || !agents_first))
			break;
		if (!ag_oldest || a->first_ms < ag_oldest)
			ag_oldest = a->first_ms;
		ag_keys += k;
		n_ag++;
		if (ag_keys >= room)
			break;
	}
	size_t anon_max = max > ag_keys ? max - ag_keys : 0;
	if (anon && anon_max) {
		if (f->fold.keys) {
			fold_take(f, anon_max, b); /* refused keys go first, unmerged */
		} else {
			b->oldest_ms = pending_oldest_ms(&f->pending);
			b->v = pending_take_batch(&f->pending, anon_max, &b->n, &b->n_results);
		}
	}
	b->n_anon = b->n;
	if (!n_ag)
		return;
	size_t cap = b->n;
	b->agents = xcalloc(n_ag, sizeof(*b->agents));
	for (size_t i = 0; i < n_ag; i++) {
		agents_take_head(&f->agents, &b->v, &b->n, &cap, &b->agents[i]);
		b->n_results += b->agents[i].n_results;
	}
	b->n_agents = n_ag;
	if (!b->oldest_ms || ag_oldest < b->oldest_ms)
		b->oldest_ms = ag_oldest;
}

/**
 * flush_next() - the next thing to do after an event: resume the input, then
 * submit batches, then pause the input, in the order the event asks for.
 * @now_ms: the caller's clock (for the backoff).
 * @b: filled for FLUSH_ACT_SUBMIT; the caller owns the batch until it hands
 * it to flush_batch_done().
 *
 * Return: the action, FLUSH_ACT_NONE once there is nothing left to do.
 */
enum flush_act flush_next(flush_t *f, uint64_t now_ms, flush_batch_t *b)
{
	if (f->want_resume) {
		f->want_resume = false;
		if (f->paused) {
			f->paused = false;
			return FLUSH_ACT_RESUME;
		}
	}
	if (f->want_flush) {
		size_t keys = flush_pending_keys(f);
		if ((keys || agents_ready(&f->agents)) && flush_cuttable(f) && !f->finished &&
		    now_ms >= f->retry_at_ms &&
		    (f->closing || f->n_batches < f->cfg.max_batches)) {
			flush_cut(f, batch_cap_size(&f->cap, keys ? keys : 1), b);
			f->n_batches++;
			f->inflight_keys += b->n;
			f->inflight_results += b->n_results;
			return FLUSH_ACT_SUBMIT;
		}
		f->want_flush = false;
	}
	if (f->want_pause_check) {
		f->want_pause_check = false;
		if (!f->paused && flush_pending_keys(f) >= f->cfg.max_pending_keys) {
			log_warn("reporter: %zu keys pending (max_pending_keys): not reading "
				 "from agents until the database catches up",
				 flush_pending_keys(f));
			f->paused = true;
			return FLUSH_ACT_PAUSE;
		}
	}
	if (f->want_behind_log) {
		f->want_behind_log = false;
		agents_sweep(&f->agents, now_ms); /* on the tick: idle agents forgotten */
		if (f->failing && now_ms - f->last_behind_log_ms >= FLUSH_BEHIND_LOG_MS)
			flush_log_behind(f, now_ms, "still behind");
	}
	return FLUSH_ACT_NONE;
}
