// SPDX-License-Identifier: MIT
// Frame codec: header byte order, the incremental TCP decoder at every split
// point, coalesced frames, and every refusal.
#include "test.h"

#include <string.h>

#include "frame.h"

static frame_idset_t ids;

static int setup(void **state)
{
	frame_idset_clear(&ids);
	for (int id = 1; id <= 8; id++)
		frame_idset_add(&ids, id);
	frame_idset_add(&ids, 100);
	return 0;
}

static void test_header_little_endian(void **state)
{
	uint8_t h[8];
	frame_hdr_write(h, 0x01020304, 0x0a0b0c0d);
	static const uint8_t want[8] = { 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a };
	assert_memory_equal(h, want, 8);
	frame_hdr_t hdr = frame_hdr_read(want);
	assert_int_equal(hdr.msgid, 0x01020304);
	assert_int_equal(hdr.msglen, 0x0a0b0c0d);
	frame_hdr_write(h, 5, -1);
	hdr = frame_hdr_read(h);
	assert_int_equal(hdr.msglen, -1);
}

static void test_idset(void **state)
{
	assert_true(frame_idset_has(&ids, 1));
	assert_true(frame_idset_has(&ids, 100));
	assert_false(frame_idset_has(&ids, 0));
	assert_false(frame_idset_has(&ids, 9));
	assert_false(frame_idset_has(&ids, -1));
	assert_false(frame_idset_has(&ids, 256));
	assert_false(frame_idset_has(&ids, INT32_MAX));
}

/* A stream of three frames of different sizes, one with an empty body. */
static size_t make_stream(uint8_t *out)
{
	size_t n = 0;
	frame_hdr_write(out + n, 4, 7);
	memcpy(out + n + 8, "\x08\xea\x33\x10\x01\x18\x01", 7);
	n += 15;
	frame_hdr_write(out + n, 1, 0);
	n += 8;
	frame_hdr_write(out + n, 100, 300);
	for (int i = 0; i < 300; i++)
		out[n + 8 + i] = (uint8_t)i;
	n += 308;
	return n;
}

static void feed(frame_buf_t *fb, const uint8_t *p, size_t n)
{
	while (n) {
		uint8_t *dst;
		size_t room;
		assert_int_equal(frame_buf_space(fb, &dst, &room), 0);
		assert_true(room > 0);
		size_t k = n < room ? n : room;
		memcpy(dst, p, k);
		frame_buf_commit(fb, k);
		p += k;
		n -= k;
	}
}

static int drain(frame_buf_t *fb, frame_hdr_t *got, size_t max)
{
	int n = 0;
	frame_hdr_t hdr;
	const uint8_t *body;
	int r;
	while ((r = frame_buf_next(fb, &hdr, &body)) == FRAME_OK) {
		assert_true((size_t)n < max);
		if (hdr.msgid == 100)
			for (int i = 0; i < 300; i++)
				assert_int_equal(body[i], (uint8_t)i);
		if (hdr.msgid == 4)
			assert_memory_equal(body, "\x08\xea\x33\x10\x01\x18\x01", 7);
		got[n++] = hdr;
	}
	assert_int_equal(r, FRAME_E_NEED_MORE);
	return n;
}

static void test_every_split_point(void **state)
{
	uint8_t s[512];
	size_t len = make_stream(s);

	for (size_t split = 0; split <= len; split++) {
		frame_buf_t fb;
		frame_hdr_t got[3];
		frame_buf_init(&fb, FRAME_TCP_MAX_DEFAULT, &ids);
		feed(&fb, s, split);
		int n = drain(&fb, got, 3);
		feed(&fb, s + split, len - split);
		n += drain(&fb, got + n, 3 - (size_t)n);
		assert_int_equal(n, 3);
		assert_int_equal(got[0].msgid, 4);
		assert_int_equal(got[1].msgid, 1);
		assert_int_equal(got[1].msglen, 0);
		assert_int_equal(got[2].msgid, 100);
		assert_int_equal(frame_buf_pending(&fb), 0);
		frame_buf_deinit(&fb);
	}
}

static void test_byte_by_byte(void **state)
{
	uint8_t s[512];
	size_t len = make_stream(s);
	frame_buf_t fb;
	frame_hdr_t got[3];
	int n = 0;
	frame_buf_init(&fb, FRAME_TCP_MAX_DEFAULT, &ids);
	for (size_t i = 0; i < len; i++) {
		feed(&fb, s + i, 1);
		n += drain(&fb, got + n, 3 - (size_t)n);
	}
	assert_int_equal(n, 3);
	frame_buf_deinit(&fb);
}

static void test_coalesced_many(void **state)
{
	/* 1000 frames in one read. */
	size_t cap = 1000 * 15;
	uint8_t *s = malloc(cap);
	for (int i = 0; i < 1000; i++) {
		frame_hdr_write(s + i * 15, 4, 7);
		memcpy(s + i * 15 + 8, "\x08\xea\x33\x10\x01\x18\x01", 7);
	}
	frame_buf_t fb;
	frame_buf_init(&fb, FRAME_TCP_MAX_DEFAULT, &ids);
	feed(&fb, s, cap);
	frame_hdr_t hdr;
	const uint8_t *body;
	int n = 0;
	while (frame_buf_next(&fb, &hdr, &body) == FRAME_OK)
		n++;
	assert_int_equal(n, 1000);
	frame_buf_deinit(&fb);
	free(s);
}

static int first_outcome(uint32_t max_frame, int32_t msgid, int32_t msglen)
{
	frame_buf_t fb;
	uint8_t h[8];
	frame_hdr_t hdr;
	const uint8_t *body;
	frame_buf_init(&fb, max_frame, &ids);
	frame_hdr_write(h, msgid, msglen);
	feed(&fb, h, 8);
	int r = frame_buf_next(&fb, &hdr, &body);
	frame_buf_deinit(&fb);
	return r;
}

static void test_refusals_before_body(void **state)
{
	/* Decided from the header alone: no body bytes needed, no allocation. */
	assert_int_equal(first_outcome(1024, 4, 1017), FRAME_E_TOO_LARGE);
	assert_int_equal(first_outcome(1024, 4, 1016), FRAME_E_NEED_MORE);
	assert_int_equal(first_outcome(FRAME_TCP_MAX_DEFAULT, 4, INT32_MAX), FRAME_E_TOO_LARGE);
	assert_int_equal(first_outcome(FRAME_TCP_MAX_LIMIT, 4, INT32_MAX), FRAME_E_TOO_LARGE);
	assert_int_equal(first_outcome(1024, 4, -1), FRAME_E_NEGATIVE);
	assert_int_equal(first_outcome(1024, 4, INT32_MIN), FRAME_E_NEGATIVE);
	assert_int_equal(first_outcome(1024, 9, 0), FRAME_E_UNKNOWN_ID);
	assert_int_equal(first_outcome(1024, -5, 0), FRAME_E_UNKNOWN_ID);
	assert_int_equal(first_outcome(1024, 0x7fffffff, 0), FRAME_E_UNKNOWN_ID);
	assert_int_equal(first_outcome(1024, 1, 0), FRAME_OK);
}

static void test_buffer_grows_to_frame_and_shrinks(void **state)
{
	/* A 1 MiB frame: the buffer grows to hold it, then is given back. */
	size_t body = 1u << 20;
	uint8_t *s = calloc(1, 8 + body);
	frame_hdr_write(s, 2, (int32_t)body);
	frame_buf_t fb;
	frame_buf_init(&fb, FRAME_TCP_MAX_DEFAULT, &ids);
	feed(&fb, s, 8);
	uint8_t *dst;
	size_t room;
	assert_int_equal(frame_buf_space(&fb, &dst, &room), 0);
	assert_true(room >= body); /* sized from the header */
	feed(&fb, s + 8, body);
	frame_hdr_t hdr;
	const uint8_t *b;
	assert_int_equal(frame_buf_next(&fb, &hdr, &b), FRAME_OK);
	assert_int_equal(hdr.msglen, (int32_t)body);
	assert_int_equal(frame_buf_next(&fb, &hdr, &b), FRAME_E_NEED_MORE);
	assert_true(fb.cap < body);
	frame_buf_deinit(&fb);
	free(s);
}

static void test_udp(void **state)
{
	uint8_t d[64];
	frame_hdr_t hdr;
	const uint8_t *body;

	frame_hdr_write(d, 4, 3);
	memcpy(d + 8, "\x08\x01\x10", 3);
	assert_int_equal(frame_udp_parse(d, 11, &ids, &hdr, &body), FRAME_OK);
	assert_ptr_equal(body, d + 8);
	/* Length must equal 8 + msglen exactly, both ways. */
	assert_int_equal(frame_udp_parse(d, 10, &ids, &hdr, &body), FRAME_E_LENGTH);
	assert_int_equal(frame_udp_parse(d, 12, &ids, &hdr, &body), FRAME_E_LENGTH);
	/* Truncated header. */
	for (size_t n = 0; n < 8; n++)
		assert_int_equal(frame_udp_parse(d, n, &ids, &hdr, &body), FRAME_E_LENGTH);
	frame_hdr_write(d, 4, 65528);
	assert_int_equal(frame_udp_parse(d, 8, &ids, &hdr, &body), FRAME_E_TOO_LARGE);
	frame_hdr_write(d, 4, -8);
	assert_int_equal(frame_udp_parse(d, 8, &ids, &hdr, &body), FRAME_E_NEGATIVE);
	frame_hdr_write(d, 77, 0);
	assert_int_equal(frame_udp_parse(d, 8, &ids, &hdr, &body), FRAME_E_UNKNOWN_ID);
	frame_hdr_write(d, 1, 0);
	assert_int_equal(frame_udp_parse(d, 8, &ids, &hdr, &body), FRAME_OK);
	assert_int_equal(hdr.msglen, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_little_endian),
		cmocka_unit_test(test_idset),
		cmocka_unit_test(test_every_split_point),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_coalesced_many),
		cmocka_unit_test(test_refusals_before_body),
		cmocka_unit_test(test_buffer_grows_to_frame_and_shrinks),
		cmocka_unit_test(test_udp),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
