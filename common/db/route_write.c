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

/* The WHERE of one host of one route: parameters $1..$4. */
#define HOST_IS ROUTE_HOST_IS

int route_set_actor(PGconn *conn, const char *actor, bool this_transaction)
{
	if (!actor)
		return 0;
	const char *p[2] = { actor, this_transaction ? "true" : "false" };
	PGresult *res = pg_exec(conn, "SELECT set_config('lars.actor', $1, $2::bool)", 2, p,
				PGRES_TUPLES_OK);
	PQclear(res);
	return res ? 0 : -EIO;
}

/* Runs @sql (params modid, cmdid, ip, port, and @extra as $5 if given) that
 * returns a row per host it changed, inside one transaction with the
 * bookkeeping around it. With @absent_check, a statement that changed
 * nothing tells ROUTE_NO_HOST from ROUTE_UNCHANGED. */
static int route_change(PGconn *conn, const route_entry_t *e, const char *sql,
			const char *extra, bool register_ids, bool absent_check,
			int64_t *versionp)
{
	char modid[16], cmdid[16], port[16];
	snprintf(modid, sizeof(modid), "%d", e->modid);
	snprintf(cmdid, sizeof(cmdid), "%d", e->cmdid);
	snprintf(port, sizeof(port), "%d", e->port);
	const char *params[5] = { modid, cmdid, e->ip, port, extra };
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
	res = pg_exec(conn, sql, extra ? 5 : 4, params, PGRES_TUPLES_OK);
	if (!res)
		goto fail;
	bool changed = PQntuples(res) > 0;
	PQclear(res);
	if (!changed) {
		int r = ROUTE_UNCHANGED;
		if (absent_check) {
			res = pg_exec(conn, "SELECT 1 FROM route_data WHERE " HOST_IS, 4, params,
				      PGRES_TUPLES_OK);
			if (!res)
				goto fail;
			r = PQntuples(res) ? ROUTE_UNCHANGED : ROUTE_NO_HOST;
			PQclear(res);
		}
		pg_cmd(conn, "ROLLBACK");
		return route_version_read(conn, versionp) ? -EIO : r;
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
		"ON CONFLICT DO NOTHING RETURNING id", NULL, true, false, versionp);
}

int route_del(PGconn *conn, const route_entry_t *e, int64_t *versionp)
{
	return route_change(conn, e, "DELETE FROM route_data WHERE " HOST_IS " RETURNING id",
			    NULL, false, false, versionp);
}

int route_set_weight(PGconn *conn, const route_entry_t *e, int weight, int64_t *versionp)
{
	char w[16];
	snprintf(w, sizeof(w), "%d", weight);
	return route_change(conn, e,
		"UPDATE route_data SET weight = $5::int WHERE " HOST_IS
		" AND weight <> $5::int RETURNING id", w, false, true, versionp);
}

int route_set_drain(PGconn *conn, const route_entry_t *e, bool drain, int64_t *versionp)
{
	return route_change(conn, e,
		"UPDATE route_data SET drain = $5::bool WHERE " HOST_IS
		" AND drain <> $5::bool RETURNING id", drain ? "true" : "false", false, true,
		versionp);
}

/* A number in [@lo, @hi], all of @s. */
static bool parse_range(const char *s, long lo, long hi, int *outp)
{
	char *end;
	if (!s || !*s || s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*outp = (int)v;
	return true;
}

int route_parse_weight(const char *s, int *outp, const char **whyp)
{
	if (parse_range(s, ROUTE_WEIGHT_MIN, ROUTE_WEIGHT_MAX, outp))
		return 0;
	*whyp = "WEIGHT must be an integer 1..1000 (the default is 100)";
	return -EINVAL;
}

int route_parse_policy_value(const char *field, const char *s, route_policy_set_t *set,
			     const char **whyp)
{
	if (strcmp(field, "panic_threshold") == 0) {
		set->panic = true;
		if (s && strcmp(s, "default") == 0) {
			set->v.panic_threshold = ROUTE_PANIC_AGENT;
			return 0;
		}
		if (parse_range(s, 0, 100, &set->v.panic_threshold))
			return 0;
		*whyp = "the panic threshold is a percent 0..100 (0: off), or 'default' "
			"for the agent's [loadbalance] panic_threshold";
	} else if (strcmp(field, "max_ejection_percent") == 0) {
		set->ejection = true;
		if (parse_range(s, 1, 100, &set->v.max_ejection_percent))
			return 0;
		*whyp = "the max ejection percent is 1..100 (100: any host may be ejected)";
	} else {
		set->slow_start = true;
		if (parse_range(s, 0, ROUTE_SLOW_START_MAX, &set->v.slow_start_s))
			return 0;
		*whyp = "slow start is a number of seconds 0..86400 (0: off)";
	}
	return -EINVAL;
}

static void policy_from_row(const PGresult *res, int row, route_policy_t *out)
{
	out->panic_threshold = PQgetisnull(res, row, 0) ? ROUTE_PANIC_AGENT
				: (int)strtol(PQgetvalue(res, row, 0), NULL, 10);
	out->max_ejection_percent = (int)strtol(PQgetvalue(res, row, 1), NULL, 10);
	out->slow_start_s = (int)strtol(PQgetvalue(res, row, 2), NULL, 10);
}

int route_policy_read(PGconn *conn, int32_t modid, int32_t cmdid, route_policy_t *out)
{
	char m[16], c[16];
	snprintf(m, sizeof(m), "%d", modid);
	snprintf(c, sizeof(c), "%d", cmdid);
	const char *p[2] = { m, c };
	PGresult *res = pg_exec(conn, "SELECT panic_threshold, max_ejection_percent, slow_start_s "
				      "FROM cmdid_config WHERE modid = $1::int AND cmdid = $2::int",
				2, p, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	*out = ROUTE_POLICY_DEFAULT;
	if (PQntuples(res))
		policy_from_row(res, 0, out);
	PQclear(res);
	return 0;
}

/* The version, with its row locked: nobody else changes routes until we end. */
static int version_lock(PGconn *conn, int64_t *versionp)
{
	PGresult *res = pg_exec(conn, "SELECT version FROM route_version WHERE id = 1 FOR UPDATE",
				0, NULL, PGRES_TUPLES_OK);
	if (!res)
		return -EIO;
	*versionp = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return 0;
}

int route_set_policy(PGconn *conn, int32_t modid, int32_t cmdid, const route_policy_set_t *set,
		     route_policy_t *outp, int64_t *versionp)
{
	char m[16], c[16], pv[16], ev[16], sv[16];
	snprintf(m, sizeof(m), "%d", modid);
	snprintf(c, sizeof(c), "%d", cmdid);
	snprintf(pv, sizeof(pv), "%d", set->v.panic_threshold);
	snprintf(ev, sizeof(ev), "%d", set->v.max_ejection_percent);
	snprintf(sv, sizeof(sv), "%d", set->v.slow_start_s);
	/* $3: set the panic threshold, $4 its value (NULL: the agent's);
	 * $5, $6: the other two, NULL where not set. */
	const char *p[6] = { m, c, set->panic ? "true" : "false",
			     set->panic && set->v.panic_threshold != ROUTE_PANIC_AGENT ? pv : NULL,
			     set->ejection ? ev : NULL, set->slow_start ? sv : NULL };
	int64_t before;
	route_policy_t after;
	PGresult *res;

	if (pg_cmd(conn, "BEGIN"))
		return -EIO;
	if (version_lock(conn, &before))
		goto fail;
	res = pg_exec(conn, "INSERT INTO modid_config (modid) VALUES ($1::int) "
			    "ON CONFLICT DO NOTHING", 1, p, PGRES_COMMAND_OK);
	if (!res)
		goto fail;
	PQclear(res);
	res = pg_exec(conn,
		"INSERT INTO cmdid_config AS o (modid, cmdid, panic_threshold, "
		"  max_ejection_percent, slow_start_s) "
		"VALUES ($1::int, $2::int, CASE WHEN $3::bool THEN $4::int END, "
		"  coalesce($5::int, 100), coalesce($6::int, 0)) "
		"ON CONFLICT (modid, cmdid) DO UPDATE SET "
		"  panic_threshold = CASE WHEN $3::bool THEN $4::int ELSE o.panic_threshold END, "
		"  max_ejection_percent = coalesce($5::int, o.max_ejection_percent), "
		"  slow_start_s = coalesce($6::int, o.slow_start_s) "
		"RETURNING panic_threshold, max_ejection_percent, slow_start_s",
		6, p, PGRES_TUPLES_OK);
	if (!res)
		goto fail;
	policy_from_row(res, 0, &after);
	PQclear(res);
	if (route_version_read(conn, versionp))
		goto fail;
	if (outp)
		*outp = after;
	if (*versionp == before) {
		pg_cmd(conn, "ROLLBACK");
		return ROUTE_UNCHANGED;
	}
	return pg_cmd(conn, "COMMIT") ? -EIO : ROUTE_CHANGED;
fail:
	pg_cmd(conn, "ROLLBACK");
	return -EIO;
}

void route_policy_text(char *buf, size_t cap, const route_policy_t *p)
{
	char panic[48];
	if (p->panic_threshold == ROUTE_PANIC_AGENT)
		snprintf(panic, sizeof(panic), "the agent's default");
	else if (p->panic_threshold == 0)
		snprintf(panic, sizeof(panic), "0 (off)");
	else
		snprintf(panic, sizeof(panic), "%d %%", p->panic_threshold);
	snprintf(buf, cap, "panic_threshold %s, max_ejection_percent %d %%, slow_start %d s%s",
		 panic, p->max_ejection_percent, p->slow_start_s,
		 p->slow_start_s ? "" : " (off)");
}

void route_tc_message(char *buf, size_t cap, const char *what, int value, int r,
		      const route_entry_t *e, int64_t version)
{
	bool weight = strcmp(what, "weight") == 0;
	char done[48];
	if (weight)
		snprintf(done, sizeof(done), "weight %d", value);
	else
		snprintf(done, sizeof(done), "%s", value ? "drained" : "not drained");
	if (r == ROUTE_CHANGED)
		snprintf(buf, cap, "%d/%d %s:%d is %s now (route version %lld)", e->modid,
			 e->cmdid, e->ip, e->port, done, (long long)version);
	else if (r == ROUTE_UNCHANGED)
		snprintf(buf, cap, "%d/%d %s:%d is %s already; nothing changed", e->modid,
			 e->cmdid, e->ip, e->port, done);
	else if (r == ROUTE_NO_HOST)
		snprintf(buf, cap, "%s:%d is not in route %d/%d; nothing changed", e->ip,
			 e->port, e->modid, e->cmdid);
	else
		snprintf(buf, cap, "nothing changed: the database failed");
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
