// SPDX-License-Identifier: MIT
// What a report is admitted with: caller and time.
#include "admit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* @s as 16 bytes, IPv4 as ::ffff:a.b.c.d; *v4p whether it was IPv4. */
static int parse_addr(const char *s, uint8_t out[16], bool *v4p)
{
	struct in_addr a4;
	if (inet_pton(AF_INET, s, &a4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a4, 4);
		*v4p = true;
		return 0;
	}
	struct in6_addr a6;
	if (inet_pton(AF_INET6, s, &a6) == 1) {
		memcpy(out, &a6, 16);
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		*v4p = memcmp(out, mapped, 12) == 0;
		return 0;
	}
	return -EINVAL;
}

static bool net_match(const admit_net_t *n, const uint8_t a[16])
{
	unsigned full = n->prefix / 8, bits = n->prefix % 8;
	if (memcmp(n->addr, a, full))
		return false;
	if (!bits)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - bits));
	return (n->addr[full] & mask) == (a[full] & mask);
}

int admit_parse_nets(admit_t *a, const char *list, const char **whyp)
{
	a->n_nets = 0;
	const char *s = list;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (!*s)
			break;
		size_t len = strcspn(s, ", \t");
		char item[INET6_ADDRSTRLEN + 8];
		if (len >= sizeof(item)) {
			*whyp = "an entry is too long for an address";
			return -EINVAL;
		}
		memcpy(item, s, len);
		item[len] = 0;
		s += len;
		if (a->n_nets == ADMIT_MAX_NETS) {
			*whyp = "more than 64 entries";
			return -EINVAL;
		}
		admit_net_t *n = &a->nets[a->n_nets];
		char *slash = strchr(item, '/');
		long plen = -1;
		if (slash) {
			*slash = 0;
			char *end;
			if (!slash[1] || slash[1] == '-' || slash[1] == '+')
				goto bad;
			plen = strtol(slash + 1, &end, 10);
			if (*end)
				goto bad;
		}
		bool v4;
		if (parse_addr(item, n->addr, &v4))
			goto bad;
		long max = v4 ? 32 : 128;
		if (plen < 0)
			plen = max;
		if (plen > max)
			goto bad;
		n->prefix = (unsigned)(v4 ? plen + 96 : plen);
		/* Host bits set ("10.0.0.1/8") are cleared: the block is what counts. */
		for (unsigned b = n->prefix; b < 128; b++)
			n->addr[b / 8] &= (uint8_t)~(0x80 >> (b % 8));
		a->n_nets++;
	}
	return 0;
bad:
	*whyp = "not an IP address or CIDR block (like 10.0.0.0/8 or fd00::/8)";
	return -EINVAL;
}

int admit_peer(const admit_t *a, const char *ip, admit_peer_t *out)
{
	uint8_t addr[16];
	bool v4;
	*out = (admit_peer_t){ 0 };
	if (parse_addr(ip, addr, &v4))
		return -EINVAL;
	static const uint8_t lo6[16] = { [15] = 1 };
	bool loopback = v4 ? addr[12] == 127 : memcmp(addr, lo6, 16) == 0;
	if (loopback && a->trust_loopback) {
		out->trusted = true;
		return 0;
	}
	for (size_t i = 0; i < a->n_nets; i++) {
		if (net_match(&a->nets[i], addr)) {
			out->trusted = true;
			return 0;
		}
	}
	if (v4) {
		out->has_ipv4 = true;
		out->caller = (int32_t)((uint32_t)addr[12] << 24 | (uint32_t)addr[13] << 16 |
					(uint32_t)addr[14] << 8 | addr[15]);
	}
	return 0;
}

int admit_peer_ip(const char *peer, char *out, size_t cap)
{
	const char *start = peer, *end;
	if (*peer == '[') {
		start = peer + 1;
		end = strchr(start, ']');
	} else {
		end = strrchr(peer, ':');
	}
	if (!end || (size_t)(end - start) >= cap)
		return -EINVAL;
	memcpy(out, start, (size_t)(end - start));
	out[end - start] = 0;
	return 0;
}

enum admit_ts_result admit_ts(const admit_t *a, uint32_t ts, uint64_t now_s, uint32_t *tsp)
{
	if (ts == 0) {
		*tsp = (uint32_t)now_s;
		return ADMIT_TS_OK;
	}
	if ((uint64_t)ts > now_s + a->max_skew_s)
		return ADMIT_TS_FUTURE;
	if ((uint64_t)ts + a->max_skew_s < now_s) {
		*tsp = (uint32_t)now_s;
		return ADMIT_TS_PAST;
	}
	*tsp = ts;
	return ADMIT_TS_OK;
}
