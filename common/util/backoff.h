// SPDX-License-Identifier: MIT
// Capped exponential backoff with jitter (pure; the caller owns the clock).
#pragma once

#include <stdint.h>

typedef struct backoff {
	uint32_t base_ms;  /* first delay */
	uint32_t max_ms;   /* cap */
	uint32_t attempt;  /* failures since the last success */
	uint64_t rng;      /* xorshift state for the jitter */
} backoff_t;

void backoff_init(backoff_t *b, uint32_t base_ms, uint32_t max_ms, uint64_t seed);
/**
 * backoff_next() - delay before the next try, and count the failure.
 * "Equal jitter": half the capped exponential is kept, the other half is
 * random, so peers that failed together spread out but never retry at once.
 */
uint32_t backoff_next(backoff_t *b);
/** backoff_reset() - the operation succeeded; start from base again. */
void backoff_reset(backoff_t *b);
