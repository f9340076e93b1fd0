// SPDX-License-Identifier: MIT
// lars-agent: the load-balance agent. Its configuration keys and checks; the
// rest is common/loop/service.c.
#include <errno.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "config.h"
#include "log.h"
#include "msg.h"
#include "net.h"
#include "service.h"
#include "xalloc.h"

/*
 * Everything the file sets, in one struct: a reload (SIGHUP) resets it to
 * these defaults and parses the file again (service.c). The original's
 * single [dnsserver] / [reporter] ip and port are here too.
 */
typedef struct endpoints {
	net_endpoint_t *v;
	int *n;
} endpoints_t;

static struct agent_conf {
	agent_cfg_t a; /* first: what agent_new() and agent_reload() get */
	char dns_ip[64], rep_ip[64];
	int dns_port, rep_port;
	/* "servers = host:port, host:port": several route / report services. */
	endpoints_t dns_servers, rep_servers;
} conf = {
	.a = {
		.ip = "127.0.0.1", .base_port = 8888, .sockets = 3, .max_routes = 100000,
		.max_absent = 10000, .pull_rate = 1000, .pull_burst = 2000,
		.report_interval_s = 5, .report_max_hosts = 200000, .max_hosts = 100000,
		.ack_timeout_ms = 5000, .announce = true,
		.shm = true,
		.reg = { .ttl_s = 10, .check_interval_ms = 1000, .check_timeout_ms = 1000,
			 .check_fall = 3, .check_rise = 2, .drain_ms = 5000, .max = 1024 },
		.reg_enabled = true,
	},
	.dns_ip = "127.0.0.1", .rep_ip = "127.0.0.1", .dns_port = 7778, .rep_port = 7779,
	.dns_servers = { conf.a.dns, &conf.a.n_dns },
	.rep_servers = { conf.a.reporter, &conf.a.n_reporter },
};

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

/* [reporter] counts = delta | cumulative. */
static int parse_counts(const char *value, void *dst, const char **whyp)
{
	bool *cumulative = dst;
	if (!strcmp(value, "delta")) {
		*cumulative = false;
	} else if (!strcmp(value, "cumulative")) {
		*cumulative = true;
	} else {
		*whyp = "expected delta or cumulative";
		return -EINVAL;
	}
	return 0;
}

/* [register] drain_s: seconds (a fraction allowed: 0.5), kept as ms. */
static int parse_seconds_ms(const char *value, void *dst, const char **whyp)
{
	char *end;
	errno = 0;
	double v = strtod(value, &end);
	if (errno || end == value || *end || !(v >= 0 && v <= 3600)) {
		*whyp = "expected seconds 0..3600";
		return -EINVAL;
	}
	*(int *)dst = (int)(v * 1000 + 0.5);
	return 0;
}

static const config_key_t keys[] = {
	CONFIG_KEY_STR("agent", "ip", conf.a.ip),
	CONFIG_KEY_INT("agent", "base_port", &conf.a.base_port, 0, 65535 - AGENT_MAX_SOCKETS),
	CONFIG_KEY_BOOL("agent", "reuse_port", &conf.a.reuse_port),
	CONFIG_KEY_INT("agent", "sockets", &conf.a.sockets, 1, AGENT_MAX_SOCKETS),
	CONFIG_KEY_INT("agent", "max_routes", &conf.a.max_routes, 1, 100000000),
	CONFIG_KEY_INT("agent", "max_hosts", &conf.a.max_hosts, 1, 10000000),
	CONFIG_KEY_INT("agent", "max_absent", &conf.a.max_absent, 1, 100000000),
	CONFIG_KEY_INT("agent", "pull_rate", &conf.a.pull_rate, 1, 100000000),
	CONFIG_KEY_INT("agent", "pull_burst", &conf.a.pull_burst, 1, 100000000),
	CONFIG_KEY_STR("agent", "caller", conf.a.caller),
	CONFIG_KEY_BOOL("agent", "shm", &conf.a.shm),
	CONFIG_KEY_STR("agent", "shm_path", conf.a.shm_path),
	CONFIG_KEY_INT("agent", "shm_max_routes", &conf.a.shm_max_routes, 0, 65536),
	CONFIG_KEY_INT("agent", "shm_max_hosts", &conf.a.shm_max_hosts, 0, 1024),
	CONFIG_KEY_INT("loadbalance", "probe_num", &conf.a.lb.probe_num, 0, 1000000),
	CONFIG_KEY_INT("loadbalance", "init_succ_cnt", &conf.a.lb.init_succ_cnt, 0, 100000000),
	CONFIG_KEY_INT("loadbalance", "init_err_cnt", &conf.a.lb.init_err_cnt, 0, 100000000),
	CONFIG_KEY_DOUBLE("loadbalance", "err_rate", &conf.a.lb.err_rate, 0, 1),
	CONFIG_KEY_DOUBLE("loadbalance", "succ_rate", &conf.a.lb.succ_rate, 0, 1),
	CONFIG_KEY_INT("loadbalance", "contin_err_limit", &conf.a.lb.contin_err_limit, 1, 100000000),
	CONFIG_KEY_INT("loadbalance", "contin_succ_limit", &conf.a.lb.contin_succ_limit, 1,
		       100000000),
	CONFIG_KEY_DOUBLE("loadbalance", "window_err_rate", &conf.a.lb.window_err_rate, 0, 1),
	CONFIG_KEY_INT("loadbalance", "idle_timeout", &conf.a.lb.idle_timeout_s, 1, 86400),
	CONFIG_KEY_INT("loadbalance", "overload_timeout", &conf.a.lb.overload_timeout_s, 1, 86400),
	CONFIG_KEY_INT("loadbalance", "panic_threshold", &conf.a.lb.panic_threshold, 0, 100),
	CONFIG_KEY_INT("loadbalance", "max_overload_timeout", &conf.a.lb.max_overload_timeout_s, 1,
		       86400),
	CONFIG_KEY_INT("loadbalance", "update_timeout", &conf.a.lb.update_timeout_s, 1, 86400),
	CONFIG_KEY_STR("dnsserver", "ip", conf.dns_ip),
	CONFIG_KEY_INT("dnsserver", "port", &conf.dns_port, 1, 65535),
	CONFIG_KEY_FN("dnsserver", "servers", &conf.dns_servers, parse_servers),
	CONFIG_KEY_BOOL("dnsserver", "announce", &conf.a.announce),
	CONFIG_KEY_STR("reporter", "ip", conf.rep_ip),
	CONFIG_KEY_INT("reporter", "port", &conf.rep_port, 1, 65535),
	CONFIG_KEY_FN("reporter", "servers", &conf.rep_servers, parse_servers),
	CONFIG_KEY_INT("reporter", "interval", &conf.a.report_interval_s, 1, 3600),
	CONFIG_KEY_INT("reporter", "max_pending_hosts", &conf.a.report_max_hosts, 1, 100000000),
	CONFIG_KEY_INT("reporter", "ack_timeout_ms", &conf.a.ack_timeout_ms, 100, 3600000),
	CONFIG_KEY_FN("reporter", "counts", &conf.a.counts_cumulative, parse_counts),
	CONFIG_KEY_BOOL("register", "enabled", &conf.a.reg_enabled),
	CONFIG_KEY_INT("register", "ttl_s", &conf.a.reg.ttl_s, 1, 86400),
	CONFIG_KEY_INT("register", "check_interval_ms", &conf.a.reg.check_interval_ms, 10, 3600000),
	CONFIG_KEY_INT("register", "check_timeout_ms", &conf.a.reg.check_timeout_ms, 10, 600000),
	CONFIG_KEY_INT("register", "check_fall", &conf.a.reg.check_fall, 1, 1000),
	CONFIG_KEY_INT("register", "check_rise", &conf.a.reg.check_rise, 1, 1000),
	CONFIG_KEY_FN("register", "drain_s", &conf.a.reg.drain_ms, parse_seconds_ms),
	CONFIG_KEY_INT("register", "max_registrations", &conf.a.reg.max, 1, 100000),
};

static void agent_defaults(void *c)
{
	lb_cfg_defaults(&((agent_cfg_t *)c)->lb);
}

/* servers = ... wins; otherwise the original's single ip/port. */
static int single_endpoint(const char *path, const char *section, const char *ip, int port,
			   net_endpoint_t *ep, int *np)
{
	if (*np)
		return 0;
	char s[96];
	snprintf(s, sizeof(s), "%s:%d", ip, port);
	if (net_endpoints_parse(s, ep, 1) != 1) {
		log_error("%s: [%s] ip = %s is not a numeric address", path, section, ip);
		return -EINVAL;
	}
	*np = 1;
	return 0;
}

static int agent_check(void *c, const char *path)
{
	agent_cfg_t *a = c;
	int32_t caller_ip;
	if (a->caller[0] && msg_ip_from_str(a->caller, &caller_ip)) {
		log_error("%s: [agent] caller = %s: not an IPv4 address", path, a->caller);
		return -EINVAL;
	}
	const struct agent_conf *k = c;
	if (single_endpoint(path, "dnsserver", k->dns_ip, k->dns_port, a->dns, &a->n_dns) ||
	    single_endpoint(path, "reporter", k->rep_ip, k->rep_port, a->reporter, &a->n_reporter))
		return -EINVAL;
	return 0;
}

/* Its UDP sockets (base_port, base_port + 1, ...) and, with =connect, one
 * lars-dns and one lars-reporter of each list. */
static void agent_self_check(void *c, service_check_t *chk)
{
	agent_cfg_t *a = c;
	for (int i = 0; i < a->sockets; i++)
		service_check_listen(chk, "[agent] ip/base_port", SOCK_DGRAM, a->ip,
				     a->base_port ? a->base_port + i : 0, a->reuse_port);
	service_check_upstreams(chk, "[dnsserver]", a->dns, a->n_dns);
	service_check_upstreams(chk, "[reporter]", a->reporter, a->n_reporter);
}

SERVICE_PART(agent_t, agent_new, agent_close, service_on_ready_ports)

static void agent_reload_cfg(void *obj, const void *c)
{
	agent_reload(obj, &((const struct agent_conf *)c)->a);
}

/* SIGHUP applies these (and [log] level); other keys need a restart. */
static const char *const reloadable[] = {
	"loadbalance", "dnsserver servers", "dnsserver ip", "dnsserver port",
	"reporter servers", "reporter ip", "reporter port", NULL,
};

static const service_def_t def = {
	.name = "lars-agent",
	.summary = "Lars load-balance agent: apps ask it for a host over UDP.",
	.keys = keys, .n_keys = ARRAY_SIZE(keys),
	.common = &conf.a.common, .cfg = &conf, .cfg_size = sizeof(conf), .metrics_port = 9888,
	.reloadable = reloadable, .reload = agent_reload_cfg,
	.defaults = agent_defaults, .check = agent_check, .self_check = agent_self_check,
	.start = service_part_start, .stop = service_part_stop,
};

int main(int argc, char **argv)
{
	return service_main(&def, argc, argv);
}
