-- Schema version 1 (SQLite, orders.db): the payment core's orders, their outbox and parties.
CREATE TABLE orders (
    id                  TEXT    PRIMARY KEY,
    tenant              TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    reference           TEXT    NOT NULL,
    request_fingerprint TEXT    NOT NULL,
    parent              TEXT,
    status              TEXT    NOT NULL,
    is_final            INTEGER NOT NULL,
    customer            TEXT    NOT NULL,
    merchant            TEXT,
    amount_minor        INTEGER NOT NULL,
    fee_minor           INTEGER NOT NULL,
    body                TEXT    NOT NULL,
    version             INTEGER NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    updated_at_ms       INTEGER NOT NULL
);
CREATE INDEX orders_by_tenant ON orders (tenant, created_at_ms DESC, id DESC);
CREATE INDEX orders_unfinished ON orders (updated_at_ms) WHERE is_final = 0;
CREATE INDEX orders_by_parent ON orders (parent) WHERE parent IS NOT NULL;

CREATE TABLE order_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant        TEXT    NOT NULL,
    order_id      TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX order_events_by_tenant ON order_events (tenant, seq);

CREATE TABLE parties (
    tenant        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind, id)
);
