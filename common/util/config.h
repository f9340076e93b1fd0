// SPDX-License-Identifier: MIT
// INI configuration (inih) against a table of typed keys.
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum config_type {
	CONFIG_INT,    /* int, within [min, max] */
	CONFIG_DOUBLE, /* double, within [min, max] */
	CONFIG_BOOL,   /* true/false, yes/no, on/off, 1/0 */
	CONFIG_STR,    /* char[size] */
	CONFIG_FN,     /* parsed by ->parse */
};

/**
 * struct config_key - one "[section] name = value" the program understands.
 * @dst points at the value, which holds its default before loading.
 * @parse (CONFIG_FN) returns 0, or -EINVAL with *whyp set.
 */
typedef struct config_key {
	const char *section;
	const char *name;
	enum config_type type;
	void *dst;
	double min;
	double max;
	size_t size;
	int (*parse)(const char *value, void *dst, const char **whyp);
} config_key_t;

#define CONFIG_KEY_INT(s, n, p, lo, hi) { (s), (n), CONFIG_INT, (p), (lo), (hi), 0, NULL }
#define CONFIG_KEY_DOUBLE(s, n, p, lo, hi) { (s), (n), CONFIG_DOUBLE, (p), (lo), (hi), 0, NULL }
#define CONFIG_KEY_BOOL(s, n, p) { (s), (n), CONFIG_BOOL, (p), 0, 0, 0, NULL }
#define CONFIG_KEY_STR(s, n, buf) { (s), (n), CONFIG_STR, (buf), 0, 0, sizeof(buf), NULL }
#define CONFIG_KEY_FN(s, n, p, fn) { (s), (n), CONFIG_FN, (p), 0, 0, 0, (fn) }

/**
 * config_load() - read @path and store every known key.
 *
 * Unknown sections and keys are warned about with file:line. A bad value, a
 * key set twice (or continued by an indented line), a syntax error or a line
 * that is too long is an error naming file:line, and loading fails as a
 * whole (the caller must not start).
 * Return: 0, -ENOENT and friends if the file cannot be read, -EINVAL.
 */
int config_load(const char *path, const config_key_t *keys, size_t n_keys);

/**
 * config_set_strict() - from now on, config_load() treats an unknown section
 * or key as an error (file:line) instead of a warning: a daemon's --check.
 */
void config_set_strict(bool on);

/**
 * config_check_secret() - refuse a configuration file that holds a password
 * (@conninfo has password= or user:password@) while others may read it.
 * Return: 0, or -EPERM (logged with the file and what to do).
 */
int config_check_secret(const char *path, const char *conninfo);

/** config_parse_bool() - "true/yes/on/1" or "false/no/off/0"; -EINVAL. */
int config_parse_bool(const char *s, bool *outp);
