-- SPDX-License-Identifier: MIT
-- host_status_history partitioned by day (issue 18.6): retention drops whole
-- days instead of a large DELETE, and each day is a table of its own.
--
-- One partition per UTC day, host_status_history_YYYYMMDD, covering
-- [day 00:00 UTC, next day 00:00 UTC), and a DEFAULT partition for rows of a
-- day without one (a report dated just ahead of the days created, say), so
-- a write never fails for want of a partition. lars-reporter calls
-- lars_history_maintain() at start and every hour: it creates the partitions
-- of today and the coming days, drops those wholly older than the retention
-- and removes expired rows from the DEFAULT partition. Readers
-- (larsctl status --history, the console) query the parent as before.
--
-- This migration moves every existing row into the new table, in its
-- transaction: nothing is lost, and on failure nothing changed.

ALTER TABLE host_status_history RENAME TO host_status_history_unpartitioned;
ALTER INDEX host_status_history_route RENAME TO host_status_history_unpartitioned_route;
ALTER TABLE host_status_history_unpartitioned
    RENAME CONSTRAINT host_status_history_pkey TO host_status_history_unpartitioned_pkey;

CREATE TABLE host_status_history (
    minute timestamptz NOT NULL,
    modid  integer NOT NULL,
    cmdid  integer NOT NULL,
    ip     inet    NOT NULL,
    port   integer NOT NULL,
    caller inet    NOT NULL,
    succ   bigint  NOT NULL,
    err    bigint  NOT NULL,
    lat_count  bigint NOT NULL DEFAULT 0,
    lat_sum_us bigint NOT NULL DEFAULT 0,
    lat_buckets bigint[],
    p50_us bigint GENERATED ALWAYS AS (lars_lat_quantile(lat_buckets, 0.5)) STORED,
    p90_us bigint GENERATED ALWAYS AS (lars_lat_quantile(lat_buckets, 0.9)) STORED,
    p99_us bigint GENERATED ALWAYS AS (lars_lat_quantile(lat_buckets, 0.99)) STORED,
    PRIMARY KEY (minute, modid, cmdid, ip, port, caller)
) PARTITION BY RANGE (minute);
CREATE INDEX host_status_history_route ON host_status_history (modid, cmdid, minute);
CREATE TABLE host_status_history_default PARTITION OF host_status_history DEFAULT;

-- The partition of the UTC day holding @day (created when missing; rows of
-- that day waiting in the DEFAULT partition moved into it). Return: whether
-- it was created.
CREATE FUNCTION lars_history_partition(day date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    name text := 'host_status_history_' || to_char(day, 'YYYYMMDD');
    lo timestamptz := (day::timestamp AT TIME ZONE 'UTC');
    hi timestamptz := ((day + 1)::timestamp AT TIME ZONE 'UTC');
    cols constant text := 'minute, modid, cmdid, ip, port, caller, succ, err, '
                          'lat_count, lat_sum_us, lat_buckets';
BEGIN
    IF to_regclass(quote_ident(name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- A new partition may not cover rows the DEFAULT partition holds:
    -- take them out first and put them back through the parent.
    CREATE TEMP TABLE IF NOT EXISTS lars_history_moving
        (LIKE host_status_history_default INCLUDING DEFAULTS) ON COMMIT DROP;
    EXECUTE format('WITH moved AS (DELETE FROM host_status_history_default '
                   'WHERE minute >= $1 AND minute < $2 RETURNING %s) '
                   'INSERT INTO lars_history_moving (%s) SELECT %s FROM moved',
                   cols, cols, cols) USING lo, hi;
    EXECUTE format('CREATE TABLE %I PARTITION OF host_status_history '
                   'FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    EXECUTE format('INSERT INTO host_status_history (%s) SELECT %s FROM lars_history_moving',
                   cols, cols);
    TRUNCATE lars_history_moving;
    RETURN true;
END
$$;

-- Partitions for today and the next @ahead_days days (UTC); drop the days
-- wholly older than @keep_days (rows of a day go together, once its end is
-- past the cutoff: retention is rounded up to whole days) and remove such
-- rows from the DEFAULT partition. One caller at a time (an advisory lock:
-- several reporters may run it). Return: partitions created, dropped, and
-- history rows removed.
CREATE FUNCTION lars_history_maintain(ahead_days integer, keep_days integer,
                                      OUT created integer, OUT dropped integer,
                                      OUT rows_removed bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    cutoff timestamptz := now() - make_interval(days => keep_days);
    part record;
    n bigint;
BEGIN
    created := 0;
    dropped := 0;
    rows_removed := 0;
    IF ahead_days < 0 OR ahead_days > 366 OR keep_days < 1 THEN
        RAISE EXCEPTION 'lars_history_maintain: ahead_days 0..366, keep_days >= 1';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('lars_history_maintain'));
    FOR i IN 0 .. ahead_days LOOP
        IF lars_history_partition(today + i) THEN
            created := created + 1;
        END IF;
    END LOOP;
    FOR part IN
        SELECT c.relname,
               to_date(substr(c.relname, length('host_status_history_') + 1), 'YYYYMMDD') AS day
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'host_status_history'::regclass
          AND c.relname ~ '^host_status_history_[0-9]{8}$'
    LOOP
        IF ((part.day + 1)::timestamp AT TIME ZONE 'UTC') <= cutoff THEN
            EXECUTE format('SELECT count(*) FROM %I', part.relname) INTO n;
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
            rows_removed := rows_removed + n;
        END IF;
    END LOOP;
    DELETE FROM host_status_history_default WHERE minute < cutoff;
    GET DIAGNOSTICS n = ROW_COUNT;
    rows_removed := rows_removed + n;
END
$$;

-- Every day the old table holds gets its partition, then its rows move over.
DO $$
DECLARE
    d date;
BEGIN
    FOR d IN SELECT DISTINCT (minute AT TIME ZONE 'UTC')::date
             FROM host_status_history_unpartitioned LOOP
        PERFORM lars_history_partition(d);
    END LOOP;
END $$;
INSERT INTO host_status_history (minute, modid, cmdid, ip, port, caller, succ, err,
                                 lat_count, lat_sum_us, lat_buckets)
SELECT minute, modid, cmdid, ip, port, caller, succ, err, lat_count, lat_sum_us, lat_buckets
FROM host_status_history_unpartitioned;
DROP TABLE host_status_history_unpartitioned;
SELECT lars_history_maintain(3, 36500);

-- As 005_service_role.sql: the reporter writes and prunes through the
-- parent and the functions above; partitions are reached through the parent.
GRANT SELECT ON host_status_history TO lars_service;
GRANT INSERT, UPDATE, DELETE ON host_status_history TO lars_service;
REVOKE ALL ON FUNCTION lars_history_partition(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION lars_history_maintain(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lars_history_maintain(integer, integer) TO lars_service;
