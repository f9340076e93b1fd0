// SPDX-License-Identifier: MIT
// Route propagation in PostgreSQL (issue 20.3, migration 009): lars-dns's
// connections and the propagation of pushed changes, written by lars-dns,
// read by larsctl and lars-admin. Synchronous on a PGconn.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "agents.h"

/** struct prop_agent_row - one live connection of a lars-dns. */
typedef struct prop_agent_row {
	uint64_t conn_id;
	char peer[64];
	bool acks;            /* sent AgentHello */
	uint64_t agent_id;
	char host_name[65];
	int32_t caller;       /* wire form; 0 = not known */
	int64_t connected_unix;
	uint32_t subscriptions;
	int64_t acked_version;
	int64_t last_ack_unix; /* 0 = never */
	uint32_t pending;
	uint64_t lag_ms;
} prop_agent_row_t;

/**
 * prop_store() - replace @instance's connection rows with @rows, upsert
 * the changes @props, and remove what expired: connection rows of any
 * lars-dns not written for @ttl_s seconds, propagation rows older than
 * @keep_days days. One transaction.
 * Return: 0, -EROFS on a hot standby (nothing written), or -EIO (logged).
 */
int prop_store(PGconn *conn, const char *instance, const prop_agent_row_t *rows, size_t n,
	       const da_prop_t *props, size_t n_props, int ttl_s, int keep_days);
