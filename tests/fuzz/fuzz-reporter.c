// SPDX-License-Identifier: MIT
// The report service's data path: TCP frames of ReportStatusRequest folded
// into the pending map; batches taken and (every other one) folded back as
// if the database had refused them. No count may be lost or invented.
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pending.h"

static uint64_t sum(const report_entry_t *v, size_t n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		for (unsigned m = 0; m < v[i].n_mins; m++)
			s += v[i].mins[m].succ + v[i].mins[m].err;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	frame_idset_t ids;
	frame_idset_clear(&ids);
	frame_idset_add(&ids, LARS_ID_REPORT_STATUS_REQ);
	frame_buf_t fb;
	frame_buf_init(&fb, 1 << 16, &ids);
	pending_t p;
	pending_init(&p);
	uint64_t sent = 0, stored = 0, now = 0;
	bool refuse = false;
	uint8_t *dst;
	size_t room;
	if (frame_buf_space(&fb, &dst, &room) == 0) {
		size_t k = size < room ? size : room;
		memcpy(dst, data, k);
		frame_buf_commit(&fb, k);
		frame_hdr_t hdr;
		const uint8_t *body;
		while (frame_buf_next(&fb, &hdr, &body) == FRAME_OK) {
			lars_ReportStatusRequest q = lars_ReportStatusRequest_init_zero;
			msg_vec_t vec;
			msg_results_init(&vec, 1024);
			msg_vec_bind(&vec, &q.results);
			if (msg_decode(lars_ReportStatusRequest_fields, &q, body, (size_t)hdr.msglen, NULL) == 0) {
				const lars_HostCallResult *r = vec.v;
				for (size_t i = 0; i < vec.n; i++) {
					report_key_t key = { q.modid, q.cmdid, r[i].ip, r[i].port, q.caller };
					pending_add(&p, &key, r[i].succ, r[i].err, r[i].overload, q.ts, now + 1, now + 1);
					now++;
					sent += (uint64_t)r[i].succ + r[i].err;
				}
			}
			msg_vec_deinit(&vec);
			size_t n;
			uint64_t results;
			report_entry_t *v = pending_take(&p, &n, &results);
			if (refuse) {
				for (size_t i = 0; i < n; i++)
					pending_merge(&p, &v[i]);
			} else {
				stored += sum(v, n);
			}
			refuse = !refuse;
			free(v);
		}
	}
	size_t n;
	uint64_t results;
	report_entry_t *v = pending_take(&p, &n, &results);
	stored += sum(v, n);
	free(v);
	if (stored != sent)
		__builtin_trap();
	pending_deinit(&p);
	frame_buf_deinit(&fb);
	return 0;
}
