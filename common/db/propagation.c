// SPDX-License-Identifier: MIT
// Route propagation in PostgreSQL: lars-dns's writer.
#include "propagation.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "pg_conn.h"
#include "xalloc.h"

/* A PostgreSQL array literal being built: "{a,b,...}". */
typedef struct arr {
	char *p;
	size_t n, cap;
} arr_t;

static void arr_putc(arr_t *a, char c)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 256;
		a->p = xrealloc(a->p, a->cap);
	}
	a->p[a->n++] = c;
	a->p[a->n] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void arr_num(arr_t *a, const char *fmt, ...)
{
	char buf[32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	arr_putc(a, a->n ? ',' : '{');
	for (const char *s = buf; *s; s++)
		arr_putc(a, *s);
}

/* A text element, quoted: an agent's host name is its own to choose. */
static void arr_str(arr_t *a, const char *s)
{
	arr_putc(a, a->n ? ',' : '{');
	arr_putc(a, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			arr_putc(a, '\\');
		arr_putc(a, *s);
	}
	arr_putc(a, '"');
}

static void arr_null(arr_t *a)
{
	arr_putc(a, a->n ? ',' : '{');
	for (const char *s = "NULL"; *s; s++)
		arr_putc(a, *s);
}

static const char *arr_end(arr_t *a)
{
	if (!a->n) {
		arr_putc(a, '{');
	}
	arr_putc(a, '}');
	return a->p;
}

enum { A_CONN, A_PEER, A_ACKS, A_AGENT, A_HOST, A_CALLER, A_SINCE, A_SUBS, A_ACKED, A_LAST,
       A_PENDING, A_LAG, A_N };
enum { P_VERSION, P_MODID, P_CMDID, P_PUSHED, P_ACKED, P_NOACK, P_SLOWEST, P_AT, P_N };

static int store_rows(PGconn *conn, const char *instance, const prop_agent_row_t *rows,
		      size_t n)
{
	arr_t a[A_N] = { 0 };
	for (size_t i = 0; i < n; i++) {
		const prop_agent_row_t *r = &rows[i];
		arr_num(&a[A_CONN], "%" PRIu64, r->conn_id);
		arr_str(&a[A_PEER], r->peer);
		arr_num(&a[A_ACKS], "%s", r->acks ? "t" : "f");
		if (r->acks)
			arr_num(&a[A_AGENT], "%" PRId64, (int64_t)r->agent_id);
		else
			arr_null(&a[A_AGENT]);
		arr_str(&a[A_HOST], r->host_name);
		if (r->caller)
			arr_num(&a[A_CALLER], "%" PRIu32, (uint32_t)r->caller);
		else
			arr_null(&a[A_CALLER]);
		arr_num(&a[A_SINCE], "%" PRId64, r->connected_unix);
		arr_num(&a[A_SUBS], "%" PRIu32, r->subscriptions);
		arr_num(&a[A_ACKED], "%" PRId64, r->acked_version);
		if (r->last_ack_unix)
			arr_num(&a[A_LAST], "%" PRId64, r->last_ack_unix);
		else
			arr_null(&a[A_LAST]);
		arr_num(&a[A_PENDING], "%" PRIu32, r->pending);
		arr_num(&a[A_LAG], "%" PRIu64, r->lag_ms);
	}
	const char *p[A_N + 1] = { instance };
	for (int k = 0; k < A_N; k++)
		p[k + 1] = arr_end(&a[k]);
	PGresult *res = pg_exec(conn, "DELETE FROM lars_dns_agent WHERE instance = $1", 1, p,
				PGRES_COMMAND_OK);
	if (res) {
		PQclear(res);
		res = pg_exec(conn,
			"INSERT INTO lars_dns_agent (instance, conn_id, peer, acks, agent_id,"
			"  host_name, caller, connected_at, subscriptions, acked_version,"
			"  last_ack_at, pending, lag_ms)"
			" SELECT $1, c, pe, ak, ag, hn, '0.0.0.0'::inet + ca, to_timestamp(si), su, av,"
			"   to_timestamp(la), pn, lg"
			" FROM unnest($2::bigint[], $3::text[], $4::bool[], $5::bigint[], $6::text[],"
			"   $7::bigint[], $8::bigint[], $9::int[], $10::bigint[], $11::bigint[],"
			"   $12::int[], $13::bigint[])"
			"   AS u (c, pe, ak, ag, hn, ca, si, su, av, la, pn, lg)",
			A_N + 1, p, PGRES_COMMAND_OK);
	}
	for (int k = 0; k < A_N; k++)
		free(a[k].p);
	if (!res)
		return -EIO;
	PQclear(res);
	return 0;
}

static int store_props(PGconn *conn, const char *instance, const da_prop_t *props, size_t n)
{
	if (!n)
		return 0;
	arr_t a[P_N] = { 0 };
	for (size_t i = 0; i < n; i++) {
		const da_prop_t *r = &props[i];
		arr_num(&a[P_VERSION], "%" PRId64, r->version);
		arr_num(&a[P_MODID], "%" PRId32, r->modid);
		arr_num(&a[P_CMDID], "%" PRId32, r->cmdid);
		arr_num(&a[P_PUSHED], "%" PRIu32, r->pushed);
		arr_num(&a[P_ACKED], "%" PRIu32, r->acked);
		arr_num(&a[P_NOACK], "%" PRIu32, r->no_ack);
		arr_num(&a[P_SLOWEST], "%" PRIu64, r->slowest_ms);
		arr_num(&a[P_AT], "%" PRId64, r->pushed_unix);
	}
	const char *p[P_N + 1] = { instance };
	for (int k = 0; k < P_N; k++)
		p[k + 1] = arr_end(&a[k]);
	PGresult *res = pg_exec(conn,
		"INSERT INTO route_propagation AS o (instance, version, modid, cmdid, pushed, acked,"
		"  no_ack, slowest_ms, pushed_at)"
		" SELECT $1, v, m, c, pu, ac, na, sl, to_timestamp(at)"
		" FROM unnest($2::bigint[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[],"
		"   $8::bigint[], $9::bigint[]) AS u (v, m, c, pu, ac, na, sl, at)"
		" ON CONFLICT (instance, version, modid, cmdid) DO UPDATE SET"
		"  pushed = EXCLUDED.pushed, acked = EXCLUDED.acked, no_ack = EXCLUDED.no_ack,"
		"  slowest_ms = EXCLUDED.slowest_ms, updated_at = now()",
		P_N + 1, p, PGRES_COMMAND_OK);
	for (int k = 0; k < P_N; k++)
		free(a[k].p);
	if (!res)
		return -EIO;
	PQclear(res);
	return 0;
}

int prop_store(PGconn *conn, const char *instance, const prop_agent_row_t *rows, size_t n,
	       const da_prop_t *props, size_t n_props, int ttl_s, int keep_days)
{
	bool standby;
	if (pg_in_recovery(conn, &standby))
		return -EIO;
	PGresult *res;
	if (standby)
		return -EROFS; /* the primary's lars-dns write; ours come back after a promotion */
	char ttl[16], keep[16];
	snprintf(ttl, sizeof(ttl), "%d", ttl_s);
	snprintf(keep, sizeof(keep), "%d", keep_days);
	const char *pt[1] = { ttl }, *pk[1] = { keep };
	if (pg_cmd(conn, "BEGIN"))
		return -EIO;
	if (store_rows(conn, instance, rows, n) || store_props(conn, instance, props, n_props))
		goto fail;
	res = pg_exec(conn, "DELETE FROM lars_dns_agent WHERE updated_at < now() - "
			    "make_interval(secs => $1::int)", 1, pt, PGRES_COMMAND_OK);
	if (!res)
		goto fail;
	PQclear(res);
	res = pg_exec(conn, "DELETE FROM route_propagation WHERE updated_at < now() - "
			    "make_interval(days => $1::int)", 1, pk, PGRES_COMMAND_OK);
	if (!res)
		goto fail;
	PQclear(res);
	return pg_cmd(conn, "COMMIT") ? -EIO : 0;
fail:
	pg_cmd(conn, "ROLLBACK");
	return -EIO;
}
