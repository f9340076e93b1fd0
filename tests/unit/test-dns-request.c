// SPDX-License-Identifier: MIT
// lars-dns's request core: GetRouteRequest answers from the snapshot and
// subscribes, UnsubscribeRequest forgets, bad bodies subscribe nothing; the
// subscription table drops a connection's least recently asked route at
// max_subscriptions and lets a closing connection go with all its routes;
// its frames are protoc's bytes, with and without traffic control.
#include "test.h"

#include <string.h>

#include "frame.h"
#include "msg.h"
#include "request.h"
#include "snapshot.h"
#include "subs.h"

static snapshot_t *snap(void)
{
	snap_builder_t b;
	snap_builder_init(&b);
	snap_builder_add(&b, 1, 1, 0x7f000001, 9000);
	snap_builder_add(&b, 1, 1, 0x7f000002, 9001);
	snap_builder_add(&b, 2, 5, 0x0a000001, 80);
	return snapshot_build(&b, 7);
}

/* The body of a GetRouteRequest / UnsubscribeRequest for (modid, cmdid). */
static size_t key_body(int32_t modid, int32_t cmdid, uint8_t *buf, size_t cap)
{
	lars_GetRouteRequest q = lars_GetRouteRequest_init_zero;
	q.modid = modid;
	q.cmdid = cmdid;
	size_t len;
	assert_int_equal(msg_frame_encode(LARS_ID_GET_ROUTE_REQ, lars_GetRouteRequest_fields,
					  &q, buf, cap, &len), 0);
	memmove(buf, buf + FRAME_HDR_LEN, len - FRAME_HDR_LEN);
	return len - FRAME_HDR_LEN;
}

/* Decode an answer frame; *np hosts into @hosts. */
static void decode_answer(const request_out_t *o, int32_t modid, int32_t cmdid,
			  lars_HostInfo *hosts, size_t *np)
{
	assert_non_null(o->frame);
	assert_true(o->frame->len >= FRAME_HDR_LEN);
	frame_hdr_t h = frame_hdr_read(o->frame->data);
	assert_int_equal(h.msgid, LARS_ID_GET_ROUTE_RESP);
	assert_int_equal(h.msglen, o->frame->len - FRAME_HDR_LEN);
	lars_GetRouteResponse resp = lars_GetRouteResponse_init_zero;
	msg_vec_t vec;
	msg_hosts_init(&vec, 16);
	msg_vec_bind(&vec, &resp.host);
	assert_int_equal(msg_decode(lars_GetRouteResponse_fields, &resp,
				    o->frame->data + FRAME_HDR_LEN, o->frame->len - FRAME_HDR_LEN,
				    NULL), 0);
	assert_int_equal(resp.modid, modid);
	assert_int_equal(resp.cmdid, cmdid);
	*np = vec.n;
	memcpy(hosts, vec.v, vec.n * sizeof(*hosts));
	msg_vec_deinit(&vec);
}

static void get(subs_t *s, subs_peer_t *p, snapshot_t *sn, int32_t modid,
		int32_t cmdid, request_out_t *o)
{
	uint8_t body[64];
	size_t len = key_body(modid, cmdid, body, sizeof(body));
	assert_int_equal(request_get_route(s, p, sn, body, len, o), 0);
	assert_true(o->decoded);
	assert_int_equal(o->modid, modid);
	assert_int_equal(o->cmdid, cmdid);
}

static void test_get_route_answers_and_subscribes(void **state)
{
	snapshot_t *sn = snap();
	subs_t s;
	subs_init(&s, 100);
	int conn;
	subs_peer_t p;
	subs_peer_init(&p, &conn);

	request_out_t o;
	get(&s, &p, sn, 1, 1, &o);
	assert_int_equal(o.subs, SUBS_ADDED);
	lars_HostInfo h[16];
	size_t n;
	decode_answer(&o, 1, 1, h, &n);
	assert_int_equal(n, 2);
	assert_int_equal(h[0].ip, 0x7f000001);
	assert_int_equal(h[0].port, 9000);
	assert_int_equal(h[1].ip, 0x7f000002);
	assert_int_equal(h[1].port, 9001);
	/* The very bytes a push sends: encoded once, shared. */
	sbuf_t *push;
	assert_int_equal(request_route_frame(sn, 1, 1, &push), 0);
	assert_ptr_equal(push, o.frame);
	assert_int_equal(push->refs, 3); /* the snapshot's, the answer's, ours */
	sbuf_unref(push);
	sbuf_unref(o.frame);
	assert_true(subs_has(&p, 1, 1));
	assert_int_equal(s.n, 1);

	/* Asked again: answered, already subscribed. */
	get(&s, &p, sn, 1, 1, &o);
	assert_int_equal(o.subs, 0);
	sbuf_unref(o.frame);
	assert_int_equal(s.n, 1);

	/* An unknown route: no hosts, subscribed all the same (it may appear). */
	get(&s, &p, sn, 3, 3, &o);
	assert_int_equal(o.subs, SUBS_ADDED);
	decode_answer(&o, 3, 3, h, &n);
	assert_int_equal(n, 0);
	sbuf_unref(o.frame);
	assert_int_equal(subs_count(&s, 3, 3), 1);

	/* No snapshot at all answers the same way. */
	get(&s, &p, NULL, 2, 5, &o);
	decode_answer(&o, 2, 5, h, &n);
	assert_int_equal(n, 0);
	sbuf_unref(o.frame);

	assert_int_equal(subs_peer_deinit(&s, &p), 3);
	assert_int_equal(s.n, 0);
	assert_int_equal(subs_count(&s, 1, 1), 0);
	subs_deinit(&s);
	snapshot_free(sn);
}

static void test_bad_body(void **state)
{
	snapshot_t *sn = snap();
	subs_t s;
	subs_init(&s, 100);
	subs_peer_t p;
	subs_peer_init(&p, NULL);
	static const uint8_t junk[] = { 0x08, 0xff, 0xff }; /* truncated varint */
	request_out_t o;
	assert_int_equal(request_get_route(&s, &p, sn, junk, sizeof(junk), &o), MSG_E_DECODE);
	assert_false(o.decoded);
	assert_non_null(o.why);
	assert_null(o.frame);
	assert_int_equal(o.subs, 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(request_unsubscribe(&s, &p, junk, sizeof(junk), &o), MSG_E_DECODE);
	assert_false(o.decoded);
	assert_false(o.unsubscribed);

	/* An empty body is a valid all-zero request: route 0/0. */
	assert_int_equal(request_get_route(&s, &p, sn, NULL, 0, &o), 0);
	assert_true(o.decoded);
	assert_int_equal(o.modid, 0);
	sbuf_unref(o.frame);
	assert_true(subs_has(&p, 0, 0));
	assert_int_equal(subs_peer_deinit(&s, &p), 1);
	subs_deinit(&s);
	snapshot_free(sn);
}

static void test_unsubscribe(void **state)
{
	snapshot_t *sn = snap();
	subs_t s;
	subs_init(&s, 100);
	subs_peer_t p;
	subs_peer_init(&p, NULL);
	request_out_t o;
	get(&s, &p, sn, 1, 1, &o);
	sbuf_unref(o.frame);
	get(&s, &p, sn, 2, 5, &o);
	sbuf_unref(o.frame);

	uint8_t body[64];
	size_t len = key_body(1, 1, body, sizeof(body));
	assert_int_equal(request_unsubscribe(&s, &p, body, len, &o), 0);
	assert_true(o.decoded);
	assert_true(o.unsubscribed);
	assert_null(o.frame); /* no answer */
	assert_false(subs_has(&p, 1, 1));
	assert_int_equal(subs_count(&s, 1, 1), 0);
	assert_int_equal(s.n, 1);
	/* Not subscribed (any more): nothing happens. */
	assert_int_equal(request_unsubscribe(&s, &p, body, len, &o), 0);
	assert_false(o.unsubscribed);
	assert_int_equal(s.n, 1);
	assert_int_equal(subs_peer_deinit(&s, &p), 1);
	subs_deinit(&s);
	snapshot_free(sn);
}

/* At max_subscriptions the least recently *asked* route goes. */
static void test_lru_drop(void **state)
{
	snapshot_t *sn = snap();
	subs_t s;
	subs_init(&s, 3);
	subs_peer_t p, q;
	subs_peer_init(&p, NULL);
	subs_peer_init(&q, NULL);
	request_out_t o;
	for (int32_t c = 1; c <= 3; c++) {
		get(&s, &p, sn, 9, c, &o);
		assert_int_equal(o.subs, SUBS_ADDED);
		sbuf_unref(o.frame);
	}
	get(&s, &q, sn, 9, 2, &o); /* another connection, same route */
	sbuf_unref(o.frame);
	get(&s, &p, sn, 9, 1, &o); /* asked again: now the most recent */
	assert_int_equal(o.subs, 0);
	sbuf_unref(o.frame);

	get(&s, &p, sn, 9, 4, &o);
	assert_int_equal(o.subs, SUBS_ADDED | SUBS_DROPPED | SUBS_FIRST_DROP);
	sbuf_unref(o.frame);
	assert_false(subs_has(&p, 9, 2)); /* the least recently asked */
	assert_true(subs_has(&p, 9, 1));
	assert_true(subs_has(&p, 9, 3));
	assert_true(subs_has(&p, 9, 4));
	assert_int_equal(subs_peer_count(&p), 3);
	/* The other connection keeps its subscription to 9/2. */
	assert_int_equal(subs_count(&s, 9, 2), 1);
	assert_true(subs_has(&q, 9, 2));

	get(&s, &p, sn, 9, 5, &o); /* warned once per connection */
	assert_int_equal(o.subs, SUBS_ADDED | SUBS_DROPPED);
	sbuf_unref(o.frame);
	assert_false(subs_has(&p, 9, 3));
	assert_int_equal(s.n, 4);
	assert_int_equal(subs_peer_deinit(&s, &p), 3);
	assert_int_equal(subs_peer_deinit(&s, &q), 1);
	assert_int_equal(s.n, 0);
	subs_deinit(&s);
	snapshot_free(sn);
}

/* A push goes to every subscriber of the key; a closing one leaves every list. */
static void test_collect_and_close(void **state)
{
	snapshot_t *sn = snap();
	subs_t s;
	subs_init(&s, 100);
	int conns[5];
	subs_peer_t p[5];
	request_out_t o;
	for (int i = 0; i < 5; i++) {
		subs_peer_init(&p[i], &conns[i]);
		get(&s, &p[i], sn, 1, 1, &o);
		sbuf_unref(o.frame);
		if (i % 2 == 0) {
			get(&s, &p[i], sn, 2, 5, &o);
			sbuf_unref(o.frame);
		}
	}
	assert_int_equal(subs_count(&s, 1, 1), 5);
	assert_int_equal(subs_count(&s, 2, 5), 3);
	void *to[8];
	assert_int_equal(subs_collect(&s, 1, 1, to, 8), 5);
	for (int i = 0; i < 5; i++) {
		bool found = false;
		for (int j = 0; j < 5; j++)
			found |= to[j] == &conns[i];
		assert_true(found);
	}
	assert_int_equal(subs_collect(&s, 1, 1, to, 2), 2); /* capped */
	assert_int_equal(subs_collect(&s, 7, 7, to, 8), 0);

	/* The middle one of the 2/5 list closes, then the first of 1/1. */
	assert_int_equal(subs_peer_deinit(&s, &p[2]), 2);
	assert_int_equal(subs_count(&s, 1, 1), 4);
	assert_int_equal(subs_count(&s, 2, 5), 2);
	assert_int_equal(subs_collect(&s, 2, 5, to, 8), 2);
	assert_true((to[0] == &conns[0] && to[1] == &conns[4]) ||
		    (to[0] == &conns[4] && to[1] == &conns[0]));
	assert_int_equal(subs_peer_deinit(&s, &p[0]), 2);
	assert_int_equal(subs_collect(&s, 2, 5, to, 8), 1);
	assert_ptr_equal(to[0], &conns[4]);
	assert_int_equal(s.n, 4);
	for (int i = 1; i < 5; i += 2)
		assert_int_equal(subs_peer_deinit(&s, &p[i]), 1);
	assert_int_equal(subs_peer_deinit(&s, &p[4]), 2);
	assert_int_equal(s.n, 0);
	assert_int_equal(subs_count(&s, 1, 1), 0);
	subs_deinit(&s);
	snapshot_free(sn);
}

/* @frame is the header and then exactly protoc's bytes of golden case @name. */
static void assert_golden_frame(const sbuf_t *frame, const char *name)
{
	char path[1024];
	size_t len;
	snprintf(path, sizeof(path), "%s/%s.bin", TEST_GOLDEN_DIR, name);
	uint8_t *bin = test_read_file(path, &len);
	assert_int_equal(frame->len, FRAME_HDR_LEN + len);
	if (memcmp(frame->data + FRAME_HDR_LEN, bin, len))
		fail_msg("lars-dns's frame differs from protoc's %s.bin", name);
	free(bin);
}

/* A route at the default weights and policy is what the original sends, byte
 * for byte; traffic control adds only its new fields (golden bytes from the
 * real protoc --encode, tests/golden/GetRouteResponse*.txtpb). */
static void test_frames_match_protoc(void **state)
{
	snap_builder_t b;
	snap_builder_init(&b);
	for (int32_t port = 9001; port <= 9003; port++)
		snap_builder_add(&b, 1, 1, 0x7f000001, port);
	snapshot_t *sn = snapshot_build(&b, 1);
	sbuf_t *f;
	assert_int_equal(request_route_frame(sn, 1, 1, &f), 0);
	assert_golden_frame(f, "GetRouteResponse");
	sbuf_unref(f);
	/* With a route version: the original's frame for the original's
	 * agents, the versioned one only for ours (issue 20.3). */
	snapshot_set_version(sn, 1, 1, 4242);
	assert_int_equal(request_route_frame_v(sn, 1, 1, false, &f), 0);
	assert_golden_frame(f, "GetRouteResponse");
	sbuf_unref(f);
	assert_int_equal(request_route_frame_v(sn, 1, 1, true, &f), 0);
	assert_golden_frame(f, "GetRouteResponse_versioned");
	sbuf_unref(f);
	snapshot_free(sn);

	const lars_RoutePolicy pol = { .has_panic_threshold = true, .panic_threshold = 50,
				       .max_ejection_percent = 20, .slow_start_s = 30 };
	const lars_HostInfo h[] = {
		{ .ip = 0x7f000001, .port = 9001, .weight = 300, .joined_at = 1764000000 },
		{ .ip = 0x7f000001, .port = 9002, .drain = true, .joined_at = 1764000100 },
		{ .ip = (int32_t)0xc0a801b1u, .port = 9003, .joined_at = 1764000200 },
	};
	snap_builder_init(&b);
	for (int i = 2; i >= 0; i--) /* out of order: the snapshot sorts */
		snap_builder_add_host(&b, 1, 1, &h[i], &pol);
	sn = snapshot_build(&b, 2);
	assert_int_equal(request_route_frame(sn, 1, 1, &f), 0);
	assert_golden_frame(f, "GetRouteResponse_traffic");
	sbuf_unref(f);
	snapshot_free(sn);

	const lars_RoutePolicy off = { .has_panic_threshold = true, .panic_threshold = 0 };
	const lars_HostInfo one = { .ip = 0x7f000001, .port = 80 };
	snap_builder_init(&b);
	snap_builder_add_host(&b, 2, 5, &one, &off);
	sn = snapshot_build(&b, 3);
	assert_int_equal(request_route_frame(sn, 2, 5, &f), 0);
	assert_golden_frame(f, "GetRouteResponse_panicoff");
	sbuf_unref(f);
	snapshot_free(sn);
}

/* A weight, drain or policy change is a change of the route: pushed. */
static void test_diff_sees_traffic_fields(void **state)
{
	const lars_HostInfo h = { .ip = 0x7f000001, .port = 9001 };
	lars_HostInfo hw = h, hd = h;
	hw.weight = 300;
	hd.drain = true;
	const lars_RoutePolicy pol = { .slow_start_s = 30 };
	snap_builder_t b;
	snapshot_t *v[4];
	for (int i = 0; i < 4; i++) {
		snap_builder_init(&b);
		snap_builder_add_host(&b, 1, 1, i == 1 ? &hw : i == 2 ? &hd : &h,
				      i == 3 ? &pol : NULL);
		snap_builder_add(&b, 2, 2, 0x7f000001, 80); /* unchanged throughout */
		v[i] = snapshot_build(&b, i + 1);
	}
	for (int i = 1; i < 4; i++) {
		snap_keys_t changed = { 0 };
		snapshot_diff(v[0], v[i], NULL, &changed);
		assert_int_equal(changed.n, 1);
		assert_int_equal(changed.v[0].modid, 1);
		snap_keys_deinit(&changed);
	}
	/* snapshot_patch() keeps them too. */
	snap_keys_t keys = { 0 };
	snap_keys_add(&keys, 1, 1);
	snap_builder_init(&b);
	snap_builder_add_host(&b, 1, 1, &hw, &pol);
	snapshot_t *p = snapshot_patch(v[0], &keys, &b, 9);
	const snap_route_t *r = snapshot_find(p, 1, 1);
	assert_non_null(r);
	assert_int_equal(snapshot_hosts(p, r)[0].weight, 300);
	assert_int_equal(r->policy.slow_start_s, 30);
	assert_false(snap_policy_is_default(&r->policy));
	assert_true(snap_policy_is_default(&snapshot_find(p, 2, 2)->policy));
	snap_keys_deinit(&keys);
	snapshot_free(p);
	for (int i = 0; i < 4; i++)
		snapshot_free(v[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_route_answers_and_subscribes),
		cmocka_unit_test(test_bad_body),
		cmocka_unit_test(test_unsubscribe),
		cmocka_unit_test(test_lru_drop),
		cmocka_unit_test(test_collect_and_close),
		cmocka_unit_test(test_frames_match_protoc),
		cmocka_unit_test(test_diff_sees_traffic_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
