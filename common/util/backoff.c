// SPDX-License-Identifier: MIT
// Capped exponential backoff with jitter.
#include "backoff.h"

void backoff_init(backoff_t *b, uint32_t base_ms, uint32_t max_ms, uint64_t seed)
{
	b->base_ms = base_ms ? base_ms : 1;
	b->max_ms = max_ms < b->base_ms ? b->base_ms : max_ms;
	b->attempt = 0;
	b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

static uint64_t backoff_rand(backoff_t *b)
{
	uint64_t x = b->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return b->rng = x;
}

uint32_t backoff_next(backoff_t *b)
{
	uint64_t d = b->base_ms;
	for (uint32_t i = 0; i < b->attempt && d < b->max_ms; i++)
		d *= 2;
	if (d > b->max_ms)
		d = b->max_ms;
	if (b->attempt < UINT32_MAX)
		b->attempt++;
	uint64_t half = d / 2;
	return (uint32_t)(d - half + (half ? backoff_rand(b) % (half + 1) : 0));
}

void backoff_reset(backoff_t *b)
{
	b->attempt = 0;
}
