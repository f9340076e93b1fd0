// SPDX-License-Identifier: MIT
// lars-agent: the load-balance agent. Arguments, configuration, signals, run loop.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "net.h"
#include "service.h"
#include "xalloc.h"

typedef struct app {
	service_t *svc;
	agent_t *agent;
	agent_cfg_t cfg;
} app_t;

static void on_stop(void *user)
{
	app_t *app = user;
	agent_close(app->agent);
	app->agent = NULL;
}

static void on_ready(void *user, const char *ports)
{
	app_t *app = user;
	service_ready_ports(app->svc, ports);
}

static int start(uv_loop_t *loop, service_t *svc, metrics_t *m, void *user)
{
	app_t *app = user;
	app->svc = svc;
	return agent_new(loop, svc, &app->cfg, m, on_ready, app, &app->agent);
}

/* "servers = host:port, host:port": several route / report services. */
typedef struct endpoints {
	net_endpoint_t *v;
	int *n;
} endpoints_t;

static int parse_servers(const char *value, void *dst, const char **whyp)
{
	endpoints_t *e = dst;
	int n = net_endpoints_parse(value, e->v, NET_MAX_ENDPOINTS);
	if (n < 0) {
		*whyp = "expected host:port[, host:port ...] with numeric addresses";
		return -EINVAL;
	}
	*e->n = n;
	return 0;
}

int main(int argc, char **argv)
{
	service_args_t args;
	int r = service_parse_args("lars-agent", "Lars load-balance agent: apps ask it for "
				   "a host over UDP.", NULL, argc, argv, &args);
	if (r)
		return r > 0 ? 0 : 2;
	log_init(args.level);

	agent_cfg_t cfg = {
		.base_port = 8888, .sockets = 3, .max_routes = 100000,
		.max_absent = 10000, .pull_rate = 1000, .pull_burst = 2000,
		.report_interval_s = 5, .report_max_hosts = 200000, .max_hosts = 100000,
	};
	snprintf(cfg.ip, sizeof(cfg.ip), "127.0.0.1");
	lb_cfg_defaults(&cfg.lb);
	service_common_defaults(&cfg.common);
	char dns_ip[64] = "127.0.0.1", rep_ip[64] = "127.0.0.1";
	int dns_port = 7778, rep_port = 7779;
	endpoints_t dns_servers = { cfg.dns, &cfg.n_dns };
	endpoints_t rep_servers = { cfg.reporter, &cfg.n_reporter };
	lb_cfg_t *lb = &cfg.lb;
	config_key_t keys[] = {
		CONFIG_KEY_STR("agent", "ip", cfg.ip),
		CONFIG_KEY_INT("agent", "base_port", &cfg.base_port, 0, 65535 - AGENT_MAX_SOCKETS),
		CONFIG_KEY_BOOL("agent", "reuse_port", &cfg.reuse_port),
		CONFIG_KEY_INT("agent", "sockets", &cfg.sockets, 1, AGENT_MAX_SOCKETS),
		CONFIG_KEY_INT("agent", "max_routes", &cfg.max_routes, 1, 100000000),
		CONFIG_KEY_INT("agent", "max_hosts", &cfg.max_hosts, 1, 10000000),
		CONFIG_KEY_INT("agent", "max_absent", &cfg.max_absent, 1, 100000000),
		CONFIG_KEY_INT("agent", "pull_rate", &cfg.pull_rate, 1, 100000000),
		CONFIG_KEY_INT("agent", "pull_burst", &cfg.pull_burst, 1, 100000000),
		CONFIG_KEY_STR("agent", "caller", cfg.caller),
		CONFIG_KEY_INT("loadbalance", "probe_num", &lb->probe_num, 0, 1000000),
		CONFIG_KEY_INT("loadbalance", "init_succ_cnt", &lb->init_succ_cnt, 0, 100000000),
		CONFIG_KEY_INT("loadbalance", "init_err_cnt", &lb->init_err_cnt, 0, 100000000),
		CONFIG_KEY_DOUBLE("loadbalance", "err_rate", &lb->err_rate, 0, 1),
		CONFIG_KEY_DOUBLE("loadbalance", "succ_rate", &lb->succ_rate, 0, 1),
		CONFIG_KEY_INT("loadbalance", "contin_err_limit", &lb->contin_err_limit, 1, 100000000),
		CONFIG_KEY_INT("loadbalance", "contin_succ_limit", &lb->contin_succ_limit, 1, 100000000),
		CONFIG_KEY_DOUBLE("loadbalance", "window_err_rate", &lb->window_err_rate, 0, 1),
		CONFIG_KEY_INT("loadbalance", "idle_timeout", &lb->idle_timeout_s, 1, 86400),
		CONFIG_KEY_INT("loadbalance", "overload_timeout", &lb->overload_timeout_s, 1, 86400),
		CONFIG_KEY_INT("loadbalance", "update_timeout", &lb->update_timeout_s, 1, 86400),
		CONFIG_KEY_STR("dnsserver", "ip", dns_ip),
		CONFIG_KEY_INT("dnsserver", "port", &dns_port, 1, 65535),
		CONFIG_KEY_FN("dnsserver", "servers", &dns_servers, parse_servers),
		CONFIG_KEY_STR("reporter", "ip", rep_ip),
		CONFIG_KEY_INT("reporter", "port", &rep_port, 1, 65535),
		CONFIG_KEY_FN("reporter", "servers", &rep_servers, parse_servers),
		CONFIG_KEY_INT("reporter", "interval", &cfg.report_interval_s, 1, 3600),
		CONFIG_KEY_INT("reporter", "max_pending_hosts", &cfg.report_max_hosts, 1, 100000000),
		SERVICE_COMMON_KEYS(cfg.common),
	};
	if (config_load(args.config, keys, ARRAY_SIZE(keys)))
		return 2;
	int32_t caller_ip;
	if (cfg.caller[0] && msg_ip_from_str(cfg.caller, &caller_ip)) {
		log_error("%s: [agent] caller = %s: not an IPv4 address", args.config, cfg.caller);
		return 2;
	}
	/* servers = ... wins; otherwise the original's single ip/port. */
	if (cfg.n_dns == 0) {
		char ep[96];
		snprintf(ep, sizeof(ep), "%s:%d", dns_ip, dns_port);
		if (net_endpoints_parse(ep, cfg.dns, 1) != 1) {
			log_error("%s: [dnsserver] ip = %s is not a numeric address", args.config, dns_ip);
			return 2;
		}
		cfg.n_dns = 1;
	}
	if (cfg.n_reporter == 0) {
		char ep[96];
		snprintf(ep, sizeof(ep), "%s:%d", rep_ip, rep_port);
		if (net_endpoints_parse(ep, cfg.reporter, 1) != 1) {
			log_error("%s: [reporter] ip = %s is not a numeric address", args.config, rep_ip);
			return 2;
		}
		cfg.n_reporter = 1;
	}

	app_t app = { .cfg = cfg };
	return service_main("lars-agent", &args, &cfg.common, start, on_stop, &app);
}
