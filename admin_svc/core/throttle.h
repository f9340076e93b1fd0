// SPDX-License-Identifier: MIT
// Login back-off: which password checks may run now (pure; the caller owns
// the clock and the password check).
//
// DESIGN: failures are counted per peer address and per user name, each in
// a bounded table. An address that failed more than a few times waits, with
// a delay doubling per failure up to a cap, before its next check; while it
// waits it is answered at once (429 + Retry-After) and no password is
// looked at. A user name under attack is slowed the same way, but only for
// addresses that failed recently: an address with no recent failure is
// always checked, so an attacker elsewhere cannot lock the real operator out
// by failing on purpose under the operator's name. Records are forgotten
// after a quiet period; a success clears its address's record.
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct throttle throttle_t;

typedef struct throttle_opts {
	unsigned addr_free;    /* failures an address may have before it waits */
	unsigned name_free;    /* failures a name may have before it is slowed */
	uint32_t base_ms;      /* the first delay */
	uint32_t max_ms;       /* the cap of the doubling delay */
	uint32_t forget_ms;    /* a record this long without failure is dropped */
	unsigned addr_slots;   /* table sizes (oldest record evicted when full) */
	unsigned name_slots;
} throttle_opts_t;

enum {
	THROTTLE_CHECK = 0, /* run the password check */
	THROTTLE_WAIT_ADDR, /* the address waits (*retry_msp) */
	THROTTLE_WAIT_NAME, /* the name waits for this (failing) address */
};

/** throttle_new() - an empty throttle (0 in @o: defaults). */
throttle_t *throttle_new(const throttle_opts_t *o);
throttle_t *throttle_free(throttle_t *t);

/**
 * throttle_ask() - may @addr check a password for @name (NULL: a name that
 * is not a user, tracked by address only) at @now_ms? On THROTTLE_CHECK the
 * check is counted as running until throttle_done(); otherwise
 * *@retry_msp says how long to wait.
 */
int throttle_ask(throttle_t *t, const char *addr, const char *name, uint64_t now_ms,
		 uint64_t *retry_msp);
/**
 * throttle_done() - the check throttle_ask() let through has ended: @ok
 * clears @addr's record, a failure counts against @addr and @name.
 * Return: the delay (ms) @addr now has to wait, 0 if none.
 */
uint64_t throttle_done(throttle_t *t, const char *addr, const char *name, bool ok,
		       uint64_t now_ms);
/** throttle_abort() - the check throttle_ask() let through never ran. */
void throttle_abort(throttle_t *t, const char *addr, uint64_t now_ms);
/** throttle_failures() - recorded failures of @addr (for logs and tests). */
unsigned throttle_failures(const throttle_t *t, const char *addr);
