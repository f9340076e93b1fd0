// SPDX-License-Identifier: MIT
// Results waiting for the database, coalesced by key: a key's counts add up,
// the status of its latest *received* report is kept. Memory grows with
// distinct keys, not with reports. Batches leave oldest first and capped in
// size (pending_take_batch), and batch_cap_t decides that size. No libuv, no
// clock of its own: callers pass now.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct report_key {
	int32_t modid;
	int32_t cmdid;
	int32_t ip;     /* wire form */
	int32_t port;
	int32_t caller; /* wire form */
} report_key_t;

/* History minutes one entry keeps apart; more fold into the newest two. */
#define PENDING_MINUTES 4

/* Latency buckets of a minute: MSG_LAT_BUCKETS (common/wire/msg.h). */
#define REPORT_LAT_BUCKETS 13

/** struct report_minute - additive counts of one history minute. */
typedef struct report_minute {
	uint32_t minute; /* unix seconds, a multiple of 60 */
	uint64_t succ;
	uint64_t err;
	uint64_t lat_count;  /* calls with a duration; 0: no latency below */
	uint64_t lat_sum_us;
	uint32_t lat_buckets[REPORT_LAT_BUCKETS];
} report_minute_t;

/**
 * struct report_add - one result as it goes into the map: @succ/@err go to
 * the history (a difference for a running total), @st_succ/@st_err are the
 * status (as the report said), the latency is added when @lat_count.
 */
typedef struct report_add {
	uint64_t succ;
	uint64_t err;
	uint32_t st_succ;
	uint32_t st_err;
	bool overload;
	uint64_t lat_count;
	uint64_t lat_sum_us;
	const uint32_t *lat_buckets; /* REPORT_LAT_BUCKETS of them, or NULL */
} report_add_t;

/**
 * struct report_agent_seq - one agent's part of a batch: its entries
 * v[first .. first + n), the messages min_seq .. max_seq they hold. The
 * store fills @stored (the seq stored for it after the commit) and
 * @dropped (another instance had stored min_seq already: nothing applied).
 */
typedef struct report_agent_seq {
	uint64_t agent_id;
	int32_t caller; /* wire form */
	uint64_t min_seq;
	uint64_t max_seq;
	size_t first;
	size_t n;
	uint64_t n_results;
	uint64_t stored;
	bool dropped;
} report_agent_seq_t;

typedef struct report_entry {
	report_key_t key;
	report_minute_t mins[PENDING_MINUTES]; /* what goes to the history */
	uint8_t n_mins;
	uint32_t succ;     /* of the latest report received */
	uint32_t err;
	bool overload;
	uint32_t ts;       /* agent's unix seconds of that report (as admitted) */
	uint64_t rx_us;    /* when we received it: orders status rows, not ts */
	uint64_t n_results; /* results folded into this entry */
	uint64_t first_ms;  /* when the oldest part of this entry arrived */
} report_entry_t;

/*
 * The map takes new results; when the backlog is used up, the whole map
 * moves into it (no copy) and batches are cut from its front, so results
 * leave in the order they arrived and a long outage drains in capped
 * batches instead of one huge one.
 */
typedef struct pending {
	report_entry_t *v; /* the map: dense entries */
	size_t n;
	size_t cap;
	uint32_t *index; /* open addressing: entry number + 1, 0 = empty */
	size_t index_cap;
	uint64_t oldest_ms; /* smallest first_ms in the map, 0 when empty */
	report_entry_t *bl; /* the backlog: batches are cut from bl[bl_pos] on */
	size_t bl_n;
	size_t bl_pos;
	uint64_t bl_oldest_ms; /* the map's oldest_ms when it became the backlog */
	uint64_t n_results; /* results in the map and the backlog */
} pending_t;

void pending_init(pending_t *p);
void pending_deinit(pending_t *p);

/**
 * pending_add() - fold one result in (arrived at @now_ms, monotonic). @rx_us
 * is the receive order (wall-clock microseconds, increasing): the entry's
 * status becomes this result's, whatever its @ts says.
 */
void pending_add(pending_t *p, const report_key_t *key, uint32_t succ, uint32_t err,
		 bool overload, uint32_t ts, uint64_t rx_us, uint64_t now_ms);
/** pending_add_full() - as pending_add(), history counts apart from the status, latency too. */
void pending_add_full(pending_t *p, const report_key_t *key, const report_add_t *a,
		      uint32_t ts, uint64_t rx_us, uint64_t now_ms);
/** pending_merge() - fold a whole entry back in (a batch the database refused),
 * its results counted again; its status wins only if received later. */
void pending_merge(pending_t *p, const report_entry_t *e);

/**
 * pending_take_batch() - up to @max entries (at least 1 if any), oldest
 * first; the caller frees the array. *n_resultsp: results folded into them.
 * Return: NULL with *np = 0 when nothing is pending.
 */
report_entry_t *pending_take_batch(pending_t *p, size_t max, size_t *np,
				   uint64_t *n_resultsp);
/** pending_take() - every entry (caller frees it); @p is empty after. */
report_entry_t *pending_take(pending_t *p, size_t *np, uint64_t *n_resultsp);

/** pending_oldest_ms() - first_ms of the oldest entry, or 0 when empty. While
 * a backlog drains this is when the backlog's oldest arrived (an upper bound
 * on the age). */
static inline uint64_t pending_oldest_ms(const pending_t *p)
{
	uint64_t o = p->oldest_ms;
	if (p->bl_pos < p->bl_n && (!o || p->bl_oldest_ms < o))
		o = p->bl_oldest_ms;
	return o;
}

static inline size_t pending_keys(const pending_t *p)
{
	return p->n + (p->bl_n - p->bl_pos);
}

/*
 * Batch size. A batch has at most ->max keys ([reporter] batch_keys). A
 * batch that hit the statement timeout is split: the next batches are half
 * its size, again for each one that times out, down to one key. The size
 * grows back (doubling) after BATCH_CAP_GROW_AFTER batches in a row stored
 * at the current size, and returns to ->max once nothing is pending.
 */
#define BATCH_CAP_GROW_AFTER 16

typedef struct batch_cap {
	size_t max;
	size_t cur;
	unsigned n_ok; /* batches stored in a row at ->cur */
} batch_cap_t;

enum batch_outcome {
	BATCH_STORED,
	BATCH_TIMED_OUT, /* SQLSTATE 57014: the statement timeout */
	BATCH_FAILED,    /* anything else: retried whole, with backoff */
	BATCH_CANCELLED, /* never ran (shutdown): retried whole, size untouched */
};

void batch_cap_init(batch_cap_t *c, size_t max);
/** batch_cap_size() - keys for the next batch (with @pending keys waiting). */
size_t batch_cap_size(const batch_cap_t *c, size_t pending);
/**
 * batch_cap_done() - a batch of @n keys came back with @outcome, @pending
 * keys now waiting.
 * Return: true if the retry should wait for the backoff (a failure, a
 * cancelled batch, or a batch of a single key that still timed out), false
 * to go on at once.
 */
bool batch_cap_done(batch_cap_t *c, size_t n, enum batch_outcome outcome, size_t pending);
