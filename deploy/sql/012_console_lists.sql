-- SPDX-License-Identifier: MIT
-- The console at fleet size (issue 25): its overview pages, sorts and
-- searches 100,000 routes without reading every host per request.
--
-- host_status_unhealthy: the latest reports that say a host is overloaded
-- or show errors, keyed by their error share (2 for an overloaded one). The
-- overview finds its unhealthy routes by a range scan of it (share above
-- [admin] fail_pct) and sums only those hosts' callers; the healthy rest is
-- read a page at a time in route order from route_data's unique index. A
-- host whose summed share is over the line has at least one caller's
-- report over it (a weighted mean exceeds a bound only if a term does), so
-- the scan misses none. Reports without errors (err = 0, not overloaded)
-- are not in it.
CREATE INDEX host_status_unhealthy ON host_status
    ((CASE WHEN overload THEN 2.0 ELSE err::float8 / nullif(succ + err, 0) END))
    WHERE overload OR err > 0;

-- Searching by address: every route that holds a host (the console's "find a
-- host", larsctl route del --ip), and the change log's records of it.
CREATE INDEX route_data_ip ON route_data (ip);
CREATE INDEX route_change_ip ON route_change (ip);
