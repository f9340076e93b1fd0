// SPDX-License-Identifier: MIT
// lars-admin's HTTP side: security headers on every answer, login, then the
// JSON API or the pages.
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "net.h"
#include "userfile.h"
#include "xalloc.h"

/* On every response. The pages load nothing from elsewhere and run no
 * inline script, so the policy can be strict. */
static const http_header_t security_headers[] = {
	{ "Content-Security-Policy",
	  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
	  "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
	  "form-action 'self'" },
	{ "X-Content-Type-Options", "nosniff" },
	{ "X-Frame-Options", "DENY" },
	{ "Referrer-Policy", "same-origin" },
	{ "Cache-Control", "no-store" },
	{ NULL, NULL },
};

void admin_reply_json(http_req_t *req, unsigned status, json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(obj);
	if (!text) {
		static const char oom[] = "{\"error\":\"cannot encode the answer\"}";
		http_respond(req, 500, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	http_respond_take(req, status, "application/json", text, strlen(text));
}

void admin_reply_error(http_req_t *req, unsigned status, const char *msg, const char *field)
{
	json_t *o = json_object();
	json_object_set_new(o, "error", json_string(msg));
	if (field)
		json_object_set_new(o, "field", json_string(field));
	admin_reply_json(req, status, o);
}

/* What a page without a login gets: the login form (401, no Basic
 * challenge, so a browser shows the form, not its own dialog). */
static void reply_login_page(admin_t *a, http_req_t *req)
{
	assets_serve_name(a->assets, req, "login.html", 401);
}

/* The pages the login form needs, served to anyone. */
static bool public_asset(const char *path)
{
	return strcmp(path, "/login.html") == 0 || strcmp(path, "/login.js") == 0 ||
	       strcmp(path, "/style.css") == 0;
}

static bool is_page(const char *path)
{
	size_t n = strlen(path);
	return strcmp(path, "/") == 0 || (n > 5 && strcmp(path + n - 5, ".html") == 0);
}

static void iso_time(int64_t unix_s, char out[32])
{
	time_t t = (time_t)unix_s;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "?");
}

/* {"user", "role", "via", "expires_at"}: the signed-in user (/api/whoami, a login). */
static json_t *who_json(const auth_who_t *who)
{
	static const char *const via[] = { "none", "basic", "session" };
	json_t *o = json_object();
	json_object_set_new(o, "user", who->user[0] ? json_string(who->user) : json_null());
	json_object_set_new(o, "role", json_string(who->read_only ? "read" : "write"));
	json_object_set_new(o, "via", json_string(via[who->via]));
	char when[32];
	if (who->expires_unix_s)
		iso_time(who->expires_unix_s, when);
	json_object_set_new(o, "expires_at", who->expires_unix_s ? json_string(when) : json_null());
	return o;
}

static void admin_route(admin_t *a, http_req_t *req, const auth_who_t *who)
{
	const char *path = http_req_path(req);
	const char *method = http_req_method(req);

	if (strcmp(path, "/api/whoami") == 0) {
		admin_reply_json(req, 200, who_json(who));
		return;
	}
	if (strncmp(path, "/api/", 5) == 0) {
		api_handle(a, req, who);
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		http_req_add_header(req, "Allow", "GET, HEAD");
		admin_reply_error(req, 405, "pages are read with GET", NULL);
		return;
	}
	assets_serve(a->assets, req);
}

static void reply_throttled(admin_t *a, http_req_t *req, unsigned retry_s)
{
	metrics_inc(a->c_login_throttled);
	char secs[16], msg[128];
	snprintf(secs, sizeof(secs), "%u", retry_s ? retry_s : 1);
	snprintf(msg, sizeof(msg), "too many failed logins; try again in %s s "
		 "(the password was not checked)", secs);
	http_req_add_header(req, "Retry-After", secs);
	admin_reply_error(req, 429, msg, NULL);
}

static void admin_on_auth(http_req_t *req, auth_result_t res, unsigned retry_s,
			  const auth_who_t *who, void *arg)
{
	admin_t *a = arg;
	if (res == AUTH_OK) {
		admin_route(a, req, who);
		return;
	}
	if (res == AUTH_THROTTLED) {
		reply_throttled(a, req, retry_s);
		return;
	}
	/* A browser's first request carries no credentials (it waits for the
	 * challenge): that is no failed login. */
	if (res == AUTH_FAILED)
		metrics_inc(a->c_login_failed);
	if (res == AUTH_SESSION_ENDED) {
		/* The browser forgets the dead cookie. */
		char cookie[256];
		auth_cookie(a->auth, req, "", cookie, sizeof(cookie));
		http_req_add_header(req, "Set-Cookie", cookie);
	}
	if (is_page(http_req_path(req))) {
		reply_login_page(a, req);
		return;
	}
	/* The Basic challenge is for curl and the like; a page's own fetch()
	 * (Sec-Fetch-Mode other than navigate) gets none, or the browser would
	 * stop it for its password dialog instead of letting the page show the
	 * login form. */
	const char *mode = http_req_header(req, "Sec-Fetch-Mode");
	if (!mode || strcmp(mode, "navigate") == 0) {
		char challenge[192];
		snprintf(challenge, sizeof(challenge), "Basic realm=\"%s\", charset=\"UTF-8\"",
			 a->cfg.realm);
		http_req_add_header(req, "WWW-Authenticate", challenge);
	}
	admin_reply_error(req, 401, res == AUTH_SESSION_ENDED
			  ? "the session ended (unused too long, expired or logged out): log in again"
			  : "log in with a console user (larsctl admin-user add NAME)", NULL);
}

/* After the login form's password check: the session cookie and who it is. */
static void admin_on_login(http_req_t *req, auth_result_t res, unsigned retry_s,
			   const auth_who_t *who, void *arg)
{
	admin_t *a = arg;
	if (res == AUTH_THROTTLED) {
		reply_throttled(a, req, retry_s);
		return;
	}
	if (res != AUTH_OK) {
		metrics_inc(a->c_login_failed);
		admin_reply_error(req, 401, "wrong user name or password", NULL);
		return;
	}
	char cookie[256];
	auth_cookie(a->auth, req, who->token, cookie, sizeof(cookie));
	http_req_add_header(req, "Set-Cookie", cookie);
	explicit_bzero(cookie, sizeof(cookie));
	admin_reply_json(req, 200, who_json(who));
}

/* POST /api/login {"user", "password"} and POST /api/logout: before any
 * other login check (the form is how one gets in). True if answered. */
static bool admin_login_paths(admin_t *a, http_req_t *req)
{
	const char *path = http_req_path(req);
	bool login = strcmp(path, "/api/login") == 0, logout = strcmp(path, "/api/logout") == 0;
	if (!login && !logout)
		return false;
	if (strcmp(http_req_method(req), "POST") != 0) {
		http_req_add_header(req, "Allow", "POST");
		admin_reply_error(req, 405, login ? "log in with POST" : "log out with POST", NULL);
		return true;
	}
	const char *why;
	if (!auth_same_origin(req, &why)) {
		metrics_inc(a->c_forbidden);
		admin_reply_error(req, 403, why, NULL);
		return true;
	}
	if (!a->auth) {
		admin_reply_error(req, 404, "this console has no users_file: there is no login", NULL);
		return true;
	}
	if (logout) {
		bool ended = auth_logout(a->auth, req);
		char cookie[256];
		auth_cookie(a->auth, req, "", cookie, sizeof(cookie));
		http_req_add_header(req, "Set-Cookie", cookie);
		json_t *o = json_object();
		json_object_set_new(o, "result", json_string(ended ? "logged out" : "no session"));
		admin_reply_json(req, 200, o);
		return true;
	}
	const char *ctype = http_req_header(req, "Content-Type");
	if (!ctype || strncasecmp(ctype, "application/json", 16) != 0) {
		admin_reply_error(req, 415, "send the body as Content-Type: application/json", NULL);
		return true;
	}
	size_t len;
	const char *text = http_req_body(req, &len);
	json_t *body = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	const char *user = json_string_value(json_object_get(body, "user"));
	const char *pass = json_string_value(json_object_get(body, "password"));
	if (!user || !*user || !pass || !*pass || strlen(user) > USERFILE_NAME_MAX ||
	    strlen(pass) > USERFILE_PASS_MAX) {
		const char *field = !user || !*user ? "user" : "password"; /* before body goes */
		json_decref(body);
		admin_reply_error(req, 400, "give a user name and a password", field);
		return true;
	}
	auth_login(a->auth, req, user, pass, admin_on_login, a);
	/* The parsed body holds the password: wipe it before it is freed. */
	explicit_bzero((char *)pass, strlen(pass));
	json_decref(body);
	return true;
}

/* Splits a Host header into its lower-cased name (brackets of an IPv6
 * literal dropped) and port (80 when none is given). */
static bool host_split(const char *host, char *name, size_t cap, long *portp)
{
	const char *end, *colon;
	if (host[0] == '[') {
		end = strchr(host, ']');
		if (!end)
			return false;
		host++;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] && !colon)
			return false;
	} else {
		colon = strchr(host, ':');
		end = colon ? colon : host + strlen(host);
		if (colon && strchr(colon + 1, ':'))
			return false;
	}
	size_t n = (size_t)(end - host);
	if (n == 0 || n >= cap)
		return false;
	for (size_t i = 0; i < n; i++)
		name[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] + 32 : host[i]);
	name[n] = '\0';
	*portp = 80;
	if (colon) {
		char *e;
		errno = 0;
		*portp = strtol(colon + 1, &e, 10);
		if (errno || *e || e == colon + 1 || *portp < 0 || *portp > 65535)
			return false;
	}
	return true;
}

/* Two IP literals naming the same address? (false if either is none) */
static bool same_ip(const char *x, const char *y, bool *x_is_ipp)
{
	struct sockaddr_storage sx, sy;
	*x_is_ipp = net_addr(x, 0, &sx) == 0;
	if (!*x_is_ipp || net_addr(y, 0, &sy) || sx.ss_family != sy.ss_family)
		return false;
	if (sx.ss_family == AF_INET)
		return ((struct sockaddr_in *)&sx)->sin_addr.s_addr ==
		       ((struct sockaddr_in *)&sy)->sin_addr.s_addr;
	return memcmp(&((struct sockaddr_in6 *)&sx)->sin6_addr,
		      &((struct sockaddr_in6 *)&sy)->sin6_addr, 16) == 0;
}

static bool is_wildcard(const char *ip)
{
	return strcmp(ip, "0.0.0.0") == 0 || strcmp(ip, "::") == 0;
}

bool admin_host_ok(const admin_t *a, const char *host)
{
	char name[256];
	long port;
	if (!host || !host_split(host, name, sizeof(name), &port))
		return false;
	/* A configured name is ours on any port (a proxy in front may use
	 * another): a rebinding page's own name is never among them. */
	for (size_t i = 0; i < a->n_names; i++)
		if (strcmp(a->names[i], name) == 0)
			return true;
	if (port != a->port)
		return false;
	bool is_ip;
	if (same_ip(name, a->cfg.ip, &is_ip))
		return true;
	if (is_ip && is_wildcard(a->cfg.ip))
		return true; /* bound to every address: any of ours by number */
	return strcmp(name, "localhost") == 0 && net_is_loopback(a->cfg.ip);
}

static void names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* [admin] server_names: comma-separated host names or IP addresses (no
 * ports). Return: 0 and the lower-cased list in *namesp / *np, or -EINVAL
 * with *@whyp set (and nothing allocated). */
static int names_parse(const char *list, char ***namesp, size_t *np, const char **whyp)
{
	char **names = NULL;
	size_t n_names = 0;
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, ", \t");
		char name[256];
		if (n >= sizeof(name)) {
			*whyp = "a name in [admin] server_names is over 255 characters";
			names_free(names, n_names);
			return -EINVAL;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		p += n;
		struct sockaddr_storage ss;
		bool ok = net_addr(name, 0, &ss) == 0;
		if (!ok) {
			ok = true;
			for (size_t i = 0; ok && i < n; i++) {
				char ch = name[i];
				ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
				     (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
			}
		}
		if (!ok) {
			*whyp = "[admin] server_names takes host names or IP addresses, "
				"comma-separated, without ports";
			names_free(names, n_names);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++)
			if (name[i] >= 'A' && name[i] <= 'Z')
				name[i] = (char)(name[i] + 32);
		names = xrealloc(names, (n_names + 1) * sizeof(*names));
		names[n_names++] = xstrdup(name);
	}
	*namesp = names;
	*np = n_names;
	return 0;
}

/**
 * admin_check_cfg() - the checks of an [admin] section after loading.
 * @cfg: the loaded configuration.
 * @path: its file, for the log lines.
 *
 * Without a users file anyone who reaches the port may change routes, so
 * only this machine may then; the reserve must leave room; the realm goes
 * into a quoted header; server_names must parse.
 * Return: 0, or -EINVAL after logging why.
 */
int admin_check_cfg(const admin_cfg_t *cfg, const char *path)
{
	if (!cfg->users_file[0] && !net_is_loopback(cfg->ip)) {
		log_error("%s: [admin] ip = %s is not a loopback address: set [admin] users_file "
			  "(larsctl admin-user add NAME) before serving other machines",
			  path, cfg->ip);
		return -EINVAL;
	}
	if (cfg->reserve_conns >= cfg->max_conns) {
		log_error("%s: [admin] reserve_conns = %d must be below max_conns = %d", path,
			  cfg->reserve_conns, cfg->max_conns);
		return -EINVAL;
	}
	for (const char *p = cfg->realm; *p; p++) {
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
			log_error("%s: [admin] realm may not hold quotes, backslashes or control "
				  "characters", path);
			return -EINVAL;
		}
	}
	char **names;
	size_t n;
	const char *why;
	if (names_parse(cfg->server_names, &names, &n, &why)) {
		log_error("%s: %s", path, why);
		return -EINVAL;
	}
	names_free(names, n);
	return 0;
}

static void admin_handle(http_req_t *req, void *arg)
{
	admin_t *a = arg;
	metrics_inc(a->c_requests);
	log_debug("admin: %s %s from %s", http_req_method(req), http_req_path(req),
		  http_req_peer(req));
	/* The Host is the client's to choose: a page on a name that resolves to
	 * us (DNS rebinding) would pass a same-origin check made against it. */
	const char *host = http_req_header(req, "Host");
	if (!admin_host_ok(a, host)) {
		metrics_inc(a->c_bad_host);
		log_debug("admin: Host '%.64s' from %s refused", host ? host : "",
			  http_req_peer(req));
		if (!host) {
			admin_reply_error(req, 400, "a request needs a Host header", NULL);
		} else {
			char msg[256];
			snprintf(msg, sizeof(msg), "this console answers to %s%s%s:%d%s or a "
				 "name in [admin] server_names, not to this Host",
				 strchr(a->cfg.ip, ':') ? "[" : "", a->cfg.ip,
				 strchr(a->cfg.ip, ':') ? "]" : "", a->port,
				 net_is_loopback(a->cfg.ip) ? " (or localhost)" : "");
			admin_reply_error(req, 421, msg, NULL);
		}
		return;
	}
	if (admin_login_paths(a, req))
		return;
	if (a->auth && public_asset(http_req_path(req)) &&
	    (strcmp(http_req_method(req), "GET") == 0 || strcmp(http_req_method(req), "HEAD") == 0)) {
		assets_serve(a->assets, req);
		return;
	}
	if (a->auth) {
		auth_check(a->auth, req, admin_on_auth, a);
		return;
	}
	const auth_who_t anyone = { .via = AUTH_VIA_NONE };
	admin_route(a, req, &anyone);
}

static void admin_free(admin_t *a)
{
	auth_free(a->auth);
	assets_free(a->assets);
	names_free(a->names, a->n_names);
	free(a);
}

/* Every request is answered (so no database job or password check can call
 * back any more): the console may go. */
static void admin_on_http_closed(void *arg)
{
	admin_free(arg);
}

/**
 * admin_new() - the console: pages, users, database workers, HTTP server.
 * @loop: the service's loop.
 * @svc: the service (unused: every service part is made the same way).
 * @cfg: the checked configuration (admin_check_cfg()); copied.
 * @m: the registry for the console's counters.
 * @on_ready: called with @user and "http=PORT" once listening.
 * @user: for @on_ready.
 * @outp: gets the console, only on success.
 *
 * Return: 0, or a negative errno (logged; everything made is undone).
 */
/* /readyz: serving, and the last database call reached the database. */
static bool admin_ready(void *arg, char *why, size_t cap)
{
	const admin_t *a = arg;
	if (!a->db_failing)
		return true;
	snprintf(why, cap, "the database is unavailable");
	return false;
}

int admin_new(uv_loop_t *loop, service_t *svc, const admin_cfg_t *cfg, metrics_t *m,
	      void (*on_ready)(void *user, const char *ports), void *user, admin_t **outp)
{
	admin_t *a = xcalloc(1, sizeof(*a));
	a->loop = loop;
	a->cfg = *cfg;
	const char *why;
	int r = names_parse(cfg->server_names, &a->names, &a->n_names, &why);
	if (r) {
		log_error("admin: %s", why);
		goto fail;
	}
	/* Objects are built on the database threads: seed jansson's hash
	 * function once, here, before any of them runs. */
	json_object_seed(0);
	a->c_requests = metrics_counter(m, "lars_admin_requests_total",
					"HTTP requests to the console");
	a->c_login_failed = metrics_counter(m, "lars_admin_login_failed_total",
					    "Requests refused for wrong credentials (not for none)");
	a->c_login_throttled = metrics_counter(m, "lars_admin_login_throttled_total",
					       "Logins refused unchecked (429) after failures");
	a->c_bad_host = metrics_counter(m, "lars_admin_bad_host_total",
					"Requests refused for a Host that is not this console");
	a->c_forbidden = metrics_counter(m, "lars_admin_forbidden_total",
					 "Writes refused by the same-origin check");
	a->c_bad_input = metrics_counter(m, "lars_admin_bad_input_total",
					 "Requests refused as bad input (nothing changed)");
	a->c_writes = metrics_counter(m, "lars_admin_writes_total",
				      "Route and description changes made in the console");
	a->c_db_errors = metrics_counter(m, "lars_admin_db_errors_total",
					 "Requests that failed in the database");

	r = assets_load(a->cfg.assets_dir, &a->assets);
	if (r)
		goto fail;
	if (a->cfg.users_file[0]) {
		r = auth_new(loop, a->cfg.users_file, &a->cfg, &a->auth);
		if (r)
			goto fail;
	} else {
		log_warn("admin: no [admin] users_file: anyone on this machine may change routes");
	}

	pg_worker_opts_t wo = { .name = "admin-db", .conninfo = a->cfg.conninfo,
				.n_threads = (unsigned)a->cfg.db_threads,
				.statement_timeout_ms = 30000, .metrics = m };
	r = pg_worker_start(loop, &wo, &a->db);
	if (r)
		goto fail;
	http_server_opts_t ho = {
		.name = "admin", .ip = a->cfg.ip, .port = a->cfg.port,
		.max_conns = (unsigned)a->cfg.max_conns, .timeout_s = (unsigned)a->cfg.timeout_s,
		.request_timeout_s = (unsigned)a->cfg.request_timeout_s,
		.reserve = (unsigned)a->cfg.reserve_conns,
		.max_per_ip = (unsigned)a->cfg.max_conns_per_ip, .reuse_port = a->cfg.reuse_port,
		.max_body = (size_t)a->cfg.max_body, .headers = security_headers,
		.handler = admin_handle, .arg = a, .on_closed = admin_on_http_closed,
	};
	r = http_server_start(loop, &ho, &a->http);
	if (r)
		goto fail;
	a->port = http_server_port(a->http);
	char ports[32];
	snprintf(ports, sizeof(ports), "http=%d", a->port);
	on_ready(user, ports);
	service_set_ready_check(svc, admin_ready, a);
	*outp = a;
	return 0;
fail:
	/* No job was submitted: the workers go on their own. */
	pg_worker_close(a->db);
	admin_free(a);
	return r;
}

/**
 * admin_close() - shut the console down.
 * @a: the console; freed once the HTTP server is closed.
 *
 * Queued jobs are answered (503) at once, running ones when they end; the
 * HTTP server finishes once every request has its answer.
 */
void admin_close(admin_t *a)
{
	pg_worker_close(a->db);
	a->db = NULL;
	http_server_close(a->http);
	a->http = NULL;
}
