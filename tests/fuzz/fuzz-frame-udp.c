// SPDX-License-Identifier: MIT
// One datagram: the length check, then the body as its message.
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	frame_idset_t ids;
	fuzz_all_ids(&ids);
	frame_hdr_t hdr;
	const uint8_t *body;
	if (frame_udp_parse(data, size, &ids, &hdr, &body) == FRAME_OK) {
		if (8 + (size_t)hdr.msglen != size)
			__builtin_trap();
		fuzz_decode_any(hdr.msgid, body, (size_t)hdr.msglen);
	}
	return 0;
}
