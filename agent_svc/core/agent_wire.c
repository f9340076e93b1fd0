// SPDX-License-Identifier: MIT
// The agent's messages around its core: decode, decide, fill the answer.
#include "agent_wire.h"

#include <stdlib.h>

#include "log.h"
#include "xalloc.h"

/**
 * awire_drain_dns() - send what the core queued for lars-dns, in order;
 * what cannot be sent is told back to the core.
 * @rc: the answer of the request that queued them (ACORE_OK after a timer).
 * Return: @rc, or what the core answers instead (ACORE_E_BUSY: the
 * request's own pull could not be sent).
 */
int awire_drain_dns(awire_t *w, int rc)
{
	acore_dns_msg_t m;
	while (acore_next_dns(w->core, &m)) {
		lars_GetRouteRequest req = { .modid = m.modid, .cmdid = m.cmdid };
		int32_t id = m.kind == ACORE_PULL ? LARS_ID_GET_ROUTE_REQ : LARS_ID_UNSUBSCRIBE_REQ;
		if (w->send_dns(w->user, id, &req)) {
			int r = acore_dns_unsent(w->core, &m);
			if (r)
				rc = r;
		}
	}
	return rc;
}

/**
 * awire_get_host() - a GetHostRequest body in, its answer out.
 * @resp: the GetHostResponse to send back (filled on 0).
 * Return: 0, or MSG_E_DECODE (bad input: dropped, nothing answered).
 */
int awire_get_host(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms,
		   lars_GetHostResponse *resp)
{
	lars_GetHostRequest req = lars_GetHostRequest_init_zero;
	int r = msg_decode(lars_GetHostRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	*resp = (lars_GetHostResponse)lars_GetHostResponse_init_zero;
	resp->seq = req.seq;
	resp->modid = req.modid;
	resp->cmdid = req.cmdid;
	int rc = acore_get_host(w->core, req.modid, req.cmdid, now_ms, &resp->host);
	rc = awire_drain_dns(w, rc);
	resp->retcode = acore_retcode(rc);
	resp->has_host = rc == ACORE_OK;
	if (!resp->has_host)
		resp->host = (lars_HostInfo)lars_HostInfo_init_zero;
	return 0;
}

/**
 * awire_report() - a ReportRequest body (an app's call result) in.
 * Return: 0, or MSG_E_DECODE.
 */
int awire_report(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms)
{
	lars_ReportRequest req = lars_ReportRequest_init_zero;
	int r = msg_decode(lars_ReportRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	acore_report_call(w->core, req.modid, req.cmdid, req.host.ip, req.host.port,
			  req.retcode == LARS_RET_SUCC, req.latency_us, now_ms);
	return 0;
}

int awire_report_batch(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms,
		       uint64_t *callsp)
{
	lars_ReportBatchRequest req = lars_ReportBatchRequest_init_zero;
	int r = msg_decode(lars_ReportBatchRequest_fields, &req, body, len, NULL);
	*callsp = 0;
	if (r)
		return r;
	for (pb_size_t i = 0; i < req.entry_count; i++) {
		acore_report_batch(w->core, &req.entry[i], now_ms);
		*callsp += (uint64_t)req.entry[i].succ + req.entry[i].err;
	}
	return 0;
}

/**
 * awire_get_route() - an API GetRouteRequest body in; the answer holds as
 * many hosts as one datagram holds by their encoded sizes, and a cut list
 * says how many there are in host_total.
 * @out: the answer (on 0); awire_route_deinit() it after sending.
 * Return: 0, or MSG_E_DECODE.
 */
int awire_get_route(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms,
		    awire_route_t *out)
{
	lars_GetRouteRequest req = lars_GetRouteRequest_init_zero;
	int r = msg_decode(lars_GetRouteRequest_fields, &req, body, len, NULL);
	if (r)
		return r;
	lb_iter_t it;
	acore_get_route(w->core, req.modid, req.cmdid, now_ms, &it);
	awire_drain_dns(w, ACORE_OK); /* the list is empty whatever the reason */
	size_t n = it.n;
	msg_route_fit_t fit;
	msg_route_fit_init(&fit, req.modid, req.cmdid, n);
	out->hosts = xreallocarray(NULL, n ? n : 1, sizeof(*out->hosts));
	size_t k = 0;
	for (const lb_host_t *h; (h = lb_iter_next(&it));) {
		if (h->drain)
			fit.used += 2; /* drain = true: a tag and a byte more (issue 19.3) */
		if (!msg_route_fit_add(&fit, h->ip, h->port))
			break;
		out->hosts[k++] = (lars_HostInfo){ .ip = h->ip, .port = h->port, .drain = h->drain };
	}
	k = msg_route_fit_count(&fit, &out->cut);
	out->resp = (lars_GetRouteResponse)lars_GetRouteResponse_init_zero;
	out->resp.modid = req.modid;
	out->resp.cmdid = req.cmdid;
	if (out->cut)
		out->resp.host_total = n > INT32_MAX ? INT32_MAX : (int32_t)n;
	out->arr = MSG_HOSTS(out->hosts, k);
	msg_array_bind(&out->arr, &out->resp.host);
	return 0;
}

/** awire_route_deinit() - free what awire_get_route() filled in. */
void awire_route_deinit(awire_route_t *r)
{
	free(r->hosts);
	r->hosts = NULL;
}

/**
 * awire_route_answer() - a GetRouteResponse body from lars-dns (an answer or
 * a push) into the core.
 * @truncatedp: set to whether the route had more than max_hosts hosts (the
 *              first max_hosts are used).
 * Return: 0, or a decode failure (MSG_E_DECODE, -ENOMEM): bad input from
 * lars-dns, which the transport drops.
 */
int awire_route_answer(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms,
		       bool *truncatedp)
{
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	msg_vec_t vec;
	const char *why;
	*truncatedp = false;
	msg_hosts_init(&vec, w->max_hosts);
	msg_vec_bind(&vec, &resp.host);
	int r = msg_decode(lars_GetRouteResponse_fields, &resp, body, len, &why);
	if (r && vec.error == MSG_E_TOO_MANY) {
		/* modid and cmdid precede the hosts on the wire: the route is known.
		 * Serving its first max_hosts beats dropping lars-dns (which would
		 * send the same answer again after the reconnect). */
		*truncatedp = true;
		log_warn("agent: route %d/%d has more than [agent] max_hosts = %zu hosts; "
			 "using the first %zu", resp.modid, resp.cmdid, w->max_hosts, vec.n);
		r = 0;
	}
	if (r) {
		int err = vec.error ? vec.error : r;
		log_warn("agent: bad GetRouteResponse from lars-dns: %s", why);
		msg_vec_deinit(&vec);
		return err;
	}
	acore_apply_route_policy(w->core, resp.modid, resp.cmdid, vec.v, vec.n,
				 resp.has_policy ? &resp.policy : NULL, now_ms);
	/* Our lars-dns sends the version after our AgentHello: acknowledge
	 * what was applied (a route not held, for want of room, is not). */
	if (resp.version > 0 &&
	    acore_set_route_version(w->core, resp.modid, resp.cmdid, resp.version) &&
	    w->send_ack) {
		lars_RouteAck ack = { .modid = resp.modid, .cmdid = resp.cmdid,
				      .version = resp.version };
		(void)w->send_ack(w->user, &ack); /* a full queue: lars-dns sees it pending */
	}
	awire_drain_dns(w, ACORE_OK);
	msg_vec_deinit(&vec);
	return 0;
}

/* One report of the core's as its ReportStatusRequest, sent. Return: 0 if queued. */
static int send_one(awire_t *w, const acore_report_t *rep)
{
	lars_ReportStatusRequest req = lars_ReportStatusRequest_init_zero;
	req.modid = rep->modid;
	req.cmdid = rep->cmdid;
	req.caller = w->caller;
	req.ts = rep->ts;
	req.agent_id = rep->agent_id;
	req.seq = rep->seq;
	req.delta = rep->delta;
	msg_array_t arr = MSG_RESULTS(rep->results, rep->n);
	msg_array_bind(&arr, &req.results);
	return w->send_report(w->user, &req, rep->n);
}

/**
 * awire_resend_reports() - the held (unacknowledged) messages due on this
 * connection, oldest first, exactly as first sent.
 * Return: true when all went out (new counts may follow), false if one
 * could not be sent (it and the rest go at the next try).
 */
bool awire_resend_reports(awire_t *w, uint64_t now_ms)
{
	for (acore_report_t rep; acore_next_resend(w->core, &rep);) {
		if (send_one(w, &rep))
			return false;
		acore_resent(w->core, now_ms);
	}
	return true;
}

/**
 * awire_flush_reports() - the held messages due first (awire_resend_reports());
 * then every route's buffered counts out as one ReportStatusRequest each,
 * stamped @ts, with the next seq; from the first that cannot be sent on, the
 * counts stay buffered (coalesced) until the next try.
 */
void awire_flush_reports(awire_t *w, uint32_t ts, uint64_t now_ms)
{
	if (!awire_resend_reports(w, now_ms))
		return;
	acore_take_reports(w->core, ts, now_ms);
	for (acore_report_t rep; acore_next_report(w->core, &rep);) {
		if (send_one(w, &rep)) {
			acore_reports_unsent(w->core);
			break;
		}
	}
}

/**
 * awire_report_ack() - a ReportStatusAck body from lars-reporter into the core.
 * @agent_idp, @seqp: set to what it said (on a decoded body).
 * Return: RA_ACK_OK, RA_ACK_OTHER_AGENT, RA_ACK_BEYOND (ignored), or
 * MSG_E_DECODE (bad input from lars-reporter, which the transport drops).
 */
int awire_report_ack(awire_t *w, const uint8_t *body, size_t len, uint64_t now_ms,
		     uint64_t *agent_idp, uint64_t *seqp)
{
	lars_ReportStatusAck ack = lars_ReportStatusAck_init_zero;
	int r = msg_decode(lars_ReportStatusAck_fields, &ack, body, len, NULL);
	if (r)
		return r;
	*agent_idp = ack.agent_id;
	*seqp = ack.seq;
	return acore_reporter_ack(w->core, ack.agent_id, ack.seq, now_ms);
}
