// SPDX-License-Identifier: MIT
// A token bucket: @rate tokens a second, at most @burst saved up. No libuv:
// callers pass now_ms.
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct tokens {
	double rate_per_ms;
	double burst;
	double n;
	uint64_t last_ms;
} tokens_t;

/** tokens_init() - a full bucket at @now_ms. */
void tokens_init(tokens_t *t, double rate_per_s, double burst, uint64_t now_ms);
/** tokens_take() - take one token if there is one. Return: whether it was taken. */
bool tokens_take(tokens_t *t, uint64_t now_ms);
