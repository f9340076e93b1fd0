// SPDX-License-Identifier: MIT
// Writing coalesced results to PostgreSQL (DB worker threads only).
#pragma once

#include <stddef.h>

#include <libpq-fe.h>

#include "pending.h"

/**
 * report_store_batch() - one transaction: lock the rows of report_agent_seq
 * of the @n_agents acknowledged agents whose parts of @v @agents describes
 * (in id order); drop the part of any agent whose stored seq is at or above
 * its min_seq (another instance stored it), setting ->dropped and ->stored
 * to what is stored; COPY the rest into a staging table, then merge into
 * host_status_history (counts and latency added per minute, a key and minute
 * twice in @v summed) and host_status (the report received last wins, by
 * rx_us, whatever its ts); set each agent kept to ->stored (its max_seq, or
 * more if stored so already). Rows are merged in key order, so concurrent
 * batches lock alike. *rowsp gets the number of history rows (entry,
 * minute) written. @v is not changed.
 * Return: 0 (->stored and ->dropped are what is committed); -ETIMEDOUT if a
 * statement hit the statement timeout (SQLSTATE 57014), else -EIO (nothing
 * of the batch was written either way).
 */
int report_store_batch(PGconn *conn, report_entry_t *v, size_t n,
		       report_agent_seq_t *agents, size_t n_agents, size_t *rowsp);

/* Days of history partitions created ahead of today (UTC). */
#define REPORT_PARTITIONS_AHEAD 3

/* What one report_store_prune() did. */
typedef struct report_prune {
	long long rows; /* history rows removed */
	int created;    /* day partitions created */
	int dropped;    /* day partitions dropped */
} report_prune_t;

/**
 * report_store_prune() - history housekeeping (deploy/sql/007): create the
 * day partitions of today and the next REPORT_PARTITIONS_AHEAD days, drop
 * the days wholly older than @days (retention in whole days), delete expired
 * rows of the DEFAULT partition and any row dated more than @future_s ahead
 * of the database's clock. Safe with several reporters (an advisory lock).
 */
int report_store_prune(PGconn *conn, int days, int future_s, report_prune_t *out);
