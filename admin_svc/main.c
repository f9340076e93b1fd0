// SPDX-License-Identifier: MIT
// lars-admin: the web console. Its configuration keys; the checks are
// admin_check_cfg(), the rest is common/loop/service.c.
#include "admin.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "lars_config.h"
#include "migrations.h"
#include "service.h"
#include "userfile.h"
#include "xalloc.h"

static admin_cfg_t cfg = {
	.ip = "127.0.0.1", .port = 7780, .max_conns = 256, .timeout_s = 60,
	.max_body = 65536, .request_timeout_s = 10, .reserve_conns = 32,
	.max_conns_per_ip = 16, .db_threads = 2, .status_max_age_s = 600, .fail_pct = 10.0,
	.assets_dir = LARS_ADMIN_ASSETS_DEFAULT, .realm = "Lars console",
	.session_idle_s = 1800, .session_max_s = 43200,
};

static const config_key_t keys[] = {
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
	CONFIG_KEY_INT("admin", "session_idle", &cfg.session_idle_s, 1, 31 * 86400),
	CONFIG_KEY_INT("admin", "session_max", &cfg.session_max_s, 1, 366 * 86400),
	CONFIG_KEY_STR("postgres", "conninfo", cfg.conninfo),
};

static int check(void *c, const char *path)
{
	int r = admin_check_cfg(c, path);
	if (r == 0)
		service_need_fds((unsigned)cfg.max_conns, "[admin] max_conns");
	return r;
}

static void admin_self_check(void *c, service_check_t *chk)
{
	admin_cfg_t *a = c;
	service_check_listen(chk, "[admin] ip/port", SOCK_STREAM, a->ip, a->port, a->reuse_port);
	if (a->users_file[0]) {
		/* As the start reads it: a world-readable file is refused. */
		userfile_t uf = { 0 };
		const char *why = "";
		int r = userfile_load(a->users_file, true, &uf, &why);
		if (r)
			service_check_error(chk, "[admin] users_file = %s: %s", a->users_file,
					    r == -EINVAL || r == -EPERM ? why : strerror(-r));
		userfile_free(&uf);
	}
	if (a->assets_dir[0] && access(a->assets_dir, R_OK | X_OK))
		service_check_error(chk, "[admin] assets_dir = %s: %s", a->assets_dir,
				    strerror(errno));
	char msg[512];
	if (chk->connect)
		service_check_result(chk, "[postgres] conninfo",
				     migrate_check(a->conninfo, "lars-admin", msg, sizeof(msg)), msg);
}

SERVICE_PART(admin_t, admin_new, admin_close, service_on_ready_ports)

static const service_def_t def = {
	.name = "lars-admin",
	.summary = "Lars web console: routes, host health and change history in the browser.",
	.keys = keys, .n_keys = ARRAY_SIZE(keys),
	.common = &cfg.common, .cfg = &cfg, .cfg_size = sizeof(cfg), .conninfo = cfg.conninfo,
	.metrics_port = 9780,
	.check = check, .self_check = admin_self_check,
	.start = service_part_start, .stop = service_part_stop,
};

int main(int argc, char **argv)
{
	return service_main(&def, argc, argv);
}
