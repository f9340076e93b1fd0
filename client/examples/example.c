// SPDX-License-Identifier: MIT
// A program to copy: ask the local lars-agent for a host of (modid, cmdid),
// call it, and report how the call went and how long it took, so the agent
// can steer away from failing hosts and lars-reporter can show slow ones.
//
//   cc example.c $(pkg-config --cflags --libs lars-client) -o example
//   ./example MODID CMDID [AGENT_BASE_PORT]
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <lars_client.h>

/* The "call": here a TCP connect with a timeout; yours is an RPC. */
static int call_service(const lars_host_t *host)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)host->port),
				 .sin_addr.s_addr = htonl(host->ip) };
	int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	if (r && errno == EINPROGRESS) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int err = 0;
		socklen_t len = sizeof(err);
		if (poll(&p, 1, 500) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0)
			r = err ? -err : 0;
		else
			r = -ETIMEDOUT;
	} else if (r) {
		r = -errno;
	}
	close(fd);
	return r;
}

/* A monotonic clock in microseconds, for the call's duration. */
static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s MODID CMDID [AGENT_BASE_PORT]\n", argv[0]);
		return 64;
	}
	int modid = atoi(argv[1]), cmdid = atoi(argv[2]);

	lars_client_options_t opts;
	lars_client_options_init(&opts);
	if (argc > 3)
		opts.base_port = atoi(argv[3]);
	lars_client_t *client;
	int r = lars_client_new(&opts, &client);
	if (r) {
		fprintf(stderr, "cannot create a lars client: %s\n", strerror(-r));
		return LARS_SYSTEM_ERROR;
	}

	/* Once at start: the agent fetches the route from lars-dns. */
	r = lars_reg_init(client, modid, cmdid);
	if (r != LARS_SUCC)
		fprintf(stderr, "route %d/%d not ready: %s %s\n", modid, cmdid, lars_strerror(r),
			lars_client_error(client));

	lars_host_t host;
	r = lars_get_host(client, modid, cmdid, &host);
	switch (r) {
	case LARS_SUCC: {
		uint64_t t0 = now_us();
		int err = call_service(&host);
		uint64_t us = now_us() - t0;
		printf("called %s:%d: %s in %llu us\n", host.ip_str, host.port,
		       err ? strerror(-err) : "ok", (unsigned long long)us);
		/* Always report: this is how bad hosts leave the rotation. The
		 * duration (0 = not measured) feeds the latency statistics. */
		lars_report_latency(client, modid, cmdid, &host, err ? LARS_SYSTEM_ERROR : LARS_SUCC,
				    us == 0 ? 1 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us);
		break;
	}
	case LARS_OVERLOAD:
		fprintf(stderr, "every host of %d/%d is overloaded; try later\n", modid, cmdid);
		break;
	case LARS_NOEXIST:
		fprintf(stderr, "no host serves %d/%d\n", modid, cmdid);
		break;
	default:
		fprintf(stderr, "cannot ask the agent: %s\n", lars_client_error(client));
	}
	lars_client_free(client);
	return r;
}
