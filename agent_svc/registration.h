// SPDX-License-Identifier: MIT
// lars-agent's self-registration I/O (issue 23): apps' Register and
// Deregister requests (loopback only), the LeaseRequests to lars-dns and
// their answers, and the health checks (TCP connect, HTTP GET) the
// decisions in core/registry.c ask for.
#pragma once

#include <stdbool.h>

#include <uv.h>

#include "dispatch.h"
#include "metrics.h"
#include "registry.h"
#include "tcp_client.h"

typedef struct agent_reg agent_reg_t;

/** areg_new() - @cfg->caller fills a request's ip 0; NULL on a timer error (logged). */
agent_reg_t *areg_new(uv_loop_t *loop, const reg_cfg_t *cfg, metrics_t *m);
/** areg_set_dns() - where LeaseRequests go. */
void areg_set_dns(agent_reg_t *ar, tcp_client_t *dns);
/** areg_link() - the lars-dns connection is up with AgentHello sent, or lost. */
void areg_link(agent_reg_t *ar, bool up);
/** areg_on_udp() - dispatch handler for LARS_ID_REGISTER_REQ / LARS_ID_DEREGISTER_REQ. */
int areg_on_udp(peer_t *peer, void *user, int32_t msgid, const uint8_t *body, size_t len);
/** areg_on_lease() - dispatch handler for LARS_ID_LEASE_RESP on the lars-dns connection. */
int areg_on_lease(peer_t *peer, void *user, int32_t msgid, const uint8_t *body, size_t len);
/** areg_close() - stop; checks under way are cut off; freed once its handles are closed. */
void areg_close(agent_reg_t *ar);
