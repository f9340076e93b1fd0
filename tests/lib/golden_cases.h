// SPDX-License-Identifier: MIT
// The values behind tests/golden/*.txtpb, as C structs, for the golden tests.
#pragma once

#include <stddef.h>

#include "msg.h"

typedef struct golden_case {
	const char *name;            /* tests/golden/<name>.txtpb / .bin */
	int32_t msgid;               /* the frame id this body travels under */
	const pb_msgdesc_t *fields;
	size_t size;                 /* sizeof the message struct */
	const void *msg;             /* expected values (callbacks unset) */
	size_t cb_offset;            /* offset of the repeated callback, or 0 */
	msg_array_t elems;           /* expected repeated elements */
} golden_case_t;

extern const golden_case_t golden_cases[];
extern const size_t golden_n_cases;

const golden_case_t *golden_find(const char *name);
