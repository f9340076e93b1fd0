// SPDX-License-Identifier: MIT
// Integration-test helpers: spawn a daemon with --ready-fd, wait for its
// ports with a deadline, talk Lars frames over blocking sockets with
// timeouts, stop it with SIGTERM and check it exits cleanly.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"

typedef struct harness_proc {
	pid_t pid;
	char ready[256]; /* what the daemon wrote to --ready-fd */
	char log[256];   /* its stderr goes to this file */
	char config[256];
	int exit_status; /* set by harness_stop(): the exit code, or -1 */
} harness_proc_t;

/** harness_spawn() - start @bin -c @config --ready-fd N; wait ≤ 10 s for the line. */
int harness_spawn(harness_proc_t *p, const char *bin, const char *config);
/** harness_port() - "name=PORT" from the ready line, or -1. */
int harness_port(const harness_proc_t *p, const char *name);
/**
 * harness_stop() - SIGTERM, wait ≤ 10 s (then SIGKILL); returns the exit
 * status or -1. A clean exit removes the config and log files.
 */
int harness_stop(harness_proc_t *p);
/** harness_write_config() - write @text to a temp file; returns its path (static buffer per call slot). */
const char *harness_write_config(const char *text);

int harness_tcp_connect(int port);
/**
 * harness_tcp_connect_from() - a loopback connection to @port from source
 * address @src (a 127.x address, NULL: any), with SO_RCVBUF @rcvbuf set
 * before connecting (0: the default). Return: the socket or -1.
 */
int harness_tcp_connect_from(const char *src, int port, int rcvbuf);
int harness_udp_socket(void);
/** harness_send_all() - write all bytes; -1 on error. */
int harness_send_all(int fd, const void *buf, size_t len);
/**
 * harness_recv_frame() - read one frame within @timeout_ms.
 * Return: 1 with *hdrp and @body (cap bytes) filled, 0 on EOF (peer closed),
 * -1 on timeout or error.
 */
int harness_recv_frame(int fd, frame_hdr_t *hdrp, uint8_t *body, size_t cap,
		       int timeout_ms);
/** harness_wait_eof() - 1 if the peer closes within @timeout_ms, else 0. */
int harness_wait_eof(int fd, int timeout_ms);
/** harness_udp_call() - send a datagram to 127.0.0.1:@port, wait ≤ @timeout_ms for one back. */
ssize_t harness_udp_call(int fd, int port, const void *req, size_t len,
			 uint8_t *resp, size_t cap, int timeout_ms);
/** harness_http_get() - GET @path from 127.0.0.1:@port into @out; returns bytes or -1. */
ssize_t harness_http_get(int port, const char *path, char *out, size_t cap);
/**
 * harness_metric() - the value of the /metrics line @name (the whole name,
 * labels included) of the daemon whose metrics listener is @port.
 * Return: the value, or -1 if the page could not be read or has no such line.
 */
double harness_metric(int port, const char *name);
/** harness_metric_in() - the same from a /metrics text already read: values
 * that must come from one scrape (a histogram's count and a bucket). */
double harness_metric_in(const char *text, const char *name);

/** harness_deadline() - the monotonic time @ms from now, for harness_left_ms(). */
int64_t harness_deadline(int ms);
/** harness_left_ms() - milliseconds until @deadline, 0 once it passed. */
int harness_left_ms(int64_t deadline);
/** harness_now_s() - monotonic seconds. */
double harness_now_s(void);
/** harness_die() - "PROG: message" on stderr (PROG from program_invocation_short_name), exit 1. */
void harness_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/** harness_run() - system() of a formatted command; its exit status, or -1. */
int harness_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/**
 * harness_cluster_start() - `@cluster start @dir [*portp]` (deploy/pg-cluster),
 * then the PG* variables it prints (PGHOST, PGPORT, PGUSER, PGDATABASE and
 * PGPASSFILE, its 0600 password file) are set. *portp: 0 = any free port;
 * set to the port used, so a restart keeps it. Returns 0 or -1.
 */
int harness_cluster_start(const char *cluster, const char *dir, int *portp);
/**
 * struct harness_pg - a test's PostgreSQL fixture (tests/tools/lars-test-pg):
 * a fresh database of its own, on the run's server or a private cluster.
 */
typedef struct harness_pg {
	char dir[64]; /* the fixture's directory; empty once stopped */
} harness_pg_t;

/**
 * harness_pg_start() - `lars-test-pg start`: a new empty database for the
 * test @name (on a cluster of its own with @own_cluster: tests that stop,
 * kill or restart PostgreSQL) and the PG* variables naming it set in this
 * process, for libpq, larsctl and the daemons it spawns. The test applies
 * the migrations (`larsctl migrate`).
 * Return: 0, or -1 with the reason on stderr (and nothing left behind).
 */
int harness_pg_start(harness_pg_t *pg, const char *name, bool own_cluster);
/**
 * harness_pg_server() - `lars-test-pg server @what`: "down", "up" (same
 * port), "restart" or "kill" the private cluster. Return: 0 or -1.
 */
int harness_pg_server(harness_pg_t *pg, const char *what);
/**
 * harness_pg_standby() - `lars-test-pg server standby`: a hot standby of the
 * private cluster (streaming replication on loopback). "promote" through
 * harness_pg_server() makes it the test's server (PG* variables switched).
 * Return: its port, or -1.
 */
int harness_pg_standby(harness_pg_t *pg);
/** harness_pg_stop() - drop the database, stop a private cluster, remove the directory; NULL-safe on a stopped one. */
void harness_pg_stop(harness_pg_t *pg);

/** harness_sql() - run a statement (PG* variables); 0, or -1 with the error printed. */
int harness_sql(const char *q);
/** harness_sql_num() - the single number a query returns; -1 if none or unreachable. */
long long harness_sql_num(const char *q);
/** harness_wait_sql() - poll @q until it returns @want (≤ @ms); the last value. */
long long harness_wait_sql(const char *q, long long want, int ms);
/** harness_free_tcp_port() - a loopback TCP port free just now. */
int harness_free_tcp_port(void);
/** harness_free_udp_base() - the first of three consecutive free UDP ports, or 0. */
int harness_free_udp_base(void);
