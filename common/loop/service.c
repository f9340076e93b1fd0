// SPDX-License-Identifier: MIT
// What every Lars daemon shares: arguments, signals, readiness, shutdown.
#include "service.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lars_config.h"
#include "metrics_http.h"
#include "xalloc.h"

#if LARS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

struct service {
	uv_loop_t *loop;
	uv_signal_t sigint;
	uv_signal_t sigterm;
	service_stop_cb on_stop;
	void *user;
	int ready_fd;
	bool level_given;
	bool stopping;
	bool failed;
	int metrics_port;
	metrics_http_t *metrics_http;
	metrics_t *stats_metrics;
	uv_timer_t stats_timer;
	bool stats_running;
};

int service_parse_log_level(const char *value, void *dst, const char **whyp)
{
	if (log_level_parse(value, dst)) {
		*whyp = "expected error, warn, info or debug";
		return -EINVAL;
	}
	return 0;
}

void service_common_defaults(service_common_cfg_t *c)
{
	*c = (service_common_cfg_t){ .log_level = LOG_LVL_INFO,
				      .stats_interval = 60 };
	snprintf(c->metrics_ip, sizeof(c->metrics_ip), "127.0.0.1");
}

static void usage(FILE *f, const char *prog, const char *summary,
		  const service_flag_t *flags)
{
	fprintf(f,
		"Usage: %s -c FILE [--ready-fd N] [--log-level LEVEL]%s\n"
		"%s\n\n"
		"  -c, --config FILE    configuration (INI)\n"
		"      --ready-fd N     write \"name=port ...\" to fd N once serving, then close it\n"
		"      --log-level L    error, warn, info (default) or debug\n",
		prog, flags && flags[0].name ? " [OPTIONS]" : "", summary);
	for (size_t i = 0; flags && flags[i].name; i++)
		fprintf(f, "      --%-16s %s\n", flags[i].name, flags[i].help);
	fprintf(f,
		"  -h, --help           this help\n"
		"      --version        print the version\n");
}

#define SERVICE_MAX_FLAGS 8

int service_parse_args(const char *prog, const char *summary,
		       const service_flag_t *flags, int argc, char **argv,
		       service_args_t *a)
{
	struct option longopts[6 + SERVICE_MAX_FLAGS] = {
		{ "config", required_argument, NULL, 'c' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
	};
	size_t n_flags = 0;
	for (; flags && flags[n_flags].name && n_flags < SERVICE_MAX_FLAGS; n_flags++)
		longopts[5 + n_flags] = (struct option){ flags[n_flags].name, no_argument,
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
		case 'h':
			usage(stdout, prog, summary, flags);
			return 1;
		case 'V':
			printf("%s %s\n", prog, LARS_VERSION);
			return 1;
		default:
			usage(stderr, prog, summary, flags);
			return -EINVAL;
		}
	}
	if (optind < argc || !a->config) {
		usage(stderr, prog, summary, flags);
		return -EINVAL;
	}
	return 0;
}

static void service_on_signal(uv_signal_t *s, int signum)
{
	service_t *svc = s->data;
	log_info("received %s, shutting down", strsignal(signum));
	service_stop(svc);
}

int service_new(uv_loop_t *loop, const service_args_t *a, service_stop_cb on_stop,
		void *user, service_t **outp)
{
	service_t *svc = xcalloc(1, sizeof(*svc));
	svc->loop = loop;
	svc->on_stop = on_stop;
	svc->user = user;
	svc->ready_fd = a->ready_fd;
	svc->level_given = a->level_given;
	signal(SIGPIPE, SIG_IGN);
	uv_signal_init(loop, &svc->sigint);
	uv_signal_init(loop, &svc->sigterm);
	svc->sigint.data = svc->sigterm.data = svc;
	int r = uv_signal_start(&svc->sigint, service_on_signal, SIGINT);
	if (r == 0)
		r = uv_signal_start(&svc->sigterm, service_on_signal, SIGTERM);
	if (r) {
		log_error("cannot install signal handlers: %s", uv_strerror(r));
		uv_close((uv_handle_t *)&svc->sigint, NULL);
		uv_close((uv_handle_t *)&svc->sigterm, NULL);
		uv_run(loop, UV_RUN_DEFAULT);
		free(svc);
		return r;
	}
	*outp = svc;
	return 0;
}

static void service_on_stats(uv_timer_t *t)
{
	service_t *svc = t->data;
	char line[1536];
	metrics_summary(svc->stats_metrics, line, sizeof(line));
	if (line[0])
		log_info("stats: %s", line);
}

int service_apply_common(service_t *svc, const service_common_cfg_t *c,
			 metrics_t *m, int *portp)
{
	if (!svc->level_given)
		log_set_level(c->log_level);
	*portp = 0;
	if (c->stats_interval > 0 && !svc->stats_running) {
		uint64_t ms = (uint64_t)c->stats_interval * 1000;
		svc->stats_metrics = m;
		uv_timer_init(svc->loop, &svc->stats_timer);
		svc->stats_timer.data = svc;
		uv_timer_start(&svc->stats_timer, service_on_stats, ms, ms);
		/* A summary is no reason to keep the loop alive. */
		uv_unref((uv_handle_t *)&svc->stats_timer);
		svc->stats_running = true;
	}
	if (!c->metrics_enabled && c->metrics_port == 0)
		return 0;
	int r = metrics_http_start(svc->loop, m, c->metrics_ip, c->metrics_port,
				   c->metrics_reuse_port, &svc->metrics_http);
	if (r)
		return r;
	*portp = svc->metrics_port = metrics_http_port(svc->metrics_http);
	return 0;
}

void service_ready_ports(service_t *svc, const char *ports)
{
	char line[512];
	snprintf(line, sizeof(line), "%s metrics=%d", ports, svc->metrics_port);
	service_ready(svc, line);
}

void service_ready(service_t *svc, const char *line)
{
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
	uv_close((uv_handle_t *)&svc->sigint, NULL);
	uv_close((uv_handle_t *)&svc->sigterm, NULL);
	metrics_http_close(svc->metrics_http);
	svc->metrics_http = NULL;
	if (svc->stats_running) {
		service_on_stats(&svc->stats_timer); /* the last numbers */
		uv_close((uv_handle_t *)&svc->stats_timer, NULL);
		svc->stats_running = false;
	}
	if (svc->on_stop)
		svc->on_stop(svc->user);
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

void service_fail(service_t *svc)
{
	svc->failed = true;
	service_stop(svc);
}

int service_run(service_t *svc)
{
	uv_loop_t *loop = svc->loop;
	uv_run(loop, UV_RUN_DEFAULT);
	bool clean = svc->stopping && !svc->failed;
	if (!svc->stopping)
		service_stop(svc);
	/* Whatever the service left open is closed here, so the loop can close. */
	unsigned n_stray = 0;
	uv_walk(loop, service_close_stray, &n_stray);
	uv_run(loop, UV_RUN_DEFAULT);
	if (n_stray)
		clean = false;
	int r = uv_loop_close(loop);
	if (r) {
		log_error("event loop did not close: %s", uv_strerror(r));
		clean = false;
	}
	if (svc->ready_fd >= 0)
		close(svc->ready_fd);
	free(svc);
	return clean ? 0 : 1;
}

int service_main(const char *prog, const service_args_t *args,
		 const service_common_cfg_t *common, service_start_fn start,
		 service_stop_cb stop, void *user)
{
	uv_loop_t loop;
	metrics_t *m;
	service_t *svc;
	int port;

	uv_loop_init(&loop);
	metrics_new(&m);
	if (service_new(&loop, args, stop, user, &svc)) {
		metrics_free(m);
		return 1;
	}
	if (service_apply_common(svc, common, m, &port) || start(&loop, svc, m, user))
		service_fail(svc);
	int r = service_run(svc);
	metrics_free(m);
	log_info("%s stopped", prog);
	return r;
}
