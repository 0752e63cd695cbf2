-- Ledger schema, version 1 (PostgreSQL). Same shape as the SQLite schema; see there.

CREATE TABLE assets (
    code  TEXT PRIMARY KEY,
    scale SMALLINT NOT NULL,
    seq   BIGINT NOT NULL UNIQUE
);

CREATE TABLE chart (
    code  BIGINT PRIMARY KEY,
    name  TEXT NOT NULL,
    class SMALLINT NOT NULL,
    seq   BIGINT NOT NULL UNIQUE
);

CREATE TABLE accounts (
    id              BYTEA PRIMARY KEY,
    asset           TEXT NOT NULL,
    chart_code      BIGINT NOT NULL,
    rule_kind       SMALLINT NOT NULL,
    rule_limit      BIGINT NOT NULL,
    metadata        TEXT NOT NULL,
    status          SMALLINT NOT NULL,
    debits_pending  BIGINT NOT NULL CHECK (debits_pending >= 0),
    debits_posted   BIGINT NOT NULL CHECK (debits_posted >= 0),
    credits_pending BIGINT NOT NULL CHECK (credits_pending >= 0),
    credits_posted  BIGINT NOT NULL CHECK (credits_posted >= 0),
    opened_seq      BIGINT NOT NULL UNIQUE,
    opened_at       BIGINT NOT NULL
);

CREATE TABLE account_status_log (
    seq        BIGINT PRIMARY KEY,
    account_id BYTEA NOT NULL,
    status     SMALLINT NOT NULL
);

CREATE TABLE transfers (
    seq               BIGINT PRIMARY KEY,
    id                BYTEA NOT NULL UNIQUE,
    kind              SMALLINT NOT NULL,
    debit_account_id  BYTEA NOT NULL,
    credit_account_id BYTEA NOT NULL,
    asset             TEXT NOT NULL,
    amount            BIGINT NOT NULL CHECK (amount >= 0),
    pending_id        BYTEA,
    expires_at        BIGINT,
    business_code     BIGINT NOT NULL,
    order_ref         TEXT NOT NULL,
    timestamp         BIGINT NOT NULL,
    fingerprint       BYTEA NOT NULL
);

CREATE TABLE entries (
    account_id      BYTEA NOT NULL,
    seq             BIGINT NOT NULL,
    side            SMALLINT NOT NULL,
    transfer_id     BYTEA NOT NULL,
    amount          BIGINT NOT NULL,
    debits_pending  BIGINT NOT NULL,
    debits_posted   BIGINT NOT NULL,
    credits_pending BIGINT NOT NULL,
    credits_posted  BIGINT NOT NULL,
    PRIMARY KEY (account_id, seq)
);
CREATE INDEX entries_by_seq ON entries (seq);

CREATE TABLE holds (
    pending_id        BYTEA PRIMARY KEY,
    debit_account_id  BYTEA NOT NULL,
    credit_account_id BYTEA NOT NULL,
    asset             TEXT NOT NULL,
    amount            BIGINT NOT NULL,
    expires_at        BIGINT,
    state             SMALLINT NOT NULL,
    business_code     BIGINT NOT NULL
);
CREATE INDEX holds_due ON holds (expires_at) WHERE state = 1 AND expires_at IS NOT NULL;

CREATE TABLE journal_batches (
    batch_seq BIGINT PRIMARY KEY,
    first_seq BIGINT NOT NULL,
    n_records BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash      BYTEA NOT NULL
);
CREATE INDEX journal_batches_by_time ON journal_batches (timestamp);

CREATE TABLE journal_head (
    id             SMALLINT PRIMARY KEY CHECK (id = 1),
    batch_seq      BIGINT NOT NULL,
    last_seq       BIGINT NOT NULL,
    last_timestamp BIGINT NOT NULL,
    hash           BYTEA NOT NULL
);
INSERT INTO journal_head VALUES (1, 0, 0, 0, decode(repeat('00', 32), 'hex'));
