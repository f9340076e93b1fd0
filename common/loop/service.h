// SPDX-License-Identifier: MIT
// What every Lars daemon shares: arguments, configuration, signals,
// readiness, shutdown. A daemon is a service_def_t run by service_main().
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "service_check.h"

typedef struct service service_t;

/** struct service_common_cfg - keys every daemon has: [log] and [metrics]. */
typedef struct service_common_cfg {
	enum log_level log_level;
	int stats_interval; /* seconds between counter summaries in the log; 0 = off */
	bool metrics_enabled; /* with port 0: any free port (reported on --ready-fd) */
	char metrics_ip[64];
	int metrics_port;     /* non-zero: serve /metrics there; -1 before loading (not set) */
	bool metrics_reuse_port; /* share the port (SO_REUSEPORT) */
} service_common_cfg_t;

/** struct service_flag - a boolean --option of one daemon; NULL name ends a table. */
typedef struct service_flag {
	const char *name; /* without the dashes: "wait-for-db" */
	bool *dst;
	const char *help;
} service_flag_t;

/**
 * service_start_fn - create the daemon's part on @loop from @cfg (the
 * definition's, loaded and checked). Return: 0 and *@objp set, or a negative
 * errno with nothing left behind (*@objp untouched).
 */
typedef int (*service_start_fn)(uv_loop_t *loop, service_t *svc, void *cfg, metrics_t *m,
				void **objp);
/** service_stop_fn - begin closing what start made (it frees itself once closed). */
typedef void (*service_stop_fn)(void *obj);

/**
 * struct service_def - one daemon. Its configuration lives in static
 * storage of its main.c, so @keys, @flags, @common and @cfg point into it.
 * @name:     program name: usage, --version, "NAME stopped".
 * @summary:  one line printed under the usage.
 * @flags:    the daemon's own boolean --options, or NULL.
 * @keys:     its configuration keys; [log] and [metrics] are added here.
 * @common:   where the [log] / [metrics] keys go (set to their defaults).
 * @cfg:      passed to @defaults, @check and @start.
 * @conninfo: if not NULL, a configuration file holding a password that
 *            others may read is refused (config_check_secret()).
 * @defaults: optional, before loading: defaults a static initialiser cannot give.
 * @check:    optional, after loading: 0, or -EINVAL after logging why (exit 2).
 * @self_check: optional, for --check after @check: the daemon's listen
 *            addresses (service_check_listen()) and, when chk->connect, its
 *            database and upstreams; each problem through service_check_*().
 * @metrics_port: this daemon's fixed metrics port (deploy/README.md): what
 *            [metrics] enabled = true serves on when no port is set.
 * @cfg_size: sizeof(*@cfg); with it SIGHUP reloads the file (else only
 *            [log] level is reloaded... from a file that must still parse).
 * @reloadable: NULL-terminated "section" or "section name" entries a SIGHUP
 *            applies (with @reload); any other key that changed is named in
 *            the log as needing a restart. [log] level is always reloaded.
 * @reload:   optional: apply the @reloadable values of @cfg (the new file,
 *            loaded and checked) to what @start made; logs what it changed.
 * @start:    creates the daemon's part; it reports readiness itself.
 * @stop:     on SIGTERM / SIGINT (or service_stop()) with what @start made.
 */
typedef struct service_def {
	const char *name;
	const char *summary;
	const service_flag_t *flags;
	const config_key_t *keys;
	size_t n_keys;
	service_common_cfg_t *common;
	void *cfg;
	const char *conninfo;
	void (*defaults)(void *cfg);
	int (*check)(void *cfg, const char *path);
	void (*self_check)(void *cfg, service_check_t *chk);
	size_t cfg_size;
	int metrics_port;  /* the fixed port of [metrics] enabled = true without a port */
	const char *const *reloadable;
	void (*reload)(void *obj, const void *cfg);
	service_start_fn start;
	service_stop_fn stop;
} service_def_t;

/**
 * SERVICE_PART() - the start and stop of a service_def_t for a daemon that
 * is one object: `int new_fn(loop, svc, cfg, metrics, ready_fn, svc, &obj)`
 * and `void close_fn(obj)`. Defines service_part_start and service_part_stop.
 */
#define SERVICE_PART(type, new_fn, close_fn, ready_fn)                              \
	static int service_part_start(uv_loop_t *loop_, service_t *svc_, void *cfg_, \
				      metrics_t *m_, void **objp_)                    \
	{                                                                             \
		type *obj_ = NULL;                                                    \
		int r_ = new_fn(loop_, svc_, cfg_, m_, ready_fn, svc_, &obj_);        \
		if (r_ == 0) /* constructors set obj_ on success only */              \
			*objp_ = obj_;                                                \
		return r_;                                                            \
	}                                                                             \
	static void service_part_stop(void *obj_)                                     \
	{                                                                             \
		close_fn(obj_);                                                       \
	}

/**
 * service_main() - run the daemon @def: "-c FILE [--ready-fd N] [--log-level L]"
 * and its flags, configuration, log, signals, stats, /metrics and the
 * loop-lag timer (lars_loop_lag_seconds, lars_loop_lag_max_seconds), then
 * @def->start, the loop until SIGTERM / SIGINT, @def->stop, and the close.
 * Return: the exit status: 0 (clean shutdown, --help, --version), 1 (the
 * service failed), 2 (bad arguments or configuration).
 */
int service_main(const service_def_t *def, int argc, char **argv);

/**
 * service_ready() - tell whoever waits that we serve: writes @line (e.g.
 * "tcp=7778 metrics=9100") and a newline to --ready-fd and closes it, and
 * sends READY=1 to systemd.
 */
void service_ready(service_t *svc, const char *line);
/**
 * service_ready_fn - whether the service can serve now (GET /readyz on the
 * metrics listener): true, or false with a reason in @why.
 */
typedef bool (*service_ready_fn)(void *arg, char *why, size_t cap);
/**
 * service_set_ready_check() - /readyz answers 200 once service_ready() was
 * called and while @fn says yes (NULL: always), 503 with the reason
 * otherwise; /healthz answers 200 while the loop runs.
 */
void service_set_ready_check(service_t *svc, service_ready_fn fn, void *arg);

/** service_ready_ports() - service_ready() of "@ports metrics=PORT". */
void service_ready_ports(service_t *svc, const char *ports);
/** service_on_ready_ports() - service_ready_ports() as a callback with @svc as its user. */
void service_on_ready_ports(void *svc, const char *ports);
/** service_on_ready_tcp() - service_ready_ports() of "tcp=@port", as a callback. */
void service_on_ready_tcp(void *svc, int port);
/** service_stop() - begin the graceful shutdown from code (as SIGTERM does). */
void service_stop(service_t *svc);
/**
 * service_need_fds() - raise the open-file soft limit for @n connections (up
 * to the hard limit); warns naming @why ("[dns] max_conns") if that is short.
 */
void service_need_fds(unsigned n, const char *why);
/** service_fail() - shut down because the service cannot work; exit status 1. */
void service_fail(service_t *svc);
