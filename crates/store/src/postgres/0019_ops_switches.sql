-- Run-time switches: each switch's current version, and every version (for rollback).
CREATE TABLE ops_switches (
    key TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    body TEXT NOT NULL
);

CREATE TABLE ops_switch_versions (
    key TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (key, version)
);
