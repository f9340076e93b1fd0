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

-- 008's change trigger, in one pass: it joined the transition tables three
-- times and called lars_host_detail() per row, which made a 20,000-row
-- UPDATE take twice as long as before 008. Same records ('set', or 'del'
-- and 'add' of a host that moved, each move's pair together).
CREATE OR REPLACE FUNCTION lars_route_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
            RETURN NULL;
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM old_rows) THEN
        RETURN NULL;
    END IF;
    UPDATE route_version SET version = version + 1, changed_at = now()
     WHERE id = 1 RETURNING version INTO v;
    IF TG_OP = 'UPDATE' THEN
        -- One pass over the pairs: a host that stayed is one 'set' (its
        -- weight and drain now); one that moved is a 'del' and an 'add'.
        INSERT INTO route_change (version, modid, cmdid, action, ip, port, detail)
        SELECT v, x.modid, x.cmdid, x.action, x.ip, x.port, x.detail
          FROM new_rows n JOIN old_rows o USING (id),
          LATERAL (VALUES
              ('set', n.modid, n.cmdid, n.ip, n.port,
               'weight ' || n.weight || CASE WHEN n.drain THEN ', drained' ELSE '' END,
               (n.modid, n.cmdid, n.ip, n.port) = (o.modid, o.cmdid, o.ip, o.port)),
              ('del', o.modid, o.cmdid, o.ip, o.port, '',
               (n.modid, n.cmdid, n.ip, n.port) <> (o.modid, o.cmdid, o.ip, o.port)),
              ('add', n.modid, n.cmdid, n.ip, n.port,
               concat_ws(', ', CASE WHEN n.weight <> 100 THEN 'weight ' || n.weight END,
                               CASE WHEN n.drain THEN 'drained' END),
               (n.modid, n.cmdid, n.ip, n.port) <> (o.modid, o.cmdid, o.ip, o.port)))
            AS x (action, modid, cmdid, ip, port, detail, keep)
         WHERE x.keep;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO route_change (version, modid, cmdid, action, ip, port)
        SELECT v, modid, cmdid, 'del', ip, port FROM old_rows;
    ELSE
        INSERT INTO route_change (version, modid, cmdid, action, ip, port, detail)
        SELECT v, modid, cmdid, 'add', ip, port,
               concat_ws(', ', CASE WHEN weight <> 100 THEN 'weight ' || weight END,
                               CASE WHEN drain THEN 'drained' END)
          FROM new_rows;
    END IF;
    PERFORM pg_notify('lars_route', v::text);
    RETURN NULL;
END $$;
