// SPDX-License-Identifier: MIT
// The agent's registrations (agent_svc/core/registry.c) without sockets: a
// stream of steps ([u16 length][u8 clock step][frame] ...) as in
// fuzz-agent. A RegisterRequest (104) or DeregisterRequest (106) is an app's,
// a LeaseResponse (108) is lars-dns's answer (its seq, if 0, is taken as the
// last request sent, so answers match); an empty frame with id 107 stands
// for a lost lars-dns connection, id 102 for a new one. The clock step's
// low 7 bits move the clock (100 ms each), its top bit makes sends to
// lars-dns fail this step; checks started end on the next step, passing
// when the byte after the length is odd.
// Invariants: answers carry a known state and the request's seq, every
// request sent is well formed, at most max registrations are held.
#include <string.h>

#include "fuzz.h"
#include "registry.h"

typedef struct fuzz_env {
	bool fail;
	uint32_t last_seq, last_op;
	size_t last_n;
	reg_check_t pending[8];
	size_t n_pending;
} fuzz_env_t;

static int send_lease(void *user, const lars_LeaseRequest *req)
{
	fuzz_env_t *e = user;
	if (e->fail)
		return -1;
	if (req->op < LARS_LEASE_REGISTER || req->op > LARS_LEASE_DEREGISTER ||
	    req->host_count == 0 || req->host_count > LARS_LEASE_BATCH_MAX ||
	    (req->op != LARS_LEASE_RENEW && req->host_count != 1) || req->seq == 0)
		__builtin_trap();
	for (pb_size_t i = 0; i < req->host_count; i++)
		if (req->host[i].port < 1 || req->host[i].port > 65535 || req->host[i].ip == 0 ||
		    req->host[i].modid < 0 || req->host[i].cmdid < 0)
			__builtin_trap();
	e->last_seq = req->seq;
	e->last_op = req->op;
	e->last_n = req->host_count;
	return 0;
}

static void run_check(void *user, const reg_check_t *c)
{
	fuzz_env_t *e = user;
	if (c->kind != LARS_CHECK_TCP && c->kind != LARS_CHECK_HTTP)
		__builtin_trap();
	if (e->n_pending < 8)
		e->pending[e->n_pending++] = *c;
}

static void app(reg_t *r, int32_t msgid, const uint8_t *body, size_t len, uint64_t now)
{
	lars_RegisterRequest q = lars_RegisterRequest_init_zero;
	if (msg_decode(lars_RegisterRequest_fields, &q, body, len, NULL))
		return;
	lars_RegisterResponse resp;
	reg_request(r, &q, msgid == LARS_ID_DEREGISTER_REQ, now, &resp);
	if (resp.seq != q.seq || resp.state > LARS_REG_UNKNOWN)
		__builtin_trap();
	uint8_t out[512];
	size_t olen;
	if (msg_frame_encode(LARS_ID_REGISTER_RESP, lars_RegisterResponse_fields, &resp, out,
			     sizeof(out), &olen))
		__builtin_trap();
}

static void dns_answer(reg_t *r, fuzz_env_t *e, const uint8_t *body, size_t len, uint64_t now)
{
	lars_LeaseResponse a = lars_LeaseResponse_init_zero;
	if (msg_decode(lars_LeaseResponse_fields, &a, body, len, NULL))
		return;
	if (a.seq == 0) {
		a.seq = e->last_seq;
		a.op = e->last_op;
	}
	reg_lease_answer(r, &a, now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_env_t env = { 0 };
	reg_cfg_t cfg = { .ttl_s = 3, .check_interval_ms = 300, .check_timeout_ms = 100,
			  .check_fall = 2, .check_rise = 2, .drain_ms = 500, .max = 6,
			  .caller = 0x7f000001 };
	reg_ops_t ops = { .send = send_lease, .check = run_check, .user = &env };
	reg_t r;
	reg_init(&r, &cfg, &ops);
	reg_set_link(&r, true, 0);
	frame_idset_t ids;
	frame_idset_clear(&ids);
	frame_idset_add(&ids, LARS_ID_REGISTER_REQ);
	frame_idset_add(&ids, LARS_ID_DEREGISTER_REQ);
	frame_idset_add(&ids, LARS_ID_LEASE_RESP);
	frame_idset_add(&ids, LARS_ID_LEASE_REQ);   /* lars-dns lost */
	frame_idset_add(&ids, LARS_ID_AGENT_HELLO); /* lars-dns back */
	uint64_t now = 0;
	while (size >= 3) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;
		now += (uint64_t)(data[2] & 0x7f) * 100;
		env.fail = data[2] & 0x80;
		bool pass = data[2] & 1;
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		for (size_t i = 0; i < env.n_pending; i++)
			reg_check_done(&r, env.pending[i].id, env.pending[i].gen, pass, "fuzz", now);
		env.n_pending = 0;
		frame_hdr_t hdr;
		const uint8_t *body;
		if (frame_udp_parse(data, len, &ids, &hdr, &body) == FRAME_OK) {
			size_t blen = (size_t)hdr.msglen;
			if (hdr.msgid == LARS_ID_REGISTER_REQ || hdr.msgid == LARS_ID_DEREGISTER_REQ)
				app(&r, hdr.msgid, body, blen, now);
			else if (hdr.msgid == LARS_ID_LEASE_RESP)
				dns_answer(&r, &env, body, blen, now);
			else
				reg_set_link(&r, hdr.msgid == LARS_ID_AGENT_HELLO, now);
		}
		reg_tick(&r, now);
		if (reg_count(&r) > (size_t)cfg.max)
			__builtin_trap();
		data += len;
		size -= len;
	}
	reg_deinit(&r);
	return 0;
}
