// SPDX-License-Identifier: MIT
// larsctl route export, route import and route del --ip (issue 24.7): routes
// out to a file and back, and a machine taken out of every route, each
// change in one transaction (common/db/route_bulk.c).
//
// The file format is what export writes: CSV with the header
// "modid,cmdid,ip,port,weight,drain" (weight and drain may be left out:
// 100 and false), or JSON, an array of {"modid", "cmdid", "ip", "port",
// "weight", "drain"} (or the {"hosts": [...]} of `route list -o json`).
#include "larsctl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "output.h"
#include "route_bulk.h"
#include "status.h"
#include "xalloc.h"

/* A file of more hosts than this is refused (one transaction holds it). */
#define IMPORT_MAX_HOSTS 1000000

int route_export(const args_t *a)
{
	status_filter_t f;
	if (larsctl_parse_filter(a, 2, "route export", &f))
		return EXIT_USAGE;
	bool json = a->output && strcmp(a->output, "json") == 0;
	if (a->output && !json && strcmp(a->output, "csv") != 0)
		return larsctl_usage_error("route", "route export -o takes csv or json, not '%s'",
					   a->output);
	PGconn *conn = larsctl_connect(a->db);
	if (!conn)
		return EXIT_DB;
	status_host_t *rows;
	size_t n;
	int r = status_hosts(conn, &f, 0, &rows, &n);
	PQfinish(conn);
	if (r) {
		fprintf(stderr, "larsctl: cannot read the routes (has `larsctl migrate` been run?)\n");
		return EXIT_DB;
	}
	if (json) {
		route_hosts_out(OUT_JSON, false, rows, n);
	} else {
		printf("modid,cmdid,ip,port,weight,drain\n");
		for (size_t i = 0; i < n; i++)
			printf("%d,%d,%s,%d,%d,%s\n", rows[i].modid, rows[i].cmdid, rows[i].ip,
			       rows[i].port, rows[i].weight, rows[i].drain ? "true" : "false");
	}
	free(rows);
	return EXIT_OK;
}

/* ---- reading a file ---- */

typedef struct hostlist {
	route_host_t *h;
	int *line; /* where each came from: a CSV line, or a JSON array index + 1 */
	size_t n, cap;
} hostlist_t;

static void hostlist_push(hostlist_t *l, const route_host_t *h, int line)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->h = xreallocarray(l->h, l->cap, sizeof(*l->h));
		l->line = xreallocarray(l->line, l->cap, sizeof(*l->line));
	}
	l->h[l->n] = *h;
	l->line[l->n++] = line;
}

static void hostlist_free(hostlist_t *l)
{
	free(l->h);
	free(l->line);
}

static bool parse_drain(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "t", "1", "yes", "drained" };
	static const char *const no[] = { "false", "f", "0", "no", "-", "" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (strcasecmp(s, yes[i]) == 0)
			return *out = true;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (strcasecmp(s, no[i]) == 0)
			return !(*out = false);
	return false;
}

/*
 * One host from its fields as text (@weight, @drain NULL: the defaults).
 * Return: NULL, or the reason it is refused.
 */
static const char *host_from(const char *modid, const char *cmdid, const char *ip,
			     const char *port, const char *weight, const char *drain,
			     route_host_t *h)
{
	const char *why;
	memset(h, 0, sizeof(*h));
	if (route_parse(modid, cmdid, ip, port, &h->e, &why, NULL))
		return why;
	h->weight = ROUTE_WEIGHT_DEFAULT;
	if (weight && *weight && route_parse_weight(weight, &h->weight, &why))
		return why;
	if (drain && !parse_drain(drain, &h->drain))
		return "drain must be true or false";
	return NULL;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* CSV: 4 to 6 fields a line; '#' lines, empty lines and the header skipped. */
static int read_csv(FILE *in, const char *name, hostlist_t *l)
{
	char buf[1024];
	int line = 0;
	bool seen = false;
	while (fgets(buf, sizeof(buf), in)) {
		line++;
		if (!strchr(buf, '\n') && !feof(in)) {
			fprintf(stderr, "larsctl: %s:%d: line too long\n", name, line);
			return EXIT_USAGE;
		}
		char *s = trim(buf);
		if (!*s || *s == '#')
			continue;
		/* The header, if any, is the first line that is not a comment. */
		bool first = !seen;
		seen = true;
		if (first && strncasecmp(s, "modid", 5) == 0)
			continue;
		char *field[7];
		int nf = 0;
		for (char *p = s; nf < 7;) {
			field[nf++] = p;
			char *comma = strchr(p, ',');
			if (!comma)
				break;
			*comma = '\0';
			p = comma + 1;
		}
		if (nf < 4 || nf > 6) {
			fprintf(stderr, "larsctl: %s:%d: want modid,cmdid,ip,port[,weight[,drain]], "
					"found %d field%s\n", name, line, nf, nf == 1 ? "" : "s");
			return EXIT_USAGE;
		}
		for (int i = 0; i < nf; i++)
			field[i] = trim(field[i]);
		route_host_t h;
		const char *why = host_from(field[0], field[1], field[2], field[3],
					    nf > 4 ? field[4] : NULL, nf > 5 ? field[5] : NULL, &h);
		if (why) {
			fprintf(stderr, "larsctl: %s:%d: %s\n", name, line, why);
			return EXIT_USAGE;
		}
		if (l->n >= IMPORT_MAX_HOSTS) {
			fprintf(stderr, "larsctl: %s:%d: more than %d hosts\n", name, line,
				IMPORT_MAX_HOSTS);
			return EXIT_USAGE;
		}
		hostlist_push(l, &h, line);
	}
	if (ferror(in)) {
		fprintf(stderr, "larsctl: %s: %s\n", name, strerror(errno));
		return EXIT_USAGE;
	}
	return 0;
}

/* A JSON member as text for host_from(): numbers, strings, booleans. */
static const char *json_text(json_t *o, const char *key, char buf[64], bool *present)
{
	json_t *v = json_object_get(o, key);
	*present = v != NULL;
	if (!v)
		return NULL;
	if (json_is_integer(v))
		snprintf(buf, 64, "%lld", (long long)json_integer_value(v));
	else if (json_is_string(v))
		snprintf(buf, 64, "%s", json_string_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, 64, "%s", json_is_true(v) ? "true" : "false");
	else
		snprintf(buf, 64, "?"); /* refused by the parser below */
	return buf;
}

static int read_json(FILE *in, const char *name, hostlist_t *l)
{
	json_error_t err;
	json_t *doc = json_loadf(in, 0, &err);
	if (!doc) {
		fprintf(stderr, "larsctl: %s:%d: %s\n", name, err.line, err.text);
		return EXIT_USAGE;
	}
	json_t *arr = json_is_object(doc) ? json_object_get(doc, "hosts") : doc;
	if (!json_is_array(arr)) {
		fprintf(stderr, "larsctl: %s: want an array of hosts (or {\"hosts\": [...]})\n", name);
		json_decref(doc);
		return EXIT_USAGE;
	}
	if (json_array_size(arr) > IMPORT_MAX_HOSTS) {
		fprintf(stderr, "larsctl: %s: more than %d hosts\n", name, IMPORT_MAX_HOSTS);
		json_decref(doc);
		return EXIT_USAGE;
	}
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o) {
		char b[6][64];
		bool has[6];
		static const char *const keys[] = { "modid", "cmdid", "ip", "port", "weight", "drain" };
		const char *v[6];
		if (!json_is_object(o)) {
			fprintf(stderr, "larsctl: %s: host %zu: not an object\n", name, i + 1);
			json_decref(doc);
			return EXIT_USAGE;
		}
		for (int k = 0; k < 6; k++)
			v[k] = json_text(o, keys[k], b[k], &has[k]);
		route_host_t h;
		const char *why = NULL;
		for (int k = 0; k < 4 && !why; k++)
			if (!has[k])
				why = k == 0 ? "no modid" : k == 1 ? "no cmdid" : k == 2 ? "no ip" : "no port";
		if (!why)
			why = host_from(v[0], v[1], v[2], v[3], v[4], v[5], &h);
		if (why) {
			fprintf(stderr, "larsctl: %s: host %zu: %s\n", name, i + 1, why);
			json_decref(doc);
			return EXIT_USAGE;
		}
		hostlist_push(l, &h, (int)i + 1);
	}
	json_decref(doc);
	return 0;
}

static int host_cmp(const route_host_t *a, const route_host_t *b)
{
	if (a->e.modid != b->e.modid)
		return a->e.modid < b->e.modid ? -1 : 1;
	if (a->e.cmdid != b->e.cmdid)
		return a->e.cmdid < b->e.cmdid ? -1 : 1;
	int c = strcmp(a->e.ip, b->e.ip);
	if (c)
		return c;
	return a->e.port < b->e.port ? -1 : a->e.port > b->e.port;
}

/* Indexes of a hostlist sorted by host: duplicates side by side. */
static const hostlist_t *sort_list;
static int idx_cmp(const void *x, const void *y)
{
	size_t i = *(const size_t *)x, j = *(const size_t *)y;
	int c = host_cmp(&sort_list->h[i], &sort_list->h[j]);
	return c ? c : (i < j ? -1 : i > j);
}

/* 0, or EXIT_USAGE after naming the first host listed twice. */
static int check_twice(const hostlist_t *l, const char *name, bool json)
{
	size_t *idx = xcalloc(l->n ? l->n : 1, sizeof(*idx));
	for (size_t i = 0; i < l->n; i++)
		idx[i] = i;
	sort_list = l;
	qsort(idx, l->n, sizeof(*idx), idx_cmp);
	int r = 0;
	for (size_t k = 1; k < l->n && !r; k++) {
		const route_host_t *h = &l->h[idx[k]];
		if (host_cmp(h, &l->h[idx[k - 1]]) != 0)
			continue;
		fprintf(stderr, "larsctl: %s%s%d: %d/%d %s:%d is listed twice (first at %s %d)\n",
			name, json ? ": host " : ":", l->line[idx[k]], h->e.modid, h->e.cmdid, h->e.ip,
			h->e.port, json ? "host" : "line", l->line[idx[k - 1]]);
		r = EXIT_USAGE;
	}
	free(idx);
	return r;
}

/* ---- import and decommission as larsctl_write_fn ---- */

typedef struct import {
	const hostlist_t *l;
	bool dry_run;
	route_diff_t *diff;
	size_t n_diff;
	int64_t version;
} import_t;

static int import_work(PGconn *conn, void *arg)
{
	import_t *im = arg;
	free(im->diff);
	im->diff = NULL;
	return route_apply(conn, im->l->h, im->l->n, im->dry_run, &im->diff, &im->n_diff,
			   &im->version);
}

static void print_diff(const route_diff_t *d)
{
	const route_host_t *h = d->op == '-' ? &d->was : &d->now;
	printf("%c %d/%d %s:%d", d->op, h->e.modid, h->e.cmdid, h->e.ip, h->e.port);
	if (d->op == '+')
		printf(" weight %d%s", h->weight, h->drain ? " drained" : "");
	if (d->op == '~' && d->was.weight != d->now.weight)
		printf(" weight %d -> %d", d->was.weight, d->now.weight);
	if (d->op == '~' && d->was.drain != d->now.drain)
		printf(" %s", d->now.drain ? "drained" : "no longer drained");
	putchar('\n');
}

int route_import(const args_t *a)
{
	if (a->argc != 3)
		return larsctl_usage_error("route", "route import needs FILE (- for stdin)");
	const char *name = a->argv[2];
	FILE *in = strcmp(name, "-") == 0 ? stdin : fopen(name, "r");
	if (!in) {
		fprintf(stderr, "larsctl: %s: %s\n", name, strerror(errno));
		return EXIT_USAGE;
	}
	int c;
	while ((c = getc(in)) != EOF && isspace(c))
		;
	bool json = c == '[' || c == '{';
	if (c != EOF)
		ungetc(c, in);
	hostlist_t l = { 0 };
	int r = json ? read_json(in, name, &l) : read_csv(in, name, &l);
	if (in != stdin)
		fclose(in);
	if (!r && l.n == 0) {
		fprintf(stderr, "larsctl: %s: no hosts (to empty a route, use route del)\n", name);
		r = EXIT_USAGE;
	}
	if (!r)
		r = check_twice(&l, name, json);
	if (r) {
		hostlist_free(&l);
		return r;
	}
	import_t im = { .l = &l, .dry_run = a->dry_run };
	int attempts;
	int w = larsctl_write(a, import_work, &im, &attempts);
	hostlist_free(&l);
	if (w) {
		free(im.diff);
		if (w != -ENOTCONN || attempts > 0)
			fprintf(stderr, "larsctl: nothing changed (has `larsctl migrate` been run?)\n");
		return EXIT_DB;
	}
	size_t added = 0, removed = 0, changed = 0;
	for (size_t i = 0; i < im.n_diff; i++) {
		print_diff(&im.diff[i]);
		added += im.diff[i].op == '+';
		removed += im.diff[i].op == '-';
		changed += im.diff[i].op == '~';
	}
	free(im.diff);
	if (a->dry_run)
		printf("dry run: %zu to add, %zu to remove, %zu to change; nothing changed "
		       "(route version %lld)\n", added, removed, changed, (long long)im.version);
	else if (im.n_diff == 0)
		printf("the routes already match: nothing changed (route version %lld)\n",
		       (long long)im.version);
	else
		printf("%zu added, %zu removed, %zu changed in one transaction (route version %lld)\n",
		       added, removed, changed, (long long)im.version);
	if (attempts > 1)
		fprintf(stderr, "larsctl: the first try was cut off; the difference shown is "
				"the one the last try found\n");
	return EXIT_OK;
}

typedef struct decommission {
	const char *ip;
	int port;
	route_host_t *removed;
	size_t n;
	int64_t version;
} decommission_t;

static int decommission_work(PGconn *conn, void *arg)
{
	decommission_t *d = arg;
	free(d->removed);
	d->removed = NULL;
	return route_decommission(conn, d->ip, d->port, &d->removed, &d->n, &d->version);
}

static int removed_cmp(const void *x, const void *y)
{
	return host_cmp(x, y);
}

int route_del_ip(const args_t *a)
{
	if (a->argc != 2)
		return larsctl_usage_error("route", "route del --ip IP [--port PORT] takes no "
					   "MODID CMDID");
	route_entry_t e;
	const char *why;
	/* Checked as a host of some route would be: IPv4, port 1..65535. */
	if (route_parse("0", "0", a->ip, a->port ? a->port : "1", &e, &why, NULL))
		return larsctl_usage_error("route", "%s", why);
	decommission_t d = { .ip = e.ip, .port = a->port ? e.port : 0 };
	int attempts;
	if (larsctl_write(a, decommission_work, &d, &attempts)) {
		free(d.removed);
		return EXIT_DB;
	}
	qsort(d.removed, d.n, sizeof(*d.removed), removed_cmp);
	size_t routes = 0;
	for (size_t i = 0; i < d.n; i++) {
		const route_host_t *h = &d.removed[i];
		printf("removed %d/%d %s:%d\n", h->e.modid, h->e.cmdid, h->e.ip, h->e.port);
		if (i == 0 || h->e.modid != h[-1].e.modid || h->e.cmdid != h[-1].e.cmdid)
			routes++;
	}
	free(d.removed);
	char what[40];
	if (a->port)
		snprintf(what, sizeof(what), "%s:%d", e.ip, e.port);
	else
		snprintf(what, sizeof(what), "%s", e.ip);
	if (d.n == 0)
		fprintf(stderr, "larsctl: no route has %s; nothing changed (route version %lld)\n",
			what, (long long)d.version);
	else
		printf("%s removed from %zu route%s in one transaction (route version %lld)\n", what,
		       routes, routes == 1 ? "" : "s", (long long)d.version);
	if (attempts > 1 && d.n == 0)
		fprintf(stderr, "larsctl: the first try was cut off: it may have removed them\n");
	return EXIT_OK;
}
