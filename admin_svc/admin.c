// SPDX-License-Identifier: MIT
// lars-admin's HTTP side: security headers on every answer, login, then the
// JSON API or the pages.
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
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

static void admin_route(admin_t *a, http_req_t *req)
{
	const char *path = http_req_path(req);
	const char *method = http_req_method(req);

	if (strncmp(path, "/api/", 5) == 0) {
		api_handle(a, req);
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		http_req_add_header(req, "Allow", "GET, HEAD");
		admin_reply_error(req, 405, "pages are read with GET", NULL);
		return;
	}
	assets_serve(a->assets, req);
}

static void admin_on_auth(http_req_t *req, bool ok, void *arg)
{
	admin_t *a = arg;
	if (ok) {
		admin_route(a, req);
		return;
	}
	metrics_inc(a->c_login_failed);
	char challenge[192];
	snprintf(challenge, sizeof(challenge), "Basic realm=\"%s\", charset=\"UTF-8\"",
		 a->cfg.realm);
	http_req_add_header(req, "WWW-Authenticate", challenge);
	admin_reply_error(req, 401, "log in with a console user (larsctl admin-user add NAME)",
			  NULL);
}

static void admin_handle(http_req_t *req, void *arg)
{
	admin_t *a = arg;
	metrics_inc(a->c_requests);
	log_debug("admin: %s %s from %s", http_req_method(req), http_req_path(req),
		  http_req_peer(req));
	if (a->auth)
		auth_check(a->auth, req, admin_on_auth, a);
	else
		admin_route(a, req);
}

int admin_start(admin_t *a, uv_loop_t *loop, service_t *svc, metrics_t *m)
{
	a->loop = loop;
	a->svc = svc;
	/* Objects are built on the database threads: seed jansson's hash
	 * function once, here, before any of them runs. */
	json_object_seed(0);
	a->c_requests = metrics_counter(m, "lars_admin_requests_total",
					"HTTP requests to the console");
	a->c_login_failed = metrics_counter(m, "lars_admin_login_failed_total",
					    "Requests refused for missing or wrong credentials");
	a->c_forbidden = metrics_counter(m, "lars_admin_forbidden_total",
					 "Writes refused by the same-origin check");
	a->c_bad_input = metrics_counter(m, "lars_admin_bad_input_total",
					 "Requests refused as bad input (nothing changed)");
	a->c_writes = metrics_counter(m, "lars_admin_writes_total",
				      "Route and description changes made in the console");
	a->c_db_errors = metrics_counter(m, "lars_admin_db_errors_total",
					 "Requests that failed in the database");

	int r = assets_load(a->cfg.assets_dir, &a->assets);
	if (r)
		return r;
	if (a->cfg.users_file[0]) {
		r = auth_new(loop, a->cfg.users_file, &a->auth);
		if (r)
			return r;
	} else {
		log_warn("admin: no [admin] users_file: anyone on this machine may change routes");
	}

	pg_worker_opts_t wo = { .name = "admin-db", .conninfo = a->cfg.conninfo,
				.n_threads = (unsigned)a->cfg.db_threads,
				.statement_timeout_ms = 30000, .metrics = m };
	r = pg_worker_start(loop, &wo, &a->db);
	if (r)
		return r;
	http_server_opts_t ho = {
		.name = "admin", .ip = a->cfg.ip, .port = a->cfg.port,
		.max_conns = (unsigned)a->cfg.max_conns, .timeout_s = (unsigned)a->cfg.timeout_s,
		.request_timeout_s = (unsigned)a->cfg.request_timeout_s,
		.reserve = (unsigned)a->cfg.reserve_conns,
		.max_per_ip = (unsigned)a->cfg.max_conns_per_ip, .reuse_port = a->cfg.reuse_port,
		.max_body = (size_t)a->cfg.max_body, .headers = security_headers,
		.handler = admin_handle, .arg = a,
	};
	r = http_server_start(loop, &ho, &a->http);
	if (r)
		return r;
	char ports[32];
	snprintf(ports, sizeof(ports), "http=%d", http_server_port(a->http));
	service_ready_ports(svc, ports);
	return 0;
}

void admin_stop(admin_t *a)
{
	/* Queued jobs are answered (503) at once, running ones when they end;
	 * the HTTP server finishes once every request has its answer. */
	pg_worker_close(a->db);
	a->db = NULL;
	http_server_close(a->http);
	a->http = NULL;
}
