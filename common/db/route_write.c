// SPDX-License-Identifier: MIT
// The one write path for routes: validation and one transaction per change.
#include "route_write.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg_conn.h"
#include "route_load.h"

int route_parse_id(const char *s, const char *what, int32_t *outp, const char **whyp)
{
	static char why[64];
	char *end;
	if (!s || !*s || s[0] < '0' || s[0] > '9')
		goto bad;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < 0 || v > INT32_MAX)
		goto bad;
	*outp = (int32_t)v;
	return 0;
bad:
	snprintf(why, sizeof(why), "%s must be an integer 0..2147483647", what);
	*whyp = why;
	return -EINVAL;
}

int route_parse(const char *modid, const char *cmdid, const char *ip,
		const char *port, route_entry_t *out, const char **whyp,
		const char **fieldp)
{
	struct in_addr a;
	int32_t p;
	const char *field_unused;

	if (!fieldp)
		fieldp = &field_unused;
	*fieldp = "modid";
	if (route_parse_id(modid, "MODID", &out->modid, whyp))
		return -EINVAL;
	*fieldp = "cmdid";
	if (route_parse_id(cmdid, "CMDID", &out->cmdid, whyp))
		return -EINVAL;
	*fieldp = "ip";
	if (!ip || inet_pton(AF_INET, ip, &a) != 1) {
		*whyp = "IP must be an IPv4 address like 10.0.0.7";
		return -EINVAL;
	}
	*fieldp = "port";
	/* Normalised text: what the database stores and what we print back. */
	inet_ntop(AF_INET, &a, out->ip, sizeof(out->ip));
	if (route_parse_id(port, "PORT", &p, whyp) || p < 1 || p > 65535) {
		*whyp = "PORT must be 1..65535";
		return -EINVAL;
	}
	out->port = p;
	*fieldp = NULL;
	return 0;
}

/* One UTF-8 sequence at @p (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF); its length with *cpp set, or 0 when invalid. */
static size_t utf8_next(const unsigned char *p, uint32_t *cpp)
{
	unsigned c = p[0];
	size_t len;
	uint32_t cp, min;
	if (c < 0x80) {
		*cpp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		len = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, cp = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80) /* the NUL at the end stops here too */
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cpp = cp;
	return len;
}

/* Characters that change how the text around them is shown: C0 and C1
 * controls (tab aside), DEL, line and paragraph separators, and the bidi
 * embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) that
 * can make a description read differently from what it holds. */
static bool desc_refused(uint32_t cp)
{
	return (cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp <= 0x9f) ||
	       cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

int route_describe_check(const char *text, const char **whyp)
{
	static char why[128];
	size_t n = strlen(text);
	if (n > ROUTE_DESC_MAX) {
		*whyp = "a description is at most 4096 bytes";
		return -EINVAL;
	}
	/* Checked here, not left to PostgreSQL: bad input is the caller's
	 * mistake (exit 2, 400), not a database failure. */
	const unsigned char *p = (const unsigned char *)text;
	while (*p) {
		uint32_t cp;
		size_t len = utf8_next(p, &cp);
		if (len == 0) {
			snprintf(why, sizeof(why),
				 "a description is UTF-8 text: invalid UTF-8 at byte %zu",
				 (size_t)(p - (const unsigned char *)text));
			*whyp = why;
			return -EINVAL;
		}
		if (desc_refused(cp)) {
			snprintf(why, sizeof(why),
				 "a description is one line of text without control or "
				 "bidirectional-override characters (U+%04X at byte %zu)",
				 (unsigned)cp, (size_t)(p - (const unsigned char *)text));
			*whyp = why;
			return -EINVAL;
		}
		p += len;
	}
	return 0;
}

int route_describe(PGconn *conn, int32_t modid, int32_t cmdid, const char *text)
{
	char m[16], c[16];
	snprintf(m, sizeof(m), "%d", modid);
	snprintf(c, sizeof(c), "%d", cmdid);
	PGresult *res;

	if (pg_cmd(conn, "BEGIN"))
		return -EIO;
	/* Values travel as parameters: quotes and SQL in TEXT are just text. */
	if (cmdid >= 0) {
		const char *p[3] = { m, c, text };
		res = pg_exec(conn, "INSERT INTO modid_config (modid) VALUES ($1::int) "
				    "ON CONFLICT DO NOTHING", 1, p, PGRES_COMMAND_OK);
		PQclear(res);
		if (res)
			res = pg_exec(conn, "INSERT INTO cmdid_config (modid, cmdid, description) "
					    "VALUES ($1::int, $2::int, $3) ON CONFLICT (modid, cmdid) "
					    "DO UPDATE SET description = EXCLUDED.description",
				      3, p, PGRES_COMMAND_OK);
	} else {
		const char *p[2] = { m, text };
		res = pg_exec(conn, "INSERT INTO modid_config (modid, description) VALUES ($1::int, $2) "
				    "ON CONFLICT (modid) DO UPDATE SET description = EXCLUDED.description",
			      2, p, PGRES_COMMAND_OK);
	}
	if (!res) {
		pg_cmd(conn, "ROLLBACK");
		return -EIO;
	}
	PQclear(res);
	return pg_cmd(conn, "COMMIT") ? -EIO : 0;
}

/* Runs @sql (params modid, cmdid, ip, port) that returns a row per host it
 * changed, inside one transaction with the bookkeeping around it. */
static int route_change(PGconn *conn, const route_entry_t *e, const char *sql,
			bool register_ids, int64_t *versionp)
{
	char modid[16], cmdid[16], port[16];
	snprintf(modid, sizeof(modid), "%d", e->modid);
	snprintf(cmdid, sizeof(cmdid), "%d", e->cmdid);
	snprintf(port, sizeof(port), "%d", e->port);
	const char *params[4] = { modid, cmdid, e->ip, port };
	PGresult *res;

	if (pg_cmd(conn, "BEGIN"))
		return -EIO;
	if (register_ids) {
		/* A route's ids get a (so far empty) description entry. */
		res = pg_exec(conn, "INSERT INTO modid_config (modid) VALUES ($1::int) "
				    "ON CONFLICT DO NOTHING", 1, params, PGRES_COMMAND_OK);
		if (!res)
			goto fail;
		PQclear(res);
		res = pg_exec(conn, "INSERT INTO cmdid_config (modid, cmdid) VALUES ($1::int, $2::int) "
				    "ON CONFLICT DO NOTHING", 2, params, PGRES_COMMAND_OK);
		if (!res)
			goto fail;
		PQclear(res);
	}
	res = pg_exec(conn, sql, 4, params, PGRES_TUPLES_OK);
	if (!res)
		goto fail;
	bool changed = PQntuples(res) > 0;
	PQclear(res);
	if (!changed) {
		pg_cmd(conn, "ROLLBACK");
		return route_version_read(conn, versionp) ? -EIO : ROUTE_UNCHANGED;
	}
	if (route_version_read(conn, versionp))
		goto fail;
	return pg_cmd(conn, "COMMIT") ? -EIO : ROUTE_CHANGED;
fail:
	pg_cmd(conn, "ROLLBACK");
	return -EIO;
}

int route_add(PGconn *conn, const route_entry_t *e, int64_t *versionp)
{
	return route_change(conn, e,
		"INSERT INTO route_data (modid, cmdid, ip, port) "
		"VALUES ($1::int, $2::int, $3::inet, $4::int) "
		"ON CONFLICT DO NOTHING RETURNING id", true, versionp);
}

int route_del(PGconn *conn, const route_entry_t *e, int64_t *versionp)
{
	return route_change(conn, e,
		"DELETE FROM route_data WHERE modid = $1::int AND cmdid = $2::int "
		"AND ip = $3::inet AND port = $4::int RETURNING id", false, versionp);
}

void route_message(char *buf, size_t cap, bool add, int r, const route_entry_t *e,
		   int64_t version)
{
	if (r == ROUTE_CHANGED)
		snprintf(buf, cap, "%s %d/%d %s:%d (route version %lld)", add ? "added" : "removed",
			 e->modid, e->cmdid, e->ip, e->port, (long long)version);
	else if (r == ROUTE_UNCHANGED)
		snprintf(buf, cap, "%d/%d %s:%d is %s the route; nothing changed", e->modid,
			 e->cmdid, e->ip, e->port, add ? "already in" : "not in");
	else
		snprintf(buf, cap, "nothing changed: the database failed");
}
