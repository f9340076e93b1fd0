// SPDX-License-Identifier: MIT
// The one write path for routes (larsctl today, the web console later):
// validation, then one transaction per change. The database triggers bump
// the version, record the change and NOTIFY in that same transaction.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

/** struct route_entry - one validated host of one route. */
typedef struct route_entry {
	int32_t modid;
	int32_t cmdid;
	char ip[16]; /* dotted IPv4 */
	int port;
} route_entry_t;

enum {
	ROUTE_CHANGED = 0,
	ROUTE_UNCHANGED = 1, /* duplicate add, or del of a host not in the route */
};

/** route_parse_id() - a decimal id 0..2147483647; -EINVAL with *whyp. */
int route_parse_id(const char *s, const char *what, int32_t *outp, const char **whyp);
/**
 * route_parse() - validate the four words an operator typed.
 * Return: 0, or -EINVAL with *whyp a one-line reason.
 */
int route_parse(const char *modid, const char *cmdid, const char *ip,
		const char *port, route_entry_t *out, const char **whyp);

/**
 * route_add() / route_del() - change one host, in one transaction.
 * *versionp gets the route version after the change (or the current one).
 * Return: ROUTE_CHANGED, ROUTE_UNCHANGED, or -EIO (logged; nothing changed).
 */
int route_add(PGconn *conn, const route_entry_t *e, int64_t *versionp);
int route_del(PGconn *conn, const route_entry_t *e, int64_t *versionp);
