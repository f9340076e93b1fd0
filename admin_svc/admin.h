// SPDX-License-Identifier: MIT
// lars-admin: the web console. Pages and a JSON API over HTTP
// (common/loop/http.c); reads and writes run on PostgreSQL worker threads.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "http.h"
#include "metrics.h"
#include "pg_worker.h"
#include "service.h"

typedef struct admin_cfg {
	char ip[64];
	int port;
	int max_conns;
	int timeout_s;          /* idle HTTP connection timeout */
	int request_timeout_s;  /* a whole request must arrive within */
	int reserve_conns;      /* kept for requests that have arrived */
	int max_conns_per_ip;   /* 0: no limit */
	bool reuse_port;        /* share the port (SO_REUSEPORT) */
	int max_body;           /* bytes of a POST body */
	int db_threads;
	int status_max_age_s;   /* older host reports count as "no report" */
	double fail_pct;        /* a host whose latest error share is above is failing */
	char users_file[1024];  /* "" = no login (loopback only) */
	char assets_dir[1024];
	char realm[128];
	char server_names[1024]; /* more names the Host header may give */
	int session_idle_s;     /* a login session unused this long ends */
	int session_max_s;      /* and any session this long after its login */
	char conninfo[1024];
	service_common_cfg_t common;
} admin_cfg_t;

typedef struct auth auth_t;
typedef struct assets assets_t;

typedef struct admin {
	uv_loop_t *loop;
	admin_cfg_t cfg;
	http_server_t *http;
	pg_worker_t *db; /* NULL once closing */
	auth_t *auth;    /* NULL: no users file */
	assets_t *assets;
	char **names;   /* [admin] server_names, lower case */
	size_t n_names;
	int port;       /* bound */
	metrics_counter_t *c_requests;
	metrics_counter_t *c_login_failed;
	metrics_counter_t *c_login_throttled;
	metrics_counter_t *c_bad_host;
	metrics_counter_t *c_forbidden;
	metrics_counter_t *c_bad_input;
	metrics_counter_t *c_writes;
	metrics_counter_t *c_db_errors;
	bool db_failing; /* the last database call failed to reach it (readiness) */
} admin_t;

/* ---- admin.c: the HTTP side ---- */

/** admin_check_cfg() - refuse an [admin] section the console cannot serve safely. */
int admin_check_cfg(const admin_cfg_t *cfg, const char *path);
/** admin_new() - the pages, the users, the database workers and the HTTP server. */
int admin_new(uv_loop_t *loop, service_t *svc, const admin_cfg_t *cfg, metrics_t *m,
	      void (*on_ready)(void *user, const char *ports), void *user, admin_t **outp);
/** admin_close() - answer what is pending, stop listening, close the workers; frees @a. */
void admin_close(admin_t *a);
/** admin_host_ok() - is @host (a Host header) this console's address or name? */
bool admin_host_ok(const admin_t *a, const char *host);

/** admin_reply_json() - answer with @obj (taken) as JSON. */
void admin_reply_json(http_req_t *req, unsigned status, json_t *obj);
/** admin_reply_error() - {"error": @msg, "field": @field (if not NULL)}. */
void admin_reply_error(http_req_t *req, unsigned status, const char *msg, const char *field);

/* ---- api.c: /api/ ---- */

/* ---- auth.c: who may get in, and the same-origin rule for writes ---- */

typedef enum auth_result {
	AUTH_OK,
	AUTH_NO_CREDENTIALS, /* the request carried none (a browser's first) */
	AUTH_FAILED,         /* wrong or unusable credentials */
	AUTH_THROTTLED,      /* too many failures: not checked, retry later */
	AUTH_SESSION_ENDED,  /* its session cookie ran out (idle, expired, logged out) */
} auth_result_t;

enum auth_via {
	AUTH_VIA_NONE,    /* no users file: anyone on loopback */
	AUTH_VIA_BASIC,   /* HTTP Basic (curl, the API) */
	AUTH_VIA_SESSION, /* the login form's session cookie */
};

/* The cookie of a login session. */
#define AUTH_COOKIE "lars_session"

/** Who a request is (valid during the callback; copy what is kept). */
typedef struct auth_who {
	char user[65];   /* "" with AUTH_VIA_NONE */
	bool read_only;  /* role read: every write is refused (403) */
	enum auth_via via;
	int64_t expires_unix_s; /* AUTH_VIA_SESSION: when it ends if unused (else 0) */
	char token[65];  /* auth_login(): the new session's token, else "" */
} auth_who_t;

/* @retry_after_s: with AUTH_THROTTLED, when to try again; @who with AUTH_OK. */
typedef void (*auth_done_fn)(http_req_t *req, auth_result_t res, unsigned retry_after_s,
			     const auth_who_t *who, void *arg);

/** api_handle() - answer a request under /api/ from @who (authenticated already). */
void api_handle(admin_t *a, http_req_t *req, const auth_who_t *who);

/** auth_new() - load @path (must exist, not world-readable); sessions per @cfg. */
int auth_new(uv_loop_t *loop, const char *path, const admin_cfg_t *cfg, auth_t **outp);
void auth_free(auth_t *au);
/**
 * auth_check() - are @req's Basic credentials right? @done runs on the loop,
 * at once when a recent success is cached, else after crypt(3) ran on the
 * thread pool. Failures are logged with the peer address (and the user
 * name only if it is a user). An address or name with too many recent
 * failures gets AUTH_THROTTLED at once, its password not looked at
 * (throttle.h says who waits for what).
 */
void auth_check(auth_t *au, http_req_t *req, auth_done_fn done, void *arg);
/**
 * auth_login() - the login form: check @user and @pass as auth_check()
 * checks Basic credentials (the same back-off), and on success open a
 * session (@who->token for the cookie). @user and @pass are the caller's.
 */
void auth_login(auth_t *au, http_req_t *req, const char *user, const char *pass,
		auth_done_fn done, void *arg);
/** auth_logout() - end the session @req's cookie names (false: it had none). */
bool auth_logout(auth_t *au, http_req_t *req);
/**
 * auth_cookie() - the Set-Cookie value for @token ("" clears the cookie):
 * HttpOnly, SameSite=Strict, Path=/, Max-Age session_max, Secure when @req
 * came through TLS (X-Forwarded-Proto: https, or an https Origin).
 */
void auth_cookie(const auth_t *au, http_req_t *req, const char *token, char *out, size_t cap);

/**
 * auth_same_origin() - may this POST change anything? Its Origin (or
 * Referer) must be this console and Sec-Fetch-Site not cross-site.
 */
bool auth_same_origin(http_req_t *req, const char **whyp);

/* ---- static.c: the pages ---- */

/** assets_load() - read every page and asset of @dir into memory. */
int assets_load(const char *dir, assets_t **outp);
void assets_free(assets_t *as);
/** assets_serve() - answer GET/HEAD of a page or asset (404 if unknown). */
void assets_serve(assets_t *as, http_req_t *req);
/** assets_serve_name() - answer with asset @name and @status (404 if unknown). */
void assets_serve_name(assets_t *as, http_req_t *req, const char *name, unsigned status);
