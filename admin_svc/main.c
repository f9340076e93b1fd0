// SPDX-License-Identifier: MIT
// lars-admin: the web console. Arguments, configuration, start-up checks.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "config.h"
#include "lars_config.h"
#include "log.h"
#include "net.h"
#include "service.h"
#include "xalloc.h"

static void on_stop(void *user)
{
	admin_stop(user);
}

static int start(uv_loop_t *loop, service_t *svc, metrics_t *m, void *user)
{
	return admin_start(user, loop, svc, m);
}

int main(int argc, char **argv)
{
	service_args_t args;
	int r = service_parse_args("lars-admin", "Lars web console: routes, host health and "
				   "change history in the browser.", NULL, argc, argv, &args);
	if (r)
		return r > 0 ? 0 : 2;
	log_init(args.level);

	admin_cfg_t cfg = {
		.port = 7780, .max_conns = 256, .timeout_s = 60, .max_body = 65536,
		.request_timeout_s = 10, .reserve_conns = 32, .max_conns_per_ip = 16,
		.db_threads = 2, .status_max_age_s = 600, .fail_pct = 10.0,
	};
	snprintf(cfg.ip, sizeof(cfg.ip), "127.0.0.1");
	snprintf(cfg.assets_dir, sizeof(cfg.assets_dir), "%s", LARS_ADMIN_ASSETS_DEFAULT);
	snprintf(cfg.realm, sizeof(cfg.realm), "Lars console");
	service_common_defaults(&cfg.common);
	config_key_t keys[] = {
		CONFIG_KEY_STR("admin", "ip", cfg.ip),
		CONFIG_KEY_INT("admin", "port", &cfg.port, 0, 65535),
		CONFIG_KEY_INT("admin", "max_conns", &cfg.max_conns, 1, 100000),
		CONFIG_KEY_INT("admin", "timeout", &cfg.timeout_s, 1, 3600),
		CONFIG_KEY_INT("admin", "request_timeout", &cfg.request_timeout_s, 1, 3600),
		CONFIG_KEY_INT("admin", "reserve_conns", &cfg.reserve_conns, 0, 100000),
		CONFIG_KEY_INT("admin", "max_conns_per_ip", &cfg.max_conns_per_ip, 0, 100000),
		CONFIG_KEY_BOOL("admin", "reuse_port", &cfg.reuse_port),
		CONFIG_KEY_INT("admin", "max_body", &cfg.max_body, 1024, 16 << 20),
		CONFIG_KEY_INT("admin", "db_threads", &cfg.db_threads, 1, 64),
		CONFIG_KEY_INT("admin", "status_max_age", &cfg.status_max_age_s, 1, 31 * 86400),
		CONFIG_KEY_DOUBLE("admin", "fail_pct", &cfg.fail_pct, 0, 100),
		CONFIG_KEY_STR("admin", "users_file", cfg.users_file),
		CONFIG_KEY_STR("admin", "assets_dir", cfg.assets_dir),
		CONFIG_KEY_STR("admin", "realm", cfg.realm),
		CONFIG_KEY_STR("admin", "server_names", cfg.server_names),
		CONFIG_KEY_STR("postgres", "conninfo", cfg.conninfo),
		SERVICE_COMMON_KEYS(cfg.common),
	};
	if (config_load(args.config, keys, ARRAY_SIZE(keys)) ||
	    config_check_secret(args.config, cfg.conninfo))
		return 2;
	/* Without a users file anyone who reaches the port may change routes:
	 * only this machine may, then. */
	if (!cfg.users_file[0] && !net_is_loopback(cfg.ip)) {
		log_error("%s: [admin] ip = %s is not a loopback address: set [admin] users_file "
			  "(larsctl admin-user add NAME) before serving other machines",
			  args.config, cfg.ip);
		return 2;
	}
	if (cfg.reserve_conns >= cfg.max_conns) {
		log_error("%s: [admin] reserve_conns = %d must be below max_conns = %d", args.config,
			  cfg.reserve_conns, cfg.max_conns);
		return 2;
	}
	for (const char *p = cfg.realm; *p; p++) {
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
			log_error("%s: [admin] realm may not hold quotes, backslashes or control "
				  "characters", args.config);
			return 2;
		}
	}

	admin_t app = { .cfg = cfg };
	const char *why;
	if (admin_parse_names(&app, cfg.server_names, &why)) {
		log_error("%s: %s", args.config, why);
		return 2;
	}
	r = service_main("lars-admin", &args, &cfg.common, start, on_stop, &app);
	auth_free(app.auth);
	assets_free(app.assets);
	admin_free_names(&app);
	return r;
}
