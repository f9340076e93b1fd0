// SPDX-License-Identifier: MIT
// The client library's shared-memory fast path (issue 22), internal: the
// agent's snapshot mapped read-only, picks in-process with the agent's
// rules, results batched to the agent in ReportBatchRequests. Anything it
// cannot serve (no file, a broken one, a route not in it, an agent gone for
// longer than max_stale) it leaves to the UDP path.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LSHM_NOT_SERVED (-1) /* use the UDP path */

typedef struct lars_shm lars_shm_t;

/** lshm_new() - watch @path; NULL only without memory. @max_stale_s: fail-open's limit. */
lars_shm_t *lshm_new(const char *path, int max_stale_s);
/** lshm_free() - send what is batched on @fd (-1: drop it), unmap, free. */
void lshm_free(lars_shm_t *s, int fd);

/** lshm_get_host() - LARS_SUCC with *@ipp / *@portp, LARS_OVERLOAD, or LSHM_NOT_SERVED. */
int lshm_get_host(lars_shm_t *s, int32_t modid, int32_t cmdid, int32_t *ipp, int32_t *portp);

struct lars_host;
/**
 * lshm_get_route() - the route's hosts (@cap at most into @hosts and, if
 * not NULL, their LARS_HOST_* @flags; *@np of them, *@totalp in the route).
 * LARS_SUCC or LSHM_NOT_SERVED.
 */
int lshm_get_route(lars_shm_t *s, int32_t modid, int32_t cmdid, struct lars_host *hosts,
		   unsigned *flags, size_t cap, size_t *np, size_t *totalp);
/** lshm_tick() - send the batch if it has waited long enough (called on every pick). */
void lshm_tick(lars_shm_t *s, int fd);

/**
 * lshm_report() - batch one call's result while the agent is alive; the
 * batch goes to the agent on @fd when it is full, or a few milliseconds old.
 * While failing open (the agent gone, within max_stale) it is dropped.
 * Return: 0 (batched or dropped), or LSHM_NOT_SERVED (send it as a ReportRequest).
 */
int lshm_report(lars_shm_t *s, int fd, int32_t modid, int32_t cmdid, int32_t ip, int32_t port,
		bool ok, uint32_t latency_us);

/** lshm_flush() - send what is batched now. */
void lshm_flush(lars_shm_t *s, int fd);
