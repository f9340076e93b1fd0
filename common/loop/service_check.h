// SPDX-License-Identifier: MIT
// `DAEMON --check [-c FILE]` and `--check=connect` (issue 24.4): whether the
// daemon would start with this configuration, without starting it. The
// configuration is parsed strictly (an unknown key is an error), the
// permissions the daemon would refuse are refused, the listen addresses
// are resolved and bound for a moment, and with =connect PostgreSQL and
// the upstream services are connected to. Every problem is one line
// "FILE[:LINE]: reason" on stderr; the exit status is 0 (it would start)
// or 2.
#pragma once

#include <stdbool.h>

#include "net.h"

/** struct service_check - one check run; daemons only call the functions below. */
typedef struct service_check {
	const char *path;  /* the configuration file */
	bool connect;      /* --check=connect */
	int errors;
	int warnings;
} service_check_t;

/**
 * service_check_listen() - resolve @ip and bind @port (SOCK_STREAM or
 * SOCK_DGRAM) for a moment. A port in use is a warning only (the running
 * daemon holds it during a check before a restart); any other failure
 * (an address not on this machine, a privileged port) is an error.
 * @what: the keys, for the message ("[dns] ip/port").
 * @reuse_port: the daemon sets SO_REUSEPORT there.
 */
void service_check_listen(service_check_t *chk, const char *what, int socktype,
			  const char *ip, int port, bool reuse_port);

/**
 * service_check_upstreams() - with =connect, a TCP connection to each of
 * @eps (3 s each): one that fails is a warning, all failing an error.
 */
void service_check_upstreams(service_check_t *chk, const char *what,
			     const net_endpoint_t *eps, int n);

/** service_check_error() - one more problem: "PATH: reason" on stderr. */
__attribute__((format(printf, 2, 3)))
void service_check_error(service_check_t *chk, const char *fmt, ...);

/** service_check_warn() - a note that does not stop the start. */
__attribute__((format(printf, 2, 3)))
void service_check_warn(service_check_t *chk, const char *fmt, ...);

/**
 * service_check_result() - a check done elsewhere (migrate_check()): @r < 0
 * an error, @r > 0 a warning, 0 nothing; @msg the reason after "@what: ".
 */
void service_check_result(service_check_t *chk, const char *what, int r, const char *msg);
