// SPDX-License-Identifier: MIT
// lars-dns's side of self-registration (issue 23): our agents' LeaseRequests
// (register, renew, drain, deregister) written through common/db/route_lease.c
// on the database workers, answered on the agent's connection.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "pg_worker.h"
#include "tcp_server.h"

/* Lease requests in the database at once; beyond, answered "busy" at once. */
#define DNS_LEASES_INFLIGHT_MAX 1024

typedef struct dns_leases dns_leases_t;

/** dns_leases_new() - requests go to @db; counted in @m. */
dns_leases_t *dns_leases_new(pg_worker_t *db, metrics_t *m);

/**
 * dns_leases_request() - a LeaseRequest @body from @c, an agent that said
 * AgentHello as @owner from address @caller (0: it did not: refused).
 * Return: 0 (answered now or when its job is done), or a MSG_E_* code for a
 * body that is no LeaseRequest (bad input: the connection is closed).
 */
int dns_leases_request(dns_leases_t *l, tcp_conn_t *c, bool hello, uint64_t owner,
		       int32_t caller, const uint8_t *body, size_t len);

/** dns_leases_inflight() - jobs whose done is still to come. */
size_t dns_leases_inflight(const dns_leases_t *l);

/**
 * dns_leases_free() - no more requests; freed now, or by the done of the
 * last job in flight (after pg_worker_close() they all end). NULL is fine.
 */
void dns_leases_free(dns_leases_t *l);
