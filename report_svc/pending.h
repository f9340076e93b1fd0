// SPDX-License-Identifier: MIT
// Results waiting for the database, coalesced by key: a key's counts add up,
// its latest status is kept. Memory grows with distinct keys, not with
// reports. No libuv, no clock of its own: callers pass now.
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

/** struct report_minute - additive counts of one history minute. */
typedef struct report_minute {
	uint32_t minute; /* unix seconds, a multiple of 60 */
	uint64_t succ;
	uint64_t err;
} report_minute_t;

typedef struct report_entry {
	report_key_t key;
	report_minute_t mins[PENDING_MINUTES]; /* what goes to the history */
	uint8_t n_mins;
	uint32_t succ;     /* of the latest report (by its ts) */
	uint32_t err;
	bool overload;
	uint32_t ts;       /* agent's unix seconds of the latest report */
	uint64_t first_ms;  /* when the oldest part of this entry arrived */
} report_entry_t;

typedef struct pending {
	report_entry_t *v; /* dense; handed out whole by pending_take */
	size_t n;
	size_t cap;
	uint32_t *index; /* open addressing: entry number + 1, 0 = empty */
	size_t index_cap;
	uint64_t n_results; /* results folded in since the last take */
	uint64_t oldest_ms; /* smallest first_ms of any entry, 0 when empty */
} pending_t;

void pending_init(pending_t *p);
void pending_deinit(pending_t *p);

/** pending_add() - fold one result in (arrived at @now_ms). */
void pending_add(pending_t *p, const report_key_t *key, uint32_t succ, uint32_t err,
		 bool overload, uint32_t ts, uint64_t now_ms);
/** pending_merge() - fold a whole entry back in (a batch the database refused);
 * the caller adds the batch's result count back to ->n_results. */
void pending_merge(pending_t *p, const report_entry_t *e);

/**
 * pending_take() - hand out every entry (caller frees it); @p is empty after.
 * *n_resultsp: how many results were folded into them.
 */
report_entry_t *pending_take(pending_t *p, size_t *np, uint64_t *n_resultsp);

/** pending_oldest_ms() - first_ms of the oldest entry, or 0 when empty. */
static inline uint64_t pending_oldest_ms(const pending_t *p)
{
	return p->oldest_ms;
}

static inline size_t pending_keys(const pending_t *p)
{
	return p->n;
}
