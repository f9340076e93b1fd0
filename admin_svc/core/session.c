// SPDX-License-Identifier: MIT
// Console login sessions (see session.h): a bounded table with idle and
// absolute expiry on the caller's clock.
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

typedef struct session {
	char token[SESSION_TOKEN_LEN + 1];
	char user[SESSION_USER_MAX + 1];
	uint64_t hash_tag;
	uint64_t created_ms;
	uint64_t used_ms;
	bool live;
} session_t;

struct session_store {
	session_opts_t o;
	session_t *v; /* o.max_sessions slots */
	size_t n;     /* live ones */
};

session_store_t *session_store_new(const session_opts_t *opts)
{
	session_store_t *st = xcalloc(1, sizeof(*st));
	st->o = *opts;
	if (st->o.max_sessions == 0)
		st->o.max_sessions = 1;
	st->v = xcalloc(st->o.max_sessions, sizeof(*st->v));
	return st;
}

session_store_t *session_store_free(session_store_t *st)
{
	if (st) {
		explicit_bzero(st->v, st->o.max_sessions * sizeof(*st->v));
		free(st->v);
		free(st);
	}
	return NULL;
}

bool session_valid_token(const char *s)
{
	size_t i = 0;
	for (; s[i]; i++) {
		if (i == SESSION_TOKEN_LEN ||
		    !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return i == SESSION_TOKEN_LEN;
}

/* Equal tokens, in time independent of where they differ. */
static bool token_eq(const char *a, const char *b)
{
	unsigned char d = 0;
	for (size_t i = 0; i < SESSION_TOKEN_LEN; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

static void drop(session_store_t *st, session_t *s)
{
	explicit_bzero(s, sizeof(*s));
	st->n--;
}

/* Why @s has run out at @now, or SESSION_OK. */
static session_state_t state_at(const session_store_t *st, const session_t *s, uint64_t now)
{
	if (now - s->created_ms >= st->o.max_ms)
		return SESSION_EXPIRED;
	if (now - s->used_ms >= st->o.idle_ms)
		return SESSION_IDLE;
	return SESSION_OK;
}

int session_create(session_store_t *st, const char *token, const char *user, uint64_t hash_tag,
		   uint64_t now)
{
	if (!session_valid_token(token) || !user[0] || strlen(user) > SESSION_USER_MAX)
		return -EINVAL;
	session_t *slot = NULL, *lru = NULL;
	for (size_t i = 0; i < st->o.max_sessions; i++) {
		session_t *s = &st->v[i];
		if (s->live && state_at(st, s, now) != SESSION_OK)
			drop(st, s);
		if (!s->live) {
			if (!slot)
				slot = s;
		} else if (!lru || s->used_ms < lru->used_ms) {
			lru = s;
		}
	}
	if (!slot && !lru)
		return -ENOSPC; /* a store of no sessions */
	if (!slot) {
		drop(st, lru);
		slot = lru;
	}
	memcpy(slot->token, token, SESSION_TOKEN_LEN + 1);
	snprintf(slot->user, sizeof(slot->user), "%s", user);
	slot->hash_tag = hash_tag;
	slot->created_ms = slot->used_ms = now;
	slot->live = true;
	st->n++;
	return 0;
}

static session_t *find(session_store_t *st, const char *token)
{
	if (!session_valid_token(token))
		return NULL;
	session_t *hit = NULL;
	/* Every slot is compared: the time does not tell where a token is. */
	for (size_t i = 0; i < st->o.max_sessions; i++) {
		session_t *s = &st->v[i];
		if (s->live && token_eq(s->token, token))
			hit = s;
	}
	return hit;
}

session_state_t session_use(session_store_t *st, const char *token, uint64_t now,
			    session_info_t *infop)
{
	session_t *s = find(st, token);
	if (!s)
		return SESSION_NONE;
	session_state_t r = state_at(st, s, now);
	if (r != SESSION_OK) {
		drop(st, s);
		return r;
	}
	s->used_ms = now;
	if (infop) {
		memcpy(infop->user, s->user, sizeof(infop->user));
		infop->hash_tag = s->hash_tag;
		infop->created_ms = s->created_ms;
		uint64_t end_abs = s->created_ms + st->o.max_ms, end_idle = now + st->o.idle_ms;
		infop->expires_ms = end_abs < end_idle ? end_abs : end_idle;
	}
	return SESSION_OK;
}

bool session_end(session_store_t *st, const char *token)
{
	session_t *s = find(st, token);
	if (!s)
		return false;
	drop(st, s);
	return true;
}

size_t session_end_user(session_store_t *st, const char *user)
{
	size_t n = 0;
	for (size_t i = 0; i < st->o.max_sessions; i++) {
		session_t *s = &st->v[i];
		if (s->live && strcmp(s->user, user) == 0) {
			drop(st, s);
			n++;
		}
	}
	return n;
}

size_t session_sweep(session_store_t *st, uint64_t now)
{
	size_t n = 0;
	for (size_t i = 0; i < st->o.max_sessions; i++) {
		session_t *s = &st->v[i];
		if (s->live && state_at(st, s, now) != SESSION_OK) {
			drop(st, s);
			n++;
		}
	}
	return n;
}

size_t session_count(const session_store_t *st)
{
	return st->n;
}
