// SPDX-License-Identifier: MIT
// What every Lars daemon shares: arguments, signals, readiness, shutdown.
#pragma once

#include <stdbool.h>

#include <uv.h>

#include "log.h"

typedef struct service_args {
	const char *config;  /* -c FILE */
	int ready_fd;        /* --ready-fd N, -1 if not given */
	enum log_level level;
	bool level_given;    /* --log-level overrides the config */
} service_args_t;

typedef struct service service_t;
typedef void (*service_stop_cb)(void *user);

/**
 * service_parse_args() - "-c FILE [--ready-fd N] [--log-level L]".
 * Prints usage for --help / --version and bad arguments.
 * Return: 0 to run, 1 to exit successfully (help, version), -EINVAL.
 */
int service_parse_args(const char *prog, const char *summary, int argc,
		       char **argv, service_args_t *a);

/**
 * service_new() - signals on @loop: SIGINT/SIGTERM call @on_stop once (it must
 * close the service's own handles), SIGPIPE is ignored.
 */
int service_new(uv_loop_t *loop, const service_args_t *a, service_stop_cb on_stop,
		void *user, service_t **outp);
/**
 * service_ready() - tell whoever waits that we serve: writes @line (e.g.
 * "tcp=7778 metrics=9100") and a newline to --ready-fd and closes it, and
 * sends READY=1 to systemd.
 */
void service_ready(service_t *svc, const char *line);
/** service_stop() - begin the graceful shutdown from code (as SIGTERM does). */
void service_stop(service_t *svc);
/**
 * service_run() - run the loop until the service stopped, close whatever
 * handles remain and close the loop; frees @svc.
 * Return: 0 on a clean shutdown, 1 otherwise.
 */
int service_run(service_t *svc);
