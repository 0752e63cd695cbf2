-- Schema version 4 (PostgreSQL): the gateway's status-inquiry tasks.
CREATE TABLE inquiries (
    channel       TEXT    NOT NULL,
    request_id    TEXT    NOT NULL,
    operation     TEXT    NOT NULL,
    owner         TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    attempts      BIGINT  NOT NULL,
    next_at_ms    BIGINT  NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('open', 'resolved', 'escalated')),
    outcome       TEXT,
    delivered     BOOLEAN NOT NULL DEFAULT false,
    detail        TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (channel, request_id)
);
CREATE INDEX inquiries_due ON inquiries (next_at_ms) WHERE state = 'open';
CREATE INDEX inquiries_undelivered ON inquiries (channel, request_id)
    WHERE state = 'resolved' AND NOT delivered;
