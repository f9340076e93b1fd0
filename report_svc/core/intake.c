// SPDX-License-Identifier: MIT
// lars-reporter's request handling: decode, admit, fold into pending.
#include "intake.h"

#include "msg.h"

#define INTAKE_REFUSED_LOG_MS 10000

/**
 * intake_init() - admission for reports: @trusted_proxies ("ip, ip/len, ...")
 * and, if @trust_loopback, loopback peers send their own caller; a ts more
 * than @max_skew_s ahead of our clock is refused; a report carries at most
 * @max_results results.
 * Return: 0, or -EINVAL with *@whyp naming what is wrong with the list.
 */
int intake_init(intake_t *in, const char *trusted_proxies, bool trust_loopback,
		uint32_t max_skew_s, size_t max_results, const char **whyp)
{
	*in = (intake_t){
		.admit = { .trust_loopback = trust_loopback, .max_skew_s = max_skew_s },
		.max_results = max_results,
		.rl_refused = LOG_RATELIMIT_INIT(INTAKE_REFUSED_LOG_MS, 3),
	};
	cum_init(&in->cum);
	return admit_parse_nets(&in->admit, trusted_proxies, whyp);
}

/** intake_deinit() - forget the running totals. */
void intake_deinit(intake_t *in)
{
	cum_deinit(&in->cum);
}

/**
 * intake_conn_init() - @c for a connection from @peer: trusted, or the
 * caller its reports are stored under. An address that is none (it cannot
 * be parsed) leaves @c untrusted without a caller: its reports are refused.
 */
void intake_conn_init(const intake_t *in, const char *peer, intake_conn_t *c)
{
	char ip[64]; /* as long as a whole "[v6addr]:port" */
	*c = (intake_conn_t){ 0 };
	if (admit_peer_ip(peer, ip, sizeof(ip)) || admit_peer(&in->admit, ip, &c->peer))
		c->peer = (admit_peer_t){ 0 }; /* no address: nothing to store under */
}

/* The caller a report of @c is stored under; false if it has none. */
static bool intake_caller(intake_conn_t *c, const char *peer, int32_t sent,
			  int32_t *callerp, intake_result_t *res)
{
	if (c->peer.trusted) {
		*callerp = sent;
		return true;
	}
	if (!c->peer.has_ipv4) {
		/* An IPv6 peer has no IPv4 caller address to store under. */
		res->caller_refused = true;
		if (!c->warned)
			log_warn("reporter: %s: reports refused: an IPv6 peer cannot be a "
				 "caller (IPv4); list it in [reporter] trusted_proxies to "
				 "accept the caller it sends", peer);
		c->warned = true;
		return false;
	}
	res->caller_replaced = sent != c->peer.caller;
	*callerp = c->peer.caller;
	return true;
}

/* The time a report is stored under, into *tsp; false if it is refused. */
static bool intake_time(intake_t *in, const char *peer, const lars_ReportStatusRequest *req,
			uint64_t wall_s, uint64_t now_ms, uint32_t *tsp, intake_result_t *res)
{
	res->ts = admit_ts(&in->admit, req->ts, wall_s, tsp);
	if (res->ts == ADMIT_TS_OK)
		return true;
	unsigned long long hidden;
	long long off = (long long)req->ts - (long long)wall_s;
	if (log_ratelimit_ok(&in->rl_refused, now_ms, &hidden))
		log_warn("reporter: %s: report for %d/%d with ts %lld s %s our clock "
			 "(max_clock_skew %u s): %s%s", peer, req->modid,
			 req->cmdid, off < 0 ? -off : off, off < 0 ? "behind" : "ahead of",
			 in->admit.max_skew_s,
			 res->ts == ADMIT_TS_FUTURE ? "refused" : "stored under our time",
			 hidden ? " (more suppressed)" : "");
	return res->ts != ADMIT_TS_FUTURE;
}

/* One result of @req as it goes into the map: a difference for running totals. */
static void intake_add(intake_t *in, const lars_HostCallResult *r, const report_key_t *key,
		       bool cumulative, report_add_t *a, intake_result_t *res)
{
	*a = (report_add_t){ .succ = r->succ, .err = r->err, .st_succ = r->succ,
			     .st_err = r->err, .overload = r->overload };
	if (cumulative) {
		uint32_t ds, de;
		if (cum_delta(&in->cum, key, r->succ, r->err, &ds, &de))
			res->resets++;
		a->succ = ds;
		a->err = de;
		return; /* a duration total is not taken for a difference */
	}
	if (r->lat_count && r->lat_buckets_count && r->lat_buckets_count <= REPORT_LAT_BUCKETS) {
		a->lat_count = r->lat_count;
		a->lat_sum_us = r->lat_sum_us;
		a->lat_buckets = r->lat_buckets;
	}
}

/**
 * intake_report() - one ReportStatusRequest @body of @len bytes from @peer
 * (its name, for the log) on connection @c, received at @wall_us (realtime
 * microseconds) and @now_ms (monotonic): decoded, admitted, and its results
 * added to @p. @c NULL (the connection is closing): decoded and counted
 * only. The status of a key follows the report received last: each report
 * gets a receive order above every earlier one, @wall_us or later.
 * @res: what became of it, filled whenever 0 is returned.
 *
 * Return: 0 (the report was used or refused: see @res); MSG_E_DECODE,
 * MSG_E_TOO_MANY or -ENOMEM for bad input (the caller closes the
 * connection).
 */
int intake_report(intake_t *in, intake_conn_t *c, const char *peer, const uint8_t *body,
		  size_t len, uint64_t wall_us, uint64_t now_ms, pending_t *p,
		  intake_result_t *res)
{
	return intake_report_to(in, c, peer, body, len, wall_us, now_ms, p, NULL, res);
}

/**
 * intake_report_to() - as intake_report(), a message of an acknowledged
 * agent (agent_id and seq set) going through @ag (agents.h): taken in only
 * if new, into the agent's own map. @ag NULL: every message goes to @p.
 * Without the delta marker, the counts are running totals (cum.h).
 */
int intake_report_to(intake_t *in, intake_conn_t *c, const char *peer, const uint8_t *body,
		     size_t len, uint64_t wall_us, uint64_t now_ms, pending_t *p,
		     rep_agents_t *ag, intake_result_t *res)
{
	lars_ReportStatusRequest req = lars_ReportStatusRequest_init_zero;
	msg_vec_t vec;
	const char *why;

	msg_results_init(&vec, in->max_results);
	msg_vec_bind(&vec, &req.results);
	int rc = msg_decode(lars_ReportStatusRequest_fields, &req, body, len, &why);
	if (rc) {
		log_debug("reporter: bad ReportStatusRequest from %s: %s%s", peer, why,
			  vec.error == MSG_E_TOO_MANY ? " (too many results)" : "");
		int err = vec.error ? vec.error : rc;
		msg_vec_deinit(&vec);
		return err;
	}
	*res = (intake_result_t){ .n_results = vec.n };
	int32_t caller;
	uint32_t ts;
	uint64_t wall_s = wall_us / 1000000;
	if (!c || !intake_caller(c, peer, req.caller, &caller, res) ||
	    !intake_time(in, peer, &req, wall_s, now_ms, &ts, res)) {
		msg_vec_deinit(&vec);
		return 0;
	}
	rep_agent_t *a = NULL;
	if (ag && req.agent_id && req.seq) {
		res->agent_id = req.agent_id;
		res->seq = req.seq;
		switch (agents_admit(ag, req.agent_id, req.seq, caller, now_ms, &a)) {
		case AGENT_COMMITTED:
			res->ack_now = true;
			res->ack_seq = a->committed;
			/* fall through */
		case AGENT_HELD:
			res->duplicate = true;
			msg_vec_deinit(&vec);
			return 0;
		case AGENT_NEW:
			break;
		}
	}
	res->cumulative = !req.delta;
	/* Receive order: wall-clock microseconds, strictly increasing here, so
	 * status rows follow arrival across batches and restarts. */
	uint64_t rx_us = wall_us;
	if (rx_us <= in->last_rx_us)
		rx_us = in->last_rx_us + 1;
	in->last_rx_us = rx_us;
	const lars_HostCallResult *r = vec.v;
	for (size_t i = 0; i < vec.n; i++) {
		report_key_t key = { req.modid, req.cmdid, r[i].ip, r[i].port, caller };
		report_add_t add;
		intake_add(in, &r[i], &key, res->cumulative, &add, res);
		if (a)
			agents_add(ag, a, &key, &add, ts, rx_us, now_ms);
		else
			pending_add_full(p, &key, &add, ts, rx_us, now_ms);
	}
	res->added = true;
	msg_vec_deinit(&vec);
	return 0;
}
