// SPDX-License-Identifier: MIT
// lars-dns: the route service. Its configuration keys and checks; the rest
// is common/loop/service.c.
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "frame.h"
#include "log.h"
#include "migrations.h"
#include "server.h"
#include "service.h"
#include "xalloc.h"

static dns_cfg_t cfg = {
	.ip = "127.0.0.1", .port = 7778, .max_conns = 10000, .max_frame = 65536,
	.max_write_queue = 16 << 20, .max_subscriptions = 200000,
	.output_soft_limit = -1, .output_soft_seconds = 30,
	.output_total_limit = 256 << 20, .max_conns_per_ip = 1024,
	.subscribe_timeout_s = 60, .partial_frame_timeout_s = 10,
	.db_threads = 2, .lease_db_threads = 2, .poll_interval_ms = 1000, .reload_interval_s = 300,
	.change_log_days = 7,
	.agents_interval_ms = 5000,
	.lease_expiry_interval_ms = 1000,
	.reactor_threads = -1,
};
static bool wait_for_db; /* --wait-for-db */

static const config_key_t keys[] = {
	CONFIG_KEY_STR("dns", "ip", cfg.ip),
	CONFIG_KEY_INT("dns", "port", &cfg.port, 0, 65535),
	CONFIG_KEY_BOOL("dns", "reuse_port", &cfg.reuse_port),
	CONFIG_KEY_INT("dns", "max_conns", &cfg.max_conns, 1, 1000000),
	CONFIG_KEY_INT("dns", "max_frame", &cfg.max_frame, 64, FRAME_TCP_MAX_LIMIT),
	CONFIG_KEY_INT("dns", "max_write_queue", &cfg.max_write_queue, 65536, 1 << 30),
	CONFIG_KEY_INT("dns", "output_hard_limit", &cfg.output_hard_limit, 65536, 1 << 30),
	CONFIG_KEY_INT("dns", "output_soft_limit", &cfg.output_soft_limit, -1, 1 << 30),
	CONFIG_KEY_INT("dns", "output_soft_seconds", &cfg.output_soft_seconds, 1, 86400),
	CONFIG_KEY_INT("dns", "output_total_limit", &cfg.output_total_limit, 0, INT32_MAX),
	CONFIG_KEY_INT("dns", "max_conns_per_ip", &cfg.max_conns_per_ip, 0, 1000000),
	CONFIG_KEY_INT("dns", "subscribe_timeout", &cfg.subscribe_timeout_s, 0, 86400),
	CONFIG_KEY_INT("dns", "partial_frame_timeout", &cfg.partial_frame_timeout_s, 0, 86400),
	CONFIG_KEY_INT("dns", "max_subscriptions", &cfg.max_subscriptions, 1, 10000000),
	CONFIG_KEY_INT("dns", "db_threads", &cfg.db_threads, 1, 64),
	CONFIG_KEY_INT("dns", "lease_db_threads", &cfg.lease_db_threads, 1, 64),
	CONFIG_KEY_INT("dns", "poll_interval_ms", &cfg.poll_interval_ms, 10, 3600000),
	CONFIG_KEY_INT("dns", "reload_interval", &cfg.reload_interval_s, 0, 86400),
	CONFIG_KEY_BOOL("dns", "wait_for_db", &cfg.wait_for_db),
	CONFIG_KEY_INT("dns", "change_log_days", &cfg.change_log_days, 1, 3650),
	CONFIG_KEY_INT("dns", "agents_interval_ms", &cfg.agents_interval_ms, 0, 3600000),
	CONFIG_KEY_INT("dns", "lease_expiry_interval_ms", &cfg.lease_expiry_interval_ms, 0,
		       3600000),
	/* The original's lars_dns.conf: [reactor] ip/port/maxConn/threadNum. */
	CONFIG_KEY_STR("reactor", "ip", cfg.ip),
	CONFIG_KEY_INT("reactor", "port", &cfg.port, 0, 65535),
	CONFIG_KEY_INT("reactor", "maxConn", &cfg.max_conns, 1, 1000000),
	CONFIG_KEY_INT("reactor", "threadNum", &cfg.reactor_threads, 0, 1024),
	CONFIG_KEY_STR("postgres", "conninfo", cfg.conninfo),
};

static const service_flag_t flags[] = {
	{ "wait-for-db", &wait_for_db,
	  "if PostgreSQL is unreachable at start, wait for it instead of failing" },
	{ NULL, NULL, NULL },
};

static int dns_check(void *c, const char *path)
{
	dns_cfg_t *d = c;
	d->wait_for_db |= wait_for_db;
	if (!d->output_hard_limit)
		d->output_hard_limit = d->max_write_queue;
	if (d->output_soft_limit < 0) /* not set: a quarter of the hard limit */
		d->output_soft_limit = d->output_hard_limit / 4;
	if (d->output_soft_limit >= d->output_hard_limit) {
		log_error("%s: [dns] output_soft_limit = %d must be below the hard limit %d "
			  "(output_hard_limit, or max_write_queue)", path ? path : "defaults",
			  d->output_soft_limit, d->output_hard_limit);
		return -1;
	}
	if (d->reactor_threads >= 0)
		log_info("[reactor] threadNum has no effect: one event loop serves every "
			 "connection and database work runs on [dns] db_threads workers");
	service_need_fds((unsigned)d->max_conns, "[dns] max_conns");
	return 0;
}

static void dns_self_check(void *c, service_check_t *chk)
{
	dns_cfg_t *d = c;
	service_check_listen(chk, "[dns] ip/port", SOCK_STREAM, d->ip, d->port, d->reuse_port);
	char msg[512];
	if (chk->connect)
		service_check_result(chk, "[postgres] conninfo",
				     migrate_check(d->conninfo, "lars-dns", msg, sizeof(msg)), msg);
}

SERVICE_PART(dns_t, dns_new, dns_close, service_on_ready_tcp)

static const service_def_t def = {
	.name = "lars-dns",
	.summary = "Lars route service: routes from PostgreSQL, pushed to subscribed agents.",
	.flags = flags,
	.keys = keys, .n_keys = ARRAY_SIZE(keys),
	.common = &cfg.common, .cfg = &cfg, .cfg_size = sizeof(cfg), .conninfo = cfg.conninfo,
	.metrics_port = 9778,
	.check = dns_check, .self_check = dns_self_check,
	.start = service_part_start, .stop = service_part_stop,
};

int main(int argc, char **argv)
{
	return service_main(&def, argc, argv);
}
