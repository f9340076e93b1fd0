-- SPDX-License-Identifier: MIT
-- Traffic control (issue 19): per host a weight (1..1000, default 100) and a
-- drain flag; per route a balancing policy. lars-dns sends them to our
-- agents as new protobuf fields, omitted at their defaults, so a route left
-- at the defaults is byte-identical on the wire to what the original sends.
-- Every change goes through the route triggers: version bump, change record
-- and NOTIFY in the writer's own transaction, as for adding a host.

ALTER TABLE route_data
    ADD COLUMN weight integer NOT NULL DEFAULT 100 CHECK (weight BETWEEN 1 AND 1000),
    ADD COLUMN drain  boolean NOT NULL DEFAULT false;

-- The policy of a route. panic_threshold NULL: the agent's own
-- [loadbalance] panic_threshold; 0: off (the original behaviour).
ALTER TABLE cmdid_config
    ADD COLUMN panic_threshold      integer CHECK (panic_threshold BETWEEN 0 AND 100),
    ADD COLUMN max_ejection_percent integer NOT NULL DEFAULT 100
        CHECK (max_ejection_percent BETWEEN 1 AND 100),
    ADD COLUMN slow_start_s         integer NOT NULL DEFAULT 0
        CHECK (slow_start_s BETWEEN 0 AND 86400);

-- The change log says what changed: 'set' is a host's weight or drain
-- (detail: its weight, and whether it is drained, after the change), 'policy' a route's policy (no host; detail says
-- the new policy). Earlier rows keep their 'add' / 'del'.
ALTER TABLE route_change DROP CONSTRAINT route_change_action_check;
ALTER TABLE route_change
    ADD CONSTRAINT route_change_action_check CHECK (action IN ('add', 'del', 'set', 'policy')),
    ALTER COLUMN ip DROP NOT NULL,
    ALTER COLUMN port DROP NOT NULL,
    ADD COLUMN detail text NOT NULL DEFAULT '';

-- "weight 300, drained": the non-default traffic settings of a host, for
-- the change log ('' at the defaults).
CREATE FUNCTION lars_host_detail(w integer, d boolean) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT concat_ws(', ', CASE WHEN w <> 100 THEN 'weight ' || w END,
                           CASE WHEN d THEN 'drained' END)
$$;

-- As in 001, and an UPDATE that keeps a host where it is (its weight or
-- drain changed) is one 'set' record instead of a 'del' and an 'add'.
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
        INSERT INTO route_change (version, modid, cmdid, action, ip, port, detail)
        SELECT v, n.modid, n.cmdid, 'set', n.ip, n.port,
               'weight ' || n.weight || CASE WHEN n.drain THEN ', drained' ELSE '' END
          FROM new_rows n JOIN old_rows o USING (id)
         WHERE (n.modid, n.cmdid, n.ip, n.port) = (o.modid, o.cmdid, o.ip, o.port);
        INSERT INTO route_change (version, modid, cmdid, action, ip, port)
        SELECT v, o.modid, o.cmdid, 'del', o.ip, o.port
          FROM old_rows o JOIN new_rows n USING (id)
         WHERE (n.modid, n.cmdid, n.ip, n.port) <> (o.modid, o.cmdid, o.ip, o.port);
        INSERT INTO route_change (version, modid, cmdid, action, ip, port, detail)
        SELECT v, n.modid, n.cmdid, 'add', n.ip, n.port, lars_host_detail(n.weight, n.drain)
          FROM new_rows n JOIN old_rows o USING (id)
         WHERE (n.modid, n.cmdid, n.ip, n.port) <> (o.modid, o.cmdid, o.ip, o.port);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO route_change (version, modid, cmdid, action, ip, port)
        SELECT v, modid, cmdid, 'del', ip, port FROM old_rows;
    ELSE
        INSERT INTO route_change (version, modid, cmdid, action, ip, port, detail)
        SELECT v, modid, cmdid, 'add', ip, port, lars_host_detail(weight, drain) FROM new_rows;
    END IF;
    PERFORM pg_notify('lars_route', v::text);
    RETURN NULL;
END $$;

-- "panic_threshold 50, max_ejection_percent 20, slow_start 30 s": a policy
-- as the change log shows it ('default' when every field is).
CREATE FUNCTION lars_policy_detail(p integer, e integer, s integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(nullif(concat_ws(', ',
               CASE WHEN p IS NOT NULL THEN 'panic_threshold ' || p END,
               CASE WHEN e <> 100 THEN 'max_ejection_percent ' || e END,
               CASE WHEN s <> 0 THEN 'slow_start ' || s || ' s' END), ''), 'default')
$$;

-- A route's policy changed (a description alone is no route change).
CREATE FUNCTION lars_policy_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND
       (NEW.panic_threshold, NEW.max_ejection_percent, NEW.slow_start_s) IS NOT DISTINCT FROM
       (OLD.panic_threshold, OLD.max_ejection_percent, OLD.slow_start_s) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.panic_threshold IS NULL AND NEW.max_ejection_percent = 100
       AND NEW.slow_start_s = 0 THEN
        RETURN NULL;
    END IF;
    UPDATE route_version SET version = version + 1, changed_at = now()
     WHERE id = 1 RETURNING version INTO v;
    INSERT INTO route_change (version, modid, cmdid, action, detail)
    VALUES (v, NEW.modid, NEW.cmdid, 'policy',
            lars_policy_detail(NEW.panic_threshold, NEW.max_ejection_percent, NEW.slow_start_s));
    PERFORM pg_notify('lars_route', v::text);
    RETURN NULL;
END $$;

-- The version row lock first, as for route_data (003): a writer that
-- touches both tables cannot deadlock with one that touches either.
CREATE TRIGGER cmdid_config_lock BEFORE INSERT OR UPDATE ON cmdid_config
    FOR EACH STATEMENT EXECUTE FUNCTION lars_route_lock();
CREATE TRIGGER cmdid_config_policy AFTER INSERT OR UPDATE ON cmdid_config
    FOR EACH ROW EXECUTE FUNCTION lars_policy_changed();

-- lars-admin changes weights and drains (the console's route page).
GRANT UPDATE (weight, drain) ON route_data TO lars_service;
