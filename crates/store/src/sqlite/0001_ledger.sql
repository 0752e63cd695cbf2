-- Ledger schema, version 1 (SQLite).
-- Ids are 16-byte big-endian blobs (byte order = numeric order). Amounts are minor units.
-- The journal is: assets, chart, accounts (opening fields), account_status_log, transfers.
-- Projections kept in step with it: accounts (balances, status), holds, entries.

CREATE TABLE assets (
    code  TEXT PRIMARY KEY,
    scale INTEGER NOT NULL,
    seq   INTEGER NOT NULL UNIQUE
);

CREATE TABLE chart (
    code  INTEGER PRIMARY KEY,
    name  TEXT NOT NULL,
    class INTEGER NOT NULL,
    seq   INTEGER NOT NULL UNIQUE
);

CREATE TABLE accounts (
    id              BLOB PRIMARY KEY,
    asset           TEXT NOT NULL,
    chart_code      INTEGER NOT NULL,
    rule_kind       INTEGER NOT NULL,
    rule_limit      INTEGER NOT NULL,
    metadata        TEXT NOT NULL,
    status          INTEGER NOT NULL,
    debits_pending  INTEGER NOT NULL CHECK (debits_pending >= 0),
    debits_posted   INTEGER NOT NULL CHECK (debits_posted >= 0),
    credits_pending INTEGER NOT NULL CHECK (credits_pending >= 0),
    credits_posted  INTEGER NOT NULL CHECK (credits_posted >= 0),
    opened_seq      INTEGER NOT NULL UNIQUE,
    opened_at       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE account_status_log (
    seq        INTEGER PRIMARY KEY,
    account_id BLOB NOT NULL,
    status     INTEGER NOT NULL
);

-- seq is the rowid: transfers are stored in journal order.
CREATE TABLE transfers (
    seq               INTEGER PRIMARY KEY,
    id                BLOB NOT NULL UNIQUE,
    kind              INTEGER NOT NULL,
    debit_account_id  BLOB NOT NULL,
    credit_account_id BLOB NOT NULL,
    asset             TEXT NOT NULL,
    amount            INTEGER NOT NULL CHECK (amount >= 0),
    pending_id        BLOB,
    expires_at        INTEGER,
    business_code     INTEGER NOT NULL,
    order_ref         TEXT NOT NULL,
    timestamp         INTEGER NOT NULL,
    fingerprint       BLOB NOT NULL
);

CREATE TABLE entries (
    account_id      BLOB NOT NULL,
    seq             INTEGER NOT NULL,
    side            INTEGER NOT NULL,
    transfer_id     BLOB NOT NULL,
    amount          INTEGER NOT NULL,
    debits_pending  INTEGER NOT NULL,
    debits_posted   INTEGER NOT NULL,
    credits_pending INTEGER NOT NULL,
    credits_posted  INTEGER NOT NULL,
    PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;
CREATE INDEX entries_by_seq ON entries (seq);

CREATE TABLE holds (
    pending_id        BLOB PRIMARY KEY,
    debit_account_id  BLOB NOT NULL,
    credit_account_id BLOB NOT NULL,
    asset             TEXT NOT NULL,
    amount            INTEGER NOT NULL,
    expires_at        INTEGER,
    state             INTEGER NOT NULL,
    business_code     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX holds_due ON holds (expires_at) WHERE state = 1 AND expires_at IS NOT NULL;

CREATE TABLE journal_batches (
    batch_seq INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    n_records INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
);
CREATE INDEX journal_batches_by_time ON journal_batches (timestamp);

CREATE TABLE journal_head (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    batch_seq      INTEGER NOT NULL,
    last_seq       INTEGER NOT NULL,
    last_timestamp INTEGER NOT NULL,
    hash           BLOB NOT NULL
);
INSERT INTO journal_head VALUES (1, 0, 0, 0, zeroblob(32));
