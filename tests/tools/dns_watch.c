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
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "msg.h"

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

/* Milliseconds left until @deadline (monotonic seconds); ≤ 0 when past. */
static int left_ms(double deadline)
{
	double left = (deadline - harness_now_s()) * 1000.0;
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left + 1;
}

/*
 * Connect to @ip:@port before @deadline. harness_tcp_connect() only knows
 * loopback and blocks, so --ip needs this: a non-blocking connect bounded by
 * the overall timeout. Return: the (blocking) socket, -1 on error, -2 on timeout.
 */
static int connect_before(struct in_addr ip, int port, double deadline)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		fprintf(stderr, "lars-dns-watch: socket: %s\n", strerror(errno));
		return -1;
	}
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr = ip };
	int err = 0;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		if (errno != EINPROGRESS) {
			err = errno;
		} else {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			int r;
			do
				r = poll(&pf, 1, left_ms(deadline));
			while (r < 0 && errno == EINTR);
			if (r == 0) {
				close(fd);
				return -2;
			}
			socklen_t len = sizeof(err);
			if (r < 0)
				err = errno;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
				err = errno;
		}
	}
	if (err) {
		char text[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &ip, text, sizeof(text));
		fprintf(stderr, "lars-dns-watch: connect %s:%d: %s\n", text, port, strerror(err));
		close(fd);
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
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

	double deadline = harness_now_s() + timeout_s;
	int fd = connect_before(ip, (int)port, deadline);
	if (fd == -2) {
		fprintf(stderr, "lars-dns-watch: timeout after %g s (connecting)\n", timeout_s);
		return 1;
	}
	if (fd < 0)
		return 1;

	lars_GetRouteRequest req = { .modid = (int32_t)modid, .cmdid = (int32_t)cmdid };
	uint8_t reqbuf[8 + lars_GetRouteRequest_size];
	size_t reqlen;
	if (msg_frame_encode(LARS_ID_GET_ROUTE_REQ, lars_GetRouteRequest_fields, &req,
			     reqbuf, sizeof(reqbuf), &reqlen) ||
	    harness_send_all(fd, reqbuf, reqlen)) {
		fprintf(stderr, "lars-dns-watch: sending the request: %s\n", strerror(errno));
		close(fd);
		return 1;
	}

	/* The largest frame lars-dns sends by default. */
	size_t cap = FRAME_TCP_MAX_DEFAULT;
	uint8_t *body = malloc(cap);
	if (!body) {
		fprintf(stderr, "lars-dns-watch: out of memory\n");
		close(fd);
		return 1;
	}
	long printed = 0;
	int rc = 1;
	for (;;) {
		int ms = left_ms(deadline);
		if (ms <= 0) {
			fprintf(stderr, "lars-dns-watch: timeout after %g s (%ld line%s printed)\n",
				timeout_s, printed, printed == 1 ? "" : "s");
			break;
		}
		frame_hdr_t hdr = { 0, 0 };
		int r = harness_recv_frame(fd, &hdr, body, cap, ms);
		if (r == 0) {
			fprintf(stderr, "lars-dns-watch: lars-dns closed the connection\n");
			break;
		}
		if (r < 0) {
			if (left_ms(deadline) > 0 && hdr.msglen >= 0 && (size_t)hdr.msglen > cap)
				fprintf(stderr, "lars-dns-watch: frame of %d bytes is too large\n",
					(int)hdr.msglen);
			else if (left_ms(deadline) > 0)
				fprintf(stderr, "lars-dns-watch: receive error\n");
			else
				continue; /* reported as a timeout above */
			break;
		}
		if (hdr.msgid != LARS_ID_GET_ROUTE_RESP) {
			fprintf(stderr, "lars-dns-watch: ignoring a frame with msgid %d\n",
				(int)hdr.msgid);
			continue;
		}
		lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
		msg_vec_t vec;
		msg_hosts_init(&vec, SIZE_MAX / sizeof(lars_HostInfo));
		msg_vec_bind(&vec, &resp.host);
		const char *why = NULL;
		if (msg_decode(lars_GetRouteResponse_fields, &resp, body, (size_t)hdr.msglen,
			       &why)) {
			fprintf(stderr, "lars-dns-watch: bad GetRouteResponse: %s\n",
				why ? why : "?");
			msg_vec_deinit(&vec);
			break;
		}
		if (resp.modid == (int32_t)modid && resp.cmdid == (int32_t)cmdid) {
			print_route(resp.modid, resp.cmdid, vec.v, vec.n);
			printed++;
		}
		msg_vec_deinit(&vec);
		if (count && printed >= count) {
			rc = 0;
			break;
		}
	}
	free(body);
	close(fd);
	return rc;
}
