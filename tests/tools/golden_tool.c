// SPDX-License-Identifier: MIT
// golden-tool encode NAME: writes our encoding of a golden case's body to
// stdout, so tests/golden-protoc.sh can have the real protoc --decode it.
#include <stdio.h>
#include <string.h>

#include <pb_encode.h>

#include "golden_cases.h"

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		for (size_t i = 0; i < golden_n_cases; i++)
			printf("%s\n", golden_cases[i].name);
		return 0;
	}
	if (argc != 3 || strcmp(argv[1], "encode") != 0) {
		fprintf(stderr, "usage: golden-tool list | encode NAME\n");
		return 2;
	}
	const golden_case_t *gc = golden_find(argv[2]);
	if (!gc) {
		fprintf(stderr, "golden-tool: no case %s\n", argv[2]);
		return 2;
	}
	/* Room for the largest case (LeaseRequest's inline batch of 256 hosts). */
	static uint8_t msg[16384], out[4096];
	if (gc->size > sizeof(msg)) {
		fprintf(stderr, "golden-tool: case %s is larger than its buffer\n", gc->name);
		return 1;
	}
	msg_array_t arr = gc->elems;
	memcpy(msg, gc->msg, gc->size);
	if (gc->cb_offset)
		msg_array_bind(&arr, (pb_callback_t *)(msg + gc->cb_offset));
	pb_ostream_t s = pb_ostream_from_buffer(out, sizeof(out));
	if (!pb_encode(&s, gc->fields, msg)) {
		fprintf(stderr, "golden-tool: encode failed: %s\n", PB_GET_ERROR(&s));
		return 1;
	}
	return fwrite(out, 1, s.bytes_written, stdout) == s.bytes_written ? 0 : 1;
}
