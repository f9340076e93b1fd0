// SPDX-License-Identifier: MIT
// What a report is admitted with: its caller (from the TCP peer unless the
// peer is trusted) and its time (within a skew of ours). No libuv.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADMIT_MAX_NETS 64

/** struct admit_net - one trusted address or CIDR block (IPv4 kept as ::ffff:a.b.c.d). */
typedef struct admit_net {
	uint8_t addr[16];
	unsigned prefix; /* 0..128, over the 16 bytes */
} admit_net_t;

typedef struct admit {
	admit_net_t nets[ADMIT_MAX_NETS];
	size_t n_nets;
	bool trust_loopback;
	uint32_t max_skew_s;
} admit_t;

/** struct admit_peer - decided once per connection. */
typedef struct admit_peer {
	bool trusted;   /* the report's own caller field is used */
	bool has_ipv4;  /* not trusted: ->caller is the peer's address */
	int32_t caller; /* wire form (a<<24|b<<16|c<<8|d) */
} admit_peer_t;

enum admit_ts_result {
	ADMIT_TS_OK,
	ADMIT_TS_FUTURE, /* ahead of our clock by more than the skew: refused */
	ADMIT_TS_PAST,   /* behind by more than the skew: replaced by ours */
};

/**
 * admit_parse_nets() - "ip, ip/len, ..." (IPv4 or IPv6) into @a->nets.
 * Return: 0, or -EINVAL with *whyp naming the problem.
 */
int admit_parse_nets(admit_t *a, const char *list, const char **whyp);

/**
 * admit_peer() - whether a connection from @ip (numeric, as getpeername
 * gives it, IPv4-mapped IPv6 included) is trusted, or else which caller its
 * reports are stored under. Return: 0, or -EINVAL if @ip is not an address.
 */
int admit_peer(const admit_t *a, const char *ip, admit_peer_t *out);

/** admit_peer_ip() - the address part of "ip:port" / "[ip6]:port" into @out. */
int admit_peer_ip(const char *peer, char *out, size_t cap);

/**
 * admit_ts() - the time a report with @ts is stored under, given our clock
 * @now_s: @ts itself within the skew; @now_s if @ts is 0 (none sent) or
 * behind by more (*tsp set, ADMIT_TS_PAST); refused if ahead by more
 * (ADMIT_TS_FUTURE, *tsp untouched).
 */
enum admit_ts_result admit_ts(const admit_t *a, uint32_t ts, uint64_t now_s, uint32_t *tsp);
