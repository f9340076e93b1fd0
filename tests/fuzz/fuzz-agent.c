// SPDX-License-Identifier: MIT
// The agent's request handling without sockets: a stream of datagrams
// ([u16 length][datagram] ...) decoded and applied to the route table, the
// balancers and the report buffer as lars-agent does, with a clock that the
// input moves. Invariants are checked after every step.
#include <stdlib.h>
#include <string.h>

#include "balancer.h"
#include "fuzz.h"
#include "log.h"
#include "report_buf.h"
#include "route_table.h"

static void check(const route_table_t *t)
{
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
	}
	if (t->map.n > t->max)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static lb_cfg_t cfg;
	lb_cfg_defaults(&cfg);
	cfg.probe_num = 3;
	cfg.contin_err_limit = 4;
	cfg.contin_succ_limit = 4;
	route_table_t t;
	rt_init(&t, 8, 5000, &cfg);
	report_buf_t rb;
	rb_init(&rb, 64);
	frame_idset_t ids;
	frame_idset_clear(&ids);
	frame_idset_add(&ids, LARS_ID_GET_HOST_REQ);
	frame_idset_add(&ids, LARS_ID_REPORT_REQ);
	frame_idset_add(&ids, LARS_ID_API_GET_ROUTE_REQ);
	frame_idset_add(&ids, LARS_ID_GET_ROUTE_RESP); /* as from lars-dns */
	uint64_t now = 0;

	while (size >= 3) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;
		now += (uint64_t)data[2] * 250; /* up to ~64 s per step */
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		frame_hdr_t hdr;
		const uint8_t *body;
		if (frame_udp_parse(data, len, &ids, &hdr, &body) == FRAME_OK) {
			size_t blen = (size_t)hdr.msglen;
			if (hdr.msgid == LARS_ID_GET_HOST_REQ || hdr.msgid == LARS_ID_API_GET_ROUTE_REQ) {
				lars_GetHostRequest q = lars_GetHostRequest_init_zero;
				lars_GetRouteRequest g = lars_GetRouteRequest_init_zero;
				int32_t modid, cmdid;
				int r = hdr.msgid == LARS_ID_GET_HOST_REQ
						? msg_decode(lars_GetHostRequest_fields, &q, body, blen, NULL)
						: msg_decode(lars_GetRouteRequest_fields, &g, body, blen, NULL);
				modid = hdr.msgid == LARS_ID_GET_HOST_REQ ? q.modid : g.modid;
				cmdid = hdr.msgid == LARS_ID_GET_HOST_REQ ? q.cmdid : g.cmdid;
				if (r == 0) {
					rt_entry_t *e = rt_find(&t, modid, cmdid, now);
					if (!e)
						e = rt_create(&t, modid, cmdid, now);
					if (e) {
						if (lb_needs_pull(&e->lb, now))
							lb_pulling(&e->lb, now);
						lars_HostInfo h;
						lb_get_host(&e->lb, now, &h);
					}
				}
			} else if (hdr.msgid == LARS_ID_REPORT_REQ) {
				lars_ReportRequest q = lars_ReportRequest_init_zero;
				if (msg_decode(lars_ReportRequest_fields, &q, body, blen, NULL) == 0) {
					rt_entry_t *e = rt_peek(&t, q.modid, q.cmdid);
					if (e && lb_report(&e->lb, q.host.ip, q.host.port, q.retcode, now) >= 0)
						rb_add(&rb, q.modid, q.cmdid, q.host.ip, q.host.port,
						       q.retcode == 0, q.retcode != 0);
				}
			} else if (hdr.msgid == LARS_ID_GET_ROUTE_RESP) {
				lars_GetRouteResponse q = lars_GetRouteResponse_init_zero;
				msg_vec_t vec;
				msg_hosts_init(&vec, 64);
				msg_vec_bind(&vec, &q.host);
				if (msg_decode(lars_GetRouteResponse_fields, &q, body, blen, NULL) == 0) {
					rt_entry_t *e = rt_peek(&t, q.modid, q.cmdid);
					if (e)
						lb_update(&e->lb, vec.v, vec.n, now);
				}
				msg_vec_deinit(&vec);
			}
		}
		rt_tick(&t, now, 3, NULL, NULL);
		check(&t);
		if (rb.n_hosts > rb.max_hosts)
			__builtin_trap();
		data += len;
		size -= len;
	}
	size_t n;
	rb_route_t **v = rb_take_all(&rb, &n);
	for (size_t i = 0; i < n; i++)
		rb_route_free(v[i]);
	free(v);
	rb_deinit(&rb);
	rt_deinit(&t);
	return 0;
}
