-- SPDX-License-Identifier: MIT
-- The console at fleet size (issue 25): its overview pages, sorts and
-- searches 100,000 routes without reading every host per request.
--
-- host_status_unhealthy: the latest reports that say a host is overloaded or
-- saw errors. The overview finds its unhealthy routes (listed first) through
-- it and sums only those hosts' callers; the healthy rest is read a page at a
-- time in route order from route_data's unique index. Only columns the
-- reporter's upsert rarely changes are in it: a healthy host's report keeps
-- err = 0 and overload false, so its row is updated in place (HOT) as before,
-- and only reports of unhealthy hosts pay for the index.
CREATE INDEX host_status_unhealthy ON host_status (modid, cmdid, ip, port)
    WHERE overload OR err > 0;

-- Searching by address: every route that holds a host (the console's "find a
-- host", larsctl route del --ip), and the change log's records of it.
CREATE INDEX route_data_ip ON route_data (ip);
CREATE INDEX route_change_ip ON route_change (ip);
