// SPDX-License-Identifier: MIT
// The Lars client library (see lars_client.h).

/* The shared library exports the current options calls as version
 * LARS_CLIENT_2 and the 1.0 layout's as LARS_CLIENT_1 (see below). */
#ifdef LARS_CLIENT_SHARED
#define lars_client_options_init lars_client_options_init_v2
#define lars_client_new lars_client_new_v2
#endif
#include "lars_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "msg.h"
#include "shm_client.h"

#define LARS_API __attribute__((visibility("default")))
#define MAX_SOCKETS 16
#define REG_INIT_TRIES 5
#define REG_INIT_PAUSE_MS 50
#define REG_POLL_MS 50            /* lars_register: between asks while pending */
#define DEREG_POLL_MS 100         /* lars_deregister: between asks while draining */
#define REG_WAIT_MIN_MS 1000      /* the least either waits for a final answer */
#define DRAIN_WAIT_MAX_MS 600000  /* an absurd drain_ms waits no longer */
/* The most hosts a UDP answer can carry: an all-zero HostInfo is 2 bytes. */
#define ROUTE_MAX_HOSTS ((FRAME_UDP_MAX - 8) / 2)
#define ERROR_MAX 128

struct lars_client {
	int fd[MAX_SOCKETS]; /* connected to base_port + i */
	int sockets;
	lars_shm_t *shm; /* the agent's snapshot; NULL: UDP only */
	int timeout_ms;
	int retries;
	uint32_t seq;
	frame_idset_t ids;
	char error[ERROR_MAX];
	/* The last final answer to lars_register/deregister (lars_register_lease). */
	int lease_ttl_s;
	unsigned lease_flags;
	lars_host_t lease_host;
	uint8_t buf[FRAME_UDP_MAX + 1];
};

/* Why the last call with a NULL client (or lars_client_new) failed. */
static _Thread_local char null_error[ERROR_MAX];

__attribute__((format(printf, 1, 2)))
static void set_null_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(null_error, sizeof(null_error), fmt, ap);
	va_end(ap);
}

LARS_API void lars_client_options_init(lars_client_options_t *o)
{
	if (!o)
		return;
	*o = (lars_client_options_t){ .size = sizeof(*o), .agent_ip = "127.0.0.1",
				      .base_port = 8888, .timeout_ms = 100, .retries = 3,
				      .sockets = 3, .shm = 1, .shm_max_stale_s = 600 };
}

/*
 * liblars-client.so.1 ABI: its lars_client_options_t had no size field.
 * Programs linked against it bind lars_client_options_init and
 * lars_client_new at version LARS_CLIENT_1; these two read and write that
 * layout and hand over to the current calls. (Shared library only: a
 * static link always gets the current header's layout.)
 */
#ifdef LARS_CLIENT_SHARED
typedef struct lars_client_options_v1 {
	const char *agent_ip;
	int base_port;
	int timeout_ms;
	int retries;
	int sockets;
} lars_client_options_v1_t;

LARS_API void lars_client_options_init_v1(lars_client_options_v1_t *o);
LARS_API int lars_client_new_v1(const lars_client_options_v1_t *opts, lars_client_t **clientp);
__asm__(".symver lars_client_options_init_v1, lars_client_options_init@LARS_CLIENT_1");
__asm__(".symver lars_client_new_v1, lars_client_new@LARS_CLIENT_1");
__asm__(".symver lars_client_options_init_v2, lars_client_options_init@@LARS_CLIENT_2");
__asm__(".symver lars_client_new_v2, lars_client_new@@LARS_CLIENT_2");

LARS_API void lars_client_options_init_v1(lars_client_options_v1_t *o)
{
	lars_client_options_t n;
	if (!o)
		return;
	lars_client_options_init(&n);
	*o = (lars_client_options_v1_t){ .agent_ip = n.agent_ip, .base_port = n.base_port,
					 .timeout_ms = n.timeout_ms, .retries = n.retries,
					 .sockets = n.sockets };
}

LARS_API int lars_client_new_v1(const lars_client_options_v1_t *opts, lars_client_t **clientp)
{
	if (!opts)
		return lars_client_new(NULL, clientp);
	lars_client_options_t n;
	lars_client_options_init(&n);
	n.agent_ip = opts->agent_ip;
	n.base_port = opts->base_port;
	n.timeout_ms = opts->timeout_ms;
	n.retries = opts->retries;
	n.sockets = opts->sockets;
	return lars_client_new(&n, clientp);
}
#endif

/* $LARS_AGENT=IPV4:BASEPORT into @o (the buffer keeps the address text). */
static int agent_from_env(lars_client_options_t *o, char *buf, size_t cap)
{
	const char *env = getenv("LARS_AGENT");
	if (!env || !*env)
		return 0;
	if (strlen(env) >= cap)
		goto bad;
	memcpy(buf, env, strlen(env) + 1);
	char *colon = strrchr(buf, ':'), *end;
	if (!colon)
		goto bad;
	*colon = '\0';
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
		goto bad;
	o->agent_ip = buf;
	o->base_port = (int)port;
	return 0;
bad:
	set_null_error("$LARS_AGENT takes IPV4:BASEPORT, not '%s'", env);
	return -EINVAL;
}

/* Whether to read the agent's snapshot: the option, unless $LARS_SHM=0. */
static bool shm_wanted(const lars_client_options_t *o)
{
	const char *env = getenv("LARS_SHM");
	return o->shm && !(env && strcmp(env, "0") == 0);
}

/* The option's path, else $LARS_SHM_PATH, else the agent's default for base_port. */
static void shm_path_of(const lars_client_options_t *o, char *buf, size_t cap)
{
	const char *env = getenv("LARS_SHM_PATH");
	if (o->shm_path && *o->shm_path)
		snprintf(buf, cap, "%s", o->shm_path);
	else if (env && *env)
		snprintf(buf, cap, "%s", env);
	else
		snprintf(buf, cap, "/run/lars/agent-%d.shm", o->base_port);
}

LARS_API void lars_client_free(lars_client_t *c)
{
	if (!c)
		return;
	lshm_free(c->shm, c->fd[0]); /* what is batched goes first */
	for (int i = 0; i < c->sockets; i++)
		if (c->fd[i] >= 0)
			close(c->fd[i]);
	free(c);
}

LARS_API int lars_client_new(const lars_client_options_t *opts, lars_client_t **clientp)
{
	lars_client_options_t o;
	char env_ip[64];
	null_error[0] = '\0';
	if (!clientp) {
		set_null_error("no place for the client (clientp is NULL)");
		return -EINVAL;
	}
	lars_client_options_init(&o);
	if (opts) {
		/* Only what the caller's struct has; later fields keep their defaults. */
		if (opts->size < LARS_CLIENT_OPTIONS_MIN_SIZE) {
			set_null_error("options.size is %zu: start from lars_client_options_init()",
				       opts->size);
			return -EINVAL;
		}
		memcpy(&o, opts, opts->size < sizeof(o) ? opts->size : sizeof(o));
	} else if (agent_from_env(&o, env_ip, sizeof(env_ip))) {
		return -EINVAL;
	}
	if (!o.agent_ip)
		o.agent_ip = "127.0.0.1";
	if (o.sockets < 1 || o.sockets > MAX_SOCKETS || o.base_port < 1 ||
	    o.base_port > 65535 - o.sockets + 1 || o.timeout_ms < 1 || o.retries < 1) {
		set_null_error("bad options (ports, timeout, retries or sockets out of range)");
		return -EINVAL;
	}
	struct sockaddr_in a = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, o.agent_ip, &a.sin_addr) != 1) {
		set_null_error("the agent's address '%s' is not IPv4", o.agent_ip);
		return -EINVAL;
	}

	lars_client_t *c = calloc(1, sizeof(*c));
	if (!c) {
		set_null_error("out of memory");
		return -ENOMEM;
	}
	c->timeout_ms = o.timeout_ms;
	c->retries = o.retries;
	c->sockets = o.sockets;
	/* Start anywhere: two clients' sequences rarely collide. */
	c->seq = (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)c;
	frame_idset_clear(&c->ids);
	frame_idset_add(&c->ids, LARS_ID_GET_HOST_RESP);
	frame_idset_add(&c->ids, LARS_ID_API_GET_ROUTE_RESP);
	frame_idset_add(&c->ids, LARS_ID_REGISTER_RESP);
	for (int i = 0; i < c->sockets; i++)
		c->fd[i] = -1;
	for (int i = 0; i < c->sockets; i++) {
		c->fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		a.sin_port = htons((uint16_t)(o.base_port + i));
		/* Connected: replies from anyone but the agent never reach us. */
		if (c->fd[i] < 0 || connect(c->fd[i], (struct sockaddr *)&a, sizeof(a))) {
			int r = -errno;
			set_null_error("cannot open a socket to the agent: %s", strerror(errno));
			lars_client_free(c);
			return r;
		}
	}
	if (shm_wanted(&o)) {
		char path[512];
		shm_path_of(&o, path, sizeof(path));
		c->shm = lshm_new(path, o.shm_max_stale_s > 0 ? o.shm_max_stale_s : 0);
	}
	*clientp = c;
	return 0;
}

LARS_API const char *lars_strerror(int code)
{
	switch (code) {
	case LARS_SUCC: return "success";
	case LARS_OVERLOAD: return "overload";
	case LARS_SYSTEM_ERROR: return "system error";
	case LARS_NOEXIST: return "no such route";
	default: return "unknown return code";
	}
}

LARS_API const char *lars_client_error(const lars_client_t *c)
{
	return c ? c->error : null_error;
}

__attribute__((format(printf, 2, 3)))
static int fail(lars_client_t *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	return LARS_SYSTEM_ERROR;
}

/*
 * The checks every call makes before it sends: a client, a place for the
 * answer (@out), a key of non-negative numbers. LARS_SUCC or the failure.
 */
static int check_call(lars_client_t *c, const void *out, const char *what, int modid,
		      int cmdid)
{
	if (!c) {
		set_null_error("no client (NULL)");
		return LARS_SYSTEM_ERROR;
	}
	c->error[0] = '\0';
	if (!out)
		return fail(c, "bad input: %s is NULL", what);
	if (modid < 0 || cmdid < 0)
		return fail(c, "bad input: modid %d, cmdid %d (both must be >= 0)", modid, cmdid);
	return LARS_SUCC;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep @ms; a signal cuts it short, which only makes the next ask earlier. */
static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int sock_for(const lars_client_t *c, int modid, int cmdid)
{
	/* As the original client: (modid + cmdid) % 3, without overflow. */
	int n = c->sockets;
	return c->fd[(int)((((int64_t)modid + cmdid) % n + n) % n)];
}

/* Throw away whatever is queued (late answers to earlier calls). */
static void drain(lars_client_t *c, int fd)
{
	while (recv(fd, c->buf, sizeof(c->buf), MSG_DONTWAIT) >= 0)
		;
}

typedef bool (*match_fn)(lars_client_t *c, const uint8_t *body, size_t len, void *arg,
			 int *resultp);

/*
 * Send @req on @fd and wait for the reply @match accepts; anything it skips
 * (stale) keeps the wait going, within the attempt's deadline. Resends up to
 * c->retries times.
 */
static int call(lars_client_t *c, int fd, const uint8_t *req, size_t len, int32_t want_id,
		match_fn match, void *arg)
{
	c->error[0] = '\0';
	drain(c, fd);
	bool refused = false;
	for (int attempt = 0; attempt < c->retries; attempt++) {
		if (send(fd, req, len, 0) != (ssize_t)len)
			return fail(c, "cannot send to the agent: %s", strerror(errno));
		int64_t deadline = mono_ms() + c->timeout_ms;
		for (;;) {
			int left = (int)(deadline - mono_ms());
			if (left <= 0)
				break;
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int pr = poll(&p, 1, left);
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr <= 0)
				break;
			ssize_t n = recv(fd, c->buf, sizeof(c->buf), MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				/* ECONNREFUSED: nothing listens on the agent's port. */
				if (errno == ECONNREFUSED) {
					refused = true;
					usleep(1000); /* no answer will come for this attempt */
					break;
				}
				return fail(c, "cannot receive from the agent: %s", strerror(errno));
			}
			frame_hdr_t hdr;
			const uint8_t *body;
			int r = frame_udp_parse(c->buf, (size_t)n, &c->ids, &hdr, &body);
			if (r)
				return fail(c, "bad reply from the agent: %s", frame_strerror(r));
			if (hdr.msgid != want_id)
				continue; /* a late answer of another kind */
			int result;
			if (match(c, body, (size_t)hdr.msglen, arg, &result))
				return result;
			if (c->error[0])
				return LARS_SYSTEM_ERROR; /* match found it malformed */
		}
	}
	if (refused)
		return fail(c, "nothing listens on the agent's port: %s (is lars-agent running?)",
			    strerror(ECONNREFUSED));
	return fail(c, "no answer from the agent within %d ms x %d attempts", c->timeout_ms,
		    c->retries);
}

static void host_from_wire(lars_host_t *h, int32_t ip, int32_t port)
{
	h->ip = (uint32_t)ip;
	msg_ip_to_str(ip, h->ip_str);
	h->port = port;
}

typedef struct host_call {
	uint32_t seq;
	int modid, cmdid;
	lars_host_t *host;
} host_call_t;

static bool match_host(lars_client_t *c, const uint8_t *body, size_t len, void *arg,
		       int *resultp)
{
	host_call_t *hc = arg;
	lars_GetHostResponse r = lars_GetHostResponse_init_zero;
	const char *why;
	if (msg_decode(lars_GetHostResponse_fields, &r, body, len, &why)) {
		fail(c, "bad reply from the agent: %s", why);
		return false;
	}
	if (r.seq != hc->seq || r.modid != hc->modid || r.cmdid != hc->cmdid)
		return false; /* stale: an earlier call's answer */
	if (r.retcode < LARS_SUCC || r.retcode > LARS_NOEXIST) {
		fail(c, "bad reply from the agent: return code %d", r.retcode);
		return false;
	}
	/* The agent knows no hosts for the key because lars-dns is away. */
	if (r.retcode == LARS_SYSTEM_ERROR)
		fail(c, "route service unreachable");
	if (r.retcode == LARS_SUCC) {
		if (!r.has_host) {
			fail(c, "bad reply from the agent: success without a host");
			return false;
		}
		host_from_wire(hc->host, r.host.ip, r.host.port);
	}
	*resultp = r.retcode;
	return true;
}

LARS_API int lars_get_host(lars_client_t *c, int modid, int cmdid, lars_host_t *host)
{
	int bad = check_call(c, host, "the host", modid, cmdid);
	if (bad)
		return bad;
	if (c->shm) {
		int32_t ip, port;
		int r = lshm_get_host(c->shm, modid, cmdid, &ip, &port);
		lshm_tick(c->shm, c->fd[0]);
		if (r == LARS_SUCC)
			host_from_wire(host, ip, port);
		if (r != LSHM_NOT_SERVED) {
			c->error[0] = '\0';
			return r;
		}
	}
	host_call_t hc = { .seq = ++c->seq, .modid = modid, .cmdid = cmdid, .host = host };
	lars_GetHostRequest req = { .seq = hc.seq, .modid = modid, .cmdid = cmdid };
	uint8_t buf[64];
	size_t len;
	if (msg_frame_encode(LARS_ID_GET_HOST_REQ, lars_GetHostRequest_fields, &req, buf,
			     sizeof(buf), &len))
		return fail(c, "cannot encode the request");
	return call(c, sock_for(c, modid, cmdid), buf, len, LARS_ID_GET_HOST_RESP, match_host, &hc);
}

/*
 * send_report() - one ReportRequest, not awaited. @latency_us 0 leaves the
 * field out (proto3): the bytes are the original client's.
 */
static int send_report(lars_client_t *c, int modid, int cmdid, const lars_host_t *host,
		       int retcode, uint32_t latency_us)
{
	int bad = check_call(c, host, "the host", modid, cmdid);
	if (bad)
		return bad;
	/* Picking from the snapshot: results go in batches (ReportBatchRequest). */
	if (c->shm && lshm_report(c->shm, c->fd[0], modid, cmdid, (int32_t)host->ip, host->port,
				  retcode == LARS_SUCC, latency_us) == 0)
		return LARS_SUCC;
	lars_ReportRequest req = lars_ReportRequest_init_zero;
	req.modid = modid;
	req.cmdid = cmdid;
	req.has_host = true;
	req.host.ip = (int32_t)host->ip;
	req.host.port = host->port;
	req.retcode = retcode;
	req.latency_us = latency_us;
	uint8_t buf[64];
	size_t len;
	if (msg_frame_encode(LARS_ID_REPORT_REQ, lars_ReportRequest_fields, &req, buf,
			     sizeof(buf), &len))
		return fail(c, "cannot encode the report");
	int fd = sock_for(c, modid, cmdid);
	/* A refusal queued from an earlier send is not about this one. */
	int err = 0;
	socklen_t el = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (send(fd, buf, len, 0) != (ssize_t)len)
		return fail(c, "cannot send the report: %s", strerror(errno));
	/*
	 * On loopback the port-unreachable answer to this datagram is usually
	 * handled before send() returns: the socket then holds ECONNREFUSED.
	 * Looking costs one system call and never waits.
	 */
	err = 0;
	el = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err)
		return fail(c, "cannot send the report: %s", strerror(err));
	return LARS_SUCC;
}

LARS_API int lars_report(lars_client_t *c, int modid, int cmdid, const lars_host_t *host,
			 int retcode)
{
	return send_report(c, modid, cmdid, host, retcode, 0);
}

LARS_API int lars_report_latency(lars_client_t *c, int modid, int cmdid,
				 const lars_host_t *host, int retcode, uint32_t latency_us)
{
	return send_report(c, modid, cmdid, host, retcode, latency_us);
}

typedef struct route_call {
	int modid, cmdid;
	lars_host_t *hosts;
	size_t cap;
	size_t *n_hosts;
	size_t *n_total;
	unsigned *flags; /* NULL, or @cap of them */
} route_call_t;

static bool match_route(lars_client_t *c, const uint8_t *body, size_t len, void *arg,
			int *resultp)
{
	route_call_t *rc = arg;
	lars_GetRouteResponse r = lars_GetRouteResponse_init_zero;
	msg_vec_t vec;
	const char *why;
	msg_hosts_init(&vec, ROUTE_MAX_HOSTS);
	msg_vec_bind(&vec, &r.host);
	int e = msg_decode(lars_GetRouteResponse_fields, &r, body, len, &why);
	if (e) {
		fail(c, "bad reply from the agent: %s", vec.error == -ENOMEM ? "out of memory" : why);
		msg_vec_deinit(&vec);
		return false;
	}
	/* No seq in this message: the key tells a stale answer. */
	bool mine = r.modid == rc->modid && r.cmdid == rc->cmdid;
	if (mine) {
		const lars_HostInfo *h = vec.v;
		for (size_t i = 0; i < vec.n && i < rc->cap; i++) {
			host_from_wire(&rc->hosts[i], h[i].ip, h[i].port);
			if (rc->flags)
				rc->flags[i] = h[i].drain ? LARS_HOST_DRAINED : 0;
		}
		*rc->n_hosts = vec.n;
		/* host_total: set by the agent only when it cut the list. */
		*rc->n_total = r.host_total > 0 && (size_t)r.host_total > vec.n
				       ? (size_t)r.host_total : vec.n;
		*resultp = LARS_SUCC;
	}
	msg_vec_deinit(&vec);
	return mine;
}

LARS_API int lars_get_route_ex(lars_client_t *c, int modid, int cmdid, lars_host_t *hosts,
			       size_t cap, size_t *n_hosts, size_t *n_total)
{
	return lars_get_route_flags(c, modid, cmdid, hosts, NULL, cap, n_hosts, n_total);
}

LARS_API int lars_get_route_flags(lars_client_t *c, int modid, int cmdid, lars_host_t *hosts,
				  unsigned *flags, size_t cap, size_t *n_hosts, size_t *n_total)
{
	int bad = check_call(c, n_hosts, "n_hosts", modid, cmdid);
	if (bad)
		return bad;
	if (!n_total)
		return fail(c, "bad input: n_total is NULL");
	if (!hosts && cap)
		return fail(c, "bad input: hosts is NULL with cap %zu", cap);
	if (c->shm && lshm_get_route(c->shm, modid, cmdid, hosts, flags, cap, n_hosts,
				     n_total) == LARS_SUCC)
		return LARS_SUCC;
	route_call_t rc = { modid, cmdid, hosts, cap, n_hosts, n_total, flags };
	lars_GetRouteRequest req = { .modid = modid, .cmdid = cmdid };
	uint8_t buf[64];
	size_t len;
	*n_hosts = 0;
	*n_total = 0;
	if (msg_frame_encode(LARS_ID_API_GET_ROUTE_REQ, lars_GetRouteRequest_fields, &req, buf,
			     sizeof(buf), &len))
		return fail(c, "cannot encode the request");
	return call(c, sock_for(c, modid, cmdid), buf, len, LARS_ID_API_GET_ROUTE_RESP,
		    match_route, &rc);
}

LARS_API int lars_get_route(lars_client_t *c, int modid, int cmdid, lars_host_t *hosts,
			    size_t cap, size_t *n_hosts)
{
	size_t total;
	return lars_get_route_ex(c, modid, cmdid, hosts, cap, n_hosts, &total);
}

LARS_API int lars_reg_init(lars_client_t *c, int modid, int cmdid)
{
	int r = check_call(c, c, "the client", modid, cmdid);
	if (r)
		return r;
	r = LARS_NOEXIST;
	for (int i = 0; i < REG_INIT_TRIES; i++) {
		size_t n = 0;
		lars_host_t one;
		r = lars_get_route(c, modid, cmdid, &one, 1, &n);
		if (r == LARS_SUCC && n > 0)
			return LARS_SUCC;
		if (r == LARS_SUCC)
			r = LARS_NOEXIST; /* the agent is still fetching it */
		if (i + 1 < REG_INIT_TRIES)
			pause_ms(REG_INIT_PAUSE_MS);
	}
	return r;
}

/* ---- self-registration (issue 23): RegisterRequest / DeregisterRequest ---- */

LARS_API void lars_register_options_init(lars_register_options_t *o)
{
	if (!o)
		return;
	*o = (lars_register_options_t){ .size = sizeof(*o) };
}

/* @check ("none", "tcp" or "http:/PATH", NULL = none) into @req. */
static int reg_check(lars_client_t *c, const char *check, lars_RegisterRequest *req)
{
	if (!check || strcmp(check, "none") == 0) {
		req->check = LARS_CHECK_NONE;
		return LARS_SUCC;
	}
	if (strcmp(check, "tcp") == 0) {
		req->check = LARS_CHECK_TCP;
		return LARS_SUCC;
	}
	if (strncmp(check, "http:", 5) != 0)
		return fail(c, "bad input: check '%.40s' (none, tcp or http:/PATH)", check);
	const char *path = check + 5;
	size_t len = strlen(path);
	if (path[0] != '/' || len >= sizeof(req->check_path))
		return fail(c, "bad input: the HTTP check's path must start with '/' and have "
			       "at most %zu bytes", sizeof(req->check_path) - 1);
	/* The agent puts it into a request line: no spaces, no control bytes. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)path[i] <= ' ' || (unsigned char)path[i] > '~')
			return fail(c, "bad input: the HTTP check's path has a space or a "
				       "byte that is not printable ASCII");
	req->check = LARS_CHECK_HTTP;
	memcpy(req->check_path, path, len + 1);
	return LARS_SUCC;
}

/*
 * The request lars_register (@full) or lars_deregister (key, ip and port
 * only) sends, checked here so that nothing bad leaves. LARS_SUCC or the
 * failure.
 */
static int reg_request(lars_client_t *c, int modid, int cmdid, int port,
		       const lars_register_options_t *opts, bool full, lars_RegisterRequest *req)
{
	int bad = check_call(c, c, "the client", modid, cmdid);
	if (bad)
		return bad;
	lars_register_options_t o;
	lars_register_options_init(&o);
	if (opts) {
		/* Only what the caller's struct has; later fields keep their defaults. */
		if (opts->size < LARS_REGISTER_OPTIONS_MIN_SIZE)
			return fail(c, "bad input: options.size is %zu: start from "
				       "lars_register_options_init()", opts->size);
		memcpy(&o, opts, opts->size < sizeof(o) ? opts->size : sizeof(o));
	}
	*req = (lars_RegisterRequest)lars_RegisterRequest_init_zero;
	req->modid = modid;
	req->cmdid = cmdid;
	req->port = port;
	if (port < 1 || port > 65535)
		return fail(c, "bad input: port %d (1..65535)", port);
	/* ip 0 on the wire asks the agent to fill in its caller's address. */
	if (o.ip && *o.ip && msg_ip_from_str(o.ip, &req->ip))
		return fail(c, "bad input: ip '%.40s' is not a dotted IPv4 address", o.ip);
	if (!full)
		return LARS_SUCC;
	if (o.weight < 0 || o.weight > 1000)
		return fail(c, "bad input: weight %d (1..1000, 0 = 100)", o.weight);
	if (o.ttl_s < 0 || o.ttl_s > 86400)
		return fail(c, "bad input: ttl_s %d (1..86400, 0 = the agent's default)", o.ttl_s);
	req->weight = (uint32_t)o.weight;
	req->ttl_s = (uint32_t)o.ttl_s;
	return reg_check(c, o.check, req);
}

typedef struct reg_call {
	uint32_t seq;
	lars_RegisterResponse *resp;
} reg_call_t;

static bool match_reg(lars_client_t *c, const uint8_t *body, size_t len, void *arg,
		      int *resultp)
{
	reg_call_t *rc = arg;
	lars_RegisterResponse r = lars_RegisterResponse_init_zero;
	const char *why;
	if (msg_decode(lars_RegisterResponse_fields, &r, body, len, &why)) {
		fail(c, "bad reply from the agent: %s", why);
		return false;
	}
	if (r.seq != rc->seq)
		return false; /* stale: an earlier ask's answer */
	if (r.state > LARS_REG_UNKNOWN) {
		fail(c, "bad reply from the agent: registration state %u", (unsigned)r.state);
		return false;
	}
	*rc->resp = r;
	*resultp = LARS_SUCC;
	return true;
}

/* One ask: @req under a fresh seq as @msgid, on the key's socket (as get_host). */
static int reg_ask(lars_client_t *c, int32_t msgid, lars_RegisterRequest *req,
		   lars_RegisterResponse *resp)
{
	reg_call_t rc = { .seq = ++c->seq, .resp = resp };
	uint8_t buf[8 + lars_RegisterRequest_size];
	size_t len;
	req->seq = rc.seq;
	if (msg_frame_encode(msgid, lars_RegisterRequest_fields, req, buf, sizeof(buf), &len))
		return fail(c, "cannot encode the request");
	return call(c, sock_for(c, req->modid, req->cmdid), buf, len, LARS_ID_REGISTER_RESP,
		    match_reg, &rc);
}

/* How long an answer that is not final yet is waited out (deregister: + the drain). */
static int64_t reg_wait_ms(const lars_client_t *c)
{
	int64_t ms = (int64_t)c->timeout_ms * c->retries * 4;
	return ms > REG_WAIT_MIN_MS ? ms : REG_WAIT_MIN_MS;
}

/*
 * Ask (@msgid) until the answer is final: not pending, and for a
 * deregistration not draining. Asks again every @poll_ms until a deadline
 * that the first drain answer extends by the drain announced (capped).
 */
static int reg_settle(lars_client_t *c, int32_t msgid, int poll_ms, lars_RegisterRequest *req,
		      lars_RegisterResponse *resp)
{
	int64_t start = mono_ms(), deadline = start + reg_wait_ms(c);
	bool drain_seen = false;
	for (;;) {
		int r = reg_ask(c, msgid, req, resp);
		if (r)
			return r;
		bool draining = msgid == LARS_ID_DEREGISTER_REQ && resp->state == LARS_REG_DRAINING;
		if (resp->state != LARS_REG_PENDING && !draining)
			return LARS_SUCC;
		if (draining && !drain_seen) {
			drain_seen = true;
			deadline += resp->drain_ms < DRAIN_WAIT_MAX_MS ? resp->drain_ms
								       : DRAIN_WAIT_MAX_MS;
		}
		int64_t left = deadline - mono_ms();
		/* The wait allowed, not the time taken: the same text each time. */
		if (left <= 0)
			return fail(c, "still %s at the agent after %lld ms",
				    draining ? "draining" : "pending (lars-dns or the health check)",
				    (long long)(deadline - start));
		pause_ms(left < poll_ms ? (int)left : poll_ms);
	}
}

static const char *reg_state_name(uint32_t state)
{
	static const char *const names[] = { "pending", "registered", "an operator's host",
					     "failing", "draining", "removed", "refused",
					     "unknown instance" };
	return state < sizeof(names) / sizeof(names[0]) ? names[state] : "?";
}

/* What lars_register_lease() tells: the answer's address, else the one asked for. */
static void reg_remember(lars_client_t *c, const lars_RegisterRequest *req,
			 const lars_RegisterResponse *r)
{
	bool lease = r->state == LARS_REG_REGISTERED || r->state == LARS_REG_FAILING ||
		     r->state == LARS_REG_OPERATOR;
	host_from_wire(&c->lease_host, r->ip ? r->ip : req->ip, req->port);
	c->lease_ttl_s = lease && r->ttl_s <= 86400 ? (int)r->ttl_s : 0;
	c->lease_flags = r->state == LARS_REG_OPERATOR ? LARS_LEASE_OPERATOR : 0;
}

/* A final answer that is a failure for either call: the reason. */
static int reg_fail(lars_client_t *c, const lars_RegisterResponse *r)
{
	const char *sep = r->message[0] ? ": " : "";
	/* Our agent's message says "health check failing: why" itself. */
	if (r->state == LARS_REG_FAILING)
		return fail(c, "%s", r->message[0] ? r->message : "health check failing");
	if (r->state == LARS_REG_REFUSED)
		return fail(c, "refused by the agent%s%s", sep, r->message);
	return fail(c, "unexpected answer from the agent: %s", reg_state_name(r->state));
}

LARS_API int lars_register(lars_client_t *c, int modid, int cmdid, int port,
			   const lars_register_options_t *opts)
{
	lars_RegisterRequest req;
	lars_RegisterResponse resp;
	int r = reg_request(c, modid, cmdid, port, opts, true, &req);
	if (r == LARS_SUCC)
		r = reg_settle(c, LARS_ID_REGISTER_REQ, REG_POLL_MS, &req, &resp);
	if (r != LARS_SUCC)
		return r;
	reg_remember(c, &req, &resp);
	if (resp.state == LARS_REG_REGISTERED || resp.state == LARS_REG_OPERATOR)
		return LARS_SUCC;
	return reg_fail(c, &resp);
}

LARS_API int lars_deregister(lars_client_t *c, int modid, int cmdid, int port,
			     const lars_register_options_t *opts)
{
	lars_RegisterRequest req;
	lars_RegisterResponse resp;
	int r = reg_request(c, modid, cmdid, port, opts, false, &req);
	if (r == LARS_SUCC)
		r = reg_settle(c, LARS_ID_DEREGISTER_REQ, DEREG_POLL_MS, &req, &resp);
	if (r != LARS_SUCC)
		return r;
	reg_remember(c, &req, &resp);
	if (resp.state == LARS_REG_REMOVED || resp.state == LARS_REG_OPERATOR)
		return LARS_SUCC;
	/* Not registered through this agent (or it restarted and forgot). */
	if (resp.state == LARS_REG_UNKNOWN)
		return LARS_NOEXIST;
	return reg_fail(c, &resp);
}

LARS_API int lars_register_lease(const lars_client_t *c, lars_host_t *host, unsigned *flagsp)
{
	static const lars_host_t none;
	if (!c)
		set_null_error("no client (NULL)");
	if (host)
		*host = c ? c->lease_host : none;
	if (flagsp)
		*flagsp = c ? c->lease_flags : 0;
	return c ? c->lease_ttl_s : 0;
}
