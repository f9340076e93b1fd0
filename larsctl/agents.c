// SPDX-License-Identifier: MIT
// larsctl agents [--lagging] and route show (issue 20.3): what every
// lars-dns wrote about its connections (lars_dns_agent) and about the
// propagation of each pushed change (route_propagation, migration 009).
#include "larsctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "pg_conn.h"
#include "route_write.h"

/* An unacknowledged push older than this makes an agent lagging. */
#define LAGGING_MS 1000

static const char usage_agents[] =
	"Usage: larsctl [--db CONNINFO] agents [--lagging] [-o text|json|tsv]\n"
	"Every agent connected to a lars-dns, as the lars-dns instances wrote them\n"
	"in the last seconds ([dns] agents_interval_ms): the lars-dns (INSTANCE),\n"
	"the connection (PEER), the agent's machine and address, since when it is\n"
	"connected, its subscriptions, the newest route version it acknowledged,\n"
	"and LAG_MS: how long its oldest push not yet acknowledged has waited.\n"
	"STATE is ok, lagging (LAG_MS >= 1000) or original (an original lars_agent,\n"
	"which never acknowledges: its lag is not known). Lagging ones come first.\n"
	"--lagging: only those.\n"
	"-o json: one array of {\"instance\", \"peer\", \"host_name\", \"caller\",\n"
	"\"agent_id\", \"connected_at\", \"subscriptions\", \"acked_version\", \"lag_ms\",\n"
	"\"state\"} (null where the text shows -); -o tsv: the same columns.\n"
	"Exit status: 0 done, 1 database failure, 2 bad input.\n";

static const out_col_t agents_cols[] = {
	{ "instance", 's' }, { "peer", 's' }, { "host_name", 's' }, { "caller", 's' },
	{ "agent_id", 's' }, { "connected_at", 's' }, { "subscriptions", 'n' },
	{ "acked_version", 'n' }, { "lag_ms", 'n' }, { "state", 's' },
};

int cmd_agents(const args_t *a)
{
	if (a->help) {
		fputs(usage_agents, stdout);
		return EXIT_OK;
	}
	out_fmt_t fmt;
	if (a->argc != 1)
		return larsctl_usage_error("agents", "agents takes no arguments");
	if (larsctl_output(a, "agents", true, &fmt))
		return EXIT_USAGE;
	PGconn *conn = larsctl_connect(a->db);
	if (!conn)
		return EXIT_DB;
	char lag[16];
	snprintf(lag, sizeof(lag), "%d", LAGGING_MS);
	const char *p[2] = { lag, a->lagging ? "t" : "f" };
	PGresult *res = pg_exec(conn,
		"SELECT instance, peer, nullif(host_name, ''), host(caller),"
		"  CASE WHEN acks THEN to_hex(agent_id) END,"
		"  to_char(connected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		"  subscriptions, CASE WHEN acks THEN acked_version END,"
		"  CASE WHEN acks THEN lag_ms END,"
		"  CASE WHEN NOT acks THEN 'original' WHEN lag_ms >= $1::int THEN 'lagging'"
		"       ELSE 'ok' END"
		" FROM lars_dns_agent WHERE NOT $2::bool OR (acks AND lag_ms >= $1::int)"
		" ORDER BY acks AND lag_ms >= $1::int DESC, lag_ms DESC, instance, conn_id",
		2, p, PGRES_TUPLES_OK);
	if (!res) {
		fprintf(stderr, "larsctl: cannot read the agents (has `larsctl migrate` been run?)\n");
		PQfinish(conn);
		return EXIT_DB;
	}
	if (fmt != OUT_TEXT) {
		out_pgresult(fmt, agents_cols, (int)(sizeof(agents_cols) / sizeof(agents_cols[0])), res);
		PQclear(res);
		PQfinish(conn);
		return EXIT_OK;
	}
/* A column of row i as text: "-" for none. */
#define V(k) (PQgetisnull(res, i, k) ? "-" : PQgetvalue(res, i, k))
	printf("%-24s %-21s %-20s %-15s %-16s %-20s %5s %10s %8s %s\n", "INSTANCE", "PEER",
	       "HOST", "CALLER", "AGENT_ID", "CONNECTED", "SUBS", "ACKED", "LAG_MS", "STATE");
	for (int i = 0; i < PQntuples(res); i++)
		printf("%-24s %-21s %-20s %-15s %-16s %-20s %5s %10s %8s %s\n", V(0), V(1), V(2),
		       V(3), V(4), V(5), V(6), V(7), V(8), V(9));
#undef V
	PQclear(res);
	PQfinish(conn);
	return EXIT_OK;
}

/* route show: hosts, policy, version, and how far its last change went. */
int route_show(const args_t *a, int32_t modid, int32_t cmdid)
{
	PGconn *conn = larsctl_connect(a->db);
	if (!conn)
		return EXIT_DB;
	char m[16], c[16];
	snprintf(m, sizeof(m), "%d", modid);
	snprintf(c, sizeof(c), "%d", cmdid);
	const char *p[2] = { m, c };
	int rc = EXIT_DB;
	route_policy_t pol;
	PGresult *hosts = pg_exec(conn,
		"SELECT host(ip) || ':' || port, weight, drain FROM route_data"
		" WHERE modid = $1::int AND cmdid = $2::int ORDER BY ip, port", 2, p, PGRES_TUPLES_OK);
	PGresult *ver = hosts ? pg_exec(conn,
		"SELECT version, to_char(changed_at AT TIME ZONE 'UTC',"
		"  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM route_change"
		" WHERE modid = $1::int AND cmdid = $2::int ORDER BY version DESC LIMIT 1",
		2, p, PGRES_TUPLES_OK) : NULL;
	if (!ver || route_policy_read(conn, modid, cmdid, &pol))
		goto out;
	if (PQntuples(hosts) == 0 && PQntuples(ver) == 0) {
		fprintf(stderr, "larsctl: no route %d/%d (no hosts and no change recorded)\n", modid,
			cmdid);
		rc = EXIT_USAGE;
		goto out;
	}
	char text[160];
	route_policy_text(text, sizeof(text), &pol);
	printf("route %d/%d: %d hosts\n", modid, cmdid, PQntuples(hosts));
	printf("policy: %s\n", text);
	if (PQntuples(ver))
		printf("version %s, changed %s\n", PQgetvalue(ver, 0, 0), PQgetvalue(ver, 0, 1));
	else
		printf("version not known (its change records were pruned)\n");
	if (PQntuples(hosts)) {
		printf("%-21s %-6s %s\n", "HOST", "WEIGHT", "DRAIN");
		for (int i = 0; i < PQntuples(hosts); i++)
			printf("%-21s %-6s %s\n", PQgetvalue(hosts, i, 0), PQgetvalue(hosts, i, 1),
			       PQgetvalue(hosts, i, 2)[0] == 't' ? "drained" : "-");
	}
	if (PQntuples(ver)) {
		const char *pv[3] = { m, c, PQgetvalue(ver, 0, 0) };
		PGresult *pr = pg_exec(conn,
			"SELECT count(*), coalesce(sum(pushed), 0), coalesce(sum(acked), 0),"
			"  coalesce(sum(no_ack), 0), coalesce(max(slowest_ms), 0)"
			" FROM route_propagation WHERE modid = $1::int AND cmdid = $2::int"
			"   AND version = $3::bigint", 3, pv, PGRES_TUPLES_OK);
		if (!pr)
			goto out;
		if (strcmp(PQgetvalue(pr, 0, 0), "0") == 0)
			printf("propagation of version %s: not pushed to any agent (none subscribed "
			       "then, or no lars-dns wrote it)\n", PQgetvalue(ver, 0, 0));
		else
			printf("propagation of version %s: held by %s of %s agents that acknowledge "
			       "(slowest %s ms); %s original agents (no acknowledgements)\n",
			       PQgetvalue(ver, 0, 0), PQgetvalue(pr, 0, 2), PQgetvalue(pr, 0, 1),
			       PQgetvalue(pr, 0, 4), PQgetvalue(pr, 0, 3));
		PQclear(pr);
	}
	rc = EXIT_OK;
out:
	if (rc == EXIT_DB)
		fprintf(stderr, "larsctl: cannot read the route (has `larsctl migrate` been run?)\n");
	PQclear(hosts);
	PQclear(ver);
	PQfinish(conn);
	return rc;
}
