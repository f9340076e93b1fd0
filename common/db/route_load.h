// SPDX-License-Identifier: MIT
// Reading routes from PostgreSQL into snapshots. Runs on DB worker threads
// only; never touches the loop.
#pragma once

#include <libpq-fe.h>

#include "snapshot.h"

/** route_version_read() - the route version (0 before the first change), or -EIO. */
int route_version_read(PGconn *conn, int64_t *versionp);

/**
 * route_load_full() - every route, in one consistent read.
 * Return: 0 with *outp set, or -EIO / -ENOTCONN.
 */
int route_load_full(PGconn *conn, snapshot_t **outp);

/** route_prune_changes() - drop route_change rows older than @days (none on a standby, which cannot write). */
int route_prune_changes(PGconn *conn, int days, long long *deletedp);

/**
 * route_load_changes() - bring @old up to date. Cheap when nothing changed
 * (one version read); otherwise loads only the keys the change log names, or
 * everything when the log cannot explain the version gap. @changed gets the
 * keys whose host lists differ from @old.
 * Return: 0 with *outp a new snapshot, or NULL if @old is current; -EIO.
 */
int route_load_changes(PGconn *conn, const snapshot_t *old, snapshot_t **outp,
		       snap_keys_t *changed, bool *fullp);
