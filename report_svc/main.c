// SPDX-License-Identifier: MIT
// lars-reporter: the report service. Its configuration keys and checks; the
// rest is common/loop/service.c.
#include <errno.h>
#include <sys/socket.h>

#include "admit.h"
#include "config.h"
#include "frame.h"
#include "log.h"
#include "migrations.h"
#include "server.h"
#include "service.h"
#include "xalloc.h"

static rep_cfg_t cfg = {
	.ip = "127.0.0.1", .port = 7779, .max_conns = 10000, .max_frame = FRAME_TCP_MAX_DEFAULT,
	.max_results = 200000, .db_thread_cnt = 2, .batch_size = 20000,
	.batch_keys = 20000, .statement_timeout_ms = 30000,
	.max_clock_skew_s = 300, .trust_loopback = true,
	.flush_interval_ms = 200, .max_pending_keys = 2000000,
	.history_days = 7, .shutdown_timeout_s = 10,
};

static const config_key_t keys[] = {
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
};

static int rep_check(void *c, const char *path)
{
	const rep_cfg_t *r = c;
	admit_t check;
	const char *why;
	if (admit_parse_nets(&check, r->trusted_proxies, &why)) {
		log_error("%s: [reporter] trusted_proxies = %s: %s", path, r->trusted_proxies, why);
		return -EINVAL;
	}
	service_need_fds((unsigned)r->max_conns, "[reporter] max_conns");
	return 0;
}

static void rep_self_check(void *c, service_check_t *chk)
{
	rep_cfg_t *r = c;
	service_check_listen(chk, "[reporter] ip/port", SOCK_STREAM, r->ip, r->port, r->reuse_port);
	char msg[512];
	if (chk->connect)
		service_check_result(chk, "[postgres] conninfo",
				     migrate_check(r->conninfo, "lars-reporter", msg, sizeof(msg)), msg);
}

SERVICE_PART(rep_t, rep_new, rep_close, service_on_ready_tcp)

static const service_def_t def = {
	.name = "lars-reporter",
	.summary = "Lars report service: call statistics from agents, stored in PostgreSQL "
		   "in batches.",
	.keys = keys, .n_keys = ARRAY_SIZE(keys),
	.common = &cfg.common, .cfg = &cfg, .cfg_size = sizeof(cfg), .conninfo = cfg.conninfo,
	.metrics_port = 9779,
	.check = rep_check, .self_check = rep_self_check,
	.start = service_part_start, .stop = service_part_stop,
};

int main(int argc, char **argv)
{
	return service_main(&def, argc, argv);
}
