-- SPDX-License-Identifier: MIT
-- Acknowledged, exactly-once reports and call latency (issue 21).
--
-- report_agent_seq: per acknowledged agent (its random agent_id, stored as
-- the bigint of the unsigned 64-bit id) the last sequence number whose
-- counts are committed. lars-reporter locks an agent's row in the batch
-- transaction, skips the agent's part if this seq is at or above its
-- smallest seq in the batch (another instance stored it), and sets the seq
-- in the same transaction: a message sent twice is applied once.
CREATE TABLE report_agent_seq (
    agent_id   bigint PRIMARY KEY,
    caller     inet   NOT NULL,          -- the agent's machine, of its last batch
    seq        bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Call durations of a minute: how many calls had one, their sum, and how
-- many fell in each of the 13 fixed buckets (common/wire/msg.h: up to 0.5,
-- 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000 ms, and above); NULL
-- buckets when no call had a duration.

-- a + b, element by element (a NULL array counts as none).
CREATE FUNCTION lars_lat_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE
        ARRAY(SELECT coalesce(x, 0) + coalesce(y, 0)
              FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i) ORDER BY i) END
$$;

-- The element-wise sum of bucket arrays (NULLs skipped; NULL if all are).
CREATE AGGREGATE lars_lat_sum(bigint[]) (SFUNC = lars_lat_add, STYPE = bigint[]);

-- The @q quantile (0..1) in microseconds estimated from bucket counts @b:
-- within the bucket holding it, linear between the bucket's bounds; in the
-- last bucket (above 2 s) its lower bound. NULL without counts.
CREATE FUNCTION lars_lat_quantile(b bigint[], q float8) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    bounds constant float8[] := '{0,500,1000,2000,5000,10000,20000,50000,100000,200000,500000,1000000,2000000}';
    total float8 := 0;
    cum float8 := 0;
    target float8;
    n float8;
BEGIN
    FOR i IN 1 .. coalesce(array_length(b, 1), 0) LOOP
        total := total + coalesce(b[i], 0);
    END LOOP;
    IF total <= 0 THEN
        RETURN NULL;
    END IF;
    target := greatest(0, least(1, q)) * total;
    FOR i IN 1 .. array_length(b, 1) LOOP
        n := coalesce(b[i], 0);
        IF n > 0 AND cum + n >= target THEN
            IF i >= 13 THEN
                RETURN bounds[13]::bigint;
            END IF;
            RETURN round(bounds[i] + (bounds[i + 1] - bounds[i]) * (target - cum) / n)::bigint;
        END IF;
        cum := cum + n;
    END LOOP;
    RETURN NULL;
END
$$;

ALTER TABLE host_status_history
    ADD lat_count  bigint NOT NULL DEFAULT 0,
    ADD lat_sum_us bigint NOT NULL DEFAULT 0,
    ADD lat_buckets bigint[],
    ADD p50_us bigint GENERATED ALWAYS AS (lars_lat_quantile(lat_buckets, 0.5)) STORED,
    ADD p90_us bigint GENERATED ALWAYS AS (lars_lat_quantile(lat_buckets, 0.9)) STORED,
    ADD p99_us bigint GENERATED ALWAYS AS (lars_lat_quantile(lat_buckets, 0.99)) STORED;

-- As 005_service_role.sql: lars-reporter writes report_agent_seq, readers read it.
GRANT SELECT, INSERT, UPDATE, DELETE ON report_agent_seq TO lars_service;
GRANT EXECUTE ON FUNCTION lars_lat_add(bigint[], bigint[]),
    lars_lat_quantile(bigint[], float8) TO lars_service;
GRANT EXECUTE ON FUNCTION lars_lat_sum(bigint[]) TO lars_service;
