-- SPDX-License-Identifier: MIT
-- Every writer of route_data takes the route_version row lock before its
-- rows: the change trigger took it after them, so two multi-statement
-- transactions could deadlock (one holding the version, the other a row).
-- TRUNCATE now bumps the version and notifies too; having no change records,
-- it makes lars-dns read everything.

CREATE FUNCTION lars_route_lock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM route_version WHERE id = 1 FOR UPDATE;
    RETURN NULL;
END $$;

CREATE TRIGGER route_data_lock
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON route_data
    FOR EACH STATEMENT EXECUTE FUNCTION lars_route_lock();

CREATE FUNCTION lars_route_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    UPDATE route_version SET version = version + 1, changed_at = now()
     WHERE id = 1 RETURNING version INTO v;
    PERFORM pg_notify('lars_route', v::text);
    RETURN NULL;
END $$;

CREATE TRIGGER route_data_truncate AFTER TRUNCATE ON route_data
    FOR EACH STATEMENT EXECUTE FUNCTION lars_route_truncated();

-- lars-dns prunes the change log by age ([dns] change_log_days).
CREATE INDEX route_change_changed_at ON route_change (changed_at);
