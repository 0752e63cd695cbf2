-- Access schema, version 4 (SQLite).
-- Idempotency records belong to the API key that made the request (tenant + key id +
-- Idempotency-Key): another key's request with the same Idempotency-Key is its own request,
-- authorised on its own. Each claim names the node that made it, so a restarted node can
-- release the claims its dead predecessor left. Records of the old shape had no key id and
-- could match no request any more, so they are dropped: every money-moving write underneath
-- is idempotent by its own ledger or order id, so a retry across the upgrade moves nothing
-- twice.
DROP TABLE idempotency;
CREATE TABLE idempotency (
    tenant       TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status       INTEGER,
    body         BLOB,
    created_at   INTEGER NOT NULL,
    node         TEXT NOT NULL,
    PRIMARY KEY (tenant, key_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created_at);
CREATE INDEX idempotency_in_flight_by_node ON idempotency (node) WHERE status IS NULL;

-- Installation-wide settings, written once (the id-namespace secret).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
