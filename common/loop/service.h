// SPDX-License-Identifier: MIT
// What every Lars daemon shares: arguments, signals, readiness, shutdown.
#pragma once

#include <stdbool.h>

#include <uv.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

typedef struct service_args {
	const char *config;  /* -c FILE */
	int ready_fd;        /* --ready-fd N, -1 if not given */
	enum log_level level;
	bool level_given;    /* --log-level overrides the config */
} service_args_t;

/** struct service_common_cfg - keys every daemon has: [log] and [metrics]. */
typedef struct service_common_cfg {
	enum log_level log_level;
	int stats_interval; /* seconds between counter summaries in the log; 0 = off */
	bool metrics_enabled; /* with port 0: any free port (reported on --ready-fd) */
	char metrics_ip[64];
	int metrics_port;     /* non-zero: serve /metrics there */
	bool metrics_reuse_port; /* share the port (SO_REUSEPORT) */
} service_common_cfg_t;

int service_parse_log_level(const char *value, void *dst, const char **whyp);

/* Append to a service's config_key_t table. */
#define SERVICE_COMMON_KEYS(c)                                                 \
	CONFIG_KEY_FN("log", "level", &(c).log_level, service_parse_log_level), \
	CONFIG_KEY_INT("log", "stats_interval", &(c).stats_interval, 0, 86400), \
	CONFIG_KEY_BOOL("metrics", "enabled", &(c).metrics_enabled),           \
	CONFIG_KEY_STR("metrics", "ip", (c).metrics_ip),                       \
	CONFIG_KEY_INT("metrics", "port", &(c).metrics_port, 0, 65535),        \
	CONFIG_KEY_BOOL("metrics", "reuse_port", &(c).metrics_reuse_port)

/** service_common_defaults() - info logs, stats every 60 s, metrics off (127.0.0.1 when on). */
void service_common_defaults(service_common_cfg_t *c);

typedef struct service service_t;
typedef void (*service_stop_cb)(void *user);

/** struct service_flag - a boolean --option of one daemon; NULL name ends a table. */
typedef struct service_flag {
	const char *name; /* without the dashes: "wait-for-db" */
	bool *dst;
	const char *help;
} service_flag_t;

/**
 * service_parse_args() - "-c FILE [--ready-fd N] [--log-level L]" plus the
 * daemon's own boolean @flags (may be NULL).
 * Prints usage for --help / --version and bad arguments.
 * Return: 0 to run, 1 to exit successfully (help, version), -EINVAL.
 */
int service_parse_args(const char *prog, const char *summary,
		       const service_flag_t *flags, int argc, char **argv,
		       service_args_t *a);

/**
 * service_new() - signals on @loop: SIGINT/SIGTERM call @on_stop once (it must
 * close the service's own handles), SIGPIPE is ignored.
 */
int service_new(uv_loop_t *loop, const service_args_t *a, service_stop_cb on_stop,
		void *user, service_t **outp);
/**
 * service_apply_common() - set the log level (unless --log-level was given),
 * log @m's non-zero counters every stats_interval seconds and serve @m at
 * GET /metrics if [metrics] port is set or enabled = true. *portp gets its port, or 0. The timer and the
 * listener are closed by the shutdown.
 */
int service_apply_common(service_t *svc, const service_common_cfg_t *c,
			 metrics_t *m, int *portp);
/**
 * service_ready() - tell whoever waits that we serve: writes @line (e.g.
 * "tcp=7778 metrics=9100") and a newline to --ready-fd and closes it, and
 * sends READY=1 to systemd.
 */
void service_ready(service_t *svc, const char *line);
/** service_stop() - begin the graceful shutdown from code (as SIGTERM does). */
void service_stop(service_t *svc);
/** service_fail() - shut down because the service cannot work; service_run returns 1. */
void service_fail(service_t *svc);
/** service_ready_ports() - service_ready() of "@ports metrics=PORT". */
void service_ready_ports(service_t *svc, const char *ports);

/** service_start_fn - creates the daemon's own parts on @loop (0, or fail). */
typedef int (*service_start_fn)(uv_loop_t *loop, service_t *svc, metrics_t *m, void *user);

/**
 * service_main() - what every daemon's main() does once its configuration
 * is loaded: the loop, the metrics registry, signals, the [log] / [metrics]
 * keys of @common, then @start; runs until shutdown (which calls
 * @stop(@user)) and cleans up. Return: the process exit status.
 */
int service_main(const char *prog, const service_args_t *args,
		 const service_common_cfg_t *common, service_start_fn start,
		 service_stop_cb stop, void *user);

/**
 * service_run() - run the loop until the service stopped, close whatever
 * handles remain and close the loop; frees @svc.
 * Return: 0 on a clean shutdown, 1 otherwise.
 */
int service_run(service_t *svc);
