-- Schema version 10 (PostgreSQL): reconciliation's statements, runs, breaks with their
-- audit trail, and the loss register. Bodies are the port's records as JSON; the columns
-- beside them are what queries filter and order on.
CREATE TABLE recon_statements (
    id             TEXT    PRIMARY KEY,
    channel        TEXT    NOT NULL,
    business_day   BIGINT  NOT NULL,
    version        BIGINT  NOT NULL,
    sha256         TEXT    NOT NULL,
    received_at_ms BIGINT  NOT NULL,
    body           TEXT    NOT NULL,
    bytes          BYTEA   NOT NULL,
    UNIQUE (channel, business_day, version),
    UNIQUE (channel, business_day, sha256)
);
CREATE TABLE recon_runs (
    id            TEXT    PRIMARY KEY,
    channel       TEXT    NOT NULL,
    business_day  BIGINT  NOT NULL,
    started_at_ms BIGINT  NOT NULL,
    body          TEXT    NOT NULL
);
CREATE INDEX recon_runs_by_day ON recon_runs (channel, business_day, started_at_ms);
CREATE TABLE recon_breaks (
    id            TEXT    PRIMARY KEY,
    channel       TEXT    NOT NULL,
    business_day  BIGINT  NOT NULL,
    class         TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    version       BIGINT  NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    updated_at_ms BIGINT  NOT NULL,
    body          TEXT    NOT NULL
);
CREATE INDEX recon_breaks_by_day ON recon_breaks (channel, business_day, state);
CREATE INDEX recon_breaks_by_state ON recon_breaks (state, updated_at_ms);
CREATE INDEX recon_breaks_by_created ON recon_breaks (created_at_ms, id);
CREATE TABLE recon_break_events (
    seq      BIGSERIAL PRIMARY KEY,
    break_id TEXT    NOT NULL,
    at_ms    BIGINT  NOT NULL,
    body     TEXT    NOT NULL
);
CREATE INDEX recon_break_events_by_break ON recon_break_events (break_id, seq);
CREATE TABLE recon_losses (
    id                TEXT    PRIMARY KEY,
    written_off_at_ms BIGINT  NOT NULL,
    body              TEXT    NOT NULL
);
CREATE INDEX recon_losses_by_time ON recon_losses (written_off_at_ms, id);
