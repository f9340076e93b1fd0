// SPDX-License-Identifier: MIT
// The console's users file and its crypt(3) hashes (libcrypt / libxcrypt).
#include "userfile.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xalloc.h"

bool userfile_valid_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > USERFILE_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

void userfile_free(userfile_t *uf)
{
	for (size_t i = 0; i < uf->n; i++) {
		free(uf->users[i].name);
		free(uf->users[i].hash);
	}
	free(uf->users);
	uf->users = NULL;
	uf->n = 0;
}

int userfile_load(const char *path, bool check_mode, userfile_t *uf, const char **whyp)
{
	static char why[128];
	userfile_free(uf);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	struct stat st;
	if (check_mode && fstat(fileno(f), &st) == 0 && (st.st_mode & S_IROTH)) {
		fclose(f);
		*whyp = "it is world-readable; chmod o-rwx it";
		return -EPERM;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, r = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		char *colon = strchr(line, ':');
		if (colon)
			*colon = '\0';
		/* A crypt(3) hash has no ':'; a third field is the role. */
		char *role_text = colon ? strchr(colon + 1, ':') : NULL;
		if (role_text)
			*role_text++ = '\0';
		userfile_role_t role = USERFILE_ROLE_WRITE;
		if (!colon || !userfile_valid_name(line) || colon[1] == '\0' ||
		    (role_text && userfile_parse_role(role_text, &role))) {
			snprintf(why, sizeof(why), "line %d is not NAME:HASH or NAME:HASH:read|write",
				 lineno);
			*whyp = why;
			r = -EINVAL;
			break;
		}
		userfile_set(uf, line, colon + 1);
		userfile_set_role(uf, line, role);
	}
	free(line);
	fclose(f);
	if (r)
		userfile_free(uf);
	return r;
}

const char *userfile_find(const userfile_t *uf, const char *name)
{
	for (size_t i = 0; i < uf->n; i++)
		if (strcmp(uf->users[i].name, name) == 0)
			return uf->users[i].hash;
	return NULL;
}

const userfile_entry_t *userfile_entry(const userfile_t *uf, const char *name)
{
	for (size_t i = 0; i < uf->n; i++)
		if (strcmp(uf->users[i].name, name) == 0)
			return &uf->users[i];
	return NULL;
}

int userfile_parse_role(const char *s, userfile_role_t *rolep)
{
	if (strcmp(s, "write") == 0)
		*rolep = USERFILE_ROLE_WRITE;
	else if (strcmp(s, "read") == 0)
		*rolep = USERFILE_ROLE_READ;
	else
		return -EINVAL;
	return 0;
}

const char *userfile_role_name(userfile_role_t role)
{
	return role == USERFILE_ROLE_READ ? "read" : "write";
}

bool userfile_set_role(userfile_t *uf, const char *name, userfile_role_t role)
{
	for (size_t i = 0; i < uf->n; i++) {
		if (strcmp(uf->users[i].name, name) == 0) {
			uf->users[i].role = role;
			return true;
		}
	}
	return false;
}

void userfile_set(userfile_t *uf, const char *name, const char *hash)
{
	for (size_t i = 0; i < uf->n; i++) {
		if (strcmp(uf->users[i].name, name) == 0) {
			free(uf->users[i].hash);
			uf->users[i].hash = xstrdup(hash);
			return;
		}
	}
	uf->users = xrealloc(uf->users, (uf->n + 1) * sizeof(*uf->users));
	uf->users[uf->n].name = xstrdup(name);
	uf->users[uf->n].hash = xstrdup(hash);
	uf->users[uf->n].role = USERFILE_ROLE_WRITE;
	uf->n++;
}

bool userfile_del(userfile_t *uf, const char *name)
{
	for (size_t i = 0; i < uf->n; i++) {
		if (strcmp(uf->users[i].name, name) == 0) {
			free(uf->users[i].name);
			free(uf->users[i].hash);
			uf->users[i] = uf->users[--uf->n];
			return true;
		}
	}
	return false;
}

/* The owner, group and mode @path has, or those a new file there gets. */
static int userfile_target_attrs(const char *path, gid_t new_gid, userfile_attrs_t *a)
{
	struct stat st;
	if (stat(path, &st) == 0) {
		*a = (userfile_attrs_t){ .created = false, .uid = st.st_uid, .gid = st.st_gid,
					 .mode = st.st_mode & 07777 };
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	*a = (userfile_attrs_t){ .created = true, .uid = geteuid(), .gid = new_gid, .mode = 0640 };
	if (new_gid != USERFILE_GID_DEFAULT)
		return 0;
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	int r = stat(dir, &st) ? -errno : 0;
	free(dir);
	if (r)
		return r;
	a->gid = (st.st_mode & S_IWOTH) ? 0 : st.st_gid;
	return 0;
}

int userfile_save(const char *path, const userfile_t *uf, gid_t new_gid,
		  userfile_attrs_t *attrsp)
{
	userfile_attrs_t a;
	int r = userfile_target_attrs(path, new_gid, &a);
	if (r)
		return r;
	char *tmp;
	if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0)
		return -ENOMEM;
	/* 0600 until the owner, group and mode are set: never readable by more. */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		free(tmp);
		return r;
	}
	/* The owner first: chown may clear mode bits that fchmod then sets. */
	if ((a.uid != geteuid() || a.gid != getegid()) && fchown(fd, a.uid, a.gid))
		r = -errno;
	else if (fchmod(fd, a.mode))
		r = -errno;
	FILE *f = r ? NULL : fdopen(fd, "w");
	if (!f) {
		if (!r)
			r = -errno;
		close(fd);
	} else {
		fprintf(f, "# Lars console users (larsctl admin-user); NAME:crypt(3) hash[:read]\n");
		for (size_t i = 0; i < uf->n; i++)
			fprintf(f, "%s:%s%s\n", uf->users[i].name, uf->users[i].hash,
				uf->users[i].role == USERFILE_ROLE_READ ? ":read" : "");
		if (fflush(f) || fsync(fileno(f)))
			r = -errno;
		if (fclose(f) && !r)
			r = -errno;
	}
	if (!r && rename(tmp, path))
		r = -errno;
	if (r)
		unlink(tmp);
	free(tmp);
	if (!r && attrsp)
		*attrsp = a;
	return r;
}

char *userfile_hash(const char *password)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	if (!crypt_gensalt_rn(NULL, 0, NULL, 0, salt, sizeof(salt)))
		return NULL;
	struct crypt_data cd;
	memset(&cd, 0, sizeof(cd));
	const char *h = crypt_rn(password, salt, &cd, sizeof(cd));
	return h && h[0] != '*' ? xstrdup(h) : NULL;
}

bool userfile_verify(const char *hash, const char *password)
{
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *h = crypt_rn(password, hash, cd, sizeof(*cd));
	bool ok = false;
	if (h && h[0] != '*') {
		size_t n = strlen(hash);
		if (strlen(h) == n) {
			unsigned char diff = 0;
			for (size_t i = 0; i < n; i++)
				diff |= (unsigned char)(h[i] ^ hash[i]);
			ok = diff == 0;
		}
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}
