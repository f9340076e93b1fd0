// SPDX-License-Identifier: MIT
// Address helpers shared by the transports.
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

int net_addr(const char *ip, int port, struct sockaddr_storage *ss)
{
	if (port < 0 || port > 65535)
		return UV_EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(ip, port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return UV_EINVAL;
}

void net_addr_str(const struct sockaddr *sa, char out[NET_ADDR_STRLEN])
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		uv_ip4_name(in, ip, sizeof(ip));
		port = ntohs(in->sin_port);
		snprintf(out, NET_ADDR_STRLEN, "%s:%d", ip, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		uv_ip6_name(in6, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
		snprintf(out, NET_ADDR_STRLEN, "[%s]:%d", ip, port);
	} else {
		snprintf(out, NET_ADDR_STRLEN, "?");
	}
}

bool net_is_loopback(const char *ip)
{
	struct sockaddr_storage ss;
	if (net_addr(ip, 0, &ss))
		return false;
	return net_addr_is_loopback((const struct sockaddr *)&ss);
}

bool net_addr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		return (a >> 24) == 127;
	}
	if (sa->sa_family != AF_INET6)
		return false;
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	static const struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	if (IN6_IS_ADDR_V4MAPPED(a6))
		return a6->s6_addr[12] == 127;
	return memcmp(a6, &lo6, sizeof(lo6)) == 0;
}

int net_set_reuse_port(uv_handle_t *h, bool on)
{
	uv_os_fd_t fd;
	int one = 1;
	if (!on)
		return 0;
	int r = uv_fileno(h, &fd);
	if (r)
		return r;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		return uv_translate_sys_error(errno);
	return 0;
}

void net_log_listen_error(const char *name, const char *proto, const char *ip, int port,
			  int err)
{
	char addr[NET_ADDR_STRLEN];
	struct sockaddr_storage ss;
	if (net_addr(ip, port, &ss) == 0)
		net_addr_str((struct sockaddr *)&ss, addr);
	else
		snprintf(addr, sizeof(addr), "%s:%d", ip, port);
	if (err == UV_EADDRINUSE)
		/* "address already in use" is what deploy/lars-local looks for. */
		log_error("%s: cannot listen on %s %s: address already in use by another "
			  "socket (another instance, or another program); listeners are "
			  "exclusive unless reuse_port = true",
			  name, proto, addr);
	else
		log_error("%s: cannot listen on %s %s: %s", name, proto, addr, uv_strerror(err));
}

int net_listen_tcp(uv_loop_t *loop, uv_tcp_t *tcp, const char *ip, int port,
		   int backlog, bool reuse_port, uv_connection_cb cb, int *portp)
{
	struct sockaddr_storage ss;
	int r = net_addr(ip, port, &ss);
	/* With the family given, the socket exists at once and takes its
	 * options before the bind; a bad address still leaves @tcp closable. */
	r = uv_tcp_init_ex(loop, tcp, r ? AF_UNSPEC : ss.ss_family);
	if (r) {
		/* No socket (EMFILE...): a handle without one, still closable;
		 * without a socket to make, uv_tcp_init() cannot fail. */
		(void)uv_tcp_init(loop, tcp);
		return r;
	}
	r = net_addr(ip, port, &ss);
	if (r)
		return r;
	r = net_set_reuse_port((uv_handle_t *)tcp, reuse_port);
	if (r)
		return r;
	/* libuv sets SO_REUSEADDR, which a restart needs while the previous
	 * run's connections sit in TIME_WAIT. It never lets two listening
	 * sockets share a port (Linux checks again at listen(): a taken port
	 * fails here or at uv_listen, which reports libuv's delayed bind
	 * error); only SO_REUSEPORT on both sides does. */
	r = uv_tcp_bind(tcp, (const struct sockaddr *)&ss, 0);
	if (r)
		return r;
	r = uv_listen((uv_stream_t *)tcp, backlog, cb);
	if (r)
		return r;
	struct sockaddr_storage bound;
	int len = sizeof(bound);
	r = uv_tcp_getsockname(tcp, (struct sockaddr *)&bound, &len);
	if (r)
		return r;
	*portp = ntohs(bound.ss_family == AF_INET
			       ? ((struct sockaddr_in *)&bound)->sin_port
			       : ((struct sockaddr_in6 *)&bound)->sin6_port);
	return 0;
}

static int net_endpoint_parse(const char *s, size_t n, net_endpoint_t *ep)
{
	char buf[INET6_ADDRSTRLEN + 16];
	const char *host, *port;

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	char *colon;
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		*close = '\0';
		host = buf + 1;
		port = close + 2;
	} else {
		colon = strrchr(buf, ':');
		if (!colon)
			return -EINVAL;
		*colon = '\0';
		host = buf;
		port = colon + 1;
	}
	char *end;
	errno = 0;
	long p = strtol(port, &end, 10);
	if (errno || end == port || *end || p < 1 || p > 65535)
		return -EINVAL;
	struct sockaddr_storage ss;
	if (net_addr(host, (int)p, &ss))
		return -EINVAL;
	if (strlen(host) >= sizeof(ep->host))
		return -EINVAL;
	memcpy(ep->host, host, strlen(host) + 1);
	ep->port = (int)p;
	return 0;
}

int net_endpoints_parse(const char *s, net_endpoint_t *out, size_t max)
{
	size_t n = 0;
	while (*s) {
		s += strspn(s, " \t,");
		if (!*s)
			break;
		size_t len = strcspn(s, " \t,");
		if (n >= max || net_endpoint_parse(s, len, &out[n]))
			return -EINVAL;
		n++;
		s += len;
	}
	return n ? (int)n : -EINVAL;
}

int net_write_now(uv_stream_t *s, uint8_t *buf, size_t *lenp)
{
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)*lenp);
	int n = uv_try_write(s, &b, 1);
	if (n == (int)*lenp)
		return 1;
	if (n == UV_EAGAIN)
		return 0;
	if (n < 0)
		return n;
	memmove(buf, buf + n, *lenp - (size_t)n);
	*lenp -= (size_t)n;
	return 0;
}
