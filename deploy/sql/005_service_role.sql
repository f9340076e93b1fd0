-- SPDX-License-Identifier: MIT
-- The services connect as a role with only what they use, not as the owner
-- of the tables (and never as a superuser, who can run programs on the
-- database server with COPY ... TO PROGRAM). Group role lars_service gets:
--   lars-dns       reads the routes, prunes route_change ([dns] change_log_days)
--   lars-reporter  writes host_status and host_status_history, prunes the
--                  history (and needs TEMP on the database, a default of PUBLIC)
--   lars-admin     reads everything, writes routes and descriptions; the
--                  route triggers run as the writer, so route_version and
--                  route_change too
-- Log in as a role that is a member: GRANT lars_service TO your_login_role.
-- Creating lars_service needs CREATEROLE; without it, a superuser creates it
-- first (deploy/README.md, "Database roles"). A later migration adding a
-- table grants on it here too.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lars_service') THEN
        BEGIN
            CREATE ROLE lars_service NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role lars_service does not exist and % may not create it', current_user
                USING HINT = 'as a superuser: CREATE ROLE lars_service NOLOGIN; then migrate again (deploy/README.md, "Database roles")';
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO lars_service', current_schema());
END $$;

GRANT SELECT ON modid_config, cmdid_config, route_data, route_version, route_change,
    host_status, host_status_history TO lars_service;
GRANT INSERT, UPDATE ON modid_config, cmdid_config TO lars_service;
GRANT INSERT, DELETE ON route_data TO lars_service;
GRANT UPDATE ON route_version TO lars_service;
GRANT INSERT, DELETE ON route_change TO lars_service;
GRANT INSERT, UPDATE, DELETE ON host_status, host_status_history TO lars_service;
GRANT USAGE ON SEQUENCE route_data_id_seq, route_change_id_seq TO lars_service;
