-- Schema version 3 (SQLite, recon.db): runs of the internal cross-checks (业务数据核对).
CREATE TABLE recon_check_runs (
    id            TEXT    PRIMARY KEY,
    started_at_ms INTEGER NOT NULL,
    body          TEXT    NOT NULL
);
CREATE INDEX recon_check_runs_by_start ON recon_check_runs (started_at_ms);
