// SPDX-License-Identifier: MIT
// The console's pages and assets: every file of assets_dir read once at
// start (a few tens of KiB), served from memory. Only plain names of a
// known type, one level deep: no path ever reaches the file system.
#include "admin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#define ASSET_MAX_BYTES (4u << 20)
#define ASSETS_MAX 256

typedef struct asset {
	char *name;
	const char *ctype;
	char *data;
	size_t len;
} asset_t;

struct assets {
	asset_t *v;
	size_t n;
};

static const struct {
	const char *ext;
	const char *ctype;
} types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
	{ ".txt", "text/plain; charset=utf-8" },
};

static const char *type_of(const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		size_t e = strlen(types[i].ext);
		if (n > e && strcmp(name + n - e, types[i].ext) == 0)
			return types[i].ctype;
	}
	return NULL;
}

static bool plain_name(const char *name)
{
	if (name[0] == '.' || name[0] == '\0')
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

static int read_asset(int dirfd, const char *name, asset_t *a)
{
	FILE *f = NULL;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > ASSET_MAX_BYTES ||
	    !(f = fdopen(fd, "rb"))) {
		int e = errno ? -errno : -EINVAL;
		if (fd >= 0)
			close(fd);
		return e;
	}
	a->len = (size_t)st.st_size;
	a->data = xmalloc(a->len + 1);
	size_t got = fread(a->data, 1, a->len, f);
	fclose(f);
	if (got != a->len) {
		free(a->data);
		a->data = NULL;
		return -EIO;
	}
	return 0;
}

int assets_load(const char *dir, assets_t **outp)
{
	DIR *d = opendir(dir);
	if (!d) {
		int e = -errno;
		log_error("admin: cannot read the pages in %s: %s (set [admin] assets_dir)", dir,
			  strerror(errno));
		return e;
	}
	assets_t *as = xcalloc(1, sizeof(*as));
	struct dirent *de;
	int r = 0;
	while (!r && (de = readdir(d))) {
		const char *ctype = type_of(de->d_name);
		if (!ctype || !plain_name(de->d_name))
			continue;
		if (as->n == ASSETS_MAX) {
			log_error("admin: over %d files in %s", ASSETS_MAX, dir);
			r = -E2BIG;
			break;
		}
		asset_t a = { .name = xstrdup(de->d_name), .ctype = ctype };
		errno = 0;
		r = read_asset(dirfd(d), de->d_name, &a);
		if (r) {
			log_error("admin: cannot read %s/%s: %s", dir, de->d_name, strerror(-r));
			free(a.name);
			break;
		}
		as->v = xrealloc(as->v, (as->n + 1) * sizeof(*as->v));
		as->v[as->n++] = a;
	}
	closedir(d);
	bool have_index = false;
	for (size_t i = 0; i < as->n; i++)
		have_index |= strcmp(as->v[i].name, "index.html") == 0;
	if (!r && !have_index) {
		log_error("admin: %s has no index.html (set [admin] assets_dir)", dir);
		r = -ENOENT;
	}
	if (r) {
		assets_free(as);
		return r;
	}
	log_info("admin: %zu pages and assets from %s", as->n, dir);
	*outp = as;
	return 0;
}

void assets_free(assets_t *as)
{
	if (!as)
		return;
	for (size_t i = 0; i < as->n; i++) {
		free(as->v[i].name);
		free(as->v[i].data);
	}
	free(as->v);
	free(as);
}

void assets_serve(assets_t *as, http_req_t *req)
{
	const char *path = http_req_path(req);
	const char *name = strcmp(path, "/") == 0 ? "index.html" : path + 1;
	assets_serve_name(as, req, path[0] == '/' ? name : "", 200);
}

void assets_serve_name(assets_t *as, http_req_t *req, const char *name, unsigned status)
{
	if (plain_name(name)) {
		for (size_t i = 0; i < as->n; i++) {
			if (strcmp(as->v[i].name, name) == 0) {
				http_respond(req, status, as->v[i].ctype, as->v[i].data, as->v[i].len);
				return;
			}
		}
	}
	static const char nf[] = "<!doctype html><title>Not found</title>"
				 "<p>No such page. <a href=\"/\">Overview</a></p>\n";
	http_respond(req, 404, "text/html; charset=utf-8", nf, sizeof(nf) - 1);
}
