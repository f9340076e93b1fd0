// SPDX-License-Identifier: MIT
// The values behind tests/golden/*.txtpb, as C structs, for the golden tests.
#include "golden_cases.h"

#include <string.h>

#define LOCALHOST 2130706433       /* 127.0.0.1 */
#define HOST_192_168_1_177 (-1062731343) /* 0xC0A801B1 as int32 */

static const lars_HostInfo host_local = { .ip = LOCALHOST, .port = 9001 };
static const lars_HostInfo host_neg = { .ip = HOST_192_168_1_177, .port = 80 };
static const lars_GetRouteRequest route_req = { .modid = 1, .cmdid = 2 };
static const lars_GetRouteRequest route_req_empty = { 0 };
static const lars_GetRouteResponse route_resp = { .modid = 1, .cmdid = 1 };
static const lars_HostInfo route_hosts[] = {
	{ LOCALHOST, 9001 }, { LOCALHOST, 9002 }, { LOCALHOST, 9003 },
};
static const lars_GetRouteResponse route_removed = { .modid = 7, .cmdid = 3 };
static const lars_ReportStatusRequest status_req = {
	.modid = 1, .cmdid = 1, .caller = LOCALHOST, .ts = 1764000000,
};
static const lars_HostCallResult status_results[] = {
	{ .ip = LOCALHOST, .port = 9001, .succ = 120, .err = 3 },
	{ .ip = HOST_192_168_1_177, .port = 9002, .succ = 4, .err = 4000000000u,
	  .overload = true },
};
static const lars_GetHostRequest host_req = { .seq = 6634, .modid = 1, .cmdid = 1 };
static const lars_GetHostResponse host_resp = {
	.modid = 1, .cmdid = 1, .has_host = true, .host = { LOCALHOST, 9001 },
};
static const lars_GetHostResponse host_resp_noexist = {
	.seq = 4294967295u, .modid = 2147483647, .cmdid = -1, .retcode = 3,
};
static const lars_ReportRequest report_req = {
	.modid = 1, .cmdid = 1, .has_host = true,
	.host = { HOST_192_168_1_177, 8080 }, .retcode = 1,
};

static const lars_ReportStatusRequest status_acked = {
	.modid = 1, .cmdid = 1, .caller = LOCALHOST, .ts = 1764000000,
	.agent_id = 18364758544493064720ull, .seq = 42, .delta = true,
};
static const lars_HostCallResult status_acked_results[] = {
	{ .ip = LOCALHOST, .port = 9001, .succ = 120, .err = 3, .lat_count = 123,
	  .lat_sum_us = 615000, .lat_buckets_count = 13,
	  .lat_buckets = { 0, 0, 3, 100, 20, 0, 0, 0, 0, 0, 0, 0, 0 } },
	{ .ip = HOST_192_168_1_177, .port = 9002, .succ = 4 },
};
static const lars_ReportStatusAck status_ack = {
	.agent_id = 18364758544493064720ull, .seq = 42,
};
static const lars_ReportRequest report_req_latency = {
	.modid = 1, .cmdid = 1, .has_host = true,
	.host = { HOST_192_168_1_177, 8080 }, .latency_us = 4200,
};
/* Traffic control (issue 19): weights, drains, join times and a policy. */
static const lars_HostInfo host_traffic = {
	.ip = LOCALHOST, .port = 9001, .weight = 1000, .drain = true, .joined_at = 1764000000,
};
static const lars_GetRouteResponse route_traffic = {
	.modid = 1, .cmdid = 1, .has_policy = true,
	.policy = { .has_panic_threshold = true, .panic_threshold = 50,
		    .max_ejection_percent = 20, .slow_start_s = 30 },
};
static const lars_HostInfo route_traffic_hosts[] = {
	{ .ip = LOCALHOST, .port = 9001, .weight = 300, .joined_at = 1764000000 },
	{ .ip = LOCALHOST, .port = 9002, .drain = true, .joined_at = 1764000100 },
	{ .ip = HOST_192_168_1_177, .port = 9003, .joined_at = 1764000200 },
};
/* panic_threshold 0 (off) is sent: the field has presence. */
static const lars_GetRouteResponse route_panic_off = {
	.modid = 2, .cmdid = 5, .has_policy = true,
	.policy = { .has_panic_threshold = true, .panic_threshold = 0 },
};
static const lars_HostInfo route_panic_off_hosts[] = { { .ip = LOCALHOST, .port = 80 } };

/* Propagation (issue 20.3): our agent's hello and ack, a versioned route. */
static const lars_AgentHello agent_hello = {
	.agent_id = 18364758544493064720ull, .host_name = "web-17.example", .caller = LOCALHOST,
};
static const lars_RouteAck route_ack = { .modid = 1, .cmdid = 1, .version = 4242 };
static const lars_GetRouteResponse route_versioned = { .modid = 1, .cmdid = 1, .version = 4242 };
static const lars_AgentStateRequest agent_state_req = { .modid = 5, .cmdid = 1 };

/* Self-registration (issue 23): app -> agent, agent <-> lars-dns. */
static const lars_RegisterRequest register_req = {
	.seq = 7, .modid = 5, .cmdid = 1, .port = 8080, .weight = 200, .ttl_s = 10,
	.check = LARS_CHECK_HTTP, .check_path = "/healthz",
};
static const lars_LeaseRequest lease_req = {
	.seq = 42, .op = LARS_LEASE_RENEW, .host_count = 2,
	.host = { { .modid = 5, .cmdid = 1, .ip = LOCALHOST, .port = 8080 },
		  { .modid = 5, .cmdid = 1, .ip = (int32_t)0xc0a80101, .port = 8081 } },
};
static const lars_LeaseResponse lease_resp = {
	.seq = 42, .op = LARS_LEASE_RENEW, .result_count = 2,
	.result = { LARS_LEASE_R_RENEWED, LARS_LEASE_R_ABSENT },
};

#define CASE(n, id, type, value) \
	{ n, id, type##_fields, sizeof(type), &(value), 0, { 0 } }
#define CASE_REP(n, id, type, value, field, arr, etype)                       \
	{ n, id, type##_fields, sizeof(type), &(value), offsetof(type, field), \
	  { (arr), sizeof(arr) / sizeof((arr)[0]), sizeof(etype), etype##_fields } }

const golden_case_t golden_cases[] = {
	CASE("HostInfo", 0, lars_HostInfo, host_local),
	CASE("HostInfo_negative_ip", 0, lars_HostInfo, host_neg),
	CASE("GetRouteRequest", LARS_ID_GET_ROUTE_REQ, lars_GetRouteRequest, route_req),
	CASE("GetRouteRequest_empty", LARS_ID_GET_ROUTE_REQ, lars_GetRouteRequest, route_req_empty),
	CASE_REP("GetRouteResponse", LARS_ID_GET_ROUTE_RESP, lars_GetRouteResponse,
		 route_resp, host, route_hosts, lars_HostInfo),
	{ "GetRouteResponse_removed", LARS_ID_GET_ROUTE_RESP, lars_GetRouteResponse_fields,
	  sizeof(lars_GetRouteResponse), &route_removed,
	  offsetof(lars_GetRouteResponse, host),
	  { NULL, 0, sizeof(lars_HostInfo), lars_HostInfo_fields } },
	CASE_REP("ReportStatusRequest", LARS_ID_REPORT_STATUS_REQ, lars_ReportStatusRequest,
		 status_req, results, status_results, lars_HostCallResult),
	CASE("GetHostRequest", LARS_ID_GET_HOST_REQ, lars_GetHostRequest, host_req),
	CASE("GetHostResponse", LARS_ID_GET_HOST_RESP, lars_GetHostResponse, host_resp),
	CASE("GetHostResponse_noexist", LARS_ID_GET_HOST_RESP, lars_GetHostResponse, host_resp_noexist),
	CASE("ReportRequest", LARS_ID_REPORT_REQ, lars_ReportRequest, report_req),
	/* Ours, beside the original's: acknowledged delivery and latency. */
	CASE_REP("ReportStatusRequest_acked", LARS_ID_REPORT_STATUS_REQ, lars_ReportStatusRequest,
		 status_acked, results, status_acked_results, lars_HostCallResult),
	CASE("ReportStatusAck", LARS_ID_REPORT_STATUS_ACK, lars_ReportStatusAck, status_ack),
	CASE("ReportRequest_latency", LARS_ID_REPORT_REQ, lars_ReportRequest, report_req_latency),
	CASE("HostInfo_traffic", 0, lars_HostInfo, host_traffic),
	CASE_REP("GetRouteResponse_traffic", LARS_ID_GET_ROUTE_RESP, lars_GetRouteResponse,
		 route_traffic, host, route_traffic_hosts, lars_HostInfo),
	CASE_REP("GetRouteResponse_panicoff", LARS_ID_GET_ROUTE_RESP, lars_GetRouteResponse,
		 route_panic_off, host, route_panic_off_hosts, lars_HostInfo),
	CASE("AgentHello", LARS_ID_AGENT_HELLO, lars_AgentHello, agent_hello),
	CASE("RouteAck", LARS_ID_ROUTE_ACK, lars_RouteAck, route_ack),
	CASE_REP("GetRouteResponse_versioned", LARS_ID_GET_ROUTE_RESP, lars_GetRouteResponse,
		 route_versioned, host, route_hosts, lars_HostInfo),
	CASE("AgentStateRequest", LARS_ID_AGENT_STATE_REQ, lars_AgentStateRequest, agent_state_req),
	CASE("RegisterRequest", LARS_ID_REGISTER_REQ, lars_RegisterRequest, register_req),
	CASE("LeaseRequest", LARS_ID_LEASE_REQ, lars_LeaseRequest, lease_req),
	CASE("LeaseResponse", LARS_ID_LEASE_RESP, lars_LeaseResponse, lease_resp),
};
const size_t golden_n_cases = sizeof(golden_cases) / sizeof(golden_cases[0]);

const golden_case_t *golden_find(const char *name)
{
	for (size_t i = 0; i < golden_n_cases; i++)
		if (strcmp(golden_cases[i].name, name) == 0)
			return &golden_cases[i];
	return NULL;
}
