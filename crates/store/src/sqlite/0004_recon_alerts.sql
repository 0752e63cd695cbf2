-- Schema version 4 (SQLite, recon.db): fund-safety alerts (资金安全监控), firing → resolved.
CREATE TABLE recon_alerts (
    id          TEXT    PRIMARY KEY,
    state       TEXT    NOT NULL,
    fired_at_ms INTEGER NOT NULL,
    body        TEXT    NOT NULL
);
CREATE INDEX recon_alerts_by_state ON recon_alerts (state, fired_at_ms);
