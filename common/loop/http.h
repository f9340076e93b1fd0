// SPDX-License-Identifier: MIT
// An HTTP server on the service's libuv loop: libmicrohttpd parses and
// answers, driven from the loop through its epoll descriptor, so handlers run
// on the loop thread and may answer later (after a database job).
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

typedef struct http_server http_server_t;
typedef struct http_req http_req_t;

/**
 * http_handler_fn - called on the loop thread once a request (and its body)
 * has arrived. It answers with http_respond(), now or later; a request not
 * answered when the handler returns waits (suspended, no timeout) until it is.
 */
typedef void (*http_handler_fn)(http_req_t *req, void *arg);

/** struct http_header - a response header; a NULL name ends a table. */
typedef struct http_header {
	const char *name;
	const char *value;
} http_header_t;

typedef struct http_server_opts {
	const char *name;       /* for log lines: "admin", "metrics" */
	const char *ip;         /* IPv4 or IPv6 literal */
	int port;               /* 0: any free port */
	unsigned max_conns;     /* 0: 64 */
	unsigned timeout_s;     /* idle connection timeout; 0: 30 */
	/* Slow clients: a request (headers and body) must have arrived within
	 * request_timeout_s of the accept or of the previous answer, however
	 * slowly it trickles in; at most max_conns - reserve connections may be
	 * waiting for theirs (the oldest is closed to make room for a new one),
	 * so the reserve is always there for requests that have arrived. */
	unsigned request_timeout_s; /* 0: 10 */
	unsigned reserve;       /* clamped to max_conns - 1 */
	unsigned max_per_ip;    /* connections from one address; 0: no limit */
	bool reuse_port;        /* share the port (SO_REUSEPORT); else a taken port fails */
	size_t max_body;        /* bigger bodies get 413; 0: none accepted */
	const http_header_t *headers; /* added to every response; must outlive the server */
	http_handler_fn handler;
	void *arg;              /* of handler and on_closed */
	/* Optional: after http_server_close(), once the server is freed (every
	 * request answered, every handle closed). */
	void (*on_closed)(void *arg);
} http_server_opts_t;

/**
 * http_server_start() - listen on opts->ip:port and serve from @loop.
 * Return: 0 and *@outp set, or a negative errno (logged; nothing is left
 * behind but what the loop frees in close callbacks, and *@outp untouched).
 */
int http_server_start(uv_loop_t *loop, const http_server_opts_t *opts, http_server_t **outp);
/** http_server_port() - the bound port (useful after port 0). */
int http_server_port(const http_server_t *s);
/**
 * http_server_close() - stop listening; requests still waiting for their
 * answer get it first (new ones on open connections get 503), then every
 * connection is closed and @s freed once its handles are closed (then
 * opts->on_closed runs). @s may be NULL.
 */
void http_server_close(http_server_t *s);

const char *http_req_method(const http_req_t *req);
/** http_req_path() - the path, without the query string. */
const char *http_req_path(const http_req_t *req);
/** http_req_header() - a request header's value, or NULL. */
const char *http_req_header(const http_req_t *req, const char *name);
/** http_req_query() - a query-string argument (decoded), or NULL. */
const char *http_req_query(const http_req_t *req, const char *name);
/** http_req_body() - the request body (NUL-terminated; *lenp its length). */
const char *http_req_body(const http_req_t *req, size_t *lenp);
/** http_req_peer() - "ip:port" of the client, for log lines. */
const char *http_req_peer(const http_req_t *req);
/**
 * http_req_basic_auth() - the Basic credentials the request carries:
 * malloc'd copies into *userp / *passp (caller frees), or false if none.
 */
bool http_req_basic_auth(const http_req_t *req, char **userp, char **passp);

/** http_req_add_header() - one more header for this request's response. */
void http_req_add_header(http_req_t *req, const char *name, const char *value);
/**
 * http_respond() - answer @req with @status and a copy of @body. Exactly once
 * per request; @req must not be used afterwards.
 */
void http_respond(http_req_t *req, unsigned status, const char *ctype,
		  const void *body, size_t len);
/** http_respond_take() - as http_respond(), taking ownership of malloc'd @body. */
void http_respond_take(http_req_t *req, unsigned status, const char *ctype,
		       char *body, size_t len);
