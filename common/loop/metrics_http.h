// SPDX-License-Identifier: MIT
// The GET /metrics listener of a service, and the few other read-only pages a
// daemon serves beside it (the agent's GET /routes).
#pragma once

#include <stdbool.h>

#include <uv.h>

#include "metrics.h"

typedef struct metrics_http metrics_http_t;

/**
 * metrics_http_start() - serve GET /metrics on @ip:@port (0 = any free port).
 * Anything else gets 404/405; libmicrohttpd bounds requests (32 KiB, 10 s idle),
 * a request must arrive within 10 s. The port is ours alone unless @reuse_port.
 */
int metrics_http_start(uv_loop_t *loop, metrics_t *m, const char *ip, int port,
		       bool reuse_port, metrics_http_t **outp);
/** metrics_http_port() - the bound port (useful after port 0). */
int metrics_http_port(const metrics_http_t *h);
/** metrics_http_close() - stop listening and close every client; @h is freed once closed. */
void metrics_http_close(metrics_http_t *h);

/**
 * metrics_http_page_fn - a page: set *@ctypep (a static string; text/plain
 * if left) and *@bodyp (malloc'd, *@lenp bytes) and return the HTTP status;
 * a page that sets no body is answered 500.
 */
typedef int (*metrics_http_page_fn)(void *arg, const char **ctypep, char **bodyp, size_t *lenp);

/* Pages beside /metrics, process-wide (a daemon has one listener). */
#define METRICS_HTTP_PAGES_MAX 8

/**
 * metrics_http_page_add() - serve GET @path (a static string) with @fn on
 * the loop thread, from now on. Return: 0, or -ENOSPC (all pages taken).
 */
int metrics_http_page_add(const char *path, metrics_http_page_fn fn, void *arg);
/** metrics_http_page_del() - stop serving @path (404 from now on). */
void metrics_http_page_del(const char *path);
