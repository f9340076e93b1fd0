// SPDX-License-Identifier: MIT
// lars-reporter: the report service. Arguments, configuration, signals, run loop.
#include <stdio.h>
#include <stdlib.h>

#include "admit.h"
#include "config.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "service.h"
#include "xalloc.h"

typedef struct app {
	service_t *svc;
	rep_t *rep;
	rep_cfg_t cfg;
} app_t;

static void on_stop(void *user)
{
	app_t *app = user;
	rep_close(app->rep);
	app->rep = NULL;
}

static void on_ready(void *user, int port)
{
	app_t *app = user;
	char ports[32];
	snprintf(ports, sizeof(ports), "tcp=%d", port);
	service_ready_ports(app->svc, ports);
}

static int start(uv_loop_t *loop, service_t *svc, metrics_t *m, void *user)
{
	app_t *app = user;
	app->svc = svc;
	return rep_new(loop, svc, &app->cfg, m, on_ready, app, &app->rep);
}

int main(int argc, char **argv)
{
	service_args_t args;
	int r = service_parse_args("lars-reporter", "Lars report service: call statistics "
				   "from agents, stored in PostgreSQL in batches.", NULL,
				   argc, argv, &args);
	if (r)
		return r > 0 ? 0 : 2;
	log_init(args.level);

	rep_cfg_t cfg = {
		.port = 7779, .max_conns = 10000, .max_frame = FRAME_TCP_MAX_DEFAULT,
		.max_results = 200000, .db_thread_cnt = 2, .batch_size = 20000,
		.batch_keys = 20000, .statement_timeout_ms = 30000,
		.max_clock_skew_s = 300, .trust_loopback = true,
		.flush_interval_ms = 200, .max_pending_keys = 2000000,
		.history_days = 7, .shutdown_timeout_s = 10,
	};
	snprintf(cfg.ip, sizeof(cfg.ip), "127.0.0.1");
	service_common_defaults(&cfg.common);
	config_key_t keys[] = {
		CONFIG_KEY_STR("reporter", "ip", cfg.ip),
		CONFIG_KEY_INT("reporter", "port", &cfg.port, 0, 65535),
		CONFIG_KEY_BOOL("reporter", "reuse_port", &cfg.reuse_port),
		CONFIG_KEY_INT("reporter", "max_conns", &cfg.max_conns, 1, 1000000),
		CONFIG_KEY_INT("reporter", "max_frame", &cfg.max_frame, 64, FRAME_TCP_MAX_LIMIT),
		CONFIG_KEY_INT("reporter", "max_results", &cfg.max_results, 1, 10000000),
		CONFIG_KEY_INT("reporter", "db_thread_cnt", &cfg.db_thread_cnt, 1, 64),
		CONFIG_KEY_INT("reporter", "batch_size", &cfg.batch_size, 1, 10000000),
		CONFIG_KEY_INT("reporter", "batch_keys", &cfg.batch_keys, 1, 10000000),
		CONFIG_KEY_INT("reporter", "max_clock_skew", &cfg.max_clock_skew_s, 1, 86400),
		CONFIG_KEY_STR("reporter", "trusted_proxies", cfg.trusted_proxies),
		CONFIG_KEY_BOOL("reporter", "trust_loopback", &cfg.trust_loopback),
		CONFIG_KEY_INT("reporter", "flush_interval_ms", &cfg.flush_interval_ms, 10, 600000),
		CONFIG_KEY_INT("reporter", "max_pending_keys", &cfg.max_pending_keys, 1000, 100000000),
		CONFIG_KEY_INT("reporter", "history_days", &cfg.history_days, 1, 3650),
		CONFIG_KEY_INT("reporter", "shutdown_timeout", &cfg.shutdown_timeout_s, 0, 3600),
		/* The original's lars_reporter.conf: [reactor] ip/port. */
		CONFIG_KEY_STR("reactor", "ip", cfg.ip),
		CONFIG_KEY_INT("reactor", "port", &cfg.port, 0, 65535),
		CONFIG_KEY_STR("postgres", "conninfo", cfg.conninfo),
		CONFIG_KEY_INT("postgres", "statement_timeout_ms", &cfg.statement_timeout_ms, 1, 3600000),
		SERVICE_COMMON_KEYS(cfg.common),
	};
	if (config_load(args.config, keys, ARRAY_SIZE(keys)) ||
	    config_check_secret(args.config, cfg.conninfo))
		return 2;
	admit_t check;
	const char *why;
	if (admit_parse_nets(&check, cfg.trusted_proxies, &why)) {
		log_error("%s: [reporter] trusted_proxies = %s: %s", args.config ? args.config : "-",
			  cfg.trusted_proxies, why);
		return 2;
	}

	app_t app = { .cfg = cfg };
	return service_main("lars-reporter", &args, &cfg.common, start, on_stop, &app);
}
