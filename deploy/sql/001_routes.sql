-- SPDX-License-Identifier: MIT
-- Routes: which ip:port hosts serve (modid, cmdid), with a version that every
-- change bumps, a change log, and NOTIFY lars_route so lars-dns reacts at once.
-- Applied by `larsctl migrate`; never edit an applied migration, add a new one.

CREATE TABLE modid_config (
    modid       integer PRIMARY KEY CHECK (modid >= 0),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cmdid_config (
    modid       integer NOT NULL REFERENCES modid_config (modid),
    cmdid       integer NOT NULL CHECK (cmdid >= 0),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (modid, cmdid)
);

CREATE TABLE route_data (
    id         bigserial PRIMARY KEY,
    modid      integer NOT NULL CHECK (modid >= 0),
    cmdid      integer NOT NULL CHECK (cmdid >= 0),
    ip         inet    NOT NULL CHECK (family(ip) = 4 AND masklen(ip) = 32),
    port       integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (modid, cmdid, ip, port)
);

-- One row; bumped once per statement that changes route_data.
CREATE TABLE route_version (
    id         integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    version    bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO route_version (id, version) VALUES (1, 0);

CREATE TABLE route_change (
    id         bigserial PRIMARY KEY,
    version    bigint  NOT NULL,
    modid      integer NOT NULL,
    cmdid      integer NOT NULL,
    action     text    NOT NULL CHECK (action IN ('add', 'del')),
    ip         inet    NOT NULL,
    port       integer NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX route_change_version ON route_change (version);

-- Any writer (larsctl, the console, psql by hand) goes through these
-- triggers: version bump, change records and the notification all commit or
-- roll back with the data, in the writer's own transaction. (TRUNCATE fires
-- no row triggers; lars-dns's periodic full reload catches that too.)
CREATE FUNCTION lars_route_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    -- A statement that changed no row (ON CONFLICT DO NOTHING) is no change.
    -- (Nested: a transition table may only be named where it exists.)
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
            RETURN NULL;
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM old_rows) THEN
        RETURN NULL;
    END IF;
    UPDATE route_version SET version = version + 1, changed_at = now()
     WHERE id = 1 RETURNING version INTO v;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO route_change (version, modid, cmdid, action, ip, port)
        SELECT v, modid, cmdid, 'del', ip, port FROM old_rows;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO route_change (version, modid, cmdid, action, ip, port)
        SELECT v, modid, cmdid, 'add', ip, port FROM new_rows;
    END IF;
    PERFORM pg_notify('lars_route', v::text);
    RETURN NULL;
END $$;

CREATE TRIGGER route_data_insert AFTER INSERT ON route_data
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lars_route_changed();
CREATE TRIGGER route_data_update AFTER UPDATE ON route_data
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lars_route_changed();
CREATE TRIGGER route_data_delete AFTER DELETE ON route_data
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lars_route_changed();
