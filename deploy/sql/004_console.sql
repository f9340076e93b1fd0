-- SPDX-License-Identifier: MIT
-- The console shows each route's last change: the newest route_change row
-- of one (modid, cmdid), found by this index instead of a scan of the log.
CREATE INDEX route_change_route ON route_change (modid, cmdid, version);
