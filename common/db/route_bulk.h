// SPDX-License-Identifier: MIT
// Changes to many hosts in one transaction (issue 24.7): making routes
// match a list (larsctl route import), and removing one machine from every
// route it serves (larsctl route del --ip). Each is one transaction: the
// triggers bump the version, record the changes and NOTIFY in it.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "route_write.h"

/** struct route_host - a host of a route with its traffic-control values. */
typedef struct route_host {
	route_entry_t e;
	int weight; /* ROUTE_WEIGHT_MIN..ROUTE_WEIGHT_MAX */
	bool drain;
} route_host_t;

/** struct route_diff - one difference between the database and the list. */
typedef struct route_diff {
	char op;             /* '+' added, '-' removed, '~' weight or drain changed */
	route_host_t was;    /* '-', '~': as it was */
	route_host_t now;    /* '+', '~': as it is (or would be) */
} route_diff_t;

/**
 * route_host_array() - one column of @hosts as a PostgreSQL array literal
 * ("{1,2}"): 0 modid, 1 cmdid, 2 ip, 3 port, 4 weight, 5 drain. free() it;
 * NULL when out of memory.
 */
char *route_host_array(const route_host_t *hosts, size_t n, int col);

/**
 * route_apply() - make every route named in @hosts hold exactly those hosts
 * with those weights and drains; routes not named are left alone.
 * @conn: a connection outside a transaction
 * @hosts: @n hosts, no host twice (the caller checks)
 * @dry_run: compute the difference only; nothing changes
 * @diffp: gets the differences, by route and host (free() it), *@n_diffp
 *         their number; none: nothing changed
 * @versionp: the route version afterwards
 *
 * The routes' rows are locked from the comparison to the commit, so a
 * concurrent writer's change is neither lost nor reported wrong.
 * Return: 0, or -EIO (logged; nothing changed).
 */
int route_apply(PGconn *conn, const route_host_t *hosts, size_t n, bool dry_run,
		route_diff_t **diffp, size_t *n_diffp, int64_t *versionp);

/**
 * route_decommission() - remove host @ip (on every port, or on @port when
 * it is > 0) from every route, in one transaction.
 * @removedp: gets what was removed (free() it), *@n_removedp their number
 * Return: 0, or -EIO (logged; nothing changed).
 */
int route_decommission(PGconn *conn, const char *ip, int port, route_host_t **removedp,
		       size_t *n_removedp, int64_t *versionp);
