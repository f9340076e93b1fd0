// SPDX-License-Identifier: MIT
// The one write path for routes and descriptions (larsctl, lars-admin):
// validation, then one transaction per change. The database triggers bump
// the version, record the change and NOTIFY in that same transaction.
#pragma once

#include <stdbool.h>
#include <stddef.h>
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
 * Return: 0, or -EINVAL with *whyp a one-line reason and *fieldp (if
 * @fieldp) the input at fault: "modid", "cmdid", "ip" or "port".
 */
int route_parse(const char *modid, const char *cmdid, const char *ip,
		const char *port, route_entry_t *out, const char **whyp,
		const char **fieldp);

#define ROUTE_DESC_MAX 4096

/**
 * route_describe_check() - a description: valid UTF-8, at most 4096 bytes,
 * without C0/C1 control characters (tab aside), DEL, U+2028/U+2029 or bidi
 * overrides/isolates (U+202A-U+202E, U+2066-U+2069). -EINVAL with *whyp.
 */
int route_describe_check(const char *text, const char **whyp);
/**
 * route_describe() - set the description of module @modid (@cmdid < 0) or of
 * route (@modid, @cmdid), registering the ids; one transaction.
 * Return: 0 or -EIO (logged; nothing changed).
 */
int route_describe(PGconn *conn, int32_t modid, int32_t cmdid, const char *text);

/**
 * route_add() / route_del() - change one host, in one transaction.
 * *versionp gets the route version after the change (or the current one).
 * Return: ROUTE_CHANGED, ROUTE_UNCHANGED, or -EIO (logged; nothing changed).
 */
int route_add(PGconn *conn, const route_entry_t *e, int64_t *versionp);
int route_del(PGconn *conn, const route_entry_t *e, int64_t *versionp);
/**
 * route_message() - the one line that tells an operator what route_add()
 * (@add) or route_del() did (@r its result), for larsctl and the console.
 */
void route_message(char *buf, size_t cap, bool add, int r, const route_entry_t *e,
		   int64_t version);
