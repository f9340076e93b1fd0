// SPDX-License-Identifier: MIT
// What every Lars daemon shares: arguments, configuration, signals,
// readiness, shutdown.
//
// service_main() is every daemon's main(): it parses the arguments, loads
// the definition's keys plus [log] / [metrics], then builds the loop, the
// metrics registry, the signal handlers, the loop-lag timer, the stats timer
// and the /metrics listener, calls the definition's start and runs the loop.
// SIGTERM/SIGINT (or service_stop()) closes what is ours and calls its stop;
// the loop runs until every handle is closed and uv_loop_close() succeeds.
#include "service.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "handles.h"
#include "lars_config.h"
#include "loop_lag.h"
#include "metrics_http.h"
#include "nofile.h"
#include "xalloc.h"

#if LARS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

typedef struct service_args {
	const char *config;  /* -c FILE */
	int ready_fd;        /* --ready-fd N, -1 if not given */
	enum log_level level;
	bool level_given;    /* --log-level overrides the config */
	int check;           /* --check: 1, --check=connect: 2 */
} service_args_t;

struct service {
	uv_loop_t *loop;
	const service_def_t *def;
	void *obj;           /* what def->start made, NULL if nothing */
	handles_t handles;   /* sigint, sigterm, stats_timer, lag.timer */
	uv_signal_t sigint;
	uv_signal_t sigterm;
	uv_signal_t sighup;  /* reload */
	const char *config;  /* -c FILE, for the reload */
	void *cfg_initial;   /* def->cfg before the first load (cfg_size bytes) */
	uv_timer_t stats_timer;
	bool stats_running;
	loop_lag_t lag;      /* lars_loop_lag_seconds; its gauge reads it */
	bool lag_ready;      /* lag initialised (and in handles) */
	metrics_t *metrics;
	metrics_http_t *metrics_http;
	int metrics_port;
	int ready_fd;
	bool serving;        /* service_ready() was called */
	service_ready_fn ready_check; /* and this says it can serve (NULL: yes) */
	void *ready_arg;
	double start_unix;   /* process_start_time_seconds */
	bool level_given;
	bool stopping;
	bool failed;
};

static void process_metrics(service_t *svc);
static int page_healthz(void *arg, const char **ctypep, char **bodyp, size_t *lenp);
static int page_readyz(void *arg, const char **ctypep, char **bodyp, size_t *lenp);

/* ---- arguments ---- */

static void usage(FILE *f, const service_def_t *def)
{
	const service_flag_t *flags = def->flags;
	fprintf(f,
		"Usage: %s -c FILE [--ready-fd N] [--log-level LEVEL]%s\n"
		"%s\n\n"
		"  -c, --config FILE    configuration (INI)\n"
		"      --ready-fd N     write \"name=port ...\" to fd N once serving, then close it\n"
		"      --log-level L    error, warn, info (default) or debug\n"
		"      --check[=connect] check the configuration and exit: unknown keys,\n"
		"                       bad values, refused permissions, listen addresses\n"
		"                       (bound for a moment); =connect also connects to\n"
		"                       PostgreSQL and the upstream services. Exit 0 if\n"
		"                       the daemon would start, 2 with FILE:LINE: reason\n",
		def->name, flags && flags[0].name ? " [OPTIONS]" : "", def->summary);
	for (size_t i = 0; flags && flags[i].name; i++)
		fprintf(f, "      --%-16s %s\n", flags[i].name, flags[i].help);
	fprintf(f,
		"  -h, --help           this help\n"
		"      --version        print the version\n");
}

#define SERVICE_MAX_FLAGS 8

/* "-c FILE [--ready-fd N] [--log-level L]" plus the daemon's flags. Prints
 * usage for --help / --version and bad arguments. Return: 0 to run, 1 to
 * exit successfully (help, version), -EINVAL. */
static int service_parse_args(const service_def_t *def, int argc, char **argv,
			      service_args_t *a)
{
	const char *prog = def->name;
	const service_flag_t *flags = def->flags;
	struct option longopts[7 + SERVICE_MAX_FLAGS] = {
		{ "config", required_argument, NULL, 'c' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "check", optional_argument, NULL, 'k' },
	};
	size_t n_flags = 0;
	for (; flags && flags[n_flags].name && n_flags < SERVICE_MAX_FLAGS; n_flags++)
		longopts[6 + n_flags] = (struct option){ flags[n_flags].name, no_argument,
							  NULL, 0x100 + (int)n_flags };
	*a = (service_args_t){ .ready_fd = -1, .level = LOG_LVL_INFO };
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (c >= 0x100 && c < 0x100 + (int)n_flags) {
			*flags[c - 0x100].dst = true;
			continue;
		}
		switch (c) {
		case 'c':
			a->config = optarg;
			break;
		case 'r': {
			char *end;
			long fd = strtol(optarg, &end, 10);
			if (*end || fd < 0 || fd > 65535) {
				fprintf(stderr, "%s: bad --ready-fd '%s'\n", prog, optarg);
				return -EINVAL;
			}
			a->ready_fd = (int)fd;
			break;
		}
		case 'l':
			if (log_level_parse(optarg, &a->level)) {
				fprintf(stderr, "%s: bad --log-level '%s'\n", prog, optarg);
				return -EINVAL;
			}
			a->level_given = true;
			break;
		case 'k':
			if (optarg && strcmp(optarg, "connect") != 0) {
				fprintf(stderr, "%s: --check takes no value or =connect, not '%s'\n",
					prog, optarg);
				return -EINVAL;
			}
			a->check = optarg ? 2 : 1;
			break;
		case 'h':
			usage(stdout, def);
			return 1;
		case 'V':
			printf("%s %s\n", prog, LARS_VERSION);
			return 1;
		default:
			usage(stderr, def);
			return -EINVAL;
		}
	}
	if (optind < argc || !a->config) {
		usage(stderr, def);
		return -EINVAL;
	}
	return 0;
}

/* ---- configuration ---- */

static int service_parse_log_level(const char *value, void *dst, const char **whyp)
{
	if (log_level_parse(value, dst)) {
		*whyp = "expected error, warn, info or debug";
		return -EINVAL;
	}
	return 0;
}

/* The daemon's keys and every daemon's [log] and [metrics], in one table
 * (free() it); *@np their number. */
static config_key_t *service_keys(const service_def_t *def, size_t *np)
{
	service_common_cfg_t *c = def->common;
	const config_key_t common[] = {
		CONFIG_KEY_FN("log", "level", &c->log_level, service_parse_log_level),
		CONFIG_KEY_INT("log", "stats_interval", &c->stats_interval, 0, 86400),
		CONFIG_KEY_BOOL("metrics", "enabled", &c->metrics_enabled),
		CONFIG_KEY_STR("metrics", "ip", c->metrics_ip),
		CONFIG_KEY_INT("metrics", "port", &c->metrics_port, 0, 65535),
		CONFIG_KEY_BOOL("metrics", "reuse_port", &c->metrics_reuse_port),
	};
	size_t n = def->n_keys + ARRAY_SIZE(common);
	config_key_t *keys = xcalloc(n, sizeof(*keys));
	if (def->n_keys)
		memcpy(keys, def->keys, def->n_keys * sizeof(*keys));
	memcpy(keys + def->n_keys, common, sizeof(common));
	*np = n;
	return keys;
}

/* Every daemon's [log] and [metrics]: info logs, stats every 60 s, metrics
 * off (127.0.0.1 when on). */
static int service_configure(const service_def_t *def, const char *path)
{
	service_common_cfg_t *c = def->common;
	*c = (service_common_cfg_t){ .log_level = LOG_LVL_INFO, .stats_interval = 60,
				     .metrics_port = -1 };
	snprintf(c->metrics_ip, sizeof(c->metrics_ip), "127.0.0.1");
	if (def->defaults)
		def->defaults(def->cfg);

	size_t n;
	config_key_t *keys = service_keys(def, &n);
	int r = config_load(path, keys, n);
	free(keys);
	/* No port: the daemon's fixed one when enabled, else none (off). */
	if (c->metrics_port < 0)
		c->metrics_port = c->metrics_enabled ? def->metrics_port : 0;
	if (r == 0 && def->conninfo)
		r = config_check_secret(path, def->conninfo);
	if (r == 0 && def->check)
		r = def->check(def->cfg, path);
	return r;
}

/* ---- the service on its loop ---- */

static void service_on_signal(uv_signal_t *s, int signum)
{
	service_t *svc = s->data;
	log_info("received %s, shutting down", strsignal(signum));
	service_stop(svc);
}

/* ---- SIGHUP: reload ---- */

/* The bytes of @k's value, when they lie in the configuration struct and
 * their size is known (a CONFIG_FN key's is not): else 0. */
static size_t key_span(const service_def_t *def, const config_key_t *k, size_t *offp)
{
	const char *base = def->cfg, *p = k->dst;
	size_t size = k->type == CONFIG_INT ? sizeof(int)
		    : k->type == CONFIG_DOUBLE ? sizeof(double)
		    : k->type == CONFIG_BOOL ? sizeof(bool)
		    : k->type == CONFIG_STR ? k->size
		    : strcmp(k->section, "log") == 0 && strcmp(k->name, "level") == 0
			? sizeof(enum log_level) : 0;
	if (!size || p < base || p + size > base + def->cfg_size)
		return 0;
	*offp = (size_t)(p - base);
	return size;
}

static bool key_reloadable(const service_def_t *def, const config_key_t *k)
{
	if (strcmp(k->section, "log") == 0 && strcmp(k->name, "level") == 0)
		return true;
	size_t sl = strlen(k->section);
	for (const char *const *r = def->reloadable; r && *r; r++) {
		if (strcmp(*r, k->section) == 0)
			return true;
		if (strncmp(*r, k->section, sl) == 0 && (*r)[sl] == ' ' &&
		    strcmp(*r + sl + 1, k->name) == 0)
			return true;
	}
	return false;
}

/* "[a] b, [c] d" of what changed into @buf. */
static void list_add(char *buf, size_t cap, const config_key_t *k)
{
	size_t n = strlen(buf);
	if (n < cap)
		snprintf(buf + n, cap - n, "%s[%s] %s", n ? ", " : "", k->section, k->name);
}

/*
 * Reload the configuration file: parsed and checked as at start into the
 * definition's storage (which the running daemon copied at start and no
 * longer reads), compared key by key with what runs; the reloadable keys
 * that changed are kept and handed to def->reload, the others are named as
 * needing a restart and put back. A file with an error changes nothing.
 */
static void service_reload(service_t *svc)
{
	const service_def_t *def = svc->def;
	if (!def->cfg_size || !svc->cfg_initial) {
		log_warn("reload: %s cannot reload its configuration; restart it", def->name);
		return;
	}
	void *running = xmalloc(def->cfg_size);
	memcpy(running, def->cfg, def->cfg_size);
	memcpy(def->cfg, svc->cfg_initial, def->cfg_size);
	if (service_configure(def, svc->config)) {
		memcpy(def->cfg, running, def->cfg_size);
		free(running);
		log_error("reload: %s has errors (above); nothing changed", svc->config);
		return;
	}
	void *loaded = xmalloc(def->cfg_size);
	memcpy(loaded, def->cfg, def->cfg_size);
	memcpy(def->cfg, running, def->cfg_size);
	size_t n;
	config_key_t *keys = service_keys(def, &n);
	char applied[768] = "", restart[768] = "";
	for (size_t i = 0; i < n; i++) {
		size_t off, size = key_span(def, &keys[i], &off);
		if (!size || memcmp((char *)running + off, (char *)loaded + off, size) == 0)
			continue;
		if (key_reloadable(def, &keys[i])) {
			/* What runs now: kept for the next reload's comparison. */
			memcpy((char *)def->cfg + off, (char *)loaded + off, size);
			list_add(applied, sizeof(applied), &keys[i]);
		} else {
			list_add(restart, sizeof(restart), &keys[i]);
		}
	}
	free(keys);
	const service_common_cfg_t *c = def->common;
	if (!svc->level_given)
		log_set_level(c->log_level);
	/* The daemon compares the rest itself (its upstream lists, say). */
	if (def->reload && svc->obj)
		def->reload(svc->obj, loaded);
	log_info("reload: %s read; applied: %s; needs a restart (unchanged until then): %s",
		 svc->config, applied[0] ? applied : "nothing", restart[0] ? restart : "nothing");
	free(loaded);
	free(running);
}

static void service_on_sighup(uv_signal_t *s, int signum)
{
	(void)signum;
	service_reload(s->data);
}

static void service_on_failed_closed(handles_t *g)
{
	free(container_of(g, service_t, handles));
}

/* Signals on @loop: SIGINT/SIGTERM stop the service once, SIGPIPE is
 * ignored. On failure the handles close (and @svc is freed) when the loop
 * runs next. */
static int service_new(uv_loop_t *loop, const service_def_t *def, const service_args_t *a,
		       metrics_t *m, service_t **outp)
{
	service_t *svc = xcalloc(1, sizeof(*svc));
	svc->loop = loop;
	svc->def = def;
	svc->metrics = m;
	svc->ready_fd = a->ready_fd;
	svc->level_given = a->level_given;
	svc->config = a->config;
	process_metrics(svc);
	handles_init(&svc->handles);
	signal(SIGPIPE, SIG_IGN);
	int r = uv_signal_init(loop, &svc->sigint);
	if (r == 0) {
		handles_add(&svc->handles, &svc->sigint);
		r = uv_signal_init(loop, &svc->sigterm);
	}
	if (r == 0) {
		handles_add(&svc->handles, &svc->sigterm);
		svc->sigint.data = svc->sigterm.data = svc;
		r = uv_signal_start(&svc->sigint, service_on_signal, SIGINT);
	}
	if (r == 0)
		r = uv_signal_start(&svc->sigterm, service_on_signal, SIGTERM);
	if (r == 0)
		r = uv_signal_init(loop, &svc->sighup);
	if (r == 0) {
		handles_add(&svc->handles, &svc->sighup);
		svc->sighup.data = svc;
		r = uv_signal_start(&svc->sighup, service_on_sighup, SIGHUP);
	}
	if (r) {
		log_error("cannot install signal handlers: %s", uv_err_name(r));
		handles_close(&svc->handles, service_on_failed_closed);
		return r;
	}
	*outp = svc;
	return 0;
}

static void service_log_stats(service_t *svc)
{
	char line[1536];
	metrics_summary(svc->metrics, line, sizeof(line));
	if (line[0])
		log_info("stats: %s", line);
}

static void service_on_stats(uv_timer_t *t)
{
	service_log_stats(t->data);
}

/* The log level (unless --log-level was given), the loop-lag metrics, @m's
 * non-zero counters in the log every stats_interval seconds, and GET
 * /metrics if [metrics] port is set or enabled = true. */
static int service_apply_common(service_t *svc)
{
	const service_common_cfg_t *c = svc->def->common;
	if (!svc->level_given)
		log_set_level(c->log_level);
	int lr = loop_lag_init(&svc->lag, svc->loop, svc->metrics);
	if (lr) {
		log_error("cannot create the loop lag timer: %s", uv_err_name(lr));
		return lr;
	}
	handles_add(&svc->handles, &svc->lag.timer);
	svc->lag_ready = true;
	if (c->stats_interval > 0) {
		uint64_t ms = (uint64_t)c->stats_interval * 1000;
		int r = uv_timer_init(svc->loop, &svc->stats_timer);
		if (r) {
			log_error("cannot create the stats timer: %s", uv_err_name(r));
			return r;
		}
		handles_add(&svc->handles, &svc->stats_timer);
		svc->stats_timer.data = svc;
		r = uv_timer_start(&svc->stats_timer, service_on_stats, ms, ms);
		if (r) {
			log_error("cannot start the stats timer: %s", uv_err_name(r));
			return r;
		}
		/* A summary is no reason to keep the loop alive. */
		uv_unref((uv_handle_t *)&svc->stats_timer);
		svc->stats_running = true;
	}
	if (!c->metrics_enabled && c->metrics_port == 0)
		return 0;
	int r = metrics_http_start(svc->loop, svc->metrics, c->metrics_ip, c->metrics_port,
				   c->metrics_reuse_port, &svc->metrics_http);
	if (r)
		return r;
	svc->metrics_port = metrics_http_port(svc->metrics_http);
	metrics_http_page_add("/healthz", page_healthz, svc);
	metrics_http_page_add("/readyz", page_readyz, svc);
	return 0;
}

void service_ready_ports(service_t *svc, const char *ports)
{
	char line[512];
	snprintf(line, sizeof(line), "%s metrics=%d", ports, svc->metrics_port);
	service_ready(svc, line);
}

void service_on_ready_ports(void *svc, const char *ports)
{
	service_ready_ports(svc, ports);
}

void service_on_ready_tcp(void *svc, int port)
{
	char ports[32];
	snprintf(ports, sizeof(ports), "tcp=%d", port);
	service_ready_ports(svc, ports);
}

void service_set_ready_check(service_t *svc, service_ready_fn fn, void *arg)
{
	if (!svc)
		return;
	svc->ready_check = fn;
	svc->ready_arg = arg;
}

/* GET /healthz: the loop runs (it answers this). */
static int page_healthz(void *arg, const char **ctypep, char **bodyp, size_t *lenp)
{
	*ctypep = "text/plain; charset=utf-8";
	*bodyp = xstrdup("ok\n");
	*lenp = 3;
	return 200;
}

/* GET /readyz: serving, and what the service needs to serve is there. */
static int page_readyz(void *arg, const char **ctypep, char **bodyp, size_t *lenp)
{
	service_t *svc = arg;
	char why[160] = "starting: not serving yet";
	bool ready = svc->serving && !svc->stopping &&
		     (!svc->ready_check || svc->ready_check(svc->ready_arg, why, sizeof(why)));
	if (svc->stopping)
		snprintf(why, sizeof(why), "stopping");
	char body[200];
	int n = snprintf(body, sizeof(body), ready ? "ready\n" : "not ready: %s\n", why);
	*ctypep = "text/plain; charset=utf-8";
	*bodyp = xstrdup(body);
	*lenp = (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1;
	return ready ? 200 : 503;
}

/* ---- process metrics, on every daemon ---- */

static double gauge_cpu(void *arg)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double gauge_rss(void *arg)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, resident = 0;
	if (!f)
		return 0;
	int n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	return n == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : 0;
}

static double gauge_fds(void *arg)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	double n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static double gauge_start(void *arg)
{
	const service_t *svc = arg;
	return svc->start_unix;
}

static double gauge_one(void *arg)
{
	return 1;
}

static void process_metrics(service_t *svc)
{
	metrics_t *m = svc->metrics;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	svc->start_unix = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	metrics_gauge(m, "process_cpu_seconds_total", "User and system CPU time spent, seconds",
		      gauge_cpu, svc);
	metrics_gauge(m, "process_resident_memory_bytes", "Resident memory size, bytes", gauge_rss,
		      svc);
	metrics_gauge(m, "process_open_fds", "Open file descriptors", gauge_fds, svc);
	metrics_gauge(m, "process_start_time_seconds", "Start time of the process, Unix seconds",
		      gauge_start, svc);
	char name[128];
	snprintf(name, sizeof(name), "lars_build_info{version=\"%s\",service=\"%s\"}",
		 LARS_VERSION, svc->def->name);
	metrics_gauge(m, name, "The build: version label, value 1", gauge_one, svc);
}

void service_ready(service_t *svc, const char *line)
{
	svc->serving = true;
	if (svc->ready_fd >= 0) {
		char buf[512];
		int n = snprintf(buf, sizeof(buf), "%s\n", line);
		if (n > 0 && write(svc->ready_fd, buf, (size_t)n) != n)
			log_warn("cannot write to --ready-fd %d: %s", svc->ready_fd,
				 strerror(errno));
		close(svc->ready_fd);
		svc->ready_fd = -1;
	}
#if LARS_HAVE_SYSTEMD
	sd_notifyf(0, "READY=1\nSTATUS=serving %s", line);
#endif
}

void service_stop(service_t *svc)
{
	if (svc->stopping)
		return;
	svc->stopping = true;
#if LARS_HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
	metrics_http_close(svc->metrics_http);
	svc->metrics_http = NULL;
	if (svc->stats_running) {
		service_log_stats(svc); /* the last numbers */
		svc->stats_running = false;
	}
	/* Freed by service_run() once the loop is done. */
	handles_close(&svc->handles, NULL);
	void *obj = svc->obj;
	svc->obj = NULL;
	if (obj)
		svc->def->stop(obj);
}

/**
 * service_need_fds() - raise the open-file soft limit for @n connections.
 * @n: the connections the daemon may hold (its max_conns).
 * @why: the key that sets @n, for the log: "[dns] max_conns".
 *
 * Raises RLIMIT_NOFILE's soft limit to @n + NOFILE_MARGIN, at most to the
 * hard limit (logged at info), and warns when the hard limit is lower than
 * that: connections beyond it fail to be accepted (EMFILE). Never lowers the
 * limit; failures are logged and otherwise ignored.
 */
void service_need_fds(unsigned n, const char *why)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return;
	}
	nofile_plan_t p = nofile_plan(rl.rlim_cur, rl.rlim_max, n);
	if (p.too_low)
		log_warn("%s = %u needs about %llu open files; the hard limit is %llu: "
			 "connections beyond about %llu will fail (raise LimitNOFILE= "
			 "or the hard ulimit -n)",
			 why, n, (unsigned long long)p.need, (unsigned long long)rl.rlim_max,
			 (unsigned long long)(rl.rlim_max > NOFILE_MARGIN
						      ? rl.rlim_max - NOFILE_MARGIN : 0));
	if (!p.raise)
		return;
	unsigned long long old = rl.rlim_cur;
	rl.rlim_cur = p.soft;
	if (setrlimit(RLIMIT_NOFILE, &rl)) {
		log_warn("cannot raise the open-file limit from %llu to %llu: %s", old,
			 (unsigned long long)p.soft, strerror(errno));
		return;
	}
	log_info("open-file limit raised from %llu to %llu for %s = %u", old,
		 (unsigned long long)p.soft, why, n);
}

void service_fail(service_t *svc)
{
	svc->failed = true;
	service_stop(svc);
}

static void service_close_stray(uv_handle_t *h, void *arg)
{
	unsigned *n = arg;
	if (uv_is_closing(h))
		return;
	/* Its owner is never freed: a service that leaves handles open at
	 * shutdown has a bug worth seeing. */
	log_warn("closing stray %s handle at shutdown", uv_handle_type_name(h->type));
	(*n)++;
	uv_close(h, NULL);
}

/* Close whatever handles remain and @loop itself. Return: 0, or UV_EBUSY
 * (logged) if it would not close. */
static int service_close_loop(uv_loop_t *loop, unsigned *n_strayp)
{
	*n_strayp = 0;
	uv_walk(loop, service_close_stray, n_strayp);
	(void)uv_run(loop, UV_RUN_DEFAULT); /* nothing is left to keep it busy */
	int r = uv_loop_close(loop);
	if (r)
		log_error("event loop did not close: %s", uv_err_name(r));
	return r;
}

/* Run until the service stopped, then close the loop; frees @svc.
 * Return: 0 on a clean shutdown, 1 otherwise. */
static int service_run(service_t *svc)
{
	uv_loop_t *loop = svc->loop;
	/* From here on: the daemon's start may have taken a while, but that
	 * was before the loop served anything. */
	if (svc->lag_ready && !svc->stopping) {
		int r = loop_lag_start(&svc->lag);
		if (r)
			log_warn("cannot start the loop lag timer: %s", uv_err_name(r));
	}
	/* Returns once nothing is active: after a stop, when all is closed. */
	(void)uv_run(loop, UV_RUN_DEFAULT);
	bool clean = svc->stopping && !svc->failed;
	if (!svc->stopping)
		service_stop(svc);
	unsigned n_stray;
	if (service_close_loop(loop, &n_stray) || n_stray)
		clean = false;
	if (svc->ready_fd >= 0)
		close(svc->ready_fd);
	metrics_http_page_del("/healthz");
	metrics_http_page_del("/readyz");
	free(svc);
	return clean ? 0 : 1;
}

/*
 * --check[=connect]: the configuration parsed strictly, the daemon's own
 * checks, the listen addresses bound for a moment, and with =connect its
 * database and upstreams. Messages are "NAME: FILE[:LINE]: reason" lines on
 * stderr. Return: 0 when the daemon would start, else 2.
 */
static int service_check_run(const service_def_t *def, const service_args_t *a)
{
	log_init_cli(def->name, a->level_given ? a->level : LOG_LVL_WARN);
	config_set_strict(true);
	if (service_configure(def, a->config))
		return 2;
	service_check_t chk = { .path = a->config, .connect = a->check > 1 };
	const service_common_cfg_t *c = def->common;
	if (c->metrics_enabled || c->metrics_port)
		service_check_listen(&chk, "[metrics] ip/port", SOCK_STREAM, c->metrics_ip,
				     c->metrics_port, c->metrics_reuse_port);
	if (def->self_check)
		def->self_check(def->cfg, &chk);
	if (chk.errors)
		return 2;
	printf("%s: %s: OK, the daemon would start%s%s\n", def->name, a->config,
	       chk.connect ? " (its database and upstreams answered)" : "",
	       chk.warnings ? " (see the warnings above)" : "");
	return 0;
}

/**
 * service_main() - run the daemon @def from its command line.
 * @def: the daemon; its configuration storage is filled here.
 * @argc: as main() got it.
 * @argv: as main() got it.
 *
 * Exit statuses: 2 for bad arguments or configuration (nothing started),
 * 1 if the loop, the signals, the [metrics] listener or @def->start failed
 * or the shutdown was not clean, 0 otherwise (and for --help / --version).
 * "NAME stopped" is the last log line of a run.
 * Return: the process exit status.
 */
int service_main(const service_def_t *def, int argc, char **argv)
{
	service_args_t args;
	int r = service_parse_args(def, argc, argv, &args);
	if (r)
		return r > 0 ? 0 : 2;
	if (args.check)
		return service_check_run(def, &args);
	log_init(args.level);
	/* The defaults, for a reload to start from (SIGHUP). */
	void *initial = def->cfg_size ? xmalloc(def->cfg_size) : NULL;
	if (initial)
		memcpy(initial, def->cfg, def->cfg_size);
	if (service_configure(def, args.config)) {
		free(initial);
		return 2;
	}

	uv_loop_t loop;
	r = uv_loop_init(&loop);
	if (r) {
		log_error("cannot create the event loop: %s", uv_err_name(r));
		return 1;
	}
	metrics_t *m = NULL;
	r = metrics_new(&m);
	service_t *svc;
	if (r == 0)
		r = service_new(&loop, def, &args, m, &svc);
	if (r) {
		unsigned n_stray;
		(void)service_close_loop(&loop, &n_stray);
		metrics_free(m);
		free(initial);
		return 1;
	}
	svc->cfg_initial = initial;
	if (service_apply_common(svc) || def->start(&loop, svc, def->cfg, m, &svc->obj))
		service_fail(svc);
	r = service_run(svc);
	metrics_free(m);
	free(initial);
	log_info("%s stopped", def->name);
	return r;
}
