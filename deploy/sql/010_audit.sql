-- SPDX-License-Identifier: MIT
-- The audit trail (issue 24.8): every change record says who made it, and
-- description edits are in the change log too.
--
-- actor: what the writer's session set as lars.actor (larsctl: "USER@HOST
-- (larsctl)", the console: "NAME (console, PEER)"), else the database role
-- and application_name of whoever wrote ("lars_owner (psql)"). Records from
-- before this migration have ''.
ALTER TABLE route_change ADD COLUMN actor text NOT NULL DEFAULT '';
ALTER TABLE route_change ALTER COLUMN actor SET DEFAULT
    coalesce(nullif(current_setting('lars.actor', true), ''),
             session_user || ' (' ||
             coalesce(nullif(current_setting('application_name', true), ''), 'unknown') || ')');

-- 'describe': a modid's or a route's description was set (detail: the new
-- text; cmdid -1 for a modid's). It changes no route: version 0, which no
-- route version or version range includes (lars-dns, larsctl watch skip it).
ALTER TABLE route_change DROP CONSTRAINT route_change_action_check;
ALTER TABLE route_change
    ADD CONSTRAINT route_change_action_check
        CHECK (action IN ('add', 'del', 'set', 'policy', 'describe'));

CREATE FUNCTION lars_description_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- (Two statements: modid_config's NEW has no cmdid to name.)
    IF TG_TABLE_NAME = 'cmdid_config' THEN
        INSERT INTO route_change (version, modid, cmdid, action, detail)
        VALUES (0, NEW.modid, NEW.cmdid, 'describe', NEW.description);
    ELSE
        INSERT INTO route_change (version, modid, cmdid, action, detail)
        VALUES (0, NEW.modid, -1, 'describe', NEW.description);
    END IF;
    RETURN NULL;
END $$;

-- Row triggers that fire only for a description that changed (a new id's
-- empty description, the common case of a bulk add, calls nothing).
CREATE TRIGGER modid_config_describe_insert AFTER INSERT ON modid_config
    FOR EACH ROW WHEN (NEW.description <> '') EXECUTE FUNCTION lars_description_changed();
CREATE TRIGGER modid_config_describe_update AFTER UPDATE OF description ON modid_config
    FOR EACH ROW WHEN (NEW.description IS DISTINCT FROM OLD.description)
    EXECUTE FUNCTION lars_description_changed();
CREATE TRIGGER cmdid_config_describe_insert AFTER INSERT ON cmdid_config
    FOR EACH ROW WHEN (NEW.description <> '') EXECUTE FUNCTION lars_description_changed();
CREATE TRIGGER cmdid_config_describe_update AFTER UPDATE OF description ON cmdid_config
    FOR EACH ROW WHEN (NEW.description IS DISTINCT FROM OLD.description)
    EXECUTE FUNCTION lars_description_changed();
