// SPDX-License-Identifier: MIT
// The console's users file: one "name:crypt(3)-hash[:role]" line per user
// ('#' comments, blank lines allowed; role "read" or "write", none: write,
// as every user was before roles). Written by `larsctl admin-user`, read
// by lars-admin. It must not be world-readable.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define USERFILE_NAME_MAX 64
#define USERFILE_PASS_MAX 256
/* The shortest password `larsctl admin-user add` takes without --force:
 * the console's login is guessable online, so length is the defence. */
#define USERFILE_PASS_MIN 12

typedef enum userfile_role {
	USERFILE_ROLE_WRITE, /* may change routes (the default) */
	USERFILE_ROLE_READ,  /* sees everything, changes nothing */
} userfile_role_t;

typedef struct userfile_entry {
	char *name;
	char *hash;
	userfile_role_t role;
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
/** userfile_entry() - the user's line, or NULL. */
const userfile_entry_t *userfile_entry(const userfile_t *uf, const char *name);

/** userfile_parse_role() - "read" or "write" as a role; -EINVAL for anything else. */
int userfile_parse_role(const char *s, userfile_role_t *rolep);
/** userfile_role_name() - "read" or "write". */
const char *userfile_role_name(userfile_role_t role);

/**
 * userfile_set() - add @name (role write) or replace its hash (its role
 * kept); userfile_set_role() - set an existing user's role (false if there
 * is none); userfile_del() - remove it (false if it was not there).
 */
void userfile_set(userfile_t *uf, const char *name, const char *hash);
bool userfile_set_role(userfile_t *uf, const char *name, userfile_role_t role);
bool userfile_del(userfile_t *uf, const char *name);

/* What userfile_save() gave the file: kept from the old one, or new. */
typedef struct userfile_attrs {
	bool created; /* there was no file: these are the new file's */
	uid_t uid;
	gid_t gid;
	mode_t mode;
} userfile_attrs_t;

/** USERFILE_GID_DEFAULT - userfile_save()'s @new_gid for the default rule. */
#define USERFILE_GID_DEFAULT ((gid_t)-1)

/**
 * userfile_save() - write @uf to @path atomically (a temporary file in the
 * same directory, fsync, rename). An existing file keeps its owner, group
 * and mode (chown root:lars + chmod 0640 stays so). A new file gets mode
 * 0640, our user and group @new_gid; USERFILE_GID_DEFAULT means the
 * directory's group when the directory is not world-writable, else root's
 * (a group anyone could have made the directory with is not trusted).
 * @attrsp: set to what the file got (may be NULL).
 * Return: 0 or -errno (nothing changed then; -EPERM: the owner or group
 * could not be kept or set).
 */
int userfile_save(const char *path, const userfile_t *uf, gid_t new_gid,
		  userfile_attrs_t *attrsp);

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
