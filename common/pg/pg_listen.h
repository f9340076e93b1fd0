// SPDX-License-Identifier: MIT
// LISTEN on a PostgreSQL channel from a thread of its own; the loop hears
// about notifications (and reconnects, after which it must catch up) through
// a uv_async.
#pragma once

#include <stdbool.h>

#include <uv.h>

#include "metrics.h"

typedef struct pg_listen pg_listen_t;

/**
 * pg_listen_cb - on the loop thread. @reconnected: the LISTEN connection was
 * (re)established, so notifications may have been missed: check everything.
 * Several notifications may arrive as one call.
 */
typedef void (*pg_listen_cb)(void *user, bool reconnected);

typedef struct pg_listen_opts {
	const char *name;
	const char *conninfo;
	const char *channel;
	pg_listen_cb cb;
	void *user;
	metrics_t *metrics;
} pg_listen_opts_t;

int pg_listen_start(uv_loop_t *loop, const pg_listen_opts_t *opts, pg_listen_t **outp);
/** pg_listen_connected() - whether the LISTEN connection is up right now. */
bool pg_listen_connected(const pg_listen_t *l);
/** pg_listen_close() - stop the thread (off the loop); no callback runs after it; freed once closed. */
void pg_listen_close(pg_listen_t *l);
