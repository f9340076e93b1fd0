// SPDX-License-Identifier: MIT
// Shared by the fuzz targets: the libFuzzer entry point, and decoding a
// frame's body as the message its id names (what every service does first).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode @body as message @msgid with capped repeated fields; 0 if it decoded. */
static inline int fuzz_decode_any(int32_t msgid, const uint8_t *body, size_t len)
{
	msg_vec_t vec;
	int r = 0;
	switch (msgid) {
	case LARS_ID_GET_ROUTE_REQ:
	case LARS_ID_API_GET_ROUTE_REQ: {
		lars_GetRouteRequest m = lars_GetRouteRequest_init_zero;
		return msg_decode(lars_GetRouteRequest_fields, &m, body, len, NULL);
	}
	case LARS_ID_GET_ROUTE_RESP:
	case LARS_ID_API_GET_ROUTE_RESP: {
		lars_GetRouteResponse m = lars_GetRouteResponse_init_zero;
		msg_hosts_init(&vec, 4096);
		msg_vec_bind(&vec, &m.host);
		r = msg_decode(lars_GetRouteResponse_fields, &m, body, len, NULL);
		msg_vec_deinit(&vec);
		return r;
	}
	case LARS_ID_REPORT_STATUS_REQ: {
		lars_ReportStatusRequest m = lars_ReportStatusRequest_init_zero;
		msg_results_init(&vec, 4096);
		msg_vec_bind(&vec, &m.results);
		r = msg_decode(lars_ReportStatusRequest_fields, &m, body, len, NULL);
		msg_vec_deinit(&vec);
		return r;
	}
	case LARS_ID_GET_HOST_REQ: {
		lars_GetHostRequest m = lars_GetHostRequest_init_zero;
		return msg_decode(lars_GetHostRequest_fields, &m, body, len, NULL);
	}
	case LARS_ID_GET_HOST_RESP: {
		lars_GetHostResponse m = lars_GetHostResponse_init_zero;
		return msg_decode(lars_GetHostResponse_fields, &m, body, len, NULL);
	}
	case LARS_ID_REPORT_REQ: {
		lars_ReportRequest m = lars_ReportRequest_init_zero;
		return msg_decode(lars_ReportRequest_fields, &m, body, len, NULL);
	}
	}
	return -1;
}

static inline void fuzz_all_ids(frame_idset_t *ids)
{
	frame_idset_clear(ids);
	for (int id = 1; id <= 8; id++)
		frame_idset_add(ids, id);
}
