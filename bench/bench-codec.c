// SPDX-License-Identifier: MIT
// bench-codec: cost of the wire path the agent runs per request (UDP frame
// check + decode GetHostRequest + encode GetHostResponse frame), and of a
// 1000-host GetRouteResponse through the TCP decoder, each printed as a
// ratio against copying the same bytes measured in the same run.
//
// Usage: bench-codec [SECONDS_PER_CASE]   (default 1, at most 30)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frame.h"
#include "msg.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uint32_t sink;

typedef void (*op_fn)(void *arg);

/* Runs @op in batches until @seconds passed (bounded by count as well). */
static double ops_per_s(op_fn op, void *arg, double seconds)
{
	double start = now_s(), t;
	uint64_t n = 0;
	do {
		for (int i = 0; i < 1000; i++)
			op(arg);
		n += 1000;
		t = now_s() - start;
	} while (t < seconds && n < 2000000000ull);
	return (double)n / t;
}

typedef struct small_case {
	uint8_t req[64];
	size_t req_len;
	uint8_t out[128];
	frame_idset_t ids;
} small_case_t;

static void op_agent_path(void *arg)
{
	small_case_t *c = arg;
	frame_hdr_t hdr;
	const uint8_t *body;
	if (frame_udp_parse(c->req, c->req_len, &c->ids, &hdr, &body))
		abort();
	lars_GetHostRequest req = lars_GetHostRequest_init_zero;
	if (msg_decode(lars_GetHostRequest_fields, &req, body, (size_t)hdr.msglen, NULL))
		abort();
	lars_GetHostResponse resp = lars_GetHostResponse_init_zero;
	resp.seq = req.seq;
	resp.modid = req.modid;
	resp.cmdid = req.cmdid;
	resp.has_host = true;
	resp.host.ip = 2130706433;
	resp.host.port = 9001;
	size_t len;
	if (msg_frame_encode(LARS_ID_GET_HOST_RESP, lars_GetHostResponse_fields, &resp,
			     c->out, sizeof(c->out), &len))
		abort();
	sink += (uint32_t)len;
}

static void op_copy_small(void *arg)
{
	small_case_t *c = arg;
	memcpy(c->out, c->req, c->req_len);
	memcpy(c->out + 64, c->req, c->req_len + 8); /* the reply is 8 bytes longer */
	sink += c->out[3];
}

typedef struct big_case {
	uint8_t *frame;
	size_t len;
	uint8_t *copy;
	frame_idset_t ids;
} big_case_t;

static void op_route_decode(void *arg)
{
	big_case_t *c = arg;
	frame_buf_t fb;
	frame_buf_init(&fb, FRAME_TCP_MAX_DEFAULT, &c->ids);
	uint8_t *dst;
	size_t room, off = 0;
	while (off < c->len) {
		if (frame_buf_space(&fb, &dst, &room))
			abort();
		size_t k = c->len - off < room ? c->len - off : room;
		memcpy(dst, c->frame + off, k);
		frame_buf_commit(&fb, k);
		off += k;
	}
	frame_hdr_t hdr;
	const uint8_t *body;
	if (frame_buf_next(&fb, &hdr, &body))
		abort();
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	msg_vec_t vec;
	msg_hosts_init(&vec, 100000);
	msg_vec_bind(&vec, &resp.host);
	if (msg_decode(lars_GetRouteResponse_fields, &resp, body, (size_t)hdr.msglen, NULL))
		abort();
	sink += (uint32_t)vec.n;
	msg_vec_deinit(&vec);
	frame_buf_deinit(&fb);
}

static void op_copy_big(void *arg)
{
	big_case_t *c = arg;
	memcpy(c->copy, c->frame, c->len);
	sink += c->copy[c->len - 1];
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	if (secs <= 0 || secs > 30)
		secs = 1.0;

	small_case_t sc;
	frame_idset_clear(&sc.ids);
	frame_idset_add(&sc.ids, LARS_ID_GET_HOST_REQ);
	lars_GetHostRequest req = { .seq = 6634, .modid = 1, .cmdid = 1 };
	if (msg_frame_encode(LARS_ID_GET_HOST_REQ, lars_GetHostRequest_fields, &req,
			     sc.req, sizeof(sc.req), &sc.req_len))
		return 1;

	enum { HOSTS = 1000 };
	static lars_HostInfo hosts[HOSTS];
	for (int i = 0; i < HOSTS; i++) {
		hosts[i].ip = (int32_t)(0x0a000000u + (unsigned)i);
		hosts[i].port = 8000 + i;
	}
	lars_GetRouteResponse route = lars_GetRouteResponse_init_zero;
	route.modid = route.cmdid = 1;
	msg_array_t arr = MSG_HOSTS(hosts, HOSTS);
	msg_array_bind(&arr, &route.host);
	big_case_t bc;
	frame_idset_clear(&bc.ids);
	frame_idset_add(&bc.ids, LARS_ID_GET_ROUTE_RESP);
	if (msg_frame_alloc(LARS_ID_GET_ROUTE_RESP, lars_GetRouteResponse_fields, &route,
			    FRAME_TCP_MAX_DEFAULT, &bc.frame, &bc.len))
		return 1;
	bc.copy = malloc(bc.len);

	double agent = ops_per_s(op_agent_path, &sc, secs);
	double copy_s = ops_per_s(op_copy_small, &sc, secs);
	double routes = ops_per_s(op_route_decode, &bc, secs);
	double copy_b = ops_per_s(op_copy_big, &bc, secs);

	printf("case                               ops/s        reference ops/s   ratio\n");
	printf("get_host parse+decode+encode   %12.0f   %12.0f (copy)  %6.3f\n",
	       agent, copy_s, agent / copy_s);
	printf("route 1000 hosts TCP decode    %12.0f   %12.0f (copy)  %6.3f\n",
	       routes, copy_b, routes / copy_b);
	printf("(route frame %zu bytes; %.0f hosts/s decoded)\n", bc.len, routes * HOSTS);
	free(bc.frame);
	free(bc.copy);
	return 0;
}
