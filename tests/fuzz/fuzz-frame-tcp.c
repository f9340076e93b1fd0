// SPDX-License-Identifier: MIT
// The incremental TCP decoder: the input arrives in chunks (sizes from the
// first byte's PRNG), every whole frame is decoded as its message.
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint32_t rng = data[0] * 2654435761u + 1;
	data++;
	size--;
	frame_idset_t ids;
	fuzz_all_ids(&ids);
	frame_buf_t fb;
	frame_buf_init(&fb, 1 << 16, &ids);
	size_t off = 0;
	int state = FRAME_E_NEED_MORE;
	while (off < size && state == FRAME_E_NEED_MORE) {
		rng = rng * 1103515245 + 12345;
		size_t want = 1 + (rng >> 16) % 300;
		uint8_t *dst;
		size_t room;
		if (frame_buf_space(&fb, &dst, &room))
			break;
		size_t k = size - off;
		if (k > want)
			k = want;
		if (k > room)
			k = room;
		memcpy(dst, data + off, k);
		frame_buf_commit(&fb, k);
		off += k;
		frame_hdr_t hdr;
		const uint8_t *body;
		while ((state = frame_buf_next(&fb, &hdr, &body)) == FRAME_OK) {
			/* Refusals are decided from the header: the body is within bounds. */
			if ((size_t)hdr.msglen > fb.max_frame)
				__builtin_trap();
			fuzz_decode_any(hdr.msgid, body, (size_t)hdr.msglen);
		}
	}
	frame_buf_deinit(&fb);
	return 0;
}
