// SPDX-License-Identifier: MIT
// The agent's routes in a shared-memory file (issue 22): the layout, the
// agent's writer and the client's reader. The file is a header and a table
// of route slots (open addressing on (modid, cmdid)); each slot holds one
// route's hosts and their states and is published under its own seqlock, so
// a reader never blocks the agent and never uses a torn route. The reader
// trusts nothing: the header is checked against the mapping's size once,
// every count against the header, and a slot that stays odd or changes
// under it is given up after a bounded number of tries.
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC 0x314d48535352414cull /* "LARSSHM1" */
#define SHM_LAYOUT 1
#define SHM_SLOTS_MAX 65536u  /* [agent] shm_max_routes at most */
#define SHM_HOSTS_MAX 1024u   /* [agent] shm_max_hosts at most */
#define SHM_READ_TRIES 64     /* a slot being written is given up after this */

enum { SHM_SLOT_EMPTY = 0, SHM_SLOT_ROUTE = 1, SHM_SLOT_DELETED = 2 };
enum { SHM_HOST_IDLE = 0, SHM_HOST_OVERLOADED = 1 };
#define SHM_ROUTE_PANIC 0x1u    /* the agent picks over every non-drained host */
#define SHM_ROUTE_WEIGHTED 0x2u /* weights differ or slow start: smooth weighted round robin */

typedef struct shm_host {
	int32_t ip, port;
	uint32_t weight;   /* 1..1000 */
	uint8_t state;     /* SHM_HOST_* */
	uint8_t drain;
	uint8_t pad[2];
	int64_t joined_at; /* unix seconds; slow start only */
} shm_host_t;

/* A route slot's fixed part; max_hosts shm_host_t follow it. */
typedef struct shm_route {
	_Atomic uint32_t seq; /* odd while the agent writes the slot */
	uint32_t state;       /* SHM_SLOT_* */
	int32_t modid, cmdid;
	int64_t version;      /* the route version lars-dns sent; 0 = not known */
	uint64_t gen;         /* bumped by every publication of the slot */
	uint32_t n_hosts;
	uint32_t flags;       /* SHM_ROUTE_* */
	uint32_t slow_start_s;
	uint32_t pad;
} shm_route_t;

typedef struct shm_header {
	uint64_t magic;
	uint32_t layout;
	uint32_t header_size;
	uint64_t file_size;
	uint32_t n_slots;
	uint32_t max_hosts;
	uint32_t slot_size;
	uint32_t slots_off;
	int32_t pid;          /* the agent's */
	uint32_t probe_num;   /* [loadbalance] probe_num */
	_Atomic int64_t heartbeat_ms; /* unix ms, every second */
} shm_header_t;

/* ---- the agent's side ---- */

/** shm_file_size() - bytes of a file of @n_slots slots of @max_hosts hosts. */
size_t shm_file_size(uint32_t n_slots, uint32_t max_hosts);
/**
 * shm_format() - lay out an empty table in @base (@size from
 * shm_file_size(), all zero: a fresh file, so that only used slots take pages).
 */
void shm_format(void *base, size_t size, uint32_t n_slots, uint32_t max_hosts, int32_t pid,
		uint32_t probe_num);
/**
 * shm_publish() - route (@r->modid, @r->cmdid) is now @r (version, flags,
 * slow_start_s) with @n @hosts. Return: 0; -E2BIG (more hosts than a slot
 * holds: the route is taken out, clients ask the agent); -ENOSPC (no free slot).
 */
int shm_publish(void *base, const shm_route_t *r, const shm_host_t *hosts, size_t n);
/** shm_unpublish() - the route is gone from the agent (clients ask it). */
void shm_unpublish(void *base, int32_t modid, int32_t cmdid);
void shm_set_heartbeat(void *base, int64_t unix_ms);
void shm_set_probe_num(void *base, uint32_t probe_num);

/* ---- the client's side ---- */

typedef struct shm_view {
	const uint8_t *base;
	size_t size;
	uint32_t n_slots, max_hosts, slot_size, slots_off, probe_num; /* checked copies */
	int32_t pid;
} shm_view_t;

/** shm_view_open() - check a mapping of @size bytes: 0, or -EINVAL (not ours, or broken). */
int shm_view_open(shm_view_t *v, const void *base, size_t size);
/** shm_view_heartbeat() - the agent's last heartbeat (unix ms). */
int64_t shm_view_heartbeat(const shm_view_t *v);
/**
 * shm_read_route() - a consistent copy of the route's slot: its fixed part
 * into *@r and its hosts into @hosts (room for the view's max_hosts).
 * Return: 0; -ENOENT (not in the table); -EAGAIN (kept changing or stayed
 * odd for SHM_READ_TRIES reads); -EINVAL (a count out of range).
 */
int shm_read_route(const shm_view_t *v, int32_t modid, int32_t cmdid, shm_route_t *r,
		   shm_host_t *hosts);
