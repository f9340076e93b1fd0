// SPDX-License-Identifier: MIT
// Running totals into differences, for reports without the delta marker
// (the original agent: each report carries a host's totals since its window
// reset). Per key (modid, cmdid, ip, port, caller) the last totals are
// remembered; a report's history counts are the difference, and a total
// lower than the last one is a window reset: the new totals are the
// difference themselves. No libuv, no clock.
//
// DESIGN: bounded memory, approximately least recently used: two
// generations of CUM_GEN_KEYS keys each. A key is looked up in the current
// one, then in the previous one (and moved up); when the current one is
// full, the previous one is forgotten and the current one becomes it. So the
// CUM_GEN_KEYS keys reported most recently are always remembered, up to
// twice as many are. A key not remembered (never seen, forgotten, or after
// a restart: the totals live in memory only) counts its totals in full, as
// a window reset does; cum_seed() fills in totals read back from
// host_status at start so a restart does not count them again.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pending.h"

#define CUM_GEN_KEYS (1u << 18)

typedef struct cum_slot {
	report_key_t key;
	bool used;
	uint32_t succ;
	uint32_t err;
} cum_slot_t;

typedef struct cum_gen {
	cum_slot_t *v;
	size_t cap; /* power of two or 0 */
	size_t n;
} cum_gen_t;

typedef struct cum {
	cum_gen_t cur, old;
	uint64_t resets; /* totals lower than the last: window resets */
} cum_t;

void cum_init(cum_t *c);
void cum_deinit(cum_t *c);
/**
 * cum_delta() - @key's totals are @succ/@err now: *@dsp and *@dep get what was
 * added since the last totals (all of it for a key not remembered or after
 * a reset). Return: true if it was a reset of a remembered key.
 */
bool cum_delta(cum_t *c, const report_key_t *key, uint32_t succ, uint32_t err,
	       uint32_t *dsp, uint32_t *dep);
/** cum_seed() - remember totals of a key not remembered yet (those read back). */
void cum_seed(cum_t *c, const report_key_t *key, uint32_t succ, uint32_t err);
/** cum_keys() - keys remembered. */
static inline size_t cum_keys(const cum_t *c)
{
	return c->cur.n + c->old.n;
}
