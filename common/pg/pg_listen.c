// SPDX-License-Identifier: MIT
// LISTEN on a PostgreSQL channel from a thread of its own.
//
// The thread owns its PGconn: connect (with backoff), LISTEN, then poll() on
// the socket and a wake-up pipe, PQconsumeInput, drain PQnotifies. Events are
// flags under a mutex plus uv_async_send, so any number of notifications
// coalesce into one callback. Closing wakes the thread through the pipe and
// joins it from a helper thread, never on the loop.
#include "pg_listen.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "backoff.h"
#include "log.h"
#include "pg_worker.h"
#include "xalloc.h"

struct pg_listen {
	uv_async_t async;
	pg_listen_opts_t opts;
	char name[32];
	char *conninfo;
	char *channel;
	pthread_t thread;
	pthread_t joiner;
	int wake[2]; /* pipe: the loop wakes the thread to stop */
	pthread_mutex_t lock;
	bool stopping;
	bool joined;
	bool closing;
	bool ev_notified;
	bool ev_reconnected;
	_Atomic bool connected;
	struct {
		metrics_counter_t *notifies, *connects;
	} m;
};

/* Sleep up to @ms, or less if woken to stop. Returns true when stopping. */
static bool pg_listen_wait(pg_listen_t *l, int ms)
{
	struct pollfd p = { .fd = l->wake[0], .events = POLLIN };
	poll(&p, 1, ms);
	pthread_mutex_lock(&l->lock);
	bool stop = l->stopping;
	pthread_mutex_unlock(&l->lock);
	return stop;
}

static void pg_listen_signal(pg_listen_t *l, bool reconnected)
{
	pthread_mutex_lock(&l->lock);
	if (reconnected)
		l->ev_reconnected = true;
	else
		l->ev_notified = true;
	pthread_mutex_unlock(&l->lock);
	/* Fails only on a handle that is not an async one. */
	(void)uv_async_send(&l->async);
}

/* Connect and LISTEN; NULL on failure, with *standbyp set when the server
 * is a hot standby (LISTEN does not exist there: SQLSTATE 25006). */
static PGconn *pg_listen_connect(pg_listen_t *l, bool *standbyp)
{
	*standbyp = false;
	PGconn *conn = pg_open(l->conninfo, l->name, 5);
	if (PQstatus(conn) != CONNECTION_OK)
		goto fail;
	char *ident = PQescapeIdentifier(conn, l->channel, strlen(l->channel));
	if (!ident)
		goto fail;
	char sql[256];
	snprintf(sql, sizeof(sql), "LISTEN %s", ident);
	PQfreemem(ident);
	PGresult *res = PQexec(conn, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	*standbyp = !ok && state && strcmp(state, "25006") == 0;
	PQclear(res);
	if (!ok)
		goto fail;
	if (PQsetnonblocking(conn, 1) != 0)
		goto fail;
	return conn;
fail:
	log_debug("%s: LISTEN connection failed: %.*s", l->name,
		  (int)strcspn(PQerrorMessage(conn), "\n"), PQerrorMessage(conn));
	PQfinish(conn);
	return NULL;
}

static void *pg_listen_main(void *arg)
{
	pg_listen_t *l = arg;
	backoff_t backoff;
	bool down_logged = false, standby_logged = false;

	backoff_init(&backoff, 200, 5000, uv_hrtime() ^ (uintptr_t)l);
	while (!pg_listen_wait(l, 0)) {
		bool standby;
		PGconn *conn = pg_listen_connect(l, &standby);
		if (!conn) {
			/* A standby is a setup, not an outage: say so once. Trying
			 * again finds the server once it is promoted. */
			if (standby && !standby_logged)
				log_info("%s: the server is a hot standby, where LISTEN does not "
					 "exist: changes are followed by the version poll alone "
					 "(trying LISTEN again every few seconds)", l->name);
			else if (!standby && !down_logged)
				log_warn("%s: cannot LISTEN %s, retrying with backoff",
					 l->name, l->channel);
			if (standby)
				standby_logged = true;
			else
				down_logged = true;
			if (pg_listen_wait(l, (int)backoff_next(&backoff)))
				break;
			continue;
		}
		backoff_reset(&backoff);
		if (down_logged || standby_logged)
			log_info("%s: listening on channel %s %s", l->name, l->channel,
				 down_logged ? "again" : "(the server is a primary now)");
		down_logged = standby_logged = false;
		l->connected = true;
		metrics_inc(l->m.connects);
		/* Whatever happened while we were away is caught up by the loop. */
		pg_listen_signal(l, true);

		for (;;) {
			struct pollfd p[2] = {
				{ .fd = PQsocket(conn), .events = POLLIN },
				{ .fd = l->wake[0], .events = POLLIN },
			};
			int n = poll(p, 2, 10000);
			if (n < 0 && errno != EINTR)
				break;
			if (p[1].revents) /* stop */
				break;
			if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK) {
				log_warn("%s: LISTEN connection lost: %.*s", l->name,
					 (int)strcspn(PQerrorMessage(conn), "\n"),
					 PQerrorMessage(conn));
				break;
			}
			bool any = false;
			PGnotify *nt;
			while ((nt = PQnotifies(conn))) {
				any = true;
				metrics_inc(l->m.notifies);
				PQfreemem(nt);
			}
			if (any)
				pg_listen_signal(l, false);
		}
		l->connected = false;
		PQfinish(conn);
	}
	return NULL;
}

static void pg_listen_free(pg_listen_t *l)
{
	for (int i = 0; i < 2; i++)
		if (l->wake[i] >= 0)
			close(l->wake[i]);
	pthread_mutex_destroy(&l->lock);
	free(l->conninfo);
	free(l->channel);
	free(l);
}

static void pg_listen_on_closed(uv_handle_t *h)
{
	pg_listen_free(container_of((uv_async_t *)h, pg_listen_t, async));
}

static void pg_listen_on_async(uv_async_t *a)
{
	pg_listen_t *l = container_of(a, pg_listen_t, async);
	pthread_mutex_lock(&l->lock);
	bool notified = l->ev_notified, reconnected = l->ev_reconnected;
	bool joined = l->joined, stopping = l->stopping;
	l->ev_notified = l->ev_reconnected = false;
	pthread_mutex_unlock(&l->lock);
	if (joined) {
		if (!l->closing) {
			l->closing = true;
			pthread_join(l->joiner, NULL);
			uv_close((uv_handle_t *)&l->async, pg_listen_on_closed);
		}
		return;
	}
	/* After pg_listen_close() the owner may be gone: no more callbacks. */
	if ((notified || reconnected) && !stopping)
		l->opts.cb(l->opts.user, reconnected);
}

static void *pg_listen_joiner(void *arg)
{
	pg_listen_t *l = arg;
	pthread_join(l->thread, NULL);
	pthread_mutex_lock(&l->lock);
	l->joined = true;
	pthread_mutex_unlock(&l->lock);
	(void)uv_async_send(&l->async); /* as in pg_listen_signal() */
	return NULL;
}

/**
 * pg_listen_start() - LISTEN on @opts->channel from a thread of its own.
 * @loop: where @opts->cb runs.
 * @opts: copied.
 * @outp: gets the listener, only on success.
 *
 * Return: 0, or a negative errno (logged where it is ours to log); a
 * listener that failed frees itself (at once, or in its close callback).
 */
int pg_listen_start(uv_loop_t *loop, const pg_listen_opts_t *opts, pg_listen_t **outp)
{
	pg_listen_t *l = xcalloc(1, sizeof(*l));
	l->opts = *opts;
	snprintf(l->name, sizeof(l->name), "%s", opts->name ? opts->name : "listen");
	l->conninfo = xstrdup(opts->conninfo ? opts->conninfo : "");
	l->channel = xstrdup(opts->channel);
	pthread_mutex_init(&l->lock, NULL);
	if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK)) {
		int r = -errno;
		log_error("%s: cannot make the wake-up pipe: %s", l->name, strerror(-r));
		l->wake[0] = l->wake[1] = -1;
		pg_listen_free(l);
		return r;
	}
	char name[160];
	snprintf(name, sizeof(name), "lars_db_notifications_total{listener=\"%s\"}", l->name);
	l->m.notifies = metrics_counter(opts->metrics, name, "NOTIFY messages received");
	snprintf(name, sizeof(name), "lars_db_listen_connects_total{listener=\"%s\"}", l->name);
	l->m.connects = metrics_counter(opts->metrics, name, "LISTEN connections established");
	int r = uv_async_init(loop, &l->async, pg_listen_on_async);
	if (r) {
		log_error("%s: cannot create the async handle: %s", l->name, uv_err_name(r));
		pg_listen_free(l);
		return r;
	}
	r = pthread_create(&l->thread, NULL, pg_listen_main, l);
	if (r) {
		log_error("%s: cannot start the LISTEN thread: %s", l->name, strerror(r));
		l->joined = true;
		l->closing = true;
		uv_close((uv_handle_t *)&l->async, pg_listen_on_closed);
		return -r;
	}
	*outp = l;
	return 0;
}

bool pg_listen_connected(const pg_listen_t *l)
{
	return l->connected;
}

void pg_listen_close(pg_listen_t *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	bool again = l->stopping;
	l->stopping = true;
	pthread_mutex_unlock(&l->lock);
	if (again)
		return;
	if (write(l->wake[1], "x", 1) < 0 && errno != EAGAIN)
		log_warn("%s: cannot wake the LISTEN thread: %s", l->name, strerror(errno));
	int r = pthread_create(&l->joiner, NULL, pg_listen_joiner, l);
	if (r) {
		/* No helper thread: join here; the thread wakes within a poll. */
		pthread_join(l->thread, NULL);
		l->joined = true;
		l->closing = true;
		uv_close((uv_handle_t *)&l->async, pg_listen_on_closed);
	}
}
