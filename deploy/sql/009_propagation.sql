-- SPDX-License-Identifier: MIT
-- Route propagation (issue 20.3): every lars-dns writes, every few seconds,
-- one row per live connection (which agent, since when, how far behind) and
-- per pushed change how many agents got it and acknowledged it. Rows of a
-- lars-dns that stopped writing expire; `larsctl agents` and `larsctl route
-- show` read them, as the console does.

CREATE TABLE lars_dns_agent (
    instance        text        NOT NULL, -- the lars-dns: "host:port"
    conn_id         bigint      NOT NULL, -- its connection number
    peer            text        NOT NULL, -- the connection's address
    acks            boolean     NOT NULL, -- sent AgentHello: ours, acknowledges
    agent_id        bigint,               -- as in report_agent_seq (signed)
    host_name       text        NOT NULL DEFAULT '',
    caller          inet,
    connected_at    timestamptz NOT NULL,
    subscriptions   integer     NOT NULL,
    acked_version   bigint      NOT NULL DEFAULT 0,
    last_ack_at     timestamptz,
    pending         integer     NOT NULL DEFAULT 0, -- pushes not acknowledged
    lag_ms          bigint      NOT NULL DEFAULT 0, -- the oldest of them has waited
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, conn_id)
);
CREATE INDEX lars_dns_agent_updated ON lars_dns_agent (updated_at);

CREATE TABLE route_propagation (
    instance    text        NOT NULL,
    version     bigint      NOT NULL,
    modid       integer     NOT NULL,
    cmdid       integer     NOT NULL,
    pushed      integer     NOT NULL, -- to agents that acknowledge
    acked       integer     NOT NULL,
    no_ack      integer     NOT NULL, -- to original agents, which never do
    slowest_ms  bigint      NOT NULL, -- push -> acknowledgement
    pushed_at   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, version, modid, cmdid)
);
CREATE INDEX route_propagation_route ON route_propagation (modid, cmdid, version);
CREATE INDEX route_propagation_version ON route_propagation (version);
CREATE INDEX route_propagation_updated ON route_propagation (updated_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON lars_dns_agent, route_propagation TO lars_service;
