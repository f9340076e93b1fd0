-- SPDX-License-Identifier: MIT
-- Call statistics from lars-reporter: the latest status per host and caller
-- (as the original kept it) and a per-minute history with additive counts,
-- so sum(succ + err) over the history equals what the agents sent.

CREATE TABLE host_status (
    modid      integer NOT NULL,
    cmdid      integer NOT NULL,
    ip         inet    NOT NULL,
    port       integer NOT NULL,
    caller     inet    NOT NULL,      -- the reporting agent's machine
    succ       bigint  NOT NULL,      -- of its latest report
    err        bigint  NOT NULL,
    overload   boolean NOT NULL,
    ts         timestamptz NOT NULL,  -- the agent's time of that report
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (modid, cmdid, ip, port, caller)
);

CREATE TABLE host_status_history (
    minute timestamptz NOT NULL,
    modid  integer NOT NULL,
    cmdid  integer NOT NULL,
    ip     inet    NOT NULL,
    port   integer NOT NULL,
    caller inet    NOT NULL,
    succ   bigint  NOT NULL,
    err    bigint  NOT NULL,
    PRIMARY KEY (minute, modid, cmdid, ip, port, caller)
);
CREATE INDEX host_status_history_route ON host_status_history (modid, cmdid, minute);
