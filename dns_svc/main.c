// SPDX-License-Identifier: MIT
// lars-dns: the route service. Arguments, configuration, signals, run loop.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "service.h"
#include "xalloc.h"

typedef struct app {
	service_t *svc;
	dns_t *dns;
	dns_cfg_t cfg;
} app_t;

static void on_stop(void *user)
{
	app_t *app = user;
	dns_close(app->dns);
	app->dns = NULL;
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
	return dns_new(loop, svc, &app->cfg, m, on_ready, app, &app->dns);
}

int main(int argc, char **argv)
{
	service_args_t args;
	bool wait_for_db = false;
	const service_flag_t flags[] = {
		{ "wait-for-db", &wait_for_db,
		  "if PostgreSQL is unreachable at start, wait for it instead of failing" },
		{ NULL, NULL, NULL },
	};
	int r = service_parse_args("lars-dns", "Lars route service: routes from PostgreSQL, "
				   "pushed to subscribed agents.", flags, argc, argv, &args);
	if (r)
		return r > 0 ? 0 : 2;
	log_init(args.level);

	app_t app = { 0 };
	dns_cfg_t cfg = {
		.port = 7778, .max_conns = 10000, .max_frame = 65536,
		.max_write_queue = 16 << 20, .max_subscriptions = 200000,
		.db_threads = 2, .poll_interval_ms = 1000, .reload_interval_s = 300,
		.change_log_days = 7,
		.reactor_threads = -1,
	};
	snprintf(cfg.ip, sizeof(cfg.ip), "127.0.0.1");
	service_common_defaults(&cfg.common);
	config_key_t keys[] = {
		CONFIG_KEY_STR("dns", "ip", cfg.ip),
		CONFIG_KEY_INT("dns", "port", &cfg.port, 0, 65535),
		CONFIG_KEY_BOOL("dns", "reuse_port", &cfg.reuse_port),
		CONFIG_KEY_INT("dns", "max_conns", &cfg.max_conns, 1, 1000000),
		CONFIG_KEY_INT("dns", "max_frame", &cfg.max_frame, 64, FRAME_TCP_MAX_LIMIT),
		CONFIG_KEY_INT("dns", "max_write_queue", &cfg.max_write_queue, 65536, 1 << 30),
		CONFIG_KEY_INT("dns", "max_subscriptions", &cfg.max_subscriptions, 1, 10000000),
		CONFIG_KEY_INT("dns", "db_threads", &cfg.db_threads, 1, 64),
		CONFIG_KEY_INT("dns", "poll_interval_ms", &cfg.poll_interval_ms, 10, 3600000),
		CONFIG_KEY_INT("dns", "reload_interval", &cfg.reload_interval_s, 0, 86400),
		CONFIG_KEY_BOOL("dns", "wait_for_db", &cfg.wait_for_db),
		CONFIG_KEY_INT("dns", "change_log_days", &cfg.change_log_days, 1, 3650),
		/* The original's lars_dns.conf: [reactor] ip/port/maxConn/threadNum. */
		CONFIG_KEY_STR("reactor", "ip", cfg.ip),
		CONFIG_KEY_INT("reactor", "port", &cfg.port, 0, 65535),
		CONFIG_KEY_INT("reactor", "maxConn", &cfg.max_conns, 1, 1000000),
		CONFIG_KEY_INT("reactor", "threadNum", &cfg.reactor_threads, 0, 1024),
		CONFIG_KEY_STR("postgres", "conninfo", cfg.conninfo),
		SERVICE_COMMON_KEYS(cfg.common),
	};
	if (config_load(args.config, keys, ARRAY_SIZE(keys)) ||
	    config_check_secret(args.config, cfg.conninfo))
		return 2;
	cfg.wait_for_db |= wait_for_db;
	if (cfg.reactor_threads >= 0)
		log_info("[reactor] threadNum has no effect: one event loop serves every "
			 "connection and database work runs on [dns] db_threads workers");

	app.cfg = cfg;
	return service_main("lars-dns", &args, &cfg.common, start, on_stop, &app);
}
