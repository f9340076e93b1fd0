// SPDX-License-Identifier: MIT
// Lars framing: header codec, UDP datagram check, incremental TCP decoder.
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Smallest free tail handed to a read; keeps idle connections cheap. */
#define FRAME_BUF_MIN_SPACE 4096u

const char *frame_strerror(int outcome)
{
	switch (outcome) {
	case FRAME_OK: return "ok";
	case FRAME_E_NEED_MORE: return "incomplete frame";
	case FRAME_E_TOO_LARGE: return "frame too large";
	case FRAME_E_NEGATIVE: return "negative length";
	case FRAME_E_UNKNOWN_ID: return "unknown message id";
	case FRAME_E_LENGTH: return "length does not match datagram";
	default: return "unknown outcome";
	}
}

void frame_hdr_write(uint8_t out[FRAME_HDR_LEN], int32_t msgid, int32_t msglen)
{
	uint32_t id = (uint32_t)msgid, len = (uint32_t)msglen;
	for (int i = 0; i < 4; i++) {
		out[i] = (uint8_t)(id >> (8 * i));
		out[4 + i] = (uint8_t)(len >> (8 * i));
	}
}

frame_hdr_t frame_hdr_read(const uint8_t in[FRAME_HDR_LEN])
{
	uint32_t id = 0, len = 0;
	for (int i = 0; i < 4; i++) {
		id |= (uint32_t)in[i] << (8 * i);
		len |= (uint32_t)in[4 + i] << (8 * i);
	}
	return (frame_hdr_t){ .msgid = (int32_t)id, .msglen = (int32_t)len };
}

void frame_idset_clear(frame_idset_t *set)
{
	memset(set, 0, sizeof(*set));
}

void frame_idset_add(frame_idset_t *set, int32_t msgid)
{
	if (msgid >= 0 && msgid <= FRAME_MAX_ID)
		set->bits[msgid / 64] |= UINT64_C(1) << (msgid % 64);
}

bool frame_idset_has(const frame_idset_t *set, int32_t msgid)
{
	if (msgid < 0 || msgid > FRAME_MAX_ID)
		return false;
	return set->bits[msgid / 64] & (UINT64_C(1) << (msgid % 64));
}

int frame_hdr_check(const frame_hdr_t *hdr, uint32_t max_frame,
		    const frame_idset_t *ids)
{
	if (hdr->msglen < 0)
		return FRAME_E_NEGATIVE;
	/* Widened: 8 + INT32_MAX must not wrap. */
	if ((uint64_t)FRAME_HDR_LEN + (uint64_t)hdr->msglen > max_frame)
		return FRAME_E_TOO_LARGE;
	if (ids && !frame_idset_has(ids, hdr->msgid))
		return FRAME_E_UNKNOWN_ID;
	return FRAME_OK;
}

int frame_udp_parse(const uint8_t *dgram, size_t len, const frame_idset_t *ids,
		    frame_hdr_t *hdrp, const uint8_t **bodyp)
{
	if (len < FRAME_HDR_LEN)
		return FRAME_E_LENGTH;
	frame_hdr_t hdr = frame_hdr_read(dgram);
	*hdrp = hdr;
	int r = frame_hdr_check(&hdr, FRAME_UDP_MAX, ids);
	if (r)
		return r;
	if ((uint64_t)FRAME_HDR_LEN + (uint64_t)hdr.msglen != len)
		return FRAME_E_LENGTH;
	*bodyp = dgram + FRAME_HDR_LEN;
	return FRAME_OK;
}

void frame_buf_init(frame_buf_t *fb, uint32_t max_frame, const frame_idset_t *ids)
{
	*fb = (frame_buf_t){ .max_frame = max_frame, .ids = ids };
}

void frame_buf_deinit(frame_buf_t *fb)
{
	free(fb->data);
	*fb = (frame_buf_t){ .max_frame = fb->max_frame, .ids = fb->ids };
}

/* Move the unconsumed bytes to the front. */
static void frame_buf_compact(frame_buf_t *fb)
{
	if (fb->off == 0)
		return;
	size_t rest = fb->len - fb->off;
	if (rest)
		memmove(fb->data, fb->data + fb->off, rest);
	fb->len = rest;
	fb->off = 0;
}

int frame_buf_space(frame_buf_t *fb, uint8_t **ptrp, size_t *sizep)
{
	size_t want = FRAME_BUF_MIN_SPACE;

	frame_buf_compact(fb);
	/* A known header tells how much the current frame still needs. */
	if (fb->len >= FRAME_HDR_LEN) {
		frame_hdr_t hdr = frame_hdr_read(fb->data);
		if (frame_hdr_check(&hdr, fb->max_frame, NULL) == FRAME_OK) {
			size_t need = FRAME_HDR_LEN + (size_t)hdr.msglen;
			if (need > fb->len && need - fb->len > want)
				want = need - fb->len;
		}
	}
	if (fb->cap - fb->len < want) {
		size_t ncap = fb->cap ? fb->cap : FRAME_BUF_MIN_SPACE;
		while (ncap - fb->len < want)
			ncap *= 2;
		/* Near the maximum, exactly what the frame needs: a frame just
		 * over a power of two must not cost twice max_frame. */
		if (ncap > (size_t)FRAME_HDR_LEN + fb->max_frame)
			ncap = fb->len + want;
		uint8_t *p = realloc(fb->data, ncap);
		if (!p)
			return -ENOMEM;
		fb->data = p;
		fb->cap = ncap;
	}
	*ptrp = fb->data + fb->len;
	*sizep = fb->cap - fb->len;
	return 0;
}

void frame_buf_commit(frame_buf_t *fb, size_t n)
{
	fb->len += n;
}

int frame_buf_next(frame_buf_t *fb, frame_hdr_t *hdrp, const uint8_t **bodyp)
{
	size_t avail = fb->len - fb->off;

	*hdrp = (frame_hdr_t){ -1, -1 };
	if (avail < FRAME_HDR_LEN)
		goto need_more;
	frame_hdr_t hdr = frame_hdr_read(fb->data + fb->off);
	*hdrp = hdr; /* also for refusals: the caller logs it */
	/* Refuse before the body arrives, so a liar never makes us allocate. */
	int r = frame_hdr_check(&hdr, fb->max_frame, fb->ids);
	if (r)
		return r;
	size_t flen = FRAME_HDR_LEN + (size_t)hdr.msglen;
	if (avail < flen)
		goto need_more;
	*bodyp = fb->data + fb->off + FRAME_HDR_LEN;
	fb->off += flen;
	return FRAME_OK;

need_more:
	/* An idle connection gives back a buffer a big frame made it grow. */
	if (avail == 0 && fb->cap > 4 * FRAME_BUF_MIN_SPACE) {
		free(fb->data);
		fb->data = NULL;
		fb->cap = fb->len = fb->off = 0;
	}
	return FRAME_E_NEED_MORE;
}
