// SPDX-License-Identifier: MIT
// The console's users file: one "name:crypt(3)-hash" line per user ('#'
// comments, blank lines allowed). Written by `larsctl admin-user`, read by
// lars-admin. It must not be world-readable.
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define USERFILE_NAME_MAX 64
#define USERFILE_PASS_MAX 256

typedef struct userfile_entry {
	char *name;
	char *hash;
} userfile_entry_t;

typedef struct userfile {
	userfile_entry_t *users;
	size_t n;
} userfile_t;

/** userfile_valid_name() - 1..64 of [A-Za-z0-9._-]. */
bool userfile_valid_name(const char *name);

/**
 * userfile_load() - read @path into @uf (emptied first).
 * @check_mode: refuse a world-readable file (-EPERM).
 * Return: 0, -errno (the file cannot be read), -EPERM, or -EINVAL (a bad
 * line; *whyp says which).
 */
int userfile_load(const char *path, bool check_mode, userfile_t *uf, const char **whyp);
void userfile_free(userfile_t *uf);

/** userfile_find() - the user's hash, or NULL. */
const char *userfile_find(const userfile_t *uf, const char *name);

/**
 * userfile_set() - add @name or replace its hash; userfile_del() - remove it
 * (false if it was not there).
 */
void userfile_set(userfile_t *uf, const char *name, const char *hash);
bool userfile_del(userfile_t *uf, const char *name);

/**
 * userfile_save() - write @uf to @path atomically (temporary file, fsync,
 * rename), mode 0600. Return: 0 or -errno.
 */
int userfile_save(const char *path, const userfile_t *uf);

/**
 * userfile_hash() - a new crypt(3) hash of @password with a random salt
 * (the system's preferred method, yescrypt on Debian). malloc'd; NULL on failure.
 */
char *userfile_hash(const char *password);

/**
 * userfile_verify() - does @password match @hash? Slow on purpose (the hash
 * method's cost): call it off the event loop. Constant-time comparison.
 */
bool userfile_verify(const char *hash, const char *password);
