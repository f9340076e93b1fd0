// SPDX-License-Identifier: MIT
// The Lars protocol from a client's side, for tests and benchmarks (see
// wire_client.h).
#include "wire_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* Frames up to this size are encoded on the stack; larger ones on the heap. */
#define WC_STACK_FRAME 16384
/* The largest UDP datagram. */
#define WC_DGRAM_MAX 65536

void wc_route_free(wc_route_t *r)
{
	if (!r)
		return;
	free(r->hosts);
	memset(r, 0, sizeof(*r));
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

int wc_connect(const char *ip, int port, int64_t deadline)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
		return -EINVAL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (errno != EINPROGRESS) {
			r = -errno;
			goto fail;
		}
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		int n;
		do
			n = poll(&pf, 1, harness_left_ms(deadline));
		while (n < 0 && errno == EINTR);
		if (n == 0) {
			r = -ETIMEDOUT;
			goto fail;
		}
		int err = 0;
		socklen_t len = sizeof(err);
		if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
			r = -errno;
			goto fail;
		}
		if (err) {
			r = -err;
			goto fail;
		}
	}
	int one = 1;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
		r = -errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return r;
}

/* Encode @msg as frame @msgid into @stack, or a new heap buffer (*heapp). */
static int encode(int32_t msgid, const pb_msgdesc_t *fields, const void *msg, uint8_t *stack,
		  size_t cap, uint8_t **heapp, const uint8_t **bufp, size_t *lenp)
{
	*heapp = NULL;
	int r = msg_frame_encode(msgid, fields, msg, stack, cap, lenp);
	if (r == 0) {
		*bufp = stack;
		return 0;
	}
	if (r != MSG_E_TOO_LARGE)
		return -EINVAL;
	r = msg_frame_alloc(msgid, fields, msg, FRAME_TCP_MAX_LIMIT, heapp, lenp);
	if (r == MSG_E_TOO_LARGE)
		return -EMSGSIZE;
	if (r)
		return r < 0 ? r : -EINVAL;
	*bufp = *heapp;
	return 0;
}

int wc_send(int fd, int32_t msgid, const pb_msgdesc_t *fields, const void *msg)
{
	uint8_t stack[WC_STACK_FRAME], *heap;
	const uint8_t *buf;
	size_t len;
	int r = encode(msgid, fields, msg, stack, sizeof(stack), &heap, &buf, &len);
	if (r)
		return r;
	r = harness_send_all(fd, buf, len) ? (errno ? -errno : -EIO) : 0;
	free(heap);
	return r;
}

/* Wait until @fd is readable before @deadline: 0, -ETIMEDOUT or -errno. */
static int wait_readable(int fd, int64_t deadline)
{
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int left = harness_left_ms(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		int n = poll(&pf, 1, left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Read exactly @len bytes before @deadline: 1 ok, 0 EOF, -ETIMEDOUT, -EIO. */
static int recv_exact(int fd, uint8_t *buf, size_t len, int64_t deadline)
{
	while (len) {
		int w = wait_readable(fd, deadline);
		if (w)
			return w == -ETIMEDOUT ? w : -EIO;
		ssize_t k = recv(fd, buf, len, 0);
		if (k == 0)
			return 0;
		if (k < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno == ECONNRESET ? 0 : -EIO;
		}
		buf += k;
		len -= (size_t)k;
	}
	return 1;
}

int wc_recv_frame(int fd, frame_hdr_t *hdrp, uint8_t *body, size_t cap, int64_t deadline)
{
	uint8_t h[FRAME_HDR_LEN];
	int r = recv_exact(fd, h, sizeof(h), deadline);
	if (r <= 0)
		return r;
	*hdrp = frame_hdr_read(h);
	if (hdrp->msglen < 0)
		return -EIO;
	if ((size_t)hdrp->msglen > cap)
		return -EMSGSIZE;
	return recv_exact(fd, body, (size_t)hdrp->msglen, deadline);
}

static int send_key(int fd, int32_t msgid, int32_t modid, int32_t cmdid)
{
	lars_GetRouteRequest req = { .modid = modid, .cmdid = cmdid };
	return wc_send(fd, msgid, lars_GetRouteRequest_fields, &req);
}

int wc_get_route_send(int fd, int32_t modid, int32_t cmdid)
{
	return send_key(fd, LARS_ID_GET_ROUTE_REQ, modid, cmdid);
}

int wc_unsubscribe_send(int fd, int32_t modid, int32_t cmdid)
{
	return send_key(fd, LARS_ID_UNSUBSCRIBE_REQ, modid, cmdid);
}

/* Decode a GetRouteResponse body into *r (hosts: at most @max). */
static int decode_route(const uint8_t *body, size_t len, size_t max, wc_route_t *r)
{
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	msg_vec_t vec;
	msg_hosts_init(&vec, max);
	msg_vec_bind(&vec, &resp.host);
	memset(r, 0, sizeof(*r));
	if (msg_decode(lars_GetRouteResponse_fields, &resp, body, len, NULL)) {
		msg_vec_deinit(&vec);
		return -EPROTO;
	}
	r->modid = resp.modid;
	r->cmdid = resp.cmdid;
	r->host_total = resp.host_total;
	r->has_policy = resp.has_policy;
	r->policy = resp.policy;
	r->version = resp.version;
	r->n = vec.n;
	r->hosts = vec.v; /* ours now: the vector is not deinitialised */
	return 0;
}

int wc_route_recv(int fd, wc_route_t *r, size_t max_frame, int64_t deadline, int32_t *msgidp)
{
	uint8_t h[FRAME_HDR_LEN];
	memset(r, 0, sizeof(*r));
	int rc = recv_exact(fd, h, sizeof(h), deadline);
	if (rc <= 0)
		return rc;
	frame_hdr_t hdr = frame_hdr_read(h);
	if (msgidp)
		*msgidp = hdr.msgid;
	if (hdr.msglen < 0)
		return -EIO;
	if ((size_t)hdr.msglen > max_frame)
		return -EMSGSIZE;
	uint8_t *body = malloc(hdr.msglen ? (size_t)hdr.msglen : 1);
	if (!body)
		return -ENOMEM;
	rc = recv_exact(fd, body, (size_t)hdr.msglen, deadline);
	if (rc == 1 && hdr.msgid != LARS_ID_GET_ROUTE_RESP)
		rc = -EBADMSG;
	if (rc == 1 && decode_route(body, (size_t)hdr.msglen, SIZE_MAX / sizeof(lars_HostInfo), r))
		rc = -EPROTO;
	free(body);
	return rc;
}

int wc_report_status_send(int fd, int32_t modid, int32_t cmdid, int32_t caller, uint32_t ts,
			  const lars_HostCallResult *res, size_t n)
{
	lars_ReportStatusRequest req = lars_ReportStatusRequest_init_zero;
	req.modid = modid;
	req.cmdid = cmdid;
	req.caller = caller;
	req.ts = ts;
	req.delta = true; /* counts since the last report, as our agent sends them */
	msg_array_t arr = MSG_RESULTS(res, n);
	msg_array_bind(&arr, &req.results);
	return wc_send(fd, LARS_ID_REPORT_STATUS_REQ, lars_ReportStatusRequest_fields, &req);
}

/* One datagram to 127.0.0.1:@port (0: the connected peer). */
static int send_dgram(int fd, int port, const uint8_t *buf, size_t len)
{
	ssize_t n;
	if (port) {
		struct sockaddr_in a = loopback(port);
		n = sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof(a));
	} else {
		n = send(fd, buf, len, 0);
	}
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

/* The first datagram on @fd within @timeout_ms: its length, or -ETIMEDOUT/-errno. */
static ssize_t recv_dgram(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
	int64_t deadline = harness_deadline(timeout_ms);
	for (;;) {
		int w = wait_readable(fd, deadline);
		if (w)
			return w;
		ssize_t k = recv(fd, buf, cap, 0);
		if (k >= 0)
			return k;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
}

int wc_get_host(int fd, int port, uint32_t seq, int32_t modid, int32_t cmdid,
		lars_GetHostResponse *resp, int timeout_ms)
{
	lars_GetHostRequest req = { .seq = seq, .modid = modid, .cmdid = cmdid };
	uint8_t buf[FRAME_HDR_LEN + lars_GetHostRequest_size], dgram[WC_DGRAM_MAX];
	size_t len;
	if (msg_frame_encode(LARS_ID_GET_HOST_REQ, lars_GetHostRequest_fields, &req, buf,
			     sizeof(buf), &len))
		return -EINVAL;
	int r = send_dgram(fd, port, buf, len);
	if (r)
		return r;
	ssize_t n = recv_dgram(fd, dgram, sizeof(dgram), timeout_ms);
	if (n < 0)
		return (int)n;
	*resp = (lars_GetHostResponse)lars_GetHostResponse_init_zero;
	if (n < FRAME_HDR_LEN || frame_hdr_read(dgram).msgid != LARS_ID_GET_HOST_RESP ||
	    msg_decode(lars_GetHostResponse_fields, resp, dgram + FRAME_HDR_LEN,
		       (size_t)n - FRAME_HDR_LEN, NULL))
		return -EPROTO;
	return 0;
}

int wc_report(int fd, int port, int32_t modid, int32_t cmdid, lars_HostInfo host,
	      int32_t retcode)
{
	lars_ReportRequest req = lars_ReportRequest_init_zero;
	req.modid = modid;
	req.cmdid = cmdid;
	req.has_host = true;
	req.host = host;
	req.retcode = retcode;
	uint8_t buf[FRAME_HDR_LEN + lars_ReportRequest_size];
	size_t len;
	if (msg_frame_encode(LARS_ID_REPORT_REQ, lars_ReportRequest_fields, &req, buf,
			     sizeof(buf), &len))
		return -EINVAL;
	return send_dgram(fd, port, buf, len);
}

ssize_t wc_api_get_route(int fd, int port, int32_t modid, int32_t cmdid, wc_route_t *r,
			 size_t max_hosts, int timeout_ms)
{
	lars_GetRouteRequest req = { .modid = modid, .cmdid = cmdid };
	uint8_t buf[FRAME_HDR_LEN + lars_GetRouteRequest_size];
	size_t len;
	memset(r, 0, sizeof(*r));
	if (msg_frame_encode(LARS_ID_API_GET_ROUTE_REQ, lars_GetRouteRequest_fields, &req, buf,
			     sizeof(buf), &len))
		return -EINVAL;
	int rc = send_dgram(fd, port, buf, len);
	if (rc)
		return rc;
	uint8_t *dgram = malloc(WC_DGRAM_MAX);
	if (!dgram)
		return -ENOMEM;
	ssize_t n = recv_dgram(fd, dgram, WC_DGRAM_MAX, timeout_ms);
	if (n >= 0 && (n < FRAME_HDR_LEN || frame_hdr_read(dgram).msgid != LARS_ID_API_GET_ROUTE_RESP ||
		       decode_route(dgram + FRAME_HDR_LEN, (size_t)n - FRAME_HDR_LEN, max_hosts, r)))
		n = -EPROTO;
	free(dgram);
	return n;
}

bool wc_agent_route_has(int agent_port, int32_t modid, int32_t cmdid, int32_t port,
			bool want, int ms)
{
	int fd = harness_udp_socket();
	int64_t end = harness_deadline(ms);
	bool found = !want;
	while (harness_left_ms(end) > 0) {
		wc_route_t r;
		if (wc_api_get_route(fd, agent_port, modid, cmdid, &r, 64, 1000) > 0) {
			found = false;
			for (size_t i = 0; i < r.n; i++)
				found |= r.hosts[i].port == port;
			wc_route_free(&r);
			if (found == want)
				break;
		}
		usleep(5000);
	}
	close(fd);
	return found == want;
}
