-- Access schema, version 2 (PostgreSQL). Same shape as SQLite's access.db.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    mode       TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    hash       BYTEA NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE owners (
    kind   SMALLINT NOT NULL,
    id     BYTEA NOT NULL,
    tenant TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE idempotency (
    tenant       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    status       INTEGER,
    body         BYTEA,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);
