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
    asset               TEXT    NOT NULL,
    amount_minor        BIGINT  NOT NULL,
    fee_minor           BIGINT  NOT NULL,
    -- A payment's second funding leg (points, or the FX funding asset's amount) or what a
    -- refund returns of it.
    leg_minor        BIGINT  NOT NULL DEFAULT 0,
    -- 1 for a refund taken from the merchant's settled takings (settlement skips it).
    from_settled        BIGINT  NOT NULL DEFAULT 0,
    body                TEXT    NOT NULL,
    version             BIGINT  NOT NULL,
    created_at_ms       BIGINT  NOT NULL,
    updated_at_ms       BIGINT  NOT NULL
);
CREATE INDEX orders_by_tenant ON orders (tenant, created_at_ms DESC, id DESC);
CREATE INDEX orders_unfinished ON orders (updated_at_ms) WHERE is_final = 0;
CREATE INDEX orders_by_parent ON orders (parent) WHERE parent IS NOT NULL;
CREATE INDEX orders_by_merchant ON orders (merchant, asset) WHERE merchant IS NOT NULL;

CREATE TABLE order_events (
    seq           BIGSERIAL PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    order_id      TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    -- 1 once the webhook fan-out has made its deliveries (a flag, not a cursor: on
    -- PostgreSQL sequence numbers can commit out of order).
    fanned_out    BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX order_events_by_tenant ON order_events (tenant, seq);
CREATE INDEX order_events_unfanned ON order_events (seq) WHERE fanned_out = 0;

CREATE TABLE parties (
    tenant        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (tenant, kind, id)
);

CREATE TABLE webhook_endpoints (
    id            TEXT    PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    url           TEXT    NOT NULL,
    secret        TEXT    NOT NULL,
    enabled       BIGINT  NOT NULL,
    created_at_ms BIGINT  NOT NULL
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant);

CREATE TABLE webhook_deliveries (
    id            TEXT    PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    endpoint_id   TEXT    NOT NULL,
    event_seq     BIGINT  NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts      BIGINT  NOT NULL,
    next_at_ms    BIGINT  NOT NULL,
    last_status   BIGINT  NOT NULL,
    last_error    TEXT    NOT NULL,
    updated_at_ms BIGINT  NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at_ms) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_tenant ON webhook_deliveries (tenant, event_seq DESC);
