-- Schema version 13 (PostgreSQL): fund-safety alerts (资金安全监控), firing → resolved.
CREATE TABLE recon_alerts (
    id          TEXT   PRIMARY KEY,
    state       TEXT   NOT NULL,
    fired_at_ms BIGINT NOT NULL,
    body        TEXT   NOT NULL
);
CREATE INDEX recon_alerts_by_state ON recon_alerts (state, fired_at_ms);
