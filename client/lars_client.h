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
 * lars_reg_init within five times that; lars_register and lars_deregister
 * wait for the agent as their comments say, always bounded): the agent may
 * be down, nothing blocks forever. Nothing here aborts the process; allocation failures are
 * reported as -ENOMEM.
 *
 * Bad arguments never crash: a NULL client or a NULL out-pointer makes a
 * call return LARS_SYSTEM_ERROR (lars_client_new: -EINVAL), and a negative
 * modid or cmdid is refused (LARS_SYSTEM_ERROR, nothing sent). The reason
 * is in lars_client_error(client), and for a NULL client in
 * lars_client_error(NULL) (per thread).
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
#define LARS_SYSTEM_ERROR 2 /* no answer in time, a bad one, bad arguments, or the agent
			     * cannot reach lars-dns for this route ("route service
			     * unreachable"): see lars_client_error() */
#define LARS_NOEXIST 3      /* the route has no hosts (or is still being fetched) */

typedef struct lars_client lars_client_t;

/**
 * Where the agent is and how long to wait for it.
 *
 * ABI rule: @size is the size of this struct as the caller was compiled
 * (lars_client_options_init() sets it to sizeof(lars_client_options_t)).
 * The library reads only the fields that @size covers; a field added in a
 * later version goes at the end and takes its default for callers compiled
 * before it existed. A @size below LARS_CLIENT_OPTIONS_MIN_SIZE (the fields
 * up to @sockets) is refused with -EINVAL, so always start from
 * lars_client_options_init(). (@size arrived with liblars-client 1.1;
 * programs built against 1.0, whose struct had no @size, keep working:
 * they bind the LARS_CLIENT_1 versions of the two calls, which read the
 * old layout.)
 */
typedef struct lars_client_options {
	size_t size;          /* set by lars_client_options_init() */
	const char *agent_ip; /* default "127.0.0.1" */
	int base_port;        /* default 8888; the agent's sockets start there */
	int timeout_ms;       /* per attempt, default 100 */
	int retries;          /* attempts per call, default 3 */
	int sockets;          /* the agent's [agent] sockets, default 3 (1..16);
			       * a key uses base_port + (modid + cmdid) % sockets */
	/* liblars-client 1.5: the agent's routes in shared memory (issue 22). */
	int shm;              /* 1 (default): pick in-process from the agent's snapshot
			       * when there is one ($LARS_SHM=0 turns it off); 0: UDP only */
	const char *shm_path; /* NULL: $LARS_SHM_PATH, else /run/lars/agent-<base_port>.shm */
	int shm_max_stale_s;  /* agent gone: keep picking (every non-drained host) from
			       * the last snapshot this long; default 600 */
	/* New fields go here, never above. */
} lars_client_options_t;

/* The smallest @size accepted: every field of the first version with @size. */
#define LARS_CLIENT_OPTIONS_MIN_SIZE                                           \
	(offsetof(lars_client_options_t, sockets) + sizeof(int))

/** A host: the IPv4 address as a number (a<<24|b<<16|c<<8|d) and as text. */
typedef struct lars_host {
	uint32_t ip;
	char ip_str[16];
	int port;
} lars_host_t;

/** lars_client_options_init() - fill @opts with the defaults above and set @opts->size. */
void lars_client_options_init(lars_client_options_t *opts);

/**
 * lars_client_new() - a client. @opts NULL: the defaults, with the agent
 * from $LARS_AGENT ("IPV4:BASEPORT") when it is set and not empty, as the
 * lars tool does. Returns 0, -EINVAL (bad options or $LARS_AGENT) or -errno.
 */
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
 * awaited. Returns LARS_SUCC, or LARS_SYSTEM_ERROR if it could not be sent
 * or the agent's port refused it at once (nothing listens there: the
 * reason says "Connection refused"). A refusal can also come too late for
 * this call, or not at all; only an answered call (lars_get_host,
 * lars_get_route) proves the agent is there.
 */
int lars_report(lars_client_t *client, int modid, int cmdid, const lars_host_t *host,
		int retcode);

/* lars_report_latency() is in the library from this version on (1.2). */
#define LARS_CLIENT_HAS_REPORT_LATENCY 1

/**
 * lars_report_latency() - lars_report() with how long the call to @host
 * took, in microseconds (@latency_us; 0 = not measured, sent as
 * lars_report() sends). The agent adds the durations per host (count, sum
 * and a histogram of fixed buckets) to what it reports, so lars-reporter
 * can store mean and p50/p90/p99 per host per minute. Measure the call
 * itself (from just before it to its answer, a monotonic clock), not the
 * lars_get_host() before it; a duration above UINT32_MAX us (71 minutes)
 * should be clamped. Same returns as lars_report(). (liblars-client 1.2,
 * symbol version LARS_CLIENT_3; an original agent ignores the duration.)
 */
int lars_report_latency(lars_client_t *client, int modid, int cmdid, const lars_host_t *host,
			int retcode, uint32_t latency_us);

/**
 * lars_get_route() - every host of (modid, cmdid): up to @cap into @hosts
 * (NULL if @cap is 0); *@n_hosts gets how many the agent sent (may be more
 * than @cap). The agent sends what one datagram holds (about 5,400 hosts of
 * ordinary addresses); for a larger route the list is cut: use
 * lars_get_route_ex() to learn that. Returns LARS_SUCC (possibly with 0
 * hosts) or LARS_SYSTEM_ERROR.
 */
int lars_get_route(lars_client_t *client, int modid, int cmdid, lars_host_t *hosts,
		   size_t cap, size_t *n_hosts);

/**
 * lars_get_route_ex() - lars_get_route(), and *@n_total gets the route's
 * whole host count: equal to *@n_hosts, or larger when the agent cut the
 * list to fit one datagram (then *@n_hosts of *@n_total hosts were sent).
 * This is how the C API reports a cut list; lars_get_route() does not.
 */
int lars_get_route_ex(lars_client_t *client, int modid, int cmdid, lars_host_t *hosts,
		      size_t cap, size_t *n_hosts, size_t *n_total);

/* lars_get_route_flags() is in the library from this version on (1.3). */
#define LARS_CLIENT_HAS_ROUTE_FLAGS 1

/* lars_get_route_flags(): per host, the state the agent marks. */
#define LARS_HOST_DRAINED 0x1u /* drained by an operator: our agent picks it no more */

/**
 * lars_get_route_flags() - lars_get_route_ex(), and @flags (NULL, or room
 * for @cap) gets per host LARS_HOST_* bits, 0 for a host in ordinary use.
 * A drained host is still listed (it may still answer calls in flight) but
 * lars_get_host() no longer returns it. An original lars_agent marks none.
 */
int lars_get_route_flags(lars_client_t *client, int modid, int cmdid, lars_host_t *hosts,
			 unsigned *flags, size_t cap, size_t *n_hosts, size_t *n_total);

/* lars_register() and lars_deregister() are in the library from this version on (1.4). */
#define LARS_CLIENT_HAS_REGISTER 1

/**
 * How lars_register() registers an instance (self-registration, issue 23).
 *
 * ABI rule as lars_client_options_t: @size is set by
 * lars_register_options_init(), the library reads only the fields it
 * covers, and a @size below LARS_REGISTER_OPTIONS_MIN_SIZE is refused.
 */
typedef struct lars_register_options {
	size_t size;       /* set by lars_register_options_init() */
	const char *ip;    /* dotted IPv4; NULL, "" or "0.0.0.0": the agent's caller address */
	int weight;        /* 1..1000, 0 = 100 */
	int ttl_s;         /* lease TTL 1..86400, 0 = the agent's [register] ttl_s */
	const char *check; /* NULL or "none", "tcp" (connect to ip:port), "http:/PATH"
			    * (GET PATH expecting 2xx; PATH printable, no spaces,
			    * at most 127 bytes) */
	/* New fields go here, never above. */
} lars_register_options_t;

/* The smallest @size accepted: every field of the first version. */
#define LARS_REGISTER_OPTIONS_MIN_SIZE                                         \
	(offsetof(lars_register_options_t, check) + sizeof(const char *))

/* lars_register_lease(): what the agent said about the instance. */
#define LARS_LEASE_OPERATOR 0x1u /* an operator's host: left as it is, no lease attached */

/** lars_register_options_init() - the defaults above (all 0 / NULL) and @opts->size. */
void lars_register_options_init(lars_register_options_t *opts);

/**
 * lars_register() - register this instance, @port of (@modid, @cmdid), with
 * the agent, which holds a lease for it at lars-dns; @opts NULL: the
 * defaults. Returns LARS_SUCC once the agent says it is registered (or that
 * an operator already added the host, which is left as it is), else
 * LARS_SYSTEM_ERROR with the reason in lars_client_error(): bad arguments
 * (nothing sent), the agent's refusal and its message, "health check
 * failing" (the agent keeps the host drained), or no answer. Waits while
 * the agent says pending (lars-dns or the health check not done yet),
 * asking again every 50 ms, for at most max(1 s, 4 x timeout_ms x retries)
 * plus one call. The lease lapses unless lars_register() is called again
 * within its TTL (lars_register_lease()): call it every TTL/3, which also
 * registers again with an agent that restarted. Calling it again is
 * harmless (it refreshes). Only an agent on this machine accepts it.
 */
int lars_register(lars_client_t *client, int modid, int cmdid, int port,
		  const lars_register_options_t *opts);

/**
 * lars_deregister() - take the instance lars_register() registered out:
 * the agent drains it first (callers stop picking it), then removes it.
 * Only @opts->ip matters (NULL: the agent's caller address, as for
 * lars_register()). Waits out the drain the agent announces, asking every
 * 100 ms, for at most that drain (capped at 10 minutes) plus
 * max(1 s, 4 x timeout_ms x retries). Returns LARS_SUCC when it is removed
 * (or is an operator's host, left as it is), LARS_NOEXIST when this agent
 * has no such registration, else LARS_SYSTEM_ERROR with the reason.
 */
int lars_deregister(lars_client_t *client, int modid, int cmdid, int port,
		    const lars_register_options_t *opts);

/**
 * lars_register_lease() - what the agent said in its last answer (other
 * than pending or draining) to lars_register() or lars_deregister() on
 * @client: returns the lease TTL in seconds it gave for a registration
 * (registered, failing or an operator's host; 0 if it gave none), 0 after a
 * refusal or a deregistration, before any answer, or for a NULL @client.
 * Call lars_register() again within a third of it. @host (NULL: not wanted) gets
 * the address the agent registered (the one it filled in for an empty
 * @opts->ip) and the port, @flagsp (NULL: not wanted) LARS_LEASE_* bits.
 * A client registering several instances sees only the last one's.
 */
int lars_register_lease(const lars_client_t *client, lars_host_t *host, unsigned *flagsp);

/** lars_strerror() - a short name for a LARS_* code. */
const char *lars_strerror(int code);

/**
 * lars_client_error() - why the last call returned LARS_SYSTEM_ERROR ("" if
 * it did not). @client NULL: why the last call with a NULL client (or a
 * failed lars_client_new) failed, in this thread.
 */
const char *lars_client_error(const lars_client_t *client);

#ifdef __cplusplus
}
#endif

#endif /* LARS_CLIENT_H */
