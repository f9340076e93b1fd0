// SPDX-License-Identifier: MIT
// Lars messages over nanopb: bodies, frames and repeated-field vectors.
#include "msg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "frame.h"

const char *msg_strerror(int r)
{
	switch (r) {
	case 0: return "ok";
	case MSG_E_DECODE: return "malformed protobuf";
	case MSG_E_TOO_MANY: return "too many elements in a repeated field";
	case MSG_E_TOO_LARGE: return "message too large";
	case -ENOMEM: return "out of memory";
	case -EINVAL: return "invalid message";
	default: return "unknown error";
	}
}

void msg_vec_init(msg_vec_t *vec, const pb_msgdesc_t *fields, size_t elem_size,
		  size_t max)
{
	*vec = (msg_vec_t){ .max = max, .elem_size = elem_size, .fields = fields };
}

void msg_vec_deinit(msg_vec_t *vec)
{
	free(vec->v);
	vec->v = NULL;
	vec->n = vec->cap = 0;
	vec->error = 0;
}

static bool msg_vec_decode_cb(pb_istream_t *stream, const pb_field_t *field,
			      void **arg)
{
	msg_vec_t *vec = *arg;

	if (vec->n >= vec->max) {
		vec->error = MSG_E_TOO_MANY;
		PB_RETURN_ERROR(stream, "repeated field over its cap");
	}
	if (vec->n == vec->cap) {
		size_t ncap = vec->cap ? vec->cap * 2 : 8;
		if (ncap > vec->max)
			ncap = vec->max;
		size_t bytes;
		if (__builtin_mul_overflow(ncap, vec->elem_size, &bytes)) {
			vec->error = -ENOMEM;
			PB_RETURN_ERROR(stream, "allocation overflow");
		}
		void *p = realloc(vec->v, bytes);
		if (!p) {
			vec->error = -ENOMEM;
			PB_RETURN_ERROR(stream, "out of memory");
		}
		vec->v = p;
		vec->cap = ncap;
	}
	void *elem = (char *)vec->v + vec->n * vec->elem_size;
	memset(elem, 0, vec->elem_size);
	if (!pb_decode(stream, vec->fields, elem))
		return false;
	vec->n++;
	return true;
}

void msg_vec_bind(msg_vec_t *vec, pb_callback_t *cb)
{
	cb->funcs.decode = msg_vec_decode_cb;
	cb->arg = vec;
}

/* Pure: nanopb's sizing pass calls it once more for the real encode. */
static bool msg_array_encode_cb(pb_ostream_t *stream, const pb_field_t *field,
				void *const *arg)
{
	const msg_array_t *arr = *arg;

	for (size_t i = 0; i < arr->n; i++) {
		const void *elem = (const char *)arr->v + i * arr->elem_size;
		if (!pb_encode_tag_for_field(stream, field))
			return false;
		if (!pb_encode_submessage(stream, arr->fields, elem))
			return false;
	}
	return true;
}

void msg_array_bind(msg_array_t *arr, pb_callback_t *cb)
{
	cb->funcs.encode = msg_array_encode_cb;
	cb->arg = arr;
}

int msg_decode(const pb_msgdesc_t *fields, void *msg, const uint8_t *body,
	       size_t len, const char **whyp)
{
	pb_istream_t s = pb_istream_from_buffer(body, len);
	const char *why = "ok";
	int r = 0;

	if (!pb_decode(&s, fields, msg)) {
		why = PB_GET_ERROR(&s);
		r = MSG_E_DECODE;
	}
	if (whyp)
		*whyp = why;
	return r;
}

int msg_encoded_size(const pb_msgdesc_t *fields, const void *msg, size_t *sizep)
{
	return pb_get_encoded_size(sizep, fields, msg) ? 0 : -EINVAL;
}

int msg_frame_encode(int32_t msgid, const pb_msgdesc_t *fields, const void *msg,
		     uint8_t *buf, size_t cap, size_t *lenp)
{
	if (cap < FRAME_HDR_LEN)
		return MSG_E_TOO_LARGE;
	pb_ostream_t s = pb_ostream_from_buffer(buf + FRAME_HDR_LEN,
						cap - FRAME_HDR_LEN);
	if (!pb_encode(&s, fields, msg)) {
		/* Failure path only: tell "did not fit" from "cannot encode". */
		size_t need;
		if (pb_get_encoded_size(&need, fields, msg) &&
		    need > cap - FRAME_HDR_LEN)
			return MSG_E_TOO_LARGE;
		return -EINVAL;
	}
	frame_hdr_write(buf, msgid, (int32_t)s.bytes_written);
	*lenp = FRAME_HDR_LEN + s.bytes_written;
	return 0;
}

int msg_frame_alloc(int32_t msgid, const pb_msgdesc_t *fields, const void *msg,
		    size_t max_frame, uint8_t **bufp, size_t *lenp)
{
	size_t body;
	if (!pb_get_encoded_size(&body, fields, msg))
		return -EINVAL;
	if (body > max_frame || FRAME_HDR_LEN + body > max_frame ||
	    body > INT32_MAX)
		return MSG_E_TOO_LARGE;
	size_t total = FRAME_HDR_LEN + body;
	uint8_t *buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	pb_ostream_t s = pb_ostream_from_buffer(buf + FRAME_HDR_LEN, body);
	if (!pb_encode(&s, fields, msg) || s.bytes_written != body) {
		free(buf);
		return -EINVAL;
	}
	frame_hdr_write(buf, msgid, (int32_t)body);
	*bufp = buf;
	*lenp = total;
	return 0;
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t msg_int32_field_size(int32_t v)
{
	/* A negative int32 is sign-extended to 64 bits on the wire: 10 bytes. */
	return v ? 1 + varint_size((uint64_t)(int64_t)v) : 0;
}

size_t msg_host_elem_size(int32_t ip, int32_t port)
{
	size_t body = msg_int32_field_size(ip) + msg_int32_field_size(port);
	return 1 + varint_size(body) + body; /* tag, length, HostInfo */
}

void msg_route_fit_init(msg_route_fit_t *f, int32_t modid, int32_t cmdid, size_t n_total)
{
	size_t fixed = FRAME_HDR_LEN + msg_int32_field_size(modid) + msg_int32_field_size(cmdid);
	size_t total = msg_int32_field_size(n_total > INT32_MAX ? INT32_MAX : (int32_t)n_total);
	*f = (msg_route_fit_t){ .room = MSG_UDP_DATAGRAM_MAX - fixed,
				.room_cut = MSG_UDP_DATAGRAM_MAX - fixed - total,
				.n_total = n_total };
}

bool msg_route_fit_add(msg_route_fit_t *f, int32_t ip, int32_t port)
{
	size_t sz = msg_host_elem_size(ip, port);
	f->used += sz;
	if (f->used <= f->room_cut)
		f->n_cut++;
	if (f->used > f->room) {
		f->over = true;
		return false;
	}
	f->n++;
	return true;
}

size_t msg_route_fit_count(const msg_route_fit_t *f, bool *cutp)
{
	bool cut = f->over || f->n < f->n_total;
	*cutp = cut;
	return cut ? f->n_cut : f->n;
}

void msg_ip_to_str(int32_t ip, char out[16])
{
	uint32_t u = (uint32_t)ip;
	snprintf(out, 16, "%u.%u.%u.%u", (u >> 24) & 0xff, (u >> 16) & 0xff,
		 (u >> 8) & 0xff, u & 0xff);
}

int msg_ip_from_str(const char *s, int32_t *ipp)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*ipp = (int32_t)ntohl(a.s_addr);
	return 0;
}

const uint32_t msg_lat_bounds_us[MSG_LAT_BUCKETS - 1] = {
	500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
	1000000, 2000000,
};

unsigned msg_lat_bucket(uint32_t us)
{
	unsigned i = 0;
	while (i < MSG_LAT_BUCKETS - 1 && us > msg_lat_bounds_us[i])
		i++;
	return i;
}
