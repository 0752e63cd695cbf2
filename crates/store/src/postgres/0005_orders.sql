-- Schema version 5 (PostgreSQL): the payment core's orders, their outbox and parties.
CREATE TABLE orders (
    id                  TEXT    PRIMARY KEY,
    tenant              TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    reference           TEXT    NOT NULL,
    request_fingerprint TEXT    NOT NULL,
    parent              TEXT,
    status              TEXT    NOT NULL,
    is_final            BIGINT  NOT NULL,
    customer            TEXT    NOT NULL,
    merchant            TEXT,
    amount_minor        BIGINT  NOT NULL,
    fee_minor           BIGINT  NOT NULL,
    body                TEXT    NOT NULL,
    version             BIGINT  NOT NULL,
    created_at_ms       BIGINT  NOT NULL,
    updated_at_ms       BIGINT  NOT NULL
);
CREATE INDEX orders_by_tenant ON orders (tenant, created_at_ms DESC, id DESC);
CREATE INDEX orders_unfinished ON orders (updated_at_ms) WHERE is_final = 0;
CREATE INDEX orders_by_parent ON orders (parent) WHERE parent IS NOT NULL;

CREATE TABLE order_events (
    seq           BIGSERIAL PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    order_id      TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL
);
CREATE INDEX order_events_by_tenant ON order_events (tenant, seq);

CREATE TABLE parties (
    tenant        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (tenant, kind, id)
);
