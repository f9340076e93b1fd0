// SPDX-License-Identifier: MIT
// A token bucket with an explicit clock.
#include "tokens.h"

void tokens_init(tokens_t *t, double rate_per_s, double burst, uint64_t now_ms)
{
	*t = (tokens_t){ .rate_per_ms = rate_per_s / 1000.0, .burst = burst < 1 ? 1 : burst,
			 .last_ms = now_ms };
	t->n = t->burst;
}

bool tokens_take(tokens_t *t, uint64_t now_ms)
{
	if (now_ms > t->last_ms) {
		t->n += (double)(now_ms - t->last_ms) * t->rate_per_ms;
		if (t->n > t->burst)
			t->n = t->burst;
		t->last_ms = now_ms;
	}
	if (t->n < 1.0)
		return false;
	t->n -= 1.0;
	return true;
}
