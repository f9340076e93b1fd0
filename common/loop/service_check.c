// SPDX-License-Identifier: MIT
// --check: bind and connect tests for service_main() (service_check.h).
#include "service_check.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

static void vsay(service_check_t *chk, bool error, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (error) {
		chk->errors++;
		log_error("%s: %s", chk->path, msg);
	} else {
		chk->warnings++;
		log_warn("%s: warning: %s", chk->path, msg);
	}
}

void service_check_error(service_check_t *chk, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(chk, true, fmt, ap);
	va_end(ap);
}

void service_check_warn(service_check_t *chk, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(chk, false, fmt, ap);
	va_end(ap);
}

/* @ip:@port resolved for @socktype; NULL after an error. */
static struct addrinfo *resolve(service_check_t *chk, const char *what, int socktype,
				const char *ip, int port, bool passive)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = socktype,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	char service[8];
	snprintf(service, sizeof(service), "%d", port);
	struct addrinfo *ai = NULL;
	int r = getaddrinfo(ip, service, &hints, &ai);
	if (r) {
		service_check_error(chk, "%s: cannot resolve '%s': %s", what, ip, gai_strerror(r));
		return NULL;
	}
	return ai;
}

void service_check_listen(service_check_t *chk, const char *what, int socktype,
			  const char *ip, int port, bool reuse_port)
{
	struct addrinfo *ai = resolve(chk, what, socktype, ip, port, true);
	if (!ai)
		return;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		service_check_error(chk, "%s: socket: %s", what, strerror(errno));
		freeaddrinfo(ai);
		return;
	}
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuse_port)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
		log_debug("%s: %s %s:%d: can bind", chk->path, what, ip, port);
	} else if (errno == EADDRINUSE) {
		service_check_warn(chk, "%s %s:%d is in use now (the running daemon?); it must be "
				   "free when the daemon starts", what, ip, port);
	} else {
		service_check_error(chk, "%s: cannot bind %s:%d: %s", what, ip, port,
				    strerror(errno));
	}
	close(fd);
	freeaddrinfo(ai);
}

/* A TCP connection to @ep within @ms: 0 or an errno. */
static int try_connect(service_check_t *chk, const char *what, const net_endpoint_t *ep, int ms)
{
	struct addrinfo *ai = resolve(chk, what, SOCK_STREAM, ep->host, ep->port, false);
	if (!ai)
		return EINVAL;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int err = fd < 0 ? errno : 0;
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		err = errno;
		if (err == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int n = poll(&p, 1, ms);
			socklen_t len = sizeof(err);
			if (n == 0)
				err = ETIMEDOUT;
			else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
				err = errno;
		}
	}
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return err;
}

void service_check_upstreams(service_check_t *chk, const char *what,
			     const net_endpoint_t *eps, int n)
{
	if (!chk->connect || n <= 0)
		return;
	int ok = 0;
	char failed[512] = "";
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		int err = try_connect(chk, what, &eps[i], 3000);
		if (err == 0) {
			ok++;
			log_debug("%s: %s %s:%d: connected", chk->path, what, eps[i].host, eps[i].port);
			continue;
		}
		int k = snprintf(failed + off, sizeof(failed) - off, "%s%s:%d (%s)", off ? ", " : "",
				 eps[i].host, eps[i].port, strerror(err));
		if (k > 0 && off + (size_t)k < sizeof(failed))
			off += (size_t)k;
	}
	if (ok == 0)
		service_check_error(chk, "%s: cannot connect to any of %s", what, failed);
	else if (ok < n)
		service_check_warn(chk, "%s: cannot connect to %s (%d of %d reachable)", what,
				   failed, ok, n);
}

void service_check_result(service_check_t *chk, const char *what, int r, const char *msg)
{
	if (r < 0)
		service_check_error(chk, "%s: %s", what, msg);
	else if (r > 0)
		service_check_warn(chk, "%s: %s", what, msg);
}
