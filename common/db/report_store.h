// SPDX-License-Identifier: MIT
// Writing coalesced results to PostgreSQL (DB worker threads only).
#pragma once

#include <stddef.h>

#include <libpq-fe.h>

#include "pending.h"

/**
 * report_store_batch() - one transaction: COPY the entries into a staging
 * table, then merge into host_status_history (counts added per minute) and
 * host_status (the report received last wins, by rx_us, whatever its ts).
 * Sorts @v by key, so concurrent batches lock rows in the same order.
 * *rowsp gets the number of history rows (entry, minute) written.
 * Return: 0; -ETIMEDOUT if a statement hit the statement timeout (SQLSTATE
 * 57014), else -EIO (nothing of the batch was written either way).
 */
int report_store_batch(PGconn *conn, report_entry_t *v, size_t n, size_t *rowsp);

/**
 * report_store_prune() - delete history older than @days, and any dated more
 * than @future_s ahead of the database's clock; *deletedp rows.
 */
int report_store_prune(PGconn *conn, int days, int future_s, long long *deletedp);
