// SPDX-License-Identifier: MIT
// INI configuration (inih) against a table of typed keys.
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <ini.h>

#include "log.h"
#include "xalloc.h"

typedef struct config_state {
	const char *path;
	const config_key_t *keys;
	size_t n_keys;
	FILE *f;
	int line;     /* line the reader handed out last */
	int n_errors;
	int long_line; /* first line longer than inih accepts, or 0 */
	int *set_at;   /* per key: the line that set it, or 0 */
} config_state_t;

int config_parse_bool(const char *s, bool *outp)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*outp = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*outp = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int config_set(const config_key_t *k, const char *value, const char **whyp)
{
	char *end;

	switch (k->type) {
	case CONFIG_INT: {
		errno = 0;
		long long v = strtoll(value, &end, 10); /* 08080 is a port, not octal */
		if (errno || end == value || *end) {
			*whyp = "not an integer";
			return -EINVAL;
		}
		if ((double)v < k->min || (double)v > k->max) {
			*whyp = "out of range";
			return -ERANGE;
		}
		*(int *)k->dst = (int)v;
		return 0;
	}
	case CONFIG_DOUBLE: {
		errno = 0;
		double v = strtod(value, &end);
		if (errno || end == value || *end || !isfinite(v)) {
			*whyp = "not a number";
			return -EINVAL;
		}
		if (v < k->min || v > k->max) {
			*whyp = "out of range";
			return -ERANGE;
		}
		*(double *)k->dst = v;
		return 0;
	}
	case CONFIG_BOOL:
		if (config_parse_bool(value, k->dst)) {
			*whyp = "not a boolean (true/false)";
			return -EINVAL;
		}
		return 0;
	case CONFIG_STR:
		if (strlen(value) >= k->size) {
			*whyp = "too long";
			return -EINVAL;
		}
		memcpy(k->dst, value, strlen(value) + 1);
		return 0;
	case CONFIG_FN:
		*whyp = "invalid value";
		return k->parse(value, k->dst, whyp);
	}
	*whyp = "unsupported key type";
	return -EINVAL;
}

/* config_set_strict(): unknown keys are errors (--check). */
static bool config_strict;

void config_set_strict(bool on)
{
	config_strict = on;
}

static int config_on_pair(void *user, const char *section, const char *name,
			  const char *value)
{
	config_state_t *st = user;

	for (size_t i = 0; i < st->n_keys; i++) {
		const config_key_t *k = &st->keys[i];
		if (strcmp(k->section, section) || strcmp(k->name, name))
			continue;
		/* inih also reports an indented line as more of the previous
		 * value: either way, a second assignment is a mistake. */
		if (st->set_at[i]) {
			log_error("%s:%d: [%s] %s set again (first at line %d; "
				  "an indented line continues the previous value)",
				  st->path, st->line, section, name, st->set_at[i]);
			st->n_errors++;
			return 1;
		}
		st->set_at[i] = st->line;
		const char *why = "invalid value";
		if (config_set(k, value, &why)) {
			if (k->type == CONFIG_INT || k->type == CONFIG_DOUBLE)
				log_error("%s:%d: [%s] %s = %s: %s (allowed %g..%g)",
					  st->path, st->line, section, name,
					  value, why, k->min, k->max);
			else
				log_error("%s:%d: [%s] %s = %s: %s", st->path,
					  st->line, section, name, value, why);
			st->n_errors++;
		}
		return 1;
	}
	if (config_strict) {
		log_error("%s:%d: unknown key [%s] %s", st->path, st->line, section, name);
		st->n_errors++;
		return 1;
	}
	log_warn("%s:%d: unknown key [%s] %s, ignored", st->path, st->line,
		 section, name);
	return 1;
}

/* fgets for inih that counts lines, so every message can name file:line. */
static char *config_reader(char *str, int num, void *stream)
{
	config_state_t *st = stream;

	if (!fgets(str, num, st->f))
		return NULL;
	st->line++;
	size_t len = strlen(str);
	if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(st->f)) {
		/* inih would read the rest as a line of its own; refuse instead. */
		if (!st->long_line)
			st->long_line = st->line;
		int c;
		while ((c = fgetc(st->f)) != EOF && c != '\n')
			;
		str[0] = ';';
		str[1] = '\0';
	}
	return str;
}

static bool conninfo_has_password(const char *c)
{
	if (strstr(c, "password"))
		return true; /* password=... in key=value form */
	/* postgresql://user:secret@host/db */
	const char *scheme = strstr(c, "://");
	if (!scheme)
		return false;
	const char *at = strchr(scheme + 3, '@');
	const char *colon = strchr(scheme + 3, ':');
	return at && colon && colon < at;
}

int config_check_secret(const char *path, const char *conninfo)
{
	struct stat st;
	if (!conninfo || !conninfo_has_password(conninfo))
		return 0;
	if (stat(path, &st) == 0 && (st.st_mode & S_IROTH)) {
		log_error("%s: holds a database password and is readable by everyone; "
			  "chmod o-r it (or move the password to PGPASSFILE / PGPASSWORD)", path);
		return -EPERM;
	}
	return 0;
}

int config_load(const char *path, const config_key_t *keys, size_t n_keys)
{
	config_state_t st = { .path = path, .keys = keys, .n_keys = n_keys };
	st.set_at = xcalloc(n_keys ? n_keys : 1, sizeof(*st.set_at));

	st.f = fopen(path, "re");
	if (!st.f) {
		free(st.set_at);
		int r = -errno;
		log_error("%s: cannot open configuration: %s", path, strerror(errno));
		return r;
	}
	int bad = ini_parse_stream(config_reader, &st, config_on_pair, &st);
	fclose(st.f);
	free(st.set_at);
	if (bad > 0) {
		log_error("%s:%d: syntax error (expected [section] or key = value)",
			  path, bad);
		st.n_errors++;
	} else if (bad < 0) {
		log_error("%s: cannot read configuration", path);
		return -EIO;
	}
	if (st.long_line) {
		log_error("%s:%d: line too long", path, st.long_line);
		st.n_errors++;
	}
	return st.n_errors ? -EINVAL : 0;
}
