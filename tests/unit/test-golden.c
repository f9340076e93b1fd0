// SPDX-License-Identifier: MIT
// Wire compatibility: bytes made by the real protoc --encode (tests/golden/)
// and frames captured from the original Lars must decode to the right
// values, and our encoder must produce exactly those bytes.
#include "test.h"

#include <string.h>

#include "frame.h"
#include "golden_cases.h"
#include "msg.h"

static const char *golden_dir;

static uint8_t *load_bin(const char *name, size_t *lenp)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s.bin", golden_dir, name);
	return test_read_file(path, lenp);
}

static void decode_case(const golden_case_t *gc)
{
	size_t len;
	uint8_t *bin = load_bin(gc->name, &len);
	/* Room for the largest case (LeaseRequest's inline batch of 256 hosts). */
	static uint8_t got[16384], want[16384];
	memset(got, 0, sizeof(got));
	memset(want, 0, sizeof(want));
	msg_vec_t vec;

	assert_true(gc->size <= sizeof(got));
	memcpy(want, gc->msg, gc->size);
	msg_vec_init(&vec, gc->elems.fields, gc->elems.elem_size, 100000);
	if (gc->cb_offset)
		msg_vec_bind(&vec, (pb_callback_t *)(got + gc->cb_offset));
	const char *why;
	int r = msg_decode(gc->fields, got, bin, len, &why);
	if (r)
		fail_msg("%s: decode failed: %s", gc->name, why);
	if (gc->cb_offset) {
		memset(got + gc->cb_offset, 0, sizeof(pb_callback_t));
		assert_int_equal(vec.n, gc->elems.n);
		if (vec.n && memcmp(vec.v, gc->elems.v, vec.n * vec.elem_size))
			fail_msg("%s: repeated elements differ", gc->name);
	}
	if (memcmp(got, want, gc->size))
		fail_msg("%s: decoded values differ from the .txtpb", gc->name);
	msg_vec_deinit(&vec);
	free(bin);
}

static void encode_case(const golden_case_t *gc)
{
	size_t len;
	uint8_t *bin = load_bin(gc->name, &len);
	static uint8_t msg[16384];
	uint8_t frame[1024];
	size_t flen;
	msg_array_t arr = gc->elems;

	assert_true(gc->size <= sizeof(msg));
	memset(msg, 0, sizeof(msg));
	memcpy(msg, gc->msg, gc->size);
	if (gc->cb_offset)
		msg_array_bind(&arr, (pb_callback_t *)(msg + gc->cb_offset));
	assert_int_equal(msg_frame_encode(gc->msgid, gc->fields, msg, frame,
					  sizeof(frame), &flen), 0);
	assert_int_equal(flen, FRAME_HDR_LEN + len);
	frame_hdr_t hdr = frame_hdr_read(frame);
	assert_int_equal(hdr.msgid, gc->msgid);
	assert_int_equal(hdr.msglen, (int32_t)len);
	if (memcmp(frame + FRAME_HDR_LEN, bin, len))
		fail_msg("%s: our encoding differs from protoc's", gc->name);
	free(bin);
}

static void test_decode_protoc_bytes(void **state)
{
	for (size_t i = 0; i < golden_n_cases; i++)
		decode_case(&golden_cases[i]);
}

static void test_encode_matches_protoc(void **state)
{
	for (size_t i = 0; i < golden_n_cases; i++)
		encode_case(&golden_cases[i]);
}

/* Explicit values, so a reader sees what the bytes mean. */
static void test_negative_ip_is_ten_byte_varint(void **state)
{
	size_t len;
	uint8_t *bin = load_bin("HostInfo_negative_ip", &len);
	/* tag 08, 10 varint bytes, tag 10, port 80 */
	assert_int_equal(len, 1 + 10 + 1 + 1);
	lars_HostInfo h = lars_HostInfo_init_zero;
	assert_int_equal(msg_decode(lars_HostInfo_fields, &h, bin, len, NULL), 0);
	assert_int_equal(h.ip, -1062731343);
	char ip[16];
	msg_ip_to_str(h.ip, ip);
	assert_string_equal(ip, "192.168.1.177");
	free(bin);
}

/* Frames captured from the original Lars on loopback (DESIGN.md §2). */
static const struct {
	const char *hex;
	int32_t msgid;
} captured[] = {
	{ "04000000 07000000 08ea3310011801", 4 },
	{ "05000000 0f000000 100118012a0908818080f80710a946", 5 },
	{ "02000000 25000000 080110011a0908818080f80710a9461a0908818080f80710aa461a"
	  "0908818080f80710ab46", 2 },
	{ "01000000 00000000", 1 },
};

static void test_captured_frames(void **state)
{
	frame_idset_t ids;
	frame_idset_clear(&ids);
	for (int id = 1; id <= 8; id++)
		frame_idset_add(&ids, id);

	for (size_t i = 0; i < sizeof(captured) / sizeof(captured[0]); i++) {
		uint8_t dgram[256];
		size_t n = test_unhex(captured[i].hex, dgram, sizeof(dgram));
		frame_hdr_t hdr;
		const uint8_t *body;
		assert_int_equal(frame_udp_parse(dgram, n, &ids, &hdr, &body), FRAME_OK);
		assert_int_equal(hdr.msgid, captured[i].msgid);
		assert_int_equal(hdr.msglen, (int32_t)(n - 8));
	}

	/* GetHostRequest seq 6634, 1/1, as the original client sent it. */
	uint8_t buf[64];
	size_t n = test_unhex(captured[0].hex, buf, sizeof(buf));
	lars_GetHostRequest req = lars_GetHostRequest_init_zero;
	assert_int_equal(msg_decode(lars_GetHostRequest_fields, &req, buf + 8, n - 8, NULL), 0);
	assert_int_equal(req.seq, 6634);
	assert_int_equal(req.modid, 1);
	assert_int_equal(req.cmdid, 1);

	/* Our encoding of the same response is byte-identical, header included. */
	lars_GetHostResponse resp = lars_GetHostResponse_init_zero;
	resp.modid = 1;
	resp.cmdid = 1;
	resp.has_host = true;
	resp.host.ip = 2130706433;
	resp.host.port = 9001;
	uint8_t want[64], got[64];
	size_t wn = test_unhex(captured[1].hex, want, sizeof(want)), gn;
	assert_int_equal(msg_frame_encode(5, lars_GetHostResponse_fields, &resp, got,
					  sizeof(got), &gn), 0);
	assert_int_equal(gn, wn);
	assert_memory_equal(got, want, wn);

	/* And the three-host route, through the repeated-field callback. */
	static const lars_HostInfo hosts[] = {
		{ 2130706433, 9001 }, { 2130706433, 9002 }, { 2130706433, 9003 } };
	lars_GetRouteResponse route = lars_GetRouteResponse_init_zero;
	route.modid = route.cmdid = 1;
	msg_array_t arr = MSG_HOSTS(hosts, 3);
	msg_array_bind(&arr, &route.host);
	wn = test_unhex(captured[2].hex, want, sizeof(want));
	assert_int_equal(msg_frame_encode(2, lars_GetRouteResponse_fields, &route, got,
					  sizeof(got), &gn), 0);
	assert_int_equal(gn, wn);
	assert_memory_equal(got, want, wn);

	/* modid 0 / cmdid 0 is an empty body, still a valid request. */
	lars_GetRouteRequest zero = lars_GetRouteRequest_init_zero;
	assert_int_equal(msg_frame_encode(1, lars_GetRouteRequest_fields, &zero, got,
					  sizeof(got), &gn), 0);
	assert_int_equal(gn, 8);
	assert_memory_equal(got, "\x01\0\0\0\0\0\0\0", 8);
}

int main(int argc, char **argv)
{
	golden_dir = argc > 1 ? argv[1] : "tests/golden";
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_protoc_bytes),
		cmocka_unit_test(test_encode_matches_protoc),
		cmocka_unit_test(test_negative_ip_is_ten_byte_varint),
		cmocka_unit_test(test_captured_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
