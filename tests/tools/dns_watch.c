// SPDX-License-Identifier: MIT
// lars-dns-watch: subscribe to one route at lars-dns like an agent does and
// print every GetRouteResponse for it, one line each, for shell tests:
//
//   route MODID CMDID N HOSTS
//
// HOSTS is "ip:port,ip:port,..." sorted by address then port (numerically,
// as lars-dns sorts them), or "-" when the route has no host. The first line
// answers the request; the following ones are pushes on route changes.
//
// Exit: 0 after --count lines, 1 on timeout (overall, connect included) or a
// connection error, 2 on bad arguments. Diagnostics go to stderr only.
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"
#include "wire_client.h"

#define USAGE                                                                  \
	"usage: lars-dns-watch [--ip IP] --port PORT [--count N] "             \
	"[--timeout SECONDS] MODID CMDID\n"

static void usage_exit(const char *why)
{
	if (why)
		fprintf(stderr, "lars-dns-watch: %s\n", why);
	fputs(USAGE, stderr);
	exit(2);
}

static bool parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static int host_cmp(const void *pa, const void *pb)
{
	const lars_HostInfo *a = pa, *b = pb;
	uint32_t ia = (uint32_t)a->ip, ib = (uint32_t)b->ip;
	if (ia != ib)
		return ia < ib ? -1 : 1;
	return (a->port > b->port) - (a->port < b->port);
}

static void print_route(int32_t modid, int32_t cmdid, lars_HostInfo *hosts, size_t n)
{
	qsort(hosts, n, sizeof(*hosts), host_cmp);
	printf("route %d %d %zu ", (int)modid, (int)cmdid, n);
	if (!n)
		putchar('-');
	for (size_t i = 0; i < n; i++) {
		char ip[16];
		msg_ip_to_str(hosts[i].ip, ip);
		printf("%s%s:%d", i ? "," : "", ip, (int)hosts[i].port);
	}
	putchar('\n');
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ip", required_argument, NULL, 'i' },
		{ "port", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *ip_text = "127.0.0.1";
	long port = -1, count = 0;
	double timeout_s = 30;
	int c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'i':
			ip_text = optarg;
			break;
		case 'p':
			if (!parse_long(optarg, 1, 65535, &port))
				usage_exit("--port: expected 1..65535");
			break;
		case 'n':
			if (!parse_long(optarg, 0, LONG_MAX, &count))
				usage_exit("--count: expected a number >= 0");
			break;
		case 't':
			errno = 0;
			timeout_s = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(timeout_s > 0) || timeout_s > 1e6)
				usage_exit("--timeout: expected seconds > 0");
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		case ':':
			fprintf(stderr, "lars-dns-watch: %s needs a value\n", argv[optind - 1]);
			usage_exit(NULL);
			break;
		default:
			fprintf(stderr, "lars-dns-watch: unknown option %s\n", argv[optind - 1]);
			usage_exit(NULL);
		}
	}
	/* Options may also follow the operands; a negative id goes after "--". */
	if (argc - optind != 2)
		usage_exit("expected MODID and CMDID");
	long modid, cmdid;
	if (!parse_long(argv[optind], INT32_MIN, INT32_MAX, &modid) ||
	    !parse_long(argv[optind + 1], INT32_MIN, INT32_MAX, &cmdid))
		usage_exit("MODID and CMDID must be 32-bit integers");
	if (port < 0)
		usage_exit("--port is required");
	struct in_addr ip;
	if (inet_pton(AF_INET, ip_text, &ip) != 1)
		usage_exit("--ip: expected an IPv4 address");

	int64_t deadline = harness_deadline((int)(timeout_s * 1000.0) + 1);
	int fd = wc_connect(ip_text, (int)port, deadline);
	if (fd == -ETIMEDOUT) {
		fprintf(stderr, "lars-dns-watch: timeout after %g s (connecting)\n", timeout_s);
		return 1;
	}
	if (fd < 0) {
		fprintf(stderr, "lars-dns-watch: connect %s:%ld: %s\n", ip_text, port, strerror(-fd));
		return 1;
	}
	int r = wc_get_route_send(fd, (int32_t)modid, (int32_t)cmdid);
	if (r) {
		fprintf(stderr, "lars-dns-watch: sending the request: %s\n", strerror(-r));
		close(fd);
		return 1;
	}

	long printed = 0;
	int rc = 1;
	for (;;) {
		wc_route_t route;
		int32_t msgid = 0;
		/* The largest frame lars-dns sends by default. */
		r = wc_route_recv(fd, &route, FRAME_TCP_MAX_DEFAULT, deadline, &msgid);
		if (r == -ETIMEDOUT) {
			fprintf(stderr, "lars-dns-watch: timeout after %g s (%ld line%s printed)\n",
				timeout_s, printed, printed == 1 ? "" : "s");
			break;
		}
		if (r == 0) {
			fprintf(stderr, "lars-dns-watch: lars-dns closed the connection\n");
			break;
		}
		if (r == -EBADMSG) {
			fprintf(stderr, "lars-dns-watch: ignoring a frame with msgid %d\n", (int)msgid);
			continue;
		}
		if (r == -EMSGSIZE) {
			fprintf(stderr, "lars-dns-watch: frame too large (above %d bytes)\n",
				(int)FRAME_TCP_MAX_DEFAULT);
			break;
		}
		if (r == -EPROTO) {
			fprintf(stderr, "lars-dns-watch: bad GetRouteResponse\n");
			break;
		}
		if (r < 0) {
			fprintf(stderr, "lars-dns-watch: receive error: %s\n", strerror(-r));
			break;
		}
		if (route.modid == (int32_t)modid && route.cmdid == (int32_t)cmdid) {
			print_route(route.modid, route.cmdid, route.hosts, route.n);
			printed++;
		}
		wc_route_free(&route);
		if (count && printed >= count) {
			rc = 0;
			break;
		}
	}
	close(fd);
	return rc;
}
