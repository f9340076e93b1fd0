// SPDX-License-Identifier: MIT
// lars-dns's subscriptions: which connections asked for which route.
//
// A subscription is owned by its route and by its connection, so it is one
// node linked into both: the route's list (whom to push a change to) and the
// connection's use-ordered list (what to drop at max_subscriptions, what to
// release when it closes). Either side lets go in O(1); a closing connection
// costs O(its own subscriptions). No libuv: the connection is an opaque
// pointer the caller hands in.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lru.h"
#include "u64map.h"

typedef struct subs subs_t;
typedef struct subs_peer subs_peer_t;
typedef struct subs_node subs_node_t;

/* What subs_add() did (flags). */
enum {
	SUBS_ADDED = 1u << 0,      /* a new subscription */
	SUBS_DROPPED = 1u << 1,    /* the peer's least recently asked one made room */
	SUBS_FIRST_DROP = 1u << 2, /* with SUBS_DROPPED: the first for this peer */
};

/* One (connection, route). Private to subs.c; the caller only walks key lists. */
struct subs_node {
	uint64_t key;
	subs_peer_t *peer;
	subs_node_t *kprev, *knext; /* on the route's list */
	lru_link_t lru;             /* on the peer's list, head = most recently asked */
};

/**
 * struct subs_peer - one connection's subscriptions; embed it in the
 * connection's data. @conn is what subs_collect() hands back.
 */
struct subs_peer {
	void *conn;
	bool versioned; /* sent AgentHello: its frames carry the route version */
	u64map_t keys_; /* key -> subs_node_t */
	lru_t lru_;
	bool warned_;   /* SUBS_FIRST_DROP given already */
};

/** struct subs - every subscription, by route. */
struct subs {
	u64map_t keys_;      /* key -> subs_list (first node, count) */
	size_t max_per_peer; /* [dns] max_subscriptions */
	size_t n;            /* subscriptions held, over every peer */
};

void subs_init(subs_t *s, size_t max_per_peer);
/** subs_deinit() - free the route lists; every peer must be deinitialised first. */
void subs_deinit(subs_t *s);

void subs_peer_init(subs_peer_t *p, void *conn);
/** subs_peer_deinit() - drop every subscription of @p. Return: how many. */
size_t subs_peer_deinit(subs_t *s, subs_peer_t *p);
/** subs_peer_count() - subscriptions @p holds. */
static inline size_t subs_peer_count(const subs_peer_t *p)
{
	return p->keys_.n;
}

/**
 * subs_add() - @p asked for (@modid, @cmdid): subscribe it, or make an
 * existing subscription its most recent. At max_per_peer the least recently
 * asked one goes first (an agent asks again for the routes it uses, so those
 * stay).
 * Return: SUBS_* flags, 0 when it was subscribed already.
 */
unsigned subs_add(subs_t *s, subs_peer_t *p, int32_t modid, int32_t cmdid);
/** subs_del() - @p forgets (@modid, @cmdid). Return: whether it was subscribed. */
bool subs_del(subs_t *s, subs_peer_t *p, int32_t modid, int32_t cmdid);
/** subs_has() - whether @p is subscribed to (@modid, @cmdid). */
bool subs_has(const subs_peer_t *p, int32_t modid, int32_t cmdid);

/** subs_count() - subscribers of (@modid, @cmdid). */
size_t subs_count(const subs_t *s, int32_t modid, int32_t cmdid);
/**
 * subs_collect() - the ->conn of up to @cap subscribers of (@modid, @cmdid)
 * into @out, so the caller can send while sends close connections.
 * Return: how many were written.
 */
size_t subs_collect(const subs_t *s, int32_t modid, int32_t cmdid, void **out, size_t cap);
