// SPDX-License-Identifier: MIT
// Lars messages over nanopb: decode/encode bodies and whole frames, and the
// capped vectors behind the repeated (callback) fields.
//
// No allocation here aborts: the client library links this module too, and it
// must return -ENOMEM instead of killing the app.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb.h>

#include "lars.pb.h"

/* Return codes on the wire. */
enum {
	LARS_RET_SUCC = 0,
	LARS_RET_OVERLOAD = 1,
	LARS_RET_SYSTEM_ERROR = 2,
	LARS_RET_NOEXIST = 3,
};

/* Message ids on the wire (fixed by the original). */
enum {
	LARS_ID_GET_ROUTE_REQ = 1,
	LARS_ID_GET_ROUTE_RESP = 2,
	LARS_ID_REPORT_STATUS_REQ = 3,
	LARS_ID_GET_HOST_REQ = 4,
	LARS_ID_GET_HOST_RESP = 5,
	LARS_ID_REPORT_REQ = 6,
	LARS_ID_API_GET_ROUTE_REQ = 7,
	LARS_ID_API_GET_ROUTE_RESP = 8,
	/* Ours, not the original's: the agent drops its subscription to a key
	 * (body GetRouteRequest, no answer). The original lars-dns skips it. */
	LARS_ID_UNSUBSCRIBE_REQ = 9,
	/* Ours: lars-reporter -> agent, every ReportStatusRequest of the agent
	 * up to a sequence number is stored (body ReportStatusAck). */
	LARS_ID_REPORT_STATUS_ACK = 10,
	/* Ours: `lars agent-state` and our agent's answer (loopback only). */
	LARS_ID_AGENT_STATE_REQ = 100,
	LARS_ID_AGENT_STATE_RESP = 101,
	/* Ours: agent -> lars-dns, route propagation (AgentHello, RouteAck). */
	LARS_ID_AGENT_HELLO = 102,
	LARS_ID_ROUTE_ACK = 103,
	/* Ours: self-registration (issue 23); app <-> agent (loopback only)
	 * and agent <-> lars-dns. */
	LARS_ID_REGISTER_REQ = 104,
	LARS_ID_REGISTER_RESP = 105,
	LARS_ID_DEREGISTER_REQ = 106,
	LARS_ID_LEASE_REQ = 107,
	LARS_ID_LEASE_RESP = 108,
	/* Ours: a client's batched call results (shared-memory fast path). */
	LARS_ID_REPORT_BATCH_REQ = 109,
};
#define LARS_REPORT_BATCH_MAX 256

/* RegisterResponse.state */
enum {
	LARS_REG_PENDING = 0,
	LARS_REG_REGISTERED = 1,
	LARS_REG_OPERATOR = 2,
	LARS_REG_FAILING = 3,
	LARS_REG_DRAINING = 4,
	LARS_REG_REMOVED = 5,
	LARS_REG_REFUSED = 6,
	LARS_REG_UNKNOWN = 7,
};

/* RegisterRequest.check */
enum { LARS_CHECK_NONE = 0, LARS_CHECK_TCP = 1, LARS_CHECK_HTTP = 2 };

/* LeaseRequest.op and LeaseResponse.result */
enum { LARS_LEASE_REGISTER = 1, LARS_LEASE_RENEW = 2, LARS_LEASE_DRAIN = 3,
       LARS_LEASE_DEREGISTER = 4 };
enum { LARS_LEASE_R_ADDED = 0, LARS_LEASE_R_RENEWED = 1, LARS_LEASE_R_OPERATOR = 2,
       LARS_LEASE_R_ABSENT = 3, LARS_LEASE_R_REMOVED = 4, LARS_LEASE_R_DRAINED = 5,
       LARS_LEASE_R_FAILED = 6 };
#define LARS_LEASE_BATCH_MAX 256

/*
 * Call durations travel as a fixed histogram: MSG_LAT_BUCKETS counts, bucket
 * i holding durations up to msg_lat_bounds_us[i] (the last one: above the
 * last bound). The bounds never change: agents and reporters of different
 * versions add up the same buckets.
 */
#define MSG_LAT_BUCKETS 13
extern const uint32_t msg_lat_bounds_us[MSG_LAT_BUCKETS - 1];
/** msg_lat_bucket() - the bucket a duration of @us microseconds counts in. */
unsigned msg_lat_bucket(uint32_t us);

/* Small messages are static; their whole frame fits one UDP datagram. */
_Static_assert(8 + lars_GetHostResponse_size <= 65535, "GetHostResponse UDP frame");
_Static_assert(8 + lars_GetHostRequest_size <= 65535, "GetHostRequest UDP frame");
_Static_assert(8 + lars_ReportRequest_size <= 65535, "ReportRequest UDP frame");
_Static_assert(8 + lars_ReportBatchRequest_size <= 65507, "ReportBatchRequest UDP frame");

/* Sizes of one element of a repeated field, tag and length prefix included. */
#define MSG_HOST_ELEM_MAX (1 + 1 + lars_HostInfo_size)
#define MSG_RESULT_ELEM_MAX (1 + 1 + lars_HostCallResult_size)
/* Hosts that always fit a UDP GetRouteResponse (ids, modid, cmdid ≤ 22 B):
 * a worst-case bound (negative ips, 5-byte ports). The agent fills a
 * datagram by the hosts' actual sizes instead (msg_route_fit()). */
#define MSG_UDP_MAX_HOSTS ((65535 - 8 - 22) / MSG_HOST_ELEM_MAX)
/* The largest UDP payload both IPv4 (65535 - 20 - 8) and IPv6 carry. */
#define MSG_UDP_DATAGRAM_MAX 65507u
/* The most hosts one datagram can carry at all (2 bytes each: 0.0.0.0:0). */
#define MSG_UDP_FIT_MAX_HOSTS ((MSG_UDP_DATAGRAM_MAX - 8) / 2)

enum {
	MSG_E_DECODE = 10,   /* body is not a valid message */
	MSG_E_TOO_MANY = 11, /* repeated field above its cap */
	MSG_E_TOO_LARGE = 12 /* encoded frame above the transport's limit */
};

/**
 * struct msg_vec - decode target for a repeated submessage field: elements
 * are appended as they are decoded, up to @max (then decoding fails).
 */
typedef struct msg_vec {
	void *v;
	size_t n;
	size_t cap;
	size_t max;
	size_t elem_size;
	const pb_msgdesc_t *fields;
	int error; /* 0, MSG_E_TOO_MANY or -ENOMEM, set by the callback */
} msg_vec_t;

/** struct msg_array - encode source for a repeated submessage field. */
typedef struct msg_array {
	const void *v;
	size_t n;
	size_t elem_size;
	const pb_msgdesc_t *fields;
} msg_array_t;

const char *msg_strerror(int r);

void msg_vec_init(msg_vec_t *vec, const pb_msgdesc_t *fields, size_t elem_size,
		  size_t max);
void msg_vec_deinit(msg_vec_t *vec);
/** msg_vec_bind() - make @cb decode into @vec (which must outlive the decode). */
void msg_vec_bind(msg_vec_t *vec, pb_callback_t *cb);
/** msg_array_bind() - make @cb encode @arr (which must outlive the encode). */
void msg_array_bind(msg_array_t *arr, pb_callback_t *cb);

#define msg_hosts_init(vec, max)                                               \
	msg_vec_init((vec), lars_HostInfo_fields, sizeof(lars_HostInfo), (max))
#define msg_results_init(vec, max)                                             \
	msg_vec_init((vec), lars_HostCallResult_fields,                        \
		     sizeof(lars_HostCallResult), (max))
#define MSG_HOSTS(a, count)                                                    \
	((msg_array_t){ (a), (count), sizeof(lars_HostInfo), lars_HostInfo_fields })
#define MSG_RESULTS(a, count)                                                  \
	((msg_array_t){ (a), (count), sizeof(lars_HostCallResult),             \
			lars_HostCallResult_fields })

/**
 * msg_decode() - decode @len bytes of body into @msg (already initialised,
 * callbacks bound). An empty body is a valid all-zero message.
 * Return: 0 or MSG_E_DECODE; *whyp gets nanopb's reason. A bound msg_vec
 * that caused the failure says why in its ->error (MSG_E_TOO_MANY, -ENOMEM).
 */
int msg_decode(const pb_msgdesc_t *fields, void *msg, const uint8_t *body,
	       size_t len, const char **whyp);

/** msg_encoded_size() - body size of @msg: 0, or -EINVAL if it cannot be encoded. */
int msg_encoded_size(const pb_msgdesc_t *fields, const void *msg, size_t *sizep);

/**
 * msg_frame_encode() - header + body of @msg into @buf of @cap bytes.
 * Return: 0 with *lenp set, MSG_E_TOO_LARGE if it does not fit, -EINVAL.
 */
int msg_frame_encode(int32_t msgid, const pb_msgdesc_t *fields, const void *msg,
		     uint8_t *buf, size_t cap, size_t *lenp);

/**
 * msg_frame_alloc() - encode a frame into a new malloc'd buffer (caller frees).
 * Return: 0, MSG_E_TOO_LARGE if above @max_frame, -ENOMEM, -EINVAL.
 */
int msg_frame_alloc(int32_t msgid, const pb_msgdesc_t *fields, const void *msg,
		    size_t max_frame, uint8_t **bufp, size_t *lenp);

/** msg_int32_field_size() - bytes of a proto3 int32 field (number < 16) holding @v; 0 for 0. */
size_t msg_int32_field_size(int32_t v);
/** msg_host_elem_size() - bytes one host adds to a repeated HostInfo field. */
size_t msg_host_elem_size(int32_t ip, int32_t port);

/**
 * struct msg_route_fit - how many hosts of a route fit one UDP
 * GetRouteResponse frame (header included) of at most MSG_UDP_DATAGRAM_MAX
 * bytes. Feed the hosts in order with msg_route_fit_add() while it returns
 * true; then msg_route_fit_count() says how many go out and whether
 * host_total must be set (the list is cut).
 */
typedef struct msg_route_fit {
	size_t room;      /* bytes left for hosts, host_total not reserved */
	size_t room_cut;  /* the same with host_total reserved */
	size_t n_total;   /* the route's whole host count */
	size_t n, n_cut;  /* hosts that fit each budget so far */
	size_t used;
	bool over;        /* a host did not fit the uncut budget */
} msg_route_fit_t;

void msg_route_fit_init(msg_route_fit_t *f, int32_t modid, int32_t cmdid, size_t n_total);
/** msg_route_fit_add() - count one more host; false once no more can go. */
bool msg_route_fit_add(msg_route_fit_t *f, int32_t ip, int32_t port);
/** msg_route_fit_count() - hosts to send; *cutp = true when host_total must be set. */
size_t msg_route_fit_count(const msg_route_fit_t *f, bool *cutp);

/** msg_ip_to_str() - wire ip (a<<24|b<<16|c<<8|d) to dotted text. */
void msg_ip_to_str(int32_t ip, char out[16]);
/** msg_ip_from_str() - dotted IPv4 to the wire number; -EINVAL if not IPv4. */
int msg_ip_from_str(const char *s, int32_t *ipp);
