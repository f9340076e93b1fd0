// SPDX-License-Identifier: MIT
// Call results waiting to go to lars-reporter, coalesced per host and
// grouped per route; bounded. No libuv.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "u64map.h"

/**
 * struct rb_counts - one host's counts since it was last taken: calls that
 * succeeded and failed, and of the calls that came with a duration
 * (ReportRequest latency_us > 0) their number, sum and histogram over
 * msg_lat_bounds_us.
 */
typedef struct rb_counts {
	int32_t ip;
	int32_t port;
	uint32_t succ;
	uint32_t err;
	uint32_t lat_count;
	uint64_t lat_sum_us;
	uint32_t lat_buckets[MSG_LAT_BUCKETS];
} rb_counts_t;

/** struct rb_route - the pending counts of one (modid, cmdid). */
typedef struct rb_route {
	int32_t modid;
	int32_t cmdid;
	u64map_t hosts; /* (ip, port) -> rb_counts_t */
} rb_route_t;

typedef struct report_buf {
	u64map_t routes; /* (modid, cmdid) -> rb_route_t */
	size_t n_hosts;  /* entries over all routes */
	size_t max_hosts;
	uint64_t n_dropped; /* results refused at the bound */
} report_buf_t;

void rb_init(report_buf_t *b, size_t max_hosts);
void rb_deinit(report_buf_t *b);
/**
 * rb_add() - count @succ successes and @err errors for a host (0/0 just
 * makes the host part of the next report, e.g. after a state change).
 * Return: 0, or -ENOSPC when a new host would pass the bound (counted).
 */
int rb_add(report_buf_t *b, int32_t modid, int32_t cmdid, int32_t ip, int32_t port,
	   uint32_t succ, uint32_t err);
/**
 * rb_add_call() - one call's outcome (@ok: it succeeded) for a host, with its
 * duration @latency_us (0: not measured, not in the latency counts).
 * Return: 0, or -ENOSPC as rb_add().
 */
int rb_add_call(report_buf_t *b, int32_t modid, int32_t cmdid, int32_t ip, int32_t port,
		bool ok, uint32_t latency_us);
/** rb_add_counts() - @add's counts (and latency) for a host, coalesced; -ENOSPC at the bound. */
int rb_add_counts(report_buf_t *b, int32_t modid, int32_t cmdid, const rb_counts_t *add);
/**
 * rb_take_all() - every route's counts, @b empty after. The caller sends
 * them, rb_put_back()s what it could not send and rb_route_free()s the rest,
 * then free()s the array. Return: the array (NULL when empty), *np its size.
 */
rb_route_t **rb_take_all(report_buf_t *b, size_t *np);
/** rb_put_back() - a route's counts that could not be sent, coalesced back in. */
void rb_put_back(report_buf_t *b, rb_route_t *r);
void rb_route_free(rb_route_t *r);
