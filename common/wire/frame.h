// SPDX-License-Identifier: MIT
// Lars framing: 8-byte little-endian header (int32 msgid, int32 msglen) + body.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR_LEN 8u
/* The original's limit for a whole frame; every UDP frame keeps it. */
#define FRAME_UDP_MAX 65535u
/* TCP default: routes with thousands of hosts need more than 64 KiB. */
#define FRAME_TCP_MAX_DEFAULT (4u * 1024 * 1024)
/* Absolute ceiling a configuration may raise the TCP maximum to. */
#define FRAME_TCP_MAX_LIMIT (256u * 1024 * 1024)

#define FRAME_MAX_ID 255 /* ids are 1..8 today, new features start at 100 */

/* Outcomes (positive; the caller decides: drop the datagram or close). */
enum {
	FRAME_OK = 0,
	FRAME_E_NEED_MORE = 1,  /* TCP: not a whole frame yet */
	FRAME_E_TOO_LARGE = 2,  /* 8 + msglen above the transport's maximum */
	FRAME_E_NEGATIVE = 3,   /* msglen < 0 */
	FRAME_E_UNKNOWN_ID = 4, /* msgid not served here */
	FRAME_E_LENGTH = 5,     /* UDP: datagram length != 8 + msglen */
};

typedef struct frame_hdr {
	int32_t msgid;
	int32_t msglen;
} frame_hdr_t;

/** struct frame_idset - the message ids a peer accepts (0..FRAME_MAX_ID). */
typedef struct frame_idset {
	uint64_t bits[(FRAME_MAX_ID + 1) / 64];
} frame_idset_t;

/**
 * struct frame_buf - incremental TCP frame decoder with one input buffer.
 *
 * The owner reads into the free tail (frame_buf_space), commits what arrived
 * and takes whole frames out with frame_buf_next(). Memory is bounded by
 * 8 + max_frame: a header announcing more is rejected before its body arrives.
 */
typedef struct frame_buf {
	uint8_t *data;
	size_t len; /* bytes held, from data[0] */
	size_t off; /* start of the first unconsumed byte */
	size_t cap;
	uint32_t max_frame; /* header + body */
	const frame_idset_t *ids;
} frame_buf_t;

/** frame_strerror() - a short name for a FRAME_* outcome. */
const char *frame_strerror(int outcome);

void frame_hdr_write(uint8_t out[FRAME_HDR_LEN], int32_t msgid, int32_t msglen);
frame_hdr_t frame_hdr_read(const uint8_t in[FRAME_HDR_LEN]);
/** frame_hdr_check() - FRAME_OK, or why a frame with @hdr is refused. */
int frame_hdr_check(const frame_hdr_t *hdr, uint32_t max_frame,
		    const frame_idset_t *ids);

void frame_idset_clear(frame_idset_t *set);
void frame_idset_add(frame_idset_t *set, int32_t msgid);
bool frame_idset_has(const frame_idset_t *set, int32_t msgid);

/**
 * frame_udp_parse() - check one datagram; *bodyp points into @dgram.
 * *hdrp is set whenever 8 header bytes were there, refusals included.
 */
int frame_udp_parse(const uint8_t *dgram, size_t len, const frame_idset_t *ids,
		    frame_hdr_t *hdrp, const uint8_t **bodyp);

void frame_buf_init(frame_buf_t *fb, uint32_t max_frame, const frame_idset_t *ids);
void frame_buf_deinit(frame_buf_t *fb);
/** frame_buf_space() - free tail to read into (grown if needed); -ENOMEM. */
int frame_buf_space(frame_buf_t *fb, uint8_t **ptrp, size_t *sizep);
/** frame_buf_commit() - @n bytes were written at the free tail. */
void frame_buf_commit(frame_buf_t *fb, size_t n);
/**
 * frame_buf_next() - take the next whole frame.
 * Return: FRAME_OK with *hdrp / *bodyp set (body valid until the next call),
 * FRAME_E_NEED_MORE, or a refusal outcome (the stream is then unusable;
 * *hdrp holds the refused header for the log).
 */
int frame_buf_next(frame_buf_t *fb, frame_hdr_t *hdrp, const uint8_t **bodyp);
/** frame_buf_pending() - bytes received but not yet returned as frames. */
static inline size_t frame_buf_pending(const frame_buf_t *fb)
{
	return fb->len - fb->off;
}
