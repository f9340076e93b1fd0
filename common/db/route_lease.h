// SPDX-License-Identifier: MIT
// Leases of self-registered hosts (issue 23, migration 011): a registration
// adds a route_data row with a lease (one transaction, through the route
// triggers, with the actor of the writer), a renewal moves only the lease's
// expiry (no route change), and an expiry pass removes the hosts whose
// lease ran out, one lars-dns instance at a time.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "route_write.h"

#define ROUTE_LEASE_TTL_MAX 86400

enum route_lease_result {
	ROUTE_LEASE_ADDED,    /* a new host with a lease */
	ROUTE_LEASE_RENEWED,  /* the host had a lease: its owner and expiry renewed */
	ROUTE_LEASE_OPERATOR, /* an operator's host (no lease): nothing attached, nothing changed */
	ROUTE_LEASE_ABSENT,   /* deregister / renew: no such leased host of this owner */
	ROUTE_LEASE_REMOVED,  /* deregister: the host and its lease removed */
	ROUTE_LEASE_DRAINED,  /* drain: the host takes no new picks (it may have been so) */
};

/** route_lease_check() - a TTL of 1..86400 s and a weight of 1..1000: 0 or -EINVAL with *whyp. */
int route_lease_check(int ttl_s, int weight, const char **whyp);

/**
 * route_lease_register() - register host @e of @owner for @ttl_s seconds.
 * @actor: the change records' actor ("agent 10.0.0.7"); NULL keeps the session's.
 * A host with a lease (of any owner: an agent restarted with a new id) is
 * taken over, undrained, and given @weight (a route change only when those
 * differ).
 * @resultp: ADDED, RENEWED or OPERATOR (enum route_lease_result)
 * @versionp: the route version afterwards
 * Return: 0, or -EIO (logged; nothing changed).
 */
int route_lease_register(PGconn *conn, const route_entry_t *e, int weight, uint64_t owner,
			 int ttl_s, const char *actor, int *resultp, int64_t *versionp);

/**
 * route_lease_renew() - move the expiry of the leases of @owner on @n hosts
 * @e to now + their TTL; no route changes. *@renewedp gets how many there
 * were, and @renewed (NULL, or @n flags) which (the others have no lease of
 * @owner: expired, removed by an operator, or taken over).
 * Return: 0 or -EIO.
 */
int route_lease_renew(PGconn *conn, uint64_t owner, const route_entry_t *e, size_t n,
		      size_t *renewedp, bool *renewed);

/**
 * route_lease_deregister() - remove host @e if @owner holds its lease (one
 * transaction through the route triggers). *@resultp: REMOVED or ABSENT.
 * Return: 0 or -EIO.
 */
int route_lease_deregister(PGconn *conn, const route_entry_t *e, uint64_t owner,
			   const char *actor, int *resultp, int64_t *versionp);

/**
 * route_lease_drain() - host @e of @owner takes no new picks (drain = true,
 * a route change unless it was drained already); it keeps its lease.
 * *@resultp: DRAINED, or ABSENT when @owner holds no lease on it.
 * Return: 0 or -EIO.
 */
int route_lease_drain(PGconn *conn, const route_entry_t *e, uint64_t owner, const char *actor,
		      int *resultp, int64_t *versionp);

/**
 * route_lease_expire() - remove every host whose lease ran out, in one
 * transaction (one route version), unless another session holds the expiry
 * lock: several lars-dns instances may call it, one at a time does the work.
 * @actor: the change records' actor.
 * @expiredp: how many hosts were removed (0 when another instance holds the lock).
 * Return: 0 or -EIO.
 */
int route_lease_expire(PGconn *conn, const char *actor, size_t *expiredp);
