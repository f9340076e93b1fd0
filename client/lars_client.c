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

#define LARS_API __attribute__((visibility("default")))
#define MAX_SOCKETS 16
#define REG_INIT_TRIES 5
#define REG_INIT_PAUSE_MS 50
/* The most hosts a UDP answer can carry: an all-zero HostInfo is 2 bytes. */
#define ROUTE_MAX_HOSTS ((FRAME_UDP_MAX - 8) / 2)
#define ERROR_MAX 128

struct lars_client {
	int fd[MAX_SOCKETS]; /* connected to base_port + i */
	int sockets;
	int timeout_ms;
	int retries;
	uint32_t seq;
	frame_idset_t ids;
	char error[ERROR_MAX];
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
				      .sockets = 3 };
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

LARS_API void lars_client_free(lars_client_t *c)
{
	if (!c)
		return;
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
		if (i + 1 < REG_INIT_TRIES) {
			struct timespec ts = { 0, REG_INIT_PAUSE_MS * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	return r;
}
