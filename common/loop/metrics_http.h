// SPDX-License-Identifier: MIT
// The GET /metrics listener of a service.
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
