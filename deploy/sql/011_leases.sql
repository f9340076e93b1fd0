-- SPDX-License-Identifier: MIT
-- Self-registration (issue 23), its leases: a host an instance registered
-- through its agent is a route_data row like any other (its adds and
-- removals go through the route triggers: version, change record, NOTIFY)
-- with a lease here. Renewing a lease touches only this table, so renewals
-- are no route changes and reach no agent. lars-dns removes the hosts whose
-- lease ran out. A host an operator added has no lease and never expires.
--
-- route_id names the route_data row; no foreign key, so that TRUNCATE
-- route_data keeps working as before. A lease whose row an operator removed
-- (route del, import, TRUNCATE) matches nothing (ids are never reused) and
-- the expiry pass deletes it.
CREATE TABLE route_lease (
    route_id   bigint PRIMARY KEY,
    owner      bigint NOT NULL,   -- the agent id (report_agent_seq.agent_id's)
    ttl_s      integer NOT NULL CHECK (ttl_s BETWEEN 1 AND 86400),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX route_lease_expires ON route_lease (expires_at);
CREATE INDEX route_lease_owner ON route_lease (owner);

GRANT SELECT, INSERT, UPDATE, DELETE ON route_lease TO lars_service;
