/* SPDX-License-Identifier: MIT */
/*
 * lars_client.h - the Lars client library: ask the local lars-agent which
 * host serves (modid, cmdid), call that host, report how the call went.
 *
 * Thread safety: a lars_client_t belongs to one thread at a time (it owns
 * its sockets and its request sequence). Give each thread its own client;
 * clients are cheap (three UDP sockets). Distinct clients may be used from
 * distinct threads concurrently.
 *
 * Every call returns within options.timeout_ms * options.retries (and
 * lars_reg_init within five times that): the agent may be down, nothing
 * blocks forever. Nothing here aborts the process; allocation failures are
 * reported as -ENOMEM.
 */
#ifndef LARS_CLIENT_H
#define LARS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes, as the original Lars. */
#define LARS_SUCC 0         /* a host was chosen / the call went through */
#define LARS_OVERLOAD 1     /* every host of the route is overloaded right now */
#define LARS_SYSTEM_ERROR 2 /* no answer in time, or a bad one: see lars_client_error() */
#define LARS_NOEXIST 3      /* the route has no hosts (or is still being fetched) */

typedef struct lars_client lars_client_t;

/** Where the agent is and how long to wait for it. */
typedef struct lars_client_options {
	const char *agent_ip; /* default "127.0.0.1" */
	int base_port;        /* default 8888; the agent's sockets start there */
	int timeout_ms;       /* per attempt, default 100 */
	int retries;          /* attempts per call, default 3 */
	int sockets;          /* the agent's [agent] sockets, default 3 (1..16);
			       * a key uses base_port + (modid + cmdid) % sockets */
} lars_client_options_t;

/** A host: the IPv4 address as a number (a<<24|b<<16|c<<8|d) and as text. */
typedef struct lars_host {
	uint32_t ip;
	char ip_str[16];
	int port;
} lars_host_t;

/** lars_client_options_init() - fill @opts with the defaults above. */
void lars_client_options_init(lars_client_options_t *opts);

/** lars_client_new() - a client (@opts NULL = defaults). Returns 0, -EINVAL or -errno. */
int lars_client_new(const lars_client_options_t *opts, lars_client_t **clientp);

/** lars_client_free() - close the sockets and free @client (NULL is fine). */
void lars_client_free(lars_client_t *client);

/**
 * lars_reg_init() - make sure the agent has the route: get_route, up to five
 * times with a 50 ms pause until hosts appear. Call once at start up.
 * Returns LARS_SUCC when the route has hosts, else LARS_NOEXIST / LARS_SYSTEM_ERROR.
 */
int lars_reg_init(lars_client_t *client, int modid, int cmdid);

/** lars_get_host() - one host for (modid, cmdid) into @host. Returns a LARS_* code. */
int lars_get_host(lars_client_t *client, int modid, int cmdid, lars_host_t *host);

/**
 * lars_report() - how a call to @host went (@retcode LARS_SUCC or an error
 * code of yours; anything but LARS_SUCC counts as a failure). No answer is
 * awaited. Returns LARS_SUCC, or LARS_SYSTEM_ERROR if it could not be sent.
 */
int lars_report(lars_client_t *client, int modid, int cmdid, const lars_host_t *host,
		int retcode);

/**
 * lars_get_route() - every host of (modid, cmdid): up to @cap into @hosts;
 * *@n_hosts gets how many the agent sent (may be more than @cap; the agent
 * sends at most what one datagram holds, about 2,700 hosts).
 * Returns LARS_SUCC (possibly with 0 hosts) or LARS_SYSTEM_ERROR.
 */
int lars_get_route(lars_client_t *client, int modid, int cmdid, lars_host_t *hosts,
		   size_t cap, size_t *n_hosts);

/** lars_strerror() - a short name for a LARS_* code. */
const char *lars_strerror(int code);

/** lars_client_error() - why the last call returned LARS_SYSTEM_ERROR ("" if it did not). */
const char *lars_client_error(const lars_client_t *client);

#ifdef __cplusplus
}
#endif

#endif /* LARS_CLIENT_H */
