// SPDX-License-Identifier: MIT
// lars-agent's request handling without sockets: a stream of steps
// ([u16 length][u8 clock step][datagram] ...) goes through the frame decoder
// and the same agent_wire functions (decode → core → answer) the daemon
// runs. The clock step's low 7 bits move the clock (250 ms each), its top
// bit makes the next sends to lars-dns and lars-reporter fail (a full queue).
// Besides the agent's own messages, a frame with id GetRouteRequest stands
// for a lars-dns (re)connect, ReportStatusRequest for a report flush and
// Unsubscribe for losing lars-dns; a ReportStatusAck is one from lars-reporter
// (and acks this agent's seq it names modulo what was sent), an empty one
// stands for a lars-reporter reconnect. As the daemon's timers do, every step
// ticks the core (and the ack timeout), and reports are flushed soon after a
// state change and every 5 s.
// Invariants are checked after every step.
#include <stdlib.h>
#include <string.h>

#include "agent_core.h"
#include "agent_wire.h"
#include "fuzz.h"
#include "log.h"

typedef struct fuzz_link {
	bool fail; /* sends fail this step */
} fuzz_link_t;

static int send_dns(void *user, int32_t msgid, const lars_GetRouteRequest *req)
{
	const fuzz_link_t *l = user;
	if (msgid != LARS_ID_GET_ROUTE_REQ && msgid != LARS_ID_UNSUBSCRIBE_REQ)
		__builtin_trap();
	return l->fail ? -1 : 0;
}

static int send_report(void *user, const lars_ReportStatusRequest *req, size_t n)
{
	const fuzz_link_t *l = user;
	if (n == 0)
		__builtin_trap(); /* a route goes out only with hosts */
	return l->fail ? -1 : 0;
}

static void check(const acore_t *c, const acore_cfg_t *cfg)
{
	const route_table_t *t = acore_routes(c);
	size_t iter = 0;
	for (u64map_slot_t *s; (s = u64map_next(&t->map, &iter));) {
		const lb_t *lb = &((rt_entry_t *)s->value)->lb;
		if (lb->idle.n + lb->overload.n != lb->hosts.n)
			__builtin_trap();
		for (const lb_host_t *h = lb->idle.head; h; h = h->next)
			if (h->overload)
				__builtin_trap();
		for (const lb_host_t *h = lb->overload.head; h; h = h->next)
			if (!h->overload)
				__builtin_trap();
		/* A key lives in the route table or the keyset, never both. */
		if (ks_peek(acore_keyset(c), lb->modid, lb->cmdid))
			__builtin_trap();
	}
	if (rt_size(t) > cfg->max_routes || ks_size(acore_keyset(c)) > cfg->max_absent)
		__builtin_trap();
	const report_buf_t *rb = acore_report_buf(c);
	if (rb->n_hosts > rb->max_hosts)
		__builtin_trap();
	/* Held messages: within the bound, in seq order, below the next seq. */
	const report_acks_t *ra = acore_report_acks(c);
	if (ra->n_results > ra->max_results || ra->next_send > ra->n)
		__builtin_trap();
	uint64_t prev = 0;
	for (size_t i = 0; i < ra->n; i++) {
		uint64_t seq = ra->v[(ra->head + i) % ra->cap].seq;
		if (seq <= prev || seq >= ra->next_seq)
			__builtin_trap();
		prev = seq;
	}
}

static void report_ack(awire_t *w, const uint8_t *body, size_t len, uint64_t now)
{
	if (!len) {
		acore_reporter_lost(w->core);
		acore_reporter_connected(w->core, now);
		awire_resend_reports(w, now);
		return;
	}
	uint64_t id, seq;
	int r = awire_report_ack(w, body, len, now, &id, &seq);
	if (r == RA_ACK_OTHER_AGENT || r == RA_ACK_BEYOND) {
		const report_acks_t *ra = acore_report_acks(w->core);
		if (acore_reporter_ack(w->core, ra->agent_id, seq % ra->next_seq, now) != RA_ACK_OK)
			__builtin_trap();
	}
}

static void step(awire_t *w, const frame_hdr_t *hdr, const uint8_t *body, uint64_t now)
{
	size_t len = (size_t)hdr->msglen;
	uint8_t out[65536];
	size_t olen;
	switch (hdr->msgid) {
	case LARS_ID_GET_HOST_REQ: {
		lars_GetHostResponse resp;
		if (awire_get_host(w, body, len, now, &resp) == 0 &&
		    (msg_frame_encode(LARS_ID_GET_HOST_RESP, lars_GetHostResponse_fields, &resp,
				      out, sizeof(out), &olen) ||
		     resp.retcode < 0 || resp.retcode > 3 ||
		     resp.has_host != (resp.retcode == LARS_RET_SUCC)))
			__builtin_trap();
		break;
	}
	case LARS_ID_REPORT_REQ:
		awire_report(w, body, len, now);
		break;
	case LARS_ID_REPORT_BATCH_REQ: {
		uint64_t calls;
		awire_report_batch(w, body, len, now, &calls);
		break;
	}
	case LARS_ID_API_GET_ROUTE_REQ: {
		awire_route_t ans;
		if (awire_get_route(w, body, len, now, &ans) == 0) {
			/* The answer always fits one datagram. */
			if (msg_frame_encode(LARS_ID_API_GET_ROUTE_RESP, lars_GetRouteResponse_fields,
					     &ans.resp, out, MSG_UDP_DATAGRAM_MAX, &olen))
				__builtin_trap();
			awire_route_deinit(&ans);
		}
		break;
	}
	case LARS_ID_GET_ROUTE_RESP: {
		bool truncated;
		awire_route_answer(w, body, len, now, &truncated);
		break;
	}
	case LARS_ID_GET_ROUTE_REQ:
		acore_dns_connected(w->core, now);
		/* The loop's re-pull, a slice per turn. */
		while (acore_repull_step(w->core, now, 4))
			awire_drain_dns(w, ACORE_OK);
		awire_drain_dns(w, ACORE_OK);
		break;
	case LARS_ID_UNSUBSCRIBE_REQ:
		acore_set_link(w->core, ACORE_LINK_DOWN);
		break;
	case LARS_ID_REPORT_STATUS_REQ:
		awire_flush_reports(w, (uint32_t)(now / 1000), now);
		break;
	case LARS_ID_REPORT_STATUS_ACK:
		report_ack(w, body, len, now);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	acore_cfg_t cfg = { .max_routes = 8, .max_absent = 8, .pull_rate = 4, .pull_burst = 4,
			    .report_max_hosts = 64, .agent_id = 0x5eed, .ack_timeout_ms = 5000 };
	lb_cfg_defaults(&cfg.lb);
	cfg.lb.probe_num = 3;
	cfg.lb.contin_err_limit = 4;
	cfg.lb.contin_succ_limit = 4;
	log_set_level(LOG_LVL_ERROR); /* bad answers from "lars-dns" are the point */
	uint64_t now = 0, flushed = 0;
	acore_t *c;
	if (acore_new(&cfg, now, &c))
		__builtin_trap();
	fuzz_link_t link = { false };
	awire_t w = { .core = c, .send_dns = send_dns, .send_report = send_report,
		      .user = &link, .max_hosts = 64, .caller = 1 };
	frame_idset_t ids;
	frame_idset_clear(&ids);
	frame_idset_add(&ids, LARS_ID_GET_HOST_REQ);
	frame_idset_add(&ids, LARS_ID_REPORT_REQ);
	frame_idset_add(&ids, LARS_ID_REPORT_BATCH_REQ);
	frame_idset_add(&ids, LARS_ID_API_GET_ROUTE_REQ);
	frame_idset_add(&ids, LARS_ID_GET_ROUTE_RESP); /* as from lars-dns */
	frame_idset_add(&ids, LARS_ID_GET_ROUTE_REQ);     /* lars-dns (re)connects */
	frame_idset_add(&ids, LARS_ID_UNSUBSCRIBE_REQ);   /* lars-dns lost */
	frame_idset_add(&ids, LARS_ID_REPORT_STATUS_REQ); /* report flush */
	frame_idset_add(&ids, LARS_ID_REPORT_STATUS_ACK); /* from lars-reporter */
	acore_dns_connected(c, now);
	acore_reporter_connected(c, now);

	while (size >= 3) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;
		now += (uint64_t)(data[2] & 0x7f) * 250; /* up to ~32 s per step */
		link.fail = data[2] & 0x80;
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		frame_hdr_t hdr;
		const uint8_t *body;
		if (frame_udp_parse(data, len, &ids, &hdr, &body) == FRAME_OK)
			step(&w, &hdr, body, now);
		acore_tick(c, now);
		if (acore_reporter_tick(c, now) == RA_TICK_RESEND)
			awire_resend_reports(&w, now);
		if (acore_take_flush_soon(c) || now - flushed >= 5000) {
			awire_flush_reports(&w, (uint32_t)(now / 1000), now);
			flushed = now;
		}
		check(c, &cfg);
		data += len;
		size -= len;
	}
	acore_free(c);
	return 0;
}
