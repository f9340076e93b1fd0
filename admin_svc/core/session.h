// SPDX-License-Identifier: MIT
// Console login sessions: which cookie tokens are signed in, as whom, until
// when (pure; the caller owns the clock and makes the tokens).
//
// DESIGN: a session ends when it was not used for idle_ms, or max_ms after
// it began however busy it is, or at logout. The table is bounded: a new
// session beyond max_sessions replaces the one used least recently, so a
// flood of logins costs memory once and signs out the idlest, never the
// one in use. A session names its user and the password hash it logged in
// with: the caller compares that with the users file on every use, so a
// removed user or a new password signs the old sessions out at once.
// Tokens are compared in constant time.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A token is SESSION_TOKEN_LEN hex digits (128 random bits and more). */
#define SESSION_TOKEN_LEN 64
#define SESSION_USER_MAX 64

typedef struct session_store session_store_t;

typedef struct session_opts {
	uint64_t idle_ms;     /* unused this long: signed out */
	uint64_t max_ms;      /* this long after the login: signed out */
	size_t max_sessions;  /* at most this many at once */
} session_opts_t;

/** What the caller learns of a session (copies: valid after the call). */
typedef struct session_info {
	char user[SESSION_USER_MAX + 1];
	uint64_t hash_tag;    /* the caller's tag of the password hash at login */
	uint64_t created_ms;
	uint64_t expires_ms;  /* the earlier of the idle and the absolute end, from now */
} session_info_t;

typedef enum session_state {
	SESSION_OK,
	SESSION_NONE,    /* no such token (never, or logged out, or replaced) */
	SESSION_IDLE,    /* it was unused for idle_ms: gone now */
	SESSION_EXPIRED, /* max_ms after its login: gone now */
} session_state_t;

/** session_store_new() - an empty table (opts copied; 0 max_sessions: 1). */
session_store_t *session_store_new(const session_opts_t *opts);
/** session_store_free() - NULL is fine; returns NULL. */
session_store_t *session_store_free(session_store_t *st);

/** session_valid_token() - @s is SESSION_TOKEN_LEN lower-case hex digits. */
bool session_valid_token(const char *s);

/**
 * session_create() - sign in @user with @token at @now; @hash_tag is kept
 * for the caller's check. Return: 0, or -EINVAL (a bad token or user name);
 * a full table loses its least recently used session.
 */
int session_create(session_store_t *st, const char *token, const char *user, uint64_t hash_tag,
		   uint64_t now);

/**
 * session_use() - the session of @token at @now: SESSION_OK (its idle
 * time starts again; @infop filled when not NULL) or why not (a session
 * that ran out is removed).
 */
session_state_t session_use(session_store_t *st, const char *token, uint64_t now,
			    session_info_t *infop);

/** session_end() - log out @token; false if it had no session. */
bool session_end(session_store_t *st, const char *token);

/** session_end_user() - sign out every session of @user; how many there were. */
size_t session_end_user(session_store_t *st, const char *user);

/** session_sweep() - remove the sessions that ran out by @now; how many. */
size_t session_sweep(session_store_t *st, uint64_t now);

/** session_count() - sessions in the table (some may have run out, unswept). */
size_t session_count(const session_store_t *st);
