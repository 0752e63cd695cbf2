-- Gateway schema, version 1 (SQLite, gateway.db): status-inquiry tasks.
CREATE TABLE inquiries (
    channel       TEXT    NOT NULL,
    request_id    TEXT    NOT NULL,
    operation     TEXT    NOT NULL,
    owner         TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    attempts      INTEGER NOT NULL,
    next_at_ms    INTEGER NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('open', 'resolved', 'escalated')),
    outcome       TEXT,
    delivered     INTEGER NOT NULL DEFAULT 0,
    detail        TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (channel, request_id)
);
CREATE INDEX inquiries_due ON inquiries (next_at_ms) WHERE state = 'open';
CREATE INDEX inquiries_undelivered ON inquiries (channel, request_id)
    WHERE state = 'resolved' AND delivered = 0;
