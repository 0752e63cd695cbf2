-- Access schema, version 2 (SQLite): request signing.
ALTER TABLE api_keys ADD COLUMN signed INTEGER NOT NULL DEFAULT 0;
CREATE TABLE nonces (
    key_id  TEXT NOT NULL,
    nonce   TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;
CREATE INDEX nonces_by_age ON nonces (seen_at);
