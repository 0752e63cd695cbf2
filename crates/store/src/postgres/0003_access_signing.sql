-- Access schema, version 3 (PostgreSQL): request signing.
ALTER TABLE api_keys ADD COLUMN signed BOOLEAN NOT NULL DEFAULT false;
CREATE TABLE nonces (
    key_id  TEXT NOT NULL,
    nonce   TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX nonces_by_age ON nonces (seen_at);
